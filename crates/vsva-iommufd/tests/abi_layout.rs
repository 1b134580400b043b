//! Layout of every `vsva_iommufd::abi` struct against cloud-hypervisor's `iommufd-bindings`
//! 0.2.0, bindgen output of Linux v7.1 `include/uapi/linux/iommufd.h`.
//!
//! Size, alignment and every field's offset are compared at compile time (`const` asserts: a
//! mismatch does not build); every field's size is compared at run time. Constants (command
//! numbers, flag bits, enum values) are compared too.
//!
//! Coverage: every struct of the binding crate except `__kernel_fd_set` and `__kernel_fsid_t`,
//! which `linux/types.h` drags into the bindings and iommufd does not use. The header's
//! anonymous union in `struct iommu_hw_info` (`in_data_type` / `out_data_type`, bindgen's
//! `__bindgen_anon_1`) is one `u32` field `data_type` here.
//!
//! The VFIO structs (`vfio.h`) are not in the binding crate; their layouts are checked against
//! sizes and offsets worked out by hand from the header at the end of this file.

use core::mem::{align_of, offset_of, size_of};

use iommufd_bindings as linux;
use vsva_iommufd::abi::{self, Command};
use zerocopy::FromZeros;

/// `same_layout!(test_name: ours, theirs, [field, ...])`, a field renamed as
/// `our_field = their_field`: compile-time size, alignment and offset equality, and a test
/// function comparing field sizes.
macro_rules! same_layout {
    ($test:ident: $ours:ty, $theirs:ty, [$($fields:tt)*]) => {
        same_layout!(@pairs $test, $ours, $theirs, [], [$($fields)*]);
    };
    // Normalise the field list to (ours, theirs) pairs.
    (@pairs $test:ident, $ours:ty, $theirs:ty, [$($done:tt)*], []) => {
        same_layout!(@emit $test, $ours, $theirs, [$($done)*]);
    };
    (@pairs $test:ident, $ours:ty, $theirs:ty, [$($done:tt)*],
        [$field:ident = $their:ident $(, $($rest:tt)*)?]) => {
        same_layout!(@pairs $test, $ours, $theirs, [$($done)* ($field, $their)], [$($($rest)*)?]);
    };
    (@pairs $test:ident, $ours:ty, $theirs:ty, [$($done:tt)*],
        [$field:ident $(, $($rest:tt)*)?]) => {
        same_layout!(@pairs $test, $ours, $theirs, [$($done)* ($field, $field)], [$($($rest)*)?]);
    };
    (@emit $test:ident, $ours:ty, $theirs:ty, [$(($field:ident, $their:ident))*]) => {
        const _: () = {
            assert!(size_of::<$ours>() == size_of::<$theirs>());
            assert!(align_of::<$ours>() == align_of::<$theirs>());
            $( assert!(offset_of!($ours, $field) == offset_of!($theirs, $their)); )*
        };

        #[test]
        fn $test() {
            let ours = <$ours>::new_zeroed();
            let theirs = <$theirs>::default();
            $(
                assert_eq!(
                    size_of_val(&ours.$field),
                    size_of_val(&theirs.$their),
                    concat!(stringify!($ours), "::", stringify!($field)),
                );
            )*
            // The fields listed cover every byte of our struct (none forgotten).
            let covered: usize = 0 $(+ size_of_val(&ours.$field))*;
            assert_eq!(covered, size_of::<$ours>(), stringify!($ours));
        }
    };
}

