//! Issue 18's fault rules, each against the VT-d specification: which faults FPD suppresses
//! (§7.1.3, the table of non-recoverable fault conditions, "qualified" column), the reason of
//! a second-stage input beyond its width (SGN.5), A/D updates without page-walk snooping and
//! when they cannot complete (SSS.5/6, SFS.9/10), fields reserved without their capability
//! (§9.4, §9.6: SCT.3, SPT.3), RID_PASID outside the directory (SCT.4, SCT.9), FRCD.FI above
//! MGAW (§11.4.14) and the reserved fields of IQT and IQA (§11.4.9).

mod common;

use std::sync::Arc;

use common::*;
use vsva_mem::{Access, MemError, PageSize, PhysMem, PhysMemory};
use vsva_pgtable::vtd_ss::{self, VtdSecondStage};
use vsva_pgtable::x86::X86Paging;
use vsva_pgtable::{PageTable, Perm};
use vsva_vtd::VtdConfig;
use vsva_vtd::spec::fault::FaultReason;
use vsva_vtd::spec::pasid::{PasidEntry, Pgtt};
use vsva_vtd::spec::registers::{Fsts, offset};

const R: Access = Access::READ;
const W: Access = Access::WRITE;
const FS_A: u64 = 1 << 5;
const FS_D: u64 = 1 << 6;

