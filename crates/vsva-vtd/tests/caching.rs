//! The unit caches context/PASID entries and translations, and keeps using them until
//! software invalidates them — each invalidation granularity drops exactly what it selects.

mod common;

use common::*;
use vsva_mem::{Access, PageSize, PhysMem};
use vsva_pgtable::vtd_ss::VtdSecondStage;
use vsva_pgtable::x86::X86Paging;
use vsva_pgtable::{PageTable, Perm};
use vsva_vtd::VtdConfig;
use vsva_vtd::spec::descriptors::encode;
use vsva_vtd::spec::fault::FaultReason;
use vsva_vtd::spec::pasid::Pgtt;

const R: Access = Access::READ;

fn fs(rig: &Rig) -> PageTable<X86Paging> {
    PageTable::new(X86Paging::default(), rig.frames.clone()).unwrap()
}

#[test]
fn a_stale_translation_is_used_until_a_pasid_iotlb_invalidation() {
    let rig = Rig::new(VtdConfig::default());
    let dev = rid(0, 3, 0);
    let dir = rig.attach_device(dev);
    let t = fs(&rig);
    t.map(0x1000, 0x5000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    t.map(0x2000, 0x6000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    rig.write_pasid(dir, 9, &pasid_entry(Pgtt::FirstStage, 3, 0, t.root()));
    assert_eq!(rig.dma(dev, Some(9), 0x1000, R).unwrap().addr, 0x5000);
    assert_eq!(rig.dma(dev, Some(9), 0x2000, R).unwrap().addr, 0x6000);
    // unmap both in memory: the IOTLB still has them
    let un = t.unmap(0x1000, 0x2000).unwrap();
    assert_eq!(un.leaves.len(), 2);
    assert_eq!(rig.dma(dev, Some(9), 0x1000, R).unwrap().addr, 0x5000);
    // page-selective PASID-based invalidation of 0x1000 only
    rig.submit(&[encode::pasid_iotlb(3, 9, Some((0x1000, 0)), false)]);
    assert_eq!(
        rig.dma(dev, Some(9), 0x1000, R).unwrap_err().reason,
        Some(FaultReason::FsNotPresent)
    );
    assert_eq!(rig.dma(dev, Some(9), 0x2000, R).unwrap().addr, 0x6000);
    // another PASID or domain does not match
    rig.submit(&[
        encode::pasid_iotlb(3, 8, None, false),
        encode::pasid_iotlb(4, 9, None, false),
    ]);
    assert!(rig.dma(dev, Some(9), 0x2000, R).is_ok());
    // PASID-selective drops the rest
    rig.submit(&[encode::pasid_iotlb(3, 9, None, false)]);
    assert!(rig.dma(dev, Some(9), 0x2000, R).is_err());
    assert!(rig.vtd.stats().iotlb_invalidations >= 4);
}

#[test]
fn second_stage_translations_follow_iotlb_not_pasid_iotlb_invalidations() {
    let rig = Rig::new(VtdConfig::default());
    let dev = rid(0, 3, 0);
    let dir = rig.attach_device(dev);
    let ss = PageTable::new(VtdSecondStage::four_level(), rig.frames.clone()).unwrap();
    ss.map(0x4000_0000, 0x8000_0000, PageSize::Size1G, Perm::RW)
        .unwrap();
    rig.write_pasid(dir, 0, &pasid_entry(Pgtt::SecondStage, 5, ss.root(), 0));
    assert!(rig.dma(dev, None, 0x4000_1000, R).is_ok());
    ss.unmap(0x4000_0000, 1 << 30).unwrap();
    // PASID-based invalidations do not touch second-stage entries (Table 24)
    rig.submit(&[encode::pasid_iotlb(5, 0, None, false)]);
    assert!(rig.dma(dev, None, 0x4000_1000, R).is_ok());
    // a page-selective IOTLB invalidation of one 4 KiB page inside the 1 GiB page drops it
    rig.submit(&[[2 | 3 << 4 | 5 << 16, 0x4123_4000, 0, 0]]);
    assert_eq!(
        rig.dma(dev, None, 0x4000_1000, R).unwrap_err().reason,
        Some(FaultReason::SsNotPresent)
    );
}

#[test]
fn pasid_entries_are_cached_until_a_pasid_cache_invalidation() {
    let rig = Rig::new(VtdConfig::default());
    let dev = rid(0, 3, 0);
    let dir = rig.attach_device(dev);
    let t = fs(&rig);
    t.map(0x1000, 0x5000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    let at = rig.write_pasid(dir, 2, &pasid_entry(Pgtt::FirstStage, 6, 0, t.root()));
    assert!(rig.dma(dev, Some(2), 0x1000, R).is_ok());
    // clear P in memory: the cached entry still translates (IOTLB and PASID cache)
    let q0 = vsva_mem::PhysMem::load_u64(rig.mem.as_ref(), at).unwrap();
    vsva_mem::PhysMem::store_u64(rig.mem.as_ref(), at, q0 & !1).unwrap();
    rig.submit(&[encode::pasid_iotlb(6, 2, None, false)]);
    assert!(
        rig.dma(dev, Some(2), 0x1000, R).is_ok(),
        "PASID entry still cached"
    );
    // PASID-selective PASID-cache invalidation in another domain: no effect
    rig.submit(&[encode::pasid_cache(1, 7, 2)]);
    assert!(rig.dma(dev, Some(2), 0x1000, R).is_ok());
    rig.submit(&[encode::pasid_cache(1, 6, 2)]);
    assert_eq!(
        rig.dma(dev, Some(2), 0x1000, R).unwrap_err().reason,
        Some(FaultReason::PasidNotPresent)
    );
}

#[test]
fn context_cache_device_selective_invalidation() {
    let rig = Rig::new(VtdConfig::default());
    let a = rid(0, 3, 0);
    let b = rid(0, 4, 0);
    for d in [a, b] {
        let dir = rig.attach_device(d);
        rig.write_pasid(dir, 0, &pasid_entry(Pgtt::PassThrough, 1, 0, 0));
        assert!(rig.dma(d, None, 0x1000, R).is_ok());
        let ctx = rig.context_slot(d);
        let lo = vsva_mem::PhysMem::load_u64(rig.mem.as_ref(), ctx).unwrap();
        vsva_mem::PhysMem::store_u64(rig.mem.as_ref(), ctx, lo & !1).unwrap();
    }
    // device-selective for a only (G = 3, SID at 47:32)
    rig.submit(&[[1 | 3 << 4 | (a.raw() as u64) << 32, 0, 0, 0]]);
    assert_eq!(
        rig.dma(a, None, 0x1000, R).unwrap_err().reason,
        Some(FaultReason::ContextNotPresent)
    );
    assert!(rig.dma(b, None, 0x1000, R).is_ok());
    // SRTP implies a global invalidation
    rig.w32(
        vsva_vtd::spec::registers::offset::GCMD,
        (1 << 31) | (1 << 30) | (1 << 26),
    );
    assert!(rig.dma(b, None, 0x1000, R).is_err());
}

#[test]
fn a_write_hit_on_a_read_filled_entry_walks_to_set_dirty() {
    let rig = Rig::new(VtdConfig::default());
    let dev = rid(0, 3, 0);
    let dir = rig.attach_device(dev);
    let t = fs(&rig);
    t.map(0x1000, 0x5000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    rig.write_pasid(dir, 1, &pasid_entry(Pgtt::FirstStage, 1, 0, t.root()));
    rig.dma(dev, Some(1), 0x1000, R).unwrap();
    assert_eq!(t.lookup(0x1000).unwrap().entry & 0x40, 0);
    rig.dma(dev, Some(1), 0x1000, R | Access::WRITE).unwrap();
    assert_eq!(
        t.lookup(0x1000).unwrap().entry & 0x40,
        0x40,
        "D set by the write"
    );
}

#[test]
fn context_cache_function_mask_covers_the_masked_function_bits() {
    // §6.5.2.1: FM 1 masks SID bit 2, FM 3 bits 2:0 — so an invalidation naming 00:03.0
    // with FM 1 reaches 00:03.4, and with FM 0 it does not.
    let rig = Rig::new(VtdConfig::default());
    let a = rid(0, 3, 4);
    let dir = rig.attach_device(a);
    rig.write_pasid(dir, 0, &pasid_entry(Pgtt::PassThrough, 1, 0, 0));
    assert!(rig.dma(a, None, 0x1000, R).is_ok());
    let slot = rig.context_slot(a);
    let q0 = rig.mem.load_u64(slot).unwrap();
    rig.mem.store_u64(slot, q0 & !1).unwrap();
    let sid = 0x18u64; // 00:03.0
    rig.submit(&[[1 | 3 << 4 | sid << 32, 0, 0, 0]]);
    assert!(
        rig.dma(a, None, 0x1000, R).is_ok(),
        "FM 0: 00:03.4 keeps its entry"
    );
    rig.submit(&[[1 | 3 << 4 | sid << 32 | 1 << 48, 0, 0, 0]]);
    assert!(rig.dma(a, None, 0x1000, R).is_err(), "FM 1 reaches 00:03.4");
}

#[test]
fn a_page_selective_invalidation_reaches_the_last_1g_page_of_the_space() {
    // A supervisor first-stage 1 GiB page at the top of the canonical space ends at 2^64:
    // the overlap check of a page-selective PASID-based invalidation must neither overflow
    // nor miss it.
    let rig = Rig::new(VtdConfig::default());
    let dev = rid(0, 3, 0);
    let dir = rig.attach_device(dev);
    let t = fs(&rig);
    let top = 0xffff_ffff_c000_0000;
    t.map(top, 0x4000_0000, PageSize::Size1G, Perm::RW).unwrap();
    rig.write_pasid(dir, 4, &pasid_entry(Pgtt::FirstStage, 2, 0, t.root()));
    let sup = R | Access::PRIV;
    assert_eq!(
        rig.dma(dev, Some(4), top + 0x1234, sup).unwrap().addr,
        0x4000_1234
    );
    t.unmap(top, 1 << 30).unwrap();
    // another page of the space: the cached page stays
    rig.submit(&[encode::pasid_iotlb(2, 4, Some((0x1000, 0)), false)]);
    assert!(rig.dma(dev, Some(4), top + 0x1234, sup).is_ok());
    rig.submit(&[encode::pasid_iotlb(
        2,
        4,
        Some((top + 0x3000_0000, 0)),
        false,
    )]);
    assert_eq!(
        rig.dma(dev, Some(4), top + 0x1234, sup).unwrap_err().reason,
        Some(FaultReason::FsNotPresent)
    );
}
