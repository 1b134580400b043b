//! Isolation: while one guest runs the whole demo program, another programs garbage — a
//! first-stage pointer outside its RAM, a table whose leaves point outside its RAM, a PASID
//! it never bound, a page response for a group it never received, an invalidation storm.
//! The bad guest gets faults and errors; the good one passes every check; the host and the
//! bad guest keep working afterwards. Then every field of what the guest's vIOMMU hands the
//! VMM (invalidations, device-TLB invalidations, page responses, the device's PASID
//! register), at its extremes.

mod common;

use common::{GIB, bind, cmd, guest, host};
use vsva_demo::DriverError;
use vsva_demo::regs::{self, Op};
use vsva_mem::{PageSize, Pasid, Rid};
use vsva_mm::{MapFlags, Prot};
use vsva_pcie::{AtsInvalidation, AtsInvalidationError, Downstream, ResponseCode};
use vsva_pgtable::x86::X86Paging;
use vsva_pgtable::{PageTable, Perm};
use vsva_vmm::Relay;
use vsva_vtd::VirtualBackend;
use vsva_vtd::spec::descriptors::Descriptor;
use vsva_vtd_driver::Domain;

/// Binds guest PASID `pasid` of `rid` to a first-stage table at `root` through the guest's
/// own VT-d driver (what a buggy or hostile guest kernel can do), which writes the PASID
/// entry and invalidates the PASID cache.
fn program_entry(vm: &vsva_vmm::VtdVm, rid: Rid, pasid: u32, root: u64) {
    vm.os()
        .driver
        .attach_pasid(
            rid,
            Pasid::new(pasid).unwrap(),
            &Domain::FirstStage {
                did: 0x300 + pasid as u16,
                root,
                levels: 4,
                supervisor: false,
                write_protect: false,
            },
        )
        .unwrap();
}

fn expect_device_error(result: Result<u64, DriverError>, what: &str) {
    match result {
        Err(DriverError::Device(_)) => {}
        other => panic!("{what}: {other:?}"),
    }
}

