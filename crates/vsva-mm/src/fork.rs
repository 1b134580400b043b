//! fork (copy-on-write) and exit.

use std::sync::Arc;

use vsva_pgtable::{Format, Perm};

use crate::error::{MmError, Result};
use crate::notifier::InvalidateReason;
use crate::process::{Process, wlock};
use crate::softpte::{self, PteKind};
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
            let fmt = *pt.format();
            for vma in space.vmas.iter() {
                let mut protected = false;
                pt.for_each_leaf(vma.start, vma.len(), &mut |leaf| {
                    let entry = match softpte::classify(leaf.entry) {
                        PteKind::Present => {
                            let mut e = leaf.entry;
                            if vma.prot.contains(Prot::WRITE) && fmt.rights(e).contains(Perm::WRITE)
                            {
                                loop {
                                    let ro = fmt.set_rights(e, fmt.rights(e) - Perm::WRITE);
                                    if pt.replace_entry(leaf.slot, e, ro)? {
                                        e = ro;
                                        break;
                                    }
                                    e = pt.memory().load_u64(leaf.slot)?;
                                }
                                protected = true;
                            }
                            self.mm.get_page(leaf.pa);
                            e
                        }
                        PteKind::ProtNone => {
                            self.mm.get_page(fmt.page_addr(leaf.entry, leaf.size));
                            leaf.entry
                        }
                        PteKind::Swap(slot) => {
                            self.mm.swap().share(slot);
                            leaf.entry
                        }
                        PteKind::Empty => return Ok(()),
                    };
                    cpt.set_leaf(leaf.va, leaf.size, entry)?;
                    Ok(())
                })?;
                if protected {
                    self.notify(vma.start, vma.end, InvalidateReason::ForkWriteProtect);
                }
            }
        }
        Ok(child)
    }

    /// Tears the address space down: listeners hear `release`, then every mapped range is
    /// unmapped (and announced with [`InvalidateReason::Exit`]), then frames and tables are
    /// freed.
    ///
    /// # Errors
    /// [`MmError::Exited`] if the process already exited.
    pub fn exit(&self) -> Result<()> {
        let mut space = wlock(&self.space);
        let pt = space.pt.take().ok_or(MmError::Exited)?;
        self.notify_release();
        let vmas: Vec<_> = space.vmas.iter().copied().collect();
        for vma in vmas {
            space.vmas.remove_range(vma.start, vma.end);
            self.zap(&pt, vma.start, vma.end, InvalidateReason::Exit)?;
        }
        pt.destroy()?;
        Ok(())
    }
}
