//! Domain IDs: the tag every IOTLB entry carries (VT-d DID, SMMU VMID/ASID). Two live
//! domains must never share one, or one device's DMA could hit the other's cached
//! translations — so IDs are handed out from a set of free ones and given back when their
//! domain goes (Linux's `ida_alloc_range` for the domain-ID space), never by a counter that
//! wraps onto IDs still in use.

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::error::{IommuError, Result};

/// The allocator of one IOMMU's domain IDs (1 ..= `u16::MAX`; 0 is reserved).
#[derive(Debug, Default)]
pub struct DomainIds {
    inner: Mutex<Ids>,
}

#[derive(Debug, Default)]
struct Ids {
    used: BTreeSet<u16>,
    /// Where the next search starts, so recently freed IDs are not reused at once.
    next: u16,
}

impl DomainIds {
    /// A free domain ID.
    ///
    /// # Errors
    /// [`IommuError::NoDomainId`] when all 65535 are in use; [`IommuError::NoMemory`] when
    /// [`vsva_mem::fail_nth`] fails it (`ida_alloc_range()` allocating a node).
    pub fn alloc(&self) -> Result<u16> {
        if vsva_mem::fail_nth::should_fail() {
            return Err(IommuError::NoMemory);
        }
        let mut ids = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let start = ids.next.max(1);
        let free = (start..=u16::MAX)
            .chain(1..start)
            .find(|d| !ids.used.contains(d))
            .ok_or(IommuError::NoDomainId)?;
        ids.used.insert(free);
        ids.next = free.wrapping_add(1);
        Ok(free)
    }

    /// How many IDs are in use.
    pub fn in_use(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .used
            .len()
    }

    /// Gives `did` back.
    pub fn release(&self, did: u16) {
        let mut ids = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !ids.used.remove(&did) {
            tracing::error!(did, "release of a domain ID that is not in use");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_until_released_and_run_out_cleanly() {
        let ids = DomainIds::default();
        let a = ids.alloc().unwrap();
        let b = ids.alloc().unwrap();
        assert_ne!(a, b);
        assert_ne!(a, 0);
        ids.release(a);
        // every other ID is handed out once before any is reused
        let mut all = vec![b];
        while let Ok(d) = ids.alloc() {
            all.push(d);
        }
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), u16::MAX as usize, "1..=65535, each once");
        assert_eq!(
            ids.alloc().unwrap_err().errno(),
            vsva_mem::Errno::ENOSPC,
            "when full"
        );
        ids.release(7);
        assert_eq!(ids.alloc().unwrap(), 7);
    }
}
