//! Two guests with a virtual SMMUv3 on one host, one hostile: garbage STEs and CDs, CD tables
//! outside its RAM, commands with reserved fields, RESUMEs of stalls it never had, PRI
//! responses to groups it never got, commands naming vSIDs it does not own or the other VM's
//! VMID, a command storm. The other guest runs the demo program meanwhile and passes every
//! check; the host and the hostile guest itself keep working; no panic, no hang.

#[path = "common/smmuv3.rs"]
mod smmu;

use smmu::{
    Bound, DEV, GIB, bind, cd_addr, cfgi_ste, cmd, guest, host, host_sid, inject_raw, nested,
    write_guest_ste,
};
use vsva_demo::regs::{DeviceError, Op};
use vsva_demo::{DemoDriver, DriverError, Machine, PLATFORM_STREAM, Progress};
use vsva_host::Smmuv3Kind;
use vsva_iommu::NestedS1;
use vsva_mem::{PhysMem, Rid};
use vsva_mm::{MapFlags, Prot};
use vsva_pcie::ResponseCode;
use vsva_smmuv3::spec::cmd::{Command, ResumeAction, TlbiRange};
use vsva_smmuv3::spec::ste::{Ste0, config};
use vsva_vmm::{GuestKind, Smmuv3Vm};

/// A deterministic stream of garbage (xorshift64).
struct Garbage(u64);

