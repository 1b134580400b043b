//! A process's address space: VMAs over a page table in the machine's CPU format (x86-64 or
//! Arm64, [`crate::cpu`]), and the calls that change it (mmap, munmap, mprotect, madvise).
//! Faults are in `fault.rs`, fork and exit in `fork.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bitflags::bitflags;
use vsva_mem::{PageSize, Va};
use vsva_pgtable::Leaf;

use crate::cpu::{CpuArch, CpuPaging, CpuTable};
use crate::error::{MmError, Result};
use crate::live::Life;
use crate::manager::{Counters, MemoryManager};
use crate::notifier::{InvalidateReason, MmuNotifier, NotifierId};
use crate::softpte::PteKind;
use crate::sva::SvaContext;
use crate::vma::{Prot, Vma, VmaTree};

/// A process id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid(pub u32);

impl std::fmt::Display for Pid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

bitflags! {
    /// mmap flags (the subset of `MAP_*` an anonymous mapping uses).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct MapFlags: u32 {
        /// MAP_FIXED: map exactly at the address, replacing what is there.
        const FIXED = 1 << 0;
        /// MAP_POPULATE: fault every page in now.
        const POPULATE = 1 << 1;
        /// MAP_HUGETLB | MAP_HUGE_2MB.
        const HUGE_2M = 1 << 2;
        /// MAP_HUGETLB | MAP_HUGE_1GB.
        const HUGE_1G = 1 << 3;
    }
}

/// madvise advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advice {
    /// MADV_DONTNEED: drop the pages; the next access sees zeros.
    DontNeed,
    /// MADV_PAGEOUT: write the pages to swap and free them; the next access reads them back.
    PageOut,
}

/// Lowest address mmap hands out (Linux `mmap_min_addr`).
pub const MMAP_MIN_ADDR: u64 = 0x1_0000;

pub(crate) struct Space {
    pub vmas: VmaTree,
    /// `None` once the process has exited.
    pub pt: Option<CpuTable>,
}

/// A process: an address space and the listeners on it.
pub struct Process {
    pid: Pid,
    /// The Arm64 ASID of the address space (0 on x86).
    asid: u16,
    pub(crate) mm: Arc<MemoryManager>,
    pub(crate) space: RwLock<Space>,
    notifiers: RwLock<Vec<(NotifierId, Arc<dyn MmuNotifier>)>>,
    next_notifier: AtomicU64,
    /// Pages charged as locked by pinning users (Linux `mm->pinned_vm`).
    pub(crate) pinned_vm: AtomicU64,
    /// RLIMIT_MEMLOCK in bytes (`u64::MAX`: unlimited).
    pub(crate) memlock_limit: AtomicU64,
    /// Exit's progress and the holders of the address space ([`Process::hold`]).
    pub(crate) life: Life,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process").field("pid", &self.pid).finish()
    }
}

pub(crate) fn rlock<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn wlock<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

impl Process {
    pub(crate) fn new(mm: Arc<MemoryManager>, pid: Pid) -> Result<Arc<Process>> {
        let asid = mm.alloc_asid()?;
        let pt = match CpuTable::new(mm.paging(), mm.frames().clone()) {
            Ok(pt) => pt,
            Err(e) => {
                mm.free_asid(asid);
                return Err(e.into());
            }
        };
        Ok(Arc::new(Process {
            pid,
            asid,
            mm,
            space: RwLock::new(Space {
                vmas: VmaTree::default(),
                pt: Some(pt),
            }),
            notifiers: RwLock::new(Vec::new()),
            next_notifier: AtomicU64::new(1),
            pinned_vm: AtomicU64::new(0),
            memlock_limit: AtomicU64::new(u64::MAX),
            life: Life::default(),
        }))
    }

    /// The process id.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The memory manager the process belongs to.
    pub fn memory_manager(&self) -> &Arc<MemoryManager> {
        &self.mm
    }

    /// Physical address of the page table's root (CR3, TTBR0_EL1.BADDR), or `None` after exit. The table may be
    /// freed as soon as this returns: whoever hands the root to a device (SVA) holds the
    /// address space with [`Process::hold`] instead.
    pub fn page_table_root(&self) -> Option<u64> {
        rlock(&self.space).pt.as_ref().map(|pt| pt.root())
    }

    /// The paging format of the page table.
    pub fn paging(&self) -> CpuPaging {
        self.mm.paging()
    }

