//! KVM as an oracle for the x86-64 walker.
//!
//! The walker in `vsva-pgtable` claims to translate, fault and set Accessed/Dirty flags as an
//! x86-64 CPU does with 4-level paging (Intel SDM Vol. 3 §4.5 "4-level paging", §4.6 access
//! rights, §4.7 page-fault exceptions and their error codes, §4.8 accessed and dirty flags).
//! This test checks that claim against a CPU as KVM presents it to a guest:
//!
//! 1. The same deterministic sequence of [`PageTable::map`] calls builds the same tables in two
//!    memories: A, which is the guest's physical memory (its host mapping is the KVM memory
//!    slot), and B, vsva's reference. The tables map 4 KiB pages (read-only, writable,
//!    execute-disable), 2 MiB pages, a 1 GiB page, holes at every level, and entries with
//!    reserved bits (bit 51, bit MAXPHYADDR, PS in a PML4E, a misaligned 2 MiB leaf) or with
//!    ignored bits set. Every page touched holds distinct data (each `u64` is its physical
//!    address xor a pattern), so a value read names the frame it was read from.
//! 2. A tiny long-mode guest (CPL 0, CR0.WP = 1, EFER.NXE = 1, no SMEP/SMAP) performs one
//!    access per run: `mov rax, [rdi]`, `mov [rdi], rsi`, or a jump to the address (an
//!    instruction fetch of a `hlt` placed there). A #PF or #GP lands in a handler that halts.
//! 3. For every access vsva walks memory B with the guest's configuration (MAXPHYADDR and
//!    1 GiB-page support from KVM's supported CPUID) and must agree with the CPU: same value
//!    read (so the same output address), or a fault with the same error code (bits 4:0) and
//!    CR2 = the address; non-canonical addresses must be #GP for the CPU and an address-width
//!    fault for vsva. Writes that succeed are repeated in B at vsva's output address.
//! 4. At the end every paging-structure frame and every data page must be byte-for-byte equal
//!    in A and B: the Accessed and Dirty flags the CPU set are exactly those vsva's walker set
//!    (including none at all on walks that faulted).
//!
//! Where `/dev/kvm` is missing or cannot be opened the test prints `SKIP kvm_oracle: ...` and
//! passes; every other failure is a test failure.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kvm_bindings::{KVM_MAX_CPUID_ENTRIES, kvm_segment, kvm_userspace_memory_region};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd};
use vsva_mem::{Access, FrameAllocator, PageSize, PhysMem, PhysMemory};
use vsva_pgtable::walk::Direct;
use vsva_pgtable::x86::{X86Flags, X86Paging};
use vsva_pgtable::{FaultReason, PageTable, Perm, walk};

/// Guest physical memory (sparse; only touched pages cost anything).
const MEM_SIZE: u64 = 2 << 30;

// Low guest memory, identity-mapped by one supervisor 2 MiB page at VA 0.
const GDT: u64 = 0x1000;
const IDT: u64 = 0x2000;
/// `mov rax, [rdi]; hlt`
const CODE_READ: u64 = 0x3000;
/// `mov [rdi], rsi; hlt`
const CODE_WRITE: u64 = 0x3010;
/// `hlt` (vector 14)
const PF_HANDLER: u64 = 0x3100;
/// `hlt` (vector 13)
const GP_HANDLER: u64 = 0x3110;
const STACK_TOP: u64 = 0x1_0000;

/// Paging structures are allocated from here (above the identity-mapped 2 MiB, so the guest
/// never touches them except through its page walks).
const TABLES: (u64, u64) = (0x20_0000, 0x40_0000);
/// The address bits of a table pointer here: every table lies below `MEM_SIZE`, so this mask
/// also drops the reserved bits some entries are given on purpose.
const TABLE_ADDR: u64 = (MEM_SIZE - 1) & !0xfff;

/// Physical address of the `i`-th 4 KiB data page.
const fn p4k(i: u64) -> u64 {
    0x40_0000 + i * 0x1000
}
/// Physical address of the `i`-th 2 MiB data page.
const fn p2m(i: u64) -> u64 {
    0x60_0000 + i * 0x20_0000
}
/// The 1 GiB data page.
const P1G: u64 = 1 << 30;

