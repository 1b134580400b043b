//! vsva-mm: the OS memory manager whose page tables SVA shares with devices.
//!
//! A [`MemoryManager`] (the kernel's view of physical memory) owns processes; each
//! [`Process`] has an address space of VMAs and a page table in physical memory, in the
//! machine's CPU format — x86-64 or Arm64 ([`CpuPaging`], see the `cpu` module) — the same
//! table the CPU model walks and that an IOMMU's first stage walks when a device is bound to
//! the process (SVA; [`SvaContext`] is what the IOMMU needs). It implements what such a
//! binding relies on:
//!
//! * [`Process::mmap`], [`munmap`](Process::munmap), [`mprotect`](Process::mprotect),
//!   [`madvise`](Process::madvise) (drop pages, page out), [`fork`](Process::fork) with
//!   copy-on-write, [`exit`](Process::exit);
//! * demand paging: [`Process::handle_fault`] fills the page table or returns the error a
//!   kernel would (no VMA: `SEGV_MAPERR`; forbidden access: `SEGV_ACCERR`), as an IOMMU's I/O
//!   page-fault handler needs;
//! * MMU notifiers ([`MmuNotifier`]): every change that takes a translation away (unmap,
//!   protect, page-out, drop, copy-on-write break, fork's write-protect) is announced after
//!   the page table changed and before any frame it mapped is freed or reused, and process exit
//!   is announced before the address space is torn down — so an IOMMU can flush its IOTLB and
//!   the devices' ATCs in time (Linux `mmu_notifier`, `arch_invalidate_secondary_tlbs`).
//!
//! Locking: each process has one reader/writer lock (Linux's `mmap_lock`). `mmap`, `munmap`,
//! `mprotect`, `madvise`, `fork` and `exit` take it for writing; faults take it for reading
//! and install entries by compare-and-swap, so faults from several devices and CPUs run in
//! parallel. Notifiers are called with the lock held and must not call back into the same
//! process's memory manager — except `release`, which exit calls before it takes the lock.
//! [`Process::hold`] keeps exit from starting (Linux `mmget_not_zero`) without taking the
//! lock: a user of the page table that is not the process itself (an SVA bind) holds it while
//! it registers its notifier and hands the root out.

mod cpu;
mod error;
mod fault;
mod fork;
mod live;
mod manager;
mod notifier;
mod pin;
mod process;
pub mod softpte;
mod sva;
mod swap;
mod vma;

pub use cpu::{ARM_SW_DIRTY, CpuArch, CpuPaging, LINUX_MAIR_EL1};
pub use error::{MmError, Result};
pub use live::LiveSpace;
pub use manager::{MemoryManager, MmStats};
pub use notifier::{InvalidateReason, MmuNotifier, NotifierId};
pub use pin::Pinned;
pub use process::{Advice, MapFlags, Pid, Process};
pub use softpte::PteKind;
pub use sva::{ArmTcr, SvaContext};
pub use vma::{Prot, Vma};
