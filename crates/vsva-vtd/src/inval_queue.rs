//! The invalidation queue (VT-d 4.1 §6.5.2): a ring of 256-bit descriptors in memory between
//! IQH (hardware) and IQT (software), processed in order.
//!
//! Errors follow §6.5.2.11: an invalid tail, a fetch error, an unknown type or a reserved
//! field sets FSTS.IQE with IQERCD.IQEI, leaves IQH on the offending descriptor and stops
//! fetching until software clears IQE; a device-TLB invalidation nobody answers sets ITE (with
//! IQERCD.ITESID), leaves IQH on it and stops until ITE is cleared. Either raises the fault
//! event.
//!
//! Context-cache, PASID-cache, IOTLB and PASID-based IOTLB invalidations drop what they
//! select from the unit's caches ([`crate::cache`]) at once. Device-TLB invalidations reach the
//! device
//! and complete only when it answers ([`vsva_pcie::Downstream::ats_invalidate`]); invalidation waits complete after everything before them.

use std::sync::atomic::{AtomicU64, Ordering};

use vsva_mem::{Pasid, Rid};

use crate::cache::overlaps;
use vsva_pcie::AtsRange;

use crate::spec::descriptors::{Descriptor, QueueFeatures, decode, sid_selected};
use crate::spec::pasid::Pgtt;
use crate::spec::registers::{Fsts, ICS_IWC, Iqa, Iqei};
use crate::unit::{State, Vtd};
use vsva_pcie::{AtsInvalidation, AtsInvalidationError, ResponseCode};

/// The range a device-TLB descriptor's address and S bit name, as the ATS invalidation
/// request carries them (PCIe Base 6.0 §10.3.1): start and length, `u64::MAX` for the whole
/// space.
fn ats_span(addr: u64, size: bool) -> (u64, u64) {
    let range = AtsRange::decode(addr, size);
    (range.base, range.size().unwrap_or(u64::MAX))
}

/// Counters, one per descriptor kind, plus errors.
#[derive(Debug, Default)]
pub struct Stats {
    context_cache: AtomicU64,
    iotlb: AtomicU64,
    pasid_cache: AtomicU64,
    devtlb: AtomicU64,
    waits: AtomicU64,
    page_responses: AtomicU64,
    queue_errors: AtomicU64,
}

/// A snapshot of the unit's invalidation counters ([`crate::Vtd::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Context-cache invalidations.
    pub context_cache_invalidations: u64,
    /// IOTLB and PASID-based IOTLB invalidations.
    pub iotlb_invalidations: u64,
    /// PASID-cache invalidations.
    pub pasid_cache_invalidations: u64,
    /// Device-TLB invalidations completed by devices.
    pub devtlb_invalidations: u64,
    /// Invalidation waits completed.
    pub waits: u64,
    /// Page group responses sent.
    pub page_group_responses: u64,
    /// IQE and ITE events.
    pub queue_errors: u64,
}

impl Stats {
    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            context_cache_invalidations: g(&self.context_cache),
            iotlb_invalidations: g(&self.iotlb),
            pasid_cache_invalidations: g(&self.pasid_cache),
            devtlb_invalidations: g(&self.devtlb),
            waits: g(&self.waits),
            page_group_responses: g(&self.page_responses),
            queue_errors: g(&self.queue_errors),
        }
    }
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

impl Vtd {
    fn queue_features(&self) -> QueueFeatures {
        QueueFeatures {
            device_tlb: self.cfg.device_tlb,
            page_requests: self.cfg.page_requests,
            page_drain: self.cfg.page_drain,
            psi: true,
            mamv: 18,
            haw: self.cfg.haw,
        }
    }

    fn queue_error(&self, st: &mut State, status: Fsts, iqercd: u64) {
        st.regs.iqercd = (st.regs.iqercd & !0xf) | iqercd;
        bump(&self.stats.queue_errors);
        let mut faults = self.faults();
        let quiet = faults.quiet();
        faults.status |= status;
        if !quiet {
            faults.event.fire(self.irq.as_ref());
        }
    }

    fn iqe(&self, st: &mut State, why: Iqei) {
        tracing::debug!(?why, iqh = st.regs.iqh, "invalidation queue error");
        self.queue_error(st, Fsts::IQE, why as u64);
    }

