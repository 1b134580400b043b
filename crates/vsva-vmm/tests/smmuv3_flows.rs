//! Flows 2–4 for a virtual SMMUv3, one at a time, each observed where it lands:
//! invalidate — the host SMMU's TLB and commands and the device's ATC, before the guest's
//! CMD_SYNC (IHI 0070 §4.7.3); fault — the guest's PRI queue (§8) and event queue (a stall
//! event, §3.12.2, §7.3.13) under the guest's StreamID and SubstreamID and the host's STAG;
//! respond — the guest's CMD_PRI_RESP (§4.5.2) and CMD_RESUME (§4.7.1) reaching the host, and
//! answers to nothing dropped and counted.

#[path = "common/smmuv3.rs"]
mod smmu;

use std::sync::Arc;

use smmu::{DEV, bind, cmd, cmdq_prod, guest, host, last_event, put_raw, realign};
use vsva_demo::regs::{DeviceError, Op};
use vsva_demo::{DemoDriver, DriverError, Machine, PLATFORM_STREAM, Progress};
use vsva_host::Smmuv3Kind;
use vsva_mem::{Rid, Va};
use vsva_mm::{MapFlags, Prot};
use vsva_pcie::ResponseCode;
use vsva_smmuv3::spec::cmd::{Command, PriResp};
use vsva_smmuv3::spec::event::id;
use vsva_smmuv3::spec::registers::{Cr0, cerror, offset};
use vsva_smmuv3_driver::DriverError as SmmuError;
use vsva_vmm::GuestKind;

/// Moves what the host queued for the guest into its SMMU (fault queue and vEVENTQ).
fn pump(vm: &vsva_vmm::Smmuv3Vm) -> usize {
    <Smmuv3Kind as GuestKind>::pump(vm.vmm())
}

#[test]
fn a_guest_munmap_reaches_the_host_tlb_and_the_devices_atc_before_it_returns() {
    let host = host();
    let vm = guest(&host, 1);
    let b = bind(&vm);
    let buf = b
        .process
        .mmap(None, 4 * 4096, Prot::RW, MapFlags::empty())
        .unwrap();
    b.drv
        .run(&vm, &b.ctx, &cmd(Op::Fill, 0, buf.raw(), 4 * 4096, 1))
        .unwrap();
    assert!(
        host.unit.tlb_entries() > 0,
        "the host walked the guest's tables"
    );
    let (h_before, d_before, v_before) = (
        host.unit.stats(),
        b.drv.device().stats().atc_invalidations,
        vm.vmm().counters().invalidations_propagated,
    );
    b.process.munmap(Va::new(buf.raw() + 4096), 4096).unwrap();
    // By the time munmap returned (the guest's CMD_SYNC completed): the guest's TLBI and
    // ATC_INV went to the host as vIOMMU invalidations, the host SMMU consumed commands and
    // dropped TLB entries, and the device its ATC entry.
    let h_after = host.unit.stats();
    assert!(vm.vmm().counters().invalidations_propagated >= v_before + 2);
    assert!(h_after.commands > h_before.commands);
    assert!(h_after.tlb.invalidated > h_before.tlb.invalidated);
    assert!(b.drv.device().stats().atc_invalidations > d_before);
    match b.drv.run(
        &vm,
        &b.ctx,
        &cmd(Op::ReadChecksum, buf.raw() + 4096, 0, 4096, 0),
    ) {
        Err(DriverError::Device(DeviceError::PageRequestInvalid)) => {}
        other => panic!("DMA to the unmapped page gave {other:?}"),
    }
}

