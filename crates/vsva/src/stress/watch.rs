//! Host memory that watches frames: a [`PhysMemory`] whose every access — device DMA, IOMMU
//! table walks, the memory manager — also checks, while a watch is armed, whether it touches
//! a frame an operation released or made unreachable, and counts it as a stale read or
//! write. The harness itself poisons and checks those frames through [`raw`], which is not
//! watched.
//!
//! While no watch is armed an access costs one relaxed load more; while one is armed it also
//! takes a read lock and compares against a handful of frames. With `VSVA_STRESS_BACKTRACE`
//! set in the environment, the first few stale accesses of each window print where they
//! came from.
//!
//! [`raw`]: WatchedMemory::raw

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use vsva_mem::phys::Result;
use vsva_mem::{CreateError, PhysMem, PhysMemory};

/// Bytes in a watched frame.
pub const FRAME: u64 = 4096;

/// Which accesses to a watched frame are stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accesses {
    /// Every read and write (the frame was freed, or the device may no longer reach it).
    All,
    /// Writes only (the frame stays readable: made read-only, or shared with a child).
    Writes,
}

/// What a watched frame held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Data of the buffer.
    Data,
    /// A page table (reached by table walks).
    Table,
}

/// Stale accesses seen while a watch was armed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// Reads of a watched frame (0 when only writes are watched).
    pub reads: u64,
    /// Writes of a watched frame.
    pub writes: u64,
    /// Of those, reads and writes of page-table frames.
    pub table_accesses: u64,
    /// The first few, described (address, size, method, frame, thread).
    pub first: Vec<String>,
}

/// Stale accesses described per window, at most.
const DESCRIBED: usize = 4;

#[derive(Debug)]
struct Watch {
    armed: bool,
    accesses: Accesses,
    frames: Vec<(u64, Held)>,
    reads: AtomicU64,
    writes: AtomicU64,
    table_accesses: AtomicU64,
    first: std::sync::Mutex<Vec<String>>,
}

/// Physical memory with a frame watch (module doc).
#[derive(Debug)]
pub struct WatchedMemory {
    inner: PhysMemory,
    /// Mirrors `watch.armed`, read without the lock on every access.
    armed: AtomicBool,
    watch: RwLock<Watch>,
}

impl WatchedMemory {
    /// `size` bytes of sparse memory, nothing watched.
    ///
    /// # Errors
    /// [`CreateError`] if the host refuses the mapping.
    pub fn new(size: u64) -> std::result::Result<WatchedMemory, CreateError> {
        Ok(WatchedMemory {
            inner: PhysMemory::new(size)?,
            armed: AtomicBool::new(false),
            watch: RwLock::new(Watch {
                armed: false,
                accesses: Accesses::All,
                frames: Vec::new(),
                reads: AtomicU64::new(0),
                writes: AtomicU64::new(0),
                table_accesses: AtomicU64::new(0),
                first: std::sync::Mutex::new(Vec::new()),
            }),
        })
    }

    /// The memory without the watch: the harness's own poison writes and checks.
    pub fn raw(&self) -> &PhysMemory {
        &self.inner
    }

    fn read_watch(&self) -> RwLockReadGuard<'_, Watch> {
        self.watch.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_watch(&self) -> RwLockWriteGuard<'_, Watch> {
        self.watch.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts watching the 4 KiB data `frames` for `accesses`, with fresh counts.
    pub fn arm(&self, frames: &[u64], accesses: Accesses) {
        let mut w = self.write_watch();
        w.frames.clear();
        w.frames
            .extend(frames.iter().map(|f| (f & !(FRAME - 1), Held::Data)));
        w.accesses = accesses;
        *w.reads.get_mut() = 0;
        *w.writes.get_mut() = 0;
        *w.table_accesses.get_mut() = 0;
        w.first.get_mut().unwrap_or_else(|e| e.into_inner()).clear();
        w.armed = true;
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Adds frames that held `what` to the armed watch.
    pub fn watch_more(&self, frames: &[u64], what: Held) {
        if frames.is_empty() {
            return;
        }
        let mut w = self.write_watch();
        w.frames
            .extend(frames.iter().map(|f| (f & !(FRAME - 1), what)));
    }

    /// Stops watching; returns what was seen since [`arm`](Self::arm). No access counts once
    /// this returns.
    pub fn disarm(&self) -> Seen {
        let mut w = self.write_watch();
        w.armed = false;
        self.armed.store(false, Ordering::SeqCst);
        Seen {
            reads: *w.reads.get_mut(),
            writes: *w.writes.get_mut(),
            table_accesses: *w.table_accesses.get_mut(),
            first: std::mem::take(w.first.get_mut().unwrap_or_else(|e| e.into_inner())),
        }
    }

    #[inline]
    fn note(&self, pa: u64, len: u64, write: bool, how: &'static str) {
        if self.armed.load(Ordering::Relaxed) {
            self.note_armed(pa, len, write, how);
        }
    }

    #[cold]
    fn note_armed(&self, pa: u64, len: u64, write: bool, how: &'static str) {
        let w = self.read_watch();
        if !w.armed || (!write && w.accesses == Accesses::Writes) {
            return;
        }
        let end = pa.saturating_add(len.max(1));
        if let Some(&(_, held)) = w.frames.iter().find(|&&(f, _)| pa < f + FRAME && f < end) {
            let counter = if write { &w.writes } else { &w.reads };
            counter.fetch_add(1, Ordering::Relaxed);
            if held == Held::Table {
                w.table_accesses.fetch_add(1, Ordering::Relaxed);
            }
            let mut first = w.first.lock().unwrap_or_else(|e| e.into_inner());
            if first.len() < DESCRIBED {
                let thread = std::thread::current();
                if std::env::var_os("VSVA_STRESS_BACKTRACE").is_some() {
                    eprintln!(
                        "stale {how} of {len} bytes at {pa:#x}:\n{}",
                        std::backtrace::Backtrace::force_capture()
                    );
                }
                let what = match held {
                    Held::Data => "a data frame",
                    Held::Table => "a freed page-table frame",
                };
                first.push(format!(
                    "{how} of {len} bytes at {pa:#x} ({what}) by thread {}",
                    thread.name().unwrap_or("?")
                ));
            }
        }
    }
}

impl PhysMem for WatchedMemory {
    fn size(&self) -> u64 {
        self.inner.size()
    }

