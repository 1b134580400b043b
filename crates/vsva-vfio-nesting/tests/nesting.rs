//! Seed 001's VFIO path end to end on vsva: the nesting capability, PASID requests, binding a
//! guest page table and serving the device's page requests through the container, cache
//! invalidation reaching the device's ATC, unbind, and every bad input with its errno.
//! Expected values are worked out from the series (v7), Linux 5.10's IOMMU uAPI, the VT-d
//! specification and the default `VtdConfig`.

mod common;

use common::*;
use vsva_demo::Progress;
use vsva_demo::regs::{self, DeviceError, Op};
use vsva_iommufd::abi::Errno;
use vsva_vfio_nesting::NestingContainer;
use vsva_vfio_nesting::uapi::*;
use zerocopy::FromBytes;

const ALLOC: u32 = PasidRequestFlags::ALLOC.bits();
const FREE: u32 = PasidRequestFlags::FREE.bits();

/// `VFIO_IOMMU_GET_INFO` with a buffer of `len` bytes declaring `argsz`.
fn get_info(c: &NestingContainer, argsz: u32, len: usize) -> (Result<u32, Errno>, Vec<u8>) {
    let mut bytes = vec![0u8; len];
    bytes[..4].copy_from_slice(&argsz.to_le_bytes());
    let r = c.ioctl(u64::from(VFIO_IOMMU_GET_INFO), &mut bytes);
    (r, bytes)
}

/// The capabilities of a GET_INFO answer: (offset, id, version).
fn chain(bytes: &[u8]) -> Vec<(usize, u16, u16)> {
    let info = VfioIommuType1Info::read_from_prefix(bytes).unwrap().0;
    let mut out = Vec::new();
    let mut at = info.cap_offset as usize;
    while at != 0 {
        let h = VfioInfoCapHeader::read_from_prefix(&bytes[at..]).unwrap().0;
        out.push((at, h.id, h.version));
        at = h.next as usize;
    }
    out
}

#[test]
fn get_info_reports_the_nesting_capability_of_the_host_unit() {
    let vm = vm();
    // Before any device: PGSIZES and the IOVA-range capability only. Room for the struct
    // alone: CAPS is set, argsz grows to what the chain needs, cap_offset stays 0.
    let (r, bytes) = get_info(&vm.c, 24, 24);
    assert_eq!(r, Ok(0));
    let info = VfioIommuType1Info::read_from_bytes(&bytes).unwrap();
    assert_eq!(info.flags, (InfoFlags::PGSIZES | InfoFlags::CAPS).bits());
    assert_eq!(
        info.iova_pgsizes, !0xfff,
        "every size from 4 KiB (Intel's ~0xfffUL)"
    );
    assert_eq!(info.cap_offset, 0);
    // 24 + the IOVA-range cap of one range (16 + 16): the empty IOAS spans 0..=u64::MAX.
    assert_eq!(info.argsz, 24 + 32);
    let (r, bytes) = get_info(&vm.c, 256, 256);
    assert_eq!(r, Ok(0));
    assert_eq!(
        chain(&bytes),
        vec![(24, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 1)]
    );
    let range = VfioIovaRange::read_from_prefix(&bytes[40..]).unwrap().0;
    assert_eq!((range.start, range.end), (0, u64::MAX));

    // The first device joins: the nesting capability follows the IOVA ranges.
    let (_dev, vdev) = plug(&vm.host, 3);
    vm.c.add_device(&vdev).unwrap();
    let (r, bytes) = get_info(&vm.c, 256, 256);
    assert_eq!(r, Ok(0));
    let caps = chain(&bytes);
    assert_eq!(caps.len(), 2);
    assert_eq!(
        (caps[1].1, caps[1].2),
        (VFIO_IOMMU_TYPE1_INFO_CAP_NESTING, 1)
    );
    let cap = VfioIommuType1InfoCapNesting::read_from_prefix(&bytes[caps[1].0..])
        .unwrap()
        .0;
    let n = cap.info;
    assert_eq!(n.argsz, 56, "sizeof(struct iommu_nesting_info) of v7");
    assert_eq!((n.flags, n.format), (0, IOMMU_PASID_FORMAT_INTEL_VTD));
    assert_eq!(
        n.features, 0b1111,
        "SYSWIDE_PASID | BIND_PGTBL | CACHE_INVLD | PAGE_RESP"
    );
    // The default unit: MGAW 57 and 5-level SAGAW, so the stage-2 domain is 57 bits wide;
    // ECAP.PSS + 1 = 20 PASID bits.
    assert_eq!((n.addr_width, n.pasid_bits), (57, 20));
    // CAP_REG at 08h, ECAP_REG at 10h (VT-d §10.4.2, §10.4.3), masked as v7 16/16 does.
    let cap_reg = vm.host.unit.mmio_read(0x08, 8);
    let ecap_reg = vm.host.unit.mmio_read(0x10, 8);
    assert_eq!(n.vtd.cap_reg, cap_reg & (1 << 56 | 1 << 60));
    assert_eq!(
        n.vtd.ecap_reg,
        ecap_reg & (1 << 29 | 1 << 30 | 1 << 31 | 1 << 34 | 1 << 40)
    );
    // The default unit has FL1GP, FL5LP, PRS, SRS, EAFS and PASID.
    assert_eq!(n.vtd.cap_reg, 1 << 56 | 1 << 60);
    assert_eq!(
        n.vtd.ecap_reg & (1 << 29 | 1 << 31 | 1 << 34 | 1 << 40),
        1 << 29 | 1 << 31 | 1 << 34 | 1 << 40
    );

    // argsz rules: below 16 EINVAL; 16..19 answers without cap_offset; a buffer shorter than
    // the mandatory part is EFAULT.
    assert_eq!(get_info(&vm.c, 15, 64).0, Err(Errno::EINVAL));
    let (r, bytes) = get_info(&vm.c, 16, 24);
    assert_eq!(r, Ok(0));
    assert_eq!(&bytes[16..24], &[0; 8], "nothing written past argsz");
    assert_eq!(get_info(&vm.c, 24, 12).0, Err(Errno::EFAULT));
}

