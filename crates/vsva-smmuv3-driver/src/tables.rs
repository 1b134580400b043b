//! The in-memory configuration structures the driver owns: the stream table (linear or
//! 2-level, Linux `arm_smmu_init_strtab`), per-master CD tables (linear or 2-level, Linux
//! `arm_smmu_alloc_cd_tables`), and the STE and CD values the driver writes into them
//! (Linux `arm_smmu_make_*_ste`, `arm_smmu_make_s1_cd`, `arm_smmu_make_sva_cd`).

use std::sync::Arc;

use vsva_mem::{FrameAllocator, PageSize, PhysMem};
use vsva_smmuv3::spec::cd::{CD_BYTES, Cd, Cd0, CdTtb, L1CD_BYTES, L1Cd};
use vsva_smmuv3::spec::ste::{
    L1STD_BYTES, L1Std, STE_BYTES, Ste, Ste0, Ste1, Ste2, Ste3, config, eats, s1dss, s1fmt, strw,
};

use crate::driver::{DriverError, Result};

/// StreamID bits a level-2 stream table covers (Linux `STRTAB_SPLIT`).
pub const STRTAB_SPLIT: u8 = 8;
/// Most level-1 stream table entries (Linux `STRTAB_MAX_L1_ENTRIES`, a 1 MiB table).
const STRTAB_MAX_L1_LOG2: u8 = 17;
/// CDs per level-2 CD table (Linux `CTXDESC_L2_ENTRIES`: 1024, a 64 KiB table).
pub const CD_SPLIT: u8 = 10;

/// Carves naturally aligned, zeroed blocks of up to 2 MiB out of 2 MiB frames (tables the
/// driver never frees, as Linux's devm allocations live as long as the SMMU).
pub(crate) struct Carver {
    frames: Arc<FrameAllocator>,
    chunk: u64,
    used: u64,
}

impl Carver {
    const CHUNK: u64 = 2 << 20;

    pub(crate) fn new(frames: Arc<FrameAllocator>) -> Carver {
        Carver {
            frames,
            chunk: 0,
            used: Self::CHUNK,
        }
    }

    /// A zeroed block of `size` bytes (rounded up to a power of two, at least 64), aligned to
    /// its size. Above 2 MiB a 1 GiB frame.
    pub(crate) fn alloc(&mut self, size: u64) -> Result<u64> {
        let size = size.max(64).next_power_of_two();
        if size > Self::CHUNK {
            if size > PageSize::Size1G.bytes() {
                return Err(DriverError::OutOfMemory);
            }
            return Ok(self.frames.alloc_zeroed(PageSize::Size1G)?);
        }
        let at = self.used.next_multiple_of(size);
        if at + size > Self::CHUNK {
            self.chunk = self.frames.alloc_zeroed(PageSize::Size2M)?;
            self.used = size;
            return Ok(self.chunk);
        }
        self.used = at + size;
        Ok(self.chunk + at)
    }
}

/// The stream table.
pub(crate) enum StreamTable {
    /// 2^log2 STEs.
    Linear { base: u64, log2: u8 },
    /// 2^l1_log2 level-1 descriptors, each for 2^[`STRTAB_SPLIT`] STEs.
    TwoLevel { base: u64, l1_log2: u8 },
}

impl StreamTable {
    /// Linux `arm_smmu_init_strtab`: 2-level when the SMMU has it and StreamIDs are wider
    /// than one level-2 table (`sid_bits > STRTAB_SPLIT`), else linear; initial STEs abort
    /// (`arm_smmu_init_initial_stes` with `disable_bypass`).
    pub(crate) fn new(
        carver: &mut Carver,
        mem: &dyn PhysMem,
        sid_bits: u8,
        two_level: bool,
    ) -> Result<StreamTable> {
        if two_level && sid_bits > STRTAB_SPLIT {
            let l1_log2 = (sid_bits - STRTAB_SPLIT).min(STRTAB_MAX_L1_LOG2);
            let base = carver.alloc(L1STD_BYTES << l1_log2)?;
            Ok(StreamTable::TwoLevel { base, l1_log2 })
        } else {
            let base = carver.alloc(STE_BYTES << sid_bits)?;
            for sid in 0..1u64 << sid_bits {
                write_ste_words(mem, base + sid * STE_BYTES, &abort_ste())?;
            }
            Ok(StreamTable::Linear {
                base,
                log2: sid_bits,
            })
        }
    }

