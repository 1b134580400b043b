//! The struct-extension rules: how the kernel reads a user struct whose size differs from its
//! own, and how it writes results back.
//!
//! iommufd structs only ever grow at the end, and the caller states the size it was compiled
//! with in the first `u32` (`size`, or `argsz` for VFIO). `drivers/iommu/iommufd/main.c` then
//! applies, in order:
//!
//! 1. read the leading `u32` — an inaccessible buffer is `EFAULT`;
//! 2. `size < min_size` (the end of the command's last mandatory field) is `EINVAL`;
//! 3. `copy_struct_from_user(kernel struct, sizeof, user, size)` (`include/linux/uaccess.h`):
//!    a smaller user struct is copied and the rest zero-filled, so new fields read as 0 from
//!    old callers; a larger one is accepted only if every byte past the kernel's struct is
//!    zero, else `E2BIG`, so new callers on an old kernel fail loudly rather than have a
//!    request half-understood.
//!
//! Results go back with `iommufd_ucmd_respond()`: the kernel struct is copied to the user
//! buffer, but never more than the `size` the caller declared ([`write_back`]).
//!
//! # Reserved fields
//! Every reserved field Linux checks in the iommufd handlers fails with `EOPNOTSUPP` — the
//! rule is uniform, so [`check_zero`] returns that. What Linux checks (and does not):
//!
//! | struct | field | checked | errno |
//! |---|---|---|---|
//! | `iommu_ioas_alloc` | `flags` | yes | `EOPNOTSUPP` |
//! | `iommu_ioas_iova_ranges` | `__reserved` | yes | `EOPNOTSUPP` |
//! | `iommu_ioas_allow_iovas` | `__reserved` | yes | `EOPNOTSUPP` |
//! | `iommu_ioas_map` | `__reserved` | yes (with unknown flags) | `EOPNOTSUPP` |
//! | `iommu_option` | `__reserved` | yes | `EOPNOTSUPP` |
//! | `iommu_vfio_ioas` | `__reserved` | yes | `EOPNOTSUPP` |
//! | `iommu_ioas_change_process` | `__reserved` | yes | `EOPNOTSUPP` |
//! | `iommu_hwpt_alloc` | `__reserved` | yes, first check | `EOPNOTSUPP` |
//! | `iommu_hwpt_alloc` | `__reserved2` | **no** | — |
//! | `iommu_hw_info` | `flags` (unknown bits), `__reserved[0..3]` | yes | `EOPNOTSUPP` |
//! | `iommu_hwpt_set_dirty_tracking` | `__reserved` | **no** (only unknown flags) | — |
//! | `iommu_hwpt_get_dirty_bitmap` | `__reserved` | yes (with unknown flags) | `EOPNOTSUPP` |
//! | `iommu_hwpt_invalidate` | `__reserved` | yes, `entry_num` written back as 0 | `EOPNOTSUPP` |
//! | `iommu_hwpt_vtd_s1_invalidate` | `__reserved` | yes, by the Intel driver | `EOPNOTSUPP` |
//! | `iommu_fault_alloc` | `flags` | yes | `EOPNOTSUPP` |
//! | `iommu_viommu_alloc` | `flags` | yes | `EOPNOTSUPP` |
//! | `iommu_viommu_alloc` | `__reserved` | **no** | — |
//! | `iommu_veventq_alloc` | `flags`, `__reserved` | yes | `EOPNOTSUPP` |
//! | `iommu_hw_queue_alloc` | `flags` | yes | `EOPNOTSUPP` |
//!
//! The `EINVAL` cases are not reserved fields but inconsistent values: a `data_type` without
//! data (or data without a type), `entry_num` without a buffer, a map without read or write
//! permission. The VFIO cdev ioctls have no reserved fields and refuse unknown flags with
//! `EINVAL`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::errno::Errno;

/// The caller's declared struct size: the leading `u32` of the buffer (`get_user()` in
/// `main.c`).
///
/// # Errors
/// `EFAULT` if the buffer is shorter than 4 bytes.
pub fn user_size(user: &[u8]) -> Result<u32, Errno> {
    user.first_chunk::<4>()
        .map(|bytes| u32::from_le_bytes(*bytes))
        .ok_or(Errno::EFAULT)
}

