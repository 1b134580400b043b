use super::*;
use crate::fault::FaultReason;
use crate::perm::Perm;
use crate::table::PageTable;
use crate::testutil::Racing;
use crate::vtd_ss::VtdSecondStage;
use crate::x86::{X86Flags, X86Paging};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};
use vsva_mem::{FrameAllocator, PageSize, PhysMemory, PhysWindow};

const MIB: u64 = 1 << 20;
/// Where the guest's RAM sits in host memory.
const RAM_HPA: u64 = 512 * MIB;
const RAM_SIZE: u64 = 64 * MIB;
/// A guest data page.
const DATA_GPA: u64 = 0x10_0000;
/// Another guest data page.
const DATA2_GPA: u64 = 0x20_0000;
const VA: u64 = 0x7f12_3456_7000;
const UR: Access = Access::READ;
const UW: Access = Access::READ.union(Access::WRITE);

struct Vm {
    host: Arc<PhysMemory>,
    s2: PageTable<VtdSecondStage>,
    s1: PageTable<X86Paging>,
}

impl Vm {
    /// Guest RAM mapped GPA -> RAM_HPA + GPA with `s2_size` pages; one guest page at `VA`.
    fn new(s2_size: PageSize, s1_ad: bool) -> Vm {
        let host = Arc::new(PhysMemory::new(RAM_HPA + RAM_SIZE).unwrap());
        let host_dyn: Arc<dyn PhysMem> = host.clone();
        let host_frames = Arc::new(FrameAllocator::new(host_dyn.clone(), 0, 256 * MIB));
        let ram: Arc<dyn PhysMem> = Arc::new(PhysWindow::new(host_dyn, RAM_HPA, RAM_SIZE).unwrap());
        let guest_frames = Arc::new(FrameAllocator::new(ram, 16 * MIB, RAM_SIZE));
        let s2 = PageTable::new(VtdSecondStage::four_level(), host_frames).unwrap();
        let mut gpa = 0;
        while gpa < RAM_SIZE {
            s2.map(gpa, RAM_HPA + gpa, s2_size, Perm::RW).unwrap();
            gpa += s2_size.bytes();
        }
        let s1_fmt = X86Paging {
            ad: s1_ad,
            ..X86Paging::default()
        };
        let s1 = PageTable::new(s1_fmt, guest_frames).unwrap();
        s1.map(VA, DATA_GPA, PageSize::Size4K, Perm::USER_RW)
            .unwrap();
        Vm { host, s2, s1 }
    }

    fn walk(&self, va: u64, access: Access) -> Result<Translation, Fault> {
        let s2 = Stage2 {
            format: self.s2.format(),
            mem: self.host.as_ref(),
            root: self.s2.root(),
        };
        nested_walk(self.s1.format(), self.s1.root(), &s2, va, access)
    }

    /// A first-stage PTE mapping `gpa` for the user, read-write, without A/D.
    fn s1_pte(&self, gpa: u64) -> u64 {
        self.s1
            .format()
            .encode_leaf(gpa, PageSize::Size4K, Perm::USER_RW)
    }

    /// GPA of the first-stage entry at `level` used to translate `VA`.
    fn s1_entry_gpa(&self, level: u8) -> u64 {
        let mut table = self.s1.root();
        for l in (level + 1..=4).rev() {
            let e = self
                .s1
                .memory()
                .load_u64(table + crate::format::index(VA, l) * 8)
                .unwrap();
            table = e & 0x000f_ffff_ffff_f000;
        }
        table + crate::format::index(VA, level) * 8
    }
}

#[test]
fn cold_four_plus_four_walk_makes_24_references() {
    let vm = Vm::new(PageSize::Size4K, false);
    let t = vm.walk(VA + 0x123, UR).unwrap();
    assert_eq!(t.output, RAM_HPA + DATA_GPA + 0x123);
    assert_eq!(t.refs, 24);
    assert_eq!(t.size, PageSize::Size4K);
    assert_eq!(t.rights, Perm::USER_RW);
}

