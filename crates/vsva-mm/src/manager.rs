//! The memory manager: physical frames, their reference counts, swap, and process creation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use vsva_mem::{FrameAllocator, PageSize, PhysMem};
use vsva_pgtable::arm::ArmS1;
use vsva_pgtable::x86::X86Paging;

use crate::cpu::CpuPaging;
use crate::error::{MmError, Result};
use crate::process::{Pid, Process};
use crate::swap::SwapStore;

/// Counters of what the memory manager did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MmStats {
    /// Faults that installed a fresh zeroed page.
    pub zero_fills: u64,
    /// Copy-on-write faults that copied a shared page.
    pub cow_copies: u64,
    /// Copy-on-write faults that found the page no longer shared and just made it writable.
    pub cow_reuses: u64,
    /// Pages written to swap.
    pub swap_outs: u64,
    /// Pages read back from swap.
    pub swap_ins: u64,
    /// Faults that found nothing to do (the entry was already fine).
    pub spurious: u64,
    /// Pages currently allocated to processes.
    pub pages_in_use: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub zero_fills: AtomicU64,
    pub cow_copies: AtomicU64,
    pub cow_reuses: AtomicU64,
    pub swap_outs: AtomicU64,
    pub swap_ins: AtomicU64,
    pub spurious: AtomicU64,
}

