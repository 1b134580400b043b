//! A byte-stream interpreter for fuzzing the shim's entry points in-process — what its
//! interposed `open`, `ioctl`, `read`, `write`, `pread`, `pwrite` and `close` do with the
//! shim's files: any path and flags, any request number, arguments whose `size` and
//! contents come from the stream, placed anywhere in a harness buffer including across the
//! edge of an inaccessible page, and pointers that name nothing (null, the inaccessible
//! page, kernel addresses, the top of the address space). The seeded test in this module
//! drives it; there is no cargo-fuzz target, as the crate builds only as a `cdylib`.
//!
//! Checks, after every step:
//! * no panic; every failure is an errno in Linux's range (1..=4095);
//! * an `ioctl`, `read` or `write` never touches the caller's memory outside what it was
//!   given: the harness buffer outside `[arg, arg + declared size)` (or `[buf, buf + count)`)
//!   keeps its bytes;
//! * a call whose pointer names no memory never succeeds with data moved;
//! * a path is the shim's exactly when [`crate::shim::classify`] says so, and
//!   `/dev/vfio/devices/vfio<n>` names device `n`;
//! * once closed, a file's socket pair is gone (its peer end was released), and once every
//!   descriptor of a context is closed, the context itself is gone.

#[cfg(test)]
mod tests;

use std::ffi::CString;
use std::sync::{Arc, Weak};

use libc::c_int;
use vsva_iommufd::Iommufd;
use vsva_iommufd::abi::Command;

use crate::files::{self, Kind};
use crate::shim::{self, ShimPath};
use crate::sys;

const PAGE: usize = 4096;
/// The harness buffer: two readable and writable pages, then one with no access.
const BUF_PAGES: usize = 3;
/// Bytes of the buffer a call may use (the rest is the inaccessible page).
const USABLE: usize = 2 * PAGE;
/// The byte the buffer is filled with where no argument is.
const SENTINEL: u8 = 0xa5;

/// What a run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Operations interpreted.
    pub ops: u64,
    /// Files opened (including fault and vEVENTQ files made by ioctls).
    pub opened: u64,
    /// Calls that succeeded.
    pub ok: u64,
    /// Calls that failed with an errno.
    pub failed: u64,
}

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
}

/// Three pages mapped for the run, the last without access.
struct Buffer {
    base: *mut u8,
}

impl Buffer {
    fn new() -> Option<Buffer> {
        // SAFETY: an anonymous private mapping at an address the kernel picks touches no
        // existing memory; the result is checked.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                BUF_PAGES * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        let base = base.cast::<u8>();
        // SAFETY: the last page of the mapping just made; only its protection changes.
        let rc = unsafe { libc::mprotect(base.add(USABLE).cast(), PAGE, libc::PROT_NONE) };
        let buf = Buffer { base };
        (rc == 0).then_some(buf)
    }

    fn addr(&self) -> u64 {
        self.base as u64
    }

    /// The usable bytes.
    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the first `USABLE` bytes of the mapping are readable and writable and
        // nothing else refers to them while the borrow of `self` lasts (the shim writes them
        // only inside calls this harness makes, not while this slice is alive).
        unsafe { std::slice::from_raw_parts_mut(self.base, USABLE) }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe {
            libc::munmap(self.base.cast(), BUF_PAGES * PAGE);
        }
    }
}

/// A descriptor the stream opened, with what must go when it is closed.
struct Open {
    fd: c_int,
    /// The identity of the shim's end of the socket pair.
    peer: (c_int, (u64, u64)),
}

fn errno_ok(e: i32) {
    assert!((1..4096).contains(&e), "errno {e} outside Linux's range");
}

/// An address the stream picks: inside the buffer at `at`, or one naming no memory.
fn pointer(buf: &Buffer, kind: u8, at: usize) -> (u64, bool) {
    match kind % 8 {
        0..=3 => (buf.addr() + at as u64, true),
        4 => (0, false),
        5 => (buf.addr() + USABLE as u64, false),
        6 => (0xffff_8000_0000_0000, false),
        _ => (u64::MAX - 3, false),
    }
}

/// Interprets `data` in this process.
///
/// # Panics
/// When an invariant breaks (the fuzzer reports it), or the buffer cannot be mapped.
pub fn run(data: &[u8]) -> Summary {
    let mut s = Summary::default();
    if shim::machine().is_err() {
        return s;
    }
    let mut buf = Buffer::new().expect("the harness buffer");
    let mut open: Vec<Open> = Vec::new();
    let mut contexts: Vec<Weak<Iommufd>> = Vec::new();
    let mut b = Bytes(data);
    while let Some(op) = b.u8() {
        s.ops += 1;
        if step(op, &mut b, &mut buf, &mut open, &mut contexts, &mut s).is_none() {
            break;
        }
    }
    while let Some(o) = open.pop() {
        close(o);
    }
    for c in contexts {
        assert!(c.upgrade().is_none(), "a context outlived its descriptors");
    }
    s
}

