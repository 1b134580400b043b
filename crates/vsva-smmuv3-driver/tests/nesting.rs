//! Nesting through the model: a nest parent as a stage-2 STE, a guest's STE over it (its CD
//! table and stage-1 tables at IPAs only the stage 2 reaches), flushes by VMID, the guest's
//! stalls relayed with its SubstreamID, its events with its virtual StreamID.

mod common;

use std::sync::{Arc, Mutex};

use common::guest::*;
use common::*;
use vsva_iommu::{DomainSpec, IommuError, IommuOps};
use vsva_mem::{Access, Errno};
use vsva_pcie::ResponseCode;
use vsva_pgtable::Perm;
use vsva_smmuv3::spec::cmd::Command;
use vsva_smmuv3::spec::event::id;
use vsva_smmuv3::{Blocked, ConfigFault, Granule, StreamConfig};
use vsva_smmuv3_driver::uapi::VEVENTQ_TYPE_ARM_SMMUV3;

fn parent_root(n: &Nesting) -> u64 {
    match n.parent.spec() {
        DomainSpec::Paging { root, .. } => root,
        s => panic!("{s:?}"),
    }
}

#[test]
fn a_nest_parent_on_the_rid_is_a_stage_2_ste_as_linux_makes_it() {
    let r = rig();
    let iommu = vsva_iommu::Iommu::new(r.driver.clone());
    iommu.add_device(rid(DEV), caps(8, false), 0).unwrap();
    let parent = iommu.alloc_nest_parent_domain().unwrap();
    let DomainSpec::Paging { root, levels, .. } = parent.spec() else {
        panic!()
    };
    assert_eq!(levels, 4, "a 48-bit IPA space starts at level 0");
    iommu
        .attach_domain(rid(DEV), pasid(0), &parent, None)
        .unwrap();
    let Ok(StreamConfig::Translate(tc)) = r.unit.stream_config(DEV as u32, None) else {
        panic!("{:?}", r.unit.stream_config(DEV as u32, None))
    };
    assert_eq!(tc.stage1, None, "Config = stage 2 only");
    assert_eq!(tc.vmid, parent.did(), "S2VMID = the domain ID");
    assert_eq!((tc.eats, tc.mev), (0, false));
    let s2 = tc.stage2.unwrap();
    // io-pgtable-arm ARM_64_LPAE_S2 with IAS = OAS = 48: T0SZ 16, SL0 2 (level 0), 4 KiB,
    // PS 48 bits; coherent walks: Inner Shareable, write-back write-allocate.
    assert_eq!(s2.ttb, root);
    assert_eq!((s2.t0sz, s2.sl0, s2.start_level), (16, 2, 0));
    assert_eq!((s2.granule, s2.ps_bits), (Granule::K4, 48));
    assert_eq!((s2.sh, s2.ir, s2.or), (3, 1, 1));
    // S2PTW, S2R as Linux sets them; S2FWB with IDR3.FWB; no S2S for a master that cannot
    // stall; no hardware AF/dirty.
    assert!(s2.ptw && s2.record && s2.fwb && !s2.stall && !s2.ha && !s2.hd);
    // DMA without PASID goes through the stage 2 alone.
    parent
        .map(0x4000_0000, 0x1800_0000, 0x2000, Perm::RW, false)
        .unwrap();
    assert_eq!(
        dma(&r, None, 0x4000_1234, Access::WRITE, false),
        Ok(0x1800_1234)
    );
    // An unmap flushes by VMID: TLBI_S2_IPA then TLBI_NH_ALL (Linux, for a nest parent).
    let mark = r.mark();
    parent.unmap(0x4000_0000, 0x2000);
    let work = r.work_since(mark);
    assert!(
        matches!(work.as_slice(), [Command::TlbiS2Ipa { vmid, .. }, Command::TlbiNhAll { vmid: v2 }]
            if *vmid == parent.did() && *v2 == parent.did()),
        "{work:?}"
    );
    assert_eq!(
        dma(&r, None, 0x4000_1234, Access::WRITE, false),
        Err(Blocked::Abort)
    );
    // The last master leaving the VMID invalidates it.
    let mark = r.mark();
    iommu.detach_domain(rid(DEV), pasid(0), &parent).unwrap();
    assert!(
        r.work_since(mark)
            .contains(&Command::TlbiS12Vmall { vmid: parent.did() })
    );
    assert_eq!(
        r.unit.stream_config(DEV as u32, None),
        Ok(StreamConfig::Abort)
    );
}

