//! The machine the sweeps run on, the context a sequence runs in, and its steps.

use std::sync::{Arc, Mutex};

use vsva_demo::Fabric;
use vsva_host::{IommuKind, Os, Smmuv3Kind, VtdKind};
use vsva_iommu::{DeviceCaps, Iommu};
use vsva_iommufd::abi::ioctl::{
    IOMMU_DESTROY, IOMMU_FAULT_QUEUE_ALLOC, IOMMU_HWPT_ALLOC, IOMMU_HWPT_GET_DIRTY_BITMAP,
    IOMMU_HWPT_SET_DIRTY_TRACKING, IOMMU_IOAS_ALLOC, IOMMU_IOAS_COPY, IOMMU_IOAS_MAP,
    IOMMU_IOAS_MAP_FILE, IOMMU_IOAS_UNMAP, IOMMU_VDEVICE_ALLOC, IOMMU_VEVENTQ_ALLOC,
    IOMMU_VIOMMU_ALLOC,
};
use vsva_iommufd::abi::{
    Errno, HwptAllocFlags, HwptDataType, IoasMapFlags, IommuDestroy, IommuFaultAlloc,
    IommuHwptAlloc, IommuHwptArmSmmuv3, IommuHwptGetDirtyBitmap, IommuHwptSetDirtyTracking,
    IommuHwptVtdS1, IommuIoasAlloc, IommuIoasCopy, IommuIoasMap, IommuIoasMapFile, IommuIoasUnmap,
    IommuVdeviceAlloc, IommuVeventqAlloc, IommuViommuAlloc, VeventqType, ViommuType,
};
use vsva_iommufd::{
    Access, AccessOps, AddressSpace, DeviceInfo, FileResolver, Held, Ioas, Iommufd, ProcessMemory,
};
use vsva_mem::{FrameAllocator, PhysMem, PhysMemory, Rid, Va};
use vsva_mm::{MapFlags, MemoryManager, Process, Prot};
use vsva_pcie::MsiLog;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const MIB: u64 = 1 << 20;
pub const PAGE: u64 = 4096;
pub const RW: u32 = IoasMapFlags::READABLE.bits() | IoasMapFlags::WRITEABLE.bits();
pub const FIXED_RW: u32 = RW | IoasMapFlags::FIXED_IOVA.bits();
pub const NEST_PARENT: u32 = HwptAllocFlags::NEST_PARENT.bits();
pub const PASID_FLAG: u32 = HwptAllocFlags::PASID.bits();
pub const FAULT_ID_VALID: u32 = HwptAllocFlags::FAULT_ID_VALID.bits();
/// The user buffer the sequences map: 64 pages.
pub const BUF_LEN: u64 = 64 * PAGE;
/// Where fixed mappings go.
pub const IOVA: u64 = 0x10_0000;
/// No sequence needs more; a sweep that gets here has an allocation point in a loop.
pub const MAX_N: u64 = 400;

/// A machine of IOMMU kind `K` put together from its parts, and a process on it.
pub struct Machine {
    pub driver_frames: Arc<FrameAllocator>,
    pub iommu: Arc<Iommu>,
    pub mm: Arc<MemoryManager>,
    pub p: Arc<Process>,
    /// [`BUF_LEN`] bytes of the process, populated.
    pub buf: u64,
    /// A buffer `sweep_faulting` maps unpopulated for each run.
    pub lazy_buf: std::cell::Cell<u64>,
    /// Argument buffers of the process (nested HWPT data), written before the sweep.
    pub vtd_s1: u64,
    pub smmu_ste: u64,
    /// A page for dirty bitmaps.
    pub bitmap: u64,
    /// Devices under the IOMMU, by device number.
    pub devices: Vec<DeviceInfo>,
    /// A "memfd" (another process's memory, offsets being its addresses) and where its
    /// [`BUF_LEN`] populated bytes are.
    pub file: Arc<Process>,
    pub file_buf: u64,
}

/// Descriptor 3 is the machine's "memfd".
pub struct MemfdResolver(pub Arc<Process>);

impl FileResolver for MemfdResolver {
    fn resolve(
        &self,
        fd: i32,
        _start: u64,
        _length: u64,
        _writable: bool,
    ) -> Result<Arc<dyn AddressSpace>, Errno> {
        match fd {
            3 => Ok(self.0.clone()),
            _ => Err(Errno::EBADF),
        }
    }
}

