//! I/O page faults and invalidations: the IOPF round trip against a CPU minor fault (and
//! inside a guest against the host's), munmap-to-ATC invalidation against a munmap no device
//! holds.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, ensure};
use vsva_demo::regs::{self, Op};
use vsva_demo::{Command, DemoDriver};
use vsva_host::{Host, IommuKind, Smmuv3Kind};
use vsva_mem::{Access, PhysMem, PhysMemory, Rid, Va};
use vsva_mm::{MapFlags, Prot};
use vsva_smmuv3::Smmuv3Config;

use super::{Effort, Metric, median, ratio_metric, rig_on};

/// One sample of the I/O page-fault round trip on `machine` (a host or a guest): the device
/// writes `pages` fresh pages of `proc_` under `ctx`, each a page request resolved by the
/// OS and answered before the device retries. Returns µs per page, after checking that every
/// page faulted once and the data is really in the process.
pub(super) fn iopf_sample(
    machine: &dyn vsva_demo::Machine,
    drv: &DemoDriver,
    proc_: &vsva_mm::Process,
    ctx: &vsva_demo::Context,
    pages: u64,
) -> Result<f64> {
    let buf = proc_.mmap(None, pages * 4096, Prot::RW, MapFlags::empty())?;
    // a fault is a page request (PCIe PRI) or a stalled transaction (a platform device)
    let faults = |d: &DemoDriver| {
        let s = d.device().stats();
        s.page_requests + s.stalls
    };
    let before = faults(drv);
    let t = Instant::now();
    drv.run(
        machine,
        ctx,
        &Command::new(Op::WritePattern, 0, buf.raw(), pages * 4096, 9),
    )?;
    let us = t.elapsed().as_secs_f64() * 1e6 / pages as f64;
    let prs = faults(drv) - before;
    ensure!(prs == pages, "{prs} faults for {pages} fresh pages");
    let mut b = [0u8; 1];
    proc_.read_bytes(Va::new(buf.raw() + (pages - 1) * 4096), &mut b)?;
    ensure!(
        b[0] == regs::pattern_byte(9, (pages - 1) * 4096),
        "fault not really resolved"
    );
    proc_.munmap(buf, pages * 4096)?;
    Ok(us)
}

pub(super) fn iopf_pages(e: Effort) -> u64 {
    if e.quick { 1024 } else { 4096 }
}

pub(super) fn iopf_roundtrip<K: IommuKind>(e: Effort) -> Result<Metric>
where
    K::Config: Default,
{
    let pages = iopf_pages(e);
    let r = rig_on::<K>(256)?;
    let mut samples = vec![];
    for _ in 0..e.samples.min(5) {
        samples.push(iopf_sample(&r.p, &r.drv, &r.proc_, &r.ctx, pages)?);
    }
    let us = median(samples);
    let base = minor_fault_us(e, pages)?;
    let mut m = ratio_metric(us, "us", base, "<= 3x a CPU minor fault", us <= 3.0 * base);
    m.note = Some(format!("{pages} fresh pages per sample"));
    Ok(m)
}

/// A CPU minor write fault, µs per page: a fresh anonymous mapping of the host, touched once
/// per page (each first write faults a zeroed page in).
fn minor_fault_us(e: Effort, pages: u64) -> Result<f64> {
    let mut base_samples = vec![];
    for _ in 0..e.samples.min(5) {
        let fresh = PhysMemory::new(pages * 4096)?;
        let t = Instant::now();
        for p in 0..pages {
            fresh.store_u64(p * 4096, p)?;
        }
        base_samples.push(t.elapsed().as_secs_f64() * 1e6 / pages as f64);
        ensure!(
            fresh.load_u64((pages - 1) * 4096)? == pages - 1,
            "baseline write lost"
        );
    }
    Ok(median(base_samples))
}

/// The I/O page-fault round trip through stall on the Arm64 host: a platform device's DMA
/// stalls, the event queue reports it, the IOMMU core resolves it with the memory manager,
/// CMD_RESUME retries it — against the same CPU minor fault as the PRI round trips.
pub(super) fn smmuv3_iopf_stall_roundtrip(e: Effort) -> Result<Metric> {
    let pages = iopf_pages(e);
    let host = Host::<Smmuv3Kind>::new(64 << 30, Smmuv3Config::default())?;
    let dev = vsva_demo::Machine::add_platform_device(&host, Rid::from_raw(0x800), 20)
        .map_err(|e| anyhow::anyhow!(e))?;
    let drv = DemoDriver::probe_platform(&host, dev, 20, 32)?;
    let proc_ = host.mm.spawn()?;
    let ctx = drv.open(&host, &proc_)?;
    let mut samples = vec![];
    for _ in 0..e.samples.min(5) {
        samples.push(iopf_sample(&host, &drv, &proc_, &ctx, pages)?);
    }
    let us = median(samples);
    let base = minor_fault_us(e, pages)?;
    let mut m = ratio_metric(us, "us", base, "<= 3x a CPU minor fault", us <= 3.0 * base);
    m.note = Some(format!(
        "{pages} fresh pages per sample, each a stalled DMA resumed by CMD_RESUME"
    ));
    Ok(m)
}