#[test]
fn a_stage_2_domain_is_refused_at_a_pasid_and_beside_pasids_as_linux_refuses_it() {
    let r = rig();
    let iommu = vsva_iommu::Iommu::new(r.driver.clone());
    iommu.add_device(rid(DEV), caps(8, false), 0).unwrap();
    let parent = iommu.alloc_nest_parent_domain().unwrap();
    let errno = |e: IommuError| e.errno();
    // arm_smmu_s1_set_dev_pasid: a stage-2 domain at a PASID is EINVAL.
    assert_eq!(
        iommu
            .attach_domain(rid(DEV), pasid(2), &parent, None)
            .map_err(errno),
        Err(Errno::EINVAL)
    );
    // arm_smmu_attach_dev: a stage-2 domain while PASIDs are in use is EBUSY.
    let s1 = iommu.alloc_paging_domain().unwrap();
    iommu.attach_domain(rid(DEV), pasid(3), &s1, None).unwrap();
    assert_eq!(
        iommu
            .attach_domain(rid(DEV), pasid(0), &parent, None)
            .map_err(errno),
        Err(Errno::EBUSY)
    );
    iommu.detach_domain(rid(DEV), pasid(3), &s1).unwrap();
    iommu
        .attach_domain(rid(DEV), pasid(0), &parent, None)
        .unwrap();
    // arm_smmu_set_pasid: no PASID while the RID is a stage-2 domain (EINVAL).
    assert_eq!(
        iommu
            .attach_domain(rid(DEV), pasid(3), &s1, None)
            .map_err(errno),
        Err(Errno::EINVAL)
    );
}

#[test]
fn a_guest_dma_walks_its_cd_table_and_stage_1_through_the_stage_2() {
    let r = rig();
    let n = nesting(&r, rid(DEV), caps(8, false), false, 0, None);
    let Ok(StreamConfig::Translate(tc)) = r.unit.stream_config(DEV as u32, Some(SSID)) else {
        panic!("{:?}", r.unit.stream_config(DEV as u32, Some(SSID)))
    };
    assert_eq!(tc.vmid, n.parent.did());
    assert!(tc.mev, "MEV, Linux's event-merging DoS mitigation");
    // The SMMU can stall, this master cannot: S1STALLD forced, as for the host's CD tables.
    assert!(tc.s1stalld);
    let s1 = tc.stage1.unwrap();
    assert_eq!(s1.asid, GUEST_ASID);
    assert_eq!(
        s1.ttb0.unwrap().ttb,
        n.s1.root,
        "the guest's TTB0 is an IPA"
    );
    assert_eq!(tc.stage2.unwrap().ttb, parent_root(&n));
    // The CD table and every stage-1 table sit at IPAs beyond host memory: only the stage 2
    // reaches them.
    assert!(n.cdtab >= r.mem.size() && n.s1.root >= r.mem.size());
    let pa = n.guest.pa(BUF_IPA);
    assert_eq!(
        dma(&r, Some(SSID), IOVA + 0x678, Access::READ, false),
        Ok(pa + 0x678)
    );
    assert_eq!(
        dma(&r, Some(SSID), IOVA + 0x680, Access::WRITE, false),
        Ok(pa + 0x680)
    );
    // Unmapping the buffer's IPA reaches the nested master: TLBI_S12_VMALL of the VMID drops
    // the combined entry.
    let mark = r.mark();
    n.parent.unmap(BUF_IPA, 0x1000);
    assert!(r.work_since(mark).contains(&Command::TlbiS12Vmall {
        vmid: n.parent.did()
    }));
    assert_eq!(
        dma(&r, Some(SSID), IOVA + 0x678, Access::READ, false),
        Err(Blocked::Abort)
    );
}

#[test]
fn a_nested_attach_is_refused_while_pasids_are_in_use() {
    let r = rig();
    let n = nesting(&r, rid(DEV), caps(8, false), false, 0, None);
    // Back to blocked, a PASID in use, then the nested domain again: EBUSY.
    n.iommu
        .detach_domain(rid(DEV), pasid(0), &n.nested)
        .unwrap();
    let s1 = n.iommu.alloc_paging_domain().unwrap();
    n.iommu
        .attach_domain(rid(DEV), pasid(3), &s1, None)
        .unwrap();
    assert_eq!(
        n.iommu
            .attach_domain(rid(DEV), pasid(0), &n.nested, None)
            .map_err(|e| e.errno()),
        Err(Errno::EBUSY)
    );
}

