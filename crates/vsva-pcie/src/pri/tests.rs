//! PRI tests (PCIe Base 6.0 §10.4, §10.5.2).

use super::*;
use crate::config::{ConfigOptions, PRI_CAP_OFFSET};

const PRI: u32 = PRI_CAP_OFFSET as u32;
const R: Access = Access::READ;
const W: Access = Access::WRITE;

fn p(raw: u32) -> Option<Pasid> {
    Some(Pasid::new(raw).unwrap())
}

/// PASIDs (with exec/priv) enabled, PRI enabled with `alloc` credits.
fn enabled(alloc: u32) -> ConfigSpace {
    let mut c = ConfigSpace::new(ConfigOptions::new(0x8086, 0x1234)).unwrap();
    c.write(0x106, 2, 0x0007);
    c.write(PRI + 12, 4, alloc);
    c.write(PRI + 4, 2, 0x0001);
    c
}

/// Linux `pci_reset_pri` then `pci_enable_pri`: Reset with Enable clear, program the allocation,
/// then Enable (which needs Stopped).
fn reset_and_enable(c: &mut ConfigSpace, pri: &mut Pri, alloc: u32) {
    c.write(PRI + 4, 2, 0x0002);
    pri.sync(c);
    assert!(c.pri_stopped());
    c.write(PRI + 12, 4, alloc);
    c.write(PRI + 4, 2, 0x0001);
}

#[test]
fn response_codes() {
    for code in [
        ResponseCode::Success,
        ResponseCode::InvalidRequest,
        ResponseCode::ResponseFailure,
    ] {
        assert_eq!(ResponseCode::from_raw(code.raw()), Some(code));
    }
    assert_eq!(ResponseCode::ResponseFailure.raw(), 0b1111);
    for reserved in 0x2..=0xE {
        assert_eq!(ResponseCode::from_raw(reserved), None);
    }
    assert_eq!(ResponseCode::from_raw(0x10), None);
}

#[test]
fn page_request_word_layout() {
    let msg = PageRequestMsg {
        pasid: p(1),
        access: R | W,
        page_addr: 0x1234_5000,
        prgi: 0x1FF,
        last: true,
    };
    // Address 63:12, PRGI 11:3, L bit 2, W bit 1, R bit 0.
    assert_eq!(msg.word().into_bits(), 0x1234_5FFF);
    let msg = PageRequestMsg {
        access: R,
        prgi: 1,
        last: false,
        page_addr: 0xFFFF_FFFF_FFFF_F000,
        ..msg
    };
    assert_eq!(msg.word().into_bits(), 0xFFFF_FFFF_FFFF_F009);
}

#[test]
fn request_builds_the_message() {
    let mut c = enabled(4);
    let mut pri = Pri::new();
    let g = pri.alloc_group().unwrap();
    let access = R | Access::EXEC | Access::PRIV;
    let msg = pri
        .request(&mut c, g, p(5), 0x7000_1234, access, false)
        .unwrap();
    assert_eq!(
        msg,
        PageRequestMsg {
            pasid: p(5),
            access,
            page_addr: 0x7000_1000,
            prgi: g,
            last: false
        }
    );
    let last = pri.request(&mut c, g, p(5), 0x7000_2000, W, true).unwrap();
    assert!(last.last);
    assert_eq!(pri.outstanding(), 2);
    // LPIG closed the group.
    assert_eq!(
        pri.request(&mut c, g, p(5), 0x7000_3000, R, false),
        Err(PriError::GroupClosed { prgi: g })
    );
    let done = pri.response(&mut c, g, ResponseCode::Success).unwrap();
    assert_eq!(done.prgi, g);
    assert_eq!(done.pasid, p(5));
    assert_eq!(done.requests, vec![msg, last]);
    assert_eq!(pri.outstanding(), 0);
    assert_eq!(pri.allocated_groups(), 0);
}

#[test]
fn requests_while_disabled_are_refused() {
    let mut c = ConfigSpace::new(ConfigOptions::new(1, 2)).unwrap();
    let mut pri = Pri::new();
    let g = pri.alloc_group().unwrap();
    assert_eq!(
        pri.request(&mut c, g, None, 0, R, true),
        Err(PriError::Disabled)
    );
}

#[test]
fn bad_requests_are_refused_without_taking_credit() {
    let mut c = enabled(4);
    let mut pri = Pri::new();
    let g = pri.alloc_group().unwrap();
    assert_eq!(
        pri.request(&mut c, 511, None, 0, R, true),
        Err(PriError::BadGroup { prgi: 511 })
    );
    assert_eq!(
        pri.request(&mut c, 512, None, 0, R, true),
        Err(PriError::BadGroup { prgi: 512 })
    );
    assert_eq!(
        pri.request(&mut c, g, None, 0, Access::empty(), true),
        Err(PriError::NoAccess)
    );
    assert_eq!(
        pri.request(&mut c, g, None, 0, R | Access::EXEC, true),
        Err(PriError::ExecNotEnabled)
    );
    assert_eq!(
        pri.request(&mut c, g, None, 0, R | Access::PRIV, true),
        Err(PriError::PrivNotEnabled)
    );
    // Exec enable off, PASID on.
    c.write(0x106, 2, 0x0005);
    assert_eq!(
        pri.request(&mut c, g, p(1), 0, R | Access::EXEC, true),
        Err(PriError::ExecNotEnabled)
    );
    c.write(0x106, 2, 0x0000);
    assert_eq!(
        pri.request(&mut c, g, p(1), 0, R, true),
        Err(PriError::PasidNotEnabled(Pasid::new(1).unwrap()))
    );
    pri.request(&mut c, g, p(1), 0, R, false).unwrap_err();
    c.write(0x106, 2, 0x0001);
    pri.request(&mut c, g, p(1), 0, R, false).unwrap();
    assert_eq!(
        pri.request(&mut c, g, p(2), 0x1000, R, true),
        Err(PriError::PasidMismatch { prgi: g })
    );
    assert_eq!(pri.outstanding(), 1);
}

