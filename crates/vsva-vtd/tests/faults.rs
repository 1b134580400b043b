//! Every lookup fault, every reserved bit of root, context and PASID-directory/table entries
//! one at a time, and the fault log as software sees it through the registers.

mod common;

use common::*;
use vsva_mem::{Access, PhysMem};
use vsva_vtd::VtdConfig;
use vsva_vtd::spec::fault::FaultReason;
use vsva_vtd::spec::pasid::Pgtt;
use vsva_vtd::spec::registers::{Fsts, offset};

const R: Access = Access::READ;

/// A device 00:03.0 with PASID 0 in pass-through and PASID 0x41 in pass-through (so that
/// directory index 1 is populated).
fn rig() -> (Rig, vsva_mem::Rid, u64) {
    let rig = Rig::new(VtdConfig::default());
    let dev = rid(0, 3, 0);
    let dir = rig.attach_device(dev);
    rig.write_pasid(dir, 0, &pasid_entry(Pgtt::PassThrough, 1, 0, 0));
    rig.write_pasid(dir, 0x41, &pasid_entry(Pgtt::PassThrough, 1, 0, 0));
    (rig, dev, dir)
}

/// The fault a DMA gets after the tables were changed (and, as software must, the caches
/// invalidated).
fn reason(rig: &Rig, dev: vsva_mem::Rid, pasid: Option<u32>) -> Option<FaultReason> {
    rig.flush();
    rig.dma(dev, pasid, 0x1000, R).err().and_then(|b| b.reason)
}

#[test]
fn root_entry_faults() {
    let (rig, dev, _) = rig();
    assert!(rig.dma(dev, None, 0x1000, R).is_ok());
    // other half of the same root entry (devfn >= 128) is not present
    assert_eq!(
        reason(&rig, rid(0, 16, 0), None),
        Some(FaultReason::RootNotPresent)
    );
    // another bus
    assert_eq!(
        reason(&rig, rid(9, 0, 0), None),
        Some(FaultReason::RootNotPresent)
    );
    // every reserved bit of the lower half: 11:1 and 63:46 (HAW 46)
    let at = rig.root;
    let good = rig.mem.load_u64(at).unwrap();
    for bit in (1..12).chain(46..64) {
        rig.mem.store_u64(at, good | 1 << bit).unwrap();
        assert_eq!(
            reason(&rig, dev, None),
            Some(FaultReason::RootReserved),
            "bit {bit}"
        );
    }
    rig.mem.store_u64(at, good).unwrap();
    // a root table outside memory
    rig.w64(offset::RTADDR, (1 << 40) | 1 << 10);
    rig.w32(offset::GCMD, (1 << 31) | (1 << 30) | (1 << 26));
    assert_eq!(reason(&rig, dev, None), Some(FaultReason::RootAccess));
    // legacy mode is not modelled; with a PASID it is RTA.2
    rig.w64(offset::RTADDR, rig.root);
    rig.w32(offset::GCMD, (1 << 31) | (1 << 30) | (1 << 26));
    assert_eq!(reason(&rig, dev, None), Some(FaultReason::RootTableAddress));
    assert_eq!(
        reason(&rig, dev, Some(1)),
        Some(FaultReason::LegacyModeWithPasid)
    );
}

