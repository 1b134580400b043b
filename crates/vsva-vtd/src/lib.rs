//! vsva-vtd: the Intel VT-d scalable-mode IOMMU, as a hardware model and (later) the driver
//! that programs it through registers and memory.

#![forbid(unsafe_code)]

pub mod spec;
