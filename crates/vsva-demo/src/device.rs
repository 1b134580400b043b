//! The demo device: a DMA engine working on virtual addresses of a bound process under a
//! PASID, with an ATC and PRI (the device of the QEMU SVM demo series, seed 003).
//!
//! For every page it touches, the engine looks in its ATC; on a miss it sends an ATS
//! translation request and caches the completion; if the completion does not grant the
//! access (not present, or read-only for a write) it sends a page request (PRI), parks the
//! command until the page group response arrives, then asks again. Data moves with
//! translated-address DMAs. Privileged requests are only issued when the PASID capability's
//! Privileged Mode Enable is set.
//!
//! The ATC is vsva-pcie's [`OrderedAtc`]: a completion that an ATS invalidation overtook is
//! asked for again instead of used, and each piece's lookups and memory accesses happen inside
//! one [`AtcAccess`] that invalidations wait for (PCIe Base 6.0 §10.3.1) — so once the host's
//! invalidation completes, no access with the old translation is still to come.

use std::sync::{Arc, Mutex, MutexGuard};

use vsva_mem::{Access, PageSize, Pasid, Rid};
use vsva_pcie::{
    AtcAccess, AtcEntry, AtcLookup, AtsHook, AtsInvalidation, AtsPoint, ConfigOptions, ConfigSpace,
    Fill, OrderedAtc, PageRequest, PageRequestOutcome, Pri, Refused, ResponseCode,
    TranslationFlags, TranslationTicket, Upstream,
};

use crate::engine::{CHUNK, Job, Registers};
use crate::regs::{DeviceError, Op};

/// Counters of what the device did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// ATS translation requests sent.
    pub ats_translations: u64,
    /// Translations served by the ATC.
    pub atc_hits: u64,
    /// Page requests sent.
    pub page_requests: u64,
    /// Page group responses received.
    pub page_group_responses: u64,
    /// ATS invalidation requests received.
    pub atc_invalidations: u64,
    /// Bytes read or written by DMA.
    pub dma_bytes: u64,
    /// Transactions the IOMMU stalled (a platform device's page faults).
    pub stalls: u64,
}

#[derive(Debug, Clone, Copy)]
struct Command {
    job: Job,
    /// A page request is outstanding for this group.
    waiting: Option<u16>,
    /// The page whose page request was answered Success: the next translation is a retry.
    retry: Option<u64>,
    failed: Option<DeviceError>,
}

struct State {
    cfg: ConfigSpace,
    pri: Pri,
    regs: Registers,
    cmd: Option<Command>,
    stats: DeviceStats,
    buf: Vec<u8>,
    buf2: Vec<u8>,
}

/// The Page Request Status register's error and state bits (PCIe Base 6.0 §10.5.2.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PriStatus {
    /// Response Failure: a PRG Response Failure arrived.
    pub response_failure: bool,
    /// Unexpected PRG Index: a response named a group with no request outstanding.
    pub unexpected_prg_index: bool,
    /// Stopped: the interface is disabled and no request is outstanding.
    pub stopped: bool,
}

/// What a call to [`DemoDevice::run`] ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Nothing to do.
    Idle,
    /// The command waits for a page group response.
    Waiting,
    /// The command completed.
    Done,
    /// The command failed.
    Failed(DeviceError),
}

/// The demo DMA device.
pub struct DemoDevice {
    rid: Rid,
    up: Arc<dyn Upstream>,
    state: Mutex<State>,
    /// The ATC has a lock of its own: the IOMMU invalidates it while the device may be in
    /// the middle of a command that is waiting on the IOMMU (holding `state`), so an ATS
    /// invalidation must never wait for `state`. An access holds it from lookup to the end of
    /// the piece's memory accesses, never across a translation or page request.
    atc: OrderedAtc,
    atc_invalidations: std::sync::atomic::AtomicU64,
    /// Page group responses not yet seen by the command: the IOMMU may answer while the
    /// device is inside a call to it (an automatic response), so answers are posted here
    /// and taken by the device itself.
    inbox: Mutex<Vec<(u16, ResponseCode)>>,
}

enum Step<T> {
    Ready(T),
    Wait,
    Fail(DeviceError),
}

/// A Translation Completion that grants its side's access, with the ticket of its request.
#[derive(Clone, Copy)]
struct Completion {
    ticket: TranslationTicket,
    base: u64,
    size: PageSize,
    entry: AtcEntry,
}

