//! What differs between IOMMU vendors when a machine is put together: how the hardware model
//! is built and reached, how its driver probes it, and what the model reports to the demo.
//! Everything else of a host or a guest OS — memory, the IOMMU core, the memory manager, the
//! PCIe fabric — is written once, over an [`IommuKind`].

use std::sync::Arc;

use vsva_demo::{MsiWindow, UnitCounters};
use vsva_iommu::IommuOps;
use vsva_mem::{FrameAllocator, PhysMem, Rid};
use vsva_mm::CpuArch;
use vsva_pcie::PlatformUpstream;
use vsva_pcie::{Downstream, MsiSink, Upstream};

/// A driver's refusal of its unit, with the driver's own error type kept.
pub type ProbeError = Box<dyn std::error::Error + Send + Sync>;

/// An IOMMU hardware model and its driver, as a machine wires them.
pub trait IommuKind: Send + Sync + 'static {
    /// What the unit advertises (capabilities, widths, sizes).
    type Config;
    /// The hardware model.
    type Unit: Send + Sync + 'static;
    /// The driver: the IOMMU core's driver interface over the unit's registers and memory.
    type Driver: IommuOps + Send + Sync + 'static;

    /// Builds a unit reading and writing `mem`, raising its interrupts into `irq`, with the
    /// Functions behind it reached through `downstream` (ATS invalidations, page responses).
    fn build(
        cfg: Self::Config,
        mem: Arc<dyn PhysMem>,
        irq: Arc<dyn MsiSink>,
        downstream: Arc<dyn Downstream>,
    ) -> Arc<Self::Unit>;

    /// The unit as the Functions' upstream port.
    fn upstream(unit: &Arc<Self::Unit>, mem: Arc<dyn PhysMem>) -> Arc<dyn Upstream>;

    /// The driver probes `unit` and enables translation, allocating its structures from
    /// `frames`.
    ///
    /// # Errors
    /// The driver's error if it refuses the unit.
    fn probe(
        unit: &Arc<Self::Unit>,
        mem: Arc<dyn PhysMem>,
        frames: Arc<FrameAllocator>,
    ) -> Result<Arc<Self::Driver>, ProbeError>;

    /// The unit as the port of a platform master `stream` that firmware describes as able to
    /// stall (`dma-can-stall`), after telling `driver` so: `None` when the unit cannot stall
    /// (the default: VT-d has no stall; a PCIe Function never stalls).
    fn platform_port(
        unit: &Arc<Self::Unit>,
        driver: &Self::Driver,
        mem: Arc<dyn PhysMem>,
        stream: Rid,
    ) -> Option<Arc<dyn PlatformUpstream>> {
        let _ = (unit, driver, mem, stream);
        None
    }

    /// The unit's invalidation counters, in the demo's neutral terms.
    fn counters(unit: &Self::Unit) -> UnitCounters;

    /// The architecture of the machine's CPUs, which decides the format of process page
    /// tables the unit shares for SVA: x86-64 (VT-d hosts) unless the kind says otherwise.
    const CPU: CpuArch = CpuArch::X86_64;

    /// How the machine keeps DMA off its MSI doorbells (the demo checks it).
    const MSI_WINDOW: MsiWindow;
}
