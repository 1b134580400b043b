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
//! [`vsva_pcie::Downstream`]. Global commands that change every device's translation at
//! once — TE set or cleared, a root-table pointer latched by SRTP (§11.4.4) — reach the
//! backend too, before the GCMD write that made them returns.
//!
//! The backend runs with the unit's register lock held (the queue in progress, or the GCMD
//! write): it may read guest memory, read the guest's tables through the accessors below
//! (which take no register lock) and call the host, but must not program this unit again
//! from inside the call.

use crate::spec::descriptors::Descriptor;

/// A VMM behind a virtual unit.
pub trait VirtualBackend: Send + Sync {
    /// The guest's queue executed `d` (a context-cache, PASID-cache, IOTLB or PASID-based
    /// IOTLB invalidation).
    fn invalidated(&self, d: &Descriptor);

    /// The guest changed what every device's translation is through GCMD (§11.4.4): it set
    /// or cleared TE, or latched a root-table pointer with SRTP (which the unit treats as
    /// the global context-cache, PASID-cache and IOTLB invalidations software follows it
    /// with, §6.5.2.1–3). `enabled` is GSTS.TES after the write.
    ///
    /// With TE clear the unit passes requests without PASID untranslated and blocks
    /// requests with PASID (§3.2): a backend must leave the host translating nothing the
    /// guest's tables named. The unit calls this once per GCMD write that did either, after
    /// dropping its own cached state and updating GSTS, and before the write returns; the
    /// guest's tables read through [`guest_pasid_entry`] and the other accessors already
    /// show the new state.
    ///
    /// The default does nothing (a backend that keeps no translations of its own).
    ///
    /// [`guest_pasid_entry`]: crate::unit::Vtd::guest_pasid_entry
    fn translation_changed(&self, enabled: bool) {
        let _ = enabled;
    }
}

impl crate::unit::Vtd {
    /// The guest's PASID-table entry for (`rid`, `pasid`) as the unit would find it now —
    /// read from guest memory through the root table the guest latched, with every check of
    /// a translation (`lookup::resolve`) and without caching anything. `None` for
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
    /// §9.4, or 0 without `ECAP.RPS`, §3.4.3, where the field is reserved), read from the context entry alone — so it is
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
        // Without ECAP.RPS the field is reserved (§9.4), so a context entry that passed the
        // reserved-bit check holds 0 there.
        Some(context.hi.rid_pasid())
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex, Weak};

    use vsva_mem::{PhysMem, PhysMemory, Rid};

    use super::VirtualBackend;
    use crate::spec::descriptors::Descriptor;
    use crate::spec::fault::FaultReason;
    use crate::spec::registers::{Gcmd, offset};
    use crate::{Vtd, VtdConfig};
    use vsva_pcie::MsiLog;

    /// What the backend heard (TE after the write), with what the guest's tables read like
    /// from inside the call: the fault a request without PASID of [`RID`] would meet, and
    /// the PASIDs present.
    type Heard = (bool, Option<FaultReason>, Vec<u32>);

    /// Records each GCMD change it hears.
    struct Recorder {
        vtd: Mutex<Weak<Vtd>>,
        heard: Mutex<Vec<Heard>>,
    }

    const RID: Rid = Rid::from_raw(0x18);

    impl VirtualBackend for Recorder {
        fn invalidated(&self, _: &Descriptor) {}

        fn translation_changed(&self, enabled: bool) {
            let Some(vtd) = self.vtd.lock().unwrap().upgrade() else {
                return;
            };
            // Reading the guest's tables from inside takes no register lock (no deadlock).
            let reason = vtd.guest_pasid_entry(RID, None).err().map(|f| f.reason);
            let present = vtd.guest_present_pasids(RID);
            self.heard.lock().unwrap().push((enabled, reason, present));
        }
    }

    fn unit() -> (Arc<Vtd>, Arc<Recorder>) {
        let mem: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(1 << 24).unwrap());
        let vtd = Arc::new(Vtd::new(
            VtdConfig::default(),
            mem,
            Arc::new(MsiLog::default()),
        ));
        let rec = Arc::new(Recorder {
            vtd: Mutex::new(Arc::downgrade(&vtd)),
            heard: Mutex::new(vec![]),
        });
        assert!(vtd.set_backend(rec.clone()).is_ok());
        (vtd, rec)
    }

    fn heard(rec: &Recorder) -> Vec<Heard> {
        std::mem::take(&mut *rec.heard.lock().unwrap())
    }

    #[test]
    fn the_backend_hears_te_and_srtp_after_the_unit_has_applied_them() {
        let (vtd, rec) = unit();
        // a scalable-mode root table of nothing present
        vtd.mmio_write(offset::RTADDR, 8, 0x10_0000 | 1 << 10);
        vtd.mmio_write(offset::GCMD, 4, Gcmd::SRTP.bits().into());
        assert_eq!(
            heard(&rec),
            [(false, Some(FaultReason::RootTableAddress), vec![])],
            "SRTP with translation off"
        );
        vtd.mmio_write(offset::GCMD, 4, Gcmd::TE.bits().into());
        assert_eq!(
            heard(&rec),
            [(true, Some(FaultReason::RootNotPresent), vec![])],
            "TE set: the unit already walks the latched root table"
        );
        assert!(vtd.mmio_read(offset::GSTS, 4) & u64::from(Gcmd::TE.bits()) != 0);
        // the same TE again changes nothing: nothing heard
        vtd.mmio_write(offset::GCMD, 4, Gcmd::TE.bits().into());
        assert_eq!(heard(&rec), []);
        // SRTP with TE kept: heard with translation on
        vtd.mmio_write(offset::GCMD, 4, (Gcmd::TE | Gcmd::SRTP).bits().into());
        assert_eq!(
            heard(&rec),
            [(true, Some(FaultReason::RootNotPresent), vec![])]
        );
        // TE cleared: the unit no longer translates by the time the backend hears it
        vtd.mmio_write(offset::GCMD, 4, 0);
        assert_eq!(
            heard(&rec),
            [(false, Some(FaultReason::RootTableAddress), vec![])]
        );
        // QIE alone is no translation change
        vtd.mmio_write(offset::GCMD, 4, Gcmd::QIE.bits().into());
        assert_eq!(heard(&rec), []);
        // TE and SRTP in one write: heard once
        vtd.mmio_write(
            offset::GCMD,
            4,
            (Gcmd::QIE | Gcmd::TE | Gcmd::SRTP).bits().into(),
        );
        assert_eq!(
            heard(&rec),
            [(true, Some(FaultReason::RootNotPresent), vec![])]
        );
    }
}
