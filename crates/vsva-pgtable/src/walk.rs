//! The one walker every format uses.
//!
//! The walk follows the SDM's and VT-d's order: for each level from the root down, read the
//! entry, fault if it is not present or sets a reserved bit, intersect its rights, and stop at
//! a leaf. Then the combined rights are checked against the request, and only if the whole walk
//! succeeded are Accessed/Dirty flags set, by compare-and-swap, in every entry used (A) and in
//! the leaf on writes (D). A faulting walk leaves every entry untouched (as KVM's
//! `walk_addr_generic` models Intel CPUs).
//!
//! Arm's walk (DDI 0487 D8) has the same shape: an entry's own fault is a Translation fault
//! (invalid, or a block where its level has none) or an Address size fault; table descriptors
//! restrict the rights below them (APTable, UXNTable, PXNTable); at the leaf the Access flag
//! is checked before the permissions; hardware sets AF in the leaf only, and records a write
//! to a DBM page by clearing AP\[2\] (stage 2: setting S2AP\[1\]). The [`Format`] methods
//! that say so default to x86's behaviour and cost x86 and VT-d walks nothing.
//!
//! # A/D updates racing with writers
//!
//! Hardware sets A/D with locked read-modify-write operations (SDM Vol. 3 §4.8, §8.1.2.1
//! "Automatic Locking"; VT-d 4.1 §3.6.2, §3.7.2, and §3.10 on their atomic update), so a
//! walk racing with software that rewrites an entry ends with the old entry, the new one or
//! the new one's fault, never with a fault of its own. Memory here has compare-and-swap, not
//! locked cycles, so when the swap on an entry fails the walker looks at what is there now:
//!
//! * only A/D bits differ (another walker set them, software cleared them): the entry still
//!   translates the same, and the swap is retried on that value, nothing read again;
//! * the entry changed: the walk takes it as it now is — checks it, and reads on from it to a
//!   leaf — so the translation is the new entry's, or the new entry's fault (not present, no
//!   longer grants the access). The entries above it are kept, as a CPU keeps them in its
//!   paging-structure caches (SDM §4.10.3); their A flags may already be set.
//!
//! Every retry is thus caused by a write that landed between two atomic operations of the
//! walker on that entry, and uses what the write left; a short random wait after each failure
//! keeps a writer with a steady pace from falling into step with the retries. Two other
//! designs were refused. Restarting from the root (as this walker did, up to 64 times) reads
//! the entry again and reopens the whole window before its swap — a stage-2 walk for a nested
//! walk — so an ordinary writer whose pace matches that window fails every attempt: a CPU
//! thread re-pointing a PTE in a loop made 0.01 to 0.4 % of nested walks fault. Finishing
//! without the flags after some failures would hand out a translation that no A (or D) in
//! memory accounts for, which hardware never does (it sets A before caching a translation,
//! SDM §4.10.2.2), and an OS taking the entry atomically would miss the access.
//!
//! The retries are still bounded, because the tables are guest-controlled: after
//! [`MAX_AD_RETRIES`] failures the walk faults with [`FaultReason::Contention`]. Only a writer
//! that rewrites the entry without pause gets there.
//!
//! Otherwise a walk reads at most one entry per level, so a malformed table (a loop, a pointer
//! to itself) cannot make it run forever; a table or entry outside memory gives
//! [`FaultReason::OutsideMemory`].
//!
//! Table addresses go through a [`TableMap`]: the identity for a one-stage walk, the stage-2
//! translation for a nested walk (see [`crate::nested`]), so the nested walk reuses this code.

use vsva_mem::{Access, PageSize, PhysMem};

use crate::fault::{Fault, FaultReason};
#[cfg(test)]
use crate::format::index;
use crate::format::{Format, MAX_LEVELS, MIN_LEVELS, table_index};
use crate::perm::Perm;

/// How many failed compare-and-swaps one walk tolerates while setting Accessed/Dirty flags
/// before it faults with [`FaultReason::Contention`].
///
/// A failure needs another agent's write between two atomic operations of the walker on the
/// same entry. The longest runs measured in a release build: 13 failures under a thread
/// re-pointing the entry between two frames in a loop, 32 under one storing a new value back
/// to back. Only a writer that rewrites the entry without pause, faster than the walker can
/// load and swap, gets near this (an unoptimised walker loses to one for thousands of tries).
pub const MAX_AD_RETRIES: u32 = 1024;

/// A successful translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    /// The output address (page address plus the offset of the input).
    pub output: u64,
    /// The size of the page that maps the input.
    pub size: PageSize,
    /// The rights of the translation (intersection over all levels; for nested walks, over
    /// both stages).
    pub rights: Perm,
    /// Paging-entry reads this walk made (both stages for a nested walk), counting the entries
    /// read again below one that changed while A/D flags were being set.
    pub refs: u32,
}

