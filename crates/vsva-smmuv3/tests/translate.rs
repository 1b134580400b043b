//! Translation: stage 1, stage 2 and nested walks, their faults as event records (IHI 0070
//! §7.3.12–16, fields as Linux's `arm_smmu_evt` decodes them), the fault rules of CD.R,
//! CD.A and EPDx, and hardware Access flag and dirty state updates.

mod common;

use common::xlate::*;
use common::*;
use vsva_mem::{Access, PageSize};
use vsva_pgtable::arm::{AF, AP2, DBM};
use vsva_pgtable::{ArmS1, PageTable, Perm};
use vsva_smmuv3::Blocked;
use vsva_smmuv3::spec::event::id;

#[test]
fn stage1_translates_a_va_and_the_second_access_hits_the_tlb() {
    let r = S1Rig::new();
    r.map(VA, PA, Perm::USER_RW);
    let t =
        r.b.smmu
            .translate(&txn(SID, VA + 0x123, Access::READ))
            .unwrap();
    assert_eq!((t.addr, t.size), (PA + 0x123, PageSize::Size4K));
    let walks = r.b.smmu.stats().tlb.walks;
    assert_eq!(r.read(SID, VA + 0x8).unwrap(), PA + 0x8);
    let s = r.b.smmu.stats().tlb;
    assert_eq!((s.walks, s.hits), (walks, 1));
    assert!(r.b.events().is_empty());
}

#[test]
fn a_changed_leaf_is_not_seen_before_an_invalidation() {
    let r = S1Rig::new();
    r.map(VA, PA, Perm::USER_RW);
    assert_eq!(r.read(SID, VA).unwrap(), PA);
    r.repoint(VA, PA_NEW);
    assert_eq!(
        r.read(SID, VA).unwrap(),
        PA,
        "the TLB keeps the old translation"
    );
}

#[test]
fn s1_f_translation_unmapped_va_records_the_event_and_aborts() {
    let r = S1Rig::new();
    let va = 0x5000_0000;
    assert_eq!(r.read(SID, va), Err(Blocked::Abort));
    assert_eq!(
        r.b.events()[0].words,
        rec(id::F_TRANSLATION, SID, RNW | CLASS_IN, va, 0)
    );
}

#[test]
fn s1_f_translation_of_a_write_has_rnw_clear() {
    let r = S1Rig::new();
    let va = 0x5000_0000;
    let e = r.b.smmu.translate(&txn(SID, va + 8, Access::WRITE));
    assert_eq!(e, Err(Blocked::Abort));
    assert_eq!(
        r.b.events()[0].words,
        rec(id::F_TRANSLATION, SID, CLASS_IN, va + 8, 0)
    );
}

#[test]
fn s1_f_translation_beyond_t0sz_faults_without_a_table() {
    // T0SZ 16: bit 48 set and bit 55 clear is outside the TTB0 range.
    let r = S1Rig::new();
    let va = 1 << 48;
    assert_eq!(r.read(SID, va), Err(Blocked::Abort));
    assert_eq!(
        r.b.events()[0].words,
        rec(id::F_TRANSLATION, SID, RNW | CLASS_IN, va, 0)
    );
}

#[test]
fn s1_f_permission_write_to_a_read_only_page() {
    let r = S1Rig::new();
    r.map(VA, PA, Perm::READ | Perm::USER);
    assert_eq!(r.read(SID, VA).unwrap(), PA);
    let e = r.b.smmu.translate(&txn(SID, VA, Access::WRITE));
    assert_eq!(e, Err(Blocked::Abort));
    assert_eq!(
        r.b.events()[0].words,
        rec(id::F_PERMISSION, SID, CLASS_IN, VA, 0)
    );
}

#[test]
fn s1_f_permission_privileged_fetch_from_pxn_sets_ind_and_pnu() {
    let r = S1Rig::new();
    // Executable at EL0 only (UXN = 0, PXN = 1).
    r.map(VA, PA, Perm::READ | Perm::USER | Perm::EXEC);
    let fetch = Access::READ | Access::EXEC | Access::PRIV;
    assert_eq!(
        r.b.smmu.translate(&txn(SID, VA, fetch)),
        Err(Blocked::Abort)
    );
    assert_eq!(
        r.b.events()[0].words,
        rec(id::F_PERMISSION, SID, PNU | IND | RNW | CLASS_IN, VA, 0)
    );
    // The unprivileged fetch is allowed.
    assert!(
        r.b.smmu
            .translate(&txn(SID, VA, Access::READ | Access::EXEC))
            .is_ok()
    );
}

