//! Translation through each PGTT, driven through registers and memory only.

mod common;

use std::sync::Arc;

use common::*;
use vsva_mem::{Access, FrameAllocator, PageSize, PhysMem, PhysWindow};
use vsva_pcie::RequestKind;
use vsva_pgtable::vtd_ss::VtdSecondStage;
use vsva_pgtable::x86::X86Paging;
use vsva_pgtable::{PageTable, Perm};
use vsva_vtd::VtdConfig;
use vsva_vtd::spec::fault::FaultReason;
use vsva_vtd::spec::pasid::Pgtt;

const R: Access = Access::READ;
const W: Access = Access::READ.union(Access::WRITE);

fn ss_table(rig: &Rig) -> PageTable<VtdSecondStage> {
    PageTable::new(VtdSecondStage::four_level(), rig.frames.clone()).unwrap()
}

fn fs_table(rig: &Rig) -> PageTable<X86Paging> {
    let f = X86Paging {
        smap: false,
        smep: false,
        ..X86Paging::default()
    };
    PageTable::new(f, rig.frames.clone()).unwrap()
}

#[test]
fn pass_through_returns_the_input() {
    let rig = Rig::new(VtdConfig::default());
    let dev = rid(0, 3, 0);
    let dir = rig.attach_device(dev);
    rig.write_pasid(dir, 0, &pasid_entry(Pgtt::PassThrough, 1, 0, 0));
    let t = rig.dma(dev, None, 0x1234_5678, W).unwrap();
    assert_eq!(t.addr, 0x1234_5678);
    assert_eq!(t.did, 1);
    // beyond the host address width (46 bits)
    // beyond the host address width (46 bits): SGN.4 (§7.1.3), not the second stage's SGN.5
    let f = rig.dma(dev, None, 1 << 46, R).unwrap_err();
    assert_eq!(f.reason, Some(FaultReason::PassThroughBeyondHaw));
    // the interrupt range is not DMA-able
    let f = rig.dma(dev, None, 0xfee0_0000, W).unwrap_err();
    assert_eq!(f.reason, Some(FaultReason::InterruptAddress));
}

#[test]
fn second_stage_translates_iovas() {
    let rig = Rig::new(VtdConfig::default());
    let dev = rid(1, 0, 0);
    let dir = rig.attach_device(dev);
    let ss = ss_table(&rig);
    ss.map(0x10_0000, 0x3000_0000, PageSize::Size4K, Perm::RW)
        .unwrap();
    ss.map(0x4000_0000, 0x8000_0000, PageSize::Size1G, Perm::READ)
        .unwrap();
    rig.write_pasid(dir, 0, &pasid_entry(Pgtt::SecondStage, 7, ss.root(), 0));
    let t = rig.dma(dev, None, 0x10_0abc, W).unwrap();
    assert_eq!((t.addr, t.size, t.did), (0x3000_0abc, PageSize::Size4K, 7));
    let t = rig.dma(dev, None, 0x4123_4567, R).unwrap();
    assert_eq!((t.addr, t.size), (0x8123_4567, PageSize::Size1G));
    // the repeat hits the first-level cache and answers the same, rights included
    assert_eq!(rig.dma(dev, None, 0x4123_4567, R), Ok(t));
    assert_eq!(
        rig.dma(dev, None, 0x4000_0000, W).unwrap_err().reason,
        Some(FaultReason::WriteDenied)
    );
    assert_eq!(
        rig.dma(dev, None, 0x20_0000, R).unwrap_err().reason,
        Some(FaultReason::SsNotPresent)
    );
    assert_eq!(
        rig.dma(dev, None, 1 << 48, R).unwrap_err().reason,
        Some(FaultReason::SsInputBeyondWidth)
    );
}

