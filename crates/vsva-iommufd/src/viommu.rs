//! vIOMMU objects and `IOMMU_VIOMMU_ALLOC` (Linux `struct iommufd_viommu`,
//! `drivers/iommu/iommufd/viommu.c`).
//!
//! A vIOMMU is a VM's slice of one physical IOMMU: it holds a nesting-parent paging HWPT (the
//! VM's second stage) and remembers the IOMMU of the device it was created for, the vDEVICEs
//! ([`vdevice`](crate::vdevice)) that give devices guest-visible IDs on it, and its event
//! queues ([`veventq`](crate::veventq)).
//!
//! What a driver reads of a vIOMMU ([`vsva_iommu::ViommuContext`], implemented by [`Viommu`])
//! is its nesting parent's domain ID (SMMUv3: the VMID) and its vDEVICEs' devices by virtual ID
//! (`iommufd_viommu_find_dev()`). A driver vIOMMU (type other than `DEFAULT`) has the driver's
//! operations: nested HWPTs allocated on it (`IOMMU_HWPT_ALLOC` with the vIOMMU as `pt_id`,
//! [`Iommufd::hwpt_alloc`]) and invalidations through it (`IOMMU_HWPT_INVALIDATE` with the
//! vIOMMU as `hwpt_id`) are decoded by the driver
//! ([`vsva_iommu::IommuOps::viommu_alloc_domain_nested`],
//! [`vsva_iommu::IommuOps::viommu_cache_invalidate`]).
//!
//! # Which types exist
//! A driver type exists if the IOMMU's driver supports it
//! ([`vsva_iommu::IommuOps::viommu_type`], Linux `get_viommu_size` / `viommu_init`; vsva's
//! SMMUv3 driver has `IOMMU_VIOMMU_TYPE_ARM_SMMUV3`); a driver without vIOMMU operations (as
//! Linux's VT-d driver) makes every `IOMMU_VIOMMU_ALLOC` fail with `EOPNOTSUPP`, and
//! `IOMMU_VIOMMU_TYPE_DEFAULT` is refused before anything is looked up. That is what a context
//! does by default.
//!
//! The core-managed vIOMMU of `IOMMU_VIOMMU_TYPE_DEFAULT` — a vIOMMU with no driver
//! operations, only the core's bookkeeping — existed in the posted vIOMMU series ("iommufd:
//! Add vIOMMU infrastructure (Part-1)", v3, October 2024) and was dropped before it was
//! merged. [`Iommufd::set_core_viommu`] turns it on: DEFAULT is then accepted with that
//! series' checks, and everything a driver would provide behaves as mainline's core code does
//! for a vIOMMU without operations (`viommu->ops == NULL`): a nested HWPT on it and
//! `IOMMU_HWPT_INVALIDATE` on it are `EOPNOTSUPP` (see
//! [`hw_pagetable`](crate::hw_pagetable)), vDEVICEs are plain core objects.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use vsva_iommu::{Iommu, ViommuContext};
use vsva_mem::Rid;

use crate::abi::{
    Errno, HwQueueType, HwptAllocFlags, IommuHwQueueAlloc, IommuHwptAlloc, IommuViommuAlloc,
    ViommuType, check_zero,
};
use crate::ctx::Iommufd;
use crate::hw_pagetable::{HwptNested, HwptPaging};
use crate::object::{Held, IommufdObject, Object, ObjectHeader, ObjectType};
use crate::user_memory::{UserBuffer, UserMemory};
use crate::veventq::ViommuEvents;

/// A vDEVICE as its vIOMMU's table keeps it (`viommu->vdevs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct VdevEntry {
    /// The vDEVICE's object ID.
    pub(crate) id: u32,
    /// Its device's requester ID (`vdev->idev->dev`).
    pub(crate) rid: Rid,
}

/// A virtual IOMMU.
pub struct Viommu {
    header: ObjectHeader,
    type_: ViommuType,
    hwpt: Held<HwptPaging>,
    iommu: Arc<Iommu>,
    /// The vDEVICEs by virtual ID (`viommu->vdevs`).
    vdevs: Mutex<BTreeMap<u64, VdevEntry>>,
    /// Its vEVENTQs (`viommu->veventqs`), shared with the event handlers of its vDEVICEs.
    events: Arc<ViommuEvents>,
}

impl Viommu {
    /// The vIOMMU's object ID.
    pub fn id(&self) -> u32 {
        self.header.id()
    }

    /// Its type.
    pub fn viommu_type(&self) -> ViommuType {
        self.type_
    }

    /// The nesting-parent paging HWPT it holds.
    pub fn hwpt(&self) -> &HwptPaging {
        &self.hwpt
    }

    pub(crate) fn hwpt_held(&self) -> &Held<HwptPaging> {
        &self.hwpt
    }

    /// The physical IOMMU it is a slice of (`viommu->iommu_dev`).
    pub fn iommu(&self) -> &Arc<Iommu> {
        &self.iommu
    }

