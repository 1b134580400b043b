//! The fuzzed device's small machine: an IOMMU that grants pages of a 256 KiB memory per
//! PASID, queues page requests for the harness to answer, and checks every translated DMA and
//! every memory access the device makes against what it granted at that moment.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use vsva_mem::{Access, MemError, PageSize, Pasid, PhysMem, PhysMemory, Rid};
use vsva_pcie::{
    AtsInvalidation, PageRequest, PageRequestOutcome, Refused, ResponseCode, TranslationCompletion,
    Upstream,
};

use crate::device::DemoDevice;

/// Pages of memory the IOMMU hands out.
pub const PAGES: u64 = 64;
/// First virtual address the IOMMU maps; page requests outside `[VA_BASE, VA_BASE + VA_PAGES
/// pages)` are answered Invalid Request.
pub const VA_BASE: u64 = 0x40_0000;
/// Pages of the mappable virtual window.
pub const VA_PAGES: u64 = 32;

/// A page granted to a PASID: its physical page and whether writes are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Physical page number.
    pub pa_page: u64,
    /// Writes allowed.
    pub write: bool,
}

/// What the IOMMU granted and what the device asked.
#[derive(Debug, Default)]
pub struct State {
    /// (PASID, virtual page number) -> grant.
    pub map: BTreeMap<(u32, u64), Grant>,
    /// Page requests queued, not yet answered: (PASID, page address, PRG index, last).
    pub pending: Vec<PageRequest>,
    /// Page requests received (queued or answered at once).
    pub requests: u64,
    /// Answers sent (one per group: the request with Last).
    pub answers: u64,
    /// Page request groups received (requests with Last).
    pub groups: u64,
    /// The next translation request's completion is revoked (unmapped and invalidated in the
    /// device's ATC) before it reaches the device.
    pub race: bool,
    /// The next page request is answered at once, Invalid Request (as a unit whose queue is
    /// full answers).
    pub auto_response: bool,
    /// ATS Enable as the harness last read it, before letting the device run.
    pub ats_enabled: bool,
    /// Translated DMAs checked.
    pub dmas: u64,
    /// ATS invalidations completed by the device.
    pub invalidations: u64,
}

/// The IOMMU of the fuzzed machine.
pub struct FuzzIommu {
    mem: Watched,
    dev: Mutex<Weak<DemoDevice>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FuzzIommu {
    /// A machine with [`PAGES`] pages of memory and nothing granted.
    ///
    /// # Panics
    /// When the memory cannot be allocated.
    pub fn new() -> FuzzIommu {
        FuzzIommu {
            mem: Watched {
                inner: PhysMemory::new(PAGES * 4096).expect("memory of the fuzzed machine"),
                state: Arc::new(Mutex::new(State::default())),
            },
            dev: Mutex::new(Weak::new()),
        }
    }

    /// Connects the device the downstream messages go to.
    pub fn connect(&self, dev: &Arc<DemoDevice>) {
        *lock(&self.dev) = Arc::downgrade(dev);
    }

    /// The grants and queues.
    pub fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.mem.state)
    }

    /// Revokes the grant of `(pasid, page)` and invalidates it in the device's ATC; returns
    /// once the device completed the invalidation (§10.3.1), as a unit's invalidation wait does.
    pub fn revoke(&self, pasid: u32, page: u64, global: bool) {
        lock(&self.mem.state).map.remove(&(pasid, page));
        self.invalidate(Pasid::new(pasid).ok(), page << 12, 4096, global);
    }

    /// Revokes every grant of `pasid` with one range invalidation of the whole window.
    pub fn revoke_all(&self, pasid: u32) {
        lock(&self.mem.state).map.retain(|k, _| k.0 != pasid);
        self.invalidate(Pasid::new(pasid).ok(), 0, 1 << 63, false);
    }

    fn invalidate(&self, pasid: Option<Pasid>, addr: u64, len: u64, global: bool) {
        let dev = lock(&self.dev).upgrade();
        if let Some(dev) = dev {
            dev.ats_invalidate(&AtsInvalidation {
                sid: dev.rid(),
                pasid,
                addr,
                len,
                global,
            });
            lock(&self.mem.state).invalidations += 1;
        }
    }

    /// Sends a PRG Response to the device.
    pub fn respond(&self, pasid: Option<Pasid>, prgi: u16, code: ResponseCode) {
        let dev = lock(&self.dev).upgrade();
        if let Some(dev) = dev {
            dev.page_response(pasid, prgi, code);
        }
    }
}

impl Default for FuzzIommu {
    fn default() -> FuzzIommu {
        FuzzIommu::new()
    }
}

