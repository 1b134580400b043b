//! The DMA thread: one demo device running commands on the scenario's buffer, one after the
//! other, for as long as the scenario runs — while the main thread changes the memory under
//! it. Each command is a quarter of a page: a pattern write or a compare of the piece with
//! itself (two reads), in turn, walking the buffer's pages. A command that fails (the page
//! is gone, the PASID unbound) is counted and the next one starts.
//!
//! The thread also runs the machine's interrupt service when its device waits for a page —
//! unless the harness has closed the *gate*: then the device stays waiting (nothing is
//! faulted in, so nothing is allocated) until the gate opens again.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use vsva_demo::Endpoint;
use vsva_demo::Progress;
use vsva_demo::regs::Op;
use vsva_demo::{Command, submit_to};
use vsva_mem::Pasid;

/// Bytes per command: a quarter page, so that a command costs little more than its
/// translation.
pub const CMD_LEN: u64 = 1024;

/// No target: the thread idles.
const NO_PASID: u32 = u32::MAX;

/// What the main thread and the DMA thread share: the target, the gate, the counters.
#[derive(Debug)]
pub struct Dma {
    pasid: AtomicU32,
    va: AtomicU64,
    pages: AtomicU64,
    gate: AtomicBool,
    /// The thread is inside the machine's interrupt service.
    servicing: AtomicBool,
    parked: AtomicBool,
    stop: AtomicBool,
    /// The thread has left [`run`](Self::run) (stopped, or panicked).
    exited: AtomicBool,
    started: AtomicU64,
    finished: AtomicU64,
    done: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Commands started.
    pub started: u64,
    /// Commands ended (done or failed).
    pub finished: u64,
    /// Commands that completed.
    pub done: u64,
}

impl Default for Dma {
    fn default() -> Self {
        Dma {
            pasid: AtomicU32::new(NO_PASID),
            va: AtomicU64::new(0),
            pages: AtomicU64::new(1),
            gate: AtomicBool::new(true),
            servicing: AtomicBool::new(false),
            parked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            exited: AtomicBool::new(false),
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            done: AtomicU64::new(0),
        }
    }
}

/// How long the harness waits for the DMA thread before it calls the scenario stuck.
const PATIENCE: Duration = Duration::from_secs(20);

impl Dma {
    /// Points the device at `pages` pages from `va` under `pasid`.
    pub fn target(&self, pasid: Pasid, va: u64, pages: u64) {
        self.va.store(va, Ordering::Release);
        self.pages.store(pages.max(1), Ordering::Release);
        self.pasid.store(pasid.raw(), Ordering::Release);
    }

    /// Closes the gate: the device's page requests wait. Returns once the thread is out of
    /// the interrupt service (a fault it was resolving has allocated what it needed).
    pub fn close_gate(&self) {
        self.gate.store(false, Ordering::SeqCst);
        // With the thread's `servicing` store then `gate` load (both SeqCst), one of the
        // two sides sees the other's store: the service never starts behind a closed gate.
        while self.servicing.load(Ordering::SeqCst) {
            std::hint::spin_loop();
        }
    }

    /// Opens the gate.
    pub fn open_gate(&self) {
        self.gate.store(true, Ordering::SeqCst);
    }

    /// Asks the thread to stop (it ends its command first when it can).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.open_gate();
    }

    /// The counters now.
    pub fn counts(&self) -> Counts {
        Counts {
            started: self.started.load(Ordering::Acquire),
            finished: self.finished.load(Ordering::Acquire),
            done: self.done.load(Ordering::Acquire),
        }
    }

    /// Is the device waiting for a page behind the closed gate?
    pub fn parked(&self) -> bool {
        self.parked.load(Ordering::Acquire)
    }

    /// Waits until `ready` holds, spinning then yielding.
    ///
    /// # Errors
    /// When it does not within [`PATIENCE`] (`what` says what was awaited).
    pub fn wait(&self, what: &str, mut ready: impl FnMut(&Dma) -> bool) -> Result<()> {
        let mut spins = 0u32;
        let mut since: Option<Instant> = None;
        while !ready(self) {
            if self.exited.load(Ordering::Acquire) {
                bail!("the DMA thread ended: {what} will not happen");
            }
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
                continue;
            }
            std::thread::yield_now();
            let t = *since.get_or_insert_with(Instant::now);
            if spins % 1024 == 0 && t.elapsed() > PATIENCE {
                bail!(
                    "the DMA thread did not get there in {PATIENCE:?}: {what} ({:?})",
                    self.counts()
                );
            }
        }
        Ok(())
    }

    /// The DMA thread's body: runs commands on `dev` until [`stop`](Self::stop), calling
    /// `service` (the machine's interrupt handlers) while the device waits and the gate is
    /// open.
    pub fn run(&self, dev: &dyn Endpoint, service: &(dyn Fn() -> usize + Sync)) {
        /// Tells the harness the thread is gone, however it leaves (a panic of the model).
        struct Exit<'a>(&'a AtomicBool);
        impl Drop for Exit<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let _exit = Exit(&self.exited);
        let mut i = 0u64;
        while !self.stop.load(Ordering::Acquire) {
            let pasid = self.pasid.load(Ordering::Acquire);
            let Ok(pasid) = Pasid::new(pasid) else {
                std::thread::yield_now();
                continue;
            };
            let (va, pages) = (
                self.va.load(Ordering::Acquire),
                self.pages.load(Ordering::Acquire),
            );
            // pages in turn, and a different quarter of the page each round
            let (page, round) = (i / 2 % pages, i / 2 / pages);
            let at = va + page * 4096 + round % 4 * CMD_LEN;
            let cmd = if i % 2 == 0 {
                Command::new(Op::WritePattern, 0, at, CMD_LEN, i)
            } else {
                // reads the piece twice (source and destination)
                Command::new(Op::Compare, at, at, CMD_LEN, 0)
            };
            self.started.fetch_add(1, Ordering::AcqRel);
            submit_to(dev, pasid, &cmd);
            let ended = self.finish(dev, service);
            if ended == Some(true) {
                self.done.fetch_add(1, Ordering::AcqRel);
            }
            self.finished.fetch_add(1, Ordering::AcqRel);
            if ended.is_none() {
                break;
            }
            i += 1;
        }
    }

    /// Runs the submitted command to its end: `Some(true)` done, `Some(false)` failed (or
    /// refused at the doorbell), `None` abandoned waiting for a page at stop.
    fn finish(&self, dev: &dyn Endpoint, service: &(dyn Fn() -> usize + Sync)) -> Option<bool> {
        loop {
            match dev.run() {
                Progress::Done => return Some(true),
                Progress::Failed(_) | Progress::Idle => return Some(false),
                Progress::Waiting => {}
            }
            if !self.gate.load(Ordering::SeqCst) {
                self.parked.store(true, Ordering::Release);
                while !self.gate.load(Ordering::Acquire) {
                    std::thread::yield_now();
                }
                self.parked.store(false, Ordering::Release);
                continue;
            }
            self.servicing.store(true, Ordering::SeqCst);
            if !self.gate.load(Ordering::SeqCst) {
                self.servicing.store(false, Ordering::SeqCst);
                continue;
            }
            let work = service();
            self.servicing.store(false, Ordering::SeqCst);
            if work == 0 {
                if self.stop.load(Ordering::Acquire) {
                    return None;
                }
                std::thread::yield_now();
            }
        }
    }
}
