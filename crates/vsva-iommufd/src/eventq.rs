//! What fault queues ([`fault`](crate::fault)) and vEVENTQs ([`veventq`](crate::veventq))
//! share, as Linux's `struct iommufd_eventq` (`eventq.c`): the reader's waker, `poll`, and
//! the context's table of open queue files, numbered in one space.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bitflags::bitflags;

use crate::abi::Errno;
use crate::ctx::{Iommufd, State};
use crate::fault::FaultFile;
use crate::veventq::VeventqFile;

bitflags! {
    /// `poll()` events of a queue file (`include/uapi/linux/eventpoll.h`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct PollFlags: u32 {
        /// `EPOLLIN`: something can be read.
        const IN = 0x001;
        /// `EPOLLOUT`: responses can be written (fault queues only, always).
        const OUT = 0x004;
        /// `EPOLLRDNORM`: as `EPOLLIN`.
        const RDNORM = 0x040;
    }
}

/// Something to call when an entry is queued.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// A queue's waker (Linux's `wait_queue` of the eventq).
#[derive(Default)]
pub(crate) struct WakerSlot(Mutex<Option<Waker>>);

impl WakerSlot {
    /// Sets the waker; `None` removes it.
    pub(crate) fn set(&self, waker: Option<Waker>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = waker;
    }

    /// Calls the waker, if any, without holding the slot's lock
    /// (`wake_up_interruptible()`).
    pub(crate) fn wake(&self) {
        let waker = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(wake) = waker {
            wake();
        }
    }
}

/// `iommufd_eventq_fops_poll()`: `OUT` for a fault queue (`writable`), `IN | RDNORM` while
/// anything is `queued`.
pub(crate) fn poll(writable: bool, queued: bool) -> PollFlags {
    let mut flags = PollFlags::empty();
    flags.set(PollFlags::OUT, writable);
    flags.set(PollFlags::IN | PollFlags::RDNORM, queued);
    flags
}

/// An open queue file kept in the context under a file number.
pub(crate) trait NumberedFile: Sized {
    /// The context's open files of this kind, by number.
    fn table(state: &mut State) -> &mut BTreeMap<u32, Arc<Self>>;
}

impl NumberedFile for FaultFile {
    fn table(state: &mut State) -> &mut BTreeMap<u32, Arc<Self>> {
        &mut state.fault_files
    }
}

impl NumberedFile for VeventqFile {
    fn table(state: &mut State) -> &mut BTreeMap<u32, Arc<Self>> {
        &mut state.veventq_files
    }
}

impl Iommufd {
    /// Keeps `file` under the lowest free file number, and returns the number.
    ///
    /// # Errors
    /// `ENOMEM` when [`vsva_mem::fail_nth`] fails the file's allocation
    /// (`anon_inode_getfile()`); `EMFILE` when no number is free.
    pub(crate) fn install_file<F: NumberedFile>(&self, file: Arc<F>) -> Result<u32, Errno> {
        vsva_mem::fail_nth::check()?;
        let mut state = self.state();
        let fd = state.free_file_number()?;
        F::table(&mut state).insert(fd, file);
        Ok(fd)
    }

    /// The file of this kind open under `fd`.
    ///
    /// # Errors
    /// `EBADF` if none is.
    pub(crate) fn open_file<F: NumberedFile>(&self, fd: u32) -> Result<Arc<F>, Errno> {
        F::table(&mut self.state())
            .get(&fd)
            .cloned()
            .ok_or(Errno::EBADF)
    }

    /// `iommufd_eventq_fops_release()`: forgets the file of this kind open under `fd`; the
    /// queue may go once the last reference to the file is gone too.
    ///
    /// # Errors
    /// `EBADF` if none is open under `fd`.
    pub(crate) fn close_file<F: NumberedFile>(&self, fd: u32) -> Result<(), Errno> {
        let file = F::table(&mut self.state())
            .remove(&fd)
            .ok_or(Errno::EBADF)?;
        drop(file);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_fault_queue_polls_writable() {
        assert_eq!(poll(true, false), PollFlags::OUT);
        assert_eq!(poll(true, true), PollFlags::all());
        assert_eq!(poll(false, false), PollFlags::empty());
        assert_eq!(poll(false, true), PollFlags::IN | PollFlags::RDNORM);
    }
}
