//! IOAS commands and object-generic commands of `include/uapi/linux/iommufd.h`: destroy,
//! IOAS allocation, allowed IOVA ranges, map (user VA and memfd), copy, unmap, options, the
//! VFIO-compatibility IOAS, and moving pinned-page accounting to another process.
//!
//! The validation order Linux applies is recorded on each struct (`drivers/iommu/iommufd/
//! ioas.c`, `main.c`, `vfio_compat.c`); the object model follows it so that a request that is
//! wrong in two ways fails with the same errno as on Linux.

use bitflags::bitflags;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{assert_layout, uapi_enum};

/// `struct iommu_destroy`, argument of `IOMMU_DESTROY`: destroy any destroyable object by ID.
///
/// `ENOENT` for an unknown ID, `EBUSY` while other objects still hold it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuDestroy {
    /// `sizeof(struct iommu_destroy)` as the caller knows it.
    pub size: u32,
    /// The object to destroy.
    pub id: u32,
}
assert_layout!(IommuDestroy, size = 8, align = 4);

/// `struct iommu_ioas_alloc`, argument of `IOMMU_IOAS_ALLOC`: create an empty I/O address space.
///
/// Non-zero `flags`: `EOPNOTSUPP`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuIoasAlloc {
    /// `sizeof(struct iommu_ioas_alloc)` as the caller knows it.
    pub size: u32,
    /// No flags are defined; must be 0.
    pub flags: u32,
    /// Output: the new IOAS's ID.
    pub out_ioas_id: u32,
}
assert_layout!(IommuIoasAlloc, size = 12, align = 4);

/// `struct iommu_iova_range`: one IOVA interval, both ends inclusive (`last`, not `end`).
///
/// Elements of the user arrays of `IOMMU_IOAS_IOVA_RANGES` and `IOMMU_IOAS_ALLOW_IOVAS`. For
/// `ALLOW_IOVAS` Linux refuses `start >= last` and overlapping ranges with `EINVAL`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuIovaRange {
    /// First IOVA of the range.
    pub start: u64,
    /// Last IOVA of the range (inclusive).
    pub last: u64,
}
assert_layout!(IommuIovaRange, size = 16, align = 8);

/// `struct iommu_ioas_iova_ranges`, argument of `IOMMU_IOAS_IOVA_RANGES`: report the IOVA
/// ranges an IOAS can map now (the holes between reserved regions, narrowed by every attached
/// device's limits).
///
/// Linux: non-zero `__reserved` is `EOPNOTSUPP`. The kernel fills as many ranges as
/// `num_iovas` (input) allows, always writes the struct back with the full count in
/// `num_iovas` and the alignment in `out_iova_alignment`, then returns `EMSGSIZE` if the array
/// was too small.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuIoasIovaRanges {
    /// `sizeof(struct iommu_ioas_iova_ranges)` as the caller knows it.
    pub size: u32,
    /// The IOAS to query.
    pub ioas_id: u32,
    /// Input: capacity of the `allowed_iovas` array. Output: the number of ranges that exist.
    pub num_iovas: u32,
    /// Must be 0.
    pub __reserved: u32,
    /// User pointer to an array of [`IommuIovaRange`].
    pub allowed_iovas: u64,
    /// Output: the alignment every IOVA and length given to MAP/COPY must have (1 = any, at
    /// most the CPU page size).
    pub out_iova_alignment: u64,
}
assert_layout!(IommuIoasIovaRanges, size = 32, align = 8);

/// `struct iommu_ioas_allow_iovas`, argument of `IOMMU_IOAS_ALLOW_IOVAS`: replace the IOAS's
/// list of ranges that must stay usable; later attaches that would narrow them fail, and
/// automatic IOVA allocation stays inside them.
///
/// Linux: non-zero `__reserved` is `EOPNOTSUPP`; a range with `start >= last` or ranges that
/// overlap each other are `EINVAL`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuIoasAllowIovas {
    /// `sizeof(struct iommu_ioas_allow_iovas)` as the caller knows it.
    pub size: u32,
    /// The IOAS to change.
    pub ioas_id: u32,
    /// Number of entries at `allowed_iovas`.
    pub num_iovas: u32,
    /// Must be 0.
    pub __reserved: u32,
    /// User pointer to an array of [`IommuIovaRange`].
    pub allowed_iovas: u64,
}
assert_layout!(IommuIoasAllowIovas, size = 24, align = 8);

