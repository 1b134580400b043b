//! HWPTs through `Iommufd::ioctl`: `IOMMU_HWPT_ALLOC` (paging and nested VT-d first stages),
//! `IOMMU_HWPT_INVALIDATE`, `IOMMU_HWPT_SET_DIRTY_TRACKING` and `IOMMU_HWPT_GET_DIRTY_BITMAP`,
//! on the demo platform's VT-d unit with DMA through it as the proof. Expected values are
//! worked out from Linux's `drivers/iommu/iommufd/{hw_pagetable,io_pagetable}.c` and
//! `drivers/iommu/intel/nested.c`.

mod common;

use common::{FIXED_RW, Fixture, MIB, PAGE, open, open_with};
use vsva_iommufd::ObjectType;
use vsva_iommufd::abi::ioctl::{
    IOMMU_HWPT_ALLOC, IOMMU_HWPT_GET_DIRTY_BITMAP, IOMMU_HWPT_INVALIDATE,
    IOMMU_HWPT_SET_DIRTY_TRACKING,
};
use vsva_iommufd::abi::{
    Errno, HwptAllocFlags, HwptDataType, HwptInvalidateDataType, IommuHwptAlloc,
    IommuHwptGetDirtyBitmap, IommuHwptInvalidate, IommuHwptSetDirtyTracking, IommuHwptVtdS1,
    IommuHwptVtdS1Invalidate,
};
use vsva_mem::{PageSize, Pasid};
use vsva_mm::{MapFlags, Prot};
use vsva_pgtable::x86::X86Paging;
use vsva_pgtable::{PageTable, Perm};
use vsva_vtd::VtdConfig;
use zerocopy::IntoBytes;

const NEST_PARENT: u32 = HwptAllocFlags::NEST_PARENT.bits();
const DIRTY: u32 = HwptAllocFlags::DIRTY_TRACKING.bits();
const FAULT_ID_VALID: u32 = HwptAllocFlags::FAULT_ID_VALID.bits();
const PASID_FLAG: u32 = HwptAllocFlags::PASID.bits();

fn pasid(raw: u32) -> Option<Pasid> {
    Some(Pasid::new(raw).unwrap())
}

