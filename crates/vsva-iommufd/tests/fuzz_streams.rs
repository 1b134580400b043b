//! Seeded random streams through the iommufd fuzz interpreter (`vsva_iommufd::fuzz`, the
//! harness the cargo-fuzz target `iommufd_ctx` drives): ioctls on one context and on its VFIO
//! device files, well-formed and malformed, fault-file I/O and an emulated driver's pins and
//! copies never panic, never drop a pin behind the driver, and leave no object, attachment,
//! pin or locked-memory charge once the context is closed. One host serves every stream.

use std::sync::Arc;

use vsva_host::Platform;
use vsva_iommu::DeviceCaps;
use vsva_iommufd::DeviceInfo;
use vsva_iommufd::fuzz::{Host, Summary, run, run_vfio};
use vsva_mem::Rid;
use vsva_vtd::VtdConfig;

fn host() -> (Platform, Host) {
    let p = Platform::new(1 << 30, VtdConfig::default()).unwrap();
    let caps = DeviceCaps {
        pasid_bits: 20,
        ats: false,
        pri: false,
    };
    let mut infos = Vec::new();
    for dev in [3, 4] {
        let rid = Rid::from_bdf(0, dev, 0).unwrap();
        p.add_device(rid, 32, 64);
        p.iommu.add_device(rid, caps, 32).unwrap();
        infos.push(DeviceInfo::new(rid, caps));
    }
    let host = Host {
        iommu: p.iommu.clone(),
        mm: p.mm.clone(),
        mem: p.mem.clone(),
        bound: infos[0],
        physical: infos[1],
    };
    (p, host)
}

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
fn random_ioctl_streams_never_panic_nor_leak() {
    let (_platform, host) = host();
    let mut total = Summary::default();
    for seed in 0..1500 {
        let s = run(&host, &stream(seed, 64 + 160));
        total.ops += s.ops;
        total.ok += s.ok;
        total.failed += s.failed;
        total.pins += s.pins;
    }
    // The streams get past the argument checks, not only into them.
    assert!(total.ok > 800, "{total:?}");
    assert!(total.failed > 4000, "{total:?}");
    assert!(total.pins > 80, "{total:?}");
    let _ = Arc::strong_count(&host.iommu);
}

#[test]
fn random_vfio_cdev_streams_never_panic_nor_leak() {
    let (_platform, host) = host();
    let mut total = Summary::default();
    for seed in 0..600 {
        let s = run_vfio(&host, &stream(seed ^ 0x5f5f, 64 + 160));
        total.ok += s.ok;
        total.failed += s.failed;
        total.pins += s.pins;
    }
    assert!(total.ok > 100, "{total:?}");
    assert!(total.failed > 1000, "{total:?}");
    assert!(total.pins > 30, "{total:?}");
}

#[test]
fn a_host_can_allocate_paging_domains_forever_when_each_is_dropped() {
    let (platform, _host) = host();
    // The driver's table frames are [1 MiB, 256 MiB): 65 280 frames. Each paging domain
    // takes at least its root table; dropped, it must give it back (Linux
    // `free_io_pgtable_ops()` from `iommu_domain_free()`).
    for i in 0..70_000u32 {
        let d = platform.iommu.alloc_paging_domain();
        assert!(d.is_ok(), "allocation {i} after {i} drops: {:?}", d.err());
    }
}
