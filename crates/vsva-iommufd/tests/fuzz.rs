//! Bad input from both sides at once: random ioctl bytes on the iommufd and on two VFIO device
//! files (a physical device and an emulated one), interleaved with an emulated device's driver
//! pinning, copying and unpinning at random IOVAs. Whatever the sequence, nothing panics, every
//! failure is an errno, and once the files are closed and the context is gone the process
//! has no locked memory left and no page stays pinned.
//!
//! Each argument starts as a well-formed one for the objects the test made ([`template`]) and
//! has a few of its 32-bit words overwritten with values that reach past the first checks:
//! small IDs and flags, page multiples, single bits, `u32::MAX`, random words, and addresses
//! in a user buffer (at [`BUF`]) whose head holds well-formed arrays and whose rest is random.

mod common;

use std::sync::{Arc, Mutex};

use common::{FIXED_RW, Fixture, MIB, PAGE, ShmemResolver, open};
use proptest::prelude::*;
use vsva_iommufd::EmulatedDriver;
use vsva_iommufd::RwBuf;
use vsva_iommufd::abi::{
    Command, Errno, FdKind, HwInfoType, HwQueueType, HwptAllocFlags, HwptDataType,
    HwptInvalidateDataType, IoasMapFlags, IommuDestroy, IommuFaultAlloc, IommuHwInfo,
    IommuHwQueueAlloc, IommuHwptAlloc, IommuHwptGetDirtyBitmap, IommuHwptInvalidate,
    IommuHwptSetDirtyTracking, IommuHwptVtdS1, IommuHwptVtdS1Invalidate, IommuIoasAlloc,
    IommuIoasAllowIovas, IommuIoasChangeProcess, IommuIoasCopy, IommuIoasIovaRanges, IommuIoasMap,
    IommuIoasMapFile, IommuIoasUnmap, IommuIovaRange, IommuOption, IommuVdeviceAlloc,
    IommuVeventqAlloc, IommuVfioIoas, IommuViommuAlloc, OptionId, OptionOp, VeventqType,
    VfioDeviceAttachIommufdPt, VfioDeviceBindIommufd, VfioDeviceDetachIommufdPt, VfioIoasOp,
    ViommuType,
};
use vsva_iommufd::{Iommufd, VfioDevice, VfioDeviceFile};
use vsva_mem::Va;
use vsva_mm::{MapFlags, Process, Prot};
use zerocopy::IntoBytes;

/// Where the user buffer the arguments point into is mapped (below 4 GiB, so a 32-bit word
/// names it).
const BUF: u64 = 0x4000_0000;
const BUF_LEN: u64 = 16 * PAGE;
/// Where the test maps user memory into the first IOAS.
const IOVA: u64 = MIB;
/// The iommufd's descriptor for the VFIO files' bind.
const IOMMUFD: i32 = 3;
/// The objects [`world`] makes, by ID.
const IOAS: u32 = 1;
const IOAS2: u32 = 2;
const DEV: u32 = 3;
const ACCESS: u32 = 4;
const PARENT: u32 = 5;
const FAULT: u32 = 6;
/// Where in the buffer each command's array is: IOVA ranges, VT-d first-stage data, VT-d
/// invalidation entries, and room for the kernel to write (ranges, bitmaps, hw info).
const RANGES: u64 = BUF;
const S1_DATA: u64 = BUF + 0x100;
const INV_ENTRIES: u64 = BUF + 0x200;
const OUT: u64 = BUF + 0x1000;
/// Pages of the buffer the tests map, and where.
const MAPPED: u64 = BUF + 0x4000;
const MAP_IOVA: u64 = 0x40_0000;

/// Where the memory of the file `IOMMU_IOAS_MAP_FILE` maps is (8 pages).
const SHMEM: u64 = 0x1000_0000;

/// An emulated device's driver that keeps a record of its pins and, as it must, unpins them in
/// `dma_unmap`.
#[derive(Default)]
struct Driver {
    pinned: Mutex<Vec<(u64, u32)>>,
}

