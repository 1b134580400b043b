//! The bits of the VT-d Capability and Extended Capability registers that iommufd's answers
//! depend on, read the way Linux's Intel driver reads them (`drivers/iommu/intel/iommu.h`:
//! `cap_fl5lp_support`, `ecap_nest`, `ecap_srs`, `ecap_eafs`, `ecap_dev_iotlb_support`,
//! `ecap_slads`). Bit positions are those of the VT-d specification 4.1, §11.4.2 (CAP_REG)
//! and §11.4.3 (ECAP_REG).
//!
//! iommufd sees the unit only through [`vsva_iommu::HwInfo`], the register values the driver
//! reports for `IOMMU_GET_HW_INFO`; an IOMMU whose driver reports none is not VT-d.

use vsva_iommu::{HwInfo, Iommu};

/// CAP_REG.FS5LP, bit 60: first-stage 5-level paging (Linux `cap_fl5lp_support`).
const CAP_FS5LP: u32 = 60;
/// ECAP_REG.DT, bit 2: device-TLB (ATS) support (Linux `ecap_dev_iotlb_support`).
const ECAP_DT: u32 = 2;
/// ECAP_REG.NEST, bit 26: nested translation (Linux `ecap_nest`).
const ECAP_NEST: u32 = 26;
/// ECAP_REG.SRS, bit 31: supervisor requests (Linux `ecap_srs`).
const ECAP_SRS: u32 = 31;
/// ECAP_REG.EAFS, bit 34: extended accessed flag (Linux `ecap_eafs`).
const ECAP_EAFS: u32 = 34;

/// A VT-d unit's CAP_REG and ECAP_REG.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VtdRegs {
    /// CAP_REG.
    pub cap: u64,
    /// ECAP_REG.
    pub ecap: u64,
}

impl VtdRegs {
    /// The registers of `iommu`, if its driver is VT-d.
    pub fn of(iommu: &Iommu) -> Option<VtdRegs> {
        match iommu.ops().hw_info() {
            HwInfo::Vtd { cap, ecap } => Some(VtdRegs { cap, ecap }),
            HwInfo::None => None,
        }
    }

    fn cap_bit(&self, bit: u32) -> bool {
        self.cap >> bit & 1 == 1
    }

    fn ecap_bit(&self, bit: u32) -> bool {
        self.ecap >> bit & 1 == 1
    }

    /// First-stage tables may have 5 levels (57-bit input addresses).
    pub fn fs5lp(&self) -> bool {
        self.cap_bit(CAP_FS5LP)
    }

    /// Device TLBs (ATS) can be invalidated: Linux enables ATS only then.
    pub fn dev_iotlb(&self) -> bool {
        self.ecap_bit(ECAP_DT)
    }

    /// Nested translation: paging domains may be nesting parents (Linux `nested_supported`,
    /// which also needs scalable mode — vsva's unit is always in scalable mode).
    pub fn nest(&self) -> bool {
        self.ecap_bit(ECAP_NEST)
    }

    /// Supervisor requests: a first stage may set SRE.
    pub fn srs(&self) -> bool {
        self.ecap_bit(ECAP_SRS)
    }

    /// Extended accessed flag: a first stage may set EAFE.
    pub fn eafs(&self) -> bool {
        self.ecap_bit(ECAP_EAFS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_the_specs() {
        let regs = VtdRegs {
            cap: 1 << 60,
            ecap: 1 << 2 | 1 << 26 | 1 << 31 | 1 << 34,
        };
        assert!(regs.fs5lp() && regs.dev_iotlb() && regs.nest() && regs.srs() && regs.eafs());
        let none = VtdRegs {
            cap: !(1 << 60),
            ecap: !(1 << 2 | 1 << 26 | 1 << 31 | 1 << 34),
        };
        assert!(!none.fs5lp() && !none.dev_iotlb() && !none.nest() && !none.srs());
        assert!(!none.eafs());
    }
}