impl Translation {
    /// The output address of the start of the page.
    pub fn page_base(&self) -> u64 {
        self.output & !self.size.offset_mask()
    }
}

/// Sees every entry a walk reads; for tracing and explaining walks. `()` sees nothing and
/// costs nothing. An entry found changed while A/D flags were being set is reported again, as
/// are the entries the walk then reads below it.
pub trait WalkObserver {
    /// The walk read `entry` at `index` of the table at `table` (level `level`).
    fn entry(&mut self, level: u8, table: u64, index: u64, entry: u64);
}

impl WalkObserver for () {
    #[inline(always)]
    fn entry(&mut self, _: u8, _: u64, _: u64, _: u64) {}
}

/// Records the entries of a walk.
#[derive(Debug, Default, Clone)]
pub struct WalkTrace {
    /// `(level, table, index, entry)` in walk order.
    pub steps: Vec<(u8, u64, u64, u64)>,
}

impl WalkObserver for WalkTrace {
    fn entry(&mut self, level: u8, table: u64, index: u64, entry: u64) {
        self.steps.push((level, table, index, entry));
    }
}

/// Keeps the last entry a walk read: after a successful walk, its leaf (as read, before the
/// walk set flags in it). This is where a TLB finds the attributes a [`Translation`] does not
/// carry — Arm's nG (tag the entry with the ASID), AttrIndx, MemAttr. Allocation-free.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LastEntry {
    /// The level of the entry.
    pub level: u8,
    /// The entry.
    pub entry: u64,
}

impl WalkObserver for LastEntry {
    #[inline(always)]
    fn entry(&mut self, level: u8, _table: u64, _index: u64, entry: u64) {
        *self = LastEntry { level, entry };
    }
}

/// Maps the address of a paging structure, as found in a root pointer or an entry, to the
/// address where it can be read in the walked memory.
pub trait TableMap {
    /// True when [`map_table`](Self::map_table) is the identity, so the walker can update
    /// entries where it read them without asking again.
    const DIRECT: bool;

    /// Where the paging structure containing `addr` (any byte of it) lives, and how many memory
    /// references finding that out took. `for_write` is set when the walker wants to update an
    /// entry there (A/D), which a second stage must permit.
    ///
    /// # Errors
    /// The fault of the translation (for nested walks, a second-stage fault).
    fn map_table(&mut self, addr: u64, for_write: bool) -> Result<(u64, u32), Fault>;
}

/// Paging structures are where their addresses say: one-stage walks.
#[derive(Debug, Default, Clone, Copy)]
pub struct Direct;

impl TableMap for Direct {
    const DIRECT: bool = true;

    #[inline(always)]
    fn map_table(&mut self, addr: u64, _for_write: bool) -> Result<(u64, u32), Fault> {
        Ok((addr, 0))
    }
}

/// Translates `input` for `access` through the tables of `format` rooted at `root`.
///
/// # Errors
/// A [`Fault`] naming the level and the reason.
#[inline]
pub fn walk<F, M, T, O>(
    format: &F,
    mem: &M,
    root: u64,
    input: u64,
    access: Access,
    tables: &mut T,
    observer: &mut O,
) -> Result<Translation, Fault>
where
    F: Format + ?Sized,
    M: PhysMem + ?Sized,
    T: TableMap,
    O: WalkObserver + ?Sized,
{
    let top = format.levels();
    let mut w = Walker {
        format,
        mem,
        tables,
        observer,
        input,
        access,
        top,
        accessed: format.accessed_bit().unwrap_or(0),
        dirty: if access.is_write() {
            format.dirty_bit().unwrap_or(0)
        } else {
            0
        },
        refs: 0,
        seen: [0; MAX_LEVELS as usize],
    };
    // A level count the format cannot have (only reachable through a bad configuration) is
    // refused like an input beyond the width, never indexed with.
    if !(MIN_LEVELS..=MAX_LEVELS).contains(&top) || !format.input_ok(input) {
        return Err(w.fault(top, FaultReason::AddressWidth, 0));
    }
    let path = w.descend(top, root, Perm::ANY)?;
    w.check_leaf(&path)?;
    if !path.needs_accessed && path.leaf & w.dirty == w.dirty && path.leaf & w.dirty_clear() == 0 {
        return Ok(w.translation(&path));
    }
    w.set_accessed_dirty(root, path)
}

