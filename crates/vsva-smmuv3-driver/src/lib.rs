//! vsva-smmuv3-driver: the OS driver of the Arm SMMUv3 — vsva's Linux
//! `drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c` (+ `arm-smmu-v3-sva.c`,
//! `arm-smmu-v3-iommufd.c`).
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
//! | [`MasterOptions`], [`Target`], [`RidSte`] | a master's PASIDs/ATS/PRI/stall; what a SubstreamID (or the RID: stage 2, nested) translates through |
//! | [`tables`] | STE (stage 1, stage 2, nested) and CD values as the driver writes them, MAIRs |
//! | [`tlbi_range`], [`tlbi_s2_range`], [`atc_inv`] | the invalidation commands of a range flush |
//! | [`validate_vste`], [`convert_user_cmd`] | a guest's STE words and invalidation commands, as the vIOMMU takes them |
//! | [`decode_event`], [`decode_page_request`] | event records and PRI entries as the driver reads them |
//! | [`uapi`] | the iommufd uAPI structs the driver reads and writes (hw_info, nested HWPT, vIOMMU invalidation, vEVENTQ record) |
//! | [`DriverError`] | why a driver operation failed, with Linux's errno |
//!
//! [`Smmuv3Driver`] implements the IOMMU core's driver interface ([`vsva_iommu::IommuOps`]).
//! Linux mainline serves I/O page faults from stalls only and answers PRI page requests
//! with a denial; vsva serves both (see the `faults` module), for a guest's nested domain too:
//! its stalls and page requests reach the core with the guest's SubstreamID as PASID.
//!
//! Nesting (the `nested` module) is Linux's: a nest parent is a stage-2 STE under VMID = its
//! domain ID; a nested domain is the guest's two STE words over it (Config nested, the
//! guest's CD table read through the stage 2); a vIOMMU's invalidations are the guest's raw
//! commands with the VMID forced and virtual StreamIDs translated; its events are the
//! guest's stage-1 and configuration event records with the virtual StreamID.

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
pub use master::{Refusal, RidSte, Target};
pub use nested::{convert_user_cmd, validate_vste};
