//! vsva-iommufd: Linux's iommufd, the user API that owns I/O address spaces (IOAS), hardware
//! page tables (HWPT), fault queues and virtual IOMMUs, modelled so that a program written
//! against `/dev/iommu` runs unchanged on vsva.
//!
//! * [`abi`] — the byte-exact ioctl interface of `include/uapi/linux/iommufd.h` (plus the
//!   three VFIO cdev ioctls of `include/uapi/linux/vfio.h` that bind a device to iommufd and
//!   attach it to a page table): every argument struct, the ioctl numbers, the dispatch table
//!   with each command's minimum size, the struct-extension rules of
//!   `copy_struct_from_user()`, and the errno values.
//! * `ctx` — [`Iommufd`], one open `/dev/iommu` (`struct iommufd_ctx`, `main.c`):
//!   `IOMMU_DESTROY`, `IOMMU_OPTION`, closing.
//! * `object` — the object table: IDs, users, two-step creation, typed lookup.
//! * `ioas` — the IOAS object and its commands (`ioas.c`).
//! * `device` — bound devices and `IOMMU_GET_HW_INFO` (`device.c`).
//! * `hw_pagetable` — paging and nested HWPTs, `IOMMU_HWPT_ALLOC`, dirty tracking,
//!   `IOMMU_HWPT_INVALIDATE` (`hw_pagetable.c`); `dirty` — `IOMMU_HWPT_GET_DIRTY_BITMAP`.
//! * `eventq` — what fault queues and vEVENTQs share: waker, `poll`, the file table.
//! * `fault` — fault queues: `IOMMU_FAULT_QUEUE_ALLOC`, the fault file's read, write and
//!   poll, and the answers owed when attachments or queues go (`eventq.c`).
//! * `viommu` — vIOMMUs and `IOMMU_VIOMMU_ALLOC` (`viommu.c`), nested HWPTs and invalidation
//!   through a vIOMMU's driver; `vdevice` — vDEVICEs and `IOMMU_VDEVICE_ALLOC`; `veventq` —
//!   vIOMMU event queues, `IOMMU_VEVENTQ_ALLOC` and their file's read and poll (`eventq.c`),
//!   fed by the vDEVICEs' event handlers (`iommufd_viommu_report_event()`).
//! * `access` — accesses: emulated devices pinning and copying through an IOAS
//!   (`iommufd_access_*()` of `device.c`).
//! * `attach` — attaching devices and PASIDs to IOASes and HWPTs (`device.c`).
//! * `vfio_cdev` — the VFIO device cdev ioctls that bind and attach a device
//!   (`drivers/vfio/device_cdev.c`).
//! * `vfio_compat` — `IOMMU_VFIO_IOAS` (`vfio_compat.c`).
//! * [`fuzz`] — a byte-stream interpreter of ioctls on one context and its VFIO device files,
//!   with the leak checks at close (the cargo-fuzz target `iommufd_ctx` and a seeded test).
//! * `file` — [`FileResolver`]: how the descriptor of `IOMMU_IOAS_MAP_FILE` becomes memory.
//! * `ioctl` — [`Iommufd::ioctl`]: request number and argument bytes to a command and back.
//! * `user_memory` — [`UserMemory`], the caller's memory behind pointers in an argument.
//! * `io_pagetable`, `pages`, `domain` — the engine under an IOAS: its address space,
//!   the pinned user pages, and the I/O page tables it keeps filled.

#![forbid(unsafe_code)]

#[cfg(target_endian = "big")]
compile_error!("vsva models little-endian hardware and only builds on little-endian hosts");

pub mod abi;
mod access;
mod attach;
mod ctx;
mod device;
mod dirty;
mod domain;
mod eventq;
mod fault;
mod file;
pub mod fuzz;
mod hw_pagetable;
mod io_pagetable;
mod ioas;
mod ioctl;
mod object;
mod pages;
mod user_memory;
mod vdevice;
mod veventq;
mod vfio_cdev;
mod vfio_compat;
mod viommu;

pub use access::{Access, AccessOps};
pub use ctx::{AccountMode, Iommufd};
pub use device::{Device, DeviceInfo};
pub use domain::{IoDomain, IoProt};
pub use eventq::{PollFlags, Waker};
pub use fault::{Fault, FaultFile};
pub use fault::{PGFAULT_SIZE, RESPONSE_SIZE};
pub use file::FileResolver;
pub use hw_pagetable::{HwptNested, HwptPaging, HwptRef};
pub use io_pagetable::{EADDRINUSE, IoPageTable, ReservedBy};
pub use ioas::Ioas;
pub use object::{Held, IommufdObject, Object, ObjectType};
pub use pages::{AddressSpace, RwBuf};
pub use user_memory::{ProcessMemory, UserMemory};
pub use vdevice::Vdevice;
pub use veventq::{VEVENT_HEADER_SIZE, Veventq, VeventqFile};
pub use vfio_cdev::EmulatedDriver;
pub use vfio_cdev::{VfioDevice, VfioDeviceFile};
pub use viommu::Viommu;
