//! HWPT objects and their commands (Linux `struct iommufd_hwpt_paging` /
//! `struct iommufd_hwpt_nested`, `drivers/iommu/iommufd/hw_pagetable.c`).
//!
//! * A **paging HWPT** ([`HwptPaging`]) is an IOMMU-core paging domain that its IOAS keeps
//!   filled with the IOAS's mappings; it holds the IOAS. It is made by `IOMMU_HWPT_ALLOC` with
//!   an IOAS as `pt_id`, or automatically when a device is attached to an IOAS
//!   ([`attach`](crate::attach)) — an *automatic* HWPT, shared by every device attached to that
//!   IOAS that way and destroyed with its last device.
//! * A **nested HWPT** ([`HwptNested`]) is a user-managed first stage (a guest's page table,
//!   described by the driver's data type) over a paging HWPT allocated with
//!   `IOMMU_HWPT_ALLOC_NEST_PARENT`; it holds that parent. Its caches are invalidated by
//!   `IOMMU_HWPT_INVALIDATE`. One allocated on a vIOMMU (SMMUv3: a guest stream table
//!   entry) holds the vIOMMU instead, whose parent it nests on, and is invalidated through
//!   the vIOMMU ([`viommu`](crate::viommu)).
//!
//! Both kinds are attached to devices through [`HwptRef`]. Dirty tracking
//! (`IOMMU_HWPT_SET_DIRTY_TRACKING`) is here; reading the dirty bitmap is in
//! [`dirty`](crate::dirty).
//!
//! iommufd reads no driver data itself: the IOMMU driver decodes a nested HWPT's data and
//! its invalidation entries ([`vsva_iommu::IommuOps::alloc_domain_nested`],
//! [`vsva_iommu::IommuOps::cache_invalidate_user`]), as Linux's `iommu_ops` do.

use std::sync::{Arc, OnceLock};

use vsva_iommu::{DomainRef, Iommu, IopfHandler, NestedDomain, PagingDomain};
use vsva_mem::{Pasid, Rid};

use crate::abi::{
    DirtyTrackingFlags, Errno, HwptAllocFlags, HwptDataType, IommuHwptAlloc, IommuHwptInvalidate,
    IommuHwptSetDirtyTracking, check_zero, known_flags,
};
use crate::ctx::Iommufd;
use crate::device::Device;
use crate::domain::{IoDomain, IoProt};
use crate::fault::{Fault, FaultHandler};
use crate::ioas::Ioas;
use crate::object::{Held, IommufdObject, Object, ObjectHeader, ObjectType};
use crate::user_memory::{UserArray, UserBuffer, UserMemory};
use crate::viommu::Viommu;

/// A paging HWPT: an I/O page table of the IOMMU's own format, filled from its IOAS.
pub struct HwptPaging {
    header: ObjectHeader,
    ioas: Held<Ioas>,
    domain: Arc<PagingDomain>,
    nest_parent: bool,
    /// A nesting parent whose driver refuses read-only mappings in it.
    no_read_only: bool,
    dirty_ops: bool,
    pasid_compat: bool,
    auto_domain: bool,
    /// The fault queue of `IOMMU_HWPT_FAULT_ID_VALID`, set before the HWPT is published.
    fault: OnceLock<Held<Fault>>,
}

impl HwptPaging {
    /// Allocates the paging domain of a new HWPT on `ioas`, with flags already validated
    /// (`iommufd_hwpt_paging_alloc()` up to `iopt_table_add_domain()`). The domain is empty
    /// and not yet filled: see [`fill`](Self::fill).
    ///
    /// # Errors
    /// The IOMMU core's error allocating the domain.
    pub(crate) fn alloc(
        id: u32,
        ioas: Held<Ioas>,
        iommu: &Iommu,
        flags: HwptAllocFlags,
        auto_domain: bool,
    ) -> Result<Arc<HwptPaging>, Errno> {
        let domain = if flags.contains(HwptAllocFlags::NEST_PARENT) {
            iommu.alloc_nest_parent_domain()
        } else {
            iommu.alloc_paging_domain()
        }
        .map_err(Errno::from)?;
        Ok(Arc::new(HwptPaging {
            header: ObjectHeader::new(id),
            ioas,
            domain,
            nest_parent: flags.contains(HwptAllocFlags::NEST_PARENT),
            no_read_only: flags.contains(HwptAllocFlags::NEST_PARENT)
                && !iommu.ops().nest_parent_read_only(),
            dirty_ops: flags.contains(HwptAllocFlags::DIRTY_TRACKING),
            pasid_compat: flags.contains(HwptAllocFlags::PASID),
            auto_domain,
            fault: OnceLock::new(),
        }))
    }

