//! The memory manager's behaviour as a process (and an IOMMU listening to it) sees it.

use std::sync::{Arc, Mutex};

mod common;

use vsva_mem::{Access, PageSize, Va};
use vsva_mm::{
    Advice, CpuArch, InvalidateReason, MapFlags, MemoryManager, MmError, MmuNotifier, Pid, Process,
    Prot,
};
use vsva_pgtable::FaultReason;
use vsva_pgtable::x86::X86Paging;

use common::{hw_walk, manager};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
const R: Access = Access::READ;
const W: Access = Access::READ.union(Access::WRITE);

fn mm(arch: CpuArch) -> Arc<MemoryManager> {
    manager(arch, 4 * GIB)
}

/// What a listener saw.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    Invalidate(u64, u64, InvalidateReason),
    Release,
}

/// A listener that behaves like an IOMMU: at each invalidation it checks, by walking the
/// process's page table directly (as hardware would), that the watched address no longer maps
/// the watched frame, and that the frame has not been freed yet.
struct Listener {
    mm: Arc<MemoryManager>,
    root: u64,
    events: Mutex<Vec<Event>>,
    watch: Mutex<Option<(u64, u64)>>,
    violations: Mutex<Vec<String>>,
}

impl Listener {
    fn new(p: &Process) -> Arc<Listener> {
        let l = Arc::new(Listener {
            mm: p.memory_manager().clone(),
            root: p.page_table_root().unwrap(),
            events: Mutex::new(vec![]),
            watch: Mutex::new(None),
            violations: Mutex::new(vec![]),
        });
        p.register_notifier(l.clone());
        l
    }

    fn watch(&self, va: Va, p: &Process) {
        let pa = p.translate(va, R).unwrap().page_base();
        *self.watch.lock().unwrap() = Some((va.raw(), pa));
    }

    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// Fails the test if any invalidation came after the frame was freed or while the watched
    /// address still mapped it.
    fn assert_no_violations(&self) {
        let v = self.violations.lock().unwrap();
        assert!(v.is_empty(), "{v:?}");
    }
}

impl MmuNotifier for Listener {
    fn invalidate_range(&self, _pid: Pid, start: Va, end: Va, reason: InvalidateReason) {
        self.events
            .lock()
            .unwrap()
            .push(Event::Invalidate(start.raw(), end.raw(), reason));
        if let Some((va, pa)) = *self.watch.lock().unwrap() {
            if start.raw() <= va && va < end.raw() {
                if self.mm.frames().frame_size(pa).is_none() {
                    self.violations.lock().unwrap().push(format!(
                        "{reason:?}: frame {pa:#x} freed before the notifier ran"
                    ));
                }
                let still = hw_walk(&self.mm, self.root, va, R).map(|t| t.page_base());
                let narrows_only = matches!(
                    reason,
                    InvalidateReason::Protect | InvalidateReason::ForkWriteProtect
                );
                if still == Ok(pa) && !narrows_only {
                    self.violations
                        .lock()
                        .unwrap()
                        .push(format!("{reason:?}: {va:#x} still maps {pa:#x}"));
                }
            }
        }
    }

    fn release(&self, _pid: Pid) {
        self.events.lock().unwrap().push(Event::Release);
    }
}

