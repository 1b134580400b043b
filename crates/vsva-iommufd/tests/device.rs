//! Devices bound to an iommufd: binding, attaching to IOASes (automatic HWPTs) and HWPTs,
//! PASIDs, reserved regions, the object lifetimes that follow, and `IOMMU_GET_HW_INFO` — on
//! the demo platform's VT-d unit, with DMA through the unit as the proof. Expected values are
//! worked out from Linux's `drivers/iommu/iommufd/device.c` and the VT-d registers.

mod common;

use common::{FIXED_RW, Fixture, PAGE, open, open_with};
use vsva_iommu::DeviceCaps;
use vsva_iommufd::EADDRINUSE;
use vsva_iommufd::abi::ioctl::IOMMU_GET_HW_INFO;
use vsva_iommufd::abi::{
    Errno, HwCapabilities, HwInfoFlags, HwInfoType, HwptAllocFlags, IoasMapFlags, IommuHwInfo,
};
use vsva_iommufd::{DeviceInfo, ObjectType};
use vsva_mem::{Access, Pasid, Rid, Va};
use vsva_pcie::Mmio;
use vsva_vtd::VtdConfig;
use vsva_vtd::spec::registers::offset;

use zerocopy::IntoBytes;

/// The x86 interrupt window VT-d reports as every device's reserved region.
const WINDOW: (u64, u64) = (0xfee0_0000, 0xfeef_ffff);
/// The last IOVA of the default unit's paging domains (MGAW 57).
const APERTURE_LAST: u64 = (1 << 57) - 1;

fn pasid(raw: u32) -> Option<Pasid> {
    Some(Pasid::new(raw).unwrap())
}

/// Maps `pages` fresh pages of the process at `iova` of `ioas`, the first 8 bytes of each
/// page holding its index; returns the user address.
fn map_pages(f: &Fixture, ioas: u32, iova: u64, pages: u64) -> u64 {
    let buf = f.buffer(pages * PAGE);
    for i in 0..pages {
        f.p.write_bytes(Va::new(buf + i * PAGE), &i.to_le_bytes())
            .unwrap();
    }
    assert_eq!(f.map(ioas, FIXED_RW, buf, pages * PAGE, iova), Ok(iova));
    buf
}

#[test]
fn dma_through_an_automatic_hwpt_reaches_the_mapped_memory_until_unmap() {
    let f = open();
    let (dev, dev_id) = f.plug_and_bind(3);
    let ioas = f.alloc().unwrap();
    let buf = map_pages(&f, ioas, 0x10_0000, 4);
    f.p.write_bytes(Va::new(buf + PAGE + 8), b"from the VMM")
        .unwrap();
    assert!(
        dev.dma_untranslated(None, 0x10_1008, false).is_err(),
        "bound but not attached: blocked"
    );

    let hwpt = f.fd.attach(dev_id, ioas, None).unwrap();
    assert_eq!(
        f.fd.objects(),
        vec![
            (dev_id, ObjectType::Device),
            (ioas, ObjectType::Ioas),
            (hwpt, ObjectType::HwptPaging)
        ]
    );
    assert!(f.fd.get_hwpt_paging(hwpt).unwrap().auto_domain());
    assert_eq!(f.p.locked_pages(), 4, "a domain pins the IOAS's pages");

    let hpa = dev.dma_untranslated(None, 0x10_1008, false).unwrap();
    let want =
        f.p.translate(Va::new(buf + PAGE + 8), Access::READ)
            .unwrap()
            .output;
    assert_eq!(hpa, want);
    let mut got = [0u8; 12];
    f.host.mem.read(hpa, &mut got).unwrap();
    assert_eq!(&got, b"from the VMM");
    // a device write lands in the process's page
    let hpa = dev.dma_untranslated(None, 0x10_3010, true).unwrap();
    f.host.mem.write(hpa, b"from the device").unwrap();
    assert_eq!(f.read_user(buf + 3 * PAGE + 0x10, 15), b"from the device");

    // a second device attached to the IOAS shares the automatic HWPT
    let (dev2, dev2_id) = f.plug_and_bind(4);
    assert_eq!(f.fd.attach(dev2_id, ioas, None), Ok(hwpt));
    assert!(dev2.dma_untranslated(None, 0x10_0000, false).is_ok());

    // unmapping reaches the unit: neither device reaches the pages any more
    assert_eq!(f.unmap(ioas, 0x10_0000, 4 * PAGE), Ok(4 * PAGE));
    assert!(dev.dma_untranslated(None, 0x10_1008, false).is_err());
    assert!(dev2.dma_untranslated(None, 0x10_0000, false).is_err());
    assert_eq!(f.p.locked_pages(), 0);

    // a new mapping is filled into the attached domain at once
    map_pages(&f, ioas, 0x20_0000, 1);
    assert!(dev.dma_untranslated(None, 0x20_0000, true).is_ok());
}