    /// The vDEVICEs on it: virtual ID to object ID, in virtual ID order.
    pub fn vdevices(&self) -> Vec<(u64, u32)> {
        self.vdevs().iter().map(|(&v, e)| (v, e.id)).collect()
    }

    /// Whether it has driver operations (Linux `viommu->ops`): every type but the
    /// core-managed `DEFAULT`.
    pub fn has_driver_ops(&self) -> bool {
        self.type_ != ViommuType::DEFAULT
    }

    /// The virtual ID of device `rid` on it, if a vDEVICE gives it one
    /// (`iommufd_viommu_get_vdev_id()`).
    pub fn virt_id_of(&self, rid: Rid) -> Option<u64> {
        self.vdevs()
            .iter()
            .find(|(_, e)| e.rid == rid)
            .map(|(&v, _)| v)
    }

    pub(crate) fn vdevs(&self) -> MutexGuard<'_, BTreeMap<u64, VdevEntry>> {
        self.vdevs.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn events(&self) -> &Arc<ViommuEvents> {
        &self.events
    }
}

impl ViommuContext for Viommu {
    /// The nesting parent's domain ID (SMMUv3: the VMID, `arm_vsmmu::vmid` taken from the
    /// stage-2 parent at `arm_vsmmu_init()`).
    fn parent_did(&self) -> u16 {
        self.hwpt.domain().did()
    }

    /// `iommufd_viommu_find_dev()`: the device of the vDEVICE with virtual ID `virt_id`.
    fn find_device(&self, virt_id: u64) -> Option<Rid> {
        self.vdevs().get(&virt_id).map(|e| e.rid)
    }
}

impl IommufdObject for Viommu {
    const TYPE: ObjectType = ObjectType::Viommu;

    fn header(&self) -> &ObjectHeader {
        &self.header
    }

    fn downcast(object: &Object) -> Option<&Arc<Self>> {
        match object {
            Object::Viommu(viommu) => Some(viommu),
            _ => None,
        }
    }
}

impl std::fmt::Debug for Viommu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viommu")
            .field("id", &self.id())
            .field("type", &self.type_)
            .field("hwpt", &self.hwpt.id())
            .finish()
    }
}

impl Iommufd {
    /// Turns the core-managed `IOMMU_VIOMMU_TYPE_DEFAULT` vIOMMU of the posted vIOMMU series on
    /// or off (off when the context is opened, as in mainline Linux; see the module docs).
    pub fn set_core_viommu(&self, on: bool) {
        self.core_viommu.store(on, Ordering::Release);
    }

    /// Whether `IOMMU_VIOMMU_TYPE_DEFAULT` is accepted.
    pub fn core_viommu(&self) -> bool {
        self.core_viommu.load(Ordering::Acquire)
    }

    /// The vIOMMU `id` (`iommufd_get_viommu()`).
    ///
    /// # Errors
    /// `ENOENT` if `id` is not a vIOMMU.
    pub fn get_viommu(&self, id: u32) -> Result<Held<Viommu>, Errno> {
        self.get(id)
    }

    /// `IOMMU_VIOMMU_ALLOC` (`iommufd_viommu_alloc_ioctl()`): a vIOMMU of type `cmd.type_`
    /// over the nesting-parent HWPT `cmd.hwpt_id`, for the IOMMU of device `cmd.dev_id`.
    /// Returns the new ID in `cmd.out_viommu_id`. The vIOMMU holds the HWPT: its
    /// `IOMMU_DESTROY` is `EBUSY` until the vIOMMU goes. It does not hold the device.
    ///
    /// # Errors
    /// In Linux's order:
    /// 1. `EOPNOTSUPP` for non-zero `flags`, or for `DEFAULT` unless
    ///    [`set_core_viommu`](Self::set_core_viommu) turned it on;
    /// 2. `ENOENT` if `dev_id` is not a device;
    /// 3. `EOPNOTSUPP` for any type other than `DEFAULT` that the driver does not support
    ///    ([`vsva_iommu::IommuOps::viommu_type`]);
    /// 4. `ENOENT` if `hwpt_id` is not a paging HWPT (`iommufd_get_hwpt_paging()`);
    /// 5. `EINVAL` if it was not allocated with `IOMMU_HWPT_ALLOC_NEST_PARENT`.
    ///
    /// `data_len` / `data_uptr` are driver data, which a core-managed vIOMMU has none of: they
    /// are not read (the series that had `DEFAULT` had no such fields); `__reserved` is not
    /// checked, as in Linux.
    pub fn viommu_alloc(&self, cmd: &mut IommuViommuAlloc) -> Result<(), Errno> {
        check_zero(&cmd.flags)?;
        if cmd.type_ == ViommuType::DEFAULT && !self.core_viommu() {
            return Err(Errno::EOPNOTSUPP);
        }
        let dev = self.get_device(cmd.dev_id)?;
        if cmd.type_ != ViommuType::DEFAULT && !dev.iommu().ops().viommu_type(cmd.type_.0) {
            return Err(Errno::EOPNOTSUPP);
        }
        let hwpt = self.get_hwpt_paging(cmd.hwpt_id)?;
        if !hwpt.nest_parent() {
            return Err(Errno::EINVAL);
        }
        let type_ = cmd.type_;
        let iommu = dev.iommu().clone();
        cmd.out_viommu_id = self.create(|id| {
            Ok(Object::Viommu(Arc::new(Viommu {
                header: ObjectHeader::new(id),
                type_,
                hwpt,
                iommu,
                vdevs: Mutex::new(BTreeMap::new()),
                events: Arc::new(ViommuEvents::default()),
            })))
        })?;
        Ok(())
    }

