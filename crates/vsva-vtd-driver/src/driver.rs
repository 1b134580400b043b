//! The driver of one remapping unit: it programs the unit only through its registers
//! ([`vsva_pcie::Mmio`]) and the structures it writes in memory, in the order Linux's intel-iommu driver
//! does (`drivers/iommu/intel/{iommu,pasid,dmar,prq}.c`).
//!
//! * [`VtdDriver::probe`] reads CAP/ECAP and refuses units without scalable mode and queued
//!   invalidation; [`VtdDriver::enable`] builds the root table, latches it, enables queued
//!   invalidation and the page request queue, invalidates globally and turns translation on.
//! * [`VtdDriver::attach_device`] writes a scalable-mode context entry (PASIDs, ATS, PRI as
//!   asked) with a PASID directory; [`VtdDriver::attach_pasid`] writes a PASID-table entry
//!   for a domain ([`Domain`]: second stage, first stage — SVA when its root is a process's
//!   page table —, nested, pass-through) and issues the invalidations the change needs.
//! * [`VtdDriver::flush_range`] invalidates a range: PASID-based IOTLB, then the device TLB,
//!   then a wait — the MMU-notifier path of SVA.
//! * [`VtdDriver::drain_page_requests`] takes page requests from the queue;
//!   [`VtdDriver::page_response`] answers a page group; [`VtdDriver::take_faults_recorded`] reads and
//!   clears the fault recording registers.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use vsva_mem::{FrameAllocator, PageSize, Pasid, PhysMem, Rid};

use vsva_pcie::{Mmio, PageRequest, ResponseCode};
use vsva_vtd::spec::descriptors::encode;
use vsva_vtd::spec::fault::FaultReason;
use vsva_vtd::spec::page_request;
use vsva_vtd::spec::pasid::{self, PasidDirEntry, PasidEntry, PasidQ0, PasidQ1, PasidQ2, Pgtt};
use vsva_vtd::spec::registers::{Cap, Ecap, Gcmd, PRS_PPR, PRS_PRO, offset};
use vsva_vtd::spec::root_context::{self, ContextEntry, ContextHi, ContextLo, RootHalf};

use crate::queue::InvalidationQueue;

