//! The fault queue object (Linux `IOMMUFD_OBJ_FAULT`, `struct iommufd_fault`,
//! `drivers/iommu/iommufd/eventq.c`; `fault.c` in kernels before 6.15): how the page request
//! groups of a device attached to a HWPT reach user space, and how user space answers them.
//!
//! * `IOMMU_FAULT_QUEUE_ALLOC` ([`Iommufd::fault_alloc`], `iommufd_fault_alloc()`) makes a
//!   [`Fault`] object and opens a [`FaultFile`] on it: the object ID goes into
//!   `IOMMU_HWPT_ALLOC`'s `fault_id`, the file is read and written by the VMM.
//! * A HWPT allocated with `IOMMU_HWPT_FAULT_ID_VALID` holds its fault object, and each of its
//!   attachments gives the IOMMU core an [`IopfHandler`] that queues the attachment's complete
//!   page request groups on the object's *deliver* list (`iommufd_fault_iopf_handler()`).
//! * [`FaultFile::read`] (`iommufd_fault_fops_read()`) hands whole groups out as 40-byte
//!   [`IommuHwptPgfault`] records and moves each group to the *response* table under a fresh
//!   cookie; [`FaultFile::write`] (`iommufd_fault_fops_write()`) takes 8-byte
//!   [`IommuHwptPageResponse`] records and answers each group with [`Iommu::respond`].
//! * [`FaultFile::poll`] (`iommufd_eventq_fops_poll()`): always writable, readable while a
//!   group waits on the deliver list.
//! * Groups still queued or awaiting a response are answered INVALID when their attachment
//!   goes — detach, replace, unbind (`iommufd_auto_response_faults()`; vsva's IOMMU core sends
//!   those answers as it detaches, and the queue only forgets the groups) — and when the object
//!   is destroyed (`iommufd_fault_destroy()`).
//!
//! # Files
//! Linux returns a real file descriptor; vsva's context keeps a table of open fault files
//! keyed by a context-local number — the lowest free one from [`FIRST_FAULT_FD`], as
//! `get_unused_fd_flags()` hands out the lowest free descriptor, the vEVENTQ files
//! ([`veventq`](crate::veventq)) sharing the numbers — which the `/dev/iommu` shim
//! maps to a descriptor of its own ([`Iommufd::fault_file`], [`Iommufd::close_fault_file`]).
//! As in Linux, the open file counts as a user of the object (`iommufd_eventq_init()` takes a
//! `users` reference that `iommufd_eventq_fops_release()` drops): `IOMMU_DESTROY` of a fault
//! object is `EBUSY` while its file is open, as it is while a HWPT holds it.
//!
//! Reads never block: with nothing queued, [`FaultFile::read`] returns 0 bytes, as Linux's
//! read does (it has no wait; a VMM polls first). [`FaultFile::set_waker`] registers what to
//! call when a group is queued (Linux's `wake_up_interruptible()` of the queue's wait queue).
//!
//! # Locking
//! The queue lock is taken below every context lock and is never held while calling into the
//! IOMMU core: answers are collected under it and sent after it is released (Linux holds
//! `fault->mutex` across `iopf_group_response()`; the core here may call handlers back, so
//! vsva does not).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use vsva_iommu::FaultGroup;
use vsva_iommu::IopfHandler;
use vsva_iommu::{Iommu, ResponseCode};
use vsva_mem::{Pasid, Rid};
use zerocopy::{FromBytes, IntoBytes};

use crate::abi::{
    Errno, IommuFaultAlloc, IommuHwptPageResponse, IommuHwptPgfault, PageResponseCode,
    PgfaultFlags, PgfaultPerm, check_zero,
};
use crate::ctx::Iommufd;
use crate::eventq::{self, PollFlags, Waker, WakerSlot};
use crate::object::{Held, IommufdObject, Object, ObjectHeader, ObjectType};

/// Bytes of one fault record (`sizeof(struct iommu_hwpt_pgfault)`).
pub const PGFAULT_SIZE: usize = size_of::<IommuHwptPgfault>();

/// Bytes of one response record (`sizeof(struct iommu_hwpt_page_response)`).
pub const RESPONSE_SIZE: usize = size_of::<IommuHwptPageResponse>();

/// The first number handed out for a fault file: the lowest a process with standard input,
/// output and error open would get.
pub const FIRST_FAULT_FD: u32 = 3;

