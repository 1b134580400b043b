//! [`Iommufd`]: one open `/dev/iommu` (Linux `struct iommufd_ctx`, `drivers/iommu/iommufd/
//! main.c`) — the object table, the context-wide options, and the object-generic commands
//! `IOMMU_DESTROY` and `IOMMU_OPTION`.
//!
//! The commands of each object family are `impl Iommufd` blocks in that family's module
//! ([`ioas`](crate::ioas), [`device`](crate::device), [`hw_pagetable`](crate::hw_pagetable),
//! [`attach`](crate::attach), [`dirty`](crate::dirty), [`vfio_compat`](crate::vfio_compat)), as
//! Linux has one file per family with the context as first argument; [`ioctl`](crate::ioctl)
//! turns an ioctl's bytes into those calls.
//!
//! # Locking
//! In order (a lock is only taken while holding those above it):
//! 1. the attach lock: serializes creating HWPTs, binding, unbinding, attaching and detaching
//!    devices (what Linux does with `ioas->mutex` and `igroup->lock`);
//! 2. the state lock (the table, the bound devices, the compatibility IOAS, the accounting
//!    mode — what Linux keeps under `xa_lock(&ictx->objects)`), held only to look objects up,
//!    publish and remove them;
//! 3. a device's attachment lock;
//! 4. an IOAS's address-space lock, then the IOMMU core's own locks;
//! 5. a fault queue's lock, never held while calling the IOMMU core; a vIOMMU's vEVENTQ
//!    table lock, then a vEVENTQ's lock ([`veventq`](crate::veventq)).
//!
//! Objects are dropped (destroyed) after the state lock is released, so an object's destroy
//! work may take the locks below it freely.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use vsva_iommu::Iommu;

use crate::abi::{Errno, IommuDestroy, IommuOption, OptionId, OptionOp, check_zero};
use crate::device::Device;
use crate::fault::{FIRST_FAULT_FD, FaultFile, LAST_FAULT_FD};
use crate::file::FileResolver;
use crate::ioas::Ioas;
use crate::object::{Held, IommufdObject, Object, ObjectTable, ObjectType};
use crate::pages::AddressSpace;
use crate::veventq::VeventqFile;

/// How pinned pages are charged against RLIMIT_MEMLOCK (`IOMMU_OPTION_RLIMIT_MODE`; Linux's
/// `IOPT_PAGES_ACCOUNT_USER` / `IOPT_PAGES_ACCOUNT_MM` of `io_pagetable.h`).
///
/// vsva's memory manager keeps one locked-memory counter per process and has no per-user
/// one, so both modes charge the process; the mode is kept and reported so a program sees
/// the option behave as on Linux.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AccountMode {
    /// Option value 0, the default for `/dev/iommu`: charged to the user (`user->locked_vm`).
    #[default]
    User,
    /// Option value 1, what VFIO type1 does: charged to the process (`mm->pinned_vm`).
    Mm,
}

/// What the state lock guards.
#[derive(Default)]
pub(crate) struct State {
    /// The objects.
    pub(crate) objects: ObjectTable,
    /// The IOAS the VFIO container compatibility API works on (`ictx->vfio_ioas`), by ID; a
    /// weak link, cleared when that IOAS is destroyed.
    pub(crate) vfio_ioas: Option<u32>,
    /// The RLIMIT_MEMLOCK accounting mode.
    pub(crate) account_mode: AccountMode,
    /// The binders' references on the devices bound to the context, by device ID (what
    /// `iommufd_device_bind()` keeps in `users` until `iommufd_device_unbind()`).
    pub(crate) bound: BTreeMap<u32, Held<Device>>,
    /// The open fault queue files, by number ([`fault`](crate::fault)); each holds its fault
    /// object.
    pub(crate) fault_files: BTreeMap<u32, Arc<FaultFile>>,
    /// The open vEVENTQ files, by number ([`veventq`](crate::veventq)), in the same number
    /// space; each holds its queue.
    pub(crate) veventq_files: BTreeMap<u32, Arc<VeventqFile>>,
}

