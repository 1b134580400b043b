//! Allocation failure at every step, as Linux's `tools/testing/selftests/iommu/
//! iommufd_fail_nth.c`: each sequence of iommufd calls below runs with the Nth allocation
//! point (`vsva_mem::fail_nth`) failing, for N = 1, 2, 3, … until it completes without
//! reaching the injected failure. For every N:
//! * the failing call returns `ENOMEM` (what a failed `kmalloc()` gives) and leaves the
//!   context as it found it: the same objects, pins and locked-memory charge;
//! * after the context is closed nothing is left: no pinned page, no locked-memory charge, no
//!   domain ID, no device or PASID attachment, and every frame of the driver's and the memory
//!   manager's allocators is free again;
//! * the same sequence, not armed, then runs to completion on a fresh context of the same
//!   machine (it is still usable).
//!
//! Linux's test only looks for kernel splats and leaks (kmemleak); the errno and state checks
//! here are stricter. The machine is built by hand from its parts (`IommuKind`) so the test
//! can see the driver's frame allocator.

use std::sync::{Arc, Mutex};

use vsva_demo::Fabric;
use vsva_host::{IommuKind, Os, Smmuv3Kind, VtdKind};
use vsva_iommu::{DeviceCaps, Iommu};
use vsva_iommufd::abi::ioctl::{
    IOMMU_DESTROY, IOMMU_FAULT_QUEUE_ALLOC, IOMMU_HWPT_ALLOC, IOMMU_IOAS_ALLOC, IOMMU_IOAS_COPY,
    IOMMU_IOAS_MAP, IOMMU_IOAS_UNMAP, IOMMU_VDEVICE_ALLOC, IOMMU_VEVENTQ_ALLOC,
    IOMMU_VIOMMU_ALLOC,
};
use vsva_iommufd::abi::{
    Errno, HwptAllocFlags, HwptDataType, IoasMapFlags, IommuDestroy, IommuFaultAlloc,
    IommuHwptAlloc, IommuHwptArmSmmuv3, IommuHwptVtdS1, IommuIoasAlloc, IommuIoasCopy,
    IommuIoasMap, IommuIoasUnmap, IommuVdeviceAlloc, IommuVeventqAlloc, IommuViommuAlloc,
    VeventqType, ViommuType,
};
use vsva_iommufd::{
    Access, AccessOps, DeviceInfo, Held, Ioas, Iommufd, ProcessMemory, RwBuf,
};
use vsva_mem::fail_nth;
use vsva_mem::{FrameAllocator, PhysMem, PhysMemory, Rid, Va};
use vsva_mm::{MapFlags, MemoryManager, Process, Prot};
use vsva_pcie::MsiLog;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

const MIB: u64 = 1 << 20;
const PAGE: u64 = 4096;
const RW: u32 = IoasMapFlags::READABLE.bits() | IoasMapFlags::WRITEABLE.bits();
const FIXED_RW: u32 = RW | IoasMapFlags::FIXED_IOVA.bits();
const NEST_PARENT: u32 = HwptAllocFlags::NEST_PARENT.bits();
const PASID_FLAG: u32 = HwptAllocFlags::PASID.bits();
const FAULT_ID_VALID: u32 = HwptAllocFlags::FAULT_ID_VALID.bits();
/// The user buffer the sequences map: 64 pages.
const BUF_LEN: u64 = 64 * PAGE;
/// Where fixed mappings go.
const IOVA: u64 = 0x10_0000;
/// No sequence needs more; a sweep that gets here has an allocation point in a loop.
const MAX_N: u64 = 400;

/// A machine of IOMMU kind `K` put together from its parts, and a process on it.
struct Machine {
    driver_frames: Arc<FrameAllocator>,
    iommu: Arc<Iommu>,
    mm: Arc<MemoryManager>,
    p: Arc<Process>,
    /// [`BUF_LEN`] bytes of the process, populated.
    buf: u64,
    /// A buffer [`sweep_faulting`] maps unpopulated for each run.
    lazy_buf: std::cell::Cell<u64>,
    /// Argument buffers of the process (nested HWPT data), written before the sweep.
    vtd_s1: u64,
    smmu_ste: u64,
    /// Devices under the IOMMU, by device number.
    devices: Vec<DeviceInfo>,
}