impl Machine {
    pub fn new<K: IommuKind>(cfg: K::Config, devices: &[(u8, DeviceCaps)]) -> Machine {
        let mem: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(1 << 30).unwrap());
        let unit = K::build(
            cfg,
            mem.clone(),
            Arc::new(MsiLog::default()),
            Arc::new(Fabric::default()),
        );
        let driver_frames = Arc::new(FrameAllocator::new(mem.clone(), MIB, 256 * MIB));
        let driver = K::probe(&unit, mem.clone(), driver_frames.clone()).unwrap();
        let iommu = Iommu::new(driver);
        let frames = Arc::new(FrameAllocator::new(mem, 256 * MIB, 1 << 30));
        let mm = MemoryManager::with_paging(frames, Os::<K>::cpu_paging());
        let p = mm.spawn().unwrap();
        let populate = |len: u64| {
            p.mmap(None, len, Prot::RW, MapFlags::POPULATE)
                .unwrap()
                .raw()
        };
        let buf = populate(BUF_LEN);
        let vtd_s1 = populate(PAGE);
        let s1 = IommuHwptVtdS1 {
            flags: 0,
            pgtbl_addr: MIB,
            addr_width: 48,
            __reserved: 0,
        };
        p.write_bytes(Va::new(vtd_s1), s1.as_bytes()).unwrap();
        let bitmap = populate(PAGE);
        let smmu_ste = populate(PAGE);
        // STE.V, Config = bypass (IHI 0070 §5.2): a guest STE the driver takes without a CD
        // table.
        let ste = IommuHwptArmSmmuv3 {
            ste: [1 | (0b100 << 1), 0],
        };
        p.write_bytes(Va::new(smmu_ste), ste.as_bytes()).unwrap();
        let devices = devices
            .iter()
            .map(|&(dev, caps)| {
                let rid = Rid::from_bdf(0, dev, 0).unwrap();
                iommu.add_device(rid, caps, 32).unwrap();
                DeviceInfo::new(rid, caps)
            })
            .collect();
        let file = mm.spawn().unwrap();
        let file_buf = file
            .mmap(None, BUF_LEN, Prot::RW, MapFlags::POPULATE)
            .unwrap()
            .raw();
        Machine {
            file,
            file_buf,
            driver_frames,
            iommu,
            mm,
            p,
            buf,
            lazy_buf: Default::default(),
            vtd_s1,
            smmu_ste,
            bitmap,
            devices,
        }
    }

    pub fn vtd() -> Machine {
        let caps = DeviceCaps {
            pasid_bits: 20,
            ats: false,
            pri: false,
        };
        Machine::new::<VtdKind>(Default::default(), &[(3, caps), (4, caps)])
    }

    pub fn smmuv3() -> Machine {
        let caps = DeviceCaps {
            pasid_bits: 20,
            ats: false,
            pri: false,
        };
        Machine::new::<Smmuv3Kind>(Default::default(), &[(3, caps), (4, caps)])
    }

    pub fn usage(&self) -> Usage {
        Usage {
            driver_free: self.driver_frames.free_bytes(),
            process_free: self.mm.frames().free_bytes(),
            pinned_pages: self.mm.pinned_pages(),
            locked_pages: self.p.locked_pages(),
            domain_ids: self.iommu.domain_ids_in_use(),
            attachments: self.iommu.attachments_in_use(),
        }
    }

    pub fn open(&self) -> Ctx {
        let fd = Arc::new(Iommufd::new(self.p.clone(), self.iommu.clone()));
        fd.set_file_resolver(Some(Arc::new(MemfdResolver(self.file.clone()))));
        Ctx {
            fd,
            mem: ProcessMemory::new(self.p.clone()),
            accesses: Vec::new(),
            ids: Default::default(),
        }
    }
}

/// What must come back to where it was once a context is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub driver_free: u64,
    pub process_free: u64,
    pub pinned_pages: usize,
    pub locked_pages: u64,
    pub domain_ids: usize,
    pub attachments: usize,
}

/// IDs a sequence hands from one step to the next.
#[derive(Default)]
pub struct Ids {
    pub dev: [u32; 2],
    pub ioas: [u32; 2],
    pub hwpt: [u32; 4],
    pub fault: u32,
    pub viommu: u32,
    pub vdevice: u32,
    pub veventq: u32,
    pub iova: u64,
}

/// One open iommufd and what the sequence made in it.
pub struct Ctx {
    pub fd: Arc<Iommufd>,
    pub mem: ProcessMemory,
    /// Accesses an emulated driver holds; it destroys them when it goes (the access holds
    /// the context open, as in Linux).
    pub accesses: Vec<Held<Access>>,
    pub ids: Ids,
}

