//! ATS (IHI 0070 §3.9): Translation Requests answered by STE.EATS, F_BAD_ATS_TREQ and
//! F_TRANSL_FORBIDDEN, translated traffic with CR0.ATSCHK.

mod common;

use common::xlate::*;
use common::*;
use vsva_mem::{Access, PageSize};
use vsva_pgtable::Perm;
use vsva_smmuv3::spec::cd::Cd0;
use vsva_smmuv3::spec::event::id;
use vsva_smmuv3::spec::registers::{Cr0, offset};
use vsva_smmuv3::spec::ste::{Ste, eats};
use vsva_smmuv3::{AtsRefused, Blocked};

/// A stage 1 stream with STE.EATS = `e`.
fn with_eats(e: u8, cd: impl Fn(Cd0) -> Cd0) -> S1Rig {
    let r = S1Rig::with(s1_format(), cd);
    let ste = s1_ste(CDTAB, 0, 0);
    let w1 = ste.w1().with_eats(e);
    r.b.write_ste(SID, &Ste::from_words(ste.w0(), w1, ste.w2(), ste.w3()));
    r
}

#[test]
fn ats_translation_request_returns_the_page_and_its_rights() {
    let r = with_eats(eats::TRANS, |c| c);
    r.map(VA, PA, Perm::USER_RW);
    let c =
        r.b.smmu
            .ats_translate(SID, None, VA + 0x10, Access::READ)
            .unwrap();
    assert_eq!((c.addr, c.size), (PA, PageSize::Size4K));
    // W only to a request for writing; no execute (UXN).
    assert_eq!(
        (c.read, c.write, c.exec, c.privileged),
        (true, false, false, false)
    );
    let c =
        r.b.smmu
            .ats_translate(SID, None, VA, Access::WRITE)
            .unwrap();
    assert_eq!((c.read, c.write), (true, true));
    assert!(r.b.events().is_empty());
}

#[test]
fn ats_write_request_for_a_read_only_page_gets_read_only() {
    let r = with_eats(eats::TRANS, |c| c);
    r.map(VA, PA, Perm::READ | Perm::USER);
    let c =
        r.b.smmu
            .ats_translate(SID, None, VA, Access::WRITE)
            .unwrap();
    assert_eq!((c.addr, c.read, c.write), (PA, true, false));
    assert!(r.b.events().is_empty());
}

#[test]
fn ats_translation_fault_gives_an_empty_completion_and_no_event() {
    let r = with_eats(eats::TRANS, |c| c);
    let c = r.b.smmu.ats_translate(SID, None, VA, Access::READ).unwrap();
    assert!(c.is_empty());
    assert!(r.b.events().is_empty());
    // Nothing stalls, even with CD.S.
    let r = with_eats(eats::TRANS, |c| c.with_s(true));
    assert!(
        r.b.smmu
            .ats_translate(SID, None, VA, Access::READ)
            .unwrap()
            .is_empty()
    );
    assert_eq!(r.b.smmu.stalled(), 0);
}

#[test]
fn f_bad_ats_treq_when_eats_is_zero() {
    let r = with_eats(eats::ABORT, |c| c);
    r.map(VA, PA, Perm::USER_RW);
    assert_eq!(
        r.b.smmu.ats_translate(SID, None, VA + 0x10, Access::READ),
        Err(AtsRefused::UnsupportedRequest)
    );
    // R in dword 1 bit 30, InputAddr[63:12] in dword 2.
    assert_eq!(
        r.b.events()[0].words,
        rec(id::F_BAD_ATS_TREQ, SID, 1 << 30, VA, 0)
    );
}

#[test]
fn f_bad_ats_treq_write_request_sets_w() {
    let r = with_eats(eats::ABORT, |c| c);
    assert!(
        r.b.smmu
            .ats_translate(SID, None, VA, Access::READ | Access::WRITE)
            .is_err()
    );
    assert_eq!(
        r.b.events()[0].words,
        rec(id::F_BAD_ATS_TREQ, SID, 1 << 30 | 1 << 29, VA, 0)
    );
}

#[test]
fn ats_on_a_disabled_smmu_is_unsupported_without_event() {
    let b = Bench::new();
    b.w32(offset::CR0, (Cr0::CMDQEN | Cr0::EVTQEN).bits());
    assert_eq!(
        b.smmu.ats_translate(SID, None, VA, Access::READ),
        Err(AtsRefused::UnsupportedRequest)
    );
    assert!(b.events().is_empty());
}

#[test]
fn ats_split_stage_returns_the_ipa() {
    let r = NestedRig::new();
    let ste = nested_ste(CDTAB, r.s2.root());
    r.b.write_ste(
        SID,
        &Ste::from_words(
            ste.w0(),
            ste.w1().with_eats(eats::S1CHK),
            ste.w2(),
            ste.w3(),
        ),
    );
    let c = r.b.smmu.ats_translate(SID, None, VA, Access::READ).unwrap();
    assert_eq!((c.addr, c.read), (L2, true));
}

fn atschk(b: &Bench) {
    b.w32(
        offset::CR0,
        (Cr0::SMMUEN | Cr0::CMDQEN | Cr0::EVTQEN | Cr0::ATSCHK).bits(),
    );
}

#[test]
fn translated_traffic_passes_unchecked_without_atschk() {
    let r = with_eats(eats::ABORT, |c| c);
    assert_eq!(r.b.smmu.translated(SID, None, PA, Access::WRITE), Ok(PA));
    assert!(r.b.events().is_empty());
}

#[test]
fn f_transl_forbidden_with_atschk_and_eats_zero() {
    let r = with_eats(eats::ABORT, |c| c);
    atschk(&r.b);
    assert_eq!(
        r.b.smmu.translated(SID, None, PA + 8, Access::READ),
        Err(Blocked::Abort)
    );
    assert_eq!(
        r.b.events()[0].words,
        rec(id::F_TRANSL_FORBIDDEN, SID, RNW, PA + 8, 0)
    );
}

#[test]
fn translated_traffic_passes_with_atschk_and_full_ats() {
    let r = with_eats(eats::TRANS, |c| c);
    atschk(&r.b);
    assert_eq!(r.b.smmu.translated(SID, None, PA, Access::READ), Ok(PA));
}

#[test]
fn split_stage_translated_traffic_goes_through_stage2() {
    let r = NestedRig::new();
    let ste = nested_ste(CDTAB, r.s2.root());
    r.b.write_ste(
        SID,
        &Ste::from_words(
            ste.w0(),
            ste.w1().with_eats(eats::S1CHK),
            ste.w2(),
            ste.w3(),
        ),
    );
    atschk(&r.b);
    assert_eq!(
        r.b.smmu.translated(SID, None, L2 + 4, Access::READ),
        Ok(PA + 4)
    );
    // Unmapped at stage 2: a stage 2 fault.
    assert_eq!(
        r.b.smmu.translated(SID, None, 0x3000_0000, Access::READ),
        Err(Blocked::Abort)
    );
    assert_eq!(
        r.b.events()[0].words,
        rec(
            id::F_TRANSLATION,
            SID,
            RNW | S2 | CLASS_IN,
            0x3000_0000,
            0x3000_0000
        )
    );
}