#[test]
fn large_second_stage_pages_shorten_the_walk() {
    // Each second-stage walk is 3 entries with 2 MiB leaves: 4 x (3 + 1) + 3 = 19.
    let vm = Vm::new(PageSize::Size2M, false);
    let t = vm.walk(VA, UR).unwrap();
    assert_eq!(t.refs, 19);
    assert_eq!(
        t.size,
        PageSize::Size4K,
        "the smaller of the two stages' pages"
    );
}

#[test]
fn first_stage_accessed_dirty_are_written_into_guest_memory() {
    let vm = Vm::new(PageSize::Size4K, true);
    let first = vm.walk(VA, UW).unwrap();
    // Four A/D updates, each re-translating its table page for write: 4 x 4 more reads.
    assert_eq!(first.refs, 24 + 16);
    let a = X86Flags::A.bits();
    let d = X86Flags::D.bits();
    let leaf = vm.s1.lookup(VA).unwrap().entry;
    assert_eq!(leaf & (a | d), a | d);
    // the bits are in guest RAM, i.e. in host memory at RAM_HPA + GPA
    let pte_gpa = vm.s1_entry_gpa(1);
    assert_eq!(vm.host.load_u64(RAM_HPA + pte_gpa).unwrap(), leaf);
    // warm: nothing left to set, 24 reads
    assert_eq!(vm.walk(VA, UW).unwrap().refs, 24);
}

#[test]
fn second_stage_fault_on_a_first_stage_table_names_its_gpa() {
    let vm = Vm::new(PageSize::Size4K, false);
    let pdpte_gpa = vm.s1_entry_gpa(3);
    let un = vm.s2.unmap(pdpte_gpa & !0xfff, 0x1000).unwrap();
    assert_eq!(un.leaves.len(), 1);
    let f = vm.walk(VA, UR).unwrap_err();
    assert_eq!(f.stage, Stage::Second);
    assert_eq!(f.reason, FaultReason::NotPresent);
    assert_eq!(f.level, 1);
    assert_eq!(f.input, pdpte_gpa);
}

#[test]
fn accessed_dirty_update_needs_second_stage_write() {
    let vm = Vm::new(PageSize::Size4K, true);
    // Make the page holding the first-stage PTE read-only in stage 2.
    let pte_gpa = vm.s1_entry_gpa(1);
    vm.s2.protect(pte_gpa & !0xfff, 0x1000, Perm::READ).unwrap();
    // A read needs A set in the PTE, which is a write to a read-only table page.
    let f = vm.walk(VA, UR).unwrap_err();
    assert_eq!(
        (f.stage, f.reason),
        (Stage::Second, FaultReason::Permission)
    );
    assert_eq!(f.input, pte_gpa);
    // Upper levels got their A bits before the PTE update faulted.
    // Once A and D are already set, reads and writes need no update and succeed.
    let leaf = vm.s1.lookup(VA).unwrap();
    vm.s1
        .memory()
        .store_u64(
            leaf.slot,
            leaf.entry | X86Flags::A.bits() | X86Flags::D.bits(),
        )
        .unwrap();
    assert!(vm.walk(VA, UR).is_ok());
    assert!(vm.walk(VA, UW).is_ok());
}

#[test]
fn rights_are_the_intersection_of_both_stages() {
    let vm = Vm::new(PageSize::Size4K, false);
    vm.s2.protect(DATA_GPA, 0x1000, Perm::READ).unwrap();
    let t = vm.walk(VA, UR).unwrap();
    assert_eq!(t.rights, Perm::READ | Perm::USER);
    let f = vm.walk(VA + 8, UW).unwrap_err();
    assert_eq!(
        (f.stage, f.reason),
        (Stage::Second, FaultReason::Permission)
    );
    assert_eq!(f.input, DATA_GPA + 8);
    // first-stage faults are reported as such, with the VA
    let f = vm.walk(VA + 0x1000, UR).unwrap_err();
    assert_eq!(
        (f.stage, f.reason, f.level, f.input),
        (Stage::First, FaultReason::NotPresent, 1, VA + 0x1000)
    );
}

