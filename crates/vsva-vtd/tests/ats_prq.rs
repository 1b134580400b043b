//! ATS translation completions and the page request queue, through registers and memory.

mod common;

use std::sync::Arc;

use common::*;
use vsva_mem::{Access, PageSize, Pasid, PhysMem, Rid};
use vsva_pcie::MsiLog;
use vsva_pcie::{PageRequest, PageRequestOutcome, Request, RequestKind, ResponseCode};
use vsva_pgtable::x86::X86Paging;
use vsva_pgtable::{PageTable, Perm};
use vsva_vtd::spec::fault::FaultReason;
use vsva_vtd::spec::pasid::Pgtt;
use vsva_vtd::spec::registers::{PRS_PPR, PRS_PRO, offset};
use vsva_vtd::{AtsTranslated, Vtd, VtdConfig};

const PEADDR: u32 = 0xfee0_3000;
const PEDATA: u32 = 0x43;

fn ats(dev: Rid, pasid: u32, addr: u64, access: Access) -> Request {
    Request {
        rid: dev,
        pasid: Some(Pasid::new(pasid).unwrap()),
        addr,
        access,
        kind: RequestKind::Translation,
    }
}

#[test]
fn translation_completions_carry_rights_and_size() {
    let rig = Rig::new(VtdConfig::default());
    let dev = rid(0, 3, 0);
    let dir = rig.attach_device(dev);
    let fs = PageTable::new(
        X86Paging {
            smap: false,
            smep: false,
            ..X86Paging::default()
        },
        rig.frames.clone(),
    )
    .unwrap();
    fs.map(0x40_0000, 0x60_0000, PageSize::Size2M, Perm::USER_RW)
        .unwrap();
    fs.map(0x1000, 0x9000, PageSize::Size4K, Perm::READ | Perm::USER)
        .unwrap();
    rig.write_pasid(dir, 1, &pasid_entry(Pgtt::FirstStage, 4, 0, fs.root()));
    let w = Access::READ | Access::WRITE;
    let AtsTranslated { completion: c, did } =
        rig.vtd.ats_translate(&ats(dev, 1, 0x41_2345, w)).unwrap();
    assert_eq!(
        (c.addr, c.size, c.read, c.write),
        (0x60_0000, PageSize::Size2M, true, true)
    );
    assert_eq!(did, 4);
    // D was set by the write-intent translation
    assert_eq!(fs.lookup(0x40_0000).unwrap().entry & 0x40, 0x40);
    // read-only page asked for write: a read-only completion, no fault recorded
    let c = rig
        .vtd
        .ats_translate(&ats(dev, 1, 0x1000, w))
        .unwrap()
        .completion;
    assert_eq!((c.addr, c.read, c.write), (0x9000, true, false));
    // not present: an empty completion (the device will use PRI), no fault recorded
    let c = rig
        .vtd
        .ats_translate(&ats(dev, 1, 0x8000, Access::READ))
        .unwrap()
        .completion;
    assert!(c.is_empty());
    assert_eq!(
        rig.r32(offset::FSTS),
        0,
        "translation faults are not recorded for ATS"
    );
    // a structure fault is: PASID 2 has no entry
    let b = rig
        .vtd
        .ats_translate(&ats(dev, 2, 0x1000, Access::READ))
        .unwrap_err();
    assert_eq!(b.reason, Some(FaultReason::PasidNotPresent));
    assert!(b.recorded);
    // DTE clear: SCT.5
    let ctx = rig.context_slot(dev);
    let lo = rig.mem.load_u64(ctx).unwrap();
    rig.mem.store_u64(ctx, lo & !(1 << 2)).unwrap();
    rig.flush();
    let b = rig
        .vtd
        .ats_translate(&ats(dev, 1, 0x1000, Access::READ))
        .unwrap_err();
    assert_eq!(b.reason, Some(FaultReason::ContextDteClear));
}

struct Prq {
    rig: Rig,
    vtd: Vtd,
    responses: Arc<Endpoints>,
    msi: Arc<MsiLog>,
    base: u64,
}

/// A unit sharing the rig's memory and tables, with a one-page PRQ (128 descriptors).
fn prq() -> Prq {
    let rig = Rig::new(VtdConfig::default());
    let responses = Arc::new(Endpoints::default());
    let msi = Arc::new(MsiLog::default());
    let mem: Arc<dyn PhysMem> = rig.mem.clone();
    let vtd = Vtd::with_devices(VtdConfig::default(), mem, msi.clone(), responses.clone());
    let base = rig.page();
    vtd.mmio_write(offset::RTADDR, 8, rig.root | 1 << 10);
    vtd.mmio_write(offset::GCMD, 4, 1 << 30);
    vtd.mmio_write(offset::GCMD, 4, 1 << 31);
    vtd.mmio_write(offset::PQH, 8, 0);
    vtd.mmio_write(offset::PQT, 8, 0);
    vtd.mmio_write(offset::PQA, 8, base);
    vtd.mmio_write(offset::PEDATA, 4, PEDATA as u64);
    vtd.mmio_write(offset::PEADDR, 4, PEADDR as u64);
    vtd.mmio_write(offset::PECTL, 4, 0);
    Prq {
        rig,
        vtd,
        responses,
        msi,
        base,
    }
}

