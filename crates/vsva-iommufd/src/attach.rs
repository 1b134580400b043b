//! Attaching devices (or one of their PASIDs) to page tables: Linux's
//! `iommufd_device_attach()`, `iommufd_device_replace()` and `iommufd_device_detach()` of
//! `drivers/iommu/iommufd/device.c`, which VFIO's `VFIO_DEVICE_ATTACH_IOMMUFD_PT` and
//! `VFIO_DEVICE_DETACH_IOMMUFD_PT` call.
//!
//! * The target `pt_id` is a HWPT (paging or nested), attached as it is, or an IOAS: then an
//!   *automatic* paging HWPT of that IOAS is used — the first existing one the device can be
//!   attached to, else a new one (`iommufd_device_auto_get_domain()`). Automatic HWPTs are
//!   never picked for a HWPT the user allocated, and are destroyed when their last device
//!   leaves (`iommufd_hw_pagetable_put()`).
//! * Attaching the requests without PASID to a HWPT whose translation ends in an IOAS (a
//!   paging HWPT, or a nested one through its parent) reserves the device's reserved regions
//!   in that IOAS (`iopt_table_enforce_dev_resv_regions()`, owner [`ReservedBy::Device`]):
//!   they appear as holes in `IOMMU_IOAS_IOVA_RANGES` and cannot be mapped; they are
//!   released on detach, or moved when a replace changes the IOAS.
//! * Every attachment holds its HWPT (so `IOMMU_DESTROY` of it is `EBUSY`), which holds its
//!   IOAS or parent.
//! * PASID 0 is the device's requests without PASID (Linux `IOMMU_NO_PASID`); the typed
//!   methods take `None` for it, and refuse `Some(0)` with `EINVAL` as
//!   `iommu_attach_device_pasid()` refuses `IOMMU_NO_PASID`.
//!
//! vsva models one device per IOMMU group, so Linux's group-wide rules reduce to the device's.
//! The IOMMU core has no atomic replace: a replace detaches the old domain and attaches the
//! new one, re-attaching the old one if that fails; in between the device's DMA is blocked.

use vsva_iommu::NestedS1;
use vsva_mem::Pasid;

use crate::abi::Errno;
use crate::ctx::Iommufd;
use crate::device::{Attachments, Device};
use crate::hw_pagetable::{HwptPaging, HwptRef, check_paging_flags};
use crate::io_pagetable::ReservedBy;
use crate::ioas::Ioas;
use crate::object::{Held, Object, ObjectType};

/// Attach or replace: the two operations `iommufd_device_change_pt()` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Attach,
    Replace,
}

/// The PASID key of an attachment: 0 for the requests without PASID.
///
/// # Errors
/// `EINVAL` for `Some(0)`.
fn pasid_key(pasid: Option<u32>) -> Result<u32, Errno> {
    match pasid {
        None => Ok(0),
        Some(0) => Err(Errno::EINVAL),
        Some(pasid) => Ok(pasid),
    }
}

/// `iommufd_hwpt_pasid_compat()`: the requests without PASID may use a HWPT that is not
/// PASID-compatible only while no PASID is attached; a PASID needs a PASID-compatible HWPT,
/// and a PASID-compatible one for the requests without PASID if they are attached.
fn pasid_compat(st: &Attachments, pasid: u32, hwpt: &HwptRef) -> Result<(), Errno> {
    if pasid == 0 {
        if !hwpt.pasid_compat() && st.pasids.range(1..).next().is_some() {
            return Err(Errno::EINVAL);
        }
    } else {
        if !hwpt.pasid_compat() {
            return Err(Errno::EINVAL);
        }
        if st.pasids.get(&0).is_some_and(|rid| !rid.pasid_compat()) {
            return Err(Errno::EINVAL);
        }
    }
    Ok(())
}

/// The PASID as the IOMMU core takes it, after `iommu_attach_device_pasid()`'s width check:
/// a PASID at or above the device's `max_pasids` is `EINVAL`.
fn core_pasid(dev: &Device, pasid: u32) -> Result<Pasid, Errno> {
    if pasid != 0 && u64::from(pasid) >> dev.max_pasid_log2() != 0 {
        return Err(Errno::EINVAL);
    }
    Pasid::new(pasid).map_err(|_| Errno::EINVAL)
}

