//! Arm SMMUv3 as an [`IommuKind`]: the vsva-smmuv3 model driven by vsva-smmuv3-driver.
//!
//! What a machine of this kind can and cannot do yet:
//! * the driver probes and resets the unit, and paging and identity domains, ATS
//!   invalidations, stall and PRI page requests work as on any kind;
//! * SVA needs the process's page table in the Arm VMSAv8-64 format, but [`crate::Os`] boots
//!   the memory manager with x86-64 paging (vsva-mm has no Arm64 processes yet), so an SVA
//!   bind on this kind points a CD at a table the SMMU cannot walk;
//! * the demo's interrupt-window check is VT-d's: there, a request without PASID to
//!   0xFEE0_0000 is an interrupt request the unit refuses. An SMMU has no interrupt window —
//!   MSIs are ordinary writes, translated like any other, and Linux keeps a software MSI
//!   window ([`vsva_smmuv3_driver::MSI_IOVA`], the driver's `reserved_regions`) out of every
//!   paging domain instead. The closest event is F_TRANSLATION (an access to an IOVA no
//!   domain maps), which is what [`Smmuv3Kind::INTERRUPT_FAULT_REASON`] names; with the RID
//!   in an identity domain (bypass STE) such a DMA is not refused at all.

use std::sync::Arc;
use vsva_pcie::Mmio;

use vsva_demo::UnitCounters;
use vsva_mem::{FrameAllocator, PhysMem};
use vsva_pcie::{Downstream, MsiSink, Upstream};
use vsva_smmuv3::{Smmuv3, Smmuv3Config, Smmuv3Port};
use vsva_smmuv3_driver::{ProbeOptions, Smmuv3Driver, SyncPoll};

use crate::kind::{IommuKind, ProbeError};

/// SMMUv3: the unit and its driver.
#[derive(Debug, Clone, Copy, Default)]
pub struct Smmuv3Kind;

impl IommuKind for Smmuv3Kind {
    type Config = Smmuv3Config;
    type Unit = Smmuv3;
    type Driver = Smmuv3Driver;

    fn build(
        cfg: Smmuv3Config,
        mem: Arc<dyn PhysMem>,
        irq: Arc<dyn MsiSink>,
        downstream: Arc<dyn Downstream>,
    ) -> Arc<Smmuv3> {
        Arc::new(Smmuv3::new(cfg, mem, irq).with_devices(downstream))
    }

    fn upstream(unit: &Arc<Smmuv3>, mem: Arc<dyn PhysMem>) -> Arc<dyn Upstream> {
        Arc::new(Smmuv3Port {
            smmu: unit.clone(),
            mem,
        })
    }

    fn probe(
        unit: &Arc<Smmuv3>,
        mem: Arc<dyn PhysMem>,
        frames: Arc<FrameAllocator>,
    ) -> Result<Arc<Smmuv3Driver>, ProbeError> {
        let mmio: Arc<dyn Mmio> = unit.clone();
        // The host's interrupt sink records MSIs rather than writing them to memory, so
        // CMD_SYNC completion is polled on CMDQ_CONS (CS = SEV), not on the MSI.
        let options = ProbeOptions {
            sync: Some(SyncPoll::Consumption),
            ..ProbeOptions::default()
        };
        let driver = Smmuv3Driver::probe(mmio, mem, frames, options)?;
        driver.reset()?;
        Ok(Arc::new(driver))
    }

    /// `iotlb_invalidations` counts TLB entries CMD_TLBI_* dropped (the model counts no TLBI
    /// commands as such); `devtlb_invalidations` the ATS Invalidate Requests sent.
    fn counters(unit: &Smmuv3) -> UnitCounters {
        let s = unit.stats();
        UnitCounters {
            iotlb_invalidations: s.tlb.invalidated,
            devtlb_invalidations: s.atc_invalidations,
        }
    }

    /// F_TRANSLATION (IHI 0070 §7.3.12): see the module doc.
    const INTERRUPT_FAULT_REASON: u8 = vsva_smmuv3::spec::event::id::F_TRANSLATION;
}

#[cfg(test)]
mod tests {
    use vsva_iommu::IommuOps;
    use vsva_mem::Rid;

    use super::*;
    use crate::Host;

    #[test]
    fn a_host_boots_with_an_smmuv3_and_its_driver() {
        let host = Host::<Smmuv3Kind>::new(1 << 30, Smmuv3Config::default()).unwrap();
        assert_eq!(host.driver.pasid_bits(), 20);
        let dev = host.add_device(Rid::from_raw(0x10), 16, 8);
        let _ = dev;
        assert_eq!(
            host.driver.reserved_regions(Rid::from_raw(0x10)),
            vec![vsva_smmuv3_driver::MSI_IOVA]
        );
        assert_eq!(Smmuv3Kind::counters(&host.unit).devtlb_invalidations, 0);
    }
}