#[test]
fn s1_f_permission_unprivileged_read_of_a_privileged_page() {
    let r = S1Rig::new();
    r.map(VA, PA, Perm::RW);
    assert_eq!(r.read(SID, VA), Err(Blocked::Abort));
    assert_eq!(
        r.b.events()[0].words,
        rec(id::F_PERMISSION, SID, RNW | CLASS_IN, VA, 0)
    );
    assert!(
        r.b.smmu
            .translate(&txn(SID, VA, Access::READ | Access::PRIV))
            .is_ok()
    );
}

#[test]
fn s1_f_access_leaf_without_af_and_no_hardware_update() {
    let r = S1Rig::new();
    r.map(VA, PA, Perm::USER_RW);
    let leaf = r.s1.lookup(VA).unwrap().entry;
    r.s1.set_leaf(VA, PageSize::Size4K, leaf & !AF).unwrap();
    assert_eq!(r.read(SID, VA), Err(Blocked::Abort));
    assert_eq!(
        r.b.events()[0].words,
        rec(id::F_ACCESS, SID, RNW | CLASS_IN, VA, 0)
    );
    // Nothing was written to the leaf.
    assert_eq!(r.s1.lookup(VA).unwrap().entry, leaf & !AF);
}

#[test]
fn s1_f_addr_size_output_beyond_the_cd_ips() {
    // IPS 0b000: 32-bit output.
    let r = S1Rig::with(s1_format(), |c| c.with_ips(0));
    r.map(VA, 1 << 32, Perm::USER_RW);
    assert_eq!(r.read(SID, VA), Err(Blocked::Abort));
    assert_eq!(
        r.b.events()[0].words,
        rec(id::F_ADDR_SIZE, SID, RNW | CLASS_IN, VA, 0)
    );
}

#[test]
fn s1_f_walk_eabt_table_outside_memory_reports_the_descriptor_address() {
    let b = Bench::new();
    b.write_cd_at(CDTAB, &cd_from(good_cd0(ASID), NOWHERE));
    b.write_ste(SID, &s1_ste(CDTAB, 0, 0));
    // Level 0 index 1: the descriptor at TTB0 + 8.
    let va = 0x80_0000_1000;
    assert_eq!(
        b.smmu.translate(&txn(SID, va, Access::READ)),
        Err(Blocked::Abort)
    );
    assert_eq!(
        b.events()[0].words,
        rec(id::F_WALK_EABT, SID, RNW | CLASS_TT, va, NOWHERE + 8)
    );
}

#[test]
fn epd0_f_translation_without_a_walk() {
    // EPD0 with TTB0 outside memory: a walk would abort (F_WALK_EABT); none is made.
    let b = Bench::new();
    b.write_cd_at(CDTAB, &cd_from(good_cd0(ASID).with_epd0(true), NOWHERE));
    b.write_ste(SID, &s1_ste(CDTAB, 0, 0));
    assert_eq!(
        b.smmu.translate(&txn(SID, VA, Access::WRITE)),
        Err(Blocked::Abort)
    );
    assert_eq!(
        b.events()[0].words,
        rec(id::F_TRANSLATION, SID, CLASS_IN, VA, 0)
    );
}

#[test]
fn epd1_upper_range_f_translation() {
    let r = S1Rig::new();
    let va = 0xffff_8000_0000_0000;
    assert_eq!(r.read(SID, va), Err(Blocked::Abort));
    assert_eq!(
        r.b.events()[0].words,
        rec(id::F_TRANSLATION, SID, RNW | CLASS_IN, va, 0)
    );
}

#[test]
fn cd_r_clear_suppresses_the_event_and_still_aborts() {
    let r = S1Rig::with(s1_format(), |c| c.with_r(false));
    assert_eq!(r.read(SID, VA), Err(Blocked::Abort));
    assert!(r.b.events().is_empty());
}

