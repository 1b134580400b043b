//! The VT-d driver's side of iommufd: hardware information, nested domains and their
//! first-stage invalidation from user data (Linux `intel_iommu_hw_info()`,
//! `drivers/iommu/intel/nested.c`: `intel_iommu_domain_alloc_nested()`,
//! `intel_nested_cache_invalidate_user()`).

use vsva_iommu::{HwInfo, InvalidateOutcome, NestedDomain, NestedS1, UserData, UserDataArray};
use vsva_mem::Errno;
use zerocopy::{FromZeros, IntoBytes};

use crate::driver::VtdDriver;
use crate::uapi::{
    HW_INFO_TYPE_DEFAULT, HW_INFO_TYPE_INTEL_VTD, HWPT_DATA_VTD_S1, HWPT_INVALIDATE_DATA_VTD_S1,
    HwInfoVtdFlags, IommuHwInfoVtd, IommuHwptVtdS1, IommuHwptVtdS1Invalidate,
    VTD_S1_INVALIDATE_MIN_LEN, VTD_S1_MIN_LEN, VtdInvalidateFlags, VtdS1Flags,
};

/// The capabilities a first stage is checked against (CAP.FS5LP, ECAP.SRS, ECAP.EAFS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct S1Caps {
    /// CAP_REG.FS5LP: 5-level first stages (Linux `cap_fl5lp_support`).
    pub fs5lp: bool,
    /// ECAP_REG.SRS: supervisor requests (Linux `ecap_srs`).
    pub srs: bool,
    /// ECAP_REG.EAFS: extended accessed flag (Linux `ecap_eafs`).
    pub eafs: bool,
}

/// `intel_iommu_hw_info()`: CAP_REG and ECAP_REG, with `IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17`
/// always set, as Linux sets it.
///
/// # Errors
/// `EOPNOTSUPP` for a type other than DEFAULT or INTEL_VTD.
pub(crate) fn hw_info(driver: &VtdDriver, data_type: u32) -> Result<HwInfo, Errno> {
    if data_type != HW_INFO_TYPE_DEFAULT && data_type != HW_INFO_TYPE_INTEL_VTD {
        return Err(Errno::EOPNOTSUPP);
    }
    let vtd = IommuHwInfoVtd {
        flags: HwInfoVtdFlags::ERRATA_772415_SPR17.bits(),
        __reserved: 0,
        cap_reg: driver.cap().into_bits(),
        ecap_reg: driver.ecap().into_bits(),
    };
    Ok(HwInfo {
        data_type: HW_INFO_TYPE_INTEL_VTD,
        data: vtd.as_bytes().to_vec(),
    })
}

/// `intel_iommu_domain_alloc_nested()`: `EOPNOTSUPP` without nested translation (ECAP.NEST)
/// or for a data type other than VTD_S1; the data's copy errors (`EINVAL` below 24 bytes,
/// `E2BIG`, `EFAULT`); then [`vtd_s1`].
pub(crate) fn alloc_domain_nested(
    driver: &VtdDriver,
    data: &dyn UserData,
) -> Result<NestedS1, Errno> {
    if !driver.ecap().nest() {
        return Err(Errno::EOPNOTSUPP);
    }
    if data.data_type() != HWPT_DATA_VTD_S1 {
        return Err(Errno::EOPNOTSUPP);
    }
    let mut s1 = IommuHwptVtdS1::new_zeroed();
    data.copy_struct(s1.as_mut_bytes(), VTD_S1_MIN_LEN)?;
    let caps = S1Caps {
        fs5lp: driver.cap().fs5lp(),
        srs: driver.ecap().srs(),
        eafs: driver.ecap().eafs(),
    };
    vtd_s1(caps, &s1)
}

/// `struct iommu_hwpt_vtd_s1` to the IOMMU core's first stage, with the checks Linux makes when
/// the nested domain is first attached (`intel_pasid_setup_nested()`), which vsva makes at
/// allocation because the core needs the depth to build the domain:
/// * `addr_width` 48 is 4 levels, 57 is 5 levels if CAP.FS5LP, anything else `EINVAL`;
/// * `SRE` without ECAP.SRS, or `EAFE` without ECAP.EAFS, is `EINVAL`.
///
/// vsva is stricter than Linux, which ignores them: flag bits the header does not define and
/// a non-zero `__reserved` are `EOPNOTSUPP`, and so are `EAFE` and `WPE`, which the core's
/// first stage cannot express yet.
pub(crate) fn vtd_s1(caps: S1Caps, data: &IommuHwptVtdS1) -> Result<NestedS1, Errno> {
    let flags = VtdS1Flags::from_bits(data.flags).ok_or(Errno::EOPNOTSUPP)?;
    if data.__reserved != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let levels = match data.addr_width {
        48 => 4,
        57 if caps.fs5lp => 5,
        _ => return Err(Errno::EINVAL),
    };
    if flags.contains(VtdS1Flags::SRE) && !caps.srs {
        return Err(Errno::EINVAL);
    }
    if flags.contains(VtdS1Flags::EAFE) && !caps.eafs {
        return Err(Errno::EINVAL);
    }
    if flags.intersects(VtdS1Flags::EAFE | VtdS1Flags::WPE) {
        return Err(Errno::EOPNOTSUPP);
    }
    Ok(NestedS1::Table {
        root: data.pgtbl_addr,
        levels,
        supervisor: flags.contains(VtdS1Flags::SRE),
    })
}

