//! fork (copy-on-write) and exit.

use std::sync::Arc;

use vsva_pgtable::Perm;

use crate::error::{MmError, Result};
use crate::fault::copy_frame;
use crate::notifier::InvalidateReason;
use crate::process::{Process, wlock};
use crate::softpte::PteKind;
use crate::vma::Prot;

impl Process {
    /// Creates a child with a copy of this address space. Private writable pages are shared
    /// read-only by both until one writes (copy-on-write); the parent's write-protected ranges
    /// are announced to its listeners. Listeners are not inherited.
    ///
    /// # Errors
    /// [`MmError::OutOfMemory`], [`MmError::Exited`].
    pub fn fork(&self) -> Result<Arc<Process>> {
        let space = wlock(&self.space);
        let pt = space.pt.as_ref().ok_or(MmError::Exited)?;
        let child = self.mm.spawn()?;
        {
            let mut cs = wlock(&child.space);
            cs.vmas = space.vmas.clone();
            let cpt = cs.pt.as_ref().ok_or(MmError::Exited)?;
            let fmt = pt.paging();
            // Pinned pages are copied for the child now rather than shared copy-on-write
            // (as Linux does for DMA-pinned anonymous pages): a device may write them, and
            // those writes must stay visible to the parent. (va, size, frame, rights)
            let mut pinned = Vec::new();
            for vma in space.vmas.iter() {
                let mut protected = false;
                let copied = pt.for_each_leaf(vma.start, vma.len(), &mut |leaf| {
                    let kind = fmt.classify(leaf.entry);
                    let mut entry = leaf.entry;
                    if kind == PteKind::Empty {
                        return Ok(());
                    }
                    if kind == PteKind::Present && self.mm.pin_count(leaf.pa) > 0 {
                        pinned.push((leaf.va, leaf.size, leaf.pa, fmt.rights(entry)));
                        return Ok(());
                    }
                    if kind == PteKind::Present
                        && vma.prot.contains(Prot::WRITE)
                        && fmt.rights(entry).contains(Perm::WRITE)
                    {
                        loop {
                            // Dirty state kept (Arm64: a hardware-dirty page keeps it in the
                            // software bit, Linux `pte_wrprotect`).
                            let ro = fmt.modify(entry, fmt.rights(entry) - Perm::WRITE);
                            if pt.replace_entry(leaf.slot, entry, ro)? {
                                entry = ro;
                                break;
                            }
                            entry = pt.memory().load_u64(leaf.slot)?;
                        }
                        protected = true;
                    }
                    // Install first; take the reference only once the child really maps it.
                    cpt.set_leaf(leaf.va, leaf.size, entry)?;
                    match kind {
                        PteKind::Present | PteKind::ProtNone => {
                            self.mm.get_page(fmt.page_addr(entry, leaf.size))
                        }
                        PteKind::Swap(slot) => self.mm.swap().share(slot),
                        PteKind::Empty => {}
                    }
                    Ok(())
                });
                // Write-protected entries are announced even if the copy failed part-way.
                if protected {
                    self.notify(vma.start, vma.end, InvalidateReason::ForkWriteProtect);
                }
                copied?;
            }
            for (va, size, frame, rights) in pinned {
                let copy = self.mm.alloc_page(size)?;
                let installed = copy_frame(self.mm.memory(), frame, copy, size.bytes())
                    // our own frames are always in memory; a failure is treated like no memory
                    .map_err(|_| MmError::OutOfMemory)
                    .and_then(|()| {
                        cpt.set_leaf(va, size, fmt.dirty_leaf(copy, size, rights))
                            .map_err(MmError::from)
                    });
                if let Err(e) = installed {
                    self.mm.put_page(copy);
                    return Err(e);
                }
            }
        }
        Ok(child)
    }

    /// Tears the address space down: no new [`hold`](Process::hold) is granted and the live
    /// ones are waited for, then listeners hear `release`, then every mapped range is unmapped
    /// (and announced with [`InvalidateReason::Exit`]), then frames and tables are freed.
    ///
    /// Must not be called by a thread holding the address space ([`Process::hold`]).
    ///
    /// # Errors
    /// [`MmError::Exited`] if the process exited, or began exiting, already.
    pub fn exit(&self) -> Result<()> {
        // Marked before the listeners are snapshotted: a holder that registered a listener
        // is waited for, so `release` reaches it; a later one finds the process exiting.
        if !self.life.begin_exit() {
            return Err(MmError::Exited);
        }
        // Before taking the address-space lock, as Linux's `exit_mmap` calls
        // `mmu_notifier_release` first: a listener may drain faults that need the lock.
        self.notify_release();
        let mut space = wlock(&self.space);
        let pt = space.pt.take().ok_or(MmError::Exited)?;
        let vmas: Vec<_> = space.vmas.iter().copied().collect();
        let mut first_error = None;
        for vma in vmas {
            space.vmas.remove_range(vma.start, vma.end);
            if let Err(e) = self.zap(&pt, vma.start, vma.end, InvalidateReason::Exit) {
                // Keep tearing down; the tables are freed below either way.
                first_error.get_or_insert(e);
            }
        }
        let destroyed = pt.destroy();
        // Every listener heard `release` and the Exit invalidations: nothing caches
        // translations tagged with the ASID any more.
        self.mm.free_asid(self.asid());
        destroyed?;
        first_error.map_or(Ok(()), Err)
    }
}
