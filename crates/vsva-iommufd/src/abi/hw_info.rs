//! `IOMMU_GET_HW_INFO` of `include/uapi/linux/iommufd.h`: what a VMM learns about the IOMMU
//! behind a bound device so its vIOMMU can advertise compatible capabilities — the generic
//! capability bits, the PASID width, and a driver-specific register dump (VT-d CAP/ECAP,
//! SMMUv3 IDRs, AMD EFR, Tegra241 CMDQV parameters).
//!
//! Validation is from `drivers/iommu/iommufd/device.c` (`iommufd_get_hw_info`).

use bitflags::bitflags;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{assert_layout, uapi_enum};

bitflags! {
    /// `enum iommu_hw_info_vtd_flags`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct HwInfoVtdFlags: u32 {
        /// `IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17`: read-only mappings must not be used in a
        /// nesting-parent HWPT on this hardware (Intel erratum 772415).
        const ERRATA_772415_SPR17 = 1 << 0;
    }
}

/// `struct iommu_hw_info_vtd`: driver data of type [`HwInfoType::INTEL_VTD`] — the raw VT-d
/// Capability and Extended Capability registers (VT-d spec 11.4.2 and 11.4.3), which the VMM
/// decodes itself.
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
assert_layout!(IommuHwInfoVtd, size = 24, align = 8);

/// `struct iommu_hw_info_arm_smmuv3`: driver data of type [`HwInfoType::ARM_SMMUV3`] — raw
/// SMMU_IDR0..5, SMMU_IIDR and SMMU_AIDR (SMMUv3 spec 6.3.1–6.3.6). Only the fields the header
/// lists (IDR0 ST_LEVEL, TERM_MODEL, STALL_MODEL, TTENDIAN, CD2L, ASID16, TTF; IDR1 SIDSIZE,
/// SSIDSIZE; IDR3 BBML, RIL; IDR5 VAX, GRAN64K/16K/4K) are meant to be used.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuHwInfoArmSmmuv3 {
    /// Always 0.
    pub flags: u32,
    /// Always 0.
    pub __reserved: u32,
    /// SMMU_IDR0..SMMU_IDR5.
    pub idr: [u32; 6],
    /// SMMU_IIDR.
    pub iidr: u32,
    /// SMMU_AIDR.
    pub aidr: u32,
}
assert_layout!(IommuHwInfoArmSmmuv3, size = 40, align = 4);

/// `struct iommu_hw_info_tegra241_cmdqv`: driver data of type
/// [`HwInfoType::TEGRA241_CMDQV`] — fields for the VMM's emulated CMDQV PARAM register.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuHwInfoTegra241Cmdqv {
    /// Always 0.
    pub flags: u32,
    /// CMDQV version (PARAM bits 3:0).
    pub version: u8,
    /// Log2 of the number of VCMDQs (PARAM bits 7:4).
    pub log2vcmdqs: u8,
    /// Log2 of the number of SID replacements (PARAM bits 15:12).
    pub log2vsids: u8,
    /// Always 0.
    pub __reserved: u8,
}
assert_layout!(IommuHwInfoTegra241Cmdqv, size = 8, align = 4);

/// `struct iommu_hw_info_amd`: driver data of type [`HwInfoType::AMD`] — the raw Extended
/// Feature registers (MMIO offsets 0x30 and 0x1A0 of the AMD IOMMU specification).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuHwInfoAmd {
    /// EFR.
    pub efr: u64,
    /// EFR2.
    pub efr2: u64,
}
assert_layout!(IommuHwInfoAmd, size = 16, align = 8);

uapi_enum! {
    /// `enum iommu_hw_info_type`: which driver data `IOMMU_GET_HW_INFO` returns (or, with
    /// [`HwInfoFlags::INPUT_TYPE`], is asked for).
    pub struct HwInfoType(u32) {
        /// `IOMMU_HW_INFO_TYPE_NONE`: output of drivers with no data.
        NONE = 0,
        /// `IOMMU_HW_INFO_TYPE_DEFAULT`: input asking for the driver's default type (same value
        /// as `NONE`).
        DEFAULT = 0,
        /// `IOMMU_HW_INFO_TYPE_INTEL_VTD`: [`IommuHwInfoVtd`].
        INTEL_VTD = 1,
        /// `IOMMU_HW_INFO_TYPE_ARM_SMMUV3`: [`IommuHwInfoArmSmmuv3`].
        ARM_SMMUV3 = 2,
        /// `IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV`: [`IommuHwInfoTegra241Cmdqv`].
        TEGRA241_CMDQV = 3,
        /// `IOMMU_HW_INFO_TYPE_AMD`: [`IommuHwInfoAmd`].
        AMD = 4,
    }
}