    /// The process's architecture.
    pub fn arch(&self) -> CpuArch {
        self.paging().arch()
    }

    /// The ASID of the address space: Arm64 only (TTBR0_EL1.ASID, an SMMU CD's ASID); 0 on
    /// x86. It stays the process's until exit has torn the address space down.
    pub fn asid(&self) -> u16 {
        self.asid
    }

    /// Has the process exited (its address space torn down)? See also
    /// [`is_exiting`](Process::is_exiting).
    pub fn has_exited(&self) -> bool {
        rlock(&self.space).pt.is_none()
    }

    /// A copy of the VMA list.
    pub fn vmas(&self) -> Vec<Vma> {
        rlock(&self.space).vmas.iter().copied().collect()
    }

    /// The leaf entry for `va` as the page table holds it now (mapped page, swap entry or
    /// inaccessible page), without faulting.
    pub fn leaf(&self, va: Va) -> Option<Leaf> {
        rlock(&self.space).pt.as_ref()?.lookup(va.raw())
    }

    /// What an IOMMU needs to share the page table (SVA), or `None` after exit. Like
    /// [`page_table_root`](Self::page_table_root), stale as soon as it returns: a binding
    /// takes it from [`LiveSpace::sva`](crate::LiveSpace::sva) while it holds the space.
    pub fn sva_context(&self) -> Option<SvaContext> {
        let root = self.page_table_root()?;
        Some(SvaContext::new(root, self.paging(), self.asid))
    }

    /// Is the page at `va` dirty (written since it was mapped or last cleaned)? `None` if
    /// nothing (present or `PROT_NONE`) is mapped there. See [`CpuPaging::is_dirty`].
    pub fn is_dirty(&self, va: Va) -> Option<bool> {
        let leaf = self.leaf(va)?;
        let fmt = self.paging();
        matches!(
            fmt.classify(leaf.entry),
            PteKind::Present | PteKind::ProtNone
        )
        .then(|| fmt.is_dirty(leaf.entry))
    }

    /// Reports the dirty pages of `[va, va + len)` in address order, and with `clear` makes
    /// them clean (x86: D cleared; Arm64: AP\[2\] set again on a DBM page, the software
    /// dirty bit cleared) by compare-and-swap, so that a write hardware records meanwhile is
    /// not lost. Cleaning is announced ([`InvalidateReason::Protect`]): a TLB or IOTLB entry
    /// that cached the page as dirty would write it without marking it again.
    ///
    /// # Errors
    /// [`MmError::Invalid`] for a bad range, [`MmError::Exited`].
    pub fn read_and_clear_dirty(
        &self,
        va: Va,
        len: u64,
        clear: bool,
    ) -> Result<Vec<(Va, PageSize)>> {
        let (start, end) = self.user_range(va.raw(), len)?;
        let space = wlock(&self.space);
        let pt = space.pt.as_ref().ok_or(MmError::Exited)?;
        let fmt = pt.paging();
        let mut dirty = Vec::new();
        pt.for_each_leaf(start, end - start, &mut |leaf| {
            if !matches!(
                fmt.classify(leaf.entry),
                PteKind::Present | PteKind::ProtNone
            ) || !fmt.is_dirty(leaf.entry)
            {
                return Ok(());
            }
            dirty.push((Va::new(leaf.va), leaf.size));
            let mut old = leaf.entry;
            while clear
                && fmt.is_dirty(old)
                && !pt.replace_entry(leaf.slot, old, fmt.cleaned(old))?
            {
                old = pt.memory().load_u64(leaf.slot)?;
            }
            Ok(())
        })?;
        if clear && !dirty.is_empty() {
            self.notify(start, end, InvalidateReason::Protect);
        }
        Ok(dirty)
    }

    /// Highest user address + 1 (Linux `TASK_SIZE`: the lower canonical half minus a guard page).
    pub fn task_size(&self) -> u64 {
        self.paging().task_size()
    }

    /// Registers a listener for invalidations and exit.
    pub fn register_notifier(&self, n: Arc<dyn MmuNotifier>) -> NotifierId {
        let id = NotifierId(self.next_notifier.fetch_add(1, Ordering::Relaxed));
        wlock(&self.notifiers).push((id, n));
        id
    }

    /// Removes a listener; false if it was not registered.
    pub fn unregister_notifier(&self, id: NotifierId) -> bool {
        let mut v = wlock(&self.notifiers);
        let before = v.len();
        v.retain(|(i, _)| *i != id);
        v.len() != before
    }