#[test]
fn a_guest_cd_asking_to_stall_a_master_that_cannot_is_a_bad_cd_the_guest_sees() {
    let r = rig();
    let n = nesting(&r, rid(DEV), caps(8, false), true, 0, None);
    // §5.4.2: CD.S = 1 under STE.S1STALLD = 1 is ILLEGAL.
    assert!(matches!(
        r.unit.stream_config(DEV as u32, Some(SSID)),
        Err(ConfigFault::BadCd { .. })
    ));
    assert!(dma(&r, Some(SSID), IOVA, Access::READ, true).is_err());
    let f = r.driver.take_faults();
    let bad_cd = f
        .iter()
        .find(|f| f.reason == id::C_BAD_CD)
        .expect("C_BAD_CD");
    let ev = r.driver.viommu_event(bad_cd, VSID).expect("forwarded");
    assert_eq!(ev.data[0], id::C_BAD_CD);
    drop(n);
}

#[test]
fn a_guest_stall_reaches_the_nested_domain_with_the_guest_ssid_and_is_resumed() {
    let r = rig();
    // Firmware says the master can stall: the nested STE keeps S1STALLD as the guest wrote
    // it (0), so the guest's CD.S = 1 makes its faults stall.
    assert!(r.driver.set_dma_can_stall(rid(DEV)));
    let keep = Arc::new(Keep(Mutex::new(Vec::new())));
    let n = nesting(&r, rid(DEV), caps(8, false), true, 0, Some(keep.clone()));
    let Ok(StreamConfig::Translate(tc)) = r.unit.stream_config(DEV as u32, Some(SSID)) else {
        panic!()
    };
    assert!(!tc.s1stalld && tc.stage1.unwrap().stall);
    assert!(
        tc.stage2.unwrap().stall,
        "S2S for a master that stalls (Linux)"
    );
    let va = IOVA + 0x10_0000;
    let Err(Blocked::Stalled(tag)) = dma(&r, Some(SSID), va + 0x10, Access::WRITE, true) else {
        panic!("the guest's stage-1 fault stalls")
    };
    // The core routes the stall, whose SubstreamID has no attachment of its own, to the
    // nested domain on the RID (user_pasid_table).
    assert_eq!(n.iommu.handle_page_requests(), 1);
    let groups = keep.0.lock().unwrap().clone();
    assert_eq!(groups.len(), 1);
    let g = &groups[0];
    assert_eq!(
        (g.dev, g.pasid, g.prgi),
        (rid(DEV), Some(pasid(SSID)), tag.stag)
    );
    assert_eq!(g.pages[0].addr, va);
    assert!(g.pages[0].write && g.pages[0].last);
    // The guest maps the page, the VMM answers: CMD_RESUME retries the transaction.
    n.s1.map(&n.guest, va, BUF_IPA);
    assert!(
        n.iommu
            .respond(rid(DEV), Some(pasid(SSID)), g.prgi, ResponseCode::Success)
    );
    assert_eq!(r.driver.stall_stats().resumes, 1);
    let done = r.unit.poll_stalled(tag).expect("resumed");
    assert_eq!(done.map(|t| t.addr), Ok(n.guest.pa(BUF_IPA) + 0x10));
}

#[test]
fn stage_1_events_of_a_nested_master_carry_the_vsid_and_stage_2_ones_stay_the_hosts() {
    let r = rig();
    let n = nesting(&r, rid(DEV), caps(8, false), false, 0, None);
    // A guest IOVA its stage 1 does not map: F_TRANSLATION of stage 1.
    assert!(dma(&r, Some(SSID), 0x7000_0000, Access::READ, false).is_err());
    // A guest IOVA mapped to an IPA the stage 2 does not map: F_TRANSLATION of stage 2.
    n.s1.map(&n.guest, 0x7100_0000, IPA_BASE + 64 * MIB);
    assert!(dma(&r, Some(SSID), 0x7100_0000, Access::READ, false).is_err());
    let faults = r.driver.take_faults();
    assert_eq!(faults.len(), 2, "{faults:?}");
    let (s1f, s2f) = (&faults[0], &faults[1]);
    assert_eq!(
        (s1f.reason, s2f.reason),
        (id::F_TRANSLATION, id::F_TRANSLATION)
    );
    assert_eq!(s2f.raw[1] >> 39 & 1, 1, "the record's S2 bit");
    let ev = r
        .driver
        .viommu_event(s1f, VSID)
        .expect("a stage-1 fault is the guest's");
    assert_eq!(ev.veventq_type, VEVENTQ_TYPE_ARM_SMMUV3);
    let words: Vec<u64> = ev
        .data
        .chunks(8)
        .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
        .collect();
    assert_eq!(s1f.raw[0] >> 32, DEV as u64);
    assert_eq!(words[0], (s1f.raw[0] & 0xffff_ffff) | VSID << 32);
    assert_eq!(words[1..], s1f.raw[1..]);
    assert_eq!(words[0] as u8, id::F_TRANSLATION);
    assert_eq!(words[2], 0x7000_0000, "the guest's input address");
    assert_eq!(r.driver.viommu_event(s2f, VSID), None);
    // Not attached to a nested domain any more: nothing is the guest's.
    n.iommu
        .detach_domain(rid(DEV), pasid(0), &n.nested)
        .unwrap();
    assert_eq!(r.driver.viommu_event(s1f, VSID), None);
}