#[test]
fn a_tlbi_reaches_the_host_before_the_guests_cmd_sync_is_even_on_the_queue() {
    let host = host();
    let vm = guest(&host, 1);
    let b = bind(&vm);
    let buf = b
        .process
        .mmap(None, 2 * 4096, Prot::RW, MapFlags::empty())
        .unwrap();
    b.drv
        .run(&vm, &b.ctx, &cmd(Op::Fill, 0, buf.raw(), 2 * 4096, 1))
        .unwrap();
    let asid = vm.os().driver.asid_of(DEV, b.ctx.pasid().raw()).unwrap();
    let home = cmdq_prod(&vm);
    let (h, g) = (host.unit.stats(), vm.unit().stats());
    // CMD_TLBI_NH_ASID alone on the guest's queue, no CMD_SYNC behind it (§4.4.2): the host
    // has already carried it out (Linux forces the VM's VMID) when the guest unit consumed
    // it — before any CMD_SYNC of the guest could complete.
    let tlbi = Command::TlbiNhAsid { vmid: 0, asid }.encode();
    assert_eq!(put_raw(&vm, &[tlbi]).illegal, 0);
    let (h2, g2) = (host.unit.stats(), vm.unit().stats());
    assert_eq!(g2.syncs, g.syncs, "no guest CMD_SYNC yet");
    assert!(h2.syncs > h.syncs, "the host's CMD_SYNC completed");
    assert!(
        h2.tlb.invalidated > h.tlb.invalidated,
        "the host dropped the ASID's entries"
    );
    realign(&vm, home);
    // TLBI_NH_ALL and TLBI_NSNH_ALL (the host makes it NH_ALL of the VMID) are relayed too.
    let before = vm.vmm().counters().invalidations_propagated;
    vm.os()
        .driver
        .issue_commands(&[Command::TlbiNhAll { vmid: 0 }, Command::TlbiNsnhAll])
        .unwrap();
    assert_eq!(vm.vmm().counters().invalidations_propagated, before + 2);
    // EL2 and stage-2 TLBIs are not a stage-1 guest's (IDR0.S2P = 0, no Hyp): the guest's
    // unit refuses them (CERROR_ILL) and nothing reaches the host.
    for c in [Command::TlbiS12Vmall { vmid: 1 }, Command::TlbiEl2All] {
        let r = vm.os().driver.issue_commands(&[c]);
        assert!(
            matches!(
                r,
                Err(SmmuError::Command {
                    code: cerror::ILL,
                    ..
                })
            ),
            "{c:?}: {r:?}"
        );
    }
    assert_eq!(vm.vmm().counters().invalidations_propagated, before + 2);
    // The device still works (its tables are refetched).
    b.drv
        .run(&vm, &b.ctx, &cmd(Op::ReadChecksum, buf.raw(), 0, 4096, 0))
        .unwrap();
}

#[test]
fn atc_inv_reaches_the_device_and_one_naming_a_foreign_vsid_fails_the_guests_sync() {
    let host = host();
    let vm = guest(&host, 1);
    let b = bind(&vm);
    let ssid = b.ctx.pasid().raw();
    let before = b.drv.device().stats().atc_invalidations;
    vm.os()
        .driver
        .issue_commands(&[Command::AtcInv {
            sid: u32::from(DEV.raw()),
            ssid: Some(ssid),
            global: false,
            size: 0,
            addr: 0x4000_0000,
        }])
        .unwrap();
    assert_eq!(b.drv.device().stats().atc_invalidations, before + 1);
    // A vSID the VM has no vDEVICE for (00:0a.0): the host refuses it (EIO,
    // `arm_vsmmu_convert_user_cmd()`), so the guest's CMD_SYNC fails with
    // CERROR_ATC_INV_SYNC (§4.7.3) and no device is touched.
    let errors = vm.vmm().counters().invalidations_propagated;
    let r = vm.os().driver.issue_commands(&[Command::AtcInv {
        sid: 0x50,
        ssid: None,
        global: false,
        size: 52,
        addr: 0,
    }]);
    assert!(
        matches!(
            r,
            Err(SmmuError::Command {
                code: cerror::ATC_INV_SYNC,
                ..
            })
        ),
        "{r:?}"
    );
    assert_eq!(vm.vmm().counters().invalidations_propagated, errors);
    assert_eq!(b.drv.device().stats().atc_invalidations, before + 1);
    // Likewise CFGI_CD of a foreign vSID: the host refuses, the guest's queue stops at it
    // with CERROR_ILL (QEMU's accelerated SMMUv3 does the same).
    let r = vm.os().driver.issue_commands(&[Command::CfgiCd {
        sid: 0x50,
        ssid: 1,
        leaf: true,
    }]);
    assert!(
        matches!(
            r,
            Err(SmmuError::Command {
                code: cerror::ILL,
                ..
            })
        ),
        "{r:?}"
    );
    // The guest's own CFGI_CD goes through.
    vm.os()
        .driver
        .issue_commands(&[Command::CfgiCd {
            sid: u32::from(DEV.raw()),
            ssid,
            leaf: true,
        }])
        .unwrap();
    assert_eq!(vm.vmm().counters().invalidations_propagated, errors + 1);
}