    /// The listeners now, so that none is called with the registration lock held (a
    /// listener may unregister itself, as an SVA unbind on `release` does).
    fn listeners(&self) -> Vec<Arc<dyn MmuNotifier>> {
        rlock(&self.notifiers)
            .iter()
            .map(|(_, n)| n.clone())
            .collect()
    }

    pub(crate) fn notify(&self, start: u64, end: u64, reason: InvalidateReason) {
        for n in self.listeners() {
            n.invalidate_range(self.pid, Va::new(start), Va::new(end), reason);
        }
    }

    pub(crate) fn notify_release(&self) {
        for n in self.listeners() {
            n.release(self.pid);
        }
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.mm.counters
    }

    /// Validates `[va, va + len)`: page aligned start, non-zero length (rounded up to pages),
    /// inside the user address range.
    fn user_range(&self, va: u64, len: u64) -> Result<(u64, u64)> {
        if va % PageSize::Size4K.bytes() != 0 {
            return Err(MmError::Invalid("address not page aligned"));
        }
        if len == 0 {
            return Err(MmError::Invalid("zero length"));
        }
        let end = len
            .checked_next_multiple_of(PageSize::Size4K.bytes())
            .and_then(|l| va.checked_add(l))
            .ok_or(MmError::Invalid("range wraps"))?;
        if end > self.task_size() {
            return Err(MmError::Invalid("range beyond the user address space"));
        }
        Ok((va, end))
    }

    /// Unmaps `[start, end)` from the page table, announces it, then releases the frames and
    /// swap slots it held and the tables it emptied — in that order.
    pub(crate) fn zap(
        &self,
        pt: &CpuTable,
        start: u64,
        end: u64,
        reason: InvalidateReason,
    ) -> Result<()> {
        let unmapped = pt.unmap(start, end - start)?;
        if unmapped.leaves.is_empty() && unmapped.tables.is_empty() {
            return Ok(());
        }
        // Also when only tables were unlinked: paging-structure caches may hold them.
        self.notify(start, end, reason);
        for leaf in &unmapped.leaves {
            self.release_leaf(pt, leaf);
        }
        pt.free_tables(&unmapped.tables)?;
        Ok(())
    }

    /// Drops what a removed leaf held.
    fn release_leaf(&self, pt: &CpuTable, leaf: &Leaf) {
        let fmt = pt.paging();
        match fmt.classify(leaf.entry) {
            PteKind::Present => self.mm.put_page(leaf.pa),
            PteKind::ProtNone => self.mm.put_page(fmt.page_addr(leaf.entry, leaf.size)),
            PteKind::Swap(slot) => self.mm.swap().release(slot),
            PteKind::Empty => {}
        }
    }

