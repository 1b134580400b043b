//! Why a walk failed, and where.

use std::fmt;

use crate::perm::Perm;

/// Which stage of translation a fault belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// A CPU page table or VT-d first-stage table (x86 format).
    First,
    /// A VT-d second-stage table.
    Second,
}

/// The reason of a walk fault, in the spec's categories (SDM §4.7 page-fault error code;
/// VT-d 4.1 §7.1.3 / Appendix A scalable-mode fault reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultReason {
    /// The entry at `level` is not present.
    NotPresent,
    /// All entries were present but their combined rights forbid the access.
    Permission,
    /// The entry at `level` has a reserved bit set.
    Reserved,
    /// The input address is beyond the format's width (or, for x86, not canonical).
    AddressWidth,
    /// A table, or an entry, lies outside the memory being walked.
    OutsideMemory,
    /// Setting Accessed/Dirty flags lost [`crate::walk::MAX_AD_RETRIES`] compare-and-swaps to
    /// writes by others: only a writer that rewrites an entry continuously gets this (a walk
    /// racing with ordinary edits ends with the old or the new entry). `level` and `entry`
    /// name the entry and the last value found in it.
    Contention,
}

/// A failed walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fault {
    /// The stage whose table faulted.
    pub stage: Stage,
    /// The level of the faulting entry (for `AddressWidth`, the top level).
    pub level: u8,
    /// Why.
    pub reason: FaultReason,
    /// The address that was being translated by `stage` (for a second-stage fault inside a
    /// nested walk: the GPA of a first-stage table or of the final output).
    pub input: u64,
    /// The raw entry that faulted (0 where none was read).
    pub entry: u64,
    /// For a [`FaultReason::Permission`] fault, the rights the walk found (intersected over
    /// the levels), so a caller can tell which right was missing; empty otherwise.
    pub rights: Perm,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?}-stage {:?} fault at level {} translating {:#x} (entry {:#x})",
            self.stage, self.reason, self.level, self.input, self.entry
        )
    }
}

impl std::error::Error for Fault {}
