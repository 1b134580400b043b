//! STE lookup and validation (IHI 0070 §5.1, §5.2): every illegal field value, one at a
//! time, gives C_BAD_STE with the exact record; the stream table formats and their faults.

mod common;

use common::*;
use vsva_smmuv3::spec::event::id;
use vsva_smmuv3::spec::registers::offset;
use vsva_smmuv3::spec::ste::{L1Std, Ste, Ste0, Ste1, Ste2, Ste3, config, eats, s1fmt, strw};
use vsva_smmuv3::{ConfigFault, Granule, Httu, Smmuv3Config, StallModel, StreamConfig};

const SID: u32 = 0x21;

/// Installs `ste` at SID in a bench with `cfg` and checks the lookup is C_BAD_STE with the
/// record [C_BAD_STE | SID << 32, 0, 0, 0].
fn bad_ste_with(cfg: Smmuv3Config, ste: Ste) {
    let b = Bench::with(cfg);
    b.write_cd_at(CDTAB, &good_cd(1));
    b.write_ste(SID, &ste);
    let got = b.smmu.stream_config(SID, None);
    assert!(matches!(got, Err(ConfigFault::BadSte { .. })), "{got:?}");
    let ev: Vec<_> = b.events().iter().map(|e| e.words).collect();
    assert_eq!(ev, [config_record(id::C_BAD_STE, SID, None)]);
}

fn bad_ste(ste: Ste) {
    bad_ste_with(Smmuv3Config::default(), ste)
}

fn with_w0(ste: Ste, f: impl Fn(Ste0) -> Ste0) -> Ste {
    Ste::from_words(f(ste.w0()), ste.w1(), ste.w2(), ste.w3())
}

fn with_w1(ste: Ste, f: impl Fn(Ste1) -> Ste1) -> Ste {
    Ste::from_words(ste.w0(), f(ste.w1()), ste.w2(), ste.w3())
}

fn s1() -> Ste {
    s1_ste(CDTAB, 0, s1fmt::LINEAR)
}

#[test]
fn ste_valid_bit_clear_c_bad_ste() {
    bad_ste(with_w0(s1(), |w| w.with_v(false)));
}

#[test]
fn ste_reserved_config_behaves_as_abort_without_event() {
    // §5.2 Config: 0b0xx is reserved and behaves as 0b000 (abort, no event); SteIllegal()
    // returns FALSE for Config 0b0xx.
    let b = Bench::new();
    for cfg in 1..=3 {
        b.write_ste(SID + cfg as u32, &with_w0(s1(), |w| w.with_config(cfg)));
        assert_eq!(
            b.smmu.stream_config(SID + cfg as u32, None),
            Ok(StreamConfig::Abort)
        );
    }
    assert!(b.events().is_empty());
}

#[test]
fn ste_abort_config_aborts_without_event() {
    let b = Bench::new();
    b.write_ste(SID, &with_w0(s1(), |w| w.with_config(config::ABORT)));
    assert_eq!(b.smmu.stream_config(SID, None), Ok(StreamConfig::Abort));
    assert!(b.events().is_empty());
}

#[test]
fn ste_bypass_config_bypasses() {
    let b = Bench::new();
    b.write_ste(SID, &with_w0(s1(), |w| w.with_config(config::BYPASS)));
    assert_eq!(b.smmu.stream_config(SID, None), Ok(StreamConfig::Bypass));
    assert!(b.events().is_empty());
}

#[test]
fn ste_stage1_config_without_s1p_c_bad_ste() {
    bad_ste_with(
        Smmuv3Config {
            stage1: false,
            ..Smmuv3Config::default()
        },
        s1(),
    );
}

#[test]
fn ste_stage2_config_without_s2p_c_bad_ste() {
    bad_ste_with(
        Smmuv3Config {
            stage2: false,
            ..Smmuv3Config::default()
        },
        s2_ste(good_ste2(1)),
    );
}

#[test]
fn ste_s1fmt_reserved_behaves_as_linear() {
    let b = Bench::new();
    b.write_ste(SID, &s1_ste(CDTAB, 4, 3));
    b.write_cd_at(CDTAB + 5 * 64, &good_cd(5));
    let Ok(StreamConfig::Translate(t)) = b.smmu.stream_config(SID, Some(5)) else {
        panic!("not translating");
    };
    assert_eq!(t.stage1.unwrap().asid, 5);
}

