//! Cache purges wait for the table walks begun before them (VT-d 4.1 §6.5.2, §6.5.2.9;
//! DESIGN.md: an IOMMU invalidation wait completes only when no cached or in-flight use of the
//! old entry remains). Software frees page-table frames as soon as the invalidation completes
//! (munmap, exit), so a walk still reading then would read a freed frame.
//!
//! Each test parks a walk on a leaf-table entry — the memory under the unit blocks the load of
//! that one address until the test lets it go — then purges the caches from another thread
//! (an invalidation through the queue, or a GCMD write) and checks that the purge does not
//! complete until the parked walk has read its entry and ended.

mod common;

use std::ops::Deref;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use common::{WAIT_DATA, pasid_entry};
use vsva_mem::{Access, GatedMemory, PageSize, Pasid, PhysMemory, Rid};
use vsva_pcie::{Request, RequestKind};
use vsva_pgtable::x86::X86Paging;
use vsva_pgtable::{PageTable, Perm};
use vsva_vtd::spec::descriptors::encode;
use vsva_vtd::spec::pasid::Pgtt;
use vsva_vtd::spec::registers::{Gcmd, offset};
use vsva_vtd::{AtsTranslated, Blocked, Translated, VtdConfig};

/// How long a purge that must wait is watched before the walk is let go.
const HOLD: Duration = Duration::from_millis(50);
/// Bound on every other wait, so that a regression fails instead of hanging.
const BOUND: Duration = Duration::from_secs(5);

/// What the gate has seen of the armed address.
type Gated = GatedMemory<PhysMemory>;

const DEV: Rid = Rid::from_raw(0x18);
const PASID: u32 = 5;
const DID: u16 = 3;

/// The common [`common::Rig`] with the unit over gated memory, and [`DEV`]'s [`PASID`]
/// translated first-stage by `fs`. Tables are written to the memory directly, as a driver's
/// CPU stores would be.
struct Rig {
    unit: common::Rig,
    gate: Arc<Gated>,
    fs: PageTable<X86Paging>,
}

impl Deref for Rig {
    type Target = common::Rig;

    fn deref(&self) -> &common::Rig {
        &self.unit
    }
}

impl Rig {
    fn new() -> Rig {
        let mem = Arc::new(PhysMemory::new(1 << 30).unwrap());
        let gate = Arc::new(GatedMemory::new(mem.clone()));
        let unit = common::Rig::over(VtdConfig::default(), mem, gate.clone());
        // Context (PASIDs and ATS on) → PASID directory → PASID entry. Nothing was
        // translated yet, so no cache holds the old (empty) entries.
        let dir = unit.attach_device(DEV);
        let fs = PageTable::new(
            X86Paging {
                smap: false,
                smep: false,
                ..X86Paging::default()
            },
            unit.frames.clone(),
        )
        .unwrap();
        unit.write_pasid(
            dir,
            PASID,
            &pasid_entry(Pgtt::FirstStage, DID, 0, fs.root()),
        );
        Rig { unit, gate, fs }
    }

    /// A read of `addr` by [`DEV`] under [`PASID`], untranslated.
    fn read(&self, addr: u64) -> Result<Translated, Blocked> {
        self.dma(DEV, Some(PASID), addr, Access::READ)
    }

    /// An ATS translation request of [`DEV`] under [`PASID`] for `addr`.
    fn ats_translate(&self, addr: u64) -> Result<AtsTranslated, Blocked> {
        self.vtd.ats_translate(&Request {
            rid: DEV,
            pasid: Some(Pasid::new(PASID).unwrap()),
            addr,
            access: Access::READ,
            kind: RequestKind::Translation,
        })
    }

    /// Maps `va` (4 KiB, user read/write) to `pa`; returns the address of its leaf entry.
    fn map(&self, va: u64, pa: u64) -> u64 {
        self.fs
            .map(va, pa, PageSize::Size4K, Perm::USER_RW)
            .unwrap();
        self.fs.lookup(va).unwrap().slot
    }
}

/// What a purge reported when it returned.
struct Purged {
    /// Its own result (the wait's status, or what GSTS showed).
    result: u64,
    /// Had the parked walk read its entry by then?
    walk_had_loaded: bool,
}

/// What the race showed.
struct Race<T> {
    /// The purge returned while the walk was still parked ([`HOLD`] after it began).
    finished_under_the_walk: bool,
    purged: Purged,
    walked: T,
}

