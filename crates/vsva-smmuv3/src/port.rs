//! The SMMU as the PCIe upstream port of the Functions behind it ([`vsva_pcie::Upstream`]):
//! the Requester ID is the StreamID and the PASID the SubstreamID (§3.3.1 for PCIe);
//! memory requests are translated ([`Smmuv3::translate`], never stalled: a PCIe Function
//! cannot wait for CMD_RESUME), Translation Requests answered ([`Smmuv3::ats_translate`]),
//! Page Request Messages queued ([`Smmuv3::page_request`]). PRG Responses and ATS Invalidate
//! Requests go the other way through [`Smmuv3::with_devices`]'s [`vsva_pcie::Downstream`].
//!
//! A transaction terminated with RAZ/WI (CD.A = 0) is refused here too: the port's
//! interface has no way to say "reads return zero".

use std::sync::Arc;

use vsva_mem::{Access, Pasid, PhysMem, Rid};
use vsva_pcie::{PageRequest, PageRequestOutcome, Refused, TranslationCompletion, Upstream};

use crate::translate::Transaction;
use crate::unit::Smmuv3;

/// The upstream side of an SMMU: what a Function's requests reach.
pub struct Smmuv3Port {
    /// The SMMU.
    pub smmu: Arc<Smmuv3>,
    /// The memory translated requests reach.
    pub mem: Arc<dyn PhysMem>,
}

impl Upstream for Smmuv3Port {
    fn ats_translate(
        &self,
        rid: Rid,
        pasid: Option<Pasid>,
        addr: u64,
        access: Access,
    ) -> Result<TranslationCompletion, Refused> {
        self.smmu
            .ats_translate(rid.raw() as u32, pasid.map(|p| p.raw()), addr, access)
            .map_err(|_| Refused)
    }

    fn page_request(&self, pr: &PageRequest) -> PageRequestOutcome {
        self.smmu.page_request(pr)
    }

    fn dma(
        &self,
        rid: Rid,
        pasid: Option<Pasid>,
        addr: u64,
        access: Access,
    ) -> Result<u64, Refused> {
        self.smmu
            .translated(rid.raw() as u32, pasid.map(|p| p.raw()), addr, access)
            .map_err(|_| Refused)
    }

    fn dma_untranslated(
        &self,
        rid: Rid,
        pasid: Option<Pasid>,
        addr: u64,
        access: Access,
    ) -> Result<u64, Refused> {
        self.smmu
            .translate(&Transaction {
                sid: rid.raw() as u32,
                ssid: pasid.map(|p| p.raw()),
                addr,
                access,
                stallable: false,
            })
            .map(|t| t.addr)
            .map_err(|_| Refused)
    }

    fn memory(&self) -> &dyn PhysMem {
        self.mem.as_ref()
    }
}