/// Reads the argument of an iommufd command (or `VFIO_DEVICE_BIND_IOMMUFD`) with the
/// dispatch rules of `main.c`: the declared size from the leading `u32`, `EINVAL` below
/// `min_size`, then `copy_struct_from_user()` of the declared size.
///
/// `user` is the memory the caller can access from the argument pointer on; only its first
/// `size` bytes are the struct. Pass [`Command::min_size`](super::Command::min_size) as
/// `min_size`.
///
/// # Errors
/// * `EFAULT` — fewer than 4 bytes, or fewer than the bytes the copy needs;
/// * `EINVAL` — the declared size is below `min_size`;
/// * `E2BIG` — the declared struct is larger than `T` and a byte past `T` is non-zero.
pub fn read_user_struct<T>(user: &[u8], min_size: usize) -> Result<T, Errno>
where
    T: FromBytes + IntoBytes + KnownLayout,
{
    let size = user_size(user)? as usize;
    if size < min_size {
        return Err(Errno::EINVAL);
    }
    copy_struct_from_user_sized(user, size)
}

/// `copy_struct_from_user()` of a struct the caller declared as `size` bytes, of which only
/// the first `accessible.len()` can be read: the scan for non-zero trailing bytes stops at the
/// first one found (`E2BIG`) before it can run into inaccessible memory (`EFAULT`), as
/// Linux's `check_zeroed_user()` does.
fn copy_struct_from_user_sized<T>(accessible: &[u8], size: usize) -> Result<T, Errno>
where
    T: FromBytes + IntoBytes + KnownLayout,
{
    let ksize = size_of::<T>();
    if size > ksize {
        let scanned = accessible
            .get(ksize..size.min(accessible.len()))
            .unwrap_or(&[]);
        if scanned.iter().any(|&byte| byte != 0) {
            return Err(Errno::E2BIG);
        }
        if accessible.len() < size {
            return Err(Errno::EFAULT);
        }
    }
    let copied = size.min(ksize);
    let src = accessible.get(..copied).ok_or(Errno::EFAULT)?;
    let mut value = T::new_zeroed();
    value.as_mut_bytes()[..copied].copy_from_slice(src);
    Ok(value)
}

/// Reads the argument of `VFIO_DEVICE_ATTACH_IOMMUFD_PT` or `VFIO_DEVICE_DETACH_IOMMUFD_PT`
/// with VFIO's flag-gated rule (`drivers/vfio/device_cdev.c`), which differs from
/// `copy_struct_from_user()`:
///
/// 1. copy the first `min_size` bytes (`EFAULT` if inaccessible);
/// 2. `argsz` (leading `u32`) below `min_size` is `EINVAL`;
/// 3. flag bits (the `u32` at offset 4) outside `valid_flags` are `EINVAL`;
/// 4. for each set flag listed in `flag_ends` as `(flag, end)`, the struct must extend to
///    `end` (`argsz < end` is `EINVAL`) and the bytes up to `end` are copied;
/// 5. everything else — including bytes past `argsz` the caller declared — is ignored and
///    reads as zero.
///
/// Linux checks, between steps 3 and 4, that the device supports PASID attachment at all
/// (`EOPNOTSUPP`); that depends on the device, so the caller does it after this returns.
///
/// # Errors
/// `EFAULT`, `EINVAL` as above.
pub fn read_vfio_flag_extended<T>(
    user: &[u8],
    min_size: usize,
    valid_flags: u32,
    flag_ends: &[(u32, usize)],
) -> Result<T, Errno>
where
    T: FromBytes + IntoBytes + KnownLayout,
{
    let ksize = size_of::<T>();
    debug_assert!(8 <= min_size && min_size <= ksize);
    let head = user.get(..min_size).ok_or(Errno::EFAULT)?;
    let argsz = user_size(head)? as usize;
    if argsz < min_size {
        return Err(Errno::EINVAL);
    }
    let flags = head
        .get(4..8)
        .and_then(|bytes| bytes.first_chunk::<4>())
        .map(|bytes| u32::from_le_bytes(*bytes))
        .ok_or(Errno::EFAULT)?;
    if flags & !valid_flags != 0 {
        return Err(Errno::EINVAL);
    }
    let end = flag_ends
        .iter()
        .filter(|&&(flag, _)| flags & flag != 0)
        .map(|&(_, end)| end.min(ksize))
        .fold(min_size, usize::max);
    if argsz < end {
        return Err(Errno::EINVAL);
    }
    let src = user.get(..end).ok_or(Errno::EFAULT)?;
    let mut value = T::new_zeroed();
    value.as_mut_bytes()[..end].copy_from_slice(src);
    Ok(value)
}