#[test]
fn cd_a_clear_terminates_with_raz_wi_and_records() {
    let r = S1Rig::with(s1_format(), |c| c.with_a(false));
    assert_eq!(r.read(SID, VA), Err(Blocked::RazWi));
    assert_eq!(
        r.b.events()[0].words,
        rec(id::F_TRANSLATION, SID, RNW | CLASS_IN, VA, 0)
    );
}

#[test]
fn a_walk_fault_is_not_cached() {
    let r = S1Rig::new();
    assert!(r.read(SID, VA).is_err());
    r.map(VA, PA, Perm::USER_RW);
    assert_eq!(r.read(SID, VA).unwrap(), PA);
}

#[test]
fn httu_sets_af_on_a_read_and_dirties_on_a_write() {
    let fmt = ArmS1 {
        ha: true,
        hd: true,
        ..s1_format()
    };
    let r = S1Rig::with(fmt, |c| c.with_ha(true).with_hd(true));
    r.map(VA, PA, Perm::USER_RW);
    // Writable-clean (DBM = 1, AP[2] = 1) and not accessed.
    let leaf = r.s1.lookup(VA).unwrap().entry;
    assert_ne!(leaf & DBM, 0);
    let clean = (leaf | AP2) & !AF;
    r.s1.set_leaf(VA, PageSize::Size4K, clean).unwrap();
    assert_eq!(r.read(SID, VA).unwrap(), PA);
    assert_eq!(r.s1.lookup(VA).unwrap().entry, clean | AF);
    // The TLB entry of the read does not serve the write: it walks and dirties.
    let t = r.b.smmu.translate(&txn(SID, VA, Access::WRITE)).unwrap();
    assert_eq!(t.addr, PA);
    assert_eq!(r.s1.lookup(VA).unwrap().entry, (clean | AF) & !AP2);
    assert!(r.b.events().is_empty());
}

#[test]
fn stage2_only_translates_an_ipa() {
    let b = Bench::new();
    let s2 = PageTable::new(s2_format(), frames(&b, S2_FRAMES)).unwrap();
    s2.map(0x1000_0000, PA, PageSize::Size4K, Perm::RW).unwrap();
    b.write_ste(SID, &s2_only_ste(s2.root()));
    let t = b
        .smmu
        .translate(&txn(SID, 0x1000_0010, Access::WRITE))
        .unwrap();
    assert_eq!((t.addr, t.ipa), (PA + 0x10, 0x1000_0010));
}

#[test]
fn stage2_only_f_translation_reports_the_ipa() {
    let b = Bench::new();
    let s2 = PageTable::new(s2_format(), frames(&b, S2_FRAMES)).unwrap();
    b.write_ste(SID, &s2_only_ste(s2.root()));
    let ipa = 0x1234_5678;
    assert_eq!(
        b.smmu.translate(&txn(SID, ipa, Access::READ)),
        Err(Blocked::Abort)
    );
    assert_eq!(
        b.events()[0].words,
        rec(
            id::F_TRANSLATION,
            SID,
            RNW | S2 | CLASS_IN,
            ipa,
            0x1234_5000
        )
    );
}

#[test]
fn stage2_only_f_permission_write_to_read_only_ipa() {
    let b = Bench::new();
    let s2 = PageTable::new(s2_format(), frames(&b, S2_FRAMES)).unwrap();
    s2.map(0x1000_0000, PA, PageSize::Size4K, Perm::READ)
        .unwrap();
    b.write_ste(SID, &s2_only_ste(s2.root()));
    assert_eq!(
        b.smmu.translate(&txn(SID, 0x1000_0000, Access::WRITE)),
        Err(Blocked::Abort)
    );
    assert_eq!(
        b.events()[0].words,
        rec(
            id::F_PERMISSION,
            SID,
            S2 | CLASS_IN,
            0x1000_0000,
            0x1000_0000
        )
    );
}

#[test]
fn nested_translates_through_both_stages() {
    let r = NestedRig::new();
    let t =
        r.b.smmu
            .translate(&txn(SID, VA + 0x44, Access::WRITE))
            .unwrap();
    assert_eq!((t.addr, t.ipa), (PA + 0x44, L2 + 0x44));
    assert!(r.b.events().is_empty());
}

