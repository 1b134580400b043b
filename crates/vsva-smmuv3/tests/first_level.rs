//! The first-level cache (complete translation results in front of the configuration
//! cache and the TLB): it answers repeated translations, counts them as the caches behind
//! it would, and forgets them on every invalidation and register change that could alter
//! them — a translation after CMD_CFGI_* / CMD_TLBI_* + CMD_SYNC, or after SMMUEN / GBPA
//! writes, sees the new state.

mod common;

use common::xlate::*;
use common::*;
use vsva_mem::Access;
use vsva_pgtable::Perm;
use vsva_smmuv3::spec::cmd::{Command, TlbiRange};
use vsva_smmuv3::spec::registers::{Cr0, offset};
use vsva_smmuv3::spec::ste::{Ste, config, s1fmt};
use vsva_smmuv3::{Blocked, Transaction};

/// [`SID`] maps `VA` → `PA`, translated a few times (the first-level cache holds it), then
/// re-pointed to `PA_NEW` in memory without telling the SMMU.
fn filled() -> S1Rig {
    let r = S1Rig::new();
    r.map(VA, PA, Perm::USER_RW);
    for _ in 0..3 {
        assert_eq!(r.read(SID, VA).unwrap(), PA);
    }
    r.repoint(VA, PA_NEW);
    assert_eq!(r.read(SID, VA).unwrap(), PA, "cached until invalidated");
    r
}

fn run(r: &mut S1Rig, cmd: Command) {
    r.b.submit(&[cmd]);
    r.b.sync();
}

#[test]
fn repeated_hits_count_as_configuration_cache_and_tlb_hits() {
    let r = S1Rig::new();
    r.map(VA, PA, Perm::USER_RW);
    r.read(SID, VA).unwrap();
    let before = r.b.smmu.stats();
    for i in 0..100 {
        assert_eq!(r.read(SID, VA + i).unwrap(), PA + i);
    }
    let after = r.b.smmu.stats();
    assert_eq!(after.tlb.hits - before.tlb.hits, 100);
    assert_eq!(after.cache.hits - before.cache.hits, 100);
    assert_eq!(after.tlb.walks, before.tlb.walks);
    assert_eq!(after.cache.misses, before.cache.misses);
}

#[test]
fn hit_counts_from_many_threads_add_up() {
    let r = S1Rig::new();
    r.map(VA, PA, Perm::USER_RW);
    r.read(SID, VA).unwrap();
    let before = r.b.smmu.stats().tlb.hits;
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..500 {
                    assert_eq!(r.read(SID, VA).unwrap(), PA);
                }
            });
        }
    });
    assert_eq!(r.b.smmu.stats().tlb.hits - before, 4000);
}

#[test]
fn tlbi_nh_va_and_sync_end_the_cached_result() {
    let mut r = filled();
    run(
        &mut r,
        Command::TlbiNhVa {
            vmid: 0,
            asid: ASID,
            range: TlbiRange {
                addr: VA,
                leaf: true,
                ..TlbiRange::default()
            },
        },
    );
    assert_eq!(r.read(SID, VA).unwrap(), PA_NEW);
}

#[test]
fn any_tlbi_ends_every_cached_result() {
    // Invalidating more than named is allowed: a TLBI of another ASID also empties the
    // first level; the TLB behind it still answers with the old page.
    let mut r = filled();
    run(
        &mut r,
        Command::TlbiNhAsid {
            vmid: 0,
            asid: ASID2,
        },
    );
    assert_eq!(r.read(SID, VA).unwrap(), PA, "the TLB keeps ASID 5's entry");
}

#[test]
fn cfgi_ste_and_sync_end_the_cached_result() {
    let mut r = filled();
    r.b.write_ste(SID, &with_config(config::ABORT));
    assert_eq!(
        r.read(SID, VA).unwrap(),
        PA,
        "the STE is cached until CFGI_STE"
    );
    run(
        &mut r,
        Command::CfgiSte {
            sid: SID,
            leaf: true,
        },
    );
    assert_eq!(r.read(SID, VA), Err(Blocked::Abort));
}

#[test]
fn cfgi_ste_range_and_cd_all_end_the_cached_result() {
    for cmd in [
        Command::CfgiSteRange { sid: 0, range: 31 },
        Command::CfgiCdAll { sid: SID },
    ] {
        let mut r = filled();
        r.b.write_ste(SID, &with_config(config::BYPASS));
        run(&mut r, cmd);
        assert_eq!(r.read(SID, VA).unwrap(), VA, "{cmd:?}");
    }
}

#[test]
fn cfgi_cd_and_sync_end_the_cached_result() {
    let mut r = filled();
    // CD 0 now names ASID 6 (nothing in the TLB) over an empty table: a translation fault,
    // once the CD is re-read.
    r.b.write_cd_at(CDTAB, &cd_from(good_cd0(ASID2), NOWHERE));
    assert_eq!(
        r.read(SID, VA).unwrap(),
        PA,
        "the CD is cached until CFGI_CD"
    );
    run(
        &mut r,
        Command::CfgiCd {
            sid: SID,
            ssid: 0,
            leaf: true,
        },
    );
    assert!(r.read(SID, VA).is_err());
}

#[test]
fn smmuen_off_bypasses_at_once_and_gbpa_abort_aborts() {
    let r = filled();
    r.b.w32(offset::CR0, (Cr0::CMDQEN | Cr0::EVTQEN).bits());
    assert_eq!(r.read(SID, VA).unwrap(), VA, "SMMUEN = 0 bypasses");
    r.b.w32(offset::GBPA, 1 << 31 | 1 << 20);
    assert_eq!(r.read(SID, VA), Err(Blocked::Abort), "GBPA.ABORT");
    r.b.w32(offset::GBPA, 1 << 31);
    r.b.w32(
        offset::CR0,
        (Cr0::SMMUEN | Cr0::CMDQEN | Cr0::EVTQEN).bits(),
    );
    assert_eq!(r.read(SID, VA).unwrap(), PA_NEW, "re-enabled: walked again");
}

#[test]
fn only_the_access_that_filled_hits() {
    let r = S1Rig::new();
    r.map(VA, PA, Perm::USER_RW.difference(Perm::WRITE));
    assert_eq!(r.read(SID, VA).unwrap(), PA);
    assert_eq!(r.read(SID, VA).unwrap(), PA);
    let write = |sid| {
        r.b.smmu.translate(&Transaction {
            sid,
            ssid: None,
            addr: VA,
            access: Access::WRITE,
            stallable: false,
        })
    };
    assert!(write(SID).is_err(), "a read-only page refuses the write");
    // Another stream, or a privileged read, is not answered by this stream's entry.
    assert!(r.read(SID2, VA).is_err(), "no STE for SID2");
    let t =
        r.b.smmu
            .translate(&txn(SID, VA, Access::READ | Access::PRIV))
            .unwrap();
    assert_eq!(t.addr, PA);
}

fn with_config(c: u8) -> Ste {
    let ste = s1_ste(CDTAB, 0, s1fmt::LINEAR);
    Ste::from_words(ste.w0().with_config(c), ste.w1(), ste.w2(), ste.w3())
}
