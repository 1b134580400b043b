//! Virtual memory areas: the ranges a process has mapped and how (Linux `vm_area_struct`).
//!
//! Ranges are `[start, end)`, page aligned. A VMA of huge pages (2 MiB or 1 GiB, like a
//! hugetlbfs mapping) is aligned to its page size and can only be split on that boundary.

use std::collections::BTreeMap;

use bitflags::bitflags;
use vsva_mem::{Access, PageSize};
use vsva_pgtable::Perm;

bitflags! {
    /// Memory protection (`PROT_*`). The empty set is `PROT_NONE`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Prot: u8 {
        /// PROT_READ.
        const READ = 1;
        /// PROT_WRITE.
        const WRITE = 2;
        /// PROT_EXEC.
        const EXEC = 4;
    }
}

impl Prot {
    /// PROT_READ | PROT_WRITE.
    pub const RW: Prot = Prot::READ.union(Prot::WRITE);

    /// Does this protection allow `access` (user, as a fault handler checks a VMA)?
    pub fn allows(self, access: Access) -> bool {
        if access.is_write() {
            return self.contains(Prot::WRITE);
        }
        if access.is_exec() {
            return self.contains(Prot::EXEC);
        }
        // Neither x86 nor Arm64 stage 1 can map a page writable or executable for user code
        // without making it readable (Arm: AP[1] grants EL0 reads; execute-only needs
        // FEAT_EPAN, which is not modelled).
        !self.is_empty()
    }

    /// Page-table rights for a user page with this protection.
    pub fn perm(self) -> Perm {
        let mut p = Perm::USER | Perm::READ;
        if self.contains(Prot::WRITE) {
            p |= Perm::WRITE;
        }
        if self.contains(Prot::EXEC) {
            p |= Perm::EXEC;
        }
        p
    }
}

/// One mapped range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vma {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Protection.
    pub prot: Prot,
    /// Page size of the mapping (4 KiB for ordinary anonymous memory).
    pub page: PageSize,
}

