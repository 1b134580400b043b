//! vsva-smmuv3-driver: the OS driver of the Arm SMMUv3 — vsva's Linux
//! `drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c` (+ `arm-smmu-v3-sva.c`).
//!
//! It reaches the SMMU only through its registers ([`vsva_pcie::Mmio`]) and the structures it writes in
//! memory (stream table, CD tables, command, event and PRI queues); the hardware model,
//! vsva-smmuv3, supplies nothing but the spec's types ([`vsva_smmuv3::spec`]).
//!
//! | item | what |
//! |---|---|
//! | [`Smmuv3Driver`] | probe, reset, masters, STEs and CDs, invalidation, events, page requests |
//! | [`ProbeOptions`], [`SyncPoll`] | MSI doorbell; how CMD_SYNC completion is polled |
//! | [`Features`] | what the probe read of IDR0/1/3/5 |
//! | [`MasterOptions`], [`Target`] | a master's PASIDs/ATS/PRI/stall; what a SubstreamID translates through |
//! | [`tables`] | STE and CD values as the driver writes them, MAIRs |
//! | [`decode_event`], [`decode_page_request`] | event records and PRI entries as the driver reads them |
//! | [`uapi`] | the iommufd uAPI struct the driver writes (`IOMMU_GET_HW_INFO`'s) |
//! | [`DriverError`] | why a driver operation failed, with Linux's errno |
//!
//! [`Smmuv3Driver`] implements the IOMMU core's driver interface ([`vsva_iommu::IommuOps`]).
//! Linux mainline serves I/O page faults from stalls only and answers PRI page requests
//! with a denial; vsva serves both (see the `faults` module).

#![forbid(unsafe_code)]

mod cmdq;
mod driver;
mod faults;
mod inval;
mod iommufd;
mod master;
mod nested;
mod ops;
pub mod tables;
pub mod uapi;

pub use cmdq::SyncPoll;
pub use driver::{
    DriverError, Features, MSI_DOORBELL, MSI_IOVA, MasterOptions, ProbeOptions, Result,
    Smmuv3Driver, StallStats,
};
pub use faults::{Decoded, decode_event, decode_page_request, pri_resp};
pub use inval::{MAX_TLBI_OPS, atc_inv, tlbi_range, tlbi_s2_range};
pub use master::{Refusal, Target};
pub use nested::{convert_user_cmd, validate_vste};
