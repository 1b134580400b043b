//! What the core asks of an IOMMU driver, in vendor-neutral terms.

use vsva_mem::{Errno, Pasid, Rid};

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
    /// An I/O page table of the IOMMU's own format.
    Paging {
        /// Root table.
        root: u64,
        /// Levels.
        levels: u8,
        /// Hardware records accessed/dirty in the table (dirty tracking, VT-d SSADE).
        dirty_tracking: bool,
        /// A nesting parent (`IOMMU_HWPT_ALLOC_NEST_PARENT`): the table is in the driver's
        /// second-stage format ([`IommuOps::alloc_io_pgtable_nest_parent`]) and `did` tags
        /// it as a second stage (SMMUv3: a stage-2 STE under VMID `did`; VT-d's paging
        /// domains are second-stage tables either way).
        nest_parent: bool,
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
    /// A guest's first stage over a nesting-parent paging domain (nested translation).
    Nested {
        /// The guest's first stage, as the driver decoded it from user data.
        s1: crate::domain::NestedS1,
        /// Second-stage root.
        s2_root: u64,
        /// Second-stage levels.
        s2_levels: u8,
        /// The parent's domain ID (SMMUv3: the VMID every nested STE on it carries).
        parent_did: u16,
    },
}

/// What `hw_info` reports (Linux `iommu_ops::hw_info`): the driver's data type — a value of
/// the uAPI's `enum iommu_hw_info_type` — and the data, in the uAPI's layout for that type.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HwInfo {
    /// `enum iommu_hw_info_type` (0, `IOMMU_HW_INFO_TYPE_NONE`, for no data).
    pub data_type: u32,
    /// The driver's struct, as bytes (empty for no data).
    pub data: Vec<u8>,
}

/// Data user space passed to a driver (Linux `struct iommu_user_data`): its type and bytes
/// the driver reads as `iommu_copy_struct_from_user()` does.
pub trait UserData {
    /// The data type (for a nested domain, `enum iommu_hwpt_data_type`).
    fn data_type(&self) -> u32;

    /// Copies the data into `dst`, the driver's struct, by `copy_struct_from_user()` rules: a
    /// length below `min_len` is `EINVAL`; bytes past `dst.len()` must be zero (`E2BIG`);
    /// `dst` past the data's length is zeroed.
    ///
    /// # Errors
    /// `EINVAL`, `E2BIG` as said; `EFAULT` if the data cannot be read.
    fn copy_struct(&self, dst: &mut [u8], min_len: usize) -> std::result::Result<(), Errno>;
}

/// An array of entries user space passed to a driver (Linux `struct iommu_user_data_array`).
pub trait UserDataArray {
    /// The entries' type (`enum iommu_hwpt_invalidate_data_type`).
    fn data_type(&self) -> u32;

    /// The number of entries.
    fn entry_num(&self) -> u32;

    /// Copies entry `index` into `dst` as [`UserData::copy_struct`] does
    /// (`iommu_copy_struct_from_user_array()`).
    ///
    /// # Errors
    /// As [`UserData::copy_struct`], for the entry's length.
    fn copy_entry(
        &self,
        index: u32,
        dst: &mut [u8],
        min_len: usize,
    ) -> std::result::Result<(), Errno>;
}

