//! The PRI queue (IHI 0070 §8): page requests at PROD, overflow, automatic PRG Responses,
//! PRIQ_ABT_ERR and the queue's interrupt.

mod common;

use common::*;
use vsva_mem::{Pasid, PhysMem, Rid};
use vsva_pcie::{PageRequest, PageRequestOutcome, ResponseCode};
use vsva_smmuv3::Smmuv3Config;
use vsva_smmuv3::spec::event::PriEntry;
use vsva_smmuv3::spec::registers::{offset, queue};
use zerocopy::IntoBytes;

const PRIQ: u64 = 0x38_0000;
const PRIQ_MSI: (u64, u32) = (0xfee0_3000, 0x23);

/// An SMMU with a PRI queue of 2^log2 entries, its MSI, and SMMUEN | PRIQEN.
fn bench(log2: u64, last_only: bool) -> Bench {
    let b = Bench::raw(Smmuv3Config::default());
    b.w64(offset::PRIQ_BASE, PRIQ | log2);
    b.w64(offset::PRIQ_IRQ_CFG0, PRIQ_MSI.0);
    b.w32(offset::PRIQ_IRQ_CFG1, PRIQ_MSI.1);
    b.w32(offset::PRIQ_IRQ_CFG2, (last_only as u32) << 31);
    b.w64(offset::GERROR_IRQ_CFG0, GERROR_MSI.0);
    b.w32(offset::GERROR_IRQ_CFG1, GERROR_MSI.1);
    b.w32(offset::IRQ_CTRL, 0x3);
    b.w32(offset::CR0, 0x3);
    b
}

fn req(prgi: u16, last: bool, pasid: Option<u32>) -> PageRequest {
    PageRequest {
        rid: Rid::from_raw(0x0310),
        pasid: pasid.map(|p| Pasid::new(p).unwrap()),
        addr: 0x7fff_0000_3000,
        read: true,
        write: true,
        exec: false,
        privileged: false,
        last,
        prgi,
    }
}

fn entry(b: &Bench, slot: u64) -> [u64; 2] {
    let mut e = PriEntry::default();
    b.mem.read(PRIQ + slot * 16, e.as_mut_bytes()).unwrap();
    e.words
}

#[test]
fn page_request_written_at_prod_as_linux_reads_it() {
    let b = bench(3, false);
    let mut r = req(0x1a5, true, Some(0x321));
    r.exec = true;
    r.privileged = true;
    assert_eq!(b.smmu.page_request(&r), PageRequestOutcome::Queued);
    assert_eq!(b.r32(offset::PRIQ_PROD), 1);
    // PRIQ_0_SID(31,0), SSID(51,32), PERM_PRIV 58, EXEC 59, READ 60, WRITE 61, PRG_LAST 62,
    // SSID_V 63; PRIQ_1_PRG_IDX(8,0), ADDR(63,12).
    assert_eq!(
        entry(&b, 0),
        [
            0x310 | 0x321 << 32 | 1 << 58 | 1 << 59 | 1 << 60 | 1 << 61 | 1 << 62 | 1 << 63,
            0x1a5 | 0x7fff_0000_3000
        ]
    );
    assert_eq!(b.msi.take(), [PRIQ_MSI], "empty to non-empty");
    assert_eq!(b.smmu.stats().page_requests, 1);
}

#[test]
fn page_request_without_pasid_has_no_exec_or_privileged() {
    let b = bench(3, false);
    let mut r = req(1, false, None);
    r.exec = true;
    r.privileged = true;
    b.smmu.page_request(&r);
    assert_eq!(entry(&b, 0)[0], 0x310 | 1 << 60 | 1 << 61);
}

#[test]
fn priq_interrupt_on_empty_to_non_empty_or_each_last_with_lo() {
    let b = bench(3, false);
    b.smmu.page_request(&req(1, false, None));
    b.smmu.page_request(&req(1, true, None));
    assert_eq!(b.msi.take(), [PRIQ_MSI]);
    let b = bench(3, true);
    b.smmu.page_request(&req(1, false, None));
    b.smmu.page_request(&req(1, true, None));
    b.smmu.page_request(&req(2, true, None));
    assert_eq!(b.msi.take(), [PRIQ_MSI, PRIQ_MSI]);
}

#[test]
fn priq_disabled_answers_every_request_with_response_failure() {
    let b = bench(3, false);
    b.w32(offset::CR0, 0x1);
    for last in [false, true] {
        assert_eq!(
            b.smmu.page_request(&req(7, last, Some(5))),
            PageRequestOutcome::AutoResponse(ResponseCode::ResponseFailure)
        );
    }
    // SMMUEN = 0 makes the effective PRIQEN 0 too (§8.2).
    b.w32(offset::CR0, 0x2);
    b.smmu.page_request(&req(8, true, None));
    let rid = Rid::from_raw(0x310);
    assert_eq!(
        *b.fabric.responses.lock().unwrap(),
        [
            (rid, None, ResponseCode::ResponseFailure, 7),
            (rid, None, ResponseCode::ResponseFailure, 7),
            (rid, None, ResponseCode::ResponseFailure, 8),
        ]
    );
    assert_eq!(b.r32(offset::PRIQ_PROD), 0);
}

