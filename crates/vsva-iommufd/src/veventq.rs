//! vIOMMU event queues (Linux `IOMMUFD_OBJ_VEVENTQ`, `struct iommufd_veventq`,
//! `drivers/iommu/iommufd/eventq.c`; delivery is `iommufd_viommu_report_event()` of
//! `driver.c`): how the events a vIOMMU's driver reports for the guest reach the VMM.
//!
//! * `IOMMU_VEVENTQ_ALLOC` ([`Iommufd::veventq_alloc`], `iommufd_veventq_alloc()`) makes a
//!   [`Veventq`] of one `enum iommu_veventq_type` on a vIOMMU — at most one per type — and
//!   opens a [`VeventqFile`] on it. The queue holds its vIOMMU (`IOMMU_DESTROY` of the vIOMMU
//!   is `EBUSY` while it lives); the open file holds the queue.
//! * Delivery: each vDEVICE gives the IOMMU core an event handler for its device
//!   ([`vsva_iommu::Iommu::set_event_handler`], removed with the vDEVICE). The core offers it
//!   each unrecoverable fault of the device before the device's fault handler; the handler
//!   asks the driver for the guest's record ([`vsva_iommu::IommuOps::viommu_event`], Linux
//!   `arm_vmaster_report_event()`, which names the device by its virtual ID) and queues it on
//!   the vIOMMU's queue of that type. With no such record, or no queue of its type (Linux:
//!   `-EOPNOTSUPP`), the fault is not taken and goes on to the fault handler, as an SMMUv3
//!   event Linux cannot report is logged by the host.
//! * Overflow: a queue holds at most `veventq_depth` events. An event reported to a full
//!   queue is dropped, and the queue's single lost-events header
//!   (`IOMMU_VEVENTQ_FLAG_LOST_EVENTS`, no data) is put at its tail with the dropped event's
//!   sequence number — moved there again, with the new number, by each further drop. A real
//!   event queued after it takes its place (`iommufd_vevent_handler()`: the header is only
//!   ever last), so the reader sees the loss as a gap in the sequence numbers instead.
//!   Sequence numbers count every event reported, dropped ones too, in `[0, i32::MAX]`, the
//!   one after `i32::MAX` being 0.
//! * [`VeventqFile::read`] is `iommufd_veventq_fops_read()`: whole events, each an 8-byte
//!   `struct iommufd_vevent_header` then the record; `poll` is readable while anything is
//!   queued (never writable: the file has no write operation, and `write` is `EINVAL`).
//!
//! # Files
//! As for fault queues ([`fault`](crate::fault)): the context keeps the open file under the
//! lowest free number from 3, in the same number space as the fault files, and the
//! `/dev/iommu` shim maps it to a real descriptor ([`Iommufd::veventq_file`],
//! [`Iommufd::close_veventq_file`]). Reads never block.
//!
//! # Locking
//! A vIOMMU's queue table lock (Linux `viommu->veventqs_rwsem`), then a queue's lock; both
//! below every context lock. Neither is held while calling the driver.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use vsva_iommu::{EventHandler, IommuOps, UnrecoverableFault, VirtualEvent};
use zerocopy::IntoBytes;

use crate::abi::{
    Errno, IommuVeventqAlloc, IommufdVeventHeader, VeventqFlags, VeventqType, check_zero,
};
use crate::ctx::Iommufd;
use crate::eventq::{self, PollFlags, Waker, WakerSlot};
use crate::object::{Held, IommufdObject, Object, ObjectHeader, ObjectType};
use crate::viommu::Viommu;

/// Bytes of an event header (`sizeof(struct iommufd_vevent_header)`).
pub const VEVENT_HEADER_SIZE: usize = size_of::<IommufdVeventHeader>();

/// The vEVENTQs of one vIOMMU by type (`viommu->veventqs`). Weak links: a queue holds its
/// vIOMMU, not the other way round, and takes itself out when it goes.
#[derive(Default)]
pub(crate) struct ViommuEvents {
    queues: Mutex<BTreeMap<u32, Weak<Veventq>>>,
}

impl ViommuEvents {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u32, Weak<Veventq>>> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `iommufd_viommu_report_event()`: queues `event` on the queue of its type. Returns
    /// whether there was one (Linux `-EOPNOTSUPP` otherwise); a full queue takes the event as
    /// a loss.
    pub(crate) fn report(&self, event: &VirtualEvent) -> bool {
        let queue = self.lock().get(&event.veventq_type).and_then(Weak::upgrade);
        match queue {
            Some(queue) if !event.data.is_empty() => {
                queue.report(&event.data);
                true
            }
            _ => false,
        }
    }
}

