//! Allocation failure at every step, as Linux's `tools/testing/selftests/iommu/
//! iommufd_fail_nth.c`: each sequence of iommufd calls below runs with the Nth allocation
//! point (`vsva_mem::fail_nth`) failing, for N = 1, 2, 3, … until it completes without
//! reaching the injected failure. For every N:
//! * the failing call returns `ENOMEM` (what a failed `kmalloc()` gives) and leaves the
//!   context as it found it: the same objects, pins and locked-memory charge;
//! * after the context is closed nothing is left: no pinned page, no locked-memory charge, no
//!   domain ID, no device or PASID attachment, and every frame of the driver's and the memory
//!   manager's allocators is free again;
//! * the same sequence, not armed, then runs to completion on a fresh context of the same
//!   machine (it is still usable).
//!
//! Linux's test only looks for kernel splats and leaks (kmemleak); the errno and state checks
//! here are stricter. The machine is built by hand from its parts (`IommuKind`) so the test
//! can see the driver's frame allocator.

mod machine;
mod sweep;

use std::sync::Arc;

use machine::*;
use sweep::{sweep, sweep_faulting, sweep_fresh};
use vsva_iommu::DeviceCaps;
use vsva_iommufd::RwBuf;
use vsva_iommufd::abi::{Errno, HwptAllocFlags, HwptDataType};
use vsva_mem::{Rid, fail_nth};

/// A domain filled from memory that is not there yet: the map faults every page in.
fn map_faulting_pages(m: &Machine, ctx: &mut Ctx) -> Result<(), StepError> {
    ctx.step(m, "IOAS_ALLOC", |c| {
        c.ids.ioas[0] = c.ioas_alloc()?;
        Ok(())
    })?;
    ctx.step(m, "ATTACH ioas", |c| {
        c.fd.attach(c.ids.dev[0], c.ids.ioas[0], None)?;
        Ok(())
    })?;
    ctx.step(m, "IOAS_MAP faulting", |c| {
        c.map(c.ids.ioas[0], FIXED_RW, m.lazy_buf.get(), BUF_LEN, IOVA)?;
        Ok(())
    })
}

fn nothing(_: &Machine, _: &mut Ctx) -> Result<(), StepError> {
    Ok(())
}

fn bind_first(m: &Machine, ctx: &mut Ctx) -> Result<(), StepError> {
    ctx.ids.dev[0] = ctx.fd.bind_device(m.devices[0]).unwrap();
    Ok(())
}

fn bind_both(m: &Machine, ctx: &mut Ctx) -> Result<(), StepError> {
    bind_first(m, ctx)?;
    ctx.ids.dev[1] = ctx.fd.bind_device(m.devices[1]).unwrap();
    Ok(())
}

/// ioas.c: IOAS alloc, map (no domain: nothing pinned), a second IOAS, copy, unmap.
fn ioas_map_copy_unmap(m: &Machine, ctx: &mut Ctx) -> Result<(), StepError> {
    ctx.step(m, "IOAS_ALLOC", |c| {
        c.ids.ioas[0] = c.ioas_alloc()?;
        Ok(())
    })?;
    ctx.step(m, "IOAS_MAP", |c| {
        c.ids.iova = c.map(c.ids.ioas[0], RW, m.buf, BUF_LEN, 0)?;
        Ok(())
    })?;
    ctx.step(m, "IOAS_ALLOC 2", |c| {
        c.ids.ioas[1] = c.ioas_alloc()?;
        Ok(())
    })?;
    ctx.step(m, "IOAS_COPY", |c| {
        c.copy(c.ids.ioas[1], c.ids.ioas[0], c.ids.iova, BUF_LEN / 2)
    })?;
    ctx.step(m, "IOAS_UNMAP", |c| {
        c.unmap(c.ids.ioas[0], c.ids.iova, BUF_LEN)
    })?;
    ctx.step(m, "IOAS_UNMAP 2", |c| {
        c.unmap(c.ids.ioas[1], IOVA, BUF_LEN / 2)
    })?;
    ctx.step(m, "DESTROY", |c| c.destroy(c.ids.ioas[1]))
}

