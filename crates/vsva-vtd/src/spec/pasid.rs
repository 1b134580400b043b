//! The PASID directory and scalable-mode PASID-table entries (VT-d 4.1 §9.5 "Scalable-Mode
//! PASID Directory Entry", §9.6 "Scalable-Mode PASID Table Entry").
//!
//! A PASID is split in two: bits 19:6 index the directory (8-byte entries), bits 5:0 the
//! PASID table it points to (64 entries of 512 bits = one 4 KiB page).

use bitfield_struct::bitfield;

use super::root_context::above_haw;

/// Bytes per PASID-directory entry.
pub const DIR_ENTRY_BYTES: u64 = 8;
/// Bytes per PASID-table entry.
pub const PASID_ENTRY_BYTES: u64 = 64;

/// The directory index of a PASID (bits 19:6).
pub const fn dir_index(pasid: u32) -> u64 {
    ((pasid >> 6) & 0x3fff) as u64
}

/// The table index of a PASID (bits 5:0).
pub const fn table_index(pasid: u32) -> u64 {
    (pasid & 0x3f) as u64
}

/// A PASID-directory entry (§9.5).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct PasidDirEntry {
    /// Present.
    pub p: bool,
    /// Fault processing disable (meaningful even when not present).
    pub fpd: bool,
    #[bits(10)]
    __: u16,
    /// PASID-table pointer, bits 63:12.
    #[bits(52)]
    pub smptblptr: u64,
}

impl PasidDirEntry {
    /// Bits 11:2, reserved.
    pub const RESERVED: u64 = 0xffc;

    /// A present entry pointing at `table`.
    pub fn pointing_to(table: u64) -> PasidDirEntry {
        PasidDirEntry::new()
            .with_p(true)
            .with_smptblptr(table >> 12)
    }

    /// The PASID table's address.
    pub fn table(&self) -> u64 {
        self.smptblptr() << 12
    }

    /// Does the (present) entry set a reserved bit (SPD.3)?
    pub fn has_reserved_bits(&self, haw: u8) -> bool {
        self.into_bits() & (Self::RESERVED | above_haw(haw)) != 0
    }
}

/// PASID-granular translation type (§9.6, PGTT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pgtt {
    /// 001b: first-stage only.
    FirstStage,
    /// 010b: second-stage only.
    SecondStage,
    /// 011b: nested (first stage over second stage).
    Nested,
    /// 100b: pass-through.
    PassThrough,
}

impl Pgtt {
    /// Decodes the 3-bit field; reserved encodings give `None`.
    pub fn from_field(v: u8) -> Option<Pgtt> {
        match v {
            1 => Some(Pgtt::FirstStage),
            2 => Some(Pgtt::SecondStage),
            3 => Some(Pgtt::Nested),
            4 => Some(Pgtt::PassThrough),
            _ => None,
        }
    }

    /// The 3-bit encoding.
    pub fn field(self) -> u8 {
        match self {
            Pgtt::FirstStage => 1,
            Pgtt::SecondStage => 2,
            Pgtt::Nested => 3,
            Pgtt::PassThrough => 4,
        }
    }
}

/// Qword 0 of a PASID-table entry.
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct PasidQ0 {
    /// Present.
    pub p: bool,
    /// Fault processing disable.
    pub fpd: bool,
    /// Second-stage address width: 1 = 39-bit (3-level), 2 = 48-bit, 3 = 57-bit.
    #[bits(3)]
    pub aw: u8,
    /// Second-stage execute enable (execute-request hardware only; reserved otherwise).
    pub ssee: bool,
    /// PASID-granular translation type.
    #[bits(3)]
    pub pgtt: u8,
    /// Second-stage Accessed/Dirty enable.
    pub ssade: bool,
    #[bits(2)]
    __: u8,
    /// Second-stage page-table pointer, bits 63:12.
    #[bits(52)]
    pub ssptptr: u64,
}

/// Qword 1 of a PASID-table entry.
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct PasidQ1 {
    /// Domain identifier: tags IOTLB and paging-structure cache entries.
    pub did: u16,
    #[bits(7)]
    __: u8,
    /// Page-walk snoop.
    pub pwsnp: bool,
    /// Page snoop.
    pub pgsnp: bool,
    /// Cache disable (memory-type hardware only).
    pub cd: bool,
    /// Extended memory type enable (memory-type hardware only).
    pub emte: bool,
    #[bits(5)]
    __: u8,
    /// Page attribute table (memory-type hardware only).
    pub pat: u32,
}