    /// STRTAB_BASE's address.
    pub(crate) fn base(&self) -> u64 {
        match *self {
            StreamTable::Linear { base, .. } | StreamTable::TwoLevel { base, .. } => base,
        }
    }

    /// STRTAB_BASE_CFG: FMT, SPLIT, LOG2SIZE (§6.3.25).
    pub(crate) fn cfg(&self) -> u32 {
        match *self {
            StreamTable::Linear { log2, .. } => log2 as u32,
            StreamTable::TwoLevel { l1_log2, .. } => {
                1 << 16 | (STRTAB_SPLIT as u32) << 6 | (l1_log2 + STRTAB_SPLIT) as u32
            }
        }
    }

    /// Whether `sid` is in the table (Linux `arm_smmu_sid_in_range`).
    pub(crate) fn covers(&self, sid: u32) -> bool {
        let bits = match *self {
            StreamTable::Linear { log2, .. } => log2,
            StreamTable::TwoLevel { l1_log2, .. } => l1_log2 + STRTAB_SPLIT,
        };
        (sid as u64) < 1u64 << bits
    }

    /// The STE slot of `sid`, making its level-2 table (of aborting STEs) if needed (Linux
    /// `arm_smmu_init_l2_strtab`).
    pub(crate) fn ste_slot(&self, carver: &mut Carver, mem: &dyn PhysMem, sid: u32) -> Result<u64> {
        match *self {
            StreamTable::Linear { base, .. } => Ok(base + sid as u64 * STE_BYTES),
            StreamTable::TwoLevel { base, .. } => {
                let at = base + (sid >> STRTAB_SPLIT) as u64 * L1STD_BYTES;
                let mut d = L1Std::from_bits(mem.load_u64(at)?);
                if d.span() == 0 {
                    let l2 = carver.alloc(STE_BYTES << STRTAB_SPLIT)?;
                    for i in 0..1u64 << STRTAB_SPLIT {
                        write_ste_words(mem, l2 + i * STE_BYTES, &abort_ste())?;
                    }
                    d = L1Std::pointing_to(l2, STRTAB_SPLIT + 1);
                    mem.store_u64(at, d.into_bits())?;
                }
                let index = (sid & ((1 << STRTAB_SPLIT) - 1)) as u64;
                Ok(d.l2() + index * STE_BYTES)
            }
        }
    }
}

fn write_ste_words(mem: &dyn PhysMem, at: u64, ste: &Ste) -> Result<()> {
    for (i, w) in ste.words.iter().enumerate() {
        mem.store_u64(at + 8 * i as u64, *w)?;
    }
    Ok(())
}

/// A per-master CD table (Linux `struct arm_smmu_ctx_desc_cfg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CdTable {
    /// STE.S1ContextPtr.
    pub base: u64,
    /// STE.S1Fmt.
    pub s1fmt: u8,
    /// STE.S1CDMax: log2 of the number of CDs.
    pub s1cdmax: u8,
}

impl CdTable {
    /// Linux `arm_smmu_alloc_cd_tables`: linear for up to 1024 CDs (or without IDR0.CD2L),
    /// else 2-level with 64 KiB level-2 tables of 1024 CDs made on demand.
    pub(crate) fn new(carver: &mut Carver, ssid_bits: u8, two_level: bool) -> Result<CdTable> {
        if !two_level || ssid_bits <= CD_SPLIT {
            Ok(CdTable {
                base: carver.alloc(CD_BYTES << ssid_bits)?,
                s1fmt: s1fmt::LINEAR,
                s1cdmax: ssid_bits,
            })
        } else {
            Ok(CdTable {
                base: carver.alloc(L1CD_BYTES << (ssid_bits - CD_SPLIT))?,
                s1fmt: s1fmt::L2_64K,
                s1cdmax: ssid_bits,
            })
        }
    }

