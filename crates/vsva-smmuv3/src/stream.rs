//! What configuration lookup produces: a validated, decoded view of a stream's STE and CD
//! that a translation layer walks by (IHI 0070 §3.3, §5.2, §5.4), and the configuration
//! faults that stop a lookup (§7.3.2–7.3.10).

use crate::spec::event::EventRecord;

/// A translation granule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granule {
    /// 4 KiB.
    K4,
    /// 16 KiB.
    K16,
    /// 64 KiB.
    K64,
}

impl Granule {
    /// log2 of the granule size.
    pub const fn bits(self) -> u8 {
        match self {
            Granule::K4 => 12,
            Granule::K16 => 14,
            Granule::K64 => 16,
        }
    }
}

/// One stage 1 table (TTB0 or TTB1) of a CD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableConfig {
    /// Table base address.
    pub ttb: u64,
    /// TxSZ: the input size is 64 - tsz bits.
    pub tsz: u8,
    /// Granule.
    pub granule: Granule,
    /// Walk inner cacheability.
    pub ir: u8,
    /// Walk outer cacheability.
    pub or: u8,
    /// Walk shareability.
    pub sh: u8,
    /// Hierarchical attribute disable.
    pub had: bool,
    /// Top byte ignore.
    pub tbi: bool,
}

/// Stage 1, from a CD (§5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage1Config {
    /// ASID (8 bits unless IDR0.ASID16).
    pub asid: u16,
    /// TTB0 (None when EPD0: walks through it fault).
    pub ttb0: Option<TableConfig>,
    /// TTB1 (None when EPD1).
    pub ttb1: Option<TableConfig>,
    /// Effective intermediate physical size in bits (IPS capped at OAS).
    pub ips_bits: u8,
    /// Access-flag fault disable.
    pub affd: bool,
    /// Write implies execute-never.
    pub wxn: bool,
    /// Unprivileged write implies privileged execute-never.
    pub uwxn: bool,
    /// Privileged access never.
    pub pan: bool,
    /// Hardware access-flag update (only if IDR0.HTTU allows it).
    pub ha: bool,
    /// Hardware dirty-state update (only with `ha` and IDR0.HTTU = access and dirty).
    pub hd: bool,
    /// Faults stall.
    pub stall: bool,
    /// Faults are recorded.
    pub record: bool,
    /// Terminated transactions abort (else RAZ/WI).
    pub abort: bool,
    /// ASID not shared with broadcast TLB maintenance.
    pub aset: bool,
    /// MAIR.
    pub mair: u64,
    /// AMAIR.
    pub amair: u64,
}

/// Stage 2, from an STE (§5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage2Config {
    /// Table base address.
    pub ttb: u64,
    /// S2T0SZ: the input size is 64 - t0sz bits.
    pub t0sz: u8,
    /// S2SL0 as written.
    pub sl0: u8,
    /// The start level it selects (0–3).
    pub start_level: u8,
    /// Granule.
    pub granule: Granule,
    /// Effective physical size in bits (S2PS capped at OAS).
    pub ps_bits: u8,
    /// Walk inner cacheability.
    pub ir: u8,
    /// Walk outer cacheability.
    pub or: u8,
    /// Walk shareability.
    pub sh: u8,
    /// Access-flag fault disable.
    pub affd: bool,
    /// Protected table walk.
    pub ptw: bool,
    /// Stage 2 forced write-back (IDR3.FWB).
    pub fwb: bool,
    /// Hardware access-flag update (only if IDR0.HTTU allows it).
    pub ha: bool,
    /// Hardware dirty-state update.
    pub hd: bool,
    /// Faults stall.
    pub stall: bool,
    /// Faults are recorded.
    pub record: bool,
}

/// A stream that translates, with the CD chosen for the request's SubstreamID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TranslationConfig {
    /// StreamID.
    pub sid: u32,
    /// SubstreamID the request carried.
    pub ssid: Option<u32>,
    /// Stage 1 (None: bypassed by Config or by S1DSS).
    pub stage1: Option<Stage1Config>,
    /// Stage 2 (None: bypassed).
    pub stage2: Option<Stage2Config>,
    /// VMID (tags TLB entries even when stage 2 bypasses, if stage 2 is implemented).
    pub vmid: u16,
    /// STE.EATS.
    pub eats: u8,
    /// STE.STRW.
    pub strw: u8,
    /// STE.S1STALLD.
    pub s1stalld: bool,
    /// STE.MEV.
    pub mev: bool,
    /// STE.SHCFG.
    pub shcfg: u8,
    /// STE.PRIVCFG: 0b10 makes every transaction unprivileged, 0b11 privileged; 0b00 (and
    /// the reserved 0b01) keep the incoming attribute.
    pub privcfg: u8,
    /// STE.INSTCFG: 0b10 makes reads data reads, 0b11 instruction fetches; 0b00 (and the
    /// reserved 0b01) keep the incoming attribute. Writes are always data.
    pub instcfg: u8,
}

