//! What a device asks of the remapping unit (vsva-pcie's [`Request`]), and what it gets back.

use vsva_mem::PageSize;
use vsva_pgtable::Perm;

use crate::spec::fault::FaultReason;

pub(crate) use vsva_pcie::{Request, RequestKind};

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