impl EmulatedDriver for Driver {
    fn dma_unmap(&self, vdev: &VfioDevice, iova: u64, length: u64) {
        let last = iova.saturating_add(length.saturating_sub(1));
        self.pinned.lock().unwrap().retain(|&(i, n)| {
            let page = i & !(PAGE - 1);
            let inside = page <= last && page + u64::from(n) * PAGE > iova;
            if inside {
                vdev.unpin_pages(i, n);
            }
            !inside
        });
    }
}

/// One step of a sequence.
#[derive(Debug, Clone)]
enum Op {
    /// An ioctl on the iommufd: command index, template variant, the `size` to claim, and
    /// (word index, value) overwrites.
    Iommufd(usize, u8, SizeChoice, Vec<(usize, u32)>),
    /// An ioctl on a VFIO device file (`emulated` or physical): command index among the VFIO
    /// ones, variant, size, overwrites.
    Vfio(bool, usize, u8, SizeChoice, Vec<(usize, u32)>),
    /// A read of `len` bytes from the fault file, at position `pos`.
    FaultRead(usize, u64),
    /// A write of `bytes` to the fault file, at position `pos`.
    FaultWrite(Vec<u8>, u64),
    /// `vfio_pin_pages(iova, npage, write)` by the emulated device's driver.
    Pin(u64, u32, bool),
    /// A driver's unpin of its oldest recorded pin.
    Unpin,
    /// `vfio_dma_rw()` of `len` bytes at `iova`, writing if `write`.
    Rw(u64, usize, bool),
}

/// What `size` / `argsz` an argument claims.
#[derive(Debug, Clone, Copy)]
enum SizeChoice {
    Exact,
    Min,
    Bigger,
    Random(u32),
}

fn word() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => 0u32..8,
        1 => Just(u32::MAX),
        2 => any::<u32>(),
        2 => (0u32..0x400).prop_map(|p| p << 12),
        1 => (0u32..32).prop_map(|b| 1 << b),
        2 => (0u32..BUF_LEN as u32).prop_map(|o| BUF as u32 + o),
        1 => Just(IOVA as u32),
    ]
}

fn size_choice() -> impl Strategy<Value = SizeChoice> {
    prop_oneof![
        6 => Just(SizeChoice::Exact),
        2 => Just(SizeChoice::Min),
        1 => Just(SizeChoice::Bigger),
        1 => (0u32..96).prop_map(SizeChoice::Random),
    ]
}

fn iova() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => (0u64..12 * PAGE).prop_map(|o| IOVA - 2 * PAGE + o),
        1 => any::<u64>(),
        1 => (0u64..2 * PAGE).prop_map(|o| u64::MAX - o),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let edits = || proptest::collection::vec((0usize..14, word()), 0..3);
    prop_oneof![
        10 => (0..Command::ALL.len(), 0u8..4, size_choice(), edits())
            .prop_map(|(c, v, s, w)| Op::Iommufd(c, v, s, w)),
        4 => (any::<bool>(), 0usize..3, 0u8..4, size_choice(), edits())
            .prop_map(|(e, c, v, s, w)| Op::Vfio(e, c, v, s, w)),
        1 => (prop_oneof![Just(0usize), Just(40), Just(80), 0usize..100], prop_oneof![3 => Just(0u64), 1 => any::<u64>()])
            .prop_map(|(l, p)| Op::FaultRead(l, p)),
        1 => (proptest::collection::vec(any::<u8>(), 0..24), prop_oneof![3 => Just(0u64), 1 => any::<u64>()])
            .prop_map(|(b, p)| Op::FaultWrite(b, p)),
        3 => (iova(), prop_oneof![1u32..4, Just(0), Just(u32::MAX)], any::<bool>())
            .prop_map(|(i, n, w)| Op::Pin(i, n, w)),
        2 => Just(Op::Unpin),
        2 => (iova(), 0usize..3 * PAGE as usize, any::<bool>())
            .prop_map(|(i, l, w)| Op::Rw(i, l, w)),
    ]
}

