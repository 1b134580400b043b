//! Memory that parks one read until a test lets it go: a deterministic hook for the races
//! every IOMMU model must order (a table walk still reading while an invalidation completes,
//! VT-d 4.1 §6.5.2.9; IHI 0070 §4.7.3 CMD_SYNC). A test arms an address, starts the walk on
//! another thread, waits until the walk is parked on that address, does the racing call,
//! checks what the call did while the walk was parked, then releases it.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::phys::{PhysMem, Result};

/// How long a parked read waits for its release, so that a failed test ends instead of
/// hanging.
const BOUND: Duration = Duration::from_secs(5);

/// What the gate has seen of the armed address.
#[derive(Debug, Default)]
struct GateState {
    /// The address whose next read parks (cleared once a read has parked on it).
    armed: Option<u64>,
    /// Park after the read (the reader holds the value read) instead of before it.
    after: bool,
    /// A read is parked (or was).
    parked: bool,
    /// The test let the parked read go.
    released: bool,
    /// The parked read has read memory and returned to its caller.
    loaded: bool,
}

/// Physical memory over `inner` whose armed address blocks one read — a `load_u64` of it, or
/// a `read` covering it — until [`release`](Self::release). Writes pass straight through.
#[derive(Debug)]
pub struct GatedMemory<M: PhysMem + ?Sized> {
    inner: Arc<M>,
    state: Mutex<GateState>,
    changed: Condvar,
}

impl<M: PhysMem + ?Sized> GatedMemory<M> {
    /// Gated memory over `inner`, nothing armed.
    pub fn new(inner: Arc<M>) -> Self {
        GatedMemory {
            inner,
            state: Mutex::default(),
            changed: Condvar::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next read of `pa` parks before it reads memory.
    pub fn arm(&self, pa: u64) {
        *self.state() = GateState {
            armed: Some(pa),
            ..GateState::default()
        };
    }

    /// The next read of `pa` reads memory, then parks holding the value read.
    pub fn arm_after(&self, pa: u64) {
        *self.state() = GateState {
            armed: Some(pa),
            after: true,
            ..GateState::default()
        };
    }

    /// Waits (at most 5 s) until a read has parked on the armed address; false if none did.
    pub fn wait_parked(&self) -> bool {
        let st = self.state();
        let (st, _) = self
            .changed
            .wait_timeout_while(st, BOUND, |s| !s.parked)
            .unwrap_or_else(|e| e.into_inner());
        st.parked
    }

    /// Lets the parked read go.
    pub fn release(&self) {
        self.state().released = true;
        self.changed.notify_all();
    }

    /// Has the parked read returned to its caller?
    pub fn loaded(&self) -> bool {
        self.state().loaded
    }

    /// Parks if `[pa, pa + len)` covers the armed address, then runs `f` (or, armed with
    /// [`arm_after`](Self::arm_after), runs `f` first and parks with its value).
    fn gate<T>(&self, pa: u64, len: u64, f: impl FnOnce() -> T) -> T {
        let mut st = self.state();
        if !st
            .armed
            .is_some_and(|a| a >= pa && a < pa.saturating_add(len))
        {
            drop(st);
            return f();
        }
        st.armed = None;
        let mut f = Some(f);
        let early = if st.after {
            f.take().map(|f| f())
        } else {
            None
        };
        st.parked = true;
        self.changed.notify_all();
        let (mut st, _) = self
            .changed
            .wait_timeout_while(st, BOUND, |s| !s.released)
            .unwrap_or_else(|e| e.into_inner());
        let v = match (early, f) {
            (Some(v), _) => v,
            (None, Some(f)) => f(),
            (None, None) => unreachable!("the read ran or is still to run"),
        };
        st.loaded = true;
        v
    }
}

impl<M: PhysMem + ?Sized> PhysMem for GatedMemory<M> {
    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn load_u64(&self, pa: u64) -> Result<u64> {
        self.gate(pa, 8, || self.inner.load_u64(pa))
    }

    fn store_u64(&self, pa: u64, val: u64) -> Result<()> {
        self.inner.store_u64(pa, val)
    }

    fn compare_exchange_u64(
        &self,
        pa: u64,
        current: u64,
        new: u64,
    ) -> Result<std::result::Result<u64, u64>> {
        self.inner.compare_exchange_u64(pa, current, new)
    }

    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<()> {
        let len = buf.len() as u64;
        self.gate(pa, len, || self.inner.read(pa, buf))
    }

    fn write(&self, pa: u64, buf: &[u8]) -> Result<()> {
        self.inner.write(pa, buf)
    }

    fn zero(&self, pa: u64, len: u64) -> Result<()> {
        self.inner.zero(pa, len)
    }

    fn advise_huge(&self, pa: u64, len: u64) {
        self.inner.advise_huge(pa, len);
    }
}

#[cfg(test)]
mod tests {
    use std::thread;

    use super::*;
    use crate::PhysMemory;

    #[test]
    fn an_armed_read_parks_until_released_and_others_pass() {
        let mem = Arc::new(PhysMemory::new(1 << 20).unwrap());
        mem.store_u64(0x1000, 7).unwrap();
        let gate = Arc::new(GatedMemory::new(mem));
        gate.arm(0x1000);
        // another address is not gated
        assert_eq!(gate.load_u64(0x2000).unwrap(), 0);
        let reader = {
            let gate = gate.clone();
            thread::spawn(move || gate.load_u64(0x1000).unwrap())
        };
        assert!(gate.wait_parked());
        assert!(!gate.loaded());
        // a write while the read is parked is what the read sees (it parks before reading)
        gate.store_u64(0x1000, 9).unwrap();
        gate.release();
        assert_eq!(reader.join().unwrap(), 9);
        assert!(gate.loaded());
    }

    #[test]
    fn armed_after_the_read_holds_the_old_value() {
        let mem = Arc::new(PhysMemory::new(1 << 20).unwrap());
        mem.store_u64(0x1008, 1).unwrap();
        let gate = Arc::new(GatedMemory::new(mem));
        gate.arm_after(0x1008);
        let reader = {
            let gate = gate.clone();
            thread::spawn(move || {
                let mut b = [0u8; 16];
                gate.read(0x1000, &mut b).unwrap();
                u64::from_le_bytes(b[8..].try_into().unwrap())
            })
        };
        assert!(gate.wait_parked());
        gate.store_u64(0x1008, 2).unwrap();
        gate.release();
        assert_eq!(reader.join().unwrap(), 1);
    }
}
