//! HWPT commands of `include/uapi/linux/iommufd.h`: allocating a hardware page table (paging,
//! nesting parent, or nested with driver data such as a VT-d first-stage table), dirty
//! tracking, and invalidating the caches of a user-managed (nested) table.
//!
//! Validation order is from `drivers/iommu/iommufd/hw_pagetable.c`; the VT-d driver data
//! rules are from `drivers/iommu/intel/nested.c`.

use bitflags::bitflags;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{assert_layout, uapi_enum};

bitflags! {
    /// `enum iommufd_hwpt_alloc_flags`.
    ///
    /// For a paging HWPT (`pt_id` is an IOAS) Linux accepts all four and refuses, with
    /// `EOPNOTSUPP`: any unknown bit, `DIRTY_TRACKING` on a device whose IOMMU cannot track,
    /// and `FAULT_ID_VALID` together with `NEST_PARENT`. For a nested HWPT only
    /// `FAULT_ID_VALID` and `PASID` are allowed (others: `EOPNOTSUPP`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct HwptAllocFlags: u32 {
        /// `IOMMU_HWPT_ALLOC_NEST_PARENT`: the HWPT may be the parent (stage 2) of nested HWPTs
        /// and vIOMMUs.
        const NEST_PARENT = 1 << 0;
        /// `IOMMU_HWPT_ALLOC_DIRTY_TRACKING`: every device attached must support dirty
        /// tracking.
        const DIRTY_TRACKING = 1 << 1;
        /// `IOMMU_HWPT_FAULT_ID_VALID`: `fault_id` names a fault queue that receives this HWPT's
        /// I/O page faults.
        const FAULT_ID_VALID = 1 << 2;
        /// `IOMMU_HWPT_ALLOC_PASID`: the HWPT may be attached to a PASID of a device.
        const PASID = 1 << 3;
    }
}

uapi_enum! {
    /// `enum iommu_hwpt_data_type`: what the driver-specific data of `IOMMU_HWPT_ALLOC` is.
    pub struct HwptDataType(u32) {
        /// `IOMMU_HWPT_DATA_NONE`: no data; a kernel-managed paging HWPT.
        NONE = 0,
        /// `IOMMU_HWPT_DATA_VTD_S1`: [`IommuHwptVtdS1`], an Intel VT-d first-stage table.
        VTD_S1 = 1,
        /// `IOMMU_HWPT_DATA_ARM_SMMUV3`: [`IommuHwptArmSmmuv3`], a guest SMMUv3 STE.
        ARM_SMMUV3 = 2,
        /// `IOMMU_HWPT_DATA_AMD_GUEST`: [`IommuHwptAmdGuest`], a guest AMD IOMMU DTE.
        AMD_GUEST = 3,
    }
}

bitflags! {
    /// `enum iommu_hwpt_vtd_s1_flags`: first-stage attributes the VMM copies from the guest's
    /// PASID entry. The field is 64 bits wide in the header.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct VtdS1Flags: u64 {
        /// `IOMMU_VTD_S1_SRE`: supervisor requests are allowed (PASID entry SRE).
        const SRE = 1 << 0;
        /// `IOMMU_VTD_S1_EAFE`: extended access flag enable (PASID entry EAFE).
        const EAFE = 1 << 1;
        /// `IOMMU_VTD_S1_WPE`: write protect enable (PASID entry WPE).
        const WPE = 1 << 2;
    }
}

/// `struct iommu_hwpt_vtd_s1`: data of a nested HWPT of type [`HwptDataType::VTD_S1`] — the
/// guest's first-stage table, translated through the parent HWPT (second stage).
///
/// The Intel driver reads it with `copy_struct_from_user()` rules, `data_len` below 24
/// (`offsetofend(__reserved)`) being `EINVAL`, and refuses another `data_type` with
/// `EOPNOTSUPP`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuHwptVtdS1 {
    /// [`VtdS1Flags`].
    pub flags: u64,
    /// Guest-physical address of the first-stage root table (FSPTPTR).
    pub pgtbl_addr: u64,
    /// Address width of the first-stage table: 48 (4-level) or 57 (5-level).
    pub addr_width: u32,
    /// Must be 0.
    pub __reserved: u32,
}
assert_layout!(IommuHwptVtdS1, size = 24, align = 8);

