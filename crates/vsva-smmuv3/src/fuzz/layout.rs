//! The starting memory: tables, descriptors and queues where a driver would have put them
//! (IHI 0070 §5: STEs, CDs, level-1 descriptors; VMSAv8-64 4 KiB-granule page tables).

use vsva_mem::{PhysMem, PhysMemory};
use zerocopy::IntoBytes;

use crate::spec::cd::{Cd, Cd0, CdTtb};
use crate::spec::ste::{L1Std, Ste, Ste0, Ste1, Ste2, Ste3, config, eats, s1dss};

/// Linear stream table (2^6 STEs), or the level-1 table of a two-level one.
pub(super) const STRTAB: u64 = 0x1_0000;
/// The level-2 table of StreamIDs 0..64 in the two-level layout.
pub(super) const STRTAB_L2: u64 = 0x1_1000;
/// Command queue, 2^4 entries.
pub(super) const CMDQ: u64 = 0x2_0000;
/// Event queue, 2^3 entries: small, so that it overflows.
pub(super) const EVTQ: u64 = 0x2_1000;
/// PRI queue, 2^3 entries.
pub(super) const PRIQ: u64 = 0x2_2000;
/// CD table, 2^4 CDs.
pub(super) const CDTAB: u64 = 0x3_0000;
/// Stage 1 tables, levels 0 to 3.
pub(super) const S1: [u64; 4] = [0x4_0000, 0x4_1000, 0x4_2000, 0x4_3000];
/// Stage 2 tables, levels 1 and 2.
pub(super) const S2: [u64; 2] = [0x5_0000, 0x5_1000];
/// Data pages.
pub(super) const DATA: u64 = 0x10_0000;
/// Beyond memory, inside the 48-bit OAS.
pub(super) const OUTSIDE: u64 = 0x8000_0000;
/// The stage 1 VA window: L0 0, L1 1, L2 0, L3 index = page.
pub(super) const VA: u64 = 0x4000_0000;
/// MSI doorbells (beyond memory: an MSI is not a memory write here).
pub(super) const MSI: u64 = 0xfee0_0000;

/// StreamIDs of the starting stream table.
pub mod sid {
    /// STE.Config = bypass.
    pub const BYPASS: u32 = 0;
    /// Stage 1; CD 0 records and aborts, CD 1 stalls, CD 2 is RAZ/WI, CD 3 has HA/HD.
    pub const S1: u32 = 1;
    /// Stage 2, stalling.
    pub const S2: u32 = 2;
    /// Nested, EATS = S1CHK.
    pub const NESTED: u32 = 3;
    /// STE.Config = abort.
    pub const ABORT: u32 = 4;
    /// STE.V = 0.
    pub const INVALID: u32 = 5;
}

fn stage1_page(pa: u64) -> u64 {
    // Page, AF, inner shareable, AP = 0b01 (read/write at EL0 and EL1), nG.
    pa | 0b11 | 1 << 10 | 3 << 8 | 1 << 6 | 1 << 11
}

fn stage2_block(pa: u64) -> u64 {
    // Block, AF, inner shareable, S2AP = 0b11, MemAttr normal write-back.
    pa | 0b01 | 1 << 10 | 3 << 8 | 3 << 6 | 0xf << 2
}

fn cd0(asid: u16) -> Cd0 {
    Cd0::new()
        .with_t0sz(16)
        .with_ir0(1)
        .with_or0(1)
        .with_sh0(3)
        .with_epd1(true)
        .with_v(true)
        .with_ips(5)
        .with_aa64(true)
        .with_r(true)
        .with_a(true)
        .with_asid(asid)
}

fn ste2(stall: bool) -> Ste2 {
    Ste2::new()
        .with_s2vmid(1)
        .with_s2t0sz(24)
        .with_s2sl0(1)
        .with_s2ir0(1)
        .with_s2or0(1)
        .with_s2sh0(3)
        .with_s2ps(5)
        .with_s2aa64(true)
        .with_s2r(true)
        .with_s2s(stall)
}

/// The starting memory: tables and entries a driver would have written.
pub(super) fn lay_out(mem: &PhysMemory, two_level: bool) {
    let put = |at: u64, v: u64| {
        let _ = mem.store_u64(at, v);
    };
    // Stage 1: VA pages 0..8 to data, 8 beyond memory, 9 without AF, 10 read-only, 11
    // invalid.
    put(S1[0], S1[1] | 3);
    put(S1[1] + 8, S1[2] | 3);
    put(S1[2], S1[3] | 3);
    for i in 0..8 {
        put(S1[3] + 8 * i, stage1_page(DATA + 0x1000 * i));
    }
    put(S1[3] + 64, stage1_page(OUTSIDE));
    put(S1[3] + 72, stage1_page(DATA + 0x9000) & !(1 << 10));
    put(S1[3] + 80, stage1_page(DATA + 0xa000) | 1 << 7);
    // Stage 2: IPA 0..4 MiB identity, 4..6 MiB beyond memory.
    put(S2[0], S2[1] | 3);
    put(S2[1], stage2_block(0));
    put(S2[1] + 8, stage2_block(0x20_0000));
    put(S2[1] + 16, stage2_block(OUTSIDE));
    // CDs: 0 records and aborts, 1 stalls, 2 RAZ/WI, 3 hardware AF/dirty.
    let cds = [
        cd0(1),
        cd0(2).with_s(true),
        cd0(3).with_a(false).with_r(false),
        cd0(4).with_ha(true).with_hd(true),
    ];
    for (i, w0) in cds.into_iter().enumerate() {
        let ttb = CdTtb::new().with_ttb(S1[0] >> 4);
        let cd = Cd::from_words(w0, ttb, CdTtb::new(), 0x0044_ff04);
        let _ = mem.write(CDTAB + 64 * i as u64, cd.as_bytes());
    }
    let s1 = Ste0::new()
        .with_v(true)
        .with_s1contextptr(CDTAB >> 6)
        .with_s1cdmax(4);
    let w1 = Ste1::new().with_shcfg(1).with_s1dss(s1dss::SSID0);
    let s2ttb = Ste3::new().with_s2ttb(S2[0] >> 4);
    let stes = [
        Ste::from_words(
            Ste0::new().with_v(true).with_config(config::BYPASS),
            Ste1::new().with_shcfg(1),
            Ste2::new(),
            Ste3::new(),
        ),
        Ste::from_words(
            s1.with_config(config::S1_TRANS),
            w1.with_eats(eats::TRANS),
            Ste2::new(),
            Ste3::new(),
        ),
        Ste::from_words(
            // No ATS: EATS = full ATS with S2S is ILLEGAL (§5.2).
            Ste0::new().with_v(true).with_config(config::S2_TRANS),
            Ste1::new(),
            ste2(true),
            s2ttb,
        ),
        Ste::from_words(
            s1.with_config(config::NESTED),
            w1.with_eats(eats::S1CHK),
            ste2(false),
            s2ttb,
        ),
        Ste::from_words(
            Ste0::new().with_v(true).with_config(config::ABORT),
            Ste1::new(),
            Ste2::new(),
            Ste3::new(),
        ),
    ];
    let table = if two_level {
        put(STRTAB, L1Std::pointing_to(STRTAB_L2, 7).into_bits());
        STRTAB_L2
    } else {
        STRTAB
    };
    for (i, ste) in stes.iter().enumerate() {
        let _ = mem.write(table + 64 * i as u64, ste.as_bytes());
    }
}
