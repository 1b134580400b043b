//! Arm64 processes: the descriptors the memory manager writes, worked out from the Arm ARM
//! (DDI 0487 D8, stage 1 block and page descriptors) and Linux arm64's user page
//! protections (`arch/arm64/include/asm/pgtable-prot.h`), and a walk of a process's table
//! as an SMMU sharing it (SVA) does.

mod common;

use std::sync::{Arc, Mutex};

use vsva_mem::{Access, PageSize, Va};
use vsva_mm::softpte::{self, PteKind};
use vsva_mm::{
    Advice, CpuArch, InvalidateReason, MapFlags, MmuNotifier, Pid, Process, Prot, SvaContext,
};
use vsva_pgtable::arm::{ArmFault, ArmFaultKind, ArmS1, pa_size_bits};
use vsva_pgtable::walk::Direct;
use vsva_pgtable::{FaultReason, walk};

use common::{hw_walk, manager};

const GIB: u64 = 1 << 30;
const PAGE: u64 = 4096;
const R: Access = Access::READ;
const W: Access = Access::READ.union(Access::WRITE);
const X: Access = Access::READ.union(Access::EXEC);

// Descriptor bits (DDI 0487 D8; Linux names in brackets).
const VALID_PAGE: u64 = 0b11; // bit 0 valid, bit 1 page at level 3 [PTE_TYPE_PAGE]
const AP1: u64 = 1 << 6; // EL0 access [PTE_USER]
const AP2: u64 = 1 << 7; // read-only [PTE_RDONLY]
const SH_INNER: u64 = 0b11 << 8; // [PTE_SHARED]
const AF: u64 = 1 << 10; // [PTE_AF]
const NG: u64 = 1 << 11; // [PTE_NG]
const DBM: u64 = 1 << 51; // [PTE_WRITE]
const SW_DIRTY: u64 = 1 << 55; // [PTE_DIRTY]
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;
/// What every user page has: valid page, AttrIndx 0 (MT_NORMAL), EL0 access, Inner
/// Shareable, AF, nG, PXN.
const USER: u64 = VALID_PAGE | AP1 | SH_INNER | AF | NG | PXN;

fn arm() -> (Arc<vsva_mm::MemoryManager>, Arc<Process>) {
    let mm = manager(CpuArch::Arm64, 4 * GIB);
    let p = mm.spawn().unwrap();
    (mm, p)
}

fn entry(p: &Process, va: Va) -> u64 {
    p.leaf(va).unwrap().entry
}

fn frame(p: &Process, va: Va) -> u64 {
    p.leaf(va).unwrap().pa
}

#[derive(Default)]
struct Events(Mutex<Vec<(u64, u64, InvalidateReason)>>);

impl MmuNotifier for Events {
    fn invalidate_range(&self, _: Pid, start: Va, end: Va, reason: InvalidateReason) {
        self.0
            .lock()
            .unwrap()
            .push((start.raw(), end.raw(), reason));
    }
    fn release(&self, _: Pid) {}
}

#[test]
fn a_read_fault_maps_writable_clean_and_a_write_fault_writable_dirty() {
    let (_mm, p) = arm();
    assert_eq!(p.arch(), CpuArch::Arm64);
    let va = p.mmap(None, 2 * PAGE, Prot::RW, MapFlags::empty()).unwrap();
    let second = Va::new(va.raw() + PAGE);
    p.handle_fault(va, R).unwrap();
    p.handle_fault(second, W).unwrap();
    // PAGE_SHARED-like: DBM = 1 with AP[2] = 1 is writable-clean; UXN as PROT_EXEC is off
    assert_eq!(entry(&p, va), frame(&p, va) | USER | AP2 | DBM | UXN);
    assert_eq!(entry(&p, va), frame(&p, va) | 0x0068_0000_0000_0fc3);
    // a write fault: AP[2] = 0, writable-dirty
    assert_eq!(entry(&p, second), frame(&p, second) | USER | DBM | UXN);
    assert_eq!(entry(&p, second), frame(&p, second) | 0x0068_0000_0000_0f43);
    assert_eq!(p.is_dirty(va), Some(false));
    assert_eq!(p.is_dirty(second), Some(true));
    // a read-only mapping has no DBM; an executable one clears UXN (PXN stays: user pages
    // are never executable at EL1)
    let ro = p.mmap(None, PAGE, Prot::READ, MapFlags::POPULATE).unwrap();
    assert_eq!(entry(&p, ro), frame(&p, ro) | USER | AP2 | UXN);
    let rx = p
        .mmap(None, PAGE, Prot::READ | Prot::EXEC, MapFlags::POPULATE)
        .unwrap();
    assert_eq!(entry(&p, rx), frame(&p, rx) | USER | AP2);
    assert!(p.translate(rx, X).is_ok());
    let f = p.translate(va, X).unwrap_err();
    assert_eq!(
        f.reason,
        FaultReason::Permission,
        "UXN: EL0 may not execute"
    );
    assert!(
        p.translate(rx, X | Access::PRIV).is_err(),
        "PXN: EL1 may not"
    );
}

