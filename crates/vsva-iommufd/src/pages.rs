//! The memory behind an IOAS mapping: a range of a process's address space, pinned while any
//! domain needs it (Linux `struct iopt_pages`).
//!
//! Linux pins lazily: `IOMMU_IOAS_MAP` with no domain attached only records the user range,
//! and the pages are pinned (and charged as locked memory) when the first domain must be
//! filled. vsva does the same, at the granularity of the whole range: a `Pages` is pinned
//! once, by its first domain user, and unpinned by its last.
//!
//! Accesses (emulated devices, [`crate::access`]) pin single pages instead, as Linux's
//! `iopt_pages_add_access()` keeps them in `pages->pinned_pfns`: each page has a count of the
//! access pins on it. Locked memory is charged once per page whoever pins it — a page pinned
//! by an access and then by a domain is charged once (Linux's `npinned`), so the charge is
//! "every page" while a domain holds the range and "the access-pinned pages" otherwise.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use vsva_mem::{PhysMem, Va};
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

/// The caller's side of an access read or write (`Pages::rw`).
#[derive(Debug)]
pub enum RwBuf<'a> {
    /// Read the pages into this buffer.
    Read(&'a mut [u8]),
    /// Write this data to the pages.
    Write(&'a [u8]),
}

impl RwBuf<'_> {
    /// Bytes to move.
    pub fn len(&self) -> usize {
        match self {
            RwBuf::Read(b) => b.len(),
            RwBuf::Write(b) => b.len(),
        }
    }

    /// Whether nothing is to move.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether it writes to the pages.
    pub fn is_write(&self) -> bool {
        matches!(self, RwBuf::Write(_))
    }
}

/// A user range that areas of one or more IOASes map (COPY shares it).
pub struct Pages {
    /// Where the pages come from: the mapping process, or a file (`IOMMU_IOAS_MAP_FILE`).
    process: Arc<dyn AddressSpace>,
    /// Who is charged for the pinned pages (`source_mm` / `source_user`): the process that
    /// mapped them, until `IOMMU_IOAS_CHANGE_PROCESS` moves the charge. Locked after `pins`.
    owner: Mutex<Arc<dyn AddressSpace>>,
    /// Whether the pages are a file's (`IOPT_ADDRESS_FILE`).
    file: bool,
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
    /// Domain users of the whole range.
    users: u32,
    /// The whole range's pinned runs while `users > 0`.
    runs: Vec<Pinned>,
    /// Pages pinned by accesses: page index -> its pins and its pinned frame.
    access: BTreeMap<u64, AccessPin>,
}

/// One page pinned by accesses.
struct AccessPin {
    count: u32,
    run: Pinned,
}

impl PinState {
    /// Pages charged as locked memory now.
    fn charged(&self, npages: u64) -> u64 {
        if self.users > 0 {
            npages
        } else {
            self.access.len() as u64
        }
    }
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
    /// range wraps; `ENOMEM` when [`vsva_mem::fail_nth`] fails the allocation.
    pub fn new(
        process: Arc<dyn AddressSpace>,
        uptr: u64,
        length: u64,
        writable: bool,
    ) -> Result<Arc<Pages>, Errno> {
        Self::build(process.clone(), process, false, uptr, length, writable)
    }

    /// The pages holding `[start, start + length)` of the file `file`, charged to `owner`
    /// (`iopt_alloc_file_pages()`).
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn new_file(
        file: Arc<dyn AddressSpace>,
        owner: Arc<dyn AddressSpace>,
        start: u64,
        length: u64,
        writable: bool,
    ) -> Result<Arc<Pages>, Errno> {
        Self::build(file, owner, true, start, length, writable)
    }

