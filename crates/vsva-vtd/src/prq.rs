//! The page request queue (VT-d 4.1 §7.4–7.5): page requests from devices (PCIe PRI) are
//! written as 32-byte descriptors at PQT for software to consume from PQH.
//!
//! A request that cannot be queued is dropped; if it was the last of its group, the unit
//! answers it itself (§7.4.1, Table 31): Invalid Request after a remapping-structure fault
//! (which is recorded), Success when the queue is full or has overflowed (PRS.PRO). The page
//! request event fires only when neither PPR nor PRO was already set.

use std::sync::atomic::Ordering;

use vsva_pcie::{PageRequest, PageRequestOutcome, ResponseCode};

use crate::lookup::resolve_context;
use crate::request::{Request, RequestKind};
use crate::spec::fault::FaultReason;
use crate::spec::page_request;
use crate::spec::registers::{PRS_PPR, PRS_PRO, Pqa, Rtaddr, Ttm};
use crate::unit::Vtd;

impl Vtd {
    /// A Page Request Message from a device (PCIe Base 6.0 §10.4.1).
    pub fn page_request(&self, pr: &PageRequest) -> PageRequestOutcome {
        let outcome = self.queue_page_request(pr);
        match outcome {
            Ok(()) => PageRequestOutcome::Queued,
            Err(code) if pr.last => {
                self.devices
                    .page_group_response(pr.rid, pr.pasid, code, pr.prgi);
                PageRequestOutcome::AutoResponse(code)
            }
            Err(_) => PageRequestOutcome::Dropped,
        }
    }

    /// Queues `pr`, or says which automatic response a dropped last request gets.
    fn queue_page_request(&self, pr: &PageRequest) -> Result<(), ResponseCode> {
        let as_request = Request {
            rid: pr.rid,
            pasid: pr.pasid,
            addr: pr.addr,
            access: vsva_mem::Access::READ,
            kind: RequestKind::Translation,
        };
        let structure_fault = |reason: FaultReason, fpd: bool| {
            self.fault(&as_request, reason, fpd);
            ResponseCode::InvalidRequest
        };
        if !self.enabled.load(Ordering::Acquire) {
            return Err(ResponseCode::InvalidRequest);
        }
        let rt = Rtaddr::from_bits(self.root.load(Ordering::Acquire));
        match rt.mode() {
            Ttm::Scalable => {}
            Ttm::Legacy => return Err(structure_fault(FaultReason::LegacyModePageRequest, false)),
            _ => return Err(structure_fault(FaultReason::RootTableAddress, false)),
        }
        let ctx = resolve_context(&self.cfg, self.mem.as_ref(), rt.address(), pr.rid)
            .map_err(|f| structure_fault(f.reason, f.fpd))?;
        let fpd = ctx.lo.fpd();
        if !ctx.lo.pre() {
            return Err(structure_fault(FaultReason::ContextPreClear, fpd));
        }
        if pr.pasid.is_some() && !ctx.lo.paside() {
            return Err(structure_fault(FaultReason::ContextPasidDisabled, fpd));
        }

        let mut st = self.lock();
        let regs = &mut st.regs;
        if regs.prs & PRS_PRO != 0 {
            return Err(ResponseCode::Success);
        }
        let pqa = Pqa::from_bits(regs.pqa);
        let size = 4096u64 << pqa.pqs();
        let (head, tail) = (regs.pqh % size, regs.pqt % size);
        let quiet = regs.prs & (PRS_PPR | PRS_PRO) != 0;
        if (tail + 32) % size == head {
            regs.prs |= PRS_PRO;
            if !quiet {
                regs.pr_event.fire(self.irq.as_ref());
            }
            return Err(ResponseCode::Success);
        }
        // PQA is the guest's to write: a base at the top of the space cannot hold the queue.
        let Some(at) = (pqa.pqa() << 12).checked_add(tail) else {
            return Err(ResponseCode::ResponseFailure);
        };
        for (i, w) in page_request::encode(pr).iter().enumerate() {
            if self.mem.store_u64(at + 8 * i as u64, *w).is_err() {
                // The queue itself is unreachable: the request cannot be delivered.
                return Err(ResponseCode::ResponseFailure);
            }
        }
        regs.pqt = (tail + 32) % size;
        regs.prs |= PRS_PPR;
        if !quiet {
            regs.pr_event.fire(self.irq.as_ref());
        }
        Ok(())
    }
}
