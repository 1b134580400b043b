//! Devices and software misbehaving: too many page requests, responses for unknown groups,
//! PASIDs beyond a device's width, DMA after unbind — clear errors, counted, nothing
//! corrupted, the rest of the system unaffected.

use vsva_demo::regs::{DeviceError, Op};
use vsva_demo::{Command, DemoDriver, DriverError};
use vsva_host::Platform;
use vsva_iommu::ResponseCode;
use vsva_mem::{Rid, Va};
use vsva_mm::{MapFlags, Prot};
use vsva_pcie::{PageRequest, PageRequestOutcome};
use vsva_vtd::VtdConfig;

fn fill(dst: u64, len: u64, byte: u64) -> Command {
    Command {
        op: Op::Fill,
        src: 0,
        dst,
        len,
        pattern: byte,
        privileged: false,
    }
}

fn platform() -> Platform {
    Platform::new(4 << 30, VtdConfig::default()).unwrap()
}

#[test]
fn more_page_requests_than_the_allocation_are_refused_and_counted() {
    let p = platform();
    let rid = Rid::from_bdf(0, 3, 0).unwrap();
    let dev = p.add_device(rid, 2, 16);
    let drv = DemoDriver::probe(&p, dev, false).unwrap();
    let proc_ = p.mm.spawn().unwrap();
    let ctx = drv.open(&p, &proc_).unwrap();
    let buf = proc_
        .mmap(None, 8 * 4096, Prot::RW, MapFlags::empty())
        .unwrap();
    // A misbehaving device: four requests of one group outstanding with an allocation of 2.
    for i in 0..4u64 {
        let out = p.unit.page_request(&PageRequest {
            rid,
            pasid: Some(ctx.pasid()),
            addr: buf.raw() + i * 4096,
            read: true,
            write: true,
            exec: false,
            privileged: false,
            last: i == 3,
            prgi: 7,
        });
        assert_eq!(out, PageRequestOutcome::Queued);
    }
    p.service();
    let s = p.iommu.stats();
    assert!(s.iopf.over_limit >= 2, "{s:?}");
    assert_eq!(
        s.responses_invalid, 1,
        "the over-limit group's last request is answered Invalid"
    );
    // nothing was faulted in on the device's behalf beyond what was accepted, and the device
    // and the process keep working
    drv.run(&p, &ctx, &fill(buf.raw() + 4 * 4096, 4096, 3))
        .unwrap();
    let mut b = [0u8; 1];
    proc_
        .read_bytes(Va::new(buf.raw() + 4 * 4096), &mut b)
        .unwrap();
    assert_eq!(b[0], 3);
}

#[test]
fn responses_for_unknown_groups_are_dropped_and_flagged() {
    let p = platform();
    let rid = Rid::from_bdf(0, 3, 0).unwrap();
    let dev = p.add_device(rid, 8, 16);
    let drv = DemoDriver::probe(&p, dev.clone(), false).unwrap();
    let proc_ = p.mm.spawn().unwrap();
    let ctx = drv.open(&p, &proc_).unwrap();
    // host side: a response for a group nobody asked about is not sent
    assert!(
        !p.iommu
            .respond(rid, Some(ctx.pasid()), 300, ResponseCode::Success)
    );
    assert_eq!(p.iommu.stats().iopf.late_responses, 1);
    // device side: a page group response the device never asked for (sent by a buggy
    // driver straight through the queue) sets UPRGI in its PRI status
    p.driver
        .page_response(
            rid,
            Some(ctx.pasid()),
            300,
            vsva_pcie::ResponseCode::Success,
        )
        .unwrap();
    assert_eq!(
        dev.pri_status(),
        vsva_demo::PriStatus {
            response_failure: false,
            unexpected_prg_index: true,
            stopped: false,
        }
    );
    // the device still works
    let buf = proc_.mmap(None, 4096, Prot::RW, MapFlags::empty()).unwrap();
    drv.run(&p, &ctx, &fill(buf.raw(), 4096, 1)).unwrap();
}

#[test]
fn a_pasid_beyond_the_device_width_is_refused() {
    let p = platform();
    let wide = p.add_device(Rid::from_bdf(0, 3, 0).unwrap(), 8, 16);
    let narrow = p.add_device_with_width(Rid::from_bdf(0, 4, 0).unwrap(), 8, 16, 1);
    let dw = DemoDriver::probe(&p, wide, false).unwrap();
    let dn = DemoDriver::probe(&p, narrow.clone(), false).unwrap();
    // PASID 1 fits a 1-bit device; the second address space gets PASID 2, which does not
    let a = p.mm.spawn().unwrap();
    let b = p.mm.spawn().unwrap();
    let ca = dw.open(&p, &a).unwrap();
    let cb = dw.open(&p, &b).unwrap();
    assert_eq!((ca.pasid().raw(), cb.pasid().raw()), (1, 2));
    assert!(dn.open(&p, &a).is_ok());
    match dn.open(&p, &b) {
        Err(DriverError::Iommu(e)) => assert_eq!(e.errno(), vsva_mem::Errno::EOVERFLOW),
        other => panic!("{other:?}"),
    }
    // a driver that programs the too-wide PASID anyway: the device refuses to use it
    narrow.mmio_write(vsva_demo::regs::PASID, 2 | vsva_demo::regs::PASID_VALID);
    narrow.mmio_write(vsva_demo::regs::COMMAND, Op::Fill as u64);
    narrow.mmio_write(vsva_demo::regs::LEN, 4096);
    narrow.mmio_write(vsva_demo::regs::DST, 0x1000);
    narrow.mmio_write(vsva_demo::regs::DOORBELL, 1);
    let r = dn.wait(&p);
    assert!(
        matches!(r, Err(DriverError::Device(DeviceError::BadCommand))),
        "{r:?}"
    );
}