same_layout!(destroy: abi::IommuDestroy, linux::iommu_destroy, [size, id]);
same_layout!(ioas_alloc: abi::IommuIoasAlloc, linux::iommu_ioas_alloc, [size, flags, out_ioas_id]);
same_layout!(iova_range: abi::IommuIovaRange, linux::iommu_iova_range, [start, last]);
same_layout!(
    ioas_iova_ranges: abi::IommuIoasIovaRanges,
    linux::iommu_ioas_iova_ranges,
    [size, ioas_id, num_iovas, __reserved, allowed_iovas, out_iova_alignment]
);
same_layout!(
    ioas_allow_iovas: abi::IommuIoasAllowIovas,
    linux::iommu_ioas_allow_iovas,
    [size, ioas_id, num_iovas, __reserved, allowed_iovas]
);
same_layout!(
    ioas_map: abi::IommuIoasMap,
    linux::iommu_ioas_map,
    [size, flags, ioas_id, __reserved, user_va, length, iova]
);
same_layout!(
    ioas_map_file: abi::IommuIoasMapFile,
    linux::iommu_ioas_map_file,
    [size, flags, ioas_id, fd, start, length, iova]
);
same_layout!(
    ioas_copy: abi::IommuIoasCopy,
    linux::iommu_ioas_copy,
    [size, flags, dst_ioas_id, src_ioas_id, length, dst_iova, src_iova]
);
same_layout!(
    ioas_unmap: abi::IommuIoasUnmap,
    linux::iommu_ioas_unmap,
    [size, ioas_id, iova, length]
);
same_layout!(
    option: abi::IommuOption,
    linux::iommu_option,
    [size, option_id, op, __reserved, object_id, val64]
);
same_layout!(
    vfio_ioas: abi::IommuVfioIoas,
    linux::iommu_vfio_ioas,
    [size, ioas_id, op, __reserved]
);
same_layout!(
    hwpt_vtd_s1: abi::IommuHwptVtdS1,
    linux::iommu_hwpt_vtd_s1,
    [flags, pgtbl_addr, addr_width, __reserved]
);
same_layout!(hwpt_arm_smmuv3: abi::IommuHwptArmSmmuv3, linux::iommu_hwpt_arm_smmuv3, [ste]);
same_layout!(hwpt_amd_guest: abi::IommuHwptAmdGuest, linux::iommu_hwpt_amd_guest, [dte]);
same_layout!(
    hwpt_alloc: abi::IommuHwptAlloc,
    linux::iommu_hwpt_alloc,
    [
        size,
        flags,
        dev_id,
        pt_id,
        out_hwpt_id,
        __reserved,
        data_type,
        data_len,
        data_uptr,
        fault_id,
        __reserved2,
    ]
);
same_layout!(
    hw_info_vtd: abi::IommuHwInfoVtd,
    linux::iommu_hw_info_vtd,
    [flags, __reserved, cap_reg, ecap_reg]
);
same_layout!(
    hw_info_arm_smmuv3: abi::IommuHwInfoArmSmmuv3,
    linux::iommu_hw_info_arm_smmuv3,
    [flags, __reserved, idr, iidr, aidr]
);
same_layout!(
    hw_info_tegra241_cmdqv: abi::IommuHwInfoTegra241Cmdqv,
    linux::iommu_hw_info_tegra241_cmdqv,
    [flags, version, log2vcmdqs, log2vsids, __reserved]
);
same_layout!(hw_info_amd: abi::IommuHwInfoAmd, linux::iommu_hw_info_amd, [efr, efr2]);
same_layout!(
    hw_info: abi::IommuHwInfo,
    linux::iommu_hw_info,
    [
        size,
        flags,
        dev_id,
        data_len,
        data_uptr,
        data_type = __bindgen_anon_1,
        out_max_pasid_log2,
        __reserved,
        out_capabilities,
    ]
);
same_layout!(
    hwpt_set_dirty_tracking: abi::IommuHwptSetDirtyTracking,
    linux::iommu_hwpt_set_dirty_tracking,
    [size, flags, hwpt_id, __reserved]
);
same_layout!(
    hwpt_get_dirty_bitmap: abi::IommuHwptGetDirtyBitmap,
    linux::iommu_hwpt_get_dirty_bitmap,
    [size, hwpt_id, flags, __reserved, iova, length, page_size, data]
);
same_layout!(
    hwpt_vtd_s1_invalidate: abi::IommuHwptVtdS1Invalidate,
    linux::iommu_hwpt_vtd_s1_invalidate,
    [addr, npages, flags, __reserved]
);
same_layout!(
    viommu_arm_smmuv3_invalidate: abi::IommuViommuArmSmmuv3Invalidate,
    linux::iommu_viommu_arm_smmuv3_invalidate,
    [cmd]
);
same_layout!(
    hwpt_invalidate: abi::IommuHwptInvalidate,
    linux::iommu_hwpt_invalidate,
    [size, hwpt_id, data_uptr, data_type, entry_len, entry_num, __reserved]
);
same_layout!(
    hwpt_pgfault: abi::IommuHwptPgfault,
    linux::iommu_hwpt_pgfault,
    [flags, dev_id, pasid, grpid, perm, __reserved, addr, length, cookie]
);
same_layout!(
    hwpt_page_response: abi::IommuHwptPageResponse,
    linux::iommu_hwpt_page_response,
    [cookie, code]
);
same_layout!(
    fault_alloc: abi::IommuFaultAlloc,
    linux::iommu_fault_alloc,
    [size, flags, out_fault_id, out_fault_fd]
);
same_layout!(
    viommu_tegra241_cmdqv: abi::IommuViommuTegra241Cmdqv,
    linux::iommu_viommu_tegra241_cmdqv,
    [out_vintf_mmap_offset, out_vintf_mmap_length]
);
same_layout!(
    viommu_alloc: abi::IommuViommuAlloc,
    linux::iommu_viommu_alloc,
    [size, flags, type_, dev_id, hwpt_id, out_viommu_id, data_len, __reserved, data_uptr]
);
same_layout!(
    vdevice_alloc: abi::IommuVdeviceAlloc,
    linux::iommu_vdevice_alloc,
    [size, viommu_id, dev_id, out_vdevice_id, virt_id]
);
same_layout!(
    ioas_change_process: abi::IommuIoasChangeProcess,
    linux::iommu_ioas_change_process,
    [size, __reserved]
);
same_layout!(
    vevent_header: abi::IommufdVeventHeader,
    linux::iommufd_vevent_header,
    [flags, sequence]
);
same_layout!(vevent_arm_smmuv3: abi::IommuVeventArmSmmuv3, linux::iommu_vevent_arm_smmuv3, [evt]);
same_layout!(
    vevent_tegra241_cmdqv: abi::IommuVeventTegra241Cmdqv,
    linux::iommu_vevent_tegra241_cmdqv,
    [lvcmdq_err_map]
);
same_layout!(
    veventq_alloc: abi::IommuVeventqAlloc,
    linux::iommu_veventq_alloc,
    [size, flags, viommu_id, type_, veventq_depth, out_veventq_id, out_veventq_fd, __reserved]
);
same_layout!(
    hw_queue_alloc: abi::IommuHwQueueAlloc,
    linux::iommu_hw_queue_alloc,
    [size, flags, viommu_id, type_, index, out_hw_queue_id, nesting_parent_iova, length]
);