/// Driver errors.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The unit lacks a capability the driver needs.
    #[error("the unit does not support {0}")]
    Unsupported(&'static str),
    /// No memory for a table.
    #[error("out of memory for remapping structures")]
    OutOfMemory,
    /// The unit did not complete an invalidation (queue error or time-out).
    #[error("invalidation failed: FSTS {fsts:#x}, IQERCD {iqercd:#x}")]
    Invalidation {
        /// Fault status when it failed.
        fsts: u32,
        /// Error record.
        iqercd: u64,
    },
    /// The device has no context entry yet.
    #[error("device {0} is not attached")]
    NotAttached(Rid),
    /// A PASID beyond what the unit supports.
    #[error("PASID {0} is beyond the unit's width")]
    PasidTooWide(u32),
    /// Memory access to the unit's structures failed.
    #[error("memory: {0}")]
    Memory(#[from] vsva_mem::MemError),
}

impl From<vsva_mem::FrameError> for DriverError {
    fn from(_: vsva_mem::FrameError) -> Self {
        DriverError::OutOfMemory
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, DriverError>;

/// What a PASID of a device translates through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// Second-stage tables (IOVA -> HPA) rooted at `root`, `levels` deep.
    SecondStage {
        /// Domain ID.
        did: u16,
        /// Root table.
        root: u64,
        /// 3, 4 or 5.
        levels: u8,
        /// Hardware A/D in second-stage entries.
        ad: bool,
    },
    /// First-stage (x86) tables rooted at `root`: a process's page table for SVA.
    FirstStage {
        /// Domain ID.
        did: u16,
        /// Root table (CR3).
        root: u64,
        /// 4 or 5.
        levels: u8,
        /// Allow privileged (supervisor) requests.
        supervisor: bool,
        /// Supervisor writes honour R/W.
        write_protect: bool,
    },
    /// A guest's first stage (GPA root) over a second stage.
    Nested {
        /// Domain ID.
        did: u16,
        /// First-stage root (a GPA).
        fs_root: u64,
        /// First-stage levels.
        fs_levels: u8,
        /// Second-stage root (HPA).
        ss_root: u64,
        /// Second-stage levels.
        ss_levels: u8,
        /// Allow privileged requests.
        supervisor: bool,
    },
    /// No translation (identity).
    PassThrough {
        /// Domain ID.
        did: u16,
    },
}

impl Domain {
    /// The domain ID.
    pub fn did(&self) -> u16 {
        match *self {
            Domain::SecondStage { did, .. }
            | Domain::FirstStage { did, .. }
            | Domain::Nested { did, .. }
            | Domain::PassThrough { did } => did,
        }
    }

    fn entry(&self) -> PasidEntry {
        let mut e = PasidEntry::default();
        e.q0.set_p(true);
        e.q1 = PasidQ1::new().with_did(self.did()).with_pwsnp(true);
        match *self {
            Domain::SecondStage {
                root, levels, ad, ..
            } => {
                e.q0 = PasidQ0::new()
                    .with_p(true)
                    .with_aw(levels - 2)
                    .with_pgtt(Pgtt::SecondStage.field())
                    .with_ssade(ad)
                    .with_ssptptr(root >> 12);
            }
            Domain::FirstStage {
                root,
                levels,
                supervisor,
                write_protect,
                ..
            } => {
                e.q0 = PasidQ0::new()
                    .with_p(true)
                    .with_pgtt(Pgtt::FirstStage.field());
                e.q2 = PasidQ2::new()
                    .with_sre(supervisor)
                    .with_wpe(write_protect)
                    .with_fspm(levels.saturating_sub(4))
                    .with_fsptptr(root >> 12);
            }
            Domain::Nested {
                fs_root,
                fs_levels,
                ss_root,
                ss_levels,
                supervisor,
                ..
            } => {
                e.q0 = PasidQ0::new()
                    .with_p(true)
                    .with_aw(ss_levels - 2)
                    .with_pgtt(Pgtt::Nested.field())
                    .with_ssptptr(ss_root >> 12);
                e.q2 = PasidQ2::new()
                    .with_sre(supervisor)
                    .with_fspm(fs_levels.saturating_sub(4))
                    .with_fsptptr(fs_root >> 12);
            }
            Domain::PassThrough { .. } => {
                e.q0 = PasidQ0::new()
                    .with_p(true)
                    .with_pgtt(Pgtt::PassThrough.field());
            }
        }
        e
    }
}

/// Per-device options of a context entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceOptions {
    /// Requests with PASID.
    pub pasid: bool,
    /// ATS (device TLB).
    pub ats: bool,
    /// PRI (page requests).
    pub pri: bool,
}

impl DeviceOptions {
    /// Requests with PASID, ATS and PRI: what an SVA-capable device gets.
    pub const ALL: DeviceOptions = DeviceOptions {
        pasid: true,
        ats: true,
        pri: true,
    };

    /// Requests with PASID only (no ATS, no PRI).
    pub const PASID: DeviceOptions = DeviceOptions {
        pasid: true,
        ats: false,
        pri: false,
    };
}

/// A fault the unit recorded, as the driver decodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordedFault {
    /// Requester.
    pub rid: Rid,
    /// PASID, if any.
    pub pasid: Option<u32>,
    /// Page address.
    pub addr: u64,
    /// Reason code.
    pub reason: u8,
    /// Was it a read (T1)?
    pub read: bool,
}

impl RecordedFault {
    /// The reason, if the code is one the spec defines.
    pub fn reason(&self) -> Option<FaultReason> {
        FaultReason::from_code(self.reason)
    }
}

