//! Accesses (`iommufd_access_*()`): an emulated device pinning and copying through an IOAS,
//! the unmap callback and its `EDEADLOCK`, alignment, lifetimes, locked-memory accounting,
//! and VFIO's emulated devices on top. Errno values and their order are those of
//! `drivers/iommu/iommufd/device.c` and `io_pagetable.c` (see each module's docs).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use common::{FIXED_RW, Fixture, PAGE, ShmemResolver, open};
use vsva_iommufd::EmulatedDriver;
use vsva_iommufd::RwBuf;
use vsva_iommufd::abi::ioctl::{
    IOMMU_IOAS_CHANGE_PROCESS, IOMMU_IOAS_MAP_FILE, VFIO_DEVICE_ATTACH_IOMMUFD_PT,
    VFIO_DEVICE_DETACH_IOMMUFD_PT,
};
use vsva_iommufd::abi::{
    Errno, IoasMapFlags, IommuIoasChangeProcess, IommuIoasCopy, IommuIoasMapFile,
    VfioDeviceAttachIommufdPt, VfioDeviceDetachIommufdPt,
};
use vsva_iommufd::{Access, AccessOps};
use vsva_iommufd::{Held, ObjectType};
use vsva_iommufd::{ProcessMemory, VfioDevice};
use vsva_mm::{MapFlags, Prot};
use zerocopy::IntoBytes;

const FIXED_RO: u32 = IoasMapFlags::READABLE.bits() | IoasMapFlags::FIXED_IOVA.bits();
const FIXED_WO: u32 = IoasMapFlags::WRITEABLE.bits() | IoasMapFlags::FIXED_IOVA.bits();
const IOVA: u64 = 0x10_0000;

/// A driver that records its unmap calls and unpins what it pinned there when `cooperative`.
#[derive(Default)]
struct Driver {
    pins: bool,
    cooperative: AtomicBool,
    calls: Mutex<Vec<(u64, u64)>>,
    /// The driver's own record of its pins: (iova, length).
    pinned: Mutex<Vec<(u64, u64)>>,
}

impl Driver {
    fn new(pins: bool, cooperative: bool) -> Arc<Driver> {
        Arc::new(Driver {
            pins,
            cooperative: AtomicBool::new(cooperative),
            ..Default::default()
        })
    }

    fn calls(&self) -> Vec<(u64, u64)> {
        self.calls.lock().unwrap().clone()
    }

    fn pin(&self, access: &Access, iova: u64, len: u64, write: bool) -> Result<Vec<u64>, Errno> {
        let pas = access.pin_pages(iova, len, write)?;
        self.pinned.lock().unwrap().push((iova, len));
        Ok(pas)
    }
}

impl AccessOps for Driver {
    fn needs_pin_pages(&self) -> bool {
        self.pins
    }

    fn unmap(&self, access: &Access, iova: u64, length: u64) {
        self.calls.lock().unwrap().push((iova, length));
        if !self.cooperative.load(Ordering::Relaxed) {
            return;
        }
        let last = iova.saturating_add(length - 1);
        let mut pinned = self.pinned.lock().unwrap();
        pinned.retain(|&(i, l)| {
            let inside = i <= last && i + l > iova;
            if inside {
                access.unpin_pages(i, l);
            }
            !inside
        });
    }
}

/// An IOAS with `pages` pages of fresh process memory mapped read-write at [`IOVA`];
/// returns the IOAS and the memory's user address.
fn ioas_with(f: &Fixture, pages: u64) -> (u32, u64) {
    let ioas = f.alloc().unwrap();
    let va = f.buffer(pages * PAGE);
    f.map(ioas, FIXED_RW, va, pages * PAGE, IOVA).unwrap();
    (ioas, va)
}

/// A new IOAS mapping at [`IOVA`] what `ioas` maps there, `length` bytes (IOAS_COPY: the
/// same pages, shared).
fn copy_to_new_ioas(f: &Fixture, ioas: u32, length: u64) -> u32 {
    let other = f.alloc().unwrap();
    let mut copy = IommuIoasCopy {
        size: 40,
        flags: FIXED_RW,
        dst_ioas_id: other,
        src_ioas_id: ioas,
        length,
        dst_iova: IOVA,
        src_iova: IOVA,
    };
    f.fd.ioas_copy(&mut copy).unwrap();
    other
}

