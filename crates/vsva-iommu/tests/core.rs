//! The IOMMU core against a recording driver: PASID allocation and its errors, SVA bind
//! reference counts, MMU-notifier-driven flushes, exit, page-request groups and responses.

use std::sync::{Arc, Mutex};

use vsva_iommu::FaultGroup;
use vsva_iommu::IopfHandler;
use vsva_iommu::UnrecoverableFault;
use vsva_iommu::{DeviceCaps, DomainSpec, Iommu, IommuError, IommuOps, PageRequest, ResponseCode};
use vsva_mem::Errno;
use vsva_mem::{Access, FrameAllocator, Pasid, PhysMem, PhysMemory, Rid};
use vsva_mm::{MapFlags, MemoryManager, Prot};
use vsva_pgtable::x86::X86Paging;

#[derive(Debug, Clone, PartialEq)]
enum Call {
    Attach(Rid),
    Set(Rid, u32, u16, DomainSpec),
    Clear(Rid, u32),
    Flush(Rid, u32, u16, u64, u64),
    Respond(Rid, Option<u32>, u16, ResponseCode),
}

/// A driver that records what the core asks and delivers queued page requests.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<Call>>,
    requests: Mutex<Vec<PageRequest>>,
    faults: Mutex<Vec<UnrecoverableFault>>,
}

impl Recorder {
    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
    fn responses(&self) -> Vec<Call> {
        self.take()
            .into_iter()
            .filter(|c| matches!(c, Call::Respond(..)))
            .collect()
    }
}

impl IommuOps for Recorder {
    fn pasid_bits(&self) -> u8 {
        20
    }
    fn attach_device(&self, dev: Rid, _: DeviceCaps) -> vsva_iommu::Result<()> {
        self.calls.lock().unwrap().push(Call::Attach(dev));
        Ok(())
    }
    fn set_pasid(
        &self,
        dev: Rid,
        pasid: Pasid,
        did: u16,
        d: &DomainSpec,
    ) -> vsva_iommu::Result<()> {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Set(dev, pasid.raw(), did, *d));
        Ok(())
    }
    fn clear_pasid(&self, dev: Rid, pasid: Pasid) -> vsva_iommu::Result<()> {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Clear(dev, pasid.raw()));
        Ok(())
    }
    fn flush(
        &self,
        dev: Rid,
        pasid: Pasid,
        did: u16,
        addr: u64,
        len: u64,
    ) -> vsva_iommu::Result<()> {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Flush(dev, pasid.raw(), did, addr, len));
        Ok(())
    }
    fn take_page_requests(&self) -> Vec<PageRequest> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
    fn page_response(
        &self,
        dev: Rid,
        pasid: Option<Pasid>,
        prgi: u16,
        code: ResponseCode,
    ) -> vsva_iommu::Result<()> {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Respond(dev, pasid.map(|p| p.raw()), prgi, code));
        Ok(())
    }
    fn take_faults(&self) -> Vec<UnrecoverableFault> {
        std::mem::take(&mut *self.faults.lock().unwrap())
    }
}

const SVA: DeviceCaps = DeviceCaps {
    pasid_bits: 20,
    ats: true,
    pri: true,
};

fn setup() -> (Arc<Iommu>, Arc<Recorder>, Arc<MemoryManager>) {
    let rec = Arc::new(Recorder::default());
    let iommu = Iommu::new(rec.clone());
    let mem: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(1 << 30).unwrap());
    let mm = MemoryManager::new(
        Arc::new(FrameAllocator::new(mem, 0, 1 << 30)),
        X86Paging::default(),
    );
    (iommu, rec, mm)
}

fn dev(n: u8) -> Rid {
    Rid::from_bdf(0, n, 0).unwrap()
}

fn pr(d: Rid, pasid: Pasid, addr: u64, write: bool, last: bool, prgi: u16) -> PageRequest {
    PageRequest {
        rid: d,
        pasid: Some(pasid),
        addr,
        read: true,
        write,
        exec: false,
        privileged: false,
        last,
        prgi,
    }
}

