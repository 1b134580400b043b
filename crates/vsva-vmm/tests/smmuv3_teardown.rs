//! Teardown with a virtual SMMUv3: a guest reboot (the guest's SMMU reset) detaches and
//! destroys every nested HWPT, answers what the guest still owed (PRI groups INVALID, stalls
//! terminated) and drops what the host had queued for the old guest; VMM exit destroys every
//! vDEVICE, the vEVENTQ, the vIOMMU and the stage 2 and gives the host back every page and
//! pin (what tests/teardown.rs checks for VT-d).

#[path = "common/smmuv3.rs"]
mod smmu;

use smmu::{Bound, DEV, GIB, SmmuHost, bind, bind_at, cmd, count, guest, host, host_sid, nested};
use vsva_demo::regs::{DeviceError, Op};
use vsva_demo::{DemoDriver, Machine, PLATFORM_STREAM, Progress};
use vsva_host::Smmuv3Kind;
use vsva_iommu::NestedS1;
use vsva_iommufd::ObjectType;
use vsva_mem::Rid;
use vsva_mm::{MapFlags, Prot};
use vsva_smmuv3::spec::ste::config;
use vsva_vmm::GuestKind;

/// Submits a fill of a fresh page and runs the device until it waits for that page; the
/// host's PRI queue handler puts the request on the VMM's fault queue.
fn leave_waiting(host: &SmmuHost, b: &Bound) {
    let buf = b
        .process
        .mmap(None, 4096, Prot::RW, MapFlags::empty())
        .unwrap();
    b.drv.submit(&b.ctx, &cmd(Op::Fill, 0, buf.raw(), 4096, 3));
    assert_eq!(b.drv.device().run(), Progress::Waiting);
    assert!(host.service() > 0, "the page request reached the host");
}

/// Whether a nested HWPT of the VMM still translates (a guest CD table bound).
fn translating(vm: &vsva_vmm::Smmuv3Vm) -> usize {
    nested(vm)
        .iter()
        .filter(|(_, s1, _)| {
            matches!(
                s1,
                NestedS1::StreamEntry {
                    translates: true,
                    ..
                }
            )
        })
        .count()
}

#[test]
fn reboot_releases_every_nested_hwpt_and_answers_what_the_guest_owed() {
    let host = host();
    let mut vm = guest(&host, 1);
    let b = bind(&vm);
    let hs = host_sid(&vm, DEV);
    // A platform device stalled on a page, its stall delivered to the guest and unanswered.
    let pdev = vm
        .add_platform_device(Rid::from_raw(PLATFORM_STREAM), 20)
        .unwrap();
    let pdrv = DemoDriver::probe_platform(&vm, pdev, 20, 32).unwrap();
    let pproc = vm.mm().spawn().unwrap();
    let pctx = pdrv.open(&vm, &pproc).unwrap();
    let pbuf = pproc.mmap(None, 4096, Prot::RW, MapFlags::empty()).unwrap();
    pdrv.submit(&pctx, &cmd(Op::Fill, 0, pbuf.raw(), 4096, 1));
    assert_eq!(pdrv.device().run(), Progress::Waiting);
    // A PRI group delivered to the guest and unanswered.
    leave_waiting(&host, &b);
    assert_eq!(
        <Smmuv3Kind as GuestKind>::pump(vm.vmm()),
        2,
        "stall and PRI group"
    );
    assert_eq!(vm.os().driver.take_requests().len(), 2);
    assert_eq!(host.unit.stats().stalled, 1);
    assert_eq!(translating(&vm), 2, "both devices' CD tables bound");
    let (viommu, vdev) = (
        count(&vm, ObjectType::Viommu),
        count(&vm, ObjectType::Vdevice),
    );
    assert_eq!((viommu, vdev), (1, 2));

    vm.reboot().unwrap();
    // No nested HWPT translates any more (the new guest has not configured its devices:
    // their STEs are invalid, the host aborts them); the host STE is not nested.
    assert_eq!(translating(&vm), 0, "{:?}", nested(&vm));
    assert_ne!(
        host.unit.guest_ste(hs).unwrap().w0().config(),
        config::NESTED
    );
    // The vIOMMU and vDEVICEs stay: the devices are still the VM's.
    assert_eq!(count(&vm, ObjectType::Viommu), 1);
    assert_eq!(count(&vm, ObjectType::Vdevice), 2);
    // iommufd answered the PRI group INVALID and terminated the stall as the HWPTs went.
    assert_eq!(
        b.drv.device().run(),
        Progress::Failed(DeviceError::PageRequestInvalid)
    );
    assert_eq!(host.unit.stats().stalled, 0);
    assert!(matches!(pdrv.device().run(), Progress::Failed(_)));
    // Answers the old guest's unit would have sent now are answers to nothing.
    let relayed = vm.vmm().counters().page_responses_relayed;
    drop((pdrv, b));

    // The rebooted guest does everything again.
    let report = vsva_demo::run_program(&vm).unwrap();
    for c in &report.checks {
        assert!(c.passed, "{}: {}", c.name, c.detail);
    }
    assert!(vm.vmm().counters().page_responses_relayed > relayed);
}

