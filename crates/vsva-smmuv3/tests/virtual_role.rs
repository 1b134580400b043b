//! The SMMU as a guest's vSMMU (the `virt` module): what its VMM hears from the command
//! queue and the registers, in order and before the guest's CMD_SYNC completes (IHI 0070
//! §4.7.3); the guest's STEs read from memory (§3.3.2, §5.2.2); events, stall events and
//! page requests the VMM puts into the guest's queues (§7.3, §8), and the automatic PRG
//! Responses that reach the VMM when the guest's PRI queue cannot take them (§8.1–8.3).

mod common;

use std::sync::{Arc, Mutex, Weak};

use common::*;
use vsva_mem::{Pasid, PhysMem, Rid};
use vsva_pcie::{
    AtsInvalidation, AtsInvalidationError, Downstream, MsiLog, PageRequest, PageRequestOutcome,
    ResponseCode,
};
use vsva_smmuv3::spec::cmd::{Command, PriResp, ResumeAction, SyncCs, TlbiRange};
use vsva_smmuv3::spec::event::{Access, EventRecord, PriEntry, WalkFault, class, id};
use vsva_smmuv3::spec::registers::{Cr0, Gbpa, Gerror, cerror, offset, queue};
use vsva_smmuv3::spec::ste::{Ste, Ste0, Ste1, Ste2, Ste3, config};
use vsva_smmuv3::{
    ConfigFault, GlobalState, Refused, Smmuv3, Smmuv3Config, StreamConfig, VirtualBackend,
};
use zerocopy::IntoBytes;

const PRIQ: u64 = 0x38_0000;
const SYNC_MSI: (u64, u32) = (0xfee0_4000, 0x44);
const VSID: u32 = 0x18;

/// What the VMM heard, in the order it heard it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Heard {
    Cmd(Command),
    Sync,
    Global(GlobalState),
    AtcInv(AtsInvalidation),
    Response(Rid, Option<Pasid>, ResponseCode, u16),
}

/// A VMM that records what it hears and, from inside each call, what the guest can already
/// see: the CMD_SYNC MSIs sent so far, the STE a CMD_CFGI_STE names, the global state.
#[derive(Default)]
struct Vmm {
    smmu: Mutex<Weak<Smmuv3>>,
    msi: Mutex<Option<Arc<MsiLog>>>,
    heard: Mutex<Vec<Heard>>,
    /// CMD_SYNC MSIs already sent when each call came.
    msis_then: Mutex<Vec<usize>>,
    /// `guest_ste` of each CMD_CFGI_STE's StreamID, read inside the call.
    stes: Mutex<Vec<Result<Ste, ConfigFault>>>,
    /// `guest_global` read inside each `global_changed`.
    globals: Mutex<Vec<GlobalState>>,
    /// The opcode the host refuses.
    refuse: Mutex<Option<u8>>,
}

impl Vmm {
    fn hear(&self, h: Heard) {
        let sent = self.msi.lock().unwrap().as_ref().map_or(0, |m| {
            m.messages().iter().filter(|&&m| m == SYNC_MSI).count()
        });
        self.msis_then.lock().unwrap().push(sent);
        self.heard.lock().unwrap().push(h);
    }
    fn smmu(&self) -> Arc<Smmuv3> {
        self.smmu.lock().unwrap().upgrade().unwrap()
    }
    fn take(&self) -> Vec<Heard> {
        std::mem::take(&mut *self.heard.lock().unwrap())
    }
}

impl VirtualBackend for Vmm {
    fn command(&self, cmd: &Command) -> Result<(), Refused> {
        if let Command::CfgiSte { sid, .. } = *cmd {
            // reading the guest's table from inside takes no register lock
            let ste = self.smmu().guest_ste(sid);
            self.stes.lock().unwrap().push(ste);
        }
        self.hear(Heard::Cmd(*cmd));
        if *self.refuse.lock().unwrap() == Some(cmd.opcode()) {
            return Err(Refused);
        }
        Ok(())
    }
    fn sync(&self) {
        self.hear(Heard::Sync);
    }
    fn global_changed(&self, state: GlobalState) {
        let now = self.smmu().guest_global();
        self.globals.lock().unwrap().push(now);
        self.hear(Heard::Global(state));
    }
}

