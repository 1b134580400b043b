//! The core's teardown and bind order (DESIGN.md "Ordering rules", issue 12): munmap, unbind,
//! detach, IOAS_UNMAP and exit return only after the flushes, on every thread.
//!
//! The driver here is a small translating unit: PASID entries, an IOTLB filled by walks and
//! emptied only by the invalidations the core asks for, and a "device" that translates
//! through it. A hook of the core ([`Iommu::set_hook`]) puts the racing call exactly at each
//! step of the protocol; stress tests run the same races on threads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use vsva_iommu::FormatTable;
use vsva_iommu::UnrecoverableFault;
use vsva_iommu::{
    CorePoint, DeviceCaps, DomainSpec, IoPgtable, Iommu, IommuError, IommuOps, PageRequest,
    ResponseCode,
};
use vsva_mem::{Access, FrameAllocator, PageSize, Pasid, PhysMem, PhysMemory, Rid, Va};
use vsva_mm::{MapFlags, MemoryManager, MmuNotifier, Pid, Process, Prot};
use vsva_pgtable::vtd_ss::VtdSecondStage;
use vsva_pgtable::walk::Direct;
use vsva_pgtable::x86::X86Paging;
use vsva_pgtable::{PageTable, Perm, walk};

const PAGE: u64 = 4096;

#[derive(Default)]
struct Model {
    /// (device, PASID) -> (domain ID, what it points at).
    entries: HashMap<(Rid, u32), (u16, DomainSpec)>,
    /// (device, PASID, page) -> frame: what walks cached.
    iotlb: HashMap<(Rid, u32, u64), u64>,
}

/// A translating unit: a walk fills the IOTLB, only the core's invalidations empty it.
struct Unit {
    frames: Arc<FrameAllocator>,
    cpu: X86Paging,
    model: Mutex<Model>,
}

impl Unit {
    fn model(&self) -> std::sync::MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The frame a DMA of `dev` with `pasid` at `va` reaches, caching it as hardware does.
    /// The walk and the fill are one step under the unit's lock: no invalidation slips in
    /// between.
    fn translate(&self, dev: Rid, pasid: Pasid, va: u64) -> Option<u64> {
        let page = va & !(PAGE - 1);
        let mut m = self.model();
        if let Some(&f) = m.iotlb.get(&(dev, pasid.raw(), page)) {
            return Some(f);
        }
        let mem = self.frames.memory().as_ref();
        let t = match m.entries.get(&(dev, pasid.raw()))?.1 {
            DomainSpec::Sva { root, .. } => walk(
                &self.cpu,
                mem,
                root,
                page,
                Access::READ,
                &mut Direct,
                &mut (),
            )
            .ok()?,
            DomainSpec::Paging { root, .. } => walk(
                &VtdSecondStage::four_level(),
                mem,
                root,
                page,
                Access::READ,
                &mut Direct,
                &mut (),
            )
            .ok()?,
            _ => return None,
        };
        let frame = t.output & !(PAGE - 1);
        m.iotlb.insert((dev, pasid.raw(), page), frame);
        Some(frame)
    }

    /// Whether any PASID of `dev` still reaches `frame` at `va` (IOTLB or walk).
    fn reaches(&self, dev: Rid, va: u64, frame: u64) -> bool {
        let pasids: Vec<u32> = {
            let m = self.model();
            let mut p: Vec<u32> = m
                .entries
                .keys()
                .filter(|k| k.0 == dev)
                .map(|k| k.1)
                .collect();
            p.extend(m.iotlb.keys().filter(|k| k.0 == dev).map(|k| k.1));
            p
        };
        pasids.into_iter().any(|p| {
            let pasid = Pasid::new(p).unwrap();
            self.translate(dev, pasid, va) == Some(frame)
        })
    }

    /// What (`dev`, `pasid`)'s entry points at.
    fn entry(&self, dev: Rid, pasid: Pasid) -> Option<DomainSpec> {
        self.model().entries.get(&(dev, pasid.raw())).map(|e| e.1)
    }

    /// Every SVA entry of `dev`.
    fn sva_entries(&self, dev: Rid) -> Vec<(u32, DomainSpec)> {
        self.model()
            .entries
            .iter()
            .filter(|(k, e)| k.0 == dev && matches!(e.1, DomainSpec::Sva { .. }))
            .map(|(k, e)| (k.1, e.1))
            .collect()
    }