/// iopt_area_fill_domains(): a device attached to an IOAS (automatic HWPT), a map that pins
/// and fills its domain, a second device's HWPT filled from the pinned pages, copy into a
/// second IOAS with a domain, detach and attach again.
fn map_two_domains(m: &Machine, ctx: &mut Ctx) -> Result<(), StepError> {
    ctx.step(m, "IOAS_ALLOC", |c| {
        c.ids.ioas[0] = c.ioas_alloc()?;
        Ok(())
    })?;
    ctx.step(m, "ATTACH ioas", |c| {
        c.ids.hwpt[0] = c.fd.attach(c.ids.dev[0], c.ids.ioas[0], None)?;
        Ok(())
    })?;
    ctx.step(m, "IOAS_MAP", |c| {
        c.map(c.ids.ioas[0], FIXED_RW, m.buf, BUF_LEN, IOVA)?;
        Ok(())
    })?;
    ctx.step(m, "HWPT_ALLOC", |c| {
        c.ids.hwpt[1] = c.hwpt_alloc(c.ids.dev[1], c.ids.ioas[0], 0, None, 0)?;
        Ok(())
    })?;
    ctx.step(m, "ATTACH hwpt", |c| {
        c.fd.attach(c.ids.dev[1], c.ids.hwpt[1], None)?;
        Ok(())
    })?;
    ctx.step(m, "IOAS_ALLOC 2", |c| {
        c.ids.ioas[1] = c.ioas_alloc()?;
        Ok(())
    })?;
    ctx.step(m, "REPLACE with ioas 2", |c| {
        c.fd.replace(c.ids.dev[1], c.ids.ioas[1], None)?;
        Ok(())
    })?;
    ctx.step(m, "IOAS_COPY", |c| {
        c.copy(c.ids.ioas[1], c.ids.ioas[0], IOVA, BUF_LEN)
    })?;
    ctx.step(m, "DETACH", |c| c.fd.detach(c.ids.dev[0], None))?;
    ctx.step(m, "ATTACH again", |c| {
        c.fd.attach(c.ids.dev[0], c.ids.ioas[0], None)?;
        Ok(())
    })?;
    ctx.step(m, "IOAS_UNMAP", |c| c.unmap(c.ids.ioas[0], IOVA, BUF_LEN))
}

/// hw_pagetable.c on VT-d: paging, nesting parent and nested HWPTs; attach, replace, detach.
fn hwpt_paging_nested(m: &Machine, ctx: &mut Ctx) -> Result<(), StepError> {
    let vtd_s1 = Some((HwptDataType::VTD_S1, m.vtd_s1, 24));
    ctx.step(m, "IOAS_ALLOC", |c| {
        c.ids.ioas[0] = c.ioas_alloc()?;
        Ok(())
    })?;
    ctx.step(m, "IOAS_MAP", |c| {
        c.map(c.ids.ioas[0], FIXED_RW, m.buf, BUF_LEN, IOVA)?;
        Ok(())
    })?;
    ctx.step(m, "HWPT_ALLOC paging", |c| {
        c.ids.hwpt[0] = c.hwpt_alloc(c.ids.dev[0], c.ids.ioas[0], 0, None, 0)?;
        Ok(())
    })?;
    ctx.step(m, "ATTACH paging", |c| {
        c.fd.attach(c.ids.dev[0], c.ids.hwpt[0], None)?;
        Ok(())
    })?;
    ctx.step(m, "HWPT_ALLOC nest parent", |c| {
        c.ids.hwpt[1] = c.hwpt_alloc(c.ids.dev[0], c.ids.ioas[0], NEST_PARENT, None, 0)?;
        Ok(())
    })?;
    ctx.step(m, "REPLACE nest parent", |c| {
        c.fd.replace(c.ids.dev[0], c.ids.hwpt[1], None)?;
        Ok(())
    })?;
    ctx.step(m, "HWPT_ALLOC nested", |c| {
        c.ids.hwpt[2] = c.hwpt_alloc(c.ids.dev[0], c.ids.hwpt[1], PASID_FLAG, vtd_s1, 0)?;
        Ok(())
    })?;
    ctx.step(m, "REPLACE nested", |c| {
        c.fd.replace(c.ids.dev[0], c.ids.hwpt[2], None)?;
        Ok(())
    })?;
    ctx.step(m, "ATTACH nested at a PASID", |c| {
        c.fd.attach(c.ids.dev[0], c.ids.hwpt[2], Some(9))?;
        Ok(())
    })?;
    ctx.step(m, "DETACH PASID", |c| c.fd.detach(c.ids.dev[0], Some(9)))?;
    ctx.step(m, "DETACH", |c| c.fd.detach(c.ids.dev[0], None))?;
    ctx.step(m, "DESTROY nested", |c| c.destroy(c.ids.hwpt[2]))?;
    ctx.step(m, "DESTROY paging", |c| c.destroy(c.ids.hwpt[0]))
}

