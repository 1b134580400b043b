//! Guest RAM as the guest sees it: guest-physical addresses over the VMM's anonymous memory.
//!
//! A VMM with an assigned device pins all of guest RAM (VFIO does, so that DMA can reach
//! any of it); what the guest's CPU accesses is then a fixed set of host frames. This module
//! keeps that map — one host-physical address per chunk of guest RAM, the chunk being the
//! page size the VMM backs RAM with (1 GiB hugetlb pages here, as VMMs do for speed) — and
//! is the [`PhysMem`] the guest OS, its page tables and its vIOMMU run on. Accesses beyond
//! guest RAM are errors: the guest reaches nothing of the host outside its RAM.

use std::sync::Arc;

use vsva_mem::phys::check_range;
use vsva_mem::{MemError, PhysMem};

/// Guest-physical memory: chunk `i` of `chunk` bytes is host-physical `hpa[i]`.
pub struct GuestRam {
    host: Arc<dyn PhysMem>,
    chunk: u64,
    hpa: Vec<u64>,
}

impl std::fmt::Debug for GuestRam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestRam")
            .field("size", &format_args!("{:#x}", self.size()))
            .field("chunk", &format_args!("{:#x}", self.chunk))
            .finish()
    }
}

/// Why guest RAM cannot be built from the frames given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GuestRamError {
    /// The chunk size is not a power of two of at least 4 KiB.
    #[error("chunk size {0:#x} is not a power of two >= 4 KiB")]
    Chunk(u64),
    /// A frame is misaligned or outside host memory.
    #[error("host frame {0:#x} is misaligned or outside host memory")]
    Frame(u64),
}

impl GuestRam {
    /// Guest RAM of `hpa.len()` chunks of `chunk` bytes, chunk `i` at host-physical `hpa[i]`.
    ///
    /// # Errors
    /// [`GuestRamError`] for a bad chunk size or a frame that is not a whole aligned chunk of
    /// `host`.
    pub fn new(host: Arc<dyn PhysMem>, chunk: u64, hpa: Vec<u64>) -> Result<Self, GuestRamError> {
        if !chunk.is_power_of_two() || chunk < 4096 {
            return Err(GuestRamError::Chunk(chunk));
        }
        if let Some(&bad) = hpa
            .iter()
            .find(|&&a| a % chunk != 0 || check_range(host.size(), a, chunk).is_err())
        {
            return Err(GuestRamError::Frame(bad));
        }
        Ok(GuestRam { host, chunk, hpa })
    }

    /// The host-physical address of guest-physical `gpa`, if it is RAM.
    pub fn hpa(&self, gpa: u64) -> Option<u64> {
        let base = *self.hpa.get(usize::try_from(gpa / self.chunk).ok()?)?;
        Some(base + gpa % self.chunk)
    }

    /// Calls `f(hpa, offset, len)` for each piece of `[gpa, gpa + len)` that lies in one
    /// chunk, in order; stops at the first error. The whole range is checked first, so an
    /// access past the end of RAM changes nothing.
    fn pieces(
        &self,
        gpa: u64,
        len: u64,
        mut f: impl FnMut(u64, usize, usize) -> vsva_mem::phys::Result<()>,
    ) -> vsva_mem::phys::Result<()> {
        check_range(self.size(), gpa, len)?;
        let mut done = 0u64;
        while done < len {
            let at = gpa + done;
            let n = (self.chunk - at % self.chunk).min(len - done);
            let hpa = self
                .hpa(at)
                .ok_or(MemError::OutOfRange { addr: at, len: n })?;
            f(hpa, done as usize, n as usize)?;
            done += n;
        }
        Ok(())
    }

    fn word(&self, gpa: u64) -> vsva_mem::phys::Result<u64> {
        if gpa % 8 != 0 {
            return Err(MemError::Misaligned { addr: gpa });
        }
        check_range(self.size(), gpa, 8)?;
        self.hpa(gpa)
            .ok_or(MemError::OutOfRange { addr: gpa, len: 8 })
    }
}

impl PhysMem for GuestRam {
    fn size(&self) -> u64 {
        self.chunk * self.hpa.len() as u64
    }

    fn load_u64(&self, pa: u64) -> vsva_mem::phys::Result<u64> {
        self.host.load_u64(self.word(pa)?)
    }

    fn store_u64(&self, pa: u64, val: u64) -> vsva_mem::phys::Result<()> {
        self.host.store_u64(self.word(pa)?, val)
    }

    fn compare_exchange_u64(
        &self,
        pa: u64,
        current: u64,
        new: u64,
    ) -> vsva_mem::phys::Result<Result<u64, u64>> {
        self.host.compare_exchange_u64(self.word(pa)?, current, new)
    }

