//! `vsva stress`: SVA's central promise under threads — once an operation that takes memory
//! away from a device has returned, no device access reaches that memory.
//!
//! Each scenario builds one machine and keeps it for the whole run. A DMA thread
//! ([`dma`]) makes the scenario's device work on a small buffer without pause; the main
//! thread repeats the scenario's operation (munmap, mprotect, an unbind, a guest clearing
//! TE, ...) on that buffer. Around every operation the harness ([`window`]):
//!
//! 1. notes the host frames behind the buffer before the operation (for munmap and exit,
//!    also the page-table frames that map it);
//! 2. the moment the operation returns, arms the memory's watch on them ([`watch`]): from
//!    now on any read or write of them through host memory — a device DMA, an IOMMU walk
//!    of a freed table, anything but the harness itself — is a stale access (only writes,
//!    where the frame stays readable: mprotect, fork);
//! 3. for frames the operation freed, checks they are free, and where the scenario's device
//!    faults pages back in meanwhile (page-out, DONTNEED) takes them out of the allocator
//!    itself (a quarantine, as KASAN's), so that nothing legitimately reuses them;
//! 4. poisons them (fork instead snapshots the child's view), lets the DMA thread run
//!    [`WINDOW_COMMANDS`] more commands, disarms the watch, and checks the poison (or the
//!    child's view) is intact — a second oracle, for a write that passed the watch's check
//!    just before it was armed;
//! 5. puts back what the operation took (maps again, binds again, sets TE again).
//!
//! An operation *raced* when a device command was running while it ran (one had started
//! before the operation returned and had not ended before it began). The tests check the
//! checker: an operation that takes nothing away must be caught.

mod dma;
mod guest;
mod host;
mod iommufd;
mod watch;
mod window;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, ensure};
use serde::Serialize;
use vsva_demo::Endpoint;
use vsva_host::{Smmuv3Kind, VtdKind};
use vsva_mem::{FrameAllocator, Va};
use vsva_mm::Process;
use vsva_pgtable::Leaf;

use dma::Dma;
use watch::{Accesses, WatchedMemory};

/// Pages in every scenario's buffer.
pub const PAGES: u64 = 2;
/// Commands the DMA thread runs after the poison, before the check: each page written and
/// read once.
pub const WINDOW_COMMANDS: u64 = 2 * PAGES;
/// An iteration that takes longer than this means a deadlock: the process exits.
const WATCHDOG: Duration = Duration::from_secs(120);

/// What the check compares after the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Content {
    /// The frames are poisoned after the operation; the poison must be intact.
    Poison,
    /// The frames' contents are snapshotted after the operation and must not change (fork:
    /// the child's view is what it was when fork returned).
    Keep,
}

/// What the operation does to the buffer's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Release {
    /// They stay allocated (to the process, or to a guest).
    Keep,
    /// They are freed, and nothing allocates while they are watched.
    Free,
    /// They are freed, and the device faults pages back in while they are watched: the
    /// harness holds them (gate closed until it does).
    Quarantine,
}

/// How a scenario is judged.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    pub accesses: Accesses,
    pub content: Content,
    pub release: Release,
}

impl Rules {
    /// The frames stay their owner's, and nobody but the device could reach them: every
    /// access is stale, and the poison must stay.
    pub const KEPT_FROM_THE_DEVICE: Rules = Rules {
        accesses: Accesses::All,
        content: Content::Poison,
        release: Release::Keep,
    };
}

/// The host frames an operation takes away.
#[derive(Debug, Default)]
pub(crate) struct Frames {
    /// The buffer's data frames.
    pub data: Vec<u64>,
    /// Page-table frames: watched only if the operation freed them.
    pub tables: Vec<u64>,
}

