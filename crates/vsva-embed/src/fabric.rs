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

#[cfg(test)]
mod tests {
    use vsva_pcie::{NoDevices, RecordingDevices};

    use super::*;

    /// An IOMMU that is never asked anything here.
    fn upstream() -> Arc<dyn Upstream> {
        struct Silent(vsva_mem::PhysMemory);
        impl Upstream for Silent {
            fn ats_translate(
                &self,
                _: Rid,
                _: Option<Pasid>,
                _: u64,
                _: vsva_mem::Access,
            ) -> Result<vsva_pcie::TranslationCompletion, vsva_pcie::Refused> {
                Err(vsva_pcie::Refused)
            }
            fn page_request(&self, _: &vsva_pcie::PageRequest) -> vsva_pcie::PageRequestOutcome {
                vsva_pcie::PageRequestOutcome::Dropped
            }
            fn dma(
                &self,
                _: Rid,
                _: Option<Pasid>,
                _: u64,
                _: vsva_mem::Access,
            ) -> Result<u64, vsva_pcie::Refused> {
                Err(vsva_pcie::Refused)
            }
            fn dma_untranslated(
                &self,
                _: Rid,
                _: Option<Pasid>,
                _: u64,
                _: vsva_mem::Access,
            ) -> Result<u64, vsva_pcie::Refused> {
                Err(vsva_pcie::Refused)
            }
            fn memory(&self) -> &dyn vsva_mem::PhysMem {
                &self.0
            }
        }
        Arc::new(Silent(vsva_mem::PhysMemory::new(4096).unwrap()))
    }

    fn inv(rid: u16) -> AtsInvalidation {
        AtsInvalidation {
            sid: Rid::from_raw(rid),
            pasid: None,
            addr: 0,
            len: 4096,
            global: false,
        }
    }

    #[test]
    fn invalidations_reach_every_port_of_their_requester_and_others_go_on() {
        let next = Arc::new(RecordingDevices::default());
        let fabric = PortFabric::new(next.clone());
        let a = fabric.open(upstream(), Rid::from_raw(0x18), None);
        let b = fabric.open(
            upstream(),
            Rid::from_raw(0x18),
            Some(Pasid::new(3).unwrap()),
        );
        let c = fabric.open(upstream(), Rid::from_raw(0x20), None);
        assert_eq!(fabric.ats_invalidate(&inv(0x18)), Ok(()));
        assert_eq!(
            (
                a.stats().invalidations,
                b.stats().invalidations,
                c.stats().invalidations
            ),
            (1, 1, 0)
        );
        assert!(next.invalidations.lock().unwrap().is_empty());
        assert_eq!(fabric.ats_invalidate(&inv(0x28)), Ok(()));
        assert_eq!(*next.invalidations.lock().unwrap(), vec![inv(0x28)]);
        fabric.page_group_response(Rid::from_raw(0x18), None, ResponseCode::Success, 7);
        assert_eq!(next.responses.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_requester_whose_ports_are_all_dropped_is_nexts_again() {
        let fabric = PortFabric::new(Arc::new(NoDevices));
        let a = fabric.open(upstream(), Rid::from_raw(0x18), None);
        assert_eq!(fabric.ats_invalidate(&inv(0x18)), Ok(()));
        drop(a);
        assert_eq!(
            fabric.ats_invalidate(&inv(0x18)),
            Err(AtsInvalidationError::Timeout),
            "no Function answers"
        );
    }
}
