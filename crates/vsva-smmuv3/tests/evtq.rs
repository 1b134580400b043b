//! The event queue (IHI 0070 §7.4) and the GERROR toggle protocol (§7.2): records at PROD
//! with wrap, overflow, EVTQ_ABT_ERR, the queue's interrupt.

mod common;

use common::*;
use vsva_smmuv3::Smmuv3Config;
use vsva_smmuv3::spec::event::{Access, EventRecord, WalkFault, class, id};
use vsva_smmuv3::spec::registers::{offset, queue};

fn rec(n: u32) -> EventRecord {
    EventRecord::c_bad_ste(n, None)
}

#[test]
fn evtq_record_written_at_prod_with_its_interrupt() {
    let b = Bench::new();
    let a = Access {
        sid: 0x42,
        ssid: Some(7),
        addr: 0xdead_b000,
        read: false,
        instruction: false,
        privileged: true,
    };
    let w = WalkFault {
        class: class::TT,
        ..WalkFault::default()
    };
    assert!(
        b.smmu
            .record(&EventRecord::walk_fault(id::F_TRANSLATION, &a, &w))
    );
    assert_eq!(b.r32(offset::EVENTQ_PROD), 1);
    assert_eq!(b.msi.take(), [EVTQ_MSI]);
    // Type 0x10, SSV, SSID 7, SID 0x42; PnU (bit 33), CLASS = TT (bit 40); InputAddr.
    assert_eq!(
        b.events()[0].words,
        [
            0x42 << 32 | 7 << 12 | 1 << 11 | 0x10,
            1 << 33 | 1 << 40,
            0xdead_b000,
            0
        ]
    );
}

#[test]
fn evtq_wraps_with_its_wrap_bit() {
    let b = Bench::new();
    for n in 0..20u32 {
        assert!(b.smmu.record(&rec(n)));
        // 8 entries: index in bits 2:0, wrap bit 3.
        assert_eq!(b.r32(offset::EVENTQ_PROD), (n + 1) & 0xf);
        let got = b.events();
        assert_eq!(got, [rec(n)]);
    }
    assert_eq!(b.smmu.stats().events, 20);
}

#[test]
fn evtq_overflow_toggles_ovflg_once_until_acknowledged() {
    let b = Bench::new();
    for n in 0..8 {
        assert!(b.smmu.record(&rec(n)));
    }
    // Full: PROD index 0 with wrap 1, CONS 0.
    assert_eq!(b.r32(offset::EVENTQ_PROD), 0x8);
    b.msi.take();
    assert!(!b.smmu.record(&rec(8)));
    assert_eq!(b.r32(offset::EVENTQ_PROD), queue::OVERFLOW | 0x8);
    assert_eq!(b.msi.take(), [EVTQ_MSI], "overflow interrupt");
    // A second loss while the overflow is unacknowledged does not toggle it back.
    assert!(!b.smmu.record(&rec(9)));
    assert_eq!(b.r32(offset::EVENTQ_PROD), queue::OVERFLOW | 0x8);
    assert!(b.msi.take().is_empty());
    // Software drains and acknowledges (OVACKFLG = OVFLG).
    let got = b.events();
    assert_eq!(got.len(), 8);
    b.w32(offset::EVENTQ_CONS, queue::OVERFLOW | 0x8);
    assert!(b.smmu.record(&rec(10)));
    assert_eq!(b.r32(offset::EVENTQ_PROD), queue::OVERFLOW | 0x9);
    // Fill again and overflow: OVFLG toggles back to 0.
    for n in 0..7 {
        assert!(b.smmu.record(&rec(n)));
    }
    assert!(!b.smmu.record(&rec(99)));
    assert_eq!(b.r32(offset::EVENTQ_PROD), 0x0);
    assert_eq!(b.smmu.stats().events_lost, 3);
}

#[test]
fn evtq_disabled_loses_events() {
    let b = Bench::new();
    b.w32(offset::CR0, 0x9);
    assert!(!b.smmu.record(&rec(1)));
    assert_eq!(b.r32(offset::EVENTQ_PROD), 0);
    assert!(b.msi.take().is_empty());
}

