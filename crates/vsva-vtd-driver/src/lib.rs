//! vsva-vtd-driver: the OS driver of the Intel VT-d scalable-mode remapping unit — vsva's
//! Linux `drivers/iommu/intel` (`iommu.c`, `pasid.c`, `dmar.c`, `prq.c`).
//!
//! It reaches the unit only through its registers ([`vsva_pcie::Mmio`]) and the structures it writes in
//! memory (root, context and PASID tables, the invalidation and page request queues); the
//! hardware model, vsva-vtd, supplies nothing but the spec's types ([`vsva_vtd::spec`]: registers,
//! descriptors, root/context/PASID entries, fault reasons). The model imports no OS-side crate.
//!
//! | item | what |
//! |---|---|
//! | [`VtdDriver`] | probe, enable, attach devices and PASIDs, flush, page requests, faults |
//! | [`Domain`] | what a PASID translates through (second/first stage, nested, pass-through) |
//! | [`DeviceOptions`] | a context entry's PASID, ATS and PRI enables |
//! | [`RecordedFault`] | a fault record the driver read from the unit |
//! | [`DriverError`] | why a driver operation failed |
//! | [`uapi`] | the VT-d structs of the iommufd uAPI the driver reads and writes |
//!
//! [`VtdDriver`] implements the IOMMU core's driver interface ([`vsva_iommu::IommuOps`]).

#![forbid(unsafe_code)]

mod driver;
mod nested;
mod ops;
mod queue;
pub mod uapi;

pub use driver::{DeviceOptions, Domain, DriverError, RecordedFault, Result, VtdDriver};
