//! ATS translation requests (VT-d 4.1 §4.2.3 "Handling of Translation Requests"; PCIe Base
//! 6.0 §10.2.2 Translation Completion).
//!
//! A device with an ATC asks the unit for a translation and caches the answer. Faults of the
//! remapping structures (root, context, PASID entries) are non-recoverable: they are recorded
//! and the request fails. A page that is not present or lacks a right is not a fault here: the
//! completion comes back with fewer (or no) rights, and the device asks for the page through
//! PRI. A/D bits are set as for a DMA of the same kind (D only when write was asked and
//! granted).

use std::sync::atomic::Ordering;

use vsva_mem::{Access, PageSize};
use vsva_pcie::TranslationCompletion;
use vsva_pgtable::Perm;

use crate::request::{Blocked, Request};
use crate::spec::fault::FaultReason;
use crate::translate::{translate, translate_cached};
use crate::unit::Vtd;

/// A Translation Completion, with the domain the unit found it in (its own bookkeeping: a
/// PCIe completion carries no domain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtsTranslated {
    /// What goes back to the device.
    pub completion: TranslationCompletion,
    /// The domain the translation belongs to.
    pub did: u16,
}

/// Faults that mean "not present or not permitted here" rather than a broken structure.
fn translation_fault(r: FaultReason) -> bool {
    use FaultReason::*;
    matches!(
        r,
        FsNotPresent | SsNotPresent | UserSupervisor | ExecDenied | WriteDenied | ReadDenied
    )
}

impl Vtd {
    /// Answers an ATS translation request (`req.kind` is taken as a translation request).
    ///
    /// # Errors
    /// [`Blocked`] for non-recoverable faults (recorded as for a DMA), for translation
    /// disabled, and for results in the interrupt range.
    pub fn ats_translate(&self, req: &Request) -> Result<AtsTranslated, Blocked> {
        let req = Request {
            kind: crate::request::RequestKind::Translation,
            ..*req
        };
        if !self.enabled.load(Ordering::Acquire) {
            return Err(Blocked {
                reason: None,
                recorded: false,
            });
        }
        let _walk = self.walks.begin();
        let epoch = self.caches.epoch();
        let resolved = self.resolve_cached(&req)?;
        let page = req.addr & !0xfff;
        let did = resolved.entry.q1.did();
        let complete = |t: crate::request::Translated, asked: Access| AtsTranslated {
            completion: TranslationCompletion {
                addr: t.addr & !t.size.offset_mask(),
                size: t.size,
                read: t.perm.contains(Perm::READ),
                write: asked.is_write() && t.perm.contains(Perm::WRITE),
                exec: asked.is_exec() && t.perm.contains(Perm::EXEC),
                privileged: resolved.privileged,
            },
            did,
        };
        match translate_cached(
            &self.cfg,
            self.mem.as_ref(),
            &self.caches,
            &resolved,
            &req,
            epoch,
        ) {
            Ok(t) => Ok(complete(t, req.access)),
            Err(reason) if translation_fault(reason) => {
                // Offer what can be granted: a read-only translation for a write request to a
                // read-only page; nothing for a page that is not present.
                if req.access.is_write() {
                    let read_only = Request {
                        access: req.access.difference(Access::WRITE) | Access::READ,
                        ..req
                    };
                    if let Ok(t) = translate(&self.cfg, self.mem.as_ref(), &resolved, &read_only) {
                        return Ok(complete(t, read_only.access));
                    }
                }
                Ok(AtsTranslated {
                    completion: TranslationCompletion {
                        addr: page,
                        size: PageSize::Size4K,
                        read: false,
                        write: false,
                        exec: false,
                        privileged: resolved.privileged,
                    },
                    did,
                })
            }
            Err(reason) => Err(self.fault(&req, reason, resolved.fpd)),
        }
    }
}
