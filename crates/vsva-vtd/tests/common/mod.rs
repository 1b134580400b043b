//! A test rig: memory, a unit, and table writing as a driver would do it (through memory and
//! registers only).

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use vsva_mem::{Access, FrameAllocator, PageSize, Pasid, PhysMem, PhysMemory, Rid};
use vsva_pcie::MsiLog;
use vsva_pcie::{Request, RequestKind};
use vsva_vtd::spec::pasid::{self, PasidDirEntry, PasidEntry, PasidQ0, PasidQ1, PasidQ2, Pgtt};
use vsva_vtd::spec::registers::{Gcmd, offset};
use vsva_vtd::spec::root_context::{self, ContextEntry, ContextHi, ContextLo, RootHalf};
use vsva_vtd::{Blocked, Translated, Vtd, VtdConfig};

pub const MIB: u64 = 1 << 20;
pub const FEADDR: u32 = 0xfee0_1000;
pub const FEDATA: u32 = 0x41;
/// What the invalidation waits of [`Rig::submit`] write to their status address.
pub const WAIT_DATA: u32 = 0xd0e;

pub struct Rig {
    pub mem: Arc<PhysMemory>,
    pub frames: Arc<FrameAllocator>,
    pub vtd: Vtd,
    pub msi: Arc<MsiLog>,
    pub root: u64,
    /// The invalidation queue (one page of 256-bit descriptors) and where software is.
    pub iq: u64,
    pub iq_tail: AtomicU64,
    /// Where invalidation waits write their status.
    pub status: u64,
}

impl Rig {
    /// A unit with `cfg`, a zeroed root table latched in scalable mode, translation on, and
    /// the fault event unmasked.
    pub fn new(cfg: VtdConfig) -> Rig {
        let mem = Arc::new(PhysMemory::new(1 << 30).unwrap());
        Rig::over(cfg, mem.clone(), mem)
    }

    /// As [`Rig::new`], with the unit reading and writing `unit_mem` — `mem` itself, or a
    /// wrapper over it — while the rig writes tables and the queue to `mem` directly, as a
    /// driver's CPU stores would be. `mem` holds at least 512 MiB.
    pub fn over(cfg: VtdConfig, mem: Arc<PhysMemory>, unit_mem: Arc<dyn PhysMem>) -> Rig {
        let dynmem: Arc<dyn PhysMem> = mem.clone();
        let frames = Arc::new(FrameAllocator::new(dynmem, 16 * MIB, 512 * MIB));
        let msi = Arc::new(MsiLog::default());
        let vtd = Vtd::new(cfg, unit_mem, msi.clone());
        let root = frames.alloc_zeroed(PageSize::Size4K).unwrap();
        let iq = frames.alloc_zeroed(PageSize::Size4K).unwrap();
        let status = frames.alloc_zeroed(PageSize::Size4K).unwrap();
        let rig = Rig {
            mem,
            frames,
            vtd,
            msi,
            root,
            iq,
            iq_tail: AtomicU64::new(0),
            status,
        };
        rig.w64(offset::IQT, 0);
        rig.w64(offset::IQA, iq | 1 << 11);
        rig.w32(offset::GCMD, Gcmd::QIE.bits());
        rig.w64(offset::RTADDR, root | 1 << 10);
        rig.w32(offset::GCMD, (Gcmd::SRTP | Gcmd::QIE).bits());
        rig.w32(offset::FEDATA, FEDATA);
        rig.w32(offset::FEADDR, FEADDR);
        rig.w32(offset::FECTL, 0);
        rig.w32(offset::GCMD, (Gcmd::TE | Gcmd::QIE).bits());
        rig
    }

    /// Submits descriptors and a wait, as a driver does, and checks the wait completed.
    pub fn submit(&self, descs: &[[u64; 4]]) {
        assert_eq!(
            self.submit_status(descs),
            WAIT_DATA as u64,
            "invalidation wait completed"
        );
    }

    /// Submits `descs` and a status-writing wait as a driver does (descriptors in memory,
    /// then IQT); returns the status the wait left once the IQT write returned.
    pub fn submit_status(&self, descs: &[[u64; 4]]) -> u64 {
        let mut tail = self.iq_tail.load(Ordering::SeqCst);
        let wait = vsva_vtd::spec::descriptors::encode::wait(WAIT_DATA, self.status, false, false);
        self.mem.store_u64(self.status, 0).unwrap();
        for d in descs.iter().chain(std::iter::once(&wait)) {
            self.store(self.iq + tail, d);
            tail = (tail + 32) % 4096;
        }
        self.iq_tail.store(tail, Ordering::SeqCst);
        self.w64(offset::IQT, tail);
        self.mem.load_u64(self.status).unwrap()
    }