/// The result of [`IommuOps::cache_invalidate_user`]: how many entries the driver consumed
/// (Linux writes it back to `array->entry_num`), on errors too, and the error if it stopped
/// early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidateOutcome {
    /// Entries handled, in order from the first.
    pub consumed: u32,
    /// `Err` at the first entry the driver refused.
    pub result: std::result::Result<(), Errno>,
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
    /// (`IOMMU_GET_HW_INFO`, Linux `iommu_ops::hw_info`): `data_type` is the type user space
    /// asked for (0, `IOMMU_HW_INFO_TYPE_DEFAULT`, for the driver's own). A driver without
    /// data reports type 0 and no bytes, whatever was asked.
    ///
    /// # Errors
    /// `EOPNOTSUPP` if the driver has no data of the type asked for.
    fn hw_info(&self, data_type: u32) -> std::result::Result<HwInfo, Errno> {
        let _ = data_type;
        Ok(HwInfo::default())
    }

    /// Whether devices behind the IOMMU can reach the device TLBs it would invalidate (Linux
    /// `info->ats_supported` needs the IOMMU side too).
    fn dev_tlb_invalidation(&self) -> bool {
        true
    }

    /// Whether paging domains may be nesting parents (Linux: the driver's
    /// `domain_alloc_paging_flags` refuses `IOMMU_HWPT_ALLOC_NEST_PARENT` otherwise).
    fn nesting(&self) -> bool {
        false
    }

    /// Whether a nesting parent may hold read-only mappings (a driver whose hardware has an
    /// erratum against them, and says so in its `hw_info`, refuses them: `EINVAL`).
    fn nest_parent_read_only(&self) -> bool {
        true
    }

    /// Whether the driver makes vIOMMUs of `enum iommu_viommu_type` `viommu_type` (Linux
    /// `get_viommu_size` returns a size for it). The core-managed `DEFAULT` is iommufd's own.
    fn viommu_type(&self, viommu_type: u32) -> bool {
        let _ = viommu_type;
        false
    }

    /// Decodes user data of a nested domain (Linux `iommu_ops::domain_alloc_nested`): the
    /// first stage it describes, checked in the driver's order.
    ///
    /// # Errors
    /// `EOPNOTSUPP` for a driver without nested domains or a data type it does not know; the
    /// data's copy errors ([`UserData::copy_struct`]); the driver's checks of the data.
    fn alloc_domain_nested(
        &self,
        data: &dyn UserData,
    ) -> std::result::Result<crate::domain::NestedS1, Errno> {
        let _ = data;
        Err(Errno::EOPNOTSUPP)
    }

    /// Handles a user's invalidation of a nested domain's first-stage caches (Linux
    /// `iommu_domain_ops::cache_invalidate_user`): the entries in order, each invalidated
    /// through [`NestedDomain::invalidate`](crate::NestedDomain::invalidate), stopping at the
    /// first bad one.
    fn cache_invalidate_user(
        &self,
        domain: &crate::domain::NestedDomain,
        entries: &dyn UserDataArray,
    ) -> InvalidateOutcome {
        let _ = (domain, entries);
        InvalidateOutcome {
            consumed: 0,
            result: Err(Errno::EOPNOTSUPP),
        }
    }

    /// Whether user space owns the PASID table of a device attached to a nested domain
    /// (Linux `iommu_ops::user_pasid_table`, set by SMMUv3): a page request whose PASID has
    /// no attachment of its own goes to the nested domain attached to the device's requests
    /// without PASID (Linux `find_fault_handler()`), whose guest CD table gave that PASID
    /// its translation.
    fn user_pasid_table(&self) -> bool {
        false
    }

    /// Decodes user data of a nested domain allocated under a vIOMMU (Linux
    /// `iommufd_viommu_ops::alloc_domain_nested`), `viommu` being what the core knows of it.
    /// The core has already removed `IOMMU_HWPT_FAULT_ID_VALID` from the flags.
    ///
    /// # Errors
    /// `EOPNOTSUPP` for a driver without vIOMMU nested domains, or a data type it does not
    /// know; the data's copy errors; the driver's checks of the data (SMMUv3: `EIO` for a
    /// vSTE with fields nesting does not allow).
    fn viommu_alloc_domain_nested(
        &self,
        viommu: &dyn ViommuContext,
        data: &dyn UserData,
    ) -> std::result::Result<crate::domain::NestedS1, Errno> {
        let _ = (viommu, data);
        Err(Errno::EOPNOTSUPP)
    }

    /// Handles a user's invalidation through a vIOMMU (Linux
    /// `iommufd_viommu_ops::cache_invalidate`): each entry in order, in the driver's format
    /// (SMMUv3: raw commands, the VMID forced to the vIOMMU's and virtual StreamIDs
    /// translated through `viommu`), stopping at the first bad one. Returns when the
    /// hardware has completed what the entries handled name (SMMUv3: after a CMD_SYNC).
    fn viommu_cache_invalidate(
        &self,
        viommu: &dyn ViommuContext,
        entries: &dyn UserDataArray,
    ) -> InvalidateOutcome {
        let _ = (viommu, entries);
        InvalidateOutcome {
            consumed: 0,
            result: Err(Errno::EOPNOTSUPP),
        }
    }

    /// The vIOMMU event that reports `fault` to the guest that owns the device, which it
    /// knows as `virt_id` (Linux `arm_vmaster_report_event()`): `None` if the fault is not
    /// the guest's to see (SMMUv3: a stage-2 fault, which is the host's) or the driver has
    /// no vIOMMU events.
    fn viommu_event(&self, fault: &UnrecoverableFault, virt_id: u64) -> Option<VirtualEvent> {
        let _ = (fault, virt_id);
        None
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
        Err(crate::error::IommuError::driver_unsupported(
            "this IOMMU driver has no paging domains",
        ))
    }

    /// A new, empty I/O page table for a nesting parent (Linux: `domain_alloc_paging_flags`
    /// with `IOMMU_HWPT_ALLOC_NEST_PARENT`): the driver's second-stage format, whose input
    /// addresses are a guest's physical addresses. By default the same as
    /// [`alloc_io_pgtable`](Self::alloc_io_pgtable) (VT-d's paging domains are second-stage
    /// tables already).
    ///
    /// # Errors
    /// As [`alloc_io_pgtable`](Self::alloc_io_pgtable).
    fn alloc_io_pgtable_nest_parent(&self) -> Result<Box<dyn crate::domain::IoPgtable>> {
        self.alloc_io_pgtable()
    }
}

/// What a driver knows of a vIOMMU (Linux `struct iommufd_viommu` as a driver reads it):
/// the nesting parent it is a slice of and its vDEVICEs.
pub trait ViommuContext {
    /// The nesting parent's domain ID (SMMUv3: the VMID the vIOMMU's commands are forced
    /// to, `arm_vsmmu::vmid`).
    fn parent_did(&self) -> u16;

    /// The device the guest knows as `virt_id` on this vIOMMU (Linux
    /// `iommufd_viommu_find_dev()`), if a vDEVICE names it.
    fn find_device(&self, virt_id: u64) -> Option<Rid>;
}

/// An event for a vIOMMU's event queue (Linux `iommufd_viommu_report_event()`): its
/// `enum iommu_veventq_type` and the record in the uAPI's layout for that type, naming the
/// device by its virtual ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualEvent {
    /// `enum iommu_veventq_type`.
    pub veventq_type: u32,
    /// The record (SMMUv3: `struct iommu_vevent_arm_smmuv3`, 32 bytes).
    pub data: Vec<u8>,
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
    /// The record as the hardware wrote it, for drivers that pass it on (SMMUv3: the
    /// event's four doublewords; zero where a driver keeps none).
    pub raw: [u64; 4],
}
