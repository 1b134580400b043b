//! Shared virtual addressing: binding a process's address space to a device, unbinding it,
//! and the MMU notifier that keeps the IOMMU's and the devices' caches in step with it (Linux
//! `iommu-sva.c`). The order of every step is the module doc's of [`crate::iommu`].

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use vsva_mem::{Access, Pasid, Rid, Va};
use vsva_mm::{InvalidateReason, MmuNotifier, Pid, Process};

use super::{Attachment, CorePoint, Iommu, Mm, SvaHandle, lock};
use crate::error::{IommuError, Result};
use crate::iopf::FaultGroup;
use crate::ops::{DomainSpec, ResponseCode};

/// The MMU-notifier listener of one bound address space.
struct SvaNotifier {
    iommu: Weak<Iommu>,
}

impl MmuNotifier for SvaNotifier {
    fn invalidate_range(&self, pid: Pid, start: Va, end: Va, _reason: InvalidateReason) {
        if let Some(iommu) = self.iommu.upgrade() {
            iommu.mm_invalidate(pid, start.raw(), end.raw());
        }
    }

    fn release(&self, pid: Pid) {
        if let Some(iommu) = self.iommu.upgrade() {
            iommu.mm_release(pid);
        }
    }
}

impl Iommu {
    /// Binds `process`'s address space to `dev` (Linux `iommu_sva_bind_device`): the device
    /// gets the address space's PASID, whose translation is the process's page table.
    /// Binding the same pair again takes another reference.
    ///
    /// The address space is held for the whole bind: an exit that began before fails it, one
    /// that begins during it waits, and then blocks the new PASID before any table is freed.
    ///
    /// # Errors
    /// [`IommuError::NoDevice`], [`IommuError::DeviceUnsupported`] without PASID support,
    /// [`IommuError::NoAddressSpace`] for a process that exited or is exiting,
    /// [`IommuError::PasidOverflow`], [`IommuError::NoPasid`], [`IommuError::PasidBusy`],
    /// driver failure.
    pub fn sva_bind(&self, dev: Rid, process: &Arc<Process>) -> Result<SvaHandle> {
        self.sva_bind_with(dev, process, false)
    }

