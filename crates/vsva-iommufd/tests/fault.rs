//! Fault queues through `Iommufd::ioctl` and the fault file: `IOMMU_FAULT_QUEUE_ALLOC`, a
//! nested HWPT allocated with `IOMMU_HWPT_FAULT_ID_VALID`, the demo device's PRI page requests
//! under a nested PASID read as `struct iommu_hwpt_pgfault` records, answers written as
//! `struct iommu_hwpt_page_response`, and the answers owed when an attachment or the queue
//! goes. Expected values are worked out from Linux's `drivers/iommu/iommufd/eventq.c` and
//! `hw_pagetable.c`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Fixture, GuestRam, open};
use vsva_demo::regs::{self, DeviceError, Op};
use vsva_demo::{DemoDevice, Progress};
use vsva_iommu::DeviceCaps;
use vsva_iommufd::abi::ioctl::IOMMU_HWPT_ALLOC;
use vsva_iommufd::abi::{
    Errno, HwptAllocFlags, HwptDataType, IommuHwptAlloc, IommuHwptPageResponse, IommuHwptPgfault,
    IommuHwptVtdS1, PageResponseCode, PgfaultFlags, PgfaultPerm,
};
use vsva_iommufd::{FaultFile, ObjectType, PollFlags};
use vsva_mem::{PageSize, Pasid, PhysMem, Rid};
use vsva_pgtable::x86::X86Paging;
use vsva_pgtable::{PageTable, Perm};
use zerocopy::{FromBytes, IntoBytes};

const NEST_PARENT: u32 = HwptAllocFlags::NEST_PARENT.bits();
const FAULT_ID_VALID: u32 = HwptAllocFlags::FAULT_ID_VALID.bits();
const PASID_FLAG: u32 = HwptAllocFlags::PASID.bits();
const PASID: u32 = 9;
/// Guest VAs the guest has not mapped yet: the device's accesses there fault.
const GVA: u64 = 0x5000_0000;
/// Where the test (as the guest's fault handler) maps the faulting pages.
const GPA: u64 = 0x1_0000;
/// Bound on every loop that waits for the device.
const STEPS: usize = 64;

/// A guest with a fault queue: 2 MiB of guest RAM at GPA 0 of an IOAS, a nesting parent on
/// it, a guest first-stage table (frames from GPA 1 MiB), a fault queue, and a nested HWPT on
/// that table with the queue, attached to PASID 9 of a demo device that has PASID, ATS and
/// PRI enabled.
struct Guest {
    f: Fixture,
    dev: Arc<DemoDevice>,
    dev_id: u32,
    rid: Rid,
    mem: Arc<dyn PhysMem>,
    table: PageTable<X86Paging>,
    fault_id: u32,
    fd: u32,
    file: Arc<FaultFile>,
    nested: u32,
}

/// What a driver's probe does to the demo device's capabilities (as `DemoDriver::probe`):
/// PASID, ATS (STU 4 KiB) and PRI with the device's whole request capacity.
fn enable_pasid_ats_pri(dev: &DemoDevice) {
    vsva_demo::enable_sva_capabilities(dev, false).unwrap();
}

fn guest() -> Guest {
    let f = open();
    let (dev, info) = f.plug_with(
        3,
        DeviceCaps {
            pasid_bits: 20,
            ats: true,
            pri: true,
        },
    );
    enable_pasid_ats_pri(&dev);
    let dev_id = f.fd.bind_device(info).unwrap();
    let ioas = f.alloc().unwrap();
    let GuestRam { mem, table, .. } = f.guest_ram(ioas);
    let s2 = f.hwpt_paging(dev_id, ioas, NEST_PARENT).unwrap();
    let (fault_id, fd) = f.fault_alloc(0).unwrap();
    let data = IommuHwptVtdS1 {
        flags: 0,
        pgtbl_addr: table.root(),
        addr_width: 48,
        __reserved: 0,
    };
    let nested = f
        .hwpt_alloc_with_fault(
            dev_id,
            s2,
            FAULT_ID_VALID | PASID_FLAG,
            HwptDataType::VTD_S1,
            data.as_bytes(),
            fault_id,
        )
        .unwrap();
    f.fd.attach(dev_id, nested, Some(PASID)).unwrap();
    let file = f.fd.fault_file(fd).unwrap();
    Guest {
        rid: dev.rid(),
        dev,
        dev_id,
        mem,
        table,
        fault_id,
        fd,
        file,
        nested,
        f,
    }
}

