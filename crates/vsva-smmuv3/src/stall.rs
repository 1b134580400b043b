//! Stalled transactions (IHI 0070 §3.12.2, §4.7.1 CMD_RESUME, §4.7.2 CMD_STALL_TERM).
//!
//! A transaction that faults under a stage with stalling enabled (CD.S, STE.S2S) and that can
//! wait is held under a STAG; its event record carries STALL = 1 and the STAG. Software ends
//! the stall with CMD_RESUME (retry, abort, or terminate with RAZ/WI) or CMD_STALL_TERM
//! (abort every stalled transaction of a StreamID); SMMUEN = 0 aborts them all.
//!
//! The requester learns the outcome through [`Smmuv3::poll_stalled`] (never blocks) or
//! [`Smmuv3::wait_stalled`] (blocks, bounded): both return `None` while the transaction is
//! still stalled; a retry translates the transaction again in the caller's thread — it may
//! stall again, under a new STAG.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::spec::cmd::ResumeAction;
use crate::translate::{Blocked, StallTag, Transaction, Translated};
use crate::unit::Smmuv3;

#[derive(Debug, Clone, Copy)]
enum Held {
    Pending(Transaction),
    Resolved(Transaction, ResumeAction),
}

#[derive(Debug, Default)]
struct State {
    next: u16,
    held: HashMap<(u32, u16), Held>,
}

/// The stalled transactions of one SMMU.
#[derive(Debug, Default)]
pub(crate) struct Stalls {
    state: Mutex<State>,
    changed: Condvar,
}

impl Stalls {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds `txn` under a STAG not in use for its StreamID — unless `max` transactions are
    /// stalled already (IDR5.STALL_MAX: the stall records outstanding never exceed it,
    /// IHI 0070 §6.3.6) or every STAG of the StreamID is taken (resolved transactions nobody
    /// has polled keep theirs): `None`, and the caller terminates the transaction instead.
    pub fn hold(&self, txn: Transaction, max: usize) -> Option<StallTag> {
        let mut st = self.lock();
        let pending = st
            .held
            .values()
            .filter(|h| matches!(h, Held::Pending(_)))
            .count();
        if pending >= max {
            return None;
        }
        let mut stag = st.next;
        for _ in 0..=u16::MAX {
            if !st.held.contains_key(&(txn.sid, stag)) {
                st.next = stag.wrapping_add(1);
                st.held.insert((txn.sid, stag), Held::Pending(txn));
                return Some(StallTag { sid: txn.sid, stag });
            }
            stag = stag.wrapping_add(1);
        }
        None
    }

    /// Forgets `tag` (its event was lost).
    pub fn take(&self, tag: StallTag) {
        self.lock().held.remove(&(tag.sid, tag.stag));
    }

    /// CMD_RESUME: a STAG that is not stalled is ignored (§4.7.1).
    pub fn resume(&self, sid: u32, stag: u16, action: ResumeAction) {
        let mut st = self.lock();
        if let Some(h) = st.held.get_mut(&(sid, stag)) {
            if let Held::Pending(t) = *h {
                *h = Held::Resolved(t, action);
                self.changed.notify_all();
            }
        }
    }

    /// CMD_STALL_TERM (`Some(sid)`) or SMMUEN = 0 (`None`): aborts the stalled transactions.
    pub fn terminate(&self, sid: Option<u32>) {
        let mut st = self.lock();
        for (&(s, _), h) in st.held.iter_mut() {
            if let Held::Pending(t) = *h {
                if sid.is_none_or(|x| x == s) {
                    *h = Held::Resolved(t, ResumeAction::Abort);
                }
            }
        }
        self.changed.notify_all();
    }

    /// The resolution of `tag`, removed once it is taken; `None` while pending. An unknown
    /// tag aborts.
    fn outcome(&self, st: &mut State, tag: StallTag) -> Option<(Transaction, ResumeAction)> {
        match st.held.get(&(tag.sid, tag.stag)).copied() {
            Some(Held::Pending(_)) => None,
            Some(Held::Resolved(t, a)) => {
                st.held.remove(&(tag.sid, tag.stag));
                Some((t, a))
            }
            None => Some((
                Transaction {
                    sid: tag.sid,
                    ssid: None,
                    addr: 0,
                    access: vsva_mem::Access::READ,
                    stallable: false,
                },
                ResumeAction::Abort,
            )),
        }
    }

    /// Transactions stalled now (not yet resumed).
    pub fn pending(&self) -> usize {
        self.lock()
            .held
            .values()
            .filter(|h| matches!(h, Held::Pending(_)))
            .count()
    }
}

impl Smmuv3 {
    fn finish(&self, (txn, action): (Transaction, ResumeAction)) -> Result<Translated, Blocked> {
        match action {
            ResumeAction::Retry => self.translate(&txn),
            ResumeAction::Abort => Err(Blocked::Abort),
            ResumeAction::Terminate => Err(Blocked::RazWi),
        }
    }

    /// The outcome of the stalled transaction `tag`, if software has resumed or terminated
    /// it: `None` while it is still stalled. A retry translates the transaction again here
    /// (it may stall again: `Some(Err(Blocked::Stalled(new tag)))`). An unknown tag, or
    /// one already taken, gives an abort.
    pub fn poll_stalled(&self, tag: StallTag) -> Option<Result<Translated, Blocked>> {
        let o = {
            let mut st = self.stalls.lock();
            self.stalls.outcome(&mut st, tag)?
        };
        Some(self.finish(o))
    }

    /// [`Smmuv3::poll_stalled`], waiting up to `timeout` for software to act.
    pub fn wait_stalled(
        &self,
        tag: StallTag,
        timeout: Duration,
    ) -> Option<Result<Translated, Blocked>> {
        let end = Instant::now() + timeout;
        let o = {
            let mut st = self.stalls.lock();
            loop {
                if let Some(o) = self.stalls.outcome(&mut st, tag) {
                    break o;
                }
                let left = end.checked_duration_since(Instant::now())?;
                st = self
                    .stalls
                    .changed
                    .wait_timeout(st, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        };
        Some(self.finish(o))
    }

    /// Runs `f` — a master's translations and the accesses that use them — as a
    /// transaction in flight: a CMD_SYNC issued after this began completes only after `f`
    /// returns (§4.7.3: the sync waits for transactions that may use what the commands
    /// before it removed). `f` must not issue commands itself.
    pub fn in_flight(&self, f: &mut dyn FnMut()) {
        let _in_flight = self.walks.begin();
        f();
    }

    /// How many transactions are stalled, waiting for CMD_RESUME or CMD_STALL_TERM.
    pub fn stalled(&self) -> usize {
        self.stalls.pending()
    }
}