    /// The CD slot of `ssid`, making its level-2 table if `alloc` (Linux
    /// `arm_smmu_get_cd_ptr` / `arm_smmu_alloc_cd_ptr`), and whether that table is new;
    /// `None` when it has none.
    pub(crate) fn cd_slot(
        &self,
        carver: &mut Carver,
        mem: &dyn PhysMem,
        ssid: u32,
        alloc: bool,
    ) -> Result<Option<(u64, bool)>> {
        if self.s1fmt == s1fmt::LINEAR {
            return Ok(Some((self.base + ssid as u64 * CD_BYTES, false)));
        }
        let at = self.base + (ssid >> CD_SPLIT) as u64 * L1CD_BYTES;
        let mut d = L1Cd::from_bits(mem.load_u64(at)?);
        let new = !d.v();
        if new {
            if !alloc {
                return Ok(None);
            }
            d = L1Cd::pointing_to(carver.alloc(CD_BYTES << CD_SPLIT)?);
            mem.store_u64(at, d.into_bits())?;
        }
        let index = (ssid & ((1 << CD_SPLIT) - 1)) as u64;
        Ok(Some((d.l2() + index * CD_BYTES, new)))
    }
}

/// An STE that aborts every transaction without an event (Linux `arm_smmu_make_abort_ste`).
pub fn abort_ste() -> Ste {
    Ste::from_words(
        Ste0::new().with_v(true).with_config(config::ABORT),
        Ste1::new(),
        Ste2::new(),
        Ste3::new(),
    )
}

/// An STE that bypasses both stages, shareability from the transaction (Linux
/// `arm_smmu_make_bypass_ste`).
pub fn bypass_ste() -> Ste {
    Ste::from_words(
        Ste0::new().with_v(true).with_config(config::BYPASS),
        Ste1::new().with_shcfg(1),
        Ste2::new(),
        Ste3::new(),
    )
}

/// An STE pointing at a CD table (Linux `arm_smmu_make_cdtable_ste`): stage 1 translates,
/// `dss` says what requests without a SubstreamID do, `ats` enables full ATS (EATS = 0b01),
/// `stall_disable` sets S1STALLD (an SMMU with stalls for a master that must not stall).
pub fn cdtable_ste(t: &CdTable, dss: u8, ats: bool, stall_disable: bool) -> Ste {
    Ste::from_words(
        Ste0::new()
            .with_v(true)
            .with_config(config::S1_TRANS)
            .with_s1fmt(t.s1fmt)
            .with_s1contextptr(t.base >> 6)
            .with_s1cdmax(t.s1cdmax),
        Ste1::new()
            .with_s1dss(dss)
            .with_s1cir(1)
            .with_s1cor(1)
            .with_s1csh(3)
            .with_s1stalld(stall_disable)
            .with_eats(if ats { eats::TRANS } else { eats::ABORT })
            .with_strw(strw::NSEL1),
        Ste2::new(),
        Ste3::new(),
    )
}

/// io-pgtable-arm's MAIR for DMA domains (`ARM_LPAE_MAIR_ATTR_*`): index 0 Normal
/// Non-cacheable (0x44), 1 Normal Write-Back (0xff), 2 Device-nGnRE (0x04), 3 Normal inner
/// Non-cacheable outer Write-Back (0xf4).
pub const IO_PGTABLE_MAIR: u64 = 0xf404_ff44;
/// Linux arm64's `MAIR_EL1` (`MAIR_EL1_SET`): MT_NORMAL 0 and MT_NORMAL_TAGGED 1 Normal
/// Write-Back (0xff), MT_NORMAL_NC 2 (0x44), MT_DEVICE_nGnRnE 3 (0x00), MT_DEVICE_nGnRE 4
/// (0x04) — what `arm_smmu_make_sva_cd` copies into an SVA CD.
pub const MAIR_EL1: u64 = 0x0000_0004_0044_ffff;

