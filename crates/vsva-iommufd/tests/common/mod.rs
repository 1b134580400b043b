//! The test fixture of the iommufd tests: a host (the demo platform: memory, a VT-d unit and
//! its driver under the IOMMU core, the memory manager), a process, an iommufd it opened, and
//! helpers that issue each command through `Iommufd::ioctl` with the bytes of its uAPI
//! struct.

#![allow(dead_code)]

pub mod fake_smmu;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use vsva_demo::DemoDevice;
use vsva_host::Platform;
use vsva_iommu::DeviceCaps;
use vsva_iommufd::AddressSpace;
use vsva_iommufd::abi::ioctl::{
    IOMMU_DESTROY, IOMMU_FAULT_QUEUE_ALLOC, IOMMU_HWPT_ALLOC, IOMMU_IOAS_ALLOC,
    IOMMU_IOAS_ALLOW_IOVAS, IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_MAP, IOMMU_IOAS_UNMAP, IOMMU_OPTION,
    IOMMU_VDEVICE_ALLOC, IOMMU_VEVENTQ_ALLOC, IOMMU_VFIO_IOAS, IOMMU_VIOMMU_ALLOC,
};
use vsva_iommufd::abi::{
    Errno, HwptDataType, IoasMapFlags, IommuDestroy, IommuFaultAlloc, IommuHwptAlloc,
    IommuIoasAlloc, IommuIoasAllowIovas, IommuIoasIovaRanges, IommuIoasMap, IommuIoasUnmap,
    IommuIovaRange, IommuOption, IommuVdeviceAlloc, IommuVeventqAlloc, IommuVfioIoas,
    IommuViommuAlloc, OptionId, OptionOp, VeventqType, VfioIoasOp, ViommuType,
};
use vsva_iommufd::{DeviceInfo, FileResolver, Iommufd, ProcessMemory};
use vsva_iommufd::{IoDomain, IoProt};
use vsva_mem::{Access, FrameAllocator, PhysMem, PhysWindow, Rid, Va};
use vsva_mm::{MapFlags, Process, Prot};
use vsva_pgtable::PageTable;
use vsva_pgtable::x86::X86Paging;
use vsva_vtd::VtdConfig;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const PAGE: u64 = 4096;
pub const MIB: u64 = 1 << 20;
pub const RW: u32 = IoasMapFlags::READABLE.bits() | IoasMapFlags::WRITEABLE.bits();
pub const FIXED_RW: u32 = RW | IoasMapFlags::FIXED_IOVA.bits();

/// A guest's RAM as the tests build it: 2 MiB of the process (one populated 2 MiB page)
/// mapped at GPA 0 of an IOAS, and an empty guest first-stage table whose frames come from
/// GPA 1 MiB up.
pub struct GuestRam {
    /// The host-physical address of GPA 0.
    pub hpa: u64,
    /// The RAM by guest-physical address.
    pub mem: Arc<dyn PhysMem>,
    /// The guest's first-stage table.
    pub table: PageTable<X86Paging>,
}

pub struct Fixture {
    pub p: Arc<Process>,
    pub fd: Arc<Iommufd>,
    pub mem: ProcessMemory,
    pub host: Platform,
}

/// A host with the default VT-d unit and an iommufd opened by a new process.
pub fn open() -> Fixture {
    open_with(VtdConfig::default())
}

