//! What the driver gives iommufd (Linux `arm-smmu-v3-iommufd.c`): `IOMMU_GET_HW_INFO`'s data.

use vsva_iommu::HwInfo;
use vsva_mem::Errno;
use vsva_smmuv3::spec::registers::offset;
use zerocopy::IntoBytes;

use crate::driver::Smmuv3Driver;
use crate::uapi::{HW_INFO_TYPE_ARM_SMMUV3, HW_INFO_TYPE_DEFAULT, IommuHwInfoArmSmmuv3};

/// `arm_smmu_hw_info()`: SMMU_IDR0–5, SMMU_IIDR and SMMU_AIDR read from the unit as they are
/// (Linux reads each with `readl_relaxed()` and masks nothing), `flags` 0 (Linux sets
/// `IOMMU_HW_INFO_ARM_SMMUV3_ERRATA_REPEAT_TLBI_CFGI` only for an erratum the model does not
/// have).
///
/// # Errors
/// `EOPNOTSUPP` for a type other than DEFAULT or ARM_SMMUV3 (the unit has no implementation
/// `hw_info`, such as Tegra241 CMDQV's, to pass it to).
pub(crate) fn hw_info(driver: &Smmuv3Driver, data_type: u32) -> Result<HwInfo, Errno> {
    if data_type != HW_INFO_TYPE_DEFAULT && data_type != HW_INFO_TYPE_ARM_SMMUV3 {
        return Err(Errno::EOPNOTSUPP);
    }
    let read = |off: u64| driver.mmio.read(off, 4) as u32;
    let info = IommuHwInfoArmSmmuv3 {
        flags: 0,
        __reserved: 0,
        idr: [
            offset::IDR0,
            offset::IDR1,
            offset::IDR2,
            offset::IDR3,
            offset::IDR4,
            offset::IDR5,
        ]
        .map(read),
        iidr: read(offset::IIDR),
        aidr: read(offset::AIDR),
    };
    Ok(HwInfo {
        data_type: HW_INFO_TYPE_ARM_SMMUV3,
        data: info.as_bytes().to_vec(),
    })
}