fn create(f: &Fixture, driver: &Arc<Driver>) -> Held<Access> {
    f.fd.access_create(driver.clone(), f.host.mem.clone())
        .unwrap()
}

#[test]
fn pinned_pages_are_the_process_memory_and_charged_once() {
    let f = open();
    let (ioas, va) = ioas_with(&f, 4);
    let driver = Driver::new(true, true);
    let access = create(&f, &driver);
    access.attach(ioas).unwrap();
    assert_eq!(access.ioas_id(), Some(ioas));

    let pas = driver.pin(&access, IOVA + PAGE, 2 * PAGE, true).unwrap();
    assert_eq!(pas.len(), 2);
    assert_eq!(f.p.locked_pages(), 2, "only the pinned pages are charged");
    for (k, &pa) in pas.iter().enumerate() {
        assert!(f.host.mm.pin_count(pa) > 0);
        // what the device writes at the page is the program's memory
        f.host.mem.write(pa + 8, &[0x5a, k as u8]).unwrap();
        let at = va + PAGE * (k as u64 + 1) + 8;
        assert_eq!(f.read_user(at, 2), vec![0x5a, k as u8]);
    }
    // a second pin of one of them counts, and is charged nothing more
    let again = driver.pin(&access, IOVA + PAGE, PAGE, false).unwrap();
    assert_eq!(again, vec![pas[0]]);
    assert_eq!(f.p.locked_pages(), 2);
    access.unpin_pages(IOVA + PAGE, 2 * PAGE);
    assert!(f.host.mm.pin_count(pas[0]) > 0, "still pinned once");
    assert_eq!(f.host.mm.pin_count(pas[1]), 0);
    assert_eq!(f.p.locked_pages(), 1);
    access.unpin_pages(IOVA + PAGE, PAGE);
    assert_eq!(f.host.mm.pin_count(pas[0]), 0);
    assert_eq!(f.p.locked_pages(), 0);
    f.fd.access_destroy(access);
}

#[test]
fn pin_pages_errors_in_linux_order() {
    let f = open();
    let (ioas, va) = ioas_with(&f, 4);
    let driver = Driver::new(true, true);
    let access = create(&f, &driver);
    assert_eq!(
        access.pin_pages(IOVA, PAGE, false),
        Err(Errno::ENOENT),
        "not attached"
    );
    access.attach(ioas).unwrap();
    assert_eq!(access.pin_pages(IOVA, 0, false), Err(Errno::EINVAL));
    assert_eq!(
        access.pin_pages(u64::MAX - PAGE + 2, PAGE, false),
        Err(Errno::EOVERFLOW)
    );
    assert_eq!(
        access.pin_pages(IOVA - PAGE, PAGE, false),
        Err(Errno::ENOENT),
        "no area"
    );
    assert_eq!(
        access.pin_pages(IOVA + 3 * PAGE, 2 * PAGE, false),
        Err(Errno::ENOENT),
        "runs past the area"
    );
    assert_eq!(
        access.pin_pages(IOVA + 0x800, PAGE, false),
        Err(Errno::EINVAL),
        "not on a page of the memory"
    );
    // rights: a read-only and a write-only mapping right after the first
    f.map(ioas, FIXED_RO, va, PAGE, IOVA + 4 * PAGE).unwrap();
    f.map(ioas, FIXED_WO, va, PAGE, IOVA + 5 * PAGE).unwrap();
    assert_eq!(
        access.pin_pages(IOVA + 4 * PAGE, PAGE, true),
        Err(Errno::EPERM)
    );
    assert_eq!(
        access.pin_pages(IOVA + 5 * PAGE, PAGE, false),
        Err(Errno::EPERM)
    );
    assert_eq!(
        access
            .pin_pages(IOVA + 4 * PAGE, PAGE, false)
            .map(|v| v.len()),
        Ok(1)
    );
    access.unpin_pages(IOVA + 4 * PAGE, PAGE);
    // a failure in a later area unpins what earlier areas pinned
    assert_eq!(
        access.pin_pages(IOVA + 3 * PAGE, 2 * PAGE, true),
        Err(Errno::EPERM)
    );
    assert_eq!(
        f.p.locked_pages(),
        0,
        "the first area's page was unpinned again"
    );
    // across the join of two areas: one page from each
    let pas = access.pin_pages(IOVA + 3 * PAGE, 2 * PAGE, false).unwrap();
    assert_eq!(pas.len(), 2);
    access.unpin_pages(IOVA + 3 * PAGE, 2 * PAGE);
    assert_eq!(f.p.locked_pages(), 0);
    // a length that ends inside a page pins that page
    assert_eq!(
        access.pin_pages(IOVA, PAGE + 1, false).map(|v| v.len()),
        Ok(2)
    );
    access.unpin_pages(IOVA, PAGE + 1);
    // an access that did not ask to pin cannot
    let copier = create(&f, &Driver::new(false, true));
    copier.attach(ioas).unwrap();
    assert_eq!(copier.pin_pages(IOVA, PAGE, false), Err(Errno::EINVAL));
    f.fd.access_destroy(copier);
    f.fd.access_destroy(access);
}

