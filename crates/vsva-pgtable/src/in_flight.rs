//! Table walks in flight, and the wait an invalidation makes for them — shared by every
//! IOMMU model.
//!
//! A walk that misses an IOMMU's caches reads the tables without any lock. An invalidation
//! that completes while such a walk is still reading — one that began before the entries
//! were cleared — would let software free a table the walk is about to read (munmap and exit
//! free page-table frames once their invalidation completes). Every IOMMU promises that once
//! an invalidation completes it holds no translation from the old entries, cached or in use
//! (VT-d 4.1 §6.5.2.9, the invalidation wait; IHI 0070 §4.7.3, CMD_SYNC; DESIGN.md "Ordering
//! rules"). So a model's cache purge (VT-d) or CMD_SYNC (SMMUv3) waits here for every walk
//! begun before it.
//!
//! Walks count themselves in one of two slots, chosen by the parity of a drain generation; a
//! drain moves new walks to the other slot and waits for its old slot to empty. Drains are
//! serialized, so the slot a drain waits on receives no new walks while it waits. A walk costs
//! two atomic adds and two loads, on the miss path only; the cache-hit path is untouched.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The walks in flight of one IOMMU unit.
#[derive(Debug, Default)]
pub struct Walks {
    generation: AtomicU64,
    slots: [AtomicU64; 2],
    /// Serializes drains.
    draining: Mutex<()>,
}

/// A walk in flight: dropped when the walk is over.
#[must_use = "the walk ends when this is dropped"]
pub struct Walk<'a> {
    slot: &'a AtomicU64,
}

impl Drop for Walk<'_> {
    fn drop(&mut self) {
        self.slot.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Walks {
    /// A walk begins.
    pub fn begin(&self) -> Walk<'_> {
        loop {
            let g = self.generation.load(Ordering::SeqCst);
            let slot = &self.slots[(g & 1) as usize];
            slot.fetch_add(1, Ordering::SeqCst);
            // A drain that moved the generation meanwhile may have found this slot empty
            // already: count in the new one instead.
            if self.generation.load(Ordering::SeqCst) == g {
                return Walk { slot };
            }
            slot.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Returns once every walk begun before this call has ended. Must not be called from
    /// inside a walk.
    pub fn drain(&self) {
        let _one = self.draining.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.generation.fetch_add(1, Ordering::SeqCst);
        let slot = &self.slots[(old & 1) as usize];
        let mut spins = 0u32;
        while slot.load(Ordering::SeqCst) != 0 {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, mpsc};
    use std::thread;

    use super::*;

    #[test]
    fn a_drain_waits_for_a_walk_begun_before_it_and_not_for_one_begun_after() {
        let walks = Arc::new(Walks::default());
        let early = walks.begin();
        let drained = Arc::new(AtomicBool::new(false));
        let (started_tx, started_rx) = mpsc::channel();
        let t = {
            let (walks, drained) = (walks.clone(), drained.clone());
            thread::spawn(move || {
                started_tx.send(()).unwrap();
                walks.drain();
                drained.store(true, Ordering::SeqCst);
            })
        };
        started_rx.recv().unwrap();
        // Wait until the drain has moved the generation, then begin a walk it must not wait
        // for.
        while walks.generation.load(Ordering::SeqCst) == 0 {
            thread::yield_now();
        }
        let late = walks.begin();
        thread::sleep(std::time::Duration::from_millis(20));
        assert!(
            !drained.load(Ordering::SeqCst),
            "the drain ended under a walk begun before it"
        );
        drop(early);
        t.join().unwrap();
        assert!(drained.load(Ordering::SeqCst));
        drop(late);
        walks.drain();
    }

    #[test]
    fn drains_racing_walks_never_miss_one() {
        // A walker marks itself busy inside its walk; a drain must never return while a walk
        // begun before it is still marked.
        let walks = Arc::new(Walks::default());
        let busy = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let walker = {
            let (walks, busy, stop) = (walks.clone(), busy.clone(), stop.clone());
            thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let w = walks.begin();
                    n += 1;
                    busy.store(n, Ordering::SeqCst);
                    std::hint::spin_loop();
                    busy.store(0, Ordering::SeqCst);
                    drop(w);
                }
            })
        };
        for _ in 0..20_000 {
            let before = busy.load(Ordering::SeqCst);
            walks.drain();
            if before != 0 {
                let after = busy.load(Ordering::SeqCst);
                assert_ne!(
                    after, before,
                    "walk {before} outlived a drain begun after it"
                );
            }
        }
        stop.store(true, Ordering::SeqCst);
        walker.join().unwrap();
    }
}
