//! The VT-d driver as the IOMMU core sees it ([`vsva_iommu::IommuOps`]).

use vsva_iommu::UnrecoverableFault;
use vsva_iommu::{DeviceCaps, DomainSpec, HwInfo, IommuError, IommuOps, PageRequest, ResponseCode};
use vsva_iommu::{FormatTable, IoPgtable};
use vsva_iommu::{InvalidateOutcome, NestedDomain, NestedS1, UserData, UserDataArray};
use vsva_mem::Errno;
use vsva_mem::{Pasid, Rid};
use vsva_pgtable::PageTable;
use vsva_pgtable::vtd_ss::VtdSecondStage;

use crate::driver::{DeviceOptions, Domain, DriverError, VtdDriver};

/// A driver error as the core reports it: no memory for a structure is `ENOMEM`, as the
/// Intel driver's `-ENOMEM` from `intel_pasid_alloc_table()` and friends; the rest `EIO`.
fn err(e: DriverError) -> IommuError {
    match e {
        DriverError::OutOfMemory => IommuError::NoMemory,
        e => IommuError::driver(e),
    }
}

impl IommuOps for VtdDriver {
    fn pasid_bits(&self) -> u8 {
        self.ecap().pss() + 1
    }

    fn attach_device(&self, dev: Rid, caps: DeviceCaps) -> vsva_iommu::Result<()> {
        VtdDriver::attach_device(
            self,
            dev,
            DeviceOptions {
                pasid: caps.pasid_bits > 0,
                ats: caps.ats,
                pri: caps.pri,
            },
        )
        .map_err(err)
    }

    fn set_pasid(
        &self,
        dev: Rid,
        pasid: Pasid,
        did: u16,
        domain: &DomainSpec,
    ) -> vsva_iommu::Result<()> {
        let d = match *domain {
            // A blocked PASID has no entry: every request faults (PASID entry not present).
            DomainSpec::Blocked => return self.detach_pasid(dev, pasid).map_err(err),
            DomainSpec::Identity => Domain::PassThrough { did },
            DomainSpec::Paging {
                root,
                levels,
                dirty_tracking,
                ..
            } => Domain::SecondStage {
                did,
                root,
                levels,
                ad: dirty_tracking,
            },
            DomainSpec::Sva {
                root,
                levels,
                supervisor,
            } => Domain::FirstStage {
                did,
                root,
                levels,
                supervisor,
                write_protect: true,
            },
            DomainSpec::Nested {
                s1:
                    NestedS1::Table {
                        root: s1_root,
                        levels: s1_levels,
                        supervisor,
                    },
                s2_root,
                s2_levels,
                ..
            } => Domain::Nested {
                did,
                fs_root: s1_root,
                fs_levels: s1_levels,
                ss_root: s2_root,
                ss_levels: s2_levels,
                supervisor,
            },
            // VT-d's nested domains are per-PASID first-stage tables.
            DomainSpec::Nested { .. } => {
                return Err(IommuError::DeviceUnsupported {
                    dev,
                    what: "a user PASID table on VT-d",
                });
            }
        };
        self.attach_pasid(dev, pasid, &d).map_err(err)
    }

    fn clear_pasid(&self, dev: Rid, pasid: Pasid) -> vsva_iommu::Result<()> {
        self.detach_pasid(dev, pasid).map_err(err)
    }

    fn flush(
        &self,
        dev: Rid,
        pasid: Pasid,
        did: u16,
        addr: u64,
        len: u64,
    ) -> vsva_iommu::Result<()> {
        self.flush_range(did, dev, pasid, addr, len).map_err(err)
    }

    fn take_page_requests(&self) -> Vec<PageRequest> {
        self.drain_page_requests()
    }

    fn page_response(
        &self,
        dev: Rid,
        pasid: Option<Pasid>,
        prgi: u16,
        code: ResponseCode,
    ) -> vsva_iommu::Result<()> {
        VtdDriver::page_response(self, dev, pasid, prgi, code).map_err(err)
    }

    fn reserved_regions(&self, _dev: Rid) -> Vec<(u64, u64)> {
        // Requests to the interrupt address range are interrupt requests, never translated
        // (§3.14, §5.1): Linux reports it as IOMMU_RESV_MSI for every device.
        let r = vsva_vtd::spec::INTERRUPT_RANGE;
        vec![(*r.start(), *r.end())]
    }

    fn hw_info(&self, data_type: u32) -> Result<HwInfo, Errno> {
        crate::nested::hw_info(self, data_type)
    }

    fn dev_tlb_invalidation(&self) -> bool {
        // ECAP.DT (§11.4.3): Linux enables ATS only when the unit can invalidate device TLBs.
        self.ecap().dt()
    }

    fn nesting(&self) -> bool {
        // ECAP.NEST (Linux `nested_supported`; the unit is always in scalable mode).
        self.ecap().nest()
    }

    fn nest_parent_read_only(&self) -> bool {
        // Erratum 772415: Linux's `__domain_mapping()` refuses read-only mappings in a nesting
        // parent (EINVAL), and `intel_iommu_hw_info()` says so with ERRATA_772415_SPR17.
        false
    }

    fn alloc_domain_nested(&self, data: &dyn UserData) -> Result<NestedS1, Errno> {
        crate::nested::alloc_domain_nested(self, data)
    }

    fn cache_invalidate_user(
        &self,
        domain: &NestedDomain,
        entries: &dyn UserDataArray,
    ) -> InvalidateOutcome {
        crate::nested::cache_invalidate_user(domain, entries)
    }

    fn dirty_tracking(&self) -> bool {
        // Second-stage accessed/dirty (ECAP.SSADS, §3.6.2): Linux `ssads_supported`.
        self.ecap().ssads()
    }

    fn alloc_io_pgtable(&self) -> vsva_iommu::Result<Box<dyn IoPgtable>> {
        // The deepest table SAGAW offers, as wide as MGAW allows (§3.7, CAP.SAGAW/MGAW).
        let cap = self.cap();
        let levels = [5u8, 4, 3]
            .into_iter()
            .find(|&l| cap.sagaw() & (1 << (l - 2)) != 0)
            .ok_or_else(|| {
                IommuError::driver_unsupported("no second-stage table depth in SAGAW")
            })?;
        let width = (cap.mgaw() + 1).min(VtdSecondStage::width_of_levels(levels));
        let format = VtdSecondStage {
            levels,
            input_width: width,
            // HAW comes from the platform's DMAR table, which the driver does not have; the
            // unit checks its own when it walks, and frames come from memory below it.
            haw: 52,
            large_2m: cap.sllps() & 1 != 0,
            large_1g: cap.sllps() & 2 != 0,
            exec: false,
            // the D bit's position, for reading dirty pages; whether the unit sets it is
            // the PASID entry's SSADE
            ad: self.ecap().ssads(),
        };
        let table =
            PageTable::new(format, self.frames.clone()).map_err(|_| IommuError::NoMemory)?;
        Ok(Box::new(FormatTable::new(table, (1u64 << width) - 1)))
    }

    fn take_faults(&self) -> Vec<UnrecoverableFault> {
        self.take_faults_recorded()
            .into_iter()
            .map(|f| UnrecoverableFault {
                dev: f.rid,
                pasid: f.pasid.and_then(|p| Pasid::new(p).ok()),
                addr: f.addr,
                reason: f.reason,
                write: !f.read,
                raw: [0; 4],
            })
            .collect()
    }
}