/// The I/O page-fault round trip inside a guest — device page request, host PRQ (PRI queue),
/// iommufd fault queue, VMM, guest vIOMMU PRQ (PRI queue), guest IOPF and memory manager,
/// guest page response (CMD_PRI_RESP), fault-queue write, host page response, device retry —
/// against the same round trip on the host, sampled alternately in the same run; `K` is the
/// host's IOMMU and the guest's vIOMMU.
pub(super) fn vsva_iopf_roundtrip<K: vsva_vmm::GuestKind>(e: Effort) -> Result<Metric>
where
    K::Config: Default,
{
    let pages = iopf_pages(e);
    let host_rig = rig_on::<K>(256)?;
    let host = Arc::new(Host::<K>::new(16 << 30, K::Config::default())?);
    let vm = vsva_vmm::Vm::<K>::boot(host, vsva_vmm::VmConfig::default())?;
    let dev = vsva_demo::Machine::add_device(&vm, Rid::from_bdf(0, 3, 0)?, 64, 256)
        .map_err(|e| anyhow::anyhow!(e))?;
    let drv = DemoDriver::probe(&vm, dev, false)?;
    let proc_ = vsva_demo::Machine::mm(&vm).spawn()?;
    let ctx = drv.open(&vm, &proc_)?;
    let relayed = vm.vmm().counters().page_responses_relayed;
    let (mut guest, mut base) = (vec![], vec![]);
    for _ in 0..e.samples.min(5) {
        guest.push(iopf_sample(&vm, &drv, &proc_, &ctx, pages)?);
        base.push(iopf_sample(
            &host_rig.p,
            &host_rig.drv,
            &host_rig.proc_,
            &host_rig.ctx,
            pages,
        )?);
    }
    let relayed = vm.vmm().counters().page_responses_relayed - relayed;
    ensure!(
        relayed == pages * guest.len() as u64,
        "{relayed} responses relayed for {} faults",
        pages * guest.len() as u64
    );
    let (us, base) = (median(guest), median(base));
    let mut m = ratio_metric(us, "us", base, "<= 2x iopf_roundtrip_us", us <= 2.0 * base);
    m.note = Some(format!("{pages} fresh guest pages per sample"));
    drv.close(&vm, ctx)?;
    vm.shutdown()?;
    Ok(m)
}

/// munmap of a page the device holds in its ATC (MMU notifier, PASID-IOTLB and device-TLB
/// invalidation, waiting for the device), against munmap of a page in a process no device
/// is bound to (the CPU side alone), alternately in the same run.
pub(super) fn invalidation<K: IommuKind>(e: Effort) -> Result<Metric>
where
    K::Config: Default,
{
    let r = rig_on::<K>(256)?;
    let rounds = if e.quick { 200 } else { 1000 };
    let dev = r.drv.device().clone();
    let plain = r.p.mm.spawn()?;
    let mut samples = Vec::with_capacity(rounds);
    let mut base = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let va = plain.mmap(None, 4096, Prot::RW, MapFlags::POPULATE)?;
        let t = Instant::now();
        plain.munmap(va, 4096)?;
        base.push(t.elapsed().as_secs_f64() * 1e6);
        ensure!(
            plain.translate(va, Access::READ).is_err(),
            "baseline munmap left the page"
        );
        let va = r.proc_.mmap(None, 4096, Prot::RW, MapFlags::POPULATE)?;
        r.drv.run(
            &r.p,
            &r.ctx,
            &Command::new(Op::ReadChecksum, va.raw(), 0, 4096, 0),
        )?;
        let inv = dev.stats().atc_invalidations;
        let t = Instant::now();
        r.proc_.munmap(va, 4096)?;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
        ensure!(
            dev.stats().atc_invalidations > inv,
            "the device was not told"
        );
    }
    let us = median(samples);
    let mut m = ratio_metric(us, "us", median(base), "<= 5 us", us <= 5.0);
    m.note = Some("baseline: munmap of a page no device holds".into());
    Ok(m)
}
