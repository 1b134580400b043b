//! The regions of a VFIO device, as vfio-pci presents a PCI function (Linux
//! `include/uapi/linux/vfio.h`, `drivers/vfio/pci/vfio_pci_core.c`, `vfio_pci_rdwr.c`,
//! `vfio_pci_config.c`) and as a mediated device's driver presents its emulated one with
//! the same layout (`samples/vfio-mdev/mtty.c`): `VFIO_DEVICE_GET_INFO`,
//! `VFIO_DEVICE_GET_REGION_INFO`, and reads and writes of the device file at
//! `(region index << 40) + offset` (`VFIO_PCI_INDEX_TO_OFFSET`). What is behind BAR 0 and
//! configuration space is a [`PciFunction`]: a demo endpoint, or an emulated copy engine
//! ([`crate::mdev`]).
//!
//! | index | region | size | flags |
//! |---|---|---|---|
//! | 0 | BAR 0: 64-bit registers ([`vsva_demo::regs`], [`crate::mdev`]) | [`BAR0_SIZE`] (4 KiB) | READ, WRITE |
//! | 1..=5 | BARs 1-5: not implemented | 0 | none |
//! | 6 | expansion ROM: none | 0 | none |
//! | 7 | configuration space | [`PciFunction::config_size`]: [`CONFIG_SIZE`] (4 KiB) for a PCIe endpoint, 256 bytes for the emulated device | READ, WRITE |
//! | 8 | VGA: not a VGA device | `EINVAL` | |
//!
//! No region can be `mmap`ed (no `VFIO_REGION_INFO_FLAG_MMAP`): every access is a `pread` or
//! `pwrite`, so the device sees each one.
//!
//! # BAR 0 accesses
//! As `vfio_pci_core_do_io_rw()` (Linux 6.11 and later) does, an access is cut into naturally
//! aligned 8-, 4-, 2- and 1-byte pieces, each one access to the device. The demo registers
//! are 64-bit, and the device decides what a narrower access does:
//! * a read of any piece returns those bytes of the register holding it (the register's
//!   byte lanes); offsets past the last register (ERROR, 0x50) read 0;
//! * only a whole, aligned 8-byte write reaches a register; a narrower write is dropped
//!   (the device ignores partial register writes), as are writes past the last register.
//!
//! # The device runs when the program looks
//! A real function works on its own once its doorbell rings; the demo device advances only
//! when [`DemoDevice::run`](vsva_demo::DemoDevice::run) is called. So the shim runs it synchronously — until it
//! completes, fails, or waits for a page — right after a write to DOORBELL, before a read of
//! STATUS, and (in [`crate::shim`]) after a page response is written to a fault queue. A
//! program that rings the doorbell and polls STATUS sees what it would on hardware, without
//! a thread. (The emulated device does its work inside the DOORBELL write itself, as an
//! mdev driver's `write` handler does.)
//!
//! # Configuration space
//! Accesses are cut into aligned 4-, 2- and 1-byte pieces (`vfio_config_do_rw()`), each a
//! configuration read or write of the function (the emulated device's header is its own:
//! [`crate::mdev`]). The host kernel owns the PASID, ATS and Page
//! Request capabilities (the shim enables them when it builds the machine, as the IOMMU
//! driver does at probe): writes to them are dropped, as vfio-pci's default permissions for
//! extended capabilities allow no writes (`ecap_perms`). Everything else passes through; the
//! demo's type-0 header is a stub whose registers read 0 (so there is no Memory Space Enable
//! for `__vfio_pci_memory_enabled()` to check, and BAR accesses never fail with `EIO`).

use vsva_demo::regs;
use vsva_iommufd::UserMemory;
use vsva_iommufd::abi::Errno;
use vsva_iommufd::abi::ioctl::{VFIO_BASE, VFIO_TYPE, io};
use vsva_pcie::config::{
    CONFIG_SPACE_SIZE, EXT_CAP_ID_ATS, EXT_CAP_ID_PASID, EXT_CAP_ID_PRI, EXT_CAP_START,
};

/// `VFIO_DEVICE_GET_INFO`.
pub const VFIO_DEVICE_GET_INFO: u32 = io(VFIO_TYPE, VFIO_BASE + 7);
/// `VFIO_DEVICE_GET_REGION_INFO`.
pub const VFIO_DEVICE_GET_REGION_INFO: u32 = io(VFIO_TYPE, VFIO_BASE + 8);
/// `VFIO_DEVICE_RESET`.
pub const VFIO_DEVICE_RESET: u32 = io(VFIO_TYPE, VFIO_BASE + 11);

