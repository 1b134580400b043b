//! Configuration lookup (IHI 0070 §3.3, §5.1–5.4): StreamID -> STE through a linear or
//! two-level stream table, SubstreamID -> CD through a linear or two-level CD table, and
//! every validity rule that makes an STE or CD ILLEGAL.
//!
//! The STE and CD checks follow the spec's `SteIllegal()` (§5.2.2) and `CdIllegal()` (§5.4.2)
//! for a Non-secure SMMUv3.2 without HYP, Secure state, VMSAv8-32, VMSAv9-128, small tables,
//! DPT, permission indirection or MPAM. Reserved encodings the spec says "behave as" another
//! value (Config 0b0xx, S1Fmt 0b11, S1DSS 0b11, EATS 0b11, S2PS/IPS above the OAS, Span
//! 12..31) behave as that value. Other RES0 fields in the structures are ignored (§5: either
//! choice is allowed).

use vsva_mem::{Access, PhysMem};
use vsva_pgtable::{ArmFault, ArmFaultKind, walk};
use zerocopy::IntoBytes;

use crate::config::{Httu, Smmuv3Config, StallModel};
use crate::spec::cd::{CD_BYTES, Cd, CdTtb, L1CD_BYTES, L1Cd};
use crate::spec::registers::{StrtabBase, StrtabBaseCfg, pa_bits};
use crate::spec::ste::{L1STD_BYTES, L1Std, STE_BYTES, Ste, config, eats, s1dss, s1fmt, strw};
use crate::stream::{
    ConfigFault, Granule, Stage1Config, Stage2Config, StreamConfig, TableConfig, TranslationConfig,
};
use crate::translate::{Fetches, s2_format, walk_event_id};

/// The stream table registers as latched for a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct StrtabRegs {
    /// SMMU_STRTAB_BASE.
    pub base: u64,
    /// SMMU_STRTAB_BASE_CFG.
    pub cfg: u32,
}

fn read_u64(mem: &dyn PhysMem, addr: u64) -> Option<u64> {
    let mut b = [0u8; 8];
    mem.read(addr, &mut b).ok()?;
    Some(u64::from_le_bytes(b))
}

/// Fetches the STE of `sid` (§3.3.2, §5.1).
///
/// # Errors
/// C_BAD_STREAMID beyond the table or through an invalid level-1 descriptor; F_STE_FETCH
/// when a read aborts.
pub(crate) fn fetch_ste(
    c: &Smmuv3Config,
    mem: &dyn PhysMem,
    regs: StrtabRegs,
    sid: u32,
) -> Result<Ste, ConfigFault> {
    let cfg = StrtabBaseCfg::from_bits(regs.cfg);
    let log2 = cfg.log2size().min(c.sid_bits.min(32));
    if (sid as u64) >> log2 != 0 {
        return Err(ConfigFault::BadStreamId);
    }
    let base = StrtabBase::from_bits(regs.base).addr() << 6;
    let addr = if cfg.fmt() == 1 && c.two_level_strtab {
        // SPLIT values other than 6, 8 and 10 are reserved and behave as 6 (§6.3.25).
        let split = match cfg.split() {
            s @ (6 | 8 | 10) => s,
            _ => 6,
        };
        // The L1 table is aligned to its size or 64 bytes, from the literal LOG2SIZE
        // (§6.3.24): ADDR[MAX(5, LOG2SIZE - SPLIT - 1 + 3):0] = 0.
        let top = (cfg.log2size() as i32 - split as i32 + 2).max(5) as u32;
        let base = base & !((2u64 << top.min(62)) - 1);
        let l1 = base + ((sid as u64) >> split) * L1STD_BYTES;
        let d = L1Std::from_bits(read_u64(mem, l1).ok_or(ConfigFault::SteFetch { addr: l1 })?);
        let span = d.span();
        // Span 0 is invalid; spans above SPLIT + 1 are reserved and treated as invalid.
        if span == 0 || span > split + 1 {
            return Err(ConfigFault::BadStreamId);
        }
        let l2 = (sid as u64) & ((1 << split) - 1);
        if l2 >> (span - 1) != 0 {
            return Err(ConfigFault::BadStreamId);
        }
        // The level-2 array is aligned to its size: L2Ptr[5 + Span - 1:0] read as zero.
        let l2base = d.l2() & !((STE_BYTES << (span - 1)) - 1);
        l2base + l2 * STE_BYTES
    } else {
        // A linear table is aligned to its size: ADDR[LOG2SIZE + 5:0] = 0 (§6.3.24).
        let top = (cfg.log2size() as u32 + 5).min(62);
        (base & !((2u64 << top) - 1)) + sid as u64 * STE_BYTES
    };
    let mut ste = Ste::default();
    mem.read(addr, ste.as_mut_bytes())
        .map_err(|_| ConfigFault::SteFetch { addr })?;
    Ok(ste)
}

