//! The userspace program of the SVA demo (seed 003's "userspace program"): a process that
//! opens the demo device and runs one named check per SVA behaviour, on its own memory —
//! fresh mmaps, malloc'ed and stack buffers, huge pages, read-only and unmapped ranges, the
//! interrupt window, privileged requests, munmap with live ATC entries, page-out, fork, exit
//! with DMA pending, and two devices sharing one PASID.

use std::sync::Arc;

use vsva_mem::{PageSize, Rid, Va};
use vsva_mm::{Advice, MapFlags, Process, Prot};

use crate::device::Progress;
use crate::driver::{Command, Context, DemoDriver, DriverError};
use crate::machine::Machine;
use crate::machine::{INTERRUPT_WINDOW, MsiWindow};
use crate::regs::{self, DeviceError, Op};

/// One named check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Name.
    pub name: &'static str,
    /// Did it pass?
    pub passed: bool,
    /// What was observed.
    pub detail: String,
}

/// What the program reports.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The checks, in order.
    pub checks: Vec<Check>,
    /// Counters: device, IOMMU and memory-manager activity.
    pub counters: Vec<(&'static str, u64)>,
}

type Outcome = Result<String, String>;

/// A named check of the program.
type NamedCheck = (&'static str, fn(&Env) -> Outcome);

fn cmd(op: Op, src: u64, dst: u64, len: u64, pattern: u64) -> Command {
    Command::new(op, src, dst, len, pattern)
}

fn expect_pattern(p: &Process, va: u64, len: u64, seed: u64) -> Result<(), String> {
    let mut got = vec![0u8; len as usize];
    p.read_bytes(Va::new(va), &mut got)
        .map_err(|e| format!("CPU read failed: {e}"))?;
    match (0..len).find(|&i| got[i as usize] != regs::pattern_byte(seed, i)) {
        None => Ok(()),
        Some(i) => Err(format!("byte {i} differs")),
    }
}

struct Env<'a> {
    p: &'a dyn Machine,
    drv: &'a DemoDriver,
    proc_: Arc<Process>,
    ctx: Context,
}

impl Env<'_> {
    fn run(&self, c: Command) -> Result<u64, DriverError> {
        self.drv.run(self.p, &self.ctx, &c)
    }

    /// The device's page faults so far: page requests (PCIe) and stalled transactions
    /// (platform).
    fn faults(&self) -> u64 {
        let s = self.drv.device().stats();
        s.page_requests + s.stalls
    }

    /// How the device asks for a page, for the reports.
    fn fault_word(&self) -> &'static str {
        if self.drv.device().stats().ats_translations == 0 {
            "stalls"
        } else {
            "page requests"
        }
    }
}

/// The command was refused as an access the OS cannot fix must be: the page request
/// answered Invalid (PCIe), or the stalled transaction aborted (platform).
fn refused_by_the_os(r: &Result<u64, DriverError>) -> bool {
    matches!(
        r,
        Err(DriverError::Device(
            DeviceError::PageRequestInvalid | DeviceError::StallAborted
        ))
    )
}

/// How the OS refused, for the reports.
fn refusal(r: &Result<u64, DriverError>) -> &'static str {
    match r {
        Err(DriverError::Device(DeviceError::StallAborted)) => "the stalled transaction aborted",
        _ => "page request answered Invalid",
    }
}

fn fresh_mmap(e: &Env) -> Outcome {
    let before = e.faults();
    let buf = e
        .proc_
        .mmap(None, 16 * 4096, Prot::RW, MapFlags::empty())
        .map_err(|x| x.to_string())?;
    let len = 16 * 4096;
    e.run(cmd(Op::WritePattern, 0, buf.raw(), len, 0x51))
        .map_err(|x| x.to_string())?;
    expect_pattern(&e.proc_, buf.raw(), len, 0x51)?;
    let prs = e.faults() - before;
    let what = e.fault_word();
    if prs != 16 {
        return Err(format!("{prs} {what} for 16 fresh pages"));
    }
    Ok(format!(
        "16 fresh pages written by the device after {prs} {what}; the CPU reads the pattern"
    ))
}

