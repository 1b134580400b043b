//! The test fixture of `tests/ctx.rs`: a process, an iommufd it opened, and helpers that
//! issue each command through `Iommufd::ioctl` with the bytes of its uAPI struct.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use vsva_iommufd::abi::ioctl::{
    IOMMU_DESTROY, IOMMU_IOAS_ALLOC, IOMMU_IOAS_ALLOW_IOVAS, IOMMU_IOAS_IOVA_RANGES,
    IOMMU_IOAS_MAP, IOMMU_IOAS_UNMAP, IOMMU_OPTION, IOMMU_VFIO_IOAS,
};
use vsva_iommufd::abi::{
    Errno, IoasMapFlags, IommuDestroy, IommuIoasAlloc, IommuIoasAllowIovas, IommuIoasIovaRanges,
    IommuIoasMap, IommuIoasUnmap, IommuIovaRange, IommuOption, IommuVfioIoas, OptionId, OptionOp,
    VfioIoasOp,
};
use vsva_iommufd::domain::{IoDomain, IoProt};
use vsva_iommufd::{Iommufd, ProcessMemory};
use vsva_mem::{FrameAllocator, PhysMem, PhysMemory, Va};
use vsva_mm::{MapFlags, MemoryManager, Process, Prot};
use vsva_pgtable::x86::X86Paging;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const PAGE: u64 = 4096;
pub const MIB: u64 = 1 << 20;
pub const RW: u32 = IoasMapFlags::READABLE.bits() | IoasMapFlags::WRITEABLE.bits();
pub const FIXED_RW: u32 = RW | IoasMapFlags::FIXED_IOVA.bits();

pub struct Fixture {
    pub _mm: Arc<MemoryManager>,
    pub p: Arc<Process>,
    pub fd: Iommufd,
    pub mem: ProcessMemory,
}

pub fn open() -> Fixture {
    let mem: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(1 << 30).unwrap());
    let frames = Arc::new(FrameAllocator::new(mem, 0, 1 << 30));
    let mm = MemoryManager::new(frames, X86Paging::default());
    let p = mm.spawn().unwrap();
    Fixture {
        _mm: mm,
        fd: Iommufd::new(p.clone()),
        mem: ProcessMemory::new(p.clone()),
        p,
    }
}

impl Fixture {
    /// `ioctl(fd, number, &cmd)`: the struct's bytes in, the bytes the kernel left out.
    pub fn call<T>(&self, number: u32, cmd: &mut T) -> Result<(), Errno>
    where
        T: IntoBytes + FromBytes + Immutable + KnownLayout,
    {
        let mut bytes = cmd.as_bytes().to_vec();
        let result = self.raw(u64::from(number), &mut bytes);
        *cmd = T::read_from_bytes(&bytes).unwrap();
        result
    }

    pub fn raw(&self, number: u64, bytes: &mut [u8]) -> Result<(), Errno> {
        self.fd.ioctl(number, bytes, &self.mem)
    }

    pub fn alloc(&self) -> Result<u32, Errno> {
        let mut cmd = IommuIoasAlloc {
            size: 12,
            ..Default::default()
        };
        self.call(IOMMU_IOAS_ALLOC, &mut cmd)?;
        Ok(cmd.out_ioas_id)
    }

    pub fn destroy(&self, id: u32) -> Result<(), Errno> {
        self.call(IOMMU_DESTROY, &mut IommuDestroy { size: 8, id })
    }

    /// IOAS_MAP; returns the IOVA written back.
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

    /// IOAS_UNMAP; returns the length written back.
    pub fn unmap(&self, ioas_id: u32, iova: u64, length: u64) -> Result<u64, Errno> {
        let mut cmd = IommuIoasUnmap {
            size: 24,
            ioas_id,
            iova,
            length,
        };
        self.call(IOMMU_IOAS_UNMAP, &mut cmd)?;
        Ok(cmd.length)
    }

    pub fn option(
        &self,
        option_id: OptionId,
        op: OptionOp,
        object_id: u32,
        val64: u64,
    ) -> Result<u64, Errno> {
        let mut cmd = IommuOption {
            size: 24,
            option_id,
            op,
            __reserved: 0,
            object_id,
            val64,
        };
        self.call(IOMMU_OPTION, &mut cmd)?;
        Ok(cmd.val64)
    }

    pub fn vfio_ioas(&self, op: VfioIoasOp, ioas_id: u32) -> (Result<(), Errno>, IommuVfioIoas) {
        let mut cmd = IommuVfioIoas {
            size: 12,
            ioas_id,
            op,
            __reserved: 0,
        };
        let result = self.call(IOMMU_VFIO_IOAS, &mut cmd);
        (result, cmd)
    }

    pub fn iova_ranges(
        &self,
        ioas_id: u32,
        num_iovas: u32,
        allowed_iovas: u64,
    ) -> (Result<(), Errno>, IommuIoasIovaRanges) {
        let mut cmd = IommuIoasIovaRanges {
            size: 32,
            ioas_id,
            num_iovas,
            __reserved: 0,
            allowed_iovas,
            out_iova_alignment: 0xdead,
        };
        let result = self.call(IOMMU_IOAS_IOVA_RANGES, &mut cmd);
        (result, cmd)
    }

    pub fn allow_iovas(&self, ioas_id: u32, ranges: &[(u64, u64)]) -> Result<(), Errno> {
        let array = self.user_page();
        for (index, &(start, last)) in ranges.iter().enumerate() {
            let entry = IommuIovaRange { start, last };
            self.p
                .write_bytes(Va::new(array + 16 * index as u64), entry.as_bytes())
                .unwrap();
        }
        let mut cmd = IommuIoasAllowIovas {
            size: 24,
            ioas_id,
            num_iovas: ranges.len() as u32,
            __reserved: 0,
            allowed_iovas: array,
        };
        self.call(IOMMU_IOAS_ALLOW_IOVAS, &mut cmd)
    }

    /// A fresh page of the process's memory, filled with 0xee.
    pub fn user_page(&self) -> u64 {
        let va = self
            .p
            .mmap(None, PAGE, Prot::RW, MapFlags::empty())
            .unwrap();
        self.p.write_bytes(va, &[0xee; PAGE as usize]).unwrap();
        va.raw()
    }

    pub fn read_range(&self, addr: u64) -> IommuIovaRange {
        let mut entry = IommuIovaRange::default();
        self.p
            .read_bytes(Va::new(addr), entry.as_mut_bytes())
            .unwrap();
        entry
    }
}

/// A domain that records its 4 KiB translations.
#[derive(Default)]
pub struct Recorder {
    pub map: Mutex<BTreeMap<u64, u64>>,
}

impl IoDomain for Recorder {
    fn aperture_last(&self) -> u64 {
        (1 << 48) - 1
    }
    fn map(&self, iova: u64, pa: u64, len: u64, _prot: IoProt, _large: bool) -> Result<(), Errno> {
        let mut map = self.map.lock().unwrap();
        for off in (0..len).step_by(PAGE as usize) {
            map.insert(iova + off, pa + off);
        }
        Ok(())
    }
    fn unmap(&self, iova: u64, len: u64) {
        let mut map = self.map.lock().unwrap();
        for off in (0..len).step_by(PAGE as usize) {
            map.remove(&(iova + off));
        }
    }
}