    /// The vIOMMU branch of [`hwpt_alloc`](Self::hwpt_alloc)
    /// (`iommufd_viommu_alloc_hwpt_nested()`): a nested HWPT whose first stage the vIOMMU's
    /// driver decodes from the user data ([`vsva_iommu::IommuOps::viommu_alloc_domain_nested`],
    /// given the vIOMMU as [`ViommuContext`]), over the vIOMMU's nesting parent. The HWPT
    /// holds the vIOMMU. With `IOMMU_HWPT_FAULT_ID_VALID` it gets the fault queue
    /// `cmd.fault_id` as other nested HWPTs do (vsva's extension for SMMUv3: the stalls and PRI
    /// page requests of its attachments go there).
    ///
    /// # Errors
    /// In order: `EOPNOTSUPP` for flags other than `FAULT_ID_VALID` (Linux's core also lets
    /// `IOMMU_HWPT_ALLOC_PASID` through to the driver, whose SMMUv3 refuses every flag with
    /// `EOPNOTSUPP` before reading the data: the same answer), for no data, for the
    /// core-managed vIOMMU; the driver's errors, with `FAULT_ID_VALID` already taken out of
    /// the flags it sees; the core's allocation error; `ENOENT` if `fault_id` is not a fault
    /// queue.
    pub(crate) fn viommu_alloc_hwpt_nested(
        &self,
        viommu: Held<Viommu>,
        cmd: &IommuHwptAlloc,
        mem: &dyn UserMemory,
    ) -> Result<u32, Errno> {
        if cmd.flags & !HwptAllocFlags::FAULT_ID_VALID.bits() != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        if cmd.data_len == 0 || !viommu.has_driver_ops() {
            return Err(Errno::EOPNOTSUPP);
        }
        let data = UserBuffer {
            mem,
            data_type: cmd.data_type.0,
            uptr: cmd.data_uptr,
            len: u64::from(cmd.data_len),
        };
        self.create(|id| {
            let iommu = viommu.iommu().clone();
            let s1 = iommu.ops().viommu_alloc_domain_nested(&*viommu, &data)?;
            let domain = iommu
                .alloc_nested_domain(viommu.hwpt().domain(), s1)
                .map_err(Errno::from)?;
            let fault = if cmd.flags & HwptAllocFlags::FAULT_ID_VALID.bits() != 0 {
                Some(self.get_fault(cmd.fault_id)?)
            } else {
                None
            };
            Ok(Object::HwptNested(HwptNested::on_viommu(
                id, viommu, domain, fault,
            )))
        })
    }

    /// `IOMMU_HW_QUEUE_ALLOC` (`iommufd_hw_queue_alloc_ioctl()` of `viommu.c`): a queue the
    /// hardware reads straight from guest memory, which needs the vIOMMU driver's
    /// `get_hw_queue_size` / `hw_queue_init_phys`. No vIOMMU vsva makes has them (its driver
    /// has no vIOMMU operations; the core-managed one has none at all), so every request
    /// that gets past the core's checks is `EOPNOTSUPP`, as on Linux.
    ///
    /// # Errors
    /// 1. `EOPNOTSUPP` for non-zero `flags` or type `DEFAULT`;
    /// 2. `EINVAL` for a length of 0;
    /// 3. `EOVERFLOW` if `nesting_parent_iova + length - 1` wraps;
    /// 4. `ENOENT` if `viommu_id` is not a vIOMMU;
    /// 5. `EOPNOTSUPP`: the vIOMMU has no HW queue operations.
    pub fn hw_queue_alloc(&self, cmd: &IommuHwQueueAlloc) -> Result<(), Errno> {
        check_zero(&cmd.flags)?;
        if cmd.type_ == HwQueueType::DEFAULT {
            return Err(Errno::EOPNOTSUPP);
        }
        if cmd.length == 0 {
            return Err(Errno::EINVAL);
        }
        cmd.nesting_parent_iova
            .checked_add(cmd.length - 1)
            .ok_or(Errno::EOVERFLOW)?;
        let _viommu = self.get_viommu(cmd.viommu_id)?;
        Err(Errno::EOPNOTSUPP)
    }
}