/// A well-formed argument of `command` for the objects of [`world`]; `variant` picks among
/// a few for the commands that have several shapes.
fn template(command: Command, variant: u8) -> Vec<u8> {
    let rw = IoasMapFlags::all().bits();
    let v = u32::from(variant);
    match command {
        Command::Destroy => IommuDestroy { size: 8, id: 7 + v }.as_bytes().to_vec(),
        Command::IoasAlloc => IommuIoasAlloc {
            size: 12,
            ..Default::default()
        }
        .as_bytes()
        .to_vec(),
        Command::IoasAllowIovas => IommuIoasAllowIovas {
            size: 24,
            ioas_id: IOAS2,
            num_iovas: v % 3,
            __reserved: 0,
            allowed_iovas: RANGES,
        }
        .as_bytes()
        .to_vec(),
        Command::IoasCopy => IommuIoasCopy {
            size: 40,
            flags: rw,
            dst_ioas_id: IOAS2 - v % 2,
            src_ioas_id: IOAS,
            length: 2 * PAGE,
            dst_iova: 0x20_0000 + u64::from(v) * PAGE,
            src_iova: IOVA + u64::from(v) * PAGE,
        }
        .as_bytes()
        .to_vec(),
        Command::IoasIovaRanges => IommuIoasIovaRanges {
            size: 32,
            ioas_id: IOAS + v % 2,
            num_iovas: v,
            __reserved: 0,
            allowed_iovas: OUT,
            out_iova_alignment: 0,
        }
        .as_bytes()
        .to_vec(),
        Command::IoasMap => IommuIoasMap {
            size: 40,
            flags: if v == 0 {
                rw & !IoasMapFlags::FIXED_IOVA.bits()
            } else {
                rw
            },
            ioas_id: IOAS + v % 2,
            __reserved: 0,
            user_va: MAPPED,
            length: 2 * PAGE,
            iova: MAP_IOVA + u64::from(v) * PAGE,
        }
        .as_bytes()
        .to_vec(),
        Command::IoasUnmap => IommuIoasUnmap {
            size: 24,
            ioas_id: IOAS + v % 2,
            iova: if v == 3 { 0 } else { IOVA },
            length: if v == 3 { u64::MAX } else { 8 * PAGE },
        }
        .as_bytes()
        .to_vec(),
        Command::Option => IommuOption {
            size: 24,
            option_id: if v % 2 == 0 {
                OptionId::HUGE_PAGES
            } else {
                OptionId::RLIMIT_MODE
            },
            op: if v < 2 { OptionOp::GET } else { OptionOp::SET },
            __reserved: 0,
            object_id: if v % 2 == 0 { IOAS } else { 0 },
            val64: u64::from(v % 2),
        }
        .as_bytes()
        .to_vec(),
        Command::VfioIoas => IommuVfioIoas {
            size: 12,
            ioas_id: IOAS,
            op: VfioIoasOp(v as u16 % 3),
            __reserved: 0,
        }
        .as_bytes()
        .to_vec(),
        Command::HwptAlloc => {
            let nested = v % 2 == 1;
            IommuHwptAlloc {
                size: 48,
                flags: match v {
                    0 => HwptAllocFlags::NEST_PARENT.bits(),
                    2 => HwptAllocFlags::DIRTY_TRACKING.bits(),
                    3 => HwptAllocFlags::FAULT_ID_VALID.bits(),
                    _ => 0,
                },
                dev_id: DEV,
                pt_id: if nested { PARENT } else { IOAS },
                data_type: if nested {
                    HwptDataType::VTD_S1
                } else {
                    HwptDataType::NONE
                },
                data_len: if nested { 24 } else { 0 },
                data_uptr: if nested { S1_DATA } else { 0 },
                fault_id: FAULT,
                ..Default::default()
            }
            .as_bytes()
            .to_vec()
        }
        Command::GetHwInfo => IommuHwInfo {
            size: 40,
            flags: 0,
            dev_id: DEV,
            data_len: 8 * v,
            data_uptr: OUT,
            data_type: HwInfoType(v % 2),
            ..Default::default()
        }
        .as_bytes()
        .to_vec(),
        Command::HwptSetDirtyTracking => IommuHwptSetDirtyTracking {
            size: 16,
            flags: v % 2,
            hwpt_id: PARENT + v / 2 * 2,
            __reserved: 0,
        }
        .as_bytes()
        .to_vec(),
        Command::HwptGetDirtyBitmap => IommuHwptGetDirtyBitmap {
            size: 48,
            hwpt_id: PARENT + v / 2 * 2,
            flags: v % 2,
            __reserved: 0,
            iova: IOVA,
            length: 8 * PAGE,
            page_size: PAGE << v,
            data: OUT,
        }
        .as_bytes()
        .to_vec(),
        Command::HwptInvalidate => IommuHwptInvalidate {
            size: 32,
            hwpt_id: PARENT + 2 + v,
            data_uptr: INV_ENTRIES,
            data_type: HwptInvalidateDataType::VTD_S1,
            entry_len: 24,
            entry_num: v,
            __reserved: 0,
        }
        .as_bytes()
        .to_vec(),
        Command::FaultQueueAlloc => IommuFaultAlloc {
            size: 16,
            ..Default::default()
        }
        .as_bytes()
        .to_vec(),
        Command::IoasMapFile => IommuIoasMapFile {
            size: 40,
            flags: rw,
            ioas_id: IOAS + v % 2,
            fd: 3,
            start: SHMEM + u64::from(v) * PAGE,
            length: 2 * PAGE,
            iova: 0x60_0000 + u64::from(v) * PAGE,
        }
        .as_bytes()
        .to_vec(),
        Command::ViommuAlloc => IommuViommuAlloc {
            size: 40,
            type_: ViommuType(v % 2),
            dev_id: DEV,
            hwpt_id: PARENT,
            ..Default::default()
        }
        .as_bytes()
        .to_vec(),
        Command::VdeviceAlloc => IommuVdeviceAlloc {
            size: 24,
            viommu_id: 7 + v,
            dev_id: DEV,
            out_vdevice_id: 0,
            virt_id: u64::from(v),
        }
        .as_bytes()
        .to_vec(),
        Command::IoasChangeProcess => IommuIoasChangeProcess {
            size: 8,
            __reserved: 0,
        }
        .as_bytes()
        .to_vec(),
        Command::VeventqAlloc => IommuVeventqAlloc {
            size: 32,
            viommu_id: 7 + v,
            type_: VeventqType::ARM_SMMUV3,
            veventq_depth: 8,
            ..Default::default()
        }
        .as_bytes()
        .to_vec(),
        Command::HwQueueAlloc => IommuHwQueueAlloc {
            size: 40,
            viommu_id: 7 + v,
            type_: HwQueueType::TEGRA241_CMDQV,
            nesting_parent_iova: IOVA,
            length: PAGE,
            ..Default::default()
        }
        .as_bytes()
        .to_vec(),
        Command::VfioDeviceBindIommufd => VfioDeviceBindIommufd {
            argsz: 24,
            flags: 0,
            iommufd: IOMMUFD,
            out_devid: 0,
            token_uuid_ptr: OUT,
        }
        .as_bytes()
        .to_vec(),
        Command::VfioDeviceAttachIommufdPt => VfioDeviceAttachIommufdPt {
            argsz: 16,
            flags: v / 2,
            pt_id: if v % 2 == 0 { IOAS } else { PARENT },
            pasid: 5,
        }
        .as_bytes()
        .to_vec(),
        Command::VfioDeviceDetachIommufdPt => VfioDeviceDetachIommufdPt {
            argsz: 12,
            flags: v % 2,
            pasid: 5,
        }
        .as_bytes()
        .to_vec(),
    }
}

