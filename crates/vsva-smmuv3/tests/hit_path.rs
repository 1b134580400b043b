//! The translation hot path (a TLB hit) allocates nothing (DESIGN.md: "the translation hot
//! path takes no global lock and allocates nothing"): counted by a global allocator, on the
//! test's own thread only (the test harness's main thread allocates while the test runs).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use common::xlate::*;
use vsva_mem::Access;
use vsva_pgtable::Perm;

struct Counting;

thread_local! {
    /// Counting on this thread (a const initializer with no destructor: reading it never
    /// allocates).
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above, i.e. from the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn tlb_hits_allocate_nothing() {
    let r = S1Rig::new();
    r.map(VA, PA, Perm::USER_RW);
    let nested = NestedRig::new();
    // Fill the configuration cache and the TLB.
    r.b.smmu.translate(&txn(SID, VA, Access::WRITE)).unwrap();
    nested
        .b
        .smmu
        .translate(&txn(SID, VA, Access::WRITE))
        .unwrap();
    COUNTING.with(|c| c.set(true));
    for i in 0..1000 {
        let a = if i % 2 == 0 {
            Access::READ
        } else {
            Access::WRITE
        };
        let t = r.b.smmu.translate(&txn(SID, VA + (i % 4096), a)).unwrap();
        assert_eq!(t.addr, PA + (i % 4096));
        let t = nested.b.smmu.translate(&txn(SID, VA + 8, a)).unwrap();
        assert_eq!(t.addr, PA + 8);
    }
    COUNTING.with(|c| c.set(false));
    assert_eq!(ALLOCS.load(Ordering::SeqCst), 0);
    assert_eq!(r.b.smmu.stats().tlb.hits, 1000);
}
