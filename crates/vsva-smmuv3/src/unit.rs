//! The SMMU: its register file (IHI 0070 §6) and the configuration lookup entry point
//! (translation is in `translate`).
//!
//! Software reaches the SMMU only through [`Smmuv3::mmio_read`] / [`Smmuv3::mmio_write`]
//! (aligned 32- and 64-bit accesses; 64-bit registers also as two 32-bit halves, §6.2) and the
//! tables and queues it points the SMMU at in memory. Transactions reach it through
//! [`Smmuv3::stream_config`].
//!
//! Locks, in the order they are taken: `state` (the registers software programs and the
//! command queue; every register access takes it first), `events` (the event queue) or `pri`
//! (the PRI queue), `errors` (GERROR/GERRORN, IRQ_CTRL, the GERROR MSI). The configuration cache's lock and the
//! `lookup` snapshot of the registers a lookup needs (SMMUEN, GBPA.ABORT, STRTAB_BASE/_CFG,
//! CR2.RECINVSID) are leaves. A lookup takes neither `state` nor the command queue: the
//! command queue holds `state` while an ATS invalidation waits for a Function's DMA in
//! flight (PCIe Base 6.0 §10.3.1), and that DMA must still be able to resolve its stream and
//! record its faults.
//!
//! Enables complete at once: CR0ACK and IRQ_CTRLACK always equal CR0 and IRQ_CTRL, and a
//! GBPA update is done when the write returns (Update reads 0).

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};

use vsva_mem::PhysMem;
use vsva_pcie::{Downstream, NoDevices};

use crate::cache::{CacheStats, ConfigCache};
use crate::config::{AIDR, Smmuv3Config};
use crate::counter::Striped;
use crate::hooks::{NoTranslation, TranslationHooks};
use crate::interrupt::IrqCfg;
use crate::lookup::{StrtabRegs, resolve};
use crate::microtlb::MicroTlb;
use crate::queue::{Queue, index_bits};
use crate::spec::registers::{
    Cr0, Cr2, Gbpa, Gerror, IrqCtrl, MSI_CFG2_MASK, QueueBase, StrtabBase, StrtabBaseCfg, offset,
    queue,
};
use crate::stall::Stalls;
use crate::stream::{ConfigFault, StreamConfig};
use crate::tlb::{Tlb, TlbStats};
use crate::virt::VirtualBackend;
use vsva_pcie::MsiSink;
use vsva_pgtable::in_flight::Walks;

/// Counters of what the SMMU did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Smmuv3Stats {
    /// Commands consumed.
    pub commands: u64,
    /// CMD_SYNCs completed.
    pub syncs: u64,
    /// Wake-up events sent (CMD_SYNC with CS = SEV).
    pub sev: u64,
    /// Event records written.
    pub events: u64,
    /// Events lost: queue disabled, full, or its write aborted.
    pub events_lost: u64,
    /// ATS Invalidate Requests sent.
    pub atc_invalidations: u64,
    /// PRG Responses sent by CMD_PRI_RESP.
    pub page_responses: u64,
    /// Page requests written to the PRI queue.
    pub page_requests: u64,
    /// PRG Responses the SMMU sent itself for page requests it could not queue.
    pub pri_auto_responses: u64,
    /// The configuration cache.
    pub cache: CacheStats,
    /// The TLB.
    pub tlb: TlbStats,
    /// Transactions stalled now.
    pub stalled: u64,
}

/// The registers software programs and the command queue.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// CR0 (= CR0ACK).
    pub cr0: Cr0,
    pub cr1: u32,
    pub cr2: Cr2,
    pub gbpa: u32,
    pub strtab: StrtabRegs,
    pub cmdq: Queue,
    /// An ATC invalidation failed since the last CMD_SYNC (CERROR_ATC_INV_SYNC).
    pub atc_inv_failed: bool,
    /// Command-side counters.
    pub stats: Smmuv3Stats,
}

