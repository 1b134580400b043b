//! [`Iommufd::ioctl`]: an ioctl on the iommufd, from request number and argument bytes to the
//! command and back (`iommufd_fops_ioctl()` of `drivers/iommu/iommufd/main.c`).
//!
//! The steps, in Linux's order:
//! 1. The request number is truncated to 32 bits (the `unsigned int cmd` of the `ioctl`
//!    system call, `fs/ioctl.c`).
//! 2. A number whose `_IOC_NR` lies outside iommufd's table goes to the VFIO container
//!    compatibility handler (`iommufd_vfio_ioctl()`), which vsva does not have yet: `ENOTTY`.
//!    That includes the VFIO device cdev commands, which belong to the device's file.
//! 3. The leading `u32` (`size`) is read — `EFAULT` if the argument is shorter — and only then
//!    is the whole number compared with the table's: a number with the right `_IOC_NR` but a
//!    different type, size or direction is `ENOTTY`.
//! 4. [`decode`]: `size` below the command's minimum is `EINVAL`, then
//!    `copy_struct_from_user()` (`E2BIG` for non-zero bytes past the kernel's struct).
//! 5. The command runs; on success its result goes back to the argument bytes as
//!    `iommufd_ucmd_respond()` does — the first `min(size, sizeof)` bytes of the struct — for
//!    the commands that respond at all (DESTROY, ALLOW_IOVAS, CHANGE_PROCESS,
//!    SET_DIRTY_TRACKING, GET_DIRTY_BITMAP and `VFIO_IOAS` SET/CLEAR do not; OPTION returns
//!    only `val64`). `IOMMU_IOAS_IOVA_RANGES` also responds before failing with `EMSGSIZE`,
//!    and `IOMMU_HWPT_INVALIDATE` responds (with the entries handled) whatever happened.
//!
//! After a successful [`decode`] the argument holds at least `min(size, sizeof)` bytes, so the
//! response cannot fault; where Linux responds before publishing a new object (IOAS_ALLOC,
//! HWPT_ALLOC, FAULT_QUEUE_ALLOC, VEVENTQ_ALLOC), vsva publishes first without anything becoming observable
//! out of order.
//!
//! `IOMMU_HW_QUEUE_ALLOC` makes no objects (no vIOMMU vsva makes has hardware queues): it
//! checks its arguments in Linux's order and ends in `EOPNOTSUPP` (see
//! [`hw_queue_alloc`](Iommufd::hw_queue_alloc)).

use zerocopy::{Immutable, IntoBytes};

use crate::abi::ioctl::{IOMMUFD_CMD_BASE, ioc_nr};
use crate::abi::{
    Command, Errno, FdKind, IommuOption, Request, VfioIoasOp, decode, user_size, write_back,
    write_back_range,
};
use crate::ctx::Iommufd;
use crate::user_memory::UserMemory;

/// `_IOC_NR` values past the last command of `iommufd_ioctl_ops[]` go to the VFIO container
/// handler; those from [`IOMMUFD_CMD_BASE`] up to it index the table.
fn in_iommufd_table(number: u32) -> bool {
    let last = Command::ALL
        .iter()
        .filter(|command| command.fd_kind() == FdKind::Iommufd)
        .map(|command| ioc_nr(command.ioctl_number()))
        .max()
        .unwrap_or(IOMMUFD_CMD_BASE);
    (IOMMUFD_CMD_BASE..=last).contains(&ioc_nr(number))
}

/// `iommufd_ucmd_respond()`: the first `min(size, sizeof)` bytes of `cmd` back to `arg`.
fn respond<T: IntoBytes + Immutable>(cmd: &T, arg: &mut [u8]) -> Result<(), Errno> {
    write_back(cmd, user_size(arg)?, arg)
}

