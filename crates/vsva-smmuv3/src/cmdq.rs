//! The command queue (IHI 0070 §3.5, §4, §7.1): commands consumed from CONS to PROD while
//! CMDQEN is set, in order; an illegal command or a fetch abort stops consumption with
//! CONS pointing at it, CONS.ERR saying why and GERROR.CMDQ_ERR active, until software
//! acknowledges through GERRORN.

use vsva_mem::{Pasid, Rid};
use vsva_pcie::{AtsInvalidation, ResponseCode};

use crate::hooks::TranslationHooks;
use crate::spec::cmd::{CMD_BYTES, Command, PriResp, SyncCs};
use crate::spec::registers::{Cr0, Gerror, cerror, queue};
use crate::unit::{Smmuv3, State};

impl Smmuv3 {
    /// Consumes commands until the queue is empty, disabled, or stopped by an error. Each
    /// pass consumes a command or stops, so a queue of 2^CMDQS entries ends in as many.
    pub(crate) fn process_cmdq(&self, st: &mut State) {
        let max = self.cfg.cmdq_bits;
        let caps = self.cfg.command_caps();
        while st.cr0.contains(Cr0::CMDQEN)
            && !self.errors().active(Gerror::CMDQ_ERR)
            && !st.cmdq.empty(max)
        {
            let addr = st.cmdq.entry_addr(max, CMD_BYTES, st.cmdq.cons);
            let mut b = [0u8; 16];
            if self.mem.read(addr, &mut b).is_err() {
                self.cmdq_error(st, cerror::ABT);
                return;
            }
            let raw = [
                u64::from_le_bytes(b[..8].try_into().unwrap_or_default()),
                u64::from_le_bytes(b[8..].try_into().unwrap_or_default()),
            ];
            let cmd = match Command::decode(raw, &caps) {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(%e, addr, "SMMUv3 CERROR_ILL");
                    self.cmdq_error(st, cerror::ILL);
                    return;
                }
            };
            if let Err(code) = self.execute(st, &cmd) {
                self.cmdq_error(st, code);
                return;
            }
            st.stats.commands += 1;
            st.cmdq.cons = st.cmdq.next(max, st.cmdq.cons);
        }
    }

    fn cmdq_error(&self, st: &mut State, code: u8) {
        let keep = st.cmdq.cons & !(queue::ERR_MASK << queue::ERR_SHIFT);
        st.cmdq.cons = keep | (code as u32) << queue::ERR_SHIFT;
        self.gerror_raise(Gerror::CMDQ_ERR);
    }

    /// Carries out one valid command; `Err` is a CMDQ_CONS.ERR code.
    fn execute(&self, st: &mut State, cmd: &Command) -> Result<(), u8> {
        match *cmd {
            Command::CfgiSte { .. } | Command::CfgiCdAll { .. } | Command::CfgiSteRange { .. } => {
                match cmd.cfgi_streams() {
                    Some((0, u32::MAX)) => self.cache.clear(),
                    Some((first, last)) => self.cache.invalidate_sids(first, last),
                    None => {}
                }
                self.tell_command(cmd).map_err(|_| cerror::ILL)?;
            }
            Command::CfgiCd { sid, ssid, .. } => {
                self.cache.invalidate_cd(sid, ssid);
                self.tell_command(cmd).map_err(|_| cerror::ILL)?;
            }
            // CMD_RESUME and CMD_STALL_TERM (§4.7.1, §4.7.2).
            Command::Resume { sid, stag, action } => {
                TranslationHooks::resume(self, sid, stag, action);
                self.hooks.resume(sid, stag, action);
                self.tell_command(cmd).map_err(|_| cerror::ILL)?;
            }
            Command::StallTerm { sid } => {
                TranslationHooks::stall_term(self, sid);
                self.hooks.stall_term(sid);
                self.tell_command(cmd).map_err(|_| cerror::ILL)?;
            }
            Command::PrefetchConfig { .. } | Command::PrefetchAddr { .. } => {
                self.hooks.prefetch(cmd)
            }
            // CMD_ATC_INV and CMD_PRI_RESP are IGNORED while SMMUEN = 0 (§4.5.1, §4.5.2).
            Command::AtcInv { .. } | Command::PriResp { .. } if !st.cr0.contains(Cr0::SMMUEN) => {}
            Command::AtcInv {
                sid,
                ssid,
                global,
                size,
                addr,
            } => {
                let span = 12 + size as u32;
                let (addr, len) = if span >= 64 {
                    (0, u64::MAX)
                } else {
                    (addr & !((1u64 << span) - 1), 1u64 << span)
                };
                let done = u16::try_from(sid).ok().and_then(|rid| {
                    let inv = AtsInvalidation {
                        sid: Rid::from_raw(rid),
                        pasid: ssid.and_then(|s| Pasid::new(s).ok()),
                        addr,
                        len,
                        // Global is IGNORED without a SubstreamID.
                        global: global && ssid.is_some(),
                    };
                    self.devices.ats_invalidate(&inv).ok()
                });
                st.stats.atc_invalidations += 1;
                if done.is_none() {
                    tracing::debug!(sid, "SMMUv3 ATC invalidation failed");
                    st.atc_inv_failed = true;
                }
            }
            Command::PriResp {
                sid,
                ssid,
                prgi,
                resp,
            } => {
                if let Ok(rid) = u16::try_from(sid) {
                    let code = match resp {
                        PriResp::Success => ResponseCode::Success,
                        PriResp::InvalidRequest => ResponseCode::InvalidRequest,
                        PriResp::ResponseFailure => ResponseCode::ResponseFailure,
                    };
                    let pasid = ssid.and_then(|s| Pasid::new(s).ok());
                    self.devices
                        .page_group_response(Rid::from_raw(rid), pasid, code, prgi);
                    st.stats.page_responses += 1;
                }
            }
            Command::Sync {
                cs,
                msidata,
                msiaddr,
                ..
            } => {
                TranslationHooks::sync(self);
                self.hooks.sync();
                self.tell_sync();
                // A CMD_SYNC behind a failed ATC invalidation does not complete (§4.7.3);
                // when software acknowledges, it is retried and completes.
                if std::mem::take(&mut st.atc_inv_failed) {
                    return Err(cerror::ATC_INV_SYNC);
                }
                match cs {
                    SyncCs::Irq if self.cfg.msi && msiaddr != 0 => self.irq.msi(msiaddr, msidata),
                    SyncCs::Sev if self.cfg.sev => st.stats.sev += 1,
                    _ => {}
                }
                st.stats.syncs += 1;
            }
            _ => {
                TranslationHooks::tlb_invalidate(self, cmd);
                self.hooks.tlb_invalidate(cmd);
                self.tell_command(cmd).map_err(|_| cerror::ILL)?;
            }
        }
        Ok(())
    }
}