#[test]
fn two_devices_bound_to_one_process_share_its_pasid() {
    let (iommu, rec, mm) = setup();
    iommu.add_device(dev(3), SVA, 32).unwrap();
    iommu.add_device(dev(4), SVA, 32).unwrap();
    let p = mm.spawn().unwrap();
    let a = iommu.sva_bind(dev(3), &p).unwrap();
    let b = iommu.sva_bind(dev(4), &p).unwrap();
    assert_eq!(a.pasid, b.pasid);
    assert_ne!(a.pasid.raw(), 0);
    let root = p.page_table_root().unwrap();
    let calls = rec.take();
    let sets: Vec<_> = calls
        .iter()
        .filter(|c| matches!(c, Call::Set(..)))
        .collect();
    assert_eq!(sets.len(), 2);
    assert!(
        matches!(sets[0], Call::Set(_, _, _, DomainSpec::Sva { root: r, levels: 4, supervisor: false }) if *r == root)
    );
    // another process gets another PASID
    let q = mm.spawn().unwrap();
    assert_ne!(iommu.sva_bind(dev(3), &q).unwrap().pasid, a.pasid);
}

#[test]
fn bind_errors_have_linux_errnos() {
    let (iommu, _rec, mm) = setup();
    let p = mm.spawn().unwrap();
    let e = iommu.sva_bind(dev(9), &p).unwrap_err();
    assert_eq!(
        (e.clone(), e.errno()),
        (IommuError::NoDevice(dev(9)), Errno::ENODEV)
    );
    iommu
        .add_device(
            dev(5),
            DeviceCaps {
                pasid_bits: 0,
                ats: false,
                pri: false,
            },
            0,
        )
        .unwrap();
    assert_eq!(
        iommu.sva_bind(dev(5), &p).unwrap_err().errno(),
        Errno::EOPNOTSUPP
    );
    assert_eq!(
        iommu.add_device(dev(5), SVA, 0).unwrap_err().errno(),
        Errno::EEXIST
    );
    // a narrow device and a process whose PASID is beyond it
    iommu
        .add_device(
            dev(6),
            DeviceCaps {
                pasid_bits: 2,
                ats: true,
                pri: true,
            },
            8,
        )
        .unwrap();
    iommu.add_device(dev(7), SVA, 8).unwrap();
    let mut procs = vec![];
    for _ in 0..4 {
        let q = mm.spawn().unwrap();
        iommu.sva_bind(dev(7), &q).unwrap();
        procs.push(q);
    }
    let last = &procs[3];
    assert_eq!(iommu.pasid_of(last).unwrap().raw(), 4);
    assert_eq!(
        iommu.sva_bind(dev(6), last).unwrap_err().errno(),
        Errno::EOVERFLOW
    );
    assert!(iommu.sva_bind(dev(6), &procs[0]).is_ok());
    // a PASID already attached to a domain on that device
    let fresh = mm.spawn().unwrap();
    iommu
        .attach_pasid(dev(7), Pasid::new(5).unwrap(), &DomainSpec::Identity, None)
        .unwrap();
    assert_eq!(
        iommu.sva_bind(dev(7), &fresh).unwrap_err().errno(),
        Errno::EBUSY
    );
    // an exited process
    let gone = mm.spawn().unwrap();
    gone.exit().unwrap();
    assert_eq!(
        iommu.sva_bind(dev(7), &gone).unwrap_err().errno(),
        Errno::ESRCH
    );
}

#[test]
fn unbind_counts_references_and_releases_the_pasid() {
    let (iommu, rec, mm) = setup();
    iommu.add_device(dev(3), SVA, 32).unwrap();
    let p = mm.spawn().unwrap();
    let h1 = iommu.sva_bind(dev(3), &p).unwrap();
    let h2 = iommu.sva_bind(dev(3), &p).unwrap();
    assert_eq!(h1, h2);
    rec.take();
    iommu.sva_unbind(h1).unwrap();
    assert!(rec.take().is_empty(), "still referenced");
    iommu.sva_unbind(h2).unwrap();
    assert_eq!(rec.take(), vec![Call::Clear(dev(3), h1.pasid.raw())]);
    assert_eq!(
        iommu.pasid_of(&p),
        None,
        "PASID released with the last binding"
    );
    assert_eq!(iommu.sva_unbind(h2), Err(IommuError::NotBound));
    // after unbind the notifier is gone: munmap flushes nothing
    let va = p.mmap(None, 4096, Prot::RW, MapFlags::POPULATE).unwrap();
    p.munmap(va, 4096).unwrap();
    assert!(rec.take().is_empty());
}