fn demand_faults_fill_zeroed_pages_on_first_touch(arch: CpuArch) {
    let mm = mm(arch);
    let p = mm.spawn().unwrap();
    let va = p
        .mmap(None, 16 * 4096, Prot::RW, MapFlags::empty())
        .unwrap();
    assert_eq!(va.raw() % 4096, 0);
    // nothing is mapped until touched
    let f = p.translate(va, R).unwrap_err();
    assert_eq!(f.reason, FaultReason::NotPresent);
    assert_eq!(mm.stats().pages_in_use, 0);
    p.handle_fault(Va::new(va.raw() + 5 * 4096 + 17), R)
        .unwrap();
    let t = p.translate(Va::new(va.raw() + 5 * 4096), R).unwrap();
    let mut page = vec![0xffu8; 4096];
    mm.memory().read(t.page_base(), &mut page).unwrap();
    assert!(
        page.iter().all(|&b| b == 0),
        "a fresh anonymous page reads as zeros"
    );
    assert_eq!(mm.stats().zero_fills, 1);
    // the CPU path: write and read back through the page table, faulting as needed
    p.write_bytes(Va::new(va.raw() + 4090), b"hello, world")
        .unwrap();
    let mut buf = [0u8; 12];
    p.read_bytes(Va::new(va.raw() + 4090), &mut buf).unwrap();
    assert_eq!(&buf, b"hello, world");
    assert_eq!(
        mm.stats().zero_fills,
        3,
        "the write crossed into pages 0 and 1"
    );
    // a second fault on a mapped page is spurious and changes nothing
    p.handle_fault(va, R).unwrap();
    assert_eq!(mm.stats().zero_fills, 3);
}

fn faults_return_the_errors_a_kernel_gives(arch: CpuArch) {
    let mm = mm(arch);
    let p = mm.spawn().unwrap();
    let ro = p.mmap(None, 4096, Prot::READ, MapFlags::empty()).unwrap();
    let none = p
        .mmap(None, 4096, Prot::empty(), MapFlags::empty())
        .unwrap();
    assert_eq!(
        p.handle_fault(Va::new(0x1000), R),
        Err(MmError::NoVma {
            va: Va::new(0x1000)
        })
    );
    assert!(matches!(
        p.handle_fault(ro, W),
        Err(MmError::AccessDenied { .. })
    ));
    assert!(matches!(
        p.handle_fault(none, R),
        Err(MmError::AccessDenied { .. })
    ));
    assert!(matches!(
        p.handle_fault(ro, R | Access::EXEC),
        Err(MmError::AccessDenied { .. })
    ));
    assert_eq!(MmError::NoVma { va: ro }.errno(), vsva_mem::Errno::EFAULT);
    // writing to a read-only mapping fails and writes nothing
    assert!(p.write_bytes(ro, &[1, 2, 3]).is_err());
    let mut b = [9u8; 3];
    p.read_bytes(ro, &mut b).unwrap();
    assert_eq!(b, [0, 0, 0]);
}

fn mmap_argument_checks(arch: CpuArch) {
    let mm = mm(arch);
    let p = mm.spawn().unwrap();
    assert_eq!(
        p.mmap(None, 0, Prot::RW, MapFlags::empty()),
        Err(MmError::Invalid("zero length"))
    );
    assert!(matches!(
        p.mmap(Some(Va::new(0x10_0001)), 4096, Prot::RW, MapFlags::FIXED),
        Err(MmError::Invalid(_))
    ));
    assert!(matches!(
        p.mmap(None, 4096, Prot::RW, MapFlags::HUGE_1G | MapFlags::HUGE_2M),
        Err(MmError::Invalid(_))
    ));
    assert!(matches!(
        p.mmap(
            Some(Va::new(p.task_size())),
            4096,
            Prot::RW,
            MapFlags::FIXED
        ),
        Err(MmError::Invalid(_))
    ));
    assert!(matches!(
        p.munmap(Va::new(0x1234), 4096),
        Err(MmError::Invalid(_))
    ));
    assert!(matches!(
        p.mmap(None, u64::MAX - 100, Prot::RW, MapFlags::empty()),
        Err(MmError::Invalid(_)) | Err(MmError::NoAddressSpace { .. })
    ));
    // a hint is used when free
    let hinted = || {
        p.mmap(
            Some(Va::new(0x5000_0000)),
            8192,
            Prot::RW,
            MapFlags::empty(),
        )
        .unwrap()
    };
    let at = hinted();
    assert_eq!(at, Va::new(0x5000_0000));
    let other = hinted();
    assert_ne!(other, at, "an occupied hint is not honoured");
    // mprotect/madvise of a hole: ENOMEM
    let e = p
        .mprotect(Va::new(0x6000_0000), 4096, Prot::READ)
        .unwrap_err();
    assert_eq!(e.errno(), vsva_mem::Errno::ENOMEM);
    let e = p
        .madvise(Va::new(0x6000_0000), 4096, Advice::DontNeed)
        .unwrap_err();
    assert_eq!(e.errno(), vsva_mem::Errno::ENOMEM);
}

