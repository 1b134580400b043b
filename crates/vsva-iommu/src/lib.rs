//! vsva-iommu: the IOMMU core, vendor-neutral (Linux `drivers/iommu/iommu.c`,
//! `iommu-sva.c`, `io-pgfault.c`).
//!
//! | module | what |
//! |---|---|
//! | `ops` | the interface every IOMMU driver implements ([`IommuOps`]) and the types it speaks |
//! | `pasid` | the PASID allocator: one PASID per address space, shared by all its devices |
//! | `iopf` | the I/O page-fault queue: page requests grouped by PRG index, one response per group |
//! | `iommu` | devices, attachments, SVA bind/unbind, MMU-notifier-driven invalidation, fault handling |
//!
//! The core never touches hardware: it calls the driver, which programs its unit through
//! registers and memory.

#![forbid(unsafe_code)]

mod did;
mod domain;
mod error;
mod iommu;
mod iopf;
mod ops;
mod pasid;

pub use domain::{FormatTable, IoPgtable, NestedDomain, NestedS1, PagingDomain};
pub use error::DriverFailure;
pub use error::{IommuError, Result};
pub use iommu::{
    CoreHook, CorePoint, DomainRef, EventHandler, FaultHandler, Iommu, IommuStats, IopfHandler,
    SvaHandle,
};
pub use iopf::FaultGroup;
pub use ops::{
    DeviceCaps, DomainSpec, HwInfo, InvalidateOutcome, IommuOps, PageRequest, ResponseCode,
    UnrecoverableFault, UserData, UserDataArray, ViommuContext, VirtualEvent,
};
