//! A host: physical memory, an IOMMU unit of any [`IommuKind`] with its driver, the IOMMU
//! core, the memory manager, and the PCIe fabric with demo devices — wired as on a real
//! machine, each talking to the next only through its interface.
//!
//! Asynchrony is explicit and runs inline on one thread: when a device waits for a page, the
//! host runs its page-request interrupt handler (the IOMMU core draining the page request
//! queue and resolving faults with the memory manager), whose responses reach the device
//! through the fabric; then the device runs again. No thread hand-off per fault.

use std::sync::Arc;

use vsva_demo::Fabric;
use vsva_demo::{DemoDevice, PlatformDevice, Progress};
use vsva_demo::{Endpoint, Machine, MsiWindow, UnitCounters};
use vsva_iommu::Iommu;
use vsva_iommu::UnrecoverableFault;
use vsva_mem::{PhysMem, PhysMemory, Rid};
use vsva_mm::MemoryManager;
use vsva_pcie::{MsiLog, Upstream};

use crate::kind::{IommuKind, ProbeError};
use crate::os::Os;

/// Machine set-up errors.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// Host memory could not be mapped.
    #[error("memory: {0}")]
    Memory(#[from] vsva_mem::CreateError),
    /// The IOMMU driver refused the unit (its own error inside).
    #[error("IOMMU driver: {0}")]
    Driver(ProbeError),
}

/// A host whose IOMMU is of kind `K`.
pub struct Host<K: IommuKind> {
    /// Physical memory.
    pub mem: Arc<dyn PhysMem>,
    /// The IOMMU unit (the hardware model).
    pub unit: Arc<K::Unit>,
    /// Its driver.
    pub driver: Arc<K::Driver>,
    /// The IOMMU core.
    pub iommu: Arc<Iommu>,
    /// The memory manager.
    pub mm: Arc<MemoryManager>,
    /// The PCIe fabric.
    pub fabric: Arc<Fabric>,
    /// Interrupts raised (for traces).
    pub irq: Arc<MsiLog>,
    port: Arc<dyn Upstream>,
}

impl<K: IommuKind> Host<K> {
    /// A host with `memory` bytes of RAM (sparse: untouched memory costs nothing) and a unit
    /// configured by `cfg`.
    ///
    /// # Errors
    /// [`PlatformError`] if memory cannot be mapped or the driver refuses the unit.
    pub fn new(memory: u64, cfg: K::Config) -> Result<Self, PlatformError> {
        Self::with_memory(Arc::new(PhysMemory::new(memory)?), memory, cfg)
    }

    /// A host whose physical memory is `mem`, of which `[0, ram)` is RAM the host hands out
    /// (anything above — e.g. the file-backed segments of a [`vsva_mem::SegmentedMemory`] —
    /// is reachable by DMA but never allocated).
    ///
    /// # Errors
    /// [`PlatformError`] if the driver refuses the unit.
    pub fn with_memory(
        mem: Arc<dyn PhysMem>,
        ram: u64,
        cfg: K::Config,
    ) -> Result<Self, PlatformError> {
        let ram = ram.min(mem.size());
        let fabric = Arc::new(Fabric::default());
        let irq = Arc::new(MsiLog::default());
        let unit = K::build(cfg, mem.clone(), irq.clone(), fabric.clone());
        let Os { driver, iommu, mm } = Os::<K>::boot(mem.clone(), &unit, ram)?;
        let port = K::upstream(&unit, mem.clone());
        Ok(Host {
            mem,
            unit,
            driver,
            iommu,
            mm,
            fabric,
            irq,
            port,
        })
    }

    /// Plugs a demo device in at `rid`.
    pub fn add_device(&self, rid: Rid, pri_capacity: u32, atc_entries: usize) -> Arc<DemoDevice> {
        let dev = Arc::new(DemoDevice::new(
            rid,
            self.port.clone(),
            pri_capacity,
            atc_entries,
        ));
        self.fabric.plug(dev.clone());
        dev
    }

    /// Plugs a demo device with a `pasid_width`-bit PASID capability in at `rid`.
    pub fn add_device_with_width(
        &self,
        rid: Rid,
        pri_capacity: u32,
        atc_entries: usize,
        pasid_width: u8,
    ) -> Arc<DemoDevice> {
        let dev = Arc::new(DemoDevice::with_pasid_width(
            rid,
            self.port.clone(),
            pri_capacity,
            atc_entries,
            pasid_width,
        ));
        self.fabric.plug(dev.clone());
        dev
    }

    /// Plugs a platform device (no PCIe: StreamID `stream`, `pasid_bits`-bit SubstreamIDs,
    /// stall) in, telling the IOMMU driver it can stall, as firmware's `dma-can-stall` does;
    /// `None` when the unit cannot stall.
    pub fn add_platform_device(&self, stream: Rid, pasid_bits: u8) -> Option<Arc<PlatformDevice>> {
        let port = K::platform_port(&self.unit, &self.driver, self.mem.clone(), stream)?;
        Some(Arc::new(PlatformDevice::new(stream, pasid_bits, port)))
    }

    /// The host's IOMMU interrupt handlers: page requests, then recorded faults. Returns how
    /// much work there was.
    pub fn service(&self) -> usize {
        self.iommu.handle_page_requests() + self.iommu.handle_faults()
    }

    /// Runs a device until its command completes or fails, servicing its page requests.
    /// A device still waiting when the host has nothing more to do is reported as waiting
    /// (its page request was lost).
    pub fn run_device(&self, dev: &dyn Endpoint) -> Progress {
        vsva_demo::run_until_done(dev, || self.service())
    }
}

impl<K: IommuKind> Machine for Host<K> {
    fn iommu(&self) -> &Arc<Iommu> {
        &self.iommu
    }

    fn mm(&self) -> &Arc<MemoryManager> {
        &self.mm
    }

    fn memory(&self) -> Arc<dyn PhysMem> {
        self.mem.clone()
    }

    fn service(&self) -> usize {
        Host::service(self)
    }

    fn add_device(
        &self,
        rid: Rid,
        pri_capacity: u32,
        atc_entries: usize,
    ) -> Result<Arc<dyn Endpoint>, String> {
        Ok(Host::add_device(self, rid, pri_capacity, atc_entries))
    }

    fn add_platform_device(
        &self,
        stream: Rid,
        pasid_bits: u8,
    ) -> Result<Arc<dyn Endpoint>, String> {
        Host::add_platform_device(self, stream, pasid_bits)
            .map(|d| d as Arc<dyn Endpoint>)
            .ok_or_else(|| "the IOMMU cannot stall transactions".into())
    }

    fn run_device(&self, dev: &dyn Endpoint) -> Progress {
        Host::run_device(self, dev)
    }

    fn take_faults(&self) -> Vec<UnrecoverableFault> {
        self.iommu.ops().take_faults()
    }

    fn unit_counters(&self) -> UnitCounters {
        K::counters(&self.unit)
    }

    fn msi_window(&self) -> MsiWindow {
        K::MSI_WINDOW
    }

    fn top_ram_page_below_interrupts(&self) -> u64 {
        // Requests without PASID go through an identity mapping of all memory.
        vsva_demo::top_ram_page_below(self.mem.size())
    }
}