fn request(dev: Rid, prgi: u16, last: bool) -> PageRequest {
    PageRequest {
        rid: dev,
        pasid: Some(Pasid::new(7).unwrap()),
        addr: 0x7000_1000 + prgi as u64 * 0x1000,
        read: true,
        write: true,
        exec: false,
        privileged: false,
        last,
        prgi,
    }
}

#[test]
fn page_requests_are_queued_with_one_event() {
    let p = prq();
    let dev = rid(0, 3, 0);
    p.rig.attach_device(dev);
    assert_eq!(
        p.vtd.page_request(&request(dev, 5, false)),
        PageRequestOutcome::Queued
    );
    assert_eq!(
        p.vtd.page_request(&request(dev, 5, true)),
        PageRequestOutcome::Queued
    );
    assert_eq!(p.vtd.mmio_read(offset::PQT, 8), 64);
    assert_eq!(p.vtd.mmio_read(offset::PRS, 4) as u32, PRS_PPR);
    assert_eq!(
        p.msi.take(),
        vec![(PEADDR as u64, PEDATA)],
        "one event while PPR stays set"
    );
    let q: Vec<u64> = (0..4)
        .map(|i| p.rig.mem.load_u64(p.base + 32 + 8 * i).unwrap())
        .collect();
    let got = vsva_vtd::spec::page_request::decode([q[0], q[1], q[2], q[3]]).unwrap();
    assert_eq!(got, request(dev, 5, true));
    // software: clear PPR, consume, next request raises a new event
    p.vtd.mmio_write(offset::PRS, 4, PRS_PPR as u64);
    p.vtd.mmio_write(offset::PQH, 8, 64);
    assert_eq!(
        p.vtd.page_request(&request(dev, 6, true)),
        PageRequestOutcome::Queued
    );
    assert_eq!(p.msi.take().len(), 1);
}

#[test]
fn a_full_queue_overflows_and_last_requests_get_success() {
    let p = prq();
    let dev = rid(0, 3, 0);
    p.rig.attach_device(dev);
    // 128 slots, full at 127 entries
    for i in 0..127 {
        assert_eq!(
            p.vtd.page_request(&request(dev, i, false)),
            PageRequestOutcome::Queued
        );
    }
    assert_eq!(
        p.vtd.page_request(&request(dev, 200, false)),
        PageRequestOutcome::Dropped
    );
    assert_ne!(p.vtd.mmio_read(offset::PRS, 4) as u32 & PRS_PRO, 0);
    assert_eq!(
        p.vtd.page_request(&request(dev, 201, true)),
        PageRequestOutcome::AutoResponse(ResponseCode::Success)
    );
    assert_eq!(
        p.responses.responses.lock().unwrap().clone(),
        vec![(
            dev,
            Some(Pasid::new(7).unwrap()),
            ResponseCode::Success,
            201
        )]
    );
    // while PRO is set nothing is queued even after software consumed everything
    p.vtd
        .mmio_write(offset::PQH, 8, p.vtd.mmio_read(offset::PQT, 8));
    assert_eq!(
        p.vtd.page_request(&request(dev, 202, false)),
        PageRequestOutcome::Dropped
    );
    p.vtd.mmio_write(offset::PRS, 4, (PRS_PRO | PRS_PPR) as u64);
    assert_eq!(
        p.vtd.page_request(&request(dev, 203, false)),
        PageRequestOutcome::Queued
    );
}

#[test]
fn page_requests_from_a_device_without_pre_are_refused() {
    let p = prq();
    let dev = rid(0, 3, 0);
    p.rig.attach_device(dev);
    let ctx = p.rig.context_slot(dev);
    let lo = p.rig.mem.load_u64(ctx).unwrap();
    p.rig.mem.store_u64(ctx, lo & !(1 << 4)).unwrap();
    assert_eq!(
        p.vtd.page_request(&request(dev, 1, true)),
        PageRequestOutcome::AutoResponse(ResponseCode::InvalidRequest)
    );
    assert_eq!(p.vtd.mmio_read(offset::PQT, 8), 0);
    // the fault was recorded with SCT.8
    let hi = p.vtd.mmio_read(offset::FRCD0 + 8, 8);
    assert_eq!((hi >> 32) & 0xff, 0x47);
    // an unknown device: root entry not present, not the last request: silently dropped
    assert_eq!(
        p.vtd.page_request(&request(rid(9, 0, 0), 1, false)),
        PageRequestOutcome::Dropped
    );
}

#[test]
fn a_page_request_queue_at_the_top_of_the_space_fails_the_request_cleanly() {
    // PQA and PQT are the guest's to write: a base whose sum with the tail leaves the 64-bit
    // space must not wrap onto low memory.
    let rig = Rig::new(VtdConfig::default());
    let dev = rid(0, 3, 0);
    rig.attach_device(dev);
    rig.w64(offset::PQA, 0xffff_ffff_ffff_f007);
    rig.w64(offset::PQH, 0x20);
    rig.w64(offset::PQT, 0x7ffe0);
    let pr = PageRequest {
        rid: dev,
        pasid: None,
        addr: 0x1000,
        read: true,
        write: false,
        exec: false,
        privileged: false,
        last: true,
        prgi: 1,
    };
    let before = rig.mem.load_u64(0x7_ffe0).unwrap();
    let out = rig.vtd.page_request(&pr);
    assert!(!matches!(out, PageRequestOutcome::Queued), "{out:?}");
    assert_eq!(
        rig.mem.load_u64(0x7_ffe0).unwrap(),
        before,
        "nothing written low"
    );
}