/// Qword 2 of a PASID-table entry.
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct PasidQ2 {
    /// Supervisor request enable.
    pub sre: bool,
    /// Execute request enable (execute-request hardware only; reserved otherwise).
    pub ere: bool,
    /// First-stage paging mode: 0 = 4-level, 1 = 5-level.
    #[bits(2)]
    pub fspm: u8,
    /// Write-protect enable: supervisor writes honour first-stage R/W.
    pub wpe: bool,
    /// Bits 134:133 (NXE and SMEP in rev 3): ignored.
    #[bits(2)]
    pub ignored: u8,
    /// Extended-accessed flag enable.
    pub eafe: bool,
    #[bits(4)]
    __: u8,
    /// First-stage page-table pointer, bits 191:140.
    #[bits(52)]
    pub fsptptr: u64,
}

/// A scalable-mode PASID-table entry: eight qwords.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PasidEntry {
    /// Qword 0.
    pub q0: PasidQ0,
    /// Qword 1.
    pub q1: PasidQ1,
    /// Qword 2.
    pub q2: PasidQ2,
    /// Qwords 3..=7: reserved.
    pub rest: [u64; 5],
}

/// Hardware features that turn PASID-entry fields into reserved bits when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasidFeatures {
    /// Host address width.
    pub haw: u8,
    /// ECAP.ERS: SSEE and ERE are fields.
    pub execute_requests: bool,
    /// ECAP.SC: PGSNP is a field.
    pub snoop_control: bool,
    /// ECAP.MTS: CD, EMTE and PAT are fields.
    pub memory_types: bool,
    /// ECAP.SSTS: the second-stage fields (AW, SSEE, SSADE, SSPTPTR) exist.
    pub second_stage: bool,
    /// ECAP.SSADS: SSADE is a field.
    pub ss_ad: bool,
    /// ECAP.FSTS: the first-stage fields (FSPM, WPE, EAFE, FSPTPTR) exist.
    pub first_stage: bool,
    /// ECAP.EAFS: EAFE is a field.
    pub eafs: bool,
    /// ECAP.SRS: SRE is a field.
    pub supervisor_requests: bool,
}

impl PasidEntry {
    /// Reserved bits of qword 0 always: 11:10.
    pub const Q0_RESERVED: u64 = 0xc00;
    /// Reserved bits of qword 1 always: 86:80, 95:91.
    pub const Q1_RESERVED: u64 = 0xf87f_0000;
    /// Reserved bits of qword 2 always: 139:136.
    pub const Q2_RESERVED: u64 = 0xf00;
    /// The second-stage fields of qword 0: AW (4:2), SSEE (5), SSADE (9), SSPTPTR (63:12).
    pub const Q0_SECOND_STAGE: u64 = 0xffff_ffff_ffff_f000 | 1 << 9 | 1 << 5 | 0x1c;
    /// The first-stage fields of qword 2: FSPM (131:130), WPE (132), EAFE (135), FSPTPTR
    /// (191:140).
    pub const Q2_FIRST_STAGE: u64 = 0xffff_ffff_ffff_f000 | 1 << 7 | 1 << 4 | 0xc;

    /// Decodes eight qwords.
    pub fn from_qwords(q: [u64; 8]) -> PasidEntry {
        PasidEntry {
            q0: PasidQ0::from_bits(q[0]),
            q1: PasidQ1::from_bits(q[1]),
            q2: PasidQ2::from_bits(q[2]),
            rest: [q[3], q[4], q[5], q[6], q[7]],
        }
    }

    /// Encodes eight qwords.
    pub fn to_qwords(&self) -> [u64; 8] {
        let r = self.rest;
        [
            self.q0.into_bits(),
            self.q1.into_bits(),
            self.q2.into_bits(),
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
        ]
    }

    /// The translation type, if the encoding is not reserved.
    pub fn pgtt(&self) -> Option<Pgtt> {
        Pgtt::from_field(self.q0.pgtt())
    }

    /// Second-stage root.
    pub fn ss_root(&self) -> u64 {
        self.q0.ssptptr() << 12
    }

    /// First-stage root.
    pub fn fs_root(&self) -> u64 {
        self.q2.fsptptr() << 12
    }

    /// Second-stage levels from AW (2 + AW: 3, 4 or 5).
    pub fn ss_levels(&self) -> u8 {
        2 + self.q0.aw()
    }

    /// First-stage levels from FSPM (4 or 5; reserved encodings give `None`).
    pub fn fs_levels(&self) -> Option<u8> {
        match self.q2.fspm() {
            0 => Some(4),
            1 => Some(5),
            _ => None,
        }
    }