#[test]
fn nested_s2_fault_on_an_s1_table_is_class_tt() {
    let r = NestedRig::new();
    // The IPA of VA's level 3 table, unmapped at stage 2.
    let table = r.s1.lookup(VA).unwrap().slot & !0xfff;
    r.s2.unmap(table, 0x1000).unwrap();
    assert_eq!(
        r.b.smmu.translate(&txn(SID, VA, Access::READ)),
        Err(Blocked::Abort)
    );
    assert_eq!(
        r.b.events()[0].words,
        rec(
            id::F_TRANSLATION,
            SID,
            RNW | S2 | CLASS_TT | TTRNW,
            VA,
            table
        )
    );
}

#[test]
fn nested_s2_fault_on_the_output_is_class_in() {
    let r = NestedRig::new();
    r.s2.unmap(L2, 0x1000).unwrap();
    assert_eq!(
        r.b.smmu.translate(&txn(SID, VA + 4, Access::WRITE)),
        Err(Blocked::Abort)
    );
    assert_eq!(
        r.b.events()[0].words,
        rec(id::F_TRANSLATION, SID, S2 | CLASS_IN, VA + 4, L2)
    );
}

#[test]
fn nested_s1_fault_is_stage_1() {
    let r = NestedRig::new();
    let va = VA + 0x1000;
    assert_eq!(
        r.b.smmu.translate(&txn(SID, va, Access::READ)),
        Err(Blocked::Abort)
    );
    assert_eq!(
        r.b.events()[0].words,
        rec(id::F_TRANSLATION, SID, RNW | CLASS_IN, va, 0)
    );
}

#[test]
fn ste_bypass_and_abort_need_no_tables() {
    use vsva_smmuv3::spec::ste::{Ste, Ste0, Ste1, Ste2, Ste3, config};
    let b = Bench::new();
    let ste = |c| {
        Ste::from_words(
            Ste0::new().with_v(true).with_config(c),
            Ste1::new(),
            Ste2::new(),
            Ste3::new(),
        )
    };
    b.write_ste(SID, &ste(config::BYPASS));
    b.write_ste(SID2, &ste(config::ABORT));
    assert_eq!(
        b.smmu
            .translate(&txn(SID, 0x1234, Access::READ))
            .unwrap()
            .addr,
        0x1234
    );
    assert_eq!(
        b.smmu.translate(&txn(SID2, 0x1234, Access::READ)),
        Err(Blocked::Abort)
    );
    assert!(b.events().is_empty());
}

#[test]
fn a_config_fault_aborts_with_its_event() {
    let b = Bench::new();
    assert_eq!(
        b.smmu.translate(&txn(SID, VA, Access::READ)),
        Err(Blocked::Abort)
    );
    assert_eq!(b.events()[0].kind(), id::C_BAD_STE);
}

#[test]
fn stage2_f_walk_eabt_reports_s2_and_the_descriptor_address() {
    let b = Bench::new();
    b.write_ste(SID, &s2_only_ste(NOWHERE));
    // 40-bit IPA from level 1 over two concatenated tables: IPA[39:30] indexes them.
    let ipa = 0x80_4000_0000;
    assert_eq!(
        b.smmu.translate(&txn(SID, ipa, Access::READ)),
        Err(Blocked::Abort)
    );
    assert_eq!(
        b.events()[0].words,
        rec(
            id::F_WALK_EABT,
            SID,
            RNW | S2 | CLASS_TT,
            ipa,
            NOWHERE + 0x201 * 8
        )
    );
}

#[test]
fn nested_s1_descriptor_read_that_aborts_reports_where_stage2_put_it() {
    let r = NestedRig::new();
    // Stage 2 maps the stage 1 root's IPA outside memory.
    let root = r.s1.root();
    r.s2.unmap(root, 0x1000).unwrap();
    r.s2.map(root, NOWHERE, PageSize::Size4K, Perm::RW).unwrap();
    assert_eq!(
        r.b.smmu.translate(&txn(SID, VA, Access::READ)),
        Err(Blocked::Abort)
    );
    assert_eq!(
        r.b.events()[0].words,
        rec(id::F_WALK_EABT, SID, RNW | CLASS_TT, VA, NOWHERE)
    );
}