/// The argument bytes: `command`'s template (plus 8 zero bytes past the struct), its words
/// overwritten by `edits`, the leading `size` as `size` says.
fn argument(command: Command, variant: u8, size: SizeChoice, edits: &[(usize, u32)]) -> Vec<u8> {
    let mut bytes = template(command, variant);
    assert_eq!(bytes.len(), command.size());
    bytes.resize(command.size() + 8, 0);
    let len = bytes.len();
    match size {
        SizeChoice::Exact => bytes[..4].copy_from_slice(&(command.size() as u32).to_le_bytes()),
        SizeChoice::Min => bytes[..4].copy_from_slice(&(command.min_size() as u32).to_le_bytes()),
        SizeChoice::Bigger => bytes[..4].copy_from_slice(&(len as u32).to_le_bytes()),
        SizeChoice::Random(s) => bytes[..4].copy_from_slice(&s.to_le_bytes()),
    }
    for &(at, value) in edits {
        let at = at * 4 % len;
        if at + 4 <= len {
            bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
        }
    }
    bytes
}

/// The head of the user buffer: two IOVA ranges, VT-d first-stage data, two VT-d
/// invalidation entries; the rest stays as given.
fn fill_buffer(buffer: &mut [u8]) {
    let mut put = |addr: u64, bytes: &[u8]| {
        let at = (addr - BUF) as usize;
        buffer[at..at + bytes.len()].copy_from_slice(bytes);
    };
    let ranges = [
        IommuIovaRange {
            start: PAGE,
            last: 0xffff_ffff,
        },
        IommuIovaRange {
            start: 1 << 40,
            last: (1 << 48) - 1,
        },
    ];
    put(RANGES, ranges.as_bytes());
    let s1 = IommuHwptVtdS1 {
        flags: 0,
        pgtbl_addr: IOVA,
        addr_width: 48,
        __reserved: 0,
    };
    put(S1_DATA, s1.as_bytes());
    let inv = [
        IommuHwptVtdS1Invalidate {
            addr: 0,
            npages: u64::MAX,
            flags: 0,
            __reserved: 0,
        },
        IommuHwptVtdS1Invalidate {
            addr: IOVA,
            npages: 1,
            flags: 1,
            __reserved: 0,
        },
    ];
    put(INV_ENTRIES, inv.as_bytes());
}

