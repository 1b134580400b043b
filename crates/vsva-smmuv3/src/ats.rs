//! ATS (IHI 0070 §3.9): Translation Requests from PCIe Functions, and the check of their
//! translated transactions (CR0.ATSCHK, STE.EATS).
//!
//! | request | STE | answer |
//! |---|---|---|
//! | Translation Request | SMMUEN = 0, Config abort, configuration error | Unsupported Request |
//! | Translation Request | bypass, or EATS = 0b00 | F_BAD_ATS_TREQ, Unsupported Request (§3.9.1) |
//! | Translation Request | EATS = full (0b01) | both stages; a Translation, Access flag or Permission fault gives a completion with R = W = 0 and no event (the Function may then use PRI); an Address size fault or a walk abort is handled as for a transaction and answered with Completer Abort |
//! | Translation Request | EATS = split-stage (0b10) | the IPA, with stage 1's rights (the walk also checks stage 2) |
//! | translated transaction | CR0.ATSCHK = 0 | passes unchecked |
//! | translated transaction | ATSCHK = 1, EATS = full | passes |
//! | translated transaction | ATSCHK = 1, EATS = split-stage | its IPA goes through stage 2 |
//! | translated transaction | ATSCHK = 1, anything else | F_TRANSL_FORBIDDEN, abort (§3.9.2) |
//!
//! A Translation Request for writing walks as a write (with HTTU the page becomes dirty, as
//! the Function will write it); W is granted only to such a request. A request for writing
//! to a read-only page gets a read-only completion.

use vsva_mem::Access;
use vsva_pcie::TranslationCompletion;
use vsva_pgtable::{ArmFaultKind, Perm};

use crate::spec::event::{self, EventRecord};
use crate::spec::ste::eats;
use crate::stream::StreamConfig;
use crate::translate::{Blocked, Transaction, Translated, Xlate};
use crate::unit::Smmuv3;

/// Why a Translation Request got no completion data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AtsRefused {
    /// Unsupported Request: ATS not enabled for the stream, SMMU disabled, configuration
    /// error.
    #[error("Unsupported Request")]
    UnsupportedRequest,
    /// Completer Abort: the walk aborted or hit an Address size fault.
    #[error("Completer Abort")]
    CompleterAbort,
}

fn completion(
    t: &Translated,
    addr: u64,
    perm: Perm,
    both: Perm,
    access: Access,
) -> TranslationCompletion {
    let privileged = access.is_priv();
    let user_ok = privileged || perm.contains(Perm::USER);
    let exec_bit = if privileged {
        Perm::PRIV_EXEC
    } else {
        Perm::EXEC
    };
    TranslationCompletion {
        addr: addr & !t.size.offset_mask(),
        size: t.size,
        read: user_ok && both.contains(Perm::READ),
        write: user_ok && access.is_write() && both.contains(Perm::WRITE),
        exec: user_ok && both.contains(exec_bit),
        privileged,
    }
}