/// The event queue.
#[derive(Debug, Default)]
pub(crate) struct Events {
    /// CR0.EVTQEN.
    pub enabled: bool,
    pub q: Queue,
    pub irq: IrqCfg,
    pub written: u64,
    pub lost: u64,
}

/// The PRI queue.
#[derive(Debug, Default)]
pub(crate) struct Pri {
    /// CR0.PRIQEN as written (guards PRIQ_BASE and PRIQ_PROD).
    pub priqen: bool,
    /// CR0.SMMUEN (SMMUEN = 0 makes the effective PRIQEN 0, §8.2).
    pub smmuen: bool,
    pub q: Queue,
    pub irq: IrqCfg,
    pub written: u64,
    pub auto_responses: u64,
}

/// Global errors and interrupt enables.
#[derive(Debug, Default)]
pub(crate) struct Errors {
    /// IRQ_CTRL (= IRQ_CTRLACK).
    pub irq_ctrl: IrqCtrl,
    pub gerror: u32,
    pub gerrorn: u32,
    pub gerror_irq: IrqCfg,
}

impl Errors {
    /// Is the global error `bit` active (GERROR and GERRORN differ)?
    pub fn active(&self, bit: Gerror) -> bool {
        (self.gerror ^ self.gerrorn) & bit.bits() != 0
    }
}

/// What a lookup reads of the registers, published by register writes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LookupRegs {
    pub smmuen: bool,
    pub abort: bool,
    pub strtab: StrtabRegs,
    recinvsid: bool,
    atschk: bool,
}

/// An Arm SMMUv3.
pub struct Smmuv3 {
    pub(crate) cfg: Smmuv3Config,
    idr: [u32; 6],
    pub(crate) mem: Arc<dyn PhysMem>,
    pub(crate) irq: Arc<dyn MsiSink>,
    pub(crate) devices: Arc<dyn Downstream>,
    pub(crate) hooks: Arc<dyn TranslationHooks>,
    /// The VMM behind a virtual unit (`virt`).
    pub(crate) backend: OnceLock<Arc<dyn VirtualBackend>>,
    state: Mutex<State>,
    events: Mutex<Events>,
    pri: Mutex<Pri>,
    errors: Mutex<Errors>,
    lookup: RwLock<LookupRegs>,
    /// SMMUEN (bit 0) and GBPA.ABORT (bit 1) of `lookup`, for the TLB-hit path, which
    /// takes no lock but a cache shard's.
    enabled: AtomicU8,
    /// The invalidation epoch of the configuration cache, the TLB and `micro`: advanced
    /// before and after every purge of either and around every `publish`.
    pub(crate) epoch: Arc<AtomicU64>,
    pub(crate) cache: ConfigCache,
    pub(crate) tlb: Tlb,
    /// The first-level cache of complete translation results.
    pub(crate) micro: MicroTlb,
    /// Translations answered by `micro` (each a configuration cache hit and a TLB hit).
    pub(crate) micro_hits: Striped,
    pub(crate) walks: Walks,
    pub(crate) stalls: Stalls,
}

impl std::fmt::Debug for Smmuv3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smmuv3").field("cfg", &self.cfg).finish()
    }
}

const REG64: [u64; 7] = [
    offset::GERROR_IRQ_CFG0,
    offset::STRTAB_BASE,
    offset::CMDQ_BASE,
    offset::EVENTQ_BASE,
    offset::EVENTQ_IRQ_CFG0,
    offset::PRIQ_BASE,
    offset::PRIQ_IRQ_CFG0,
];