#[test]
fn pasid_requests_allocate_free_and_keep_to_the_quota() {
    let vm = vm_with_quota(3);
    assert_eq!(
        pasid_request(&vm.c, ALLOC, 1, 10),
        Err(Errno::EOPNOTSUPP),
        "no vfio_mm before a device joined"
    );
    let (_dev, vdev) = plug(&vm.host, 3);
    vm.c.add_device(&vdev).unwrap();
    // The lowest free PASID of the range, returned as the ioctl's value.
    assert_eq!(pasid_request(&vm.c, ALLOC, 1, 10), Ok(1));
    assert_eq!(pasid_request(&vm.c, ALLOC, 1, 10), Ok(2));
    assert_eq!(pasid_request(&vm.c, ALLOC, 7, 7), Ok(7));
    assert_eq!(
        pasid_request(&vm.c, ALLOC, 1, 10),
        Err(Errno::ENOSPC),
        "quota of 3"
    );
    assert_eq!(pasid_request(&vm.c, FREE, 2, 6), Ok(0));
    assert_eq!(vm.c.pasids(), vec![1, 7]);
    assert_eq!(
        pasid_request(&vm.c, ALLOC, 7, 7),
        Err(Errno::ENOSPC),
        "7 is taken"
    );
    assert_eq!(pasid_request(&vm.c, ALLOC, 1, 10), Ok(2));
    assert_eq!(
        pasid_request(&vm.c, FREE, 0, 0x7fff_ffff),
        Ok(0),
        "free all, none left"
    );
    assert!(vm.c.pasids().is_empty());
    assert_eq!(
        pasid_request(&vm.c, FREE, 5, 5),
        Ok(0),
        "freeing nothing is fine"
    );

    // Bad requests: EINVAL.
    assert_eq!(
        pasid_request(&vm.c, ALLOC, 5, 4),
        Err(Errno::EINVAL),
        "min > max"
    );
    assert_eq!(
        pasid_request(&vm.c, ALLOC, 1, 1 << 31),
        Err(Errno::EINVAL),
        "31 bits"
    );
    assert_eq!(
        pasid_request(&vm.c, FREE, 1 << 31, u32::MAX),
        Err(Errno::EINVAL)
    );
    assert_eq!(pasid_request(&vm.c, 0, 1, 2), Err(Errno::EINVAL), "no op");
    assert_eq!(
        pasid_request(&vm.c, ALLOC | FREE, 1, 2),
        Err(Errno::EINVAL),
        "both"
    );
    assert_eq!(
        pasid_request(&vm.c, 1 << 2, 1, 2),
        Err(Errno::EINVAL),
        "unknown flag"
    );
    let mut short = VfioIommuType1PasidRequest {
        argsz: 15,
        flags: ALLOC,
        min: 1,
        max: 2,
    };
    assert_eq!(
        call(&vm.c, VFIO_IOMMU_PASID_REQUEST, &mut short),
        Err(Errno::EINVAL)
    );
    let mut eight = [16u8, 0, 0, 0, 1, 0, 0, 0];
    assert_eq!(
        vm.c.ioctl(u64::from(VFIO_IOMMU_PASID_REQUEST), &mut eight),
        Err(Errno::EFAULT)
    );
    // A PASID range of 2^20 and up has nothing to give.
    assert_eq!(
        pasid_request(&vm.c, ALLOC, 1 << 20, 1 << 21),
        Err(Errno::ENOSPC)
    );

    // A second container on the same host PASID space cannot take or free c's PASIDs.
    let other = NestingContainer::new(vm.ictx.clone(), &vm.pasids).unwrap();
    let (_dev4, vdev4) = plug(&vm.host, 4);
    other.add_device(&vdev4).unwrap();
    assert_eq!(pasid_request(&vm.c, ALLOC, 1, 1), Ok(1));
    assert_eq!(pasid_request(&other, ALLOC, 1, 1), Err(Errno::ENOSPC));
    assert_eq!(pasid_request(&other, FREE, 1, 1), Ok(0));
    assert_eq!(vm.c.pasids(), vec![1], "still c's");
    assert_eq!(pasid_request(&other, ALLOC, 1, 10), Ok(2));
}