#[test]
fn rw_copies_any_alignment_across_areas() {
    let f = open();
    let ioas = f.alloc().unwrap();
    let a = f.user_bytes(&[0x11; PAGE as usize]);
    let b = f.user_bytes(&[0x22; PAGE as usize]);
    f.map(ioas, FIXED_RW, a, PAGE, IOVA).unwrap();
    f.map(ioas, FIXED_RO, b, PAGE, IOVA + PAGE).unwrap();
    let access = create(&f, &Driver::new(false, true));
    let mut buf = [0u8; 16];
    assert_eq!(
        access.rw(IOVA, RwBuf::Read(&mut buf)),
        Err(Errno::ENOENT),
        "not attached"
    );
    access.attach(ioas).unwrap();
    assert_eq!(
        f.fd.get_ioas(ioas).unwrap().iopt().alignment(),
        1,
        "a copier asks no alignment"
    );

    access.rw(IOVA + PAGE - 8, RwBuf::Read(&mut buf)).unwrap();
    assert_eq!(&buf[..8], &[0x11; 8]);
    assert_eq!(&buf[8..], &[0x22; 8]);
    access.rw(IOVA + 3, RwBuf::Write(b"hello")).unwrap();
    assert_eq!(f.read_user(a + 3, 5), b"hello");

    // bad input
    assert_eq!(access.rw(IOVA, RwBuf::Read(&mut [])), Err(Errno::EINVAL));
    assert_eq!(
        access.rw(u64::MAX - 4, RwBuf::Read(&mut buf)),
        Err(Errno::EOVERFLOW)
    );
    assert_eq!(
        access.rw(IOVA + PAGE - 4, RwBuf::Write(b"12345678")),
        Err(Errno::EPERM),
        "the second area is read-only"
    );
    assert_eq!(
        f.read_user(a + PAGE - 4, 4),
        b"1234",
        "areas before the failing one are copied, as in Linux"
    );
    let mut big = vec![0u8; 2 * PAGE as usize];
    assert_eq!(
        access.rw(IOVA + 8, RwBuf::Read(&mut big)),
        Err(Errno::ENOENT),
        "gap"
    );
    assert_eq!(access.rw(0, RwBuf::Read(&mut buf)), Err(Errno::ENOENT));
    f.fd.access_destroy(access);
}

#[test]
fn attaching_a_pinning_access_needs_page_aligned_areas() {
    let f = open();
    let ioas = f.alloc().unwrap();
    let va = f.buffer(PAGE);
    f.map(ioas, FIXED_RW, va, 0x800, IOVA).unwrap();
    let access = create(&f, &Driver::new(true, true));
    assert_eq!(access.attach(ioas), Err(Errno::EADDRINUSE));
    assert_eq!(access.ioas_id(), None);
    assert_eq!(f.fd.get_ioas(ioas).unwrap().iopt().alignment(), 1);
    f.unmap(ioas, IOVA, 0x800).unwrap();
    access.attach(ioas).unwrap();
    assert_eq!(f.fd.get_ioas(ioas).unwrap().iopt().alignment(), PAGE);
    // while it is attached, maps must be page multiples
    assert_eq!(f.map(ioas, FIXED_RW, va, 0x800, IOVA), Err(Errno::EINVAL));
    access.detach();
    assert_eq!(
        f.fd.get_ioas(ioas).unwrap().iopt().alignment(),
        1,
        "falls back"
    );
    f.fd.access_destroy(access);
}

