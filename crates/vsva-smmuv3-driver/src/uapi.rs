//! The SMMUv3 parts of the iommufd uAPI (Linux `include/uapi/linux/iommufd.h`), which the
//! driver writes itself, as Linux's `arm-smmu-v3-iommufd.c` includes the header: the data of
//! `IOMMU_GET_HW_INFO`.
//!
//! iommufd keeps its own copies in its ABI layer; the driver does not depend on iommufd, which
//! sits above the IOMMU core. Both are pinned to the kernel's layout by tests against
//! `iommufd-bindings`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `IOMMU_HW_INFO_TYPE_DEFAULT`: the driver's own type, asked for.
pub const HW_INFO_TYPE_DEFAULT: u32 = 0;
/// `IOMMU_HW_INFO_TYPE_ARM_SMMUV3`: [`IommuHwInfoArmSmmuv3`].
pub const HW_INFO_TYPE_ARM_SMMUV3: u32 = 2;

/// `struct iommu_hw_info_arm_smmuv3`: the raw SMMU_IDR0–5, SMMU_IIDR and SMMU_AIDR
/// (IHI 0070 §6.3.1–6.3.6), unmasked. The header tells user space which fields it may read
/// (IDR0 ST_LEVEL, TERM_MODEL, STALL_MODEL, TTENDIAN, CD2L, ASID16, TTF; IDR1 SIDSIZE,
/// SSIDSIZE; IDR3 BBML, RIL; IDR5 VAX, GRAN64K/16K/4K); the kernel filters nothing.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuHwInfoArmSmmuv3 {
    /// `enum iommu_hw_info_arm_smmuv3_flags` (0: the model has no erratum to report).
    pub flags: u32,
    /// Must be 0.
    pub __reserved: u32,
    /// SMMU_IDR0..SMMU_IDR5.
    pub idr: [u32; 6],
    /// SMMU_IIDR.
    pub iidr: u32,
    /// SMMU_AIDR.
    pub aidr: u32,
}

const _: () = assert!(size_of::<IommuHwInfoArmSmmuv3>() == 40);
