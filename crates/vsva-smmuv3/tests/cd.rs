//! CD lookup and validation (IHI 0070 §5.3, §5.4), SubstreamID rules and S1DSS (§5.2):
//! every illegal CD field one at a time gives C_BAD_CD with the exact record.

mod common;

use common::*;
use vsva_smmuv3::spec::cd::{Cd, Cd0, CdTtb, L1Cd};
use vsva_smmuv3::spec::event::id;
use vsva_smmuv3::spec::ste::{Ste, s1dss, s1fmt};
use vsva_smmuv3::{ConfigFault, Granule, Httu, Smmuv3Config, StallModel, StreamConfig};

const SID: u32 = 5;

fn with_s1dss(ste: Ste, v: u8) -> Ste {
    Ste::from_words(ste.w0(), ste.w1().with_s1dss(v), ste.w2(), ste.w3())
}

/// Installs a linear single-CD stream whose CD 0 is `cd` and checks the lookup is C_BAD_CD
/// with the record [C_BAD_CD | SID << 32, 0, 0, 0].
fn bad_cd_with(cfg: Smmuv3Config, cd: Cd) {
    let b = Bench::with(cfg);
    b.write_ste(SID, &s1_ste(CDTAB, 0, s1fmt::LINEAR));
    b.write_cd_at(CDTAB, &cd);
    let got = b.smmu.stream_config(SID, None);
    assert!(matches!(got, Err(ConfigFault::BadCd { .. })), "{got:?}");
    let ev: Vec<_> = b.events().iter().map(|e| e.words).collect();
    assert_eq!(ev, [config_record(id::C_BAD_CD, SID, None)]);
}

fn bad_cd(w0: Cd0) {
    bad_cd_with(Smmuv3Config::default(), cd_from(w0, S1TTB))
}

#[test]
fn cd_valid_bit_clear_c_bad_cd() {
    bad_cd(good_cd0(1).with_v(false));
}

#[test]
fn cd_aa64_clear_c_bad_cd() {
    bad_cd(good_cd0(1).with_aa64(false));
}

#[test]
fn cd_endi_c_bad_cd() {
    bad_cd(good_cd0(1).with_endi(true));
}

#[test]
fn cd_t0sz_out_of_range_c_bad_cd() {
    bad_cd(good_cd0(1).with_t0sz(15));
    bad_cd(good_cd0(1).with_t0sz(40));
}

#[test]
fn cd_tg0_reserved_or_unsupported_c_bad_cd() {
    bad_cd(good_cd0(1).with_tg0(3));
    // TG0 = 2 is 16 KiB, not in the default IDR5.
    bad_cd(good_cd0(1).with_tg0(2));
}

#[test]
fn cd_ttb1_checked_unless_epd1_c_bad_cd() {
    // EPD1 = 0 with TG1 = 0 (reserved in the TG1 encoding).
    bad_cd(good_cd0(1).with_epd1(false).with_t1sz(16));
    // EPD1 = 0, TG1 = 2 (4 KiB), T1SZ 12: out of range.
    bad_cd(good_cd0(1).with_epd1(false).with_tg1(2).with_t1sz(12));
}

#[test]
fn cd_ips_above_oas_capped_to_oas() {
    let b = Bench::new();
    b.write_ste(SID, &s1_ste(CDTAB, 0, s1fmt::LINEAR));
    b.write_cd_at(CDTAB, &cd_from(good_cd0(1).with_ips(7), S1TTB));
    let Ok(StreamConfig::Translate(t)) = b.smmu.stream_config(SID, None) else {
        panic!("not translating");
    };
    assert_eq!(t.stage1.unwrap().ips_bits, 48);
}

#[test]
fn cd_endi_ignored_when_both_tables_disabled() {
    let b = Bench::new();
    b.write_ste(SID, &s1_ste(CDTAB, 0, s1fmt::LINEAR));
    b.write_cd_at(CDTAB, &good_cd(1));
    let w0 = good_cd0(1).with_epd0(true).with_endi(true);
    b.write_cd_at(CDTAB, &cd_from(w0, S1TTB));
    assert!(matches!(
        b.smmu.stream_config(SID, None),
        Ok(StreamConfig::Translate(_))
    ));
}

