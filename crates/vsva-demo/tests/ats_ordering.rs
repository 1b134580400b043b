//! The ATS ordering rules (PCIe Base 6.0 §10.3.1) with the racing call placed exactly at each
//! point of the device's protocol by the ATC's hook (issue 12, defects 1 and 2):
//! a completion an invalidation overtook is never cached or used, and an invalidation (so the
//! munmap that sent it) returns only after the access that used the old translation.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use vsva_demo::regs::{DeviceError, Op};
use vsva_demo::{Command, DemoDriver, DriverError};
use vsva_host::Platform;
use vsva_mem::{PhysMem, Rid, Va};
use vsva_mm::{MapFlags, Process, Prot};
use vsva_pcie::AtsPoint;
use vsva_vtd::VtdConfig;

const POISON: u8 = 0xa5;

/// A racing munmap: the frame's bytes the moment it returned, and whether it succeeded.
type Racer = thread::JoinHandle<(Vec<u8>, bool)>;

fn fill(dst: Va, byte: u8) -> Command {
    Command::new(Op::Fill, 0, dst.raw(), 4096, byte as u64)
}

fn frame_of(p: &Process, va: Va) -> u64 {
    let leaf = p.leaf(va).expect("mapped");
    assert!(leaf.present);
    leaf.pa
}

fn bytes(mem: &dyn PhysMem, frame: u64) -> Vec<u8> {
    let mut b = vec![0; 4096];
    mem.read(frame, &mut b).unwrap();
    b
}

struct Rig {
    p: Arc<Platform>,
    dev: Arc<vsva_demo::DemoDevice>,
    drv: DemoDriver,
    process: Arc<Process>,
    ctx: vsva_demo::Context,
    buf: Va,
    frame: u64,
}

fn rig() -> Rig {
    let p = Arc::new(Platform::new(4 << 30, VtdConfig::default()).unwrap());
    let dev = p.add_device(Rid::from_bdf(0, 3, 0).unwrap(), 64, 64);
    let drv = DemoDriver::probe(p.as_ref(), dev.clone(), false).unwrap();
    let process = p.mm.spawn().unwrap();
    let ctx = drv.open(p.as_ref(), &process).unwrap();
    let buf = process
        .mmap(None, 4096, Prot::RW, MapFlags::POPULATE)
        .unwrap();
    let frame = frame_of(&process, buf);
    Rig {
        p,
        dev,
        drv,
        process,
        ctx,
        buf,
        frame,
    }
}

#[test]
fn a_completion_overtaken_by_a_munmap_is_neither_cached_nor_written_through() {
    let r = rig();
    // At the completion for the buffer — before the device caches it — the process unmaps
    // the buffer (this thread: the device holds no ATC access here) and the freed frame is
    // poisoned. The device must ask again, find nothing, and write nothing.
    let armed = Mutex::new(Some((r.process.clone(), r.p.mem.clone())));
    let (buf, frame) = (r.buf, r.frame);
    r.dev
        .set_ats_hook(Arc::new(move |point| {
            if let AtsPoint::CompletionReceived { addr, .. } = point {
                if addr & !0xfff == buf.raw() {
                    if let Some((process, mem)) = armed.lock().unwrap().take() {
                        process.munmap(buf, 4096).unwrap();
                        mem.write(frame, &[POISON; 4096]).unwrap();
                    }
                }
            }
        }))
        .ok()
        .unwrap();
    let got = r.drv.run(r.p.as_ref(), &r.ctx, &fill(r.buf, 0x11));
    assert!(
        matches!(
            got,
            Err(DriverError::Device(DeviceError::PageRequestInvalid))
        ),
        "the page is gone: the page request for it is answered Invalid, got {got:?}"
    );
    assert!(
        bytes(r.p.mem.as_ref(), r.frame)
            .iter()
            .all(|&b| b == POISON),
        "the freed frame was written through a stale completion"
    );
    assert_eq!(r.dev.atc_len(), 0, "a stale completion was cached");
}

#[test]
fn a_munmap_returns_only_after_the_write_that_used_the_old_translation_has_landed() {
    let r = rig();
    // Warm the ATC: the next command hits and runs without asking the IOMMU.
    r.drv.run(r.p.as_ref(), &r.ctx, &fill(r.buf, 0x11)).unwrap();
    assert_eq!(r.dev.atc_len(), 1);
    // With the device's translation in hand and memory not yet written, another thread
    // unmaps the buffer; once its invalidation is waiting for the device, the device writes.
    let (waiting_tx, waiting_rx) = mpsc::channel::<()>();
    let (waiting_tx, waiting_rx) = (Mutex::new(waiting_tx), Mutex::new(waiting_rx));
    let racer: Arc<Mutex<Option<Racer>>> = Arc::default();
    let armed = Mutex::new(Some((r.process.clone(), r.p.mem.clone())));
    let (buf, frame, racer_slot) = (r.buf, r.frame, racer.clone());
    r.dev
        .set_ats_hook(Arc::new(move |point| match point {
            AtsPoint::Accessing { addr, .. } if addr & !0xfff == buf.raw() => {
                let Some((process, mem)) = armed.lock().unwrap().take() else {
                    return;
                };
                let t = thread::spawn(move || {
                    let ok = process.munmap(buf, 4096).is_ok();
                    // The moment munmap returns: what the frame holds.
                    (bytes(mem.as_ref(), frame), ok)
                });
                *racer_slot.lock().unwrap() = Some(t);
                // Without the ordering the invalidation never waits: give up after a while
                // and let the assertions below tell.
                let waited = waiting_rx.lock().unwrap();
                let _ = waited.recv_timeout(Duration::from_secs(2));
            }
            AtsPoint::InvalidationWaits => {
                let _ = waiting_tx.lock().unwrap().send(());
            }
            _ => {}
        }))
        .ok()
        .unwrap();
    let got = r.drv.run(r.p.as_ref(), &r.ctx, &fill(r.buf, 0x22));
    assert!(matches!(got, Ok(4096)), "{got:?}");
    let t = racer.lock().unwrap().take().expect("the racing munmap ran");
    let (at_return, ok) = t.join().unwrap();
    assert!(ok);
    assert!(
        at_return.iter().all(|&b| b == 0x22),
        "munmap returned before the device's write with the old translation landed"
    );
    // From now on the frame is free: poisoned, and never written again.
    r.p.mem.write(r.frame, &[POISON; 4096]).unwrap();
    assert!(r.drv.run(r.p.as_ref(), &r.ctx, &fill(r.buf, 0x33)).is_err());
    assert!(
        bytes(r.p.mem.as_ref(), r.frame)
            .iter()
            .all(|&b| b == POISON)
    );
}