/// Where a stream's transactions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamConfig {
    /// SMMUEN = 0: every transaction bypasses, or aborts when GBPA.ABORT (§6.3.14); no event.
    Disabled {
        /// GBPA.ABORT.
        abort: bool,
    },
    /// STE.Config = abort: the transaction aborts, no event.
    Abort,
    /// STE.Config = bypass.
    Bypass,
    /// Stage 1, stage 2 or both translate.
    Translate(TranslationConfig),
}

/// A configuration error or fault that ends a lookup; the unit records it as an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfigFault {
    /// StreamID beyond the table, or its level-1 descriptor invalid (C_BAD_STREAMID).
    #[error("StreamID out of range")]
    BadStreamId,
    /// Reading the STE or level-1 descriptor at `addr` aborted (F_STE_FETCH).
    #[error("STE fetch at {addr:#x} aborted")]
    SteFetch {
        /// The address read.
        addr: u64,
    },
    /// The STE is ILLEGAL (C_BAD_STE).
    #[error("bad STE: {why}")]
    BadSte {
        /// The rule it breaks.
        why: &'static str,
    },
    /// A transaction without SubstreamID on a stream whose S1DSS terminates it, or with
    /// SubstreamID 0 when S1DSS reserves CD 0 (F_STREAM_DISABLED).
    #[error("stream disabled for this SubstreamID")]
    StreamDisabled,
    /// SubstreamID out of range or its level-1 CD descriptor invalid (C_BAD_SUBSTREAMID).
    #[error("bad SubstreamID: {why}")]
    BadSubstreamId {
        /// The rule it breaks.
        why: &'static str,
    },
    /// Reading the CD or level-1 CD descriptor at `addr` aborted (F_CD_FETCH).
    #[error("CD fetch at {addr:#x} aborted")]
    CdFetch {
        /// The address read.
        addr: u64,
    },
    /// The CD is ILLEGAL (C_BAD_CD).
    #[error("bad CD: {why}")]
    BadCd {
        /// The rule it breaks.
        why: &'static str,
    },
    /// Nested: stage 2 could not translate the IPA of the CD or level-1 CD descriptor — a
    /// stage 2 walk fault with CLASS = CD (§3.4.2, §7.3.12–16).
    #[error("stage 2 fault (event {kind:#x}) on the CD at IPA {ipa:#x}")]
    CdStage2 {
        /// The event type: F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION or F_WALK_EABT.
        kind: u8,
        /// The IPA stage 2 was translating.
        ipa: u64,
        /// The stage 2 descriptor whose read aborted (F_WALK_EABT).
        fetch_addr: u64,
        /// Whether it is recorded: STE.S2R, or an external abort.
        record: bool,
    },
}

impl ConfigFault {
    /// The event record for a request of `sid` / `ssid` (§7.3).
    pub fn event(&self, sid: u32, ssid: Option<u32>) -> EventRecord {
        match *self {
            ConfigFault::BadStreamId => EventRecord::c_bad_streamid(sid, ssid),
            ConfigFault::SteFetch { addr } => EventRecord::f_ste_fetch(sid, ssid, addr),
            ConfigFault::BadSte { .. } => EventRecord::c_bad_ste(sid, ssid),
            ConfigFault::StreamDisabled => EventRecord::f_stream_disabled(sid, ssid),
            ConfigFault::BadSubstreamId { .. } => {
                EventRecord::c_bad_substreamid(sid, ssid.unwrap_or(0))
            }
            ConfigFault::CdFetch { addr } => EventRecord::f_cd_fetch(sid, ssid, addr),
            ConfigFault::BadCd { .. } => EventRecord::c_bad_cd(sid, ssid),
            // The transaction's address and access are not known to a lookup: InputAddr and
            // the access bits read as zero.
            ConfigFault::CdStage2 {
                kind,
                ipa,
                fetch_addr,
                ..
            } => EventRecord::walk_fault(
                kind,
                &crate::spec::event::Access {
                    sid,
                    ssid,
                    ..Default::default()
                },
                &crate::spec::event::WalkFault {
                    s2: true,
                    class: if kind == crate::spec::event::id::F_WALK_EABT {
                        crate::spec::event::class::TT
                    } else {
                        crate::spec::event::class::CD
                    },
                    ipa,
                    tt_read: false,
                    fetch_addr,
                    stag: None,
                },
            ),
        }
    }

    /// Is the fault recorded in the event queue? Every one is but a stage 2 fault on a CD
    /// with STE.S2R = 0 (C_BAD_STREAMID also needs CR2.RECINVSID, which the unit checks).
    pub fn recorded(&self) -> bool {
        !matches!(self, ConfigFault::CdStage2 { record: false, .. })
    }
}
