//! SMMUv3 nesting through a vIOMMU, against a fake SMMUv3 driver (`common::fake_smmu`):
//! `IOMMU_HWPT_ALLOC` with a vIOMMU as `pt_id` (`iommufd_hwpt_alloc()` then
//! `iommufd_viommu_alloc_hwpt_nested()`), attaching its HWPTs (a translating guest STE needs a
//! vDEVICE, `arm_smmu_attach_prepare_vmaster()`), and `IOMMU_HWPT_INVALIDATE` through the
//! vIOMMU (`iommufd_hwpt_invalidate()`'s vIOMMU branch). Errnos are Linux's, in its order.

mod common;

use common::fake_smmu::{
    CFGI_CD, FakeSmmu, STE_ABORT, STE_BYPASS, STE_S1, TLBI_NH_VA, bind_smmu, open_smmu,
};
use common::*;
use std::sync::Arc;
use vsva_iommu::{DomainSpec, NestedS1};
use vsva_iommufd::ObjectType;
use vsva_iommufd::abi::ioctl::IOMMU_HWPT_INVALIDATE;
use vsva_iommufd::abi::{
    Errno, HwptAllocFlags, HwptDataType, HwptInvalidateDataType, IommuHwptArmSmmuv3,
    IommuHwptInvalidate, IommuViommuArmSmmuv3Invalidate, ViommuType,
};
use vsva_mem::Rid;
use zerocopy::IntoBytes;

const NEST_PARENT: u32 = HwptAllocFlags::NEST_PARENT.bits();
const FAULT_ID_VALID: u32 = HwptAllocFlags::FAULT_ID_VALID.bits();
const SMMU: HwptDataType = HwptDataType::ARM_SMMUV3;

fn ste(word0: u64) -> Vec<u8> {
    IommuHwptArmSmmuv3 {
        ste: [word0, 0x55 << 32],
    }
    .as_bytes()
    .to_vec()
}

struct Smmu {
    f: Fixture,
    fake: Arc<FakeSmmu>,
    dev_id: u32,
    rid: Rid,
    s2: u32,
    viommu: u32,
}

/// A read (and write if `write`) at 0x7000_0000 by `rid`, the last request of group `prgi`.
fn page_request(rid: Rid, pasid: Option<u32>, prgi: u16, write: bool) -> vsva_iommu::PageRequest {
    vsva_iommu::PageRequest {
        rid,
        pasid: pasid.map(|p| vsva_mem::Pasid::new(p).unwrap()),
        addr: 0x7000_0000,
        read: true,
        write,
        exec: false,
        privileged: false,
        last: true,
        prgi,
    }
}

/// A context over the fake SMMUv3: a bound device `00:03.0`, an IOAS, a nesting parent and an
/// ARM_SMMUV3 vIOMMU on it.
fn smmu() -> Smmu {
    let (f, fake) = open_smmu();
    let (rid, dev_id) = bind_smmu(&f, 3);
    let ioas = f.alloc().unwrap();
    let s2 = f.hwpt_paging(dev_id, ioas, NEST_PARENT).unwrap();
    let viommu = f
        .viommu_alloc(0, ViommuType::ARM_SMMUV3, dev_id, s2)
        .unwrap();
    Smmu {
        f,
        fake,
        dev_id,
        rid,
        s2,
        viommu,
    }
}

