//! Configuration lookup (IHI 0070 §3.3, §5.1–5.4): StreamID -> STE through a linear or
//! two-level stream table, SubstreamID -> CD through a linear or two-level CD table, and
//! every validity rule that makes an STE or CD ILLEGAL.
//!
//! Where the spec lets an implementation choose between treating a bad value as ILLEGAL and
//! using it some other way, this model reports it (C_BAD_STE / C_BAD_CD): a driver bug shows
//! up as an event rather than as a quiet surprise. Fields the ID registers say are RES0
//! (HA/HD without HTTU, the high ASID/VMID byte without ASID16/VMID16) are ignored, as RES0
//! fields in structures are.

use vsva_mem::PhysMem;
use zerocopy::IntoBytes;

use crate::config::{Httu, Smmuv3Config, StallModel};
use crate::spec::cd::{CD_BYTES, Cd, CdTtb, L1CD_BYTES, L1Cd};
use crate::spec::registers::{StrtabBase, StrtabBaseCfg, pa_bits};
use crate::spec::ste::{L1STD_BYTES, L1Std, STE_BYTES, Ste, config, eats, s1dss, s1fmt, strw};
use crate::stream::{
    ConfigFault, Granule, Stage1Config, Stage2Config, StreamConfig, TableConfig, TranslationConfig,
};

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
        // SPLIT values other than 6, 8 and 10 are reserved; this model uses 6 for them.
        let split = match cfg.split() {
            s @ (6 | 8 | 10) => s,
            _ => 6,
        };
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
        d.l2() + l2 * STE_BYTES
    } else {
        base + sid as u64 * STE_BYTES
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

fn oas_bits(c: &Smmuv3Config) -> u8 {
    pa_bits(c.oas.min(6)).unwrap_or(48)
}

/// The stage 2 half of an STE (§5.2, VTCR rules of Arm DDI 0487 D8.2).
fn stage2(c: &Smmuv3Config, ste: &Ste) -> Result<Stage2Config, ConfigFault> {
    let w2 = ste.w2();
    if !w2.s2aa64() {
        return Err(bad_ste("S2AA64 = 0: IDR0.TTF offers AArch64 tables only"));
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
    if w2.s2ps() == 7 {
        return Err(bad_ste("reserved S2PS"));
    }
    let ps_bits = pa_bits(w2.s2ps().min(c.oas.min(6))).unwrap_or(48);
    if w2.s2endi() {
        return Err(bad_ste("S2ENDI = 1: IDR0.TTENDIAN is little-endian only"));
    }
    let (t0sz, sl0) = (w2.s2t0sz(), w2.s2sl0());
    if sl0 == 3 {
        return Err(bad_ste("reserved S2SL0"));
    }
    // IAS = OAS when only AArch64 tables exist (§3.4).
    let ias = oas_bits(c);
    let min = if granule == Granule::K64 {
        64 - ias
    } else {
        (64 - ias).max(16)
    };
    if t0sz > 39 || t0sz < min {
        return Err(bad_ste("S2T0SZ out of range"));
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
    let ttb = ste.s2ttb();
    if ttb >> ps_bits != 0 {
        return Err(bad_ste("S2TTB beyond the effective S2PS"));
    }
    if w2.s2s() && c.stall == StallModel::Terminate {
        return Err(bad_ste("S2S = 1 with IDR0.STALL_MODEL = terminate only"));
    }
    if !w2.s2s() && c.stall == StallModel::Force {
        return Err(bad_ste("S2S = 0 with IDR0.STALL_MODEL = stall forced"));
    }
    let ha = w2.s2ha() && c.httu != Httu::None;
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
        ha,
        hd: w2.s2hd() && ha && c.httu == Httu::AccessDirty,
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

/// Checks every field of a fetched STE (§5.2).
///
/// # Errors
/// C_BAD_STE with the rule broken.
pub(crate) fn check_ste(c: &Smmuv3Config, ste: &Ste) -> Result<SteKind, ConfigFault> {
    let (w0, w1) = (ste.w0(), ste.w1());
    if !w0.v() {
        return Err(bad_ste("V = 0"));
    }
    let cfg = w0.config();
    match cfg {
        config::ABORT => return Ok(SteKind::Abort),
        1..=3 => return Err(bad_ste("reserved Config")),
        _ => {}
    }
    let (s1, s2) = (cfg & 1 != 0, cfg & 2 != 0);
    if s1 && !c.stage1 {
        return Err(bad_ste("stage 1 Config without IDR0.S1P"));
    }
    if s2 && !c.stage2 {
        return Err(bad_ste("stage 2 Config without IDR0.S2P"));
    }
    match w1.eats() {
        3 => return Err(bad_ste("reserved EATS")),
        eats::ABORT => {}
        _ if !c.ats => return Err(bad_ste("EATS != 0 without IDR0.ATS")),
        eats::S1CHK if cfg != config::NESTED => {
            return Err(bad_ste("EATS = split-stage without nested Config"));
        }
        _ => {}
    }
    if cfg == config::BYPASS {
        return Ok(SteKind::Bypass);
    }
    if s1 {
        let cdmax = w0.s1cdmax();
        if cdmax > c.ssid_bits {
            return Err(bad_ste("S1CDMax beyond IDR1.SSIDSIZE"));
        }
        if cdmax != 0 {
            match w0.s1fmt() {
                3 => return Err(bad_ste("reserved S1Fmt")),
                s1fmt::LINEAR => {}
                _ if !c.two_level_cdtab => {
                    return Err(bad_ste("two-level S1Fmt without IDR0.CD2L"));
                }
                _ => {}
            }
            if w1.s1dss() == 3 {
                return Err(bad_ste("reserved S1DSS"));
            }
        }
        if w1.s1stalld() && c.stall != StallModel::Stall {
            return Err(bad_ste("S1STALLD = 1 with IDR0.STALL_MODEL != 0b00"));
        }
        match w1.strw() {
            strw::NSEL1 => {}
            1 => return Err(bad_ste("reserved STRW")),
            _ => return Err(bad_ste("EL2 STRW without IDR0.HYP")),
        }
        if ste.s1_context_ptr() >> oas_bits(c) != 0 {
            return Err(bad_ste("S1ContextPtr beyond OAS"));
        }
    }
    let stage2 = if s2 { Some(stage2(c, ste)?) } else { None };
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
    if ttb.address() >> ips_bits != 0 {
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

/// Checks every field of a fetched CD (§5.4).
///
/// # Errors
/// C_BAD_CD with the rule broken.
pub(crate) fn check_cd(c: &Smmuv3Config, cd: &Cd) -> Result<Stage1Config, ConfigFault> {
    let w0 = cd.w0();
    if !w0.v() {
        return Err(bad_cd("V = 0"));
    }
    if !w0.aa64() {
        return Err(bad_cd("AA64 = 0: IDR0.TTF offers AArch64 tables only"));
    }
    if w0.endi() {
        return Err(bad_cd("ENDI = 1: IDR0.TTENDIAN is little-endian only"));
    }
    if w0.ips() == 7 {
        return Err(bad_cd("reserved IPS"));
    }
    let ips_bits = pa_bits(w0.ips().min(c.oas.min(6))).unwrap_or(48);
    if w0.s() && c.stall == StallModel::Terminate {
        return Err(bad_cd("S = 1 with IDR0.STALL_MODEL = terminate only"));
    }
    if !w0.s() && c.stall == StallModel::Force {
        return Err(bad_cd("S = 0 with IDR0.STALL_MODEL = stall forced"));
    }
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
    let ha = w0.ha() && c.httu != Httu::None;
    Ok(Stage1Config {
        asid: if c.asid16 {
            w0.asid()
        } else {
            w0.asid() & 0xff
        },
        ttb0,
        ttb1,
        ips_bits,
        affd: w0.affd(),
        wxn: w0.wxn(),
        uwxn: w0.uwxn(),
        pan: w0.pan(),
        ha,
        hd: w0.hd() && ha && c.httu == Httu::AccessDirty,
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
pub(crate) fn fetch_cd(mem: &dyn PhysMem, ste: &Ste, index: u32) -> Result<Cd, ConfigFault> {
    let w0 = ste.w0();
    let ptr = ste.s1_context_ptr();
    let addr = if w0.s1cdmax() == 0 || w0.s1fmt() == s1fmt::LINEAR {
        ptr + index as u64 * CD_BYTES
    } else {
        let split = if w0.s1fmt() == s1fmt::L2_4K { 6 } else { 10 };
        let l1 = ptr + (index as u64 >> split) * L1CD_BYTES;
        let d = L1Cd::from_bits(read_u64(mem, l1).ok_or(ConfigFault::CdFetch { addr: l1 })?);
        if !d.v() {
            return Err(ConfigFault::BadSubstreamId {
                why: "level-1 CD descriptor invalid",
            });
        }
        d.l2() + (index as u64 & ((1 << split) - 1)) * CD_BYTES
    };
    let mut cd = Cd::default();
    mem.read(addr, cd.as_mut_bytes())
        .map_err(|_| ConfigFault::CdFetch { addr })?;
    Ok(cd)
}

/// Resolves the configuration of a transaction of `sid` with `ssid` (§3.3).
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
    let (stage1, stage2) = match check_ste(c, &ste)? {
        SteKind::Abort => return Ok(StreamConfig::Abort),
        // SubstreamIDs are not looked at when both stages bypass.
        SteKind::Bypass => return Ok(StreamConfig::Bypass),
        SteKind::Translate { stage1, stage2 } => (stage1, stage2),
    };
    let (w0, w1) = (ste.w0(), ste.w1());
    let bad_ssid = |why| ConfigFault::BadSubstreamId { why };
    let cd_index = if !stage1 {
        if ssid.is_some() {
            return Err(bad_ssid("SubstreamID on a stream whose stage 1 bypasses"));
        }
        None
    } else {
        let cdmax = w0.s1cdmax();
        match ssid {
            Some(_) if cdmax == 0 => return Err(bad_ssid("SubstreamID with S1CDMax = 0")),
            Some(s) if s >> cdmax != 0 => return Err(bad_ssid("SubstreamID beyond S1CDMax")),
            Some(0) if w1.s1dss() == s1dss::SSID0 => {
                return Err(bad_ssid("SubstreamID 0 with S1DSS = SSID0"));
            }
            Some(s) => Some(s),
            None if cdmax == 0 => Some(0),
            None => match w1.s1dss() {
                s1dss::TERMINATE => return Err(ConfigFault::StreamDisabled),
                s1dss::BYPASS => None,
                _ => Some(0),
            },
        }
    };
    let stage1 = match cd_index {
        Some(i) => Some(check_cd(c, &fetch_cd(mem, &ste, i)?)?),
        None => None,
    };
    let vmid_mask = if c.vmid16 { 0xffff } else { 0xff };
    Ok(StreamConfig::Translate(TranslationConfig {
        sid,
        ssid,
        stage1,
        stage2,
        vmid: if c.stage2 {
            ste.w2().s2vmid() & vmid_mask
        } else {
            0
        },
        eats: w1.eats(),
        strw: w1.strw(),
        s1stalld: w1.s1stalld(),
        mev: w1.mev(),
        shcfg: w1.shcfg(),
    }))
}
