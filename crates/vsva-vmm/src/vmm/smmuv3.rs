//! The VMM's side of a guest with a virtual SMMUv3 on a host SMMUv3 (Linux's iommufd nesting
//! for SMMUv3, as QEMU's `hw/arm/smmuv3-accel.c` drives it, plus vsva's fault relay).
//!
//! At connection (the guest's unit is built) the VMM allocates an `IOMMU_VIOMMU_TYPE_ARM_SMMUV3`
//! vIOMMU on the stage 2, its vEVENTQ, and one vDEVICE per assigned device whose virtual ID is
//! the device's guest StreamID (its guest RID). Then, driven by the guest's unit:
//!
//! 1. bind (`smmuv3/stream.rs`): the STE a StreamID selects — after the guest's CMD_CFGI_STE*,
//!    or the guest turning SMMUEN or GBPA over — becomes a nested HWPT from its two first
//!    doublewords (`IOMMU_HWPT_DATA_ARM_SMMUV3`) under the vIOMMU, replacing the device's
//!    attachment. There is no PASID virtualization: the host SMMU walks the guest's CD table
//!    itself, so the guest's SubstreamIDs are the device's.
//! 2. invalidate (`smmuv3/invalidate.rs`): guest TLBI_NH_*, TLBI_NSNH_ALL, ATC_INV, CFGI_CD and
//!    CFGI_CD_ALL become raw commands in `IOMMU_HWPT_INVALIDATE` on the vIOMMU, before the
//!    guest's CMD_SYNC behind them completes (the host forces the VMID and translates vSIDs).
//! 3. fault (`smmuv3/fault.rs`): the nested HWPTs report to the VMM's fault queue (vsva's
//!    extension): a stalled transaction becomes a stall event in the guest's event queue
//!    (STAG = the group ID), a PRI page request a page request in the guest's PRI queue;
//!    host events of the guest's stage 1 arrive on the vEVENTQ and go to its event queue.
//! 4. respond: the guest's CMD_RESUME and CMD_PRI_RESP become fault-queue responses with the
//!    cookie of the group they answer; answers to groups the guest never got are dropped.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};

use vsva_iommufd::VeventqFile;
use vsva_iommufd::abi::Errno;
use vsva_mem::Rid;
use vsva_smmuv3::Smmuv3;

use super::Vmm;

mod fault;
mod invalidate;
mod stream;

pub(crate) use invalidate::atc_inv;

/// Events the vEVENTQ holds before the host drops and counts them.
pub(crate) const VEVENTQ_DEPTH: u32 = 64;

/// What the guest's StreamID is attached to on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bound {
    /// The vSTE the nested HWPT was made from (`struct iommu_hwpt_arm_smmuv3`).
    pub(crate) ste: [u64; 2],
    /// The nested HWPT.
    pub(crate) hwpt: u32,
}

/// An assigned device as the guest's SMMUv3 knows it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stream {
    /// Its vDEVICE (virtual ID = its guest StreamID).
    pub(crate) vdevice: u32,
    /// Its attachment, once the guest's configuration asked for one.
    pub(crate) bound: Option<Bound>,
    /// A platform master that stalls (its faults are stall events, not PRI page requests).
    pub(crate) stalls: bool,
}

/// A page request group or stalled transaction the guest owes an answer: (vSID, SubstreamID
/// for PRI groups (`None` for a stall, whose tag alone names it), PRG index or STAG).
pub(crate) type PendingKey = (u16, Option<u32>, u16);

/// The VMM's SMMUv3 state.
#[derive(Default)]
pub(crate) struct Smmu {
    /// The vIOMMU, once the guest's unit is connected.
    pub(crate) viommu: Option<u32>,
    /// Its event queue: object ID, file descriptor and file.
    pub(crate) veventq: Option<(u32, u32, Arc<VeventqFile>)>,
    /// By guest StreamID.
    pub(crate) streams: BTreeMap<u16, Stream>,
    /// Groups and stalls delivered to the guest, with their fault-queue cookies.
    pub(crate) pending: HashMap<PendingKey, u32>,
}