#[test]
fn cd_ha_hd_against_httu_c_bad_cd() {
    let httu = |h| Smmuv3Config {
        httu: h,
        ..Smmuv3Config::default()
    };
    bad_cd_with(httu(Httu::None), cd_from(good_cd0(1).with_ha(true), S1TTB));
    bad_cd_with(httu(Httu::None), cd_from(good_cd0(1).with_hd(true), S1TTB));
    bad_cd_with(
        httu(Httu::Access),
        cd_from(good_cd0(1).with_ha(true).with_hd(true), S1TTB),
    );
}

#[test]
fn cd_asid_high_byte_without_asid16_c_bad_cd() {
    bad_cd_with(
        Smmuv3Config {
            asid16: false,
            ..Smmuv3Config::default()
        },
        good_cd(0x100),
    );
}

#[test]
fn cd_stall_under_ste_s1stalld_c_bad_cd() {
    let b = Bench::new();
    let ste = s1_ste(CDTAB, 0, s1fmt::LINEAR);
    b.write_ste(
        SID,
        &Ste::from_words(ste.w0(), ste.w1().with_s1stalld(true), ste.w2(), ste.w3()),
    );
    b.write_cd_at(CDTAB, &cd_from(good_cd0(1).with_s(true), S1TTB));
    assert!(matches!(
        b.smmu.stream_config(SID, None),
        Err(ConfigFault::BadCd { .. })
    ));
    assert_eq!(b.events()[0].words, config_record(id::C_BAD_CD, SID, None));
}

#[test]
fn cd_ttb0_beyond_ips_c_bad_cd() {
    // IPS 0 = 32 bits; TTB0 at 4 GiB.
    bad_cd_with(
        Smmuv3Config::default(),
        cd_from(good_cd0(1).with_ips(0), 1 << 32),
    );
}

#[test]
fn cd_stall_against_stall_model_c_bad_cd() {
    bad_cd_with(
        Smmuv3Config {
            stall: StallModel::Terminate,
            ..Smmuv3Config::default()
        },
        cd_from(good_cd0(1).with_s(true), S1TTB),
    );
    bad_cd_with(
        Smmuv3Config {
            stall: StallModel::Force,
            ..Smmuv3Config::default()
        },
        good_cd(1),
    );
}

#[test]
fn cd_epd0_skips_ttb0_checks() {
    let b = Bench::new();
    b.write_ste(SID, &s1_ste(CDTAB, 0, s1fmt::LINEAR));
    b.write_cd_at(CDTAB, &cd_from(good_cd0(1).with_epd0(true).with_t0sz(0), 0));
    let Ok(StreamConfig::Translate(t)) = b.smmu.stream_config(SID, None) else {
        panic!("not translating");
    };
    assert_eq!(t.stage1.unwrap().ttb0, None);
}

#[test]
fn cd_stage1_decoded() {
    let b = Bench::new();
    b.write_ste(SID, &s1_ste(CDTAB, 0, s1fmt::LINEAR));
    let w0 = good_cd0(0x4321)
        .with_ha(true)
        .with_hd(true)
        .with_tbi0(true)
        .with_wxn(true)
        .with_aset(true)
        .with_ips(6);
    let mut cd = Cd::from_words(
        w0,
        CdTtb::new().with_ttb(S1TTB >> 4).with_had(true),
        CdTtb::new(),
        0xff,
    );
    cd.words[4] = 0x1234;
    b.write_cd_at(CDTAB, &cd);
    let Ok(StreamConfig::Translate(t)) = b.smmu.stream_config(SID, None) else {
        panic!("not translating");
    };
    assert_eq!((t.sid, t.ssid, t.stage2), (SID, None, None));
    let s1 = t.stage1.unwrap();
    let tt = s1.ttb0.unwrap();
    assert_eq!((tt.ttb, tt.tsz, tt.granule), (S1TTB, 16, Granule::K4));
    assert_eq!((tt.ir, tt.or, tt.sh, tt.had, tt.tbi), (1, 1, 3, true, true));
    assert_eq!(s1.ttb1, None);
    // IPS 52 bits capped at the 48-bit OAS.
    assert_eq!(
        (s1.asid, s1.ips_bits, s1.mair, s1.amair),
        (0x4321, 48, 0xff, 0x1234)
    );
    assert!(s1.ha && s1.hd && s1.wxn && s1.aset && s1.record && s1.abort && !s1.stall);
}