#[test]
fn evtq_interrupt_not_sent_while_irq_disabled() {
    let b = Bench::new();
    b.w32(offset::IRQ_CTRL, 0x1);
    assert!(b.smmu.record(&rec(1)));
    assert!(b.msi.take().is_empty());
}

#[test]
fn evtq_write_abort_gerror_evtq_abt_err() {
    let b = Bench::raw(Smmuv3Config::default());
    b.w64(offset::EVENTQ_BASE, NOWHERE | EVTQ_LOG2);
    b.w64(offset::GERROR_IRQ_CFG0, GERROR_MSI.0);
    b.w32(offset::GERROR_IRQ_CFG1, GERROR_MSI.1);
    b.w32(offset::IRQ_CTRL, 0x5);
    b.w32(offset::CR0, 0x4);
    assert!(!b.smmu.record(&rec(1)));
    assert_eq!(b.r32(offset::GERROR), 1 << 2);
    assert_eq!(b.r32(offset::EVENTQ_PROD), 0);
    assert_eq!(b.msi.take(), [GERROR_MSI]);
}

#[test]
fn gerror_toggle_protocol_keeps_each_error_until_its_acknowledge() {
    let mut b = Bench::new();
    b.submit_raw(&[[0x07, 0]]);
    // Events now abort: move the event queue beyond memory.
    b.w32(offset::CR0, 0x9);
    b.w64(offset::EVENTQ_BASE, NOWHERE | EVTQ_LOG2);
    b.w32(offset::CR0, 0xd);
    assert!(!b.smmu.record(&rec(1)));
    assert_eq!(b.r32(offset::GERROR), 0x5);
    assert_eq!(b.msi.take(), [GERROR_MSI, GERROR_MSI]);
    // A second event abort while EVTQ_ABT_ERR is active: no toggle, no interrupt.
    assert!(!b.smmu.record(&rec(2)));
    assert_eq!(b.r32(offset::GERROR), 0x5);
    assert!(b.msi.take().is_empty());
    // Acknowledge EVTQ_ABT_ERR only: CMDQ_ERR stays active.
    b.w32(offset::GERRORN, 0x4);
    assert_eq!(b.r32(offset::GERROR) ^ b.r32(offset::GERRORN), 0x1);
    // The next event abort toggles GERROR.EVTQ_ABT_ERR back to 0: active again.
    assert!(!b.smmu.record(&rec(3)));
    assert_eq!(b.r32(offset::GERROR), 0x1);
    assert_eq!(b.r32(offset::GERROR) ^ b.r32(offset::GERRORN), 0x5);
}

#[test]
fn event_record_builders_write_their_exact_records() {
    let b = Bench::new();
    let a = Access {
        sid: 3,
        ssid: None,
        addr: 0x1234_5678,
        read: true,
        instruction: true,
        privileged: false,
    };
    let recs = [
        EventRecord::f_uut(&a),
        EventRecord::f_bad_ats_treq(&a, true, 2),
        EventRecord::f_transl_forbidden(&a),
        EventRecord::e_page_request(&a, 2),
        EventRecord::f_vms_fetch(3, None, 0x8008),
    ];
    for r in &recs {
        assert!(b.smmu.record(r));
    }
    let got: Vec<_> = b.events().iter().map(|e| e.words).collect();
    // RnW bit 35, InD bit 34.
    let ri = 1 << 35 | 1 << 34;
    assert_eq!(
        got,
        [
            [3 << 32 | 0x01, ri, 0x1234_5678, 0],
            // F_BAD_ATS_TREQ: R bit 94, W 93, X 92, P 91 of the record, Span 67:64.
            [
                3 << 32 | 0x05,
                1 << 30 | 1 << 29 | 1 << 28 | 2,
                0x1234_5000,
                0
            ],
            [3 << 32 | 0x07, 1 << 35, 0x1234_5678, 0],
            [3 << 32 | 0x24, ri | 2, 0x1234_5000, 0],
            [3 << 32 | 0x25, 0, 0, 0x8008],
        ]
    );
}