impl Vmm {
    pub(crate) fn smmu(&self) -> MutexGuard<'_, Smmu> {
        self.smmu.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connects the guest's SMMUv3 (at boot and after each reboot): the first time, the
    /// vIOMMU on the stage 2 (`IOMMU_VIOMMU_ALLOC` through the boot device), its vEVENTQ,
    /// and a vDEVICE for every device assigned so far. The guest's SubstreamIDs are the
    /// device's own from now on.
    ///
    /// # Errors
    /// The host's errno (an SMMU without nesting refuses the vIOMMU: `EOPNOTSUPP`).
    pub fn connect_smmu(&self, unit: &Arc<Smmuv3>, boot: Rid) -> Result<(), Errno> {
        *self.smmu_unit.write().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(unit);
        self.identity_pasids.store(true, Ordering::Relaxed);
        let st = self.state();
        let mut smmu = self.smmu();
        if smmu.viommu.is_some() {
            return Ok(());
        }
        let s2 = st.s2.ok_or(Errno::ENODEV)?;
        let boot = st.devices.get(&boot.raw()).ok_or(Errno::ENODEV)?.dev_id;
        let viommu = self.uapi.viommu_alloc_smmuv3(boot, s2)?;
        let (id, fd) = match self.uapi.veventq_alloc_smmuv3(viommu, VEVENTQ_DEPTH) {
            Ok(q) => q,
            Err(e) => {
                let _ = self.uapi.destroy(viommu);
                return Err(e);
            }
        };
        let file = self.uapi.fd().veventq_file(fd)?;
        smmu.viommu = Some(viommu);
        smmu.veventq = Some((id, fd, file));
        for (&rid, a) in &st.devices {
            let vdevice = self.uapi.vdevice_alloc(viommu, a.dev_id, u64::from(rid))?;
            smmu.streams.insert(
                rid,
                Stream {
                    vdevice,
                    bound: None,
                    stalls: a.stalls,
                },
            );
        }
        Ok(())
    }

    /// A device assigned after the vIOMMU exists gets its vDEVICE.
    pub(crate) fn add_stream(&self, rid: Rid, dev_id: u32, stalls: bool) -> Result<(), Errno> {
        let mut smmu = self.smmu();
        let Some(viommu) = smmu.viommu else {
            return Ok(());
        };
        let vdevice = self
            .uapi
            .vdevice_alloc(viommu, dev_id, u64::from(rid.raw()))?;
        smmu.streams.insert(
            rid.raw(),
            Stream {
                vdevice,
                bound: None,
                stalls,
            },
        );
        Ok(())
    }

    pub(crate) fn smmu_unit(&self) -> Option<Arc<Smmuv3>> {
        self.smmu_unit
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .upgrade()
    }

    /// Tears the SMMUv3 objects down at shutdown, after every nested HWPT went and before
    /// the devices are unbound: the vDEVICEs, the vEVENTQ (its file closed first: an open
    /// file holds the queue, whose `IOMMU_DESTROY` would be `EBUSY`, and the queue its
    /// vIOMMU), then the vIOMMU.
    pub(crate) fn destroy_smmu(&self) {
        let mut smmu = self.smmu();
        let vdevices: Vec<u32> = std::mem::take(&mut smmu.streams)
            .into_values()
            .map(|s| s.vdevice)
            .collect();
        let veventq = smmu.veventq.take().map(|(id, fd, file)| {
            drop(file);
            if let Err(e) = self.uapi.fd().close_veventq_file(fd) {
                tracing::warn!(fd, %e, "close of the vEVENTQ file failed");
            }
            id
        });
        let ids = vdevices
            .into_iter()
            .chain(veventq)
            .chain(smmu.viommu.take());
        for id in ids {
            if let Err(e) = self.uapi.destroy(id) {
                tracing::warn!(id, %e, "destroy at shutdown failed");
            }
        }
    }
}