fn bad_ste(why: &'static str) -> ConfigFault {
    ConfigFault::BadSte { why }
}

fn bad_cd(why: &'static str) -> ConfigFault {
    ConfigFault::BadCd { why }
}

pub(crate) fn oas_bits(c: &Smmuv3Config) -> u8 {
    pa_bits(c.oas.min(6)).unwrap_or(48)
}

/// The stage 2 half of an STE (§5.2, `SteIllegal()`; the VTCR rules of Arm DDI 0487 D8).
fn stage2(c: &Smmuv3Config, ste: &Ste) -> Result<Stage2Config, ConfigFault> {
    let w2 = ste.w2();
    if w2.s2s() && c.stall == StallModel::Terminate {
        return Err(bad_ste("S2S = 1 with IDR0.STALL_MODEL = terminate only"));
    }
    if !w2.s2s() && c.stall == StallModel::Force {
        return Err(bad_ste("S2S = 0 with IDR0.STALL_MODEL = stall forced"));
    }
    if !w2.s2aa64() {
        return Err(bad_ste("S2AA64 = 0: IDR0.TTF offers AArch64 tables only"));
    }
    if (w2.s2ha() || w2.s2hd()) && c.httu == Httu::None {
        return Err(bad_ste("S2HA/S2HD with IDR0.HTTU = 0b00"));
    }
    if w2.s2hd() && c.httu == Httu::Access {
        return Err(bad_ste("S2HD with IDR0.HTTU = access flag only"));
    }
    let granule = match w2.s2tg() {
        0 => Granule::K4,
        1 => Granule::K64,
        2 => Granule::K16,
        _ => return Err(bad_ste("reserved S2TG")),
    };
    if !c.granule_supported(granule.bits()) {
        return Err(bad_ste("S2TG selects a granule IDR5 does not offer"));
    }
    // S2PS above the OAS (including reserved 0b111, which behaves as 0b110 in v3.1–v3.3)
    // is capped to the OAS.
    let ps_bits = pa_bits(w2.s2ps().min(6).min(c.oas.min(6))).unwrap_or(48);
    let ttb = ste.s2ttb();
    if ttb >> ps_bits != 0 || (granule != Granule::K64 && ttb >> 48 != 0) {
        return Err(bad_ste("S2TTB beyond the effective S2PS"));
    }
    let (t0sz, sl0) = (w2.s2t0sz(), w2.s2sl0());
    // IAS = OAS when only AArch64 tables exist (§3.4); SMMUv3.1+ minimums.
    let ias = oas_bits(c);
    let min = if granule == Granule::K64 {
        (64 - ias).max(12)
    } else {
        (64 - ias).max(16)
    };
    if t0sz > 39 || t0sz < min {
        return Err(bad_ste("S2T0SZ out of range"));
    }
    if sl0 == 3 {
        return Err(bad_ste("S2SL0 = 0b11 is inconsistent without FEAT_TTST"));
    }
    let start_level = match (granule, sl0) {
        (Granule::K4, s) => 2 - s,
        (_, s) => 3 - s,
    };
    if granule == Granule::K64 && start_level == 1 && c.oas < 6 {
        return Err(bad_ste("S2SL0 = 0b10 with 64 KiB granule needs 52-bit OAS"));
    }
    // The start level must resolve the input size with at most 16 concatenated tables and
    // must not be above the level the input size needs.
    let g = granule.bits() as u32;
    let stride = g - 3;
    let resolved = (4 - start_level as u32) * stride + g;
    let input = 64 - t0sz as u32;
    if input > resolved + 4 || input + stride <= resolved {
        return Err(bad_ste("S2T0SZ inconsistent with S2SL0"));
    }
    if w2.s2endi() {
        return Err(bad_ste("S2ENDI = 1: IDR0.TTENDIAN is little-endian only"));
    }
    // {S2HA, S2HD} = 0b01 is reserved and behaves as 0b00.
    let ha = w2.s2ha();
    Ok(Stage2Config {
        ttb,
        t0sz,
        sl0,
        start_level,
        granule,
        ps_bits,
        ir: w2.s2ir0(),
        or: w2.s2or0(),
        sh: w2.s2sh0(),
        affd: w2.s2affd(),
        ptw: w2.s2ptw(),
        fwb: ste.w1().s2fwb(),
        ha,
        hd: ha && w2.s2hd(),
        stall: w2.s2s(),
        record: w2.s2r(),
    })
}

