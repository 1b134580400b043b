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

/// A user range that areas of one or more IOASes map (COPY shares it).
pub struct Pages {
    process: Arc<Process>,
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
            .field("pid", &self.process.pid())
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
        process: Arc<Process>,
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
        Ok(Arc::new(Pages {
            process,
            base,
            npages: (last_page - base) / PAGE + 1,
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

    /// The owning process.
    pub fn process(&self) -> &Arc<Process> {
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
            self.process
                .account_locked(self.npages)
                .map_err(|e| Errno(e.errno()))?;
            match self
                .process
                .pin_pages(Va::new(self.base), self.len(), self.writable)
            {
                Ok(runs) => st.runs = runs,
                Err(e) => {
                    self.process.unaccount_locked(self.npages);
                    return Err(Errno(e.errno()));
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
                self.process.unpin_pages(&runs);
                self.process.unaccount_locked(self.npages);
            }
            _ => st.users -= 1,
        }
    }

    /// The pinned runs, if the pages are pinned.
    pub fn pinned_runs(&self) -> Option<Vec<Pinned>> {
        let st = lock(&self.pins);
        (st.users > 0).then(|| st.runs.clone())
    }

    /// Pin users now.
    pub fn pin_users(&self) -> u32 {
        lock(&self.pins).users
    }
}