    /// Adds the domain to its IOAS, which maps every area into it (`iopt_table_add_domain()`).
    /// Undone when the HWPT is dropped.
    ///
    /// # Errors
    /// [`IoPageTable::attach_domain`](crate::io_pagetable::IoPageTable::attach_domain)'s:
    /// `EINVAL` if an area lies beyond the domain's aperture (or, on a nesting parent, is
    /// read-only), pinning errors.
    pub(crate) fn fill(&self) -> Result<(), Errno> {
        let io_domain = Arc::new(HwptIoDomain {
            domain: self.domain.clone(),
            no_read_only: self.no_read_only,
        });
        self.ioas.iopt().attach_domain(self.id(), io_domain)
    }

    /// The HWPT's object ID.
    pub fn id(&self) -> u32 {
        self.header.id()
    }

    /// The IOAS it is filled from.
    pub fn ioas(&self) -> &Ioas {
        &self.ioas
    }

    /// The IOMMU-core paging domain.
    pub fn domain(&self) -> &Arc<PagingDomain> {
        &self.domain
    }

    /// Allocated with `IOMMU_HWPT_ALLOC_NEST_PARENT`: nested HWPTs may be built on it.
    pub fn nest_parent(&self) -> bool {
        self.nest_parent
    }

    /// Allocated with `IOMMU_HWPT_ALLOC_DIRTY_TRACKING`: the domain has dirty-tracking
    /// operations (Linux `domain->dirty_ops`).
    pub fn dirty_ops(&self) -> bool {
        self.dirty_ops
    }

    /// Allocated with `IOMMU_HWPT_ALLOC_PASID`: may be attached to PASIDs
    /// (`hwpt->pasid_compat`).
    pub fn pasid_compat(&self) -> bool {
        self.pasid_compat
    }

    /// Made by attaching a device to an IOAS rather than by `IOMMU_HWPT_ALLOC`.
    pub fn auto_domain(&self) -> bool {
        self.auto_domain
    }

    /// The fault queue its attachments' page requests go to (`hwpt->fault`).
    pub fn fault(&self) -> Option<&Fault> {
        self.fault.get().map(|held| &**held)
    }
}

impl IommufdObject for HwptPaging {
    const TYPE: ObjectType = ObjectType::HwptPaging;

    fn header(&self) -> &ObjectHeader {
        &self.header
    }

    fn downcast(object: &Object) -> Option<&Arc<Self>> {
        match object {
            Object::HwptPaging(hwpt) => Some(hwpt),
            _ => None,
        }
    }
}

impl Drop for HwptPaging {
    /// `iommufd_hwpt_paging_destroy()`: out of the IOAS (which unmaps it and unpins the pages
    /// if it was the last domain); the IOAS is released with the `Held`.
    fn drop(&mut self) {
        self.ioas.iopt().detach_domain(self.id());
    }
}

impl std::fmt::Debug for HwptPaging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HwptPaging")
            .field("id", &self.id())
            .field("ioas", &self.ioas.id())
            .field("did", &self.domain.did())
            .field("nest_parent", &self.nest_parent)
            .field("auto_domain", &self.auto_domain)
            .finish()
    }
}

/// What an IOAS fills for a paging HWPT: its domain, refusing read-only mappings (`EINVAL`)
/// when it is a nesting parent and the driver says its hardware cannot have them there
/// ([`vsva_iommu::IommuOps::nest_parent_read_only`]; the driver tells user space so in its
/// `IOMMU_GET_HW_INFO` data).
struct HwptIoDomain {
    domain: Arc<PagingDomain>,
    /// A nesting parent that must not hold read-only mappings.
    no_read_only: bool,
}

impl IoDomain for HwptIoDomain {
    fn aperture_last(&self) -> u64 {
        self.domain.last_iova()
    }

