//! Walks of Arm tables built with [`PageTable`]: every descriptor type at its level, every
//! fault kind at each level, hardware AF and dirty state, concatenated stage-2 start tables.
//! Nested walks are in `nested_tests.rs`, round trips in `roundtrip_tests.rs`.

use super::*;
use crate::format::{Format, table_index};
use crate::perm::Perm;
use crate::table::{MapError, PageTable};
use crate::testutil::frames;
use crate::walk::{Translation, WalkTrace};
use vsva_mem::{Access, PageSize};

mod nested_tests;
mod roundtrip_tests;

const MIB: u64 = 1 << 20;
/// A 48-bit VA in the TTBR0 range.
const VA: u64 = 0x7f12_3456_7000;
const EL0_R: Access = Access::READ;
const EL0_W: Access = Access::READ.union(Access::WRITE);
const EL0_X: Access = Access::READ.union(Access::EXEC);
const EL1_R: Access = EL0_R.union(Access::PRIV);
const EL1_W: Access = EL0_W.union(Access::PRIV);
const EL1_X: Access = EL0_X.union(Access::PRIV);

/// An empty table of `format` over 16 MiB of memory.
fn table<F: Format>(format: F) -> PageTable<F> {
    PageTable::new(format, frames(16 * MIB)).unwrap()
}

/// A 48-bit stage 1 with hardware AF/dirty updates as given.
fn s1(ha: bool, hd: bool) -> ArmS1 {
    ArmS1 {
        ha,
        hd,
        ..ArmS1::with_va_bits(48)
    }
}

/// Where the entry of `level` used to translate `va` lives.
pub(super) fn slot<F: Format>(pt: &PageTable<F>, va: u64, level: u8) -> u64 {
    let f = pt.format();
    let mut table = pt.root();
    for l in (level + 1..=f.levels()).rev() {
        let e = pt
            .memory()
            .load_u64(table + table_index(f, va, l) * 8)
            .unwrap();
        table = f.table_addr(e);
    }
    table + table_index(f, va, level) * 8
}

fn load<F: Format>(pt: &PageTable<F>, va: u64, level: u8) -> u64 {
    pt.memory().load_u64(slot(pt, va, level)).unwrap()
}

fn store<F: Format>(pt: &PageTable<F>, va: u64, level: u8, value: u64) {
    pt.memory().store_u64(slot(pt, va, level), value).unwrap();
}

/// The (kind, Arm level) a walk of `va` for `access` faults with.
fn arm_fault<F: Format>(pt: &PageTable<F>, va: u64, access: Access) -> (ArmFaultKind, u8) {
    let f = ArmFault::from_fault(&pt.walk(va, access).unwrap_err());
    (f.kind, f.level)
}

fn levels_read<F: Format>(pt: &PageTable<F>, va: u64, access: Access) -> (Translation, Vec<u8>) {
    let mut trace = WalkTrace::default();
    let t = pt.walk_observed(va, access, &mut trace).unwrap();
    (t, trace.steps.iter().map(|s| s.0).collect())
}