bitflags! {
    /// `enum iommufd_ioas_map_flags`: flags of `IOMMU_IOAS_MAP`, `IOMMU_IOAS_MAP_FILE` and
    /// `IOMMU_IOAS_COPY`.
    ///
    /// Linux checks, in order: an unknown bit is `EOPNOTSUPP`; `iova` or `length` equal to
    /// `u64::MAX` is `EOVERFLOW`; neither `READABLE` nor `WRITEABLE` is `EINVAL`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct IoasMapFlags: u32 {
        /// `IOMMU_IOAS_MAP_FIXED_IOVA`: map at the given IOVA (which must be unused) instead of
        /// letting the kernel choose one.
        const FIXED_IOVA = 1 << 0;
        /// `IOMMU_IOAS_MAP_WRITEABLE`: DMA may write the mapping.
        const WRITEABLE = 1 << 1;
        /// `IOMMU_IOAS_MAP_READABLE`: DMA may read the mapping.
        const READABLE = 1 << 2;
    }
}

/// `struct iommu_ioas_map`, argument of `IOMMU_IOAS_MAP`: map `length` bytes of the caller's
/// memory at `user_va` into the IOAS.
///
/// Linux: unknown flags or non-zero `__reserved` are `EOPNOTSUPP`; see [`IoasMapFlags`] for the
/// rest. Without `FIXED_IOVA` the chosen IOVA is written back in `iova`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuIoasMap {
    /// `sizeof(struct iommu_ioas_map)` as the caller knows it.
    pub size: u32,
    /// [`IoasMapFlags`].
    pub flags: u32,
    /// The IOAS to map into.
    pub ioas_id: u32,
    /// Must be 0.
    pub __reserved: u32,
    /// Start of the caller's memory to map.
    pub user_va: u64,
    /// Number of bytes to map.
    pub length: u64,
    /// Input with `FIXED_IOVA`, otherwise output: the IOVA of the mapping.
    pub iova: u64,
}
assert_layout!(IommuIoasMap, size = 40, align = 8);

/// `struct iommu_ioas_map_file`, argument of `IOMMU_IOAS_MAP_FILE`: like [`IommuIoasMap`] but
/// the memory is `length` bytes of the memfd `fd` from byte `start`.
///
/// Linux: unknown flags are `EOPNOTSUPP` (there is no reserved field); a bad `fd` is `EBADF`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuIoasMapFile {
    /// `sizeof(struct iommu_ioas_map_file)` as the caller knows it.
    pub size: u32,
    /// [`IoasMapFlags`].
    pub flags: u32,
    /// The IOAS to map into.
    pub ioas_id: u32,
    /// The memfd to map.
    pub fd: i32,
    /// Byte offset in the file of the first mapped byte.
    pub start: u64,
    /// Number of bytes to map.
    pub length: u64,
    /// Input with `FIXED_IOVA`, otherwise output: the IOVA of the mapping.
    pub iova: u64,
}
assert_layout!(IommuIoasMapFile, size = 40, align = 8);

/// `struct iommu_ioas_copy`, argument of `IOMMU_IOAS_COPY`: map into `dst_ioas_id` the pages
/// that an existing mapping of `src_ioas_id` holds, sharing their pins.
///
/// The source range must be exactly one earlier mapping. Linux: unknown flags are
/// `EOPNOTSUPP`; `length`, `src_iova` or `dst_iova` equal to `u64::MAX` is `EOVERFLOW`;
/// neither `READABLE` nor `WRITEABLE` is `EINVAL`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuIoasCopy {
    /// `sizeof(struct iommu_ioas_copy)` as the caller knows it.
    pub size: u32,
    /// [`IoasMapFlags`].
    pub flags: u32,
    /// The IOAS to map into.
    pub dst_ioas_id: u32,
    /// The IOAS holding the source mapping.
    pub src_ioas_id: u32,
    /// Number of bytes to copy.
    pub length: u64,
    /// Input with `FIXED_IOVA`, otherwise output: the IOVA of the new mapping.
    pub dst_iova: u64,
    /// IOVA of the source mapping.
    pub src_iova: u64,
}
assert_layout!(IommuIoasCopy, size = 40, align = 8);

