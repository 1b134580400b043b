//! What the demo driver and program run on, as two interfaces: the [`Machine`] (the OS's
//! IOMMU core and memory manager, the IOMMU driver's fault log, plugging devices, the loop
//! that runs a device and services its interrupts) and the [`Endpoint`] (a demo device as its
//! driver reaches it: configuration space and BAR registers).
//!
//! A host (vsva-host's `Platform`) is one machine, its
//! [`DemoDevice`](crate::device::DemoDevice)s the endpoints. A guest of `vsva-vmm` is another:
//! there the endpoint is a host device assigned to the VM, whose registers the VMM passes
//! through (rewriting the PASID register, as PASIDs are virtualized), and the IOMMU core and
//! memory manager are the guest OS's, over guest-physical memory. The same driver and program
//! run unchanged on both (seed 000's "the same flows in a guest").

use std::sync::Arc;

use vsva_iommu::Iommu;
use vsva_iommu::UnrecoverableFault;
use vsva_mem::{Pasid, PhysMem, Rid};
use vsva_mm::MemoryManager;

use crate::device::{DeviceStats, Progress};
use vsva_pcie::Refused;

/// The interrupt window: addresses DMA never reaches (MSI writes), and never RAM.
pub const INTERRUPT_WINDOW: (u64, u64) = (0xfee0_0000, 0xff00_0000);

/// What the OS's IOMMU did to its caches (the demo's report).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnitCounters {
    /// IOTLB (and PASID-based IOTLB) invalidations executed.
    pub iotlb_invalidations: u64,
    /// Device-TLB invalidations the devices completed.
    pub devtlb_invalidations: u64,
}

/// A PCI function as software reaches it: configuration space and the 64-bit registers of
/// BAR 0. A driver in the OS, a VMM passing a device through, and the VFIO regions of the
/// `/dev/iommu` shim all go through this.
pub trait Function: Send + Sync {
    /// The configuration space's size (`pdev->cfg_size`): 4 KiB for a PCIe function with
    /// extended capabilities, 256 bytes for a conventional header.
    fn config_size(&self) -> u64 {
        u64::from(vsva_pcie::config::CONFIG_SPACE_SIZE)
    }
    /// Reads `size` (1, 2 or 4) bytes of configuration space at `off`.
    fn config_read(&self, off: u32, size: u32) -> u32;
    /// Writes `size` (1, 2 or 4) bytes of configuration space at `off`.
    fn config_write(&self, off: u32, size: u32, value: u32);
    /// Reads the BAR 0 register at `off` (see [`crate::regs`]).
    fn mmio_read(&self, off: u64) -> u64;
    /// Writes the BAR 0 register at `off`.
    fn mmio_write(&self, off: u64, value: u64);
}

/// A demo device as its driver reaches it.
pub trait Endpoint: Function {
    /// Its requester ID as the machine's IOMMU sees it.
    fn rid(&self) -> Rid;
    /// Lets the device work on its command (see [`DemoDevice::run`](crate::device::DemoDevice::run)).
    fn run(&self) -> Progress;
    /// What the device did so far.
    fn stats(&self) -> DeviceStats;
    /// A DMA without ATS (an untranslated address), for probing what the IOMMU lets through.
    ///
    /// # Errors
    /// [`Refused`] when the IOMMU refuses it.
    fn dma_untranslated(
        &self,
        pasid: Option<Pasid>,
        addr: u64,
        write: bool,
    ) -> Result<u64, Refused>;
}

/// How a machine keeps device DMA away from its interrupt (MSI) doorbells — the two ways
/// IOMMUs do it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsiWindow {
    /// A DMA without PASID to [`INTERRUPT_WINDOW`] is an interrupt request, which the IOMMU
    /// refuses (without interrupt remapping) and records with fault `reason` (VT-d 4.1 §3.15).
    Refused {
        /// The fault reason recorded.
        reason: u8,
    },
    /// MSIs are ordinary writes the IOMMU translates like any other; the OS keeps `window`
    /// (an IOVA range, Linux `IOMMU_RESV_SW_MSI`) out of every DMA domain and reports it as a
    /// reserved region of each device (Arm SMMUv3).
    Reserved {
        /// `[start, last]`, as reserved regions are given.
        window: (u64, u64),
    },
}

/// The machine a demo driver and program run on.
pub trait Machine {
    /// The OS's IOMMU core.
    fn iommu(&self) -> &Arc<Iommu>;
    /// The OS's memory manager.
    fn mm(&self) -> &Arc<MemoryManager>;
    /// The machine's physical memory (what its devices' DMA reaches).
    fn memory(&self) -> Arc<dyn PhysMem>;
    /// The machine's interrupt handlers, once (page requests, then recorded faults, on every
    /// level the machine has). Returns how much work there was.
    fn service(&self) -> usize;
    /// Plugs a demo device in at `rid` with `pri_capacity` outstanding page requests and an
    /// ATC of `atc_entries`.
    ///
    /// # Errors
    /// A description when the device cannot be plugged in.
    fn add_device(
        &self,
        rid: Rid,
        pri_capacity: u32,
        atc_entries: usize,
    ) -> Result<Arc<dyn Endpoint>, String>;
    /// Plugs a platform demo device ([`PlatformDevice`](crate::PlatformDevice)) in with
    /// StreamID `stream` and `pasid_bits`-bit SubstreamIDs, described by firmware as able
    /// to stall (`dma-can-stall`), and tells the IOMMU driver so before the device is
    /// registered with the IOMMU core. Machines whose IOMMU cannot stall refuse.
    ///
    /// # Errors
    /// Why the device cannot be plugged in (by default: no stall on this machine).
    fn add_platform_device(
        &self,
        stream: Rid,
        pasid_bits: u8,
    ) -> Result<Arc<dyn Endpoint>, String> {
        let _ = (stream, pasid_bits);
        Err("the IOMMU cannot stall transactions".into())
    }
    /// Runs `dev` until its command completes or fails, servicing the interrupts its work
    /// raises (page requests, on every level the machine has); `Waiting` when nothing is
    /// left to service and the device still waits.
    fn run_device(&self, dev: &dyn Endpoint) -> Progress;
    /// The unrecoverable faults the OS's IOMMU driver read and cleared since the last call.
    fn take_faults(&self) -> Vec<UnrecoverableFault>;
    /// The invalidation counters of the IOMMU the OS programs.
    fn unit_counters(&self) -> UnitCounters;
    /// How the machine keeps device DMA away from its MSI doorbells.
    fn msi_window(&self) -> MsiWindow;
    /// The highest RAM page below the interrupt window: what a DMA without PASID through the
    /// OS's identity mapping reaches.
    fn top_ram_page_below_interrupts(&self) -> u64;
}

/// Runs `dev` until its command completes or fails, calling `service` — the machine's
/// interrupt handlers, returning how much work they found — whenever the device waits. A
/// device still waiting when `service` finds nothing to do is reported as waiting (its page
/// request was lost).
pub fn run_until_done(dev: &dyn Endpoint, service: impl Fn() -> usize) -> Progress {
    loop {
        match dev.run() {
            Progress::Waiting => {
                if service() == 0 && dev.run() == Progress::Waiting {
                    return Progress::Waiting;
                }
            }
            other => return other,
        }
    }
}

/// The highest 4 KiB page below the interrupt window of a machine with `ram` bytes of RAM
/// from address 0.
pub fn top_ram_page_below(ram: u64) -> u64 {
    (INTERRUPT_WINDOW.0.min(ram) - 4096) & !0xfff
}