/// Rings the device's doorbell for `op` on `len` bytes at `dst` under PASID 9, through its
/// registers (what `DemoDriver::submit` does).
fn submit(dev: &DemoDevice, op: Op, dst: u64, len: u64, pattern: u64) {
    let pasid = Pasid::new(PASID).unwrap();
    vsva_demo::submit_to(
        dev,
        pasid,
        &vsva_demo::Command::new(op, 0, dst, len, pattern),
    );
}

/// Runs the device until it waits for a page, then runs the host's page-request handler.
fn run_until_waiting(g: &Guest) {
    assert_eq!(g.dev.run(), Progress::Waiting);
    assert!(g.f.host.service() > 0, "the page request reached the host");
}

fn records(bytes: &[u8]) -> Vec<IommuHwptPgfault> {
    bytes
        .chunks_exact(40)
        .map(|record| IommuHwptPgfault::read_from_bytes(record).unwrap())
        .collect()
}

/// Reads everything queued (room for 8 records).
fn read_all(file: &FaultFile) -> Vec<IommuHwptPgfault> {
    let mut buf = [0u8; 8 * 40];
    let n = file.read(&mut buf, 0).unwrap();
    records(&buf[..n])
}

fn response(cookie: u32, code: PageResponseCode) -> IommuHwptPageResponse {
    IommuHwptPageResponse { cookie, code }
}

#[test]
fn page_requests_reach_the_fault_file_and_the_answers_resume_the_device() {
    let g = guest();
    assert_eq!(
        g.f.fd.objects()[3..],
        [
            (g.fault_id, ObjectType::Fault),
            (g.nested, ObjectType::HwptNested)
        ]
    );
    assert_eq!(g.fd, 3, "the lowest free file number");
    assert_eq!(g.file.fault_id(), g.fault_id);
    assert_eq!(g.file.poll(), PollFlags::OUT, "nothing to read yet");

    // The guest has not mapped GVA..GVA+3 pages: each page the device writes is a page
    // request, queued on the fault file; the test maps the page in the guest's table (the
    // guest's fault handler) and answers SUCCESS; the device retries and goes on.
    submit(&g.dev, Op::WritePattern, GVA, 3 * 4096, 11);
    let mut groups = 0u32;
    for _ in 0..STEPS {
        match g.dev.run() {
            Progress::Done => break,
            Progress::Waiting => {}
            other => panic!("the device stopped: {other:?}"),
        }
        assert!(g.f.host.service() > 0);
        assert_eq!(
            g.file.poll(),
            PollFlags::OUT | PollFlags::IN | PollFlags::RDNORM
        );
        let got = read_all(&g.file);
        assert_eq!(got.len(), 1, "one request per group, one group at a time");
        let page = GVA + u64::from(groups) * 4096;
        assert_eq!(
            got[0],
            IommuHwptPgfault {
                flags: (PgfaultFlags::PASID_VALID | PgfaultFlags::LAST_PAGE).bits(),
                dev_id: g.dev_id,
                pasid: PASID,
                // the device's PRG index allocator hands 0, 1, 2 out in turn
                grpid: groups,
                // a write asks for read and write (PCIe 10.4.1: R and W both set)
                perm: (PgfaultPerm::READ | PgfaultPerm::WRITE).bits(),
                __reserved: 0,
                addr: page,
                length: 0,
                // each group is answered before the next is read: cookie 1 is free again
                cookie: 1,
            }
        );
        assert_eq!(g.file.poll(), PollFlags::OUT, "read: nothing queued");
        assert_eq!(g.file.fault().awaiting_response(), 1);
        g.table
            .map(
                page,
                GPA + u64::from(groups) * 4096,
                PageSize::Size4K,
                Perm::USER_RW,
            )
            .unwrap();
        let answer = response(got[0].cookie, PageResponseCode::SUCCESS);
        assert_eq!(g.file.write(answer.as_bytes(), 0), Ok(8));
        assert_eq!(g.file.fault().awaiting_response(), 0);
        groups += 1;
    }
    assert_eq!(groups, 3);
    assert_eq!(g.dev.mmio_read(regs::RESULT), 3 * 4096);
    let mut got = vec![0u8; 3 * 4096];
    g.mem.read(GPA, &mut got).unwrap();
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, &b)| b == regs::pattern_byte(11, i as u64)),
        "the device's writes are in guest RAM at the GPAs the guest chose"
    );
    let stats = g.f.host.iommu.stats();
    assert_eq!((stats.responses_success, stats.responses_invalid), (3, 0));
    // Everything mapped now: a second run asks for nothing.
    submit(&g.dev, Op::WritePattern, GVA, 3 * 4096, 12);
    assert_eq!(g.dev.run(), Progress::Done);
    assert_eq!(g.f.host.service(), 0);
    assert!(read_all(&g.file).is_empty());
}