struct DeviceState {
    /// PASID directory.
    dir: u64,
    /// ATS enabled: device-TLB invalidations are needed (Linux `info->ats_enabled`).
    ats: bool,
    /// PASIDs whose entry translates with the second stage alone (or passes through): their
    /// IOTLB entries are tagged by domain only and go with IOTLB invalidations, not
    /// PASID-based ones (§6.5.2.3, §6.5.2.4).
    second_stage: HashSet<u32>,
}

struct State {
    root: u64,
    queue: InvalidationQueue,
    prq: u64,
    prq_size: u64,
    devices: HashMap<u16, DeviceState>,
}

/// The driver of one unit.
pub struct VtdDriver {
    mmio: Arc<dyn Mmio>,
    mem: Arc<dyn PhysMem>,
    pub(crate) frames: Arc<FrameAllocator>,
    cap: Cap,
    ecap: Ecap,
    state: Mutex<Option<State>>,
}

impl std::fmt::Debug for VtdDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VtdDriver").field("cap", &self.cap).finish()
    }
}

/// PRQ size order (Linux `PRQ_ORDER`): 16 pages, 2048 descriptors.
const PRQ_ORDER: u8 = 4;

impl VtdDriver {
    /// Reads the unit's capabilities.
    ///
    /// # Errors
    /// [`DriverError::Unsupported`] without scalable mode, queued invalidation or PASIDs.
    pub fn probe(
        mmio: Arc<dyn Mmio>,
        mem: Arc<dyn PhysMem>,
        frames: Arc<FrameAllocator>,
    ) -> Result<VtdDriver> {
        let cap = Cap::from_bits(mmio.read(offset::CAP, 8));
        let ecap = Ecap::from_bits(mmio.read(offset::ECAP, 8));
        if !ecap.smts() {
            return Err(DriverError::Unsupported("scalable mode"));
        }
        if !ecap.qi() {
            return Err(DriverError::Unsupported("queued invalidation"));
        }
        if !ecap.pasid() {
            return Err(DriverError::Unsupported("PASID"));
        }
        Ok(VtdDriver {
            mmio,
            mem,
            frames,
            cap,
            ecap,
            state: Mutex::new(None),
        })
    }

    /// The unit's capability register.
    pub fn cap(&self) -> Cap {
        self.cap
    }

    /// The unit's extended capability register.
    pub fn ecap(&self) -> Ecap {
        self.ecap
    }

    /// PASIDs the unit supports (2^(PSS+1)).
    pub fn pasid_limit(&self) -> u32 {
        1 << (self.ecap.pss() as u32 + 1).min(20)
    }

    fn lock(&self) -> MutexGuard<'_, Option<State>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// GCMD with one command changed, keeping the persistent ones (Linux
    /// `iommu_enable_translation`: `gcmd = GSTS & 0x96ffffff`).
    fn gcmd(&self, set: Gcmd, clear: Gcmd) {
        let status = Gcmd::from_bits_truncate(self.mmio.read(offset::GSTS, 4) as u32);
        let cmd = (status - Gcmd::ONE_SHOT - clear) | set;
        self.mmio.write(offset::GCMD, 4, cmd.bits() as u64);
    }

    /// Sets up the root table, queued invalidation and the page request queue, invalidates
    /// everything and enables translation.
    ///
    /// # Errors
    /// Out of memory, or an invalidation the unit refused.
    pub fn enable(&self) -> Result<()> {
        let root = self.frames.alloc_zeroed(PageSize::Size4K)?;
        self.mmio.write(offset::RTADDR, 8, root | 1 << 10);
        self.gcmd(Gcmd::SRTP, Gcmd::empty());
        let queue = InvalidationQueue::new(&self.frames)?;
        self.mmio.write(offset::IQT, 8, 0);
        self.mmio.write(offset::IQA, 8, queue.base() | 1 << 11);
        self.gcmd(Gcmd::QIE, Gcmd::empty());
        let (prq, prq_size) = if self.ecap.prs() {
            let base = self.frames.alloc_zeroed(PageSize::Size2M)?;
            self.mmio.write(offset::PQH, 8, 0);
            self.mmio.write(offset::PQT, 8, 0);
            self.mmio.write(offset::PQA, 8, base | PRQ_ORDER as u64);
            (base, 4096u64 << PRQ_ORDER)
        } else {
            (0, 0)
        };
        let mut st = State {
            root,
            queue,
            prq,
            prq_size,
            devices: HashMap::new(),
        };
        // Global invalidation before turning translation on (§6.5.3).
        self.submit(
            &mut st,
            &[
                [1 | 1 << 4, 0, 0, 0],
                encode::pasid_cache(3, 0, 0),
                encode::iotlb_global(),
            ],
        )?;
        self.gcmd(Gcmd::TE, Gcmd::empty());
        *self.lock() = Some(st);
        Ok(())
    }