#[test]
fn a_bound_guest_table_serves_page_requests_and_the_writes_land_in_guest_ram() {
    let vm = vm();
    let (dev, vdev) = plug(&vm.host, 3);
    let dev_id = vm.c.add_device(&vdev).unwrap();
    assert_eq!(map_dma(&vm.c, vm.ram_va, 0, 2 * MIB), Ok(0));
    let hpasid = alloc_pasid(&vm.c).unwrap();
    assert_eq!(
        bind(&vm.c, &bind_data(hpasid, vm.table.root(), Some(5))),
        Ok(0)
    );
    let (hwpt, gpasid) = vm.c.binding(hpasid).unwrap();
    assert_eq!(gpasid, Some(5));
    assert_eq!(
        vm.ictx.get_device(dev_id).unwrap().attached(),
        vec![(0, vm.c.s2_hwpt().unwrap()), (hpasid, hwpt)],
        "the device's RID on stage 2, its hpasid on the nested HWPT"
    );

    // The guest has mapped nothing at GVA: each of the 3 pages the device writes is a page
    // request, read from the container and answered with PAGE_RESP.
    submit(&dev, hpasid, Op::WritePattern, GVA, 3 * 4096, 11);
    let faults = vm.run_serving_faults(&dev, hpasid);
    assert_eq!(faults.len(), 3);
    for (i, f) in faults.iter().enumerate() {
        assert_eq!(
            *f,
            IommuFault {
                fault_type: IOMMU_FAULT_PAGE_REQ,
                padding: 0,
                prm: IommuFaultPageRequest {
                    flags: (FaultPrmFlags::PASID_VALID
                        | FaultPrmFlags::LAST_PAGE
                        | FaultPrmFlags::RESPONSE_NEEDS_PASID)
                        .bits(),
                    pasid: hpasid,
                    // the device's PRG index allocator hands 0, 1, 2 out in turn
                    grpid: i as u32,
                    // a write asks for read and write (PCIe 10.4.1)
                    perm: (FaultPerm::READ | FaultPerm::WRITE).bits(),
                    addr: GVA + i as u64 * 4096,
                    private_data: [0; 2],
                },
                padding2: [0; 16],
            }
        );
    }
    assert_eq!(dev.mmio_read(regs::RESULT), 3 * 4096);
    let mut got = vec![0u8; 3 * 4096];
    vm.ram.read(GPA, &mut got).unwrap();
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, &b)| b == regs::pattern_byte(11, i as u64)),
        "the device's writes are in guest RAM at the GPAs the guest table gives"
    );
    assert_eq!(vm.c.pending_responses(), 0);
    let stats = vm.host.iommu.stats();
    assert_eq!((stats.responses_success, stats.responses_invalid), (3, 0));
    // The answer was consumed: answering again matches nothing.
    assert_eq!(
        page_resp(&vm.c, &response(hpasid, 0, IOMMU_PAGE_RESP_SUCCESS)),
        Err(Errno::EINVAL)
    );
}

