//! The configuration cache (IHI 0070 §3.21.3, §4.3): resolved STE+CD configurations keyed
//! by StreamID and SubstreamID, filled by lookups and emptied by the CMD_CFGI_* commands.
//!
//! One entry caches what the STE and the chosen CD said together, so invalidating an STE
//! drops every entry of the StreamID (an STE change may point at another CD table), and
//! invalidating a CD drops the entries that used it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::stream::StreamConfig;

type Key = (u32, Option<u32>);

/// Counters of the configuration cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that read the tables.
    pub misses: u64,
    /// Entries dropped by invalidations.
    pub invalidated: u64,
}

/// Shards of the cache, by StreamID: a lookup takes one shard's read lock.
const SHARDS: usize = 16;

type Shard = HashMap<Key, StreamConfig>;

/// Entries, and an epoch every invalidation advances: a lookup that began before an
/// invalidation (and may have read the old tables) does not fill the cache after it.
#[derive(Debug)]
pub(crate) struct ConfigCache {
    shards: Vec<RwLock<Shard>>,
    /// Shared with the TLB and the first-level cache (see `microtlb`).
    epoch: Arc<AtomicU64>,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidated: AtomicU64,
}

impl ConfigCache {
    /// An empty cache advancing `epoch` around its invalidations.
    pub fn new(epoch: Arc<AtomicU64>) -> Self {
        ConfigCache {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            epoch,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            invalidated: AtomicU64::new(0),
        }
    }
}

impl ConfigCache {
    fn read(&self, sid: u32) -> RwLockReadGuard<'_, Shard> {
        self.shards[sid as usize % SHARDS]
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, i: usize) -> RwLockWriteGuard<'_, Shard> {
        self.shards[i].write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, sid: u32, ssid: Option<u32>) -> Option<StreamConfig> {
        let hit = self.read(sid).get(&(sid, ssid)).copied();
        let counter = if hit.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        hit
    }

    /// The entry for `sid` / `ssid`, counting a hit but not a miss (the lookup that follows
    /// a miss counts it).
    pub fn peek(&self, sid: u32, ssid: Option<u32>) -> Option<StreamConfig> {
        let hit = self.read(sid).get(&(sid, ssid)).copied();
        if hit.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    /// The current epoch, read before a lookup reads the registers and tables.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Fills an entry resolved since `epoch`, unless an invalidation came in between.
    pub fn insert(&self, sid: u32, ssid: Option<u32>, cfg: StreamConfig, epoch: u64) {
        let mut m = self.write(sid as usize % SHARDS);
        if self.epoch.load(Ordering::Acquire) == epoch {
            m.insert((sid, ssid), cfg);
        }
    }

    fn retain(&self, keep: impl Fn(&Key) -> bool) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let mut dropped = 0;
        for i in 0..SHARDS {
            let mut m = self.write(i);
            let before = m.len();
            m.retain(|k, _| keep(k));
            dropped += (before - m.len()) as u64;
        }
        // Again after: a lookup that began while the purge ran fills nothing.
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.invalidated.fetch_add(dropped, Ordering::Relaxed);
    }

    /// CMD_CFGI_STE_RANGE / CFGI_STE / CFGI_CD_ALL: StreamIDs `first..=last`.
    pub fn invalidate_sids(&self, first: u32, last: u32) {
        self.retain(|&(sid, _)| sid < first || sid > last);
    }

    /// CMD_CFGI_CD: the entries of `sid` that used CD `ssid` (a transaction without
    /// SubstreamID uses CD 0).
    pub fn invalidate_cd(&self, sid: u32, ssid: u32) {
        self.retain(|&(s, ss)| s != sid || ss.unwrap_or(0) != ssid);
    }

    pub fn clear(&self) {
        self.retain(|_| false);
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            invalidated: self.invalidated.load(Ordering::Relaxed),
        }
    }
}
