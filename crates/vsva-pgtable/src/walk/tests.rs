//! Walks racing with writers of the entries they use, made deterministic: [`Racing`] memory
//! lets another agent rewrite one entry just before each of the walker's compare-and-swaps on
//! it, i.e. between the walk's reads and its A/D updates.

use super::*;
use crate::fault::Stage;
use crate::table::PageTable;
use crate::testutil::{Racing, frames};
use crate::vtd_ss::{self, VtdSecondStage};
use crate::x86::{X86Flags, X86Paging};
use std::sync::atomic::Ordering::Relaxed;

const VA: u64 = 0x7f12_3456_7000;
/// The frame the PTE maps at first.
const OLD: u64 = 0x40_0000;
/// The frame a writer re-points it to.
const NEW: u64 = 0x80_0000;
const U: Access = Access::READ;
const UW: Access = Access::READ.union(Access::WRITE);
const A: u64 = X86Flags::A.bits();
const D: u64 = X86Flags::D.bits();

/// A user RW PTE for `frame`, without A/D.
fn pte(frame: u64) -> u64 {
    X86Paging::default().encode_leaf(frame, PageSize::Size4K, Perm::USER_RW)
}

/// A 4-level table mapping `VA` to `OLD`, with no A/D set anywhere yet.
fn table() -> PageTable<X86Paging> {
    let pt = PageTable::new(X86Paging::default(), frames(16 << 20)).unwrap();
    pt.map(VA, OLD, PageSize::Size4K, Perm::USER_RW).unwrap();
    pt
}

/// Where the entry of `level` used to translate `VA` lives.
fn slot<F: Format>(pt: &PageTable<F>, level: u8) -> u64 {
    let mut table = pt.root();
    for l in (level + 1..=pt.format().levels()).rev() {
        let e = pt.memory().load_u64(table + index(VA, l) * 8).unwrap();
        table = pt.format().table_addr(e);
    }
    table + index(VA, level) * 8
}

fn walk_on<F: Format>(
    pt: &PageTable<F>,
    mem: &Racing,
    access: Access,
) -> Result<Translation, Fault> {
    walk(
        pt.format(),
        mem,
        pt.root(),
        VA,
        access,
        &mut Direct,
        &mut (),
    )
}

/// A write walk on `mem` ends at `OLD` without a restart (4 references, 3 loads besides the
/// PTE's), after two swaps on the PTE, and leaves A and D set there.
fn assert_write_sets_d_in_a_second_swap(pt: &PageTable<X86Paging>, mem: &Racing) {
    let t = walk_on(pt, mem, UW).unwrap();
    assert_eq!((t.page_base(), t.refs), (OLD, 4));
    assert_eq!(mem.other_loads.load(Relaxed), 3);
    assert_eq!(mem.swaps.load(Relaxed), 2);
    assert_eq!(pt.lookup(VA).unwrap().entry, pte(OLD) | A | D);
}

#[test]
fn a_concurrent_accessed_dirty_setter_costs_no_restart() {
    // Another walker sets A and D in the PTE between this write's reads and its swap there:
    // the one failed swap finds everything set, and the walk ends without reading again.
    let pt = table();
    let mem = Racing::new(pt.memory(), slot(&pt, 1), [|e: u64| e | A | D]);
    let t = walk_on(&pt, &mem, UW).unwrap();
    assert_eq!(t.page_base(), OLD);
    assert_eq!((t.refs, mem.other_loads.load(Relaxed)), (4, 3));
    assert_eq!(mem.swaps.load(Relaxed), 1);
    assert_eq!(pt.lookup(VA).unwrap().entry, pte(OLD) | A | D);

    // When the other walker only read (set A), this one still sets D, on the value found.
    let pt = table();
    let mem = Racing::new(pt.memory(), slot(&pt, 1), [|e: u64| e | A]);
    assert_write_sets_d_in_a_second_swap(&pt, &mem);
}

#[test]
fn accessed_cleared_by_software_meanwhile_is_set_again_without_restart() {
    let pt = table();
    pt.walk(VA, U).unwrap();
    // Ageing clears A between this write's reads (A set, D clear) and its swap for D.
    let mem = Racing::new(pt.memory(), slot(&pt, 1), [|e: u64| e & !A]);
    assert_write_sets_d_in_a_second_swap(&pt, &mem);
}

#[test]
fn an_entry_repointed_during_the_walk_translates_to_the_new_frame() {
    for (access, d) in [(U, 0), (UW, D)] {
        let pt = table();
        let mem = Racing::new(pt.memory(), slot(&pt, 1), [|_| pte(NEW)]);
        let t = walk_on(&pt, &mem, access).unwrap();
        assert_eq!(t.output, NEW);
        // A and D go to the entry the translation came from.
        assert_eq!(pt.lookup(VA).unwrap().entry, pte(NEW) | A | d);
        // Nothing lies below a leaf: nothing was read again.
        assert_eq!((t.refs, mem.other_loads.load(Relaxed)), (4, 3));
    }
}

#[test]
fn a_table_pointer_repointed_during_the_walk_is_followed_to_the_new_table() {
    let pt = table();
    // Another table in the same memory maps VA to NEW through a PDE of its own.
    let other = PageTable::new(X86Paging::default(), pt.frames().clone()).unwrap();
    other.map(VA, NEW, PageSize::Size4K, Perm::USER_RW).unwrap();
    let new_pde = pt.memory().load_u64(slot(&other, 2)).unwrap();
    let (pde, old_pte) = (slot(&pt, 2), slot(&pt, 1));
    let mem = Racing::new(pt.memory(), pde, [move |_| new_pde]);
    let t = walk_on(&pt, &mem, UW).unwrap();
    assert_eq!(t.page_base(), NEW);
    // The new PTE is read (one more reference) and gets A and D; the old one nothing.
    assert_eq!(t.refs, 5);
    assert_eq!(pt.memory().load_u64(pde).unwrap(), new_pde | A);
    assert_eq!(other.lookup(VA).unwrap().entry, pte(NEW) | A | D);
    assert_eq!(pt.memory().load_u64(old_pte).unwrap(), pte(OLD));
}

