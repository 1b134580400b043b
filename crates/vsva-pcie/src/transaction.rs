//! The transactions between a Function and the IOMMU above it (PCIe Base 6.0): memory requests
//! with their PASID TLP prefix and AT field, ATS Translation Requests and Completions, ATS
//! Invalidate Requests and Completions, and Page Request Messages.
//!
//! These are the words every endpoint and every IOMMU model share; a vendor's IOMMU keeps its
//! own results (faults, domains, queue descriptors) to itself.
//!
//! | type | spec |
//! |---|---|
//! | [`RequestKind`] | §10.2.1 Address Type (AT) field |
//! | [`Request`] | a Memory Request with the PASID TLP prefix (§6.20) as the IOMMU sees it |
//! | [`TranslationCompletion`] | §10.2.3 Translation Completion data entry |
//! | [`AtsInvalidation`], [`AtsInvalidationError`] | §10.3.1 Invalidate Request, §10.3.2 Invalidate Completion |
//! | [`PageRequest`], [`PageRequestOutcome`] | §10.4.1 Page Request Message |
//! | [`crate::ResponseCode`] | §10.4.2 PRG Response Message |

use vsva_mem::{Access, PageSize, Pasid, Rid};

use crate::pri::PageRequestMsg;

/// The address type of a memory request (AT field, PCIe Base 6.0 §10.2.1, Table 10-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// AT = 00b: an ordinary DMA with an untranslated address.
    Untranslated,
    /// AT = 01b: an ATS Translation Request (the Function asks for a translation to cache).
    Translation,
    /// AT = 10b: a DMA with an address the Function translated with ATS.
    Translated,
}

impl RequestKind {
    /// The 2-bit AT field.
    pub const fn at(self) -> u8 {
        match self {
            RequestKind::Untranslated => 0b00,
            RequestKind::Translation => 0b01,
            RequestKind::Translated => 0b10,
        }
    }

    /// Decodes an AT field; `None` for the reserved 11b (and values above 2 bits).
    pub const fn from_at(at: u8) -> Option<RequestKind> {
        match at {
            0b00 => Some(RequestKind::Untranslated),
            0b01 => Some(RequestKind::Translation),
            0b10 => Some(RequestKind::Translated),
            _ => None,
        }
    }
}

/// A memory request as the IOMMU sees it: the Requester ID and address of the TLP header, its
/// AT field, and its PASID TLP prefix (§6.20.2), if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Requester ID.
    pub rid: Rid,
    /// PASID of the PASID TLP prefix, if any.
    pub pasid: Option<Pasid>,
    /// The address.
    pub addr: u64,
    /// Read/write (the request's type), and the PASID prefix's Execute Requested
    /// ([`Access::EXEC`]) and Privileged Mode Requested ([`Access::PRIV`]) bits.
    pub access: Access,
    /// Address type (AT).
    pub kind: RequestKind,
}

/// A Translation Completion's data entry (§10.2.3): the translation of the range containing
/// the requested address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TranslationCompletion {
    /// Translated address of the start of the range.
    pub addr: u64,
    /// Size of the range (the S bit's encoding of a naturally aligned power of two).
    pub size: PageSize,
    /// R: reads allowed.
    pub read: bool,
    /// W: writes allowed.
    pub write: bool,
    /// Exe: execute allowed (meaningful with PASID).
    pub exec: bool,
    /// Priv: the translation is for privileged-mode accesses.
    pub privileged: bool,
}

impl TranslationCompletion {
    /// Does the completion grant anything at all? (R = W = 0: the Function may not use it and
    /// asks for the page with a Page Request, §10.4.)
    pub fn is_empty(&self) -> bool {
        !self.read && !self.write
    }
}

/// An ATS Invalidate Request for one Function (§10.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtsInvalidation {
    /// The Function (the Invalidate Request's Device ID).
    pub sid: Rid,
    /// PASID (None: requests without PASID, or all PASIDs when `global`).
    pub pasid: Option<Pasid>,
    /// Start of the range.
    pub addr: u64,
    /// Length of the range in bytes (a power of two, naturally aligned).
    pub len: u64,
    /// Global Invalidate: every PASID.
    pub global: bool,
}

/// Why an ATS Invalidate Request did not complete (§10.3.2, and the IOMMU's view of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AtsInvalidationError {
    /// No Invalidate Completion arrived (no such Function, or it does not answer).
    #[error("ATS invalidation timed out")]
    Timeout,
    /// An Invalidate Completion arrived that does not match (bad ITag or Device ID).
    #[error("invalid ATS invalidation completion")]
    BadCompletion,
}

