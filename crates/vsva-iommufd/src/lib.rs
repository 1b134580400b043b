//! vsva-iommufd: Linux's iommufd, the user API that owns I/O address spaces (IOAS), hardware
//! page tables (HWPT), fault queues and virtual IOMMUs, modelled so that a program written
//! against `/dev/iommu` runs unchanged on vsva.
//!
//! * [`abi`] — the byte-exact ioctl interface of `include/uapi/linux/iommufd.h` (plus the
//!   three VFIO cdev ioctls of `include/uapi/linux/vfio.h` that bind a device to iommufd and
//!   attach it to a page table): every argument struct, the ioctl numbers, the dispatch table
//!   with each command's minimum size, the struct-extension rules of
//!   `copy_struct_from_user()`, and the errno values.
//!
//! The object model that executes these commands (IOAS, HWPT paging and nested, device,
//! fault queue, vIOMMU, vDEVICE — one module per object family, as Linux's
//! `drivers/iommu/iommufd/` has one file per family) comes next and builds on [`abi`].

#![forbid(unsafe_code)]

#[cfg(target_endian = "big")]
compile_error!("vsva models little-endian hardware and only builds on little-endian hosts");

pub mod abi;
pub mod domain;
pub mod io_pagetable;
pub mod pages;
