//! `IOMMU_VIOMMU_ALLOC` and `IOMMU_VDEVICE_ALLOC` through ioctl bytes, and the vIOMMU as a
//! `pt_id` of `IOMMU_HWPT_ALLOC` / `hwpt_id` of `IOMMU_HWPT_INVALIDATE`. Expected errnos are
//! those of `iommufd_viommu_alloc_ioctl()`, `iommufd_vdevice_alloc_ioctl()`,
//! `iommufd_hwpt_alloc()` and `iommufd_hwpt_invalidate()`.

mod common;

use common::*;
use vsva_iommufd::ObjectType;
use vsva_iommufd::abi::ioctl::{
    IOMMU_HW_QUEUE_ALLOC, IOMMU_HWPT_INVALIDATE, IOMMU_VDEVICE_ALLOC, IOMMU_VIOMMU_ALLOC,
};
use vsva_iommufd::abi::{
    Errno, HwQueueType, HwptAllocFlags, HwptDataType, HwptInvalidateDataType, IommuHwQueueAlloc,
    IommuHwptInvalidate, IommuVdeviceAlloc, IommuViommuAlloc, VeventqType, ViommuType,
};
use zerocopy::IntoBytes;

const NEST_PARENT: u32 = HwptAllocFlags::NEST_PARENT.bits();

/// A context with the core-managed vIOMMU on, a bound device, an IOAS and a nesting parent.
fn setup() -> (Fixture, u32, u32, u32) {
    let f = open();
    f.fd.set_core_viommu(true);
    let (_, dev_id) = f.plug_and_bind(3);
    let ioas = f.alloc().unwrap();
    let s2 = f.hwpt_paging(dev_id, ioas, NEST_PARENT).unwrap();
    (f, dev_id, ioas, s2)
}

