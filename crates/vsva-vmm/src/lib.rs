//! vsva-vmm: a VMM whose guest does shared virtual addressing through a vIOMMU bound onto the
//! host's nested translation (seeds 000–002: vSVA) — a virtual VT-d on a VT-d host, a
//! virtual SMMUv3 on an SMMUv3 host.
//!
//! | module | what |
//! |---|---|
//! | `guest_ram` | guest-physical memory over the VMM's pinned anonymous memory |
//! | `uapi` | the VMM's iommufd calls, made with the uAPI's bytes as a C VMM makes them |
//! | `vmm` | the VMM: guest RAM, IOAS, stage 2, fault queue, assigned devices, and the four flows (bind, invalidate, fault, respond) for each vIOMMU (`vmm/smmuv3` for the SMMUv3's) |
//! | `viommu` | the guest virtual VT-d's backend: what the guest's VT-d programming turns into on the host |
//! | `vsmmu` | the guest virtual SMMUv3's backend, and the guest SMMUv3 built from the host's IDRs |
//! | `assigned` | an assigned device as the guest sees it (PASID register virtualized) |
//! | [`fuzz`] | a byte-stream interpreter of the guest's programming of its virtual VT-d or virtual SMMUv3, with the host's isolation checks (the cargo-fuzz targets `vmm_vtd` and `vmm_smmuv3`, seeded tests) |
//! | `vm` | a VM: VMM + vIOMMU + guest OS, runnable as a demo [`Machine`](vsva_demo::Machine) |
//!
//! The guest OS is the host's code: the same IOMMU driver, IOMMU core, memory manager, demo
//! driver and program, running over guest RAM and the vIOMMU.

#![forbid(unsafe_code)]

mod assigned;
pub mod fuzz;
mod guest_ram;
mod uapi;
mod viommu;
mod vm;
mod vmm;
mod vsmmu;

pub use assigned::AssignedDevice;
pub use guest_ram::{GuestRam, GuestRamError};
pub use uapi::{Smmuv3HwInfo, Uapi, VtdHwInfo};
pub use viommu::Relay;
pub use vm::{BOOT_DEVICE, GuestKind, Smmuv3Vm, Vm, VmError, VtdVm, guest_unit_config};
pub use vmm::{BLOCKED_HOST_PASID, Counters, CountersSnapshot, VmConfig, Vmm, VmmError};
pub use vsmmu::{SmmuRelay, guest_smmu_config};
