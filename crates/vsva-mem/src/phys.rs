//! Physical memory.
//!
//! [`PhysMem`] is what every walker, device model and memory manager reads and writes through.
//! Following aarch64-paging's `Translation` trait, the page-table formats are kept apart from
//! the memory they live in: the same walker runs over host memory ([`PhysMemory`]) and over
//! any other implementation (a guest's RAM seen through its VMM, a test image).
//!
//! [`PhysMemory`] is one large sparse region built with rust-vmm's `vm-memory`
//! (`MmapRegionBuilder` + `GuestMemoryMmap`). It is mapped `MAP_NORESERVE`, so a 64 GiB (or
//! 256 GiB) space costs only the pages that are touched, even with heuristic overcommit.
//!
//! Page-table entries are accessed as aligned 64-bit atomics: hardware Accessed/Dirty updates
//! (compare-exchange) race with the CPU model and the OS memory manager exactly as they do on
//! real machines, and a torn 64-bit entry is impossible.

use std::sync::atomic::{AtomicU64, Ordering};

use vm_memory::{
    Bytes, GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion, mmap::MmapRegionBuilder,
};

/// Errors of physical-memory accesses. Small and `Copy`: walkers return it on every entry
/// read, so it must not make their results large.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MemError {
    /// The access `[addr, addr + len)` is not inside the memory.
    #[error("physical access [{addr:#x}, +{len:#x}) is outside memory")]
    OutOfRange {
        /// First byte of the access.
        addr: u64,
        /// Length of the access in bytes.
        len: u64,
    },
    /// An atomic access was not naturally aligned.
    #[error("atomic access at {addr:#x} is not 8-byte aligned")]
    Misaligned {
        /// The misaligned address.
        addr: u64,
    },
}

/// Errors of creating a [`PhysMemory`].
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The operating system refused the mapping.
    #[error("cannot map {size:#x} bytes of physical memory: {source}")]
    Map {
        /// Requested size.
        size: u64,
        /// What vm-memory reported.
        source: vm_memory::mmap::MmapRegionError,
    },
    /// vm-memory refused to build a region collection.
    #[error("cannot build the guest memory collection: {0}")]
    Collection(String),
}

/// Result alias for memory accesses.
pub type Result<T> = std::result::Result<T, MemError>;

/// A physical address space: byte accesses and aligned 64-bit atomics.
///
/// Addresses are plain `u64` in this memory's own physical address space (HPAs for host
/// memory, GPAs for a guest's). Every method checks its range and reports
/// [`MemError::OutOfRange`] rather than touching anything outside.
pub trait PhysMem: Send + Sync {
    /// Size in bytes; valid addresses are `0..size`.
    fn size(&self) -> u64;

    /// Atomically loads the aligned `u64` at `pa` (acquire).
    ///
    /// # Errors
    /// [`MemError::Misaligned`] or [`MemError::OutOfRange`].
    fn load_u64(&self, pa: u64) -> Result<u64>;

    /// Atomically stores `val` at the aligned `pa` (release).
    ///
    /// # Errors
    /// [`MemError::Misaligned`] or [`MemError::OutOfRange`].
    fn store_u64(&self, pa: u64, val: u64) -> Result<()>;

    /// Atomically replaces `current` with `new` at `pa`. The inner result is `Ok(previous)` when
    /// the exchange happened and `Err(actual)` when the memory held another value.
    ///
    /// # Errors
    /// [`MemError::Misaligned`] or [`MemError::OutOfRange`].
    fn compare_exchange_u64(
        &self,
        pa: u64,
        current: u64,
        new: u64,
    ) -> Result<std::result::Result<u64, u64>>;

    /// Copies `buf.len()` bytes from `pa` into `buf`.
    ///
    /// # Errors
    /// [`MemError::OutOfRange`] (and nothing is copied).
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<()>;

    /// Copies `buf` to `pa`.
    ///
    /// # Errors
    /// [`MemError::OutOfRange`] (and nothing is written).
    fn write(&self, pa: u64, buf: &[u8]) -> Result<()>;