    fn map(&self, iova: u64, pa: u64, len: u64, prot: IoProt, large: bool) -> Result<(), Errno> {
        if self.no_read_only && !prot.contains(IoProt::WRITE) {
            return Err(Errno::EINVAL);
        }
        IoDomain::map(&*self.domain, iova, pa, len, prot, large)
    }

    fn unmap(&self, iova: u64, len: u64) {
        IoDomain::unmap(&*self.domain, iova, len);
    }
}

/// A nested HWPT: a guest's first-stage table over a nesting-parent paging HWPT.
pub struct HwptNested {
    header: ObjectHeader,
    parent: Held<HwptPaging>,
    /// The vIOMMU it was allocated on (`hwpt_nested->viommu`), whose nesting parent `parent`
    /// is.
    viommu: Option<Held<Viommu>>,
    domain: Arc<NestedDomain>,
    pasid_compat: bool,
    fault: Option<Held<Fault>>,
}

impl HwptNested {
    /// A nested HWPT allocated on `viommu`, over its nesting parent.
    pub(crate) fn on_viommu(
        id: u32,
        viommu: Held<Viommu>,
        domain: Arc<NestedDomain>,
        fault: Option<Held<Fault>>,
    ) -> Arc<HwptNested> {
        Arc::new(HwptNested {
            header: ObjectHeader::new(id),
            parent: viommu.hwpt_held().clone(),
            viommu: Some(viommu),
            domain,
            pasid_compat: false,
            fault,
        })
    }

    /// The vIOMMU it was allocated on, if any.
    pub fn viommu(&self) -> Option<&Viommu> {
        self.viommu.as_deref()
    }

    /// The HWPT's object ID.
    pub fn id(&self) -> u32 {
        self.header.id()
    }

    /// The paging HWPT it is nested on (its second stage).
    pub fn parent(&self) -> &HwptPaging {
        &self.parent
    }

    /// The IOMMU-core nested domain.
    pub fn domain(&self) -> &Arc<NestedDomain> {
        &self.domain
    }

    /// Allocated with `IOMMU_HWPT_ALLOC_PASID`.
    pub fn pasid_compat(&self) -> bool {
        self.pasid_compat
    }

    /// The fault queue its attachments' page requests go to (`hwpt->fault`).
    pub fn fault(&self) -> Option<&Fault> {
        self.fault.as_deref()
    }
}

impl IommufdObject for HwptNested {
    const TYPE: ObjectType = ObjectType::HwptNested;

    fn header(&self) -> &ObjectHeader {
        &self.header
    }

    fn downcast(object: &Object) -> Option<&Arc<Self>> {
        match object {
            Object::HwptNested(hwpt) => Some(hwpt),
            _ => None,
        }
    }
}

impl std::fmt::Debug for HwptNested {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HwptNested")
            .field("id", &self.id())
            .field("parent", &self.parent.id())
            .field("did", &self.domain.did())
            .finish()
    }
}

/// A counted reference to a HWPT of either kind — what a device attachment holds (Linux's
/// `struct iommufd_hw_pagetable *` with its `users` reference).
#[derive(Clone, Debug)]
pub enum HwptRef {
    /// A paging HWPT.
    Paging(Held<HwptPaging>),
    /// A nested HWPT.
    Nested(Held<HwptNested>),
}

impl HwptRef {
    /// The HWPT's object ID.
    pub fn id(&self) -> u32 {
        match self {
            HwptRef::Paging(hwpt) => hwpt.id(),
            HwptRef::Nested(hwpt) => hwpt.id(),
        }
    }

    /// Whether it may be attached to PASIDs (`hwpt->pasid_compat`).
    pub fn pasid_compat(&self) -> bool {
        match self {
            HwptRef::Paging(hwpt) => hwpt.pasid_compat(),
            HwptRef::Nested(hwpt) => hwpt.pasid_compat(),
        }
    }

    /// The paging HWPT whose IOAS the translation ends in: itself, or a nested HWPT's parent
    /// (`find_hwpt_paging()`). Device reserved regions are reserved in its IOAS.
    pub fn paging(&self) -> &HwptPaging {
        match self {
            HwptRef::Paging(hwpt) => hwpt,
            HwptRef::Nested(hwpt) => hwpt.parent(),
        }
    }

