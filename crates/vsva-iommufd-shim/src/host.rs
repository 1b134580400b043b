//! Which host the shim models: the VT-d one by default, or an Arm SMMUv3 one when
//! `VSVA_SHIM_IOMMU=smmuv3` ([`IOMMU_ENV`]). Both are [`vsva_host::Host`]s; this is the little
//! the shim needs of either, so the rest of the shim names no vendor.
//!
//! On the SMMUv3 host the endpoints' requester IDs are their StreamIDs, the unit is
//! `Smmuv3Config::default()`, and what a program can do through `/dev/iommu` is what the
//! SMMUv3 driver offers (`IOMMU_GET_HW_INFO` type `IOMMU_HW_INFO_TYPE_ARM_SMMUV3`, nest
//! parents and `IOMMU_VIOMMU_TYPE_ARM_SMMUV3` vIOMMUs once the driver has them). The `vtd`
//! options of the configuration file are ignored there.

use std::sync::Arc;

use vsva_demo::{DemoDevice, Endpoint, Progress};
use vsva_host::{Host, Smmuv3Kind, VtdKind};
use vsva_iommu::Iommu;
use vsva_mem::{PhysMem, Rid};

use crate::config::ShimConfig;

/// Environment variable choosing the host's IOMMU: unset, empty or `vtd` for VT-d, `smmuv3`
/// for Arm SMMUv3.
pub const IOMMU_ENV: &str = "VSVA_SHIM_IOMMU";

/// The IOMMU of the modelled host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IommuModel {
    /// Intel VT-d (the default).
    #[default]
    Vtd,
    /// Arm SMMUv3.
    Smmuv3,
}

impl IommuModel {
    /// Parses [`IOMMU_ENV`]'s value.
    ///
    /// # Errors
    /// A message for any other value.
    pub fn parse(value: &str) -> Result<IommuModel, String> {
        match value {
            "" | "vtd" => Ok(IommuModel::Vtd),
            "smmuv3" => Ok(IommuModel::Smmuv3),
            other => Err(format!("{IOMMU_ENV}={other}: expected vtd or smmuv3")),
        }
    }

    /// The model [`IOMMU_ENV`] names (VT-d when it is unset).
    ///
    /// # Errors
    /// A message for a value that names no model.
    pub fn from_env() -> Result<IommuModel, String> {
        match std::env::var(IOMMU_ENV) {
            Ok(value) => Self::parse(&value),
            Err(std::env::VarError::NotPresent) => Ok(IommuModel::Vtd),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(format!("{IOMMU_ENV} is not valid Unicode"))
            }
        }
    }
}

/// The modelled host, of either kind.
pub enum ShimHost {
    /// A VT-d host.
    Vtd(Host<VtdKind>),
    /// An SMMUv3 host.
    Smmuv3(Host<Smmuv3Kind>),
}

impl ShimHost {
    /// Boots the host `model` names on `mem`, of which the first `cfg.ram_bytes()` are RAM.
    ///
    /// # Errors
    /// A message if the driver refuses the unit.
    pub fn build(
        model: IommuModel,
        mem: Arc<dyn PhysMem>,
        cfg: &ShimConfig,
    ) -> Result<ShimHost, String> {
        let ram = cfg.ram_bytes();
        Ok(match model {
            IommuModel::Vtd => ShimHost::Vtd(
                Host::with_memory(mem, ram, cfg.vtd_config()).map_err(|e| e.to_string())?,
            ),
            IommuModel::Smmuv3 => ShimHost::Smmuv3(
                Host::with_memory(mem, ram, vsva_smmuv3::Smmuv3Config::default())
                    .map_err(|e| e.to_string())?,
            ),
        })
    }

    /// Which IOMMU it has.
    pub fn model(&self) -> IommuModel {
        match self {
            ShimHost::Vtd(_) => IommuModel::Vtd,
            ShimHost::Smmuv3(_) => IommuModel::Smmuv3,
        }
    }

    /// The IOMMU core.
    pub fn iommu(&self) -> &Arc<Iommu> {
        match self {
            ShimHost::Vtd(host) => &host.iommu,
            ShimHost::Smmuv3(host) => &host.iommu,
        }
    }

