//! The IOMMU core: devices, PASID attachments, SVA bind/unbind, MMU-notifier-driven
//! invalidation and I/O page-fault handling (Linux `iommu.c`, `iommu-sva.c`, `io-pgfault.c`).
//!
//! # Teardown order
//! Unbind and detach clear the PASID entry — the driver's `clear_pasid` flushes the IOTLB and
//! the device TLB — while the attachment is still on the list that address-space changes
//! (the MMU notifier's device list) and domain unmaps flush; only then does it leave that list
//! and its PASID or domain ID become free (Linux `iommu_sva_unbind_device`:
//! `iommu_detach_device_pasid` before `mmu_notifier_put`). Attach and bind do the reverse: on
//! the list first, then the entry. A bind holds the process's address space
//! ([`Process::hold`]) from reading the page-table root until its notifier is registered and
//! its entry set, so exit either waits for it (and its `release` then blocks the PASID) or
//! has begun and the bind fails.
//!
//! # Lock order
//! 1. The configuration lock: serializes add/remove device, attach/detach, bind/unbind and
//!    the exit notifier (`release`), and is held across their driver calls (Linux's
//!    `iommu_sva_lock` and group mutex). Never taken by the invalidation notifier nor by
//!    fault handling.
//! 2. A process's hold ([`Process::hold`], taken by bind under 1; it briefly reads the
//!    address-space lock) and its notifier list (bind, unbind under 1).
//! 3. A domain's attachment lock (under 1, or alone by map/unmap).
//! 4. The state lock (devices, attachments, address spaces), short, never held across a
//!    driver call, then the IOPF queue lock.
//!
//! The memory manager calls the invalidation notifier with the address-space lock held, so
//! that lock comes before the state lock and nothing holding the state lock waits for it; the
//! invalidation notifier never takes the configuration lock (bind waits for the address-space
//! lock under it). Exit calls `release` with no memory-manager lock held, after every hold is
//! gone, so `release` may take the configuration lock. A process reference the core upgraded
//! is dropped only outside the configuration lock: the last one runs exit, whose `release`
//! takes it. The state and IOPF locks are not held while a fault is resolved by the memory
//! manager.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use vsva_mem::{Pasid, Rid};
use vsva_mm::{NotifierId, Pid, Process};

use crate::did::DomainIds;
use crate::domain::{NestedDomain, NestedS1, PagingDomain};
use crate::error::{IommuError, Result};
use crate::iopf::{FaultGroup, IopfQueue, IopfStats};
use crate::ops::{DeviceCaps, DomainSpec, IommuOps, UnrecoverableFault};
use crate::pasid::PasidAllocator;

mod faults;
mod sva;

/// Who resolves the page faults of an attachment that is not SVA (e.g. a nested domain whose
/// faults go to user space): it answers later through [`Iommu::respond`].
pub trait IopfHandler: Send + Sync {
    /// A complete page request group.
    fn handle(&self, group: FaultGroup);
}

/// Receives a device's unrecoverable faults.
pub type FaultHandler = Arc<dyn Fn(&UnrecoverableFault) + Send + Sync>;

/// Offered a device's unrecoverable faults before its [`FaultHandler`]; returns whether it
/// took the fault (iommufd's vEVENTQ: Linux reports a nested master's stage-1 events to its
/// vIOMMU instead of logging them).
pub type EventHandler = Arc<dyn Fn(&UnrecoverableFault) -> bool + Send + Sync>;

#[derive(Clone)]
enum Attachment {
    /// Bound to a process's address space (reference count of binds); `supervisor` when
    /// privileged requests are allowed on it.
    Sva {
        pid: Pid,
        binds: u32,
        supervisor: bool,
    },
    /// Attached to a domain, with an optional fault handler.
    Domain {
        did: u16,
        handler: Option<Arc<dyn IopfHandler>>,
        owner: Owner,
    },
}

/// Who an attachment's domain ID belongs to, and whose attachment list holds it: detaching
/// — by whatever path, device removal included — undoes exactly what attaching did.
#[derive(Clone)]
enum Owner {
    /// The attachment allocated its own ID ([`Iommu::attach_pasid`]).
    Attachment,
    /// A paging domain's.
    Paging(Weak<PagingDomain>),
    /// A nested domain's.
    Nested(Weak<NestedDomain>),
}

