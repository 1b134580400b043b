//! Nesting (Linux `arm-smmu-v3-iommufd.c` and the stage-2 parts of `arm-smmu-v3.c`): the
//! nest parent's stage-2 table and STE fields, a guest's STE words checked
//! (`arm_smmu_validate_vste`), a guest's invalidation commands converted and issued
//! (`arm_vsmmu_convert_user_cmd`, `arm_vsmmu_cache_invalidate`), and a guest's events
//! (`arm_vmaster_report_event`).

use vsva_iommu::{
    InvalidateOutcome, NestedS1, UnrecoverableFault, UserData, UserDataArray, ViommuContext,
    VirtualEvent,
};
use vsva_mem::Errno;
use vsva_pgtable::arm::ArmS2;
use vsva_smmuv3::spec::cmd::op;
use vsva_smmuv3::spec::event::id;
use vsva_smmuv3::spec::registers::pa_bits;
use vsva_smmuv3::spec::ste::{Ste0, Ste1, config, eats};
use zerocopy::IntoBytes;

use crate::driver::{DriverError, RidDomain, Smmuv3Driver};
use crate::master::RidSte;
use crate::tables::{self, S2Cfg};
use crate::uapi::{
    HWPT_DATA_ARM_SMMUV3, IommuHwptArmSmmuv3, IommuVeventArmSmmuv3, IommuViommuArmSmmuv3Invalidate,
    VEVENTQ_TYPE_ARM_SMMUV3, VIOMMU_INVALIDATE_DATA_ARM_SMMUV3,
};

/// TLBI commands' VMID (dword 0 bits 47:32, Linux `CMDQ_TLBI_0_VMID`).
const CMD_VMID: u64 = 0xffff << 32;
/// CFGI and ATC_INV commands' StreamID (dword 0 bits 63:32, Linux `CMDQ_CFGI_0_SID`), and an
/// event record's (`EVTQ_0_SID`).
const CMD_SID: u64 = 0xffff_ffff << 32;
/// Event record dword 1: the fault was a stage-2 one (`EVTQ_1_S2`).
pub(crate) const EVT_S2: u64 = 1 << 39;
/// Event record dword 1: the transaction stalled (`EVTQ_1_STALL`).
const EVT_STALL: u64 = 1 << 31;

impl Smmuv3Driver {
    /// The input size of nest-parent tables: Linux's stage-2 IAS is the SMMU's, which is the
    /// OAS on an SMMU with AArch64 tables only (§3.4, `arm_smmu_device_hw_probe`), here at most
    /// 48 bits (the 4 KiB granule without LPA2).
    pub(crate) fn s2_ipa_bits(&self) -> u8 {
        pa_bits(self.features.oas).unwrap_or(48).min(48)
    }

    /// The stage-2 format of nest parents (io-pgtable-arm `ARM_64_LPAE_S2` as
    /// `arm_smmu_domain_finalise` sets it up: IAS and OAS from the IDRs, as few levels as 16
    /// concatenated start tables allow).
    pub(crate) fn s2_format(&self) -> ArmS2 {
        let bits = self.s2_ipa_bits();
        ArmS2::new(bits, bits)
    }

    /// The stage-2 STE fields of the nest parent `vmid` whose table is at `ttb`.
    pub(crate) fn s2_cfg(&self, vmid: u16, ttb: u64) -> S2Cfg {
        let f = self.features;
        let fmt = self.s2_format();
        S2Cfg {
            vmid,
            ttb,
            t0sz: fmt.t0sz,
            sl0: fmt.sl0,
            ps: f.oas.min(5),
            coherent: f.coherent,
            fwb: f.s2fwb,
            shcfg_incoming: f.attr_types_ovr,
        }
    }

    /// Whether the driver makes `IOMMU_VIOMMU_TYPE_ARM_SMMUV3` vIOMMUs (Linux
    /// `arm_smmu_get_viommu_size`): both stages, and a way to keep the guest from making DMA
    /// non-coherent — S2FWB (a master's `IOMMU_FWSPEC_PCI_RC_CANWBS` is not described on
    /// this platform).
    pub fn viommu_supported(&self) -> bool {
        self.features.nesting && self.features.s2fwb
    }
}

