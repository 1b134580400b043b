use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;

use vsva_mem::{Access, PageSize, Pasid};

use super::*;
use crate::atc::{AtcEntry, AtcLookup, TranslationFlags};

fn pasid(n: u32) -> Option<Pasid> {
    Some(Pasid::new(n).unwrap())
}

fn rw(translated: u64) -> AtcEntry {
    AtcEntry {
        translated,
        flags: TranslationFlags::READ | TranslationFlags::WRITE,
    }
}

const VA: u64 = 0x7f00_0000_0000;

#[test]
fn a_completion_with_no_invalidation_since_its_request_is_cached_and_usable() {
    let atc = OrderedAtc::with_capacity(8);
    let t = atc.ticket();
    let mut a = atc.access();
    assert_eq!(
        a.fill(t, pasid(1), VA, PageSize::Size4K, rw(0x5000)),
        Ok(Fill::Usable)
    );
    assert!(matches!(
        a.lookup(pasid(1), VA + 8, Access::WRITE),
        AtcLookup::Hit {
            translated: 0x5008,
            ..
        }
    ));
}

#[test]
fn a_completion_outstanding_across_an_overlapping_invalidation_is_neither_cached_nor_usable() {
    // PCIe 6.0 §10.3.1: a translation requested before the invalidation arrived is not used.
    let atc = OrderedAtc::with_capacity(8);
    let t = atc.ticket();
    assert_eq!(atc.invalidate(pasid(1), VA, 4096, false), 0);
    let mut a = atc.access();
    assert_eq!(
        a.fill(t, pasid(1), VA, PageSize::Size4K, rw(0x5000)),
        Ok(Fill::Stale)
    );
    assert_eq!(a.lookup(pasid(1), VA, Access::READ), AtcLookup::Miss);
}

#[test]
fn a_2m_completion_is_stale_after_an_invalidation_of_one_of_its_4k_pages() {
    let atc = OrderedAtc::with_capacity(8);
    let t = atc.ticket();
    atc.invalidate(pasid(1), VA + 0x1f_f000, 4096, false);
    let mut a = atc.access();
    assert_eq!(
        a.fill(t, pasid(1), VA, PageSize::Size2M, rw(0x20_0000)),
        Ok(Fill::Stale)
    );
}

#[test]
fn invalidations_that_do_not_reach_a_completion_leave_it_usable() {
    let atc = OrderedAtc::with_capacity(8);
    let t = atc.ticket();
    atc.invalidate(pasid(1), VA + 4096, 4096, false); // the next page
    atc.invalidate(pasid(2), VA, 4096, false); // another PASID
    atc.invalidate(pasid(1), VA, 0, false); // nothing at all
    let mut a = atc.access();
    assert_eq!(
        a.fill(t, pasid(1), VA, PageSize::Size4K, rw(0x5000)),
        Ok(Fill::Usable)
    );
    drop(a);
    // An entry without PASID is not reached by an invalidation with one.
    let t = atc.ticket();
    atc.invalidate(pasid(3), 0x1000, 4096, true);
    let mut a = atc.access();
    assert_eq!(
        a.fill(t, None, 0x1000, PageSize::Size4K, rw(0x9000)),
        Ok(Fill::Usable)
    );
}

#[test]
fn scope_of_invalidations_follows_the_atc_rules_for_global_and_no_pasid_requests() {
    let atc = OrderedAtc::with_capacity(8);
    let global = AtcEntry {
        translated: 0x5000,
        flags: TranslationFlags::READ | TranslationFlags::GLOBAL,
    };
    // A Global translation is reached by any PASID's invalidation.
    let t = atc.ticket();
    atc.invalidate(pasid(7), VA, 4096, false);
    assert_eq!(
        atc.access().fill(t, pasid(1), VA, PageSize::Size4K, global),
        Ok(Fill::Stale)
    );
    // An invalidation without PASID reaches PASID translations.
    let t = atc.ticket();
    atc.invalidate(None, VA, 4096, false);
    assert_eq!(
        atc.access()
            .fill(t, pasid(1), VA, PageSize::Size4K, rw(0x5000)),
        Ok(Fill::Stale)
    );
    // Global Invalidate reaches every PASID.
    let t = atc.ticket();
    atc.invalidate(pasid(9), VA, 4096, true);
    assert_eq!(
        atc.access()
            .fill(t, pasid(1), VA, PageSize::Size4K, rw(0x5000)),
        Ok(Fill::Stale)
    );
}