#[test]
fn context_entry_faults_and_every_reserved_bit() {
    let (rig, dev, _) = rig();
    let at = rig.context_slot(dev);
    let good: Vec<u64> = (0..4)
        .map(|i| rig.mem.load_u64(at + 8 * i).unwrap())
        .collect();
    let restore = || {
        for (i, q) in good.iter().enumerate() {
            rig.mem.store_u64(at + 8 * i as u64, *q).unwrap();
        }
    };
    // reserved: 8:5, 63:46 (HAW), 127:85, 255:128; and RID_PRIV (84) without RPRIVS
    let reserved = |b: u32| (5..=8).contains(&b) || (46..64).contains(&b) || b == 84 || b >= 85;
    for bit in 0..256u32 {
        let word = at + 8 * (bit / 64) as u64;
        rig.mem
            .store_u64(word, good[(bit / 64) as usize] ^ 1 << (bit % 64))
            .unwrap();
        let r = reason(&rig, dev, None);
        if reserved(bit) {
            assert_eq!(r, Some(FaultReason::ContextReserved), "bit {bit}");
        } else {
            assert_ne!(
                r,
                Some(FaultReason::ContextReserved),
                "bit {bit} is a field"
            );
        }
        restore();
    }
    // not present
    rig.mem.store_u64(at, good[0] & !1).unwrap();
    assert_eq!(
        reason(&rig, dev, None),
        Some(FaultReason::ContextNotPresent)
    );
    restore();
    // PASIDE clear: requests with PASID refused, without PASID fine
    rig.mem.store_u64(at, good[0] & !(1 << 3)).unwrap();
    assert_eq!(
        reason(&rig, dev, Some(1)),
        Some(FaultReason::ContextPasidDisabled)
    );
    assert_eq!(reason(&rig, dev, None), None);
    restore();
    // PDTS = 0: 128 directory entries -> PASIDs below 8192
    rig.mem.store_u64(at, good[0] & !(7 << 9)).unwrap();
    assert_eq!(
        reason(&rig, dev, Some(8192)),
        Some(FaultReason::ContextPasidTooLarge)
    );
    assert_eq!(reason(&rig, dev, Some(0x41)), None);
    // RID_PASID beyond the directory PDTS sizes: the entry is invalid, SCT.4 (§7.1.3; SCT.9 is
    // a RID_PASID beyond the unit's PASID width, tests/fault_rules.rs)
    rig.mem.store_u64(at + 8, 0x10000).unwrap();
    assert_eq!(reason(&rig, dev, None), Some(FaultReason::ContextInvalid));
    restore();
    // a context table outside memory
    let half = rig.root;
    let good_half = rig.mem.load_u64(half).unwrap();
    rig.mem.store_u64(half, (1 << 40) | 1).unwrap();
    assert_eq!(reason(&rig, dev, None), Some(FaultReason::ContextAccess));
    rig.mem.store_u64(half, good_half).unwrap();
}

#[test]
fn pasid_directory_and_table_faults_and_every_reserved_bit() {
    let (rig, dev, dir) = rig();
    // directory entry 1 (PASIDs 0x40..0x7f): reserved 11:2 and 63:46
    let de = dir + 8;
    let good = rig.mem.load_u64(de).unwrap();
    for bit in (2..12).chain(46..64) {
        rig.mem.store_u64(de, good | 1 << bit).unwrap();
        assert_eq!(
            reason(&rig, dev, Some(0x41)),
            Some(FaultReason::PasidDirReserved),
            "bit {bit}"
        );
    }
    rig.mem.store_u64(de, good & !1).unwrap();
    assert_eq!(
        reason(&rig, dev, Some(0x41)),
        Some(FaultReason::PasidDirNotPresent)
    );
    // FPD in a not-present directory entry suppresses the (qualified) fault's record
    rig.mem.store_u64(de, (good & !1) | 2).unwrap();
    rig.flush();
    let b = rig.dma(dev, Some(0x41), 0x1000, R).unwrap_err();
    assert_eq!(
        (b.reason, b.recorded),
        (Some(FaultReason::PasidDirNotPresent), false)
    );
    rig.mem.store_u64(de, (1 << 40) | 1).unwrap();
    assert_eq!(
        reason(&rig, dev, Some(0x41)),
        Some(FaultReason::PasidAccess)
    );
    rig.mem.store_u64(de, good).unwrap();

    // PASID-table entry for 0x41: every one of its 512 bits
    let pe = rig.pasid_slot(dir, 0x41);
    let words: Vec<u64> = (0..8)
        .map(|i| rig.mem.load_u64(pe + 8 * i).unwrap())
        .collect();
    let reserved = |b: u32| {
        let (w, k) = (b / 64, b % 64);
        match w {
            0 => k == 5 || k == 10 || k == 11 || k >= 46,
            1 => (16..=22).contains(&k) || k >= 25,
            2 => k == 1 || (8..=11).contains(&k) || k >= 46,
            _ => true,
        }
    };
    for bit in 0..512u32 {
        let at = pe + 8 * (bit / 64) as u64;
        rig.mem
            .store_u64(at, words[(bit / 64) as usize] ^ 1 << (bit % 64))
            .unwrap();
        let r = reason(&rig, dev, Some(0x41));
        if reserved(bit) {
            assert_eq!(r, Some(FaultReason::PasidReserved), "bit {bit}");
        } else {
            assert_ne!(r, Some(FaultReason::PasidReserved), "bit {bit} is a field");
        }
        rig.mem.store_u64(at, words[(bit / 64) as usize]).unwrap();
    }
    // not present; invalid PGTT encodings
    rig.mem.store_u64(pe, words[0] & !1).unwrap();
    assert_eq!(
        reason(&rig, dev, Some(0x41)),
        Some(FaultReason::PasidNotPresent)
    );
    for pgtt in [0u64, 5, 6, 7] {
        rig.mem
            .store_u64(pe, (words[0] & !(7 << 6)) | pgtt << 6)
            .unwrap();
        assert_eq!(
            reason(&rig, dev, Some(0x41)),
            Some(FaultReason::PasidInvalid),
            "PGTT {pgtt}"
        );
    }
    // second stage with an AW the unit does not support (AW = 0: 2 levels)
    rig.mem
        .store_u64(pe, (words[0] & !(7 << 6) & !(7 << 2)) | 2 << 6)
        .unwrap();
    assert_eq!(
        reason(&rig, dev, Some(0x41)),
        Some(FaultReason::PasidInvalid)
    );
    rig.mem.store_u64(pe, words[0]).unwrap();
    // first stage with reserved FSPM
    rig.mem
        .store_u64(pe, (words[0] & !(7 << 6)) | 1 << 6)
        .unwrap();
    rig.mem.store_u64(pe + 16, words[2] | 2 << 2).unwrap();
    assert_eq!(
        reason(&rig, dev, Some(0x41)),
        Some(FaultReason::PasidInvalid)
    );
}

