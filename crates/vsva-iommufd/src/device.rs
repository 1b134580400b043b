//! The device object: a PCI function bound to the context, and what iommufd reports about it
//! (Linux `struct iommufd_device`, `drivers/iommu/iommufd/device.c`: `iommufd_device_bind()`,
//! `iommufd_device_unbind()`, `iommufd_get_hw_info()`).
//!
//! A device is bound by the driver that owns it — VFIO, for user space
//! ([`vfio_cdev`](crate::vfio_cdev)) — and only unbound by that driver: the binder holds a
//! reference, so `IOMMU_DESTROY` of a device ID is always `EBUSY`, as in Linux where
//! `iommufd_device_bind()` takes a `users` reference until `iommufd_device_unbind()`.
//! Attaching it to page tables is [`attach`](crate::attach).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use vsva_iommu::{DeviceCaps, Iommu};
use vsva_mem::{Pasid, Rid};

use crate::abi::{
    Errno, HwCapabilities, HwInfoFlags, HwInfoType, IommuHwInfo, check_zero, known_flags,
};
use crate::ctx::Iommufd;
use crate::hw_pagetable::HwptRef;
use crate::io_pagetable::ReservedBy;
use crate::object::{Held, IommufdObject, Object, ObjectHeader, ObjectType};
use crate::user_memory::{UserMemory, clear_user};

/// What the binder tells iommufd about the device: Linux reads it from the `struct device` /
/// `struct pci_dev` VFIO passes to `iommufd_device_bind()`.
///
/// `caps` must be what the device was added to the IOMMU core with
/// ([`Iommu::add_device`]); the PASID Control enables are the device's PCIe PASID capability
/// as the IOMMU driver set it up (Linux enables Execute and Privileged Mode whenever the
/// device supports them, in its `probe_finalize` → `pci_enable_pasid()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The requester ID the device's DMA carries.
    pub rid: Rid,
    /// PASID width, ATS and PRI, as the IOMMU core knows them.
    pub caps: DeviceCaps,
    /// PASID Control: Execute Permission Enable (`PCI_PASID_CTRL_EXEC`).
    pub pasid_exec: bool,
    /// PASID Control: Privileged Mode Enable (`PCI_PASID_CTRL_PRIV`).
    pub pasid_priv: bool,
}

impl DeviceInfo {
    /// A device with `caps` and neither Execute nor Privileged Mode enabled.
    pub fn new(rid: Rid, caps: DeviceCaps) -> DeviceInfo {
        DeviceInfo {
            rid,
            caps,
            pasid_exec: false,
            pasid_priv: false,
        }
    }
}

/// The attachments of a device, by PASID; PASID 0 stands for the requests without PASID
/// (Linux `IOMMU_NO_PASID`).
#[derive(Default)]
pub(crate) struct Attachments {
    /// Set at unbind: nothing may be attached any more.
    pub(crate) unbound: bool,
    /// The HWPT each PASID is attached to; each entry holds its HWPT.
    pub(crate) pasids: BTreeMap<u32, HwptRef>,
}

/// A device bound to the context.
pub struct Device {
    header: ObjectHeader,
    info: DeviceInfo,
    iommu: Arc<Iommu>,
    attachments: Mutex<Attachments>,
    /// The device's vDEVICE, by object ID (`idev->vdev`).
    vdevice: Mutex<Option<u32>>,
}

impl Device {
    /// The device's object ID (`dev_id` of the uAPI).
    pub fn id(&self) -> u32 {
        self.header.id()
    }

    /// The requester ID.
    pub fn rid(&self) -> Rid {
        self.info.rid
    }

    /// What the binder said about it.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// The log2 of the number of PASIDs the device may use, 0 without PASID: the smaller of
    /// the device's and the IOMMU's widths (`dev->iommu->max_pasids`, from
    /// `dev_iommu_get_max_pasids()`).
    pub fn max_pasid_log2(&self) -> u8 {
        match self.info.caps.pasid_bits {
            0 => 0,
            bits => bits.min(self.iommu.ops().pasid_bits()),
        }
    }

    /// The attachments now, as (PASID, HWPT ID); PASID 0 is the requests without PASID.
    pub fn attached(&self) -> Vec<(u32, u32)> {
        self.lock()
            .pasids
            .iter()
            .map(|(&pasid, hwpt)| (pasid, hwpt.id()))
            .collect()
    }