#[test]
fn cd_hd_without_ha_behaves_as_no_dirty_update() {
    let b = Bench::with(Smmuv3Config {
        httu: Httu::AccessDirty,
        ..Smmuv3Config::default()
    });
    b.write_ste(SID, &s1_ste(CDTAB, 0, s1fmt::LINEAR));
    b.write_cd_at(CDTAB, &cd_from(good_cd0(0x1234).with_hd(true), S1TTB));
    let Ok(StreamConfig::Translate(t)) = b.smmu.stream_config(SID, None) else {
        panic!("not translating");
    };
    let s1 = t.stage1.unwrap();
    assert_eq!((s1.ha, s1.hd, s1.asid), (false, false, 0x1234));
}

#[test]
fn nested_stream_has_both_stages() {
    let b = Bench::new();
    // Nested, S1ContextPtr is an IPA: stage 2 maps the CD table's page to itself.
    let s2 = vsva_pgtable::PageTable::new(
        common::xlate::s2_format(),
        common::xlate::frames(&b, common::xlate::S2_FRAMES),
    )
    .unwrap();
    s2.map(
        CDTAB,
        CDTAB,
        vsva_mem::PageSize::Size4K,
        vsva_pgtable::Perm::RW,
    )
    .unwrap();
    let ste = s1_ste(CDTAB, 0, s1fmt::LINEAR);
    let ste = Ste::from_words(
        ste.w0().with_config(vsva_smmuv3::spec::ste::config::NESTED),
        ste.w1().with_eats(vsva_smmuv3::spec::ste::eats::S1CHK),
        good_ste2(3),
        vsva_smmuv3::spec::ste::Ste3::new().with_s2ttb(s2.root() >> 4),
    );
    b.write_ste(SID, &ste);
    b.write_cd_at(CDTAB, &good_cd(1));
    let Ok(StreamConfig::Translate(t)) = b.smmu.stream_config(SID, None) else {
        panic!("not translating");
    };
    assert!(t.stage1.is_some() && t.stage2.is_some());
    assert_eq!((t.vmid, t.eats), (3, 2));
}

#[test]
fn ssid_beyond_s1cdmax_c_bad_substreamid() {
    let b = Bench::new();
    b.write_ste(SID, &s1_ste(CDTAB, 4, s1fmt::LINEAR));
    assert!(matches!(
        b.smmu.stream_config(SID, Some(16)),
        Err(ConfigFault::BadSubstreamId { .. })
    ));
    let ev: Vec<_> = b.events().iter().map(|e| e.words).collect();
    assert_eq!(ev, [[0x08 | 16 << 12 | (SID as u64) << 32, 0, 0, 0]]);
}

#[test]
fn ssid_with_s1cdmax_zero_c_bad_substreamid() {
    let b = Bench::new();
    b.write_ste(SID, &s1_ste(CDTAB, 0, s1fmt::LINEAR));
    b.write_cd_at(CDTAB, &good_cd(1));
    assert!(matches!(
        b.smmu.stream_config(SID, Some(0)),
        Err(ConfigFault::BadSubstreamId { .. })
    ));
    assert_eq!(b.events()[0].words, [0x08 | (SID as u64) << 32, 0, 0, 0]);
}

#[test]
fn ssid_on_stream_without_stage1_c_bad_substreamid() {
    let b = Bench::new();
    b.write_ste(SID, &s2_ste(good_ste2(1)));
    assert!(matches!(
        b.smmu.stream_config(SID, Some(1)),
        Err(ConfigFault::BadSubstreamId { .. })
    ));
    assert_eq!(
        b.events()[0].words,
        [0x08 | 1 << 12 | (SID as u64) << 32, 0, 0, 0]
    );
}

