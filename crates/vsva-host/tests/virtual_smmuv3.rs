//! A guest OS booted on a virtual SMMUv3 — the model in its virtual role, over guest RAM, as
//! a VMM builds it — with the unchanged SMMUv3 driver: the VMM hears the driver's reset
//! (SMMUEN, CMD_CFGI_ALL) and the CMD_CFGI_STE of each STE it writes, reads that STE through
//! `guest_ste` from inside the call, and the guest's CMD_SYNC completes after it (IHI 0070
//! §4.7.3). Page requests and stall events the VMM injects reach the guest's IOMMU core, and
//! its answers (CMD_PRI_RESP, CMD_RESUME of a STAG the unit never held) reach the VMM.

use std::sync::{Arc, Mutex, Weak};

use vsva_host::{IommuKind, Os, Smmuv3Kind};
use vsva_iommu::{DeviceCaps, IommuOps};
use vsva_mem::{Pasid, PhysMem, PhysMemory, Rid};
use vsva_pcie::{
    AtsInvalidation, AtsInvalidationError, Downstream, MsiLog, PageRequest, PageRequestOutcome,
    ResponseCode,
};
use vsva_smmuv3::spec::cmd::Command;
use vsva_smmuv3::spec::ste::{Ste, config};
use vsva_smmuv3::{ConfigFault, GlobalState, Refused, Smmuv3, Smmuv3Config, VirtualBackend};

const RAM: u64 = 1 << 30;
const VSID: Rid = Rid::from_raw(0x18);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Heard {
    Cmd(Command),
    Sync,
    Global(GlobalState),
    Response(Rid, Option<Pasid>, ResponseCode, u16),
}

/// A VMM that records what it hears, and the guest STE each CMD_CFGI_STE names.
#[derive(Default)]
struct Vmm {
    unit: Mutex<Weak<Smmuv3>>,
    heard: Mutex<Vec<Heard>>,
    stes: Mutex<Vec<(u32, Result<Ste, ConfigFault>)>>,
}

impl Vmm {
    fn take(&self) -> Vec<Heard> {
        std::mem::take(&mut *self.heard.lock().unwrap())
    }
}

impl VirtualBackend for Vmm {
    fn command(&self, cmd: &Command) -> Result<(), Refused> {
        if let Command::CfgiSte { sid, .. } = *cmd {
            if let Some(u) = self.unit.lock().unwrap().upgrade() {
                self.stes.lock().unwrap().push((sid, u.guest_ste(sid)));
            }
        }
        self.heard.lock().unwrap().push(Heard::Cmd(*cmd));
        Ok(())
    }
    fn sync(&self) {
        self.heard.lock().unwrap().push(Heard::Sync);
    }
    fn global_changed(&self, state: GlobalState) {
        self.heard.lock().unwrap().push(Heard::Global(state));
    }
}

impl Downstream for Vmm {
    fn ats_invalidate(&self, _: &AtsInvalidation) -> Result<(), AtsInvalidationError> {
        Ok(())
    }
    fn page_group_response(&self, rid: Rid, pasid: Option<Pasid>, code: ResponseCode, prgi: u16) {
        self.heard
            .lock()
            .unwrap()
            .push(Heard::Response(rid, pasid, code, prgi));
    }
}

/// The guest's vSMMU as a VMM builds it: stage 1 only, the rest as the host has it.
fn guest() -> (Arc<Smmuv3>, Arc<Vmm>, Os<Smmuv3Kind>) {
    let host = Smmuv3Config::default();
    let host = Smmuv3Config::from_registers(host.idrs(), host.iidr);
    let cfg = Smmuv3Config {
        stage2: false,
        ..Smmuv3Config::default()
    }
    .clamp_to(&host);
    let ram: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(RAM).unwrap());
    let vmm = Arc::new(Vmm::default());
    let unit = Smmuv3Kind::build(cfg, ram.clone(), Arc::new(MsiLog::default()), vmm.clone());
    *vmm.unit.lock().unwrap() = Arc::downgrade(&unit);
    assert!(unit.set_backend(vmm.clone()).is_ok());
    let os = Os::<Smmuv3Kind>::boot(ram, &unit, RAM).unwrap();
    (unit, vmm, os)
}