#[test]
fn paging_alloc_checks_in_linux_order() {
    let f = open();
    let (_dev, dev_id) = f.plug_and_bind(3);
    let ioas = f.alloc().unwrap();
    let mut cmd = IommuHwptAlloc {
        size: 48,
        dev_id: 99,
        pt_id: 99,
        __reserved: 1,
        ..Default::default()
    };
    // __reserved, then the data type/length pair, then the device, then pt_id
    assert_eq!(f.call(IOMMU_HWPT_ALLOC, &mut cmd), Err(Errno::EOPNOTSUPP));
    cmd.__reserved = 0;
    cmd.data_len = 8;
    assert_eq!(f.call(IOMMU_HWPT_ALLOC, &mut cmd), Err(Errno::EINVAL));
    cmd.data_len = 0;
    cmd.data_type = HwptDataType::VTD_S1;
    assert_eq!(f.call(IOMMU_HWPT_ALLOC, &mut cmd), Err(Errno::EINVAL));
    cmd.data_type = HwptDataType::NONE;
    assert_eq!(f.call(IOMMU_HWPT_ALLOC, &mut cmd), Err(Errno::ENOENT));
    cmd.dev_id = dev_id;
    assert_eq!(
        f.call(IOMMU_HWPT_ALLOC, &mut cmd),
        Err(Errno::EINVAL),
        "no such pt_id"
    );
    cmd.pt_id = dev_id;
    assert_eq!(
        f.call(IOMMU_HWPT_ALLOC, &mut cmd),
        Err(Errno::EINVAL),
        "a device is no parent"
    );

    // the flag rules of a paging HWPT
    let none = HwptDataType::NONE;
    assert_eq!(f.hwpt_paging(dev_id, ioas, 1 << 4), Err(Errno::EOPNOTSUPP));
    assert_eq!(
        f.hwpt_paging(dev_id, ioas, FAULT_ID_VALID | NEST_PARENT),
        Err(Errno::EOPNOTSUPP)
    );
    let s1 = IommuHwptVtdS1 {
        addr_width: 48,
        ..Default::default()
    };
    assert_eq!(
        f.hwpt_alloc(dev_id, ioas, 0, HwptDataType::VTD_S1, s1.as_bytes()),
        Err(Errno::EOPNOTSUPP),
        "the Intel driver takes no data for a paging domain"
    );
    // FAULT_ID_VALID needs a fault queue; fault_id 0 names none: ENOENT, nothing kept
    assert_eq!(
        f.hwpt_alloc(dev_id, ioas, FAULT_ID_VALID, none, &[]),
        Err(Errno::ENOENT)
    );
    assert_eq!(f.fd.objects().len(), 2);

    // every valid combination
    let plain = f.hwpt_paging(dev_id, ioas, 0).unwrap();
    let all = f
        .hwpt_paging(dev_id, ioas, NEST_PARENT | DIRTY | PASID_FLAG)
        .unwrap();
    assert_eq!((plain, all), (3, 4), "IDs follow the device and the IOAS");
    let hwpt = f.fd.get_hwpt_paging(all).unwrap();
    assert!(hwpt.nest_parent() && hwpt.dirty_ops() && hwpt.pasid_compat());
    assert!(!hwpt.auto_domain());
    assert_eq!(hwpt.ioas().id(), ioas);
    let hwpt = f.fd.get_hwpt_paging(plain).unwrap();
    assert!(!hwpt.nest_parent() && !hwpt.dirty_ops() && !hwpt.pasid_compat());
    // __reserved2 is not looked at, as in Linux
    let mut cmd = IommuHwptAlloc {
        size: 48,
        dev_id,
        pt_id: ioas,
        __reserved2: 7,
        ..Default::default()
    };
    assert_eq!(f.call(IOMMU_HWPT_ALLOC, &mut cmd), Ok(()));
    assert_eq!(cmd.out_hwpt_id, 5);
}

#[test]
fn paging_alloc_follows_the_unit() {
    // 48-bit MGAW, no second-stage A/D, no nesting
    let cfg = VtdConfig {
        mgaw: 48,
        ss_levels: [true, true, false],
        ss_ad: false,
        nested: false,
        ..VtdConfig::default()
    };
    let f = open_with(cfg);
    let (_dev, dev_id) = f.plug_and_bind(3);
    let ioas = f.alloc().unwrap();
    assert_eq!(f.hwpt_paging(dev_id, ioas, DIRTY), Err(Errno::EOPNOTSUPP));
    assert_eq!(
        f.hwpt_paging(dev_id, ioas, NEST_PARENT),
        Err(Errno::EOPNOTSUPP)
    );
    // a mapping beyond the aperture cannot be filled in: EINVAL
    let buf = f.buffer(PAGE);
    f.map(ioas, FIXED_RW, buf, PAGE, 1 << 50).unwrap();
    assert_eq!(f.hwpt_paging(dev_id, ioas, 0), Err(Errno::EINVAL));
    f.unmap(ioas, 1 << 50, PAGE).unwrap();
    let hwpt = f.hwpt_paging(dev_id, ioas, 0).unwrap();
    assert_eq!(f.ranges(ioas), vec![(0, (1 << 48) - 1)]);
    assert_eq!(f.destroy(hwpt), Ok(()));
}

/// A guest: 2 MiB of the VMM's memory as guest RAM at GPA 0 of `ioas`, holding a first-stage
/// table (frames from GPA 1 MiB) that maps guest VA 0x4000_0000 to GPA 0x8000.
struct Guest {
    ram_hpa: u64,
    table: PageTable<X86Paging>,
}

const GVA: u64 = 0x4000_0000;
const GPA: u64 = 0x8000;