#[test]
fn ssid_zero_with_s1dss_ssid0_f_stream_disabled() {
    let b = Bench::new();
    b.write_ste(
        SID,
        &with_s1dss(s1_ste(CDTAB, 4, s1fmt::LINEAR), s1dss::SSID0),
    );
    b.write_cd_at(CDTAB, &good_cd(1));
    // §5.2 S1DSS 0b10, §7.3.7: SubstreamID 0 is reserved for traffic without one.
    assert_eq!(
        b.smmu.stream_config(SID, Some(0)),
        Err(ConfigFault::StreamDisabled)
    );
    assert_eq!(
        b.events()[0].words,
        config_record(id::F_STREAM_DISABLED, SID, Some(0))
    );
    // Without a SubstreamID the same stream uses CD 0.
    let Ok(StreamConfig::Translate(t)) = b.smmu.stream_config(SID, None) else {
        panic!("not translating");
    };
    assert_eq!(t.stage1.unwrap().asid, 1);
    assert!(b.events().is_empty());
}

#[test]
fn no_ssid_with_s1dss_terminate_f_stream_disabled() {
    let b = Bench::new();
    b.write_ste(
        SID,
        &with_s1dss(s1_ste(CDTAB, 4, s1fmt::LINEAR), s1dss::TERMINATE),
    );
    assert_eq!(
        b.smmu.stream_config(SID, None),
        Err(ConfigFault::StreamDisabled)
    );
    let ev: Vec<_> = b.events().iter().map(|e| e.words).collect();
    assert_eq!(ev, [[0x06 | (SID as u64) << 32, 0, 0, 0]]);
}

#[test]
fn no_ssid_with_s1dss_bypass_skips_stage1() {
    let b = Bench::new();
    b.write_ste(
        SID,
        &with_s1dss(s1_ste(CDTAB, 4, s1fmt::LINEAR), s1dss::BYPASS),
    );
    let Ok(StreamConfig::Translate(t)) = b.smmu.stream_config(SID, None) else {
        panic!("not translating");
    };
    assert_eq!((t.stage1, t.stage2), (None, None));
}

#[test]
fn linear_cd_table_pointer_aligned_to_table_size() {
    let b = Bench::new();
    // 16 CDs: S1ContextPtr[9:6] are RES0 and taken as zero (§5.2 S1Fmt).
    b.write_ste(SID, &s1_ste(CDTAB + 0x80, 4, s1fmt::LINEAR));
    b.write_cd_at(CDTAB + 3 * 64, &good_cd(3));
    let Ok(StreamConfig::Translate(t)) = b.smmu.stream_config(SID, Some(3)) else {
        panic!("not translating");
    };
    assert_eq!(t.stage1.unwrap().asid, 3);
}

#[test]
fn linear_cd_table_indexed_by_ssid() {
    let b = Bench::new();
    b.write_ste(SID, &s1_ste(CDTAB, 4, s1fmt::LINEAR));
    b.write_cd_at(CDTAB + 9 * 64, &good_cd(9));
    let Ok(StreamConfig::Translate(t)) = b.smmu.stream_config(SID, Some(9)) else {
        panic!("not translating");
    };
    assert_eq!((t.ssid, t.stage1.unwrap().asid), (Some(9), 9));
}

#[test]
fn two_level_cd_table_4k_leaves() {
    let b = Bench::new();
    // S1Fmt 4 KiB leaves: 64 CDs per level-2 table; SSID 0x85 = L1 entry 2, CD 5.
    b.write_ste(SID, &s1_ste(CDTAB, 10, s1fmt::L2_4K));
    b.write_u64(CDTAB + 2 * 8, L1Cd::pointing_to(L2).into_bits());
    b.write_cd_at(L2 + 5 * 64, &good_cd(0x85));
    let Ok(StreamConfig::Translate(t)) = b.smmu.stream_config(SID, Some(0x85)) else {
        panic!("not translating");
    };
    assert_eq!(t.stage1.unwrap().asid, 0x85);
}

