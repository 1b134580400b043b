//! Context descriptors and level-1 CD table descriptors (IHI 0070 §5.3, §5.4).
//!
//! A CD is eight 64-bit words: word 0 holds the TCR-like fields and the ASID, words 1 and 2
//! the two table bases, 3 MAIR, 4 AMAIR. Bit positions follow Linux `arm-smmu-v3.h`
//! (`CTXDESC_CD_*`); those Linux does not name (the TTB1 half, AFFD, WXN, UWXN, PAN, NSCFG,
//! HAD) are at the positions §5.4 gives them.

use bitfield_struct::bitfield;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Bytes per CD.
pub const CD_BYTES: u64 = 64;
/// Bytes per level-1 CD descriptor.
pub const L1CD_BYTES: u64 = 8;

/// CD word 0.
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct Cd0 {
    /// TTB0 input size: 64 - T0SZ bits.
    #[bits(6)]
    pub t0sz: u8,
    /// TTB0 granule: 0 4 KiB, 1 64 KiB, 2 16 KiB (TCR.TG0 encoding).
    #[bits(2)]
    pub tg0: u8,
    /// TTB0 walk inner cacheability.
    #[bits(2)]
    pub ir0: u8,
    /// TTB0 walk outer cacheability.
    #[bits(2)]
    pub or0: u8,
    /// TTB0 walk shareability.
    #[bits(2)]
    pub sh0: u8,
    /// Walks through TTB0 disabled.
    pub epd0: bool,
    /// Tables are big-endian.
    pub endi: bool,
    /// TTB1 input size.
    #[bits(6)]
    pub t1sz: u8,
    /// TTB1 granule: 1 16 KiB, 2 4 KiB, 3 64 KiB (TCR.TG1 encoding).
    #[bits(2)]
    pub tg1: u8,
    /// TTB1 walk inner cacheability.
    #[bits(2)]
    pub ir1: u8,
    /// TTB1 walk outer cacheability.
    #[bits(2)]
    pub or1: u8,
    /// TTB1 walk shareability.
    #[bits(2)]
    pub sh1: u8,
    /// Walks through TTB1 disabled.
    pub epd1: bool,
    /// Valid.
    pub v: bool,
    /// Intermediate physical size (OAS encoding).
    #[bits(3)]
    pub ips: u8,
    /// Access-flag fault disable.
    pub affd: bool,
    /// Write implies execute-never.
    pub wxn: bool,
    /// Unprivileged write implies privileged execute-never.
    pub uwxn: bool,
    /// Top byte ignore for TTB0 addresses.
    pub tbi0: bool,
    /// Top byte ignore for TTB1 addresses.
    pub tbi1: bool,
    /// Privileged access never.
    pub pan: bool,
    /// The tables are AArch64 (0: AArch32).
    pub aa64: bool,
    /// Hardware dirty-state update.
    pub hd: bool,
    /// Hardware access-flag update.
    pub ha: bool,
    /// Stage 1 faults stall.
    pub s: bool,
    /// Stage 1 faults are recorded.
    pub r: bool,
    /// Terminated transactions abort (0: RAZ/WI).
    pub a: bool,
    /// ASID set: 1 means not shared with PE broadcast TLB maintenance.
    pub aset: bool,
    /// Address space identifier.
    pub asid: u16,
}

/// CD words 1 and 2: one translation table base.
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct CdTtb {
    /// Non-secure table walks (Secure streams only).
    pub nscfg: bool,
    /// Hierarchical attribute disable (needs IDR3.HAD).
    pub had: bool,
    #[bits(2)]
    __: u8,
    /// Table address, bits 51:4.
    #[bits(48)]
    pub ttb: u64,
    #[bits(12)]
    __: u16,
}

impl CdTtb {
    /// The table address.
    pub fn address(&self) -> u64 {
        self.ttb() << 4
    }
}

/// A context descriptor as it sits in memory (§5.4).
#[repr(C)]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct Cd {
    /// The eight 64-bit words.
    pub words: [u64; 8],
}

const _: () = assert!(size_of::<Cd>() == CD_BYTES as usize);

impl Cd {
    /// Word 0.
    pub fn w0(&self) -> Cd0 {
        Cd0::from_bits(self.words[0])
    }
    /// The TTB0 word.
    pub fn ttb0(&self) -> CdTtb {
        CdTtb::from_bits(self.words[1])
    }
    /// The TTB1 word.
    pub fn ttb1(&self) -> CdTtb {
        CdTtb::from_bits(self.words[2])
    }
    /// MAIR (MAIR0 in bits 31:0, MAIR1 in 63:32).
    pub fn mair(&self) -> u64 {
        self.words[3]
    }
    /// AMAIR.
    pub fn amair(&self) -> u64 {
        self.words[4]
    }
    /// A CD from word 0, the two table words and MAIR.
    pub fn from_words(w0: Cd0, ttb0: CdTtb, ttb1: CdTtb, mair: u64) -> Cd {
        Cd {
            words: [
                w0.into_bits(),
                ttb0.into_bits(),
                ttb1.into_bits(),
                mair,
                0,
                0,
                0,
                0,
            ],
        }
    }
}