/// eventq.c: a fault queue, a nested HWPT reporting to it, attached at a PASID.
fn fault_queue(m: &Machine, ctx: &mut Ctx) -> Result<(), StepError> {
    let vtd_s1 = Some((HwptDataType::VTD_S1, m.vtd_s1, 24));
    ctx.step(m, "IOAS_ALLOC", |c| {
        c.ids.ioas[0] = c.ioas_alloc()?;
        Ok(())
    })?;
    ctx.step(m, "HWPT_ALLOC nest parent", |c| {
        c.ids.hwpt[1] = c.hwpt_alloc(c.ids.dev[0], c.ids.ioas[0], NEST_PARENT, None, 0)?;
        Ok(())
    })?;
    ctx.step(m, "FAULT_QUEUE_ALLOC", |c| {
        c.ids.fault = c.fault_alloc()?;
        Ok(())
    })?;
    ctx.step(m, "HWPT_ALLOC nested with fault", |c| {
        let flags = FAULT_ID_VALID | PASID_FLAG;
        c.ids.hwpt[2] = c.hwpt_alloc(c.ids.dev[0], c.ids.hwpt[1], flags, vtd_s1, c.ids.fault)?;
        Ok(())
    })?;
    ctx.step(m, "ATTACH at a PASID", |c| {
        c.fd.attach(c.ids.dev[0], c.ids.hwpt[2], Some(9))?;
        Ok(())
    })?;
    ctx.step(m, "DETACH PASID", |c| c.fd.detach(c.ids.dev[0], Some(9)))?;
    ctx.step(m, "DESTROY nested", |c| c.destroy(c.ids.hwpt[2]))
}

/// viommu.c and eventq.c on the SMMUv3 host: a nesting parent, a vIOMMU, a vDEVICE, a
/// vEVENTQ, a fault queue, a nested HWPT on the vIOMMU reporting to it; attach, replace,
/// detach. (The vEVENTQ and fault queue stay: their open files hold them until close.)
fn viommu_vdevice_veventq(m: &Machine, ctx: &mut Ctx) -> Result<(), StepError> {
    let ste = Some((HwptDataType::ARM_SMMUV3, m.smmu_ste, 16));
    ctx.step(m, "IOAS_ALLOC", |c| {
        c.ids.ioas[0] = c.ioas_alloc()?;
        Ok(())
    })?;
    ctx.step(m, "IOAS_MAP", |c| {
        c.map(c.ids.ioas[0], FIXED_RW, m.buf, BUF_LEN, IOVA)?;
        Ok(())
    })?;
    ctx.step(m, "HWPT_ALLOC nest parent", |c| {
        c.ids.hwpt[1] = c.hwpt_alloc(c.ids.dev[0], c.ids.ioas[0], NEST_PARENT, None, 0)?;
        Ok(())
    })?;
    ctx.step(m, "VIOMMU_ALLOC", |c| {
        c.ids.viommu = c.viommu_alloc(c.ids.dev[0], c.ids.hwpt[1])?;
        Ok(())
    })?;
    ctx.step(m, "VDEVICE_ALLOC", |c| {
        c.ids.vdevice = c.vdevice_alloc(c.ids.viommu, c.ids.dev[0], 0x3)?;
        Ok(())
    })?;
    ctx.step(m, "VEVENTQ_ALLOC", |c| {
        c.ids.veventq = c.veventq_alloc(c.ids.viommu)?;
        Ok(())
    })?;
    ctx.step(m, "FAULT_QUEUE_ALLOC", |c| {
        c.ids.fault = c.fault_alloc()?;
        Ok(())
    })?;
    ctx.step(m, "HWPT_ALLOC nested on the vIOMMU", |c| {
        c.ids.hwpt[2] =
            c.hwpt_alloc(c.ids.dev[0], c.ids.viommu, FAULT_ID_VALID, ste, c.ids.fault)?;
        Ok(())
    })?;
    ctx.step(m, "ATTACH nested", |c| {
        c.fd.attach(c.ids.dev[0], c.ids.hwpt[2], None)?;
        Ok(())
    })?;
    ctx.step(m, "REPLACE nest parent", |c| {
        c.fd.replace(c.ids.dev[0], c.ids.hwpt[1], None)?;
        Ok(())
    })?;
    ctx.step(m, "DETACH", |c| c.fd.detach(c.ids.dev[0], None))?;
    ctx.step(m, "DESTROY nested", |c| c.destroy(c.ids.hwpt[2]))?;
    ctx.step(m, "DESTROY vDEVICE", |c| c.destroy(c.ids.vdevice))
}

