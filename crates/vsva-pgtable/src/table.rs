//! Building and editing page tables of any [`Format`]: map, unmap, protect, look up.
//!
//! Tables are 4 KiB frames from a [`FrameAllocator`]; entries are written with atomic stores
//! and compare-and-swap, so walkers (CPU model, IOMMU, device) may run concurrently with an
//! editor and always see either the old or the new entry, and A/D bits they set are never lost.
//! A table has one editor at a time: `map`/`set_leaf` calls may race each other (new tables are
//! installed by compare-and-swap, so racing fills end with one table), but `unmap` unlinks the
//! tables it empties and must not race any other edit — its owner serialises them (the memory
//! manager's address-space lock, an IOMMU domain's mapping lock).
//!
//! `unmap` does not free anything itself: it returns the leaves it removed and the table
//! frames that became empty ([`Unmapped`]). The owner first invalidates whatever may cache
//! them (TLBs, IOTLBs, device ATCs — the MMU-notifier step), then frees the frames
//! ([`PageTable::free_tables`]). Ranges are `[start, start + len)`.

use std::sync::Arc;

use vsva_mem::{Access, FrameAllocator, FrameError, MemError, PageSize, PhysMem};

use crate::fault::Fault;
use crate::format::{
    ENTRIES, Format, MAX_LEVELS, MIN_LEVELS, TABLE_BYTES, span, table_entries, table_index,
};
use crate::perm::Perm;
use crate::walk::{Direct, Translation, WalkObserver, walk};

/// Errors of table editing.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// An address of the request is outside the format's input range.
    #[error("{addr:#x} is outside the input address range of the format")]
    AddressWidth {
        /// The offending address.
        addr: u64,
    },
    /// An output address the format cannot express (beyond its address field or the host
    /// address width).
    #[error("{addr:#x} cannot be the output of an entry of this format")]
    OutputWidth {
        /// The offending address.
        addr: u64,
    },
    /// An address is not aligned to the page size.
    #[error("{addr:#x} is not aligned to {size}")]
    Misaligned {
        /// The offending address.
        addr: u64,
        /// The alignment required.
        size: PageSize,
    },
    /// The configuration does not allow leaves of this size.
    #[error("{size} leaves are not supported by this configuration")]
    Unsupported {
        /// The size asked for.
        size: PageSize,
    },
    /// The format cannot express these rights in a present entry (VT-d second stage needs
    /// read or write).
    #[error("rights {perm:?} cannot be expressed by a present entry")]
    Rights {
        /// The rights asked for.
        perm: Perm,
    },
    /// The configuration is not one the format has (e.g. a level count outside 3..=5).
    #[error("unsupported configuration: {0}")]
    Config(&'static str),
    /// The range is empty or wraps around.
    #[error("bad range start {start:#x} length {len:#x}")]
    BadRange {
        /// Start.
        start: u64,
        /// Length.
        len: u64,
    },
    /// Something is already mapped (or a larger leaf covers the address).
    #[error("{addr:#x} is already mapped")]
    AlreadyMapped {
        /// The address.
        addr: u64,
    },
    /// The range would cut through a leaf.
    #[error("the range cuts the {size} leaf at {leaf:#x}")]
    SplitsLeaf {
        /// Address of the leaf.
        leaf: u64,
        /// Its size.
        size: PageSize,
    },
    /// No frame for a new table.
    #[error(transparent)]
    Frames(#[from] FrameError),
    /// A table lies outside memory (corrupt table).
    #[error(transparent)]
    Mem(#[from] MemError),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, MapError>;

/// A leaf slot: a mapped page, or a non-present entry that holds a value (a swap entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leaf {
    /// The input address of the start of the leaf.
    pub va: u64,
    /// The raw entry.
    pub entry: u64,
    /// The size it covers.
    pub size: PageSize,
    /// Is the entry present (a mapping) rather than a software value?
    pub present: bool,
    /// The page's output address (0 when not present).
    pub pa: u64,
    /// Where the entry lives.
    pub slot: u64,
}

/// What an unmap removed.
#[derive(Debug, Default)]
pub struct Unmapped {
    /// Removed leaves, in address order.
    pub leaves: Vec<Leaf>,
    /// Table frames that became empty and were unlinked; free them with
    /// [`PageTable::free_tables`] once caches have been invalidated.
    pub tables: Vec<u64>,
}

/// A page table of format `F` rooted in a frame of its own.
pub struct PageTable<F: Format> {
    format: F,
    frames: Arc<FrameAllocator>,
    root: u64,
}

impl<F: Format + std::fmt::Debug> std::fmt::Debug for PageTable<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageTable")
            .field("format", &self.format)
            .field("root", &format_args!("{:#x}", self.root))
            .finish()
    }
}

