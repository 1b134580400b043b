//! Virtual IOMMU commands of `include/uapi/linux/iommufd.h`: the vIOMMU object (a VM's slice
//! of a physical IOMMU, wrapping a nesting-parent HWPT), vDEVICEs (a device's guest-visible
//! ID on that vIOMMU), vEVENTQs (events the vIOMMU reports to the VMM) and hardware queues
//! (guest queues the hardware reads directly).
//!
//! Validation order is from `drivers/iommu/iommufd/viommu.c` and `eventq.c`.

use bitflags::bitflags;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{assert_layout, uapi_enum};

uapi_enum! {
    /// `enum iommu_viommu_type`.
    pub struct ViommuType(u32) {
        /// `IOMMU_VIOMMU_TYPE_DEFAULT`: reserved; allocating it is `EOPNOTSUPP`.
        DEFAULT = 0,
        /// `IOMMU_VIOMMU_TYPE_ARM_SMMUV3`: an SMMUv3 vIOMMU.
        ARM_SMMUV3 = 1,
        /// `IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV`: an SMMUv3 vIOMMU with NVIDIA Tegra241 CMDQV.
        TEGRA241_CMDQV = 2,
    }
}

/// `struct iommu_viommu_tegra241_cmdqv`: driver data of a [`ViommuType::TEGRA241_CMDQV`]
/// vIOMMU — where to mmap the VINTF page 0 the guest drives its command queues through.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuViommuTegra241Cmdqv {
    /// Output: mmap offset of VINTF page 0 on the iommufd.
    pub out_vintf_mmap_offset: u64,
    /// Output: mmap length of VINTF page 0.
    pub out_vintf_mmap_length: u64,
}
assert_layout!(IommuViommuTegra241Cmdqv, size = 16, align = 8);

/// `struct iommu_viommu_alloc`, argument of `IOMMU_VIOMMU_ALLOC`: create a vIOMMU backed by
/// the physical IOMMU of `dev_id`, with the nesting-parent HWPT `hwpt_id` as its stage 2.
///
/// Linux: non-zero `flags` or `type_ == DEFAULT` is `EOPNOTSUPP`, as is a driver without
/// vIOMMU support for the type; a HWPT that is not a nesting parent is `EINVAL`. `__reserved`
/// is not checked. The command's `min_size` ends at `out_viommu_id` (24): the driver data
/// fields are optional.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuViommuAlloc {
    /// `sizeof(struct iommu_viommu_alloc)` as the caller knows it.
    pub size: u32,
    /// No flags are defined; must be 0.
    pub flags: u32,
    /// The vIOMMU type (the header's `type`).
    pub type_: ViommuType,
    /// A device behind the physical IOMMU to use.
    pub dev_id: u32,
    /// The nesting-parent HWPT.
    pub hwpt_id: u32,
    /// Output: the new vIOMMU's ID.
    pub out_viommu_id: u32,
    /// Length of the driver data at `data_uptr`.
    pub data_len: u32,
    /// Should be 0 (Linux does not check it).
    pub __reserved: u32,
    /// User pointer to driver data (e.g. [`IommuViommuTegra241Cmdqv`]).
    pub data_uptr: u64,
}
assert_layout!(IommuViommuAlloc, size = 40, align = 8);

/// `struct iommu_vdevice_alloc`, argument of `IOMMU_VDEVICE_ALLOC`: give device `dev_id` the
/// guest-visible ID `virt_id` on vIOMMU `viommu_id` (a vSID on SMMUv3, a vDeviceID on AMD, a
/// vRID on VT-d), so guest commands and events naming the virtual ID reach the device.
///
/// Linux: a device behind another physical IOMMU is `EINVAL`; a device being destroyed is
/// `ENOENT`; a second vDEVICE for the device, or a `virt_id` already used on the vIOMMU, is
/// `EEXIST`. It should be destroyed before the device is unbound.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuVdeviceAlloc {
    /// `sizeof(struct iommu_vdevice_alloc)` as the caller knows it.
    pub size: u32,
    /// The vIOMMU.
    pub viommu_id: u32,
    /// The physical device.
    pub dev_id: u32,
    /// Output: the vDEVICE's ID.
    pub out_vdevice_id: u32,
    /// The device's ID as the guest sees it on this vIOMMU.
    pub virt_id: u64,
}
assert_layout!(IommuVdeviceAlloc, size = 24, align = 8);

bitflags! {
    /// `enum iommu_veventq_flag`: flags of a vEVENT header.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct VeventqFlags: u32 {
        /// `IOMMU_VEVENTQ_FLAG_LOST_EVENTS`: events were dropped after the previous one; a
        /// header with this flag and no data ends the queue.
        const LOST_EVENTS = 1 << 0;
    }
}

/// `struct iommufd_vevent_header`: precedes each event read from a vEVENTQ fd.
///
/// `sequence` counts events modulo 2^31 (after `i32::MAX` comes 0); a gap of more than 1
/// between consecutive headers means events were lost in between.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommufdVeventHeader {
    /// [`VeventqFlags`].
    pub flags: u32,
    /// Sequence number of the event that follows, in `[0, i32::MAX]`.
    pub sequence: u32,
}
assert_layout!(IommufdVeventHeader, size = 8, align = 4);

uapi_enum! {
    /// `enum iommu_veventq_type`.
    pub struct VeventqType(u32) {
        /// `IOMMU_VEVENTQ_TYPE_DEFAULT`: reserved; allocating it is `EOPNOTSUPP`.
        DEFAULT = 0,
        /// `IOMMU_VEVENTQ_TYPE_ARM_SMMUV3`: [`IommuVeventArmSmmuv3`] records.
        ARM_SMMUV3 = 1,
        /// `IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV`: [`IommuVeventTegra241Cmdqv`] records.
        TEGRA241_CMDQV = 2,
    }
}

