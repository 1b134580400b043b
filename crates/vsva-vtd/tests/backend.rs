//! What a virtual unit's backend reads of the guest's tables: the PASIDs present within the
//! directory and the PASID width, the RID_PASID from the context entry, nothing when the unit
//! cannot translate. (The backend hearing the driver's invalidations in queue order is
//! vsva-vtd-driver's `tests/backend.rs`.)

mod common;

use vsva_mem::{Pasid, PhysMem, Rid};
use vsva_vtd::VtdConfig;

/// A context entry for `rid` with PASIDs enabled and a PASID directory of 2^(`pdts`+7)
/// entries at `dir`.
fn context_with_pdts(rig: &common::Rig, rid: Rid, dir: u64, pdts: u8, paside: bool) {
    use vsva_vtd::spec::root_context::{ContextEntry, ContextHi, ContextLo};
    rig.write_context(
        rid,
        &ContextEntry {
            lo: ContextLo::new()
                .with_p(true)
                .with_paside(paside)
                .with_pdts(pdts)
                .with_pasiddirptr(dir >> 12),
            hi: ContextHi::new(),
            reserved: [0, 0],
        },
    );
}

#[test]
fn guest_present_pasids_stays_within_the_directory_and_the_pasid_width() {
    use common::{pasid_entry, rid};
    use vsva_vtd::spec::pasid::{PasidDirEntry, Pgtt};
    let rig = common::Rig::new(VtdConfig::default());
    let dev = rid(0, 5, 0);
    let dir = rig.frames.alloc_zeroed(vsva_mem::PageSize::Size2M).unwrap();
    // PDTS 0: 128 directory entries, PASIDs 0..8192.
    context_with_pdts(&rig, dev, dir, 0, true);
    for p in [0, 5, 70, 8191] {
        rig.write_pasid(dir, p, &pasid_entry(Pgtt::PassThrough, 1, 0, 0));
    }
    // an entry under directory entry 128, beyond the directory the context names
    rig.write_pasid(dir, 8192, &pasid_entry(Pgtt::PassThrough, 1, 0, 0));
    // a present directory entry whose table has nothing present
    rig.mem
        .store_u64(
            dir + 8 * 3,
            PasidDirEntry::pointing_to(rig.page()).into_bits(),
        )
        .unwrap();
    assert_eq!(rig.vtd.guest_present_pasids(dev), [0, 5, 70, 8191]);
    // the DMA view agrees: PASID 8192 is too large for this context (SCT.5)
    let e = rig
        .vtd
        .guest_pasid_entry(dev, Some(Pasid::new(8192).unwrap()))
        .unwrap_err();
    assert_eq!(
        e.reason,
        vsva_vtd::spec::fault::FaultReason::ContextPasidTooLarge
    );
    assert_eq!(
        rig.vtd
            .guest_pasid_entry(dev, Some(Pasid::new(70).unwrap()))
            .unwrap()
            .pasid,
        70
    );

    // A unit of 5 PASID bits: only PASIDs below 32, even inside one PASID table.
    let narrow = common::Rig::new(VtdConfig {
        pasid_bits: 5,
        ..VtdConfig::default()
    });
    let dir = narrow
        .frames
        .alloc_zeroed(vsva_mem::PageSize::Size2M)
        .unwrap();
    context_with_pdts(&narrow, dev, dir, 0, true);
    for p in [3, 31, 32, 40] {
        narrow.write_pasid(dir, p, &pasid_entry(Pgtt::PassThrough, 1, 0, 0));
    }
    assert_eq!(narrow.vtd.guest_present_pasids(dev), [3, 31]);
}

