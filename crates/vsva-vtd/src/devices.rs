//! The unit's view of the endpoints behind it: where device-TLB invalidations (as ATS
//! invalidation requests, PCIe Base 6.0 §10.3) and page group responses (§10.4.2) go.

use vsva_mem::{Pasid, Rid};

/// Page group response codes (VT-d 4.1 §7.6.1 Table 32; PCIe PRG Response Message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseCode {
    /// 0h: the pages are resident; retry the translation.
    Success,
    /// 1h: the request was invalid; do not retry.
    InvalidRequest,
    /// Fh: the page request interface failed; the device disables PRI.
    ResponseFailure,
}

impl ResponseCode {
    /// Decodes the 4-bit field (reserved values are refused by descriptor validation).
    pub fn from_field(v: u8) -> ResponseCode {
        match v {
            0 => ResponseCode::Success,
            1 => ResponseCode::InvalidRequest,
            _ => ResponseCode::ResponseFailure,
        }
    }

    /// The 4-bit encoding.
    pub fn field(self) -> u8 {
        match self {
            ResponseCode::Success => 0,
            ResponseCode::InvalidRequest => 1,
            ResponseCode::ResponseFailure => 0xf,
        }
    }
}

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

/// The range an ATS invalidation with the S bit names: with S set, the lowest clear bit of
/// the address above bit 11 gives the size (PCIe Base 6.0 §10.3.1 Table 10-9):
/// `xxx0` = 8 KiB, `xx01` = 16 KiB, ... Returns (start, length).
pub fn ats_range(addr: u64, size: bool) -> (u64, u64) {
    let page = addr & !0xfff;
    if !size {
        return (page, 4096);
    }
    let ones = (page >> 12).trailing_ones();
    if ones >= 51 {
        // 2^64 bytes or more: everything.
        return (0, u64::MAX);
    }
    let len = 8192u64 << ones;
    (page & !(len - 1), len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ats_size_encoding() {
        assert_eq!(ats_range(0x1234_5000, false), (0x1234_5000, 4096));
        assert_eq!(ats_range(0x1234_4000, true), (0x1234_4000, 8192));
        assert_eq!(ats_range(0x1234_5000, true), (0x1234_4000, 16384));
        // 2 MiB at 0x20_0000: bits 19:12 set, bit 20 clear
        assert_eq!(ats_range(0x20_0000 | 0xf_f000, true), (0x20_0000, 2 << 20));
        assert_eq!(ats_range(!0xfff, true), (0, u64::MAX));
        assert_eq!(ats_range((u64::MAX >> 1) & !0xfff, true), (0, u64::MAX));
        assert_eq!(ats_range((u64::MAX >> 2) & !0xfff, true), (0, 1 << 63));
    }
}
