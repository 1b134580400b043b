//! The object table of an iommufd context and the lifetime rules every object shares (Linux
//! `struct iommufd_object` and `ictx->objects`, `drivers/iommu/iommufd/main.c`).
//!
//! * **IDs** are allocated as `xa_alloc()` does on an `XA_FLAGS_ALLOC1` xarray with
//!   `xa_limit_31b`: the lowest free ID from 1 up to `i32::MAX`, so a destroyed object's ID is
//!   handed out again by the next allocation. A full table is `EBUSY`.
//! * **Creation** is two-step (`iommufd_object_alloc()` then `iommufd_object_finalize()` or
//!   `iommufd_object_abort()`): [`ObjectTable::reserve`] takes the ID but leaves the slot
//!   invisible — lookups and `IOMMU_DESTROY` see `ENOENT` — and only
//!   [`ObjectTable::finalize`] publishes the object, once nothing can fail any more.
//! * **Users**: Linux counts one `users` reference for the table and one for everything else
//!   that holds the object — an ioctl that looked it up (`iommufd_get_object()`), a HWPT built
//!   on an IOAS, a driver that bound a device. vsva counts the second kind only, in
//!   [`ObjectHeader`]: each [`Held`] is one user. `IOMMU_DESTROY` removes an object only when
//!   it has no users (`EBUSY` otherwise, `iommufd_object_remove()`), and since a `Held` is only
//!   created under the table lock from a published object (or cloned from another `Held`), no
//!   user can appear between that check and the removal.
//! * **Destruction** is the object's `Drop`: removing an object from the table drops the
//!   table's `Arc`, and the object's destroy work (an IOAS unmaps everything) runs when the
//!   last `Arc` goes — at once for an object without users.
//! * **Typed lookup** ([`ObjectTable::get`]) checks the kind: an ID of another kind is `ENOENT`,
//!   like `iommufd_get_object()` with a type other than `IOMMUFD_OBJ_ANY`.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::abi::Errno;
use crate::access::Access;
use crate::device::Device;
use crate::fault::Fault;
use crate::hw_pagetable::{HwptNested, HwptPaging};
use crate::ioas::Ioas;
use crate::vdevice::Vdevice;
use crate::veventq::Veventq;
use crate::viommu::Viommu;

/// The largest object ID (`xa_limit_31b`: IDs fit a non-negative `int`).
pub const MAX_OBJECT_ID: u32 = i32::MAX as u32;

/// `enum iommufd_object_type` of `iommufd_private.h`: the kinds of object an iommufd context
/// holds. Only the kinds whose family module exists appear in [`Object`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectType {
    /// `IOMMUFD_OBJ_DEVICE`: a device bound to the context.
    Device,
    /// `IOMMUFD_OBJ_HWPT_PAGING`: a HWPT the kernel fills from an IOAS.
    HwptPaging,
    /// `IOMMUFD_OBJ_HWPT_NESTED`: a HWPT with a user-owned first stage over a paging parent.
    HwptNested,
    /// `IOMMUFD_OBJ_IOAS`: an I/O address space.
    Ioas,
    /// `IOMMUFD_OBJ_ACCESS`: an in-kernel (emulated device) access to an IOAS.
    Access,
    /// `IOMMUFD_OBJ_FAULT`: a fault queue.
    Fault,
    /// `IOMMUFD_OBJ_VIOMMU`: a virtual IOMMU.
    Viommu,
    /// `IOMMUFD_OBJ_VDEVICE`: a device's identity behind a vIOMMU.
    Vdevice,
    /// `IOMMUFD_OBJ_VEVENTQ`: a vIOMMU event queue.
    Veventq,
    /// `IOMMUFD_OBJ_HW_QUEUE`: a vIOMMU hardware queue.
    HwQueue,
    /// `IOMMUFD_OBJ_SELFTEST`: the kernel's self-test object; here only the unit tests' object.
    Selftest,
}

/// What every object embeds (the `struct iommufd_object` header): its ID and its users.
#[derive(Debug)]
pub struct ObjectHeader {
    id: u32,
    users: AtomicU32,
}

