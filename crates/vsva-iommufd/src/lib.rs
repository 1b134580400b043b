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
//! * [`device`] — bound devices and `IOMMU_GET_HW_INFO` (`device.c`).
//! * [`hw_pagetable`] — paging and nested HWPTs, `IOMMU_HWPT_ALLOC`, dirty tracking,
//!   `IOMMU_HWPT_INVALIDATE` (`hw_pagetable.c`); [`dirty`] — `IOMMU_HWPT_GET_DIRTY_BITMAP`.
//! * [`fault`] — fault queues: `IOMMU_FAULT_QUEUE_ALLOC`, the fault file's read, write and
//!   poll, and the answers owed when attachments or queues go (`eventq.c`).
//! * [`viommu`] — vIOMMUs and `IOMMU_VIOMMU_ALLOC` (`viommu.c`); [`vdevice`] — vDEVICEs and
//!   `IOMMU_VDEVICE_ALLOC`.
//! * [`access`] — accesses: emulated devices pinning and copying through an IOAS
//!   (`iommufd_access_*()` of `device.c`).
//! * [`attach`] — attaching devices and PASIDs to IOASes and HWPTs (`device.c`).
//! * [`vfio_cdev`] — the VFIO device cdev ioctls that bind and attach a device
//!   (`drivers/vfio/device_cdev.c`).
//! * [`vfio_compat`] — `IOMMU_VFIO_IOAS` (`vfio_compat.c`).
//! * [`file`](mod@file) — [`FileResolver`]: how the descriptor of `IOMMU_IOAS_MAP_FILE` becomes memory.
//! * [`ioctl`] — [`Iommufd::ioctl`]: request number and argument bytes to a command and back.
//! * [`user_memory`] — [`UserMemory`], the caller's memory behind pointers in an argument.
//! * [`io_pagetable`], [`pages`], [`domain`] — the engine under an IOAS: its address space,
//!   the pinned user pages, and the I/O page tables it keeps filled.

#![forbid(unsafe_code)]

#[cfg(target_endian = "big")]
compile_error!("vsva models little-endian hardware and only builds on little-endian hosts");

pub mod abi;
pub mod access;
pub mod attach;
pub mod ctx;
pub mod device;
pub mod dirty;
pub mod domain;
pub mod fault;
pub mod file;
pub mod hw_pagetable;
pub mod io_pagetable;
pub mod ioas;
pub mod ioctl;
pub mod object;
pub mod pages;
pub mod user_memory;
pub mod vdevice;
pub mod vfio_cdev;
pub mod vfio_compat;
pub mod viommu;

pub use access::{Access, AccessOps};
pub use ctx::{AccountMode, Iommufd};
pub use device::{Device, DeviceInfo};
pub use fault::{Fault, FaultFile, PollFlags};
pub use file::FileResolver;
pub use hw_pagetable::{HwptNested, HwptPaging, HwptRef};
pub use ioas::Ioas;
pub use object::{Held, IommufdObject, Object, ObjectType};
pub use user_memory::{ProcessMemory, UserMemory};
pub use vdevice::Vdevice;
pub use vfio_cdev::{VfioDevice, VfioDeviceFile};
pub use viommu::Viommu;
