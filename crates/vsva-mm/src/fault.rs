//! Demand paging: the page-fault handler, and user accesses by the CPU model.
//!
//! `handle_fault` is what both the CPU's #PF path and an IOMMU's I/O page-fault handler call
//! (Linux `handle_mm_fault`). It runs under the address-space read lock and installs entries by
//! compare-and-swap, so concurrent faults on the same page end with one mapping: the loser frees
//! what it allocated and looks again.

use vsva_mem::{Access, PageSize, Va};
use vsva_pgtable::{Leaf, Perm};

use crate::cpu::CpuTable;
use crate::error::{MmError, Result};
use crate::manager::Counters;
use crate::notifier::InvalidateReason;
use crate::process::{Process, Space, rlock};
use crate::softpte::PteKind;

/// How often a fault looks again after losing a race before giving up (the caller's retry of
/// the access then faults again).
const FAULT_RETRIES: usize = 16;

impl Process {
    /// Resolves a fault at `va` for `access` (user access; `PRIV` is ignored here: whether a
    /// supervisor request may touch user memory is the caller's policy).
    ///
    /// # Errors
    /// [`MmError::NoVma`] if no VMA covers `va`, [`MmError::AccessDenied`] if its protection
    /// forbids `access`, [`MmError::OutOfMemory`], [`MmError::Exited`].
    pub fn handle_fault(&self, va: Va, access: Access) -> Result<()> {
        let space = rlock(&self.space);
        self.fault_locked(&space, va.raw(), access)
    }

