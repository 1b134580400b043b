//! The OS of a machine as the demo needs it: an IOMMU driver, the IOMMU core on it, and the
//! memory manager, whose process page tables are in the format of the machine's CPUs
//! ([`IommuKind::CPU`]). A host boots one over host memory; a guest of `vsva-vmm` boots the same
//! over guest-physical memory and its vIOMMU.

use std::sync::Arc;

use vsva_demo::INTERRUPT_WINDOW;
use vsva_iommu::Iommu;
use vsva_mem::{FrameAllocator, PhysMem};
use vsva_mm::{CpuArch, CpuPaging, MemoryManager};
use vsva_pgtable::arm::ArmS1;
use vsva_pgtable::x86::X86Paging;

use crate::host::PlatformError;
use crate::kind::IommuKind;

const MIB: u64 = 1 << 20;

/// A booted OS on a unit of kind `K`.
pub struct Os<K: IommuKind> {
    /// The IOMMU driver.
    pub driver: Arc<K::Driver>,
    /// The IOMMU core.
    pub iommu: Arc<Iommu>,
    /// The memory manager.
    pub mm: Arc<MemoryManager>,
}

impl<K: IommuKind> Os<K> {
    /// Boots on `mem` (of which `[0, ram)` is RAM) with `unit`: the driver's structures in
    /// [1 MiB, 256 MiB), processes' frames in the rest of RAM except the interrupt window;
    /// the driver probes and enables the unit.
    ///
    /// # Errors
    /// [`PlatformError::Driver`] if the driver refuses the unit.
    pub fn boot(
        mem: Arc<dyn PhysMem>,
        unit: &Arc<K::Unit>,
        ram: u64,
    ) -> Result<Self, PlatformError> {
        Self::boot_with_holes(mem, unit, ram, &[])
    }

    /// [`boot`](Self::boot) on a machine whose firmware says `holes` (`[start, end)`) of
    /// `[0, ram)` are not RAM: nothing is allocated there (a guest's physical map, where the
    /// VMM could not make those addresses reachable by DMA — the host's reserved regions).
    ///
    /// # Errors
    /// As [`boot`](Self::boot).
    pub fn boot_with_holes(
        mem: Arc<dyn PhysMem>,
        unit: &Arc<K::Unit>,
        ram: u64,
        holes: &[(u64, u64)],
    ) -> Result<Self, PlatformError> {
        let driver_frames = Arc::new(FrameAllocator::with_holes(
            mem.clone(),
            MIB,
            256 * MIB,
            holes,
        ));
        let driver = K::probe(unit, mem.clone(), driver_frames).map_err(PlatformError::Driver)?;
        let iommu = Iommu::new(driver.clone());
        let mut process_holes = holes.to_vec();
        process_holes.push(INTERRUPT_WINDOW);
        let frames = Arc::new(FrameAllocator::with_holes(
            mem,
            256 * MIB,
            ram,
            &process_holes,
        ));
        let mm = MemoryManager::with_paging(frames, Self::cpu_paging());
        Ok(Os { driver, iommu, mm })
    }

    /// The format of process page tables on this machine: [`IommuKind::CPU`]'s, configured
    /// as Linux configures it.
    pub fn cpu_paging() -> CpuPaging {
        cpu_paging(K::CPU)
    }
}

/// The process page-table format an OS uses on CPUs of `arch`, as Linux sets it up: x86-64
/// 4-level paging with NXE, SMEP, SMAP and 1 GiB pages; Arm64 48-bit VA with 4 KiB pages,
/// 48-bit PA and hardware AF and dirty state (FEAT_HAFDBS).
pub(crate) fn cpu_paging(arch: CpuArch) -> CpuPaging {
    match arch {
        CpuArch::X86_64 => CpuPaging::X86_64(X86Paging::default()),
        CpuArch::Arm64 => CpuPaging::arm64(ArmS1::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VtdKind;

    #[test]
    fn vtd_hosts_run_x86_processes_and_arm_machines_arm64_ones() {
        assert_eq!(VtdKind::CPU, CpuArch::X86_64);
        assert_eq!(Os::<VtdKind>::cpu_paging().arch(), CpuArch::X86_64);
        let x86 = cpu_paging(CpuArch::X86_64);
        assert_eq!(x86, CpuPaging::X86_64(X86Paging::default()));
        let arm = cpu_paging(CpuArch::Arm64).arm64_config().unwrap();
        assert_eq!((arm.tsz, arm.upper, arm.pa_bits), (16, false, 48));
        assert!(arm.ha && arm.hd && arm.non_global);
    }
}