#[test]
fn a_page_request_reaches_the_guests_pri_queue_and_its_pri_resp_the_host() {
    let host = host();
    let vm = guest(&host, 1);
    let b = bind(&vm);
    let ssid = b.ctx.pasid();
    let buf = b
        .process
        .mmap(None, 4096, Prot::RW, MapFlags::empty())
        .unwrap();
    b.drv.submit(&b.ctx, &cmd(Op::Fill, 0, buf.raw(), 4096, 9));
    let dev = b.drv.device();
    assert_eq!(dev.run(), Progress::Waiting);
    assert!(host.service() > 0, "the host's PRI queue had the request");
    let c0 = vm.vmm().counters();
    let g0 = vm.unit().stats();
    assert_eq!(pump(&vm), 1);
    assert_eq!(vm.unit().stats().page_requests, g0.page_requests + 1);
    assert_eq!(vm.vmm().counters().faults_to_guest, c0.faults_to_guest + 1);
    // The guest's PRI queue entry names the device by its vSID (guest RID 00:03.0, not the
    // host's 01:03.0) and its own SubstreamID, the page, write access, last in its group.
    let reqs = vm.os().driver.take_requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    let r = reqs[0];
    assert_eq!((r.rid, r.pasid, r.addr), (DEV, Some(ssid), buf.raw()));
    assert!(r.write && r.last);
    // The guest pages it in and answers Success: the host's group is answered and the
    // device's command completes.
    b.process.write_bytes(buf, &[0u8]).unwrap();
    vm.os()
        .driver
        .respond(r.rid, r.pasid, r.prgi, ResponseCode::Success)
        .unwrap();
    assert_eq!(
        vm.vmm().counters().page_responses_relayed,
        c0.page_responses_relayed + 1
    );
    b.drv.wait(&vm).unwrap();
    let mut got = [0u8; 64];
    b.process.read_bytes(buf, &mut got).unwrap();
    assert!(
        got.iter().all(|&x| x == 9),
        "the device's fill reached guest RAM"
    );

    // The same group answered again, and groups never delivered: dropped and counted, the
    // host's device unaffected.
    let dropped = vm.vmm().counters().responses_dropped;
    vm.os()
        .driver
        .respond(r.rid, r.pasid, r.prgi, ResponseCode::Success)
        .unwrap();
    for prgi in [0, 0x55, 0x1ff] {
        vm.os()
            .driver
            .respond(DEV, Some(ssid), prgi, ResponseCode::InvalidRequest)
            .unwrap();
    }
    assert_eq!(vm.vmm().counters().responses_dropped, dropped + 4);
    assert_eq!(
        vm.vmm().counters().page_responses_relayed,
        c0.page_responses_relayed + 1
    );
    assert_eq!(dev.run(), Progress::Idle);
}

#[test]
fn an_invalid_answer_fails_the_devices_command() {
    let host = host();
    let vm = guest(&host, 1);
    let b = bind(&vm);
    let buf = b
        .process
        .mmap(None, 4096, Prot::RW, MapFlags::empty())
        .unwrap();
    b.drv.submit(&b.ctx, &cmd(Op::Fill, 0, buf.raw(), 4096, 9));
    assert_eq!(b.drv.device().run(), Progress::Waiting);
    host.service();
    assert_eq!(pump(&vm), 1);
    let r = vm.os().driver.take_requests()[0];
    vm.os()
        .driver
        .respond(r.rid, r.pasid, r.prgi, ResponseCode::InvalidRequest)
        .unwrap();
    assert_eq!(
        b.drv.device().run(),
        Progress::Failed(DeviceError::PageRequestInvalid)
    );
}