    /// Whether both name the same HWPT.
    pub fn same(&self, other: &HwptRef) -> bool {
        match (self, other) {
            (HwptRef::Paging(a), HwptRef::Paging(b)) => Arc::ptr_eq(a.arc(), b.arc()),
            (HwptRef::Nested(a), HwptRef::Nested(b)) => Arc::ptr_eq(a.arc(), b.arc()),
            _ => false,
        }
    }

    /// The fault queue it was allocated with, as the shared object.
    fn fault_arc(&self) -> Option<&Arc<Fault>> {
        match self {
            HwptRef::Paging(hwpt) => hwpt.fault.get(),
            HwptRef::Nested(hwpt) => hwpt.fault.as_ref(),
        }
        .map(Held::arc)
    }

    /// Points (`rid`, `pasid`) of device `dev_id` at this HWPT's domain in the IOMMU core.
    /// With a fault queue, the attachment's page request groups go to it, tagged with
    /// `dev_id` (`iommufd_hwpt_attach_device()` with an `iommufd_attach_handle`); without
    /// one, the core answers them INVALID.
    pub(crate) fn core_attach(
        &self,
        iommu: &Iommu,
        dev_id: u32,
        rid: Rid,
        pasid: Pasid,
    ) -> Result<(), Errno> {
        let handler = self.fault_arc().map(|fault| {
            Arc::new(FaultHandler {
                fault: fault.clone(),
                dev_id,
                hwpt_id: self.id(),
                pasid,
            }) as Arc<dyn IopfHandler>
        });
        iommu
            .attach_domain(rid, pasid, self.domain_ref(), handler)
            .map_err(Errno::from)
    }

    /// The core's domain behind this HWPT.
    fn domain_ref(&self) -> DomainRef<'_> {
        match self {
            HwptRef::Paging(hwpt) => hwpt.domain().into(),
            HwptRef::Nested(hwpt) => hwpt.domain().into(),
        }
    }

    /// Takes (`rid`, `pasid`) off this HWPT's domain in the IOMMU core, then takes off its
    /// fault queue what it still holds of that attachment (`iommufd_hwpt_detach_device()` and
    /// `iommufd_hwpt_replace_device()` call `iommufd_auto_response_faults()` after the core
    /// detach). The core answers those groups INVALID itself when the detach succeeds; the
    /// queue answers them only if it failed (see `Fault::auto_respond`).
    pub(crate) fn core_detach(&self, iommu: &Iommu, rid: Rid, pasid: Pasid) -> Result<(), Errno> {
        let detached = iommu
            .detach_domain(rid, pasid, self.domain_ref())
            .map_err(Errno::from);
        if let Some(fault) = self.fault_arc() {
            fault.auto_respond(rid, pasid, self.id(), detached.is_err());
        }
        detached
    }
}

/// The flag checks of a paging HWPT for `dev`, in Linux's order: `iommufd_hwpt_paging_alloc()`
/// (unknown flags; `DIRTY_TRACKING` on an IOMMU without dirty tracking; `FAULT_ID_VALID` with
/// `NEST_PARENT`), then the driver's `domain_alloc_paging_flags()` (any driver data;
/// `NEST_PARENT` on an IOMMU without nesting, [`vsva_iommu::IommuOps::nesting`]). All
/// `EOPNOTSUPP`.
pub(crate) fn check_paging_flags(
    iommu: &Iommu,
    flags: u32,
    has_data: bool,
) -> Result<HwptAllocFlags, Errno> {
    let flags = known_flags::<HwptAllocFlags>(flags)?;
    if flags.contains(HwptAllocFlags::DIRTY_TRACKING) && !iommu.ops().dirty_tracking() {
        return Err(Errno::EOPNOTSUPP);
    }
    if flags.contains(HwptAllocFlags::FAULT_ID_VALID | HwptAllocFlags::NEST_PARENT) {
        return Err(Errno::EOPNOTSUPP);
    }
    if has_data {
        return Err(Errno::EOPNOTSUPP);
    }
    if flags.contains(HwptAllocFlags::NEST_PARENT) && !iommu.ops().nesting() {
        return Err(Errno::EOPNOTSUPP);
    }
    Ok(flags)
}

