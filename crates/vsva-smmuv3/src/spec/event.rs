//! Event records (IHI 0070 §7.3): 32-byte entries of the event queue, and the PRI queue's
//! 16-byte page request entries (§8.1).
//!
//! Field positions follow Linux `arm-smmu-v3.h` (`EVTQ_*`, `PRIQ_*`). Every record shares
//! dword 0: type in 7:0, SSV in 11, SubstreamID in 31:12, StreamID in 63:32.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Bytes per event record.
pub const EVENT_BYTES: u64 = 32;
/// Bytes per PRI queue entry.
pub const PRI_BYTES: u64 = 16;

/// Event types (§7.3), as Linux `EVT_ID_*` and §7.3 spell them.
pub mod id {
    /// Unsupported upstream transaction.
    pub const F_UUT: u8 = 0x01;
    /// StreamID out of range, or an invalid level-1 stream table descriptor.
    pub const C_BAD_STREAMID: u8 = 0x02;
    /// External abort fetching an STE or level-1 descriptor.
    pub const F_STE_FETCH: u8 = 0x03;
    /// An ILLEGAL STE.
    pub const C_BAD_STE: u8 = 0x04;
    /// An ATS Translation Request the STE does not allow.
    pub const F_BAD_ATS_TREQ: u8 = 0x05;
    /// A transaction without SubstreamID on a stream whose S1DSS terminates it.
    pub const F_STREAM_DISABLED: u8 = 0x06;
    /// ATS-translated traffic the STE forbids.
    pub const F_TRANSL_FORBIDDEN: u8 = 0x07;
    /// SubstreamID out of range or its level-1 CD descriptor invalid.
    pub const C_BAD_SUBSTREAMID: u8 = 0x08;
    /// External abort fetching a CD or level-1 CD descriptor.
    pub const F_CD_FETCH: u8 = 0x09;
    /// An ILLEGAL CD.
    pub const C_BAD_CD: u8 = 0x0a;
    /// External abort on a translation table walk.
    pub const F_WALK_EABT: u8 = 0x0b;
    /// Translation fault.
    pub const F_TRANSLATION: u8 = 0x10;
    /// Address size fault.
    pub const F_ADDR_SIZE: u8 = 0x11;
    /// Access flag fault.
    pub const F_ACCESS: u8 = 0x12;
    /// Permission fault.
    pub const F_PERMISSION: u8 = 0x13;
    /// TLB conflict.
    pub const F_TLB_CONFLICT: u8 = 0x20;
    /// Configuration cache conflict.
    pub const F_CFG_CONFLICT: u8 = 0x21;
    /// A speculative page request hint.
    pub const E_PAGE_REQUEST: u8 = 0x24;
    /// External abort fetching a VMS.
    pub const F_VMS_FETCH: u8 = 0x25;
}

/// Fault CLASS (dword 1 bits 41:40): what the faulting walk was doing.
pub mod class {
    /// A CD fetch.
    pub const CD: u8 = 0b00;
    /// A translation table walk.
    pub const TT: u8 = 0b01;
    /// The input address itself.
    pub const IN: u8 = 0b10;
}

const SSV: u64 = 1 << 11;
const STALL: u64 = 1 << 31;
const PNU: u64 = 1 << 33;
const IND: u64 = 1 << 34;
const RNW: u64 = 1 << 35;
const S2: u64 = 1 << 39;
const TTRNW: u64 = 1 << 44;
const IPA_MASK: u64 = 0x000f_ffff_ffff_f000;
const FETCH_MASK: u64 = 0x000f_ffff_ffff_fff8;

/// The transaction an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Access {
    /// StreamID.
    pub sid: u32,
    /// SubstreamID, when the transaction had one.
    pub ssid: Option<u32>,
    /// Input address.
    pub addr: u64,
    /// Read (true) or write.
    pub read: bool,
    /// Instruction fetch.
    pub instruction: bool,
    /// Privileged.
    pub privileged: bool,
}

/// The translation details of a walk fault (F_TRANSLATION .. F_PERMISSION, F_WALK_EABT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WalkFault {
    /// Stage 2 caused it.
    pub s2: bool,
    /// What the walk was doing (see [`class`]).
    pub class: u8,
    /// The stalled transaction's tag, when it stalled.
    pub stag: Option<u16>,
    /// The IPA (stage 2 faults). NSIPA is not encoded: it is zero on a Non-secure event
    /// queue (§7.3).
    pub ipa: u64,
    /// The walk's own access was a read (TTRnW, with HTTU).
    pub tt_read: bool,
    /// The descriptor address whose fetch aborted (F_WALK_EABT).
    pub fetch_addr: u64,
}

/// An event record as it sits in the queue (§7.3).
#[repr(C)]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EventRecord {
    /// The four 64-bit words.
    pub words: [u64; 4],
}