#[test]
fn reads_and_writes_take_whole_records_at_offset_zero() {
    let g = guest();
    let file = &g.file;
    // Linux checks the offset and the count before anything else: ESPIPE, queued or not.
    let mut buf = [0u8; 80];
    assert_eq!(file.read(&mut buf[..39], 0), Err(Errno::ESPIPE));
    assert_eq!(file.read(&mut buf[..40], 1), Err(Errno::ESPIPE));
    assert_eq!(
        file.read(&mut buf[..40], 0),
        Ok(0),
        "nothing queued: 0 bytes"
    );
    assert_eq!(file.read(&mut buf[..0], 0), Ok(0));
    assert_eq!(file.write(&[0; 7], 0), Err(Errno::ESPIPE));
    assert_eq!(file.write(&[0; 8], 8), Err(Errno::ESPIPE));
    assert_eq!(file.write(&[], 0), Ok(0));
    let unknown = response(1, PageResponseCode::SUCCESS);
    assert_eq!(
        file.write(unknown.as_bytes(), 0),
        Err(Errno::EINVAL),
        "no group awaits a response under cookie 1"
    );

    // A group of two requests, straight into the unit's page request queue: PRG index 7 on
    // PASID 9, an exec read then a privileged write closing the group.
    let pasid = Some(Pasid::new(PASID).unwrap());
    let request = |addr, write, exec, privileged, last| vsva_pcie::PageRequest {
        rid: g.rid,
        pasid,
        addr,
        read: true,
        write,
        exec,
        privileged,
        last,
        prgi: 7,
    };
    g.f.host
        .unit
        .page_request(&request(0x7000_0000, false, true, false, false));
    g.f.host
        .unit
        .page_request(&request(0x7000_1000, true, false, true, true));
    assert_eq!(g.f.host.service(), 1, "one complete group");
    assert_eq!(
        file.poll(),
        PollFlags::OUT | PollFlags::IN | PollFlags::RDNORM
    );
    // Room for one record only: the group does not fit, is put back, and the read returns 0
    // bytes (iommufd_fault_fops_read() breaks out with done == 0 and rc == 0).
    assert_eq!(file.read(&mut buf[..40], 0), Ok(0));
    assert_eq!(file.fault().pending(), 1);
    assert_eq!(file.read(&mut buf, 0), Ok(80));
    let got = records(&buf);
    let pasid_valid = PgfaultFlags::PASID_VALID.bits();
    assert_eq!(
        (got[0].flags, got[0].grpid, got[0].addr, got[0].perm),
        (
            pasid_valid,
            7,
            0x7000_0000,
            (PgfaultPerm::READ | PgfaultPerm::EXEC).bits()
        )
    );
    assert_eq!(
        (got[1].flags, got[1].grpid, got[1].addr, got[1].perm),
        (
            pasid_valid | PgfaultFlags::LAST_PAGE.bits(),
            7,
            0x7000_1000,
            (PgfaultPerm::READ | PgfaultPerm::WRITE | PgfaultPerm::PRIV).bits()
        )
    );
    assert_eq!(
        (got[0].cookie, got[1].cookie),
        (1, 1),
        "one cookie per group"
    );
    assert!(got.iter().all(|r| r.dev_id == g.dev_id && r.pasid == PASID));

    // The code is checked before the cookie: a bad code leaves the group awaiting.
    let bad_code = response(1, PageResponseCode(2));
    assert_eq!(file.write(bad_code.as_bytes(), 0), Err(Errno::EINVAL));
    assert_eq!(file.fault().awaiting_response(), 1);
    // A good answer then a bad one: the good one counts, the write returns its 8 bytes.
    let mut two = response(1, PageResponseCode::INVALID).as_bytes().to_vec();
    two.extend_from_slice(response(5, PageResponseCode::SUCCESS).as_bytes());
    assert_eq!(file.write(&two, 0), Ok(8));
    assert_eq!(file.fault().awaiting_response(), 0);
    assert_eq!(
        file.write(response(1, PageResponseCode::SUCCESS).as_bytes(), 0),
        Err(Errno::EINVAL),
        "answered already"
    );
    assert_eq!(g.f.host.iommu.stats().responses_invalid, 1);
}

