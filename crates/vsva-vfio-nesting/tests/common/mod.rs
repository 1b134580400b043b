//! The fixture: a host (the demo platform: a default VT-d unit under the IOMMU core, the
//! memory manager), a VMM process with 2 MiB of guest RAM, its iommufd, and a nesting
//! container holding a demo device with PASID, ATS and PRI enabled. Every container call goes
//! through `NestingContainer::ioctl` with the bytes of its uAPI struct.

#![allow(dead_code)]

use std::sync::Arc;

use vsva_demo::regs::Op;
use vsva_demo::{DemoDevice, Progress};
use vsva_host::Platform;
use vsva_iommu::DeviceCaps;
use vsva_iommufd::abi::Errno;
use vsva_iommufd::{DeviceInfo, Iommufd, VfioDevice};
use vsva_mem::{Access, FrameAllocator, PageSize, PhysMem, PhysWindow, Rid};
use vsva_mm::{MapFlags, Process, Prot};
use vsva_pgtable::x86::X86Paging;
use vsva_pgtable::{PageTable, Perm};
use vsva_vfio_nesting::uapi::*;
use vsva_vfio_nesting::{HostPasids, NestingContainer};
use vsva_vtd::VtdConfig;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const MIB: u64 = 1 << 20;
/// Guest VAs the guest has not mapped yet: the device's accesses there fault.
pub const GVA: u64 = 0x5000_0000;
/// Where the guest's fault handler (the test) maps faulting pages.
pub const GPA: u64 = 0x1_0000;
/// Bound on every loop that waits for the device.
pub const STEPS: usize = 64;

pub struct Vm {
    pub host: Platform,
    pub vmm: Arc<Process>,
    pub ictx: Arc<Iommufd>,
    pub pasids: Arc<HostPasids>,
    pub c: NestingContainer,
    /// Guest RAM as host memory (GPA 0 = offset 0).
    pub ram: Arc<dyn PhysMem>,
    /// The VMM's address of guest RAM.
    pub ram_va: u64,
    /// The guest's first-stage table, frames from GPA 1 MiB.
    pub table: PageTable<X86Paging>,
}

/// What a driver's probe does to the demo device (as `DemoDriver::probe`): PASID, ATS and PRI
/// with the device's whole request capacity.
pub fn enable_pasid_ats_pri(dev: &DemoDevice) {
    vsva_demo::enable_sva_capabilities(dev, false).unwrap();
}

/// A host, a VMM with 2 MiB of guest RAM, and an empty nesting container (no device yet).
pub fn vm() -> Vm {
    vm_with_quota(vsva_vfio_nesting::pasid::DEFAULT_PASID_QUOTA)
}

pub fn vm_with_quota(quota: usize) -> Vm {
    let host = Platform::new(2 << 30, VtdConfig::default()).unwrap();
    let vmm = host.mm.spawn().unwrap();
    let ictx = Arc::new(Iommufd::new(vmm.clone(), host.iommu.clone()));
    let pasids = HostPasids::new();
    let c = NestingContainer::with_quota(ictx.clone(), &pasids, quota).unwrap();
    let ram_va = vmm
        .mmap(
            None,
            2 * MIB,
            Prot::RW,
            MapFlags::HUGE_2M | MapFlags::POPULATE,
        )
        .unwrap();
    let ram_hpa = vmm.translate(ram_va, Access::READ).unwrap().output;
    let ram: Arc<dyn PhysMem> =
        Arc::new(PhysWindow::new(host.mem.clone(), ram_hpa, 2 * MIB).unwrap());
    let frames = Arc::new(FrameAllocator::new(ram.clone(), MIB, 2 * MIB));
    let table = PageTable::new(X86Paging::default(), frames).unwrap();
    Vm {
        host,
        vmm,
        ictx,
        pasids,
        c,
        ram,
        ram_va: ram_va.raw(),
        table,
    }
}