#[test]
fn ste_two_level_s1fmt_without_cd2l_c_bad_ste() {
    bad_ste_with(
        Smmuv3Config {
            two_level_cdtab: false,
            ..Smmuv3Config::default()
        },
        s1_ste(CDTAB, 4, s1fmt::L2_4K),
    );
}

#[test]
fn ste_s1cdmax_ignored_without_substreams() {
    // SSIDSIZE = 0: S1CDMax is IGNORED, the pointer names one CD, and any SubstreamID is
    // C_BAD_SUBSTREAMID (§5.2 S1CDMax, §7.3.9).
    let b = Bench::with(Smmuv3Config {
        ssid_bits: 0,
        ..Smmuv3Config::default()
    });
    b.write_ste(SID, &s1_ste(CDTAB, 5, s1fmt::LINEAR));
    b.write_cd_at(CDTAB, &good_cd(7));
    let Ok(StreamConfig::Translate(t)) = b.smmu.stream_config(SID, None) else {
        panic!("not translating");
    };
    assert_eq!(t.stage1.unwrap().asid, 7);
    assert!(matches!(
        b.smmu.stream_config(SID, Some(1)),
        Err(ConfigFault::BadSubstreamId { .. })
    ));
}

#[test]
fn ste_s1cdmax_beyond_ssidsize_c_bad_ste() {
    bad_ste_with(
        Smmuv3Config {
            ssid_bits: 8,
            ..Smmuv3Config::default()
        },
        s1_ste(CDTAB, 9, s1fmt::LINEAR),
    );
}

#[test]
fn ste_s1dss_reserved_behaves_as_terminate() {
    let b = Bench::new();
    b.write_ste(
        SID,
        &with_w1(s1_ste(CDTAB, 2, s1fmt::LINEAR), |w| w.with_s1dss(3)),
    );
    assert_eq!(
        b.smmu.stream_config(SID, None),
        Err(ConfigFault::StreamDisabled)
    );
    let ev: Vec<_> = b.events().iter().map(|e| e.words).collect();
    assert_eq!(ev, [config_record(id::F_STREAM_DISABLED, SID, None)]);
}

#[test]
fn ste_s1stalld_without_stall_model_stall_c_bad_ste() {
    for stall in [StallModel::Terminate, StallModel::Force] {
        bad_ste_with(
            Smmuv3Config {
                stall,
                ..Smmuv3Config::default()
            },
            with_w1(s1(), |w| w.with_s1stalld(true)),
        );
    }
}

#[test]
fn ste_split_stage_eats_without_nesting_c_bad_ste() {
    bad_ste(with_w1(s1(), |w| w.with_eats(eats::S1CHK)));
}

#[test]
fn ste_eats_with_s2s_c_bad_ste() {
    // Full ATS with stage 2 and S2S; split-stage ATS with S2S.
    let s2s = |w2: Ste2| w2.with_s2s(true);
    let mut ste = s2_ste(s2s(good_ste2(1)));
    ste = with_w1(ste, |w| w.with_eats(eats::TRANS));
    bad_ste(ste);
    let nested = Ste::from_words(
        s1().w0().with_config(config::NESTED),
        Ste1::new().with_eats(eats::S1CHK),
        s2s(good_ste2(1)),
        Ste3::new().with_s2ttb(S2TTB >> 4),
    );
    bad_ste(nested);
}

#[test]
fn ste_eats_ignored_without_ats_and_reserved_eats_behaves_as_abort() {
    let effective = |cfg: Smmuv3Config, eats: u8| {
        let b = Bench::with(cfg);
        b.write_cd_at(CDTAB, &good_cd(1));
        b.write_ste(SID, &with_w1(s1(), |w| w.with_eats(eats)));
        match b.smmu.stream_config(SID, None) {
            Ok(StreamConfig::Translate(t)) => t.eats,
            other => panic!("{other:?}"),
        }
    };
    let no_ats = Smmuv3Config {
        ats: false,
        ..Smmuv3Config::default()
    };
    assert_eq!(effective(no_ats, eats::TRANS), eats::ABORT);
    assert_eq!(effective(Smmuv3Config::default(), 3), eats::ABORT);
    assert_eq!(effective(Smmuv3Config::default(), eats::TRANS), eats::TRANS);
}

