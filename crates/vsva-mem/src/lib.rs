//! vsva-mem: the memory every vsva model reads and writes.
//!
//! * [`addr`] — typed addresses, one newtype per address space ([`Hpa`], [`Gpa`], [`Iova`],
//!   [`Va`]) and the page sizes x86 and VT-d use.
//! * [`pasid`] — the 20-bit PCIe Process Address Space ID.
//! * [`rid`] — PCIe requester IDs (bus/device/function).
//! * [`access`] — the rights a memory request asks for (read, write, exec, privileged).
//! * [`phys`] — physical memory: the [`PhysMem`] trait the page-table walkers read through,
//!   and [`PhysMemory`], a large sparse space backed by rust-vmm's `vm-memory`.
//! * [`frame`] — a buddy frame allocator for 4 KiB, 2 MiB and 1 GiB frames.
//! * [`fail_nth`] — allocation-failure injection: a per-thread countdown a test arms so that
//!   the Nth allocation from then on fails with `ENOMEM` (Linux's `fail-nth`); every fallible
//!   allocation of the frame allocator, the memory manager, the IOMMU core and iommufd checks it.
//!
//! Physical addresses inside [`PhysMem`] and [`FrameAllocator`] are plain `u64`: the same
//! memory type serves as host memory (HPAs) and, later, as a guest's memory (GPAs), and the
//! layer that knows which one it is wraps them in [`Hpa`] or [`Gpa`].

#[cfg(target_endian = "big")]
compile_error!("vsva models little-endian hardware and only builds on little-endian hosts");

pub mod access;
pub mod addr;
pub mod errno;
pub mod fail_nth;
pub mod frame;
pub mod gated;
pub mod pasid;
pub mod phys;
pub mod rid;
pub mod segments;

pub use access::Access;
pub use addr::{Gpa, Hpa, Iova, PageSize, Va};
pub use errno::Errno;
pub use frame::{FrameAllocator, FrameError};
pub use gated::GatedMemory;
pub use pasid::{Pasid, PasidError};
pub use phys::{CreateError, MemError, PhysMem, PhysMemory, PhysWindow};
pub use rid::{Rid, RidError};
pub use segments::{SegmentError, SegmentedMemory};
