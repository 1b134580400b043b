//! vEVENTQ descriptors: after `IOMMU_VEVENTQ_ALLOC`, a real descriptor for the context's
//! vEVENTQ file (Linux's `[iommufd-viommu-event]` anonymous file, installed `O_CLOEXEC`),
//! served as the fault queue's is ([`crate::shim`]): `read` returns whole events
//! (`iommufd_veventq_fops_read()`), the kernel's own `poll`/`select`/`epoll` see the
//! descriptor readable exactly while something is queued (a byte on the socket pair, sent by
//! the queue's waker) and never writable (its send buffer is kept full), `write` is `EINVAL`
//! (no write operation), `pread`/`pwrite` `ESPIPE`, `ioctl` `ENOTTY`, and the last `close`
//! releases the file, after which the queue may be destroyed.

use std::sync::Arc;

use libc::c_int;
use vsva_iommufd::abi::{Errno, IommuDestroy};
use vsva_iommufd::{Iommufd, PollFlags, VeventqFile};

use crate::files::{self, Kind, OpenFile, VeventqEntry};
use crate::sys;

/// Largest vEVENTQ read served in one call; a longer read returns fewer bytes, as reads may.
pub const VEVENTQ_IO_CAP: usize = 1 << 20;

/// After `IOMMU_VEVENTQ_ALLOC`: a real descriptor for the context's vEVENTQ file, written into
/// `out_veventq_fd`. If none can be made, the queue is undone and the call fails as
/// `get_unused_fd_flags()` would.
///
/// # Errors
/// `EFAULT` for an argument too short to hold the outputs; the descriptor's errno.
pub fn give_fd(ictx: &Arc<Iommufd>, bytes: &mut [u8]) -> Result<(), Errno> {
    // struct iommu_veventq_alloc: out_veventq_id @ 20, out_veventq_fd @ 24.
    const ID: std::ops::Range<usize> = 20..24;
    const FD: std::ops::Range<usize> = 24..28;
    let read = |range: std::ops::Range<usize>, bytes: &[u8]| {
        bytes
            .get(range)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    let (Some(id), Some(number)) = (read(ID, bytes), read(FD, bytes)) else {
        return Err(Errno::EFAULT);
    };
    let undo = |errno| {
        let _ = ictx.close_veventq_file(number);
        let _ = ictx.destroy(&IommuDestroy { size: 8, id });
        Err(Errno(errno))
    };
    let file = match ictx.veventq_file(number) {
        Ok(file) => file,
        Err(errno) => return undo(errno.0),
    };
    let installed = files::install(
        |peer| {
            let waker_peer = peer.clone();
            file.set_waker(Some(Arc::new(move || sys::send_byte(waker_peer.0))));
            if file.poll().contains(PollFlags::IN) {
                sys::send_byte(peer.0);
            }
            Kind::Veventq(VeventqEntry {
                ictx: ictx.clone(),
                number,
                file: file.clone(),
            })
        },
        true,
        false,
    );
    match installed {
        Ok(fd) => {
            // A vEVENTQ never polls writable (`iommufd_eventq_fops_poll()` sets EPOLLOUT for
            // fault queues only); a socket would.
            sys::fill_send_buffer(fd);
            bytes[FD].copy_from_slice(&fd.to_le_bytes());
            Ok(())
        }
        Err(errno) => {
            file.set_waker(None);
            undo(errno)
        }
    }
}

/// `read(fd, buf, count)` of a vEVENTQ descriptor, after `access_ok`. The entries are
/// consumed once read, so the buffer is made sure of first by rewriting its own bytes; as on
/// Linux, a bad buffer with nothing queued reads 0.
///
/// # Errors
/// `EFAULT` for a buffer that cannot take the bytes while something is queued.
pub fn read(
    file: &OpenFile,
    entry: &VeventqEntry,
    fd: c_int,
    buf: u64,
    count: usize,
) -> Result<usize, Errno> {
    let n = count.min(VEVENTQ_IO_CAP);
    let mut out = vec![0u8; n];
    if sys::vm_read_prefix(buf, &mut out) < n || sys::vm_write_prefix(buf, &out) < n {
        if !entry.file.poll().contains(PollFlags::IN) {
            return Ok(0);
        }
        return Err(Errno::EFAULT);
    }
    let done = entry.file.read(&mut out, 0)?;
    if sys::vm_write_prefix(buf, &out[..done]) < done {
        return Err(Errno::EFAULT);
    }
    rearm(file, &entry.file, fd);
    Ok(done)
}

/// Leaves the program's end readable exactly while an entry waits.
fn rearm(file: &OpenFile, veventq: &VeventqFile, fd: c_int) {
    sys::drain(fd);
    if veventq.poll().contains(PollFlags::IN) {
        sys::send_byte(file.peer.0);
    }
}