impl Smmuv3 {
    /// An ATS Translation Request from StreamID `sid` (§3.9.1), for `access` (write: the
    /// Function asks for write permission; EXEC and PRIV from the PASID prefix).
    ///
    /// # Errors
    /// [`AtsRefused`].
    pub fn ats_translate(
        &self,
        sid: u32,
        ssid: Option<u32>,
        addr: u64,
        access: Access,
    ) -> Result<TranslationCompletion, AtsRefused> {
        let _walk = self.walks.begin();
        let epoch = self.tlb.epoch();
        let cfg = self
            .stream_config(sid, ssid)
            .map_err(|_| AtsRefused::UnsupportedRequest)?;
        let a = event::Access {
            sid,
            ssid,
            addr,
            read: access.contains(Access::READ) || !access.is_write(),
            instruction: access.is_exec(),
            privileged: access.is_priv(),
        };
        let tc = match cfg {
            StreamConfig::Disabled { .. } | StreamConfig::Abort => {
                return Err(AtsRefused::UnsupportedRequest);
            }
            StreamConfig::Translate(tc)
                if self.cfg.ats && matches!(tc.eats, eats::TRANS | eats::S1CHK) =>
            {
                tc
            }
            _ => {
                self.record(&EventRecord::f_bad_ats_treq(&a, access.is_write(), 0));
                return Err(AtsRefused::UnsupportedRequest);
            }
        };
        let txn = Transaction {
            sid,
            ssid,
            addr,
            access,
            stallable: false,
        };
        let mut fault = match self.translate_config(&cfg, &txn, epoch) {
            Xlate::Done(t) => return Ok(self.ats_completion(&t, tc.eats, access)),
            Xlate::Blocked(_) => return Err(AtsRefused::UnsupportedRequest),
            Xlate::Fault(f) => f,
        };
        // No write permission: answer for reading.
        if fault.kind == ArmFaultKind::Permission && access.is_write() {
            let read = Transaction {
                access: access.difference(Access::WRITE) | Access::READ,
                ..txn
            };
            match self.translate_config(&cfg, &read, epoch) {
                Xlate::Done(t) => return Ok(self.ats_completion(&t, tc.eats, read.access)),
                Xlate::Blocked(_) => return Err(AtsRefused::UnsupportedRequest),
                Xlate::Fault(f) => fault = f,
            }
        }
        match fault.kind {
            ArmFaultKind::Translation | ArmFaultKind::AccessFlag | ArmFaultKind::Permission => {
                Ok(TranslationCompletion {
                    addr: addr & !0xfff,
                    size: vsva_mem::PageSize::Size4K,
                    read: false,
                    write: false,
                    exec: false,
                    privileged: access.is_priv(),
                })
            }
            ArmFaultKind::AddressSize | ArmFaultKind::ExternalAbort => {
                let _ = self.fault(&cfg, &txn, &fault);
                Err(AtsRefused::CompleterAbort)
            }
        }
    }

    fn ats_completion(&self, t: &Translated, e: u8, access: Access) -> TranslationCompletion {
        if e == eats::S1CHK {
            completion(t, t.ipa, t.s1, t.s1, access)
        } else {
            completion(t, t.addr, t.s1, t.s1 & t.s2, access)
        }
    }

    /// A transaction whose address a Function translated with ATS (AT = 10b, §3.9.2): the
    /// physical address it reaches.
    ///
    /// # Errors
    /// [`Blocked::Abort`] when the STE forbids translated traffic (F_TRANSL_FORBIDDEN) or
    /// stage 2 faults.
    pub fn translated(
        &self,
        sid: u32,
        ssid: Option<u32>,
        addr: u64,
        access: Access,
    ) -> Result<u64, Blocked> {
        if !self.atschk() {
            return Ok(addr);
        }
        let _walk = self.walks.begin();
        let epoch = self.tlb.epoch();
        let cfg = self.stream_config(sid, ssid).map_err(|_| Blocked::Abort)?;
        match cfg {
            StreamConfig::Disabled { abort } => {
                if abort {
                    Err(Blocked::Abort)
                } else {
                    Ok(addr)
                }
            }
            StreamConfig::Abort => Err(Blocked::Abort),
            StreamConfig::Bypass => Ok(addr),
            StreamConfig::Translate(tc) if self.cfg.ats && tc.eats == eats::TRANS => Ok(addr),
            StreamConfig::Translate(mut tc) if self.cfg.ats && tc.eats == eats::S1CHK => {
                // The address is an IPA: stage 2 only.
                tc.stage1 = None;
                let cfg = StreamConfig::Translate(tc);
                let txn = Transaction {
                    sid,
                    ssid,
                    addr,
                    access,
                    stallable: false,
                };
                match self.translate_config(&cfg, &txn, epoch) {
                    Xlate::Done(t) => Ok(t.addr),
                    Xlate::Blocked(b) => Err(b),
                    Xlate::Fault(f) => Err(self.fault(&cfg, &txn, &f)),
                }
            }
            StreamConfig::Translate(_) => {
                self.record(&EventRecord::f_transl_forbidden(&event::Access {
                    sid,
                    ssid,
                    addr,
                    read: !access.is_write(),
                    instruction: false,
                    privileged: false,
                }));
                Err(Blocked::Abort)
            }
        }
    }
}