/// `struct iommu_ioas_unmap`, argument of `IOMMU_IOAS_UNMAP`: remove every mapping inside
/// `[iova, iova + length)`; ranges may not be split.
///
/// `iova == 0` with `length == u64::MAX` unmaps everything; otherwise either value equal to
/// `u64::MAX` is `EOVERFLOW`. Output: `length` holds the number of bytes unmapped.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuIoasUnmap {
    /// `sizeof(struct iommu_ioas_unmap)` as the caller knows it.
    pub size: u32,
    /// The IOAS to unmap from.
    pub ioas_id: u32,
    /// First IOVA to unmap.
    pub iova: u64,
    /// Input: bytes to unmap. Output: bytes unmapped.
    pub length: u64,
}
assert_layout!(IommuIoasUnmap, size = 24, align = 8);

uapi_enum! {
    /// `enum iommufd_option`: which option `IOMMU_OPTION` reads or writes.
    pub struct OptionId(u32) {
        /// `IOMMU_OPTION_RLIMIT_MODE`: 0 = pinned pages count against the user (default),
        /// 1 = against the process. Context-wide: `object_id` must be 0 (else `EOPNOTSUPP`);
        /// setting needs privilege (`EPERM`) and an empty context (`EBUSY`).
        RLIMIT_MODE = 0,
        /// `IOMMU_OPTION_HUGE_PAGES`: per IOAS (`object_id` is the IOAS); 1 (default) lets
        /// contiguous pages be mapped with large IOPTEs, 0 maps everything with base pages.
        HUGE_PAGES = 1,
    }
}

uapi_enum! {
    /// `enum iommufd_option_ops`: read or write the option.
    pub struct OptionOp(u16) {
        /// `IOMMU_OPTION_OP_SET`: load `val64` into the option.
        SET = 0,
        /// `IOMMU_OPTION_OP_GET`: return the option in `val64`.
        GET = 1,
    }
}

/// `struct iommu_option`, argument of `IOMMU_OPTION`: get or set one option.
///
/// Linux: non-zero `__reserved`, an unknown `option_id` and an unknown `op` are `EOPNOTSUPP`; a
/// value other than 0 or 1 is `EINVAL`. Only `val64` is written back, not the whole struct.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuOption {
    /// `sizeof(struct iommu_option)` as the caller knows it.
    pub size: u32,
    /// Which option.
    pub option_id: OptionId,
    /// Get or set.
    pub op: OptionOp,
    /// Must be 0.
    pub __reserved: u16,
    /// The object the option belongs to, or 0 for context-wide options.
    pub object_id: u32,
    /// Input for `SET`, output for `GET`.
    pub val64: u64,
}
assert_layout!(IommuOption, size = 24, align = 8);

uapi_enum! {
    /// `enum iommufd_vfio_ioas_op`: what `IOMMU_VFIO_IOAS` does with the IOAS that the legacy
    /// VFIO container API (`/dev/vfio/vfio` served by iommufd) operates on.
    pub struct VfioIoasOp(u16) {
        /// `IOMMU_VFIO_IOAS_GET`: return the current compatibility IOAS (`ENODEV` if none).
        GET = 0,
        /// `IOMMU_VFIO_IOAS_SET`: make `ioas_id` the compatibility IOAS.
        SET = 1,
        /// `IOMMU_VFIO_IOAS_CLEAR`: forget the compatibility IOAS (without destroying it).
        CLEAR = 2,
    }
}

