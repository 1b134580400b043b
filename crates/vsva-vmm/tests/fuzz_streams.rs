//! Seeded random streams through the guest-facing fuzz interpreter (`vsva_vmm::fuzz`, the
//! harness the cargo-fuzz target `vmm_vtd` drives): whatever a guest writes to its virtual
//! VT-d's registers, tables and invalidation queue, and whatever its assigned device is told
//! to do, the host never panics, its own devices keep their mappings, the guest's DMA stays
//! in guest RAM, and the vIOMMU reset gives back every host object. One VM serves every
//! stream.

use vsva_vmm::fuzz::{Smmuv3Bench, Summary, VtdBench};

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
fn random_guest_programming_of_a_virtual_vtd_never_reaches_the_host() {
    let mut bench = VtdBench::new().unwrap();
    let mut total = Summary::default();
    for seed in 0..600 {
        let s = bench.run(&stream(seed, 200));
        total.ops += s.ops;
        total.dmas += s.dmas;
        total.commands += s.commands;
        total.bindings += s.bindings;
    }
    assert!(total.ops > 9000, "{total:?}");
    assert!(total.dmas > 20, "{total:?}");
    assert!(total.commands > 20, "{total:?}");
    assert!(total.bindings > 600, "{total:?}");
}

#[test]
fn random_guest_programming_of_a_virtual_smmuv3_never_reaches_the_host() {
    let mut bench = Smmuv3Bench::new().unwrap();
    let mut total = Summary::default();
    for seed in 0..300 {
        let s = bench.run(&stream(seed ^ 0xa5a5, 200));
        total.ops += s.ops;
        total.dmas += s.dmas;
        total.commands += s.commands;
        total.bindings += s.bindings;
    }
    assert!(total.ops > 4500, "{total:?}");
    assert!(total.dmas > 10, "{total:?}");
    assert!(total.commands > 10, "{total:?}");
}
