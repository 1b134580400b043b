//! The iommufd context driven only through `Iommufd::ioctl` with the bytes of the uAPI
//! structs, as a program calling `ioctl(2)` on `/dev/iommu` would: object IDs, destroy, the
//! IOAS commands, options and the VFIO compatibility IOAS. Every expected value is worked out
//! from Linux's `drivers/iommu/iommufd/{main,ioas,io_pagetable,vfio_compat}.c`.

mod common;

use std::sync::Arc;

use common::{FIXED_RW, Fixture, MIB, PAGE, RW, Recorder, ShmemResolver, open};
use vsva_iommufd::abi::ioctl::{
    IOMMU_FAULT_QUEUE_ALLOC, IOMMU_HWPT_ALLOC, IOMMU_IOAS_ALLOC, IOMMU_IOAS_ALLOW_IOVAS,
    IOMMU_IOAS_CHANGE_PROCESS, IOMMU_IOAS_COPY, IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_MAP,
    IOMMU_IOAS_MAP_FILE, IOMMU_OPTION, IOMMU_VFIO_IOAS, IOMMU_VIOMMU_ALLOC,
    VFIO_DEVICE_BIND_IOMMUFD, iowr,
};
use vsva_iommufd::abi::{
    Errno, IoasMapFlags, IommuFaultAlloc, IommuHwptAlloc, IommuIoasAlloc, IommuIoasAllowIovas,
    IommuIoasChangeProcess, IommuIoasCopy, IommuIoasIovaRanges, IommuIoasMap, IommuIoasMapFile,
    IommuIovaRange, IommuOption, IommuVfioIoas, IommuViommuAlloc, OptionId, OptionOp, VfioIoasOp,
};
use vsva_iommufd::{EADDRINUSE, ReservedBy};
use vsva_iommufd::{ObjectType, ProcessMemory};
use vsva_mm::{MapFlags, Process, Prot};
use zerocopy::IntoBytes;

#[test]
fn ids_count_up_from_one_and_the_lowest_free_one_is_reused() {
    let f = open();
    // XA_FLAGS_ALLOC1: the first ID is 1; xa_alloc takes the lowest free index.
    assert_eq!(f.alloc(), Ok(1));
    assert_eq!(f.alloc(), Ok(2));
    assert_eq!(f.alloc(), Ok(3));
    assert_eq!(f.destroy(2), Ok(()));
    assert_eq!(f.alloc(), Ok(2));
    assert_eq!(f.alloc(), Ok(4));
    assert_eq!(f.destroy(1), Ok(()));
    assert_eq!(f.destroy(3), Ok(()));
    assert_eq!(f.alloc(), Ok(1));
    assert_eq!(f.alloc(), Ok(3));
    assert_eq!(
        f.fd.objects(),
        vec![
            (1, ObjectType::Ioas),
            (2, ObjectType::Ioas),
            (3, ObjectType::Ioas),
            (4, ObjectType::Ioas)
        ]
    );
}

#[test]
fn destroy_of_an_unknown_id_is_enoent_and_of_a_held_one_ebusy() {
    let f = open();
    assert_eq!(f.destroy(0), Err(Errno::ENOENT));
    assert_eq!(f.destroy(1), Err(Errno::ENOENT));
    let id = f.alloc().unwrap();
    // A reference held from outside the table (what a HWPT built on the IOAS, or an ioctl in
    // progress, holds) makes it busy: iommufd_object_remove() needs users == 1.
    let held = f.fd.get_ioas(id).unwrap();
    assert_eq!(f.destroy(id), Err(Errno::EBUSY));
    drop(held);
    assert_eq!(f.destroy(id), Ok(()));
    assert_eq!(f.destroy(id), Err(Errno::ENOENT), "already gone");
    // IOAS commands on an ID that is not an IOAS are ENOENT too.
    assert_eq!(f.unmap(id, 0, u64::MAX), Err(Errno::ENOENT));
    assert_eq!(f.map(id, RW, 0x1000, PAGE, 0), Err(Errno::ENOENT));
}

#[test]
fn ioas_alloc_refuses_flags() {
    let f = open();
    let mut cmd = IommuIoasAlloc {
        size: 12,
        flags: 1,
        out_ioas_id: 0,
    };
    assert_eq!(f.call(IOMMU_IOAS_ALLOC, &mut cmd), Err(Errno::EOPNOTSUPP));
    assert_eq!(cmd.out_ioas_id, 0, "nothing written back");
    assert!(f.fd.objects().is_empty(), "and no ID taken");
    assert_eq!(f.alloc(), Ok(1));
}