#[test]
fn destroy_is_ebusy_along_the_chain_device_hwpt_ioas() {
    let f = open();
    let (_dev, dev_id) = f.plug_and_bind(3);
    let ioas = f.alloc().unwrap();
    let auto = f.fd.attach(dev_id, ioas, None).unwrap();
    // the binder holds the device; the attachment holds the HWPT; the HWPT holds the IOAS
    assert_eq!(f.destroy(dev_id), Err(Errno::EBUSY));
    assert_eq!(f.destroy(auto), Err(Errno::EBUSY));
    assert_eq!(f.destroy(ioas), Err(Errno::EBUSY));
    // the automatic HWPT goes with its last device
    assert_eq!(f.fd.detach(dev_id, None), Ok(()));
    assert_eq!(f.fd.get_hwpt_paging(auto).err(), Some(Errno::ENOENT));
    assert_eq!(f.destroy(auto), Err(Errno::ENOENT));
    assert_eq!(f.destroy(ioas), Ok(()));

    // a HWPT the user allocated stays after detach, until destroyed
    let ioas = f.alloc().unwrap();
    let hwpt = f.hwpt_paging(dev_id, ioas, 0).unwrap();
    assert_eq!(f.destroy(ioas), Err(Errno::EBUSY), "held by the HWPT");
    assert_eq!(f.fd.attach(dev_id, hwpt, None), Ok(hwpt));
    assert_eq!(f.destroy(hwpt), Err(Errno::EBUSY), "held by the device");
    f.fd.detach(dev_id, None).unwrap();
    assert_eq!(f.fd.detach(dev_id, None), Ok(()), "detaching twice is fine");
    assert_eq!(f.destroy(ioas), Err(Errno::EBUSY));
    assert_eq!(f.destroy(hwpt), Ok(()));
    assert_eq!(f.destroy(ioas), Ok(()));

    // only the binder destroys a device
    assert_eq!(f.destroy(dev_id), Err(Errno::EBUSY));
    assert_eq!(f.fd.unbind_device(dev_id), Ok(()));
    assert_eq!(f.fd.unbind_device(dev_id), Err(Errno::ENOENT));
    assert!(f.fd.objects().is_empty());
}

