//! Invalidation: the TLBIs and ATC invalidations a flush issues, in the order IHI 0070
//! §4.5.1 asks, read back from the command queue.

mod common;

use common::*;
use vsva_iommu::{DomainSpec, Iommu, IommuOps};
use vsva_pgtable::Perm;
use vsva_smmuv3::spec::cmd::{Command, TlbiRange};
use vsva_smmuv3::{Smmuv3Config, StreamConfig};

const ATS_DEV: u16 = 0x0820;
const ROOT: u64 = 0x3000_0000;

fn sva() -> DomainSpec {
    DomainSpec::Sva {
        root: ROOT,
        levels: 4,
        supervisor: false,
    }
}

/// A rig with `DEV` (no ATS) and `ATS_DEV` (ATS), both bound at PASID 5 to one domain.
fn bound(cfg: Smmuv3Config) -> Rig {
    let r = rig_with(cfg, None);
    for (dev, ats) in [(DEV, false), (ATS_DEV, true)] {
        r.driver.attach_device(rid(dev), caps(8, ats)).unwrap();
        r.driver.set_pasid(rid(dev), pasid(5), 9, &sva()).unwrap();
    }
    r
}

fn no_ril() -> Smmuv3Config {
    Smmuv3Config {
        ril: false,
        ..Smmuv3Config::default()
    }
}

fn va(r: &Command) -> TlbiRange {
    match r {
        Command::TlbiNhVa { range, .. } => *range,
        other => panic!("{other:?}"),
    }
}

#[test]
fn with_ril_a_flush_is_one_range_command_of_num_and_scale() {
    let r = bound(Smmuv3Config::default());
    let asid = r.driver.asid_of(rid(DEV), 5).unwrap();
    let m = r.mark();
    r.driver
        .flush(rid(DEV), pasid(5), 9, 0x40_0000, 5 << 12)
        .unwrap();
    let work = r.work_since(m);
    assert_eq!(work.len(), 1, "{work:?}");
    assert!(matches!(work[0], Command::TlbiNhVa { asid: a, vmid: 0, .. } if a == asid));
    let range = va(&work[0]);
    // 5 pages: NUM = 4 (5 × 2^0), SCALE 0, TG 1 (4 KiB), TTL 0 (not a leaf).
    assert_eq!(
        (
            range.addr,
            range.num,
            range.scale,
            range.tg,
            range.ttl,
            range.leaf
        ),
        (0x40_0000, 4, 0, 1, 0, false)
    );
}

#[test]
fn with_ril_a_range_of_several_scales_takes_one_command_per_scale() {
    let cmds = vsva_smmuv3_driver::tlbi_range(3, 0x1000_0000, (64 + 3) << 12, true);
    let ranges: Vec<_> = cmds.iter().map(va).collect();
    // 67 pages: 3 × 2^0 (NUM 2, SCALE 0) then 1 × 2^6 (NUM 0, SCALE 6).
    assert_eq!(
        ranges
            .iter()
            .map(|r| (r.addr, r.num, r.scale))
            .collect::<Vec<_>>(),
        vec![(0x1000_0000, 2, 0), (0x1000_3000, 0, 6)]
    );
}

#[test]
fn with_ril_a_single_non_leaf_page_is_not_num_0_scale_0() {
    let cmds = vsva_smmuv3_driver::tlbi_range(3, 0x5000, 0x1000, true);
    let r = va(&cmds[0]);
    // Linux's corner case: one page becomes two, NUM 0 SCALE 1.
    assert_eq!((r.addr, r.num, r.scale), (0x5000, 0, 1));
}

#[test]
fn without_ril_a_flush_is_one_tlbi_per_page() {
    let r = bound(no_ril());
    let m = r.mark();
    r.driver
        .flush(rid(DEV), pasid(5), 9, 0x40_0800, 3 << 12)
        .unwrap();
    let addrs: Vec<u64> = r.work_since(m).iter().map(|c| va(c).addr).collect();
    // [0x400800, 0x403800) touches four pages.
    assert_eq!(addrs, vec![0x40_0000, 0x40_1000, 0x40_2000, 0x40_3000]);
    for c in r.work_since(m) {
        let range = va(&c);
        assert_eq!((range.num, range.scale, range.tg), (0, 0, 0));
    }
}

