//! The two directions between Functions and the IOMMU above them (PCIe Base 6.0 §10): what a
//! Function sends upstream ([`Upstream`]: Translation Requests, Page Request Messages, memory
//! requests), and what the IOMMU sends downstream to the Function a message names
//! ([`Downstream`]: Invalidate Requests, PRG Responses).
//!
//! Every IOMMU model implements [`Upstream`]; a fabric of endpoints implements
//! [`Downstream`]. Neither side names the other's type.

use std::sync::Mutex;

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

/// A page group response as a Function receives it: (Requester ID, PASID, code, PRG index).
pub type GroupResponse = (Rid, Option<Pasid>, ResponseCode, u16);

/// Functions that remember every Invalidate Request and PRG Response reaching them — what a
/// test of an IOMMU model or driver checks (as [`crate::MsiLog`] is for interrupts).
#[derive(Debug, Default)]
pub struct RecordingDevices {
    /// The Invalidate Requests completed, in order.
    pub invalidations: Mutex<Vec<AtsInvalidation>>,
    /// The PRG Responses delivered, in order.
    pub responses: Mutex<Vec<GroupResponse>>,
    /// The Requester IDs that answer Invalidate Requests (`None`: every Function); a request
    /// to another times out and is not recorded.
    pub present: Mutex<Option<Vec<u16>>>,
}

impl RecordingDevices {
    /// Functions of which only `rids` answer Invalidate Requests.
    pub fn answering(rids: Vec<u16>) -> RecordingDevices {
        RecordingDevices {
            present: Mutex::new(Some(rids)),
            ..RecordingDevices::default()
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Downstream for RecordingDevices {
    fn ats_invalidate(&self, inv: &AtsInvalidation) -> Result<(), AtsInvalidationError> {
        if lock(&self.present)
            .as_ref()
            .is_some_and(|p| !p.contains(&inv.sid.raw()))
        {
            return Err(AtsInvalidationError::Timeout);
        }
        lock(&self.invalidations).push(*inv);
        Ok(())
    }

    fn page_group_response(&self, rid: Rid, pasid: Option<Pasid>, code: ResponseCode, prgi: u16) {
        lock(&self.responses).push((rid, pasid, code, prgi));
    }
}

/// A stalled transaction of a platform master, as its IOMMU named it (for an SMMU, the
/// StreamID and STAG of IHI 0070 §3.12.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StallToken {
    /// The master's stream (its StreamID).
    pub stream: u32,
    /// The tag the IOMMU holds the transaction under.
    pub tag: u16,
}

/// What a platform master's DMA came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformDma {
    /// Translated: the physical address it reaches.
    Done(u64),
    /// Held by the IOMMU until software resumes or terminates it: the master waits and asks
    /// again with [`PlatformUpstream::poll_stalled`].
    Stalled(StallToken),
    /// Terminated with an abort (a fault that could not stall, or a stall software ended
    /// with an abort).
    Refused,
}

/// What a platform (non-PCIe) master sends upstream: memory requests with untranslated
/// addresses, each tagged with its stream and substream (on Arm, the StreamID and
/// SubstreamID the interconnect gives it), which may stall in the IOMMU.
///
/// No ATS, no PRI: a master of an SoC cannot cache translations nor ask for pages; when a
/// translation faults, the IOMMU holds the transaction (stall) and reports it to software,
/// which fixes the fault and resumes it. The master only sees its transaction complete late.
/// This lives beside [`Upstream`] because it is the same kind of thing — the port an IOMMU
/// model offers its requesters — and the IOMMU models depend on this crate, not on any
/// device's.
pub trait PlatformUpstream: Send + Sync {
    /// A memory request of `stream` (with `substream`, a PASID, if any) to the untranslated
    /// `addr`. `stallable`: the master can wait for a stalled transaction (firmware's
    /// `dma-can-stall`).
    fn dma(
        &self,
        stream: u32,
        substream: Option<Pasid>,
        addr: u64,
        access: Access,
        stallable: bool,
    ) -> PlatformDma;

    /// The outcome of the stalled transaction `token`: [`PlatformDma::Stalled`] while
    /// software has not acted (with a new token if a retry stalled again), else the retried
    /// transaction's result or [`PlatformDma::Refused`] when it was aborted. Never blocks.
    fn poll_stalled(&self, token: StallToken) -> PlatformDma;

    /// The memory requests reach.
    fn memory(&self) -> &dyn PhysMem;

    /// Runs `f` — translations by [`dma`](Self::dma) and the accesses to the addresses they
    /// gave — as requests in flight: an invalidation the IOMMU completes after `in_flight`
    /// began waits until `f` has returned, so no access uses a translation after the
    /// invalidation that removed it has completed (IHI 0070 §4.7.3, CMD_SYNC). A master runs
    /// each piece of work (translate, then access) inside one call, and never waits for
    /// software inside it.
    fn in_flight(&self, f: &mut dyn FnMut());
}