/// What a stage-1 CD describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct S1Cd {
    /// TTB0 (None: EPD0, every walk faults — Linux's "SVA entry that faults everything").
    pub ttb0: Option<u64>,
    /// T0SZ.
    pub t0sz: u8,
    /// IPS (OAS encoding).
    pub ips: u8,
    /// ASID.
    pub asid: u16,
    /// MAIR.
    pub mair: u64,
    /// Faults stall (CD.S) — masters that can stall.
    pub stall: bool,
    /// Hardware access flag and dirty state (CD.HA, CD.HD).
    pub ha: bool,
    /// Hardware dirty state.
    pub hd: bool,
}

/// The CD (Linux `arm_smmu_make_s1_cd` / `arm_smmu_make_sva_cd`): 4 KiB granule, WBWA inner
/// and outer, Inner Shareable walks, EPD1, AArch64, R, A, ASET (no broadcast TLB
/// maintenance). With EPD0 the TTB0 fields are zero, and S and R are cleared so that faults
/// abort at once (Linux: "speeds up cleanup for an unclean exit").
pub fn s1_cd(c: &S1Cd) -> Cd {
    let mut w0 = Cd0::new()
        .with_epd1(true)
        .with_v(true)
        .with_ips(c.ips)
        .with_aa64(true)
        .with_ha(c.ha)
        .with_hd(c.ha && c.hd)
        .with_s(c.stall)
        .with_r(true)
        .with_a(true)
        .with_aset(true)
        .with_asid(c.asid);
    let mut ttb0 = CdTtb::new();
    match c.ttb0 {
        Some(root) => {
            w0 = w0.with_t0sz(c.t0sz).with_ir0(1).with_or0(1).with_sh0(3);
            ttb0 = ttb0.with_ttb(root >> 4);
        }
        None => w0 = w0.with_epd0(true).with_s(false).with_r(false),
    }
    Cd::from_words(w0, ttb0, CdTtb::new(), c.mair)
}

/// Bits of a CD the SMMU reads in its current state (Linux `arm_smmu_get_cd_used`): only V
/// when invalid; with EPD0 not TTB0 and its walk fields.
pub fn cd_used(cd: &Cd) -> [u64; 8] {
    let w0 = cd.w0();
    if !w0.v() {
        return [Cd0::new().with_v(true).into_bits(), 0, 0, 0, 0, 0, 0, 0];
    }
    let mut used = [u64::MAX; 8];
    if w0.epd0() {
        let ttb_fields = Cd0::new()
            .with_t0sz(0x3f)
            .with_tg0(3)
            .with_ir0(3)
            .with_or0(3)
            .with_sh0(3)
            .into_bits();
        used[0] &= !ttb_fields;
        used[1] &= !CdTtb::new().with_ttb((1 << 48) - 1).into_bits();
    }
    used
}

