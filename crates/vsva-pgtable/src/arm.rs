//! Arm VMSAv8-64 translation tables (Arm DDI 0487, chapter D8 "The AArch64 Virtual Memory
//! System Architecture"): stage 1 ([`ArmS1`], the tables of an Arm64 process and of an SMMU
//! context descriptor) and stage 2 ([`ArmS2`], a VM's IPA space and an SMMU STE's S2TTB).
//!
//! Supported, with the 4 KiB granule only:
//! * stage 1: input sizes of 25 to 48 bits (TxSZ 16 to 39: 2 to 4 lookup levels), the lower
//!   (TTBR0) or the upper (TTBR1) range; PA sizes from TCR.IPS (32 to 48 bits); AP\[2:1\],
//!   UXN, PXN, the implicit PXN of EL0-writable memory, APTable/UXNTable/PXNTable (and
//!   TCR.HPD to ignore them), PSTATE.PAN and SCTLR.WXN; AF with TCR.HA; DBM with TCR.HD;
//!   nG and the Contiguous hint are kept in the entry and do not change the walk;
//! * stage 2: IPA sizes from VTCR.T0SZ with the start level from VTCR.SL0 (levels 0 to 2) and
//!   1 to 16 concatenated start-level tables; S2AP, XN, AF with VTCR.HA, DBM with VTCR.HD;
//!   MemAttr kept as data ([`mem_attr`]).
//!
//! Not supported: the 16 KiB and 64 KiB granules and 52-bit addresses (FEAT_LPA, FEAT_LPA2 —
//! vsva's page sizes are 4 KiB, 2 MiB and 1 GiB; a PS/IPS of 52 bits counts as 48), TBI,
//! FEAT_XNX (stage-2 XN\[0\] is ignored), FEAT_HAFT (AF in table descriptors), permission
//! indirection and overlays, FEAT_TTST (start level 3), and the Address size check of the
//! table base register itself (the SMMU validates CD.TTB0/1 and STE.S2TTB).
//!
//! # Levels
//!
//! vsva numbers levels from the leaf up (1 = the 4 KiB page level); the Arm ARM numbers
//! lookup levels from the root down. With the 4 KiB granule, **Arm level = 4 − vsva level**:
//!
//! | vsva level | Arm lookup level | an entry maps |
//! |---|---|---|
//! | 4 | 0 | 512 GiB (table descriptors only) |
//! | 3 | 1 | a 1 GiB block, or a table |
//! | 2 | 2 | a 2 MiB block, or a table |
//! | 1 | 3 | a 4 KiB page |
//!
//! A [`Fault`] carries the vsva level; [`ArmFault::from_fault`] gives the Arm
//! fault type and lookup level an SMMU event or an ESR reports. An input address outside the
//! TxSZ range is a Translation fault at level 0 whatever the start level (the Arm pseudocode's
//! `AArch64.VAIsOutOfRange` / `AArch64.IPAIsOutOfRange` faults set level 0).
//!
//! # Reserved bits
//!
//! The Arm ARM gives descriptors RES0 fields (bits 50:48 of tables, 49:48 of blocks and pages,
//! the low output-address bits of a block) but no fault for them: the walker ignores them, as
//! the Arm pseudocode does. What faults: an invalid descriptor (bit 0 clear), a block where
//! the level has none (Arm level 0) or bit 1 clear at Arm level 3 — Translation faults — and
//! an output address (next table, block or page) with a bit set at or above the PA size —
//! an Address size fault.

mod s1;
mod s2;

pub use s1::ArmS1;
pub use s2::ArmS2;

use crate::fault::{Fault, FaultReason, Stage};

/// Bit 0: the descriptor is valid (DDI 0487 D8, translation table descriptor formats).
pub const VALID: u64 = 1 << 0;
/// Bit 1: a table descriptor at Arm levels 0–2, a page descriptor at level 3; clear: a block.
pub const TABLE: u64 = 1 << 1;
/// Stage 1 AttrIndx\[2:0\], bits 4:2: the MAIR attribute index.
pub const ATTR_INDX: u64 = 0b111 << 2;
/// Stage 2 MemAttr\[3:0\], bits 5:2.
pub const MEM_ATTR: u64 = 0b1111 << 2;
/// Stage 1 AP\[1\] (bit 6): EL0 may access.
pub const AP1: u64 = 1 << 6;
/// Stage 1 AP\[2\] (bit 7): read-only at every EL.
pub const AP2: u64 = 1 << 7;
/// Stage 2 S2AP\[0\] (bit 6): reads allowed.
pub const S2AP_R: u64 = 1 << 6;
/// Stage 2 S2AP\[1\] (bit 7): writes allowed.
pub const S2AP_W: u64 = 1 << 7;
/// SH\[1:0\], bits 9:8: shareability (0b11 Inner Shareable).
pub const SH_INNER: u64 = 0b11 << 8;
/// Bit 10: the Access flag.
pub const AF: u64 = 1 << 10;
/// Stage 1 bit 11: not global — the translation belongs to the current ASID.
pub const NG: u64 = 1 << 11;
/// Bits 47:12: the output address of a table or page descriptor (a block's lies in the upper
/// part of it: 47:30 at level 1, 47:21 at level 2).
pub const OA: u64 = ((1 << 48) - 1) & !0xfff;
/// Bit 51: Dirty Bit Modifier (FEAT_HAFDBS).
pub const DBM: u64 = 1 << 51;
/// Bit 52: the Contiguous hint.
pub const CONTIGUOUS: u64 = 1 << 52;
/// Stage 1 bit 53: privileged execute-never.
pub const PXN: u64 = 1 << 53;
/// Stage 1 bit 54: unprivileged execute-never (UXN; XN at stage 2).
pub const UXN: u64 = 1 << 54;
/// Stage 2 bit 54: XN\[1\], execute-never.
pub const XN: u64 = UXN;
/// Stage 1 table bit 59: PXNTable.
pub const PXN_TABLE: u64 = 1 << 59;
/// Stage 1 table bit 60: UXNTable.
pub const UXN_TABLE: u64 = 1 << 60;
/// Stage 1 table bit 61: APTable\[0\], no EL0 access below.
pub const AP_TABLE_NO_EL0: u64 = 1 << 61;
/// Stage 1 table bit 62: APTable\[1\], no write access below.
pub const AP_TABLE_RO: u64 = 1 << 62;
/// Stage 1 table bit 63: NSTable (not modelled: one security state).
pub const NS_TABLE: u64 = 1 << 63;

