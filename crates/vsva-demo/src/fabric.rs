//! The PCIe fabric below the IOMMU, downstream: ATS invalidations and page group responses
//! reach the demo device they name ([`vsva_pcie::Downstream`]). Upstream, a device's
//! translation requests, page requests and DMAs reach the IOMMU through its
//! [`vsva_pcie::Upstream`] port.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use vsva_mem::{Pasid, Rid};
use vsva_pcie::{AtsInvalidation, AtsInvalidationError, Downstream, ResponseCode};

use crate::device::DemoDevice;

/// Devices by requester ID, for the downstream direction.
#[derive(Default)]
pub struct Fabric {
    devices: RwLock<HashMap<u16, Arc<DemoDevice>>>,
}

impl Fabric {
    /// Plugs a device in.
    pub fn plug(&self, dev: Arc<DemoDevice>) {
        self.devices
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(dev.rid().raw(), dev);
    }

    fn get(&self, rid: Rid) -> Option<Arc<DemoDevice>> {
        self.devices
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&rid.raw())
            .cloned()
    }
}

impl Downstream for Fabric {
    fn ats_invalidate(&self, inv: &AtsInvalidation) -> Result<(), AtsInvalidationError> {
        match self.get(inv.sid) {
            Some(d) => {
                d.ats_invalidate(inv);
                Ok(())
            }
            None => Err(AtsInvalidationError::Timeout),
        }
    }

    fn page_group_response(&self, rid: Rid, pasid: Option<Pasid>, code: ResponseCode, prgi: u16) {
        if let Some(d) = self.get(rid) {
            d.page_response(pasid, prgi, code);
        }
    }
}
