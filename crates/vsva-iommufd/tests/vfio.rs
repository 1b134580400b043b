//! The VFIO device cdev ioctls that bind a device to an iommufd and attach it, driven with
//! the bytes of their uAPI structs as a VMM issues them on `/dev/vfio/devices/vfioN`.
//! Expected values are worked out from Linux's `drivers/vfio/device_cdev.c`,
//! `drivers/vfio/vfio_main.c` and `drivers/vfio/iommufd.c`.

mod common;

use std::sync::Arc;

use common::{FIXED_RW, Fixture, PAGE, open};
use vsva_iommufd::abi::ioctl::{
    VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_BIND_IOMMUFD, VFIO_DEVICE_DETACH_IOMMUFD_PT, io,
};
use vsva_iommufd::abi::{
    Errno, HwptAllocFlags, VfioDeviceAttachIommufdPt, VfioDeviceBindIommufd,
    VfioDeviceDetachIommufdPt,
};
use vsva_iommufd::{Iommufd, ObjectType, VfioDevice, VfioDeviceFile};
use vsva_mem::Pasid;
use zerocopy::IntoBytes;

/// The iommufd's descriptor in the tests; 4 is a file that is not an iommufd.
const IOMMUFD: i32 = 3;
/// `VFIO_DEVICE_GET_INFO`, an ioctl this front end does not handle.
const VFIO_DEVICE_GET_INFO: u32 = io(b';', 107);

fn ioctl(f: &Fixture, file: &VfioDeviceFile, number: u32, bytes: &mut [u8]) -> Result<(), Errno> {
    let fd: Arc<Iommufd> = f.fd.clone();
    let resolve = move |n: i32| match n {
        IOMMUFD => Ok(fd.clone()),
        4 => Err(Errno::EBADFD),
        _ => Err(Errno::EBADF),
    };
    file.ioctl(u64::from(number), bytes, &f.mem, &resolve)
}

fn bind_bytes(flags: u32, iommufd: i32, token: u64) -> Vec<u8> {
    VfioDeviceBindIommufd {
        argsz: 24,
        flags,
        iommufd,
        out_devid: 0xdead,
        token_uuid_ptr: token,
    }
    .as_bytes()
    .to_vec()
}

fn attach_bytes(argsz: u32, flags: u32, pt_id: u32, pasid: u32) -> Vec<u8> {
    let mut bytes = VfioDeviceAttachIommufdPt {
        argsz,
        flags,
        pt_id,
        pasid,
    }
    .as_bytes()
    .to_vec();
    bytes.extend_from_slice(&[0xaa; 8]);
    bytes
}

fn detach_bytes(argsz: u32, flags: u32, pasid: u32) -> Vec<u8> {
    VfioDeviceDetachIommufdPt {
        argsz,
        flags,
        pasid,
    }
    .as_bytes()
    .to_vec()
}

fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// A device under VFIO, plugged into the host.
fn vfio_device(f: &Fixture, dev: u8) -> (Arc<vsva_demo::DemoDevice>, Arc<VfioDevice>) {
    let (demo, info) = f.plug(dev);
    (demo, VfioDevice::new(info))
}

#[test]
fn bind_returns_the_device_id_and_a_device_binds_once() {
    let f = open();
    let (_demo, vdev) = vfio_device(&f, 3);
    let file = vdev.open();
    // nothing but bind works on an unbound file
    let mut attach = attach_bytes(16, 0, 1, 0);
    assert_eq!(
        ioctl(&f, &file, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &mut attach),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        ioctl(&f, &file, VFIO_DEVICE_GET_INFO, &mut [0; 16]),
        Err(Errno::EINVAL)
    );

    let mut bind = bind_bytes(0, IOMMUFD, 0x1234);
    assert_eq!(
        ioctl(&f, &file, VFIO_DEVICE_BIND_IOMMUFD, &mut bind),
        Ok(())
    );
    assert_eq!(le32(&bind, 12), 1, "out_devid");
    assert_eq!(
        &bind[16..],
        &0x1234u64.to_le_bytes(),
        "only out_devid is written"
    );
    assert_eq!(file.dev_id(), Some(1));
    assert_eq!(f.fd.objects(), vec![(1, ObjectType::Device)]);
    assert_eq!(f.destroy(1), Err(Errno::EBUSY), "VFIO holds it");

    // one bind per file, one bound file per device
    let mut again = bind_bytes(0, IOMMUFD, 0);
    assert_eq!(
        ioctl(&f, &file, VFIO_DEVICE_BIND_IOMMUFD, &mut again),
        Err(Errno::EINVAL)
    );
    let second = vdev.open();
    assert_eq!(
        ioctl(&f, &second, VFIO_DEVICE_BIND_IOMMUFD, &mut again),
        Err(Errno::EINVAL)
    );
    assert_eq!(le32(&again, 12), 0xdead, "nothing written back");
    assert_eq!(
        ioctl(&f, &file, VFIO_DEVICE_GET_INFO, &mut [0; 16]),
        Err(Errno::ENOTTY),
        "bound: vfio-pci does not know it"
    );

    // closing the bound file unbinds; the other file can bind then
    drop(file);
    assert!(f.fd.objects().is_empty());
    assert_eq!(
        ioctl(&f, &second, VFIO_DEVICE_BIND_IOMMUFD, &mut again),
        Ok(())
    );
    assert_eq!(le32(&again, 12), 1);
}

