//! The libc functions the shim replaces under `LD_PRELOAD`.
//!
//! Each one handles the shim's own files ([`crate::shim`]) and passes every other call
//! straight to the kernel ([`crate::sys`]). Panics never cross into C: each entry point
//! catches them and fails with `EIO`.
//!
//! `open`, `openat`, `ioctl` and `fcntl` are variadic in C. Stable Rust cannot define a
//! variadic function, so they are defined with their optional argument as a fixed one: on
//! the x86-64 System V and AArch64 Linux calling conventions a variadic integer or pointer
//! argument travels in the same register as a fixed one, so the value is the caller's when
//! it passed one and is ignored (as the kernel ignores it) when it did not.

use std::ffi::CStr;
use std::panic::{AssertUnwindSafe, catch_unwind};

use libc::{c_char, c_int, c_long, c_ulong, c_void, mode_t, nfds_t, off_t, pollfd, size_t};

use crate::files;
use crate::shim;
use crate::sys::{self, set_errno};

/// Runs `f`, turning a panic into `fallback` with `errno` `EIO`.
fn guarded<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        set_errno(libc::EIO);
        fallback
    })
}

/// A kernel-convention result (`-1` and `errno` set by the raw call) as `c_int`.
fn ret_int(rc: c_long) -> c_int {
    rc as c_int
}

/// `Ok(value)` or `-1` with `errno`.
fn ret<T: Into<i64>>(result: Result<T, i32>) -> i64 {
    match result {
        Ok(value) => value.into(),
        Err(errno) => {
            set_errno(errno);
            -1
        }
    }
}

fn open_common(dirfd: c_int, path: *const c_char, flags: c_int, mode: mode_t) -> c_int {
    guarded(-1, || {
        if !path.is_null() {
            let mut buf = [0u8; 64];
            // Only a path as short as the shim's can be one of them; read it without trusting
            // the pointer.
            let got = sys::vm_read_prefix(path as u64, &mut buf);
            if let Some(nul) = buf[..got].iter().position(|&b| b == 0) {
                let name = CStr::from_bytes_with_nul(&buf[..=nul]).unwrap_or(c"");
                if let Some(result) = shim::open(name, flags) {
                    return ret(result) as c_int;
                }
            }
        }
        ret_int(sys::openat_raw(dirfd, path as u64, flags, mode))
    })
}

/// `open(2)`.
///
/// # Safety
/// As the C function: `path` is a string or invalid (then `EFAULT`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn open(path: *const c_char, flags: c_int, mode: mode_t) -> c_int {
    open_common(libc::AT_FDCWD, path, flags, mode)
}

/// `open64(2)`, the same call on 64-bit systems.
///
/// # Safety
/// As [`open`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn open64(path: *const c_char, flags: c_int, mode: mode_t) -> c_int {
    open_common(libc::AT_FDCWD, path, flags, mode)
}

/// `openat(2)`.
///
/// # Safety
/// As [`open`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn openat(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: mode_t,
) -> c_int {
    open_common(dirfd, path, flags, mode)
}

/// `openat64(2)`.
///
/// # Safety
/// As [`open`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn openat64(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: mode_t,
) -> c_int {
    open_common(dirfd, path, flags, mode)
}

/// `__open_2`, what `open` becomes under `_FORTIFY_SOURCE` when the flags are not constant.
///
/// # Safety
/// As [`open`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __open_2(path: *const c_char, flags: c_int) -> c_int {
    open_common(libc::AT_FDCWD, path, flags, 0)
}

/// `__open64_2`.
///
/// # Safety
/// As [`open`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __open64_2(path: *const c_char, flags: c_int) -> c_int {
    open_common(libc::AT_FDCWD, path, flags, 0)
}

/// `__openat_2`.
///
/// # Safety
/// As [`open`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __openat_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    open_common(dirfd, path, flags, 0)
}

/// `__openat64_2`.
///
/// # Safety
/// As [`open`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __openat64_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    open_common(dirfd, path, flags, 0)
}

/// `close(2)`: a shim file is released when the last descriptor of it is closed.
///
/// # Safety
/// As the C function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    guarded(-1, || {
        let key = files::key_of_marked(fd);
        if key.is_some() {
            files::unmark(fd);
        }
        let rc = sys::close(fd);
        files::release_if_gone(key);
        ret(rc.map(|()| 0)) as c_int
    })
}