impl Downstream for Vmm {
    fn ats_invalidate(&self, inv: &AtsInvalidation) -> Result<(), AtsInvalidationError> {
        self.hear(Heard::AtcInv(*inv));
        Ok(())
    }
    fn page_group_response(&self, rid: Rid, pasid: Option<Pasid>, code: ResponseCode, prgi: u16) {
        self.hear(Heard::Response(rid, pasid, code, prgi));
    }
}

/// A virtual unit, programmed and enabled (with a PRI queue of 16 entries), its VMM as both
/// backend and Downstream.
fn virtual_unit() -> (Bench, Arc<Vmm>) {
    let vmm = Arc::new(Vmm::default());
    let b = Bench::with_devices(vmm.clone(), PRIQ);
    *vmm.smmu.lock().unwrap() = Arc::downgrade(&b.smmu);
    *vmm.msi.lock().unwrap() = Some(b.msi.clone());
    assert!(b.smmu.set_backend(vmm.clone()).is_ok());
    assert!(b.smmu.set_backend(vmm.clone()).is_err(), "set once");
    (b, vmm)
}

fn sync_irq() -> Command {
    Command::Sync {
        cs: SyncCs::Irq,
        msh: 3,
        msiattr: 0xf,
        msidata: SYNC_MSI.1,
        msiaddr: SYNC_MSI.0,
    }
}

fn guest_ste_s1(cdtab: u64) -> Ste {
    s1_ste(cdtab, 4, 0)
}

#[test]
fn configuration_and_invalidation_commands_reach_the_vmm_in_order_before_the_sync() {
    let (mut b, vmm) = virtual_unit();
    b.write_ste(3, &guest_ste_s1(CDTAB));
    let va = TlbiRange {
        addr: 0x40_0000,
        leaf: true,
        ..TlbiRange::default()
    };
    let first = [
        Command::CfgiSte { sid: 3, leaf: true },
        Command::CfgiSteRange {
            sid: 0x13,
            range: 3,
        },
        // CMD_CFGI_ALL
        Command::CfgiSteRange { sid: 0, range: 31 },
        Command::CfgiCd {
            sid: 3,
            ssid: 5,
            leaf: true,
        },
        Command::CfgiCdAll { sid: 3 },
        // a hint: nothing for the VMM
        Command::PrefetchConfig { sid: 3, ssid: None },
        Command::AtcInv {
            sid: 3,
            ssid: Some(5),
            global: false,
            size: 1,
            addr: 0x7000,
        },
        Command::TlbiNhAsid { vmid: 0, asid: 7 },
        sync_irq(),
    ];
    b.submit(&first);
    let atc = AtsInvalidation {
        sid: Rid::from_raw(3),
        pasid: Some(Pasid::new(5).unwrap()),
        // Size 1: 8 KiB from the address aligned down
        addr: 0x6000,
        len: 0x2000,
        global: false,
    };
    assert_eq!(
        vmm.take(),
        [
            Heard::Cmd(first[0]),
            Heard::Cmd(first[1]),
            Heard::Cmd(first[2]),
            Heard::Cmd(first[3]),
            Heard::Cmd(first[4]),
            Heard::AtcInv(atc),
            Heard::Cmd(first[7]),
            Heard::Sync,
        ]
    );
    // every call came before the CMD_SYNC's MSI; the MSI after them all
    assert_eq!(*vmm.msis_then.lock().unwrap(), [0; 8]);
    assert_eq!(b.msi.take(), [SYNC_MSI]);
    // the StreamIDs each CMD_CFGI_* names (§4.3)
    let scopes: Vec<_> = first[..6].iter().map(Command::cfgi_streams).collect();
    assert_eq!(
        scopes,
        [
            Some((3, 3)),
            Some((0x10, 0x1f)),
            Some((0, u32::MAX)),
            Some((3, 3)),
            Some((3, 3)),
            None
        ]
    );
    // the STE the guest wrote, read inside the CMD_CFGI_STE call
    assert_eq!(
        *vmm.stes.lock().unwrap(),
        [Ok(guest_ste_s1(CDTAB))],
        "read from memory while the command ran"
    );

    vmm.msis_then.lock().unwrap().clear();
    let second = [
        Command::TlbiNhAll { vmid: 0 },
        Command::TlbiNhVa {
            vmid: 0,
            asid: 7,
            range: va,
        },
        Command::TlbiNhVaa { vmid: 0, range: va },
        Command::TlbiS12Vmall { vmid: 0 },
        Command::TlbiS2Ipa { vmid: 0, range: va },
        Command::TlbiNsnhAll,
        Command::PriResp {
            sid: 3,
            ssid: Some(5),
            prgi: 9,
            resp: PriResp::Success,
        },
        // a STAG this unit never stalled: the host's stall, the VMM's to answer
        Command::Resume {
            sid: VSID,
            stag: 0x42,
            action: ResumeAction::Retry,
        },
        Command::StallTerm { sid: VSID },
        sync_irq(),
    ];
    b.submit(&second);
    let mut want: Vec<Heard> = second[..6].iter().map(|c| Heard::Cmd(*c)).collect();
    want.push(Heard::Response(
        Rid::from_raw(3),
        Some(Pasid::new(5).unwrap()),
        ResponseCode::Success,
        9,
    ));
    want.extend([Heard::Cmd(second[7]), Heard::Cmd(second[8]), Heard::Sync]);
    assert_eq!(vmm.take(), want);
    assert_eq!(*vmm.msis_then.lock().unwrap(), [0; 10]);
    assert_eq!(b.msi.take(), [SYNC_MSI]);
    // the unknown STAG was no error: the queue ran to PROD, GERROR is clear
    assert_eq!(b.r32(offset::CMDQ_CONS), b.prod);
    assert_eq!(b.r32(offset::GERROR) ^ b.r32(offset::GERRORN), 0);
    assert_eq!(b.smmu.stalled(), 0);
    assert_eq!(b.smmu.stats().syncs, 2);
}