/// The present leaf entries of the [`PAGES`] pages from `buf` in `process`'s page table;
/// `what` names the buffer in the error.
pub(crate) fn buffer_leaves(process: &Process, buf: Va, what: &str) -> Result<Vec<Leaf>> {
    (0..PAGES)
        .map(|i| {
            process
                .leaf(Va::new(buf.raw() + i * 4096))
                .filter(|l| l.present)
                .with_context(|| format!("page {i} of {what} is not present"))
        })
        .collect()
}

/// One scenario: a machine, a device, a buffer, an operation.
pub(crate) trait Scenario {
    /// The device the DMA thread drives.
    fn device(&self) -> Arc<dyn Endpoint>;
    /// The machine's interrupt service, run by the DMA thread while its device waits.
    fn service(&self) -> Arc<dyn Fn() -> usize + Send + Sync>;
    /// Host memory, and the allocator the operation's frames return to.
    fn memory(&self) -> (&WatchedMemory, &FrameAllocator);
    /// How the operation is judged.
    fn rules(&self) -> Rules;
    /// Points the DMA thread at the buffer (before each operation).
    fn prepare(&mut self, dma: &Dma) -> Result<()>;
    /// The host frames the operation will take away, read before it.
    fn frames(&self) -> Result<Frames>;
    /// The operation.
    fn operate(&mut self) -> Result<()>;
    /// Gives back what the operation took, ready for the next one.
    fn restore(&mut self) -> Result<()>;
}

type Build = fn() -> Result<Box<dyn Scenario>>;

/// Every scenario, in the order they run.
const SCENARIOS: &[(&str, Build)] = &[
    ("munmap", || host::build::<VtdKind>(host::Kind::Munmap)),
    ("mprotect", || host::build::<VtdKind>(host::Kind::Mprotect)),
    ("pageout", || host::build::<VtdKind>(host::Kind::PageOut)),
    ("dontneed", || host::build::<VtdKind>(host::Kind::DontNeed)),
    ("fork", || host::build::<VtdKind>(host::Kind::Fork)),
    ("unbind", || host::build::<VtdKind>(host::Kind::Unbind)),
    ("exit", || host::build::<VtdKind>(host::Kind::Exit)),
    ("ioas_unmap", || {
        iommufd::build::<VtdKind>(iommufd::Kind::IoasUnmap)
    }),
    ("detach", || {
        iommufd::build::<VtdKind>(iommufd::Kind::Detach)
    }),
    ("guest_te_clear", || {
        guest::build::<VtdKind>(guest::Kind::TranslationOff)
    }),
    ("guest_pasid_inval", || {
        guest::build::<VtdKind>(guest::Kind::PasidInval)
    }),
    ("guest_munmap", || {
        guest::build::<VtdKind>(guest::Kind::Munmap)
    }),
    // the host scenarios again on an Arm64 host behind an SMMUv3
    ("smmuv3_munmap", || {
        host::build::<Smmuv3Kind>(host::Kind::Munmap)
    }),
    ("smmuv3_mprotect", || {
        host::build::<Smmuv3Kind>(host::Kind::Mprotect)
    }),
    ("smmuv3_pageout", || {
        host::build::<Smmuv3Kind>(host::Kind::PageOut)
    }),
    ("smmuv3_dontneed", || {
        host::build::<Smmuv3Kind>(host::Kind::DontNeed)
    }),
    ("smmuv3_fork", || {
        host::build::<Smmuv3Kind>(host::Kind::Fork)
    }),
    ("smmuv3_unbind", || {
        host::build::<Smmuv3Kind>(host::Kind::Unbind)
    }),
    ("smmuv3_exit", || {
        host::build::<Smmuv3Kind>(host::Kind::Exit)
    }),
    ("smmuv3_ioas_unmap", || {
        iommufd::build::<Smmuv3Kind>(iommufd::Kind::IoasUnmap)
    }),
    ("smmuv3_detach", || {
        iommufd::build::<Smmuv3Kind>(iommufd::Kind::Detach)
    }),
    // the guest scenarios through a virtual SMMUv3 on the SMMUv3 host's nesting
    ("smmuv3_guest_smmuen_clear", || {
        guest::build::<Smmuv3Kind>(guest::Kind::TranslationOff)
    }),
    ("smmuv3_guest_unbind", || {
        guest::build::<Smmuv3Kind>(guest::Kind::PasidInval)
    }),
    ("smmuv3_guest_munmap", || {
        guest::build::<Smmuv3Kind>(guest::Kind::Munmap)
    }),
];

