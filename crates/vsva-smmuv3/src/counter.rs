//! A hit counter that a hit does not share: one cache line per thread (up to 64 threads at a
//! time; others share one more line with atomic adds), summed when read.
//!
//! A thread claims a stripe on its first count and gives it back when it exits; while it
//! holds it, it is the stripe's only writer, so it adds with a plain load and store (no
//! locked instruction). The claim (Acquire) follows the previous owner's release (Release),
//! so no count is lost across owners.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

const STRIPES: usize = 64;
/// The stripe of threads that found none free.
const SHARED: u8 = STRIPES as u8;
const UNCLAIMED: u8 = u8::MAX;

/// Stripes held by live threads, one bit each.
static CLAIMED: AtomicU64 = AtomicU64::new(0);

/// Gives the thread's stripe back when the thread exits.
struct Claim;

impl Drop for Claim {
    fn drop(&mut self) {
        let i = STRIPE.with(|s| s.replace(SHARED));
        if (i as usize) < STRIPES {
            CLAIMED.fetch_and(!(1u64 << i), Ordering::Release);
        }
    }
}

thread_local! {
    /// The thread's stripe (no destructor: readable to the end of the thread, and a bare
    /// thread-local load on the hit path).
    static STRIPE: Cell<u8> = const { Cell::new(UNCLAIMED) };
    /// Its release at thread exit, set up with the claim.
    static CLAIM: Claim = const { Claim };
}

fn claim() -> u8 {
    let mut cur = CLAIMED.load(Ordering::Relaxed);
    loop {
        if cur == u64::MAX {
            return SHARED;
        }
        let i = (!cur).trailing_zeros();
        match CLAIMED.compare_exchange_weak(cur, cur | 1 << i, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => return i as u8,
            Err(c) => cur = c,
        }
    }
}

/// This thread's stripe.
#[inline]
fn stripe() -> u8 {
    match STRIPE.with(Cell::get) {
        UNCLAIMED => first_stripe(),
        i => i,
    }
}

#[cold]
fn first_stripe() -> u8 {
    let i = claim();
    STRIPE.with(|s| s.set(i));
    // Registers the release; fails only while the thread's destructors run (then the
    // stripe is given back at once and the shared one used).
    if CLAIM.try_with(|_| ()).is_err() {
        STRIPE.with(|s| s.set(SHARED));
        if (i as usize) < STRIPES {
            CLAIMED.fetch_and(!(1u64 << i), Ordering::Release);
        }
        return SHARED;
    }
    i
}

#[repr(align(64))]
#[derive(Default)]
struct Line(AtomicU64);

/// The counter (inline: a count is one dependent load fewer than through a pointer).
pub(crate) struct Striped {
    lines: [Line; STRIPES + 1],
}

impl Default for Striped {
    fn default() -> Self {
        Striped {
            lines: std::array::from_fn(|_| Line::default()),
        }
    }
}

impl Striped {
    /// Adds one.
    #[inline]
    pub fn incr(&self) {
        let i = stripe();
        let c = &self.lines[i as usize].0;
        if i == SHARED {
            c.fetch_add(1, Ordering::Relaxed);
        } else {
            c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
    }

    /// Claims this thread's stripe now (so that a later first count does no setup).
    pub fn touch(&self) {
        stripe();
    }

    /// The total.
    pub fn get(&self) -> u64 {
        self.lines.iter().map(|l| l.0.load(Ordering::Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads_add_up() {
        let c = Striped::default();
        std::thread::scope(|s| {
            for _ in 0..100 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        c.incr();
                    }
                });
            }
        });
        assert_eq!(c.get(), 100_000);
    }
}
