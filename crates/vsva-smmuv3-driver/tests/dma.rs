//! End to end through the model's translation layer: DMA translated by what the driver
//! wrote, TLB entries dropped by the driver's invalidations, a stalled transaction retried
//! after the driver's CMD_RESUME.

mod common;

use std::sync::Arc;

use common::*;
use vsva_iommu::{DomainSpec, Iommu, IommuOps};
use vsva_mem::{Access, FrameAllocator, PageSize};
use vsva_pcie::ResponseCode;
use vsva_pgtable::Perm;
use vsva_pgtable::arm::ArmS1;
use vsva_pgtable::table::PageTable;
use vsva_smmuv3::Blocked;
use vsva_smmuv3_driver::MasterOptions;

#[test]
fn dma_through_a_paging_domain_stops_at_the_unmap() {
    unmap_stops_dma(rig());
}

#[test]
fn dma_through_a_paging_domain_stops_at_the_unmap_with_per_page_tlbis() {
    unmap_stops_dma(rig_with(
        vsva_smmuv3::Smmuv3Config {
            ril: false,
            ..Default::default()
        },
        None,
    ));
}

fn unmap_stops_dma(r: Rig) {
    let iommu = Iommu::new(r.driver.clone());
    let caps = caps(0, false);
    iommu.add_device(rid(DEV), caps, 0).unwrap();
    let domain = iommu.alloc_paging_domain().unwrap();
    iommu
        .attach_domain(rid(DEV), pasid(0), &domain, None)
        .unwrap();
    domain
        .map(0x10_0000, 0x2000_0000, 0x4000, Perm::RW, false)
        .unwrap();
    let first = dma(&r, None, 0x10_1234, Access::WRITE, false);
    assert_eq!(first, Ok(0x2000_1234), "{:?}", r.driver.take_faults());
    // A second access hits the TLB.
    assert_eq!(
        dma(&r, None, 0x10_1238, Access::READ, false),
        Ok(0x2000_1238)
    );
    assert!(r.unit.stats().tlb.hits >= 1);
    domain.unmap(0x10_0000, 0x4000);
    assert_eq!(
        dma(&r, None, 0x10_1234, Access::READ, false),
        Err(Blocked::Abort),
        "the TLBI dropped the cached translation"
    );
    assert!(r.unit.stats().tlb.invalidated >= 1);
    let faults = r.driver.take_faults();
    assert_eq!(faults.last().map(|f| f.addr), Some(0x10_1000));
}

#[test]
fn dma_of_a_cleared_pasid_faults_even_after_a_tlb_hit() {
    let r = rig();
    let frames = Arc::new(FrameAllocator::new(r.mem.clone(), 300 * MIB, 400 * MIB));
    let table = PageTable::new(ArmS1::with_va_bits(48), frames).unwrap();
    table
        .map(0x7f00_0000, 0x2100_0000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    r.driver.attach_device(rid(DEV), caps(8, false)).unwrap();
    let spec = DomainSpec::Sva {
        root: table.root(),
        levels: 4,
        supervisor: false,
    };
    r.driver.set_pasid(rid(DEV), pasid(3), 5, &spec).unwrap();
    assert_eq!(
        dma(&r, Some(3), 0x7f00_0010, Access::READ, false),
        Ok(0x2100_0010)
    );
    r.driver.clear_pasid(rid(DEV), pasid(3)).unwrap();
    assert!(dma(&r, Some(3), 0x7f00_0010, Access::READ, false).is_err());
}

#[test]
fn a_stalled_dma_is_retried_after_the_page_is_mapped_and_resumed() {
    let r = rig();
    let frames = Arc::new(FrameAllocator::new(r.mem.clone(), 300 * MIB, 400 * MIB));
    let table = PageTable::new(ArmS1::with_va_bits(48), frames).unwrap();
    r.driver
        .add_master(
            rid(DEV),
            MasterOptions {
                ssid_bits: 8,
                stall: true,
                ..MasterOptions::default()
            },
        )
        .unwrap();
    let spec = DomainSpec::Sva {
        root: table.root(),
        levels: 4,
        supervisor: false,
    };
    r.driver.set_pasid(rid(DEV), pasid(3), 5, &spec).unwrap();
    let Err(Blocked::Stalled(tag)) = dma(&r, Some(3), 0x7f00_0010, Access::WRITE, true) else {
        panic!("the fault stalls")
    };
    let reqs = r.driver.take_page_requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        (reqs[0].prgi, reqs[0].addr, reqs[0].write),
        (tag.stag, 0x7f00_0000, true)
    );
    assert_eq!(r.unit.poll_stalled(tag), None, "still stalled");
    // The fault handler makes the page present, then answers.
    table
        .map(0x7f00_0000, 0x2200_0000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    r.driver
        .page_response(
            rid(DEV),
            Some(pasid(3)),
            reqs[0].prgi,
            ResponseCode::Success,
        )
        .unwrap();
    let done = r.unit.poll_stalled(tag).expect("resumed");
    assert_eq!(done.map(|t| t.addr), Ok(0x2200_0010));
}

#[test]
fn a_stalled_dma_answered_invalid_is_aborted() {
    let r = rig();
    let frames = Arc::new(FrameAllocator::new(r.mem.clone(), 300 * MIB, 400 * MIB));
    let table = PageTable::new(ArmS1::with_va_bits(48), frames).unwrap();
    r.driver
        .add_master(
            rid(DEV),
            MasterOptions {
                ssid_bits: 8,
                stall: true,
                ..MasterOptions::default()
            },
        )
        .unwrap();
    let spec = DomainSpec::Sva {
        root: table.root(),
        levels: 4,
        supervisor: false,
    };
    r.driver.set_pasid(rid(DEV), pasid(3), 5, &spec).unwrap();
    let Err(Blocked::Stalled(tag)) = dma(&r, Some(3), 0x7f00_0010, Access::READ, true) else {
        panic!("the fault stalls")
    };
    let prgi = r.driver.take_page_requests()[0].prgi;
    r.driver
        .page_response(rid(DEV), Some(pasid(3)), prgi, ResponseCode::InvalidRequest)
        .unwrap();
    assert_eq!(r.unit.poll_stalled(tag), Some(Err(Blocked::Abort)));
}
