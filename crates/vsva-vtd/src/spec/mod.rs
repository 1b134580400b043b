//! Types of the Intel VT-d specification, revision 4.1 (scalable mode): registers, in-memory
//! structures, fault reasons. Types only — the behaviour is in the modules above.
//!
//! Bit positions were taken from the spec's register and structure figures as Linux
//! (`drivers/iommu/intel/iommu.h`, `pasid.h`), QEMU (`hw/i386/intel_iommu_internal.h`),
//! VirtualBox (`include/VBox/iommu-intel.h`) and OpenVMM (`intel_vtd/src/spec`) encode them;
//! each item cites the spec section it implements.

pub mod descriptors;
pub mod fault;
pub mod page_request;
pub mod pasid;
pub mod registers;
pub mod root_context;

/// The interrupt address range (§3.15): untranslated and translation requests must not reach
/// it.
pub const INTERRUPT_RANGE: std::ops::RangeInclusive<u64> = 0xfee0_0000..=0xfeef_ffff;
