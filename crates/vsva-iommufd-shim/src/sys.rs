//! The real system calls, issued with `syscall(2)` rather than through libc's wrappers.
//!
//! The shim interposes libc's `open`, `read`, `close`, ... in the whole process, its own Rust
//! code included; calling the kernel directly for every fd that is not the shim's means the
//! pass-through path needs no `dlsym(RTLD_NEXT)` (which may allocate, and is not usable
//! before the dynamic linker has finished with the library), and the shim's own I/O can never
//! come back into the shim. Each function returns the kernel's result or the errno.

use std::ffi::CStr;

use libc::{c_int, c_long, c_void};

/// The calling thread's `errno`.
pub fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Sets the calling thread's `errno` (what a libc wrapper does before returning -1).
pub fn set_errno(errno: i32) {
    // SAFETY: `__errno_location` returns the calling thread's errno slot, valid for the
    // thread's lifetime.
    unsafe { *libc::__errno_location() = errno };
}

/// A `syscall()` result as `Ok(value)` or `Err(errno)`.
fn check(rc: c_long) -> Result<c_long, i32> {
    if rc < 0 { Err(errno()) } else { Ok(rc) }
}

/// `openat(dirfd, path, flags, mode)`.
pub fn openat(dirfd: c_int, path: &CStr, flags: c_int, mode: libc::mode_t) -> Result<c_int, i32> {
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_openat, dirfd, path.as_ptr(), flags, mode) };
    check(rc).map(|fd| fd as c_int)
}

/// `openat` with a raw path pointer from the caller (the kernel reads it, so a bad pointer is
/// `EFAULT`, as for the real call).
pub fn openat_raw(dirfd: c_int, path: u64, flags: c_int, mode: libc::mode_t) -> c_long {
    // SAFETY: the kernel validates `path`; nothing here dereferences it.
    unsafe { libc::syscall(libc::SYS_openat, dirfd, path, flags, mode) }
}

/// `close(fd)`.
pub fn close(fd: c_int) -> Result<(), i32> {
    // SAFETY: closing a descriptor touches no memory of this process.
    check(unsafe { libc::syscall(libc::SYS_close, fd) }).map(drop)
}

/// `read(fd, buf, count)` with the caller's pointer (the kernel checks it).
pub fn read_raw(fd: c_int, buf: u64, count: usize) -> c_long {
    // SAFETY: the kernel validates `buf`; a bad pointer is EFAULT, not a fault here.
    unsafe { libc::syscall(libc::SYS_read, fd, buf, count) }
}

/// `write(fd, buf, count)` with the caller's pointer (the kernel checks it).
pub fn write_raw(fd: c_int, buf: u64, count: usize) -> c_long {
    // SAFETY: the kernel validates `buf`.
    unsafe { libc::syscall(libc::SYS_write, fd, buf, count) }
}

/// `pwrite64(fd, buf, count, offset)` with a pointer into this process (the kernel checks
/// it: an unmapped source is EFAULT).
pub fn pwrite_raw(fd: c_int, buf: u64, count: usize, offset: u64) -> Result<usize, i32> {
    // SAFETY: the kernel validates `buf`.
    let rc = unsafe { libc::syscall(libc::SYS_pwrite64, fd, buf, count, offset) };
    check(rc).map(|n| n as usize)
}

/// `pread64(fd, buf, count, offset)` with the caller's pointer and the kernel's result
/// convention (the kernel checks the pointer).
pub fn pread_syscall(fd: c_int, buf: u64, count: usize, offset: i64) -> c_long {
    // SAFETY: the kernel validates `buf`; a bad pointer is EFAULT, not a fault here.
    unsafe { libc::syscall(libc::SYS_pread64, fd, buf, count, offset) }
}

/// `pwrite64(fd, buf, count, offset)` with the caller's pointer and the kernel's result
/// convention.
pub fn pwrite_syscall(fd: c_int, buf: u64, count: usize, offset: i64) -> c_long {
    // SAFETY: the kernel validates `buf`.
    unsafe { libc::syscall(libc::SYS_pwrite64, fd, buf, count, offset) }
}

