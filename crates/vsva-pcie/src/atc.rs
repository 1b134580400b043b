//! The Address Translation Cache (ATC, the device TLB) of an ATS endpoint, PCIe Base 6.0
//! §10.2 (Translation Requests and Completions) and §10.3 (ATS Invalidation).
//!
//! Entries come from Translation Completions: an untranslated page (4 KiB, 2 MiB or 1 GiB,
//! aligned) with its translated address and the completion's R, W, Exe, Priv and Global bits.
//!
//! # Tags
//! * An entry cached for a request without PASID matches only requests without PASID.
//! * An entry cached for a PASID matches that PASID; if its Global bit is Set it matches every
//!   PASID (§10.2.3: a Global translation applies to all PASIDs of the Function). Global and
//!   Priv are meaningful only with a PASID and are dropped for entries without one.
//! * Priv says which privilege level R/W/Exe describe (§10.2.3), so the privilege level is part
//!   of the tag: a privileged request only uses a Priv=1 entry and a user request a Priv=0 one;
//!   the other kind is a miss (the device must ask for that level's translation).
//!
//! # Invalidation (§10.3.1, §10.3.8)
//! An Invalidate Request removes every entry whose page overlaps the range, among:
//! * without PASID: every entry — with or without PASID (an Invalidate Request without a PASID
//!   prefix cannot select only the non-PASID entries; Linux's SMMUv3 driver documents the same);
//! * with PASID and Global Invalidate: every entry with a PASID (all PASIDs, and Global ones);
//! * with PASID, no Global Invalidate: that PASID's entries and the Global entries. Keeping
//!   Global entries would also be allowed; dropping them is the conservative choice (an ATC may
//!   always drop entries).
//!
//! The caller passes `global` only if the Function advertises Global Invalidate Supported
//! (otherwise the ATC ignores the bit, §10.5.1.2).
//!
//! # Costs
//! [`Atc::lookup`] takes `&self`, probes a `HashMap` at most six times (three page sizes,
//! own PASID then Global) and allocates nothing; its counters are [`Cell`]s, so an `Atc` is
//! `Send` but not `Sync` — it belongs to one device. Replacement is FIFO (oldest insert is
//! evicted first). Invalidation scans every entry, which is fine at ATC sizes.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};

use bitflags::bitflags;
use vsva_mem::{Access, PageSize, Pasid};

bitflags! {
    /// The permission and scope bits of a Translation Completion data entry (§10.2.3).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct TranslationFlags: u8 {
        /// R: reads allowed.
        const READ = 1 << 0;
        /// W: writes allowed.
        const WRITE = 1 << 1;
        /// Exe: instruction fetches allowed (needs R too).
        const EXEC = 1 << 2;
        /// Priv: R, W and Exe are the privileged-mode rights.
        const PRIV = 1 << 3;
        /// Global: the translation applies to every PASID of the Function.
        const GLOBAL = 1 << 4;
    }
}

/// A cached translation: the translated (physical) address of the page and its rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtcEntry {
    /// Translated address of the start of the page, aligned to the page size.
    pub translated: u64,
    /// R, W, Exe, Priv, Global from the completion.
    pub flags: TranslationFlags,
}

impl AtcEntry {
    /// Does this translation allow `access` (R for reads, W for writes, Exe with R for
    /// execute; an entry with neither R nor W allows nothing)?
    pub fn permits(&self, access: Access) -> bool {
        let f = self.flags;
        f.intersects(TranslationFlags::READ | TranslationFlags::WRITE)
            && (!access.contains(Access::READ) || f.contains(TranslationFlags::READ))
            && (!access.is_write() || f.contains(TranslationFlags::WRITE))
            && (!access.is_exec() || f.contains(TranslationFlags::EXEC | TranslationFlags::READ))
    }
}

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtcLookup {
    /// A translation that allows the access: `translated` includes the offset in the page.
    Hit {
        /// Translated address of the byte asked for.
        translated: u64,
        /// Size of the cached page.
        size: PageSize,
    },
    /// No translation cached: send a Translation Request.
    Miss,
    /// A translation is cached but does not allow the access (or allows nothing: R=W=0):
    /// send a Translation Request, and a Page Request if that fails the same way.
    PermissionMiss,
}

