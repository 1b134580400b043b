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
//!
//! # Emulated devices
//! A device with no IOMMU behind it (a mediated device, a device the kernel emulates) is
//! bound through an [`Access`] instead (`vfio_iommufd_emulated_bind()` and friends of
//! `drivers/vfio/iommufd.c`): binding creates the access and returns *its* object ID as the
//! device ID; attaching takes an IOAS only (a HWPT ID is `ENOENT`, as the access looks the
//! ID up as an IOAS) and leaves `pt_id` as given; a second attach replaces; PASIDs are
//! `EOPNOTSUPP` (emulated drivers have no `pasid_attach_ioas`); unbinding destroys the
//! access. The driver reaches memory with [`VfioDevice::pin_pages`],
//! [`VfioDevice::unpin_pages`] and [`VfioDevice::dma_rw`] (`vfio_pin_pages()`,
//! `vfio_unpin_pages()`, `vfio_dma_rw()` of `vfio_main.c`) and must unpin in its
//! [`EmulatedDriver::dma_unmap`].

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use vsva_mem::PhysMem;

use crate::abi::copy::read_vfio_flag_extended;
use crate::abi::ioctl::{
    VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_BIND_IOMMUFD, VFIO_DEVICE_DETACH_IOMMUFD_PT,
};
use crate::abi::{
    Command, Errno, Request, VfioAttachFlags, VfioBindFlags, VfioDetachFlags,
    VfioDeviceAttachIommufdPt, VfioDeviceBindIommufd, decode, write_back_range,
};
use crate::access::{Access, AccessOps};
use crate::ctx::Iommufd;
use crate::device::DeviceInfo;
use crate::object::Held;
use crate::pages::RwBuf;
use crate::user_memory::UserMemory;

const PAGE: u64 = 4096;

/// The driver of an emulated device, as VFIO calls it (`struct vfio_device_ops`).
pub trait EmulatedDriver: Send + Sync {
    /// `dma_unmap`: `[iova, iova + length)` is going away (or the device is being detached:
    /// `iova` 0, `length` `u64::MAX`). The driver stops using the memory there and unpins,
    /// with [`VfioDevice::unpin_pages`], every page it pinned in it, before returning.
    fn dma_unmap(&self, vdev: &VfioDevice, iova: u64, length: u64);
}

/// What a device is to VFIO's iommufd code.
enum Backing {
    /// A PCI device behind the IOMMU, bound as an iommufd device.
    Physical(DeviceInfo),
    /// A device without an IOMMU, bound as an access.
    Emulated {
        driver: Arc<dyn EmulatedDriver>,
        mem: Arc<dyn PhysMem>,
        /// The access while bound (`vdev->iommufd_access`).
        access: Mutex<Option<Held<Access>>>,
    },
}

/// A device VFIO drives, whose cdev user space opens.
pub struct VfioDevice {
    backing: Backing,
    /// Whether a file of the device is bound (`device->open_count` of the cdev path).
    opened: Mutex<bool>,
    this: Weak<VfioDevice>,
}

impl std::fmt::Debug for VfioDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.backing {
            Backing::Physical(info) => f.debug_tuple("VfioDevice").field(&info.rid).finish(),
            Backing::Emulated { .. } => f.write_str("VfioDevice(emulated)"),
        }
    }
}

/// The access operations VFIO gives its emulated devices (`vfio_user_ops`): they pin, and
/// unmap goes to the driver's `dma_unmap`.
struct VfioUserOps {
    vdev: Weak<VfioDevice>,
}

impl AccessOps for VfioUserOps {
    fn needs_pin_pages(&self) -> bool {
        true
    }

