//! Arm stage 2 (DDI 0487 D8: translation table descriptor formats, stage 2 access
//! permissions, concatenated translation tables for the initial stage 2 lookup).
//!
//! | bit | block / page descriptor | table descriptor |
//! |---|---|---|
//! | 0 | valid | valid |
//! | 1 | 0: block (Arm levels 1, 2), 1: page (level 3) | 1 |
//! | 5:2 | MemAttr (kept as data, [`super::mem_attr`]) | ignored |
//! | 7:6 | S2AP: bit 6 read, bit 7 write | ignored |
//! | 9:8 | SH | ignored |
//! | 10 | AF | ignored |
//! | 47:12 | output address (block: 47:30 or 47:21) | next-level table |
//! | 51 | DBM | ignored |
//! | 52 | Contiguous hint | ignored |
//! | 54 | XN (XN\[1\]; XN\[0\], bit 53, needs FEAT_XNX and is ignored here) | ignored |
//! | 63:59 | ignored | RES0: stage 2 has no hierarchical controls |
//!
//! The start level comes from VTCR.SL0, and the start-level table may be up to 16 tables
//! concatenated (aligned to their total size), indexed by up to 13 bits: a 40-bit IPA space
//! starting at level 1 has two. A T0SZ the start level cannot cover with 1 to 16 tables is
//! the Arm pseudocode's `AArch64.S2InconsistentSL`: every walk faults (a level-0 Translation
//! fault).
//!
//! Rights in [`Perm`] terms: USER always (stage 2 has no EL, so combining stages keeps the
//! first's), READ with S2AP\[0\], WRITE with S2AP\[1\] (or DBM = 1 when hardware dirty state is
//! on), EXEC and [`Perm::PRIV_EXEC`] with XN = 0.

use vsva_mem::{Access, PageSize};

use super::{AF, DBM, MEM_ATTR, OA, S2AP_R, S2AP_W, SH_INNER, TABLE, VALID, XN, descriptor_fault};
use crate::fault::{FaultReason, Stage};
use crate::format::{Format, INDEX_BITS};
use crate::perm::Perm;

/// A stage-2 configuration: the VTCR_EL2 (or SMMU STE S2*) fields that change a walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArmS2 {
    /// T0SZ: the IPA size is 64 − `t0sz` bits.
    pub t0sz: u8,
    /// SL0 with the 4 KiB granule: 0 starts at level 2, 1 at level 1, 2 at level 0.
    pub sl0: u8,
    /// The PA size in bits ([`super::pa_size_bits`] of VTCR.PS; at most 48 here).
    pub pa_bits: u8,
    /// VTCR.HA: hardware sets AF instead of an Access flag fault.
    pub ha: bool,
    /// VTCR.HD: a write to a DBM = 1 page sets its S2AP\[1\] instead of a Permission fault.
    /// Has no effect without `ha`.
    pub hd: bool,
    /// Access flag faults disabled: AF = 0 is used as if it were 1 (an SMMU's STE.S2AFFD,
    /// IHI 0070 §5.2; a VM's stage 2 has no such control).
    pub affd: bool,
}

impl ArmS2 {
    /// A stage 2 for `ipa_bits`-bit IPAs over `pa_bits`-bit PAs, with as few levels as 16
    /// concatenated start tables allow (as KVM chooses: a 40-bit IPA starts at level 1 with
    /// two tables), hardware AF and dirty state off.
    pub fn new(ipa_bits: u8, pa_bits: u8) -> ArmS2 {
        let levels = ipa_bits.saturating_sub(8) / 9;
        ArmS2 {
            t0sz: 64u8.saturating_sub(ipa_bits),
            sl0: levels.saturating_sub(2),
            pa_bits,
            ha: false,
            hd: false,
            affd: false,
        }
    }

    /// The IPA size in bits, if T0SZ and SL0 are consistent for this granule (start level
    /// 0 to 2, 1 to 16 start tables, at most 48 bits) and the PA size is at least
    /// [`MIN_PA_BITS`](super::MIN_PA_BITS) (otherwise every walk faults).
    #[inline]
    pub fn input_bits(&self) -> Option<u32> {
        let bits = 64u32.checked_sub(u32::from(self.t0sz))?;
        let levels = 2 + u32::from(self.sl0);
        // AArch64.S2InconsistentSL: levels × 9 + 12 < size ≤ that + 13.
        let covered = 12 + INDEX_BITS * (levels - 1);
        let pa_ok = self.pa_bits >= super::MIN_PA_BITS;
        (pa_ok && self.sl0 <= 2 && bits <= 48 && bits > covered && bits <= covered + 13)
            .then_some(bits)
    }

    /// How many concatenated tables the start level has (1 to 16), if consistent.
    pub fn start_tables(&self) -> Option<u32> {
        self.input_bits().map(|_| {
            let bits = self.root_index_bits();
            1 << bits.saturating_sub(INDEX_BITS)
        })
    }

    #[inline(always)]
    fn hd_on(&self) -> bool {
        self.ha && self.hd
    }
}

impl Format for ArmS2 {
    /// AF is in blocks and pages only (no FEAT_HAFT).
    const ACCESSED_IN_TABLES: bool = false;
    /// Table descriptors have rights of their own (stage 2: none, all rights pass).
    const TABLE_RIGHTS: bool = true;
    const STAGE: Stage = Stage::Second;