#[test]
fn ste_strw_ignored_without_hyp() {
    // STRW is RES0 when IDR0.HYP = 0 (§5.2 STRW): the StreamWorld is NS-EL1.
    let b = Bench::new();
    b.write_cd_at(CDTAB, &good_cd(1));
    b.write_ste(SID, &with_w1(s1(), |w| w.with_strw(1)));
    let Ok(StreamConfig::Translate(t)) = b.smmu.stream_config(SID, None) else {
        panic!("not translating");
    };
    assert_eq!(t.strw, strw::NSEL1);
}

#[test]
fn ste_s1contextptr_beyond_oas_c_bad_ste() {
    // OAS 40 bits (IDR5.OAS = 2).
    bad_ste_with(
        Smmuv3Config {
            oas: 2,
            ..Smmuv3Config::default()
        },
        s1_ste(1 << 40, 0, s1fmt::LINEAR),
    );
}

#[test]
fn ste_s2aa64_clear_c_bad_ste() {
    bad_ste(s2_ste(good_ste2(1).with_s2aa64(false)));
}

#[test]
fn ste_s2tg_reserved_or_unsupported_granule_c_bad_ste() {
    bad_ste(s2_ste(good_ste2(1).with_s2tg(3)));
    // 16 KiB (S2TG = 2) is not in the default IDR5.
    bad_ste(s2_ste(good_ste2(1).with_s2tg(2)));
}

#[test]
fn ste_s2ps_above_oas_capped_to_oas() {
    // §5.2 S2PS: eff_S2PS = MIN(S2PS, IDR5.OAS), reserved values included.
    let b = Bench::new();
    b.write_ste(SID, &s2_ste(good_ste2(1).with_s2ps(7)));
    let Ok(StreamConfig::Translate(t)) = b.smmu.stream_config(SID, None) else {
        panic!("not translating");
    };
    assert_eq!(t.stage2.unwrap().ps_bits, 48);
}

#[test]
fn ste_s2t0sz_out_of_range_c_bad_ste() {
    // OAS 48: the minimum is 16; the maximum 39 (no small translation tables).
    bad_ste(s2_ste(good_ste2(1).with_s2t0sz(15).with_s2sl0(2)));
    bad_ste(s2_ste(good_ste2(1).with_s2t0sz(40).with_s2sl0(0)));
    // OAS 40: the minimum with 4 KiB granules is 64 - 40 = 24.
    bad_ste_with(
        Smmuv3Config {
            oas: 2,
            ..Smmuv3Config::default()
        },
        s2_ste(good_ste2(1).with_s2t0sz(23).with_s2ps(2)),
    );
}

#[test]
fn ste_s2sl0_reserved_or_inconsistent_with_s2t0sz_c_bad_ste() {
    bad_ste(s2_ste(good_ste2(1).with_s2sl0(3)));
    // 4 KiB, SL0 = 1 (level 1, 39 bits resolved): valid input sizes are 31..=43 bits,
    // T0SZ 21..=33. T0SZ 34 (30 bits) fits a level-2 start; T0SZ 20 needs 32 tables.
    bad_ste(s2_ste(good_ste2(1).with_s2t0sz(34)));
    bad_ste(s2_ste(good_ste2(1).with_s2t0sz(20)));
    // 4 KiB, SL0 = 0 (level 2, 30 bits): T0SZ 30..=39 only.
    bad_ste(s2_ste(good_ste2(1).with_s2t0sz(29).with_s2sl0(0)));
    // 64 KiB, SL0 = 2 (level 1) needs 52-bit addresses.
    bad_ste(s2_ste(
        good_ste2(1).with_s2tg(1).with_s2t0sz(16).with_s2sl0(2),
    ));
}

#[test]
fn ste_s2ttb_beyond_s2ps_c_bad_ste() {
    let ste = s2_ste(good_ste2(1).with_s2ps(0));
    let ste = Ste::from_words(
        ste.w0(),
        ste.w1(),
        ste.w2().with_s2t0sz(32).with_s2sl0(1),
        Ste3::new().with_s2ttb((1u64 << 32) >> 4),
    );
    bad_ste(ste);
}

#[test]
fn ste_s2endi_c_bad_ste() {
    bad_ste(s2_ste(good_ste2(1).with_s2endi(true)));
}

