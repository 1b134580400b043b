use super::*;
use crate::FaultReason;
use crate::testutil::frames;
use crate::vtd_ss::VtdSecondStage;
use crate::x86::X86Paging;
use proptest::prelude::*;
use std::collections::BTreeMap;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const U: Access = Access::READ;
const UW: Access = Access::READ.union(Access::WRITE);

fn x86() -> PageTable<X86Paging> {
    PageTable::new(X86Paging::default(), frames(64 * MIB)).unwrap()
}

#[test]
fn map_lookup_unmap_4k() {
    let pt = x86();
    pt.map(0x1000, 0x5000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    let leaf = pt.lookup(0x1abc).unwrap();
    assert_eq!(
        (leaf.va, leaf.pa, leaf.size),
        (0x1000, 0x5000, PageSize::Size4K)
    );
    assert_eq!(pt.table_frames(), 4);
    let un = pt.unmap(0x1000, 0x1000).unwrap();
    assert_eq!(un.leaves.len(), 1);
    assert_eq!(un.leaves[0].pa, 0x5000);
    // the PT, PD and PDPT became empty and were unlinked; the root stays
    assert_eq!(un.tables.len(), 3);
    assert_eq!(pt.table_frames(), 1);
    let before = pt.frames().allocated_frames();
    pt.free_tables(&un.tables).unwrap();
    assert_eq!(pt.frames().allocated_frames(), before - 3);
    assert!(pt.lookup(0x1000).is_none());
    assert_eq!(
        pt.walk(0x1000, U).unwrap_err().reason,
        FaultReason::NotPresent
    );
}

#[test]
fn tables_shared_by_neighbours_survive_a_partial_unmap() {
    let pt = x86();
    pt.map(0x1000, 0x5000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    pt.map(0x2000, 0x6000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    let un = pt.unmap(0x1000, 0x1000).unwrap();
    assert!(un.tables.is_empty());
    assert_eq!(pt.walk(0x2000, U).unwrap().output, 0x6000);
}

#[test]
fn map_refuses_overlaps_and_misalignment() {
    let pt = x86();
    pt.map(0x20_0000, 0x40_0000, PageSize::Size2M, Perm::USER_RW)
        .unwrap();
    assert!(matches!(
        pt.map(0x20_1000, 0x1000, PageSize::Size4K, Perm::READ),
        Err(MapError::AlreadyMapped { .. })
    ));
    pt.map(0x60_0000, 0x1000, PageSize::Size4K, Perm::READ)
        .unwrap();
    assert!(matches!(
        pt.map(0x60_0000, 0x80_0000, PageSize::Size2M, Perm::READ),
        Err(MapError::AlreadyMapped { .. })
    ));
    assert!(matches!(
        pt.map(0x1000, 0x1000, PageSize::Size2M, Perm::READ),
        Err(MapError::Misaligned { addr: 0x1000, .. })
    ));
    assert!(matches!(
        pt.map(0x40_0000, 0x1000, PageSize::Size2M, Perm::READ),
        Err(MapError::Misaligned { addr: 0x1000, .. })
    ));
    assert!(matches!(
        pt.map(1 << 47, 0, PageSize::Size4K, Perm::READ),
        Err(MapError::AddressWidth { .. })
    ));
    let no1g = PageTable::new(
        X86Paging {
            page_1g: false,
            ..X86Paging::default()
        },
        frames(16 * MIB),
    )
    .unwrap();
    assert!(matches!(
        no1g.map(0, 0, PageSize::Size1G, Perm::READ),
        Err(MapError::Unsupported { .. })
    ));
}

#[test]
fn unmap_and_protect_refuse_to_split_leaves() {
    let pt = x86();
    pt.map(GIB, 2 * GIB, PageSize::Size1G, Perm::USER_RW)
        .unwrap();
    assert!(matches!(
        pt.unmap(GIB + 0x1000, 0x1000),
        Err(MapError::SplitsLeaf { leaf, size: PageSize::Size1G }) if leaf == GIB
    ));
    assert!(matches!(
        pt.protect(GIB, 0x1000, Perm::READ),
        Err(MapError::SplitsLeaf { .. })
    ));
    // nothing changed
    assert_eq!(pt.walk(GIB + 5, UW).unwrap().output, 2 * GIB + 5);
    assert_eq!(pt.unmap(0, 4 * GIB).unwrap().leaves.len(), 1);
    assert!(matches!(
        pt.unmap(0x1000, 0),
        Err(MapError::BadRange { .. })
    ));
    assert!(matches!(
        pt.unmap(u64::MAX - 0xfff, 0x2000),
        Err(MapError::BadRange { .. })
    ));
}

#[test]
fn protect_changes_rights_and_keeps_accessed_dirty() {
    let pt = x86();
    pt.map(0x1000, 0x5000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    pt.walk(0x1000, UW).unwrap(); // sets A and D
    let before = pt.lookup(0x1000).unwrap().entry;
    assert_eq!(
        pt.protect(0, 0x10_0000, Perm::READ | Perm::USER).unwrap(),
        1
    );
    let after = pt.lookup(0x1000).unwrap().entry;
    assert_eq!(after & 0x60, before & 0x60);
    assert_eq!(
        pt.walk(0x1000, UW).unwrap_err().reason,
        FaultReason::Permission
    );
    assert_eq!(
        pt.protect(0, 0x10_0000, Perm::READ | Perm::USER).unwrap(),
        0
    );
}

#[test]
fn software_entries_in_leaf_slots() {
    let pt = x86();
    // a non-present entry holding a value (as a swap entry does)
    assert_eq!(pt.set_leaf(0x3000, PageSize::Size4K, 0xabc0).unwrap(), 0);
    let leaf = pt.lookup(0x3000).unwrap();
    assert!(!leaf.present);
    assert_eq!(leaf.entry, 0xabc0);
    assert_eq!(
        pt.walk(0x3000, U).unwrap_err().reason,
        FaultReason::NotPresent
    );
    assert!(matches!(
        pt.map(0x3000, 0x5000, PageSize::Size4K, Perm::READ),
        Err(MapError::AlreadyMapped { .. })
    ));
    let un = pt.unmap(0x3000, 0x1000).unwrap();
    assert_eq!(un.leaves.len(), 1);
    assert!(!un.leaves[0].present);
}

#[test]
fn higher_half_ranges() {
    let pt = x86();
    let kva = 0xffff_8880_0000_0000;
    pt.map(kva, 0x20_0000, PageSize::Size2M, Perm::RW).unwrap();
    pt.map(kva + 0x20_0000, 0x40_0000, PageSize::Size2M, Perm::RW)
        .unwrap();
    let mut seen = vec![];
    pt.for_each_leaf(kva, 0x40_0000, &mut |l| {
        seen.push(l.va);
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, vec![kva, kva + 0x20_0000]);
    let t = pt
        .walk(kva + 0x20_0010, Access::READ | Access::PRIV)
        .unwrap();
    assert_eq!(t.output, 0x40_0010);
    let un = pt.unmap(kva, 0x40_0000).unwrap();
    assert_eq!(un.leaves.len(), 2);
    assert_eq!(pt.table_frames(), 1);
}

#[test]
fn destroy_frees_every_table() {
    let fr = frames(64 * MIB);
    let pt = PageTable::new(X86Paging::default(), fr.clone()).unwrap();
    for i in 0..8 {
        pt.map(i * GIB + 0x1000, 0x1000, PageSize::Size4K, Perm::READ)
            .unwrap();
    }
    assert_eq!(fr.allocated_frames(), 1 + 1 + 8 * 2);
    pt.destroy().unwrap();
    assert_eq!(fr.allocated_frames(), 0);
}

#[test]
fn second_stage_tables_build_and_walk() {
    let f = VtdSecondStage::four_level();
    let pt = PageTable::new(f, frames(16 * MIB)).unwrap();
    pt.map(0x20_0000, 0x80_0000, PageSize::Size2M, Perm::READ)
        .unwrap();
    let t = pt.walk(0x20_1234, Access::READ).unwrap();
    assert_eq!((t.output, t.size), (0x80_1234, PageSize::Size2M));
    let fault = pt.walk(0x20_1234, Access::WRITE).unwrap_err();
    assert_eq!(fault.reason, FaultReason::Permission);
    assert_eq!(fault.stage, crate::Stage::Second);
    let fault = pt.walk(1 << 48, Access::READ).unwrap_err();
    assert_eq!(fault.reason, FaultReason::AddressWidth);
}

/// Reference model: page start -> (pa, size, perm).
type Reference = BTreeMap<u64, (u64, PageSize, Perm)>;

fn ref_find(r: &Reference, va: u64) -> Option<(u64, u64, PageSize, Perm)> {
    let (&start, &(pa, size, perm)) = r.range(..=va).next_back()?;
    (va < start + size.bytes()).then_some((start, pa, size, perm))
}

fn ref_overlaps(r: &Reference, start: u64, end: u64) -> Vec<u64> {
    let mut v: Vec<u64> = r.range(start..end).map(|(&k, _)| k).collect();
    if let Some((s, ..)) = ref_find(r, start) {
        if !v.contains(&s) {
            v.insert(0, s);
        }
    }
    v
}

fn ref_splits(r: &Reference, start: u64, end: u64) -> bool {
    ref_overlaps(r, start, end).iter().any(|&s| {
        let (_, size, _) = r[&s];
        s < start || s + size.bytes() > end
    })
}

#[derive(Debug, Clone)]
enum Op {
    Map {
        slot: u64,
        size: PageSize,
        perm: Perm,
        frame: u64,
    },
    Unmap {
        start: u64,
        pages: u64,
    },
    Protect {
        start: u64,
        pages: u64,
        perm: Perm,
    },
}

/// The window the property test plays in: 4 GiB, so 1 GiB leaves fit.
const WINDOW: u64 = 4 * GIB;

fn op() -> impl Strategy<Value = Op> {
    let size = prop_oneof![
        6 => Just(PageSize::Size4K),
        3 => Just(PageSize::Size2M),
        1 => Just(PageSize::Size1G)
    ];
    let perm = (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(w, u, x)| {
        let mut p = Perm::READ;
        p.set(Perm::WRITE, w);
        p.set(Perm::USER, u);
        p.set(Perm::EXEC, x);
        p
    });
    // Cluster the 4 KiB activity in the first few MiB so operations collide often.
    prop_oneof![
        5 => (size, perm.clone(), 0u64..2048, 0u64..4096).prop_map(|(size, perm, slot, frame)| Op::Map { slot, size, perm, frame }),
        2 => (0u64..4096, 1u64..1024).prop_map(|(start, pages)| Op::Unmap { start, pages }),
        2 => (0u64..4096, 1u64..1024, perm).prop_map(|(start, pages, perm)| Op::Protect { start, pages, perm }),
    ]
}

fn expected_access(perm: Perm, access: Access) -> bool {
    // user accesses: USER needed, WRITE for writes, EXEC for fetches
    perm.contains(Perm::USER)
        && (!access.is_write() || perm.contains(Perm::WRITE))
        && (!access.is_exec() || perm.contains(Perm::EXEC))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Random map/unmap/protect sequences against a `BTreeMap` reference: after every
    /// sequence, the walker and the reference agree on the translation and the rights of
    /// every page boundary they know of and of random probes.
    #[test]
    fn walker_agrees_with_reference(ops in proptest::collection::vec(op(), 1..60), probes in proptest::collection::vec(0u64..WINDOW, 64)) {
        let pt = PageTable::new(X86Paging { smap: false, smep: false, ..X86Paging::default() }, frames(256 * MIB)).unwrap();
        let mut r = Reference::new();
        for op in ops {
            match op {
                Op::Map { slot, size, perm, frame } => {
                    let va = match size {
                        PageSize::Size4K => slot * 0x1000,
                        PageSize::Size2M => (slot % 2048) * (2 * MIB),
                        PageSize::Size1G => (slot % 4) * GIB,
                    };
                    let pa = (frame + 1) * size.bytes();
                    let end = va + size.bytes();
                    let res = pt.map(va, pa, size, perm);
                    if ref_overlaps(&r, va, end).is_empty() {
                        prop_assert!(res.is_ok(), "{res:?}");
                        r.insert(va, (pa, size, perm));
                    } else {
                        let already = matches!(res, Err(MapError::AlreadyMapped { .. }));
                        prop_assert!(already, "{:?}", res);
                    }
                }
                Op::Unmap { start, pages } => {
                    let (va, len) = (start * 0x1000, pages * 0x1000);
                    let res = pt.unmap(va, len);
                    if ref_splits(&r, va, va + len) {
                        let splits = matches!(res, Err(MapError::SplitsLeaf { .. }));
                        prop_assert!(splits, "{:?}", res);
                    } else {
                        let un = res.unwrap();
                        let gone = ref_overlaps(&r, va, va + len);
                        prop_assert_eq!(un.leaves.iter().map(|l| l.va).collect::<Vec<_>>(), gone.clone());
                        for s in gone { r.remove(&s); }
                        pt.free_tables(&un.tables).unwrap();
                    }
                }
                Op::Protect { start, pages, perm } => {
                    let (va, len) = (start * 0x1000, pages * 0x1000);
                    let res = pt.protect(va, len, perm);
                    if ref_splits(&r, va, va + len) {
                        let splits = matches!(res, Err(MapError::SplitsLeaf { .. }));
                        prop_assert!(splits, "{:?}", res);
                    } else {
                        res.unwrap();
                        for s in ref_overlaps(&r, va, va + len) {
                            r.get_mut(&s).unwrap().2 = perm;
                        }
                    }
                }
            }
        }
        let mut points: Vec<u64> = probes;
        for (&s, &(_, size, _)) in &r {
            points.extend([s, s + size.bytes() - 1, s + size.bytes()]);
        }
        for va in points.into_iter().filter(|&v| v < WINDOW) {
            for access in [U, UW, Access::READ | Access::EXEC] {
                let got = pt.walk(va, access);
                match ref_find(&r, va) {
                    None => {
                        let f = got.unwrap_err();
                        prop_assert_eq!(f.reason, FaultReason::NotPresent);
                    }
                    Some((start, pa, size, perm)) => {
                        if expected_access(perm, access) {
                            let t = got.unwrap();
                            prop_assert_eq!(t.output, pa + (va - start));
                            prop_assert_eq!(t.size, size);
                            prop_assert_eq!(t.rights, perm);
                        } else {
                            let f = got.unwrap_err();
                            prop_assert_eq!(f.reason, FaultReason::Permission);
                            prop_assert_eq!(f.level, size.leaf_level());
                        }
                    }
                }
            }
        }
        // Tear everything down: no table frame may leak.
        let un = pt.unmap(0, WINDOW).unwrap();
        pt.free_tables(&un.tables).unwrap();
        prop_assert_eq!(pt.table_frames(), 1);
        prop_assert_eq!(pt.frames().allocated_frames(), 1);
    }
}

#[test]
fn second_stage_range_ops_reach_the_top_of_the_input_range() {
    // VT-d inputs are plain numbers below 2^AW: bit 47 set is not an "upper half".
    let pt = PageTable::new(VtdSecondStage::four_level(), frames(16 * MIB)).unwrap();
    let gpa = 0x8000_0000_0000u64;
    pt.map(gpa, 0x10_0000, PageSize::Size4K, Perm::RW).unwrap();
    let mut seen = 0;
    pt.for_each_leaf(gpa, 0x1000, &mut |_| {
        seen += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, 1);
    assert_eq!(pt.protect(gpa, 0x1000, Perm::READ).unwrap(), 1);
    let un = pt.unmap(gpa, 0x1000).unwrap();
    assert_eq!(un.leaves.len(), 1);
    assert_eq!(
        pt.walk(gpa, Access::READ).unwrap_err().reason,
        FaultReason::NotPresent
    );
    // the very last page of a 48-bit input range
    let top = (1 << 48) - 0x1000;
    pt.map(top, 0x20_0000, PageSize::Size4K, Perm::RW).unwrap();
    assert_eq!(pt.unmap(top, 0x1000).unwrap().leaves.len(), 1);
}

#[test]
fn the_last_pages_of_the_address_space_can_be_unmapped() {
    let pt = x86();
    let last4k = 0xffff_ffff_ffff_f000u64;
    pt.map(last4k, 0x20_0000, PageSize::Size4K, Perm::RW)
        .unwrap();
    let un = pt.unmap(last4k, 0x1000).unwrap();
    assert_eq!(un.leaves.len(), 1);
    let last2m = 0xffff_ffff_ffe0_0000u64;
    pt.map(last2m, 0x20_0000, PageSize::Size2M, Perm::RW)
        .unwrap();
    assert!(matches!(
        pt.unmap(last2m, 0x1000),
        Err(MapError::SplitsLeaf { .. })
    ));
    assert_eq!(pt.protect(last2m, 2 * MIB, Perm::READ).unwrap(), 1);
    assert_eq!(pt.unmap(last2m, 2 * MIB).unwrap().leaves.len(), 1);
    assert_eq!(pt.table_frames(), 1);
}

#[test]
fn second_stage_refuses_rights_it_cannot_encode() {
    let pt = PageTable::new(VtdSecondStage::four_level(), frames(16 * MIB)).unwrap();
    assert!(matches!(
        pt.map(0x1000, 0x10_0000, PageSize::Size4K, Perm::EXEC),
        Err(MapError::Rights { .. })
    ));
    pt.map(0x1000, 0x10_0000, PageSize::Size4K, Perm::RW)
        .unwrap();
    assert!(matches!(
        pt.protect(0x1000, 0x1000, Perm::empty()),
        Err(MapError::Rights { .. })
    ));
    let un = pt.unmap(0x1000, 0x1000).unwrap();
    assert_eq!((un.leaves[0].pa, un.leaves[0].present), (0x10_0000, true));
}

#[test]
fn impossible_level_counts_are_refused_not_indexed() {
    let six = VtdSecondStage {
        levels: 6,
        ..VtdSecondStage::four_level()
    };
    assert!(matches!(
        PageTable::new(six, frames(16 * MIB)),
        Err(MapError::Config(_))
    ));
    let mem = vsva_mem::PhysMemory::new(1 << 20).unwrap();
    for levels in [0, 1, 6, 255] {
        let x = X86Paging {
            levels,
            ..X86Paging::default()
        };
        let f = crate::walk(&x, &mem, 0, 0, U, &mut crate::walk::Direct, &mut ()).unwrap_err();
        assert_eq!(f.reason, FaultReason::AddressWidth);
        let s = VtdSecondStage { levels, ..six };
        let f = crate::walk(&s, &mem, 0, 0, U, &mut crate::walk::Direct, &mut ()).unwrap_err();
        assert_eq!(f.reason, FaultReason::AddressWidth);
    }
}

#[test]
fn unmap_reports_accessed_dirty_set_after_lookup() {
    let pt = x86();
    pt.map(0x1000, 0x5000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    pt.walk(0x1000, UW).unwrap();
    let un = pt.unmap(0x1000, 0x1000).unwrap();
    assert_eq!(
        un.leaves[0].entry & 0x60,
        0x60,
        "A and D are in the reported entry"
    );
}

#[test]
fn dirty_leaves_are_reported_in_order_and_cleared() {
    let fmt = VtdSecondStage {
        ad: true,
        ..VtdSecondStage::four_level()
    };
    let pt = PageTable::new(fmt, frames(64 * MIB)).unwrap();
    pt.map(0x1000, 0x5000, PageSize::Size4K, Perm::RW).unwrap();
    pt.map(0x2000, 0x6000, PageSize::Size4K, Perm::RW).unwrap();
    pt.map(0x20_0000, 0x40_0000, PageSize::Size2M, Perm::RW)
        .unwrap();
    // software walks set A/D as the unit would: a read sets A only, a write A and D
    pt.walk(0x1008, U).unwrap();
    pt.walk(0x2008, UW).unwrap();
    pt.walk(0x30_0000, UW).unwrap();
    let mut seen = vec![];
    let n = pt
        .read_and_clear_dirty(0, GIB, false, &mut |va, s| seen.push((va, s)))
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        seen,
        [(0x2000, PageSize::Size4K), (0x20_0000, PageSize::Size2M)]
    );
    // the range limits what is reported; clearing keeps the rest of the entry
    let mut seen = vec![];
    pt.read_and_clear_dirty(0x20_0000, 2 * MIB, true, &mut |va, s| seen.push((va, s)))
        .unwrap();
    assert_eq!(seen, [(0x20_0000, PageSize::Size2M)]);
    let leaf = pt.lookup(0x20_0000).unwrap();
    assert_eq!(leaf.entry & crate::vtd_ss::D, 0);
    assert_ne!(leaf.entry & crate::vtd_ss::A, 0, "A stays");
    assert_eq!(pt.walk(0x20_0008, U).unwrap().output, 0x40_0008);
    let mut all = 0;
    pt.read_and_clear_dirty(0, GIB, true, &mut |_, _| all += 1)
        .unwrap();
    assert_eq!(all, 1, "only 0x2000 was left");
    pt.read_and_clear_dirty(0, GIB, false, &mut |_, _| panic!("nothing dirty"))
        .unwrap();
    // a format without A/D reports nothing
    let plain = PageTable::new(VtdSecondStage::four_level(), frames(64 * MIB)).unwrap();
    plain
        .map(0x1000, 0x5000, PageSize::Size4K, Perm::RW)
        .unwrap();
    assert_eq!(
        plain
            .read_and_clear_dirty(0, GIB, true, &mut |_, _| {})
            .unwrap(),
        0
    );
}

#[test]
fn outputs_an_entry_cannot_hold_are_refused() {
    let pt = x86(); // MAXPHYADDR 46
    for pa in [1u64 << 52, 1 << 47, !0xfff] {
        assert!(
            matches!(
                pt.map(0x1000, pa, PageSize::Size4K, Perm::USER_RW),
                Err(MapError::OutputWidth { addr }) if addr == pa
            ),
            "{pa:#x}"
        );
    }
    assert!(pt.lookup(0x1000).is_none(), "nothing was mapped");
    pt.map(0x1000, (1 << 46) - 4096, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    let ss = PageTable::new(VtdSecondStage::four_level(), frames(4 * MIB)).unwrap(); // HAW 46
    assert!(ss.map(0, 1 << 46, PageSize::Size4K, Perm::RW).is_err());
}
