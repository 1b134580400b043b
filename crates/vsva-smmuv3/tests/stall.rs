//! The stall model (IHI 0070 §3.12.2): a stallable transaction faulting under CD.S = 1 is
//! held under a STAG with an event record carrying STALL = 1 and the STAG, until CMD_RESUME
//! (§4.7.1) retries, aborts or terminates it, or CMD_STALL_TERM (§4.7.2) ends its stream's
//! stalls.

mod common;

use std::time::Duration;

use common::xlate::*;
use common::*;
use vsva_mem::Access;
use vsva_pgtable::Perm;
use vsva_smmuv3::spec::cmd::{Command, ResumeAction};
use vsva_smmuv3::spec::event::id;
use vsva_smmuv3::{Blocked, StallTag, Transaction};

fn stalling() -> S1Rig {
    S1Rig::with(s1_format(), |c| c.with_s(true))
}

fn platform(sid: u32, addr: u64, access: Access) -> Transaction {
    Transaction {
        stallable: true,
        ..txn(sid, addr, access)
    }
}

fn stall(r: &S1Rig, sid: u32, addr: u64) -> StallTag {
    match r.b.smmu.translate(&platform(sid, addr, Access::READ)) {
        Err(Blocked::Stalled(tag)) => tag,
        other => panic!("expected a stall, got {other:?}"),
    }
}

fn resume(r: &mut S1Rig, tag: StallTag, action: ResumeAction) {
    r.b.submit(&[Command::Resume {
        sid: tag.sid,
        stag: tag.stag,
        action,
    }]);
    r.b.sync();
}

#[test]
fn a_stalled_transaction_records_stall_and_stag() {
    let r = stalling();
    let tag = stall(&r, SID, VA);
    assert_eq!(tag.sid, SID);
    assert_eq!(
        r.b.events()[0].words,
        rec(
            id::F_TRANSLATION,
            SID,
            tag.stag as u64 | STALL | RNW | CLASS_IN,
            VA,
            0
        )
    );
    assert_eq!(r.b.smmu.stalled(), 1);
    assert_eq!(r.b.smmu.poll_stalled(tag), None, "still stalled");
}

#[test]
fn stalls_beyond_idr5_stall_max_are_terminated_not_held() {
    // IHI 0070 §6.3.6 IDR5.STALL_MAX: the stall records outstanding (neither resumed nor
    // terminated) never exceed it, even when software keeps consuming the events.
    let r = stalling();
    let max =
        (r.b.smmu
            .mmio_read(vsva_smmuv3::spec::registers::offset::IDR5, 4)
            >> 16) as usize;
    assert_eq!(max, 64);
    for i in 0..max as u64 {
        stall(&r, SID, VA + i * 8);
        r.b.events();
    }
    assert_eq!(r.b.smmu.stalled(), max);
    // One more: terminated by the fault rules of a transaction that cannot stall (CD.R = 1
    // records it, without STALL; CD.A = 1 aborts it).
    let r2 = r.b.smmu.translate(&platform(SID, VA, Access::READ));
    assert_eq!(r2, Err(Blocked::Abort));
    assert_eq!(r.b.smmu.stalled(), max);
    let ev = r.b.events();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].words[1] & STALL, 0, "no STALL: nothing to resume");
}

#[test]
fn two_stalls_get_different_stags() {
    let r = stalling();
    let a = stall(&r, SID, VA);
    let b = stall(&r, SID, VA + 0x1000);
    assert_ne!(a.stag, b.stag);
}

#[test]
fn resume_retry_succeeds_after_the_table_is_fixed() {
    let mut r = stalling();
    let tag = stall(&r, SID, VA + 0x10);
    r.map(VA, PA, Perm::USER_RW);
    resume(&mut r, tag, ResumeAction::Retry);
    let t = r.b.smmu.poll_stalled(tag).unwrap().unwrap();
    assert_eq!(t.addr, PA + 0x10);
    assert_eq!(r.b.smmu.stalled(), 0);
}

#[test]
fn resume_retry_of_a_still_broken_table_stalls_again() {
    let mut r = stalling();
    let tag = stall(&r, SID, VA);
    r.b.events();
    resume(&mut r, tag, ResumeAction::Retry);
    let again = match r.b.smmu.poll_stalled(tag) {
        Some(Err(Blocked::Stalled(t))) => t,
        other => panic!("expected a new stall, got {other:?}"),
    };
    let ev = r.b.events();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].words[1] & 0xffff, again.stag as u64);
}

#[test]
fn resume_abort_fails_the_transaction() {
    let mut r = stalling();
    let tag = stall(&r, SID, VA);
    r.map(VA, PA, Perm::USER_RW);
    resume(&mut r, tag, ResumeAction::Abort);
    assert_eq!(r.b.smmu.poll_stalled(tag), Some(Err(Blocked::Abort)));
}

#[test]
fn resume_terminate_gives_raz_wi() {
    let mut r = stalling();
    let tag = stall(&r, SID, VA);
    resume(&mut r, tag, ResumeAction::Terminate);
    assert_eq!(r.b.smmu.poll_stalled(tag), Some(Err(Blocked::RazWi)));
}

#[test]
fn resume_of_an_unknown_stag_is_ignored() {
    let mut r = stalling();
    let tag = stall(&r, SID, VA);
    resume(
        &mut r,
        StallTag {
            sid: SID,
            stag: tag.stag.wrapping_add(100),
        },
        ResumeAction::Abort,
    );
    assert_eq!(r.b.smmu.poll_stalled(tag), None);
    assert_eq!(r.b.smmu.stalled(), 1);
}