#[test]
fn pages_and_blocks_translate_at_their_levels() {
    let pt = table(s1(false, false));
    let (va2m, va1g) = (0x10_0020_0000, 0x80_4000_0000);
    pt.map(VA, 0x40_0000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    pt.map(va2m, 0x80_0000, PageSize::Size2M, Perm::USER_RW)
        .unwrap();
    pt.map(va1g, 0x4000_0000, PageSize::Size1G, Perm::USER_RW)
        .unwrap();
    let (t, levels) = levels_read(&pt, VA | 0x123, EL0_R);
    assert_eq!((t.output, t.size, t.refs), (0x40_0123, PageSize::Size4K, 4));
    assert_eq!(levels, [4, 3, 2, 1], "Arm levels 0, 1, 2, 3");
    let (t, levels) = levels_read(&pt, va2m + 0x1_2345, EL0_W);
    assert_eq!((t.output, t.size), (0x81_2345, PageSize::Size2M));
    assert_eq!(levels, [4, 3, 2], "a level-2 block");
    let (t, levels) = levels_read(&pt, va1g + 0x123_4567, EL0_R);
    assert_eq!((t.output, t.size), (0x4123_4567, PageSize::Size1G));
    assert_eq!(levels, [4, 3], "a level-1 block");
    assert_eq!(load(&pt, VA, 1) & 0b11, 0b11, "a page descriptor");
    assert_eq!(load(&pt, va2m, 2) & 0b11, 0b01, "a block descriptor");
    assert_eq!(load(&pt, VA, 4) & 0b11, 0b11, "a table descriptor");
}

#[test]
fn a_39_bit_table_starts_at_level_1_and_a_40_bit_one_has_a_2_entry_level_0() {
    let three = table(ArmS1 {
        tsz: 25,
        ..s1(false, false)
    });
    let top = (1 << 39) - 0x1000;
    three
        .map(top, 0x40_0000, PageSize::Size4K, Perm::RW)
        .unwrap();
    let mut trace = WalkTrace::default();
    three.walk_observed(top, EL1_W, &mut trace).unwrap();
    assert_eq!(trace.steps[0].0, 3, "starts at Arm level 1");
    assert_eq!(trace.steps[0].2, 511);
    let forty = table(ArmS1 {
        tsz: 24,
        ..s1(false, false)
    });
    let top = (1 << 40) - 0x1000;
    forty
        .map(top, 0x40_0000, PageSize::Size4K, Perm::RW)
        .unwrap();
    let mut trace = WalkTrace::default();
    forty.walk_observed(top, EL1_R, &mut trace).unwrap();
    assert_eq!(
        (trace.steps[0].0, trace.steps[0].2),
        (4, 1),
        "VA bit 39 indexes level 0"
    );
    assert_eq!(trace.steps.len(), 4);
}

#[test]
fn the_ttbr1_range_maps_walks_and_unmaps_upper_addresses() {
    let pt = table(ArmS1 {
        upper: true,
        ..s1(false, false)
    });
    let kva = 0xffff_8000_0020_1000;
    pt.map(kva, 0x40_0000, PageSize::Size4K, Perm::RW).unwrap();
    assert_eq!(pt.walk(kva + 8, EL1_W).unwrap().output, 0x40_0008);
    assert_eq!(
        pt.walk(0x8000_0020_1000, EL1_R).unwrap_err().reason,
        FaultReason::AddressWidth,
        "a TTBR0-range address"
    );
    let mut seen = vec![];
    pt.for_each_leaf(0xffff_8000_0000_0000, 1 << 30, &mut |l| {
        seen.push(l.va);
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, [kva]);
    let gone = pt.unmap(kva, 0x1000).unwrap();
    assert_eq!((gone.leaves.len(), gone.tables.len()), (1, 3));
}

#[test]
fn an_invalid_descriptor_is_a_translation_fault_at_its_level() {
    let pt = table(s1(false, false));
    pt.map(VA, 0x40_0000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    for level in 1..=4 {
        let e = load(&pt, VA, level);
        store(&pt, VA, level, e & !VALID);
        let f = pt.walk(VA, EL0_R).unwrap_err();
        assert_eq!(
            (f.stage, f.level, f.reason, f.input, f.entry),
            (Stage::First, level, FaultReason::NotPresent, VA, e & !VALID)
        );
        assert_eq!(
            arm_fault(&pt, VA, EL0_R),
            (ArmFaultKind::Translation, 4 - level)
        );
        store(&pt, VA, level, e);
    }
    pt.walk(VA, EL0_R).unwrap();
}

#[test]
fn a_level_0_block_and_the_reserved_level_3_encoding_are_translation_faults() {
    let pt = table(s1(false, false));
    pt.map(VA, 0x40_0000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    let l0 = load(&pt, VA, 4);
    store(&pt, VA, 4, l0 & !TABLE);
    assert_eq!(arm_fault(&pt, VA, EL0_R), (ArmFaultKind::Translation, 0));
    store(&pt, VA, 4, l0);
    let l3 = load(&pt, VA, 1);
    store(&pt, VA, 1, l3 & !TABLE);
    assert_eq!(arm_fault(&pt, VA, EL0_R), (ArmFaultKind::Translation, 3));
}

#[test]
fn an_input_outside_the_tsz_range_is_a_level_0_translation_fault() {
    let pt = table(ArmS1 {
        tsz: 25,
        ..s1(false, false)
    });
    let f = pt.walk(1 << 39, EL0_R).unwrap_err();
    assert_eq!((f.level, f.reason), (3, FaultReason::AddressWidth));
    assert_eq!(
        ArmFault::from_fault(&f),
        ArmFault {
            kind: ArmFaultKind::Translation,
            stage: Stage::First,
            level: 0,
            input: 1 << 39
        }
    );
    let s2 = table(ArmS2::new(40, 48));
    let f = ArmFault::from_fault(&s2.walk(1 << 40, EL0_R).unwrap_err());
    assert_eq!(
        (f.kind, f.stage, f.level),
        (ArmFaultKind::Translation, Stage::Second, 0)
    );
}

#[test]
fn an_output_address_beyond_the_pa_size_is_an_address_size_fault_at_each_level() {
    let pt = table(ArmS1 {
        pa_bits: 40,
        ..s1(false, false)
    });
    pt.map(VA, 0x40_0000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    for level in 1..=4 {
        let e = load(&pt, VA, level);
        store(&pt, VA, level, e | 1 << 44);
        let f = pt.walk(VA, EL0_R).unwrap_err();
        assert_eq!((f.level, f.reason), (level, FaultReason::AddressSize));
        assert_eq!(
            arm_fault(&pt, VA, EL0_R),
            (ArmFaultKind::AddressSize, 4 - level)
        );
        store(&pt, VA, level, e);
    }
    assert!(matches!(
        pt.map(0x1000, 1 << 40, PageSize::Size4K, Perm::RW),
        Err(MapError::OutputWidth { addr }) if addr == 1 << 40
    ));
    pt.map(0x1000, (1 << 40) - 0x1000, PageSize::Size4K, Perm::RW)
        .unwrap();
}

#[test]
fn without_ha_a_clear_access_flag_faults_at_each_leaf_level() {
    let pt = table(s1(false, false));
    let leaves = [
        (VA, PageSize::Size4K),
        (0x10_0020_0000, PageSize::Size2M),
        (0x80_4000_0000, PageSize::Size1G),
    ];
    for (va, size) in leaves {
        pt.map(va, 0x4000_0000, size, Perm::USER_RW).unwrap();
        let level = size.leaf_level();
        let e = load(&pt, va, level);
        store(&pt, va, level, e & !AF);
        let f = pt.walk(va, EL0_W).unwrap_err();
        assert_eq!(
            (f.level, f.reason),
            (level, FaultReason::AccessFlag),
            "{size}"
        );
        assert_eq!(
            arm_fault(&pt, va, EL0_R),
            (ArmFaultKind::AccessFlag, 4 - level)
        );
        assert_eq!(load(&pt, va, level), e & !AF, "a fault changes nothing");
    }
}

#[test]
fn with_ha_the_walk_sets_af_in_the_leaf_and_leaves_tables_alone() {
    let pt = table(s1(true, false));
    pt.map(VA, 0x40_0000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    let leaf = load(&pt, VA, 1);
    store(&pt, VA, 1, leaf & !AF);
    let tables = [4, 3, 2].map(|l| load(&pt, VA, l));
    pt.walk(VA, EL0_R).unwrap();
    assert_eq!(load(&pt, VA, 1), leaf, "AF set again");
    assert_eq!([4, 3, 2].map(|l| load(&pt, VA, l)), tables);
    assert_eq!(
        tables[0] & AF,
        0,
        "bit 10 of a table descriptor is not touched"
    );
}

#[test]
fn the_access_flag_fault_comes_before_the_permission_fault() {
    let pt = table(s1(false, false));
    pt.map(VA, 0x40_0000, PageSize::Size4K, Perm::READ).unwrap();
    let e = load(&pt, VA, 1);
    store(&pt, VA, 1, e & !AF);
    assert_eq!(
        pt.walk(VA, EL0_W).unwrap_err().reason,
        FaultReason::AccessFlag,
        "EL0 may not even read this page"
    );
}

#[test]
fn ap_decides_data_accesses_of_each_el_through_a_walk() {
    let pt = table(s1(false, false));
    // (rights mapped -> AP[2:1], accesses allowed among EL1 R, EL1 W, EL0 R, EL0 W)
    let cases = [
        (Perm::RW, [true, true, false, false]),
        (Perm::USER_RW, [true, true, true, true]),
        (Perm::READ, [true, false, false, false]),
        (Perm::READ | Perm::USER, [true, false, true, false]),
    ];
    for (i, (perm, allowed)) in cases.into_iter().enumerate() {
        let va = VA + i as u64 * 0x1000;
        pt.map(va, 0x40_0000, PageSize::Size4K, perm).unwrap();
        for (access, ok) in [EL1_R, EL1_W, EL0_R, EL0_W].into_iter().zip(allowed) {
            match pt.walk(va, access) {
                Ok(_) => assert!(ok, "{perm:?} {access:?}"),
                Err(f) => {
                    assert!(!ok, "{perm:?} {access:?}");
                    assert_eq!((f.level, f.reason), (1, FaultReason::Permission));
                    assert_eq!(f.rights, pt.format().rights(load(&pt, va, 1)));
                    assert_eq!(ArmFault::from_fault(&f).level, 3);
                }
            }
        }
    }
}

#[test]
fn block_permission_faults_are_reported_at_the_block_level() {
    let pt = table(s1(false, false));
    pt.map(
        0x10_0020_0000,
        0x80_0000,
        PageSize::Size2M,
        Perm::READ | Perm::USER,
    )
    .unwrap();
    pt.map(0x80_4000_0000, 0x4000_0000, PageSize::Size1G, Perm::RW)
        .unwrap();
    assert_eq!(
        arm_fault(&pt, 0x10_0020_0000, EL0_W),
        (ArmFaultKind::Permission, 2)
    );
    assert_eq!(
        arm_fault(&pt, 0x80_4000_0000, EL0_R),
        (ArmFaultKind::Permission, 1)
    );
    assert_eq!(
        arm_fault(&pt, 0x80_4000_0000, EL1_X),
        (ArmFaultKind::Permission, 1)
    );
}

#[test]
fn uxn_and_pxn_decide_fetches_of_each_el_through_a_walk() {
    let pt = table(s1(false, false));
    let user_code = Perm::READ | Perm::USER | Perm::EXEC;
    let kernel_code = Perm::READ | Perm::PRIV_EXEC;
    pt.map(VA, 0x40_0000, PageSize::Size4K, user_code).unwrap();
    pt.map(VA + 0x1000, 0x40_0000, PageSize::Size4K, kernel_code)
        .unwrap();
    pt.walk(VA, EL0_X).unwrap();
    assert_eq!(arm_fault(&pt, VA, EL1_X), (ArmFaultKind::Permission, 3));
    pt.walk(VA + 0x1000, EL1_X).unwrap();
    assert_eq!(
        arm_fault(&pt, VA + 0x1000, EL0_X),
        (ArmFaultKind::Permission, 3)
    );
    // EL0-writable memory is never executable at EL1, even with PXN = 0.
    pt.map(
        VA + 0x2000,
        0x40_0000,
        PageSize::Size4K,
        Perm::USER_RW | Perm::PRIV_EXEC,
    )
    .unwrap();
    assert_eq!(load(&pt, VA + 0x2000, 1) & PXN, 0);
    assert!(pt.walk(VA + 0x2000, EL1_X).is_err());
}

#[test]
fn each_table_level_restriction_applies_to_everything_below_it() {
    let data = VA;
    let code = VA + 0x1000; // same tables, read-only, executable at both ELs
    for hpd in [false, true] {
        let pt = table(ArmS1 {
            hpd,
            ..s1(false, false)
        });
        pt.map(data, 0x40_0000, PageSize::Size4K, Perm::USER_RW)
            .unwrap();
        let all_exec = Perm::READ | Perm::USER | Perm::EXEC | Perm::PRIV_EXEC;
        pt.map(code, 0x40_0000, PageSize::Size4K, all_exec).unwrap();
        for level in 2..=4 {
            for (bit, va, denied, still) in [
                (AP_TABLE_NO_EL0, data, EL0_R, EL1_W),
                (AP_TABLE_RO, data, EL1_W, EL0_R),
                (UXN_TABLE, code, EL0_X, EL1_X),
                (PXN_TABLE, code, EL1_X, EL0_X),
            ] {
                let e = load(&pt, va, level);
                store(&pt, va, level, e | bit);
                let r = pt.walk(va, denied);
                if hpd {
                    assert!(r.is_ok(), "HPD ignores {bit:#x} at level {level}");
                } else {
                    let f = r.unwrap_err();
                    assert_eq!(
                        (f.level, f.reason),
                        (1, FaultReason::Permission),
                        "{bit:#x} at level {level}"
                    );
                }
                pt.walk(va, still).unwrap();
                store(&pt, va, level, e);
            }
        }
    }
}

#[test]
fn a_write_to_a_dbm_page_with_hd_clears_ap2_instead_of_faulting() {
    let pt = table(s1(true, true));
    pt.map(VA, 0x40_0000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    let dirty = load(&pt, VA, 1);
    assert_eq!(
        dirty & (DBM | AP2),
        DBM,
        "a new writable leaf is writable-dirty"
    );
    let mut found = vec![];
    let n = pt
        .read_and_clear_dirty(VA, 0x1000, true, &mut |va, _| found.push(va))
        .unwrap();
    assert_eq!((n, found), (1, vec![VA]));
    assert_eq!(load(&pt, VA, 1), dirty | AP2, "cleaned: writable-clean");
    pt.walk(VA, EL0_R).unwrap();
    assert_eq!(load(&pt, VA, 1), dirty | AP2, "a read leaves it clean");
    pt.walk(VA, EL0_W).unwrap();
    assert_eq!(load(&pt, VA, 1), dirty, "the write cleared AP[2]");
    assert_eq!(
        pt.read_and_clear_dirty(VA, 0x1000, false, &mut |_, _| ())
            .unwrap(),
        1
    );
}

#[test]
fn a_write_to_a_dbm_page_without_hd_is_a_permission_fault() {
    let pt = table(s1(true, false));
    pt.map(VA, 0x40_0000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    let clean = load(&pt, VA, 1) | DBM | AP2;
    store(&pt, VA, 1, clean);
    let f = pt.walk(VA, EL0_W).unwrap_err();
    assert_eq!((f.level, f.reason), (1, FaultReason::Permission));
    assert_eq!(load(&pt, VA, 1), clean);
    assert_eq!(
        pt.read_and_clear_dirty(VA, 0x1000, true, &mut |_, _| ())
            .unwrap(),
        0
    );
}

#[test]
fn a_write_to_a_read_only_page_without_dbm_faults_even_with_hd() {
    let pt = table(s1(true, true));
    pt.map(VA, 0x40_0000, PageSize::Size4K, Perm::READ | Perm::USER)
        .unwrap();
    let e = load(&pt, VA, 1);
    assert_eq!(arm_fault(&pt, VA, EL0_W), (ArmFaultKind::Permission, 3));
    assert_eq!(load(&pt, VA, 1), e);
}

#[test]
fn ng_and_the_contiguous_hint_are_kept_and_change_nothing() {
    let pt = table(ArmS1::default());
    pt.map(VA, 0x40_0000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    let e = load(&pt, VA, 1) | CONTIGUOUS;
    store(&pt, VA, 1, e & !AF);
    let t = pt.walk(VA, EL0_W).unwrap();
    assert_eq!(t.output, 0x40_0000);
    let now = load(&pt, VA, 1);
    assert_eq!(now, e, "AF set, nG and Contiguous kept");
    assert!(non_global(now) && contiguous(now));
    let mut leaf = crate::walk::LastEntry::default();
    pt.walk_observed(VA, EL0_R, &mut leaf).unwrap();
    assert_eq!(
        (leaf.level, leaf.entry),
        (1, now),
        "the walk reports the leaf, nG and all"
    );
    let global = table(ArmS1 {
        non_global: false,
        ..ArmS1::default()
    });
    global
        .map(VA, 0x40_0000, PageSize::Size4K, Perm::RW)
        .unwrap();
    assert!(!non_global(load(&global, VA, 1)));
}

#[test]
fn protect_and_unmap_work_on_arm_leaves() {
    let pt = table(s1(false, false));
    pt.map(VA, 0x40_0000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    pt.map(0x10_0020_0000, 0x80_0000, PageSize::Size2M, Perm::USER_RW)
        .unwrap();
    assert_eq!(pt.protect(VA, 0x1000, Perm::READ | Perm::USER).unwrap(), 1);
    assert_eq!(arm_fault(&pt, VA, EL0_W), (ArmFaultKind::Permission, 3));
    pt.walk(VA, EL0_R).unwrap();
    assert_eq!(pt.table_frames(), 6);
    let gone = pt.unmap(VA, 0x1000).unwrap();
    assert_eq!((gone.leaves.len(), gone.tables.len()), (1, 3));
    assert_eq!(arm_fault(&pt, VA, EL0_R), (ArmFaultKind::Translation, 0));
    pt.free_tables(&gone.tables).unwrap();
    pt.destroy().unwrap();
}

#[test]
fn a_40_bit_ipa_space_starts_at_level_1_with_two_concatenated_tables() {
    let frames = frames(16 * MIB);
    let pt = PageTable::new(ArmS2::new(40, 48), frames.clone()).unwrap();
    assert_eq!(
        pt.root() % (2 * 4096),
        0,
        "aligned to the size of both tables"
    );
    let top = (1 << 40) - 0x1000;
    pt.map(top, 0x40_0000, PageSize::Size4K, Perm::RW).unwrap();
    pt.map(0, 0x80_0000, PageSize::Size4K, Perm::RW).unwrap();
    // IPA bits 39:30 index the start level: 0x3ff is the last entry of the second table.
    assert_eq!(slot(&pt, top, 3), pt.root() + 4096 + 511 * 8);
    assert_eq!(slot(&pt, 0, 3), pt.root());
    let mut trace = WalkTrace::default();
    let t = pt.walk_observed(top + 0x10, EL0_W, &mut trace).unwrap();
    assert_eq!(t.output, 0x40_0010);
    assert_eq!((trace.steps[0].0, trace.steps[0].2), (3, 0x3ff));
    assert_eq!(trace.steps.len(), 3);
    assert_eq!(pt.walk(0x8, EL0_R).unwrap().output, 0x80_0008);
    assert_eq!(pt.table_frames(), 5, "root and two level-2/level-3 chains");
    let gone = pt.unmap(top, 0x1000).unwrap();
    assert_eq!(gone.tables.len(), 2);
    pt.free_tables(&gone.tables).unwrap();
    let before = frames.free_bytes();
    pt.destroy().unwrap();
    assert_eq!(frames.free_bytes() - before, 2 * MIB + 2 * 4096);
}

#[test]
fn stage_2_faults_for_s2ap_xn_af_and_output_size() {
    let pt = table(ArmS2 {
        pa_bits: 40,
        ..ArmS2::new(40, 48)
    });
    let ipa = 0x12_3456_7000;
    pt.map(ipa, 0x40_0000, PageSize::Size4K, Perm::READ)
        .unwrap();
    assert_eq!(arm_fault(&pt, ipa, EL0_W), (ArmFaultKind::Permission, 3));
    assert_eq!(
        arm_fault(&pt, ipa, EL0_X),
        (ArmFaultKind::Permission, 3),
        "XN"
    );
    let f = pt.walk(ipa, EL0_W).unwrap_err();
    assert_eq!((f.stage, f.input), (Stage::Second, ipa));
    let e = load(&pt, ipa, 1);
    store(&pt, ipa, 1, e & !AF);
    assert_eq!(arm_fault(&pt, ipa, EL0_R), (ArmFaultKind::AccessFlag, 3));
    store(&pt, ipa, 1, e | 1 << 40);
    assert_eq!(arm_fault(&pt, ipa, EL0_R), (ArmFaultKind::AddressSize, 3));
    let table = load(&pt, ipa, 3);
    store(&pt, ipa, 1, e);
    store(&pt, ipa, 3, table | 1 << 45);
    assert_eq!(arm_fault(&pt, ipa, EL0_R), (ArmFaultKind::AddressSize, 1));
}

#[test]
fn stage_2_hardware_flags_set_af_and_s2ap_1() {
    let pt = table(ArmS2 {
        ha: true,
        hd: true,
        ..ArmS2::new(40, 48)
    });
    let ipa = 0x12_3456_7000;
    pt.map(ipa, 0x40_0000, PageSize::Size4K, Perm::RW).unwrap();
    let dirty = load(&pt, ipa, 1);
    assert_eq!(dirty & (DBM | S2AP_W), DBM | S2AP_W);
    assert_eq!(
        pt.read_and_clear_dirty(ipa, 0x1000, true, &mut |_, _| ())
            .unwrap(),
        1
    );
    store(&pt, ipa, 1, (dirty & !S2AP_W) & !AF);
    pt.walk(ipa, EL0_R).unwrap();
    assert_eq!(load(&pt, ipa, 1), dirty & !S2AP_W, "a read sets AF only");
    pt.walk(ipa, Access::WRITE).unwrap();
    assert_eq!(load(&pt, ipa, 1), dirty, "a write sets S2AP[1]");
}

/// A write walk of `VA` in `pt` over `mem`, where another agent edits the leaf.
fn racing_write(
    pt: &PageTable<ArmS1>,
    mem: &crate::testutil::Racing,
) -> Result<Translation, Fault> {
    crate::walk::walk(
        pt.format(),
        mem,
        pt.root(),
        VA,
        EL0_W,
        &mut crate::walk::Direct,
        &mut (),
    )
}

#[test]
fn a_page_write_protected_during_a_write_walk_faults_instead_of_being_dirtied() {
    let pt = table(s1(true, true));
    pt.map(VA, 0x40_0000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    let clean = load(&pt, VA, 1) | AP2;
    store(&pt, VA, 1, clean);
    // The OS makes the page read-only (DBM and AP[2]) between the walk's read and its swap.
    let mem = crate::testutil::Racing::new(pt.memory(), slot(&pt, VA, 1), [|e: u64| e & !DBM]);
    let f = racing_write(&pt, &mem).unwrap_err();
    assert_eq!((f.level, f.reason), (1, FaultReason::Permission));
    assert_eq!(load(&pt, VA, 1), clean & !DBM, "AP[2] was not cleared");
}

#[test]
fn a_page_cleaned_during_a_write_walk_is_dirtied_again() {
    let pt = table(s1(true, true));
    pt.map(VA, 0x40_0000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    let dirty = load(&pt, VA, 1);
    store(&pt, VA, 1, dirty & !AF);
    // Dirty tracking cleans the page (sets AP[2], keeps DBM) between the walk's read and its
    // swap: the write is still allowed, and makes it dirty again.
    let mem = crate::testutil::Racing::new(pt.memory(), slot(&pt, VA, 1), [|e: u64| e | AP2]);
    racing_write(&pt, &mem).unwrap();
    assert_eq!(mem.failed.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(load(&pt, VA, 1), dirty);
}
