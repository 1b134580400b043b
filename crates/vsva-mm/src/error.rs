//! Memory-manager errors and the errno Linux returns for each.

use vsva_mem::{Access, Errno, Va};

/// Errors of memory-manager calls.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MmError {
    /// A bad argument: zero length, misaligned address, wrapping range, huge-page misalignment
    /// (EINVAL).
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    /// No physical memory left (ENOMEM).
    #[error("out of memory")]
    OutOfMemory,
    /// Part of the range is not mapped by any VMA (ENOMEM, as mprotect/madvise report it).
    #[error("{addr} is not mapped")]
    NotMapped {
        /// First unmapped address.
        addr: Va,
    },
    /// No free virtual range of the requested size (ENOMEM).
    #[error("no free virtual range of {len:#x} bytes")]
    NoAddressSpace {
        /// The length asked for.
        len: u64,
    },
    /// A fault on an address no VMA covers (SIGSEGV, SEGV_MAPERR; EFAULT for I/O faults).
    #[error("no mapping at {va}")]
    NoVma {
        /// The faulting address.
        va: Va,
    },
    /// A fault the VMA's protection forbids (SIGSEGV, SEGV_ACCERR; EFAULT for I/O faults).
    #[error("{access:?} access to {va} is not permitted")]
    AccessDenied {
        /// The faulting address.
        va: Va,
        /// What was attempted.
        access: Access,
    },
    /// Charging more locked memory would pass RLIMIT_MEMLOCK (ENOMEM, as Linux's
    /// locked-memory accounting reports it).
    #[error("locked memory limit: {wanted} pages wanted, {locked} locked, limit {limit} pages")]
    MemlockLimit {
        /// Pages the caller tried to charge.
        wanted: u64,
        /// Pages already charged.
        locked: u64,
        /// The limit in pages.
        limit: u64,
    },
    /// The process has exited (ESRCH).
    #[error("the process has exited")]
    Exited,
}

impl MmError {
    /// The errno Linux returns for this case.
    pub fn errno(&self) -> Errno {
        match self {
            MmError::Invalid(_) => Errno::EINVAL,
            MmError::OutOfMemory
            | MmError::NotMapped { .. }
            | MmError::NoAddressSpace { .. }
            | MmError::MemlockLimit { .. } => Errno::ENOMEM,
            MmError::NoVma { .. } | MmError::AccessDenied { .. } => Errno::EFAULT,
            MmError::Exited => Errno::ESRCH,
        }
    }
}

/// The memory manager's errors carry the errno Linux gives for them.
impl From<MmError> for Errno {
    fn from(e: MmError) -> Self {
        e.errno()
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, MmError>;

impl From<vsva_mem::FrameError> for MmError {
    fn from(_: vsva_mem::FrameError) -> Self {
        MmError::OutOfMemory
    }
}

impl From<vsva_pgtable::MapError> for MmError {
    fn from(e: vsva_pgtable::MapError) -> Self {
        match e {
            vsva_pgtable::MapError::Frames(_) => MmError::OutOfMemory,
            vsva_pgtable::MapError::AddressWidth { .. } => {
                MmError::Invalid("address not canonical")
            }
            vsva_pgtable::MapError::Misaligned { .. } => MmError::Invalid("misaligned"),
            vsva_pgtable::MapError::SplitsLeaf { .. } => {
                MmError::Invalid("range splits a huge page")
            }
            _ => MmError::Invalid("page-table update refused"),
        }
    }
}
