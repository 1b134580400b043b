//! Dirty tracking of a paging domain on the VT-d model (second-stage A/D, SSADE): the unit
//! marks what devices write, reading the bitmap clears it, and the IOTLB flush that follows
//! makes the next write mark the page again.

mod common;

use common::plain_device;
use vsva_host::Platform;
use vsva_mem::{PageSize, Pasid, Rid};
use vsva_pcie::Mmio;
use vsva_pgtable::Perm;
use vsva_vtd::VtdConfig;

const PAGE: u64 = 4096;

fn dirty(d: &vsva_iommu::PagingDomain, clear: bool) -> Vec<(u64, PageSize)> {
    let mut v = vec![];
    d.read_and_clear_dirty(0, 1 << 30, clear, &mut |iova, size| v.push((iova, size)))
        .unwrap();
    v
}

#[test]
fn writes_are_recorded_and_cleared() {
    let p = Platform::new(4 << 30, VtdConfig::default()).unwrap();
    let rid = Rid::from_bdf(0, 3, 0).unwrap();
    let dev = plain_device(&p, rid);
    let d = p.iommu.alloc_paging_domain().unwrap();
    d.map(0x10_0000, 0x4000_0000, 4 * PAGE, Perm::RW, true)
        .unwrap();
    d.map(0x20_0000, 0x4020_0000, 2 << 20, Perm::RW, true)
        .unwrap();
    let pasid0 = Pasid::new(0).unwrap();
    p.iommu.attach_domain(rid, pasid0, &d, None).unwrap();

    // tracking off: the unit sets nothing
    dev.dma_untranslated(None, 0x10_1000, true).unwrap();
    assert!(dirty(&d, true).is_empty());

    d.set_dirty_tracking(true).unwrap();
    assert!(d.dirty_tracking());
    dev.dma_untranslated(None, 0x10_2000, true).unwrap();
    dev.dma_untranslated(None, 0x10_3000, false).unwrap();
    dev.dma_untranslated(None, 0x30_0000, true).unwrap();
    let want = vec![(0x10_2000, PageSize::Size4K), (0x20_0000, PageSize::Size2M)];
    assert_eq!(
        dirty(&d, false),
        want,
        "a read is not a write; NO_CLEAR keeps them"
    );
    assert_eq!(dirty(&d, true), want);
    assert!(dirty(&d, true).is_empty(), "cleared");
    // the same page written again is marked again (the IOTLB did not keep "dirty")
    dev.dma_untranslated(None, 0x10_2008, true).unwrap();
    assert_eq!(dirty(&d, true), vec![(0x10_2000, PageSize::Size4K)]);

    d.set_dirty_tracking(false).unwrap();
    dev.dma_untranslated(None, 0x10_2000, true).unwrap();
    assert!(dirty(&d, true).is_empty());
    // a later attachment follows the domain's setting
    d.set_dirty_tracking(true).unwrap();
    let rid2 = Rid::from_bdf(0, 4, 0).unwrap();
    let dev2 = plain_device(&p, rid2);
    p.iommu.attach_domain(rid2, pasid0, &d, None).unwrap();
    dev2.dma_untranslated(None, 0x10_0000, true).unwrap();
    assert_eq!(dirty(&d, true), vec![(0x10_0000, PageSize::Size4K)]);
}

#[test]
fn a_unit_without_second_stage_ad_refuses_dirty_tracking() {
    let cfg = VtdConfig {
        ss_ad: false,
        ..VtdConfig::default()
    };
    let p = Platform::new(4 << 30, cfg).unwrap();
    let d = p.iommu.alloc_paging_domain().unwrap();
    assert_eq!(
        d.set_dirty_tracking(true).unwrap_err().errno(),
        vsva_mem::Errno::EINVAL
    );
    assert!(!d.dirty_tracking());
    d.set_dirty_tracking(false).unwrap();
}

#[test]
fn hw_info_is_what_the_unit_reports_in_its_registers() {
    use vsva_vtd::spec::registers::offset;

    let cfg = VtdConfig {
        ss_ad: false,
        ..VtdConfig::default()
    };
    let p = Platform::new(1 << 30, cfg).unwrap();
    let info = p.iommu.ops().hw_info(0).unwrap();
    // `struct iommu_hw_info_vtd`: flags, __reserved, cap_reg, ecap_reg
    assert_eq!(
        info.data_type,
        vsva_vtd_driver::uapi::HW_INFO_TYPE_INTEL_VTD
    );
    let word = |at: usize| u64::from_le_bytes(info.data[at..at + 8].try_into().unwrap());
    let (cap, ecap) = (word(8), word(16));
    assert_eq!(cap, p.unit.read(offset::CAP, 8));
    assert_eq!(ecap, p.unit.read(offset::ECAP, 8));
    assert_eq!(info.data.len(), 24);
    // ECAP.SSADS (bit 45, §11.4.3; Linux `ecap_slads`) follows the configuration, and
    // SMTS (bit 43) is there
    assert_eq!(ecap >> 45 & 1, 0);
    assert_eq!(ecap >> 43 & 1, 1);
    assert!(!p.iommu.ops().dirty_tracking());
    // and the interrupt window is every device's reserved region
    let rid = Rid::from_bdf(0, 3, 0).unwrap();
    assert_eq!(
        p.iommu.ops().reserved_regions(rid),
        vec![(0xfee0_0000, 0xfeef_ffff)]
    );
}

#[test]
fn detaching_by_any_path_leaves_the_domain_and_frees_its_id() {
    let p = Platform::new(1 << 30, VtdConfig::default()).unwrap();
    let rid = Rid::from_bdf(0, 3, 0).unwrap();
    let dev = plain_device(&p, rid);
    let d = p.iommu.alloc_paging_domain().unwrap();
    let other = p.iommu.alloc_paging_domain().unwrap();
    assert_ne!(d.did(), other.did());
    d.map(0x10_0000, 0x4000_0000, PAGE, Perm::RW, true).unwrap();
    let pasid0 = Pasid::new(0).unwrap();
    p.iommu.attach_domain(rid, pasid0, &d, None).unwrap();
    assert_eq!(d.attachments(), vec![(rid, pasid0)]);
    // detaching from a domain it is not attached to is refused, and changes nothing
    assert_eq!(
        p.iommu
            .detach_domain(rid, pasid0, &other)
            .unwrap_err()
            .errno(),
        vsva_mem::Errno::ENOENT
    );
    assert_eq!(d.attachments(), vec![(rid, pasid0)]);
    // removing the device detaches it from the domain too: reprogramming the domain's
    // attachments (dirty tracking) must not bring its DMA back
    p.iommu.remove_device(rid).unwrap();
    assert!(d.attachments().is_empty());
    d.set_dirty_tracking(true).unwrap();
    assert!(dev.dma_untranslated(None, 0x10_0000, false).is_err());
    // a live domain's ID is never handed out again
    drop(other);
    for _ in 0..3 {
        assert_ne!(p.iommu.alloc_paging_domain().unwrap().did(), d.did());
    }
}