const _: () = assert!(size_of::<EventRecord>() == EVENT_BYTES as usize);

fn dw0(kind: u8, sid: u32, ssid: Option<u32>) -> u64 {
    kind as u64 | (sid as u64) << 32 | ssid.map_or(0, |s| SSV | ((s as u64 & 0xf_ffff) << 12))
}

fn access_bits(a: &Access) -> u64 {
    (if a.read { RNW } else { 0 })
        | (if a.instruction { IND } else { 0 })
        | (if a.privileged { PNU } else { 0 })
}

impl EventRecord {
    /// The event type.
    pub fn kind(&self) -> u8 {
        self.words[0] as u8
    }
    /// The StreamID.
    pub fn sid(&self) -> u32 {
        (self.words[0] >> 32) as u32
    }
    /// The SubstreamID, when SSV is set.
    pub fn ssid(&self) -> Option<u32> {
        (self.words[0] & SSV != 0).then_some((self.words[0] >> 12) as u32 & 0xf_ffff)
    }

    /// The same record with StreamID `sid`: how a VMM hands a host event to its guest's
    /// vSMMU under the device's virtual StreamID (Linux `arm_vmaster_report_event()`
    /// replaces EVTQ_0_SID with the vSID and keeps every other field).
    pub fn with_sid(self, sid: u32) -> EventRecord {
        let mut r = self;
        r.words[0] = (r.words[0] & 0xffff_ffff) | (sid as u64) << 32;
        r
    }

    /// STALL and STAG of dword 1, for the fault events that carry them (§7.3.12–16): the
    /// STAG a CMD_RESUME names.
    pub fn stag(&self) -> Option<u16> {
        (self.words[1] & STALL != 0).then_some(self.words[1] as u16)
    }

    fn config(kind: u8, sid: u32, ssid: Option<u32>) -> EventRecord {
        EventRecord {
            words: [dw0(kind, sid, ssid), 0, 0, 0],
        }
    }

    fn fetch(kind: u8, sid: u32, ssid: Option<u32>, fetch_addr: u64) -> EventRecord {
        EventRecord {
            words: [dw0(kind, sid, ssid), 0, 0, fetch_addr & FETCH_MASK],
        }
    }