impl Smmuv3 {
    /// An SMMU with `cfg`'s capabilities (clamped to what the ID registers can say), reading
    /// tables and queues from and writing events to `mem`, raising interrupts through `irq`.
    /// It starts as after reset: disabled, GBPA.ABORT as configured, no Functions behind it
    /// and no translation layer.
    pub fn new(cfg: Smmuv3Config, mem: Arc<dyn PhysMem>, irq: Arc<dyn MsiSink>) -> Smmuv3 {
        let cfg = cfg.clamped();
        let idr = cfg.idrs();
        let gbpa = Gbpa::new()
            .with_shcfg(1)
            .with_abort(cfg.gbpa_abort_at_reset);
        let epoch = Arc::new(AtomicU64::new(0));
        Smmuv3 {
            cfg,
            idr,
            mem,
            irq,
            devices: Arc::new(NoDevices),
            hooks: Arc::new(NoTranslation),
            backend: OnceLock::new(),
            state: Mutex::new(State {
                gbpa: gbpa.into_bits(),
                ..State::default()
            }),
            events: Mutex::new(Events::default()),
            pri: Mutex::new(Pri::default()),
            errors: Mutex::new(Errors::default()),
            lookup: RwLock::new(LookupRegs {
                abort: gbpa.abort(),
                ..LookupRegs::default()
            }),
            enabled: AtomicU8::new(if gbpa.abort() { 2 } else { 0 }),
            cache: ConfigCache::new(epoch.clone()),
            tlb: Tlb::new(epoch.clone()),
            epoch,
            micro: MicroTlb::default(),
            micro_hits: Striped::default(),
            walks: Walks::default(),
            stalls: Stalls::default(),
        }
    }

    /// The Functions that receive ATS Invalidate Requests and PRG Responses.
    pub fn with_devices(mut self, devices: Arc<dyn Downstream>) -> Smmuv3 {
        self.devices = devices;
        self
    }

    /// Hooks that also receive TLB invalidations, resumes and syncs, after the unit's own
    /// translation layer has acted on them.
    pub fn with_hooks(mut self, hooks: Arc<dyn TranslationHooks>) -> Smmuv3 {
        self.hooks = hooks;
        self
    }