/// Base of the 512 GiB region of PML4 slot `i` (lower half).
const fn slot(i: u64) -> u64 {
    i << 39
}
/// First upper-half address (PML4 slot 256).
const HIGH: u64 = 0xffff_8000_0000_0000;

const PATTERN: u64 = 0x5a5a_5a5a_5a5a_5a5a;

// Rights.
const RW_X: Perm = Perm::READ.union(Perm::WRITE).union(Perm::EXEC);
const RO_X: Perm = Perm::READ.union(Perm::EXEC);
const RW_NX: Perm = Perm::RW;
const RO_NX: Perm = Perm::READ;

/// Bits the CPU ignores in every entry: 11:9 and 62:52 (protection keys are ignored with
/// CR4.PKE = 0). Bit 6 and bit 8 are left out: AMD reserves bit 8 of non-leaf entries.
const IGNORED: u64 = 0x7ff0_0000_0000_0e00;

// CR0 / CR4 / EFER.
const CR0_PE: u64 = 1;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_WP: u64 = 1 << 16;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const EFER_NXE: u64 = 1 << 11;

/// One leaf to map.
struct Mapping {
    va: u64,
    pa: u64,
    size: PageSize,
    perm: Perm,
}

/// Bits to OR into the entry at `level` on the path of `va`, after all mappings are made.
struct Tweak {
    va: u64,
    level: u8,
    bits: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write(u64),
    Exec,
}

impl Kind {
    fn access(self) -> Access {
        match self {
            Kind::Read => Access::READ | Access::PRIV,
            Kind::Write(_) => Access::WRITE | Access::PRIV,
            Kind::Exec => Access::READ | Access::EXEC | Access::PRIV,
        }
    }
}

/// What the guest's access did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Completed; for reads, the value loaded.
    Done(Option<u64>),
    /// #PF with this error code (bits 4:0) and CR2.
    PageFault { code: u32, cr2: u64 },
    /// #GP with this error code.
    GeneralProtection { code: u64 },
}

fn mappings() -> Vec<Mapping> {
    let m = |va, pa, size, perm| Mapping { va, pa, size, perm };
    use PageSize::{Size1G, Size2M, Size4K};
    vec![
        // The guest's code, GDT, IDT and stack.
        m(0, 0, Size2M, RW_X),
        // Slot 1: 4 KiB pages of every kind in one page table, 2 MiB pages in its PD.
        m(slot(1), p4k(0), Size4K, RW_X),
        m(slot(1) + 0x1000, p4k(1), Size4K, RO_X),
        m(slot(1) + 0x2000, p4k(2), Size4K, RW_NX),
        m(slot(1) + 0x3000, p4k(3), Size4K, RO_NX),
        // slot(1) + 0x5000: hole in a populated page table.
        m(slot(1) + 0x6000, p4k(6), Size4K, RW_NX), // + bit 51
        m(slot(1) + 0x7000, p4k(7), Size4K, RW_NX), // + bit MAXPHYADDR
        m(slot(1) + 0x9000, p4k(9), Size4K, RW_NX), // + ignored bits and G
        m(slot(1) + 0x20_0000, p2m(0), Size2M, RW_X),
        m(slot(1) + 0x40_0000, p2m(1), Size2M, RO_NX),
        m(slot(1) + 0x60_0000, p2m(2), Size2M, RW_NX), // + bit 13 (reserved in a 2 MiB leaf)
        m(slot(1) + 0x80_0000, p2m(3), Size2M, RW_NX), // + bit 12 (PAT, not reserved)
        // slot(1) + 0xa0_0000: hole in a populated PD; slot(1) + 1 GiB: hole in the PDPT.
        // Slot 2: read-only pages first written (faults on a fresh path), then read.
        m(slot(2), p4k(12), Size4K, RO_NX),
        m(slot(2) + 0x20_0000, p2m(4), Size2M, RO_NX),
        // Slot 3: a read-only page that is only ever written, so every walk to it faults: the
        // A flags on its path show whether faulting walks set any.
        m(slot(3), p4k(13), Size4K, RO_NX),
        // Slot 4: bit 51 in a non-leaf PDE.
        m(slot(4), p4k(14), Size4K, RW_NX),
        // Slot 5: PS in a PML4E.
        m(slot(5), p4k(15), Size4K, RW_NX),
        // Slot 6: a 1 GiB page (PDPT[1]); PDPT[0] is a hole.
        m(slot(6) + (1 << 30), P1G, Size1G, RW_NX),
        // Slot 7: ignored bits at every level.
        m(slot(7), p4k(16), Size4K, RW_NX),
        // Slot 8: absent PML4E. Upper half:
        m(HIGH, p4k(17), Size4K, RW_NX),
        m(HIGH + 0x1000, p4k(18), Size4K, RO_NX),
    ]
}

