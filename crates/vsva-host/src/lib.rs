//! vsva-host: modelled machines — physical memory, an IOMMU unit and its driver, the IOMMU
//! core, the memory manager, and the PCIe fabric with demo devices. It is where the vendor is
//! chosen: the demo device, driver and program (vsva-demo) name no IOMMU vendor, and the
//! machine is written once over an [`IommuKind`] (a hardware model and its driver).
//!
//! | module | what |
//! |---|---|
//! | `kind` | [`IommuKind`]: what differs between vendors when a machine is wired |
//! | `vtd` | [`VtdKind`]: VT-d (vsva-vtd and vsva-vtd-driver) |
//! | `os` | [`Os`]: a driver, the IOMMU core and the memory manager booted on some memory |
//! | `host` | [`Host`]: a whole host; [`Platform`] is the VT-d host |

mod host;
mod kind;
mod os;
mod vtd;

pub use host::{Host, PlatformError};
pub use kind::{IommuKind, ProbeError};
pub use os::Os;
pub use vtd::VtdKind;

pub use vsva_demo::INTERRUPT_WINDOW;

/// The VT-d host.
pub type Platform = Host<VtdKind>;