/// `ioctl(2)`.
///
/// # Safety
/// As the C function; the argument of a shim file's ioctl is read and written with
/// `process_vm_readv` / `process_vm_writev`, so a bad pointer is `EFAULT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ioctl(fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    guarded(-1, || match files::lookup(fd) {
        None => ret_int(sys::ioctl_raw(fd, request, arg as u64)),
        Some(file) => {
            let result = shim::ioctl(&file, request, arg as u64);
            ret(result.map_err(|errno| errno.0)) as c_int
        }
    })
}

/// `read(2)`.
///
/// # Safety
/// As the C function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, count: size_t) -> isize {
    guarded(-1, || match files::lookup(fd) {
        None => sys::read_raw(fd, buf as u64, count) as isize,
        Some(file) => {
            let result = shim::read(&file, fd, buf as u64, count);
            ret(result.map(|n| n as i64).map_err(|errno| errno.0)) as isize
        }
    })
}

/// `__read_chk`, what `read` becomes under `_FORTIFY_SOURCE` when the buffer's size is known
/// but the count is not constant: a count larger than the buffer aborts, as glibc's does.
/// glibc's own reads through its internal `__read`, past the shim, so without this a shim
/// file would be read as the socket behind it.
///
/// # Safety
/// As [`read`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __read_chk(
    fd: c_int,
    buf: *mut c_void,
    count: size_t,
    buflen: size_t,
) -> isize {
    if count > buflen {
        // SAFETY: glibc's own handler of the same check; it does not return.
        unsafe { __chk_fail() }
    }
    // SAFETY: the same contract.
    unsafe { read(fd, buf, count) }
}

/// `write(2)`.
///
/// # Safety
/// As the C function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, count: size_t) -> isize {
    guarded(-1, || match files::lookup(fd) {
        None => sys::write_raw(fd, buf as u64, count) as isize,
        Some(file) => {
            let result = shim::write(&file, buf as u64, count);
            ret(result.map(|n| n as i64).map_err(|errno| errno.0)) as isize
        }
    })
}

fn pread_common(fd: c_int, buf: *mut c_void, count: size_t, offset: off_t) -> isize {
    guarded(-1, || match files::lookup(fd) {
        None => sys::pread_syscall(fd, buf as u64, count, offset) as isize,
        Some(file) => {
            let result = shim::pread(&file, buf as u64, count, offset);
            ret(result.map(|n| n as i64).map_err(|errno| errno.0)) as isize
        }
    })
}

fn pwrite_common(fd: c_int, buf: *const c_void, count: size_t, offset: off_t) -> isize {
    guarded(-1, || match files::lookup(fd) {
        None => sys::pwrite_syscall(fd, buf as u64, count, offset) as isize,
        Some(file) => {
            let result = shim::pwrite(&file, buf as u64, count, offset);
            ret(result.map(|n| n as i64).map_err(|errno| errno.0)) as isize
        }
    })
}

/// `pread(2)`: on a VFIO device, a read of the region the offset names.
///
/// # Safety
/// As the C function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pread(fd: c_int, buf: *mut c_void, count: size_t, offset: off_t) -> isize {
    pread_common(fd, buf, count, offset)
}

/// `pread64`, the same call on 64-bit systems.
///
/// # Safety
/// As the C function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pread64(
    fd: c_int,
    buf: *mut c_void,
    count: size_t,
    offset: off_t,
) -> isize {
    pread_common(fd, buf, count, offset)
}

unsafe extern "C" {
    /// glibc's report of a fortified call's buffer overflow; it aborts the program.
    fn __chk_fail() -> !;
}

/// `__pread_chk`, what `pread` becomes under `_FORTIFY_SOURCE` when the buffer's size is
/// known but the count is not constant: a count larger than the buffer aborts, as glibc's
/// does.
///
/// # Safety
/// As the C function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __pread_chk(
    fd: c_int,
    buf: *mut c_void,
    count: size_t,
    offset: off_t,
    buflen: size_t,
) -> isize {
    if count > buflen {
        // SAFETY: glibc's own handler of the same check; it does not return.
        unsafe { __chk_fail() }
    }
    pread_common(fd, buf, count, offset)
}