#[test]
fn dma_after_unbind_is_refused_and_writes_nothing() {
    let p = platform();
    let dev = p.add_device(Rid::from_bdf(0, 3, 0).unwrap(), 8, 16);
    let drv = DemoDriver::probe(&p, dev, false).unwrap();
    let proc_ = p.mm.spawn().unwrap();
    let ctx = drv.open(&p, &proc_).unwrap();
    let buf = proc_
        .mmap(None, 4096, Prot::RW, MapFlags::POPULATE)
        .unwrap();
    drv.run(&p, &ctx, &fill(buf.raw(), 4096, 0x44)).unwrap();
    drv.close(&p, ctx).unwrap();
    // the same PASID, reused by a stale driver context: the IOMMU refuses the translation
    match drv.run(&p, &ctx, &fill(buf.raw(), 4096, 0x55)) {
        Err(DriverError::Device(DeviceError::TranslationRefused)) => {}
        other => panic!("{other:?}"),
    }
    let mut b = [0u8; 1];
    proc_.read_bytes(buf, &mut b).unwrap();
    assert_eq!(b[0], 0x44, "nothing written after unbind");
    // the IOMMU recorded why: the PASID's entry is gone (SPT.2)
    let faults = p.driver.take_faults_recorded();
    assert!(faults.iter().any(|f| f.reason == 0x59), "{faults:?}");
}

/// Runs `f` on another thread and fails (rather than hanging the test run) if it has not
/// finished within `secs` seconds.
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(secs))
        .expect("deadlock: did not finish in time")
}

#[test]
fn an_automatic_response_while_the_device_asks_does_not_deadlock_it() {
    within(60, || {
        let p = platform();
        let rid = Rid::from_bdf(0, 3, 0).unwrap();
        let dev = p.add_device(rid, 64, 16);
        let drv = DemoDriver::probe(&p, dev, false).unwrap();
        let proc_ = p.mm.spawn().unwrap();
        let ctx = drv.open(&p, &proc_).unwrap();
        // fill the page request queue with requests nobody drains, until it overflows
        let mut i = 0u64;
        loop {
            let pr = PageRequest {
                rid,
                pasid: Some(ctx.pasid()),
                addr: 0x1000 * i,
                read: true,
                write: false,
                exec: false,
                privileged: false,
                last: false,
                prgi: 1,
            };
            if p.unit.page_request(&pr) == PageRequestOutcome::Dropped || i > 100_000 {
                break;
            }
            i += 1;
        }
        // the device's own page request now gets the unit's automatic response at once
        let buf = proc_.mmap(None, 4096, Prot::RW, MapFlags::empty()).unwrap();
        let r = drv.run(&p, &ctx, &fill(buf.raw(), 4096, 1));
        assert!(r.is_err(), "the page was never made present: {r:?}");
    });
}

#[test]
fn munmap_while_the_device_faults_does_not_deadlock() {
    within(120, || {
        let p = std::sync::Arc::new(platform());
        let rid = Rid::from_bdf(0, 3, 0).unwrap();
        let dev = p.add_device(rid, 64, 16);
        let drv = DemoDriver::probe(p.as_ref(), dev, false).unwrap();
        let proc_ = p.mm.spawn().unwrap();
        let ctx = drv.open(p.as_ref(), &proc_).unwrap();
        let (p2, proc2) = (p.clone(), proc_.clone());
        let churn = std::thread::spawn(move || {
            for _ in 0..300 {
                let v = proc2
                    .mmap(None, 4096, Prot::RW, MapFlags::POPULATE)
                    .unwrap();
                proc2.munmap(v, 4096).unwrap();
            }
            drop(p2);
        });
        for _ in 0..100 {
            let buf = proc_
                .mmap(None, 4 * 4096, Prot::RW, MapFlags::empty())
                .unwrap();
            drv.run(p.as_ref(), &ctx, &fill(buf.raw(), 4 * 4096, 2))
                .unwrap();
            proc_.munmap(buf, 4 * 4096).unwrap();
        }
        churn.join().unwrap();
    });
}

#[test]
fn a_device_without_atc_entries_still_completes_dma() {
    let p = platform();
    let rid = Rid::from_bdf(0, 3, 0).unwrap();
    let dev = p.add_device(rid, 8, 0);
    let drv = DemoDriver::probe(&p, dev, false).unwrap();
    let proc_ = p.mm.spawn().unwrap();
    let ctx = drv.open(&p, &proc_).unwrap();
    let buf = proc_.mmap(None, 8192, Prot::RW, MapFlags::empty()).unwrap();
    drv.run(&p, &ctx, &fill(buf.raw(), 8192, 7)).unwrap();
    let mut b = [0u8; 1];
    proc_.read_bytes(Va::new(buf.raw() + 8191), &mut b).unwrap();
    assert_eq!(b[0], 7);
}