impl Vma {
    /// Does the VMA contain `va`?
    pub fn contains(&self, va: u64) -> bool {
        self.start <= va && va < self.end
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Is the VMA empty? (Never, for a VMA in a tree.)
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// The VMAs of an address space, keyed by start.
#[derive(Debug, Default, Clone)]
pub struct VmaTree {
    map: BTreeMap<u64, Vma>,
}

impl VmaTree {
    /// The VMA containing `va`.
    pub fn find(&self, va: u64) -> Option<&Vma> {
        self.map
            .range(..=va)
            .next_back()
            .map(|(_, v)| v)
            .filter(|v| v.contains(va))
    }

    /// VMAs overlapping `[start, end)`, in order.
    pub fn overlapping(&self, start: u64, end: u64) -> impl Iterator<Item = &Vma> {
        let first = self.find(start).map(|v| v.start).unwrap_or(start);
        self.map.range(first..end).map(|(_, v)| v)
    }

    /// All VMAs in order.
    pub fn iter(&self) -> impl Iterator<Item = &Vma> {
        self.map.values()
    }

    /// Is every byte of `[start, end)` inside some VMA? Returns the first hole otherwise.
    pub fn first_hole(&self, start: u64, end: u64) -> Option<u64> {
        let mut at = start;
        for v in self.overlapping(start, end) {
            if v.start > at {
                return Some(at);
            }
            at = v.end;
        }
        (at < end).then_some(at)
    }

    /// Can `[start, end)` be cut out without splitting a huge page?
    pub fn huge_aligned(&self, start: u64, end: u64) -> bool {
        self.overlapping(start, end).all(|v| {
            let m = v.page.offset_mask();
            (start <= v.start || start & m == 0) && (end >= v.end || end & m == 0)
        })
    }

    /// Splits the VMA containing `at` so that a VMA starts at `at`.
    fn split_at(&mut self, at: u64) {
        if let Some(v) = self.find(at).copied() {
            if v.start < at {
                self.map.insert(v.start, Vma { end: at, ..v });
                self.map.insert(at, Vma { start: at, ..v });
            }
        }
    }

    /// Removes `[start, end)` from the tree and returns the pieces removed.
    pub fn remove_range(&mut self, start: u64, end: u64) -> Vec<Vma> {
        self.split_at(start);
        self.split_at(end);
        let keys: Vec<u64> = self.map.range(start..end).map(|(&k, _)| k).collect();
        keys.into_iter()
            .filter_map(|k| self.map.remove(&k))
            .collect()
    }

    /// Sets the protection of `[start, end)` (which must be covered), splitting as needed;
    /// returns the pieces as they were before.
    pub fn protect_range(&mut self, start: u64, end: u64, prot: Prot) -> Vec<Vma> {
        let old = self.remove_range(start, end);
        for v in &old {
            self.map.insert(v.start, Vma { prot, ..*v });
        }
        old
    }

    /// Inserts a VMA over a range that must be free.
    pub fn insert(&mut self, vma: Vma) {
        debug_assert!(self.overlapping(vma.start, vma.end).next().is_none());
        self.map.insert(vma.start, vma);
    }

    /// The highest free range of `len` bytes aligned to `align`, between `floor` and `ceiling`.
    pub fn find_gap(&self, len: u64, align: u64, floor: u64, ceiling: u64) -> Option<u64> {
        let mut top = ceiling;
        for v in self.map.values().rev().filter(|v| v.start < ceiling) {
            if let Some(at) = fit_below(top, v.end.max(floor), len, align) {
                return Some(at);
            }
            top = top.min(v.start);
        }
        fit_below(top, floor, len, align)
    }
}

/// The highest `align`-aligned start `s` with `bottom <= s` and `s + len <= top`.
fn fit_below(top: u64, bottom: u64, len: u64, align: u64) -> Option<u64> {
    let s = top.checked_sub(len)? & !(align - 1);
    (s >= bottom && top > bottom).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vma(start: u64, end: u64) -> Vma {
        Vma {
            start,
            end,
            prot: Prot::RW,
            page: PageSize::Size4K,
        }
    }

    #[test]
    fn split_and_remove() {
        let mut t = VmaTree::default();
        t.insert(vma(0x1000, 0x9000));
        let gone = t.remove_range(0x3000, 0x5000);
        assert_eq!(gone, vec![vma(0x3000, 0x5000)]);
        assert_eq!(
            t.iter().copied().collect::<Vec<_>>(),
            vec![vma(0x1000, 0x3000), vma(0x5000, 0x9000)]
        );
        assert_eq!(t.first_hole(0x1000, 0x9000), Some(0x3000));
        assert_eq!(t.first_hole(0x5000, 0x9000), None);
        assert!(t.find(0x3000).is_none());
        assert_eq!(t.find(0x8fff).unwrap().start, 0x5000);
    }

    #[test]
    fn protect_splits() {
        let mut t = VmaTree::default();
        t.insert(vma(0x1000, 0x4000));
        t.protect_range(0x2000, 0x3000, Prot::READ);
        let prots: Vec<_> = t.iter().map(|v| (v.start, v.prot)).collect();
        assert_eq!(
            prots,
            vec![(0x1000, Prot::RW), (0x2000, Prot::READ), (0x3000, Prot::RW)]
        );
    }

    #[test]
    fn gaps_are_found_top_down() {
        let mut t = VmaTree::default();
        t.insert(vma(0x8000, 0x10000));
        assert_eq!(t.find_gap(0x1000, 0x1000, 0x1000, 0x10000), Some(0x7000));
        assert_eq!(t.find_gap(0x1000, 0x1000, 0x1000, 0x11000), Some(0x10000));
        assert_eq!(t.find_gap(0x8000, 0x1000, 0x1000, 0x10000), None);
        assert_eq!(t.find_gap(0x4000, 0x4000, 0x0, 0x10000), Some(0x4000));
    }

    #[test]
    fn huge_alignment() {
        let mut t = VmaTree::default();
        t.insert(Vma {
            page: PageSize::Size2M,
            ..vma(0x20_0000, 0x60_0000)
        });
        assert!(t.huge_aligned(0x20_0000, 0x40_0000));
        assert!(!t.huge_aligned(0x20_0000, 0x30_0000));
        assert!(t.huge_aligned(0, 0x100_0000));
    }

    #[test]
    fn prot_rules() {
        assert!(Prot::READ.allows(Access::READ));
        assert!(!Prot::READ.allows(Access::WRITE));
        assert!(!Prot::empty().allows(Access::READ));
        assert!(
            Prot::WRITE.allows(Access::READ),
            "x86: writable implies readable"
        );
        assert!(!Prot::RW.allows(Access::READ | Access::EXEC));
        assert_eq!(Prot::READ.perm(), Perm::USER | Perm::READ);
    }
}