fn misbehave(bad: &vsva_vmm::VtdVm) {
    let b = bind(bad);
    let rid = Rid::from_bdf(0, 3, 0).unwrap();
    let fill = |va| cmd(Op::Fill, 0, va, 4096, 0xee);

    // 1. A first-stage table pointer beyond guest RAM (GPA 256 GiB): the host's stage 2
    //    refuses the table fetch; the device's command fails.
    program_entry(bad, rid, 0x55, 256 * GIB);
    assert_eq!(bad.vmm().counters().bind_errors, 0, "iommufd takes any GPA");
    expect_device_error(
        b.drv
            .run_pasid(bad, Pasid::new(0x55).unwrap(), &fill(0x4000_0000)),
        "table outside RAM",
    );
    let faults = vsva_demo::Machine::take_faults(bad);
    assert!(
        faults
            .iter()
            .any(|f| f.pasid.map(|p| p.raw()) == Some(0x55)),
        "the guest sees the fault under its own PASID: {faults:?}"
    );

    // 2. A table in guest RAM whose leaf points outside guest RAM (GPA 100 GiB).
    let frames = bad.os().mm.frames().clone();
    let table = PageTable::new(X86Paging::default(), frames).unwrap();
    table
        .map(0x7000_0000, 100 * GIB, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    program_entry(bad, rid, 0x56, table.root());
    expect_device_error(
        b.drv
            .run_pasid(bad, Pasid::new(0x56).unwrap(), &fill(0x7000_0000)),
        "leaf outside RAM",
    );

    // 3. A PASID the guest never bound: the VMM rewrites it to the blocked host PASID.
    expect_device_error(
        b.drv
            .run_pasid(bad, Pasid::new(0x77).unwrap(), &fill(0x4000_0000)),
        "unbound PASID",
    );

    // 4. A page group response for a group it never received: dropped.
    let dropped = bad.vmm().counters().responses_dropped;
    for prgi in [0, 7, 0x1ff] {
        bad.os()
            .driver
            .page_response(rid, Some(b.ctx.pasid()), prgi, ResponseCode::Success)
            .unwrap();
    }
    assert_eq!(bad.vmm().counters().responses_dropped, dropped + 3);

    // 5. An invalidation storm on its real binding: every one reaches the host and returns.
    let did = bad.os().iommu.domain_id(rid, b.ctx.pasid()).unwrap();
    let before = bad.vmm().counters().invalidations_propagated;
    for i in 0..2000u64 {
        bad.os()
            .driver
            .flush_range(did, rid, b.ctx.pasid(), (i % 512) << 12, 4096)
            .unwrap();
    }
    assert!(bad.vmm().counters().invalidations_propagated >= before + 2000);

    // The bad guest itself still works for honest requests.
    let buf = b
        .process
        .mmap(None, 4 * 4096, Prot::RW, MapFlags::empty())
        .unwrap();
    b.drv
        .run(bad, &b.ctx, &cmd(Op::Fill, 0, buf.raw(), 4 * 4096, 0x42))
        .unwrap();
    let mut got = [0u8; 4];
    b.process.read_bytes(buf, &mut got).unwrap();
    assert_eq!(got, [0x42; 4]);
}

#[test]
fn a_guest_programming_garbage_reaches_nothing_and_stops_nobody() {
    let host = host();
    let good = guest(&host, 1);
    let bad = guest(&host, 2);
    let host_faults_before = host.iommu.stats().unrecoverable;
    std::thread::scope(|s| {
        let good_run = s.spawn(|| vsva_demo::run_program(&good).unwrap());
        s.spawn(|| misbehave(&bad)).join().unwrap();
        let report = good_run.join().unwrap();
        for c in &report.checks {
            assert!(c.passed, "{}: {}", c.name, c.detail);
        }
    });
    assert!(host.iommu.stats().unrecoverable > host_faults_before);
    // The host keeps working for its own SVA too.
    let host_report = vsva_demo::run_program(host.as_ref()).unwrap();
    assert!(host_report.checks.iter().all(|c| c.passed));
}

#[test]
fn entry_types_the_viommu_does_not_offer_stay_unbound() {
    // The vIOMMU advertises neither second-stage nor nested translation (ECAP.SSTS/NEST
    // clear). A guest that writes such an entry anyway gets nothing on the host: no binding,
    // and DMA under that PASID faults instead of reaching the table it named.
    let host = host();
    let vm = guest(&host, 1);
    let b = bind(&vm);
    assert!(!vm.unit().config().second_stage && !vm.unit().config().nested);
    let rid = Rid::from_bdf(0, 3, 0).unwrap();
    let frames = vm.os().mm.frames().clone();
    let ss = PageTable::new(vsva_pgtable::vtd_ss::VtdSecondStage::four_level(), frames).unwrap();
    ss.map(0x4000_0000, 0x1000_0000, PageSize::Size4K, Perm::RW)
        .unwrap();
    for domain in [
        Domain::SecondStage {
            did: 0x61,
            root: ss.root(),
            levels: 4,
            ad: false,
        },
        Domain::Nested {
            did: 0x62,
            fs_root: b.process.page_table_root().unwrap(),
            fs_levels: 4,
            ss_root: ss.root(),
            ss_levels: 4,
            supervisor: false,
        },
    ] {
        let pasid = Pasid::new(0x60).unwrap();
        let _ = vm.os().driver.attach_pasid(rid, pasid, &domain);
        assert!(
            vm.vmm().bindings().iter().all(|&(_, gp, _)| gp != 0x60),
            "{domain:?} bound"
        );
        expect_device_error(
            b.drv
                .run_pasid(&vm, pasid, &cmd(Op::Fill, 0, 0x4000_0000, 4096, 1)),
            "unsupported entry type",
        );
    }
}

#[test]
fn garbage_in_every_field_the_vmm_acts_on_is_harmless() {
    // What the guest's vIOMMU hands its VMM, with every field the guest controls at its
    // extremes: unknown requester IDs, function masks, granularities, PASIDs past the
    // PASID width, addresses at the top of the space, address masks past 2^52 pages, page
    // responses to groups that never were. Nothing panics, nothing is bound or unbound, and
    // the guest's real binding keeps working.
    let host = host();
    let vm = guest(&host, 1);
    let b = bind(&vm);
    let rid = Rid::from_bdf(0, 3, 0).unwrap();
    let pasid = b.ctx.pasid().raw();
    let did = vm.os().iommu.domain_id(rid, b.ctx.pasid()).unwrap();
    let relay = Relay::new(vm.vmm());
    let bindings = vm.vmm().bindings();
    let pasids = [0, pasid, 0x77, 0xf_ffff, 0x10_0000, u32::MAX];
    let sids = [0, rid.raw(), rid.raw() | 7, 0xffff];

    for granularity in [0, 1, 2, 3, 4, u8::MAX] {
        for sid in sids {
            for fm in [0, 1, 3, 4, u8::MAX] {
                relay.invalidated(&Descriptor::ContextCache {
                    granularity,
                    did: u16::MAX,
                    sid,
                    fm,
                });
            }
        }
        for pasid in pasids {
            relay.invalidated(&Descriptor::PasidCache {
                granularity,
                did: u16::MAX,
                pasid,
            });
        }
    }
    assert_eq!(
        vm.vmm().bindings(),
        bindings,
        "the guest's entries did not change: nothing to bind or unbind"
    );
    assert_eq!(vm.vmm().counters().bind_errors, 0);

    for granularity in [0, 2, 3, u8::MAX] {
        for addr in [0, 0x1234_5000, !0xfff] {
            for am in [0, 18, 51, 52, 63, u8::MAX] {
                for pasid in pasids {
                    relay.invalidated(&Descriptor::PasidIotlb {
                        granularity,
                        did,
                        pasid,
                        addr,
                        am,
                        ih: true,
                    });
                }
            }
        }
    }
    // The other descriptor types are no business of the VMM's.
    relay.invalidated(&Descriptor::Iotlb {
        granularity: 1,
        did,
        addr: 0,
        am: 0,
        ih: false,
    });

    let ats = |sid: u16, pasid: Option<u32>, addr: u64, len: u64, global: bool| {
        relay.ats_invalidate(&AtsInvalidation {
            sid: Rid::from_raw(sid),
            pasid: pasid.and_then(|p| Pasid::new(p).ok()),
            addr,
            len,
            global,
        })
    };
    for sid in [0, rid.raw() | 7, 0xffff] {
        assert_eq!(
            ats(sid, Some(pasid), 0, 4096, false),
            Err(AtsInvalidationError::Timeout),
            "no device {sid:#x} behind the vIOMMU: no completion"
        );
    }
    for p in [None, Some(pasid), Some(0x77), Some(0xf_ffff)] {
        for (addr, len) in [(0, u64::MAX), (!0xfff, 1 << 63), (0x1001, 0)] {
            for global in [false, true] {
                assert_eq!(ats(rid.raw(), p, addr, len, global), Ok(()));
            }
        }
    }

    let dropped = vm.vmm().counters().responses_dropped;
    let responses = [
        (0xffff, None, 0),
        (rid.raw(), None, 0x1ff),
        (rid.raw(), Some(pasid), u16::MAX),
        (rid.raw(), Some(0xf_ffff), 0),
        (rid.raw() | 7, Some(pasid), 0),
    ];
    for (sid, p, prgi) in responses {
        for code in [
            ResponseCode::Success,
            ResponseCode::InvalidRequest,
            ResponseCode::ResponseFailure,
        ] {
            relay.page_group_response(
                Rid::from_raw(sid),
                p.and_then(|p| Pasid::new(p).ok()),
                code,
                prgi,
            );
        }
    }
    assert_eq!(
        vm.vmm().counters().responses_dropped,
        dropped + 3 * responses.len() as u64
    );

    // The device's PASID register and its DMA: whatever the guest names, the host device
    // gets a PASID the guest bound or the blocked one, and guest-physical addresses past
    // guest RAM reach nothing.
    let dev = b.drv.device();
    dev.mmio_write(regs::PASID, u64::MAX);
    assert_eq!(
        dev.mmio_read(regs::PASID),
        u64::MAX,
        "the guest reads what it wrote"
    );
    assert!(dev.dma_untranslated(None, 2 * GIB - 4096, false).is_ok());
    for p in [None, Some(0x77), Some(0xf_ffff)] {
        for addr in [2 * GIB, 256 * GIB, !0xfff] {
            assert!(
                dev.dma_untranslated(p.and_then(|p| Pasid::new(p).ok()), addr, true)
                    .is_err(),
                "PASID {p:?} GPA {addr:#x}"
            );
        }
    }

    assert_eq!(vm.vmm().bindings(), bindings);
    let buf = b
        .process
        .mmap(None, 4 * 4096, Prot::RW, MapFlags::empty())
        .unwrap();
    b.drv
        .run(&vm, &b.ctx, &cmd(Op::Fill, 0, buf.raw(), 4 * 4096, 0x42))
        .unwrap();
    let mut got = [0u8; 4];
    b.process.read_bytes(buf, &mut got).unwrap();
    assert_eq!(got, [0x42; 4]);
}

#[test]
fn a_page_selective_invalidation_covers_the_aligned_block_its_mask_names() {
    // PASID-based IOTLB invalidation, page-selective: ADDR's low AM page bits are ignored —
    // the naturally aligned 2^AM pages holding ADDR go (§6.5.2.4); from 2^52 pages on that is
    // the whole space. Seen from the device: after the invalidation, every page of the block
    // needs a fresh ATS translation.
    let host = host();
    let vm = guest(&host, 1);
    let b = bind(&vm);
    let rid = Rid::from_bdf(0, 3, 0).unwrap();
    let did = vm.os().iommu.domain_id(rid, b.ctx.pasid()).unwrap();
    let relay = Relay::new(vm.vmm());
    let mapped = b
        .process
        .mmap(None, 8 * 4096, Prot::RW, MapFlags::POPULATE)
        .unwrap();
    // four pages aligned to four pages
    let block = (mapped.raw() + 4 * 4096 - 1) & !(4 * 4096 - 1);
    let read = cmd(Op::ReadChecksum, block, 0, 4 * 4096, 0);
    for (addr, am) in [(block + 4096, 2), (0, 52), (block, 63)] {
        b.drv.run(&vm, &b.ctx, &read).unwrap();
        let before = b.drv.device().stats().ats_translations;
        relay.invalidated(&Descriptor::PasidIotlb {
            granularity: 3,
            did,
            pasid: b.ctx.pasid().raw(),
            addr,
            am,
            ih: false,
        });
        b.drv.run(&vm, &b.ctx, &read).unwrap();
        assert_eq!(
            b.drv.device().stats().ats_translations - before,
            4,
            "ADDR {addr:#x} AM {am}"
        );
    }
}
