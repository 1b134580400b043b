//! The unit's translation caches (VT-d 4.1 §6.2): a combined context/PASID-entry cache and an
//! IOTLB tagged by domain (DID) and PASID.
//!
//! Like hardware, the unit keeps using cached entries after software changes the tables in
//! memory, until software invalidates them (§6.5: context-cache, PASID-cache, IOTLB and
//! PASID-based IOTLB invalidations). Only successful translations are cached (this model
//! does not cache not-present entries, which CAP.CM would allow but not require).
//!
//! Each cache is split into shards, each behind its own reader/writer lock, so translations
//! on different devices and pages do not contend on one lock, and a hit allocates nothing.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use vsva_mem::PageSize;
use vsva_pgtable::Perm;

use crate::lookup::Resolved;
use crate::spec::descriptors::am_block;
use crate::spec::pasid::Pgtt;

const SHARDS: usize = 16;

/// A fast multiplicative hasher for small integer keys (the keys are not attacker-chosen
/// collisions of any consequence: a bad distribution only costs speed).
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
}

type Map<K, V> = HashMap<K, V, BuildHasherDefault<KeyHasher>>;

/// A map split into independently locked shards.
struct Sharded<K, V> {
    shards: Vec<RwLock<Map<K, V>>>,
}

impl<K: Hash + Eq + Copy, V: Copy> Default for Sharded<K, V> {
    fn default() -> Self {
        Sharded {
            shards: (0..SHARDS).map(|_| RwLock::new(Map::default())).collect(),
        }
    }
}

impl<K: Hash + Eq + Copy, V: Copy> Sharded<K, V> {
    fn shard(&self, k: &K) -> usize {
        let mut h = KeyHasher::default();
        k.hash(&mut h);
        (h.finish() >> 59) as usize % SHARDS
    }

    fn read(&self, i: usize) -> RwLockReadGuard<'_, Map<K, V>> {
        self.shards[i].read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, i: usize) -> RwLockWriteGuard<'_, Map<K, V>> {
        self.shards[i].write().unwrap_or_else(|e| e.into_inner())
    }

    /// The value for `k`.
    fn get(&self, k: &K) -> Option<V> {
        self.read(self.shard(k)).get(k).copied()
    }

    /// Stores `v` for `k`.
    #[cfg(test)]
    fn insert(&self, k: K, v: V) {
        self.write(self.shard(&k)).insert(k, v);
    }

    /// Stores `v` for `k` if `still_valid`, asked with the shard locked, says so: a purge
    /// that takes this shard's lock after the check removes the entry, one that began before
    /// it made `still_valid` false.
    fn insert_if(&self, k: K, v: V, still_valid: impl FnOnce() -> bool) {
        let mut shard = self.write(self.shard(&k));
        if still_valid() {
            shard.insert(k, v);
        }
    }

    /// Drops every entry for which `drop` says so.
    fn remove_if(&self, mut drop: impl FnMut(&K, &V) -> bool) {
        for i in 0..SHARDS {
            self.write(i).retain(|k, v| !drop(k, v));
        }
    }

    /// Number of entries.
    #[cfg(test)]
    fn len(&self) -> usize {
        (0..SHARDS).map(|i| self.read(i).len()).sum()
    }
}

/// "No PASID" in cache keys (PASIDs are 20 bits).
pub const NO_PASID: u32 = u32::MAX;

/// Context/PASID-entry cache key: requester and the request's PASID (or [`NO_PASID`]).
pub type EntryKey = (u16, u32);

/// IOTLB key: domain, the PASID translated under, page-aligned input address, page size.
pub type IotlbKey = (u16, u32, u64, u8);

/// A cached translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IotlbEntry {
    /// Output address of the page.
    pub page: u64,
    /// Rights (intersection over the walk).
    pub perm: Perm,
    /// The translation type it was made under (IOTLB invalidations select by it).
    pub pgtt: Pgtt,
    /// Whether the walk that filled it set Dirty (a write hit on an entry without it walks
    /// again so Dirty gets set, §3.6.2).
    pub dirty: bool,
}

fn size_code(s: PageSize) -> u8 {
    match s {
        PageSize::Size4K => 0,
        PageSize::Size2M => 1,
        PageSize::Size1G => 2,
    }
}

/// The unit's caches.
///
/// A lookup that misses walks the tables without any cache lock and fills the caches
/// afterwards; an invalidation that completes meanwhile must not be undone by that fill (the
/// walk may have read entries the invalidation was about). So every purge first bumps an
/// epoch, and a fill is made only if the epoch is still the one read before the lookup began
/// ([`epoch`](Self::epoch), checked under the shard lock): a walk that raced a purge caches
/// nothing and returns its result once, as hardware may for a request already in flight.
#[derive(Default)]
pub struct Caches {
    /// Context + PASID-table entries per (requester, PASID). Private, as is `iotlb`: every
    /// removal goes through a `purge_*`, which bumps the epoch.
    entries: Sharded<EntryKey, Resolved>,
    /// Translations.
    iotlb: Sharded<IotlbKey, IotlbEntry>,
    /// Purges so far.
    epoch: AtomicU64,
}