    /// Plugs a demo device with a `pasid_width`-bit PASID capability in at `rid`.
    pub fn add_device_with_width(
        &self,
        rid: Rid,
        pri_capacity: u32,
        atc_entries: usize,
        pasid_width: u8,
    ) -> Arc<DemoDevice> {
        match self {
            ShimHost::Vtd(host) => {
                host.add_device_with_width(rid, pri_capacity, atc_entries, pasid_width)
            }
            ShimHost::Smmuv3(host) => {
                host.add_device_with_width(rid, pri_capacity, atc_entries, pasid_width)
            }
        }
    }

    /// The host's IOMMU interrupt handlers (page requests, then faults); how much work there
    /// was.
    pub fn service(&self) -> usize {
        match self {
            ShimHost::Vtd(host) => host.service(),
            ShimHost::Smmuv3(host) => host.service(),
        }
    }

    /// Runs a device until its command completes, fails or waits for a page.
    pub fn run_device(&self, dev: &dyn Endpoint) -> Progress {
        match self {
            ShimHost::Vtd(host) => host.run_device(dev),
            ShimHost::Smmuv3(host) => host.run_device(dev),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_names_vtd_or_smmuv3() {
        assert_eq!(IommuModel::parse(""), Ok(IommuModel::Vtd));
        assert_eq!(IommuModel::parse("vtd"), Ok(IommuModel::Vtd));
        assert_eq!(IommuModel::parse("smmuv3"), Ok(IommuModel::Smmuv3));
        assert!(IommuModel::parse("SMMUv3").is_err());
        assert!(IommuModel::parse("amd").is_err());
    }

    /// The SMMUv3 machine builds with the default configuration, and a context on it reports
    /// the SMMUv3 driver's `IOMMU_GET_HW_INFO` data: type `IOMMU_HW_INFO_TYPE_ARM_SMMUV3` and
    /// the unit's ID registers.
    #[test]
    fn an_smmuv3_machine_reports_its_idrs() {
        use vsva_iommufd::abi::{HwInfoType, IommuHwInfo, IommuHwInfoArmSmmuv3};
        use vsva_iommufd::{DeviceInfo, Iommufd};

        let cfg = ShimConfig::default();
        let m = crate::shim::Machine::build(&cfg, IommuModel::Smmuv3).unwrap();
        assert_eq!(m.platform.model(), IommuModel::Smmuv3);
        let ictx = Iommufd::new(m.program.clone(), m.platform.iommu().clone());
        let ep = &cfg.endpoints[0];
        let rid = crate::config::parse_rid(&ep.rid).unwrap();
        let caps = vsva_iommu::DeviceCaps {
            pasid_bits: ep.pasid_bits,
            ats: ep.ats,
            pri: ep.pri,
        };
        let dev_id = ictx.bind_device(DeviceInfo::new(rid, caps)).unwrap();
        let mut data = IommuHwInfoArmSmmuv3::default();
        let mut cmd = IommuHwInfo {
            size: size_of::<IommuHwInfo>() as u32,
            dev_id,
            data_len: size_of::<IommuHwInfoArmSmmuv3>() as u32,
            data_uptr: &mut data as *mut IommuHwInfoArmSmmuv3 as u64,
            ..Default::default()
        };
        ictx.get_hw_info(&mut cmd, &crate::program::OwnMemory)
            .unwrap();
        // SAFETY: `data` was written through process_vm_writev; the volatile read makes the
        // compiler load what is in memory now.
        let data = unsafe { std::ptr::read_volatile(&data) };
        assert_eq!(cmd.data_type, HwInfoType::ARM_SMMUV3);
        assert_ne!(data.idr[0], 0, "IDR0 is the unit's");
        // A paging domain of the SMMUv3 driver: an automatic HWPT of an IOAS attaches.
        let mut ioas = vsva_iommufd::abi::IommuIoasAlloc {
            size: 12,
            ..Default::default()
        };
        ictx.ioas_alloc(&mut ioas).unwrap();
        let hwpt = ictx.attach(dev_id, ioas.out_ioas_id, None).unwrap();
        assert_eq!(ictx.get_device(dev_id).unwrap().attached(), vec![(0, hwpt)]);
    }
}
