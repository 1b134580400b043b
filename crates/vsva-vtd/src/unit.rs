//! The remapping hardware unit: its register file (§11.4) and the translation entry point.
//!
//! Software reaches the unit only through [`Vtd::mmio_read`] / [`Vtd::mmio_write`] (aligned
//! 32- and 64-bit accesses, 64-bit registers also as two 32-bit halves, §11.2) and the
//! structures it points the unit at in memory. Devices reach it through [`Vtd::translate`].
//!
//! The state translation needs — translation enable and the latched root-table pointer — lives
//! in atomics, so translations take no lock. Registers sit behind one mutex that register
//! accesses and the invalidation queue take; the fault log behind another, the only one a DMA
//! may take (to record a fault). The queue holds the register lock while a device-TLB
//! invalidation waits for the device's DMA in flight (PCIe Base 6.0 §10.3.1), and that DMA
//! may fault: lock order registers, then fault log.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use vsva_mem::{Access, PageSize, PhysMem};
use vsva_pgtable::Perm;

use crate::backend::VirtualBackend;
use crate::cache::{Caches, NO_PASID};
use crate::config::VtdConfig;
use crate::fault_log::FaultLog;
use crate::interrupt::EventRegs;
use crate::inval_queue::{Stats, StatsSnapshot};
use crate::lookup::{Resolved, recheck, resolve};
use crate::microtlb::MicroTlb;
use crate::request::{Blocked, Request, RequestKind, Translated};
use crate::spec::fault::{FaultReason, FaultRecord, RequestType};
use crate::spec::registers::{Fsts, Gcmd, Rtaddr, offset};
use crate::translate::translate_cached;
use vsva_pcie::MsiSink;
use vsva_pcie::{Downstream, NoDevices};
use vsva_pgtable::in_flight::Walks;

/// VER_REG: this model implements the rev 4.x register interface (MAX 4, MIN 1).
pub const VERSION: u32 = 0x41;

/// Registers software programs, apart from the fault log.
#[derive(Debug, Default)]
pub(crate) struct Regs {
    /// GSTS (persistent status bits and RTPS).
    pub gsts: Gcmd,
    /// RTADDR as last written (takes effect on SRTP).
    pub rtaddr: u64,
    pub iqh: u64,
    pub iqt: u64,
    pub iqa: u64,
    /// IQA as latched when queued invalidation was enabled.
    pub iq_latched: u64,
    pub ics: u32,
    pub inv_event: EventRegs,
    pub iqercd: u64,
    pub pqh: u64,
    pub pqt: u64,
    pub pqa: u64,
    pub prs: u32,
    pub pr_event: EventRegs,
}

pub(crate) struct State {
    pub regs: Regs,
}

/// A VT-d remapping hardware unit.
pub struct Vtd {
    pub(crate) cfg: VtdConfig,
    cap: u64,
    ecap: u64,
    pub(crate) mem: Arc<dyn PhysMem>,
    pub(crate) irq: Arc<dyn MsiSink>,
    pub(crate) devices: Arc<dyn Downstream>,
    pub(crate) stats: Stats,
    pub(crate) caches: Caches,
    pub(crate) micro: MicroTlb,
    /// Walks in flight, which every cache purge waits for.
    pub(crate) walks: Walks,
    state: Mutex<State>,
    /// The fault log (after `state` in the lock order; see the module doc).
    faults: Mutex<FaultLog>,
    /// Its number of recording registers (fixed at reset).
    records: usize,
    /// GSTS.TES.
    pub(crate) enabled: AtomicBool,
    /// The RTADDR value latched by the last SRTP.
    pub(crate) root: AtomicU64,
    /// The VMM behind a virtual unit (none for a physical one).
    pub(crate) backend: OnceLock<Arc<dyn VirtualBackend>>,
}

impl std::fmt::Debug for Vtd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vtd").field("cfg", &self.cfg).finish()
    }
}

/// A write to one of the four registers of an interrupt source (control, data, address,
/// upper address at +0, +4, +8, +12; §11.4.7.2–5, §11.4.9.5–8, §11.4.11.5–8).
fn event_write(ev: &mut EventRegs, index: u64, v: u32, irq: &dyn MsiSink) {
    match index {
        0 => ev.write_control(v, irq),
        4 => ev.data = v & 0xffff,
        8 => ev.addr = v & !3,
        _ => ev.uaddr = v,
    }
}

