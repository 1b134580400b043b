//! Every bad input of `VFIO_IOMMU_NESTING_OP` with the errno the series (v7), Linux 5.10's
//! IOMMU core (`iommu_sva_prepare_bind_data()`, `iommu_check_bind_data()`,
//! `iommu_uapi_cache_invalidate()`, `iommu_check_cache_invl_data()`, `iommu_page_response()`)
//! and the Intel driver (`intel_svm_bind_gpasid()`, `intel_pasid_setup_bind_data()`,
//! `ioasid_find()` ownership) give it. Each case changes one thing of a valid request.

mod common;

use common::*;
use vsva_iommufd::abi::Errno;
use vsva_vfio_nesting::NestingContainer;
use vsva_vfio_nesting::uapi::*;
use zerocopy::{FromBytes, IntoBytes};

#[test]
fn nesting_op_header() {
    let (vm, _dev, hpasid) = joined();
    let data = bind_data(hpasid, vm.table.root(), None);
    let mut bytes = VfioIommuType1NestingOp { argsz: 7, flags: 0 }
        .as_bytes()
        .to_vec();
    bytes.extend_from_slice(data.as_bytes());
    let number = u64::from(VFIO_IOMMU_NESTING_OP);
    assert_eq!(
        vm.c.ioctl(number, &mut bytes),
        Err(Errno::EINVAL),
        "argsz < 8"
    );
    assert_eq!(vm.c.ioctl(number, &mut [8, 0, 0, 0]), Err(Errno::EFAULT));
    assert_eq!(
        nesting_op(&vm.c, 1 << 16, data.as_bytes()),
        Err(Errno::EINVAL),
        "bits above the op's 16"
    );
    assert_eq!(
        nesting_op(&vm.c, 4, data.as_bytes()),
        Err(Errno::EINVAL),
        "unknown op"
    );
    assert_eq!(nesting_op(&vm.c, 0xffff, &[]), Err(Errno::EINVAL));
    // Data shorter than its mandatory part in the buffer: EFAULT, as copy_from_user.
    assert_eq!(
        nesting_op(
            &vm.c,
            VFIO_IOMMU_NESTING_OP_BIND_PGTBL,
            &data.as_bytes()[..40]
        ),
        Err(Errno::EFAULT)
    );
    // Nothing bound by any of this.
    assert_eq!(vm.c.binding(hpasid), None);
}

#[test]
fn ops_before_a_device_joined_are_not_supported() {
    let vm = vm();
    let data = bind_data(1, vm.table.root(), None);
    assert_eq!(bind(&vm.c, &data), Err(Errno::EOPNOTSUPP));
    assert_eq!(unbind(&vm.c, &data), Err(Errno::EOPNOTSUPP));
    let inv = inv_addr(CacheInvType::IOTLB, 1, GVA, 1);
    assert_eq!(invalidate(&vm.c, &inv), Err(Errno::EOPNOTSUPP));
    assert_eq!(
        page_resp(&vm.c, &response(1, 0, IOMMU_PAGE_RESP_SUCCESS)),
        Err(Errno::EOPNOTSUPP)
    );
    // Even with bad data: VFIO looks at its nesting info first.
    assert_eq!(
        bind(&vm.c, &IommuGpasidBindData::default()),
        Err(Errno::EOPNOTSUPP)
    );
}

