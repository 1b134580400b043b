//! The three VFIO device-cdev ioctls of `include/uapi/linux/vfio.h` that connect a device to
//! iommufd: bind the device fd to an iommufd (giving it a device ID), attach it (or one of its
//! PASIDs) to an IOAS or HWPT, and detach it.
//!
//! These are issued on the VFIO device fd, not on the iommufd, and follow VFIO's `argsz`
//! conventions (`drivers/vfio/device_cdev.c`), which differ from iommufd's:
//!
//! * bind copies with `copy_struct_from_user()` like iommufd (`argsz` below 16 is `EINVAL`,
//!   non-zero bytes past 24 are `E2BIG`);
//! * attach and detach copy only the mandatory part, plus `pasid` when the `PASID` flag asks
//!   for it (then `argsz` must reach past `pasid`, else `EINVAL`), and ignore any bytes beyond —
//!   see [`read_vfio_flag_extended`](super::read_vfio_flag_extended).
//!
//! Unknown flag bits are `EINVAL` here, not `EOPNOTSUPP`.

use bitflags::bitflags;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::assert_layout;

bitflags! {
    /// Flags of `VFIO_DEVICE_BIND_IOMMUFD`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct VfioBindFlags: u32 {
        /// `VFIO_DEVICE_BIND_FLAG_TOKEN`: `token_uuid_ptr` points to the VF token (a 16-byte
        /// UUID) that a PF driver requires before its VFs may be used.
        const TOKEN = 1 << 0;
    }
}

/// `struct vfio_device_bind_iommufd`, argument of `VFIO_DEVICE_BIND_IOMMUFD`: bind a VFIO
/// device (opened through its cdev) to an iommufd. The device cannot be used before, and is
/// unbound when its fd closes.
///
/// Linux: `argsz` below 16 (`offsetofend(out_devid)`) is `EINVAL`; then the
/// `copy_struct_from_user()` rules; a negative `iommufd`, unknown flags, a group-opened device
/// fd, or a device already bound are `EINVAL`. Only `out_devid` is written back.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VfioDeviceBindIommufd {
    /// Size of the struct as the caller knows it.
    pub argsz: u32,
    /// [`VfioBindFlags`].
    pub flags: u32,
    /// The iommufd to bind to.
    pub iommufd: i32,
    /// Output: the device's ID in that iommufd, used by every iommufd command naming it.
    pub out_devid: u32,
    /// User pointer to the VF token, with [`VfioBindFlags::TOKEN`].
    pub token_uuid_ptr: u64,
}
assert_layout!(VfioDeviceBindIommufd, size = 24, align = 8);

bitflags! {
    /// Flags of `VFIO_DEVICE_ATTACH_IOMMUFD_PT`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct VfioAttachFlags: u32 {
        /// `VFIO_DEVICE_ATTACH_PASID`: attach the PASID `pasid` of the device rather than the
        /// device itself (`EOPNOTSUPP` if the device cannot).
        const PASID = 1 << 0;
    }
}

/// `struct vfio_device_attach_iommufd_pt`, argument of `VFIO_DEVICE_ATTACH_IOMMUFD_PT`:
/// attach the device (or one PASID) to an IOAS or HWPT; attaching again replaces the previous
/// attachment.
///
/// Linux: `argsz` below 12 (`offsetofend(pt_id)`) is `EINVAL`; unknown flags are `EINVAL`;
/// with `PASID`, `argsz` below 16 is `EINVAL`. Output: `pt_id` becomes the HWPT actually
/// attached (an automatically created one when an IOAS was given); only `pt_id` is written
/// back.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VfioDeviceAttachIommufdPt {
    /// Size of the struct as the caller knows it.
    pub argsz: u32,
    /// [`VfioAttachFlags`].
    pub flags: u32,
    /// Input: an IOAS or HWPT ID. Output: the HWPT attached.
    pub pt_id: u32,
    /// The PASID, with [`VfioAttachFlags::PASID`].
    pub pasid: u32,
}
assert_layout!(VfioDeviceAttachIommufdPt, size = 16, align = 4);

bitflags! {
    /// Flags of `VFIO_DEVICE_DETACH_IOMMUFD_PT`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct VfioDetachFlags: u32 {
        /// `VFIO_DEVICE_DETACH_PASID`: detach the PASID `pasid` rather than the device.
        const PASID = 1 << 0;
    }
}

/// `struct vfio_device_detach_iommufd_pt`, argument of `VFIO_DEVICE_DETACH_IOMMUFD_PT`: undo
/// an attach (a closed device fd does the same).
///
/// Linux: `argsz` below 8 (`offsetofend(flags)`) is `EINVAL`; unknown flags are `EINVAL`;
/// with `PASID`, `argsz` below 12 is `EINVAL`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VfioDeviceDetachIommufdPt {
    /// Size of the struct as the caller knows it.
    pub argsz: u32,
    /// [`VfioDetachFlags`].
    pub flags: u32,
    /// The PASID, with [`VfioDetachFlags::PASID`].
    pub pasid: u32,
}
assert_layout!(VfioDeviceDetachIommufdPt, size = 12, align = 4);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(VfioBindFlags::TOKEN.bits(), 1);
        assert_eq!(VfioAttachFlags::PASID.bits(), 1);
        assert_eq!(VfioDetachFlags::PASID.bits(), 1);
    }

    #[test]
    fn bind_bytes() {
        // struct vfio_device_bind_iommufd: argsz@0 flags@4 iommufd@8 out_devid@12
        // token_uuid_ptr@16.
        let bind = VfioDeviceBindIommufd {
            argsz: 24,
            flags: 0,
            iommufd: 3,
            out_devid: 0,
            token_uuid_ptr: 0,
        };
        let bytes = bind.as_bytes();
        assert_eq!(&bytes[0..4], &24u32.to_le_bytes());
        assert_eq!(&bytes[8..12], &3i32.to_le_bytes());
    }
}
