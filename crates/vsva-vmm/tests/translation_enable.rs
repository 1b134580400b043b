//! The guest's global commands reach the host: clearing GCMD.TE in the vIOMMU tears down
//! every nested binding on the host before the write returns (the guest's unit now blocks
//! requests with PASID, §3.2), setting it again or latching a root table (SRTP) re-reads the
//! guest's tables — as QEMU switches address spaces on the same writes.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Bound, bind, cmd, guest, host};
use vsva_demo::Machine;
use vsva_demo::Progress;
use vsva_demo::regs::Op;
use vsva_demo::{DriverError, submit_to};
use vsva_host::Platform;
use vsva_iommufd::ObjectType;
use vsva_mem::{PageSize, Pasid, PhysMem, Rid, Va};
use vsva_mm::{MapFlags, Prot};
use vsva_vmm::VtdVm as Vm;
use vsva_vtd::spec::pasid::Pgtt;
use vsva_vtd::spec::registers::{Gcmd, offset};

/// A guest-physical page in guest RAM the tests use for DMA without PASID.
const GPA: u64 = 0x10_0000;

/// Writes the guest vIOMMU's GCMD as a driver does (Linux `iommu_disable_translation`):
/// GSTS's persistent bits, with `set` added and `clear` taken away.
fn gcmd(vm: &Vm, set: Gcmd, clear: Gcmd) {
    let status = Gcmd::from_bits_truncate(vm.unit().mmio_read(offset::GSTS, 4) as u32);
    let cmd = (status - Gcmd::ONE_SHOT - clear) | set;
    vm.unit().mmio_write(offset::GCMD, 4, cmd.bits().into());
}

/// The nested HWPTs the VMM holds in its iommufd.
fn nested_hwpts(vm: &Vm) -> usize {
    vm.vmm()
        .iommufd()
        .objects()
        .iter()
        .filter(|(_, t)| *t == ObjectType::HwptNested)
        .count()
}

/// A host, a guest on it with the demo driver bound ([`bind`]), that one binding (guest RID,
/// guest PASID, host PASID), and the device's RID on the host.
fn bound_guest() -> (Arc<Platform>, Vm, Bound, (Rid, u32, u32), Rid) {
    let host = host();
    let vm = guest(&host, 1);
    let b = bind(&vm);
    let binding = vm.vmm().bindings()[0];
    let host_rid = vm.vmm().host_rid(binding.0);
    (host, vm, b, binding, host_rid)
}

/// A page of the bound process, filled with `byte` by the device.
fn filled_page(vm: &Vm, b: &Bound, byte: u8) -> Va {
    let buf = b
        .process
        .mmap(None, 4096, Prot::RW, MapFlags::empty())
        .unwrap();
    fill(vm, b, buf, byte).unwrap();
    assert_page(b, buf, byte, "the device's fill");
    buf
}

fn fill(vm: &Vm, b: &Bound, buf: Va, byte: u8) -> Result<u64, DriverError> {
    b.drv
        .run(vm, &b.ctx, &cmd(Op::Fill, 0, buf.raw(), 4096, byte.into()))
}

/// The guest CPU reads `byte` in every byte of the page at `buf`.
fn assert_page(b: &Bound, buf: Va, byte: u8, what: &str) {
    let mut got = vec![0u8; 4096];
    b.process.read_bytes(buf, &mut got).unwrap();
    let wrong = got.iter().filter(|&&x| x != byte).count();
    assert_eq!(
        wrong,
        0,
        "{what}: {wrong} bytes are not {byte:#x}, e.g. {:#x}",
        got.iter().find(|&&x| x != byte).copied().unwrap_or(byte)
    );
}

/// DMA without PASID reaches the host page behind `GPA`: the stage 2 translates it.
fn assert_on_stage_2(host: &Platform, vm: &Vm, b: &Bound) {
    let rid = b.drv.device().rid();
    assert_eq!(
        b.drv.device().dma_untranslated(None, GPA, true),
        Ok(vm.vmm().ram().hpa(GPA).unwrap()),
        "requests without PASID use the GPA -> HPA stage 2"
    );
    let host_rid = vm.vmm().host_rid(rid);
    assert_eq!(
        host.unit.guest_pasid_entry(host_rid, None).unwrap().pgtt,
        Pgtt::SecondStage,
        "the host's entry for requests without PASID is the stage 2"
    );
}