impl Iommufd {
    /// Runs ioctl `number` with `arg`, the bytes the argument pointer reaches (at least the
    /// struct's declared `size` of them for the call to succeed), and `mem`, the caller's
    /// memory for pointers inside the struct. Returns what the system call returns: `Ok(())`
    /// for 0, or the errno.
    ///
    /// # Errors
    /// See the module documentation for the dispatch errors and each command's method for
    /// its own.
    pub fn ioctl(&self, number: u64, arg: &mut [u8], mem: &dyn UserMemory) -> Result<(), Errno> {
        // The syscall's `cmd` is an `unsigned int`: the high half of the register is dropped.
        let number = number as u32;
        if !in_iommufd_table(number) {
            return Err(Errno::ENOTTY);
        }
        user_size(arg)?;
        let Some(command) = Command::from_ioctl(u64::from(number))
            .filter(|command| command.fd_kind() == FdKind::Iommufd)
        else {
            return Err(Errno::ENOTTY);
        };
        let request = decode(command, arg)?;
        tracing::trace!(command = command.name(), "iommufd ioctl");
        match request {
            Request::Destroy(cmd) => self.destroy(&cmd),
            Request::IoasAlloc(mut cmd) => {
                self.ioas_alloc(&mut cmd)?;
                respond(&cmd, arg)
            }
            Request::IoasAllowIovas(cmd) => self.ioas_allow_iovas(&cmd, mem),
            Request::IoasCopy(mut cmd) => {
                self.ioas_copy(&mut cmd)?;
                respond(&cmd, arg)
            }
            Request::IoasIovaRanges(mut cmd) => match self.ioas_iova_ranges(&mut cmd, mem) {
                Ok(()) => respond(&cmd, arg),
                Err(Errno::EMSGSIZE) => {
                    respond(&cmd, arg)?;
                    Err(Errno::EMSGSIZE)
                }
                Err(errno) => Err(errno),
            },
            Request::IoasMap(mut cmd) => {
                self.ioas_map(&mut cmd)?;
                respond(&cmd, arg)
            }
            Request::IoasMapFile(mut cmd) => {
                self.ioas_map_file(&mut cmd)?;
                respond(&cmd, arg)
            }
            Request::IoasUnmap(mut cmd) => {
                self.ioas_unmap(&mut cmd)?;
                respond(&cmd, arg)
            }
            Request::IoasChangeProcess(cmd) => self.ioas_change_process(&cmd, mem.address_space()),
            Request::Option(mut cmd) => {
                self.option(&mut cmd)?;
                let val64 = core::mem::offset_of!(IommuOption, val64);
                write_back_range(&cmd, val64..val64 + size_of::<u64>(), arg)
            }
            Request::VfioIoas(mut cmd) => {
                let op = cmd.op;
                self.vfio_ioas(&mut cmd)?;
                if op == VfioIoasOp::GET {
                    respond(&cmd, arg)?;
                }
                Ok(())
            }
            Request::HwptAlloc(mut cmd) => {
                self.hwpt_alloc(&mut cmd, mem)?;
                respond(&cmd, arg)
            }
            Request::GetHwInfo(mut cmd) => {
                self.get_hw_info(&mut cmd, mem)?;
                respond(&cmd, arg)
            }
            Request::HwptSetDirtyTracking(cmd) => self.hwpt_set_dirty_tracking(&cmd),
            Request::HwptGetDirtyBitmap(cmd) => self.hwpt_get_dirty_bitmap(&cmd, mem),
            Request::HwptInvalidate(mut cmd) => {
                // entry_num goes back on errors too (iommufd_hwpt_invalidate()).
                let result = self.hwpt_invalidate(&mut cmd, mem);
                respond(&cmd, arg)?;
                result
            }
            Request::FaultQueueAlloc(mut cmd) => {
                self.fault_alloc(&mut cmd)?;
                respond(&cmd, arg)
            }
            Request::ViommuAlloc(mut cmd) => {
                self.viommu_alloc(&mut cmd)?;
                respond(&cmd, arg)
            }
            Request::VdeviceAlloc(mut cmd) => {
                self.vdevice_alloc(&mut cmd)?;
                respond(&cmd, arg)
            }
            Request::VeventqAlloc(mut cmd) => {
                self.veventq_alloc(&mut cmd)?;
                respond(&cmd, arg)
            }
            Request::HwQueueAlloc(cmd) => self.hw_queue_alloc(&cmd),
            // Filtered out above: these are issued on a VFIO device file.
            Request::VfioDeviceBindIommufd(_)
            | Request::VfioDeviceAttachIommufdPt(_)
            | Request::VfioDeviceDetachIommufdPt(_) => Err(Errno::ENOTTY),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::ioctl::{IOMMU_DESTROY, IOMMU_HW_QUEUE_ALLOC, VFIO_DEVICE_BIND_IOMMUFD};

    #[test]
    fn table_range_is_destroy_to_hw_queue_alloc() {
        assert!(in_iommufd_table(IOMMU_DESTROY));
        assert!(in_iommufd_table(IOMMU_HW_QUEUE_ALLOC));
        assert!(!in_iommufd_table(IOMMU_HW_QUEUE_ALLOC + 1));
        assert!(!in_iommufd_table(IOMMU_DESTROY - 1));
        assert!(!in_iommufd_table(VFIO_DEVICE_BIND_IOMMUFD));
        // _IOC_NR alone decides: another type byte with nr 0x85 still indexes the table.
        assert!(in_iommufd_table(0x5685));
    }
}
