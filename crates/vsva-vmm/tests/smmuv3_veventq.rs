//! Host events of a guest's stage 1 reach the guest through the vIOMMU's vEVENTQ (Linux
//! `arm_vmaster_report_event()`: an event of a master with a vDEVICE that is not a stage-2
//! fault, its StreamID replaced by the vSID), as event records in the guest's event queue
//! (IHI 0070 §7.3); stage-2 faults stay the host's.

#[path = "common/smmuv3.rs"]
mod smmu;

use smmu::{DEV, bind, guest, host, host_sid, last_event, write_guest_ste};
use vsva_demo::Machine;
use vsva_host::Smmuv3Kind;
use vsva_iommu::DomainSpec;
use vsva_mem::{PageSize, Pasid, PhysMem};
use vsva_pgtable::arm::ArmS1;
use vsva_pgtable::{PageTable, Perm};
use vsva_smmuv3::spec::cd::Cd0;
use vsva_smmuv3::spec::cmd::Command;
use vsva_smmuv3::spec::event::id;
use vsva_smmuv3::spec::ste::Ste0;
use vsva_vmm::GuestKind;

fn pump(vm: &vsva_vmm::Smmuv3Vm) -> usize {
    <Smmuv3Kind as GuestKind>::pump(vm.vmm())
}

fn cd_addr(vm: &vsva_vmm::Smmuv3Vm, ssid: u32) -> u64 {
    smmu::cd_addr(vm, DEV, ssid).unwrap()
}

#[test]
fn a_cd_the_guest_made_invalid_is_c_bad_cd_in_the_guests_event_queue_under_its_vsid() {
    let host = host();
    let vm = guest(&host, 1);
    let b = bind(&vm);
    let ssid = b.ctx.pasid();
    let dev = b.drv.device();
    // The device reaches guest memory under its SSID...
    let va = 0x4000_0000;
    b.process
        .mmap(
            Some(vsva_mem::Va::new(va)),
            4096,
            vsva_mm::Prot::RW,
            vsva_mm::MapFlags::POPULATE,
        )
        .unwrap();
    assert!(dev.dma_untranslated(Some(ssid), va, true).is_ok());
    let reported = vm.vmm().counters().faults_reported;
    // ... until the guest kernel clears the CD's V bit and invalidates it (CFGI_CD, relayed).
    let at = cd_addr(&vm, ssid.raw());
    let ram = vm.vmm().ram();
    let w0 = Cd0::from_bits(ram.load_u64(at).unwrap());
    assert!(w0.v());
    ram.store_u64(at, w0.with_v(false).into_bits()).unwrap();
    vm.os()
        .driver
        .issue_commands(&[Command::CfgiCd {
            sid: u32::from(DEV.raw()),
            ssid: ssid.raw(),
            leaf: true,
        }])
        .unwrap();
    let events = vm.unit().stats().events;
    assert!(dev.dma_untranslated(Some(ssid), va, true).is_err());
    // The host recorded C_BAD_CD (§7.3.10) on its StreamID; its driver handed it to the
    // vEVENTQ; the VMM put it into the guest's event queue with the vSID.
    let hev = last_event(&host.unit, host.mem.as_ref());
    assert_eq!(
        (hev.kind(), hev.sid(), hev.ssid()),
        (id::C_BAD_CD, host_sid(&vm, DEV), Some(ssid.raw()))
    );
    host.service();
    assert_eq!(pump(&vm), 1);
    assert_eq!(vm.vmm().counters().faults_reported, reported + 1);
    assert_eq!(vm.unit().stats().events, events + 1);
    let gev = last_event(vm.unit(), ram.as_ref());
    assert_eq!(
        (gev.kind(), gev.sid(), gev.ssid()),
        (id::C_BAD_CD, u32::from(DEV.raw()), Some(ssid.raw()))
    );
    // The guest's driver reads it as its device's fault.
    let faults = vm.os().iommu.ops().take_faults();
    assert!(
        faults
            .iter()
            .any(|f| f.dev == DEV && f.pasid == Some(ssid) && f.reason == id::C_BAD_CD),
        "{faults:?}"
    );
}

