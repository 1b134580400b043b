//! A vEVENTQ descriptor through the shim, in-process (as [`crate::fault_flow`]): the machine's
//! VT-d driver has no vIOMMU operations, so the context's core-managed vIOMMU is turned on
//! and the queue made on it — no event ever reaches it, which is what Linux would do with a
//! queue of a type the vIOMMU does not report. What is checked is the descriptor: a real,
//! close-on-exec socket the kernel's `poll` sees neither readable nor writable, `read` 0,
//! `write` `EINVAL`, `pread` `ESPIPE`, `ioctl` `ENOTTY`, the queue busy while the descriptor
//! is open and destroyable once it is closed.

use vsva_iommufd::abi::ioctl::{
    IOMMU_DESTROY, IOMMU_HWPT_ALLOC, IOMMU_VEVENTQ_ALLOC, IOMMU_VIOMMU_ALLOC,
};
use vsva_iommufd::abi::{
    Errno, HwptAllocFlags, IommuDestroy, IommuHwptAlloc, IommuVeventqAlloc, IommuViommuAlloc,
    VeventqType, ViommuType,
};

use crate::files::{self, Kind};
use crate::shim;
use crate::sys;
use crate::testing::{self, call, poll_now};

#[test]
fn a_veventq_is_a_real_descriptor() {
    shim::machine().expect("the default machine builds");
    let fd = shim::open(c"/dev/iommu", libc::O_RDWR).unwrap().unwrap();
    let ictx = files::lookup(fd).unwrap();
    let Kind::Iommufd(context) = &ictx.kind else {
        panic!("/dev/iommu is an iommufd");
    };
    context.set_core_viommu(true);
    let ioas = testing::ioas(&ictx);
    let (vfio, dev_id) = testing::bind(c"/dev/vfio/devices/vfio1", fd);
    let mut s2 = IommuHwptAlloc {
        size: 48,
        flags: HwptAllocFlags::NEST_PARENT.bits(),
        dev_id,
        pt_id: ioas,
        ..Default::default()
    };
    call(&ictx, IOMMU_HWPT_ALLOC, &mut s2).unwrap();
    let mut viommu = IommuViommuAlloc {
        size: 40,
        type_: ViommuType::DEFAULT,
        dev_id,
        hwpt_id: s2.out_hwpt_id,
        ..Default::default()
    };
    call(&ictx, IOMMU_VIOMMU_ALLOC, &mut viommu).unwrap();
    let mut alloc = IommuVeventqAlloc {
        size: 32,
        viommu_id: viommu.out_viommu_id,
        type_: VeventqType::ARM_SMMUV3,
        veventq_depth: 4,
        ..Default::default()
    };
    // Bad arguments: nothing made, no descriptor.
    let mut bad = IommuVeventqAlloc {
        veventq_depth: 0,
        ..alloc
    };
    assert_eq!(
        call(&ictx, IOMMU_VEVENTQ_ALLOC, &mut bad),
        Err(Errno::EINVAL)
    );
    assert_eq!(bad.out_veventq_fd, 0);
    call(&ictx, IOMMU_VEVENTQ_ALLOC, &mut alloc).unwrap();
    let qfd = alloc.out_veventq_fd as i32;
    let queue = files::lookup(qfd).expect("the vEVENTQ fd is the shim's");
    assert!(matches!(queue.kind, Kind::Veventq(_)));
    assert_eq!(
        sys::fcntl(qfd, libc::F_GETFD, 0),
        Ok(libc::FD_CLOEXEC),
        "installed O_CLOEXEC"
    );
    assert_eq!(poll_now(qfd), 0, "neither readable nor, ever, writable");
    let mut buf = [0u8; 64];
    assert_eq!(shim::read(&queue, qfd, buf.as_mut_ptr() as u64, 64), Ok(0));
    assert_eq!(
        shim::read(&queue, qfd, 8, 64),
        Ok(0),
        "a bad buffer, nothing queued"
    );
    assert_eq!(
        shim::write(&queue, buf.as_ptr() as u64, 8),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        shim::pread(&queue, buf.as_mut_ptr() as u64, 8, 0),
        Err(Errno::ESPIPE)
    );
    assert_eq!(
        shim::ioctl(&queue, u64::from(IOMMU_DESTROY), 0),
        Err(Errno::ENOTTY)
    );
    assert_eq!(
        shim::poll_mask(qfd),
        None,
        "the kernel answers for the socket"
    );
    // A second queue of the type: EEXIST, no descriptor.
    let mut again = IommuVeventqAlloc {
        out_veventq_fd: 0,
        ..alloc
    };
    assert_eq!(
        call(&ictx, IOMMU_VEVENTQ_ALLOC, &mut again),
        Err(Errno::EEXIST)
    );
    // The open descriptor holds the queue; closing it releases the file.
    let mut destroy = IommuDestroy {
        size: 8,
        id: alloc.out_veventq_id,
    };
    assert_eq!(call(&ictx, IOMMU_DESTROY, &mut destroy), Err(Errno::EBUSY));
    drop(queue);
    let key = files::key_of_marked(qfd);
    sys::close(qfd).unwrap();
    files::release_if_gone(key);
    assert_eq!(call(&ictx, IOMMU_DESTROY, &mut destroy), Ok(()));
    drop((vfio, ictx));
}
