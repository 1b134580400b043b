//! The SMMUv3 driver as the IOMMU core sees it ([`vsva_iommu::IommuOps`]).
//!
//! | core call | what the driver does |
//! |---|---|
//! | `attach_device` | a master: CD table, aborting STE (StreamID = Requester ID); stall as firmware said (`set_dma_can_stall`) |
//! | `set_pasid` | Blocked: CD cleared / RID aborts; Identity: RID bypasses; Paging, Sva: a stage-1 CD; a nest parent (RID only): a stage-2 STE under VMID = did; Nested with a guest STE (RID only): the nested STE (`arm_smmu_make_nested_domain_ste`) |
//! | `clear_pasid` | the CD cleared (SVA: EPD0 first), TLBI by ASID, ATC_INV; a stage-2 or nested RID aborts, its VMID's TLB entries go with its last master |
//! | `flush` | TLBI_NH_VA (range or per page) or TLBI_NH_ASID, then ATC_INV for ATS masters; stage 2: TLBI_S2_IPA + TLBI_NH_ALL of the VMID; nested: TLBI_S12_VMALL + ATC_INV of everything |
//! | `take_faults` / `take_page_requests` / `page_response` | event and PRI queues, CMD_RESUME / CMD_PRI_RESP (a nested master's with the guest's SubstreamID as PASID; its stage-2 stalls terminated and kept as the host's faults) |
//! | `hw_info` | IDR0–5, IIDR, AIDR as read (`arm_smmu_hw_info`) |
//! | `nesting` / `nest_parent_read_only` / `dev_tlb_invalidation` | as Linux decides them (below) |
//! | `alloc_io_pgtable_nest_parent` | io-pgtable-arm `ARM_64_LPAE_S2`: IAS = OAS |
//! | `viommu_type` | `IOMMU_VIOMMU_TYPE_ARM_SMMUV3` with both stages and S2FWB (`arm_smmu_get_viommu_size`) |
//! | `viommu_alloc_domain_nested` | `struct iommu_hwpt_arm_smmuv3` checked (`arm_smmu_validate_vste`) |
//! | `viommu_cache_invalidate` | raw commands, VMID forced, vSID → SID, issued with CMD_SYNCs (`arm_vsmmu_cache_invalidate`) |
//! | `viommu_event` | a nested master's stage-1 and configuration events with the vSID (`arm_vmaster_report_event`) |
//! | `user_pasid_table` | true: a nested master's SubstreamIDs are the guest's |

use vsva_iommu::{
    DeviceCaps, DomainSpec, FormatTable, HwInfo, InvalidateOutcome, IoPgtable, IommuError,
    IommuOps, NestedS1, PageRequest, ResponseCode, UnrecoverableFault, UserData, UserDataArray,
    ViommuContext, VirtualEvent,
};
use vsva_mem::{Errno, PageSize, Pasid, Rid};
use vsva_pgtable::arm::ArmS1;
use vsva_pgtable::table::Unmapped;
use vsva_pgtable::{MapError, PageTable, Perm};
use vsva_smmuv3::spec::registers::pa_bits;

use crate::driver::{MSI_IOVA, MasterOptions, Smmuv3Driver};
use crate::master::{Refusal, RidSte, Target};
use crate::uapi::VIOMMU_TYPE_ARM_SMMUV3;

fn err(e: crate::driver::DriverError) -> IommuError {
    IommuError::driver(e)
}

/// T0SZ of a 4 KiB-granule table of `levels` levels (2 to 4).
fn t0sz(levels: u8) -> Option<u8> {
    (2..=4).contains(&levels).then(|| 64 - (12 + 9 * levels))
}

impl Smmuv3Driver {
    fn refusal(&self, dev: Rid, pasid: Pasid, r: Refusal) -> IommuError {
        match r {
            Refusal::NoMaster => IommuError::NoDevice(dev),
            // Linux: a PASID at or beyond the master's width is EINVAL.
            Refusal::SsidTooWide => IommuError::Invalid("PASID beyond the SubstreamID width"),
            Refusal::Unsupported => IommuError::DeviceUnsupported {
                dev,
                what: "identity or nested translation of a PASID",
            },
            Refusal::NotStage1 => IommuError::Invalid(
                "a stage-2 domain at a PASID, or a PASID under a stage-2 or nested RID",
            ),
            Refusal::Busy => IommuError::PasidBusy { dev, pasid },
            Refusal::NoVmid => IommuError::NoDomainId,
        }
    }

    /// Checks that a nest parent's `levels` are those of the driver's stage-2 format.
    fn s2_levels_ok(&self, levels: u8) -> vsva_iommu::Result<()> {
        let fmt = self.s2_format();
        if levels != 2 + fmt.sl0 {
            return Err(IommuError::Invalid("stage-2 levels"));
        }
        Ok(())
    }
}