    #[inline]
    fn levels(&self) -> u8 {
        match self.input_bits() {
            Some(_) => 2 + self.sl0,
            None => 0,
        }
    }

    #[inline]
    fn root_index_bits(&self) -> u32 {
        match self.input_bits() {
            Some(bits) => bits - (12 + INDEX_BITS * (u32::from(self.levels()) - 1)),
            None => INDEX_BITS,
        }
    }

    #[inline]
    fn input_ok(&self, addr: u64) -> bool {
        self.input_bits().is_some_and(|bits| addr >> bits == 0)
    }

    #[inline(always)]
    fn is_present(&self, entry: u64) -> bool {
        entry & VALID != 0
    }

    #[inline(always)]
    fn is_leaf(&self, entry: u64, level: u8) -> bool {
        level == 1 || entry & TABLE == 0
    }

    #[inline]
    fn has_reserved_bits(&self, entry: u64, level: u8) -> bool {
        self.entry_fault(entry, level).is_some()
    }

    #[inline(always)]
    fn entry_fault(&self, entry: u64, level: u8) -> Option<FaultReason> {
        descriptor_fault(entry, level, self.pa_bits)
    }

    #[inline(always)]
    fn table_addr(&self, entry: u64) -> u64 {
        entry & OA
    }

    #[inline(always)]
    fn page_addr(&self, entry: u64, size: PageSize) -> u64 {
        entry & OA & !size.offset_mask()
    }

    #[inline]
    fn rights(&self, entry: u64) -> Perm {
        let mut p = Perm::USER;
        if entry & S2AP_R != 0 {
            p |= Perm::READ;
        }
        if entry & S2AP_W != 0 || (self.hd_on() && entry & DBM != 0) {
            p |= Perm::WRITE;
        }
        if entry & XN == 0 {
            p |= Perm::EXEC | Perm::PRIV_EXEC;
        }
        p
    }

    /// Stage-2 table descriptors carry no access controls.
    #[inline(always)]
    fn table_rights(&self, _entry: u64) -> Perm {
        Perm::ANY
    }

    /// D8, stage 2 access permissions: reads need S2AP\[0\], writes S2AP\[1\], fetches
    /// XN = 0 (no read permission needed in AArch64).
    #[inline]
    fn permits(&self, rights: Perm, access: Access) -> bool {
        if access.is_exec() {
            return rights.contains(Perm::EXEC);
        }
        (!access.contains(Access::READ) || rights.contains(Perm::READ))
            && (!access.is_write() || rights.contains(Perm::WRITE))
    }

    #[inline(always)]
    fn accessed_bit(&self) -> Option<u64> {
        self.ha.then_some(AF)
    }

    #[inline(always)]
    fn access_flag_fault(&self, leaf: u64) -> bool {
        !self.ha && !self.affd && leaf & AF == 0
    }

    #[inline(always)]
    fn dirty_bit(&self) -> Option<u64> {
        self.hd_on().then_some(S2AP_W)
    }

    /// AF, and S2AP\[1\] of a DBM leaf when hardware dirty state is on.
    fn hardware_bits(&self, entry: u64) -> u64 {
        let mut bits = if self.ha { AF } else { 0 };
        if self.hd_on() && entry & DBM != 0 {
            bits |= S2AP_W;
        }
        bits
    }

    /// Writable-dirty: DBM = 1 with S2AP\[1\] = 1.
    fn is_dirty(&self, leaf: u64) -> bool {
        leaf & (DBM | S2AP_W) == DBM | S2AP_W
    }

    /// Writable-clean: S2AP\[1\] cleared again on a DBM leaf.
    fn cleaned(&self, leaf: u64) -> u64 {
        if leaf & DBM != 0 {
            leaf & !S2AP_W
        } else {
            leaf
        }
    }

    fn supports(&self, size: PageSize) -> bool {
        size.leaf_level() <= self.levels()
    }

    fn encode_table(&self, table: u64) -> u64 {
        (table & OA) | TABLE | VALID
    }

    /// A block or page with AF set, Inner Shareable, MemAttr 0b1111 (Normal, Write-Back).
    fn encode_leaf(&self, page: u64, size: PageSize, perm: Perm) -> u64 {
        let kind = if size == PageSize::Size4K {
            TABLE | VALID
        } else {
            VALID
        };
        self.set_rights(
            (page & OA & !size.offset_mask()) | kind | AF | SH_INNER | MEM_ATTR,
            perm,
        )
    }

    /// S2AP and XN (and DBM on writable leaves when hardware dirty state is on).
    fn set_rights(&self, entry: u64, perm: Perm) -> u64 {
        let mut e = entry & !(S2AP_R | S2AP_W | XN | DBM);
        if perm.contains(Perm::READ) {
            e |= S2AP_R;
        }
        if perm.contains(Perm::WRITE) {
            e |= S2AP_W;
            if self.hd_on() {
                e |= DBM;
            }
        }
        if !perm.contains(Perm::EXEC) {
            e |= XN;
        }
        e
    }
}

#[cfg(test)]
mod tests;
