//! `vsva demo`: the SVA demo program on a host platform (64 GiB of sparse memory, an IOMMU
//! unit with its driver, the IOMMU core, the memory manager, a demo DMA device), then the
//! same program inside a guest (`vsva-vmm`: a VMM process with 3 GiB of guest RAM, a virtual
//! VT-d bound onto the host's nested translation through iommufd, the guest OS running the
//! same driver and program). The hosts: an x86-64 machine with VT-d, and an Arm64 machine
//! with an SMMUv3 and its guest through a virtual SMMUv3. `--iommu` picks one
//! host and its guests; `--vm` runs only guests; with neither, every configuration runs and
//! the report ends with a line per run. On the SMMUv3 host a second device runs the checks
//! that need neither ATS nor PRI: a platform device whose page faults are stalls; VT-d
//! hosts, which cannot stall, say so and skip it.

use std::sync::Arc;

use anyhow::{Result, anyhow};
use vsva_host::{Host, Platform, Smmuv3Kind};
use vsva_smmuv3::Smmuv3Config;
use vsva_vmm::{Smmuv3Vm, VmConfig, VtdVm};
use vsva_vtd::VtdConfig;

use crate::report::Report;

/// A host's IOMMU (`--iommu`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HostIommu {
    /// Intel VT-d on an x86-64 machine.
    Vtd,
    /// Arm SMMUv3 on an Arm64 machine.
    Smmuv3,
}

/// A guest's vIOMMU (`--viommu`). Each host offers its own kind: a VT-d host a virtual VT-d;
/// an SMMUv3 host a virtual SMMUv3; virtio-iommu with the page-table extension on either
/// (issue 16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GuestIommu {
    /// A virtual VT-d bound onto host VT-d nesting.
    Vtd,
    /// A virtual SMMUv3 on host SMMUv3 nesting.
    Smmuv3,
    /// virtio-iommu with page tables per PASID (not built yet).
    VirtioIommu,
}

/// One program run: where, and how many of its checks passed.
fn run_line(r: &mut Report, name: &str, from: usize) {
    let checks = &r.checks[from..];
    let passed = checks.iter().filter(|c| c.passed).count();
    let total = checks.len();
    r.run(name, passed, total);
}

fn host(r: &mut Report) -> Result<()> {
    let platform = Platform::new(64 << 30, VtdConfig::default())?;
    let program = vsva_demo::run_program(&platform).map_err(|e| anyhow!(e))?;
    r.section("SVA demo: a process and a PASID/ATS/PRI DMA device behind VT-d");
    r.say("host: 64 GiB sparse memory, VT-d scalable mode (20-bit PASIDs), IOMMU core, memory manager");
    r.say("device 00:03.0: DMA engine with an ATC; it translates with ATS and asks for pages with PRI");
    for c in program.checks {
        r.check(c.name, c.passed, c.detail);
    }
    for (k, v) in program.counters {
        r.count(k, v);
    }
    if let vsva_demo::PlatformRun::Skipped(why) =
        vsva_demo::run_platform(&platform).map_err(|e| anyhow!(e))?
    {
        r.say(format!("platform device with stall: skipped, {why}"));
    }
    Ok(())
}

fn guest(r: &mut Report, prefix: &str) -> Result<()> {
    let host = Arc::new(Platform::new(16 << 30, VtdConfig::default())?);
    let vm = VtdVm::boot(host, VmConfig::default())?;
    let program = vsva_demo::run_program(&vm).map_err(|e| anyhow!(e))?;
    let cfg = vm.unit().config();
    r.section("vSVA demo: the same program inside a guest, through a virtual VT-d");
    r.say(format!(
        "VMM: a host process with {} GiB of guest RAM (1 GiB pages), an IOAS mapping it at GPA 0, a nesting-parent HWPT (stage 2), a fault queue",
        vm.vmm().ram_size() >> 30
    ));
    r.say(format!(
        "vIOMMU: VT-d from the host's IOMMU_GET_HW_INFO: {}-bit PASIDs, first stage only (1 GiB pages: {}, 5-level: {}), caching mode",
        cfg.pasid_bits, cfg.fs_1g, cfg.fs_5level
    ));
    r.say("guest: the host's VT-d driver, IOMMU core, memory manager, demo driver and program, over guest RAM; devices assigned from host bus 1");
    for c in program.checks {
        let name = format!("{prefix}{}", c.name);
        r.check(&name, c.passed, c.detail);
    }
    for (k, v) in program.counters {
        let name = if prefix.is_empty() {
            k.to_string()
        } else {
            format!("guest_{k}")
        };
        r.count(&name, v);
    }
    let c = vm.vmm().counters();
    r.count("nested_binds", c.nested_binds);
    r.count("invalidations_propagated", c.invalidations_propagated);
    r.count("faults_to_guest", c.faults_to_guest);
    r.count("page_responses_relayed", c.page_responses_relayed);
    vm.shutdown()?;
    Ok(())
}

