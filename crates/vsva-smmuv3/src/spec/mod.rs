//! Types of the Arm System Memory Management Unit Architecture Specification, SMMU
//! architecture version 3 (IHI 0070): registers, in-memory structures (STE, CD, level-1
//! descriptors), commands, event records and PRI queue entries. Types only — the behaviour
//! is in the modules above.
//!
//! Bit positions are those of Linux `drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h`; fields
//! Linux does not name come from the spec's structure figures as QEMU
//! (`hw/arm/smmuv3-internal.h`) encodes them. Each item cites the IHI 0070 section it
//! implements.

pub mod cd;
pub mod cmd;
pub mod event;
pub mod registers;
pub mod ste;