    /// Processes descriptors from IQH to IQT while the queue is enabled and error-free.
    pub(crate) fn process_queue(&self, st: &mut State) {
        use crate::spec::registers::Gcmd;
        if !st.regs.gsts.contains(Gcmd::QIE)
            || self.faults().status.intersects(Fsts::IQE | Fsts::ITE)
        {
            return;
        }
        let iqa = Iqa::from_bits(st.regs.iq_latched);
        let size = 4096u64 << iqa.qs();
        let tail = st.regs.iqt & 0x7fff0;
        if tail >= size {
            return self.iqe(st, Iqei::InvalidTail);
        }
        if st.regs.iqh == tail {
            return;
        }
        if !iqa.dw() {
            // Scalable mode has no 128-bit descriptor types (Table 26).
            return self.iqe(st, Iqei::InvalidWidth);
        }
        if tail & 0x10 != 0 {
            return self.iqe(st, Iqei::TailMisaligned);
        }
        let base = iqa.iqa() << 12;
        let features = self.queue_features();
        // At most one lap: the head only moves forward to the tail.
        while st.regs.iqh != tail {
            let mut q = [0u64; 4];
            for (i, w) in q.iter_mut().enumerate() {
                // IQA is the guest's: a base at the top of the space cannot hold the queue.
                let at = base
                    .checked_add(st.regs.iqh + 8 * i as u64)
                    .map(|at| self.mem.load_u64(at));
                match at {
                    Some(Ok(v)) => *w = v,
                    _ => return self.iqe(st, Iqei::FetchError),
                }
            }
            let d = match decode(q, &features) {
                Ok(d) => d,
                Err(why) => return self.iqe(st, why),
            };
            if let Err(stop) = self.execute(st, &d) {
                return stop;
            }
            st.regs.iqh = (st.regs.iqh + 32) % size;
        }
    }

    /// Carries out one valid descriptor; `Err(())` stops the queue (an error was raised).
    fn execute(&self, st: &mut State, d: &Descriptor) -> Result<(), ()> {
        let purges = matches!(
            d,
            Descriptor::ContextCache { .. }
                | Descriptor::PasidCache { .. }
                | Descriptor::Iotlb { .. }
                | Descriptor::PasidIotlb { .. }
        );
        match *d {
            Descriptor::ContextCache {
                granularity,
                sid,
                fm,
                ..
            } => {
                // Scalable mode treats domain-selective as global (§6.5.2.1); device-selective
                // drops the requester's entries, with FM masking function-number bits.
                self.caches
                    .purge_entries(|k, _| granularity != 3 || sid_selected(sid, fm, k.0));
                bump(&self.stats.context_cache);
            }
            Descriptor::PasidCache {
                granularity,
                did,
                pasid,
            } => {
                self.caches.purge_entries(|_, r| match granularity {
                    0 => r.entry.q1.did() == did,
                    1 => r.entry.q1.did() == did && r.pasid == pasid,
                    _ => true,
                });
                bump(&self.stats.pasid_cache);
            }
            Descriptor::Iotlb {
                granularity,
                did,
                addr,
                am,
                ..
            } => {
                // Page-selective invalidation is by address only for second-stage and
                // pass-through translations; first-stage and nested entries of the domain
                // all go (§6.5.2.3, Table 23).
                self.caches.purge_iotlb(|k, e| match granularity {
                    1 => true,
                    2 => k.0 == did,
                    _ => {
                        k.0 == did
                            && (matches!(e.pgtt, Pgtt::FirstStage | Pgtt::Nested)
                                || overlaps(k.2, k.3, addr, am))
                    }
                });
                bump(&self.stats.iotlb);
            }
            Descriptor::PasidIotlb {
                granularity,
                did,
                pasid,
                addr,
                am,
                ..
            } => {
                // PASID-based invalidations leave second-stage and pass-through entries alone
                // (§6.5.2.4, Table 24).
                self.caches.purge_iotlb(|k, e| {
                    k.0 == did
                        && k.1 == pasid
                        && matches!(e.pgtt, Pgtt::FirstStage | Pgtt::Nested)
                        && (granularity == 2 || overlaps(k.2, k.3, addr, am))
                });
                bump(&self.stats.iotlb);
            }
            Descriptor::DevTlb {
                sid, addr, size, ..
            } => {
                let (addr, len) = ats_span(addr, size);
                self.devtlb(
                    st,
                    AtsInvalidation {
                        sid: Rid::from_raw(sid),
                        pasid: None,
                        addr,
                        len,
                        global: false,
                    },
                )?;
            }
            Descriptor::PasidDevTlb {
                sid,
                pasid,
                global,
                addr,
                size,
                ..
            } => {
                let (addr, len) = ats_span(addr, size);
                self.devtlb(
                    st,
                    AtsInvalidation {
                        sid: Rid::from_raw(sid),
                        pasid: if global { None } else { Pasid::new(pasid).ok() },
                        addr,
                        len,
                        global,
                    },
                )?;
            }
            Descriptor::Wait {
                interrupt,
                status_write,
                status_data,
                status_addr,
                ..
            } => {
                // Everything before the wait has completed (processing is in order and
                // device-TLB invalidations finish before the next descriptor).
                if status_write
                    && self
                        .mem
                        .write(status_addr, &status_data.to_le_bytes())
                        .is_err()
                {
                    self.iqe(st, Iqei::ReservedField);
                    return Err(());
                }
                if interrupt && st.regs.ics & ICS_IWC == 0 {
                    st.regs.ics |= ICS_IWC;
                    st.regs.inv_event.fire(self.irq.as_ref());
                }
                bump(&self.stats.waits);
            }
            Descriptor::PageGroupResponse {
                rid,
                pasid,
                code,
                prgi,
            } => {
                self.devices.page_group_response(
                    Rid::from_raw(rid),
                    pasid.and_then(|p| Pasid::new(p).ok()),
                    // reserved codes are refused when the descriptor is validated
                    ResponseCode::from_raw(code).unwrap_or(ResponseCode::ResponseFailure),
                    prgi,
                );
                bump(&self.stats.page_responses);
            }
        }
        if purges {
            self.purged();
        }
        if let Some(b) = self.backend.get() {
            // After the unit's own caches, before the next descriptor: a wait behind this
            // one completes only once the backend has carried the invalidation out.
            if purges {
                b.invalidated(d);
            }
        }
        Ok(())
    }