impl ObjectHeader {
    /// The header of the object being created with `id` (from [`ObjectTable::reserve`]).
    pub(crate) fn new(id: u32) -> Self {
        ObjectHeader {
            id,
            users: AtomicU32::new(0),
        }
    }

    /// The object's ID.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// How many [`Held`] references exist now (the table's own reference is not counted).
    pub fn users(&self) -> u32 {
        self.users.load(Ordering::Acquire)
    }
}

/// An object kind of the table: how to find its header and to pick it out of an [`Object`].
pub trait IommufdObject: Send + Sync + Sized + 'static {
    /// The kind.
    const TYPE: ObjectType;

    /// The embedded header.
    fn header(&self) -> &ObjectHeader;

    /// The object, if `object` is of this kind.
    fn downcast(object: &Object) -> Option<&Arc<Self>>;
}

/// A published object of the table, one variant per kind that exists in vsva so far.
///
/// Each holds its dependencies as [`Held`] references — a paging HWPT its IOAS, a nested HWPT
/// its parent, an attached device its HWPTs, a HWPT its fault queue — which keeps each of
/// them from being destroyed first; a vIOMMU holds its nesting parent, a vDEVICE its vIOMMU
/// and device, a vEVENTQ its vIOMMU, a nested HWPT allocated on a vIOMMU that vIOMMU, an
/// access its IOAS.
#[derive(Clone)]
#[non_exhaustive]
pub enum Object {
    /// An I/O address space.
    Ioas(Arc<Ioas>),
    /// A device bound to the context.
    Device(Arc<Device>),
    /// A kernel-managed I/O page table filled from an IOAS.
    HwptPaging(Arc<HwptPaging>),
    /// A user-managed first stage nested on a paging HWPT.
    HwptNested(Arc<HwptNested>),
    /// A fault queue.
    Fault(Arc<Fault>),
    /// A virtual IOMMU.
    Viommu(Arc<Viommu>),
    /// A device's ID on a vIOMMU.
    Vdevice(Arc<Vdevice>),
    /// A vIOMMU event queue.
    Veventq(Arc<Veventq>),
    /// An emulated device's access to an IOAS.
    Access(Arc<Access>),
    /// The unit tests' stand-in for an object of a second kind.
    #[cfg(test)]
    Selftest(Arc<tests::Selftest>),
}

impl Object {
    /// The kind.
    pub fn kind(&self) -> ObjectType {
        match self {
            Object::Ioas(_) => ObjectType::Ioas,
            Object::Device(_) => ObjectType::Device,
            Object::HwptPaging(_) => ObjectType::HwptPaging,
            Object::HwptNested(_) => ObjectType::HwptNested,
            Object::Fault(_) => ObjectType::Fault,
            Object::Viommu(_) => ObjectType::Viommu,
            Object::Vdevice(_) => ObjectType::Vdevice,
            Object::Veventq(_) => ObjectType::Veventq,
            Object::Access(_) => ObjectType::Access,
            #[cfg(test)]
            Object::Selftest(_) => ObjectType::Selftest,
        }
    }

    /// The embedded header.
    pub fn header(&self) -> &ObjectHeader {
        match self {
            Object::Ioas(ioas) => ioas.header(),
            Object::Device(device) => device.header(),
            Object::HwptPaging(hwpt) => hwpt.header(),
            Object::HwptNested(hwpt) => hwpt.header(),
            Object::Fault(fault) => fault.header(),
            Object::Viommu(viommu) => viommu.header(),
            Object::Vdevice(vdev) => vdev.header(),
            Object::Veventq(veventq) => veventq.header(),
            Object::Access(access) => access.header(),
            #[cfg(test)]
            Object::Selftest(object) => object.header(),
        }
    }
}

impl fmt::Debug for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header = self.header();
        write!(
            f,
            "{:?}#{} ({} users)",
            self.kind(),
            header.id(),
            header.users()
        )
    }
}