#[test]
fn a_recorded_stage1_translation_fault_reaches_the_guest_and_a_stage2_fault_does_not() {
    let host = host();
    let vm = guest(&host, 1);
    let b = bind(&vm);
    let ssid = b.ctx.pasid();
    let dev = b.drv.device();
    let ram = vm.vmm().ram();
    // The SVA CD records faults (CD.R = 1) and, for a PCIe master, does not stall (the STE
    // has S1STALLD): a DMA to an address the process never mapped is a stage-1
    // F_TRANSLATION (§7.3.12) the host terminates and reports.
    let cd = Cd0::from_bits(ram.load_u64(cd_addr(&vm, ssid.raw())).unwrap());
    assert!(cd.r() && !cd.s());
    let reported = vm.vmm().counters().faults_reported;
    let unmapped = 0x6000_0000;
    assert!(dev.dma_untranslated(Some(ssid), unmapped, false).is_err());
    host.service();
    assert_eq!(pump(&vm), 1);
    assert_eq!(vm.vmm().counters().faults_reported, reported + 1);
    let gev = last_event(vm.unit(), ram.as_ref());
    assert_eq!(
        (gev.kind(), gev.sid(), gev.ssid()),
        (id::F_TRANSLATION, u32::from(DEV.raw()), Some(ssid.raw()))
    );
    assert_eq!(gev.stag(), None, "not a stall");
    assert_eq!(gev.words[2] & !0xfff, unmapped, "InputAddr");

    // The stage-1 event has S2 = 0.
    assert_eq!(gev.words[1] >> 39 & 1, 0);

    // A stage-1 table of the guest (SSID 5) whose leaf points outside guest RAM (IPA
    // 100 GiB): the host's stage 2 faults (S2 = 1). That is the host's business: nothing
    // reaches the guest.
    let frames = vm.os().mm.frames().clone();
    let table = PageTable::new(ArmS1::with_va_bits(48), frames).unwrap();
    table
        .map(
            0x7000_0000,
            100 * smmu::GIB,
            PageSize::Size4K,
            Perm::USER_RW,
        )
        .unwrap();
    let ssid5 = Pasid::new(5).unwrap();
    vm.os()
        .iommu
        .attach_pasid(
            DEV,
            ssid5,
            &DomainSpec::Sva {
                root: table.root(),
                levels: 4,
                supervisor: false,
            },
            None,
        )
        .unwrap();
    let (h_events, g_events) = (host.unit.stats().events, vm.unit().stats().events);
    assert!(
        dev.dma_untranslated(Some(ssid5), 0x7000_0000, false)
            .is_err()
    );
    assert!(host.unit.stats().events > h_events, "the host recorded it");
    let hev = last_event(&host.unit, host.mem.as_ref());
    assert_eq!(hev.sid(), host_sid(&vm, DEV));
    // F_TRANSLATION with S2 (event dword 1 bit 39, bit 103 of the record) and the IPA.
    assert_eq!(hev.kind(), id::F_TRANSLATION);
    assert_eq!(hev.words[1] >> 39 & 1, 1, "a stage-2 fault");
    assert_eq!(hev.words[3] & !0xfff, 100 * smmu::GIB, "the IPA");
    host.service();
    assert_eq!(pump(&vm), 0);
    assert_eq!(vm.vmm().counters().faults_reported, reported + 1);
    assert_eq!(vm.unit().stats().events, g_events);

    // So is a CD table outside guest RAM (its fetch faults at stage 2, CLASS = CD).
    let g = vm.unit().guest_ste(u32::from(DEV.raw())).unwrap();
    let far = Ste0::from_bits(g.words[0])
        .with_s1contextptr((256 * smmu::GIB) >> 6)
        .into_bits();
    write_guest_ste(&vm, DEV, [far, g.words[1]]);
    let h_events = host.unit.stats().events;
    assert!(
        dev.dma_untranslated(Some(ssid), 0x4000_0000, false)
            .is_err()
    );
    assert!(host.unit.stats().events > h_events);
    let hev = last_event(&host.unit, host.mem.as_ref());
    assert_eq!(hev.kind(), id::F_TRANSLATION);
    assert_eq!(hev.words[1] >> 39 & 1, 1, "S2");
    assert_eq!(hev.words[1] >> 40 & 3, 0b00, "CLASS = CD");
    assert_eq!(
        hev.words[3] & !0xfff,
        256 * smmu::GIB,
        "the IPA of the CD table"
    );
    host.service();
    assert_eq!(pump(&vm), 0);
    assert_eq!(vm.vmm().counters().faults_reported, reported + 1);
    assert_eq!(vm.unit().stats().events, g_events);
    let _ = vm.take_faults();
}

