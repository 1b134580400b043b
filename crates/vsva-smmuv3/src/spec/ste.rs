//! Stream table entries and level-1 stream table descriptors (IHI 0070 §5.1, §5.2).
//!
//! An STE is eight 64-bit words; the model decodes the first four (words 4–7 hold MPAM and
//! VMS fields it does not implement). Bit positions follow Linux `arm-smmu-v3.h`
//! (`STRTAB_STE_*`); the fields Linux does not name (S2AFFD, S2HD, S2HA, SHCFG's neighbours)
//! are at the positions §5.2 gives them.

use bitfield_struct::bitfield;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Bytes per STE.
pub const STE_BYTES: u64 = 64;
/// Bytes per level-1 stream table descriptor.
pub const L1STD_BYTES: u64 = 8;

/// STE.Config (§5.2): what the stream's traffic goes through.
pub mod config {
    /// 0b000: abort every transaction, no event recorded.
    pub const ABORT: u8 = 0b000;
    /// 0b100: both stages bypassed.
    pub const BYPASS: u8 = 0b100;
    /// 0b101: stage 1 translates, stage 2 bypassed.
    pub const S1_TRANS: u8 = 0b101;
    /// 0b110: stage 1 bypassed, stage 2 translates.
    pub const S2_TRANS: u8 = 0b110;
    /// 0b111: both stages translate (nested).
    pub const NESTED: u8 = 0b111;
}

/// STE.S1DSS (§5.2): what a transaction without a SubstreamID uses when S1CDMax > 0.
pub mod s1dss {
    /// Terminate it (F_STREAM_DISABLED).
    pub const TERMINATE: u8 = 0b00;
    /// Bypass stage 1.
    pub const BYPASS: u8 = 0b01;
    /// Use CD 0 (a transaction with SubstreamID 0 is then C_BAD_SUBSTREAMID).
    pub const SSID0: u8 = 0b10;
}

/// STE.EATS (§5.2): ATS for this stream.
pub mod eats {
    /// ATS Translation Requests are answered with an abort.
    pub const ABORT: u8 = 0b00;
    /// Full ATS: translated traffic skips both stages.
    pub const TRANS: u8 = 0b01;
    /// Split-stage ATS: translated traffic still goes through stage 2.
    pub const S1CHK: u8 = 0b10;
}

/// STE.STRW (§5.2): the translation regime of stage 1.
pub mod strw {
    /// Non-secure EL1.
    pub const NSEL1: u8 = 0b00;
    /// EL2.
    pub const EL2: u8 = 0b10;
    /// EL2-E2H.
    pub const EL2_E2H: u8 = 0b11;
}

/// STE.S1Fmt (§5.2): the CD table format.
pub mod s1fmt {
    /// Linear table of 2^S1CDMax CDs.
    pub const LINEAR: u8 = 0b00;
    /// Two-level, level-2 tables of 64 CDs (4 KiB).
    pub const L2_4K: u8 = 0b01;
    /// Two-level, level-2 tables of 1024 CDs (64 KiB).
    pub const L2_64K: u8 = 0b10;
}

/// STE word 0.
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct Ste0 {
    /// Valid.
    pub v: bool,
    /// Config (see [`config`]).
    #[bits(3)]
    pub config: u8,
    /// CD table format (see [`s1fmt`]).
    #[bits(2)]
    pub s1fmt: u8,
    /// CD table address, bits 51:6.
    #[bits(46)]
    pub s1contextptr: u64,
    #[bits(7)]
    __: u8,
    /// log2 of the number of CDs.
    #[bits(5)]
    pub s1cdmax: u8,
}

/// STE word 1.
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct Ste1 {
    /// Default substream behaviour (see [`s1dss`]).
    #[bits(2)]
    pub s1dss: u8,
    /// CD table inner cacheability.
    #[bits(2)]
    pub s1cir: u8,
    /// CD table outer cacheability.
    #[bits(2)]
    pub s1cor: u8,
    /// CD table shareability.
    #[bits(2)]
    pub s1csh: u8,
    /// HWU, DCP, PPAR and other fields this model does not implement (bits 18:8).
    #[bits(11)]
    pub other_8: u16,
    /// Merge events arising from the same fault.
    pub mev: bool,
    /// Bits 24:20 (not implemented).
    #[bits(5)]
    pub other_20: u8,
    /// Stage 2 forced write-back.
    pub s2fwb: bool,
    /// Stage 1 MPAM.
    pub s1mpam: bool,
    /// Stage 1 stall disable.
    pub s1stalld: bool,
    /// ATS enable (see [`eats`]).
    #[bits(2)]
    pub eats: u8,
    /// Stage 1 translation regime (see [`strw`]).
    #[bits(2)]
    pub strw: u8,
    /// Memory type override value.
    #[bits(4)]
    pub memattr: u8,
    /// Memory type override.
    pub mtcfg: bool,
    /// Allocation hint override.
    #[bits(4)]
    pub alloccfg: u8,
    #[bits(3)]
    __: u8,
    /// Shareability override (0b01: use incoming).
    #[bits(2)]
    pub shcfg: u8,
    /// Security override.
    #[bits(2)]
    pub nscfg: u8,
    /// Privilege override.
    #[bits(2)]
    pub privcfg: u8,
    /// Instruction/data override.
    #[bits(2)]
    pub instcfg: u8,
    #[bits(12)]
    __: u16,
}