#[test]
fn mainline_refuses_every_viommu_type_on_vtd() {
    let f = open();
    let (_, dev_id) = f.plug_and_bind(3);
    let ioas = f.alloc().unwrap();
    let s2 = f.hwpt_paging(dev_id, ioas, NEST_PARENT).unwrap();
    // DEFAULT is refused before the device is looked up.
    assert_eq!(
        f.viommu_alloc(0, ViommuType::DEFAULT, 99, s2),
        Err(Errno::EOPNOTSUPP)
    );
    // Other types: the device first, then the Intel driver has no vIOMMU ops.
    assert_eq!(
        f.viommu_alloc(0, ViommuType::ARM_SMMUV3, 99, s2),
        Err(Errno::ENOENT)
    );
    assert_eq!(
        f.viommu_alloc(0, ViommuType::ARM_SMMUV3, dev_id, s2),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(
        f.viommu_alloc(0, ViommuType::TEGRA241_CMDQV, dev_id, s2),
        Err(Errno::EOPNOTSUPP)
    );
}

#[test]
fn viommu_alloc_checks_in_linux_order() {
    let (f, dev_id, ioas, s2) = setup();
    let plain = f.hwpt_paging(dev_id, ioas, 0).unwrap();
    let d = ViommuType::DEFAULT;
    // flags first, even with nothing else valid
    assert_eq!(f.viommu_alloc(1, d, 99, 99), Err(Errno::EOPNOTSUPP));
    assert_eq!(
        f.viommu_alloc(1 << 31, d, dev_id, s2),
        Err(Errno::EOPNOTSUPP)
    );
    // then the device
    assert_eq!(f.viommu_alloc(0, d, 99, 99), Err(Errno::ENOENT));
    assert_eq!(
        f.viommu_alloc(0, d, ioas, s2),
        Err(Errno::ENOENT),
        "an IOAS is no device"
    );
    // then the type (no driver vIOMMU ops), before the HWPT
    assert_eq!(
        f.viommu_alloc(0, ViommuType::ARM_SMMUV3, dev_id, 99),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(
        f.viommu_alloc(0, ViommuType(7), dev_id, 99),
        Err(Errno::EOPNOTSUPP)
    );
    // then the HWPT: a paging HWPT (ENOENT otherwise), a nesting parent (EINVAL otherwise)
    assert_eq!(f.viommu_alloc(0, d, dev_id, 99), Err(Errno::ENOENT));
    assert_eq!(f.viommu_alloc(0, d, dev_id, ioas), Err(Errno::ENOENT));
    assert_eq!(f.viommu_alloc(0, d, dev_id, plain), Err(Errno::EINVAL));
    assert_eq!(f.fd.objects().len(), 4, "nothing was left behind");
    let viommu = f.viommu_alloc(0, d, dev_id, s2).unwrap();
    assert_eq!(viommu, 5);
    assert_eq!(f.fd.objects().last(), Some(&(viommu, ObjectType::Viommu)));
    assert_eq!(f.fd.get_viommu(viommu).unwrap().hwpt().id(), s2);
}

#[test]
fn a_viommu_holds_its_parent_but_not_its_device() {
    let (f, dev_id, ioas, s2) = setup();
    let viommu = f.viommu_alloc(0, ViommuType::DEFAULT, dev_id, s2).unwrap();
    assert_eq!(f.destroy(s2), Err(Errno::EBUSY));
    assert_eq!(f.destroy(ioas), Err(Errno::EBUSY));
    // Two vIOMMUs may share one parent.
    let second = f.viommu_alloc(0, ViommuType::DEFAULT, dev_id, s2).unwrap();
    f.destroy(second).unwrap();
    f.fd.unbind_device(dev_id).unwrap();
    assert!(f.fd.get_viommu(viommu).is_ok(), "the device is not held");
    f.destroy(viommu).unwrap();
    f.destroy(s2).unwrap();
    f.destroy(ioas).unwrap();
    assert!(f.fd.objects().is_empty());
}

#[test]
fn nested_hwpts_and_invalidation_on_a_default_viommu_are_eopnotsupp() {
    let (f, dev_id, _ioas, s2) = setup();
    let viommu = f.viommu_alloc(0, ViommuType::DEFAULT, dev_id, s2).unwrap();
    let vtd = HwptDataType::VTD_S1;
    // iommufd_viommu_alloc_hwpt_nested(): bad flags, no data, no ops: all EOPNOTSUPP.
    assert_eq!(
        f.hwpt_alloc(dev_id, viommu, NEST_PARENT, vtd, &[0; 24]),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(
        f.hwpt_alloc(dev_id, viommu, 0, HwptDataType::NONE, &[]),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(
        f.hwpt_alloc(dev_id, viommu, 0, vtd, &[0; 24]),
        Err(Errno::EOPNOTSUPP)
    );
    // The checks before the branch still come first.
    assert_eq!(
        f.hwpt_alloc(99, viommu, 0, vtd, &[0; 24]),
        Err(Errno::ENOENT)
    );
    assert_eq!(
        f.hwpt_alloc(dev_id, viommu, 0, vtd, &[]),
        Err(Errno::EINVAL)
    );

    let mut cmd = IommuHwptInvalidate {
        size: 32,
        hwpt_id: viommu,
        data_type: HwptInvalidateDataType::VTD_S1,
        entry_num: 3,
        entry_len: 24,
        data_uptr: f.buffer(72),
        ..Default::default()
    };
    assert_eq!(
        f.call(IOMMU_HWPT_INVALIDATE, &mut cmd),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(cmd.entry_num, 0, "nothing was done and that is reported");
    assert_eq!(f.destroy(viommu), Ok(()));
}

#[test]
fn vdevice_alloc_checks_in_linux_order() {
    let (f, dev_id, ioas, s2) = setup();
    let viommu = f.viommu_alloc(0, ViommuType::DEFAULT, dev_id, s2).unwrap();
    let (_, other) = f.plug_and_bind(4);
    assert_eq!(
        f.vdevice_alloc(99, 99, 1),
        Err(Errno::ENOENT),
        "the vIOMMU first"
    );
    assert_eq!(f.vdevice_alloc(s2, dev_id, 1), Err(Errno::ENOENT));
    assert_eq!(f.vdevice_alloc(viommu, 99, 1), Err(Errno::ENOENT));
    assert_eq!(f.vdevice_alloc(viommu, ioas, 1), Err(Errno::ENOENT));
    let vdev = f.vdevice_alloc(viommu, dev_id, 0x18).unwrap();
    assert_eq!(f.fd.objects().last(), Some(&(vdev, ObjectType::Vdevice)));
    assert_eq!(f.fd.get_vdevice(vdev).unwrap().virt_id(), 0x18);
    // one per device, whatever the virtual ID
    assert_eq!(f.vdevice_alloc(viommu, dev_id, 0x20), Err(Errno::EEXIST));
    // one per virtual ID on a vIOMMU
    assert_eq!(f.vdevice_alloc(viommu, other, 0x18), Err(Errno::EEXIST));
    let second = f.vdevice_alloc(viommu, other, u64::MAX).unwrap();
    assert_eq!(
        f.fd.get_viommu(viommu).unwrap().vdevices(),
        vec![(0x18, vdev), (u64::MAX, second)]
    );
    // The same virtual ID on another vIOMMU is fine, but the device already has one.
    let viommu2 = f.viommu_alloc(0, ViommuType::DEFAULT, dev_id, s2).unwrap();
    assert_eq!(f.vdevice_alloc(viommu2, dev_id, 0x18), Err(Errno::EEXIST));
    f.destroy(vdev).unwrap();
    let again = f.vdevice_alloc(viommu2, dev_id, 0x18).unwrap();
    assert_eq!(again, vdev, "the freed ID is reused");
}

#[test]
fn vdevices_hold_the_viommu_and_go_with_their_device() {
    let (f, dev_id, _ioas, s2) = setup();
    let viommu = f.viommu_alloc(0, ViommuType::DEFAULT, dev_id, s2).unwrap();
    let vdev = f.vdevice_alloc(viommu, dev_id, 7).unwrap();
    assert_eq!(f.destroy(viommu), Err(Errno::EBUSY));
    assert_eq!(
        f.destroy(dev_id),
        Err(Errno::EBUSY),
        "the binder holds the device"
    );
    // Unbinding destroys the vDEVICE and leaves its ID a tombstone.
    f.fd.unbind_device(dev_id).unwrap();
    assert_eq!(f.fd.get_vdevice(vdev).err(), Some(Errno::ENOENT));
    assert_eq!(f.destroy(vdev), Err(Errno::ENOENT));
    assert!(f.fd.get_viommu(viommu).unwrap().vdevices().is_empty());
    // IDs were 1 device, 2 IOAS, 3 parent, 4 vIOMMU, 5 vDEVICE: the device's 1 is free again,
    // the tombstone's 5 is not.
    assert_eq!((dev_id, vdev), (1, 5));
    let (_, other) = f.plug_and_bind(4);
    assert_eq!(other, 1);
    assert_eq!(f.alloc().unwrap(), 6, "the tombstone keeps its ID taken");
    assert_eq!(f.vdevice_alloc(viommu, 99, 7), Err(Errno::ENOENT));
    let reused_virt = f.vdevice_alloc(viommu, other, 7).unwrap();
    f.destroy(reused_virt).unwrap();
    f.destroy(viommu).unwrap();
    f.destroy(s2).unwrap();
}

#[test]
fn closing_with_viommu_objects_destroys_leaves_first() {
    let (f, dev_id, _ioas, s2) = setup();
    let viommu = f.viommu_alloc(0, ViommuType::DEFAULT, dev_id, s2).unwrap();
    f.vdevice_alloc(viommu, dev_id, 1).unwrap();
    let Fixture { fd, .. } = f;
    let weak = std::sync::Arc::downgrade(&fd);
    drop(fd);
    assert!(weak.upgrade().is_none());
}

#[test]
fn viommu_and_vdevice_bytes_from_the_caller() {
    let (f, dev_id, _ioas, s2) = setup();
    // An unknown type: the device is looked up first, then no driver has it (EOPNOTSUPP).
    let unknown = ViommuType(0x1234);
    assert_eq!(f.viommu_alloc(0, unknown, 99, s2), Err(Errno::ENOENT));
    assert_eq!(
        f.viommu_alloc(0, unknown, dev_id, s2),
        Err(Errno::EOPNOTSUPP)
    );
    // Every flag bit is refused, the top one too.
    assert_eq!(
        f.viommu_alloc(1 << 31, ViommuType::DEFAULT, dev_id, s2),
        Err(Errno::EOPNOTSUPP)
    );
    // `__reserved` is not checked and the driver data is not read: a pointer to nothing and
    // any length are accepted.
    let mut cmd = IommuViommuAlloc {
        size: 40,
        type_: ViommuType::DEFAULT,
        dev_id,
        hwpt_id: s2,
        data_len: u32::MAX,
        __reserved: u32::MAX,
        data_uptr: u64::MAX,
        ..Default::default()
    };
    assert_eq!(f.call(IOMMU_VIOMMU_ALLOC, &mut cmd), Ok(()));
    let viommu = cmd.out_viommu_id;
    assert_eq!(f.fd.objects().last(), Some(&(viommu, ObjectType::Viommu)));

    // IOMMU_VDEVICE_ALLOC's struct: below its last field EINVAL; a longer one only with zeros
    // past it (E2BIG otherwise, nothing created).
    let alloc = IommuVdeviceAlloc {
        size: 24,
        viommu_id: viommu,
        dev_id,
        out_vdevice_id: 0,
        virt_id: 0x18,
    };
    let mut short = alloc.as_bytes().to_vec();
    short[..4].copy_from_slice(&23u32.to_le_bytes());
    assert_eq!(
        f.raw(u64::from(IOMMU_VDEVICE_ALLOC), &mut short),
        Err(Errno::EINVAL)
    );
    let mut long = alloc.as_bytes().to_vec();
    long.extend_from_slice(&[0; 8]);
    long[..4].copy_from_slice(&32u32.to_le_bytes());
    long[31] = 1;
    assert_eq!(
        f.raw(u64::from(IOMMU_VDEVICE_ALLOC), &mut long),
        Err(Errno::E2BIG)
    );
    assert_eq!(f.fd.objects().last(), Some(&(viommu, ObjectType::Viommu)));
    long[31] = 0;
    assert_eq!(f.raw(u64::from(IOMMU_VDEVICE_ALLOC), &mut long), Ok(()));
    let vdev = u32::from_le_bytes(long[12..16].try_into().unwrap());
    assert_eq!(f.fd.objects().last(), Some(&(vdev, ObjectType::Vdevice)));
    assert_eq!(&long[24..], &[0; 8], "nothing is written past the struct");

    // IDs of the wrong kind: a vDEVICE is no vIOMMU, a vIOMMU no device (ENOENT).
    let (_, other) = f.plug_and_bind(4);
    assert_eq!(f.vdevice_alloc(vdev, other, 1), Err(Errno::ENOENT));
    assert_eq!(f.vdevice_alloc(viommu, viommu, 1), Err(Errno::ENOENT));
    assert_eq!(f.vdevice_alloc(viommu, vdev, 1), Err(Errno::ENOENT));
    // A vDEVICE's tombstone names nothing.
    f.fd.unbind_device(dev_id).unwrap();
    assert_eq!(f.vdevice_alloc(vdev, other, 1), Err(Errno::ENOENT));
    assert_eq!(f.vdevice_alloc(viommu, vdev, 1), Err(Errno::ENOENT));
    assert!(f.vdevice_alloc(viommu, other, 0x18).is_ok());
}

#[test]
fn veventq_and_hw_queue_alloc_check_in_linux_order() {
    let (f, dev_id, _, s2) = setup();
    let viommu = f.viommu_alloc(0, ViommuType::DEFAULT, dev_id, s2).unwrap();
    let veventq = |flags: u32, viommu_id: u32, type_: VeventqType, depth: u32, rsv: u32| {
        f.veventq_alloc(flags, viommu_id, type_, depth, rsv)
            .map(drop)
    };
    let smmu = VeventqType::ARM_SMMUV3;
    assert_eq!(
        veventq(1, 99, smmu, 0, 0),
        Err(Errno::EOPNOTSUPP),
        "flags first"
    );
    assert_eq!(
        veventq(0, 99, smmu, 0, 1),
        Err(Errno::EOPNOTSUPP),
        "__reserved"
    );
    assert_eq!(
        veventq(0, 99, VeventqType::DEFAULT, 0, 0),
        Err(Errno::EOPNOTSUPP),
        "DEFAULT is reserved"
    );
    assert_eq!(
        veventq(0, 99, smmu, 0, 0),
        Err(Errno::EINVAL),
        "depth before the lookup"
    );
    assert_eq!(veventq(0, 99, smmu, 8, 0), Err(Errno::ENOENT));
    assert_eq!(
        veventq(0, dev_id, smmu, 8, 0),
        Err(Errno::ENOENT),
        "not a vIOMMU"
    );
    // Linux does not match the queue's type against the vIOMMU's: a core-managed vIOMMU
    // gets one too (it stays empty), once per type.
    assert_eq!(veventq(0, viommu, smmu, 8, 0), Ok(()));
    assert_eq!(veventq(0, viommu, smmu, 8, 0), Err(Errno::EEXIST));
    assert_eq!(
        veventq(0, viommu, VeventqType::TEGRA241_CMDQV, 1, 0),
        Ok(())
    );

    let hw_queue = |flags: u32, viommu_id: u32, type_: HwQueueType, iova: u64, length: u64| {
        let mut cmd = IommuHwQueueAlloc {
            size: 40,
            flags,
            viommu_id,
            type_,
            nesting_parent_iova: iova,
            length,
            ..Default::default()
        };
        f.call(IOMMU_HW_QUEUE_ALLOC, &mut cmd)
    };
    let cmdqv = HwQueueType::TEGRA241_CMDQV;
    assert_eq!(hw_queue(2, 99, cmdqv, 0, 0), Err(Errno::EOPNOTSUPP));
    assert_eq!(
        hw_queue(0, 99, HwQueueType::DEFAULT, 0, 0),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(hw_queue(0, 99, cmdqv, 0, 0), Err(Errno::EINVAL), "length 0");
    assert_eq!(hw_queue(0, 99, cmdqv, u64::MAX, 2), Err(Errno::EOVERFLOW));
    assert_eq!(hw_queue(0, 99, cmdqv, 0x1000, 0x1000), Err(Errno::ENOENT));
    assert_eq!(
        hw_queue(0, viommu, cmdqv, 0x1000, 0x1000),
        Err(Errno::EOPNOTSUPP),
        "no VT-d vIOMMU has hardware queues"
    );
}
