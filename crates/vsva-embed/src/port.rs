//! A per-(requester, PASID) port of a vsva IOMMU as rust-vmm's [`vm_memory::iommu::Iommu`].
//!
//! The port is an ATS-capable Function (PCIe Base 6.0 §10) whose Address Translation Cache is
//! vm-memory's [`Iotlb`]:
//!
//! * **hit** — the range is in the IOTLB with the rights asked: served from it, the IOMMU is
//!   not asked;
//! * **miss** (or a cached entry without the rights) — a Translation Request per page
//!   ([`Upstream::ats_translate`]): the IOMMU walks its tables and the completion (a 4 KiB,
//!   2 MiB or 1 GiB range with its R/W rights) fills the IOTLB;
//! * **invalidation** — the IOMMU's driver unmaps or unbinds, the unit sends the Function an
//!   ATS Invalidate Request (VT-d device-TLB invalidation descriptor, SMMUv3 CMD_ATC_INV),
//!   which [`crate::PortFabric`] hands to the port: the range leaves the IOTLB, and the
//!   Invalidate Completion is sent only once no access that used it is in progress;
//! * **fault** — a completion that does not grant the access (R = W = 0: not mapped; or the
//!   wrong rights): the port sends the access as an untranslated request
//!   ([`Upstream::dma_untranslated`]), as an ATS Function may at any time (§10.2), so the
//!   IOMMU faults it and records the fault as it records any DMA's (VT-d fault recording
//!   registers, SMMUv3 event queue); the caller gets [`Error::CannotResolve`].
//!
//! # Ordering (§10.3.1)
//! The IOTLB sits in an `RwLock`. Lookups take it shared; invalidations exclusive. So an
//! [`IotlbIterator`] (what [`Iommu::translate`] returns), and the access run by
//! [`IommuPort::translate_with`], hold off every invalidation while they live. A Translation
//! Request is tagged with the invalidation count when it is sent; its completion is cached only
//! if no invalidation arrived meanwhile (else the port asks again), so a completion that
//! raced with an unmap is never cached.
//!
//! Nothing inside [`IommuPort::translate_with`]'s closure may translate through the same port,
//! nor wait for an invalidation of it: with an invalidation waiting, the second shared lock
//! would wait behind it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};

use vm_memory::iommu::{Error, Iommu, IotlbIterator, IovaRange, MappedRange};
use vm_memory::{GuestAddress, Iotlb, Permissions};
use vsva_mem::{Access, Pasid, Rid};
use vsva_pcie::{AtsInvalidation, TranslationCompletion, Upstream};

/// How many times a miss is filled before the port gives up (each retry follows an
/// invalidation that raced with the fill).
const MAX_FILLS: usize = 16;

/// The smallest translation unit a port asks for: 4 KiB.
const PAGE: u64 = 4096;

/// A point of the protocol where a test may look ([`IommuPort::set_hook`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortPoint {
    /// A Translation Completion granting the access arrived and is not cached yet (the port
    /// holds no lock).
    CompletionReceived {
        /// The page asked for.
        addr: u64,
    },
    /// An Invalidate Request found an access in progress and waits for it to end.
    InvalidationWaits,
    /// An Invalidate Request emptied its range; its completion is about to be sent.
    Invalidated,
}

/// A test hook, called at each [`PortPoint`].
pub type PortHook = Arc<dyn Fn(PortPoint) + Send + Sync>;

/// Counters of a port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Translations served from the IOTLB without asking the IOMMU.
    pub hits: u64,
    /// Translations that asked the IOMMU for at least one page.
    pub misses: u64,
    /// Translation Requests sent.
    pub translation_requests: u64,
    /// Completions not cached because an invalidation arrived while they were outstanding.
    pub stale: u64,
    /// Invalidate Requests received.
    pub invalidations: u64,
    /// Accesses the IOMMU faulted.
    pub faults: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    translation_requests: AtomicU64,
    stale: AtomicU64,
    invalidations: AtomicU64,
    faults: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What the port and the fabric share.
pub(crate) struct Shared {
    upstream: Arc<dyn Upstream>,
    rid: Rid,
    pasid: Option<Pasid>,
    tlb: RwLock<Iotlb>,
    /// Invalidate Requests received; written under `tlb`'s exclusive lock.
    generation: AtomicU64,
    counters: Counters,
    hook: OnceLock<PortHook>,
}

