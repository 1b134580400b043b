//! VT-d second-stage paging entries (VT-d 4.1 §3.7 "Second-Stage Translation", §9.8
//! "Second-Stage Paging Entries").
//!
//! | bit | leaf (SS-PTE; SS-PDE/PDPE with PS=1) | non-leaf |
//! |---|---|---|
//! | 0 | R: read | R (restricts the subtree) |
//! | 1 | W: write | W |
//! | 2 | X: execute (ignored unless ECAP.ERS and the PASID entry's SSEE) | X |
//! | 5:3 | EMT (not modelled) | ignored |
//! | 6 | IPAT (not modelled) | ignored |
//! | 7 | PS in PDPE/PDE; ignored in a PTE | reserved in PML4E/PML5E |
//! | 8 | A (set when SSADE=1) | A |
//! | 9 | D (set on writes when SSADE=1) | ignored |
//! | 10 | ignored | ignored |
//! | 11 | SNP (scalable mode) | reserved |
//! | HAW-1:12 | page frame (1 GiB: HAW-1:30, 2 MiB: HAW-1:21) | next table |
//! | 51:HAW | reserved | reserved |
//! | 61:52, 63 | ignored | ignored |
//! | 62 | reserved (Transient Mapping before rev 3.2) | reserved |
//!
//! Second-stage entries have no present bit: an entry is present when R or W is set (Linux
//! `dma_pte_present`). There is no PAT bit, so bits 29:12 (1 GiB) and 20:12 (2 MiB) of large
//! leaves are reserved. Input addresses must be below 2^AW (AW = 39, 48 or 57 for 3, 4 or 5
//! levels, further limited by MGAW).

use vsva_mem::{Access, PageSize};

use crate::fault::Stage;
use crate::format::{ADDR_MASK, Format, PS, bits_above};
use crate::perm::Perm;

/// Read.
pub const R: u64 = 1 << 0;
/// Write.
pub const W: u64 = 1 << 1;
/// Execute.
pub const X: u64 = 1 << 2;
/// Accessed.
pub const A: u64 = 1 << 8;
/// Dirty.
pub const D: u64 = 1 << 9;
/// Snoop (leaves).
pub const SNP: u64 = 1 << 11;
/// Reserved since rev 3.2 (was Transient Mapping).
pub const TM: u64 = 1 << 62;

/// A second-stage configuration: the widths and features that CAP/ECAP advertise and the
/// context or PASID entry selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VtdSecondStage {
    /// 3, 4 or 5 levels (AW = 1, 2, 3; SAGAW bits 1, 2, 3).
    pub levels: u8,
    /// Input address width: min(MGAW, the table's AW). Addresses at or above 2^width fault.
    pub input_width: u8,
    /// Host address width: bits 51:HAW of entries are reserved.
    pub haw: u8,
    /// CAP.SLLPS bit 0: 2 MiB leaves.
    pub large_2m: bool,
    /// CAP.SLLPS bit 1: 1 GiB leaves.
    pub large_1g: bool,
    /// ECAP.ERS and PASID-entry SSEE: the X bit is checked for execute requests.
    pub exec: bool,
    /// PASID-entry SSADE: hardware sets A and D.
    pub ad: bool,
}

impl VtdSecondStage {
    /// A 4-level (48-bit) second stage with 2 MiB and 1 GiB pages over a 46-bit host.
    pub fn four_level() -> Self {
        VtdSecondStage {
            levels: 4,
            input_width: 48,
            haw: 46,
            large_2m: true,
            large_1g: true,
            exec: false,
            ad: false,
        }
    }

    /// The input width a table of `levels` levels covers: 39, 48 or 57 bits.
    pub const fn width_of_levels(levels: u8) -> u8 {
        let l = if levels < 2 {
            2
        } else if levels > 5 {
            5
        } else {
            levels
        };
        30 + 9 * (l - 2)
    }

    #[inline]
    fn high_reserved(&self) -> u64 {
        bits_above(self.haw) | TM
    }
}

impl Format for VtdSecondStage {
    const STAGE: Stage = Stage::Second;

    #[inline]
    fn levels(&self) -> u8 {
        self.levels
    }