#[test]
fn two_level_cd_table_64k_leaves() {
    let b = Bench::new();
    // S1Fmt 64 KiB leaves: 1024 CDs per level-2 table; SSID 0xc01 = L1 entry 3, CD 1.
    b.write_ste(SID, &s1_ste(CDTAB, 20, s1fmt::L2_64K));
    b.write_u64(CDTAB + 3 * 8, L1Cd::pointing_to(L2).into_bits());
    b.write_cd_at(L2 + 64, &good_cd(0xc01));
    let Ok(StreamConfig::Translate(t)) = b.smmu.stream_config(SID, Some(0xc01)) else {
        panic!("not translating");
    };
    assert_eq!(t.stage1.unwrap().asid, 0xc01);
}

#[test]
fn two_level_cd_table_invalid_l1cd_c_bad_substreamid() {
    let b = Bench::new();
    b.write_ste(SID, &s1_ste(CDTAB, 10, s1fmt::L2_4K));
    assert!(matches!(
        b.smmu.stream_config(SID, Some(0x85)),
        Err(ConfigFault::BadSubstreamId { .. })
    ));
    assert_eq!(
        b.events()[0].words,
        [0x08 | 0x85 << 12 | (SID as u64) << 32, 0, 0, 0]
    );
}

#[test]
fn cd_fetch_abort_f_cd_fetch_with_address() {
    let b = Bench::new();
    // A table of 16 CDs, aligned to its size, just beyond memory.
    let table = MEM;
    b.write_ste(SID, &s1_ste(table, 4, s1fmt::LINEAR));
    let addr = table + 6 * 64;
    assert_eq!(
        b.smmu.stream_config(SID, Some(6)),
        Err(ConfigFault::CdFetch { addr })
    );
    let ev: Vec<_> = b.events().iter().map(|e| e.words).collect();
    assert_eq!(
        ev,
        [[0x09 | 1 << 11 | 6 << 12 | (SID as u64) << 32, 0, 0, addr]]
    );
}

#[test]
fn l1cd_fetch_abort_f_cd_fetch() {
    let b = Bench::new();
    let table = MEM;
    b.write_ste(SID, &s1_ste(table, 10, s1fmt::L2_4K));
    // SSID 0x200: L1 entry 8, beyond memory.
    let addr = table + 8 * 8;
    assert_eq!(
        b.smmu.stream_config(SID, Some(0x200)),
        Err(ConfigFault::CdFetch { addr })
    );
    assert_eq!(b.events()[0].words[3], addr);
}

#[test]
fn config_cache_serves_until_cfgi_and_smmuen_toggle_empties_it() {
    let mut b = Bench::new();
    b.write_ste(SID, &s1_ste(CDTAB, 0, s1fmt::LINEAR));
    b.write_cd_at(CDTAB, &good_cd(1));
    let asid = |b: &Bench| match b.smmu.stream_config(SID, None) {
        Ok(StreamConfig::Translate(t)) => t.stage1.unwrap().asid,
        other => panic!("{other:?}"),
    };
    assert_eq!(asid(&b), 1);
    b.write_cd_at(CDTAB, &good_cd(2));
    assert_eq!(asid(&b), 1, "cached until invalidated");
    b.submit(&[vsva_smmuv3::spec::cmd::Command::CfgiCd {
        sid: SID,
        ssid: 0,
        leaf: true,
    }]);
    assert_eq!(asid(&b), 2);
    b.write_cd_at(CDTAB, &good_cd(3));
    b.w32(vsva_smmuv3::spec::registers::offset::CR0, 0xc);
    b.w32(vsva_smmuv3::spec::registers::offset::CR0, 0xd);
    assert_eq!(asid(&b), 3);
    let s = b.smmu.stats().cache;
    assert_eq!((s.hits, s.misses), (1, 3));
}

#[test]
fn cd_ttb0_beyond_48_bits_with_4k_granule_c_bad_cd() {
    // OAS 52 bits with 64 KiB and 4 KiB granules: a 4 KiB-granule TTB0 above 48 bits is
    // ILLEGAL without DS even though IPS allows 52 bits.
    bad_cd_with(
        Smmuv3Config {
            oas: 6,
            ..Smmuv3Config::default()
        },
        cd_from(good_cd0(1).with_ips(6), 1 << 49),
    );
}
