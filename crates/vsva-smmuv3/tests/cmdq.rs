//! The command queue (IHI 0070 §4, §7.1): consumption and wrap, CERROR_ILL for every
//! command rule, CERROR_ABT, CERROR_ATC_INV_SYNC, the GERROR acknowledge that resumes it,
//! CMD_SYNC completion signals, and what each command reaches.

mod common;

use common::*;
use vsva_mem::{Pasid, PhysMem, Rid};
use vsva_pcie::{AtsInvalidation, ResponseCode};
use vsva_smmuv3::spec::cmd::{Command, PriResp, ResumeAction, SyncCs, TlbiRange};
use vsva_smmuv3::spec::registers::offset;
use vsva_smmuv3::spec::ste::{Ste, Ste0, Ste1, Ste2, Ste3, config};
use vsva_smmuv3::{Smmuv3Config, StreamConfig};

fn sync_irq(addr: u64, data: u32) -> Command {
    Command::Sync {
        cs: SyncCs::Irq,
        msh: 3,
        msiattr: 0xf,
        msidata: data,
        msiaddr: addr,
    }
}

const CFGI_ALL: Command = Command::CfgiSteRange { sid: 0, range: 31 };

/// Submits [CFGI_ALL, `bad`, CFGI_ALL] and checks the queue stopped at `bad` with
/// CERROR_ILL: CONS = 1 with ERR = 1, GERROR.CMDQ_ERR active, the GERROR MSI sent.
fn assert_ill(cfg: Smmuv3Config, bad: [u64; 2]) {
    let mut b = Bench::with(cfg);
    b.submit_raw(&[CFGI_ALL.encode(), bad, CFGI_ALL.encode()]);
    assert_eq!(b.r32(offset::CMDQ_CONS), 1 << 24 | 1, "{bad:x?}");
    assert_eq!(b.r32(offset::GERROR) ^ b.r32(offset::GERRORN), 1);
    assert_eq!(b.msi.take(), [GERROR_MSI]);
    assert_eq!(b.smmu.stats().commands, 1);
}

fn ill(bad: [u64; 2]) {
    assert_ill(Smmuv3Config::default(), bad)
}

#[test]
fn cmdq_unknown_opcode_cerror_ill() {
    ill([0x07, 0]);
    ill([0x00, 0]);
    ill([0xff, 0]);
}

#[test]
fn cmdq_secure_only_opcodes_cerror_ill() {
    ill([0x18, 0]);
    ill([0x1a, 0]);
}

#[test]
fn cmdq_reserved_field_set_cerror_ill() {
    // CFGI_STE with an SSV, CFGI_CD_ALL with a leaf bit, TLBI_NSNH_ALL with a VMID,
    // CMD_SYNC with MSIAddr bit 52, TLBI_S2_IPA with an address above bit 51.
    ill([1 << 11 | 0x03, 0]);
    ill([0x06, 1]);
    ill([1 << 32 | 0x30, 0]);
    ill([0x46, 1 << 52]);
    ill([0x2a, 1 << 52]);
}

#[test]
fn cmd_sync_reserved_completion_signal_cerror_ill() {
    ill([3 << 12 | 0x46, 0]);
}

#[test]
fn pri_resp_reserved_response_cerror_ill() {
    ill([0x41, 3 << 12]);
}

#[test]
fn resume_with_ac_and_ab_retries() {
    let mut b = Bench::new();
    // §4.7.1: with Ac = 1 (retry) the Ab bit is ignored.
    b.submit_raw(&[[4 << 32 | 3 << 12 | 0x44, 9]]);
    assert_eq!(
        *b.heard.cmds.lock().unwrap(),
        [Command::Resume {
            sid: 4,
            stag: 9,
            action: ResumeAction::Retry
        }]
    );
    assert_eq!(b.r32(offset::GERROR), 0);
}

#[test]
fn atc_inv_size_above_52_cerror_ill() {
    ill([0x40, 53]);
}