#[test]
fn pasid_wider_than_max_width_is_refused() {
    let mut o = ConfigOptions::new(1, 2);
    o.pasid_width = 8;
    let mut c = ConfigSpace::new(o).unwrap();
    c.write(0x106, 2, 0x0001);
    c.write(PRI + 12, 4, 4);
    c.write(PRI + 4, 2, 0x0001);
    let mut pri = Pri::new();
    let g = pri.alloc_group().unwrap();
    assert_eq!(
        pri.request(&mut c, g, p(0x100), 0, R, true),
        Err(PriError::PasidTooWide {
            pasid: Pasid::new(0x100).unwrap(),
            width: 8
        })
    );
    pri.request(&mut c, g, p(0xFF), 0, R, true).unwrap();
}

#[test]
fn credits_exhausted() {
    let mut c = enabled(2);
    let mut pri = Pri::new();
    let g = pri.alloc_group().unwrap();
    let h = pri.alloc_group().unwrap();
    pri.request(&mut c, g, None, 0x1000, R, false).unwrap();
    pri.request(&mut c, g, None, 0x2000, R, true).unwrap();
    assert_eq!(
        pri.request(&mut c, h, None, 0x3000, R, true),
        Err(PriError::NoCredit { allocation: 2 })
    );
    assert_eq!(pri.no_credit_count(), 1);
    // Raising the allocation while enabled does not count until re-enable.
    c.write(PRI + 12, 4, 8);
    assert_eq!(
        pri.request(&mut c, h, None, 0x3000, R, true),
        Err(PriError::NoCredit { allocation: 2 })
    );
    assert_eq!(pri.no_credit_count(), 2);
    // The response gives both credits back.
    pri.response(&mut c, g, ResponseCode::InvalidRequest)
        .unwrap();
    pri.request(&mut c, h, None, 0x3000, R, true).unwrap();
    assert_eq!(pri.outstanding(), 1);
}

#[test]
fn zero_allocation_allows_nothing() {
    let mut c = enabled(0);
    let mut pri = Pri::new();
    let g = pri.alloc_group().unwrap();
    assert_eq!(
        pri.request(&mut c, g, None, 0, R, true),
        Err(PriError::NoCredit { allocation: 0 })
    );
}

#[test]
fn all_512_group_indexes() {
    let mut pri = Pri::new();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..512 {
        seen.insert(pri.alloc_group().unwrap());
    }
    assert_eq!(seen.len(), 512);
    assert_eq!(seen.last(), Some(&511));
    assert_eq!(pri.alloc_group(), None);
    pri.release_group(77).unwrap();
    assert_eq!(pri.alloc_group(), Some(77));
    assert_eq!(pri.alloc_group(), None);
    assert_eq!(
        pri.release_group(600),
        Err(PriError::BadGroup { prgi: 600 })
    );
}

#[test]
fn release_only_empty_groups() {
    let mut c = enabled(4);
    let mut pri = Pri::new();
    let g = pri.alloc_group().unwrap();
    pri.request(&mut c, g, None, 0, R, false).unwrap();
    assert_eq!(
        pri.release_group(g),
        Err(PriError::GroupNotEmpty { prgi: g })
    );
    let h = pri.alloc_group().unwrap();
    pri.release_group(h).unwrap();
    assert_eq!(pri.release_group(h), Err(PriError::BadGroup { prgi: h }));
    // The PRG index is 9 bits (§10.4.1): 512 and above name no group.
    for prgi in [PRG_INDEX_COUNT, u16::MAX] {
        assert_eq!(pri.release_group(prgi), Err(PriError::BadGroup { prgi }));
    }
}