    #[inline]
    fn input_ok(&self, addr: u64) -> bool {
        let width = self
            .input_width
            .min(Self::width_of_levels(self.levels))
            .min(63);
        addr >> width == 0
    }

    #[inline]
    fn is_present(&self, entry: u64) -> bool {
        entry & (R | W) != 0
    }

    #[inline]
    fn has_reserved_bits(&self, entry: u64, level: u8) -> bool {
        if entry & self.high_reserved() != 0 {
            return true;
        }
        let ps = entry & PS != 0;
        match level {
            4 | 5 => entry & (PS | SNP) != 0,
            3 if ps => !self.large_1g || entry & 0x3fff_f000 != 0,
            2 if ps => !self.large_2m || entry & 0x1f_f000 != 0,
            2 | 3 => entry & SNP != 0,
            _ => false,
        }
    }

    #[inline]
    fn rights(&self, entry: u64) -> Perm {
        let mut p = Perm::USER;
        if entry & R != 0 {
            p |= Perm::READ;
        }
        if entry & W != 0 {
            p |= Perm::WRITE;
        }
        if !self.exec || entry & X != 0 {
            p |= Perm::EXEC;
        }
        p
    }

    /// A read (or an execute request, which reads) needs R, a write needs W, an execute
    /// request needs X when execute control is on (VT-d 4.1 §3.7.1). Second stage has no
    /// privilege levels.
    #[inline]
    fn permits(&self, rights: Perm, access: Access) -> bool {
        let read = access.contains(Access::READ) || access.is_exec();
        (!read || rights.contains(Perm::READ))
            && (!access.is_write() || rights.contains(Perm::WRITE))
            && (!access.is_exec() || rights.contains(Perm::EXEC))
    }

    #[inline]
    fn accessed_bit(&self) -> Option<u64> {
        self.ad.then_some(A)
    }

    #[inline]
    fn dirty_bit(&self) -> Option<u64> {
        self.ad.then_some(D)
    }

    /// A second-stage entry with neither R nor W is not present (§9.8), so it cannot hold
    /// execute-only or no-access rights.
    fn can_encode(&self, perm: Perm) -> bool {
        perm.intersects(Perm::READ | Perm::WRITE)
    }

    fn supports(&self, size: PageSize) -> bool {
        match size {
            PageSize::Size4K => true,
            PageSize::Size2M => self.large_2m,
            PageSize::Size1G => self.large_1g,
        }
    }

    fn encode_table(&self, table: u64) -> u64 {
        (table & ADDR_MASK) | R | W | X
    }

    fn encode_leaf(&self, page: u64, size: PageSize, perm: Perm) -> u64 {
        let ps = if size == PageSize::Size4K { 0 } else { PS };
        self.set_rights((page & ADDR_MASK & !size.offset_mask()) | ps, perm)
    }