/// What an STE says before a CD is chosen.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SteKind {
    Abort,
    Bypass,
    Translate {
        stage1: bool,
        stage2: Option<Stage2Config>,
    },
}

/// Checks every field of a fetched STE (§5.2.2 `SteIllegal()`).
///
/// # Errors
/// C_BAD_STE with the rule broken.
pub(crate) fn check_ste(c: &Smmuv3Config, ste: &Ste) -> Result<SteKind, ConfigFault> {
    let (w0, w1, w2) = (ste.w0(), ste.w1(), ste.w2());
    if !w0.v() {
        return Err(bad_ste("V = 0"));
    }
    let cfg = w0.config();
    // Config 0b000 aborts silently; 0b001..0b011 are reserved and behave as 0b000.
    if cfg & 0b100 == 0 {
        return Ok(SteKind::Abort);
    }
    let (s1, s2) = (cfg & 1 != 0, cfg & 2 != 0);
    if s1 && !c.stage1 {
        return Err(bad_ste("stage 1 Config without IDR0.S1P"));
    }
    if s2 && !c.stage2 {
        return Err(bad_ste("stage 2 Config without IDR0.S2P"));
    }
    // EATS is IGNORED without IDR0.ATS and in bypass; 0b11 (DPT) behaves as 0b00 here.
    if c.ats && cfg != config::BYPASS {
        match w1.eats() {
            eats::S1CHK if cfg != config::NESTED || w2.s2s() => {
                return Err(bad_ste("EATS = split-stage without nesting, or with S2S"));
            }
            eats::TRANS if s2 && w2.s2s() => {
                return Err(bad_ste("EATS = full ATS with stage 2 and S2S"));
            }
            _ => {}
        }
    }
    if cfg == config::BYPASS {
        return Ok(SteKind::Bypass);
    }
    // STRW is RES0 without IDR0.HYP (§5.2 STRW): the StreamWorld is NS-EL1.
    if s1 {
        if w1.s1stalld() && c.stall != StallModel::Stall {
            return Err(bad_ste("S1STALLD = 1 with IDR0.STALL_MODEL != 0b00"));
        }
        let cdmax = w0.s1cdmax();
        if c.ssid_bits != 0 && cdmax > c.ssid_bits {
            return Err(bad_ste("S1CDMax beyond IDR1.SSIDSIZE"));
        }
        if c.ssid_bits != 0
            && cdmax != 0
            && !c.two_level_cdtab
            && matches!(w0.s1fmt(), s1fmt::L2_4K | s1fmt::L2_64K)
        {
            return Err(bad_ste("two-level S1Fmt without IDR0.CD2L"));
        }
        if ste.s1_context_ptr() >> oas_bits(c) != 0 {
            return Err(bad_ste("S1ContextPtr beyond the IAS/OAS"));
        }
    }
    let stage2 = if s2 { Some(stage2(c, ste)?) } else { None };
    // S2VMID is not ignored for a translating NS-EL1 stream of an SMMU with stage 2.
    if c.stage2 && !c.vmid16 && w2.s2vmid() >> 8 != 0 {
        return Err(bad_ste("S2VMID[15:8] != 0 without IDR0.VMID16"));
    }
    Ok(SteKind::Translate { stage1: s1, stage2 })
}