fn tweaks(maxphyaddr: u8) -> Vec<Tweak> {
    let a = X86Flags::A.bits();
    let d = X86Flags::D.bits();
    let t = |va, level, bits| Tweak { va, level, bits };
    let mut v = vec![
        // The guest's own fetches, stack pushes and descriptor-table reads go through the
        // identity mapping of VA 0 (PML4[0] -> PDPT[0] -> PD[0], a 2 MiB leaf) and set A (and
        // D, for the stack) there: implicit accesses vsva does not replay. No test address
        // shares those entries (PML4 slot 0 holds nothing else), so they are marked accessed
        // and dirty in both memories up front and stay unchanged; every other entry starts
        // with A = D = 0 and is compared exactly.
        t(0, 4, a),
        t(0, 3, a),
        t(0, 2, a | d),
        t(slot(1) + 0x6000, 1, 1 << 51),
        t(slot(1) + 0x9000, 1, IGNORED | X86Flags::G.bits()),
        t(slot(1) + 0x60_0000, 2, 1 << 13),
        t(slot(1) + 0x80_0000, 2, X86Flags::PAT_LARGE.bits()),
        t(slot(4), 2, 1 << 51),
        t(slot(5), 4, X86Flags::PS.bits()),
        t(slot(7), 4, IGNORED),
        t(slot(7), 3, IGNORED),
        t(slot(7), 2, IGNORED),
        t(slot(7), 1, IGNORED | X86Flags::G.bits()),
    ];
    if maxphyaddr < 51 {
        v.push(t(slot(1) + 0x7000, 1, 1 << maxphyaddr));
    }
    v
}

fn accesses() -> Vec<(u64, Kind)> {
    use Kind::{Exec, Read, Write};
    let w = |i: u64| Write(0xc0de_0000_0000_0000 | i);
    vec![
        // Faults on paths whose entries all have A = 0.
        (slot(3) + 0x10, w(1)),
        (slot(3) + 0x18, w(2)),
        (slot(2) + 0x20, w(3)),
        (slot(2) + 0x20_1230, w(4)),
        // The same pages read: now A must be set along the path.
        (slot(2) + 0x20, Read),
        (slot(2) + 0x20_1230, Read),
        // 4 KiB pages.
        (slot(1) + 0x08, Read),
        (slot(1) + 0x10, w(5)),
        (slot(1) + 0x10, Read),
        (slot(1) + 0x1008, Read),
        (slot(1) + 0x1008, w(6)),
        (slot(1) + 0x2ff8, Read),
        (slot(1) + 0x2ff0, w(7)),
        (slot(1) + 0x2100, Exec),
        (slot(1) + 0x3000, Read),
        (slot(1) + 0x3000, w(8)),
        (slot(1) + 0x3040, Exec),
        (slot(1) + 0x1800, Exec),
        // Not present in a populated page table.
        (slot(1) + 0x5000, Read),
        (slot(1) + 0x5008, w(9)),
        (slot(1) + 0x5010, Exec),
        // Reserved bit 51, then bit MAXPHYADDR, in a PTE.
        (slot(1) + 0x6000, Read),
        (slot(1) + 0x6008, w(10)),
        (slot(1) + 0x6010, Exec),
        (slot(1) + 0x7000, Read),
        // Ignored bits in a PTE.
        (slot(1) + 0x9ab8, Read),
        (slot(1) + 0x9ac0, w(11)),
        // 2 MiB pages.
        (slot(1) + 0x21_2340, Read),
        (slot(1) + 0x21_2348, w(12)),
        (slot(1) + 0x21_5000, Exec),
        (slot(1) + 0x5f_fff8, Read),
        (slot(1) + 0x40_0008, w(13)),
        (slot(1) + 0x40_0100, Exec),
        (slot(1) + 0x60_0100, Read),
        (slot(1) + 0x81_0008, Read),
        // Holes in a PD and in a PDPT.
        (slot(1) + 0xa0_0000, Read),
        (slot(1) + (1 << 30), Read),
        // 1 GiB page (a reserved-bit fault where the CPU lacks 1 GiB pages).
        (slot(6) + (1 << 30) + 0x1234_5678, Read),
        (slot(6) + (1 << 30) + 0x3fff_fff8, w(14)),
        (slot(6) + (1 << 30) + 0x3fff_fff8, Read),
        (slot(6) + 0x100, Read),
        // Reserved bits in upper levels.
        (slot(4) + 0x100, Read),
        (slot(5) + 0x100, w(15)),
        // Ignored bits at every level.
        (slot(7) + 0x200, Read),
        (slot(7) + 0x208, w(16)),
        // Absent PML4E.
        (slot(8), Read),
        (slot(8) + 0x8, w(17)),
        // Upper half.
        (HIGH + 0x10, Read),
        (HIGH + 0x18, w(18)),
        (HIGH + 0x1000, w(19)),
        (HIGH + 0x1ff8, Read),
        // Non-canonical: #GP, not #PF.
        (0x0000_8000_0000_0000, Read),
        (0xffff_0000_0000_0010, w(20)),
    ]
}