/// `intel_nested_cache_invalidate_user()`: `EINVAL` for a data type other than VTD_S1; per
/// entry, its copy errors (`EINVAL` below 24 bytes, `E2BIG`, `EFAULT`), `EOPNOTSUPP` for
/// unknown flags or a non-zero `__reserved`, `EINVAL` for an `addr` not 4 KiB aligned or
/// `npages` `u64::MAX` with a non-zero `addr`. Processing stops at the first bad entry; the
/// count of those handled comes back either way.
///
/// Each entry invalidates `npages` 4 KiB pages from `addr` in the IOTLB and every attached
/// device's TLB ([`NestedDomain::invalidate`]); a range that would run past the top of the
/// address space is everything. `LEAF` is accepted and ignored: invalidating the
/// paging-structure caches too is always correct. `npages` 0 invalidates nothing.
pub(crate) fn cache_invalidate_user(
    domain: &NestedDomain,
    entries: &dyn UserDataArray,
) -> InvalidateOutcome {
    let mut consumed = 0;
    let result = invalidate_entries(domain, entries, &mut consumed);
    InvalidateOutcome { consumed, result }
}

fn invalidate_entries(
    domain: &NestedDomain,
    entries: &dyn UserDataArray,
    consumed: &mut u32,
) -> Result<(), Errno> {
    if entries.data_type() != HWPT_INVALIDATE_DATA_VTD_S1 {
        return Err(Errno::EINVAL);
    }
    for index in 0..entries.entry_num() {
        let mut entry = IommuHwptVtdS1Invalidate::new_zeroed();
        entries.copy_entry(index, entry.as_mut_bytes(), VTD_S1_INVALIDATE_MIN_LEN)?;
        let range = entry_range(&entry)?;
        if let Some((addr, len)) = range {
            domain.invalidate(addr, len);
        }
        *consumed += 1;
    }
    Ok(())
}

/// The `[addr, addr + len)` an entry invalidates (`None` for `npages` 0), after its checks.
fn entry_range(entry: &IommuHwptVtdS1Invalidate) -> Result<Option<(u64, u64)>, Errno> {
    VtdInvalidateFlags::from_bits(entry.flags).ok_or(Errno::EOPNOTSUPP)?;
    if entry.__reserved != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    if entry.addr % 4096 != 0 || (entry.npages == u64::MAX && entry.addr != 0) {
        return Err(Errno::EINVAL);
    }
    if entry.npages == 0 {
        return Ok(None);
    }
    let len = entry
        .npages
        .checked_mul(4096)
        .filter(|&len| entry.addr.checked_add(len).is_some());
    Ok(Some(match len {
        Some(len) => (entry.addr, len),
        None => (0, u64::MAX),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: S1Caps = S1Caps {
        fs5lp: true,
        srs: true,
        eafs: true,
    };

    fn s1(flags: u64, addr_width: u32) -> IommuHwptVtdS1 {
        IommuHwptVtdS1 {
            flags,
            pgtbl_addr: 0x1000,
            addr_width,
            __reserved: 0,
        }
    }

    #[test]
    fn vtd_s1_widths_and_flags() {
        let table = |root, levels, supervisor| NestedS1::Table {
            root,
            levels,
            supervisor,
        };
        assert_eq!(vtd_s1(CAPS, &s1(0, 48)), Ok(table(0x1000, 4, false)));
        assert_eq!(vtd_s1(CAPS, &s1(1, 57)), Ok(table(0x1000, 5, true)));
        for width in [0, 39, 47, 56, 64] {
            assert_eq!(vtd_s1(CAPS, &s1(0, width)), Err(Errno::EINVAL), "{width}");
        }
        let no5 = S1Caps {
            fs5lp: false,
            ..CAPS
        };
        assert_eq!(vtd_s1(no5, &s1(0, 57)), Err(Errno::EINVAL));
        let no_srs = S1Caps {
            srs: false,
            eafs: false,
            ..CAPS
        };
        assert_eq!(vtd_s1(no_srs, &s1(1, 48)), Err(Errno::EINVAL));
        assert_eq!(vtd_s1(no_srs, &s1(2, 48)), Err(Errno::EINVAL), "no EAFS");
        assert_eq!(vtd_s1(CAPS, &s1(2, 48)), Err(Errno::EOPNOTSUPP), "EAFE");
        assert_eq!(vtd_s1(CAPS, &s1(4, 48)), Err(Errno::EOPNOTSUPP), "WPE");
        assert_eq!(vtd_s1(CAPS, &s1(8, 48)), Err(Errno::EOPNOTSUPP), "unknown");
        let mut reserved = s1(0, 48);
        reserved.__reserved = 1;
        assert_eq!(vtd_s1(CAPS, &reserved), Err(Errno::EOPNOTSUPP));
    }

    #[test]
    fn invalidation_entries_are_checked_and_clamped() {
        let entry = |addr, npages, flags| IommuHwptVtdS1Invalidate {
            addr,
            npages,
            flags,
            __reserved: 0,
        };
        assert_eq!(
            entry_range(&entry(0x4000, 2, 1)),
            Ok(Some((0x4000, 0x2000)))
        );
        assert_eq!(entry_range(&entry(0x4000, 0, 0)), Ok(None));
        assert_eq!(entry_range(&entry(0, u64::MAX, 0)), Ok(Some((0, u64::MAX))));
        assert_eq!(entry_range(&entry(0x1000, u64::MAX, 0)), Err(Errno::EINVAL));
        assert_eq!(entry_range(&entry(0x1001, 1, 0)), Err(Errno::EINVAL));
        assert_eq!(entry_range(&entry(0, 1, 2)), Err(Errno::EOPNOTSUPP));
        let past_the_top = entry(u64::MAX - 0xfff, 2, 0);
        assert_eq!(entry_range(&past_the_top), Ok(Some((0, u64::MAX))));
        let mut reserved = entry(0, 1, 0);
        reserved.__reserved = 1;
        assert_eq!(entry_range(&reserved), Err(Errno::EOPNOTSUPP));
    }
}