#[test]
fn detach_answers_the_queued_and_the_read_groups_invalid() {
    let g = guest();
    let wakes = Arc::new(AtomicUsize::new(0));
    let counter = wakes.clone();
    g.file.set_waker(Some(Arc::new(move || {
        counter.fetch_add(1, Ordering::Relaxed);
    })));

    // Queued, not read: the detach answers it and the device sees the failure.
    submit(&g.dev, Op::WritePattern, GVA, 4096, 1);
    run_until_waiting(&g);
    assert_eq!(wakes.load(Ordering::Relaxed), 1, "the waker ran once");
    assert_eq!(g.file.fault().pending(), 1);
    g.f.fd.detach(g.dev_id, Some(PASID)).unwrap();
    assert_eq!(g.file.fault().pending(), 0);
    assert_eq!(g.file.poll(), PollFlags::OUT);
    assert_eq!(
        g.dev.run(),
        Progress::Failed(DeviceError::PageRequestInvalid)
    );

    // Read, awaiting a response: the same, and the late answer's cookie is unknown.
    g.f.fd.attach(g.dev_id, g.nested, Some(PASID)).unwrap();
    submit(&g.dev, Op::WritePattern, GVA, 4096, 1);
    run_until_waiting(&g);
    let got = read_all(&g.file);
    assert_eq!(got.len(), 1);
    assert_eq!(g.file.fault().awaiting_response(), 1);
    g.f.fd.detach(g.dev_id, Some(PASID)).unwrap();
    assert_eq!(g.file.fault().awaiting_response(), 0);
    assert_eq!(
        g.dev.run(),
        Progress::Failed(DeviceError::PageRequestInvalid)
    );
    let late = response(got[0].cookie, PageResponseCode::SUCCESS);
    assert_eq!(g.file.write(late.as_bytes(), 0), Err(Errno::EINVAL));
    let stats = g.f.host.iommu.stats();
    assert_eq!(stats.responses_success, 0);
    // Each group was answered once, by the core as it detached: the queue sent no second,
    // late answer.
    assert_eq!(stats.responses_invalid, 2);
    assert_eq!(stats.iopf.late_responses, 0);
}

