//! Queue descriptors: after `IOMMU_FAULT_QUEUE_ALLOC` or `IOMMU_VEVENTQ_ALLOC`, a real
//! descriptor for the context's queue file (Linux's `[iommufd-pgfault]` or
//! `[iommufd-viommu-event]` anonymous file, installed `O_CLOEXEC`). The kernel's own
//! `poll`/`select`/`epoll` see it readable exactly while something is queued (a byte on the
//! socket pair, sent by the queue's waker); a fault queue is always writable, a vEVENTQ never
//! (its send buffer is kept full: `iommufd_eventq_fops_poll()` sets `EPOLLOUT` for fault
//! queues only). `read` returns whole records (`iommufd_fault_fops_read()`,
//! `iommufd_veventq_fops_read()`); `write` answers a fault queue ([`crate::shim::write`]) and
//! is `EINVAL` on a vEVENTQ; `pread`/`pwrite` are `ESPIPE`, `ioctl` `ENOTTY`; the last
//! `close` releases the file, after which the queue may be destroyed.

use std::sync::Arc;

use libc::c_int;
use vsva_iommufd::abi::{Errno, IommuDestroy};
use vsva_iommufd::{FaultFile, Iommufd, PollFlags, VeventqFile, Waker};

use crate::files::{self, Kind, OpenFile, QueueEntry};
use crate::sys;

/// A queue file of the context that a descriptor serves.
pub trait QueueFile: Sized {
    /// What it is, for logs.
    const NAME: &'static str;
    /// Whether its descriptor polls writable.
    const WRITABLE: bool;
    /// Byte offsets of the object ID and the file number in the alloc command.
    const OUT_ID_FD: [usize; 2];
    /// The file open under `number` ([`Iommufd::fault_file`], [`Iommufd::veventq_file`]).
    ///
    /// # Errors
    /// `EBADF` if none is.
    fn open(ictx: &Iommufd, number: u32) -> Result<Arc<Self>, Errno>;
    /// Closes it ([`Iommufd::close_fault_file`], [`Iommufd::close_veventq_file`]).
    ///
    /// # Errors
    /// `EBADF` if none is open under `number`.
    fn close(ictx: &Iommufd, number: u32) -> Result<(), Errno>;
    /// Its `poll()` events.
    fn poll(&self) -> PollFlags;
    /// Sets what to call when an entry is queued.
    fn set_waker(&self, waker: Option<Waker>);
    /// Its `read()` at position 0.
    ///
    /// # Errors
    /// The file's.
    fn read(&self, buf: &mut [u8]) -> Result<usize, Errno>;
    /// The shim file serving it.
    fn kind(entry: QueueEntry<Self>) -> Kind;
}

impl QueueFile for FaultFile {
    const NAME: &'static str = "fault";
    const WRITABLE: bool = true;
    // struct iommu_fault_alloc: out_fault_id @ 8, out_fault_fd @ 12.
    const OUT_ID_FD: [usize; 2] = [8, 12];
    fn open(ictx: &Iommufd, number: u32) -> Result<Arc<Self>, Errno> {
        ictx.fault_file(number)
    }
    fn close(ictx: &Iommufd, number: u32) -> Result<(), Errno> {
        ictx.close_fault_file(number)
    }
    fn poll(&self) -> PollFlags {
        FaultFile::poll(self)
    }
    fn set_waker(&self, waker: Option<Waker>) {
        FaultFile::set_waker(self, waker);
    }
    fn read(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        FaultFile::read(self, buf, 0)
    }
    fn kind(entry: QueueEntry<Self>) -> Kind {
        Kind::Fault(entry)
    }
}

impl QueueFile for VeventqFile {
    const NAME: &'static str = "vEVENTQ";
    const WRITABLE: bool = false;
    // struct iommu_veventq_alloc: out_veventq_id @ 20, out_veventq_fd @ 24.
    const OUT_ID_FD: [usize; 2] = [20, 24];
    fn open(ictx: &Iommufd, number: u32) -> Result<Arc<Self>, Errno> {
        ictx.veventq_file(number)
    }
    fn close(ictx: &Iommufd, number: u32) -> Result<(), Errno> {
        ictx.close_veventq_file(number)
    }
    fn poll(&self) -> PollFlags {
        VeventqFile::poll(self)
    }
    fn set_waker(&self, waker: Option<Waker>) {
        VeventqFile::set_waker(self, waker);
    }
    fn read(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        VeventqFile::read(self, buf, 0)
    }
    fn kind(entry: QueueEntry<Self>) -> Kind {
        Kind::Veventq(entry)
    }
}

/// After the alloc command: a real descriptor for the context's new queue file, written
/// over the file number in the command's bytes. If none can be made, the queue is undone
/// and the call fails as `get_unused_fd_flags()` would.
///
/// # Errors
/// `EFAULT` for an argument too short to hold the outputs; the descriptor's errno.
pub fn give_fd<F: QueueFile>(ictx: &Arc<Iommufd>, bytes: &mut [u8]) -> Result<(), Errno> {
    let [id_at, fd_at] = F::OUT_ID_FD;
    let read = |at: usize| {
        bytes
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    let (Some(id), Some(number)) = (read(id_at), read(fd_at)) else {
        return Err(Errno::EFAULT);
    };
    let undo = |errno| {
        let _ = F::close(ictx, number);
        let _ = ictx.destroy(&IommuDestroy { size: 8, id });
        Err(Errno(errno))
    };
    let file = match F::open(ictx, number) {
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
            F::kind(QueueEntry {
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
            if !F::WRITABLE {
                // A socket would poll writable.
                sys::fill_send_buffer(fd);
            }
            bytes[fd_at..fd_at + 4].copy_from_slice(&fd.to_le_bytes());
            Ok(())
        }
        Err(errno) => {
            file.set_waker(None);
            undo(errno)
        }
    }
}

/// `read(fd, buf, n)` of a queue descriptor, after `access_ok` and the file's own count
/// checks. The entries are consumed once read, so the buffer is made sure of first by
/// rewriting its own bytes; as on Linux, which touches the buffer only to copy an entry out,
/// a bad buffer with nothing queued reads 0.
///
/// # Errors
/// `EFAULT` for a buffer that cannot take the bytes while something is queued; the file's
/// read errors.
pub fn read<F: QueueFile>(
    file: &OpenFile,
    entry: &QueueEntry<F>,
    fd: c_int,
    buf: u64,
    n: usize,
) -> Result<usize, Errno> {
    let mut out = vec![0u8; n];
    if sys::vm_read_prefix(buf, &mut out) < n || sys::vm_write_prefix(buf, &out) < n {
        if !entry.file.poll().contains(PollFlags::IN) {
            return Ok(0);
        }
        return Err(Errno::EFAULT);
    }
    let result = entry.file.read(&mut out);
    if let Ok(done) = result {
        if sys::vm_write_prefix(buf, &out[..done]) < done {
            return Err(Errno::EFAULT);
        }
    }
    // Leaves the program's end readable exactly while an entry waits: drain, then signal
    // again if the queue still holds something (one queued meanwhile signals by itself).
    sys::drain(fd);
    if entry.file.poll().contains(PollFlags::IN) {
        sys::send_byte(file.peer.0);
    }
    result
}

impl<F: QueueFile> QueueEntry<F> {
    /// The file's `release`: no more wake-ups, and the context closes its file.
    pub(crate) fn release(&self) {
        self.file.set_waker(None);
        if let Err(errno) = F::close(&self.ictx, self.number) {
            tracing::error!(%errno, "closing a {} file", F::NAME);
        }
    }
}