fn malloc_and_stack(e: &Env) -> Outcome {
    // A malloc arena (the CPU touches it first, as malloc would) and a stack below a guard.
    let heap = e
        .proc_
        .mmap(None, 64 * 1024, Prot::RW, MapFlags::POPULATE)
        .map_err(|x| x.to_string())?;
    let stack = e
        .proc_
        .mmap(None, 32 * 1024, Prot::RW, MapFlags::empty())
        .map_err(|x| x.to_string())?;
    let a = heap.raw() + 24; // malloc'ed: 16-byte header, odd offset
    let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 + 3) as u8).collect();
    e.proc_
        .write_bytes(Va::new(a), &data)
        .map_err(|x| x.to_string())?;
    let sp = stack.raw() + 32 * 1024 - 6000; // near the top, as a stack frame
    e.proc_
        .write_bytes(Va::new(stack.raw() + 32 * 1024 - 8), &[1; 8])
        .map_err(|x| x.to_string())?;
    e.run(cmd(Op::Copy, a, sp, data.len() as u64, 0))
        .map_err(|x| x.to_string())?;
    let mut got = vec![0u8; data.len()];
    e.proc_
        .read_bytes(Va::new(sp), &mut got)
        .map_err(|x| x.to_string())?;
    if got != data {
        return Err("the stack copy differs".into());
    }
    let eq = e
        .run(cmd(Op::Compare, a, sp, data.len() as u64, 0))
        .map_err(|x| x.to_string())?;
    if eq != u64::MAX {
        return Err(format!("device compare found a mismatch at {eq}"));
    }
    Ok(format!(
        "{} bytes copied from a malloc'ed buffer to the stack and compared by the device",
        data.len()
    ))
}

fn huge_pages(e: &Env) -> Outcome {
    let mut detail = vec![];
    for (flag, size, len) in [
        (MapFlags::HUGE_2M, PageSize::Size2M, 4u64 << 20),
        (MapFlags::HUGE_1G, PageSize::Size1G, 8u64 << 20),
    ] {
        let buf = e
            .proc_
            .mmap(None, size.bytes().max(len), Prot::RW, flag)
            .map_err(|x| x.to_string())?;
        let before = e.drv.device().stats();
        let faults_before = e.faults();
        e.run(cmd(Op::Fill, 0, buf.raw(), len, 0xa5))
            .map_err(|x| x.to_string())?;
        let mut b = [0u8; 8];
        e.proc_
            .read_bytes(Va::new(buf.raw() + len - 8), &mut b)
            .map_err(|x| x.to_string())?;
        if b != [0xa5; 8] {
            return Err(format!("{size} page not filled"));
        }
        let t = e
            .proc_
            .translate(buf, vsva_mem::Access::READ)
            .map_err(|x| x.to_string())?;
        let ats = e.drv.device().stats().ats_translations - before.ats_translations;
        let faults = e.faults() - faults_before;
        let expected_pages = len.div_ceil(size.bytes());
        if t.size != size || ats > 2 * expected_pages || faults > expected_pages {
            return Err(format!(
                "{size}: page size {}, {ats} translations, {faults} faults",
                t.size
            ));
        }
        detail.push(if ats > 0 {
            format!(
                "{} MiB in {size} pages with {ats} ATS translations",
                len >> 20
            )
        } else {
            format!("{} MiB in {size} pages after {faults} stall(s)", len >> 20)
        });
    }
    Ok(detail.join("; "))
}