/// A counted reference to an object: while it lives, the object is in use and
/// `IOMMU_DESTROY` of it is `EBUSY` (Linux's `users` reference, taken by
/// `iommufd_get_object()` and by objects that depend on it).
///
/// Only `ObjectTable::get` makes one from a published object; [`Clone`] makes another from
/// an existing one.
pub struct Held<T: IommufdObject> {
    object: Arc<T>,
}

impl<T: IommufdObject> Held<T> {
    /// Counts a user of `object`. Called with the table locked, on a published object.
    fn new(object: &Arc<T>) -> Self {
        object.header().users.fetch_add(1, Ordering::AcqRel);
        Held {
            object: Arc::clone(object),
        }
    }

    /// Counts a user of `object` while it is still being built, before it is published — as
    /// Linux takes `users` references on an object between `iommufd_object_alloc()` and
    /// `iommufd_object_finalize()` (an automatic HWPT is attached to its device before it is
    /// published). The count carries over to the published object.
    pub(crate) fn unpublished(object: &Arc<T>) -> Self {
        Held::new(object)
    }

    /// The object's ID.
    pub fn id(&self) -> u32 {
        self.object.header().id()
    }

    /// The shared object itself, for code that must keep it past the table's lifetime rules.
    pub(crate) fn arc(&self) -> &Arc<T> {
        &self.object
    }
}

impl<T: IommufdObject> Clone for Held<T> {
    fn clone(&self) -> Self {
        Held::new(&self.object)
    }
}

impl<T: IommufdObject> Drop for Held<T> {
    fn drop(&mut self) {
        self.object.header().users.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<T: IommufdObject> Deref for Held<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.object
    }
}

impl<T: IommufdObject> fmt::Debug for Held<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Held({:?}#{})", T::TYPE, self.id())
    }
}

/// A slot of the table: an ID taken by an object still being built (Linux stores
/// `XA_ZERO_ENTRY` there), or a published object.
enum Slot {
    Reserved,
    Live(Object),
}

/// The IDs and objects of one context (`ictx->objects`). The context keeps it under its lock.
#[derive(Default)]
pub struct ObjectTable {
    slots: BTreeMap<u32, Slot>,
}

impl ObjectTable {
    /// Takes the lowest free ID for an object about to be built (`xa_alloc()` of
    /// `XA_ZERO_ENTRY`): lookups do not see it until [`finalize`](Self::finalize).
    ///
    /// # Errors
    /// `EBUSY` when every ID up to [`MAX_OBJECT_ID`] is taken.
    pub fn reserve(&mut self) -> Result<u32, Errno> {
        let mut id = 1;
        for &taken in self.slots.keys() {
            if taken != id {
                break;
            }
            id += 1;
        }
        if id > MAX_OBJECT_ID {
            return Err(Errno::EBUSY);
        }
        self.slots.insert(id, Slot::Reserved);
        Ok(id)
    }

    /// Publishes `object` in the slot [`reserve`](Self::reserve) took for it
    /// (`iommufd_object_finalize()`).
    pub fn finalize(&mut self, object: Object) {
        let id = object.header().id();
        let old = self.slots.insert(id, Slot::Live(object));
        debug_assert!(matches!(old, Some(Slot::Reserved)), "finalize of id {id}");
    }

    /// Gives back a reserved ID whose object was not finished (`iommufd_object_abort()`).
    pub fn abort(&mut self, id: u32) {
        if let Some(Slot::Reserved) = self.slots.get(&id) {
            self.slots.remove(&id);
        }
    }

    /// A counted reference to object `id` of kind `T` (`iommufd_get_object()`).
    ///
    /// # Errors
    /// `ENOENT` if `id` is free, still being built, or of another kind.
    pub fn get<T: IommufdObject>(&self, id: u32) -> Result<Held<T>, Errno> {
        match self.slots.get(&id) {
            Some(Slot::Live(object)) => T::downcast(object).map(Held::new).ok_or(Errno::ENOENT),
            _ => Err(Errno::ENOENT),
        }
    }

