//! The TLB and CMD_TLBI_* (IHI 0070 §4.4): each scope removes exactly the entries it names,
//! and a translation changed in memory is seen once its invalidation and a CMD_SYNC complete.
//!
//! Every test fills the TLB, then re-points the leaves in memory without telling the SMMU:
//! an address that still translates to the old page was kept, one that translates to the new
//! page was invalidated.

mod common;

use common::xlate::*;
use common::*;
use vsva_mem::{Access, PageSize};
use vsva_pgtable::{PageTable, Perm};
use vsva_smmuv3::spec::cmd::{Command, TlbiRange};

/// A global page.
const G: u64 = VA + 0x10_0000;
const G_PA: u64 = PA + 0x2000;
const G_NEW: u64 = PA + 0x3000;

/// Streams [`SID`] (ASID 5) and [`SID2`] (ASID 6) over one table: `VA` → `PA` (nG = 1) and
/// `G` → `G_PA` (global); the TLB holds VA/5, VA/6 and G (global), then the leaves are
/// re-pointed in memory.
fn filled() -> S1Rig {
    let r = S1Rig::new();
    r.add_second_stream();
    r.map(VA, PA, Perm::USER_RW);
    r.map(G, G_PA, Perm::USER_RW);
    r.make_global(G);
    assert_eq!(r.read(SID, VA).unwrap(), PA);
    assert_eq!(r.read(SID2, VA).unwrap(), PA);
    assert_eq!(r.read(SID, G).unwrap(), G_PA);
    // The global entry serves the other ASID too.
    assert_eq!(r.read(SID2, G).unwrap(), G_PA);
    assert_eq!(r.b.smmu.tlb_entries(), 3);
    r.repoint(VA, PA_NEW);
    r.repoint(G, G_NEW);
    r
}

fn invalidate(r: &mut S1Rig, cmd: Command) {
    r.b.submit(&[cmd]);
    r.b.sync();
}

fn single(addr: u64) -> TlbiRange {
    TlbiRange {
        addr,
        leaf: true,
        ..TlbiRange::default()
    }
}

/// (VA under ASID 5, VA under ASID 6, G) after the invalidation: true where new.
fn seen(r: &S1Rig) -> (bool, bool, bool) {
    (
        r.read(SID, VA).unwrap() == PA_NEW,
        r.read(SID2, VA).unwrap() == PA_NEW,
        r.read(SID, G).unwrap() == G_NEW,
    )
}

#[test]
fn without_tlbi_every_old_translation_is_kept() {
    let r = filled();
    assert_eq!(seen(&r), (false, false, false));
}

#[test]
fn tlbi_nh_asid_removes_that_asid_and_keeps_global_entries_and_other_asids() {
    let mut r = filled();
    invalidate(
        &mut r,
        Command::TlbiNhAsid {
            vmid: 0,
            asid: ASID,
        },
    );
    assert_eq!(seen(&r), (true, false, false));
}

#[test]
fn tlbi_nh_asid_of_another_vmid_removes_nothing() {
    let mut r = filled();
    invalidate(
        &mut r,
        Command::TlbiNhAsid {
            vmid: 7,
            asid: ASID,
        },
    );
    assert_eq!(seen(&r), (false, false, false));
}

#[test]
fn tlbi_nh_va_removes_that_asid_at_that_va_only() {
    let mut r = filled();
    invalidate(
        &mut r,
        Command::TlbiNhVa {
            vmid: 0,
            asid: ASID,
            range: single(VA),
        },
    );
    assert_eq!(seen(&r), (true, false, false));
}

#[test]
fn tlbi_nh_va_removes_a_global_entry_at_that_va() {
    let mut r = filled();
    invalidate(
        &mut r,
        Command::TlbiNhVa {
            vmid: 0,
            asid: ASID2,
            range: single(G),
        },
    );
    assert_eq!(seen(&r), (false, false, true));
}

#[test]
fn tlbi_nh_vaa_removes_every_asid_at_that_va() {
    let mut r = filled();
    invalidate(
        &mut r,
        Command::TlbiNhVaa {
            vmid: 0,
            range: single(VA),
        },
    );
    assert_eq!(seen(&r), (true, true, false));
}

#[test]
fn tlbi_nh_all_removes_every_stage1_entry_of_the_vmid_global_included() {
    let mut r = filled();
    invalidate(&mut r, Command::TlbiNhAll { vmid: 0 });
    assert_eq!(seen(&r), (true, true, true));
    assert_eq!(r.b.smmu.tlb_entries(), 3, "refilled by the reads");
}

#[test]
fn tlbi_nsnh_all_removes_everything() {
    let mut r = filled();
    invalidate(&mut r, Command::TlbiNsnhAll);
    assert_eq!(seen(&r), (true, true, true));
}

#[test]
fn tlbi_s12_vmall_removes_every_entry_of_the_vmid() {
    let mut r = filled();
    invalidate(&mut r, Command::TlbiS12Vmall { vmid: 0 });
    assert_eq!(seen(&r), (true, true, true));
}

#[test]
fn tlbi_nh_va_range_tg_num_scale_removes_exactly_the_range() {
    // Four pages from VA; TG = 4 KiB, NUM = 1, SCALE = 0: (1 + 1) × 2^0 pages = VA, VA + 4K.
    let mut r = S1Rig::new();
    let pages: Vec<u64> = (0..4).map(|i| VA + i * 0x1000).collect();
    for (i, &va) in pages.iter().enumerate() {
        r.map(va, PA + i as u64 * 0x1000, Perm::USER_RW);
        r.read(SID, va).unwrap();
    }
    for (i, &va) in pages.iter().enumerate() {
        r.repoint(va, PA + 0x10_000 + i as u64 * 0x1000);
    }
    invalidate(
        &mut r,
        Command::TlbiNhVa {
            vmid: 0,
            asid: ASID,
            range: TlbiRange {
                addr: VA,
                leaf: true,
                ttl: 3,
                tg: 1,
                num: 1,
                scale: 0,
            },
        },
    );
    let new: Vec<bool> = pages
        .iter()
        .enumerate()
        .map(|(i, &va)| r.read(SID, va).unwrap() == PA + 0x10_000 + i as u64 * 0x1000)
        .collect();
    assert_eq!(new, [true, true, false, false]);
}

