//! Holding an address space alive (Linux `mmget_not_zero` / `mmput` around a user of an mm
//! that is not the process itself, such as an SVA bind).
//!
//! [`Process::hold`] succeeds only before [`Process::exit`] began, and exit waits for every
//! [`LiveSpace`] to go before it tells its listeners (`release`) and tears the tables down. So
//! whoever registers a notifier and hands the page-table root to a device while holding one
//! either finishes before exit looks at its listeners — `release` then reaches the new
//! notifier, before any table is freed — or learns that the process is exiting and gives up.
//!
//! A hold takes no address-space lock: faults, munmap, mprotect and fork run while the space
//! is held (only exit waits). The holder must not call [`Process::exit`] on the process it holds.

use std::sync::{Condvar, Mutex, MutexGuard};

use crate::process::{Process, rlock};
use crate::sva::SvaContext;

/// Exit's progress and the holders it waits for.
#[derive(Debug, Default)]
pub(crate) struct Life {
    state: Mutex<LifeState>,
    /// Signalled when the last holder goes.
    released: Condvar,
}

#[derive(Debug, Default)]
struct LifeState {
    /// [`Process::exit`] began: no new holder.
    exiting: bool,
    /// Live [`LiveSpace`]s.
    holders: usize,
}

impl Life {
    fn lock(&self) -> MutexGuard<'_, LifeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the process exiting and waits until nobody holds its address space. False if
    /// exit had begun already.
    pub(crate) fn begin_exit(&self) -> bool {
        let mut s = self.lock();
        if s.exiting {
            return false;
        }
        s.exiting = true;
        while s.holders > 0 {
            s = self.released.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        true
    }

    pub(crate) fn exiting(&self) -> bool {
        self.lock().exiting
    }
}

/// The address space of a process that cannot start exiting while this is held
/// ([`Process::hold`]).
#[derive(Debug)]
pub struct LiveSpace<'a> {
    process: &'a Process,
    root: u64,
}

impl LiveSpace<'_> {
    /// Physical address of the page table's root (CR3; an IOMMU's first-stage pointer), valid
    /// at least as long as this is held.
    pub fn root(&self) -> u64 {
        self.root
    }

    /// The process held.
    pub fn process(&self) -> &Process {
        self.process
    }

    /// What an IOMMU needs to walk the table for SVA (root, format, and on Arm64 the
    /// translation controls, ASID and MAIR), valid at least as long as this is held.
    pub fn sva(&self) -> SvaContext {
        SvaContext::new(self.root, self.process.paging(), self.process.asid())
    }
}

impl Drop for LiveSpace<'_> {
    fn drop(&mut self) {
        let mut s = self.process.life.lock();
        s.holders -= 1;
        if s.holders == 0 {
            self.process.life.released.notify_all();
        }
    }
}

impl Process {
    /// Holds the address space alive: exit waits, before it tells its listeners anything, until
    /// the returned [`LiveSpace`] is dropped. `None` once exit has begun.
    pub fn hold(&self) -> Option<LiveSpace<'_>> {
        {
            let mut s = self.life.lock();
            if s.exiting {
                return None;
            }
            s.holders += 1;
        }
        // Taken now, so that a `None` below gives the hold back.
        let mut live = LiveSpace {
            process: self,
            root: 0,
        };
        // From here exit waits for us, so the table cannot be gone (`None` is unreachable).
        // The life lock is not held while the address-space lock is taken: no order between
        // the two.
        live.root = rlock(&self.space).pt.as_ref()?.root();
        Some(live)
    }

    /// Has exit begun (it may still be tearing the address space down)?
    pub fn is_exiting(&self) -> bool {
        self.life.exiting()
    }
}
