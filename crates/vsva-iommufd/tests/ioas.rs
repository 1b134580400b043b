//! The IOAS address space (`io_pagetable`): areas, IOVA allocation, reserved and allowed
//! ranges, pinning and locked-memory accounting, and keeping attached domains filled — with
//! the errno Linux's `io_pagetable.c` gives for each bad request.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use vsva_iommufd::abi::Errno;
use vsva_iommufd::{EADDRINUSE, IoPageTable, ReservedBy};
use vsva_iommufd::{IoDomain, IoProt};
use vsva_mem::{Access, FrameAllocator, PhysMem, PhysMemory, Va};
use vsva_mm::{MapFlags, MemoryManager, Process, Prot};
use vsva_pgtable::x86::X86Paging;

const PAGE: u64 = 4096;
const MIB: u64 = 1 << 20;
const RW: IoProt = IoProt::READ.union(IoProt::WRITE);

/// A domain that records its 4 KiB translations, with an aperture and an optional failure
/// after `fail_after` successful maps.
struct Recorder {
    aperture_last: u64,
    map: Mutex<BTreeMap<u64, (u64, IoProt)>>,
    maps_left: Mutex<Option<u32>>,
}

impl Recorder {
    fn new(aperture_last: u64) -> Arc<Recorder> {
        Arc::new(Recorder {
            aperture_last,
            map: Mutex::new(BTreeMap::new()),
            maps_left: Mutex::new(None),
        })
    }
    fn translate(&self, iova: u64) -> Option<u64> {
        let m = self.map.lock().unwrap();
        m.get(&(iova & !(PAGE - 1)))
            .map(|&(pa, _)| pa + iova % PAGE)
    }
    fn pages(&self) -> usize {
        self.map.lock().unwrap().len()
    }
}

impl IoDomain for Recorder {
    fn aperture_last(&self) -> u64 {
        self.aperture_last
    }
    fn map(&self, iova: u64, pa: u64, len: u64, prot: IoProt, _large: bool) -> Result<(), Errno> {
        assert_eq!(iova % PAGE, 0);
        assert_eq!(pa % PAGE, 0);
        assert_eq!(len % PAGE, 0);
        if let Some(n) = self.maps_left.lock().unwrap().as_mut() {
            if *n == 0 {
                return Err(Errno::ENOMEM);
            }
            *n -= 1;
        }
        let mut m = self.map.lock().unwrap();
        for off in (0..len).step_by(PAGE as usize) {
            assert!(
                m.insert(iova + off, (pa + off, prot)).is_none(),
                "double map"
            );
        }
        Ok(())
    }
    fn unmap(&self, iova: u64, len: u64) {
        let mut m = self.map.lock().unwrap();
        for off in (0..len).step_by(PAGE as usize) {
            m.remove(&(iova + off));
        }
    }
}

fn setup() -> (Arc<MemoryManager>, Arc<Process>) {
    let mem: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(4 << 30).unwrap());
    let frames = Arc::new(FrameAllocator::new(mem, 0, 4 << 30));
    let mm = MemoryManager::new(frames, X86Paging::default());
    let p = mm.spawn().unwrap();
    (mm, p)
}

#[test]
fn map_without_a_domain_records_but_does_not_pin() {
    let (_mm, p) = setup();
    let va = p.mmap(None, 4 * MIB, Prot::RW, MapFlags::HUGE_2M).unwrap();
    let ioas = IoPageTable::default();
    let iova = ioas
        .map_user(p.clone(), va.raw(), 2 * MIB, RW, None)
        .unwrap();
    assert!(iova >= PAGE, "never IOVA 0");
    assert_eq!(
        iova % (2 * MIB),
        0,
        "keeps the user address's 2 MiB alignment"
    );
    assert_eq!(p.locked_pages(), 0, "pinned lazily");
    assert_eq!(ioas.alignment(), 1, "no domain: byte alignment");
    let areas = ioas.areas();
    assert_eq!(areas.len(), 1);
    assert_eq!((areas[0].iova, areas[0].last), (iova, iova + 2 * MIB - 1));
}

