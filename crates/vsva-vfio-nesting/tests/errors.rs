//! Every bad input of `VFIO_IOMMU_NESTING_OP` with the errno the series (v7), Linux 5.10's
//! IOMMU core (`iommu_sva_prepare_bind_data()`, `iommu_check_bind_data()`,
//! `iommu_uapi_cache_invalidate()`, `iommu_check_cache_invl_data()`, `iommu_page_response()`)
//! and the Intel driver (`intel_svm_bind_gpasid()`, `intel_pasid_setup_bind_data()`,
//! `ioasid_find()` ownership) give it. Each case changes one thing of a valid request.

mod common;

use common::*;
use vsva_iommufd::abi::Errno;
use vsva_vfio_nesting::NestingContainer;
use vsva_vfio_nesting::pasid::EACCES;
use vsva_vfio_nesting::uapi::*;
use zerocopy::IntoBytes;

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
    assert_eq!(bind(&c2, &ok), Err(EACCES));
    assert_eq!(unbind(&c2, &ok), Err(EACCES));
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

/// A fault read asking for any number of reports allocates a bounded buffer.
#[test]
fn fault_reads_of_any_size_are_bounded() {
    let (vm, _dev, _hpasid) = bound();
    assert!(vm.c.read_faults(usize::MAX).is_empty());
    assert_eq!(vm.c.read_faults_bytes(&mut []), Ok(0));
}
