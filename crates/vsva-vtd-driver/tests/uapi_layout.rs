//! The driver's mirrors of the VT-d iommufd uAPI structs against the Linux header (v7.1, as
//! cloud-hypervisor's `iommufd-bindings` has it): sizes, alignments, field offsets and the
//! values of every type and flag the driver reads.

use std::mem::{align_of, offset_of, size_of};

use iommufd_bindings as linux;
use vsva_vtd_driver::uapi::{
    HW_INFO_TYPE_DEFAULT, HW_INFO_TYPE_INTEL_VTD, HWPT_DATA_VTD_S1, HWPT_INVALIDATE_DATA_VTD_S1,
    HwInfoVtdFlags, IommuHwInfoVtd, IommuHwptVtdS1, IommuHwptVtdS1Invalidate,
    VTD_S1_INVALIDATE_MIN_LEN, VTD_S1_MIN_LEN, VtdInvalidateFlags, VtdS1Flags,
};

macro_rules! same_layout {
    ($ours:ty, $theirs:ty, [$($field:ident),* $(,)?]) => {
        assert_eq!(size_of::<$ours>(), size_of::<$theirs>(), stringify!($ours));
        assert_eq!(align_of::<$ours>(), align_of::<$theirs>(), stringify!($ours));
        $( assert_eq!(
            offset_of!($ours, $field),
            offset_of!($theirs, $field),
            concat!(stringify!($ours), ".", stringify!($field)),
        ); )*
    };
}

#[test]
fn the_driver_structs_have_the_kernel_layout() {
    same_layout!(
        IommuHwptVtdS1,
        linux::iommu_hwpt_vtd_s1,
        [flags, pgtbl_addr, addr_width, __reserved]
    );
    same_layout!(
        IommuHwptVtdS1Invalidate,
        linux::iommu_hwpt_vtd_s1_invalidate,
        [addr, npages, flags, __reserved]
    );
    same_layout!(
        IommuHwInfoVtd,
        linux::iommu_hw_info_vtd,
        [flags, __reserved, cap_reg, ecap_reg]
    );
    // offsetofend(__reserved), the minimum the driver copies
    assert_eq!(
        VTD_S1_MIN_LEN,
        offset_of!(linux::iommu_hwpt_vtd_s1, __reserved) + 4
    );
    assert_eq!(
        VTD_S1_INVALIDATE_MIN_LEN,
        offset_of!(linux::iommu_hwpt_vtd_s1_invalidate, __reserved) + 4
    );
}

#[test]
fn the_driver_types_and_flags_have_the_kernel_values() {
    assert_eq!(
        HW_INFO_TYPE_DEFAULT,
        linux::iommu_hw_info_type_IOMMU_HW_INFO_TYPE_DEFAULT
    );
    assert_eq!(
        HW_INFO_TYPE_INTEL_VTD,
        linux::iommu_hw_info_type_IOMMU_HW_INFO_TYPE_INTEL_VTD
    );
    assert_eq!(
        HWPT_DATA_VTD_S1,
        linux::iommu_hwpt_data_type_IOMMU_HWPT_DATA_VTD_S1
    );
    assert_eq!(
        HWPT_INVALIDATE_DATA_VTD_S1,
        linux::iommu_hwpt_invalidate_data_type_IOMMU_HWPT_INVALIDATE_DATA_VTD_S1
    );
    assert_eq!(
        u64::from(HwInfoVtdFlags::ERRATA_772415_SPR17.bits()),
        u64::from(linux::iommu_hw_info_vtd_flags_IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17)
    );
    let s1 = [
        (
            VtdS1Flags::SRE,
            linux::iommu_hwpt_vtd_s1_flags_IOMMU_VTD_S1_SRE,
        ),
        (
            VtdS1Flags::EAFE,
            linux::iommu_hwpt_vtd_s1_flags_IOMMU_VTD_S1_EAFE,
        ),
        (
            VtdS1Flags::WPE,
            linux::iommu_hwpt_vtd_s1_flags_IOMMU_VTD_S1_WPE,
        ),
    ];
    for (ours, theirs) in s1 {
        assert_eq!(ours.bits(), u64::from(theirs), "{ours:?}");
    }
    assert_eq!(
        u64::from(VtdInvalidateFlags::LEAF.bits()),
        u64::from(linux::iommu_hwpt_vtd_s1_invalidate_flags_IOMMU_VTD_INV_FLAGS_LEAF)
    );
}