// The anonymous union of struct iommu_hw_info is a single u32.
const _: () = assert!(size_of::<linux::iommu_hw_info__bindgen_ty_1>() == size_of::<u32>());

/// `VFIO_DEVICE_*` structs of `include/uapi/linux/vfio.h` (v6.18), not in `iommufd-bindings`:
/// sizes and offsets worked out by hand from the header.
///
/// * `vfio_device_bind_iommufd` = { `__u32 argsz`, `__u32 flags`, `__s32 iommufd`,
///   `__u32 out_devid`, `__aligned_u64 token_uuid_ptr` }: 0, 4, 8, 12, 16; 24 bytes, align 8.
/// * `vfio_device_attach_iommufd_pt` = { argsz, flags, pt_id, pasid } (all `__u32`): 0, 4, 8,
///   12; 16 bytes, align 4.
/// * `vfio_device_detach_iommufd_pt` = { argsz, flags, pasid }: 0, 4, 8; 12 bytes, align 4.
const _: () = {
    use abi::{VfioDeviceAttachIommufdPt, VfioDeviceBindIommufd, VfioDeviceDetachIommufdPt};
    assert!(size_of::<VfioDeviceBindIommufd>() == 24);
    assert!(align_of::<VfioDeviceBindIommufd>() == 8);
    assert!(offset_of!(VfioDeviceBindIommufd, argsz) == 0);
    assert!(offset_of!(VfioDeviceBindIommufd, flags) == 4);
    assert!(offset_of!(VfioDeviceBindIommufd, iommufd) == 8);
    assert!(offset_of!(VfioDeviceBindIommufd, out_devid) == 12);
    assert!(offset_of!(VfioDeviceBindIommufd, token_uuid_ptr) == 16);
    assert!(size_of::<VfioDeviceAttachIommufdPt>() == 16);
    assert!(align_of::<VfioDeviceAttachIommufdPt>() == 4);
    assert!(offset_of!(VfioDeviceAttachIommufdPt, argsz) == 0);
    assert!(offset_of!(VfioDeviceAttachIommufdPt, flags) == 4);
    assert!(offset_of!(VfioDeviceAttachIommufdPt, pt_id) == 8);
    assert!(offset_of!(VfioDeviceAttachIommufdPt, pasid) == 12);
    assert!(size_of::<VfioDeviceDetachIommufdPt>() == 12);
    assert!(align_of::<VfioDeviceDetachIommufdPt>() == 4);
    assert!(offset_of!(VfioDeviceDetachIommufdPt, argsz) == 0);
    assert!(offset_of!(VfioDeviceDetachIommufdPt, flags) == 4);
    assert!(offset_of!(VfioDeviceDetachIommufdPt, pasid) == 8);
};

