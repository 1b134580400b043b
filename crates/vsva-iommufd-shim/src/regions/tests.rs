use std::cell::{Cell, RefCell};
use std::sync::Arc;

use vsva_demo::DemoDevice;
use vsva_host::Platform;
use vsva_mem::Rid;
use vsva_pcie::config::{PASID_CAP_OFFSET, PASID_CTRL};

use super::*;
use crate::program::OwnMemory;

/// A buffer of the program whose bytes from `bad_from` on cannot be reached.
struct TestBuf {
    bytes: RefCell<Vec<u8>>,
    bad_from: usize,
}

impl TestBuf {
    fn new(bytes: &[u8]) -> TestBuf {
        TestBuf {
            bytes: RefCell::new(bytes.to_vec()),
            bad_from: usize::MAX,
        }
    }

    fn zeroed(len: usize) -> TestBuf {
        Self::new(&vec![0; len])
    }
}

impl UserBuf for TestBuf {
    fn read(&self, at: usize, out: &mut [u8]) -> bool {
        if at + out.len() > self.bad_from {
            return false;
        }
        out.copy_from_slice(&self.bytes.borrow()[at..at + out.len()]);
        true
    }

    fn write(&self, at: usize, data: &[u8]) -> bool {
        if at + data.len() > self.bad_from {
            return false;
        }
        self.bytes.borrow_mut()[at..at + data.len()].copy_from_slice(data);
        true
    }
}

fn device() -> (Platform, Arc<DemoDevice>) {
    let platform = Platform::new(256 << 20, vsva_vtd::VtdConfig::default()).unwrap();
    let dev = platform.add_device(Rid::from_bdf(0, 1, 0).unwrap(), 8, 16);
    (platform, dev)
}

/// Runs `rw` on `dev` counting the times the device is run.
fn access(
    dev: &DemoDevice,
    pos: u64,
    buf: &TestBuf,
    count: usize,
    dir: Dir,
) -> (Result<usize, Errno>, usize) {
    let runs = Cell::new(0);
    let run = || runs.set(runs.get() + 1);
    let result = rw(dev, &run, pos, count, buf, dir);
    (result, runs.get())
}

fn bar0(off: u64) -> u64 {
    index_to_offset(BAR0_INDEX) + off
}

fn config(off: u64) -> u64 {
    index_to_offset(CONFIG_INDEX) + off
}

#[test]
fn regions_are_vfio_pci_s() {
    assert_eq!(VFIO_DEVICE_GET_INFO, 0x3b6b);
    assert_eq!(VFIO_DEVICE_GET_REGION_INFO, 0x3b6c);
    assert_eq!(VFIO_DEVICE_RESET, 0x3b6f);
    assert_eq!(index_to_offset(CONFIG_INDEX), 0x700_0000_0000);
    let (_platform, dev) = device();
    let region_info = |index| region_info(&*dev, index);
    let rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
    assert_eq!(
        region_info(0),
        Some(RegionInfo {
            size: 4096,
            flags: rw
        })
    );
    for empty in 1..=6 {
        assert_eq!(region_info(empty), Some(RegionInfo { size: 0, flags: 0 }));
    }
    assert_eq!(
        region_info(7),
        Some(RegionInfo {
            size: 4096,
            flags: rw
        })
    );
    for none in [VGA_INDEX, NUM_REGIONS, u32::MAX] {
        assert_eq!(region_info(none), None);
    }
}

#[test]
fn get_info_writes_what_argsz_has_room_for() {
    let mut info = [0xeeu32; 6];
    info[0] = 24;
    let addr = info.as_mut_ptr() as u64;
    get_info(&OwnMemory, addr).unwrap();
    // SAFETY: written through process_vm_writev; read it as memory holds it now.
    let seen = unsafe { std::ptr::read_volatile(&info) };
    assert_eq!(seen, [24, VFIO_DEVICE_FLAGS_PCI, 9, 5, 0, 0xee]);

    let mut short = [0xeeu32; 5];
    short[0] = 16;
    get_info(&OwnMemory, short.as_mut_ptr() as u64).unwrap();
    // SAFETY: as above.
    let seen = unsafe { std::ptr::read_volatile(&short) };
    assert_eq!(
        seen,
        [16, VFIO_DEVICE_FLAGS_PCI, 9, 5, 0xee],
        "no room for cap_offset"
    );

    let mut tiny = [15u32, 0, 0, 0];
    assert_eq!(
        get_info(&OwnMemory, tiny.as_mut_ptr() as u64),
        Err(Errno::EINVAL)
    );
    assert_eq!(get_info(&OwnMemory, 8), Err(Errno::EFAULT));
}