struct World {
    f: Fixture,
    shmem: Arc<Process>,
    driver: Arc<Driver>,
    emulated: Arc<VfioDevice>,
    files: Vec<VfioDeviceFile>,
}

/// A context with objects to hit (see the IDs above): an IOAS with user memory mapped at
/// [`IOVA`], a second IOAS, a bound device attached to a dirty-tracking nesting parent on the
/// first IOAS, a fault queue, the core vIOMMU on, a file resolver; under VFIO, a physical
/// device with a file open but not bound, and an emulated device bound and attached to the
/// first IOAS.
fn world(buffer: &[u8]) -> World {
    let f = open();
    f.fd.set_core_viommu(true);
    let shmem = f.host.mm.spawn().unwrap();
    let file = shmem
        .mmap(Some(Va::new(SHMEM)), 8 * PAGE, Prot::RW, MapFlags::empty())
        .unwrap();
    assert_eq!(file.raw(), SHMEM);
    f.fd.set_file_resolver(Some(Arc::new(ShmemResolver(shmem.clone()))));
    let buf =
        f.p.mmap(Some(Va::new(BUF)), BUF_LEN, Prot::RW, MapFlags::empty())
            .unwrap();
    assert_eq!(buf.raw(), BUF);
    let mut buffer = buffer.to_vec();
    fill_buffer(&mut buffer);
    f.p.write_bytes(buf, &buffer).unwrap();
    let va = f.buffer(8 * PAGE);
    assert_eq!(f.alloc(), Ok(IOAS));
    f.map(IOAS, FIXED_RW, va, 8 * PAGE, IOVA).unwrap();
    assert_eq!(f.alloc(), Ok(IOAS2));
    assert_eq!(f.plug_and_bind(3).1, DEV);
    let (_, info) = f.plug(4);
    let physical = VfioDevice::new(info);
    let driver = Arc::new(Driver::default());
    let emulated = VfioDevice::emulated(driver.clone(), f.host.mem.clone());
    let files = vec![physical.open(), emulated.open()];
    assert_eq!(files[1].bind(f.fd.clone()), Ok(ACCESS));
    assert_eq!(files[1].attach(IOAS, None), Ok(IOAS));
    let parent = HwptAllocFlags::NEST_PARENT | HwptAllocFlags::DIRTY_TRACKING;
    assert_eq!(f.hwpt_paging(DEV, IOAS, parent.bits()), Ok(PARENT));
    f.fd.attach(DEV, PARENT, None).unwrap();
    let mut fault = IommuFaultAlloc {
        size: 16,
        ..Default::default()
    };
    f.fd.fault_alloc(&mut fault).unwrap();
    assert_eq!(fault.out_fault_id, FAULT);
    World {
        f,
        shmem,
        driver,
        emulated,
        files,
    }
}