    /// Sets `[pa, pa + len)` to zero.
    ///
    /// # Errors
    /// [`MemError::OutOfRange`] (and nothing is written).
    fn zero(&self, pa: u64, len: u64) -> Result<()>;

    /// Hints that `[pa, pa + len)` is used as one huge frame. Memory backed by host pages
    /// may back it with host huge pages, as a VMM backs guest RAM with hugetlbfs or THP, so
    /// that DMA across the frame does not pay a host TLB miss every 4 KiB. Contents are not
    /// changed and nothing fails: a hint the host cannot take is dropped.
    fn advise_huge(&self, pa: u64, len: u64) {
        let _ = (pa, len);
    }

    /// Copies `len` bytes from `src` to `dst` inside this memory (ranges may overlap, as with
    /// `memmove`) — a DMA engine's copy, without a bounce buffer where the memory allows.
    ///
    /// # Errors
    /// [`MemError::OutOfRange`] (and nothing is copied).
    fn copy(&self, src: u64, dst: u64, len: u64) -> Result<()> {
        check_range(self.size(), src, len)?;
        check_range(self.size(), dst, len)?;
        copy_buffered(self, src, dst, len)
    }
}

/// Copies through a page-sized buffer, in the direction that keeps overlapping ranges right
/// (what a memory without one host mapping does for [`PhysMem::copy`]). The caller has
/// checked both ranges.
///
/// # Errors
/// A read or write the memory refuses (the copy stops there).
pub fn copy_buffered<M: PhysMem + ?Sized>(mem: &M, src: u64, dst: u64, len: u64) -> Result<()> {
    let mut buf = [0u8; 4096];
    let step = buf.len() as u64;
    let chunks = len.div_ceil(step);
    for k in 0..chunks {
        let k = if dst > src { chunks - 1 - k } else { k };
        let off = k * step;
        let n = (len - off).min(step) as usize;
        mem.read(src + off, &mut buf[..n])?;
        mem.write(dst + off, &buf[..n])?;
    }
    Ok(())
}

/// Checks that `[pa, pa + len)` lies inside `size` bytes.
pub fn check_range(size: u64, pa: u64, len: u64) -> Result<()> {
    match pa.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(MemError::OutOfRange { addr: pa, len }),
    }
}

/// Host memory: one sparse anonymous region starting at physical address 0.
pub struct PhysMemory {
    guest: GuestMemoryMmap,
    /// Host virtual address of physical address 0 (kept as an integer so the type stays
    /// `Send + Sync` without an unsafe impl; the mapping lives as long as `guest`).
    base: usize,
    size: u64,
}

/// Regions at or above this size are zeroed by handing the pages back to the host kernel
/// (`MADV_DONTNEED` on a private anonymous mapping reads back as zeros) instead of writing
/// them, so zeroing a 1 GiB frame neither takes a second nor makes it resident.
const MADVISE_ZERO_THRESHOLD: u64 = 64 * 1024;

impl PhysMemory {
    /// Maps `size` bytes of zeroed, sparse physical memory at physical address 0.
    ///
    /// # Errors
    /// [`CreateError::Map`] if the host refuses the mapping.
    pub fn new(size: u64) -> std::result::Result<PhysMemory, CreateError> {
        let region: MmapRegion = MmapRegionBuilder::new(size as usize)
            .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
            .with_mmap_flags(libc::MAP_ANONYMOUS | libc::MAP_PRIVATE | libc::MAP_NORESERVE)
            .build()
            .map_err(|source| CreateError::Map { size, source })?;
        let base = region.as_ptr() as usize;
        let region = GuestRegionMmap::new(region, GuestAddress(0))
            .ok_or_else(|| CreateError::Collection("region end overflows".into()))?;
        let guest = GuestMemoryMmap::from_regions(vec![region])
            .map_err(|e| CreateError::Collection(e.to_string()))?;
        Ok(PhysMemory { guest, base, size })
    }

    /// The underlying vm-memory collection, for code that wants vm-memory's `Bytes` API.
    pub fn guest_memory(&self) -> &GuestMemoryMmap {
        &self.guest
    }