/// `arm_smmu_attach_dev_nested()`'s checks of a vIOMMU's nested HWPT, at attach after
/// iommufd's own: the device must be behind the vIOMMU's IOMMU (`EINVAL`; a context's devices
/// share one IOMMU in vsva, so this holds by construction), and a guest stream table entry
/// that translates (Cfg = S1) needs the device to have a vDEVICE on that vIOMMU, whose virtual
/// ID its events will carry (`arm_smmu_attach_prepare_vmaster()` →
/// `iommufd_viommu_get_vdev_id()`: `ENOENT`); abort and bypass entries need none.
fn check_vmaster(dev: &Device, hwpt: &HwptRef) -> Result<(), Errno> {
    let HwptRef::Nested(nested) = hwpt else {
        return Ok(());
    };
    let Some(viommu) = nested.viommu() else {
        return Ok(());
    };
    if !std::sync::Arc::ptr_eq(viommu.iommu(), dev.iommu()) {
        return Err(Errno::EINVAL);
    }
    if let NestedS1::StreamEntry {
        translates: true, ..
    } = nested.domain().s1()
    {
        viommu.virt_id_of(dev.rid()).ok_or(Errno::ENOENT)?;
    }
    Ok(())
}

/// Reserves `dev`'s reserved regions in the IOAS of `hwpt`.
fn reserve_regions(dev: &Device, hwpt: &HwptRef) -> Result<(), Errno> {
    let regions = dev.iommu().ops().reserved_regions(dev.rid());
    hwpt.paging()
        .ioas()
        .iopt()
        .reserve_all(&regions, ReservedBy::Device(dev.id()))
}

/// Releases what [`reserve_regions`] reserved in the IOAS of `hwpt`.
fn unreserve_regions(dev: &Device, hwpt: &HwptRef) {
    hwpt.paging()
        .ioas()
        .iopt()
        .unreserve(ReservedBy::Device(dev.id()));
}

impl Iommufd {
    /// Attaches device `dev_id` — its requests without PASID, or PASID `pasid` — to `pt_id`,
    /// an IOAS or a HWPT (`iommufd_device_attach()`). Returns the HWPT attached: `pt_id`
    /// itself, or the automatic HWPT used for an IOAS.
    ///
    /// # Errors
    /// In order: `EINVAL` for `Some(0)`; `ENOENT` if `dev_id` is not a device or `pt_id` no
    /// object; `EINVAL` if `pt_id` is neither an IOAS nor a HWPT. Then
    /// `iommufd_hw_pagetable_attach()`'s: `EBUSY` if that PASID of the device is attached
    /// already; `EADDRINUSE` if a mapping of the IOAS covers a reserved region of the device;
    /// `EINVAL` if the HWPT is not PASID-compatible — a PASID needs a HWPT allocated with
    /// `IOMMU_HWPT_ALLOC_PASID`, and so do the requests without PASID while a PASID is
    /// attached (`iommufd_hwpt_pasid_compat()`) — or the PASID is beyond the device's width;
    /// `ENOENT` for a nested HWPT of a vIOMMU whose guest stream table entry translates when
    /// the device has no vDEVICE on that vIOMMU (`arm_smmu_attach_prepare_vmaster()`); the
    /// IOMMU core's error (`ENODEV` for a device it does not know, `EBUSY` for a PASID
    /// something else uses). For an IOAS, a new automatic HWPT can also fail as
    /// [`hwpt_alloc`](Self::hwpt_alloc) of a paging HWPT can; a PASID cannot be attached to
    /// an IOAS (`EINVAL`: automatic HWPTs are not PASID-compatible, as in Linux).
    pub fn attach(&self, dev_id: u32, pt_id: u32, pasid: Option<u32>) -> Result<u32, Errno> {
        let pasid = pasid_key(pasid)?;
        let dev = self.get_device(dev_id)?;
        let _serial = self.attach_lock();
        self.change_pt(&dev, pasid, pt_id, Change::Attach)
    }

