//! A byte-stream interpreter for fuzzing one iommufd context and the VFIO device files bound
//! to it: arbitrary bytes become ioctls through [`Iommufd::ioctl`] and
//! [`VfioDeviceFile::ioctl`] — each a well-formed argument for the objects the harness made,
//! with a few 32-bit words overwritten and its size claimed exactly, at the minimum, larger
//! or at random — fault-file reads and writes, and an emulated device's driver pinning,
//! unpinning and copying (`vfio_pin_pages()`, `vfio_dma_rw()`). Used by the cargo-fuzz target
//! `iommufd_ctx` in `fuzz/` and by a seeded test.
//!
//! The caller supplies the host once ([`Host`]: an IOMMU core with two devices registered, its
//! memory manager and memory); each [`run`] opens a fresh context in a fresh process, so many
//! streams share one host. Checks:
//! * after every step: no panic; a failed ioctl leaves the argument's `size` word as it was
//!   (the kernel copies out only on success); every page the emulated driver holds pinned is
//!   still pinned (a pin goes through the driver's `dma_unmap`, never behind its back);
//! * after closing the files and the context: nothing else holds the context (its object
//!   table went with it), the devices are detached from every PASID the stream could attach,
//!   the process has no locked-memory charge left and no page of either process stays pinned.

mod template;

use std::sync::{Arc, Mutex};

use vsva_iommu::Iommu;
use vsva_mem::{Errno, Pasid, PhysMem, Va};
use vsva_mm::{MapFlags, MemoryManager, Process, Prot};

use crate::abi::{Command, FdKind, HwptAllocFlags, IommuFaultAlloc, IommuHwptAlloc};
use crate::{
    AddressSpace, DeviceInfo, EmulatedDriver, FileResolver, Iommufd, ProcessMemory, RwBuf,
    VfioDevice, VfioDeviceFile,
};

const PAGE: u64 = 4096;
const MIB: u64 = 1 << 20;
/// Where the user buffer the arguments point into is mapped (below 4 GiB, so a 32-bit word
/// names it).
const BUF: u64 = 0x4000_0000;
const BUF_LEN: u64 = 16 * PAGE;
/// Where the harness maps user memory into the first IOAS.
const IOVA: u64 = MIB;
/// The iommufd's descriptor for the VFIO files' bind.
const IOMMUFD: i32 = 3;
/// The objects each run makes, by ID.
const IOAS: u32 = 1;
const IOAS2: u32 = 2;
const DEV: u32 = 3;
const ACCESS: u32 = 4;
const PARENT: u32 = 5;
const FAULT: u32 = 6;
/// Where in the buffer each command's array is.
const RANGES: u64 = BUF;
const S1_DATA: u64 = BUF + 0x100;
const INV_ENTRIES: u64 = BUF + 0x200;
const OUT: u64 = BUF + 0x1000;
const MAPPED: u64 = BUF + 0x4000;
const MAP_IOVA: u64 = 0x40_0000;
/// Where the memory of the file `IOMMU_IOAS_MAP_FILE` maps is (8 pages).
const SHMEM: u64 = 0x1000_0000;

/// The host the streams run on, built once by the caller.
pub struct Host {
    /// The IOMMU core.
    pub iommu: Arc<Iommu>,
    /// The memory manager the processes come from.
    pub mm: Arc<MemoryManager>,
    /// Physical memory (the emulated device's).
    pub mem: Arc<dyn PhysMem>,
    /// A device registered with the core, bound to the context by each run (ID 3), no ATS
    /// or PRI.
    pub bound: DeviceInfo,
    /// A second registered device, opened as a VFIO file but left for the stream to bind.
    pub physical: DeviceInfo,
}

/// What a run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Operations interpreted.
    pub ops: u64,
    /// Ioctls that succeeded.
    pub ok: u64,
    /// Ioctls that failed with an errno.
    pub failed: u64,
    /// Pins the emulated driver holds at some point.
    pub pins: u64,
}

/// What `size` / `argsz` an argument claims.
#[derive(Debug, Clone, Copy)]
enum SizeChoice {
    Exact,
    Min,
    Bigger,
    Random(u32),
}

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
}

