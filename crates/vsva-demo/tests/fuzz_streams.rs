//! Seeded random streams through the demo device's fuzz interpreter (`vsva_demo::fuzz`, the
//! harness the cargo-fuzz target `demo_device` drives): register writes, doorbells, config
//! writes, grants, revocations and page-request answers never make the device touch memory
//! its IOMMU did not grant, nor hang it. The hand-made stream shows the ops reach a
//! completed command.

use vsva_demo::fuzz::{Summary, VA_BASE, run};

/// splitmix64: the seeded streams are the same on every run.
fn stream(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) as u8
        })
        .collect()
}

#[test]
fn random_streams_never_reach_ungranted_memory_nor_hang_the_device() {
    let mut total = Summary::default();
    for seed in 0..1500 {
        let s = run(&stream(seed, 64 + (seed as usize % 7) * 32));
        total.done += s.done;
        total.failed += s.failed;
        total.dmas += s.dmas;
        total.page_requests += s.page_requests;
    }
    // The streams reach the device's whole path, not only its decoder.
    assert!(total.done > 30, "{total:?}");
    assert!(total.failed > 100, "{total:?}");
    assert!(total.dmas > 100, "{total:?}");
    assert!(total.page_requests > 100, "{total:?}");
}

#[test]
fn a_fill_through_a_page_request_completes() {
    let mut d = vec![3, 3]; // PRI capacity 4, 3 ATC entries
    let mut w = |off: u8, v: u64| {
        d.push(0);
        d.push(off);
        d.extend_from_slice(&v.to_le_bytes());
    };
    w(0, 4); // COMMAND Fill
    w(2, 0); // DST = VA_BASE
    w(3, 4096); // LEN
    w(6, 0); // PASID 1
    w(7, 1); // DOORBELL
    d.push(4); // run: waits on its page request
    d.extend_from_slice(&[5, 0x08]); // answered Success, page granted writable
    d.push(4); // run: done
    let s = run(&d);
    assert_eq!((s.done, s.failed, s.page_requests), (1, 0, 1), "{s:?}");
    assert!(s.dmas >= 1);
    let _ = VA_BASE;
}

/// A Fill of one page at the window's start, PASID 1, and its doorbell (the harness's
/// whole-command op).
const FILL: [u8; 7] = [0x40, 4, 0, 0, 0x00, 0x10, 0];

#[test]
fn a_device_with_ats_disabled_sends_no_translation_request() {
    // Found by fuzzing: the device sent Translation Requests with ATS Enable clear
    // (PCIe Base 6.0 §10.5.1.3). Now its command fails with AtsDisabled.
    let mut d = vec![3, 3];
    d.extend_from_slice(&[3, 1, 0, 0]); // ATS Control = 0
    d.extend_from_slice(&FILL);
    d.push(4);
    let s = run(&d);
    assert_eq!(
        (s.done, s.failed, s.page_requests, s.dmas),
        (0, 1, 0, 0),
        "{s:?}"
    );
}

#[test]
fn a_pri_reset_while_a_command_waits_fails_the_command() {
    // Found by fuzzing: Reset with Enable clear while the command waited on its page
    // request discarded the request (PCIe Base 6.0 §10.5.2.2); the command waited forever.
    let mut d = vec![3, 3];
    d.extend_from_slice(&FILL);
    d.push(4); // waits on its page request
    d.extend_from_slice(&[3, 2, 2, 0]); // PRI Control: Reset, Enable clear
    d.push(4); // the command fails (PriFailure); the late answer sets UPRGI only
    let s = run(&d);
    assert_eq!((s.done, s.failed, s.page_requests), (0, 1, 1), "{s:?}");
}

#[test]
fn a_grant_replaced_by_a_page_response_is_invalidated_first() {
    // Found by the cargo-fuzz target (a harness bug, not the device's): the harness replaced
    // a read-only grant the device had cached with a writable one elsewhere without an ATS
    // invalidation, and then blamed the device for using its cached translation.
    let d = [
        0x2c, 0xcc, 0x68, 0xc3, 0xe3, 0xe3, 0xe3, 0xe3, 0x81, 0xa2, 0x01, 0x04, 0x2c, 0x9d, 0x81,
        0xa2, 0x01, 0x04, 0x2c, 0x9d, 0x2c,
    ];
    let s = run(&d);
    assert_eq!((s.done, s.failed), (1, 0), "{s:?}");
}

#[test]
fn a_response_failure_for_another_group_fails_the_waiting_command() {
    // Found by the cargo-fuzz target: a command replaced at the doorbell left its page
    // request outstanding; that group's answer, Response Failure, stopped the interface and
    // discarded the new command's request (PCIe Base 6.0 §10.4.2.1), and the new command
    // waited forever. It now fails with PriFailure.
    let d = [
        0x2e, 0xd0, 0xd0, 0x3d, 0x31, 0x8c, 0x3a, 0x8c, 0xff, 0x5d, 0x8c, 0xf4, 0xf4, 0xd0, 0x3d,
        0x31, 0x8c, 0x8c, 0x8c, 0xf4, 0xf4, 0x2f, 0x60, 0x6b, 0x6b, 0x6b, 0x6b, 0x6b, 0x6b, 0x25,
        0x6b, 0x6b, 0x6b, 0x6b, 0x6b, 0x6b, 0x6b, 0x6b, 0x6b, 0x6b, 0x6b, 0x6b, 0x6b, 0x6b, 0xf8,
        0xf8, 0xf8, 0xc6, 0xc6, 0xc6, 0x2a, 0x25, 0x32,
    ];
    let s = run(&d);
    assert!(s.failed >= 1, "{s:?}");
}
