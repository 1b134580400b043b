//! CMD_SYNC waits for the walks begun before it (IHI 0070 §4.7.3; README "ordering
//! promises": after an invalidation completes, no access uses the old translation and no walk
//! still reads freed tables — software frees table frames as soon as the sync completes).
//!
//! Each test parks a walk on one memory load — the memory under the SMMU blocks the load of
//! one address until the test lets it go — then issues an invalidation and a CMD_SYNC from
//! another thread, and checks the sync does not complete until the parked walk has read its
//! entry and ended.

mod common;

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use common::xlate::*;
use common::*;
use vsva_mem::{Access, GatedMemory, PageSize, PhysMem, PhysMemory};
use vsva_pgtable::{PageTable, Perm};
use vsva_smmuv3::spec::cmd::{Command, SyncCs};
use vsva_smmuv3::spec::registers::offset;

/// How long a sync that must wait is watched before the walk is let go.
const HOLD: Duration = Duration::from_millis(50);
/// Bound on every other wait, so that a regression fails instead of hanging.
const BOUND: Duration = Duration::from_secs(5);

type Gated = GatedMemory<PhysMemory>;

/// A stage 1 stream over gated memory, VA mapped.
fn rig() -> (Bench, Arc<Gated>, PageTable<vsva_pgtable::ArmS1>) {
    let mem = Arc::new(PhysMemory::new(MEM).unwrap());
    let gate = Arc::new(GatedMemory::new(mem.clone()));
    let b = Bench::over(mem, gate.clone());
    let s1 = PageTable::new(s1_format(), frames(&b, S1_FRAMES)).unwrap();
    s1.map(VA, PA, PageSize::Size4K, Perm::USER_RW).unwrap();
    b.write_cd_at(CDTAB, &cd_from(good_cd0(ASID), s1.root()));
    b.write_ste(SID, &s1_ste(CDTAB, 0, 0));
    (b, gate, s1)
}

/// Writes `cmds` and a CMD_SYNC at the bench's PROD and publishes them (from any thread).
fn submit_with_sync(b: &Bench, cmds: &[Command]) -> u32 {
    let n = 1u32 << CMDQ_LOG2;
    let mut prod = b.prod;
    let sync = Command::Sync {
        cs: SyncCs::None,
        msh: 0,
        msiattr: 0,
        msidata: 0,
        msiaddr: 0,
    };
    for c in cmds.iter().chain([&sync]) {
        let raw = c.encode();
        let slot = (prod & (n - 1)) as u64;
        b.write_u64(CMDQ + slot * 16, raw[0]);
        b.write_u64(CMDQ + slot * 16 + 8, raw[1]);
        prod = (prod + 1) & (2 * n - 1);
    }
    b.smmu.mmio_write(offset::CMDQ_PROD, 4, prod as u64);
    prod
}

/// Parks a translation of VA on the load of `parked_at`, submits `cmds` + CMD_SYNC from
/// another thread, and checks the sync waits for the walk.
fn sync_waits_for_walk_parked_at(
    parked_at: impl Fn(&PageTable<vsva_pgtable::ArmS1>) -> u64,
    cmds: &[Command],
) {
    let (b, gate, s1) = rig();
    gate.arm(parked_at(&s1));
    let syncs = b.smmu.stats().syncs;
    thread::scope(|s| {
        let walker = s.spawn(|| b.smmu.translate(&txn(SID, VA, Access::READ)));
        assert!(gate.wait_parked(), "the walk never reached the gated load");
        let (done_tx, done_rx) = mpsc::channel();
        let b = &b;
        let gate2 = gate.clone();
        s.spawn(move || {
            submit_with_sync(b, cmds);
            done_tx.send(gate2.loaded()).unwrap();
        });
        assert_eq!(
            done_rx.recv_timeout(HOLD),
            Err(RecvTimeoutError::Timeout),
            "CMD_SYNC completed under a walk begun before it"
        );
        // (Not `stats()` here: it takes the register lock the command queue holds.)
        gate.release();
        let loaded_before_sync_done = done_rx.recv_timeout(BOUND).unwrap();
        assert!(loaded_before_sync_done);
        assert_eq!(walker.join().unwrap().unwrap().addr, PA);
    });
    assert_eq!(b.smmu.stats().syncs, syncs + 1);
}