#[test]
fn an_entry_made_not_present_during_the_walk_gives_its_not_present_fault() {
    let pt = table();
    // The OS swaps the page out: the PTE becomes a software entry with P = 0.
    let swap = 0x1234_5000;
    let mem = Racing::new(pt.memory(), slot(&pt, 1), [move |_| swap]);
    let f = walk_on(&pt, &mem, U).unwrap_err();
    assert_eq!(
        (f.reason, f.level, f.entry),
        (FaultReason::NotPresent, 1, swap)
    );
    // The walker never writes into a non-present entry.
    assert_eq!(pt.memory().load_u64(slot(&pt, 1)).unwrap(), swap);
}

#[test]
fn an_entry_made_read_only_during_a_write_gives_the_new_entry_s_permission_fault() {
    let pt = table();
    let ro = X86Paging::default().encode_leaf(OLD, PageSize::Size4K, Perm::READ | Perm::USER);
    let mem = Racing::new(pt.memory(), slot(&pt, 1), [move |_| ro]);
    let f = walk_on(&pt, &mem, UW).unwrap_err();
    assert_eq!(
        (f.reason, f.level, f.entry),
        (FaultReason::Permission, 1, ro)
    );
    assert!(!f.rights.contains(Perm::WRITE));
    assert_eq!(
        pt.memory().load_u64(slot(&pt, 1)).unwrap(),
        ro,
        "no A, no D"
    );
}

#[test]
fn a_thread_repointing_the_pte_before_every_swap_does_not_make_the_walk_fault() {
    // A CPU thread re-pointing the PTE between two frames in a loop, the race the walker used
    // to lose 65 times in a row. Here it wins 200 races in a row, and the walk ends with the
    // entry the thread left, without reading anything again.
    let pt = table();
    let writes = (0..200).map(|k| move |_| pte(if k % 2 == 0 { NEW } else { OLD }));
    let mem = Racing::new(pt.memory(), slot(&pt, 1), writes);
    let t = walk_on(&pt, &mem, UW).unwrap();
    assert_eq!((t.page_base(), t.refs), (OLD, 4));
    assert_eq!((mem.pending(), mem.swaps.load(Relaxed)), (0, 201));
    assert_eq!(pt.lookup(VA).unwrap().entry, pte(OLD) | A | D);
}

#[test]
fn only_a_writer_outlasting_max_ad_retries_makes_the_walk_fault_with_contention() {
    // A new value (bits 62:52 are ignored) before every swap of the walker.
    for writes in [MAX_AD_RETRIES, MAX_AD_RETRIES + 1] {
        let pt = table();
        let script = (1..=u64::from(writes)).map(|k| move |_| pte(OLD) | k << 52);
        let mem = Racing::new(pt.memory(), slot(&pt, 1), script);
        let last = pte(OLD) | u64::from(writes) << 52;
        match walk_on(&pt, &mem, U) {
            Ok(t) if writes == MAX_AD_RETRIES => {
                assert_eq!(t.page_base(), OLD);
                assert_eq!(pt.lookup(VA).unwrap().entry, last | A);
            }
            Err(f) if writes > MAX_AD_RETRIES => {
                assert_eq!(
                    (f.reason, f.level, f.entry),
                    (FaultReason::Contention, 1, last)
                );
                assert_eq!(pt.lookup(VA).unwrap().entry, last);
            }
            r => panic!("{writes} writes: {r:?}"),
        }
    }
}

#[test]
fn second_stage_entries_race_the_same_way() {
    let ss = VtdSecondStage {
        ad: true,
        ..VtdSecondStage::four_level()
    };
    let leaf = move |frame| ss.encode_leaf(frame, PageSize::Size4K, Perm::RW);
    let pt = PageTable::new(ss, frames(16 << 20)).unwrap();
    pt.map(VA, OLD, PageSize::Size4K, Perm::RW).unwrap();
    // Another walker's A/D (bits 8 and 9): no restart.
    let mem = Racing::new(pt.memory(), slot(&pt, 1), [|e: u64| e | vtd_ss::A]);
    let t = walk_on(&pt, &mem, UW).unwrap();
    assert_eq!((t.page_base(), t.refs), (OLD, 4));
    assert_eq!(mem.other_loads.load(Relaxed), 3);
    assert_eq!(
        pt.lookup(VA).unwrap().entry,
        leaf(OLD) | vtd_ss::A | vtd_ss::D
    );
    // Re-pointed (A cleared first, so that the read has a flag to set), then made not
    // present (R = W = 0).
    pt.memory().store_u64(slot(&pt, 1), leaf(OLD)).unwrap();
    let mem = Racing::new(pt.memory(), slot(&pt, 1), [move |_| leaf(NEW)]);
    assert_eq!(walk_on(&pt, &mem, U).unwrap().page_base(), NEW);
    let mem = Racing::new(
        pt.memory(),
        slot(&pt, 2),
        [|e: u64| e & !(vtd_ss::R | vtd_ss::W)],
    );
    let pde = pt.memory().load_u64(slot(&pt, 2)).unwrap();
    pt.memory()
        .store_u64(slot(&pt, 2), pde & !vtd_ss::A)
        .unwrap();
    let f = walk_on(&pt, &mem, U).unwrap_err();
    assert_eq!(
        (f.stage, f.reason, f.level),
        (Stage::Second, FaultReason::NotPresent, 2)
    );
}