#[test]
fn address_space_changes_flush_every_bound_device() {
    let (iommu, rec, mm) = setup();
    iommu.add_device(dev(3), SVA, 32).unwrap();
    iommu.add_device(dev(4), SVA, 32).unwrap();
    let p = mm.spawn().unwrap();
    let h = iommu.sva_bind(dev(3), &p).unwrap();
    iommu.sva_bind(dev(4), &p).unwrap();
    let did = iommu.domain_id(dev(3), h.pasid).unwrap();
    let va = p
        .mmap(None, 2 * 4096, Prot::RW, MapFlags::POPULATE)
        .unwrap();
    rec.take();
    p.munmap(va, 4096).unwrap();
    assert_eq!(
        rec.take(),
        vec![
            Call::Flush(dev(3), h.pasid.raw(), did, va.raw(), 4096),
            Call::Flush(dev(4), h.pasid.raw(), did, va.raw(), 4096),
        ]
    );
    assert_eq!(iommu.stats().flushes, 2);
}

#[test]
fn page_request_groups_are_resolved_by_the_memory_manager() {
    let (iommu, rec, mm) = setup();
    iommu.add_device(dev(3), SVA, 32).unwrap();
    let p = mm.spawn().unwrap();
    let h = iommu.sva_bind(dev(3), &p).unwrap();
    let va = p.mmap(None, 4 * 4096, Prot::RW, MapFlags::empty()).unwrap();
    let ro = p.mmap(None, 4096, Prot::READ, MapFlags::empty()).unwrap();
    rec.take();
    // a group of two pages, then a read-only page asked for write, then a privileged one
    *rec.requests.lock().unwrap() = vec![
        pr(dev(3), h.pasid, va.raw(), true, false, 7),
        pr(dev(3), h.pasid, va.raw() + 4096, true, true, 7),
        pr(dev(3), h.pasid, ro.raw(), true, true, 8),
        PageRequest {
            privileged: true,
            ..pr(dev(3), h.pasid, va.raw() + 8192, false, true, 9)
        },
    ];
    assert_eq!(iommu.handle_page_requests(), 3);
    let p_ = Some(h.pasid.raw());
    assert_eq!(
        rec.responses(),
        vec![
            Call::Respond(dev(3), p_, 7, ResponseCode::Success),
            Call::Respond(dev(3), p_, 8, ResponseCode::InvalidRequest),
            Call::Respond(dev(3), p_, 9, ResponseCode::InvalidRequest),
        ]
    );
    // the pages are there now, writable
    assert!(p.translate(va, Access::READ | Access::WRITE).is_ok());
    assert!(
        p.translate(
            vsva_mem::Va::new(va.raw() + 4096),
            Access::READ | Access::WRITE
        )
        .is_ok()
    );
    assert!(
        p.translate(vsva_mem::Va::new(va.raw() + 8192), Access::READ)
            .is_err()
    );
    // a late (second) answer for group 7 is dropped
    assert!(!iommu.respond(dev(3), Some(h.pasid), 7, ResponseCode::Success));
    let s = iommu.stats();
    assert_eq!(
        (
            s.responses_success,
            s.responses_invalid,
            s.iopf.late_responses
        ),
        (1, 2, 1)
    );
}

#[test]
fn bad_page_requests_are_answered_and_counted() {
    let (iommu, rec, mm) = setup();
    iommu.add_device(dev(3), SVA, 2).unwrap();
    let p = mm.spawn().unwrap();
    let h = iommu.sva_bind(dev(3), &p).unwrap();
    let va = p.mmap(None, 4096, Prot::RW, MapFlags::empty()).unwrap();
    rec.take();
    let other = Pasid::new(0x777).unwrap();
    *rec.requests.lock().unwrap() = vec![
        // unknown device
        pr(dev(9), h.pasid, va.raw(), false, true, 1),
        // a PASID nothing is attached to
        pr(dev(3), other, va.raw(), false, true, 2),
        // more outstanding than the allocation of 2
        pr(dev(3), h.pasid, va.raw(), false, false, 3),
        pr(dev(3), h.pasid, va.raw(), false, false, 3),
        pr(dev(3), h.pasid, va.raw(), false, true, 3),
    ];
    iommu.handle_page_requests();
    let r = rec.responses();
    assert!(r.contains(&Call::Respond(
        dev(9),
        Some(h.pasid.raw()),
        1,
        ResponseCode::InvalidRequest
    )));
    assert!(r.contains(&Call::Respond(
        dev(3),
        Some(0x777),
        2,
        ResponseCode::InvalidRequest
    )));
    assert!(r.contains(&Call::Respond(
        dev(3),
        Some(h.pasid.raw()),
        3,
        ResponseCode::InvalidRequest
    )));
    let s = iommu.stats();
    assert_eq!(s.unhandled, 1);
    assert!(s.iopf.over_limit >= 1);
}

