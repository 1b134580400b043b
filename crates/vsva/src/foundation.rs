//! The foundation walkthrough (`vsva foundation`): a process faulting pages in, its page walk explained, huge pages,
//! permission rules, fork with copy-on-write heard by an MMU notifier, and a guest process's
//! page table walked nested through a VT-d second stage.

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use vsva_mem::{Access, FrameAllocator, PageSize, PhysMem, PhysMemory, PhysWindow, Va};
use vsva_mm::{Advice, InvalidateReason, MapFlags, MemoryManager, MmError, MmuNotifier, Pid, Prot};
use vsva_pgtable::nested::{Stage2, nested_walk};
use vsva_pgtable::vtd_ss::VtdSecondStage;
use vsva_pgtable::walk::{Direct, WalkTrace};
use vsva_pgtable::x86::{X86Flags, X86Paging};
use vsva_pgtable::{FaultReason, PageTable, Perm, walk};

use crate::report::Report;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const USER_R: Access = Access::READ;

/// Records what an MMU notifier hears.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
}

impl MmuNotifier for Recorder {
    fn invalidate_range(&self, pid: Pid, start: Va, end: Va, reason: InvalidateReason) {
        if let Ok(mut e) = self.events.lock() {
            e.push(format!("pid {pid}: invalidate [{start}, {end}) {reason:?}"));
        }
    }
    fn release(&self, pid: Pid) {
        if let Ok(mut e) = self.events.lock() {
            e.push(format!("pid {pid}: release (exit)"));
        }
    }
}

impl Recorder {
    fn take(&self) -> Vec<String> {
        self.events
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default()
    }
}

/// The flag names of an x86 entry, for explanations.
fn flags(entry: u64) -> String {
    let names = [
        (X86Flags::P, "P"),
        (X86Flags::RW, "RW"),
        (X86Flags::US, "US"),
        (X86Flags::A, "A"),
        (X86Flags::D, "D"),
        (X86Flags::PS, "PS"),
        (X86Flags::XD, "XD"),
    ];
    let f = X86Flags::from_bits_truncate(entry);
    names
        .iter()
        .filter(|(b, _)| f.contains(*b))
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(" ")
}

fn level_name(level: u8) -> &'static str {
    match level {
        5 => "PML5",
        4 => "PML4",
        3 => "PDPT",
        2 => "PD",
        _ => "PT",
    }
}

