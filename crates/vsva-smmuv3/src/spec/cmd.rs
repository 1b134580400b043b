//! Commands (IHI 0070 §4): 16-byte command queue entries, their opcodes and fields, decoded
//! into [`Command`] with the validity rules that make a command CERROR_ILL (§4.1.3, §7.1).
//!
//! Field positions follow Linux `arm-smmu-v3.h` (`CMDQ_*`). Every opcode has a mask of the
//! bits its fields occupy; a bit set outside them is a RES0 field written non-zero, which
//! this model treats as ILLEGAL (§4.1.5 lets an implementation either ignore it or report
//! CERROR_ILL; the strict choice makes driver bugs visible).

/// Bytes per command.
pub const CMD_BYTES: u64 = 16;

/// Command opcodes (§4.1.1), as Linux `CMDQ_OP_*` spells them.
pub mod op {
    /// CMD_PREFETCH_CONFIG.
    pub const PREFETCH_CONFIG: u8 = 0x01;
    /// CMD_PREFETCH_ADDR.
    pub const PREFETCH_ADDR: u8 = 0x02;
    /// CMD_CFGI_STE.
    pub const CFGI_STE: u8 = 0x03;
    /// CMD_CFGI_STE_RANGE; CMD_CFGI_ALL is this opcode with Range = 31.
    pub const CFGI_STE_RANGE: u8 = 0x04;
    /// CMD_CFGI_ALL (CFGI_STE_RANGE, Range = 31).
    pub const CFGI_ALL: u8 = 0x04;
    /// CMD_CFGI_CD.
    pub const CFGI_CD: u8 = 0x05;
    /// CMD_CFGI_CD_ALL.
    pub const CFGI_CD_ALL: u8 = 0x06;
    /// CMD_TLBI_NH_ALL.
    pub const TLBI_NH_ALL: u8 = 0x10;
    /// CMD_TLBI_NH_ASID.
    pub const TLBI_NH_ASID: u8 = 0x11;
    /// CMD_TLBI_NH_VA.
    pub const TLBI_NH_VA: u8 = 0x12;
    /// CMD_TLBI_NH_VAA.
    pub const TLBI_NH_VAA: u8 = 0x13;
    /// CMD_TLBI_EL3_ALL (Secure only: ILLEGAL on this Non-secure queue).
    pub const TLBI_EL3_ALL: u8 = 0x18;
    /// CMD_TLBI_EL3_VA (Secure only).
    pub const TLBI_EL3_VA: u8 = 0x1a;
    /// CMD_TLBI_EL2_ALL.
    pub const TLBI_EL2_ALL: u8 = 0x20;
    /// CMD_TLBI_EL2_ASID.
    pub const TLBI_EL2_ASID: u8 = 0x21;
    /// CMD_TLBI_EL2_VA.
    pub const TLBI_EL2_VA: u8 = 0x22;
    /// CMD_TLBI_EL2_VAA.
    pub const TLBI_EL2_VAA: u8 = 0x23;
    /// CMD_TLBI_S12_VMALL.
    pub const TLBI_S12_VMALL: u8 = 0x28;
    /// CMD_TLBI_S2_IPA.
    pub const TLBI_S2_IPA: u8 = 0x2a;
    /// CMD_TLBI_NSNH_ALL.
    pub const TLBI_NSNH_ALL: u8 = 0x30;
    /// CMD_ATC_INV.
    pub const ATC_INV: u8 = 0x40;
    /// CMD_PRI_RESP.
    pub const PRI_RESP: u8 = 0x41;
    /// CMD_RESUME.
    pub const RESUME: u8 = 0x44;
    /// CMD_STALL_TERM.
    pub const STALL_TERM: u8 = 0x45;
    /// CMD_SYNC.
    pub const SYNC: u8 = 0x46;
}

// Field masks of dword 0 and dword 1.
const OP: u64 = 0xff;
const GLOBAL: u64 = 1 << 9;
const SSV: u64 = 1 << 11;
const SSID: u64 = 0xffff_f000;
const SID: u64 = 0xffff_ffff << 32;
const NUM: u64 = 0x1f << 12;
const SCALE: u64 = 0x1f << 20;
const VMID: u64 = 0xffff << 32;
const ASID: u64 = 0xffff << 48;
const RESP0: u64 = 0x3 << 12;
const LEAF: u64 = 1;
const TTL: u64 = 0x3 << 8;
const TG: u64 = 0x3 << 10;
const VA: u64 = !0xfff;
const IPA: u64 = 0x000f_ffff_ffff_f000;
const SYNC_CS: u64 = 0x3 << 12;
const SYNC_MSH: u64 = 0x3 << 22;
const SYNC_MSIATTR: u64 = 0xf << 24;
const SYNC_MSIDATA: u64 = 0xffff_ffff << 32;
const SYNC_MSIADDR: u64 = 0x000f_ffff_ffff_fffc;