#[test]
fn exit_blocks_the_pasid_and_answers_pending_groups() {
    let (iommu, rec, mm) = setup();
    iommu.add_device(dev(3), SVA, 32).unwrap();
    let p = mm.spawn().unwrap();
    let h = iommu.sva_bind(dev(3), &p).unwrap();
    let did = iommu.domain_id(dev(3), h.pasid).unwrap();
    rec.take();
    p.exit().unwrap();
    let calls = rec.take();
    assert!(calls.contains(&Call::Set(dev(3), h.pasid.raw(), did, DomainSpec::Blocked)));
    // page requests after exit are answered Invalid
    *rec.requests.lock().unwrap() = vec![pr(dev(3), h.pasid, 0x1000, false, true, 4)];
    iommu.handle_page_requests();
    assert_eq!(
        rec.responses(),
        vec![Call::Respond(
            dev(3),
            Some(h.pasid.raw()),
            4,
            ResponseCode::InvalidRequest
        )]
    );
    // unbind still cleans up
    iommu.sva_unbind(h).unwrap();
    assert_eq!(iommu.pasid_of(&p), None);
}

/// A handler that keeps groups for a later answer (as a nested domain's user-space relay).
#[derive(Default)]
struct Deferred(Mutex<Vec<FaultGroup>>);

impl IopfHandler for Deferred {
    fn handle(&self, g: FaultGroup) {
        self.0.lock().unwrap().push(g);
    }
}

#[test]
fn deferred_handlers_answer_later_and_removal_answers_for_them() {
    let (iommu, rec, _mm) = setup();
    iommu.add_device(dev(3), SVA, 32).unwrap();
    let h = Arc::new(Deferred::default());
    let pasid = Pasid::new(12).unwrap();
    iommu
        .attach_pasid(dev(3), pasid, &DomainSpec::Identity, Some(h.clone()))
        .unwrap();
    assert_eq!(
        iommu.attach_pasid(dev(3), pasid, &DomainSpec::Identity, None),
        Err(IommuError::PasidBusy { dev: dev(3), pasid })
    );
    rec.take();
    *rec.requests.lock().unwrap() = vec![
        pr(dev(3), pasid, 0x1000, false, true, 1),
        pr(dev(3), pasid, 0x2000, false, true, 2),
    ];
    iommu.handle_page_requests();
    assert_eq!(h.0.lock().unwrap().len(), 2);
    assert!(rec.responses().is_empty(), "nothing answered yet");
    assert!(iommu.respond(dev(3), Some(pasid), 1, ResponseCode::Success));
    assert!(!iommu.respond(dev(3), Some(pasid), 1, ResponseCode::Success));
    // removing the device answers the other group Invalid
    iommu.remove_device(dev(3)).unwrap();
    let r = rec.take();
    assert!(r.contains(&Call::Respond(
        dev(3),
        Some(12),
        2,
        ResponseCode::InvalidRequest
    )));
    assert!(r.contains(&Call::Clear(dev(3), 12)));
    assert_eq!(
        iommu.remove_device(dev(3)),
        Err(IommuError::NoDevice(dev(3)))
    );
}

#[test]
fn unrecoverable_faults_reach_the_device_handler() {
    let (iommu, rec, _mm) = setup();
    iommu.add_device(dev(3), SVA, 32).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    iommu
        .set_fault_handler(dev(3), Arc::new(move |f| s2.lock().unwrap().push(*f)))
        .unwrap();
    let f = UnrecoverableFault {
        dev: dev(3),
        pasid: None,
        addr: 0x1000,
        reason: 0x59,
        write: true,
        raw: [0; 4],
    };
    rec.faults.lock().unwrap().push(f);
    assert_eq!(iommu.handle_faults(), 1);
    assert_eq!(*seen.lock().unwrap(), vec![f]);
}

#[test]
fn device_caps_are_what_the_device_was_added_with() {
    let (iommu, _rec, _mm) = setup();
    assert_eq!(iommu.device_caps(dev(3)), None);
    iommu.add_device(dev(3), SVA, 32).unwrap();
    assert_eq!(iommu.device_caps(dev(3)), Some(SVA));
    iommu.remove_device(dev(3)).unwrap();
    assert_eq!(iommu.device_caps(dev(3)), None);
}