pub fn run() -> Result<Report> {
    let mut r = Report::default();
    let mem = Arc::new(PhysMemory::new(64 * GIB).context("mapping 64 GiB of physical memory")?);
    let mem_dyn: Arc<dyn PhysMem> = mem.clone();
    // Host frames: 1 MiB up to 32 GiB (the first MiB stays unused, as on a PC); the guest's RAM
    // lives at 32 GiB (last section).
    let frames = Arc::new(FrameAllocator::new(mem_dyn.clone(), MIB, 32 * GIB));
    let paging = X86Paging::default();
    let mm = MemoryManager::new(frames.clone(), paging);

    r.section("Physical memory");
    r.say(
        "64 GiB of sparse physical memory (vm-memory, MAP_NORESERVE): untouched pages cost nothing",
    );
    r.say("frames of 4 KiB / 2 MiB / 1 GiB come from a buddy allocator; processes get 4-level x86 page tables");

    // --- demand paging -------------------------------------------------------------------
    r.section("A process faults pages in");
    let p = mm.spawn()?;
    let va = p.mmap(None, 16 * 4096, Prot::RW, MapFlags::empty())?;
    r.say(format!(
        "pid {} mmap(16 pages, RW) -> [{va}, {:#x})",
        p.pid(),
        va.raw() + 16 * 4096
    ));
    let target = Va::new(va.raw() + 3 * 4096 + 0x10);
    let before = p.translate(target, USER_R);
    r.check(
        "untouched page is not present",
        matches!(before, Err(f) if f.reason == FaultReason::NotPresent),
        format!(
            "walk of {target} before any access: {:?}",
            before.err().map(|f| (f.reason, f.level))
        ),
    );
    p.write_bytes(target, b"vsva")?;
    let mut back = [0u8; 4];
    p.read_bytes(target, &mut back)?;
    r.check(
        "first write faults in a zeroed page",
        mm.stats().zero_fills == 1 && &back == b"vsva",
        format!(
            "write \"vsva\" at {target}: {} demand fault, read back {:?}",
            mm.stats().zero_fills,
            String::from_utf8_lossy(&back)
        ),
    );

    // --- the walk, explained -------------------------------------------------------------
    r.section("The walk, explained (x86-64 4-level, SDM 4.5)");
    let root = p.page_table_root().context("process has a page table")?;
    let mut trace = WalkTrace::default();
    let t = walk(
        &paging,
        mem.as_ref(),
        root,
        target.raw(),
        USER_R,
        &mut Direct,
        &mut trace,
    )
    .map_err(|f| anyhow::anyhow!("walk failed: {f}"))?;
    r.say(format!(
        "CR3 = {root:#x}; {target} splits into indices {:?} and offset {:#x}",
        trace.steps.iter().map(|s| s.2).collect::<Vec<_>>(),
        target.raw() & 0xfff
    ));
    for (level, table, index, entry) in &trace.steps {
        let next = if *level == 1 || entry & X86Flags::PS.bits() != 0 {
            "page"
        } else {
            "next table"
        };
        r.say(format!(
            "{:<5} table {table:#x} [{index:3}] = {entry:#018x}  {:<16} -> {next} {:#x}",
            level_name(*level),
            flags(*entry),
            entry & 0x000f_ffff_ffff_f000
        ));
    }
    r.say(format!(
        "=> HPA {:#x}, {} page, rights {:?}, {} memory references",
        t.output, t.size, t.rights, t.refs
    ));
    let mut at_hpa = [0u8; 4];
    mem.read(t.output, &mut at_hpa)?;
    r.check(
        "walk output holds the bytes written",
        &at_hpa == b"vsva" && t.refs == 4,
        format!(
            "HPA {:#x} holds {:?}",
            t.output,
            String::from_utf8_lossy(&at_hpa)
        ),
    );
    let leaf = trace.steps.last().map(|s| s.3).unwrap_or(0);
    r.check(
        "the write set Accessed and Dirty in the PTE",
        leaf & (X86Flags::A | X86Flags::D).bits() == (X86Flags::A | X86Flags::D).bits(),
        format!("PTE flags: {}", flags(leaf)),
    );

    // --- huge pages ----------------------------------------------------------------------
    r.section("Huge pages");
    for (flag, size, refs) in [
        (MapFlags::HUGE_2M, PageSize::Size2M, 3),
        (MapFlags::HUGE_1G, PageSize::Size1G, 2),
    ] {
        let h = p.mmap(None, size.bytes(), Prot::RW, flag)?;
        let inside = Va::new(h.raw() + size.bytes() - 8);
        p.write_bytes(inside, &0x1122_3344_5566_7788u64.to_le_bytes())?;
        let t = p
            .translate(inside, USER_R)
            .map_err(|f| anyhow::anyhow!("{f}"))?;
        r.check(
            &format!("{size} page maps with a {}-level walk", refs),
            t.size == size && t.refs == refs && t.page_base() % size.bytes() == 0,
            format!(
                "[{h}, +{size}) -> HPA {:#x}, {} references",
                t.page_base(),
                t.refs
            ),
        );
    }

    // --- permissions ---------------------------------------------------------------------
    r.section("Permission rules");
    let ro = p.mmap(None, 4096, Prot::READ, MapFlags::POPULATE)?;
    let denied = p.write_bytes(ro, b"nope");
    let mut check_ro = [0xffu8; 4];
    p.read_bytes(ro, &mut check_ro)?;
    r.check(
        "write to a read-only mapping fails, nothing written",
        matches!(denied, Err(MmError::AccessDenied { .. })) && check_ro == [0; 4],
        format!("{:?}", denied.err()),
    );
    let unmapped = p.handle_fault(Va::new(0x1000), USER_R);
    r.check(
        "fault on an unmapped address is refused",
        matches!(unmapped, Err(MmError::NoVma { .. })),
        format!(
            "{:?} (errno {})",
            unmapped.as_ref().err(),
            unmapped.as_ref().err().map_or(0, |e| e.errno().0)
        ),
    );
    let smap = p.translate(target, Access::READ | Access::PRIV);
    r.check(
        "supervisor read of a user page faults under SMAP",
        matches!(smap, Err(f) if f.reason == FaultReason::Permission),
        format!("{:?}", smap.err().map(|f| (f.reason, f.level))),
    );

    // --- fork, COW, notifiers ------------------------------------------------------------
    r.section("fork, copy-on-write and an MMU notifier");
    let heard = Arc::new(Recorder::default());
    p.register_notifier(heard.clone());
    let child = p.fork()?;
    let shared = p.translate(target, USER_R).map(|t| t.page_base()).ok()
        == child.translate(target, USER_R).map(|t| t.page_base()).ok();
    p.write_bytes(target, b"PRNT")?;
    let mut in_child = [0u8; 4];
    child.read_bytes(target, &mut in_child)?;
    let mut in_parent = [0u8; 4];
    p.read_bytes(target, &mut in_parent)?;
    let events = heard.take();
    for e in &events {
        r.say(format!("notifier heard: {e}"));
    }
    r.check(
        "fork shares pages copy-on-write",
        shared && &in_child == b"vsva" && &in_parent == b"PRNT" && mm.stats().cow_copies == 1,
        format!(
            "after fork the child (pid {}) still reads {:?}, the parent {:?}",
            child.pid(),
            String::from_utf8_lossy(&in_child),
            String::from_utf8_lossy(&in_parent)
        ),
    );
    r.check(
        "notifier hears fork write-protect and the COW break",
        events.len() >= 2
            && events.iter().any(|e| e.contains("ForkWriteProtect"))
            && events.last().is_some_and(|e| e.contains("CowBreak")),
        format!("{} events", events.len()),
    );
    p.madvise(va, 16 * 4096, Advice::PageOut)?;
    let swapped = mm.swapped_pages();
    let mut again = [0u8; 4];
    p.read_bytes(target, &mut again)?;
    p.munmap(va, 16 * 4096)?;
    let events = heard.take();
    for e in &events {
        r.say(format!("notifier heard: {e}"));
    }
    r.check(
        "page-out, swap-in and munmap are announced",
        swapped == 1
            && &again == b"PRNT"
            && events.iter().any(|e| e.contains("PageOut"))
            && events.iter().any(|e| e.contains("Unmap")),
        format!(
            "{swapped} page swapped out and read back as {:?}",
            String::from_utf8_lossy(&again)
        ),
    );
    child.exit()?;
    p.exit()?;
    let events = heard.take();
    r.check(
        "exit tells the notifier first and frees every frame",
        events.first().is_some_and(|e| e.contains("release")) && frames.allocated_frames() == 0,
        format!(
            "first event {:?}; {} frames still allocated",
            events.first(),
            frames.allocated_frames()
        ),
    );

    // --- nested --------------------------------------------------------------------------
    r.section("Nested walk: a guest process's page table in guest RAM (VT-d 3.8)");
    let ram_hpa = 32 * GIB;
    let ram_size = 64 * MIB;
    let ram: Arc<dyn PhysMem> = Arc::new(PhysWindow::new(mem_dyn, ram_hpa, ram_size)?);
    let s2 = PageTable::new(VtdSecondStage::four_level(), frames.clone())?;
    let mut gpa = 0;
    while gpa < ram_size {
        s2.map(gpa, ram_hpa + gpa, PageSize::Size4K, Perm::RW)?;
        gpa += 4096;
    }
    r.say(format!("guest RAM: GPA [0, {ram_size:#x}) at HPA {ram_hpa:#x}; second stage maps it with 4 KiB pages (root HPA {:#x})", s2.root()));
    let guest_mm = MemoryManager::new(Arc::new(FrameAllocator::new(ram, MIB, ram_size)), paging);
    let gp = guest_mm.spawn()?;
    let gva = gp.mmap(None, 4096, Prot::RW, MapFlags::empty())?;
    gp.write_bytes(gva, b"hello from the guest")?;
    let groot = gp.page_table_root().context("guest page table")?;
    let stage2 = Stage2 {
        format: s2.format(),
        mem: mem.as_ref(),
        root: s2.root(),
    };
    let nt = nested_walk(&paging, groot, &stage2, gva.raw(), USER_R)
        .map_err(|f| anyhow::anyhow!("{f}"))?;
    let mut seen = [0u8; 20];
    mem.read(nt.output, &mut seen)?;
    r.say(format!(
        "guest CR3 = GPA {groot:#x}; guest VA {gva} -> HPA {:#x}",
        nt.output
    ));
    r.check(
        "nested 4+4 walk makes 24 memory references",
        nt.refs == 24 && &seen == b"hello from the guest",
        format!(
            "{} references; HPA holds {:?}",
            nt.refs,
            String::from_utf8_lossy(&seen)
        ),
    );
    let ss = mm.stats();
    let gs = guest_mm.stats();
    r.count("demand_faults", ss.zero_fills + gs.zero_fills);
    r.count("cow_copies", ss.cow_copies);
    r.count("cow_reuses", ss.cow_reuses);
    r.count("swap_outs", ss.swap_outs);
    r.count("swap_ins", ss.swap_ins);
    r.count("walk4_refs", t.refs as u64);
    r.count("nested_walk_refs", nt.refs as u64);
    r.count("host_frames_allocated", frames.allocated_frames() as u64);
    gp.exit()?;
    Ok(r)
}