    /// Does the (present) entry set a bit reserved for this hardware (SPT.3)?
    pub fn has_reserved_bits(&self, f: &PasidFeatures) -> bool {
        let addr = above_haw(f.haw);
        let mut q0 = Self::Q0_RESERVED | addr;
        let mut q1 = Self::Q1_RESERVED;
        let mut q2 = Self::Q2_RESERVED | addr;
        if !f.execute_requests {
            q0 |= 1 << 5;
            q2 |= 1 << 1;
        }
        if !f.snoop_control {
            q1 |= 1 << 24;
        }
        if !f.memory_types {
            q1 |= 1 << 25 | 1 << 26 | 0xffff_ffff_0000_0000;
        }
        // §9.6: a field of a capability the unit does not report is reserved, whatever the
        // PGTT (so AW of a pass-through entry, ignored with SSTS, is reserved without it).
        if !f.second_stage {
            q0 |= Self::Q0_SECOND_STAGE;
        }
        if !f.ss_ad {
            q0 |= 1 << 9;
        }
        if !f.first_stage {
            q2 |= Self::Q2_FIRST_STAGE;
        }
        if !f.eafs {
            q2 |= 1 << 7;
        }
        if !f.supervisor_requests {
            q2 |= 1;
        }
        self.q0.into_bits() & q0 != 0
            || self.q1.into_bits() & q1 != 0
            || self.q2.into_bits() & q2 != 0
            || self.rest.iter().any(|&w| w != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: PasidFeatures = PasidFeatures {
        haw: 46,
        execute_requests: false,
        snoop_control: true,
        memory_types: false,
        second_stage: true,
        ss_ad: true,
        first_stage: true,
        eafs: true,
        supervisor_requests: true,
    };

    #[test]
    fn pasid_split() {
        assert_eq!(dir_index(0xfffff), 0x3fff);
        assert_eq!(table_index(0xfffff), 0x3f);
        assert_eq!(dir_index(0x40), 1);
        assert_eq!(table_index(0x41), 1);
    }

    #[test]
    fn entry_fields_sit_where_linux_writes_them() {
        // Linux pasid.h: AW bits 4:2, PGTT 8:6, SSADE bit 9, SSPTPTR 63:12, DID 79:64,
        // PWSNP 87, PGSNP 88, SRE 128, FSPM 131:130, WPE 132, EAFE 135, FSPTPTR 191:140.
        let e = PasidEntry {
            q0: PasidQ0::new()
                .with_p(true)
                .with_aw(2)
                .with_pgtt(Pgtt::Nested.field())
                .with_ssade(true)
                .with_ssptptr(0x1_2345),
            q1: PasidQ1::new()
                .with_did(0xbeef)
                .with_pwsnp(true)
                .with_pgsnp(true),
            q2: PasidQ2::new()
                .with_sre(true)
                .with_fspm(1)
                .with_wpe(true)
                .with_eafe(true)
                .with_fsptptr(0x6_7890),
            rest: [0; 5],
        };
        let q = e.to_qwords();
        assert_eq!(q[0], 0x1234_5000 | 1 << 9 | 3 << 6 | 2 << 2 | 1);
        assert_eq!(q[1], 1 << 24 | 1 << 23 | 0xbeef);
        assert_eq!(q[2], 0x6789_0000 | 1 << 7 | 1 << 4 | 1 << 2 | 1);
        assert_eq!(PasidEntry::from_qwords(q), e);
        assert_eq!(e.pgtt(), Some(Pgtt::Nested));
        assert_eq!(e.ss_levels(), 4);
        assert_eq!(e.fs_levels(), Some(5));
        assert_eq!(e.ss_root(), 0x1234_5000);
        assert_eq!(e.fs_root(), 0x6789_0000);
        assert!(!e.has_reserved_bits(&F));
        for v in [0, 5, 6, 7] {
            assert_eq!(Pgtt::from_field(v), None);
        }
    }

    #[test]
    fn every_reserved_pasid_entry_bit_is_caught() {
        let base = [0x1000 | 2 << 6 | 2 << 2 | 1, 0, 0x2000, 0, 0, 0, 0, 0];
        let reserved = |bit: u32| {
            let (w, b) = (bit / 64, bit % 64);
            match w {
                0 => b == 5 || b == 10 || b == 11 || b >= 46,
                1 => (16..=22).contains(&b) || b >= 25,
                2 => b == 1 || (8..=11).contains(&b) || b >= 46,
                _ => true,
            }
        };
        for bit in 0..512u32 {
            let mut q = base;
            q[(bit / 64) as usize] |= 1 << (bit % 64);
            let e = PasidEntry::from_qwords(q);
            assert_eq!(e.has_reserved_bits(&F), reserved(bit), "bit {bit}");
        }
    }

    #[test]
    fn directory_entry() {
        let d = PasidDirEntry::pointing_to(0x5000);
        assert_eq!(d.into_bits(), 0x5001);
        assert_eq!(d.table(), 0x5000);
        for bit in 2..12 {
            assert!(PasidDirEntry::from_bits(0x5001 | 1 << bit).has_reserved_bits(46));
        }
        assert!(
            !PasidDirEntry::from_bits(0x5003).has_reserved_bits(46),
            "FPD is a field"
        );
        assert!(PasidDirEntry::from_bits(0x5001 | 1 << 50).has_reserved_bits(46));
    }
}