#[test]
fn bind_data_checks() {
    let (vm, _dev, hpasid) = joined();
    let ok = bind_data(hpasid, vm.table.root(), Some(9));
    let cases: Vec<(&str, IommuGpasidBindData, Errno)> = vec![
        (
            "argsz short of vendor",
            IommuGpasidBindData { argsz: 55, ..ok },
            Errno::EINVAL,
        ),
        (
            "version 2",
            IommuGpasidBindData { version: 2, ..ok },
            Errno::EINVAL,
        ),
        (
            "version 0",
            IommuGpasidBindData { version: 0, ..ok },
            Errno::EINVAL,
        ),
        (
            "format LAST",
            IommuGpasidBindData { format: 2, ..ok },
            Errno::EINVAL,
        ),
        (
            "format 0",
            IommuGpasidBindData { format: 0, ..ok },
            Errno::EINVAL,
        ),
        (
            "unknown flag",
            IommuGpasidBindData {
                flags: 1 << 1,
                ..ok
            },
            Errno::EINVAL,
        ),
        (
            "padding",
            IommuGpasidBindData {
                padding: [0, 0, 0, 0, 0, 0, 0, 1],
                ..ok
            },
            Errno::EINVAL,
        ),
        (
            "argsz short of vendor.vtd",
            IommuGpasidBindData { argsz: 64, ..ok },
            Errno::EINVAL,
        ),
        (
            "unknown VT-d flag",
            IommuGpasidBindData {
                vtd: IommuGpasidBindDataVtd {
                    flags: 1 << 7,
                    ..ok.vtd
                },
                ..ok
            },
            Errno::EINVAL,
        ),
        (
            "hpasid 0",
            IommuGpasidBindData { hpasid: 0, ..ok },
            Errno::EINVAL,
        ),
        (
            "hpasid 2^20",
            IommuGpasidBindData {
                hpasid: 1 << 20,
                ..ok
            },
            Errno::EINVAL,
        ),
        (
            "hpasid never allocated",
            IommuGpasidBindData { hpasid: 77, ..ok },
            Errno::ENOENT,
        ),
        (
            "PCD without ECAP.MTS",
            IommuGpasidBindData {
                vtd: IommuGpasidBindDataVtd {
                    flags: VtdGpasidFlags::PCD.bits(),
                    ..ok.vtd
                },
                ..ok
            },
            Errno::EINVAL,
        ),
        (
            "EMTE without ECAP.MTS",
            IommuGpasidBindData {
                vtd: IommuGpasidBindDataVtd {
                    flags: VtdGpasidFlags::EMTE.bits(),
                    ..ok.vtd
                },
                ..ok
            },
            Errno::EINVAL,
        ),
        (
            "addr_width 39",
            IommuGpasidBindData {
                addr_width: 39,
                ..ok
            },
            Errno::EINVAL,
        ),
        (
            "gpgd misaligned",
            IommuGpasidBindData {
                gpgd: ok.gpgd + 8,
                ..ok
            },
            Errno::EINVAL,
        ),
    ];
    for (what, data, errno) in cases {
        assert_eq!(bind(&vm.c, &data), Err(errno), "{what}");
        assert_eq!(vm.c.binding(hpasid), None, "{what}: nothing kept");
    }
    // A longer argsz is fine: bytes past the struct are the vendor's business.
    let mut longer = ok.as_bytes().to_vec();
    longer[..4].copy_from_slice(&80u32.to_le_bytes());
    longer.extend_from_slice(&[0xff; 8]);
    assert_eq!(
        nesting_op(&vm.c, VFIO_IOMMU_NESTING_OP_BIND_PGTBL, &longer),
        Ok(0)
    );
    assert_eq!(bind(&vm.c, &ok), Err(Errno::EBUSY), "bound already");
    // SRE is fine on this unit (ECAP.SRS); EAFE and WPE pass the series' checks but
    // iommufd's VT-d first stage cannot express them.
    let other = alloc_pasid(&vm.c).unwrap();
    let sre = IommuGpasidBindData {
        hpasid: u64::from(other),
        vtd: IommuGpasidBindDataVtd {
            flags: VtdGpasidFlags::SRE.bits(),
            ..ok.vtd
        },
        ..ok
    };
    assert_eq!(bind(&vm.c, &sre), Ok(0));
    let third = alloc_pasid(&vm.c).unwrap();
    let eafe = IommuGpasidBindData {
        hpasid: u64::from(third),
        vtd: IommuGpasidBindDataVtd {
            flags: VtdGpasidFlags::EAFE.bits(),
            ..ok.vtd
        },
        ..ok
    };
    assert_eq!(bind(&vm.c, &eafe), Err(Errno::EOPNOTSUPP));

    // Another container's PASID: EACCES, to bind and to unbind.
    let c2 = NestingContainer::new(vm.ictx.clone(), &vm.pasids).unwrap();
    let (_dev4, vdev4) = plug(&vm.host, 4);
    c2.add_device(&vdev4).unwrap();
    assert_eq!(bind(&c2, &ok), Err(Errno::EACCES));
    assert_eq!(unbind(&c2, &ok), Err(Errno::EACCES));
    assert_eq!(
        vm.c.binding(hpasid).map(|b| b.1),
        Some(Some(9)),
        "still bound in c"
    );
}