/// The guest's platform device (StreamID [`PLATFORM_STREAM`]), probed, a process bound.
fn platform(vm: &vsva_vmm::Smmuv3Vm) -> (DemoDriver, Arc<vsva_mm::Process>, vsva_demo::Context) {
    let dev = vm
        .add_platform_device(Rid::from_raw(PLATFORM_STREAM), 20)
        .unwrap();
    let drv = DemoDriver::probe_platform(vm, dev, 20, 32).unwrap();
    let process = vm.mm().spawn().unwrap();
    let ctx = drv.open(vm, &process).unwrap();
    (drv, process, ctx)
}

#[test]
fn a_platform_stall_becomes_a_guest_stall_event_with_the_host_stag_and_resume_retries_it() {
    let host = host();
    let vm = guest(&host, 1);
    let (drv, process, ctx) = platform(&vm);
    let buf = process
        .mmap(None, 4096, Prot::RW, MapFlags::empty())
        .unwrap();
    drv.submit(&ctx, &cmd(Op::Fill, 0, buf.raw(), 4096, 4));
    assert_eq!(drv.device().run(), Progress::Waiting, "stalled");
    assert_eq!(host.unit.stats().stalled, 1);
    assert!(host.service() > 0);
    // The host SMMU's stall event: F_TRANSLATION with Stall = 1 and a STAG, on the host
    // StreamID of the device.
    let hs = u32::from(vm.vmm().host_rid(Rid::from_raw(PLATFORM_STREAM)).raw());
    let hev = last_event(&host.unit, host.mem.as_ref());
    assert_eq!((hev.kind(), hev.sid()), (id::F_TRANSLATION, hs));
    let stag = hev.stag().expect("a stall event has a STAG");
    let c0 = vm.vmm().counters();
    assert_eq!(pump(&vm), 1);
    // The guest's event: F_TRANSLATION, Stall = 1, the host's STAG, the vSID, the guest's
    // SubstreamID and the faulting address (§7.3.13).
    let gev = last_event(vm.unit(), vm.vmm().ram().as_ref());
    assert_eq!(gev.kind(), id::F_TRANSLATION);
    assert_eq!(gev.sid(), u32::from(PLATFORM_STREAM));
    assert_eq!(gev.ssid(), Some(ctx.pasid().raw()));
    assert_eq!(gev.stag(), Some(stag));
    assert_eq!(gev.words[2] & !0xfff, buf.raw());
    assert_eq!(vm.vmm().counters().faults_to_guest, c0.faults_to_guest + 1);
    // The guest's driver reads it as a stalled transaction named by that STAG.
    let reqs = vm.os().driver.take_requests();
    assert_eq!(reqs.len(), 1);
    let r = reqs[0];
    assert_eq!(
        (r.rid.raw(), r.prgi, r.pasid),
        (PLATFORM_STREAM, stag, Some(ctx.pasid()))
    );

    // A CMD_RESUME of a STAG never delivered: dropped and counted; the stall stays.
    let dropped = c0.responses_dropped;
    vm.os()
        .driver
        .issue_commands(&[Command::Resume {
            sid: u32::from(PLATFORM_STREAM),
            stag: stag.wrapping_add(1),
            action: vsva_smmuv3::spec::cmd::ResumeAction::Retry,
        }])
        .unwrap();
    assert_eq!(vm.vmm().counters().responses_dropped, dropped + 1);
    assert_eq!(host.unit.stats().stalled, 1);
    // Nor does a CMD_PRI_RESP naming the stalled stream and the STAG as PRG index (§4.7.1:
    // only CMD_RESUME resumes a stall).
    vm.os()
        .driver
        .issue_commands(&[Command::PriResp {
            sid: u32::from(PLATFORM_STREAM),
            ssid: None,
            prgi: stag & 0x1ff,
            resp: PriResp::Success,
        }])
        .unwrap();
    assert_eq!(vm.vmm().counters().responses_dropped, dropped + 2);
    assert_eq!(host.unit.stats().stalled, 1);

    // The guest pages it in and resumes (Retry): the host resumes its stall, the command
    // completes.
    let host_resumes = host.driver.stall_stats().resumes;
    process.write_bytes(buf, &[0u8]).unwrap();
    vm.os()
        .driver
        .respond(r.rid, r.pasid, r.prgi, ResponseCode::Success)
        .unwrap();
    assert_eq!(
        vm.vmm().counters().page_responses_relayed,
        c0.page_responses_relayed + 1
    );
    assert_eq!(host.driver.stall_stats().resumes, host_resumes + 1);
    drv.wait(&vm).unwrap();
    assert_eq!(host.unit.stats().stalled, 0);
}

