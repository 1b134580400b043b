//! vsva-embed: vsva's IOMMU models inside a rust-vmm VMM.
//!
//! | module | what |
//! |---|---|
//! | `guest_phys` | [`GuestPhysMem`]: vsva's [`vsva_mem::PhysMem`] over any vm-memory `GuestMemory` (the VMM's guest RAM) |
//! | `port` | [`IommuPort`]: a (requester, PASID)'s port of a vsva IOMMU as vm-memory's [`vm_memory::iommu::Iommu`], with an IOTLB filled by ATS, emptied by the IOMMU's invalidations, and [`IommuPort::translate_with`] holding a translation across an access |
//! | `fabric` | [`PortFabric`]: the [`vsva_pcie::Downstream`] the IOMMU unit is built with, routing its ATS invalidations to the ports |
//!
//! The ports work with every vsva IOMMU through what they share, [`vsva_pcie::Upstream`]:
//! VT-d (`vsva_vtd::VtdPort`) and SMMUv3 (`vsva_smmuv3::Smmuv3Port`). See README.md and
//! `examples/virtio_queue.rs`.

#![forbid(unsafe_code)]

mod fabric;
mod guest_phys;
mod port;

pub use fabric::PortFabric;
pub use guest_phys::GuestPhysMem;
pub use port::{IommuPort, PortHook, PortPoint, PortStats};