#[test]
fn a_command_the_host_refuses_stops_the_guest_queue_with_cerror_ill() {
    let (mut b, vmm) = virtual_unit();
    *vmm.refuse.lock().unwrap() = Some(Command::CfgiCdAll { sid: 0 }.opcode());
    b.submit(&[
        Command::CfgiSte { sid: 3, leaf: true },
        Command::CfgiCdAll { sid: 3 },
        sync_irq(),
    ]);
    assert_eq!(
        vmm.take(),
        [
            Heard::Cmd(Command::CfgiSte { sid: 3, leaf: true }),
            Heard::Cmd(Command::CfgiCdAll { sid: 3 }),
        ],
        "nothing behind the refused command ran"
    );
    // §7.1: CONS points at the command, ERR = CERROR_ILL, GERROR.CMDQ_ERR active
    let cons = b.r32(offset::CMDQ_CONS);
    assert_eq!(cons & 0x1f, 1);
    assert_eq!(
        (cons >> queue::ERR_SHIFT) as u64 & queue::ERR_MASK as u64,
        cerror::ILL as u64
    );
    assert!((b.r32(offset::GERROR) ^ b.r32(offset::GERRORN)) & Gerror::CMDQ_ERR.bits() != 0);
    assert!(b.msi.take().iter().all(|&m| m != SYNC_MSI));
}