fn guest(f: &Fixture, ioas: u32) -> Guest {
    let ram = f.guest_ram(ioas);
    ram.table
        .map(GVA, GPA, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    ram.mem.write(GPA + 8, b"guest data").unwrap();
    Guest {
        ram_hpa: ram.hpa,
        table: ram.table,
    }
}

fn s1_data(root: u64, flags: u64, addr_width: u32) -> IommuHwptVtdS1 {
    IommuHwptVtdS1 {
        flags,
        pgtbl_addr: root,
        addr_width,
        __reserved: 0,
    }
}

/// IOMMU_HWPT_INVALIDATE of `entries` laid out `entry_len` apart; returns the result and the
/// entry_num written back.
fn invalidate(
    f: &Fixture,
    hwpt_id: u32,
    data_type: u32,
    entry_len: u32,
    entries: &[IommuHwptVtdS1Invalidate],
) -> (Result<(), Errno>, u32) {
    let mut array = vec![0u8; entry_len as usize * entries.len()];
    for (i, entry) in entries.iter().enumerate() {
        let at = i * entry_len as usize;
        let n = (entry_len as usize).min(24);
        array[at..at + n].copy_from_slice(&entry.as_bytes()[..n]);
    }
    let data_uptr = if array.is_empty() {
        0
    } else {
        f.user_bytes(&array)
    };
    let mut cmd = IommuHwptInvalidate {
        size: 32,
        hwpt_id,
        data_uptr,
        data_type: HwptInvalidateDataType(data_type),
        entry_len,
        entry_num: entries.len() as u32,
        __reserved: 0,
    };
    let result = f.call(IOMMU_HWPT_INVALIDATE, &mut cmd);
    (result, cmd.entry_num)
}

fn entry(addr: u64, npages: u64, flags: u32) -> IommuHwptVtdS1Invalidate {
    IommuHwptVtdS1Invalidate {
        addr,
        npages,
        flags,
        __reserved: 0,
    }
}

#[test]
fn a_nested_hwpt_translates_through_the_guest_table_and_its_parent() {
    let f = open();
    let (dev, dev_id) = f.plug_and_bind(3);
    let ioas = f.alloc().unwrap();
    let g = guest(&f, ioas);
    let s2 = f.hwpt_paging(dev_id, ioas, NEST_PARENT).unwrap();
    let data = s1_data(g.table.root(), 0, 48);
    let vtd = HwptDataType::VTD_S1;
    let nested = f
        .hwpt_alloc(dev_id, s2, PASID_FLAG, vtd, data.as_bytes())
        .unwrap();
    assert_eq!(
        f.fd.objects(),
        vec![
            (dev_id, ObjectType::Device),
            (ioas, ObjectType::Ioas),
            (s2, ObjectType::HwptPaging),
            (nested, ObjectType::HwptNested)
        ]
    );
    assert_eq!(f.fd.get_hwpt_nested(nested).unwrap().parent().id(), s2);
    f.fd.attach(dev_id, nested, Some(5)).unwrap();

    // DMA with the PASID walks the guest's table, then the IOAS's GPA -> HPA mapping
    let hpa = dev.dma_untranslated(pasid(5), GVA + 8, false).unwrap();
    assert_eq!(hpa, g.ram_hpa + GPA + 8);
    let mut got = [0u8; 10];
    f.host.mem.read(hpa, &mut got).unwrap();
    assert_eq!(&got, b"guest data");
    assert!(dev.dma_untranslated(pasid(5), GVA + 0x1000, false).is_err());

    // the chain of holders: IOAS <- parent <- nested <- device
    assert_eq!(f.destroy(ioas), Err(Errno::EBUSY));
    assert_eq!(f.destroy(s2), Err(Errno::EBUSY));
    assert_eq!(f.destroy(nested), Err(Errno::EBUSY));

    // the guest unmaps its page: the IOTLB still holds the translation until the VMM
    // passes the guest's invalidation on
    g.table.unmap(GVA, PAGE).unwrap();
    assert_eq!(
        dev.dma_untranslated(pasid(5), GVA + 8, false),
        Ok(hpa),
        "cached"
    );
    assert_eq!(
        invalidate(&f, nested, 0, 24, &[entry(GVA, 1, 1)]),
        (Ok(()), 1)
    );
    assert!(dev.dma_untranslated(pasid(5), GVA + 8, false).is_err());

    // mapped again, warmed, then the whole first stage is invalidated
    g.table
        .map(GVA, GPA, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    assert_eq!(
        invalidate(&f, nested, 0, 24, &[entry(0, u64::MAX, 0)]),
        (Ok(()), 1)
    );
    assert_eq!(dev.dma_untranslated(pasid(5), GVA + 8, true), Ok(hpa));
    g.table.unmap(GVA, PAGE).unwrap();
    assert_eq!(
        invalidate(&f, nested, 0, 24, &[entry(0, u64::MAX, 0)]),
        (Ok(()), 1)
    );
    assert!(dev.dma_untranslated(pasid(5), GVA + 8, false).is_err());

    // the VMM unmapping guest RAM reaches the nested translation too
    g.table
        .map(GVA, GPA, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    assert_eq!(
        invalidate(&f, nested, 0, 24, &[entry(GVA, 1, 0)]),
        (Ok(()), 1)
    );
    assert!(dev.dma_untranslated(pasid(5), GVA + 8, false).is_ok());
    assert_eq!(f.unmap(ioas, 0, 2 * MIB), Ok(2 * MIB));
    assert!(dev.dma_untranslated(pasid(5), GVA + 8, false).is_err());

    // teardown in order
    f.fd.detach(dev_id, Some(5)).unwrap();
    assert_eq!(f.destroy(s2), Err(Errno::EBUSY), "the nested HWPT holds it");
    assert_eq!(f.destroy(nested), Ok(()));
    assert_eq!(f.destroy(s2), Ok(()));
    assert_eq!(f.destroy(ioas), Ok(()));
}

#[test]
fn nested_alloc_checks_in_linux_order() {
    let f = open();
    let (_dev, dev_id) = f.plug_and_bind(3);
    let ioas = f.alloc().unwrap();
    let g = guest(&f, ioas);
    let root = g.table.root();
    let vtd = HwptDataType::VTD_S1;
    let good = s1_data(root, 0, 48);
    let plain = f.hwpt_paging(dev_id, ioas, 0).unwrap();
    let s2 = f.hwpt_paging(dev_id, ioas, NEST_PARENT).unwrap();
    let other = f.alloc().unwrap();
    let auto = f.fd.attach(dev_id, other, None).unwrap();

    // iommufd's checks: flags, data, the parent
    for flags in [NEST_PARENT, DIRTY, 1 << 4] {
        assert_eq!(
            f.hwpt_alloc(dev_id, s2, flags, vtd, good.as_bytes()),
            Err(Errno::EOPNOTSUPP),
            "flags {flags:#x}"
        );
    }
    assert_eq!(
        f.hwpt_alloc(dev_id, s2, 0, HwptDataType::NONE, &[]),
        Err(Errno::EOPNOTSUPP),
        "a nested HWPT needs data"
    );
    assert_eq!(
        f.hwpt_alloc(dev_id, plain, 0, vtd, good.as_bytes()),
        Err(Errno::EINVAL),
        "not a nesting parent"
    );
    assert_eq!(
        f.hwpt_alloc(dev_id, auto, 0, vtd, good.as_bytes()),
        Err(Errno::EINVAL),
        "automatic"
    );
    // the Intel driver's: the type, then the data as copy_struct_from_user() reads it
    assert_eq!(
        f.hwpt_alloc(dev_id, s2, 0, HwptDataType::ARM_SMMUV3, good.as_bytes()),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(
        f.hwpt_alloc(dev_id, s2, 0, vtd, &good.as_bytes()[..20]),
        Err(Errno::EINVAL),
        "shorter than offsetofend(__reserved)"
    );
    let mut longer = good.as_bytes().to_vec();
    longer.extend_from_slice(&[0; 8]);
    let nested = f.hwpt_alloc(dev_id, s2, 0, vtd, &longer).unwrap();
    longer[30] = 1;
    assert_eq!(f.hwpt_alloc(dev_id, s2, 0, vtd, &longer), Err(Errno::E2BIG));
    let mut cmd = IommuHwptAlloc {
        size: 48,
        dev_id,
        pt_id: s2,
        data_type: vtd,
        data_len: 24,
        data_uptr: 0x10,
        ..Default::default()
    };
    assert_eq!(f.call(IOMMU_HWPT_ALLOC, &mut cmd), Err(Errno::EFAULT));
    // the first stage itself
    for (data, errno) in [
        (s1_data(root, 0, 39), Errno::EINVAL),
        (s1_data(root, 0, 64), Errno::EINVAL),
        (s1_data(root | 0x800, 0, 48), Errno::EINVAL),
        (s1_data(1 << 60, 0, 48), Errno::EINVAL),
        (s1_data(root, 2, 48), Errno::EOPNOTSUPP),
        (s1_data(root, 1 << 8, 48), Errno::EOPNOTSUPP),
    ] {
        assert_eq!(
            f.hwpt_alloc(dev_id, s2, 0, vtd, data.as_bytes()),
            Err(errno),
            "{data:?}"
        );
    }
    let five_level_sre = s1_data(root, 1, 57);
    let sre = f
        .hwpt_alloc(dev_id, s2, 0, vtd, five_level_sre.as_bytes())
        .unwrap();
    assert_eq!(
        f.fd.get_hwpt_nested(sre).unwrap().domain().s1(),
        vsva_iommu::NestedS1::Table {
            root,
            levels: 5,
            supervisor: true
        }
    );
    // fault_id 0 names no fault queue (ENOENT); a nested HWPT is no parent
    assert_eq!(
        f.hwpt_alloc(dev_id, s2, FAULT_ID_VALID, vtd, good.as_bytes()),
        Err(Errno::ENOENT)
    );
    assert_eq!(
        f.hwpt_alloc(dev_id, nested, 0, vtd, good.as_bytes()),
        Err(Errno::EINVAL)
    );
    assert_eq!(f.fd.objects().len(), 8, "dev, 2 IOAS, 3 paging, 2 nested");
}

#[test]
fn invalidate_checks_in_linux_order_and_counts_what_it_did() {
    let f = open();
    let (_dev, dev_id) = f.plug_and_bind(3);
    let ioas = f.alloc().unwrap();
    let g = guest(&f, ioas);
    let s2 = f.hwpt_paging(dev_id, ioas, NEST_PARENT).unwrap();
    let vtd = HwptDataType::VTD_S1;
    let nested = f
        .hwpt_alloc(
            dev_id,
            s2,
            0,
            vtd,
            s1_data(g.table.root(), 0, 48).as_bytes(),
        )
        .unwrap();
    let ok = entry(GVA, 1, 0);

    // entry_num 0 probes the type
    assert_eq!(invalidate(&f, nested, 0, 0, &[]), (Ok(()), 0));
    assert_eq!(invalidate(&f, nested, 1, 0, &[]), (Err(Errno::EINVAL), 0));
    // the command's own checks
    let mut cmd = IommuHwptInvalidate {
        size: 32,
        hwpt_id: nested,
        entry_num: 1,
        entry_len: 24,
        __reserved: 1,
        ..Default::default()
    };
    assert_eq!(
        f.call(IOMMU_HWPT_INVALIDATE, &mut cmd),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(cmd.entry_num, 0, "written back on errors too");
    cmd.__reserved = 0;
    cmd.entry_num = 1;
    assert_eq!(
        f.call(IOMMU_HWPT_INVALIDATE, &mut cmd),
        Err(Errno::EINVAL),
        "no data"
    );
    cmd.data_uptr = 0x10;
    cmd.entry_num = 1;
    cmd.entry_len = 0;
    assert_eq!(
        f.call(IOMMU_HWPT_INVALIDATE, &mut cmd),
        Err(Errno::EINVAL),
        "no length"
    );
    cmd.entry_len = 24;
    cmd.entry_num = 1;
    assert_eq!(f.call(IOMMU_HWPT_INVALIDATE, &mut cmd), Err(Errno::EFAULT));
    assert_eq!(cmd.entry_num, 0);
    assert_eq!(invalidate(&f, 99, 0, 24, &[ok]), (Err(Errno::ENOENT), 0));
    assert_eq!(invalidate(&f, s2, 0, 24, &[ok]), (Err(Errno::EINVAL), 0));
    assert_eq!(invalidate(&f, ioas, 0, 24, &[ok]), (Err(Errno::EINVAL), 0));
    assert_eq!(
        invalidate(&f, nested, 1, 24, &[ok]),
        (Err(Errno::EINVAL), 0)
    );

    // entry by entry: the count is what was done before the bad one
    let cases = [
        (entry(GVA, 1, 2), Errno::EOPNOTSUPP),
        (
            IommuHwptVtdS1Invalidate {
                __reserved: 1,
                ..ok
            },
            Errno::EOPNOTSUPP,
        ),
        (entry(GVA + 0x800, 1, 0), Errno::EINVAL),
        (entry(0x1000, u64::MAX, 0), Errno::EINVAL),
    ];
    for (bad, errno) in cases {
        assert_eq!(
            invalidate(&f, nested, 0, 24, &[ok, ok, bad, ok]),
            (Err(errno), 2),
            "{bad:?}"
        );
    }
    // npages 0 does nothing and counts; a range past the top invalidates everything
    assert_eq!(
        invalidate(&f, nested, 0, 24, &[entry(GVA, 0, 0), entry(!0xfff, 2, 1)]),
        (Ok(()), 2)
    );
    // entry_len: below 24 is EINVAL; longer entries need zero tails
    assert_eq!(
        invalidate(&f, nested, 0, 16, &[ok]),
        (Err(Errno::EINVAL), 0)
    );
    assert_eq!(invalidate(&f, nested, 0, 32, &[ok, ok, ok]), (Ok(()), 3));
    let mut array = vec![0u8; 64];
    array[..24].copy_from_slice(ok.as_bytes());
    array[32..56].copy_from_slice(ok.as_bytes());
    array[60] = 1;
    let mut cmd = IommuHwptInvalidate {
        size: 32,
        hwpt_id: nested,
        data_uptr: f.user_bytes(&array),
        data_type: HwptInvalidateDataType::VTD_S1,
        entry_len: 32,
        entry_num: 2,
        __reserved: 0,
    };
    assert_eq!(f.call(IOMMU_HWPT_INVALIDATE, &mut cmd), Err(Errno::E2BIG));
    assert_eq!(cmd.entry_num, 1);
}

/// IOMMU_HWPT_SET_DIRTY_TRACKING.
fn set_dirty(f: &Fixture, hwpt_id: u32, flags: u32) -> Result<(), Errno> {
    let mut cmd = IommuHwptSetDirtyTracking {
        size: 16,
        flags,
        hwpt_id,
        __reserved: 0,
    };
    f.call(IOMMU_HWPT_SET_DIRTY_TRACKING, &mut cmd)
}

/// IOMMU_HWPT_GET_DIRTY_BITMAP of `(iova, length, page_size)` into a fresh bitmap of
/// `(bytes, fill)`; returns the bitmap.
fn dirty_bitmap(
    f: &Fixture,
    hwpt_id: u32,
    flags: u32,
    (iova, length, page_size): (u64, u64, u64),
    (bytes, fill): (usize, u8),
) -> Result<Vec<u8>, Errno> {
    let data = f.user_bytes(&vec![fill; bytes]);
    let mut cmd = IommuHwptGetDirtyBitmap {
        size: 48,
        hwpt_id,
        flags,
        __reserved: 0,
        iova,
        length,
        page_size,
        data,
    };
    f.call(IOMMU_HWPT_GET_DIRTY_BITMAP, &mut cmd)?;
    Ok(f.read_user(data, bytes))
}

#[test]
fn dirty_tracking_reports_device_writes_in_the_bitmap() {
    let f = open();
    let (dev, dev_id) = f.plug_and_bind(3);
    let ioas = f.alloc().unwrap();
    let small = f.buffer(8 * PAGE);
    f.map(ioas, FIXED_RW, small, 8 * PAGE, 0x10_0000).unwrap();
    let big =
        f.p.mmap(
            None,
            2 * MIB,
            Prot::RW,
            MapFlags::HUGE_2M | MapFlags::POPULATE,
        )
        .unwrap();
    f.map(ioas, FIXED_RW, big.raw(), 2 * MIB, 0x20_0000)
        .unwrap();
    let hwpt = f.hwpt_paging(dev_id, ioas, DIRTY).unwrap();
    f.fd.attach(dev_id, hwpt, None).unwrap();
    let write = |iova| dev.dma_untranslated(None, iova, true).unwrap();
    let read = |iova| dev.dma_untranslated(None, iova, false).unwrap();
    let small_bits =
        |flags, fill| dirty_bitmap(&f, hwpt, flags, (0x10_0000, 8 * PAGE, PAGE), (1, fill));

    // tracking is off until enabled
    write(0x10_1000);
    assert_eq!(small_bits(0, 0), Ok(vec![0]));
    // enabling starts from a clean slate; reads are not writes
    assert_eq!(set_dirty(&f, hwpt, 1), Ok(()));
    write(0x10_2000);
    read(0x10_3000);
    write(0x10_7ff8);
    assert_eq!(small_bits(1, 0), Ok(vec![0b1000_0100]), "NO_CLEAR");
    assert_eq!(
        small_bits(0, 0x01),
        Ok(vec![0b1000_0101]),
        "bits are only set"
    );
    assert_eq!(small_bits(0, 0), Ok(vec![0]), "cleared by the read");
    // the same page written again is marked again; 8 KiB units
    write(0x10_2008);
    write(0x10_7000);
    assert_eq!(
        dirty_bitmap(&f, hwpt, 0, (0x10_0000, 8 * PAGE, 2 * PAGE), (1, 0)),
        Ok(vec![0b0000_1010])
    );
    // a write to a 2 MiB page dirties all of it: 512 bits of 4 KiB, one of 2 MiB
    write(0x20_1234);
    assert_eq!(
        dirty_bitmap(&f, hwpt, 1, (0x20_0000, 2 * MIB, PAGE), (64, 0)),
        Ok(vec![0xff; 64])
    );
    assert_eq!(
        dirty_bitmap(&f, hwpt, 0, (0x20_0000, 2 * MIB, 2 * MIB), (1, 0)),
        Ok(vec![1])
    );
    // a range with a hole is EINVAL
    write(0x10_0000);
    assert_eq!(
        dirty_bitmap(&f, hwpt, 0, (0x10_0000, 0x30_0000, PAGE), (96, 0)),
        Err(Errno::EINVAL)
    );
    // off again: nothing is recorded
    assert_eq!(set_dirty(&f, hwpt, 0), Ok(()));
    write(0x10_4000);
    assert_eq!(small_bits(0, 0), Ok(vec![0]));
    // and turning it back on clears what was left
    assert_eq!(set_dirty(&f, hwpt, 1), Ok(()));
    write(0x10_5000);
    set_dirty(&f, hwpt, 0).unwrap();
    set_dirty(&f, hwpt, 1).unwrap();
    assert_eq!(small_bits(0, 0), Ok(vec![0]));
}

#[test]
fn dirty_commands_check_in_linux_order() {
    let f = open();
    let (_dev, dev_id) = f.plug_and_bind(3);
    let ioas = f.alloc().unwrap();
    let buf = f.buffer(8 * PAGE);
    f.map(ioas, FIXED_RW, buf, 8 * PAGE, 0x10_0000).unwrap();
    let hwpt = f.hwpt_paging(dev_id, ioas, DIRTY).unwrap();
    let plain = f.hwpt_paging(dev_id, ioas, 0).unwrap();
    let get = |hwpt, flags, iova, length, page_size| {
        dirty_bitmap(&f, hwpt, flags, (iova, length, page_size), (8, 0)).map(|_| ())
    };

    // SET_DIRTY_TRACKING
    assert_eq!(set_dirty(&f, hwpt, 2), Err(Errno::EOPNOTSUPP));
    assert_eq!(set_dirty(&f, 99, 1), Err(Errno::ENOENT));
    assert_eq!(set_dirty(&f, ioas, 1), Err(Errno::ENOENT));
    assert_eq!(set_dirty(&f, plain, 1), Err(Errno::EOPNOTSUPP));
    let mut cmd = IommuHwptSetDirtyTracking {
        size: 16,
        flags: 1,
        hwpt_id: hwpt,
        __reserved: 5,
    };
    assert_eq!(
        f.call(IOMMU_HWPT_SET_DIRTY_TRACKING, &mut cmd),
        Ok(()),
        "__reserved is not checked, as in Linux"
    );

    // GET_DIRTY_BITMAP
    assert_eq!(get(hwpt, 2, 0x10_0000, PAGE, PAGE), Err(Errno::EOPNOTSUPP));
    let mut cmd = IommuHwptGetDirtyBitmap {
        size: 48,
        hwpt_id: hwpt,
        __reserved: 1,
        iova: 0x10_0000,
        length: PAGE,
        page_size: PAGE,
        data: f.buffer(8),
        ..Default::default()
    };
    assert_eq!(
        f.call(IOMMU_HWPT_GET_DIRTY_BITMAP, &mut cmd),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(get(99, 0, 0x10_0000, PAGE, PAGE), Err(Errno::ENOENT));
    assert_eq!(get(ioas, 0, 0x10_0000, PAGE, PAGE), Err(Errno::ENOENT));
    assert_eq!(get(hwpt, 0, 0x10_0000, 0, PAGE), Err(Errno::EOVERFLOW));
    assert_eq!(
        get(hwpt, 0, u64::MAX - PAGE + 1, 2 * PAGE, PAGE),
        Err(Errno::EOVERFLOW)
    );
    assert_eq!(
        get(hwpt, 0, 0x10_0800, PAGE, PAGE),
        Err(Errno::EINVAL),
        "IOAS alignment"
    );
    assert_eq!(get(hwpt, 0, 0x10_0000, 0x1800, 512), Err(Errno::EINVAL));
    assert_eq!(
        get(hwpt, 0, 0x10_0000, PAGE, 0),
        Err(Errno::EINVAL),
        "page_size 0"
    );
    assert_eq!(
        get(hwpt, 0, 0x10_1000, 2 * PAGE, 2 * PAGE),
        Err(Errno::EINVAL)
    );
    assert_eq!(get(plain, 0, 0x10_0000, PAGE, PAGE), Err(Errno::EOPNOTSUPP));
    assert_eq!(
        get(hwpt, 0, 0x20_0000, PAGE, PAGE),
        Err(Errno::EINVAL),
        "not mapped"
    );
    assert_eq!(get(hwpt, 0, 0x10_0000, 8 * PAGE, PAGE), Ok(()));
    assert_eq!(
        get(hwpt, 0, 0x10_0000, 8 * PAGE, 512),
        Ok(()),
        "units below a page"
    );
    cmd.__reserved = 0;
    cmd.data = 0x10;
    assert_eq!(
        f.call(IOMMU_HWPT_GET_DIRTY_BITMAP, &mut cmd),
        Err(Errno::EFAULT)
    );
}
