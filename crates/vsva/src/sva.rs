//! `vsva demo`: the SVA demo program on a host platform (64 GiB of sparse memory, a VT-d
//! unit with its driver, the IOMMU core, the memory manager, a demo DMA device).

use anyhow::{Result, anyhow};
use vsva_demo::platform::Platform;
use vsva_vtd::VtdConfig;

use crate::report::Report;

pub fn run() -> Result<Report> {
    let platform = Platform::new(64 << 30, VtdConfig::default())?;
    let program = vsva_demo::program::run(&platform).map_err(|e| anyhow!(e))?;
    let mut r = Report::default();
    r.section("SVA demo: a process and a PASID/ATS/PRI DMA device behind VT-d");
    r.say("host: 64 GiB sparse memory, VT-d scalable mode (20-bit PASIDs), IOMMU core, memory manager");
    r.say("device 00:03.0: DMA engine with an ATC; it translates with ATS and asks for pages with PRI");
    for c in program.checks {
        r.check(c.name, c.passed, c.detail);
    }
    for (k, v) in program.counters {
        r.count(k, v);
    }
    Ok(r)
}