/// A Page Request Message (§10.4.1) with its Requester ID, as the IOMMU receives it and as
/// the OS reads it back from the IOMMU's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Requester ID.
    pub rid: Rid,
    /// PASID of the PASID TLP prefix, if the message carried one.
    pub pasid: Option<Pasid>,
    /// The page (bits 63:12).
    pub addr: u64,
    /// R: read access requested.
    pub read: bool,
    /// W: write access requested.
    pub write: bool,
    /// Execute Requested (PASID prefix; valid with a PASID and read).
    pub exec: bool,
    /// Privileged Mode Requested (PASID prefix).
    pub privileged: bool,
    /// L: Last Page In Group (LPIG).
    pub last: bool,
    /// Page Request Group index (9 bits).
    pub prgi: u16,
}

impl PageRequest {
    /// The request `rid` sends as the Page Request Message `msg`.
    pub fn from_msg(rid: Rid, msg: &PageRequestMsg) -> PageRequest {
        PageRequest {
            rid,
            pasid: msg.pasid,
            addr: msg.page_addr & !0xfff,
            read: msg.access.contains(Access::READ),
            write: msg.access.is_write(),
            exec: msg.access.is_exec(),
            privileged: msg.access.is_priv(),
            last: msg.last,
            prgi: msg.prgi,
        }
    }

    /// The message without its Requester ID.
    pub fn msg(&self) -> PageRequestMsg {
        let mut access = Access::empty();
        access.set(Access::READ, self.read);
        access.set(Access::WRITE, self.write);
        access.set(Access::EXEC, self.exec);
        access.set(Access::PRIV, self.privileged);
        PageRequestMsg {
            pasid: self.pasid,
            access,
            page_addr: self.addr & !0xfff,
            prgi: self.prgi,
            last: self.last,
        }
    }
}

/// What became of a Page Request Message at the IOMMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageRequestOutcome {
    /// Queued for software.
    Queued,
    /// Dropped; the IOMMU sent this PRG Response to the Function itself.
    AutoResponse(crate::pri::ResponseCode),
    /// Dropped without a response (not the last request of its group).
    Dropped,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_at_field_round_trips_and_11b_is_reserved() {
        for k in [
            RequestKind::Untranslated,
            RequestKind::Translation,
            RequestKind::Translated,
        ] {
            assert_eq!(RequestKind::from_at(k.at()), Some(k));
        }
        assert_eq!(
            [
                RequestKind::Untranslated.at(),
                RequestKind::Translation.at(),
                RequestKind::Translated.at()
            ],
            [0, 1, 2]
        );
        assert_eq!(RequestKind::from_at(0b11), None);
        assert_eq!(RequestKind::from_at(0x4), None);
    }

    #[test]
    fn a_page_request_is_its_message_and_requester_id() {
        let msg = PageRequestMsg {
            pasid: Some(Pasid::new(9).unwrap()),
            access: Access::READ | Access::EXEC | Access::PRIV,
            page_addr: 0x7fff_1234_5000,
            prgi: 0x1a5,
            last: true,
        };
        let pr = PageRequest::from_msg(Rid::from_raw(0x0318), &msg);
        assert_eq!(
            pr,
            PageRequest {
                rid: Rid::from_raw(0x0318),
                pasid: msg.pasid,
                addr: 0x7fff_1234_5000,
                read: true,
                write: false,
                exec: true,
                privileged: true,
                last: true,
                prgi: 0x1a5,
            }
        );
        assert_eq!(pr.msg(), msg);
        // the message's L/W/R/PRGI/address quadword (Figure 10-16)
        assert_eq!(
            pr.msg().word().into_bits(),
            1 | 4 | 0x1a5 << 3 | 0x7fff_1234_5000
        );
        let write = PageRequestMsg {
            pasid: None,
            access: Access::WRITE,
            page_addr: 0x4000,
            prgi: 3,
            last: false,
        };
        let pr = PageRequest::from_msg(Rid::from_raw(0x18), &write);
        assert!(!pr.read && pr.write && !pr.exec && !pr.privileged && !pr.last);
        assert_eq!(pr.msg(), write);
    }

    #[test]
    fn a_completion_without_read_or_write_is_empty() {
        let c = TranslationCompletion {
            addr: 0x1000,
            size: PageSize::Size4K,
            read: false,
            write: false,
            exec: true,
            privileged: false,
        };
        assert!(c.is_empty());
        assert!(!TranslationCompletion { read: true, ..c }.is_empty());
        assert!(!TranslationCompletion { write: true, ..c }.is_empty());
    }
}