impl<F: Format> PageTable<F> {
    /// Creates an empty table (one zeroed root frame).
    ///
    /// # Errors
    /// [`MapError::Frames`] when no frame is free.
    ///
    /// A root of several concatenated tables (Arm stage 2) must be aligned to its size; it is
    /// taken from a 2 MiB frame (the allocator hands out 4 KiB, 2 MiB and 1 GiB blocks).
    pub fn new(format: F, frames: Arc<FrameAllocator>) -> Result<Self> {
        if !(MIN_LEVELS..=MAX_LEVELS).contains(&format.levels()) {
            return Err(MapError::Config("page tables have 2 to 5 levels"));
        }
        let root_bytes = match format.root_index_bits() {
            0 | 19.. => return Err(MapError::Config("a root table indexes 1 to 18 bits")),
            bits => 8u64 << bits,
        };
        let root = frames.alloc_zeroed(if root_bytes <= TABLE_BYTES {
            PageSize::Size4K
        } else {
            PageSize::Size2M
        })?;
        Ok(PageTable {
            format,
            frames,
            root,
        })
    }

    /// Physical address of the root table (CR3, FSPTPTR, SSPTPTR).
    pub fn root(&self) -> u64 {
        self.root
    }

    /// The format and its configuration.
    pub fn format(&self) -> &F {
        &self.format
    }

    /// The memory the tables live in.
    pub fn memory(&self) -> &dyn PhysMem {
        self.frames.memory().as_ref()
    }

    /// The allocator tables are taken from.
    pub fn frames(&self) -> &Arc<FrameAllocator> {
        &self.frames
    }

    fn mem(&self) -> &dyn PhysMem {
        self.frames.memory().as_ref()
    }

    /// Walks the table as hardware would (permission checks, A/D updates).
    ///
    /// # Errors
    /// The walk's [`Fault`].
    pub fn walk(&self, input: u64, access: Access) -> std::result::Result<Translation, Fault> {
        self.walk_observed(input, access, &mut ())
    }

    /// Like [`walk`](Self::walk), reporting every entry read to `observer`.
    ///
    /// # Errors
    /// The walk's [`Fault`].
    pub fn walk_observed(
        &self,
        input: u64,
        access: Access,
        observer: &mut (impl WalkObserver + ?Sized),
    ) -> std::result::Result<Translation, Fault> {
        walk(
            &self.format,
            self.mem(),
            self.root,
            input,
            access,
            &mut Direct,
            observer,
        )
    }

    fn check_input(&self, addr: u64) -> Result<()> {
        if self.format.input_ok(addr) {
            Ok(())
        } else {
            Err(MapError::AddressWidth { addr })
        }
    }

    /// Validates `[start, start + len)` and returns its last byte (inclusive, so that a range
    /// ending at the top of the address space is expressible).
    fn check_range(&self, start: u64, len: u64) -> Result<u64> {
        let last = len
            .checked_sub(1)
            .and_then(|l| start.checked_add(l))
            .ok_or(MapError::BadRange { start, len })?;
        let page = PageSize::Size4K;
        if start & page.offset_mask() != 0 {
            return Err(MapError::Misaligned {
                addr: start,
                size: page,
            });
        }
        if last & page.offset_mask() != page.offset_mask() {
            return Err(MapError::Misaligned {
                addr: last.wrapping_add(1),
                size: page,
            });
        }
        self.check_input(start)?;
        self.check_input(last)?;
        Ok(last)
    }

    /// The entry slot for `va` at `level`, creating the tables on the way.
    fn slot(&self, va: u64, level: u8) -> Result<u64> {
        let mem = self.mem();
        let mut table = self.root;
        for l in ((level + 1)..=self.format.levels()).rev() {
            let at = table + table_index(&self.format, va, l) * 8;
            let mut entry = mem.load_u64(at)?;
            if !self.format.is_present(entry) {
                if entry != 0 {
                    return Err(MapError::AlreadyMapped { addr: va });
                }
                let new = self.frames.alloc_zeroed(PageSize::Size4K)?;
                let link = self.format.encode_table(new);
                match mem.compare_exchange_u64(at, 0, link)? {
                    Ok(_) => entry = link,
                    Err(actual) => {
                        self.frames.free(new)?;
                        entry = actual;
                        if !self.format.is_present(entry) {
                            return Err(MapError::AlreadyMapped { addr: va });
                        }
                    }
                }
            }
            if self.format.is_leaf(entry, l) {
                return Err(MapError::AlreadyMapped { addr: va });
            }
            table = self.format.table_addr(entry);
        }
        Ok(table + table_index(&self.format, va, level) * 8)
    }