/// STE word 2: stage 2 configuration.
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct Ste2 {
    /// Virtual machine identifier.
    pub s2vmid: u16,
    #[bits(16)]
    __: u16,
    /// Stage 2 input size: 64 - S2T0SZ bits (VTCR.T0SZ).
    #[bits(6)]
    pub s2t0sz: u8,
    /// Stage 2 starting level (VTCR.SL0).
    #[bits(2)]
    pub s2sl0: u8,
    /// Stage 2 table inner cacheability.
    #[bits(2)]
    pub s2ir0: u8,
    /// Stage 2 table outer cacheability.
    #[bits(2)]
    pub s2or0: u8,
    /// Stage 2 table shareability.
    #[bits(2)]
    pub s2sh0: u8,
    /// Stage 2 granule: 0 4 KiB, 1 64 KiB, 2 16 KiB.
    #[bits(2)]
    pub s2tg: u8,
    /// Stage 2 physical address size (OAS encoding).
    #[bits(3)]
    pub s2ps: u8,
    /// Stage 2 tables are AArch64.
    pub s2aa64: bool,
    /// Stage 2 tables are big-endian.
    pub s2endi: bool,
    /// Stage 2 access-flag fault disable.
    pub s2affd: bool,
    /// Protected table walk: stage 1 walks to device memory fault.
    pub s2ptw: bool,
    /// Stage 2 hardware dirty-state update.
    pub s2hd: bool,
    /// Stage 2 hardware access-flag update.
    pub s2ha: bool,
    /// Stage 2 faults stall.
    pub s2s: bool,
    /// Stage 2 faults are recorded.
    pub s2r: bool,
    #[bits(5)]
    __: u8,
}

/// STE word 3: the stage 2 table base.
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct Ste3 {
    #[bits(4)]
    __: u8,
    /// Stage 2 table address, bits 51:4.
    #[bits(48)]
    pub s2ttb: u64,
    #[bits(12)]
    __: u16,
}

/// A stream table entry as it sits in memory (§5.2).
#[repr(C)]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct Ste {
    /// The eight 64-bit words.
    pub words: [u64; 8],
}

const _: () = assert!(size_of::<Ste>() == STE_BYTES as usize);

impl Ste {
    /// Word 0.
    pub fn w0(&self) -> Ste0 {
        Ste0::from_bits(self.words[0])
    }
    /// Word 1.
    pub fn w1(&self) -> Ste1 {
        Ste1::from_bits(self.words[1])
    }
    /// Word 2.
    pub fn w2(&self) -> Ste2 {
        Ste2::from_bits(self.words[2])
    }
    /// Word 3.
    pub fn w3(&self) -> Ste3 {
        Ste3::from_bits(self.words[3])
    }
    /// An STE from its first four words.
    pub fn from_words(w0: Ste0, w1: Ste1, w2: Ste2, w3: Ste3) -> Ste {
        Ste {
            words: [
                w0.into_bits(),
                w1.into_bits(),
                w2.into_bits(),
                w3.into_bits(),
                0,
                0,
                0,
                0,
            ],
        }
    }
    /// The CD table address.
    pub fn s1_context_ptr(&self) -> u64 {
        self.w0().s1contextptr() << 6
    }
    /// The stage 2 table address.
    pub fn s2ttb(&self) -> u64 {
        self.w3().s2ttb() << 4
    }
}

/// A level-1 stream table descriptor (§5.1).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct L1Std {
    /// 0: invalid; else the level-2 table holds 2^(Span - 1) STEs.
    #[bits(5)]
    pub span: u8,
    #[bits(1)]
    __: u8,
    /// Level-2 table address, bits 51:6.
    #[bits(46)]
    pub l2ptr: u64,
    #[bits(12)]
    __: u16,
}