/// Plugs demo device `00:dev.0` (20-bit PASIDs, ATS, PRI) into the host and returns it with
/// its VFIO device.
pub fn plug(host: &Platform, dev: u8) -> (Arc<DemoDevice>, Arc<VfioDevice>) {
    let rid = Rid::from_bdf(0, dev, 0).unwrap();
    let caps = DeviceCaps {
        pasid_bits: 20,
        ats: true,
        pri: true,
    };
    let demo = host.add_device(rid, 32, 64);
    host.iommu.add_device(rid, caps, 32).unwrap();
    enable_pasid_ats_pri(&demo);
    (demo, VfioDevice::new(DeviceInfo::new(rid, caps)))
}

/// A VM with device 3 joined, its 2 MiB of RAM mapped at IOVA 0, and one PASID allocated
/// (not bound).
pub fn joined() -> (Vm, Arc<DemoDevice>, u32) {
    let vm = vm();
    let (dev, vdev) = plug(&vm.host, 3);
    vm.c.add_device(&vdev).unwrap();
    map_dma(&vm.c, vm.ram_va, 0, 2 * MIB).unwrap();
    let hpasid = alloc_pasid(&vm.c).unwrap();
    (vm, dev, hpasid)
}

/// [`joined`] with the guest's table bound to the PASID (4 levels, no guest PASID).
pub fn bound() -> (Vm, Arc<DemoDevice>, u32) {
    let (vm, dev, hpasid) = joined();
    bind(&vm.c, &bind_data(hpasid, vm.table.root(), None)).unwrap();
    (vm, dev, hpasid)
}

/// `ioctl(container, number, &cmd)` with the struct's bytes; the bytes come back into `cmd`.
pub fn call<T>(c: &NestingContainer, number: u32, cmd: &mut T) -> Result<u32, Errno>
where
    T: IntoBytes + FromBytes + Immutable + KnownLayout,
{
    let mut bytes = cmd.as_bytes().to_vec();
    let result = c.ioctl(u64::from(number), &mut bytes);
    *cmd = T::read_from_bytes(&bytes).unwrap();
    result
}

/// `VFIO_IOMMU_NESTING_OP` of `op` with `data` after the 8-byte header.
pub fn nesting_op(c: &NestingContainer, op: u32, data: &[u8]) -> Result<u32, Errno> {
    let mut bytes = VfioIommuType1NestingOp {
        argsz: 8,
        flags: op,
    }
    .as_bytes()
    .to_vec();
    bytes.extend_from_slice(data);
    c.ioctl(u64::from(VFIO_IOMMU_NESTING_OP), &mut bytes)
}

pub fn pasid_request(c: &NestingContainer, flags: u32, min: u32, max: u32) -> Result<u32, Errno> {
    let mut req = VfioIommuType1PasidRequest {
        argsz: 16,
        flags,
        min,
        max,
    };
    call(c, VFIO_IOMMU_PASID_REQUEST, &mut req)
}

pub fn alloc_pasid(c: &NestingContainer) -> Result<u32, Errno> {
    pasid_request(c, PasidRequestFlags::ALLOC.bits(), 1, (1 << 20) - 1)
}

/// `MAP_DMA` read-write.
pub fn map_dma(c: &NestingContainer, vaddr: u64, iova: u64, size: u64) -> Result<u32, Errno> {
    let mut cmd = VfioIommuType1DmaMap {
        argsz: 32,
        flags: (DmaMapFlags::READ | DmaMapFlags::WRITE).bits(),
        vaddr,
        iova,
        size,
    };
    call(c, VFIO_IOMMU_MAP_DMA, &mut cmd)
}

/// Bind data for `hpasid` with the guest's table, 4 levels, guest PASID `gpasid`.
pub fn bind_data(hpasid: u32, gpgd: u64, gpasid: Option<u64>) -> IommuGpasidBindData {
    IommuGpasidBindData {
        argsz: 72,
        version: 1,
        format: IOMMU_PASID_FORMAT_INTEL_VTD,
        addr_width: 48,
        flags: if gpasid.is_some() {
            GpasidBindFlags::GPASID_VAL.bits()
        } else {
            0
        },
        gpgd,
        hpasid: u64::from(hpasid),
        gpasid: gpasid.unwrap_or(0),
        padding: [0; 8],
        vtd: IommuGpasidBindDataVtd::default(),
    }
}

