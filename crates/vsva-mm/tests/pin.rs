//! Pinning user pages for DMA (`pin_user_pages(FOLL_LONGTERM)`) and locked-memory accounting.

use std::sync::Arc;

mod common;

use vsva_mem::{Access, Va};
use vsva_mm::{Advice, CpuArch, MapFlags, MemoryManager, MmError, Prot};

use common::manager;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
const PAGE: u64 = 4096;

fn mm(arch: CpuArch) -> Arc<MemoryManager> {
    manager(arch, 4 * GIB)
}

fn pinning_faults_pages_in_and_returns_their_frames(arch: CpuArch) {
    let mm = mm(arch);
    let p = mm.spawn().unwrap();
    let va = p.mmap(None, 3 * PAGE, Prot::RW, MapFlags::empty()).unwrap();
    p.write_bytes(Va::new(va.raw() + PAGE), b"pinned").unwrap();
    let runs = p.pin_pages(va, 3 * PAGE, true).unwrap();
    assert_eq!(runs.len(), 3, "three 4 KiB frames, one run each");
    for i in 0..3 {
        let at = Va::new(va.raw() + i * PAGE);
        assert_eq!(p.is_dirty(at), Some(true), "pinned for write: dirty");
    }
    for (i, r) in runs.iter().enumerate() {
        let want = p
            .translate(Va::new(va.raw() + i as u64 * PAGE), Access::WRITE)
            .unwrap();
        assert_eq!(r.pa, want.output);
        assert_eq!(r.len, PAGE);
        assert_eq!(mm.pin_count(r.frame), 1);
        assert_eq!(mm.map_count(r.frame), 1);
        assert_eq!(mm.page_refs(r.frame), 2);
    }
    // what a device writes through the pin is what the process reads
    mm.memory().write(runs[1].pa + 6, b"!").unwrap();
    let mut got = [0u8; 7];
    p.read_bytes(Va::new(va.raw() + PAGE), &mut got).unwrap();
    assert_eq!(&got, b"pinned!");
    p.unpin_pages(&runs);
    assert!(
        runs.iter()
            .all(|r| mm.pin_count(r.frame) == 0 && mm.page_refs(r.frame) == 1)
    );
}

fn a_huge_page_is_one_run_per_frame(arch: CpuArch) {
    let mm = mm(arch);
    let p = mm.spawn().unwrap();
    let va = p.mmap(None, 4 * MIB, Prot::RW, MapFlags::HUGE_2M).unwrap();
    // from the middle of the first 2 MiB page to the middle of the second
    let runs = p
        .pin_pages(Va::new(va.raw() + MIB), 2 * MIB, false)
        .unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].len, MIB);
    assert_eq!(runs[0].pa, runs[0].frame + MIB);
    assert_eq!(runs[1].pa, runs[1].frame);
    assert_eq!(runs[0].frame % (2 * MIB), 0);
    p.unpin_pages(&runs);
}

fn pinned_pages_outlive_munmap_and_are_freed_by_the_last_unpin(arch: CpuArch) {
    let mm = mm(arch);
    let p = mm.spawn().unwrap();
    let va = p.mmap(None, PAGE, Prot::RW, MapFlags::POPULATE).unwrap();
    let in_use = mm.stats().pages_in_use;
    let runs = p.pin_pages(va, PAGE, true).unwrap();
    p.munmap(va, PAGE).unwrap();
    assert_eq!(
        mm.stats().pages_in_use,
        in_use,
        "the pinned frame is still allocated"
    );
    assert_eq!(mm.page_refs(runs[0].frame), 1);
    p.unpin_pages(&runs);
    assert_eq!(mm.stats().pages_in_use, in_use - 1);
    assert_eq!(mm.page_refs(runs[0].frame), 0);
}

fn pinned_pages_are_not_paged_out(arch: CpuArch) {
    let mm = mm(arch);
    let p = mm.spawn().unwrap();
    let va = p
        .mmap(None, 2 * PAGE, Prot::RW, MapFlags::POPULATE)
        .unwrap();
    let runs = p.pin_pages(va, PAGE, true).unwrap();
    p.madvise(va, 2 * PAGE, Advice::PageOut).unwrap();
    assert_eq!(mm.swapped_pages(), 1, "only the unpinned page went to swap");
    assert_eq!(p.translate(va, Access::READ).unwrap().output, runs[0].pa);
    p.unpin_pages(&runs);
}