/// The handler a vDEVICE gives the IOMMU core for its device: the driver's record of a fault,
/// named by `virt_id`, goes to the vIOMMU's queue of its type.
pub(crate) fn event_handler(
    ops: Arc<dyn IommuOps>,
    events: &Arc<ViommuEvents>,
    virt_id: u64,
) -> EventHandler {
    // Weak: the core keeps the handler, and the vIOMMU keeps the core alive.
    let events = Arc::downgrade(events);
    Arc::new(move |fault: &UnrecoverableFault| {
        let Some(events) = events.upgrade() else {
            return false;
        };
        match ops.viommu_event(fault, virt_id) {
            Some(event) => events.report(&event),
            None => false,
        }
    })
}

/// One queued entry: an event, or the lost-events header (flag set, no data).
struct Entry {
    header: IommufdVeventHeader,
    data: Vec<u8>,
}

impl Entry {
    fn lost(&self) -> bool {
        self.header.flags & VeventqFlags::LOST_EVENTS.bits() != 0
    }
}

/// What a queue's lock guards.
#[derive(Default)]
struct Queue {
    /// Entries not read yet, oldest first (`eventq->deliver`); a lost-events header, if any,
    /// is last.
    deliver: VecDeque<Entry>,
    /// Events (not headers) on `deliver` (`veventq->num_events`).
    num_events: u32,
    /// The next sequence number (`veventq->sequence`).
    sequence: u32,
}

/// The sequence number after `sequence`: `[0, i32::MAX]`, wrapping to 0
/// (`(sequence + 1) & INT_MAX`).
fn next_sequence(sequence: u32) -> u32 {
    sequence.wrapping_add(1) & i32::MAX as u32
}

impl Queue {
    /// `iommufd_vevent_handler()` after `iommufd_viommu_report_event()`: `data` at the tail,
    /// or, with `depth` events queued already, the lost-events header; either replaces a
    /// lost-events header at the tail and takes the next sequence number. An event that
    /// cannot be allocated ([`vsva_mem::fail_nth`]; Linux's `GFP_ATOMIC` `kzalloc()`) is lost
    /// as one that does not fit.
    fn push(&mut self, depth: u32, data: &[u8]) {
        let (flags, data) = if self.num_events == depth || vsva_mem::fail_nth::should_fail() {
            (VeventqFlags::LOST_EVENTS.bits(), Vec::new())
        } else {
            self.num_events += 1;
            (0, data.to_vec())
        };
        if self.deliver.back().is_some_and(Entry::lost) {
            self.deliver.pop_back();
        }
        let sequence = self.sequence;
        self.sequence = next_sequence(sequence);
        self.deliver.push_back(Entry {
            header: IommufdVeventHeader { flags, sequence },
            data,
        });
    }

    /// The loop of `iommufd_veventq_fops_read()`: whole entries while they fit (an event
    /// needs its header and record, the lost-events header only itself). Returns the bytes
    /// written.
    fn read(&mut self, buf: &mut [u8]) -> usize {
        let count = buf.len();
        let mut done = 0;
        while let Some(entry) = self.deliver.front() {
            if done >= count || VEVENT_HEADER_SIZE > count - done {
                break;
            }
            if !entry.lost() && VEVENT_HEADER_SIZE + entry.data.len() > count - done {
                break;
            }
            let end = done + VEVENT_HEADER_SIZE;
            buf[done..end].copy_from_slice(entry.header.as_bytes());
            buf[end..end + entry.data.len()].copy_from_slice(&entry.data);
            done = end + entry.data.len();
            if !entry.lost() {
                self.num_events -= 1;
            }
            self.deliver.pop_front();
        }
        done
    }
}

/// A vIOMMU event queue.
pub struct Veventq {
    header: ObjectHeader,
    viommu: Held<Viommu>,
    type_: VeventqType,
    depth: u32,
    queue: Mutex<Queue>,
    waker: WakerSlot,
}

impl Veventq {
    /// The object's ID.
    pub fn id(&self) -> u32 {
        self.header.id()
    }

    /// Its type.
    pub fn veventq_type(&self) -> VeventqType {
        self.type_
    }

    /// The most events it holds.
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// The vIOMMU it belongs to.
    pub fn viommu(&self) -> &Viommu {
        &self.viommu
    }

    /// Events queued and not read (a lost-events header not counted).
    pub fn pending(&self) -> u32 {
        self.lock().num_events
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues one record, or the lost-events header when the queue is full, then wakes the
    /// reader (`iommufd_viommu_report_event()`).
    fn report(&self, data: &[u8]) {
        self.lock().push(self.depth, data);
        self.waker.wake();
    }

    /// `iommufd_veventq_fops_read()`; see [`VeventqFile::read`].
    fn read(&self, buf: &mut [u8], pos: u64) -> Result<usize, Errno> {
        if pos != 0 {
            return Err(Errno::ESPIPE);
        }
        Ok(self.lock().read(buf))
    }

    /// `iommufd_eventq_fops_poll()` of a vEVENTQ: no `EPOLLOUT`.
    fn poll(&self) -> PollFlags {
        eventq::poll(false, !self.lock().deliver.is_empty())
    }
}

impl IommufdObject for Veventq {
    const TYPE: ObjectType = ObjectType::Veventq;