    /// F_UUT (§7.3.2).
    pub fn f_uut(a: &Access) -> EventRecord {
        EventRecord {
            words: [dw0(id::F_UUT, a.sid, a.ssid), access_bits(a), a.addr, 0],
        }
    }
    /// C_BAD_STREAMID (§7.3.3).
    pub fn c_bad_streamid(sid: u32, ssid: Option<u32>) -> EventRecord {
        Self::config(id::C_BAD_STREAMID, sid, ssid)
    }
    /// F_STE_FETCH (§7.3.4): `fetch_addr` is the STE or L1STD whose read aborted.
    pub fn f_ste_fetch(sid: u32, ssid: Option<u32>, fetch_addr: u64) -> EventRecord {
        Self::fetch(id::F_STE_FETCH, sid, ssid, fetch_addr)
    }
    /// C_BAD_STE (§7.3.5).
    pub fn c_bad_ste(sid: u32, ssid: Option<u32>) -> EventRecord {
        Self::config(id::C_BAD_STE, sid, ssid)
    }
    /// F_BAD_ATS_TREQ (§7.3.6): the Translation Request's R, W, X and Privileged bits in
    /// dword 1 bits 30, 29, 28, 27, its number of STUs in bits 3:0, and InputAddr bits 63:12.
    pub fn f_bad_ats_treq(a: &Access, write: bool, span: u8) -> EventRecord {
        let bit = |b: bool, n: u32| (b as u64) << n;
        EventRecord {
            words: [
                dw0(id::F_BAD_ATS_TREQ, a.sid, a.ssid),
                (span as u64 & 0xf)
                    | bit(a.privileged, 27)
                    | bit(a.instruction, 28)
                    | bit(write, 29)
                    | bit(a.read, 30),
                a.addr & !0xfff,
                0,
            ],
        }
    }
    /// F_STREAM_DISABLED (§7.3.7): a transaction without SubstreamID on a stream whose
    /// S1DSS terminates it, or with SubstreamID 0 when S1DSS reserves CD 0.
    pub fn f_stream_disabled(sid: u32, ssid: Option<u32>) -> EventRecord {
        Self::config(id::F_STREAM_DISABLED, sid, ssid)
    }
    /// F_TRANSL_FORBIDDEN (§7.3.8).
    pub fn f_transl_forbidden(a: &Access) -> EventRecord {
        EventRecord {
            words: [
                dw0(id::F_TRANSL_FORBIDDEN, a.sid, None),
                if a.read { RNW } else { 0 },
                a.addr,
                0,
            ],
        }
    }
    /// C_BAD_SUBSTREAMID (§7.3.9): the SubstreamID is always valid in this record, which
    /// has no SSV qualifier (0 when a transaction without one reached an invalid L1CD
    /// through S1DSS = SSID0).
    pub fn c_bad_substreamid(sid: u32, ssid: u32) -> EventRecord {
        EventRecord {
            words: [
                id::C_BAD_SUBSTREAMID as u64 | (ssid as u64 & 0xf_ffff) << 12 | (sid as u64) << 32,
                0,
                0,
                0,
            ],
        }
    }
    /// F_CD_FETCH (§7.3.10): `fetch_addr` is the CD or L1CD whose read aborted.
    pub fn f_cd_fetch(sid: u32, ssid: Option<u32>, fetch_addr: u64) -> EventRecord {
        Self::fetch(id::F_CD_FETCH, sid, ssid, fetch_addr)
    }
    /// C_BAD_CD (§7.3.11).
    pub fn c_bad_cd(sid: u32, ssid: Option<u32>) -> EventRecord {
        Self::config(id::C_BAD_CD, sid, ssid)
    }
    /// A walk fault: F_WALK_EABT, F_TRANSLATION, F_ADDR_SIZE, F_ACCESS or F_PERMISSION
    /// (§7.3.12–16), `kind` from [`id`].
    pub fn walk_fault(kind: u8, a: &Access, w: &WalkFault) -> EventRecord {
        let dw1 = access_bits(a)
            | w.stag.map_or(0, |t| STALL | t as u64)
            | (if w.s2 { S2 } else { 0 })
            | (if w.tt_read { TTRNW } else { 0 })
            | ((w.class as u64 & 3) << 40);
        let dw3 = if kind == id::F_WALK_EABT {
            w.fetch_addr & FETCH_MASK
        } else {
            w.ipa & IPA_MASK
        };
        EventRecord {
            words: [dw0(kind, a.sid, a.ssid), dw1, a.addr, dw3],
        }
    }
    /// F_TLB_CONFLICT (§7.3.17): the conflicting input address.
    pub fn f_tlb_conflict(a: &Access) -> EventRecord {
        EventRecord {
            words: [
                dw0(id::F_TLB_CONFLICT, a.sid, a.ssid),
                access_bits(a),
                a.addr,
                0,
            ],
        }
    }
    /// F_CFG_CONFLICT (§7.3.18).
    pub fn f_cfg_conflict(sid: u32, ssid: Option<u32>) -> EventRecord {
        Self::config(id::F_CFG_CONFLICT, sid, ssid)
    }
    /// E_PAGE_REQUEST (§7.3.19): a speculative page request hint for `span` pages. The spec's
    /// figure of its permission flags (pR/pW/pX/uR/uW/uX) is not encoded by Linux or QEMU;
    /// this builder puts the common RnW/InD/PnU bits and Span in dword 1 and is provisional.
    pub fn e_page_request(a: &Access, span: u8) -> EventRecord {
        EventRecord {
            words: [
                dw0(id::E_PAGE_REQUEST, a.sid, a.ssid),
                access_bits(a) | span as u64,
                a.addr & !0xfff,
                0,
            ],
        }
    }
    /// F_VMS_FETCH (§7.3.20).
    pub fn f_vms_fetch(sid: u32, ssid: Option<u32>, fetch_addr: u64) -> EventRecord {
        Self::fetch(id::F_VMS_FETCH, sid, ssid, fetch_addr)
    }
}

/// A PRI queue entry (§8.1): one PCIe Page Request.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct PriEntry {
    /// The two 64-bit words.
    pub words: [u64; 2],
}

const _: () = assert!(size_of::<PriEntry>() == PRI_BYTES as usize);

/// The fields of a PRI queue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PageRequestFields {
    /// StreamID.
    pub sid: u32,
    /// PASID, when the request had one.
    pub ssid: Option<u32>,
    /// Privileged access.
    pub privileged: bool,
    /// Execute access.
    pub exec: bool,
    /// Read access.
    pub read: bool,
    /// Write access.
    pub write: bool,
    /// Last request of the group.
    pub last: bool,
    /// Page request group index (9 bits).
    pub prgi: u16,
    /// The page address.
    pub addr: u64,
}

impl PriEntry {
    /// Encodes `f` (Linux `PRIQ_0_*`, `PRIQ_1_*`).
    pub fn new(f: &PageRequestFields) -> PriEntry {
        let bit = |b: bool, n: u32| (b as u64) << n;
        let w0 = f.sid as u64
            | f.ssid.map_or(0, |s| (s as u64 & 0xf_ffff) << 32 | 1 << 63)
            | bit(f.privileged, 58)
            | bit(f.exec, 59)
            | bit(f.read, 60)
            | bit(f.write, 61)
            | bit(f.last, 62);
        let w1 = (f.prgi as u64 & 0x1ff) | (f.addr & !0xfff);
        PriEntry { words: [w0, w1] }
    }