#[test]
fn struct_extension_rules_apply_to_every_ioctl() {
    let f = open();
    // Shorter than the leading u32: get_user() faults.
    assert_eq!(
        f.raw(u64::from(IOMMU_IOAS_ALLOC), &mut [12, 0, 0]),
        Err(Errno::EFAULT)
    );
    // size below offsetofend(out_ioas_id) = 12.
    let mut bytes = [0u8; 12];
    bytes[0] = 11;
    assert_eq!(
        f.raw(u64::from(IOMMU_IOAS_ALLOC), &mut bytes),
        Err(Errno::EINVAL)
    );
    // A newer, 16-byte struct: a non-zero byte past the kernel's 12 is E2BIG ...
    let mut bytes = [0u8; 16];
    bytes[0] = 16;
    bytes[13] = 1;
    assert_eq!(
        f.raw(u64::from(IOMMU_IOAS_ALLOC), &mut bytes),
        Err(Errno::E2BIG)
    );
    // ... a zero tail is accepted, and the ID lands at offset 8.
    bytes[13] = 0;
    assert_eq!(f.raw(u64::from(IOMMU_IOAS_ALLOC), &mut bytes), Ok(()));
    assert_eq!(&bytes[8..12], &1u32.to_le_bytes());
    assert_eq!(&bytes[12..16], &[0; 4]);
    // A declared size larger than the buffer: the copy faults.
    let mut bytes = [0u8; 12];
    bytes[0] = 16;
    assert_eq!(
        f.raw(u64::from(IOMMU_IOAS_ALLOC), &mut bytes),
        Err(Errno::EFAULT)
    );
    // A short struct is EINVAL before the command looks at anything: HWPT_ALLOC's minimum
    // ends at __reserved (24); a full one then fails on its unknown device.
    let mut hwpt = IommuHwptAlloc {
        size: 20,
        ..Default::default()
    };
    assert_eq!(f.call(IOMMU_HWPT_ALLOC, &mut hwpt), Err(Errno::EINVAL));
    hwpt.size = 48;
    assert_eq!(f.call(IOMMU_HWPT_ALLOC, &mut hwpt), Err(Errno::ENOENT));
    // FAULT_QUEUE_ALLOC's minimum ends at out_fault_fd (16).
    let mut fault = IommuFaultAlloc {
        size: 12,
        ..Default::default()
    };
    assert_eq!(
        f.call(IOMMU_FAULT_QUEUE_ALLOC, &mut fault),
        Err(Errno::EINVAL)
    );
    fault.size = 16;
    assert_eq!(f.call(IOMMU_FAULT_QUEUE_ALLOC, &mut fault), Ok(()));
    assert_eq!((fault.out_fault_id, fault.out_fault_fd), (2, 3));
    // Commands still to come decode first (EINVAL for a short struct), then EOPNOTSUPP.
    let mut viommu = IommuViommuAlloc {
        size: 20,
        ..Default::default()
    };
    assert_eq!(f.call(IOMMU_VIOMMU_ALLOC, &mut viommu), Err(Errno::EINVAL));
    viommu.size = 40;
    assert_eq!(
        f.call(IOMMU_VIOMMU_ALLOC, &mut viommu),
        Err(Errno::EOPNOTSUPP)
    );
}

#[test]
fn ioctl_numbers_are_matched_as_main_c_matches_them() {
    let f = open();
    let mut alloc = IommuIoasAlloc {
        size: 12,
        ..Default::default()
    };
    // Past the table (0x95) and below it (the VFIO device cdev ioctls belong to the device's
    // file; iommufd_vfio_ioctl() does not know them): ENOTTY.
    assert_eq!(f.call(0x3b95, &mut alloc), Err(Errno::ENOTTY));
    assert_eq!(
        f.call(VFIO_DEVICE_BIND_IOMMUFD, &mut alloc),
        Err(Errno::ENOTTY)
    );
    // The right _IOC_NR with a size and direction encoded: the size is read, then the number
    // does not match — ENOTTY, or EFAULT if even the size cannot be read.
    let wrong = iowr(b';', 0x81, 12);
    assert_eq!(f.call(wrong, &mut alloc), Err(Errno::ENOTTY));
    assert_eq!(f.raw(u64::from(wrong), &mut [0; 2]), Err(Errno::EFAULT));
    assert_eq!(f.raw(0x3b95, &mut [0; 2]), Err(Errno::ENOTTY));
    // The syscall's cmd is an unsigned int: bits above 31 of the request are dropped.
    let mut bytes = alloc.as_bytes().to_vec();
    assert_eq!(
        f.raw(
            0xffff_ffff_0000_0000 | u64::from(IOMMU_IOAS_ALLOC),
            &mut bytes
        ),
        Ok(())
    );
    assert_eq!(&bytes[8..12], &1u32.to_le_bytes());
}

