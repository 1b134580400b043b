//! The ATC as a Function shares it between its DMA engine and the ATS invalidations the host
//! sends, with the two ordering rules of PCIe Base 6.0 §10.3.1 (Invalidate Completion
//! semantics) that make invalidation safe on every thread:
//!
//! 1. **A translation whose request was outstanding when an invalidation arrived is not
//!    used.** A Translation Request takes a [`TranslationTicket`]; its completion is cached —
//!    and may serve the access that asked for it — only if no Invalidate Request that reaches
//!    it (same scope and overlapping range) arrived after the ticket. Otherwise the Function
//!    asks again ([`Fill::Stale`]).
//! 2. **The Invalidate Completion follows every access that used the old translation.** The
//!    DMA engine holds an [`AtcAccess`] from its lookup until its memory reads and writes are
//!    done; [`OrderedAtc::invalidate`] waits for it, so when the invalidation returns (the
//!    completion is sent) no access with the removed entries is still to come.
//!
//! Every device model reuses this; none needs ordering logic of its own.
//!
//! # Costs
//! An access takes one per-Function lock (no global lock, no allocation); lookups inside it
//! are [`Atc::lookup`]'s. A ticket check is a compare when nothing was invalidated since, else
//! a scan of at most [`LOG`] recent invalidations; a ticket older than that is taken as stale.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock, TryLockError};

use vsva_mem::{Access, PageSize, Pasid};

use crate::atc::{Atc, AtcEntry, AtcError, AtcLookup, AtcStats, AtsRange, Tag};

/// How many recent invalidations are remembered for ticket checks.
pub const LOG: usize = 64;

/// A point of the protocol where a test may place a racing call ([`OrderedAtc::set_hook`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtsPoint {
    /// A Translation Completion arrived and is not cached yet (the Function holds no access).
    CompletionReceived {
        /// The request's PASID.
        pasid: Option<Pasid>,
        /// The untranslated address asked for.
        addr: u64,
    },
    /// The DMA engine holds its translations inside an access and has not touched memory yet.
    Accessing {
        /// The request's PASID.
        pasid: Option<Pasid>,
        /// The first untranslated address of the access.
        addr: u64,
    },
    /// An Invalidate Request found an access in progress and waits for it to finish.
    InvalidationWaits,
}

/// A test hook: called at each [`AtsPoint`].
pub type AtsHook = Arc<dyn Fn(AtsPoint) + Send + Sync>;

/// Taken when a Translation Request is sent; names every invalidation that arrives after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TranslationTicket {
    generation: u64,
}

/// What became of a Translation Completion offered to the ATC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Cached (if the ATC has room for entries at all); the completion may serve the access
    /// in progress.
    Usable,
    /// An invalidation that reaches it arrived while the request was outstanding: neither
    /// cached nor usable; send the Translation Request again.
    Stale,
}

/// One remembered Invalidate Request.
#[derive(Debug, Clone, Copy, Default)]
struct Logged {
    pasid: Option<Pasid>,
    global: bool,
    base: u64,
    last: u64,
}

struct Inner {
    atc: Atc,
    /// Invalidate Requests received so far.
    generation: u64,
    /// The last [`LOG`] of them, by generation modulo [`LOG`].
    log: [Logged; LOG],
}

impl Inner {
    fn invalidated(&mut self, inv: Logged) {
        self.generation += 1;
        self.log[(self.generation % LOG as u64) as usize] = inv;
    }

    /// Did an invalidation after `ticket` reach a translation of `[base, last]` for `tag`?
    fn stale(&self, ticket: TranslationTicket, tag: Tag, base: u64, last: u64) -> bool {
        let since = self.generation - ticket.generation;
        if since == 0 {
            return false;
        }
        if since > LOG as u64 {
            return true;
        }
        (ticket.generation + 1..=self.generation).any(|g| {
            let inv = self.log[(g % LOG as u64) as usize];
            tag.invalidated_by(inv.pasid, inv.global) && inv.base <= last && base <= inv.last
        })
    }
}

/// An ATC shared by a Function's DMA engine and its invalidation handler (module doc).
pub struct OrderedAtc {
    inner: Mutex<Inner>,
    hook: OnceLock<AtsHook>,
}

impl std::fmt::Debug for OrderedAtc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderedAtc").finish_non_exhaustive()
    }
}

