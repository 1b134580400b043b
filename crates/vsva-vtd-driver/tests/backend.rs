//! A virtual unit's backend hears the driver's cache invalidations, in queue order and before
//! the wait descriptor behind them completes.

mod common;

use std::sync::{Arc, Mutex};
use vsva_pcie::Mmio;

use common::{Endpoints, MIB};

use vsva_mem::{FrameAllocator, Pasid, PhysMem, PhysMemory, Rid};
use vsva_pcie::MsiLog;
use vsva_vtd::VirtualBackend;
use vsva_vtd::spec::descriptors::Descriptor;
use vsva_vtd::{Vtd, VtdConfig};
use vsva_vtd_driver::{DeviceOptions, Domain, VtdDriver};

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
