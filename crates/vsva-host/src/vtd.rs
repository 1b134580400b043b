//! Intel VT-d as an [`IommuKind`]: the vsva-vtd model driven by vsva-vtd-driver.

use std::sync::Arc;
use vsva_pcie::Mmio;

use vsva_demo::{MsiWindow, UnitCounters};
use vsva_mem::{FrameAllocator, PhysMem};
use vsva_pcie::{Downstream, MsiSink, Upstream};
use vsva_vtd::{Vtd, VtdConfig, VtdPort};
use vsva_vtd_driver::VtdDriver;

use crate::kind::{IommuKind, ProbeError};

/// VT-d: a scalable-mode remapping unit and its driver.
#[derive(Debug, Clone, Copy, Default)]
pub struct VtdKind;

impl IommuKind for VtdKind {
    type Config = VtdConfig;
    type Unit = Vtd;
    type Driver = VtdDriver;

    fn build(
        cfg: VtdConfig,
        mem: Arc<dyn PhysMem>,
        irq: Arc<dyn MsiSink>,
        downstream: Arc<dyn Downstream>,
    ) -> Arc<Vtd> {
        Arc::new(Vtd::with_devices(cfg, mem, irq, downstream))
    }

    fn upstream(unit: &Arc<Vtd>, mem: Arc<dyn PhysMem>) -> Arc<dyn Upstream> {
        Arc::new(VtdPort {
            vtd: unit.clone(),
            mem,
        })
    }

    fn probe(
        unit: &Arc<Vtd>,
        mem: Arc<dyn PhysMem>,
        frames: Arc<FrameAllocator>,
    ) -> Result<Arc<VtdDriver>, ProbeError> {
        let mmio: Arc<dyn Mmio> = unit.clone();
        let driver = VtdDriver::probe(mmio, mem, frames)?;
        driver.enable()?;
        Ok(Arc::new(driver))
    }

    fn counters(unit: &Vtd) -> UnitCounters {
        let s = unit.stats();
        UnitCounters {
            iotlb_invalidations: s.iotlb_invalidations,
            devtlb_invalidations: s.devtlb_invalidations,
        }
    }

    /// A request without PASID to the interrupt range is an interrupt request, which
    /// remapping hardware without interrupt remapping refuses (VT-d 4.1 §3.15, SGN.8).
    const MSI_WINDOW: MsiWindow = MsiWindow::Refused {
        reason: vsva_vtd::spec::fault::FaultReason::InterruptAddress as u8,
    };
}