    /// Moves the attached device `dev_id` (or its PASID `pasid`) to `pt_id`, an IOAS or a
    /// HWPT (`iommufd_device_replace()`): the same as detach then attach, except that on
    /// failure the old attachment stays. Returns the HWPT attached.
    ///
    /// # Errors
    /// As [`attach`](Self::attach), except: `EINVAL` if that PASID is not attached (instead
    /// of `EBUSY` when it is); replacing with the HWPT already attached does nothing.
    pub fn replace(&self, dev_id: u32, pt_id: u32, pasid: Option<u32>) -> Result<u32, Errno> {
        let pasid = pasid_key(pasid)?;
        let dev = self.get_device(dev_id)?;
        let _serial = self.attach_lock();
        self.change_pt(&dev, pasid, pt_id, Change::Replace)
    }

    /// Detaches device `dev_id`'s requests without PASID, or its PASID `pasid`, from whatever
    /// they are attached to (`iommufd_device_detach()`); their DMA is blocked again. Nothing
    /// attached is not an error.
    ///
    /// # Errors
    /// `EINVAL` for `Some(0)`; `ENOENT` if `dev_id` is not a device.
    pub fn detach(&self, dev_id: u32, pasid: Option<u32>) -> Result<(), Errno> {
        let pasid = pasid_key(pasid)?;
        let dev = self.get_device(dev_id)?;
        let _serial = self.attach_lock();
        let old = {
            let mut st = dev.lock();
            dev.detach_locked(&mut st, pasid)
        };
        if let Some(old) = old {
            self.put_hwpt(old);
        }
        Ok(())
    }

    /// Lets go of a HWPT a device was attached to (`iommufd_hw_pagetable_put()`): an
    /// automatic HWPT nothing else uses is destroyed.
    pub(crate) fn put_hwpt(&self, hwpt: HwptRef) {
        let HwptRef::Paging(paging) = hwpt else {
            return;
        };
        if !paging.auto_domain() {
            return;
        }
        let id = paging.id();
        let removed = {
            let mut state = self.state();
            // Still that HWPT under that ID (the reference kept the ID from being reused).
            let same = state.objects.is_same(id, paging.arc());
            drop(paging);
            if same {
                state.objects.remove(id).ok()
            } else {
                None
            }
        };
        drop(removed);
    }

    /// `iommufd_device_change_pt()`: `pt_id` by kind.
    fn change_pt(
        &self,
        dev: &Device,
        pasid: u32,
        pt_id: u32,
        change: Change,
    ) -> Result<u32, Errno> {
        let kind = self.state().objects.kind(pt_id).ok_or(Errno::ENOENT)?;
        let hwpt = match kind {
            ObjectType::HwptPaging => HwptRef::Paging(self.get(pt_id)?),
            ObjectType::HwptNested => HwptRef::Nested(self.get(pt_id)?),
            ObjectType::Ioas => return self.auto_get_domain(dev, pasid, self.get(pt_id)?, change),
            _ => return Err(Errno::EINVAL),
        };
        self.do_change(dev, pasid, &hwpt, change)?;
        Ok(pt_id)
    }

    /// Attaches or replaces, then puts the HWPT a replace let go of.
    fn do_change(
        &self,
        dev: &Device,
        pasid: u32,
        hwpt: &HwptRef,
        change: Change,
    ) -> Result<(), Errno> {
        match change {
            Change::Attach => self.hwpt_attach(dev, pasid, hwpt),
            Change::Replace => {
                if let Some(old) = self.hwpt_replace(dev, pasid, hwpt)? {
                    self.put_hwpt(old);
                }
                Ok(())
            }
        }
    }

    /// `iommufd_device_auto_get_domain()`: an automatic HWPT of `ioas` for the device.
    fn auto_get_domain(
        &self,
        dev: &Device,
        pasid: u32,
        ioas: Held<Ioas>,
        change: Change,
    ) -> Result<u32, Errno> {
        let candidates = self
            .all::<HwptPaging>()
            .into_iter()
            .filter(|hwpt| hwpt.auto_domain() && hwpt.ioas().id() == ioas.id());
        for hwpt in candidates {
            let hwpt = HwptRef::Paging(hwpt);
            match self.do_change(dev, pasid, &hwpt, change) {
                Ok(()) => return Ok(hwpt.id()),
                // EINVAL: this HWPT does not suit the device; try the next.
                Err(Errno::EINVAL) => continue,
                Err(errno) => return Err(errno),
            }
        }
        // None suits: a new one. Attach attaches it before filling it (Linux's
        // `immediate_attach`); replace fills it first.
        let flags = check_paging_flags(self.iommu(), 0, false)?;
        let mut replaced = None;
        let id = self.create(|id| {
            let hwpt = HwptPaging::alloc(id, ioas, self.iommu(), flags, true)?;
            let new = HwptRef::Paging(Held::unpublished(&hwpt));
            match change {
                Change::Attach => {
                    self.hwpt_attach(dev, pasid, &new)?;
                    if let Err(errno) = hwpt.fill() {
                        let mut st = dev.lock();
                        drop(dev.detach_locked(&mut st, pasid));
                        return Err(errno);
                    }
                }
                Change::Replace => {
                    hwpt.fill()?;
                    replaced = self.hwpt_replace(dev, pasid, &new)?;
                }
            }
            Ok(Object::HwptPaging(hwpt))
        })?;
        if let Some(old) = replaced {
            self.put_hwpt(old);
        }
        Ok(id)
    }