/// `ioctl(fd, request, arg)`.
pub fn ioctl_raw(fd: c_int, request: libc::c_ulong, arg: u64) -> c_long {
    // SAFETY: the kernel validates `arg` for the request.
    unsafe { libc::syscall(libc::SYS_ioctl, fd, request, arg) }
}

/// `fcntl(fd, cmd, arg)`.
pub fn fcntl(fd: c_int, cmd: c_int, arg: libc::c_ulong) -> Result<c_int, i32> {
    // SAFETY: the commands the shim issues take integers; for the caller's pass-through
    // commands the kernel validates any pointer in `arg`.
    check(unsafe { libc::syscall(libc::SYS_fcntl, fd, cmd, arg) }).map(|v| v as c_int)
}

/// `fcntl` with the caller's raw result convention (-1 and errno).
pub fn fcntl_raw(fd: c_int, cmd: c_int, arg: libc::c_ulong) -> c_long {
    // SAFETY: as for `fcntl`.
    unsafe { libc::syscall(libc::SYS_fcntl, fd, cmd, arg) }
}

/// `dup(fd)`.
pub fn dup_raw(fd: c_int) -> c_long {
    // SAFETY: no memory is passed.
    unsafe { libc::syscall(libc::SYS_dup, fd) }
}

/// `dup3(old, new, flags)`.
pub fn dup3_raw(old: c_int, new: c_int, flags: c_int) -> c_long {
    // SAFETY: no memory is passed.
    unsafe { libc::syscall(libc::SYS_dup3, old, new, flags) }
}

/// `ppoll(fds, nfds, timeout, sigmask)` with the caller's pointers, as addresses (the kernel
/// checks them).
pub fn ppoll_raw(fds: u64, nfds: libc::nfds_t, timeout: u64, sigmask: u64) -> c_long {
    // SAFETY: the kernel validates every pointer; the sigset size is the kernel's (8 bytes).
    unsafe { libc::syscall(libc::SYS_ppoll, fds, nfds, timeout, sigmask, 8usize) }
}

/// `fstat(fd)`: the (device, inode) pair that names the open file.
pub fn file_id(fd: c_int) -> Result<(u64, u64), i32> {
    let st = fstat(fd)?;
    Ok((st.st_dev, st.st_ino))
}

/// `fstat(fd)`.
pub fn fstat(fd: c_int) -> Result<libc::stat, i32> {
    // SAFETY: `stat` is plain data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable `struct stat` for the duration of the call (libc's
    // fstat is not interposed, and picks the right system call for the architecture).
    let rc = unsafe { libc::fstat(fd, &mut st) };
    check(c_long::from(rc)).map(|_| st)
}

/// `socketpair(AF_UNIX, SOCK_STREAM | extra, 0)`.
pub fn socketpair(extra: c_int) -> Result<[c_int; 2], i32> {
    let mut fds = [-1 as c_int; 2];
    // SAFETY: `fds` has room for the two descriptors the kernel writes.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_socketpair,
            libc::AF_UNIX,
            libc::SOCK_STREAM | extra,
            0,
            fds.as_mut_ptr(),
        )
    };
    check(rc).map(|_| fds)
}

/// Sends one byte on `fd` without blocking or raising SIGPIPE; errors are ignored (a full
/// buffer already signals readability, a closed peer has no reader left).
pub fn send_byte(fd: c_int) {
    let byte = 1u8;
    // SAFETY: one readable byte is passed; no address is given.
    unsafe {
        libc::syscall(
            libc::SYS_sendto,
            fd,
            &byte as *const u8,
            1usize,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            std::ptr::null::<c_void>(),
            0,
        );
    }
}

/// Makes socket `fd` stop polling writable: its send buffer shrunk to the kernel's minimum,
/// then filled with bytes nobody reads (a stream socket is writable while its unread sent
/// bytes stay below a quarter of the buffer, `unix_writable()`). Errors are ignored: the
/// socket then only polls writable as before.
pub fn fill_send_buffer(fd: c_int) {
    let zero: c_int = 0;
    // SAFETY: the option value is a readable `int` of the length given.
    unsafe {
        libc::syscall(
            libc::SYS_setsockopt,
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            &zero as *const c_int,
            size_of::<c_int>(),
        );
    }
    let junk = [0u8; 4096];
    // Bounded: the minimum buffer is a few KiB; a kernel that kept accepting is given up on.
    for _ in 0..1024 {
        // SAFETY: `junk` is readable for its length; no address is given.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_sendto,
                fd,
                junk.as_ptr(),
                junk.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                std::ptr::null::<c_void>(),
                0,
            )
        };
        if rc <= 0 {
            break;
        }
    }
}