    fn submit(&self, st: &mut State, descs: &[[u64; 4]]) -> Result<()> {
        st.queue
            .submit(self.mmio.as_ref(), self.mem.as_ref(), descs)
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut g = self.lock();
        let st = g
            .as_mut()
            .ok_or(DriverError::Unsupported("use before enable"))?;
        f(st)
    }

    /// Writes `rid`'s context entry: a PASID directory for the unit's full PASID width, and
    /// the options asked for (those the unit lacks are left off).
    ///
    /// # Errors
    /// Out of memory, or the invalidation failed.
    pub fn attach_device(&self, rid: Rid, opts: DeviceOptions) -> Result<()> {
        self.with_state(|st| {
            let at = st.root + root_context::root_half_offset(rid.bus(), rid.devfn());
            let mut half = RootHalf::from_bits(self.mem.load_u64(at)?);
            if !half.p() {
                half = RootHalf::pointing_to(self.frames.alloc_zeroed(PageSize::Size4K)?);
                self.mem.store_u64(at, half.into_bits())?;
            }
            // 2^(PDTS+7) directory entries of 8 bytes: PDTS 7 covers 20-bit PASIDs in
            // 128 KiB, which a 2 MiB frame holds.
            let (dir, second_stage) = match st.devices.get_mut(&rid.raw()) {
                Some(d) => (d.dir, std::mem::take(&mut d.second_stage)),
                None => (self.frames.alloc_zeroed(PageSize::Size2M)?, HashSet::new()),
            };
            let ctx = ContextEntry {
                lo: ContextLo::new()
                    .with_p(true)
                    .with_paside(opts.pasid)
                    .with_dte(opts.ats && self.ecap.dt())
                    .with_pre(opts.pri && self.ecap.prs())
                    .with_pdts(7)
                    .with_pasiddirptr(dir >> 12),
                hi: ContextHi::new(),
                reserved: [0, 0],
            };
            let slot = half.table() + root_context::context_offset(rid.devfn());
            // Qwords 1..3 first, qword 0 (with P) last, so the unit never sees a half entry.
            let q = ctx.to_qwords();
            for i in (0..4).rev() {
                self.mem.store_u64(slot + 8 * i as u64, q[i])?;
            }
            st.devices.insert(
                rid.raw(),
                DeviceState {
                    dir,
                    ats: ctx.lo.dte(),
                    second_stage,
                },
            );
            // Device-selective context-cache invalidation, then PASID cache and IOTLB
            // (§6.5.3.3, context entry changes).
            self.submit(
                st,
                &[
                    [1 | 3 << 4 | (rid.raw() as u64) << 32, 0, 0, 0],
                    encode::iotlb_global(),
                ],
            )
        })
    }

    fn pasid_slot(&self, st: &mut State, rid: Rid, pasid: u32) -> Result<u64> {
        if pasid >= self.pasid_limit() {
            return Err(DriverError::PasidTooWide(pasid));
        }
        let dir = st
            .devices
            .get(&rid.raw())
            .ok_or(DriverError::NotAttached(rid))?
            .dir;
        let at = dir + pasid::dir_index(pasid) * 8;
        let mut d = PasidDirEntry::from_bits(self.mem.load_u64(at)?);
        if !d.p() {
            d = PasidDirEntry::pointing_to(self.frames.alloc_zeroed(PageSize::Size4K)?);
            self.mem.store_u64(at, d.into_bits())?;
        }
        Ok(d.table() + pasid::table_index(pasid) * pasid::PASID_ENTRY_BYTES)
    }