#[test]
fn events_beyond_the_veventq_depth_are_lost_not_wedged() {
    let host = host();
    let vm = guest(&host, 1);
    let b = bind(&vm);
    let ssid = b.ctx.pasid();
    let dev = b.drv.device();
    // 100 stage-1 faults before the VMM reads the vEVENTQ (depth 64): the queue keeps 64
    // and a lost-events record (IOMMU_VEVENTQ_FLAG_LOST_EVENTS) for the rest.
    for i in 0..100u64 {
        assert!(
            dev.dma_untranslated(Some(ssid), 0x6000_0000 + (i << 12), false)
                .is_err()
        );
        host.service();
    }
    let reported = vm.vmm().counters().faults_reported;
    assert_eq!(pump(&vm), 64);
    assert_eq!(vm.vmm().counters().faults_reported - reported, 64);
    assert_eq!(
        vm.unit().stats().events_lost,
        0,
        "the guest's own queue took them all"
    );
    // Afterwards the queue works again: the next fault arrives.
    assert!(
        dev.dma_untranslated(Some(ssid), 0x7000_0000, false)
            .is_err()
    );
    host.service();
    assert_eq!(pump(&vm), 1);
    let gev = last_event(vm.unit(), vm.vmm().ram().as_ref());
    assert_eq!(gev.words[2] & !0xfff, 0x7000_0000);
}

#[test]
fn a_guest_cannot_make_a_device_that_cannot_stall_stall_on_the_host() {
    let host = host();
    let vm = guest(&host, 1);
    let b = bind(&vm);
    let ssid = b.ctx.pasid();
    let dev = b.drv.device();
    let ram = vm.vmm().ram();
    // The guest clears S1STALLD in its PCIe device's STE and sets S in its CD (§5.4: stall
    // faults): the host keeps S1STALLD for a master that cannot stall (Linux
    // `arm_smmu_make_nested_cd_table_ste()` → `arm_smmu_make_cdtable_ste()`), so the CD is
    // ILLEGAL there (C_BAD_CD, §5.4.2) rather than a stall the device cannot take.
    let g = vm.unit().guest_ste(u32::from(DEV.raw())).unwrap();
    let w1 = vsva_smmuv3::spec::ste::Ste1::from_bits(g.words[1])
        .with_s1stalld(false)
        .into_bits();
    smmu::write_guest_ste(&vm, DEV, [g.words[0], w1]);
    let at = cd_addr(&vm, ssid.raw());
    let cd = Cd0::from_bits(ram.load_u64(at).unwrap());
    ram.store_u64(at, cd.with_s(true).into_bits()).unwrap();
    vm.os()
        .driver
        .issue_commands(&[Command::CfgiCd {
            sid: u32::from(DEV.raw()),
            ssid: ssid.raw(),
            leaf: true,
        }])
        .unwrap();
    assert!(
        host.unit
            .guest_ste(host_sid(&vm, DEV))
            .unwrap()
            .w1()
            .s1stalld()
    );
    assert!(
        dev.dma_untranslated(Some(ssid), 0x6000_0000, false)
            .is_err()
    );
    assert_eq!(host.unit.stats().stalled, 0, "nothing stalled");
    host.service();
    assert_eq!(pump(&vm), 1);
    let gev = last_event(vm.unit(), ram.as_ref());
    assert_eq!(
        (gev.kind(), gev.sid(), gev.ssid()),
        (id::C_BAD_CD, u32::from(DEV.raw()), Some(ssid.raw()))
    );
}