/// The last number handed out for a fault file (descriptors are non-negative `int`s).
pub const LAST_FAULT_FD: u32 = i32::MAX as u32;

/// A group on a fault queue, with what its records need that the IOMMU core does not know.
struct Queued {
    group: FaultGroup,
    /// The iommufd ID of the device that asked (`idev->obj.id` of the attach handle).
    dev_id: u32,
    /// The HWPT whose attachment routed it (the attach handle's domain).
    hwpt_id: u32,
    /// The PASID of that attachment (0 for the RID's). Usually the group's own; a group of a
    /// PASID the user's PASID table translates (SMMUv3 nesting) came through the RID's.
    attach_pasid: Pasid,
}

impl Queued {
    /// Whether it came through the attachment of (`rid`, `pasid`) to HWPT `hwpt_id` — Linux
    /// compares `group->attach_handle` with the handle going away.
    fn through(&self, rid: Rid, pasid: Pasid, hwpt_id: u32) -> bool {
        self.group.dev == rid && self.attach_pasid == pasid && self.hwpt_id == hwpt_id
    }
}

/// What the queue lock guards.
#[derive(Default)]
struct Queues {
    /// Groups not read yet, oldest first (`fault->common.deliver`).
    deliver: VecDeque<Queued>,
    /// Groups read and awaiting a response, by cookie (`fault->response`, an
    /// `XA_FLAGS_ALLOC1` xarray).
    response: BTreeMap<u32, Queued>,
}

impl Queues {
    /// The cookie for a group being read: the lowest free one from 1 (`xa_alloc()` with
    /// `xa_limit_32b` on an `XA_FLAGS_ALLOC1` xarray), `None` if all are taken.
    fn free_cookie(&self) -> Option<u32> {
        let mut cookie = 1u32;
        for &taken in self.response.keys() {
            if taken != cookie {
                break;
            }
            cookie = cookie.checked_add(1)?;
        }
        Some(cookie)
    }
}

/// A fault queue object.
pub struct Fault {
    header: ObjectHeader,
    iommu: Arc<Iommu>,
    queues: Mutex<Queues>,
    waker: WakerSlot,
}

impl Fault {
    /// The object's ID.
    pub fn id(&self) -> u32 {
        self.header.id()
    }

    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Groups queued and not read yet.
    pub fn pending(&self) -> usize {
        self.lock().deliver.len()
    }

    /// Groups read and awaiting a response.
    pub fn awaiting_response(&self) -> usize {
        self.lock().response.len()
    }

    /// Queues a complete group (`iommufd_fault_iopf_handler()`), then wakes the reader.
    fn deliver(&self, queued: Queued) {
        self.lock().deliver.push_back(queued);
        self.waker.wake();
    }

    /// Takes off the queue every group that came through the attachment of (`rid`, `pasid`)
    /// to HWPT `hwpt_id`, queued or awaiting a response (`iommufd_auto_response_faults()`),
    /// and answers them INVALID if `answer`.
    ///
    /// Linux's core leaves a detached attachment's groups to iommufd. vsva's IOMMU core
    /// answers them itself when the detach succeeds (`Iommu::detach_pasid`), so after a
    /// successful detach they are only forgotten here: answering them again would reach the
    /// core late and be counted as late responses. Only a failed detach, where the core may
    /// not have answered, has them answered here.
    pub(crate) fn auto_respond(&self, rid: Rid, pasid: Pasid, hwpt_id: u32, answer: bool) {
        let gone: Vec<Queued> = {
            let mut queues = self.lock();
            let mut gone = Vec::new();
            let mut kept = VecDeque::with_capacity(queues.deliver.len());
            for queued in queues.deliver.drain(..) {
                if queued.through(rid, pasid, hwpt_id) {
                    gone.push(queued);
                } else {
                    kept.push_back(queued);
                }
            }
            queues.deliver = kept;
            let cookies: Vec<u32> = queues
                .response
                .iter()
                .filter(|(_, queued)| queued.through(rid, pasid, hwpt_id))
                .map(|(&cookie, _)| cookie)
                .collect();
            gone.extend(
                cookies
                    .into_iter()
                    .filter_map(|cookie| queues.response.remove(&cookie)),
            );
            gone
        };
        if answer {
            for queued in gone {
                self.answer(&queued.group, ResponseCode::InvalidRequest);
            }
        }
    }