/// One side (source or destination) of a piece: the address, the access it needs, and a
/// completion received for it that is not yet known to be cached.
struct Side {
    used: bool,
    va: u64,
    access: Access,
    completion: Option<Completion>,
}

impl Side {
    fn new(used: bool, va: u64, access: Access) -> Side {
        Side {
            used,
            va,
            access,
            completion: None,
        }
    }

    /// Inside `access`: `Some(None)` for a side the operation does not use,
    /// `Some(Some((translated address, bytes left in the translation)))`, or `None` when the
    /// side needs a translation (a completion that an invalidation overtook is dropped).
    fn resolve(
        &mut self,
        access: &mut AtcAccess<'_>,
        pasid: Option<Pasid>,
    ) -> Option<Option<(u64, u64)>> {
        if !self.used {
            return Some(None);
        }
        let va = self.va;
        if let Some(c) = self.completion {
            // A fresh completion goes in without a lookup first (the lookup just missed).
            if access.fill(c.ticket, pasid, c.base, c.size, c.entry) == Ok(Fill::Usable) {
                let off = va & c.size.offset_mask();
                return Some(Some((c.entry.translated + off, c.size.bytes() - off)));
            }
            self.completion = None;
            return None;
        }
        match access.lookup(pasid, va, self.access) {
            AtcLookup::Hit { translated, size } => {
                Some(Some((translated, size.bytes() - (va & size.offset_mask()))))
            }
            _ => None,
        }
    }
}

impl DemoDevice {
    /// A device at `rid` with 20-bit PASIDs (exec and privileged supported), ATS with an
    /// invalidate queue of 32, PRI with `pri_capacity` outstanding requests, and an ATC of
    /// `atc_entries`.
    pub fn new(
        rid: Rid,
        up: Arc<dyn Upstream>,
        pri_capacity: u32,
        atc_entries: usize,
    ) -> DemoDevice {
        Self::with_pasid_width(rid, up, pri_capacity, atc_entries, 20)
    }

    /// Like [`new`](Self::new) with a narrower PASID capability (1..=20 bits).
    pub fn with_pasid_width(
        rid: Rid,
        up: Arc<dyn Upstream>,
        pri_capacity: u32,
        atc_entries: usize,
        pasid_width: u8,
    ) -> DemoDevice {
        let mut opts = ConfigOptions::new(0x1af4, 0x10f0);
        opts.pri_capacity = pri_capacity.max(1);
        opts.pasid_width = pasid_width.clamp(1, 20);
        let cfg = ConfigSpace::new(opts).expect("valid default configuration");
        DemoDevice {
            rid,
            up,
            atc: OrderedAtc::with_capacity(atc_entries),
            atc_invalidations: std::sync::atomic::AtomicU64::new(0),
            inbox: Mutex::new(Vec::new()),
            state: Mutex::new(State {
                cfg,
                pri: Pri::new(),
                regs: Registers::default(),
                cmd: None,
                stats: DeviceStats::default(),
                buf: vec![0; CHUNK as usize],
                buf2: vec![0; CHUNK as usize],
            }),
        }
    }

