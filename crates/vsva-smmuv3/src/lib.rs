//! vsva-smmuv3: the Arm SMMUv3 as a hardware model.
#![forbid(unsafe_code)]
pub mod spec;