#[test]
fn unsupported_translation_types_are_invalid_entries() {
    let cfg = VtdConfig {
        nested: false,
        fs_5level: false,
        ..VtdConfig::default()
    };
    let rig = Rig::new(cfg);
    let dev = rid(0, 3, 0);
    let dir = rig.attach_device(dev);
    rig.write_pasid(dir, 2, &pasid_entry(Pgtt::Nested, 1, 0x1000, 0x2000));
    assert_eq!(reason(&rig, dev, Some(2)), Some(FaultReason::PasidInvalid));
    let mut e = pasid_entry(Pgtt::FirstStage, 1, 0, 0x2000);
    e.q2.set_fspm(1);
    rig.write_pasid(dir, 3, &e);
    assert_eq!(reason(&rig, dev, Some(3)), Some(FaultReason::PasidInvalid));
}

#[test]
fn fault_records_are_readable_through_the_registers() {
    let (rig, dev, _) = rig();
    rig.msi.take();
    let b = rig
        .dma(dev, Some(0x1234), 0xabc_d123, Access::READ | Access::WRITE)
        .unwrap_err();
    assert!(b.recorded);
    // PASID 0x1234 has no directory entry: SPD.2
    let fsts = rig.r32(offset::FSTS);
    assert_eq!(fsts & Fsts::PPF.bits(), Fsts::PPF.bits());
    let fri = (fsts >> 8) & 0xff;
    let rec = offset::FRCD0 + 16 * fri as u64;
    assert_eq!(rig.r64(rec), 0xabc_d000);
    let hi = rig.r64(rec + 8);
    assert_eq!(hi >> 63, 1, "F");
    assert_eq!((hi >> 32) & 0xff, 0x51, "FR");
    assert_eq!(hi & 0xffff, dev.raw() as u64, "SID");
    assert_eq!((hi >> 31) & 1, 1, "PP");
    assert_eq!((hi >> 40) & 0xfffff, 0x1234, "PV");
    assert_eq!((hi >> 62) & 1, 0, "T1 = 0: a write");
    // the fault event went to FEADDR with FEDATA
    assert_eq!(rig.msi.take(), vec![(FEADDR as u64, FEDATA)]);
    // software clears F with a 32-bit write of bit 31 at +12, then PPF is gone
    rig.w32(rec + 12, 1 << 31);
    assert_eq!(rig.r32(offset::FSTS) & Fsts::PPF.bits(), 0);
    assert_eq!(rig.r64(rec + 8) >> 63, 0);
}

