//! [`decode`]: one ioctl's user buffer to a typed [`Request`], applying the extension rules of
//! [`copy`](super::copy) the way Linux applies them to that command — the front half of
//! `iommufd_fops_ioctl()` in `main.c` and of the VFIO cdev ioctl handlers. The object model
//! takes it from there.

use zerocopy::IntoBytes;

use super::copy::{read_user_struct, read_vfio_flag_extended};
use super::errno::Errno;
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
use super::ioctl::Command;
use super::offset_of_end;
use super::vfio::{
    VfioAttachFlags, VfioDetachFlags, VfioDeviceAttachIommufdPt, VfioDeviceBindIommufd,
    VfioDeviceDetachIommufdPt,
};
use super::viommu::{IommuHwQueueAlloc, IommuVdeviceAlloc, IommuVeventqAlloc, IommuViommuAlloc};

/// Reads a VFIO attach argument: `pasid` is copied only with the `PASID` flag.
fn read_vfio_attach(user: &[u8], min_size: usize) -> Result<VfioDeviceAttachIommufdPt, Errno> {
    read_vfio_flag_extended(
        user,
        min_size,
        VfioAttachFlags::all().bits(),
        &[(
            VfioAttachFlags::PASID.bits(),
            offset_of_end!(VfioDeviceAttachIommufdPt, pasid),
        )],
    )
}

/// Reads a VFIO detach argument: `pasid` is copied only with the `PASID` flag.
fn read_vfio_detach(user: &[u8], min_size: usize) -> Result<VfioDeviceDetachIommufdPt, Errno> {
    read_vfio_flag_extended(
        user,
        min_size,
        VfioDetachFlags::all().bits(),
        &[(
            VfioDetachFlags::PASID.bits(),
            offset_of_end!(VfioDeviceDetachIommufdPt, pasid),
        )],
    )
}

/// Declares [`Request`] and [`decode`] from one list of (command, struct, reader).
macro_rules! requests {
    ($( $variant:ident($ty:ty) => $read:expr, )*) => {
        /// A decoded command argument: the kernel's view of the user struct, zero-filled where
        /// the caller's struct was shorter.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Request {
            $(
                #[doc = concat!("Argument of [`Command::", stringify!($variant), "`].")]
                $variant($ty),
            )*
        }

        impl Request {
            /// The command this is the argument of.
            pub const fn command(&self) -> Command {
                match self { $( Request::$variant(_) => Command::$variant, )* }
            }

            /// The struct's bytes, as [`Command::size`] of them.
            pub fn as_bytes(&self) -> &[u8] {
                match self { $( Request::$variant(arg) => arg.as_bytes(), )* }
            }
        }

        /// Reads the argument of `command` from `user`, the memory accessible from the ioctl's
        /// argument pointer on.
        ///
        /// iommufd commands and `VFIO_DEVICE_BIND_IOMMUFD` follow
        /// [`read_user_struct`](super::read_user_struct); VFIO attach and detach follow
        /// [`read_vfio_flag_extended`](super::read_vfio_flag_extended). Never panics, whatever
        /// `user` holds.
        ///
        /// # Errors
        /// `EFAULT`, `EINVAL`, `E2BIG` as those functions say.
        pub fn decode(command: Command, user: &[u8]) -> Result<Request, Errno> {
            let min_size = command.min_size();
            match command {
                $(
                    Command::$variant => {
                        let read: fn(&[u8], usize) -> Result<$ty, Errno> = $read;
                        read(user, min_size).map(Request::$variant)
                    }
                )*
            }
        }
    };
}