#[test]
fn unmap_asks_the_access_to_unpin_and_waits() {
    let f = open();
    let (ioas, _) = ioas_with(&f, 4);
    let driver = Driver::new(true, true);
    let access = create(&f, &driver);
    access.attach(ioas).unwrap();
    let pas = driver.pin(&access, IOVA + 2 * PAGE, PAGE, true).unwrap();
    assert_eq!(f.unmap(ioas, IOVA, 4 * PAGE), Ok(4 * PAGE));
    assert_eq!(
        driver.calls(),
        vec![(IOVA, 4 * PAGE)],
        "called once, with the whole area"
    );
    assert_eq!(f.host.mm.pin_count(pas[0]), 0);
    assert_eq!(f.p.locked_pages(), 0);
    f.fd.access_destroy(access);
}

#[test]
fn an_access_that_never_unpins_makes_unmap_fail_with_edeadlock() {
    let f = open();
    let (ioas, _) = ioas_with(&f, 2);
    let driver = Driver::new(true, false);
    let access = create(&f, &driver);
    access.attach(ioas).unwrap();
    driver.pin(&access, IOVA, PAGE, false).unwrap();
    assert_eq!(f.unmap(ioas, IOVA, 2 * PAGE), Err(Errno::EDEADLOCK));
    assert_eq!(
        driver.calls().len(),
        101,
        "100 retries after the first request"
    );
    // the area stays, closed to new pins and copies
    assert_eq!(f.fd.get_ioas(ioas).unwrap().iopt().areas().len(), 1);
    assert_eq!(
        access.pin_pages(IOVA + PAGE, PAGE, false),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        access.rw(IOVA, RwBuf::Read(&mut [0u8; 4])),
        Err(Errno::EINVAL)
    );
    // once the driver lets go, the unmap goes through
    driver.cooperative.store(true, Ordering::Relaxed);
    assert_eq!(f.unmap(ioas, IOVA, 2 * PAGE), Ok(2 * PAGE));
    assert_eq!(f.p.locked_pages(), 0);
    f.fd.access_destroy(access);
}

#[test]
fn unpins_of_pages_never_pinned_leave_the_real_pins_counted() {
    let f = open();
    let (ioas, _) = ioas_with(&f, 4);
    let driver = Driver::new(true, true);
    let access = create(&f, &driver);
    access.attach(ioas).unwrap();
    let pas = driver.pin(&access, IOVA, PAGE, true).unwrap();
    // driver bugs: logged, nothing unpinned
    access.unpin_pages(IOVA + PAGE, PAGE);
    access.unpin_pages(IOVA + PAGE, 2 * PAGE);
    access.unpin_pages(IOVA, 0);
    access.unpin_pages(u64::MAX - PAGE + 1, 2 * PAGE);
    access.unpin_pages(IOVA + 8 * PAGE, PAGE);
    assert!(f.host.mm.pin_count(pas[0]) > 0);
    assert_eq!(f.p.locked_pages(), 1);
    // the area still counts the real pin: its unmap asks the driver, which lets go
    assert_eq!(f.unmap(ioas, IOVA, 4 * PAGE), Ok(4 * PAGE));
    assert_eq!(driver.calls(), vec![(IOVA, 4 * PAGE)]);
    assert_eq!(f.host.mm.pin_count(pas[0]), 0);
    assert_eq!(f.p.locked_pages(), 0);
    f.fd.access_destroy(access);
}

#[test]
fn an_unpin_through_another_ioas_does_not_take_a_pin_it_does_not_hold() {
    let f = open();
    let (ioas, _) = ioas_with(&f, 2);
    let other = copy_to_new_ioas(&f, ioas, 2 * PAGE);
    let pinner = Driver::new(true, true);
    let a = create(&f, &pinner);
    a.attach(ioas).unwrap();
    let pas = pinner.pin(&a, IOVA, PAGE, true).unwrap();
    // another access unpins the same page of the shared memory through its own IOAS, where
    // it pinned nothing: a driver bug, logged
    let buggy = create(&f, &Driver::new(true, true));
    buggy.attach(other).unwrap();
    buggy.unpin_pages(IOVA, PAGE);
    assert!(
        f.host.mm.pin_count(pas[0]) > 0,
        "the pin is still the first access's"
    );
    assert_eq!(f.p.locked_pages(), 1);
    assert_eq!(f.unmap(ioas, IOVA, 2 * PAGE), Ok(2 * PAGE));
    assert_eq!(pinner.calls().len(), 1);
    assert_eq!(f.host.mm.pin_count(pas[0]), 0);
    assert_eq!(f.p.locked_pages(), 0);
    f.fd.access_destroy(a);
    f.fd.access_destroy(buggy);
}

