//! The swap device behind `madvise(MADV_PAGEOUT)`: page contents kept in host memory, named
//! by a swap entry in the PTE ([`crate::softpte`]). Slots are reference counted, since fork
//! copies swap entries.

use std::collections::HashMap;

#[derive(Debug)]
struct Slot {
    data: Box<[u8]>,
    refs: u32,
}

/// Swapped-out page contents.
#[derive(Debug, Default)]
pub struct SwapStore {
    slots: HashMap<u64, Slot>,
    next: u64,
}

impl SwapStore {
    /// Stores one page and returns its slot (reference count 1).
    pub fn put(&mut self, data: Box<[u8]>) -> u64 {
        self.next += 1;
        let slot = self.next;
        self.slots.insert(slot, Slot { data, refs: 1 });
        slot
    }

    /// Replaces the contents of `slot`.
    pub fn set(&mut self, slot: u64, data: Box<[u8]>) {
        if let Some(s) = self.slots.get_mut(&slot) {
            s.data = data;
        }
    }

    /// The contents of `slot`.
    pub fn get(&self, slot: u64) -> Option<&[u8]> {
        self.slots.get(&slot).map(|s| &s.data[..])
    }

    /// One more PTE names `slot` (fork).
    pub fn share(&mut self, slot: u64) {
        if let Some(s) = self.slots.get_mut(&slot) {
            s.refs += 1;
        }
    }

    /// One PTE fewer names `slot`; the slot goes when none does.
    pub fn release(&mut self, slot: u64) {
        if let Some(s) = self.slots.get_mut(&slot) {
            s.refs -= 1;
            if s.refs == 0 {
                self.slots.remove(&slot);
            }
        }
    }

    /// Slots in use.
    pub fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reference_counted() {
        let mut s = SwapStore::default();
        let a = s.put(vec![7; 4096].into());
        s.share(a);
        s.release(a);
        assert_eq!(s.get(a).unwrap()[0], 7);
        s.release(a);
        assert!(s.get(a).is_none());
        assert_eq!(s.len(), 0);
    }
}