#[test]
fn without_ril_a_range_of_512_pages_is_one_tlbi_by_asid() {
    let r = bound(no_ril());
    let asid = r.driver.asid_of(rid(DEV), 5).unwrap();
    let m = r.mark();
    r.driver.flush(rid(DEV), pasid(5), 9, 0, 2 << 20).unwrap();
    assert_eq!(r.work_since(m), vec![Command::TlbiNhAsid { vmid: 0, asid }]);
    // One page fewer: 511 TLBI_NH_VA, in batches (the queue has 256 slots).
    let before = r.hooks.tlbi.lock().unwrap().len();
    r.driver
        .flush(rid(DEV), pasid(5), 9, 0, (2 << 20) - 4096)
        .unwrap();
    let tlbi = r.hooks.tlbi.lock().unwrap()[before..].to_vec();
    assert_eq!(tlbi.len(), 511);
    assert!(tlbi.iter().all(|c| matches!(c, Command::TlbiNhVa { .. })));
}

#[test]
fn a_flush_beyond_48_bits_is_one_tlbi_by_asid_even_with_ril() {
    let r = bound(Smmuv3Config::default());
    let asid = r.driver.asid_of(rid(ATS_DEV), 5).unwrap();
    let m = r.mark();
    r.driver
        .flush(rid(ATS_DEV), pasid(5), 9, 0, u64::MAX)
        .unwrap();
    let work = r.work_since(m);
    assert_eq!(work[0], Command::TlbiNhAsid { vmid: 0, asid });
    assert!(matches!(
        work[1],
        Command::AtcInv {
            size: 52,
            addr: 0,
            ..
        }
    ));
}

#[test]
fn atc_invalidations_go_only_to_ats_masters() {
    let r = bound(Smmuv3Config::default());
    let m = r.mark();
    r.driver
        .flush(rid(DEV), pasid(5), 9, 0x40_0000, 0x5000)
        .unwrap();
    assert!(
        !r.work_since(m)
            .iter()
            .any(|c| matches!(c, Command::AtcInv { .. }))
    );
    assert!(r.endpoints.invalidations.lock().unwrap().is_empty());
    r.driver
        .flush(rid(ATS_DEV), pasid(5), 9, 0x40_0000, 0x5000)
        .unwrap();
    let inv = r.endpoints.invalidations.lock().unwrap().clone();
    assert_eq!(inv.len(), 1);
    // Five pages from 0x400000 round up to an aligned 32 KiB span.
    assert_eq!(
        (
            inv[0].sid,
            inv[0].pasid,
            inv[0].addr,
            inv[0].len,
            inv[0].global
        ),
        (rid(ATS_DEV), Some(pasid(5)), 0x40_0000, 0x8000, false)
    );
}

#[test]
fn a_flush_is_tlbi_then_sync_then_atc_inv_then_sync() {
    let r = bound(Smmuv3Config::default());
    let m = r.mark();
    r.driver
        .flush(rid(ATS_DEV), pasid(5), 9, 0x40_0000, 0x1000)
        .unwrap();
    let cmds = r.commands_since(m);
    assert!(
        matches!(
            cmds.as_slice(),
            [
                Command::TlbiNhVa { .. },
                Command::Sync { .. },
                Command::AtcInv {
                    ssid: Some(5),
                    size: 0,
                    addr: 0x40_0000,
                    ..
                },
                Command::Sync { .. }
            ]
        ),
        "{cmds:?}"
    );
    assert!(matches!(
        r.hooks.tlbi.lock().unwrap().last(),
        Some(Command::TlbiNhVa { .. })
    ));
}