#[test]
fn get_region_info_fills_flags_size_and_offset() {
    let (_platform, dev) = device();
    let get_region_info = |mem: &dyn UserMemory, addr| get_region_info(&*dev, mem, addr);
    let mut info = [0u8; 32];
    info[..4].copy_from_slice(&32u32.to_le_bytes());
    info[8..12].copy_from_slice(&CONFIG_INDEX.to_le_bytes());
    info[12..16].copy_from_slice(&0x1234u32.to_le_bytes());
    get_region_info(&OwnMemory, info.as_mut_ptr() as u64).unwrap();
    // SAFETY: as in `get_info_writes_what_argsz_has_room_for`.
    let seen = unsafe { std::ptr::read_volatile(&info) };
    assert_eq!(get_u32(&seen, 4), 3, "READ | WRITE");
    assert_eq!(get_u32(&seen, 12), 0x1234, "cap_offset left as it was");
    assert_eq!(seen[16..24], 4096u64.to_le_bytes());
    assert_eq!(seen[24..32], (7u64 << 40).to_le_bytes());

    for index in [VGA_INDEX, NUM_REGIONS] {
        info[8..12].copy_from_slice(&index.to_le_bytes());
        assert_eq!(
            get_region_info(&OwnMemory, info.as_mut_ptr() as u64),
            Err(Errno::EINVAL)
        );
    }
    info[..4].copy_from_slice(&31u32.to_le_bytes());
    info[8..12].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(
        get_region_info(&OwnMemory, info.as_mut_ptr() as u64),
        Err(Errno::EINVAL)
    );
    assert_eq!(get_region_info(&OwnMemory, 8), Err(Errno::EFAULT));
}

#[test]
fn config_space_reads_pass_through_and_host_capabilities_are_read_only() {
    let (_platform, dev) = device();
    let buf = TestBuf::zeroed(8);
    assert_eq!(access(&dev, config(0), &buf, 4, Dir::Read).0, Ok(4));
    assert_eq!(buf.bytes.borrow()[..4], [0xf4, 0x1a, 0xf0, 0x10]);
    // Three bytes from offset 1: a byte, then an aligned word.
    let buf = TestBuf::zeroed(3);
    assert_eq!(access(&dev, config(1), &buf, 3, Dir::Read).0, Ok(3));
    assert_eq!(*buf.bytes.borrow(), [0x1a, 0xf0, 0x10]);

    // PASID control: the program's write is dropped.
    let ctrl = u64::from(PASID_CAP_OFFSET + PASID_CTRL);
    let before = dev.config_read(ctrl as u32, 2);
    let buf = TestBuf::new(&[0xff, 0xff]);
    assert_eq!(access(&dev, config(ctrl), &buf, 2, Dir::Write).0, Ok(2));
    assert_eq!(dev.config_read(ctrl as u32, 2), before);

    // Out of the space: EFAULT before anything moves.
    let buf = TestBuf::zeroed(8);
    for (off, count) in [(4096, 1), (4095, 2), (0, 4097), (u64::from(u32::MAX), 4)] {
        assert_eq!(
            access(&dev, config(off), &buf, count, Dir::Read).0,
            Err(Errno::EFAULT),
            "{off:#x}+{count}"
        );
    }
    let bad = TestBuf {
        bytes: RefCell::new(vec![0; 8]),
        bad_from: 4,
    };
    assert_eq!(
        access(&dev, config(0), &bad, 8, Dir::Read).0,
        Err(Errno::EFAULT)
    );
    assert_eq!(
        bad.bytes.borrow()[..4],
        [0xf4, 0x1a, 0xf0, 0x10],
        "the first dword landed"
    );
}