/// `VFIO_DEVICE_FLAGS_PCI`: a vfio-pci device.
pub const VFIO_DEVICE_FLAGS_PCI: u32 = 1 << 1;
/// `VFIO_REGION_INFO_FLAG_READ`.
pub const VFIO_REGION_INFO_FLAG_READ: u32 = 1 << 0;
/// `VFIO_REGION_INFO_FLAG_WRITE`.
pub const VFIO_REGION_INFO_FLAG_WRITE: u32 = 1 << 1;

/// `VFIO_PCI_BAR0_REGION_INDEX`.
pub const BAR0_INDEX: u32 = 0;
/// `VFIO_PCI_BAR5_REGION_INDEX`.
pub const BAR5_INDEX: u32 = 5;
/// `VFIO_PCI_ROM_REGION_INDEX`.
pub const ROM_INDEX: u32 = 6;
/// `VFIO_PCI_CONFIG_REGION_INDEX`.
pub const CONFIG_INDEX: u32 = 7;
/// `VFIO_PCI_VGA_REGION_INDEX`.
pub const VGA_INDEX: u32 = 8;
/// `VFIO_PCI_NUM_REGIONS`: the demo has no device-specific regions beyond them.
pub const NUM_REGIONS: u32 = 9;
/// `VFIO_PCI_NUM_IRQS`.
pub const NUM_IRQS: u32 = 5;
/// `VFIO_PCI_OFFSET_SHIFT`: a region's offset in the device file is its index shifted by it.
pub const OFFSET_SHIFT: u32 = 40;
/// `VFIO_PCI_OFFSET_MASK`.
pub const OFFSET_MASK: u64 = (1 << OFFSET_SHIFT) - 1;

/// BAR 0: the register block (through ERROR) rounded up to a power of two, at least a page
/// (PCI BARs are powers of two; Linux maps no BAR smaller than a page to user space).
pub const BAR0_SIZE: u64 = {
    let regs = (regs::ERROR + 8).next_power_of_two();
    if regs < 4096 { 4096 } else { regs }
};

/// The configuration region: the whole PCIe configuration space (`pdev->cfg_size`), since
/// the endpoint has extended capabilities.
pub const CONFIG_SIZE: u64 = CONFIG_SPACE_SIZE as u64;

/// What is behind a VFIO device's BAR 0 and configuration space: a PCI function as
/// vsva-demo defines it (a demo endpoint, or the emulated copy engine).
pub use vsva_demo::Function as PciFunction;

/// `offsetofend(struct vfio_device_info, num_irqs)`: the least `argsz`.
const DEVICE_INFO_MINSZ: usize = 16;
/// `offsetofend(struct vfio_device_info, cap_offset)`: with room for it, it is written (0).
const DEVICE_INFO_CAPSZ: usize = 20;
/// `sizeof(struct vfio_region_info)`, also its least `argsz` (`offsetofend(.., offset)`).
const REGION_INFO_SIZE: usize = 32;

/// The offset of region `index` in the device file (`VFIO_PCI_INDEX_TO_OFFSET`).
pub const fn index_to_offset(index: u32) -> u64 {
    (index as u64) << OFFSET_SHIFT
}

/// What `VFIO_DEVICE_GET_REGION_INFO` reports for one region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionInfo {
    /// Bytes.
    pub size: u64,
    /// `VFIO_REGION_INFO_FLAG_*`.
    pub flags: u32,
}

/// Region `index` of `dev`, as `vfio_pci_ioctl_get_region_info()` describes it; `None`
/// (`EINVAL`) for the VGA region of a device that is not VGA, and for indexes past the last
/// region.
pub fn region_info(dev: &dyn PciFunction, index: u32) -> Option<RegionInfo> {
    let rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
    let empty = RegionInfo { size: 0, flags: 0 };
    match index {
        BAR0_INDEX => Some(RegionInfo {
            size: BAR0_SIZE,
            flags: rw,
        }),
        // Unimplemented BARs, and no expansion ROM: size 0, no flags.
        1..=BAR5_INDEX | ROM_INDEX => Some(empty),
        CONFIG_INDEX => Some(RegionInfo {
            size: dev.config_size(),
            flags: rw,
        }),
        _ => None,
    }
}

fn get_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

fn put_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

/// `VFIO_DEVICE_GET_INFO` with `struct vfio_device_info` at `addr`
/// (`vfio_pci_ioctl_get_info()`): the first 16 bytes are read (`EFAULT`), `argsz` below 16
/// is `EINVAL`; then `flags` (`VFIO_DEVICE_FLAGS_PCI`: the device cannot be reset),
/// `num_regions`, `num_irqs` and, if `argsz` has room for it, `cap_offset` (0: no
/// capabilities) are written back.
///
/// # Errors
/// As said.
pub fn get_info(mem: &dyn UserMemory, addr: u64) -> Result<(), Errno> {
    let mut info = [0u8; DEVICE_INFO_CAPSZ];
    mem.read(addr, &mut info[..DEVICE_INFO_MINSZ])?;
    let argsz = get_u32(&info, 0) as usize;
    if argsz < DEVICE_INFO_MINSZ {
        return Err(Errno::EINVAL);
    }
    let out = if argsz >= DEVICE_INFO_CAPSZ {
        DEVICE_INFO_CAPSZ
    } else {
        DEVICE_INFO_MINSZ
    };
    put_u32(&mut info, 4, VFIO_DEVICE_FLAGS_PCI);
    put_u32(&mut info, 8, NUM_REGIONS);
    put_u32(&mut info, 12, NUM_IRQS);
    put_u32(&mut info, 16, 0);
    mem.write(addr, &info[..out])
}

