//! ioctl numbers and the command table.
//!
//! Linux encodes an ioctl request as `dir << 30 | size << 16 | type << 8 | nr`
//! (`include/uapi/asm-generic/ioctl.h`, the layout x86 and arm64 use: 8 bits of number, 8 of
//! type, 14 of size, 2 of direction). iommufd defines every command with `_IO()` — no
//! direction and no size — because the size travels in the struct's first `u32` instead; the
//! VFIO cdev ioctls do the same with `argsz`. So every number here is `';' << 8 | nr`.
//!
//! [`Command`] is `iommufd_ioctl_ops[]` of `drivers/iommu/iommufd/main.c`: for each command
//! its struct, the kernel's struct size, and `min_size = offsetofend(struct, last mandatory
//! field)` exactly as that table names the field.

use super::fault::IommuFaultAlloc;
use super::hw_info::IommuHwInfo;
use super::hwpt::{
    IommuHwptAlloc, IommuHwptGetDirtyBitmap, IommuHwptInvalidate, IommuHwptSetDirtyTracking,
};
use super::ioas::{
    IommuDestroy, IommuIoasAlloc, IommuIoasAllowIovas, IommuIoasChangeProcess, IommuIoasCopy,
    IommuIoasIovaRanges, IommuIoasMap, IommuIoasMapFile, IommuIoasUnmap, IommuOption,
    IommuVfioIoas,
};
use super::offset_of_end;
use super::vfio::{VfioDeviceAttachIommufdPt, VfioDeviceBindIommufd, VfioDeviceDetachIommufdPt};
use super::viommu::{IommuHwQueueAlloc, IommuVdeviceAlloc, IommuVeventqAlloc, IommuViommuAlloc};

/// Bits of the command number (`_IOC_NRBITS`).
pub const IOC_NRBITS: u32 = 8;
/// Bits of the ioctl type (`_IOC_TYPEBITS`).
pub const IOC_TYPEBITS: u32 = 8;
/// Bits of the argument size (`_IOC_SIZEBITS`).
pub const IOC_SIZEBITS: u32 = 14;
/// Bits of the direction (`_IOC_DIRBITS`).
pub const IOC_DIRBITS: u32 = 2;
/// Shift of the command number (`_IOC_NRSHIFT`).
pub const IOC_NRSHIFT: u32 = 0;
/// Shift of the type (`_IOC_TYPESHIFT`).
pub const IOC_TYPESHIFT: u32 = IOC_NRSHIFT + IOC_NRBITS;
/// Shift of the size (`_IOC_SIZESHIFT`).
pub const IOC_SIZESHIFT: u32 = IOC_TYPESHIFT + IOC_TYPEBITS;
/// Shift of the direction (`_IOC_DIRSHIFT`).
pub const IOC_DIRSHIFT: u32 = IOC_SIZESHIFT + IOC_SIZEBITS;
/// No data transfer (`_IOC_NONE`).
pub const IOC_NONE: u32 = 0;
/// User writes, kernel reads (`_IOC_WRITE`).
pub const IOC_WRITE: u32 = 1;
/// Kernel writes, user reads (`_IOC_READ`).
pub const IOC_READ: u32 = 2;

/// `_IOC(dir, type, nr, size)`. Panics (at compile time, in a `const`) if `dir` or `size` do
/// not fit their fields.
pub const fn ioc(dir: u32, ty: u8, nr: u8, size: u32) -> u32 {
    assert!(dir < 1 << IOC_DIRBITS, "ioctl direction out of range");
    assert!(size < 1 << IOC_SIZEBITS, "ioctl size out of range");
    dir << IOC_DIRSHIFT | size << IOC_SIZESHIFT | (ty as u32) << IOC_TYPESHIFT | (nr as u32)
}

/// `_IO(type, nr)`: a command with no size or direction encoded.
pub const fn io(ty: u8, nr: u8) -> u32 {
    ioc(IOC_NONE, ty, nr, 0)
}

/// `_IOR(type, nr, size)`.
pub const fn ior(ty: u8, nr: u8, size: u32) -> u32 {
    ioc(IOC_READ, ty, nr, size)
}