/// A guest's STE words checked as Linux `arm_smmu_validate_vste` checks them: V = 0 is an
/// all-zero entry (accepted); a field nesting does not allow, a Config other than abort,
/// bypass or stage 1, or an EATS other than 0b00 or 0b01 is `EIO`. EATS is cleared from the
/// words and returned (as ATS wanted) for a stage-1 Config.
///
/// # Errors
/// `EIO` as said.
pub fn validate_vste(mut ste: [u64; 2]) -> Result<([u64; 2], bool), Errno> {
    if !Ste0::from_bits(ste[0]).v() {
        return Ok(([0, 0], false));
    }
    if ste[0] & !tables::ste0_nesting_allowed() != 0
        || ste[1] & !tables::ste1_nesting_allowed() != 0
    {
        return Err(Errno::EIO);
    }
    let cfg = Ste0::from_bits(ste[0]).config();
    if !matches!(cfg, config::ABORT | config::BYPASS | config::S1_TRANS) {
        return Err(Errno::EIO);
    }
    let e = Ste1::from_bits(ste[1]).eats();
    ste[1] &= !Ste1::new().with_eats(3).into_bits();
    if e != eats::ABORT && e != eats::TRANS {
        return Err(Errno::EIO);
    }
    Ok((ste, cfg == config::S1_TRANS && e == eats::TRANS))
}

/// `arm_vsmmu_alloc_domain_nested`: the guest's `struct iommu_hwpt_arm_smmuv3`, checked.
///
/// # Errors
/// `EINVAL` for another data type (`iommu_copy_struct_from_user`), the copy's errors,
/// [`validate_vste`]'s.
pub(crate) fn alloc_domain_nested(data: &dyn UserData) -> Result<NestedS1, Errno> {
    if data.data_type() != HWPT_DATA_ARM_SMMUV3 {
        return Err(Errno::EINVAL);
    }
    let mut arg = IommuHwptArmSmmuv3::default();
    // min_len: offsetofend(struct iommu_hwpt_arm_smmuv3, ste).
    data.copy_struct(arg.as_mut_bytes(), 16)?;
    let (ste, ats) = validate_vste(arg.ste)?;
    let w0 = Ste0::from_bits(ste[0]);
    Ok(NestedS1::StreamEntry {
        ste,
        ats,
        translates: w0.v() && w0.config() == config::S1_TRANS,
    })
}

/// `arm_vsmmu_convert_user_cmd`: TLBI_NSNH_ALL becomes TLBI_NH_ALL of `vmid`; TLBI_NH_VA,
/// NH_VAA, NH_ALL and NH_ASID get `vmid` whatever VMID they carried; ATC_INV, CFGI_CD and
/// CFGI_CD_ALL get the StreamID `sid_of` gives their virtual StreamID. Nothing else is
/// checked: the SMMU refuses what is illegal (CERROR_ILL).
///
/// # Errors
/// `EIO` for another opcode, or a virtual StreamID without a device.
pub fn convert_user_cmd(
    cmd: [u64; 2],
    vmid: u16,
    sid_of: impl Fn(u32) -> Option<u32>,
) -> Result<[u64; 2], Errno> {
    let vmid = (vmid as u64) << 32;
    match cmd[0] as u8 {
        op::TLBI_NSNH_ALL => Ok([op::TLBI_NH_ALL as u64 | vmid, 0]),
        op::TLBI_NH_VA | op::TLBI_NH_VAA | op::TLBI_NH_ALL | op::TLBI_NH_ASID => {
            Ok([(cmd[0] & !CMD_VMID) | vmid, cmd[1]])
        }
        op::ATC_INV | op::CFGI_CD | op::CFGI_CD_ALL => {
            let sid = sid_of((cmd[0] >> 32) as u32).ok_or(Errno::EIO)?;
            Ok([(cmd[0] & !CMD_SID) | (sid as u64) << 32, cmd[1]])
        }
        _ => Err(Errno::EIO),
    }
}