    /// Host virtual address where physical address 0 is mapped. The mapping is `size()` bytes
    /// long and lives as long as `self`; it is exposed for handing the memory to KVM.
    pub fn host_base(&self) -> *mut u8 {
        self.base as *mut u8
    }

    fn atomic(&self, pa: u64) -> Result<&AtomicU64> {
        if pa & 7 != 0 {
            return Err(MemError::Misaligned { addr: pa });
        }
        check_range(self.size, pa, 8)?;
        let ptr = (self.base + pa as usize) as *mut u64;
        // SAFETY: `pa..pa+8` is inside the live mapping (checked above), the pointer is 8-byte
        // aligned (the mapping is page aligned and `pa` is a multiple of 8), and the memory is
        // only ever accessed through atomics or volatile copies, never through Rust references
        // to non-atomic data; the returned borrow cannot outlive `self`, which owns the mapping.
        Ok(unsafe { AtomicU64::from_ptr(ptr) })
    }
}

impl std::fmt::Debug for PhysMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhysMemory")
            .field("size", &self.size)
            .finish()
    }
}

impl PhysMem for PhysMemory {
    fn size(&self) -> u64 {
        self.size
    }

    #[inline]
    fn load_u64(&self, pa: u64) -> Result<u64> {
        Ok(self.atomic(pa)?.load(Ordering::Acquire))
    }

    #[inline]
    fn store_u64(&self, pa: u64, val: u64) -> Result<()> {
        self.atomic(pa)?.store(val, Ordering::Release);
        Ok(())
    }

