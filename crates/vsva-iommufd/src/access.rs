//! Accesses: how an emulated device — one with no IOMMU of its own, such as a VFIO mediated
//! device or a device a VMM emulates in the kernel — reaches memory through an IOAS (Linux
//! `struct iommufd_access`, the `iommufd_access_*()` functions of
//! `drivers/iommu/iommufd/device.c`).
//!
//! There is no ioctl for an access: the driver of the emulated device creates it on a
//! context ([`Iommufd::access_create`]), attaches it to an IOAS by ID (VFIO does so for
//! `VFIO_DEVICE_ATTACH_IOMMUFD_PT` on an emulated device), and then either pins the pages
//! behind IOVAs ([`Access::pin_pages`], for devices that keep using the memory) or copies
//! through the IOAS ([`Access::rw`]). It is still an object of the table with an ID, as in
//! Linux, and the driver is one of its users until [`Iommufd::access_destroy`], so
//! `IOMMU_DESTROY` of it is `EBUSY`; the access holds its IOAS, so destroying that IOAS is
//! `EBUSY` too.
//!
//! The contract with the driver is the unmap callback ([`AccessOps::unmap`]): when the IOAS
//! unmaps a range the access has pinned pages in, the IOAS asks every attached access to
//! unpin there and retries; a driver that never lets go makes that unmap fail with
//! `EDEADLOCK` after 100 tries (see [`crate::io_pagetable`]). Detaching calls it with the
//! whole space (`unmap(0, u64::MAX)`), after which the access may still unpin what it held
//! but may not pin again.

use std::sync::{Arc, Mutex, MutexGuard, Weak};

use vsva_mem::PhysMem;

use crate::abi::Errno;
use crate::ctx::Iommufd;
use crate::io_pagetable::IoptAccess;
use crate::ioas::Ioas;
use crate::object::{Held, IommufdObject, Object, ObjectHeader, ObjectType};
use crate::pages::RwBuf;

const PAGE: u64 = 4096;

/// What the emulated device's driver provides (`struct iommufd_access_ops`).
pub trait AccessOps: Send + Sync {
    /// Whether the driver pins pages (`needs_pin_pages`). Such an access raises its IOAS's
    /// IOVA alignment to a page; one that only copies leaves it alone and cannot pin.
    fn needs_pin_pages(&self) -> bool;

    /// The IOAS is unmapping `[iova, iova + length)`, or the access is being detached
    /// (`iova` 0, `length` `u64::MAX`): the driver must stop using and unpin every page it
    /// pinned there before returning, through `access`. Called without any lock of the
    /// context or IOAS held.
    fn unmap(&self, access: &Access, iova: u64, length: u64);
}

/// Which IOAS the access uses (Linux's `access->ioas` and `access->ioas_unpin` under
/// `access->ioas_lock`).
#[derive(Default)]
struct AccessState {
    /// Where pins and copies go; `None` while detached or while being moved.
    ioas: Option<Held<Ioas>>,
    /// Where unpins go, and the access's ID in that IOAS's list: stays set while a detach
    /// or replace waits for the driver to unpin.
    unpin: Option<(Held<Ioas>, u32)>,
}

/// An emulated device's access to IOASes of one context.
pub struct Access {
    header: ObjectHeader,
    ictx: Arc<Iommufd>,
    ops: Arc<dyn AccessOps>,
    /// The memory pinned pages and copies are in: the kernel's view of physical memory.
    mem: Arc<dyn PhysMem>,
    /// `PAGE_SIZE` for an access that pins, else 1 (`access->iova_alignment`).
    iova_alignment: u64,
    state: Mutex<AccessState>,
    this: Weak<Access>,
}

impl IommufdObject for Access {
    const TYPE: ObjectType = ObjectType::Access;

    fn header(&self) -> &ObjectHeader {
        &self.header
    }

    fn downcast(object: &Object) -> Option<&Arc<Self>> {
        match object {
            Object::Access(access) => Some(access),
            _ => None,
        }
    }
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("id", &self.header.id())
            .field("ioas", &self.ioas_id())
            .field("iova_alignment", &self.iova_alignment)
            .finish()
    }
}

impl IoptAccess for Access {
    fn notify_unmap(&self, iova: u64, length: u64) {
        self.ops.unmap(self, iova, length);
    }
}

