//! Arm stage 1 (DDI 0487 D8: translation table descriptor formats, memory access control,
//! hardware management of the Access flag and dirty state).
//!
//! | bit | block / page descriptor | table descriptor |
//! |---|---|---|
//! | 0 | valid | valid |
//! | 1 | 0: block (Arm levels 1, 2), 1: page (level 3) | 1 |
//! | 4:2 | AttrIndx | ignored |
//! | 5 | NS (not modelled) | ignored |
//! | 7:6 | AP\[2:1\]: 00 EL1 RW; 01 EL1 and EL0 RW; 10 EL1 RO; 11 EL1 and EL0 RO | ignored |
//! | 9:8 | SH | ignored |
//! | 10 | AF | ignored |
//! | 11 | nG | ignored |
//! | 47:12 | output address (block: 47:30 or 47:21) | next-level table |
//! | 51 | DBM | ignored |
//! | 52 | Contiguous hint | ignored |
//! | 53 | PXN | ignored |
//! | 54 | UXN | ignored |
//! | 59 | — | PXNTable |
//! | 60 | — | UXNTable |
//! | 62:61 | — | APTable: bit 61 no EL0 access, bit 62 no write |
//! | 63 | — | NSTable (not modelled) |
//!
//! Rights in [`Perm`] terms: READ always (EL1 can always read a valid page), WRITE with
//! AP\[2\] = 0 (or DBM = 1 when hardware dirty state is on), USER with AP\[1\] = 1 (EL0 access),
//! EXEC with UXN = 0, [`Perm::PRIV_EXEC`] with PXN = 0.
//!
//! A writable-clean leaf (DBM = 1, AP\[2\] = 1, hardware dirty state on) counts as writable
//! for every rule, the implicit PXN of EL0-writable memory and WXN included: [`Perm`] has no
//! room for "writable once dirtied". QEMU counts it writable for stores only, so an EL1 fetch
//! from an EL0 writable-clean page with PXN = 0 is allowed there and faults here.

use vsva_mem::{Access, PageSize};

use super::{
    AF, AP_TABLE_NO_EL0, AP_TABLE_RO, AP1, AP2, DBM, NG, OA, PXN, PXN_TABLE, SH_INNER, TABLE, UXN,
    UXN_TABLE, VALID, descriptor_fault,
};
use crate::fault::{FaultReason, Stage};
use crate::format::{Format, INDEX_BITS};
use crate::perm::Perm;

/// A stage-1 configuration: the TCR_ELx (or SMMU CD) fields and PE state that change a walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArmS1 {
    /// T0SZ or T1SZ: the input size is 64 − `tsz` bits; 16 to 39 with the 4 KiB granule
    /// (other values fault every walk, one of the Arm ARM's permitted choices).
    pub tsz: u8,
    /// The walked range: `false` for TTBR0 (input bits above the size all 0), `true` for
    /// TTBR1 (all 1).
    pub upper: bool,
    /// The PA size in bits ([`super::pa_size_bits`] of TCR.IPS; at most 48 here).
    pub pa_bits: u8,
    /// TCR.HA: hardware sets AF instead of an Access flag fault.
    pub ha: bool,
    /// TCR.HD: a write to a DBM = 1 page clears its AP\[2\] instead of a Permission fault.
    /// Has no effect without `ha`.
    pub hd: bool,
    /// TCR.HPD: table descriptors' APTable, UXNTable and PXNTable are ignored.
    pub hpd: bool,
    /// PSTATE.PAN: privileged data accesses to EL0-accessible memory fault.
    pub pan: bool,
    /// SCTLR.WXN: memory writable at an EL is execute-never at that EL.
    pub wxn: bool,
    /// The builder sets nG in the leaves it writes (Linux does for all user mappings).
    pub non_global: bool,
    /// Access flag faults disabled: AF = 0 is used as if it were 1 (an SMMU's CD.AFFD,
    /// IHI 0070 §5.4; a CPU has no such control).
    pub affd: bool,
}

impl Default for ArmS1 {
    /// An Arm64 Linux process: 48-bit VA in the TTBR0 range, 48-bit PA, hardware AF and dirty
    /// state, nG leaves.
    fn default() -> Self {
        ArmS1 {
            tsz: 16,
            upper: false,
            pa_bits: 48,
            ha: true,
            hd: true,
            hpd: false,
            pan: false,
            wxn: false,
            non_global: true,
            affd: false,
        }
    }
}

impl ArmS1 {
    /// A configuration walking `va_bits`-bit inputs in the TTBR0 range, with hardware AF and
    /// dirty state off (every other field as [`ArmS1::default`]).
    pub fn with_va_bits(va_bits: u8) -> ArmS1 {
        ArmS1 {
            tsz: 64u8.saturating_sub(va_bits),
            ha: false,
            hd: false,
            ..ArmS1::default()
        }
    }

    /// The input size in bits, if TxSZ is one this granule allows and the PA size is at least
    /// [`MIN_PA_BITS`](super::MIN_PA_BITS) (otherwise every walk faults).
    #[inline]
    pub fn input_bits(&self) -> Option<u32> {
        (matches!(self.tsz, 16..=39) && self.pa_bits >= super::MIN_PA_BITS)
            .then(|| 64 - u32::from(self.tsz))
    }

    #[inline(always)]
    fn hd_on(&self) -> bool {
        self.ha && self.hd
    }
}

impl Format for ArmS1 {
    /// AF is in blocks and pages only (no FEAT_HAFT).
    const ACCESSED_IN_TABLES: bool = false;
    /// Table descriptors have rights of their own (stage 2: none, all rights pass).
    const TABLE_RIGHTS: bool = true;
    const STAGE: Stage = Stage::First;

