//! The one walker every format uses.
//!
//! The walk follows the SDM's and VT-d's order: for each level from the root down, read the
//! entry, fault if it is not present or sets a reserved bit, intersect its rights, and stop at
//! a leaf. Then the combined rights are checked against the request, and only if the whole walk
//! succeeded are Accessed/Dirty flags set, by compare-and-swap, in every entry used (A) and in
//! the leaf on writes (D). A faulting walk leaves every entry untouched (as KVM's
//! `walk_addr_generic` models Intel CPUs). If a compare-and-swap finds an entry changed, the walk
//! starts again from the root, a bounded number of times.
//!
//! A walk reads at most one entry per level, so a malformed table (a loop, a pointer to
//! itself) cannot make it run forever; a table or entry outside memory gives
//! [`FaultReason::OutsideMemory`].
//!
//! Table addresses go through a [`TableMap`]: the identity for a one-stage walk, the stage-2
//! translation for a nested walk (see [`crate::nested`]), so the nested walk reuses this code.

use vsva_mem::{Access, PageSize, PhysMem};

use crate::fault::{Fault, FaultReason};
use crate::format::{Format, MAX_LEVELS, MIN_LEVELS, index};
use crate::perm::Perm;

/// How many times a walk restarts because an A/D compare-and-swap lost a race.
pub const MAX_AD_RETRIES: u32 = 64;

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
    /// Paging-entry reads this walk made (both stages for a nested walk).
    pub refs: u32,
}

impl Translation {
    /// The output address of the start of the page.
    pub fn page_base(&self) -> u64 {
        self.output & !self.size.offset_mask()
    }
}

/// Sees every entry a walk reads; for tracing and explaining walks. `()` sees nothing and
/// costs nothing.
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
    let fault = |level: u8, reason: FaultReason, entry: u64| Fault {
        stage: F::STAGE,
        level,
        reason,
        input,
        entry,
        rights: Perm::empty(),
    };
    // A level count the format cannot have (only reachable through a bad configuration) is
    // refused like an input beyond the width, never indexed with.
    if !(MIN_LEVELS..=MAX_LEVELS).contains(&top) || !format.input_ok(input) {
        return Err(fault(top, FaultReason::AddressWidth, 0));
    }
    let accessed = format.accessed_bit().unwrap_or(0);
    let dirty = if access.is_write() {
        format.dirty_bit().unwrap_or(0)
    } else {
        0
    };
    let mut total_refs = 0u32;
    for _attempt in 0..=MAX_AD_RETRIES {
        // The entries read, root first; kept so that A/D updates can be made by
        // compare-and-swap against exactly what the walk saw.
        let mut seen = [0u64; 5];
        let mut n = 0usize;
        let mut needs_update = false;
        let mut table = root;
        let mut rights = Perm::all();
        let mut level = top;
        let (leaf, size) = loop {
            let named = table.wrapping_add(index(input, level) * 8);
            let (at, refs) = tables.map_table(named, false)?;
            total_refs += refs + 1;
            let entry = mem
                .load_u64(at)
                .map_err(|_| fault(level, FaultReason::OutsideMemory, 0))?;
            observer.entry(level, table, index(input, level), entry);
            if !format.is_present(entry) {
                return Err(fault(level, FaultReason::NotPresent, entry));
            }
            if format.has_reserved_bits(entry, level) {
                return Err(fault(level, FaultReason::Reserved, entry));
            }
            rights &= format.rights(entry);
            needs_update |= entry & accessed != accessed;
            seen[n] = entry;
            n += 1;
            if format.is_leaf(entry, level) {
                match PageSize::from_leaf_level(level) {
                    Some(size) => break (entry, size),
                    None => return Err(fault(level, FaultReason::Reserved, entry)),
                }
            }
            table = format.table_addr(entry);
            level -= 1;
        };
        if !format.permits(rights, access) {
            return Err(Fault {
                rights,
                ..fault(level, FaultReason::Permission, leaf)
            });
        }
        needs_update |= leaf & dirty != dirty;
        let output = format.page_addr(leaf, size) | (input & size.offset_mask());
        if !needs_update {
            return Ok(Translation {
                output,
                size,
                rights,
                refs: total_refs,
            });
        }
        // Second pass over the same path: set A everywhere and D in the leaf.
        let mut raced = false;
        let mut table = root;
        for (i, &value) in seen[..n].iter().enumerate() {
            let level = top - i as u8;
            let want = value | accessed | if i + 1 == n { dirty } else { 0 };
            let named = table.wrapping_add(index(input, level) * 8);
            table = format.table_addr(value);
            if want == value {
                continue;
            }
            let at = if T::DIRECT {
                named
            } else {
                let (at, refs) = tables.map_table(named, true)?;
                total_refs += refs;
                at
            };
            match mem.compare_exchange_u64(at, value, want) {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => {
                    raced = true;
                    break;
                }
                Err(_) => return Err(fault(level, FaultReason::OutsideMemory, value)),
            }
        }
        if !raced {
            return Ok(Translation {
                output,
                size,
                rights,
                refs: total_refs,
            });
        }
    }
    Err(fault(top, FaultReason::Contention, 0))
}