/// CLASS = CD (Linux `EVTQ_1_CLASS` 0b00).
const CLASS_CD: u64 = 0;

#[test]
fn nested_cd_is_read_at_its_stage2_translation() {
    // S1ContextPtr is an IPA: the CD sits at PA CDTAB + 0x2000, stage 2 maps IPA 0x3_0000_0000
    // there.
    let r = NestedRig::new();
    let (ipa, pa) = (0x3_0000_0000, CDTAB + 0x2000);
    r.s2.map(ipa, pa, PageSize::Size4K, Perm::READ).unwrap();
    r.b.write_cd_at(pa, &cd_from(good_cd0(ASID), r.s1.root()));
    r.b.write_cd_at(CDTAB, &vsva_smmuv3::spec::cd::Cd::default());
    r.b.write_ste(SID, &nested_ste(ipa, r.s2.root()));
    assert_eq!(
        r.b.smmu
            .translate(&txn(SID, VA, Access::READ))
            .unwrap()
            .addr,
        PA
    );
}

#[test]
fn nested_s2_fault_on_the_cd_is_class_cd() {
    let r = NestedRig::new();
    let ipa = 0x3_0000_0040;
    r.b.write_ste(SID, &nested_ste(ipa, r.s2.root()));
    assert_eq!(
        r.b.smmu.translate(&txn(SID, VA, Access::READ)),
        Err(Blocked::Abort)
    );
    // A lookup does not know the transaction: InputAddr and access bits are zero.
    assert_eq!(
        r.b.events()[0].words,
        rec(id::F_TRANSLATION, SID, S2 | CLASS_CD, 0, 0x3_0000_0000)
    );
}

#[test]
fn nested_s2_fault_on_the_cd_with_s2r_clear_is_not_recorded() {
    let r = NestedRig::new();
    let ste = nested_ste(0x3_0000_0000, r.s2.root());
    r.b.write_ste(
        SID,
        &vsva_smmuv3::spec::ste::Ste::from_words(
            ste.w0(),
            ste.w1(),
            ste.w2().with_s2r(false),
            ste.w3(),
        ),
    );
    assert_eq!(
        r.b.smmu.translate(&txn(SID, VA, Access::READ)),
        Err(Blocked::Abort)
    );
    assert!(r.b.events().is_empty());
}

#[test]
fn stage2_httu_sets_af_on_a_read_and_s2ap_w_on_a_write() {
    use vsva_pgtable::arm::{DBM, S2AP_W};
    let b = Bench::new();
    let fmt = vsva_pgtable::ArmS2 {
        ha: true,
        hd: true,
        ..s2_format()
    };
    let s2 = PageTable::new(fmt, frames(&b, S2_FRAMES)).unwrap();
    let ipa = 0x1000_0000;
    s2.map(ipa, PA, PageSize::Size4K, Perm::RW).unwrap();
    let leaf = s2.lookup(ipa).unwrap().entry;
    assert_ne!(leaf & DBM, 0);
    // Writable-clean (DBM = 1, S2AP[1] = 0), not accessed.
    let clean = leaf & !(S2AP_W | AF);
    s2.set_leaf(ipa, PageSize::Size4K, clean).unwrap();
    let ste = s2_only_ste(s2.root());
    b.write_ste(
        SID,
        &vsva_smmuv3::spec::ste::Ste::from_words(
            ste.w0(),
            ste.w1(),
            ste.w2().with_s2ha(true).with_s2hd(true),
            ste.w3(),
        ),
    );
    assert!(b.smmu.translate(&txn(SID, ipa, Access::READ)).is_ok());
    assert_eq!(s2.lookup(ipa).unwrap().entry, clean | AF);
    assert!(b.smmu.translate(&txn(SID, ipa, Access::WRITE)).is_ok());
    assert_eq!(s2.lookup(ipa).unwrap().entry, clean | AF | S2AP_W);
    assert!(b.events().is_empty());
}

