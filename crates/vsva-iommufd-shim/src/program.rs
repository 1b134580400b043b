//! The real program as an iommufd address space: what `user_va` of `IOMMU_IOAS_MAP` names,
//! and the memory behind pointers in ioctl arguments.
//!
//! # Pinning by moving onto a memfd
//! Linux pins the program's pages (`pin_user_pages(FOLL_LONGTERM)`) and the device reaches
//! them by physical address. The model's devices reach only the model's physical memory, a
//! [`SegmentedMemory`]; so to pin `[va, va + len)` the shim moves that range of the program
//! onto a memfd and gives the model a mapping of the same memfd as a segment:
//! 1. the range must be mapped, readable, and writable if DMA may write it (else `EFAULT`,
//!    as `pin_user_pages()` fails on such VMAs);
//! 2. a private range: a memfd of its size (sealed `F_SEAL_SHRINK`, so the model's mapping
//!    can never reach past the file's end) receives the current contents, written from the
//!    range itself by `pwrite()`, then is mapped `MAP_SHARED | MAP_FIXED` over the range
//!    with the range's protection. A range already `MAP_SHARED` from a memfd is used as it
//!    is, through `/proc/self/map_files` (which needs `CAP_SYS_ADMIN` or
//!    `CAP_CHECKPOINT_RESTORE`; without it, or for other files, `EFAULT`);
//! 3. `SegmentedMemory::add_file` maps the memfd for the model: the pinned runs' `pa` are
//!    the segment's addresses. The two mappings share pages, so the program and DMA see each
//!    other's writes, and the program unmapping its view cannot take memory from a DMA.
//!
//! A registry of windows (memfd-backed ranges) makes a range, or part of one, pinned again
//! reuse its segment; the segment goes when its last pinned run is unpinned, and the window
//! (with its memfd) stays as long as the program's mapping of it is still there — checked
//! against `/proc/self/maps` at each pin, so memory mapped anew at the same address is moved
//! anew. The program's range stays memfd-backed after unpinning.
//!
//! Differences from Linux the move brings: the range becomes shared memory, so a child
//! forked afterwards shares it instead of getting a copy; `madvise` and `mlock` state of the
//! range and stack growth (`[stack]`'s `VM_GROWSDOWN`) are lost; a store by another thread
//! between the copy and the remap is lost.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use vsva_iommufd::AddressSpace;
use vsva_iommufd::UserMemory;
use vsva_iommufd::abi::Errno;
use vsva_mem::{SegmentedMemory, Va};
use vsva_mm::Pinned;

use crate::maps::{self, Vma};
use crate::sys;

/// The name the shim's memfds carry in `/proc/self/maps` (`/memfd:vsva-shim (deleted)`).
pub const MEMFD_NAME: &std::ffi::CStr = c"vsva-shim";

/// A raw errno as the model's [`Errno`].
pub fn errno_of(raw: i32) -> Errno {
    Errno(raw)
}

/// The program's locked-memory charge against RLIMIT_MEMLOCK (Linux's
/// `incr_user_locked_vm()` in `drivers/iommu/iommufd/pages.c`), shared by user memory and
/// mapped files.
#[derive(Debug, Default)]
pub struct Locked {
    pages: AtomicU64,
}

impl Locked {
    /// Pages charged now.
    pub fn pages(&self) -> u64 {
        self.pages.load(Ordering::Acquire)
    }

    /// Charges `pages` if the total stays within `limit` (`None`: unlimited).
    ///
    /// # Errors
    /// `ENOMEM` past the limit; nothing is charged then.
    pub fn charge(&self, pages: u64, limit: Option<u64>) -> Result<(), Errno> {
        let mut now = self.pages();
        loop {
            let new = now.checked_add(pages).ok_or(Errno::ENOMEM)?;
            if limit.is_some_and(|limit| new > limit) {
                return Err(Errno::ENOMEM);
            }
            match self
                .pages
                .compare_exchange(now, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(()),
                Err(seen) => now = seen,
            }
        }
    }

    /// Returns a charge.
    pub fn uncharge(&self, pages: u64) {
        let _ = self
            .pages
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                Some(now.saturating_sub(pages))
            });
    }
}

/// A memfd-backed range of the program.
#[derive(Debug)]
struct Window {
    va: u64,
    len: u64,
    file: File,
    /// File offset of `va`.
    offset: u64,
    dev: (u32, u32),
    ino: u64,
    /// The model's segment, while runs are pinned.
    pa: Option<u64>,
    /// Pinned runs handed out and not unpinned.
    runs: u64,
    /// Whether the program's mapping is (as far as the last check saw) still this window.
    attached: bool,
}

