//! vsva-vfio-nesting: the VFIO user API for guest SVA that Linux never merged — the series
//! "vfio: expose virtual Shared Virtual Addressing to VMs" (Yi Liu, v7, 2020-09-10, presented
//! at LPC 2020 as "Enhancements to IOMMU and VFIO User APIs for guest SVA", vsva's seed 001)
//! with the IOMMU uAPI structs of Linux 5.10's `include/uapi/linux/iommu.h` — as a
//! compatibility front end over vsva's iommufd. A VMM written against that interface (QEMU's
//! "intel_iommu: expose Shared Virtual Addressing to VMs" RFC) runs on vsva: every op becomes
//! the iommufd operation with the same meaning, on the same object model, the same IOMMU core
//! and the same VT-d hardware model as everything else.
//!
//! * [`uapi`] — the structs and numbers, byte-exact;
//! * [`container`] — [`NestingContainer`]: devices, DMA map/unmap, `GET_INFO`'s nesting info,
//!   PASID requests;
//! * [`nesting`] — the nesting ops (bind, unbind, invalidate, page response) and fault reads;
//! * [`ioctl`] — the byte-level entry point, [`NestingContainer::ioctl`];
//! * [`pasid`] — the system-wide host PASID space and each container's quota'd share;
//! * [`kmem`] — kernel buffers behind the pointers of the iommufd calls made on the VMM's
//!   behalf.
//!
//! # The mapping
//! | VFIO (series) | iommufd underneath |
//! |---|---|
//! | open container + `VFIO_SET_IOMMU(VFIO_TYPE1_NESTING_IOMMU)` ([`NestingContainer::new`]) | `IOMMU_IOAS_ALLOC` |
//! | `VFIO_GROUP_SET_CONTAINER` ([`NestingContainer::add_device`]) | open the device's cdev, `VFIO_DEVICE_BIND_IOMMUFD`; first device: `IOMMU_GET_HW_INFO`, `IOMMU_HWPT_ALLOC(NEST_PARENT \| PASID)` on the IOAS (stage 2), `IOMMU_FAULT_QUEUE_ALLOC`; then `VFIO_DEVICE_ATTACH_IOMMUFD_PT` of the device to stage 2 |
//! | `VFIO_IOMMU_MAP_DMA` / `UNMAP_DMA` | `IOMMU_IOAS_MAP(FIXED_IOVA)` / `IOMMU_IOAS_UNMAP` |
//! | `VFIO_IOMMU_GET_INFO` + `CAP_NESTING` | the IOAS's IOVA ranges; CAP/ECAP from `IOMMU_GET_HW_INFO` |
//! | `VFIO_IOMMU_PASID_REQUEST` ALLOC / FREE | vsva's host PASID space ([`pasid`]); FREE of a bound PASID unbinds it |
//! | `NESTING_OP` `BIND_PGTBL` | `IOMMU_HWPT_ALLOC(FAULT_ID_VALID \| PASID)` of `IOMMU_HWPT_DATA_VTD_S1` on stage 2, then `VFIO_DEVICE_ATTACH_IOMMUFD_PT` with `VFIO_DEVICE_ATTACH_PASID` = hpasid for every device |
//! | `NESTING_OP` `UNBIND_PGTBL` | `VFIO_DEVICE_DETACH_IOMMUFD_PT` of the PASID for every device, `IOMMU_DESTROY` of the nested HWPT |
//! | `NESTING_OP` `CACHE_INVLD` | `IOMMU_HWPT_INVALIDATE` with one `IOMMU_HWPT_INVALIDATE_DATA_VTD_S1` entry (ADDR: the range in pages; PASID, DOMAIN: everything) |
//! | `NESTING_OP` `PAGE_RESP` | `write()` of `struct iommu_hwpt_page_response` with the matching group's cookie to the fault queue |
//! | fault region / eventfd ([`NestingContainer::read_faults`]) | `read()` of the fault queue, records turned into `struct iommu_fault` |
//!
//! # Errno table
//! | case | errno |
//! |---|---|
//! | unknown ioctl number | `ENOTTY` |
//! | argument shorter than what must be read | `EFAULT` |
//! | `argsz` below the mandatory part (every struct, header or data) | `EINVAL` |
//! | unknown flags (DMA map/unmap, PASID request, nesting op high bits, bind flags and VT-d flags, invalidation cache bits and `pasid_info`/`addr_info` flags, page response flags) | `EINVAL` |
//! | `version` not 1 (bind, invalidate, page response) | `EINVAL` |
//! | bind `format` not INTEL_VTD, non-zero bind or invalidation `padding` | `EINVAL` |
//! | unknown nesting op | `EINVAL` |
//! | nesting op or PASID request before a device joined | `EOPNOTSUPP` |
//! | PASID request: `min > max`, a bound at or above 2^31, neither or both of ALLOC/FREE | `EINVAL` |
//! | PASID ALLOC: quota used up, or nothing free in the range | `ENOSPC` |
//! | bind/unbind: `hpasid` 0 (bind) or at or above 2^20 | `EINVAL` |
//! | bind/unbind/invalidate: PASID nobody allocated (or no PASID flag) / another container's | `ENOENT` / `EACCES` |
//! | bind of a bound PASID | `EBUSY` |
//! | invalidate of an owned but unbound PASID | `EINVAL` |
//! | SRE/EAFE/memory-type flags the unit lacks | `EINVAL` |
//! | page response matching no read, unanswered group | `EINVAL` |
//! | DMA map: no READ/WRITE, size 0, unaligned, wrapping / over a mapping | `EINVAL` / `EEXIST` |
//! | DMA unmap: unaligned, size 0, wrapping, cutting a mapping | `EINVAL` |
//!
//! # What differs from the series
//! * The nesting info is v7's (SYSWIDE_PASID, BIND_PGTBL, CACHE_INVLD) plus PAGE_RESP, whose
//!   value (`1 << 3`) and op number (3) vsva chose; CAP/ECAP are masked to `VTD_CAP_MASK` /
//!   `VTD_ECAP_MASK` as v7 16/16 does.
//! * PASIDs: one set and quota per container, not per process; guest PASIDs come from
//!   [`pasid::HostPasids`], which the IOMMU core's SVA allocator does not see.
//! * Unbind errors reach the caller (the series' VFIO layer ignored them); DOMAIN-granular
//!   and PASID-granular invalidations flush everything of the HWPTs concerned (the series'
//!   VT-d driver ignored DOMAIN); `IOMMU_PAGE_RESP_FAILURE` is sent as INVALID.
//! * Faults are read from the container, not from each device's VFIO fault region; a report
//!   carries the host PASID, the VMM translates to the guest's ([`NestingContainer::binding`]).
//! * A device joins the container through its VFIO cdev (one device per group), and stays until
//!   the container closes; there is no group detach.
//! * `VFIO_IOMMU_GET_INFO` has no migration or DMA-avail capability; the dirty bitmap of
//!   `UNMAP_DMA` is refused.

#![forbid(unsafe_code)]

#[cfg(target_endian = "big")]
compile_error!("vsva models little-endian hardware and only builds on little-endian hosts");

pub mod container;
pub mod ioctl;
pub mod kmem;
pub mod nesting;
pub mod pasid;
pub mod uapi;

pub use container::NestingContainer;
pub use nesting::ContainerFault;
pub use pasid::{HostPasids, PasidSet};