#[test]
fn attaching_a_domain_pins_and_maps_every_area_as_the_process_sees_it() {
    let (mm, p) = setup();
    let va = p.mmap(None, 8 * PAGE, Prot::RW, MapFlags::empty()).unwrap();
    p.write_bytes(Va::new(va.raw() + 3 * PAGE + 5), b"dma me")
        .unwrap();
    let ioas = IoPageTable::default();
    let iova = ioas
        .map_user(p.clone(), va.raw(), 8 * PAGE, RW, Some(0x10_0000))
        .unwrap();
    assert_eq!(iova, 0x10_0000);
    let d = Recorder::new((1 << 48) - 1);
    ioas.attach_domain(1, d.clone()).unwrap();
    assert_eq!(p.locked_pages(), 8);
    assert_eq!(d.pages(), 8);
    assert_eq!(ioas.alignment(), PAGE);
    for i in 0..8 {
        let pa = p
            .translate(Va::new(va.raw() + i * PAGE), Access::READ)
            .unwrap()
            .output;
        assert_eq!(d.translate(iova + i * PAGE), Some(pa));
        assert_eq!(mm.pin_count(pa), 1);
    }
    // what DMA through the domain reads is the process's memory
    let mut got = [0u8; 6];
    mm.memory()
        .read(d.translate(iova + 3 * PAGE + 5).unwrap(), &mut got)
        .unwrap();
    assert_eq!(&got, b"dma me");
    // beyond the 48-bit aperture is reserved now
    let (ranges, align) = ioas.iova_ranges();
    assert_eq!(ranges, vec![(0, (1 << 48) - 1)]);
    assert_eq!(align, PAGE);
    // detaching the last domain unmaps and unpins
    ioas.detach_domain(1);
    assert_eq!(d.pages(), 0);
    assert_eq!(p.locked_pages(), 0);
    assert_eq!(ioas.iova_ranges().0, vec![(0, u64::MAX)]);
}

#[test]
fn map_and_unmap_with_domains_attached_keep_them_in_step() {
    let (mm, p) = setup();
    let ioas = IoPageTable::default();
    let (d1, d2) = (Recorder::new(u64::MAX), Recorder::new(u64::MAX));
    ioas.attach_domain(1, d1.clone()).unwrap();
    ioas.attach_domain(2, d2.clone()).unwrap();
    assert_eq!(ioas.attach_domain(2, d2.clone()), Err(Errno::EEXIST));
    let va = p.mmap(None, 4 * PAGE, Prot::RW, MapFlags::empty()).unwrap();
    let a = ioas
        .map_user(p.clone(), va.raw(), 2 * PAGE, RW, None)
        .unwrap();
    let b = ioas
        .map_user(p.clone(), va.raw() + 2 * PAGE, 2 * PAGE, IoProt::READ, None)
        .unwrap();
    assert_eq!((d1.pages(), d2.pages()), (4, 4));
    assert_eq!(p.locked_pages(), 4);
    let pa = d1.translate(a).unwrap();
    assert_eq!(mm.pin_count(pa), 1, "one pin however many domains");
    // the process unmapping its memory does not take it from the device
    p.munmap(va, 4 * PAGE).unwrap();
    assert_eq!(d1.translate(a), Some(pa));
    assert_eq!(mm.page_refs(pa), 1, "only the pin holds it");
    assert_eq!(ioas.unmap(a, 2 * PAGE), Ok(2 * PAGE));
    assert_eq!((d1.pages(), d2.pages()), (2, 2));
    assert_eq!(mm.page_refs(pa), 0, "freed with the last unpin");
    assert_eq!(ioas.unmap_all(), 2 * PAGE);
    assert_eq!(p.locked_pages(), 0);
    assert!(d1.translate(b).is_none());
    assert_eq!(
        ioas.unmap_all(),
        0,
        "unmapping everything of an empty IOAS succeeds"
    );
}