fn smmuv3_host(r: &mut Report, prefix: &str) -> Result<Host<Smmuv3Kind>> {
    let host = Host::<Smmuv3Kind>::new(64 << 30, Smmuv3Config::default())?;
    let program = vsva_demo::run_program(&host).map_err(|e| anyhow!(e))?;
    let cfg = host.unit.config();
    r.section("SVA demo: the same program on an Arm64 machine behind an SMMUv3");
    r.say(format!(
        "host: 64 GiB sparse memory, SMMUv3 ({}-bit StreamIDs, {}-bit SubstreamIDs, 2-level stream and CD tables, ATS, PRI, stall), IOMMU core, memory manager with Arm64 (VMSAv8-64) process page tables",
        cfg.sid_bits, cfg.ssid_bits
    ));
    r.say("device 00:03.0: the same DMA engine; its PASID is the SubstreamID, a CD's TTB0 is the process's table, page requests go through the PRI queue and come back as CMD_PRI_RESP");
    for c in program.checks {
        r.check(&format!("{prefix}{}", c.name), c.passed, c.detail);
    }
    let counter = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("smmuv3_{k}")
        }
    };
    for (k, v) in program.counters {
        r.count(&counter(k), v);
    }
    Ok(host)
}

/// The SMMU's own counters, over both devices' runs.
fn smmuv3_unit(r: &mut Report, host: &Host<Smmuv3Kind>, prefix: &str) {
    let counter = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("smmuv3_{k}")
        }
    };
    let s = host.unit.stats();
    r.count(&counter("cmdq_commands"), s.commands);
    r.count(&counter("cmd_syncs"), s.syncs);
    r.count(&counter("events"), s.events);
    r.count(&counter("priq_entries"), s.page_requests);
    r.count(&counter("pri_responses"), s.page_responses);
    r.count(&counter("tlb_walks"), s.tlb.walks);
}

/// The program inside a guest through a virtual SMMUv3 on the SMMUv3 host's nesting, with
/// both devices: the PCIe one (its page requests relayed through the PRI queues) and the
/// platform one (its stalls relayed through the event queues and CMD_RESUME).
fn smmuv3_guest(r: &mut Report, prefix: &str) -> Result<()> {
    let host = Arc::new(Host::<Smmuv3Kind>::new(16 << 30, Smmuv3Config::default())?);
    let vm = Smmuv3Vm::boot(host, VmConfig::default())?;
    let program = vsva_demo::run_program(&vm).map_err(|e| anyhow!(e))?;
    let cfg = vm.unit().config();
    r.section("vSVA demo: the same program inside a guest, through a virtual SMMUv3");
    r.say(format!(
        "VMM: a host process with {} GiB of guest RAM, an IOAS mapping it at GPA 0, a stage-2 nesting-parent HWPT, an SMMUv3 vIOMMU on it with a vEVENTQ, a vDEVICE per device (vSID = guest StreamID), a fault queue",
        vm.vmm().ram_size() >> 30
    ));
    r.say(format!(
        "vSMMU: from the host's IOMMU_GET_HW_INFO IDRs: stage 1 only, {}-bit SubstreamIDs, ATS {}, PRI {}; each guest STE becomes a nested HWPT (IOMMU_HWPT_DATA_ARM_SMMUV3) whose CD table the host walks through the stage 2",
        cfg.ssid_bits, cfg.ats, cfg.pri
    ));
    r.say("guest: the host's SMMUv3 driver, IOMMU core, Arm64 memory manager, demo driver and program, over guest RAM");
    for c in program.checks {
        r.check(&format!("{prefix}{}", c.name), c.passed, c.detail);
    }
    let counter = |k: &str| format!("smmuv3_guest_{k}");
    for (k, v) in program.counters {
        r.count(&counter(k), v);
    }
    match vsva_demo::run_platform(&vm).map_err(|e| anyhow!(e))? {
        vsva_demo::PlatformRun::Ran(report) => {
            r.say("guest platform device (vfio-platform, dma-can-stall): host stalls reach the guest as stall events with the host's STAG; the guest's CMD_RESUME resumes the host transaction");
            for c in report.checks {
                r.check(&format!("{prefix}stall: {}", c.name), c.passed, c.detail);
            }
        }
        vsva_demo::PlatformRun::Skipped(why) => {
            r.say(format!("guest platform device with stall: skipped, {why}"));
        }
    }
    let c = vm.vmm().counters();
    r.count(&counter("nested_binds"), c.nested_binds);
    r.count(
        &counter("invalidations_propagated"),
        c.invalidations_propagated,
    );
    r.count(&counter("faults_to_guest"), c.faults_to_guest);
    r.count(&counter("page_responses_relayed"), c.page_responses_relayed);
    r.count(&counter("faults_reported"), c.faults_reported);
    vm.shutdown()?;
    Ok(())
}