    /// Sends the page group response for `group`.
    fn answer(&self, group: &FaultGroup, code: ResponseCode) {
        let sent = self.iommu.respond(group.dev, group.pasid, group.prgi, code);
        tracing::trace!(dev = %group.dev, prgi = group.prgi, ?code, sent, "fault queue answer");
    }

    /// `iommufd_fault_fops_read()`; see [`FaultFile::read`].
    fn read(&self, buf: &mut [u8], pos: u64) -> Result<usize, Errno> {
        if pos != 0 || buf.len() % PGFAULT_SIZE != 0 {
            return Err(Errno::ESPIPE);
        }
        let count = buf.len();
        let mut done = 0;
        let mut rc = Ok(0);
        let mut queues = self.lock();
        while let Some(queued) = queues.deliver.pop_front() {
            let size = queued.group.pages.len().saturating_mul(PGFAULT_SIZE);
            if done >= count || size > count - done {
                queues.deliver.push_front(queued);
                break;
            }
            let Some(cookie) = queues.free_cookie() else {
                queues.deliver.push_front(queued);
                rc = Err(Errno::EBUSY);
                break;
            };
            for page in &queued.group.pages {
                let record = compose(page, queued.dev_id, cookie);
                buf[done..done + PGFAULT_SIZE].copy_from_slice(record.as_bytes());
                done += PGFAULT_SIZE;
            }
            queues.response.insert(cookie, queued);
        }
        if done == 0 { rc } else { Ok(done) }
    }

    /// `iommufd_fault_fops_write()`; see [`FaultFile::write`].
    fn write(&self, buf: &[u8], pos: u64) -> Result<usize, Errno> {
        if pos != 0 || buf.len() % RESPONSE_SIZE != 0 {
            return Err(Errno::ESPIPE);
        }
        let mut done = 0;
        let mut rc = Ok(0);
        let mut answers = Vec::new();
        {
            let mut queues = self.lock();
            for record in buf.chunks_exact(RESPONSE_SIZE) {
                let Ok(response) = IommuHwptPageResponse::read_from_bytes(record) else {
                    rc = Err(Errno::EFAULT);
                    break;
                };
                let code = match response.code {
                    PageResponseCode::SUCCESS => ResponseCode::Success,
                    PageResponseCode::INVALID => ResponseCode::InvalidRequest,
                    _ => {
                        rc = Err(Errno::EINVAL);
                        break;
                    }
                };
                let Some(queued) = queues.response.remove(&response.cookie) else {
                    rc = Err(Errno::EINVAL);
                    break;
                };
                answers.push((queued, code));
                done += RESPONSE_SIZE;
            }
        }
        for (queued, code) in answers {
            self.answer(&queued.group, code);
        }
        if done == 0 { rc } else { Ok(done) }
    }

    /// `iommufd_eventq_fops_poll()`.
    fn poll(&self) -> PollFlags {
        eventq::poll(true, !self.lock().deliver.is_empty())
    }
}

/// One record of a group (`iommufd_compose_fault_message()`).
///
/// Linux copies the IOMMU driver's `prm.flags`, in which a driver may also set
/// `IOMMU_FAULT_PAGE_RESPONSE_NEEDS_PASID` (bit 3) beside PASID_VALID; the uAPI defines only
/// PASID_VALID and LAST_PAGE, and only those are reported here. `length` is 0 (no hint), as
/// Linux always reports.
fn compose(page: &vsva_iommu::PageRequest, dev_id: u32, cookie: u32) -> IommuHwptPgfault {
    let mut flags = PgfaultFlags::empty();
    flags.set(PgfaultFlags::PASID_VALID, page.pasid.is_some());
    flags.set(PgfaultFlags::LAST_PAGE, page.last);
    let mut perm = PgfaultPerm::empty();
    perm.set(PgfaultPerm::READ, page.read);
    perm.set(PgfaultPerm::WRITE, page.write);
    perm.set(PgfaultPerm::EXEC, page.exec);
    perm.set(PgfaultPerm::PRIV, page.privileged);
    IommuHwptPgfault {
        flags: flags.bits(),
        dev_id,
        pasid: page.pasid.map_or(0, |p| p.raw()),
        grpid: u32::from(page.prgi),
        perm: perm.bits(),
        __reserved: 0,
        addr: page.addr,
        length: 0,
        cookie,
    }
}

impl IommufdObject for Fault {
    const TYPE: ObjectType = ObjectType::Fault;

    fn header(&self) -> &ObjectHeader {
        &self.header
    }