#[test]
fn requests_without_pasid_to_the_interrupt_range_are_never_remapped() {
    // §3.15: even where the second stage maps 0xFEEx_xxxx, a request without PASID there is
    // an interrupt request, not a DMA: refused with 0x87 (no interrupt remapping modelled),
    // while the same IOVA under a PASID is translated like any other.
    let rig = Rig::new(VtdConfig::default());
    let dev = rid(1, 2, 0);
    let dir = rig.attach_device(dev);
    let ss = ss_table(&rig);
    ss.map(0xfee0_0000, 0x3000_0000, PageSize::Size4K, Perm::RW)
        .unwrap();
    rig.write_pasid(dir, 0, &pasid_entry(Pgtt::SecondStage, 7, ss.root(), 0));
    rig.write_pasid(dir, 5, &pasid_entry(Pgtt::SecondStage, 7, ss.root(), 0));
    for access in [R, W] {
        let f = rig.dma(dev, None, 0xfee0_0010, access).unwrap_err();
        assert_eq!(f.reason, Some(FaultReason::InterruptAddress));
    }
    let t = rig.dma(dev, Some(5), 0xfee0_0010, W).unwrap();
    assert_eq!(t.addr, 0x3000_0010);
    // just below the range: an ordinary second-stage miss
    assert_eq!(
        rig.dma(dev, None, 0xfedf_f000, R).unwrap_err().reason,
        Some(FaultReason::SsNotPresent)
    );
}

#[test]
fn an_iotlb_entry_of_the_rid_pasid_does_not_admit_interrupt_requests() {
    // Requests without PASID translate under RID_PASID (0 here), so they share IOTLB entries
    // with requests that carry PASID 0. A DMA with PASID 0 to 0xFEE0_0000 fills the IOTLB;
    // the same address without PASID is still an interrupt request (§3.15: reason 0x87),
    // for a DMA and for an ATS translation request alike.
    let rig = Rig::new(VtdConfig::default());
    let dev = rid(1, 3, 0);
    let dir = rig.attach_device(dev);
    let ss = ss_table(&rig);
    ss.map(0xfee0_0000, 0x3000_0000, PageSize::Size4K, Perm::RW)
        .unwrap();
    rig.write_pasid(dir, 0, &pasid_entry(Pgtt::SecondStage, 7, ss.root(), 0));
    let t = rig.dma(dev, Some(0), 0xfee0_0010, R).unwrap();
    assert_eq!(t.addr, 0x3000_0010);
    let f = rig.dma(dev, None, 0xfee0_0010, R).unwrap_err();
    assert_eq!(f.reason, Some(FaultReason::InterruptAddress));
    let ats = vsva_pcie::Request {
        rid: dev,
        pasid: None,
        addr: 0xfee0_0010,
        access: R,
        kind: RequestKind::Translation,
    };
    let f = rig.vtd.ats_translate(&ats).unwrap_err();
    assert_eq!(f.reason, Some(FaultReason::InterruptAddress));
}

#[test]
fn first_stage_privilege_rules() {
    let rig = Rig::new(VtdConfig::default());
    let dev = rid(0, 5, 0);
    let dir = rig.attach_device(dev);
    let fs = fs_table(&rig);
    fs.map(0x1000, 0x5000, PageSize::Size4K, Perm::RW).unwrap(); // supervisor page
    fs.map(0x2000, 0x6000, PageSize::Size4K, Perm::READ | Perm::USER)
        .unwrap();
    let mut e = pasid_entry(Pgtt::FirstStage, 1, 0, fs.root());
    rig.write_pasid(dir, 1, &e);
    let sup = R | Access::PRIV;
    assert_eq!(rig.dma(dev, Some(1), 0x1000, sup).unwrap().addr, 0x5000);
    assert_eq!(
        rig.dma(dev, Some(1), 0x1000, R).unwrap_err().reason,
        Some(FaultReason::UserSupervisor)
    );
    // WPE=0: supervisor writes ignore R/W; WPE=1: they honour it
    assert!(rig.dma(dev, Some(1), 0x2000, W | Access::PRIV).is_ok());
    e.q2.set_wpe(true);
    rig.write_pasid(dir, 1, &e);
    rig.flush();
    assert_eq!(
        rig.dma(dev, Some(1), 0x2000, W | Access::PRIV)
            .unwrap_err()
            .reason,
        Some(FaultReason::WriteDenied)
    );
    // SRE=0: privileged requests are refused at the PASID entry
    e.q2.set_sre(false);
    rig.write_pasid(dir, 1, &e);
    rig.flush();
    assert_eq!(
        rig.dma(dev, Some(1), 0x1000, sup).unwrap_err().reason,
        Some(FaultReason::PasidSreClear)
    );
    // execute requests are not supported by this configuration (ERE reserved)
    assert_eq!(
        rig.dma(dev, Some(1), 0x2000, R | Access::EXEC)
            .unwrap_err()
            .reason,
        Some(FaultReason::PasidEreClear)
    );
}