    fn read(&self, pa: u64, buf: &mut [u8]) -> vsva_mem::phys::Result<()> {
        self.pieces(pa, buf.len() as u64, |hpa, off, n| {
            self.host.read(hpa, &mut buf[off..off + n])
        })
    }

    fn write(&self, pa: u64, buf: &[u8]) -> vsva_mem::phys::Result<()> {
        self.pieces(pa, buf.len() as u64, |hpa, off, n| {
            self.host.write(hpa, &buf[off..off + n])
        })
    }

    fn zero(&self, pa: u64, len: u64) -> vsva_mem::phys::Result<()> {
        self.pieces(pa, len, |hpa, _, n| self.host.zero(hpa, n as u64))
    }

    fn advise_huge(&self, pa: u64, len: u64) {
        let _ = self.pieces(pa, len, |hpa, _, n| {
            self.host.advise_huge(hpa, n as u64);
            Ok(())
        });
    }

    fn copy(&self, src: u64, dst: u64, len: u64) -> vsva_mem::phys::Result<()> {
        check_range(self.size(), src, len)?;
        check_range(self.size(), dst, len)?;
        // Within one chunk on both sides the host copies directly; otherwise through a buffer.
        match (self.hpa(src), self.hpa(dst)) {
            (Some(s), Some(d))
                if len > 0
                    && src / self.chunk == (src + len - 1) / self.chunk
                    && dst / self.chunk == (dst + len - 1) / self.chunk =>
            {
                self.host.copy(s, d, len)
            }
            _ => vsva_mem::phys::copy_buffered(self, src, dst, len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vsva_mem::PhysMemory;

    const MIB: u64 = 1 << 20;

    fn ram() -> (Arc<dyn PhysMem>, GuestRam) {
        let host: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(16 * MIB).unwrap());
        // guest chunk 0 at host 8 MiB, chunk 1 at host 2 MiB: not in order, not contiguous
        let ram = GuestRam::new(host.clone(), 2 * MIB, vec![8 * MIB, 2 * MIB]).unwrap();
        (host, ram)
    }

    #[test]
    fn accesses_follow_the_chunk_map_and_split_at_chunk_edges() {
        let (host, ram) = ram();
        assert_eq!(ram.size(), 4 * MIB);
        ram.store_u64(0x10, 0xabcd).unwrap();
        assert_eq!(host.load_u64(8 * MIB + 0x10).unwrap(), 0xabcd);
        // 8 bytes straddling the edge between chunk 0 and chunk 1
        let data = *b"12345678";
        ram.write(2 * MIB - 4, &data).unwrap();
        let (mut lo, mut hi) = ([0u8; 4], [0u8; 4]);
        host.read(10 * MIB - 4, &mut lo).unwrap();
        host.read(2 * MIB, &mut hi).unwrap();
        assert_eq!((&lo, &hi), (b"1234", b"5678"));
        let mut back = [0u8; 8];
        ram.read(2 * MIB - 4, &mut back).unwrap();
        assert_eq!(back, data);
        ram.copy(2 * MIB - 4, 0x100, 8).unwrap();
        ram.read(0x100, &mut back).unwrap();
        assert_eq!(back, data);
        ram.zero(2 * MIB - 2, 4).unwrap();
        ram.read(2 * MIB - 4, &mut back).unwrap();
        assert_eq!(back, [b'1', b'2', 0, 0, 0, 0, b'7', b'8']);
    }

    #[test]
    fn nothing_outside_guest_ram_is_reachable() {
        let (host, ram) = ram();
        host.store_u64(0, 7).unwrap();
        assert!(ram.load_u64(4 * MIB).is_err());
        assert!(ram.load_u64(4).is_err(), "misaligned");
        let mut b = [0u8; 16];
        assert!(ram.read(4 * MIB - 8, &mut b).is_err());
        assert!(ram.write(u64::MAX - 4, &b).is_err());
        assert!(ram.zero(4 * MIB - 8, 16).is_err());
        // the part inside RAM was not written by the refused access
        ram.write(4 * MIB - 8, &[1; 8]).unwrap();
        assert!(ram.write(4 * MIB - 8, &[9; 16]).is_err());
        let mut tail = [0u8; 8];
        ram.read(4 * MIB - 8, &mut tail).unwrap();
        assert_eq!(tail, [1; 8]);
        assert_eq!(
            GuestRam::new(host.clone(), 3 * MIB, vec![]).unwrap_err(),
            GuestRamError::Chunk(3 * MIB)
        );
        assert_eq!(
            GuestRam::new(host, 2 * MIB, vec![15 * MIB]).unwrap_err(),
            GuestRamError::Frame(15 * MIB)
        );
    }
}