#[test]
fn cmd_sync_waits_for_walk_reading_a_leaf_table() {
    // The walk is parked on VA's level 3 descriptor; software invalidates VA (as munmap
    // would before freeing the table).
    sync_waits_for_walk_parked_at(
        |s1| s1.lookup(VA).unwrap().slot,
        &[Command::TlbiNhVa {
            vmid: 0,
            asid: ASID,
            range: vsva_smmuv3::spec::cmd::TlbiRange {
                addr: VA,
                leaf: true,
                ..Default::default()
            },
        }],
    );
}

#[test]
fn cmd_sync_waits_for_walk_reading_a_cd() {
    // The lookup is parked on the CD fetch; software invalidates the CD.
    sync_waits_for_walk_parked_at(
        |_| CDTAB,
        &[Command::CfgiCd {
            sid: SID,
            ssid: 0,
            leaf: true,
        }],
    );
}

#[test]
fn a_walk_that_read_the_old_leaf_does_not_fill_the_tlb_after_the_invalidation() {
    // The walk reads VA's leaf (the old page) and is held there; software re-points the
    // leaf and invalidates; the walk then ends (with the old page: it began before the
    // sync) — and must not leave the old page in the TLB.
    let (b, gate, s1) = rig();
    let slot = s1.lookup(VA).unwrap().slot;
    gate.arm_after(slot);
    thread::scope(|s| {
        let walker = s.spawn(|| b.smmu.translate(&txn(SID, VA, Access::READ)));
        assert!(gate.wait_parked());
        let old = s1.lookup(VA).unwrap().entry;
        s1.set_leaf(
            VA,
            PageSize::Size4K,
            (old & !vsva_pgtable::arm::OA) | PA_NEW,
        )
        .unwrap();
        let b = &b;
        let syncer = s.spawn(move || {
            submit_with_sync(
                b,
                &[Command::TlbiNhAsid {
                    vmid: 0,
                    asid: ASID,
                }],
            )
        });
        thread::sleep(Duration::from_millis(10));
        gate.release();
        assert_eq!(walker.join().unwrap().unwrap().addr, PA);
        syncer.join().unwrap();
    });
    assert_eq!(
        b.smmu.translate(&txn(SID, VA, Access::READ)).unwrap().addr,
        PA_NEW
    );
}

#[test]
fn cmd_sync_does_not_wait_for_a_tlb_hit_or_walks_begun_after_it() {
    let (mut b, _gate, _s1) = rig();
    b.smmu.translate(&txn(SID, VA, Access::READ)).unwrap();
    b.sync();
    assert_eq!(b.smmu.stats().syncs, 1);
}

/// The ordering promise under load: translations on other threads, and a leaf re-pointed
/// again and again, each time invalidated (CMD_TLBI_NH_VA + CMD_SYNC). A translation that
/// begins after a sync completed never returns a page older than that sync's.
#[test]
fn no_translation_begun_after_cmd_sync_uses_the_old_page() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let (b, _gate, s1) = rig();
    // Generation g maps pages[g % 4]; the next one may be seen early (a walk that misses
    // reads the re-pointed leaf before its invalidation); an older one never.
    let pages = [PA, PA_NEW, PA + 0x2000, PA + 0x3000];
    // The generation whose page every translation begun from now on must see.
    let synced = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let b = &b;
    thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(Ordering::SeqCst) {
                    let g = synced.load(Ordering::SeqCst);
                    let t = b.smmu.translate(&txn(SID, VA, Access::READ)).unwrap();
                    let got = pages.iter().position(|&p| p == t.addr).unwrap() as u64;
                    assert!(
                        got == g % 4 || got == (g + 1) % 4 || synced.load(Ordering::SeqCst) > g,
                        "generation {g}: translated to the old page after its CMD_SYNC"
                    );
                }
            });
        }
        let mut prod = b.prod;
        for g in 1..=200u64 {
            let old = s1.lookup(VA).unwrap().entry;
            s1.set_leaf(
                VA,
                PageSize::Size4K,
                (old & !vsva_pgtable::arm::OA) | pages[(g % 4) as usize],
            )
            .unwrap();
            let n = 1u32 << CMDQ_LOG2;
            let cmds = [
                Command::TlbiNhVa {
                    vmid: 0,
                    asid: ASID,
                    range: vsva_smmuv3::spec::cmd::TlbiRange {
                        addr: VA,
                        leaf: true,
                        ..Default::default()
                    },
                },
                Command::Sync {
                    cs: SyncCs::None,
                    msh: 0,
                    msiattr: 0,
                    msidata: 0,
                    msiaddr: 0,
                },
            ];
            for c in cmds {
                let raw = c.encode();
                let slot = (prod & (n - 1)) as u64;
                b.write_u64(CMDQ + slot * 16, raw[0]);
                b.write_u64(CMDQ + slot * 16 + 8, raw[1]);
                prod = (prod + 1) & (2 * n - 1);
            }
            b.smmu.mmio_write(offset::CMDQ_PROD, 4, prod as u64);
            synced.store(g, Ordering::SeqCst);
        }
        stop.store(true, Ordering::SeqCst);
    });
    assert_eq!(
        b.r32(offset::CMDQ_CONS) & 0x1f,
        b.r32(offset::CMDQ_PROD) & 0x1f
    );
}