    /// `iommufd_hw_pagetable_attach()`: `dev`'s `pasid` to `hwpt`.
    fn hwpt_attach(&self, dev: &Device, pasid: u32, hwpt: &HwptRef) -> Result<(), Errno> {
        let mut st = dev.lock();
        if st.unbound {
            return Err(Errno::ENOENT);
        }
        if st.pasids.contains_key(&pasid) {
            return Err(Errno::EBUSY);
        }
        let resv = pasid == 0;
        if resv {
            reserve_regions(dev, hwpt)?;
        }
        let attached = pasid_compat(&st, pasid, hwpt)
            .and_then(|()| core_pasid(dev, pasid))
            .and_then(|core| check_vmaster(dev, hwpt).map(|()| core))
            .and_then(|core| hwpt.core_attach(self.iommu(), dev.id(), dev.rid(), core));
        if let Err(errno) = attached {
            if resv {
                unreserve_regions(dev, hwpt);
            }
            return Err(errno);
        }
        st.pasids.insert(pasid, hwpt.clone());
        Ok(())
    }

    /// `iommufd_device_do_replace()`: `dev`'s attached `pasid` to `hwpt`. Returns the HWPT it
    /// was attached to, or `None` if that was `hwpt` already.
    fn hwpt_replace(
        &self,
        dev: &Device,
        pasid: u32,
        hwpt: &HwptRef,
    ) -> Result<Option<HwptRef>, Errno> {
        let mut st = dev.lock();
        if st.unbound {
            return Err(Errno::ENOENT);
        }
        let old = st.pasids.get(&pasid).cloned().ok_or(Errno::EINVAL)?;
        if old.same(hwpt) {
            return Ok(None);
        }
        let moves = pasid == 0 && old.paging().ioas().id() != hwpt.paging().ioas().id();
        if moves {
            reserve_regions(dev, hwpt)?;
        }
        let replaced = pasid_compat(&st, pasid, hwpt)
            .and_then(|()| core_pasid(dev, pasid))
            .and_then(|core| check_vmaster(dev, hwpt).map(|()| core))
            .and_then(|core| self.core_replace(dev, core, &old, hwpt));
        if let Err(errno) = replaced {
            if moves {
                unreserve_regions(dev, hwpt);
            }
            return Err(errno);
        }
        if moves {
            unreserve_regions(dev, &old);
        }
        st.pasids.insert(pasid, hwpt.clone());
        Ok(Some(old))
    }

    /// The IOMMU core's half of a replace: off `old`, onto `new`, back onto `old` if that
    /// fails.
    fn core_replace(
        &self,
        dev: &Device,
        pasid: Pasid,
        old: &HwptRef,
        new: &HwptRef,
    ) -> Result<(), Errno> {
        old.core_detach(self.iommu(), dev.rid(), pasid)?;
        let attached = new.core_attach(self.iommu(), dev.id(), dev.rid(), pasid);
        if attached.is_err() {
            if let Err(errno) = old.core_attach(self.iommu(), dev.id(), dev.rid(), pasid) {
                tracing::error!(dev = dev.id(), %errno, "restoring the old attachment failed");
            }
        }
        attached
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasid_keys() {
        assert_eq!(pasid_key(None), Ok(0));
        assert_eq!(pasid_key(Some(0)), Err(Errno::EINVAL));
        assert_eq!(pasid_key(Some(7)), Ok(7));
    }
}