/// Writes a command's result back (`iommufd_ucmd_respond()`): the first
/// `min(user_size, size_of::<T>())` bytes of `cmd` go to the start of `user`, so a caller with
/// an older, shorter struct gets exactly the fields it knows.
///
/// # Errors
/// `EFAULT` if `user` is shorter than the bytes to write.
pub fn write_back<T>(cmd: &T, user_size: u32, user: &mut [u8]) -> Result<(), Errno>
where
    T: IntoBytes + Immutable,
{
    let bytes = cmd.as_bytes();
    let len = (user_size as usize).min(bytes.len());
    user.get_mut(..len)
        .ok_or(Errno::EFAULT)?
        .copy_from_slice(&bytes[..len]);
    Ok(())
}

/// Writes back one field's bytes, `range` of `cmd`, to the same offsets of `user` — for the
/// commands that return a single field rather than the struct (`IOMMU_OPTION` returns only
/// `val64`, the VFIO bind only `out_devid`, attach only `pt_id`).
///
/// # Errors
/// `EFAULT` if `user` does not cover `range`.
///
/// # Panics
/// If `range` lies outside `T`; the range comes from the caller's code, never from the user.
pub fn write_back_range<T>(
    cmd: &T,
    range: core::ops::Range<usize>,
    user: &mut [u8],
) -> Result<(), Errno>
where
    T: IntoBytes + Immutable,
{
    let bytes = &cmd.as_bytes()[range.clone()];
    user.get_mut(range)
        .ok_or(Errno::EFAULT)?
        .copy_from_slice(bytes);
    Ok(())
}

/// Checks that a reserved field (or a must-be-zero `flags`) is zero. See the module table for
/// which fields Linux checks; all of them fail with `EOPNOTSUPP`.
///
/// # Errors
/// `EOPNOTSUPP` if any byte of `field` is non-zero.
pub fn check_zero<F>(field: &F) -> Result<(), Errno>
where
    F: IntoBytes + Immutable + ?Sized,
{
    if field.as_bytes().iter().all(|&byte| byte == 0) {
        Ok(())
    } else {
        Err(Errno::EOPNOTSUPP)
    }
}