impl Counters {
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// The kernel's memory manager. Processes hold an `Arc` to it.
pub struct MemoryManager {
    frames: Arc<FrameAllocator>,
    paging: CpuPaging,
    /// Arm64 ASIDs in use (Linux arm64 gives each address space one; x86 processes use none).
    asids: Mutex<AsidMap>,
    /// Reference counts of frames: one per mapping by a process (more than one after fork)
    /// plus one per pin.
    refs: Mutex<HashMap<u64, u32>>,
    /// Pins per frame (`pin_user_pages`): pinned frames are neither paged out nor shared
    /// copy-on-write by fork. Only changed with `refs` held.
    pins: Mutex<HashMap<u64, u32>>,
    swap: Mutex<SwapStore>,
    next_pid: AtomicU32,
    pub(crate) counters: Counters,
}

impl std::fmt::Debug for MemoryManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryManager")
            .field("paging", &self.paging)
            .field("stats", &self.stats())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemoryManager {
    /// A memory manager handing out frames from `frames`, building x86-64 process page
    /// tables of format `paging` (4- or 5-level, with the CPU features it names).
    pub fn new(frames: Arc<FrameAllocator>, paging: X86Paging) -> Arc<Self> {
        Self::with_paging(frames, CpuPaging::X86_64(paging))
    }

    /// A memory manager of an Arm64 machine: processes get VMSAv8-64 stage-1 tables
    /// configured from `mmu` as [`CpuPaging::arm64`] says (its PA size and TCR.HA/HD kept;
    /// 48-bit VA, TTBR0 range, nG leaves), and an ASID each.
    pub fn new_arm64(frames: Arc<FrameAllocator>, mmu: ArmS1) -> Arc<Self> {
        Self::with_paging(frames, CpuPaging::arm64(mmu))
    }

    /// A memory manager whose processes use `paging` (as given: normalise an Arm
    /// configuration with [`CpuPaging::arm64`]).
    pub fn with_paging(frames: Arc<FrameAllocator>, paging: CpuPaging) -> Arc<Self> {
        Arc::new(MemoryManager {
            frames,
            paging,
            asids: Mutex::new(AsidMap::default()),
            refs: Mutex::new(HashMap::new()),
            pins: Mutex::new(HashMap::new()),
            swap: Mutex::new(SwapStore::default()),
            next_pid: AtomicU32::new(1),
            counters: Counters::default(),
        })
    }

    /// Creates an empty process.
    ///
    /// # Errors
    /// [`MmError::OutOfMemory`] if no frame is left for its page table.
    pub fn spawn(self: &Arc<Self>) -> Result<Arc<Process>> {
        let pid = Pid(self.next_pid.fetch_add(1, Ordering::Relaxed));
        Process::new(self.clone(), pid)
    }

    /// Physical memory.
    pub fn memory(&self) -> &dyn PhysMem {
        self.frames.memory().as_ref()
    }

    /// The frame allocator.
    pub fn frames(&self) -> &Arc<FrameAllocator> {
        &self.frames
    }

    /// The paging format of process page tables.
    pub fn paging(&self) -> CpuPaging {
        self.paging
    }

    /// An ASID for a new Arm64 address space: the lowest free one of 1 to 65535 (16-bit
    /// ASIDs; ASID 0 is reserved, as Linux reserves it for its own use); 0 for x86.
    ///
    /// # Errors
    /// [`MmError::OutOfMemory`] when all are in use (Linux instead starts a new ASID
    /// generation and flushes every TLB; not modelled).
    pub(crate) fn alloc_asid(&self) -> Result<u16> {
        if !matches!(self.paging, CpuPaging::Arm64(_)) {
            return Ok(0);
        }
        if vsva_mem::fail_nth::should_fail() {
            return Err(MmError::OutOfMemory);
        }
        lock(&self.asids).alloc().ok_or(MmError::OutOfMemory)
    }

    /// Gives back an ASID of [`alloc_asid`](Self::alloc_asid).
    pub(crate) fn free_asid(&self, asid: u16) {
        if asid != 0 {
            lock(&self.asids).free(asid);
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> MmStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MmStats {
            zero_fills: get(&c.zero_fills),
            cow_copies: get(&c.cow_copies),
            cow_reuses: get(&c.cow_reuses),
            swap_outs: get(&c.swap_outs),
            swap_ins: get(&c.swap_ins),
            spurious: get(&c.spurious),
            pages_in_use: lock(&self.refs).len() as u64,
        }
    }

    /// Allocates a zeroed page of `size` with one reference.
    pub(crate) fn alloc_page(&self, size: PageSize) -> Result<u64> {
        let pa = self.frames.alloc_zeroed(size)?;
        lock(&self.refs).insert(pa, 1);
        Ok(pa)
    }

    /// One more mapping of the page at `pa`.
    pub(crate) fn get_page(&self, pa: u64) {
        *lock(&self.refs).entry(pa).or_insert(0) += 1;
    }

    /// One mapping fewer of the page at `pa`; frees it when none is left.
    pub(crate) fn put_page(&self, pa: u64) {
        let mut refs = lock(&self.refs);
        let Some(n) = refs.get_mut(&pa) else {
            tracing::error!(pa, "put_page of a page with no references");
            return;
        };
        *n -= 1;
        if *n == 0 {
            refs.remove(&pa);
            drop(refs);
            if let Err(e) = self.frames.free(pa) {
                tracing::error!(pa, %e, "freeing a process page");
            }
        }
    }

    /// How many mappings the page at `pa` has.
    pub fn page_refs(&self, pa: u64) -> u32 {
        lock(&self.refs).get(&pa).copied().unwrap_or(0)
    }

    /// How many pages are pinned (by anyone).
    pub fn pinned_pages(&self) -> usize {
        lock(&self.pins).len()
    }

    /// How many pins the page at `pa` has.
    pub fn pin_count(&self, pa: u64) -> u32 {
        lock(&self.pins).get(&pa).copied().unwrap_or(0)
    }

    /// How many process mappings the page at `pa` has: its references minus its pins. This,
    /// not [`page_refs`](Self::page_refs), says whether a page is shared copy-on-write.
    pub fn map_count(&self, pa: u64) -> u32 {
        let refs = lock(&self.refs);
        let total = refs.get(&pa).copied().unwrap_or(0);
        total.saturating_sub(self.pin_count(pa))
    }

    /// Pins the live page at `pa`: one more reference (it outlives its mappings) and one
    /// more pin. False, and nothing taken, if `pa` is not a live page.
    pub(crate) fn pin_page(&self, pa: u64) -> bool {
        let mut refs = lock(&self.refs);
        let Some(n) = refs.get_mut(&pa) else {
            return false;
        };
        *n += 1;
        *lock(&self.pins).entry(pa).or_insert(0) += 1;
        true
    }

    /// Drops one pin of the page at `pa` and its reference (freeing the page if nothing else
    /// holds it). Unpinning a page that is not pinned is logged and ignored.
    pub fn unpin_page(&self, pa: u64) {
        {
            let _refs = lock(&self.refs);
            let mut pins = lock(&self.pins);
            match pins.get_mut(&pa) {
                Some(n) if *n > 1 => *n -= 1,
                Some(_) => {
                    pins.remove(&pa);
                }
                None => {
                    tracing::error!(pa, "unpin of a page that is not pinned");
                    return;
                }
            }
        }
        self.put_page(pa);
    }

    pub(crate) fn swap(&self) -> MutexGuard<'_, SwapStore> {
        lock(&self.swap)
    }

    /// Pages currently in swap.
    pub fn swapped_pages(&self) -> usize {
        self.swap().len()
    }
}

/// ASIDs in use: a bitmap of 65536 bits, and where the search for a free one starts.
#[derive(Debug)]
pub(crate) struct AsidMap {
    used: Vec<u64>,
    hint: usize,
}

impl Default for AsidMap {
    fn default() -> Self {
        let mut used = vec![0u64; 1024];
        used[0] = 1; // ASID 0 is reserved
        AsidMap { used, hint: 0 }
    }
}

impl AsidMap {
    fn alloc(&mut self) -> Option<u16> {
        let n = self.used.len();
        for k in 0..n {
            let i = (self.hint + k) % n;
            let w = self.used[i];
            if w != u64::MAX {
                let bit = (!w).trailing_zeros() as usize;
                self.used[i] |= 1 << bit;
                self.hint = i;
                return u16::try_from(i * 64 + bit).ok();
            }
        }
        None
    }

    fn free(&mut self, asid: u16) {
        let (i, bit) = (usize::from(asid) / 64, asid % 64);
        self.used[i] &= !(1u64 << bit);
        self.hint = self.hint.min(i);
    }
}

impl From<MmError> for std::io::Error {
    fn from(e: MmError) -> Self {
        std::io::Error::from_raw_os_error(e.errno().0)
    }
}