/// A level-1 CD table descriptor (§5.3).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct L1Cd {
    /// Valid.
    pub v: bool,
    #[bits(11)]
    __: u16,
    /// Level-2 table address, bits 51:12.
    #[bits(40)]
    pub l2ptr: u64,
    #[bits(12)]
    __: u16,
}

impl L1Cd {
    /// A valid descriptor for the level-2 table at `l2`.
    pub fn pointing_to(l2: u64) -> L1Cd {
        L1Cd::new().with_v(true).with_l2ptr(l2 >> 12)
    }
    /// The level-2 table address.
    pub fn l2(&self) -> u64 {
        self.l2ptr() << 12
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cd_word0_matches_linux_fields() {
        // What arm_smmu_make_s1_cd builds for a 48-bit VA, 4 KiB granule, WBWA inner and
        // outer, inner shareable, EPD1, V, IPS 48 bits, TBI0, AA64, R, A, ASET, ASID 5:
        // T0SZ(5,0)=16, TG0(7,6)=0, IRGN0(9,8)=1 -> 0x100, ORGN0(11,10)=1 -> 0x400,
        // SH0(13,12)=3 -> 0x3000, EPD1 bit 30, V bit 31, IPS(34,32)=5, TBI0 bit 38,
        // AA64 bit 41, R 45, A 46, ASET 47, ASID(63,48).
        let w = Cd0::new()
            .with_t0sz(16)
            .with_ir0(1)
            .with_or0(1)
            .with_sh0(3)
            .with_epd1(true)
            .with_v(true)
            .with_ips(5)
            .with_tbi0(true)
            .with_aa64(true)
            .with_r(true)
            .with_a(true)
            .with_aset(true)
            .with_asid(5);
        assert_eq!(
            w.into_bits(),
            16 | 0x100
                | 0x400
                | 0x3000
                | 1 << 30
                | 1 << 31
                | 5 << 32
                | 1 << 38
                | 1 << 41
                | 1 << 45
                | 1 << 46
                | 1 << 47
                | 5 << 48
        );
        // HD bit 42, HA bit 43, S bit 44, EPD0 bit 14, ENDI bit 15, TG0 64K = 1 -> 0x40.
        let w = Cd0::new()
            .with_hd(true)
            .with_ha(true)
            .with_s(true)
            .with_epd0(true)
            .with_endi(true)
            .with_tg0(1);
        assert_eq!(
            w.into_bits(),
            1 << 42 | 1 << 43 | 1 << 44 | 1 << 14 | 1 << 15 | 0x40
        );
        // The TTB1 half and the fields Linux leaves out (§5.4).
        let w = Cd0::new()
            .with_t1sz(25)
            .with_tg1(2)
            .with_affd(true)
            .with_wxn(true)
            .with_uwxn(true)
            .with_tbi1(true)
            .with_pan(true);
        assert_eq!(
            w.into_bits(),
            25 << 16 | 2 << 22 | 1 << 35 | 1 << 36 | 1 << 37 | 1 << 39 | 1 << 40
        );
    }

    #[test]
    fn cd_table_words_and_l1cd_match_linux_masks() {
        // CTXDESC_CD_1_TTB0_MASK GENMASK(51,4); NSCFG0 bit 0, HAD0 bit 1 (§5.4).
        let t = CdTtb::new()
            .with_ttb(0x000f_ffff_ffff_fff0 >> 4)
            .with_had(true);
        assert_eq!(t.into_bits(), 0x000f_ffff_ffff_fff0 | 2);
        assert_eq!(t.address(), 0x000f_ffff_ffff_fff0);
        assert_eq!(CdTtb::new().with_nscfg(true).into_bits(), 1);
        // CTXDESC_L1_DESC_V bit 0, L2PTR_MASK GENMASK(51,12).
        let d = L1Cd::pointing_to(0x1_2345_6000);
        assert_eq!(d.into_bits(), 0x1_2345_6000 | 1);
        assert_eq!(d.l2(), 0x1_2345_6000);
        let cd = Cd::from_words(Cd0::new(), t, CdTtb::new(), 0x0044_ff04);
        assert_eq!(cd.mair(), 0x0044_ff04, "Linux writes MAIR to word 3");
        assert_eq!(cd.as_bytes().len(), 64);
    }
}