#[test]
fn same_requester_faults_collapse_and_a_full_log_overflows() {
    let cfg = VtdConfig {
        fault_records: 2,
        ..VtdConfig::default()
    };
    let rig = Rig::new(cfg);
    rig.msi.take();
    let a = rid(3, 0, 0);
    // three requesters with no root entry: each faults
    assert!(rig.dma(a, None, 0x1000, R).unwrap_err().recorded);
    assert!(
        !rig.dma(a, None, 0x2000, R).unwrap_err().recorded,
        "collapsed"
    );
    assert!(rig.dma(rid(4, 0, 0), None, 0x1000, R).unwrap_err().recorded);
    assert!(!rig.dma(rid(5, 0, 0), None, 0x1000, R).unwrap_err().recorded);
    let fsts = rig.r32(offset::FSTS);
    assert_eq!(
        fsts & (Fsts::PFO | Fsts::PPF).bits(),
        (Fsts::PFO | Fsts::PPF).bits()
    );
    // one interrupt: later faults found a fault already pending
    assert_eq!(rig.msi.take().len(), 1);
    // while PFO is set, nothing is recorded even with free records
    rig.w32(offset::FRCD0 + 12, 1 << 31);
    assert!(!rig.dma(rid(6, 0, 0), None, 0x1000, R).unwrap_err().recorded);
    // software clears everything: recording and interrupts resume
    rig.w32(offset::FRCD0 + 16 + 12, 1 << 31);
    rig.w32(offset::FSTS, Fsts::PFO.bits());
    assert_eq!(rig.r32(offset::FSTS), 0);
    assert!(rig.dma(rid(7, 0, 0), None, 0x1000, R).unwrap_err().recorded);
    assert_eq!(rig.msi.take().len(), 1);
}

#[test]
fn a_masked_fault_event_is_held_until_unmasked() {
    let (rig, dev, _) = rig();
    rig.w32(offset::FECTL, 1 << 31);
    rig.msi.take();
    assert!(rig.dma(dev, Some(0x999), 0, R).is_err());
    assert_eq!(rig.r32(offset::FECTL), 1 << 31 | 1 << 30, "IM and IP");
    assert!(rig.msi.take().is_empty());
    rig.w32(offset::FECTL, 0);
    assert_eq!(rig.msi.take(), vec![(FEADDR as u64, FEDATA)]);
    assert_eq!(rig.r32(offset::FECTL), 0);
}

#[test]
fn registers_read_as_the_spec_lays_them_out() {
    let rig = Rig::new(VtdConfig::default());
    assert_eq!(rig.r32(offset::VER), 0x41);
    let cap = rig.r64(offset::CAP);
    assert_eq!(rig.r32(offset::CAP) as u64, cap & 0xffff_ffff);
    assert_eq!(rig.r32(offset::CAP + 4) as u64, cap >> 32);
    assert_eq!(((cap >> 24) & 0x3ff) * 16, offset::FRCD0);
    assert_eq!(rig.r32(offset::GCMD), 0, "GCMD is write-only");
    assert_eq!(
        rig.r32(offset::GSTS),
        (1 << 31) | (1 << 30) | (1 << 26),
        "TES, RTPS and QIES"
    );
    // RTADDR: bits 9:0 reserved; written in halves
    rig.w32(offset::RTADDR, 0xffff_ffff);
    rig.w32(offset::RTADDR + 4, 0x1);
    assert_eq!(rig.r64(offset::RTADDR), 0x1_ffff_fc00);
    // misaligned and odd-sized accesses do nothing
    rig.vtd.mmio_write(offset::RTADDR + 2, 4, 0);
    rig.vtd.mmio_write(offset::RTADDR, 2, 0);
    assert_eq!(rig.r64(offset::RTADDR), 0x1_ffff_fc00);
    assert_eq!(rig.vtd.mmio_read(offset::CAP + 1, 4), 0);
    assert_eq!(rig.vtd.mmio_read(0xff8, 8), 0);
    // turning translation off clears TES
    rig.w32(offset::GCMD, 0);
    assert_eq!(rig.r32(offset::GSTS) & (1 << 31), 0);
}