    fn downcast(object: &Object) -> Option<&Arc<Self>> {
        match object {
            Object::Fault(fault) => Some(fault),
            _ => None,
        }
    }
}

impl Drop for Fault {
    /// `iommufd_fault_destroy()`: every group still queued or awaiting a response is answered
    /// INVALID.
    fn drop(&mut self) {
        let queues = std::mem::take(self.queues.get_mut().unwrap_or_else(|e| e.into_inner()));
        let groups = queues
            .deliver
            .into_iter()
            .chain(queues.response.into_values());
        for queued in groups {
            self.answer(&queued.group, ResponseCode::InvalidRequest);
        }
    }
}

impl std::fmt::Debug for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let queues = self.lock();
        f.debug_struct("Fault")
            .field("id", &self.id())
            .field("deliver", &queues.deliver.len())
            .field("response", &queues.response.len())
            .finish()
    }
}

/// The open file of a fault queue (Linux's `[iommufd-pgfault]` anonymous file): read fault
/// records from it, write responses to it. It holds its object: `IOMMU_DESTROY` of the object
/// is `EBUSY` while the file is open.
pub struct FaultFile {
    fault: Held<Fault>,
}

impl FaultFile {
    /// The fault object's ID.
    pub fn fault_id(&self) -> u32 {
        self.fault.id()
    }

    /// The fault object.
    pub fn fault(&self) -> &Fault {
        &self.fault
    }

    /// `read(fd, buf, buf.len())` at file position `pos` (`iommufd_fault_fops_read()`): as
    /// many whole groups as fit, oldest first, each as one [`IommuHwptPgfault`] per page
    /// (PASID_VALID when the request had a PASID, LAST_PAGE on the group's last request,
    /// `dev_id` the iommufd device ID, `grpid` the PRG index, `perm` the access asked,
    /// `length` 0, and `cookie` the group's, the same on every record of the group). Each
    /// group read now awaits a response under its cookie, the lowest one free from 1. Returns
    /// the bytes written: 0 when nothing is queued, and 0 when the oldest group does not fit
    /// (Linux puts it back and returns 0, not an error).
    ///
    /// # Errors
    /// `ESPIPE` if `pos` is not 0 or `buf.len()` is not a multiple of 40 (checked first, even
    /// with nothing queued); `EBUSY` if every cookie is taken and nothing was read.
    pub fn read(&self, buf: &mut [u8], pos: u64) -> Result<usize, Errno> {
        self.fault.read(buf, pos)
    }

    /// `write(fd, buf, buf.len())` at file position `pos` (`iommufd_fault_fops_write()`):
    /// takes `buf` as [`IommuHwptPageResponse`] records in order and answers each group —
    /// SUCCESS lets the device retry, INVALID makes it give up. Processing stops at the first
    /// bad record; returns the bytes of the records answered before it.
    ///
    /// # Errors
    /// `ESPIPE` if `pos` is not 0 or `buf.len()` is not a multiple of 8; when the first
    /// record is bad: `EINVAL` for a `code` other than SUCCESS and INVALID (checked before the
    /// cookie), or for a `cookie` with no group awaiting a response (never read, answered
    /// already, or answered INVALID when its attachment went). A bad record after good ones is
    /// not an error: the count of the good ones is returned.
    pub fn write(&self, buf: &[u8], pos: u64) -> Result<usize, Errno> {
        self.fault.write(buf, pos)
    }

    /// `poll()` (`iommufd_eventq_fops_poll()`): `OUT` always, with `IN | RDNORM` while a
    /// group is queued.
    pub fn poll(&self) -> PollFlags {
        self.fault.poll()
    }

    /// Sets what to call each time a group is queued (the shim signals an eventfd); `None`
    /// removes it. It is called without the queue lock held, from the thread that services
    /// the IOMMU's page requests.
    pub fn set_waker(&self, waker: Option<Waker>) {
        self.fault.waker.set(waker);
    }
}

impl std::fmt::Debug for FaultFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultFile")
            .field("fault", &*self.fault)
            .finish()
    }
}

/// The handler an attachment of a HWPT with a fault queue gives the IOMMU core: its groups go
/// to the queue, tagged with the device and the HWPT (Linux's `iommufd_attach_handle`, with
/// `domain->iopf_handler = iommufd_fault_iopf_handler`).
pub(crate) struct FaultHandler {
    pub(crate) fault: Arc<Fault>,
    pub(crate) dev_id: u32,
    pub(crate) hwpt_id: u32,
    /// The attachment's PASID (its attach handle's).
    pub(crate) pasid: Pasid,
}