#[test]
fn bar0_takes_whole_register_writes_and_reads_any_lane() {
    let (_platform, dev) = device();
    let value = 0x1122_3344_5566_7788u64;
    let buf = TestBuf::new(&value.to_le_bytes());
    assert_eq!(
        access(&dev, bar0(regs::PATTERN), &buf, 8, Dir::Write),
        (Ok(8), 0)
    );
    assert_eq!(dev.mmio_read(regs::PATTERN), value);
    // A 4-byte read of the upper half, a 2-byte read, a 1-byte read.
    let out = TestBuf::zeroed(4);
    assert_eq!(
        access(&dev, bar0(regs::PATTERN + 4), &out, 4, Dir::Read).0,
        Ok(4)
    );
    assert_eq!(*out.bytes.borrow(), 0x1122_3344u32.to_le_bytes());
    assert_eq!(
        access(&dev, bar0(regs::PATTERN + 2), &out, 2, Dir::Read).0,
        Ok(2)
    );
    assert_eq!(out.bytes.borrow()[..2], [0x66, 0x55]);
    assert_eq!(
        access(&dev, bar0(regs::PATTERN + 7), &out, 1, Dir::Read).0,
        Ok(1)
    );
    assert_eq!(out.bytes.borrow()[0], 0x11);
    // Narrow and misaligned writes are dropped; the register keeps its value.
    let narrow = TestBuf::new(&[0xaa; 16]);
    assert_eq!(
        access(&dev, bar0(regs::PATTERN), &narrow, 4, Dir::Write).0,
        Ok(4)
    );
    assert_eq!(
        access(&dev, bar0(regs::PATTERN + 1), &narrow, 8, Dir::Write).0,
        Ok(8)
    );
    assert_eq!(dev.mmio_read(regs::PATTERN), value);
    // 16 bytes from SRC: two whole registers.
    let two = TestBuf::new(&[1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        access(&dev, bar0(regs::SRC), &two, 16, Dir::Write).0,
        Ok(16)
    );
    assert_eq!((dev.mmio_read(regs::SRC), dev.mmio_read(regs::DST)), (1, 2));
    // Past the last register: reads 0.
    let tail = TestBuf::new(&[0xff; 8]);
    assert_eq!(access(&dev, bar0(0x800), &tail, 8, Dir::Read).0, Ok(8));
    assert_eq!(*tail.bytes.borrow(), [0; 8]);
}

#[test]
fn bar0_bounds_and_bad_buffers() {
    let (_platform, dev) = device();
    let buf = TestBuf::zeroed(64);
    // Cut short at the end of the BAR.
    assert_eq!(access(&dev, bar0(4090), &buf, 64, Dir::Read).0, Ok(6));
    assert_eq!(
        access(&dev, bar0(4096), &buf, 1, Dir::Read).0,
        Err(Errno::EINVAL)
    );
    assert_eq!(
        access(&dev, bar0(4096), &buf, 0, Dir::Read).0,
        Ok(0),
        "count 0"
    );
    // Empty BARs, the absent ROM and VGA, past the last region.
    for index in [1, 5, ROM_INDEX, VGA_INDEX, NUM_REGIONS, 0xff_ffff] {
        let pos = index_to_offset(index);
        assert_eq!(access(&dev, pos, &buf, 4, Dir::Read).0, Err(Errno::EINVAL));
        assert_eq!(access(&dev, pos, &buf, 4, Dir::Write).0, Err(Errno::EINVAL));
    }
    // A write whose buffer goes bad after the first register: that one lands, then EFAULT.
    let bad = TestBuf {
        bytes: RefCell::new([7u8; 16].to_vec()),
        bad_from: 12,
    };
    assert_eq!(
        access(&dev, bar0(regs::SRC), &bad, 16, Dir::Write).0,
        Err(Errno::EFAULT)
    );
    assert_eq!(dev.mmio_read(regs::SRC), 0x0707_0707_0707_0707);
    assert_eq!(dev.mmio_read(regs::DST), 0);
}

#[test]
fn doorbell_writes_and_status_reads_run_the_device() {
    let (_platform, dev) = device();
    let one = TestBuf::new(&1u64.to_le_bytes());
    assert_eq!(
        access(&dev, bar0(regs::DOORBELL), &one, 8, Dir::Write),
        (Ok(8), 1)
    );
    // The command was refused (no PASID): STATUS reads Error, ERROR BadCommand.
    let out = TestBuf::zeroed(24);
    assert_eq!(
        access(&dev, bar0(regs::STATUS), &out, 24, Dir::Read),
        (Ok(24), 1)
    );
    let bytes = out.bytes.borrow();
    assert_eq!(bytes[..8], (regs::Status::Error as u64).to_le_bytes());
    assert_eq!(
        bytes[16..],
        (regs::DeviceError::BadCommand as u64).to_le_bytes()
    );
    // A narrow doorbell write does not ring; reading other registers does not run.
    drop(bytes);
    assert_eq!(
        access(&dev, bar0(regs::DOORBELL), &one, 4, Dir::Write),
        (Ok(4), 0)
    );
    assert_eq!(
        access(&dev, bar0(regs::RESULT), &out, 8, Dir::Read),
        (Ok(8), 0)
    );
}

#[test]
fn an_emulated_device_has_a_256_byte_configuration_region() {
    let mem: Arc<dyn vsva_mem::PhysMem> = Arc::new(vsva_mem::PhysMemory::new(1 << 20).unwrap());
    let (engine, _vdev) = crate::mdev::CopyEngine::new_vfio(mem);
    let dev: &dyn PciFunction = &*engine;
    assert_eq!(
        region_info(dev, CONFIG_INDEX),
        Some(RegionInfo {
            size: 256,
            flags: VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE
        })
    );
    assert_eq!(region_info(dev, BAR0_INDEX).map(|r| r.size), Some(4096));
    let buf = TestBuf::zeroed(8);
    let nothing = || {};
    let rw = |pos, count, dir| rw(dev, &nothing, pos, count, &buf, dir);
    assert_eq!(rw(config(0), 4, Dir::Read), Ok(4));
    assert_eq!(buf.bytes.borrow()[..4], [0xf4, 0x1a, 0xf1, 0x10]);
    assert_eq!(rw(config(252), 4, Dir::Read), Ok(4));
    assert_eq!(rw(config(253), 4, Dir::Read), Err(Errno::EFAULT));
    assert_eq!(rw(config(256), 1, Dir::Write), Err(Errno::EFAULT));
    // BAR 0 is the engine's registers, cut the same way as the demo's
    *buf.bytes.borrow_mut() = 0x1122_3344_5566_7788u64.to_le_bytes().to_vec();
    assert_eq!(rw(bar0(regs::PATTERN), 8, Dir::Write), Ok(8));
    assert_eq!(rw(bar0(regs::PATTERN + 4), 4, Dir::Read), Ok(4));
    assert_eq!(buf.bytes.borrow()[..4], [0x44, 0x33, 0x22, 0x11]);
}