#[test]
fn hwpt_alloc_on_a_viommu_checks_in_linux_order() {
    let s = smmu();
    let (f, dev, viommu) = (&s.f, s.dev_id, s.viommu);
    let good = ste(STE_S1);
    // iommufd_hwpt_alloc(): data type/length, then the device, before the vIOMMU branch.
    assert_eq!(f.hwpt_alloc(dev, viommu, 0, SMMU, &[]), Err(Errno::EINVAL));
    assert_eq!(f.hwpt_alloc(99, viommu, 0, SMMU, &good), Err(Errno::ENOENT));
    // iommufd_viommu_alloc_hwpt_nested(): flags, then no data — all EOPNOTSUPP, before the
    // driver sees anything.
    for flags in [NEST_PARENT, HwptAllocFlags::PASID.bits(), 1 << 31] {
        assert_eq!(
            f.hwpt_alloc(dev, viommu, flags, SMMU, &good),
            Err(Errno::EOPNOTSUPP),
            "flags {flags:#x}"
        );
    }
    assert_eq!(
        f.hwpt_alloc(dev, viommu, 0, HwptDataType::NONE, &[]),
        Err(Errno::EOPNOTSUPP),
        "no data"
    );
    assert!(s.fake.alloc_parent_dids.lock().unwrap().is_empty());
    // The driver: a type it does not know, the copy's errors, its checks of the STE.
    assert_eq!(
        f.hwpt_alloc(dev, viommu, 0, HwptDataType::VTD_S1, &[0; 24]),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(
        f.hwpt_alloc(dev, viommu, 0, SMMU, &good[..8]),
        Err(Errno::EINVAL)
    );
    let mut long = good.clone();
    long.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(f.hwpt_alloc(dev, viommu, 0, SMMU, &long), Err(Errno::E2BIG));
    assert_eq!(
        f.hwpt_alloc(dev, viommu, 0, SMMU, &ste(1 | (0b110 << 1))),
        Err(Errno::EIO),
        "stage-2 Config is the host's"
    );
    // FAULT_ID_VALID: the queue is looked up after the driver built the domain.
    assert_eq!(
        f.hwpt_alloc_with_fault(dev, viommu, FAULT_ID_VALID, SMMU, &ste(1 << 63 | 1), 99),
        Err(Errno::EIO)
    );
    assert_eq!(
        f.hwpt_alloc_with_fault(dev, viommu, FAULT_ID_VALID, SMMU, &good, 99),
        Err(Errno::ENOENT)
    );
    let before = f.fd.objects();
    assert_eq!(
        before.len(),
        4,
        "device, IOAS, parent, vIOMMU: nothing left behind"
    );

    let hwpt = f.hwpt_alloc(dev, viommu, 0, SMMU, &good).unwrap();
    assert_eq!(f.fd.objects().last(), Some(&(hwpt, ObjectType::HwptNested)));
    let nested = f.fd.get_hwpt_nested(hwpt).unwrap();
    assert_eq!(nested.viommu().map(|v| v.id()), Some(viommu));
    assert_eq!(nested.parent().id(), s.s2);
    assert!(nested.fault().is_none());
    assert_eq!(
        nested.domain().s1(),
        NestedS1::StreamEntry {
            ste: [STE_S1, 0x55 << 32],
            ats: false,
            translates: true
        }
    );
    // The driver saw the vIOMMU's nesting parent's domain ID (SMMUv3: its VMID).
    let parent_did = f.fd.get_hwpt_paging(s.s2).unwrap().domain().did();
    assert!(
        s.fake
            .alloc_parent_dids
            .lock()
            .unwrap()
            .iter()
            .all(|&did| did == parent_did)
    );
    assert_eq!(nested.domain().spec(), {
        let DomainSpec::Nested { s2_root, .. } = nested.domain().spec() else {
            panic!("a nested spec")
        };
        DomainSpec::Nested {
            s1: nested.domain().s1(),
            s2_root,
            s2_levels: 4,
            parent_did,
        }
    });
    drop(nested);

    // With a fault queue (vsva's extension): the HWPT holds it.
    let (fault, _) = f.fault_alloc(0).unwrap();
    let with_fault = f
        .hwpt_alloc_with_fault(dev, viommu, FAULT_ID_VALID, SMMU, &good, fault)
        .unwrap();
    assert_eq!(
        f.fd.get_hwpt_nested(with_fault)
            .unwrap()
            .fault()
            .map(|q| q.id()),
        Some(fault)
    );
    assert_eq!(f.destroy(fault), Err(Errno::EBUSY));

    // The HWPTs hold the vIOMMU, which holds the parent.
    assert_eq!(f.destroy(viommu), Err(Errno::EBUSY));
    f.destroy(hwpt).unwrap();
    f.destroy(with_fault).unwrap();
    assert_eq!(f.destroy(s.s2), Err(Errno::EBUSY));
    f.destroy(viommu).unwrap();
    f.destroy(s.s2).unwrap();
}

#[test]
fn a_core_managed_viommu_has_no_nested_hwpts() {
    let s = smmu();
    s.f.fd.set_core_viommu(true);
    let default =
        s.f.viommu_alloc(0, ViommuType::DEFAULT, s.dev_id, s.s2)
            .unwrap();
    assert_eq!(
        s.f.hwpt_alloc(s.dev_id, default, 0, SMMU, &ste(STE_S1)),
        Err(Errno::EOPNOTSUPP)
    );
    assert!(s.fake.alloc_parent_dids.lock().unwrap().is_empty());
    // Nor a vIOMMU as a parent of the paging kind, nor a nested HWPT as a pt_id.
    let hwpt =
        s.f.hwpt_alloc(s.dev_id, s.viommu, 0, SMMU, &ste(STE_S1))
            .unwrap();
    assert_eq!(
        s.f.hwpt_alloc(s.dev_id, hwpt, 0, SMMU, &ste(STE_S1)),
        Err(Errno::EINVAL)
    );
}

#[test]
fn a_translating_ste_attaches_only_with_a_vdevice() {
    let s = smmu();
    let (f, dev, viommu) = (&s.f, s.dev_id, s.viommu);
    let s1 = f.hwpt_alloc(dev, viommu, 0, SMMU, &ste(STE_S1)).unwrap();
    let abort = f.hwpt_alloc(dev, viommu, 0, SMMU, &ste(STE_ABORT)).unwrap();
    let bypass = f
        .hwpt_alloc(dev, viommu, 0, SMMU, &ste(STE_BYPASS))
        .unwrap();
    let invalid = f.hwpt_alloc(dev, viommu, 0, SMMU, &ste(0)).unwrap();

    // No vDEVICE: the translating entry is refused (ENOENT), nothing reaches the driver.
    assert_eq!(f.fd.attach(dev, s1, None), Err(Errno::ENOENT));
    assert!(s.fake.set.lock().unwrap().is_empty());
    assert!(f.fd.get_device(dev).unwrap().attached().is_empty());
    // Abort, bypass and V=0 entries need none.
    assert_eq!(f.fd.attach(dev, abort, None), Ok(abort));
    assert_eq!(f.fd.replace(dev, bypass, None), Ok(bypass));
    assert_eq!(f.fd.replace(dev, invalid, None), Ok(invalid));
    // Replacing with the translating one is refused and keeps the old attachment.
    assert_eq!(f.fd.replace(dev, s1, None), Err(Errno::ENOENT));
    assert_eq!(f.fd.get_device(dev).unwrap().attached(), vec![(0, invalid)]);

    // A vDEVICE on another vIOMMU does not count.
    let other = f
        .viommu_alloc(0, ViommuType::ARM_SMMUV3, dev, s.s2)
        .unwrap();
    let vdev = f.vdevice_alloc(other, dev, 0x42).unwrap();
    assert_eq!(f.fd.replace(dev, s1, None), Err(Errno::ENOENT));
    f.destroy(vdev).unwrap();
    f.vdevice_alloc(viommu, dev, 0x42).unwrap();
    assert_eq!(f.fd.replace(dev, s1, None), Ok(s1));
    let set = s.fake.set.lock().unwrap().clone();
    let Some(&(
        rid,
        pasid,
        _,
        DomainSpec::Nested {
            s1: spec,
            parent_did,
            ..
        },
    )) = set.last()
    else {
        panic!("the last entry the driver wrote is nested: {set:?}");
    };
    assert_eq!((rid, pasid), (s.rid, 0), "the requests without PASID");
    assert!(matches!(
        spec,
        NestedS1::StreamEntry {
            translates: true,
            ..
        }
    ));
    assert_eq!(
        parent_did,
        f.fd.get_hwpt_paging(s.s2).unwrap().domain().did()
    );
    // Attached, the HWPT is busy; detached, it can go.
    assert_eq!(f.destroy(s1), Err(Errno::EBUSY));
    f.fd.detach(dev, None).unwrap();
    f.destroy(s1).unwrap();
    // A fresh attach now succeeds straight away too.
    let s1 = f.hwpt_alloc(dev, viommu, 0, SMMU, &ste(STE_S1)).unwrap();
    assert_eq!(f.fd.attach(dev, s1, None), Ok(s1));
    // A PASID cannot be attached to a vIOMMU's nested HWPT (not PASID-compatible).
    assert_eq!(f.fd.attach(dev, abort, Some(5)), Err(Errno::EINVAL));
}

fn invalidate(
    f: &Fixture,
    hwpt_id: u32,
    data_type: HwptInvalidateDataType,
    cmds: &[[u64; 2]],
    entry_len: u32,
) -> (Result<(), Errno>, u32) {
    let mut bytes = Vec::new();
    for &cmd in cmds {
        bytes.extend_from_slice(IommuViommuArmSmmuv3Invalidate { cmd }.as_bytes());
        bytes.resize(bytes.len() + entry_len as usize - 16, 0);
    }
    let mut cmd = IommuHwptInvalidate {
        size: 32,
        hwpt_id,
        data_uptr: if bytes.is_empty() {
            0
        } else {
            f.user_bytes(&bytes)
        },
        data_type,
        entry_len,
        entry_num: cmds.len() as u32,
        __reserved: 0,
    };
    let result = f.call(IOMMU_HWPT_INVALIDATE, &mut cmd);
    (result, cmd.entry_num)
}

#[test]
fn invalidation_through_the_viommu_translates_vsids_and_counts_what_it_did() {
    let s = smmu();
    let (f, dev, viommu) = (&s.f, s.dev_id, s.viommu);
    let smmu = HwptInvalidateDataType::ARM_SMMUV3;
    f.vdevice_alloc(viommu, dev, 0x42).unwrap();
    let vmid = f.fd.get_hwpt_paging(s.s2).unwrap().domain().did();
    let cfgi_cd = |vsid: u64| [CFGI_CD | (vsid << 32), 7];
    let tlbi = [TLBI_NH_VA | (0x77 << 32) | (9 << 12), 0x1000];
    // Probing the type: nothing to do.
    assert_eq!(invalidate(f, viommu, smmu, &[], 16), (Ok(()), 0));
    // Two good commands, then one naming a vSID with no vDEVICE: stops there.
    let (result, done) = invalidate(
        f,
        viommu,
        smmu,
        &[cfgi_cd(0x42), tlbi, cfgi_cd(0x43), tlbi],
        16,
    );
    assert_eq!((result, done), (Err(Errno::EIO), 2));
    let rid = u64::from(s.rid.raw());
    assert_eq!(
        *s.fake.commands.lock().unwrap(),
        vec![
            [CFGI_CD | (rid << 32), 7],
            [TLBI_NH_VA | (u64::from(vmid) << 32) | (9 << 12), 0x1000],
        ],
        "the vSID became the device's StreamID, the VMID the vIOMMU's"
    );
    // Longer entries are read as the driver's struct with a zero tail.
    assert_eq!(invalidate(f, viommu, smmu, &[tlbi, tlbi], 24), (Ok(()), 2));
    // A type the driver does not know: nothing consumed.
    assert_eq!(
        invalidate(f, viommu, HwptInvalidateDataType::VTD_S1, &[tlbi], 16),
        (Err(Errno::EOPNOTSUPP), 0)
    );
    // A nested HWPT of the vIOMMU has no invalidation of its own (Linux's SMMUv3 nested
    // domain has no cache_invalidate_user).
    let hwpt = f.hwpt_alloc(dev, viommu, 0, SMMU, &ste(STE_S1)).unwrap();
    assert_eq!(
        invalidate(f, hwpt, smmu, &[tlbi], 16),
        (Err(Errno::EOPNOTSUPP), 0)
    );
    // Core checks come first: reserved field, missing pointer, no object, wrong kind.
    let mut cmd = IommuHwptInvalidate {
        size: 32,
        hwpt_id: viommu,
        data_uptr: 0,
        data_type: smmu,
        entry_len: 16,
        entry_num: 1,
        __reserved: 0,
    };
    assert_eq!(f.call(IOMMU_HWPT_INVALIDATE, &mut cmd), Err(Errno::EINVAL));
    assert_eq!(cmd.entry_num, 0);
    assert_eq!(
        invalidate(f, 99, smmu, &[tlbi], 16),
        (Err(Errno::ENOENT), 0)
    );
    assert_eq!(
        invalidate(f, s.s2, smmu, &[tlbi], 16),
        (Err(Errno::EINVAL), 0)
    );
    // The core-managed vIOMMU has no cache_invalidate.
    f.fd.set_core_viommu(true);
    let default = f.viommu_alloc(0, ViommuType::DEFAULT, dev, s.s2).unwrap();
    assert_eq!(
        invalidate(f, default, smmu, &[tlbi], 16),
        (Err(Errno::EOPNOTSUPP), 0)
    );
    assert_eq!(s.fake.commands.lock().unwrap().len(), 4);
}

#[test]
fn page_requests_of_any_ssid_reach_the_nested_hwpts_fault_queue() {
    // vsva's extension: a vIOMMU's nested HWPT with a fault queue receives the page requests
    // (stalls, PRI) of every SubstreamID of its attached device — the guest's CD table gives
    // them their translation, so none has an attachment of its own (the core's
    // `find_fault_handler()` with `user_pasid_table`).
    let s = smmu();
    let (f, dev, viommu) = (&s.f, s.dev_id, s.viommu);
    f.vdevice_alloc(viommu, dev, 0x42).unwrap();
    let (fault, fault_fd) = f.fault_alloc(0).unwrap();
    let hwpt = f
        .hwpt_alloc_with_fault(dev, viommu, FAULT_ID_VALID, SMMU, &ste(STE_S1), fault)
        .unwrap();
    f.fd.attach(dev, hwpt, None).unwrap();
    let request = |pasid, prgi| page_request(s.rid, pasid, prgi, true);
    s.fake
        .requests
        .lock()
        .unwrap()
        .extend([request(Some(5), 1), request(None, 2)]);
    assert_eq!(f.fd.iommu().handle_page_requests(), 2);
    let file = f.fd.fault_file(fault_fd).unwrap();
    let mut buf = [0u8; 80];
    assert_eq!(file.read(&mut buf, 0), Ok(80));
    let records: Vec<vsva_iommufd::abi::IommuHwptPgfault> = buf
        .chunks(40)
        .map(|c| zerocopy::FromBytes::read_from_bytes(c).unwrap())
        .collect();
    assert_eq!(
        records
            .iter()
            .map(|r| (r.dev_id, r.pasid, r.grpid, r.flags))
            .collect::<Vec<_>>(),
        vec![(dev, 5, 1, 3), (dev, 0, 2, 2)],
        "SSID 5 with PASID_VALID, the request without PASID without; both LAST_PAGE"
    );
    assert!(
        s.fake.responses.lock().unwrap().is_empty(),
        "nothing answered yet"
    );
    let response = vsva_iommufd::abi::IommuHwptPageResponse {
        cookie: records[0].cookie,
        code: vsva_iommufd::abi::PageResponseCode::SUCCESS,
    };
    assert_eq!(file.write(response.as_bytes(), 0), Ok(8));
    assert_eq!(
        *s.fake.responses.lock().unwrap(),
        vec![(s.rid, Some(5), 1, vsva_iommu::ResponseCode::Success)]
    );
    // Detaching answers what is left INVALID.
    f.fd.detach(dev, None).unwrap();
    assert_eq!(
        s.fake.responses.lock().unwrap().last(),
        Some(&(s.rid, None, 2, vsva_iommu::ResponseCode::InvalidRequest))
    );
}

#[test]
fn replacing_the_nested_hwpt_answers_the_groups_of_every_ssid_it_took() {
    // `iommufd_auto_response_faults()` answers the groups that came through the attach
    // handle going away. A group of SubstreamID 7 came through the RID's nested attachment
    // (the guest's CD table translates SSID 7), so replacing that attachment — what a VMM
    // does when the guest rewrites its STE — answers it INVALID, read or not, and the
    // device waits for nothing.
    let s = smmu();
    let (f, dev, viommu) = (&s.f, s.dev_id, s.viommu);
    f.vdevice_alloc(viommu, dev, 0x42).unwrap();
    let (fault, fault_fd) = f.fault_alloc(0).unwrap();
    let nested = |f: &Fixture| {
        f.hwpt_alloc_with_fault(dev, viommu, FAULT_ID_VALID, SMMU, &ste(STE_S1), fault)
            .unwrap()
    };
    let (first, second) = (nested(f), nested(f));
    f.fd.attach(dev, first, None).unwrap();
    let request = |pasid, prgi| page_request(s.rid, Some(pasid), prgi, false);
    s.fake
        .requests
        .lock()
        .unwrap()
        .extend([request(7, 3), request(9, 4)]);
    assert_eq!(f.fd.iommu().handle_page_requests(), 2);
    // SSID 7's group is read (awaiting the VMM's answer), SSID 9's still queued.
    let file = f.fd.fault_file(fault_fd).unwrap();
    let mut one = [0u8; 40];
    assert_eq!(file.read(&mut one, 0), Ok(40));
    let read: vsva_iommufd::abi::IommuHwptPgfault =
        zerocopy::FromBytes::read_from_bytes(&one[..]).unwrap();
    assert_eq!((read.pasid, read.grpid), (7, 3));
    f.fd.replace(dev, second, None).unwrap();
    let mut answered = s.fake.responses.lock().unwrap().clone();
    answered.sort_by_key(|&(_, pasid, prgi, _)| (pasid, prgi));
    let invalid = vsva_iommu::ResponseCode::InvalidRequest;
    assert_eq!(
        answered,
        vec![(s.rid, Some(7), 3, invalid), (s.rid, Some(9), 4, invalid)]
    );
    // Neither is on the queue any more: nothing to read, and the late answer is refused.
    assert_eq!(file.read(&mut one, 0), Ok(0));
    let late = vsva_iommufd::abi::IommuHwptPageResponse {
        cookie: read.cookie,
        code: vsva_iommufd::abi::PageResponseCode::SUCCESS,
    };
    assert_eq!(file.write(late.as_bytes(), 0), Err(Errno::EINVAL));
    assert_eq!(s.fake.responses.lock().unwrap().len(), 2);
}