/// The names of every scenario.
pub fn names() -> Vec<&'static str> {
    SCENARIOS.iter().map(|(n, _)| *n).collect()
}

/// How long and what to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seconds in all, split evenly over the scenarios run.
    pub seconds: f64,
    /// Only these scenarios: names separated by commas, run in the order given.
    pub only: Option<String>,
    /// At most this many operations per scenario.
    pub iterations: Option<u64>,
}

/// One scenario's outcome.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScenarioReport {
    pub name: &'static str,
    /// Operations done (each raced by the DMA thread, watched and checked).
    pub operations: u64,
    /// Device commands the DMA thread ran (done or failed).
    pub dma_commands: u64,
    /// Stale accesses: reads and writes of watched frames, and poisoned frames changed
    /// without a write seen.
    pub stale_accesses: u64,
    /// Device commands that completed.
    pub dma_completed: u64,
    /// Operations during which a device command was running.
    pub raced: u64,
    /// Stale reads seen.
    pub stale_reads: u64,
    /// Stale writes seen.
    pub stale_writes: u64,
    /// Of the stale reads and writes, those of freed page-table frames (table walks).
    pub stale_table_accesses: u64,
    /// Frames whose poison (or kept content) changed.
    pub frames_changed: u64,
    /// Frames watched in all.
    pub frames_watched: u64,
    /// Windows in which the quarantine missed a freed frame (the device then waited for its
    /// page until the check, instead of running on).
    pub gated_windows: u64,
    /// The first stale accesses, described.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub first_stale: Vec<String>,
    /// Seconds the operations took, setup excluded.
    pub seconds: f64,
    /// Why the scenario could not run, or stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ScenarioReport {
    fn failed(&self) -> bool {
        self.stale_accesses > 0 || self.error.is_some()
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenarios: Vec<ScenarioReport>,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
}

impl Report {
    /// No stale access anywhere, and every scenario ran.
    pub fn passed(&self) -> bool {
        !self.scenarios.iter().any(ScenarioReport::failed)
    }

    /// One line per scenario, then a total.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<18} {:>10} {:>9} {:>12} {:>12} {:>6} {:>6}  result",
            "scenario", "operations", "ops/s", "dma_commands", "dma_done", "raced", "stale"
        );
        for r in &self.scenarios {
            let rate = if r.seconds > 0.0 {
                r.operations as f64 / r.seconds
            } else {
                0.0
            };
            let raced = if r.operations > 0 {
                format!("{:.0}%", 100.0 * r.raced as f64 / r.operations as f64)
            } else {
                "-".into()
            };
            let result = match (&r.error, r.stale_accesses) {
                (Some(e), _) => format!("COULD NOT RUN: {e}"),
                (None, 0) => "ok".into(),
                (None, _) => format!(
                    "STALE: {} reads, {} writes ({} of page-table frames), {} frames changed",
                    r.stale_reads, r.stale_writes, r.stale_table_accesses, r.frames_changed
                ),
            };
            let _ = writeln!(
                s,
                "{:<18} {:>10} {:>9.0} {:>12} {:>12} {:>6} {:>6}  {}",
                r.name,
                r.operations,
                rate,
                r.dma_commands,
                r.dma_completed,
                raced,
                r.stale_accesses,
                result
            );
            for d in &r.first_stale {
                let _ = writeln!(s, "    {d}");
            }
        }
        let ops: u64 = self.scenarios.iter().map(|r| r.operations).sum();
        let stale: u64 = self.scenarios.iter().map(|r| r.stale_accesses).sum();
        let _ = writeln!(
            s,
            "{ops} operations, {stale} stale accesses in {:.1} s: {}",
            self.seconds,
            if self.passed() { "PASSED" } else { "FAILED" }
        );
        s
    }
}

