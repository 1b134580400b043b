//! vsva-iommufd: Linux's iommufd, the user API that owns I/O address spaces (IOAS), hardware
//! page tables (HWPT), fault queues and virtual IOMMUs, modelled so that a program written
//! against `/dev/iommu` runs unchanged on vsva.
//!
//! * [`abi`] — the byte-exact ioctl interface of `include/uapi/linux/iommufd.h` (plus the
//!   three VFIO cdev ioctls of `include/uapi/linux/vfio.h` that bind a device to iommufd and
//!   attach it to a page table): every argument struct, the ioctl numbers, the dispatch table
//!   with each command's minimum size, the struct-extension rules of
//!   `copy_struct_from_user()`, and the errno values.
//! * [`ctx`] — [`Iommufd`], one open `/dev/iommu` (`struct iommufd_ctx`, `main.c`):
//!   `IOMMU_DESTROY`, `IOMMU_OPTION`, closing.
//! * [`object`] — the object table: IDs, users, two-step creation, typed lookup.
//! * [`ioas`] — the IOAS object and its commands (`ioas.c`).
//! * [`vfio_compat`] — `IOMMU_VFIO_IOAS` (`vfio_compat.c`).
//! * [`ioctl`] — [`Iommufd::ioctl`]: request number and argument bytes to a command and back.
//! * [`user_memory`] — [`UserMemory`], the caller's memory behind pointers in an argument.
//! * [`io_pagetable`], [`pages`], [`domain`] — the engine under an IOAS: its address space,
//!   the pinned user pages, and the I/O page tables it keeps filled.
//!
//! Object families still to come, one module each as in Linux's `drivers/iommu/iommufd/`:
//! HWPT paging and nested, device, fault queue, vIOMMU, vDEVICE.

#![forbid(unsafe_code)]

#[cfg(target_endian = "big")]
compile_error!("vsva models little-endian hardware and only builds on little-endian hosts");

pub mod abi;
pub mod ctx;
pub mod domain;
pub mod io_pagetable;
pub mod ioas;
pub mod ioctl;
pub mod object;
pub mod pages;
pub mod user_memory;
pub mod vfio_compat;

pub use ctx::{AccountMode, Iommufd};
pub use ioas::Ioas;
pub use object::{Held, IommufdObject, Object, ObjectType};
pub use user_memory::{ProcessMemory, UserMemory};
