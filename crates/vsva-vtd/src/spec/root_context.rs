//! Scalable-mode root and context entries (VT-d 4.1 §9.2 "Scalable-Mode Root Entry", §9.4
//! "Scalable-Mode Context Entry").
//!
//! The root table has 256 entries of 128 bits, one per bus. In scalable mode each root entry
//! has two halves: the lower (LP, LCTP) for devfn 0..=127 and the upper (UP, UCTP) for devfn
//! 128..=255; each points to a table of 128 context entries of 256 bits, indexed by
//! `devfn & 0x7f`.

use bitfield_struct::bitfield;

/// Bytes per root entry.
pub const ROOT_ENTRY_BYTES: u64 = 16;
/// Bytes per scalable-mode context entry.
pub const CONTEXT_ENTRY_BYTES: u64 = 32;

/// Bits 51:`haw` (the address bits at or above the host address width), reserved in every
/// pointer field.
pub fn above_haw(haw: u8) -> u64 {
    vsva_pgtable::format::bits_above(haw) | 0xfff0_0000_0000_0000
}

/// One half of a scalable-mode root entry (§9.2).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct RootHalf {
    /// Present.
    pub p: bool,
    #[bits(11)]
    __: u16,
    /// Context-table pointer, bits 63:12.
    #[bits(52)]
    pub ctp: u64,
}

impl RootHalf {
    /// Bits 11:1, reserved.
    pub const RESERVED: u64 = 0xffe;

    /// A present half pointing at `table`.
    pub fn pointing_to(table: u64) -> RootHalf {
        RootHalf::new().with_p(true).with_ctp(table >> 12)
    }

    /// The context table address.
    pub fn table(&self) -> u64 {
        self.ctp() << 12
    }

    /// Does the (present) half set a reserved bit, given the host address width?
    pub fn has_reserved_bits(&self, haw: u8) -> bool {
        self.into_bits() & (Self::RESERVED | above_haw(haw)) != 0
    }
}

/// The root-entry half that serves `devfn`, and its offset in the root table for `bus`.
pub fn root_half_offset(bus: u8, devfn: u8) -> u64 {
    bus as u64 * ROOT_ENTRY_BYTES + if devfn >= 128 { 8 } else { 0 }
}

/// Offset of `devfn`'s entry in its context table.
pub fn context_offset(devfn: u8) -> u64 {
    (devfn as u64 & 0x7f) * CONTEXT_ENTRY_BYTES
}

/// Qword 0 of a scalable-mode context entry (§9.4).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct ContextLo {
    /// Present.
    pub p: bool,
    /// Fault processing disable (meaningful even when not present).
    pub fpd: bool,
    /// Device-TLB enable (ATS translation and translated requests allowed).
    pub dte: bool,
    /// PASID enable (requests with PASID allowed).
    pub paside: bool,
    /// Page request enable.
    pub pre: bool,
    #[bits(4)]
    __: u8,
    /// PASID directory size: 2^(PDTS + 7) entries.
    #[bits(3)]
    pub pdts: u8,
    /// PASID directory pointer, bits 63:12.
    #[bits(52)]
    pub pasiddirptr: u64,
}

/// Qword 1 of a scalable-mode context entry (§9.4).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct ContextHi {
    /// PASID used for requests without PASID (when ECAP.RPS).
    #[bits(20)]
    pub rid_pasid: u32,
    /// Privilege implied for requests without PASID (when ECAP.RPRIVS).
    pub rid_priv: bool,
    #[bits(43)]
    __: u64,
}

/// A scalable-mode context entry: four qwords.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ContextEntry {
    /// Qword 0.
    pub lo: ContextLo,
    /// Qword 1.
    pub hi: ContextHi,
    /// Qwords 2 and 3: reserved.
    pub reserved: [u64; 2],
}

/// Hardware features that turn context-entry fields into reserved bits when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextFeatures {
    /// Host address width.
    pub haw: u8,
    /// ECAP.DT: DTE is a field.
    pub device_tlb: bool,
    /// ECAP.PRS: PRE is a field.
    pub page_requests: bool,
    /// ECAP.RPRIVS: RID_PRIV is a field.
    pub rid_priv: bool,
    /// ECAP.RPS: RID_PASID is a field.
    pub rid_pasid: bool,
}

impl ContextEntry {
    /// Bits 8:5 of qword 0, reserved.
    pub const LO_RESERVED: u64 = 0x1e0;
    /// Bits 127:85 (qword 1 bits 63:21), reserved.
    pub const HI_RESERVED: u64 = 0xffff_ffff_ffe0_0000;

    /// Decodes four qwords.
    pub fn from_qwords(q: [u64; 4]) -> ContextEntry {
        ContextEntry {
            lo: ContextLo::from_bits(q[0]),
            hi: ContextHi::from_bits(q[1]),
            reserved: [q[2], q[3]],
        }
    }

    /// Encodes four qwords.
    pub fn to_qwords(&self) -> [u64; 4] {
        [
            self.lo.into_bits(),
            self.hi.into_bits(),
            self.reserved[0],
            self.reserved[1],
        ]
    }