    fn drop_cached(m: &mut Model, dev: Rid, pasid: u32) {
        m.iotlb.retain(|k, _| !(k.0 == dev && k.1 == pasid));
    }
}

impl IommuOps for Unit {
    fn pasid_bits(&self) -> u8 {
        20
    }
    fn attach_device(&self, _: Rid, _: DeviceCaps) -> vsva_iommu::Result<()> {
        Ok(())
    }
    fn set_pasid(
        &self,
        dev: Rid,
        pasid: Pasid,
        did: u16,
        d: &DomainSpec,
    ) -> vsva_iommu::Result<()> {
        let mut m = self.model();
        m.entries.insert((dev, pasid.raw()), (did, *d));
        Unit::drop_cached(&mut m, dev, pasid.raw());
        Ok(())
    }
    fn clear_pasid(&self, dev: Rid, pasid: Pasid) -> vsva_iommu::Result<()> {
        let mut m = self.model();
        m.entries.remove(&(dev, pasid.raw()));
        Unit::drop_cached(&mut m, dev, pasid.raw());
        Ok(())
    }
    fn flush(
        &self,
        dev: Rid,
        pasid: Pasid,
        _did: u16,
        addr: u64,
        len: u64,
    ) -> vsva_iommu::Result<()> {
        let end = addr.saturating_add(len);
        self.model()
            .iotlb
            .retain(|k, _| !(k.0 == dev && k.1 == pasid.raw() && (addr..end).contains(&k.2)));
        Ok(())
    }
    fn take_page_requests(&self) -> Vec<PageRequest> {
        Vec::new()
    }
    fn page_response(
        &self,
        _: Rid,
        _: Option<Pasid>,
        _: u16,
        _: ResponseCode,
    ) -> vsva_iommu::Result<()> {
        Ok(())
    }
    fn take_faults(&self) -> Vec<UnrecoverableFault> {
        Vec::new()
    }
    fn dirty_tracking(&self) -> bool {
        true
    }
    fn alloc_io_pgtable(&self) -> vsva_iommu::Result<Box<dyn IoPgtable>> {
        let t = PageTable::new(VtdSecondStage::four_level(), self.frames.clone())
            .map_err(|_| IommuError::NoMemory)?;
        Ok(Box::new(FormatTable::new(t, (1 << 48) - 1)))
    }
}

const CAPS: DeviceCaps = DeviceCaps {
    pasid_bits: 20,
    ats: true,
    pri: true,
};

fn dev() -> Rid {
    Rid::from_bdf(0, 3, 0).unwrap()
}

fn setup() -> (Arc<Iommu>, Arc<Unit>, Arc<MemoryManager>) {
    let mem: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(1 << 30).unwrap());
    let frames = Arc::new(FrameAllocator::new(mem, 0, 1 << 30));
    let mm = MemoryManager::new(frames.clone(), X86Paging::default());
    let unit = Arc::new(Unit {
        frames,
        cpu: mm.paging().x86().expect("an x86 memory manager"),
        model: Mutex::new(Model::default()),
    });
    let iommu = Iommu::new(unit.clone());
    iommu.add_device(dev(), CAPS, 32).unwrap();
    (iommu, unit, mm)
}

/// A populated page of `p` and the frame behind it.
fn populated_page(p: &Process) -> (Va, u64) {
    let va = p.mmap(None, PAGE, Prot::RW, MapFlags::POPULATE).unwrap();
    let frame = p.leaf(va).unwrap().pa;
    (va, frame)
}

/// What a hook saw, for the test thread to assert after the call under test returned.
type Seen = Arc<Mutex<Vec<String>>>;

