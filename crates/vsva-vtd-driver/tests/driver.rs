//! The driver programming the unit through registers and memory only, end to end: enable,
//! attach devices and PASIDs of each domain type, SVA on a process page table with the MMU
//! notifier driving IOTLB and device-TLB invalidation, a process's page table as the first
//! stage, page requests and responses, faults.

mod common;

use std::sync::Arc;

use common::{Endpoints, MIB};

use vsva_mem::{Access, FrameAllocator, PageSize, Pasid, PhysMem, PhysMemory, Rid, Va};
use vsva_mm::{InvalidateReason, MapFlags, MemoryManager, MmuNotifier, Pid, Prot};
use vsva_pcie::{PageRequest, PageRequestOutcome, Request, RequestKind, ResponseCode};
use vsva_pgtable::vtd_ss::VtdSecondStage;
use vsva_pgtable::x86::X86Paging;
use vsva_pgtable::{PageTable, Perm};
use vsva_vtd::Vtd;
use vsva_vtd::spec::fault::FaultReason;
use vsva_vtd::spec::registers::offset;
use vsva_vtd_driver::{DeviceOptions, Domain, VtdDriver};

const R: Access = Access::READ;
const W: Access = Access::READ.union(Access::WRITE);

struct Platform {
    mem: Arc<PhysMemory>,
    vtd: Arc<Vtd>,
    driver: Arc<VtdDriver>,
    endpoints: Arc<Endpoints>,
    /// Frames for processes and page tables (the driver has its own range).
    frames: Arc<FrameAllocator>,
}

fn platform() -> Platform {
    let (mem, vtd, endpoints, driver) = common::unit_and_driver(2 << 30);
    let frames = Arc::new(FrameAllocator::new(mem.clone(), 256 * MIB, 2 << 30));
    Platform {
        mem,
        vtd,
        driver,
        endpoints,
        frames,
    }
}

fn dma(
    vtd: &Vtd,
    rid: Rid,
    pasid: Option<u32>,
    addr: u64,
    access: Access,
) -> Result<u64, Option<FaultReason>> {
    vtd.translate(&Request {
        rid,
        pasid: pasid.map(|x| Pasid::new(x).unwrap()),
        addr,
        access,
        kind: RequestKind::Untranslated,
    })
    .map(|t| t.addr)
    .map_err(|b| b.reason)
}

fn dev() -> Rid {
    Rid::from_bdf(0, 3, 0).unwrap()
}

#[test]
fn enable_turns_on_translation_queued_invalidation_and_the_root_table() {
    let p = platform();
    let gsts = p.vtd.mmio_read(offset::GSTS, 4) as u32;
    assert_eq!(
        gsts & (1 << 31 | 1 << 30 | 1 << 26),
        1 << 31 | 1 << 30 | 1 << 26
    );
    assert_eq!(p.driver.pasid_limit(), 1 << 20);
    // nothing attached: DMA faults (root entry not present), and the driver reads the record
    assert_eq!(
        dma(&p.vtd, dev(), None, 0x1000, R),
        Err(Some(FaultReason::RootNotPresent))
    );
    let faults = p.driver.take_faults_recorded();
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0].rid, dev());
    assert_eq!(faults[0].reason(), Some(FaultReason::RootNotPresent));
    assert!(faults[0].read);
    assert_eq!(p.vtd.mmio_read(offset::FSTS, 4), 0);
}

#[test]
fn second_stage_and_pass_through_domains() {
    let p = platform();
    p.driver.attach_device(dev(), DeviceOptions::ALL).unwrap();
    let ss = PageTable::new(VtdSecondStage::four_level(), p.frames.clone()).unwrap();
    ss.map(0x20_0000, 0x4000_0000, PageSize::Size2M, Perm::RW)
        .unwrap();
    let dom = Domain::SecondStage {
        did: 1,
        root: ss.root(),
        levels: 4,
        ad: false,
    };
    p.driver
        .attach_pasid(dev(), Pasid::new(0).unwrap(), &dom)
        .unwrap();
    assert_eq!(dma(&p.vtd, dev(), None, 0x20_0123, R), Ok(0x4000_0123));
    // switch PASID 0 to pass-through: the driver's invalidations make it visible at once
    p.driver
        .attach_pasid(
            dev(),
            Pasid::new(0).unwrap(),
            &Domain::PassThrough { did: 2 },
        )
        .unwrap();
    assert_eq!(dma(&p.vtd, dev(), None, 0x10_0123, R), Ok(0x10_0123));
    // detach: nothing translates
    p.driver
        .detach_pasid(dev(), Pasid::new(0).unwrap())
        .unwrap();
    assert_eq!(
        dma(&p.vtd, dev(), None, 0x10_0123, R),
        Err(Some(FaultReason::PasidNotPresent))
    );
}

