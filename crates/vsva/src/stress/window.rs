//! One operation, raced, watched and checked (steps 1-5 of the [module doc](super)).

use anyhow::{Result, anyhow, ensure};
use vsva_mem::{FrameAllocator, PageSize, PhysMem};

use super::dma::Dma;
use super::watch::{self, Held};
use super::{Content, Release, Scenario, ScenarioReport, WINDOW_COMMANDS};

/// Allocations the quarantine makes at most, looking for the freed frames.
const QUARANTINE_TRIES: usize = 256;
/// Stale accesses a scenario's report describes, at most.
const DESCRIBED: usize = 8;

/// The poison of `frame` in operation `op`: words that depend on the frame, the operation
/// and their offset, so that no write of the device (a pattern of another seed and offset)
/// or of another window can leave it intact by chance. Every word has bit 0 clear: read as
/// a page-table entry (a freed table that a walk still reaches) it is not present, so such
/// a walk faults instead of following the poison elsewhere.
pub(crate) fn poison(frame: u64, op: u64) -> Vec<u8> {
    (0..watch::FRAME / 8)
        .flat_map(|w| {
            ((0xdead_0000_0000_0000 ^ (op << 20) ^ frame ^ (w << 3)).rotate_left(7) & !1)
                .to_le_bytes()
        })
        .collect()
}

/// A few hundred nanoseconds to a few microseconds, so that operations meet the device at
/// every point of its commands.
fn jitter(rng: &mut u64) {
    *rng = rng
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    for _ in 0..(*rng >> 58) {
        std::hint::spin_loop();
    }
}

/// Takes the 4 KiB frames of `want` out of `frames` by allocating until each was handed
/// out (the others are given back at once). Returns (held, missed).
fn quarantine(frames: &FrameAllocator, want: &[u64]) -> (Vec<u64>, Vec<u64>) {
    let mut missed: Vec<u64> = want.to_vec();
    let mut held = Vec::new();
    let mut others = Vec::new();
    for _ in 0..QUARANTINE_TRIES {
        if missed.is_empty() {
            break;
        }
        let Ok(pa) = frames.alloc(PageSize::Size4K) else {
            break;
        };
        match missed.iter().position(|&f| f == pa) {
            Some(i) => held.push(missed.swap_remove(i)),
            None => others.push(pa),
        }
    }
    for pa in others {
        let _ = frames.free(pa);
    }
    (held, missed)
}

/// One operation, raced, watched and checked.
pub(crate) fn iteration(
    s: &mut dyn Scenario,
    dma: &Dma,
    r: &mut ScenarioReport,
    rng: &mut u64,
) -> Result<()> {
    s.prepare(dma)?;
    let done = dma.counts().done;
    dma.wait("a command completing on the prepared buffer", |d| {
        d.counts().done > done
    })?;
    jitter(rng);
    let frames = s.frames()?;
    let rules = s.rules();
    if rules.release == Release::Quarantine {
        dma.close_gate();
    }
    let before = dma.counts();
    let operated = s.operate();
    let after = dma.counts();
    let (mem, alloc) = s.memory();
    if let Err(e) = operated {
        dma.open_gate();
        return Err(e.context("the operation failed"));
    }
    // The operation has returned: watch at once what it took.
    let released = |f: &u64| rules.release == Release::Keep || alloc.frame_size(*f).is_none();
    let data: Vec<u64> = frames.data.iter().copied().filter(released).collect();
    if data.len() != frames.data.len() {
        dma.open_gate();
        return Err(anyhow!(
            "the operation kept {} of the buffer's {} frames",
            frames.data.len() - data.len(),
            frames.data.len()
        ));
    }
    mem.arm(&data, rules.accesses);
    let tables: Vec<u64> = frames
        .tables
        .iter()
        .copied()
        .filter(|f| alloc.frame_size(*f).is_none())
        .collect();
    mem.watch_more(&tables, Held::Table);
    r.operations += 1;
    if after.started > before.finished {
        r.raced += 1;
    }
    let watched: Vec<u64> = data.iter().chain(&tables).copied().collect();
    r.frames_watched += watched.len() as u64;
    let (held, missed) = if rules.release == Release::Quarantine {
        // the tables too: a fault in the range would take an emptied table's frame back
        quarantine(alloc, &watched)
    } else {
        (Vec::new(), Vec::new())
    };
    let raw = mem.raw();
    let mut expect = Vec::with_capacity(watched.len());
    for &f in &watched {
        let bytes = match rules.content {
            Content::Poison => {
                let p = poison(f, r.operations);
                raw.write(f, &p)?;
                p
            }
            Content::Keep => {
                let mut b = vec![0u8; watch::FRAME as usize];
                raw.read(f, &mut b)?;
                b
            }
        };
        expect.push(bytes);
    }
    let gated = !missed.is_empty();
    if gated {
        r.gated_windows += 1;
    } else {
        dma.open_gate();
    }
    let from = dma.counts().started;
    let window = dma.wait("the commands after the operation", |d| {
        d.counts().finished >= from + WINDOW_COMMANDS || (gated && d.parked())
    });
    let seen = mem.disarm();
    dma.open_gate();
    window?;
    let mut got = vec![0u8; watch::FRAME as usize];
    let mut changed = 0;
    for (&f, want) in watched.iter().zip(&expect) {
        raw.read(f, &mut got)?;
        if got != *want {
            changed += 1;
        }
    }
    // Nothing may have taken a released frame meanwhile, or the accesses seen could be its
    // new owner's.
    let reused: Vec<u64> = watched
        .iter()
        .copied()
        .filter(|f| rules.release != Release::Keep && !held.contains(f))
        .filter(|f| alloc.frame_size(*f).is_some())
        .collect();
    for pa in held {
        alloc
            .free(pa)
            .map_err(|e| anyhow!("giving back a quarantined frame: {e}"))?;
    }
    ensure!(
        reused.is_empty(),
        "released frames {reused:x?} were allocated again while watched"
    );
    if r.first_stale.len() < DESCRIBED {
        for d in &seen.first {
            r.first_stale
                .push(format!("operation {}: {d}", r.operations));
        }
        if changed > 0 && seen.writes == 0 {
            r.first_stale.push(format!(
                "operation {}: {changed} frames changed without a write seen",
                r.operations
            ));
        }
    }
    r.stale_table_accesses += seen.table_accesses;
    r.stale_reads += seen.reads;
    r.stale_writes += seen.writes;
    r.frames_changed += changed;
    r.stale_accesses += seen.reads + seen.writes.max(changed);
    s.restore()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_poison_differs_per_frame_and_operation_and_from_the_device_pattern() {
        assert_ne!(poison(0x1000, 1), poison(0x2000, 1));
        assert_ne!(poison(0x1000, 1), poison(0x1000, 2));
        let mut pattern = vec![0u8; 4096];
        vsva_demo::regs::fill_pattern(1, 0, &mut pattern);
        assert_ne!(poison(0x1000, 1), pattern);
        assert!(
            poison(0x1000, 1)
                .chunks(8)
                .all(|w| w[0] & 1 == 0 && w.iter().any(|&b| b != 0)),
            "not-present, non-zero entries"
        );
    }
}
