//! The virtual backend: what a unit serving as a guest's vSMMU tells its VMM (DESIGN.md, "one
//! model, two roles").
//!
//! A physical SMMU keeps its caches and translates. A virtual one translates nothing — the
//! guest's DMA goes to the host's SMMU, which walks the guest's CD table and stage 1 tables
//! nested under the host's stage 2 — but what the guest's driver tells it must reach the
//! host. The unit hands its backend, on the command queue and after its own handling of each:
//!
//! | guest command | backend | what a VMM does with it |
//! |---|---|---|
//! | CMD_CFGI_STE / STE_RANGE / ALL (§4.3.1–4.3.3) | [`VirtualBackend::command`] | re-read the STEs covered ([`Command::cfgi_streams`], [`Smmuv3::guest_ste`]) and replace the nested HWPTs |
//! | CMD_CFGI_CD / CD_ALL (§4.3.4, §4.3.5) | [`VirtualBackend::command`] | `IOMMU_HWPT_INVALIDATE` on the vIOMMU with the command's words ([`Command::encode`]) |
//! | CMD_TLBI_NH_* / NSNH_ALL / S12_VMALL / S2_IPA (§4.4) | [`VirtualBackend::command`] | the same |
//! | CMD_RESUME / CMD_STALL_TERM (§4.7.1, §4.7.2) | [`VirtualBackend::command`] | answer the host's stall (`struct iommu_hwpt_page_response`) |
//! | CMD_SYNC (§4.7.3) | [`VirtualBackend::sync`] | flush what it batched |
//! | CMD_ATC_INV, CMD_PRI_RESP (§4.5.1, §4.5.2) | [`vsva_pcie::Downstream`] given with [`Smmuv3::with_devices`] | `IOMMU_HWPT_INVALIDATE` with a CMD_ATC_INV; a fault-queue response |
//!
//! Each call returns before the unit consumes the next command, so a CMD_SYNC behind them
//! completes only after the VMM's host work (§4.7.3). A CMD_RESUME reaches the backend
//! whether or not the unit itself stalled that STAG: a virtual unit's stalls are the host's,
//! injected as events by the VMM ([`Smmuv3::record`]); the unit ignores a STAG it does not
//! hold (§4.7.1) and the backend decides. CMD_ATC_INV and CMD_PRI_RESP are IGNORED while
//! SMMUEN = 0, and so never reach the VMM then.
//!
//! Register writes that change what every StreamID gets at once — CR0.SMMUEN (§6.3.9) and
//! GBPA.ABORT (§6.3.14, taking effect while SMMUEN = 0) — reach
//! [`VirtualBackend::global_changed`] before the write returns. STRTAB_BASE and
//! STRTAB_BASE_CFG are writable only while SMMUEN = 0 (§6.3.24), so a backend re-reads every
//! STE when SMMUEN goes to 1 and needs no call of its own for them.
//!
//! What the VMM puts into the guest's queues goes in as the hardware's own would:
//!
//! * a host event of a device (vEVENTQ, `struct iommu_vevent_arm_smmuv3`): its four words
//!   as an [`EventRecord`](crate::spec::event::EventRecord), already under the vSID or moved
//!   there with [`EventRecord::with_sid`](crate::spec::event::EventRecord::with_sid), through
//!   [`Smmuv3::record`];
//! * a host stall (`struct iommu_hwpt_pgfault` with the STAG as its group): a fault event
//!   with Stall = 1 — [`EventRecord::walk_fault`](crate::spec::event::EventRecord::walk_fault)
//!   of F_TRANSLATION, CLASS TT, with the access (RnW, InD, PnU), the SubstreamID (SSV) and a
//!   STAG the guest will name in CMD_RESUME (the host's own serves: vSIDs map one to one to
//!   host StreamIDs) — through [`Smmuv3::record`]. It returns false when the guest's event
//!   queue is off, full or in EVTQ_ABT_ERR: the event is lost, the guest will never resume
//!   it, and the VMM answers the host's stall itself (a real SMMU terminates a stall whose
//!   event it could not record);
//! * a host page request (PRI): [`Smmuv3::page_request`] with the vSID as Requester ID. If
//!   the guest's PRI queue is off or full the unit answers it as §8.1–8.3 say, through
//!   [`vsva_pcie::Downstream::page_group_response`] — the VMM's, which answers the host's
//!   group with it.
//!
//! The backend runs with the unit's register lock held: it may read guest memory, call
//! [`Smmuv3::guest_ste`], [`Smmuv3::guest_global`], [`Smmuv3::record`] and
//! [`Smmuv3::page_request`] (none takes the register lock) and the host, but must not
//! program this unit through its registers from inside the call.

use std::sync::Arc;

use crate::lookup::{check_ste, fetch_ste};
use crate::spec::cmd::Command;
use crate::spec::ste::Ste;
use crate::stream::ConfigFault;
use crate::unit::Smmuv3;