impl Smmuv3Driver {
    /// `arm_vsmmu_cache_invalidate`: every entry copied (all or none), converted in order
    /// ([`convert_user_cmd`]) up to the first bad one, and the converted ones issued in
    /// batches each followed by a CMD_SYNC; `consumed` counts the converted entries.
    ///
    /// Linux converts batch by batch and drops the converted commands of the unfinished
    /// batch when it meets a bad one, while counting them consumed; here every entry counted
    /// is issued. A command the SMMU finds illegal (reserved bits, a feature it lacks) is
    /// CERROR_ILL: the driver turns it into a CMD_SYNC and the queue runs on (Linux
    /// `arm_smmu_cmdq_skip_err`), and, as Linux's gerror handler does, only logs it — the
    /// call succeeds, as on Linux. A CMD_SYNC that never completes is `ETIMEDOUT`.
    pub(crate) fn viommu_invalidate(
        &self,
        ctx: &dyn ViommuContext,
        entries: &dyn UserDataArray,
    ) -> InvalidateOutcome {
        let fail = |e| InvalidateOutcome {
            consumed: 0,
            result: Err(e),
        };
        // iommu_copy_struct_from_full_user_array.
        if entries.data_type() != VIOMMU_INVALIDATE_DATA_ARM_SMMUV3 || entries.entry_num() == 0 {
            return fail(Errno::EINVAL);
        }
        let mut raw = Vec::with_capacity(entries.entry_num() as usize);
        for i in 0..entries.entry_num() {
            let mut c = IommuViommuArmSmmuv3Invalidate::default();
            if let Err(e) = entries.copy_entry(i, c.as_mut_bytes(), 0) {
                return fail(e);
            }
            raw.push(c.cmd);
        }
        let vmid = ctx.parent_did();
        let sid_of = |vsid: u32| ctx.find_device(vsid as u64).map(|r| r.raw() as u32);
        let mut cmds = Vec::with_capacity(raw.len());
        let mut result = Ok(());
        for c in raw {
            match convert_user_cmd(c, vmid, sid_of) {
                Ok(c) => cmds.push(c),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let consumed = cmds.len() as u32;
        if !cmds.is_empty() {
            match self.with_state(|st| self.issue_raw(st, &cmds)) {
                Ok(()) => {}
                Err(DriverError::Command { code, opcode }) => {
                    tracing::warn!(code, opcode, "a guest's command was skipped");
                }
                // ETIMEDOUT (vsva-mem names no constant for it).
                Err(DriverError::SyncTimeout) => result = Err(Errno::ETIMEDOUT),
                Err(e) => result = Err(e.errno()),
            }
        }
        InvalidateOutcome { consumed, result }
    }

    /// `arm_vmaster_report_event`: the record of `fault` for the guest, with the StreamID
    /// replaced by `virt_id`, when the master's RID is attached to a nested domain and the
    /// event is one Linux's `arm_smmu_handle_event` forwards (C_BAD_STE, F_STREAM_DISABLED,
    /// C_BAD_SUBSTREAMID, C_BAD_CD, F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION) and
    /// not a stage-2 fault (dword 1 S2), which stays the host's.
    pub(crate) fn vmaster_event(
        &self,
        fault: &UnrecoverableFault,
        virt_id: u64,
    ) -> Option<VirtualEvent> {
        let forwarded = matches!(
            fault.reason,
            id::C_BAD_STE
                | id::F_STREAM_DISABLED
                | id::C_BAD_SUBSTREAMID
                | id::C_BAD_CD
                | id::F_TRANSLATION
                | id::F_ADDR_SIZE
                | id::F_ACCESS
                | id::F_PERMISSION
        );
        if !forwarded || fault.raw[1] & (EVT_S2 | EVT_STALL) != 0 {
            return None;
        }
        let sid = (fault.raw[0] >> 32) as u32;
        let nested = {
            let g = self.lock();
            let m = g.as_ref()?.masters.get(&sid)?;
            matches!(m.rid, RidDomain::Ste(RidSte::Nested { .. }))
        };
        if !nested {
            return None;
        }
        let mut evt = IommuVeventArmSmmuv3 { evt: fault.raw };
        evt.evt[0] = (fault.raw[0] & !CMD_SID) | (virt_id as u32 as u64) << 32;
        Some(VirtualEvent {
            veventq_type: VEVENTQ_TYPE_ARM_SMMUV3,
            data: evt.as_bytes().to_vec(),
        })
    }
}