#[test]
fn events_queued_for_the_old_guest_do_not_reach_the_rebooted_one() {
    let host = host();
    let mut vm = guest(&host, 1);
    let b = bind(&vm);
    // A stage-1 fault the host reported to the vEVENTQ, not yet moved into the guest.
    assert!(
        b.drv
            .device()
            .dma_untranslated(Some(b.ctx.pasid()), 0x6000_0000, false)
            .is_err()
    );
    assert!(host.service() > 0);
    let reported = vm.vmm().counters().faults_reported;
    vm.reboot().unwrap();
    // The new guest's event queue gets nothing about a configuration it never made.
    let events = vm.unit().stats().events;
    vm.service();
    assert_eq!(vm.unit().stats().events, events);
    assert_eq!(vm.vmm().counters().faults_reported, reported);
}

#[test]
fn vmm_exit_destroys_every_object_and_gives_the_host_back_every_page_and_pin() {
    let host = host();
    let free_before = host.mm.frames().free_bytes();
    let vm = guest(&host, 1);
    assert!(
        free_before - host.mm.frames().free_bytes() >= 2 * GIB,
        "guest RAM comes from the host"
    );
    let report = vsva_demo::run_program(&vm).unwrap();
    assert!(report.checks.iter().all(|c| c.passed));
    // Leave a binding and a pending request behind on a hot-plugged device, and a stalled
    // platform device.
    let b = bind_at(&vm, 4);
    leave_waiting(&host, &b);
    let pdev = vm
        .add_platform_device(Rid::from_raw(PLATFORM_STREAM), 20)
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = pdev;
    let hs = host_sid(&vm, Rid::from_bdf(0, 4, 0).unwrap());
    assert_eq!(
        host.unit.guest_ste(hs).unwrap().w0().config(),
        config::NESTED
    );
    assert!(translating(&vm) >= 1);
    for kind in [ObjectType::Viommu, ObjectType::Veventq] {
        assert_eq!(count(&vm, kind), 1, "{kind:?}");
    }
    assert!(count(&vm, ObjectType::Vdevice) >= 2);
    let device = b.drv.device().clone();
    let vmm = vm.vmm().clone();
    drop(b);
    vm.shutdown().unwrap();
    assert_eq!(
        device.run(),
        Progress::Failed(DeviceError::PageRequestInvalid),
        "the pending request was answered"
    );
    // Nothing of the VM is left in its iommufd but the fault queue (freed with the file).
    let left: Vec<_> = vmm
        .iommufd()
        .objects()
        .into_iter()
        .filter(|(_, t)| *t != ObjectType::Fault)
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // The host's STE of the device no longer points at the guest's CD table.
    assert_ne!(
        host.unit.guest_ste(hs).map(|s| s.w0().config()),
        Ok(config::NESTED)
    );
    drop(vmm);
    assert_eq!(
        host.mm.frames().free_bytes(),
        free_before,
        "guest RAM, page tables and pins all returned"
    );
}