/// `_IOW(type, nr, size)`.
pub const fn iow(ty: u8, nr: u8, size: u32) -> u32 {
    ioc(IOC_WRITE, ty, nr, size)
}

/// `_IOWR(type, nr, size)`.
pub const fn iowr(ty: u8, nr: u8, size: u32) -> u32 {
    ioc(IOC_READ | IOC_WRITE, ty, nr, size)
}

/// `_IOC_NR(request)`.
pub const fn ioc_nr(request: u32) -> u8 {
    (request >> IOC_NRSHIFT) as u8
}

/// `_IOC_TYPE(request)`.
pub const fn ioc_type(request: u32) -> u8 {
    (request >> IOC_TYPESHIFT) as u8
}

/// `_IOC_SIZE(request)`.
pub const fn ioc_size(request: u32) -> u32 {
    (request >> IOC_SIZESHIFT) & ((1 << IOC_SIZEBITS) - 1)
}

/// `_IOC_DIR(request)`.
pub const fn ioc_dir(request: u32) -> u32 {
    (request >> IOC_DIRSHIFT) & ((1 << IOC_DIRBITS) - 1)
}

/// `IOMMUFD_TYPE`: the ioctl type of every iommufd command, `';'`.
pub const IOMMUFD_TYPE: u8 = b';';
/// `IOMMUFD_CMD_BASE`: number of the first iommufd command.
pub const IOMMUFD_CMD_BASE: u8 = 0x80;
/// `VFIO_TYPE`: the ioctl type of VFIO, also `';'`.
pub const VFIO_TYPE: u8 = b';';
/// `VFIO_BASE`: number of the first VFIO ioctl.
pub const VFIO_BASE: u8 = 100;

/// `IOMMUFD_CMD_DESTROY`.
pub const IOMMUFD_CMD_DESTROY: u8 = IOMMUFD_CMD_BASE;
/// `IOMMUFD_CMD_IOAS_ALLOC`.
pub const IOMMUFD_CMD_IOAS_ALLOC: u8 = IOMMUFD_CMD_BASE + 1;
/// `IOMMUFD_CMD_IOAS_ALLOW_IOVAS`.
pub const IOMMUFD_CMD_IOAS_ALLOW_IOVAS: u8 = IOMMUFD_CMD_BASE + 2;
/// `IOMMUFD_CMD_IOAS_COPY`.
pub const IOMMUFD_CMD_IOAS_COPY: u8 = IOMMUFD_CMD_BASE + 3;
/// `IOMMUFD_CMD_IOAS_IOVA_RANGES`.
pub const IOMMUFD_CMD_IOAS_IOVA_RANGES: u8 = IOMMUFD_CMD_BASE + 4;
/// `IOMMUFD_CMD_IOAS_MAP`.
pub const IOMMUFD_CMD_IOAS_MAP: u8 = IOMMUFD_CMD_BASE + 5;
/// `IOMMUFD_CMD_IOAS_UNMAP`.
pub const IOMMUFD_CMD_IOAS_UNMAP: u8 = IOMMUFD_CMD_BASE + 6;
/// `IOMMUFD_CMD_OPTION`.
pub const IOMMUFD_CMD_OPTION: u8 = IOMMUFD_CMD_BASE + 7;
/// `IOMMUFD_CMD_VFIO_IOAS`.
pub const IOMMUFD_CMD_VFIO_IOAS: u8 = IOMMUFD_CMD_BASE + 8;
/// `IOMMUFD_CMD_HWPT_ALLOC`.
pub const IOMMUFD_CMD_HWPT_ALLOC: u8 = IOMMUFD_CMD_BASE + 9;
/// `IOMMUFD_CMD_GET_HW_INFO`.
pub const IOMMUFD_CMD_GET_HW_INFO: u8 = IOMMUFD_CMD_BASE + 10;
/// `IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING`.
pub const IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING: u8 = IOMMUFD_CMD_BASE + 11;
/// `IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP`.
pub const IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP: u8 = IOMMUFD_CMD_BASE + 12;
/// `IOMMUFD_CMD_HWPT_INVALIDATE`.
pub const IOMMUFD_CMD_HWPT_INVALIDATE: u8 = IOMMUFD_CMD_BASE + 13;
/// `IOMMUFD_CMD_FAULT_QUEUE_ALLOC`.
pub const IOMMUFD_CMD_FAULT_QUEUE_ALLOC: u8 = IOMMUFD_CMD_BASE + 14;
/// `IOMMUFD_CMD_IOAS_MAP_FILE`.
pub const IOMMUFD_CMD_IOAS_MAP_FILE: u8 = IOMMUFD_CMD_BASE + 15;
/// `IOMMUFD_CMD_VIOMMU_ALLOC`.
pub const IOMMUFD_CMD_VIOMMU_ALLOC: u8 = IOMMUFD_CMD_BASE + 16;
/// `IOMMUFD_CMD_VDEVICE_ALLOC`.
pub const IOMMUFD_CMD_VDEVICE_ALLOC: u8 = IOMMUFD_CMD_BASE + 17;
/// `IOMMUFD_CMD_IOAS_CHANGE_PROCESS`.
pub const IOMMUFD_CMD_IOAS_CHANGE_PROCESS: u8 = IOMMUFD_CMD_BASE + 18;
/// `IOMMUFD_CMD_VEVENTQ_ALLOC`.
pub const IOMMUFD_CMD_VEVENTQ_ALLOC: u8 = IOMMUFD_CMD_BASE + 19;
/// `IOMMUFD_CMD_HW_QUEUE_ALLOC`.
pub const IOMMUFD_CMD_HW_QUEUE_ALLOC: u8 = IOMMUFD_CMD_BASE + 20;