impl Owner {
    fn add(&self, dev: Rid, pasid: Pasid) {
        match self {
            Owner::Attachment => {}
            Owner::Paging(w) => {
                if let Some(d) = w.upgrade() {
                    d.add_attachment(dev, pasid);
                }
            }
            Owner::Nested(w) => {
                if let Some(d) = w.upgrade() {
                    d.add_attachment(dev, pasid);
                }
            }
        }
    }

    /// (`dev`, `pasid`)'s entry is about to be cleared (`true`): the domain no longer
    /// reprograms it, but still flushes it; or it stays after all (`false`).
    fn set_leaving(&self, dev: Rid, pasid: Pasid, leaving: bool) {
        if let Owner::Paging(w) = self {
            if let Some(d) = w.upgrade() {
                d.set_leaving(dev, pasid, leaving);
            }
        }
    }

    fn remove(&self, dev: Rid, pasid: Pasid) {
        match self {
            Owner::Attachment => {}
            Owner::Paging(w) => {
                if let Some(d) = w.upgrade() {
                    d.remove_attachment(dev, pasid);
                }
            }
            Owner::Nested(w) => {
                if let Some(d) = w.upgrade() {
                    d.remove_attachment(dev, pasid);
                }
            }
        }
    }
}

/// A domain a PASID can be attached to ([`Iommu::attach_domain`]).
#[derive(Clone, Copy)]
pub enum DomainRef<'a> {
    /// A paging domain.
    Paging(&'a Arc<PagingDomain>),
    /// A nested domain.
    Nested(&'a Arc<NestedDomain>),
}

impl<'a> From<&'a Arc<PagingDomain>> for DomainRef<'a> {
    fn from(d: &'a Arc<PagingDomain>) -> Self {
        DomainRef::Paging(d)
    }
}

impl<'a> From<&'a Arc<NestedDomain>> for DomainRef<'a> {
    fn from(d: &'a Arc<NestedDomain>) -> Self {
        DomainRef::Nested(d)
    }
}

impl DomainRef<'_> {
    fn did(self) -> u16 {
        match self {
            DomainRef::Paging(d) => d.did(),
            DomainRef::Nested(d) => d.did(),
        }
    }

    fn spec(self) -> DomainSpec {
        match self {
            DomainRef::Paging(d) => d.spec(),
            DomainRef::Nested(d) => d.spec(),
        }
    }

    fn owner(self) -> Owner {
        match self {
            DomainRef::Paging(d) => Owner::Paging(Arc::downgrade(d)),
            DomainRef::Nested(d) => Owner::Nested(Arc::downgrade(d)),
        }
    }
}

struct Device {
    caps: DeviceCaps,
    pri_limit: u32,
    pasids: HashMap<u32, Attachment>,
    fault_handler: Option<FaultHandler>,
    /// Takes the device's faults first when set (iommufd's vEVENTQ delivery); a fault it
    /// does not take goes on to `fault_handler`.
    event_handler: Option<EventHandler>,
}

struct Mm {
    process: Weak<Process>,
    pasid: Pasid,
    did: u16,
    notifier: NotifierId,
    devices: Vec<Rid>,
    /// The process exited: its PASIDs are blocked until unbound.
    dead: bool,
}

struct State {
    pasids: PasidAllocator,
    devices: HashMap<Rid, Device>,
    mms: HashMap<Pid, Mm>,
}

/// A device bound to an address space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SvaHandle {
    /// The device.
    pub dev: Rid,
    /// The PASID the device must put on its requests.
    pub pasid: Pasid,
    pid: Pid,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IommuStats {
    /// I/O page-fault queue counters.
    pub iopf: IopfStats,
    /// Groups answered Success.
    pub responses_success: u64,
    /// Groups answered Invalid.
    pub responses_invalid: u64,
    /// Range invalidations sent to the driver (MMU notifier).
    pub flushes: u64,
    /// Unrecoverable faults taken from the hardware.
    pub unrecoverable: u64,
    /// Page requests from unknown devices or PASIDs without a handler.
    pub unhandled: u64,
}