pub fn bind(c: &NestingContainer, data: &IommuGpasidBindData) -> Result<u32, Errno> {
    nesting_op(c, VFIO_IOMMU_NESTING_OP_BIND_PGTBL, data.as_bytes())
}

pub fn unbind(c: &NestingContainer, data: &IommuGpasidBindData) -> Result<u32, Errno> {
    nesting_op(c, VFIO_IOMMU_NESTING_OP_UNBIND_PGTBL, data.as_bytes())
}

pub fn response(hpasid: u32, grpid: u32, code: u32) -> IommuPageResponse {
    IommuPageResponse {
        argsz: 24,
        version: 1,
        flags: IOMMU_PAGE_RESP_PASID_VALID,
        pasid: hpasid,
        grpid,
        code,
    }
}

pub fn page_resp(c: &NestingContainer, msg: &IommuPageResponse) -> Result<u32, Errno> {
    nesting_op(c, VFIO_IOMMU_NESTING_OP_PAGE_RESP, msg.as_bytes())
}

/// An address-selective invalidation of `nb` 4 KiB granules at `addr` under `pasid`.
pub fn inv_addr(cache: CacheInvType, pasid: u32, addr: u64, nb: u64) -> IommuCacheInvalidateInfo {
    IommuCacheInvalidateInfo {
        argsz: 56,
        version: 1,
        cache: cache.bits(),
        granularity: IOMMU_INV_GRANU_ADDR,
        padding: [0; 6],
        addr_info: IommuInvAddrInfo {
            flags: InvAddrFlags::PASID.bits(),
            archid: 0,
            pasid: u64::from(pasid),
            addr,
            granule_size: 4096,
            nb_granules: nb,
        },
    }
}

pub fn invalidate(c: &NestingContainer, info: &IommuCacheInvalidateInfo) -> Result<u32, Errno> {
    nesting_op(c, VFIO_IOMMU_NESTING_OP_CACHE_INVLD, info.as_bytes())
}

/// Rings the device's doorbell for `op` on `len` bytes at `dst` under `pasid`, through its
/// registers (what `DemoDriver::submit` does).
pub fn submit(dev: &DemoDevice, pasid: u32, op: Op, dst: u64, len: u64, pattern: u64) {
    let pasid = vsva_mem::Pasid::new(pasid).unwrap();
    let cmd = vsva_demo::Command::new(op, 0, dst, len, pattern);
    vsva_demo::submit_to(dev, pasid, &cmd);
}

impl Vm {
    /// Runs `dev` to completion as a guest would: each page request is read from the
    /// container, the faulting page is mapped in the guest table at the next GPA from `GPA`,
    /// and answered SUCCESS with `PAGE_RESP`. Returns the faults read.
    pub fn run_serving_faults(&self, dev: &DemoDevice, hpasid: u32) -> Vec<IommuFault> {
        let mut seen = Vec::new();
        for _ in 0..STEPS {
            match dev.run() {
                Progress::Done => return seen,
                Progress::Waiting => {}
                other => panic!("the device stopped: {other:?}"),
            }
            assert!(self.host.service() > 0, "the page request reached the host");
            let faults = self.c.read_faults(8);
            assert_eq!(
                faults.len(),
                1,
                "one request per group, one group at a time"
            );
            let f = faults[0].fault;
            let gpa = GPA + seen.len() as u64 * 4096;
            self.table
                .map(f.prm.addr, gpa, PageSize::Size4K, Perm::USER_RW)
                .unwrap();
            page_resp(
                &self.c,
                &response(hpasid, f.prm.grpid, IOMMU_PAGE_RESP_SUCCESS),
            )
            .unwrap();
            seen.push(f);
        }
        panic!("the device did not finish in {STEPS} steps");
    }
}
