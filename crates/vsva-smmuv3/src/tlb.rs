//! The TLB (IHI 0070 §3.17, §4.4): walk results tagged by VMID and ASID, emptied by the
//! CMD_TLBI_* commands.
//!
//! An entry caches one leaf of one translation regime:
//!
//! | regime | tag | input |
//! |---|---|---|
//! | stage 1 only | VMID (STE.S2VMID when stage 2 is implemented), ASID or *global* (nG = 0) | VA |
//! | nested | VMID, ASID or global | VA (the IPA is kept for CMD_TLBI_S2_IPA) |
//! | stage 2 only | VMID | IPA |
//!
//! Only successful walks are cached. The map is split into shards, each behind its own
//! reader/writer lock, so a hit takes one shard's read lock and allocates nothing. A walk
//! that misses fills its entry afterwards, and only if no invalidation ran since it began
//! (the epoch, checked under the shard lock): an invalidation is never undone by a walk that
//! raced it.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use vsva_mem::PageSize;
use vsva_pgtable::Perm;

use crate::spec::cmd::{Command, TlbiRange};

const SHARDS: usize = 16;

/// A multiplicative hasher for the small integer keys.
#[derive(Default, Clone, Copy)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64);
    }
    fn write_u16(&mut self, v: u16) {
        self.write_u64(v as u64);
    }
    fn write_u8(&mut self, v: u8) {
        self.write_u64(v as u64);
    }
}

/// The translation regime an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Regime {
    /// Stage 1 only.
    S1,
    /// Stage 1 over stage 2.
    Nested,
    /// Stage 2 only.
    S2,
}

/// The ASID tag of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum AsidTag {
    /// nG = 1: this ASID's.
    Asid(u16),
    /// nG = 0: every ASID's (stage 1 and nested).
    Global,
    /// Stage 2 only: no ASID.
    None,
}

/// TLB key: VMID, regime, ASID tag, input page, page size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub vmid: u16,
    pub regime: Regime,
    pub asid: AsidTag,
    pub page: u64,
    pub size: PageSize,
}

/// A cached leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Output address of the page.
    pub out: u64,
    /// Stage 1 rights (intersection over the walk); [`Perm::ANY`] without stage 1.
    pub s1: Perm,
    /// Stage 2 rights; [`Perm::ANY`] without stage 2.
    pub s2: Perm,
    /// The IPA of the page (nested: stage 1's output), for CMD_TLBI_S2_IPA.
    pub ipa: u64,
    /// A write walk filled it (with hardware dirty state the leaf is dirty): a write hit on
    /// an entry without it walks again so the dirty state gets set (§3.13).
    pub written: bool,
}

type Map = HashMap<Key, Entry, BuildHasherDefault<KeyHasher>>;

/// Counters of the TLB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TlbStats {
    /// Translations answered from the TLB.
    pub hits: u64,
    /// Translations that walked.
    pub walks: u64,
    /// Entries dropped by CMD_TLBI_* (and SMMUEN changes).
    pub invalidated: u64,
}

/// The TLB.
pub(crate) struct Tlb {
    shards: Vec<RwLock<Map>>,
    /// Shared with the configuration cache and the first-level cache (see `microtlb`).
    epoch: Arc<AtomicU64>,
    hits: AtomicU64,
    walks: AtomicU64,
    invalidated: AtomicU64,
}

impl Tlb {
    /// An empty TLB advancing `epoch` around its purges.
    pub fn new(epoch: Arc<AtomicU64>) -> Self {
        Tlb {
            shards: (0..SHARDS).map(|_| RwLock::new(Map::default())).collect(),
            epoch,
            hits: AtomicU64::new(0),
            walks: AtomicU64::new(0),
            invalidated: AtomicU64::new(0),
        }
    }
}

fn shard_of(k: &Key) -> usize {
    let mut h = KeyHasher::default();
    k.hash(&mut h);
    (h.finish() >> 59) as usize % SHARDS
}

/// The input range `[start, end)` a TLBI by address names (§4.4.1): with TG = 0, the page
/// containing `addr` (any entry that maps it); otherwise (NUM + 1) × 2^SCALE translation
/// granules of the size TG selects (1: 4 KiB, 2: 16 KiB, 3: 64 KiB) from `addr` (IDR3.RIL).
pub(crate) fn tlbi_span(r: &TlbiRange) -> (u64, u64) {
    let granule_bits = match r.tg {
        1 => 12,
        2 => 14,
        3 => 16,
        _ => return (r.addr, r.addr.saturating_add(1)),
    };
    let start = r.addr & !((1u64 << granule_bits) - 1);
    let pages = (u64::from(r.num) + 1) << r.scale.min(31);
    let len = pages.checked_shl(granule_bits).unwrap_or(u64::MAX);
    (start, start.saturating_add(len))
}

/// Does the page `[page, page + size)` overlap `[start, end)`?
fn overlaps(page: u64, size: PageSize, (start, end): (u64, u64)) -> bool {
    page < end && page.saturating_add(size.bytes()) > start
}