/// Address of the entry at `level` on the path of `va` (following present table pointers).
fn entry_addr(mem: &dyn PhysMem, root: u64, va: u64, level: u8) -> u64 {
    let mut table = root;
    for l in ((level + 1)..=4).rev() {
        let e = mem
            .load_u64(table + vsva_pgtable::format::index(va, l) * 8)
            .unwrap();
        assert!(e & 1 != 0, "no table at level {l} for {va:#x}");
        table = e & TABLE_ADDR;
    }
    table + vsva_pgtable::format::index(va, level) * 8
}

/// Builds the tables in `mem`; returns the root.
fn build(mem: Arc<dyn PhysMem>, fmt: X86Paging, maps: &[Mapping], tweaks: &[Tweak]) -> u64 {
    let frames = Arc::new(FrameAllocator::new(mem.clone(), TABLES.0, TABLES.1));
    let pt = PageTable::new(fmt, frames).unwrap();
    for m in maps {
        pt.map(m.va, m.pa, m.size, m.perm)
            .unwrap_or_else(|e| panic!("map {:#x}: {e}", m.va));
    }
    let slots: Vec<u64> = tweaks
        .iter()
        .map(|t| entry_addr(mem.as_ref(), pt.root(), t.va, t.level))
        .collect();
    for (t, at) in tweaks.iter().zip(slots) {
        let e = mem.load_u64(at).unwrap();
        mem.store_u64(at, e | t.bits).unwrap();
    }
    pt.root()
}

/// The physical address my own mapping list gives `va` (ignoring tweaks), if any.
fn target_pa(maps: &[Mapping], va: u64) -> Option<u64> {
    maps.iter()
        .find(|m| va >= m.va && va - m.va < m.size.bytes())
        .map(|m| m.pa + (va - m.va))
}

fn fill_page(mem: &dyn PhysMem, page: u64) {
    for off in (0..4096).step_by(8) {
        mem.store_u64(page + off, (page + off) ^ PATTERN).unwrap();
    }
}

fn seg(selector: u16, type_: u8, l: u8, db: u8) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_,
        present: 1,
        dpl: 0,
        db,
        s: 1,
        l,
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// A 64-bit interrupt gate to `handler` (SDM Vol. 3 §6.14.1).
fn gate(mem: &dyn PhysMem, vector: u64, handler: u64) {
    let lo = (handler & 0xffff) | (0x8 << 16) | (0x8e << 40) | (((handler >> 16) & 0xffff) << 48);
    mem.store_u64(IDT + vector * 16, lo).unwrap();
    mem.store_u64(IDT + vector * 16 + 8, handler >> 32).unwrap();
}