#[test]
fn the_interrupt_window_is_reserved_while_a_device_is_attached() {
    let f = open();
    let (dev, dev_id) = f.plug_and_bind(3);
    let (_dev2, dev2_id) = f.plug_and_bind(4);
    let ioas = f.alloc().unwrap();
    assert_eq!(f.ranges(ioas), vec![(0, u64::MAX)]);

    f.fd.attach(dev_id, ioas, None).unwrap();
    let attached = vec![(0, WINDOW.0 - 1), (WINDOW.1 + 1, APERTURE_LAST)];
    assert_eq!(f.ranges(ioas), attached);
    // the window cannot be mapped (iopt_check_iova: reserved is EINVAL)
    let buf = f.buffer(PAGE);
    assert_eq!(
        f.map(ioas, FIXED_RW, buf, PAGE, WINDOW.0 + 0x1000),
        Err(Errno::EINVAL)
    );
    // and DMA to it is an interrupt, never translated
    assert!(dev.dma_untranslated(None, WINDOW.0, true).is_err());

    // two devices reserve the same window; it stays while either is attached
    f.fd.attach(dev2_id, ioas, None).unwrap();
    f.fd.detach(dev_id, None).unwrap();
    assert_eq!(f.ranges(ioas), attached);
    f.fd.detach(dev2_id, None).unwrap();
    assert_eq!(
        f.ranges(ioas),
        vec![(0, u64::MAX)],
        "and the aperture is gone too"
    );

    // a mapping covering the window makes the attach fail: EADDRINUSE, nothing left behind
    assert_eq!(f.map(ioas, FIXED_RW, buf, PAGE, WINDOW.0), Ok(WINDOW.0));
    assert_eq!(f.fd.attach(dev_id, ioas, None), Err(EADDRINUSE));
    let hwpt = f.hwpt_paging(dev_id, ioas, 0).unwrap();
    assert_eq!(f.fd.attach(dev_id, hwpt, None), Err(EADDRINUSE));
    assert_eq!(
        f.fd.objects(),
        vec![
            (dev_id, ObjectType::Device),
            (dev2_id, ObjectType::Device),
            (ioas, ObjectType::Ioas),
            (hwpt, ObjectType::HwptPaging)
        ]
    );
    assert!(f.fd.get_device(dev_id).unwrap().attached().is_empty());
    // once it is gone the attach works; PASIDs do not reserve anything
    f.unmap(ioas, WINDOW.0, PAGE).unwrap();
    let pasid_hwpt = f
        .hwpt_paging(dev_id, ioas, HwptAllocFlags::PASID.bits())
        .unwrap();
    f.fd.attach(dev_id, pasid_hwpt, Some(9)).unwrap();
    assert_eq!(f.ranges(ioas), vec![(0, APERTURE_LAST)]);
    f.fd.attach(dev_id, pasid_hwpt, None).unwrap();
    assert_eq!(f.ranges(ioas), attached);
}

#[test]
fn replace_moves_the_device_and_its_reserved_regions_to_another_ioas() {
    let f = open();
    let (dev, dev_id) = f.plug_and_bind(3);
    let (a, b) = (f.alloc().unwrap(), f.alloc().unwrap());
    let buf_a = map_pages(&f, a, 0x10_0000, 1);
    let buf_b = map_pages(&f, b, 0x10_0000, 1);
    assert_eq!(
        f.fd.replace(dev_id, a, None),
        Err(Errno::EINVAL),
        "not attached"
    );
    let hwpt_a = f.fd.attach(dev_id, a, None).unwrap();
    let read = |iova| dev.dma_untranslated(None, iova, false).unwrap();
    let user = |buf: u64| f.p.translate(Va::new(buf), Access::READ).unwrap().output;
    assert_eq!(read(0x10_0000), user(buf_a));

    assert_eq!(f.fd.replace(dev_id, a, None), Ok(hwpt_a), "already there");
    let hwpt_b = f.fd.replace(dev_id, b, None).unwrap();
    assert_ne!(hwpt_b, hwpt_a);
    assert_eq!(read(0x10_0000), user(buf_b));
    assert_eq!(
        f.fd.get_hwpt_paging(hwpt_a).err(),
        Some(Errno::ENOENT),
        "the old automatic HWPT went with its device"
    );
    assert_eq!(f.ranges(a), vec![(0, u64::MAX)]);
    assert_eq!(
        f.ranges(b),
        vec![(0, WINDOW.0 - 1), (WINDOW.1 + 1, APERTURE_LAST)]
    );
    // a failing replace leaves the attachment as it was
    let c = f.alloc().unwrap();
    let buf_c = f.buffer(PAGE);
    f.map(c, FIXED_RW, buf_c, PAGE, WINDOW.0).unwrap();
    let hwpt_c = f.hwpt_paging(dev_id, c, 0).unwrap();
    assert_eq!(f.fd.replace(dev_id, hwpt_c, None), Err(EADDRINUSE));
    assert_eq!(read(0x10_0000), user(buf_b));
    assert_eq!(
        f.fd.get_device(dev_id).unwrap().attached(),
        vec![(0, hwpt_b)]
    );
}