#[test]
fn tlbi_level_hint_with_tg_zero_cerror_ill() {
    // TTL (dword 1 bits 9:8) and NUM are RES0 when TG = 0 (§4.4.1.1).
    ill([0x12, 1 << 8]);
    ill([1 << 12 | 0x12, 0]);
}

#[test]
fn commands_for_missing_features_cerror_ill() {
    let no = |f: fn(&mut Smmuv3Config)| {
        let mut c = Smmuv3Config::default();
        f(&mut c);
        c
    };
    assert_ill(no(|c| c.ats = false), [0x40, 0]);
    assert_ill(no(|c| c.pri = false), [0x41, 0]);
    assert_ill(no(|c| c.stage2 = false), [0x28, 0]);
    assert_ill(no(|c| c.stage2 = false), [0x2a, 0]);
    assert_ill(no(|c| c.ril = false), [1 << 12 | 0x12, 0x1000 | 1 << 10]);
    assert_ill(no(|c| c.ril = false), [0x12, 0x1000 | 1 << 10]);
    assert_ill(no(|c| c.stage1 = false), [0x05, 0]);
    assert_ill(no(|c| c.stage1 = false), [0x06, 0]);
    assert_ill(
        no(|c| c.stall = vsva_smmuv3::StallModel::Terminate),
        [0x44, 0],
    );
    assert_ill(
        no(|c| c.stall = vsva_smmuv3::StallModel::Terminate),
        [0x45, 0],
    );
    // No IDR0.HYP in this model: every EL2 invalidation is illegal.
    for op in 0x20..=0x23 {
        ill([op, 0]);
    }
}

#[test]
fn cmdq_stays_halted_until_gerror_acknowledged_then_resumes() {
    let mut b = Bench::new();
    b.submit_raw(&[CFGI_ALL.encode(), [0x07, 0], CFGI_ALL.encode()]);
    // More commands do not move it while the error is active.
    b.submit(&[CFGI_ALL]);
    assert_eq!(b.r32(offset::CMDQ_CONS), 1 << 24 | 1);
    // Linux's __arm_smmu_cmdq_skip_err: replace the bad command with a CMD_SYNC, then
    // toggle GERRORN to acknowledge.
    b.mem
        .write(
            CMDQ + 16,
            zerocopy::IntoBytes::as_bytes(&sync_irq(0, 0).encode()),
        )
        .unwrap();
    let gerror = b.r32(offset::GERROR);
    b.w32(offset::GERRORN, gerror);
    assert_eq!(b.r32(offset::CMDQ_CONS) & 0x1f, 4);
    assert_eq!(b.smmu.stats().commands, 4);
}

#[test]
fn cmdq_fetch_abort_cerror_abt() {
    let b = Bench::raw(Smmuv3Config::default());
    b.w64(offset::CMDQ_BASE, NOWHERE | CMDQ_LOG2);
    b.w64(offset::GERROR_IRQ_CFG0, GERROR_MSI.0);
    b.w32(offset::GERROR_IRQ_CFG1, GERROR_MSI.1);
    b.w32(offset::IRQ_CTRL, 1);
    b.w32(offset::CR0, 0x8);
    b.w32(offset::CMDQ_PROD, 1);
    assert_eq!(b.r32(offset::CMDQ_CONS), 2 << 24);
    assert_eq!(b.r32(offset::GERROR), 1);
    assert_eq!(b.msi.take(), [GERROR_MSI]);
}

#[test]
fn cmd_sync_irq_writes_its_msi() {
    let mut b = Bench::new();
    b.submit(&[sync_irq(0x40_0100, 0xcafe_f00d)]);
    assert_eq!(b.msi.take(), [(0x40_0100, 0xcafe_f00d)]);
    assert_eq!(b.smmu.stats().syncs, 1);
}

#[test]
fn cmd_sync_sev_signals_a_wakeup_and_none_signals_nothing() {
    let mut b = Bench::new();
    b.submit(&[Command::Sync {
        cs: SyncCs::Sev,
        msh: 0,
        msiattr: 0,
        msidata: 7,
        msiaddr: 0x1000,
    }]);
    b.sync();
    assert!(b.msi.take().is_empty());
    let s = b.smmu.stats();
    assert_eq!((s.syncs, s.sev), (2, 1));
}