    /// Maps anonymous memory (mmap with MAP_ANONYMOUS | MAP_PRIVATE).
    ///
    /// `addr` is a hint, or with [`MapFlags::FIXED`] the exact address. Huge mappings are
    /// aligned to, and their length rounded up to, the huge page size.
    ///
    /// # Errors
    /// [`MmError::Invalid`] for a zero length, misaligned fixed address, both huge sizes, or
    /// 1 GiB pages without support; [`MmError::NoAddressSpace`]; [`MmError::OutOfMemory`]
    /// when populating; [`MmError::Exited`].
    pub fn mmap(&self, addr: Option<Va>, len: u64, prot: Prot, flags: MapFlags) -> Result<Va> {
        let page = match (
            flags.contains(MapFlags::HUGE_2M),
            flags.contains(MapFlags::HUGE_1G),
        ) {
            (false, false) => PageSize::Size4K,
            (true, false) => PageSize::Size2M,
            (false, true) => PageSize::Size1G,
            (true, true) => return Err(MmError::Invalid("two huge page sizes")),
        };
        if !self.paging().supports(page) {
            return Err(MmError::Invalid("1 GiB pages not supported"));
        }
        if len == 0 {
            return Err(MmError::Invalid("zero length"));
        }
        let len = len
            .checked_next_multiple_of(page.bytes())
            .ok_or(MmError::Invalid("length overflows"))?;
        let mut space = wlock(&self.space);
        let space = &mut *space;
        let pt = space.pt.as_ref().ok_or(MmError::Exited)?;
        let top = self.task_size();
        let start = if flags.contains(MapFlags::FIXED) {
            let a = addr
                .ok_or(MmError::Invalid("MAP_FIXED without address"))?
                .raw();
            if a & page.offset_mask() != 0 || a < MMAP_MIN_ADDR {
                return Err(MmError::Invalid("MAP_FIXED address misaligned or too low"));
            }
            let end = a
                .checked_add(len)
                .filter(|&e| e <= top)
                .ok_or(MmError::Invalid("range beyond the user address space"))?;
            if !space.vmas.huge_aligned(a, end) {
                return Err(MmError::Invalid("MAP_FIXED would split a huge page"));
            }
            space.vmas.remove_range(a, end);
            self.zap(pt, a, end, InvalidateReason::Unmap)?;
            a
        } else {
            let hint = addr.map(|a| a.raw()).filter(|&a| {
                a & page.offset_mask() == 0
                    && a >= MMAP_MIN_ADDR
                    && a.checked_add(len).is_some_and(|e| e <= top)
                    && space.vmas.overlapping(a, a + len).next().is_none()
            });
            match hint {
                Some(a) => a,
                None => space
                    .vmas
                    .find_gap(len, page.bytes(), MMAP_MIN_ADDR, top)
                    .ok_or(MmError::NoAddressSpace { len })?,
            }
        };
        let vma = Vma {
            start,
            end: start + len,
            prot,
            page,
        };
        space.vmas.insert(vma);
        if flags.contains(MapFlags::POPULATE) && !prot.is_empty() {
            let access = if prot.contains(Prot::WRITE) {
                vsva_mem::Access::READ | vsva_mem::Access::WRITE
            } else {
                vsva_mem::Access::READ
            };
            let mut va = start;
            while va < vma.end {
                if let Err(e) = self.fault_locked(space, va, access) {
                    // Leave no half-populated mapping behind.
                    space.vmas.remove_range(vma.start, vma.end);
                    self.zap(pt, vma.start, vma.end, InvalidateReason::Unmap)?;
                    return Err(e);
                }
                va += page.bytes();
            }
        }
        Ok(Va::new(start))
    }

    /// Unmaps `[va, va + len)`. Unmapped holes inside the range are fine.
    ///
    /// # Errors
    /// [`MmError::Invalid`] for a misaligned start, zero length, a range past the user space,
    /// or one that would split a huge page; [`MmError::Exited`].
    pub fn munmap(&self, va: Va, len: u64) -> Result<()> {
        let (start, end) = self.user_range(va.raw(), len)?;
        let mut space = wlock(&self.space);
        let space = &mut *space;
        let pt = space.pt.as_ref().ok_or(MmError::Exited)?;
        if !space.vmas.huge_aligned(start, end) {
            return Err(MmError::Invalid("range splits a huge page"));
        }
        space.vmas.remove_range(start, end);
        self.zap(pt, start, end, InvalidateReason::Unmap)
    }

    /// Changes the protection of `[va, va + len)`, which must be mapped entirely.
    ///
    /// Pages still shared copy-on-write stay read-only whatever `prot` says; the next write
    /// copies them. `PROT_NONE` pages keep their frames in non-present entries.
    ///
    /// # Errors
    /// [`MmError::NotMapped`] (ENOMEM) for a hole, [`MmError::Invalid`], [`MmError::Exited`].
    pub fn mprotect(&self, va: Va, len: u64, prot: Prot) -> Result<()> {
        let (start, end) = self.user_range(va.raw(), len)?;
        let mut space = wlock(&self.space);
        let space = &mut *space;
        let pt = space.pt.as_ref().ok_or(MmError::Exited)?;
        check_mapped(&space.vmas, start, end)?;
        space.vmas.protect_range(start, end, prot);
        let fmt = pt.paging();
        let mut changed = false;
        pt.for_each_leaf(start, end - start, &mut |leaf| {
            let kind = fmt.classify(leaf.entry);
            if !matches!(kind, PteKind::Present | PteKind::ProtNone) {
                return Ok(());
            }
            let mut perm = prot.perm();
            if self.mm.map_count(fmt.page_addr(leaf.entry, leaf.size)) > 1 {
                perm.remove(vsva_pgtable::Perm::WRITE);
            }
            // The new entry from the old one, keeping its Accessed and dirty state; computed
            // again if hardware changed the entry (set A/D, AF, cleared AP[2]) meanwhile.
            let modify = |old: u64| {
                let present = match fmt.classify(old) {
                    PteKind::ProtNone => fmt.from_prot_none(old),
                    _ => old,
                };
                let entry = fmt.modify(present, perm);
                if prot.is_empty() {
                    fmt.prot_none(entry)
                } else {
                    entry
                }
            };
            let mut old = leaf.entry;
            loop {
                let new = modify(old);
                if new == old {
                    break;
                }
                changed = true;
                if pt.replace_entry(leaf.slot, old, new)? {
                    break;
                }
                old = pt.memory().load_u64(leaf.slot)?;
            }
            Ok(())
        })?;
        if changed {
            self.notify(start, end, InvalidateReason::Protect);
        }
        Ok(())
    }