#[test]
fn attach_checks_in_linux_order() {
    let f = open();
    let (dev, dev_id) = f.plug_and_bind(3);
    let ioas = f.alloc().unwrap();
    map_pages(&f, ioas, 0x10_0000, 1);
    assert_eq!(f.fd.attach(99, ioas, None), Err(Errno::ENOENT), "no device");
    assert_eq!(
        f.fd.attach(dev_id, 99, None),
        Err(Errno::ENOENT),
        "no object"
    );
    assert_eq!(
        f.fd.attach(dev_id, dev_id, None),
        Err(Errno::EINVAL),
        "not a page table"
    );
    assert_eq!(f.fd.attach(dev_id, ioas, Some(0)), Err(Errno::EINVAL));
    // a PASID cannot use an automatic HWPT, which is not PASID-compatible
    assert_eq!(f.fd.attach(dev_id, ioas, Some(5)), Err(Errno::EINVAL));
    assert_eq!(f.fd.objects().len(), 2, "no HWPT left behind");

    let auto = f.fd.attach(dev_id, ioas, None).unwrap();
    assert_eq!(f.fd.attach(dev_id, ioas, None), Err(Errno::EBUSY));
    assert_eq!(f.fd.attach(dev_id, auto, None), Err(Errno::EBUSY));
    let plain = f.hwpt_paging(dev_id, ioas, 0).unwrap();
    assert_eq!(f.fd.attach(dev_id, plain, None), Err(Errno::EBUSY));

    // PASIDs need a PASID-compatible HWPT, and so does the RID while PASIDs are attached
    let pasid_hwpt = f
        .hwpt_paging(dev_id, ioas, HwptAllocFlags::PASID.bits())
        .unwrap();
    assert_eq!(
        f.fd.attach(dev_id, plain, Some(5)),
        Err(Errno::EINVAL),
        "HWPT not PASID-compatible"
    );
    assert_eq!(
        f.fd.attach(dev_id, pasid_hwpt, Some(5)),
        Err(Errno::EINVAL),
        "the RID's HWPT is not PASID-compatible"
    );
    f.fd.replace(dev_id, pasid_hwpt, None).unwrap();
    assert_eq!(f.fd.attach(dev_id, pasid_hwpt, Some(5)), Ok(pasid_hwpt));
    assert!(dev.dma_untranslated(pasid(5), 0x10_0000, true).is_ok());
    assert!(dev.dma_untranslated(pasid(6), 0x10_0000, true).is_err());
    assert_eq!(f.fd.attach(dev_id, pasid_hwpt, Some(5)), Err(Errno::EBUSY));
    assert_eq!(
        f.fd.replace(dev_id, plain, None),
        Err(Errno::EINVAL),
        "a PASID is attached"
    );
    assert_eq!(
        f.fd.get_device(dev_id).unwrap().attached(),
        vec![(0, pasid_hwpt), (5, pasid_hwpt)]
    );
    f.fd.detach(dev_id, Some(5)).unwrap();
    assert!(dev.dma_untranslated(pasid(5), 0x10_0000, true).is_err());
    assert_eq!(f.fd.replace(dev_id, plain, None), Ok(plain));
}

