//! Flow 1 for a virtual SMMUv3, bind, observed where it lands: the VMM's nested HWPTs (the
//! vSTE the host driver accepted, Linux `arm_vsmmu_alloc_domain_nested()`), and the host
//! SMMU's own STE of the device (Linux `arm_smmu_make_nested_domain_ste()`: Config nested,
//! the guest's stage-1 fields over the VM's stage 2), after the guest's CMD_CFGI_STE (IHI
//! 0070 §4.3.1) or its SMMUEN / GBPA writes (§6.3.9, §6.3.14).

#[path = "common/smmuv3.rs"]
mod smmu;

use smmu::{DEV, bind, cfgi_ste, cmd, guest, host, host_sid, nested, write_guest_ste};
use vsva_demo::regs::Op;
use vsva_demo::{DriverError, Machine, Progress};
use vsva_iommu::NestedS1;
use vsva_mem::PhysMem;
use vsva_mm::{MapFlags, Prot};
use vsva_smmuv3::StreamConfig;
use vsva_smmuv3::spec::registers::{Cr0, Gbpa, offset};
use vsva_smmuv3::spec::ste::{Ste0, Ste1, config, eats};

#[test]
fn a_guest_ste_with_stage1_becomes_one_nested_hwpt_carrying_its_cd_table() {
    let host = host();
    let vm = guest(&host, 1);
    let b = bind(&vm);
    // The guest's STE as its driver wrote it (Linux `arm_smmu_make_cdtable_ste()`): stage 1,
    // its CD table, requests without SubstreamID bypass (S1DSS = 0b01, identity on SSID 0),
    // ATS on.
    let g = vm.unit().guest_ste(u32::from(DEV.raw())).unwrap();
    let (g0, g1) = (g.w0(), g.w1());
    let (cd_base, s1fmt, s1cdmax) = vm.os().driver.master_tables(DEV).unwrap();
    assert_eq!(g0.config(), config::S1_TRANS);
    assert_eq!(
        (g0.s1contextptr() << 6, g0.s1fmt(), g0.s1cdmax()),
        (cd_base, s1fmt, s1cdmax)
    );
    assert!(cd_base < 2 * smmu::GIB, "a GPA in guest RAM");
    assert_eq!((g1.s1dss(), g1.eats()), (0b01, eats::TRANS));

    // Exactly one nested HWPT, on the device's host StreamID, carrying the guest's words
    // less EATS (kept apart as `ats`, Linux `arm_smmu_validate_vste()`).
    let hs = host_sid(&vm, DEV);
    let hwpts = nested(&vm);
    assert_eq!(hwpts.len(), 1, "{hwpts:?}");
    let (_, s1, attached) = &hwpts[0];
    assert_eq!(
        attached
            .iter()
            .map(|r| u32::from(r.raw()))
            .collect::<Vec<_>>(),
        [hs]
    );
    let NestedS1::StreamEntry {
        ste,
        ats,
        translates,
    } = *s1
    else {
        panic!("an SMMUv3 nested HWPT carries a stream entry: {s1:?}");
    };
    let v0 = Ste0::from_bits(ste[0]);
    assert_eq!(
        (
            v0.v(),
            v0.config(),
            v0.s1contextptr(),
            v0.s1fmt(),
            v0.s1cdmax()
        ),
        (
            true,
            config::S1_TRANS,
            g0.s1contextptr(),
            g0.s1fmt(),
            g0.s1cdmax()
        )
    );
    assert_eq!(Ste1::from_bits(ste[1]).eats(), 0, "EATS kept apart");
    assert_eq!(Ste1::from_bits(ste[1]).s1dss(), g1.s1dss());
    assert!(ats && translates);
    assert_eq!(vm.vmm().counters().nested_binds, 1);
    assert_eq!(vm.vmm().counters().bind_errors, 0);

    // The host SMMU's STE: Config nested (0b111), the guest's CD table pointer as a GPA (the
    // host walks it through stage 2), MEV set; and a transaction with the guest's SSID gets
    // the guest process's table (a GPA) as stage 1 and the VM's stage 2.
    let h = host.unit.guest_ste(hs).unwrap();
    assert_eq!(h.w0().config(), config::NESTED);
    assert_eq!(h.w0().s1contextptr(), g0.s1contextptr());
    assert_eq!((h.w0().s1fmt(), h.w0().s1cdmax()), (s1fmt, s1cdmax));
    assert!(h.w1().mev());
    assert_eq!(h.w1().eats(), eats::TRANS);
    let ssid = b.ctx.pasid().raw();
    let StreamConfig::Translate(t) = host.unit.stream_config(hs, Some(ssid)).unwrap() else {
        panic!("the host translates the guest's SSID");
    };
    let s1 = t.stage1.expect("stage 1 from the guest's CD");
    assert_eq!(s1.ttb0.unwrap().ttb, b.process.page_table_root().unwrap());
    assert!(t.stage2.is_some(), "under the VM's stage 2");
    assert_eq!(t.ssid, Some(ssid));
    // Without SubstreamID: S1DSS bypass, so stage 2 alone (the guest's identity domain).
    let StreamConfig::Translate(t0) = host.unit.stream_config(hs, None).unwrap() else {
        panic!("requests without SSID translate through stage 2");
    };
    assert!(t0.stage1.is_none() && t0.stage2.is_some());
}