bitflags! {
    /// `enum iommufd_hw_capabilities`: the generic capability bits of `out_capabilities` (a
    /// 64-bit field).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct HwCapabilities: u64 {
        /// `IOMMU_HW_CAP_DIRTY_TRACKING`: `IOMMU_HWPT_SET_DIRTY_TRACKING` and
        /// `IOMMU_HWPT_GET_DIRTY_BITMAP` work for this device.
        const DIRTY_TRACKING = 1 << 0;
        /// `IOMMU_HW_CAP_PCI_PASID_EXEC`: the device's PASID capability has Execute Permission
        /// Supported (ignore when `out_max_pasid_log2` is 0).
        const PCI_PASID_EXEC = 1 << 1;
        /// `IOMMU_HW_CAP_PCI_PASID_PRIV`: the device's PASID capability has Privileged Mode
        /// Supported (ignore when `out_max_pasid_log2` is 0).
        const PCI_PASID_PRIV = 1 << 2;
        /// `IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED`: ATS cannot be used on this device.
        const PCI_ATS_NOT_SUPPORTED = 1 << 3;
    }
}

bitflags! {
    /// `enum iommufd_hw_info_flags`. Unknown bits: `EOPNOTSUPP`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct HwInfoFlags: u32 {
        /// `IOMMU_HW_INFO_FLAG_INPUT_TYPE`: `data_type` is an input naming the type wanted.
        const INPUT_TYPE = 1 << 0;
    }
}

/// `struct iommu_hw_info`, argument of `IOMMU_GET_HW_INFO`.
///
/// The driver data is written to `data_uptr`: `min(data_len, kernel length)` bytes, the rest of
/// the user buffer zero-filled; `data_len` is then set to the kernel's length and `data_type`
/// to the type written. Linux: unknown flags or any non-zero `__reserved` byte are
/// `EOPNOTSUPP`; without `INPUT_TYPE`, the input `data_type` is ignored (read as `DEFAULT`).
/// The command's `min_size` ends at `__reserved` (32): `out_capabilities` is optional.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuHwInfo {
    /// `sizeof(struct iommu_hw_info)` as the caller knows it.
    pub size: u32,
    /// [`HwInfoFlags`].
    pub flags: u32,
    /// A device bound to this iommufd.
    pub dev_id: u32,
    /// Input: size of the user buffer. Output: size of the kernel's data.
    pub data_len: u32,
    /// User pointer to the buffer for the driver data.
    pub data_uptr: u64,
    /// The header's union of `in_data_type` (input, with `INPUT_TYPE`) and `out_data_type`
    /// (output): one `u32` read in and written back.
    pub data_type: HwInfoType,
    /// Output: log2 of the number of PASIDs the device supports; 0 = no PASID.
    pub out_max_pasid_log2: u8,
    /// Must be 0.
    pub __reserved: [u8; 3],
    /// Output: [`HwCapabilities`].
    pub out_capabilities: u64,
}
assert_layout!(IommuHwInfo, size = 40, align = 8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(HwInfoType::NONE, HwInfoType::DEFAULT);
        assert_eq!(HwInfoType::INTEL_VTD.0, 1);
        assert_eq!(HwInfoType::ARM_SMMUV3.0, 2);
        assert_eq!(HwInfoType::TEGRA241_CMDQV.0, 3);
        assert_eq!(HwInfoType::AMD.0, 4);
        assert_eq!(HwInfoType(0).name(), Some("NONE"));
        assert_eq!(HwCapabilities::DIRTY_TRACKING.bits(), 1);
        assert_eq!(HwCapabilities::PCI_PASID_EXEC.bits(), 2);
        assert_eq!(HwCapabilities::PCI_PASID_PRIV.bits(), 4);
        assert_eq!(HwCapabilities::PCI_ATS_NOT_SUPPORTED.bits(), 8);
        assert_eq!(HwInfoFlags::INPUT_TYPE.bits(), 1);
        assert_eq!(HwInfoVtdFlags::ERRATA_772415_SPR17.bits(), 1);
    }

    #[test]
    fn hw_info_output_bytes() {
        // struct iommu_hw_info: data_type@24 out_max_pasid_log2@28 __reserved@29..32
        // out_capabilities@32.
        let info = IommuHwInfo {
            size: 40,
            dev_id: 3,
            data_len: 24,
            data_type: HwInfoType::INTEL_VTD,
            out_max_pasid_log2: 20,
            out_capabilities: (HwCapabilities::PCI_PASID_EXEC | HwCapabilities::PCI_PASID_PRIV)
                .bits(),
            ..Default::default()
        };
        let bytes = info.as_bytes();
        assert_eq!(&bytes[24..28], &1u32.to_le_bytes());
        assert_eq!(bytes[28], 20);
        assert_eq!(&bytes[29..32], &[0, 0, 0]);
        assert_eq!(&bytes[32..40], &6u64.to_le_bytes());
    }
}
