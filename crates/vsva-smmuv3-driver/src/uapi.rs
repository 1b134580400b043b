//! The SMMUv3 parts of the iommufd uAPI (Linux `include/uapi/linux/iommufd.h`), which the
//! driver reads and writes itself, as Linux's `arm-smmu-v3-iommufd.c` includes the header:
//! the data of `IOMMU_GET_HW_INFO`, of a nested HWPT (the guest's STE words), of a vIOMMU
//! invalidation (raw commands) and of a vEVENTQ record, with their type values.
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

/// `IOMMU_VIOMMU_TYPE_ARM_SMMUV3` (`enum iommu_viommu_type`).
pub const VIOMMU_TYPE_ARM_SMMUV3: u32 = 1;
/// `IOMMU_HWPT_DATA_ARM_SMMUV3` (`enum iommu_hwpt_data_type`): [`IommuHwptArmSmmuv3`].
pub const HWPT_DATA_ARM_SMMUV3: u32 = 2;
/// `IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3` (`enum iommu_hwpt_invalidate_data_type`):
/// [`IommuViommuArmSmmuv3Invalidate`].
pub const VIOMMU_INVALIDATE_DATA_ARM_SMMUV3: u32 = 1;
/// `IOMMU_VEVENTQ_TYPE_ARM_SMMUV3` (`enum iommu_veventq_type`): [`IommuVeventArmSmmuv3`].
pub const VEVENTQ_TYPE_ARM_SMMUV3: u32 = 1;

/// `struct iommu_hwpt_arm_smmuv3`: STE doublewords 0 and 1 of the guest's stream table
/// entry (little-endian). Only V, Cfg, S1Fmt, S1ContextPtr, S1CDMax (word 0) and S1DSS,
/// S1CIR, S1COR, S1CSH, S1STALLD, EATS (word 1) may be set.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuHwptArmSmmuv3 {
    /// STE words 0 and 1.
    pub ste: [u64; 2],
}

/// `struct iommu_viommu_arm_smmuv3_invalidate`: one 128-bit command for the SMMU's command
/// queue (little-endian), of CMDQ_OP_TLBI_NSNH_ALL, TLBI_NH_VA, TLBI_NH_VAA, TLBI_NH_ALL,
/// TLBI_NH_ASID, ATC_INV, CFGI_CD or CFGI_CD_ALL.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuViommuArmSmmuv3Invalidate {
    /// The command's two doublewords.
    pub cmd: [u64; 2],
}

/// `struct iommu_vevent_arm_smmuv3`: a 256-bit event record (little-endian, IHI 0070 §7.3)
/// whose StreamID is the device's virtual ID.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuVeventArmSmmuv3 {
    /// The record's four doublewords.
    pub evt: [u64; 4],
}

const _: () = assert!(size_of::<IommuHwptArmSmmuv3>() == 16);
const _: () = assert!(size_of::<IommuViommuArmSmmuv3Invalidate>() == 16);
const _: () = assert!(size_of::<IommuVeventArmSmmuv3>() == 32);