#[test]
fn hardware_dirty_state_is_what_the_mm_reads_as_dirty() {
    let (mm, p) = arm();
    let va = p.mmap(None, PAGE, Prot::RW, MapFlags::empty()).unwrap();
    p.handle_fault(va, R).unwrap();
    assert_eq!(p.read_and_clear_dirty(va, PAGE, false).unwrap(), vec![]);
    // an SMMU or CPU write with TCR.HD: the walk clears AP[2] of the DBM page, no fault
    let root = p.page_table_root().unwrap();
    hw_walk(&mm, root, va.raw(), W).unwrap();
    assert_eq!(entry(&p, va) & (AP2 | DBM), DBM);
    assert_eq!(p.is_dirty(va), Some(true));
    let l = Arc::new(Events::default());
    p.register_notifier(l.clone());
    assert_eq!(
        p.read_and_clear_dirty(va, PAGE, true).unwrap(),
        vec![(va, PageSize::Size4K)]
    );
    // cleaned: writable-clean again, and announced so cached dirty translations go
    assert_eq!(entry(&p, va), frame(&p, va) | USER | AP2 | DBM | UXN);
    assert_eq!(
        l.0.lock().unwrap().clone(),
        vec![(va.raw(), va.raw() + PAGE, InvalidateReason::Protect)]
    );
    // the CPU model's own write marks it the same way
    p.write_bytes(va, b"x").unwrap();
    assert_eq!(p.is_dirty(va), Some(true));
    assert_eq!(
        mm.stats().cow_reuses + mm.stats().spurious,
        0,
        "no fault needed"
    );
}

#[test]
fn mprotect_sets_ap_uxn_and_the_invalid_encoding_keeping_dirty_state() {
    let (_mm, p) = arm();
    let va = p.mmap(None, PAGE, Prot::RW, MapFlags::empty()).unwrap();
    p.write_bytes(va, &[7; 8]).unwrap();
    let pa = frame(&p, va);
    // read-only: AP[2] = 1, DBM = 0; the hardware dirty state moves to the software bit
    p.mprotect(va, PAGE, Prot::READ).unwrap();
    assert_eq!(entry(&p, va), pa | USER | AP2 | UXN | SW_DIRTY);
    assert_eq!(entry(&p, va), pa | 0x00e0_0000_0000_0fc3);
    assert_eq!(p.is_dirty(va), Some(true));
    assert_eq!(
        p.translate(va, W).unwrap_err().reason,
        FaultReason::Permission
    );
    // none: bit 0 clear (an invalid descriptor, a Translation fault at level 3), nG marks
    // it as a PROT_NONE page, everything else kept
    p.mprotect(va, PAGE, Prot::empty()).unwrap();
    let hidden = entry(&p, va);
    assert_eq!(hidden, (pa | USER | AP2 | UXN | SW_DIRTY) & !1);
    assert_eq!(softpte::arm::classify(hidden), PteKind::ProtNone);
    let f = p.translate(va, R).unwrap_err();
    assert_eq!(
        ArmFault::from_fault(&f),
        ArmFault {
            kind: ArmFaultKind::Translation,
            stage: vsva_pgtable::Stage::First,
            level: 3,
            input: va.raw()
        }
    );
    // exec: UXN clear
    p.mprotect(va, PAGE, Prot::READ | Prot::EXEC).unwrap();
    assert_eq!(entry(&p, va), pa | USER | AP2 | SW_DIRTY);
    assert!(p.translate(va, X).is_ok());
    // writable again: dirty, so writable-dirty at once (Linux `pte_modify`)
    p.mprotect(va, PAGE, Prot::RW).unwrap();
    assert_eq!(entry(&p, va), pa | USER | DBM | UXN | SW_DIRTY);
    let mut b = [0u8; 8];
    p.read_bytes(va, &mut b).unwrap();
    assert_eq!(b, [7; 8]);
    // a clean page made read-only and back stays clean: writable-clean, not dirty
    let clean = p.mmap(None, PAGE, Prot::RW, MapFlags::empty()).unwrap();
    p.handle_fault(clean, R).unwrap();
    let cpa = frame(&p, clean);
    p.mprotect(clean, PAGE, Prot::READ).unwrap();
    assert_eq!(entry(&p, clean), cpa | USER | AP2 | UXN);
    assert_eq!(p.is_dirty(clean), Some(false));
    p.mprotect(clean, PAGE, Prot::RW).unwrap();
    assert_eq!(entry(&p, clean), cpa | USER | AP2 | DBM | UXN);
}

