//! The PRI queue (IHI 0070 §8): PCIe Page Request Messages written as 16-byte entries at PROD
//! for software to consume from CONS, and the automatic PRG Responses the SMMU sends for the
//! requests it cannot queue (§8.1–8.3):
//!
//! | condition | request | auto-response |
//! |---|---|---|
//! | effective PRIQEN = 0 (PRIQEN or SMMUEN clear), or PRIQ_ABT_ERR active | any | Response Failure, no PASID |
//! | queue full, or an overflow unacknowledged (OVFLG != OVACKFLG) | Last = 1 | Success, with the request's PASID (IDR3.PPS = 1) |
//! | queue full, or an overflow unacknowledged | Last = 0 | none |
//! | the entry's write aborts (PRIQ_ABT_ERR) | any | Response Failure, no PASID |
//!
//! Stop Markers (PASID, Last = 1, no read or write) never get a response. A full queue
//! toggles PROD.OVFLG; while the overflow is unacknowledged no entry is written. The queue's
//! interrupt fires when it goes from empty to non-empty, or with PRIQ_IRQ_CFG2.LO for each
//! Last = 1 request written or dropped by overflow.

use vsva_pcie::{PageRequest, PageRequestOutcome, ResponseCode};
use zerocopy::IntoBytes;

use crate::spec::event::{PRI_BYTES, PageRequestFields, PriEntry};
use crate::spec::registers::{Gerror, IrqCtrl, queue};
use crate::unit::{Pri, Smmuv3};

/// What becomes of a request: queued, dropped, or answered by the SMMU.
enum Fate {
    Queued,
    Dropped,
    Respond(ResponseCode, bool),
}

impl Smmuv3 {
    /// A PCIe Page Request Message from the Function `pr.rid` (StreamID = Requester ID).
    /// Takes no register lock (see [`crate::Smmuv3`]'s locking notes); an automatic response
    /// is sent through [`vsva_pcie::Downstream`] after the queue lock is dropped.
    pub fn page_request(&self, pr: &PageRequest) -> PageRequestOutcome {
        let fate = {
            let mut p = self.pri();
            let fate = self.queue_page_request(&mut p, pr);
            if matches!(fate, Fate::Respond(..)) {
                p.auto_responses += 1;
            }
            fate
        };
        match fate {
            Fate::Queued => PageRequestOutcome::Queued,
            Fate::Dropped => PageRequestOutcome::Dropped,
            Fate::Respond(code, with_pasid) => {
                let pasid = if with_pasid { pr.pasid } else { None };
                self.devices
                    .page_group_response(pr.rid, pasid, code, pr.prgi);
                PageRequestOutcome::AutoResponse(code)
            }
        }
    }

    fn queue_page_request(&self, p: &mut Pri, pr: &PageRequest) -> Fate {
        let stop = pr.pasid.is_some() && pr.last && !pr.read && !pr.write;
        let failure = if stop {
            Fate::Dropped
        } else {
            Fate::Respond(ResponseCode::ResponseFailure, false)
        };
        let overflowed = if stop || !pr.last {
            Fate::Dropped
        } else {
            Fate::Respond(ResponseCode::Success, true)
        };
        let (irq_on, aborted) = {
            let e = self.errors();
            (
                e.irq_ctrl.contains(IrqCtrl::PRIQ_IRQEN),
                e.active(Gerror::PRIQ_ABT_ERR),
            )
        };
        if !(p.priqen && p.smmuen) || aborted {
            return failure;
        }
        let last_only = p.irq.attr & (1 << 31) != 0;
        let max = self.cfg.priq_bits;
        if (p.q.prod ^ p.q.cons) & queue::OVERFLOW != 0 {
            if irq_on && last_only && pr.last && !stop {
                p.irq.fire(self.irq.as_ref());
            }
            return overflowed;
        }
        if p.q.full(max) {
            p.q.prod ^= queue::OVERFLOW;
            if irq_on && last_only && pr.last && !stop {
                p.irq.fire(self.irq.as_ref());
            }
            return overflowed;
        }
        let entry = PriEntry::new(&PageRequestFields {
            sid: pr.rid.raw() as u32,
            ssid: pr.pasid.map(|p| p.raw()),
            // X and Priv are 0 without a PASID (§8).
            privileged: pr.pasid.is_some() && pr.privileged,
            exec: pr.pasid.is_some() && pr.exec,
            read: pr.read,
            write: pr.write,
            last: pr.last,
            prgi: pr.prgi & 0x1ff,
            addr: pr.addr,
        });
        let was_empty = p.q.empty(max);
        let addr = p.q.entry_addr(max, PRI_BYTES, p.q.prod);
        if self.mem.write(addr, entry.as_bytes()).is_err() {
            self.gerror_raise(Gerror::PRIQ_ABT_ERR);
            return failure;
        }
        p.q.prod = p.q.next(max, p.q.prod);
        p.written += 1;
        if irq_on && (if last_only { pr.last } else { was_empty }) {
            p.irq.fire(self.irq.as_ref());
        }
        Fate::Queued
    }
}
