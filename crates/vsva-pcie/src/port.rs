//! The two directions between Functions and the IOMMU above them (PCIe Base 6.0 §10): what a
//! Function sends upstream ([`Upstream`]: Translation Requests, Page Request Messages, memory
//! requests), and what the IOMMU sends downstream to the Function a message names
//! ([`Downstream`]: Invalidate Requests, PRG Responses).
//!
//! Every IOMMU model implements [`Upstream`]; a fabric of endpoints implements
//! [`Downstream`]. Neither side names the other's type.

use vsva_mem::{Access, Pasid, PhysMem, Rid};

use crate::pri::ResponseCode;
use crate::transaction::{
    AtsInvalidation, AtsInvalidationError, PageRequest, PageRequestOutcome, TranslationCompletion,
};

/// The IOMMU refused a request (the completion status Unsupported Request or Completer
/// Abort, §2.2.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the IOMMU refused the request")]
pub struct Refused;

/// What a Function sends upstream, to the IOMMU translating its requests.
pub trait Upstream: Send + Sync {
    /// An ATS Translation Request (§10.2.2).
    ///
    /// # Errors
    /// [`Refused`] when the IOMMU refused it (Unsupported Request / Completer Abort).
    fn ats_translate(
        &self,
        rid: Rid,
        pasid: Option<Pasid>,
        addr: u64,
        access: Access,
    ) -> Result<TranslationCompletion, Refused>;

    /// A Page Request Message (§10.4.1).
    fn page_request(&self, pr: &PageRequest) -> PageRequestOutcome;

    /// A memory request with a translated address (AT = 10b): the physical address it may
    /// use.
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

    /// A memory request with an untranslated address (AT = 00b): the physical address it
    /// reaches.
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

    /// The memory requests reach.
    fn memory(&self) -> &dyn PhysMem;
}

/// What the IOMMU sends downstream, to the Functions behind it.
pub trait Downstream: Send + Sync {
    /// Sends an ATS Invalidate Request (§10.3.1) and returns once the Function's Invalidate
    /// Completion (§10.3.2) has arrived (the Function has dropped the range from its ATC and
    /// issued every access that used it).
    ///
    /// # Errors
    /// [`AtsInvalidationError`] when no valid completion arrives.
    fn ats_invalidate(&self, inv: &AtsInvalidation) -> Result<(), AtsInvalidationError>;

    /// Delivers a PRG Response Message (§10.4.2) to the Function `rid`.
    fn page_group_response(&self, rid: Rid, pasid: Option<Pasid>, code: ResponseCode, prgi: u16);
}

/// No Functions: Invalidate Requests time out, PRG Responses go nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoDevices;

impl Downstream for NoDevices {
    fn ats_invalidate(&self, _: &AtsInvalidation) -> Result<(), AtsInvalidationError> {
        Err(AtsInvalidationError::Timeout)
    }

    fn page_group_response(&self, _: Rid, _: Option<Pasid>, _: ResponseCode, _: u16) {}
}