/// A 32-bit word that reaches past the first checks: small IDs and flags, page multiples,
/// single bits, `u32::MAX`, addresses in the user buffer, raw.
fn word(kind: u8, raw: u32) -> u32 {
    match kind % 8 {
        0 | 1 => raw % 8,
        2 => u32::MAX,
        3 => (raw % 0x400) << 12,
        4 => 1 << (raw % 32),
        5 => BUF as u32 + raw % BUF_LEN as u32,
        6 => IOVA as u32,
        _ => raw,
    }
}

fn size_choice(b: u8, raw: u32) -> SizeChoice {
    match b % 10 {
        0..=5 => SizeChoice::Exact,
        6 | 7 => SizeChoice::Min,
        8 => SizeChoice::Bigger,
        _ => SizeChoice::Random(raw % 96),
    }
}

fn iova(kind: u8, raw: u64) -> u64 {
    match kind % 6 {
        0..=3 => IOVA - 2 * PAGE + raw % (12 * PAGE),
        4 => raw,
        _ => u64::MAX - raw % (2 * PAGE),
    }
}

/// An emulated device's driver that records its pins and, as it must, unpins them in
/// `dma_unmap`.
#[derive(Default)]
struct Driver {
    /// (IOVA, pages, the physical pages `vfio_pin_pages()` returned).
    pinned: Mutex<Vec<(u64, u32, Vec<u64>)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl EmulatedDriver for Driver {
    fn dma_unmap(&self, vdev: &VfioDevice, iova: u64, length: u64) {
        let last = iova.saturating_add(length.saturating_sub(1));
        lock(&self.pinned).retain(|(i, n, _)| {
            let page = i & !(PAGE - 1);
            let inside = page <= last && page + u64::from(*n) * PAGE > iova;
            if inside {
                vdev.unpin_pages(*i, *n);
            }
            !inside
        });
    }
}

/// `IOMMU_IOAS_MAP_FILE`'s descriptor 3: the pages of a second process.
struct Shmem(Arc<Process>);

impl FileResolver for Shmem {
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

struct World {
    p: Arc<Process>,
    shmem: Arc<Process>,
    fd: Arc<Iommufd>,
    mem: ProcessMemory,
    driver: Arc<Driver>,
    emulated: Arc<VfioDevice>,
    files: Vec<VfioDeviceFile>,
}

/// A context with objects to hit: an IOAS with user memory mapped at [`IOVA`], a second IOAS,
/// the bound device attached to a dirty-tracking nesting parent on the first IOAS, a fault
/// queue, the core vIOMMU on, a file resolver; under VFIO, the physical device's file open
/// but not bound, and an emulated device bound and attached to the first IOAS. The user
/// buffer's tail holds `buffer`.
///
/// # Panics
/// When the host cannot give a fresh context these objects (not the stream's fault).
fn world(host: &Host, buffer: &[u8]) -> World {
    let p = host.mm.spawn().expect("a process");
    let fd = Arc::new(Iommufd::new(p.clone(), host.iommu.clone()));
    let mem = ProcessMemory::new(p.clone());
    fd.set_core_viommu(true);
    let shmem = host.mm.spawn().expect("a process");
    let file = shmem
        .mmap(Some(Va::new(SHMEM)), 8 * PAGE, Prot::RW, MapFlags::empty())
        .expect("shmem");
    assert_eq!(file.raw(), SHMEM);
    fd.set_file_resolver(Some(Arc::new(Shmem(shmem.clone()))));
    let buf = p
        .mmap(Some(Va::new(BUF)), BUF_LEN, Prot::RW, MapFlags::empty())
        .expect("buffer");
    let mut bytes = vec![0; BUF_LEN as usize];
    let n = buffer.len().min(bytes.len());
    bytes[..n].copy_from_slice(&buffer[..n]);
    template::fill_buffer(&mut bytes);
    p.write_bytes(buf, &bytes).expect("buffer contents");
    let va = p
        .mmap(None, 8 * PAGE, Prot::RW, MapFlags::empty())
        .expect("memory to map");
    let ioctl = |c: Command, v: u8| {
        let mut a = template::template(c, v);
        fd.ioctl(u64::from(c.ioctl_number()), &mut a, &mem)
    };
    assert_eq!(ioctl(Command::IoasAlloc, 0), Ok(()));
    let map = crate::abi::IommuIoasMap {
        size: 40,
        flags: crate::abi::IoasMapFlags::all().bits(),
        ioas_id: IOAS,
        __reserved: 0,
        user_va: va.raw(),
        length: 8 * PAGE,
        iova: IOVA,
    };
    let mut a = zerocopy::IntoBytes::as_bytes(&map).to_vec();
    assert_eq!(
        fd.ioctl(u64::from(Command::IoasMap.ioctl_number()), &mut a, &mem),
        Ok(())
    );
    assert_eq!(ioctl(Command::IoasAlloc, 0), Ok(()));
    assert_eq!(fd.bind_device(host.bound), Ok(DEV));
    let physical = VfioDevice::new(host.physical);
    let driver = Arc::new(Driver::default());
    let emulated = VfioDevice::emulated(driver.clone(), host.mem.clone());
    let files = vec![physical.open(), emulated.open()];
    assert_eq!(files[1].bind(fd.clone()), Ok(ACCESS));
    assert_eq!(files[1].attach(IOAS, None), Ok(IOAS));
    let parent = IommuHwptAlloc {
        size: 48,
        flags: (HwptAllocFlags::NEST_PARENT | HwptAllocFlags::DIRTY_TRACKING).bits(),
        dev_id: DEV,
        pt_id: IOAS,
        ..Default::default()
    };
    let mut a = zerocopy::IntoBytes::as_bytes(&parent).to_vec();
    assert_eq!(
        fd.ioctl(u64::from(Command::HwptAlloc.ioctl_number()), &mut a, &mem),
        Ok(())
    );
    fd.attach(DEV, PARENT, None).expect("attach the parent");
    let mut fault = IommuFaultAlloc {
        size: 16,
        ..Default::default()
    };
    fd.fault_alloc(&mut fault).expect("a fault queue");
    assert_eq!(fault.out_fault_id, FAULT);
    World {
        p,
        shmem,
        fd,
        mem,
        driver,
        emulated,
        files,
    }
}

/// Interprets `data` against a fresh context on `host`: the first 64 bytes go to the user
/// buffer's tail, the rest are steps.
///
/// # Panics
/// When an invariant breaks (the fuzzer reports it).
pub fn run(host: &Host, data: &[u8]) -> Summary {
    run_with(host, data, false)
}

/// As [`run`], with every ioctl on a VFIO device file (bind, attach, detach, on the
/// physical and the emulated device) among the fault-file, pin and copy steps: the VFIO cdev
/// surface (the cargo-fuzz target `vfio_cdev`).
///
/// # Panics
/// As [`run`].
pub fn run_vfio(host: &Host, data: &[u8]) -> Summary {
    run_with(host, data, true)
}

fn run_with(host: &Host, data: &[u8], vfio_only: bool) -> Summary {
    let (buffer, steps) = data.split_at(data.len().min(64));
    let w = world(host, &[&[0u8; 0x300][..], buffer].concat());
    let mut b = Bytes(steps);
    let mut s = Summary::default();
    while let Some(op) = b.u8() {
        s.ops += 1;
        if w.step(op, vfio_only, &mut b, &mut s).is_none() {
            break;
        }
        w.check(host);
    }
    w.close(host);
    s
}

impl World {
    /// One step; `None` when the stream ran out.
    fn step(&self, op: u8, vfio_only: bool, b: &mut Bytes<'_>, s: &mut Summary) -> Option<()> {
        match op % 16 {
            0..=8 => {
                let (c, v, size, raw) = (b.u8()?, b.u8()?, b.u8()?, b.u32()?);
                let vfio = vfio_only || op % 16 >= 6;
                let commands: Vec<Command> = Command::ALL
                    .iter()
                    .copied()
                    .filter(|c| (c.fd_kind() == FdKind::VfioDevice) == vfio)
                    .collect();
                let command = commands[usize::from(c) % commands.len()];
                let mut edits = Vec::new();
                for _ in 0..v >> 6 {
                    let (at, kind, raw) = (b.u8()?, b.u8()?, b.u32()?);
                    edits.push((usize::from(at % 14), word(kind, raw)));
                }
                let mut bytes = template::argument(command, v % 4, size_choice(size, raw), &edits);
                let before = bytes.clone();
                let number = u64::from(command.ioctl_number());
                let r = if vfio {
                    let fd = self.fd.clone();
                    let resolve = move |n: i32| match n {
                        IOMMUFD => Ok(fd.clone()),
                        _ => Err(Errno::EBADF),
                    };
                    let file = &self.files[usize::from(op & 0x10 != 0)];
                    file.ioctl(number, &mut bytes, &self.mem, &resolve)
                } else {
                    self.fd.ioctl(number, &mut bytes, &self.mem)
                };
                match r {
                    Ok(()) => s.ok += 1,
                    Err(_) => {
                        s.failed += 1;
                        assert_eq!(
                            bytes[..4],
                            before[..4],
                            "{command:?} failed and changed its size word"
                        );
                    }
                }
            }
            9 => {
                let (len, pos) = (b.u8()?, b.u64()?);
                if let Ok(file) = self.fd.fault_file(3) {
                    let mut buf = vec![0; usize::from(len % 100)];
                    let pos = if op & 0x80 != 0 { pos } else { 0 };
                    let _ = file.read(&mut buf, pos);
                }
            }
            10 => {
                let len = b.u8()?;
                let bytes = b.take::<24>()?;
                if let Ok(file) = self.fd.fault_file(3) {
                    let _ = file.write(&bytes[..usize::from(len % 25)], 0);
                }
            }
            11 | 12 => {
                let (kind, raw, n) = (b.u8()?, b.u64()?, b.u8()?);
                let npage = match n % 6 {
                    0 => 0,
                    5 => u32::MAX,
                    k => u32::from(k),
                };
                let at = iova(kind, raw);
                if let Ok(pas) = self.emulated.pin_pages(at, npage, n & 0x80 != 0) {
                    assert_eq!(pas.len(), npage as usize, "one address per page pinned");
                    lock(&self.driver.pinned).push((at, npage, pas));
                    s.pins += 1;
                }
            }
            13 => {
                let mut pinned = lock(&self.driver.pinned);
                if !pinned.is_empty() {
                    let (at, npage, _) = pinned.remove(0);
                    self.emulated.unpin_pages(at, npage);
                }
            }
            _ => {
                let (kind, raw, len) = (b.u8()?, b.u64()?, b.take::<2>()?);
                let len = usize::from(u16::from_le_bytes(len)) % (3 * PAGE as usize);
                let mut buf = vec![0x5a; len];
                let rw = if op & 0x80 != 0 {
                    RwBuf::Write(&buf)
                } else {
                    RwBuf::Read(&mut buf)
                };
                let result = self.emulated.dma_rw(iova(kind, raw), rw);
                if len == 0 {
                    assert_eq!(result, Err(Errno::EINVAL), "a copy of 0 bytes");
                }
            }
        }
        Some(())
    }