    pub(crate) fn fault_locked(&self, space: &Space, va: u64, access: Access) -> Result<()> {
        let pt = space.pt.as_ref().ok_or(MmError::Exited)?;
        let vma = *space
            .vmas
            .find(va)
            .ok_or(MmError::NoVma { va: Va::new(va) })?;
        if !vma.prot.allows(access) {
            return Err(MmError::AccessDenied {
                va: Va::new(va),
                access,
            });
        }
        let base = va & !vma.page.offset_mask();
        let perm = vma.prot.perm();
        let fmt = pt.paging();
        for _ in 0..FAULT_RETRIES {
            let done = match pt.lookup(base) {
                None => self.fill_zero(pt, base, vma.page, perm, access)?,
                Some(leaf) => match fmt.classify(leaf.entry) {
                    PteKind::Empty => self.fill_zero(pt, base, vma.page, perm, access)?,
                    PteKind::Swap(slot) => self.swap_in(pt, &leaf, slot, perm)?,
                    PteKind::ProtNone => {
                        // Only reachable if the VMA and its entries disagree; make the page
                        // accessible again, still read-only while it is shared copy-on-write.
                        let present = fmt.from_prot_none(leaf.entry);
                        let mut perm = perm;
                        if self.mm.map_count(fmt.page_addr(present, leaf.size)) > 1 {
                            perm.remove(Perm::WRITE);
                        }
                        let entry = fmt.modify(present, perm);
                        pt.replace_entry(leaf.slot, leaf.entry, entry)?
                    }
                    PteKind::Present => self.fix_present(pt, &leaf, access, perm)?,
                },
            };
            if done {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Installs a zeroed page (Arm64: writable-clean after a read fault, writable-dirty after
    /// a write fault). Returns false if another fault won the race.
    fn fill_zero(
        &self,
        pt: &CpuTable,
        base: u64,
        size: PageSize,
        perm: Perm,
        access: Access,
    ) -> Result<bool> {
        let pa = self.mm.alloc_page(size)?;
        match pt.install(base, pa, size, perm, access) {
            Ok(true) => {
                Counters::bump(&self.counters().zero_fills);
                Ok(true)
            }
            Ok(false) => {
                self.mm.put_page(pa);
                Ok(false)
            }
            Err(e) => {
                self.mm.put_page(pa);
                Err(e.into())
            }
        }
    }

    /// Reads a page back from swap. The slot is freed, so the page is dirty: memory holds the
    /// only copy.
    fn swap_in(&self, pt: &CpuTable, leaf: &Leaf, slot: u64, perm: Perm) -> Result<bool> {
        let pa = self.mm.alloc_page(PageSize::Size4K)?;
        let copied = {
            let swap = self.mm.swap();
            match swap.get(slot) {
                Some(data) => self.mm.memory().write(pa, data).is_ok(),
                None => false,
            }
        };
        let entry = pt.paging().dirty_leaf(pa, PageSize::Size4K, perm);
        if !copied || !pt.replace_entry(leaf.slot, leaf.entry, entry)? {
            self.mm.put_page(pa);
            return Ok(false);
        }
        self.mm.swap().release(slot);
        Counters::bump(&self.counters().swap_ins);
        Ok(true)
    }

    /// A present entry that did not allow the access: a copy-on-write page, or rights left
    /// behind by a change of protection.
    fn fix_present(&self, pt: &CpuTable, leaf: &Leaf, access: Access, perm: Perm) -> Result<bool> {
        let fmt = pt.paging();
        let rights = fmt.rights(leaf.entry);
        if access.is_write() && !rights.contains(Perm::WRITE) {
            if self.mm.map_count(leaf.pa) <= 1 {
                // No longer shared: the page is ours, make it writable. The write that
                // follows marks it dirty in hardware (x86 D; Arm64 AP[2] cleared on the
                // writable-clean DBM page), as it would any writable-clean page.
                let entry = fmt.modify(leaf.entry, perm);
                let done = pt.replace_entry(leaf.slot, leaf.entry, entry)?;
                if done {
                    Counters::bump(&self.counters().cow_reuses);
                }
                return Ok(done);
            }
            return self.cow_copy(pt, leaf, perm);
        }
        if access.is_write() {
            if let Some(dirty) = fmt.write_fault_dirty(leaf.entry) {
                return Ok(pt.replace_entry(leaf.slot, leaf.entry, dirty)?);
            }
        }
        let wanted = fmt.modify(leaf.entry, perm);
        if (access.is_exec() && !rights.contains(Perm::EXEC)) && wanted != leaf.entry {
            return Ok(pt.replace_entry(leaf.slot, leaf.entry, wanted)?);
        }
        Counters::bump(&self.counters().spurious);
        Ok(true)
    }

    /// Breaks copy-on-write sharing: copy, switch the entry, announce, then drop the old page.
    fn cow_copy(&self, pt: &CpuTable, leaf: &Leaf, perm: Perm) -> Result<bool> {
        let new = self.mm.alloc_page(leaf.size)?;
        if copy_frame(self.mm.memory(), leaf.pa, new, leaf.size.bytes()).is_err() {
            self.mm.put_page(new);
            return Err(MmError::OutOfMemory);
        }
        let entry = pt.paging().dirty_leaf(new, leaf.size, perm);
        if !pt.replace_entry(leaf.slot, leaf.entry, entry)? {
            self.mm.put_page(new);
            return Ok(false);
        }
        self.notify(
            leaf.va,
            leaf.va + leaf.size.bytes(),
            InvalidateReason::CowBreak,
        );
        self.mm.put_page(leaf.pa);
        Counters::bump(&self.counters().cow_copies);
        Ok(true)
    }

    /// Reads `buf.len()` bytes at `va` as user code on the CPU would, faulting pages in.
    ///
    /// # Errors
    /// The fault's error if a page cannot be made accessible.
    pub fn read_bytes(&self, va: Va, buf: &mut [u8]) -> Result<()> {
        let mut done = 0;
        self.user_access(va, buf.len(), Access::READ, &mut |pa, len| {
            let r = self.mm.memory().read(pa, &mut buf[done..done + len]);
            done += len;
            r.is_ok()
        })
    }

    /// Writes `buf` at `va` as user code on the CPU would, faulting pages in (and breaking
    /// copy-on-write).
    ///
    /// # Errors
    /// The fault's error if a page cannot be made writable.
    pub fn write_bytes(&self, va: Va, buf: &[u8]) -> Result<()> {
        let mut done = 0;
        self.user_access(
            va,
            buf.len(),
            Access::READ | Access::WRITE,
            &mut |pa, len| {
                let r = self.mm.memory().write(pa, &buf[done..done + len]);
                done += len;
                r.is_ok()
            },
        )
    }

    /// Walks the page table for each page of `[va, va + len)` with a user access, calling the
    /// fault handler on a fault, and hands each translated chunk to `op` while the address-space
    /// lock is held (so the page cannot be freed under it).
    fn user_access(
        &self,
        va: Va,
        len: usize,
        access: Access,
        op: &mut dyn FnMut(u64, usize) -> bool,
    ) -> Result<()> {
        let space = rlock(&self.space);
        let pt = space.pt.as_ref().ok_or(MmError::Exited)?;
        let mut at = va.raw();
        let end = at.checked_add(len as u64).ok_or(MmError::NoVma { va })?;
        while at < end {
            let chunk = (PageSize::Size4K.bytes() - (at & 0xfff)).min(end - at);
            let mut tries = 0;
            let t = loop {
                match pt.walk(at, access) {
                    Ok(t) => break t,
                    Err(_) if tries < FAULT_RETRIES => {
                        self.fault_locked(&space, at, access)?;
                        tries += 1;
                    }
                    Err(_) => {
                        return Err(MmError::AccessDenied {
                            va: Va::new(at),
                            access,
                        });
                    }
                }
            };
            if !op(t.output, chunk as usize) {
                return Err(MmError::NoVma { va: Va::new(at) });
            }
            at += chunk;
        }
        Ok(())
    }

    /// Translates `va` for a user `access` without faulting (what the CPU's walk would give).
    ///
    /// # Errors
    /// The walk's fault; [`MmError::Exited`] is reported as a not-present fault at the top.
    pub fn translate(
        &self,
        va: Va,
        access: Access,
    ) -> std::result::Result<vsva_pgtable::Translation, vsva_pgtable::Fault> {
        let space = rlock(&self.space);
        match space.pt.as_ref() {
            Some(pt) => pt.walk(va.raw(), access),
            None => Err(vsva_pgtable::Fault {
                stage: vsva_pgtable::Stage::First,
                level: self.paging().levels(),
                reason: vsva_pgtable::FaultReason::NotPresent,
                input: va.raw(),
                entry: 0,
                rights: vsva_pgtable::Perm::empty(),
            }),
        }
    }
}

/// Copies `len` bytes of physical memory from `src` to `dst` (a page copy).
pub(crate) fn copy_frame(
    mem: &dyn vsva_mem::PhysMem,
    src: u64,
    dst: u64,
    len: u64,
) -> std::result::Result<(), vsva_mem::MemError> {
    mem.copy(src, dst, len)
}