    /// Like [`sva_bind`](Self::sva_bind); with `supervisor`, the device's privileged requests
    /// are allowed too (the old `SVM_FLAG_SUPERVISOR_MODE`: PASID-entry SRE on VT-d), and its
    /// privileged page requests are resolved like user ones.
    ///
    /// # Errors
    /// As [`sva_bind`](Self::sva_bind).
    pub fn sva_bind_with(
        &self,
        dev: Rid,
        process: &Arc<Process>,
        supervisor: bool,
    ) -> Result<SvaHandle> {
        let pid = process.pid();
        let _config = self.config();
        // Linux binds only an mm it holds (`mmget`); exit waits for this until it returns.
        let live = process.hold().ok_or(IommuError::NoAddressSpace)?;
        let root = live.root();
        self.at(CorePoint::BindRootRead { dev, pid });
        let levels = process.paging().levels();
        let (pasid, did, new_mm) = {
            let mut st = lock(&self.state);
            let caps = st.devices.get(&dev).ok_or(IommuError::NoDevice(dev))?.caps;
            if caps.pasid_bits == 0 {
                return Err(IommuError::DeviceUnsupported { dev, what: "PASID" });
            }
            if st.mms.get(&pid).is_some_and(|m| m.dead) {
                return Err(IommuError::NoAddressSpace);
            }
            let new_mm = !st.mms.contains_key(&pid);
            let pasid = st
                .pasids
                .get_or_alloc(pid, caps.pasid_bits)
                .map_err(|e| match e {
                    IommuError::PasidOverflow { pasid, .. } => {
                        IommuError::PasidOverflow { dev, pasid }
                    }
                    e => e,
                })?;
            let existing = st
                .devices
                .get_mut(&dev)
                .and_then(|d| d.pasids.get_mut(&pasid.raw()));
            let busy = match existing {
                Some(Attachment::Sva {
                    pid: p,
                    binds,
                    supervisor: s,
                }) if *p == pid && *s == supervisor => {
                    *binds += 1;
                    return Ok(SvaHandle { dev, pasid, pid });
                }
                Some(_) => true,
                None => false,
            };
            if busy {
                if new_mm {
                    st.pasids.release(pid);
                }
                return Err(IommuError::PasidBusy { dev, pasid });
            }
            // the binding (`iommu_sva_bind_device()`'s handle)
            if vsva_mem::fail_nth::should_fail() {
                if new_mm {
                    st.pasids.release(pid);
                }
                return Err(IommuError::NoMemory);
            }
            let did = match st.mms.get(&pid) {
                Some(m) => m.did,
                None => match self.dids.alloc() {
                    Ok(did) => did,
                    Err(e) => {
                        st.pasids.release(pid);
                        return Err(e);
                    }
                },
            };
            (pasid, did, new_mm)
        };
        // On the notifier's list (and routing page requests) before the entry points at the
        // table, so no address-space change in between misses flushing the device. Nothing
        // else changes this address space's bindings meanwhile: the configuration lock is held.
        let notifier = new_mm.then(|| {
            process.register_notifier(Arc::new(SvaNotifier {
                iommu: self.me.clone(),
            }))
        });
        {
            let mut st = lock(&self.state);
            if let Some(notifier) = notifier {
                st.mms.insert(
                    pid,
                    Mm {
                        process: Arc::downgrade(process),
                        pasid,
                        did,
                        notifier,
                        devices: Vec::new(),
                        dead: false,
                    },
                );
            }
            if let Some(m) = st.mms.get_mut(&pid) {
                m.devices.push(dev);
            }
            if let Some(d) = st.devices.get_mut(&dev) {
                d.pasids.insert(
                    pasid.raw(),
                    Attachment::Sva {
                        pid,
                        binds: 1,
                        supervisor,
                    },
                );
            }
        }
        let spec = DomainSpec::Sva {
            root,
            levels,
            supervisor,
        };
        if let Err(e) = self.ops.set_pasid(dev, pasid, did, &spec) {
            let notifier = {
                let mut st = lock(&self.state);
                if let Some(d) = st.devices.get_mut(&dev) {
                    d.pasids.remove(&pasid.raw());
                }
                if let Some(m) = st.mms.get_mut(&pid) {
                    m.devices.retain(|&x| x != dev);
                }
                if new_mm {
                    st.pasids.release(pid);
                    self.dids.release(did);
                    st.mms.remove(&pid).map(|m| m.notifier)
                } else {
                    None
                }
            };
            if let Some(n) = notifier {
                process.unregister_notifier(n);
            }
            return Err(e);
        }
        drop(live);
        Ok(SvaHandle { dev, pasid, pid })
    }

    /// Drops a reference of a binding; the last one detaches the PASID from the device (its
    /// pending page requests answered Invalid) and, when no device is left, releases the
    /// address space's PASID. The entry is cleared and flushed before the device leaves the
    /// address space's notifier list, so a munmap meanwhile still flushes it; when this
    /// returns, the device reaches nothing through it. On a driver failure the binding stays.
    ///
    /// # Errors
    /// [`IommuError::NoDevice`], [`IommuError::NotBound`], driver failure.
    pub fn sva_unbind(&self, h: SvaHandle) -> Result<()> {
        let released = {
            let _config = self.config();
            {
                let mut st = lock(&self.state);
                let d = st
                    .devices
                    .get_mut(&h.dev)
                    .ok_or(IommuError::NoDevice(h.dev))?;
                match d.pasids.get_mut(&h.pasid.raw()) {
                    Some(Attachment::Sva { pid, binds, .. }) if *pid == h.pid && *binds > 1 => {
                        *binds -= 1;
                        return Ok(());
                    }
                    Some(Attachment::Sva { pid, .. }) if *pid == h.pid => {}
                    _ => return Err(IommuError::NotBound),
                }
            }
            self.unbind_all(h.dev, h.pasid, h.pid)?
        };
        // Outside the configuration lock: the last reference runs exit (module doc).
        drop(released);
        Ok(())
    }