#[test]
fn a_fault_with_a_substreamid_records_ssv_and_the_ssid() {
    // Two CDs; SubstreamID 1 uses CD 1 (ASID 6) over the same table.
    let r = S1Rig::new();
    r.b.write_cd_at(CDTAB + 64, &cd_from(good_cd0(ASID2), r.s1.root()));
    r.b.write_ste(SID, &s1_ste(CDTAB, 1, 0));
    let t = vsva_smmuv3::Transaction {
        ssid: Some(1),
        ..txn(SID, VA, Access::READ)
    };
    assert_eq!(r.b.smmu.translate(&t), Err(Blocked::Abort));
    let mut want = rec(id::F_TRANSLATION, SID, RNW | CLASS_IN, VA, 0);
    want[0] |= 1 << 11 | 1 << 12;
    assert_eq!(r.b.events()[0].words, want);
    r.map(VA, PA, Perm::USER_RW);
    assert_eq!(r.b.smmu.translate(&t).unwrap().addr, PA);
}

#[test]
fn cd_affd_uses_a_leaf_without_af_and_leaves_it_alone() {
    let r = S1Rig::with(s1_format(), |c| c.with_affd(true));
    r.map(VA, PA, Perm::USER_RW);
    let leaf = r.s1.lookup(VA).unwrap().entry & !AF;
    r.s1.set_leaf(VA, PageSize::Size4K, leaf).unwrap();
    assert_eq!(r.read(SID, VA).unwrap(), PA);
    assert_eq!(r.s1.lookup(VA).unwrap().entry, leaf, "AF stays clear");
    assert!(r.b.events().is_empty());
}

#[test]
fn ste_s2affd_uses_a_stage2_leaf_without_af() {
    let b = Bench::new();
    let s2 = PageTable::new(s2_format(), frames(&b, S2_FRAMES)).unwrap();
    let ipa = 0x1000_0000;
    s2.map(ipa, PA, PageSize::Size4K, Perm::RW).unwrap();
    let leaf = s2.lookup(ipa).unwrap().entry & !AF;
    s2.set_leaf(ipa, PageSize::Size4K, leaf).unwrap();
    let ste = s2_only_ste(s2.root());
    let with = |affd: bool| {
        vsva_smmuv3::spec::ste::Ste::from_words(
            ste.w0(),
            ste.w1(),
            ste.w2().with_s2affd(affd),
            ste.w3(),
        )
    };
    b.write_ste(SID, &with(false));
    assert_eq!(
        b.smmu.translate(&txn(SID, ipa, Access::READ)),
        Err(Blocked::Abort)
    );
    assert_eq!(
        b.events()[0].words,
        rec(id::F_ACCESS, SID, RNW | S2 | CLASS_IN, ipa, ipa)
    );
    b.write_ste(SID + 1, &with(true));
    assert_eq!(
        b.smmu
            .translate(&txn(SID + 1, ipa, Access::READ))
            .unwrap()
            .addr,
        PA
    );
}

#[test]
fn ste_privcfg_privileged_lets_an_unprivileged_request_read_a_privileged_page() {
    let r = S1Rig::new();
    r.map(VA, PA, Perm::RW);
    let ste = s1_ste(CDTAB, 0, 0);
    let with = |privcfg| {
        vsva_smmuv3::spec::ste::Ste::from_words(
            ste.w0(),
            ste.w1().with_privcfg(privcfg),
            ste.w2(),
            ste.w3(),
        )
    };
    r.b.write_ste(SID, &with(0b11));
    assert_eq!(r.read(SID, VA).unwrap(), PA);
    // PRIVCFG = unprivileged: even a privileged request faults, reported unprivileged.
    r.b.write_ste(SID2, &with(0b10));
    assert_eq!(
        r.b.smmu
            .translate(&txn(SID2, VA, Access::READ | Access::PRIV)),
        Err(Blocked::Abort)
    );
    assert_eq!(
        r.b.events()[0].words,
        rec(id::F_PERMISSION, SID2, RNW | CLASS_IN, VA, 0)
    );
}

