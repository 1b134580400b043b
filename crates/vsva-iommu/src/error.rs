//! IOMMU-core errors and the errno Linux returns for each.

use std::fmt;
use std::sync::Arc;

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
    /// The IOMMU driver failed (EIO); the driver's own error is kept as the source.
    #[error("IOMMU driver error: {0}")]
    Driver(#[source] DriverFailure),
}

/// A driver's error, kept with its type (reachable through [`std::error::Error::source`] and
/// `downcast_ref`). Two failures are equal when they say the same.
#[derive(Debug, Clone)]
pub struct DriverFailure(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl DriverFailure {
    /// The driver's error.
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self.0.as_ref()
    }
}

impl fmt::Display for DriverFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DriverFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
    }
}

impl PartialEq for DriverFailure {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl Eq for DriverFailure {}

/// A driver failure that is only a sentence (a driver without some capability).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Unsupported(&'static str);

impl IommuError {
    /// The driver failed with `e`.
    pub fn driver(e: impl std::error::Error + Send + Sync + 'static) -> IommuError {
        IommuError::Driver(DriverFailure(Arc::new(e)))
    }

    /// The driver cannot do what was asked: `why`.
    pub fn driver_unsupported(why: &'static str) -> IommuError {
        IommuError::driver(Unsupported(why))
    }
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

#[cfg(test)]
mod tests {
    use std::error::Error;

    use super::*;

    #[derive(Debug, PartialEq, thiserror::Error)]
    #[error("queue timed out at {0:#x}")]
    struct QueueTimeout(u64);

    #[test]
    fn a_driver_failure_keeps_the_drivers_error_and_gives_eio() {
        let e = IommuError::driver(QueueTimeout(0x40));
        assert_eq!(e.errno(), Errno::EIO);
        assert_eq!(e.to_string(), "IOMMU driver error: queue timed out at 0x40");
        let IommuError::Driver(failure) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(
            failure.get().downcast_ref::<QueueTimeout>(),
            Some(&QueueTimeout(0x40))
        );
        assert!(e.source().is_some());
        assert_eq!(e.clone(), IommuError::driver(QueueTimeout(0x40)));
        assert_ne!(e, IommuError::driver(QueueTimeout(0x80)));
    }
}