impl IommuOps for Smmuv3Driver {
    fn pasid_bits(&self) -> u8 {
        self.features().ssid_bits
    }

    fn attach_device(&self, dev: Rid, caps: DeviceCaps) -> vsva_iommu::Result<()> {
        self.add_master(
            dev,
            MasterOptions {
                ssid_bits: caps.pasid_bits,
                ats: caps.ats,
                pri: caps.pri,
                // "dma-can-stall" is firmware's word, not the device's capabilities: the
                // machine told the driver before the core attached the device.
                stall: self.dma_can_stall(dev),
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
        let target = match *domain {
            DomainSpec::Blocked => Target::Blocked,
            DomainSpec::Identity => Target::Identity,
            DomainSpec::Paging {
                root,
                levels,
                dirty_tracking,
                nest_parent: false,
            } => Target::S1 {
                did,
                root,
                t0sz: t0sz(levels).ok_or(IommuError::Invalid("I/O page-table levels"))?,
                sva: false,
                dirty: dirty_tracking,
            },
            DomainSpec::Sva { root, levels, .. } => match levels {
                3 | 4 => Target::S1 {
                    did,
                    root,
                    t0sz: t0sz(levels).unwrap_or(16),
                    sva: true,
                    dirty: false,
                },
                _ => {
                    return Err(IommuError::DeviceUnsupported {
                        dev,
                        what: "process tables of other than 3 or 4 levels",
                    });
                }
            },
            DomainSpec::Paging {
                root,
                levels,
                dirty_tracking,
                nest_parent: true,
            } => {
                // Linux refuses dirty tracking on a stage-2 domain (EOPNOTSUPP).
                if dirty_tracking {
                    return Err(IommuError::DeviceUnsupported {
                        dev,
                        what: "dirty tracking of a stage-2 domain",
                    });
                }
                self.s2_levels_ok(levels)?;
                Target::Ste(RidSte::S2 {
                    vmid: did,
                    ttb: root,
                })
            }
            DomainSpec::Nested {
                s1,
                s2_root,
                s2_levels,
                parent_did,
            } => match s1 {
                NestedS1::StreamEntry { ste, ats, .. } => {
                    self.s2_levels_ok(s2_levels)?;
                    Target::Ste(RidSte::Nested {
                        vmid: parent_did,
                        ttb: s2_root,
                        ste,
                        ats,
                    })
                }
                NestedS1::Table { .. } => {
                    return Err(IommuError::DeviceUnsupported {
                        dev,
                        what: "a per-PASID first-stage table on SMMUv3",
                    });
                }
            },
        };
        self.set_target(dev, pasid.raw(), target)
            .map_err(err)?
            .map_err(|r| self.refusal(dev, pasid, r))
    }

    fn clear_pasid(&self, dev: Rid, pasid: Pasid) -> vsva_iommu::Result<()> {
        self.clear_target(dev, pasid.raw())
            .map_err(err)?
            .map_err(|r| self.refusal(dev, pasid, r))
    }

    fn flush(
        &self,
        dev: Rid,
        pasid: Pasid,
        _did: u16,
        addr: u64,
        len: u64,
    ) -> vsva_iommu::Result<()> {
        self.flush_range(dev, pasid.raw(), addr, len).map_err(err)
    }

    fn take_page_requests(&self) -> Vec<PageRequest> {
        self.take_requests()
    }

    fn page_response(
        &self,
        dev: Rid,
        pasid: Option<Pasid>,
        prgi: u16,
        code: ResponseCode,
    ) -> vsva_iommu::Result<()> {
        self.respond(dev, pasid, prgi, code).map_err(err)
    }

    fn take_faults(&self) -> Vec<UnrecoverableFault> {
        self.take_events()
    }

    fn reserved_regions(&self, _dev: Rid) -> Vec<(u64, u64)> {
        // The software MSI window Linux reserves in every domain (IOMMU_RESV_SW_MSI).
        vec![MSI_IOVA]
    }

    fn hw_info(&self, data_type: u32) -> Result<HwInfo, Errno> {
        crate::iommufd::hw_info(self, data_type)
    }

    fn dev_tlb_invalidation(&self) -> bool {
        // Linux `arm_smmu_ats_supported()`: no ATS for any master without ARM_SMMU_FEAT_ATS
        // (IDR0.ATS).
        self.features().ats
    }

    fn nesting(&self) -> bool {
        // `arm_smmu_domain_alloc_paging_flags()` refuses IOMMU_HWPT_ALLOC_NEST_PARENT with
        // EOPNOTSUPP without ARM_SMMU_FEAT_NESTING (both stages, `arm_smmu_device_hw_probe()`).
        self.features().nesting
    }

    fn viommu_type(&self, viommu_type: u32) -> bool {
        viommu_type == VIOMMU_TYPE_ARM_SMMUV3 && self.viommu_supported()
    }

    fn user_pasid_table(&self) -> bool {
        // Linux sets `iommu_ops::user_pasid_table`: a nested STE points at the guest's CD
        // table, so every SubstreamID of the master is the guest's.
        true
    }

    fn viommu_alloc_domain_nested(
        &self,
        _viommu: &dyn ViommuContext,
        data: &dyn UserData,
    ) -> Result<NestedS1, Errno> {
        crate::nested::alloc_domain_nested(data)
    }

    fn viommu_cache_invalidate(
        &self,
        viommu: &dyn ViommuContext,
        entries: &dyn UserDataArray,
    ) -> InvalidateOutcome {
        self.viommu_invalidate(viommu, entries)
    }

    fn viommu_event(&self, fault: &UnrecoverableFault, virt_id: u64) -> Option<VirtualEvent> {
        self.vmaster_event(fault, virt_id)
    }

    fn nest_parent_read_only(&self) -> bool {
        // No erratum against read-only stage-2 mappings: a nest parent maps with
        // IOMMU_READ alone as any domain does, and `arm_smmu_hw_info()` reports no such flag.
        true
    }

    fn dirty_tracking(&self) -> bool {
        self.features().hd
    }

    fn alloc_io_pgtable(&self) -> vsva_iommu::Result<Box<dyn IoPgtable>> {
        // io-pgtable-arm's ARM_64_LPAE_S1 as arm_smmu_domain_finalise sets it up: a 48-bit
        // input, the OAS as output, nG leaves; DBM leaves when the SMMU has HTTU dirty state.
        let f = self.features();
        let format = ArmS1 {
            tsz: 16,
            upper: false,
            pa_bits: pa_bits(f.oas).unwrap_or(48).min(48),
            ha: f.ha,
            hd: f.hd,
            hpd: false,
            pan: false,
            wxn: false,
            non_global: true,
            affd: false,
        };
        let table =
            PageTable::new(format, self.frames.clone()).map_err(|_| IommuError::NoMemory)?;
        Ok(Box::new(IoPgtableArm(FormatTable::new(
            table,
            (1u64 << 48) - 1,
        ))))
    }

    fn alloc_io_pgtable_nest_parent(&self) -> vsva_iommu::Result<Box<dyn IoPgtable>> {
        // io-pgtable-arm's ARM_64_LPAE_S2 as arm_smmu_domain_finalise sets it up for a
        // stage-2 domain: IAS and OAS from the IDRs.
        if !self.features().nesting {
            // EOPNOTSUPP as Linux; no device is involved in allocating a domain.
            return Err(IommuError::DeviceUnsupported {
                dev: Rid::from_raw(0),
                what: "a nest parent without stage 2",
            });
        }
        let table = PageTable::new(self.s2_format(), self.frames.clone())
            .map_err(|_| IommuError::NoMemory)?;
        let last = (1u64 << self.s2_ipa_bits()) - 1;
        Ok(Box::new(FormatTable::new(table, last)))
    }
}

/// An io-pgtable-arm stage-1 table: every mapping is unprivileged-accessible, as
/// `arm_lpae_prot_to_pte` sets `ARM_LPAE_PTE_AP_UNPRIV` unless `IOMMU_PRIV` — device
/// requests without PnU are EL0 accesses to the SMMU.
struct IoPgtableArm(FormatTable<ArmS1>);

impl IoPgtable for IoPgtableArm {
    fn root(&self) -> u64 {
        self.0.root()
    }
    fn levels(&self) -> u8 {
        self.0.levels()
    }
    fn last_iova(&self) -> u64 {
        self.0.last_iova()
    }
    fn supports(&self, size: PageSize) -> bool {
        self.0.supports(size)
    }
    fn map(&self, iova: u64, pa: u64, size: PageSize, perm: Perm) -> Result<(), MapError> {
        self.0.map(iova, pa, size, perm | Perm::USER)
    }
    fn unmap(&self, iova: u64, len: u64) -> Result<Unmapped, MapError> {
        self.0.unmap(iova, len)
    }
    fn free_tables(&self, tables: &[u64]) {
        self.0.free_tables(tables)
    }
    fn read_and_clear_dirty(
        &self,
        iova: u64,
        len: u64,
        clear: bool,
        f: &mut dyn FnMut(u64, PageSize),
    ) -> Result<usize, MapError> {
        self.0.read_and_clear_dirty(iova, len, clear, f)
    }
}