    /// Stores `qwords` at `at` and on.
    pub fn store(&self, at: u64, qwords: &[u64]) {
        for (i, q) in qwords.iter().enumerate() {
            self.mem.store_u64(at + 8 * i as u64, *q).unwrap();
        }
    }

    /// Global context-cache, PASID-cache and IOTLB invalidation: after changing tables.
    pub fn flush(&self) {
        self.submit(&[
            [1 | 1 << 4, 0, 0, 0],
            vsva_vtd::spec::descriptors::encode::pasid_cache(3, 0, 0),
            [2 | 1 << 4, 0, 0, 0],
        ]);
    }

    pub fn w32(&self, off: u64, v: u32) {
        self.vtd.mmio_write(off, 4, v as u64);
    }
    pub fn w64(&self, off: u64, v: u64) {
        self.vtd.mmio_write(off, 8, v);
    }
    pub fn r32(&self, off: u64) -> u32 {
        self.vtd.mmio_read(off, 4) as u32
    }
    pub fn r64(&self, off: u64) -> u64 {
        self.vtd.mmio_read(off, 8)
    }

    pub fn page(&self) -> u64 {
        self.frames.alloc_zeroed(PageSize::Size4K).unwrap()
    }

    /// Address of the context entry for `rid`, creating its context table.
    pub fn context_slot(&self, rid: Rid) -> u64 {
        let at = self.root + root_context::root_half_offset(rid.bus(), rid.devfn());
        let mut half = RootHalf::from_bits(self.mem.load_u64(at).unwrap());
        if !half.p() {
            half = RootHalf::pointing_to(self.page());
            self.mem.store_u64(at, half.into_bits()).unwrap();
        }
        half.table() + root_context::context_offset(rid.devfn())
    }

    pub fn write_context(&self, rid: Rid, e: &ContextEntry) -> u64 {
        let at = self.context_slot(rid);
        self.store(at, &e.to_qwords());
        at
    }

    /// A present context entry with PASIDs enabled (20-bit), ATS and PRI on, and a fresh
    /// PASID directory; returns the directory's address.
    pub fn attach_device(&self, rid: Rid) -> u64 {
        let dir = self.frames.alloc_zeroed(PageSize::Size2M).unwrap();
        let e = ContextEntry {
            lo: ContextLo::new()
                .with_p(true)
                .with_dte(true)
                .with_paside(true)
                .with_pre(true)
                .with_pdts(7)
                .with_pasiddirptr(dir >> 12),
            hi: ContextHi::new(),
            reserved: [0, 0],
        };
        self.write_context(rid, &e);
        dir
    }

    /// Address of `pasid`'s PASID-table entry under directory `dir`, creating its table.
    pub fn pasid_slot(&self, dir: u64, pasid: u32) -> u64 {
        let at = dir + pasid::dir_index(pasid) * 8;
        let mut d = PasidDirEntry::from_bits(self.mem.load_u64(at).unwrap());
        if !d.p() {
            d = PasidDirEntry::pointing_to(self.page());
            self.mem.store_u64(at, d.into_bits()).unwrap();
        }
        d.table() + pasid::table_index(pasid) * 64
    }

    pub fn write_pasid(&self, dir: u64, pasid: u32, e: &PasidEntry) -> u64 {
        let at = self.pasid_slot(dir, pasid);
        self.store(at, &e.to_qwords());
        at
    }

    pub fn dma(
        &self,
        rid: Rid,
        pasid: Option<u32>,
        addr: u64,
        access: Access,
    ) -> Result<Translated, Blocked> {
        self.vtd.translate(&Request {
            rid,
            pasid: pasid.map(|p| Pasid::new(p).unwrap()),
            addr,
            access,
            kind: RequestKind::Untranslated,
        })
    }
}

/// A PASID entry of `pgtt` with DID `did`, SS root `ss` (4-level), FS root `fs` (4-level),
/// walks snooped (PWSNP, as Linux sets it when ECAP.SMPWC is reported).
pub fn pasid_entry(pgtt: Pgtt, did: u16, ss: u64, fs: u64) -> PasidEntry {
    PasidEntry {
        q0: PasidQ0::new()
            .with_p(true)
            .with_aw(2)
            .with_pgtt(pgtt.field())
            .with_ssptptr(ss >> 12),
        q1: PasidQ1::new().with_did(did).with_pwsnp(true),
        q2: PasidQ2::new().with_sre(true).with_fsptptr(fs >> 12),
        rest: [0; 5],
    }
}

pub fn rid(bus: u8, dev: u8, func: u8) -> Rid {
    Rid::from_bdf(bus, dev, func).unwrap()
}

/// Endpoints that remember the ATS invalidations and page group responses reaching them.
pub type Endpoints = vsva_pcie::RecordingDevices;