impl State {
    /// The lowest file number from [`FIRST_FAULT_FD`] that no fault or vEVENTQ file has, as
    /// `get_unused_fd_flags()` hands out the lowest free descriptor.
    ///
    /// # Errors
    /// `EMFILE` when every number up to [`LAST_FAULT_FD`] is taken.
    pub(crate) fn free_file_number(&self) -> Result<u32, Errno> {
        let mut fd = FIRST_FAULT_FD;
        let mut taken: Vec<u32> = self
            .fault_files
            .range(FIRST_FAULT_FD..)
            .map(|(&fd, _)| fd)
            .chain(
                self.veventq_files
                    .range(FIRST_FAULT_FD..)
                    .map(|(&fd, _)| fd),
            )
            .collect();
        taken.sort_unstable();
        for number in taken {
            if number != fd {
                break;
            }
            fd += 1;
        }
        if fd > LAST_FAULT_FD {
            return Err(Errno::EMFILE);
        }
        Ok(fd)
    }
}

/// One open `/dev/iommu`: the iommufd context.
///
/// Created by the process that opens the file; that process's memory is what `user_va` of
/// `IOMMU_IOAS_MAP` names, and its RLIMIT_MEMLOCK is charged for pinned pages. The devices
/// bound to it sit behind `iommu`. Dropping it is closing the file: devices still bound are
/// unbound, then every object is destroyed, leaves first (a device before its HWPTs, a HWPT
/// before its IOAS), every IOAS unmapped and its pages unpinned.
pub struct Iommufd {
    /// The process whose memory `IOMMU_IOAS_MAP` maps (changed by
    /// `IOMMU_IOAS_CHANGE_PROCESS`).
    process: Mutex<Arc<dyn AddressSpace>>,
    iommu: Arc<Iommu>,
    privileged: AtomicBool,
    /// Whether `IOMMU_VIOMMU_TYPE_DEFAULT` is accepted ([`crate::viommu`]).
    pub(crate) core_viommu: AtomicBool,
    attach: Mutex<()>,
    state: Mutex<State>,
    /// How descriptors in `IOMMU_IOAS_MAP_FILE` become memory ([`crate::file`]).
    files: Mutex<Option<Arc<dyn FileResolver>>>,
}

impl Iommufd {
    /// Opens an iommufd for `process` (`iommufd_fops_open()`) on the IOMMU `iommu`: no
    /// objects, pinned pages charged in [`AccountMode::User`] mode, the caller without
    /// `CAP_SYS_RESOURCE`. `process` is a [`vsva_mm::Process`] of the memory manager, or the
    /// real program the `/dev/iommu` shim serves.
    pub fn new(process: Arc<dyn AddressSpace>, iommu: Arc<Iommu>) -> Self {
        Iommufd {
            process: Mutex::new(process),
            iommu,
            privileged: AtomicBool::new(false),
            core_viommu: AtomicBool::new(false),
            attach: Mutex::new(()),
            state: Mutex::new(State::default()),
            files: Mutex::new(None),
        }
    }