/// `struct iommu_vfio_ioas`, argument of `IOMMU_VFIO_IOAS`.
///
/// Linux: non-zero `__reserved` and an unknown `op` are `EOPNOTSUPP`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuVfioIoas {
    /// `sizeof(struct iommu_vfio_ioas)` as the caller knows it.
    pub size: u32,
    /// Input for `SET`, output for `GET`.
    pub ioas_id: u32,
    /// The operation.
    pub op: VfioIoasOp,
    /// Must be 0.
    pub __reserved: u16,
}
assert_layout!(IommuVfioIoas, size = 12, align = 4);

/// `struct iommu_ioas_change_process`, argument of `IOMMU_IOAS_CHANGE_PROCESS`: charge every
/// pinned page of every IOAS in the context to the calling process (for handing a device to a
/// new process, e.g. across a live update). Nothing changes if the call fails.
///
/// Linux: non-zero `__reserved` is `EOPNOTSUPP`; any mapping not made with
/// `IOMMU_IOAS_MAP_FILE` is `EINVAL`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuIoasChangeProcess {
    /// `sizeof(struct iommu_ioas_change_process)` as the caller knows it.
    pub size: u32,
    /// Must be 0.
    pub __reserved: u32,
}
assert_layout!(IommuIoasChangeProcess, size = 8, align = 4);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_flag_bits() {
        // enum iommufd_ioas_map_flags: 1 << 0, 1 << 1, 1 << 2.
        assert_eq!(IoasMapFlags::FIXED_IOVA.bits(), 1);
        assert_eq!(IoasMapFlags::WRITEABLE.bits(), 2);
        assert_eq!(IoasMapFlags::READABLE.bits(), 4);
        assert_eq!(IoasMapFlags::from_bits(8), None);
    }

    #[test]
    fn option_values() {
        assert_eq!(OptionId::RLIMIT_MODE.0, 0);
        assert_eq!(OptionId::HUGE_PAGES.0, 1);
        assert_eq!(OptionOp::SET.0, 0);
        assert_eq!(OptionOp::GET.0, 1);
        assert_eq!(VfioIoasOp::CLEAR.0, 2);
        assert_eq!(format!("{:?}", OptionId(7)), "OptionId(0x7)");
        assert_eq!(format!("{:?}", OptionOp::GET), "OptionOp::GET");
    }

    #[test]
    fn map_encodes_little_endian_at_header_offsets() {
        // struct iommu_ioas_map: size@0 flags@4 ioas_id@8 __reserved@12 user_va@16
        // length@24 iova@32.
        let map = IommuIoasMap {
            size: 40,
            flags: (IoasMapFlags::READABLE | IoasMapFlags::WRITEABLE).bits(),
            ioas_id: 2,
            __reserved: 0,
            user_va: 0x7f00_0000_1000,
            length: 0x20_0000,
            iova: 0x1_0000_0000,
        };
        let bytes = map.as_bytes();
        assert_eq!(&bytes[0..4], &40u32.to_le_bytes());
        assert_eq!(&bytes[4..8], &6u32.to_le_bytes());
        assert_eq!(&bytes[8..12], &2u32.to_le_bytes());
        assert_eq!(&bytes[16..24], &0x7f00_0000_1000u64.to_le_bytes());
        assert_eq!(&bytes[24..32], &0x20_0000u64.to_le_bytes());
        assert_eq!(&bytes[32..40], &0x1_0000_0000u64.to_le_bytes());
        assert_eq!(IommuIoasMap::read_from_bytes(bytes).unwrap(), map);
    }

    #[test]
    fn option_op_is_a_u16_at_offset_8() {
        // struct iommu_option: size@0 option_id@4 op@8 (u16) __reserved@10 object_id@12
        // val64@16.
        let mut bytes = [0u8; 24];
        bytes[4] = 1;
        bytes[8] = 1;
        bytes[12] = 5;
        bytes[16..24].copy_from_slice(&1u64.to_le_bytes());
        let option = IommuOption::read_from_bytes(&bytes[..]).unwrap();
        assert_eq!(option.option_id, OptionId::HUGE_PAGES);
        assert_eq!(option.op, OptionOp::GET);
        assert_eq!(option.object_id, 5);
        assert_eq!(option.val64, 1);
    }
}