#[test]
fn every_attached_access_is_asked() {
    let f = open();
    let (ioas, _) = ioas_with(&f, 2);
    let pinner = Driver::new(true, true);
    let bystander = Driver::new(false, true);
    let a = create(&f, &pinner);
    let b = create(&f, &bystander);
    a.attach(ioas).unwrap();
    b.attach(ioas).unwrap();
    pinner.pin(&a, IOVA, PAGE, true).unwrap();
    f.unmap(ioas, IOVA, 2 * PAGE).unwrap();
    assert_eq!(pinner.calls(), vec![(IOVA, 2 * PAGE)]);
    assert_eq!(
        bystander.calls(),
        vec![(IOVA, 2 * PAGE)],
        "Linux asks every access"
    );
    // an unmap of an area nobody pinned asks nobody
    let va = f.buffer(PAGE);
    f.map(ioas, FIXED_RW, va, PAGE, IOVA).unwrap();
    f.unmap(ioas, IOVA, PAGE).unwrap();
    assert_eq!(pinner.calls().len(), 1);
    f.fd.access_destroy(a);
    f.fd.access_destroy(b);
}

#[test]
fn attach_replace_detach_and_lifetimes() {
    let f = open();
    let (ioas, _) = ioas_with(&f, 2);
    let (other, _) = ioas_with(&f, 2);
    let driver = Driver::new(true, true);
    let access = create(&f, &driver);
    let id = access.id();
    assert!(f.fd.objects().contains(&(id, ObjectType::Access)));
    assert_eq!(f.destroy(id), Err(Errno::EBUSY), "the driver holds it");

    assert_eq!(
        access.replace(ioas),
        Err(Errno::ENOENT),
        "replace needs an attachment"
    );
    assert_eq!(access.attach(999), Err(Errno::ENOENT));
    assert_eq!(access.attach(id), Err(Errno::ENOENT), "not an IOAS");
    access.attach(ioas).unwrap();
    assert_eq!(access.attach(other), Err(Errno::EINVAL), "attached already");
    assert_eq!(
        f.destroy(ioas),
        Err(Errno::EBUSY),
        "the access holds its IOAS"
    );

    driver.pin(&access, IOVA, PAGE, true).unwrap();
    access.replace(ioas).unwrap();
    assert!(driver.calls().is_empty(), "the same IOAS is no change");
    access.replace(other).unwrap();
    assert_eq!(
        driver.calls(),
        vec![(0, u64::MAX)],
        "the old IOAS is unmapped whole"
    );
    assert_eq!(f.p.locked_pages(), 0);
    assert_eq!(access.ioas_id(), Some(other));
    f.destroy(ioas).unwrap();
    assert_eq!(f.destroy(other), Err(Errno::EBUSY));

    driver.pin(&access, IOVA, PAGE, true).unwrap();
    access.detach();
    assert_eq!(driver.calls().len(), 2);
    assert_eq!(f.p.locked_pages(), 0);
    assert_eq!(access.pin_pages(IOVA, PAGE, false), Err(Errno::ENOENT));
    access.detach(); // a driver bug: logged, nothing happens
    access.unpin_pages(IOVA, PAGE); // likewise
    f.destroy(other).unwrap();

    f.fd.access_destroy(access);
    assert_eq!(f.destroy(id), Err(Errno::ENOENT), "gone from the table");
}

#[test]
fn destroying_an_attached_access_detaches_it() {
    let f = open();
    let (ioas, _) = ioas_with(&f, 1);
    let driver = Driver::new(true, true);
    let access = create(&f, &driver);
    access.attach(ioas).unwrap();
    driver.pin(&access, IOVA, PAGE, true).unwrap();
    f.fd.access_destroy(access);
    assert_eq!(driver.calls(), vec![(0, u64::MAX)]);
    assert_eq!(f.p.locked_pages(), 0);
    f.destroy(ioas).unwrap();
}