#[test]
fn ste_s2s_against_stall_model_c_bad_ste() {
    bad_ste_with(
        Smmuv3Config {
            stall: StallModel::Terminate,
            ..Smmuv3Config::default()
        },
        s2_ste(good_ste2(1).with_s2s(true)),
    );
    bad_ste_with(
        Smmuv3Config {
            stall: StallModel::Force,
            ..Smmuv3Config::default()
        },
        s2_ste(good_ste2(1)),
    );
}

#[test]
fn ste_s2ha_s2hd_against_httu_c_bad_ste() {
    let httu = |h| Smmuv3Config {
        httu: h,
        ..Smmuv3Config::default()
    };
    bad_ste_with(httu(Httu::None), s2_ste(good_ste2(1).with_s2ha(true)));
    bad_ste_with(httu(Httu::None), s2_ste(good_ste2(1).with_s2hd(true)));
    bad_ste_with(
        httu(Httu::Access),
        s2_ste(good_ste2(1).with_s2ha(true).with_s2hd(true)),
    );
}

#[test]
fn ste_s2vmid_high_byte_without_vmid16_c_bad_ste() {
    let cfg = Smmuv3Config {
        vmid16: false,
        ..Smmuv3Config::default()
    };
    bad_ste_with(cfg.clone(), s2_ste(good_ste2(0x100)));
    // Also for a stage 1-only stream: S2VMID is not ignored when stage 2 is implemented.
    let s1 = Ste::from_words(
        s1().w0(),
        s1().w1(),
        Ste2::new().with_s2vmid(0x100),
        Ste3::new(),
    );
    bad_ste_with(cfg, s1);
}

#[test]
fn ste_stage2_decoded() {
    let b = Bench::new();
    let w2 = good_ste2(0x1234)
        .with_s2affd(true)
        .with_s2ha(true)
        .with_s2hd(true);
    b.write_ste(SID, &s2_ste(w2));
    let Ok(StreamConfig::Translate(t)) = b.smmu.stream_config(SID, None) else {
        panic!("not translating");
    };
    assert_eq!(t.stage1, None);
    assert_eq!(t.vmid, 0x1234);
    let s2 = t.stage2.unwrap();
    assert_eq!(
        (
            s2.ttb,
            s2.t0sz,
            s2.sl0,
            s2.start_level,
            s2.granule,
            s2.ps_bits
        ),
        (S2TTB, 24, 1, 1, Granule::K4, 48)
    );
    assert_eq!((s2.ir, s2.or, s2.sh), (1, 1, 3));
    assert!(s2.affd && s2.ha && s2.hd && s2.record && !s2.stall && !s2.ptw);
}

#[test]
fn ste_s2hd_without_s2ha_behaves_as_no_update() {
    // {S2HA, S2HD} = 0b01 is reserved and behaves as 0b00 (§5.2 S2HA).
    let b = Bench::new();
    b.write_ste(SID, &s2_ste(good_ste2(0x12).with_s2hd(true)));
    let Ok(StreamConfig::Translate(t)) = b.smmu.stream_config(SID, None) else {
        panic!("not translating");
    };
    let s2 = t.stage2.unwrap();
    assert!(!s2.ha && !s2.hd);
}

#[test]
fn sid_beyond_strtab_size_c_bad_streamid_with_recinvsid() {
    let b = Bench::new();
    // LOG2SIZE 8: StreamID 256 is out of range.
    assert_eq!(
        b.smmu.stream_config(256, Some(3)),
        Err(ConfigFault::BadStreamId)
    );
    let ev: Vec<_> = b.events().iter().map(|e| e.words).collect();
    assert_eq!(ev, [config_record(id::C_BAD_STREAMID, 256, Some(3))]);
}

#[test]
fn sid_beyond_strtab_size_not_recorded_without_recinvsid() {
    let b = Bench::new();
    b.w32(offset::CR0, 0);
    b.w32(offset::CR2, 0);
    b.w32(offset::CR0, 0xd);
    assert_eq!(
        b.smmu.stream_config(300, None),
        Err(ConfigFault::BadStreamId)
    );
    assert!(b.events().is_empty());
}