#[test]
fn smmuen_and_gbpa_abort_reach_the_vmm_before_the_write_returns() {
    let vmm = Arc::new(Vmm::default());
    let mut b = Bench::raw(Smmuv3Config::default());
    *vmm.smmu.lock().unwrap() = Arc::downgrade(&b.smmu);
    assert!(b.smmu.set_backend(vmm.clone()).is_ok());
    let g = |smmuen, gbpa_abort| GlobalState { smmuen, gbpa_abort };
    assert_eq!(b.smmu.guest_global(), g(false, false));
    // GBPA.ABORT through the Update protocol (§6.3.14)
    b.w32(
        offset::GBPA,
        (Gbpa::new().with_update(true).with_abort(true)).into_bits(),
    );
    assert_eq!(vmm.take(), [Heard::Global(g(false, true))]);
    // the same again, and a write without Update: nothing changes, nothing heard
    b.w32(
        offset::GBPA,
        (Gbpa::new().with_update(true).with_abort(true)).into_bits(),
    );
    b.w32(offset::GBPA, 0);
    assert_eq!(vmm.take(), []);
    assert!(Gbpa::from_bits(b.r32(offset::GBPA)).abort());
    // SMMUEN with the command queue: the VMM hears the enable before the queued commands
    b.w64(offset::STRTAB_BASE, STRTAB);
    b.w32(offset::STRTAB_BASE_CFG, 8);
    b.w64(offset::CMDQ_BASE, CMDQ | CMDQ_LOG2);
    b.submit(&[Command::CfgiSteRange { sid: 0, range: 31 }]);
    assert_eq!(vmm.take(), [], "the queue is off");
    b.w32(offset::CR0, (Cr0::SMMUEN | Cr0::CMDQEN).bits());
    assert_eq!(
        vmm.take(),
        [
            Heard::Global(g(true, true)),
            Heard::Cmd(Command::CfgiSteRange { sid: 0, range: 31 }),
        ]
    );
    // another enable bit alone: nothing
    b.w32(
        offset::CR0,
        (Cr0::SMMUEN | Cr0::CMDQEN | Cr0::EVTQEN).bits(),
    );
    assert_eq!(vmm.take(), []);
    // GBPA changes while enabled are heard too (they apply once SMMUEN is cleared)
    b.w32(offset::GBPA, Gbpa::new().with_update(true).into_bits());
    assert_eq!(vmm.take(), [Heard::Global(g(true, false))]);
    b.w32(offset::CR0, Cr0::CMDQEN.bits());
    assert_eq!(vmm.take(), [Heard::Global(g(false, false))]);
    // inside each call the unit already showed the new state
    assert_eq!(
        *vmm.globals.lock().unwrap(),
        [
            g(false, true),
            g(true, true),
            g(true, false),
            g(false, false)
        ]
    );
    assert_eq!(
        b.smmu.stream_config(3, None),
        Ok(StreamConfig::Disabled { abort: false })
    );
}

#[test]
fn guest_ste_reads_the_table_now_with_the_lookup_answers_for_bad_streams() {
    let b = Bench::new();
    let ste = guest_ste_s1(CDTAB);
    b.write_ste(3, &ste);
    let got = b.smmu.guest_ste(3).unwrap();
    assert_eq!(got, ste);
    // the two words `struct iommu_hwpt_arm_smmuv3` carries
    assert_eq!(got.w0().config(), config::S1_TRANS);
    assert_eq!(got.s1_context_ptr(), CDTAB);
    // V = 0 (STE 4 is zero), a StreamID beyond the table's 2^8 (C_BAD_STREAMID)
    assert!(matches!(
        b.smmu.guest_ste(4),
        Err(ConfigFault::BadSte { why: "V = 0" })
    ));
    assert_eq!(b.smmu.guest_ste(256), Err(ConfigFault::BadStreamId));
    // none of these is a transaction: nothing recorded (CR2.RECINVSID is set)
    assert_eq!(b.events(), []);
    // not the configuration cache: a transaction caches STE 6 (bypass); the guest then
    // rewrites it without CMD_CFGI_STE — the cache keeps the old, guest_ste reads the new
    let ste = |cfg| {
        Ste::from_words(
            Ste0::new().with_v(true).with_config(cfg),
            Ste1::new(),
            Ste2::new(),
            Ste3::new(),
        )
    };
    b.write_ste(6, &ste(config::BYPASS));
    assert_eq!(b.smmu.stream_config(6, None), Ok(StreamConfig::Bypass));
    b.write_ste(6, &ste(config::ABORT));
    assert_eq!(b.smmu.stream_config(6, None), Ok(StreamConfig::Bypass));
    assert_eq!(b.smmu.guest_ste(6), Ok(ste(config::ABORT)));
    // a stage-2 STE on a unit without stage 2 (a guest's) is ILLEGAL (§5.2.2)
    let b = Bench::with(Smmuv3Config {
        stage2: false,
        ..Smmuv3Config::default()
    });
    b.write_ste(5, &s2_ste(good_ste2(1)));
    assert!(matches!(
        b.smmu.guest_ste(5),
        Err(ConfigFault::BadSte {
            why: "stage 2 Config without IDR0.S2P"
        })
    ));
    // a stream table outside memory: F_STE_FETCH with the address read
    let b = Bench::raw(Smmuv3Config::default());
    b.w64(offset::STRTAB_BASE, NOWHERE);
    b.w32(offset::STRTAB_BASE_CFG, 8);
    assert_eq!(
        b.smmu.guest_ste(2),
        Err(ConfigFault::SteFetch {
            addr: NOWHERE + 2 * 64
        })
    );
    // while SMMUEN = 0 the table is still read: guest_global says whether it applies
    assert!(!b.smmu.guest_global().smmuen);
}