#[test]
fn a_changed_ste_takes_effect_on_the_host_only_with_cfgi_ste_and_replaces_the_hwpt() {
    let host = host();
    let vm = guest(&host, 1);
    let b = bind(&vm);
    let hs = host_sid(&vm, DEV);
    let (old_id, _, _) = nested(&vm)[0];
    let binds = vm.vmm().counters().nested_binds;

    // The same STE again: CMD_CFGI_STE changes nothing on the host.
    cfgi_ste(&vm, DEV);
    assert_eq!(nested(&vm)[0].0, old_id);
    assert_eq!(vm.vmm().counters().nested_binds, binds);

    // A guest kernel narrows S1CDMax from its driver's value to 1 (2 CDs: SSIDs 0 and 1)
    // behind its driver's back. Before CMD_CFGI_STE the host knows nothing of it.
    let g = vm.unit().guest_ste(u32::from(DEV.raw())).unwrap();
    let narrowed = [g.words[0] & !(0x1f << 59) | 1 << 59, g.words[1]];
    let ram = vm.vmm().ram();
    let at = smmu::ste_addr(vm.unit(), ram.as_ref(), u32::from(DEV.raw())).unwrap();
    ram.store_u64(at, narrowed[0]).unwrap();
    assert_eq!(nested(&vm)[0].0, old_id, "no CFGI, no change");
    assert_ne!(host.unit.guest_ste(hs).unwrap().w0().s1cdmax(), 1);

    // With it: a new nested HWPT replaces the old one (destroyed), the host STE has the new
    // S1CDMax.
    cfgi_ste(&vm, DEV);
    let hwpts = nested(&vm);
    assert_eq!(hwpts.len(), 1, "{hwpts:?}");
    assert_ne!(hwpts[0].0, old_id, "replaced");
    assert!(
        vm.vmm()
            .iommufd()
            .get::<vsva_iommufd::HwptNested>(old_id)
            .is_err(),
        "the old HWPT is destroyed"
    );
    assert_eq!(host.unit.guest_ste(hs).unwrap().w0().s1cdmax(), 1);
    assert_eq!(vm.vmm().counters().nested_binds, binds + 1);

    // The device still works under SSID 1 (within S1CDMax 1)...
    assert_eq!(b.ctx.pasid().raw(), 1);
    let buf = b
        .process
        .mmap(None, 4096, Prot::RW, MapFlags::empty())
        .unwrap();
    b.drv
        .run(&vm, &b.ctx, &cmd(Op::Fill, 0, buf.raw(), 4096, 7))
        .unwrap();
    // ... and its driver's own STE, put back, binds again.
    write_guest_ste(&vm, DEV, [g.words[0], g.words[1]]);
    assert_eq!(
        host.unit.guest_ste(hs).unwrap().w0().s1cdmax(),
        g.w0().s1cdmax()
    );
    assert_eq!(nested(&vm).len(), 1);
}