fn table(
    c: &Smmuv3Config,
    tsz: u8,
    granule: Option<Granule>,
    ttb: CdTtb,
    ips_bits: u8,
    tbi: bool,
    walk: (u8, u8, u8),
) -> Result<TableConfig, ConfigFault> {
    let granule = granule.ok_or(bad_cd("reserved TGx"))?;
    if !c.granule_supported(granule.bits()) {
        return Err(bad_cd("TGx selects a granule IDR5 does not offer"));
    }
    // 16..=39 without IDR5.VAX and small translation tables (§5.4, CD.T0SZ).
    if !(16..=39).contains(&tsz) {
        return Err(bad_cd("TxSZ out of range"));
    }
    // Beyond the effective IPS, or beyond 48 bits with a 4 KiB or 16 KiB granule (no DS).
    if ttb.address() >> ips_bits != 0 || (granule != Granule::K64 && ttb.address() >> 48 != 0) {
        return Err(bad_cd("TTBx beyond the effective IPS"));
    }
    Ok(TableConfig {
        ttb: ttb.address(),
        tsz,
        granule,
        ir: walk.0,
        or: walk.1,
        sh: walk.2,
        had: ttb.had(),
        tbi,
    })
}

/// Checks every field of a fetched CD (§5.4.2 `CdIllegal()`), for an STE with `s1stalld`.
///
/// # Errors
/// C_BAD_CD with the rule broken.
pub(crate) fn check_cd(
    c: &Smmuv3Config,
    cd: &Cd,
    s1stalld: bool,
) -> Result<Stage1Config, ConfigFault> {
    let w0 = cd.w0();
    if !w0.v() {
        return Err(bad_cd("V = 0"));
    }
    if s1stalld && w0.s() {
        return Err(bad_cd("S = 1 under STE.S1STALLD = 1"));
    }
    if w0.s() && c.stall == StallModel::Terminate {
        return Err(bad_cd("S = 1 with IDR0.STALL_MODEL = terminate only"));
    }
    if !w0.s() && c.stall == StallModel::Force {
        return Err(bad_cd("S = 0 with IDR0.STALL_MODEL = stall forced"));
    }
    if !(w0.epd0() && w0.epd1()) && w0.endi() {
        return Err(bad_cd("ENDI = 1: IDR0.TTENDIAN is little-endian only"));
    }
    if !w0.aa64() {
        return Err(bad_cd("AA64 = 0: IDR0.TTF offers AArch64 tables only"));
    }
    if (w0.ha() || w0.hd()) && c.httu == Httu::None {
        return Err(bad_cd("HA/HD with IDR0.HTTU = 0b00"));
    }
    if w0.hd() && c.httu == Httu::Access {
        return Err(bad_cd("HD with IDR0.HTTU = access flag only"));
    }
    if !c.asid16 && w0.asid() >> 8 != 0 {
        return Err(bad_cd("ASID[15:8] != 0 without IDR0.ASID16"));
    }
    // IPS above the OAS (including reserved 0b111) is capped to the OAS.
    let ips_bits = pa_bits(w0.ips().min(6).min(c.oas.min(6))).unwrap_or(48);
    let ttb0 = if w0.epd0() {
        None
    } else {
        let g = match w0.tg0() {
            0 => Some(Granule::K4),
            1 => Some(Granule::K64),
            2 => Some(Granule::K16),
            _ => None,
        };
        let walk = (w0.ir0(), w0.or0(), w0.sh0());
        Some(table(
            c,
            w0.t0sz(),
            g,
            cd.ttb0(),
            ips_bits,
            w0.tbi0(),
            walk,
        )?)
    };
    let ttb1 = if w0.epd1() {
        None
    } else {
        let g = match w0.tg1() {
            1 => Some(Granule::K16),
            2 => Some(Granule::K4),
            3 => Some(Granule::K64),
            _ => None,
        };
        let walk = (w0.ir1(), w0.or1(), w0.sh1());
        Some(table(
            c,
            w0.t1sz(),
            g,
            cd.ttb1(),
            ips_bits,
            w0.tbi1(),
            walk,
        )?)
    };
    Ok(Stage1Config {
        asid: w0.asid(),
        ttb0,
        ttb1,
        ips_bits,
        affd: w0.affd(),
        wxn: w0.wxn(),
        uwxn: w0.uwxn(),
        pan: w0.pan(),
        ha: w0.ha(),
        hd: w0.ha() && w0.hd(),
        stall: w0.s(),
        record: w0.r(),
        abort: w0.a(),
        aset: w0.aset(),
        mair: cd.mair(),
        amair: cd.amair(),
    })
}