#[test]
fn a_page_request_group_that_cannot_be_allocated_is_answered_response_failure() {
    let (iommu, rec, mm) = setup();
    iommu.add_device(dev(3), SVA, 32).unwrap();
    let p = mm.spawn().unwrap();
    let h = iommu.sva_bind(dev(3), &p).unwrap();
    let va = p.mmap(None, 4096, Prot::RW, MapFlags::empty()).unwrap();
    rec.take();
    *rec.requests.lock().unwrap() = vec![
        pr(dev(3), h.pasid, va.raw(), true, true, 4),
        pr(dev(3), h.pasid, va.raw(), true, true, 5),
    ];
    // the first group's allocation fails (Linux `iommu_report_device_fault()` then
    // `iopf_group_response(abort_group, IOMMU_PAGE_RESP_FAILURE)`); the second is served
    vsva_mem::fail_nth::arm(1);
    assert_eq!(iommu.handle_page_requests(), 1);
    assert!(vsva_mem::fail_nth::disarm().fired);
    let p_ = Some(h.pasid.raw());
    assert_eq!(
        rec.responses(),
        vec![
            Call::Respond(dev(3), p_, 4, ResponseCode::ResponseFailure),
            Call::Respond(dev(3), p_, 5, ResponseCode::Success),
        ]
    );
    // nothing is left owed for the failed group
    assert!(!iommu.respond(dev(3), Some(h.pasid), 4, ResponseCode::Success));
}

#[test]
fn sva_bind_fails_cleanly_at_every_allocation() {
    let (iommu, _rec, mm) = setup();
    iommu.add_device(dev(3), SVA, 32).unwrap();
    iommu.add_device(dev(4), SVA, 32).unwrap();
    let p = mm.spawn().unwrap();
    let bind_both = || -> Result<_, IommuError> {
        let a = iommu.sva_bind(dev(3), &p)?;
        match iommu.sva_bind(dev(4), &p) {
            Ok(b) => Ok((a, b)),
            Err(e) => {
                iommu.sva_unbind(a).unwrap();
                Err(e)
            }
        }
    };
    let mut points = 0;
    for n in 1..100 {
        vsva_mem::fail_nth::arm(n);
        let result = bind_both();
        let outcome = vsva_mem::fail_nth::disarm();
        if !outcome.fired {
            let (a, b) = result.unwrap();
            iommu.sva_unbind(a).unwrap();
            iommu.sva_unbind(b).unwrap();
            points = n - 1;
            break;
        }
        // ENOMEM, and no PASID, domain ID or attachment is left
        assert_eq!(
            result.map(|_| ()).unwrap_err().errno(),
            Errno::ENOMEM,
            "N = {n}"
        );
        assert_eq!(iommu.pasid_of(&p), None, "N = {n}");
        assert_eq!(iommu.domain_ids_in_use(), 0, "N = {n}");
        assert_eq!(iommu.attachments_in_use(), 0, "N = {n}");
        // still usable
        let (a, b) = bind_both().unwrap();
        iommu.sva_unbind(a).unwrap();
        iommu.sva_unbind(b).unwrap();
    }
    // the address space's PASID, the first binding and the address space's domain ID; the
    // second binding
    assert_eq!(points, 4);
    assert_eq!(iommu.pasid_of(&p), None);
    assert_eq!(iommu.domain_ids_in_use(), 0);
}

#[test]
fn an_io_page_table_frees_every_table_frame_when_it_goes() {
    use vsva_iommu::{FormatTable, IoPgtable};
    use vsva_mem::PageSize;
    use vsva_pgtable::{PageTable, Perm};

    let mem: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(64 << 20).unwrap());
    let frames = Arc::new(FrameAllocator::new(mem, 0, 64 << 20));
    let free = frames.free_bytes();
    let table = FormatTable::new(
        PageTable::new(X86Paging::default(), frames.clone()).unwrap(),
        (1 << 48) - 1,
    );
    // two leaves far apart: a root, and two paths of three tables below it
    table
        .map(0x1000, 0x20_0000, PageSize::Size4K, Perm::RW)
        .unwrap();
    table
        .map(0x7f00_0000_0000, 0x20_1000, PageSize::Size4K, Perm::RW)
        .unwrap();
    assert_eq!(frames.allocated_frames(), 7);
    // Linux `free_io_pgtable_ops()` when the domain is freed
    drop(table);
    assert_eq!(frames.allocated_frames(), 0);
    assert_eq!(frames.free_bytes(), free);
}