/// `VFIO_DEVICE_GET_REGION_INFO` of `dev` with `struct vfio_region_info` at `addr`
/// (`vfio_pci_ioctl_get_region_info()`): the 32 bytes are read (`EFAULT`); `argsz` below 32
/// is `EINVAL`, and so is an `index` with no region ([`region_info`]); then the struct is
/// written back with `flags`, `size` and `offset` filled in (`argsz`, `index` and
/// `cap_offset` as the caller left them, no capability being added).
///
/// # Errors
/// As said.
pub fn get_region_info(
    dev: &dyn PciFunction,
    mem: &dyn UserMemory,
    addr: u64,
) -> Result<(), Errno> {
    let mut info = [0u8; REGION_INFO_SIZE];
    mem.read(addr, &mut info)?;
    if (get_u32(&info, 0) as usize) < REGION_INFO_SIZE {
        return Err(Errno::EINVAL);
    }
    let index = get_u32(&info, 8);
    let region = region_info(dev, index).ok_or(Errno::EINVAL)?;
    put_u32(&mut info, 4, region.flags);
    put_u64(&mut info, 16, region.size);
    put_u64(&mut info, 24, index_to_offset(index));
    mem.write(addr, &info)
}

/// Which way an access goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// The program reads the device.
    Read,
    /// The program writes the device.
    Write,
}

/// The program's buffer of a `pread` or `pwrite`, reached piece by piece as Linux's
/// `copy_to_user()` / `copy_from_user()` reach it, so a bad buffer fails exactly at the
/// first piece it cannot hold.
pub trait UserBuf {
    /// Copies `out.len()` bytes from offset `at` of the buffer; `false` if any is unreadable.
    fn read(&self, at: usize, out: &mut [u8]) -> bool;
    /// Copies `data` to offset `at` of the buffer; `false` if any byte is unwritable.
    fn write(&self, at: usize, data: &[u8]) -> bool;
}

/// A read or write of `count` bytes at `pos` of the device file of `dev`, the program's
/// buffer being `buf`; `run` runs the device until it completes, fails or waits for a page.
/// Returns the bytes moved (`vfio_pci_core_read()` / `vfio_pci_core_write()`):
/// * `count` 0 moves nothing, whatever `pos` is;
/// * a region index past the last, an empty BAR, the absent ROM and VGA regions, and a write
///   to the ROM are `EINVAL` (`vfio_pci_rw()`, `vfio_pci_bar_rw()`);
/// * BAR 0: an offset at or past its end is `EINVAL`; an access running past the end is cut
///   short there (`vfio_pci_bar_rw()`);
/// * configuration space: an access not wholly inside it is `EFAULT`, before any byte moves
///   (`vfio_config_do_rw()`);
/// * a buffer piece that cannot be read or written is `EFAULT`, after the pieces before it
///   reached the device.
///
/// # Errors
/// As said.
pub fn rw(
    dev: &dyn PciFunction,
    run: &dyn Fn(),
    pos: u64,
    count: usize,
    buf: &dyn UserBuf,
    dir: Dir,
) -> Result<usize, Errno> {
    if count == 0 {
        return Ok(0);
    }
    let index = pos >> OFFSET_SHIFT;
    let off = pos & OFFSET_MASK;
    match u32::try_from(index) {
        Ok(CONFIG_INDEX) => config_rw(dev, off, count, buf, dir),
        Ok(BAR0_INDEX) => bar0_rw(dev, run, off, count, buf, dir),
        // Empty BARs, no ROM, no VGA; indexes past the last region.
        _ => Err(Errno::EINVAL),
    }
}

/// The largest naturally aligned piece of `left` bytes at `at`, among `sizes` (descending).
fn piece(at: u64, left: usize, sizes: &[usize]) -> usize {
    sizes
        .iter()
        .copied()
        .find(|&size| left >= size && at % size as u64 == 0)
        .unwrap_or(1)
}

