//! The `vsva` command.
//!
//! * `vsva demo [--iommu vtd|smmuv3] [--viommu vtd|smmuv3|virtio-iommu] [--vm] [--json]` — the SVA demo: a userspace program
//!   on a host with an IOMMU (VT-d on x86-64, SMMUv3 on Arm64) and a PASID/ATS/PRI DMA device
//!   runs its checks, then the same program inside a guest through a virtual VT-d bound onto
//!   host nesting (`--vm`: only guests; `--iommu`: one host and its guests); one line per
//!   check, then counters, then one line per run. Exit status 0 only if every check passed.
//! * `vsva foundation [--json]` — the foundation walkthrough: a process faulting pages in,
//!   its page walk explained, huge pages, fork/COW with an MMU notifier, a nested walk.
//! * `vsva bench [--quick] [--json] [--only METRIC]...` — each SVA cost against a baseline
//!   measured in the same run.
//! * `vsva stress [--seconds N] [--only NAME[,NAME]...] [--json]` — device DMA on another
//!   thread while the main thread unmaps, protects, pages out, forks, unbinds, exits, unmaps
//!   an IOAS, detaches, or (in a guest) clears TE and unbinds, on a VT-d host and (the host
//!   operations again, `smmuv3_*`) an SMMUv3 host; the frames each operation took away are
//!   poisoned and watched. Exit status 0 only if no stale access was seen.

mod bench;
mod foundation;
mod report;
mod stress;
mod sva;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "vsva",
    version,
    about = "Shared Virtual Addressing and its virtualization, as executable models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the SVA demo and print its report.
    Demo {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Run the program only inside guests (vSVA).
        #[arg(long)]
        vm: bool,
        /// The host IOMMU (and its guests); every host when not given.
        #[arg(long, value_enum)]
        iommu: Option<sva::HostIommu>,
        /// The guests' vIOMMU (each host offers its own kind); every kind when not given.
        #[arg(long, value_enum)]
        viommu: Option<sva::GuestIommu>,
    },
    /// Walk through the foundation: memory, page tables, the memory manager.
    Foundation {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Measure SVA costs against baselines run in the same process.
    Bench {
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Fewer samples and smaller sizes (under a minute).
        #[arg(long)]
        quick: bool,
        /// Run only this metric (repeatable), e.g. `--only invalidation_us`.
        #[arg(long)]
        only: Vec<String>,
    },
    /// Race device DMA against every operation that takes memory from a device, and watch
    /// the memory taken for stale accesses.
    Stress {
        /// Seconds in all, split evenly over the scenarios run.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Run only these scenarios, separated by commas (munmap, mprotect, pageout, dontneed,
        /// fork, unbind, exit, ioas_unmap, detach, guest_te_clear, guest_pasid_inval,
        /// guest_munmap; smmuv3_ and a host or iommufd one for the same on an SMMUv3 host).
        #[arg(long)]
        only: Option<String>,
        /// Stop each scenario after this many operations (the short run of the tests).
        #[arg(long)]
        iterations: Option<u64>,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Writes a report to stdout. A reader that stops reading (`vsva demo --json | head`) ends
/// the output quietly instead of a panic; the exit status still says whether checks passed.
fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return;
        }
        eprintln!("vsva: writing the report: {e}");
        std::process::exit(1);
    }
}

/// `vsva stress`: the table, or one JSON object; exit status 1 on a stale access or a
/// scenario that could not run.
fn stress(opts: &stress::Options, json: bool) -> anyhow::Result<()> {
    let report = stress::run(opts)?;
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&report)?));
    } else {
        emit(&report.to_text());
    }
    if !report.passed() {
        std::process::exit(1);
    }
    Ok(())
}

/// `vsva bench`: the table, or one JSON object of metrics by name.
fn bench(json: bool, quick: bool, only: &[String]) -> anyhow::Result<()> {
    let metrics = bench::run(quick, only)?;
    if json {
        let map: serde_json::Map<String, serde_json::Value> = metrics
            .iter()
            .map(|(k, m)| Ok((k.to_string(), serde_json::to_value(m)?)))
            .collect::<anyhow::Result<_>>()?;
        emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&serde_json::json!({ "metrics": map }))?
        ));
    } else {
        emit(&bench::table(&metrics));
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (report, json) = match cli.command {
        Command::Bench { json, quick, only } => return bench(json, quick, &only),
        Command::Stress {
            seconds,
            only,
            iterations,
            json,
        } => {
            let opts = stress::Options {
                seconds,
                only,
                iterations,
            };
            return stress(&opts, json);
        }
        Command::Demo {
            json,
            vm,
            iommu,
            viommu,
        } => (sva::run(iommu, viommu, vm)?, json),
        Command::Foundation { json } => (foundation::run()?, json),
    };
    if json {
        emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report.to_json())?
        ));
    } else {
        emit(&report.to_text());
    }
    if !report.all_passed() {
        std::process::exit(1);
    }
    Ok(())
}