    /// `vfio_emulated_unmap()`.
    fn unmap(&self, _access: &Access, iova: u64, length: u64) {
        if let Some(vdev) = self.vdev.upgrade() {
            if let Backing::Emulated { driver, .. } = &vdev.backing {
                driver.dma_unmap(&vdev, iova, length);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl VfioDevice {
    /// A device with what iommufd is to be told about it at bind.
    pub fn new(info: DeviceInfo) -> Arc<VfioDevice> {
        Self::with_backing(Backing::Physical(info))
    }

    /// An emulated device whose driver is `driver`, reaching memory `mem` through an access.
    pub fn emulated(driver: Arc<dyn EmulatedDriver>, mem: Arc<dyn PhysMem>) -> Arc<VfioDevice> {
        Self::with_backing(Backing::Emulated {
            driver,
            mem,
            access: Mutex::new(None),
        })
    }

    fn with_backing(backing: Backing) -> Arc<VfioDevice> {
        Arc::new_cyclic(|this| VfioDevice {
            backing,
            opened: Mutex::new(false),
            this: this.clone(),
        })
    }

    /// What iommufd is told about a physical device; `None` for an emulated one.
    pub fn info(&self) -> Option<&DeviceInfo> {
        match &self.backing {
            Backing::Physical(info) => Some(info),
            Backing::Emulated { .. } => None,
        }
    }

    /// Whether the device is emulated (bound through an access).
    pub fn is_emulated(&self) -> bool {
        matches!(self.backing, Backing::Emulated { .. })
    }

    /// The emulated device's access while bound.
    fn access(&self) -> Option<Held<Access>> {
        match &self.backing {
            Backing::Emulated { access, .. } => lock(access).clone(),
            Backing::Physical(_) => None,
        }
    }

    /// `vfio_pin_pages()`: pins `npage` pages from the page holding `iova` for the emulated
    /// device's DMA (`write`: `IOMMU_WRITE` in `prot`) and returns their physical
    /// addresses.
    ///
    /// # Errors
    /// `EINVAL` for 0 pages, a physical device or one not bound; then
    /// [`Access::pin_pages`]'s errors.
    pub fn pin_pages(&self, iova: u64, npage: u32, write: bool) -> Result<Vec<u64>, Errno> {
        if npage == 0 {
            return Err(Errno::EINVAL);
        }
        let access = self.access().ok_or(Errno::EINVAL)?;
        access.pin_pages(iova & !(PAGE - 1), u64::from(npage) * PAGE, write)
    }

    /// `vfio_unpin_pages()`: drops the pins of [`pin_pages`](Self::pin_pages) with the same
    /// `iova` and `npage`. Without a bound access it is a driver bug: logged.
    pub fn unpin_pages(&self, iova: u64, npage: u32) {
        match self.access() {
            Some(access) if npage > 0 => {
                access.unpin_pages(iova & !(PAGE - 1), u64::from(npage) * PAGE);
            }
            _ => tracing::error!(iova, npage, "vfio unpin without pins"),
        }
    }

    /// `vfio_dma_rw()`: copies between `buf` and the device's IOVAs, any alignment.
    ///
    /// # Errors
    /// `EINVAL` for an empty buffer, a physical device or one not bound; then
    /// [`Access::rw`]'s errors.
    pub fn dma_rw(&self, iova: u64, buf: RwBuf<'_>) -> Result<(), Errno> {
        if buf.is_empty() {
            return Err(Errno::EINVAL);
        }
        let access = self.access().ok_or(Errno::EINVAL)?;
        access.rw(iova, buf)
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
        lock(&self.opened)
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
    /// returns its device ID there — for an emulated device, its new access's ID
    /// (`vfio_iommufd_emulated_bind()`).
    ///
    /// # Errors
    /// `EINVAL` if this file is bound, or another file of the device is; the errors of
    /// [`Iommufd::bind_device`] or [`Iommufd::access_create`].
    pub fn bind(&self, ictx: Arc<Iommufd>) -> Result<u32, Errno> {
        let mut binding = self.binding();
        if binding.is_some() {
            return Err(Errno::EINVAL);
        }
        let mut opened = self.device.opened();
        if *opened {
            return Err(Errno::EINVAL);
        }
        let dev_id = match &self.device.backing {
            Backing::Physical(info) => ictx.bind_device(*info)?,
            Backing::Emulated { mem, access, .. } => {
                let ops = Arc::new(VfioUserOps {
                    vdev: self.device.this.clone(),
                });
                let created = ictx.access_create(ops, mem.clone())?;
                let id = created.id();
                *lock(access) = Some(created);
                id
            }
        };
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
        if self.device.is_emulated() {
            return self.attach_emulated(pt_id, pasid);
        }
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

    /// `vfio_iommufd_emulated_attach_ioas()`: the access attaches to IOAS `pt_id`, or moves
    /// there if attached; `pt_id` comes back unchanged. The driver's `dma_unmap` may run (a
    /// move unmaps the old IOAS), so no VFIO lock is held around it.
    fn attach_emulated(&self, pt_id: u32, pasid: Option<u32>) -> Result<u32, Errno> {
        let attached = self
            .binding()
            .as_ref()
            .map(|b| b.attached)
            .ok_or(Errno::EINVAL)?;
        if pasid.is_some() {
            return Err(Errno::EOPNOTSUPP);
        }
        let access = self.device.access().ok_or(Errno::EINVAL)?;
        if attached {
            access.replace(pt_id)?;
        } else {
            access.attach(pt_id)?;
        }
        if let Some(binding) = self.binding().as_mut() {
            binding.attached = true;
        }
        Ok(pt_id)
    }

    /// Detaches the device, or its PASID `pasid` (`VFIO_DEVICE_DETACH_IOMMUFD_PT`); nothing
    /// attached is not an error.
    ///
    /// # Errors
    /// `EINVAL` if the file is not bound; `EOPNOTSUPP` for a PASID of an emulated device.
    pub fn detach(&self, pasid: Option<u32>) -> Result<(), Errno> {
        if self.device.is_emulated() {
            let attached = match self.binding().as_mut() {
                None => return Err(Errno::EINVAL),
                Some(_) if pasid.is_some() => return Err(Errno::EOPNOTSUPP),
                Some(b) => std::mem::take(&mut b.attached),
            };
            if let (true, Some(access)) = (attached, self.device.access()) {
                access.detach();
            }
            return Ok(());
        }
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
        if self.device.is_emulated() && pasid_asked(number, arg) {
            // `vfio_df_ioctl_attach_pt()` / `_detach_pt()` refuse the PASID flag of a driver
            // without PASID operations before reading the `pasid` field
            return Err(Errno::EOPNOTSUPP);
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

    /// Detaches everything and unbinds (`vfio_df_unbind_iommufd()`); an emulated device's
    /// access is destroyed, which detaches it through the driver's `dma_unmap`
    /// (`vfio_iommufd_emulated_unbind()`).
    fn unbind(&self) {
        let Some(binding) = self.binding().take() else {
            return;
        };
        if let Backing::Emulated { access, .. } = &self.device.backing {
            // The access stays the device's while it is destroyed: the driver's `dma_unmap`
            // unpins through it, as `vfio_iommufd_emulated_unbind()` clears
            // `vdev->iommufd_access` only after `iommufd_access_destroy()`.
            let held = lock(access).clone();
            if let Some(held) = held {
                binding.ictx.access_destroy(held);
            }
            lock(access).take();
            *self.device.opened() = false;
            return;
        }
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

/// Whether the attach or detach argument `arg` validly asks for a PASID (steps 1–3 of
/// `vfio_df_ioctl_attach_pt()`: read the head, check `argsz` and the flags).
fn pasid_asked(number: u32, arg: &[u8]) -> bool {
    if number != VFIO_DEVICE_ATTACH_IOMMUFD_PT && number != VFIO_DEVICE_DETACH_IOMMUFD_PT {
        return false;
    }
    let pasid = VfioAttachFlags::PASID.bits();
    let min = if number == VFIO_DEVICE_ATTACH_IOMMUFD_PT {
        12
    } else {
        8
    };
    read_vfio_flag_extended::<VfioDeviceAttachIommufdPt>(arg, min, pasid, &[])
        .is_ok_and(|cmd| cmd.flags & pasid != 0)
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
            .field("device", &self.device)
            .field("dev_id", &self.dev_id())
            .finish()
    }
}