/// device.c: bind, attach to an IOAS with a mapping, replace with another IOAS, unbind while
/// attached.
fn device_bind_attach_unbind(m: &Machine, ctx: &mut Ctx) -> Result<(), StepError> {
    ctx.step(m, "bind", |c| {
        c.ids.dev[0] = c.fd.bind_device(m.devices[0])?;
        Ok(())
    })?;
    ctx.step(m, "IOAS_ALLOC", |c| {
        c.ids.ioas[0] = c.ioas_alloc()?;
        Ok(())
    })?;
    ctx.step(m, "IOAS_MAP", |c| {
        c.map(c.ids.ioas[0], FIXED_RW, m.buf, 4 * PAGE, IOVA)?;
        Ok(())
    })?;
    ctx.step(m, "ATTACH ioas", |c| {
        c.fd.attach(c.ids.dev[0], c.ids.ioas[0], None)?;
        Ok(())
    })?;
    ctx.step(m, "IOAS_ALLOC 2", |c| {
        c.ids.ioas[1] = c.ioas_alloc()?;
        Ok(())
    })?;
    ctx.step(m, "REPLACE with ioas 2", |c| {
        c.fd.replace(c.ids.dev[0], c.ids.ioas[1], None)?;
        Ok(())
    })?;
    ctx.step(m, "unbind", |c| c.fd.unbind_device(c.ids.dev[0]))
}

/// iopt_map_file_pages(): a memfd mapped into an IOAS with a domain (pinned from the file,
/// charged to the context's process), the domain detached and attached again.
fn map_file_domain(m: &Machine, ctx: &mut Ctx) -> Result<(), StepError> {
    ctx.step(m, "IOAS_ALLOC", |c| {
        c.ids.ioas[0] = c.ioas_alloc()?;
        Ok(())
    })?;
    ctx.step(m, "ATTACH ioas", |c| {
        c.fd.attach(c.ids.dev[0], c.ids.ioas[0], None)?;
        Ok(())
    })?;
    ctx.step(m, "IOAS_MAP_FILE", |c| {
        c.map_file(c.ids.ioas[0], m.file_buf, BUF_LEN, IOVA)
    })?;
    ctx.step(m, "DETACH", |c| c.fd.detach(c.ids.dev[0], None))?;
    ctx.step(m, "ATTACH again", |c| {
        c.fd.attach(c.ids.dev[0], c.ids.ioas[0], None)?;
        Ok(())
    })?;
    ctx.step(m, "IOAS_UNMAP", |c| c.unmap(c.ids.ioas[0], IOVA, BUF_LEN))
}

/// dirty.c: a dirty-tracking HWPT attached, tracking on, the bitmap read (and cleared), off.
fn dirty_tracking(m: &Machine, ctx: &mut Ctx) -> Result<(), StepError> {
    let dirty = HwptAllocFlags::DIRTY_TRACKING.bits();
    ctx.step(m, "IOAS_ALLOC", |c| {
        c.ids.ioas[0] = c.ioas_alloc()?;
        Ok(())
    })?;
    ctx.step(m, "IOAS_MAP", |c| {
        c.map(c.ids.ioas[0], FIXED_RW, m.buf, 8 * PAGE, IOVA)?;
        Ok(())
    })?;
    ctx.step(m, "HWPT_ALLOC dirty tracking", |c| {
        c.ids.hwpt[0] = c.hwpt_alloc(c.ids.dev[0], c.ids.ioas[0], dirty, None, 0)?;
        Ok(())
    })?;
    ctx.step(m, "ATTACH", |c| {
        c.fd.attach(c.ids.dev[0], c.ids.hwpt[0], None)?;
        Ok(())
    })?;
    ctx.step(m, "SET_DIRTY_TRACKING on", |c| {
        c.set_dirty_tracking(c.ids.hwpt[0], true)
    })?;
    ctx.step(m, "GET_DIRTY_BITMAP", |c| {
        c.dirty_bitmap(c.ids.hwpt[0], IOVA, 8 * PAGE, m.bitmap)
    })?;
    ctx.step(m, "SET_DIRTY_TRACKING off", |c| {
        c.set_dirty_tracking(c.ids.hwpt[0], false)
    })
}