/// What the SMMU's ID registers allow, as far as command validity depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommandCaps {
    /// IDR0.S1P: CD invalidations exist.
    pub s1p: bool,
    /// IDR0.S2P: stage 2 TLB invalidations exist.
    pub s2p: bool,
    /// IDR0.HYP: EL2 TLB invalidations exist.
    pub hyp: bool,
    /// IDR0.ATS: CMD_ATC_INV exists.
    pub ats: bool,
    /// IDR0.PRI: CMD_PRI_RESP exists.
    pub pri: bool,
    /// IDR3.RIL: TLBI NUM/SCALE/TTL/TG fields exist.
    pub ril: bool,
    /// IDR0.STALL_MODEL != 0b01: CMD_RESUME and CMD_STALL_TERM exist.
    pub stall: bool,
}

/// The address range fields of a TLBI by address (§4.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TlbiRange {
    /// The (page-aligned) address.
    pub addr: u64,
    /// Leaf: only last-level entries need invalidating.
    pub leaf: bool,
    /// Translation table level hint.
    pub ttl: u8,
    /// Translation granule hint (0: none).
    pub tg: u8,
    /// Range: number of pages - 1 (with IDR3.RIL).
    pub num: u8,
    /// Range: scale (with IDR3.RIL).
    pub scale: u8,
}

/// CMD_SYNC completion signal (§4.7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncCs {
    /// No signal.
    None,
    /// An MSI write of MSIData to MSIAddr.
    Irq,
    /// A wake-up event (SEV).
    Sev,
}

/// CMD_PRI_RESP Resp (§4.5.2), named as the spec names the encodings. Linux's
/// `enum pri_resp` calls 0b00 PRI_RESP_DENY and 0b01 PRI_RESP_FAIL; the spec defines 0b00 as
/// ResponseFailure and 0b01 as InvalidRequest, and this model sends what the spec says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriResp {
    /// 0b00: Response Failure (PCIe 1111b): a permanent, non-paging error.
    ResponseFailure,
    /// 0b01: Invalid Request (PCIe 0001b): a page could not be made resident.
    InvalidRequest,
    /// 0b10: Success (PCIe 0000b).
    Success,
}

/// CMD_RESUME action (§4.7.1): Ac (bit 12) and Ab (bit 13), which Linux writes as the 2-bit
/// CMDQ_RESUME_0_RESP (TERM 0, RETRY 1, ABORT 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeAction {
    /// Ac = 0, Ab = 0: terminate with RAZ/WI semantics.
    Terminate,
    /// Ac = 1: retry (Ab ignored).
    Retry,
    /// Ac = 0, Ab = 1: terminate with an abort.
    Abort,
}

/// A decoded command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // the fields are the spec's, named as the spec names them
pub enum Command {
    PrefetchConfig {
        sid: u32,
        ssid: Option<u32>,
    },
    PrefetchAddr {
        sid: u32,
        ssid: Option<u32>,
        size: u8,
        addr: u64,
    },
    CfgiSte {
        sid: u32,
        leaf: bool,
    },
    /// 2^(range + 1) StreamIDs from `sid` aligned down; range 31 is CMD_CFGI_ALL.
    CfgiSteRange {
        sid: u32,
        range: u8,
    },
    CfgiCd {
        sid: u32,
        ssid: u32,
        leaf: bool,
    },
    CfgiCdAll {
        sid: u32,
    },
    TlbiNhAll {
        vmid: u16,
    },
    TlbiNhAsid {
        vmid: u16,
        asid: u16,
    },
    TlbiNhVa {
        vmid: u16,
        asid: u16,
        range: TlbiRange,
    },
    TlbiNhVaa {
        vmid: u16,
        range: TlbiRange,
    },
    TlbiEl2All,
    TlbiEl2Asid {
        asid: u16,
    },
    TlbiEl2Va {
        asid: u16,
        range: TlbiRange,
    },
    TlbiEl2Vaa {
        range: TlbiRange,
    },
    TlbiS12Vmall {
        vmid: u16,
    },
    TlbiS2Ipa {
        vmid: u16,
        range: TlbiRange,
    },
    TlbiNsnhAll,
    /// Size: the range is 4 KiB × 2^size from `addr` aligned down (52 or more: everything).
    AtcInv {
        sid: u32,
        ssid: Option<u32>,
        global: bool,
        size: u8,
        addr: u64,
    },
    PriResp {
        sid: u32,
        ssid: Option<u32>,
        prgi: u16,
        resp: PriResp,
    },
    Resume {
        sid: u32,
        stag: u16,
        action: ResumeAction,
    },
    StallTerm {
        sid: u32,
    },
    Sync {
        cs: SyncCs,
        msh: u8,
        msiattr: u8,
        msidata: u32,
        msiaddr: u64,
    },
}