#[test]
fn tlbi_nh_va_with_scale_covers_num_plus_one_times_two_to_the_scale_pages() {
    // NUM = 0, SCALE = 2: 4 pages.
    let mut r = S1Rig::new();
    let pages: Vec<u64> = (0..5).map(|i| VA + i * 0x1000).collect();
    for &va in &pages {
        r.map(va, PA, Perm::USER_RW);
        r.read(SID, va).unwrap();
        r.repoint(va, PA_NEW);
    }
    invalidate(
        &mut r,
        Command::TlbiNhVa {
            vmid: 0,
            asid: ASID,
            range: TlbiRange {
                addr: VA,
                leaf: true,
                ttl: 0,
                tg: 1,
                num: 0,
                scale: 2,
            },
        },
    );
    let new: Vec<bool> = pages
        .iter()
        .map(|&va| r.read(SID, va).unwrap() == PA_NEW)
        .collect();
    assert_eq!(new, [true, true, true, true, false]);
}

/// A stage 2 stream with IPAs 0x1000_0000 and 0x1000_1000 cached, then re-pointed.
fn s2_filled() -> (Bench, PageTable<vsva_pgtable::ArmS2>) {
    let b = Bench::new();
    let s2 = PageTable::new(s2_format(), frames(&b, S2_FRAMES)).unwrap();
    for i in 0..2 {
        s2.map(0x1000_0000 + i * 0x1000, PA, PageSize::Size4K, Perm::RW)
            .unwrap();
    }
    b.write_ste(SID, &s2_only_ste(s2.root()));
    for i in 0..2 {
        let ipa = 0x1000_0000 + i * 0x1000;
        assert_eq!(
            b.smmu.translate(&txn(SID, ipa, Access::READ)).unwrap().addr,
            PA
        );
        let old = s2.lookup(ipa).unwrap().entry;
        s2.set_leaf(
            ipa,
            PageSize::Size4K,
            (old & !vsva_pgtable::arm::OA) | PA_NEW,
        )
        .unwrap();
    }
    (b, s2)
}

fn s2_seen(b: &Bench) -> [bool; 2] {
    [0, 1].map(|i| {
        b.smmu
            .translate(&txn(SID, 0x1000_0000 + i * 0x1000, Access::READ))
            .unwrap()
            .addr
            == PA_NEW
    })
}

#[test]
fn tlbi_s2_ipa_removes_that_ipa_only() {
    let (mut b, _s2) = s2_filled();
    b.submit(&[Command::TlbiS2Ipa {
        vmid: VMID,
        range: single(0x1000_1000),
    }]);
    b.sync();
    assert_eq!(s2_seen(&b), [false, true]);
}

#[test]
fn tlbi_nh_all_leaves_stage2_entries() {
    let (mut b, _s2) = s2_filled();
    b.submit(&[Command::TlbiNhAll { vmid: VMID }]);
    b.sync();
    assert_eq!(s2_seen(&b), [false, false]);
    b.submit(&[Command::TlbiS12Vmall { vmid: VMID }]);
    b.sync();
    assert_eq!(s2_seen(&b), [true, true]);
}

#[test]
fn tlbi_s2_ipa_drops_nested_entries_of_that_ipa() {
    let mut r = NestedRig::new();
    assert_eq!(
        r.b.smmu
            .translate(&txn(SID, VA, Access::READ))
            .unwrap()
            .addr,
        PA
    );
    let old = r.s2.lookup(L2).unwrap().entry;
    r.s2.set_leaf(
        L2,
        PageSize::Size4K,
        (old & !vsva_pgtable::arm::OA) | PA_NEW,
    )
    .unwrap();
    assert_eq!(
        r.b.smmu
            .translate(&txn(SID, VA, Access::READ))
            .unwrap()
            .addr,
        PA
    );
    r.b.submit(&[Command::TlbiS2Ipa {
        vmid: VMID,
        range: single(L2),
    }]);
    r.b.sync();
    assert_eq!(
        r.b.smmu
            .translate(&txn(SID, VA, Access::READ))
            .unwrap()
            .addr,
        PA_NEW
    );
}

#[test]
fn cfgi_cd_and_sync_make_a_new_cd_take_effect() {
    // A CD pointed at another table is seen after CMD_CFGI_CD + TLBI + CMD_SYNC.
    let mut r = S1Rig::new();
    r.map(VA, PA, Perm::USER_RW);
    assert_eq!(r.read(SID, VA).unwrap(), PA);
    let other = PageTable::new(s1_format(), frames(&r.b, (0xe0_0000, 0xf0_0000))).unwrap();
    other
        .map(VA, PA_NEW, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    r.b.write_cd_at(CDTAB, &cd_from(good_cd0(ASID), other.root()));
    assert_eq!(r.read(SID, VA).unwrap(), PA, "cached CD and TLB");
    r.b.submit(&[
        Command::CfgiCd {
            sid: SID,
            ssid: 0,
            leaf: true,
        },
        Command::TlbiNhAsid {
            vmid: 0,
            asid: ASID,
        },
    ]);
    r.b.sync();
    assert_eq!(r.read(SID, VA).unwrap(), PA_NEW);
}