/// `IOMMU_DESTROY`.
pub const IOMMU_DESTROY: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_DESTROY);
/// `IOMMU_IOAS_ALLOC`.
pub const IOMMU_IOAS_ALLOC: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOC);
/// `IOMMU_IOAS_ALLOW_IOVAS`.
pub const IOMMU_IOAS_ALLOW_IOVAS: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOW_IOVAS);
/// `IOMMU_IOAS_COPY`.
pub const IOMMU_IOAS_COPY: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_COPY);
/// `IOMMU_IOAS_IOVA_RANGES`.
pub const IOMMU_IOAS_IOVA_RANGES: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_IOVA_RANGES);
/// `IOMMU_IOAS_MAP`.
pub const IOMMU_IOAS_MAP: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP);
/// `IOMMU_IOAS_UNMAP`.
pub const IOMMU_IOAS_UNMAP: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_UNMAP);
/// `IOMMU_OPTION`.
pub const IOMMU_OPTION: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_OPTION);
/// `IOMMU_VFIO_IOAS`.
pub const IOMMU_VFIO_IOAS: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_VFIO_IOAS);
/// `IOMMU_HWPT_ALLOC`.
pub const IOMMU_HWPT_ALLOC: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_ALLOC);
/// `IOMMU_GET_HW_INFO`.
pub const IOMMU_GET_HW_INFO: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_GET_HW_INFO);
/// `IOMMU_HWPT_SET_DIRTY_TRACKING`.
pub const IOMMU_HWPT_SET_DIRTY_TRACKING: u32 =
    io(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING);