/// Fetches CD `index` of the STE's CD table (§3.3.3, §5.3).
///
/// # Errors
/// C_BAD_SUBSTREAMID through an invalid level-1 CD descriptor; F_CD_FETCH when a read
/// aborts.
pub(crate) fn fetch_cd(
    c: &Smmuv3Config,
    mem: &dyn PhysMem,
    ste: &Ste,
    index: u32,
    stage2: Option<&Stage2Config>,
) -> Result<Cd, ConfigFault> {
    let w0 = ste.w0();
    let ptr = ste.s1_context_ptr();
    // S1CDMax is IGNORED without substreams: the pointer names one CD.
    let cdmax = if c.ssid_bits == 0 {
        0
    } else {
        w0.s1cdmax() as u64
    };
    // S1Fmt 0b11 is reserved and behaves as linear. Tables are aligned to their size: the
    // pointer bits below it (RES0) are treated as zero (§5.2 S1Fmt).
    let addr = if cdmax == 0 || !matches!(w0.s1fmt(), s1fmt::L2_4K | s1fmt::L2_64K) {
        (ptr & !((CD_BYTES << cdmax) - 1)) + index as u64 * CD_BYTES
    } else {
        let split = if w0.s1fmt() == s1fmt::L2_4K { 6 } else { 10 };
        let l1_size = (L1CD_BYTES << cdmax.saturating_sub(split)).max(64);
        let l1 = (ptr & !(l1_size - 1)) + (index as u64 >> split) * L1CD_BYTES;
        let l1 = cd_table_addr(mem, stage2, l1)?;
        let d = L1Cd::from_bits(read_u64(mem, l1).ok_or(ConfigFault::CdFetch { addr: l1 })?);
        if !d.v() {
            return Err(ConfigFault::BadSubstreamId {
                why: "level-1 CD descriptor invalid",
            });
        }
        // 64 KiB leaf tables: L2Ptr[15:12] are RES0, taken as zero.
        let l2 = d.l2() & !((CD_BYTES << split) - 1);
        l2 + (index as u64 & ((1 << split) - 1)) * CD_BYTES
    };
    let addr = cd_table_addr(mem, stage2, addr)?;
    let mut cd = Cd::default();
    mem.read(addr, cd.as_mut_bytes())
        .map_err(|_| ConfigFault::CdFetch { addr })?;
    Ok(cd)
}