impl Iommufd {
    /// `iommufd_access_create()`: a new access on this context, published in the table. The
    /// returned reference is the driver's: it keeps the access (and the context) alive until
    /// [`access_destroy`](Self::access_destroy). `mem` is the memory its pins and copies
    /// reach.
    ///
    /// # Errors
    /// `EBUSY` when no object ID is free.
    pub fn access_create(
        self: &Arc<Self>,
        ops: Arc<dyn AccessOps>,
        mem: Arc<dyn PhysMem>,
    ) -> Result<Held<Access>, Errno> {
        let iova_alignment = if ops.needs_pin_pages() { PAGE } else { 1 };
        let mut driver = None;
        self.create(|id| {
            let access = Arc::new_cyclic(|this| Access {
                header: ObjectHeader::new(id),
                ictx: Arc::clone(self),
                ops,
                mem,
                iova_alignment,
                state: Mutex::new(AccessState::default()),
                this: this.clone(),
            });
            driver = Some(Held::unpublished(&access));
            Ok(Object::Access(access))
        })?;
        driver.ok_or(Errno::EINVAL)
    }

    /// `iommufd_access_destroy()`: the driver lets its access go. The access leaves the
    /// table whatever its other users, detaches from its IOAS (calling the driver's unmap
    /// for the whole space) and is freed once nothing holds it.
    pub fn access_destroy(&self, access: Held<Access>) {
        let removed = self.state().objects.remove_owned(access.id());
        access.detach_if_attached();
        drop(access);
        drop(removed);
    }
}

impl Access {
    /// The access's object ID.
    pub fn id(&self) -> u32 {
        self.header.id()
    }

    /// The IOVA alignment the access asks of its IOAS.
    pub fn iova_alignment(&self) -> u64 {
        self.iova_alignment
    }

    /// The IOAS the access pins from, if attached.
    pub fn ioas_id(&self) -> Option<u32> {
        self.lock().ioas.as_ref().map(|i| i.id())
    }

    fn lock(&self) -> MutexGuard<'_, AccessState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `iommufd_access_attach()`: attaches the access to IOAS `ioas_id`.
    ///
    /// # Errors
    /// `EINVAL` if it is attached already (Linux warns: a driver bug); `ENOENT` if
    /// `ioas_id` is not an IOAS; `EADDRINUSE` if an area of the IOAS is not aligned to the
    /// access's alignment; `EBUSY` while a detach is in progress.
    pub fn attach(&self, ioas_id: u32) -> Result<(), Errno> {
        let st = self.lock();
        if st.ioas.is_some() {
            return Err(Errno::EINVAL);
        }
        self.change_ioas_id(st, ioas_id)
    }

    /// `iommufd_access_replace()`: moves the attached access to IOAS `ioas_id`; the driver's
    /// unmap is called for the whole space of the old one.
    ///
    /// # Errors
    /// `ENOENT` if the access is not attached or `ioas_id` is not an IOAS; as
    /// [`attach`](Self::attach) otherwise. On error the access stays where it was.
    pub fn replace(&self, ioas_id: u32) -> Result<(), Errno> {
        let st = self.lock();
        if st.ioas.is_none() {
            return Err(Errno::ENOENT);
        }
        self.change_ioas_id(st, ioas_id)
    }

    /// `iommufd_access_detach()`: detaches the access, calling the driver's unmap for the
    /// whole space first. Detaching a detached access is a driver bug: logged, nothing done.
    pub fn detach(&self) {
        let st = self.lock();
        if st.ioas.is_none() {
            tracing::error!(
                access = self.id(),
                "detach of an access that is not attached"
            );
            return;
        }
        if let Err(errno) = self.change_ioas(st, None) {
            tracing::error!(access = self.id(), %errno, "access detach failed");
        }
    }

    fn detach_if_attached(&self) {
        let st = self.lock();
        if st.unpin.is_some() {
            if let Err(errno) = self.change_ioas(st, None) {
                tracing::error!(access = self.id(), %errno, "access detach failed");
            }
        }
    }