/// Bits of an STE the SMMU reads in its current state (Linux `arm_smmu_get_ste_used`): V;
/// Config once valid; the stage-1 fields (and S2VMID, which tags stage-1 TLB entries) when
/// stage 1 translates; the stage-2 fields and MEV when stage 2 does; SHCFG where it applies
/// (bypass, S1DSS = bypass, stage 2).
pub fn ste_used(ste: &Ste) -> [u64; 8] {
    let (w0, w1) = (ste.w0(), ste.w1());
    let mut used = [0u64; 8];
    used[0] = Ste0::new().with_v(true).into_bits();
    if !w0.v() {
        return used;
    }
    used[0] |= Ste0::new().with_config(7).into_bits();
    let cfg = w0.config();
    let shcfg = Ste1::new().with_shcfg(3).into_bits();
    if cfg & 0b100 != 0 && cfg & 1 != 0 {
        used[0] |= Ste0::new()
            .with_s1fmt(3)
            .with_s1contextptr((1 << 46) - 1)
            .with_s1cdmax(0x1f)
            .into_bits();
        used[1] |= Ste1::new()
            .with_s1dss(3)
            .with_s1cir(3)
            .with_s1cor(3)
            .with_s1csh(3)
            .with_s1stalld(true)
            .with_strw(3)
            .with_eats(3)
            .into_bits();
        used[2] |= Ste2::new().with_s2vmid(u16::MAX).into_bits();
        if w1.s1dss() == s1dss::BYPASS {
            used[1] |= shcfg;
        }
    }
    if cfg & 0b100 != 0 && cfg & 0b10 != 0 {
        used[1] |= Ste1::new()
            .with_s2fwb(true)
            .with_eats(3)
            .with_mev(true)
            .into_bits()
            | shcfg;
        used[2] |= Ste2::new()
            .with_s2vmid(u16::MAX)
            .with_s2t0sz(0x3f)
            .with_s2sl0(3)
            .with_s2ir0(3)
            .with_s2or0(3)
            .with_s2sh0(3)
            .with_s2tg(3)
            .with_s2ps(7)
            .with_s2aa64(true)
            .with_s2endi(true)
            .with_s2ptw(true)
            .with_s2s(true)
            .with_s2r(true)
            .into_bits();
        used[3] |= Ste3::new().with_s2ttb((1 << 48) - 1).into_bits();
    }
    if cfg == config::BYPASS {
        used[1] |= shcfg;
    }
    used
}

/// STE bits that may change at any step of an update when both entries use them (Linux
/// `arm_smmu_get_ste_update_safe`): MEV only changes how many events are recorded, and the
/// SMMU may act as if it were set.
pub fn ste_update_safe() -> [u64; 8] {
    [0, Ste1::new().with_mev(true).into_bits(), 0, 0, 0, 0, 0, 0]
}

/// STE word 0 fields a guest may set in a nested STE (Linux `STRTAB_STE_0_NESTING_ALLOWED`):
/// V, Config, S1Fmt, S1ContextPtr, S1CDMax.
pub fn ste0_nesting_allowed() -> u64 {
    Ste0::new()
        .with_v(true)
        .with_config(7)
        .with_s1fmt(3)
        .with_s1contextptr((1 << 46) - 1)
        .with_s1cdmax(0x1f)
        .into_bits()
}

/// STE word 1 fields a guest may set in a nested STE (Linux `STRTAB_STE_1_NESTING_ALLOWED`):
/// S1DSS, S1CIR, S1COR, S1CSH, S1STALLD, EATS.
pub fn ste1_nesting_allowed() -> u64 {
    Ste1::new()
        .with_s1dss(3)
        .with_s1cir(3)
        .with_s1cor(3)
        .with_s1csh(3)
        .with_s1stalld(true)
        .with_eats(3)
        .into_bits()
}

/// A stage-2 domain as its STEs describe it: the VMID, and the table with the VTCR fields
/// io-pgtable-arm's `ARM_64_LPAE_S2` gives it (Linux `arm_smmu_domain_finalise_s2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct S2Cfg {
    /// S2VMID.
    pub vmid: u16,
    /// S2TTB: the start-level table (concatenated tables aligned to their size).
    pub ttb: u64,
    /// S2T0SZ: 64 minus the IPA size.
    pub t0sz: u8,
    /// S2SL0 (4 KiB granule: 0 starts at level 2, 1 at level 1, 2 at level 0).
    pub sl0: u8,
    /// S2PS (OAS encoding).
    pub ps: u8,
    /// Coherent walks (IDR0.COHACC): Inner Shareable write-back tables, else Outer
    /// Shareable non-cacheable.
    pub coherent: bool,
    /// S2FWB (IDR3.FWB: Linux sets `IO_PGTABLE_QUIRK_ARM_S2FWB` whenever it can).
    pub fwb: bool,
    /// SHCFG = use incoming (IDR1.ATTR_TYPES_OVR, Linux `ARM_SMMU_FEAT_ATTR_TYPES_OVR`).
    pub shcfg_incoming: bool,
}

