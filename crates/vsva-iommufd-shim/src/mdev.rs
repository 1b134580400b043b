//! An emulated DMA copy engine: a device with no IOMMU behind it, bound through an iommufd
//! access as a VFIO mediated device is (Linux `drivers/vfio/iommufd.c`
//! `vfio_iommufd_emulated_bind()` / `_attach_ioas()`). It is what an mdev parent driver
//! such as `samples/vfio-mdev/mtty.c` is to its device: the "hardware" is the driver's own
//! code, running in the kernel when the program writes the device's registers, and it
//! reaches the program's memory only through VFIO — `vfio_dma_rw()` for a one-off copy, or
//! `vfio_pin_pages()` for buffers it keeps using (as KVMGT pins guest pages), which it must
//! give back in its `dma_unmap` callback when the IOAS unmaps them (`vfio_main.c`).
//!
//! # Registers (BAR 0, 64-bit each)
//! The demo device's layout and opcodes ([`vsva_demo::regs`]), without PASIDs:
//!
//! | offset | register | access |
//! |---|---|---|
//! | 0x00 | COMMAND: an [`Op`] | RW |
//! | 0x08 | SRC: source IOVA | RW |
//! | 0x10 | DST: destination IOVA | RW |
//! | 0x18 | LEN: bytes, at most [`MAX_LEN`] | RW |
//! | 0x20 | PATTERN: seed of WRITE_PATTERN, or the FILL byte (bits 7:0) | RW |
//! | 0x28 | FLAGS: [`FLAG_PIN`]; every other bit must be 0 | RW |
//! | 0x30 | (the demo's PASID register): not implemented, reads 0, writes dropped | — |
//! | 0x38 | DOORBELL: a write with bit 0 set runs the command, before the write returns | WO (reads 0) |
//! | 0x40 | STATUS: [`Status`] — 0 idle, 2 done, 3 error (never 1: the engine never waits) | RO |
//! | 0x48 | RESULT: as the demo's (bytes, checksum, first mismatch or `u64::MAX`); on error, the errno VFIO returned (0 for a bad command) | RO |
//! | 0x50 | ERROR: a [`MdevError`] code | RO |
//!
//! As for the demo device ([`crate::regions`]): a read narrower than a register returns its
//! bytes, a narrower write is dropped, and offsets past ERROR read 0 and drop writes.
//!
//! # Two ways to memory
//! * Without [`FLAG_PIN`], each piece of a command is one [`VfioDevice::dma_rw`]
//!   (`vfio_dma_rw()` → `iommufd_access_rw()`): nothing stays pinned.
//! * With [`FLAG_PIN`], the engine pins every page it touches, one
//!   [`VfioDevice::pin_pages`] per page (`vfio_pin_pages()` → `iommufd_access_pin_pages()`),
//!   keeps the pin in its record after the command, and moves the bytes itself through the
//!   physical addresses it got, with the machine's [`PhysMem`]. A page pinned already (for
//!   writing, if the command writes) is reused. The pins go only in [`CopyEngine::dma_unmap`]
//!   — when the IOAS unmaps a range holding them, or when the device is detached or unbound
//!   (the whole space) — as the contract of `vfio_register_emulated_iommu_dev()` requires;
//!   without it `IOMMU_IOAS_UNMAP` would fail with `EDEADLOCK`.
//!
//! # Errors
//! A command that cannot run ends with STATUS error, ERROR a [`MdevError`] and RESULT the
//! errno that VFIO returned ([`MdevError::from_errno`]); pieces before the failing one have
//! been copied, and pages pinned before it stay pinned.
//!
//! # Configuration space
//! A conventional type-0 header of [`CONFIG_SIZE`] bytes (PCI Local Bus 3.0 §6.1), no
//! capabilities (no PCIe, PASID, ATS or PRI: nothing translates for it but the access):
//!
//! | offset | field | value | writable bits |
//! |---|---|---|---|
//! | 0x00 | vendor ID | [`VENDOR_ID`] 0x1af4 (as the demo device's) | — |
//! | 0x02 | device ID | [`DEVICE_ID`] 0x10f1 (the demo device is 0x10f0) | — |
//! | 0x04 | command | 0 | memory space (1), bus master (2), INTx disable (10) |
//! | 0x06 | status | 0 (no capability list) | — |
//! | 0x08 | revision, class code | 1; 0x08_80_00 (other system peripheral) | — |
//! | 0x0e | header type | 0 | — |
//! | 0x10 | BAR 0 | 32-bit, non-prefetchable memory, 4 KiB: sizing reads back `0xfffff000` | 31:12 |
//! | 0x2c | subsystem vendor / ID | 0x1af4 / 0x10f1 | — |
//! | 0x3c | interrupt line | 0 (interrupt pin 0: no INTx) | 7:0 |
//!
//! Everything else reads 0 and drops writes. As in mtty, the command register's bits are
//! stored but not enforced: BAR 0 answers, and the engine works, with them clear.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use vsva_demo::regs::{self, CHECKSUM_INIT, Op, Status, checksum, fill_pattern};
use vsva_iommufd::EmulatedDriver;
use vsva_iommufd::RwBuf;
use vsva_iommufd::VfioDevice;
use vsva_iommufd::abi::Errno;
use vsva_mem::PhysMem;