impl Upstream for FuzzIommu {
    fn ats_translate(
        &self,
        _rid: Rid,
        pasid: Option<Pasid>,
        addr: u64,
        access: Access,
    ) -> Result<TranslationCompletion, Refused> {
        let pasid = pasid.ok_or(Refused)?;
        let (grant, race) = {
            let mut st = lock(&self.mem.state);
            assert!(
                st.ats_enabled,
                "a Translation Request from a Function with ATS disabled (§10.5.1.3)"
            );
            (
                st.map.get(&(pasid.raw(), addr >> 12)).copied(),
                std::mem::take(&mut st.race),
            )
        };
        let c = match grant {
            Some(g) => TranslationCompletion {
                addr: g.pa_page << 12,
                size: PageSize::Size4K,
                read: true,
                write: g.write,
                exec: false,
                privileged: access.is_priv(),
            },
            None => TranslationCompletion {
                addr: 0,
                size: PageSize::Size4K,
                read: false,
                write: false,
                exec: false,
                privileged: false,
            },
        };
        if race && grant.is_some() {
            // The mapping goes away while the completion is on its way: the device must not
            // use what it receives.
            self.revoke(pasid.raw(), addr >> 12, false);
        }
        Ok(c)
    }

    fn page_request(&self, pr: &PageRequest) -> PageRequestOutcome {
        let auto = {
            let mut st = lock(&self.mem.state);
            st.requests += 1;
            st.groups += u64::from(pr.last);
            if std::mem::take(&mut st.auto_response) && pr.last {
                st.answers += 1;
                true
            } else {
                st.pending.push(*pr);
                false
            }
        };
        if auto {
            self.respond(pr.pasid, pr.prgi, ResponseCode::InvalidRequest);
            return PageRequestOutcome::AutoResponse(ResponseCode::InvalidRequest);
        }
        PageRequestOutcome::Queued
    }

    fn dma(
        &self,
        _rid: Rid,
        pasid: Option<Pasid>,
        addr: u64,
        access: Access,
    ) -> Result<u64, Refused> {
        let mut st = lock(&self.mem.state);
        st.dmas += 1;
        let pasid = pasid.map(Pasid::raw);
        let granted = st.map.iter().any(|((p, _), g)| {
            Some(*p) == pasid && g.pa_page == addr >> 12 && (g.write || !access.is_write())
        });
        assert!(
            granted,
            "translated {access:?} DMA to {addr:#x} with PASID {pasid:?}, not granted now"
        );
        Ok(addr)
    }

    fn dma_untranslated(
        &self,
        _rid: Rid,
        pasid: Option<Pasid>,
        addr: u64,
        access: Access,
    ) -> Result<u64, Refused> {
        let st = lock(&self.mem.state);
        let g = st
            .map
            .get(&(pasid.ok_or(Refused)?.raw(), addr >> 12))
            .ok_or(Refused)?;
        if access.is_write() && !g.write {
            return Err(Refused);
        }
        Ok(g.pa_page << 12 | (addr & 0xfff))
    }

    fn memory(&self) -> &dyn PhysMem {
        &self.mem
    }
}

/// The machine's memory, which only lets the device reach pages granted at the moment of the
/// access: any other access is a DMA the IOMMU never allowed, and panics.
struct Watched {
    inner: PhysMemory,
    state: Arc<Mutex<State>>,
}

impl Watched {
    fn check(&self, pa: u64, len: u64, write: bool) {
        if len == 0 {
            return;
        }
        let st = lock(&self.state);
        let last = pa.saturating_add(len - 1) >> 12;
        for page in pa >> 12..=last {
            let ok = st
                .map
                .values()
                .any(|g| g.pa_page == page && (g.write || !write));
            assert!(
                ok,
                "device {} of [{pa:#x}, +{len:#x}) reaches page {page:#x}, not granted",
                if write { "write" } else { "read" }
            );
        }
    }
}

impl PhysMem for Watched {
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn load_u64(&self, pa: u64) -> Result<u64, MemError> {
        self.check(pa, 8, false);
        self.inner.load_u64(pa)
    }
    fn store_u64(&self, pa: u64, val: u64) -> Result<(), MemError> {
        self.check(pa, 8, true);
        self.inner.store_u64(pa, val)
    }
    fn compare_exchange_u64(
        &self,
        pa: u64,
        current: u64,
        new: u64,
    ) -> Result<Result<u64, u64>, MemError> {
        self.check(pa, 8, true);
        self.inner.compare_exchange_u64(pa, current, new)
    }
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        self.check(pa, buf.len() as u64, false);
        self.inner.read(pa, buf)
    }
    fn write(&self, pa: u64, buf: &[u8]) -> Result<(), MemError> {
        self.check(pa, buf.len() as u64, true);
        self.inner.write(pa, buf)
    }
    fn zero(&self, pa: u64, len: u64) -> Result<(), MemError> {
        self.check(pa, len, true);
        self.inner.zero(pa, len)
    }
    fn copy(&self, src: u64, dst: u64, len: u64) -> Result<(), MemError> {
        self.check(src, len, false);
        self.check(dst, len, true);
        self.inner.copy(src, dst, len)
    }
}