#[test]
fn host_events_go_into_the_guest_queue_under_the_vsid() {
    let (b, _vmm) = virtual_unit();
    // a host F_TRANSLATION of StreamID 0x310, as the host's event queue had it
    let a = Access {
        sid: 0x310,
        ssid: Some(5),
        addr: 0x7fff_0000_1000,
        read: true,
        instruction: false,
        privileged: false,
    };
    let w = WalkFault {
        class: class::TT,
        ..WalkFault::default()
    };
    let host = EventRecord::walk_fault(id::F_TRANSLATION, &a, &w);
    assert!(b.smmu.record(&host.with_sid(VSID)));
    assert!(b.smmu.record(&EventRecord::c_bad_cd(VSID, Some(7))));
    let got = b.events();
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].kind(), got[0].sid()), (id::F_TRANSLATION, VSID));
    assert_eq!(got[0].ssid(), Some(5));
    // every other field as the host wrote it
    assert_eq!(got[0].words[0] & 0xffff_ffff, host.words[0] & 0xffff_ffff);
    assert_eq!(got[0].words[1..], host.words[1..]);
    assert_eq!(got[0].stag(), None);
    assert_eq!(got[1].words, config_record(id::C_BAD_CD, VSID, Some(7)));
    // with the guest's event queue off the record is lost, and the VMM is told so
    b.w32(offset::CR0, (Cr0::SMMUEN | Cr0::CMDQEN).bits());
    assert!(!b.smmu.record(&EventRecord::c_bad_ste(VSID, None)));
}

#[test]
fn an_injected_stall_event_is_answered_by_a_resume_the_vmm_hears() {
    let (mut b, vmm) = virtual_unit();
    // the host stalled a write of SubstreamID 5 at EL1 (an instruction fetch would be a
    // read); the VMM gives it guest STAG 0x77
    let a = Access {
        sid: VSID,
        ssid: Some(5),
        addr: 0x40_2000,
        read: false,
        instruction: false,
        privileged: true,
    };
    let w = WalkFault {
        class: class::TT,
        stag: Some(0x77),
        ..WalkFault::default()
    };
    assert!(
        b.smmu
            .record(&EventRecord::walk_fault(id::F_TRANSLATION, &a, &w))
    );
    let got = b.events();
    assert_eq!(got.len(), 1);
    let [w0, w1, w2, _] = got[0].words;
    // §7.3.13: dword 0 type, SSV (11), SubstreamID (31:12), StreamID (63:32)
    assert_eq!(w0, 0x10 | 1 << 11 | 5 << 12 | (VSID as u64) << 32);
    // dword 1: STAG (15:0), Stall (31), PnU (33), InD (34) = 0, RnW (35) = 0, CLASS TT
    assert_eq!(w1, 0x77 | 1 << 31 | 1 << 33 | (class::TT as u64) << 40);
    assert_eq!(w2, 0x40_2000);
    assert_eq!(got[0].stag(), Some(0x77));
    // the guest driver answers: CMD_RESUME of a STAG the unit never held, then a sync
    let resume = Command::Resume {
        sid: VSID,
        stag: 0x77,
        action: ResumeAction::Retry,
    };
    b.submit(&[resume]);
    b.sync();
    assert_eq!(vmm.take(), [Heard::Cmd(resume), Heard::Sync]);
    assert_eq!(b.r32(offset::GERROR) ^ b.r32(offset::GERRORN), 0);
}