/// `struct iommu_hwpt_arm_smmuv3`: data of a nested HWPT of type
/// [`HwptDataType::ARM_SMMUV3`] — the first two 64-bit words of the guest's STE,
/// little-endian. Only the stage-1 fields (V, Cfg, S1Fmt, S1ContextPtr, S1CDMax, EATS, S1DSS,
/// S1CIR, S1COR, S1CSH, S1STALLD) may be set; anything else is `EIO`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuHwptArmSmmuv3 {
    /// STE words 0 and 1.
    pub ste: [u64; 2],
}
assert_layout!(IommuHwptArmSmmuv3, size = 16, align = 8);

/// `struct iommu_hwpt_amd_guest`: data of a nested HWPT of type [`HwptDataType::AMD_GUEST`] —
/// the guest's device table entry.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuHwptAmdGuest {
    /// The 256-bit guest DTE.
    pub dte: [u64; 4],
}
assert_layout!(IommuHwptAmdGuest, size = 32, align = 8);

/// `struct iommu_hwpt_alloc`, argument of `IOMMU_HWPT_ALLOC`: create a HWPT for `dev_id`
/// whose parent `pt_id` is an IOAS (a paging HWPT), a nesting-parent HWPT or a vIOMMU (a
/// nested HWPT described by `data_type` / `data_len` / `data_uptr`).
///
/// Linux checks, in order: non-zero `__reserved` is `EOPNOTSUPP`; `data_type` NONE with a
/// non-zero `data_len`, or another type with `data_len` 0, is `EINVAL`; an unknown `dev_id` is
/// `ENOENT` but an unknown or unsuitable `pt_id` is `EINVAL`; then the flag rules of
/// [`HwptAllocFlags`]. `__reserved2` is not checked by Linux, and the command's `min_size`
/// ends at `__reserved`, so `fault_id` reads as 0 from an older caller's shorter struct.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuHwptAlloc {
    /// `sizeof(struct iommu_hwpt_alloc)` as the caller knows it.
    pub size: u32,
    /// [`HwptAllocFlags`].
    pub flags: u32,
    /// The device the HWPT is for.
    pub dev_id: u32,
    /// The parent: an IOAS, a nesting-parent HWPT, or a vIOMMU.
    pub pt_id: u32,
    /// Output: the new HWPT's ID.
    pub out_hwpt_id: u32,
    /// Must be 0.
    pub __reserved: u32,
    /// Type of the data at `data_uptr`.
    pub data_type: HwptDataType,
    /// Length in bytes of the data at `data_uptr`.
    pub data_len: u32,
    /// User pointer to the driver-specific data.
    pub data_uptr: u64,
    /// The fault queue, when `flags` has `FAULT_ID_VALID`.
    pub fault_id: u32,
    /// Padding to 8-byte alignment; should be 0 (Linux does not check it).
    pub __reserved2: u32,
}
assert_layout!(IommuHwptAlloc, size = 48, align = 8);

bitflags! {
    /// `enum iommufd_hwpt_set_dirty_tracking_flags`. Unknown bits: `EOPNOTSUPP`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct DirtyTrackingFlags: u32 {
        /// `IOMMU_HWPT_DIRTY_TRACKING_ENABLE`: start tracking (clear: stop).
        const ENABLE = 1 << 0;
    }
}

/// `struct iommu_hwpt_set_dirty_tracking`, argument of `IOMMU_HWPT_SET_DIRTY_TRACKING`: turn
/// dirty tracking of a paging HWPT on or off.
///
/// Linux: unknown flags are `EOPNOTSUPP`; `__reserved` is not checked.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuHwptSetDirtyTracking {
    /// `sizeof(struct iommu_hwpt_set_dirty_tracking)` as the caller knows it.
    pub size: u32,
    /// [`DirtyTrackingFlags`].
    pub flags: u32,
    /// The paging HWPT.
    pub hwpt_id: u32,
    /// Should be 0 (Linux does not check it).
    pub __reserved: u32,
}
assert_layout!(IommuHwptSetDirtyTracking, size = 16, align = 4);

bitflags! {
    /// `enum iommufd_hwpt_get_dirty_bitmap_flags`. Unknown bits: `EOPNOTSUPP`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct GetDirtyBitmapFlags: u32 {
        /// `IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR`: report dirty bits without clearing them
        /// (useful right before unmapping the same range).
        const NO_CLEAR = 1 << 0;
    }
}