#[test]
fn priq_overflow_toggles_ovflg_answers_last_requests_and_blocks_until_acknowledged() {
    let b = bench(2, false);
    for i in 0..4 {
        assert_eq!(
            b.smmu.page_request(&req(i, false, Some(9))),
            PageRequestOutcome::Queued
        );
    }
    // Full: the next request overflows, and a Last one gets Success with its PASID.
    assert_eq!(
        b.smmu.page_request(&req(4, true, Some(9))),
        PageRequestOutcome::AutoResponse(ResponseCode::Success)
    );
    assert_eq!(b.r32(offset::PRIQ_PROD), queue::OVERFLOW | 0b100);
    assert_eq!(
        b.smmu.page_request(&req(5, false, Some(9))),
        PageRequestOutcome::Dropped
    );
    // Software consumes two entries but leaves the overflow unacknowledged: still blocked.
    b.w32(offset::PRIQ_CONS, 0b010);
    assert_eq!(
        b.smmu.page_request(&req(6, false, None)),
        PageRequestOutcome::Dropped
    );
    // Acknowledged: entries are written again, OVFLG unchanged.
    b.w32(offset::PRIQ_CONS, queue::OVERFLOW | 0b010);
    assert_eq!(
        b.smmu.page_request(&req(7, false, None)),
        PageRequestOutcome::Queued
    );
    assert_eq!(b.r32(offset::PRIQ_PROD), queue::OVERFLOW | 0b101);
    assert_eq!(
        *b.fabric.responses.lock().unwrap(),
        [(
            Rid::from_raw(0x310),
            Some(Pasid::new(9).unwrap()),
            ResponseCode::Success,
            4
        )]
    );
}

#[test]
fn stop_markers_never_get_an_auto_response() {
    let stop = |b: &Bench| {
        let mut r = req(3, true, Some(4));
        (r.read, r.write) = (false, false);
        b.smmu.page_request(&r)
    };
    let b = bench(0, false);
    b.w32(offset::CR0, 0x1);
    assert_eq!(stop(&b), PageRequestOutcome::Dropped);
    b.w32(offset::CR0, 0x3);
    assert_eq!(stop(&b), PageRequestOutcome::Queued);
    assert_eq!(
        stop(&b),
        PageRequestOutcome::Dropped,
        "one-entry queue full"
    );
    assert!(b.fabric.responses.lock().unwrap().is_empty());
}

#[test]
fn priq_write_abort_priq_abt_err_and_response_failure() {
    let b = Bench::raw(Smmuv3Config::default());
    b.w64(offset::PRIQ_BASE, NOWHERE | 2);
    b.w64(offset::GERROR_IRQ_CFG0, GERROR_MSI.0);
    b.w32(offset::GERROR_IRQ_CFG1, GERROR_MSI.1);
    b.w32(offset::IRQ_CTRL, 0x1);
    b.w32(offset::CR0, 0x3);
    assert_eq!(
        b.smmu.page_request(&req(1, false, Some(2))),
        PageRequestOutcome::AutoResponse(ResponseCode::ResponseFailure)
    );
    assert_eq!(b.r32(offset::GERROR), 1 << 3);
    assert_eq!(b.msi.take(), [GERROR_MSI]);
    // While PRIQ_ABT_ERR is active nothing is written and every request fails.
    assert_eq!(
        b.smmu.page_request(&req(2, true, None)),
        PageRequestOutcome::AutoResponse(ResponseCode::ResponseFailure)
    );
    assert!(b.msi.take().is_empty());
    assert_eq!(b.r32(offset::PRIQ_PROD), 0);
}

#[test]
fn priq_registers_guarded_by_priqen() {
    let b = bench(3, false);
    b.w64(offset::PRIQ_BASE, 0x1000);
    b.w32(offset::PRIQ_PROD, 5);
    assert_eq!(b.r64(offset::PRIQ_BASE), PRIQ | 3);
    assert_eq!(b.r32(offset::PRIQ_PROD), 0);
    // The MSI registers are guarded by IRQ_CTRL.PRIQ_IRQEN.
    b.w32(offset::PRIQ_IRQ_CFG1, 0x99);
    assert_eq!(b.r32(offset::PRIQ_IRQ_CFG1), PRIQ_MSI.1);
}