    #[inline]
    fn compare_exchange_u64(
        &self,
        pa: u64,
        current: u64,
        new: u64,
    ) -> Result<std::result::Result<u64, u64>> {
        Ok(self
            .atomic(pa)?
            .compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire))
    }

    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<()> {
        check_range(self.size, pa, buf.len() as u64)?;
        self.guest
            .read_slice(buf, GuestAddress(pa))
            .map_err(|_| MemError::OutOfRange {
                addr: pa,
                len: buf.len() as u64,
            })
    }

    fn write(&self, pa: u64, buf: &[u8]) -> Result<()> {
        check_range(self.size, pa, buf.len() as u64)?;
        self.guest
            .write_slice(buf, GuestAddress(pa))
            .map_err(|_| MemError::OutOfRange {
                addr: pa,
                len: buf.len() as u64,
            })
    }

    fn copy(&self, src: u64, dst: u64, len: u64) -> Result<()> {
        check_range(self.size, src, len)?;
        check_range(self.size, dst, len)?;
        let from = (self.base + src as usize) as *const u8;
        let to = (self.base + dst as usize) as *mut u8;
        // SAFETY: both ranges lie inside the live mapping (checked above); `ptr::copy` is a
        // memmove, so overlapping ranges are fine; the memory is plain bytes shared with
        // devices and the CPU model, accessed only through raw copies and atomics, never
        // through Rust references.
        unsafe { std::ptr::copy(from, to, len as usize) };
        Ok(())
    }

    fn advise_huge(&self, pa: u64, len: u64) {
        const HUGE: u64 = 2 << 20;
        if check_range(self.size, pa, len).is_err() {
            return;
        }
        let host = self.base as u64 + pa;
        if host % HUGE != 0 || len % HUGE != 0 {
            return;
        }
        // SAFETY: the range is inside our private anonymous mapping (checked above) and 2 MiB
        // aligned in the host; MADV_HUGEPAGE only changes how the kernel backs it, never its
        // contents or its mapping.
        let _ =
            unsafe { libc::madvise(host as *mut libc::c_void, len as usize, libc::MADV_HUGEPAGE) };
    }

    fn zero(&self, pa: u64, len: u64) -> Result<()> {
        check_range(self.size, pa, len)?;
        let page = 4096;
        if len >= MADVISE_ZERO_THRESHOLD && pa % page == 0 && len % page == 0 {
            let ptr = (self.base + pa as usize) as *mut libc::c_void;
            // SAFETY: the range is page aligned and inside our private anonymous mapping
            // (checked above); MADV_DONTNEED only replaces its pages with zero-fill-on-demand
            // pages and never unmaps them, so every pointer into the mapping stays valid.
            let rc = unsafe { libc::madvise(ptr, len as usize, libc::MADV_DONTNEED) };
            if rc == 0 {
                return Ok(());
            }
        }
        let to = (self.base + pa as usize) as *mut u8;
        // SAFETY: the range lies inside the live mapping (checked above); `write_bytes` is a
        // memset of plain bytes shared with devices and the CPU model, which are only ever
        // accessed through raw copies and atomics, never through Rust references.
        unsafe { std::ptr::write_bytes(to, 0, len as usize) };
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const GIB: u64 = 1 << 30;

    /// Resident set size of this process in bytes (Linux `/proc/self/statm`, field 2).
    fn rss_bytes() -> u64 {
        let s = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = s.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }

    #[test]
    fn sixty_four_gib_is_addressable_and_sparse() {
        let mem = PhysMemory::new(64 * GIB).unwrap();
        let before = rss_bytes();
        for i in 0..64 {
            mem.store_u64(i * GIB + 8, i).unwrap();
        }
        for i in 0..64 {
            assert_eq!(mem.load_u64(i * GIB + 8).unwrap(), i);
        }
        // 64 touched pages; allow a wide margin for whatever else the test binary does
        // meanwhile, but far less than the 64 GiB it would cost if the space were backed.
        assert!(rss_bytes().saturating_sub(before) < 256 << 20);
        assert_eq!(
            mem.load_u64(63 * GIB).unwrap(),
            0,
            "untouched memory reads as zero"
        );
    }

    #[test]
    fn hints_outside_memory_are_dropped() {
        let mem = PhysMemory::new(4 << 20).unwrap();
        mem.advise_huge(u64::MAX, 0);
        mem.advise_huge(u64::MAX - 4096, 8192);
        mem.advise_huge(0, 8 << 20);
        mem.store_u64(0, 1).unwrap();
        assert_eq!(mem.load_u64(0).unwrap(), 1);
    }

    #[test]
    fn accesses_outside_memory_are_errors() {
        let mem = PhysMemory::new(1 << 20).unwrap();
        assert!(matches!(
            mem.load_u64(1 << 20),
            Err(MemError::OutOfRange { addr, len: 8 }) if addr == 1 << 20
        ));
        assert!(matches!(
            mem.load_u64(u64::MAX - 7),
            Err(MemError::OutOfRange { .. })
        ));
        assert!(matches!(
            mem.store_u64(4, 1),
            Err(MemError::Misaligned { addr: 4 })
        ));
        let mut buf = [0u8; 16];
        assert!(mem.read((1 << 20) - 8, &mut buf).is_err());
        assert!(mem.write(u64::MAX, &buf).is_err());
        assert!(mem.zero((1 << 20) - 4096, 8192).is_err());
        // the last byte is fine
        mem.write((1 << 20) - 1, &[0xaa]).unwrap();
        mem.read((1 << 20) - 1, &mut buf[..1]).unwrap();
        assert_eq!(buf[0], 0xaa);
    }

    #[test]
    fn compare_exchange_reports_the_value_seen() {
        let mem = PhysMemory::new(1 << 20).unwrap();
        mem.store_u64(0x100, 5).unwrap();
        assert_eq!(mem.compare_exchange_u64(0x100, 5, 7).unwrap(), Ok(5));
        assert_eq!(mem.compare_exchange_u64(0x100, 5, 9).unwrap(), Err(7));
        assert_eq!(mem.load_u64(0x100).unwrap(), 7);
    }

    #[test]
    fn concurrent_cas_loses_no_update() {
        let mem = std::sync::Arc::new(PhysMemory::new(1 << 20).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mem = mem.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        loop {
                            let v = mem.load_u64(0).unwrap();
                            if mem
                                .compare_exchange_u64(0, v, v + (1 << (t * 16)))
                                .unwrap()
                                .is_ok()
                            {
                                break;
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(mem.load_u64(0).unwrap(), 1000 * 0x0001_0001_0001_0001);
    }

    #[test]
    fn copy_moves_bytes_and_checks_ranges() {
        let mem = PhysMemory::new(1 << 20).unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        mem.write(0x1000, &data).unwrap();
        mem.copy(0x1000, 0x8000, 10_000).unwrap();
        let mut got = vec![0u8; 10_000];
        mem.read(0x8000, &mut got).unwrap();
        assert_eq!(got, data);
        // overlapping, as memmove
        mem.copy(0x8000, 0x8001, 10_000).unwrap();
        mem.read(0x8001, &mut got).unwrap();
        assert_eq!(got, data);
        assert!(mem.copy(0, (1 << 20) - 10, 11).is_err());
        assert!(mem.copy(u64::MAX - 5, 0, 10).is_err());
        // the trait's own version (used by other memories) agrees, overlap included
        struct Plain(PhysMemory);
        impl PhysMem for Plain {
            fn size(&self) -> u64 {
                self.0.size()
            }
            fn load_u64(&self, pa: u64) -> Result<u64> {
                self.0.load_u64(pa)
            }
            fn store_u64(&self, pa: u64, v: u64) -> Result<()> {
                self.0.store_u64(pa, v)
            }
            fn compare_exchange_u64(
                &self,
                pa: u64,
                c: u64,
                n: u64,
            ) -> Result<std::result::Result<u64, u64>> {
                self.0.compare_exchange_u64(pa, c, n)
            }
            fn read(&self, pa: u64, b: &mut [u8]) -> Result<()> {
                self.0.read(pa, b)
            }
            fn write(&self, pa: u64, b: &[u8]) -> Result<()> {
                self.0.write(pa, b)
            }
            fn zero(&self, pa: u64, l: u64) -> Result<()> {
                self.0.zero(pa, l)
            }
        }
        let p = Plain(mem);
        p.write(0x20000, &data).unwrap();
        p.copy(0x20000, 0x20000 + 3000, 10_000).unwrap();
        p.read(0x20000 + 3000, &mut got).unwrap();
        assert_eq!(got, data);
    }

    #[test]
    fn zero_small_and_large_ranges() {
        let mem = PhysMemory::new(8 << 20).unwrap();
        mem.write(0x1000, &[0xff; 100]).unwrap();
        mem.write(2 << 20, &[0xee; 4096]).unwrap();
        mem.write((4 << 20) - 8, &[0xdd; 8]).unwrap();
        mem.zero(0x1000, 50).unwrap();
        let mut buf = [0u8; 100];
        mem.read(0x1000, &mut buf).unwrap();
        assert_eq!(&buf[..50], &[0; 50]);
        assert_eq!(&buf[50..], &[0xff; 50]);
        mem.zero(2 << 20, 2 << 20).unwrap();
        let mut page = [1u8; 4096];
        mem.read(2 << 20, &mut page).unwrap();
        assert!(page.iter().all(|&b| b == 0));
        assert_eq!(mem.load_u64((4 << 20) - 8).unwrap(), 0);
    }
}

/// A window `[base, base + size)` of another memory, seen from address 0: a guest's RAM when
/// it is one contiguous block of host memory, or any sub-range handed to a component that must
/// not reach outside it. Accesses past the window's end fail even if the backing memory is
/// larger.
#[derive(Clone)]
pub struct PhysWindow {
    backing: std::sync::Arc<dyn PhysMem>,
    base: u64,
    size: u64,
}

impl std::fmt::Debug for PhysWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhysWindow")
            .field("base", &self.base)
            .field("size", &self.size)
            .finish()
    }
}

impl PhysWindow {
    /// The window `[base, base + size)` of `backing`.
    ///
    /// # Errors
    /// [`MemError::Misaligned`] if `base` is not 4 KiB aligned (the window's pages must be the
    /// backing's pages, and its 8-byte words the backing's aligned words);
    /// [`MemError::OutOfRange`] if the window does not fit in `backing`.
    pub fn new(backing: std::sync::Arc<dyn PhysMem>, base: u64, size: u64) -> Result<Self> {
        if base % 4096 != 0 {
            return Err(MemError::Misaligned { addr: base });
        }
        check_range(backing.size(), base, size)?;
        Ok(PhysWindow {
            backing,
            base,
            size,
        })
    }

    /// Where the window starts in the backing memory.
    pub fn base(&self) -> u64 {
        self.base
    }

    fn at(&self, pa: u64, len: u64) -> Result<u64> {
        check_range(self.size, pa, len)?;
        Ok(self.base + pa)
    }

    /// [`at`](Self::at) for an 8-byte atomic, so that errors name the window's address.
    #[inline]
    fn word(&self, pa: u64) -> Result<u64> {
        if pa & 7 != 0 {
            return Err(MemError::Misaligned { addr: pa });
        }
        self.at(pa, 8)
    }
}

impl PhysMem for PhysWindow {
    fn size(&self) -> u64 {
        self.size
    }

    fn load_u64(&self, pa: u64) -> Result<u64> {
        self.backing.load_u64(self.word(pa)?)
    }

    fn store_u64(&self, pa: u64, val: u64) -> Result<()> {
        self.backing.store_u64(self.word(pa)?, val)
    }

    fn compare_exchange_u64(
        &self,
        pa: u64,
        current: u64,
        new: u64,
    ) -> Result<std::result::Result<u64, u64>> {
        self.backing
            .compare_exchange_u64(self.word(pa)?, current, new)
    }

    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<()> {
        self.backing.read(self.at(pa, buf.len() as u64)?, buf)
    }

    fn write(&self, pa: u64, buf: &[u8]) -> Result<()> {
        self.backing.write(self.at(pa, buf.len() as u64)?, buf)
    }

    fn zero(&self, pa: u64, len: u64) -> Result<()> {
        self.backing.zero(self.at(pa, len)?, len)
    }

    fn advise_huge(&self, pa: u64, len: u64) {
        if let Ok(at) = self.at(pa, len) {
            self.backing.advise_huge(at, len);
        }
    }

    fn copy(&self, src: u64, dst: u64, len: u64) -> Result<()> {
        self.backing
            .copy(self.at(src, len)?, self.at(dst, len)?, len)
    }
}

#[cfg(test)]
mod window_tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn window_translates_and_confines() {
        let host: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(8 << 20).unwrap());
        let w = PhysWindow::new(host.clone(), 4 << 20, 1 << 20).unwrap();
        w.store_u64(0x10, 42).unwrap();
        assert_eq!(host.load_u64((4 << 20) + 0x10).unwrap(), 42);
        assert!(w.load_u64(1 << 20).is_err());
        assert!(w.write((1 << 20) - 1, &[0, 0]).is_err());
        assert!(PhysWindow::new(host, 8 << 20, 1).is_err());
    }

    #[test]
    fn bad_windows_and_accesses_are_errors_in_window_addresses() {
        let host: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(8 << 20).unwrap());
        // A base off a page boundary would make every aligned word of the window a misaligned
        // host word.
        assert_eq!(
            PhysWindow::new(host.clone(), 0x1001, 4096).unwrap_err(),
            MemError::Misaligned { addr: 0x1001 }
        );
        assert!(matches!(
            PhysWindow::new(host.clone(), !0xfff, 0x2000),
            Err(MemError::OutOfRange { .. })
        ));
        let w = PhysWindow::new(host, 4 << 20, 1 << 20).unwrap();
        assert_eq!(
            w.store_u64(4, 1).unwrap_err(),
            MemError::Misaligned { addr: 4 }
        );
        assert_eq!(
            w.compare_exchange_u64(0x13, 0, 1).unwrap_err(),
            MemError::Misaligned { addr: 0x13 }
        );
        assert_eq!(
            w.load_u64(u64::MAX - 7).unwrap_err(),
            MemError::OutOfRange {
                addr: u64::MAX - 7,
                len: 8
            }
        );
        assert!(w.copy(0, u64::MAX - 3, 8).is_err());
        assert!(w.zero((1 << 20) - 8, 16).is_err());
    }
}