/// `__pread64_chk`.
///
/// # Safety
/// As [`__pread_chk`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __pread64_chk(
    fd: c_int,
    buf: *mut c_void,
    count: size_t,
    offset: off_t,
    buflen: size_t,
) -> isize {
    // SAFETY: the same contract.
    unsafe { __pread_chk(fd, buf, count, offset, buflen) }
}

/// `pwrite(2)`: on a VFIO device, a write of the region the offset names.
///
/// # Safety
/// As the C function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pwrite(
    fd: c_int,
    buf: *const c_void,
    count: size_t,
    offset: off_t,
) -> isize {
    pwrite_common(fd, buf, count, offset)
}

/// `pwrite64`, the same call on 64-bit systems.
///
/// # Safety
/// As the C function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pwrite64(
    fd: c_int,
    buf: *const c_void,
    count: size_t,
    offset: off_t,
) -> isize {
    pwrite_common(fd, buf, count, offset)
}

/// Marks the result of a duplication of `old` as the shim's when `old` may be.
fn duplicated(old: c_int, rc: c_long) -> c_int {
    if rc >= 0 && files::maybe_ours(old) {
        files::mark(rc as c_int);
    }
    rc as c_int
}

/// `dup(2)`.
///
/// # Safety
/// As the C function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup(old: c_int) -> c_int {
    guarded(-1, || duplicated(old, sys::dup_raw(old)))
}

/// `dup3` and `dup2`: `new` is closed first if open, which may release a shim file.
fn dup_onto(old: c_int, new: c_int, flags: c_int) -> c_int {
    let key = if old != new {
        files::key_of_marked(new)
    } else {
        None
    };
    let rc = if old == new && flags == 0 {
        // dup2(fd, fd): fd if it is open.
        match sys::fcntl(old, libc::F_GETFD, 0) {
            Ok(_) => c_long::from(new),
            Err(errno) => {
                set_errno(errno);
                -1
            }
        }
    } else {
        sys::dup3_raw(old, new, flags)
    };
    if rc >= 0 {
        files::unmark(new);
        files::release_if_gone(key);
    }
    duplicated(old, rc)
}

/// `dup2(2)`.
///
/// # Safety
/// As the C function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    guarded(-1, || dup_onto(old, new, 0))
}

/// `dup3(2)`.
///
/// # Safety
/// As the C function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    guarded(-1, || {
        if old == new {
            set_errno(libc::EINVAL);
            return -1;
        }
        dup_onto(old, new, flags)
    })
}

fn fcntl_common(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    guarded(-1, || {
        let rc = sys::fcntl_raw(fd, cmd, arg);
        if cmd == libc::F_DUPFD || cmd == libc::F_DUPFD_CLOEXEC {
            duplicated(fd, rc)
        } else {
            rc as c_int
        }
    })
}

/// `fcntl(2)`; `F_DUPFD` and `F_DUPFD_CLOEXEC` of a shim file give another descriptor of it.
///
/// # Safety
/// As the C function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    fcntl_common(fd, cmd, arg)
}

/// `fcntl64`, glibc's name for the same call.
///
/// # Safety
/// As [`fcntl`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    fcntl_common(fd, cmd, arg)
}