#[test]
fn nested_translation_walks_guest_tables_through_the_second_stage() {
    let rig = Rig::new(VtdConfig::default());
    // Guest RAM: 64 MiB at HPA 768 MiB; stage 2 maps GPA -> HPA with 4 KiB pages.
    let ram_hpa = 768 * MIB;
    let ram: Arc<dyn PhysMem> =
        Arc::new(PhysWindow::new(rig.mem.clone(), ram_hpa, 64 * MIB).unwrap());
    let ss = ss_table(&rig);
    let mut gpa = 0;
    while gpa < 64 * MIB {
        ss.map(gpa, ram_hpa + gpa, PageSize::Size4K, Perm::RW)
            .unwrap();
        gpa += 4096;
    }
    let guest_frames = Arc::new(FrameAllocator::new(ram, 8 * MIB, 64 * MIB));
    let s1 = PageTable::new(X86Paging::default(), guest_frames).unwrap();
    s1.map(0x7000_0000, 0x10_0000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    let dev = rid(2, 0, 0);
    let dir = rig.attach_device(dev);
    rig.write_pasid(dir, 5, &pasid_entry(Pgtt::Nested, 3, ss.root(), s1.root()));
    let t = rig.dma(dev, Some(5), 0x7000_0010, W).unwrap();
    assert_eq!(t.addr, ram_hpa + 0x10_0010);
    // the guest's first-stage PTE got A and D (a write into guest RAM)
    let leaf = s1.lookup(0x7000_0000).unwrap();
    assert_eq!(leaf.entry & 0x60, 0x60);
    // stage 2 read-only data page: write refused by the second stage
    ss.protect(0x10_0000, 4096, Perm::READ).unwrap();
    rig.flush();
    assert_eq!(
        rig.dma(dev, Some(5), 0x7000_0010, W).unwrap_err().reason,
        Some(FaultReason::WriteDenied)
    );
    // stage 2 hole under a first-stage table: SFS.7
    let pt_gpa = leaf.slot & !0xfff;
    let saved = ss.lookup(pt_gpa).unwrap();
    ss.unmap(pt_gpa, 4096).unwrap();
    rig.flush();
    assert_eq!(
        rig.dma(dev, Some(5), 0x7000_0010, R).unwrap_err().reason,
        Some(FaultReason::NestedEntryRead)
    );
    // read-only first-stage table page and an A/D update to make: SFS.8
    ss.map(pt_gpa, saved.pa, PageSize::Size4K, Perm::READ)
        .unwrap();
    ss.protect(0x10_0000, 4096, Perm::RW).unwrap();
    let slot_hpa = ram_hpa + leaf.slot;
    let e = rig.mem.load_u64(slot_hpa).unwrap();
    rig.mem.store_u64(slot_hpa, e & !0x60).unwrap();
    rig.flush();
    assert_eq!(
        rig.dma(dev, Some(5), 0x7000_0010, R).unwrap_err().reason,
        Some(FaultReason::NestedEntryWrite)
    );
}

#[test]
fn translated_requests_need_device_tlb_enable() {
    let rig = Rig::new(VtdConfig::default());
    let dev = rid(0, 6, 0);
    let dir = rig.attach_device(dev);
    rig.write_pasid(dir, 0, &pasid_entry(Pgtt::PassThrough, 1, 0, 0));
    let req = |kind| vsva_pcie::Request {
        rid: dev,
        pasid: None,
        addr: 0x1000,
        access: R,
        kind,
    };
    assert!(rig.vtd.translate(&req(RequestKind::Translated)).is_ok());
    // DTE off
    let ctx_at = rig.context_slot(dev);
    let lo = rig.mem.load_u64(ctx_at).unwrap();
    rig.mem.store_u64(ctx_at, lo & !(1 << 2)).unwrap();
    rig.flush();
    assert_eq!(
        rig.vtd
            .translate(&req(RequestKind::Translated))
            .unwrap_err()
            .reason,
        Some(FaultReason::ContextDteClear)
    );
    assert!(rig.vtd.translate(&req(RequestKind::Untranslated)).is_ok());
}

#[test]
fn translation_disabled_passes_requests_without_pasid_only() {
    let rig = Rig::new(VtdConfig::default());
    rig.w32(vsva_vtd::spec::registers::offset::GCMD, 0);
    let dev = rid(0, 7, 0);
    assert_eq!(rig.dma(dev, None, 0x1234, R).unwrap().addr, 0x1234);
    let f = rig.dma(dev, Some(1), 0x1234, R).unwrap_err();
    assert_eq!((f.reason, f.recorded), (None, false));
}
