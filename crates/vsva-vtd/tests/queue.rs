//! The invalidation queue through registers and memory: waits, errors, device-TLB
//! invalidations reaching devices, page group responses.

mod common;

use std::sync::Arc;

use common::*;
use vsva_mem::{Pasid, PhysMem, PhysMemory, Rid};
use vsva_pcie::MsiLog;
use vsva_pcie::{AtsInvalidation, ResponseCode};
use vsva_vtd::spec::descriptors::encode;
use vsva_vtd::spec::registers::{Fsts, Gcmd, offset};
use vsva_vtd::{Vtd, VtdConfig};

const IEADDR: u32 = 0xfee0_2000;
const IEDATA: u32 = 0x42;

struct Q {
    vtd: Vtd,
    mem: Arc<PhysMemory>,
    msi: Arc<MsiLog>,
    dev: Arc<Endpoints>,
    base: u64,
    tail: u64,
}

impl Q {
    /// Queued invalidation on, 256-bit descriptors, one 4 KiB page (128 descriptors).
    fn new() -> Q {
        let mem = Arc::new(PhysMemory::new(64 * MIB).unwrap());
        let msi = Arc::new(MsiLog::default());
        let dev = Arc::new(Endpoints::answering(vec![0x18]));
        let dynmem: Arc<dyn PhysMem> = mem.clone();
        let vtd = Vtd::with_devices(VtdConfig::default(), dynmem, msi.clone(), dev.clone());
        let base = 0x10_0000;
        vtd.mmio_write(offset::IQT, 8, 0);
        vtd.mmio_write(offset::IQA, 8, base | 1 << 11);
        vtd.mmio_write(offset::GCMD, 4, Gcmd::QIE.bits() as u64);
        for (o, v) in [
            (offset::IEDATA, IEDATA),
            (offset::IEADDR, IEADDR),
            (offset::IECTL, 0),
            (offset::FEDATA, FEDATA),
            (offset::FEADDR, FEADDR),
            (offset::FECTL, 0),
        ] {
            vtd.mmio_write(o, 4, v as u64);
        }
        Q {
            vtd,
            mem,
            msi,
            dev,
            base,
            tail: 0,
        }
    }

    /// Writes descriptors at the tail and moves IQT past them.
    fn submit(&mut self, descs: &[[u64; 4]]) {
        for d in descs {
            for (i, w) in d.iter().enumerate() {
                self.mem
                    .store_u64(self.base + self.tail + 8 * i as u64, *w)
                    .unwrap();
            }
            self.tail = (self.tail + 32) % 4096;
        }
        self.vtd.mmio_write(offset::IQT, 8, self.tail);
    }

    fn iqh(&self) -> u64 {
        self.vtd.mmio_read(offset::IQH, 8)
    }
    fn fsts(&self) -> u32 {
        self.vtd.mmio_read(offset::FSTS, 4) as u32
    }
    fn iqei(&self) -> u64 {
        self.vtd.mmio_read(offset::IQERCD, 8) & 0xf
    }
}

#[test]
fn enabling_sets_qies_and_waits_write_status() {
    let mut q = Q::new();
    assert_ne!(
        q.vtd.mmio_read(offset::GSTS, 4) as u32 & Gcmd::QIE.bits(),
        0
    );
    let status = 0x20_0000;
    q.submit(&[encode::wait(2, status, false, false)]);
    assert_eq!(q.mem.load_u64(status).unwrap() as u32, 2, "QI_DONE written");
    assert_eq!(q.iqh(), 32);
    // wrap around the ring
    for i in 0..200u32 {
        q.submit(&[encode::wait(i, status, false, false)]);
    }
    assert_eq!(q.mem.load_u64(status).unwrap() as u32, 199);
    assert_eq!(q.iqh(), q.tail);
    assert_eq!(q.vtd.stats().waits, 201);
    // disabling resets the head
    q.vtd.mmio_write(offset::GCMD, 4, 0);
    assert_eq!(q.iqh(), 0);
}

#[test]
fn wait_with_interrupt_sets_iwc_once() {
    let mut q = Q::new();
    q.submit(&[encode::wait(1, 0x20_0000, true, true)]);
    assert_eq!(q.vtd.mmio_read(offset::ICS, 4), 1);
    assert_eq!(q.msi.take(), vec![(IEADDR as u64, IEDATA)]);
    // IWC still set: no new interrupt
    q.submit(&[encode::wait(1, 0x20_0000, true, false)]);
    assert!(q.msi.take().is_empty());
    q.vtd.mmio_write(offset::ICS, 4, 1);
    q.submit(&[encode::wait(1, 0x20_0000, true, false)]);
    assert_eq!(q.msi.take().len(), 1);
}

#[test]
fn an_invalid_descriptor_stops_the_queue_at_its_slot() {
    let mut q = Q::new();
    let status = 0x20_0000;
    q.submit(&[
        encode::wait(1, status, false, false),
        [4, 0, 0, 0], // interrupt entry cache: no interrupt remapping here
        encode::wait(7, status, false, false),
    ]);
    assert_eq!(q.iqh(), 32, "IQH points at the bad descriptor");
    assert_ne!(q.fsts() & Fsts::IQE.bits(), 0);
    assert_eq!(q.iqei(), 3, "invalid descriptor type");
    assert_eq!(
        q.mem.load_u64(status).unwrap() as u32,
        1,
        "nothing after it ran"
    );
    assert_eq!(q.msi.take(), vec![(FEADDR as u64, FEDATA)]);
    // tail writes do not fetch while IQE is set
    q.submit(&[encode::wait(9, status, false, false)]);
    assert_eq!(q.iqh(), 32);
    // software replaces the bad slot (as Linux's qi_check_fault does) and clears IQE
    let fixed = encode::wait(8, status, false, false);
    for (i, w) in fixed.iter().enumerate() {
        q.mem.store_u64(q.base + 32 + 8 * i as u64, *w).unwrap();
    }
    q.vtd.mmio_write(offset::FSTS, 4, Fsts::IQE.bits() as u64);
    assert_eq!(q.iqh(), q.tail);
    assert_eq!(q.mem.load_u64(status).unwrap() as u32, 9);
    // a reserved bit: IQEI 4
    q.submit(&[[5 | 1 << 5 | 1 << 8, status, 0, 0]]);
    assert_eq!(q.iqei(), 4);
}