#[test]
fn guest_rid_pasid_comes_from_the_context_entry_alone() {
    use common::rid;
    use vsva_vtd::spec::fault::FaultReason;
    use vsva_vtd::spec::root_context::{ContextEntry, ContextHi, ContextLo};
    let rig = common::Rig::new(VtdConfig::default());
    let dev = rid(0, 7, 0);
    assert_eq!(
        rig.vtd.guest_rid_pasid(dev),
        None,
        "no root entry for the bus"
    );
    let dir = rig.frames.alloc_zeroed(vsva_mem::PageSize::Size2M).unwrap();
    rig.write_context(
        dev,
        &ContextEntry {
            lo: ContextLo::new()
                .with_p(true)
                .with_paside(true)
                .with_pdts(0)
                .with_pasiddirptr(dir >> 12),
            hi: ContextHi::new().with_rid_pasid(7),
            reserved: [0, 0],
        },
    );
    // no PASID entry for 7: the DMA view faults, the context still names 7
    assert_eq!(
        rig.vtd.guest_pasid_entry(dev, None).unwrap_err().reason,
        FaultReason::PasidDirNotPresent
    );
    assert_eq!(rig.vtd.guest_rid_pasid(dev), Some(7));
    // a unit without RID_PASID support (ECAP.RPS clear) uses PASID 0 (§3.4.3), and the field
    // is reserved there (§9.4): a context entry setting it is SCT.3 and names no PASID
    let plain = common::Rig::new(VtdConfig {
        rid_pasid: false,
        ..VtdConfig::default()
    });
    let dir = plain
        .frames
        .alloc_zeroed(vsva_mem::PageSize::Size2M)
        .unwrap();
    let mut context = ContextEntry {
        lo: ContextLo::new()
            .with_p(true)
            .with_paside(true)
            .with_pasiddirptr(dir >> 12),
        hi: ContextHi::new().with_rid_pasid(7),
        reserved: [0, 0],
    };
    plain.write_context(dev, &context);
    assert_eq!(plain.vtd.guest_rid_pasid(dev), None);
    assert_eq!(
        plain.vtd.guest_pasid_entry(dev, None).unwrap_err().reason,
        FaultReason::ContextReserved
    );
    context.hi = ContextHi::new();
    plain.write_context(dev, &context);
    assert_eq!(plain.vtd.guest_rid_pasid(dev), Some(0));
}

#[test]
fn guest_views_of_a_unit_that_cannot_translate_are_empty() {
    use common::{pasid_entry, rid};
    use vsva_vtd::spec::fault::FaultReason;
    use vsva_vtd::spec::pasid::Pgtt;
    use vsva_vtd::spec::registers::{Gcmd, offset};
    let rig = common::Rig::new(VtdConfig::default());
    let dev = rid(0, 6, 0);
    // no root entry for the bus yet
    assert!(rig.vtd.guest_present_pasids(dev).is_empty());
    assert_eq!(
        rig.vtd.guest_pasid_entry(dev, None).unwrap_err().reason,
        FaultReason::RootNotPresent
    );
    // PASIDs disabled: none listed, while requests without PASID still have their entry
    let dir = rig.frames.alloc_zeroed(vsva_mem::PageSize::Size2M).unwrap();
    context_with_pdts(&rig, dev, dir, 0, false);
    rig.write_pasid(dir, 0, &pasid_entry(Pgtt::PassThrough, 4, 0, 0));
    rig.write_pasid(dir, 9, &pasid_entry(Pgtt::PassThrough, 4, 0, 0));
    assert!(rig.vtd.guest_present_pasids(dev).is_empty());
    assert_eq!(rig.vtd.guest_pasid_entry(dev, None).unwrap().pasid, 0);
    // a legacy-mode root table: nothing (legacy tables have no PASID tables)
    context_with_pdts(&rig, dev, dir, 0, true);
    assert_eq!(rig.vtd.guest_present_pasids(dev), [0, 9]);
    rig.w64(offset::RTADDR, rig.root);
    rig.w32(offset::GCMD, (Gcmd::TE | Gcmd::QIE | Gcmd::SRTP).bits());
    assert!(rig.vtd.guest_present_pasids(dev).is_empty());
    assert_eq!(
        rig.vtd
            .guest_pasid_entry(dev, Some(Pasid::new(9).unwrap()))
            .unwrap_err()
            .reason,
        FaultReason::LegacyModeWithPasid
    );
    // translation disabled
    rig.w32(offset::GCMD, Gcmd::QIE.bits());
    assert!(rig.vtd.guest_present_pasids(dev).is_empty());
    assert_eq!(
        rig.vtd.guest_pasid_entry(dev, None).unwrap_err().reason,
        FaultReason::RootTableAddress
    );
}
