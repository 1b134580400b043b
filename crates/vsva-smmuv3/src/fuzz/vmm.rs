//! A VMM behind the fuzzed unit when the setup byte makes it a guest's vSMMU (`virt`): from
//! inside every call it reads what a real VMM reads — the guest's STE of each CMD_CFGI_*'s
//! first StreamID, the global state — and puts an event into the guest's event queue for
//! each CMD_RESUME (a host event relayed), so that re-entering the unit from the command
//! queue is fuzzed too. It refuses CMD_CFGI_CD of odd SubstreamIDs (CERROR_ILL for the
//! guest), and keeps what the checks compare with: its view of SMMUEN / GBPA.ABORT, which
//! must always be the unit's (no change missed), and the CMD_SYNCs it heard, which can be no
//! fewer than those that completed.

use std::sync::{Mutex, Weak};

use crate::spec::cmd::Command;
use crate::spec::event::EventRecord;
use crate::unit::Smmuv3;
use crate::virt::{GlobalState, Refused, VirtualBackend};

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Heard {
    /// SMMUEN / GBPA.ABORT as the last `global_changed` said (or as at `set_backend`).
    pub view: GlobalState,
    /// CMD_SYNCs heard.
    pub syncs: u64,
    /// Commands heard.
    pub commands: u64,
}

pub(super) struct FuzzVmm {
    pub smmu: Weak<Smmuv3>,
    pub heard: Mutex<Heard>,
}

impl FuzzVmm {
    pub fn heard(&self) -> Heard {
        *self.heard.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn with(&self, f: impl FnOnce(&mut Heard)) {
        f(&mut self.heard.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl VirtualBackend for FuzzVmm {
    fn command(&self, cmd: &Command) -> Result<(), Refused> {
        self.with(|h| h.commands += 1);
        let Some(smmu) = self.smmu.upgrade() else {
            return Ok(());
        };
        if let Some((first, _)) = cmd.cfgi_streams() {
            let _ = smmu.guest_ste(first);
        }
        match *cmd {
            Command::Resume { sid, .. } => {
                let _ = smmu.record(&EventRecord::c_bad_cd(sid, None).with_sid(sid ^ 1));
                Ok(())
            }
            Command::CfgiCd { ssid, .. } if ssid & 1 != 0 => Err(Refused),
            _ => Ok(()),
        }
    }

    fn sync(&self) {
        self.with(|h| h.syncs += 1);
    }

    fn global_changed(&self, state: GlobalState) {
        if let Some(smmu) = self.smmu.upgrade() {
            // The unit has applied the write before telling.
            assert_eq!(smmu.guest_global(), state, "global_changed before applying");
        }
        self.with(|h| h.view = state);
    }
}