/// What the guest's registers make of every StreamID at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GlobalState {
    /// CR0.SMMUEN: StreamIDs are configured by their STEs. Without it every transaction
    /// aborts or bypasses as GBPA says (§3.11).
    pub smmuen: bool,
    /// GBPA.ABORT: with SMMUEN = 0, transactions abort rather than bypass (§6.3.14).
    pub gbpa_abort: bool,
}

/// The VMM refused a guest's command: the guest's command queue stops at it with
/// CMDQ_CONS.ERR = CERROR_ILL and GERROR.CMDQ_ERR (§7.1), as for a command the unit itself
/// finds illegal — what a VMM does when the host rejects the command it became
/// (`IOMMU_HWPT_INVALIDATE` failing with EINVAL or EOPNOTSUPP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the host refused the command (CERROR_ILL)")]
pub struct Refused;

/// A VMM behind a virtual SMMU.
pub trait VirtualBackend: Send + Sync {
    /// The guest's command queue executed `cmd`: a CMD_CFGI_*, CMD_TLBI_*, CMD_RESUME or
    /// CMD_STALL_TERM (see the module doc), after the unit's own handling and before the
    /// next command.
    ///
    /// # Errors
    /// [`Refused`] stops the guest's queue at `cmd` with CERROR_ILL.
    fn command(&self, cmd: &Command) -> Result<(), Refused>;

    /// A CMD_SYNC is about to complete: every command before it has been handed over. The
    /// default does nothing (a backend that acts on each command at once).
    fn sync(&self) {}

    /// CR0.SMMUEN or GBPA.ABORT changed: `state` is what they are now. Called once per
    /// register write that changed either, after the unit applied it (its caches emptied,
    /// its own stalls ended when SMMUEN changed) and before the write returns. With
    /// SMMUEN = 0 the guest's STEs no longer apply: a VMM attaches every device to abort
    /// or bypass as GBPA says, and ends the host stalls it injected (the guest can no
    /// longer resume them). The default does nothing.
    fn global_changed(&self, state: GlobalState) {
        let _ = state;
    }
}

impl Smmuv3 {
    /// Makes this unit a virtual one: `backend` hears the guest's configuration and
    /// invalidation commands, resumes and syncs, and SMMUEN / GBPA changes. Set once,
    /// before the guest enables the command queue.
    ///
    /// # Errors
    /// The backend given, if one is already set.
    pub fn set_backend(
        &self,
        backend: Arc<dyn VirtualBackend>,
    ) -> Result<(), Arc<dyn VirtualBackend>> {
        self.backend.set(backend)
    }

    /// SMMUEN and GBPA.ABORT as the last register write left them. Takes no register lock.
    pub fn guest_global(&self) -> GlobalState {
        let regs = self.lookup_regs();
        GlobalState {
            smmuen: regs.smmuen,
            gbpa_abort: regs.abort,
        }
    }

    /// The guest's STE of StreamID `sid` as a transaction would find it now: read from
    /// memory through the stream table registers the guest programmed (§3.3.2, §5.1) —
    /// never from the configuration cache — and checked as `SteIllegal()` checks it
    /// (§5.2.2). It is read whatever SMMUEN is: see [`Smmuv3::guest_global`] for whether it
    /// applies. Nothing is recorded in the event queue (no transaction met it). Takes no
    /// register lock.
    ///
    /// `ste.words[0..2]` are what `struct iommu_hwpt_arm_smmuv3` carries.
    ///
    /// # Errors
    /// [`ConfigFault::BadStreamId`] (C_BAD_STREAMID: beyond the table, or an invalid
    /// level-1 descriptor), [`ConfigFault::SteFetch`] (F_STE_FETCH: the read aborted),
    /// [`ConfigFault::BadSte`] (C_BAD_STE: V = 0 or ILLEGAL for this unit).
    pub fn guest_ste(&self, sid: u32) -> Result<Ste, ConfigFault> {
        let regs = self.lookup_regs();
        let ste = fetch_ste(&self.cfg, self.mem.as_ref(), regs.strtab, sid)?;
        check_ste(&self.cfg, &ste)?;
        Ok(ste)
    }

    /// Tells the backend about `cmd` (see the module doc).
    pub(crate) fn tell_command(&self, cmd: &Command) -> Result<(), Refused> {
        match self.backend.get() {
            Some(b) => b.command(cmd),
            None => Ok(()),
        }
    }

    /// Tells the backend a CMD_SYNC completes.
    pub(crate) fn tell_sync(&self) {
        if let Some(b) = self.backend.get() {
            b.sync();
        }
    }

    /// Tells the backend the global state if it differs from `before`.
    pub(crate) fn tell_global(&self, before: GlobalState) {
        let now = self.guest_global();
        if now != before {
            if let Some(b) = self.backend.get() {
                b.global_changed(now);
            }
        }
    }
}