#[test]
fn unknown_group_response_sets_uprgi() {
    let mut c = enabled(4);
    let mut pri = Pri::new();
    assert_eq!(
        pri.response(&mut c, 9, ResponseCode::Success),
        Err(PriError::UnexpectedGroup { prgi: 9 })
    );
    assert!(c.pri_uprgi());
    assert_eq!(c.read(PRI + 6, 2), 0x8002);
    // Software clears it (RW1C).
    c.write(PRI + 6, 2, 0x0002);
    assert!(!c.pri_uprgi());
    // An allocated group that sent nothing has no matching request either.
    let g = pri.alloc_group().unwrap();
    assert_eq!(
        pri.response(&mut c, g, ResponseCode::Success),
        Err(PriError::UnexpectedGroup { prgi: g })
    );
    assert!(c.pri_uprgi());
    // Out of the 9-bit range.
    assert_eq!(
        pri.response(&mut c, 0xFFFF, ResponseCode::Success),
        Err(PriError::UnexpectedGroup { prgi: 0xFFFF })
    );
    // A second response for an answered group is unexpected too.
    c.write(PRI + 6, 2, 0x0002);
    pri.request(&mut c, g, None, 0, R, true).unwrap();
    pri.response(&mut c, g, ResponseCode::Success).unwrap();
    assert!(!c.pri_uprgi());
    assert!(pri.response(&mut c, g, ResponseCode::Success).is_err());
    assert!(c.pri_uprgi());
}

#[test]
fn response_failure_stops_until_reset() {
    let mut c = enabled(8);
    let mut pri = Pri::new();
    let g = pri.alloc_group().unwrap();
    let h = pri.alloc_group().unwrap();
    pri.request(&mut c, g, None, 0x1000, R, true).unwrap();
    pri.request(&mut c, h, None, 0x2000, W, true).unwrap();
    let done = pri
        .response(&mut c, g, ResponseCode::ResponseFailure)
        .unwrap();
    assert_eq!(done.code, ResponseCode::ResponseFailure);
    assert!(pri.is_failed());
    assert!(c.pri_response_failure() && c.pri_stopped());
    // RF | Stopped | PASID Required.
    assert_eq!(c.read(PRI + 6, 2), 0x8101);
    assert_eq!(pri.outstanding(), 0);
    // No new requests, and responses (even for the other group) are ignored, without UPRGI.
    let k = pri.alloc_group().unwrap();
    assert_eq!(
        pri.request(&mut c, k, None, 0x3000, R, true),
        Err(PriError::Stopped)
    );
    assert_eq!(
        pri.response(&mut c, h, ResponseCode::Success),
        Err(PriError::ResponseIgnored { prgi: h })
    );
    assert!(!c.pri_uprgi());
    // Clearing RF alone does not restart the interface.
    c.write(PRI + 6, 2, 0x0001);
    assert_eq!(
        pri.request(&mut c, k, None, 0x3000, R, true),
        Err(PriError::Stopped)
    );
    // Reset + enable does; the groups with requests are gone, the empty one stays.
    reset_and_enable(&mut c, &mut pri, 8);
    assert!(!c.pri_stopped() && !c.pri_response_failure());
    assert_eq!(pri.allocated_groups(), 1);
    pri.request(&mut c, k, None, 0x3000, R, true).unwrap();
    assert_eq!(pri.release_group(h), Err(PriError::BadGroup { prgi: h }));
    assert!(!pri.is_failed());
}

#[test]
fn re_enable_alone_restarts_after_failure() {
    let mut c = enabled(8);
    let mut pri = Pri::new();
    let g = pri.alloc_group().unwrap();
    pri.request(&mut c, g, None, 0x1000, R, true).unwrap();
    pri.response(&mut c, g, ResponseCode::ResponseFailure)
        .unwrap();
    c.write(PRI + 4, 2, 0x0000);
    c.write(PRI + 4, 2, 0x0001);
    let g = pri.alloc_group().unwrap();
    pri.request(&mut c, g, None, 0x1000, R, true).unwrap();
}

#[test]
fn disable_sets_stopped_once_drained() {
    let mut c = enabled(8);
    let mut pri = Pri::new();
    let g = pri.alloc_group().unwrap();
    pri.request(&mut c, g, p(3), 0x1000, R, true).unwrap();
    c.write(PRI + 4, 2, 0x0000);
    pri.sync(&mut c);
    // Enable and Stopped both clear: requests still outstanding.
    assert!(!c.pri_stopped());
    let h = pri.alloc_group().unwrap();
    assert_eq!(
        pri.request(&mut c, h, None, 0, R, true),
        Err(PriError::Disabled)
    );
    // Outstanding groups still complete while disabled; then the interface is stopped.
    pri.response(&mut c, g, ResponseCode::Success).unwrap();
    assert!(c.pri_stopped());
}

#[test]
fn reset_discards_pending_requests() {
    let mut c = enabled(8);
    let mut pri = Pri::new();
    let g = pri.alloc_group().unwrap();
    pri.request(&mut c, g, None, 0x1000, R, true).unwrap();
    // Reset while enabled is ignored.
    c.write(PRI + 4, 2, 0x0003);
    pri.sync(&mut c);
    assert_eq!(pri.outstanding(), 1);
    // Reset while clearing Enable discards the state and the interface is stopped.
    c.write(PRI + 4, 2, 0x0002);
    pri.sync(&mut c);
    assert_eq!(pri.outstanding(), 0);
    assert_eq!(pri.allocated_groups(), 0);
    assert!(c.pri_stopped());
    // A late response for the discarded group is unexpected.
    assert_eq!(
        pri.response(&mut c, g, ResponseCode::Success),
        Err(PriError::UnexpectedGroup { prgi: g })
    );
}
