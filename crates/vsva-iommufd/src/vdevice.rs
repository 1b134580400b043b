//! vDEVICE objects and `IOMMU_VDEVICE_ALLOC` (Linux `struct iommufd_vdevice`,
//! `drivers/iommu/iommufd/viommu.c`): a device's guest-visible ID (`virt_id`, e.g. a vRID or vSID)
//! on a vIOMMU.
//!
//! Rules kept from Linux:
//! * a device has at most one vDEVICE, and a virtual ID names at most one vDEVICE per vIOMMU
//!   (`EEXIST` for either);
//! * a vDEVICE holds its vIOMMU and its device: `IOMMU_DESTROY` of the vIOMMU is `EBUSY`
//!   while it lives;
//! * unbinding a device destroys its vDEVICE first and leaves its ID a tombstone — taken, but
//!   naming nothing (`ENOENT`), until the context is closed (`iommufd_device_pre_destroy()`,
//!   `iommufd_object_tombstone_user()`); a device being unbound gets no new vDEVICE
//!   (`ENOENT`, `idev->destroying`).
//!
//! While it lives, a vDEVICE's device has an event handler in the IOMMU core that reports the
//! device's faults the driver makes guest events of to the vIOMMU's vEVENTQ
//! ([`veventq`](crate::veventq)); it is removed when the vDEVICE goes.

use std::sync::Arc;

use crate::abi::{Errno, IommuVdeviceAlloc};
use crate::ctx::Iommufd;
use crate::device::Device;
use crate::object::{Held, IommufdObject, Object, ObjectHeader, ObjectType};
use crate::veventq::event_handler;
use crate::viommu::{VdevEntry, Viommu};

/// A virtual device: a bound device's ID on a vIOMMU.
pub struct Vdevice {
    header: ObjectHeader,
    viommu: Held<Viommu>,
    dev: Held<Device>,
    virt_id: u64,
}

impl Vdevice {
    /// The vDEVICE's object ID.
    pub fn id(&self) -> u32 {
        self.header.id()
    }

    /// The vIOMMU it is on.
    pub fn viommu(&self) -> &Viommu {
        &self.viommu
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.dev
    }

    /// The device's ID as the guest sees it.
    pub fn virt_id(&self) -> u64 {
        self.virt_id
    }
}

impl IommufdObject for Vdevice {
    const TYPE: ObjectType = ObjectType::Vdevice;

    fn header(&self) -> &ObjectHeader {
        &self.header
    }

    fn downcast(object: &Object) -> Option<&Arc<Self>> {
        match object {
            Object::Vdevice(vdev) => Some(vdev),
            _ => None,
        }
    }
}

impl Drop for Vdevice {
    /// `iommufd_vdevice_destroy()`: off the vIOMMU's table and the device; the vIOMMU and the
    /// device are released with the `Held`s.
    fn drop(&mut self) {
        let mut vdevs = self.viommu.vdevs();
        if vdevs.get(&self.virt_id).is_some_and(|e| e.id == self.id()) {
            vdevs.remove(&self.virt_id);
        }
        drop(vdevs);
        // A device the core no longer knows has no handler left to remove.
        let _ = self.dev.iommu().set_event_handler(self.dev.rid(), None);
        self.dev.set_vdevice(None);
    }
}

impl std::fmt::Debug for Vdevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vdevice")
            .field("id", &self.id())
            .field("viommu", &self.viommu.id())
            .field("dev", &self.dev.id())
            .field("virt_id", &format_args!("{:#x}", self.virt_id))
            .finish()
    }
}

impl Iommufd {
    /// The vDEVICE `id` (`iommufd_get_vdevice()`).
    ///
    /// # Errors
    /// `ENOENT` if `id` is not a vDEVICE.
    pub fn get_vdevice(&self, id: u32) -> Result<Held<Vdevice>, Errno> {
        self.get(id)
    }

    /// `IOMMU_VDEVICE_ALLOC` (`iommufd_vdevice_alloc_ioctl()`): gives device `cmd.dev_id` the
    /// virtual ID `cmd.virt_id` on vIOMMU `cmd.viommu_id`. Returns the new ID in
    /// `cmd.out_vdevice_id`.
    ///
    /// # Errors
    /// In Linux's order (`virt_id` above `ULONG_MAX` cannot happen on a 64-bit host):
    /// 1. `ENOENT` if `viommu_id` is not a vIOMMU, then if `dev_id` is not a device;
    /// 2. `EINVAL` if the device is behind another IOMMU than the vIOMMU's;
    /// 3. `ENOENT` if the device is being unbound;
    /// 4. `EEXIST` if the device has a vDEVICE already, then if `virt_id` is taken on the
    ///    vIOMMU.
    ///
    /// On a driver vIOMMU the device's faults are then offered to the vIOMMU's vEVENTQs
    /// (the `veventq` module).
    pub fn vdevice_alloc(&self, cmd: &mut IommuVdeviceAlloc) -> Result<(), Errno> {
        let viommu = self.get_viommu(cmd.viommu_id)?;
        let dev = self.get_device(cmd.dev_id)?;
        if !Arc::ptr_eq(viommu.iommu(), dev.iommu()) {
            return Err(Errno::EINVAL);
        }
        // The attach lock stands for `idev->igroup->lock`: unbind takes it too.
        let _serial = self.attach_lock();
        if dev.lock().unbound {
            return Err(Errno::ENOENT);
        }
        if dev.vdevice().is_some() {
            return Err(Errno::EEXIST);
        }
        let virt_id = cmd.virt_id;
        if viommu.vdevs().contains_key(&virt_id) {
            return Err(Errno::EEXIST);
        }
        cmd.out_vdevice_id = self.create(|id| {
            let rid = dev.rid();
            // the vIOMMU's table entry (`xa_cmpxchg()`)
            vsva_mem::fail_nth::check()?;
            viommu.vdevs().insert(virt_id, VdevEntry { id, rid });
            dev.set_vdevice(Some(id));
            if viommu.has_driver_ops() {
                let handler = event_handler(dev.iommu().ops().clone(), viommu.events(), virt_id);
                if let Err(e) = dev.iommu().set_event_handler(rid, Some(handler)) {
                    // A device the core does not know yet raises no faults.
                    tracing::debug!(%rid, %e, "vDEVICE without an event handler");
                }
            }
            Ok(Object::Vdevice(Arc::new(Vdevice {
                header: ObjectHeader::new(id),
                viommu,
                dev,
                virt_id,
            })))
        })?;
        Ok(())
    }
}