/// The SVA binding as an MMU-notifier listener: on invalidation, flush the range from the
/// IOTLB and the device's TLB through the driver.
struct SvaBinding {
    driver: Arc<VtdDriver>,
    did: u16,
    rid: Rid,
    pasid: Pasid,
}

impl MmuNotifier for SvaBinding {
    fn invalidate_range(&self, _: Pid, start: Va, end: Va, _: InvalidateReason) {
        self.driver
            .flush_range(
                self.did,
                self.rid,
                self.pasid,
                start.raw(),
                end.raw() - start.raw(),
            )
            .unwrap();
    }
    fn release(&self, _: Pid) {
        self.driver.detach_pasid(self.rid, self.pasid).unwrap();
    }
}

#[test]
fn sva_on_a_process_page_table_with_notifier_driven_invalidation() {
    let p = platform();
    let driver = p.driver.clone();
    let mm = MemoryManager::new(p.frames.clone(), X86Paging::default());
    let proc_ = mm.spawn().unwrap();
    let va = proc_
        .mmap(None, 4 * 4096, Prot::RW, MapFlags::POPULATE)
        .unwrap();
    proc_.write_bytes(va, b"device sees this").unwrap();
    driver.attach_device(dev(), DeviceOptions::ALL).unwrap();
    let pasid = Pasid::new(0x42).unwrap();
    let dom = Domain::FirstStage {
        did: 9,
        root: proc_.page_table_root().unwrap(),
        levels: 4,
        supervisor: false,
        write_protect: true,
    };
    driver.attach_pasid(dev(), pasid, &dom).unwrap();
    proc_.register_notifier(Arc::new(SvaBinding {
        driver: driver.clone(),
        did: 9,
        rid: dev(),
        pasid,
    }));
    let hpa = dma(&p.vtd, dev(), Some(0x42), va.raw(), R).unwrap();
    let mut buf = [0u8; 16];
    p.mem.read(hpa, &mut buf).unwrap();
    assert_eq!(&buf, b"device sees this");
    // munmap: the notifier flushes the IOTLB (PASID-selective page) and the device TLB
    p.endpoints.invalidations.lock().unwrap().clear();
    proc_.munmap(va, 4096).unwrap();
    let invs = p.endpoints.invalidations.lock().unwrap().clone();
    assert_eq!(invs.len(), 1);
    assert_eq!(
        (invs[0].sid, invs[0].pasid, invs[0].addr, invs[0].len),
        (dev(), Some(pasid), va.raw(), 4096)
    );
    assert_eq!(
        dma(&p.vtd, dev(), Some(0x42), va.raw(), R),
        Err(Some(FaultReason::FsNotPresent)),
        "the cached translation was invalidated"
    );
    // exit: release detaches the PASID
    proc_.exit().unwrap();
    assert_eq!(
        dma(&p.vtd, dev(), Some(0x42), va.raw() + 4096, R),
        Err(Some(FaultReason::PasidNotPresent))
    );
}

#[test]
fn page_requests_reach_the_driver_and_responses_reach_the_device() {
    let p = platform();
    p.driver.attach_device(dev(), DeviceOptions::ALL).unwrap();
    let pr = PageRequest {
        rid: dev(),
        pasid: Some(Pasid::new(3).unwrap()),
        addr: 0x7000_0000,
        read: true,
        write: true,
        exec: false,
        privileged: false,
        last: true,
        prgi: 17,
    };
    assert_eq!(p.vtd.page_request(&pr), PageRequestOutcome::Queued);
    let got = p.driver.drain_page_requests();
    assert_eq!(got, vec![pr]);
    assert!(p.driver.drain_page_requests().is_empty());
    p.driver
        .page_response(dev(), pr.pasid, pr.prgi, ResponseCode::Success)
        .unwrap();
    assert_eq!(
        p.endpoints.responses.lock().unwrap().clone(),
        vec![(dev(), pr.pasid, ResponseCode::Success, 17)]
    );
}