/// A failed step: its name and errno.
pub type StepError = (&'static str, Errno);

/// An IOAS's ID, usable IOVA ranges, IOVA alignment and number of areas.
pub type IoasState = (u32, Vec<(u64, u64)>, u64, usize);

/// What a context's state is between steps.
#[derive(Debug, PartialEq)]
pub struct Between {
    pub objects: Vec<(u32, vsva_iommufd::ObjectType)>,
    /// Per IOAS: its usable IOVA ranges (reservations cut them), alignment and area count.
    pub ioas: Vec<IoasState>,
    pub pinned_pages: usize,
    pub locked_pages: u64,
    pub domain_ids: usize,
    pub attachments: usize,
}

impl Ctx {
    pub fn call<T>(&self, number: u32, cmd: &mut T) -> Result<(), Errno>
    where
        T: IntoBytes + FromBytes + Immutable + KnownLayout,
    {
        let mut bytes = cmd.as_bytes().to_vec();
        let result = self.fd.ioctl(u64::from(number), &mut bytes, &self.mem);
        *cmd = T::read_from_bytes(&bytes).unwrap();
        result
    }

    /// Runs step `name`; if it fails, checks that it left the context as it was.
    pub fn step(
        &mut self,
        m: &Machine,
        name: &'static str,
        f: impl FnOnce(&mut Ctx) -> Result<(), Errno>,
    ) -> Result<(), StepError> {
        let between = |ctx: &Ctx| Between {
            objects: ctx.fd.objects(),
            ioas: ctx
                .fd
                .all::<Ioas>()
                .iter()
                .map(|ioas| {
                    let iopt = ioas.iopt();
                    (
                        ioas.id(),
                        iopt.iova_ranges().0,
                        iopt.alignment(),
                        iopt.areas().len(),
                    )
                })
                .collect(),
            pinned_pages: m.mm.pinned_pages(),
            locked_pages: m.p.locked_pages(),
            domain_ids: m.iommu.domain_ids_in_use(),
            attachments: m.iommu.attachments_in_use(),
        };
        let before = between(self);
        f(self).map_err(|errno| {
            assert_eq!(
                between(self),
                before,
                "{name} failed with {errno:?} and left this"
            );
            (name, errno)
        })
    }

    pub fn ioas_alloc(&mut self) -> Result<u32, Errno> {
        let mut cmd = IommuIoasAlloc {
            size: 12,
            ..Default::default()
        };
        self.call(IOMMU_IOAS_ALLOC, &mut cmd)?;
        Ok(cmd.out_ioas_id)
    }

    pub fn map(
        &self,
        ioas_id: u32,
        flags: u32,
        user_va: u64,
        length: u64,
        iova: u64,
    ) -> Result<u64, Errno> {
        let mut cmd = IommuIoasMap {
            size: 40,
            flags,
            ioas_id,
            __reserved: 0,
            user_va,
            length,
            iova,
        };
        self.call(IOMMU_IOAS_MAP, &mut cmd)?;
        Ok(cmd.iova)
    }

    pub fn map_file(&self, ioas_id: u32, start: u64, length: u64, iova: u64) -> Result<(), Errno> {
        let mut cmd = IommuIoasMapFile {
            size: 40,
            flags: FIXED_RW,
            ioas_id,
            fd: 3,
            start,
            length,
            iova,
        };
        self.call(IOMMU_IOAS_MAP_FILE, &mut cmd)
    }

    pub fn set_dirty_tracking(&self, hwpt_id: u32, on: bool) -> Result<(), Errno> {
        let mut cmd = IommuHwptSetDirtyTracking {
            size: 16,
            flags: u32::from(on),
            hwpt_id,
            __reserved: 0,
        };
        self.call(IOMMU_HWPT_SET_DIRTY_TRACKING, &mut cmd)
    }

    /// `IOMMU_HWPT_GET_DIRTY_BITMAP` of `[iova, iova + length)` in 4 KiB units into `data`.
    pub fn dirty_bitmap(
        &self,
        hwpt_id: u32,
        iova: u64,
        length: u64,
        data: u64,
    ) -> Result<(), Errno> {
        let mut cmd = IommuHwptGetDirtyBitmap {
            size: 48,
            hwpt_id,
            flags: 0,
            __reserved: 0,
            iova,
            length,
            page_size: PAGE,
            data,
        };
        self.call(IOMMU_HWPT_GET_DIRTY_BITMAP, &mut cmd)
    }

    pub fn unmap(&self, ioas_id: u32, iova: u64, length: u64) -> Result<(), Errno> {
        let mut cmd = IommuIoasUnmap {
            size: 24,
            ioas_id,
            iova,
            length,
        };
        self.call(IOMMU_IOAS_UNMAP, &mut cmd)
    }

    pub fn copy(&self, dst: u32, src: u32, src_iova: u64, length: u64) -> Result<(), Errno> {
        let mut cmd = IommuIoasCopy {
            size: 40,
            flags: FIXED_RW,
            dst_ioas_id: dst,
            src_ioas_id: src,
            length,
            dst_iova: IOVA,
            src_iova,
        };
        self.call(IOMMU_IOAS_COPY, &mut cmd)
    }

    pub fn destroy(&self, id: u32) -> Result<(), Errno> {
        self.call(IOMMU_DESTROY, &mut IommuDestroy { size: 8, id })
    }

    pub fn hwpt_alloc(
        &self,
        dev_id: u32,
        pt_id: u32,
        flags: u32,
        data: Option<(HwptDataType, u64, u32)>,
        fault_id: u32,
    ) -> Result<u32, Errno> {
        let (data_type, data_uptr, data_len) = data.unwrap_or((HwptDataType::NONE, 0, 0));
        let mut cmd = IommuHwptAlloc {
            size: 48,
            flags,
            dev_id,
            pt_id,
            data_type,
            data_len,
            data_uptr,
            fault_id,
            ..Default::default()
        };
        self.call(IOMMU_HWPT_ALLOC, &mut cmd)?;
        Ok(cmd.out_hwpt_id)
    }

    pub fn fault_alloc(&self) -> Result<u32, Errno> {
        let mut cmd = IommuFaultAlloc {
            size: 16,
            ..Default::default()
        };
        self.call(IOMMU_FAULT_QUEUE_ALLOC, &mut cmd)?;
        Ok(cmd.out_fault_id)
    }

    pub fn viommu_alloc(&self, dev_id: u32, hwpt_id: u32) -> Result<u32, Errno> {
        let mut cmd = IommuViommuAlloc {
            size: 40,
            type_: ViommuType::ARM_SMMUV3,
            dev_id,
            hwpt_id,
            ..Default::default()
        };
        self.call(IOMMU_VIOMMU_ALLOC, &mut cmd)?;
        Ok(cmd.out_viommu_id)
    }

    pub fn vdevice_alloc(&self, viommu_id: u32, dev_id: u32, virt_id: u64) -> Result<u32, Errno> {
        let mut cmd = IommuVdeviceAlloc {
            size: 24,
            viommu_id,
            dev_id,
            virt_id,
            ..Default::default()
        };
        self.call(IOMMU_VDEVICE_ALLOC, &mut cmd)?;
        Ok(cmd.out_vdevice_id)
    }

    pub fn veventq_alloc(&self, viommu_id: u32) -> Result<u32, Errno> {
        let mut cmd = IommuVeventqAlloc {
            size: 32,
            viommu_id,
            type_: VeventqType::ARM_SMMUV3,
            veventq_depth: 16,
            ..Default::default()
        };
        self.call(IOMMU_VEVENTQ_ALLOC, &mut cmd)?;
        Ok(cmd.out_veventq_id)
    }

    /// Closes the context: the emulated drivers destroy their accesses, then the file goes.
    pub fn close(mut self) {
        for access in std::mem::take(&mut self.accesses) {
            self.fd.access_destroy(access);
        }
        let fd = self.fd;
        assert_eq!(Arc::strong_count(&fd), 1, "nothing else holds the context");
        drop(fd);
    }
}

/// An emulated device's driver that pins through its access.
#[derive(Default)]
pub struct Emulated {
    pub pinned: Mutex<Vec<(u64, u64)>>,
}

impl AccessOps for Emulated {
    fn needs_pin_pages(&self) -> bool {
        true
    }

    fn unmap(&self, access: &Access, iova: u64, length: u64) {
        let last = iova + length - 1;
        self.pinned.lock().unwrap().retain(|&(i, l)| {
            let inside = i <= last && i + l > iova;
            if inside {
                access.unpin_pages(i, l);
            }
            !inside
        });
    }
}

pub type Sequence = fn(&Machine, &mut Ctx) -> Result<(), StepError>;
