//! Host SVA through the real pieces: the IOMMU core over the VT-d driver over the VT-d unit,
//! a process of the memory manager, and a device that uses ATS and PRI: translation request,
//! empty completion, page request, fault resolved by the memory manager, page group response,
//! retry, DMA with the translated address; then munmap invalidating the device's ATC.

mod common;

use std::sync::Arc;

use common::{Endpoints, MIB};
use vsva_iommu::{DeviceCaps, Iommu};
use vsva_mem::{Access, FrameAllocator, Pasid, PhysMem, PhysMemory, Rid, Va};
use vsva_mm::{MapFlags, MemoryManager, Prot};
use vsva_pcie::{PageRequest, PageRequestOutcome, Request, RequestKind, ResponseCode};
use vsva_pgtable::x86::X86Paging;
use vsva_vtd::Vtd;

struct Host {
    mem: Arc<PhysMemory>,
    vtd: Arc<Vtd>,
    iommu: Arc<Iommu>,
    endpoints: Arc<Endpoints>,
    mm: Arc<MemoryManager>,
}

/// The unit, its driver and the IOMMU core over them, with [`DEV`] added (20-bit PASIDs,
/// ATS, PRI), and a memory manager for processes.
fn host() -> Host {
    let (mem, vtd, endpoints, driver) = common::unit_and_driver(2 << 30);
    let iommu = Iommu::new(driver);
    let caps = DeviceCaps {
        pasid_bits: 20,
        ats: true,
        pri: true,
    };
    iommu.add_device(DEV, caps, 32).unwrap();
    let mm = MemoryManager::new(
        Arc::new(FrameAllocator::new(mem.clone(), 256 * MIB, 2 << 30)),
        X86Paging::default(),
    );
    Host {
        mem,
        vtd,
        iommu,
        endpoints,
        mm,
    }
}

const DEV: Rid = Rid::from_raw(0x18);

/// The device side of one access: ATS translation, and on an insufficient completion a page
/// request whose response is awaited (the host handles its queue in between), then retry.
fn device_access(h: &Host, pasid: Pasid, va: u64, write: bool) -> Result<u64, ResponseCode> {
    let access = if write {
        Access::READ | Access::WRITE
    } else {
        Access::READ
    };
    let req = Request {
        rid: DEV,
        pasid: Some(pasid),
        addr: va,
        access,
        kind: RequestKind::Translation,
    };
    for attempt in 0..2 {
        let c = h
            .vtd
            .ats_translate(&req)
            .map_err(|_| ResponseCode::InvalidRequest)?
            .completion;
        if c.read && (!write || c.write) {
            return Ok(c.addr | (va & c.size.offset_mask()));
        }
        assert_eq!(
            attempt, 0,
            "a successful page response makes the retry succeed"
        );
        let prgi = 5;
        let out = h.vtd.page_request(&PageRequest {
            rid: DEV,
            pasid: Some(pasid),
            addr: va & !0xfff,
            read: true,
            write,
            exec: false,
            privileged: false,
            last: true,
            prgi,
        });
        assert_eq!(out, PageRequestOutcome::Queued);
        // the host's page request interrupt handler
        assert_eq!(h.iommu.handle_page_requests(), 1);
        let (_, _, code, got) = h.endpoints.responses.lock().unwrap().pop().unwrap();
        assert_eq!(got, prgi);
        if code != ResponseCode::Success {
            return Err(code);
        }
    }
    unreachable!()
}

#[test]
fn a_device_faults_in_a_fresh_mmap_and_writes_into_the_process() {
    let h = host();
    let p = h.mm.spawn().unwrap();
    let bind = h.iommu.sva_bind(DEV, &p).unwrap();
    let va = p.mmap(None, 4 * 4096, Prot::RW, MapFlags::empty()).unwrap();
    // not mapped yet: the translation completion is empty; PRI brings the page in
    let hpa = device_access(&h, bind.pasid, va.raw() + 0x10, true).unwrap();
    // DMA with the translated address
    let t = h
        .vtd
        .translate(&Request {
            rid: DEV,
            pasid: Some(bind.pasid),
            addr: hpa,
            access: Access::WRITE,
            kind: RequestKind::Translated,
        })
        .unwrap();
    h.mem.write(t.addr, b"written by DMA").unwrap();
    let mut buf = [0u8; 14];
    p.read_bytes(Va::new(va.raw() + 0x10), &mut buf).unwrap();
    assert_eq!(&buf, b"written by DMA");
    // munmap: the device's ATC is told, then the page is gone for the device too
    h.endpoints.invalidations.lock().unwrap().clear();
    p.munmap(va, 4096).unwrap();
    let inv = h.endpoints.invalidations.lock().unwrap().clone();
    assert_eq!(inv.len(), 1);
    assert_eq!(
        (inv[0].addr, inv[0].len, inv[0].pasid),
        (va.raw(), 4096, Some(bind.pasid))
    );
    assert_eq!(
        device_access(&h, bind.pasid, va.raw(), false),
        Err(ResponseCode::InvalidRequest)
    );
    // a read-only mapping: the device cannot get write access
    let ro = p.mmap(None, 4096, Prot::READ, MapFlags::empty()).unwrap();
    assert!(device_access(&h, bind.pasid, ro.raw(), false).is_ok());
    assert_eq!(
        device_access(&h, bind.pasid, ro.raw(), true),
        Err(ResponseCode::InvalidRequest)
    );
    let s = h.iommu.stats();
    assert_eq!(s.responses_success, 2);
    assert_eq!(s.responses_invalid, 2);
}

#[test]
fn process_exit_blocks_the_device_and_the_system_keeps_working() {
    let h = host();
    let p = h.mm.spawn().unwrap();
    let bind = h.iommu.sva_bind(DEV, &p).unwrap();
    let va = p.mmap(None, 4096, Prot::RW, MapFlags::POPULATE).unwrap();
    assert!(device_access(&h, bind.pasid, va.raw(), true).is_ok());
    p.exit().unwrap();
    // the PASID is blocked: translation requests are refused
    assert!(device_access(&h, bind.pasid, va.raw(), false).is_err());
    // another process binds and works
    let q = h.mm.spawn().unwrap();
    let b2 = h.iommu.sva_bind(DEV, &q).unwrap();
    assert_ne!(b2.pasid, bind.pasid);
    let vb = q.mmap(None, 4096, Prot::RW, MapFlags::empty()).unwrap();
    assert!(device_access(&h, b2.pasid, vb.raw(), true).is_ok());
    h.iommu.sva_unbind(bind).unwrap();
}