fn read_only(e: &Env) -> Outcome {
    let ro = e
        .proc_
        .mmap(None, 2 * 4096, Prot::READ, MapFlags::POPULATE)
        .map_err(|x| x.to_string())?;
    let r = e.run(cmd(Op::Fill, 0, ro.raw(), 8192, 0xff));
    if !refused_by_the_os(&r) {
        return Err(format!("fill of a read-only mapping gave {r:?}"));
    }
    let mut b = vec![1u8; 8192];
    e.proc_.read_bytes(ro, &mut b).map_err(|x| x.to_string())?;
    if b.iter().any(|&x| x != 0) {
        return Err("the read-only mapping was written".into());
    }
    // reading it works
    e.run(cmd(Op::ReadChecksum, ro.raw(), 0, 8192, 0))
        .map_err(|x| x.to_string())?;
    Ok(format!(
        "the write was refused ({}) and the pages still read as zero",
        refusal(&r)
    ))
}

fn unmapped(e: &Env) -> Outcome {
    let gap = e
        .proc_
        .mmap(None, 4096, Prot::RW, MapFlags::empty())
        .map_err(|x| x.to_string())?;
    e.proc_.munmap(gap, 4096).map_err(|x| x.to_string())?;
    let r = e.run(cmd(Op::ReadChecksum, gap.raw(), 0, 4096, 0));
    if !refused_by_the_os(&r) {
        return Err(format!("DMA to an unmapped range gave {r:?}"));
    }
    // the device and the binding keep working
    let ok = e
        .proc_
        .mmap(None, 4096, Prot::RW, MapFlags::empty())
        .map_err(|x| x.to_string())?;
    e.run(cmd(Op::Fill, 0, ok.raw(), 4096, 1))
        .map_err(|x| x.to_string())?;
    Ok(format!(
        "refused ({}); the next command succeeds",
        refusal(&r)
    ))
}

fn interrupt_window(e: &Env) -> Outcome {
    match e.p.msi_window() {
        MsiWindow::Refused { reason } => interrupt_window_refused(e, reason),
        MsiWindow::Reserved { window } => msi_window_reserved(e, window),
    }
}

/// VT-d: requests without PASID go through the identity domain; the interrupt window is
/// refused with SGN.8 (VT-d 4.1 §3.15), the address below it is plain memory.
fn interrupt_window_refused(e: &Env, expected: u8) -> Outcome {
    let dev = e.drv.device();
    let blocked = dev.dma_untranslated(None, INTERRUPT_WINDOW.0 + 0x100, true);
    let allowed = dev.dma_untranslated(None, e.p.top_ram_page_below_interrupts(), true);
    let faults = e.p.take_faults();
    let reason = faults
        .iter()
        .find(|f| f.dev == dev.rid() && f.addr == INTERRUPT_WINDOW.0)
        .map(|f| f.reason);
    if blocked.is_ok() || allowed.is_err() || reason != Some(expected) {
        return Err(format!(
            "window DMA {blocked:?}, below it {allowed:?}, fault {reason:?}"
        ));
    }
    // and no process page is ever backed by a frame in the window
    Ok(format!(
        "DMA to 0xFEE00100 refused (fault reason {expected:#x} recorded); {:#X} reachable; the window is not RAM",
        e.p.top_ram_page_below_interrupts()
    ))
}

/// SMMUv3: MSIs are translated writes, so what keeps DMA off the doorbell is the OS — the
/// driver reports the software MSI window as every device's reserved region (Linux
/// `arm_smmu_get_resv_regions`, `IOMMU_RESV_SW_MSI`), which DMA domains (iommufd's IOAS,
/// dma-iommu) never map; the identity domain still reaches RAM.
fn msi_window_reserved(e: &Env, window: (u64, u64)) -> Outcome {
    let dev = e.drv.device();
    let regions = e.p.iommu().ops().reserved_regions(dev.rid());
    if !regions.contains(&window) {
        return Err(format!(
            "reserved regions {regions:x?} lack the MSI window {window:x?}"
        ));
    }
    let top = e.p.top_ram_page_below_interrupts();
    dev.dma_untranslated(None, top, true)
        .map_err(|x| format!("identity DMA to {top:#x}: {x:?}"))?;
    Ok(format!(
        "MSI window [{:#x}, {:#x}] reserved for {} (IOMMU_RESV_SW_MSI); {top:#X} reachable through the identity domain",
        window.0,
        window.1,
        dev.rid()
    ))
}

