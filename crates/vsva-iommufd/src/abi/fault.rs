//! I/O page fault delivery of `include/uapi/linux/iommufd.h`: the fault queue object
//! (`IOMMU_FAULT_QUEUE_ALLOC`), the fault records user space reads from its fd, and the page
//! responses it writes back.
//!
//! These carry flows 3 and 4 of the design (fault, respond): a PRI page request group reaches
//! the VMM as [`IommuHwptPgfault`] records, and the guest's page group response goes back as
//! an [`IommuHwptPageResponse`]. The fd rules are from `drivers/iommu/iommufd/eventq.c`:
//!
//! * read: offset must be 0 and the count a multiple of 40 (`ESPIPE` otherwise); only whole
//!   groups are returned; each record of a group carries the group's `cookie`.
//! * write: offset must be 0 and the count a multiple of 8 (`ESPIPE`); a `code` other than
//!   SUCCESS or INVALID, or a cookie with no pending group, is `EINVAL`; processing stops at
//!   the first bad response and the bytes done so far are returned.

use bitflags::bitflags;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{assert_layout, uapi_enum};

bitflags! {
    /// `enum iommu_hwpt_pgfault_flags`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct PgfaultFlags: u32 {
        /// `IOMMU_PGFAULT_FLAGS_PASID_VALID`: the request carried a PASID, in `pasid`.
        const PASID_VALID = 1 << 0;
        /// `IOMMU_PGFAULT_FLAGS_LAST_PAGE`: last request of its page request group (PCIe LPIG).
        const LAST_PAGE = 1 << 1;
    }
}

bitflags! {
    /// `enum iommu_hwpt_pgfault_perm`: the access the device asked for.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct PgfaultPerm: u32 {
        /// `IOMMU_PGFAULT_PERM_READ`.
        const READ = 1 << 0;
        /// `IOMMU_PGFAULT_PERM_WRITE`.
        const WRITE = 1 << 1;
        /// `IOMMU_PGFAULT_PERM_EXEC`: the PASID prefix had Execute Requested (PCIe 10.4.1).
        const EXEC = 1 << 2;
        /// `IOMMU_PGFAULT_PERM_PRIV`: the PASID prefix had Privileged Mode Requested
        /// (PCIe 10.4.1).
        const PRIV = 1 << 3;
    }
}

/// `struct iommu_hwpt_pgfault`: one I/O page fault as read from a fault queue fd (40 bytes).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuHwptPgfault {
    /// [`PgfaultFlags`].
    pub flags: u32,
    /// The device (iommufd device ID) that faulted.
    pub dev_id: u32,
    /// The PASID, when `flags` has `PASID_VALID`.
    pub pasid: u32,
    /// PRG index of the page request group.
    pub grpid: u32,
    /// [`PgfaultPerm`].
    pub perm: u32,
    /// Always 0.
    pub __reserved: u32,
    /// The faulting address.
    pub addr: u64,
    /// A hint of how many bytes the device will touch (0 = no hint).
    pub length: u32,
    /// Kernel-chosen cookie of the group; the response must echo it.
    pub cookie: u32,
}
assert_layout!(IommuHwptPgfault, size = 40, align = 8);

uapi_enum! {
    /// `enum iommufd_page_response_code`: the outcome user space reports for a fault group
    /// (PCIe 10.4.2.1 response codes).
    pub struct PageResponseCode(u32) {
        /// `IOMMUFD_PAGE_RESP_SUCCESS`: pages are present; the device retries the access.
        SUCCESS = 0,
        /// `IOMMUFD_PAGE_RESP_INVALID`: the fault cannot be served; the device must not retry.
        INVALID = 1,
    }
}

/// `struct iommu_hwpt_page_response`: the answer to one fault group, written to a fault queue
/// fd (8 bytes).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuHwptPageResponse {
    /// The `cookie` of the group's fault records.
    pub cookie: u32,
    /// The response code.
    pub code: PageResponseCode,
}
assert_layout!(IommuHwptPageResponse, size = 8, align = 4);

/// `struct iommu_fault_alloc`, argument of `IOMMU_FAULT_QUEUE_ALLOC`: create a fault queue,
/// returned both as an object ID (for `IOMMU_HWPT_ALLOC`'s `fault_id`) and as an fd to read
/// faults from and write responses to.
///
/// Linux: non-zero `flags` is `EOPNOTSUPP`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IommuFaultAlloc {
    /// `sizeof(struct iommu_fault_alloc)` as the caller knows it.
    pub size: u32,
    /// No flags are defined; must be 0.
    pub flags: u32,
    /// Output: the fault queue's object ID.
    pub out_fault_id: u32,
    /// Output: the fault queue's file descriptor.
    pub out_fault_fd: u32,
}
assert_layout!(IommuFaultAlloc, size = 16, align = 4);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(PgfaultFlags::PASID_VALID.bits(), 1);
        assert_eq!(PgfaultFlags::LAST_PAGE.bits(), 2);
        assert_eq!(PgfaultPerm::READ.bits(), 1);
        assert_eq!(PgfaultPerm::WRITE.bits(), 2);
        assert_eq!(PgfaultPerm::EXEC.bits(), 4);
        assert_eq!(PgfaultPerm::PRIV.bits(), 8);
        assert_eq!(PageResponseCode::SUCCESS.0, 0);
        assert_eq!(PageResponseCode::INVALID.0, 1);
    }

    #[test]
    fn pgfault_record_bytes() {
        // struct iommu_hwpt_pgfault: flags@0 dev_id@4 pasid@8 grpid@12 perm@16
        // __reserved@20 addr@24 length@32 cookie@36.
        let fault = IommuHwptPgfault {
            flags: (PgfaultFlags::PASID_VALID | PgfaultFlags::LAST_PAGE).bits(),
            dev_id: 1,
            pasid: 0x42,
            grpid: 0x1ff,
            perm: (PgfaultPerm::READ | PgfaultPerm::WRITE).bits(),
            __reserved: 0,
            addr: 0x7fff_f000,
            length: 0,
            cookie: 9,
        };
        let bytes = fault.as_bytes();
        assert_eq!(bytes.len(), 40);
        assert_eq!(&bytes[0..4], &3u32.to_le_bytes());
        assert_eq!(&bytes[8..12], &0x42u32.to_le_bytes());
        assert_eq!(&bytes[12..16], &0x1ffu32.to_le_bytes());
        assert_eq!(&bytes[16..20], &3u32.to_le_bytes());
        assert_eq!(&bytes[24..32], &0x7fff_f000u64.to_le_bytes());
        assert_eq!(&bytes[36..40], &9u32.to_le_bytes());
    }

    #[test]
    fn page_response_bytes() {
        let response = IommuHwptPageResponse {
            cookie: 9,
            code: PageResponseCode::INVALID,
        };
        assert_eq!(response.as_bytes(), &[9, 0, 0, 0, 1, 0, 0, 0]);
    }
}