    /// The driver's recorded pins are still pinned: no unmap, destroy or detach dropped a
    /// pin without asking the driver first (`iommufd_access_notify_unmap()`).
    fn check(&self, host: &Host) {
        for (at, _, pas) in lock(&self.driver.pinned).iter() {
            for pa in pas {
                assert!(
                    host.mm.pin_count(pa & !(PAGE - 1)) > 0,
                    "the pin of IOVA {at:#x} (page {pa:#x}) went behind the driver's back"
                );
            }
        }
    }

    /// Closes the files and the context.
    fn close(self, host: &Host) {
        let World {
            p,
            shmem,
            fd,
            mem,
            driver,
            emulated,
            files,
        } = self;
        drop(files);
        assert!(
            lock(&driver.pinned).is_empty(),
            "closing the file had the driver unpin everything"
        );
        drop(emulated);
        drop(mem);
        assert_eq!(Arc::strong_count(&fd), 1, "nothing else holds the context");
        let weak = Arc::downgrade(&fd);
        drop(fd);
        assert!(
            weak.upgrade().is_none(),
            "the context and its objects are gone"
        );
        for info in [host.bound, host.physical] {
            for pasid in [0, 5] {
                let pasid = Pasid::new(pasid).unwrap_or(Pasid::MAX);
                assert_eq!(
                    host.iommu.domain_id(info.rid, pasid),
                    None,
                    "device {:?} PASID {pasid:?} still attached",
                    info.rid
                );
            }
        }
        assert_eq!(p.locked_pages(), 0, "no locked memory is left charged");
        assert_eq!(shmem.locked_pages(), 0);
        for space in [&p, &shmem] {
            for vma in space.vmas() {
                for page in (vma.start..vma.end).step_by(PAGE as usize) {
                    let Some(leaf) = space.leaf(Va::new(page)).filter(|l| l.present) else {
                        continue;
                    };
                    let pa = leaf.pa + (page - leaf.va);
                    assert_eq!(host.mm.pin_count(pa), 0, "page {page:#x} left pinned");
                }
            }
        }
    }
}