#[test]
fn the_vmm_hears_the_guest_driver_reset_and_each_ste_it_writes() {
    let (unit, vmm, os) = guest();
    let heard = vmm.take();
    // Linux arm_smmu_device_reset: configuration and TLBs invalidated with a sync, SMMUEN
    // last (GBPA as the driver left it)
    assert!(heard.contains(&Heard::Cmd(Command::CfgiSteRange { sid: 0, range: 31 })));
    assert!(heard.contains(&Heard::Cmd(Command::TlbiNsnhAll)));
    let sync = heard.iter().position(|h| *h == Heard::Sync).unwrap();
    let cfgi = heard
        .iter()
        .position(|h| matches!(h, Heard::Cmd(Command::CfgiSteRange { .. })))
        .unwrap();
    assert!(cfgi < sync);
    match heard.last() {
        Some(Heard::Global(g)) => assert!(g.smmuen),
        other => panic!("SMMUEN last, got {other:?}"),
    }
    assert!(unit.guest_global().smmuen);
    assert_eq!(os.driver.pasid_bits(), 20);

    // a device and a domain: the driver writes its STE and invalidates it; the VMM reads it
    // in the call
    let caps = DeviceCaps {
        pasid_bits: 20,
        ats: true,
        pri: true,
    };
    os.iommu.add_device(VSID, caps, 32).unwrap();
    // a paging domain on its requests without PASID: a stage 1 STE and CD 0
    let dom = os.iommu.alloc_paging_domain().unwrap();
    os.iommu
        .attach_domain(VSID, Pasid::new(0).unwrap(), &dom, None)
        .unwrap();
    let heard = vmm.take();
    let sid = VSID.raw() as u32;
    let at = heard
        .iter()
        .position(|h| matches!(h, Heard::Cmd(Command::CfgiSte { sid: s, .. }) if *s == sid))
        .expect("the driver invalidated the STE it wrote");
    assert!(heard[at..].contains(&Heard::Sync), "and synced after it");
    let stes = vmm.stes.lock().unwrap().clone();
    let (_, seen) = stes.iter().rev().find(|(s, _)| *s == sid).unwrap();
    let seen = (*seen).expect("the driver's STE is legal");
    assert!(seen.w0().v());
    assert_eq!(seen.w0().config(), config::S1_TRANS);
    assert_eq!(seen.w0().s1cdmax(), 20);
    // what the VMM read inside the call is what the table holds once the write returned
    assert_eq!(unit.guest_ste(sid), Ok(seen));
    // its neighbours share the level-2 table the driver filled with its initial STEs; a
    // StreamID of another level-2 table the guest never set up has none (C_BAD_STREAMID)
    assert!(unit.guest_ste(sid + 1).unwrap().w0().v());
    assert_eq!(unit.guest_ste(0x4000), Err(ConfigFault::BadStreamId));
}

#[test]
fn a_page_request_the_vmm_injects_reaches_the_guest_and_its_answer_the_vmm() {
    let (unit, vmm, os) = guest();
    let caps = DeviceCaps {
        pasid_bits: 20,
        ats: true,
        pri: true,
    };
    os.iommu.add_device(VSID, caps, 32).unwrap();
    vmm.take();
    // a page request for a PASID the guest has no process on
    let pr = PageRequest {
        rid: VSID,
        pasid: Some(Pasid::new(7).unwrap()),
        addr: 0x1000_0000,
        read: true,
        write: false,
        exec: false,
        privileged: false,
        last: true,
        prgi: 5,
    };
    assert_eq!(unit.page_request(&pr), PageRequestOutcome::Queued);
    assert_eq!(os.iommu.handle_page_requests(), 1);
    // the guest's core answers through CMD_PRI_RESP, which the unit sends to the VMM
    let heard = vmm.take();
    let responses: Vec<_> = heard
        .iter()
        .filter(|h| matches!(h, Heard::Response(..)))
        .collect();
    assert_eq!(responses.len(), 1);
    let Heard::Response(rid, pasid, code, prgi) = responses[0] else {
        unreachable!()
    };
    assert_eq!((*rid, *pasid, *prgi), (VSID, pr.pasid, 5));
    assert_ne!(*code, ResponseCode::Success, "no process bound to PASID 7");
}

#[test]
fn a_stall_the_vmm_injects_is_resumed_by_the_guest_driver_through_the_vmm() {
    use vsva_smmuv3::spec::cmd::ResumeAction;
    use vsva_smmuv3::spec::event::{Access, EventRecord, WalkFault, class, id};
    let (unit, vmm, os) = guest();
    let caps = DeviceCaps {
        pasid_bits: 20,
        ats: false,
        pri: false,
    };
    // room for outstanding groups: a stalled transaction is one
    os.iommu.add_device(VSID, caps, 32).unwrap();
    vmm.take();
    // the host stalled a read of SubstreamID 7; the VMM names it STAG 0x33 in the guest
    let a = Access {
        sid: VSID.raw() as u32,
        ssid: Some(7),
        addr: 0x1000_0000,
        read: true,
        ..Access::default()
    };
    let w = WalkFault {
        class: class::TT,
        stag: Some(0x33),
        ..WalkFault::default()
    };
    assert!(unit.record(&EventRecord::walk_fault(id::F_TRANSLATION, &a, &w)));
    // the guest's driver reads it as a stalled transaction and its core answers it (no
    // process on PASID 7): CMD_RESUME of STAG 0x33, which the unit never held, to the VMM
    assert_eq!(os.iommu.handle_page_requests(), 1);
    let heard = vmm.take();
    let resumes: Vec<_> = heard
        .iter()
        .filter_map(|h| match h {
            Heard::Cmd(Command::Resume { sid, stag, action }) => Some((*sid, *stag, *action)),
            _ => None,
        })
        .collect();
    assert_eq!(resumes.len(), 1, "{heard:?}");
    let (sid, stag, action) = resumes[0];
    assert_eq!((sid, stag), (VSID.raw() as u32, 0x33));
    assert_ne!(action, ResumeAction::Retry, "nothing was fixed");
    assert_eq!(unit.stalled(), 0);
}
