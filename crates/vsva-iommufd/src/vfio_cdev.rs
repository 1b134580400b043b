//! The VFIO side of binding and attaching a device: an opened `/dev/vfio/devices/vfioN`
//! (Linux `struct vfio_device_file`, `drivers/vfio/device_cdev.c`, with vfio-pci's iommufd
//! operations of `drivers/vfio/iommufd.c`).
//!
//! [`VfioDevice`] is one device VFIO drives (`struct vfio_device`); each open of its cdev is a
//! [`VfioDeviceFile`]. The file answers the three iommufd ioctls of the device cdev —
//! `VFIO_DEVICE_BIND_IOMMUFD`, `VFIO_DEVICE_ATTACH_IOMMUFD_PT`,
//! `VFIO_DEVICE_DETACH_IOMMUFD_PT` — through [`VfioDeviceFile::ioctl`], which the LD_PRELOAD
//! shim routes the device fd's ioctls to, and the same operations as typed methods.
//!
//! Rules kept from Linux:
//! * a device is bound through one open file at a time: binding a file twice, or a second
//!   file while another is bound, is `EINVAL` (`df->access_granted`, `vfio_df_open()`);
//! * every ioctl but bind on an unbound file is `EINVAL`; an ioctl number VFIO does not know
//!   is `ENOTTY` (vfio-pci's default);
//! * attaching an attached device (or PASID) replaces its attachment
//!   (`vfio_iommufd_physical_attach_ioas()` / `_pasid_attach_ioas()`), and detaching one that
//!   is not attached does nothing;
//! * closing the file (dropping it) detaches everything and unbinds the device
//!   (`vfio_df_unbind_iommufd()`).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::abi::ioctl::{
    VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_BIND_IOMMUFD, VFIO_DEVICE_DETACH_IOMMUFD_PT,
};
use crate::abi::{
    Command, Errno, Request, VfioAttachFlags, VfioBindFlags, VfioDetachFlags,
    VfioDeviceAttachIommufdPt, VfioDeviceBindIommufd, decode, write_back_range,
};
use crate::ctx::Iommufd;
use crate::device::DeviceInfo;
use crate::user_memory::UserMemory;

/// A device VFIO drives, whose cdev user space opens.
#[derive(Debug)]
pub struct VfioDevice {
    info: DeviceInfo,
    /// Whether a file of the device is bound (`device->open_count` of the cdev path).
    opened: Mutex<bool>,
}

impl VfioDevice {
    /// A device with what iommufd is to be told about it at bind.
    pub fn new(info: DeviceInfo) -> Arc<VfioDevice> {
        Arc::new(VfioDevice {
            info,
            opened: Mutex::new(false),
        })
    }

    /// What iommufd is told about the device.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Opens the device's cdev (`vfio_device_fops_cdev_open()`): a file that can do nothing
    /// until it is bound.
    pub fn open(self: &Arc<Self>) -> VfioDeviceFile {
        VfioDeviceFile {
            device: self.clone(),
            binding: Mutex::new(None),
        }
    }

    fn opened(&self) -> MutexGuard<'_, bool> {
        self.opened.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A bound file's iommufd side.
struct Binding {
    ictx: Arc<Iommufd>,
    dev_id: u32,
    /// The requests without PASID are attached (`vdev->iommufd_attached`).
    attached: bool,
    /// The PASIDs attached (`vdev->pasid_attach`).
    pasids: BTreeSet<u32>,
}

/// An open file of a VFIO device cdev.
pub struct VfioDeviceFile {
    device: Arc<VfioDevice>,
    binding: Mutex<Option<Binding>>,
}

impl VfioDeviceFile {
    fn binding(&self) -> MutexGuard<'_, Option<Binding>> {
        self.binding.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The device.
    pub fn device(&self) -> &Arc<VfioDevice> {
        &self.device
    }

    /// The device's ID in the iommufd the file is bound to.
    pub fn dev_id(&self) -> Option<u32> {
        self.binding().as_ref().map(|b| b.dev_id)
    }

