//! Physical memory that also holds file-backed segments: RAM below, and above it windows onto
//! files (memfds) that someone else maps too.
//!
//! This is how memory owned outside the model reaches the model's devices coherently — the
//! way a VMM shares guest RAM through a memfd, or how `IOMMU_IOAS_MAP_FILE` names memory by
//! file rather than by address. A segment maps the file `MAP_SHARED`, so a byte written by the
//! file's other users is the byte a DMA reads, and the other way round; and since the model
//! has its own mapping, no one else unmapping theirs can pull memory from under a DMA.
//!
//! Segment addresses are chosen here (first fit, 2 MiB aligned so huge I/O pages can map
//! them) in a window that starts at the first 1 GiB boundary above RAM. An access must lie
//! inside RAM or inside one segment; anything else — a gap, a removed segment, a range
//! straddling two — is [`MemError::OutOfRange`].

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use vm_memory::volatile_memory::VolatileMemory;
use vm_memory::{FileOffset, MmapRegion};

use crate::phys::{MemError, PhysMem, Result, check_range, copy_buffered};

const GIB: u64 = 1 << 30;
const SEGMENT_ALIGN: u64 = 2 << 20;

/// Errors adding a segment.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// Zero length, or an offset or length that is not page aligned.
    #[error("segment length and file offset must be non-zero multiples of 4 KiB")]
    Invalid,
    /// No room left in the window.
    #[error("no room for a segment of {0:#x} bytes")]
    NoSpace(u64),
    /// The host refused to map the file.
    #[error("mapping the file: {0}")]
    Map(#[from] vm_memory::mmap::MmapRegionError),
}

struct Segment {
    len: u64,
    region: MmapRegion,
}

/// RAM plus file-backed segments above it.
pub struct SegmentedMemory {
    ram: Arc<dyn PhysMem>,
    window: u64,
    size: u64,
    segments: RwLock<BTreeMap<u64, Segment>>,
}

impl std::fmt::Debug for SegmentedMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentedMemory")
            .field("ram", &self.ram.size())
            .field("window", &format_args!("{:#x}", self.window))
            .field("segments", &self.read_segments().len())
            .finish()
    }
}

enum Place<'a> {
    Ram,
    Segment(RwLockReadGuard<'a, BTreeMap<u64, Segment>>, u64),
}

impl SegmentedMemory {
    /// `ram` at address 0, and a window of `window_len` bytes for segments above it.
    pub fn new(ram: Arc<dyn PhysMem>, window_len: u64) -> SegmentedMemory {
        let window = ram.size().div_ceil(GIB) * GIB;
        SegmentedMemory {
            size: window.saturating_add(window_len),
            ram,
            window,
            segments: RwLock::new(BTreeMap::new()),
        }
    }

    fn read_segments(&self) -> RwLockReadGuard<'_, BTreeMap<u64, Segment>> {
        self.segments.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The first address of the segment window.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// Maps `len` bytes of `file` from `offset` as a new segment; returns its address. The
    /// file must not shrink afterwards (a memfd sealed with `F_SEAL_SHRINK`): an access past
    /// its end would fault in the host.
    ///
    /// # Errors
    /// [`SegmentError::Invalid`], [`SegmentError::NoSpace`], [`SegmentError::Map`].
    pub fn add_file(
        &self,
        file: File,
        offset: u64,
        len: u64,
    ) -> std::result::Result<u64, SegmentError> {
        if len == 0 || len % 4096 != 0 || offset % 4096 != 0 {
            return Err(SegmentError::Invalid);
        }
        // A mapping past the end of the file would fault (SIGBUS) on access: refuse it.
        let file_len = file.metadata().map_err(|_| SegmentError::Invalid)?.len();
        if offset.checked_add(len).is_none_or(|e| e > file_len) {
            return Err(SegmentError::Invalid);
        }
        let region = vm_memory::mmap::MmapRegionBuilder::new(len as usize)
            .with_file_offset(FileOffset::new(file, offset))
            .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
            .with_mmap_flags(libc::MAP_SHARED)
            .build()?;
        let mut segs = self.segments.write().unwrap_or_else(|e| e.into_inner());
        // first fit
        let mut at = self.window;
        for (&start, s) in segs.iter() {
            if start >= at && start - at >= len {
                break;
            }
            at = (start + s.len).div_ceil(SEGMENT_ALIGN) * SEGMENT_ALIGN;
        }
        if at.checked_add(len).is_none_or(|end| end > self.size) {
            return Err(SegmentError::NoSpace(len));
        }
        segs.insert(at, Segment { len, region });
        Ok(at)
    }