#[test]
fn bad_tails_and_widths() {
    let mut q = Q::new();
    // misaligned for 256-bit descriptors
    q.vtd.mmio_write(offset::IQT, 8, 0x10);
    assert_eq!((q.fsts() & Fsts::IQE.bits() != 0, q.iqei()), (true, 6));
    q.vtd.mmio_write(offset::IQT, 8, 0);
    q.vtd.mmio_write(offset::FSTS, 4, Fsts::IQE.bits() as u64);
    // beyond a one-page queue
    q.vtd.mmio_write(offset::IQT, 8, 0x2000);
    assert_eq!(q.iqei(), 1);
    q.vtd.mmio_write(offset::IQT, 8, 0);
    q.vtd.mmio_write(offset::FSTS, 4, Fsts::IQE.bits() as u64);
    assert_eq!(q.fsts(), 0);
    // 128-bit descriptors are not valid in scalable mode
    q.vtd.mmio_write(offset::GCMD, 4, 0);
    q.vtd.mmio_write(offset::IQA, 8, q.base);
    q.vtd.mmio_write(offset::GCMD, 4, Gcmd::QIE.bits() as u64);
    q.tail = 0;
    q.submit(&[encode::wait(1, 0x20_0000, false, false)]);
    assert_eq!(q.iqei(), 5);
    // a queue outside memory
    let mut r = Q::new();
    r.vtd.mmio_write(offset::GCMD, 4, 0);
    r.vtd.mmio_write(offset::IQA, 8, (1 << 40) | 1 << 11);
    r.vtd.mmio_write(offset::GCMD, 4, Gcmd::QIE.bits() as u64);
    r.base = 0;
    r.tail = 0;
    r.vtd.mmio_write(offset::IQT, 8, 32);
    assert_eq!(r.iqei(), 2, "fetch error");
    // a queue based at the top of the 64-bit space (IQA is the guest's to write): a fetch
    // error, not an address that wraps around
    let t = Q::new();
    t.vtd.mmio_write(offset::GCMD, 4, 0);
    t.vtd
        .mmio_write(offset::IQA, 8, 0xffff_ffff_ffff_f000 | 7 | 1 << 11);
    t.vtd.mmio_write(offset::GCMD, 4, Gcmd::QIE.bits() as u64);
    t.vtd.mmio_write(offset::IQT, 8, 0x7_ffe0);
    assert_eq!((t.fsts() & Fsts::IQE.bits() != 0, t.iqei()), (true, 2));
    assert_eq!(t.iqh(), 0, "IQH stays on the descriptor it could not fetch");
}

#[test]
fn device_tlb_invalidations_reach_the_device_or_time_out() {
    let mut q = Q::new();
    let status = 0x20_0000;
    // PASID-based device-TLB invalidation of 16 KiB at 0x1234_4000 for 00:03.0, PASID 5
    let pdt = [8u64 | 0x18 << 16 | 5 << 32, 0x1234_5000 | 1 << 11, 0, 0];
    q.submit(&[pdt, encode::wait(1, status, false, false)]);
    let got = q.dev.invalidations.lock().unwrap().clone();
    assert_eq!(
        got,
        vec![AtsInvalidation {
            sid: Rid::from_raw(0x18),
            pasid: Some(Pasid::new(5).unwrap()),
            addr: 0x1234_4000,
            len: 16384,
            global: false
        }]
    );
    assert_eq!(q.mem.load_u64(status).unwrap() as u32, 1);
    // a device that does not answer: ITE, ITESID, the wait after it does not complete
    let nobody = [3u64 | 0x99 << 32, 0x5000, 0, 0];
    q.submit(&[nobody, encode::wait(2, status, false, false)]);
    assert_ne!(q.fsts() & Fsts::ITE.bits(), 0);
    assert_eq!((q.vtd.mmio_read(offset::IQERCD, 8) >> 32) & 0xffff, 0x99);
    assert_eq!(q.mem.load_u64(status).unwrap() as u32, 1);
    assert_eq!(q.iqh(), 64);
    assert_eq!(q.vtd.stats().devtlb_invalidations, 1);
}

#[test]
fn page_group_responses_reach_the_device() {
    let mut q = Q::new();
    q.submit(&[
        encode::page_group_response(0x18, Some(0x42), 0, 0x1ab),
        encode::page_group_response(0x20, None, 1, 3),
    ]);
    let got = q.dev.responses.lock().unwrap().clone();
    assert_eq!(
        got,
        vec![
            (
                Rid::from_raw(0x18),
                Some(Pasid::new(0x42).unwrap()),
                ResponseCode::Success,
                0x1ab
            ),
            (Rid::from_raw(0x20), None, ResponseCode::InvalidRequest, 3),
        ]
    );
    assert_eq!(q.vtd.stats().page_group_responses, 2);
}
