//! vsva-pgtable: page-table formats as data, their walkers and their builders.
//!
//! The table format is kept apart from the memory it lives in (as aarch64-paging does): every
//! walk reads entries through [`vsva_mem::PhysMem`], and every format implements one trait,
//! [`Format`], so that one walker ([`walk()`]) and one builder ([`PageTable`]) serve them all.
//!
//! | module | format | spec |
//! |---|---|---|
//! | [`x86`] | x86-64 4- and 5-level paging: the CPU's tables and VT-d's first stage | Intel SDM Vol. 3 §4.5–4.8; VT-d 4.1 §3.6, §9.7 |
//! | [`vtd_ss`] | VT-d second-stage tables | VT-d 4.1 §3.7, §9.8 |
//! | [`arm`] | Arm VMSAv8-64 stage 1 and stage 2, 4 KiB granule | Arm DDI 0487, chapter D8 |
//! | [`nested`] | two-dimensional walk: first-stage table pointers are GPAs (IPAs) translated by stage 2 | VT-d 4.1 §3.8; DDI 0487 D8 |
//!
//! A walk that fails returns a [`Fault`] naming the stage, the level and the reason; a
//! malformed table (reserved bits, a pointer outside memory, a loop) faults and never panics
//! or hangs: every walk visits at most one entry per level.
//!
//! Levels are numbered as the SDM does: 1 is the PTE level, 4 the PML4, 5 the PML5. Arm numbers
//! its lookup levels the other way (Arm level = 4 − vsva level): see [`arm`].

pub mod arm;
pub mod fault;
pub mod format;
pub mod nested;
pub mod perm;
pub mod table;
pub mod vtd_ss;
pub mod walk;
pub mod x86;

pub use arm::{ArmFault, ArmFaultKind, ArmS1, ArmS2};
pub use fault::{Fault, FaultReason, Stage};
pub use format::Format;
pub use nested::{FaultClass, NestedFault};
pub use perm::Perm;
pub use table::{Leaf, MapError, PageTable, Unmapped};
pub use walk::{LastEntry, Translation, WalkObserver, walk};

#[cfg(test)]
pub(crate) mod testutil;