fn install(fd: c_int, open: &mut Vec<Open>, contexts: &mut Vec<Weak<Iommufd>>, s: &mut Summary) {
    let file = files::lookup(fd).expect("a descriptor the shim made is the shim's");
    if let Kind::Iommufd(ctx) = &file.kind {
        contexts.push(Arc::downgrade(ctx));
    }
    let peer = file.peer.0;
    let id = sys::file_id(peer).expect("the peer end is open");
    open.push(Open {
        fd,
        peer: (peer, id),
    });
    s.opened += 1;
}

fn close(o: Open) {
    let key = files::key_of_marked(o.fd);
    assert!(key.is_some(), "descriptor {} lost its mark", o.fd);
    files::unmark(o.fd);
    assert_eq!(sys::close(o.fd), Ok(()), "close");
    files::release_if_gone(key);
    let (peer, id) = o.peer;
    assert_ne!(
        sys::file_id(peer).ok(),
        Some(id),
        "the file's socket pair outlived its last descriptor"
    );
}

fn step(
    op: u8,
    b: &mut Bytes<'_>,
    buf: &mut Buffer,
    open: &mut Vec<Open>,
    contexts: &mut Vec<Weak<Iommufd>>,
    s: &mut Summary,
) -> Option<()> {
    match op % 8 {
        0 => {
            let (which, flags) = (b.u8()?, b.u8()?);
            let path = match which % 4 {
                0 => "/dev/iommu".to_owned(),
                1 | 2 => format!("/dev/vfio/devices/vfio{}", which >> 2),
                _ => {
                    let raw = b.take::<8>()?;
                    let tail: String = raw.iter().map(|&c| char::from(b'0' + c % 11)).collect();
                    format!("/dev/vfio/devices/vfio{tail}")
                }
            };
            let want = if path == "/dev/iommu" {
                Some(ShimPath::Iommu)
            } else {
                let digits = path.trim_start_matches("/dev/vfio/devices/vfio");
                let plain = !digits.is_empty()
                    && digits.len() <= 9
                    && digits.bytes().all(|c| c.is_ascii_digit())
                    && (digits.len() == 1 || !digits.starts_with('0'));
                plain.then(|| ShimPath::Vfio(digits.parse().unwrap_or(usize::MAX)))
            };
            assert_eq!(shim::classify(path.as_bytes()), want, "{path}");
            let mut f = c_int::from(flags & 3).min(2);
            for (bit, flag) in [
                (4, libc::O_CREAT),
                (8, libc::O_EXCL),
                (16, libc::O_DIRECTORY),
                (32, libc::O_CLOEXEC),
                (64, libc::O_NONBLOCK),
            ] {
                if flags & bit != 0 {
                    f |= flag;
                }
            }
            let Ok(cpath) = CString::new(path) else {
                return Some(());
            };
            match shim::open(&cpath, f) {
                None => assert!(want.is_none(), "a shim path passed through"),
                Some(Ok(fd)) => {
                    s.ok += 1;
                    install(fd, open, contexts, s);
                }
                Some(Err(e)) => {
                    s.failed += 1;
                    errno_ok(e);
                }
            }
        }
        1..=4 => {
            let (which, cmd, size_kind, ptr) = (b.u8()?, b.u8()?, b.u8()?, b.u8()?);
            let at = usize::from(b.u16()?) % USABLE;
            let raw = b.take::<32>()?;
            let Some(file) = open
                .get(usize::from(which) % open.len().max(1))
                .and_then(|o| files::lookup(o.fd))
            else {
                return Some(());
            };
            let command = Command::ALL[usize::from(cmd) % Command::ALL.len()];
            let request = match cmd >> 5 {
                _ if op % 8 == 4 => u64::from(command.ioctl_number()),
                0..=5 => u64::from(command.ioctl_number()),
                6 => u64::from(command.ioctl_number()) ^ 1 << (size_kind % 32),
                _ => u64::from(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]])),
            };
            // Op 4 is a well-formed call: the exact size, a good pointer, an argument of
            // zeros but for one small word (what gets past the reserved-field checks).
            let wellformed = op % 8 == 4;
            let size = match size_kind % 5 {
                _ if wellformed => command.size() as u32,
                0..=1 => command.size() as u32,
                2 => command.min_size() as u32,
                3 => u32::from(size_kind),
                _ => u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]),
            };
            // The argument: size, then the stream's bytes; VFIO_DEVICE_BIND_IOMMUFD gets one of
            // the open descriptors in its third word, where it reads its iommufd.
            let mem = buf.bytes();
            mem.fill(SENTINEL);
            let mut arg = raw.to_vec();
            if wellformed {
                let keep = 4 * (usize::from(size_kind >> 3) % 8);
                for (i, byte) in arg.iter_mut().enumerate() {
                    *byte = if i == keep { *byte % 8 } else { 0 };
                }
            }
            arg[..4].copy_from_slice(&size.to_le_bytes());
            if command == Command::VfioDeviceBindIommufd
                && let Some(o) = open.get(usize::from(raw[8]) % open.len().max(1))
            {
                arg[8..12].copy_from_slice(&o.fd.to_le_bytes());
            }
            let n = arg.len().min(USABLE - at);
            mem[at..at + n].copy_from_slice(&arg[..n]);
            let before = mem.to_vec();
            let (addr, valid) = pointer(buf, if wellformed { 0 } else { ptr }, at);
            let r = shim::ioctl(&file, request, addr);
            let after = buf.bytes().to_vec();
            // Nothing outside [at, at + size) of the buffer changed.
            let end = if valid {
                (at as u64 + u64::from(size)).min(USABLE as u64) as usize
            } else {
                at
            };
            let outside = (0..USABLE).filter(|&i| !(valid && (at..end).contains(&i)));
            for i in outside {
                assert_eq!(
                    after[i], before[i],
                    "{command:?} wrote byte {i} outside its argument at {at} (size {size})"
                );
            }
            match r {
                Ok(_) => {
                    s.ok += 1;
                    assert!(valid, "{command:?} succeeded on a pointer to nothing");
                    let out = |off: usize| {
                        after
                            .get(at + off..at + off + 4)
                            .map(|w| c_int::from_le_bytes([w[0], w[1], w[2], w[3]]))
                    };
                    let exact = request as u32 == command.ioctl_number();
                    let new_fd = match command {
                        Command::FaultQueueAlloc if exact => out(12),
                        Command::VeventqAlloc if exact => out(24),
                        _ => None,
                    };
                    if let Some(fd) = new_fd.filter(|&fd| files::lookup(fd).is_some()) {
                        install(fd, open, contexts, s);
                    }
                }
                Err(e) => {
                    s.failed += 1;
                    errno_ok(e.0);
                }
            }
        }
        5 | 6 => {
            let (which, kind, ptr, count) = (b.u8()?, b.u8()?, b.u8()?, b.u8()?);
            let at = usize::from(b.u16()?) % USABLE;
            let offset = i64::from(b.u32()?) | i64::from(kind >> 5) << 40;
            let Some(o) = open.get(usize::from(which) % open.len().max(1)) else {
                return Some(());
            };
            let Some(file) = files::lookup(o.fd) else {
                return Some(());
            };
            let count = match count % 6 {
                0 => 0,
                1 => 1,
                2 => 4,
                3 => 48,
                4 => PAGE,
                _ => usize::MAX,
            };
            buf.bytes().fill(SENTINEL);
            let before = buf.bytes().to_vec();
            let (addr, valid) = pointer(buf, ptr, at);
            let r = match kind % 4 {
                0 => shim::read(&file, o.fd, addr, count),
                1 => shim::write(&file, addr, count),
                2 => shim::pread(&file, addr, count, offset),
                _ => shim::pwrite(&file, addr, count, offset),
            };
            let after = buf.bytes().to_vec();
            let end = if valid {
                at.saturating_add(count).min(USABLE)
            } else {
                at
            };
            for i in (0..USABLE).filter(|&i| !(valid && (at..end).contains(&i))) {
                assert_eq!(
                    after[i], before[i],
                    "a transfer wrote byte {i} outside its buffer"
                );
            }
            if kind % 2 == 1 {
                assert_eq!(after, before, "a write changed the caller's buffer");
            }
            match r {
                Ok(n) => {
                    s.ok += 1;
                    assert!(n <= count, "{n} bytes moved of {count}");
                    assert!(
                        valid || n == 0,
                        "{n} bytes moved through a pointer to nothing"
                    );
                }
                Err(e) => {
                    s.failed += 1;
                    errno_ok(e.0);
                }
            }
        }
        _ => {
            let which = b.u8()?;
            if !open.is_empty() {
                let o = open.remove(usize::from(which) % open.len());
                close(o);
            }
        }
    }
    Some(())
}