fn populate_maps_every_page_now(arch: CpuArch) {
    let mm = mm(arch);
    let p = mm.spawn().unwrap();
    let va = p
        .mmap(None, 8 * 4096, Prot::RW, MapFlags::POPULATE)
        .unwrap();
    for i in 0..8 {
        let t = p.translate(Va::new(va.raw() + i * 4096), W).unwrap();
        assert_eq!(t.size, PageSize::Size4K);
    }
    assert_eq!(mm.stats().pages_in_use, 8);
    let ro = p.mmap(None, 4096, Prot::READ, MapFlags::POPULATE).unwrap();
    assert!(p.translate(ro, R).is_ok());
    assert!(p.translate(ro, W).is_err());
}

fn huge_pages_map_2m_and_1g_leaves(arch: CpuArch) {
    let mm = manager(arch, 8 * GIB);
    let p = mm.spawn().unwrap();
    let two = p.mmap(None, 3 * MIB, Prot::RW, MapFlags::HUGE_2M).unwrap();
    assert_eq!(two.raw() % (2 * MIB), 0);
    assert_eq!(
        p.vmas()[0].len(),
        4 * MIB,
        "length rounded up to the huge page size"
    );
    p.write_bytes(Va::new(two.raw() + 3 * MIB), &[7; 64])
        .unwrap();
    let t = p.translate(Va::new(two.raw() + 3 * MIB), R).unwrap();
    assert_eq!(t.size, PageSize::Size2M);
    let one = p.mmap(None, GIB, Prot::RW, MapFlags::HUGE_1G).unwrap();
    assert_eq!(one.raw() % GIB, 0);
    p.write_bytes(Va::new(one.raw() + GIB - 8), &[1; 8])
        .unwrap();
    let t = p.translate(Va::new(one.raw() + 12345), R).unwrap();
    assert_eq!(t.size, PageSize::Size1G);
    assert_eq!(t.page_base() % GIB, 0);
    // huge mappings cannot be split
    assert!(matches!(
        p.munmap(Va::new(two.raw() + 4096), 4096),
        Err(MmError::Invalid(_))
    ));
    assert!(matches!(
        p.mprotect(one, 2 * MIB, Prot::READ),
        Err(MmError::Invalid(_))
    ));
    p.munmap(two, 2 * MIB).unwrap();
    assert!(p.translate(Va::new(two.raw() + 3 * MIB), R).is_ok());
    assert!(p.translate(two, R).is_err());
    // no 1 GiB pages without the CPU feature (x86 only: Arm's 4 KiB granule always has
    // level-1 blocks)
    if arch == CpuArch::X86_64 {
        let small = MemoryManager::new(
            mm.frames().clone(),
            X86Paging {
                page_1g: false,
                ..X86Paging::default()
            },
        );
        let q = small.spawn().unwrap();
        assert!(matches!(
            q.mmap(None, GIB, Prot::RW, MapFlags::HUGE_1G),
            Err(MmError::Invalid(_))
        ));
    }
}