#[test]
fn a_munmap_while_unbind_clears_the_entry_leaves_the_device_no_way_to_the_freed_frame() {
    let (iommu, unit, mm) = setup();
    let p = mm.spawn().unwrap();
    let h = iommu.sva_bind(dev(), &p).unwrap();
    let (va, frame) = populated_page(&p);
    // The device has translated the page: the IOTLB holds it.
    assert_eq!(unit.translate(dev(), h.pasid, va.raw()), Some(frame));
    let seen: Seen = Arc::default();
    let (p2, u2, s2) = (p.clone(), unit.clone(), seen.clone());
    iommu
        .set_hook(Arc::new(move |pt| {
            if let CorePoint::UnbindCleared { dev: d, pasid } = pt {
                p2.munmap(va, PAGE).unwrap();
                // munmap returned: the frame may be reused now
                if u2.translate(d, pasid, va.raw()) == Some(frame) {
                    s2.lock()
                        .unwrap()
                        .push("the device still reaches the freed frame".into());
                }
                s2.lock().unwrap().push("munmap ran inside unbind".into());
            }
        }))
        .ok()
        .unwrap();
    iommu.sva_unbind(h).unwrap();
    assert_eq!(*seen.lock().unwrap(), vec!["munmap ran inside unbind"]);
    assert!(!unit.reaches(dev(), va.raw(), frame));
    assert_eq!(unit.entry(dev(), h.pasid), None);
    assert_eq!(
        iommu.pasid_of(&p),
        None,
        "the PASID is released after the clear"
    );
}

#[test]
fn an_unmap_of_the_domain_while_detach_clears_the_entry_leaves_the_device_no_way_to_the_page() {
    let (iommu, unit, _mm) = setup();
    let dom = iommu.alloc_paging_domain().unwrap();
    let frame = unit.frames.alloc_zeroed(PageSize::Size4K).unwrap();
    let iova = 0x40_0000;
    dom.map(iova, frame, PAGE, Perm::READ | Perm::WRITE, false)
        .unwrap();
    let pasid = Pasid::new(0).unwrap();
    iommu.attach_domain(dev(), pasid, &dom, None).unwrap();
    assert_eq!(unit.translate(dev(), pasid, iova), Some(frame));
    let seen: Seen = Arc::default();
    let (d2, u2, s2) = (dom.clone(), unit.clone(), seen.clone());
    iommu
        .set_hook(Arc::new(move |pt| {
            if let CorePoint::DetachCleared { dev: d, pasid } = pt {
                assert_eq!(d2.unmap(iova, PAGE), PAGE);
                // IOAS_UNMAP returned: the page goes back to its owner
                if u2.translate(d, pasid, iova) == Some(frame) {
                    s2.lock()
                        .unwrap()
                        .push("the device still reaches the unmapped page".into());
                }
                s2.lock().unwrap().push("unmap ran inside detach".into());
            }
        }))
        .ok()
        .unwrap();
    iommu.detach_domain(dev(), pasid, &dom).unwrap();
    assert_eq!(*seen.lock().unwrap(), vec!["unmap ran inside detach"]);
    assert!(!unit.reaches(dev(), iova, frame));
    assert!(dom.attachments().is_empty());
}

#[test]
fn a_dirty_tracking_switch_while_detach_clears_the_entry_does_not_bring_it_back() {
    let (iommu, unit, _mm) = setup();
    let dom = iommu.alloc_paging_domain().unwrap();
    let pasid = Pasid::new(4).unwrap();
    iommu.attach_domain(dev(), pasid, &dom, None).unwrap();
    let d2 = dom.clone();
    iommu
        .set_hook(Arc::new(move |pt| {
            if let CorePoint::DetachCleared { .. } = pt {
                // reprograms every attachment that stays
                d2.set_dirty_tracking(true).unwrap();
            }
        }))
        .ok()
        .unwrap();
    iommu.detach_domain(dev(), pasid, &dom).unwrap();
    assert!(dom.dirty_tracking());
    assert_eq!(unit.entry(dev(), pasid), None, "detached means detached");
    // attaching again follows the domain's tracking
    iommu.attach_domain(dev(), pasid, &dom, None).unwrap();
    assert!(matches!(
        unit.entry(dev(), pasid),
        Some(DomainSpec::Paging {
            dirty_tracking: true,
            ..
        })
    ));
}

/// Runs `f` on another thread and waits for it at most `patience`: a call that the code under
/// test rightly blocks is left running (and joined later), one that can complete does.
fn run_racing<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
    patience: Duration,
) -> (thread::JoinHandle<T>, bool) {
    let (tx, rx) = mpsc::channel();
    let t = thread::spawn(move || {
        let r = f();
        let _ = tx.send(());
        r
    });
    let done = rx.recv_timeout(patience).is_ok();
    (t, done)
}

/// An exit of a process that a hook of the core starts on another thread ([`run_racing`],
/// 200 ms of patience) each time the core reaches a point the hook's filter accepts.
struct RacingExit(Arc<Mutex<Option<Started>>>);

/// An exit on its thread, and whether it finished while the hook waited.
type Started = (thread::JoinHandle<vsva_mm::Result<()>>, bool);