#[test]
fn swap_entries_round_trip_in_linux_arm64_layout() {
    let (mm, p) = arm();
    let va = p.mmap(None, PAGE, Prot::RW, MapFlags::empty()).unwrap();
    p.write_bytes(va, &[0x5a; 64]).unwrap();
    p.madvise(va, PAGE, Advice::PageOut).unwrap();
    let e = entry(&p, va);
    // bits 1:0 and 11 clear, type 0 in bits 10:6, the slot in bits 61:12
    assert_eq!(e & 0xfff, 0);
    let PteKind::Swap(slot) = softpte::arm::classify(e) else {
        panic!("{e:#x} is not a swap entry");
    };
    assert_eq!(e, slot << 12);
    assert_eq!(softpte::arm::swap_entry(slot), e);
    assert_eq!(mm.swapped_pages(), 1);
    assert_eq!(
        p.translate(va, R).unwrap_err().reason,
        FaultReason::NotPresent
    );
    let mut b = [0u8; 64];
    p.read_bytes(va, &mut b).unwrap();
    assert_eq!(b, [0x5a; 64]);
    assert_eq!(mm.swapped_pages(), 0);
    // the slot is gone: memory holds the only copy, so the page is dirty
    assert_eq!(p.is_dirty(va), Some(true));
    assert_eq!(
        entry(&p, va) & (VALID_PAGE | AP1 | NG | AF),
        VALID_PAGE | AP1 | NG | AF
    );
}

#[test]
fn fork_write_protects_keeping_dirty_and_copies_on_write() {
    let (mm, parent) = arm();
    let va = parent
        .mmap(None, PAGE, Prot::RW, MapFlags::empty())
        .unwrap();
    parent.write_bytes(va, b"parent").unwrap();
    let pa = frame(&parent, va);
    let child = parent.fork().unwrap();
    assert_ne!(child.asid(), parent.asid(), "an ASID per address space");
    // both map the frame read-only (AP[2] = 1, no DBM), dirty in the software bit
    let shared = pa | USER | AP2 | UXN | SW_DIRTY;
    assert_eq!(entry(&parent, va), shared);
    assert_eq!(entry(&child, va), shared);
    assert_eq!(mm.page_refs(pa), 2);
    // the child writes: a copy, mapped writable-dirty
    child.write_bytes(va, b"child").unwrap();
    let copy = frame(&child, va);
    assert_ne!(copy, pa);
    assert_eq!(entry(&child, va) & (AP2 | DBM), DBM);
    assert_eq!(mm.stats().cow_copies, 1);
    // the parent writes: no longer shared, reused; dirty already, so writable-dirty
    parent.write_bytes(va, b"P").unwrap();
    assert_eq!(mm.stats().cow_reuses, 1);
    assert_eq!(entry(&parent, va), pa | USER | DBM | UXN | SW_DIRTY);
    let mut b = [0u8; 6];
    parent.read_bytes(va, &mut b).unwrap();
    assert_eq!(&b, b"Parent");
    child.read_bytes(va, &mut b).unwrap();
    assert_eq!(&b[..5], b"child");
}

#[test]
fn exit_frees_pages_tables_and_the_asid() {
    let mm = manager(CpuArch::Arm64, GIB);
    let before = mm.frames().allocated_frames();
    let a = mm.spawn().unwrap();
    let b = mm.spawn().unwrap();
    assert_eq!((a.asid(), b.asid()), (1, 2), "ASID 0 is reserved");
    let va = a
        .mmap(None, 16 * PAGE, Prot::RW, MapFlags::POPULATE)
        .unwrap();
    a.mmap(
        None,
        2 << 20,
        Prot::RW,
        MapFlags::HUGE_2M | MapFlags::POPULATE,
    )
    .unwrap();
    a.madvise(va, PAGE, Advice::PageOut).unwrap();
    a.exit().unwrap();
    drop(b);
    assert_eq!(mm.frames().allocated_frames(), before);
    assert_eq!(mm.swapped_pages(), 0);
    let c = mm.spawn().unwrap();
    assert_eq!(c.asid(), 1, "exit gave the ASID back");
}