#[test]
fn pasids_beyond_the_devices_width_are_einval() {
    let f = open();
    let caps = DeviceCaps {
        pasid_bits: 8,
        ats: false,
        pri: false,
    };
    let (dev, info) = f.plug_with(3, caps);
    let dev_id = f.fd.bind_device(info).unwrap();
    let ioas = f.alloc().unwrap();
    map_pages(&f, ioas, 0x10_0000, 1);
    let hwpt = f
        .hwpt_paging(dev_id, ioas, HwptAllocFlags::PASID.bits())
        .unwrap();
    assert_eq!(f.fd.attach(dev_id, hwpt, Some(256)), Err(Errno::EINVAL));
    assert_eq!(f.fd.attach(dev_id, hwpt, Some(255)), Ok(hwpt));
    assert!(dev.dma_untranslated(pasid(255), 0x10_0000, false).is_ok());
}

#[test]
fn binding_rules() {
    let f = open();
    let (_dev, info) = f.plug(3);
    let dev_id = f.fd.bind_device(info).unwrap();
    assert_eq!(f.fd.bind_device(info), Err(Errno::EINVAL), "bound already");
    assert_eq!(f.fd.get_device(dev_id).unwrap().rid(), info.rid);
    f.fd.unbind_device(dev_id).unwrap();
    assert_eq!(f.fd.bind_device(info), Ok(dev_id), "the ID is free again");

    // a device the IOMMU core does not know binds, but cannot be attached: ENODEV
    let stranger = DeviceInfo::new(Rid::from_bdf(0, 9, 0).unwrap(), DeviceCaps::default());
    let stranger_id = f.fd.bind_device(stranger).unwrap();
    let ioas = f.alloc().unwrap();
    assert_eq!(f.fd.attach(stranger_id, ioas, None), Err(Errno::ENODEV));
    assert_eq!(
        f.fd.objects(),
        vec![
            (dev_id, ObjectType::Device),
            (stranger_id, ObjectType::Device),
            (ioas, ObjectType::Ioas)
        ]
    );
}

#[test]
fn unbinding_and_closing_detach_everything() {
    let f = open();
    let (dev, dev_id) = f.plug_and_bind(3);
    let ioas = f.alloc().unwrap();
    map_pages(&f, ioas, 0x10_0000, 2);
    let hwpt = f
        .hwpt_paging(dev_id, ioas, HwptAllocFlags::PASID.bits())
        .unwrap();
    f.fd.attach(dev_id, hwpt, None).unwrap();
    f.fd.attach(dev_id, hwpt, Some(3)).unwrap();
    assert!(dev.dma_untranslated(pasid(3), 0x10_1000, false).is_ok());
    f.fd.unbind_device(dev_id).unwrap();
    assert!(dev.dma_untranslated(None, 0x10_1000, false).is_err());
    assert!(dev.dma_untranslated(pasid(3), 0x10_1000, false).is_err());
    assert_eq!(f.ranges(ioas), vec![(0, APERTURE_LAST)], "window released");
    assert_eq!(f.destroy(hwpt), Ok(()));

    // closing the context with a device bound and attached
    let (dev2, dev2_id) = f.plug_and_bind(4);
    f.fd.attach(dev2_id, ioas, None).unwrap();
    assert!(dev2.dma_untranslated(None, 0x10_0000, false).is_ok());
    let Fixture { p, fd, host, .. } = f;
    drop(fd);
    assert!(dev2.dma_untranslated(None, 0x10_0000, false).is_err());
    assert_eq!(p.locked_pages(), 0);
    // and the device can be attached again by the next user
    let again = vsva_iommufd::Iommufd::new(p.clone(), host.iommu.clone());
    let id = again
        .bind_device(DeviceInfo::new(dev2.rid(), DeviceCaps::default()))
        .unwrap();
    let mut alloc = vsva_iommufd::abi::IommuIoasAlloc {
        size: 12,
        ..Default::default()
    };
    again.ioas_alloc(&mut alloc).unwrap();
    assert!(again.attach(id, alloc.out_ioas_id, None).is_ok());
}