    fn header(&self) -> &ObjectHeader {
        &self.header
    }

    fn downcast(object: &Object) -> Option<&Arc<Self>> {
        match object {
            Object::Veventq(veventq) => Some(veventq),
            _ => None,
        }
    }
}

impl Drop for Veventq {
    /// `iommufd_veventq_destroy()`: off the vIOMMU's list, its events freed; the vIOMMU is
    /// released with the `Held`.
    fn drop(&mut self) {
        let me: *const Veventq = self;
        let mut queues = self.viommu.events().lock();
        if queues
            .get(&self.type_.0)
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), me))
        {
            queues.remove(&self.type_.0);
        }
    }
}

impl std::fmt::Debug for Veventq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Veventq")
            .field("id", &self.id())
            .field("viommu", &self.viommu.id())
            .field("type", &self.type_)
            .field("depth", &self.depth)
            .field("queued", &self.lock().deliver.len())
            .finish()
    }
}

/// The open file of a vEVENTQ (Linux's `[iommufd-viommu-event]` anonymous file). It holds
/// its queue: `IOMMU_DESTROY` of the queue is `EBUSY` while the file is open.
pub struct VeventqFile {
    veventq: Held<Veventq>,
}

impl VeventqFile {
    /// The vEVENTQ's object ID.
    pub fn veventq_id(&self) -> u32 {
        self.veventq.id()
    }

    /// The queue.
    pub fn veventq(&self) -> &Veventq {
        &self.veventq
    }

    /// `read(fd, buf, buf.len())` at file position `pos` (`iommufd_veventq_fops_read()`): as
    /// many whole entries as fit, oldest first, each a [`IommufdVeventHeader`] (flags 0 and
    /// the event's sequence number) followed by the record (SMMUv3: `struct
    /// iommu_vevent_arm_smmuv3`, 32 bytes), or a lost-events header alone. Entries are never
    /// split: returns the bytes written, 0 when nothing is queued or the oldest entry does not
    /// fit (not an error, as on Linux). `buf.len()` need not be a multiple of anything.
    ///
    /// # Errors
    /// `ESPIPE` if `pos` is not 0.
    pub fn read(&self, buf: &mut [u8], pos: u64) -> Result<usize, Errno> {
        self.veventq.read(buf, pos)
    }

    /// `write()`: the file has no write operation (`vfs_write()`: no `FMODE_CAN_WRITE`).
    ///
    /// # Errors
    /// `EINVAL`, always.
    pub fn write(&self, _buf: &[u8], _pos: u64) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }

    /// `poll()` (`iommufd_eventq_fops_poll()`): `IN | RDNORM` while anything is queued,
    /// nothing otherwise.
    pub fn poll(&self) -> PollFlags {
        self.veventq.poll()
    }

    /// Sets what to call each time an entry is queued; `None` removes it. It is called
    /// without the queue lock held, from the thread that handles the IOMMU's faults.
    pub fn set_waker(&self, waker: Option<Waker>) {
        self.veventq.waker.set(waker);
    }
}

impl std::fmt::Debug for VeventqFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VeventqFile")
            .field("veventq", &*self.veventq)
            .finish()
    }
}