    /// Maps the page of `size` at `va` to `pa` with `perm`.
    ///
    /// # Errors
    /// [`MapError::Unsupported`], [`MapError::Misaligned`], [`MapError::AddressWidth`],
    /// [`MapError::AlreadyMapped`] if anything is mapped there, [`MapError::Frames`].
    pub fn map(&self, va: u64, pa: u64, size: PageSize, perm: Perm) -> Result<()> {
        if !self.format.supports(size) || size.leaf_level() > self.format.levels() {
            return Err(MapError::Unsupported { size });
        }
        if !self.format.can_encode(perm) {
            return Err(MapError::Rights { perm });
        }
        for a in [va, pa] {
            if a & size.offset_mask() != 0 {
                return Err(MapError::Misaligned { addr: a, size });
            }
        }
        self.check_input(va)?;
        self.check_input(va + (size.bytes() - 1))?;
        // An output address the entry cannot hold would be silently truncated, or leave
        // reserved bits set so every walk faults: refuse it here instead.
        let leaf = self.format.encode_leaf(pa, size, perm);
        if self.format.page_addr(leaf, size) != pa
            || self.format.has_reserved_bits(leaf, size.leaf_level())
        {
            return Err(MapError::OutputWidth { addr: pa });
        }
        let slot = self.slot(va, size.leaf_level())?;
        match self.mem().compare_exchange_u64(slot, 0, leaf)? {
            Ok(_) => Ok(()),
            Err(_) => Err(MapError::AlreadyMapped { addr: va }),
        }
    }

    /// Stores a raw value in the leaf slot of `size` for `va` (creating tables), replacing
    /// whatever was there, and returns the old value. For software entries (swap entries, a
    /// page kept while inaccessible) and for copying entries between tables.
    ///
    /// # Errors
    /// [`MapError::AlreadyMapped`] if a larger leaf covers `va`; [`MapError::Misaligned`];
    /// [`MapError::Frames`].
    pub fn set_leaf(&self, va: u64, size: PageSize, value: u64) -> Result<u64> {
        if va & size.offset_mask() != 0 {
            return Err(MapError::Misaligned { addr: va, size });
        }
        self.check_input(va)?;
        if size.leaf_level() > self.format.levels() {
            return Err(MapError::Unsupported { size });
        }
        let slot = self.slot(va, size.leaf_level())?;
        let mem = self.mem();
        loop {
            let old = mem.load_u64(slot)?;
            if mem.compare_exchange_u64(slot, old, value)?.is_ok() {
                return Ok(old);
            }
        }
    }

    /// The leaf (mapped page or non-zero non-present entry) covering `va`, without checking
    /// rights or setting A/D.
    pub fn lookup(&self, va: u64) -> Option<Leaf> {
        if !self.format.input_ok(va) {
            return None;
        }
        let mem = self.mem();
        let mut table = self.root;
        for level in (1..=self.format.levels()).rev() {
            let at = table + table_index(&self.format, va, level) * 8;
            let entry = mem.load_u64(at).ok()?;
            if entry == 0 {
                return None;
            }
            let size = PageSize::from_leaf_level(level);
            if !self.format.is_present(entry) {
                return size.map(|size| Leaf {
                    va: va & !size.offset_mask(),
                    entry,
                    size,
                    present: false,
                    pa: 0,
                    slot: at,
                });
            }
            if self.format.is_leaf(entry, level) {
                let size = size?;
                return Some(Leaf {
                    va: va & !size.offset_mask(),
                    entry,
                    size,
                    present: true,
                    pa: self.format.page_addr(entry, size),
                    slot: at,
                });
            }
            table = self.format.table_addr(entry);
        }
        None
    }

    /// Refuses ranges whose ends cut a leaf.
    fn check_edges(&self, start: u64, last: u64) -> Result<()> {
        for a in [start, last] {
            if let Some(l) = self.lookup(a) {
                if l.va < start || l.va + (l.size.bytes() - 1) > last {
                    return Err(MapError::SplitsLeaf {
                        leaf: l.va,
                        size: l.size,
                    });
                }
            }
        }
        Ok(())
    }

