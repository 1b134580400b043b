//! The virtual backend: what a unit playing a guest's vIOMMU tells its VMM (DESIGN.md, "one
//! model, two roles").
//!
//! A physical unit keeps its caches and nothing more. A virtual one also has a host behind
//! it: the guest's PASID entries become host nested page tables, and its cache invalidations
//! must reach the host's caches. The unit calls the backend with every context-cache,
//! PASID-cache, IOTLB and PASID-based IOTLB invalidation the guest's queue executes, after
//! dropping its own cached state and before the next descriptor — so an invalidation wait
//! queued behind it completes only once the host has done the same (§6.5.2.9 ordering).
//! Device-TLB invalidations and page group responses already leave the unit through
//! [`crate::devices::Devices`].
//!
//! The backend runs with the unit's queue in progress: it may read guest memory and call
//! the host, but must not program this unit again from inside the call.

use crate::spec::descriptors::Descriptor;

/// A VMM behind a virtual unit.
pub trait VirtualBackend: Send + Sync {
    /// The guest's queue executed `d` (a context-cache, PASID-cache, IOTLB or PASID-based
    /// IOTLB invalidation).
    fn invalidated(&self, d: &Descriptor);
}

impl crate::unit::Vtd {
    /// The guest's PASID-table entry for (`rid`, `pasid`) as the unit would find it now —
    /// read from guest memory through the root table the guest latched, with every check of
    /// a translation ([`crate::lookup::resolve`]) and without caching anything. `None` for
    /// `pasid` names the entry requests without PASID use (RID_PASID).
    ///
    /// A VMM calls this after a PASID-cache invalidation to learn what the guest programmed.
    ///
    /// # Errors
    /// The fault reason a DMA would meet (translation disabled gives `RootTableAddress`).
    pub fn guest_pasid_entry(
        &self,
        rid: vsva_mem::Rid,
        pasid: Option<vsva_mem::Pasid>,
    ) -> Result<crate::lookup::Resolved, crate::lookup::LookupFault> {
        use crate::spec::registers::Rtaddr;
        use std::sync::atomic::Ordering;
        if !self.enabled.load(Ordering::Acquire) {
            return Err(crate::lookup::LookupFault {
                reason: crate::spec::fault::FaultReason::RootTableAddress,
                fpd: false,
            });
        }
        let rt = Rtaddr::from_bits(self.root.load(Ordering::Acquire));
        let req = crate::request::Request {
            rid,
            pasid,
            addr: 0,
            access: vsva_mem::Access::READ,
            kind: crate::request::RequestKind::Untranslated,
        };
        crate::lookup::resolve(
            self.config(),
            self.mem.as_ref(),
            rt.address(),
            rt.mode(),
            &req,
        )
    }

    /// Records `rec` in the unit's fault log as if the unit had met the fault itself
    /// (§7.2.1: collapsed, overflowed, signalled as the log's state says). A VMM reports
    /// through this the host faults of a guest's DMA, translated into the guest's names.
    /// Returns whether a record was written.
    pub fn report_fault(&self, rec: &crate::spec::fault::FaultRecord) -> bool {
        self.faults().record(rec, self.irq.as_ref())
    }
}

impl crate::unit::Vtd {
    /// The PASID the guest's context entry of `rid` gives requests without PASID (RID_PASID
    /// §9.4, or 0 without `ECAP.RPS`, §3.4.3), read from the context entry alone — so it is
    /// known even while the PASID entry it names is not present. `None` if translation is
    /// off, the tables are not scalable-mode, or the context entry cannot be read.
    pub fn guest_rid_pasid(&self, rid: vsva_mem::Rid) -> Option<u32> {
        use crate::spec::registers::{Rtaddr, Ttm};
        use std::sync::atomic::Ordering;
        if !self.enabled.load(Ordering::Acquire) {
            return None;
        }
        let rt = Rtaddr::from_bits(self.root.load(Ordering::Acquire));
        if rt.mode() != Ttm::Scalable {
            return None;
        }
        let context =
            crate::lookup::resolve_context(self.config(), self.mem.as_ref(), rt.address(), rid)
                .ok()?;
        Some(if self.config().rid_pasid {
            context.hi.rid_pasid()
        } else {
            0
        })
    }

    /// The PASIDs whose entries are present in the guest's PASID table of `rid` now, in
    /// order — what a VMM rescans after a domain-selective or global PASID-cache
    /// invalidation, which does not name the PASIDs that changed. Bounded by the context
    /// entry's PASID directory size and the unit's PASID width; empty if the context entry
    /// cannot be read.
    pub fn guest_present_pasids(&self, rid: vsva_mem::Rid) -> Vec<u32> {
        use crate::spec::pasid::{DIR_ENTRY_BYTES, PASID_ENTRY_BYTES, PasidDirEntry};
        use crate::spec::registers::{Rtaddr, Ttm};
        use std::sync::atomic::Ordering;
        let mut out = Vec::new();
        if !self.enabled.load(Ordering::Acquire) {
            return out;
        }
        let rt = Rtaddr::from_bits(self.root.load(Ordering::Acquire));
        if rt.mode() != Ttm::Scalable {
            // Only scalable-mode tables have PASID tables (legacy tables are not modelled).
            return out;
        }
        let Ok(context) =
            crate::lookup::resolve_context(self.config(), self.mem.as_ref(), rt.address(), rid)
        else {
            return out;
        };
        if !context.lo.paside() {
            return out;
        }
        // PASIDs below `limit` are the ones a request may carry (SCT.5 otherwise).
        let limit = (context.pasid_dir_entries() * 64).min(self.config().pasid_limit());
        let dir = context.pasid_dir();
        for d in 0..limit.div_ceil(64) {
            let de = dir
                .checked_add(d * DIR_ENTRY_BYTES)
                .and_then(|at| self.mem.load_u64(at).ok())
                .map(PasidDirEntry::from_bits);
            let Some(de) = de else {
                break;
            };
            if !de.p() {
                continue;
            }
            for i in 0..(limit - d * 64).min(64) {
                // the P bit of each entry's first qword
                let present = de
                    .table()
                    .checked_add(i * PASID_ENTRY_BYTES)
                    .and_then(|at| self.mem.load_u64(at).ok())
                    .is_some_and(|q0| q0 & 1 != 0);
                if present {
                    out.push((d * 64 + i) as u32);
                }
            }
        }
        out
    }
}
