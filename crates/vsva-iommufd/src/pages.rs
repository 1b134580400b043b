//! The memory behind an IOAS mapping: a range of a process's address space, pinned while any
//! domain needs it (Linux `struct iopt_pages`).
//!
//! Linux pins lazily: `IOMMU_IOAS_MAP` with no domain attached only records the user range,
//! and the pages are pinned (and charged as locked memory) when the first domain must be
//! filled. vsva does the same, at the granularity of the whole range: a `Pages` is pinned
//! once, by its first user, and unpinned by its last.

use std::sync::{Arc, Mutex};

use vsva_mem::Va;
use vsva_mm::{Pinned, Process};

use crate::abi::Errno;

const PAGE: u64 = 4096;

/// The memory `user_va` refers to: an address space whose pages can be pinned for DMA and
/// charged as locked memory. A process of vsva's memory manager is one; the `/dev/iommu`
/// shim provides another for the real program that opened it.
pub trait AddressSpace: Send + Sync {
    /// A name for traces (a pid).
    fn name(&self) -> String;

    /// Faults in and pins `[va, va + len)` (page aligned); `write` asks for pages DMA may
    /// write. Returns the physical runs in address order; on error nothing stays pinned.
    ///
    /// # Errors
    /// `EFAULT` for memory the space does not have (or cannot write), `ENOMEM`.
    fn pin(&self, va: u64, len: u64, write: bool) -> Result<Vec<Pinned>, Errno>;

    /// Drops pins `pin` took.
    fn unpin(&self, runs: &[Pinned]);

    /// Charges `pages` of locked memory.
    ///
    /// # Errors
    /// `ENOMEM` past the limit (nothing charged then).
    fn account(&self, pages: u64) -> Result<(), Errno>;

    /// Returns a charge.
    fn unaccount(&self, pages: u64);
}

impl AddressSpace for Process {
    fn name(&self) -> String {
        format!("pid {}", self.pid())
    }

    fn pin(&self, va: u64, len: u64, write: bool) -> Result<Vec<Pinned>, Errno> {
        self.pin_pages(Va::new(va), len, write).map_err(Errno::from)
    }

    fn unpin(&self, runs: &[Pinned]) {
        self.unpin_pages(runs);
    }

    fn account(&self, pages: u64) -> Result<(), Errno> {
        self.account_locked(pages).map_err(Errno::from)
    }

    fn unaccount(&self, pages: u64) {
        self.unaccount_locked(pages);
    }
}

/// A user range that areas of one or more IOASes map (COPY shares it).
pub struct Pages {
    process: Arc<dyn AddressSpace>,
    /// First byte of the first page (the user address rounded down to a page).
    base: u64,
    /// Pages in the range.
    npages: u64,
    /// Whether the memory may be pinned for DMA writes.
    writable: bool,
    pins: Mutex<PinState>,
}

#[derive(Default)]
struct PinState {
    users: u32,
    runs: Vec<Pinned>,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pages")
            .field("space", &self.process.name())
            .field("base", &format_args!("{:#x}", self.base))
            .field("npages", &self.npages)
            .field("writable", &self.writable)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pages {
    /// The pages holding `[uptr, uptr + length)` of `process` (`iopt_alloc_pages`).
    ///
    /// # Errors
    /// `EINVAL` for a zero length or one too large to round up to pages; `EOVERFLOW` if the
    /// range wraps.
    pub fn new(
        process: Arc<dyn AddressSpace>,
        uptr: u64,
        length: u64,
        writable: bool,
    ) -> Result<Arc<Pages>, Errno> {
        if length == 0 || length > u64::MAX - PAGE {
            return Err(Errno::EINVAL);
        }
        let end = uptr.checked_add(length).ok_or(Errno::EOVERFLOW)?;
        let base = uptr & !(PAGE - 1);
        let last_page = (end - 1) & !(PAGE - 1);
        let npages = (last_page - base) / PAGE + 1;
        // whole pages must still be countable in bytes (a range of 2^52 pages is not)
        if npages.checked_mul(PAGE).is_none() {
            return Err(Errno::EINVAL);
        }
        Ok(Arc::new(Pages {
            process,
            base,
            npages,
            writable,
            pins: Mutex::new(PinState::default()),
        }))
    }

    /// The user address of byte 0 of the first page.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Bytes covered (whole pages).
    pub fn len(&self) -> u64 {
        self.npages * PAGE
    }

    /// Never true: a `Pages` covers at least one page.
    pub fn is_empty(&self) -> bool {
        self.npages == 0
    }

    /// Whether DMA may write these pages.
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// The address space the pages belong to.
    pub fn process(&self) -> &Arc<dyn AddressSpace> {
        &self.process
    }

    /// Takes a pin user: the first one faults the range in, pins it and charges the process's
    /// locked memory. Returns the pinned runs.
    ///
    /// # Errors
    /// `ENOMEM` past RLIMIT_MEMLOCK or out of memory; `EFAULT` if part of the range is not
    /// mapped (or not writable when the pages are); nothing is pinned or charged then.
    pub fn pin(&self) -> Result<Vec<Pinned>, Errno> {
        let mut st = lock(&self.pins);
        if st.users == 0 {
            self.process.account(self.npages)?;
            match self.process.pin(self.base, self.len(), self.writable) {
                Ok(runs) => st.runs = runs,
                Err(e) => {
                    self.process.unaccount(self.npages);
                    return Err(e);
                }
            }
        }
        st.users += 1;
        Ok(st.runs.clone())
    }

    /// Drops a pin user; the last one unpins the range and returns the locked-memory charge.
    pub fn unpin(&self) {
        let mut st = lock(&self.pins);
        match st.users {
            0 => tracing::error!("unpin of iommufd pages that are not pinned"),
            1 => {
                st.users = 0;
                let runs = std::mem::take(&mut st.runs);
                self.process.unpin(&runs);
                self.process.unaccount(self.npages);
            }
            _ => st.users -= 1,
        }
    }

    /// The pinned runs, if the pages are pinned.
    pub fn pinned_runs(&self) -> Option<Vec<Pinned>> {
        let st = lock(&self.pins);
        (st.users > 0).then(|| st.runs.clone())
    }
}