fn privileged(e: &Env) -> Outcome {
    let buf = e
        .proc_
        .mmap(None, 4096, Prot::RW, MapFlags::POPULATE)
        .map_err(|x| x.to_string())?;
    let mut c = cmd(Op::Fill, 0, buf.raw(), 4096, 7);
    c.privileged = true;
    match e.run(c) {
        Err(DriverError::Device(DeviceError::PrivilegedDisabled)) => {}
        other => {
            return Err(format!(
                "privileged request without privileged mode gave {other:?}"
            ));
        }
    }
    // A second device with privileged mode enabled, bound for supervisor requests.
    let dev2 =
        e.p.add_device(Rid::from_bdf(0, 6, 0).unwrap_or_default(), 32, 64)?;
    let drv2 = DemoDriver::probe(e.p, dev2, true).map_err(|x| x.to_string())?;
    let ctx2 = drv2.open(e.p, &e.proc_).map_err(|x| x.to_string())?;
    drv2.run(e.p, &ctx2, &c)
        .map_err(|x| format!("with privileged mode: {x}"))?;
    let mut b = [0u8; 1];
    e.proc_.read_bytes(buf, &mut b).map_err(|x| x.to_string())?;
    drv2.close(e.p, ctx2).map_err(|x| x.to_string())?;
    e.p.iommu()
        .remove_device(drv2.device().rid())
        .map_err(|x| x.to_string())?;
    if b[0] != 7 {
        return Err("the privileged fill did not land".into());
    }
    Ok("refused by a device without privileged mode; done by one with it enabled".into())
}

fn munmap_with_atc(e: &Env) -> Outcome {
    let buf = e
        .proc_
        .mmap(None, 4 * 4096, Prot::RW, MapFlags::empty())
        .map_err(|x| x.to_string())?;
    e.run(cmd(Op::WritePattern, 0, buf.raw(), 4 * 4096, 3))
        .map_err(|x| x.to_string())?;
    let dev = e.drv.device();
    let inv_before = dev.stats().atc_invalidations;
    e.proc_
        .munmap(Va::new(buf.raw() + 4096), 4096)
        .map_err(|x| x.to_string())?;
    let invs = dev.stats().atc_invalidations - inv_before;
    match e.run(cmd(Op::ReadChecksum, buf.raw() + 4096, 0, 4096, 0)) {
        Err(DriverError::Device(DeviceError::PageRequestInvalid)) => {}
        other => {
            return Err(format!(
                "DMA after munmap gave {other:?} (stale ATC entry used?)"
            ));
        }
    }
    // the rest of the buffer is intact and still reachable
    let sum = e
        .run(cmd(Op::ReadChecksum, buf.raw(), 0, 4096, 0))
        .map_err(|x| x.to_string())?;
    let want: Vec<u8> = (0..4096).map(|i| regs::pattern_byte(3, i)).collect();
    if sum != regs::checksum(&want, regs::CHECKSUM_INIT) || invs == 0 {
        return Err(format!("checksum {sum:#x}, {invs} ATC invalidations"));
    }
    Ok(format!(
        "{invs} ATS invalidation(s) reached the device before munmap returned; the next DMA faults"
    ))
}

