//! IOMMU-core errors and the errno Linux returns for each.

use vsva_mem::{Errno, Pasid, Rid};

/// Errors of the IOMMU core.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IommuError {
    /// The device is not known to the IOMMU (ENODEV).
    #[error("device {0} is not attached to this IOMMU")]
    NoDevice(Rid),
    /// The device is already known (EEXIST).
    #[error("device {0} is already attached")]
    DeviceExists(Rid),
    /// The device cannot do what was asked (no PASID, ATS or PRI support) (EOPNOTSUPP).
    #[error("device {dev} does not support {what}")]
    DeviceUnsupported {
        /// The device.
        dev: Rid,
        /// The missing feature.
        what: &'static str,
    },
    /// The address space's PASID does not fit the device's PASID width (EOVERFLOW).
    #[error("PASID {pasid} does not fit device {dev}'s width")]
    PasidOverflow {
        /// The device.
        dev: Rid,
        /// The PASID.
        pasid: Pasid,
    },
    /// No PASID left (ENOSPC).
    #[error("no free PASID")]
    NoPasid,
    /// No free domain ID (ENOSPC).
    #[error("no free domain ID")]
    NoDomainId,
    /// The PASID of this device is bound to another address space or domain (EBUSY).
    #[error("PASID {pasid} of device {dev} is in use")]
    PasidBusy {
        /// The device.
        dev: Rid,
        /// The PASID.
        pasid: Pasid,
    },
    /// The process has exited (ESRCH).
    #[error("the address space is gone")]
    NoAddressSpace,
    /// No such binding (ENOENT).
    #[error("no such binding")]
    NotBound,
    /// A bad argument (EINVAL).
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    /// Part of the range is already mapped (EEXIST).
    #[error("already mapped")]
    Mapped,
    /// Out of memory (ENOMEM).
    #[error("out of memory")]
    NoMemory,
    /// The IOMMU driver failed (EIO).
    #[error("IOMMU driver error: {0}")]
    Driver(String),
}

impl IommuError {
    /// The errno Linux returns for this case.
    pub fn errno(&self) -> Errno {
        match self {
            IommuError::NoDevice(_) => Errno::ENODEV,
            IommuError::DeviceExists(_) | IommuError::Mapped => Errno::EEXIST,
            IommuError::DeviceUnsupported { .. } => Errno::EOPNOTSUPP,
            IommuError::PasidOverflow { .. } => Errno::EOVERFLOW,
            IommuError::NoPasid | IommuError::NoDomainId => Errno::ENOSPC,
            IommuError::PasidBusy { .. } => Errno::EBUSY,
            IommuError::NoAddressSpace => Errno::ESRCH,
            IommuError::NotBound => Errno::ENOENT,
            IommuError::Invalid(_) => Errno::EINVAL,
            IommuError::NoMemory => Errno::ENOMEM,
            IommuError::Driver(_) => Errno::EIO,
        }
    }
}

/// The IOMMU core's errors carry the errno Linux gives for them.
impl From<IommuError> for Errno {
    fn from(e: IommuError) -> Self {
        e.errno()
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, IommuError>;
