//! Pinning user pages for long-term DMA (Linux `pin_user_pages(FOLL_LONGTERM)`), and the
//! locked-memory accounting that goes with it (`mm->pinned_vm` against RLIMIT_MEMLOCK).
//!
//! A pinned page holds a reference of its own, so it outlives munmap of the range; it is
//! never paged out; and fork gives the child a copy of it instead of sharing it copy-on-write,
//! so that a device writing the page keeps writing the page the parent sees. Pinning a range
//! of a writable mapping first makes every page exclusive (a write fault), as Linux's GUP does
//! with its unshare fault.
//!
//! Pinning does not charge locked memory by itself: the pinning user (iommufd, VFIO) charges
//! with [`Process::account_locked`], which is how Linux splits the two.

use std::sync::atomic::Ordering;

use vsva_mem::{Access, PageSize, Va};
use vsva_pgtable::Perm;

use crate::error::{MmError, Result};
use crate::process::{Process, rlock};
use crate::softpte::PteKind;
use crate::vma::Prot;

/// A pinned run of user memory that lies inside one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pinned {
    /// The user address of the run's first byte.
    pub va: Va,
    /// The physical address of the run's first byte.
    pub pa: u64,
    /// Bytes in the run (a multiple of 4 KiB).
    pub len: u64,
    /// The frame holding the pin (the start of the 4K, 2M or 1G page).
    pub frame: u64,
}

/// How often one page is faulted before pinning gives up (each fault that loses a race
/// leaves the next look to find the page; a page still missing after this is an error).
const PIN_RETRIES: usize = 8;

impl Process {
    /// Faults in and pins `[va, va + len)`, both 4 KiB aligned; `write` asks for pages the
    /// caller may write. Returns the runs in address order. On error nothing stays pinned.
    ///
    /// # Errors
    /// [`MmError::Invalid`] for a misaligned, empty or wrapping range; the fault's error
    /// ([`MmError::NoVma`], [`MmError::AccessDenied`] — EFAULT as GUP gives it —,
    /// [`MmError::OutOfMemory`], [`MmError::Exited`]).
    pub fn pin_pages(&self, va: Va, len: u64, write: bool) -> Result<Vec<Pinned>> {
        let page = PageSize::Size4K.bytes();
        let start = va.raw();
        let end = start
            .checked_add(len)
            .ok_or(MmError::Invalid("range wraps"))?;
        if len == 0 || start % page != 0 || len % page != 0 {
            return Err(MmError::Invalid(
                "pin range must be non-empty and page aligned",
            ));
        }
        let space = rlock(&self.space);
        let mut runs: Vec<Pinned> = Vec::new();
        let mut at = start;
        let result = (|| -> Result<()> {
            while at < end {
                // one page-list allocation per run (`pin_user_pages()`'s batch)
                if vsva_mem::fail_nth::should_fail() {
                    return Err(MmError::OutOfMemory);
                }
                let pt = space.pt.as_ref().ok_or(MmError::Exited)?;
                let vma = *space
                    .vmas
                    .find(at)
                    .ok_or(MmError::NoVma { va: Va::new(at) })?;
                // A writable private mapping is made exclusive first, as GUP's unshare does,
                // so the pinned page is the one the process keeps.
                let access = if write || vma.prot.contains(Prot::WRITE) {
                    Access::WRITE
                } else {
                    Access::READ
                };
                let mut pinned = None;
                for _ in 0..PIN_RETRIES {
                    if let Some(leaf) = pt.lookup(at) {
                        let fmt = pt.paging();
                        let usable = fmt.classify(leaf.entry) == PteKind::Present
                            && (!access.is_write() || fmt.rights(leaf.entry).contains(Perm::WRITE))
                            && (!access.is_write() || self.mm.map_count(leaf.pa) <= 1);
                        if usable && self.mm.pin_page(leaf.pa) {
                            pinned = Some(leaf);
                            break;
                        }
                    }
                    self.fault_locked(&space, at, access)?;
                }
                let leaf = pinned.ok_or(MmError::OutOfMemory)?;
                if write {
                    // The device writes the frame through a mapping of its own, past this
                    // entry: count the page dirty now (Linux GUP marks the folio dirty for
                    // FOLL_WRITE). One try per change hardware makes meanwhile.
                    let fmt = pt.paging();
                    let mut old = leaf.entry;
                    for _ in 0..PIN_RETRIES {
                        let new = fmt.mkdirty(old);
                        if new == old || pt.replace_entry(leaf.slot, old, new)? {
                            break;
                        }
                        old = pt
                            .memory()
                            .load_u64(leaf.slot)
                            .map_err(vsva_pgtable::MapError::from)?;
                        if fmt.classify(old) != PteKind::Present
                            || fmt.page_addr(old, leaf.size) != leaf.pa
                        {
                            break;
                        }
                    }
                }
                let leaf_end = leaf.va + leaf.size.bytes();
                let run_end = leaf_end.min(end);
                runs.push(Pinned {
                    va: Va::new(at),
                    pa: leaf.pa + (at - leaf.va),
                    len: run_end - at,
                    frame: leaf.pa,
                });
                at = run_end;
            }
            Ok(())
        })();
        drop(space);
        match result {
            Ok(()) => Ok(runs),
            Err(e) => {
                self.unpin_pages(&runs);
                Err(e)
            }
        }
    }

    /// Drops the pins `pin_pages` took. Pages no longer mapped anywhere are freed.
    pub fn unpin_pages(&self, runs: &[Pinned]) {
        for r in runs {
            self.mm.unpin_page(r.frame);
        }
    }

    /// Sets RLIMIT_MEMLOCK in bytes (`u64::MAX`: unlimited, as for a process with
    /// CAP_IPC_LOCK). Pages already charged stay charged.
    pub fn set_memlock_limit(&self, bytes: u64) {
        self.memlock_limit.store(bytes, Ordering::Relaxed);
    }

    /// RLIMIT_MEMLOCK in bytes.
    pub fn memlock_limit(&self) -> u64 {
        self.memlock_limit.load(Ordering::Relaxed)
    }

    /// Pages charged as locked.
    pub fn locked_pages(&self) -> u64 {
        self.pinned_vm.load(Ordering::Relaxed)
    }

    /// Charges `pages` of locked memory against RLIMIT_MEMLOCK.
    ///
    /// # Errors
    /// [`MmError::MemlockLimit`] (ENOMEM) if the charge would pass the limit,
    /// [`MmError::OutOfMemory`] when [`vsva_mem::fail_nth`] fails it; nothing is charged then.
    pub fn account_locked(&self, pages: u64) -> Result<()> {
        if vsva_mem::fail_nth::should_fail() {
            return Err(MmError::OutOfMemory);
        }
        let limit = self.memlock_limit() / PageSize::Size4K.bytes();
        self.pinned_vm
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |locked| {
                locked.checked_add(pages).filter(|&n| n <= limit)
            })
            .map(|_| ())
            .map_err(|locked| MmError::MemlockLimit {
                wanted: pages,
                locked,
                limit,
            })
    }

    /// Returns `pages` charged by [`account_locked`](Self::account_locked).
    pub fn unaccount_locked(&self, pages: u64) {
        let r = self
            .pinned_vm
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |locked| {
                locked.checked_sub(pages)
            });
        if r.is_err() {
            tracing::error!(pages, "unaccounting more locked memory than was charged");
            self.pinned_vm.store(0, Ordering::Release);
        }
    }
}