fn page_out(e: &Env) -> Outcome {
    let pages = 16u64;
    let buf = e
        .proc_
        .mmap(None, pages * 4096, Prot::RW, MapFlags::empty())
        .map_err(|x| x.to_string())?;
    let swap_ins = e.p.mm().stats().swap_ins;
    for round in 0..8u64 {
        let data: Vec<u8> = (0..pages * 4096)
            .map(|i| regs::pattern_byte(round, i))
            .collect();
        e.proc_.write_bytes(buf, &data).map_err(|x| x.to_string())?;
        e.proc_
            .madvise(buf, pages * 4096, Advice::PageOut)
            .map_err(|x| x.to_string())?;
        let sum = e
            .run(cmd(Op::ReadChecksum, buf.raw(), 0, pages * 4096, 0))
            .map_err(|x| x.to_string())?;
        if sum != regs::checksum(&data, regs::CHECKSUM_INIT) {
            return Err(format!("round {round}: the device read stale or lost data"));
        }
        // the device writes, the pages go out again, the CPU reads them back
        e.run(cmd(
            Op::WritePattern,
            0,
            buf.raw(),
            pages * 4096,
            round + 100,
        ))
        .map_err(|x| x.to_string())?;
        e.proc_
            .madvise(buf, pages * 4096, Advice::PageOut)
            .map_err(|x| x.to_string())?;
        expect_pattern(&e.proc_, buf.raw(), pages * 4096, round + 100)?;
    }
    let ins = e.p.mm().stats().swap_ins - swap_ins;
    Ok(format!(
        "8 rounds of page-out of {pages} pages; {ins} swap-ins, data intact both ways"
    ))
}

fn fork(e: &Env) -> Outcome {
    let buf = e
        .proc_
        .mmap(None, 2 * 4096, Prot::RW, MapFlags::empty())
        .map_err(|x| x.to_string())?;
    e.run(cmd(Op::Fill, 0, buf.raw(), 8192, 0x11))
        .map_err(|x| x.to_string())?;
    let child = e.proc_.fork().map_err(|x| x.to_string())?;
    let cctx = e.drv.open(e.p, &child).map_err(|x| x.to_string())?;
    if cctx.pasid() == e.ctx.pasid() {
        return Err("the child got its parent's PASID".into());
    }
    // the device writes the child's copy, then the parent's
    e.drv
        .run(e.p, &cctx, &cmd(Op::Fill, 0, buf.raw(), 8192, 0x22))
        .map_err(|x| x.to_string())?;
    e.run(cmd(Op::Fill, 0, buf.raw(), 4096, 0x33))
        .map_err(|x| x.to_string())?;
    let (mut pb, mut cb) = ([0u8; 2], [0u8; 2]);
    e.proc_
        .read_bytes(buf, &mut pb[..1])
        .map_err(|x| x.to_string())?;
    e.proc_
        .read_bytes(Va::new(buf.raw() + 4096), &mut pb[1..])
        .map_err(|x| x.to_string())?;
    child
        .read_bytes(buf, &mut cb[..1])
        .map_err(|x| x.to_string())?;
    child
        .read_bytes(Va::new(buf.raw() + 4096), &mut cb[1..])
        .map_err(|x| x.to_string())?;
    e.drv.close(e.p, cctx).map_err(|x| x.to_string())?;
    child.exit().map_err(|x| x.to_string())?;
    if pb != [0x33, 0x11] || cb != [0x22, 0x22] {
        return Err(format!("parent sees {pb:x?}, child sees {cb:x?}"));
    }
    Ok(format!(
        "parent PASID {}, child PASID {}: each device write landed in its own copy",
        e.ctx.pasid(),
        cctx.pasid()
    ))
}

