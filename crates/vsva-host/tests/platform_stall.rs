//! The platform device's I/O page faults through stall, end to end on an SMMUv3 host: the
//! device's DMA faults, the SMMU stalls it and writes a stall event, the host's handler
//! hands it to the IOMMU core as a page request, the memory manager fixes it, the driver
//! answers with CMD_RESUME, and the device's retried transaction completes — or aborts.

use std::sync::Arc;

use vsva_demo::regs::{self, DeviceError, Op};
use vsva_demo::{Command, DemoDriver, DriverError, Machine, PlatformDevice, Progress};
use vsva_host::{Host, Platform, Smmuv3Kind};
use vsva_mem::{Rid, Va};
use vsva_mm::{MapFlags, Prot};
use vsva_smmuv3::Smmuv3Config;
use vsva_vtd::VtdConfig;

const STREAM: Rid = Rid::from_raw(0x800);

fn host() -> Host<Smmuv3Kind> {
    Host::<Smmuv3Kind>::new(4 << 30, Smmuv3Config::default()).unwrap()
}

fn platform_driver(host: &Host<Smmuv3Kind>) -> (Arc<PlatformDevice>, DemoDriver) {
    let dev = host
        .add_platform_device(STREAM, 20)
        .expect("the SMMU can stall");
    let drv = DemoDriver::probe_platform(host, dev.clone(), 20, 32).unwrap();
    (dev, drv)
}

#[test]
fn a_fresh_page_is_written_after_a_stall_and_its_resume() {
    let host = host();
    let (dev, drv) = platform_driver(&host);
    let p = host.mm().spawn().unwrap();
    let ctx = drv.open(&host, &p).unwrap();
    let buf = p.mmap(None, 4096, Prot::RW, MapFlags::empty()).unwrap();
    drv.submit(&ctx, &Command::new(Op::WritePattern, 0, buf.raw(), 4096, 9));
    // the DMA stalls: the device waits, the SMMU holds one transaction
    assert_eq!(dev.run(), Progress::Waiting);
    assert_eq!(host.unit.stats().stalled, 1);
    assert_eq!(dev.mmio_read(regs::STATUS), regs::Status::Busy as u64);
    // the host's handler reads the stall event and resumes it
    assert_eq!(host.service(), 1);
    assert_eq!(host.unit.stats().stalled, 0);
    assert_eq!(dev.run(), Progress::Done);
    let mut got = vec![0u8; 4096];
    p.read_bytes(buf, &mut got).unwrap();
    assert!((0..4096).all(|i| got[i] == regs::pattern_byte(9, i as u64)));
    assert_eq!(dev.stats().stalls, 1);
    let s = host.driver.stall_stats();
    assert_eq!((s.stall_events, s.resumes), (1, 1));
    // no PRI on this device: nothing went through the PRI queue
    assert_eq!(host.unit.stats().page_requests, 0);
    assert_eq!(dev.stats().page_requests, 0);
}

#[test]
fn a_write_to_a_read_only_page_stalls_then_aborts_and_writes_nothing() {
    let host = host();
    let (dev, drv) = platform_driver(&host);
    let p = host.mm().spawn().unwrap();
    let ctx = drv.open(&host, &p).unwrap();
    let ro = p.mmap(None, 4096, Prot::READ, MapFlags::POPULATE).unwrap();
    let r = drv.run(
        &host,
        &ctx,
        &Command::new(Op::Fill, 0, ro.raw(), 4096, 0xff),
    );
    assert!(
        matches!(r, Err(DriverError::Device(DeviceError::StallAborted))),
        "{r:?}"
    );
    assert_eq!(dev.mmio_read(regs::ERROR), DeviceError::StallAborted as u64);
    let mut b = vec![1u8; 4096];
    p.read_bytes(ro, &mut b).unwrap();
    assert!(b.iter().all(|&x| x == 0), "the read-only page was written");
    assert_eq!(host.driver.stall_stats().resumes, 1);
    assert_eq!(host.unit.stats().stalled, 0);
    // reading it works without a stall: the page is mapped
    let before = dev.stats().stalls;
    drv.run(
        &host,
        &ctx,
        &Command::new(Op::ReadChecksum, ro.raw(), 0, 4096, 0),
    )
    .unwrap();
    assert_eq!(dev.stats().stalls, before);
}

#[test]
fn exit_with_a_stalled_transaction_terminates_it_and_the_device_goes_on() {
    let host = host();
    let (dev, drv) = platform_driver(&host);
    let victim = host.mm().spawn().unwrap();
    let vctx = drv.open(&host, &victim).unwrap();
    let buf = victim
        .mmap(None, 4096, Prot::RW, MapFlags::empty())
        .unwrap();
    drv.submit(&vctx, &Command::new(Op::Fill, 0, buf.raw(), 4096, 3));
    assert_eq!(dev.run(), Progress::Waiting);
    assert_eq!(host.unit.stats().stalled, 1);
    victim.exit().unwrap();
    // the stall is answered with an abort: the command fails, nothing stays stalled
    let r = drv.wait(&host);
    assert!(
        matches!(r, Err(DriverError::Device(DeviceError::StallAborted))),
        "{r:?}"
    );
    assert_eq!(host.unit.stats().stalled, 0);
    drv.close(&host, vctx).unwrap();
    // another process's work goes through the same device
    let p = host.mm().spawn().unwrap();
    let ctx = drv.open(&host, &p).unwrap();
    let buf = p.mmap(None, 2 * 4096, Prot::RW, MapFlags::empty()).unwrap();
    drv.run(&host, &ctx, &Command::new(Op::Fill, 0, buf.raw(), 8192, 5))
        .unwrap();
    let mut b = [0u8; 1];
    p.read_bytes(Va::new(buf.raw() + 8191), &mut b).unwrap();
    assert_eq!(b, [5]);
    let s = host.driver.stall_stats();
    assert_eq!(s.stall_events, s.resumes);
}

#[test]
fn a_platform_device_stalls_only_where_firmware_says_it_can() {
    // A VT-d host has no stall: no platform device.
    let vtd = Platform::new(1 << 30, VtdConfig::default()).unwrap();
    assert!(vtd.add_platform_device(STREAM, 20).is_none());
    let err = Machine::add_platform_device(&vtd, STREAM, 20)
        .err()
        .unwrap();
    assert!(err.contains("cannot stall"), "{err}");
    // On the SMMU, a PCIe function is never stalled: its faults go through PRI.
    let host = host();
    let pcie = host.add_device(Rid::from_raw(0x18), 16, 16);
    let drv = DemoDriver::probe(&host, pcie.clone(), false).unwrap();
    let p = host.mm().spawn().unwrap();
    let ctx = drv.open(&host, &p).unwrap();
    let buf = p.mmap(None, 4096, Prot::RW, MapFlags::empty()).unwrap();
    drv.run(&host, &ctx, &Command::new(Op::Fill, 0, buf.raw(), 4096, 1))
        .unwrap();
    assert_eq!(pcie.stats().page_requests, 1);
    assert_eq!(host.driver.stall_stats().stall_events, 0);
    assert!(!host.driver.dma_can_stall(Rid::from_raw(0x18)));
}