#[test]
fn unmap_takes_whole_areas_only() {
    let (_mm, p) = setup();
    let va = p.mmap(None, 8 * PAGE, Prot::RW, MapFlags::empty()).unwrap();
    let ioas = IoPageTable::default();
    ioas.map_user(p.clone(), va.raw(), 4 * PAGE, RW, Some(0x1_0000))
        .unwrap();
    ioas.map_user(p.clone(), va.raw() + 4 * PAGE, 4 * PAGE, RW, Some(0x1_4000))
        .unwrap();
    assert_eq!(
        ioas.unmap(0x1_0000, PAGE),
        Err(Errno::ENOENT),
        "cuts an area"
    );
    assert_eq!(
        ioas.unmap(0x1_2000, 4 * PAGE),
        Err(Errno::ENOENT),
        "cuts two"
    );
    assert_eq!(
        ioas.unmap(0x9_0000, PAGE),
        Err(Errno::ENOENT),
        "nothing there"
    );
    assert_eq!(ioas.unmap(0x1_0000, 0), Err(Errno::EINVAL));
    assert_eq!(ioas.unmap(u64::MAX - PAGE, 2 * PAGE), Err(Errno::EOVERFLOW));
    assert_eq!(ioas.areas().len(), 2, "failed unmaps removed nothing");
    // a range covering both, with slack, takes both
    assert_eq!(ioas.unmap(0, 0x10_0000), Ok(8 * PAGE));
}

#[test]
fn fixed_iovas_are_checked_as_linux_checks_them() {
    let (_mm, p) = setup();
    let va = p.mmap(None, 4 * PAGE, Prot::RW, MapFlags::empty()).unwrap();
    let ioas = IoPageTable::default();
    ioas.reserve(0xfee0_0000, 0xfeef_ffff, ReservedBy::Device(7))
        .unwrap();
    ioas.map_user(p.clone(), va.raw(), 2 * PAGE, RW, Some(0x4000))
        .unwrap();
    assert_eq!(
        ioas.map_user(p.clone(), va.raw(), 2 * PAGE, RW, Some(0x5000)),
        Err(Errno::EEXIST)
    );
    assert_eq!(
        ioas.map_user(p.clone(), va.raw(), 2 * PAGE, RW, Some(0xfeef_f000)),
        Err(Errno::EINVAL),
        "overlaps the reserved interrupt window"
    );
    assert_eq!(
        ioas.map_user(p.clone(), va.raw(), 2 * PAGE, IoProt::empty(), None),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        ioas.map_user(p.clone(), va.raw(), 0, RW, None),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        ioas.map_user(p.clone(), u64::MAX - PAGE, 2 * PAGE, RW, None),
        Err(Errno::EOVERFLOW)
    );
    assert_eq!(
        ioas.map_user(p.clone(), va.raw(), 2 * PAGE, RW, Some(u64::MAX - PAGE)),
        Err(Errno::EOVERFLOW)
    );
    // with a 4 KiB domain attached, IOVAs and lengths must be page multiples
    ioas.attach_domain(1, Recorder::new(u64::MAX)).unwrap();
    assert_eq!(
        ioas.map_user(p.clone(), va.raw(), 2 * PAGE, RW, Some(0x8800)),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        ioas.map_user(p.clone(), va.raw(), PAGE + 1, RW, None),
        Err(Errno::EINVAL)
    );
    // the reserved window and what lies around it
    let (ranges, _) = ioas.iova_ranges();
    assert_eq!(ranges, vec![(0, 0xfedf_ffff), (0xfef0_0000, u64::MAX)]);
    assert_eq!(
        ioas.reserve(0x4000, 0x4fff, ReservedBy::Device(8)),
        Err(EADDRINUSE)
    );
    ioas.unreserve(ReservedBy::Device(7));
    assert_eq!(ioas.iova_ranges().0, vec![(0, u64::MAX)]);
}