#[test]
fn ste_instcfg_instruction_makes_a_read_a_fetch() {
    let r = S1Rig::new();
    // Readable, not executable (UXN).
    r.map(VA, PA, Perm::READ | Perm::USER);
    let ste = s1_ste(CDTAB, 0, 0);
    r.b.write_ste(
        SID,
        &vsva_smmuv3::spec::ste::Ste::from_words(
            ste.w0(),
            ste.w1().with_instcfg(0b11),
            ste.w2(),
            ste.w3(),
        ),
    );
    assert_eq!(r.read(SID, VA), Err(Blocked::Abort));
    assert_eq!(
        r.b.events()[0].words,
        rec(id::F_PERMISSION, SID, IND | RNW | CLASS_IN, VA, 0)
    );
    // A write stays a data write: a permission fault (read-only page) without InD.
    assert!(r.b.smmu.translate(&txn(SID, VA, Access::WRITE)).is_err());
    assert_eq!(
        r.b.events()[0].words,
        rec(id::F_PERMISSION, SID, CLASS_IN, VA, 0)
    );
}

/// IHI 0070 §3.4: an input address beyond the OAS (48 bits here) never reaches the output.
const BEYOND_OAS: u64 = 1 << 48;

#[test]
fn an_ste_bypass_address_beyond_the_oas_aborts_with_a_stage_1_f_addr_size() {
    // §3.4: "When a stream selects an STE with STE.Config == 0b100 [...] If the input address
    // of a transaction exceeds the size of the OAS, the transaction is terminated with an
    // abort and a stage 1 Address Size fault (F_ADDR_SIZE) is recorded."
    use vsva_smmuv3::spec::ste::{Ste, Ste0, Ste1, Ste2, Ste3, config};
    let b = Bench::new();
    let ste = Ste::from_words(
        Ste0::new().with_v(true).with_config(config::BYPASS),
        Ste1::new(),
        Ste2::new(),
        Ste3::new(),
    );
    b.write_ste(SID, &ste);
    let last = BEYOND_OAS - 1;
    assert_eq!(
        b.smmu
            .translate(&txn(SID, last, Access::READ))
            .unwrap()
            .addr,
        last
    );
    assert_eq!(
        b.smmu.translate(&txn(SID, BEYOND_OAS, Access::READ)),
        Err(Blocked::Abort)
    );
    assert_eq!(
        b.events().iter().map(|e| e.words).collect::<Vec<_>>(),
        vec![rec(id::F_ADDR_SIZE, SID, RNW | CLASS_IN, BEYOND_OAS, 0)]
    );
}

#[test]
fn with_smmuen_clear_an_address_beyond_the_oas_aborts_without_an_event() {
    // §3.4: "If the SMMU is disabled [...] If the input address of a transaction exceeds the
    // size of the OAS, the transaction is terminated with an abort and no event is recorded."
    use vsva_smmuv3::spec::registers::{Cr0, offset};
    let b = Bench::new();
    b.w32(offset::CR0, (Cr0::CMDQEN | Cr0::EVTQEN).bits());
    assert_eq!(
        b.smmu
            .translate(&txn(SID, 0x1234, Access::READ))
            .unwrap()
            .addr,
        0x1234
    );
    assert_eq!(
        b.smmu
            .translate(&txn(SID, BEYOND_OAS | 0x1234, Access::WRITE)),
        Err(Blocked::Abort)
    );
    assert!(b.events().is_empty());
}

#[test]
fn a_stage_1_bypassed_address_beyond_the_ias_is_a_stage_1_address_size_fault() {
    // §3.4: "If bypassing stage 1 [...] If the input address of a transaction exceeds the
    // size of the IAS, a stage 1 Address Size fault occurs, the transaction is terminated
    // with an abort and F_ADDR_SIZE is recorded" — not a stage 2 Translation fault.
    let b = Bench::new();
    b.write_ste(SID, &s2_ste(good_ste2(VMID)));
    assert_eq!(
        b.smmu.translate(&txn(SID, BEYOND_OAS, Access::READ)),
        Err(Blocked::Abort)
    );
    assert_eq!(
        b.events()[0].words,
        rec(id::F_ADDR_SIZE, SID, RNW | CLASS_IN, BEYOND_OAS, 0)
    );
}