#[test]
fn unbind_data_checks() {
    let (vm, _dev, hpasid) = joined();
    let ok = bind_data(hpasid, vm.table.root(), None);
    bind(&vm.c, &ok).unwrap();
    for (what, data) in [
        ("version", IommuGpasidBindData { version: 2, ..ok }),
        ("format", IommuGpasidBindData { format: 3, ..ok }),
        ("flags", IommuGpasidBindData { flags: 4, ..ok }),
        ("argsz", IommuGpasidBindData { argsz: 8, ..ok }),
        (
            "hpasid 2^20",
            IommuGpasidBindData {
                hpasid: 1 << 20,
                ..ok
            },
        ),
    ] {
        assert_eq!(unbind(&vm.c, &data), Err(Errno::EINVAL), "{what}");
    }
    assert_eq!(
        unbind(&vm.c, &IommuGpasidBindData { hpasid: 500, ..ok }),
        Err(Errno::ENOENT)
    );
    assert!(vm.c.binding(hpasid).is_some(), "none of those unbound it");
    assert_eq!(unbind(&vm.c, &ok), Ok(0));
}

#[test]
fn invalidation_checks() {
    let (vm, _dev, hpasid) = bound();
    let ok = inv_addr(
        CacheInvType::IOTLB | CacheInvType::DEV_IOTLB,
        hpasid,
        GVA,
        1,
    );
    assert_eq!(invalidate(&vm.c, &ok), Ok(0));
    let mut no_pasid = ok;
    no_pasid.addr_info.flags = 0;
    let mut bad_addr_flag = ok;
    bad_addr_flag.addr_info.flags |= 1 << 3;
    let mut other_pasid = ok;
    other_pasid.addr_info.pasid = 4242;
    let cases: Vec<(&str, IommuCacheInvalidateInfo, Errno)> = vec![
        (
            "argsz below the union",
            IommuCacheInvalidateInfo { argsz: 15, ..ok },
            Errno::EINVAL,
        ),
        (
            "ADDR argsz short of addr_info",
            IommuCacheInvalidateInfo { argsz: 55, ..ok },
            Errno::EINVAL,
        ),
        (
            "PASID argsz short of pasid_info",
            IommuCacheInvalidateInfo {
                argsz: 31,
                granularity: IOMMU_INV_GRANU_PASID,
                ..ok
            },
            Errno::EINVAL,
        ),
        (
            "version 0",
            IommuCacheInvalidateInfo { version: 0, ..ok },
            Errno::EINVAL,
        ),
        (
            "unknown cache bit",
            IommuCacheInvalidateInfo {
                cache: 1 << 3,
                ..ok
            },
            Errno::EINVAL,
        ),
        (
            "granularity 3",
            IommuCacheInvalidateInfo {
                granularity: 3,
                ..ok
            },
            Errno::EINVAL,
        ),
        (
            "ADDR with the PASID cache",
            IommuCacheInvalidateInfo {
                cache: CacheInvType::PASID.bits(),
                ..ok
            },
            Errno::EINVAL,
        ),
        (
            "DOMAIN with DEV_IOTLB",
            IommuCacheInvalidateInfo {
                granularity: IOMMU_INV_GRANU_DOMAIN,
                ..ok
            },
            Errno::EINVAL,
        ),
        (
            "padding",
            IommuCacheInvalidateInfo {
                padding: [1, 0, 0, 0, 0, 0],
                ..ok
            },
            Errno::EINVAL,
        ),
        ("unknown addr flag", bad_addr_flag, Errno::EINVAL),
        ("no PASID flag: PASID 0 looked up", no_pasid, Errno::ENOENT),
        ("a PASID nobody allocated", other_pasid, Errno::ENOENT),
    ];
    for (what, info, errno) in cases {
        assert_eq!(invalidate(&vm.c, &info), Err(errno), "{what}");
    }
    // Allocated by this container but not bound: EINVAL (ioasid_find() finds no data).
    let unbound = alloc_pasid(&vm.c).unwrap();
    let mut info = ok;
    info.addr_info.pasid = u64::from(unbound);
    assert_eq!(invalidate(&vm.c, &info), Err(Errno::EINVAL));
    // PASID granularity: only PASID and ARCHID flags.
    let mut pasid = IommuCacheInvalidateInfo {
        argsz: 32,
        granularity: IOMMU_INV_GRANU_PASID,
        ..ok
    };
    pasid.set_pasid_info(IommuInvPasidInfo {
        flags: 1 << 2,
        archid: 0,
        pasid: u64::from(hpasid),
    });
    assert_eq!(invalidate(&vm.c, &pasid), Err(Errno::EINVAL));
    // The PASID cache alone invalidates nothing and is no error.
    pasid.set_pasid_info(IommuInvPasidInfo {
        flags: InvPasidFlags::PASID.bits(),
        archid: 0,
        pasid: u64::from(hpasid),
    });
    pasid.cache = CacheInvType::PASID.bits();
    assert_eq!(invalidate(&vm.c, &pasid), Ok(0));
}