    /// Whether object `id` is published and is `object` itself.
    pub fn is_same<T: IommufdObject>(&self, id: u32, object: &Arc<T>) -> bool {
        match self.slots.get(&id) {
            Some(Slot::Live(live)) => T::downcast(live).is_some_and(|o| Arc::ptr_eq(o, object)),
            _ => false,
        }
    }

    /// The kind of object `id`, if it is published.
    pub fn kind(&self, id: u32) -> Option<ObjectType> {
        match self.slots.get(&id) {
            Some(Slot::Live(object)) => Some(object.kind()),
            _ => None,
        }
    }

    /// Takes object `id` of any kind out of the table if nothing uses it
    /// (`iommufd_object_remove()` as `IOMMU_DESTROY` calls it). The caller drops the result
    /// outside its lock, which runs the object's destroy work.
    ///
    /// # Errors
    /// `ENOENT` if `id` is free or still being built; `EBUSY` if the object has users.
    pub fn remove(&mut self, id: u32) -> Result<Object, Errno> {
        match self.slots.get(&id) {
            Some(Slot::Live(object)) if object.header().users() != 0 => Err(Errno::EBUSY),
            Some(Slot::Live(_)) => match self.slots.remove(&id) {
                Some(Slot::Live(object)) => Ok(object),
                _ => Err(Errno::ENOENT),
            },
            _ => Err(Errno::ENOENT),
        }
    }

    /// Takes object `id` out of the table whatever its users, as a driver's
    /// `iommufd_object_destroy_user()` does for the objects it created (a device at unbind).
    /// Holders keep the object alive, unpublished, until they let go.
    pub fn remove_owned(&mut self, id: u32) -> Option<Object> {
        match self.slots.remove(&id) {
            Some(Slot::Live(object)) => Some(object),
            Some(Slot::Reserved) => {
                self.slots.insert(id, Slot::Reserved);
                None
            }
            None => None,
        }
    }