    /// Drops every reference of (`dev`, `pasid`)'s binding to `pid`, under the configuration
    /// lock. Returns the process if its notifier was unregistered, for the caller to drop
    /// once the lock is released.
    pub(super) fn unbind_all(
        &self,
        dev: Rid,
        pasid: Pasid,
        pid: Pid,
    ) -> Result<Option<Arc<Process>>> {
        {
            let st = lock(&self.state);
            let bound = st.devices.get(&dev).is_some_and(|d| {
                matches!(d.pasids.get(&pasid.raw()), Some(Attachment::Sva { pid: p, .. }) if *p == pid)
            });
            if !bound || !st.mms.contains_key(&pid) {
                return Err(IommuError::NotBound);
            }
        }
        // Entry cleared, IOTLB and device TLB flushed, while the notifier still flushes the
        // device: a munmap now (or a page it translated before) cannot outlive this.
        self.ops.clear_pasid(dev, pasid)?;
        self.at(CorePoint::UnbindCleared { dev, pasid });
        let released = {
            let mut st = lock(&self.state);
            if let Some(d) = st.devices.get_mut(&dev) {
                d.pasids.remove(&pasid.raw());
            }
            let last = st.mms.get_mut(&pid).is_some_and(|m| {
                m.devices.retain(|&x| x != dev);
                m.devices.is_empty()
            });
            if last {
                st.pasids.release(pid);
                let m = st.mms.remove(&pid);
                if let Some(m) = &m {
                    self.dids.release(m.did);
                }
                m.map(|m| (m.process, m.notifier))
            } else {
                None
            }
        };
        self.abort_faults(dev, Some(pasid), false);
        Ok(released.and_then(|(process, notifier)| {
            let p = process.upgrade()?;
            p.unregister_notifier(notifier);
            Some(p)
        }))
    }

    /// The MMU notifier saw `[start, end)` change in `pid`: invalidate every device's view.
    /// Called with the address-space lock held: takes only the state lock.
    fn mm_invalidate(&self, pid: Pid, start: u64, end: u64) {
        let targets: Vec<(Rid, Pasid, u16)> = {
            let st = lock(&self.state);
            match st.mms.get(&pid) {
                Some(m) => m.devices.iter().map(|&d| (d, m.pasid, m.did)).collect(),
                None => Vec::new(),
            }
        };
        for (dev, pasid, did) in targets {
            self.flushes.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = self.ops.flush(dev, pasid, did, start, end - start) {
                tracing::error!(%e, %dev, "invalidation after an address-space change failed");
            }
        }
    }

    /// The process is exiting: block its PASID on every device (Linux sets the PASID to a
    /// blocking domain when the mm goes away) and answer its pending page requests Invalid.
    /// Under the configuration lock, so an unbind in progress does not see its cleared
    /// entry blocked again.
    fn mm_release(&self, pid: Pid) {
        let _config = self.config();
        let targets: Vec<(Rid, Pasid, u16)> = {
            let mut st = lock(&self.state);
            match st.mms.get_mut(&pid) {
                Some(m) => {
                    m.dead = true;
                    m.devices.iter().map(|&d| (d, m.pasid, m.did)).collect()
                }
                None => Vec::new(),
            }
        };
        for (dev, pasid, did) in targets {
            if let Err(e) = self.ops.set_pasid(dev, pasid, did, &DomainSpec::Blocked) {
                tracing::error!(%e, %dev, "blocking the PASID of an exiting process failed");
            }
            self.abort_faults(dev, Some(pasid), false);
        }
    }

    /// Resolves an SVA group with the process's memory manager: every page must fault in for
    /// the access asked; privileged requests are refused (Linux's SVA handler treats
    /// supervisor requests on user address spaces as invalid) unless the binding allows them.
    pub(super) fn resolve_sva(&self, pid: Pid, supervisor: bool, g: &FaultGroup) -> ResponseCode {
        let process = {
            let st = lock(&self.state);
            match st.mms.get(&pid) {
                Some(m) if !m.dead => m.process.upgrade(),
                _ => None,
            }
        };
        let Some(process) = process else {
            return ResponseCode::InvalidRequest;
        };
        for page in &g.pages {
            if (page.privileged && !supervisor) || !(page.read || page.write) {
                return ResponseCode::InvalidRequest;
            }
            let mut access = Access::READ;
            if page.write {
                access |= Access::WRITE;
            }
            if page.exec {
                access |= Access::EXEC;
            }
            if process.handle_fault(Va::new(page.addr), access).is_err() {
                return ResponseCode::InvalidRequest;
            }
        }
        ResponseCode::Success
    }
}