/// `struct iommu_hwpt_get_dirty_bitmap`, argument of `IOMMU_HWPT_GET_DIRTY_BITMAP`: read (and
/// by default clear) the dirty bits of `[iova, iova + length)` of a paging HWPT into a user
/// bitmap, one bit per `page_size` bytes. The bit of an IOVA is bit
/// `(iova / page_size) % 64` of word `(iova / page_size) / 64` of `data`.
///
/// Linux: unknown flags or non-zero `__reserved` are `EOPNOTSUPP`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuHwptGetDirtyBitmap {
    /// `sizeof(struct iommu_hwpt_get_dirty_bitmap)` as the caller knows it.
    pub size: u32,
    /// The paging HWPT.
    pub hwpt_id: u32,
    /// [`GetDirtyBitmapFlags`].
    pub flags: u32,
    /// Must be 0.
    pub __reserved: u32,
    /// IOVA of the bitmap's first bit.
    pub iova: u64,
    /// Length of the IOVA range in bytes.
    pub length: u64,
    /// Bytes of IOVA each bit stands for.
    pub page_size: u64,
    /// User pointer to the bitmap (an array of `u64`).
    pub data: u64,
}
assert_layout!(IommuHwptGetDirtyBitmap, size = 48, align = 8);

uapi_enum! {
    /// `enum iommu_hwpt_invalidate_data_type`: format of the entries of `IOMMU_HWPT_INVALIDATE`.
    pub struct HwptInvalidateDataType(u32) {
        /// `IOMMU_HWPT_INVALIDATE_DATA_VTD_S1`: [`IommuHwptVtdS1Invalidate`] entries, for a
        /// nested VT-d HWPT.
        VTD_S1 = 0,
        /// `IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3`: [`IommuViommuArmSmmuv3Invalidate`]
        /// entries, for an SMMUv3 vIOMMU.
        ARM_SMMUV3 = 1,
    }
}

bitflags! {
    /// `enum iommu_hwpt_vtd_s1_invalidate_flags`. Unknown bits: `EOPNOTSUPP`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct VtdInvalidateFlags: u32 {
        /// `IOMMU_VTD_INV_FLAGS_LEAF`: only leaf entries changed; paging-structure caches may
        /// be kept (the IH/leaf hint of a VT-d PASID-based IOTLB invalidation).
        const LEAF = 1 << 0;
    }
}

/// `struct iommu_hwpt_vtd_s1_invalidate`: one entry of `IOMMU_HWPT_INVALIDATE` for a VT-d
/// nested HWPT — invalidate the first-stage translations of `npages` 4 KiB pages from `addr`.
/// `addr == 0` with `npages == u64::MAX` invalidates everything; the device TLB (ATC) is
/// invalidated too when ATS is on.
///
/// The Intel driver: another data type is `EINVAL`; `entry_len` below 24
/// (`offsetofend(__reserved)`) is `EINVAL`; unknown flags or non-zero `__reserved` are
/// `EOPNOTSUPP`; `addr` not 4 KiB aligned, or `npages == u64::MAX` with a non-zero `addr`, is
/// `EINVAL`. Processing stops at the first bad entry.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuHwptVtdS1Invalidate {
    /// First IOVA to invalidate, 4 KiB aligned.
    pub addr: u64,
    /// Number of 4 KiB pages.
    pub npages: u64,
    /// [`VtdInvalidateFlags`].
    pub flags: u32,
    /// Must be 0.
    pub __reserved: u32,
}
assert_layout!(IommuHwptVtdS1Invalidate, size = 24, align = 8);

/// `struct iommu_viommu_arm_smmuv3_invalidate`: one entry of `IOMMU_HWPT_INVALIDATE` for an
/// SMMUv3 vIOMMU — a 128-bit CMDQ command, little-endian (TLBI_NSNH_ALL, TLBI_NH_VA/VAA/ALL/
/// ASID, ATC_INV, CFGI_CD, CFGI_CD_ALL; others are `EIO`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuViommuArmSmmuv3Invalidate {
    /// The command's two 64-bit words.
    pub cmd: [u64; 2],
}
assert_layout!(IommuViommuArmSmmuv3Invalidate, size = 16, align = 8);

