//! The PCIe fabric between the demo devices and the IOMMU: upstream, a device's translation
//! requests, page requests and DMAs reach the IOMMU; downstream, ATS invalidations and page
//! group responses reach the device they name.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use vsva_mem::{Access, Pasid, PhysMem, Rid};
use vsva_vtd::{
    AtsCompletion, AtsInvalidation, AtsInvalidationError, Devices, PageRequest, PageRequestOutcome,
    Request, RequestKind, ResponseCode, Vtd,
};

use crate::device::DemoDevice;

/// The IOMMU refused a request (the PCIe completion status Unsupported Request or
/// Completer Abort).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the IOMMU refused the request")]
pub struct Refused;

/// What a device sends upstream.
pub trait Upstream: Send + Sync {
    /// An ATS translation request.
    ///
    /// # Errors
    /// [`Refused`] when the IOMMU refused it (Unsupported Request / Completer Abort).
    fn ats_translate(
        &self,
        rid: Rid,
        pasid: Option<Pasid>,
        addr: u64,
        access: Access,
    ) -> Result<AtsCompletion, Refused>;

    /// A page request message.
    fn page_request(&self, pr: &PageRequest) -> PageRequestOutcome;

    /// A DMA with a translated address: the physical address it may use.
    ///
    /// # Errors
    /// [`Refused`] when the IOMMU refused it.
    fn dma(
        &self,
        rid: Rid,
        pasid: Option<Pasid>,
        addr: u64,
        access: Access,
    ) -> Result<u64, Refused>;

    /// A DMA with an untranslated address (no ATS): the physical address it reaches.
    ///
    /// # Errors
    /// [`Refused`] when the IOMMU refused it.
    fn dma_untranslated(
        &self,
        rid: Rid,
        pasid: Option<Pasid>,
        addr: u64,
        access: Access,
    ) -> Result<u64, Refused>;

    /// The memory DMAs reach.
    fn memory(&self) -> &dyn PhysMem;
}

/// The upstream side of a VT-d unit.
pub struct VtdPort {
    /// The unit.
    pub vtd: Arc<Vtd>,
    /// Host memory.
    pub mem: Arc<dyn PhysMem>,
}

impl Upstream for VtdPort {
    fn ats_translate(
        &self,
        rid: Rid,
        pasid: Option<Pasid>,
        addr: u64,
        access: Access,
    ) -> Result<AtsCompletion, Refused> {
        self.vtd
            .ats_translate(&Request {
                rid,
                pasid,
                addr,
                access,
                kind: RequestKind::Translation,
            })
            .map_err(|_| Refused)
    }

    fn page_request(&self, pr: &PageRequest) -> PageRequestOutcome {
        self.vtd.page_request(pr)
    }

    fn dma(
        &self,
        rid: Rid,
        pasid: Option<Pasid>,
        addr: u64,
        access: Access,
    ) -> Result<u64, Refused> {
        self.translate(rid, pasid, addr, access, RequestKind::Translated)
    }

    fn dma_untranslated(
        &self,
        rid: Rid,
        pasid: Option<Pasid>,
        addr: u64,
        access: Access,
    ) -> Result<u64, Refused> {
        self.translate(rid, pasid, addr, access, RequestKind::Untranslated)
    }

    fn memory(&self) -> &dyn PhysMem {
        self.mem.as_ref()
    }
}

impl VtdPort {
    fn translate(
        &self,
        rid: Rid,
        pasid: Option<Pasid>,
        addr: u64,
        access: Access,
        kind: RequestKind,
    ) -> Result<u64, Refused> {
        self.vtd
            .translate(&Request {
                rid,
                pasid,
                addr,
                access,
                kind,
            })
            .map(|t| t.addr)
            .map_err(|_| Refused)
    }
}

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

impl Devices for Fabric {
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