    /// The requester ID.
    pub fn rid(&self) -> Rid {
        self.rid
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Installs a hook at the points of the ATS protocol (tests place racing calls there).
    ///
    /// # Errors
    /// The hook given, if one is set already.
    pub fn set_ats_hook(&self, hook: AtsHook) -> Result<(), AtsHook> {
        self.atc.set_hook(hook)
    }

    /// The number of translations the ATC holds.
    pub fn atc_len(&self) -> usize {
        self.atc.len()
    }

    /// Applies the page group responses posted since the last look.
    fn take_responses(&self, st: &mut State) {
        let posted = std::mem::take(&mut *self.inbox.lock().unwrap_or_else(|e| e.into_inner()));
        for (prgi, code) in posted {
            match st.cmd {
                Some(mut c) => {
                    Self::response(st, &mut c, prgi, code);
                    st.cmd = Some(c);
                }
                None => {
                    // A response for a group of a command that is gone: PRI bookkeeping
                    // only (an unexpected index sets UPRGI in the PRI status).
                    let _ = st.pri.response(&mut st.cfg, prgi, code);
                    st.stats.page_group_responses += 1;
                }
            }
        }
    }

    /// Configuration read (the driver's view of the PCIe capabilities).
    pub fn config_read(&self, off: u32, size: u32) -> u32 {
        let mut st = self.lock();
        self.take_responses(&mut st);
        st.cfg.read(off, size)
    }

    /// Configuration write.
    pub fn config_write(&self, off: u32, size: u32, value: u32) {
        let mut st = self.lock();
        let epoch = st.cfg.pri_epoch();
        st.cfg.write(off, size, value);
        let st = &mut *st;
        st.pri.sync(&mut st.cfg);
        if st.cfg.pri_epoch() != epoch
            && let Some(cmd) = st.cmd.as_mut().filter(|c| c.waiting.is_some())
        {
            // A Reset (or a new Enable) discarded the outstanding page request (PCIe Base 6.0
            // §10.5.2.2): its response will never be taken, so the command cannot go on.
            cmd.waiting = None;
            cmd.failed = Some(DeviceError::PriFailure);
        }
        if !st.cfg.ats_enabled() {
            self.atc.clear();
        }
    }

    /// Counters.
    pub fn stats(&self) -> DeviceStats {
        let mut st = self.lock();
        self.take_responses(&mut st);
        let mut s = st.stats;
        s.atc_hits = self.atc.stats().hits;
        s.atc_invalidations = self
            .atc_invalidations
            .load(std::sync::atomic::Ordering::Relaxed);
        s
    }

    /// The Page Request Status register (PCIe Base 6.0 §10.5.2.3).
    pub fn pri_status(&self) -> PriStatus {
        let mut st = self.lock();
        self.take_responses(&mut st);
        PriStatus {
            response_failure: st.cfg.pri_response_failure(),
            unexpected_prg_index: st.cfg.pri_uprgi(),
            stopped: st.cfg.pri_stopped(),
        }
    }

    /// Register read.
    pub fn mmio_read(&self, off: u64) -> u64 {
        self.lock().regs.read(off)
    }

    /// Register write; a write of 1 to DOORBELL starts the command (it then runs as the
    /// platform calls [`run`](Self::run)).
    pub fn mmio_write(&self, off: u64, value: u64) {
        let mut st = self.lock();
        if st.regs.write(off, value) {
            Self::start(&mut st);
        }
    }

    fn start(st: &mut State) {
        st.cmd = None;
        let job = match Job::decode(&st.regs, st.cfg.pasid_width() as u32) {
            Ok(j) if st.cfg.pasid_enabled() => j,
            Ok(_) => return st.regs.finish(Err(DeviceError::BadCommand)),
            Err(e) => return st.regs.finish(Err(e)),
        };
        if job.privileged && !st.cfg.pasid_priv_enabled() {
            // The device does not issue privileged requests unless software enabled them.
            return st.regs.finish(Err(DeviceError::PrivilegedDisabled));
        }
        st.cmd = Some(Command {
            job,
            waiting: None,
            retry: None,
            failed: None,
        });
        st.regs.busy();
    }

    /// Runs the current command until it completes, fails, or waits for a page.
    pub fn run(&self) -> Progress {
        let mut st = self.lock();
        let st = &mut *st;
        self.take_responses(st);
        let Some(mut cmd) = st.cmd else {
            return Progress::Idle;
        };
        if let Some(e) = cmd.failed {
            return self.finish(st, Err(e));
        }
        if cmd.waiting.is_some() {
            return Progress::Waiting;
        }
        while cmd.job.done < cmd.job.len {
            match self.chunk(st, &mut cmd) {
                Step::Ready(()) => {}
                Step::Wait => {
                    st.cmd = Some(cmd);
                    return Progress::Waiting;
                }
                Step::Fail(e) => return self.finish(st, Err(e)),
            }
        }
        self.finish(st, Ok(cmd.job.result()))
    }

    fn finish(&self, st: &mut State, r: Result<u64, DeviceError>) -> Progress {
        st.cmd = None;
        st.regs.finish(r);
        match r {
            Ok(_) => Progress::Done,
            Err(e) => Progress::Failed(e),
        }
    }

    /// Moves one piece of the command: at most to the end of the source and destination
    /// pages, at most [`CHUNK`] bytes. The piece's translations are looked up (or taken from
    /// fresh completions) and used inside one ATC access; a side without one is translated
    /// (or paged in) with no access held, and the piece starts over.
    fn chunk(&self, st: &mut State, cmd: &mut Command) -> Step<()> {
        let job = cmd.job;
        let off = job.done;
        let priv_ = if job.privileged {
            Access::PRIV
        } else {
            Access::empty()
        };
        let dst_access = if job.writes_dst() {
            Access::READ | Access::WRITE
        } else {
            Access::READ
        };
        let mut sides = [
            Side::new(job.reads_src(), job.src + off, Access::READ | priv_),
            Side::new(job.uses_dst(), job.dst + off, dst_access | priv_),
        ];
        let pasid = Some(job.pasid);
        let mut missing_src;
        loop {
            {
                let mut access = self.atc.access();
                let src = sides[0].resolve(&mut access, pasid);
                let dst = sides[1].resolve(&mut access, pasid);
                missing_src = src.is_none();
                if src.is_some() && dst.is_some() {
                    let mut n = (job.len - off).min(job.limit());
                    for (_, left) in src.into_iter().chain(dst).flatten() {
                        n = n.min(left);
                    }
                    self.atc.at(AtsPoint::Accessing {
                        pasid,
                        addr: if sides[0].used {
                            sides[0].va
                        } else {
                            sides[1].va
                        },
                    });
                    let (src, dst) = (src.flatten().map(|t| t.0), dst.flatten().map(|t| t.0));
                    return self.move_data(st, cmd, n, src, dst, &access);
                }
            }
            let side = if missing_src {
                &mut sides[0]
            } else {
                &mut sides[1]
            };
            match self.translate(st, cmd, side) {
                Step::Ready(()) => {}
                Step::Wait => return Step::Wait,
                Step::Fail(e) => return Step::Fail(e),
            }
        }
    }

    /// Moves `n` bytes between the translated `src` and `dst` (those the operation uses),
    /// inside the ATC `_access` that holds their translations valid: translated-address DMAs,
    /// which the IOMMU checks the device may use, then the engine's memory accesses.
    fn move_data(
        &self,
        st: &mut State,
        cmd: &mut Command,
        n: u64,
        src: Option<u64>,
        dst: Option<u64>,
        _access: &AtcAccess<'_>,
    ) -> Step<()> {
        let pasid = Some(cmd.job.pasid);
        let dma = |addr: Option<u64>, access: Access| {
            addr.map(|a| self.up.dma(self.rid, pasid, a, access))
                .transpose()
        };
        let dst_access = if cmd.job.op == Op::Compare {
            Access::READ
        } else {
            Access::WRITE
        };
        let (Ok(src), Ok(dst)) = (dma(src, Access::READ), dma(dst, dst_access)) else {
            return Step::Fail(DeviceError::DmaRefused);
        };
        let st = &mut *st;
        match cmd
            .job
            .piece(self.up.memory(), (&mut st.buf, &mut st.buf2), n, src, dst)
        {
            Ok(moved) => {
                st.stats.dma_bytes += moved;
                Step::Ready(())
            }
            Err(e) => Step::Fail(e),
        }
    }

    /// Gets `side` a completion that grants its access: an ATS translation request, and a
    /// page request if the completion does not grant it (the command then waits).
    fn translate(&self, st: &mut State, cmd: &mut Command, side: &mut Side) -> Step<()> {
        let (pasid, addr, access) = (Some(cmd.job.pasid), side.va, side.access);
        if !st.cfg.ats_enabled() {
            // Software disabled ATS (before the doorbell or since): no Translation Request.
            return Step::Fail(DeviceError::AtsDisabled);
        }
        st.stats.ats_translations += 1;
        let ticket = self.atc.ticket();
        let Ok(c) = self.up.ats_translate(self.rid, pasid, addr, access) else {
            return Step::Fail(DeviceError::TranslationRefused);
        };
        self.atc.at(AtsPoint::CompletionReceived { pasid, addr });
        let page = addr & !0xfff;
        if c.read || c.write {
            let mut flags = TranslationFlags::empty();
            flags.set(TranslationFlags::READ, c.read);
            flags.set(TranslationFlags::WRITE, c.write);
            flags.set(TranslationFlags::EXEC, c.exec);
            flags.set(TranslationFlags::PRIV, c.privileged);
            let entry = AtcEntry {
                translated: c.addr & !c.size.offset_mask(),
                flags,
            };
            let completion = Completion {
                ticket,
                base: addr & !c.size.offset_mask(),
                size: c.size,
                entry,
            };
            if entry.permits(access) {
                cmd.retry = None;
                side.completion = Some(completion);
                return Step::Ready(());
            }
            // Cached for the accesses it does grant (a read-only page serves reads).
            let _ = self
                .atc
                .access()
                .fill(ticket, pasid, completion.base, c.size, entry);
        }
        if cmd.retry == Some(page) {
            return Step::Fail(DeviceError::StillNotAccessible);
        }
        // Ask for the page (PRI): one request per group.
        let Some(prgi) = st.pri.alloc_group() else {
            return Step::Fail(DeviceError::PriFailure);
        };
        let st_ = &mut *st;
        let Ok(msg) = st_
            .pri
            .request(&mut st_.cfg, prgi, pasid, page, access, true)
        else {
            let _ = st_.pri.release_group(prgi);
            return Step::Fail(DeviceError::PriFailure);
        };
        st.stats.page_requests += 1;
        let pr = PageRequest::from_msg(self.rid, &msg);
        cmd.waiting = Some(prgi);
        cmd.retry = Some(page);
        match self.up.page_request(&pr) {
            PageRequestOutcome::Queued => Step::Wait,
            PageRequestOutcome::AutoResponse(_) => {
                // The unit answered at once, through `page_response` (posted, not applied:
                // this thread holds the state); take it now.
                st.cmd = Some(*cmd);
                self.take_responses(st);
                if let Some(c) = st.cmd {
                    *cmd = c;
                }
                match cmd.failed {
                    Some(e) => Step::Fail(e),
                    None => Step::Wait,
                }
            }
            PageRequestOutcome::Dropped => Step::Fail(DeviceError::PriFailure),
        }
    }

    fn response(st: &mut State, cmd: &mut Command, prgi: u16, code: ResponseCode) {
        let st_ = &mut *st;
        let ok = st_.pri.response(&mut st_.cfg, prgi, code).is_ok();
        st.stats.page_group_responses += 1;
        if ok && cmd.waiting == Some(prgi) {
            cmd.waiting = None;
            match code {
                ResponseCode::Success => {}
                ResponseCode::InvalidRequest => cmd.failed = Some(DeviceError::PageRequestInvalid),
                ResponseCode::ResponseFailure => cmd.failed = Some(DeviceError::PriFailure),
            }
        } else if cmd.waiting.is_some() && st.pri.is_failed() {
            // A Response Failure for another group stopped the interface and discarded every
            // outstanding request (PCIe Base 6.0 §10.4.2.1), this command's with them: its
            // response will never be taken.
            cmd.waiting = None;
            cmd.failed = Some(DeviceError::PriFailure);
        }
    }

    /// A page group response from the IOMMU: posted for the device to apply (it may
    /// arrive while the device is inside a call to the IOMMU).
    pub fn page_response(&self, _pasid: Option<Pasid>, prgi: u16, code: ResponseCode) {
        self.inbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((prgi, code));
    }

    /// An ATS invalidation request: drop the range from the ATC, then complete.
    pub fn ats_invalidate(&self, inv: &AtsInvalidation) {
        self.atc
            .invalidate(inv.pasid, inv.addr, inv.len, inv.global);
        self.atc_invalidations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// A DMA without ATS (untranslated address): what a device without an ATC does.
    ///
    /// # Errors
    /// [`Refused`] when the IOMMU refuses it.
    pub fn dma_untranslated(
        &self,
        pasid: Option<Pasid>,
        addr: u64,
        write: bool,
    ) -> Result<u64, Refused> {
        let access = if write { Access::WRITE } else { Access::READ };
        self.up.dma_untranslated(self.rid, pasid, addr, access)
    }
}

impl crate::machine::Function for DemoDevice {
    fn config_read(&self, off: u32, size: u32) -> u32 {
        DemoDevice::config_read(self, off, size)
    }

    fn config_write(&self, off: u32, size: u32, value: u32) {
        DemoDevice::config_write(self, off, size, value);
    }

    fn mmio_read(&self, off: u64) -> u64 {
        DemoDevice::mmio_read(self, off)
    }

    fn mmio_write(&self, off: u64, value: u64) {
        DemoDevice::mmio_write(self, off, value);
    }
}

impl crate::machine::Endpoint for DemoDevice {
    fn rid(&self) -> Rid {
        self.rid
    }

    fn run(&self) -> Progress {
        DemoDevice::run(self)
    }

    fn stats(&self) -> DeviceStats {
        DemoDevice::stats(self)
    }

    fn dma_untranslated(
        &self,
        pasid: Option<Pasid>,
        addr: u64,
        write: bool,
    ) -> Result<u64, Refused> {
        DemoDevice::dma_untranslated(self, pasid, addr, write)
    }
}