#[test]
fn an_invalid_or_illegal_ste_aborts_the_device_on_the_host() {
    let host = host();
    let vm = guest(&host, 1);
    let b = bind(&vm);
    let hs = host_sid(&vm, DEV);
    let ssid = b.ctx.pasid().raw();
    let buf = b
        .process
        .mmap(None, 4096, Prot::RW, MapFlags::empty())
        .unwrap();
    let w = vm.unit().guest_ste(u32::from(DEV.raw())).unwrap().words;
    let good = [w[0], w[1]];
    let errors = vm.vmm().counters().bind_errors;

    let aborts = |what: &str| {
        // The host's STE aborts (Config abort, §5.2): no translation for any SSID.
        assert_eq!(
            host.unit.stream_config(hs, Some(ssid)),
            Ok(StreamConfig::Abort),
            "{what}"
        );
        assert_eq!(nested(&vm).len(), 1, "{what}: still one nested HWPT");
        match b
            .drv
            .run(&vm, &b.ctx, &cmd(Op::Fill, 0, buf.raw(), 4096, 1))
        {
            Err(DriverError::Device(_)) => {}
            other => panic!("{what}: DMA gave {other:?}"),
        }
    };

    // V = 0 (§5.2: an invalid STE is C_BAD_STE to the guest): an invalid vSTE, which the
    // host turns into an abort.
    write_guest_ste(&vm, DEV, [good[0] & !1, good[1]]);
    let NestedS1::StreamEntry {
        ste, translates, ..
    } = nested(&vm)[0].1
    else {
        panic!()
    };
    assert_eq!((ste, translates), ([0, 0], false));
    aborts("V = 0");

    // Config stage 2 on a unit without stage 2 (IDR0.S2P = 0): ILLEGAL to the guest's unit
    // (C_BAD_STE), so the same abort.
    let s2 = Ste0::from_bits(good[0])
        .with_config(config::S2_TRANS)
        .into_bits();
    write_guest_ste(&vm, DEV, [s2, good[1]]);
    aborts("Config S2 on a stage-1-only unit");

    // Config abort, asked for, and the reserved 0b001..0b011, which behave as abort
    // (§5.2 STE.Config): the host gets an abort, not a Config it refuses (Linux
    // `arm_smmu_validate_vste()`: EIO) while the old configuration stays.
    for cfg in [config::ABORT, 0b001, 0b010, 0b011] {
        write_guest_ste(&vm, DEV, good);
        assert!(matches!(
            host.unit.stream_config(hs, Some(ssid)),
            Ok(StreamConfig::Translate(_))
        ));
        let abort = Ste0::from_bits(good[0]).with_config(cfg).into_bits();
        write_guest_ste(&vm, DEV, [abort, good[1]]);
        aborts(&format!("Config {cfg:#05b}"));
    }
    assert_eq!(
        vm.vmm().counters().bind_errors,
        errors,
        "none of these is a host refusal"
    );

    // EATS 0b11 (reserved; without DPT it behaves as 0b00, no ATS): the host binds the CD
    // table without ATS rather than refusing the STE.
    let dpt = Ste1::from_bits(good[1]).with_eats(0b11).into_bits();
    write_guest_ste(&vm, DEV, [good[0], dpt]);
    let NestedS1::StreamEntry {
        ste,
        ats,
        translates,
    } = nested(&vm)[0].1
    else {
        panic!()
    };
    assert!(translates && !ats);
    assert_eq!(
        Ste0::from_bits(ste[0]).s1contextptr(),
        Ste0::from_bits(good[0]).s1contextptr()
    );
    assert_eq!(host.unit.guest_ste(hs).unwrap().w1().eats(), eats::ABORT);
    assert_eq!(vm.vmm().counters().bind_errors, errors);

    // Its driver's STE again: translation is back.
    write_guest_ste(&vm, DEV, good);
    b.drv
        .run(&vm, &b.ctx, &cmd(Op::Fill, 0, buf.raw(), 4096, 2))
        .unwrap();
    assert!(matches!(
        host.unit.stream_config(hs, Some(ssid)),
        Ok(StreamConfig::Translate(_))
    ));
}

#[test]
fn smmuen_clear_makes_gbpa_abort_or_bypass_take_effect_on_the_host() {
    let host = host();
    let vm = guest(&host, 1);
    let b = bind(&vm);
    let hs = host_sid(&vm, DEV);
    let unit = vm.unit();
    let cr0 = unit.mmio_read(offset::CR0, 4) as u32;
    assert!(Cr0::from_bits_retain(cr0).contains(Cr0::SMMUEN));
    let gbpa = Gbpa::from_bits(unit.mmio_read(offset::GBPA, 4) as u32);
    assert!(gbpa.abort(), "Linux leaves GBPA.ABORT set (disable_bypass)");

    // SMMUEN = 0 with GBPA.ABORT: every transaction of the device aborts on the host.
    unit.mmio_write(offset::CR0, 4, u64::from(cr0 & !Cr0::SMMUEN.bits()));
    assert!(!vm.unit().guest_global().smmuen);
    assert_eq!(
        host.unit.guest_ste(hs).unwrap().w0().config(),
        config::ABORT
    );
    assert_eq!(
        host.unit.stream_config(hs, Some(b.ctx.pasid().raw())),
        Ok(StreamConfig::Abort)
    );
    assert_eq!(vm.vmm().counters().bind_errors, 0);

    // GBPA.ABORT = 0 (written with Update, §6.3.14): bypass — on the host the VM's stage 2
    // alone, so a GPA reaches guest RAM and nothing beyond it.
    let bypass = gbpa.with_abort(false).with_update(true).into_bits();
    unit.mmio_write(offset::GBPA, 4, u64::from(bypass));
    assert!(!Gbpa::from_bits(unit.mmio_read(offset::GBPA, 4) as u32).update());
    assert_eq!(
        host.unit.guest_ste(hs).unwrap().w0().config(),
        config::S2_TRANS
    );
    let StreamConfig::Translate(t) = host.unit.stream_config(hs, None).unwrap() else {
        panic!("bypass is the stage 2");
    };
    assert!(t.stage1.is_none() && t.stage2.is_some());
    let dev = b.drv.device();
    assert!(
        dev.dma_untranslated(None, 0x1000_0000, false).is_ok(),
        "GPA in RAM"
    );
    assert!(
        dev.dma_untranslated(None, 64 * smmu::GIB, false).is_err(),
        "beyond guest RAM"
    );

    // GBPA.ABORT again, then SMMUEN = 1: the guest's STE is back on the host.
    let abort = gbpa.with_abort(true).with_update(true).into_bits();
    unit.mmio_write(offset::GBPA, 4, u64::from(abort));
    assert_eq!(
        host.unit.guest_ste(hs).unwrap().w0().config(),
        config::ABORT
    );
    unit.mmio_write(offset::CR0, 4, u64::from(cr0));
    assert!(vm.unit().guest_global().smmuen);
    assert_eq!(
        host.unit.guest_ste(hs).unwrap().w0().config(),
        config::NESTED
    );
    let buf = b
        .process
        .mmap(None, 4096, Prot::RW, MapFlags::empty())
        .unwrap();
    b.drv
        .run(&vm, &b.ctx, &cmd(Op::Fill, 0, buf.raw(), 4096, 3))
        .unwrap();
    assert_eq!(b.drv.device().run(), Progress::Idle);
}