use crate::regions::PciFunction;

const PAGE: u64 = 4096;

/// Vendor ID of the configuration header (the demo device's vendor).
pub const VENDOR_ID: u16 = 0x1af4;
/// Device ID of the configuration header.
pub const DEVICE_ID: u16 = 0x10f1;
/// The configuration space of a conventional function (`PCI_CFG_SPACE_SIZE`), which is what
/// an mdev driver reports as the size of its configuration region (`MTTY_CONFIG_SPACE_SIZE`).
pub const CONFIG_SIZE: u64 = 256;
/// BAR 0's size, as [`crate::regions`] reports it.
const BAR0_SIZE: u32 = crate::regions::BAR0_SIZE as u32;

/// FLAGS: pin the pages the command touches and keep them pinned.
pub const FLAG_PIN: u64 = 1 << 1;
/// The largest LEN; a longer command is [`MdevError::BadCommand`].
pub const MAX_LEN: u64 = 16 << 20;

/// Why a command failed (ERROR register).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum MdevError {
    /// Unknown opcode, a FLAGS bit other than [`FLAG_PIN`], LEN above [`MAX_LEN`], or a
    /// range that wraps.
    BadCommand = 1,
    /// `ENOENT`: no mapping at an IOVA of the range, or the device is not attached to an
    /// IOAS.
    NotMapped = 2,
    /// `EPERM`: the mapping does not allow the direction (a write to a read-only mapping,
    /// a read of a write-only one).
    Denied = 3,
    /// `EINVAL`: the range is being unmapped, or the device is not bound.
    Unavailable = 4,
    /// `ENOMEM`: a pin would pass `RLIMIT_MEMLOCK`.
    NoMemory = 5,
    /// Any other errno (`EFAULT`: the memory could not be reached).
    Fault = 6,
}

impl MdevError {
    /// The code for an errno from [`VfioDevice::pin_pages`] or [`VfioDevice::dma_rw`].
    pub fn from_errno(errno: Errno) -> MdevError {
        match errno {
            Errno::ENOENT => MdevError::NotMapped,
            Errno::EPERM => MdevError::Denied,
            Errno::EINVAL => MdevError::Unavailable,
            Errno::ENOMEM => MdevError::NoMemory,
            _ => MdevError::Fault,
        }
    }
}

/// Bytes a command moves per step (and the most it buffers).
const CHUNK: usize = PAGE as usize;

/// One page the engine keeps pinned: `vfio_pin_pages(iova, 1, prot)` returned `pa`.
#[derive(Debug, Clone, Copy)]
struct Pin {
    pa: u64,
    write: bool,
}