impl Garbage {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn expect_device_error(result: Result<u64, DriverError>, what: &str) {
    match result {
        Err(DriverError::Device(_)) => {}
        other => panic!("{what}: {other:?}"),
    }
}

fn fill(vm: &Smmuv3Vm, b: &Bound, va: u64, pattern: u64) -> Result<u64, DriverError> {
    b.drv.run(vm, &b.ctx, &cmd(Op::Fill, 0, va, 4096, pattern))
}

fn misbehave(bad: &Smmuv3Vm) {
    let b = bind(bad);
    let ssid = b.ctx.pasid().raw();
    let buf = b
        .process
        .mmap(None, 4 * 4096, Prot::RW, MapFlags::empty())
        .unwrap();
    let good_ste = bad.unit().guest_ste(u32::from(DEV.raw())).unwrap().words;
    let good_ste = [good_ste[0], good_ste[1]];
    let mut g = Garbage(0x9e37_79b9_7f4a_7c15);

    // 1. Garbage STEs, each with its CMD_CFGI_STE: whatever the guest's unit makes of them
    //    (C_BAD_STE: abort; or a vSTE the host takes or refuses), the device has exactly one
    //    nested HWPT at any time and never a translation the guest did not ask for.
    for i in 0..64 {
        let w = [g.next(), g.next()];
        // every other one valid with stage 1, so that it reaches the host
        let w0 = if i % 2 == 0 {
            Ste0::from_bits(w[0])
                .with_v(true)
                .with_config(config::S1_TRANS)
                .into_bits()
        } else {
            w[0]
        };
        write_guest_ste(bad, DEV, [w0, w[1]]);
        assert_eq!(nested(bad).len(), 1, "one nested HWPT per device");
    }
    // CMD_CFGI_ALL too.
    bad.os()
        .driver
        .issue_commands(&[Command::CfgiSteRange { sid: 0, range: 31 }])
        .unwrap();

    // 2. A CD table outside guest RAM (GPA 256 GiB) and one at the top of the IPA space: the
    //    host takes the pointer (a GPA), its stage 2 faults the fetch, the DMA fails.
    for far in [256 * GIB, (1 << 48) - 0x1000] {
        let w0 = Ste0::from_bits(good_ste[0])
            .with_s1contextptr(far >> 6)
            .into_bits();
        write_guest_ste(bad, DEV, [w0, good_ste[1]]);
        let NestedS1::StreamEntry { ste, .. } = nested(bad)[0].1 else {
            panic!()
        };
        assert_eq!(Ste0::from_bits(ste[0]).s1contextptr() << 6, far);
        expect_device_error(fill(bad, &b, buf.raw(), 1), "CD table outside RAM");
    }
    write_guest_ste(bad, DEV, good_ste);
    fill(bad, &b, buf.raw(), 2).unwrap();

    // 3. Garbage CDs for its SSID, each invalidated with CMD_CFGI_CD (relayed): the DMA
    //    fails or lands in its own RAM; the good CD back, it works again.
    let ram = bad.vmm().ram();
    let at = cd_addr(bad, DEV, ssid).unwrap();
    let saved: Vec<u64> = (0..8).map(|i| ram.load_u64(at + 8 * i).unwrap()).collect();
    for _ in 0..32 {
        for i in 0..8 {
            ram.store_u64(at + 8 * i, g.next()).unwrap();
        }
        bad.os()
            .driver
            .issue_commands(&[Command::CfgiCd {
                sid: u32::from(DEV.raw()),
                ssid,
                leaf: true,
            }])
            .unwrap();
        let _ = fill(bad, &b, buf.raw(), 3);
    }
    for (i, w) in saved.iter().enumerate() {
        ram.store_u64(at + 8 * i as u64, *w).unwrap();
    }
    bad.os()
        .driver
        .issue_commands(&[Command::CfgiCdAll {
            sid: u32::from(DEV.raw()),
        }])
        .unwrap();
    fill(bad, &b, buf.raw(), 4).unwrap();

    // 4. Commands with reserved fields or unknown opcodes, written straight onto its
    //    command queue: its unit stops at each with CERROR_ILL (§7.1, §4.1.2) and nothing
    //    reaches the host.
    let relayed = bad.vmm().counters().invalidations_propagated;
    let atc = b.drv.device().stats().atc_invalidations;
    let reserved = |c: Command, dword: usize, bits: u64| {
        let mut raw = c.encode();
        raw[dword] |= bits;
        raw
    };
    let sid = u32::from(DEV.raw());
    let bad_cmds = [
        [0x7f, 0],
        [0xff, u64::MAX],
        reserved(Command::TlbiNhAsid { vmid: 0, asid: 1 }, 1, 1),
        reserved(Command::CfgiSte { sid, leaf: true }, 1, 1 << 40),
        reserved(
            Command::AtcInv {
                sid,
                ssid: Some(ssid),
                global: false,
                size: 0,
                addr: 0,
            },
            1,
            1 << 6,
        ),
        reserved(
            Command::CfgiCd {
                sid,
                ssid,
                leaf: true,
            },
            1,
            1 << 30,
        ),
    ];
    let out = inject_raw(bad, &bad_cmds);
    assert_eq!(out.illegal, bad_cmds.len() as u32, "{out:?}");
    assert_eq!(bad.vmm().counters().invalidations_propagated, relayed);
    assert_eq!(b.drv.device().stats().atc_invalidations, atc);

    // 5. CMD_RESUME and CMD_STALL_TERM of stalls it never had (on a stream it has no
    //    platform device at, and on its PCIe device), and PRI responses to groups it never
    //    got: all dropped and counted.
    let dropped = bad.vmm().counters().responses_dropped;
    let mut n = 0;
    for stag in [0u16, 1, 7, 0xffff] {
        for sid in [u32::from(PLATFORM_STREAM), sid] {
            bad.os()
                .driver
                .issue_commands(&[Command::Resume {
                    sid,
                    stag,
                    action: ResumeAction::Retry,
                }])
                .unwrap();
            n += 1;
        }
    }
    bad.os()
        .driver
        .issue_commands(&[Command::StallTerm {
            sid: u32::from(PLATFORM_STREAM),
        }])
        .unwrap();
    for prgi in [0u16, 1, 0x100, 0x1ff] {
        bad.os()
            .driver
            .respond(DEV, Some(b.ctx.pasid()), prgi, ResponseCode::Success)
            .unwrap();
        n += 1;
    }
    assert_eq!(bad.vmm().counters().responses_dropped, dropped + n);

    // 6. Commands naming vSIDs it has no device at: the host refuses them (EIO), its queue
    //    stops (CERROR_ILL, CERROR_ATC_INV_SYNC for ATC_INV) and the driver moves on.
    for c in [
        Command::CfgiCd {
            sid: 0x20,
            ssid: 1,
            leaf: true,
        },
        Command::CfgiCdAll {
            sid: u32::from(PLATFORM_STREAM),
        },
        Command::AtcInv {
            sid: 0x20,
            ssid: None,
            global: true,
            size: 52,
            addr: 0,
        },
    ] {
        assert!(bad.os().driver.issue_commands(&[c]).is_err(), "{c:?}");
    }
    // CFGI_STE of a StreamID it has no device at: nothing to do on the host.
    cfgi_ste(bad, Rid::from_raw(0x20));
    assert_eq!(nested(bad).len(), 1);

    // 7. A storm: 3000 TLBIs by VA, each relayed before its CMD_SYNC completes.
    let before = bad.vmm().counters().invalidations_propagated;
    let storm: Vec<Command> = (0..3000u64)
        .map(|i| Command::TlbiNhVa {
            vmid: 0,
            asid: (i % 7) as u16,
            range: TlbiRange {
                addr: (i % 512) << 12,
                leaf: true,
                ttl: 0,
                tg: 0,
                num: 0,
                scale: 0,
            },
        })
        .collect();
    bad.os().driver.issue_commands(&storm).unwrap();
    assert_eq!(bad.vmm().counters().invalidations_propagated, before + 3000);

    eprintln!("hostile guest: {:?}", bad.vmm().counters());
    // The hostile guest itself still works for honest requests.
    fill(bad, &b, buf.raw() + 4096, 0x42).unwrap();
    let mut got = [0u8; 4];
    b.process
        .read_bytes(vsva_mem::Va::new(buf.raw() + 4096), &mut got)
        .unwrap();
    assert_eq!(got, [0x42; 4]);
}

#[test]
fn a_guest_programming_garbage_reaches_nothing_and_stops_nobody() {
    let host = host();
    let good = guest(&host, 1);
    let bad = guest(&host, 2);
    std::thread::scope(|s| {
        let good_run = s.spawn(|| vsva_demo::run_program(&good).unwrap());
        s.spawn(|| misbehave(&bad)).join().unwrap();
        let report = good_run.join().unwrap();
        for c in &report.checks {
            assert!(c.passed, "{}: {}", c.name, c.detail);
        }
    });
    // The good guest's stall path too, after the storm.
    let vsva_demo::PlatformRun::Ran(report) = vsva_demo::run_platform(&good).unwrap() else {
        panic!("the guest's SMMU stalls");
    };
    assert!(report.checks.iter().all(|c| c.passed));
    // The host keeps working for its own SVA.
    let host_report = vsva_demo::run_program(host.as_ref()).unwrap();
    assert!(host_report.checks.iter().all(|c| c.passed));
}

#[test]
fn a_guest_cannot_answer_or_invalidate_for_another() {
    let host = host();
    let good = guest(&host, 1);
    let bad = guest(&host, 2);
    let gb = bind(&good);
    let bb = bind(&bad);
    let pump = |vm: &Smmuv3Vm| <Smmuv3Kind as GuestKind>::pump(vm.vmm());

    // The good guest: a PCIe page request and a platform stall delivered to it, unanswered.
    let buf = gb
        .process
        .mmap(None, 4 * 4096, Prot::RW, MapFlags::empty())
        .unwrap();
    fill(&good, &gb, buf.raw() + 3 * 4096, 1).unwrap();
    gb.drv
        .submit(&gb.ctx, &cmd(Op::Fill, 0, buf.raw(), 4096, 6));
    assert_eq!(gb.drv.device().run(), Progress::Waiting);
    let pdev = good
        .add_platform_device(Rid::from_raw(PLATFORM_STREAM), 20)
        .unwrap();
    let pdrv = DemoDriver::probe_platform(&good, pdev, 20, 32).unwrap();
    let pproc = good.mm().spawn().unwrap();
    let pctx = pdrv.open(&good, &pproc).unwrap();
    let pbuf = pproc.mmap(None, 4096, Prot::RW, MapFlags::empty()).unwrap();
    pdrv.submit(&pctx, &cmd(Op::Fill, 0, pbuf.raw(), 4096, 7));
    assert_eq!(pdrv.device().run(), Progress::Waiting);
    host.service();
    assert_eq!(pump(&good), 2);
    let reqs = good.os().driver.take_requests();
    assert_eq!(reqs.len(), 2);
    let stall = *reqs
        .iter()
        .find(|r| r.rid.raw() == PLATFORM_STREAM)
        .unwrap();
    let pri = *reqs.iter().find(|r| r.rid == DEV).unwrap();
    assert_eq!(host.unit.stats().stalled, 1);

    // The bad guest names exactly those: the STAG and the PRG index, on the same vSIDs.
    let good_counters = good.vmm().counters();
    let dropped = bad.vmm().counters().responses_dropped;
    for sid in [u32::from(PLATFORM_STREAM), u32::from(DEV.raw())] {
        bad.os()
            .driver
            .issue_commands(&[Command::Resume {
                sid,
                stag: stall.prgi,
                action: ResumeAction::Retry,
            }])
            .unwrap();
    }
    bad.os()
        .driver
        .issue_commands(&[Command::StallTerm {
            sid: u32::from(PLATFORM_STREAM),
        }])
        .unwrap();
    bad.os()
        .driver
        .respond(DEV, pri.pasid, pri.prgi, ResponseCode::InvalidRequest)
        .unwrap();
    assert_eq!(bad.vmm().counters().responses_dropped, dropped + 3);
    assert_eq!(good.vmm().counters(), good_counters);
    assert_eq!(
        host.unit.stats().stalled,
        1,
        "the good guest's stall stands"
    );
    assert_eq!(pdrv.device().run(), Progress::Waiting);
    assert_eq!(gb.drv.device().run(), Progress::Waiting);

    // TLBIs naming the good VM's VMID: the host forces the bad VM's own (Linux
    // `arm_vsmmu_convert_user_cmd()`), so the good VM's TLB entries stay.
    let hs = host_sid(&good, DEV);
    let vmid = host.unit.guest_ste(hs).unwrap().w2().s2vmid();
    assert_ne!(
        vmid,
        host.unit
            .guest_ste(host_sid(&bad, DEV))
            .unwrap()
            .w2()
            .s2vmid()
    );
    let asid = good.os().driver.asid_of(DEV, gb.ctx.pasid().raw()).unwrap();
    let entries = host.unit.tlb_entries();
    assert!(entries > 0);
    let r = bad.os().driver.issue_commands(&[
        Command::TlbiNhAll { vmid },
        Command::TlbiNhAsid { vmid, asid },
        Command::TlbiNsnhAll,
    ]);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(
        host.unit.tlb_entries(),
        entries,
        "no entry of the good VM dropped"
    );

    // A fault of the bad guest's device goes to the bad guest's event queue only (each
    // vIOMMU's vEVENTQ has its own devices' events).
    let (good_reported, good_events) = (
        good.vmm().counters().faults_reported,
        good.unit().stats().events,
    );
    let bad_reported = bad.vmm().counters().faults_reported;
    assert!(
        bb.drv
            .device()
            .dma_untranslated(Some(bb.ctx.pasid()), 0x6000_0000, true)
            .is_err()
    );
    host.service();
    assert_eq!(pump(&bad), 1);
    pump(&good);
    assert_eq!(bad.vmm().counters().faults_reported, bad_reported + 1);
    assert_eq!(good.vmm().counters().faults_reported, good_reported);
    assert_eq!(good.unit().stats().events, good_events);

    // The good guest answers both: they complete.
    gb.process.write_bytes(buf, &[0]).unwrap();
    pproc.write_bytes(pbuf, &[0]).unwrap();
    for r in [pri, stall] {
        good.os()
            .driver
            .respond(r.rid, r.pasid, r.prgi, ResponseCode::Success)
            .unwrap();
    }
    gb.drv.wait(&good).unwrap();
    pdrv.wait(&good).unwrap();
    assert_eq!(host.unit.stats().stalled, 0);
    let _ = DeviceError::PageRequestInvalid;
}