fn fork_copies_pinned_pages_so_device_writes_stay_with_the_parent(arch: CpuArch) {
    let mm = mm(arch);
    let p = mm.spawn().unwrap();
    let va = p.mmap(None, 2 * PAGE, Prot::RW, MapFlags::empty()).unwrap();
    p.write_bytes(va, b"parent").unwrap();
    p.write_bytes(Va::new(va.raw() + PAGE), b"shared").unwrap();
    let runs = p.pin_pages(va, PAGE, true).unwrap();
    let child = p.fork().unwrap();
    // the pinned page stays writable in the parent (no copy-on-write fault would move it)
    assert!(p.translate(va, Access::WRITE).is_ok());
    let child_pa = child.translate(va, Access::READ).unwrap().output;
    assert_ne!(child_pa, runs[0].pa, "the child got its own copy");
    let mut got = [0u8; 6];
    child.read_bytes(va, &mut got).unwrap();
    assert_eq!(&got, b"parent");
    // a device write through the pin reaches the parent only
    mm.memory().write(runs[0].pa, b"device").unwrap();
    p.read_bytes(va, &mut got).unwrap();
    assert_eq!(&got, b"device");
    child.read_bytes(va, &mut got).unwrap();
    assert_eq!(&got, b"parent");
    // the unpinned page is shared copy-on-write as before
    let ppa = p
        .translate(Va::new(va.raw() + PAGE), Access::READ)
        .unwrap()
        .output;
    let cpa = child
        .translate(Va::new(va.raw() + PAGE), Access::READ)
        .unwrap()
        .output;
    assert_eq!(ppa, cpa);
    p.unpin_pages(&runs);
    child.exit().unwrap();
}

fn pinning_a_cow_shared_page_for_write_unshares_it_first(arch: CpuArch) {
    let mm = mm(arch);
    let p = mm.spawn().unwrap();
    let va = p.mmap(None, PAGE, Prot::RW, MapFlags::POPULATE).unwrap();
    let child = p.fork().unwrap();
    let shared = child.translate(va, Access::READ).unwrap().output;
    assert_eq!(p.translate(va, Access::READ).unwrap().output, shared);
    let runs = p.pin_pages(va, PAGE, false).unwrap();
    assert_ne!(
        runs[0].pa, shared,
        "the parent broke the sharing before pinning"
    );
    assert_eq!(mm.map_count(runs[0].frame), 1);
    p.unpin_pages(&runs);
}

fn bad_ranges_give_the_errors_gup_gives_and_pin_nothing(arch: CpuArch) {
    let mm = mm(arch);
    let p = mm.spawn().unwrap();
    let va = p.mmap(None, 2 * PAGE, Prot::RW, MapFlags::empty()).unwrap();
    let ro = p.mmap(None, PAGE, Prot::READ, MapFlags::empty()).unwrap();
    let in_use = mm.stats().pages_in_use;
    assert!(matches!(
        p.pin_pages(Va::new(va.raw() + 1), PAGE, true),
        Err(MmError::Invalid(_))
    ));
    assert!(matches!(p.pin_pages(va, 0, true), Err(MmError::Invalid(_))));
    assert!(matches!(
        p.pin_pages(Va::new(u64::MAX - PAGE + 1), 2 * PAGE, true),
        Err(MmError::Invalid(_))
    ));
    // the second page is fine, the third is not mapped: EFAULT, and the first two unpinned
    let e = p.pin_pages(va, 3 * PAGE, true).unwrap_err();
    assert_eq!(e.errno(), vsva_mem::Errno::EFAULT, "{e}");
    let e = p.pin_pages(ro, PAGE, true).unwrap_err();
    assert!(matches!(e, MmError::AccessDenied { .. }), "{e}");
    // pages faulted in stay mapped (as GUP leaves them) but none is pinned
    let pas: Vec<u64> = (0..2)
        .map(|i| {
            p.translate(Va::new(va.raw() + i * PAGE), Access::READ)
                .unwrap()
                .output
        })
        .collect();
    assert!(
        pas.iter()
            .all(|&pa| mm.pin_count(pa) == 0 && mm.page_refs(pa) == 1)
    );
    assert_eq!(mm.stats().pages_in_use, in_use + 2);
    // a read-only mapping can be pinned for reading
    let runs = p.pin_pages(ro, PAGE, false).unwrap();
    p.unpin_pages(&runs);
    p.exit().unwrap();
    assert!(matches!(p.pin_pages(va, PAGE, true), Err(MmError::Exited)));
    assert_eq!(mm.stats().pages_in_use, 0);
}

fn locked_memory_is_charged_against_the_limit(arch: CpuArch) {
    let mm = mm(arch);
    let p = mm.spawn().unwrap();
    assert_eq!(p.memlock_limit(), u64::MAX);
    p.set_memlock_limit(8 * PAGE);
    p.account_locked(5).unwrap();
    let e = p.account_locked(4).unwrap_err();
    assert_eq!(
        e,
        MmError::MemlockLimit {
            wanted: 4,
            locked: 5,
            limit: 8
        }
    );
    assert_eq!(e.errno(), vsva_mem::Errno::ENOMEM);
    assert_eq!(p.locked_pages(), 5, "a refused charge charges nothing");
    p.account_locked(3).unwrap();
    p.unaccount_locked(8);
    assert_eq!(p.locked_pages(), 0);
    assert!(p.account_locked(u64::MAX).is_err(), "no overflow");
}

on_both_archs!(
    pinning_faults_pages_in_and_returns_their_frames,
    a_huge_page_is_one_run_per_frame,
    pinned_pages_outlive_munmap_and_are_freed_by_the_last_unpin,
    pinned_pages_are_not_paged_out,
    fork_copies_pinned_pages_so_device_writes_stay_with_the_parent,
    pinning_a_cow_shared_page_for_write_unshares_it_first,
    bad_ranges_give_the_errors_gup_gives_and_pin_nothing,
    locked_memory_is_charged_against_the_limit,
);