    /// Points (`rid`, `pasid`) at `domain` (PASID 0 also serves requests without PASID).
    ///
    /// # Errors
    /// [`DriverError::NotAttached`], [`DriverError::PasidTooWide`], out of memory, or the
    /// invalidation failed.
    pub fn attach_pasid(&self, rid: Rid, pasid: Pasid, domain: &Domain) -> Result<()> {
        self.with_state(|st| {
            let slot = self.pasid_slot(st, rid, pasid.raw())?;
            let old_did = PasidQ1::from_bits(self.mem.load_u64(slot + 8)?).did();
            let q = domain.entry().to_qwords();
            // Clear P first, then fill the entry, then set P (qword 0) last.
            self.mem.store_u64(slot, 0)?;
            for i in (0..8).rev() {
                self.mem.store_u64(slot + 8 * i as u64, q[i])?;
            }
            self.note_kind(st, rid, pasid.raw(), Some(domain));
            self.pasid_changed(st, rid, pasid.raw(), old_did, domain.did())
        })
    }

    /// Records whether (`rid`, `pasid`) now translates by the second stage alone.
    fn note_kind(&self, st: &mut State, rid: Rid, pasid: u32, domain: Option<&Domain>) {
        if let Some(d) = st.devices.get_mut(&rid.raw()) {
            if matches!(
                domain,
                Some(Domain::SecondStage { .. } | Domain::PassThrough { .. })
            ) {
                d.second_stage.insert(pasid);
            } else {
                d.second_stage.remove(&pasid);
            }
        }
    }

    /// Points many PASIDs of `rid`, none of them attached yet, at one domain. A not-present
    /// entry is never cached unless the unit is in caching mode (CAP.CM), so making entries
    /// present needs no invalidation except then — one global PASID-cache invalidation for
    /// the whole batch (§6.5.3.3).
    ///
    /// # Errors
    /// As [`attach_pasid`](Self::attach_pasid); a PASID already attached gives
    /// [`DriverError::Unsupported`] and stops the batch.
    pub fn attach_new_pasids(
        &self,
        rid: Rid,
        pasids: &mut dyn Iterator<Item = Pasid>,
        domain: &Domain,
    ) -> Result<usize> {
        self.with_state(|st| {
            let q = domain.entry().to_qwords();
            let mut n = 0;
            for pasid in pasids {
                let slot = self.pasid_slot(st, rid, pasid.raw())?;
                if self.mem.load_u64(slot)? & 1 != 0 {
                    return Err(DriverError::Unsupported(
                        "attaching an attached PASID in a batch",
                    ));
                }
                for i in (0..8).rev() {
                    self.mem.store_u64(slot + 8 * i as u64, q[i])?;
                }
                self.note_kind(st, rid, pasid.raw(), Some(domain));
                n += 1;
            }
            if self.cap.cm() {
                self.submit(st, &[encode::pasid_cache(3, 0, 0)])?;
            }
            Ok(n)
        })
    }

    /// Clears (`rid`, `pasid`)'s PASID entry: the PASID translates nothing afterwards.
    ///
    /// # Errors
    /// As [`attach_pasid`](Self::attach_pasid).
    pub fn detach_pasid(&self, rid: Rid, pasid: Pasid) -> Result<()> {
        self.with_state(|st| {
            let slot = self.pasid_slot(st, rid, pasid.raw())?;
            let did = PasidQ1::from_bits(self.mem.load_u64(slot + 8)?).did();
            self.mem.store_u64(slot, 0)?;
            self.note_kind(st, rid, pasid.raw(), None);
            self.pasid_changed(st, rid, pasid.raw(), did, did)
        })
    }