/// An IOAS with the buffer mapped at [`IOVA`], before the sweep starts (as Linux's
/// `access_pin` maps before `fail_nth_enable()`).
fn mapped_ioas(m: &Machine, ctx: &mut Ctx) -> Result<(), StepError> {
    ctx.ids.ioas[0] = ctx.ioas_alloc().unwrap();
    ctx.map(ctx.ids.ioas[0], FIXED_RW, m.buf, BUF_LEN, IOVA)
        .unwrap();
    Ok(())
}

/// As [`mapped_ioas`], with a device's domain attached (pages pinned by the domain).
fn mapped_ioas_with_domain(m: &Machine, ctx: &mut Ctx) -> Result<(), StepError> {
    bind_first(m, ctx)?;
    mapped_ioas(m, ctx)?;
    ctx.fd
        .attach(ctx.ids.dev[0], ctx.ids.ioas[0], None)
        .unwrap();
    Ok(())
}

/// device.c accesses: create, attach, pin, rw both ways, unpin, unmap under a pin.
fn access_pin_rw(m: &Machine, ctx: &mut Ctx) -> Result<(), StepError> {
    let driver = Arc::new(Emulated::default());
    let mem = m.mm.frames().memory().clone();
    ctx.step(m, "access create", |c| {
        let access = c.fd.access_create(driver.clone(), mem)?;
        c.accesses.push(access);
        Ok(())
    })?;
    ctx.step(m, "access attach", |c| c.accesses[0].attach(c.ids.ioas[0]))?;
    ctx.step(m, "access pin", |c| {
        c.accesses[0].pin_pages(IOVA, 16 * PAGE, true)?;
        driver.pinned.lock().unwrap().push((IOVA, 16 * PAGE));
        Ok(())
    })?;
    ctx.step(m, "access rw read", |c| {
        let mut bytes = [0u8; 3 * PAGE as usize];
        c.accesses[0].rw(IOVA + 100, RwBuf::Read(&mut bytes))
    })?;
    ctx.step(m, "access rw write", |c| {
        c.accesses[0].rw(
            IOVA + 20 * PAGE + 5,
            RwBuf::Write(&[0x5a; 2 * PAGE as usize]),
        )
    })?;
    ctx.step(m, "access unpin", |c| {
        c.accesses[0].unpin_pages(IOVA, 16 * PAGE);
        driver.pinned.lock().unwrap().clear();
        Ok(())
    })?;
    ctx.step(m, "access pin again", |c| {
        c.accesses[0].pin_pages(IOVA + PAGE, PAGE, false)?;
        driver.pinned.lock().unwrap().push((IOVA + PAGE, PAGE));
        Ok(())
    })?;
    // The driver's unmap callback drops the pin.
    ctx.step(m, "IOAS_UNMAP under a pin", |c| {
        c.unmap(c.ids.ioas[0], IOVA, BUF_LEN)
    })?;
    ctx.step(m, "access detach", |c| {
        c.accesses[0].detach();
        Ok(())
    })
}

#[test]
fn ioas_map_copy_unmap_fails_cleanly_at_every_allocation() {
    let m = Machine::vtd();
    let points = sweep(&m, nothing, ioas_map_copy_unmap);
    assert!(points >= 5, "{points}");
}

#[test]
fn map_with_two_domains_fails_cleanly_at_every_allocation() {
    let m = Machine::vtd();
    let points = sweep(&m, bind_both, map_two_domains);
    assert!(points >= 10, "{points}");
}

#[test]
fn map_file_with_a_domain_fails_cleanly_at_every_allocation() {
    let m = Machine::vtd();
    let points = sweep(&m, bind_first, map_file_domain);
    assert!(points >= 64, "{points}");
}

