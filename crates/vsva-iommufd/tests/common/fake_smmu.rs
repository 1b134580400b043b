//! A fake SMMUv3 driver for the vIOMMU tests: the `IommuOps` methods of SMMUv3 nesting with
//! just enough of the driver's rules to see iommufd call them in the right order and with
//! the right context. Its decoding follows Linux's `arm-smmu-v3-iommufd.c` in shape only:
//! * `viommu_alloc_domain_nested`: data type `IOMMU_HWPT_DATA_ARM_SMMUV3` (2) or EOPNOTSUPP;
//!   16 bytes read with `copy_struct` (EINVAL below, E2BIG for a non-zero tail); STE.V clear
//!   is an abort entry; Config (bits 3:1) 0b000 abort, 0b100 bypass, 0b101 stage 1, anything
//!   else, or bit 63 set, EIO (`arm_smmu_validate_vste()`);
//! * `viommu_cache_invalidate`: type `IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3` (1) or
//!   EOPNOTSUPP; each 16-byte command in order: CFGI_CD (0x05) has its StreamID (bits 63:32)
//!   translated through the vIOMMU's vDEVICEs (EIO if none), TLBI_NH_VA (0x12) has its VMID
//!   (bits 47:32) forced to the vIOMMU's; any other opcode is EIO (`arm_vsmmu_convert_user_cmd()`);
//! * `viommu_event`: a fault whose record has S2 (DW1 bit 39) is the host's (None); others
//!   become an `IOMMU_VEVENTQ_TYPE_ARM_SMMUV3` record with the StreamID replaced by the
//!   virtual ID (`arm_vmaster_report_event()`).

use std::sync::{Arc, Mutex};

use vsva_iommu::{
    DeviceCaps, DomainSpec, FormatTable, InvalidateOutcome, IoPgtable, Iommu, IommuOps, NestedS1,
    PageRequest, ResponseCode, UnrecoverableFault, UserData, UserDataArray, ViommuContext,
    VirtualEvent,
};
use vsva_mem::{Errno, FrameAllocator, Pasid, PhysMem, PhysMemory, Rid};
use vsva_pgtable::PageTable;
use vsva_pgtable::x86::X86Paging;

pub const CFGI_CD: u64 = 0x05;
pub const TLBI_NH_VA: u64 = 0x12;
/// STE word 0: V and Config = stage 1 translate.
pub const STE_S1: u64 = 1 | (0b101 << 1);
/// STE word 0: V and Config = bypass.
pub const STE_BYPASS: u64 = 1 | (0b100 << 1);
/// STE word 0: V and Config = abort.
pub const STE_ABORT: u64 = 1;
/// Event record DW1 bit 39: the fault was in stage 2.
pub const EVT_S2: u64 = 1 << 39;

/// A page response the fake sent: device, PASID, group index, code.
pub type Response = (Rid, Option<u32>, u16, ResponseCode);

#[derive(Default)]
pub struct FakeSmmu {
    frames: Mutex<Option<Arc<FrameAllocator>>>,
    /// Every `set_pasid`: device, PASID, domain ID, spec.
    pub set: Mutex<Vec<(Rid, u32, u16, DomainSpec)>>,
    /// The parent domain ID each nested allocation saw.
    pub alloc_parent_dids: Mutex<Vec<u16>>,
    /// The commands each invalidation handed to "hardware", converted.
    pub commands: Mutex<Vec<[u64; 2]>>,
    /// Faults the hardware recorded, taken by `take_faults`.
    pub faults: Mutex<Vec<UnrecoverableFault>>,
    /// Page requests (stalls or PRI) the hardware queued, taken by `take_page_requests`.
    pub requests: Mutex<Vec<PageRequest>>,
    /// Page responses sent: device, PASID, group index, code.
    pub responses: Mutex<Vec<Response>>,
}

impl FakeSmmu {
    /// A driver and the IOMMU core over it.
    pub fn new() -> (Arc<FakeSmmu>, Arc<Iommu>) {
        let mem: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(64 << 20).unwrap());
        let fake = Arc::new(FakeSmmu {
            frames: Mutex::new(Some(Arc::new(FrameAllocator::new(mem, 0, 64 << 20)))),
            ..Default::default()
        });
        let iommu = Iommu::new(fake.clone());
        (fake, iommu)
    }

    /// An event record of `sid` at `addr`, in stage 2 if `s2`.
    pub fn fault(dev: Rid, addr: u64, s2: bool) -> UnrecoverableFault {
        UnrecoverableFault {
            dev,
            pasid: None,
            addr,
            reason: 0x10,
            write: true,
            raw: [
                0x10 | (u64::from(dev.raw()) << 32),
                if s2 { EVT_S2 } else { 0 },
                addr,
                0,
            ],
        }
    }
}