impl Iommufd {
    /// The paging HWPT `id` (`iommufd_get_hwpt_paging()`).
    ///
    /// # Errors
    /// `ENOENT` if `id` is not a paging HWPT.
    pub fn get_hwpt_paging(&self, id: u32) -> Result<Held<HwptPaging>, Errno> {
        self.get(id)
    }

    /// The nested HWPT `id` (`iommufd_get_hwpt_nested()`).
    ///
    /// # Errors
    /// `ENOENT` if `id` is not a nested HWPT.
    pub fn get_hwpt_nested(&self, id: u32) -> Result<Held<HwptNested>, Errno> {
        self.get(id)
    }

    /// `IOMMU_HWPT_ALLOC` (`iommufd_hwpt_alloc()`): a paging HWPT on the IOAS `cmd.pt_id`, or a
    /// nested HWPT on the nesting-parent paging HWPT `cmd.pt_id`, for the device `cmd.dev_id`.
    /// Returns the new ID in `cmd.out_hwpt_id`.
    ///
    /// # Errors
    /// In Linux's order:
    /// 1. `EOPNOTSUPP` for a non-zero `__reserved` (`__reserved2` is not checked);
    /// 2. `EINVAL` if `data_type` is NONE with a non-zero `data_len` or another type with 0;
    /// 3. `ENOENT` if `dev_id` is not a device;
    /// 4. `EINVAL` if `pt_id` is no object, or not an IOAS, a paging HWPT or a vIOMMU;
    /// 5. for an IOAS, `EOPNOTSUPP` for unknown flags, `DIRTY_TRACKING` on an IOMMU that
    ///    cannot track, `FAULT_ID_VALID` with `NEST_PARENT`, any driver data, or
    ///    `NEST_PARENT` on a unit without nested translation; the core's allocation error;
    ///    then filling errors (`EINVAL` for an area beyond the aperture or, on a nesting
    ///    parent, a read-only one);
    /// 6. for a paging HWPT: `EOPNOTSUPP` for flags other than `FAULT_ID_VALID` and `PASID` or
    ///    no data; `EINVAL` if the parent is automatic or not a nesting parent; then the
    ///    driver's ([`vsva_iommu::IommuOps::alloc_domain_nested`], Linux
    ///    `domain_alloc_nested`): `EOPNOTSUPP` without nesting support or for a `data_type` it
    ///    does not know; reading the data as
    ///    `copy_bytes_from_user_at` does
    ///    (`EINVAL` below the driver's minimum, `E2BIG`, `EFAULT`); the driver's checks of
    ///    the data; and the core's `EINVAL` for a misaligned or out-of-range root;
    /// 7. for a vIOMMU (`iommufd_viommu_alloc_hwpt_nested()`): `EINVAL` if the device is
    ///    behind another IOMMU; then `EOPNOTSUPP` for flags other than `FAULT_ID_VALID`, for
    ///    no data, and for the core-managed vIOMMU (no driver operations); then the driver's
    ///    errors ([`vsva_iommu::IommuOps::viommu_alloc_domain_nested`]; see
    ///    the `viommu` module);
    /// 8. with `FAULT_ID_VALID`, `ENOENT` if `fault_id` is not a fault queue
    ///    (`iommufd_get_fault()`); the HWPT is not kept. Otherwise the HWPT holds the queue
    ///    (its `IOMMU_DESTROY` is `EBUSY` until the HWPT goes) and its attachments' page
    ///    request groups are queued there (the `fault` module). Linux looks the queue up
    ///    after building the HWPT, so every error above comes first.
    pub fn hwpt_alloc(&self, cmd: &mut IommuHwptAlloc, mem: &dyn UserMemory) -> Result<(), Errno> {
        check_zero(&cmd.__reserved)?;
        let no_type = cmd.data_type == HwptDataType::NONE;
        if no_type == (cmd.data_len != 0) {
            return Err(Errno::EINVAL);
        }
        let dev = self.get_device(cmd.dev_id)?;
        let _serial = self.attach_lock();
        let kind = self.state().objects.kind(cmd.pt_id);
        cmd.out_hwpt_id = match kind {
            Some(ObjectType::Ioas) => {
                let ioas = self.get_ioas(cmd.pt_id).map_err(|_| Errno::EINVAL)?;
                self.hwpt_paging_alloc(&dev, ioas, cmd)?
            }
            Some(ObjectType::HwptPaging) => {
                let parent = self.get_hwpt_paging(cmd.pt_id).map_err(|_| Errno::EINVAL)?;
                self.hwpt_nested_alloc(&dev, parent, cmd, mem)?
            }
            Some(ObjectType::Viommu) => {
                let viommu = self.get_viommu(cmd.pt_id).map_err(|_| Errno::EINVAL)?;
                if !Arc::ptr_eq(viommu.iommu(), dev.iommu()) {
                    return Err(Errno::EINVAL);
                }
                self.viommu_alloc_hwpt_nested(viommu, cmd, mem)?
            }
            _ => return Err(Errno::EINVAL),
        };
        Ok(())
    }

