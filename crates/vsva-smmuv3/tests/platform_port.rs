//! A platform master's transactions through `Smmuv3Port` (vsva-pcie's `PlatformUpstream`):
//! what the master controls — its StreamID, SubstreamID, addresses and the stall tokens it
//! polls — when they are garbage. Each gets the spec's event and a refusal, never a panic or
//! a transaction that never ends.

mod common;

use std::sync::Arc;

use common::xlate::*;
use vsva_mem::{Access, Pasid, PhysMem};
use vsva_pcie::{PlatformDma, PlatformUpstream, StallToken};
use vsva_pgtable::Perm;
use vsva_smmuv3::Smmuv3Port;
use vsva_smmuv3::spec::event::id;

fn port(r: &S1Rig) -> Smmuv3Port {
    let mem: Arc<dyn PhysMem> = r.b.mem.clone();
    Smmuv3Port {
        smmu: r.b.smmu.clone(),
        mem,
    }
}

#[test]
fn a_platform_dma_translates_through_its_stream() {
    let r = S1Rig::new();
    r.map(VA, PA, Perm::USER_RW);
    let p = port(&r);
    assert_eq!(
        p.dma(SID, None, VA + 0x10, Access::WRITE, true),
        PlatformDma::Done(PA + 0x10)
    );
}

#[test]
fn a_stream_beyond_sidsize_is_refused_with_c_bad_streamid() {
    // IHI 0070 §7.3.2: a StreamID beyond the stream table (SIDSIZE 16 by default).
    let r = S1Rig::new();
    let p = port(&r);
    let bad = 1 << 16;
    assert_eq!(
        p.dma(bad, None, VA, Access::READ, true),
        PlatformDma::Refused
    );
    let ev = r.b.events();
    assert!(
        ev.iter()
            .any(|e| e.kind() == id::C_BAD_STREAMID && e.sid() == bad),
        "{ev:?}"
    );
}

#[test]
fn a_substream_the_ste_has_no_cd_for_is_refused_with_c_bad_substreamid() {
    // §7.3.9: the STE's S1CDMax is 0 (one CD, no SubstreamIDs), so any SubstreamID is bad;
    // and one wider than SSIDSIZE (20 bits) as well.
    let r = S1Rig::new();
    r.map(VA, PA, Perm::USER_RW);
    let p = port(&r);
    for ssid in [1, (1 << 20) - 1] {
        assert_eq!(
            p.dma(SID, Some(Pasid::new(ssid).unwrap()), VA, Access::READ, true),
            PlatformDma::Refused,
            "SubstreamID {ssid:#x}"
        );
    }
    let ev = r.b.events();
    assert_eq!(
        ev.iter()
            .filter(|e| e.kind() == id::C_BAD_SUBSTREAMID)
            .count(),
        2,
        "{ev:?}"
    );
}

#[test]
fn an_address_nothing_maps_is_refused_not_stalled_without_cd_s() {
    // The CD has S = 0: a translation fault terminates (F_TRANSLATION recorded), it does not
    // stall, even for a stallable transaction (§3.12).
    let r = S1Rig::new();
    let p = port(&r);
    for addr in [VA, !0xfff, 1 << 48] {
        assert_eq!(
            p.dma(SID, None, addr, Access::READ, true),
            PlatformDma::Refused,
            "{addr:#x}"
        );
    }
    assert_eq!(r.b.smmu.stalled(), 0);
}

#[test]
fn polling_a_token_never_issued_or_already_taken_is_refused() {
    // A master polling garbage gets an abort, never "still stalled" forever.
    let mut r = S1Rig::with(s1_format(), |c| c.with_s(true));
    let p = port(&r);
    let garbage = StallToken {
        stream: SID,
        tag: 0xbeef,
    };
    assert_eq!(p.poll_stalled(garbage), PlatformDma::Refused);
    let unknown_stream = StallToken {
        stream: u32::MAX,
        tag: 0,
    };
    assert_eq!(p.poll_stalled(unknown_stream), PlatformDma::Refused);
    // a real stall, aborted by STALL_TERM, is refused once and then unknown (refused again)
    let PlatformDma::Stalled(t) = p.dma(SID, None, VA, Access::READ, true) else {
        panic!("an unmapped address under CD.S = 1 stalls");
    };
    assert_eq!(p.poll_stalled(t), PlatformDma::Stalled(t));
    r.b.submit(&[vsva_smmuv3::spec::cmd::Command::StallTerm { sid: SID }]);
    assert_eq!(p.poll_stalled(t), PlatformDma::Refused);
    assert_eq!(p.poll_stalled(t), PlatformDma::Refused);
}