/// Runs the scenarios `opts` asks for.
///
/// # Errors
/// An unknown scenario name.
pub fn run(opts: &Options) -> Result<Report> {
    let chosen: Vec<&(&str, Build)> = match &opts.only {
        Some(list) => list
            .split(',')
            .map(|name| {
                SCENARIOS.iter().find(|(n, _)| *n == name).ok_or_else(|| {
                    anyhow!("unknown scenario {name:?}; known: {}", names().join(", "))
                })
            })
            .collect::<Result<_>>()?,
        None => SCENARIOS.iter().collect(),
    };
    ensure!(opts.seconds >= 0.0, "--seconds must not be negative");
    let budget = Duration::from_secs_f64(opts.seconds / chosen.len() as f64);
    let t = Instant::now();
    let watchdog = Watchdog::start();
    let scenarios = chosen
        .into_iter()
        .map(|&(name, build)| run_one(name, build, budget, opts.iterations, &watchdog))
        .collect();
    Ok(Report {
        scenarios,
        seconds: t.elapsed().as_secs_f64(),
    })
}

/// Exits the process when no iteration ends for [`WATCHDOG`]: a deadlock between the
/// operation and the DMA would otherwise hang the run.
struct Watchdog {
    beat: Arc<AtomicU64>,
    start: Instant,
    name: Arc<std::sync::Mutex<&'static str>>,
    stopped: Arc<AtomicBool>,
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}

impl Watchdog {
    fn start() -> Watchdog {
        let w = Watchdog {
            beat: Arc::new(AtomicU64::new(0)),
            start: Instant::now(),
            name: Arc::new(std::sync::Mutex::new("")),
            stopped: Arc::new(AtomicBool::new(false)),
        };
        let (beat, start, name) = (w.beat.clone(), w.start, w.name.clone());
        let stopped = w.stopped.clone();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(1));
                let last = Duration::from_millis(beat.load(Ordering::Relaxed));
                if start.elapsed().saturating_sub(last) > WATCHDOG {
                    let name = *name.lock().unwrap_or_else(|e| e.into_inner());
                    eprintln!(
                        "vsva stress: scenario {name} made no progress for {WATCHDOG:?} \
                         (a deadlock between the operation and the DMA?)"
                    );
                    std::process::exit(2);
                }
            }
        });
        w
    }

    fn beat(&self) {
        self.beat
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn entering(&self, name: &'static str) {
        *self.name.lock().unwrap_or_else(|e| e.into_inner()) = name;
        self.beat();
    }
}

/// Stops the DMA thread when dropped.
struct StopOnDrop<'a>(&'a Dma);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