impl L1Std {
    /// A descriptor for the level-2 table at `l2` with `span`.
    pub fn pointing_to(l2: u64, span: u8) -> L1Std {
        L1Std::new().with_span(span).with_l2ptr(l2 >> 6)
    }
    /// The level-2 table address.
    pub fn l2(&self) -> u64 {
        self.l2ptr() << 6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each expected value is FIELD_PREP(<Linux macro>, value) worked out by hand.

    #[test]
    fn ste_word0_matches_linux_fields() {
        // V | CFG(3,1)=S1_TRANS(5) -> 0xa | S1FMT(5,4)=2 -> 0x20 | S1CTXPTR 0x1234_5000 |
        // S1CDMAX(63,59)=10 -> 10 << 59.
        let w = Ste0::new()
            .with_v(true)
            .with_config(config::S1_TRANS)
            .with_s1fmt(s1fmt::L2_64K)
            .with_s1contextptr(0x1234_5000 >> 6)
            .with_s1cdmax(10);
        assert_eq!(w.into_bits(), 1 | 0xa | 0x20 | 0x1234_5000 | 10 << 59);
    }

    #[test]
    fn ste_word1_matches_linux_fields() {
        // S1DSS(1,0)=2, S1CIR(3,2)=1 -> 0x4, S1COR(5,4)=1 -> 0x10, S1CSH(7,6)=3 -> 0xc0,
        // MEV bit 19, S2FWB bit 25, S1STALLD bit 27, EATS(29,28)=1 -> 1 << 28,
        // STRW(31,30)=2 -> 2 << 30, SHCFG(45,44)=1 -> 1 << 44.
        let w = Ste1::new()
            .with_s1dss(s1dss::SSID0)
            .with_s1cir(1)
            .with_s1cor(1)
            .with_s1csh(3)
            .with_mev(true)
            .with_s2fwb(true)
            .with_s1stalld(true)
            .with_eats(eats::TRANS)
            .with_strw(strw::EL2)
            .with_shcfg(1);
        assert_eq!(
            w.into_bits(),
            2 | 0x4 | 0x10 | 0xc0 | 1 << 19 | 1 << 25 | 1 << 27 | 1 << 28 | 2 << 30 | 1 << 44
        );
    }

    #[test]
    fn ste_word2_matches_linux_and_spec_fields() {
        // S2VMID(15,0); VTCR(50,32) with S2T0SZ(5,0)=25, S2SL0(7,6)=1, S2IR0(9,8)=1,
        // S2OR0(11,10)=1, S2SH0(13,12)=3, S2TG(15,14)=0, S2PS(18,16)=5; S2AA64 bit 51,
        // S2ENDI 52, S2PTW 54, S2S 57, S2R 58 (Linux); S2AFFD 53, S2HD 55, S2HA 56 (§5.2).
        let vtcr: u64 = 25 | 1 << 6 | 1 << 8 | 1 << 10 | 3 << 12 | 5 << 16;
        let w = Ste2::new()
            .with_s2vmid(0xbeef)
            .with_s2t0sz(25)
            .with_s2sl0(1)
            .with_s2ir0(1)
            .with_s2or0(1)
            .with_s2sh0(3)
            .with_s2ps(5)
            .with_s2aa64(true)
            .with_s2endi(true)
            .with_s2ptw(true)
            .with_s2s(true)
            .with_s2r(true);
        assert_eq!(
            w.into_bits(),
            0xbeef | vtcr << 32 | 1 << 51 | 1 << 52 | 1 << 54 | 1 << 57 | 1 << 58
        );
        assert_eq!(Ste2::new().with_s2affd(true).into_bits(), 1 << 53);
        assert_eq!(Ste2::new().with_s2hd(true).into_bits(), 1 << 55);
        assert_eq!(Ste2::new().with_s2ha(true).into_bits(), 1 << 56);
        assert_eq!(Ste2::new().with_s2tg(2).into_bits(), 2 << 46);
    }

    #[test]
    fn ste_word3_and_l1std_match_linux_masks() {
        // STRTAB_STE_3_S2TTB_MASK GENMASK(51,4).
        let w = Ste3::new().with_s2ttb(0x000f_ffff_ffff_fff0 >> 4);
        assert_eq!(w.into_bits(), 0x000f_ffff_ffff_fff0);
        // STRTAB_L1_DESC_SPAN(4,0), L2PTR_MASK GENMASK(51,6).
        let d = L1Std::pointing_to(0x8_0000_0040, 9);
        assert_eq!(d.into_bits(), 0x8_0000_0040 | 9);
        assert_eq!(d.l2(), 0x8_0000_0040);
        let ste = Ste::from_words(
            Ste0::new().with_s1contextptr(0x4000 >> 6),
            Ste1::new(),
            Ste2::new(),
            w,
        );
        assert_eq!(ste.s1_context_ptr(), 0x4000);
        assert_eq!(ste.s2ttb(), 0x000f_ffff_ffff_fff0);
        assert_eq!(ste.as_bytes().len(), 64);
    }
}