fn munmap_announces_the_range_before_freeing_its_frames(arch: CpuArch) {
    let mm = mm(arch);
    let p = mm.spawn().unwrap();
    let va = p
        .mmap(None, 4 * 4096, Prot::RW, MapFlags::POPULATE)
        .unwrap();
    let l = Listener::new(&p);
    let watched = Va::new(va.raw() + 4096);
    l.watch(watched, &p);
    let frame = p.translate(watched, R).unwrap().page_base();
    p.munmap(Va::new(va.raw() + 4096), 2 * 4096).unwrap();
    assert_eq!(
        l.events(),
        vec![Event::Invalidate(
            va.raw() + 4096,
            va.raw() + 3 * 4096,
            InvalidateReason::Unmap
        )]
    );
    l.assert_no_violations();
    // after the call the frame is free
    assert!(mm.frames().frame_size(frame).is_none());
    assert_eq!(mm.stats().pages_in_use, 2);
    // the rest of the mapping is intact, the middle is gone
    assert!(p.translate(va, R).is_ok());
    assert!(matches!(
        p.handle_fault(watched, R),
        Err(MmError::NoVma { .. })
    ));
    // unmapping an unmapped range is fine and silent
    p.munmap(watched, 4096).unwrap();
    assert_eq!(l.events().len(), 1);
}

fn mprotect_narrows_rights_and_announces(arch: CpuArch) {
    let mm = mm(arch);
    let p = mm.spawn().unwrap();
    let va = p
        .mmap(None, 4 * 4096, Prot::RW, MapFlags::POPULATE)
        .unwrap();
    p.write_bytes(va, &[5; 8]).unwrap();
    let l = Listener::new(&p);
    p.mprotect(va, 2 * 4096, Prot::READ).unwrap();
    assert_eq!(
        l.events(),
        vec![Event::Invalidate(
            va.raw(),
            va.raw() + 8192,
            InvalidateReason::Protect
        )]
    );
    assert_eq!(
        p.translate(va, W).unwrap_err().reason,
        FaultReason::Permission
    );
    assert!(matches!(
        p.handle_fault(va, W),
        Err(MmError::AccessDenied { .. })
    ));
    assert!(p.translate(Va::new(va.raw() + 2 * 4096), W).is_ok());
    assert_eq!(p.vmas().len(), 2);
    // PROT_NONE keeps the data, inaccessible; restoring brings it back
    p.mprotect(va, 4096, Prot::empty()).unwrap();
    assert_eq!(
        p.translate(va, R).unwrap_err().reason,
        FaultReason::NotPresent
    );
    assert!(p.read_bytes(va, &mut [0u8; 1]).is_err());
    p.mprotect(va, 4096, Prot::RW).unwrap();
    let mut b = [0u8; 8];
    p.read_bytes(va, &mut b).unwrap();
    assert_eq!(b, [5; 8]);
    assert_eq!(mm.stats().pages_in_use, 4);
}

fn madvise_dontneed_drops_pages_and_pageout_swaps_them(arch: CpuArch) {
    let mm = mm(arch);
    let p = mm.spawn().unwrap();
    let va = p.mmap(None, 4 * 4096, Prot::RW, MapFlags::empty()).unwrap();
    p.write_bytes(va, &[0xaa; 4 * 4096]).unwrap();
    let l = Listener::new(&p);
    l.watch(va, &p);
    p.madvise(va, 4096, Advice::DontNeed).unwrap();
    let mut b = [1u8; 4];
    p.read_bytes(va, &mut b).unwrap();
    assert_eq!(b, [0; 4], "dropped anonymous memory reads back as zeros");
    // page out the second page: its PTE becomes a swap entry, the data survives
    let second = Va::new(va.raw() + 4096);
    l.watch(second, &p);
    let frame = p.translate(second, R).unwrap().page_base();
    p.madvise(second, 4096, Advice::PageOut).unwrap();
    assert!(
        mm.frames().frame_size(frame).is_none(),
        "the frame was freed"
    );
    assert_eq!(mm.swapped_pages(), 1);
    assert_eq!(
        p.translate(second, R).unwrap_err().reason,
        FaultReason::NotPresent
    );
    p.read_bytes(second, &mut b).unwrap();
    assert_eq!(b, [0xaa; 4]);
    assert_eq!(mm.swapped_pages(), 0);
    assert_eq!(mm.stats().swap_ins, 1);
    let reasons: Vec<_> = l
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Invalidate(_, _, r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        vec![InvalidateReason::DontNeed, InvalidateReason::PageOut]
    );
    l.assert_no_violations();
}