/// The state of one walk.
struct Walker<'a, F: ?Sized, M: ?Sized, T, O: ?Sized> {
    format: &'a F,
    mem: &'a M,
    tables: &'a mut T,
    observer: &'a mut O,
    input: u64,
    access: Access,
    top: u8,
    /// The Accessed bits (A, and EA where enabled; Arm's AF) the format sets in the leaf used
    /// (and in every table entry used, unless [`Format::ACCESSED_IN_TABLES`] is false); 0 when
    /// A/D updates are off.
    accessed: u64,
    /// The Dirty bit to set in the leaf: 0 for reads and when A/D updates are off.
    dirty: u64,
    /// Paging-entry reads so far.
    refs: u32,
    /// The entries in use, root first (`seen[i]` is the entry at level `top - i`), so that
    /// A/D updates are made by compare-and-swap against exactly what the walk saw.
    seen: [u64; MAX_LEVELS as usize],
}

/// Where a descent ended: at a leaf.
#[derive(Debug, Clone, Copy)]
struct Path {
    /// Entries from the root to the leaf (`seen[..len]`).
    len: usize,
    /// The leaf entry.
    leaf: u64,
    /// The size of the page it maps.
    size: PageSize,
    /// The rights intersected over the path.
    rights: Perm,
    /// Some entry on the path lacks an Accessed bit the walk must set.
    needs_accessed: bool,
}

