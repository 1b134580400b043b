//! `IOMMU_IOAS_MAP_FILE` for the real program: the descriptor it names, resolved to the
//! file's memory as a segment of the model's physical memory.
//!
//! Linux pins the memfd's folios (`memfd_pin_folios()`, called from `pfn_reader` in
//! `drivers/iommu/iommufd/pages.c`), which works only for shmem and hugetlbfs files. The shim
//! duplicates the descriptor (so the program closing its own does not matter, as the file
//! reference `iopt_alloc_file_pages()` takes) and, when the pages are pinned, maps
//! `[offset, offset + len)` of the file as a segment: DMA and every mapping of the file share
//! pages. The file is sealed against shrinking (`F_SEAL_SHRINK`) if it is not already, so
//! the model's mapping can never reach past the file's end — Linux tolerates a shrink under a
//! pin, the model could not; a memfd that refuses the seal (created without
//! `MFD_ALLOW_SEALING`, sealed with `F_SEAL_SEAL` but not `F_SEAL_SHRINK`, or named by a
//! read-only descriptor while not sealed yet) is `EINVAL`.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use vsva_iommufd::AddressSpace;
use vsva_iommufd::FileResolver;
use vsva_iommufd::abi::Errno;
use vsva_mem::{SegmentedMemory, Va};
use vsva_mm::Pinned;

use crate::program::{Locked, errno_of, seal_against_shrink};
use crate::sys;

const PAGE: u64 = 4096;

/// Resolves the program's descriptors for the model.
#[derive(Debug)]
pub struct MemfdResolver {
    mem: Arc<SegmentedMemory>,
    locked: Arc<Locked>,
}

impl MemfdResolver {
    /// A resolver whose files become segments of `mem`, charging `locked`.
    pub fn new(mem: Arc<SegmentedMemory>, locked: Arc<Locked>) -> MemfdResolver {
        MemfdResolver { mem, locked }
    }
}

impl FileResolver for MemfdResolver {
    fn resolve(
        &self,
        fd: i32,
        start: u64,
        length: u64,
        writable: bool,
    ) -> Result<Arc<dyn AddressSpace>, Errno> {
        let st = sys::fstat(fd).map_err(|_| Errno::EBADF)?;
        let mode = sys::fcntl(fd, libc::F_GETFL, 0).map_err(|_| Errno::EBADF)?;
        if writable && mode & libc::O_ACCMODE == libc::O_RDONLY {
            return Err(Errno::EPERM);
        }
        // memfd_pin_folios(): shmem files only (F_GET_SEALS answers for those alone).
        sys::fcntl(fd, libc::F_GET_SEALS, 0).map_err(|_| Errno::EINVAL)?;
        // The whole pages holding the range must lie inside the file.
        let size = st.st_size as u64;
        let end = start.checked_add(length).ok_or(Errno::EOVERFLOW)?;
        let page_end = end.checked_next_multiple_of(PAGE).ok_or(Errno::EINVAL)?;
        if length == 0 || page_end > size {
            return Err(Errno::EINVAL);
        }
        seal_against_shrink(fd)?;
        let dup = sys::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0).map_err(errno_of)?;
        // SAFETY: `dup` was just created and is owned by nothing else.
        let file = File::from(unsafe { OwnedFd::from_raw_fd(dup) });
        Ok(Arc::new(FileSpace {
            mem: self.mem.clone(),
            locked: self.locked.clone(),
            file,
            ino: st.st_ino,
            segments: Mutex::new(Vec::new()),
        }))
    }
}

/// A mapped file: "addresses" are byte offsets in it.
struct FileSpace {
    mem: Arc<SegmentedMemory>,
    locked: Arc<Locked>,
    file: File,
    ino: u64,
    /// Segments made by pins and not unpinned yet.
    segments: Mutex<Vec<u64>>,
}

impl AddressSpace for FileSpace {
    fn name(&self) -> String {
        format!("memfd inode {} (fd {})", self.ino, self.file.as_raw_fd())
    }

    fn pin(&self, va: u64, len: u64, _write: bool) -> Result<Vec<Pinned>, Errno> {
        let file = self.file.try_clone().map_err(|_| Errno::ENOMEM)?;
        let pa = self
            .mem
            .add_file(file, va, len)
            .map_err(|_| Errno::EFAULT)?;
        self.segments
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(pa);
        Ok(vec![Pinned {
            va: Va::new(va),
            pa,
            len,
            frame: pa,
        }])
    }