#[test]
fn dirty_tracking_fails_cleanly_at_every_allocation() {
    let m = Machine::vtd();
    let points = sweep(&m, bind_first, dirty_tracking);
    assert!(points >= 5, "{points}");
}

#[test]
fn hwpt_alloc_attach_replace_fails_cleanly_at_every_allocation() {
    let m = Machine::vtd();
    let points = sweep(&m, bind_first, hwpt_paging_nested);
    assert!(points >= 10, "{points}");
}

#[test]
fn fault_queue_fails_cleanly_at_every_allocation() {
    let m = Machine::vtd();
    let points = sweep(&m, bind_first, fault_queue);
    assert!(points >= 5, "{points}");
}

#[test]
fn viommu_vdevice_veventq_fail_cleanly_at_every_allocation() {
    let m = Machine::smmuv3();
    let points = sweep(&m, bind_first, viommu_vdevice_veventq);
    assert!(points >= 10, "{points}");
}

#[test]
fn first_attach_on_vtd_fails_cleanly_at_every_allocation() {
    let points = sweep_fresh(Machine::vtd, bind_first, hwpt_paging_nested);
    assert!(points >= 10, "{points}");
}

#[test]
fn first_attach_on_smmuv3_fails_cleanly_at_every_allocation() {
    let points = sweep_fresh(Machine::smmuv3, bind_first, viommu_vdevice_veventq);
    assert!(points >= 10, "{points}");
}

#[test]
fn device_bind_attach_unbind_fails_cleanly_at_every_allocation() {
    let m = Machine::vtd();
    let points = sweep(&m, nothing, device_bind_attach_unbind);
    assert!(points >= 5, "{points}");
}

#[test]
fn pinning_pages_not_yet_faulted_in_fails_cleanly_at_every_allocation() {
    let points = sweep_faulting(bind_first, map_faulting_pages);
    assert!(points >= 64, "{points}");
}

/// The IOMMU core's device probe (`iommu_probe_device()`) and the driver's per-device
/// structures (a VT-d context table for a new bus and the device's PASID directory, an SMMUv3
/// stream table entry and CD table), on a fresh machine for every N: a failed probe returns
/// `ENOMEM` and leaves the device unknown, and probing again leaves the machine as a
/// successful first probe does. Returns the allocation points passed.
fn probe_sweep(make: fn() -> Machine) -> u64 {
    let rid = Rid::from_bdf(1, 0, 0).unwrap();
    let caps = DeviceCaps {
        pasid_bits: 20,
        ats: false,
        pri: false,
    };
    let reference = {
        let m = make();
        m.iommu.add_device(rid, caps, 32).unwrap();
        m.usage()
    };
    for n in 1..=MAX_N {
        let m = make();
        fail_nth::arm(n);
        let result = m.iommu.add_device(rid, caps, 32);
        if !fail_nth::disarm().fired {
            result.unwrap();
            assert_eq!(m.usage(), reference);
            eprintln!("swept {} allocation points", n - 1);
            return n - 1;
        }
        assert_eq!(result.map_err(|e| e.errno()), Err(Errno::ENOMEM), "N = {n}");
        assert_eq!(m.iommu.device_caps(rid), None, "N = {n}");
        m.iommu.add_device(rid, caps, 32).unwrap();
        assert_eq!(
            m.usage(),
            reference,
            "N = {n}: the failed probe left this behind"
        );
    }
    panic!("more than {MAX_N} allocation points");
}

#[test]
fn device_probe_on_vtd_fails_cleanly_at_every_allocation() {
    let points = probe_sweep(Machine::vtd);
    assert!(points >= 2, "{points}");
}

#[test]
fn device_probe_on_smmuv3_fails_cleanly_at_every_allocation() {
    // the core's only: the driver sets up the stream's entry in tables it allocated when it
    // probed the unit
    let points = probe_sweep(Machine::smmuv3);
    assert!(points >= 1, "{points}");
}

#[test]
fn access_pin_and_rw_fail_cleanly_at_every_allocation() {
    let m = Machine::vtd();
    let points = sweep(&m, mapped_ioas, access_pin_rw);
    assert!(points >= 5, "{points}");
}

#[test]
fn access_pin_under_a_domain_fails_cleanly_at_every_allocation() {
    let m = Machine::vtd();
    let points = sweep(&m, mapped_ioas_with_domain, access_pin_rw);
    assert!(points >= 5, "{points}");
}