impl Window {
    /// Whether `vma`, which holds `va`, is still this window's mapping.
    fn matches(&self, vma: &Vma, va: u64) -> bool {
        vma.shared
            && vma.dev == self.dev
            && vma.inode == self.ino
            && vma.offset_of(va) == self.offset + (va - self.va)
    }
}

#[derive(Debug, Default)]
struct Windows {
    next_id: u64,
    all: BTreeMap<u64, Window>,
    /// Attached windows by start address.
    by_va: BTreeMap<u64, u64>,
    /// Windows with a segment, by segment address.
    by_pa: BTreeMap<u64, u64>,
}

impl Windows {
    fn insert(&mut self, window: Window) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.by_va.insert(window.va, id);
        self.all.insert(id, window);
        id
    }

    /// The attached window holding `va`.
    fn at(&self, va: u64) -> Option<u64> {
        let (_, &id) = self.by_va.range(..=va).next_back()?;
        let w = &self.all[&id];
        (va < w.va + w.len).then_some(id)
    }

    /// The start of the first attached window above `va`.
    fn next_start(&self, va: u64) -> Option<u64> {
        self.by_va.range(va + 1..).next().map(|(&start, _)| start)
    }

    /// Takes window `id` off its address; it goes once its runs are unpinned.
    fn detach(&mut self, id: u64, mem: &SegmentedMemory) {
        let w = self
            .all
            .get_mut(&id)
            .expect("window ids are kept consistent");
        w.attached = false;
        self.by_va.remove(&w.va);
        if w.runs == 0 {
            self.drop_window(id, mem);
        }
    }

    fn drop_window(&mut self, id: u64, mem: &SegmentedMemory) {
        if let Some(w) = self.all.remove(&id) {
            if let Some(pa) = w.pa {
                self.by_pa.remove(&pa);
                mem.remove(pa);
            }
        }
    }

    /// A pinned run of `[va, end)` of window `id`, making its segment if it has none.
    fn run(&mut self, id: u64, va: u64, end: u64, mem: &SegmentedMemory) -> Result<Pinned, Errno> {
        let w = self
            .all
            .get_mut(&id)
            .expect("window ids are kept consistent");
        let pa = match w.pa {
            Some(pa) => pa,
            None => {
                let file = w.file.try_clone().map_err(|_| Errno::ENOMEM)?;
                let pa = mem
                    .add_file(file, w.offset, w.len)
                    .map_err(|_| Errno::ENOMEM)?;
                w.pa = Some(pa);
                self.by_pa.insert(pa, id);
                pa
            }
        };
        w.runs += 1;
        Ok(Pinned {
            va: Va::new(va),
            pa: pa + (va - w.va),
            len: end - va,
            frame: pa,
        })
    }

    /// Drops the run whose segment is at `frame`.
    fn unpin(&mut self, frame: u64, mem: &SegmentedMemory) {
        let Some(&id) = self.by_pa.get(&frame) else {
            tracing::error!(frame, "unpin of a run the shim did not pin");
            return;
        };
        let w = self
            .all
            .get_mut(&id)
            .expect("window ids are kept consistent");
        w.runs = w.runs.saturating_sub(1);
        if w.runs == 0 {
            if w.attached {
                // The segment goes; the window stays for a later pin of the same memory.
                w.pa = None;
                self.by_pa.remove(&frame);
                mem.remove(frame);
            } else {
                self.drop_window(id, mem);
            }
        }
    }
}

/// The real program: its memory as the model's [`AddressSpace`], and as the [`UserMemory`] of
/// ioctl arguments.
pub struct ProgramMemory {
    mem: Arc<SegmentedMemory>,
    locked: Arc<Locked>,
    windows: Mutex<Windows>,
}

impl std::fmt::Debug for ProgramMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgramMemory")
            .field("locked", &self.locked.pages())
            .field("windows", &self.lock().all.len())
            .finish()
    }
}