fn run_one(
    name: &'static str,
    build: Build,
    budget: Duration,
    max_ops: Option<u64>,
    watchdog: &Watchdog,
) -> ScenarioReport {
    let mut r = ScenarioReport {
        name,
        ..Default::default()
    };
    watchdog.entering(name);
    let mut scenario = match build() {
        Ok(s) => s,
        Err(e) => {
            r.error = Some(format!("setup: {e:#}"));
            return r;
        }
    };
    watchdog.beat();
    let dev = scenario.device();
    let service = scenario.service();
    let dma = Dma::default();
    let t = Instant::now();
    // A panic of the model on either thread ends the scenario, not the run.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        std::thread::scope(|s| {
            // stops the DMA thread however this closure ends, so that the scope can join it
            let _stop = StopOnDrop(&dma);
            let thread = std::thread::Builder::new()
                .name("dma".into())
                .spawn_scoped(s, || dma.run(dev.as_ref(), service.as_ref()))
                .map_err(|e| anyhow!("spawning the DMA thread: {e}"))?;
            let mut rng = 0x9e37_79b9_7f4a_7c15u64;
            let mut outcome = Ok(());
            while t.elapsed() < budget && max_ops.is_none_or(|m| r.operations < m) {
                if let Err(e) = window::iteration(scenario.as_mut(), &dma, &mut r, &mut rng) {
                    outcome = Err(e);
                    break;
                }
                watchdog.beat();
            }
            dma.stop();
            let joined = thread.join();
            outcome.and(joined.map_err(|_| anyhow!("the DMA thread panicked")))
        })
    }))
    .unwrap_or_else(|_| Err(anyhow!("the operation panicked")));
    r.seconds = t.elapsed().as_secs_f64();
    let c = dma.counts();
    r.dma_commands = c.finished;
    r.dma_completed = c.done;
    if let Err(e) = result {
        r.error = Some(format!("{e:#}"));
    }
    drop(scenario);
    watchdog.beat();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scenario whose operation takes nothing away: the device goes on reaching the
    /// frames, so the harness must count stale accesses — the check of the checker.
    struct Nothing(Box<dyn Scenario>);

    impl Scenario for Nothing {
        fn device(&self) -> Arc<dyn Endpoint> {
            self.0.device()
        }
        fn service(&self) -> Arc<dyn Fn() -> usize + Send + Sync> {
            self.0.service()
        }
        fn memory(&self) -> (&WatchedMemory, &FrameAllocator) {
            self.0.memory()
        }
        fn rules(&self) -> Rules {
            self.0.rules()
        }
        fn prepare(&mut self, dma: &Dma) -> Result<()> {
            self.0.prepare(dma)
        }
        fn frames(&self) -> Result<Frames> {
            self.0.frames()
        }
        fn operate(&mut self) -> Result<()> {
            Ok(())
        }
        fn restore(&mut self) -> Result<()> {
            Ok(())
        }
    }

    /// `build`'s scenario with its operation made a no-op, run for 20 operations.
    fn nothing(build: Build) -> ScenarioReport {
        let watchdog = Watchdog::start();
        let r = run_one(
            "nothing",
            build,
            Duration::from_secs(120),
            Some(20),
            &watchdog,
        );
        assert!(r.error.is_none(), "{r:?}");
        assert_eq!(r.operations, 20);
        r
    }

    #[test]
    fn an_operation_that_takes_nothing_away_is_caught_reading_and_writing() {
        // watched like an unbind: every access is stale, and the poison is overwritten
        let r = nothing(|| {
            let s = host::build::<VtdKind>(host::Kind::Unbind)?;
            Ok(Box::new(Nothing(s)))
        });
        assert!(
            r.stale_reads > 0 && r.stale_writes > 0 && r.frames_changed > 0,
            "{r:?}"
        );
        assert!(r.stale_accesses >= r.stale_reads + r.stale_writes);
    }

    #[test]
    fn where_only_writes_are_stale_reads_pass_and_writes_change_the_kept_view() {
        // watched like a fork: reads are allowed, the snapshot must not change
        let r = nothing(|| {
            let s = host::build::<VtdKind>(host::Kind::Fork)?;
            Ok(Box::new(Nothing(s)))
        });
        assert_eq!(r.stale_reads, 0, "{r:?}");
        assert!(r.stale_writes > 0 && r.frames_changed > 0, "{r:?}");
    }

    #[test]
    fn on_smmuv3_too_an_operation_that_takes_nothing_away_is_caught() {
        // the SMMUv3 host's DMA reaches the watched memory: the zero of its scenarios means
        // something
        let r = nothing(|| {
            let s = host::build::<Smmuv3Kind>(host::Kind::Unbind)?;
            Ok(Box::new(Nothing(s)))
        });
        assert!(
            r.stale_reads > 0 && r.stale_writes > 0 && r.frames_changed > 0,
            "{r:?}"
        );
    }
}