impl RacingExit {
    /// Sets `iommu`'s hook: `p` exits at every point `at` accepts.
    fn at(iommu: &Iommu, p: &Arc<Process>, at: fn(&CorePoint) -> bool) -> RacingExit {
        let exit = RacingExit(Arc::default());
        let (p2, e2) = (p.clone(), exit.0.clone());
        iommu
            .set_hook(Arc::new(move |pt| {
                if at(&pt) {
                    let p3 = p2.clone();
                    *e2.lock().unwrap() =
                        Some(run_racing(move || p3.exit(), Duration::from_millis(200)));
                }
            }))
            .ok()
            .unwrap();
        exit
    }

    /// Waits for the exit the hook started, which must succeed; returns whether it had
    /// finished while the hook waited.
    fn join(&self) -> bool {
        let (t, finished_inside) = self.0.lock().unwrap().take().expect("the hook ran");
        t.join().unwrap().unwrap();
        finished_inside
    }
}

#[test]
fn an_exit_between_reading_the_root_and_setting_the_entry_ends_with_the_pasid_blocked() {
    let (iommu, unit, mm) = setup();
    let p = mm.spawn().unwrap();
    let root = p.page_table_root().unwrap();
    // The bind holds the address space, so exit waits for it; without that hold exit would
    // finish at this point and free the table the entry is about to point at.
    let exit = RacingExit::at(&iommu, &p, |pt| {
        matches!(pt, CorePoint::BindRootRead { .. })
    });
    let bound = iommu.sva_bind(dev(), &p);
    exit.join();
    assert!(p.has_exited());
    match bound {
        Ok(h) => {
            assert_eq!(unit.entry(dev(), h.pasid), Some(DomainSpec::Blocked));
            iommu.sva_unbind(h).unwrap();
        }
        Err(e) => assert_eq!(e, IommuError::NoAddressSpace),
    }
    assert_eq!(
        unit.sva_entries(dev()),
        vec![],
        "no PASID entry points at the freed root {root:#x}"
    );
}

#[test]
fn an_exit_while_unbind_clears_the_entry_does_not_program_it_again() {
    let (iommu, unit, mm) = setup();
    let p = mm.spawn().unwrap();
    let h = iommu.sva_bind(dev(), &p).unwrap();
    // exit's release waits for the unbind to finish
    let exit = RacingExit::at(&iommu, &p, |pt| {
        matches!(pt, CorePoint::UnbindCleared { .. })
    });
    iommu.sva_unbind(h).unwrap();
    exit.join();
    assert_eq!(
        unit.entry(dev(), h.pasid),
        None,
        "not blocked after the clear"
    );
    assert_eq!(iommu.pasid_of(&p), None);
}

/// A listener that holds exit inside `release` until told to go on.
struct HoldRelease {
    entered: Mutex<Option<mpsc::Sender<()>>>,
    go: Mutex<Option<mpsc::Receiver<()>>>,
}

impl MmuNotifier for HoldRelease {
    fn invalidate_range(&self, _: Pid, _: Va, _: Va, _: vsva_mm::InvalidateReason) {}
    fn release(&self, _: Pid) {
        if let Some(tx) = self.entered.lock().unwrap().take() {
            tx.send(()).unwrap();
        }
        if let Some(rx) = self.go.lock().unwrap().take() {
            let _ = rx.recv();
        }
    }
}

#[test]
fn a_bind_after_exit_told_its_listeners_fails_with_no_address_space() {
    let (iommu, unit, mm) = setup();
    let p = mm.spawn().unwrap();
    let (entered_tx, entered) = mpsc::channel();
    let (go, go_rx) = mpsc::channel();
    p.register_notifier(Arc::new(HoldRelease {
        entered: Mutex::new(Some(entered_tx)),
        go: Mutex::new(Some(go_rx)),
    }));
    let p2 = p.clone();
    let exit = thread::spawn(move || p2.exit());
    entered.recv().unwrap();
    // Exit has snapshotted its listeners; the tables are still there, but not for long.
    assert_eq!(iommu.sva_bind(dev(), &p), Err(IommuError::NoAddressSpace));
    go.send(()).unwrap();
    exit.join().unwrap().unwrap();
    assert_eq!(unit.sva_entries(dev()), vec![]);
    assert_eq!(iommu.pasid_of(&p), None);
}