impl IommuOps for FakeSmmu {
    fn pasid_bits(&self) -> u8 {
        20
    }
    fn attach_device(&self, _: Rid, _: DeviceCaps) -> vsva_iommu::Result<()> {
        Ok(())
    }
    fn set_pasid(
        &self,
        dev: Rid,
        pasid: Pasid,
        did: u16,
        domain: &DomainSpec,
    ) -> vsva_iommu::Result<()> {
        self.set
            .lock()
            .unwrap()
            .push((dev, pasid.raw(), did, *domain));
        Ok(())
    }
    fn clear_pasid(&self, _: Rid, _: Pasid) -> vsva_iommu::Result<()> {
        Ok(())
    }
    fn flush(&self, _: Rid, _: Pasid, _: u16, _: u64, _: u64) -> vsva_iommu::Result<()> {
        Ok(())
    }
    fn take_page_requests(&self) -> Vec<PageRequest> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
    fn page_response(
        &self,
        dev: Rid,
        pasid: Option<Pasid>,
        prgi: u16,
        code: ResponseCode,
    ) -> vsva_iommu::Result<()> {
        self.responses
            .lock()
            .unwrap()
            .push((dev, pasid.map(|p| p.raw()), prgi, code));
        Ok(())
    }
    fn take_faults(&self) -> Vec<UnrecoverableFault> {
        std::mem::take(&mut *self.faults.lock().unwrap())
    }
    fn nesting(&self) -> bool {
        true
    }
    fn viommu_type(&self, viommu_type: u32) -> bool {
        viommu_type == 1
    }
    fn user_pasid_table(&self) -> bool {
        true
    }
    fn alloc_io_pgtable(&self) -> vsva_iommu::Result<Box<dyn IoPgtable>> {
        let frames = self.frames.lock().unwrap().clone().unwrap();
        let table = PageTable::new(X86Paging::default(), frames)
            .map_err(|_| vsva_iommu::IommuError::NoMemory)?;
        Ok(Box::new(FormatTable::new(table, (1 << 48) - 1)))
    }
    fn viommu_alloc_domain_nested(
        &self,
        viommu: &dyn ViommuContext,
        data: &dyn UserData,
    ) -> Result<NestedS1, Errno> {
        if data.data_type() != 2 {
            return Err(Errno::EOPNOTSUPP);
        }
        let mut bytes = [0u8; 16];
        data.copy_struct(&mut bytes, 16)?;
        let word = |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap());
        let ste = [word(0), word(1)];
        self.alloc_parent_dids
            .lock()
            .unwrap()
            .push(viommu.parent_did());
        if ste[0] & 1 == 0 {
            return Ok(NestedS1::StreamEntry {
                ste: [0, 0],
                ats: false,
                translates: false,
            });
        }
        if ste[0] >> 63 != 0 {
            return Err(Errno::EIO);
        }
        let translates = match (ste[0] >> 1) & 7 {
            0b000 | 0b100 => false,
            0b101 => true,
            _ => return Err(Errno::EIO),
        };
        Ok(NestedS1::StreamEntry {
            ste,
            ats: false,
            translates,
        })
    }
    fn viommu_cache_invalidate(
        &self,
        viommu: &dyn ViommuContext,
        entries: &dyn UserDataArray,
    ) -> InvalidateOutcome {
        if entries.data_type() != 1 {
            return InvalidateOutcome {
                consumed: 0,
                result: Err(Errno::EOPNOTSUPP),
            };
        }
        for index in 0..entries.entry_num() {
            let mut bytes = [0u8; 16];
            let converted = entries.copy_entry(index, &mut bytes, 16).and_then(|()| {
                let mut cmd = [
                    u64::from_le_bytes(bytes[..8].try_into().unwrap()),
                    u64::from_le_bytes(bytes[8..].try_into().unwrap()),
                ];
                match cmd[0] & 0xff {
                    CFGI_CD => {
                        let rid = viommu.find_device(cmd[0] >> 32).ok_or(Errno::EIO)?;
                        cmd[0] = (cmd[0] & 0xffff_ffff) | (u64::from(rid.raw()) << 32);
                    }
                    TLBI_NH_VA => {
                        cmd[0] =
                            (cmd[0] & !(0xffff << 32)) | (u64::from(viommu.parent_did()) << 32);
                    }
                    _ => return Err(Errno::EIO),
                }
                Ok(cmd)
            });
            match converted {
                Ok(cmd) => self.commands.lock().unwrap().push(cmd),
                Err(errno) => {
                    return InvalidateOutcome {
                        consumed: index,
                        result: Err(errno),
                    };
                }
            }
        }
        InvalidateOutcome {
            consumed: entries.entry_num(),
            result: Ok(()),
        }
    }
    fn viommu_event(&self, fault: &UnrecoverableFault, virt_id: u64) -> Option<VirtualEvent> {
        if fault.raw[1] & EVT_S2 != 0 {
            return None;
        }
        let mut raw = fault.raw;
        raw[0] = (raw[0] & 0xffff_ffff) | (virt_id << 32);
        Some(VirtualEvent {
            veventq_type: 1,
            data: raw.iter().flat_map(|w| w.to_le_bytes()).collect(),
        })
    }
}

/// A context over the fake driver: the demo host gives the process and its memory, the
/// IOMMU is the fake's.
pub fn open_smmu() -> (super::Fixture, Arc<FakeSmmu>) {
    let host = vsva_host::Platform::new(2 << 30, vsva_vtd::VtdConfig::default()).unwrap();
    let p = host.mm.spawn().unwrap();
    let (fake, iommu) = FakeSmmu::new();
    let f = super::Fixture {
        fd: Arc::new(vsva_iommufd::Iommufd::new(p.clone(), iommu)),
        mem: vsva_iommufd::ProcessMemory::new(p.clone()),
        p,
        host,
    };
    (f, fake)
}

/// Adds device `00:dev.0` to the fake's IOMMU core and binds it; returns its RID and ID.
pub fn bind_smmu(f: &super::Fixture, dev: u8) -> (Rid, u32) {
    let rid = Rid::from_bdf(0, dev, 0).unwrap();
    let caps = DeviceCaps {
        pasid_bits: 20,
        ats: false,
        pri: false,
    };
    f.fd.iommu().add_device(rid, caps, 32).unwrap();
    let id =
        f.fd.bind_device(vsva_iommufd::DeviceInfo::new(rid, caps))
            .unwrap();
    (rid, id)
}