#[test]
fn a_guest_stage_2_stall_is_terminated_and_kept_by_the_host() {
    let r = rig();
    assert!(r.driver.set_dma_can_stall(rid(DEV)));
    let n = nesting(&r, rid(DEV), caps(8, false), true, 0, None);
    // The guest maps an IOVA to an IPA its VM does not have: a stage-2 fault, which stalls
    // (S2S) but is no page fault the guest can fix.
    n.s1.map(&n.guest, 0x7100_0000, IPA_BASE + 64 * MIB);
    let Err(Blocked::Stalled(tag)) = dma(&r, Some(SSID), 0x7100_0000, Access::READ, true) else {
        panic!("the stage-2 fault stalls")
    };
    assert_eq!(r.driver.take_page_requests(), vec![], "not the guest's");
    assert_eq!(r.unit.poll_stalled(tag), Some(Err(Blocked::Abort)));
    let faults = r.driver.take_faults();
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0].reason, id::F_TRANSLATION);
    assert_eq!(faults[0].raw[1] >> 39 & 1, 1, "S2");
    assert_eq!(r.driver.viommu_event(&faults[0], VSID), None);
}

#[test]
fn a_guest_with_ats_and_pri_gets_its_page_requests_and_atc_invalidations() {
    let r = rig();
    let pri = caps(8, true);
    let keep = Arc::new(Keep(Mutex::new(Vec::new())));
    let n = nesting(&r, rid(DEV), pri, false, 1, Some(keep.clone()));
    let Ok(StreamConfig::Translate(tc)) = r.unit.stream_config(DEV as u32, Some(SSID)) else {
        panic!()
    };
    assert_eq!(tc.eats, 1, "full ATS, as the guest's EATS asked");
    // A PRI page request with the guest's SubstreamID reaches the nested domain's handler;
    // the answer is a PRG Response with that PASID.
    r.unit.page_request(&vsva_pcie::PageRequest {
        rid: rid(DEV),
        pasid: Some(pasid(SSID)),
        addr: 0x7000_0000,
        read: true,
        write: false,
        exec: false,
        privileged: false,
        last: true,
        prgi: 9,
    });
    assert_eq!(n.iommu.handle_page_requests(), 1);
    let g = keep.0.lock().unwrap()[0].clone();
    assert_eq!((g.pasid, g.prgi), (Some(pasid(SSID)), 9));
    assert!(n.iommu.respond(rid(DEV), g.pasid, 9, ResponseCode::Success));
    assert_eq!(
        r.endpoints.responses.lock().unwrap().last(),
        Some(&(rid(DEV), Some(pasid(SSID)), ResponseCode::Success, 9))
    );
    // The guest's ATC_INV reaches the device under its physical StreamID.
    let atc = Command::AtcInv {
        sid: VSID as u32,
        ssid: Some(SSID),
        global: false,
        size: 0,
        addr: IOVA,
    };
    let out = r.driver.viommu_cache_invalidate(
        &n.ctx,
        &Entries {
            ty: vsva_smmuv3_driver::uapi::VIOMMU_INVALIDATE_DATA_ARM_SMMUV3,
            entries: vec![atc.encode().iter().flat_map(|w| w.to_le_bytes()).collect()],
        },
    );
    assert_eq!((out.consumed, out.result), (1, Ok(())));
    let inv = r
        .endpoints
        .invalidations
        .lock()
        .unwrap()
        .last()
        .copied()
        .unwrap();
    assert_eq!(
        (inv.sid, inv.pasid, inv.addr, inv.len),
        (rid(DEV), Some(pasid(SSID)), IOVA, 4096)
    );
    // A change of the stage 2 empties the device's ATC: every PASID, the whole space.
    let before = r.endpoints.invalidations.lock().unwrap().len();
    n.parent.unmap(BUF_IPA, 0x1000);
    let invs = r.endpoints.invalidations.lock().unwrap().clone();
    assert!(
        invs[before..]
            .iter()
            .any(|i| i.sid == rid(DEV) && i.pasid.is_none())
    );
}