/// Why an entry cannot be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AtcError {
    /// The untranslated or translated address is not aligned to the page size.
    #[error("address {addr:#x} is not aligned to {size}")]
    Misaligned {
        /// The misaligned address.
        addr: u64,
        /// The page size.
        size: PageSize,
    },
}

/// Counters of an [`Atc`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AtcStats {
    /// Lookups that hit.
    pub hits: u64,
    /// Lookups that found nothing.
    pub misses: u64,
    /// Lookups that found an entry without the rights.
    pub permission_misses: u64,
    /// Entries evicted to make room.
    pub evictions: u64,
    /// Entries removed by invalidations.
    pub invalidated: u64,
}

/// An address range as an Invalidate Request (§10.3.1) or Translation Completion (§10.2.3)
/// encodes it: the address field's bits 63:12 and the S (size) bit. Bounds are inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtsRange {
    /// First byte.
    pub base: u64,
    /// Last byte (inclusive).
    pub last: u64,
}

impl AtsRange {
    /// Decodes an address field and S bit. S=0: the 4 KiB page at bits 63:12. S=1: the range is
    /// `2^(k+1)` bytes, where bit k is the lowest 0 bit at or above bit 12; all ones means the
    /// whole 64-bit space. E.g. S=1 with bits 19:12 set and bit 20 clear is 2 MiB.
    pub const fn decode(addr_field: u64, s: bool) -> AtsRange {
        let page = addr_field & !0xFFF;
        if !s {
            return AtsRange {
                base: page,
                last: page | 0xFFF,
            };
        }
        // Ones from bit 12 upward, then the first zero.
        let k = (page | 0xFFF).trailing_ones();
        if k >= 63 {
            return AtsRange {
                base: 0,
                last: u64::MAX,
            };
        }
        let mask = (1u64 << (k + 1)) - 1;
        AtsRange {
            base: page & !mask,
            last: (page & !mask) | mask,
        }
    }

    /// The size in bytes, `None` for the whole 2^64 space.
    pub const fn size(self) -> Option<u64> {
        (self.last - self.base).checked_add(1)
    }
}

/// Which requests an entry serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Tag {
    NoPasid,
    Pasid(Pasid),
    Global,
}

impl Tag {
    /// The tag a completion for `pasid` with `flags` is cached under.
    pub(crate) fn of(pasid: Option<Pasid>, flags: TranslationFlags) -> Tag {
        match pasid {
            None => Tag::NoPasid,
            Some(_) if flags.contains(TranslationFlags::GLOBAL) => Tag::Global,
            Some(p) => Tag::Pasid(p),
        }
    }