/// A point of the bind/unbind/detach protocol where a test may place a racing call
/// ([`Iommu::set_hook`]). The configuration lock is held at each (so a racing bind, unbind,
/// attach, detach or exit must run on another thread); the state lock is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorePoint {
    /// Unbind cleared (`dev`, `pasid`)'s entry and flushed; the device is still on the
    /// address space's notifier list.
    UnbindCleared {
        /// The device.
        dev: Rid,
        /// Its PASID.
        pasid: Pasid,
    },
    /// Detach cleared (`dev`, `pasid`)'s entry and flushed; the attachment is still on its
    /// domain's list.
    DetachCleared {
        /// The device.
        dev: Rid,
        /// The PASID.
        pasid: Pasid,
    },
    /// Bind read `pid`'s page-table root (holding its address space) and has not set the
    /// PASID entry yet.
    BindRootRead {
        /// The device.
        dev: Rid,
        /// The process.
        pid: Pid,
    },
}

/// A test hook: called at each [`CorePoint`].
pub type CoreHook = Arc<dyn Fn(CorePoint) + Send + Sync>;

/// An IOMMU under the core's management.
pub struct Iommu {
    ops: Arc<dyn IommuOps>,
    dids: Arc<DomainIds>,
    /// Serializes configuration changes across their driver calls (see the module doc).
    config: Mutex<()>,
    state: Mutex<State>,
    iopf: Mutex<IopfQueue>,
    me: Weak<Iommu>,
    success: AtomicU64,
    invalid: AtomicU64,
    flushes: AtomicU64,
    unrecoverable: AtomicU64,
    unhandled: AtomicU64,
    hook: OnceLock<CoreHook>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Iommu {
    /// Takes over an IOMMU through its driver.
    pub fn new(ops: Arc<dyn IommuOps>) -> Arc<Iommu> {
        let bits = ops.pasid_bits();
        Arc::new_cyclic(|me| Iommu {
            ops,
            config: Mutex::new(()),
            state: Mutex::new(State {
                pasids: PasidAllocator::new(bits),
                devices: HashMap::new(),
                mms: HashMap::new(),
            }),
            dids: Arc::new(DomainIds::default()),
            iopf: Mutex::new(IopfQueue::default()),
            me: me.clone(),
            success: AtomicU64::new(0),
            invalid: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            unrecoverable: AtomicU64::new(0),
            unhandled: AtomicU64::new(0),
            hook: OnceLock::new(),
        })
    }

    /// Installs a hook called at every [`CorePoint`] (tests place racing calls there). Set
    /// once.
    ///
    /// # Errors
    /// The hook given, if one is set already.
    pub fn set_hook(&self, hook: CoreHook) -> std::result::Result<(), CoreHook> {
        self.hook.set(hook)
    }

    fn at(&self, point: CorePoint) {
        if let Some(h) = self.hook.get() {
            h(point);
        }
    }

    fn config(&self) -> MutexGuard<'_, ()> {
        lock(&self.config)
    }

    /// The driver.
    pub fn ops(&self) -> &Arc<dyn IommuOps> {
        &self.ops
    }

