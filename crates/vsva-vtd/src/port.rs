//! The unit as the PCIe upstream port of the Functions behind it ([`vsva_pcie::Upstream`]):
//! Translation Requests, Page Request Messages and memory requests reach [`Vtd`].

use std::sync::Arc;

use vsva_mem::{Access, Pasid, PhysMem, Rid};
use vsva_pcie::{
    PageRequest, PageRequestOutcome, Refused, Request, RequestKind, TranslationCompletion, Upstream,
};

use crate::unit::Vtd;

/// The upstream side of a VT-d unit: what a Function's requests reach.
pub struct VtdPort {
    /// The unit.
    pub vtd: Arc<Vtd>,
    /// The memory translated requests reach.
    pub mem: Arc<dyn PhysMem>,
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

impl Upstream for VtdPort {
    fn ats_translate(
        &self,
        rid: Rid,
        pasid: Option<Pasid>,
        addr: u64,
        access: Access,
    ) -> Result<TranslationCompletion, Refused> {
        self.vtd
            .ats_translate(&Request {
                rid,
                pasid,
                addr,
                access,
                kind: RequestKind::Translation,
            })
            .map(|t| t.completion)
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
