//! A virtual unit's backend hears the guest's cache invalidations, in queue order and before
//! the wait descriptor behind them completes; a physical unit has no backend.

mod common;

use std::sync::{Arc, Mutex};

use common::Endpoints;

use vsva_mem::{FrameAllocator, Pasid, PhysMem, PhysMemory, Rid};
use vsva_vtd::backend::VirtualBackend;
use vsva_vtd::driver::{DeviceOptions, Domain, Mmio, VtdDriver};
use vsva_vtd::spec::descriptors::Descriptor;
use vsva_vtd::{MsiLog, Vtd, VtdConfig};

const MIB: u64 = 1 << 20;

/// Records what it hears, and the unit's completed-wait count at that moment.
struct Recorder {
    vtd: Mutex<Option<Arc<Vtd>>>,
    heard: Mutex<Vec<(Descriptor, u64)>>,
}

impl VirtualBackend for Recorder {
    fn invalidated(&self, d: &Descriptor) {
        let waits = self
            .vtd
            .lock()
            .unwrap()
            .as_ref()
            .map_or(0, |v| v.stats().waits);
        self.heard.lock().unwrap().push((*d, waits));
    }
}

#[test]
fn the_backend_hears_each_invalidation_before_its_wait_completes() {
    let mem: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(1 << 30).unwrap());
    let vtd = Arc::new(Vtd::with_devices(
        VtdConfig::default(),
        mem.clone(),
        Arc::new(MsiLog::default()),
        Arc::new(Endpoints::default()),
    ));
    let rec = Arc::new(Recorder {
        vtd: Mutex::new(Some(vtd.clone())),
        heard: Mutex::new(vec![]),
    });
    assert!(vtd.set_backend(rec.clone()).is_ok());
    assert!(vtd.set_backend(rec.clone()).is_err(), "set once");
    let mmio: Arc<dyn Mmio> = vtd.clone();
    let frames = Arc::new(FrameAllocator::new(mem, MIB, 256 * MIB));
    let driver = VtdDriver::probe(mmio, frames.memory().clone(), frames).unwrap();
    driver.enable().unwrap();
    let rid = Rid::from_bdf(0, 3, 0).unwrap();
    driver.attach_device(rid, DeviceOptions::PASID).unwrap();
    let before = rec.heard.lock().unwrap().len();
    let waits_before = vtd.stats().waits;
    driver
        .attach_pasid(rid, Pasid::new(7).unwrap(), &Domain::PassThrough { did: 9 })
        .unwrap();
    let heard = rec.heard.lock().unwrap()[before..].to_vec();
    // the driver's PASID-entry change (Linux pasid_flush_caches): PASID cache, PASID-based
    // IOTLB, PASID cache of the new domain, domain IOTLB — then one wait
    let kinds: Vec<&str> = heard
        .iter()
        .map(|(d, _)| match d {
            Descriptor::PasidCache { .. } => "pasid-cache",
            Descriptor::PasidIotlb { .. } => "pasid-iotlb",
            Descriptor::Iotlb { .. } => "iotlb",
            Descriptor::ContextCache { .. } => "context-cache",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        ["pasid-cache", "pasid-iotlb", "pasid-cache", "iotlb"]
    );
    assert!(
        heard.iter().all(|&(_, w)| w == waits_before),
        "every one was heard before the wait behind it completed"
    );
    assert_eq!(vtd.stats().waits, waits_before + 1);
    match heard[0].0 {
        Descriptor::PasidCache { pasid, did, .. } => assert_eq!((pasid, did), (7, 0)),
        d => panic!("{d:?}"),
    }
}

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
    // a unit without RID_PASID support (ECAP.RPS clear) uses PASID 0 (§3.4.3)
    let plain = common::Rig::new(VtdConfig {
        rid_pasid: false,
        ..VtdConfig::default()
    });
    let dir = plain
        .frames
        .alloc_zeroed(vsva_mem::PageSize::Size2M)
        .unwrap();
    plain.write_context(
        dev,
        &ContextEntry {
            lo: ContextLo::new()
                .with_p(true)
                .with_paside(true)
                .with_pasiddirptr(dir >> 12),
            hi: ContextHi::new().with_rid_pasid(7),
            reserved: [0, 0],
        },
    );
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