fn exit_pending(e: &Env) -> Outcome {
    let victim = e.p.mm().spawn().map_err(|x| x.to_string())?;
    let vctx = e.drv.open(e.p, &victim).map_err(|x| x.to_string())?;
    let buf = victim
        .mmap(None, 4096, Prot::RW, MapFlags::empty())
        .map_err(|x| x.to_string())?;
    e.drv.submit(&vctx, &cmd(Op::Fill, 0, buf.raw(), 4096, 9));
    // the device sends its page request (or its DMA stalls) and waits; the process dies
    // before it is answered
    if e.drv.device().run() != Progress::Waiting {
        return Err("the device did not wait for its page".into());
    }
    victim.exit().map_err(|x| x.to_string())?;
    let r = e.drv.wait(e.p);
    if !refused_by_the_os(&r) {
        return Err(format!("pending DMA after exit gave {r:?}"));
    }
    e.drv.close(e.p, vctx).map_err(|x| x.to_string())?;
    // the system keeps working
    let buf2 = e
        .proc_
        .mmap(None, 4096, Prot::RW, MapFlags::empty())
        .map_err(|x| x.to_string())?;
    e.run(cmd(Op::Fill, 0, buf2.raw(), 4096, 5))
        .map_err(|x| x.to_string())?;
    Ok(format!(
        "the dead process's pending DMA ended ({}); other work continues",
        refusal(&r)
    ))
}

fn two_devices(e: &Env) -> Outcome {
    let dev2 =
        e.p.add_device(Rid::from_bdf(0, 5, 0).unwrap_or_default(), 32, 64)?;
    let drv2 = DemoDriver::probe(e.p, dev2, false).map_err(|x| x.to_string())?;
    let ctx2 = drv2.open(e.p, &e.proc_).map_err(|x| x.to_string())?;
    if ctx2.pasid() != e.ctx.pasid() {
        return Err(format!("PASIDs {} and {}", e.ctx.pasid(), ctx2.pasid()));
    }
    let buf = e
        .proc_
        .mmap(None, 8192, Prot::RW, MapFlags::empty())
        .map_err(|x| x.to_string())?;
    e.run(cmd(Op::WritePattern, 0, buf.raw(), 8192, 77))
        .map_err(|x| x.to_string())?;
    let sum = drv2
        .run(e.p, &ctx2, &cmd(Op::ReadChecksum, buf.raw(), 0, 8192, 0))
        .map_err(|x| x.to_string())?;
    let want: Vec<u8> = (0..8192).map(|i| regs::pattern_byte(77, i)).collect();
    drv2.close(e.p, ctx2).map_err(|x| x.to_string())?;
    if sum != regs::checksum(&want, regs::CHECKSUM_INIT) {
        return Err("the second device read different data".into());
    }
    Ok(format!(
        "both devices use PASID {}; one writes, the other reads the same bytes",
        ctx2.pasid()
    ))
}

/// Runs the program on `platform` (a host, or a guest) with a demo device at 00:03.0.
///
/// # Errors
/// A string when the device or the process cannot be set up at all.
pub fn run(platform: &dyn Machine) -> Result<Report, String> {
    let dev = platform.add_device(Rid::from_bdf(0, 3, 0).map_err(|e| e.to_string())?, 32, 256)?;
    let drv = DemoDriver::probe(platform, dev.clone(), false).map_err(|e| e.to_string())?;
    let proc_ = platform.mm().spawn().map_err(|e| e.to_string())?;
    let ctx = drv.open(platform, &proc_).map_err(|e| e.to_string())?;
    let env = Env {
        p: platform,
        drv: &drv,
        proc_,
        ctx,
    };
    let checks: [NamedCheck; 12] = [
        ("fresh mmap faulted in by the device", fresh_mmap),
        ("malloc'ed and stack buffers", malloc_and_stack),
        ("2 MiB and 1 GiB huge pages", huge_pages),
        (
            "write to a read-only mapping fails, nothing written",
            read_only,
        ),
        ("access to an unmapped range fails cleanly", unmapped),
        ("interrupt window is not DMA-able", interrupt_window),
        ("privileged request needs privileged mode", privileged),
        (
            "munmap with live ATC entries: next DMA faults",
            munmap_with_atc,
        ),
        ("page-out under load, data intact", page_out),
        ("fork: child binds its own PASID, no shared data", fork),
        (
            "exit with DMA pending: invalid response, system works",
            exit_pending,
        ),
        (
            "two devices bound to one process share its PASID",
            two_devices,
        ),
    ];
    let mut report = Report {
        checks: run_checks(&env, &checks),
        counters: vec![],
    };
    drv.close(platform, env.ctx).map_err(|e| e.to_string())?;
    let d = dev.stats();
    let v = platform.unit_counters();
    let io = platform.iommu().stats();
    report.counters = vec![
        ("ats_translations", d.ats_translations),
        ("atc_hits", d.atc_hits),
        ("page_requests", d.page_requests),
        ("page_group_responses", d.page_group_responses),
        ("iotlb_invalidations", v.iotlb_invalidations),
        ("devtlb_invalidations", v.devtlb_invalidations),
        ("dma_bytes", d.dma_bytes),
        ("iopf_groups", io.iopf.groups),
        ("iopf_success", io.responses_success),
        ("iopf_invalid", io.responses_invalid),
        ("mmu_notifier_flushes", io.flushes),
        ("swap_ins", platform.mm().stats().swap_ins),
    ];
    Ok(report)
}