/// A stage-2-only STE (Linux `arm_smmu_make_s2_domain_ste`): Config S2_TRANS; EATS full ATS
/// with `ats`; S2FWB, SHCFG as the SMMU allows; S2VMID, the VTCR fields, S2AA64, S2PTW,
/// S2R, and S2S for a master that stalls; S2TTB.
pub fn s2_ste(s: &S2Cfg, ats: bool, stall: bool) -> Ste {
    let (sh, rgn) = if s.coherent { (3, 1) } else { (2, 0) };
    Ste::from_words(
        Ste0::new().with_v(true).with_config(config::S2_TRANS),
        Ste1::new()
            .with_eats(if ats { eats::TRANS } else { eats::ABORT })
            .with_s2fwb(s.fwb)
            .with_shcfg(if s.shcfg_incoming { 1 } else { 0 }),
        Ste2::new()
            .with_s2vmid(s.vmid)
            .with_s2t0sz(s.t0sz)
            .with_s2sl0(s.sl0)
            .with_s2ir0(rgn)
            .with_s2or0(rgn)
            .with_s2sh0(sh)
            .with_s2tg(0)
            .with_s2ps(s.ps)
            .with_s2aa64(true)
            .with_s2ptw(true)
            .with_s2s(stall)
            .with_s2r(true),
        Ste3::new().with_s2ttb(s.ttb >> 4),
    )
}