/// The emulated copy engine: its registers, configuration header and pinned pages.
pub struct CopyEngine {
    /// The registers COMMAND..=ERROR, by offset / 8; held while a command runs, so a
    /// second doorbell waits for the first (one engine).
    regs: Mutex<[u64; REGS]>,
    /// The pinned pages by page IOVA. Lock order: `regs`, then `pins`; `dma_unmap` takes
    /// only `pins`.
    pins: Mutex<BTreeMap<u64, Pin>>,
    config: Mutex<[u8; CONFIG_SIZE as usize]>,
    /// The machine's physical memory, where pinned pages are.
    mem: Arc<dyn PhysMem>,
    /// The VFIO device the engine is behind.
    vdev: OnceLock<Weak<VfioDevice>>,
}

const REGS: usize = (regs::ERROR / 8 + 1) as usize;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl CopyEngine {
    /// A new engine reaching `mem`, and the VFIO device it is behind (bound through an
    /// access on `mem`).
    pub fn new_vfio(mem: Arc<dyn PhysMem>) -> (Arc<CopyEngine>, Arc<VfioDevice>) {
        let engine = Arc::new(CopyEngine {
            regs: Mutex::new([0; REGS]),
            pins: Mutex::new(BTreeMap::new()),
            config: Mutex::new(config_header()),
            mem: mem.clone(),
            vdev: OnceLock::new(),
        });
        let vdev = VfioDevice::emulated(engine.clone(), mem);
        let _ = engine.vdev.set(Arc::downgrade(&vdev));
        (engine, vdev)
    }

    /// Pages the engine holds pinned now.
    pub fn pinned_pages(&self) -> usize {
        lock(&self.pins).len()
    }

    /// DOORBELL: runs the command the registers hold, to completion or failure.
    fn ring(&self, r: &mut [u64; REGS]) {
        let reg = |off: u64| r[(off / 8) as usize];
        let outcome = self.run(
            reg(regs::COMMAND),
            reg(regs::FLAGS),
            reg(regs::SRC),
            reg(regs::DST),
            reg(regs::LEN),
            reg(regs::PATTERN),
        );
        let (status, result, error) = match outcome {
            Ok(result) => (Status::Done, result, 0),
            Err((error, errno)) => (Status::Error, errno.map_or(0, |e| e.0 as u64), error as u64),
        };
        r[(regs::STATUS / 8) as usize] = status as u64;
        r[(regs::RESULT / 8) as usize] = result;
        r[(regs::ERROR / 8) as usize] = error;
    }

    fn run(
        &self,
        command: u64,
        flags: u64,
        src: u64,
        dst: u64,
        len: u64,
        pattern: u64,
    ) -> Result<u64, (MdevError, Option<Errno>)> {
        let bad = Err((MdevError::BadCommand, None));
        let Some(op) = Op::from_raw(command) else {
            return bad;
        };
        if flags & !FLAG_PIN != 0 || len > MAX_LEN {
            return bad;
        }
        // the ranges the command uses: SRC, DST, or both
        let (uses_src, uses_dst) = match op {
            Op::WritePattern | Op::Fill => (false, true),
            Op::ReadChecksum => (true, false),
            Op::Copy | Op::Compare => (true, true),
        };
        let wraps = |at: u64| len > 0 && at.checked_add(len - 1).is_none();
        if (uses_src && wraps(src)) || (uses_dst && wraps(dst)) {
            return bad;
        }
        let vdev = self
            .vdev
            .get()
            .and_then(Weak::upgrade)
            .ok_or((MdevError::Unavailable, Some(Errno::EINVAL)))?;
        let fail = |errno: Errno| (MdevError::from_errno(errno), Some(errno));
        if flags & FLAG_PIN != 0 {
            let mut dma = Pinning {
                engine: self,
                vdev: &vdev,
            };
            execute(op, src, dst, len, pattern, &mut dma).map_err(fail)
        } else {
            execute(op, src, dst, len, pattern, &mut Copying(&vdev)).map_err(fail)
        }
    }
}