#[test]
fn stall_term_aborts_every_stall_of_the_stream_and_no_other() {
    let mut r = S1Rig::with(s1_format(), |c| c.with_s(true));
    r.b.write_cd_at(CD2, &cd_from(good_cd0(ASID2).with_s(true), r.s1.root()));
    r.b.write_ste(SID2, &s1_ste(CD2, 0, 0));
    let a = stall(&r, SID, VA);
    let b = stall(&r, SID, VA + 0x1000);
    let other = stall(&r, SID2, VA);
    r.b.submit(&[Command::StallTerm { sid: SID }]);
    r.b.sync();
    assert_eq!(r.b.smmu.poll_stalled(a), Some(Err(Blocked::Abort)));
    assert_eq!(r.b.smmu.poll_stalled(b), Some(Err(Blocked::Abort)));
    assert_eq!(r.b.smmu.poll_stalled(other), None);
}

#[test]
fn a_transaction_that_cannot_stall_is_terminated_and_recorded_without_stall() {
    let r = stalling();
    assert_eq!(
        r.b.smmu.translate(&txn(SID, VA, Access::READ)),
        Err(Blocked::Abort)
    );
    assert_eq!(
        r.b.events()[0].words,
        rec(id::F_TRANSLATION, SID, RNW | CLASS_IN, VA, 0)
    );
    assert_eq!(r.b.smmu.stalled(), 0);
}

#[test]
fn a_stall_is_recorded_even_with_cd_r_clear() {
    let r = S1Rig::with(s1_format(), |c| c.with_s(true).with_r(false));
    let tag = stall(&r, SID, VA);
    assert_eq!(
        r.b.events()[0].words[1] & (STALL | 0xffff),
        STALL | tag.stag as u64
    );
}

#[test]
fn a_stall_whose_event_is_lost_is_terminated() {
    let r = stalling();
    // Event queue off: nobody would learn of the stall.
    r.b.w32(
        vsva_smmuv3::spec::registers::offset::CR0,
        (vsva_smmuv3::spec::registers::Cr0::SMMUEN | vsva_smmuv3::spec::registers::Cr0::CMDQEN)
            .bits(),
    );
    assert_eq!(
        r.b.smmu.translate(&platform(SID, VA, Access::READ)),
        Err(Blocked::Abort)
    );
    assert_eq!(r.b.smmu.stalled(), 0);
}

#[test]
fn wait_stalled_returns_when_software_resumes() {
    let mut r = stalling();
    let tag = stall(&r, SID, VA);
    r.map(VA, PA, Perm::USER_RW);
    assert_eq!(r.b.smmu.wait_stalled(tag, Duration::from_millis(10)), None);
    std::thread::scope(|s| {
        let smmu = &r.b.smmu;
        let waiter = s.spawn(move || smmu.wait_stalled(tag, Duration::from_secs(5)));
        std::thread::sleep(Duration::from_millis(10));
        let mut prod = r.b.prod;
        // Submit by hand: `r.b` is borrowed by the waiter.
        let cmds = [Command::Resume {
            sid: tag.sid,
            stag: tag.stag,
            action: ResumeAction::Retry,
        }
        .encode()];
        for c in cmds {
            let slot = (prod & ((1 << CMDQ_LOG2) - 1)) as u64;
            r.b.write_u64(CMDQ + slot * 16, c[0]);
            r.b.write_u64(CMDQ + slot * 16 + 8, c[1]);
            prod = (prod + 1) & ((2 << CMDQ_LOG2) - 1);
        }
        smmu.mmio_write(
            vsva_smmuv3::spec::registers::offset::CMDQ_PROD,
            4,
            prod as u64,
        );
        let got = waiter.join().unwrap();
        assert_eq!(got.unwrap().unwrap().addr, PA);
    });
    r.b.prod = (r.b.prod + 1) & ((2 << CMDQ_LOG2) - 1);
}

#[test]
fn a_stage2_fault_stalls_under_s2s_with_s2_set() {
    let mut b = Bench::new();
    let s2 = vsva_pgtable::PageTable::new(s2_format(), frames(&b, S2_FRAMES)).unwrap();
    let ste = s2_only_ste(s2.root());
    b.write_ste(
        SID,
        &vsva_smmuv3::spec::ste::Ste::from_words(
            ste.w0(),
            ste.w1(),
            ste.w2().with_s2s(true),
            ste.w3(),
        ),
    );
    let ipa = 0x1000_0000;
    let tag = match b.smmu.translate(&platform(SID, ipa, Access::WRITE)) {
        Err(Blocked::Stalled(t)) => t,
        other => panic!("expected a stall, got {other:?}"),
    };
    assert_eq!(
        b.events()[0].words,
        rec(
            id::F_TRANSLATION,
            SID,
            tag.stag as u64 | STALL | S2 | CLASS_IN,
            ipa,
            ipa
        )
    );
    s2.map(ipa, PA, vsva_mem::PageSize::Size4K, Perm::RW)
        .unwrap();
    b.submit(&[Command::Resume {
        sid: SID,
        stag: tag.stag,
        action: ResumeAction::Retry,
    }]);
    b.sync();
    assert_eq!(b.smmu.poll_stalled(tag).unwrap().unwrap().addr, PA);
}