    /// Decodes the fields.
    pub fn fields(&self) -> PageRequestFields {
        let [w0, w1] = self.words;
        let bit = |n: u32| w0 >> n & 1 != 0;
        PageRequestFields {
            sid: w0 as u32,
            ssid: bit(63).then_some((w0 >> 32) as u32 & 0xf_ffff),
            privileged: bit(58),
            exec: bit(59),
            read: bit(60),
            write: bit(61),
            last: bit(62),
            prgi: (w1 & 0x1ff) as u16,
            addr: w1 & !0xfff,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_match_linux_and_spec() {
        assert_eq!(
            [
                id::C_BAD_STREAMID,
                id::F_STE_FETCH,
                id::C_BAD_STE,
                id::F_STREAM_DISABLED
            ],
            [0x02, 0x03, 0x04, 0x06]
        );
        assert_eq!(
            [id::C_BAD_SUBSTREAMID, id::F_CD_FETCH, id::C_BAD_CD],
            [0x08, 0x09, 0x0a]
        );
        assert_eq!(
            [
                id::F_TRANSLATION,
                id::F_ADDR_SIZE,
                id::F_ACCESS,
                id::F_PERMISSION
            ],
            [0x10, 0x11, 0x12, 0x13]
        );
        assert_eq!(id::F_VMS_FETCH, 0x25);
        assert_eq!([id::F_TLB_CONFLICT, id::E_PAGE_REQUEST], [0x20, 0x24]);
    }

    #[test]
    fn config_event_records_match_linux_fields() {
        // EVTQ_0_ID(7,0), SSV bit 11, SSID(31,12), SID(63,32).
        let r = EventRecord::c_bad_cd(0x77, Some(0x12345));
        assert_eq!(
            r.words,
            [0x77 << 32 | 0x1234_5000 | 1 << 11 | 0x0a, 0, 0, 0]
        );
        assert_eq!((r.kind(), r.sid(), r.ssid()), (0x0a, 0x77, Some(0x12345)));
        // EVTQ_3_FETCH_ADDR GENMASK(51,3).
        let r = EventRecord::f_ste_fetch(5, None, 0xdead_bee8);
        assert_eq!(r.words, [5 << 32 | 0x03, 0, 0, 0xdead_bee8]);
        assert_eq!(
            EventRecord::f_stream_disabled(9, None).words[0],
            9 << 32 | 0x06
        );
        // C_BAD_SUBSTREAMID has no SSV bit.
        assert_eq!(
            EventRecord::c_bad_substreamid(9, 0x10).words[0],
            9 << 32 | 0x10 << 12 | 0x08
        );
    }

    #[test]
    fn walk_fault_records_match_linux_fields() {
        // EVTQ_1_STAG(15,0), STALL bit 31, PnU 33, InD 34, RnW 35, S2 39, CLASS(41,40),
        // TT_READ 44; EVTQ_2_ADDR; EVTQ_3_IPA GENMASK(51,12).
        let a = Access {
            sid: 1,
            ssid: Some(2),
            addr: 0x1234_5678,
            read: true,
            instruction: true,
            privileged: true,
        };
        let w = WalkFault {
            s2: true,
            class: class::TT,
            stag: Some(0x55),
            ipa: 0x9_8765_4321,
            tt_read: true,
            ..WalkFault::default()
        };
        let r = EventRecord::walk_fault(id::F_PERMISSION, &a, &w);
        assert_eq!(
            r.words,
            [
                1 << 32 | 2 << 12 | 1 << 11 | 0x13,
                0x55 | 1 << 31 | 1 << 33 | 1 << 34 | 1 << 35 | 1 << 39 | 1 << 40 | 1 << 44,
                0x1234_5678,
                0x9_8765_4000,
            ]
        );
    }

    #[test]
    fn pri_entry_matches_linux_fields() {
        // PRIQ_0_SID(31,0), SSID(51,32), PERM_PRIV 58, EXEC 59, READ 60, WRITE 61,
        // PRG_LAST 62, SSID_V 63; PRIQ_1_PRG_IDX(8,0), ADDR GENMASK(63,12).
        let f = PageRequestFields {
            sid: 0x42,
            ssid: Some(0x321),
            privileged: false,
            exec: false,
            read: true,
            write: true,
            last: true,
            prgi: 0x1a5,
            addr: 0x7fff_1234_5000,
        };
        let e = PriEntry::new(&f);
        assert_eq!(
            e.words,
            [
                0x42 | 0x321 << 32 | 1 << 60 | 1 << 61 | 1 << 62 | 1 << 63,
                0x1a5 | 0x7fff_1234_5000
            ]
        );
        assert_eq!(e.fields(), f);
    }
}