    /// The paging branch of [`hwpt_alloc`](Self::hwpt_alloc).
    fn hwpt_paging_alloc(
        &self,
        _dev: &Device,
        ioas: Held<Ioas>,
        cmd: &IommuHwptAlloc,
    ) -> Result<u32, Errno> {
        let flags = check_paging_flags(self.iommu(), cmd.flags, cmd.data_len != 0)?;
        self.create(|id| {
            let hwpt = HwptPaging::alloc(id, ioas, self.iommu(), flags, false)?;
            hwpt.fill()?;
            if flags.contains(HwptAllocFlags::FAULT_ID_VALID) {
                let fault = self.get_fault(cmd.fault_id)?;
                // Set once, on a HWPT nobody else can see yet.
                let _ = hwpt.fault.set(fault);
            }
            Ok(Object::HwptPaging(hwpt))
        })
    }

    /// The nested branch of [`hwpt_alloc`](Self::hwpt_alloc).
    fn hwpt_nested_alloc(
        &self,
        _dev: &Device,
        parent: Held<HwptPaging>,
        cmd: &IommuHwptAlloc,
        mem: &dyn UserMemory,
    ) -> Result<u32, Errno> {
        let flags = HwptAllocFlags::from_bits(cmd.flags)
            .filter(|f| (HwptAllocFlags::FAULT_ID_VALID | HwptAllocFlags::PASID).contains(*f))
            .ok_or(Errno::EOPNOTSUPP)?;
        if cmd.data_len == 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        if parent.auto_domain() || !parent.nest_parent() {
            return Err(Errno::EINVAL);
        }
        let data = UserBuffer {
            mem,
            data_type: cmd.data_type.0,
            uptr: cmd.data_uptr,
            len: u64::from(cmd.data_len),
        };
        let s1 = self.iommu().ops().alloc_domain_nested(&data)?;
        self.create(|id| {
            let domain = self
                .iommu()
                .alloc_nested_domain(parent.domain(), s1)
                .map_err(Errno::from)?;
            let fault = if flags.contains(HwptAllocFlags::FAULT_ID_VALID) {
                Some(self.get_fault(cmd.fault_id)?)
            } else {
                None
            };
            Ok(Object::HwptNested(Arc::new(HwptNested {
                header: ObjectHeader::new(id),
                parent,
                viommu: None,
                domain,
                pasid_compat: flags.contains(HwptAllocFlags::PASID),
                fault,
            })))
        })
    }

    /// `IOMMU_HWPT_SET_DIRTY_TRACKING` (`iommufd_hwpt_set_dirty_tracking()`,
    /// `iopt_set_dirty_tracking()`): turns dirty tracking of the paging HWPT `cmd.hwpt_id` on
    /// (`ENABLE`) or off. Turning it on first clears every dirty bit the domain holds for the
    /// IOAS's mappings, so tracking starts from a clean snapshot.
    ///
    /// # Errors
    /// In order: `EOPNOTSUPP` for unknown flags (`__reserved` is not checked, as in Linux);
    /// `ENOENT` if `hwpt_id` is not a paging HWPT; `EOPNOTSUPP` if it was not allocated with
    /// `IOMMU_HWPT_ALLOC_DIRTY_TRACKING`; the domain's error.
    pub fn hwpt_set_dirty_tracking(&self, cmd: &IommuHwptSetDirtyTracking) -> Result<(), Errno> {
        let flags = known_flags::<DirtyTrackingFlags>(cmd.flags)?;
        let hwpt = self.get_hwpt_paging(cmd.hwpt_id)?;
        if !hwpt.dirty_ops() {
            return Err(Errno::EOPNOTSUPP);
        }
        let enable = flags.contains(DirtyTrackingFlags::ENABLE);
        if enable {
            for area in hwpt.ioas().iopt().areas() {
                hwpt.domain()
                    .read_and_clear_dirty(
                        area.iova,
                        area.last - area.iova + 1,
                        true,
                        &mut |_, _| {},
                    )
                    .map_err(Errno::from)?;
            }
        }
        hwpt.domain()
            .set_dirty_tracking(enable)
            .map_err(Errno::from)
    }

