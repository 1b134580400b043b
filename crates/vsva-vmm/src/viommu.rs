//! The guest-visible vIOMMU's backend: the VT-d model in its virtual role (DESIGN.md, "one
//! model, two roles"). The guest's driver programs it through registers and memory exactly as
//! it programs a physical unit; what must reach the host leaves it here:
//!
//! * [`VirtualBackend::invalidated`] — context-cache and PASID-cache invalidations make the
//!   VMM re-read the guest's PASID entries and bind or unbind nested HWPTs; PASID-based IOTLB
//!   invalidations become `IOMMU_HWPT_INVALIDATE` (the unit calls this before the wait
//!   descriptor behind the invalidation completes, §6.5.2.9, so the guest's wait covers the
//!   host's work). IOTLB invalidations (type 2) concern only the guest's pass-through
//!   entries, whose stage 2 the host owns: nothing to do.
//! * [`VirtualBackend::translation_changed`] — the guest clearing GCMD.TE unbinds every
//!   nested HWPT on the host (its unit now blocks requests with PASID, §3.2), setting it
//!   again or latching a root table (SRTP) re-reads every device's entries; both before the
//!   guest's GCMD write returns (QEMU switches address spaces on the same writes).
//! * [`Downstream::ats_invalidate`] — the guest's device-TLB invalidations become
//!   `IOMMU_HWPT_INVALIDATE` on the PASID's nested HWPT (the host invalidates the device's
//!   ATC with it) and complete when it returns.
//! * [`Downstream::page_group_response`] — the guest's page group responses become fault-queue
//!   writes.

use std::sync::{Arc, Weak};

use vsva_mem::{Pasid, Rid};
use vsva_pcie::{AtsInvalidation, AtsInvalidationError, Downstream, ResponseCode};
use vsva_vtd::VirtualBackend;
use vsva_vtd::spec::descriptors::{Descriptor, am_block, sid_selected};

use crate::vmm::Vmm;

/// What the guest's vIOMMU reports to its VMM.
pub struct Relay {
    vmm: Weak<Vmm>,
}

impl Relay {
    /// A relay to `vmm`.
    pub fn new(vmm: &Arc<Vmm>) -> Arc<Relay> {
        Arc::new(Relay {
            vmm: Arc::downgrade(vmm),
        })
    }
}

impl VirtualBackend for Relay {
    fn invalidated(&self, d: &Descriptor) {
        let Some(vmm) = self.vmm.upgrade() else {
            return;
        };
        let Some(unit) = vmm.unit() else {
            return;
        };
        match *d {
            Descriptor::ContextCache {
                granularity,
                sid,
                fm,
                ..
            } => {
                for rid in vmm.guest_rids() {
                    if granularity != 3 || sid_selected(sid, fm, rid.raw()) {
                        vmm.sync_device(&unit, rid);
                    }
                }
            }
            Descriptor::PasidCache {
                granularity, pasid, ..
            } => {
                for rid in vmm.guest_rids() {
                    if granularity == 1 {
                        vmm.sync_entry(&unit, rid, Some(pasid));
                    } else {
                        vmm.sync_device(&unit, rid);
                    }
                }
            }
            Descriptor::PasidIotlb {
                granularity,
                did,
                pasid,
                addr,
                am,
                ih,
            } => {
                // Page-selective: the naturally aligned 2^AM pages holding ADDR (§6.5.2.4);
                // from 2^52 pages on, and PASID-selective, everything.
                let (addr, len) = match am_block(addr, am) {
                    Some(block) if granularity == 3 => block,
                    _ => (0, u64::MAX),
                };
                vmm.invalidate(None, pasid, Some(did), addr, len, ih);
            }
            _ => {}
        }
    }

    fn translation_changed(&self, enabled: bool) {
        let Some(vmm) = self.vmm.upgrade() else {
            return;
        };
        let Some(unit) = vmm.unit() else {
            return;
        };
        vmm.translation_changed(&unit, enabled);
    }
}

impl Downstream for Relay {
    fn ats_invalidate(&self, inv: &AtsInvalidation) -> Result<(), AtsInvalidationError> {
        let vmm = self.vmm.upgrade().ok_or(AtsInvalidationError::Timeout)?;
        if !vmm.guest_rids().contains(&inv.sid) {
            // no such device behind the vIOMMU: no completion comes (ITE)
            return Err(AtsInvalidationError::Timeout);
        }
        match (inv.global, inv.pasid) {
            (true, _) => {
                for (rid, pasid, _) in vmm.bindings() {
                    if rid == inv.sid {
                        vmm.invalidate(Some(rid), pasid, None, 0, u64::MAX, false);
                    }
                }
            }
            (false, Some(pasid)) => {
                vmm.invalidate(Some(inv.sid), pasid.raw(), None, inv.addr, inv.len, false);
            }
            // Requests without PASID translate through the stage 2 the host keeps itself.
            (false, None) => {}
        }
        Ok(())
    }

    fn page_group_response(&self, rid: Rid, pasid: Option<Pasid>, code: ResponseCode, prgi: u16) {
        if let Some(vmm) = self.vmm.upgrade() {
            vmm.page_response(rid, pasid, code, prgi);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_masks_follow_the_context_cache_descriptor() {
        let rid = Rid::from_bdf(0, 3, 5).unwrap();
        let sid = |f| Rid::from_bdf(0, 3, f).unwrap().raw();
        assert!(sid_selected(sid(5), 0, rid.raw()));
        assert!(!sid_selected(sid(1), 0, rid.raw()));
        assert!(
            sid_selected(sid(1), 1, rid.raw()),
            "FM 1 masks function bit 2"
        );
        assert!(!sid_selected(sid(4), 1, rid.raw()));
        assert!(sid_selected(sid(7), 2, rid.raw()), "FM 2 masks bits 2:1");
        assert!(sid_selected(sid(0), 3, rid.raw()), "FM 3 masks bits 2:0");
        assert!(!sid_selected(
            Rid::from_bdf(0, 4, 5).unwrap().raw(),
            3,
            rid.raw()
        ));
    }
}