impl ProgramMemory {
    /// The program, whose pinned memory becomes segments of `mem`, charging `locked`.
    pub fn new(mem: Arc<SegmentedMemory>, locked: Arc<Locked>) -> ProgramMemory {
        ProgramMemory {
            mem,
            locked,
            windows: Mutex::new(Windows::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Windows> {
        self.windows.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Windows the registry holds (attached or with pinned runs).
    pub fn windows(&self) -> usize {
        self.lock().all.len()
    }

    /// Segments the registry holds now.
    pub fn segments(&self) -> usize {
        self.lock().by_pa.len()
    }

    fn pin_locked(
        &self,
        windows: &mut Windows,
        runs: &mut Vec<Pinned>,
        va: u64,
        end: u64,
        write: bool,
    ) -> Result<(), Errno> {
        let vmas = maps::read_self().map_err(errno_of)?;
        let mut cursor = va;
        while cursor < end {
            let vma = maps::find(&vmas, cursor).ok_or(Errno::EFAULT)?;
            if !vma.read || (write && !vma.write) {
                return Err(Errno::EFAULT);
            }
            let piece_end = end.min(vma.end);
            if let Some(id) = windows.at(cursor) {
                let w = &windows.all[&id];
                if w.matches(vma, cursor) {
                    let run_end = piece_end.min(w.va + w.len);
                    runs.push(windows.run(id, cursor, run_end, &self.mem)?);
                    cursor = run_end;
                    continue;
                }
                windows.detach(id, &self.mem);
            }
            let gap_end = windows
                .next_start(cursor)
                .map_or(piece_end, |next| next.min(piece_end));
            let window = if vma.shared {
                adopt(vma, cursor, gap_end)?
            } else {
                move_onto_memfd(vma, cursor, gap_end)?
            };
            let id = windows.insert(window);
            runs.push(windows.run(id, cursor, gap_end, &self.mem)?);
            cursor = gap_end;
        }
        Ok(())
    }
}

/// Reads the memfd's identity.
fn identity(file: &File) -> Result<((u32, u32), u64), Errno> {
    use std::os::fd::AsRawFd;
    let st = sys::fstat(file.as_raw_fd()).map_err(errno_of)?;
    Ok((maps::dev_parts(st.st_dev), st.st_ino))
}

/// Makes sure the shmem file `fd` cannot shrink (`F_SEAL_SHRINK`), adding the seal when the
/// file allows it.
///
/// # Errors
/// `EINVAL` if the file is not a memfd / shmem file or cannot be sealed.
pub fn seal_against_shrink(fd: libc::c_int) -> Result<(), Errno> {
    let seals = sys::fcntl(fd, libc::F_GET_SEALS, 0).map_err(|_| Errno::EINVAL)?;
    if seals & libc::F_SEAL_SHRINK != 0 {
        return Ok(());
    }
    sys::fcntl(fd, libc::F_ADD_SEALS, libc::F_SEAL_SHRINK as libc::c_ulong)
        .map(drop)
        .map_err(|_| Errno::EINVAL)
}

/// Moves the private range `[start, end)` of `vma` onto a new memfd (see the module docs).
fn move_onto_memfd(vma: &Vma, start: u64, end: u64) -> Result<Window, Errno> {
    let len = end - start;
    let fd = sys::memfd_create(MEMFD_NAME, libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
        .map_err(errno_of)?;
    // SAFETY: `fd` was just created and is owned by nothing else.
    let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    sys::ftruncate(fd, len).map_err(errno_of)?;
    seal_against_shrink(fd)?;
    let mut done = 0u64;
    while done < len {
        let n = sys::pwrite_raw(fd, start + done, (len - done) as usize, done).map_err(errno_of)?;
        if n == 0 {
            return Err(Errno::EFAULT);
        }
        done += n as u64;
    }
    sys::mmap(
        start,
        len,
        vma.prot(),
        libc::MAP_SHARED | libc::MAP_FIXED,
        fd,
    )
    .map_err(errno_of)?;
    let (dev, ino) = identity(&file)?;
    Ok(Window {
        va: start,
        len,
        file,
        offset: 0,
        dev,
        ino,
        pa: None,
        runs: 0,
        attached: true,
    })
}

/// Uses the shared mapping `[start, end)` of `vma` as it is, if it maps a shmem file the shim
/// can open and seal.
fn adopt(vma: &Vma, start: u64, end: u64) -> Result<Window, Errno> {
    let path = format!("/proc/self/map_files/{:x}-{:x}", vma.start, vma.end);
    let flags = if vma.write {
        libc::O_RDWR
    } else {
        libc::O_RDONLY
    };
    let c_path = std::ffi::CString::new(path).map_err(|_| Errno::EFAULT)?;
    let fd = sys::openat(libc::AT_FDCWD, &c_path, flags | libc::O_CLOEXEC, 0)
        .map_err(|_| Errno::EFAULT)?;
    // SAFETY: `fd` was just opened and is owned by nothing else.
    let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    seal_against_shrink(fd).map_err(|_| Errno::EFAULT)?;
    let offset = vma.offset_of(start);
    let size = file.metadata().map_err(|_| Errno::EFAULT)?.len();
    if offset.checked_add(end - start).is_none_or(|e| e > size) {
        return Err(Errno::EFAULT);
    }
    let (dev, ino) = identity(&file)?;
    Ok(Window {
        va: start,
        len: end - start,
        file,
        offset,
        dev,
        ino,
        pa: None,
        runs: 0,
        attached: true,
    })
}

impl AddressSpace for ProgramMemory {
    fn name(&self) -> String {
        format!("pid {} (the real program)", std::process::id())
    }

    fn pin(&self, va: u64, len: u64, write: bool) -> Result<Vec<Pinned>, Errno> {
        let end = va.checked_add(len).ok_or(Errno::EFAULT)?;
        let mut windows = self.lock();
        let mut runs = Vec::new();
        match self.pin_locked(&mut windows, &mut runs, va, end, write) {
            Ok(()) => Ok(runs),
            Err(errno) => {
                for run in &runs {
                    windows.unpin(run.frame, &self.mem);
                }
                Err(errno)
            }
        }
    }

    fn unpin(&self, runs: &[Pinned]) {
        let mut windows = self.lock();
        for run in runs {
            windows.unpin(run.frame, &self.mem);
        }
    }

    fn account(&self, pages: u64) -> Result<(), Errno> {
        self.locked.charge(pages, sys::memlock_limit_pages())
    }

    fn unaccount(&self, pages: u64) {
        self.locked.uncharge(pages);
    }
}

/// The program's memory behind pointers in ioctl arguments, read and written with
/// `process_vm_readv` / `process_vm_writev` on the program itself, so a bad pointer is
/// `EFAULT` as with `copy_from_user()`, never a crash.
#[derive(Clone, Copy, Debug, Default)]
pub struct OwnMemory;

impl UserMemory for OwnMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        if buf.is_empty() {
            return Ok(());
        }
        if sys::vm_read_prefix(addr, buf) == buf.len() {
            Ok(())
        } else {
            Err(Errno::EFAULT)
        }
    }

    fn write(&self, addr: u64, buf: &[u8]) -> Result<(), Errno> {
        if buf.is_empty() {
            return Ok(());
        }
        if sys::vm_write_prefix(addr, buf) == buf.len() {
            Ok(())
        } else {
            Err(Errno::EFAULT)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vsva_mem::{PhysMem, PhysMemory};

    const PAGE: u64 = 4096;

    fn memory() -> Arc<SegmentedMemory> {
        let ram: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(1 << 20).unwrap());
        Arc::new(SegmentedMemory::new(ram, 1 << 30))
    }

    fn anon(len: u64, prot: libc::c_int) -> u64 {
        sys::mmap(0, len, prot, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1).unwrap()
    }

    /// Unmaps a whole mapping the test made. Never part of one in the middle of a test: the
    /// tests are threads of one process, and a hole is where another test's next `mmap` may
    /// land — a later `munmap` or `MAP_FIXED` over the hole would take that test's memory.
    fn unmap(va: u64, len: u64) {
        // SAFETY: the test owns the mapping it created.
        unsafe { libc::munmap(va as *mut libc::c_void, len as usize) };
    }

    fn protect(va: u64, len: u64, prot: libc::c_int) {
        // SAFETY: the test owns the mapping it changes; no reference into it is held.
        let rc = unsafe { libc::mprotect(va as *mut libc::c_void, len as usize, prot) };
        assert_eq!(rc, 0, "mprotect of the test's own pages");
    }

    #[test]
    fn pinning_moves_the_range_and_stays_coherent() {
        let mem = memory();
        let program = ProgramMemory::new(mem.clone(), Arc::new(Locked::default()));
        let va = anon(4 * PAGE, libc::PROT_READ | libc::PROT_WRITE);
        // SAFETY: the 4 pages at `va` are this test's fresh read-write mapping.
        let bytes = unsafe { std::slice::from_raw_parts_mut(va as *mut u8, (4 * PAGE) as usize) };
        bytes[..5].copy_from_slice(b"hello");
        bytes[PAGE as usize] = 0x5a;
        let runs = program.pin(va, 2 * PAGE, true).unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].len, 2 * PAGE);
        assert!(runs[0].pa >= mem.window());
        // the contents moved, and both sides see each other's writes
        let mut got = [0u8; 5];
        mem.read(runs[0].pa, &mut got).unwrap();
        assert_eq!(&got, b"hello");
        assert_eq!(bytes[PAGE as usize], 0x5a);
        mem.write(runs[0].pa + 8, b"dma").unwrap();
        assert_eq!(&bytes[8..11], b"dma");
        bytes[100] = 0x77;
        let mut one = [0u8; 1];
        mem.read(runs[0].pa + 100, &mut one).unwrap();
        assert_eq!(one[0], 0x77);
        let vmas = maps::read_self().unwrap();
        let vma = maps::find(&vmas, va).unwrap();
        assert!(vma.shared && vma.path.contains("vsva-shim"), "{vma:?}");

        // part of the range again reuses the segment; a longer range adds one for the rest
        let again = program.pin(va + PAGE, 3 * PAGE, true).unwrap();
        assert_eq!(again.len(), 2);
        assert_eq!(again[0].pa, runs[0].pa + PAGE);
        assert_eq!(again[0].len, PAGE);
        assert_eq!(again[1].len, 2 * PAGE);
        assert_eq!(program.segments(), 2);
        program.unpin(&again);
        assert_eq!(program.segments(), 1);
        program.unpin(&runs);
        assert_eq!(program.segments(), 0);
        assert_eq!(program.windows(), 2, "windows stay while mapped");
        // pinned again after unpinning: the same window, a fresh segment
        let third = program.pin(va, PAGE, false).unwrap();
        let mut got = [0u8; 3];
        mem.read(third[0].pa + 8, &mut got).unwrap();
        assert_eq!(&got, b"dma");
        program.unpin(&third);
        unmap(va, 4 * PAGE);
    }

    #[test]
    fn unmapped_or_read_only_memory_is_efault() {
        let program = ProgramMemory::new(memory(), Arc::new(Locked::default()));
        // The three pages stay this test's from the first mmap to the last munmap (see
        // `unmap`): the page that cannot be pinned is made PROT_NONE rather than unmapped,
        // and the unmapped memory is page 0, below `vm.mmap_min_addr`, which no mmap gets.
        let va = anon(3 * PAGE, libc::PROT_READ);
        protect(va + PAGE, PAGE, libc::PROT_NONE);
        assert_eq!(program.pin(va, 3 * PAGE, false), Err(Errno::EFAULT));
        assert_eq!(program.pin(0, PAGE, false), Err(Errno::EFAULT));
        assert_eq!(program.pin(va, PAGE, true), Err(Errno::EFAULT));
        assert_eq!(program.segments(), 0);
        let runs = program.pin(va, PAGE, false).unwrap();
        assert_eq!(runs.len(), 1);
        program.unpin(&runs);
        // memory mapped anew at a moved address is moved anew (MAP_FIXED replaces the window
        // in one step: the address is never free for another test's mmap)
        let again = sys::mmap(
            va,
            PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
        )
        .unwrap();
        // SAFETY: the page at `again` is this test's fresh mapping.
        unsafe { *(again as *mut u8) = 9 };
        let runs = program.pin(again, PAGE, true).unwrap();
        let mut one = [0u8; 1];
        program.mem.read(runs[0].pa, &mut one).unwrap();
        assert_eq!(one[0], 9);
        program.unpin(&runs);
        assert_eq!(program.windows(), 1);
        unmap(va, 3 * PAGE);
    }

    #[test]
    fn locked_memory_is_charged_up_to_the_limit() {
        let locked = Locked::default();
        locked.charge(3, Some(4)).unwrap();
        assert_eq!(locked.charge(2, Some(4)), Err(Errno::ENOMEM));
        locked.charge(1, Some(4)).unwrap();
        locked.uncharge(4);
        assert_eq!(locked.pages(), 0);
        locked.charge(u64::MAX, None).unwrap();
        assert_eq!(locked.charge(1, None), Err(Errno::ENOMEM));
    }

    #[test]
    fn own_memory_faults_instead_of_crashing() {
        let mut buf = [0u8; 8];
        assert_eq!(OwnMemory.read(8, &mut buf), Err(Errno::EFAULT));
        assert_eq!(OwnMemory.write(8, &buf), Err(Errno::EFAULT));
        let value = 0x1122_3344_5566_7788u64;
        OwnMemory
            .read(&value as *const u64 as u64, &mut buf)
            .unwrap();
        assert_eq!(u64::from_le_bytes(buf), value);
    }
}