/// How a command reaches memory: `read` and `write` of IOVAs, any alignment and length up
/// to [`CHUNK`].
trait Dma {
    fn read(&mut self, iova: u64, out: &mut [u8]) -> Result<(), Errno>;
    fn write(&mut self, iova: u64, data: &[u8]) -> Result<(), Errno>;
}

/// Through `vfio_dma_rw()`: nothing stays pinned.
struct Copying<'a>(&'a VfioDevice);

impl Dma for Copying<'_> {
    fn read(&mut self, iova: u64, out: &mut [u8]) -> Result<(), Errno> {
        self.0.dma_rw(iova, RwBuf::Read(out))
    }

    fn write(&mut self, iova: u64, data: &[u8]) -> Result<(), Errno> {
        self.0.dma_rw(iova, RwBuf::Write(data))
    }
}

/// Through pages pinned with `vfio_pin_pages()` and kept in the engine's record.
struct Pinning<'a> {
    engine: &'a CopyEngine,
    vdev: &'a VfioDevice,
}

impl Pinning<'_> {
    /// The physical address of the page holding `iova`, pinned (for writing if `write`).
    fn page(&self, iova: u64, write: bool) -> Result<u64, Errno> {
        let page = iova & !(PAGE - 1);
        let mut pins = lock(&self.engine.pins);
        let held = pins.get(&page).copied();
        if let Some(pin) = held.filter(|pin| pin.write || !write) {
            return Ok(pin.pa);
        }
        let pa = *self
            .vdev
            .pin_pages(page, 1, write)?
            .first()
            .ok_or(Errno::EFAULT)?;
        if held.is_some() {
            // held for reading only: the new write pin replaces it
            self.vdev.unpin_pages(page, 1);
        }
        pins.insert(page, Pin { pa, write });
        Ok(pa)
    }

    /// Runs `each(pa, lo..hi)` for the pieces of `[iova, iova + len)` within one page.
    fn per_page(
        &self,
        iova: u64,
        len: usize,
        write: bool,
        mut each: impl FnMut(u64, std::ops::Range<usize>) -> Result<(), Errno>,
    ) -> Result<(), Errno> {
        let mut done = 0;
        while done < len {
            let at = iova + done as u64;
            let n = ((PAGE - at % PAGE) as usize).min(len - done);
            let pa = self.page(at, write)? + at % PAGE;
            each(pa, done..done + n)?;
            done += n;
        }
        Ok(())
    }
}

impl Dma for Pinning<'_> {
    fn read(&mut self, iova: u64, out: &mut [u8]) -> Result<(), Errno> {
        let mem = &self.engine.mem;
        self.per_page(iova, out.len(), false, |pa, range| {
            mem.read(pa, &mut out[range]).map_err(|_| Errno::EFAULT)
        })
    }

    fn write(&mut self, iova: u64, data: &[u8]) -> Result<(), Errno> {
        let mem = &self.engine.mem;
        self.per_page(iova, data.len(), true, |pa, range| {
            mem.write(pa, &data[range]).map_err(|_| Errno::EFAULT)
        })
    }
}

/// Runs `op` over `len` bytes, [`CHUNK`] at a time, and returns RESULT.
fn execute(
    op: Op,
    src: u64,
    dst: u64,
    len: u64,
    pattern: u64,
    dma: &mut dyn Dma,
) -> Result<u64, Errno> {
    let mut a = [0u8; CHUNK];
    let mut b = [0u8; CHUNK];
    let mut sum = CHECKSUM_INIT;
    let mut off = 0u64;
    while off < len {
        let n = (len - off).min(CHUNK as u64) as usize;
        let (a, b) = (&mut a[..n], &mut b[..n]);
        match op {
            Op::WritePattern => {
                fill_pattern(pattern, off, a);
                dma.write(dst + off, a)?;
            }
            Op::Fill => {
                a.fill(pattern as u8);
                dma.write(dst + off, a)?;
            }
            Op::Copy => {
                dma.read(src + off, a)?;
                dma.write(dst + off, a)?;
            }
            Op::ReadChecksum => {
                dma.read(src + off, a)?;
                sum = checksum(a, sum);
            }
            Op::Compare => {
                dma.read(src + off, a)?;
                dma.read(dst + off, b)?;
                if let Some(i) = a.iter().zip(b.iter()).position(|(x, y)| x != y) {
                    return Ok(off + i as u64);
                }
            }
        }
        off += n as u64;
    }
    Ok(match op {
        Op::ReadChecksum => sum,
        Op::Compare => u64::MAX,
        _ => len,
    })
}