#[test]
fn ste_fetch_abort_f_ste_fetch_with_address() {
    let b = Bench::raw(Smmuv3Config::default());
    // A 256-entry table (16 KiB, aligned to its size) just beyond memory.
    let base = MEM;
    b.w64(offset::STRTAB_BASE, base);
    b.w32(offset::STRTAB_BASE_CFG, 8);
    b.w64(offset::EVENTQ_BASE, EVTQ | EVTQ_LOG2);
    b.w32(offset::CR2, 2);
    b.w32(offset::CR0, 0x5);
    let addr = base + 255 * 64;
    assert_eq!(
        b.smmu.stream_config(255, None),
        Err(ConfigFault::SteFetch { addr })
    );
    let ev: Vec<_> = b.events().iter().map(|e| e.words).collect();
    assert_eq!(ev, [[0x03 | 255 << 32, 0, 0, addr]]);
}

#[test]
fn linear_table_with_log2size_beyond_sidsize_uses_sidsize() {
    let b = Bench::raw(Smmuv3Config {
        sid_bits: 4,
        ..Smmuv3Config::default()
    });
    b.w64(offset::STRTAB_BASE, STRTAB);
    b.w32(offset::STRTAB_BASE_CFG, 8);
    b.w32(offset::CR0, 1);
    assert_eq!(
        b.smmu.stream_config(16, None),
        Err(ConfigFault::BadStreamId)
    );
    b.write_ste(15, &with_w0(s1(), |w| w.with_config(config::BYPASS)));
    assert_eq!(b.smmu.stream_config(15, None), Ok(StreamConfig::Bypass));
}

#[test]
fn two_level_stream_table_lookup() {
    // 2^16 StreamIDs, SPLIT 8: L1 entry 0x12 covers StreamIDs 0x1200..=0x12ff.
    let b = Bench::two_level(16, 8);
    b.write_u64(STRTAB + 0x12 * 8, L1Std::pointing_to(L2, 9).into_bits());
    let ste = Ste::from_words(
        Ste0::new().with_v(true).with_config(config::BYPASS),
        Ste1::new(),
        Ste2::new(),
        Ste3::new(),
    );
    b.write_ste_at(L2 + 0x34 * 64, &ste);
    assert_eq!(b.smmu.stream_config(0x1234, None), Ok(StreamConfig::Bypass));
    assert!(b.events().is_empty());
}

#[test]
fn two_level_l1_span_zero_c_bad_streamid() {
    let b = Bench::two_level(16, 8);
    assert_eq!(
        b.smmu.stream_config(0x1234, None),
        Err(ConfigFault::BadStreamId)
    );
    let ev: Vec<_> = b.events().iter().map(|e| e.words).collect();
    assert_eq!(ev, [config_record(id::C_BAD_STREAMID, 0x1234, None)]);
}

#[test]
fn two_level_sid_beyond_l2_span_c_bad_streamid() {
    let b = Bench::two_level(16, 8);
    // Span 5: 16 STEs, StreamIDs 0x1200..=0x120f.
    b.write_u64(STRTAB + 0x12 * 8, L1Std::pointing_to(L2, 5).into_bits());
    assert_eq!(
        b.smmu.stream_config(0x1210, None),
        Err(ConfigFault::BadStreamId)
    );
    // Span 10 is beyond SPLIT + 1: reserved, treated as invalid.
    b.write_u64(STRTAB + 0x13 * 8, L1Std::pointing_to(L2, 10).into_bits());
    assert_eq!(
        b.smmu.stream_config(0x1300, None),
        Err(ConfigFault::BadStreamId)
    );
    assert_eq!(b.events().len(), 2);
}

#[test]
fn two_level_l1_fetch_abort_f_ste_fetch() {
    let b = Bench::raw(Smmuv3Config::default());
    // An L1 table of 256 descriptors (2 KiB) just beyond memory.
    let base = MEM;
    b.w64(offset::STRTAB_BASE, base);
    b.w32(offset::STRTAB_BASE_CFG, 1 << 16 | 8 << 6 | 16);
    b.w64(offset::EVENTQ_BASE, EVTQ | EVTQ_LOG2);
    b.w32(offset::CR0, 0x5);
    // L1 index 8: StreamIDs 0x800..=0x8ff.
    let addr = base + 8 * 8;
    assert_eq!(
        b.smmu.stream_config(0x800, None),
        Err(ConfigFault::SteFetch { addr })
    );
    assert_eq!(b.events()[0].words, [0x03 | 0x800 << 32, 0, 0, addr]);
}