#[test]
fn page_response_checks() {
    let (vm, _dev, hpasid) = joined();
    let ok = response(hpasid, 0, IOMMU_PAGE_RESP_SUCCESS);
    for (what, msg) in [
        ("version 0", IommuPageResponse { version: 0, ..ok }),
        ("version 2", IommuPageResponse { version: 2, ..ok }),
        (
            "unknown flag",
            IommuPageResponse {
                flags: 1 << 1,
                ..ok
            },
        ),
        ("code 3", IommuPageResponse { code: 3, ..ok }),
        ("argsz 23", IommuPageResponse { argsz: 23, ..ok }),
        ("no group read", ok),
    ] {
        assert_eq!(page_resp(&vm.c, &msg), Err(Errno::EINVAL), "{what}");
    }
    assert_eq!(
        nesting_op(&vm.c, VFIO_IOMMU_NESTING_OP_PAGE_RESP, &ok.as_bytes()[..20]),
        Err(Errno::EFAULT)
    );
}

/// 64-bit PASID fields beyond any PASID: the bind's `hpasid` is refused by range (v7's
/// `intel_svm_bind_gpasid()`: `hpasid >= PASID_MAX` is `EINVAL`), an invalidation's or a
/// response's PASID belongs to nobody.
#[test]
fn pasids_past_32_bits_are_refused() {
    let (vm, _dev, hpasid) = bound();
    let data = IommuGpasidBindData {
        hpasid: u64::MAX,
        ..bind_data(hpasid, vm.table.root(), None)
    };
    assert_eq!(bind(&vm.c, &data), Err(Errno::EINVAL));
    assert_eq!(unbind(&vm.c, &data), Err(Errno::EINVAL));
    let mut info = inv_addr(CacheInvType::IOTLB, hpasid, GVA, 1);
    for pasid in [u64::from(u32::MAX), 1 << 32 | u64::from(hpasid), u64::MAX] {
        info.addr_info.pasid = pasid;
        assert_eq!(invalidate(&vm.c, &info), Err(Errno::ENOENT), "{pasid:#x}");
    }
    // Granules whose byte count overflows: everything is flushed, no error.
    let huge = inv_addr(CacheInvType::IOTLB, hpasid, u64::MAX - 4095, u64::MAX);
    assert_eq!(invalidate(&vm.c, &huge), Ok(0));
    let msg = IommuPageResponse {
        pasid: u32::MAX,
        grpid: u32::MAX,
        ..response(hpasid, 0, IOMMU_PAGE_RESP_SUCCESS)
    };
    assert_eq!(page_resp(&vm.c, &msg), Err(Errno::EINVAL));
    assert!(vm.c.binding(hpasid).is_some(), "none of those unbound it");
}

/// `VFIO_IOMMU_MAP_DMA` / `UNMAP_DMA` inputs `vfio_dma_do_map()` / `vfio_dma_do_unmap()`
/// refuse, each with `EINVAL`, beyond those of `dma_map_and_unmap_follow_type1`.
#[test]
fn dma_map_and_unmap_bad_input() {
    let (vm, _dev, _hpasid) = joined();
    for (what, vaddr, iova, size) in [
        ("iova unaligned", vm.ram_va, 4 * MIB + 8, 4096),
        ("size unaligned", vm.ram_va, 4 * MIB, 4097),
        ("vaddr wraps", u64::MAX - 4095, 4 * MIB, 8192),
        ("iova wraps", vm.ram_va, u64::MAX - 4095, 8192),
        ("size u64::MAX", vm.ram_va, 4 * MIB, u64::MAX),
    ] {
        assert_eq!(
            map_dma(&vm.c, vaddr, iova, size),
            Err(Errno::EINVAL),
            "{what}"
        );
    }
    let ok = VfioIommuType1DmaUnmap {
        argsz: 24,
        flags: 0,
        iova: 0,
        size: 2 * MIB,
    };
    for (what, mut unmap) in [
        ("argsz 23", VfioIommuType1DmaUnmap { argsz: 23, ..ok }),
        ("iova unaligned", VfioIommuType1DmaUnmap { iova: 8, ..ok }),
        ("size 0", VfioIommuType1DmaUnmap { size: 0, ..ok }),
        (
            "size unaligned",
            VfioIommuType1DmaUnmap { size: 4097, ..ok },
        ),
        (
            "wraps",
            VfioIommuType1DmaUnmap {
                iova: u64::MAX - 4095,
                size: 8192,
                ..ok
            },
        ),
        (
            "dirty bitmap",
            VfioIommuType1DmaUnmap {
                flags: u32::MAX,
                ..ok
            },
        ),
    ] {
        assert_eq!(
            call(&vm.c, VFIO_IOMMU_UNMAP_DMA, &mut unmap),
            Err(Errno::EINVAL),
            "{what}"
        );
    }
    // None of them unmapped anything.
    let mut unmap = ok;
    assert_eq!(call(&vm.c, VFIO_IOMMU_UNMAP_DMA, &mut unmap), Ok(0));
    assert_eq!(unmap.size, 2 * MIB);
}