#[test]
fn clearing_te_in_the_guest_unbinds_its_pasids_on_the_host_until_te_is_set_again() {
    let (host, vm, b, (rid, gp, hp), host_rid) = bound_guest();
    let buf = filled_page(&vm, &b, 1);
    assert_eq!(nested_hwpts(&vm), 1);
    assert_on_stage_2(&host, &vm, &b);

    gcmd(&vm, Gcmd::empty(), Gcmd::TE);
    // By the time the write returned: nothing of the binding is left on the host.
    assert!(
        vm.unit().mmio_read(offset::GSTS, 4) & u64::from(Gcmd::TE.bits()) == 0,
        "the guest sees TE clear"
    );
    assert!(vm.vmm().bindings().is_empty(), "{:?}", vm.vmm().bindings());
    assert_eq!(vm.vmm().host_pasid(gp), None, "host PASID released");
    assert_eq!(nested_hwpts(&vm), 0, "nested HWPT destroyed");
    assert!(
        host.iommu
            .domain_id(host_rid, Pasid::new(hp).unwrap())
            .is_none(),
        "the host core has it detached"
    );
    assert!(
        host.unit
            .guest_pasid_entry(host_rid, Some(Pasid::new(hp).unwrap()))
            .is_err(),
        "the host unit's PASID entry is gone"
    );
    // The device's DMA under the guest PASID is refused and writes nothing.
    match fill(&vm, &b, buf, 2) {
        Err(DriverError::Device(_)) => {}
        other => panic!("DMA with TE clear gave {other:?}"),
    }
    assert_page(&b, buf, 1, "DMA under the PASID with TE clear");
    // Requests without PASID pass untranslated: GPAs, on the stage 2.
    assert_on_stage_2(&host, &vm, &b);

    gcmd(&vm, Gcmd::TE, Gcmd::empty());
    // The guest's tables are read again: the same PASID entry, bound again.
    let bindings = vm.vmm().bindings();
    assert_eq!(bindings.len(), 1, "{bindings:?}");
    assert_eq!((bindings[0].0, bindings[0].1), (rid, gp));
    assert_eq!(nested_hwpts(&vm), 1);
    fill(&vm, &b, buf, 3).unwrap();
    assert_page(&b, buf, 3, "DMA after TE is set again");
    assert_on_stage_2(&host, &vm, &b);
}

#[test]
fn latching_a_root_table_without_the_devices_entries_unbinds_them_on_the_host() {
    let (host, vm, b, (rid, gp, hp), host_rid) = bound_guest();
    let buf = filled_page(&vm, &b, 1);
    let old_root = vm.unit().mmio_read(offset::RTADDR, 8);
    // A scalable-mode root table with no root entry present.
    let empty = vm.mm().frames().alloc_zeroed(PageSize::Size4K).unwrap();
    vm.unit()
        .mmio_write(offset::RTADDR, 8, empty | (old_root & 0xc00));

    gcmd(&vm, Gcmd::SRTP, Gcmd::empty());
    assert!(vm.vmm().bindings().is_empty(), "{:?}", vm.vmm().bindings());
    assert_eq!(nested_hwpts(&vm), 0);
    assert!(
        host.iommu
            .domain_id(host_rid, Pasid::new(hp).unwrap())
            .is_none()
    );
    match fill(&vm, &b, buf, 2) {
        Err(DriverError::Device(_)) => {}
        other => panic!("DMA through a root table without the device gave {other:?}"),
    }
    assert_page(
        &b,
        buf,
        1,
        "DMA under the PASID through the empty root table",
    );

    // Back to the guest's own root table: bound again, DMA works.
    vm.unit().mmio_write(offset::RTADDR, 8, old_root);
    gcmd(&vm, Gcmd::SRTP, Gcmd::empty());
    let bindings = vm.vmm().bindings();
    assert_eq!(bindings.len(), 1, "{bindings:?}");
    assert_eq!((bindings[0].0, bindings[0].1), (rid, gp));
    fill(&vm, &b, buf, 3).unwrap();
    assert_page(&b, buf, 3, "DMA through the guest's root table again");
}

/// Copies the 4 KiB table at `from` into a fresh guest page and returns its GPA.
fn copy_table(vm: &Vm, from: u64) -> u64 {
    let to = vm.mm().frames().alloc_zeroed(PageSize::Size4K).unwrap();
    let mut bytes = vec![0u8; 4096];
    vm.vmm().ram().read(from, &mut bytes).unwrap();
    vm.vmm().ram().write(to, &bytes).unwrap();
    to
}