    /// 4 − the start level, which is 4 − ⌈(input size − 12) / 9⌉ (D8, translation table
    /// walk: the start level is set by the input size).
    #[inline]
    fn levels(&self) -> u8 {
        match self.input_bits() {
            Some(bits) => ((bits - 4) / INDEX_BITS) as u8,
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

    /// Inside the TTBR0 or TTBR1 range of the input size (no TBI).
    #[inline]
    fn input_ok(&self, addr: u64) -> bool {
        let Some(bits) = self.input_bits() else {
            return false;
        };
        let high = addr >> bits;
        if self.upper {
            high == u64::MAX >> bits
        } else {
            high == 0
        }
    }

    #[inline]
    fn canonical(&self, addr: u64) -> u64 {
        match (self.upper, self.input_bits()) {
            (true, Some(bits)) => addr | !((1u64 << bits) - 1),
            _ => addr,
        }
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
        let mut p = Perm::READ;
        if entry & AP2 == 0 || (self.hd_on() && entry & DBM != 0) {
            p |= Perm::WRITE;
        }
        if entry & AP1 != 0 {
            p |= Perm::USER;
        }
        if entry & UXN == 0 {
            p |= Perm::EXEC;
        }
        if entry & PXN == 0 {
            p |= Perm::PRIV_EXEC;
        }
        p
    }

    /// Hierarchical controls (D8, hierarchical permissions): APTable\[0\] takes EL0 access
    /// away, APTable\[1\] write access, UXNTable and PXNTable execution; nothing with HPD.
    #[inline]
    fn table_rights(&self, entry: u64) -> Perm {
        let mut p = Perm::ANY;
        if self.hpd {
            return p;
        }
        if entry & AP_TABLE_NO_EL0 != 0 {
            p.remove(Perm::USER);
        }
        if entry & AP_TABLE_RO != 0 {
            p.remove(Perm::WRITE);
        }
        if entry & UXN_TABLE != 0 {
            p.remove(Perm::EXEC);
        }
        if entry & PXN_TABLE != 0 {
            p.remove(Perm::PRIV_EXEC);
        }
        p
    }

    /// The direct permission model of D8 (memory access control), over the combined rights:
    /// EL0 reads need AP\[1\], EL0 writes AP\[1\] and write; EL1 reads are always allowed and
    /// writes need write, both unless PAN and EL0 access; EL0 fetches need UXN = 0, EL1
    /// fetches PXN = 0 and the memory not writable at EL0; WXN makes what the accessing EL
    /// may write execute-never. A fetch needs no read permission.
    #[inline]
    fn permits(&self, rights: Perm, access: Access) -> bool {
        let user = rights.contains(Perm::USER);
        let write = rights.contains(Perm::WRITE);
        if access.is_user() {
            let uw = user && write;
            if access.is_exec() {
                rights.contains(Perm::EXEC) && !(self.wxn && uw)
            } else {
                user && (!access.is_write() || uw)
            }
        } else {
            let pan = self.pan && user;
            let pw = write && !pan;
            if access.is_exec() {
                rights.contains(Perm::PRIV_EXEC) && !(user && write) && !(self.wxn && pw)
            } else {
                !pan && (!access.is_write() || pw)
            }
        }
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
        None
    }

    #[inline(always)]
    fn dirty_clear_bits(&self) -> u64 {
        if self.hd_on() { AP2 } else { 0 }
    }

    /// AF, and AP\[2\] of a DBM leaf when hardware dirty state is on.
    fn hardware_bits(&self, entry: u64) -> u64 {
        let mut bits = if self.ha { AF } else { 0 };
        if self.hd_on() && entry & DBM != 0 {
            bits |= AP2;
        }
        bits
    }

    fn tracks_dirty(&self) -> bool {
        self.hd_on()
    }

    /// Writable-dirty: DBM = 1 with AP\[2\] = 0.
    fn is_dirty(&self, leaf: u64) -> bool {
        leaf & (DBM | AP2) == DBM
    }

    /// Writable-clean: AP\[2\] set again on a DBM leaf.
    fn cleaned(&self, leaf: u64) -> u64 {
        if leaf & DBM != 0 { leaf | AP2 } else { leaf }
    }

    fn supports(&self, size: PageSize) -> bool {
        size.leaf_level() <= self.levels()
    }

    fn encode_table(&self, table: u64) -> u64 {
        (table & OA) | TABLE | VALID
    }

    /// A block or page with AF set (so that it is usable without hardware AF updates),
    /// Inner Shareable, AttrIndx 0, nG as configured.
    fn encode_leaf(&self, page: u64, size: PageSize, perm: Perm) -> u64 {
        let kind = if size == PageSize::Size4K {
            TABLE | VALID
        } else {
            VALID
        };
        let ng = if self.non_global { NG } else { 0 };
        self.set_rights(
            (page & OA & !size.offset_mask()) | kind | AF | SH_INNER | ng,
            perm,
        )
    }

    /// AP\[2:1\], UXN, PXN (and DBM on writable leaves when hardware dirty state is on, as
    /// Linux's io-pgtable does: a new writable leaf is writable-dirty).
    fn set_rights(&self, entry: u64, perm: Perm) -> u64 {
        let mut e = entry & !(AP1 | AP2 | UXN | PXN | DBM);
        if !perm.contains(Perm::WRITE) {
            e |= AP2;
        } else if self.hd_on() {
            e |= DBM;
        }
        if perm.contains(Perm::USER) {
            e |= AP1;
        }
        if !perm.contains(Perm::EXEC) {
            e |= UXN;
        }
        if !perm.contains(Perm::PRIV_EXEC) {
            e |= PXN;
        }
        e
    }
}

#[cfg(test)]
mod tests;