/// Why a command is CERROR_ILL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IllegalCommand {
    /// An opcode the SMMU does not implement.
    #[error("unknown opcode {0:#x}")]
    UnknownOpcode(u8),
    /// A RES0 bit set (dword, bits).
    #[error("opcode {op:#x}: reserved bits {bits:#x} set in dword {dword}")]
    Reserved {
        /// The opcode.
        op: u8,
        /// Which dword.
        dword: u8,
        /// The offending bits.
        bits: u64,
    },
    /// A field holds a reserved value, or the command needs a feature the SMMU lacks.
    #[error("opcode {op:#x}: {why}")]
    Field {
        /// The opcode.
        op: u8,
        /// Which rule.
        why: &'static str,
    },
}

fn field(v: u64, mask: u64) -> u64 {
    (v & mask) >> mask.trailing_zeros()
}

fn put(v: u64, mask: u64) -> u64 {
    (v << mask.trailing_zeros()) & mask
}

fn ssid_of(d0: u64) -> Option<u32> {
    (d0 & SSV != 0).then_some(field(d0, SSID) as u32)
}

fn range_of(d0: u64, d1: u64, addr_mask: u64) -> TlbiRange {
    TlbiRange {
        addr: d1 & addr_mask,
        leaf: d1 & LEAF != 0,
        ttl: field(d1, TTL) as u8,
        tg: field(d1, TG) as u8,
        num: field(d0, NUM) as u8,
        scale: field(d0, SCALE) as u8,
    }
}

fn put_range(r: &TlbiRange, addr_mask: u64) -> (u64, u64) {
    (
        put(r.num as u64, NUM) | put(r.scale as u64, SCALE),
        (r.addr & addr_mask) | r.leaf as u64 | put(r.ttl as u64, TTL) | put(r.tg as u64, TG),
    )
}

fn put_ssid(ssid: Option<u32>) -> u64 {
    ssid.map_or(0, |s| SSV | put(s as u64, SSID))
}

/// The bits each opcode's fields occupy in dword 0 and dword 1 (`None`: unknown opcode).
fn layout(op: u8) -> Option<(u64, u64)> {
    use op::*;
    Some(match op {
        PREFETCH_CONFIG => (OP | SSV | SSID | SID, 0),
        // Size, Stride and NS share bits 11:0 (§4.2.2); the model does not check them.
        PREFETCH_ADDR => (OP | SSV | SSID | SID, !0),
        CFGI_STE => (OP | SID, LEAF),
        CFGI_STE_RANGE => (OP | SID, 0x1f),
        CFGI_CD => (OP | SSID | SID, LEAF),
        CFGI_CD_ALL => (OP | SID, 0),
        TLBI_NH_ALL => (OP | VMID, 0),
        TLBI_NH_ASID => (OP | VMID | ASID, 0),
        TLBI_NH_VA => (OP | NUM | SCALE | VMID | ASID, LEAF | TTL | TG | VA),
        TLBI_NH_VAA => (OP | NUM | SCALE | VMID, LEAF | TTL | TG | VA),
        TLBI_EL2_ALL => (OP, 0),
        TLBI_EL2_ASID => (OP | ASID, 0),
        TLBI_EL2_VA => (OP | NUM | SCALE | ASID, LEAF | TTL | TG | VA),
        TLBI_EL2_VAA => (OP | NUM | SCALE, LEAF | TTL | TG | VA),
        TLBI_S12_VMALL => (OP | VMID, 0),
        TLBI_S2_IPA => (OP | NUM | SCALE | VMID, LEAF | TTL | TG | IPA),
        TLBI_NSNH_ALL => (OP, 0),
        ATC_INV => (OP | GLOBAL | SSV | SSID | SID, 0x3f | VA),
        PRI_RESP => (OP | SSV | SSID | SID, 0x1ff | RESP0),
        RESUME => (OP | RESP0 | SID, 0xffff),
        STALL_TERM => (OP | SID, 0),
        SYNC => (
            OP | SYNC_CS | SYNC_MSH | SYNC_MSIATTR | SYNC_MSIDATA,
            SYNC_MSIADDR,
        ),
        _ => return None,
    })
}

