//! vsva-demo: shared virtual addressing end to end on one host.
//!
//! | module | what |
//! |---|---|
//! | [`regs`] | the demo device's register interface |
//! | `device` | the device: a DMA engine with PASID, ATS (an ATC) and PRI |
//! | `fabric` | the PCIe side: routes ATS invalidations and page responses to devices, and device requests to the IOMMU |
//! | `engine` | the DMA engine both devices share: registers, the decoded command, a piece's data movement |
//! | `platform` | the platform device: the same engine on an SoC interconnect, with SubstreamIDs and stall instead of ATS and PRI |
//! | `machine` | what the driver and program run on: a [`Machine`] (host or guest) and its [`Endpoint`]s |
//! | `driver` | the OS driver: enables PASID/ATS/PRI, binds a process, submits commands |
//! | [`fuzz`] | a byte-stream interpreter driving the device's registers on a small machine that checks every DMA against what its IOMMU granted (the cargo-fuzz target `demo_device` and a seeded test run it) |
//! | `program` | the userspace program: the checks of the SVA demo ([`run_program`]) |
//!
//! It names no IOMMU vendor: a host that wires it to one is vsva-host (VT-d and SMMUv3).
//!
//! The devices never see the IOMMU's tables. The PCIe device asks for translations (ATS),
//! caches them, asks for pages (PRI), and DMAs with translated addresses — as a real
//! endpoint does. The platform device DMAs with untranslated addresses and waits while the
//! IOMMU stalls one (vsva-pcie's `PlatformUpstream`) — as an SoC master with
//! `dma-can-stall` does.

#![forbid(unsafe_code)]

mod device;
mod driver;
mod engine;
mod fabric;
pub mod fuzz;
mod machine;
mod platform;
mod program;
pub mod regs;

pub use device::{DemoDevice, DeviceStats, PriStatus, Progress};
pub use driver::{Command, Context, DemoDriver, DriverError, enable_sva_capabilities, submit_to};
pub use fabric::Fabric;
pub use machine::{
    Endpoint, Function, INTERRUPT_WINDOW, Machine, MsiWindow, UnitCounters, run_until_done,
    top_ram_page_below,
};
pub use platform::PlatformDevice;
pub use program::{Check, PLATFORM_STREAM, PlatformRun, Report, run as run_program, run_platform};