#[test]
fn faults_read_as_bytes_and_invalid_answers_stop_the_device() {
    let (vm, dev, hpasid) = bound();
    submit(&dev, hpasid, Op::WritePattern, GVA, 4096, 1);
    assert_eq!(dev.run(), Progress::Waiting);
    assert!(vm.host.service() > 0);
    let mut buf = [0u8; 64 * 2];
    assert_eq!(vm.c.read_faults_bytes(&mut buf[..63]), Err(Errno::EINVAL));
    assert_eq!(vm.c.read_faults_bytes(&mut buf), Ok(64));
    let f = IommuFault::read_from_bytes(&buf[..64]).unwrap();
    assert_eq!((f.fault_type, f.prm.pasid, f.prm.addr), (2, hpasid, GVA));
    // The wrong PASID matches nothing; FAILURE goes to the device as "Invalid Request".
    assert_eq!(
        page_resp(&vm.c, &response(hpasid + 1, 0, IOMMU_PAGE_RESP_SUCCESS)),
        Err(Errno::EINVAL)
    );
    let mut no_pasid = response(hpasid, 0, IOMMU_PAGE_RESP_SUCCESS);
    no_pasid.flags = 0;
    assert_eq!(
        page_resp(&vm.c, &no_pasid),
        Err(Errno::EINVAL),
        "needs the PASID"
    );
    assert_eq!(
        page_resp(&vm.c, &response(hpasid, 0, IOMMU_PAGE_RESP_FAILURE)),
        Ok(0)
    );
    assert_eq!(dev.run(), Progress::Failed(DeviceError::PageRequestInvalid));
}

#[test]
fn cache_invalidation_drops_the_device_atc() {
    let (vm, dev, hpasid) = bound();
    submit(&dev, hpasid, Op::WritePattern, GVA, 3 * 4096, 1);
    vm.run_serving_faults(&dev, hpasid);

    // Mapped and cached: a second run translates nothing new.
    let before = dev.stats();
    submit(&dev, hpasid, Op::WritePattern, GVA, 3 * 4096, 2);
    assert_eq!(dev.run(), Progress::Done);
    let warm = dev.stats();
    assert_eq!(
        warm.ats_translations, before.ats_translations,
        "all ATC hits"
    );

    // The guest unmaps the 3 pages and invalidates: one PASID-based device-TLB invalidation
    // of the 16 KiB-aligned range holding them reaches the ATC, and the next run must ask
    // for translations again (and fault: the pages are gone from the guest table).
    vm.table.unmap(GVA, 3 * 4096).unwrap();
    let info = inv_addr(
        CacheInvType::IOTLB | CacheInvType::DEV_IOTLB,
        hpasid,
        GVA,
        3,
    );
    assert_eq!(invalidate(&vm.c, &info), Ok(0));
    let after = dev.stats();
    assert_eq!(
        after.atc_invalidations - warm.atc_invalidations,
        1,
        "{after:?}"
    );
    submit(&dev, hpasid, Op::WritePattern, GVA, 4096, 3);
    assert_eq!(
        dev.run(),
        Progress::Waiting,
        "the ATC forgot the page: a page request"
    );
    assert!(dev.stats().ats_translations > after.ats_translations);
    assert!(vm.host.service() > 0);
    assert_eq!(vm.c.read_faults(8).len(), 1);

    // PASID and DOMAIN granularity flush everything too.
    let n = dev.stats().atc_invalidations;
    let mut pasid = info;
    pasid.argsz = 32;
    pasid.granularity = IOMMU_INV_GRANU_PASID;
    pasid.set_pasid_info(IommuInvPasidInfo {
        flags: InvPasidFlags::PASID.bits(),
        archid: 0,
        pasid: u64::from(hpasid),
    });
    assert_eq!(invalidate(&vm.c, &pasid), Ok(0));
    assert!(dev.stats().atc_invalidations > n);
    let domain = IommuCacheInvalidateInfo {
        argsz: 16,
        version: 1,
        cache: CacheInvType::IOTLB.bits(),
        granularity: IOMMU_INV_GRANU_DOMAIN,
        ..Default::default()
    };
    assert_eq!(invalidate(&vm.c, &domain), Ok(0));
}