    #[inline]
    fn load_u64(&self, pa: u64) -> Result<u64> {
        self.note(pa, 8, false, "load");
        self.inner.load_u64(pa)
    }

    #[inline]
    fn store_u64(&self, pa: u64, val: u64) -> Result<()> {
        self.note(pa, 8, true, "store");
        self.inner.store_u64(pa, val)
    }

    #[inline]
    fn compare_exchange_u64(
        &self,
        pa: u64,
        current: u64,
        new: u64,
    ) -> Result<std::result::Result<u64, u64>> {
        let r = self.inner.compare_exchange_u64(pa, current, new)?;
        // a failed exchange only read the word
        self.note(pa, 8, r.is_ok(), "compare-exchange");
        Ok(r)
    }

    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<()> {
        self.note(pa, buf.len() as u64, false, "read");
        self.inner.read(pa, buf)
    }

    fn write(&self, pa: u64, buf: &[u8]) -> Result<()> {
        self.note(pa, buf.len() as u64, true, "write");
        self.inner.write(pa, buf)
    }

    fn zero(&self, pa: u64, len: u64) -> Result<()> {
        self.note(pa, len, true, "zero");
        self.inner.zero(pa, len)
    }

    fn advise_huge(&self, pa: u64, len: u64) {
        self.inner.advise_huge(pa, len);
    }

    fn copy(&self, src: u64, dst: u64, len: u64) -> Result<()> {
        self.note(src, len, false, "copy from");
        self.note(dst, len, true, "copy to");
        self.inner.copy(src, dst, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_armed_accesses_to_watched_frames_and_not_raw_ones() {
        let m = WatchedMemory::new(1 << 20).unwrap();
        let mut b = [0u8; 16];
        m.write(0x3000, &b).unwrap();
        m.arm(&[0x3000], Accesses::All);
        m.read(0x3ff8, &mut b).unwrap(); // straddles into the next frame: counts
        m.write(0x4000, &b).unwrap(); // the next frame: does not
        m.raw().write(0x3000, &b).unwrap(); // the harness: does not
        m.copy(0x3000, 0x5000, 64).unwrap(); // reads the frame
        m.copy(0x5000, 0x3010, 64).unwrap(); // writes it
        assert!(m.compare_exchange_u64(0x3008, 1, 2).unwrap().is_err()); // a read
        let seen = m.disarm();
        assert_eq!((seen.reads, seen.writes), (3, 1));
        assert_eq!(seen.first.len(), 4);
        assert_eq!(seen.table_accesses, 0);
        assert!(
            seen.first[0].starts_with("read of 16 bytes at 0x3ff8 (a data frame)"),
            "{seen:?}"
        );
        m.write(0x3000, &b).unwrap();
        m.arm(&[0x3000], Accesses::Writes);
        m.read(0x3000, &mut b).unwrap();
        m.zero(0x2000, 0x2000).unwrap();
        m.watch_more(&[0x6000], Held::Table);
        m.load_u64(0x6ff8).unwrap();
        let seen = m.disarm();
        assert_eq!((seen.reads, seen.writes), (0, 1), "a table read is a read");
        m.arm(&[], Accesses::All);
        m.watch_more(&[0x6000], Held::Table);
        m.load_u64(0x6ff8).unwrap();
        let seen = m.disarm();
        assert_eq!((seen.reads, seen.table_accesses), (1, 1));
    }
}
