//! The unit's view of the endpoints behind it: where device-TLB invalidations (as ATS
//! invalidation requests, PCIe Base 6.0 §10.3) and page group responses (§10.4.2) go.

use vsva_mem::{Pasid, Rid};

/// Page group response codes (VT-d 4.1 §7.6.1 Table 32) are the PCIe PRG Response Message's
/// (PCIe Base 6.0 §10.4.2.1): the unit passes the descriptor's 4-bit field on as it is.
pub use vsva_pcie::ResponseCode;

/// An ATS invalidation request for one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtsInvalidation {
    /// Device.
    pub sid: Rid,
    /// PASID (None: requests without PASID, or all PASIDs when `global`).
    pub pasid: Option<Pasid>,
    /// Start of the range.
    pub addr: u64,
    /// Length of the range in bytes (a power of two, naturally aligned).
    pub len: u64,
    /// Global invalidate: every PASID.
    pub global: bool,
}

/// Why a device-TLB invalidation did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AtsInvalidationError {
    /// No completion arrived (no such device, or it does not answer): ITE.
    #[error("ATS invalidation timed out")]
    Timeout,
    /// A completion arrived that does not match (bad ITag or SID): ICE.
    #[error("invalid ATS invalidation completion")]
    BadCompletion,
}

/// The endpoints behind the unit.
pub trait Devices: Send + Sync {
    /// Sends an ATS invalidation request and returns once the device's invalidation
    /// completion has arrived (the device has dropped the range from its ATC).
    ///
    /// # Errors
    /// [`AtsInvalidationError`] when no valid completion arrives.
    fn ats_invalidate(&self, inv: &AtsInvalidation) -> Result<(), AtsInvalidationError>;

    /// Delivers a page group response to the device.
    fn page_group_response(&self, rid: Rid, pasid: Option<Pasid>, code: ResponseCode, prgi: u16);
}

/// No endpoints: ATS invalidations time out, responses go nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoDevices;

impl Devices for NoDevices {
    fn ats_invalidate(&self, _: &AtsInvalidation) -> Result<(), AtsInvalidationError> {
        Err(AtsInvalidationError::Timeout)
    }

    fn page_group_response(&self, _: Rid, _: Option<Pasid>, _: ResponseCode, _: u16) {}
}