/// The smallest PA size (TCR.IPS / VTCR.PS = 0b000: 32 bits). A format configured with a
/// smaller one walks nothing: every walk faults, as for an undefined TxSZ.
pub const MIN_PA_BITS: u8 = 32;

/// The PA size, in bits, that a TCR.IPS or VTCR.PS value selects (the IPS/PS encodings of DDI 0487):
/// 0 → 32, 1 → 36, 2 → 40, 3 → 42, 4 → 44, 5 → 48, 6 → 52; `None` for reserved values.
pub const fn pa_size_bits(ps: u8) -> Option<u8> {
    match ps {
        0 => Some(32),
        1 => Some(36),
        2 => Some(40),
        3 => Some(42),
        4 => Some(44),
        5 => Some(48),
        6 => Some(52),
        _ => None,
    }
}

/// The Arm lookup level of the vsva `level` (4 KiB granule: 4 − `level`; see the module
/// documentation).
pub const fn arm_level(level: u8) -> u8 {
    4u8.saturating_sub(level)
}

/// Stage 1 AttrIndx of a block or page descriptor.
pub const fn attr_index(entry: u64) -> u8 {
    ((entry & ATTR_INDX) >> 2) as u8
}

/// Stage 2 MemAttr of a block or page descriptor.
pub const fn mem_attr(entry: u64) -> u8 {
    ((entry & MEM_ATTR) >> 2) as u8
}

/// Is a stage-1 block or page descriptor not global (nG = 1: tag its TLB entry with the ASID)?
pub const fn non_global(entry: u64) -> bool {
    entry & NG != 0
}

/// Does the descriptor set the Contiguous hint?
pub const fn contiguous(entry: u64) -> bool {
    entry & CONTIGUOUS != 0
}

/// Does an output address field name an address at or above 2^`pa_bits`?
#[inline(always)]
pub(crate) fn beyond_pa(entry: u64, pa_bits: u8) -> bool {
    (entry & OA) >> pa_bits.min(48) != 0
}

/// The fault a valid descriptor at vsva `level` causes by itself: a block at a level without
/// blocks or the reserved level-3 encoding (Translation), an output address beyond the PA size
/// (Address size).
#[inline(always)]
pub(crate) fn descriptor_fault(entry: u64, level: u8, pa_bits: u8) -> Option<FaultReason> {
    if entry & TABLE == 0 && !matches!(level, 2 | 3) {
        return Some(FaultReason::NotPresent);
    }
    if beyond_pa(entry, pa_bits) {
        return Some(FaultReason::AddressSize);
    }
    None
}

/// The Arm fault types of a walk (DDI 0487 D8, MMU faults; SMMUv3 events F_TRANSLATION,
/// F_ADDR_SIZE, F_ACCESS, F_PERMISSION, F_WALK_EABT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArmFaultKind {
    /// Translation fault: an invalid descriptor, or an input address outside the TxSZ range.
    Translation,
    /// Address size fault: an output address beyond the PA size.
    AddressSize,
    /// Access flag fault.
    AccessFlag,
    /// Permission fault.
    Permission,
    /// A synchronous external abort on the walk: a table outside memory, or (vsva only) an
    /// entry rewritten without pause while the walk set its flags.
    ExternalAbort,
}

/// A walk fault in Arm terms, as an SMMU event or an ESR reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArmFault {
    /// The fault type.
    pub kind: ArmFaultKind,
    /// The stage (SMMU event field S2).
    pub stage: Stage,
    /// The Arm lookup level (0 to 3).
    pub level: u8,
    /// The address the faulting stage was translating (the VA, or for stage 2 the IPA).
    pub input: u64,
}

impl ArmFault {
    /// `fault` in Arm terms. An input address beyond the width is a level-0 Translation fault;
    /// a reserved-bit fault, which Arm formats never give, counts as a Translation fault.
    pub fn from_fault(fault: &Fault) -> ArmFault {
        let (kind, level) = match fault.reason {
            FaultReason::AddressWidth => (ArmFaultKind::Translation, 0),
            FaultReason::NotPresent | FaultReason::Reserved => {
                (ArmFaultKind::Translation, arm_level(fault.level))
            }
            FaultReason::AddressSize => (ArmFaultKind::AddressSize, arm_level(fault.level)),
            FaultReason::AccessFlag => (ArmFaultKind::AccessFlag, arm_level(fault.level)),
            FaultReason::Permission => (ArmFaultKind::Permission, arm_level(fault.level)),
            FaultReason::OutsideMemory | FaultReason::Contention => {
                (ArmFaultKind::ExternalAbort, arm_level(fault.level))
            }
        };
        ArmFault {
            kind,
            stage: fault.stage,
            level,
            input: fault.input,
        }
    }
}

#[cfg(test)]
mod tests;
