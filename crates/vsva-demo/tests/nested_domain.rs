//! A guest's first-stage table nested on a paging domain, on the VT-d model: the unit walks
//! the guest's x86 table (its pointers are guest-physical, translated by the second stage),
//! a parent unmap reaches the nested domain's cached translations, and a guest invalidation
//! reaches the IOTLB.

mod common;

use std::sync::Arc;

use common::{GIB, GuestRam, guest_ram, plain_device};

use vsva_host::Platform;
use vsva_iommu::NestedS1;
use vsva_mem::{PageSize, Pasid, Rid};
use vsva_pgtable::x86::X86Paging;
use vsva_pgtable::{PageTable, Perm};
use vsva_vtd::VtdConfig;

#[test]
fn a_guest_first_stage_nested_on_a_paging_domain() {
    let p = Platform::new(8 * GIB, VtdConfig::default()).unwrap();
    let rid = Rid::from_bdf(0, 3, 0).unwrap();
    let dev = plain_device(&p, rid);

    // Guest RAM: 1 GiB of the VMM's memory in one host frame, at GPA 0.
    let GuestRam {
        hpa: ram_hpa,
        s2,
        mem: guest_mem,
        frames: guest_frames,
    } = guest_ram(&p);

    // The guest builds a page table in its RAM: guest VA 0x4000_0000 -> GPA 0x10_0000.
    let gpt = PageTable::new(X86Paging::default(), guest_frames).unwrap();
    gpt.map(0x4000_0000, 0x10_0000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    guest_mem.write(0x10_0000 + 8, b"guest data").unwrap();

    let pasid = Pasid::new(5).unwrap();
    let s1 = NestedS1::Table {
        root: gpt.root(),
        levels: 4,
        supervisor: false,
    };
    let nested = p.iommu.alloc_nested_domain(&s2, s1).unwrap();
    assert_ne!(
        nested.did(),
        s2.did(),
        "a nested domain has a domain ID of its own"
    );
    p.iommu.attach_domain(rid, pasid, &nested, None).unwrap();

    // DMA with the PASID walks both stages and lands in the guest's page.
    let hpa = dev
        .dma_untranslated(Some(pasid), 0x4000_0008, false)
        .unwrap();
    assert_eq!(hpa, ram_hpa + 0x10_0008);
    let mut got = [0u8; 10];
    p.mem.read(hpa, &mut got).unwrap();
    assert_eq!(&got, b"guest data");
    assert!(
        dev.dma_untranslated(Some(pasid), 0x5000_0000, false)
            .is_err(),
        "unmapped VA"
    );

    // The guest unmaps the page: until it invalidates, the IOTLB may still translate (as
    // hardware would); after, the DMA faults.
    gpt.unmap(0x4000_0000, 4096).unwrap();
    nested.invalidate(0x4000_0000, 4096);
    assert!(
        dev.dma_untranslated(Some(pasid), 0x4000_0000, false)
            .is_err()
    );

    // Map it again, warm the IOTLB, then the VMM takes the guest page away in stage 2: the
    // parent's unmap reaches the nested domain's cached translation.
    gpt.map(0x4000_0000, 0x10_0000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    nested.invalidate(0x4000_0000, 4096);
    assert!(
        dev.dma_untranslated(Some(pasid), 0x4000_0000, false)
            .is_ok()
    );
    assert_eq!(s2.unmap(0, GIB), GIB);
    assert!(
        dev.dma_untranslated(Some(pasid), 0x4000_0000, false)
            .is_err()
    );

    // bad first stages are refused before they reach the unit
    let bad = |root, levels| {
        p.iommu
            .alloc_nested_domain(
                &s2,
                NestedS1::Table {
                    root,
                    levels,
                    supervisor: false,
                },
            )
            .map(|_| ())
            .unwrap_err()
            .errno()
    };
    assert_eq!(bad(0x1001, 4), vsva_mem::Errno::EINVAL);
    assert_eq!(bad(0x1000, 3), vsva_mem::Errno::EINVAL);
    assert_eq!(bad(1 << 60, 4), vsva_mem::Errno::EINVAL);
    p.iommu.detach_domain(rid, pasid, &nested).unwrap();
    assert!(nested.attachments().is_empty());
}

/// A VMM's side of a nested PASID's faults, as a test double: each group is recorded, the
/// guest's table gets the page (as the guest's own fault handler would), and the group is
/// answered.
struct GuestFaults {
    iommu: std::sync::Weak<vsva_iommu::Iommu>,
    gpt: Arc<PageTable<X86Paging>>,
    next_gpa: std::sync::Mutex<u64>,
    groups: std::sync::Mutex<Vec<vsva_iommu::FaultGroup>>,
}

impl vsva_iommu::IopfHandler for GuestFaults {
    fn handle(&self, group: vsva_iommu::FaultGroup) {
        for page in &group.pages {
            let mut gpa = self.next_gpa.lock().unwrap();
            let _ = self
                .gpt
                .map(page.addr & !0xfff, *gpa, PageSize::Size4K, Perm::USER_RW);
            *gpa += 4096;
        }
        let (dev, pasid, prgi) = (group.dev, group.pasid, group.prgi);
        self.groups.lock().unwrap().push(group);
        if let Some(iommu) = self.iommu.upgrade() {
            assert!(iommu.respond(dev, pasid, prgi, vsva_iommu::ResponseCode::Success));
        }
    }
}

#[test]
fn a_nested_pasids_page_requests_reach_its_handler_and_the_answer_resumes_the_device() {
    use vsva_demo::regs::{self, Op};
    use vsva_demo::{Command, DemoDriver};

    let p = Platform::new(8 * GIB, VtdConfig::default()).unwrap();
    let rid = Rid::from_bdf(0, 3, 0).unwrap();
    let dev = p.add_device(rid, 32, 64);
    let drv = DemoDriver::probe(&p, dev.clone(), false).unwrap();

    let GuestRam {
        hpa: _,
        s2,
        mem: guest_mem,
        frames: guest_frames,
    } = guest_ram(&p);
    let gpt = Arc::new(PageTable::new(X86Paging::default(), guest_frames).unwrap());

    let nested = p
        .iommu
        .alloc_nested_domain(
            &s2,
            NestedS1::Table {
                root: gpt.root(),
                levels: 4,
                supervisor: false,
            },
        )
        .unwrap();
    let faults = Arc::new(GuestFaults {
        iommu: Arc::downgrade(&p.iommu),
        gpt: gpt.clone(),
        next_gpa: std::sync::Mutex::new(0x20_0000),
        groups: std::sync::Mutex::new(vec![]),
    });
    let pasid = Pasid::new(9).unwrap();
    p.iommu
        .attach_domain(rid, pasid, &nested, Some(faults.clone()))
        .unwrap();

    // The guest's buffer is not mapped yet: the device's ATS translations fail, it asks with
    // PRI, the handler maps the pages, and the answer lets it finish.
    let va = 0x4000_0000;
    let cmd = Command {
        op: Op::WritePattern,
        src: 0,
        dst: va,
        len: 3 * 4096,
        pattern: 11,
        privileged: false,
    };
    drv.run_pasid(&p, pasid, &cmd).unwrap();
    let groups = faults.groups.lock().unwrap().clone();
    assert_eq!(groups.len(), 3, "one group per missing page");
    for (i, g) in groups.iter().enumerate() {
        assert_eq!((g.dev, g.pasid), (rid, Some(pasid)));
        assert_eq!(g.pages[0].addr & !0xfff, va + i as u64 * 4096);
        assert!(g.pages[0].write && g.pages.last().unwrap().last);
    }
    // what the device wrote is in guest memory, at the GPAs the handler chose
    let mut got = vec![0u8; 3 * 4096];
    guest_mem.read(0x20_0000, &mut got).unwrap();
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, &b)| b == regs::pattern_byte(11, i as u64))
    );
    // a second run finds everything mapped: no more page requests
    drv.run_pasid(&p, pasid, &cmd).unwrap();
    assert_eq!(faults.groups.lock().unwrap().len(), 3);
    p.iommu.detach_domain(rid, pasid, &nested).unwrap();
}