/// A DMA after the tables changed: its reason and whether a fault record was written.
fn outcome(rig: &Rig, dev: vsva_mem::Rid, pasid: Option<u32>, addr: u64, a: Access) -> Outcome {
    rig.flush();
    // Clear the log first, so every outcome says whether this fault was recorded.
    for i in 0..8 {
        rig.w64(offset::FRCD0 + 16 * i + 8, 1 << 63);
    }
    rig.w32(offset::FSTS, Fsts::PFO.bits());
    match rig.dma(dev, pasid, addr, a) {
        Ok(_) => Outcome::Translated,
        Err(b) => {
            let ppf = rig.r32(offset::FSTS) & Fsts::PPF.bits() != 0;
            assert_eq!(b.recorded, ppf, "Blocked::recorded agrees with FSTS.PPF");
            Outcome::Fault(b.reason.unwrap(), b.recorded)
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Translated,
    /// The reason, and whether it was recorded.
    Fault(FaultReason, bool),
}
use Outcome::*;

/// Sets or clears FPD (bit 1) of the qword at `at`.
fn set_fpd(rig: &Rig, at: u64, on: bool) {
    let q = rig.mem.load_u64(at).unwrap();
    rig.mem
        .store_u64(at, if on { q | 2 } else { q & !2 })
        .unwrap();
}

#[test]
fn reserved_bits_of_lookup_structures_are_qualified() {
    // §7.1.3: SCT.3, SPD.3 and SPT.3 are qualified — FPD in the entry itself or in one met
    // before it suppresses the record; the fault still blocks the request.
    let rig = Rig::new(VtdConfig::default());
    let dev = rid(0, 3, 0);
    let dir = rig.attach_device(dev);
    let pe = rig.write_pasid(dir, 0x41, &pasid_entry(Pgtt::PassThrough, 1, 0, 0));
    let ctx = rig.context_slot(dev);
    let de = dir + 8;
    for (at, bit, reason) in [
        (ctx, 5, FaultReason::ContextReserved),
        (de, 2, FaultReason::PasidDirReserved),
        (pe, 10, FaultReason::PasidReserved),
    ] {
        let good = rig.mem.load_u64(at).unwrap();
        rig.mem.store_u64(at, good | 1 << bit).unwrap();
        assert_eq!(outcome(&rig, dev, Some(0x41), 0, R), Fault(reason, true));
        // FPD of the faulting entry itself, and of the context entry above it
        for fpd_at in [at, ctx] {
            set_fpd(&rig, fpd_at, true);
            assert_eq!(
                outcome(&rig, dev, Some(0x41), 0, R),
                Fault(reason, false),
                "{} under FPD at {fpd_at:#x}",
                reason.mnemonic()
            );
            set_fpd(&rig, fpd_at, false);
        }
        rig.mem.store_u64(at, good).unwrap();
    }
    assert_eq!(outcome(&rig, dev, Some(0x41), 0, R), Translated);
}

#[test]
fn access_errors_of_pasid_structures_are_unqualified() {
    // §7.1.3: SPD.1 and SPT.1 record even under FPD.
    let rig = Rig::new(VtdConfig::default());
    let dev = rid(0, 3, 0);
    let dir = rig.attach_device(dev);
    rig.write_pasid(dir, 0x41, &pasid_entry(Pgtt::PassThrough, 1, 0, 0));
    set_fpd(&rig, rig.context_slot(dev), true);
    rig.mem.store_u64(dir + 8, (1 << 40) | 1).unwrap();
    assert_eq!(
        outcome(&rig, dev, Some(0x41), 0, R),
        Fault(FaultReason::PasidAccess, true)
    );
    let ctx = rig.context_slot(dev);
    let lo = rig.mem.load_u64(ctx).unwrap();
    rig.mem
        .store_u64(ctx, (lo & 0xfff) | ((1 << 40) - (1 << 21)))
        .unwrap();
    assert_eq!(
        outcome(&rig, dev, Some(0x41), 0, R),
        Fault(FaultReason::PasidDirAccess, true)
    );
}

/// A device with PASID 1 first stage and PASID 2 second stage mapping 0x1000 -> 0x5000.
fn walk_rig() -> (
    Rig,
    vsva_mem::Rid,
    u64,
    PageTable<X86Paging>,
    PageTable<VtdSecondStage>,
) {
    let rig = Rig::new(VtdConfig::default());
    let dev = rid(0, 3, 0);
    let dir = rig.attach_device(dev);
    let fs = PageTable::new(X86Paging::default(), rig.frames.clone()).unwrap();
    fs.map(0x1000, 0x5000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    let ss = PageTable::new(VtdSecondStage::four_level(), rig.frames.clone()).unwrap();
    ss.map(0x1000, 0x5000, PageSize::Size4K, Perm::RW).unwrap();
    rig.write_pasid(dir, 1, &pasid_entry(Pgtt::FirstStage, 1, 0, fs.root()));
    rig.write_pasid(dir, 2, &pasid_entry(Pgtt::SecondStage, 2, ss.root(), 0));
    (rig, dev, dir, fs, ss)
}

#[test]
fn first_and_second_stage_walk_faults_are_qualified() {
    // §7.1.3: SFS.1, SFS.3, SFS.4, SSS.1, SSS.3 and SSS.4 are qualified: FPD in the PASID
    // entry suppresses their record.
    let (rig, dev, dir, fs, ss) = walk_rig();
    let fs_leaf = fs.lookup(0x1000).unwrap();
    let ss_leaf = ss.lookup(0x1000).unwrap();
    let fs_top = rig.mem.load_u64(fs.root()).unwrap();
    let ss_top = rig.mem.load_u64(ss.root()).unwrap();
    type Break<'a> = (u32, Box<dyn Fn(bool) + 'a>, FaultReason);
    let cases: [Break; 6] = [
        (
            1,
            Box::new(|on| {
                let e = fs_leaf.entry | if on { 1 << 50 } else { 0 };
                rig.mem.store_u64(fs_leaf.slot, e).unwrap();
            }),
            FaultReason::FsReserved,
        ),
        (
            1,
            Box::new(|on| {
                let e = if on { (1 << 40) | 7 } else { fs_top };
                rig.mem.store_u64(fs.root(), e).unwrap();
            }),
            FaultReason::FsAccess,
        ),
        (
            1,
            Box::new(|on| {
                let root = if on { 1 << 40 } else { fs.root() };
                let mut e = pasid_entry(Pgtt::FirstStage, 1, 0, root);
                e.q0.set_fpd(rig.mem.load_u64(rig.pasid_slot(dir, 1)).unwrap() & 2 != 0);
                rig.write_pasid(dir, 1, &e);
            }),
            FaultReason::FsRootAccess,
        ),
        (
            2,
            Box::new(|on| {
                let e = ss_leaf.entry | if on { 1 << 62 } else { 0 };
                rig.mem.store_u64(ss_leaf.slot, e).unwrap();
            }),
            FaultReason::SsReserved,
        ),
        (
            2,
            Box::new(|on| {
                let e = if on { (1 << 40) | 3 } else { ss_top };
                rig.mem.store_u64(ss.root(), e).unwrap();
            }),
            FaultReason::SsAccess,
        ),
        (
            2,
            Box::new(|on| {
                let root = if on { 1 << 40 } else { ss.root() };
                let mut e = pasid_entry(Pgtt::SecondStage, 2, root, 0);
                e.q0.set_fpd(rig.mem.load_u64(rig.pasid_slot(dir, 2)).unwrap() & 2 != 0);
                rig.write_pasid(dir, 2, &e);
            }),
            FaultReason::SsRootInvalid,
        ),
    ];
    for (pasid, set, reason) in &cases {
        set(true);
        assert_eq!(
            outcome(&rig, dev, Some(*pasid), 0x1000, R),
            Fault(*reason, true)
        );
        let pe = rig.pasid_slot(dir, *pasid);
        set_fpd(&rig, pe, true);
        assert_eq!(
            outcome(&rig, dev, Some(*pasid), 0x1000, R),
            Fault(*reason, false),
            "{} is qualified",
            reason.mnemonic()
        );
        set_fpd(&rig, pe, false);
        set(false);
        assert_eq!(outcome(&rig, dev, Some(*pasid), 0x1000, R), Translated);
    }
}

#[test]
fn a_second_stage_input_beyond_min_mgaw_agaw_is_sgn5() {
    // §7.1.3 SGN.5 (0x84): beyond the AGAW of the entry's AW, and beyond a smaller MGAW.
    let rig = Rig::new(VtdConfig {
        mgaw: 45,
        ..VtdConfig::default()
    });
    let dev = rid(0, 3, 0);
    let dir = rig.attach_device(dev);
    let ss = PageTable::new(VtdSecondStage::four_level(), rig.frames.clone()).unwrap();
    let mut three = pasid_entry(Pgtt::SecondStage, 2, ss.root(), 0);
    three.q0.set_aw(1);
    rig.write_pasid(dir, 1, &three);
    rig.write_pasid(dir, 2, &pasid_entry(Pgtt::SecondStage, 2, ss.root(), 0));
    for (pasid, addr) in [(1, 1u64 << 39), (2, 1 << 45), (2, u64::MAX)] {
        assert_eq!(
            outcome(&rig, dev, Some(pasid), addr, R),
            Fault(FaultReason::SsInputBeyondWidth, true),
            "PASID {pasid} at {addr:#x}"
        );
    }
    // below both widths the walk runs (and finds nothing mapped)
    assert_eq!(
        outcome(&rig, dev, Some(2), (1 << 45) - 4096, R),
        Fault(FaultReason::SsNotPresent, true)
    );
    // pass-through checks HAW instead: SGN.4 (0x83)
    rig.write_pasid(dir, 3, &pasid_entry(Pgtt::PassThrough, 2, 0, 0));
    assert_eq!(
        outcome(&rig, dev, Some(3), 1 << 46, R),
        Fault(FaultReason::PassThroughBeyondHaw, true)
    );
}

/// The second-stage entries translating 0x1000, root first.
fn ss_path(rig: &Rig, ss: &PageTable<VtdSecondStage>) -> Vec<u64> {
    let mut table = ss.root();
    let mut slots = vec![];
    for level in (1..=4u32).rev() {
        let slot = table + ((0x1000u64 >> (12 + 9 * (level - 1))) & 511) * 8;
        slots.push(slot);
        table = rig.mem.load_u64(slot).unwrap() & 0x000f_ffff_ffff_f000;
    }
    slots
}

#[test]
fn a_second_stage_a_d_update_without_page_walk_snoop_is_sss5() {
    // §7.1.3 SSS.5 (0x7c): SSADE = 1, PWSNP = 0 and the walk needs to set A or D. Nothing is
    // written; entries that already hold the flags translate; the fault is qualified.
    let (rig, dev, dir, _fs, ss) = walk_rig();
    let mut e = pasid_entry(Pgtt::SecondStage, 2, ss.root(), 0);
    e.q0.set_ssade(true);
    e.q1.set_pwsnp(false);
    let pe = rig.write_pasid(dir, 2, &e);
    let path = ss_path(&rig, &ss);
    let before: Vec<u64> = path.iter().map(|&s| rig.mem.load_u64(s).unwrap()).collect();
    let sss5 = Fault(FaultReason::SsAdNonSnooped, true);
    assert_eq!(outcome(&rig, dev, Some(2), 0x1000, R), sss5);
    let after: Vec<u64> = path.iter().map(|&s| rig.mem.load_u64(s).unwrap()).collect();
    assert_eq!(after, before, "no A/D written without snooping");
    set_fpd(&rig, pe, true);
    assert_eq!(
        outcome(&rig, dev, Some(2), 0x1000, R),
        Fault(FaultReason::SsAdNonSnooped, false)
    );
    set_fpd(&rig, pe, false);
    // with A everywhere a read needs no update; a write still needs D in the leaf
    for &s in &path {
        let q = rig.mem.load_u64(s).unwrap();
        rig.mem.store_u64(s, q | vtd_ss::A).unwrap();
    }
    assert_eq!(outcome(&rig, dev, Some(2), 0x1000, R), Translated);
    assert_eq!(outcome(&rig, dev, Some(2), 0x1000, W), sss5);
    let leaf = path[3];
    let q = rig.mem.load_u64(leaf).unwrap();
    rig.mem.store_u64(leaf, q | vtd_ss::D).unwrap();
    assert_eq!(outcome(&rig, dev, Some(2), 0x1000, W), Translated);
    // SSADE = 0: no update is ever needed
    for (&s, &b) in path.iter().zip(&before) {
        rig.mem.store_u64(s, b).unwrap();
    }
    e.q0.set_ssade(false);
    rig.write_pasid(dir, 2, &e);
    assert_eq!(outcome(&rig, dev, Some(2), 0x1000, W), Translated);
    // snooped walks set the flags
    e.q0.set_ssade(true);
    e.q1.set_pwsnp(true);
    rig.write_pasid(dir, 2, &e);
    assert_eq!(outcome(&rig, dev, Some(2), 0x1000, W), Translated);
    assert_ne!(rig.mem.load_u64(leaf).unwrap() & vtd_ss::D, 0);
}

#[test]
fn a_first_stage_a_d_update_without_page_walk_snoop_is_sfs9() {
    // §7.1.3 SFS.9 (0x90): first-stage A/D are always hardware-managed; with PWSNP = 0 a walk
    // that must set them faults instead.
    let (rig, dev, dir, fs, _ss) = walk_rig();
    let mut e = pasid_entry(Pgtt::FirstStage, 1, 0, fs.root());
    e.q1.set_pwsnp(false);
    let pe = rig.write_pasid(dir, 1, &e);
    let leaf = fs.lookup(0x1000).unwrap();
    assert_eq!(
        outcome(&rig, dev, Some(1), 0x1000, R),
        Fault(FaultReason::FsAdNonSnooped, true)
    );
    assert_eq!(rig.mem.load_u64(leaf.slot).unwrap(), leaf.entry);
    set_fpd(&rig, pe, true);
    assert_eq!(
        outcome(&rig, dev, Some(1), 0x1000, R),
        Fault(FaultReason::FsAdNonSnooped, false)
    );
    set_fpd(&rig, pe, false);
    e.q1.set_pwsnp(true);
    rig.write_pasid(dir, 1, &e);
    assert_eq!(outcome(&rig, dev, Some(1), 0x1000, W), Translated);
    assert_eq!(
        rig.mem.load_u64(leaf.slot).unwrap() & (FS_A | FS_D),
        FS_A | FS_D
    );
}

#[test]
fn nested_walks_without_page_walk_snoop_fault_at_the_first_update_needed() {
    // §7.1.3: in a nested walk the second stage is walked first, for each first-stage
    // table: with SSADE its A flags are needed before any first-stage one (SSS.5); without
    // SSADE the first-stage A/D are (SFS.9). PWSNP = 1 sets them all.
    use vsva_mem::{FrameAllocator, PhysWindow};
    let rig = Rig::new(VtdConfig::default());
    let ram_hpa = 768 * MIB;
    let ram: Arc<dyn PhysMem> =
        Arc::new(PhysWindow::new(rig.mem.clone(), ram_hpa, 64 * MIB).unwrap());
    let ss = PageTable::new(VtdSecondStage::four_level(), rig.frames.clone()).unwrap();
    for gpa in (0..64 * MIB).step_by(2 << 20) {
        ss.map(gpa, ram_hpa + gpa, PageSize::Size2M, Perm::RW)
            .unwrap();
    }
    let s1 = PageTable::new(
        X86Paging::default(),
        Arc::new(FrameAllocator::new(ram, 8 * MIB, 64 * MIB)),
    )
    .unwrap();
    s1.map(0x7000_0000, 0x10_0000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    let dev = rid(2, 0, 0);
    let dir = rig.attach_device(dev);
    let mut e = pasid_entry(Pgtt::Nested, 3, ss.root(), s1.root());
    e.q1.set_pwsnp(false);
    for (ssade, reason) in [
        (true, FaultReason::SsAdNonSnooped),
        (false, FaultReason::FsAdNonSnooped),
    ] {
        e.q0.set_ssade(ssade);
        rig.write_pasid(dir, 5, &e);
        assert_eq!(
            outcome(&rig, dev, Some(5), 0x7000_0010, R),
            Fault(reason, true),
            "SSADE {ssade}"
        );
    }
    assert_eq!(s1.lookup(0x7000_0000).unwrap().entry & (FS_A | FS_D), 0);
    e.q0.set_ssade(true);
    e.q1.set_pwsnp(true);
    rig.write_pasid(dir, 5, &e);
    assert_eq!(outcome(&rig, dev, Some(5), 0x7000_0010, W), Translated);
    assert_eq!(
        s1.lookup(0x7000_0000).unwrap().entry & (FS_A | FS_D),
        FS_A | FS_D
    );
}

/// Memory whose atomic updates never complete: each swap fails (`lose`: as if another agent
/// always wrote first, leaving the same value; otherwise as memory refusing the write).
struct NoUpdates {
    mem: Arc<PhysMemory>,
    lose: bool,
}

impl PhysMem for NoUpdates {
    fn size(&self) -> u64 {
        self.mem.size()
    }
    fn load_u64(&self, pa: u64) -> Result<u64, MemError> {
        self.mem.load_u64(pa)
    }
    fn store_u64(&self, pa: u64, val: u64) -> Result<(), MemError> {
        self.mem.store_u64(pa, val)
    }
    fn compare_exchange_u64(
        &self,
        pa: u64,
        current: u64,
        _new: u64,
    ) -> Result<Result<u64, u64>, MemError> {
        if self.lose {
            Ok(Err(current))
        } else {
            Err(MemError::OutOfRange { addr: pa, len: 8 })
        }
    }
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        self.mem.read(pa, buf)
    }
    fn write(&self, pa: u64, buf: &[u8]) -> Result<(), MemError> {
        self.mem.write(pa, buf)
    }
    fn zero(&self, pa: u64, len: u64) -> Result<(), MemError> {
        self.mem.zero(pa, len)
    }
}

#[test]
fn an_a_d_update_that_cannot_complete_is_sss6_or_sfs10() {
    // §7.1.3 SSS.6 (0x7d) and SFS.10 (0x91), not the access errors SSS.1/SFS.1: the entries
    // were read, only their update failed.
    for lose in [false, true] {
        let mem = Arc::new(PhysMemory::new(1 << 30).unwrap());
        let unit_mem = Arc::new(NoUpdates {
            mem: mem.clone(),
            lose,
        });
        let rig = Rig::over(VtdConfig::default(), mem, unit_mem);
        let dev = rid(0, 3, 0);
        let dir = rig.attach_device(dev);
        let fs = PageTable::new(X86Paging::default(), rig.frames.clone()).unwrap();
        fs.map(0x1000, 0x5000, PageSize::Size4K, Perm::USER_RW)
            .unwrap();
        let ss = PageTable::new(VtdSecondStage::four_level(), rig.frames.clone()).unwrap();
        ss.map(0x1000, 0x5000, PageSize::Size4K, Perm::RW).unwrap();
        rig.write_pasid(dir, 1, &pasid_entry(Pgtt::FirstStage, 1, 0, fs.root()));
        let mut e = pasid_entry(Pgtt::SecondStage, 2, ss.root(), 0);
        e.q0.set_ssade(true);
        rig.write_pasid(dir, 2, &e);
        assert_eq!(
            outcome(&rig, dev, Some(1), 0x1000, R),
            Fault(FaultReason::FsAdUpdateFailed, true),
            "lose {lose}"
        );
        assert_eq!(
            outcome(&rig, dev, Some(2), 0x1000, R),
            Fault(FaultReason::SsAdUpdateFailed, true),
            "lose {lose}"
        );
        // without SSADE the second stage needs no update
        e.q0.set_ssade(false);
        rig.write_pasid(dir, 2, &e);
        assert_eq!(outcome(&rig, dev, Some(2), 0x1000, R), Translated);
    }
}

#[test]
fn fields_of_absent_capabilities_are_reserved() {
    // §9.4 / §9.6: with the capability the field works; without it a set field is SCT.3 or
    // SPT.3, whatever the PGTT.
    type Tweak = fn(&mut PasidEntry);
    type Cut = fn(&mut VtdConfig);
    let pt = |e: &mut PasidEntry| {
        *e = pasid_entry(Pgtt::PassThrough, 1, 0, 0);
        e.q0.set_aw(0);
        e.q2.set_sre(false);
        e.q2.set_fsptptr(0);
    };
    let cases: [(&str, Cut, Tweak); 7] = [
        (
            "SSADE without SSADS",
            |c| c.ss_ad = false,
            |e| e.q0.set_ssade(true),
        ),
        (
            "SSADE without SSTS",
            |c| c.second_stage = false,
            |e| e.q0.set_ssade(true),
        ),
        (
            "AW without SSTS",
            |c| c.second_stage = false,
            |e| e.q0.set_aw(2),
        ),
        (
            "SSPTPTR without SSTS",
            |c| c.second_stage = false,
            |e| e.q0.set_ssptptr(0x123),
        ),
        (
            "FSPTPTR without FSTS",
            |c| c.first_stage = false,
            |e| e.q2.set_fsptptr(0x123),
        ),
        (
            "EAFE without EAFS",
            |c| c.eafs = false,
            |e| e.q2.set_eafe(true),
        ),
        (
            "SRE without SRS",
            |c| c.supervisor_requests = false,
            |e| e.q2.set_sre(true),
        ),
    ];
    for (what, cut, tweak) in cases {
        for present in [true, false] {
            let mut cfg = VtdConfig::default();
            if !present {
                cut(&mut cfg);
            }
            let rig = Rig::new(cfg);
            let dev = rid(0, 3, 0);
            let dir = rig.attach_device(dev);
            let mut e = PasidEntry::default();
            pt(&mut e);
            tweak(&mut e);
            rig.write_pasid(dir, 1, &e);
            let got = outcome(&rig, dev, Some(1), 0x1000, R);
            if present {
                assert_eq!(got, Translated, "{what}: capability present");
            } else {
                assert_eq!(got, Fault(FaultReason::PasidReserved, true), "{what}");
            }
        }
    }
    // RID_PASID without ECAP.RPS (§9.4): SCT.3
    for rps in [true, false] {
        let rig = Rig::new(VtdConfig {
            rid_pasid: rps,
            ..VtdConfig::default()
        });
        let dev = rid(0, 3, 0);
        let dir = rig.attach_device(dev);
        rig.write_pasid(dir, 5, &pasid_entry(Pgtt::PassThrough, 1, 0, 0));
        rig.mem.store_u64(rig.context_slot(dev) + 8, 5).unwrap();
        let want = if rps {
            Translated
        } else {
            Fault(FaultReason::ContextReserved, true)
        };
        assert_eq!(outcome(&rig, dev, None, 0x1000, R), want, "RPS {rps}");
    }
}

#[test]
fn a_rid_pasid_outside_the_directory_is_sct4_and_beyond_the_width_sct9() {
    // §7.1.3: a RID_PASID the entry's own PASID directory (PDTS) cannot hold makes the
    // context entry invalid (SCT.4); one beyond the unit's PASIDs (ECAP.PSS) is a RID_PASID
    // field error (SCT.9). Both are qualified.
    let rig = Rig::new(VtdConfig {
        pasid_bits: 16,
        ..VtdConfig::default()
    });
    let dev = rid(0, 3, 0);
    rig.attach_device(dev);
    let ctx = rig.context_slot(dev);
    let lo = rig.mem.load_u64(ctx).unwrap();
    // PDTS 0: 128 directory entries, PASIDs below 8192
    rig.mem.store_u64(ctx, lo & !(7 << 9)).unwrap();
    for (rid_pasid, reason) in [
        (8192, FaultReason::ContextInvalid),
        (0xffff, FaultReason::ContextInvalid),
        (0x1_0000, FaultReason::ContextRidPasid),
    ] {
        rig.mem.store_u64(ctx + 8, rid_pasid).unwrap();
        assert_eq!(
            outcome(&rig, dev, None, 0x1000, R),
            Fault(reason, true),
            "{rid_pasid:#x}"
        );
        set_fpd(&rig, ctx, true);
        assert_eq!(outcome(&rig, dev, None, 0x1000, R), Fault(reason, false));
        set_fpd(&rig, ctx, false);
    }
}

#[test]
fn fault_info_keeps_no_bits_at_or_above_mgaw() {
    // §11.4.14: FI is bits 63:12 of the faulting address, bits 63:MGAW reserved (0).
    let rig = Rig::new(VtdConfig {
        mgaw: 48,
        ..VtdConfig::default()
    });
    let dev = rid(0, 3, 0);
    let dir = rig.attach_device(dev);
    rig.write_pasid(dir, 1, &pasid_entry(Pgtt::PassThrough, 1, 0, 0));
    let addr = 0xfff0_1234_5678_9abc;
    assert_eq!(
        outcome(&rig, dev, Some(1), addr, R),
        Fault(FaultReason::PassThroughBeyondHaw, true)
    );
    let fi: Vec<u64> = (0..8)
        .filter(|i| rig.r64(offset::FRCD0 + 16 * i + 8) >> 63 != 0)
        .map(|i| rig.r64(offset::FRCD0 + 16 * i))
        .collect();
    assert_eq!(fi, [0x1234_5678_9000]);
}

#[test]
fn reserved_fields_of_iqt_and_iqa_are_masked_not_errors() {
    // §11.4.9.2 IQT: bits 63:19 and 3:0 reserved; §11.4.9.3 IQA: bits 10:3 reserved, base
    // bits 63:HAW not implemented. Register reserved fields are RsvdZ: writes ignore them and
    // raise no IQE (IQE is for the queue's use: a tail beyond it, a misaligned 256-bit tail).
    let rig = Rig::new(VtdConfig::default());
    rig.flush();
    let tail = rig.r64(offset::IQT);
    rig.w64(offset::IQT, tail | 0xffff_ffff_fff8_000f);
    assert_eq!(rig.r64(offset::IQT), tail);
    assert_eq!(rig.r32(offset::FSTS) & Fsts::IQE.bits(), 0);
    let iqa = rig.r64(offset::IQA);
    rig.w64(offset::IQA, iqa | 0x7f8 | 1 << 46 | 1 << 63);
    assert_eq!(rig.r64(offset::IQA), iqa);
    // the queue still runs
    rig.flush();
    assert_eq!(rig.r32(offset::FSTS) & Fsts::IQE.bits(), 0);
    // a tail beyond the queue (one page here) is the error
    rig.w64(offset::IQT, 4096);
    assert_ne!(rig.r32(offset::FSTS) & Fsts::IQE.bits(), 0);
}
