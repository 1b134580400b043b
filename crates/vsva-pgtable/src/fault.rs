//! Why a walk failed, and where.

use std::fmt;

use crate::perm::Perm;

/// Which stage of translation a fault belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// A CPU page table, a VT-d first-stage table (x86 format) or an Arm stage-1 table.
    First,
    /// A VT-d second-stage table or an Arm stage-2 table.
    Second,
}

/// The reason of a walk fault, in the spec's categories (SDM §4.7 page-fault error code;
/// VT-d 4.1 §7.1.3 / Appendix A scalable-mode fault reasons; Arm DDI 0487 chapter D8, MMU
/// faults — see [`crate::arm::ArmFault`] for the Arm names).
///
/// x86 and VT-d formats never report [`AccessFlag`](Self::AccessFlag) or
/// [`AddressSize`](Self::AddressSize).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultReason {
    /// The entry at `level` is not present (Arm: invalid, or an encoding that is invalid at
    /// that level — a Translation fault).
    NotPresent,
    /// All entries were present but their combined rights forbid the access.
    Permission,
    /// The entry at `level` has a reserved bit set.
    Reserved,
    /// The input address is beyond the format's width (or, for x86, not canonical; Arm: outside
    /// the TxSZ range, a level-0 Translation fault).
    AddressWidth,
    /// A table, or an entry, lies outside the memory being walked.
    OutsideMemory,
    /// Setting Accessed/Dirty flags lost [`crate::walk::MAX_AD_RETRIES`] compare-and-swaps to
    /// writes by others: only a writer that rewrites an entry continuously gets this (a walk
    /// racing with ordinary edits ends with the old or the new entry). `level` and `entry`
    /// name the entry and the last value found in it.
    Contention,
    /// Arm: the block or page descriptor at `level` has AF = 0 and hardware Access-flag
    /// updates (TCR.HA, VTCR.HA) are off (DDI 0487 D8, the Access flag: an Access flag fault).
    AccessFlag,
    /// Arm: the descriptor at `level` holds an output address — of the next table or of the
    /// page — at or above the configured PA size (TCR.IPS, VTCR.PS): an Address size fault
    /// (DDI 0487 D8, MMU faults).
    AddressSize,
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