#[test]
fn cmd_sync_completes_after_the_translation_layer_syncs() {
    let mut b = Bench::new();
    b.sync();
    b.sync();
    assert_eq!(*b.heard.syncs.lock().unwrap(), 2);
}

#[test]
fn cmdq_wraps_around_its_sixteen_entries() {
    let mut b = Bench::new();
    for round in 1..=8u32 {
        b.submit(&[CFGI_ALL; 5]);
        let n = round * 5;
        // Index in bits 3:0, wrap bit 4.
        assert_eq!(b.r32(offset::CMDQ_CONS), n & 0x1f, "round {round}");
        assert_eq!(b.r32(offset::CMDQ_PROD), n & 0x1f);
    }
    assert_eq!(b.smmu.stats().commands, 40);
}

#[test]
fn cmdq_not_consumed_until_enabled() {
    let mut b = Bench::new();
    b.w32(offset::CR0, 0x5);
    b.submit(&[CFGI_ALL, CFGI_ALL]);
    assert_eq!(b.r32(offset::CMDQ_CONS), 0);
    b.w32(offset::CR0, 0xd);
    assert_eq!(b.r32(offset::CMDQ_CONS), 2);
}

fn bypass() -> Ste {
    Ste::from_words(
        Ste0::new().with_v(true).with_config(config::BYPASS),
        Ste1::new(),
        Ste2::new(),
        Ste3::new(),
    )
}

fn abort() -> Ste {
    Ste::from_words(
        Ste0::new().with_v(true).with_config(config::ABORT),
        Ste1::new(),
        Ste2::new(),
        Ste3::new(),
    )
}

/// Caches bypass configs for `sids`, then rewrites their STEs to abort.
fn cached(b: &Bench, sids: &[u32]) {
    for &s in sids {
        b.write_ste(s, &bypass());
        assert_eq!(b.smmu.stream_config(s, None), Ok(StreamConfig::Bypass));
        b.write_ste(s, &abort());
    }
}

fn seen(b: &Bench, sid: u32) -> StreamConfig {
    b.smmu.stream_config(sid, None).unwrap()
}

#[test]
fn cfgi_ste_drops_that_streams_cached_config() {
    let mut b = Bench::new();
    cached(&b, &[3, 4]);
    b.submit(&[Command::CfgiSte { sid: 3, leaf: true }]);
    assert_eq!(seen(&b, 3), StreamConfig::Abort);
    assert_eq!(seen(&b, 4), StreamConfig::Bypass);
}

#[test]
fn cfgi_ste_range_drops_the_aligned_range() {
    let mut b = Bench::new();
    cached(&b, &[3, 4, 7, 8]);
    // Range 1: 2^(1+1) = 4 StreamIDs from 5 aligned down: 4..=7.
    b.submit(&[Command::CfgiSteRange { sid: 5, range: 1 }]);
    assert_eq!(seen(&b, 3), StreamConfig::Bypass);
    assert_eq!(seen(&b, 4), StreamConfig::Abort);
    assert_eq!(seen(&b, 7), StreamConfig::Abort);
    assert_eq!(seen(&b, 8), StreamConfig::Bypass);
}

#[test]
fn cfgi_all_drops_everything() {
    let mut b = Bench::new();
    cached(&b, &[1, 200]);
    b.submit(&[CFGI_ALL]);
    assert_eq!(seen(&b, 1), StreamConfig::Abort);
    assert_eq!(seen(&b, 200), StreamConfig::Abort);
}

#[test]
fn cfgi_cd_all_drops_every_config_of_the_stream() {
    let mut b = Bench::new();
    cached(&b, &[9, 10]);
    b.submit(&[Command::CfgiCdAll { sid: 9 }]);
    assert_eq!(seen(&b, 9), StreamConfig::Abort);
    assert_eq!(seen(&b, 10), StreamConfig::Bypass);
}