/// `struct iommu_vevent_arm_smmuv3`: an SMMUv3 event record (SMMUv3 spec 7.3), little-endian,
/// whose StreamID is the vDEVICE's virtual ID. Reported events: C_BAD_STE,
/// F_STREAM_DISABLED, C_BAD_SUBSTREAMID, C_BAD_CD, F_TRANSLATION, F_ADDR_SIZE, F_ACCESS,
/// F_PERMISSION.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuVeventArmSmmuv3 {
    /// The 256-bit event record.
    pub evt: [u64; 4],
}
assert_layout!(IommuVeventArmSmmuv3, size = 32, align = 8);

/// `struct iommu_vevent_tegra241_cmdqv`: a Tegra241 CMDQV interrupt — the VINTF's 128-bit
/// logical VCMDQ error map, little-endian.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuVeventTegra241Cmdqv {
    /// LVCMDQ_ERR_MAP words 0 and 1.
    pub lvcmdq_err_map: [u64; 2],
}
assert_layout!(IommuVeventTegra241Cmdqv, size = 16, align = 8);

/// `struct iommu_veventq_alloc`, argument of `IOMMU_VEVENTQ_ALLOC`: create the vIOMMU's event
/// queue of one type (one per type), readable through `out_veventq_fd`; events beyond
/// `veventq_depth` are dropped and flagged.
///
/// Linux: non-zero `flags`, non-zero `__reserved` or `type_ == DEFAULT` is `EOPNOTSUPP`;
/// `veventq_depth == 0` is `EINVAL`; a second queue of the same type is `EEXIST`. The
/// command's `min_size` ends at `out_veventq_fd` (28).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuVeventqAlloc {
    /// `sizeof(struct iommu_veventq_alloc)` as the caller knows it.
    pub size: u32,
    /// No flags are defined; must be 0.
    pub flags: u32,
    /// The vIOMMU.
    pub viommu_id: u32,
    /// The queue type (the header's `type`).
    pub type_: VeventqType,
    /// Maximum number of queued events.
    pub veventq_depth: u32,
    /// Output: the vEVENTQ's object ID.
    pub out_veventq_id: u32,
    /// Output: the vEVENTQ's file descriptor.
    pub out_veventq_fd: u32,
    /// Must be 0.
    pub __reserved: u32,
}
assert_layout!(IommuVeventqAlloc, size = 32, align = 4);

uapi_enum! {
    /// `enum iommu_hw_queue_type`.
    pub struct HwQueueType(u32) {
        /// `IOMMU_HW_QUEUE_TYPE_DEFAULT`: reserved; allocating it is `EOPNOTSUPP`.
        DEFAULT = 0,
        /// `IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV`: a Tegra241 virtual command queue (VCMDQ).
        TEGRA241_CMDQV = 1,
    }
}

/// `struct iommu_hw_queue_alloc`, argument of `IOMMU_HW_QUEUE_ALLOC`: let the hardware read a
/// guest queue in place — `length` bytes at guest-physical `nesting_parent_iova`, which the
/// kernel pins and requires to be physically contiguous.
///
/// Linux: non-zero `flags` or `type_ == DEFAULT` is `EOPNOTSUPP`; `length == 0` is `EINVAL`;
/// `nesting_parent_iova + length - 1` overflowing is `EOVERFLOW`; the page-rounded length
/// overflowing is `ERANGE`; non-contiguous backing is `EFAULT`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuHwQueueAlloc {
    /// `sizeof(struct iommu_hw_queue_alloc)` as the caller knows it.
    pub size: u32,
    /// No flags are defined; must be 0.
    pub flags: u32,
    /// The vIOMMU.
    pub viommu_id: u32,
    /// The queue type (the header's `type`).
    pub type_: HwQueueType,
    /// Index of the queue among the vIOMMU's queues of this type.
    pub index: u32,
    /// Output: the HW queue's object ID.
    pub out_hw_queue_id: u32,
    /// Guest-physical (nesting parent IOVA) base of the queue memory.
    pub nesting_parent_iova: u64,
    /// Length of the queue memory in bytes.
    pub length: u64,
}
assert_layout!(IommuHwQueueAlloc, size = 40, align = 8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(ViommuType::DEFAULT.0, 0);
        assert_eq!(ViommuType::ARM_SMMUV3.0, 1);
        assert_eq!(ViommuType::TEGRA241_CMDQV.0, 2);
        assert_eq!(VeventqType::ARM_SMMUV3.0, 1);
        assert_eq!(VeventqType::TEGRA241_CMDQV.0, 2);
        assert_eq!(HwQueueType::TEGRA241_CMDQV.0, 1);
        assert_eq!(VeventqFlags::LOST_EVENTS.bits(), 1);
    }

    #[test]
    fn vdevice_alloc_bytes() {
        // struct iommu_vdevice_alloc: viommu_id@4 dev_id@8 out_vdevice_id@12 virt_id@16.
        let alloc = IommuVdeviceAlloc {
            size: 24,
            viommu_id: 5,
            dev_id: 1,
            out_vdevice_id: 0,
            virt_id: 0x0300,
        };
        let bytes = alloc.as_bytes();
        assert_eq!(&bytes[4..8], &5u32.to_le_bytes());
        assert_eq!(&bytes[16..24], &0x300u64.to_le_bytes());
    }
}