/// Every container ioctl whose argument buffer ends before what must be read is `EFAULT`
/// (`copy_from_user()` of `minsz`, then of the part `argsz` asks for), never a panic; a larger
/// `argsz` than the struct is fine (VFIO reads `minsz`); the ioctl number is 32 bits, as the
/// system call's `unsigned int cmd`.
#[test]
fn short_buffers_are_efault_and_long_argsz_is_ignored() {
    let (vm, _dev, hpasid) = bound();
    let numbers = [
        VFIO_IOMMU_GET_INFO,
        VFIO_IOMMU_MAP_DMA,
        VFIO_IOMMU_UNMAP_DMA,
        VFIO_IOMMU_PASID_REQUEST,
        VFIO_IOMMU_NESTING_OP,
    ];
    for number in numbers {
        for len in [0, 1, 3, 4, 7] {
            let mut bytes = vec![0u8; len];
            if len >= 4 {
                bytes[..4].copy_from_slice(&64u32.to_le_bytes());
            }
            assert_eq!(
                vm.c.ioctl(u64::from(number), &mut bytes),
                Err(Errno::EFAULT),
                "{number:#x}, {len} bytes"
            );
        }
    }
    // The mandatory part is there, the rest argsz declares is not.
    let map = VfioIommuType1DmaMap {
        argsz: 32,
        flags: (DmaMapFlags::READ | DmaMapFlags::WRITE).bits(),
        vaddr: vm.ram_va,
        iova: 4 * MIB,
        size: 4096,
    };
    let mut bytes = map.as_bytes().to_vec();
    assert_eq!(
        vm.c.ioctl(u64::from(VFIO_IOMMU_MAP_DMA), &mut bytes[..31]),
        Err(Errno::EFAULT)
    );
    let info = inv_addr(CacheInvType::IOTLB, hpasid, GVA, 1);
    let mut op = VfioIommuType1NestingOp {
        argsz: 8,
        flags: VFIO_IOMMU_NESTING_OP_CACHE_INVLD,
    }
    .as_bytes()
    .to_vec();
    op.extend_from_slice(&info.as_bytes()[..40]);
    assert_eq!(
        vm.c.ioctl(u64::from(VFIO_IOMMU_NESTING_OP), &mut op),
        Err(Errno::EFAULT),
        "ADDR data cut inside addr_info"
    );
    // argsz past the struct: the struct is read, the rest ignored (no E2BIG, unlike iommufd).
    bytes[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(vm.c.ioctl(u64::from(VFIO_IOMMU_MAP_DMA), &mut bytes), Ok(0));
    let mut unmap = VfioIommuType1DmaUnmap {
        argsz: u32::MAX,
        flags: 0,
        iova: 4 * MIB,
        size: 4096,
    };
    assert_eq!(call(&vm.c, VFIO_IOMMU_UNMAP_DMA, &mut unmap), Ok(0));
    assert_eq!((unmap.argsz, unmap.size), (u32::MAX, 4096));
    // Bits above 32 of the number are not part of it.
    let mut unmap = VfioIommuType1DmaUnmap {
        argsz: 24,
        flags: 0,
        iova: 0,
        size: 2 * MIB,
    };
    let mut bytes = unmap.as_bytes().to_vec();
    assert_eq!(
        vm.c.ioctl(1 << 32 | u64::from(VFIO_IOMMU_UNMAP_DMA), &mut bytes),
        Ok(0)
    );
    unmap = VfioIommuType1DmaUnmap::read_from_bytes(&bytes).unwrap();
    assert_eq!(unmap.size, 2 * MIB);
}

/// A fault read asking for any number of reports allocates a bounded buffer.
#[test]
fn fault_reads_of_any_size_are_bounded() {
    let (vm, _dev, _hpasid) = bound();
    assert!(vm.c.read_faults(usize::MAX).is_empty());
    assert_eq!(vm.c.read_faults_bytes(&mut []), Ok(0));
}