#[test]
fn two_level_format_without_st_level_reads_linear() {
    let b = Bench::raw(Smmuv3Config {
        two_level_strtab: false,
        ..Smmuv3Config::default()
    });
    b.w64(offset::STRTAB_BASE, STRTAB);
    b.w32(offset::STRTAB_BASE_CFG, 1 << 16 | 8 << 6 | 8);
    b.w32(offset::CR0, 1);
    b.write_ste(7, &with_w0(s1(), |w| w.with_config(config::BYPASS)));
    assert_eq!(b.smmu.stream_config(7, None), Ok(StreamConfig::Bypass));
}

#[test]
fn ste_bypass_with_substreamid_c_bad_substreamid() {
    let b = Bench::new();
    b.write_ste(SID, &with_w0(s1(), |w| w.with_config(config::BYPASS)));
    assert!(matches!(
        b.smmu.stream_config(SID, Some(2)),
        Err(ConfigFault::BadSubstreamId { .. })
    ));
    // No SSV bit in C_BAD_SUBSTREAMID (§7.3.9).
    assert_eq!(
        b.events()[0].words,
        [0x08 | 2 << 12 | (SID as u64) << 32, 0, 0, 0]
    );
}

#[test]
fn two_level_l2_pointer_aligned_to_its_span() {
    // Span 5: 16 STEs (1 KiB); L2Ptr[9:0] are taken as zero (§5.1 L2Ptr).
    let b = Bench::two_level(16, 8);
    b.write_u64(
        STRTAB + 0x12 * 8,
        L1Std::pointing_to(L2 + 0x200, 5).into_bits(),
    );
    b.write_ste_at(
        L2 + 3 * 64,
        &with_w0(s1(), |w| w.with_config(config::BYPASS)),
    );
    assert_eq!(b.smmu.stream_config(0x1203, None), Ok(StreamConfig::Bypass));
}

#[test]
fn linear_table_base_aligned_to_its_size() {
    // LOG2SIZE 8: a 16 KiB table, ADDR[13:0] taken as zero (§6.3.24).
    let b = Bench::raw(Smmuv3Config::default());
    b.w64(offset::STRTAB_BASE, STRTAB + 0x1040);
    b.w32(offset::STRTAB_BASE_CFG, 8);
    b.w32(offset::CR0, 1);
    b.write_ste(9, &with_w0(s1(), |w| w.with_config(config::BYPASS)));
    assert_eq!(b.smmu.stream_config(9, None), Ok(StreamConfig::Bypass));
}

#[test]
fn two_level_base_aligned_to_the_l1_table() {
    // LOG2SIZE 16, SPLIT 8: 256 L1 descriptors (2 KiB), ADDR[10:0] taken as zero.
    let b = Bench::raw(Smmuv3Config::default());
    b.w64(offset::STRTAB_BASE, STRTAB + 0x440);
    b.w32(offset::STRTAB_BASE_CFG, 1 << 16 | 8 << 6 | 16);
    b.w32(offset::CR0, 1);
    b.write_u64(STRTAB + 0x12 * 8, L1Std::pointing_to(L2, 9).into_bits());
    b.write_ste_at(
        L2 + 0x34 * 64,
        &with_w0(s1(), |w| w.with_config(config::BYPASS)),
    );
    assert_eq!(b.smmu.stream_config(0x1234, None), Ok(StreamConfig::Bypass));
}

#[test]
fn reserved_split_behaves_as_six() {
    // SPLIT 7 is reserved and behaves as 6: StreamID 0x85 = L1 entry 2, STE 5.
    let b = Bench::raw(Smmuv3Config::default());
    b.w64(offset::STRTAB_BASE, STRTAB);
    b.w32(offset::STRTAB_BASE_CFG, 1 << 16 | 7 << 6 | 12);
    b.w32(offset::CR0, 1);
    b.write_u64(STRTAB + 2 * 8, L1Std::pointing_to(L2, 7).into_bits());
    b.write_ste_at(
        L2 + 5 * 64,
        &with_w0(s1(), |w| w.with_config(config::BYPASS)),
    );
    assert_eq!(b.smmu.stream_config(0x85, None), Ok(StreamConfig::Bypass));
}
