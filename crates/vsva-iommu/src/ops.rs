//! What the core asks of an IOMMU driver, in vendor-neutral terms.

use vsva_mem::{Pasid, Rid};

use crate::error::Result;

/// What a device can do (from its PCIe capabilities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceCaps {
    /// PASID width in bits (0: no PASID support).
    pub pasid_bits: u8,
    /// ATS: the device caches translations (and must be sent invalidations).
    pub ats: bool,
    /// PRI: the device asks for pages with page requests.
    pub pri: bool,
}

/// What a (device, PASID) translates through. Addresses are the driver's to interpret:
/// table roots are physical addresses in the memory the IOMMU walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainSpec {
    /// Nothing: every access faults.
    Blocked,
    /// Identity (pass-through).
    Identity,
    /// An I/O page table of the IOMMU's own (second-stage) format.
    Paging {
        /// Root table.
        root: u64,
        /// Levels.
        levels: u8,
        /// Hardware records accessed/dirty in the table (dirty tracking, VT-d SSADE).
        dirty_tracking: bool,
    },
    /// A process's CPU page table (x86 format): shared virtual addressing.
    Sva {
        /// The process's page-table root (CR3).
        root: u64,
        /// 4 or 5.
        levels: u8,
        /// Allow privileged (supervisor) requests.
        supervisor: bool,
    },
    /// A guest's first-stage table over a paging domain (nested translation).
    Nested {
        /// Guest first-stage root (a GPA).
        s1_root: u64,
        /// Guest first-stage levels.
        s1_levels: u8,
        /// Second-stage root.
        s2_root: u64,
        /// Second-stage levels.
        s2_levels: u8,
        /// Allow privileged requests (VT-d SRE).
        supervisor: bool,
    },
}

/// Vendor-specific hardware information (Linux `iommu_ops::hw_info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HwInfo {
    /// The driver reports nothing (`IOMMU_HW_INFO_TYPE_NONE`).
    None,
    /// Intel VT-d: the unit's capability and extended capability registers
    /// (`struct iommu_hw_info_vtd`).
    Vtd {
        /// CAP_REG.
        cap: u64,
        /// ECAP_REG.
        ecap: u64,
    },
}

/// A page request from a device, as the driver read it from its hardware queue: the PCIe
/// Page Request Message with its Requester ID.
pub use vsva_pcie::PageRequest;

/// A page group response code: the PCIe PRG Response Code (Base 6.0 §10.4.2), which Linux's
/// `enum iommu_page_response_code` names `IOMMU_PAGE_RESP_SUCCESS` (Success),
/// `IOMMU_PAGE_RESP_INVALID` (Invalid Request) and `IOMMU_PAGE_RESP_FAILURE` (Response
/// Failure).
pub use vsva_pcie::ResponseCode;

/// The driver interface (Linux `struct iommu_ops` + `iommu_domain_ops`, reduced to what
/// the core uses). Calls return once the hardware has taken the change, including every
/// invalidation it needs.
pub trait IommuOps: Send + Sync {
    /// Largest PASID width the IOMMU supports.
    fn pasid_bits(&self) -> u8;

    /// Takes a device under the IOMMU (context entry, PASID table).
    ///
    /// # Errors
    /// Driver failure.
    fn attach_device(&self, dev: Rid, caps: DeviceCaps) -> Result<()>;

    /// Points (`dev`, `pasid`) at `domain`, tagged `did`.
    ///
    /// # Errors
    /// Driver failure.
    fn set_pasid(&self, dev: Rid, pasid: Pasid, did: u16, domain: &DomainSpec) -> Result<()>;

    /// Removes (`dev`, `pasid`)'s translation.
    ///
    /// # Errors
    /// Driver failure.
    fn clear_pasid(&self, dev: Rid, pasid: Pasid) -> Result<()>;

    /// Invalidates `[addr, addr + len)` of (`dev`, `pasid`, `did`) in the IOTLB and, for ATS
    /// devices, the device's TLB; returns when the device has dropped it.
    ///
    /// # Errors
    /// Driver failure (e.g. the device did not answer).
    fn flush(&self, dev: Rid, pasid: Pasid, did: u16, addr: u64, len: u64) -> Result<()>;

    /// Takes the page requests the hardware has queued.
    fn take_page_requests(&self) -> Vec<PageRequest>;

    /// Sends a page group response to a device.
    ///
    /// # Errors
    /// Driver failure.
    fn page_response(
        &self,
        dev: Rid,
        pasid: Option<Pasid>,
        prgi: u16,
        code: ResponseCode,
    ) -> Result<()>;

    /// Takes the unrecoverable faults the hardware recorded.
    fn take_faults(&self) -> Vec<UnrecoverableFault>;

    /// IOVA ranges `[start, last]` a device's DMA can never reach through a paging domain
    /// (Linux `iommu_get_resv_regions`): an IOAS must not map them while the device is
    /// attached.
    fn reserved_regions(&self, dev: Rid) -> Vec<(u64, u64)> {
        let _ = dev;
        Vec::new()
    }

    /// What the hardware reports of itself, for user space deciding what to emulate
    /// (`IOMMU_GET_HW_INFO`).
    fn hw_info(&self) -> HwInfo {
        HwInfo::None
    }

    /// Whether paging domains can track dirty pages (Linux `IOMMU_CAP_DIRTY_TRACKING`).
    fn dirty_tracking(&self) -> bool {
        false
    }

    /// A new, empty I/O page table of the IOMMU's own format for a paging domain (Linux
    /// `alloc_io_pgtable_ops`), as wide as the IOMMU translates.
    ///
    /// # Errors
    /// Out of memory; a driver without paging domains says so.
    fn alloc_io_pgtable(&self) -> Result<Box<dyn crate::domain::IoPgtable>> {
        Err(crate::error::IommuError::Driver(
            "this IOMMU driver has no paging domains".into(),
        ))
    }
}

/// A DMA the IOMMU refused, as its fault log recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnrecoverableFault {
    /// Requester.
    pub dev: Rid,
    /// PASID, if the request had one.
    pub pasid: Option<Pasid>,
    /// Page address.
    pub addr: u64,
    /// The IOMMU's own reason code (e.g. VT-d's fault reason).
    pub reason: u8,
    /// Was it a write?
    pub write: bool,
}