/// Where a CD or level-1 CD descriptor at `addr` is read: at `addr`, or — with stage 2
/// (nested), where S1ContextPtr and L1CD.L2Ptr are IPAs (§3.4.2, §5.2 S1ContextPtr) — at
/// its stage 2 translation.
///
/// # Errors
/// A stage 2 fault with CLASS = CD ([`ConfigFault::CdStage2`]); C_BAD_STE for a stage 2
/// granule other than 4 KiB, which this model does not walk.
fn cd_table_addr(
    mem: &dyn PhysMem,
    stage2: Option<&Stage2Config>,
    addr: u64,
) -> Result<u64, ConfigFault> {
    let Some(s2) = stage2 else {
        return Ok(addr);
    };
    if s2.granule != Granule::K4 {
        return Err(bad_ste("stage 2 granule other than 4 KiB (not modelled)"));
    }
    let mut fetches = Fetches::default();
    walk(
        &s2_format(s2),
        mem,
        s2.ttb,
        addr,
        Access::READ,
        &mut fetches,
        &mut (),
    )
    .map(|t| t.output)
    .map_err(|f| {
        let kind = ArmFault::from_fault(&f).kind;
        ConfigFault::CdStage2 {
            kind: walk_event_id(kind),
            ipa: addr,
            fetch_addr: fetches.last,
            record: s2.record || kind == ArmFaultKind::ExternalAbort,
        }
    })
}

/// Resolves the configuration of a transaction of `sid` with `ssid` (§3.3, priorities of
/// §7.3.22).
///
/// # Errors
/// The configuration fault to record.
pub(crate) fn resolve(
    c: &Smmuv3Config,
    mem: &dyn PhysMem,
    regs: StrtabRegs,
    sid: u32,
    ssid: Option<u32>,
) -> Result<StreamConfig, ConfigFault> {
    let ste = fetch_ste(c, mem, regs, sid)?;
    let kind = check_ste(c, &ste)?;
    let bad_ssid = |why| ConfigFault::BadSubstreamId { why };
    let (stage1, stage2) = match kind {
        SteKind::Abort => return Ok(StreamConfig::Abort),
        // A SubstreamID with stage 1 disabled (bypass included) is C_BAD_SUBSTREAMID
        // (§7.3.9).
        SteKind::Bypass | SteKind::Translate { stage1: false, .. } if ssid.is_some() => {
            return Err(bad_ssid(
                "SubstreamID on a stream whose stage 1 is disabled",
            ));
        }
        SteKind::Bypass => return Ok(StreamConfig::Bypass),
        SteKind::Translate { stage1, stage2 } => (stage1, stage2),
    };
    let (w0, w1) = (ste.w0(), ste.w1());
    // S1CDMax is IGNORED without substreams (IDR1.SSIDSIZE = 0).
    let cdmax = if c.ssid_bits == 0 { 0 } else { w0.s1cdmax() };
    let cd_index = if !stage1 {
        None
    } else {
        match ssid {
            Some(_) if cdmax == 0 => return Err(bad_ssid("SubstreamID with S1CDMax = 0")),
            Some(s) if s >> cdmax != 0 => return Err(bad_ssid("SubstreamID beyond S1CDMax")),
            // CD 0 is reserved for traffic without SubstreamID (§5.2 S1DSS).
            Some(0) if w1.s1dss() == s1dss::SSID0 => return Err(ConfigFault::StreamDisabled),
            Some(s) => Some(s),
            None if cdmax == 0 => Some(0),
            None => match w1.s1dss() {
                s1dss::BYPASS => None,
                s1dss::SSID0 => Some(0),
                // 0b00 terminates; reserved 0b11 behaves as 0b00.
                _ => return Err(ConfigFault::StreamDisabled),
            },
        }
    };
    let stage1 = match cd_index {
        Some(i) => Some(check_cd(
            c,
            &fetch_cd(c, mem, &ste, i, stage2.as_ref())?,
            w1.s1stalld(),
        )?),
        None => None,
    };
    // Effective EATS: IGNORED without ATS; 0b11 (DPT) behaves as 0b00 without IDR3.DPT.
    let eats = match w1.eats() {
        _ if !c.ats => eats::ABORT,
        3 => eats::ABORT,
        e => e,
    };
    Ok(StreamConfig::Translate(TranslationConfig {
        sid,
        ssid,
        stage1,
        stage2,
        vmid: if c.stage2 { ste.w2().s2vmid() } else { 0 },
        eats,
        strw: strw::NSEL1,
        s1stalld: w1.s1stalld(),
        mev: w1.mev(),
        shcfg: w1.shcfg(),
        privcfg: w1.privcfg(),
        instcfg: w1.instcfg(),
    }))
}
