//! Seeded random streams through the shim's entry-point interpreter ([`super::run`]), and a
//! hand-made stream that opens, binds, makes a fault queue and closes everything.

use super::{Summary, run};

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
fn random_calls_on_shim_files_never_panic_leak_or_write_outside() {
    let mut total = Summary::default();
    for seed in 0..400 {
        // Every stream starts by opening /dev/iommu and vfio0, so the calls have files.
        let mut d = vec![0, 0, 2, 0, 1, 2];
        d.extend(stream(seed, 300));
        let s = run(&d);
        total.ops += s.ops;
        total.opened += s.opened;
        total.ok += s.ok;
        total.failed += s.failed;
    }
    assert!(total.opened >= 800, "{total:?}");
    assert!(
        total.ok > total.opened + 20,
        "ioctls and transfers succeed: {total:?}"
    );
    assert!(total.failed > 1200, "{total:?}");
}

#[test]
fn a_fault_queue_made_by_ioctl_is_closed_with_its_context() {
    use vsva_iommufd::abi::Command;
    let fault = Command::ALL
        .iter()
        .position(|c| *c == Command::FaultQueueAlloc)
        .unwrap() as u8;
    let mut d = vec![0, 0, 2];
    // ioctl on file 0: FAULT_QUEUE_ALLOC, exact size, good pointer at offset 0.
    d.extend_from_slice(&[1, 0, fault, 0, 0, 0, 0]);
    d.extend_from_slice(&[0; 32]);
    let s = run(&d);
    assert_eq!((s.opened, s.ok, s.failed), (2, 2, 0), "{s:?}");
}