#[test]
fn a_first_stage_root_outside_guest_ram_faults_in_stage_two() {
    let vm = Vm::new(PageSize::Size4K, false);
    let s2 = Stage2 {
        format: vm.s2.format(),
        mem: vm.host.as_ref(),
        root: vm.s2.root(),
    };
    let f = nested_walk(vm.s1.format(), RAM_SIZE + 0x1000, &s2, VA, UR).unwrap_err();
    assert_eq!(
        (f.stage, f.reason),
        (Stage::Second, FaultReason::NotPresent)
    );
    let f = nested_walk(vm.s1.format(), 1 << 50, &s2, VA, UR).unwrap_err();
    assert_eq!(
        (f.stage, f.reason),
        (Stage::Second, FaultReason::AddressWidth)
    );
}

#[test]
fn a_first_stage_pte_repointed_during_a_nested_walk_translates_to_the_new_frame() {
    let vm = Vm::new(PageSize::Size4K, true);
    let pte_hpa = RAM_HPA + vm.s1_entry_gpa(1);
    let new = vm.s1_pte(DATA2_GPA);
    let mem = Racing::new(vm.host.as_ref(), pte_hpa, [move |_| new]);
    let s2 = Stage2 {
        format: vm.s2.format(),
        mem: &mem,
        root: vm.s2.root(),
    };
    let t = nested_walk(vm.s1.format(), vm.s1.root(), &s2, VA, UW).unwrap();
    assert_eq!(t.output, RAM_HPA + DATA2_GPA);
    let ad = X86Flags::A.bits() | X86Flags::D.bits();
    assert_eq!(vm.host.load_u64(pte_hpa).unwrap(), new | ad);
}

#[test]
fn nested_walks_racing_a_thread_that_rewrites_the_pte_end_with_the_old_or_the_new_frame() {
    // Issue 12: a CPU thread re-points the guest's PTE between two frames, storing fresh
    // entries (no A/D), while a device writes through it: nearly every walk has A and D to set
    // and its swaps race the thread. The thread's pace sweeps from back-to-back stores to a
    // pause of 127 spins, so that at some pace one store lands in every window between a
    // walk's read of the PTE and its swap (which made the walker that restarted from the root
    // fail 65 times in a row, in some 0.02 % of these walks). No walk may fault.
    let vm = Vm::new(PageSize::Size4K, true);
    let pte_hpa = RAM_HPA + vm.s1_entry_gpa(1);
    let ptes = [vm.s1_pte(DATA_GPA), vm.s1_pte(DATA2_GPA)];
    let pages = [RAM_HPA + DATA_GPA, RAM_HPA + DATA2_GPA];
    // No scripted writes: counts the swaps on the PTE that lost to the thread.
    let mem = Racing::new(vm.host.as_ref(), pte_hpa, Vec::<fn(u64) -> u64>::new());
    let s2 = Stage2 {
        format: vm.s2.format(),
        mem: &mem,
        root: vm.s2.root(),
    };
    let stop = AtomicBool::new(false);
    let mut walks = 0u32;
    let mut wrong = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            for k in 0usize.. {
                if stop.load(Relaxed) {
                    break;
                }
                vm.host.store_u64(pte_hpa, ptes[k % 2]).unwrap();
                for _ in 0..(k / 1024) % 128 {
                    std::hint::spin_loop();
                }
            }
        });
        // 400 ms, longer (up to 5 s) on a machine too busy to have run both threads at once.
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(400)
            || (mem.failed.load(Relaxed) == 0 && start.elapsed() < Duration::from_secs(5))
        {
            for _ in 0..256 {
                walks += 1;
                match nested_walk(vm.s1.format(), vm.s1.root(), &s2, VA, UW) {
                    Ok(t) if pages.contains(&t.page_base()) => {}
                    r => wrong.push(r),
                }
            }
        }
        stop.store(true, Relaxed);
    });
    assert!(
        wrong.is_empty(),
        "{} of {walks} walks: {:x?}",
        wrong.len(),
        &wrong[..wrong.len().min(4)]
    );
    // Whether the two threads ever ran at once is up to the scheduler: on a machine busy
    // with other tests they may not have, and then this run shows nothing either way (the
    // deterministic tests in walk/tests.rs place the same races on purpose).
    if mem.failed.load(Relaxed) == 0 {
        eprintln!("note: the writer never raced the walker in {walks} walks (busy machine)");
    }
}