impl Machine {
    fn new<K: IommuKind>(cfg: K::Config, devices: &[(u8, DeviceCaps)]) -> Machine {
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
            let va = p
                .mmap(None, len, Prot::RW, MapFlags::POPULATE)
                .unwrap()
                .raw();
            va
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
        Machine {
            driver_frames,
            iommu,
            mm,
            p,
            buf,
            lazy_buf: Default::default(),
            vtd_s1,
            smmu_ste,
            devices,
        }
    }

    fn vtd() -> Machine {
        let caps = DeviceCaps {
            pasid_bits: 20,
            ats: false,
            pri: false,
        };
        Machine::new::<VtdKind>(Default::default(), &[(3, caps), (4, caps)])
    }

    fn smmuv3() -> Machine {
        let caps = DeviceCaps {
            pasid_bits: 20,
            ats: false,
            pri: false,
        };
        Machine::new::<Smmuv3Kind>(Default::default(), &[(3, caps), (4, caps)])
    }

    fn usage(&self) -> Usage {
        Usage {
            driver_free: self.driver_frames.free_bytes(),
            process_free: self.mm.frames().free_bytes(),
            pinned_pages: self.mm.pinned_pages(),
            locked_pages: self.p.locked_pages(),
            domain_ids: self.iommu.domain_ids_in_use(),
            attachments: self.iommu.attachments_in_use(),
        }
    }

    fn open(&self) -> Ctx {
        Ctx {
            fd: Arc::new(Iommufd::new(self.p.clone(), self.iommu.clone())),
            mem: ProcessMemory::new(self.p.clone()),
            accesses: Vec::new(),
            ids: Default::default(),
        }
    }
}

/// What must come back to where it was once a context is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Usage {
    driver_free: u64,
    process_free: u64,
    pinned_pages: usize,
    locked_pages: u64,
    domain_ids: usize,
    attachments: usize,
}

/// IDs a sequence hands from one step to the next.
#[derive(Default)]
struct Ids {
    dev: [u32; 2],
    ioas: [u32; 2],
    hwpt: [u32; 4],
    fault: u32,
    viommu: u32,
    vdevice: u32,
    veventq: u32,
    iova: u64,
}

/// One open iommufd and what the sequence made in it.
struct Ctx {
    fd: Arc<Iommufd>,
    mem: ProcessMemory,
    /// Accesses an emulated driver holds; it destroys them when it goes (the access holds
    /// the context open, as in Linux).
    accesses: Vec<Held<Access>>,
    ids: Ids,
}

