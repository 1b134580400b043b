//! A buddy allocator for physical frames of 4 KiB, 2 MiB and 1 GiB.
//!
//! Blocks are powers of two from order 0 (4 KiB) to order 18 (1 GiB), each naturally aligned,
//! so a 2 MiB or 1 GiB frame is always usable as a superpage. Freed blocks merge with their
//! buddy, so memory freed as 4 KiB frames becomes a 1 GiB frame again once all of it is free.
//! Every live allocation is recorded with its order: freeing an address that is not the start
//! of a live frame is an error rather than a corruption.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use crate::addr::PageSize;
use crate::phys::{MemError, PhysMem};

const MIN_SHIFT: u32 = 12;
const MAX_ORDER: usize = 18;

/// Errors of the frame allocator.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// No free block of the requested size remains.
    #[error("out of memory: no free {size} frame")]
    OutOfMemory {
        /// The size that could not be allocated.
        size: PageSize,
    },
    /// `free` of an address that is not a live frame (double free, or never allocated).
    #[error("{addr:#x} is not an allocated frame")]
    NotAllocated {
        /// The address passed to `free`.
        addr: u64,
    },
    /// Zeroing the frame failed.
    #[error(transparent)]
    Mem(#[from] MemError),
}

fn order_of(size: PageSize) -> usize {
    (size.shift() - MIN_SHIFT) as usize
}

fn block_bytes(order: usize) -> u64 {
    1u64 << (MIN_SHIFT as usize + order)
}

#[derive(Debug, Default)]
struct Buddy {
    free: [BTreeSet<u64>; MAX_ORDER + 1],
    allocated: HashMap<u64, u8>,
    free_bytes: u64,
}

impl Buddy {
    fn alloc(&mut self, order: usize) -> Option<u64> {
        let from = (order..=MAX_ORDER).find(|&o| !self.free[o].is_empty())?;
        let addr = self.free[from].pop_first()?;
        // Split down, returning the upper halves to the free lists.
        for o in (order..from).rev() {
            self.free[o].insert(addr + block_bytes(o));
        }
        self.allocated.insert(addr, order as u8);
        self.free_bytes -= block_bytes(order);
        Some(addr)
    }

    fn free(&mut self, addr: u64) -> Option<()> {
        let mut order = self.allocated.remove(&addr)? as usize;
        self.free_bytes += block_bytes(order);
        let mut addr = addr;
        while order < MAX_ORDER {
            let buddy = addr ^ block_bytes(order);
            if !self.free[order].remove(&buddy) {
                break;
            }
            addr = addr.min(buddy);
            order += 1;
        }
        self.free[order].insert(addr);
        Some(())
    }
}

/// Allocates frames out of a range of a [`PhysMem`].
pub struct FrameAllocator {
    mem: Arc<dyn PhysMem>,
    start: u64,
    end: u64,
    inner: Mutex<Buddy>,
}

impl std::fmt::Debug for FrameAllocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameAllocator")
            .field("start", &self.start)
            .field("end", &self.end)
            .field("free_bytes", &self.free_bytes())
            .finish()
    }
}

impl FrameAllocator {
    /// Manages the frames of `[start, end)` in `mem` (both rounded inwards to 4 KiB). The
    /// range is cut into the largest naturally aligned blocks that fit.
    pub fn new(mem: Arc<dyn PhysMem>, start: u64, end: u64) -> FrameAllocator {
        Self::with_holes(mem, start, end, &[])
    }

    /// Like [`new`](Self::new), leaving out `holes` (each `[start, end)`): address ranges that
    /// are not RAM on the platform, such as the interrupt window 0xFEE0_0000..0xFF00_0000 that
    /// DMA must never target.
    pub fn with_holes(
        mem: Arc<dyn PhysMem>,
        start: u64,
        end: u64,
        holes: &[(u64, u64)],
    ) -> FrameAllocator {
        let page = block_bytes(0);
        let end = end.min(mem.size()) & !(page - 1);
        let start = start.checked_next_multiple_of(page).unwrap_or(end).min(end);
        // Holes widened to whole pages, so every frame handed out stays page aligned.
        let holes: Vec<(u64, u64)> = holes
            .iter()
            .map(|&(s, e)| (s & !(page - 1), e.min(end).next_multiple_of(page)))
            .collect();
        let mut buddy = Buddy::default();
        let mut at = start;
        while at < end {
            if let Some(&(_, hole_end)) = holes.iter().find(|&&(s, e)| s <= at && at < e) {
                at = hole_end.max(at + page);
                continue;
            }
            // The next hole above `at` bounds the block.
            let limit = holes
                .iter()
                .map(|&(s, _)| s)
                .filter(|&s| s > at)
                .min()
                .map_or(end, |s| s.min(end));
            let order = (0..=MAX_ORDER)
                .rev()
                .find(|&o| at % block_bytes(o) == 0 && at + block_bytes(o) <= limit)
                .unwrap_or(0);
            if at + block_bytes(order) > limit {
                at = limit;
                continue;
            }
            buddy.free[order].insert(at);
            buddy.free_bytes += block_bytes(order);
            at += block_bytes(order);
        }
        FrameAllocator {
            mem,
            start,
            end: end.max(start),
            inner: Mutex::new(buddy),
        }
    }