impl Shared {
    fn at(&self, point: PortPoint) {
        if let Some(h) = self.hook.get() {
            h(point);
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Iotlb> {
        self.tlb.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Iotlb> {
        self.tlb.write().unwrap_or_else(|e| e.into_inner())
    }

    /// An Invalidate Request for this Function (§10.3.1): removes the range if its PASID
    /// scope reaches this port, after every access in progress. One without PASID reaches
    /// every entry of the Function, one with Global Invalidate every PASID.
    pub(crate) fn invalidate(&self, inv: &AtsInvalidation) {
        bump(&self.counters.invalidations);
        let reaches = inv.pasid.is_none() || inv.global || inv.pasid == self.pasid;
        if !reaches {
            return;
        }
        let mut tlb = match self.tlb.try_write() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => {
                self.at(PortPoint::InvalidationWaits);
                self.write()
            }
        };
        self.generation.fetch_add(1, Ordering::AcqRel);
        let end = inv.addr.saturating_add(inv.len);
        match usize::try_from(end - inv.addr) {
            Ok(len) => tlb.invalidate_mapping(GuestAddress(inv.addr), len),
            Err(_) => tlb.invalidate_all(),
        }
        drop(tlb);
        self.at(PortPoint::Invalidated);
    }
}

/// A (requester, PASID)'s port of a vsva IOMMU, as rust-vmm's [`Iommu`] (module doc).
/// Clones share one IOTLB. Opened with [`crate::PortFabric::open`].
#[derive(Clone)]
pub struct IommuPort {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for IommuPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IommuPort")
            .field("rid", &self.shared.rid)
            .field("pasid", &self.shared.pasid)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// The PCIe request rights of a vm-memory access mode (an access with no rights is checked
/// as a read: a Translation Request always asks at least for R).
fn access_of(p: Permissions) -> Access {
    match p {
        Permissions::No | Permissions::Read => Access::READ,
        Permissions::Write => Access::WRITE,
        Permissions::ReadWrite => Access::READ | Access::WRITE,
    }
}

/// What a Translation Completion lets the Function do (§10.2.3: R and W).
fn permissions_of(c: &TranslationCompletion) -> Permissions {
    match (c.read, c.write) {
        (true, true) => Permissions::ReadWrite,
        (true, false) => Permissions::Read,
        (false, true) => Permissions::Write,
        (false, false) => Permissions::No,
    }
}

/// The IOVA range `[base, base + len)` as the trait's error names it.
fn range(base: u64, len: u64) -> IovaRange {
    IovaRange {
        base: GuestAddress(base),
        length: usize::try_from(len).unwrap_or(usize::MAX),
    }
}

impl IommuPort {
    pub(crate) fn new(upstream: Arc<dyn Upstream>, rid: Rid, pasid: Option<Pasid>) -> IommuPort {
        IommuPort {
            shared: Arc::new(Shared {
                upstream,
                rid,
                pasid,
                tlb: RwLock::new(Iotlb::new()),
                generation: AtomicU64::new(0),
                counters: Counters::default(),
                hook: OnceLock::new(),
            }),
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The requester.
    pub fn rid(&self) -> Rid {
        self.shared.rid
    }

    /// The PASID (`None`: requests without PASID).
    pub fn pasid(&self) -> Option<Pasid> {
        self.shared.pasid
    }

    /// The port's counters.
    pub fn stats(&self) -> PortStats {
        let c = &self.shared.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PortStats {
            hits: g(&c.hits),
            misses: g(&c.misses),
            translation_requests: g(&c.translation_requests),
            stale: g(&c.stale),
            invalidations: g(&c.invalidations),
            faults: g(&c.faults),
        }
    }

    /// Installs a hook called at every [`PortPoint`]. Set once.
    ///
    /// # Errors
    /// The hook given, if one is set already.
    pub fn set_hook(&self, hook: PortHook) -> Result<(), PortHook> {
        self.shared.hook.set(hook)
    }

    /// Translates `[iova, iova + length)` for `access` and runs `f` with the ranges of the
    /// underlying (guest-physical) memory it reaches, in IOVA order, while the translation
    /// is held: no invalidation of the port completes until `f` has returned, so an unmap
    /// that returns has no access of `f` still to come (§10.3.1; what OpenVMM's IOMMU does for
    /// its DMA closures). `f` must not translate through this port (module doc).
    ///
    /// # Errors
    /// As [`Iommu::translate`]: [`Error::CannotResolve`] when the IOMMU faults part of the
    /// range (the fault recorded by the IOMMU), [`Error::IommuMisconfigured`] when it
    /// translates the requester's DMA but refuses its Translation Requests.
    pub fn translate_with<R>(
        &self,
        iova: GuestAddress,
        length: usize,
        access: Permissions,
        f: impl FnOnce(&[MappedRange]) -> R,
    ) -> Result<R, Error> {
        let mut held = self.resolve(iova, length, access)?;
        let ranges: Vec<MappedRange> = held.by_ref().collect();
        let r = f(&ranges);
        drop(held);
        Ok(r)
    }

    /// The IOTLB's answer for the range, filled from the IOMMU until it is whole.
    fn resolve(
        &self,
        iova: GuestAddress,
        length: usize,
        access: Permissions,
    ) -> Result<IotlbIterator<RwLockReadGuard<'_, Iotlb>>, Error> {
        let s = &self.shared;
        if iova.0.checked_add(length as u64).is_none() {
            return Err(Error::CannotResolve {
                iova_range: range(iova.0, length as u64),
                reason: "the range wraps around the address space".into(),
            });
        }
        for attempt in 0..MAX_FILLS {
            let fails = match Iotlb::lookup(s.read(), iova, length, access) {
                Ok(it) => {
                    if attempt == 0 {
                        bump(&s.counters.hits);
                    }
                    return Ok(it);
                }
                Err(fails) => fails,
            };
            if attempt == 0 {
                bump(&s.counters.misses);
            }
            for r in fails.misses.iter().chain(&fails.access_fails) {
                self.fill(r.base.0, r.length as u64, access)?;
            }
        }
        Err(Error::CannotResolve {
            iova_range: range(iova.0, length as u64),
            reason: format!("invalidated while being filled, {MAX_FILLS} times"),
        })
    }

    /// Sends Translation Requests for the pages of `[base, base + len)` and caches the
    /// completions that no invalidation overtook.
    fn fill(&self, base: u64, len: u64, access: Permissions) -> Result<(), Error> {
        let s = &self.shared;
        let want = access_of(access);
        let end = base + len;
        let mut page = base & !(PAGE - 1);
        while page < end {
            let ticket = s.generation.load(Ordering::Acquire);
            bump(&s.counters.translation_requests);
            let c = match s.upstream.ats_translate(s.rid, s.pasid, page, want) {
                Ok(c) if permissions_of(&c).allow(access) && !c.is_empty() => c,
                // The fault names the first byte asked for in this page.
                refused => return self.fault(page.max(base), want, refused.is_err()),
            };
            s.at(PortPoint::CompletionReceived { addr: page });
            let size = c.size.bytes();
            let start = page & !(size - 1);
            let mut tlb = s.write();
            if s.generation.load(Ordering::Acquire) != ticket {
                // An Invalidate Request arrived while the request was outstanding: the
                // completion may be stale (§10.3.1); the caller looks up again.
                bump(&s.counters.stale);
                return Ok(());
            }
            let length = usize::try_from(size).unwrap_or(usize::MAX);
            tlb.set_mapping(
                GuestAddress(start),
                GuestAddress(c.addr & !(size - 1)),
                length,
                permissions_of(&c),
            )?;
            page = start.saturating_add(size);
            if page == 0 {
                break;
            }
        }
        Ok(())
    }

    /// The IOMMU did not grant `addr`'s page for `want`: the access goes out untranslated so
    /// the IOMMU records its fault. If that succeeds after all (the mapping appeared
    /// meanwhile) the caller looks up again.
    fn fault(&self, addr: u64, want: Access, ats_refused: bool) -> Result<(), Error> {
        let s = &self.shared;
        match s.upstream.dma_untranslated(s.rid, s.pasid, addr, want) {
            Ok(_) if ats_refused => Err(Error::IommuMisconfigured {
                reason: format!(
                    "the IOMMU translates {:?} but refuses its Translation Requests: \
                     ATS is not enabled for it",
                    s.rid
                ),
            }),
            Ok(_) => Ok(()),
            Err(_) => {
                bump(&s.counters.faults);
                Err(Error::CannotResolve {
                    iova_range: range(addr, PAGE - (addr & (PAGE - 1))),
                    reason: format!(
                        "the IOMMU faulted the {} (recorded in its fault log)",
                        if want.is_write() { "write" } else { "read" }
                    ),
                })
            }
        }
    }
}

impl Iommu for IommuPort {
    type IotlbGuard<'a> = RwLockReadGuard<'a, Iotlb>;

    /// Served from the IOTLB, which misses fill from the IOMMU (module doc). The returned
    /// iterator holds off invalidations of the port while it lives.
    fn translate(
        &self,
        iova: GuestAddress,
        length: usize,
        access: Permissions,
    ) -> Result<IotlbIterator<Self::IotlbGuard<'_>>, Error> {
        self.resolve(iova, length, access)
    }
}

#[cfg(test)]
mod tests;