/// Receives and discards whatever is queued on `fd`, without blocking.
pub fn drain(fd: c_int) {
    let mut buf = [0u8; 64];
    loop {
        // SAFETY: `buf` is writable for its length; no address is asked for.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_recvfrom,
                fd,
                buf.as_mut_ptr(),
                buf.len(),
                libc::MSG_DONTWAIT,
                std::ptr::null_mut::<c_void>(),
                std::ptr::null_mut::<c_void>(),
            )
        };
        if rc <= 0 {
            break;
        }
    }
}

/// Whether the peer of socket `fd` has gone: every descriptor of the other end is closed
/// (`POLLHUP`). This is how the shim learns that the last descriptor of one of its files —
/// however it was duplicated, inherited or passed — is closed.
pub fn peer_gone(fd: c_int) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    };
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let rc = ppoll_raw(
        &mut pfd as *mut libc::pollfd as u64,
        1,
        &zero as *const libc::timespec as u64,
        0,
    );
    rc > 0 && pfd.revents & (libc::POLLHUP | libc::POLLNVAL) != 0
}

/// `memfd_create(name, flags)`.
pub fn memfd_create(name: &CStr, flags: libc::c_uint) -> Result<c_int, i32> {
    // SAFETY: `name` is NUL-terminated and outlives the call.
    check(unsafe { libc::syscall(libc::SYS_memfd_create, name.as_ptr(), flags) })
        .map(|fd| fd as c_int)
}

/// `ftruncate(fd, len)`.
pub fn ftruncate(fd: c_int, len: u64) -> Result<(), i32> {
    // SAFETY: no memory is passed.
    check(unsafe { libc::syscall(libc::SYS_ftruncate, fd, len) }).map(drop)
}

/// `mmap(addr, len, prot, flags, fd, 0)` returning the address.
pub fn mmap(addr: u64, len: u64, prot: c_int, flags: c_int, fd: c_int) -> Result<u64, i32> {
    // SAFETY: the shim only maps with MAP_FIXED over ranges the program already had mapped
    // and handed to the IOMMU (the documented move onto a memfd, same contents and
    // protection), or lets the kernel choose the address.
    let ptr = unsafe { libc::mmap(addr as *mut c_void, len as usize, prot, flags, fd, 0) };
    if ptr == libc::MAP_FAILED {
        Err(errno())
    } else {
        Ok(ptr as u64)
    }
}

/// `getrlimit(RLIMIT_MEMLOCK)` in pages (`None`: unlimited).
pub fn memlock_limit_pages() -> Option<u64> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid, writable `struct rlimit`.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut rl) };
    if rc != 0 || rl.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    Some(rl.rlim_cur / 4096)
}

const PAGE: u64 = 4096;

/// Remote iovecs per `process_vm_readv` / `writev` call, kept on the stack: the transfers
/// run on paths that must not allocate (every `open` peeks at its path through one).
const IOVS: usize = 16;

/// Which way [`vm_transfer`] copies.
#[derive(Clone, Copy)]
enum Dir {
    /// From this process's memory at the address into the buffer.
    Read,
    /// From the buffer to this process's memory at the address.
    Write,
}

