//! Nested (two-dimensional) translation, VT-d 4.1 §3.8; Arm DDI 0487 D8 (stage 2 translation)
//! (stage-1 table addresses are IPAs) and SMMUv3 3.0 §3.4 for the same walk with Arm formats.
//!
//! The first stage (the guest's x86 tables) turns a VA into a GPA; the second stage (the host's
//! VT-d second-stage tables) turns GPAs into HPAs. Every first-stage paging-structure pointer —
//! the root pointer and each table address found in an entry — is itself a GPA, so reading a
//! first-stage entry first walks the second stage. A cold 4+4-level walk therefore reads
//! 4 x (4 + 1) + 4 = 24 entries.
//!
//! Rights are the intersection of both stages. Setting A/D in a first-stage entry is a write
//! to guest memory, so it needs second-stage write permission on that table page (a fault
//! otherwise, reason 0x77 in VT-d terms). Faults name their stage: a [`Stage::Second`] fault's
//! `input` is the GPA that could not be translated, and [`nested_walk_classified`] says whether
//! it was a first-stage table's or the output's ([`FaultClass`]).
//!
//! Any first-stage format nests over any second-stage one: x86 over VT-d second stage, Arm
//! stage 1 ([`crate::arm::ArmS1`]) over Arm stage 2 ([`crate::arm::ArmS2`]).

use vsva_mem::{Access, PhysMem};

use crate::fault::{Fault, Stage};
use crate::format::Format;
use crate::walk::{Direct, TableMap, Translation, WalkObserver, walk};

/// The second stage seen as a [`TableMap`] for a first-stage walk.
pub struct Stage2<'a, F: Format + ?Sized, M: PhysMem + ?Sized> {
    /// The second-stage format.
    pub format: &'a F,
    /// Host memory, where the second-stage tables and the guest's RAM live.
    pub mem: &'a M,
    /// HPA of the second-stage root table.
    pub root: u64,
}

impl<F: Format + ?Sized, M: PhysMem + ?Sized> Stage2<'_, F, M> {
    /// Translates a GPA for `access` (privilege is meaningless in the second stage).
    ///
    /// # Errors
    /// A second-stage [`Fault`].
    #[inline]
    pub fn translate(&self, gpa: u64, access: Access) -> Result<Translation, Fault> {
        walk(
            self.format,
            self.mem,
            self.root,
            gpa,
            access.difference(Access::PRIV),
            &mut Direct,
            &mut (),
        )
    }
}

impl<F: Format + ?Sized, M: PhysMem + ?Sized> TableMap for Stage2<'_, F, M> {
    const DIRECT: bool = false;

    #[inline]
    fn map_table(&mut self, addr: u64, for_write: bool) -> Result<(u64, u32), Fault> {
        let access = if for_write {
            Access::WRITE
        } else {
            Access::READ
        };
        let t = self.translate(addr, access)?;
        Ok((t.output, t.refs))
    }
}

/// What a nested walk was doing when it faulted: the CLASS of an SMMUv3 event with S2 set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultClass {
    /// Translating the address of a first-stage table by the second stage, to read a
    /// descriptor or to update its flags (SMMUv3 CLASS = TT).
    TableWalk,
    /// Translating the input: a first-stage fault, or a second-stage fault on the first
    /// stage's output (SMMUv3 CLASS = IN).
    Input,
}

/// A nested walk's fault and what the walk was doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NestedFault {
    /// The fault (a [`Stage::Second`] fault's `input` is the GPA/IPA that faulted).
    pub fault: Fault,
    /// Whether it arose on a first-stage table access or on the input's translation.
    pub class: FaultClass,
}

/// Translates `input` through the first stage rooted at GPA `s1_root`, whose table pointers and
/// output are translated by `s2`.
///
/// # Errors
/// The first fault of either stage.
#[inline]
pub fn nested_walk<F1, F2, M>(
    s1: &F1,
    s1_root: u64,
    s2: &Stage2<'_, F2, M>,
    input: u64,
    access: Access,
) -> Result<Translation, Fault>
where
    F1: Format + ?Sized,
    F2: Format + ?Sized,
    M: PhysMem + ?Sized,
{
    let mut tables = Stage2 {
        format: s2.format,
        mem: s2.mem,
        root: s2.root,
    };
    let first = walk(s1, s2.mem, s1_root, input, access, &mut tables, &mut ())?;
    let second = s2.translate(first.output, access)?;
    debug_assert_eq!(F2::STAGE, Stage::Second);
    Ok(combine(&first, &second))
}

/// [`nested_walk`], telling a second-stage fault on a first-stage table from one on the
/// output (what an SMMU reports as the event's CLASS), and reporting the first-stage entries
/// read to `observer` (e.g. [`crate::walk::LastEntry`] for the leaf's nG).
///
/// # Errors
/// The first fault of either stage, with its [`FaultClass`].
#[inline]
pub fn nested_walk_classified<F1, F2, M, O>(
    s1: &F1,
    s1_root: u64,
    s2: &Stage2<'_, F2, M>,
    input: u64,
    access: Access,
    observer: &mut O,
) -> Result<Translation, NestedFault>
where
    F1: Format + ?Sized,
    F2: Format + ?Sized,
    M: PhysMem + ?Sized,
    O: WalkObserver + ?Sized,
{
    let mut tables = Stage2 {
        format: s2.format,
        mem: s2.mem,
        root: s2.root,
    };
    let first =
        walk(s1, s2.mem, s1_root, input, access, &mut tables, observer).map_err(|fault| {
            NestedFault {
                class: if fault.stage == F1::STAGE {
                    FaultClass::Input
                } else {
                    FaultClass::TableWalk
                },
                fault,
            }
        })?;
    let second = s2
        .translate(first.output, access)
        .map_err(|fault| NestedFault {
            fault,
            class: FaultClass::Input,
        })?;
    Ok(combine(&first, &second))
}

/// The translation of both stages: the second's output, the smaller page, the rights of both.
#[inline(always)]
fn combine(first: &Translation, second: &Translation) -> Translation {
    Translation {
        output: second.output,
        size: first.size.min(second.size),
        rights: first.rights & second.rights,
        refs: first.refs + second.refs,
    }
}

#[cfg(test)]
mod tests;