#[test]
fn bind_checks_in_linux_order() {
    let f = open();
    let (_demo, vdev) = vfio_device(&f, 3);
    let file = vdev.open();
    let call = |bytes: &mut Vec<u8>| ioctl(&f, &file, VFIO_DEVICE_BIND_IOMMUFD, bytes);
    assert_eq!(call(&mut vec![24, 0, 0]), Err(Errno::EFAULT));
    let mut short = bind_bytes(0, IOMMUFD, 0);
    short[0] = 12;
    assert_eq!(call(&mut short), Err(Errno::EINVAL), "argsz below 16");
    let mut longer = bind_bytes(0, IOMMUFD, 0);
    longer[0] = 32;
    longer.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
    assert_eq!(call(&mut longer), Err(Errno::E2BIG));
    assert_eq!(
        call(&mut bind_bytes(4, IOMMUFD, 0)),
        Err(Errno::EINVAL),
        "flags"
    );
    assert_eq!(
        call(&mut bind_bytes(0, -1, 0)),
        Err(Errno::EINVAL),
        "negative fd"
    );
    // a VF token is read, then refused: no vsva device is an SR-IOV function
    assert_eq!(call(&mut bind_bytes(1, IOMMUFD, 0x10)), Err(Errno::EFAULT));
    let token = f.user_bytes(&[7; 16]);
    assert_eq!(call(&mut bind_bytes(1, IOMMUFD, token)), Err(Errno::EINVAL));
    assert_eq!(call(&mut bind_bytes(0, 9, 0)), Err(Errno::EBADF));
    assert_eq!(call(&mut bind_bytes(0, 4, 0)), Err(Errno::EBADFD));
    assert!(f.fd.objects().is_empty());
    longer[27] = 0;
    assert_eq!(
        call(&mut longer),
        Ok(()),
        "a longer struct with a zero tail"
    );
}