#[test]
fn chosen_iovas_stay_inside_the_allowed_ranges_and_run_out_with_enospc() {
    let (_mm, p) = setup();
    let va = p
        .mmap(None, 16 * PAGE, Prot::RW, MapFlags::empty())
        .unwrap();
    let ioas = IoPageTable::default();
    ioas.allow_iovas(&[(0x40_0000, 0x40_3fff)]).unwrap();
    let a = ioas
        .map_user(p.clone(), va.raw(), 2 * PAGE, RW, None)
        .unwrap();
    let b = ioas
        .map_user(p.clone(), va.raw(), 2 * PAGE, RW, None)
        .unwrap();
    assert_eq!((a, b), (0x40_0000, 0x40_2000));
    assert_eq!(
        ioas.map_user(p.clone(), va.raw(), PAGE, RW, None),
        Err(Errno::ENOSPC)
    );
    // an allowed list is checked before it replaces the old one
    assert_eq!(ioas.allow_iovas(&[(5, 5)]), Err(Errno::EINVAL));
    assert_eq!(
        ioas.allow_iovas(&[(0, 0x2000), (0x1000, 0x3000)]),
        Err(Errno::EINVAL)
    );
    ioas.reserve(0x100_0000, 0x100_0fff, ReservedBy::Device(1))
        .unwrap();
    assert_eq!(
        ioas.allow_iovas(&[(0xff_0000, 0x100_0000)]),
        Err(EADDRINUSE)
    );
    assert_eq!(
        ioas.map_user(p.clone(), va.raw(), PAGE, RW, None),
        Err(Errno::ENOSPC)
    );
    ioas.allow_iovas(&[]).unwrap();
    let c = ioas.map_user(p.clone(), va.raw(), PAGE, RW, None).unwrap();
    assert_eq!(c, PAGE, "lowest hole above page 0");
}

#[test]
fn pinning_is_charged_against_the_locked_memory_limit() {
    let (mm, p) = setup();
    p.set_memlock_limit(4 * PAGE);
    let va = p.mmap(None, 8 * PAGE, Prot::RW, MapFlags::empty()).unwrap();
    let ioas = IoPageTable::default();
    ioas.map_user(p.clone(), va.raw(), 3 * PAGE, RW, None)
        .unwrap();
    ioas.map_user(p.clone(), va.raw() + 3 * PAGE, 3 * PAGE, RW, None)
        .unwrap();
    let d = Recorder::new(u64::MAX);
    assert_eq!(ioas.attach_domain(1, d.clone()), Err(Errno::ENOMEM));
    assert_eq!((p.locked_pages(), d.pages()), (0, 0), "nothing left behind");
    assert_eq!(mm.stats().pages_in_use, 3, "faulted in, not pinned");
    assert_eq!(ioas.unmap_all(), 6 * PAGE);
    ioas.attach_domain(1, d.clone()).unwrap();
    ioas.map_user(p.clone(), va.raw(), 4 * PAGE, RW, None)
        .unwrap();
    assert_eq!(p.locked_pages(), 4);
    assert_eq!(
        ioas.map_user(p.clone(), va.raw(), PAGE, RW, None),
        Err(Errno::ENOMEM)
    );
    assert_eq!(ioas.areas().len(), 1);
}

#[test]
fn memory_the_process_does_not_have_is_efault_when_pinned() {
    let (_mm, p) = setup();
    let ioas = IoPageTable::default();
    let ro = p.mmap(None, PAGE, Prot::READ, MapFlags::empty()).unwrap();
    // lazily accepted: nothing is pinned yet
    ioas.map_user(p.clone(), 0x7000_0000, PAGE, RW, Some(0x1000))
        .unwrap();
    let d = Recorder::new(u64::MAX);
    assert_eq!(ioas.attach_domain(1, d.clone()), Err(Errno::EFAULT));
    ioas.unmap_all();
    ioas.attach_domain(1, d.clone()).unwrap();
    assert_eq!(
        ioas.map_user(p.clone(), 0x7000_0000, PAGE, RW, None),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        ioas.map_user(p.clone(), ro.raw(), PAGE, RW, None),
        Err(Errno::EFAULT),
        "not writable"
    );
    ioas.map_user(p.clone(), ro.raw(), PAGE, IoProt::READ, None)
        .unwrap();
    assert_eq!(d.pages(), 1);
}