/// Runs one access in the guest.
fn run(vcpu: &mut VcpuFd, mem: &dyn PhysMem, va: u64, kind: Kind) -> Outcome {
    let mut regs = vcpu.get_regs().unwrap();
    regs.rip = match kind {
        Kind::Read => CODE_READ,
        Kind::Write(_) => CODE_WRITE,
        Kind::Exec => va,
    };
    regs.rdi = va;
    regs.rsi = match kind {
        Kind::Write(v) => v,
        _ => 0,
    };
    regs.rax = 0;
    regs.rsp = STACK_TOP;
    regs.rflags = 0x2;
    vcpu.set_regs(&regs).unwrap();
    match vcpu.run().expect("KVM_RUN") {
        VcpuExit::Hlt => {}
        other => panic!("access {va:#x} {kind:?}: unexpected exit {other:?}"),
    }
    let regs = vcpu.get_regs().unwrap();
    let done = match kind {
        Kind::Read => CODE_READ + 4,
        Kind::Write(_) => CODE_WRITE + 4,
        Kind::Exec => va.wrapping_add(1),
    };
    if regs.rip == done {
        return Outcome::Done((kind == Kind::Read).then_some(regs.rax));
    }
    // 64-bit exception frame (stack identity-mapped): error code, RIP, CS, RFLAGS, RSP, SS.
    let code = mem.load_u64(regs.rsp).unwrap();
    let at = mem.load_u64(regs.rsp + 8).unwrap();
    let expect_rip = match kind {
        Kind::Exec => va,
        _ => done - 4,
    };
    assert_eq!(
        at, expect_rip,
        "access {va:#x} {kind:?}: exception at an unexpected RIP"
    );
    match regs.rip {
        r if r == PF_HANDLER + 1 => Outcome::PageFault {
            code: (code & 0x1f) as u32,
            cr2: vcpu.get_sregs().unwrap().cr2,
        },
        r if r == GP_HANDLER + 1 => Outcome::GeneralProtection { code },
        r => panic!("access {va:#x} {kind:?}: halted at unexpected RIP {r:#x}"),
    }
}

