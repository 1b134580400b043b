//! The shim's open files and how a descriptor is recognised as one of them.
//!
//! Every file the shim opens — an iommufd, a VFIO device, a fault queue, a vEVENTQ — is a real
//! descriptor: one end of a `socketpair(AF_UNIX, SOCK_STREAM)`, whose other end (the *peer*)
//! the shim keeps. A socket has an inode of its own, so the file is named by the
//! `(st_dev, st_ino)` that `fstat()` gives for any descriptor of it, however the program
//! duplicated, inherited or received it. The peer serves twice:
//! * it sees `POLLHUP` once every descriptor of the program's end is closed, which is when
//!   the shim releases the file (Linux's `release` file operation);
//! * for a fault queue or a vEVENTQ, a byte written to it makes the program's end readable, so the
//!   kernel's own `poll`, `select` and `epoll` report the queue readable.
//!
//! Recognising a descriptor must cost nearly nothing on the path every other descriptor
//! takes (each `read` and `write` of the program, the shim's own included): a bitmap of
//! descriptor numbers that *may* be the shim's is tested with one atomic load, and only a
//! hit costs an `fstat` and a look-up. The bitmap is a superset — bits are set at open and
//! at every `dup`, cleared at `close` — and the inode look-up decides; a descriptor closed
//! behind the shim's back (`close_range`, `execve`) leaves a stale bit that only costs that
//! `fstat`. No lock is held on this path, and the registry's lock is never held while the
//! model runs or while the shim does I/O.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use libc::c_int;
use vsva_iommufd::{FaultFile, Iommufd, VeventqFile, VfioDeviceFile};

use crate::sys;

/// Descriptors the bitmap covers (Linux's default `fs.nr_open`). A shim file that would get a
/// larger number is refused with `EMFILE`.
pub const MAX_FD: usize = 1 << 20;

static MAYBE_OURS: [AtomicU64; MAX_FD / 64] = [const { AtomicU64::new(0) }; MAX_FD / 64];

/// Files whose `poll` the shim answers itself (iommufds and VFIO devices); while there are
/// none, `poll` and `ppoll` go straight to the kernel.
static POLL_ANSWERED: AtomicUsize = AtomicUsize::new(0);

/// Whether descriptor `fd` may be one of the shim's.
#[inline]
pub fn maybe_ours(fd: c_int) -> bool {
    let Ok(fd) = usize::try_from(fd) else {
        return false;
    };
    fd < MAX_FD && MAYBE_OURS[fd / 64].load(Ordering::Relaxed) & (1 << (fd % 64)) != 0
}

/// Marks `fd` as possibly the shim's.
pub fn mark(fd: c_int) {
    if let Ok(fd) = usize::try_from(fd) {
        if fd < MAX_FD {
            MAYBE_OURS[fd / 64].fetch_or(1 << (fd % 64), Ordering::Relaxed);
        }
    }
}

/// Clears `fd`'s mark.
pub fn unmark(fd: c_int) {
    if let Ok(fd) = usize::try_from(fd) {
        if fd < MAX_FD {
            MAYBE_OURS[fd / 64].fetch_and(!(1 << (fd % 64)), Ordering::Relaxed);
        }
    }
}

/// Whether any file answers `poll` through the shim.
pub fn poll_answered() -> bool {
    POLL_ANSWERED.load(Ordering::Acquire) != 0
}

/// The shim's end of a socket pair, closed when the last reference goes.
#[derive(Debug)]
pub struct Peer(pub c_int);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = sys::close(self.0);
    }
}

/// An open queue file ([`crate::eventq`]).
pub struct QueueEntry<F> {
    /// The context that made it.
    pub ictx: Arc<Iommufd>,
    /// Its number in the context ([`Iommufd::fault_file`], [`Iommufd::veventq_file`]).
    pub number: u32,
    /// The model's file.
    pub file: Arc<F>,
}

/// An open fault queue file.
pub type FaultEntry = QueueEntry<FaultFile>;

/// An open vEVENTQ file.
pub type VeventqEntry = QueueEntry<VeventqFile>;

/// An open VFIO device cdev.
pub struct VfioEntry {
    /// The model's file.
    pub file: Arc<VfioDeviceFile>,
    /// Its number: `/dev/vfio/devices/vfio<index>` ([`crate::shim::Machine::function`]).
    pub index: usize,
    /// The file position `read` and `write` use (`f_pos`, region-encoded like a `pread`
    /// offset), shared by every descriptor of the file as Linux shares it.
    pub pos: Mutex<u64>,
    /// The access mode it was opened with (`O_RDONLY`, `O_WRONLY` or `O_RDWR`): a read of a
    /// file not open for reading, or a write of one not open for writing, is `EBADF`
    /// (`vfs_read()` / `vfs_write()`: `FMODE_READ` / `FMODE_WRITE`).
    pub access: c_int,
}

impl VfioEntry {
    /// A fresh open of device `index` with `open` flags `flags`: position 0 (BAR 0,
    /// offset 0).
    pub fn new(file: Arc<VfioDeviceFile>, index: usize, flags: c_int) -> VfioEntry {
        VfioEntry {
            file,
            index,
            pos: Mutex::new(0),
            access: flags & libc::O_ACCMODE,
        }
    }

