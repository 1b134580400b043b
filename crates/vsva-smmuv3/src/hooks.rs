//! What the command queue hands to the translation layer (IHI 0070 §4.4–4.7).
//!
//! The configuration commands (CMD_CFGI_*), CMD_ATC_INV and CMD_PRI_RESP are carried out by
//! the unit itself: the first on its configuration cache, the other two as PCIe messages
//! through [`vsva_pcie::Downstream`]. TLB invalidations, stall resumption and termination,
//! and prefetches concern the translation layer's state (the TLB, stalled transactions):
//! the unit implements these hooks itself ([`crate::Smmuv3`]'s impl below) and then passes
//! each command on to the hooks given with
//! [`Smmuv3::with_hooks`](crate::Smmuv3::with_hooks), whose default bodies do nothing (an
//! observer, e.g. for tests). [`TranslationHooks::sync`] is where a layer waits for its walks
//! in flight, so that CMD_SYNC completes only after them (§4.7.3).
//!
//! A unit serving as a guest's vSMMU tells its VMM through [`crate::VirtualBackend`] instead
//! (it also hears CMD_CFGI_*, and may refuse a command); these hooks stay an observer.
//!
//! The hooks run on the command queue, with the register lock held: they may call
//! [`Smmuv3::stream_config`](crate::Smmuv3::stream_config) and
//! [`Smmuv3::record`](crate::Smmuv3::record), which take no register lock, but not
//! `mmio_read`/`mmio_write`.

use crate::spec::cmd::{Command, ResumeAction};

/// The translation layer's side of the command queue.
pub trait TranslationHooks: Send + Sync {
    /// A CMD_TLBI_* command (`cmd` is one of the `Tlbi*` variants), in queue order.
    fn tlb_invalidate(&self, cmd: &Command) {
        let _ = cmd;
    }

    /// CMD_RESUME: retry, abort or terminate the stalled transaction `stag` of `sid`.
    fn resume(&self, sid: u32, stag: u16, action: ResumeAction) {
        let _ = (sid, stag, action);
    }

    /// CMD_STALL_TERM: terminate every stalled transaction of `sid`.
    fn stall_term(&self, sid: u32) {
        let _ = sid;
    }

    /// CMD_PREFETCH_CONFIG / CMD_PREFETCH_ADDR (hints; may be ignored).
    fn prefetch(&self, cmd: &Command) {
        let _ = cmd;
    }

    /// CMD_SYNC: returns once every invalidation before it has taken effect on translations
    /// in flight.
    fn sync(&self) {}
}

/// The SMMU's own translation layer: its TLB, its stalled transactions and its walks in
/// flight. The command queue calls these, then the hooks given with
/// [`Smmuv3::with_hooks`](crate::Smmuv3::with_hooks) (which observe).
impl TranslationHooks for crate::Smmuv3 {
    /// CMD_TLBI_* (§4.4).
    fn tlb_invalidate(&self, cmd: &Command) {
        self.tlb.invalidate(cmd);
    }

    /// CMD_RESUME (§4.7.1).
    fn resume(&self, sid: u32, stag: u16, action: ResumeAction) {
        self.stalls.resume(sid, stag, action);
    }

    /// CMD_STALL_TERM (§4.7.2): the stream's stalled transactions abort.
    fn stall_term(&self, sid: u32) {
        self.stalls.terminate(Some(sid));
    }

    /// CMD_SYNC (§4.7.3): waits for every walk (and configuration lookup) begun before it,
    /// so none still reads tables an earlier invalidation let software free.
    fn sync(&self) {
        self.walks.drain();
    }
}

/// No translation layer: every hook does nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTranslation;

impl TranslationHooks for NoTranslation {}