#[test]
fn atc_inv_sends_an_ats_invalidate_request() {
    let mut b = Bench::new();
    // Size 4: 64 KiB from 0x1234_5000 aligned down.
    b.submit(&[Command::AtcInv {
        sid: 0x0308,
        ssid: Some(0x42),
        global: false,
        size: 4,
        addr: 0x1234_5000,
    }]);
    assert_eq!(
        *b.fabric.invalidations.lock().unwrap(),
        [AtsInvalidation {
            sid: Rid::from_raw(0x0308),
            pasid: Some(Pasid::new(0x42).unwrap()),
            addr: 0x1234_0000,
            len: 0x1_0000,
            global: false,
        }]
    );
    assert_eq!(b.r32(offset::GERROR), 0);
}

#[test]
fn atc_inv_size_all_covers_the_whole_space() {
    let mut b = Bench::new();
    // Linux's ATC_INV_SIZE_ALL = 52.
    b.submit(&[Command::AtcInv {
        sid: 1,
        ssid: Some(5),
        global: true,
        size: 52,
        addr: 0,
    }]);
    let inv = b.fabric.invalidations.lock().unwrap()[0];
    assert_eq!(
        (inv.pasid, inv.addr, inv.len, inv.global),
        (Some(Pasid::new(5).unwrap()), 0, u64::MAX, true)
    );
}

#[test]
fn atc_inv_timeout_cerror_atc_inv_sync_on_the_next_sync() {
    let mut b = Bench::new();
    *b.fabric.time_out.lock().unwrap() = true;
    let inv = Command::AtcInv {
        sid: 1,
        ssid: None,
        global: false,
        size: 0,
        addr: 0,
    };
    b.submit(&[inv, sync_irq(0x1000, 1)]);
    // CONS points at the CMD_SYNC with ERR = CERROR_ATC_INV_SYNC; no completion MSI.
    assert_eq!(b.r32(offset::CMDQ_CONS), 3 << 24 | 1);
    assert_eq!(b.msi.take(), [GERROR_MSI]);
    // Acknowledged, the CMD_SYNC is retried and completes.
    let gerror = b.r32(offset::GERROR);
    b.w32(offset::GERRORN, gerror);
    assert_eq!(b.r32(offset::CMDQ_CONS) & 0x1f, 2);
    assert_eq!(b.msi.take(), [(0x1000, 1)]);
}

#[test]
fn atc_inv_and_pri_resp_ignored_while_smmuen_clear() {
    let mut b = Bench::new();
    b.w32(offset::CR0, 0xc);
    b.submit(&[
        Command::AtcInv {
            sid: 1,
            ssid: None,
            global: false,
            size: 0,
            addr: 0,
        },
        Command::PriResp {
            sid: 1,
            ssid: None,
            prgi: 1,
            resp: PriResp::Success,
        },
    ]);
    assert_eq!(b.r32(offset::CMDQ_CONS), 2);
    assert!(b.fabric.invalidations.lock().unwrap().is_empty());
    assert!(b.fabric.responses.lock().unwrap().is_empty());
}

#[test]
fn atc_inv_global_ignored_without_substreamid() {
    let mut b = Bench::new();
    b.submit_raw(&[[1 << 32 | 1 << 9 | 0x40, 0]]);
    assert!(!b.fabric.invalidations.lock().unwrap()[0].global);
}

#[test]
fn pri_resp_sends_a_prg_response() {
    let mut b = Bench::new();
    // §4.5.2: Resp 0b10 Success, 0b01 InvalidRequest, 0b00 ResponseFailure; §8.3 maps them
    // to PCIe Response Codes 0000b, 0001b, 1111b.
    b.submit_raw(&[
        [0x10 << 32 | 3 << 12 | 1 << 11 | 0x41, 2 << 12 | 0x1ff],
        [0x10 << 32 | 0x41, 1 << 12 | 0x1ff],
        [0x10 << 32 | 0x41, 0x1ff],
    ]);
    let rid = Rid::from_raw(0x10);
    assert_eq!(
        *b.fabric.responses.lock().unwrap(),
        [
            (
                rid,
                Some(Pasid::new(3).unwrap()),
                ResponseCode::Success,
                0x1ff
            ),
            (rid, None, ResponseCode::InvalidRequest, 0x1ff),
            (rid, None, ResponseCode::ResponseFailure, 0x1ff),
        ]
    );
}