/// A failed step: its name and errno.
type StepError = (&'static str, Errno);

/// What a context's state is between steps.
#[derive(Debug, PartialEq)]
struct Between {
    objects: Vec<(u32, vsva_iommufd::ObjectType)>,
    /// Per IOAS: its usable IOVA ranges (reservations cut them), alignment and area count.
    ioas: Vec<(u32, Vec<(u64, u64)>, u64, usize)>,
    pinned_pages: usize,
    locked_pages: u64,
    domain_ids: usize,
    attachments: usize,
}

impl Ctx {
    fn call<T>(&self, number: u32, cmd: &mut T) -> Result<(), Errno>
    where
        T: IntoBytes + FromBytes + Immutable + KnownLayout,
    {
        let mut bytes = cmd.as_bytes().to_vec();
        let result = self.fd.ioctl(u64::from(number), &mut bytes, &self.mem);
        *cmd = T::read_from_bytes(&bytes).unwrap();
        result
    }

    /// Runs step `name`; if it fails, checks that it left the context as it was.
    fn step(
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
                    (ioas.id(), iopt.iova_ranges().0, iopt.alignment(), iopt.areas().len())
                })
                .collect(),
            pinned_pages: m.mm.pinned_pages(),
            locked_pages: m.p.locked_pages(),
            domain_ids: m.iommu.domain_ids_in_use(),
            attachments: m.iommu.attachments_in_use(),
        };
        let before = between(self);
        f(self).map_err(|errno| {
            assert_eq!(between(self), before, "{name} failed with {errno:?} and left this");
            (name, errno)
        })
    }

    fn ioas_alloc(&mut self) -> Result<u32, Errno> {
        let mut cmd = IommuIoasAlloc {
            size: 12,
            ..Default::default()
        };
        self.call(IOMMU_IOAS_ALLOC, &mut cmd)?;
        Ok(cmd.out_ioas_id)
    }

    fn map(&self, ioas_id: u32, flags: u32, user_va: u64, length: u64, iova: u64) -> Result<u64, Errno> {
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

    fn unmap(&self, ioas_id: u32, iova: u64, length: u64) -> Result<(), Errno> {
        let mut cmd = IommuIoasUnmap {
            size: 24,
            ioas_id,
            iova,
            length,
        };
        self.call(IOMMU_IOAS_UNMAP, &mut cmd)
    }

    fn copy(&self, dst: u32, src: u32, src_iova: u64, length: u64) -> Result<(), Errno> {
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

    fn destroy(&self, id: u32) -> Result<(), Errno> {
        self.call(IOMMU_DESTROY, &mut IommuDestroy { size: 8, id })
    }

    fn hwpt_alloc(
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

    fn fault_alloc(&self) -> Result<u32, Errno> {
        let mut cmd = IommuFaultAlloc {
            size: 16,
            ..Default::default()
        };
        self.call(IOMMU_FAULT_QUEUE_ALLOC, &mut cmd)?;
        Ok(cmd.out_fault_id)
    }

    fn viommu_alloc(&self, dev_id: u32, hwpt_id: u32) -> Result<u32, Errno> {
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

    fn vdevice_alloc(&self, viommu_id: u32, dev_id: u32, virt_id: u64) -> Result<u32, Errno> {
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

    fn veventq_alloc(&self, viommu_id: u32) -> Result<u32, Errno> {
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
    fn close(mut self) {
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
struct Emulated {
    pinned: Mutex<Vec<(u64, u64)>>,
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

type Sequence = fn(&Machine, &mut Ctx) -> Result<(), StepError>;

/// The sweep: `setup` unarmed, then `swept` with the Nth allocation point failing, for N
/// from 1 until `swept` completes without reaching it. Returns the number of allocation
/// points `swept` passes.
fn sweep(m: &Machine, setup: Sequence, swept: Sequence) -> u64 {
    // One complete run first: what the driver keeps across contexts (a device's PASID table,
    // allocated at its first attach) is then part of the baseline.
    let run_whole = || {
        let mut ctx = m.open();
        setup(m, &mut ctx).unwrap();
        swept(m, &mut ctx).unwrap();
        ctx.close();
    };
    run_whole();
    let baseline = m.usage();
    for n in 1..=MAX_N {
        let mut ctx = m.open();
        setup(m, &mut ctx).unwrap();
        fail_nth::arm(n);
        let result = swept(m, &mut ctx);
        let outcome = fail_nth::disarm();
        if !outcome.fired {
            assert_eq!(result, Ok(()), "N = {n}: nothing failed, yet the sequence did");
            ctx.close();
            assert_eq!(m.usage(), baseline, "after the complete run");
            eprintln!("swept {} allocation points", n - 1);
            return n - 1;
        }
        match result {
            Err((step, Errno::ENOMEM)) => eprintln!("N = {n}: {step}"),
            other => panic!("N = {n}: the injected failure gave {other:?}, not ENOMEM"),
        }
        ctx.close();
        assert_eq!(m.usage(), baseline, "N = {n}: {result:?} left this behind");
        run_whole();
        assert_eq!(m.usage(), baseline, "N = {n}: the run after it left this behind");
    }
    panic!("more than {MAX_N} allocation points");
}

/// As [`sweep`], on a fresh machine for every N, so the driver's structures allocated at a
/// device's first attach (a VT-d context and PASID table, an SMMUv3 stream table level 2) are
/// swept too. After the failure and close, a complete run must leave the machine as a
/// complete run leaves a fresh one.
fn sweep_fresh(make: fn() -> Machine, setup: Sequence, swept: Sequence) -> u64 {
    let run_whole = |m: &Machine| {
        let mut ctx = m.open();
        setup(m, &mut ctx).unwrap();
        swept(m, &mut ctx).unwrap();
        ctx.close();
    };
    let reference = {
        let m = make();
        run_whole(&m);
        m.usage()
    };
    for n in 1..=MAX_N {
        let m = make();
        let mut ctx = m.open();
        setup(&m, &mut ctx).unwrap();
        fail_nth::arm(n);
        let result = swept(&m, &mut ctx);
        let outcome = fail_nth::disarm();
        if !outcome.fired {
            assert_eq!(result, Ok(()), "N = {n}: nothing failed, yet the sequence did");
            ctx.close();
            assert_eq!(m.usage(), reference, "after the complete run");
            eprintln!("swept {} allocation points", n - 1);
            return n - 1;
        }
        match result {
            Err((step, Errno::ENOMEM)) => eprintln!("N = {n}: {step}"),
            other => panic!("N = {n}: the injected failure gave {other:?}, not ENOMEM"),
        }
        ctx.close();
        run_whole(&m);
        assert_eq!(m.usage(), reference, "N = {n}: {result:?} left this behind");
    }
    panic!("more than {MAX_N} allocation points");
}

/// As [`sweep`], with the user buffer mapped but not populated before each run and unmapped
/// after it: pinning faults the pages in (the memory manager's page and page-table
/// allocations), and once the context is closed and the buffer unmapped every frame of the
/// process must be free again (a page still pinned or referenced would stay allocated).
fn sweep_faulting(setup: Sequence, swept: Sequence) -> u64 {
    let m = Machine::vtd();
    let run = |n: Option<u64>| {
        let buf = m
            .p
            .mmap(None, BUF_LEN, Prot::RW, MapFlags::empty())
            .unwrap();
        m.lazy_buf.set(buf.raw());
        let mut ctx = m.open();
        setup(&m, &mut ctx).unwrap();
        fail_nth::arm(n.unwrap_or(0));
        let result = swept(&m, &mut ctx);
        let outcome = fail_nth::disarm();
        ctx.close();
        m.p.munmap(buf, BUF_LEN).unwrap();
        (result, outcome)
    };
    assert_eq!(run(None).0, Ok(()));
    let baseline = m.usage();
    for n in 1..=MAX_N {
        let (result, outcome) = run(Some(n));
        if !outcome.fired {
            assert_eq!(result, Ok(()), "N = {n}: nothing failed, yet the sequence did");
            assert_eq!(m.usage(), baseline, "after the complete run");
            eprintln!("swept {} allocation points", n - 1);
            return n - 1;
        }
        match result {
            Err((step, Errno::ENOMEM)) => eprintln!("N = {n}: {step}"),
            other => panic!("N = {n}: the injected failure gave {other:?}, not ENOMEM"),
        }
        assert_eq!(m.usage(), baseline, "N = {n}: {result:?} left this behind");
        assert_eq!(run(None).0, Ok(()), "N = {n}: the run after it");
        assert_eq!(m.usage(), baseline, "N = {n}: the run after it left this behind");
    }
    panic!("more than {MAX_N} allocation points");
}

/// A domain filled from memory that is not there yet: the map faults every page in.
fn map_faulting_pages(m: &Machine, ctx: &mut Ctx) -> Result<(), StepError> {
    ctx.step(m, "IOAS_ALLOC", |c| Ok(c.ids.ioas[0] = c.ioas_alloc()?))?;
    ctx.step(m, "ATTACH ioas", |c| {
        c.fd.attach(c.ids.dev[0], c.ids.ioas[0], None)?;
        Ok(())
    })?;
    ctx.step(m, "IOAS_MAP faulting", |c| {
        c.map(c.ids.ioas[0], FIXED_RW, m.lazy_buf.get(), BUF_LEN, IOVA)?;
        Ok(())
    })
}

fn nothing(_: &Machine, _: &mut Ctx) -> Result<(), StepError> {
    Ok(())
}

fn bind_first(m: &Machine, ctx: &mut Ctx) -> Result<(), StepError> {
    ctx.ids.dev[0] = ctx.fd.bind_device(m.devices[0]).unwrap();
    Ok(())
}

fn bind_both(m: &Machine, ctx: &mut Ctx) -> Result<(), StepError> {
    bind_first(m, ctx)?;
    ctx.ids.dev[1] = ctx.fd.bind_device(m.devices[1]).unwrap();
    Ok(())
}

/// ioas.c: IOAS alloc, map (no domain: nothing pinned), a second IOAS, copy, unmap.
fn ioas_map_copy_unmap(m: &Machine, ctx: &mut Ctx) -> Result<(), StepError> {
    ctx.step(m, "IOAS_ALLOC", |c| Ok(c.ids.ioas[0] = c.ioas_alloc()?))?;
    ctx.step(m, "IOAS_MAP", |c| {
        c.ids.iova = c.map(c.ids.ioas[0], RW, m.buf, BUF_LEN, 0)?;
        Ok(())
    })?;
    ctx.step(m, "IOAS_ALLOC 2", |c| Ok(c.ids.ioas[1] = c.ioas_alloc()?))?;
    ctx.step(m, "IOAS_COPY", |c| {
        c.copy(c.ids.ioas[1], c.ids.ioas[0], c.ids.iova, BUF_LEN / 2)
    })?;
    ctx.step(m, "IOAS_UNMAP", |c| c.unmap(c.ids.ioas[0], c.ids.iova, BUF_LEN))?;
    ctx.step(m, "IOAS_UNMAP 2", |c| c.unmap(c.ids.ioas[1], IOVA, BUF_LEN / 2))?;
    ctx.step(m, "DESTROY", |c| c.destroy(c.ids.ioas[1]))
}

/// iopt_area_fill_domains(): a device attached to an IOAS (automatic HWPT), a map that pins
/// and fills its domain, a second device's HWPT filled from the pinned pages, copy into a
/// second IOAS with a domain, detach and attach again.
fn map_two_domains(m: &Machine, ctx: &mut Ctx) -> Result<(), StepError> {
    ctx.step(m, "IOAS_ALLOC", |c| Ok(c.ids.ioas[0] = c.ioas_alloc()?))?;
    ctx.step(m, "ATTACH ioas", |c| {
        c.ids.hwpt[0] = c.fd.attach(c.ids.dev[0], c.ids.ioas[0], None)?;
        Ok(())
    })?;
    ctx.step(m, "IOAS_MAP", |c| {
        c.map(c.ids.ioas[0], FIXED_RW, m.buf, BUF_LEN, IOVA)?;
        Ok(())
    })?;
    ctx.step(m, "HWPT_ALLOC", |c| {
        c.ids.hwpt[1] = c.hwpt_alloc(c.ids.dev[1], c.ids.ioas[0], 0, None, 0)?;
        Ok(())
    })?;
    ctx.step(m, "ATTACH hwpt", |c| {
        c.fd.attach(c.ids.dev[1], c.ids.hwpt[1], None)?;
        Ok(())
    })?;
    ctx.step(m, "IOAS_ALLOC 2", |c| Ok(c.ids.ioas[1] = c.ioas_alloc()?))?;
    ctx.step(m, "REPLACE with ioas 2", |c| {
        c.fd.replace(c.ids.dev[1], c.ids.ioas[1], None)?;
        Ok(())
    })?;
    ctx.step(m, "IOAS_COPY", |c| {
        c.copy(c.ids.ioas[1], c.ids.ioas[0], IOVA, BUF_LEN)
    })?;
    ctx.step(m, "DETACH", |c| c.fd.detach(c.ids.dev[0], None))?;
    ctx.step(m, "ATTACH again", |c| {
        c.fd.attach(c.ids.dev[0], c.ids.ioas[0], None)?;
        Ok(())
    })?;
    ctx.step(m, "IOAS_UNMAP", |c| c.unmap(c.ids.ioas[0], IOVA, BUF_LEN))
}

/// hw_pagetable.c on VT-d: paging, nesting parent and nested HWPTs; attach, replace, detach.
fn hwpt_paging_nested(m: &Machine, ctx: &mut Ctx) -> Result<(), StepError> {
    let vtd_s1 = Some((HwptDataType::VTD_S1, m.vtd_s1, 24));
    ctx.step(m, "IOAS_ALLOC", |c| Ok(c.ids.ioas[0] = c.ioas_alloc()?))?;
    ctx.step(m, "IOAS_MAP", |c| {
        c.map(c.ids.ioas[0], FIXED_RW, m.buf, BUF_LEN, IOVA)?;
        Ok(())
    })?;
    ctx.step(m, "HWPT_ALLOC paging", |c| {
        c.ids.hwpt[0] = c.hwpt_alloc(c.ids.dev[0], c.ids.ioas[0], 0, None, 0)?;
        Ok(())
    })?;
    ctx.step(m, "ATTACH paging", |c| {
        c.fd.attach(c.ids.dev[0], c.ids.hwpt[0], None)?;
        Ok(())
    })?;
    ctx.step(m, "HWPT_ALLOC nest parent", |c| {
        c.ids.hwpt[1] = c.hwpt_alloc(c.ids.dev[0], c.ids.ioas[0], NEST_PARENT, None, 0)?;
        Ok(())
    })?;
    ctx.step(m, "REPLACE nest parent", |c| {
        c.fd.replace(c.ids.dev[0], c.ids.hwpt[1], None)?;
        Ok(())
    })?;
    ctx.step(m, "HWPT_ALLOC nested", |c| {
        c.ids.hwpt[2] = c.hwpt_alloc(c.ids.dev[0], c.ids.hwpt[1], PASID_FLAG, vtd_s1, 0)?;
        Ok(())
    })?;
    ctx.step(m, "REPLACE nested", |c| {
        c.fd.replace(c.ids.dev[0], c.ids.hwpt[2], None)?;
        Ok(())
    })?;
    ctx.step(m, "ATTACH nested at a PASID", |c| {
        c.fd.attach(c.ids.dev[0], c.ids.hwpt[2], Some(9))?;
        Ok(())
    })?;
    ctx.step(m, "DETACH PASID", |c| c.fd.detach(c.ids.dev[0], Some(9)))?;
    ctx.step(m, "DETACH", |c| c.fd.detach(c.ids.dev[0], None))?;
    ctx.step(m, "DESTROY nested", |c| c.destroy(c.ids.hwpt[2]))?;
    ctx.step(m, "DESTROY paging", |c| c.destroy(c.ids.hwpt[0]))
}

/// eventq.c: a fault queue, a nested HWPT reporting to it, attached at a PASID.
fn fault_queue(m: &Machine, ctx: &mut Ctx) -> Result<(), StepError> {
    let vtd_s1 = Some((HwptDataType::VTD_S1, m.vtd_s1, 24));
    ctx.step(m, "IOAS_ALLOC", |c| Ok(c.ids.ioas[0] = c.ioas_alloc()?))?;
    ctx.step(m, "HWPT_ALLOC nest parent", |c| {
        c.ids.hwpt[1] = c.hwpt_alloc(c.ids.dev[0], c.ids.ioas[0], NEST_PARENT, None, 0)?;
        Ok(())
    })?;
    ctx.step(m, "FAULT_QUEUE_ALLOC", |c| Ok(c.ids.fault = c.fault_alloc()?))?;
    ctx.step(m, "HWPT_ALLOC nested with fault", |c| {
        let flags = FAULT_ID_VALID | PASID_FLAG;
        c.ids.hwpt[2] = c.hwpt_alloc(c.ids.dev[0], c.ids.hwpt[1], flags, vtd_s1, c.ids.fault)?;
        Ok(())
    })?;
    ctx.step(m, "ATTACH at a PASID", |c| {
        c.fd.attach(c.ids.dev[0], c.ids.hwpt[2], Some(9))?;
        Ok(())
    })?;
    ctx.step(m, "DETACH PASID", |c| c.fd.detach(c.ids.dev[0], Some(9)))?;
    ctx.step(m, "DESTROY nested", |c| c.destroy(c.ids.hwpt[2]))
}

/// viommu.c and eventq.c on the SMMUv3 host: a nesting parent, a vIOMMU, a vDEVICE, a
/// vEVENTQ, a fault queue, a nested HWPT on the vIOMMU reporting to it; attach, replace,
/// detach. (The vEVENTQ and fault queue stay: their open files hold them until close.)
fn viommu_vdevice_veventq(m: &Machine, ctx: &mut Ctx) -> Result<(), StepError> {
    let ste = Some((HwptDataType::ARM_SMMUV3, m.smmu_ste, 16));
    ctx.step(m, "IOAS_ALLOC", |c| Ok(c.ids.ioas[0] = c.ioas_alloc()?))?;
    ctx.step(m, "IOAS_MAP", |c| {
        c.map(c.ids.ioas[0], FIXED_RW, m.buf, BUF_LEN, IOVA)?;
        Ok(())
    })?;
    ctx.step(m, "HWPT_ALLOC nest parent", |c| {
        c.ids.hwpt[1] = c.hwpt_alloc(c.ids.dev[0], c.ids.ioas[0], NEST_PARENT, None, 0)?;
        Ok(())
    })?;
    ctx.step(m, "VIOMMU_ALLOC", |c| {
        c.ids.viommu = c.viommu_alloc(c.ids.dev[0], c.ids.hwpt[1])?;
        Ok(())
    })?;
    ctx.step(m, "VDEVICE_ALLOC", |c| {
        c.ids.vdevice = c.vdevice_alloc(c.ids.viommu, c.ids.dev[0], 0x3)?;
        Ok(())
    })?;
    ctx.step(m, "VEVENTQ_ALLOC", |c| {
        c.ids.veventq = c.veventq_alloc(c.ids.viommu)?;
        Ok(())
    })?;
    ctx.step(m, "FAULT_QUEUE_ALLOC", |c| Ok(c.ids.fault = c.fault_alloc()?))?;
    ctx.step(m, "HWPT_ALLOC nested on the vIOMMU", |c| {
        c.ids.hwpt[2] =
            c.hwpt_alloc(c.ids.dev[0], c.ids.viommu, FAULT_ID_VALID, ste, c.ids.fault)?;
        Ok(())
    })?;
    ctx.step(m, "ATTACH nested", |c| {
        c.fd.attach(c.ids.dev[0], c.ids.hwpt[2], None)?;
        Ok(())
    })?;
    ctx.step(m, "REPLACE nest parent", |c| {
        c.fd.replace(c.ids.dev[0], c.ids.hwpt[1], None)?;
        Ok(())
    })?;
    ctx.step(m, "DETACH", |c| c.fd.detach(c.ids.dev[0], None))?;
    ctx.step(m, "DESTROY nested", |c| c.destroy(c.ids.hwpt[2]))?;
    ctx.step(m, "DESTROY vDEVICE", |c| c.destroy(c.ids.vdevice))
}

/// device.c: bind, attach to an IOAS with a mapping, replace with another IOAS, unbind while
/// attached.
fn device_bind_attach_unbind(m: &Machine, ctx: &mut Ctx) -> Result<(), StepError> {
    ctx.step(m, "bind", |c| Ok(c.ids.dev[0] = c.fd.bind_device(m.devices[0])?))?;
    ctx.step(m, "IOAS_ALLOC", |c| Ok(c.ids.ioas[0] = c.ioas_alloc()?))?;
    ctx.step(m, "IOAS_MAP", |c| {
        c.map(c.ids.ioas[0], FIXED_RW, m.buf, 4 * PAGE, IOVA)?;
        Ok(())
    })?;
    ctx.step(m, "ATTACH ioas", |c| {
        c.fd.attach(c.ids.dev[0], c.ids.ioas[0], None)?;
        Ok(())
    })?;
    ctx.step(m, "IOAS_ALLOC 2", |c| Ok(c.ids.ioas[1] = c.ioas_alloc()?))?;
    ctx.step(m, "REPLACE with ioas 2", |c| {
        c.fd.replace(c.ids.dev[0], c.ids.ioas[1], None)?;
        Ok(())
    })?;
    ctx.step(m, "unbind", |c| c.fd.unbind_device(c.ids.dev[0]))
}

/// An IOAS with the buffer mapped at [`IOVA`], before the sweep starts (as Linux's
/// `access_pin` maps before `fail_nth_enable()`).
fn mapped_ioas(m: &Machine, ctx: &mut Ctx) -> Result<(), StepError> {
    ctx.ids.ioas[0] = ctx.ioas_alloc().unwrap();
    ctx.map(ctx.ids.ioas[0], FIXED_RW, m.buf, BUF_LEN, IOVA)
        .unwrap();
    Ok(())
}

/// As [`mapped_ioas`], with a device's domain attached (pages pinned by the domain).
fn mapped_ioas_with_domain(m: &Machine, ctx: &mut Ctx) -> Result<(), StepError> {
    bind_first(m, ctx)?;
    mapped_ioas(m, ctx)?;
    ctx.fd.attach(ctx.ids.dev[0], ctx.ids.ioas[0], None).unwrap();
    Ok(())
}

/// device.c accesses: create, attach, pin, rw both ways, unpin, unmap under a pin.
fn access_pin_rw(m: &Machine, ctx: &mut Ctx) -> Result<(), StepError> {
    let driver = Arc::new(Emulated::default());
    let mem = m.mm.frames().memory().clone();
    ctx.step(m, "access create", |c| {
        let access = c.fd.access_create(driver.clone(), mem)?;
        c.accesses.push(access);
        Ok(())
    })?;
    ctx.step(m, "access attach", |c| c.accesses[0].attach(c.ids.ioas[0]))?;
    ctx.step(m, "access pin", |c| {
        c.accesses[0].pin_pages(IOVA, 16 * PAGE, true)?;
        driver.pinned.lock().unwrap().push((IOVA, 16 * PAGE));
        Ok(())
    })?;
    ctx.step(m, "access rw read", |c| {
        let mut bytes = [0u8; 3 * PAGE as usize];
        c.accesses[0].rw(IOVA + 100, RwBuf::Read(&mut bytes))
    })?;
    ctx.step(m, "access rw write", |c| {
        c.accesses[0].rw(IOVA + 20 * PAGE + 5, RwBuf::Write(&[0x5a; 2 * PAGE as usize]))
    })?;
    ctx.step(m, "access unpin", |c| {
        c.accesses[0].unpin_pages(IOVA, 16 * PAGE);
        driver.pinned.lock().unwrap().clear();
        Ok(())
    })?;
    ctx.step(m, "access pin again", |c| {
        c.accesses[0].pin_pages(IOVA + PAGE, PAGE, false)?;
        driver.pinned.lock().unwrap().push((IOVA + PAGE, PAGE));
        Ok(())
    })?;
    // The driver's unmap callback drops the pin.
    ctx.step(m, "IOAS_UNMAP under a pin", |c| {
        c.unmap(c.ids.ioas[0], IOVA, BUF_LEN)
    })?;
    ctx.step(m, "access detach", |c| {
        c.accesses[0].detach();
        Ok(())
    })
}

#[test]
fn ioas_map_copy_unmap_fails_cleanly_at_every_allocation() {
    let m = Machine::vtd();
    let points = sweep(&m, nothing, ioas_map_copy_unmap);
    assert!(points >= 5, "{points}");
}

#[test]
fn map_with_two_domains_fails_cleanly_at_every_allocation() {
    let m = Machine::vtd();
    let points = sweep(&m, bind_both, map_two_domains);
    assert!(points >= 10, "{points}");
}

#[test]
fn hwpt_alloc_attach_replace_fails_cleanly_at_every_allocation() {
    let m = Machine::vtd();
    let points = sweep(&m, bind_first, hwpt_paging_nested);
    assert!(points >= 10, "{points}");
}

#[test]
fn fault_queue_fails_cleanly_at_every_allocation() {
    let m = Machine::vtd();
    let points = sweep(&m, bind_first, fault_queue);
    assert!(points >= 5, "{points}");
}

#[test]
fn viommu_vdevice_veventq_fail_cleanly_at_every_allocation() {
    let m = Machine::smmuv3();
    let points = sweep(&m, bind_first, viommu_vdevice_veventq);
    assert!(points >= 10, "{points}");
}

#[test]
fn first_attach_on_vtd_fails_cleanly_at_every_allocation() {
    let points = sweep_fresh(Machine::vtd, bind_first, hwpt_paging_nested);
    assert!(points >= 10, "{points}");
}

#[test]
fn first_attach_on_smmuv3_fails_cleanly_at_every_allocation() {
    let points = sweep_fresh(Machine::smmuv3, bind_first, viommu_vdevice_veventq);
    assert!(points >= 10, "{points}");
}

#[test]
fn device_bind_attach_unbind_fails_cleanly_at_every_allocation() {
    let m = Machine::vtd();
    let points = sweep(&m, nothing, device_bind_attach_unbind);
    assert!(points >= 5, "{points}");
}

#[test]
fn pinning_pages_not_yet_faulted_in_fails_cleanly_at_every_allocation() {
    let points = sweep_faulting(bind_first, map_faulting_pages);
    assert!(points >= 64, "{points}");
}

#[test]
fn access_pin_and_rw_fail_cleanly_at_every_allocation() {
    let m = Machine::vtd();
    let points = sweep(&m, mapped_ioas, access_pin_rw);
    assert!(points >= 5, "{points}");
}

#[test]
fn access_pin_under_a_domain_fails_cleanly_at_every_allocation() {
    let m = Machine::vtd();
    let points = sweep(&m, mapped_ioas_with_domain, access_pin_rw);
    assert!(points >= 5, "{points}");
}

