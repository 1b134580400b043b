//! The SMMU as the PCIe upstream port of the Functions behind it ([`vsva_pcie::Upstream`]):
//! the Requester ID is the StreamID and the PASID the SubstreamID (§3.3.1 for PCIe);
//! memory requests are translated ([`Smmuv3::translate`], never stalled: a PCIe Function
//! cannot wait for CMD_RESUME), Translation Requests answered ([`Smmuv3::ats_translate`]),
//! Page Request Messages queued ([`Smmuv3::page_request`]). PRG Responses and ATS Invalidate
//! Requests go the other way through [`Smmuv3::with_devices`]'s [`vsva_pcie::Downstream`].
//!
//! The same port serves platform masters ([`vsva_pcie::PlatformUpstream`]): StreamID
//! and SubstreamID as the interconnect gives them, and transactions that may stall
//! (§3.12.2), polled until software's CMD_RESUME or CMD_STALL_TERM.
//!
//! A transaction terminated with RAZ/WI (CD.A = 0) is refused here too: the port's
//! interface has no way to say "reads return zero".

use std::sync::Arc;

use vsva_mem::{Access, Pasid, PhysMem, Rid};
use vsva_pcie::{PageRequest, PageRequestOutcome, Refused, TranslationCompletion, Upstream};
use vsva_pcie::{PlatformDma, StallToken};

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

/// A platform master behind the SMMU ([`vsva_pcie::PlatformUpstream`]): the stream is
/// the StreamID, the substream the SubstreamID; a stallable transaction that faults under a
/// CD with S = 1 (or STE.S2S) stalls (§3.12.2) and is polled with
/// [`Smmuv3::poll_stalled`]. RAZ/WI terminations are refused, as for PCIe requests.
impl vsva_pcie::PlatformUpstream for Smmuv3Port {
    fn dma(
        &self,
        stream: u32,
        substream: Option<Pasid>,
        addr: u64,
        access: Access,
        stallable: bool,
    ) -> PlatformDma {
        platform_outcome(self.smmu.translate(&Transaction {
            sid: stream,
            ssid: substream.map(|p| p.raw()),
            addr,
            access,
            stallable,
        }))
    }

    fn poll_stalled(&self, token: StallToken) -> PlatformDma {
        let tag = crate::translate::StallTag {
            sid: token.stream,
            stag: token.tag,
        };
        match self.smmu.poll_stalled(tag) {
            None => PlatformDma::Stalled(token),
            Some(r) => platform_outcome(r),
        }
    }

    fn memory(&self) -> &dyn PhysMem {
        self.mem.as_ref()
    }

    /// Counted with the walks in flight, which every CMD_SYNC drains.
    fn in_flight(&self, f: &mut dyn FnMut()) {
        self.smmu.in_flight(f);
    }
}

fn platform_outcome(
    r: Result<crate::translate::Translated, crate::translate::Blocked>,
) -> PlatformDma {
    match r {
        Ok(t) => PlatformDma::Done(t.addr),
        Err(crate::translate::Blocked::Stalled(tag)) => PlatformDma::Stalled(StallToken {
            stream: tag.sid,
            tag: tag.stag,
        }),
        Err(_) => PlatformDma::Refused,
    }
}