#[test]
fn pages_pinned_by_an_access_and_a_domain_are_charged_once() {
    let f = open();
    let (ioas, _) = ioas_with(&f, 4);
    let driver = Driver::new(true, true);
    let access = create(&f, &driver);
    access.attach(ioas).unwrap();
    let pas = driver.pin(&access, IOVA, PAGE, true).unwrap();
    assert_eq!(f.p.locked_pages(), 1);
    let (_demo, dev) = f.plug_and_bind(3);
    f.fd.attach(dev, ioas, None).unwrap();
    assert_eq!(
        f.p.locked_pages(),
        4,
        "a domain pins the whole area, the shared page once"
    );
    f.fd.detach(dev, None).unwrap();
    assert_eq!(f.p.locked_pages(), 1);
    assert!(
        f.host.mm.pin_count(pas[0]) > 0,
        "the access's pin outlives the domain's"
    );
    access.unpin_pages(IOVA, PAGE);
    assert_eq!(f.p.locked_pages(), 0);
    f.fd.access_destroy(access);
}

#[test]
fn pin_past_rlimit_memlock_is_enomem_and_charges_nothing() {
    let f = open();
    let (ioas, _) = ioas_with(&f, 4);
    f.p.set_memlock_limit(2 * PAGE);
    let access = create(&f, &Driver::new(true, true));
    access.attach(ioas).unwrap();
    assert_eq!(access.pin_pages(IOVA, 3 * PAGE, false), Err(Errno::ENOMEM));
    assert_eq!(f.p.locked_pages(), 0);
    assert_eq!(
        access.pin_pages(IOVA, 2 * PAGE, false).map(|v| v.len()),
        Ok(2)
    );
    access.unpin_pages(IOVA, 2 * PAGE);
    f.fd.access_destroy(access);
}

#[test]
fn change_process_moves_the_charge_of_access_pins_once() {
    let f = open();
    let shmem = f.host.mm.spawn().unwrap();
    let file = shmem
        .mmap(None, 4 * PAGE, Prot::RW, MapFlags::empty())
        .unwrap()
        .raw();
    f.fd.set_file_resolver(Some(Arc::new(ShmemResolver(shmem.clone()))));
    let ioas = f.alloc().unwrap();
    let mut map = IommuIoasMapFile {
        size: 40,
        flags: FIXED_RW,
        ioas_id: ioas,
        fd: 3,
        start: file,
        length: 4 * PAGE,
        iova: IOVA,
    };
    f.call(IOMMU_IOAS_MAP_FILE, &mut map).unwrap();
    // a second IOAS maps the same pages
    let other = copy_to_new_ioas(&f, ioas, 4 * PAGE);
    let driver = Driver::new(true, true);
    let a = create(&f, &driver);
    a.attach(ioas).unwrap();
    driver.pin(&a, IOVA, 2 * PAGE, true).unwrap();
    let b = create(&f, &Driver::new(true, true));
    b.attach(other).unwrap();
    let pas = b.pin_pages(IOVA, PAGE, false).unwrap();
    assert_eq!(f.p.locked_pages(), 2, "the mapper is charged once per page");

    let change = |by: &Arc<vsva_mm::Process>| {
        let mut cmd = IommuIoasChangeProcess {
            size: 8,
            __reserved: 0,
        };
        f.fd.ioctl(
            u64::from(IOMMU_IOAS_CHANGE_PROCESS),
            cmd.as_mut_bytes(),
            &ProcessMemory::new(by.clone()),
        )
    };
    let small = f.host.mm.spawn().unwrap();
    small.set_memlock_limit(PAGE);
    assert_eq!(change(&small), Err(Errno::ENOMEM));
    assert_eq!((f.p.locked_pages(), small.locked_pages()), (2, 0));
    let next = f.host.mm.spawn().unwrap();
    assert_eq!(change(&next), Ok(()));
    assert_eq!((f.p.locked_pages(), next.locked_pages()), (0, 2));

    // the pins' charge now comes back to the new owner
    b.unpin_pages(IOVA, PAGE);
    assert!(f.host.mm.pin_count(pas[0]) > 0, "still the first access's");
    assert_eq!(next.locked_pages(), 2);
    f.fd.access_destroy(a);
    assert_eq!((f.p.locked_pages(), next.locked_pages()), (0, 0));
    f.fd.access_destroy(b);
}

/// An emulated device's driver: it pins through VFIO and unpins in `dma_unmap`.
#[derive(Default)]
struct Mdev {
    pinned: Mutex<Vec<(u64, u32)>>,
    unmaps: AtomicU32,
}

