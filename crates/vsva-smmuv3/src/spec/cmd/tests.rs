//! Encodings checked against Linux's field macros, and the CERROR_ILL rules.
use super::*;

const ALL: CommandCaps = CommandCaps {
    s1p: true,
    s2p: true,
    hyp: true,
    ats: true,
    pri: true,
    ril: true,
    stall: true,
};

fn round_trip(c: Command, want: [u64; 2]) {
    assert_eq!(c.encode(), want, "{c:?}");
    assert_eq!(Command::decode(want, &ALL), Ok(c));
}

// Expected dwords are what Linux arm_smmu_cmdq_build_cmd builds with its CMDQ_* field
// macros, worked out by hand.

#[test]
fn cfgi_commands_encode_as_linux() {
    // CFGI_STE: OP 0x03, CMDQ_CFGI_0_SID(63,32) = 0x1234, CMDQ_CFGI_1_LEAF bit 0.
    round_trip(
        Command::CfgiSte {
            sid: 0x1234,
            leaf: true,
        },
        [0x1234 << 32 | 0x03, 1],
    );
    // CFGI_ALL: OP 0x04, CMDQ_CFGI_1_RANGE(4,0) = 31.
    round_trip(Command::CfgiSteRange { sid: 0, range: 31 }, [0x04, 31]);
    // CFGI_CD: CMDQ_CFGI_0_SSID(31,12) = 0xabcde -> 0xabcde000.
    round_trip(
        Command::CfgiCd {
            sid: 7,
            ssid: 0xabcde,
            leaf: true,
        },
        [7 << 32 | 0xabcd_e000 | 0x05, 1],
    );
    round_trip(Command::CfgiCdAll { sid: 9 }, [9 << 32 | 0x06, 0]);
    round_trip(
        Command::PrefetchConfig { sid: 3, ssid: None },
        [3 << 32 | 0x01, 0],
    );
}

#[test]
fn tlbi_commands_encode_as_linux() {
    // TLBI_NH_VA: NUM(16,12) = 3, SCALE(24,20) = 1, VMID(47,32) = 2, ASID(63,48) = 5;
    // LEAF bit 0, TTL(9,8) = 3, TG(11,10) = 1, VA(63,12).
    let range = TlbiRange {
        addr: 0xffff_0000_1234_5000,
        leaf: true,
        ttl: 3,
        tg: 1,
        num: 3,
        scale: 1,
    };
    round_trip(
        Command::TlbiNhVa {
            vmid: 2,
            asid: 5,
            range,
        },
        [
            5 << 48 | 2 << 32 | 1 << 20 | 3 << 12 | 0x12,
            0xffff_0000_1234_5000 | 1 << 10 | 3 << 8 | 1,
        ],
    );
    round_trip(
        Command::TlbiNhAsid {
            vmid: 0,
            asid: 0x42,
        },
        [0x42 << 48 | 0x11, 0],
    );
    round_trip(Command::TlbiNhAll { vmid: 7 }, [7 << 32 | 0x10, 0]);
    round_trip(Command::TlbiS12Vmall { vmid: 0x99 }, [0x99 << 32 | 0x28, 0]);
    round_trip(Command::TlbiNsnhAll, [0x30, 0]);
    round_trip(Command::TlbiEl2All, [0x20, 0]);
    // TLBI_S2_IPA: CMDQ_TLBI_1_IPA_MASK GENMASK(51,12).
    round_trip(
        Command::TlbiS2Ipa {
            vmid: 1,
            range: TlbiRange {
                addr: 0x8_0000_0000,
                ..TlbiRange::default()
            },
        },
        [1 << 32 | 0x2a, 0x8_0000_0000],
    );
}

#[test]
fn atc_pri_resume_sync_encode_as_linux() {
    // ATC_INV: GLOBAL bit 9, SSV bit 11, SSID(31,12), SID(63,32); SIZE(5,0), ADDR(63,12).
    round_trip(
        Command::AtcInv {
            sid: 0x10,
            ssid: Some(1),
            global: false,
            size: 52,
            addr: 0,
        },
        [0x10 << 32 | 1 << 12 | 1 << 11 | 0x40, 52],
    );
    // PRI_RESP: GRPID(8,0) = 0x1ff, RESP(13,12) = PRI_RESP_SUCC (2).
    round_trip(
        Command::PriResp {
            sid: 4,
            ssid: Some(0x20),
            prgi: 0x1ff,
            resp: PriResp::Success,
        },
        [4 << 32 | 0x20 << 12 | 1 << 11 | 0x41, 2 << 12 | 0x1ff],
    );
    // RESUME: RESP(13,12) = RETRY (1), SID(63,32); STAG(15,0).
    round_trip(
        Command::Resume {
            sid: 6,
            stag: 0xbeef,
            action: ResumeAction::Retry,
        },
        [6 << 32 | 1 << 12 | 0x44, 0xbeef],
    );
    round_trip(Command::StallTerm { sid: 6 }, [6 << 32 | 0x45, 0]);
    // CMD_SYNC: CS(13,12) = IRQ (1), MSH(23,22) = ISH (3), MSIATTR(27,24) = OIWB (0xf),
    // MSIDATA(63,32); MSIADDR GENMASK(51,2).
    round_trip(
        Command::Sync {
            cs: SyncCs::Irq,
            msh: 3,
            msiattr: 0xf,
            msidata: 0xcafe,
            msiaddr: 0x8000_0004,
        },
        [
            0xcafe << 32 | 0xf << 24 | 3 << 22 | 1 << 12 | 0x46,
            0x8000_0004,
        ],
    );
}

#[test]
fn command_rules_make_cerror_ill() {
    let none = CommandCaps::default();
    assert_eq!(
        Command::decode([0x07, 0], &ALL),
        Err(IllegalCommand::UnknownOpcode(0x07))
    );
    assert_eq!(
        Command::decode([op::TLBI_EL3_ALL as u64, 0], &ALL),
        Err(IllegalCommand::UnknownOpcode(0x18))
    );
    // CFGI_STE with an SSID: bits 31:12 are RES0 in it.
    assert!(matches!(
        Command::decode([1 << 12 | 0x03, 0], &ALL),
        Err(IllegalCommand::Reserved { dword: 0, .. })
    ));
    assert!(matches!(
        Command::decode([0x03, 2], &ALL),
        Err(IllegalCommand::Reserved {
            dword: 1,
            bits: 2,
            ..
        })
    ));
    assert!(
        Command::decode([3 << 12 | 0x46, 0], &ALL).is_err(),
        "CS 0b11"
    );
    assert!(
        Command::decode([0x41, 3 << 12], &ALL).is_err(),
        "PRI resp 0b11"
    );
    assert!(
        Command::decode([0x41, 0], &none).is_err(),
        "PRI_RESP without PRI"
    );
    assert!(
        Command::decode([0x40, 0], &none).is_err(),
        "ATC_INV without ATS"
    );
    assert!(
        Command::decode([0x20, 0], &none).is_err(),
        "EL2 without HYP"
    );
    assert!(
        Command::decode([0x2a, 0], &none).is_err(),
        "S2 TLBI without S2P"
    );
    assert!(
        Command::decode([1 << 12 | 0x12, 0], &none).is_err(),
        "NUM without RIL"
    );
    assert!(Command::decode([0x12, 0], &none).is_ok());
}