    /// Gives advice about `[va, va + len)`, which must be mapped entirely.
    ///
    /// # Errors
    /// [`MmError::NotMapped`] (ENOMEM) for a hole, [`MmError::Invalid`], [`MmError::Exited`].
    pub fn madvise(&self, va: Va, len: u64, advice: Advice) -> Result<()> {
        let (start, end) = self.user_range(va.raw(), len)?;
        let space = wlock(&self.space);
        let pt = space.pt.as_ref().ok_or(MmError::Exited)?;
        check_mapped(&space.vmas, start, end)?;
        match advice {
            Advice::DontNeed => self.zap(pt, start, end, InvalidateReason::DontNeed),
            Advice::PageOut => self.page_out(pt, start, end),
        }
    }

    /// Writes the private 4 KiB pages of the range to swap: each PTE becomes a swap entry,
    /// the range is announced, and only then is each frame's content copied and the frame freed
    /// (so a device write that raced with the PTE change is not lost).
    fn page_out(&self, pt: &CpuTable, start: u64, end: u64) -> Result<()> {
        let fmt = pt.paging();
        let mut taken: Vec<(u64, u64, u64)> = Vec::new(); // (slot, frame, entry)
        pt.for_each_leaf(start, end - start, &mut |leaf| {
            if fmt.classify(leaf.entry) != PteKind::Present
                || leaf.size != PageSize::Size4K
                || self.mm.page_refs(leaf.pa) != 1
            // shared, or pinned
            {
                return Ok(());
            }
            let slot = self.mm.swap().put(Box::default());
            let mut old = leaf.entry;
            while !pt.replace_entry(leaf.slot, old, fmt.swap_entry(slot))? {
                old = pt.memory().load_u64(leaf.slot)?;
            }
            taken.push((slot, leaf.pa, old));
            Ok(())
        })?;
        if taken.is_empty() {
            return Ok(());
        }
        self.notify(start, end, InvalidateReason::PageOut);
        for (slot, frame, entry) in taken {
            let mut data = vec![0u8; PageSize::Size4K.bytes() as usize].into_boxed_slice();
            // A frame of our own is always readable; should that ever fail, the page keeps its
            // frame rather than coming back as zeros.
            if self.mm.memory().read(frame, &mut data).is_err() {
                tracing::error!(frame, "page-out could not read its frame; page kept");
                self.restore_from_swap(pt, start, end, slot, entry);
                continue;
            }
            self.mm.swap().set(slot, data);
            self.mm.put_page(frame);
            Counters::bump(&self.counters().swap_outs);
        }
        Ok(())
    }

    /// Undoes one page-out: the swap entry naming `slot` becomes `entry` again.
    fn restore_from_swap(&self, pt: &CpuTable, start: u64, end: u64, slot: u64, entry: u64) {
        let fmt = pt.paging();
        let _ = pt.for_each_leaf(start, end - start, &mut |leaf| {
            if fmt.classify(leaf.entry) == PteKind::Swap(slot) {
                pt.replace_entry(leaf.slot, leaf.entry, entry)?;
            }
            Ok(())
        });
        self.mm.swap().release(slot);
    }
}

/// `[start, end)` must be mapped entirely (ENOMEM otherwise, as mprotect and madvise say)
/// and must not cut a huge page (EINVAL).
fn check_mapped(vmas: &VmaTree, start: u64, end: u64) -> Result<()> {
    if let Some(hole) = vmas.first_hole(start, end) {
        return Err(MmError::NotMapped {
            addr: Va::new(hole),
        });
    }
    if !vmas.huge_aligned(start, end) {
        return Err(MmError::Invalid("range splits a huge page"));
    }
    Ok(())
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.exit();
    }
}