/// Stops a stress loop after `budget` or when another thread said so.
struct Budget {
    until: Instant,
    stop: AtomicBool,
}

impl Budget {
    fn new(ms: u64) -> Arc<Budget> {
        Arc::new(Budget {
            until: Instant::now() + Duration::from_millis(ms),
            stop: AtomicBool::new(false),
        })
    }
    fn going(&self) -> bool {
        !self.stop.load(Ordering::Relaxed) && Instant::now() < self.until
    }

    /// Runs `round` (given its number) on this thread for as long as the budget goes on;
    /// returns how many rounds ran.
    fn rounds(&self, mut round: impl FnMut(u64)) -> u64 {
        let mut n = 0;
        while self.going() {
            round(n);
            n += 1;
        }
        n
    }

    /// As [`Budget::rounds`], on another thread.
    fn repeat(
        self: &Arc<Budget>,
        mut round: impl FnMut() + Send + 'static,
    ) -> thread::JoinHandle<u64> {
        let budget = self.clone();
        thread::spawn(move || budget.rounds(|_| round()))
    }
}

#[test]
fn munmaps_racing_binds_and_unbinds_never_leave_the_device_a_freed_frame() {
    let (iommu, unit, mm) = setup();
    let p = mm.spawn().unwrap();
    let budget = Budget::new(250);
    let binder = {
        let (iommu, p) = (iommu.clone(), p.clone());
        budget.repeat(move || {
            let h = iommu.sva_bind(dev(), &p).unwrap();
            thread::yield_now();
            iommu.sva_unbind(h).unwrap();
        })
    };
    let rounds = budget.rounds(|round| {
        let (va, frame) = populated_page(&p);
        // the device uses the page through whatever PASID it has now
        if let Some(pasid) = iommu.pasid_of(&p) {
            unit.translate(dev(), pasid, va.raw());
        }
        p.munmap(va, PAGE).unwrap();
        assert!(
            !unit.reaches(dev(), va.raw(), frame),
            "round {round}: the freed frame is still reachable"
        );
    });
    assert!(binder.join().unwrap() > 0 && rounds > 0);
}

#[test]
fn domain_unmaps_racing_attaches_and_detaches_never_leave_the_device_the_page() {
    let (iommu, unit, _mm) = setup();
    let dom = iommu.alloc_paging_domain().unwrap();
    let frame = unit.frames.alloc_zeroed(PageSize::Size4K).unwrap();
    let pasid = Pasid::new(7).unwrap();
    let budget = Budget::new(250);
    let attacher = {
        let (iommu, dom) = (iommu.clone(), dom.clone());
        budget.repeat(move || {
            iommu.attach_domain(dev(), pasid, &dom, None).unwrap();
            thread::yield_now();
            iommu.detach_domain(dev(), pasid, &dom).unwrap();
        })
    };
    let iova = 0x80_0000;
    let rounds = budget.rounds(|round| {
        dom.map(iova, frame, PAGE, Perm::READ | Perm::WRITE, false)
            .unwrap();
        unit.translate(dev(), pasid, iova);
        dom.unmap(iova, PAGE);
        assert!(
            !unit.reaches(dev(), iova, frame),
            "round {round}: the unmapped page is still reachable"
        );
    });
    assert!(attacher.join().unwrap() > 0 && rounds > 0);
}

#[test]
fn binds_racing_exits_never_leave_an_entry_on_a_dead_address_space() {
    let (iommu, unit, mm) = setup();
    let budget = Budget::new(250);
    let mut bound = 0;
    let rounds = budget.rounds(|round| {
        let p = mm.spawn().unwrap();
        let p2 = p.clone();
        let exit = thread::spawn(move || p2.exit());
        // vary who comes first
        for _ in 0..round % 16 {
            thread::yield_now();
        }
        match iommu.sva_bind(dev(), &p) {
            Ok(h) => {
                exit.join().unwrap().unwrap();
                bound += 1;
                assert_eq!(unit.entry(dev(), h.pasid), Some(DomainSpec::Blocked));
                iommu.sva_unbind(h).unwrap();
            }
            Err(e) => {
                assert_eq!(e, IommuError::NoAddressSpace);
                exit.join().unwrap().unwrap();
            }
        }
        assert_eq!(unit.sva_entries(dev()), vec![], "round {round}");
    });
    assert!(rounds > 0, "{bound} of {rounds} binds won");
}
