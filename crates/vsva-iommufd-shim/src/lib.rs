//! `libvsva_iommufd_shim.so`: run an unmodified program against vsva's iommufd model with
//! `LD_PRELOAD`. `open("/dev/iommu")` returns a descriptor served by a
//! [`vsva_iommufd::Iommufd`] context; `open("/dev/vfio/devices/vfioN")` one
//! served by the VFIO cdev front end of the N-th demo endpoint of a modelled host (VT-d or SMMUv3,
//! the IOMMU core, demo PCIe devices with PASID/ATS/PRI) or, after the endpoints, of an
//! emulated device that reaches memory through an iommufd access. Every other descriptor
//! and path goes straight to the kernel.
//!
//! * [`interpose`] — the libc entry points (`open*`, `close`, `ioctl`, `read`, `write`,
//!   `pread*`, `pwrite*`, `poll`, `ppoll`, `dup*`, `fcntl`, and the `_FORTIFY_SOURCE` forms
//!   glibc would otherwise serve itself), built only into the library, not the unit tests;
//! * [`shim`] — what they do with the shim's files: ioctl arguments read and written with
//!   `process_vm_readv` / `process_vm_writev` (a bad pointer is `EFAULT`);
//! * [`eventq`] — fault queues and vIOMMU event queues as real pollable descriptors;
//! * [`files`] — the shim's descriptors (socket pairs, named by inode) and their release;
//! * [`regions`] — the VFIO device's regions (BAR 0, configuration space) and how the
//!   demo endpoint runs when the program touches them;
//! * [`mdev`] — the emulated copy engine: a VFIO device with no IOMMU, bound through an
//!   iommufd access as a mediated device is;
//! * [`program`] — the program's memory as the contexts' address space: pinned ranges are
//!   moved onto memfds shared with the model's physical memory;
//! * [`mapfile`] — `IOMMU_IOAS_MAP_FILE`'s memfds;
//! * [`fuzz`] — a byte-stream interpreter of the entry points on the shim's files (bad
//!   paths, flags, request numbers, sizes, pointers, descriptors), run by a seeded test;
//! * [`config`] — the modelled machine, from `VSVA_SHIM_CONFIG`; [`host`] — its IOMMU, VT-d
//!   or (`VSVA_SHIM_IOMMU=smmuv3`) Arm SMMUv3;
//! * [`maps`] — `/proc/self/maps`; [`sys`] — raw system calls.
//!
//! See README.md, "/dev/iommu from C", for use and the differences from Linux.

#[cfg(target_endian = "big")]
compile_error!("vsva models little-endian hardware and only builds on little-endian hosts");

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!(
    "the shim reads the optional argument of variadic libc functions as a fixed one, which \
     holds on x86-64 and AArch64 Linux only"
);

pub mod config;
pub mod eventq;
#[cfg(test)]
mod fault_flow;
pub mod files;
pub mod fuzz;
pub mod host;
#[cfg(not(test))]
pub mod interpose;
pub mod mapfile;
pub mod maps;
pub mod mdev;
pub mod program;
pub mod regions;
pub mod shim;
pub mod sys;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod veventq_flow;