/// As [`open`], with a unit configured by `cfg`.
pub fn open_with(cfg: VtdConfig) -> Fixture {
    let host = Platform::new(2 << 30, cfg).unwrap();
    let p = host.mm.spawn().unwrap();
    Fixture {
        fd: Arc::new(Iommufd::new(p.clone(), host.iommu.clone())),
        mem: ProcessMemory::new(p.clone()),
        p,
        host,
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

    /// A fresh zeroed buffer of `len` bytes of the process's memory.
    pub fn buffer(&self, len: u64) -> u64 {
        self.p
            .mmap(None, len.max(1), Prot::RW, MapFlags::empty())
            .unwrap()
            .raw()
    }

    /// `bytes` copied into a fresh buffer; returns its address.
    pub fn user_bytes(&self, bytes: &[u8]) -> u64 {
        let at = self.buffer(bytes.len() as u64);
        self.p.write_bytes(Va::new(at), bytes).unwrap();
        at
    }

    /// `len` bytes of the process's memory at `addr`.
    pub fn read_user(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut bytes = vec![0; len];
        self.p.read_bytes(Va::new(addr), &mut bytes).unwrap();
        bytes
    }

    /// The IOAS's usable IOVA ranges (IOMMU_IOAS_IOVA_RANGES, room for 16).
    pub fn ranges(&self, ioas: u32) -> Vec<(u64, u64)> {
        let array = self.buffer(16 * 16);
        let (result, cmd) = self.iova_ranges(ioas, 16, array);
        result.unwrap();
        (0..u64::from(cmd.num_iovas))
            .map(|i| {
                let r = self.read_range(array + 16 * i);
                (r.start, r.last)
            })
            .collect()
    }

    /// Plugs demo device `00:dev.0` in, with 20-bit PASIDs, no ATS and no PRI, and adds it to
    /// the IOMMU core.
    pub fn plug(&self, dev: u8) -> (Arc<DemoDevice>, DeviceInfo) {
        self.plug_with(
            dev,
            DeviceCaps {
                pasid_bits: 20,
                ats: false,
                pri: false,
            },
        )
    }

    /// As [`plug`](Self::plug), with `caps`.
    pub fn plug_with(&self, dev: u8, caps: DeviceCaps) -> (Arc<DemoDevice>, DeviceInfo) {
        let rid = Rid::from_bdf(0, dev, 0).unwrap();
        let demo = if caps.pasid_bits == 20 {
            self.host.add_device(rid, 32, 64)
        } else {
            self.host
                .add_device_with_width(rid, 32, 64, caps.pasid_bits)
        };
        self.host.iommu.add_device(rid, caps, 32).unwrap();
        (demo, DeviceInfo::new(rid, caps))
    }

    /// Plugs device `00:dev.0` in and binds it; returns the device and its ID.
    pub fn plug_and_bind(&self, dev: u8) -> (Arc<DemoDevice>, u32) {
        let (demo, info) = self.plug(dev);
        (demo, self.fd.bind_device(info).unwrap())
    }

    /// IOMMU_HWPT_ALLOC; `data` goes to a fresh buffer (none if empty). Returns out_hwpt_id.
    pub fn hwpt_alloc(
        &self,
        dev_id: u32,
        pt_id: u32,
        flags: u32,
        data_type: HwptDataType,
        data: &[u8],
    ) -> Result<u32, Errno> {
        self.hwpt_alloc_with_fault(dev_id, pt_id, flags, data_type, data, 0)
    }

    /// As [`hwpt_alloc`](Self::hwpt_alloc), with `fault_id` (read with `FAULT_ID_VALID`).
    pub fn hwpt_alloc_with_fault(
        &self,
        dev_id: u32,
        pt_id: u32,
        flags: u32,
        data_type: HwptDataType,
        data: &[u8],
        fault_id: u32,
    ) -> Result<u32, Errno> {
        let mut cmd = IommuHwptAlloc {
            size: 48,
            flags,
            dev_id,
            pt_id,
            data_type,
            data_len: data.len() as u32,
            data_uptr: if data.is_empty() {
                0
            } else {
                self.user_bytes(data)
            },
            fault_id,
            ..Default::default()
        };
        self.call(IOMMU_HWPT_ALLOC, &mut cmd)?;
        Ok(cmd.out_hwpt_id)
    }

    /// A paging HWPT on `ioas` for `dev_id` with `flags`.
    pub fn hwpt_paging(&self, dev_id: u32, ioas: u32, flags: u32) -> Result<u32, Errno> {
        self.hwpt_alloc(dev_id, ioas, flags, HwptDataType::NONE, &[])
    }

    /// `IOMMU_FAULT_QUEUE_ALLOC` with `flags`; the object's ID and the file's number.
    pub fn fault_alloc(&self, flags: u32) -> Result<(u32, u32), Errno> {
        let mut cmd = IommuFaultAlloc {
            size: 16,
            flags,
            ..Default::default()
        };
        self.call(IOMMU_FAULT_QUEUE_ALLOC, &mut cmd)?;
        Ok((cmd.out_fault_id, cmd.out_fault_fd))
    }

    /// `IOMMU_VIOMMU_ALLOC` of `type_` with `flags` over `hwpt_id` for `dev_id`; the ID.
    pub fn viommu_alloc(
        &self,
        flags: u32,
        type_: ViommuType,
        dev_id: u32,
        hwpt_id: u32,
    ) -> Result<u32, Errno> {
        let mut cmd = IommuViommuAlloc {
            size: 40,
            flags,
            type_,
            dev_id,
            hwpt_id,
            ..Default::default()
        };
        self.call(IOMMU_VIOMMU_ALLOC, &mut cmd)?;
        Ok(cmd.out_viommu_id)
    }

    /// `IOMMU_VDEVICE_ALLOC` of `virt_id` for `dev_id` on `viommu_id`; the ID.
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

    /// `IOMMU_VEVENTQ_ALLOC` of `type_` and `depth` on `viommu_id`, with `flags` and
    /// `__reserved` = `rsv`; the queue's ID and file number.
    pub fn veventq_alloc(
        &self,
        flags: u32,
        viommu_id: u32,
        type_: VeventqType,
        depth: u32,
        rsv: u32,
    ) -> Result<(u32, u32), Errno> {
        let mut cmd = IommuVeventqAlloc {
            size: 32,
            flags,
            viommu_id,
            type_,
            veventq_depth: depth,
            __reserved: rsv,
            ..Default::default()
        };
        self.call(IOMMU_VEVENTQ_ALLOC, &mut cmd)?;
        Ok((cmd.out_veventq_id, cmd.out_veventq_fd))
    }

    /// Guest RAM in `ioas` (see [`GuestRam`]).
    pub fn guest_ram(&self, ioas: u32) -> GuestRam {
        let ram = self
            .p
            .mmap(
                None,
                2 * MIB,
                Prot::RW,
                MapFlags::HUGE_2M | MapFlags::POPULATE,
            )
            .unwrap();
        let hpa = self.p.translate(ram, Access::READ).unwrap().output;
        assert_eq!(self.map(ioas, FIXED_RW, ram.raw(), 2 * MIB, 0), Ok(0));
        let mem: Arc<dyn PhysMem> =
            Arc::new(PhysWindow::new(self.host.mem.clone(), hpa, 2 * MIB).unwrap());
        let frames = Arc::new(FrameAllocator::new(mem.clone(), MIB, 2 * MIB));
        let table = PageTable::new(X86Paging::default(), frames).unwrap();
        GuestRam { hpa, mem, table }
    }

    pub fn read_range(&self, addr: u64) -> IommuIovaRange {
        let mut entry = IommuIovaRange::default();
        self.p
            .read_bytes(Va::new(addr), entry.as_mut_bytes())
            .unwrap();
        entry
    }
}

/// A "memfd" for the tests: descriptor 3 is the memory of a process of its own, offsets
/// being its addresses.
pub struct ShmemResolver(pub Arc<Process>);

impl FileResolver for ShmemResolver {
    fn resolve(
        &self,
        fd: i32,
        _start: u64,
        _length: u64,
        _writable: bool,
    ) -> Result<Arc<dyn AddressSpace>, Errno> {
        if fd == 3 {
            Ok(self.0.clone())
        } else {
            Err(Errno::EBADF)
        }
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
