//! vIOMMU event queues against a fake SMMUv3 driver (`common::fake_smmu`):
//! `IOMMU_VEVENTQ_ALLOC` (`iommufd_veventq_alloc()`), the bytes a read returns
//! (`iommufd_veventq_fops_read()`: `struct iommufd_vevent_header` then `struct
//! iommu_vevent_arm_smmuv3`), overflow (`iommufd_vevent_handler()`'s lost-events header), and
//! delivery from `Iommu::handle_faults()` through a vDEVICE's event handler
//! (`iommufd_viommu_report_event()`), or on to the fault handler when no queue takes it.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::fake_smmu::{FakeSmmu, bind_smmu, open_smmu};
use common::*;
use vsva_iommufd::abi::{
    Errno, HwptAllocFlags, IommuVeventArmSmmuv3, IommufdVeventHeader, VeventqType, ViommuType,
};
use vsva_iommufd::{ObjectType, PollFlags, VEVENT_HEADER_SIZE};
use vsva_mem::Rid;
use zerocopy::{FromBytes, IntoBytes};

const SMMU: VeventqType = VeventqType::ARM_SMMUV3;
/// One SMMUv3 event as read: header and record.
const EVENT: usize = VEVENT_HEADER_SIZE + 32;

struct Setup {
    f: Fixture,
    fake: Arc<FakeSmmu>,
    rid: Rid,
    dev_id: u32,
    s2: u32,
    viommu: u32,
    vdev: u32,
    /// Faults that reached the device's fault handler.
    logged: Arc<Mutex<Vec<u64>>>,
}

const VSID: u64 = 0x42;

/// A bound device with a vDEVICE (vSID 0x42) on an ARM_SMMUV3 vIOMMU, and a fault handler
/// that records the addresses of the faults it gets.
fn setup() -> Setup {
    let (f, fake) = open_smmu();
    let (rid, dev_id) = bind_smmu(&f, 3);
    let ioas = f.alloc().unwrap();
    let nest_parent = HwptAllocFlags::NEST_PARENT.bits();
    let s2 = f.hwpt_paging(dev_id, ioas, nest_parent).unwrap();
    let viommu = f
        .viommu_alloc(0, ViommuType::ARM_SMMUV3, dev_id, s2)
        .unwrap();
    let vdev = f.vdevice_alloc(viommu, dev_id, VSID).unwrap();
    let logged = Arc::new(Mutex::new(Vec::new()));
    let sink = logged.clone();
    f.fd.iommu()
        .set_fault_handler(
            rid,
            Arc::new(move |fault| sink.lock().unwrap().push(fault.addr)),
        )
        .unwrap();
    Setup {
        f,
        fake,
        rid,
        dev_id,
        s2,
        viommu,
        vdev,
        logged,
    }
}

impl Setup {
    /// The hardware records faults of the device at `addrs`; the host handles them.
    fn faults(&self, addrs: &[u64], s2: bool) {
        let mut faults = self.fake.faults.lock().unwrap();
        for &addr in addrs {
            faults.push(FakeSmmu::fault(self.rid, addr, s2));
        }
        drop(faults);
        assert_eq!(self.f.fd.iommu().handle_faults(), addrs.len());
    }

    fn read(&self, fd: u32, len: usize) -> Vec<u8> {
        let file = self.f.fd.veventq_file(fd).unwrap();
        let mut buf = vec![0xee; len];
        let n = file.read(&mut buf, 0).unwrap();
        buf.truncate(n);
        buf
    }
}

/// The bytes of one event the fake reports for a fault at `addr`: the record with the vSID.
fn event(sequence: u32, addr: u64) -> Vec<u8> {
    let mut bytes = IommufdVeventHeader { flags: 0, sequence }
        .as_bytes()
        .to_vec();
    let record = IommuVeventArmSmmuv3 {
        evt: [0x10 | (VSID << 32), 0, addr, 0],
    };
    bytes.extend_from_slice(record.as_bytes());
    bytes
}

fn lost(sequence: u32) -> Vec<u8> {
    IommufdVeventHeader { flags: 1, sequence }
        .as_bytes()
        .to_vec()
}