    /// The PASID directory's address.
    pub fn pasid_dir(&self) -> u64 {
        self.lo.pasiddirptr() << 12
    }

    /// Number of PASID-directory entries (2^(PDTS+7)); PASIDs below 64 times that are valid.
    pub fn pasid_dir_entries(&self) -> u64 {
        1 << (self.lo.pdts() as u32 + 7)
    }

    /// Does the (present) entry set a bit that is reserved for this hardware (SCT.3)?
    pub fn has_reserved_bits(&self, f: &ContextFeatures) -> bool {
        let mut lo_rsvd = Self::LO_RESERVED | above_haw(f.haw);
        if !f.device_tlb {
            lo_rsvd |= 1 << 2;
        }
        if !f.page_requests {
            lo_rsvd |= 1 << 4;
        }
        let mut hi_rsvd = Self::HI_RESERVED;
        if !f.rid_priv {
            hi_rsvd |= 1 << 20;
        }
        if !f.rid_pasid {
            hi_rsvd |= 0xf_ffff;
        }
        self.lo.into_bits() & lo_rsvd != 0
            || self.hi.into_bits() & hi_rsvd != 0
            || self.reserved != [0, 0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: ContextFeatures = ContextFeatures {
        haw: 46,
        device_tlb: true,
        page_requests: true,
        rid_priv: true,
        rid_pasid: true,
    };

    #[test]
    fn root_halves() {
        assert_eq!(root_half_offset(0, 0), 0);
        assert_eq!(root_half_offset(0, 127), 0);
        assert_eq!(root_half_offset(0, 128), 8);
        assert_eq!(root_half_offset(3, 200), 3 * 16 + 8);
        assert_eq!(context_offset(127), 4064);
        assert_eq!(context_offset(128), 0);
        let h = RootHalf::pointing_to(0x7000);
        assert_eq!(h.into_bits(), 0x7001);
        assert_eq!(h.table(), 0x7000);
        for bit in 1..12 {
            assert!(
                RootHalf::from_bits(0x7001 | 1 << bit).has_reserved_bits(46),
                "bit {bit}"
            );
        }
        assert!(RootHalf::from_bits(0x7001 | 1 << 46).has_reserved_bits(46));
        assert!(!RootHalf::from_bits(0x7001 | 1 << 45).has_reserved_bits(46));
    }

    #[test]
    fn context_entry_fields() {
        // Linux: context_set_sm_dte sets lo bit 2, context_set_sm_pre bit 4, PASIDE bit 3,
        // PDTS at bits 11:9, rid2pasid in hi bits 19:0.
        let c = ContextEntry {
            lo: ContextLo::new()
                .with_p(true)
                .with_dte(true)
                .with_paside(true)
                .with_pre(true)
                .with_pdts(7)
                .with_pasiddirptr(0x12345),
            hi: ContextHi::new().with_rid_pasid(0xabcde),
            reserved: [0, 0],
        };
        let q = c.to_qwords();
        assert_eq!(q[0], 0x1234_5000 | 7 << 9 | 1 << 4 | 1 << 3 | 1 << 2 | 1);
        assert_eq!(q[1], 0xabcde);
        assert_eq!(ContextEntry::from_qwords(q), c);
        assert_eq!(c.pasid_dir(), 0x1234_5000);
        assert_eq!(c.pasid_dir_entries() * 64, 1 << 20);
        assert!(!c.has_reserved_bits(&ALL));
    }

    #[test]
    fn every_reserved_context_bit_is_caught() {
        let base = ContextEntry::from_qwords([0x1234_5001, 0, 0, 0]);
        for bit in 0..256u32 {
            let mut q = base.to_qwords();
            q[(bit / 64) as usize] |= 1 << (bit % 64);
            let e = ContextEntry::from_qwords(q);
            let reserved = (5..=8).contains(&bit) || (46..64).contains(&bit) || bit >= 85;
            assert_eq!(e.has_reserved_bits(&ALL), reserved, "bit {bit}");
        }
        let none = ContextFeatures {
            device_tlb: false,
            page_requests: false,
            rid_priv: false,
            ..ALL
        };
        for bit in [2u32, 4] {
            let e = ContextEntry::from_qwords([0x1234_5001 | 1 << bit, 0, 0, 0]);
            assert!(e.has_reserved_bits(&none), "bit {bit} without the feature");
        }
        assert!(ContextEntry::from_qwords([0x1001, 1 << 20, 0, 0]).has_reserved_bits(&none));
        // §9.4: RID_PASID (bits 83:64) is reserved without ECAP.RPS.
        let no_rps = ContextFeatures {
            rid_pasid: false,
            ..ALL
        };
        for bit in 0..20 {
            let e = ContextEntry::from_qwords([0x1001, 1 << bit, 0, 0]);
            assert!(
                e.has_reserved_bits(&no_rps),
                "RID_PASID bit {bit} without RPS"
            );
            assert!(!e.has_reserved_bits(&ALL), "RID_PASID bit {bit} with RPS");
        }
    }
}