#[test]
fn a_replaced_hwpt_answers_what_the_guest_owed_under_the_old_ste() {
    let host = host();
    let vm = guest(&host, 1);
    let b = bind(&vm);
    let buf = b
        .process
        .mmap(None, 4096, Prot::RW, MapFlags::empty())
        .unwrap();
    // A page request of SSID 1 delivered to the guest, unanswered.
    b.drv.submit(&b.ctx, &cmd(Op::Fill, 0, buf.raw(), 4096, 5));
    assert_eq!(b.drv.device().run(), Progress::Waiting);
    host.service();
    assert_eq!(
        <vsva_host::Smmuv3Kind as vsva_vmm::GuestKind>::pump(vm.vmm()),
        1
    );
    let r = vm.os().driver.take_requests();
    assert_eq!(r.len(), 1);
    // The guest replaces the STE (a new nested HWPT): the group came through the old one,
    // which iommufd answers INVALID at the replace (`iommufd_auto_response_faults()`); the
    // device does not wait for ever.
    let g = vm.unit().guest_ste(u32::from(DEV.raw())).unwrap();
    write_guest_ste(&vm, DEV, [g.words[0] & !(0x1f << 59) | 1 << 59, g.words[1]]);
    assert_eq!(
        b.drv.device().run(),
        Progress::Failed(vsva_demo::regs::DeviceError::PageRequestInvalid)
    );
    // The guest's late answer is one to nothing.
    let dropped = vm.vmm().counters().responses_dropped;
    vm.os()
        .driver
        .respond(
            r[0].rid,
            r[0].pasid,
            r[0].prgi,
            vsva_pcie::ResponseCode::Success,
        )
        .unwrap();
    assert_eq!(vm.vmm().counters().responses_dropped, dropped + 1);
}

#[test]
fn smmuen_clear_ends_the_stalls_the_guest_can_no_longer_resume() {
    let host = host();
    let vm = guest(&host, 1);
    let dev = vm
        .add_platform_device(vsva_mem::Rid::from_raw(vsva_demo::PLATFORM_STREAM), 20)
        .unwrap();
    let drv = vsva_demo::DemoDriver::probe_platform(&vm, dev, 20, 32).unwrap();
    let process = vm.mm().spawn().unwrap();
    let ctx = drv.open(&vm, &process).unwrap();
    let buf = process
        .mmap(None, 4096, Prot::RW, MapFlags::empty())
        .unwrap();
    drv.submit(&ctx, &cmd(Op::Fill, 0, buf.raw(), 4096, 1));
    assert_eq!(drv.device().run(), Progress::Waiting);
    host.service();
    assert_eq!(
        <vsva_host::Smmuv3Kind as vsva_vmm::GuestKind>::pump(vm.vmm()),
        1
    );
    assert_eq!(host.unit.stats().stalled, 1);
    // SMMUEN = 0 (§6.3.9.1: the SMMU's stalled transactions are terminated when it is
    // disabled): the guest cannot resume its stall any more, so the host's is ended too,
    // and the device is aborted as GBPA says.
    let cr0 = vm.unit().mmio_read(offset::CR0, 4) as u32;
    vm.unit()
        .mmio_write(offset::CR0, 4, u64::from(cr0 & !Cr0::SMMUEN.bits()));
    assert_eq!(host.unit.stats().stalled, 0);
    assert!(matches!(drv.device().run(), Progress::Failed(_)));
}