/// Moves `count` bytes between the program's buffer and the device at `off`, one naturally
/// aligned piece (the largest of `sizes`, at most 8 bytes) at a time: a read piece is fetched
/// with `read` and copied out, a write piece copied in and given to `write`. A buffer piece
/// that cannot be reached is `EFAULT`, after the pieces before it reached the device.
fn pieces(
    off: u64,
    count: usize,
    sizes: &[usize],
    buf: &dyn UserBuf,
    dir: Dir,
    mut read: impl FnMut(u64, &mut [u8]),
    mut write: impl FnMut(u64, &[u8]),
) -> Result<usize, Errno> {
    let mut done = 0;
    while done < count {
        let at = off + done as u64;
        let size = piece(at, count - done, sizes);
        let mut bytes = [0u8; 8];
        let bytes = &mut bytes[..size];
        match dir {
            Dir::Read => {
                read(at, bytes);
                if !buf.write(done, bytes) {
                    return Err(Errno::EFAULT);
                }
            }
            Dir::Write => {
                if !buf.read(done, bytes) {
                    return Err(Errno::EFAULT);
                }
                write(at, bytes);
            }
        }
        done += size;
    }
    Ok(done)
}

fn bar0_rw(
    dev: &dyn PciFunction,
    run: &dyn Fn(),
    off: u64,
    count: usize,
    buf: &dyn UserBuf,
    dir: Dir,
) -> Result<usize, Errno> {
    if off >= BAR0_SIZE {
        return Err(Errno::EINVAL);
    }
    let count = count.min((BAR0_SIZE - off) as usize);
    pieces(
        off,
        count,
        &[8, 4, 2, 1],
        buf,
        dir,
        |at, out| bar0_read(dev, run, at, out),
        |at, data| bar0_write(dev, run, at, data),
    )
}

/// One naturally aligned read of `out.len()` (1, 2, 4 or 8) bytes at `at`: the bytes of the
/// register holding them. STATUS is read after the device has run, so a program polling it
/// sees the command progress.
fn bar0_read(dev: &dyn PciFunction, run: &dyn Fn(), at: u64, out: &mut [u8]) {
    let reg = at & !7;
    if reg == regs::STATUS {
        run();
    }
    let lane = (at % 8) as usize;
    out.copy_from_slice(&dev.mmio_read(reg).to_le_bytes()[lane..lane + out.len()]);
}

/// One naturally aligned write of `data.len()` (1, 2, 4 or 8) bytes at `at`: only a whole
/// register write reaches the device; DOORBELL then runs it.
fn bar0_write(dev: &dyn PciFunction, run: &dyn Fn(), at: u64, data: &[u8]) {
    let Ok(word) = <[u8; 8]>::try_from(data) else {
        return;
    };
    dev.mmio_write(at, u64::from_le_bytes(word));
    if at == regs::DOORBELL {
        run();
    }
}

fn config_rw(
    dev: &dyn PciFunction,
    off: u64,
    count: usize,
    buf: &dyn UserBuf,
    dir: Dir,
) -> Result<usize, Errno> {
    if off
        .checked_add(count as u64)
        .is_none_or(|end| end > dev.config_size().min(CONFIG_SIZE))
    {
        return Err(Errno::EFAULT);
    }
    // In range: every offset is below `CONFIG_SIZE`, 4 KiB, so it fits a `u32`; pieces are
    // 1, 2 or 4 bytes.
    pieces(
        off,
        count,
        &[4, 2, 1],
        buf,
        dir,
        |at, out| {
            let value = dev.config_read(at as u32, out.len() as u32);
            out.copy_from_slice(&value.to_le_bytes()[..out.len()]);
        },
        |at, data| {
            let mut word = [0u8; 4];
            word[..data.len()].copy_from_slice(data);
            if !host_owned(dev, at as u32) {
                dev.config_write(at as u32, data.len() as u32, u32::from_le_bytes(word));
            }
        },
    )
}

/// Whether configuration offset `at` lies in an extended capability the host kernel owns:
/// PASID, ATS or Page Request, found by walking the extended capability list (PCIe 6.0
/// §7.6.3) with each one's size (`PCI_EXT_CAP_PASID_SIZEOF` 8, `PCI_EXT_CAP_ATS_SIZEOF` 8,
/// `PCI_EXT_CAP_PRI_SIZEOF` 16).
fn host_owned(dev: &dyn PciFunction, at: u32) -> bool {
    let start = u32::from(EXT_CAP_START);
    if at < start {
        return false;
    }
    let mut cap = start;
    // A list longer than the space can hold is broken; stop.
    for _ in 0..(CONFIG_SPACE_SIZE - start) / 4 {
        let header = dev.config_read(cap, 4);
        let len = match (header & 0xffff) as u16 {
            EXT_CAP_ID_PASID => 8,
            EXT_CAP_ID_ATS => 8,
            EXT_CAP_ID_PRI => 16,
            _ => 0,
        };
        if (cap..cap + len).contains(&at) {
            return true;
        }
        let next = header >> 20;
        if next < start {
            return false;
        }
        cap = next;
    }
    false
}

#[cfg(test)]
mod tests;