    pub(crate) fn iommu(&self) -> &Arc<Iommu> {
        &self.iommu
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Attachments> {
        self.attachments.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the attachment of `pasid` down: off the IOMMU core, and for the requests
    /// without PASID the device's reserved regions out of the IOAS
    /// (`iommufd_hw_pagetable_detach()`). Returns the HWPT it held, for the caller to put.
    pub(crate) fn detach_locked(&self, st: &mut Attachments, pasid: u32) -> Option<HwptRef> {
        let hwpt = st.pasids.remove(&pasid)?;
        let detached = Pasid::new(pasid)
            .map_err(|_| Errno::EINVAL)
            .and_then(|core| hwpt.core_detach(&self.iommu, self.rid(), core));
        if let Err(errno) = detached {
            tracing::error!(dev = self.id(), pasid, %errno, "detach in the IOMMU core failed");
        }
        if pasid == 0 {
            hwpt.paging()
                .ioas()
                .iopt()
                .unreserve(ReservedBy::Device(self.id()));
        }
        Some(hwpt)
    }
}

impl Device {
    /// The object ID of the device's vDEVICE, if it has one.
    pub fn vdevice(&self) -> Option<u32> {
        *self.vdevice.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_vdevice(&self, id: Option<u32>) {
        *self.vdevice.lock().unwrap_or_else(|e| e.into_inner()) = id;
    }
}

impl IommufdObject for Device {
    const TYPE: ObjectType = ObjectType::Device;

    fn header(&self) -> &ObjectHeader {
        &self.header
    }

    fn downcast(object: &Object) -> Option<&Arc<Self>> {
        match object {
            Object::Device(device) => Some(device),
            _ => None,
        }
    }
}

impl Drop for Device {
    /// `iommufd_device_destroy()`: whatever is still attached is detached, PASIDs first (a
    /// context closed with devices bound; [`Iommufd::unbind_device`] detaches before).
    fn drop(&mut self) {
        let mut st = std::mem::take(&mut *self.lock());
        let pasids: Vec<u32> = st.pasids.keys().rev().copied().collect();
        for pasid in pasids {
            self.detach_locked(&mut st, pasid);
        }
    }
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("id", &self.id())
            .field("rid", &self.rid())
            .field("attached", &self.attached())
            .finish()
    }
}

impl Iommufd {
    /// The device `id` (`iommufd_get_device()`).
    ///
    /// # Errors
    /// `ENOENT` if `id` is not a bound device.
    pub fn get_device(&self, id: u32) -> Result<Held<Device>, Errno> {
        self.get(id)
    }

    /// Binds a device to the context (`iommufd_device_bind()`) and returns its ID, the
    /// `out_devid` of `VFIO_DEVICE_BIND_IOMMUFD`. The binder holds the device until
    /// [`unbind_device`](Self::unbind_device).
    ///
    /// The device must have been added to the IOMMU core; one the core does not know fails at
    /// its first attach with `ENODEV` (Linux fails the bind itself, `iommufd_get_group()`,
    /// with the same errno).
    ///
    /// # Errors
    /// `EINVAL` if the device is bound to this context already — what VFIO, the only binder,
    /// returns for a second bind of a device (`vfio_df_ioctl_bind_iommufd()`,
    /// `vfio_df_open()`); `EBUSY` if no object ID is free.
    pub fn bind_device(&self, info: DeviceInfo) -> Result<u32, Errno> {
        let _serial = self.attach_lock();
        if self.all::<Device>().iter().any(|dev| dev.rid() == info.rid) {
            return Err(Errno::EINVAL);
        }
        let mut binder = None;
        let id = self.create(|id| {
            let device = Arc::new(Device {
                header: ObjectHeader::new(id),
                info,
                iommu: self.iommu().clone(),
                attachments: Mutex::new(Attachments::default()),
                vdevice: Mutex::new(None),
            });
            binder = Some(Held::unpublished(&device));
            Ok(Object::Device(device))
        })?;
        if let Some(held) = binder {
            self.state().bound.insert(id, held);
        }
        Ok(id)
    }

    /// Unbinds device `dev_id` (`iommufd_device_unbind()`, after VFIO's
    /// `vfio_iommufd_physical_unbind()` detached it): every attachment is taken down (an
    /// automatic HWPT goes with its last device) and the device leaves the object table. Its
    /// vDEVICE, if any, is destroyed first and its ID stays taken
    /// (the `vdevice` module).
    ///
    /// # Errors
    /// `ENOENT` if `dev_id` is not a device bound to this context.
    pub fn unbind_device(&self, dev_id: u32) -> Result<(), Errno> {
        let _serial = self.attach_lock();
        let held = self.state().bound.remove(&dev_id).ok_or(Errno::ENOENT)?;
        // `iommufd_device_pre_destroy()`: no new vDEVICE, and the one it has is destroyed,
        // leaving a tombstone.
        held.lock().unbound = true;
        let vdevice = held
            .vdevice()
            .and_then(|id| self.state().objects.tombstone(id));
        drop(vdevice);
        let detached: Vec<HwptRef> = {
            let mut st = held.lock();
            st.unbound = true;
            let pasids: Vec<u32> = st.pasids.keys().rev().copied().collect();
            pasids
                .into_iter()
                .filter_map(|pasid| held.detach_locked(&mut st, pasid))
                .collect()
        };
        for hwpt in detached {
            self.put_hwpt(hwpt);
        }
        let removed = self.state().objects.remove_owned(dev_id);
        drop(held);
        drop(removed);
        Ok(())
    }

    /// `IOMMU_GET_HW_INFO` (`iommufd_get_hw_info()`): what the IOMMU behind device
    /// `cmd.dev_id` is.
    ///
    /// * The driver data ([`vsva_iommu::IommuOps::hw_info`], Linux `iommu_ops::hw_info`, asked
    ///   for the input `data_type`) goes to `cmd.data_uptr`:
    ///   `min(cmd.data_len, its length)` bytes, then zeros up to `cmd.data_len`. `data_len`
    ///   becomes the data's full length and `data_type` its type (NONE, length 0, for an IOMMU
    ///   whose driver reports nothing).
    /// * `out_capabilities`: `DIRTY_TRACKING` if the IOMMU tracks dirty pages;
    ///   `PCI_ATS_NOT_SUPPORTED` unless the device has ATS and the IOMMU can invalidate device
    ///   TLBs (the driver's `info->ats_supported`); with PASIDs, `PCI_PASID_EXEC` / `PCI_PASID_PRIV`
    ///   from the device's PASID Control.
    /// * `out_max_pasid_log2`: [`Device::max_pasid_log2`].
    ///
    /// # Errors
    /// In order: `EOPNOTSUPP` for unknown flags or a non-zero `__reserved` byte (without
    /// `INPUT_TYPE` the input `data_type` is ignored); `ENOENT` if `dev_id` is not a device;
    /// the driver's `EOPNOTSUPP` if `INPUT_TYPE` asks for a type other than DEFAULT or its
    /// own; `EFAULT` if the data cannot be written or cleared.
    pub fn get_hw_info(&self, cmd: &mut IommuHwInfo, mem: &dyn UserMemory) -> Result<(), Errno> {
        let flags = known_flags::<HwInfoFlags>(cmd.flags)?;
        check_zero(&cmd.__reserved)?;
        if !flags.contains(HwInfoFlags::INPUT_TYPE) {
            cmd.data_type = HwInfoType::DEFAULT;
        }
        let dev = self.get_device(cmd.dev_id)?;
        let info = self.iommu().ops().hw_info(cmd.data_type.0)?;
        let data = info.data;
        let data_type = HwInfoType(info.data_type);
        let copy_len = (cmd.data_len as usize).min(data.len());
        if copy_len > 0 {
            mem.write(cmd.data_uptr, &data[..copy_len])?;
        }
        if copy_len < cmd.data_len as usize {
            let at = cmd
                .data_uptr
                .checked_add(copy_len as u64)
                .ok_or(Errno::EFAULT)?;
            clear_user(mem, at, u64::from(cmd.data_len) - copy_len as u64)?;
        }
        cmd.data_len = data.len() as u32;
        cmd.data_type = data_type;
        cmd.out_capabilities = self.hw_capabilities(&dev).bits();
        cmd.out_max_pasid_log2 = dev.max_pasid_log2();
        Ok(())
    }

    /// The `out_capabilities` of [`get_hw_info`](Self::get_hw_info).
    fn hw_capabilities(&self, dev: &Device) -> HwCapabilities {
        let mut caps = HwCapabilities::empty();
        if self.iommu().ops().dirty_tracking() {
            caps |= HwCapabilities::DIRTY_TRACKING;
        }
        let dev_tlb = self.iommu().ops().dev_tlb_invalidation();
        if !(dev.info().caps.ats && dev_tlb) {
            caps |= HwCapabilities::PCI_ATS_NOT_SUPPORTED;
        }
        if dev.max_pasid_log2() > 0 {
            if dev.info().pasid_exec {
                caps |= HwCapabilities::PCI_PASID_EXEC;
            }
            if dev.info().pasid_priv {
                caps |= HwCapabilities::PCI_PASID_PRIV;
            }
        }
        caps
    }
}