#[test]
fn command_numbers_match_the_binding() {
    use vsva_iommufd::abi::ioctl::{self, IOMMUFD_CMD_BASE, IOMMUFD_TYPE, ioc_nr, ioc_type};
    assert_eq!(IOMMUFD_TYPE, linux::IOMMUFD_TYPE);
    assert_eq!(u32::from(IOMMUFD_CMD_BASE), linux::IOMMUFD_CMD_BASE);
    let table = [
        (Command::Destroy, linux::IOMMUFD_CMD_DESTROY),
        (Command::IoasAlloc, linux::IOMMUFD_CMD_IOAS_ALLOC),
        (Command::IoasAllowIovas, linux::IOMMUFD_CMD_IOAS_ALLOW_IOVAS),
        (Command::IoasCopy, linux::IOMMUFD_CMD_IOAS_COPY),
        (Command::IoasIovaRanges, linux::IOMMUFD_CMD_IOAS_IOVA_RANGES),
        (Command::IoasMap, linux::IOMMUFD_CMD_IOAS_MAP),
        (Command::IoasUnmap, linux::IOMMUFD_CMD_IOAS_UNMAP),
        (Command::Option, linux::IOMMUFD_CMD_OPTION),
        (Command::VfioIoas, linux::IOMMUFD_CMD_VFIO_IOAS),
        (Command::HwptAlloc, linux::IOMMUFD_CMD_HWPT_ALLOC),
        (Command::GetHwInfo, linux::IOMMUFD_CMD_GET_HW_INFO),
        (
            Command::HwptSetDirtyTracking,
            linux::IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING,
        ),
        (
            Command::HwptGetDirtyBitmap,
            linux::IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP,
        ),
        (Command::HwptInvalidate, linux::IOMMUFD_CMD_HWPT_INVALIDATE),
        (
            Command::FaultQueueAlloc,
            linux::IOMMUFD_CMD_FAULT_QUEUE_ALLOC,
        ),
        (Command::IoasMapFile, linux::IOMMUFD_CMD_IOAS_MAP_FILE),
        (Command::ViommuAlloc, linux::IOMMUFD_CMD_VIOMMU_ALLOC),
        (Command::VdeviceAlloc, linux::IOMMUFD_CMD_VDEVICE_ALLOC),
        (
            Command::IoasChangeProcess,
            linux::IOMMUFD_CMD_IOAS_CHANGE_PROCESS,
        ),
        (Command::VeventqAlloc, linux::IOMMUFD_CMD_VEVENTQ_ALLOC),
        (Command::HwQueueAlloc, linux::IOMMUFD_CMD_HW_QUEUE_ALLOC),
    ];
    for (command, nr) in table {
        let number = command.ioctl_number();
        assert_eq!(u32::from(ioc_nr(number)), nr, "{}", command.name());
        assert_eq!(ioc_type(number), linux::IOMMUFD_TYPE, "{}", command.name());
        assert_eq!(number, ioctl::io(linux::IOMMUFD_TYPE, nr as u8));
    }
}