impl EmulatedDriver for Mdev {
    fn dma_unmap(&self, vdev: &VfioDevice, iova: u64, length: u64) {
        self.unmaps.fetch_add(1, Ordering::Relaxed);
        let last = iova.saturating_add(length - 1);
        self.pinned.lock().unwrap().retain(|&(i, n)| {
            let inside = i <= last && i + u64::from(n) * PAGE > iova;
            if inside {
                vdev.unpin_pages(i, n);
            }
            !inside
        });
    }
}

#[test]
fn vfio_emulated_device_binds_as_an_access() {
    let f = open();
    let (ioas, va) = ioas_with(&f, 4);
    let mdev = Arc::new(Mdev::default());
    let vdev = VfioDevice::emulated(mdev.clone(), f.host.mem.clone());
    assert!(vdev.is_emulated() && vdev.info().is_none());
    assert_eq!(
        vdev.pin_pages(IOVA, 1, false),
        Err(Errno::EINVAL),
        "not bound"
    );
    let file = vdev.open();
    let dev_id = file.bind(f.fd.clone()).unwrap();
    assert!(
        f.fd.objects().contains(&(dev_id, ObjectType::Access)),
        "the device ID is the access's"
    );
    assert_eq!(
        file.attach(dev_id, None),
        Err(Errno::ENOENT),
        "only an IOAS"
    );
    assert_eq!(
        file.attach(ioas, Some(1)),
        Err(Errno::EOPNOTSUPP),
        "no PASIDs"
    );
    assert_eq!(
        file.attach(ioas, None),
        Ok(ioas),
        "pt_id comes back as given"
    );

    // the driver's DMA: pin, write through the physical address, and copy
    let pas = vdev.pin_pages(IOVA + PAGE + 5, 2, true).unwrap();
    mdev.pinned.lock().unwrap().push((IOVA + PAGE + 5, 2));
    f.host.mem.write(pas[1], b"mdev").unwrap();
    assert_eq!(f.read_user(va + 2 * PAGE, 4), b"mdev");
    vdev.dma_rw(IOVA + 7, RwBuf::Write(b"rw")).unwrap();
    assert_eq!(f.read_user(va + 7, 2), b"rw");
    assert_eq!(vdev.pin_pages(IOVA, 0, false), Err(Errno::EINVAL));
    assert_eq!(vdev.dma_rw(IOVA, RwBuf::Read(&mut [])), Err(Errno::EINVAL));

    // the IOAS unmap reaches the driver, which unpins
    assert_eq!(f.unmap(ioas, IOVA, 4 * PAGE), Ok(4 * PAGE));
    assert_eq!(mdev.unmaps.load(Ordering::Relaxed), 1);
    assert_eq!(f.p.locked_pages(), 0);

    // the ioctl path: the PASID flag is refused before `pasid` is read (argsz 12)
    let mem = ProcessMemory::new(f.p.clone());
    let mut cmd = VfioDeviceAttachIommufdPt {
        argsz: 12,
        flags: 1,
        pt_id: ioas,
        pasid: 0,
    };
    let never = |_: i32| Err(Errno::EBADF);
    assert_eq!(
        file.ioctl(
            u64::from(VFIO_DEVICE_ATTACH_IOMMUFD_PT),
            cmd.as_mut_bytes(),
            &mem,
            &never
        ),
        Err(Errno::EOPNOTSUPP)
    );

    // closing the file destroys the access, and the driver unpins on the way: the IOAS is
    // free to go
    f.map(ioas, FIXED_RW, va, PAGE, IOVA).unwrap();
    vdev.pin_pages(IOVA, 1, true).unwrap();
    mdev.pinned.lock().unwrap().push((IOVA, 1));
    assert_eq!(f.p.locked_pages(), 1);
    assert_eq!(f.destroy(ioas), Err(Errno::EBUSY));
    drop(file);
    assert_eq!(f.p.locked_pages(), 0, "the driver could still unpin");
    assert!(mdev.pinned.lock().unwrap().is_empty());
    assert_eq!(
        mdev.unmaps.load(Ordering::Relaxed),
        2,
        "detach unmaps everything"
    );
    f.destroy(ioas).unwrap();
    assert_eq!(f.destroy(dev_id), Err(Errno::ENOENT));
}