fn fork_shares_pages_copy_on_write(arch: CpuArch) {
    let mm = mm(arch);
    let parent = mm.spawn().unwrap();
    let va = parent
        .mmap(None, 2 * 4096, Prot::RW, MapFlags::empty())
        .unwrap();
    parent.write_bytes(va, b"parent data").unwrap();
    let l = Listener::new(&parent);
    let child = parent.fork().unwrap();
    assert_ne!(child.pid(), parent.pid());
    // fork write-protected the parent's writable page and told its listener
    assert_eq!(
        l.events(),
        vec![Event::Invalidate(
            va.raw(),
            va.raw() + 8192,
            InvalidateReason::ForkWriteProtect
        )]
    );
    let pt = parent.translate(va, R).unwrap();
    let ct = child.translate(va, R).unwrap();
    assert_eq!(pt.page_base(), ct.page_base(), "the frame is shared");
    assert_eq!(mm.page_refs(pt.page_base()), 2);
    assert!(parent.translate(va, W).is_err() && child.translate(va, W).is_err());
    // the child writes: it gets its own copy; the parent's data is untouched
    child.write_bytes(va, b"child").unwrap();
    let mut b = [0u8; 11];
    parent.read_bytes(va, &mut b).unwrap();
    assert_eq!(&b, b"parent data");
    child.read_bytes(va, &mut b).unwrap();
    assert_eq!(&b[..5], b"child");
    assert_eq!(&b[5..], b"t data");
    assert_eq!(mm.stats().cow_copies, 1);
    assert_ne!(child.translate(va, R).unwrap().page_base(), pt.page_base());
    // the parent writes next: the page is no longer shared, so it is reused, not copied
    l.watch(va, &parent);
    parent.write_bytes(va, b"P").unwrap();
    assert_eq!(mm.stats().cow_reuses, 1);
    assert_eq!(mm.stats().cow_copies, 1);
    assert_eq!(parent.translate(va, R).unwrap().page_base(), pt.page_base());
    // the second page was never touched: fork gave the child nothing there either
    let second = Va::new(va.raw() + 4096);
    assert!(parent.translate(second, R).is_err() && child.translate(second, R).is_err());
}

fn cow_break_announces_before_the_shared_frame_is_reused(arch: CpuArch) {
    let mm = mm(arch);
    let parent = mm.spawn().unwrap();
    let va = parent
        .mmap(None, 4096, Prot::RW, MapFlags::empty())
        .unwrap();
    parent.write_bytes(va, &[3; 16]).unwrap();
    let child = parent.fork().unwrap();
    let l = Listener::new(&parent);
    l.watch(va, &parent);
    // child exits: the page is now the parent's alone; parent writes: reuse, no copy, no event
    drop(child);
    parent.write_bytes(va, &[4; 16]).unwrap();
    assert!(l.events().is_empty());
    // fork again, and this time the parent writes first: copy, and an invalidation of the
    // old translation while the shared frame is still alive
    let child = parent.fork().unwrap();
    let old = parent.translate(va, R).unwrap().page_base();
    l.watch(va, &parent);
    parent.write_bytes(va, &[5; 16]).unwrap();
    let evs = l.events();
    assert_eq!(
        evs.last(),
        Some(&Event::Invalidate(
            va.raw(),
            va.raw() + 4096,
            InvalidateReason::CowBreak
        ))
    );
    l.assert_no_violations();
    let mut b = [0u8; 1];
    child.read_bytes(va, &mut b).unwrap();
    assert_eq!(b, [4]);
    assert_eq!(child.translate(va, R).unwrap().page_base(), old);
}