/// Clears `bits` of the guest SMMU's CR0 (a guest kernel turning a queue off).
fn cr0_clear(vm: &vsva_vmm::Smmuv3Vm, bits: Cr0) {
    let cr0 = vm.unit().mmio_read(offset::CR0, 4) as u32;
    vm.unit()
        .mmio_write(offset::CR0, 4, u64::from(cr0 & !bits.bits()));
    assert_eq!(
        vm.unit().mmio_read(offset::CR0ACK, 4) as u32 & bits.bits(),
        0
    );
}

#[test]
fn a_page_request_the_guests_pri_queue_cannot_take_is_answered_by_its_smmu() {
    let host = host();
    let vm = guest(&host, 1);
    let b = bind(&vm);
    let buf = b
        .process
        .mmap(None, 4096, Prot::RW, MapFlags::empty())
        .unwrap();
    // PRIQEN = 0: the guest's SMMU answers page requests itself (§8.1: a PRG Response of
    // Response Failure for a last request it cannot record); the VMM passes that answer to
    // the host's group, and the device does not wait for ever.
    cr0_clear(&vm, Cr0::PRIQEN);
    b.drv.submit(&b.ctx, &cmd(Op::Fill, 0, buf.raw(), 4096, 9));
    assert_eq!(b.drv.device().run(), Progress::Waiting);
    host.service();
    let (c0, g0) = (vm.vmm().counters(), vm.unit().stats());
    pump(&vm);
    assert_eq!(vm.unit().stats().page_requests, g0.page_requests);
    assert_eq!(
        vm.unit().stats().pri_auto_responses,
        g0.pri_auto_responses + 1
    );
    assert_eq!(
        vm.vmm().counters().page_responses_relayed,
        c0.page_responses_relayed + 1
    );
    assert!(matches!(b.drv.device().run(), Progress::Failed(_)));
}

#[test]
fn a_stall_the_guests_event_queue_cannot_take_is_terminated() {
    let host = host();
    let vm = guest(&host, 1);
    let (drv, process, ctx) = platform(&vm);
    let buf = process
        .mmap(None, 4096, Prot::RW, MapFlags::empty())
        .unwrap();
    // EVTQEN = 0: the stall event cannot be recorded, so the guest could never resume it;
    // the VMM terminates it on the host (as an SMMU terminates a stall whose event it could
    // not record, §3.12.2).
    cr0_clear(&vm, Cr0::EVTQEN);
    drv.submit(&ctx, &cmd(Op::Fill, 0, buf.raw(), 4096, 4));
    assert_eq!(drv.device().run(), Progress::Waiting);
    host.service();
    let c0 = vm.vmm().counters();
    assert_eq!(pump(&vm), 0);
    assert_eq!(vm.vmm().counters().faults_to_guest, c0.faults_to_guest);
    assert_eq!(host.unit.stats().stalled, 0, "terminated");
    assert!(matches!(drv.device().run(), Progress::Failed(_)));
}
