//! The driver's mirror of the SMMUv3 iommufd uAPI struct against the Linux header (v7.1, as
//! cloud-hypervisor's `iommufd-bindings` has it) and iommufd's own copy: size, alignment,
//! field offsets and the type values.

use std::mem::{align_of, offset_of, size_of};

use iommufd_bindings as linux;
use vsva_iommufd::abi::{HwInfoType, IommuHwInfoArmSmmuv3 as Iommufds};
use vsva_smmuv3_driver::uapi::{
    HW_INFO_TYPE_ARM_SMMUV3, HW_INFO_TYPE_DEFAULT, HWPT_DATA_ARM_SMMUV3, IommuHwInfoArmSmmuv3,
    IommuHwptArmSmmuv3, IommuVeventArmSmmuv3, IommuViommuArmSmmuv3Invalidate,
    VEVENTQ_TYPE_ARM_SMMUV3, VIOMMU_INVALIDATE_DATA_ARM_SMMUV3, VIOMMU_TYPE_ARM_SMMUV3,
};

macro_rules! same_layout {
    ($ours:ty, $theirs:ty, [$($field:ident),* $(,)?]) => {
        assert_eq!(size_of::<$ours>(), size_of::<$theirs>(), stringify!($theirs));
        assert_eq!(align_of::<$ours>(), align_of::<$theirs>(), stringify!($theirs));
        $( assert_eq!(
            offset_of!($ours, $field),
            offset_of!($theirs, $field),
            concat!(stringify!($theirs), ".", stringify!($field)),
        ); )*
    };
}

#[test]
fn the_hw_info_struct_has_the_kernel_layout() {
    same_layout!(
        IommuHwInfoArmSmmuv3,
        linux::iommu_hw_info_arm_smmuv3,
        [flags, __reserved, idr, iidr, aidr]
    );
    same_layout!(
        IommuHwInfoArmSmmuv3,
        Iommufds,
        [flags, __reserved, idr, iidr, aidr]
    );
    assert_eq!(size_of::<IommuHwInfoArmSmmuv3>(), 40);
    assert_eq!(offset_of!(IommuHwInfoArmSmmuv3, idr), 8);
    assert_eq!(offset_of!(IommuHwInfoArmSmmuv3, iidr), 32);
    assert_eq!(offset_of!(IommuHwInfoArmSmmuv3, aidr), 36);
}

#[test]
fn the_hw_info_types_have_the_kernel_values() {
    assert_eq!(
        HW_INFO_TYPE_DEFAULT,
        linux::iommu_hw_info_type_IOMMU_HW_INFO_TYPE_DEFAULT
    );
    assert_eq!(
        HW_INFO_TYPE_ARM_SMMUV3,
        linux::iommu_hw_info_type_IOMMU_HW_INFO_TYPE_ARM_SMMUV3
    );
    assert_eq!(HW_INFO_TYPE_ARM_SMMUV3, HwInfoType::ARM_SMMUV3.0);
}

#[test]
fn the_nesting_structs_have_the_kernel_layout() {
    same_layout!(IommuHwptArmSmmuv3, linux::iommu_hwpt_arm_smmuv3, [ste]);
    same_layout!(
        IommuViommuArmSmmuv3Invalidate,
        linux::iommu_viommu_arm_smmuv3_invalidate,
        [cmd]
    );
    same_layout!(IommuVeventArmSmmuv3, linux::iommu_vevent_arm_smmuv3, [evt]);
    assert_eq!(size_of::<IommuHwptArmSmmuv3>(), 16);
    assert_eq!(size_of::<IommuViommuArmSmmuv3Invalidate>(), 16);
    assert_eq!(size_of::<IommuVeventArmSmmuv3>(), 32);
}

#[test]
fn the_nesting_types_have_the_kernel_values() {
    assert_eq!(
        VIOMMU_TYPE_ARM_SMMUV3,
        linux::iommu_viommu_type_IOMMU_VIOMMU_TYPE_ARM_SMMUV3
    );
    assert_eq!(
        HWPT_DATA_ARM_SMMUV3,
        linux::iommu_hwpt_data_type_IOMMU_HWPT_DATA_ARM_SMMUV3
    );
    assert_eq!(
        VIOMMU_INVALIDATE_DATA_ARM_SMMUV3,
        linux::iommu_hwpt_invalidate_data_type_IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3
    );
    assert_eq!(
        VEVENTQ_TYPE_ARM_SMMUV3,
        linux::iommu_veventq_type_IOMMU_VEVENTQ_TYPE_ARM_SMMUV3
    );
}