/// Which 64-bit registers exist at `off` (8-byte aligned).
fn is_reg64(off: u64, records: usize) -> bool {
    matches!(
        off,
        offset::CAP
            | offset::ECAP
            | offset::RTADDR
            | offset::CCMD
            | offset::IQH
            | offset::IQT
            | offset::IQA
            | offset::IQERCD
            | offset::PQH
            | offset::PQT
            | offset::PQA
            | offset::IVA
            | offset::IOTLB
    ) || (off % 8 == 0 && (offset::FRCD0..offset::FRCD0 + 16 * records as u64).contains(&off))
}

impl Vtd {
    /// A unit with `cfg`'s capabilities, reading tables from and writing status to `mem`,
    /// raising interrupts through `irq`. It starts as after reset: translation disabled.
    pub fn new(cfg: VtdConfig, mem: Arc<dyn PhysMem>, irq: Arc<dyn MsiSink>) -> Vtd {
        Self::with_devices(cfg, mem, irq, Arc::new(NoDevices))
    }

    /// Like [`new`](Self::new), with the endpoints that receive device-TLB invalidations and
    /// page group responses.
    pub fn with_devices(
        cfg: VtdConfig,
        mem: Arc<dyn PhysMem>,
        irq: Arc<dyn MsiSink>,
        devices: Arc<dyn Downstream>,
    ) -> Vtd {
        Vtd {
            devices,
            stats: Stats::default(),
            caches: Caches::default(),
            micro: MicroTlb::default(),
            walks: Walks::default(),
            cap: cfg.cap().into_bits(),
            ecap: cfg.ecap().into_bits(),
            state: Mutex::new(State {
                regs: Regs::default(),
            }),
            faults: Mutex::new(FaultLog::new(cfg.fault_records.clamp(1, 256) as usize)),
            records: cfg.fault_records.clamp(1, 256) as usize,
            cfg,
            mem,
            irq,
            enabled: AtomicBool::new(false),
            root: AtomicU64::new(0),
            backend: OnceLock::new(),
        }
    }

    /// Makes this unit a virtual one: `backend` hears every cache invalidation the queue
    /// executes. Set once, before the guest enables the queue.
    ///
    /// # Errors
    /// The backend given, if one is already set.
    pub fn set_backend(
        &self,
        backend: Arc<dyn VirtualBackend>,
    ) -> Result<(), Arc<dyn VirtualBackend>> {
        self.backend.set(backend)
    }

    /// The configuration.
    pub fn config(&self) -> &VtdConfig {
        &self.cfg
    }

