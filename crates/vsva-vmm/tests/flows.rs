//! The four vSVA flows one at a time, each observed where it lands: the host's PASID entry
//! (bind), the device's ATC (invalidate), the guest's page request queue and memory manager
//! (fault), the device's retry (respond).

mod common;

use common::{bind, cmd, guest, host};
use vsva_demo::DriverError;
use vsva_demo::regs::{self, DeviceError, Op};
use vsva_mem::{Pasid, Rid, Va};
use vsva_mm::{MapFlags, Prot};
use vsva_vmm::BLOCKED_HOST_PASID;
use vsva_vtd::spec::pasid::Pgtt;

#[test]
fn bind_puts_the_guest_page_table_under_a_host_pasid_as_a_nested_first_stage() {
    let host = host();
    let vm = guest(&host, 1);
    let b = bind(&vm);
    let guest_pasid = b.ctx.pasid().raw();
    let bindings = vm.vmm().bindings();
    assert_eq!(bindings.len(), 1, "{bindings:?}");
    let (rid, gp, hp) = bindings[0];
    assert_eq!((rid, gp), (Rid::from_bdf(0, 3, 0).unwrap(), guest_pasid));
    assert_ne!(hp, guest_pasid, "PASIDs are virtualized");
    assert_ne!(hp, BLOCKED_HOST_PASID);
    // The host unit's entry for (host RID, host PASID) is nested, its first stage the guest
    // process's CR3 (a GPA) — the guest's own page table, not a copy.
    let host_rid = vm.vmm().host_rid(rid);
    let entry = host
        .unit
        .guest_pasid_entry(host_rid, Some(Pasid::new(hp).unwrap()))
        .unwrap();
    assert_eq!(entry.pgtt, Pgtt::Nested);
    assert_eq!(entry.entry.fs_root(), b.process.page_table_root().unwrap());
    assert!(
        host.iommu
            .domain_id(host_rid, Pasid::new(hp).unwrap())
            .is_some(),
        "the host core has it attached"
    );
    assert_eq!(vm.vmm().counters().nested_binds, 1);
    // Unbind (close): the entry goes, on both sides.
    b.drv.close(&vm, b.ctx).unwrap();
    assert!(vm.vmm().bindings().is_empty());
    assert!(
        host.iommu
            .domain_id(host_rid, Pasid::new(hp).unwrap())
            .is_none()
    );
    assert_eq!(
        vm.vmm().host_pasid(guest_pasid),
        None,
        "host PASID released"
    );
}

#[test]
fn faults_reach_the_guest_and_its_answers_resume_the_device() {
    let host = host();
    let vm = guest(&host, 1);
    let b = bind(&vm);
    let before = vm.vmm().counters();
    let buf = b
        .process
        .mmap(None, 8 * 4096, Prot::RW, MapFlags::empty())
        .unwrap();
    b.drv
        .run(
            &vm,
            &b.ctx,
            &cmd(Op::WritePattern, 0, buf.raw(), 8 * 4096, 5),
        )
        .unwrap();
    let after = vm.vmm().counters();
    // one page request group per fresh page, each delivered to the guest and answered
    assert_eq!(after.faults_to_guest - before.faults_to_guest, 8);
    assert_eq!(
        after.page_responses_relayed - before.page_responses_relayed,
        8
    );
    assert_eq!(
        vm.os().iommu.stats().iopf.groups,
        8,
        "the guest's IOPF handled them"
    );
    // the guest's memory manager filled its page table: the guest CPU reads the device's data
    let mut got = vec![0u8; 8 * 4096];
    b.process.read_bytes(buf, &mut got).unwrap();
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, &x)| x == regs::pattern_byte(5, i as u64))
    );
    // a second run needs no page
    b.drv
        .run(
            &vm,
            &b.ctx,
            &cmd(Op::ReadChecksum, buf.raw(), 0, 8 * 4096, 0),
        )
        .unwrap();
    assert_eq!(vm.vmm().counters().faults_to_guest, after.faults_to_guest);
}

#[test]
fn a_guest_munmap_reaches_the_devices_atc_before_it_returns() {
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
    let dev_before = b.drv.device().stats().atc_invalidations;
    let vmm_before = vm.vmm().counters().invalidations_propagated;
    b.process.munmap(Va::new(buf.raw() + 4096), 4096).unwrap();
    // by the time munmap returned: the guest's PASID-IOTLB and device-TLB invalidations went
    // to the host as HWPT_INVALIDATE, and the device dropped its ATC entry
    assert!(vm.vmm().counters().invalidations_propagated > vmm_before);
    assert!(b.drv.device().stats().atc_invalidations > dev_before);
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
fn the_vioommu_advertises_no_more_than_the_host() {
    let host = host();
    let vm = guest(&host, 1);
    let g = vm.unit().config();
    let h = host.unit.config();
    assert!(g.pasid_bits <= h.pasid_bits && g.haw <= h.haw && g.mgaw <= h.mgaw);
    assert!(!g.second_stage && !g.nested, "first stage only");
    assert!(g.first_stage && g.page_requests && g.device_tlb && g.caching_mode);
    assert_eq!((g.fs_1g, g.fs_5level), (h.fs_1g, h.fs_5level));
    // a host without 1 GiB first-stage pages or 5-level tables gives a guest without them
    let small = vsva_vtd::VtdConfig {
        fs_1g: false,
        fs_5level: false,
        pasid_bits: 10,
        ..vsva_vtd::VtdConfig::default()
    };
    let g = vsva_vmm::guest_unit_config(small.cap().into_bits(), small.ecap().into_bits(), 20);
    assert_eq!((g.fs_1g, g.fs_5level, g.pasid_bits), (false, false, 10));
    let g = vsva_vmm::guest_unit_config(h.cap().into_bits(), h.ecap().into_bits(), 8);
    assert_eq!(g.pasid_bits, 8, "no wider than the device's PASIDs");
}