impl IopfHandler for FaultHandler {
    fn handle(&self, group: FaultGroup) {
        self.fault.deliver(Queued {
            group,
            dev_id: self.dev_id,
            hwpt_id: self.hwpt_id,
            attach_pasid: self.pasid,
        });
    }
}

impl Iommufd {
    /// `IOMMU_FAULT_QUEUE_ALLOC` (`iommufd_fault_alloc()`): a new fault object and a file open
    /// on it. Returns the object's ID in `cmd.out_fault_id` and the file's number (for
    /// [`fault_file`](Self::fault_file)) in `cmd.out_fault_fd`.
    ///
    /// # Errors
    /// In Linux's order: `EOPNOTSUPP` for non-zero `flags`; `EBUSY` when no object ID is free;
    /// `EMFILE` when no file number is free.
    pub fn fault_alloc(&self, cmd: &mut IommuFaultAlloc) -> Result<(), Errno> {
        check_zero(&cmd.flags)?;
        let mut fd = 0;
        let id = self.create(|id| {
            let fault = Arc::new(Fault {
                header: ObjectHeader::new(id),
                iommu: self.iommu().clone(),
                queues: Mutex::new(Queues::default()),
                waker: WakerSlot::default(),
            });
            let file = Arc::new(FaultFile {
                fault: Held::unpublished(&fault),
            });
            fd = self.install_file(file)?;
            Ok(Object::Fault(fault))
        })?;
        cmd.out_fault_id = id;
        cmd.out_fault_fd = fd;
        Ok(())
    }

    /// The fault object `id` (`iommufd_get_fault()`).
    ///
    /// # Errors
    /// `ENOENT` if `id` is not a fault object.
    pub fn get_fault(&self, id: u32) -> Result<Held<Fault>, Errno> {
        self.get(id)
    }

    /// The open fault file `fd` (what a system call on the descriptor reaches).
    ///
    /// # Errors
    /// `EBADF` if no fault file is open under `fd`.
    pub fn fault_file(&self, fd: u32) -> Result<Arc<FaultFile>, Errno> {
        self.open_file(fd)
    }

    /// `close(fd)` of a fault file (`iommufd_eventq_fops_release()`): once the last reference
    /// to the file returned by [`fault_file`](Self::fault_file) is gone too, the object may be
    /// destroyed. Groups stay queued.
    ///
    /// # Errors
    /// `EBADF` if no fault file is open under `fd`.
    pub fn close_fault_file(&self, fd: u32) -> Result<(), Errno> {
        self.close_file::<FaultFile>(fd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(pasid: Option<u32>, last: bool) -> vsva_iommu::PageRequest {
        vsva_iommu::PageRequest {
            rid: Rid::from_raw(0x18),
            pasid: pasid.map(|p| Pasid::new(p).unwrap()),
            addr: 0x7000,
            read: true,
            write: false,
            exec: true,
            privileged: true,
            last,
            prgi: 0x1ab,
        }
    }

    #[test]
    fn records_carry_the_request() {
        let record = compose(&page(Some(9), true), 4, 2);
        assert_eq!(
            record,
            IommuHwptPgfault {
                flags: 3,
                dev_id: 4,
                pasid: 9,
                grpid: 0x1ab,
                perm: 1 | 4 | 8,
                __reserved: 0,
                addr: 0x7000,
                length: 0,
                cookie: 2,
            }
        );
        let record = compose(&page(None, false), 4, 2);
        assert_eq!((record.flags, record.pasid), (0, 0));
    }

    #[test]
    fn cookies_are_the_lowest_free_from_one() {
        let mut queues = Queues::default();
        assert_eq!(queues.free_cookie(), Some(1));
        let group = |prgi| Queued {
            group: FaultGroup {
                dev: Rid::from_raw(0x18),
                pasid: None,
                prgi,
                pages: vec![],
            },
            dev_id: 1,
            hwpt_id: 2,
            attach_pasid: Pasid::new(0).unwrap(),
        };
        queues.response.insert(1, group(0));
        queues.response.insert(2, group(1));
        queues.response.insert(4, group(2));
        assert_eq!(queues.free_cookie(), Some(3));
        queues.response.insert(3, group(3));
        assert_eq!(queues.free_cookie(), Some(5));
    }
}