/// Copies between `local` and this process's memory at `addr` with `process_vm_readv` /
/// `process_vm_writev` on its own pid, so a bad address is an error rather than a crash.
/// The remote side is split at page boundaries (the kernel never splits one iovec, so a
/// partial transfer then stops exactly at the first bad page). Returns the bytes copied: the
/// prefix before the first page that cannot be reached. No heap allocation.
fn vm_transfer(dir: Dir, addr: u64, local: *mut u8, len: usize) -> usize {
    if addr.checked_add(len as u64).is_none() {
        return 0;
    }
    let empty = libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    };
    let mut done = 0;
    while done < len {
        let mut remote = [empty; IOVS];
        let mut count = 0;
        let mut want = 0;
        while count < IOVS && done + want < len {
            let at = addr + (done + want) as u64;
            let n = ((PAGE - at % PAGE) as usize).min(len - done - want);
            remote[count] = libc::iovec {
                iov_base: at as *mut c_void,
                iov_len: n,
            };
            count += 1;
            want += n;
        }
        let here = libc::iovec {
            // SAFETY: `done < len`, so the offset stays inside the caller's buffer.
            iov_base: unsafe { local.add(done) }.cast(),
            iov_len: want,
        };
        // SAFETY: `here` covers `want` bytes of the caller's buffer, which the kernel writes
        // (Read, the buffer is writable) or only reads (Write); the remote iovecs are checked
        // by the kernel against this process's mappings.
        let rc = unsafe {
            match dir {
                Dir::Read => libc::process_vm_readv(
                    libc::getpid(),
                    &here,
                    1,
                    remote.as_ptr(),
                    count as libc::c_ulong,
                    0,
                ),
                Dir::Write => libc::process_vm_writev(
                    libc::getpid(),
                    &here,
                    1,
                    remote.as_ptr(),
                    count as libc::c_ulong,
                    0,
                ),
            }
        };
        if rc < 0 {
            return done;
        }
        done += rc as usize;
        if rc as usize != want {
            return done;
        }
    }
    done
}

/// Reads this process's memory at `addr` into `buf` without trusting the address. Returns
/// the bytes read: the prefix before the first page that cannot be read.
pub fn vm_read_prefix(addr: u64, buf: &mut [u8]) -> usize {
    vm_transfer(Dir::Read, addr, buf.as_mut_ptr(), buf.len())
}

/// Writes `buf` to this process's memory at `addr`. Returns the bytes written (a prefix, as
/// for [`vm_read_prefix`]).
pub fn vm_write_prefix(addr: u64, buf: &[u8]) -> usize {
    // The buffer is only read by `process_vm_writev`, never written through this pointer.
    vm_transfer(Dir::Write, addr, buf.as_ptr().cast_mut(), buf.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stop_at_the_first_bad_page() {
        let len = 2 * PAGE as usize;
        let base = mmap(
            0,
            2 * PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
        )
        .unwrap();
        // SAFETY: the second page of the fresh mapping is ours to protect.
        unsafe { libc::mprotect((base + PAGE) as *mut c_void, PAGE as usize, libc::PROT_NONE) };
        let mut buf = vec![0u8; len];
        assert_eq!(vm_read_prefix(base + PAGE - 8, &mut buf[..16]), 8);
        assert_eq!(vm_write_prefix(base, &[7u8; 16]), 16);
        assert_eq!(vm_read_prefix(base, &mut buf[..16]), 16);
        assert_eq!(&buf[..16], &[7u8; 16]);
        assert_eq!(vm_read_prefix(u64::MAX - 3, &mut buf[..8]), 0);
        assert_eq!(vm_read_prefix(0, &mut buf[..8]), 0);
    }

    #[test]
    fn transfers_longer_than_one_call_stop_at_the_first_bad_page() {
        let pages = 2 * IOVS as u64 + 4;
        let base = mmap(
            0,
            pages * PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
        )
        .unwrap();
        let bad = pages - 2;
        // SAFETY: one page of the fresh mapping is ours to protect.
        unsafe {
            libc::mprotect(
                (base + bad * PAGE) as *mut c_void,
                PAGE as usize,
                libc::PROT_NONE,
            )
        };
        let len = (pages * PAGE) as usize;
        let pattern: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        // Unaligned start: the first and last pieces are partial pages.
        let start = base + 100;
        let reachable = (bad * PAGE - 100) as usize;
        assert_eq!(vm_write_prefix(start, &pattern[..len - 100]), reachable);
        let mut back = vec![0u8; len - 100];
        assert_eq!(vm_read_prefix(start, &mut back), reachable);
        assert_eq!(back[..reachable], pattern[..reachable]);
        assert_eq!(vm_read_prefix(start, &mut []), 0);
        // SAFETY: the mapping is ours and nothing refers to it any more.
        unsafe { libc::munmap(base as *mut c_void, len) };
    }
}