impl Caches {
    /// The purge epoch: read before a lookup that may fill the caches.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn still(&self, epoch: u64) -> impl FnOnce() -> bool + '_ {
        move || self.epoch.load(Ordering::Acquire) == epoch
    }

    /// The cached context and PASID entries for `key`.
    pub fn entry(&self, key: &EntryKey) -> Option<Resolved> {
        self.entries.get(key)
    }

    /// Caches the entries `r` resolved for `key`, by a lookup begun at `epoch`.
    pub fn fill_entry(&self, key: EntryKey, r: Resolved, epoch: u64) {
        self.entries.insert_if(key, r, self.still(epoch));
    }

    /// Drops the cached entries `drop` selects (context- and PASID-cache invalidations).
    pub fn purge_entries(&self, drop: impl FnMut(&EntryKey, &Resolved) -> bool) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.entries.remove_if(drop);
        // again after: a lookup that began during the purge (and may have used an entry it
        // was about to drop) fills nothing once the purge is over; a fill made while the
        // purge still runs is left to the IOTLB invalidation the spec requires after a
        // PASID-cache one (§6.5.2.2)
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Drops the cached translations `drop` selects (IOTLB and PASID-IOTLB invalidations).
    pub fn purge_iotlb(&self, drop: impl FnMut(&IotlbKey, &IotlbEntry) -> bool) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.iotlb.remove_if(drop);
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// The cached translation of `addr` for (`did`, `pasid`), any page size.
    pub fn lookup(&self, did: u16, pasid: u32, addr: u64) -> Option<(IotlbEntry, PageSize)> {
        for size in PageSize::ALL {
            let k = (did, pasid, addr & !size.offset_mask(), size_code(size));
            if let Some(e) = self.iotlb.get(&k) {
                return Some((e, size));
            }
        }
        None
    }

    /// Caches a translation made by a lookup begun at `epoch`.
    pub fn fill(&self, did: u16, pasid: u32, addr: u64, size: PageSize, e: IotlbEntry, epoch: u64) {
        let key = (did, pasid, addr & !size.offset_mask(), size_code(size));
        self.iotlb.insert_if(key, e, self.still(epoch));
    }

    /// Drops everything (SRTP, translation disable, global invalidations).
    pub fn clear(&self) {
        self.purge_entries(|_, _| true);
        self.purge_iotlb(|_, _| true);
    }
}

/// Does the cached page `(base, size)` overlap `[addr, addr + 2^am pages)`?
pub fn overlaps(base: u64, size_code: u8, addr: u64, am: u8) -> bool {
    let Some((start, len)) = am_block(addr, am) else {
        return true;
    };
    let page_len = [4096u64, 2 << 20, 1 << 30][size_code as usize % 3];
    // inclusive lasts: the last page of the space ends at 2^64
    base <= start + (len - 1) && start <= base + (page_len - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(page: u64) -> IotlbEntry {
        IotlbEntry {
            page,
            perm: Perm::READ,
            pgtt: Pgtt::FirstStage,
            dirty: false,
        }
    }

    #[test]
    fn a_walk_that_raced_a_purge_fills_nothing() {
        let caches = Caches::default();
        let before = caches.epoch();
        // an invalidation completes while the walk is in flight
        caches.purge_iotlb(|_, _| true);
        caches.fill(1, 2, 0x5000, PageSize::Size4K, entry(0xa000), before);
        assert!(
            caches.lookup(1, 2, 0x5000).is_none(),
            "the stale walk is not cached"
        );
        // an entry-cache purge counts too (the walk may have used a stale PASID entry)
        let before = caches.epoch();
        caches.purge_entries(|_, _| false);
        caches.fill(1, 2, 0x5000, PageSize::Size4K, entry(0xa000), before);
        assert!(caches.lookup(1, 2, 0x5000).is_none());
        // a walk with no purge since it began is cached
        let now = caches.epoch();
        caches.fill(1, 2, 0x5000, PageSize::Size4K, entry(0xb000), now);
        assert_eq!(
            caches.lookup(1, 2, 0x5123).map(|(e, _)| e.page),
            Some(0xb000)
        );
    }

    #[test]
    fn a_mask_of_the_whole_space_overlaps_everything() {
        for am in [52, 60, 63] {
            assert!(overlaps(0, 0, 0, am));
            assert!(overlaps(0xffff_ffff_ffff_f000, 2, 0x1234_5000, am));
        }
        assert!(overlaps(0x5000, 0, 0x4000, 1));
        assert!(!overlaps(0x6000, 0, 0x4000, 1));
    }

    #[test]
    fn sharded_map_basics() {
        let m: Sharded<(u16, u32), u64> = Sharded::default();
        for i in 0..1000u32 {
            m.insert((i as u16, i), i as u64);
        }
        assert_eq!(m.len(), 1000);
        assert_eq!(m.get(&(7, 7)), Some(7));
        m.remove_if(|k, _| k.1 % 2 == 0);
        assert_eq!(m.len(), 500);
        assert_eq!(m.get(&(8, 8)), None);
    }

    #[test]
    fn range_overlap() {
        // 2^9 pages at 0x20_0000 cover one 2 MiB page
        assert!(overlaps(0x20_0000, 1, 0x20_0000, 9));
        assert!(overlaps(0x20_1000, 0, 0x20_0000, 9));
        assert!(!overlaps(0x40_0000, 0, 0x20_0000, 9));
        // a 4 KiB invalidation inside a cached 1 GiB page hits it
        assert!(overlaps(0x4000_0000, 2, 0x4123_4000, 0));
        // the address is aligned down to the mask
        assert!(overlaps(0x1000, 0, 0x1fff, 1));
        // the last pages of the space, which end at 2^64
        assert!(overlaps(0xffff_ffff_c000_0000, 2, 0xffff_ffff_f000_0000, 0));
        assert!(overlaps(0xffff_ffff_ffff_f000, 0, 0xffff_ffff_ffff_f000, 0));
        assert!(!overlaps(0xffff_ffff_c000_0000, 2, 0x1000, 0));
    }
}