/// The platform device's run on the SMMUv3 host: the checks without ATS/PRI, its page
/// faults served through stall (event queue, CMD_RESUME) rather than PRI.
fn smmuv3_stall(r: &mut Report, host: &Host<Smmuv3Kind>, prefix: &str) -> Result<()> {
    let report = match vsva_demo::run_platform(host).map_err(|e| anyhow!(e))? {
        vsva_demo::PlatformRun::Ran(report) => report,
        vsva_demo::PlatformRun::Skipped(why) => {
            r.say(format!("platform device with stall: skipped, {why}"));
            return Ok(());
        }
    };
    r.section("SVA demo: a platform device with SubstreamIDs and stall behind the same SMMUv3");
    r.say(format!(
        "device (StreamID {:#x}, no PCIe): the same DMA engine without ATS or PRI; firmware says dma-can-stall, so its STE keeps S1STALLD clear and its CDs have S = 1; a faulting DMA stalls, the OS reads the stall event, fixes the fault and answers with CMD_RESUME (retry, or abort for an access it cannot fix)",
        vsva_demo::PLATFORM_STREAM
    ));
    for c in report.checks {
        r.check(&format!("{prefix}stall: {}", c.name), c.passed, c.detail);
    }
    let counter = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("smmuv3_{k}")
        }
    };
    for (k, v) in report.counters {
        r.count(&counter(&format!("platform_{k}")), v);
    }
    let s = host.driver.stall_stats();
    r.count(&counter("stall_events"), s.stall_events);
    r.count(&counter("resumes"), s.resumes);
    Ok(())
}

/// Runs the demo on the hosts `iommu` selects (all when `None`), each followed by its guests
/// (those with the vIOMMU `viommu` selects, all when `None`), or only the guests (`vm_only`).
pub fn run(iommu: Option<HostIommu>, viommu: Option<GuestIommu>, vm_only: bool) -> Result<Report> {
    match viommu {
        Some(GuestIommu::Smmuv3) if iommu == Some(HostIommu::Vtd) => {
            return Err(anyhow!(
                "a VT-d host offers its guests a virtual VT-d, not a virtual SMMUv3"
            ));
        }
        Some(GuestIommu::VirtioIommu) => {
            return Err(anyhow!("no guest runs through virtio-iommu yet (issue 16)"));
        }
        Some(GuestIommu::Vtd) if iommu == Some(HostIommu::Smmuv3) => {
            return Err(anyhow!(
                "an SMMUv3 host offers its guests a virtual SMMUv3, not a virtual VT-d"
            ));
        }
        _ => {}
    }
    let mut r = Report::default();
    let all = iommu.is_none() && viommu.is_none();
    let hosts = !vm_only;
    if iommu != Some(HostIommu::Smmuv3) && viommu != Some(GuestIommu::Smmuv3) {
        if hosts {
            let from = r.checks.len();
            host(&mut r)?;
            run_line(&mut r, "VT-d host", from);
        }
        let from = r.checks.len();
        guest(&mut r, if hosts { "guest: " } else { "" })?;
        run_line(&mut r, "VT-d guest (virtual VT-d on host nesting)", from);
    }
    if iommu != Some(HostIommu::Vtd) && viommu != Some(GuestIommu::Vtd) {
        let prefix = if all { "smmuv3: " } else { "" };
        if hosts {
            let from = r.checks.len();
            let host = smmuv3_host(&mut r, prefix)?;
            run_line(&mut r, "SMMUv3 host", from);
            let from = r.checks.len();
            smmuv3_stall(&mut r, &host, prefix)?;
            if r.checks.len() > from {
                run_line(&mut r, "SMMUv3 host, platform device with stall", from);
            }
            smmuv3_unit(&mut r, &host, prefix);
        }
        let guest_prefix = match (all, hosts) {
            (true, _) => "smmuv3 guest: ",
            (false, true) => "guest: ",
            (false, false) => "",
        };
        let from = r.checks.len();
        smmuv3_guest(&mut r, guest_prefix)?;
        run_line(
            &mut r,
            "SMMUv3 guest (virtual SMMUv3 on host nesting)",
            from,
        );
    }
    Ok(r)
}