fn page_request(prgi: u16, last: bool, pasid: Option<u32>) -> PageRequest {
    PageRequest {
        rid: Rid::from_raw(VSID as u16),
        pasid: pasid.map(|p| Pasid::new(p).unwrap()),
        addr: 0x7fff_0000_3000,
        read: true,
        write: false,
        exec: false,
        privileged: false,
        last,
        prgi,
    }
}

#[test]
fn page_requests_reach_the_guest_priq_or_an_automatic_response_reaches_the_vmm() {
    let (b, vmm) = virtual_unit();
    let out = b.smmu.page_request(&page_request(3, true, Some(5)));
    assert_eq!(out, PageRequestOutcome::Queued);
    let mut e = PriEntry::default();
    b.mem.read(PRIQ, e.as_mut_bytes()).unwrap();
    let f = e.fields();
    assert_eq!(
        (f.sid, f.ssid, f.read, f.write, f.last, f.prgi, f.addr),
        (VSID, Some(5), true, false, true, 3, 0x7fff_0000_3000)
    );
    assert_eq!(vmm.take(), []);
    // fill the 16-entry queue: the next Last request overflows, and the SMMU answers it
    // Success with its PASID (IDR3.PPS, §8.2) — through the VMM, to the host's group
    for i in 1..16 {
        let r = b.smmu.page_request(&page_request(i, false, Some(5)));
        assert_eq!(r, PageRequestOutcome::Queued);
    }
    let r = b.smmu.page_request(&page_request(0x1ff, true, Some(5)));
    assert_eq!(r, PageRequestOutcome::AutoResponse(ResponseCode::Success));
    let rid = Rid::from_raw(VSID as u16);
    assert_eq!(
        vmm.take(),
        [Heard::Response(
            rid,
            Some(Pasid::new(5).unwrap()),
            ResponseCode::Success,
            0x1ff
        )]
    );
    assert_ne!(b.r32(offset::PRIQ_PROD) & queue::OVERFLOW, 0);
    // the guest's PRI queue off: Response Failure without PASID (§8.1)
    b.w32(
        offset::CR0,
        (Cr0::SMMUEN | Cr0::CMDQEN | Cr0::EVTQEN).bits(),
    );
    let r = b.smmu.page_request(&page_request(4, true, Some(5)));
    assert_eq!(
        r,
        PageRequestOutcome::AutoResponse(ResponseCode::ResponseFailure)
    );
    assert_eq!(
        vmm.take(),
        [Heard::Response(rid, None, ResponseCode::ResponseFailure, 4)]
    );
    // a request that is not the group's last is dropped with the queue full, unanswered
    b.w32(
        offset::CR0,
        (Cr0::SMMUEN | Cr0::CMDQEN | Cr0::EVTQEN | Cr0::PRIQEN).bits(),
    );
    let r = b.smmu.page_request(&page_request(6, false, Some(5)));
    assert_eq!(r, PageRequestOutcome::Dropped);
    assert_eq!(vmm.take(), []);
    assert_eq!(b.smmu.stats().pri_auto_responses, 2);
}

#[test]
fn a_guest_unit_without_a_backend_behaves_as_a_physical_one() {
    // no backend: the same commands run, nothing to hear, CMD_SYNC completes
    let mut b = Bench::new();
    b.submit(&[Command::CfgiSte { sid: 3, leaf: true }, sync_irq()]);
    assert_eq!(b.msi.take(), [SYNC_MSI]);
    assert_eq!(b.r32(offset::CMDQ_CONS), b.prod);
}