impl World {
    fn run(&self, op: &Op) {
        let vfio: Vec<Command> = Command::ALL
            .iter()
            .copied()
            .filter(|c| c.fd_kind() == FdKind::VfioDevice)
            .collect();
        match op {
            Op::Iommufd(c, variant, size, edits) => {
                let command = Command::ALL[*c];
                let mut bytes = argument(command, *variant, *size, edits);
                let _ = self.f.raw(u64::from(command.ioctl_number()), &mut bytes);
            }
            Op::Vfio(emulated, c, variant, size, edits) => {
                let command = vfio[*c % vfio.len()];
                let mut bytes = argument(command, *variant, *size, edits);
                let fd = self.f.fd.clone();
                let resolve = move |n: i32| match n {
                    IOMMUFD => Ok(fd.clone()),
                    _ => Err(Errno::EBADF),
                };
                let file = &self.files[usize::from(*emulated)];
                let _ = file.ioctl(
                    u64::from(command.ioctl_number()),
                    &mut bytes,
                    &self.f.mem,
                    &resolve,
                );
            }
            Op::FaultRead(len, pos) => {
                if let Ok(file) = self.f.fd.fault_file(3) {
                    let mut buf = vec![0; *len];
                    let _ = file.read(&mut buf, *pos);
                }
            }
            Op::FaultWrite(bytes, pos) => {
                if let Ok(file) = self.f.fd.fault_file(3) {
                    let _ = file.write(bytes, *pos);
                }
            }
            Op::Pin(iova, npage, write) => {
                if let Ok(pas) = self.emulated.pin_pages(*iova, *npage, *write) {
                    assert_eq!(pas.len(), *npage as usize);
                    self.driver.pinned.lock().unwrap().push((*iova, *npage));
                }
            }
            Op::Unpin => {
                let mut pinned = self.driver.pinned.lock().unwrap();
                if !pinned.is_empty() {
                    let (iova, npage) = pinned.remove(0);
                    self.emulated.unpin_pages(iova, npage);
                }
            }
            Op::Rw(iova, len, write) => {
                let mut buf = vec![0x5a; *len];
                let rw = if *write {
                    RwBuf::Write(&buf)
                } else {
                    RwBuf::Read(&mut buf)
                };
                let result = self.emulated.dma_rw(*iova, rw);
                if *len == 0 {
                    assert_eq!(result, Err(Errno::EINVAL));
                }
            }
        }
    }

    /// Closes the files and the context; the process must have nothing locked or pinned.
    fn close(self) {
        let World {
            f,
            shmem,
            driver,
            emulated,
            files,
        } = self;
        drop(files);
        assert!(
            driver.pinned.lock().unwrap().is_empty(),
            "closing the file had the driver unpin everything"
        );
        drop(emulated);
        let Fixture { p, fd, mem, host } = f;
        drop(mem);
        assert_eq!(Arc::strong_count(&fd), 1, "nothing else holds the context");
        drop::<Arc<Iommufd>>(fd);
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_ioctls_and_driver_calls_never_panic_or_leak(
        buffer in proptest::collection::vec(any::<u8>(), BUF_LEN as usize),
        ops in proptest::collection::vec(op(), 1..48),
    ) {
        let w = world(&buffer);
        for op in &ops {
            w.run(op);
        }
        w.close();
    }
}