/// IOMMU_GET_HW_INFO through the ioctl; the data buffer is `data_len` bytes of 0xee.
fn hw_info(f: &Fixture, dev_id: u32, flags: u32, data_type: u32, data_len: u32) -> HwInfoCall {
    let data = f.user_bytes(&vec![0xee; data_len.max(1) as usize]);
    let mut cmd = IommuHwInfo {
        size: 40,
        flags,
        dev_id,
        data_len,
        data_uptr: data,
        data_type: HwInfoType(data_type),
        ..Default::default()
    };
    let result = f.call(IOMMU_GET_HW_INFO, &mut cmd);
    HwInfoCall {
        result,
        cmd,
        data: f.read_user(data, data_len as usize),
    }
}

struct HwInfoCall {
    result: Result<(), Errno>,
    cmd: IommuHwInfo,
    data: Vec<u8>,
}

#[test]
fn hw_info_is_the_units_cap_and_ecap() {
    let f = open();
    let (_dev, dev_id) = f.plug_and_bind(3);
    let cap = f.host.unit.read(offset::CAP, 8);
    let ecap = f.host.unit.read(offset::ECAP, 8);
    let mut want = Vec::new();
    want.extend_from_slice(&1u32.to_le_bytes()); // IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17
    want.extend_from_slice(&0u32.to_le_bytes());
    want.extend_from_slice(&cap.to_le_bytes());
    want.extend_from_slice(&ecap.to_le_bytes());

    let call = hw_info(&f, dev_id, 0, 0, 24);
    assert_eq!(call.result, Ok(()));
    assert_eq!(call.data, want);
    assert_eq!(call.cmd.data_len, 24);
    assert_eq!(call.cmd.data_type, HwInfoType::INTEL_VTD);
    // ECAP.PSS + 1 = 20 and the device's 20-bit PASIDs
    assert_eq!(call.cmd.out_max_pasid_log2, 20);
    assert_eq!(
        HwCapabilities::from_bits(call.cmd.out_capabilities),
        Some(HwCapabilities::DIRTY_TRACKING | HwCapabilities::PCI_ATS_NOT_SUPPORTED)
    );

    // a short buffer gets the first bytes, the length says how much there is
    let call = hw_info(&f, dev_id, 0, 0, 8);
    assert_eq!(call.result, Ok(()));
    assert_eq!(call.data, &want[..8]);
    assert_eq!(call.cmd.data_len, 24);
    // a longer one gets the data and zeros
    let call = hw_info(&f, dev_id, 0, 0, 40);
    assert_eq!(&call.data[..24], &want[..]);
    assert_eq!(&call.data[24..], &[0; 16]);
    assert_eq!(call.cmd.data_len, 24);
    // none at all: only the length comes back
    let mut cmd = IommuHwInfo {
        size: 40,
        dev_id,
        ..Default::default()
    };
    assert_eq!(f.call(IOMMU_GET_HW_INFO, &mut cmd), Ok(()));
    assert_eq!((cmd.data_len, cmd.data_type), (24, HwInfoType::INTEL_VTD));

    // the input type: ignored without INPUT_TYPE, checked with it
    let input = HwInfoFlags::INPUT_TYPE.bits();
    assert_eq!(hw_info(&f, dev_id, 0, 77, 24).result, Ok(()));
    assert_eq!(hw_info(&f, dev_id, input, 1, 24).result, Ok(()));
    assert_eq!(hw_info(&f, dev_id, input, 0, 24).result, Ok(()));
    assert_eq!(
        hw_info(&f, dev_id, input, 2, 24).result,
        Err(Errno::EOPNOTSUPP),
        "ARM_SMMUV3 from a VT-d unit"
    );
    // bad inputs, in order
    assert_eq!(hw_info(&f, dev_id, 2, 0, 24).result, Err(Errno::EOPNOTSUPP));
    let mut cmd = IommuHwInfo {
        size: 40,
        dev_id: 99,
        __reserved: [0, 1, 0],
        ..Default::default()
    };
    assert_eq!(f.call(IOMMU_GET_HW_INFO, &mut cmd), Err(Errno::EOPNOTSUPP));
    cmd.__reserved = [0; 3];
    assert_eq!(f.call(IOMMU_GET_HW_INFO, &mut cmd), Err(Errno::ENOENT));
    let ioas = f.alloc().unwrap();
    assert_eq!(hw_info(&f, ioas, 0, 0, 24).result, Err(Errno::ENOENT));
    let mut cmd = IommuHwInfo {
        size: 40,
        dev_id,
        data_len: 24,
        data_uptr: 0x10,
        ..Default::default()
    };
    assert_eq!(f.call(IOMMU_GET_HW_INFO, &mut cmd), Err(Errno::EFAULT));

    // an older caller's 32-byte struct does not get out_capabilities
    let mut bytes = IommuHwInfo {
        size: 32,
        dev_id,
        ..Default::default()
    }
    .as_bytes()
    .to_vec();
    bytes[32..].copy_from_slice(&[0xaa; 8]);
    assert_eq!(f.raw(u64::from(IOMMU_GET_HW_INFO), &mut bytes), Ok(()));
    assert_eq!(&bytes[12..16], &24u32.to_le_bytes());
    assert_eq!(bytes[28], 20);
    assert_eq!(&bytes[32..], &[0xaa; 8]);
}