#[test]
fn after_unbind_the_pasid_faults_and_can_be_bound_again() {
    let vm = vm();
    let (dev, vdev) = plug(&vm.host, 3);
    let dev_id = vm.c.add_device(&vdev).unwrap();
    map_dma(&vm.c, vm.ram_va, 0, 2 * MIB).unwrap();
    let hpasid = alloc_pasid(&vm.c).unwrap();
    let data = bind_data(hpasid, vm.table.root(), None);
    bind(&vm.c, &data).unwrap();
    submit(&dev, hpasid, Op::WritePattern, GVA, 4096, 1);
    vm.run_serving_faults(&dev, hpasid);
    assert_eq!(unbind(&vm.c, &data), Ok(0));
    assert_eq!(vm.c.binding(hpasid), None);
    assert_eq!(
        vm.ictx.get_device(dev_id).unwrap().attached(),
        vec![(0, vm.c.s2_hwpt().unwrap())],
        "only stage 2 left"
    );
    // The PASID is no longer translated: the device's access is refused.
    submit(&dev, hpasid, Op::WritePattern, GVA, 4096, 2);
    let mut outcome = dev.run();
    for _ in 0..STEPS {
        if outcome != Progress::Waiting {
            break;
        }
        vm.host.service();
        outcome = dev.run();
    }
    assert_eq!(
        outcome,
        Progress::Failed(DeviceError::TranslationRefused),
        "DMA under an unbound PASID is refused"
    );
    assert!(vm.c.read_faults(8).is_empty(), "nothing reaches the VMM");
    assert_eq!(unbind(&vm.c, &data), Ok(0), "unbinding twice is no error");
    // Bound again, the guest's table (still mapping GVA) works at once.
    bind(&vm.c, &data).unwrap();
    submit(&dev, hpasid, Op::WritePattern, GVA, 4096, 3);
    assert!(vm.run_serving_faults(&dev, hpasid).is_empty());
    // Freeing a bound PASID unbinds it.
    assert_eq!(pasid_request(&vm.c, FREE, hpasid, hpasid), Ok(0));
    assert_eq!(vm.c.binding(hpasid), None);
}

#[test]
fn dma_map_and_unmap_follow_type1() {
    let vm = vm();
    let (_dev, vdev) = plug(&vm.host, 3);
    vm.c.add_device(&vdev).unwrap();
    assert_eq!(map_dma(&vm.c, vm.ram_va, 0, 2 * MIB), Ok(0));
    assert_eq!(map_dma(&vm.c, vm.ram_va, 0, 4096), Err(Errno::EEXIST));
    assert_eq!(
        map_dma(&vm.c, vm.ram_va + 1, 4 * MIB, 4096),
        Err(Errno::EINVAL)
    );
    assert_eq!(map_dma(&vm.c, vm.ram_va, 4 * MIB, 0), Err(Errno::EINVAL));
    assert_eq!(
        map_dma(&vm.c, vm.ram_va, u64::MAX - 4095, 8192),
        Err(Errno::EINVAL)
    );
    let mut bad = VfioIommuType1DmaMap {
        argsz: 31,
        flags: 3,
        vaddr: vm.ram_va,
        iova: 4 * MIB,
        size: 4096,
    };
    assert_eq!(
        call(&vm.c, VFIO_IOMMU_MAP_DMA, &mut bad),
        Err(Errno::EINVAL)
    );
    bad.argsz = 32;
    bad.flags = 1 << 2;
    assert_eq!(
        call(&vm.c, VFIO_IOMMU_MAP_DMA, &mut bad),
        Err(Errno::EINVAL)
    );
    bad.flags = 0;
    assert_eq!(
        call(&vm.c, VFIO_IOMMU_MAP_DMA, &mut bad),
        Err(Errno::EINVAL),
        "no R/W"
    );

    let mut unmap = VfioIommuType1DmaUnmap {
        argsz: 24,
        flags: 0,
        iova: 0,
        size: 4096,
    };
    assert_eq!(
        call(&vm.c, VFIO_IOMMU_UNMAP_DMA, &mut unmap),
        Err(Errno::EINVAL),
        "cuts"
    );
    unmap.iova = 8 * MIB;
    assert_eq!(call(&vm.c, VFIO_IOMMU_UNMAP_DMA, &mut unmap), Ok(0));
    assert_eq!(unmap.size, 0, "nothing there: 0 bytes, no error");
    unmap.iova = 0;
    unmap.size = 4 * MIB;
    assert_eq!(call(&vm.c, VFIO_IOMMU_UNMAP_DMA, &mut unmap), Ok(0));
    assert_eq!(unmap.size, 2 * MIB);
    unmap.flags = 1;
    assert_eq!(
        call(&vm.c, VFIO_IOMMU_UNMAP_DMA, &mut unmap),
        Err(Errno::EINVAL)
    );
    assert_eq!(vm.c.ioctl(0x3b7f, &mut [0u8; 32]), Err(Errno::ENOTTY));
}