#[test]
fn map_chooses_or_takes_the_iova_and_checks_in_linux_order() {
    let f = open();
    let ioas = f.alloc().unwrap();
    // No domain: nothing is pinned, so the user range need not exist yet (Linux pins lazily).
    // Kernel-chosen: alignment min(roundup_pow_of_two(2 MiB), 1 << ffs(4 MiB)) = 2 MiB, the
    // lowest hole starts at PAGE_SIZE: ALIGN(0x1000, 2 MiB) = 0x20_0000.
    assert_eq!(f.map(ioas, RW, 4 * MIB, 2 * MIB, 0), Ok(0x20_0000));
    // uptr 0x7000: alignment min(0x4000, 0x1000) = 0x1000, so the hole below fits at 0x1000.
    assert_eq!(f.map(ioas, RW, 0x7000, 0x3000, 0), Ok(0x1000));
    // Page offsets are kept: uptr 0x9800 lands at ALIGN(0x4000, 0x800) | 0x800 = 0x4800.
    assert_eq!(f.map(ioas, RW, 0x9800, 0x800, 0), Ok(0x4800));
    // Fixed.
    assert_eq!(
        f.map(ioas, FIXED_RW, 8 * MIB, PAGE, 0x100_0000),
        Ok(0x100_0000)
    );
    assert_eq!(
        f.map(ioas, FIXED_RW, 8 * MIB, PAGE, 0x20_1000),
        Err(Errno::EEXIST)
    );

    // Unknown flags, then a non-zero __reserved: EOPNOTSUPP before anything else.
    assert_eq!(f.map(ioas, RW | 8, 0, u64::MAX, 0), Err(Errno::EOPNOTSUPP));
    let mut cmd = IommuIoasMap {
        size: 40,
        flags: 0,
        ioas_id: 99,
        __reserved: 1,
        user_va: 0,
        length: u64::MAX,
        iova: 0,
    };
    assert_eq!(f.call(IOMMU_IOAS_MAP, &mut cmd), Err(Errno::EOPNOTSUPP));
    // iova or length == ULONG_MAX: EOVERFLOW, even without FIXED_IOVA and before the rights.
    assert_eq!(f.map(ioas, 0, PAGE, u64::MAX, 0), Err(Errno::EOVERFLOW));
    assert_eq!(f.map(ioas, RW, PAGE, PAGE, u64::MAX), Err(Errno::EOVERFLOW));
    // Neither READABLE nor WRITEABLE: EINVAL, before the IOAS is looked up.
    assert_eq!(
        f.map(99, IoasMapFlags::FIXED_IOVA.bits(), PAGE, PAGE, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(f.map(99, RW, PAGE, PAGE, 0), Err(Errno::ENOENT));
    // Then the io_pagetable's rules: zero length is EINVAL (iopt_alloc_pages), a fixed range
    // that wraps EOVERFLOW (iopt_check_iova).
    assert_eq!(f.map(ioas, RW, PAGE, 0, 0), Err(Errno::EINVAL));
    assert_eq!(
        f.map(ioas, FIXED_RW, PAGE, 2 * PAGE, u64::MAX - PAGE),
        Err(Errno::EOVERFLOW)
    );
}

#[test]
fn map_file_fails_like_a_bad_fd_after_the_argument_checks() {
    let f = open();
    let ioas = f.alloc().unwrap();
    let mut cmd = IommuIoasMapFile {
        size: 40,
        flags: RW,
        ioas_id: ioas,
        fd: 3,
        start: 0,
        length: PAGE,
        iova: 0,
    };
    assert_eq!(f.call(IOMMU_IOAS_MAP_FILE, &mut cmd), Err(Errno::EBADF));
    cmd.ioas_id = 7;
    assert_eq!(f.call(IOMMU_IOAS_MAP_FILE, &mut cmd), Err(Errno::ENOENT));
    cmd.flags = 0;
    assert_eq!(f.call(IOMMU_IOAS_MAP_FILE, &mut cmd), Err(Errno::EINVAL));
    cmd.length = u64::MAX;
    assert_eq!(f.call(IOMMU_IOAS_MAP_FILE, &mut cmd), Err(Errno::EOVERFLOW));
    cmd.flags = 16;
    assert_eq!(
        f.call(IOMMU_IOAS_MAP_FILE, &mut cmd),
        Err(Errno::EOPNOTSUPP)
    );
}

#[test]
fn iova_ranges_reports_the_holes_and_emsgsize_with_the_count() {
    let f = open();
    let ioas = f.alloc().unwrap();
    let array = f.user_page();
    // An empty IOAS: the whole space, alignment 1 (iopt_init_table).
    let (result, cmd) = f.iova_ranges(ioas, 4, array);
    assert_eq!(result, Ok(()));
    assert_eq!((cmd.num_iovas, cmd.out_iova_alignment), (1, 1));
    assert_eq!(
        f.read_range(array),
        IommuIovaRange {
            start: 0,
            last: u64::MAX
        }
    );

    // A device's reserved window (the x86 interrupt range) splits it in two.
    f.fd.get_ioas(ioas)
        .unwrap()
        .iopt()
        .reserve(0xfee0_0000, 0xfeef_ffff, ReservedBy::Device(1))
        .unwrap();
    let low = IommuIovaRange {
        start: 0,
        last: 0xfedf_ffff,
    };
    let high = IommuIovaRange {
        start: 0xfef0_0000,
        last: u64::MAX,
    };

    // No room at all, and no array: EMSGSIZE, the struct still written back with the count.
    let (result, cmd) = f.iova_ranges(ioas, 0, 0);
    assert_eq!(result, Err(Errno::EMSGSIZE));
    assert_eq!((cmd.num_iovas, cmd.out_iova_alignment), (2, 1));

    // Room for one: the first is written, the slot after it is not touched.
    let array = f.user_page();
    let (result, cmd) = f.iova_ranges(ioas, 1, array);
    assert_eq!(result, Err(Errno::EMSGSIZE));
    assert_eq!(cmd.num_iovas, 2);
    assert_eq!(f.read_range(array), low);
    let untouched = u64::from_le_bytes([0xee; 8]);
    assert_eq!(
        f.read_range(array + 16),
        IommuIovaRange {
            start: untouched,
            last: untouched
        }
    );

    // Room for both, or more: success, num_iovas is the count.
    let (result, cmd) = f.iova_ranges(ioas, 3, array);
    assert_eq!(result, Ok(()));
    assert_eq!(cmd.num_iovas, 2);
    assert_eq!((f.read_range(array), f.read_range(array + 16)), (low, high));

    // A bad array pointer faults when the first entry is written; nothing is written back.
    let (result, cmd) = f.iova_ranges(ioas, 1, 0x10);
    assert_eq!(result, Err(Errno::EFAULT));
    assert_eq!((cmd.num_iovas, cmd.out_iova_alignment), (1, 0xdead));

    // Reserved bits, then the IOAS lookup.
    let mut cmd = IommuIoasIovaRanges {
        size: 32,
        ioas_id: 9,
        __reserved: 1,
        ..Default::default()
    };
    assert_eq!(
        f.call(IOMMU_IOAS_IOVA_RANGES, &mut cmd),
        Err(Errno::EOPNOTSUPP)
    );
    cmd.__reserved = 0;
    assert_eq!(f.call(IOMMU_IOAS_IOVA_RANGES, &mut cmd), Err(Errno::ENOENT));
}

#[test]
fn allow_iovas_validates_each_entry_then_the_reserved_ranges() {
    let f = open();
    let ioas = f.alloc().unwrap();
    f.fd.get_ioas(ioas)
        .unwrap()
        .iopt()
        .reserve(0xfee0_0000, 0xfeef_ffff, ReservedBy::Device(1))
        .unwrap();
    assert_eq!(
        f.allow_iovas(ioas, &[(0x2000, 0x2000)]),
        Err(Errno::EINVAL),
        "start >= last"
    );
    assert_eq!(
        f.allow_iovas(ioas, &[(0x1000, 0x1fff), (0x1fff, 0x2fff)]),
        Err(Errno::EINVAL),
        "the entries share 0x1fff"
    );
    assert_eq!(
        f.allow_iovas(ioas, &[(0xfe00_0000, 0xfeff_ffff)]),
        Err(EADDRINUSE),
        "covers the reserved window"
    );
    // A bad pointer faults, unless there is nothing to read.
    let mut cmd = IommuIoasAllowIovas {
        size: 24,
        ioas_id: ioas,
        num_iovas: 1,
        __reserved: 0,
        allowed_iovas: 0x10,
    };
    assert_eq!(f.call(IOMMU_IOAS_ALLOW_IOVAS, &mut cmd), Err(Errno::EFAULT));
    cmd.num_iovas = 0;
    assert_eq!(f.call(IOMMU_IOAS_ALLOW_IOVAS, &mut cmd), Ok(()));
    cmd.__reserved = 1;
    assert_eq!(
        f.call(IOMMU_IOAS_ALLOW_IOVAS, &mut cmd),
        Err(Errno::EOPNOTSUPP)
    );

    // Allowed ranges, given out of order, steer the chosen IOVAs.
    assert_eq!(
        f.allow_iovas(ioas, &[(0x200_0000, 0x2ff_ffff), (0x100_0000, 0x100_1fff)]),
        Ok(())
    );
    assert_eq!(f.map(ioas, RW, 0x1000, 0x2000, 0), Ok(0x100_0000));
    assert_eq!(
        f.map(ioas, RW, 0x1000, 0x1000, 0),
        Ok(0x200_0000),
        "the first range is full"
    );
}

#[test]
fn unmap_takes_whole_mappings_and_unmap_all_returns_the_bytes() {
    let f = open();
    let ioas = f.alloc().unwrap();
    f.map(ioas, FIXED_RW, 4 * MIB, 0x2000, 0x10_0000).unwrap();
    f.map(ioas, FIXED_RW, 8 * MIB, 0x1000, 0x20_0000).unwrap();
    f.map(ioas, FIXED_RW, 12 * MIB, 0x3000, 0x30_0000).unwrap();
    assert_eq!(
        f.unmap(ioas, 0x10_0000, 0x1000),
        Err(Errno::ENOENT),
        "cuts a mapping"
    );
    assert_eq!(
        f.unmap(ioas, 0x40_0000, 0x1000),
        Err(Errno::ENOENT),
        "nothing there"
    );
    assert_eq!(f.unmap(ioas, 0x10_0000, 0), Err(Errno::EINVAL));
    assert_eq!(f.unmap(ioas, u64::MAX, 1), Err(Errno::EOVERFLOW));
    assert_eq!(f.unmap(ioas, 1, u64::MAX), Err(Errno::EOVERFLOW));
    assert_eq!(
        f.unmap(ioas, u64::MAX - 0xfff, 0x2000),
        Err(Errno::EOVERFLOW),
        "wraps"
    );
    assert_eq!(f.unmap(ioas, 0x20_0000, 0x1000), Ok(0x1000));
    // iopt_unmap_iova_range() removes mappings in IOVA order until one sticks out: the one
    // at 0x10_0000 goes, the one at 0x30_0000 stops it with ENOENT.
    assert_eq!(f.unmap(ioas, 0x10_0000, 0x20_1000), Err(Errno::ENOENT));
    // Only the 0x3000 bytes at 0x30_0000 remain for unmap-all.
    assert_eq!(f.unmap(ioas, 0, u64::MAX), Ok(0x3000));
    assert_eq!(
        f.unmap(ioas, 0, u64::MAX),
        Ok(0),
        "unmap-all of nothing succeeds"
    );
    assert_eq!(f.unmap(ioas + 1, 0, u64::MAX), Err(Errno::ENOENT));
}

#[test]
fn copy_shares_a_mapping_into_another_ioas() {
    let f = open();
    let src = f.alloc().unwrap();
    let dst = f.alloc().unwrap();
    f.map(src, FIXED_RW, 4 * MIB, 0x2000, 0x10_0000).unwrap();
    let copy = |flags: u32, dst_ioas_id, src_ioas_id, length, dst_iova, src_iova| {
        let mut cmd = IommuIoasCopy {
            size: 40,
            flags,
            dst_ioas_id,
            src_ioas_id,
            length,
            dst_iova,
            src_iova,
        };
        f.call(IOMMU_IOAS_COPY, &mut cmd).map(|()| cmd.dst_iova)
    };
    // Chosen for uptr 4 MiB and 0x2000 bytes: alignment 0x2000, so 0x2000.
    assert_eq!(copy(RW, dst, src, 0x2000, 0, 0x10_0000), Ok(0x2000));
    assert_eq!(
        copy(FIXED_RW, dst, src, 0x1000, 0x50_0000, 0x10_1000),
        Ok(0x50_0000)
    );
    assert_eq!(f.unmap(dst, 0, u64::MAX), Ok(0x3000));
    // Order: flags, overflow, rights, source IOAS, source range, destination IOAS.
    assert_eq!(copy(8, 9, 9, u64::MAX, 0, 0), Err(Errno::EOPNOTSUPP));
    assert_eq!(copy(0, 9, 9, 0x1000, u64::MAX, 0), Err(Errno::EOVERFLOW));
    assert_eq!(copy(0, 9, 9, 0x1000, 0, 0), Err(Errno::EINVAL));
    assert_eq!(copy(RW, dst, 9, 0x1000, 0, 0x10_0000), Err(Errno::ENOENT));
    assert_eq!(
        copy(RW, 9, src, 0, 0, 0x10_0000),
        Err(Errno::EINVAL),
        "zero length"
    );
    assert_eq!(
        copy(RW, 9, src, 0x3000, 0, 0x10_0000),
        Err(Errno::ENOENT),
        "not all mapped"
    );
    assert_eq!(
        copy(RW, 9, src, 0x1000, 0, 0x10_0000),
        Err(Errno::ENOENT),
        "no destination"
    );
}

#[test]
fn rlimit_mode_option() {
    let f = open();
    let rlimit = |op, object_id, val64| f.option(OptionId::RLIMIT_MODE, op, object_id, val64);
    assert_eq!(
        rlimit(OptionOp::GET, 0, 7),
        Ok(0),
        "user accounting by default"
    );
    assert_eq!(
        rlimit(OptionOp::GET, 1, 0),
        Err(Errno::EOPNOTSUPP),
        "object_id must be 0"
    );
    assert_eq!(rlimit(OptionOp(2), 0, 0), Err(Errno::EOPNOTSUPP));
    assert_eq!(
        rlimit(OptionOp::SET, 0, 1),
        Err(Errno::EPERM),
        "needs CAP_SYS_RESOURCE"
    );
    f.fd.set_privileged(true);
    assert_eq!(rlimit(OptionOp::SET, 0, 2), Err(Errno::EINVAL));
    assert_eq!(rlimit(OptionOp::SET, 0, 1), Ok(1));
    assert_eq!(rlimit(OptionOp::GET, 0, 0), Ok(1));
    assert_eq!(f.fd.account_mode(), vsva_iommufd::AccountMode::Mm);
    let ioas = f.alloc().unwrap();
    assert_eq!(
        rlimit(OptionOp::SET, 0, 0),
        Err(Errno::EBUSY),
        "objects exist"
    );
    f.fd.set_privileged(false);
    assert_eq!(
        rlimit(OptionOp::SET, 0, 0),
        Err(Errno::EPERM),
        "EPERM is checked first"
    );
    f.fd.set_privileged(true);
    f.destroy(ioas).unwrap();
    assert_eq!(rlimit(OptionOp::SET, 0, 0), Ok(0));
    assert_eq!(rlimit(OptionOp::GET, 0, 9), Ok(0));

    // Generic checks: __reserved first, then the option.
    let mut cmd = IommuOption {
        size: 24,
        option_id: OptionId(5),
        op: OptionOp::GET,
        __reserved: 0,
        object_id: 0,
        val64: 0,
    };
    assert_eq!(f.call(IOMMU_OPTION, &mut cmd), Err(Errno::EOPNOTSUPP));
    cmd.option_id = OptionId::RLIMIT_MODE;
    cmd.__reserved = 1;
    assert_eq!(f.call(IOMMU_OPTION, &mut cmd), Err(Errno::EOPNOTSUPP));
}

#[test]
fn huge_pages_option_is_per_ioas_and_sets_the_alignment() {
    let f = open();
    let ioas = f.alloc().unwrap();
    let huge = |op, object_id, val64| f.option(OptionId::HUGE_PAGES, op, object_id, val64);
    assert_eq!(
        huge(OptionOp::GET, ioas, 0),
        Ok(1),
        "large pages by default"
    );
    assert_eq!(huge(OptionOp::GET, 0, 0), Err(Errno::ENOENT));
    assert_eq!(
        huge(OptionOp(3), 9, 0),
        Err(Errno::ENOENT),
        "lookup before the op"
    );
    assert_eq!(huge(OptionOp(3), ioas, 0), Err(Errno::EOPNOTSUPP));
    assert_eq!(huge(OptionOp::SET, ioas, 2), Err(Errno::EINVAL));
    assert_eq!(huge(OptionOp::SET, ioas, 0), Ok(0));
    assert_eq!(huge(OptionOp::GET, ioas, 1), Ok(0));
    // Without large pages the IOAS maps base pages only: alignment PAGE_SIZE.
    let (_, cmd) = f.iova_ranges(ioas, 0, 0);
    assert_eq!(cmd.out_iova_alignment, PAGE);
    assert_eq!(
        f.map(ioas, FIXED_RW, 4 * MIB, 0x800, 0x10_0000),
        Err(Errno::EINVAL)
    );
    assert_eq!(huge(OptionOp::SET, ioas, 1), Ok(1));
    let (_, cmd) = f.iova_ranges(ioas, 0, 0);
    assert_eq!(cmd.out_iova_alignment, 1);
    // A mapping that is not page aligned keeps them from being disabled.
    f.map(ioas, FIXED_RW, 4 * MIB + 0x800, 0x800, 0x10_0800)
        .unwrap();
    assert_eq!(huge(OptionOp::SET, ioas, 0), Err(EADDRINUSE));
    assert_eq!(huge(OptionOp::GET, ioas, 0), Ok(1), "unchanged");
}

#[test]
fn vfio_compat_ioas_get_set_clear() {
    let f = open();
    assert_eq!(f.vfio_ioas(VfioIoasOp::GET, 0).0, Err(Errno::ENODEV));
    assert_eq!(f.vfio_ioas(VfioIoasOp::SET, 1).0, Err(Errno::ENOENT));
    let a = f.alloc().unwrap();
    let b = f.alloc().unwrap();
    // SET does not write the struct back: a caller's ioas_id stays as given.
    assert_eq!(f.vfio_ioas(VfioIoasOp::SET, b).0, Ok(()));
    let (result, cmd) = f.vfio_ioas(VfioIoasOp::GET, 77);
    assert_eq!((result, cmd.ioas_id), (Ok(()), b));
    let (result, cmd) = f.vfio_ioas(VfioIoasOp::CLEAR, 55);
    assert_eq!((result, cmd.ioas_id), (Ok(()), 55));
    assert_eq!(f.vfio_ioas(VfioIoasOp::GET, 0).0, Err(Errno::ENODEV));
    // A weak link: the compat IOAS can be destroyed, which clears it.
    assert_eq!(f.vfio_ioas(VfioIoasOp::SET, a).0, Ok(()));
    assert_eq!(f.destroy(a), Ok(()));
    assert_eq!(f.vfio_ioas(VfioIoasOp::GET, 0).0, Err(Errno::ENODEV));
    assert_eq!(f.alloc(), Ok(a), "and a new IOAS with the old ID is not it");
    assert_eq!(f.vfio_ioas(VfioIoasOp::GET, 0).0, Err(Errno::ENODEV));
    assert_eq!(f.vfio_ioas(VfioIoasOp(3), a).0, Err(Errno::EOPNOTSUPP));
    let mut cmd = IommuVfioIoas {
        size: 12,
        ioas_id: a,
        op: VfioIoasOp::SET,
        __reserved: 1,
    };
    assert_eq!(f.call(IOMMU_VFIO_IOAS, &mut cmd), Err(Errno::EOPNOTSUPP));
}

#[test]
fn change_process_needs_file_mappings_only() {
    let f = open();
    let mut cmd = IommuIoasChangeProcess {
        size: 8,
        __reserved: 0,
    };
    assert_eq!(
        f.call(IOMMU_IOAS_CHANGE_PROCESS, &mut cmd),
        Ok(()),
        "nothing to move"
    );
    let ioas = f.alloc().unwrap();
    assert_eq!(f.call(IOMMU_IOAS_CHANGE_PROCESS, &mut cmd), Ok(()));
    f.map(ioas, RW, 4 * MIB, PAGE, 0).unwrap();
    assert_eq!(
        f.call(IOMMU_IOAS_CHANGE_PROCESS, &mut cmd),
        Err(Errno::EINVAL)
    );
    cmd.__reserved = 1;
    assert_eq!(
        f.call(IOMMU_IOAS_CHANGE_PROCESS, &mut cmd),
        Err(Errno::EOPNOTSUPP)
    );
}

#[test]
fn change_process_moves_the_charge_of_file_mappings_to_the_caller() {
    let f = open();
    let shmem = f.host.mm.spawn().unwrap();
    let file = shmem
        .mmap(None, 4 * PAGE, Prot::RW, MapFlags::empty())
        .unwrap()
        .raw();
    f.fd.set_file_resolver(Some(Arc::new(ShmemResolver(shmem.clone()))));
    let ioas = f.alloc().unwrap();
    attach_recorder(&f, ioas);
    let mut map = IommuIoasMapFile {
        size: 40,
        flags: FIXED_RW,
        ioas_id: ioas,
        fd: 3,
        start: file,
        length: 4 * PAGE,
        iova: 0x10_0000,
    };
    f.call(IOMMU_IOAS_MAP_FILE, &mut map).unwrap();
    assert_eq!(f.p.locked_pages(), 4, "the mapper is charged, not the file");
    assert_eq!(shmem.locked_pages(), 0);

    let mut cmd = IommuIoasChangeProcess {
        size: 8,
        __reserved: 0,
    };
    let change = |by: &Arc<Process>, cmd: &mut IommuIoasChangeProcess| {
        let mut bytes = cmd.as_bytes().to_vec();
        f.fd.ioctl(
            u64::from(IOMMU_IOAS_CHANGE_PROCESS),
            &mut bytes,
            &ProcessMemory::new(by.clone()),
        )
    };
    // a new process over its limit: ENOMEM, nothing moves
    let small = f.host.mm.spawn().unwrap();
    small.set_memlock_limit(2 * PAGE);
    assert_eq!(change(&small, &mut cmd), Err(Errno::ENOMEM));
    assert_eq!((f.p.locked_pages(), small.locked_pages()), (4, 0));

    let next = f.host.mm.spawn().unwrap();
    assert_eq!(change(&next, &mut cmd), Ok(()));
    assert_eq!((f.p.locked_pages(), next.locked_pages()), (0, 4));
    assert_eq!(change(&next, &mut cmd), Ok(()), "nothing left to move");
    assert_eq!(next.locked_pages(), 4);
    // the context is the new process's now: its IOAS_MAP maps the new process's memory
    assert!(f.fd.process().name().contains(&next.pid().to_string()));
    let va = next
        .mmap(None, PAGE, Prot::RW, MapFlags::empty())
        .unwrap()
        .raw();
    assert!(f.map(ioas, FIXED_RW, va, PAGE, 0x20_0000).is_ok());
    assert_eq!(next.locked_pages(), 5);
    // ... and with a mapping of user memory in the context, no move is possible
    assert_eq!(change(&f.p, &mut cmd), Err(Errno::EINVAL));
    assert_eq!((f.p.locked_pages(), next.locked_pages()), (0, 5));
    f.unmap(ioas, 0x20_0000, PAGE).unwrap();
    // the charge goes with the pages when they are unmapped
    f.unmap(ioas, 0x10_0000, 4 * PAGE).unwrap();
    assert_eq!(next.locked_pages(), 0);
}

/// Attaches a recording domain (ID 1) to IOAS `ioas`: its areas are pinned from now on.
fn attach_recorder(f: &Fixture, ioas: u32) -> Arc<Recorder> {
    let domain = Arc::new(Recorder::default());
    f.fd.get_ioas(ioas)
        .unwrap()
        .iopt()
        .attach_domain(1, domain.clone())
        .unwrap();
    domain
}

/// Maps 4 pages of real memory into IOAS `ioas` with a domain attached, so they are pinned.
fn map_pinned(f: &Fixture, ioas: u32) -> Arc<Recorder> {
    let domain = attach_recorder(f, ioas);
    let va =
        f.p.mmap(None, 4 * PAGE, Prot::RW, MapFlags::empty())
            .unwrap();
    assert_eq!(
        f.map(ioas, FIXED_RW, va.raw(), 4 * PAGE, 0x10_0000),
        Ok(0x10_0000)
    );
    assert_eq!(f.p.locked_pages(), 4);
    assert_eq!(domain.map.lock().unwrap().len(), 4);
    domain
}

#[test]
fn destroying_an_ioas_unmaps_and_unpins() {
    let f = open();
    let ioas = f.alloc().unwrap();
    let domain = map_pinned(&f, ioas);
    assert_eq!(f.destroy(ioas), Ok(()));
    assert_eq!(f.p.locked_pages(), 0);
    assert!(domain.map.lock().unwrap().is_empty());
}

#[test]
fn closing_the_context_destroys_everything() {
    let f = open();
    let a = f.alloc().unwrap();
    let _b = f.alloc().unwrap();
    let domain = map_pinned(&f, a);
    let Fixture { p, fd, .. } = f;
    drop(fd);
    assert_eq!(p.locked_pages(), 0);
    assert!(domain.map.lock().unwrap().is_empty());
}