impl EmulatedDriver for CopyEngine {
    /// `dma_unmap`: unpins every recorded page in `[iova, iova + length)` (the whole space
    /// at detach), as `mtty`'s and KVMGT's `dma_unmap` drop their pinned pages there.
    fn dma_unmap(&self, vdev: &VfioDevice, iova: u64, length: u64) {
        let Some(last) = length.checked_sub(1).map(|n| iova.saturating_add(n)) else {
            return;
        };
        let mut pins = lock(&self.pins);
        let pages: Vec<u64> = pins
            .range(iova & !(PAGE - 1)..=last)
            .map(|(&page, _)| page)
            .collect();
        for page in pages {
            pins.remove(&page);
            vdev.unpin_pages(page, 1);
        }
    }
}

impl PciFunction for CopyEngine {
    fn config_size(&self) -> u64 {
        CONFIG_SIZE
    }

    fn config_read(&self, off: u32, size: u32) -> u32 {
        let config = lock(&self.config);
        let mut word = [0u8; 4];
        let (at, n) = (off as usize, (size as usize).min(4));
        if let Some(bytes) = config.get(at..at + n) {
            word[..n].copy_from_slice(bytes);
        }
        u32::from_le_bytes(word)
    }

    fn config_write(&self, off: u32, size: u32, value: u32) {
        let mut config = lock(&self.config);
        let bytes = value.to_le_bytes();
        for (i, &byte) in bytes.iter().enumerate().take((size as usize).min(4)) {
            let at = off as usize + i;
            let mask = write_mask(at);
            if let Some(old) = config.get_mut(at) {
                *old = (*old & !mask) | (byte & mask);
            }
        }
    }

    fn mmio_read(&self, off: u64) -> u64 {
        if off % 8 != 0 || off > regs::ERROR || off == regs::PASID || off == regs::DOORBELL {
            return 0;
        }
        lock(&self.regs)[(off / 8) as usize]
    }

    fn mmio_write(&self, off: u64, value: u64) {
        if off % 8 != 0 || off > regs::ERROR {
            return;
        }
        let mut r = lock(&self.regs);
        match off {
            regs::DOORBELL if value & 1 != 0 => self.ring(&mut r),
            regs::DOORBELL | regs::PASID | regs::STATUS | regs::RESULT | regs::ERROR => {}
            _ => r[(off / 8) as usize] = value,
        }
    }
}

/// The header at reset (see the module docs).
fn config_header() -> [u8; CONFIG_SIZE as usize] {
    let mut c = [0u8; CONFIG_SIZE as usize];
    c[0x00..0x02].copy_from_slice(&VENDOR_ID.to_le_bytes());
    c[0x02..0x04].copy_from_slice(&DEVICE_ID.to_le_bytes());
    c[0x08] = 1; // revision
    c[0x0a] = 0x80; // subclass: other
    c[0x0b] = 0x08; // base class: system peripheral
    c[0x2c..0x2e].copy_from_slice(&VENDOR_ID.to_le_bytes());
    c[0x2e..0x30].copy_from_slice(&DEVICE_ID.to_le_bytes());
    c
}

/// The bits of configuration byte `at` a write may change.
fn write_mask(at: usize) -> u8 {
    let bar0 = (!(BAR0_SIZE - 1)).to_le_bytes();
    match at {
        0x04 => 0x06,                   // memory space, bus master
        0x05 => 0x04,                   // INTx disable
        0x10..=0x13 => bar0[at - 0x10], // BAR 0 address bits 31:12
        0x3c => 0xff,                   // interrupt line
        _ => 0,
    }
}

#[cfg(test)]
mod tests;