/// Parks `walk` (on its own thread) on the load of `armed`, runs `purge` on another thread
/// once it is parked, and lets the walk go [`HOLD`] later. Every wait is bounded; the walk is
/// let go before anything is asserted, so that a failure does not leave it parked.
fn race<T: Send + 'static>(
    rig: &Arc<Rig>,
    armed: u64,
    walk: impl FnOnce(&Rig) -> T + Send + 'static,
    purge: impl FnOnce(&Rig) -> u64 + Send + 'static,
) -> Race<T> {
    rig.gate.arm(armed);
    let (walked_tx, walked_rx) = mpsc::channel();
    let walker = {
        let rig = rig.clone();
        thread::spawn(move || walked_tx.send(walk(&rig)).unwrap())
    };
    assert!(
        rig.gate.wait_parked(),
        "the walk never read the armed leaf entry (it hit a cache?)"
    );

    let (purged_tx, purged_rx) = mpsc::channel();
    let purger = {
        let rig = rig.clone();
        thread::spawn(move || {
            let result = purge(&rig);
            let walk_had_loaded = rig.gate.loaded();
            purged_tx
                .send(Purged {
                    result,
                    walk_had_loaded,
                })
                .unwrap();
        })
    };
    let early = purged_rx.recv_timeout(HOLD);
    rig.gate.release();
    let finished_under_the_walk = early.is_ok();
    let purged = match early {
        Ok(p) => p,
        Err(RecvTimeoutError::Timeout) => purged_rx
            .recv_timeout(BOUND)
            .expect("the purge never completed after the walk ended"),
        Err(e) => panic!("the purging thread died: {e}"),
    };
    let walked = walked_rx
        .recv_timeout(BOUND)
        .expect("the walk never ended after it was let go");
    walker.join().unwrap();
    purger.join().unwrap();
    Race {
        finished_under_the_walk,
        purged,
        walked,
    }
}

#[test]
fn a_pasid_iotlb_invalidation_completes_only_after_a_walk_begun_before_it_has_ended() {
    let rig = Arc::new(Rig::new());
    rig.map(0x40_0000, 0x80_0000);
    let slot = rig.map(0x40_1000, 0x81_0000);
    // Warm the context and PASID caches on the neighbouring page: the parked walk then reads
    // only its page-table entries. 0x40_1000 itself has never been translated, so neither the
    // IOTLB nor the first-level cache holds it.
    let t = rig.read(0x40_0010).unwrap();
    assert_eq!(t.addr, 0x80_0010);

    let r = race(
        &rig,
        slot,
        |rig| rig.read(0x40_1234),
        |rig| rig.submit_status(&[encode::pasid_iotlb(DID, PASID, Some((0x40_1000, 0)), false)]),
    );
    assert!(
        !r.finished_under_the_walk,
        "the invalidation wait completed while a walk begun before it still read the tables"
    );
    assert!(
        r.purged.walk_had_loaded,
        "the wait completed before the walk had read its entry"
    );
    assert_eq!(
        r.purged.result, WAIT_DATA as u64,
        "the wait wrote its status"
    );
    // The walk saw the entry as it was (nothing changed it).
    let t = r.walked.unwrap();
    assert_eq!((t.addr, t.size, t.did), (0x81_0234, PageSize::Size4K, DID));
    assert_eq!(rig.vtd.stats().waits, 1);
}

#[test]
fn an_iotlb_invalidation_completes_only_after_an_ats_translation_begun_before_it_has_ended() {
    let rig = Arc::new(Rig::new());
    rig.map(0x40_0000, 0x80_0000);
    let slot = rig.map(0x40_1000, 0x81_0000);
    let c = rig.ats_translate(0x40_0000).unwrap().completion;
    assert_eq!(c.addr, 0x80_0000);

    let r = race(
        &rig,
        slot,
        |rig| rig.ats_translate(0x40_1000),
        |rig| rig.submit_status(&[encode::iotlb_global()]),
    );
    assert!(
        !r.finished_under_the_walk,
        "the invalidation wait completed while a translation request begun before it still \
         read the tables"
    );
    assert!(r.purged.walk_had_loaded);
    assert_eq!(r.purged.result, WAIT_DATA as u64);
    let AtsTranslated { completion: c, did } = r.walked.unwrap();
    assert_eq!((c.addr, c.read, did), (0x81_0000, true, DID));
}

#[test]
fn clearing_translation_enable_completes_only_after_a_walk_begun_before_it_has_ended() {
    let rig = Arc::new(Rig::new());
    let slot = rig.map(0x40_1000, 0x81_0000);

    let r = race(
        &rig,
        slot,
        |rig| rig.read(0x40_1000),
        |rig| {
            // TE off, the queue left on; GSTS reads back once the write returned.
            rig.w32(offset::GCMD, Gcmd::QIE.bits());
            rig.vtd.mmio_read(offset::GSTS, 4)
        },
    );
    assert!(
        !r.finished_under_the_walk,
        "the GCMD write that cleared TE returned while a walk begun before it still read the \
         tables"
    );
    assert!(r.purged.walk_had_loaded);
    let gsts = Gcmd::from_bits_truncate(r.purged.result as u32);
    assert!(
        !gsts.contains(Gcmd::TE) && gsts.contains(Gcmd::QIE),
        "{gsts:?}"
    );
    // The walk began with translation on and finishes as it began.
    assert_eq!(r.walked.unwrap().addr, 0x81_0000);
    // Now off: a request with PASID has nothing to be translated through.
    assert!(rig.read(0x40_1000).is_err());
}