    fn devtlb(&self, st: &mut State, inv: AtsInvalidation) -> Result<(), ()> {
        match self.devices.ats_invalidate(&inv) {
            Ok(()) => {
                bump(&self.stats.devtlb);
                Ok(())
            }
            Err(AtsInvalidationError::Timeout) => {
                let sid = (inv.sid.raw() as u64) << 32;
                let keep = st.regs.iqercd & !(0xffff << 32);
                st.regs.iqercd = keep | sid;
                self.queue_error(st, Fsts::ITE, st.regs.iqercd & 0xf);
                Err(())
            }
            Err(AtsInvalidationError::BadCompletion) => {
                // ICE: recorded, processing continues (§6.5.2.11).
                let sid = (inv.sid.raw() as u64) << 48;
                st.regs.iqercd = (st.regs.iqercd & !(0xffff << 48)) | sid;
                self.queue_error(st, Fsts::ICE, st.regs.iqercd & 0xf);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use vsva_mem::{PhysMem, PhysMemory};

    use crate::spec::descriptors::encode;
    use crate::spec::registers::{Gcmd, offset};
    use crate::{Vtd, VtdConfig};
    use vsva_pcie::MsiLog;

    #[test]
    fn every_cache_invalidation_descriptor_bumps_the_purge_epoch() {
        // A walk that raced any of them must not fill the caches (cache::Caches).
        let mem = Arc::new(PhysMemory::new(1 << 20).unwrap());
        let vtd = Vtd::new(
            VtdConfig::default(),
            mem.clone(),
            Arc::new(MsiLog::default()),
        );
        let iq = 0x1000;
        vtd.mmio_write(offset::IQA, 8, iq | 1 << 11);
        vtd.mmio_write(offset::GCMD, 4, Gcmd::QIE.bits() as u64);
        let descriptors = [
            [1 | 1 << 4, 0, 0, 0],
            encode::context_cache_device(0x18),
            encode::pasid_cache(1, 3, 5),
            encode::iotlb(3, Some((0x4000, 0)), false),
            encode::pasid_iotlb(3, 5, None, false),
        ];
        for (i, d) in descriptors.iter().enumerate() {
            let at = iq + 32 * i as u64;
            for (j, w) in d.iter().enumerate() {
                mem.store_u64(at + 8 * j as u64, *w).unwrap();
            }
            let before = vtd.caches.epoch();
            vtd.mmio_write(offset::IQT, 8, 32 * (i as u64 + 1));
            assert_eq!(vtd.mmio_read(offset::IQH, 8), 32 * (i as u64 + 1));
            assert!(vtd.caches.epoch() > before, "descriptor {i}: {d:x?}");
        }
    }
}