    fn set_rights(&self, entry: u64, perm: Perm) -> u64 {
        let mut e = entry & !(R | W | X);
        if perm.contains(Perm::READ) {
            e |= R;
        }
        if perm.contains(Perm::WRITE) {
            e |= W;
        }
        if perm.contains(Perm::EXEC) {
            e |= X;
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ss() -> VtdSecondStage {
        VtdSecondStage::four_level()
    }

    #[test]
    fn encode_leaf_entries() {
        let f = ss();
        // 4 KiB read/write page at 0x1234_5000: R|W = 0x3.
        assert_eq!(
            f.encode_leaf(0x1234_5000, PageSize::Size4K, Perm::RW),
            0x1234_5003
        );
        // 2 MiB read-only page at 0x4020_0000: R|PS = 0x81.
        assert_eq!(
            f.encode_leaf(0x4020_0000, PageSize::Size2M, Perm::READ),
            0x4020_0081
        );
        // 1 GiB RWX page at 0xc000_0000: R|W|X|PS = 0x87.
        assert_eq!(
            f.encode_leaf(0xc000_0000, PageSize::Size1G, Perm::RW | Perm::EXEC),
            0xc000_0087
        );
        assert_eq!(f.encode_table(0x7000), 0x7007);
    }

    #[test]
    fn decode_entries() {
        let f = ss();
        assert!(!f.is_present(X), "X alone does not make an entry present");
        assert!(f.is_present(R) && f.is_present(W));
        assert_eq!(f.page_addr(0x4020_0081, PageSize::Size2M), 0x4020_0000);
        assert_eq!(f.table_addr(0x7007 | A), 0x7000);
        assert!(f.is_leaf(0x81, 2) && f.is_leaf(0x81, 3) && !f.is_leaf(0x1, 2));
        assert!(f.is_leaf(0x1, 1) && f.is_leaf(0x81, 1));
        assert_eq!(f.rights(R), Perm::READ | Perm::USER | Perm::EXEC);
        let fx = VtdSecondStage { exec: true, ..f };
        assert_eq!(fx.rights(R), Perm::READ | Perm::USER);
        assert_eq!(fx.rights(R | X), Perm::READ | Perm::USER | Perm::EXEC);
    }

    #[test]
    fn reserved_bits_per_entry_type() {
        let f = ss(); // HAW 46
        // bits 51:46 reserved everywhere, bit 45 is an address bit.
        assert!(f.has_reserved_bits(R | 1 << 46, 1));
        assert!(f.has_reserved_bits(R | 1 << 51, 4));
        assert!(!f.has_reserved_bits(R | 1 << 45, 1));
        // bit 62 reserved, bits 61:52 and 63 ignored.
        assert!(f.has_reserved_bits(R | TM, 1));
        assert!(!f.has_reserved_bits(R | 1 << 52 | 1 << 61 | 1 << 63, 1));
        // PML4E: PS and bit 11 reserved.
        assert!(f.has_reserved_bits(R | PS, 4));
        assert!(f.has_reserved_bits(R | SNP, 4));
        // Non-leaf PDPE/PDE: bit 11 reserved; leaf PTE: SNP allowed.
        assert!(f.has_reserved_bits(R | SNP, 3));
        assert!(f.has_reserved_bits(R | SNP, 2));
        assert!(!f.has_reserved_bits(R | SNP, 1));
        // 1 GiB leaf: bits 29:12 reserved (no PAT bit); 2 MiB leaf: 20:12.
        assert!(f.has_reserved_bits(R | PS | 1 << 12, 3));
        assert!(f.has_reserved_bits(R | PS | 1 << 29, 3));
        assert!(!f.has_reserved_bits(R | PS | 1 << 30, 3));
        assert!(f.has_reserved_bits(R | PS | 1 << 20, 2));
        assert!(!f.has_reserved_bits(R | PS | 1 << 21 | SNP, 2));
        // A/D/ignored bits are not reserved.
        assert!(!f.has_reserved_bits(R | A | D | 1 << 10 | 0x78, 1));
        // Superpages not advertised make PS reserved.
        let small = VtdSecondStage {
            large_1g: false,
            large_2m: false,
            ..f
        };
        assert!(small.has_reserved_bits(R | PS | 1 << 30, 3));
        assert!(small.has_reserved_bits(R | PS | 1 << 21, 2));
    }

    #[test]
    fn input_width() {
        let f = ss();
        assert!(f.input_ok((1 << 48) - 1));
        assert!(!f.input_ok(1 << 48));
        let three = VtdSecondStage {
            levels: 3,
            input_width: 48,
            ..f
        };
        assert!(three.input_ok((1 << 39) - 1));
        assert!(!three.input_ok(1 << 39), "AW of a 3-level table is 39 bits");
        let mgaw = VtdSecondStage {
            input_width: 40,
            ..f
        };
        assert!(!mgaw.input_ok(1 << 40), "MGAW limits the input");
        assert_eq!(VtdSecondStage::width_of_levels(5), 57);
    }

    #[test]
    fn permissions() {
        let f = VtdSecondStage { exec: true, ..ss() };
        let ro = f.rights(R);
        assert!(f.permits(ro, Access::READ));
        assert!(!f.permits(ro, Access::WRITE));
        assert!(!f.permits(ro, Access::READ | Access::EXEC));
        let wo = f.rights(W);
        assert!(f.permits(wo, Access::WRITE));
        assert!(!f.permits(wo, Access::READ));
        assert!(f.permits(f.rights(R | X), Access::READ | Access::EXEC | Access::PRIV));
    }
}