#[test]
fn attach_returns_the_hwpt_and_attaching_again_replaces() {
    let f = open();
    let (demo, vdev) = vfio_device(&f, 3);
    let file = vdev.open();
    let dev_id = file.bind(f.fd.clone()).unwrap();
    let (a, b) = (f.alloc().unwrap(), f.alloc().unwrap());
    let buf = f.buffer(PAGE);
    f.map(a, FIXED_RW, buf, PAGE, 0x10_0000).unwrap();
    f.map(b, FIXED_RW, buf, PAGE, 0x20_0000).unwrap();

    let mut attach = attach_bytes(16, 0, a, 0x77);
    assert_eq!(
        ioctl(&f, &file, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &mut attach),
        Ok(())
    );
    let hwpt_a = le32(&attach, 8);
    assert_eq!(
        hwpt_a, 4,
        "the automatic HWPT after device 1 and IOASes 2, 3"
    );
    assert_eq!(le32(&attach, 12), 0x77, "only pt_id is written");
    assert_eq!(&attach[16..], &[0xaa; 8]);
    assert!(demo.dma_untranslated(None, 0x10_0000, true).is_ok());

    // attaching again replaces
    let mut attach = attach_bytes(16, 0, b, 0);
    ioctl(&f, &file, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &mut attach).unwrap();
    let hwpt_b = le32(&attach, 8);
    assert_eq!(hwpt_b, 5);
    assert_eq!(
        f.fd.get_hwpt_paging(hwpt_a).err(),
        Some(Errno::ENOENT),
        "the old automatic HWPT went with its device"
    );
    assert!(demo.dma_untranslated(None, 0x10_0000, true).is_err());
    assert!(demo.dma_untranslated(None, 0x20_0000, true).is_ok());
    assert_eq!(
        f.fd.get_device(dev_id).unwrap().attached(),
        vec![(0, hwpt_b)]
    );

    // PASIDs need PASID-compatible HWPTs, for the RID too: move the RID to one first
    let hwpt = f
        .hwpt_paging(dev_id, a, HwptAllocFlags::PASID.bits())
        .unwrap();
    let mut attach = attach_bytes(16, 1, hwpt, 5);
    assert_eq!(
        ioctl(&f, &file, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &mut attach),
        Err(Errno::EINVAL),
        "the RID's automatic HWPT is not PASID-compatible"
    );
    let mut attach = attach_bytes(16, 0, hwpt, 0);
    ioctl(&f, &file, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &mut attach).unwrap();
    assert_eq!(le32(&attach, 8), hwpt);
    assert_eq!(f.fd.get_hwpt_paging(hwpt_b).err(), Some(Errno::ENOENT));
    assert!(demo.dma_untranslated(None, 0x10_0000, true).is_ok());
    let mut attach = attach_bytes(12, 1, hwpt, 5);
    assert_eq!(
        ioctl(&f, &file, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &mut attach),
        Err(Errno::EINVAL),
        "PASID without room for it"
    );
    let mut attach = attach_bytes(16, 2, hwpt, 5);
    assert_eq!(
        ioctl(&f, &file, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &mut attach),
        Err(Errno::EINVAL),
        "unknown flag"
    );
    let mut attach = attach_bytes(16, 1, hwpt, 5);
    assert_eq!(
        ioctl(&f, &file, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &mut attach),
        Ok(())
    );
    assert_eq!(le32(&attach, 8), hwpt);
    let pasid5 = Some(Pasid::new(5).unwrap());
    assert!(demo.dma_untranslated(pasid5, 0x10_0000, false).is_ok());
    // an IOAS for a PASID: EINVAL (automatic HWPTs are not PASID-compatible); the error
    // leaves pt_id alone
    let mut attach = attach_bytes(16, 1, b, 6);
    assert_eq!(
        ioctl(&f, &file, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &mut attach),
        Err(Errno::EINVAL)
    );
    assert_eq!(le32(&attach, 8), b);

    // detach: the PASID, one never attached (nothing to do), then the device
    let mut detach = detach_bytes(8, 1, 5);
    assert_eq!(
        ioctl(&f, &file, VFIO_DEVICE_DETACH_IOMMUFD_PT, &mut detach),
        Err(Errno::EINVAL),
        "PASID without room for it"
    );
    let mut detach = detach_bytes(12, 1, 5);
    assert_eq!(
        ioctl(&f, &file, VFIO_DEVICE_DETACH_IOMMUFD_PT, &mut detach),
        Ok(())
    );
    assert!(demo.dma_untranslated(pasid5, 0x10_0000, false).is_err());
    let mut detach = detach_bytes(12, 1, 9);
    assert_eq!(
        ioctl(&f, &file, VFIO_DEVICE_DETACH_IOMMUFD_PT, &mut detach),
        Ok(())
    );
    let mut detach = detach_bytes(8, 0, 0);
    assert_eq!(
        ioctl(&f, &file, VFIO_DEVICE_DETACH_IOMMUFD_PT, &mut detach),
        Ok(())
    );
    assert!(demo.dma_untranslated(None, 0x10_0000, true).is_err());
    assert_eq!(f.fd.get_device(dev_id).unwrap().attached(), vec![]);
    assert_eq!(f.destroy(b), Ok(()));
    assert_eq!(
        f.destroy(a),
        Err(Errno::EBUSY),
        "the PASID-compatible HWPT holds it"
    );
    let mut detach = detach_bytes(8, 2, 0);
    assert_eq!(
        ioctl(&f, &file, VFIO_DEVICE_DETACH_IOMMUFD_PT, &mut detach),
        Err(Errno::EINVAL),
        "unknown flag"
    );
}

#[test]
fn closing_the_file_detaches_and_unbinds() {
    let f = open();
    let (demo, vdev) = vfio_device(&f, 3);
    let file = vdev.open();
    let dev_id = file.bind(f.fd.clone()).unwrap();
    let ioas = f.alloc().unwrap();
    let buf = f.buffer(PAGE);
    f.map(ioas, FIXED_RW, buf, PAGE, 0x10_0000).unwrap();
    let hwpt = f
        .hwpt_paging(dev_id, ioas, HwptAllocFlags::PASID.bits())
        .unwrap();
    assert_eq!(file.attach(ioas, None), Ok(4));
    assert_eq!(file.attach(hwpt, None), Ok(hwpt), "replaces");
    assert_eq!(f.fd.get_hwpt_paging(4).err(), Some(Errno::ENOENT));
    assert_eq!(file.attach(hwpt, Some(3)), Ok(hwpt));
    assert_eq!(f.p.locked_pages(), 1);
    drop(file);
    assert!(demo.dma_untranslated(None, 0x10_0000, false).is_err());
    let pasid3 = Some(Pasid::new(3).unwrap());
    assert!(demo.dma_untranslated(pasid3, 0x10_0000, false).is_err());
    assert_eq!(
        f.fd.objects(),
        vec![(ioas, ObjectType::Ioas), (hwpt, ObjectType::HwptPaging)]
    );
    assert_eq!(f.destroy(hwpt), Ok(()));
    assert_eq!(f.destroy(ioas), Ok(()));
    assert_eq!(f.p.locked_pages(), 0);
    // the typed calls need a bound file
    let file = vdev.open();
    assert_eq!(file.attach(ioas, None), Err(Errno::EINVAL));
    assert_eq!(file.detach(None), Err(Errno::EINVAL));
}