    /// Counters.
    pub fn stats(&self) -> IommuStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        IommuStats {
            iopf: lock(&self.iopf).stats(),
            responses_success: g(&self.success),
            responses_invalid: g(&self.invalid),
            flushes: g(&self.flushes),
            unrecoverable: g(&self.unrecoverable),
            unhandled: g(&self.unhandled),
        }
    }

    /// Puts a device under the IOMMU. `pri_allocation` is the number of outstanding page
    /// requests software allocated it (PRI Outstanding Page Request Allocation).
    ///
    /// # Errors
    /// [`IommuError::DeviceExists`], driver failure.
    pub fn add_device(&self, dev: Rid, caps: DeviceCaps, pri_allocation: u32) -> Result<()> {
        let _config = self.config();
        if lock(&self.state).devices.contains_key(&dev) {
            return Err(IommuError::DeviceExists(dev));
        }
        // the device's IOMMU data (`iommu_probe_device()`'s `dev_iommu_get()`)
        if vsva_mem::fail_nth::should_fail() {
            return Err(IommuError::NoMemory);
        }
        self.ops.attach_device(dev, caps)?;
        lock(&self.state).devices.insert(
            dev,
            Device {
                caps,
                pri_limit: pri_allocation,
                pasids: HashMap::new(),
                fault_handler: None,
                event_handler: None,
            },
        );
        Ok(())
    }

    /// Routes `dev`'s unrecoverable faults to `handler`.
    ///
    /// # Errors
    /// [`IommuError::NoDevice`].
    pub fn set_fault_handler(&self, dev: Rid, handler: FaultHandler) -> Result<()> {
        let mut st = lock(&self.state);
        let d = st.devices.get_mut(&dev).ok_or(IommuError::NoDevice(dev))?;
        d.fault_handler = Some(handler);
        Ok(())
    }

    /// Sets (or with `None` removes) `dev`'s event handler, offered each of its faults before
    /// its fault handler.
    ///
    /// # Errors
    /// [`IommuError::NoDevice`].
    pub fn set_event_handler(&self, dev: Rid, handler: Option<EventHandler>) -> Result<()> {
        let mut st = lock(&self.state);
        let d = st.devices.get_mut(&dev).ok_or(IommuError::NoDevice(dev))?;
        d.event_handler = handler;
        Ok(())
    }

    /// Removes a device: its pending page requests are answered Invalid, its PASIDs cleared,
    /// its SVA bindings dropped.
    ///
    /// # Errors
    /// [`IommuError::NoDevice`].
    pub fn remove_device(&self, dev: Rid) -> Result<()> {
        // Declared before the lock is taken, so dropped after it is released (the last
        // reference to a process runs its exit, whose notifier takes the lock).
        let mut released: Vec<Arc<Process>> = Vec::new();
        let _config = self.config();
        let pasids: Vec<(u32, Attachment)> = {
            let st = lock(&self.state);
            let d = st.devices.get(&dev).ok_or(IommuError::NoDevice(dev))?;
            d.pasids.iter().map(|(p, a)| (*p, a.clone())).collect()
        };
        self.abort_faults(dev, None, true);
        for (p, a) in pasids {
            let pasid = Pasid::new(p).map_err(|_| IommuError::NotBound)?;
            match a {
                Attachment::Sva { pid, .. } => {
                    // Drop every reference at once.
                    released.extend(self.unbind_all(dev, pasid, pid)?);
                }
                Attachment::Domain { .. } => self.detach_locked(dev, pasid)?,
            }
        }
        lock(&self.state).devices.remove(&dev);
        Ok(())
    }

    /// Attaches (`dev`, `pasid`) to a domain; page faults of the attachment go to `handler`
    /// (none: they are answered Invalid). Returns the domain ID used.
    ///
    /// # Errors
    /// [`IommuError::NoDevice`], [`IommuError::PasidOverflow`] beyond the device's width,
    /// [`IommuError::PasidBusy`] if the PASID is attached already, driver failure.
    pub fn attach_pasid(
        &self,
        dev: Rid,
        pasid: Pasid,
        domain: &DomainSpec,
        handler: Option<Arc<dyn IopfHandler>>,
    ) -> Result<u16> {
        self.attach_with(dev, pasid, None, Owner::Attachment, domain, handler)
    }

    /// A new paging domain with its own domain ID and an empty I/O page table of the
    /// IOMMU's format (Linux `iommu_paging_domain_alloc`).
    ///
    /// # Errors
    /// The driver's error (no paging domains, out of memory).
    pub fn alloc_paging_domain(&self) -> Result<Arc<PagingDomain>> {
        self.alloc_paging(false)
    }

    /// A paging domain that nested domains can be built on (Linux
    /// `IOMMU_HWPT_ALLOC_NEST_PARENT`): its table is in the driver's second-stage format
    /// ([`IommuOps::alloc_io_pgtable_nest_parent`]).
    ///
    /// # Errors
    /// As [`alloc_paging_domain`](Self::alloc_paging_domain).
    pub fn alloc_nest_parent_domain(&self) -> Result<Arc<PagingDomain>> {
        self.alloc_paging(true)
    }

    fn alloc_paging(&self, nest_parent: bool) -> Result<Arc<PagingDomain>> {
        // the domain itself (`kzalloc` in the driver's `domain_alloc_paging`)
        if vsva_mem::fail_nth::should_fail() {
            return Err(IommuError::NoMemory);
        }
        let table = if nest_parent {
            self.ops.alloc_io_pgtable_nest_parent()?
        } else {
            self.ops.alloc_io_pgtable()?
        };
        let did = self.dids.alloc()?;
        Ok(Arc::new(PagingDomain::new(
            self.ops.clone(),
            self.dids.clone(),
            did,
            table,
            nest_parent,
        )))
    }

    /// Attaches (`dev`, `pasid`) — PASID 0 is also the device's requests without PASID — to
    /// `domain` (paging or nested), under the domain's ID: unmaps of a paging domain and
    /// invalidations of a nested one then flush it. Page faults go to `handler` (for a guest's
    /// nested domain, the VMM's fault queue).
    ///
    /// # Errors
    /// As [`attach_pasid`](Self::attach_pasid).
    pub fn attach_domain<'a>(
        &self,
        dev: Rid,
        pasid: Pasid,
        domain: impl Into<DomainRef<'a>>,
        handler: Option<Arc<dyn IopfHandler>>,
    ) -> Result<()> {
        let domain = domain.into();
        self.attach_with(
            dev,
            pasid,
            Some(domain.did()),
            domain.owner(),
            &domain.spec(),
            handler,
        )?;
        Ok(())
    }

    /// Detaches (`dev`, `pasid`) from `domain`; pending page requests are answered Invalid.
    ///
    /// # Errors
    /// [`IommuError::NotBound`] if it is attached to another domain; as
    /// [`detach_pasid`](Self::detach_pasid).
    pub fn detach_domain<'a>(
        &self,
        dev: Rid,
        pasid: Pasid,
        domain: impl Into<DomainRef<'a>>,
    ) -> Result<()> {
        self.detach_from(dev, pasid, domain.into().did())
    }

    /// A nested domain: the first stage `s1` (a guest's table, addressed through `parent`)
    /// over the paging domain `parent` (Linux `IOMMU_HWPT_ALLOC` of a nested HWPT).
    ///
    /// # Errors
    /// [`IommuError::Invalid`] for a first stage of other than 4 or 5 levels or a root that
    /// is not 4 KiB aligned or lies beyond the parent.
    pub fn alloc_nested_domain(
        &self,
        parent: &Arc<PagingDomain>,
        s1: NestedS1,
    ) -> Result<Arc<NestedDomain>> {
        if let NestedS1::Table { root, levels, .. } = s1 {
            if !(4..=5).contains(&levels) {
                return Err(IommuError::Invalid("first-stage levels"));
            }
            if root % 4096 != 0 || root > parent.last_iova() {
                return Err(IommuError::Invalid("first-stage root"));
            }
        }
        if vsva_mem::fail_nth::should_fail() {
            return Err(IommuError::NoMemory);
        }
        let did = self.dids.alloc()?;
        Ok(NestedDomain::new(
            self.ops.clone(),
            self.dids.clone(),
            did,
            parent.clone(),
            s1,
        ))
    }

    /// Detaches (`dev`, `pasid`) if it is attached to the domain tagged `did`.
    fn detach_from(&self, dev: Rid, pasid: Pasid, did: u16) -> Result<()> {
        let _config = self.config();
        let attached = {
            let st = lock(&self.state);
            let d = st.devices.get(&dev).ok_or(IommuError::NoDevice(dev))?;
            matches!(d.pasids.get(&pasid.raw()), Some(Attachment::Domain { did: a, .. }) if *a == did)
        };
        if !attached {
            return Err(IommuError::NotBound);
        }
        self.detach_locked(dev, pasid)
    }

    fn attach_with(
        &self,
        dev: Rid,
        pasid: Pasid,
        domain_did: Option<u16>,
        owner: Owner,
        domain: &DomainSpec,
        handler: Option<Arc<dyn IopfHandler>>,
    ) -> Result<u16> {
        let _config = self.config();
        {
            let st = lock(&self.state);
            let d = st.devices.get(&dev).ok_or(IommuError::NoDevice(dev))?;
            if pasid.raw() != 0 && !pasid.fits_width(d.caps.pasid_bits as u32) {
                return Err(IommuError::PasidOverflow { dev, pasid });
            }
            if d.pasids.contains_key(&pasid.raw()) {
                return Err(IommuError::PasidBusy { dev, pasid });
            }
        }
        // the attachment's entry (`xa_insert()` into the group's PASID array)
        if vsva_mem::fail_nth::should_fail() {
            return Err(IommuError::NoMemory);
        }
        let did = match domain_did {
            Some(did) => did,
            None => self.dids.alloc()?,
        };
        // In the domain's list (and routing page requests) before the entry points at it, so
        // no unmap in between can miss flushing this attachment.
        owner.add(dev, pasid);
        if let Some(d) = lock(&self.state).devices.get_mut(&dev) {
            d.pasids.insert(
                pasid.raw(),
                Attachment::Domain {
                    did,
                    handler,
                    owner: owner.clone(),
                },
            );
        }
        if let Err(e) = self.ops.set_pasid(dev, pasid, did, domain) {
            if let Some(d) = lock(&self.state).devices.get_mut(&dev) {
                d.pasids.remove(&pasid.raw());
            }
            owner.remove(dev, pasid);
            if domain_did.is_none() {
                self.dids.release(did);
            }
            return Err(e);
        }
        Ok(did)
    }

    /// Detaches (`dev`, `pasid`) from its domain; its pending page requests are answered
    /// Invalid. The entry is cleared and flushed before the attachment leaves its domain's
    /// list, so an unmap of the domain meanwhile still flushes it; when this returns, the
    /// device reaches nothing through it. On a driver failure the attachment stays.
    ///
    /// # Errors
    /// [`IommuError::NoDevice`], [`IommuError::NotBound`], driver failure.
    pub fn detach_pasid(&self, dev: Rid, pasid: Pasid) -> Result<()> {
        let _config = self.config();
        self.detach_locked(dev, pasid)
    }

    /// [`detach_pasid`](Self::detach_pasid) under the configuration lock.
    fn detach_locked(&self, dev: Rid, pasid: Pasid) -> Result<()> {
        let owner = {
            let st = lock(&self.state);
            let d = st.devices.get(&dev).ok_or(IommuError::NoDevice(dev))?;
            match d.pasids.get(&pasid.raw()) {
                Some(Attachment::Domain { owner, .. }) => owner.clone(),
                _ => return Err(IommuError::NotBound),
            }
        };
        owner.set_leaving(dev, pasid, true);
        if let Err(e) = self.ops.clear_pasid(dev, pasid) {
            owner.set_leaving(dev, pasid, false);
            return Err(e);
        }
        self.at(CorePoint::DetachCleared { dev, pasid });
        let removed = lock(&self.state)
            .devices
            .get_mut(&dev)
            .and_then(|d| d.pasids.remove(&pasid.raw()));
        // A nested domain on the RID of a device whose PASID table is the user's took the
        // page requests of every PASID (Linux `find_fault_handler()`); while it was attached
        // no PASID had an attachment of its own (the driver refuses both at once: SMMUv3
        // `arm_smmu_ssids_in_use()`), so every pending group of the device was its.
        let user_table = pasid.raw() == 0
            && self.ops.user_pasid_table()
            && matches!(
                removed,
                Some(Attachment::Domain {
                    owner: Owner::Nested(_),
                    ..
                })
            );
        if let Some(Attachment::Domain { did, owner, .. }) = removed {
            owner.remove(dev, pasid);
            if matches!(owner, Owner::Attachment) {
                self.dids.release(did);
            }
        }
        self.abort_faults(dev, Some(pasid), user_table);
        Ok(())
    }

    /// Domain IDs in use: one per live domain and per attachment without a domain of its
    /// own (an SVA address space). What a leak check compares before and after.
    pub fn domain_ids_in_use(&self) -> usize {
        self.dids.in_use()
    }

    /// Devices and PASIDs attached to something (a domain or an address space).
    pub fn attachments_in_use(&self) -> usize {
        lock(&self.state)
            .devices
            .values()
            .map(|d| d.pasids.len())
            .sum()
    }

    /// The PASID `dev` uses for `process`, if bound.
    pub fn pasid_of(&self, process: &Process) -> Option<Pasid> {
        lock(&self.state).pasids.of(process.pid())
    }

    /// What `dev` was added with, if it is under this IOMMU (what iommufd checks at bind).
    pub fn device_caps(&self, dev: Rid) -> Option<DeviceCaps> {
        lock(&self.state).devices.get(&dev).map(|d| d.caps)
    }

    /// The domain ID of (`dev`, `pasid`)'s attachment.
    pub fn domain_id(&self, dev: Rid, pasid: Pasid) -> Option<u16> {
        let st = lock(&self.state);
        match st.devices.get(&dev)?.pasids.get(&pasid.raw())? {
            Attachment::Domain { did, .. } => Some(*did),
            Attachment::Sva { pid, .. } => st.mms.get(pid).map(|m| m.did),
        }
    }
}