#[test]
fn a_held_or_open_fault_queue_cannot_be_destroyed() {
    let g = guest();
    let f = &g.f;
    // Held by the nested HWPT and by its open file: EBUSY.
    assert_eq!(f.destroy(g.fault_id), Err(Errno::EBUSY));
    // A group waits, read and unanswered, when the device goes away from the HWPT.
    submit(&g.dev, Op::WritePattern, GVA, 4096, 1);
    run_until_waiting(&g);
    assert_eq!(read_all(&g.file).len(), 1);
    f.fd.detach(g.dev_id, Some(PASID)).unwrap();
    assert_eq!(f.destroy(g.nested), Ok(()));
    assert_eq!(
        f.destroy(g.fault_id),
        Err(Errno::EBUSY),
        "the open file still holds it"
    );
    let Guest { file, fd, .. } = g;
    drop(file);
    assert_eq!(f.fd.close_fault_file(fd), Ok(()));
    assert_eq!(f.fd.close_fault_file(fd), Err(Errno::EBADF));
    assert_eq!(f.fd.fault_file(fd).err(), Some(Errno::EBADF));
    assert_eq!(f.destroy(g.fault_id), Ok(()));
    assert_eq!(f.fd.get_fault(g.fault_id).err(), Some(Errno::ENOENT));
}

#[test]
fn alloc_checks_and_fault_id_lookups() {
    let f = open();
    let (_, dev_id) = f.plug_and_bind(3);
    assert_eq!(f.fault_alloc(1), Err(Errno::EOPNOTSUPP));
    let ioas = f.alloc().unwrap();
    let (fault_id, fd) = f.fault_alloc(0).unwrap();
    assert_eq!((fault_id, fd), (3, 3));
    assert_eq!(f.fault_alloc(0), Ok((4, 4)), "the next ID and file number");
    // A paging HWPT may take a fault queue, unless it is a nesting parent.
    let mut cmd = IommuHwptAlloc {
        size: 48,
        flags: FAULT_ID_VALID,
        dev_id,
        pt_id: ioas,
        fault_id,
        ..Default::default()
    };
    assert_eq!(f.call(IOMMU_HWPT_ALLOC, &mut cmd), Ok(()));
    let paging = cmd.out_hwpt_id;
    assert_eq!(
        f.fd.get_hwpt_paging(paging)
            .unwrap()
            .fault()
            .map(|q| q.id()),
        Some(fault_id)
    );
    cmd.flags = FAULT_ID_VALID | NEST_PARENT;
    assert_eq!(f.call(IOMMU_HWPT_ALLOC, &mut cmd), Err(Errno::EOPNOTSUPP));
    // fault_id must name a fault queue: an IOAS or a free ID is ENOENT, nothing is kept.
    let before = f.fd.objects().len();
    cmd.flags = FAULT_ID_VALID;
    for not_a_queue in [ioas, paging, 99] {
        cmd.fault_id = not_a_queue;
        assert_eq!(f.call(IOMMU_HWPT_ALLOC, &mut cmd), Err(Errno::ENOENT));
    }
    assert_eq!(f.fd.objects().len(), before);
    // Without the flag, fault_id is not looked at and the HWPT has no queue.
    cmd.flags = 0;
    assert_eq!(f.call(IOMMU_HWPT_ALLOC, &mut cmd), Ok(()));
    assert!(
        f.fd.get_hwpt_paging(cmd.out_hwpt_id)
            .unwrap()
            .fault()
            .is_none()
    );
    // The HWPT holds the queue until it goes.
    f.fd.close_fault_file(fd).unwrap();
    assert_eq!(f.destroy(fault_id), Err(Errno::EBUSY));
    assert_eq!(f.destroy(paging), Ok(()));
    assert_eq!(f.destroy(fault_id), Ok(()));
    // Closing the context with a queue and its file still open is fine.
    drop(f);
}