#[test]
fn flags_and_enums_match_the_binding() {
    use abi::*;
    let pairs: &[(u64, u64, &str)] = &[
        (
            IoasMapFlags::FIXED_IOVA.bits().into(),
            linux::iommufd_ioas_map_flags_IOMMU_IOAS_MAP_FIXED_IOVA.into(),
            "IOMMU_IOAS_MAP_FIXED_IOVA",
        ),
        (
            IoasMapFlags::WRITEABLE.bits().into(),
            linux::iommufd_ioas_map_flags_IOMMU_IOAS_MAP_WRITEABLE.into(),
            "IOMMU_IOAS_MAP_WRITEABLE",
        ),
        (
            IoasMapFlags::READABLE.bits().into(),
            linux::iommufd_ioas_map_flags_IOMMU_IOAS_MAP_READABLE.into(),
            "IOMMU_IOAS_MAP_READABLE",
        ),
        (
            OptionId::RLIMIT_MODE.0.into(),
            linux::iommufd_option_IOMMU_OPTION_RLIMIT_MODE.into(),
            "IOMMU_OPTION_RLIMIT_MODE",
        ),
        (
            OptionId::HUGE_PAGES.0.into(),
            linux::iommufd_option_IOMMU_OPTION_HUGE_PAGES.into(),
            "IOMMU_OPTION_HUGE_PAGES",
        ),
        (
            OptionOp::SET.0.into(),
            linux::iommufd_option_ops_IOMMU_OPTION_OP_SET.into(),
            "IOMMU_OPTION_OP_SET",
        ),
        (
            OptionOp::GET.0.into(),
            linux::iommufd_option_ops_IOMMU_OPTION_OP_GET.into(),
            "IOMMU_OPTION_OP_GET",
        ),
        (
            VfioIoasOp::GET.0.into(),
            linux::iommufd_vfio_ioas_op_IOMMU_VFIO_IOAS_GET.into(),
            "IOMMU_VFIO_IOAS_GET",
        ),
        (
            VfioIoasOp::SET.0.into(),
            linux::iommufd_vfio_ioas_op_IOMMU_VFIO_IOAS_SET.into(),
            "IOMMU_VFIO_IOAS_SET",
        ),
        (
            VfioIoasOp::CLEAR.0.into(),
            linux::iommufd_vfio_ioas_op_IOMMU_VFIO_IOAS_CLEAR.into(),
            "IOMMU_VFIO_IOAS_CLEAR",
        ),
        (
            HwptAllocFlags::NEST_PARENT.bits().into(),
            linux::iommufd_hwpt_alloc_flags_IOMMU_HWPT_ALLOC_NEST_PARENT.into(),
            "IOMMU_HWPT_ALLOC_NEST_PARENT",
        ),
        (
            HwptAllocFlags::DIRTY_TRACKING.bits().into(),
            linux::iommufd_hwpt_alloc_flags_IOMMU_HWPT_ALLOC_DIRTY_TRACKING.into(),
            "IOMMU_HWPT_ALLOC_DIRTY_TRACKING",
        ),
        (
            HwptAllocFlags::FAULT_ID_VALID.bits().into(),
            linux::iommufd_hwpt_alloc_flags_IOMMU_HWPT_FAULT_ID_VALID.into(),
            "IOMMU_HWPT_FAULT_ID_VALID",
        ),
        (
            HwptAllocFlags::PASID.bits().into(),
            linux::iommufd_hwpt_alloc_flags_IOMMU_HWPT_ALLOC_PASID.into(),
            "IOMMU_HWPT_ALLOC_PASID",
        ),
        (
            VtdS1Flags::SRE.bits(),
            linux::iommu_hwpt_vtd_s1_flags_IOMMU_VTD_S1_SRE.into(),
            "IOMMU_VTD_S1_SRE",
        ),
        (
            VtdS1Flags::EAFE.bits(),
            linux::iommu_hwpt_vtd_s1_flags_IOMMU_VTD_S1_EAFE.into(),
            "IOMMU_VTD_S1_EAFE",
        ),
        (
            VtdS1Flags::WPE.bits(),
            linux::iommu_hwpt_vtd_s1_flags_IOMMU_VTD_S1_WPE.into(),
            "IOMMU_VTD_S1_WPE",
        ),
        (
            HwptDataType::NONE.0.into(),
            linux::iommu_hwpt_data_type_IOMMU_HWPT_DATA_NONE.into(),
            "IOMMU_HWPT_DATA_NONE",
        ),
        (
            HwptDataType::VTD_S1.0.into(),
            linux::iommu_hwpt_data_type_IOMMU_HWPT_DATA_VTD_S1.into(),
            "IOMMU_HWPT_DATA_VTD_S1",
        ),
        (
            HwptDataType::ARM_SMMUV3.0.into(),
            linux::iommu_hwpt_data_type_IOMMU_HWPT_DATA_ARM_SMMUV3.into(),
            "IOMMU_HWPT_DATA_ARM_SMMUV3",
        ),
        (
            HwptDataType::AMD_GUEST.0.into(),
            linux::iommu_hwpt_data_type_IOMMU_HWPT_DATA_AMD_GUEST.into(),
            "IOMMU_HWPT_DATA_AMD_GUEST",
        ),
        (
            HwInfoVtdFlags::ERRATA_772415_SPR17.bits().into(),
            linux::iommu_hw_info_vtd_flags_IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17.into(),
            "IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17",
        ),
        (
            HwInfoType::NONE.0.into(),
            linux::iommu_hw_info_type_IOMMU_HW_INFO_TYPE_NONE.into(),
            "IOMMU_HW_INFO_TYPE_NONE",
        ),
        (
            HwInfoType::DEFAULT.0.into(),
            linux::iommu_hw_info_type_IOMMU_HW_INFO_TYPE_DEFAULT.into(),
            "IOMMU_HW_INFO_TYPE_DEFAULT",
        ),
        (
            HwInfoType::INTEL_VTD.0.into(),
            linux::iommu_hw_info_type_IOMMU_HW_INFO_TYPE_INTEL_VTD.into(),
            "IOMMU_HW_INFO_TYPE_INTEL_VTD",
        ),
        (
            HwInfoType::ARM_SMMUV3.0.into(),
            linux::iommu_hw_info_type_IOMMU_HW_INFO_TYPE_ARM_SMMUV3.into(),
            "IOMMU_HW_INFO_TYPE_ARM_SMMUV3",
        ),
        (
            HwInfoType::TEGRA241_CMDQV.0.into(),
            linux::iommu_hw_info_type_IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV.into(),
            "IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV",
        ),
        (
            HwInfoType::AMD.0.into(),
            linux::iommu_hw_info_type_IOMMU_HW_INFO_TYPE_AMD.into(),
            "IOMMU_HW_INFO_TYPE_AMD",
        ),
        (
            HwCapabilities::DIRTY_TRACKING.bits(),
            linux::iommufd_hw_capabilities_IOMMU_HW_CAP_DIRTY_TRACKING.into(),
            "IOMMU_HW_CAP_DIRTY_TRACKING",
        ),
        (
            HwCapabilities::PCI_PASID_EXEC.bits(),
            linux::iommufd_hw_capabilities_IOMMU_HW_CAP_PCI_PASID_EXEC.into(),
            "IOMMU_HW_CAP_PCI_PASID_EXEC",
        ),
        (
            HwCapabilities::PCI_PASID_PRIV.bits(),
            linux::iommufd_hw_capabilities_IOMMU_HW_CAP_PCI_PASID_PRIV.into(),
            "IOMMU_HW_CAP_PCI_PASID_PRIV",
        ),
        (
            HwCapabilities::PCI_ATS_NOT_SUPPORTED.bits(),
            linux::iommufd_hw_capabilities_IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED.into(),
            "IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED",
        ),
        (
            HwInfoFlags::INPUT_TYPE.bits().into(),
            linux::iommufd_hw_info_flags_IOMMU_HW_INFO_FLAG_INPUT_TYPE.into(),
            "IOMMU_HW_INFO_FLAG_INPUT_TYPE",
        ),
        (
            DirtyTrackingFlags::ENABLE.bits().into(),
            linux::iommufd_hwpt_set_dirty_tracking_flags_IOMMU_HWPT_DIRTY_TRACKING_ENABLE.into(),
            "IOMMU_HWPT_DIRTY_TRACKING_ENABLE",
        ),
        (
            GetDirtyBitmapFlags::NO_CLEAR.bits().into(),
            linux::iommufd_hwpt_get_dirty_bitmap_flags_IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR.into(),
            "IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR",
        ),
        (
            HwptInvalidateDataType::VTD_S1.0.into(),
            linux::iommu_hwpt_invalidate_data_type_IOMMU_HWPT_INVALIDATE_DATA_VTD_S1.into(),
            "IOMMU_HWPT_INVALIDATE_DATA_VTD_S1",
        ),
        (
            HwptInvalidateDataType::ARM_SMMUV3.0.into(),
            linux::iommu_hwpt_invalidate_data_type_IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3.into(),
            "IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3",
        ),
        (
            VtdInvalidateFlags::LEAF.bits().into(),
            linux::iommu_hwpt_vtd_s1_invalidate_flags_IOMMU_VTD_INV_FLAGS_LEAF.into(),
            "IOMMU_VTD_INV_FLAGS_LEAF",
        ),
        (
            PgfaultFlags::PASID_VALID.bits().into(),
            linux::iommu_hwpt_pgfault_flags_IOMMU_PGFAULT_FLAGS_PASID_VALID.into(),
            "IOMMU_PGFAULT_FLAGS_PASID_VALID",
        ),
        (
            PgfaultFlags::LAST_PAGE.bits().into(),
            linux::iommu_hwpt_pgfault_flags_IOMMU_PGFAULT_FLAGS_LAST_PAGE.into(),
            "IOMMU_PGFAULT_FLAGS_LAST_PAGE",
        ),
        (
            PgfaultPerm::READ.bits().into(),
            linux::iommu_hwpt_pgfault_perm_IOMMU_PGFAULT_PERM_READ.into(),
            "IOMMU_PGFAULT_PERM_READ",
        ),
        (
            PgfaultPerm::WRITE.bits().into(),
            linux::iommu_hwpt_pgfault_perm_IOMMU_PGFAULT_PERM_WRITE.into(),
            "IOMMU_PGFAULT_PERM_WRITE",
        ),
        (
            PgfaultPerm::EXEC.bits().into(),
            linux::iommu_hwpt_pgfault_perm_IOMMU_PGFAULT_PERM_EXEC.into(),
            "IOMMU_PGFAULT_PERM_EXEC",
        ),
        (
            PgfaultPerm::PRIV.bits().into(),
            linux::iommu_hwpt_pgfault_perm_IOMMU_PGFAULT_PERM_PRIV.into(),
            "IOMMU_PGFAULT_PERM_PRIV",
        ),
        (
            PageResponseCode::SUCCESS.0.into(),
            linux::iommufd_page_response_code_IOMMUFD_PAGE_RESP_SUCCESS.into(),
            "IOMMUFD_PAGE_RESP_SUCCESS",
        ),
        (
            PageResponseCode::INVALID.0.into(),
            linux::iommufd_page_response_code_IOMMUFD_PAGE_RESP_INVALID.into(),
            "IOMMUFD_PAGE_RESP_INVALID",
        ),
        (
            ViommuType::DEFAULT.0.into(),
            linux::iommu_viommu_type_IOMMU_VIOMMU_TYPE_DEFAULT.into(),
            "IOMMU_VIOMMU_TYPE_DEFAULT",
        ),
        (
            ViommuType::ARM_SMMUV3.0.into(),
            linux::iommu_viommu_type_IOMMU_VIOMMU_TYPE_ARM_SMMUV3.into(),
            "IOMMU_VIOMMU_TYPE_ARM_SMMUV3",
        ),
        (
            ViommuType::TEGRA241_CMDQV.0.into(),
            linux::iommu_viommu_type_IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV.into(),
            "IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV",
        ),
        (
            VeventqFlags::LOST_EVENTS.bits().into(),
            linux::iommu_veventq_flag_IOMMU_VEVENTQ_FLAG_LOST_EVENTS.into(),
            "IOMMU_VEVENTQ_FLAG_LOST_EVENTS",
        ),
        (
            VeventqType::DEFAULT.0.into(),
            linux::iommu_veventq_type_IOMMU_VEVENTQ_TYPE_DEFAULT.into(),
            "IOMMU_VEVENTQ_TYPE_DEFAULT",
        ),
        (
            VeventqType::ARM_SMMUV3.0.into(),
            linux::iommu_veventq_type_IOMMU_VEVENTQ_TYPE_ARM_SMMUV3.into(),
            "IOMMU_VEVENTQ_TYPE_ARM_SMMUV3",
        ),
        (
            VeventqType::TEGRA241_CMDQV.0.into(),
            linux::iommu_veventq_type_IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV.into(),
            "IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV",
        ),
        (
            HwQueueType::DEFAULT.0.into(),
            linux::iommu_hw_queue_type_IOMMU_HW_QUEUE_TYPE_DEFAULT.into(),
            "IOMMU_HW_QUEUE_TYPE_DEFAULT",
        ),
        (
            HwQueueType::TEGRA241_CMDQV.0.into(),
            linux::iommu_hw_queue_type_IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV.into(),
            "IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV",
        ),
    ];
    for &(ours, theirs, name) in pairs {
        assert_eq!(ours, theirs, "{name}");
    }
}

#[test]
fn min_sizes_against_binding_offsets() {
    // main.c's min_size is offsetofend(struct, last mandatory field); recompute it from the
    // binding's own layout for the commands whose last field is not the struct's last.
    assert_eq!(
        Command::HwptAlloc.min_size(),
        offset_of!(linux::iommu_hwpt_alloc, __reserved) + 4
    );
    assert_eq!(
        Command::GetHwInfo.min_size(),
        offset_of!(linux::iommu_hw_info, __reserved) + 3
    );
    assert_eq!(
        Command::ViommuAlloc.min_size(),
        offset_of!(linux::iommu_viommu_alloc, out_viommu_id) + 4
    );
    assert_eq!(
        Command::VeventqAlloc.min_size(),
        offset_of!(linux::iommu_veventq_alloc, out_veventq_fd) + 4
    );
    assert_eq!(
        Command::HwptInvalidate.min_size(),
        size_of::<linux::iommu_hwpt_invalidate>()
    );
}