/// `IOMMU_HWPT_GET_DIRTY_BITMAP`.
pub const IOMMU_HWPT_GET_DIRTY_BITMAP: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP);
/// `IOMMU_HWPT_INVALIDATE`.
pub const IOMMU_HWPT_INVALIDATE: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_INVALIDATE);
/// `IOMMU_FAULT_QUEUE_ALLOC`.
pub const IOMMU_FAULT_QUEUE_ALLOC: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_FAULT_QUEUE_ALLOC);
/// `IOMMU_IOAS_MAP_FILE`.
pub const IOMMU_IOAS_MAP_FILE: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP_FILE);
/// `IOMMU_VIOMMU_ALLOC`.
pub const IOMMU_VIOMMU_ALLOC: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_VIOMMU_ALLOC);
/// `IOMMU_VDEVICE_ALLOC`.
pub const IOMMU_VDEVICE_ALLOC: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_VDEVICE_ALLOC);
/// `IOMMU_IOAS_CHANGE_PROCESS`.
pub const IOMMU_IOAS_CHANGE_PROCESS: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_CHANGE_PROCESS);
/// `IOMMU_VEVENTQ_ALLOC`.
pub const IOMMU_VEVENTQ_ALLOC: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_VEVENTQ_ALLOC);
/// `IOMMU_HW_QUEUE_ALLOC`.
pub const IOMMU_HW_QUEUE_ALLOC: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_HW_QUEUE_ALLOC);
/// `VFIO_DEVICE_BIND_IOMMUFD`.
pub const VFIO_DEVICE_BIND_IOMMUFD: u32 = io(VFIO_TYPE, VFIO_BASE + 18);
/// `VFIO_DEVICE_ATTACH_IOMMUFD_PT`.
pub const VFIO_DEVICE_ATTACH_IOMMUFD_PT: u32 = io(VFIO_TYPE, VFIO_BASE + 19);
/// `VFIO_DEVICE_DETACH_IOMMUFD_PT`.
pub const VFIO_DEVICE_DETACH_IOMMUFD_PT: u32 = io(VFIO_TYPE, VFIO_BASE + 20);

/// Which file a command is issued on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FdKind {
    /// The iommufd (`/dev/iommu`).
    Iommufd,
    /// A VFIO device cdev (`/dev/vfio/devices/vfioN`).
    VfioDevice,
}

