//! The Functions below the IOMMU as the VMM sees them ([`vsva_pcie::Downstream`]): ATS
//! Invalidate Requests reach every [`IommuPort`] of the Requester ID they name; everything
//! else goes on to the Functions the VMM had already (`next`).
//!
//! An IOMMU model is built with its Downstream once (`Vtd::with_devices`,
//! `Smmuv3::with_devices`), so a VMM builds a [`PortFabric`] first, gives it to the unit, and
//! opens its ports on it afterwards.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};

use vsva_mem::{Pasid, Rid};
use vsva_pcie::{AtsInvalidation, AtsInvalidationError, Downstream, ResponseCode, Upstream};

use crate::port::{IommuPort, Shared};

/// The ports a VMM opened, by Requester ID, in front of the Functions it had before.
pub struct PortFabric {
    ports: RwLock<HashMap<u16, Vec<Weak<Shared>>>>,
    next: Arc<dyn Downstream>,
}

impl std::fmt::Debug for PortFabric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ports = self.ports.read().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("PortFabric")
            .field("requesters", &ports.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl PortFabric {
    /// A fabric whose Requester IDs without a port are `next`'s (e.g.
    /// [`vsva_pcie::NoDevices`], or the VMM's emulated endpoints).
    pub fn new(next: Arc<dyn Downstream>) -> PortFabric {
        PortFabric {
            ports: RwLock::new(HashMap::new()),
            next,
        }
    }

    /// Opens the port of (`rid`, `pasid`) on `upstream` (the IOMMU unit's port:
    /// `vsva_vtd::VtdPort`, `vsva_smmuv3::Smmuv3Port`). `pasid` `None` is the requester's
    /// requests without PASID. The port receives the Invalidate Requests for `rid` for as long
    /// as one of its clones lives.
    ///
    /// The IOMMU must treat `rid` as an ATS-capable Function (with the IOMMU core, `DeviceCaps
    /// { ats: true, .. }` when the device is added): the port caches what Translation
    /// Requests return, and only a device-TLB invalidation tells it they changed.
    pub fn open(&self, upstream: Arc<dyn Upstream>, rid: Rid, pasid: Option<Pasid>) -> IommuPort {
        let port = IommuPort::new(upstream, rid, pasid);
        let mut ports = self.ports.write().unwrap_or_else(|e| e.into_inner());
        let list = ports.entry(rid.raw()).or_default();
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(port.shared()));
        port
    }

    /// The live ports of `rid`, or `None` when it has none (it is `next`'s).
    fn ports_of(&self, rid: Rid) -> Option<Vec<Arc<Shared>>> {
        let ports = self.ports.read().unwrap_or_else(|e| e.into_inner());
        let live: Vec<Arc<Shared>> = ports
            .get(&rid.raw())?
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        (!live.is_empty()).then_some(live)
    }
}

impl Downstream for PortFabric {
    /// Every port of the Function completes it (PCIe Base 6.0 §10.3.1: once each has dropped
    /// the range and no access that used it is in progress); a Function without ports is
    /// `next`'s.
    fn ats_invalidate(&self, inv: &AtsInvalidation) -> Result<(), AtsInvalidationError> {
        match self.ports_of(inv.sid) {
            Some(ports) => {
                for p in ports {
                    p.invalidate(inv);
                }
                Ok(())
            }
            None => self.next.ats_invalidate(inv),
        }
    }

    /// A port sends no Page Requests, so PRG Responses are `next`'s.
    fn page_group_response(&self, rid: Rid, pasid: Option<Pasid>, code: ResponseCode, prgi: u16) {
        self.next.page_group_response(rid, pasid, code, prgi);
    }
}