#[test]
fn nested_domain_through_the_driver() {
    let p = platform();
    p.driver.attach_device(dev(), DeviceOptions::PASID).unwrap();
    // guest RAM: 16 MiB at HPA 1 GiB, second stage 2 MiB pages
    let ram_hpa = 1 << 30;
    let ss = PageTable::new(VtdSecondStage::four_level(), p.frames.clone()).unwrap();
    for i in 0..8 {
        ss.map(
            i * (2 * MIB),
            ram_hpa + i * (2 * MIB),
            PageSize::Size2M,
            Perm::RW,
        )
        .unwrap();
    }
    let ram: Arc<dyn PhysMem> =
        Arc::new(vsva_mem::PhysWindow::new(p.mem.clone(), ram_hpa, 16 * MIB).unwrap());
    let gframes = Arc::new(FrameAllocator::new(ram, 4 * MIB, 16 * MIB));
    let s1 = PageTable::new(X86Paging::default(), gframes).unwrap();
    s1.map(0x4000, 0x2000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    let dom = Domain::Nested {
        did: 3,
        fs_root: s1.root(),
        fs_levels: 4,
        ss_root: ss.root(),
        ss_levels: 4,
        supervisor: false,
    };
    p.driver
        .attach_pasid(dev(), Pasid::new(1).unwrap(), &dom)
        .unwrap();
    assert_eq!(dma(&p.vtd, dev(), Some(1), 0x4010, R), Ok(ram_hpa + 0x2010));
}

#[test]
fn a_whole_space_flush_reaches_the_whole_device_tlb() {
    let p = platform();
    let dev = Rid::from_bdf(0, 3, 0).unwrap();
    p.driver
        .attach_device(
            dev,
            DeviceOptions {
                pri: false,
                ..DeviceOptions::ALL
            },
        )
        .unwrap();
    let pasid = Pasid::new(5).unwrap();
    p.driver
        .attach_pasid(dev, pasid, &Domain::PassThrough { did: 2 })
        .unwrap();
    p.endpoints.invalidations.lock().unwrap().clear();
    p.driver.flush_range(2, dev, pasid, 0, u64::MAX).unwrap();
    let sent = p.endpoints.invalidations.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].addr, sent[0].len), (0, u64::MAX), "{sent:?}");
}

#[test]
fn every_recorded_code_is_named_even_exec_without_ere() {
    let p = platform();
    let dev = Rid::from_bdf(0, 3, 0).unwrap();
    p.driver.attach_device(dev, DeviceOptions::PASID).unwrap();
    p.driver
        .attach_pasid(dev, Pasid::new(0).unwrap(), &Domain::PassThrough { did: 2 })
        .unwrap();
    assert!(dma(&p.vtd, dev, None, 0x1000, Access::READ | Access::EXEC).is_err());
    let f = p.driver.take_faults_recorded();
    assert_eq!(f[0].reason, 0x5c);
    assert_eq!(f[0].reason(), Some(FaultReason::PasidEreClear));
}

#[test]
fn first_stage_shares_a_process_page_table() {
    // SVA: the PASID entry's first-stage pointer is a process's CR3.
    let p = platform();
    let mm = MemoryManager::new(p.frames.clone(), X86Paging::default());
    let proc_ = mm.spawn().unwrap();
    let va = proc_
        .mmap(None, 4 * 4096, Prot::RW, MapFlags::empty())
        .unwrap();
    proc_.write_bytes(va, b"shared with the device").unwrap();
    let ro = proc_
        .mmap(None, 4096, Prot::READ, MapFlags::POPULATE)
        .unwrap();

    let dev = Rid::from_bdf(0, 4, 0).unwrap();
    p.driver.attach_device(dev, DeviceOptions::ALL).unwrap();
    let pasid = 0x1234;
    let dom = Domain::FirstStage {
        did: 9,
        root: proc_.page_table_root().unwrap(),
        levels: 4,
        supervisor: true,
        write_protect: false,
    };
    p.driver
        .attach_pasid(dev, Pasid::new(pasid).unwrap(), &dom)
        .unwrap();
    let hpa = dma(&p.vtd, dev, Some(pasid), va.raw() + 3, R).unwrap();
    let mut buf = [0u8; 19];
    p.mem.read(hpa, &mut buf).unwrap();
    assert_eq!(&buf, b"red with the device");
    // untouched page: not present (the device must ask for it with PRI)
    let f = dma(&p.vtd, dev, Some(pasid), va.raw() + 4096, R).unwrap_err();
    assert_eq!(f, Some(FaultReason::FsNotPresent));
    // read-only mapping
    let f = dma(&p.vtd, dev, Some(pasid), ro.raw(), W).unwrap_err();
    assert_eq!(f, Some(FaultReason::WriteDenied));
    // unmapped: not present; non-canonical: SGN.1
    let f = dma(&p.vtd, dev, Some(pasid), 1 << 47, R).unwrap_err();
    assert_eq!(f, Some(FaultReason::NonCanonical));
    // the device's write set Dirty in the process's PTE
    dma(&p.vtd, dev, Some(pasid), va.raw(), W).unwrap();
    assert_ne!(proc_.leaf(va).unwrap().entry & 0x40, 0);
}