impl Command {
    /// Decodes the command `raw` (dword 0, dword 1) for an SMMU with `caps`.
    ///
    /// # Errors
    /// [`IllegalCommand`] when the SMMU reports it as CERROR_ILL.
    pub fn decode(raw: [u64; 2], caps: &CommandCaps) -> Result<Command, IllegalCommand> {
        use op::*;
        let [d0, d1] = raw;
        let opc = (d0 & OP) as u8;
        let (m0, m1) = layout(opc).ok_or(IllegalCommand::UnknownOpcode(opc))?;
        if d0 & !m0 != 0 {
            return Err(IllegalCommand::Reserved {
                op: opc,
                dword: 0,
                bits: d0 & !m0,
            });
        }
        if d1 & !m1 != 0 {
            return Err(IllegalCommand::Reserved {
                op: opc,
                dword: 1,
                bits: d1 & !m1,
            });
        }
        let ill = |why| IllegalCommand::Field { op: opc, why };
        let sid = field(d0, SID) as u32;
        let vmid = field(d0, VMID) as u16;
        let asid = field(d0, ASID) as u16;
        let ranged = matches!(
            opc,
            TLBI_NH_VA | TLBI_NH_VAA | TLBI_EL2_VA | TLBI_EL2_VAA | TLBI_S2_IPA
        );
        // §4.4.1.1: NUM, SCALE, TTL and TG are RES0 without IDR3.RIL; NUM and TTL are RES0
        // when TG = 0.
        if ranged && !caps.ril && (d0 & (NUM | SCALE) != 0 || d1 & (TTL | TG) != 0) {
            return Err(ill(
                "NUM/SCALE/TTL/TG without range invalidation (IDR3.RIL)",
            ));
        }
        if ranged && d1 & TG == 0 && (d0 & NUM != 0 || d1 & TTL != 0) {
            return Err(ill("NUM or TTL with TG = 0"));
        }
        if matches!(opc, CFGI_CD | CFGI_CD_ALL) && !caps.s1p {
            return Err(ill("CD invalidation without IDR0.S1P"));
        }
        if matches!(opc, RESUME | STALL_TERM) && !caps.stall {
            return Err(ill("stall command with IDR0.STALL_MODEL = terminate only"));
        }
        if matches!(opc, TLBI_EL2_ALL..=TLBI_EL2_VAA) && !caps.hyp {
            return Err(ill("EL2 invalidation without IDR0.HYP"));
        }
        if matches!(opc, TLBI_S12_VMALL | TLBI_S2_IPA) && !caps.s2p {
            return Err(ill("stage 2 invalidation without IDR0.S2P"));
        }
        Ok(match opc {
            PREFETCH_CONFIG => Command::PrefetchConfig {
                sid,
                ssid: ssid_of(d0),
            },
            PREFETCH_ADDR => Command::PrefetchAddr {
                sid,
                ssid: ssid_of(d0),
                size: (d1 & 0x1f) as u8,
                addr: d1 & VA,
            },
            CFGI_STE => Command::CfgiSte {
                sid,
                leaf: d1 & LEAF != 0,
            },
            CFGI_STE_RANGE => Command::CfgiSteRange {
                sid,
                range: (d1 & 0x1f) as u8,
            },
            CFGI_CD => Command::CfgiCd {
                sid,
                ssid: field(d0, SSID) as u32,
                leaf: d1 & LEAF != 0,
            },
            CFGI_CD_ALL => Command::CfgiCdAll { sid },
            TLBI_NH_ALL => Command::TlbiNhAll { vmid },
            TLBI_NH_ASID => Command::TlbiNhAsid { vmid, asid },
            TLBI_NH_VA => Command::TlbiNhVa {
                vmid,
                asid,
                range: range_of(d0, d1, VA),
            },
            TLBI_NH_VAA => Command::TlbiNhVaa {
                vmid,
                range: range_of(d0, d1, VA),
            },
            TLBI_EL2_ALL => Command::TlbiEl2All,
            TLBI_EL2_ASID => Command::TlbiEl2Asid { asid },
            TLBI_EL2_VA => Command::TlbiEl2Va {
                asid,
                range: range_of(d0, d1, VA),
            },
            TLBI_EL2_VAA => Command::TlbiEl2Vaa {
                range: range_of(d0, d1, VA),
            },
            TLBI_S12_VMALL => Command::TlbiS12Vmall { vmid },
            TLBI_S2_IPA => Command::TlbiS2Ipa {
                vmid,
                range: range_of(d0, d1, IPA),
            },
            TLBI_NSNH_ALL => Command::TlbiNsnhAll,
            ATC_INV => {
                if !caps.ats {
                    return Err(ill("ATC invalidation without IDR0.ATS"));
                }
                if d1 & 0x3f > 52 {
                    return Err(ill("ATC invalidation Size above 52"));
                }
                Command::AtcInv {
                    sid,
                    ssid: ssid_of(d0),
                    global: d0 & GLOBAL != 0,
                    size: (d1 & 0x3f) as u8,
                    addr: d1 & VA,
                }
            }
            PRI_RESP => {
                if !caps.pri {
                    return Err(ill("PRI response without IDR0.PRI"));
                }
                let resp = match field(d1, RESP0) {
                    0 => PriResp::ResponseFailure,
                    1 => PriResp::InvalidRequest,
                    2 => PriResp::Success,
                    _ => return Err(ill("reserved PRI response 0b11")),
                };
                Command::PriResp {
                    sid,
                    ssid: ssid_of(d0),
                    prgi: (d1 & 0x1ff) as u16,
                    resp,
                }
            }
            RESUME => Command::Resume {
                sid,
                stag: d1 as u16,
                action: match field(d0, RESP0) {
                    0 => ResumeAction::Terminate,
                    2 => ResumeAction::Abort,
                    _ => ResumeAction::Retry,
                },
            },
            STALL_TERM => Command::StallTerm { sid },
            _ => Command::Sync {
                cs: match field(d0, SYNC_CS) {
                    0 => SyncCs::None,
                    1 => SyncCs::Irq,
                    2 => SyncCs::Sev,
                    _ => return Err(ill("reserved CMD_SYNC completion signal 0b11")),
                },
                msh: field(d0, SYNC_MSH) as u8,
                msiattr: field(d0, SYNC_MSIATTR) as u8,
                msidata: field(d0, SYNC_MSIDATA) as u32,
                msiaddr: d1 & SYNC_MSIADDR,
            },
        })
    }