#[test]
fn vfio_emulated_device_bad_input() {
    let f = open();
    let (ioas, _) = ioas_with(&f, 2);
    let mdev = Arc::new(Mdev::default());
    let vdev = VfioDevice::emulated(mdev.clone(), f.host.mem.clone());
    let file = vdev.open();
    // an unbound file: every driver call and every ioctl but bind is EINVAL
    assert_eq!(
        vdev.dma_rw(IOVA, RwBuf::Read(&mut [0u8; 4])),
        Err(Errno::EINVAL)
    );
    vdev.unpin_pages(IOVA, 1); // a driver bug: logged
    assert_eq!(file.attach(ioas, None), Err(Errno::EINVAL));
    assert_eq!(file.detach(None), Err(Errno::EINVAL));

    let dev_id = file.bind(f.fd.clone()).unwrap();
    assert_eq!(file.bind(f.fd.clone()), Err(Errno::EINVAL), "bound already");
    assert_eq!(
        vdev.pin_pages(IOVA, 1, false),
        Err(Errno::ENOENT),
        "not attached"
    );
    assert_eq!(file.attach(999, None), Err(Errno::ENOENT));
    file.attach(ioas, None).unwrap();
    // the page-rounded range wraps; a page at the top of the space is simply not mapped
    assert_eq!(vdev.pin_pages(u64::MAX, 2, false), Err(Errno::EOVERFLOW));
    assert_eq!(vdev.pin_pages(u64::MAX, 1, false), Err(Errno::ENOENT));
    assert_eq!(
        vdev.pin_pages(IOVA, u32::MAX, false),
        Err(Errno::ENOENT),
        "runs past the area"
    );
    assert_eq!(
        vdev.dma_rw(u64::MAX - 1, RwBuf::Read(&mut [0u8; 4])),
        Err(Errno::EOVERFLOW)
    );
    vdev.unpin_pages(IOVA, 0); // a driver bug: logged
    vdev.unpin_pages(u64::MAX, u32::MAX); // likewise
    assert_eq!(f.p.locked_pages(), 0);
    // no PASIDs, typed or by ioctl
    assert_eq!(file.detach(Some(1)), Err(Errno::EOPNOTSUPP));
    let mem = ProcessMemory::new(f.p.clone());
    let never = |_: i32| Err(Errno::EBADF);
    let mut detach = VfioDeviceDetachIommufdPt {
        argsz: 12,
        flags: 1,
        pasid: 1,
    };
    assert_eq!(
        file.ioctl(
            u64::from(VFIO_DEVICE_DETACH_IOMMUFD_PT),
            detach.as_mut_bytes(),
            &mem,
            &never
        ),
        Err(Errno::EOPNOTSUPP)
    );
    // a move to an IOAS the access cannot use leaves it where it was
    let unaligned = f.alloc().unwrap();
    let va = f.buffer(PAGE);
    f.map(unaligned, FIXED_RW, va, 0x800, IOVA).unwrap();
    assert_eq!(file.attach(unaligned, None), Err(Errno::EADDRINUSE));
    let pas = vdev.pin_pages(IOVA, 1, true).unwrap();
    mdev.pinned.lock().unwrap().push((IOVA, 1));
    assert!(
        f.host.mm.pin_count(pas[0]) > 0,
        "still attached to the first IOAS"
    );
    // detaching twice is no error; the driver unpinned on the first
    file.detach(None).unwrap();
    assert_eq!(f.p.locked_pages(), 0);
    file.detach(None).unwrap();
    assert_eq!(vdev.pin_pages(IOVA, 1, false), Err(Errno::ENOENT));
    drop(file);
    assert_eq!(f.destroy(dev_id), Err(Errno::ENOENT));
}

#[test]
fn a_physical_vfio_device_cannot_pin_or_copy() {
    let f = open();
    let (ioas, _) = ioas_with(&f, 1);
    let (_demo, info) = f.plug(3);
    let vdev = VfioDevice::new(info);
    let file = vdev.open();
    let dev_id = file.bind(f.fd.clone()).unwrap();
    file.attach(ioas, None).unwrap();
    assert!(!vdev.is_emulated());
    assert_eq!(vdev.pin_pages(IOVA, 1, false), Err(Errno::EINVAL));
    assert_eq!(
        vdev.dma_rw(IOVA, RwBuf::Read(&mut [0u8; 4])),
        Err(Errno::EINVAL)
    );
    vdev.unpin_pages(IOVA, 1); // a driver bug: logged
    assert_eq!(f.fd.get_device(dev_id).map(|d| d.id()), Ok(dev_id));
}