    /// Removes the segment at `pa` (its mapping goes once no access is using it). False if no
    /// segment starts there.
    pub fn remove(&self, pa: u64) -> bool {
        self.segments
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&pa)
            .is_some()
    }

    /// Where `[pa, pa + len)` lies.
    fn place(&self, pa: u64, len: u64) -> Result<Place<'_>> {
        let out = MemError::OutOfRange { addr: pa, len };
        let end = pa.checked_add(len).ok_or(out)?;
        if end <= self.ram.size() {
            return Ok(Place::Ram);
        }
        let segs = self.read_segments();
        let (&start, s) = segs.range(..=pa).next_back().ok_or(out)?;
        if end > start + s.len {
            return Err(out);
        }
        Ok(Place::Segment(segs, start))
    }

    fn with_segment<T>(
        &self,
        segs: &BTreeMap<u64, Segment>,
        start: u64,
        pa: u64,
        len: u64,
        f: impl FnOnce(vm_memory::VolatileSlice<'_, ()>) -> T,
    ) -> Result<T> {
        let s = &segs[&start];
        let slice = s
            .region
            .get_slice((pa - start) as usize, len as usize)
            .map_err(|_| MemError::OutOfRange { addr: pa, len })?;
        Ok(f(slice))
    }

    fn atomic<T>(&self, pa: u64, f: impl FnOnce(&AtomicU64) -> T) -> Result<T> {
        if pa % 8 != 0 {
            return Err(MemError::Misaligned { addr: pa });
        }
        match self.place(pa, 8)? {
            // callers forward RAM atomics before asking; answer consistently anyway
            Place::Ram => Err(MemError::OutOfRange { addr: pa, len: 8 }),
            Place::Segment(segs, start) => {
                let s = &segs[&start];
                let a = s
                    .region
                    .get_atomic_ref::<AtomicU64>((pa - start) as usize)
                    .map_err(|_| MemError::OutOfRange { addr: pa, len: 8 })?;
                Ok(f(a))
            }
        }
    }

    fn in_ram(&self, pa: u64, len: u64) -> bool {
        pa.checked_add(len).is_some_and(|e| e <= self.ram.size())
    }
}

impl PhysMem for SegmentedMemory {
    fn size(&self) -> u64 {
        self.size
    }

    fn load_u64(&self, pa: u64) -> Result<u64> {
        if self.in_ram(pa, 8) {
            return self.ram.load_u64(pa);
        }
        self.atomic(pa, |a| a.load(Ordering::Acquire))
    }

    fn store_u64(&self, pa: u64, val: u64) -> Result<()> {
        if self.in_ram(pa, 8) {
            return self.ram.store_u64(pa, val);
        }
        self.atomic(pa, |a| a.store(val, Ordering::Release))
    }

    fn compare_exchange_u64(
        &self,
        pa: u64,
        current: u64,
        new: u64,
    ) -> Result<std::result::Result<u64, u64>> {
        if self.in_ram(pa, 8) {
            return self.ram.compare_exchange_u64(pa, current, new);
        }
        self.atomic(pa, |a| {
            a.compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire)
        })
    }

    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<()> {
        match self.place(pa, buf.len() as u64)? {
            Place::Ram => self.ram.read(pa, buf),
            Place::Segment(segs, start) => {
                self.with_segment(&segs, start, pa, buf.len() as u64, |s| {
                    s.copy_to(buf);
                })
            }
        }
    }

    fn write(&self, pa: u64, buf: &[u8]) -> Result<()> {
        match self.place(pa, buf.len() as u64)? {
            Place::Ram => self.ram.write(pa, buf),
            Place::Segment(segs, start) => {
                self.with_segment(&segs, start, pa, buf.len() as u64, |s| {
                    s.copy_from(buf);
                })
            }
        }
    }

    fn zero(&self, pa: u64, len: u64) -> Result<()> {
        match self.place(pa, len)? {
            Place::Ram => self.ram.zero(pa, len),
            Place::Segment(segs, start) => {
                let zeros = [0u8; 4096];
                let mut off = 0;
                while off < len {
                    let n = (len - off).min(zeros.len() as u64);
                    self.with_segment(&segs, start, pa + off, n, |s| {
                        s.copy_from(&zeros[..n as usize]);
                    })?;
                    off += n;
                }
                Ok(())
            }
        }
    }

    fn copy(&self, src: u64, dst: u64, len: u64) -> Result<()> {
        check_range(self.size, src, len)?;
        check_range(self.size, dst, len)?;
        if self.in_ram(src, len) && self.in_ram(dst, len) {
            return self.ram.copy(src, dst, len);
        }
        // Both ranges must be whole before anything moves (nothing is copied on error).
        drop(self.place(src, len)?);
        drop(self.place(dst, len)?);
        // Between places (or inside a segment): through a buffer.
        copy_buffered(self, src, dst, len)
    }
}