impl<F, M, T, O> Walker<'_, F, M, T, O>
where
    F: Format + ?Sized,
    M: PhysMem + ?Sized,
    T: TableMap,
    O: WalkObserver + ?Sized,
{
    /// The Accessed bits to set in a table entry used.
    #[inline(always)]
    fn table_accessed(&self) -> u64 {
        if F::ACCESSED_IN_TABLES {
            self.accessed
        } else {
            0
        }
    }

    /// The bits to clear in the leaf (Arm's AP\[2\] on a write with hardware dirty state):
    /// computed where used rather than kept, so that it costs formats without any nothing.
    #[inline(always)]
    fn dirty_clear(&self) -> u64 {
        if self.access.is_write() {
            self.format.dirty_clear_bits()
        } else {
            0
        }
    }

    /// The index of the walked input in the table at `level`.
    #[inline(always)]
    fn index(&self, level: u8) -> u64 {
        table_index(self.format, self.input, level)
    }

    fn fault(&self, level: u8, reason: FaultReason, entry: u64) -> Fault {
        Fault {
            stage: F::STAGE,
            level,
            reason,
            input: self.input,
            entry,
            rights: Perm::empty(),
        }
    }

    /// Reads the entries from `level` (in the table at `table`) down to a leaf, intersecting
    /// their rights into `rights`.
    #[inline(always)]
    fn descend(&mut self, mut level: u8, mut table: u64, mut rights: Perm) -> Result<Path, Fault> {
        let mut needs_accessed = false;
        loop {
            let i = self.index(level);
            let (at, refs) = self.tables.map_table(table.wrapping_add(i * 8), false)?;
            self.refs += refs + 1;
            let entry = self
                .mem
                .load_u64(at)
                .map_err(|_| self.fault(level, FaultReason::OutsideMemory, 0))?;
            self.observer.entry(level, table, i, entry);
            if F::ACCESSED_IN_TABLES {
                needs_accessed |= entry & self.accessed != self.accessed;
            }
            let leaf = self.take(level, entry, &mut rights)?;
            if let Some(size) = leaf {
                if !F::ACCESSED_IN_TABLES {
                    needs_accessed |= entry & self.accessed != self.accessed;
                }
                return Ok(Path {
                    len: usize::from(self.top - level) + 1,
                    leaf: entry,
                    size,
                    rights,
                    needs_accessed,
                });
            }
            table = self.format.table_addr(entry);
            level -= 1;
        }
    }

    /// Checks the entry at `level`, records it and intersects its rights into `rights`;
    /// returns the page size when it is a leaf.
    #[inline(always)]
    fn take(
        &mut self,
        level: u8,
        entry: u64,
        rights: &mut Perm,
    ) -> Result<Option<PageSize>, Fault> {
        if !self.format.is_present(entry) {
            return Err(self.fault(level, FaultReason::NotPresent, entry));
        }
        if let Some(reason) = self.format.entry_fault(entry, level) {
            return Err(self.fault(level, reason, entry));
        }
        if F::TABLE_RIGHTS {
            let leaf = self.format.is_leaf(entry, level);
            *rights &= if leaf {
                self.format.rights(entry)
            } else {
                self.format.table_rights(entry)
            };
            self.seen[usize::from(self.top - level)] = entry;
            if !leaf {
                return Ok(None);
            }
        } else {
            *rights &= self.format.rights(entry);
            self.seen[usize::from(self.top - level)] = entry;
            if !self.format.is_leaf(entry, level) {
                return Ok(None);
            }
        }
        match PageSize::from_leaf_level(level) {
            Some(size) => Ok(Some(size)),
            None => Err(self.fault(level, FaultReason::Reserved, entry)),
        }
    }

    /// Faults unless the leaf of `path` may be used (Arm: its Access flag) and the rights of
    /// `path` permit the access.
    #[inline(always)]
    fn check_leaf(&self, path: &Path) -> Result<(), Fault> {
        let level = self.top - (path.len - 1) as u8;
        if self.format.access_flag_fault(path.leaf) {
            return Err(self.fault(level, FaultReason::AccessFlag, path.leaf));
        }
        if self.format.permits(path.rights, self.access) {
            return Ok(());
        }
        Err(Fault {
            rights: path.rights,
            ..self.fault(level, FaultReason::Permission, path.leaf)
        })
    }

    #[inline(always)]
    fn translation(&self, path: &Path) -> Translation {
        Translation {
            output: self.format.page_addr(path.leaf, path.size)
                | (self.input & path.size.offset_mask()),
            size: path.size,
            rights: path.rights,
            refs: self.refs,
        }
    }

    /// The second pass: sets A in every entry of `path` and D in its leaf on writes (Arm:
    /// AF in the leaf, and AP\[2\] cleared on writes), root first, each by compare-and-swap
    /// against the value the walk uses. After a failed swap (and a random wait) the entry is
    /// taken as it now is: if only bits hardware manages differ
    /// ([`Format::hardware_bits`]), the swap is retried on that value; otherwise the walk goes
    /// on from that entry down to a leaf, and the translation is the new entry's (or its
    /// fault). See the module documentation.
    #[cold]
    #[inline(never)]
    fn set_accessed_dirty(&mut self, root: u64, mut path: Path) -> Result<Translation, Fault> {
        let mut failures = 0u32;
        let mut jitter = self.input ^ root;
        let mut table = root;
        let mut i = 0;
        while i < path.len {
            let level = self.top - i as u8;
            let named = table.wrapping_add(self.index(level) * 8);
            let mut value = self.seen[i];
            let mut at = None;
            loop {
                let leaf = i + 1 == path.len;
                let want = if leaf {
                    (value | self.accessed | self.dirty) & !self.dirty_clear()
                } else {
                    value | self.table_accessed()
                };
                if want == value {
                    break;
                }
                let at = match at {
                    Some(at) => at,
                    None if T::DIRECT => *at.insert(named),
                    None => {
                        let (mapped, refs) = self.tables.map_table(named, true)?;
                        self.refs += refs;
                        *at.insert(mapped)
                    }
                };
                let found = match self.mem.compare_exchange_u64(at, value, want) {
                    Ok(Ok(_)) => break,
                    Ok(Err(found)) => found,
                    Err(_) => return Err(self.fault(level, FaultReason::OutsideMemory, value)),
                };
                failures += 1;
                if failures > MAX_AD_RETRIES {
                    return Err(self.fault(level, FaultReason::Contention, found));
                }
                let found = if backoff(failures, &mut jitter) {
                    self.mem
                        .load_u64(at)
                        .map_err(|_| self.fault(level, FaultReason::OutsideMemory, value))?
                } else {
                    found
                };
                let ad = self.format.hardware_bits(value) & self.format.hardware_bits(found);
                if (found ^ value) & !ad != 0 {
                    // The entry changed: the walk uses it as it is now (a fault if it is no
                    // longer present or no longer grants the access).
                    self.observer.entry(level, table, self.index(level), found);
                    let mut rights = self.seen[..i]
                        .iter()
                        .fold(Perm::ANY, |r, &e| r & self.format.table_rights(e));
                    path = match self.take(level, found, &mut rights)? {
                        Some(size) => Path {
                            len: i + 1,
                            leaf: found,
                            size,
                            rights,
                            needs_accessed: true,
                        },
                        None => self.descend(level - 1, self.format.table_addr(found), rights)?,
                    };
                    self.check_leaf(&path)?;
                }
                value = found;
            }
            table = self.format.table_addr(value);
            i += 1;
        }
        Ok(self.translation(&path))
    }
}

/// Waits a little, at random, after the `failures`-th lost compare-and-swap, and says whether
/// it waited (the entry must then be read again). A writer that rewrites an entry at a steady
/// pace could otherwise fall into step with the retries, so that each one meets exactly one
/// new value: measured, a thread re-pointing a PTE between two frames made runs of hundreds of
/// failures without the wait, under 25 with it. The wait grows with the failures up to 63
/// spins (truncated exponential backoff).
#[cold]
fn backoff(failures: u32, state: &mut u64) -> bool {
    // xorshift64: any sequence that is not in step with the writer will do.
    let mut x = *state | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    let spins = x & ((1 << failures.min(6)) - 1);
    for _ in 0..spins {
        std::hint::spin_loop();
    }
    spins != 0
}

#[cfg(test)]
mod tests;
