//! Holding an address space ([`Process::hold`]): exit waits for holders before it tells its
//! listeners, and grants no hold once it began; everything else runs while it is held.

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use vsva_mem::{Access, Va};
use vsva_mm::{
    CpuArch, InvalidateReason, MapFlags, MemoryManager, MmError, MmuNotifier, Pid, Process, Prot,
};

use common::manager;

fn mm(arch: CpuArch) -> Arc<MemoryManager> {
    manager(arch, 1 << 30)
}

/// Counts `release` calls; optionally stops inside the first until told to go on.
#[derive(Default)]
struct Release {
    calls: Mutex<usize>,
    entered: Mutex<Option<mpsc::Sender<()>>>,
    go: Mutex<Option<mpsc::Receiver<()>>>,
}

impl MmuNotifier for Release {
    fn invalidate_range(&self, _: Pid, _: Va, _: Va, _: InvalidateReason) {}
    fn release(&self, _: Pid) {
        *self.calls.lock().unwrap() += 1;
        if let Some(tx) = self.entered.lock().unwrap().take() {
            tx.send(()).unwrap();
        }
        if let Some(rx) = self.go.lock().unwrap().take() {
            let _ = rx.recv();
        }
    }
}

fn the_held_root_is_the_page_table_root(arch: CpuArch) {
    let mm = mm(arch);
    let p = mm.spawn().unwrap();
    let live = p.hold().unwrap();
    assert_eq!(Some(live.root()), p.page_table_root());
    assert_eq!(live.process().pid(), p.pid());
    // holds nest
    let again = p.hold().unwrap();
    assert_eq!(again.root(), live.root());
}

fn exit_waits_for_every_holder_before_it_tells_its_listeners(arch: CpuArch) {
    let mm = mm(arch);
    let p = mm.spawn().unwrap();
    let l = Arc::new(Release::default());
    p.register_notifier(l.clone());
    let (a, b) = (p.hold().unwrap(), p.hold().unwrap());
    let p2 = p.clone();
    let (tx, rx) = mpsc::channel();
    let exit = thread::spawn(move || tx.send(p2.exit()).unwrap());
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
    assert!(p.is_exiting());
    assert!(!p.has_exited());
    assert_eq!(*l.calls.lock().unwrap(), 0, "no release while held");
    drop(a);
    assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
    assert_eq!(*l.calls.lock().unwrap(), 0, "one holder left");
    drop(b);
    assert_eq!(rx.recv_timeout(Duration::from_secs(20)), Ok(Ok(())));
    exit.join().unwrap();
    assert_eq!(*l.calls.lock().unwrap(), 1);
    assert!(p.has_exited());
}

fn no_hold_is_granted_once_exit_began(arch: CpuArch) {
    let mm = mm(arch);
    let p = mm.spawn().unwrap();
    let (entered_tx, entered) = mpsc::channel();
    let (go, go_rx) = mpsc::channel();
    p.register_notifier(Arc::new(Release {
        calls: Mutex::new(0),
        entered: Mutex::new(Some(entered_tx)),
        go: Mutex::new(Some(go_rx)),
    }));
    let p2 = p.clone();
    let exit = thread::spawn(move || p2.exit());
    entered.recv().unwrap();
    // inside release: the tables are still there, but nobody may start using them now
    assert!(p.page_table_root().is_some());
    assert!(p.hold().is_none());
    assert_eq!(p.exit(), Err(MmError::Exited), "exit runs once");
    go.send(()).unwrap();
    exit.join().unwrap().unwrap();
    assert!(p.hold().is_none());
    assert_eq!(p.exit(), Err(MmError::Exited));
}

fn faults_and_address_space_changes_run_while_the_space_is_held(arch: CpuArch) {
    let mm = mm(arch);
    let p = mm.spawn().unwrap();
    let live = p.hold().unwrap();
    let va = p.mmap(None, 4 * 4096, Prot::RW, MapFlags::empty()).unwrap();
    p.handle_fault(va, Access::READ | Access::WRITE).unwrap();
    let p2 = p.clone();
    // another thread faults too
    thread::spawn(move || p2.handle_fault(Va::new(va.raw() + 4096), Access::READ))
        .join()
        .unwrap()
        .unwrap();
    p.mprotect(va, 4096, Prot::READ).unwrap();
    let child = p.fork().unwrap();
    p.munmap(va, 4 * 4096).unwrap();
    assert_eq!(p.vmas(), vec![]);
    assert_eq!(Some(live.root()), p.page_table_root());
    drop(live);
    child.exit().unwrap();
    p.exit().unwrap();
}

/// Holders and exits on many threads: every hold granted is of a live table, every exit
/// finishes.
fn holds_racing_exit_see_a_live_table_or_nothing(arch: CpuArch) {
    let mm = mm(arch);
    for round in 0..200 {
        let p: Arc<Process> = mm.spawn().unwrap();
        let root = p.page_table_root().unwrap();
        let holders: Vec<_> = (0..3)
            .map(|_| {
                let p = p.clone();
                thread::spawn(move || {
                    let mut granted = 0;
                    while let Some(live) = p.hold() {
                        assert_eq!(live.root(), root);
                        assert!(!p.has_exited());
                        granted += 1;
                        if granted == 50 {
                            break;
                        }
                    }
                })
            })
            .collect();
        if round % 2 == 0 {
            thread::yield_now();
        }
        p.exit().unwrap();
        for h in holders {
            h.join().unwrap();
        }
        assert!(p.hold().is_none());
    }
}

on_both_archs!(
    the_held_root_is_the_page_table_root,
    exit_waits_for_every_holder_before_it_tells_its_listeners,
    no_hold_is_granted_once_exit_began,
    faults_and_address_space_changes_run_while_the_space_is_held,
    holds_racing_exit_see_a_live_table_or_nothing,
);
