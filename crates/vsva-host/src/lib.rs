//! vsva-host: a modelled host — physical memory, a VT-d unit with its driver, the IOMMU core,
//! the memory manager, and the PCIe fabric with demo devices — wired as on a real machine,
//! each talking to the next only through its interface. It is where the vendor is chosen: the
//! demo device, driver and program (vsva-demo) name no IOMMU vendor.
//!
//! Asynchrony is explicit and runs inline on one thread: when a device waits for a page, the
//! platform runs the host's page-request interrupt handler (the IOMMU core draining the page
//! request queue and resolving faults with the memory manager), whose responses reach the
//! device through the fabric; then the device runs again. No thread hand-off per fault.

use std::sync::Arc;

use vsva_iommu::Iommu;
use vsva_iommu::ops::UnrecoverableFault;
use vsva_mem::{FrameAllocator, PhysMem, PhysMemory, Rid};
use vsva_mm::MemoryManager;
use vsva_pcie::Upstream;
use vsva_pgtable::x86::X86Paging;
use vsva_pcie::MsiLog;
use vsva_vtd::{Vtd, VtdConfig, VtdPort};
use vsva_vtd_driver::{Mmio, VtdDriver};

use vsva_demo::device::{DemoDevice, Progress};
use vsva_demo::fabric::Fabric;
use vsva_demo::machine::{Endpoint, Machine, UnitCounters};

pub use vsva_demo::machine::INTERRUPT_WINDOW;

const MIB: u64 = 1 << 20;

