//! Helpers shared by the unit tests.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use vsva_mem::phys::Result;
use vsva_mem::{FrameAllocator, PhysMem, PhysMemory};

/// A frame allocator over `size` bytes of fresh memory.
pub fn frames(size: u64) -> Arc<FrameAllocator> {
    let mem: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(size).unwrap());
    Arc::new(FrameAllocator::new(mem, 0, size))
}

/// A change another agent makes to an entry: old value -> new value.
pub type Write = Box<dyn FnOnce(u64) -> u64 + Send>;

/// Memory in which another agent rewrites the entry at `slot` just before each of the next
/// compare-and-swaps on it, as scripted: the race between a walk's reads and its A/D
/// updates, made deterministic.
pub struct Racing<'a> {
    mem: &'a dyn PhysMem,
    slot: u64,
    writes: Mutex<VecDeque<Write>>,
    /// How many `writes` are left (read without the lock).
    scripted: AtomicUsize,
    /// Loads from addresses other than `slot`.
    pub other_loads: AtomicU32,
    /// Compare-and-swaps on `slot`, failed or not.
    pub swaps: AtomicU32,
    /// Compare-and-swaps on `slot` that found another value.
    pub failed: AtomicU32,
}

impl<'a> Racing<'a> {
    /// `mem`, where `writes` are made to `slot`, one before each swap on it.
    pub fn new(
        mem: &'a dyn PhysMem,
        slot: u64,
        writes: impl IntoIterator<Item = impl FnOnce(u64) -> u64 + Send + 'static>,
    ) -> Self {
        let writes: VecDeque<Write> = writes.into_iter().map(|w| Box::new(w) as Write).collect();
        Racing {
            mem,
            slot,
            scripted: AtomicUsize::new(writes.len()),
            writes: Mutex::new(writes),
            other_loads: AtomicU32::new(0),
            swaps: AtomicU32::new(0),
            failed: AtomicU32::new(0),
        }
    }

    /// Scripted writes not yet made.
    pub fn pending(&self) -> usize {
        self.writes.lock().unwrap().len()
    }
}

impl PhysMem for Racing<'_> {
    fn size(&self) -> u64 {
        self.mem.size()
    }
    fn load_u64(&self, pa: u64) -> Result<u64> {
        if pa != self.slot {
            self.other_loads.fetch_add(1, Ordering::Relaxed);
        }
        self.mem.load_u64(pa)
    }
    fn store_u64(&self, pa: u64, val: u64) -> Result<()> {
        self.mem.store_u64(pa, val)
    }
    fn compare_exchange_u64(
        &self,
        pa: u64,
        current: u64,
        new: u64,
    ) -> Result<std::result::Result<u64, u64>> {
        if pa != self.slot {
            return self.mem.compare_exchange_u64(pa, current, new);
        }
        self.swaps.fetch_add(1, Ordering::Relaxed);
        let write = match self.scripted.load(Ordering::Relaxed) {
            0 => None,
            _ => {
                self.scripted.fetch_sub(1, Ordering::Relaxed);
                self.writes.lock().unwrap().pop_front()
            }
        };
        if let Some(write) = write {
            let old = self.mem.load_u64(pa)?;
            self.mem.store_u64(pa, write(old))?;
        }
        let result = self.mem.compare_exchange_u64(pa, current, new)?;
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(result)
    }
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<()> {
        self.mem.read(pa, buf)
    }
    fn write(&self, pa: u64, buf: &[u8]) -> Result<()> {
        self.mem.write(pa, buf)
    }
    fn zero(&self, pa: u64, len: u64) -> Result<()> {
        self.mem.zero(pa, len)
    }
}