fn fork_copies_swap_entries_and_huge_pages(arch: CpuArch) {
    let mm = mm(arch);
    let p = mm.spawn().unwrap();
    let va = p.mmap(None, 2 * 4096, Prot::RW, MapFlags::empty()).unwrap();
    p.write_bytes(va, &[6; 8192]).unwrap();
    p.madvise(va, 4096, Advice::PageOut).unwrap();
    let huge = p.mmap(None, 2 * MIB, Prot::RW, MapFlags::HUGE_2M).unwrap();
    p.write_bytes(huge, &[8; 4]).unwrap();
    let c = p.fork().unwrap();
    let mut b = [0u8; 4];
    c.read_bytes(va, &mut b).unwrap();
    assert_eq!(b, [6; 4]);
    p.read_bytes(va, &mut b).unwrap();
    assert_eq!(b, [6; 4]);
    c.write_bytes(huge, &[9; 4]).unwrap();
    p.read_bytes(huge, &mut b).unwrap();
    assert_eq!(b, [8; 4]);
    assert_eq!(c.translate(huge, R).unwrap().size, PageSize::Size2M);
}

fn exit_releases_everything_and_tells_listeners_first(arch: CpuArch) {
    let mm = mm(arch);
    let before = mm.frames().allocated_frames();
    let p = mm.spawn().unwrap();
    let va = p
        .mmap(None, 64 * 4096, Prot::RW, MapFlags::POPULATE)
        .unwrap();
    p.mmap(
        None,
        2 * MIB,
        Prot::RW,
        MapFlags::HUGE_2M | MapFlags::POPULATE,
    )
    .unwrap();
    p.madvise(va, 4096, Advice::PageOut).unwrap();
    let l = Listener::new(&p);
    p.exit().unwrap();
    let ev = l.events();
    assert_eq!(ev[0], Event::Release, "release comes before the teardown");
    assert!(
        ev[1..]
            .iter()
            .all(|e| matches!(e, Event::Invalidate(_, _, InvalidateReason::Exit)))
    );
    assert_eq!(ev.len(), 3);
    assert_eq!(
        mm.frames().allocated_frames(),
        before,
        "every page and table is freed"
    );
    assert_eq!(mm.swapped_pages(), 0);
    assert!(p.has_exited());
    assert_eq!(p.handle_fault(va, R), Err(MmError::Exited));
    assert_eq!(p.exit(), Err(MmError::Exited));
    assert_eq!(
        p.mmap(None, 4096, Prot::RW, MapFlags::empty()),
        Err(MmError::Exited)
    );
}

fn out_of_memory_is_an_error_not_a_panic(arch: CpuArch) {
    let mm = manager(arch, 4 * MIB);
    let p = mm.spawn().unwrap();
    let va = p.mmap(None, 8 * MIB, Prot::RW, MapFlags::empty()).unwrap();
    let err = p.write_bytes(va, &vec![1u8; 8 * MIB as usize]).unwrap_err();
    assert_eq!(err, MmError::OutOfMemory);
    assert_eq!(
        p.mmap(None, 8 * MIB, Prot::RW, MapFlags::POPULATE),
        Err(MmError::OutOfMemory)
    );
    // a failed populate leaves nothing mapped behind
    assert_eq!(p.vmas().len(), 1);
}