#[test]
fn a_failing_domain_leaves_nothing_mapped_or_pinned() {
    let (_mm, p) = setup();
    let va = p.mmap(None, 8 * PAGE, Prot::RW, MapFlags::empty()).unwrap();
    let ioas = IoPageTable::default();
    for i in 0..4 {
        ioas.map_user(p.clone(), va.raw() + 2 * i * PAGE, 2 * PAGE, RW, None)
            .unwrap();
    }
    let d = Recorder::new(u64::MAX);
    *d.maps_left.lock().unwrap() = Some(2);
    assert_eq!(ioas.attach_domain(1, d.clone()), Err(Errno::ENOMEM));
    assert_eq!((d.pages(), p.locked_pages()), (0, 0));
    // and a domain whose aperture is below an area is refused
    let small = Recorder::new(0xfff);
    assert_eq!(ioas.attach_domain(2, small), Err(Errno::EINVAL));
    assert_eq!(
        ioas.iova_ranges().0,
        vec![(0, u64::MAX)],
        "no reservation left behind"
    );
}

#[test]
fn copy_maps_the_same_pages_into_another_ioas() {
    let (_mm, p) = setup();
    let va = p.mmap(None, 4 * PAGE, Prot::RW, MapFlags::empty()).unwrap();
    let src = IoPageTable::default();
    let dst = IoPageTable::default();
    let d = Recorder::new(u64::MAX);
    dst.attach_domain(1, d.clone()).unwrap();
    src.map_user(p.clone(), va.raw(), 2 * PAGE, RW, Some(0x10_0000))
        .unwrap();
    src.map_user(
        p.clone(),
        va.raw() + 2 * PAGE,
        2 * PAGE,
        RW,
        Some(0x10_2000),
    )
    .unwrap();
    // a copy spanning both source areas, starting inside the first
    let at = dst
        .copy_from(&src, 0x10_1000, 2 * PAGE, RW, Some(0x20_0000))
        .unwrap();
    assert_eq!(at, 0x20_0000);
    assert_eq!(dst.areas().len(), 2);
    for i in 0..2 {
        let pa = p
            .translate(Va::new(va.raw() + (1 + i) * PAGE), Access::READ)
            .unwrap()
            .output;
        assert_eq!(d.translate(0x20_0000 + i * PAGE), Some(pa));
    }
    // the source may go away; the copy keeps its pages
    assert_eq!(src.unmap_all(), 4 * PAGE);
    assert!(d.translate(0x20_1000).is_some());
    assert_eq!(
        dst.copy_from(&src, 0x10_0000, PAGE, RW, None),
        Err(Errno::ENOENT),
        "nothing mapped there any more"
    );
    assert_eq!(dst.unmap_all(), 2 * PAGE);
    assert_eq!(p.locked_pages(), 0);
}

#[test]
fn large_pages_are_disabled_only_before_domains_hold_mappings() {
    // iopt_disable_large_pages(): EINVAL once attached domains hold mappings (their IOPTEs
    // may be large already); enabling always succeeds.
    let (_mm, p) = setup();
    let va = p.mmap(None, 4 * PAGE, Prot::RW, MapFlags::empty()).unwrap();
    let ioas = IoPageTable::default();
    let d = Recorder::new(u64::MAX);
    ioas.attach_domain(1, d.clone()).unwrap();
    assert_eq!(
        ioas.set_large_pages(false),
        Ok(()),
        "a domain but no mapping"
    );
    assert_eq!(ioas.set_large_pages(true), Ok(()));
    ioas.map_user(p.clone(), va.raw(), 4 * PAGE, RW, Some(0x10_0000))
        .unwrap();
    assert_eq!(ioas.set_large_pages(false), Err(Errno::EINVAL));
    assert!(ioas.large_pages());
    ioas.detach_domain(1);
    // Without domains it may be disabled, which raises the alignment to PAGE_SIZE
    // (iopt_calculate_iova_alignment); enabling brings it back to 1.
    assert_eq!(ioas.set_large_pages(false), Ok(()));
    assert_eq!(ioas.set_large_pages(false), Ok(()), "already disabled");
    assert_eq!(ioas.alignment(), PAGE);
    assert_eq!(ioas.set_large_pages(true), Ok(()));
    assert_eq!(ioas.alignment(), 1);
}

/// An address space that is not a vsva process (as the shim's real program will be): its
/// pages sit at a fixed physical offset, and it counts pins and charges.
struct FixedSpace {
    phys_base: u64,
    pinned: Mutex<u64>,
    charged: Mutex<u64>,
}