/// Levels of the tables reachable from `root`, for naming entries in reports.
fn table_levels(mem: &dyn PhysMem, root: u64) -> BTreeMap<u64, (u8, u64)> {
    fn visit(mem: &dyn PhysMem, t: u64, level: u8, base: u64, out: &mut BTreeMap<u64, (u8, u64)>) {
        out.insert(t, (level, base));
        if level == 1 {
            return;
        }
        for i in 0..512u64 {
            let e = mem.load_u64(t + i * 8).unwrap();
            // Present and PS = 0: a table pointer (PS = 1 is a leaf, or reserved in a PML4E).
            if e & 1 != 0 && e & X86Flags::PS.bits() == 0 {
                let span = 1u64 << (12 + 9 * (level as u32 - 1));
                let mut va = base + i * span;
                if level == 4 && i >= 256 {
                    va |= 0xffff_0000_0000_0000;
                }
                visit(mem, e & TABLE_ADDR, level - 1, va, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    visit(mem, root, 4, 0, &mut out);
    out
}

#[test]
fn cpu_and_vsva_walker_agree() {
    if !std::path::Path::new("/dev/kvm").exists() {
        eprintln!("SKIP kvm_oracle: /dev/kvm does not exist");
        return;
    }
    let kvm = match Kvm::new() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("SKIP kvm_oracle: cannot open /dev/kvm: {e}");
            return;
        }
    };

    // The guest CPU's features: KVM's supported CPUID, which the vCPU is given below.
    let cpuid = kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).unwrap();
    let leaf = |f: u32| cpuid.as_slice().iter().find(|e| e.function == f);
    let page_1g = leaf(0x8000_0001).is_some_and(|e| e.edx & (1 << 26) != 0);
    let nx = leaf(0x8000_0001).is_some_and(|e| e.edx & (1 << 20) != 0);
    assert!(nx, "KVM does not support NX; EFER.NXE cannot be set");
    // KVM's default guest MAXPHYADDR is 36 when CPUID 0x80000008 is absent.
    let maxphyaddr = leaf(0x8000_0008).map_or(36, |e| (e.eax & 0xff) as u8);
    eprintln!("kvm_oracle: guest MAXPHYADDR {maxphyaddr}, 1 GiB pages: {page_1g}");

    let cpu_fmt = X86Paging {
        levels: 4,
        maxphyaddr,
        nxe: true,
        wp: true,
        smep: false,
        smap: false,
        page_1g,
        ad: true,
        extended_accessed: false,
    };
    // The builder must accept the 1 GiB leaf even where the CPU does not: the walks then
    // check that vsva predicts the CPU's reserved-bit fault.
    let build_fmt = X86Paging {
        page_1g: true,
        ..cpu_fmt
    };

    let mem_a = Arc::new(PhysMemory::new(MEM_SIZE).unwrap());
    let mem_b = Arc::new(PhysMemory::new(MEM_SIZE).unwrap());
    let dyn_a: Arc<dyn PhysMem> = mem_a.clone();
    let dyn_b: Arc<dyn PhysMem> = mem_b.clone();
    let (a, b) = (dyn_a.as_ref(), dyn_b.as_ref());

    let maps = mappings();
    let tweaks = tweaks(maxphyaddr);
    let root = build(dyn_a.clone(), build_fmt, &maps, &tweaks);
    assert_eq!(root, build(dyn_b.clone(), build_fmt, &maps, &tweaks));

    // Data: every mapped 4 KiB page, and the 4 KiB page of every access target.
    let accesses = accesses();
    let mut pages = BTreeSet::new();
    for m in maps.iter().filter(|m| m.size == PageSize::Size4K) {
        pages.insert(m.pa);
    }
    for &(va, _) in &accesses {
        if let Some(pa) = target_pa(&maps[1..], va) {
            pages.insert(pa & !0xfff);
        }
    }
    for &p in &pages {
        fill_page(a, p);
        fill_page(b, p);
    }
    for &(va, kind) in &accesses {
        if let (Kind::Exec, Some(pa)) = (kind, target_pa(&maps[1..], va)) {
            a.write(pa, &[0xf4]).unwrap();
            b.write(pa, &[0xf4]).unwrap();
        }
    }

    // Guest code and descriptor tables (memory A only: the guest's private region).
    a.write(CODE_READ, &[0x48, 0x8b, 0x07, 0xf4]).unwrap();
    a.write(CODE_WRITE, &[0x48, 0x89, 0x37, 0xf4]).unwrap();
    a.write(PF_HANDLER, &[0xf4]).unwrap();
    a.write(GP_HANDLER, &[0xf4]).unwrap();
    a.store_u64(GDT, 0).unwrap();
    // Accessed bit preset in both descriptors so exception delivery does not write the GDT.
    a.store_u64(GDT + 8, 0x00af_9b00_0000_ffff).unwrap();
    a.store_u64(GDT + 16, 0x00cf_9300_0000_ffff).unwrap();
    gate(a, 13, GP_HANDLER);
    gate(a, 14, PF_HANDLER);

    let vm = kvm.create_vm().expect("KVM_CREATE_VM");
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: MEM_SIZE,
        userspace_addr: mem_a.host_base() as u64,
    };
    // SAFETY: `host_base()` is the start of memory A's private anonymous mapping of exactly
    // MEM_SIZE bytes, which `mem_a` keeps alive until the end of this function; `vm` is
    // declared after `mem_a` and so is dropped (and the slot with it) before the mapping.
    unsafe { vm.set_user_memory_region(region) }.expect("KVM_SET_USER_MEMORY_REGION");
    let mut vcpu = vm.create_vcpu(0).expect("KVM_CREATE_VCPU");
    vcpu.set_cpuid2(&cpuid).expect("KVM_SET_CPUID2");
    let mut sregs = vcpu.get_sregs().unwrap();
    sregs.cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
    sregs.cr4 = CR4_PAE;
    sregs.cr3 = root;
    sregs.efer = EFER_LME | EFER_LMA | EFER_NXE;
    sregs.cs = seg(0x8, 0xb, 1, 0);
    let ds = seg(0x10, 0x3, 0, 1);
    (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (ds, ds, ds, ds, ds);
    sregs.gdt.base = GDT;
    sregs.gdt.limit = 3 * 8 - 1;
    sregs.idt.base = IDT;
    sregs.idt.limit = 256 * 16 - 1;
    vcpu.set_sregs(&sregs).expect("KVM_SET_SREGS");

    let mut mismatches = Vec::new();
    let mut faults = 0;
    for (n, &(va, kind)) in accesses.iter().enumerate() {
        let access = kind.access();
        let cpu = run(&mut vcpu, a, va, kind);
        let vsva = walk(&cpu_fmt, b, root, va, access, &mut Direct, &mut ());
        let expected = match vsva {
            Ok(t) => match kind {
                Kind::Read => Outcome::Done(Some(b.load_u64(t.output).unwrap())),
                Kind::Write(v) => {
                    b.store_u64(t.output, v).unwrap();
                    Outcome::Done(None)
                }
                Kind::Exec => {
                    let mut byte = [0u8];
                    b.read(t.output, &mut byte).unwrap();
                    assert_eq!(byte[0], 0xf4, "exec target {va:#x} holds no hlt");
                    Outcome::Done(None)
                }
            },
            Err(f) if f.reason == FaultReason::AddressWidth => {
                Outcome::GeneralProtection { code: 0 }
            }
            Err(f) => Outcome::PageFault {
                code: cpu_fmt.error_code(&f, access),
                cr2: va,
            },
        };
        if !matches!(cpu, Outcome::Done(_)) {
            faults += 1;
        }
        let what = match vsva {
            Ok(t) => format!("-> {:#x} ({})", t.output, t.size),
            Err(f) => format!("{f}"),
        };
        let ok = cpu == expected;
        eprintln!(
            "{n:2} {va:#018x} {kind:x?}: cpu {cpu:x?}; vsva {what}{}",
            if ok { "" } else { "  <-- MISMATCH" }
        );
        if !ok {
            mismatches.push(format!(
                "access {n} {va:#x} {kind:x?}: cpu {cpu:x?}, vsva expects {expected:x?} ({what})"
            ));
        }
    }

    // Paging structures: every entry, so the A/D flags each side set.
    let levels = table_levels(b, root);
    let mut ad_diffs = Vec::new();
    let (mut accessed, mut dirty) = (0, 0);
    for pa in (TABLES.0..TABLES.1).step_by(8) {
        let (ea, eb) = (a.load_u64(pa).unwrap(), b.load_u64(pa).unwrap());
        accessed += usize::from(ea & X86Flags::A.bits() != 0);
        dirty += usize::from(ea & X86Flags::D.bits() != 0);
        if ea != eb {
            let frame = pa & !0xfff;
            let (level, base) = levels.get(&frame).copied().unwrap_or((0, 0));
            ad_diffs.push(format!(
                "entry at {pa:#x} (level {level} table {frame:#x} for VAs from {base:#x}, index {}): \
                 cpu {ea:#018x}, vsva {eb:#018x}, differ in {:#x}",
                (pa & 0xfff) / 8,
                ea ^ eb
            ));
        }
    }
    // Data pages: the writes the guest made are the ones vsva made.
    let mut data_diffs = Vec::new();
    for &p in &pages {
        for pa in (p..p + 4096).step_by(8) {
            let (va_, vb) = (a.load_u64(pa).unwrap(), b.load_u64(pa).unwrap());
            if va_ != vb {
                data_diffs.push(format!("data at {pa:#x}: cpu {va_:#x}, vsva {vb:#x}"));
            }
        }
    }
    eprintln!(
        "kvm_oracle: {} accesses ({faults} faulting), {} table frames ({accessed} entries with A \
         set by the CPU, {dirty} with D, 3 of them preset), {} data pages compared",
        accesses.len(),
        levels.len(),
        pages.len()
    );
    for d in mismatches.iter().chain(&ad_diffs).chain(&data_diffs) {
        eprintln!("DIFF {d}");
    }
    assert!(
        mismatches.is_empty() && ad_diffs.is_empty() && data_diffs.is_empty(),
        "the CPU and vsva's walker disagree: {} accesses, {} paging entries, {} data words",
        mismatches.len(),
        ad_diffs.len(),
        data_diffs.len()
    );
}
