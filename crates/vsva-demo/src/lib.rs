//! vsva-demo: shared virtual addressing end to end on one host.
//!
//! | module | what |
//! |---|---|
//! | [`regs`] | the demo device's register interface |
//! | [`device`] | the device: a DMA engine with PASID, ATS (an ATC) and PRI |
//! | [`fabric`] | the PCIe side: routes ATS invalidations and page responses to devices, and device requests to the IOMMU |
//! | [`machine`] | what the driver and program run on: a [`machine::Machine`] (host or guest) and its [`machine::Endpoint`]s |
//! | [`driver`] | the OS driver: enables PASID/ATS/PRI, binds a process, submits commands |
//! | [`program`] | the userspace program: the checks of the SVA demo |
//!
//! It names no IOMMU vendor: a host that wires it to one is vsva-host (VT-d today).
//!
//! The device never sees the IOMMU's tables: it asks for translations (ATS), caches them,
//! asks for pages (PRI), and DMAs with translated addresses — as a real endpoint does.

#![forbid(unsafe_code)]

pub mod device;
pub mod driver;
pub mod fabric;
pub mod machine;
pub mod program;
pub mod regs;
