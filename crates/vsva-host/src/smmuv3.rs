//! Arm SMMUv3 as an [`IommuKind`]: the vsva-smmuv3 model driven by vsva-smmuv3-driver.
//!
//! What a machine of this kind can and cannot do yet:
//! * the driver probes and resets the unit, and paging and identity domains, ATS
//!   invalidations, stall and PRI page requests work as on any kind;
//! * platform masters with `dma-can-stall` plug in through [`IommuKind::platform_port`]
//!   (the demo's [`vsva_demo::PlatformDevice`]): their I/O page faults are stalls, resumed
//!   with CMD_RESUME;
//! * the machine is an Arm64 one ([`IommuKind::CPU`]): processes have VMSAv8-64 page tables,
//!   which an SVA bind shares through a CD's TTB0;
//! * an SMMU has no interrupt window: MSIs are ordinary writes, translated like any other,
//!   and Linux keeps a software MSI window ([`vsva_smmuv3_driver::MSI_IOVA`], the driver's
//!   `reserved_regions`) out of every DMA domain instead — what [`Smmuv3Kind::MSI_WINDOW`]
//!   tells the demo, which checks it is reported for each device;
//! * a guest OS boots the same way on a virtual unit: a VMM builds it with
//!   [`IommuKind::build`] over guest RAM (its Downstream the VMM, which receives the guest's
//!   CMD_ATC_INV and CMD_PRI_RESP), gives it a [`vsva_smmuv3::VirtualBackend`] with
//!   [`Smmuv3::set_backend`], and boots [`crate::Os`] on it (tests/virtual_smmuv3.rs).

use std::sync::Arc;
use vsva_demo::{MsiWindow, UnitCounters};
use vsva_mem::{FrameAllocator, PhysMem, Rid};
use vsva_mm::CpuArch;
use vsva_pcie::PlatformUpstream;
use vsva_pcie::{Downstream, Mmio, MsiSink, Upstream};
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

    /// An SMMUv3 sits in an Arm64 machine: processes have VMSAv8-64 tables, which a CD's
    /// TTB0 shares (SVA).
    const CPU: CpuArch = CpuArch::Arm64;

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

    /// The SMMU's port for a platform master: the driver records `dma-can-stall` for its
    /// StreamID first (its STE keeps S1STALLD clear, its CDs get S = 1); `None` on an SMMU
    /// whose IDR0.STALL_MODEL says it cannot stall.
    fn platform_port(
        unit: &Arc<Smmuv3>,
        driver: &Smmuv3Driver,
        mem: Arc<dyn PhysMem>,
        stream: Rid,
    ) -> Option<Arc<dyn PlatformUpstream>> {
        driver.set_dma_can_stall(stream).then(|| {
            Arc::new(Smmuv3Port {
                smmu: unit.clone(),
                mem,
            }) as Arc<dyn PlatformUpstream>
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

    /// The software MSI window: see the module doc.
    const MSI_WINDOW: MsiWindow = MsiWindow::Reserved {
        window: vsva_smmuv3_driver::MSI_IOVA,
    };
}

#[cfg(test)]
mod tests {
    use vsva_iommu::IommuOps;
    use vsva_mem::Rid;

    use super::*;
    use crate::Host;

    #[test]
    fn the_demo_program_on_an_smmuv3_host() {
        let host = Host::<Smmuv3Kind>::new(64 << 30, Smmuv3Config::default()).unwrap();
        let report = vsva_demo::run_program(&host).unwrap();
        for c in &report.checks {
            eprintln!(
                "{} {}: {}",
                if c.passed { "PASS" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        eprintln!("{:?}", report.counters);
        assert!(report.checks.iter().all(|c| c.passed));
    }

    #[test]
    fn the_platform_device_checks_on_an_smmuv3_host() {
        let host = Host::<Smmuv3Kind>::new(64 << 30, Smmuv3Config::default()).unwrap();
        let vsva_demo::PlatformRun::Ran(report) = vsva_demo::run_platform(&host).unwrap() else {
            panic!("an SMMUv3 host takes a platform device with stall");
        };
        for c in &report.checks {
            eprintln!(
                "{} {}: {}",
                if c.passed { "PASS" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        eprintln!("{:?} {:?}", report.counters, host.driver.stall_stats());
        assert!(report.checks.iter().all(|c| c.passed));
        let s = host.driver.stall_stats();
        assert!(s.stall_events > 0);
        assert_eq!(s.stall_events, s.resumes);
    }

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
