//! `vsva demo`: the SVA demo program on a host platform (64 GiB of sparse memory, a VT-d
//! unit with its driver, the IOMMU core, the memory manager, a demo DMA device), then the
//! same program inside a guest (`vsva-vmm`: a VMM process with 3 GiB of guest RAM, a virtual
//! VT-d bound onto the host's nested translation through iommufd, the guest OS running the
//! same driver and program). `--vm` runs only the guest.

use std::sync::Arc;

use anyhow::{Result, anyhow};
use vsva_host::Platform;
use vsva_vmm::{Vm, VmConfig};
use vsva_vtd::VtdConfig;

use crate::report::Report;

/// Which machines the demo runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Where {
    /// The host, then a guest.
    HostThenGuest,
    /// Only inside a guest.
    Guest,
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
    Ok(())
}

fn guest(r: &mut Report, prefix: &str) -> Result<()> {
    let host = Arc::new(Platform::new(16 << 30, VtdConfig::default())?);
    let vm = Vm::boot(host, VmConfig::default())?;
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

pub fn run(place: Where) -> Result<Report> {
    let mut r = Report::default();
    if place == Where::HostThenGuest {
        host(&mut r)?;
        guest(&mut r, "guest: ")?;
    } else {
        guest(&mut r, "")?;
    }
    Ok(r)
}
