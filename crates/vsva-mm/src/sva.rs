//! What an IOMMU needs to share a process's page table (SVA): one small struct, taken while
//! the address space is held ([`crate::LiveSpace::sva`]).
//!
//! On x86 that is the table's root and depth (VT-d's PASID entry: FSPTPTR, FSPM). On Arm64
//! an SMMUv3 context descriptor also copies the CPU's translation controls, as Linux's
//! `arm_smmu_make_sva_cd` does from TCR_EL1 and MAIR_EL1: CD.TTB0 = the root, CD.ASID, T0SZ,
//! TG0, IR0/OR0/SH0, IPS, HA/HD, and CD.MAIR = MAIR_EL1 (SMMUv3 §5.4 "Context Descriptor").

use vsva_pgtable::arm::ArmS1;

use crate::cpu::{CpuArch, CpuPaging, LINUX_MAIR_EL1};

/// A process's page table as an IOMMU's first stage (stage 1) walks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SvaContext {
    /// Physical address of the root table: CR3 (VT-d FSPTPTR) or TTBR0_EL1.BADDR (CD.TTB0).
    pub root: u64,
    /// The format and its configuration, as the CPU walks it.
    pub paging: CpuPaging,
    /// The Arm64 translation controls; `None` on x86.
    pub arm: Option<ArmTcr>,
}

impl SvaContext {
    pub(crate) fn new(root: u64, paging: CpuPaging, asid: u16) -> SvaContext {
        SvaContext {
            root,
            paging,
            arm: paging.arm64_config().map(|s1| ArmTcr::of(&s1, asid)),
        }
    }

    /// The architecture of the table.
    pub fn arch(&self) -> CpuArch {
        self.paging.arch()
    }

    /// Levels of the table (x86 FSPM: 4 or 5; Arm64: 4).
    pub fn levels(&self) -> u8 {
        self.paging.levels()
    }
}

/// The TCR_EL1 (TTBR0 half), TTBR0_EL1.ASID and MAIR_EL1 values the OS runs an Arm64
/// process with (Linux `__cpu_setup` and `arm64_mm_context_get`): what a CD copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArmTcr {
    /// The address space's ASID (TTBR0_EL1.ASID; CD.ASID), 16 bits.
    pub asid: u16,
    /// TCR.T0SZ: 16, a 48-bit VA.
    pub t0sz: u8,
    /// TCR.TG0 encoding: 0b00, the 4 KiB granule.
    pub tg0: u8,
    /// TCR.IPS encoding of the PA size (0b101: 48 bits).
    pub ips: u8,
    /// TCR.IRGN0: 0b01, Normal Inner Write-Back Read-Allocate Write-Allocate (Linux
    /// `TCR_IRGN_WBWA`).
    pub irgn0: u8,
    /// TCR.ORGN0: 0b01, Outer Write-Back Read-Allocate Write-Allocate (`TCR_ORGN_WBWA`).
    pub orgn0: u8,
    /// TCR.SH0: 0b11, Inner Shareable (`TCR_SHARED`).
    pub sh0: u8,
    /// TCR.HA: hardware Access-flag management.
    pub ha: bool,
    /// TCR.HD: hardware dirty-state management (DBM).
    pub hd: bool,
    /// MAIR_EL1 ([`LINUX_MAIR_EL1`]); user pages use AttrIndx 0.
    pub mair: u64,
}

impl ArmTcr {
    fn of(s1: &ArmS1, asid: u16) -> ArmTcr {
        let ips = match s1.pa_bits {
            ..=32 => 0b000,
            33..=36 => 0b001,
            37..=40 => 0b010,
            41..=42 => 0b011,
            43..=44 => 0b100,
            _ => 0b101,
        };
        ArmTcr {
            asid,
            t0sz: s1.tsz,
            tg0: 0b00,
            ips,
            irgn0: 0b01,
            orgn0: 0b01,
            sh0: 0b11,
            ha: s1.ha,
            hd: s1.ha && s1.hd,
            mair: LINUX_MAIR_EL1,
        }
    }
}