/// Declares [`Command`] and its table from one list, so the number, the struct and the last
/// mandatory field of a command are written once.
macro_rules! commands {
    (
        $(
            $(#[$meta:meta])*
            $variant:ident = ($name:literal, $number:expr, $fd:ident, $ty:ty, $last:ident),
        )*
    ) => {
        /// A command of the iommufd ABI: `iommufd_ioctl_ops[]` of `main.c`, plus the three VFIO
        /// cdev ioctls that bind and attach devices.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Command {
            $( $(#[$meta])* $variant, )*
        }

        impl Command {
            /// Every command, in table order.
            pub const ALL: &'static [Command] = &[$(Command::$variant),*];

            /// The C macro name (`"IOMMU_IOAS_MAP"`).
            pub const fn name(self) -> &'static str {
                match self { $( Command::$variant => $name, )* }
            }

            /// The full ioctl request number.
            pub const fn ioctl_number(self) -> u32 {
                match self { $( Command::$variant => $number, )* }
            }

            /// The file the command is issued on.
            pub const fn fd_kind(self) -> FdKind {
                match self { $( Command::$variant => FdKind::$fd, )* }
            }

            /// The kernel's size of the argument struct (`sizeof`, the `size` of the ops table):
            /// user bytes beyond it must be zero.
            pub const fn size(self) -> usize {
                match self { $( Command::$variant => size_of::<$ty>(), )* }
            }

            /// The smallest `size` (`argsz`) the kernel accepts: the end of the last field every
            /// caller must provide. Smaller is `EINVAL`.
            pub const fn min_size(self) -> usize {
                match self { $( Command::$variant => offset_of_end!($ty, $last), )* }
            }
        }
    };
}

commands! {
    /// `IOMMU_DESTROY` ([`IommuDestroy`]).
    Destroy = ("IOMMU_DESTROY", IOMMU_DESTROY, Iommufd, IommuDestroy, id),
    /// `IOMMU_IOAS_ALLOC` ([`IommuIoasAlloc`]).
    IoasAlloc = ("IOMMU_IOAS_ALLOC", IOMMU_IOAS_ALLOC, Iommufd, IommuIoasAlloc, out_ioas_id),
    /// `IOMMU_IOAS_ALLOW_IOVAS` ([`IommuIoasAllowIovas`]).
    IoasAllowIovas = (
        "IOMMU_IOAS_ALLOW_IOVAS", IOMMU_IOAS_ALLOW_IOVAS, Iommufd, IommuIoasAllowIovas,
        allowed_iovas
    ),
    /// `IOMMU_IOAS_COPY` ([`IommuIoasCopy`]).
    IoasCopy = ("IOMMU_IOAS_COPY", IOMMU_IOAS_COPY, Iommufd, IommuIoasCopy, src_iova),
    /// `IOMMU_IOAS_IOVA_RANGES` ([`IommuIoasIovaRanges`]).
    IoasIovaRanges = (
        "IOMMU_IOAS_IOVA_RANGES", IOMMU_IOAS_IOVA_RANGES, Iommufd, IommuIoasIovaRanges,
        out_iova_alignment
    ),
    /// `IOMMU_IOAS_MAP` ([`IommuIoasMap`]).
    IoasMap = ("IOMMU_IOAS_MAP", IOMMU_IOAS_MAP, Iommufd, IommuIoasMap, iova),
    /// `IOMMU_IOAS_UNMAP` ([`IommuIoasUnmap`]).
    IoasUnmap = ("IOMMU_IOAS_UNMAP", IOMMU_IOAS_UNMAP, Iommufd, IommuIoasUnmap, length),
    /// `IOMMU_OPTION` ([`IommuOption`]).
    Option = ("IOMMU_OPTION", IOMMU_OPTION, Iommufd, IommuOption, val64),
    /// `IOMMU_VFIO_IOAS` ([`IommuVfioIoas`]).
    VfioIoas = ("IOMMU_VFIO_IOAS", IOMMU_VFIO_IOAS, Iommufd, IommuVfioIoas, __reserved),
    /// `IOMMU_HWPT_ALLOC` ([`IommuHwptAlloc`]); `fault_id` is optional.
    HwptAlloc = ("IOMMU_HWPT_ALLOC", IOMMU_HWPT_ALLOC, Iommufd, IommuHwptAlloc, __reserved),
    /// `IOMMU_GET_HW_INFO` ([`IommuHwInfo`]); `out_capabilities` is optional.
    GetHwInfo = ("IOMMU_GET_HW_INFO", IOMMU_GET_HW_INFO, Iommufd, IommuHwInfo, __reserved),
    /// `IOMMU_HWPT_SET_DIRTY_TRACKING` ([`IommuHwptSetDirtyTracking`]).
    HwptSetDirtyTracking = (
        "IOMMU_HWPT_SET_DIRTY_TRACKING", IOMMU_HWPT_SET_DIRTY_TRACKING, Iommufd,
        IommuHwptSetDirtyTracking, __reserved
    ),
    /// `IOMMU_HWPT_GET_DIRTY_BITMAP` ([`IommuHwptGetDirtyBitmap`]).
    HwptGetDirtyBitmap = (
        "IOMMU_HWPT_GET_DIRTY_BITMAP", IOMMU_HWPT_GET_DIRTY_BITMAP, Iommufd,
        IommuHwptGetDirtyBitmap, data
    ),
    /// `IOMMU_HWPT_INVALIDATE` ([`IommuHwptInvalidate`]).
    HwptInvalidate = (
        "IOMMU_HWPT_INVALIDATE", IOMMU_HWPT_INVALIDATE, Iommufd, IommuHwptInvalidate, __reserved
    ),
    /// `IOMMU_FAULT_QUEUE_ALLOC` ([`IommuFaultAlloc`]).
    FaultQueueAlloc = (
        "IOMMU_FAULT_QUEUE_ALLOC", IOMMU_FAULT_QUEUE_ALLOC, Iommufd, IommuFaultAlloc, out_fault_fd
    ),
    /// `IOMMU_IOAS_MAP_FILE` ([`IommuIoasMapFile`]).
    IoasMapFile = ("IOMMU_IOAS_MAP_FILE", IOMMU_IOAS_MAP_FILE, Iommufd, IommuIoasMapFile, iova),
    /// `IOMMU_VIOMMU_ALLOC` ([`IommuViommuAlloc`]); the driver data fields are optional.
    ViommuAlloc = (
        "IOMMU_VIOMMU_ALLOC", IOMMU_VIOMMU_ALLOC, Iommufd, IommuViommuAlloc, out_viommu_id
    ),
    /// `IOMMU_VDEVICE_ALLOC` ([`IommuVdeviceAlloc`]).
    VdeviceAlloc = ("IOMMU_VDEVICE_ALLOC", IOMMU_VDEVICE_ALLOC, Iommufd, IommuVdeviceAlloc, virt_id),
    /// `IOMMU_IOAS_CHANGE_PROCESS` ([`IommuIoasChangeProcess`]).
    IoasChangeProcess = (
        "IOMMU_IOAS_CHANGE_PROCESS", IOMMU_IOAS_CHANGE_PROCESS, Iommufd, IommuIoasChangeProcess,
        __reserved
    ),
    /// `IOMMU_VEVENTQ_ALLOC` ([`IommuVeventqAlloc`]); `__reserved` is optional.
    VeventqAlloc = (
        "IOMMU_VEVENTQ_ALLOC", IOMMU_VEVENTQ_ALLOC, Iommufd, IommuVeventqAlloc, out_veventq_fd
    ),
    /// `IOMMU_HW_QUEUE_ALLOC` ([`IommuHwQueueAlloc`]).
    HwQueueAlloc = (
        "IOMMU_HW_QUEUE_ALLOC", IOMMU_HW_QUEUE_ALLOC, Iommufd, IommuHwQueueAlloc, length
    ),
    /// `VFIO_DEVICE_BIND_IOMMUFD` ([`VfioDeviceBindIommufd`]); `token_uuid_ptr` is optional.
    VfioDeviceBindIommufd = (
        "VFIO_DEVICE_BIND_IOMMUFD", VFIO_DEVICE_BIND_IOMMUFD, VfioDevice, VfioDeviceBindIommufd,
        out_devid
    ),
    /// `VFIO_DEVICE_ATTACH_IOMMUFD_PT` ([`VfioDeviceAttachIommufdPt`]); `pasid` is needed only
    /// with the `PASID` flag.
    VfioDeviceAttachIommufdPt = (
        "VFIO_DEVICE_ATTACH_IOMMUFD_PT", VFIO_DEVICE_ATTACH_IOMMUFD_PT, VfioDevice,
        VfioDeviceAttachIommufdPt, pt_id
    ),
    /// `VFIO_DEVICE_DETACH_IOMMUFD_PT` ([`VfioDeviceDetachIommufdPt`]); `pasid` is needed only
    /// with the `PASID` flag.
    VfioDeviceDetachIommufdPt = (
        "VFIO_DEVICE_DETACH_IOMMUFD_PT", VFIO_DEVICE_DETACH_IOMMUFD_PT, VfioDevice,
        VfioDeviceDetachIommufdPt, flags
    ),
}

impl Command {
    /// The command an ioctl request number names, or `None` (the caller returns `ENOTTY`).
    ///
    /// The whole number must match, as `main.c` compares `ioctl_num` after indexing by
    /// `_IOC_NR`: a right command number with a size or direction encoded is not the command.
    /// Request numbers wider than 32 bits (the `unsigned long` of `ioctl(2)` on 64-bit hosts)
    /// never match.
    pub fn from_ioctl(request: u64) -> Option<Command> {
        let request = u32::try_from(request).ok()?;
        Command::ALL
            .iter()
            .copied()
            .find(|command| command.ioctl_number() == request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioc_encoding() {
        // _IOC(dir, type, nr, size) = dir << 30 | size << 16 | type << 8 | nr.
        assert_eq!(io(b';', 0x80), 0x3b80);
        assert_eq!(ior(b'V', 1, 4), 0x8004_5601);
        assert_eq!(iow(b'V', 2, 8), 0x4008_5602);
        assert_eq!(iowr(b'V', 3, 0x10), 0xc010_5603);
        let request = iowr(b'T', 0x42, 0x3fff);
        assert_eq!(ioc_nr(request), 0x42);
        assert_eq!(ioc_type(request), b'T');
        assert_eq!(ioc_size(request), 0x3fff);
        assert_eq!(ioc_dir(request), IOC_READ | IOC_WRITE);
    }

    #[test]
    fn every_ioctl_number_by_hand() {
        // ';' is 0x3b, IOMMUFD_CMD_BASE is 0x80 and the enum in iommufd.h counts up from it;
        // VFIO_BASE is 100, so VFIO_BASE + 18 = 118 = 0x76.
        let expected: [(Command, u32); 24] = [
            (Command::Destroy, 0x3b80),
            (Command::IoasAlloc, 0x3b81),
            (Command::IoasAllowIovas, 0x3b82),
            (Command::IoasCopy, 0x3b83),
            (Command::IoasIovaRanges, 0x3b84),
            (Command::IoasMap, 0x3b85),
            (Command::IoasUnmap, 0x3b86),
            (Command::Option, 0x3b87),
            (Command::VfioIoas, 0x3b88),
            (Command::HwptAlloc, 0x3b89),
            (Command::GetHwInfo, 0x3b8a),
            (Command::HwptSetDirtyTracking, 0x3b8b),
            (Command::HwptGetDirtyBitmap, 0x3b8c),
            (Command::HwptInvalidate, 0x3b8d),
            (Command::FaultQueueAlloc, 0x3b8e),
            (Command::IoasMapFile, 0x3b8f),
            (Command::ViommuAlloc, 0x3b90),
            (Command::VdeviceAlloc, 0x3b91),
            (Command::IoasChangeProcess, 0x3b92),
            (Command::VeventqAlloc, 0x3b93),
            (Command::HwQueueAlloc, 0x3b94),
            (Command::VfioDeviceBindIommufd, 0x3b76),
            (Command::VfioDeviceAttachIommufdPt, 0x3b77),
            (Command::VfioDeviceDetachIommufdPt, 0x3b78),
        ];
        assert_eq!(expected.len(), Command::ALL.len());
        for (command, number) in expected {
            assert_eq!(command.ioctl_number(), number, "{}", command.name());
            assert_eq!(Command::from_ioctl(u64::from(number)), Some(command));
        }
    }

    #[test]
    fn sizes_and_min_sizes_from_main_c() {
        // (command, sizeof, offsetofend(last field named in iommufd_ioctl_ops[])), worked out
        // from the struct layouts in iommufd.h and vfio.h.
        let expected: [(Command, usize, usize); 24] = [
            (Command::Destroy, 8, 8),
            (Command::IoasAlloc, 12, 12),
            (Command::IoasAllowIovas, 24, 24),
            (Command::IoasCopy, 40, 40),
            (Command::IoasIovaRanges, 32, 32),
            (Command::IoasMap, 40, 40),
            (Command::IoasUnmap, 24, 24),
            (Command::Option, 24, 24),
            (Command::VfioIoas, 12, 12),
            (Command::HwptAlloc, 48, 24),
            (Command::GetHwInfo, 40, 32),
            (Command::HwptSetDirtyTracking, 16, 16),
            (Command::HwptGetDirtyBitmap, 48, 48),
            (Command::HwptInvalidate, 32, 32),
            (Command::FaultQueueAlloc, 16, 16),
            (Command::IoasMapFile, 40, 40),
            (Command::ViommuAlloc, 40, 24),
            (Command::VdeviceAlloc, 24, 24),
            (Command::IoasChangeProcess, 8, 8),
            (Command::VeventqAlloc, 32, 28),
            (Command::HwQueueAlloc, 40, 40),
            (Command::VfioDeviceBindIommufd, 24, 16),
            (Command::VfioDeviceAttachIommufdPt, 16, 12),
            (Command::VfioDeviceDetachIommufdPt, 12, 8),
        ];
        for (command, size, min_size) in expected {
            assert_eq!(command.size(), size, "{}", command.name());
            assert_eq!(command.min_size(), min_size, "{}", command.name());
        }
    }

    #[test]
    fn numbers_with_size_or_direction_are_not_commands() {
        // main.c compares the whole number: _IOWR(';', 0x85, 40) is not IOMMU_IOAS_MAP.
        assert_eq!(Command::from_ioctl(u64::from(iowr(b';', 0x85, 40))), None);
        assert_eq!(Command::from_ioctl(0x3b95), None);
        assert_eq!(Command::from_ioctl(0x3b7f), None);
        assert_eq!(Command::from_ioctl(0x1_0000_3b80), None);
    }

    #[test]
    fn fd_kinds() {
        for command in Command::ALL {
            let vfio = command.name().starts_with("VFIO_");
            assert_eq!(command.fd_kind() == FdKind::VfioDevice, vfio);
            assert!(command.min_size() <= command.size());
            assert!(
                command.min_size() >= 4,
                "the size field is always mandatory"
            );
        }
    }
}
