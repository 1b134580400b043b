//! MMU notifiers: how secondary MMUs (an IOMMU walking this process's page table for a device,
//! a device's ATC) learn that translations went away (Linux `include/linux/mmu_notifier.h`).

use vsva_mem::Va;

use crate::process::Pid;

/// Why a range lost (or narrowed) its translations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvalidateReason {
    /// munmap, or a MAP_FIXED mmap replacing the range.
    Unmap,
    /// mprotect.
    Protect,
    /// madvise(MADV_DONTNEED).
    DontNeed,
    /// madvise(MADV_PAGEOUT): pages written to swap.
    PageOut,
    /// A copy-on-write fault replaced a shared page by a private copy.
    CowBreak,
    /// fork write-protected the parent's private pages.
    ForkWriteProtect,
    /// Process exit tore the address space down.
    Exit,
}

/// A listener registered on a process's address space.
///
/// `invalidate_range` is called with the process's address-space lock held: an implementation
/// must not call back into the same process's memory manager, nor wait for anything that does.
/// `release` is called without it, once nobody holds the address space ([`Process::hold`]).
///
/// [`Process::hold`]: crate::Process::hold
pub trait MmuNotifier: Send + Sync {
    /// Translations of `[start, end)` changed. The page table already holds the new entries;
    /// the frames they mapped are freed or reused only after this returns.
    fn invalidate_range(&self, pid: Pid, start: Va, end: Va, reason: InvalidateReason);

    /// The process is exiting: its address space is about to be torn down (Linux
    /// `mmu_notifier_ops.release`). `invalidate_range` calls with [`InvalidateReason::Exit`]
    /// follow for what was mapped.
    fn release(&self, pid: Pid);
}

/// Handle of a registration, for unregistering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NotifierId(pub(crate) u64);