    /// After a PASID entry changed: PASID cache, IOTLB and device TLB of the old domain, and
    /// a wait (Linux `intel_pasid_tear_down_entry` / `pasid_flush_caches`).
    fn pasid_changed(
        &self,
        st: &mut State,
        rid: Rid,
        pasid: u32,
        old: u16,
        new: u16,
    ) -> Result<()> {
        let mut descs = vec![
            encode::pasid_cache(1, old, pasid),
            encode::pasid_iotlb(old, pasid, None, false),
        ];
        if new != old {
            descs.push(encode::pasid_cache(1, new, pasid));
        }
        // Second-stage and pass-through translations are tagged by domain only.
        descs.push(encode::iotlb(old, None, false));
        if st.devices.get(&rid.raw()).is_some_and(|d| d.ats) {
            descs.push(encode::pasid_dev_tlb(rid.raw(), pasid, 0, 52));
        }
        self.submit(st, &descs)
    }

    /// Invalidates `[addr, addr + len)` of (`rid`, `pasid`) in domain `did`, then waits —
    /// returning only once the device has dropped the range (the SVA MMU-notifier path, and
    /// unmaps of paging domains). A first-stage or nested PASID takes a PASID-based IOTLB
    /// invalidation (§6.5.2.4) and a PASID-based device-TLB one (§6.5.2.6); a second-stage
    /// one takes a page-selective IOTLB invalidation of the domain (§6.5.2.3) and, for
    /// RID_PASID, the device-TLB invalidation of requests without PASID (§6.5.2.5).
    ///
    /// # Errors
    /// The invalidation failed (e.g. the device did not answer).
    pub fn flush_range(&self, did: u16, rid: Rid, pasid: Pasid, addr: u64, len: u64) -> Result<()> {
        self.with_state(|st| {
            let (start, am) = aligned_span(addr, len);
            let dev = st.devices.get(&rid.raw());
            let ats = dev.is_some_and(|d| d.ats);
            let second_stage = dev.is_some_and(|d| d.second_stage.contains(&pasid.raw()));
            let psi = self.cap.psi() && am <= self.cap.mamv();
            let mut descs = Vec::with_capacity(2);
            if second_stage {
                descs.push(encode::iotlb(did, psi.then_some((start, am)), false));
                if ats {
                    descs.push(if pasid.raw() == 0 {
                        encode::dev_tlb(rid.raw(), start, am)
                    } else {
                        encode::pasid_dev_tlb(rid.raw(), pasid.raw(), start, am)
                    });
                }
            } else {
                descs.push(encode::pasid_iotlb(
                    did,
                    pasid.raw(),
                    psi.then_some((start, am)),
                    false,
                ));
                if ats {
                    descs.push(encode::pasid_dev_tlb(rid.raw(), pasid.raw(), start, am));
                }
            }
            self.submit(st, &descs)
        })
    }

    /// Takes the page requests the unit queued (Linux `prq_event_thread`: clear PPR, read
    /// from head to tail, advance the head, clear PRO once the queue is empty).
    pub fn drain_page_requests(&self) -> Vec<PageRequest> {
        let mut out = Vec::new();
        let _ = self.with_state(|st| {
            if st.prq_size == 0 {
                return Ok(());
            }
            self.mmio.write(offset::PRS, 4, PRS_PPR as u64);
            // Both inside the ring we allocated, whatever the registers say (Linux
            // PRQ_RING_MASK), so the walk from head to tail always ends.
            let ring = st.prq_size - 32;
            let tail = self.mmio.read(offset::PQT, 8) & ring;
            let mut head = self.mmio.read(offset::PQH, 8) & ring;
            while head != tail {
                let mut q = [0u64; 4];
                for (i, w) in q.iter_mut().enumerate() {
                    *w = self.mem.load_u64(st.prq + head + 8 * i as u64)?;
                }
                if let Some(pr) = page_request::decode(q) {
                    out.push(pr);
                }
                head = (head + 32) % st.prq_size;
            }
            self.mmio.write(offset::PQH, 8, head);
            if self.mmio.read(offset::PRS, 4) as u32 & PRS_PRO != 0 {
                self.mmio.write(offset::PRS, 4, PRS_PRO as u64);
            }
            Ok(())
        });
        out
    }