    /// The address space of the process using the context: the one that opened it, or the
    /// last caller of `IOMMU_IOAS_CHANGE_PROCESS`.
    pub fn process(&self) -> Arc<dyn AddressSpace> {
        self.process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Makes `process` the context's process.
    pub(crate) fn set_process(&self, process: Arc<dyn AddressSpace>) {
        *self.process.lock().unwrap_or_else(|e| e.into_inner()) = process;
    }

    /// The IOMMU the context's devices are behind.
    pub fn iommu(&self) -> &Arc<Iommu> {
        &self.iommu
    }

    /// Sets how the descriptors `IOMMU_IOAS_MAP_FILE` names are resolved (the owner of the
    /// caller's file table provides it; see the `file` module). Without one, every descriptor is
    /// `EBADF`.
    pub fn set_file_resolver(&self, resolver: Option<Arc<dyn FileResolver>>) {
        *self.files.lock().unwrap_or_else(|e| e.into_inner()) = resolver;
    }

    /// The file resolver, if one is set.
    pub fn file_resolver(&self) -> Option<Arc<dyn FileResolver>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Takes the attach lock (see the module's locking rules).
    pub(crate) fn attach_lock(&self) -> MutexGuard<'_, ()> {
        self.attach.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets whether the task issuing ioctls has `CAP_SYS_RESOURCE`, which setting
    /// `IOMMU_OPTION_RLIMIT_MODE` needs. Linux checks `capable()` of the caller at each call,
    /// so this can change between calls.
    pub fn set_privileged(&self, privileged: bool) {
        self.privileged.store(privileged, Ordering::Release);
    }

    /// Whether the caller has `CAP_SYS_RESOURCE`.
    pub fn privileged(&self) -> bool {
        self.privileged.load(Ordering::Acquire)
    }

    /// The RLIMIT_MEMLOCK accounting mode.
    pub fn account_mode(&self) -> AccountMode {
        self.state().account_mode
    }

    /// Locks the state.
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A counted reference to object `id` of kind `T` (`iommufd_get_object()`); while it
    /// lives, `IOMMU_DESTROY` of the object is `EBUSY`.
    ///
    /// # Errors
    /// `ENOENT` if there is no published object `id` of that kind.
    pub fn get<T: IommufdObject>(&self, id: u32) -> Result<Held<T>, Errno> {
        self.state().objects.get(id)
    }

    /// The IOAS `id` (`iommufd_get_ioas()`).
    ///
    /// # Errors
    /// `ENOENT` if `id` is not an IOAS.
    pub fn get_ioas(&self, id: u32) -> Result<Held<Ioas>, Errno> {
        self.get(id)
    }

    /// Every published object of kind `T`, in ID order, each counted as in use while held.
    pub fn all<T: IommufdObject>(&self) -> Vec<Held<T>> {
        let state = self.state();
        let ids: Vec<u32> = state
            .objects
            .objects()
            .filter(|object| object.kind() == T::TYPE)
            .map(|object| object.header().id())
            .collect();
        ids.into_iter()
            .filter_map(|id| state.objects.get(id).ok())
            .collect()
    }

    /// The published objects' IDs and kinds, in ID order.
    pub fn objects(&self) -> Vec<(u32, ObjectType)> {
        self.state()
            .objects
            .objects()
            .map(|object| (object.header().id(), object.kind()))
            .collect()
    }

    /// Creates an object: takes an ID, builds the object with it, and publishes the object
    /// only if building succeeded (`iommufd_object_alloc()`, then `iommufd_object_finalize()`
    /// or `iommufd_object_abort()`). `build` runs without the state lock. Returns the ID.
    ///
    /// # Errors
    /// `ENOMEM` when [`vsva_mem::fail_nth`] fails the object's allocation; `EBUSY` when no
    /// ID is free; `build`'s error, after which the ID is free again.
    pub(crate) fn create(
        &self,
        build: impl FnOnce(u32) -> Result<Object, Errno>,
    ) -> Result<u32, Errno> {
        // the object itself (`__iommufd_object_alloc()`'s `kzalloc`)
        vsva_mem::fail_nth::check()?;
        let id = self.state().objects.reserve()?;
        match build(id) {
            Ok(object) => {
                debug_assert_eq!(object.header().id(), id);
                tracing::debug!(?object, "iommufd object created");
                self.state().objects.finalize(object);
                Ok(id)
            }
            Err(errno) => {
                self.state().objects.abort(id);
                Err(errno)
            }
        }
    }

    /// `IOMMU_DESTROY` (`iommufd_destroy()`): destroys object `cmd.id`, of any kind, if nothing
    /// uses it. Destroying the compatibility IOAS clears it, as `iommufd_object_remove()` does.
    ///
    /// # Errors
    /// `ENOENT` if there is no such object; `EBUSY` if another object or an ioctl in progress
    /// holds it.
    pub fn destroy(&self, cmd: &IommuDestroy) -> Result<(), Errno> {
        let removed = {
            let mut state = self.state();
            let removed = state.objects.remove(cmd.id)?;
            if state.vfio_ioas == Some(cmd.id) {
                state.vfio_ioas = None;
            }
            removed
        };
        tracing::debug!(object = ?removed, "iommufd object destroyed");
        // The object's destroy work runs here, outside the state lock.
        drop(removed);
        Ok(())
    }

    /// `IOMMU_OPTION` (`iommufd_option()` of `main.c`): reads or writes `cmd.val64`.
    ///
    /// Order of checks: non-zero `__reserved` is `EOPNOTSUPP`; then by `option_id`:
    /// * `RLIMIT_MODE`, context-wide (`iommufd_option_rlimit_mode()` of `ioas.c`): an
    ///   `object_id` other than 0 is `EOPNOTSUPP`; `GET` returns 1 for [`AccountMode::Mm`],
    ///   else 0; `SET` without `CAP_SYS_RESOURCE` is `EPERM`, with any object in the context
    ///   `EBUSY`, with a value other than 0 or 1 `EINVAL`; any other `op` is `EOPNOTSUPP`;
    /// * `HUGE_PAGES`, per IOAS (`iommufd_ioas_option()` of `ioas.c`): see
    ///   [`IoPageTable::set_large_pages`](crate::io_pagetable::IoPageTable::set_large_pages) —
    ///   `ENOENT` if `object_id` is not an IOAS, then `GET` returns 1 or 0, `SET` takes 0 or 1
    ///   (else `EINVAL`), any other `op` is `EOPNOTSUPP`;
    /// * anything else: `EOPNOTSUPP`.
    ///
    /// On success only `val64` is returned to the caller.
    ///
    /// # Errors
    /// As said.
    pub fn option(&self, cmd: &mut IommuOption) -> Result<(), Errno> {
        check_zero(&cmd.__reserved)?;
        match cmd.option_id {
            OptionId::RLIMIT_MODE => self.option_rlimit_mode(cmd),
            OptionId::HUGE_PAGES => self.ioas_option(cmd),
            _ => Err(Errno::EOPNOTSUPP),
        }
    }

    /// `IOMMU_OPTION_RLIMIT_MODE` (`iommufd_option_rlimit_mode()` of `ioas.c`), with the
    /// checks [`option`](Self::option) lists.
    fn option_rlimit_mode(&self, cmd: &mut IommuOption) -> Result<(), Errno> {
        if cmd.object_id != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        match cmd.op {
            OptionOp::GET => {
                cmd.val64 = u64::from(self.account_mode() == AccountMode::Mm);
                Ok(())
            }
            OptionOp::SET => {
                if !self.privileged() {
                    return Err(Errno::EPERM);
                }
                let mut state = self.state();
                if !state.objects.is_empty() {
                    return Err(Errno::EBUSY);
                }
                state.account_mode = match cmd.val64 {
                    0 => AccountMode::User,
                    1 => AccountMode::Mm,
                    _ => return Err(Errno::EINVAL),
                };
                Ok(())
            }
            _ => Err(Errno::EOPNOTSUPP),
        }
    }
}

impl Drop for Iommufd {
    /// Closing the file (`iommufd_fops_release()`): destroys every object, leaves first.
    fn drop(&mut self) {
        let bound: Vec<u32> = self.state().bound.keys().copied().collect();
        for dev_id in bound {
            if let Err(errno) = self.unbind_device(dev_id) {
                tracing::error!(dev_id, %errno, "unbinding at close failed");
            }
        }
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        // The files close first, so their fault objects can go as leaves.
        state.fault_files.clear();
        state.veventq_files.clear();
        state.vfio_ioas = None;
        state.objects.destroy_all();
    }
}

impl std::fmt::Debug for Iommufd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iommufd")
            .field("process", &self.process().name())
            .field("objects", &self.objects())
            .finish()
    }
}

// The shim serves ioctls from any thread of the process, so the context must be shareable.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<Iommufd>();
};