/// `struct iommu_hwpt_invalidate`, argument of `IOMMU_HWPT_INVALIDATE`: pass an array of
/// driver-format invalidation requests for a nested HWPT or a vIOMMU.
///
/// Linux: non-zero `__reserved` is `EOPNOTSUPP`; `entry_num > 0` with a zero `data_uptr` or
/// `entry_len` is `EINVAL`; an object that is neither a nested HWPT nor a vIOMMU is `EINVAL`.
/// `entry_num == 0` only probes whether `data_type` is supported. On every return, errors
/// included, `entry_num` is written back as the number of entries handled.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuHwptInvalidate {
    /// `sizeof(struct iommu_hwpt_invalidate)` as the caller knows it.
    pub size: u32,
    /// A nested HWPT or a vIOMMU.
    pub hwpt_id: u32,
    /// User pointer to the array of entries.
    pub data_uptr: u64,
    /// Format of every entry.
    pub data_type: HwptInvalidateDataType,
    /// Size in bytes of one entry as the caller lays the array out.
    pub entry_len: u32,
    /// Input: number of entries. Output: number handled.
    pub entry_num: u32,
    /// Must be 0.
    pub __reserved: u32,
}
assert_layout!(IommuHwptInvalidate, size = 32, align = 8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_and_type_values() {
        assert_eq!(HwptAllocFlags::NEST_PARENT.bits(), 1);
        assert_eq!(HwptAllocFlags::DIRTY_TRACKING.bits(), 2);
        assert_eq!(HwptAllocFlags::FAULT_ID_VALID.bits(), 4);
        assert_eq!(HwptAllocFlags::PASID.bits(), 8);
        assert_eq!(VtdS1Flags::SRE.bits(), 1);
        assert_eq!(VtdS1Flags::EAFE.bits(), 2);
        assert_eq!(VtdS1Flags::WPE.bits(), 4);
        assert_eq!(VtdInvalidateFlags::LEAF.bits(), 1);
        assert_eq!(DirtyTrackingFlags::ENABLE.bits(), 1);
        assert_eq!(GetDirtyBitmapFlags::NO_CLEAR.bits(), 1);
        assert_eq!(HwptDataType::NONE.0, 0);
        assert_eq!(HwptDataType::VTD_S1.0, 1);
        assert_eq!(HwptDataType::ARM_SMMUV3.0, 2);
        assert_eq!(HwptDataType::AMD_GUEST.0, 3);
        assert_eq!(HwptInvalidateDataType::VTD_S1.0, 0);
        assert_eq!(HwptInvalidateDataType::ARM_SMMUV3.0, 1);
    }

    #[test]
    fn hwpt_alloc_nested_vtd_bytes() {
        // A VMM asking for a nested VT-d HWPT: flags=PASID, dev 1, parent 2, VTD_S1 data of
        // 24 bytes at 0x1000. struct iommu_hwpt_alloc: data_type@24 data_len@28 data_uptr@32
        // fault_id@40.
        let alloc = IommuHwptAlloc {
            size: 48,
            flags: HwptAllocFlags::PASID.bits(),
            dev_id: 1,
            pt_id: 2,
            data_type: HwptDataType::VTD_S1,
            data_len: 24,
            data_uptr: 0x1000,
            ..Default::default()
        };
        let bytes = alloc.as_bytes();
        assert_eq!(&bytes[4..8], &8u32.to_le_bytes());
        assert_eq!(&bytes[24..28], &1u32.to_le_bytes());
        assert_eq!(&bytes[28..32], &24u32.to_le_bytes());
        assert_eq!(&bytes[32..40], &0x1000u64.to_le_bytes());
        assert_eq!(&bytes[40..48], &[0; 8]);
    }

    #[test]
    fn vtd_s1_bytes() {
        // struct iommu_hwpt_vtd_s1: flags@0 (u64) pgtbl_addr@8 addr_width@16 __reserved@20.
        let s1 = IommuHwptVtdS1 {
            flags: (VtdS1Flags::SRE | VtdS1Flags::WPE).bits(),
            pgtbl_addr: 0x1234_5000,
            addr_width: 48,
            __reserved: 0,
        };
        let bytes = s1.as_bytes();
        assert_eq!(&bytes[0..8], &5u64.to_le_bytes());
        assert_eq!(&bytes[8..16], &0x1234_5000u64.to_le_bytes());
        assert_eq!(&bytes[16..20], &48u32.to_le_bytes());
    }
}
