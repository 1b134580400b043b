//! The VT-d parts of the iommufd uAPI (Linux `include/uapi/linux/iommufd.h`), which the driver
//! reads and writes itself, as Linux's Intel driver includes the header: the data of a nested
//! domain, of a first-stage invalidation and of `IOMMU_GET_HW_INFO`.
//!
//! iommufd keeps its own copies in its ABI layer (it names every vendor's structs for user
//! space); the driver does not depend on iommufd, which sits above the IOMMU core. Both are
//! pinned to the kernel's layout by tests against `iommufd-bindings`.

use bitflags::bitflags;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `IOMMU_HW_INFO_TYPE_DEFAULT`: the driver's own type, asked for.
pub const HW_INFO_TYPE_DEFAULT: u32 = 0;
/// `IOMMU_HW_INFO_TYPE_INTEL_VTD`: [`IommuHwInfoVtd`].
pub const HW_INFO_TYPE_INTEL_VTD: u32 = 1;
/// `IOMMU_HWPT_DATA_VTD_S1`: [`IommuHwptVtdS1`].
pub const HWPT_DATA_VTD_S1: u32 = 1;
/// `IOMMU_HWPT_INVALIDATE_DATA_VTD_S1`: [`IommuHwptVtdS1Invalidate`] entries.
pub const HWPT_INVALIDATE_DATA_VTD_S1: u32 = 0;

bitflags! {
    /// `enum iommu_hw_info_vtd_flags`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct HwInfoVtdFlags: u32 {
        /// `IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17`: no read-only mappings in a nesting parent.
        const ERRATA_772415_SPR17 = 1 << 0;
    }
}

bitflags! {
    /// `enum iommu_hwpt_vtd_s1_flags`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct VtdS1Flags: u64 {
        /// `IOMMU_VTD_S1_SRE`: supervisor requests.
        const SRE = 1 << 0;
        /// `IOMMU_VTD_S1_EAFE`: extended access flag.
        const EAFE = 1 << 1;
        /// `IOMMU_VTD_S1_WPE`: write protect.
        const WPE = 1 << 2;
    }
}

bitflags! {
    /// `enum iommu_hwpt_vtd_s1_invalidate_flags`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct VtdInvalidateFlags: u32 {
        /// `IOMMU_VTD_INV_FLAGS_LEAF`: only leaf entries changed.
        const LEAF = 1 << 0;
    }
}

/// `struct iommu_hw_info_vtd`: CAP_REG and ECAP_REG for user space (§11.4.2, §11.4.3).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuHwInfoVtd {
    /// [`HwInfoVtdFlags`].
    pub flags: u32,
    /// Must be 0.
    pub __reserved: u32,
    /// CAP_REG.
    pub cap_reg: u64,
    /// ECAP_REG.
    pub ecap_reg: u64,
}

/// `struct iommu_hwpt_vtd_s1`: a guest's first-stage table for a nested domain.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuHwptVtdS1 {
    /// [`VtdS1Flags`].
    pub flags: u64,
    /// Guest-physical address of the first-stage root (FSPTPTR).
    pub pgtbl_addr: u64,
    /// 48 (4-level) or 57 (5-level).
    pub addr_width: u32,
    /// Must be 0.
    pub __reserved: u32,
}

/// `struct iommu_hwpt_vtd_s1_invalidate`: invalidate `npages` 4 KiB pages from `addr`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuHwptVtdS1Invalidate {
    /// First address, 4 KiB aligned.
    pub addr: u64,
    /// Number of 4 KiB pages (`u64::MAX` with `addr` 0: everything).
    pub npages: u64,
    /// [`VtdInvalidateFlags`].
    pub flags: u32,
    /// Must be 0.
    pub __reserved: u32,
}

/// `offsetofend(struct iommu_hwpt_vtd_s1, __reserved)`: the shortest data the driver takes.
pub const VTD_S1_MIN_LEN: usize = 24;
/// `offsetofend(struct iommu_hwpt_vtd_s1_invalidate, __reserved)`.
pub const VTD_S1_INVALIDATE_MIN_LEN: usize = 24;

const _: () = {
    assert!(size_of::<IommuHwInfoVtd>() == 24);
    assert!(size_of::<IommuHwptVtdS1>() == VTD_S1_MIN_LEN);
    assert!(size_of::<IommuHwptVtdS1Invalidate>() == VTD_S1_INVALIDATE_MIN_LEN);
};