#[test]
fn a_ticket_older_than_the_invalidation_log_is_stale_even_for_unrelated_ranges() {
    let atc = OrderedAtc::with_capacity(8);
    let t = atc.ticket();
    for i in 0..LOG as u64 {
        atc.invalidate(pasid(1), VA + (i + 1) * 4096, 4096, false);
    }
    assert_eq!(
        atc.access()
            .fill(t, pasid(1), VA, PageSize::Size4K, rw(0x5000)),
        Ok(Fill::Usable),
        "{LOG} unrelated invalidations are still remembered"
    );
    atc.invalidate(pasid(1), VA + 0x100_0000, 4096, false);
    assert_eq!(
        atc.access()
            .fill(t, pasid(1), VA, PageSize::Size4K, rw(0x5000)),
        Ok(Fill::Stale)
    );
}

#[test]
fn clearing_the_atc_makes_every_outstanding_completion_stale() {
    let atc = OrderedAtc::with_capacity(8);
    let t = atc.ticket();
    atc.clear();
    assert_eq!(
        atc.access().fill(t, None, 0, PageSize::Size4K, rw(0x5000)),
        Ok(Fill::Stale)
    );
}

#[test]
fn an_atc_of_no_entries_lets_the_same_completion_serve_again_until_invalidated() {
    let atc = OrderedAtc::with_capacity(0);
    let t = atc.ticket();
    for _ in 0..3 {
        let mut a = atc.access();
        assert_eq!(
            a.fill(t, pasid(1), VA, PageSize::Size4K, rw(0x5000)),
            Ok(Fill::Usable)
        );
        assert_eq!(a.lookup(pasid(1), VA, Access::READ), AtcLookup::Miss);
    }
    atc.invalidate(pasid(1), VA, 4096, false);
    assert_eq!(
        atc.access()
            .fill(t, pasid(1), VA, PageSize::Size4K, rw(0x5000)),
        Ok(Fill::Stale)
    );
}

#[test]
fn a_misaligned_completion_is_refused_not_cached() {
    let atc = OrderedAtc::with_capacity(8);
    let t = atc.ticket();
    assert!(
        atc.access()
            .fill(t, pasid(1), VA + 8, PageSize::Size4K, rw(0x5000))
            .is_err()
    );
    assert!(atc.is_empty());
}

#[test]
fn an_invalidation_returns_only_after_the_access_in_progress_ends() {
    // PCIe 6.0 §10.3.1: the Invalidate Completion follows every request that used the old
    // translation. The hook tells when the invalidation is waiting; it must not have
    // returned before the access is dropped.
    let atc = Arc::new(OrderedAtc::with_capacity(8));
    let (waiting_tx, waiting_rx) = mpsc::channel();
    let waiting_tx = std::sync::Mutex::new(waiting_tx);
    atc.set_hook(Arc::new(move |p| {
        if p == AtsPoint::InvalidationWaits {
            let _ = waiting_tx.lock().unwrap().send(());
        }
    }))
    .ok()
    .unwrap();
    let t = atc.ticket();
    let mut access = atc.access();
    access
        .fill(t, pasid(1), VA, PageSize::Size4K, rw(0x5000))
        .unwrap();
    let returned = Arc::new(AtomicBool::new(false));
    let inv = {
        let (atc, returned) = (atc.clone(), returned.clone());
        thread::spawn(move || {
            let n = atc.invalidate(pasid(1), VA, 4096, false);
            returned.store(true, Ordering::SeqCst);
            n
        })
    };
    waiting_rx.recv().unwrap();
    // The access still uses its translation: the invalidation is blocked behind it.
    assert!(matches!(
        access.lookup(pasid(1), VA, Access::WRITE),
        AtcLookup::Hit { .. }
    ));
    assert!(!returned.load(Ordering::SeqCst));
    drop(access);
    assert_eq!(inv.join().unwrap(), 1);
    assert!(returned.load(Ordering::SeqCst));
    assert_eq!(
        atc.access().lookup(pasid(1), VA, Access::READ),
        AtcLookup::Miss
    );
}

#[test]
fn racing_fills_and_invalidations_never_leave_an_entry_from_before_the_last_invalidation() {
    // One thread fills translations of one page generation by generation; another
    // invalidates it. After each invalidation returns, whatever the ATC holds for the page
    // was requested after that invalidation.
    let atc = Arc::new(OrderedAtc::with_capacity(4));
    let start = Arc::new(Barrier::new(2));
    let filler = {
        let (atc, start) = (atc.clone(), start.clone());
        thread::spawn(move || {
            start.wait();
            for _ in 0..20_000 {
                let t = atc.ticket();
                // The "translated address" says which ticket the completion came with.
                let _ =
                    atc.access()
                        .fill(t, pasid(1), VA, PageSize::Size4K, rw(t.generation << 12));
            }
        })
    };
    start.wait();
    for _ in 0..5_000 {
        atc.invalidate(pasid(1), VA, 4096, false);
        let now = atc.ticket().generation;
        if let AtcLookup::Hit { translated, .. } = atc.access().lookup(pasid(1), VA, Access::READ) {
            assert!(
                translated >> 12 >= now,
                "{:#x} cached from before {now}",
                translated
            );
        }
    }
    filler.join().unwrap();
}