    /// `IOMMU_HWPT_INVALIDATE` (`iommufd_hwpt_invalidate()`) on a nested HWPT or a vIOMMU:
    /// handles the `cmd.entry_num` entries of `cmd.entry_len` bytes at `cmd.data_uptr` in
    /// order and sets `cmd.entry_num` to the number handled — on errors too, so the caller
    /// (as Linux does) returns the struct either way. `entry_num` 0 only probes the data type.
    ///
    /// The driver decodes the entries and invalidates what they name: for a nested HWPT
    /// [`NestedDomain::cache_invalidate_user`] (Linux `cache_invalidate_user`), through
    /// [`NestedDomain::invalidate`]; for a vIOMMU
    /// [`vsva_iommu::IommuOps::viommu_cache_invalidate`] (Linux `cache_invalidate` of
    /// `iommufd_viommu_ops`), given the vIOMMU as [`vsva_iommu::ViommuContext`].
    ///
    /// # Errors
    /// In order: `EOPNOTSUPP` for a non-zero `__reserved`; `EINVAL` if `entry_num` is non-zero
    /// with a zero `data_uptr` or `entry_len`; `ENOENT` if `hwpt_id` is no object, `EINVAL` if
    /// it is neither a nested HWPT nor a vIOMMU, `EOPNOTSUPP` for the core-managed vIOMMU (no
    /// `cache_invalidate`); then the driver's — [`NestedDomain::cache_invalidate_user`] for a
    /// nested HWPT, [`vsva_iommu::IommuOps::viommu_cache_invalidate`] (Linux
    /// `viommu->ops->cache_invalidate`, SMMUv3 raw commands) for a driver vIOMMU: for a
    /// data type it does not know, then per entry, reading it as
    /// `copy_bytes_from_user_at` does, and its
    /// checks of the entry. Processing stops at the first bad entry.
    pub fn hwpt_invalidate(
        &self,
        cmd: &mut IommuHwptInvalidate,
        mem: &dyn UserMemory,
    ) -> Result<(), Errno> {
        let mut done = 0;
        let result = self.hwpt_invalidate_entries(cmd, mem, &mut done);
        cmd.entry_num = done;
        result
    }

    fn hwpt_invalidate_entries(
        &self,
        cmd: &IommuHwptInvalidate,
        mem: &dyn UserMemory,
        done: &mut u32,
    ) -> Result<(), Errno> {
        check_zero(&cmd.__reserved)?;
        if cmd.entry_num != 0 && (cmd.data_uptr == 0 || cmd.entry_len == 0) {
            return Err(Errno::EINVAL);
        }
        let entries = UserArray {
            mem,
            data_type: cmd.data_type.0,
            uptr: cmd.data_uptr,
            entry_len: cmd.entry_len,
            entry_num: cmd.entry_num,
        };
        let kind = self.state().objects.kind(cmd.hwpt_id);
        let outcome = match kind {
            None => return Err(Errno::ENOENT),
            Some(ObjectType::HwptNested) => {
                let hwpt = self.get_hwpt_nested(cmd.hwpt_id)?;
                hwpt.domain().cache_invalidate_user(&entries)
            }
            Some(ObjectType::Viommu) => {
                let viommu = self.get_viommu(cmd.hwpt_id)?;
                // The core-managed vIOMMU has no `cache_invalidate`.
                if !viommu.has_driver_ops() {
                    return Err(Errno::EOPNOTSUPP);
                }
                viommu
                    .iommu()
                    .ops()
                    .viommu_cache_invalidate(&*viommu, &entries)
            }
            Some(_) => return Err(Errno::EINVAL),
        };
        *done = outcome.consumed;
        outcome.result
    }
}