    /// Counters of what the unit did.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fault log; taken after [`lock`](Self::lock) when both are needed.
    pub(crate) fn faults(&self) -> MutexGuard<'_, FaultLog> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read32(&self, st: &State, off: u64) -> Option<u32> {
        Some(match off {
            offset::VER => VERSION,
            offset::GCMD => 0,
            offset::GSTS => st.regs.gsts.bits(),
            offset::FSTS => self.faults().fsts(),
            offset::FECTL => self.faults().event.control(),
            offset::FEDATA => self.faults().event.data,
            offset::FEADDR => self.faults().event.addr,
            offset::FEUADDR => self.faults().event.uaddr,
            offset::ICS => st.regs.ics,
            offset::IECTL => st.regs.inv_event.control(),
            offset::IEDATA => st.regs.inv_event.data,
            offset::IEADDR => st.regs.inv_event.addr,
            offset::IEUADDR => st.regs.inv_event.uaddr,
            offset::PRS => st.regs.prs,
            offset::PECTL => st.regs.pr_event.control(),
            offset::PEDATA => st.regs.pr_event.data,
            offset::PEADDR => st.regs.pr_event.addr,
            offset::PEUADDR => st.regs.pr_event.uaddr,
            _ => return None,
        })
    }

    fn read64(&self, st: &State, off: u64) -> u64 {
        let r = &st.regs;
        match off {
            offset::CAP => self.cap,
            offset::ECAP => self.ecap,
            offset::RTADDR => r.rtaddr,
            offset::IQH => r.iqh,
            offset::IQT => r.iqt,
            offset::IQA => r.iqa,
            offset::IQERCD => r.iqercd,
            offset::PQH => r.pqh,
            offset::PQT => r.pqt,
            offset::PQA => r.pqa,
            o if o >= offset::FRCD0 => {
                let i = ((o - offset::FRCD0) / 16) as usize;
                let rec = self.faults().records.get(i).copied().unwrap_or_default();
                if (o - offset::FRCD0) % 16 == 0 {
                    rec.0
                } else {
                    rec.1
                }
            }
            // CCMD, IVA, IOTLB: register-based invalidation is not offered (scalable mode
            // uses the invalidation queue); they read as zero.
            _ => 0,
        }
    }

    /// A register read of `size` (4 or 8) bytes at `off`. Misaligned, odd-sized and unknown
    /// accesses read as zero (§11.2: only aligned DWORD/QWORD accesses are defined).
    pub fn mmio_read(&self, off: u64, size: u8) -> u64 {
        let st = self.lock();
        let records = self.records;
        match size {
            4 if off % 4 == 0 => {
                if let Some(v) = self.read32(&st, off) {
                    v as u64
                } else if is_reg64(off, records) {
                    self.read64(&st, off) & 0xffff_ffff
                } else if off >= 4 && is_reg64(off - 4, records) {
                    self.read64(&st, off - 4) >> 32
                } else {
                    0
                }
            }
            8 if off % 8 == 0 && is_reg64(off, records) => self.read64(&st, off),
            _ => 0,
        }
    }

    /// A register write of `size` (4 or 8) bytes at `off`. Misaligned, odd-sized and unknown
    /// accesses are ignored; read-only fields keep their values.
    pub fn mmio_write(&self, off: u64, size: u8, value: u64) {
        let mut st = self.lock();
        let records = self.records;
        match size {
            4 if off % 4 == 0 => {
                let v = value as u32;
                if self.read32(&st, off).is_some() {
                    self.write32(&mut st, off, v);
                } else if is_reg64(off, records) {
                    self.write64(&mut st, off, v as u64, 0xffff_ffff);
                } else if off >= 4 && is_reg64(off - 4, records) {
                    self.write64(&mut st, off - 4, (v as u64) << 32, 0xffff_ffff << 32);
                }
            }
            8 if off % 8 == 0 && is_reg64(off, records) => {
                self.write64(&mut st, off, value, u64::MAX)
            }
            _ => tracing::debug!(off, size, "ignored VT-d register write"),
        }
    }

    fn write32(&self, st: &mut State, off: u64, v: u32) {
        let irq = self.irq.as_ref();
        match off {
            offset::GCMD => self.write_gcmd(st, Gcmd::from_bits_truncate(v)),
            offset::FSTS => {
                let resumed = {
                    let mut faults = self.faults();
                    let stopped = faults.status.intersects(Fsts::IQE | Fsts::ITE);
                    faults.write_fsts(v);
                    stopped && !faults.status.intersects(Fsts::IQE | Fsts::ITE)
                };
                // Clearing IQE/ITE lets the unit fetch again from IQH (§6.5.2.11).
                if resumed {
                    self.process_queue(st);
                }
            }
            offset::ICS => {
                st.regs.ics &= !(v & 1);
                if st.regs.ics == 0 {
                    st.regs.inv_event.pending = false;
                }
            }
            offset::PRS => {
                st.regs.prs &= !(v & 3);
                if st.regs.prs == 0 {
                    st.regs.pr_event.pending = false;
                }
            }
            offset::FECTL..=offset::FEUADDR => {
                event_write(&mut self.faults().event, off - offset::FECTL, v, irq)
            }
            offset::IECTL..=offset::IEUADDR => {
                event_write(&mut st.regs.inv_event, off - offset::IECTL, v, irq)
            }
            offset::PECTL..=offset::PEUADDR => {
                event_write(&mut st.regs.pr_event, off - offset::PECTL, v, irq)
            }
            _ => {}
        }
    }

    fn write64(&self, st: &mut State, off: u64, v: u64, mask: u64) {
        let merge = |old: u64, writable: u64| (old & !(mask & writable)) | (v & mask & writable);
        let r = &mut st.regs;
        match off {
            // RTADDR: RTA and TTM writable; bits 9:0 reserved.
            offset::RTADDR => r.rtaddr = merge(r.rtaddr, !0x3ff),
            // IQT (§11.4.9.2): QT is bits 18:4; bits 63:19 and 3:0 are reserved and a write
            // setting them is masked (RsvdZ), not an IQE. Bit 4 with 256-bit descriptors is
            // part of QT and gives IQE when the queue is processed (`process_queue`).
            offset::IQT => {
                r.iqt = merge(r.iqt, 0x7fff0);
                self.process_queue(st);
            }
            // IQA (§11.4.9.3): base, DW, QS. Bits 10:3 are reserved and bits 63:HAW of the
            // base not implemented: a write with them set is masked, not an error (only the
            // queue's use raises IQE: a tail beyond it, or DW = 0 in scalable mode).
            offset::IQA => r.iqa = merge(r.iqa, !0x7f8 & !(u64::MAX << self.cfg.haw.min(63))),
            // PQH: bits 18:5, written by software as it consumes page requests.
            offset::PQH => r.pqh = merge(r.pqh, 0x7ffe0),
            // PQT: hardware advances it; software resets it when setting the queue up.
            offset::PQT => r.pqt = merge(r.pqt, 0x7ffe0),
            // PQA: base, PQS.
            offset::PQA => r.pqa = merge(r.pqa, !0xff8),
            o if o >= offset::FRCD0 && (o - offset::FRCD0) % 16 == 8 => {
                let i = ((o - offset::FRCD0) / 16) as usize;
                self.faults().write_record_hi(i, v, mask);
            }
            _ => {}
        }
    }

    /// GCMD (§11.4.4): one command per write; the status follows at once. A TE change or an
    /// SRTP changes every device's translation: a virtual unit's backend hears it
    /// ([`VirtualBackend::translation_changed`]) once the unit's caches are empty and GSTS
    /// shows it, before the write returns — so when the guest sees the new status, the host
    /// behind it no longer translates by the old state either.
    fn write_gcmd(&self, st: &mut State, cmd: Gcmd) {
        let status = st.regs.gsts;
        let mut translation_changed = false;
        if cmd.contains(Gcmd::TE) != status.contains(Gcmd::TE) {
            let on = cmd.contains(Gcmd::TE);
            st.regs.gsts.set(Gcmd::TE, on);
            self.enabled.store(on, Ordering::Release);
            self.caches.clear();
            self.purged();
            translation_changed = true;
        }
        if cmd.contains(Gcmd::SRTP) {
            // Latching the root pointer implies a global context-cache and IOTLB
            // invalidation.
            self.root.store(st.regs.rtaddr, Ordering::Release);
            self.caches.clear();
            self.purged();
            st.regs.gsts |= Gcmd::SRTP;
            translation_changed = true;
        }
        if translation_changed {
            // The backend reads the guest's tables through accessors that take no register
            // lock, and does not program this unit (backend.rs).
            if let Some(backend) = self.backend.get() {
                backend.translation_changed(st.regs.gsts.contains(Gcmd::TE));
            }
        }
        if cmd.contains(Gcmd::QIE) != status.contains(Gcmd::QIE) {
            let on = cmd.contains(Gcmd::QIE);
            st.regs.gsts.set(Gcmd::QIE, on);
            if on {
                // The queue's base and size are latched when it is enabled.
                st.regs.iq_latched = st.regs.iqa;
                self.process_queue(st);
            } else {
                // IQH resets when queued invalidation is disabled (§11.4.9.1).
                st.regs.iqh = 0;
            }
        }
    }

    /// After the caches dropped entries: the first-level cache forgets everything too (after
    /// the caches behind it, so a lookup in between cannot refill it from a stale entry under
    /// the new generation), and walks begun before are waited for — when the invalidation
    /// completes, no walk still reads the old tables (see [`vsva_pgtable::in_flight`]).
    pub(crate) fn purged(&self) {
        self.micro.invalidate_all();
        self.walks.drain();
    }

    /// Translates a DMA request (untranslated, or translated by ATS) as the unit would, and
    /// records a fault where it refuses one.
    ///
    /// # Errors
    /// [`Blocked`] with the spec's reason.
    #[inline]
    pub fn translate(&self, req: &Request) -> Result<Translated, Blocked> {
        if let Some(t) = self.micro.lookup(req) {
            return Ok(t);
        }
        self.translate_miss(req)
    }

    /// Everything but a first-level hit (kept out of line so the hit path stays small).
    #[inline(never)]
    fn translate_miss(&self, req: &Request) -> Result<Translated, Blocked> {
        if !self.enabled.load(Ordering::Acquire) {
            // Translation disabled: requests without PASID pass untranslated (§3.2);
            // requests with PASID have nothing to be translated through.
            if req.pasid.is_some() {
                return Err(Blocked {
                    reason: None,
                    recorded: false,
                });
            }
            return Ok(Translated {
                addr: req.addr,
                size: PageSize::Size4K,
                perm: Perm::all(),
                did: 0,
            });
        }
        let generation = self.micro.generation();
        let t = self.translate_slow(req)?;
        self.micro.fill(req, generation, &t);
        Ok(t)
    }

    fn translate_slow(&self, req: &Request) -> Result<Translated, Blocked> {
        let _walk = self.walks.begin();
        let epoch = self.caches.epoch();
        let resolved = self.resolve_cached(req)?;
        if req.kind == RequestKind::Translated {
            // A translated request carries an address the unit already translated for a
            // device whose context allows ATS (DTE checked above): it passes as is.
            return Ok(Translated {
                addr: req.addr,
                size: PageSize::Size4K,
                perm: Perm::all(),
                did: resolved.entry.q1.did(),
            });
        }
        translate_cached(
            &self.cfg,
            self.mem.as_ref(),
            &self.caches,
            &resolved,
            req,
            epoch,
        )
        .map_err(|reason| self.fault(req, reason, resolved.fpd))
    }

    /// The request's context and PASID entries, from the cache or the tables (filling the
    /// cache), with the request-specific checks made.
    pub(crate) fn resolve_cached(&self, req: &Request) -> Result<Resolved, Blocked> {
        let key = (req.rid.raw(), req.pasid.map_or(NO_PASID, |p| p.raw()));
        let epoch = self.caches.epoch();
        if let Some(cached) = self.caches.entry(&key) {
            return recheck(&self.cfg, &cached, req).map_err(|f| self.fault(req, f.reason, f.fpd));
        }
        let rt = Rtaddr::from_bits(self.root.load(Ordering::Acquire));
        let resolved = resolve(&self.cfg, self.mem.as_ref(), rt.address(), rt.mode(), req)
            .map_err(|f| self.fault(req, f.reason, f.fpd))?;
        self.caches.fill_entry(key, resolved, epoch);
        Ok(resolved)
    }

    /// Records a fault unless FPD suppresses it, and builds the refusal.
    pub(crate) fn fault(&self, req: &Request, reason: FaultReason, fpd: bool) -> Blocked {
        if fpd && reason.is_qualified() {
            return Blocked {
                reason: Some(reason),
                recorded: false,
            };
        }
        let rec = FaultRecord {
            // §11.4.14: FI holds bits 63:12 of the address, with bits 63:MGAW reserved (0).
            addr: req.addr & !(u64::MAX << self.cfg.mgaw.min(63)),
            sid: req.rid.raw(),
            pasid: req.pasid.map(|p| p.raw()),
            privileged: req.access.is_priv(),
            execute: req.access.is_exec(),
            kind: match req.kind {
                RequestKind::Translation => RequestType::Translation,
                _ if req.access.contains(Access::WRITE) => RequestType::Write,
                _ => RequestType::Read,
            },
            at: match req.kind {
                RequestKind::Untranslated => 0,
                RequestKind::Translation => 1,
                RequestKind::Translated => 2,
            },
            reason,
        };
        let recorded = self.faults().record(&rec, self.irq.as_ref());
        Blocked {
            reason: Some(reason),
            recorded,
        }
    }
}

/// The unit's register window, as its driver reaches it.
impl vsva_pcie::Mmio for Vtd {
    fn read(&self, off: u64, size: u8) -> u64 {
        self.mmio_read(off, size)
    }
    fn write(&self, off: u64, size: u8, value: u64) {
        self.mmio_write(off, size, value)
    }
}