impl Iommufd {
    /// `IOMMU_VEVENTQ_ALLOC` (`iommufd_veventq_alloc()`): a queue of type `cmd.type_` holding
    /// up to `cmd.veventq_depth` events on vIOMMU `cmd.viommu_id`, and a file open on it.
    /// Returns the object's ID in `cmd.out_veventq_id` and the file's number (for
    /// [`veventq_file`](Self::veventq_file)) in `cmd.out_veventq_fd`.
    ///
    /// The type is not checked against the vIOMMU's (Linux does not either): a queue of a type
    /// the driver never reports stays empty.
    ///
    /// # Errors
    /// In Linux's order:
    /// 1. `EOPNOTSUPP` for non-zero `flags` or `__reserved`, or type `DEFAULT`;
    /// 2. `EINVAL` for a depth of 0;
    /// 3. `ENOENT` if `viommu_id` is not a vIOMMU;
    /// 4. `EEXIST` if the vIOMMU has a queue of that type;
    /// 5. `EBUSY` when no object ID is free, `EMFILE` when no file number is.
    pub fn veventq_alloc(&self, cmd: &mut IommuVeventqAlloc) -> Result<(), Errno> {
        check_zero(&cmd.flags)?;
        check_zero(&cmd.__reserved)?;
        if cmd.type_ == VeventqType::DEFAULT {
            return Err(Errno::EOPNOTSUPP);
        }
        if cmd.veventq_depth == 0 {
            return Err(Errno::EINVAL);
        }
        let viommu = self.get_viommu(cmd.viommu_id)?;
        let events = viommu.events().clone();
        let (type_, depth) = (cmd.type_, cmd.veventq_depth);
        let taken = |queues: &BTreeMap<u32, Weak<Veventq>>| {
            queues.get(&type_.0).is_some_and(|w| w.strong_count() > 0)
        };
        if taken(&events.lock()) {
            return Err(Errno::EEXIST);
        }
        let mut fd = 0;
        let id = self.create(|id| {
            let veventq = Arc::new(Veventq {
                header: ObjectHeader::new(id),
                viommu,
                type_,
                depth,
                queue: Mutex::new(Queue::default()),
                waker: WakerSlot::default(),
            });
            {
                // Checked again where it is inserted (Linux holds `veventqs_rwsem` for
                // writing across both); the lock is released before anything else is taken,
                // and before a failed queue's drop takes it again.
                let mut queues = events.lock();
                if taken(&queues) {
                    return Err(Errno::EEXIST);
                }
                queues.insert(type_.0, Arc::downgrade(&veventq));
            }
            let file = Arc::new(VeventqFile {
                veventq: Held::unpublished(&veventq),
            });
            fd = self.install_file(file)?;
            Ok(Object::Veventq(veventq))
        })?;
        cmd.out_veventq_id = id;
        cmd.out_veventq_fd = fd;
        Ok(())
    }

    /// The vEVENTQ `id` (`iommufd_get_veventq()`).
    ///
    /// # Errors
    /// `ENOENT` if `id` is not a vEVENTQ.
    pub fn get_veventq(&self, id: u32) -> Result<Held<Veventq>, Errno> {
        self.get(id)
    }

    /// The open vEVENTQ file `fd`.
    ///
    /// # Errors
    /// `EBADF` if no vEVENTQ file is open under `fd`.
    pub fn veventq_file(&self, fd: u32) -> Result<Arc<VeventqFile>, Errno> {
        self.open_file(fd)
    }

    /// `close(fd)` of a vEVENTQ file (`iommufd_eventq_fops_release()`): once the last
    /// reference to the file is gone too, the queue may be destroyed. Events stay queued.
    ///
    /// # Errors
    /// `EBADF` if no vEVENTQ file is open under `fd`.
    pub fn close_veventq_file(&self, fd: u32) -> Result<(), Errno> {
        self.close_file::<VeventqFile>(fd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_wrap_after_int_max() {
        assert_eq!(next_sequence(0), 1);
        assert_eq!(next_sequence(i32::MAX as u32 - 1), i32::MAX as u32);
        assert_eq!(next_sequence(i32::MAX as u32), 0);
        let mut q = Queue {
            sequence: i32::MAX as u32,
            ..Queue::default()
        };
        q.push(1, &[0xaa; 4]);
        q.push(1, &[0xbb; 4]);
        q.push(1, &[0xcc; 4]);
        let mut buf = [0u8; 64];
        let n = q.read(&mut buf);
        assert_eq!(n, 12 + 8);
        // flags 0, sequence INT_MAX, the record; then the lost header numbered 1: the one
        // after INT_MAX was 0, lost, and 1 replaced it.
        assert_eq!(&buf[..8], &[0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(&buf[8..12], &[0xaa; 4]);
        assert_eq!(&buf[12..20], &[1, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!((q.num_events, q.deliver.len()), (0, 0));
    }

    #[test]
    fn an_event_that_cannot_be_allocated_is_lost() {
        let mut q = Queue::default();
        vsva_mem::fail_nth::arm(2);
        q.push(4, &[0xaa; 4]);
        q.push(4, &[0xbb; 4]);
        assert!(vsva_mem::fail_nth::disarm().fired);
        let mut buf = [0u8; 64];
        // sequence 0 the record; 1 the lost-events header (flags bit 0), no data
        assert_eq!(q.read(&mut buf), 12 + 8);
        assert_eq!(&buf[..8], &[0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&buf[8..12], &[0xaa; 4]);
        assert_eq!(&buf[12..20], &[1, 0, 0, 0, 1, 0, 0, 0]);
        // a lost event before an unread header is replaced by the next record, as in
        // `iommufd_vevent_handler()`: the reader sees the gap in the sequence numbers
        vsva_mem::fail_nth::arm(1);
        q.push(4, &[0xcc; 4]);
        assert!(vsva_mem::fail_nth::disarm().fired);
        q.push(4, &[0xdd; 4]);
        assert_eq!(q.read(&mut buf), 12);
        assert_eq!(&buf[..8], &[0, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(&buf[8..12], &[0xdd; 4]);
        assert_eq!(q.num_events, 0);
    }
}