/// The DMA engine's hold on its translations: from the lookup until memory has been read or
/// written. Invalidations wait for it to be dropped.
pub struct AtcAccess<'a> {
    inner: MutexGuard<'a, Inner>,
}

impl OrderedAtc {
    /// An empty ATC of at most `capacity` entries (0 caches nothing: each access then uses
    /// its own completion, under the same rules).
    pub fn with_capacity(capacity: usize) -> OrderedAtc {
        OrderedAtc {
            inner: Mutex::new(Inner {
                atc: Atc::with_capacity(capacity),
                generation: 0,
                log: [Logged::default(); LOG],
            }),
            hook: OnceLock::new(),
        }
    }

    /// Installs a hook called at every [`AtsPoint`] (tests place racing calls there). Set once.
    ///
    /// # Errors
    /// The hook given, if one is set already.
    pub fn set_hook(&self, hook: AtsHook) -> Result<(), AtsHook> {
        self.hook.set(hook)
    }

    /// Calls the hook, if any, at `point`.
    #[inline]
    pub fn at(&self, point: AtsPoint) {
        if let Some(h) = self.hook.get() {
            h(point);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts an access: lookups, completions filled in, and the memory operations that use
    /// them, until the returned value is dropped.
    pub fn access(&self) -> AtcAccess<'_> {
        AtcAccess { inner: self.lock() }
    }

    /// A ticket for a Translation Request about to be sent.
    pub fn ticket(&self) -> TranslationTicket {
        TranslationTicket {
            generation: self.lock().generation,
        }
    }

    /// An Invalidate Request: removes what it reaches (see [`Atc::invalidate`]) once no access
    /// is in progress, and makes completions outstanding for that range stale. When it
    /// returns, the Invalidate Completion may be sent. `len == 0` removes nothing.
    pub fn invalidate(&self, pasid: Option<Pasid>, addr: u64, len: u64, global: bool) -> usize {
        let Some(l) = len.checked_sub(1) else {
            return 0;
        };
        let last = addr.saturating_add(l);
        let mut inner = self.wait();
        inner.invalidated(Logged {
            pasid,
            global,
            base: addr,
            last,
        });
        inner
            .atc
            .invalidate_range(pasid, AtsRange { base: addr, last }, global)
    }

    /// Drops every entry (ATS disabled), after any access in progress, and makes every
    /// outstanding completion stale.
    pub fn clear(&self) {
        let mut inner = self.wait();
        inner.invalidated(Logged {
            pasid: None,
            global: true,
            base: 0,
            last: u64::MAX,
        });
        inner.atc.clear();
    }

    /// The lock, telling the hook first if an access holds it.
    fn wait(&self) -> MutexGuard<'_, Inner> {
        match self.inner.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => {
                self.at(AtsPoint::InvalidationWaits);
                self.lock()
            }
        }
    }

    /// The ATC's counters.
    pub fn stats(&self) -> AtcStats {
        self.lock().atc.stats()
    }

    /// The number of cached entries.
    pub fn len(&self) -> usize {
        self.lock().atc.len()
    }

    /// Is the ATC empty?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl AtcAccess<'_> {
    /// Looks `addr` up (see [`Atc::lookup`]).
    #[inline]
    pub fn lookup(&self, pasid: Option<Pasid>, addr: u64, access: Access) -> AtcLookup {
        self.inner.atc.lookup(pasid, addr, access)
    }

    /// Offers the completion of a Translation Request sent with `ticket`: the translation of
    /// the `size` page at `untranslated` for `pasid`. Cached and [`Fill::Usable`] unless an
    /// invalidation reaching it arrived since the ticket ([`Fill::Stale`]). Offering the same
    /// completion again (e.g. to an ATC that caches nothing) gives the same answer while no
    /// such invalidation arrives.
    ///
    /// # Errors
    /// [`AtcError::Misaligned`] as [`Atc::insert`].
    pub fn fill(
        &mut self,
        ticket: TranslationTicket,
        pasid: Option<Pasid>,
        untranslated: u64,
        size: PageSize,
        entry: AtcEntry,
    ) -> Result<Fill, AtcError> {
        let tag = Tag::of(pasid, entry.flags);
        let last = untranslated | size.offset_mask();
        if self.inner.stale(ticket, tag, untranslated, last) {
            return Ok(Fill::Stale);
        }
        self.inner.atc.insert(pasid, untranslated, size, entry)?;
        Ok(Fill::Usable)
    }
}

#[cfg(test)]
mod tests;