#[test]
fn tlbi_resume_and_stall_term_reach_the_translation_layer_in_order() {
    let mut b = Bench::new();
    let cmds = [
        Command::TlbiNhAsid { vmid: 0, asid: 7 },
        Command::TlbiNhVa {
            vmid: 0,
            asid: 7,
            range: TlbiRange {
                addr: 0x7000,
                leaf: true,
                ..TlbiRange::default()
            },
        },
        Command::TlbiS12Vmall { vmid: 2 },
        Command::TlbiNsnhAll,
        Command::Resume {
            sid: 4,
            stag: 9,
            action: ResumeAction::Retry,
        },
        Command::StallTerm { sid: 4 },
    ];
    b.submit(&cmds);
    assert_eq!(*b.heard.cmds.lock().unwrap(), cmds);
}

#[test]
fn cmd_sync_irq_without_address_or_msi_support_writes_nothing() {
    // §4.7.3: no MSI when MSIAddress is zero, or when the SMMU has no MSIs.
    let mut b = Bench::new();
    b.submit(&[sync_irq(0, 5)]);
    assert!(b.msi.take().is_empty());
    let mut b = Bench::with(Smmuv3Config {
        msi: false,
        ..Smmuv3Config::default()
    });
    b.submit(&[sync_irq(0x1000, 5)]);
    assert!(b.msi.take().is_empty());
    assert_eq!(b.smmu.stats().syncs, 1);
}

#[test]
fn cmdq_log2size_above_cmdqs_is_capped() {
    // CMDQS 2 (4 entries): LOG2SIZE 4 reads back as written but the queue has 4 entries,
    // so index 4 wraps to slot 0 with the wrap bit (bit 2) set.
    let b = Bench::raw(Smmuv3Config {
        cmdq_bits: 2,
        ..Smmuv3Config::default()
    });
    b.w64(offset::CMDQ_BASE, CMDQ | 4);
    assert_eq!(b.r64(offset::CMDQ_BASE), CMDQ | 4);
    b.w32(offset::CR0, 0x8);
    for i in 0..4u64 {
        b.mem
            .write(
                CMDQ + i * 16,
                zerocopy::IntoBytes::as_bytes(&CFGI_ALL.encode()),
            )
            .unwrap();
    }
    b.w32(offset::CMDQ_PROD, 0b100);
    assert_eq!(b.r32(offset::CMDQ_CONS), 0b100);
    assert_eq!(b.smmu.stats().commands, 4);
}

#[test]
fn cfgi_cd_drops_only_the_configs_that_used_that_cd() {
    let mut b = Bench::new();
    let sid = 3;
    b.write_ste(sid, &s1_ste(CDTAB, 4, 0));
    b.write_cd_at(CDTAB + 64, &good_cd(1));
    b.write_cd_at(CDTAB + 2 * 64, &good_cd(2));
    let asid = |b: &Bench, ssid| match b.smmu.stream_config(sid, Some(ssid)) {
        Ok(StreamConfig::Translate(t)) => t.stage1.unwrap().asid,
        other => panic!("{other:?}"),
    };
    assert_eq!((asid(&b, 1), asid(&b, 2)), (1, 2));
    b.write_cd_at(CDTAB + 64, &good_cd(11));
    b.write_cd_at(CDTAB + 2 * 64, &good_cd(12));
    b.submit(&[Command::CfgiCd {
        sid,
        ssid: 1,
        leaf: true,
    }]);
    assert_eq!((asid(&b, 1), asid(&b, 2)), (11, 2));
}