impl vsva_iommufd::AddressSpace for FixedSpace {
    fn name(&self) -> String {
        "fixed".into()
    }
    fn pin(&self, va: u64, len: u64, _write: bool) -> Result<Vec<vsva_mm::Pinned>, Errno> {
        if va >= 1 << 40 {
            return Err(Errno::EFAULT);
        }
        *self.pinned.lock().unwrap() += len / PAGE;
        Ok(vec![vsva_mm::Pinned {
            va: Va::new(va),
            pa: self.phys_base + va,
            len,
            frame: self.phys_base + va,
        }])
    }
    fn unpin(&self, runs: &[vsva_mm::Pinned]) {
        *self.pinned.lock().unwrap() -= runs.iter().map(|r| r.len / PAGE).sum::<u64>();
    }
    fn account(&self, pages: u64) -> Result<(), Errno> {
        *self.charged.lock().unwrap() += pages;
        Ok(())
    }
    fn unaccount(&self, pages: u64) {
        *self.charged.lock().unwrap() -= pages;
    }
}

#[test]
fn any_address_space_can_back_an_ioas() {
    let space = Arc::new(FixedSpace {
        phys_base: 0x8000_0000,
        pinned: Mutex::new(0),
        charged: Mutex::new(0),
    });
    let ioas = IoPageTable::default();
    let d = Recorder::new(u64::MAX);
    ioas.attach_domain(1, d.clone()).unwrap();
    let iova = ioas
        .map_user(space.clone(), 0x10_0000, 4 * PAGE, RW, Some(0x40_0000))
        .unwrap();
    assert_eq!(d.translate(iova + PAGE + 3), Some(0x8010_1003));
    assert_eq!(
        (
            *space.pinned.lock().unwrap(),
            *space.charged.lock().unwrap()
        ),
        (4, 4)
    );
    assert_eq!(
        ioas.map_user(space.clone(), 1 << 40, PAGE, RW, None),
        Err(Errno::EFAULT),
        "the space's own refusal"
    );
    assert_eq!(ioas.unmap_all(), 4 * PAGE);
    assert_eq!(
        (
            *space.pinned.lock().unwrap(),
            *space.charged.lock().unwrap()
        ),
        (0, 0)
    );
}

#[test]
fn areas_at_the_top_of_the_space_and_covering_all_of_it_are_handled() {
    let (_mm, p) = setup();
    let ioas = IoPageTable::default();
    // the last page of the IOVA space
    ioas.map_user(p.clone(), 0x10_0000, PAGE, RW, Some(u64::MAX - PAGE + 1))
        .unwrap();
    let narrow = Recorder::new((1 << 48) - 1);
    assert_eq!(
        ioas.attach_domain(1, narrow),
        Err(Errno::EINVAL),
        "beyond the aperture"
    );
    assert_eq!(ioas.unmap_all(), PAGE);
    // two halves covering all 2^64 bytes (nothing pinned without a domain): the count
    // wraps as Linux's does, and everything goes
    ioas.map_user(p.clone(), 0x1000, 1 << 63, RW, Some(0))
        .unwrap();
    ioas.map_user(p.clone(), 0x1000, 1 << 63, RW, Some(1 << 63))
        .unwrap();
    assert_eq!(ioas.unmap_all(), 0);
    assert!(ioas.areas().is_empty());
    // and a range that stops one byte short cuts the top half: the areas before it go
    // (as in Linux's iopt_unmap_iova_range), then ENOENT
    ioas.map_user(p.clone(), 0x1000, 1 << 63, RW, Some(0))
        .unwrap();
    ioas.map_user(p.clone(), 0x1000, 1 << 63, RW, Some(1 << 63))
        .unwrap();
    assert_eq!(ioas.unmap(0, u64::MAX), Err(Errno::ENOENT));
    assert_eq!(ioas.unmap_all(), 1 << 63);
    // a user range of 2^52 pages cannot be counted in bytes
    assert_eq!(
        ioas.map_user(p.clone(), 0xfff, u64::MAX - 0x1000, RW, None),
        Err(Errno::EINVAL)
    );
}
