//! Helpers of the in-process flows ([`crate::fault_flow`], [`crate::veventq_flow`]): the
//! shim's functions called directly with pointers into this process, as the interposers
//! would call them.

use vsva_iommufd::abi::ioctl::{IOMMU_IOAS_ALLOC, VFIO_DEVICE_BIND_IOMMUFD};
use vsva_iommufd::abi::{Errno, IommuIoasAlloc, VfioDeviceBindIommufd};

use crate::files::{self, OpenFile};
use crate::shim;
use crate::sys;

/// The ioctl `number` on `file` with argument `cmd`, read back after the shim wrote it.
pub fn call<T>(file: &OpenFile, number: u32, cmd: &mut T) -> Result<(), Errno> {
    let addr = cmd as *mut T as u64;
    let result = shim::ioctl(file, u64::from(number), addr).map(drop);
    // SAFETY: `cmd` is a valid `T` the shim rewrote through process_vm_writev; the volatile
    // read makes the compiler load what is in memory now.
    *cmd = unsafe { std::ptr::read_volatile(cmd) };
    result
}

/// The events the kernel's `ppoll` reports for `fd` now, of POLLIN and POLLOUT.
pub fn poll_now(fd: i32) -> i16 {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN | libc::POLLOUT,
        revents: 0,
    };
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let rc = sys::ppoll_raw(
        &mut pfd as *mut libc::pollfd as u64,
        1,
        &zero as *const libc::timespec as u64,
        0,
    );
    if rc == 1 { pfd.revents } else { 0 }
}

/// A new IOAS of `ictx`: its ID.
pub fn ioas(ictx: &OpenFile) -> u32 {
    let mut alloc = IommuIoasAlloc {
        size: 12,
        ..Default::default()
    };
    call(ictx, IOMMU_IOAS_ALLOC, &mut alloc).unwrap();
    alloc.out_ioas_id
}

/// Opens `path` and binds it to the iommufd open under `iommufd`: the file and its device ID.
pub fn bind(path: &std::ffi::CStr, iommufd: i32) -> (std::sync::Arc<OpenFile>, u32) {
    let vfio_fd = shim::open(path, libc::O_RDWR).unwrap().unwrap();
    let vfio = files::lookup(vfio_fd).unwrap();
    let mut bind = VfioDeviceBindIommufd {
        argsz: 24,
        iommufd,
        ..Default::default()
    };
    call(&vfio, VFIO_DEVICE_BIND_IOMMUFD, &mut bind).unwrap();
    (vfio, bind.out_devid)
}