/// `ppoll` with the shim's files answered by the shim: they are left out of the kernel's
/// poll (a negative descriptor is ignored) and, since they are always ready, the kernel is
/// then only asked what is ready now.
fn poll_common(
    fds: *mut pollfd,
    nfds: nfds_t,
    timeout: *const libc::timespec,
    sigmask: *const libc::sigset_t,
) -> c_int {
    guarded(-1, || {
        // The system call writes the time left back; libc's ppoll does not, so pass a copy.
        let mut copy = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let timeout = if timeout.is_null() {
            timeout
        } else {
            // SAFETY: `copy` is a plain timespec, viewed as its bytes for the copy.
            let view = unsafe {
                std::slice::from_raw_parts_mut(
                    (&mut copy as *mut libc::timespec).cast::<u8>(),
                    size_of::<libc::timespec>(),
                )
            };
            if sys::vm_read_prefix(timeout as u64, view) == view.len() {
                &copy as *const libc::timespec
            } else {
                timeout
            }
        };
        let passthrough = || {
            ret_int(sys::ppoll_raw(
                fds as u64,
                nfds,
                timeout as u64,
                sigmask as u64,
            ))
        };
        if !files::poll_answered() || fds.is_null() || nfds == 0 || nfds > 1 << 20 {
            return passthrough();
        }
        let n = nfds as usize;
        let mut local = vec![
            pollfd {
                fd: -1,
                events: 0,
                revents: 0,
            };
            n
        ];
        let bytes = n * size_of::<pollfd>();
        // SAFETY: `local` is `n` initialised pollfds, viewed as their bytes for the copy.
        let view = unsafe { std::slice::from_raw_parts_mut(local.as_mut_ptr().cast(), bytes) };
        if sys::vm_read_prefix(fds as u64, view) < bytes {
            return passthrough();
        }
        let mut ours = Vec::new();
        for (i, pfd) in local.iter_mut().enumerate() {
            if pfd.fd >= 0 && files::maybe_ours(pfd.fd) {
                if let Some(mask) = shim::poll_mask(pfd.fd) {
                    let events = pfd.events | libc::POLLERR | libc::POLLHUP;
                    ours.push((i, pfd.fd, mask & events));
                    pfd.fd = -1;
                }
            }
        }
        if ours.is_empty() {
            return passthrough();
        }
        let ready = ours.iter().filter(|&&(_, _, mask)| mask != 0).count();
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let wait = if ready > 0 {
            &zero as *const _
        } else {
            timeout
        };
        let rc = sys::ppoll_raw(local.as_mut_ptr() as u64, nfds, wait as u64, sigmask as u64);
        if rc < 0 {
            return ret_int(rc);
        }
        for &(i, fd, mask) in &ours {
            local[i].fd = fd;
            local[i].revents = mask;
        }
        // SAFETY: as above.
        let view = unsafe { std::slice::from_raw_parts(local.as_ptr().cast::<u8>(), bytes) };
        if sys::vm_write_prefix(fds as u64, view) < bytes {
            set_errno(libc::EFAULT);
            return -1;
        }
        (rc as usize + ready) as c_int
    })
}

/// `poll(2)`.
///
/// # Safety
/// As the C function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn poll(fds: *mut pollfd, nfds: nfds_t, timeout: c_int) -> c_int {
    let spec;
    let timeout = if timeout < 0 {
        std::ptr::null()
    } else {
        spec = libc::timespec {
            tv_sec: libc::time_t::from(timeout / 1000),
            tv_nsec: libc::c_long::from(timeout % 1000) * 1_000_000,
        };
        &spec as *const libc::timespec
    };
    poll_common(fds, nfds, timeout, std::ptr::null())
}

/// `__poll_chk`, what `poll` becomes under `_FORTIFY_SOURCE` when the array's size is known
/// but the count is not constant: more entries than the array holds abort, as glibc's
/// check does (glibc's own polls through its internal `__poll`, past the shim).
///
/// # Safety
/// As [`poll`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __poll_chk(
    fds: *mut pollfd,
    nfds: nfds_t,
    timeout: c_int,
    fdslen: size_t,
) -> c_int {
    if (fdslen / size_of::<pollfd>()) < nfds as usize {
        // SAFETY: glibc's own handler of the same check; it does not return.
        unsafe { __chk_fail() }
    }
    // SAFETY: the same contract.
    unsafe { poll(fds, nfds, timeout) }
}

/// `ppoll(2)`.
///
/// # Safety
/// As the C function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ppoll(
    fds: *mut pollfd,
    nfds: nfds_t,
    timeout: *const libc::timespec,
    sigmask: *const libc::sigset_t,
) -> c_int {
    poll_common(fds, nfds, timeout, sigmask)
}

/// `__ppoll_chk`, as [`__poll_chk`] for `ppoll`.
///
/// # Safety
/// As [`ppoll`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __ppoll_chk(
    fds: *mut pollfd,
    nfds: nfds_t,
    timeout: *const libc::timespec,
    sigmask: *const libc::sigset_t,
    fdslen: size_t,
) -> c_int {
    if (fdslen / size_of::<pollfd>()) < nfds as usize {
        // SAFETY: glibc's own handler of the same check; it does not return.
        unsafe { __chk_fail() }
    }
    poll_common(fds, nfds, timeout, sigmask)
}