    /// Removes every leaf in `[va, va + len)` (mapped pages and software entries) and unlinks
    /// tables left empty. Nothing is freed: see [`Unmapped`].
    ///
    /// # Errors
    /// [`MapError::SplitsLeaf`] if the range cuts a leaf (nothing is changed then),
    /// [`MapError::Misaligned`], [`MapError::BadRange`], [`MapError::AddressWidth`].
    pub fn unmap(&self, va: u64, len: u64) -> Result<Unmapped> {
        let last = self.check_range(va, len)?;
        self.check_edges(va, last)?;
        let mem = self.mem();
        let mut leaves = Vec::new();
        let mut tables = Vec::new();
        let mut clear = |leaf: &Leaf| {
            // Take the entry by compare-and-swap so that Accessed/Dirty bits a walker sets
            // meanwhile are reported, not lost.
            let mut entry = leaf.entry;
            loop {
                match mem.compare_exchange_u64(leaf.slot, entry, 0)? {
                    Ok(_) => break,
                    Err(now) => entry = now,
                }
            }
            leaves.push(Leaf { entry, ..*leaf });
            Ok(())
        };
        let top = self.format.levels();
        self.range_walk(self.root, top, 0, va, last, Some(&mut tables), &mut clear)?;
        Ok(Unmapped { leaves, tables })
    }

    /// Frees table frames returned by [`unmap`](Self::unmap).
    ///
    /// # Errors
    /// [`MapError::Frames`] if a frame was not allocated (freed twice).
    pub fn free_tables(&self, tables: &[u64]) -> Result<()> {
        for &t in tables {
            self.frames.free(t)?;
        }
        Ok(())
    }

    /// Calls `f` for every leaf (present or software) in `[va, va + len)`.
    ///
    /// # Errors
    /// As [`unmap`](Self::unmap) for the range; errors of `f` are passed through.
    pub fn for_each_leaf(
        &self,
        va: u64,
        len: u64,
        f: &mut dyn FnMut(&Leaf) -> Result<()>,
    ) -> Result<()> {
        let last = self.check_range(va, len)?;
        let top = self.format.levels();
        self.range_walk(self.root, top, 0, va, last, None, f)?;
        Ok(())
    }

    /// Visits the leaves of `[start, last]` below the table at `table` (level `level`, covering
    /// input addresses from `base`), depth first in address order. With `prune`, child tables
    /// that are empty afterwards are unlinked and collected there, and the return value says
    /// whether this table is empty.
    #[allow(clippy::too_many_arguments)]
    fn range_walk(
        &self,
        table: u64,
        level: u8,
        base: u64,
        start: u64,
        last: u64,
        mut prune: Option<&mut Vec<u64>>,
        f: &mut dyn FnMut(&Leaf) -> Result<()>,
    ) -> Result<bool> {
        let mem = self.mem();
        // Entries are in address order (the top level's upper half is the canonical high
        // half), so the walk starts at `start`'s index and stops past `last`, instead of
        // visiting all 512 entries of every table on the way.
        let shift = span(level).trailing_zeros();
        let entries = table_entries(&self.format, level);
        let first = if start > self.format.canonical(base) {
            (start >> shift) % entries
        } else {
            0
        };
        for i in first..entries {
            let lo = self.format.canonical(base + i * span(level));
            let hi = lo + (span(level) - 1);
            if lo > last {
                break;
            }
            if hi < start {
                continue;
            }
            let at = table + i * 8;
            let entry = mem.load_u64(at)?;
            if entry == 0 {
                continue;
            }
            let present = self.format.is_present(entry);
            if !present || self.format.is_leaf(entry, level) {
                let size = PageSize::from_leaf_level(level).unwrap_or(PageSize::Size1G);
                let pa = if present {
                    self.format.page_addr(entry, size)
                } else {
                    0
                };
                f(&Leaf {
                    va: lo,
                    entry,
                    size,
                    present,
                    pa,
                    slot: at,
                })?;
                continue;
            }
            let child = self.format.table_addr(entry);
            let emptied =
                self.range_walk(child, level - 1, lo, start, last, prune.as_deref_mut(), f)?;
            if let (true, Some(freed)) = (emptied, prune.as_deref_mut()) {
                mem.store_u64(at, 0)?;
                freed.push(child);
            }
        }
        if prune.is_none() || table == self.root {
            return Ok(false);
        }
        // One bulk read instead of 512 loads: only this editor turns a zero entry non-zero,
        // so a plain copy is enough to tell emptiness (hardware A/D updates only touch
        // entries that are already non-zero).
        let mut copy = [0u8; TABLE_BYTES as usize];
        mem.read(table, &mut copy)?;
        Ok(copy.iter().fold(0u8, |acc, &b| acc | b) == 0) // no early exit: vectorizes
    }