#[test]
fn veventq_alloc_checks_in_linux_order_and_holds_its_viommu() {
    let s = setup();
    let f = &s.f;
    let v = s.viommu;
    assert_eq!(f.veventq_alloc(1, 99, SMMU, 0, 0), Err(Errno::EOPNOTSUPP));
    assert_eq!(f.veventq_alloc(0, 99, SMMU, 0, 1), Err(Errno::EOPNOTSUPP));
    assert_eq!(
        f.veventq_alloc(0, 99, VeventqType::DEFAULT, 0, 0),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(f.veventq_alloc(0, 99, SMMU, 0, 0), Err(Errno::EINVAL));
    assert_eq!(f.veventq_alloc(0, 99, SMMU, 1, 0), Err(Errno::ENOENT));
    assert_eq!(f.veventq_alloc(0, s.s2, SMMU, 1, 0), Err(Errno::ENOENT));
    assert_eq!(f.veventq_alloc(0, v, SMMU, 0, 0), Err(Errno::EINVAL));
    let objects = f.fd.objects().len();
    let (id, fd) = f.veventq_alloc(0, v, SMMU, u32::MAX, 0).unwrap();
    assert_eq!(f.fd.objects().len(), objects + 1);
    assert_eq!(f.fd.objects().last(), Some(&(id, ObjectType::Veventq)));
    assert_eq!(fd, 3, "the lowest free file number");
    let q = f.fd.get_veventq(id).unwrap();
    assert_eq!(
        (q.viommu().id(), q.veventq_type(), q.depth()),
        (v, SMMU, u32::MAX)
    );
    drop(q);
    // One queue per type: the second is EEXIST; another type is fine, on the next number.
    assert_eq!(f.veventq_alloc(0, v, SMMU, 8, 0), Err(Errno::EEXIST));
    let (tegra, tegra_fd) = f
        .veventq_alloc(0, v, VeventqType::TEGRA241_CMDQV, 1, 0)
        .unwrap();
    assert_eq!(tegra_fd, 4);
    // Destroy order: the queue holds the vIOMMU; the open file holds the queue.
    f.destroy(s.vdev).unwrap();
    assert_eq!(f.destroy(v), Err(Errno::EBUSY));
    assert_eq!(f.destroy(id), Err(Errno::EBUSY), "its file is open");
    assert_eq!(
        f.fd.veventq_file(fd).unwrap().write(&[0; 8], 0),
        Err(Errno::EINVAL)
    );
    f.fd.close_veventq_file(fd).unwrap();
    assert_eq!(f.fd.close_veventq_file(fd), Err(Errno::EBADF));
    assert_eq!(f.fd.veventq_file(fd).err(), Some(Errno::EBADF));
    f.destroy(id).unwrap();
    // The type is free again, and so is the number; the ID is the lowest free one, the
    // vDEVICE's.
    let (again, again_fd) = f.veventq_alloc(0, v, SMMU, 2, 0).unwrap();
    assert_eq!((again, again_fd), (s.vdev, 3));
    for (q, fd) in [(again, again_fd), (tegra, tegra_fd)] {
        f.fd.close_veventq_file(fd).unwrap();
        f.destroy(q).unwrap();
    }
    f.destroy(v).unwrap();
}

#[test]
fn events_read_as_header_then_record_and_are_never_split() {
    let s = setup();
    let (_, fd) = s.f.veventq_alloc(0, s.viommu, SMMU, 8, 0).unwrap();
    let file = s.f.fd.veventq_file(fd).unwrap();
    assert_eq!(
        file.poll(),
        PollFlags::empty(),
        "never writable, nothing to read"
    );
    assert_eq!(s.read(fd, 4096), Vec::<u8>::new());
    s.faults(&[0x1000, 0x2000, 0x3000], false);
    assert!(
        s.logged.lock().unwrap().is_empty(),
        "the queue took them all"
    );
    assert_eq!(file.poll(), PollFlags::IN | PollFlags::RDNORM);
    assert_eq!(file.veventq().pending(), 3);
    // Not at position 0: ESPIPE. A buffer short of a whole event: 0, nothing consumed.
    assert_eq!(file.read(&mut [0; 64], 1), Err(Errno::ESPIPE));
    assert_eq!(s.read(fd, EVENT - 1), Vec::<u8>::new());
    assert_eq!(s.read(fd, 0), Vec::<u8>::new());
    // One and a half events' room: one event.
    assert_eq!(s.read(fd, EVENT + EVENT / 2), event(0, 0x1000));
    // The rest, in order, sequence numbers counting on.
    let rest = s.read(fd, 4096);
    assert_eq!(rest, [event(1, 0x2000), event(2, 0x3000)].concat());
    let header = IommufdVeventHeader::read_from_bytes(&rest[EVENT..EVENT + 8]).unwrap();
    assert_eq!(header.sequence, 2);
    assert_eq!(file.poll(), PollFlags::empty());
    assert_eq!(file.veventq().pending(), 0);
    // Later events go on from 3.
    s.faults(&[0x4000], false);
    assert_eq!(s.read(fd, 4096), event(3, 0x4000));
}

#[test]
fn a_full_queue_drops_events_behind_one_lost_events_header() {
    let s = setup();
    let (_, fd) = s.f.veventq_alloc(0, s.viommu, SMMU, 2, 0).unwrap();
    // Two fit; the third and fourth are lost: one header, with the last lost number.
    s.faults(&[0x1000, 0x2000, 0x3000, 0x4000], false);
    assert!(s.logged.lock().unwrap().is_empty(), "lost events are taken");
    let file = s.f.fd.veventq_file(fd).unwrap();
    assert_eq!(file.veventq().pending(), 2, "the header is not an event");
    // A buffer with room for the events but not the header: the events only.
    assert_eq!(
        s.read(fd, 2 * EVENT + 7),
        [event(0, 0x1000), event(1, 0x2000)].concat()
    );
    // The header needs only its own 8 bytes.
    assert_eq!(s.read(fd, 8), lost(3));
    assert_eq!(file.poll(), PollFlags::empty());
    // Room again: numbering goes on after the lost ones.
    s.faults(&[0x5000], false);
    assert_eq!(s.read(fd, 4096), event(4, 0x5000));

    // An event queued after the header takes its place: the loss shows as a gap.
    s.faults(&[0x6000, 0x7000, 0x8000], false);
    assert_eq!(s.read(fd, EVENT), event(5, 0x6000));
    s.faults(&[0x9000], false);
    assert_eq!(
        s.read(fd, 4096),
        [event(6, 0x7000), event(8, 0x9000)].concat(),
        "sequence 7 was lost; its header is gone"
    );
    // Depth 1 overflowing over and over: still one header, moved to the newest number.
    let s = setup();
    let (_, fd) = s.f.veventq_alloc(0, s.viommu, SMMU, 1, 0).unwrap();
    s.faults(&[0x1000; 5], false);
    assert_eq!(s.read(fd, 4096), [event(0, 0x1000), lost(4)].concat());
}

#[test]
fn faults_no_queue_takes_go_to_the_fault_handler() {
    let s = setup();
    // No queue yet: the driver makes an event, but nobody takes it.
    s.faults(&[0x1000], false);
    assert_eq!(*s.logged.lock().unwrap(), vec![0x1000]);
    // A queue of another type does not take it either.
    let (_, tegra_fd) =
        s.f.veventq_alloc(0, s.viommu, VeventqType::TEGRA241_CMDQV, 4, 0)
            .unwrap();
    s.faults(&[0x2000], false);
    assert_eq!(*s.logged.lock().unwrap(), vec![0x1000, 0x2000]);
    assert_eq!(s.read(tegra_fd, 4096), Vec::<u8>::new());
    // With an SMMUv3 queue: stage-1 faults are the guest's, stage-2 faults the host's.
    let (queue, fd) = s.f.veventq_alloc(0, s.viommu, SMMU, 4, 0).unwrap();
    s.faults(&[0x3000], false);
    s.faults(&[0x4000], true);
    assert_eq!(*s.logged.lock().unwrap(), vec![0x1000, 0x2000, 0x4000]);
    assert_eq!(s.read(fd, 4096), event(0, 0x3000));
    // Without the vDEVICE the device has no virtual ID: its faults are the host's again.
    s.f.destroy(s.vdev).unwrap();
    s.faults(&[0x5000], false);
    assert_eq!(s.logged.lock().unwrap().last(), Some(&0x5000));
    assert_eq!(s.read(fd, 4096), Vec::<u8>::new());
    // A new vDEVICE with another vSID: events carry the new one.
    s.f.vdevice_alloc(s.viommu, s.dev_id, 0x77).unwrap();
    s.faults(&[0x6000], false);
    let bytes = s.read(fd, 4096);
    let record = IommuVeventArmSmmuv3::read_from_bytes(&bytes[8..]).unwrap();
    assert_eq!(record.evt[0] >> 32, 0x77);
    // The queue destroyed (file closed first): faults go to the handler again.
    s.f.fd.close_veventq_file(fd).unwrap();
    s.f.destroy(queue).unwrap();
    s.faults(&[0x7000], false);
    assert_eq!(s.logged.lock().unwrap().last(), Some(&0x7000));
}

#[test]
fn the_waker_is_called_for_each_event_queued() {
    let s = setup();
    let (_, fd) = s.f.veventq_alloc(0, s.viommu, SMMU, 1, 0).unwrap();
    let woken = Arc::new(AtomicUsize::new(0));
    let count = woken.clone();
    let file = s.f.fd.veventq_file(fd).unwrap();
    file.set_waker(Some(Arc::new(move || {
        count.fetch_add(1, Ordering::SeqCst);
    })));
    s.faults(&[0x1000, 0x2000], false);
    assert_eq!(
        woken.load(Ordering::SeqCst),
        2,
        "a lost event wakes the reader too"
    );
    file.set_waker(None);
    s.faults(&[0x3000], false);
    assert_eq!(woken.load(Ordering::SeqCst), 2);
}

#[test]
fn closing_the_context_with_queues_open_releases_everything() {
    let s = setup();
    let (_, _fd) = s.f.veventq_alloc(0, s.viommu, SMMU, 4, 0).unwrap();
    s.faults(&[0x1000], false);
    let iommu = s.f.fd.iommu().clone();
    let Setup {
        f,
        fake,
        rid,
        logged,
        ..
    } = s;
    let Fixture { fd, .. } = f;
    let weak = Arc::downgrade(&fd);
    drop(fd);
    assert!(weak.upgrade().is_none(), "no cycle keeps the context alive");
    // The vDEVICE went with the context: its event handler too.
    fake.faults
        .lock()
        .unwrap()
        .push(FakeSmmu::fault(rid, 0x2000, false));
    iommu.handle_faults();
    assert_eq!(*logged.lock().unwrap(), vec![0x2000]);
}

#[test]
fn files_share_one_number_space_with_fault_queues() {
    let (f, _) = open_smmu();
    let (_, dev_id) = bind_smmu(&f, 3);
    let ioas = f.alloc().unwrap();
    let s2 = f
        .hwpt_paging(dev_id, ioas, HwptAllocFlags::NEST_PARENT.bits())
        .unwrap();
    let viommu = f
        .viommu_alloc(0, ViommuType::ARM_SMMUV3, dev_id, s2)
        .unwrap();
    let (_, fault_fd) = f.fault_alloc(0).unwrap();
    assert_eq!(fault_fd, 3);
    let (_, fd) = f.veventq_alloc(0, viommu, SMMU, 4, 0).unwrap();
    assert_eq!(fd, 4);
    assert_eq!(
        f.fd.fault_file(fd).err(),
        Some(Errno::EBADF),
        "not a fault file"
    );
    assert_eq!(f.fd.veventq_file(3).err(), Some(Errno::EBADF));
    f.fd.close_fault_file(3).unwrap();
    let (_, next) = f
        .veventq_alloc(0, viommu, VeventqType::TEGRA241_CMDQV, 4, 0)
        .unwrap();
    assert_eq!(next, 3);
}