    fn unpin(&self, runs: &[Pinned]) {
        let mut segments = self.segments.lock().unwrap_or_else(|e| e.into_inner());
        for run in runs {
            if let Some(at) = segments.iter().position(|&pa| pa == run.frame) {
                segments.swap_remove(at);
                self.mem.remove(run.frame);
            }
        }
    }

    fn account(&self, pages: u64) -> Result<(), Errno> {
        self.locked.charge(pages, sys::memlock_limit_pages())
    }

    fn unaccount(&self, pages: u64) {
        self.locked.uncharge(pages);
    }
}

impl Drop for FileSpace {
    fn drop(&mut self) {
        let segments = std::mem::take(self.segments.get_mut().unwrap_or_else(|e| e.into_inner()));
        for pa in segments {
            self.mem.remove(pa);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vsva_mem::{PhysMem, PhysMemory};

    fn resolver() -> MemfdResolver {
        let ram: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(1 << 20).unwrap());
        MemfdResolver::new(
            Arc::new(SegmentedMemory::new(ram, 1 << 30)),
            Arc::new(Locked::default()),
        )
    }

    fn memfd(flags: libc::c_uint, len: u64) -> OwnedFd {
        let fd = sys::memfd_create(c"test", flags | libc::MFD_CLOEXEC).unwrap();
        sys::ftruncate(fd, len).unwrap();
        // SAFETY: `fd` was just created by this test.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    #[test]
    fn memfd_ranges_become_coherent_segments() {
        let r = resolver();
        let fd = memfd(libc::MFD_ALLOW_SEALING, 4 * PAGE);
        let space = r.resolve(fd.as_raw_fd(), PAGE, 2 * PAGE, true).unwrap();
        let seals = sys::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS, 0).unwrap();
        assert_ne!(seals & libc::F_SEAL_SHRINK, 0, "sealed against shrinking");
        let runs = space.pin(PAGE, 2 * PAGE, true).unwrap();
        sys::pwrite_raw(fd.as_raw_fd(), b"file".as_ptr() as u64, 4, PAGE + 16).unwrap();
        let mut got = [0u8; 4];
        r.mem.read(runs[0].pa + 16, &mut got).unwrap();
        assert_eq!(&got, b"file");
        space.unpin(&runs);
        assert!(r.mem.read(runs[0].pa, &mut got).is_err(), "segment removed");
    }

    #[test]
    fn bad_descriptors_and_ranges_fail_like_linux() {
        let r = resolver();
        let fd = memfd(libc::MFD_ALLOW_SEALING, 2 * PAGE);
        let raw = fd.as_raw_fd();
        assert_eq!(r.resolve(-1, 0, PAGE, true).err(), Some(Errno::EBADF));
        assert_eq!(
            r.resolve(raw, PAGE, 2 * PAGE, true).err(),
            Some(Errno::EINVAL)
        );
        assert_eq!(
            r.resolve(raw, u64::MAX, 2, true).err(),
            Some(Errno::EOVERFLOW)
        );
        // not a shmem file
        let proc = std::fs::File::open("/proc/self/maps").unwrap();
        assert_eq!(
            r.resolve(proc.as_raw_fd(), 0, PAGE, false).err(),
            Some(Errno::EINVAL)
        );
        // a memfd that cannot be sealed
        let unsealable = memfd(0, 2 * PAGE);
        assert_eq!(
            r.resolve(unsealable.as_raw_fd(), 0, PAGE, false).err(),
            Some(Errno::EINVAL)
        );
        // read-only descriptor, writable mapping
        let path = std::ffi::CString::new(format!("/proc/self/fd/{raw}")).unwrap();
        let ro = sys::openat(libc::AT_FDCWD, &path, libc::O_RDONLY | libc::O_CLOEXEC, 0).unwrap();
        // SAFETY: `ro` was just opened by this test.
        let ro = unsafe { OwnedFd::from_raw_fd(ro) };
        assert_eq!(
            r.resolve(ro.as_raw_fd(), 0, PAGE, true).err(),
            Some(Errno::EPERM)
        );
        // sealing needs a writable descriptor; once sealed, a read-only one maps
        assert_eq!(
            r.resolve(ro.as_raw_fd(), 0, PAGE, false).err(),
            Some(Errno::EINVAL)
        );
        assert!(r.resolve(raw, 0, PAGE, false).is_ok());
        assert!(r.resolve(ro.as_raw_fd(), 0, PAGE, false).is_ok());
    }
}
