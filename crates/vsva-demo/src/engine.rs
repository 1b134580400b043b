//! The DMA engine both demo devices share: the register file ([`crate::regs`]), a command
//! decoded from it ([`Job`]), and the data movement of one piece once its addresses are
//! physical. How a virtual address becomes physical is each device's: the PCIe device asks
//! with ATS and PRI and caches the answer; the platform device sends untranslated DMAs that
//! the IOMMU may stall.

use vsva_mem::{Pasid, PhysMem};

use crate::regs::{self, DeviceError, Op, Status};

/// Largest piece moved through the device's own buffer (pattern, fill, checksum, compare).
pub(crate) const CHUNK: u64 = 64 * 1024;
/// Largest piece one copy moves memory to memory (bounded by the translations anyway).
pub(crate) const COPY_CHUNK: u64 = 2 << 20;

/// The register file (BAR 0 / the platform device's MMIO frame).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Registers(pub [u64; 11]);

impl Registers {
    /// The register at `off`.
    pub fn get(&self, off: u64) -> u64 {
        self.0[(off / 8) as usize]
    }

    fn set(&mut self, off: u64, v: u64) {
        self.0[(off / 8) as usize] = v;
    }

    /// A read from software: 0 outside the file or unaligned.
    pub fn read(&self, off: u64) -> u64 {
        if off % 8 != 0 || off > regs::ERROR {
            return 0;
        }
        self.get(off)
    }

    /// A write from software: true when it rang the doorbell.
    pub fn write(&mut self, off: u64, value: u64) -> bool {
        if off % 8 != 0 || off > regs::ERROR {
            return false;
        }
        match off {
            regs::DOORBELL => value & 1 != 0,
            regs::STATUS | regs::RESULT | regs::ERROR => false,
            _ => {
                self.set(off, value);
                false
            }
        }
    }

    /// STATUS busy, ERROR cleared: a command started.
    pub fn busy(&mut self) {
        self.set(regs::STATUS, Status::Busy as u64);
        self.set(regs::ERROR, 0);
    }

    /// STATUS and RESULT or ERROR for a command's end.
    pub fn finish(&mut self, r: Result<u64, DeviceError>) {
        match r {
            Ok(v) => {
                self.set(regs::RESULT, v);
                self.set(regs::STATUS, Status::Done as u64);
            }
            Err(e) => {
                self.set(regs::STATUS, Status::Error as u64);
                self.set(regs::ERROR, e as u64);
            }
        }
    }
}

/// A command being run: what the registers said at the doorbell, and how far it got.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Job {
    pub op: Op,
    pub src: u64,
    pub dst: u64,
    pub len: u64,
    pub pattern: u64,
    pub privileged: bool,
    pub pasid: Pasid,
    pub done: u64,
    pub checksum: u64,
    pub mismatch: u64,
}

impl Job {
    /// Decodes the registers at the doorbell.
    ///
    /// # Errors
    /// [`DeviceError::BadCommand`]: unknown opcode, no valid PASID, a PASID wider than
    /// `pasid_width` bits, or a range that wraps.
    pub fn decode(r: &Registers, pasid_width: u32) -> Result<Job, DeviceError> {
        let op = Op::from_raw(r.get(regs::COMMAND));
        let pasid_reg = r.get(regs::PASID);
        let pasid = (pasid_reg & regs::PASID_VALID != 0)
            .then(|| Pasid::new((pasid_reg & 0xf_ffff) as u32).ok())
            .flatten();
        let (src, dst, len) = (r.get(regs::SRC), r.get(regs::DST), r.get(regs::LEN));
        let (Some(op), Some(pasid)) = (op, pasid) else {
            return Err(DeviceError::BadCommand);
        };
        // The device never emits a PASID wider than it supports (PCIe 6.0 §6.20.2.1).
        if src.checked_add(len).is_none()
            || dst.checked_add(len).is_none()
            || !pasid.fits_width(pasid_width)
        {
            return Err(DeviceError::BadCommand);
        }
        Ok(Job {
            op,
            src,
            dst,
            len,
            pattern: r.get(regs::PATTERN),
            privileged: r.get(regs::FLAGS) & regs::FLAG_PRIVILEGED != 0,
            pasid,
            done: 0,
            checksum: regs::CHECKSUM_INIT,
            mismatch: u64::MAX,
        })
    }

    /// The operation reads its source.
    pub fn reads_src(&self) -> bool {
        matches!(self.op, Op::ReadChecksum | Op::Copy | Op::Compare)
    }

    /// The operation writes its destination.
    pub fn writes_dst(&self) -> bool {
        matches!(self.op, Op::WritePattern | Op::Copy | Op::Fill)
    }

    /// The operation uses its destination (writes it, or reads it to compare).
    pub fn uses_dst(&self) -> bool {
        self.writes_dst() || self.op == Op::Compare
    }

    /// The largest piece of this operation.
    pub fn limit(&self) -> u64 {
        if self.op == Op::Copy {
            COPY_CHUNK
        } else {
            CHUNK
        }
    }

    /// RESULT of the completed command.
    pub fn result(&self) -> u64 {
        match self.op {
            Op::ReadChecksum => self.checksum,
            Op::Compare => self.mismatch,
            _ => self.len,
        }
    }

    /// Moves the next `n` bytes between the physical `src` and `dst` (those the operation
    /// uses), through `buf` and `buf2` (each at least `n` bytes, or [`CHUNK`]). Returns the
    /// bytes read and written.
    ///
    /// # Errors
    /// [`DeviceError::DmaRefused`] when memory refuses an access.
    pub fn piece(
        &mut self,
        mem: &dyn PhysMem,
        bufs: (&mut [u8], &mut [u8]),
        n: u64,
        src: Option<u64>,
        dst: Option<u64>,
    ) -> Result<u64, DeviceError> {
        let (buf, buf2) = bufs;
        let off = self.done;
        let n_us = n as usize;
        let refused = |_| DeviceError::DmaRefused;
        let mut moved = 0;
        if let (Op::Copy, Some(s), Some(d)) = (self.op, src, dst) {
            // A copy reads and writes memory directly: no bounce through the device.
            mem.copy(s, d, n).map_err(refused)?;
            self.done += n;
            return Ok(2 * n);
        }
        if let Some(s) = src {
            mem.read(s, &mut buf[..n_us]).map_err(refused)?;
            moved += n;
        }
        match (self.op, dst) {
            (Op::Compare, Some(d)) => {
                mem.read(d, &mut buf2[..n_us]).map_err(refused)?;
                moved += n;
                if self.mismatch == u64::MAX {
                    if let Some(i) = (0..n_us).find(|&i| buf[i] != buf2[i]) {
                        self.mismatch = off + i as u64;
                    }
                }
            }
            (op, Some(d)) => {
                match op {
                    Op::WritePattern => regs::fill_pattern(self.pattern, off, &mut buf[..n_us]),
                    Op::Fill => buf[..n_us].fill(self.pattern as u8),
                    _ => {}
                }
                mem.write(d, &buf[..n_us]).map_err(refused)?;
                moved += n;
            }
            (Op::ReadChecksum, None) => {
                self.checksum = regs::checksum(&buf[..n_us], self.checksum);
            }
            _ => {}
        }
        self.done += n;
        Ok(moved)
    }
}