/// A platform master's piece of work — translate VA, then read the page it maps — run in
/// `Smmuv3::in_flight` (what `Smmuv3Port`'s `PlatformUpstream::in_flight` does): parked in
/// the access (the translation long done, a TLB hit), a TLBI + CMD_SYNC for VA waits for it,
/// so when the unmap's sync completes no access still uses the old page (§4.7.3).
#[test]
fn cmd_sync_waits_for_an_access_in_flight_after_its_translation() {
    let (b, gate, _s1) = rig();
    // warm the TLB: the parked piece's translation is a hit, not a walk
    assert_eq!(
        b.smmu.translate(&txn(SID, VA, Access::READ)).unwrap().addr,
        PA
    );
    gate.arm(PA);
    let inv = [Command::TlbiNhVa {
        vmid: 0,
        asid: ASID,
        range: vsva_smmuv3::spec::cmd::TlbiRange {
            addr: VA,
            leaf: true,
            ..Default::default()
        },
    }];
    thread::scope(|s| {
        let b = &b;
        let gate_r = gate.clone();
        let master = s.spawn(move || {
            let mut read = None;
            b.smmu.in_flight(&mut || {
                let pa = b.smmu.translate(&txn(SID, VA, Access::READ)).unwrap().addr;
                read = Some(gate_r.load_u64(pa).unwrap());
            });
            read
        });
        assert!(
            gate.wait_parked(),
            "the access never reached the gated page"
        );
        let (done_tx, done_rx) = mpsc::channel();
        let gate2 = gate.clone();
        s.spawn(move || {
            submit_with_sync(b, &inv);
            done_tx.send(gate2.loaded()).unwrap();
        });
        assert_eq!(
            done_rx.recv_timeout(HOLD),
            Err(RecvTimeoutError::Timeout),
            "CMD_SYNC completed while an access using the old translation was in flight"
        );
        gate.release();
        assert!(
            done_rx.recv_timeout(BOUND).unwrap(),
            "sync ended before the access"
        );
        assert!(master.join().unwrap().is_some());
    });
}

/// The same access outside `in_flight` is not waited for: the test above depends on it.
#[test]
fn cmd_sync_does_not_wait_for_an_access_outside_in_flight() {
    let (b, gate, _s1) = rig();
    assert_eq!(
        b.smmu.translate(&txn(SID, VA, Access::READ)).unwrap().addr,
        PA
    );
    gate.arm(PA);
    thread::scope(|s| {
        let b = &b;
        let gate_r = gate.clone();
        let master = s.spawn(move || {
            let pa = b.smmu.translate(&txn(SID, VA, Access::READ)).unwrap().addr;
            gate_r.load_u64(pa).unwrap()
        });
        assert!(gate.wait_parked());
        let (done_tx, done_rx) = mpsc::channel();
        s.spawn(move || {
            submit_with_sync(b, &[]);
            done_tx.send(()).unwrap();
        });
        assert_eq!(done_rx.recv_timeout(BOUND), Ok(()));
        gate.release();
        master.join().unwrap();
    });
}