    /// `iommufd_access_change_ioas_id()`.
    fn change_ioas_id<'a>(
        &'a self,
        st: MutexGuard<'a, AccessState>,
        ioas_id: u32,
    ) -> Result<(), Errno> {
        let ioas = self.ictx.get_ioas(ioas_id)?;
        self.change_ioas(st, Some(ioas))
    }

    /// `iommufd_access_change_ioas()`: joins `new`'s access list first (so a failure changes
    /// nothing), then, if the access was attached, has the driver unpin everything (without
    /// the lock: the driver's unpins take it) and leaves the old IOAS.
    fn change_ioas<'a>(
        &'a self,
        mut st: MutexGuard<'a, AccessState>,
        new: Option<Held<Ioas>>,
    ) -> Result<(), Errno> {
        let cur = st.ioas.as_ref().map(|i| i.id());
        let unpin = st.unpin.as_ref().map(|(i, _)| i.id());
        if cur != unpin {
            // another change dropped the lock to wait for the driver
            return Err(Errno::EBUSY);
        }
        if cur == new.as_ref().map(|i| i.id()) {
            return Ok(());
        }
        let old = st.ioas.take();
        let mut joined = None;
        if let Some(ioas) = new {
            let this: Weak<dyn IoptAccess> = self.this.clone();
            match ioas.iopt().add_access(this, self.iova_alignment) {
                Ok(list_id) => joined = Some((ioas, list_id)),
                Err(errno) => {
                    st.ioas = old;
                    return Err(errno);
                }
            }
        }
        if old.is_some() {
            drop(st);
            self.ops.unmap(self, 0, u64::MAX);
            st = self.lock();
            if let Some((ioas, list_id)) = st.unpin.take() {
                ioas.iopt().remove_access(list_id);
            }
        }
        st.ioas = joined.as_ref().map(|(ioas, _)| ioas.clone());
        st.unpin = joined;
        Ok(())
    }

    /// `iommufd_access_pin_pages()`: pins the pages behind `[iova, iova + length)` and
    /// returns the physical address of each, from the page holding `iova` on. `write` asks
    /// for pages DMA may write (`IOMMUFD_ACCESS_RW_WRITE`). The pins last until
    /// [`unpin_pages`](Self::unpin_pages) of the same range.
    ///
    /// # Errors
    /// In Linux's order: `EINVAL` for an access created without `needs_pin_pages`, then for
    /// `length` 0; `EOVERFLOW` if the range wraps; `ENOENT` if the access is not attached;
    /// then per area `EINVAL` (being unmapped, or a join between areas off a page boundary)
    /// and `EPERM` (a write pin of a read-only mapping), the pinning's `ENOMEM`/`EFAULT`, and
    /// `ENOENT` at a gap. Nothing stays pinned on error.
    pub fn pin_pages(&self, iova: u64, length: u64, write: bool) -> Result<Vec<u64>, Errno> {
        if self.iova_alignment != PAGE {
            return Err(Errno::EINVAL);
        }
        if length == 0 {
            return Err(Errno::EINVAL);
        }
        let last = iova.checked_add(length - 1).ok_or(Errno::EOVERFLOW)?;
        let st = self.lock();
        let ioas = st.ioas.as_ref().ok_or(Errno::ENOENT)?;
        ioas.iopt().access_pin(iova, last, write)
    }

    /// `iommufd_access_unpin_pages()`: drops the pins [`pin_pages`](Self::pin_pages) took
    /// for `[iova, iova + length)`. Works while a detach waits for the driver. A call that
    /// cannot be right (empty or wrapping range, never attached) is logged and ignored, as
    /// Linux warns.
    pub fn unpin_pages(&self, iova: u64, length: u64) {
        let Some(last) = length.checked_sub(1).and_then(|n| iova.checked_add(n)) else {
            tracing::error!(iova, length, "access unpin of an empty or wrapping range");
            return;
        };
        let st = self.lock();
        match &st.unpin {
            Some((ioas, _)) => ioas.iopt().access_unpin(iova, last),
            None => tracing::error!(access = self.id(), "access unpin while not attached"),
        }
    }

    /// `iommufd_access_rw()`: copies between `buf` and `[iova, iova + buf.len())` of the
    /// IOAS, without alignment rules and without keeping anything pinned.
    ///
    /// # Errors
    /// `EINVAL` for an empty buffer, `EOVERFLOW` if the range wraps, `ENOENT` if the access
    /// is not attached; then per area `EINVAL` (being unmapped), `EPERM` (writing a
    /// read-only mapping), `EFAULT`, and `ENOENT` at a gap — areas before the failing one
    /// have been copied.
    pub fn rw(&self, iova: u64, buf: RwBuf<'_>) -> Result<(), Errno> {
        let len = buf.len() as u64;
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        iova.checked_add(len - 1).ok_or(Errno::EOVERFLOW)?;
        let st = self.lock();
        let ioas = st.ioas.as_ref().ok_or(Errno::ENOENT)?;
        ioas.iopt().access_rw(iova, buf, self.mem.as_ref())
    }

    /// The memory the access's pages are in.
    pub fn mem(&self) -> &Arc<dyn PhysMem> {
        &self.mem
    }
}

impl Drop for Access {
    /// `iommufd_access_destroy_object()`: an access still attached (its context closed
    /// without the driver destroying it) detaches on the way out; the driver's unmap cannot
    /// be called any more, so pins it still holds stay until the IOAS goes.
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some((ioas, list_id)) = st.unpin.take() {
            ioas.iopt().remove_access(list_id);
        }
        st.ioas = None;
    }
}