#[test]
fn walk_fault_reasons_of_every_stage() {
    use vsva_mem::PageSize;
    use vsva_pgtable::vtd_ss::VtdSecondStage;
    use vsva_pgtable::x86::X86Paging;
    use vsva_pgtable::{PageTable, Perm};
    let cfg = VtdConfig {
        execute_requests: true,
        ..VtdConfig::default()
    };
    let rig = Rig::new(cfg);
    let dev = rid(0, 3, 0);
    let dir = rig.attach_device(dev);
    let fs = PageTable::new(X86Paging::default(), rig.frames.clone()).unwrap();
    fs.map(0x1000, 0x5000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    fs.map(0x2000, 0x6000, PageSize::Size4K, Perm::USER_RW | Perm::EXEC)
        .unwrap();
    let ss = PageTable::new(VtdSecondStage::four_level(), rig.frames.clone()).unwrap();
    ss.map(0x1000, 0x5000, PageSize::Size4K, Perm::RW).unwrap();
    let mut fse = pasid_entry(Pgtt::FirstStage, 1, 0, fs.root());
    fse.q2.set_ere(true);
    rig.write_pasid(dir, 1, &fse);
    rig.write_pasid(dir, 2, &pasid_entry(Pgtt::SecondStage, 2, ss.root(), 0));
    let f = |pasid: u32, addr: u64, access: Access| {
        rig.flush();
        rig.dma(dev, Some(pasid), addr, access)
            .err()
            .and_then(|b| b.reason)
    };
    // SGN.3: execute request to an XD page (ERE set)
    assert_eq!(
        f(1, 0x1000, R | Access::EXEC),
        Some(FaultReason::ExecDenied)
    );
    assert_eq!(f(1, 0x2000, R | Access::EXEC), None);
    // SFS.3: a reserved bit in a first-stage PTE
    let leaf = fs.lookup(0x1000).unwrap();
    rig.mem.store_u64(leaf.slot, leaf.entry | 1 << 50).unwrap();
    assert_eq!(f(1, 0x1000, R), Some(FaultReason::FsReserved));
    // SFS.1 / SFS.4: first-stage tables outside memory (below the root / the root itself)
    rig.mem.store_u64(leaf.slot, leaf.entry).unwrap();
    let pml4e = rig.mem.load_u64(fs.root()).unwrap();
    rig.mem.store_u64(fs.root(), (1 << 40) | 7).unwrap();
    assert_eq!(f(1, 0x1000, R), Some(FaultReason::FsAccess));
    rig.mem.store_u64(fs.root(), pml4e).unwrap();
    let mut bad_root = fse;
    bad_root.q2.set_fsptptr((1 << 40) >> 12);
    rig.write_pasid(dir, 3, &bad_root);
    assert_eq!(f(3, 0x1000, R), Some(FaultReason::FsRootAccess));
    // SSS.3: reserved bit in a second-stage entry; SSS.1 / SSS.4: outside memory
    let sleaf = ss.lookup(0x1000).unwrap();
    rig.mem
        .store_u64(sleaf.slot, sleaf.entry | 1 << 62)
        .unwrap();
    assert_eq!(f(2, 0x1000, R), Some(FaultReason::SsReserved));
    rig.mem.store_u64(sleaf.slot, sleaf.entry).unwrap();
    let spml4e = rig.mem.load_u64(ss.root()).unwrap();
    rig.mem.store_u64(ss.root(), (1 << 40) | 3).unwrap();
    assert_eq!(f(2, 0x1000, R), Some(FaultReason::SsAccess));
    rig.mem.store_u64(ss.root(), spml4e).unwrap();
    rig.write_pasid(dir, 4, &pasid_entry(Pgtt::SecondStage, 2, 1 << 40, 0));
    assert_eq!(f(4, 0x1000, R), Some(FaultReason::SsRootInvalid));
    // SFS.5: nested, a first-stage root GPA beyond a 3-level (39-bit) second stage
    // (inside the host address width, so the PASID entry itself is fine)
    let mut nested = pasid_entry(Pgtt::Nested, 5, ss.root(), 1 << 40);
    nested.q0.set_aw(1);
    rig.write_pasid(dir, 5, &nested);
    assert_eq!(f(5, 0x1000, R), Some(FaultReason::NestedBeyondWidth));
    // SFS.6: nested, the first-stage root table's GPA has no second-stage mapping
    rig.write_pasid(dir, 7, &pasid_entry(Pgtt::Nested, 5, ss.root(), 0x30_0000));
    assert_eq!(f(7, 0x1000, R), Some(FaultReason::NestedRootRead));
    // SGN.7: a write-only second-stage page read
    ss.map(0x3000, 0x7000, PageSize::Size4K, Perm::WRITE)
        .unwrap();
    assert_eq!(f(2, 0x3000, R), Some(FaultReason::ReadDenied));
    assert_eq!(f(2, 0x3000, Access::WRITE), None);
    // a pointer above the host address width is a reserved bit of the PASID entry
    rig.write_pasid(dir, 6, &pasid_entry(Pgtt::Nested, 5, ss.root(), 1 << 50));
    assert_eq!(f(6, 0x1000, R), Some(FaultReason::PasidReserved));
}