fn concurrent_faults_on_the_same_pages_map_each_once(arch: CpuArch) {
    let mm = mm(arch);
    let p = mm.spawn().unwrap();
    let va = p
        .mmap(None, 256 * 4096, Prot::RW, MapFlags::empty())
        .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let p = p.clone();
            std::thread::spawn(move || {
                for i in 0..256 {
                    p.handle_fault(Va::new(va.raw() + i * 4096), W).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(mm.stats().zero_fills, 256);
    assert_eq!(mm.stats().pages_in_use, 256);
}

/// A listener that unregisters itself when the process exits, as an SVA unbind does, and reads
/// the process's memory map from `release` (allowed: release comes before the teardown).
struct UnbindOnRelease {
    process: std::sync::OnceLock<std::sync::Weak<Process>>,
    id: Mutex<Option<vsva_mm::NotifierId>>,
    vmas_at_release: Mutex<Option<usize>>,
}

impl MmuNotifier for UnbindOnRelease {
    fn invalidate_range(&self, _: Pid, _: Va, _: Va, _: InvalidateReason) {}
    fn release(&self, _: Pid) {
        let p = self.process.get().and_then(|w| w.upgrade()).unwrap();
        *self.vmas_at_release.lock().unwrap() = Some(p.vmas().len());
        if let Some(id) = self.id.lock().unwrap().take() {
            assert!(p.unregister_notifier(id));
        }
    }
}

fn a_listener_may_unbind_itself_on_release(arch: CpuArch) {
    let mm = mm(arch);
    let p = mm.spawn().unwrap();
    p.mmap(None, 4096, Prot::RW, MapFlags::POPULATE).unwrap();
    let l = Arc::new(UnbindOnRelease {
        process: std::sync::OnceLock::new(),
        id: Mutex::new(None),
        vmas_at_release: Mutex::new(None),
    });
    l.process.set(Arc::downgrade(&p)).unwrap();
    *l.id.lock().unwrap() = Some(p.register_notifier(l.clone()));
    let (tx, rx) = std::sync::mpsc::channel();
    let p2 = p.clone();
    std::thread::spawn(move || tx.send(p2.exit()).unwrap());
    let result = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("exit() must not deadlock");
    assert_eq!(result, Ok(()));
    assert_eq!(
        *l.vmas_at_release.lock().unwrap(),
        Some(1),
        "release saw the live map"
    );
    assert!(l.id.lock().unwrap().is_none());
}

fn a_fork_that_runs_out_of_memory_leaves_no_reference_behind(arch: CpuArch) {
    let mm = manager(arch, 4 * MIB);
    let p = mm.spawn().unwrap();
    let va = p.mmap(None, 4096, Prot::RW, MapFlags::POPULATE).unwrap();
    let pa = p.leaf(va).unwrap().pa;
    let l = Listener::new(&p);
    // Leave exactly one free frame: the child's root, and nothing for its lower tables.
    let mut hog = vec![];
    while mm.frames().free_bytes() > 4096 {
        hog.push(mm.frames().alloc(PageSize::Size4K).unwrap());
    }
    assert_eq!(p.fork().unwrap_err(), MmError::OutOfMemory);
    assert_eq!(mm.page_refs(pa), 1, "the child's reference must not leak");
    // the parent's page was write-protected before the failure: that was announced
    assert!(matches!(
        l.events().last(),
        Some(Event::Invalidate(_, _, InvalidateReason::ForkWriteProtect))
    ));
    // and the parent still works: its next write reuses the page (it is not shared)
    p.write_bytes(va, &[1]).unwrap();
    assert_eq!(p.leaf(va).unwrap().pa, pa);
    for f in hog {
        mm.frames().free(f).unwrap();
    }
}

on_both_archs!(
    demand_faults_fill_zeroed_pages_on_first_touch,
    faults_return_the_errors_a_kernel_gives,
    mmap_argument_checks,
    populate_maps_every_page_now,
    huge_pages_map_2m_and_1g_leaves,
    munmap_announces_the_range_before_freeing_its_frames,
    mprotect_narrows_rights_and_announces,
    madvise_dontneed_drops_pages_and_pageout_swaps_them,
    fork_shares_pages_copy_on_write,
    cow_break_announces_before_the_shared_frame_is_reused,
    fork_copies_swap_entries_and_huge_pages,
    exit_releases_everything_and_tells_listeners_first,
    out_of_memory_is_an_error_not_a_panic,
    concurrent_faults_on_the_same_pages_map_each_once,
    a_listener_may_unbind_itself_on_release,
    a_fork_that_runs_out_of_memory_leaves_no_reference_behind,
);