/// An SMMU sharing the table: it builds its stage-1 configuration from the CD fields the
/// OS gives (T0SZ, TG0, IPS, HA/HD) and walks with EL0 (unprivileged) accesses.
fn smmu_walk(p: &Process, ctx: &SvaContext, va: Va, access: Access) -> Result<u64, ArmFault> {
    let tcr = ctx.arm.expect("an Arm64 context");
    assert_eq!(tcr.tg0, 0b00, "4 KiB granule");
    let s1 = ArmS1 {
        tsz: tcr.t0sz,
        pa_bits: pa_size_bits(tcr.ips).unwrap(),
        ha: tcr.ha,
        hd: tcr.hd,
        ..ArmS1::with_va_bits(48)
    };
    let mm = p.memory_manager();
    walk(
        &s1,
        mm.memory(),
        ctx.root,
        va.raw(),
        access,
        &mut Direct,
        &mut (),
    )
    .map(|t| t.output)
    .map_err(|f| ArmFault::from_fault(&f))
}

#[test]
fn an_smmu_walking_the_shared_table_finds_the_cpus_frames() {
    let (_mm, p) = arm();
    let va = p.mmap(None, 4 * PAGE, Prot::RW, MapFlags::empty()).unwrap();
    p.write_bytes(Va::new(va.raw() + 100), b"shared").unwrap();
    let live = p.hold().unwrap();
    let ctx = live.sva();
    assert_eq!(ctx.root, p.page_table_root().unwrap());
    assert_eq!(ctx.levels(), 4);
    assert_eq!(ctx.arch(), CpuArch::Arm64);
    let tcr = ctx.arm.unwrap();
    assert_eq!(
        (tcr.asid, tcr.t0sz, tcr.ips, tcr.irgn0, tcr.orgn0, tcr.sh0),
        (p.asid(), 16, 0b101, 0b01, 0b01, 0b11)
    );
    assert!(tcr.ha && tcr.hd);
    assert_eq!(
        tcr.mair, 0x0000_0004_0044_ffff,
        "Linux MAIR_EL1: index 0 Normal WB"
    );
    assert_eq!(tcr.mair & 0xff, 0xff);
    // the same frame as the CPU's translation
    let at = Va::new(va.raw() + 100);
    let cpu = p.translate(at, R).unwrap().output;
    assert_eq!(smmu_walk(&p, &ctx, at, R), Ok(cpu));
    assert_eq!(smmu_walk(&p, &ctx, at, W), Ok(cpu));
    // an untouched page: a Translation fault the SMMU reports as a page request
    let untouched = Va::new(va.raw() + 2 * PAGE);
    let f = smmu_walk(&p, &ctx, untouched, R).unwrap_err();
    assert_eq!(f.kind, ArmFaultKind::Translation);
    // the IOPF handler's fault, then the retry: a read fault maps it writable-clean, and
    // the device's write marks it dirty through the SMMU (HD)
    p.handle_fault(untouched, R).unwrap();
    let pa = smmu_walk(&p, &ctx, untouched, R).unwrap();
    assert_eq!(p.is_dirty(untouched), Some(false));
    assert_eq!(smmu_walk(&p, &ctx, untouched, W), Ok(pa));
    assert_eq!(p.is_dirty(untouched), Some(true));
    assert_eq!(p.translate(untouched, R).unwrap().output, pa);
    // an EL0 fetch from a page without PROT_EXEC: a Permission fault
    let f = smmu_walk(&p, &ctx, at, X).unwrap_err();
    assert_eq!(f.kind, ArmFaultKind::Permission);
    drop(live);
}

#[test]
fn a_write_fault_dirties_a_writable_clean_page_for_an_smmu_without_hd() {
    let (_mm, p) = arm();
    let va = p.mmap(None, PAGE, Prot::RW, MapFlags::empty()).unwrap();
    p.handle_fault(va, R).unwrap();
    let live = p.hold().unwrap();
    let mut ctx = live.sva();
    // an SMMU without HTTU: CD.HA = CD.HD = 0, so DBM means nothing to it and the
    // writable-clean page (AP[2] = 1) is read-only
    if let Some(tcr) = ctx.arm.as_mut() {
        tcr.ha = false;
        tcr.hd = false;
    }
    let f = smmu_walk(&p, &ctx, va, W).unwrap_err();
    assert_eq!(f.kind, ArmFaultKind::Permission);
    // the I/O page fault makes it writable-dirty in software (Linux `handle_pte_fault`)
    p.handle_fault(va, W).unwrap();
    assert_eq!(entry(&p, va), frame(&p, va) | USER | DBM | UXN);
    assert_eq!(smmu_walk(&p, &ctx, va, W), Ok(frame(&p, va)));
    drop(live);
}

#[test]
fn an_x86_process_has_no_arm_context() {
    let mm = manager(CpuArch::X86_64, GIB);
    let p = mm.spawn().unwrap();
    let ctx = p.sva_context().unwrap();
    assert_eq!(ctx.arch(), CpuArch::X86_64);
    assert_eq!(ctx.levels(), 4);
    assert_eq!(ctx.arm, None);
    assert_eq!(p.asid(), 0);
}