    /// Whether the file was opened for reading.
    pub fn readable(&self) -> bool {
        self.access != libc::O_WRONLY
    }

    /// Whether the file was opened for writing.
    pub fn writable(&self) -> bool {
        self.access != libc::O_RDONLY
    }
}

/// What a shim file is.
pub enum Kind {
    /// `/dev/iommu`.
    Iommufd(Arc<Iommufd>),
    /// `/dev/vfio/devices/vfioN`.
    Vfio(VfioEntry),
    /// A fault queue's file, from `IOMMU_FAULT_QUEUE_ALLOC`.
    Fault(FaultEntry),
    /// A vIOMMU event queue's file, from `IOMMU_VEVENTQ_ALLOC`.
    Veventq(VeventqEntry),
}

/// One open shim file.
pub struct OpenFile {
    /// What it is.
    pub kind: Kind,
    /// The shim's end of its socket pair.
    pub peer: Arc<Peer>,
}

impl OpenFile {
    fn answers_poll(&self) -> bool {
        !matches!(self.kind, Kind::Fault(_) | Kind::Veventq(_))
    }
}

impl Drop for OpenFile {
    /// The file's `release`: a fault or vEVENTQ file leaves its context (the object may then
    /// be destroyed); an iommufd or VFIO file goes with its last reference.
    fn drop(&mut self) {
        match &self.kind {
            Kind::Fault(entry) => entry.release(),
            Kind::Veventq(entry) => entry.release(),
            Kind::Iommufd(_) | Kind::Vfio(_) => {}
        }
    }
}

type Key = (u64, u64);

static FILES: Mutex<BTreeMap<Key, Arc<OpenFile>>> = Mutex::new(BTreeMap::new());

fn registry() -> MutexGuard<'static, BTreeMap<Key, Arc<OpenFile>>> {
    FILES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Makes a shim file: a socket pair, the program's end returned (close-on-exec if
/// `cloexec`, non-blocking if `nonblock`), the peer kept, the file registered under the
/// end's inode.
///
/// # Errors
/// `socketpair`'s errno (`EMFILE`, `ENFILE`, `ENOMEM`); `EMFILE` if the descriptor is past
/// [`MAX_FD`].
pub fn install(
    make: impl FnOnce(&Arc<Peer>) -> Kind,
    cloexec: bool,
    nonblock: bool,
) -> Result<c_int, i32> {
    let extra = libc::SOCK_CLOEXEC | if nonblock { libc::SOCK_NONBLOCK } else { 0 };
    let [user, peer] = sys::socketpair(extra)?;
    let peer = Arc::new(Peer(peer));
    let close_user = |errno| {
        let _ = sys::close(user);
        Err(errno)
    };
    if user as usize >= MAX_FD {
        return close_user(libc::EMFILE);
    }
    if !cloexec {
        if let Err(errno) = sys::fcntl(user, libc::F_SETFD, 0) {
            return close_user(errno);
        }
    }
    let key = match sys::file_id(user) {
        Ok(key) => key,
        Err(errno) => return close_user(errno),
    };
    let file = Arc::new(OpenFile {
        kind: make(&peer),
        peer,
    });
    if file.answers_poll() {
        POLL_ANSWERED.fetch_add(1, Ordering::AcqRel);
    }
    let old = registry().insert(key, file);
    // An inode is only reused once its socket is gone, and then its file was released.
    drop(old);
    mark(user);
    Ok(user)
}

/// The shim file `fd` refers to, if it is one (any descriptor, marked or not).
pub fn lookup_any(fd: c_int) -> Option<Arc<OpenFile>> {
    let key = sys::file_id(fd).ok()?;
    registry().get(&key).cloned()
}

/// The shim file `fd` refers to; the fast path for descriptors that were never the shim's.
#[inline]
pub fn lookup(fd: c_int) -> Option<Arc<OpenFile>> {
    if !maybe_ours(fd) {
        return None;
    }
    lookup_any(fd)
}

/// The registry key of `fd`, if it is marked (to check after a close whether the file went).
pub fn key_of_marked(fd: c_int) -> Option<Key> {
    if !maybe_ours(fd) {
        return None;
    }
    sys::file_id(fd).ok()
}

/// Releases the file under `key` if no descriptor of the program's end is left. The file is
/// dropped (its `release` runs) after the registry lock is released.
pub fn release_if_gone(key: Option<Key>) {
    let Some(key) = key else {
        return;
    };
    let gone = {
        let mut files = registry();
        match files.get(&key) {
            Some(file) if sys::peer_gone(file.peer.0) => files.remove(&key),
            _ => None,
        }
    };
    if let Some(file) = gone {
        if file.answers_poll() {
            POLL_ANSWERED.fetch_sub(1, Ordering::AcqRel);
        }
        drop(file);
    }
}

/// Files registered now.
pub fn open_files() -> usize {
    registry().len()
}