    /// Does an Invalidate Request for `pasid` (with Global Invalidate if `global`) reach
    /// entries of this tag? (The rules of the module doc.)
    pub(crate) fn invalidated_by(self, pasid: Option<Pasid>, global: bool) -> bool {
        match (pasid, self) {
            (None, _) => true,
            (Some(_), Tag::NoPasid) => false,
            (Some(_), Tag::Global) => true,
            (Some(p), Tag::Pasid(q)) => global || p == q,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    tag: Tag,
    privileged: bool,
    base: u64,
    size: PageSize,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    entry: AtcEntry,
    seq: u64,
}

/// The Address Translation Cache: at most `capacity` entries, FIFO replacement.
#[derive(Debug)]
pub struct Atc {
    capacity: usize,
    entries: HashMap<Key, Slot>,
    /// A direct-mapped front of recent hits, one 4 KiB page each: a hit there costs one
    /// array probe instead of up to six hash lookups. Emptied by every change to the ATC.
    front: Box<[Cell<Front>]>,
    /// Insertion order, oldest first: sequence number -> key.
    order: BTreeMap<u64, Key>,
    next_seq: u64,
    hits: Cell<u64>,
    misses: Cell<u64>,
    permission_misses: Cell<u64>,
    evictions: u64,
    invalidated: u64,
}

/// One front slot: a 4 KiB page of a cached translation.
#[derive(Debug, Clone, Copy, Default)]
struct Front {
    /// Page number + 1 (0: empty).
    page: u64,
    /// PASID + 1 (0: none) | privileged << 32.
    tag: u64,
    /// Translated address of the 4 KiB page.
    translated: u64,
    flags: TranslationFlags,
    size: u8,
}

const FRONT: usize = 256;

#[inline]
fn front_index(page: u64, tag: u64) -> usize {
    ((page ^ tag.rotate_left(17)).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as usize % FRONT
}

#[inline]
fn front_tag(pasid: Option<Pasid>, privileged: bool) -> u64 {
    pasid.map_or(0, |p| p.raw() as u64 + 1) | (privileged as u64) << 32
}

#[inline]
fn size_from(code: u8) -> PageSize {
    match code {
        1 => PageSize::Size2M,
        2 => PageSize::Size1G,
        _ => PageSize::Size4K,
    }
}

impl Atc {
    fn clear_front(&mut self) {
        for f in self.front.iter() {
            f.set(Front::default());
        }
    }

    /// An empty ATC holding at most `capacity` entries (0 caches nothing).
    pub fn with_capacity(capacity: usize) -> Atc {
        Atc {
            capacity,
            front: (0..FRONT).map(|_| Cell::new(Front::default())).collect(),
            entries: HashMap::with_capacity(capacity),
            order: BTreeMap::new(),
            next_seq: 0,
            hits: Cell::new(0),
            misses: Cell::new(0),
            permission_misses: Cell::new(0),
            evictions: 0,
            invalidated: 0,
        }
    }

    /// The maximum number of entries.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The number of cached entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Is the ATC empty?
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Caches the translation of the `size` page at `untranslated` for `pasid`, replacing an
    /// entry with the same tag, privilege, page and size, and evicting the oldest entry if full.
    ///
    /// # Errors
    /// [`AtcError::Misaligned`] if `untranslated` or `entry.translated` is not a multiple of
    /// `size`.
    pub fn insert(
        &mut self,
        pasid: Option<Pasid>,
        untranslated: u64,
        size: PageSize,
        entry: AtcEntry,
    ) -> Result<(), AtcError> {
        for addr in [untranslated, entry.translated] {
            if addr & size.offset_mask() != 0 {
                return Err(AtcError::Misaligned { addr, size });
            }
        }
        // The new entry may replace or evict one the front cache holds.
        self.clear_front();
        let mut entry = entry;
        if pasid.is_none() {
            entry
                .flags
                .remove(TranslationFlags::GLOBAL | TranslationFlags::PRIV);
        }
        let tag = Tag::of(pasid, entry.flags);
        let key = Key {
            tag,
            privileged: entry.flags.contains(TranslationFlags::PRIV),
            base: untranslated,
            size,
        };
        if self.capacity == 0 {
            return Ok(());
        }
        if let Some(old) = self.entries.remove(&key) {
            self.order.remove(&old.seq);
        } else if self.entries.len() >= self.capacity {
            if let Some((_, oldest)) = self.order.pop_first() {
                self.entries.remove(&oldest);
                self.evictions += 1;
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.entries.insert(key, Slot { entry, seq });
        self.order.insert(seq, key);
        Ok(())
    }

    /// Looks up the translation of `addr` for a request with `pasid` asking for `access`.
    ///
    /// Reads need R, writes need W, execute needs Exe and R; a privileged access (PASID only)
    /// uses Priv=1 entries, a user access Priv=0 entries. Hot path: no allocation, no lock.
    pub fn lookup(&self, pasid: Option<Pasid>, addr: u64, access: Access) -> AtcLookup {
        let privileged = pasid.is_some() && access.is_priv();
        let page = addr >> 12;
        let tag = front_tag(pasid, privileged);
        let slot = &self.front[front_index(page, tag)];
        let f = slot.get();
        if f.page == page + 1 && f.tag == tag {
            let entry = AtcEntry {
                translated: f.translated,
                flags: f.flags,
            };
            return self.check(entry, addr & 0xfff, size_from(f.size), access);
        }
        let own = pasid.map_or(Tag::NoPasid, Tag::Pasid);
        for size in PageSize::ALL {
            let base = addr & !size.offset_mask();
            let mut key = Key {
                tag: own,
                privileged,
                base,
                size,
            };
            let mut found = self.entries.get(&key);
            if found.is_none() && pasid.is_some() {
                key.tag = Tag::Global;
                found = self.entries.get(&key);
            }
            if let Some(slot) = found {
                let r = self.check(slot.entry, addr - base, size, access);
                if let AtcLookup::Hit { translated, .. } = r {
                    self.front[front_index(page, tag)].set(Front {
                        page: page + 1,
                        tag,
                        translated: translated & !0xfff,
                        flags: slot.entry.flags,
                        size: match size {
                            PageSize::Size4K => 0,
                            PageSize::Size2M => 1,
                            PageSize::Size1G => 2,
                        },
                    });
                }
                return r;
            }
        }
        bump(&self.misses);
        AtcLookup::Miss
    }

    fn check(&self, entry: AtcEntry, offset: u64, size: PageSize, access: Access) -> AtcLookup {
        if entry.permits(access) {
            bump(&self.hits);
            AtcLookup::Hit {
                translated: entry.translated | offset,
                size,
            }
        } else {
            bump(&self.permission_misses);
            AtcLookup::PermissionMiss
        }
    }

    /// Removes every entry in scope (see the module doc) whose page overlaps
    /// `[addr, addr + len)`; returns how many. `len == 0` removes nothing; a range running past
    /// the top of the address space stops there.
    pub fn invalidate(&mut self, pasid: Option<Pasid>, addr: u64, len: u64, global: bool) -> usize {
        match len.checked_sub(1) {
            None => 0,
            Some(l) => self.invalidate_inclusive(pasid, addr, addr.saturating_add(l), global),
        }
    }

    /// [`invalidate`](Self::invalidate) for a range decoded from an Invalidate Request.
    pub fn invalidate_range(
        &mut self,
        pasid: Option<Pasid>,
        range: AtsRange,
        global: bool,
    ) -> usize {
        self.invalidate_inclusive(pasid, range.base, range.last, global)
    }

    fn invalidate_inclusive(
        &mut self,
        pasid: Option<Pasid>,
        base: u64,
        last: u64,
        global: bool,
    ) -> usize {
        self.clear_front();
        let in_scope = |tag: Tag| tag.invalidated_by(pasid, global);
        let before = self.entries.len();
        let order = &mut self.order;
        self.entries.retain(|key, slot| {
            let key_last = key.base | key.size.offset_mask();
            let hit = in_scope(key.tag) && key.base <= last && base <= key_last;
            if hit {
                order.remove(&slot.seq);
            }
            !hit
        });
        let removed = before - self.entries.len();
        self.invalidated += removed as u64;
        removed
    }

    /// Drops every entry (e.g. when ATS is disabled).
    pub fn clear(&mut self) {
        self.clear_front();
        self.invalidated += self.entries.len() as u64;
        self.entries.clear();
        self.order.clear();
    }

    /// The counters so far.
    pub fn stats(&self) -> AtcStats {
        AtcStats {
            hits: self.hits.get(),
            misses: self.misses.get(),
            permission_misses: self.permission_misses.get(),
            evictions: self.evictions,
            invalidated: self.invalidated,
        }
    }
}

fn bump(c: &Cell<u64>) {
    c.set(c.get().wrapping_add(1));
}

#[cfg(test)]
mod tests;