#[test]
fn hw_info_capabilities_follow_the_unit_and_the_device() {
    let cfg = VtdConfig {
        ss_ad: false,
        pasid_bits: 16,
        ..VtdConfig::default()
    };
    let f = open_with(cfg);
    // ATS and PASID Execute/Privileged enabled on a 20-bit device of a 16-bit unit
    let (_dev, info) = f.plug_with(
        3,
        DeviceCaps {
            pasid_bits: 20,
            ats: true,
            pri: false,
        },
    );
    let info = DeviceInfo {
        pasid_exec: true,
        pasid_priv: true,
        ..info
    };
    let dev_id = f.fd.bind_device(info).unwrap();
    let call = hw_info(&f, dev_id, 0, 0, 24);
    assert_eq!(call.cmd.out_max_pasid_log2, 16);
    assert_eq!(
        HwCapabilities::from_bits(call.cmd.out_capabilities),
        Some(HwCapabilities::PCI_PASID_EXEC | HwCapabilities::PCI_PASID_PRIV)
    );
    // without PASIDs, neither the width nor the PASID capabilities are reported
    let (_dev, info) = f.plug_with(4, DeviceCaps::default());
    let info = DeviceInfo {
        pasid_exec: true,
        pasid_priv: true,
        ..info
    };
    let dev_id = f.fd.bind_device(info).unwrap();
    let call = hw_info(&f, dev_id, 0, 0, 24);
    assert_eq!(call.cmd.out_max_pasid_log2, 0);
    assert_eq!(
        HwCapabilities::from_bits(call.cmd.out_capabilities),
        Some(HwCapabilities::PCI_ATS_NOT_SUPPORTED)
    );
}

#[test]
fn read_only_mappings_cannot_reach_a_nesting_parent() {
    // Linux's Intel driver refuses them there (erratum 772415), and GET_HW_INFO says so.
    let f = open();
    let (_dev, dev_id) = f.plug_and_bind(3);
    let ioas = f.alloc().unwrap();
    let buf = f.buffer(2 * PAGE);
    let ro = IoasMapFlags::READABLE.bits() | IoasMapFlags::FIXED_IOVA.bits();
    f.map(ioas, ro, buf, PAGE, 0x10_0000).unwrap();
    let nest = HwptAllocFlags::NEST_PARENT.bits();
    assert_eq!(f.hwpt_paging(dev_id, ioas, nest), Err(Errno::EINVAL));
    f.unmap(ioas, 0, u64::MAX).unwrap();
    let parent = f.hwpt_paging(dev_id, ioas, nest).unwrap();
    assert_eq!(f.map(ioas, ro, buf, PAGE, 0x10_0000), Err(Errno::EINVAL));
    assert_eq!(f.map(ioas, FIXED_RW, buf, PAGE, 0x10_0000), Ok(0x10_0000));
    assert_eq!(f.destroy(parent), Ok(()));
}