fn run_checks(env: &Env, checks: &[NamedCheck]) -> Vec<Check> {
    checks
        .iter()
        .map(|&(name, f)| {
            let (passed, detail) = match f(env) {
                Ok(d) => (true, d),
                Err(d) => (false, d),
            };
            Check {
                name,
                passed,
                detail,
            }
        })
        .collect()
}

/// The platform device's StreamID in [`run_platform`] (firmware's `iommus` property).
pub const PLATFORM_STREAM: u16 = 0x0800;

/// What [`run_platform`] did.
#[derive(Debug, Clone)]
pub enum PlatformRun {
    /// The checks ran.
    Ran(Report),
    /// The machine cannot have a platform device with stall: why.
    Skipped(String),
}

/// Runs the checks that need neither ATS nor PRI on a platform device with SubstreamIDs and
/// stall (StreamID [`PLATFORM_STREAM`], 20-bit SubstreamIDs): its page faults are stalled
/// transactions the OS resumes, its invalid accesses stalled transactions it aborts.
///
/// # Errors
/// A string when the device or the process cannot be set up at all.
pub fn run_platform(platform: &dyn Machine) -> Result<PlatformRun, String> {
    let dev = match platform.add_platform_device(Rid::from_raw(PLATFORM_STREAM), 20) {
        Ok(d) => d,
        Err(why) => return Ok(PlatformRun::Skipped(why)),
    };
    let drv =
        DemoDriver::probe_platform(platform, dev.clone(), 20, 32).map_err(|e| e.to_string())?;
    let proc_ = platform.mm().spawn().map_err(|e| e.to_string())?;
    let ctx = drv.open(platform, &proc_).map_err(|e| e.to_string())?;
    let env = Env {
        p: platform,
        drv: &drv,
        proc_,
        ctx,
    };
    let checks: [NamedCheck; 8] = [
        ("fresh mmap faulted in by the device", fresh_mmap),
        ("malloc'ed and stack buffers", malloc_and_stack),
        ("2 MiB and 1 GiB huge pages", huge_pages),
        (
            "write to a read-only mapping fails, nothing written",
            read_only,
        ),
        ("access to an unmapped range fails cleanly", unmapped),
        ("page-out under load, data intact", page_out),
        ("fork: child binds its own PASID, no shared data", fork),
        (
            "exit with DMA pending: stall aborted, system works",
            exit_pending,
        ),
    ];
    let checks = run_checks(&env, &checks);
    drv.close(platform, env.ctx).map_err(|e| e.to_string())?;
    platform
        .iommu()
        .remove_device(dev.rid())
        .map_err(|e| e.to_string())?;
    let d = dev.stats();
    Ok(PlatformRun::Ran(Report {
        checks,
        counters: vec![("stalls", d.stalls), ("dma_bytes", d.dma_bytes)],
    }))
}