    /// Binds the device to `ictx` (`VFIO_DEVICE_BIND_IOMMUFD` after its argument checks) and
    /// returns its device ID there.
    ///
    /// # Errors
    /// `EINVAL` if this file is bound, or another file of the device is; the errors of
    /// [`Iommufd::bind_device`].
    pub fn bind(&self, ictx: Arc<Iommufd>) -> Result<u32, Errno> {
        let mut binding = self.binding();
        if binding.is_some() {
            return Err(Errno::EINVAL);
        }
        let mut opened = self.device.opened();
        if *opened {
            return Err(Errno::EINVAL);
        }
        let dev_id = ictx.bind_device(self.device.info)?;
        *opened = true;
        *binding = Some(Binding {
            ictx,
            dev_id,
            attached: false,
            pasids: BTreeSet::new(),
        });
        Ok(dev_id)
    }

    /// Attaches the device, or its PASID `pasid`, to the IOAS or HWPT `pt_id` — replacing
    /// what it is attached to, if anything — and returns the HWPT attached
    /// (`VFIO_DEVICE_ATTACH_IOMMUFD_PT`).
    ///
    /// # Errors
    /// `EINVAL` if the file is not bound; the errors of [`Iommufd::attach`] or
    /// [`Iommufd::replace`].
    pub fn attach(&self, pt_id: u32, pasid: Option<u32>) -> Result<u32, Errno> {
        let mut guard = self.binding();
        let binding = guard.as_mut().ok_or(Errno::EINVAL)?;
        let attached = match pasid {
            None => binding.attached,
            Some(pasid) => binding.pasids.contains(&pasid),
        };
        let hwpt = if attached {
            binding.ictx.replace(binding.dev_id, pt_id, pasid)?
        } else {
            binding.ictx.attach(binding.dev_id, pt_id, pasid)?
        };
        match pasid {
            None => binding.attached = true,
            Some(pasid) => {
                binding.pasids.insert(pasid);
            }
        }
        Ok(hwpt)
    }

    /// Detaches the device, or its PASID `pasid` (`VFIO_DEVICE_DETACH_IOMMUFD_PT`); nothing
    /// attached is not an error.
    ///
    /// # Errors
    /// `EINVAL` if the file is not bound.
    pub fn detach(&self, pasid: Option<u32>) -> Result<(), Errno> {
        let mut guard = self.binding();
        let binding = guard.as_mut().ok_or(Errno::EINVAL)?;
        let attached = match pasid {
            None => std::mem::take(&mut binding.attached),
            Some(pasid) => binding.pasids.remove(&pasid),
        };
        if attached {
            binding.ictx.detach(binding.dev_id, pasid)?;
        }
        Ok(())
    }