requests! {
    Destroy(IommuDestroy) => read_user_struct,
    IoasAlloc(IommuIoasAlloc) => read_user_struct,
    IoasAllowIovas(IommuIoasAllowIovas) => read_user_struct,
    IoasCopy(IommuIoasCopy) => read_user_struct,
    IoasIovaRanges(IommuIoasIovaRanges) => read_user_struct,
    IoasMap(IommuIoasMap) => read_user_struct,
    IoasUnmap(IommuIoasUnmap) => read_user_struct,
    Option(IommuOption) => read_user_struct,
    VfioIoas(IommuVfioIoas) => read_user_struct,
    HwptAlloc(IommuHwptAlloc) => read_user_struct,
    GetHwInfo(IommuHwInfo) => read_user_struct,
    HwptSetDirtyTracking(IommuHwptSetDirtyTracking) => read_user_struct,
    HwptGetDirtyBitmap(IommuHwptGetDirtyBitmap) => read_user_struct,
    HwptInvalidate(IommuHwptInvalidate) => read_user_struct,
    FaultQueueAlloc(IommuFaultAlloc) => read_user_struct,
    IoasMapFile(IommuIoasMapFile) => read_user_struct,
    ViommuAlloc(IommuViommuAlloc) => read_user_struct,
    VdeviceAlloc(IommuVdeviceAlloc) => read_user_struct,
    IoasChangeProcess(IommuIoasChangeProcess) => read_user_struct,
    VeventqAlloc(IommuVeventqAlloc) => read_user_struct,
    HwQueueAlloc(IommuHwQueueAlloc) => read_user_struct,
    VfioDeviceBindIommufd(VfioDeviceBindIommufd) => read_user_struct,
    VfioDeviceAttachIommufdPt(VfioDeviceAttachIommufdPt) => read_vfio_attach,
    VfioDeviceDetachIommufdPt(VfioDeviceDetachIommufdPt) => read_vfio_detach,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn le32(bytes: &[u8], offset: usize) -> usize {
        let mut word = [0u8; 4];
        word.copy_from_slice(&bytes[offset..offset + 4]);
        u32::from_le_bytes(word) as usize
    }

    /// A direct transcription of the rules, byte by byte: what the kernel's struct holds after
    /// the copy, or the errno.
    fn reference(command: Command, user: &[u8]) -> Result<Vec<u8>, Errno> {
        let ksize = command.size();
        let min = command.min_size();
        let vfio_gated = matches!(
            command,
            Command::VfioDeviceAttachIommufdPt | Command::VfioDeviceDetachIommufdPt
        );
        if vfio_gated {
            if user.len() < min {
                return Err(Errno::EFAULT);
            }
            let argsz = le32(user, 0);
            if argsz < min {
                return Err(Errno::EINVAL);
            }
            let flags = le32(user, 4);
            if flags > 1 {
                return Err(Errno::EINVAL);
            }
            let end = if flags == 1 { ksize } else { min };
            if argsz < end {
                return Err(Errno::EINVAL);
            }
            if user.len() < end {
                return Err(Errno::EFAULT);
            }
            let mut out = vec![0u8; ksize];
            out[..end].copy_from_slice(&user[..end]);
            return Ok(out);
        }
        if user.len() < 4 {
            return Err(Errno::EFAULT);
        }
        let size = le32(user, 0);
        if size < min {
            return Err(Errno::EINVAL);
        }
        for index in ksize..size {
            match user.get(index) {
                Some(0) => {}
                Some(_) => return Err(Errno::E2BIG),
                None => return Err(Errno::EFAULT),
            }
        }
        let mut out = vec![0u8; ksize];
        for (index, byte) in out.iter_mut().enumerate().take(size) {
            *byte = *user.get(index).ok_or(Errno::EFAULT)?;
        }
        Ok(out)
    }

    /// Buffers that exercise the interesting sizes: the declared size is drawn near the
    /// command's `min_size` and `size`, the body mostly zero with a few random bytes.
    fn user_buffer() -> impl Strategy<Value = (usize, u32, Vec<u8>, Vec<(usize, u8)>)> {
        (
            0..Command::ALL.len(),
            prop_oneof![0u32..80, any::<u32>()],
            0usize..96,
            proptest::collection::vec((0usize..96, any::<u8>()), 0..4),
        )
            .prop_map(|(command, size, len, pokes)| (command, size, vec![0u8; len], pokes))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn decode_never_panics_on_random_bytes(
            command in 0..Command::ALL.len(),
            bytes in proptest::collection::vec(any::<u8>(), 0..160),
        ) {
            let command = Command::ALL[command];
            let _ = decode(command, &bytes);
        }

        #[test]
        fn decode_matches_the_reference((command, size, mut bytes, pokes) in user_buffer()) {
            let command = Command::ALL[command];
            if bytes.len() >= 4 {
                bytes[..4].copy_from_slice(&size.to_le_bytes());
            }
            for (index, value) in pokes {
                if index >= 4 && index < bytes.len() {
                    bytes[index] = value;
                }
            }
            let decoded = decode(command, &bytes);
            let expected = reference(command, &bytes);
            match (decoded, expected) {
                (Ok(request), Ok(kernel)) => {
                    prop_assert_eq!(request.command(), command);
                    prop_assert_eq!(request.as_bytes(), &kernel[..]);
                }
                (Err(errno), Err(expected)) => prop_assert_eq!(errno, expected),
                (decoded, expected) => {
                    prop_assert!(false, "{}: decode {:?}, reference {:?}",
                        command.name(), decoded, expected);
                }
            }
        }
    }

    #[test]
    fn decode_reads_a_map_request() {
        let map = IommuIoasMap {
            size: 40,
            flags: 6,
            ioas_id: 1,
            __reserved: 0,
            user_va: 0x1000,
            length: 0x1000,
            iova: 0,
        };
        assert_eq!(
            decode(Command::IoasMap, map.as_bytes()),
            Ok(Request::IoasMap(map))
        );
    }

    #[test]
    fn decode_vfio_bind_uses_copy_struct_rules() {
        // argsz 16 (before token_uuid_ptr existed) is accepted and the token reads as 0;
        // argsz 32 with a non-zero byte past 24 is E2BIG.
        let mut bytes = [0u8; 32];
        bytes[0] = 16;
        bytes[8] = 3;
        bytes[16] = 0xaa;
        let Ok(Request::VfioDeviceBindIommufd(bind)) =
            decode(Command::VfioDeviceBindIommufd, &bytes)
        else {
            panic!("bind with argsz 16 must decode");
        };
        assert_eq!((bind.iommufd, bind.token_uuid_ptr), (3, 0));
        bytes[0] = 32;
        bytes[16] = 0;
        bytes[28] = 1;
        assert_eq!(
            decode(Command::VfioDeviceBindIommufd, &bytes),
            Err(Errno::E2BIG)
        );
        bytes[0] = 15;
        assert_eq!(
            decode(Command::VfioDeviceBindIommufd, &bytes),
            Err(Errno::EINVAL)
        );
    }

    #[test]
    fn decode_vfio_detach_pasid() {
        let mut bytes = [0u8; 12];
        bytes[0] = 12;
        bytes[4] = 1;
        bytes[8] = 5;
        assert_eq!(
            decode(Command::VfioDeviceDetachIommufdPt, &bytes),
            Ok(Request::VfioDeviceDetachIommufdPt(
                VfioDeviceDetachIommufdPt {
                    argsz: 12,
                    flags: 1,
                    pasid: 5,
                }
            ))
        );
        bytes[0] = 8;
        assert_eq!(
            decode(Command::VfioDeviceDetachIommufdPt, &bytes),
            Err(Errno::EINVAL)
        );
    }
}