    fn build(
        process: Arc<dyn AddressSpace>,
        owner: Arc<dyn AddressSpace>,
        file: bool,
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
        vsva_mem::fail_nth::check()?;
        Ok(Arc::new(Pages {
            process,
            owner: Mutex::new(owner),
            file,
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

    /// Whether the pages are a file's (mapped with `IOMMU_IOAS_MAP_FILE`).
    pub fn is_file(&self) -> bool {
        self.file
    }

    /// Who is charged for the pinned pages.
    pub fn owner(&self) -> Arc<dyn AddressSpace> {
        lock(&self.owner).clone()
    }

    /// The pages charged now to an owner other than `to`: what `IOMMU_IOAS_CHANGE_PROCESS`
    /// moves to `to` (0 if `to` owns them already). Stable while the caller holds the lock of
    /// every IOAS mapping these pages, as every pin and unpin is made under one.
    pub(crate) fn charge_to_move(&self, to: &Arc<dyn AddressSpace>) -> u64 {
        let st = lock(&self.pins);
        if std::ptr::addr_eq(Arc::as_ptr(&self.owner()), Arc::as_ptr(to)) {
            0
        } else {
            st.charged(self.npages)
        }
    }

    /// Makes `to` the owner — the caller has charged `to` already — and takes the charge off
    /// the old owner (`change_mm()` after `charge_current()`).
    pub(crate) fn move_charge(&self, to: &Arc<dyn AddressSpace>) {
        let st = lock(&self.pins);
        let old = std::mem::replace(&mut *lock(&self.owner), to.clone());
        if !std::ptr::addr_eq(Arc::as_ptr(&old), Arc::as_ptr(to)) {
            old.unaccount(st.charged(self.npages));
        }
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
            // pages accesses pinned are charged already
            let charge = self.npages - st.access.len() as u64;
            self.owner().account(charge)?;
            match self.process.pin(self.base, self.len(), self.writable) {
                Ok(runs) => st.runs = runs,
                Err(e) => {
                    self.owner().unaccount(charge);
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
                self.owner().unaccount(self.npages - st.access.len() as u64);
            }
            _ => st.users -= 1,
        }
    }

    /// The pinned runs, if the pages are pinned.
    pub fn pinned_runs(&self) -> Option<Vec<Pinned>> {
        let st = lock(&self.pins);
        (st.users > 0).then(|| st.runs.clone())
    }

    /// Pins pages `first..=last` (indexes from [`base`](Self::base)) for an access
    /// (`iopt_pages_add_access()`): each page's access count goes up; a page no access had
    /// pinned is faulted in and pinned on its own (for writing if the pages are writable,
    /// whatever the access asked, as Linux pins them) and charged unless a domain holds the
    /// range. Returns each page's physical address.
    ///
    /// # Errors
    /// `EINVAL` for indexes outside the range; `ENOMEM` past RLIMIT_MEMLOCK; `EFAULT` if a
    /// page cannot be pinned. Nothing changes on error.
    pub fn pin_for_access(&self, first: u64, last: u64) -> Result<Vec<u64>, Errno> {
        if first > last || last >= self.npages {
            return Err(Errno::EINVAL);
        }
        let mut st = lock(&self.pins);
        let fresh = (first..=last)
            .filter(|i| !st.access.contains_key(i))
            .count() as u64;
        let charge = if st.users > 0 { 0 } else { fresh };
        self.owner().account(charge)?;
        let mut pinned: Vec<(u64, Pinned)> = Vec::new();
        for index in first..=last {
            if st.access.contains_key(&index) {
                continue;
            }
            match self
                .process
                .pin(self.base + index * PAGE, PAGE, self.writable)
            {
                Ok(runs) => match runs.as_slice() {
                    [run] => pinned.push((index, *run)),
                    _ => {
                        self.process.unpin(&runs);
                        Self::unpin_runs(self.process.as_ref(), &pinned);
                        self.owner().unaccount(charge);
                        return Err(Errno::EFAULT);
                    }
                },
                Err(e) => {
                    Self::unpin_runs(self.process.as_ref(), &pinned);
                    self.owner().unaccount(charge);
                    return Err(e);
                }
            }
        }
        for (index, run) in pinned {
            st.access.insert(index, AccessPin { count: 0, run });
        }
        let mut out = Vec::with_capacity((last - first + 1) as usize);
        for index in first..=last {
            if let Some(pin) = st.access.get_mut(&index) {
                pin.count += 1;
                out.push(pin.run.pa);
            }
        }
        Ok(out)
    }

    fn unpin_runs(process: &dyn AddressSpace, pinned: &[(u64, Pinned)]) {
        let runs: Vec<Pinned> = pinned.iter().map(|&(_, run)| run).collect();
        process.unpin(&runs);
    }

    /// Drops one access pin of pages `first..=last` (`iopt_pages_remove_access()`); a page's
    /// last pin unpins it and returns its charge unless a domain holds the range. A page
    /// without access pins is a caller's bug: logged and skipped (Linux warns). Returns the
    /// pins dropped: the pages that had one.
    pub fn unpin_for_access(&self, first: u64, last: u64) -> u64 {
        let mut st = lock(&self.pins);
        let mut freed = Vec::new();
        let mut dropped = 0;
        for index in first..=last.min(self.npages.saturating_sub(1)) {
            match st.access.get_mut(&index) {
                Some(pin) if pin.count > 1 => pin.count -= 1,
                Some(_) => {
                    if let Some(pin) = st.access.remove(&index) {
                        freed.push(pin.run);
                    }
                }
                None => {
                    tracing::error!(index, "access unpin of a page no access pinned");
                    continue;
                }
            }
            dropped += 1;
        }
        if !freed.is_empty() {
            self.process.unpin(&freed);
            if st.users == 0 {
                self.owner().unaccount(freed.len() as u64);
            }
        }
        dropped
    }

    /// Reads or writes `buf.len()` bytes from byte `start_byte` of the range through `mem`
    /// (`iopt_pages_rw_access()`). Linux copies through the pinned pages when it has them and
    /// otherwise pins the pages for the copy (`iopt_pages_rw_slow()`); vsva always does the
    /// latter — a pin on a pinned page only counts — and does not charge those short pins.
    ///
    /// # Errors
    /// `EINVAL` outside the range; `EFAULT` if the pages cannot be pinned or `mem` refuses
    /// the access; `ENOMEM`.
    pub fn rw(&self, start_byte: u64, mut buf: RwBuf<'_>, mem: &dyn PhysMem) -> Result<(), Errno> {
        let len = buf.len() as u64;
        if len == 0 {
            return Ok(());
        }
        let end = start_byte.checked_add(len).ok_or(Errno::EINVAL)?;
        if end > self.len() {
            return Err(Errno::EINVAL);
        }
        let first = start_byte / PAGE;
        let last = (end - 1) / PAGE;
        let va0 = self.base + first * PAGE;
        let runs = self
            .process
            .pin(va0, (last - first + 1) * PAGE, self.writable)?;
        let mut result = Ok(());
        let mut done = 0u64;
        let want = self.base + start_byte;
        for run in &runs {
            let (rs, re) = (run.va.raw(), run.va.raw() + run.len);
            let (s, e) = (rs.max(want + done), re.min(want + len));
            if s >= e || s != want + done {
                continue;
            }
            let pa = run.pa + (s - rs);
            let (lo, hi) = (done as usize, (done + e - s) as usize);
            let moved = match &mut buf {
                RwBuf::Read(b) => mem.read(pa, &mut b[lo..hi]),
                RwBuf::Write(b) => mem.write(pa, &b[lo..hi]),
            };
            if moved.is_err() {
                result = Err(Errno::EFAULT);
                break;
            }
            done += e - s;
        }
        if result.is_ok() && done != len {
            result = Err(Errno::EFAULT);
        }
        self.process.unpin(&runs);
        result
    }
}
