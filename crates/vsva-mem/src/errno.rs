//! Linux error numbers: the one type every layer reports them in (the memory manager, the
//! IOMMU core, iommufd and the other uAPI front ends).
//!
//! Values are those of `include/uapi/asm-generic/errno-base.h` and `errno.h`, which x86-64 and
//! arm64 share. An ioctl returns the negated value; [`Errno::ioctl_return`] gives it.

use core::fmt;

/// A Linux errno (positive). The object model maps each failure to the errno Linux returns for
/// the same case, so a program sees the same error on vsva as on a real kernel.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, thiserror::Error)]
#[error("{} (errno {})", errno_name(*.0).unwrap_or("unknown error"), .0)]
pub struct Errno(pub i32);

impl Errno {
    /// Operation not permitted (e.g. `IOMMU_OPTION_RLIMIT_MODE` set without privilege).
    pub const EPERM: Self = Self(1);
    /// No such object ID or IOVA.
    pub const ENOENT: Self = Self(2);
    /// Interrupted by a signal.
    pub const EINTR: Self = Self(4);
    /// I/O error; drivers return it for illegal guest data (e.g. an SMMUv3 STE or command).
    pub const EIO: Self = Self(5);
    /// No such device or address (e.g. an mmap offset iommufd never handed out).
    pub const ENXIO: Self = Self(6);
    /// The user struct has non-zero bytes past the end of the kernel's struct.
    pub const E2BIG: Self = Self(7);
    /// Bad file descriptor.
    pub const EBADF: Self = Self(9);
    /// Try again (nothing to read on a non-blocking queue).
    pub const EAGAIN: Self = Self(11);
    /// Permission denied (e.g. a PASID another owner allocated, `ioasid_find()`).
    pub const EACCES: Self = Self(13);
    /// Out of memory.
    pub const ENOMEM: Self = Self(12);
    /// A user pointer (or the user buffer itself) cannot be accessed.
    pub const EFAULT: Self = Self(14);
    /// The object is still in use.
    pub const EBUSY: Self = Self(16);
    /// The object (or a mapping, or a vDEVICE for this device) already exists.
    pub const EEXIST: Self = Self(17);
    /// No such device (e.g. no VFIO compatibility IOAS set).
    pub const ENODEV: Self = Self(19);
    /// The request was understood but a field is wrong.
    pub const EINVAL: Self = Self(22);
    /// Too many open files: no file descriptor is free for a new fault queue.
    pub const EMFILE: Self = Self(24);
    /// The ioctl number is not supported at all. (Linux's internal `ENOIOCTLCMD`, returned by
    /// `main.c` when a slot's number does not match, reaches user space as this.)
    pub const ENOTTY: Self = Self(25);
    /// No space left (IOVA space exhausted).
    pub const ENOSPC: Self = Self(28);
    /// Illegal seek: reading or writing a fault queue at a non-zero offset or with a count
    /// that is not a whole number of records.
    pub const ESPIPE: Self = Self(29);
    /// A value is out of range (e.g. a HW queue length that overflows when page-rounded).
    pub const ERANGE: Self = Self(34);
    /// Arithmetic on user values overflowed.
    pub const EOVERFLOW: Self = Self(75);
    /// The file descriptor is not an iommufd.
    pub const EBADFD: Self = Self(77);
    /// The user's output array is too small (`IOMMU_IOAS_IOVA_RANGES`); the needed count was
    /// written back.
    pub const EMSGSIZE: Self = Self(90);
    /// A known field holds a value this kernel does not support.
    pub const EOPNOTSUPP: Self = Self(95);
    /// A range is taken: a reserved IOVA range overlaps a mapping or an allowed range.
    pub const EADDRINUSE: Self = Self(98);
    /// No such process: the address space behind a request has exited.
    pub const ESRCH: Self = Self(3);
    /// Deadlock avoided (`EDEADLK`, spelled `EDEADLOCK` in iommufd): something holding pages
    /// of a range being unmapped does not let go of them.
    pub const EDEADLOCK: Self = Self(35);
    /// The hardware did not complete in time (an SMMUv3 CMD_SYNC that never finished).
    pub const ETIMEDOUT: Self = Self(110);

    /// The value an ioctl returns for this error (`-errno`).
    pub const fn ioctl_return(self) -> i32 {
        -self.0
    }

    /// The C name of this errno (`"EINVAL"`), if it is one of the constants above.
    pub const fn name(self) -> Option<&'static str> {
        errno_name(self.0)
    }
}

/// The C name of the errno values this crate defines.
const fn errno_name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        1 => "EPERM",
        2 => "ENOENT",
        4 => "EINTR",
        5 => "EIO",
        6 => "ENXIO",
        7 => "E2BIG",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        16 => "EBUSY",
        17 => "EEXIST",
        19 => "ENODEV",
        22 => "EINVAL",
        24 => "EMFILE",
        25 => "ENOTTY",
        28 => "ENOSPC",
        29 => "ESPIPE",
        34 => "ERANGE",
        75 => "EOVERFLOW",
        77 => "EBADFD",
        90 => "EMSGSIZE",
        95 => "EOPNOTSUPP",
        98 => "EADDRINUSE",
        3 => "ESRCH",
        35 => "EDEADLOCK",
        110 => "ETIMEDOUT",
        _ => return None,
    })
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_asm_generic() {
        // Worked out from include/uapi/asm-generic/errno-base.h and errno.h.
        let table = [
            (Errno::EPERM, 1),
            (Errno::ENOENT, 2),
            (Errno::EINTR, 4),
            (Errno::EIO, 5),
            (Errno::EACCES, 13),
            (Errno::ENXIO, 6),
            (Errno::E2BIG, 7),
            (Errno::EBADF, 9),
            (Errno::EAGAIN, 11),
            (Errno::ENOMEM, 12),
            (Errno::EFAULT, 14),
            (Errno::EBUSY, 16),
            (Errno::EEXIST, 17),
            (Errno::ENODEV, 19),
            (Errno::EINVAL, 22),
            (Errno::EMFILE, 24),
            (Errno::ENOTTY, 25),
            (Errno::ENOSPC, 28),
            (Errno::ESPIPE, 29),
            (Errno::ERANGE, 34),
            (Errno::EOVERFLOW, 75),
            (Errno::EBADFD, 77),
            (Errno::EMSGSIZE, 90),
            (Errno::EOPNOTSUPP, 95),
            (Errno::EADDRINUSE, 98),
            (Errno::ESRCH, 3),
            (Errno::EDEADLOCK, 35),
            (Errno::ETIMEDOUT, 110),
        ];
        for (errno, value) in table {
            assert_eq!(errno.0, value);
            assert!(errno.name().is_some());
        }
    }

    #[test]
    fn display_and_debug_name_the_errno() {
        assert_eq!(Errno::EINVAL.to_string(), "EINVAL (errno 22)");
        assert_eq!(format!("{:?}", Errno::E2BIG), "E2BIG");
        assert_eq!(format!("{:?}", Errno(200)), "Errno(200)");
        assert_eq!(Errno(200).to_string(), "unknown error (errno 200)");
        assert_eq!(Errno::EOPNOTSUPP.ioctl_return(), -95);
    }
}