    /// Answers a page request group.
    ///
    /// # Errors
    /// The unit refused the descriptor.
    pub fn page_response(
        &self,
        rid: Rid,
        pasid: Option<Pasid>,
        prgi: u16,
        code: ResponseCode,
    ) -> Result<()> {
        self.with_state(|st| {
            let d =
                encode::page_group_response(rid.raw(), pasid.map(|p| p.raw()), code.raw(), prgi);
            self.submit(st, &[d])
        })
    }

    /// Reads and clears the fault recording registers (Linux `dmar_fault`).
    pub fn take_faults_recorded(&self) -> Vec<RecordedFault> {
        let n = self.cap.nfr() as u64 + 1;
        let base = self.cap.fro() as u64 * 16;
        let mut out = Vec::new();
        for i in 0..n {
            let hi = self.mmio.read(base + 16 * i + 8, 8);
            if hi >> 63 == 0 {
                continue;
            }
            let lo = self.mmio.read(base + 16 * i, 8);
            out.push(RecordedFault {
                rid: Rid::from_raw(hi as u16),
                pasid: (hi >> 31 & 1 != 0).then_some(((hi >> 40) & 0xf_ffff) as u32),
                addr: lo & !0xfff,
                reason: (hi >> 32) as u8,
                read: hi >> 62 & 1 != 0,
            });
            self.mmio.write(base + 16 * i + 12, 4, 1 << 31);
        }
        self.mmio.write(offset::FSTS, 4, 1);
        out
    }
}

/// The smallest naturally aligned power-of-two span of pages covering `[addr, addr + len)`,
/// as (start, address mask).
fn aligned_span(addr: u64, len: u64) -> (u64, u8) {
    let first = addr >> 12;
    let last = (addr.saturating_add(len.max(1)) - 1) >> 12;
    let mut am = 0u8;
    while am < 52 && (first >> am) != (last >> am) {
        am += 1;
    }
    // a span of 2^52 pages starts at 0 (the shift would leave the 64 bits)
    ((first >> am).checked_shl(12 + am as u32).unwrap_or(0), am)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vsva_pcie::AtsRange;

    #[test]
    fn the_whole_space_is_one_span_from_zero() {
        assert_eq!(aligned_span(0, u64::MAX), (0, 52));
        assert_eq!(aligned_span(0x1234_5000, u64::MAX), (0, 52));
    }

    #[test]
    fn spans_and_size_encodings() {
        assert_eq!(aligned_span(0x1000, 0x1000), (0x1000, 0));
        assert_eq!(aligned_span(0x1000, 0x2000), (0x0, 2));
        assert_eq!(aligned_span(0x20_0000, 2 << 20), (0x20_0000, 9));
        let d = encode::pasid_dev_tlb(0x18, 5, 0x1234_4000, 2);
        let range = AtsRange::decode(d[1] & !0x800, d[1] & 0x800 != 0);
        assert_eq!((range.base, range.size()), (0x1234_4000, Some(16384)));
        let d = encode::pasid_dev_tlb(0x18, 5, 0x5000, 0);
        let range = AtsRange::decode(d[1], false);
        assert_eq!((range.base, range.size()), (0x5000, Some(4096)));
        // the whole space is one device-TLB invalidation of everything, not one page
        let (start, am) = aligned_span(0, u64::MAX);
        for d in [
            encode::pasid_dev_tlb(0x18, 5, start, am),
            encode::dev_tlb(0x18, start, am),
        ] {
            let size = d[1] & 0x801 != 0;
            let range = AtsRange::decode(d[1] & !0x801, size);
            assert_eq!((range.base, range.size()), (0, None));
        }
    }
}
