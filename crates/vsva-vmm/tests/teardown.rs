//! Teardown: a guest reboot (vIOMMU reset) releases every nested HWPT and host PASID and
//! answers the page requests the guest still owed; VMM exit gives the host back every page
//! and pin.

mod common;

use common::{Bound, GIB, bind, bind_at, cmd, guest, host};
use vsva_demo::Progress;
use vsva_demo::regs::{DeviceError, Op};
use vsva_iommufd::ObjectType;
use vsva_mem::Pasid;
use vsva_mm::{MapFlags, Prot};

/// Submits a fill of a fresh page and runs the device until it waits for that page; the
/// host's page-request handler queues the request on the VMM's fault queue.
fn leave_waiting(host: &vsva_host::Platform, b: &Bound) {
    let buf = b
        .process
        .mmap(None, 4096, Prot::RW, MapFlags::empty())
        .unwrap();
    b.drv.submit(&b.ctx, &cmd(Op::Fill, 0, buf.raw(), 4096, 3));
    assert_eq!(b.drv.device().run(), Progress::Waiting);
    assert!(host.service() > 0, "the page request reached the host");
}

#[test]
fn reboot_releases_every_binding_and_answers_what_the_guest_owed() {
    let host = host();
    let mut vm = guest(&host, 1);
    let b = bind(&vm);
    let (rid, _, hp) = vm.vmm().bindings()[0];
    let host_rid = vm.vmm().host_rid(rid);
    // A command waits on a page request the guest has received but not answered.
    leave_waiting(&host, &b);
    assert_eq!(vm.vmm().pump_faults(), 1, "delivered to the guest");
    let nested = |vm: &vsva_vmm::VtdVm| {
        vm.vmm()
            .iommufd()
            .objects()
            .iter()
            .filter(|(_, t)| *t == ObjectType::HwptNested)
            .count()
    };
    assert_eq!(nested(&vm), 1);

    vm.reboot().unwrap();
    assert!(vm.vmm().bindings().is_empty());
    assert_eq!(nested(&vm), 0, "nested HWPTs destroyed");
    assert!(
        host.iommu
            .domain_id(host_rid, Pasid::new(hp).unwrap())
            .is_none()
    );
    // iommufd answered the pending group INVALID as the PASID was detached
    assert_eq!(
        b.drv.device().run(),
        Progress::Failed(DeviceError::PageRequestInvalid)
    );
    // The rebooted guest does everything again.
    let report = vsva_demo::run_program(&vm).unwrap();
    for c in &report.checks {
        assert!(c.passed, "{}: {}", c.name, c.detail);
    }
}

#[test]
fn vmm_exit_gives_the_host_back_every_page_and_pin() {
    let host = host();
    let free_before = host.mm.frames().free_bytes();
    let vm = guest(&host, 1);
    assert!(
        free_before - host.mm.frames().free_bytes() >= 2 * GIB,
        "guest RAM comes from the host"
    );
    let report = vsva_demo::run_program(&vm).unwrap();
    assert!(report.checks.iter().all(|c| c.passed));
    // leave a binding and a pending request behind, on a hot-plugged device
    let b = bind_at(&vm, 4);
    leave_waiting(&host, &b);
    let (rid, _, hp) = vm.vmm().bindings()[0];
    let host_rid = vm.vmm().host_rid(rid);
    let device = b.drv.device().clone();
    let vmm = vm.vmm().clone();
    drop(b);
    vm.shutdown().unwrap();
    assert_eq!(
        device.run(),
        Progress::Failed(DeviceError::PageRequestInvalid),
        "the pending request was answered"
    );
    assert!(
        host.iommu
            .domain_id(host_rid, Pasid::new(hp).unwrap())
            .is_none()
    );
    assert!(
        vmm.iommufd()
            .objects()
            .iter()
            .all(|(_, t)| *t == ObjectType::Fault)
    );
    drop(vmm);
    assert_eq!(
        host.mm.frames().free_bytes(),
        free_before,
        "guest RAM, page tables and pins all returned"
    );
}