    /// Sets the rights of every mapped leaf in `[va, va + len)` to `perm`, keeping A/D bits
    /// that hardware sets concurrently. Returns the number of leaves changed.
    ///
    /// # Errors
    /// As [`unmap`](Self::unmap).
    pub fn protect(&self, va: u64, len: u64, perm: Perm) -> Result<usize> {
        if !self.format.can_encode(perm) {
            return Err(MapError::Rights { perm });
        }
        let last = self.check_range(va, len)?;
        self.check_edges(va, last)?;
        let mem = self.mem();
        let mut changed = 0;
        self.range_walk(
            self.root,
            self.format.levels(),
            0,
            va,
            last,
            None,
            &mut |leaf: &Leaf| {
                if !leaf.present {
                    return Ok(());
                }
                let mut old = leaf.entry;
                loop {
                    let new = self.format.set_rights(old, perm);
                    if new == old {
                        return Ok(());
                    }
                    match mem.compare_exchange_u64(leaf.slot, old, new)? {
                        Ok(_) => {
                            changed += 1;
                            return Ok(());
                        }
                        Err(actual) => old = actual,
                    }
                }
            },
        )?;
        Ok(changed)
    }

    /// Replaces the leaf entry at `slot` if it still holds `old` (for A/D-aware edits such as
    /// a copy-on-write break). Returns whether it did.
    ///
    /// # Errors
    /// [`MapError::Mem`] if `slot` is outside memory.
    pub fn replace_entry(&self, slot: u64, old: u64, new: u64) -> Result<bool> {
        Ok(self.mem().compare_exchange_u64(slot, old, new)?.is_ok())
    }

    /// Reports every present leaf of `[va, va + len)` that is dirty ([`Format::is_dirty`]: D
    /// set; Arm: writable-dirty), in address order, and with `clear` makes it clean
    /// ([`Format::cleaned`]: D cleared; Arm: AP\[2\] set, or S2AP\[1\] cleared, on a DBM leaf)
    /// by compare-and-swap, so a concurrent hardware update is not lost. A configuration
    /// without hardware dirty tracking reports nothing. Returns the number of dirty leaves.
    ///
    /// The caller flushes the IOTLB afterwards where hardware caches that an entry is dirty
    /// (VT-d does: a cached translation does not set D again).
    ///
    /// # Errors
    /// As [`unmap`](Self::unmap) for the range.
    pub fn read_and_clear_dirty(
        &self,
        va: u64,
        len: u64,
        clear: bool,
        f: &mut dyn FnMut(u64, PageSize),
    ) -> Result<usize> {
        let format = &self.format;
        if !format.tracks_dirty() {
            return Ok(0);
        }

        let mem = self.mem();
        let mut n = 0;
        self.for_each_leaf(va, len, &mut |leaf| {
            if !leaf.present || !format.is_dirty(leaf.entry) {
                return Ok(());
            }
            f(leaf.va, leaf.size);
            n += 1;
            if clear {
                let mut old = leaf.entry;
                while format.is_dirty(old)
                    && !self.replace_entry(leaf.slot, old, format.cleaned(old))?
                {
                    old = mem.load_u64(leaf.slot)?;
                }
            }
            Ok(())
        })?;
        Ok(n)
    }

    /// Number of table frames (including the root) reachable from the root.
    pub fn table_frames(&self) -> usize {
        self.count_tables(self.root, self.format.levels())
    }

    fn count_tables(&self, table: u64, level: u8) -> usize {
        let mut n = 1;
        if level == 1 {
            return n;
        }
        for i in 0..table_entries(&self.format, level) {
            let Ok(e) = self.mem().load_u64(table + i * 8) else {
                continue;
            };
            if self.format.is_present(e) && !self.format.is_leaf(e, level) {
                n += self.count_tables(self.format.table_addr(e), level - 1);
            }
        }
        n
    }

    /// Frees every table frame (not the pages leaves point to) and consumes the table.
    ///
    /// # Errors
    /// [`MapError::Frames`] if the allocator does not know a table frame.
    pub fn destroy(self) -> Result<()> {
        self.free_subtree(self.root, self.format.levels())
    }

    fn free_subtree(&self, table: u64, level: u8) -> Result<()> {
        if level > 1 {
            for i in 0..table_entries(&self.format, level) {
                let e = self.mem().load_u64(table + i * 8)?;
                if self.format.is_present(e) && !self.format.is_leaf(e, level) {
                    self.free_subtree(self.format.table_addr(e), level - 1)?;
                }
            }
        }
        self.frames.free(table)?;
        Ok(())
    }
}

const _: () = assert!(ENTRIES * 8 == TABLE_BYTES);

#[cfg(test)]
mod tests;