    /// The memory the frames are taken from.
    pub fn memory(&self) -> &Arc<dyn PhysMem> {
        &self.mem
    }

    /// The managed range `[start, end)`.
    pub fn range(&self) -> (u64, u64) {
        (self.start, self.end)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buddy> {
        // A panic while holding the lock cannot leave the buddy lists half updated in a way
        // that breaks memory safety, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Allocates a naturally aligned frame of `size`. Its contents are whatever was there.
    ///
    /// # Errors
    /// [`FrameError::OutOfMemory`] when no block of that size is free, or when
    /// [`fail_nth`](crate::fail_nth) makes this allocation fail.
    pub fn alloc(&self, size: PageSize) -> Result<u64, FrameError> {
        if crate::fail_nth::should_fail() {
            return Err(FrameError::OutOfMemory { size });
        }
        self.lock()
            .alloc(order_of(size))
            .ok_or(FrameError::OutOfMemory { size })
    }

    /// Allocates a frame of `size` and fills it with zeros.
    ///
    /// # Errors
    /// [`FrameError::OutOfMemory`] when no block of that size is free.
    pub fn alloc_zeroed(&self, size: PageSize) -> Result<u64, FrameError> {
        let pa = self.alloc(size)?;
        if size != PageSize::Size4K {
            // before zeroing: zeroing drops the host pages, and the next touch then faults
            // in host huge pages
            self.mem.advise_huge(pa, size.bytes());
        }
        if let Err(e) = self.mem.zero(pa, size.bytes()) {
            let _ = self.free(pa);
            return Err(e.into());
        }
        Ok(pa)
    }

    /// Returns a frame obtained from [`alloc`](Self::alloc).
    ///
    /// # Errors
    /// [`FrameError::NotAllocated`] if `pa` is not the start of a live frame.
    pub fn free(&self, pa: u64) -> Result<(), FrameError> {
        self.lock()
            .free(pa)
            .ok_or(FrameError::NotAllocated { addr: pa })
    }

    /// The size of the live frame starting at `pa`, if any.
    pub fn frame_size(&self, pa: u64) -> Option<u64> {
        self.lock()
            .allocated
            .get(&pa)
            .map(|&o| block_bytes(o as usize))
    }

    /// Bytes not allocated.
    pub fn free_bytes(&self) -> u64 {
        self.lock().free_bytes
    }

    /// Number of live frames.
    pub fn allocated_frames(&self) -> usize {
        self.lock().allocated.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phys::PhysMemory;
    use proptest::prelude::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn allocator(size: u64) -> FrameAllocator {
        let mem: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(size).unwrap());
        FrameAllocator::new(mem, 0, size)
    }

    #[test]
    fn frames_are_naturally_aligned() {
        let a = allocator(4 * GIB);
        let small = a.alloc(PageSize::Size4K).unwrap();
        let mid = a.alloc(PageSize::Size2M).unwrap();
        let big = a.alloc(PageSize::Size1G).unwrap();
        assert_eq!(small % 4096, 0);
        assert_eq!(mid % (2 * MIB), 0);
        assert_eq!(big % GIB, 0);
        assert_eq!(a.frame_size(mid), Some(2 * MIB));
        assert_eq!(a.free_bytes(), 4 * GIB - GIB - 2 * MIB - 4096);
    }

    #[test]
    fn out_of_memory_is_an_error() {
        let a = allocator(4 * MIB);
        assert!(matches!(
            a.alloc(PageSize::Size1G),
            Err(FrameError::OutOfMemory {
                size: PageSize::Size1G
            })
        ));
        let x = a.alloc(PageSize::Size2M).unwrap();
        let y = a.alloc(PageSize::Size2M).unwrap();
        assert_ne!(x, y);
        assert!(matches!(
            a.alloc(PageSize::Size4K),
            Err(FrameError::OutOfMemory { .. })
        ));
        a.free(x).unwrap();
        assert!(a.alloc(PageSize::Size4K).is_ok());
    }

    #[test]
    fn double_free_and_stray_free_are_errors() {
        let a = allocator(4 * MIB);
        let x = a.alloc(PageSize::Size4K).unwrap();
        assert!(matches!(
            a.free(x + 4096),
            Err(FrameError::NotAllocated { .. })
        ));
        a.free(x).unwrap();
        assert!(matches!(a.free(x), Err(FrameError::NotAllocated { addr }) if addr == x));
    }

    #[test]
    fn freed_small_frames_merge_back_into_a_gigabyte() {
        let a = allocator(GIB);
        let frames: Vec<u64> = (0..512)
            .map(|_| a.alloc(PageSize::Size4K).unwrap())
            .collect();
        assert!(a.alloc(PageSize::Size1G).is_err());
        for f in frames {
            a.free(f).unwrap();
        }
        assert_eq!(a.alloc(PageSize::Size1G).unwrap(), 0);
    }

    #[test]
    fn alloc_zeroed_clears_old_contents() {
        let a = allocator(8 * MIB);
        let x = a.alloc(PageSize::Size4K).unwrap();
        a.memory().write(x, &[0x5a; 4096]).unwrap();
        a.free(x).unwrap();
        let y = a.alloc_zeroed(PageSize::Size4K).unwrap();
        assert_eq!(x, y, "the buddy allocator hands back the lowest free block");
        let mut buf = [1u8; 4096];
        a.memory().read(y, &mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 0));
        let big = a.alloc(PageSize::Size2M).unwrap();
        a.memory().store_u64(big + 4096, 77).unwrap();
        a.free(big).unwrap();
        let big2 = a.alloc_zeroed(PageSize::Size2M).unwrap();
        assert_eq!(a.memory().load_u64(big2 + 4096).unwrap(), 0);
    }

    #[test]
    fn unaligned_ranges_are_rounded_inwards() {
        let mem: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(16 * MIB).unwrap());
        let a = FrameAllocator::new(mem, 0x1234, 0x7fff);
        assert_eq!(a.range(), (0x2000, 0x7000));
        assert_eq!(a.free_bytes(), 0x5000);
        let mem: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(16 * MIB).unwrap());
        let empty = FrameAllocator::new(mem, u64::MAX - 10, u64::MAX);
        assert_eq!(empty.free_bytes(), 0);
        assert!(empty.alloc(PageSize::Size4K).is_err());
    }

    #[test]
    fn holes_are_never_handed_out() {
        let mem: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(8 * GIB).unwrap());
        let window = (0xfee0_0000, 0xff00_0000);
        let a = FrameAllocator::with_holes(mem, 0, 8 * GIB, &[window]);
        assert_eq!(a.free_bytes(), 8 * GIB - (window.1 - window.0));
        let mut got = vec![];
        while let Ok(f) = a.alloc(PageSize::Size2M) {
            assert!(f + 2 * MIB <= window.0 || f >= window.1, "{f:#x}");
            got.push(f);
        }
        assert!(a.alloc(PageSize::Size4K).is_err());
        // the 1 GiB frame holding the window is split around it
        for f in got {
            a.free(f).unwrap();
        }
        assert!(a.alloc(PageSize::Size1G).is_ok());
    }

    #[test]
    fn unaligned_holes_cover_whole_pages_and_frames_stay_aligned() {
        let mem: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(MIB).unwrap());
        let a =
            FrameAllocator::with_holes(mem, 0, 0x10000, &[(0x1800, 0x1900), (0x8000, u64::MAX)]);
        // pages 0x1000 and 0x8000.. are out; the rest is 7 pages
        assert_eq!(a.free_bytes(), 7 * 4096);
        while let Ok(f) = a.alloc(PageSize::Size4K) {
            assert_eq!(f % 4096, 0, "{f:#x}");
            assert!(f != 0x1000 && f < 0x8000, "{f:#x}");
        }
    }

    proptest! {
        /// Random alloc/free sequences never hand out overlapping frames, and the free byte
        /// count always equals the managed size minus the live frames.
        #[test]
        fn never_overlaps(ops in proptest::collection::vec((0u8..3, any::<bool>(), any::<prop::sample::Index>()), 1..200)) {
            let a = allocator(16 * MIB + 8 * MIB);
            let mut live: Vec<(u64, u64)> = Vec::new();
            for (sz, do_free, idx) in ops {
                if do_free && !live.is_empty() {
                    let (pa, _) = live.swap_remove(idx.index(live.len()));
                    a.free(pa).unwrap();
                } else {
                    let size = [PageSize::Size4K, PageSize::Size2M, PageSize::Size2M][sz as usize];
                    if let Ok(pa) = a.alloc(size) {
                        prop_assert_eq!(pa % size.bytes(), 0);
                        for &(p, l) in &live {
                            prop_assert!(pa + size.bytes() <= p || p + l <= pa);
                        }
                        live.push((pa, size.bytes()));
                    }
                }
                let used: u64 = live.iter().map(|l| l.1).sum();
                prop_assert_eq!(a.free_bytes(), 24 * MIB - used);
            }
        }
    }
}