/// Interprets a flags word, refusing bits the header does not define with `EOPNOTSUPP` (the
/// iommufd rule; VFIO handlers map the error to `EINVAL`).
///
/// # Errors
/// `EOPNOTSUPP` if `bits` has an unknown bit.
pub fn known_flags<F: bitflags::Flags>(bits: F::Bits) -> Result<F, Errno> {
    F::from_bits(bits).ok_or(Errno::EOPNOTSUPP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{
        Command, IoasMapFlags, IommuDestroy, IommuHwInfo, IommuHwptAlloc, IommuIoasMap,
        IommuOption, VfioDeviceAttachIommufdPt,
    };

    /// A user buffer holding `bytes`, with `size` in its leading `u32`.
    fn user(size: u32, bytes: &[u8]) -> Vec<u8> {
        let mut buffer = bytes.to_vec();
        buffer[..4].copy_from_slice(&size.to_le_bytes());
        buffer
    }

    fn map_bytes() -> Vec<u8> {
        IommuIoasMap {
            size: 40,
            flags: IoasMapFlags::READABLE.bits(),
            ioas_id: 1,
            __reserved: 0,
            user_va: 0x1000,
            length: 0x2000,
            iova: 0x3000,
        }
        .as_bytes()
        .to_vec()
    }

    #[test]
    fn exact_size_reads_the_struct() {
        let bytes = map_bytes();
        let map: IommuIoasMap = read_user_struct(&bytes, Command::IoasMap.min_size()).unwrap();
        assert_eq!(map.as_bytes(), &bytes[..]);
    }

    #[test]
    fn size_below_min_size_is_einval() {
        let bytes = user(39, &map_bytes());
        assert_eq!(
            read_user_struct::<IommuIoasMap>(&bytes, Command::IoasMap.min_size()),
            Err(Errno::EINVAL)
        );
        let destroy = user(7, &[0; 8]);
        assert_eq!(
            read_user_struct::<IommuDestroy>(&destroy, Command::Destroy.min_size()),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            read_user_struct::<IommuDestroy>(&[0; 8], Command::Destroy.min_size()),
            Err(Errno::EINVAL),
            "a zero size is below every min_size"
        );
    }

    #[test]
    fn short_buffer_is_efault() {
        assert_eq!(user_size(&[1, 2, 3]), Err(Errno::EFAULT));
        assert_eq!(
            read_user_struct::<IommuDestroy>(&[8, 0, 0], 8),
            Err(Errno::EFAULT)
        );
        // Declares 40 bytes but only 32 are accessible.
        let bytes = map_bytes();
        assert_eq!(
            read_user_struct::<IommuIoasMap>(&bytes[..32], 40),
            Err(Errno::EFAULT)
        );
    }

    #[test]
    fn shorter_user_struct_is_zero_filled() {
        // An older caller's iommu_hwpt_alloc that ends at __reserved (24 bytes, the min_size):
        // data_type, data_len, data_uptr and fault_id must read as 0, whatever follows in
        // memory.
        let mut bytes = vec![0xffu8; 48];
        bytes[..24].copy_from_slice(&[0; 24]);
        bytes[..4].copy_from_slice(&24u32.to_le_bytes());
        bytes[8] = 7; // dev_id
        let alloc: IommuHwptAlloc =
            read_user_struct(&bytes, Command::HwptAlloc.min_size()).unwrap();
        assert_eq!(alloc.size, 24);
        assert_eq!(alloc.dev_id, 7);
        assert_eq!(alloc.data_len, 0);
        assert_eq!(alloc.data_uptr, 0);
        assert_eq!(alloc.fault_id, 0);
        assert_eq!(alloc.__reserved2, 0);
    }

    #[test]
    fn larger_user_struct_with_zero_tail_is_accepted() {
        let mut bytes = map_bytes();
        bytes.extend_from_slice(&[0; 24]);
        bytes[..4].copy_from_slice(&64u32.to_le_bytes());
        let map: IommuIoasMap = read_user_struct(&bytes, Command::IoasMap.min_size()).unwrap();
        assert_eq!(map.size, 64);
        assert_eq!(&map.as_bytes()[4..], &map_bytes()[4..]);
    }

    #[test]
    fn larger_user_struct_with_nonzero_tail_is_e2big() {
        for position in 40..64 {
            let mut bytes = map_bytes();
            bytes.extend_from_slice(&[0; 24]);
            bytes[..4].copy_from_slice(&64u32.to_le_bytes());
            bytes[position] = 1;
            assert_eq!(
                read_user_struct::<IommuIoasMap>(&bytes, Command::IoasMap.min_size()),
                Err(Errno::E2BIG),
                "non-zero byte at {position}"
            );
        }
    }

    #[test]
    fn bytes_past_the_declared_size_are_not_looked_at() {
        // The caller declares 40 bytes; garbage after them is not part of the struct.
        let mut bytes = map_bytes();
        bytes.extend_from_slice(&[0xaa; 16]);
        assert!(read_user_struct::<IommuIoasMap>(&bytes, 40).is_ok());
    }

    #[test]
    fn nonzero_tail_before_inaccessible_memory_is_e2big() {
        // Declares 64 bytes, only 48 accessible, byte 44 non-zero: the scan finds it first.
        let mut bytes = map_bytes();
        bytes.extend_from_slice(&[0; 8]);
        bytes[..4].copy_from_slice(&64u32.to_le_bytes());
        bytes[44] = 1;
        assert_eq!(
            read_user_struct::<IommuIoasMap>(&bytes, 40),
            Err(Errno::E2BIG)
        );
        bytes[44] = 0;
        assert_eq!(
            read_user_struct::<IommuIoasMap>(&bytes, 40),
            Err(Errno::EFAULT)
        );
    }

    #[test]
    fn write_back_is_truncated_to_the_user_size() {
        // A 32-byte iommu_hw_info (no out_capabilities) must not get bytes 32..40.
        let info = IommuHwInfo {
            size: 32,
            out_max_pasid_log2: 20,
            out_capabilities: u64::MAX,
            ..Default::default()
        };
        let mut user = [0xeeu8; 40];
        write_back(&info, 32, &mut user).unwrap();
        assert_eq!(&user[..32], &info.as_bytes()[..32]);
        assert_eq!(&user[32..], &[0xee; 8]);

        // A larger user struct gets the kernel's struct and nothing past it.
        let mut user = [0xeeu8; 48];
        write_back(&info, 48, &mut user).unwrap();
        assert_eq!(&user[..40], info.as_bytes());
        assert_eq!(&user[40..], &[0xee; 8]);

        // A buffer shorter than what must be written faults.
        assert_eq!(write_back(&info, 40, &mut [0u8; 16]), Err(Errno::EFAULT));
    }

    #[test]
    fn write_back_range_writes_one_field() {
        let option = IommuOption {
            size: 24,
            val64: 0x1122_3344_5566_7788,
            ..Default::default()
        };
        let mut user = [0xeeu8; 24];
        write_back_range(&option, 16..24, &mut user).unwrap();
        assert_eq!(&user[..16], &[0xee; 16]);
        assert_eq!(&user[16..], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(
            write_back_range(&option, 16..24, &mut [0u8; 20]),
            Err(Errno::EFAULT)
        );
    }

    #[test]
    fn check_zero_and_known_flags() {
        assert_eq!(check_zero(&0u32), Ok(()));
        assert_eq!(check_zero(&[0u8, 0, 0]), Ok(()));
        assert_eq!(check_zero(&[0u8, 1, 0]), Err(Errno::EOPNOTSUPP));
        assert_eq!(check_zero(&0x8000_0000u32), Err(Errno::EOPNOTSUPP));
        assert_eq!(
            known_flags::<IoasMapFlags>(7),
            Ok(IoasMapFlags::FIXED_IOVA | IoasMapFlags::READABLE | IoasMapFlags::WRITEABLE)
        );
        assert_eq!(known_flags::<IoasMapFlags>(8), Err(Errno::EOPNOTSUPP));
    }

    #[test]
    fn vfio_attach_pasid_extension() {
        let ends = [(1u32, 16usize)];
        // Without the PASID flag, 12 bytes are enough and pasid reads as 0 even if present.
        let bytes = user(16, &[0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 9, 0, 0, 0]);
        let attach: VfioDeviceAttachIommufdPt =
            read_vfio_flag_extended(&bytes, 12, 1, &ends).unwrap();
        assert_eq!((attach.pt_id, attach.pasid), (3, 0));
        // With it, pasid is read ...
        let bytes = user(16, &[0, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 9, 0, 0, 0]);
        let attach: VfioDeviceAttachIommufdPt =
            read_vfio_flag_extended(&bytes, 12, 1, &ends).unwrap();
        assert_eq!((attach.flags, attach.pt_id, attach.pasid), (1, 3, 9));
        // ... and argsz must cover it.
        let bytes = user(12, &[0, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 9, 0, 0, 0]);
        assert_eq!(
            read_vfio_flag_extended::<VfioDeviceAttachIommufdPt>(&bytes, 12, 1, &ends),
            Err(Errno::EINVAL)
        );
        // Unknown flags and a short argsz are EINVAL; trailing garbage is ignored.
        let bytes = user(12, &[0, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(
            read_vfio_flag_extended::<VfioDeviceAttachIommufdPt>(&bytes, 12, 1, &ends),
            Err(Errno::EINVAL)
        );
        let bytes = user(8, &[0; 12]);
        assert_eq!(
            read_vfio_flag_extended::<VfioDeviceAttachIommufdPt>(&bytes, 12, 1, &ends),
            Err(Errno::EINVAL)
        );
        let mut bytes = user(64, &[0; 64]);
        bytes[40] = 0xff;
        assert!(read_vfio_flag_extended::<VfioDeviceAttachIommufdPt>(&bytes, 12, 1, &ends).is_ok());
        // Fewer than min_size accessible bytes fault before anything is checked.
        assert_eq!(
            read_vfio_flag_extended::<VfioDeviceAttachIommufdPt>(&[0; 8], 12, 1, &ends),
            Err(Errno::EFAULT)
        );
    }
}