/// Platform set-up errors.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// Host memory could not be mapped.
    #[error("memory: {0}")]
    Memory(#[from] vsva_mem::CreateError),
    /// The IOMMU driver refused the unit.
    #[error("IOMMU driver: {0}")]
    Driver(#[from] vsva_vtd_driver::DriverError),
}

/// The OS of a machine as the demo needs it: the VT-d driver, the IOMMU core on it, and the
/// memory manager. A host boots one over host memory; a guest of `vsva-vmm` boots the same
/// over guest-physical memory and its vIOMMU.
pub struct Os {
    /// The VT-d driver.
    pub vtd_driver: Arc<VtdDriver>,
    /// The IOMMU core.
    pub iommu: Arc<Iommu>,
    /// The memory manager.
    pub mm: Arc<MemoryManager>,
}

impl Os {
    /// Boots on `mem` (of which `[0, ram)` is RAM) with the unit `vtd`: the driver's
    /// structures in [1 MiB, 256 MiB), processes' frames in the rest of RAM except the
    /// interrupt window; the driver probes and enables the unit.
    ///
    /// # Errors
    /// [`PlatformError::Driver`] if the driver refuses the unit.
    pub fn boot(mem: Arc<dyn PhysMem>, vtd: Arc<Vtd>, ram: u64) -> Result<Os, PlatformError> {
        let mmio: Arc<dyn Mmio> = vtd;
        let driver_frames = Arc::new(FrameAllocator::new(mem.clone(), MIB, 256 * MIB));
        let vtd_driver = Arc::new(VtdDriver::probe(mmio, mem.clone(), driver_frames)?);
        vtd_driver.enable()?;
        let iommu = Iommu::new(vtd_driver.clone());
        let frames = Arc::new(FrameAllocator::with_holes(
            mem,
            256 * MIB,
            ram,
            &[INTERRUPT_WINDOW],
        ));
        let mm = MemoryManager::new(frames, X86Paging::default());
        Ok(Os {
            vtd_driver,
            iommu,
            mm,
        })
    }
}

/// What a VT-d unit reports to a [`Machine`]'s demo program: its invalidation counters.
pub fn vtd_counters(vtd: &Vtd) -> UnitCounters {
    let s = vtd.stats();
    UnitCounters {
        iotlb_invalidations: s.iotlb_invalidations,
        devtlb_invalidations: s.devtlb_invalidations,
    }
}

/// The fault reason VT-d records for a request without PASID to the interrupt range: an
/// interrupt request, which remapping hardware without interrupt remapping refuses (VT-d 4.1
/// §3.15, SGN.8).
pub const VTD_INTERRUPT_FAULT_REASON: u8 =
    vsva_vtd::spec::fault::FaultReason::InterruptAddress as u8;

/// A host.
pub struct Platform {
    /// Physical memory.
    pub mem: Arc<dyn PhysMem>,
    /// The VT-d unit.
    pub vtd: Arc<Vtd>,
    /// Its driver.
    pub vtd_driver: Arc<VtdDriver>,
    /// The IOMMU core.
    pub iommu: Arc<Iommu>,
    /// The memory manager.
    pub mm: Arc<MemoryManager>,
    /// The PCIe fabric.
    pub fabric: Arc<Fabric>,
    /// Interrupts raised (for traces).
    pub irq: Arc<MsiLog>,
    port: Arc<VtdPort>,
}

impl Platform {
    /// A host with `memory` bytes of RAM (sparse: untouched memory costs nothing) and a VT-d
    /// unit configured by `cfg`.
    ///
    /// # Errors
    /// [`PlatformError`] if memory cannot be mapped or the driver refuses the unit.
    pub fn new(memory: u64, cfg: VtdConfig) -> Result<Platform, PlatformError> {
        Self::with_memory(Arc::new(PhysMemory::new(memory)?), memory, cfg)
    }

    /// A host whose physical memory is `mem`, of which `[0, ram)` is RAM the platform hands
    /// out (anything above — e.g. the file-backed segments of a
    /// [`vsva_mem::SegmentedMemory`] — is reachable by DMA but never allocated).
    ///
    /// # Errors
    /// [`PlatformError`] if the driver refuses the unit.
    pub fn with_memory(
        mem: Arc<dyn PhysMem>,
        ram: u64,
        cfg: VtdConfig,
    ) -> Result<Platform, PlatformError> {
        let memory = ram.min(mem.size());
        let dynmem: Arc<dyn PhysMem> = mem.clone();
        let fabric = Arc::new(Fabric::default());
        let irq = Arc::new(MsiLog::default());
        let vtd = Arc::new(Vtd::with_devices(
            cfg,
            dynmem.clone(),
            irq.clone(),
            fabric.clone(),
        ));
        let Os {
            vtd_driver,
            iommu,
            mm,
        } = Os::boot(dynmem.clone(), vtd.clone(), memory)?;
        let port = Arc::new(VtdPort {
            vtd: vtd.clone(),
            mem: dynmem,
        });
        Ok(Platform {
            mem,
            vtd,
            vtd_driver,
            iommu,
            mm,
            fabric,
            irq,
            port,
        })
    }

    /// Plugs a demo device in at `rid`.
    pub fn add_device(&self, rid: Rid, pri_capacity: u32, atc_entries: usize) -> Arc<DemoDevice> {
        let up: Arc<dyn Upstream> = self.port.clone();
        let dev = Arc::new(DemoDevice::new(rid, up, pri_capacity, atc_entries));
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
        let up: Arc<dyn Upstream> = self.port.clone();
        let dev = Arc::new(DemoDevice::with_pasid_width(
            rid,
            up,
            pri_capacity,
            atc_entries,
            pasid_width,
        ));
        self.fabric.plug(dev.clone());
        dev
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
        vsva_demo::machine::run_until_done(dev, || self.service())
    }
}

impl Machine for Platform {
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
        Platform::service(self)
    }

    fn add_device(
        &self,
        rid: Rid,
        pri_capacity: u32,
        atc_entries: usize,
    ) -> Result<Arc<dyn Endpoint>, String> {
        Ok(Platform::add_device(self, rid, pri_capacity, atc_entries))
    }

    fn run_device(&self, dev: &dyn Endpoint) -> Progress {
        Platform::run_device(self, dev)
    }

    fn take_faults(&self) -> Vec<UnrecoverableFault> {
        self.iommu.ops().take_faults()
    }

    fn unit_counters(&self) -> UnitCounters {
        vtd_counters(&self.vtd)
    }

    fn interrupt_fault_reason(&self) -> u8 {
        VTD_INTERRUPT_FAULT_REASON
    }

    fn top_ram_page_below_interrupts(&self) -> u64 {
        // Requests without PASID go through an identity mapping of all memory.
        vsva_demo::machine::top_ram_page_below(self.mem.size())
    }
}