    /// The configuration (after clamping).
    pub fn config(&self) -> &Smmuv3Config {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> Smmuv3Stats {
        let mut s = self.lock().stats;
        {
            let ev = self.events();
            (s.events, s.events_lost) = (ev.written, ev.lost);
        }
        let p = self.pri();
        (s.page_requests, s.pri_auto_responses) = (p.written, p.auto_responses);
        s.cache = self.cache.stats();
        s.tlb = self.tlb.stats();
        let micro = self.micro_hits.get();
        s.cache.hits += micro;
        s.tlb.hits += micro;
        s.stalled = self.stalls.pending() as u64;
        s
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn events(&self) -> MutexGuard<'_, Events> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn pri(&self) -> MutexGuard<'_, Pri> {
        self.pri.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn errors(&self) -> MutexGuard<'_, Errors> {
        self.errors.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What lookups read of the registers, as last published.
    pub(crate) fn lookup_regs(&self) -> LookupRegs {
        *self.lookup.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes what lookups read of the registers in `st`.
    fn publish(&self, st: &State) {
        let regs = LookupRegs {
            smmuen: st.cr0.contains(Cr0::SMMUEN),
            abort: Gbpa::from_bits(st.gbpa).abort(),
            strtab: st.strtab,
            recinvsid: st.cr2.contains(Cr2::RECINVSID),
            atschk: st.cr0.contains(Cr0::ATSCHK),
        };
        // Around the change, as around a purge: no first-level cache entry filled before
        // it, or by a translation that read the old registers, hits after it.
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let mut l = self.lookup.write().unwrap_or_else(|e| e.into_inner());
        *l = regs;
        self.enabled.store(
            u8::from(regs.smmuen) | u8::from(regs.abort) << 1,
            Ordering::Release,
        );
        drop(l);
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    fn read32(&self, st: &State, off: u64) -> Option<u32> {
        let pri = self.cfg.pri;
        let msi = self.cfg.msi;
        Some(match off {
            offset::IDR0..=offset::IDR5 => self.idr[(off / 4) as usize],
            offset::IIDR => self.cfg.iidr,
            offset::AIDR => AIDR,
            offset::CR0 | offset::CR0ACK => st.cr0.bits(),
            offset::CR1 => st.cr1,
            offset::CR2 => st.cr2.bits(),
            offset::STATUSR | offset::AGBPA => 0,
            offset::GBPA => st.gbpa,
            offset::IRQ_CTRL | offset::IRQ_CTRLACK => self.errors().irq_ctrl.bits(),
            offset::GERROR => self.errors().gerror,
            offset::GERRORN => self.errors().gerrorn,
            offset::GERROR_IRQ_CFG1 if msi => self.errors().gerror_irq.data,
            offset::GERROR_IRQ_CFG2 if msi => self.errors().gerror_irq.attr,
            offset::STRTAB_BASE_CFG => st.strtab.cfg,
            offset::CMDQ_PROD => st.cmdq.prod,
            offset::CMDQ_CONS => st.cmdq.cons,
            offset::EVENTQ_IRQ_CFG1 if msi => self.events().irq.data,
            offset::EVENTQ_IRQ_CFG2 if msi => self.events().irq.attr,
            offset::PRIQ_IRQ_CFG1 if msi && pri => self.pri().irq.data,
            offset::PRIQ_IRQ_CFG2 if msi && pri => self.pri().irq.attr,
            offset::EVENTQ_PROD => self.events().q.prod,
            offset::EVENTQ_CONS => self.events().q.cons,
            offset::PRIQ_PROD if pri => self.pri().q.prod,
            offset::PRIQ_CONS if pri => self.pri().q.cons,
            _ => return None,
        })
    }

    fn read64(&self, st: &State, off: u64) -> u64 {
        let (pri, msi) = (self.cfg.pri, self.cfg.msi);
        match off {
            offset::GERROR_IRQ_CFG0 if msi => self.errors().gerror_irq.addr,
            offset::STRTAB_BASE => st.strtab.base,
            offset::CMDQ_BASE => st.cmdq.base,
            offset::EVENTQ_BASE => self.events().q.base,
            offset::EVENTQ_IRQ_CFG0 if msi => self.events().irq.addr,
            offset::PRIQ_BASE if pri => self.pri().q.base,
            offset::PRIQ_IRQ_CFG0 if msi && pri => self.pri().irq.addr,
            _ => 0,
        }
    }

    /// A register read of `size` (4 or 8) bytes at `off`. Misaligned, odd-sized and unknown
    /// accesses, and 64-bit accesses to 32-bit registers, read as zero (§6.2).
    pub fn mmio_read(&self, off: u64, size: u8) -> u64 {
        let st = self.lock();
        match size {
            4 if off % 4 == 0 => {
                if let Some(v) = self.read32(&st, off) {
                    v as u64
                } else if REG64.contains(&off) {
                    self.read64(&st, off) & 0xffff_ffff
                } else if off >= 4 && REG64.contains(&(off - 4)) {
                    self.read64(&st, off - 4) >> 32
                } else {
                    0
                }
            }
            8 if off % 8 == 0 && REG64.contains(&off) => self.read64(&st, off),
            _ => 0,
        }
    }

    /// A register write of `size` (4 or 8) bytes at `off`. Misaligned, odd-sized and unknown
    /// accesses are ignored, as are writes to read-only registers and fields (§6.2).
    pub fn mmio_write(&self, off: u64, size: u8, value: u64) {
        let mut st = self.lock();
        match size {
            4 if off % 4 == 0 => {
                let v = value as u32;
                if REG64.contains(&off) {
                    let old = self.read64(&st, off);
                    self.write64(&mut st, off, (old & !0xffff_ffff) | v as u64);
                } else if off >= 4 && REG64.contains(&(off - 4)) {
                    let old = self.read64(&st, off - 4);
                    self.write64(&mut st, off - 4, (old & 0xffff_ffff) | (v as u64) << 32);
                } else {
                    self.write32(&mut st, off, v);
                }
            }
            8 if off % 8 == 0 && REG64.contains(&off) => self.write64(&mut st, off, value),
            _ => tracing::debug!(off, size, "ignored SMMUv3 register write"),
        }
    }

    fn write32(&self, st: &mut State, off: u64, v: u32) {
        let enabled = st.cr0.contains(Cr0::SMMUEN);
        let (pri, msi) = (self.cfg.pri, self.cfg.msi);
        // An interrupt source's MSI registers are Guarded by its IRQ_CTRL enable.
        let irq_off = |f: IrqCtrl| msi && !self.errors().irq_ctrl.contains(f);
        match off {
            offset::CR0 => self.write_cr0(st, v),
            // CR1 (§6.3.11): TABLE_* (11:6) are Guarded by SMMUEN, QUEUE_* (5:0) by every
            // queue enable; a write while guarded is IGNORED (SMMUv3.2).
            offset::CR1 => {
                let queues = Cr0::CMDQEN | Cr0::EVTQEN | Cr0::PRIQEN;
                let mut writable = 0;
                if !enabled {
                    writable |= 0xfc0;
                }
                if !st.cr0.intersects(queues) {
                    writable |= 0x3f;
                }
                st.cr1 = (st.cr1 & !writable) | (v & writable);
            }
            // CR2 (§6.3.12): E2H needs IDR0.HYP and PTM needs IDR0.BTM, neither offered: only
            // RECINVSID is writable, while SMMUEN = 0.
            offset::CR2 if !enabled => {
                st.cr2 = Cr2::from_bits_truncate(v) & Cr2::RECINVSID;
                self.publish(st);
            }
            offset::GBPA => {
                // Only a write with Update set changes GBPA; it completes at once (§6.3.14).
                if Gbpa::from_bits(v).update() {
                    let before = self.guest_global();
                    st.gbpa = v & Gbpa::FIELDS;
                    self.publish(st);
                    self.tell_global(before);
                }
            }
            offset::IRQ_CTRL => {
                let mut f = IrqCtrl::from_bits_truncate(v);
                if !pri {
                    f -= IrqCtrl::PRIQ_IRQEN;
                }
                self.errors().irq_ctrl = f;
            }
            offset::GERRORN => {
                let resumed = {
                    let mut e = self.errors();
                    let was = e.active(Gerror::CMDQ_ERR);
                    e.gerrorn = v & Gerror::all().bits();
                    was && !e.active(Gerror::CMDQ_ERR)
                };
                // Acknowledging CMDQ_ERR lets the queue run again from CONS (§7.1).
                if resumed {
                    self.process_cmdq(st);
                }
            }
            offset::GERROR_IRQ_CFG1 | offset::GERROR_IRQ_CFG2 => {
                let mut e = self.errors();
                if msi && !e.irq_ctrl.contains(IrqCtrl::GERROR_IRQEN) {
                    e.gerror_irq
                        .write(off - offset::GERROR_IRQ_CFG0, v as u64, false)
                }
            }
            offset::EVENTQ_IRQ_CFG1 | offset::EVENTQ_IRQ_CFG2 => {
                let mut ev = self.events();
                if irq_off(IrqCtrl::EVTQ_IRQEN) {
                    ev.irq.write(off - offset::EVENTQ_IRQ_CFG0, v as u64, false)
                }
            }
            offset::PRIQ_IRQ_CFG1 | offset::PRIQ_IRQ_CFG2 if pri => {
                let mut p = self.pri();
                if irq_off(IrqCtrl::PRIQ_IRQEN) {
                    if off == offset::PRIQ_IRQ_CFG1 {
                        p.irq.data = v;
                    } else {
                        // PRIQ_IRQ_CFG2 also has LO, bit 31 (§6.3.36).
                        p.irq.attr = v & (1 << 31 | MSI_CFG2_MASK);
                    }
                }
            }
            // The stream table registers are read-only while SMMUEN = 1 (§6.3.24, §6.3.25).
            offset::STRTAB_BASE_CFG if !enabled => {
                st.strtab.cfg = v & StrtabBaseCfg::FIELDS;
                self.publish(st);
            }
            offset::CMDQ_PROD => {
                st.cmdq.prod = index_bits(v) & st.cmdq.wrap_mask(self.cfg.cmdq_bits);
                self.process_cmdq(st);
            }
            // CONS.RD is software-writable only while the queue is disabled; ERR never.
            offset::CMDQ_CONS if !st.cr0.contains(Cr0::CMDQEN) => {
                let err = st.cmdq.cons & (queue::ERR_MASK << queue::ERR_SHIFT);
                st.cmdq.cons = err | (index_bits(v) & st.cmdq.wrap_mask(self.cfg.cmdq_bits));
            }
            offset::EVENTQ_PROD => {
                let mut ev = self.events();
                if !ev.enabled {
                    let m = ev.q.wrap_mask(self.cfg.evtq_bits) | queue::OVERFLOW;
                    ev.q.prod = v & m;
                }
            }
            offset::EVENTQ_CONS => {
                let mut ev = self.events();
                let m = ev.q.wrap_mask(self.cfg.evtq_bits) | queue::OVERFLOW;
                ev.q.cons = v & m;
            }
            offset::PRIQ_PROD if pri => {
                let mut p = self.pri();
                if !p.priqen {
                    let m = p.q.wrap_mask(self.cfg.priq_bits) | queue::OVERFLOW;
                    p.q.prod = v & m;
                }
            }
            offset::PRIQ_CONS if pri => {
                let mut p = self.pri();
                let m = p.q.wrap_mask(self.cfg.priq_bits) | queue::OVERFLOW;
                p.q.cons = v & m;
            }
            _ => tracing::debug!(off, v, "ignored SMMUv3 register write"),
        }
    }

    fn write64(&self, st: &mut State, off: u64, v: u64) {
        let enabled = st.cr0.contains(Cr0::SMMUEN);
        let (pri, msi) = (self.cfg.pri, self.cfg.msi);
        let irq_off = |f: IrqCtrl| msi && !self.errors().irq_ctrl.contains(f);
        match off {
            offset::GERROR_IRQ_CFG0 => {
                let mut e = self.errors();
                if msi && !e.irq_ctrl.contains(IrqCtrl::GERROR_IRQEN) {
                    e.gerror_irq.write(0, v, true)
                }
            }
            offset::STRTAB_BASE if !enabled => {
                st.strtab.base = v & StrtabBase::FIELDS;
                self.publish(st);
            }
            // A queue's base is writable only while the queue is disabled (§6.3.26).
            offset::CMDQ_BASE if !st.cr0.contains(Cr0::CMDQEN) => {
                st.cmdq.base = v & QueueBase::FIELDS
            }
            offset::EVENTQ_BASE => {
                let mut ev = self.events();
                if !ev.enabled {
                    ev.q.base = v & QueueBase::FIELDS
                }
            }
            offset::EVENTQ_IRQ_CFG0 => {
                let mut ev = self.events();
                if irq_off(IrqCtrl::EVTQ_IRQEN) {
                    ev.irq.write(0, v, true)
                }
            }
            offset::PRIQ_BASE if pri => {
                let mut p = self.pri();
                if !p.priqen {
                    p.q.base = v & QueueBase::FIELDS
                }
            }
            offset::PRIQ_IRQ_CFG0 if pri => {
                let mut p = self.pri();
                if irq_off(IrqCtrl::PRIQ_IRQEN) {
                    p.irq.write(0, v, true)
                }
            }
            _ => tracing::debug!(off, v, "ignored SMMUv3 register write"),
        }
    }

    /// CR0 (§6.3.9): the new value is acknowledged at once. Turning SMMUEN on or off empties
    /// the configuration cache; enabling the command queue starts consuming it.
    fn write_cr0(&self, st: &mut State, v: u32) {
        let mut new = Cr0::from_bits_truncate(v);
        if !self.cfg.pri {
            new -= Cr0::PRIQEN;
        }
        if !self.cfg.ats {
            new -= Cr0::ATSCHK;
        }
        let old = st.cr0;
        let before = self.guest_global();
        st.cr0 = new;
        self.events().enabled = new.contains(Cr0::EVTQEN);
        {
            let mut p = self.pri();
            p.priqen = new.contains(Cr0::PRIQEN);
            p.smmuen = new.contains(Cr0::SMMUEN);
        }
        self.publish(st);
        if old.contains(Cr0::SMMUEN) != new.contains(Cr0::SMMUEN) {
            // Caches are not used across an enable change; stalled transactions end with
            // it (an SMMU turned off answers none of them).
            self.cache.clear();
            self.tlb.clear();
            self.stalls.terminate(None);
        }
        // A virtual unit's VMM hears the change before the queue runs commands behind it.
        self.tell_global(before);
        if new.contains(Cr0::CMDQEN) && !old.contains(Cr0::CMDQEN) {
            self.process_cmdq(st);
        }
    }

    /// Activates the global error `bit` unless it is already active, and signals it
    /// (§7.5: GERROR toggles, software toggles GERRORN to acknowledge). Takes `errors`: the
    /// caller must not hold it.
    pub(crate) fn gerror_raise(&self, bit: Gerror) {
        let mut e = self.errors();
        if e.active(bit) {
            return;
        }
        e.gerror ^= bit.bits();
        if e.irq_ctrl.contains(IrqCtrl::GERROR_IRQEN) {
            e.gerror_irq.fire(self.irq.as_ref());
        }
    }

    /// Is CR0.ATSCHK set (translated transactions are checked against their STE)?
    pub(crate) fn atschk(&self) -> bool {
        self.lookup.read().unwrap_or_else(|e| e.into_inner()).atschk
    }

    /// The configuration for `sid` / `ssid` if it needs no memory read: SMMUEN = 0, or a
    /// configuration cache hit.
    #[inline]
    pub(crate) fn cached_config(&self, sid: u32, ssid: Option<u32>) -> Option<StreamConfig> {
        let e = self.enabled.load(Ordering::Acquire);
        if e & 1 == 0 {
            return Some(StreamConfig::Disabled { abort: e & 2 != 0 });
        }
        self.cache.peek(sid, ssid)
    }

    /// The configuration a transaction of StreamID `sid` with SubstreamID `ssid` gets (§3.3):
    /// from the configuration cache, or the tables (filling the cache). A configuration error
    /// or fault is recorded in the event queue (C_BAD_STREAMID only with CR2.RECINVSID)
    /// before it is returned. Takes no register lock (see the module doc).
    ///
    /// # Errors
    /// The [`ConfigFault`] that stops the transaction.
    pub fn stream_config(&self, sid: u32, ssid: Option<u32>) -> Result<StreamConfig, ConfigFault> {
        // The epoch first: an invalidation after it keeps this lookup out of the cache.
        let epoch = self.cache.epoch();
        let regs = self.lookup_regs();
        if !regs.smmuen {
            return Ok(StreamConfig::Disabled { abort: regs.abort });
        }
        if let Some(c) = self.cache.get(sid, ssid) {
            return Ok(c);
        }
        match resolve(&self.cfg, self.mem.as_ref(), regs.strtab, sid, ssid) {
            Ok(c) => {
                self.cache.insert(sid, ssid, c, epoch);
                Ok(c)
            }
            Err(f) => {
                tracing::debug!(sid, ?ssid, %f, "SMMUv3 configuration fault");
                if f.recorded() && (f != ConfigFault::BadStreamId || regs.recinvsid) {
                    let mut ev = self.events();
                    self.record_event(&mut ev, &f.event(sid, ssid));
                }
                Err(f)
            }
        }
    }
}

/// The unit's register window, as its driver reaches it.
impl vsva_pcie::Mmio for Smmuv3 {
    fn read(&self, off: u64, size: u8) -> u64 {
        self.mmio_read(off, size)
    }
    fn write(&self, off: u64, size: u8, value: u64) {
        self.mmio_write(off, size, value)
    }
}