    /// The StreamIDs, first and last, whose cached configuration a CMD_CFGI_* names:
    /// CMD_CFGI_STE, CFGI_CD and CFGI_CD_ALL name one; CMD_CFGI_STE_RANGE the naturally
    /// aligned 2^(Range + 1) around SID; CMD_CFGI_ALL (Range 31) every one (§4.3.1–4.3.5).
    /// `None` for other commands.
    pub fn cfgi_streams(&self) -> Option<(u32, u32)> {
        match *self {
            Command::CfgiSte { sid, .. }
            | Command::CfgiCd { sid, .. }
            | Command::CfgiCdAll { sid } => Some((sid, sid)),
            Command::CfgiSteRange { range, .. } if range >= 31 => Some((0, u32::MAX)),
            Command::CfgiSteRange { sid, range } => {
                let n = 2u64 << range;
                let first = sid as u64 & !(n - 1);
                let last = (first + n - 1).min(u32::MAX as u64);
                Some((first as u32, last as u32))
            }
            _ => None,
        }
    }

    /// The opcode.
    pub fn opcode(&self) -> u8 {
        (self.encode()[0] & OP) as u8
    }

    /// The command as a driver writes it (Linux `arm_smmu_cmdq_build_cmd`).
    pub fn encode(&self) -> [u64; 2] {
        use op::*;
        let sid = |s: u32| put(s as u64, SID);
        let vmid = |v: u16| put(v as u64, VMID);
        let asid = |a: u16| put(a as u64, ASID);
        let (o, d0, d1) = match *self {
            Command::PrefetchConfig { sid: s, ssid } => {
                (PREFETCH_CONFIG, sid(s) | put_ssid(ssid), 0)
            }
            Command::PrefetchAddr {
                sid: s,
                ssid,
                size,
                addr,
            } => (
                PREFETCH_ADDR,
                sid(s) | put_ssid(ssid),
                (size as u64 & 0x1f) | (addr & VA),
            ),
            Command::CfgiSte { sid: s, leaf } => (CFGI_STE, sid(s), leaf as u64),
            Command::CfgiSteRange { sid: s, range } => {
                (CFGI_STE_RANGE, sid(s), range as u64 & 0x1f)
            }
            Command::CfgiCd { sid: s, ssid, leaf } => {
                (CFGI_CD, sid(s) | put(ssid as u64, SSID), leaf as u64)
            }
            Command::CfgiCdAll { sid: s } => (CFGI_CD_ALL, sid(s), 0),
            Command::TlbiNhAll { vmid: v } => (TLBI_NH_ALL, vmid(v), 0),
            Command::TlbiNhAsid { vmid: v, asid: a } => (TLBI_NH_ASID, vmid(v) | asid(a), 0),
            Command::TlbiNhVa {
                vmid: v,
                asid: a,
                range,
            } => {
                let (r0, r1) = put_range(&range, VA);
                (TLBI_NH_VA, vmid(v) | asid(a) | r0, r1)
            }
            Command::TlbiNhVaa { vmid: v, range } => {
                let (r0, r1) = put_range(&range, VA);
                (TLBI_NH_VAA, vmid(v) | r0, r1)
            }
            Command::TlbiEl2All => (TLBI_EL2_ALL, 0, 0),
            Command::TlbiEl2Asid { asid: a } => (TLBI_EL2_ASID, asid(a), 0),
            Command::TlbiEl2Va { asid: a, range } => {
                let (r0, r1) = put_range(&range, VA);
                (TLBI_EL2_VA, asid(a) | r0, r1)
            }
            Command::TlbiEl2Vaa { range } => {
                let (r0, r1) = put_range(&range, VA);
                (TLBI_EL2_VAA, r0, r1)
            }
            Command::TlbiS12Vmall { vmid: v } => (TLBI_S12_VMALL, vmid(v), 0),
            Command::TlbiS2Ipa { vmid: v, range } => {
                let (r0, r1) = put_range(&range, IPA);
                (TLBI_S2_IPA, vmid(v) | r0, r1)
            }
            Command::TlbiNsnhAll => (TLBI_NSNH_ALL, 0, 0),
            Command::AtcInv {
                sid: s,
                ssid,
                global,
                size,
                addr,
            } => (
                ATC_INV,
                sid(s) | put_ssid(ssid) | if global { GLOBAL } else { 0 },
                (size as u64 & 0x3f) | (addr & VA),
            ),
            Command::PriResp {
                sid: s,
                ssid,
                prgi,
                resp,
            } => {
                let r = match resp {
                    PriResp::ResponseFailure => 0,
                    PriResp::InvalidRequest => 1,
                    PriResp::Success => 2,
                };
                (
                    PRI_RESP,
                    sid(s) | put_ssid(ssid),
                    (prgi as u64 & 0x1ff) | put(r, RESP0),
                )
            }
            Command::Resume {
                sid: s,
                stag,
                action,
            } => {
                let a = match action {
                    ResumeAction::Terminate => 0,
                    ResumeAction::Retry => 1,
                    ResumeAction::Abort => 2,
                };
                (RESUME, sid(s) | put(a, RESP0), stag as u64)
            }
            Command::StallTerm { sid: s } => (STALL_TERM, sid(s), 0),
            Command::Sync {
                cs,
                msh,
                msiattr,
                msidata,
                msiaddr,
            } => {
                let c = match cs {
                    SyncCs::None => 0,
                    SyncCs::Irq => 1,
                    SyncCs::Sev => 2,
                };
                (
                    SYNC,
                    put(c, SYNC_CS)
                        | put(msh as u64, SYNC_MSH)
                        | put(msiattr as u64, SYNC_MSIATTR)
                        | put(msidata as u64, SYNC_MSIDATA),
                    msiaddr & SYNC_MSIADDR,
                )
            }
        };
        [o as u64 | d0, d1]
    }
}

#[cfg(test)]
mod tests;