#[test]
fn a_bound_pasid_that_a_new_context_entry_makes_rid_pasid_loses_its_host_pasid() {
    use vsva_vtd::spec::root_context::{ContextEntry, RootHalf, context_offset, root_half_offset};
    let (host, vm, b, (rid, gp, hp), host_rid) = bound_guest();
    let ram = vm.vmm().ram();
    // The guest's tables again, except that the device's context entry names the bound
    // PASID as the one requests without PASID use.
    let rtaddr = vm.unit().mmio_read(offset::RTADDR, 8);
    let root = copy_table(&vm, rtaddr & !0xfff);
    let half_at = root + root_half_offset(rid.bus(), rid.devfn());
    let half = RootHalf::from_bits(ram.load_u64(half_at).unwrap());
    let contexts = copy_table(&vm, half.table());
    ram.store_u64(half_at, RootHalf::pointing_to(contexts).into_bits())
        .unwrap();
    let slot = contexts + context_offset(rid.devfn());
    let q: [u64; 4] = std::array::from_fn(|i| ram.load_u64(slot + 8 * i as u64).unwrap());
    let mut ctx = ContextEntry::from_qwords(q);
    ctx.hi = ctx.hi.with_rid_pasid(gp);
    for (i, q) in ctx.to_qwords().into_iter().enumerate() {
        ram.store_u64(slot + 8 * i as u64, q).unwrap();
    }
    vm.unit()
        .mmio_write(offset::RTADDR, 8, root | (rtaddr & 0xc00));

    gcmd(&vm, Gcmd::SRTP, Gcmd::empty());
    // The guest's RID_PASID entry is carried by the RID: no host PASID stays bound for it.
    assert!(
        vm.vmm().bindings().iter().all(|&(_, p, _)| p != gp),
        "{:?}",
        vm.vmm().bindings()
    );
    assert_eq!(vm.vmm().host_pasid(gp), None);
    assert!(
        host.iommu
            .domain_id(host_rid, Pasid::new(hp).unwrap())
            .is_none()
    );
    let entry = host.unit.guest_pasid_entry(host_rid, None).unwrap();
    assert_eq!(
        entry.pgtt,
        Pgtt::Nested,
        "requests without PASID use entry {gp}"
    );
    assert_eq!(entry.entry.fs_root(), b.process.page_table_root().unwrap());
}

#[test]
fn no_device_write_under_the_guest_pasid_lands_after_the_guest_clears_te() {
    /// Fills the DMA thread runs at most (each a few microseconds).
    const MAX_FILLS: u64 = 200_000;
    /// Fills attempted after the poison before the thread is stopped.
    const AFTER_POISON: u64 = 2_000;
    const POISON: u8 = 0xa5;
    let (_host, vm, b, ..) = bound_guest();
    let buf = filled_page(&vm, &b, 1);
    let dev = b.drv.device().clone();
    let pasid = b.ctx.pasid();
    let attempts = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let dma = {
        let (attempts, done, stop) = (attempts.clone(), done.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut refused = 0u64;
            for i in 0..MAX_FILLS {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                // fill bytes 2..=201, never the poison
                let byte = 2 + (i % 200);
                submit_to(
                    dev.as_ref(),
                    pasid,
                    &cmd(Op::Fill, 0, buf.raw(), 4096, byte),
                );
                match dev.run() {
                    Progress::Done => {
                        done.fetch_add(1, Ordering::Release);
                    }
                    Progress::Failed(_) => refused += 1,
                    p => panic!("fill {i}: {p:?} (the page is present: no page request)"),
                }
                attempts.fetch_add(1, Ordering::Release);
            }
            refused
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let wait_for = |counter: &AtomicU64, n: u64| {
        while counter.load(Ordering::Acquire) < n && !dma.is_finished() {
            assert!(Instant::now() < deadline, "the DMA thread made no progress");
            std::hint::spin_loop();
        }
    };
    // The device is writing the page when the guest clears TE.
    wait_for(&done, 100);
    gcmd(&vm, Gcmd::empty(), Gcmd::TE);
    let done_at_clear = done.load(Ordering::Acquire);
    b.process.write_bytes(buf, &[POISON; 4096]).unwrap();
    let attempts_at_poison = attempts.load(Ordering::Acquire);
    wait_for(&attempts, attempts_at_poison + AFTER_POISON);
    stop.store(true, Ordering::Release);
    let refused = dma.join().unwrap();
    let done = done.load(Ordering::Acquire);
    assert_page(
        &b,
        buf,
        POISON,
        &format!(
            "no device write after the GCMD write returned \
             ({done_at_clear} fills done at the clear, {done} in all)"
        ),
    );
    assert!(vm.vmm().bindings().is_empty());
    // At most the fill in flight at the clear completed afterwards; every later one failed.
    assert!(
        done <= done_at_clear + 1,
        "{done} fills done, {done_at_clear} at the clear"
    );
    assert!(refused >= AFTER_POISON, "{refused} fills refused");
}
