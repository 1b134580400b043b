//! An IOAS filling a real paging domain: the IOMMU core's paging domain over the VT-d
//! model's second-stage table, attached to devices for their requests without PASID. DMA
//! through the unit reaches exactly the process memory the IOAS maps, and an unmap reaches
//! the unit's IOTLB (a strict model: a PASID-based invalidation would leave second-stage
//! entries cached, §6.5.2.4).

use std::sync::Arc;

use vsva_host::Platform;
use vsva_iommu::{DeviceCaps, PagingDomain};
use vsva_iommufd::IoPageTable;
use vsva_iommufd::IoProt;
use vsva_mem::{Access, Pasid, Rid, Va};
use vsva_mm::{MapFlags, Prot};
use vsva_vtd::VtdConfig;

const PAGE: u64 = 4096;
const MIB: u64 = 1 << 20;
const RW: IoProt = IoProt::READ.union(IoProt::WRITE);

fn platform() -> Platform {
    Platform::new(8 << 30, VtdConfig::default()).unwrap()
}

fn plug(p: &Platform, dev: u8) -> Arc<vsva_demo::DemoDevice> {
    let rid = Rid::from_bdf(0, dev, 0).unwrap();
    let d = p.add_device(rid, 32, 64);
    p.iommu
        .add_device(
            rid,
            DeviceCaps {
                pasid_bits: 20,
                ats: false,
                pri: false,
            },
            0,
        )
        .unwrap();
    d
}

#[test]
fn dma_through_an_ioas_paging_domain_reaches_the_mapped_process_memory() {
    let p = platform();
    let (a, b) = (plug(&p, 3), plug(&p, 4));
    let vmm = p.mm.spawn().unwrap();
    let buf = vmm
        .mmap(None, 4 * MIB, Prot::RW, MapFlags::HUGE_2M)
        .unwrap();
    let small = vmm
        .mmap(None, 4 * PAGE, Prot::RW, MapFlags::empty())
        .unwrap();
    vmm.write_bytes(Va::new(small.raw() + PAGE + 8), b"from the VMM")
        .unwrap();

    let domain: Arc<PagingDomain> = p.iommu.alloc_paging_domain().unwrap();
    assert_eq!(
        domain.last_iova(),
        (1 << 57) - 1,
        "MGAW 57, 5 levels: the default unit"
    );
    let ioas = IoPageTable::default();
    ioas.attach_domain(1, domain.clone()).unwrap();
    for d in [&a, &b] {
        p.iommu
            .attach_domain(d.rid(), Pasid::new(0).unwrap(), &domain, None)
            .unwrap();
    }
    assert_eq!(domain.attachments().len(), 2);
    let big = ioas
        .map_user(vmm.clone(), buf.raw(), 4 * MIB, RW, None)
        .unwrap();
    let ro = ioas
        .map_user(
            vmm.clone(),
            small.raw(),
            4 * PAGE,
            IoProt::READ,
            Some(0x10_0000),
        )
        .unwrap();
    assert_eq!(big % (2 * MIB), 0);

    // both devices see the VMM's memory at the IOVAs
    for d in [&a, &b] {
        let hpa = d.dma_untranslated(None, ro + PAGE + 8, false).unwrap();
        let mut got = [0u8; 12];
        p.mem.read(hpa, &mut got).unwrap();
        assert_eq!(&got, b"from the VMM");
        let want = vmm
            .translate(Va::new(buf.raw() + 3 * MIB + 12), Access::READ)
            .unwrap()
            .output;
        assert_eq!(d.dma_untranslated(None, big + 3 * MIB + 12, true), Ok(want));
    }
    // rights are the IOAS's: the read-only area refuses writes; nothing else is mapped
    assert!(a.dma_untranslated(None, ro, true).is_err());
    assert!(a.dma_untranslated(None, 0x8000_0000, false).is_err());

    // unmapping reaches the IOTLB of the unit for both devices (they just cached it)
    assert_eq!(ioas.unmap(ro, 4 * PAGE), Ok(4 * PAGE));
    for d in [&a, &b] {
        assert!(
            d.dma_untranslated(None, ro + PAGE, false).is_err(),
            "stale IOTLB entry"
        );
    }
    assert!(
        a.dma_untranslated(None, big, true).is_ok(),
        "the other area stays"
    );
    ioas.unmap_all();
    assert!(b.dma_untranslated(None, big, false).is_err());
    assert_eq!(vmm.locked_pages(), 0);

    // detach: the device is blocked again
    p.iommu
        .detach_domain(a.rid(), Pasid::new(0).unwrap(), &domain)
        .unwrap();
    ioas.map_user(vmm.clone(), buf.raw(), 2 * MIB, RW, Some(0x4000_0000))
        .unwrap();
    assert!(a.dma_untranslated(None, 0x4000_0000, false).is_err());
    assert!(b.dma_untranslated(None, 0x4000_0000, false).is_ok());
}

#[test]
fn the_domain_refuses_what_its_table_cannot_hold() {
    // a unit with 4-level second-stage tables and a 48-bit MGAW
    let cfg = VtdConfig {
        mgaw: 48,
        ss_levels: [true, true, false],
        ..VtdConfig::default()
    };
    let p = Platform::new(8 << 30, cfg).unwrap();
    let domain = p.iommu.alloc_paging_domain().unwrap();
    assert_eq!(domain.last_iova(), (1 << 48) - 1);
    let rw = vsva_pgtable::Perm::RW;
    assert!(
        domain.map(0x1000, 0x1000_0000, 0x800, rw, true).is_err(),
        "not 4 KiB"
    );
    assert!(
        domain.map(1 << 48, 0x1000_0000, PAGE, rw, true).is_err(),
        "beyond MGAW"
    );
    domain.map(0x1000, 0x1000_0000, PAGE, rw, true).unwrap();
    let e = domain.map(0, 0x2000_0000, 4 * PAGE, rw, true).unwrap_err();
    assert_eq!(e.errno(), vsva_mem::Errno::EEXIST, "part is mapped");
    // the failed map left nothing behind
    assert_eq!(domain.unmap(0, 4 * PAGE), PAGE);
    assert_eq!(domain.unmap(0, 4 * PAGE), 0);
    // a 2 MiB-aligned run is mapped with a 2 MiB leaf when large pages are allowed
    domain
        .map(0x20_0000, 0x4000_0000, 2 * MIB, rw, true)
        .unwrap();
    assert_eq!(domain.unmap(0x20_0000, 2 * MIB), 2 * MIB);
}
