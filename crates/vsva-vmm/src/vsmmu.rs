//! The guest-visible SMMUv3's backend: the SMMUv3 model in its virtual role (DESIGN.md, "one
//! model, two roles"). The guest's SMMUv3 driver programs it through registers and guest
//! memory as it programs a physical SMMU; what must reach the host leaves it here, on the
//! guest's command queue before the CMD_SYNC behind it completes (IHI 0070 §4.7.3) or inside
//! the guest's register write:
//!
//! * [`VirtualBackend::command`] — CMD_CFGI_STE / STE_RANGE / ALL make the VMM re-read the
//!   StreamIDs' STEs and replace their nested HWPTs; CMD_TLBI_NH_*, TLBI_NSNH_ALL, CFGI_CD and
//!   CFGI_CD_ALL become vIOMMU invalidations (a command the host refuses stops the guest's
//!   queue with CERROR_ILL, as QEMU's accelerated SMMUv3 does); CMD_RESUME and CMD_STALL_TERM
//!   answer the host's stalls.
//! * [`VirtualBackend::global_changed`] — the guest turning SMMUEN or GBPA.ABORT over
//!   re-reads every StreamID (abort, bypass or its STE).
//! * [`Downstream::ats_invalidate`] — CMD_ATC_INV, as a vIOMMU invalidation; a refusal is the
//!   guest's CERROR_ATC_INV_SYNC.
//! * [`Downstream::page_group_response`] — CMD_PRI_RESP, and the guest unit's automatic
//!   responses, as fault-queue writes.

use std::sync::{Arc, Weak};

use vsva_host::{IommuKind, Smmuv3Kind};
use vsva_mem::{Pasid, PhysMem, Rid};
use vsva_pcie::{AtsInvalidation, AtsInvalidationError, Downstream, MsiLog, ResponseCode};
use vsva_smmuv3::spec::cmd::{Command, ResumeAction};
use vsva_smmuv3::{GlobalState, Refused, Smmuv3, Smmuv3Config, VirtualBackend};

use crate::uapi::Smmuv3HwInfo;
use crate::vm::{BOOT_DEVICE, GuestKind, VmError};
use crate::vmm::{Vmm, VmmError, atc_inv};

/// What the guest's virtual SMMUv3 reports to its VMM.
pub struct SmmuRelay {
    vmm: Weak<Vmm>,
}

impl SmmuRelay {
    /// A relay to `vmm`.
    pub fn new(vmm: &Arc<Vmm>) -> Arc<SmmuRelay> {
        Arc::new(SmmuRelay {
            vmm: Arc::downgrade(vmm),
        })
    }
}

impl VirtualBackend for SmmuRelay {
    fn command(&self, cmd: &Command) -> Result<(), Refused> {
        let Some(vmm) = self.vmm.upgrade() else {
            return Ok(());
        };
        match *cmd {
            Command::CfgiSte { .. } | Command::CfgiSteRange { .. } => {
                let Some(unit) = vmm.smmu_unit() else {
                    return Ok(());
                };
                let Some((first, last)) = cmd.cfgi_streams() else {
                    return Ok(());
                };
                for rid in vmm.guest_rids() {
                    if (first..=last).contains(&u32::from(rid.raw())) {
                        vmm.sync_stream(&unit, rid);
                    }
                }
                Ok(())
            }
            Command::Resume { sid, stag, action } => {
                if let Ok(vsid) = u16::try_from(sid) {
                    vmm.smmu_resume(vsid, stag, action == ResumeAction::Retry);
                }
                Ok(())
            }
            Command::StallTerm { sid } => {
                if let Ok(vsid) = u16::try_from(sid) {
                    vmm.smmu_stall_term(vsid);
                }
                Ok(())
            }
            _ => vmm.invalidate_smmu(cmd).map_err(|e| {
                tracing::warn!(?cmd, %e, "host refused a guest command");
                Refused
            }),
        }
    }

    fn global_changed(&self, _state: GlobalState) {
        let Some(vmm) = self.vmm.upgrade() else {
            return;
        };
        if let Some(unit) = vmm.smmu_unit() {
            vmm.sync_streams(&unit);
        }
    }
}

impl Downstream for SmmuRelay {
    fn ats_invalidate(&self, inv: &AtsInvalidation) -> Result<(), AtsInvalidationError> {
        let vmm = self.vmm.upgrade().ok_or(AtsInvalidationError::Timeout)?;
        vmm.invalidate_smmu(&atc_inv(inv))
            .map_err(|_| AtsInvalidationError::Timeout)
    }

    fn page_group_response(&self, rid: Rid, pasid: Option<Pasid>, code: ResponseCode, prgi: u16) {
        if let Some(vmm) = self.vmm.upgrade() {
            vmm.smmu_pri_response(rid, pasid, code, prgi);
        }
    }
}

/// The guest's SMMUv3 from the host's `IOMMU_GET_HW_INFO` of a device behind it: stage 1 only
/// (the guest's tables are nested onto the host's stage 2), and no capability the host lacks
/// (SubstreamID width no wider than the device's either).
pub fn guest_smmu_config(info: &Smmuv3HwInfo) -> Smmuv3Config {
    let host = Smmuv3Config::from_registers(info.regs.idr, info.regs.iidr);
    let mut cfg = Smmuv3Config {
        stage2: false,
        ..Smmuv3Config::default()
    }
    .clamp_to(&host);
    cfg.ssid_bits = cfg.ssid_bits.min(info.pasid_bits.max(1));
    cfg
}

impl GuestKind for Smmuv3Kind {
    fn connect(vmm: &Arc<Vmm>) -> Result<Arc<Smmuv3>, VmError> {
        let info = vmm.smmuv3_hw_info(BOOT_DEVICE).map_err(VmmError::from)?;
        let relay = SmmuRelay::new(vmm);
        let ram: Arc<dyn PhysMem> = vmm.ram().clone();
        let unit = Smmuv3Kind::build(
            guest_smmu_config(&info),
            ram,
            Arc::new(MsiLog::default()),
            relay.clone(),
        );
        // Cannot fail: the unit is new.
        let _ = unit.set_backend(relay);
        vmm.connect_smmu(&unit, BOOT_DEVICE)
            .map_err(VmmError::from)?;
        Ok(unit)
    }

    fn pump(vmm: &Vmm) -> usize {
        vmm.smmu_unit().map_or(0, |unit| vmm.pump_smmu(&unit))
    }
}