    /// Runs ioctl `number` on the file with `arg`, the bytes the argument pointer reaches, and
    /// `mem`, the caller's memory; `iommufd_of_fd` resolves the `iommufd` file descriptor of
    /// a bind (Linux `iommufd_ctx_from_fd()`: `EBADF` for a bad descriptor, `EBADFD` for one
    /// that is not an iommufd).
    ///
    /// * Bind, in Linux's order: the struct as `copy_struct_from_user()` reads it (`EFAULT`,
    ///   `EINVAL` below 16 bytes, `E2BIG`); `EINVAL` for a negative `iommufd` or unknown
    ///   flags; `EINVAL` if bound; with `VFIO_DEVICE_BIND_FLAG_TOKEN`, the 16-byte token is
    ///   read (`EFAULT`) and refused with `EINVAL`, since no vsva device is an SR-IOV function
    ///   that takes one (`vfio_pci_validate_vf_token()`); then the descriptor; then
    ///   [`bind`](Self::bind). Only `out_devid` is written back.
    /// * Attach and detach: `EINVAL` unless bound; the struct as VFIO reads it (`EFAULT`;
    ///   `EINVAL` for a short `argsz`, unknown flags, or `PASID` without room for `pasid`);
    ///   then [`attach`](Self::attach) / [`detach`](Self::detach). Attach writes back only
    ///   `pt_id`.
    ///
    /// # Errors
    /// As said; `ENOTTY` for another ioctl on a bound file (`EINVAL` on an unbound one).
    pub fn ioctl(
        &self,
        number: u64,
        arg: &mut [u8],
        mem: &dyn UserMemory,
        iommufd_of_fd: &dyn Fn(i32) -> Result<Arc<Iommufd>, Errno>,
    ) -> Result<(), Errno> {
        let number = number as u32;
        if number == VFIO_DEVICE_BIND_IOMMUFD {
            return self.ioctl_bind(arg, mem, iommufd_of_fd);
        }
        if self.dev_id().is_none() {
            return Err(Errno::EINVAL);
        }
        match number {
            VFIO_DEVICE_ATTACH_IOMMUFD_PT => {
                let Request::VfioDeviceAttachIommufdPt(mut cmd) =
                    decode(Command::VfioDeviceAttachIommufdPt, arg)?
                else {
                    return Err(Errno::EINVAL);
                };
                let flags = VfioAttachFlags::from_bits_retain(cmd.flags);
                let pasid = flags.contains(VfioAttachFlags::PASID).then_some(cmd.pasid);
                cmd.pt_id = self.attach(cmd.pt_id, pasid)?;
                let pt_id = core::mem::offset_of!(VfioDeviceAttachIommufdPt, pt_id);
                write_back_range(&cmd, pt_id..pt_id + size_of::<u32>(), arg)
            }
            VFIO_DEVICE_DETACH_IOMMUFD_PT => {
                let Request::VfioDeviceDetachIommufdPt(cmd) =
                    decode(Command::VfioDeviceDetachIommufdPt, arg)?
                else {
                    return Err(Errno::EINVAL);
                };
                let flags = VfioDetachFlags::from_bits_retain(cmd.flags);
                self.detach(flags.contains(VfioDetachFlags::PASID).then_some(cmd.pasid))
            }
            _ => Err(Errno::ENOTTY),
        }
    }

    fn ioctl_bind(
        &self,
        arg: &mut [u8],
        mem: &dyn UserMemory,
        iommufd_of_fd: &dyn Fn(i32) -> Result<Arc<Iommufd>, Errno>,
    ) -> Result<(), Errno> {
        let Request::VfioDeviceBindIommufd(mut cmd) = decode(Command::VfioDeviceBindIommufd, arg)?
        else {
            return Err(Errno::EINVAL);
        };
        let flags = VfioBindFlags::from_bits(cmd.flags).ok_or(Errno::EINVAL)?;
        if cmd.iommufd < 0 {
            return Err(Errno::EINVAL);
        }
        if self.dev_id().is_some() {
            return Err(Errno::EINVAL);
        }
        if flags.contains(VfioBindFlags::TOKEN) {
            let mut uuid = [0u8; 16];
            mem.read(cmd.token_uuid_ptr, &mut uuid)?;
            return Err(Errno::EINVAL);
        }
        let ictx = iommufd_of_fd(cmd.iommufd)?;
        cmd.out_devid = self.bind(ictx)?;
        let out = core::mem::offset_of!(VfioDeviceBindIommufd, out_devid);
        write_back_range(&cmd, out..out + size_of::<u32>(), arg)
    }

    /// Detaches everything and unbinds (`vfio_df_unbind_iommufd()`).
    fn unbind(&self) {
        let Some(binding) = self.binding().take() else {
            return;
        };
        for &pasid in binding.pasids.iter().rev() {
            if let Err(errno) = binding.ictx.detach(binding.dev_id, Some(pasid)) {
                tracing::error!(pasid, %errno, "detach at close failed");
            }
        }
        if binding.attached {
            if let Err(errno) = binding.ictx.detach(binding.dev_id, None) {
                tracing::error!(%errno, "detach at close failed");
            }
        }
        if let Err(errno) = binding.ictx.unbind_device(binding.dev_id) {
            tracing::error!(%errno, "unbind at close failed");
        }
        *self.device.opened() = false;
    }
}

impl Drop for VfioDeviceFile {
    /// Closing the file.
    fn drop(&mut self) {
        self.unbind();
    }
}

impl std::fmt::Debug for VfioDeviceFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VfioDeviceFile")
            .field("rid", &self.device.info.rid)
            .field("dev_id", &self.dev_id())
            .finish()
    }
}
