//! Flow 2 for a virtual SMMUv3, invalidate: the guest's TLB, ATC and CD-cache invalidations
//! become raw commands in `IOMMU_HWPT_INVALIDATE` on the vIOMMU (Linux
//! `arm_vsmmu_cache_invalidate()` forces the VMID and turns vSIDs into SIDs), issued from
//! inside the guest's command queue so that its CMD_SYNC completes after the host's.

use vsva_iommufd::abi::{Errno, IommuViommuArmSmmuv3Invalidate};
use vsva_pcie::AtsInvalidation;
use vsva_smmuv3::spec::cmd::Command;

use crate::vmm::{Counters, Vmm};

/// Whether the host takes `cmd` through the vIOMMU: the commands Linux converts.
pub(crate) fn relayed(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::TlbiNhAll { .. }
            | Command::TlbiNhAsid { .. }
            | Command::TlbiNhVa { .. }
            | Command::TlbiNhVaa { .. }
            | Command::TlbiNsnhAll
            | Command::AtcInv { .. }
            | Command::CfgiCd { .. }
            | Command::CfgiCdAll { .. }
    )
}

/// The CMD_ATC_INV a guest's unit turned into the ATS invalidation `inv` (IHI 0070 §4.5.1:
/// 4 KiB × 2^Size from Address aligned down; Size 52 or more is everything).
pub(crate) fn atc_inv(inv: &AtsInvalidation) -> Command {
    let size = if inv.len == u64::MAX || inv.len == 0 {
        52
    } else {
        (inv.len
            .next_power_of_two()
            .trailing_zeros()
            .saturating_sub(12) as u8)
            .min(52)
    };
    Command::AtcInv {
        sid: u32::from(inv.sid.raw()),
        ssid: inv.pasid.map(|p| p.raw()),
        global: inv.global,
        size,
        addr: inv.addr,
    }
}

impl Vmm {
    /// Passes the guest's command `cmd` (one [`relayed`]) to the host's vIOMMU; other
    /// commands are not the host's and pass as done.
    ///
    /// # Errors
    /// The host's refusal (`EIO` for a vSID the VM has no vDEVICE for, or a command Linux
    /// does not convert).
    pub(crate) fn invalidate_smmu(&self, cmd: &Command) -> Result<(), Errno> {
        if !relayed(cmd) {
            return Ok(());
        }
        let Some(viommu) = self.smmu().viommu else {
            return Ok(());
        };
        let raw = [IommuViommuArmSmmuv3Invalidate { cmd: cmd.encode() }];
        let (_, result) = self.uapi.viommu_invalidate(viommu, &raw)?;
        result?;
        Counters::bump(&self.counters.invalidations_propagated);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vsva_mem::{Pasid, Rid};

    #[test]
    fn atc_invalidations_go_back_to_their_size_field() {
        let inv = |addr, len, pasid: Option<u32>| AtsInvalidation {
            sid: Rid::from_raw(0x18),
            pasid: pasid.map(|p| Pasid::new(p).unwrap()),
            addr,
            len,
            global: false,
        };
        let size = |c: Command| match c {
            Command::AtcInv { size, .. } => size,
            _ => unreachable!(),
        };
        assert_eq!(size(atc_inv(&inv(0x4000, 4096, Some(3)))), 0);
        assert_eq!(size(atc_inv(&inv(0x20_0000, 0x20_0000, None))), 9);
        assert_eq!(size(atc_inv(&inv(0, u64::MAX, Some(1)))), 52);
        assert!(matches!(
            atc_inv(&inv(0x4000, 4096, Some(3))),
            Command::AtcInv {
                sid: 0x18,
                ssid: Some(3),
                addr: 0x4000,
                global: false,
                ..
            }
        ));
    }
}