    /// Takes object `id` out of the table whatever its users and leaves its ID taken but
    /// naming nothing — a tombstone, as `iommufd_object_tombstone_user()` leaves
    /// `XA_ZERO_ENTRY` — so the ID is not handed out again while the context is open. Lookups
    /// and `IOMMU_DESTROY` of it are `ENOENT`; closing the context clears it.
    pub fn tombstone(&mut self, id: u32) -> Option<Object> {
        match self.slots.get(&id) {
            Some(Slot::Live(_)) => match self.slots.insert(id, Slot::Reserved) {
                Some(Slot::Live(object)) => Some(object),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether the table holds nothing, counting IDs still being built (`xa_empty()`).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The published objects, in ID order.
    pub fn objects(&self) -> impl Iterator<Item = &Object> {
        self.slots.values().filter_map(|slot| match slot {
            Slot::Live(object) => Some(object),
            Slot::Reserved => None,
        })
    }

    /// Empties the table the way closing the file does (`iommufd_fops_release()`): over and
    /// over, every object without users is removed and dropped, which releases what it held,
    /// until nothing is left. Objects still used from outside the table are dropped last, with
    /// an error logged (Linux warns and leaks them).
    pub fn destroy_all(&mut self) {
        while !self.slots.is_empty() {
            let leaves: Vec<u32> = self
                .slots
                .iter()
                .filter(|(_, slot)| match slot {
                    Slot::Live(object) => object.header().users() == 0,
                    Slot::Reserved => true,
                })
                .map(|(&id, _)| id)
                .collect();
            if leaves.is_empty() {
                tracing::error!(
                    objects = ?self.objects().collect::<Vec<_>>(),
                    "iommufd closed with objects still in use"
                );
                self.slots.clear();
                return;
            }
            for id in leaves {
                // Dropping the object here may lower other objects' users for the next round.
                drop(self.slots.remove(&id));
            }
        }
    }
}

/// Unit tests, with an object kind of their own.
#[cfg(test)]
pub mod tests {
    use super::*;

    /// An object of a second kind, to check that typed lookups refuse other kinds.
    pub struct Selftest {
        header: ObjectHeader,
        /// What the object depends on, as a HWPT holds its IOAS: held only for its users
        /// count, never read.
        _holds: Option<Held<Selftest>>,
    }

    impl IommufdObject for Selftest {
        const TYPE: ObjectType = ObjectType::Selftest;

        fn header(&self) -> &ObjectHeader {
            &self.header
        }

        fn downcast(object: &Object) -> Option<&Arc<Self>> {
            match object {
                Object::Selftest(object) => Some(object),
                _ => None,
            }
        }
    }

    fn add(table: &mut ObjectTable, holds: Option<u32>) -> u32 {
        let id = table.reserve().unwrap();
        let holds = holds.map(|h| table.get::<Selftest>(h).unwrap());
        table.finalize(Object::Selftest(Arc::new(Selftest {
            header: ObjectHeader::new(id),
            _holds: holds,
        })));
        id
    }

    #[test]
    fn ids_are_the_lowest_free_from_one() {
        let mut table = ObjectTable::default();
        assert_eq!(add(&mut table, None), 1);
        assert_eq!(add(&mut table, None), 2);
        assert_eq!(add(&mut table, None), 3);
        drop(table.remove(2).unwrap());
        assert_eq!(add(&mut table, None), 2, "xa_alloc reuses the lowest hole");
        assert_eq!(add(&mut table, None), 4);
        drop(table.remove(1).unwrap());
        drop(table.remove(3).unwrap());
        assert_eq!(add(&mut table, None), 1);
        assert_eq!(add(&mut table, None), 3);
    }

    #[test]
    fn reserved_ids_are_invisible_until_finalized() {
        let mut table = ObjectTable::default();
        let id = table.reserve().unwrap();
        assert_eq!(id, 1);
        assert_eq!(table.get::<Selftest>(id).err(), Some(Errno::ENOENT));
        assert_eq!(table.remove(id).err(), Some(Errno::ENOENT));
        assert!(
            !table.is_empty(),
            "a reserved ID makes the xarray non-empty"
        );
        assert_eq!(table.reserve().unwrap(), 2, "but its ID is taken");
        table.abort(id);
        table.abort(2);
        assert!(table.is_empty());
        assert_eq!(table.reserve().unwrap(), 1, "an aborted ID is free again");
    }

    #[test]
    fn typed_lookup_refuses_other_kinds() {
        let mut table = ObjectTable::default();
        let id = add(&mut table, None);
        assert!(table.get::<Ioas>(id).is_err_and(|e| e == Errno::ENOENT));
        assert_eq!(table.get::<Selftest>(id).unwrap().id(), id);
        assert!(
            table
                .get::<Selftest>(id + 1)
                .is_err_and(|e| e == Errno::ENOENT)
        );
        assert_eq!(table.kind(id), Some(ObjectType::Selftest));
    }

    #[test]
    fn objects_in_use_are_busy_until_their_users_go() {
        let mut table = ObjectTable::default();
        let base = add(&mut table, None);
        let top = add(&mut table, Some(base));
        let held = table.get::<Selftest>(top).unwrap();
        assert_eq!(table.remove(base).err(), Some(Errno::EBUSY), "top holds it");
        assert_eq!(
            table.remove(top).err(),
            Some(Errno::EBUSY),
            "a lookup holds it"
        );
        let second = held.clone();
        drop(held);
        assert_eq!(
            table.remove(top).err(),
            Some(Errno::EBUSY),
            "the clone holds it"
        );
        drop(second);
        let removed = table.remove(top).unwrap();
        assert_eq!(
            table.remove(base).err(),
            Some(Errno::EBUSY),
            "still held by the removed object until it is dropped"
        );
        drop(removed);
        assert!(table.remove(base).is_ok());
        assert!(table.is_empty());
    }

    #[test]
    fn destroy_all_takes_leaves_first() {
        let mut table = ObjectTable::default();
        let a = add(&mut table, None);
        let b = add(&mut table, Some(a));
        let _c = add(&mut table, Some(b));
        table.destroy_all();
        assert!(table.is_empty());
    }
}