#[test]
fn the_atc_invalidation_of_the_rid_carries_no_substream() {
    let r = rig();
    r.driver.attach_device(rid(ATS_DEV), caps(8, true)).unwrap();
    r.driver
        .set_pasid(
            rid(ATS_DEV),
            pasid(0),
            4,
            &DomainSpec::Paging {
                root: ROOT,
                levels: 4,
                dirty_tracking: false,
                nest_parent: false,
            },
        )
        .unwrap();
    let m = r.mark();
    r.driver
        .flush(rid(ATS_DEV), pasid(0), 4, 0x2000, 0x1000)
        .unwrap();
    assert!(
        r.work_since(m)
            .iter()
            .any(|c| matches!(c, Command::AtcInv { ssid: None, .. }))
    );
    let inv = r.endpoints.invalidations.lock().unwrap().clone();
    assert_eq!(inv.last().map(|i| i.pasid), Some(None));
}

#[test]
fn a_flush_of_a_pasid_without_a_cd_issues_nothing() {
    let r = bound(Smmuv3Config::default());
    let m = r.mark();
    r.driver.flush(rid(DEV), pasid(6), 9, 0, 0x1000).unwrap();
    assert!(r.commands_since(m).is_empty());
}

#[test]
fn a_failed_atc_invalidation_fails_the_flush() {
    let r = bound(Smmuv3Config::default());
    *r.endpoints.present.lock().unwrap() = Some(vec![DEV]);
    let e = r
        .driver
        .flush(rid(ATS_DEV), pasid(5), 9, 0, 0x1000)
        .unwrap_err();
    assert_eq!(e.errno(), vsva_mem::Errno::EIO);
    *r.endpoints.present.lock().unwrap() = None;
    r.driver
        .flush(rid(ATS_DEV), pasid(5), 9, 0, 0x1000)
        .unwrap();
}

#[test]
fn the_core_maps_through_an_arm_stage_1_table_and_unmaps_with_a_tlbi() {
    let r = rig();
    let iommu = Iommu::new(r.driver.clone());
    let caps = caps(0, false);
    iommu.add_device(rid(DEV), caps, 0).unwrap();
    let domain = iommu.alloc_paging_domain().unwrap();
    iommu
        .attach_domain(rid(DEV), pasid(0), &domain, None)
        .unwrap();
    let DomainSpec::Paging { root, levels, .. } = domain.spec() else {
        panic!()
    };
    assert_eq!(levels, 4);
    let Ok(StreamConfig::Translate(t)) = r.unit.stream_config(DEV as u32, None) else {
        panic!()
    };
    assert_eq!(t.stage1.unwrap().ttb0.unwrap().ttb, root);
    domain
        .map(0x10_0000, 0x2000_0000, 0x2000, Perm::RW, false)
        .unwrap();
    let m = r.mark();
    assert_eq!(domain.unmap(0x10_0000, 0x2000), 0x2000);
    let asid = r.driver.asid_of(rid(DEV), 0).unwrap();
    assert!(r.work_since(m).iter().any(
        |c| matches!(c, Command::TlbiNhVa { asid: a, range, .. } if *a == asid && range.addr == 0x10_0000)
    ));
    // The MSI window is reserved.
    assert_eq!(
        r.driver.reserved_regions(rid(DEV)),
        vec![vsva_smmuv3_driver::MSI_IOVA]
    );
}

#[test]
fn flushes_on_several_threads_interleave_with_binds_without_errors() {
    let r = bound(Smmuv3Config::default());
    let driver = r.driver.clone();
    std::thread::scope(|s| {
        for t in 0..3u64 {
            let d = driver.clone();
            s.spawn(move || {
                for i in 0..50u64 {
                    let dev = if i % 2 == 0 { DEV } else { ATS_DEV };
                    d.flush(rid(dev), pasid(5), 9, (t << 30) + (i << 12), 0x3000)
                        .unwrap();
                }
            });
        }
        let d = driver.clone();
        s.spawn(move || {
            for i in 0..20u32 {
                let p = pasid(10 + i % 4);
                d.set_pasid(rid(DEV), p, 20, &sva()).unwrap();
                d.clear_pasid(rid(DEV), p).unwrap();
            }
        });
    });
    // The queue is empty and error-free afterwards.
    let cons = r
        .unit
        .mmio_read(vsva_smmuv3::spec::registers::offset::CMDQ_CONS, 4) as u32;
    assert_eq!(cons, r.mark());
    assert!(r.endpoints.invalidations.lock().unwrap().len() >= 75);
}
