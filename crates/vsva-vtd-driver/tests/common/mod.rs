//! The driver-level tests' rig: a unit over memory with recording endpoints behind it, and
//! its driver probed and enabled.

#![allow(dead_code)]

use std::sync::Arc;
use vsva_pcie::Mmio;

use vsva_mem::{FrameAllocator, PhysMem, PhysMemory};
use vsva_pcie::MsiLog;
use vsva_vtd::{Vtd, VtdConfig};
use vsva_vtd_driver::VtdDriver;

pub const MIB: u64 = 1 << 20;

/// Endpoints that remember the ATS invalidations and page group responses reaching them.
pub type Endpoints = vsva_pcie::RecordingDevices;

/// A unit over `ram` bytes of memory with recording [`Endpoints`] behind it, and its driver
/// probed and enabled (driver frames from 1 MiB to 256 MiB): the set-up of the driver-level
/// tests.
pub fn unit_and_driver(ram: u64) -> (Arc<PhysMemory>, Arc<Vtd>, Arc<Endpoints>, Arc<VtdDriver>) {
    let mem = Arc::new(PhysMemory::new(ram).unwrap());
    let dynmem: Arc<dyn PhysMem> = mem.clone();
    let endpoints = Arc::new(Endpoints::default());
    let vtd = Arc::new(Vtd::with_devices(
        VtdConfig::default(),
        dynmem.clone(),
        Arc::new(MsiLog::default()),
        endpoints.clone(),
    ));
    let mmio: Arc<dyn Mmio> = vtd.clone();
    let frames = Arc::new(FrameAllocator::new(dynmem.clone(), MIB, 256 * MIB));
    let driver = Arc::new(VtdDriver::probe(mmio, dynmem, frames).unwrap());
    driver.enable().unwrap();
    (mem, vtd, endpoints, driver)
}