impl Tlb {
    fn read(&self, i: usize) -> RwLockReadGuard<'_, Map> {
        self.shards[i].read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, i: usize) -> RwLockWriteGuard<'_, Map> {
        self.shards[i].write().unwrap_or_else(|e| e.into_inner())
    }

    /// The invalidation epoch: read before a walk whose result may fill the TLB.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The entry mapping `input` under `vmid`/`regime`, tagged `asid` or, for stage 1 and
    /// nested, global.
    #[inline]
    pub fn lookup(
        &self,
        vmid: u16,
        regime: Regime,
        asid: AsidTag,
        input: u64,
    ) -> Option<(Entry, PageSize)> {
        let tags: &[AsidTag] = match asid {
            AsidTag::Asid(_) => &[asid, AsidTag::Global],
            _ => &[asid],
        };
        for &tag in tags {
            for size in PageSize::ALL {
                let k = Key {
                    vmid,
                    regime,
                    asid: tag,
                    page: input & !size.offset_mask(),
                    size,
                };
                if let Some(e) = self.read(shard_of(&k)).get(&k).copied() {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Some((e, size));
                }
            }
        }
        None
    }

    /// Fills `k` with `e` for a walk begun at `epoch`, unless an invalidation ran since.
    pub fn fill(&self, k: Key, e: Entry, epoch: u64) {
        self.walks.fetch_add(1, Ordering::Relaxed);
        let mut shard = self.write(shard_of(&k));
        if self.epoch.load(Ordering::Acquire) == epoch {
            shard.insert(k, e);
        }
    }

    /// Counts a walk that filled nothing.
    pub fn count_walk(&self) {
        self.walks.fetch_add(1, Ordering::Relaxed);
    }

    /// Drops the entries `drop` selects.
    pub fn purge(&self, drop: impl Fn(&Key, &Entry) -> bool) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let mut n = 0;
        for i in 0..SHARDS {
            let mut m = self.write(i);
            let before = m.len();
            m.retain(|k, e| !drop(k, e));
            n += before - m.len();
        }
        // Again after: a walk that began while the purge ran fills nothing.
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.invalidated.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Carries out a CMD_TLBI_* (§4.4). Invalidating more than the command names is always
    /// allowed; this removes exactly the entries it names, except that CMD_TLBI_S2_IPA also
    /// drops nested entries whose IPA is in range (the spec leaves combined entries to a
    /// following CMD_TLBI_NH_*/S12_VMALL; dropping them too is the stricter choice).
    pub fn invalidate(&self, cmd: &Command) {
        let s1 = |r: Regime| matches!(r, Regime::S1 | Regime::Nested);
        match *cmd {
            // §4.4.2: every stage 1 (and nested) entry of the VMID, global ones included.
            Command::TlbiNhAll { vmid } => self.purge(|k, _| k.vmid == vmid && s1(k.regime)),
            // §4.4.3: the ASID's non-global entries; global entries stay.
            Command::TlbiNhAsid { vmid, asid } => {
                self.purge(|k, _| k.vmid == vmid && s1(k.regime) && k.asid == AsidTag::Asid(asid))
            }
            // §4.4.4: the ASID's and the global entries in range.
            Command::TlbiNhVa { vmid, asid, range } => {
                let span = tlbi_span(&range);
                self.purge(|k, _| {
                    k.vmid == vmid
                        && s1(k.regime)
                        && matches!(k.asid, AsidTag::Global) | (k.asid == AsidTag::Asid(asid))
                        && overlaps(k.page, k.size, span)
                })
            }
            // §4.4.5: every ASID's entries in range.
            Command::TlbiNhVaa { vmid, range } => {
                let span = tlbi_span(&range);
                self.purge(|k, _| k.vmid == vmid && s1(k.regime) && overlaps(k.page, k.size, span))
            }
            // §4.4.7: everything of the VMID, every stage.
            Command::TlbiS12Vmall { vmid } => self.purge(|k, _| k.vmid == vmid),
            // §4.4.8: stage 2 entries of the VMID by IPA.
            Command::TlbiS2Ipa { vmid, range } => {
                let span = tlbi_span(&range);
                self.purge(|k, e| {
                    k.vmid == vmid
                        && match k.regime {
                            Regime::S2 => overlaps(k.page, k.size, span),
                            Regime::Nested => overlaps(e.ipa & !k.size.offset_mask(), k.size, span),
                            Regime::S1 => false,
                        }
                })
            }
            // §4.4.9: every Non-secure, non-Hyp entry.
            Command::TlbiNsnhAll => self.clear(),
            // EL2 commands need IDR0.HYP, which this model does not offer: the queue
            // refuses them before they get here.
            _ => {}
        }
    }

    /// Drops everything.
    pub fn clear(&self) {
        self.purge(|_, _| true);
    }

    pub fn stats(&self) -> TlbStats {
        TlbStats {
            hits: self.hits.load(Ordering::Relaxed),
            walks: self.walks.load(Ordering::Relaxed),
            invalidated: self.invalidated.load(Ordering::Relaxed),
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        (0..SHARDS).map(|i| self.read(i).len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlbi_spans_follow_tg_num_scale() {
        let r = |addr, tg, num, scale| TlbiRange {
            addr,
            tg,
            num,
            scale,
            ..TlbiRange::default()
        };
        assert_eq!(tlbi_span(&r(0x5000, 0, 0, 0)), (0x5000, 0x5001));
        // 4 KiB granule, NUM = 3, SCALE = 1: (3 + 1) × 2 pages.
        assert_eq!(tlbi_span(&r(0x10_0000, 1, 3, 1)), (0x10_0000, 0x10_8000));
        // 64 KiB granule, one.
        assert_eq!(tlbi_span(&r(0x2_0000, 3, 0, 0)), (0x2_0000, 0x3_0000));
    }
}
