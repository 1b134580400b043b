//! What a device asks of the remapping unit, and what it gets back.

use vsva_mem::{Access, PageSize, Pasid, Rid};
use vsva_pgtable::Perm;

use crate::spec::fault::FaultReason;

/// The address type of a PCIe memory request (AT field, PCIe Base 6.0 §10.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// AT = 00b: an ordinary DMA with an untranslated address.
    Untranslated,
    /// AT = 01b: an ATS translation request (the device asks for a translation to cache).
    Translation,
    /// AT = 10b: a DMA with an address the device translated with ATS.
    Translated,
}

/// A memory request as the remapping unit sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Requester ID.
    pub rid: Rid,
    /// PASID TLP prefix, if any.
    pub pasid: Option<Pasid>,
    /// The address.
    pub addr: u64,
    /// Read/write, execute-requested, privileged-mode-requested.
    pub access: Access,
    /// Address type.
    pub kind: RequestKind,
}

/// A successful translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translated {
    /// Output address of the request's address.
    pub addr: u64,
    /// Size of the translated region (naturally aligned around `addr`).
    pub size: PageSize,
    /// Rights of the region for this requester (USER set when user requests are allowed).
    pub perm: Perm,
    /// Domain the translation belongs to.
    pub did: u16,
}

/// A request the remapping unit refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("DMA remapping fault {reason:?} (recorded: {recorded})")]
pub struct Blocked {
    /// The spec's reason; `None` for a request with PASID while translation is disabled,
    /// which is refused as an unsupported request without a fault record.
    pub reason: Option<FaultReason>,
    /// Whether a fault record was written (false when FPD suppressed it or the log overflowed).
    pub recorded: bool,
}