/// The STE of a nested domain (Linux `arm_smmu_make_nested_domain_ste`) from the guest's
/// words as validated: V = 0 or Config abort → an aborting STE; bypass → the stage-2 STE;
/// stage 1 → the stage-2 STE with Config nested, the guest's stage-1 fields over it and MEV
/// (Linux `arm_smmu_make_nested_cd_table_ste`). `stall_disable` sets S1STALLD for a master
/// that cannot stall on an SMMU that can, as [`cdtable_ste`] does: the guest's CD.S is then
/// ILLEGAL (C_BAD_CD, §5.4.2) rather than a stall the master cannot take.
pub fn nested_ste(s2: &S2Cfg, guest: [u64; 2], ats: bool, stall: bool, stall_disable: bool) -> Ste {
    let g0 = Ste0::from_bits(guest[0]);
    let cfg = if g0.v() { g0.config() } else { config::ABORT };
    match cfg {
        config::S1_TRANS => {
            let mut ste = s2_ste(s2, ats, stall);
            let cfg_mask = Ste0::new().with_config(7).into_bits();
            ste.words[0] = Ste0::new()
                .with_v(true)
                .with_config(config::NESTED)
                .into_bits()
                | (guest[0] & !cfg_mask);
            ste.words[1] |= guest[1] | Ste1::new().with_mev(true).into_bits();
            if stall_disable {
                ste.words[1] |= Ste1::new().with_s1stalld(true).into_bits();
            }
            ste
        }
        config::BYPASS => s2_ste(s2, ats, stall),
        _ => abort_ste(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sva_cd_has_linux_tcr_fields() {
        let cd = s1_cd(&S1Cd {
            ttb0: Some(0x8_1234_5000),
            t0sz: 16,
            ips: 5,
            asid: 0x42,
            mair: MAIR_EL1,
            stall: false,
            ha: true,
            hd: true,
        });
        // T0SZ 16, IRGN0 1 << 8, ORGN0 1 << 10, SH0 3 << 12, EPD1 bit 30, V bit 31,
        // IPS 5 << 32, AA64 bit 41, HD 42, HA 43, R 45, A 46, ASET 47, ASID << 48.
        let w0: u64 = 16
            | 1 << 8
            | 1 << 10
            | 3 << 12
            | 1 << 30
            | 1 << 31
            | 5 << 32
            | 1 << 41
            | 1 << 42
            | 1 << 43
            | 1 << 45
            | 1 << 46
            | 1 << 47
            | 0x42 << 48;
        assert_eq!(cd.words[0], w0);
        assert_eq!(cd.words[1], 0x8_1234_5000);
        assert_eq!(cd.words[3], MAIR_EL1);
    }

    #[test]
    fn the_fault_everything_cd_has_epd0_and_neither_stall_nor_record() {
        let cd = s1_cd(&S1Cd {
            ttb0: None,
            t0sz: 16,
            ips: 5,
            asid: 7,
            mair: MAIR_EL1,
            stall: true,
            ha: false,
            hd: false,
        });
        let w0 = cd.w0();
        assert!(w0.v() && w0.epd0() && w0.a() && !w0.s() && !w0.r());
        assert_eq!((w0.t0sz(), cd.words[1]), (0, 0));
    }

    #[test]
    fn mairs_hold_linux_attribute_bytes() {
        let byte = |m: u64, i: u32| (m >> (8 * i)) as u8;
        // MAIR_EL1: MT_NORMAL 0, MT_NORMAL_TAGGED 1, MT_NORMAL_NC 2, nGnRnE 3, nGnRE 4.
        assert_eq!(
            (0..5).map(|i| byte(MAIR_EL1, i)).collect::<Vec<_>>(),
            vec![0xff, 0xff, 0x44, 0x00, 0x04]
        );
        // io-pgtable: NC 0, CACHE 1, DEV 2, INC_OCACHE 3.
        assert_eq!(
            (0..4).map(|i| byte(IO_PGTABLE_MAIR, i)).collect::<Vec<_>>(),
            vec![0x44, 0xff, 0x04, 0xf4]
        );
    }

    #[test]
    fn a_cdtable_ste_has_linux_fields() {
        let t = CdTable {
            base: 0x4_0000,
            s1fmt: s1fmt::L2_64K,
            s1cdmax: 20,
        };
        let ste = cdtable_ste(&t, 0b10, true, true);
        // V | CFG S1_TRANS (5 << 1) | S1FMT 2 << 4 | S1CTXPTR | S1CDMAX 20 << 59.
        assert_eq!(ste.words[0], 1 | 5 << 1 | 2 << 4 | 0x4_0000 | 20 << 59);
        // S1DSS 2, S1CIR 1 << 2, S1COR 1 << 4, S1CSH 3 << 6, S1STALLD 27, EATS 1 << 28.
        assert_eq!(
            ste.words[1],
            2 | 1 << 2 | 1 << 4 | 3 << 6 | 1 << 27 | 1 << 28
        );
        assert_eq!(abort_ste().words[0], 1);
        assert_eq!(bypass_ste().words[..2], [1 | 4 << 1, 1 << 44]);
    }

    #[test]
    fn an_invalid_entry_uses_only_v_and_epd0_hides_ttb0() {
        assert_eq!(cd_used(&Cd::default())[0], 1 << 31);
        assert_eq!(cd_used(&Cd::default())[1], 0);
        let dead = s1_cd(&S1Cd {
            ttb0: None,
            t0sz: 0,
            ips: 5,
            asid: 1,
            mair: 0,
            stall: false,
            ha: false,
            hd: false,
        });
        let used = cd_used(&dead);
        assert_eq!(used[0] & 0x3fff, 0, "T0SZ, TG0, IR0, OR0, SH0 unused");
        assert_eq!(used[1] & 0x000f_ffff_ffff_fff0, 0);
        assert_eq!(ste_used(&abort_ste())[1], 0);
    }
}
