//! Events, stalls and PRI: what the driver reads from the event and PRI queues and what it
//! answers with.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use vsva_iommu::{DomainSpec, Iommu, IommuOps};
use vsva_pcie::{PageRequest, PageRequestOutcome, ResponseCode};
use vsva_smmuv3::spec::cmd::{Command, PriResp, ResumeAction};
use vsva_smmuv3::spec::event::{Access, EventRecord, WalkFault, id};
use vsva_smmuv3::spec::registers::{offset, queue};
use vsva_smmuv3_driver::pri_resp;

const ROOT: u64 = 0x3000_0000;

fn sva() -> DomainSpec {
    DomainSpec::Sva {
        root: ROOT,
        levels: 4,
        supervisor: false,
    }
}

fn access(ssid: Option<u32>, addr: u64, read: bool) -> Access {
    Access {
        sid: DEV as u32,
        ssid,
        addr,
        read,
        instruction: false,
        privileged: false,
    }
}

fn request(prgi: u16, last: bool) -> PageRequest {
    PageRequest {
        rid: rid(DEV),
        pasid: Some(pasid(5)),
        addr: 0x7f00_1000,
        read: true,
        write: true,
        exec: false,
        privileged: false,
        last,
        prgi,
    }
}

#[test]
fn a_translation_fault_event_becomes_an_unrecoverable_fault() {
    let r = rig();
    let rec = EventRecord::walk_fault(
        id::F_TRANSLATION,
        &access(Some(5), 0x1234_5678, false),
        &WalkFault::default(),
    );
    assert!(r.unit.record(&rec));
    let faults = r.driver.take_faults();
    assert_eq!(faults.len(), 1);
    let f = faults[0];
    assert_eq!(
        (f.dev, f.pasid, f.addr, f.reason, f.write),
        (
            rid(DEV),
            Some(pasid(5)),
            0x1234_5000,
            id::F_TRANSLATION,
            true
        )
    );
    assert!(r.driver.take_faults().is_empty(), "consumed");
    assert!(r.driver.take_page_requests().is_empty(), "not a stall");
}

#[test]
fn a_read_permission_fault_without_pasid_is_decoded_as_a_read() {
    let r = rig();
    let rec = EventRecord::walk_fault(
        id::F_PERMISSION,
        &access(None, 0x8000, true),
        &WalkFault::default(),
    );
    r.unit.record(&rec);
    let f = r.driver.take_faults()[0];
    assert_eq!(
        (f.pasid, f.write, f.reason),
        (None, false, id::F_PERMISSION)
    );
}

#[test]
fn a_cleared_pasid_beside_a_live_one_faults_with_c_bad_cd() {
    let r = rig();
    r.driver.attach_device(rid(DEV), caps(8, true)).unwrap();
    r.driver.set_pasid(rid(DEV), pasid(1), 3, &sva()).unwrap();
    r.driver.set_pasid(rid(DEV), pasid(2), 4, &sva()).unwrap();
    r.driver.clear_pasid(rid(DEV), pasid(2)).unwrap();
    assert!(matches!(
        r.unit.stream_config(DEV as u32, Some(2)),
        Err(vsva_smmuv3::ConfigFault::BadCd { .. })
    ));
    let f = r.driver.take_faults();
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].reason, f[0].pasid), (id::C_BAD_CD, Some(pasid(2))));
}

#[test]
fn a_stall_event_becomes_a_page_request_answered_by_resume() {
    let r = rig();
    r.driver.attach_device(rid(DEV), caps(8, true)).unwrap();
    let stalled = WalkFault {
        stag: Some(7),
        ..WalkFault::default()
    };
    r.unit.record(&EventRecord::walk_fault(
        id::F_TRANSLATION,
        &access(Some(5), 0x4_2345, false),
        &stalled,
    ));
    assert!(r.driver.take_faults().is_empty(), "a stall is not a fault");
    let reqs = r.driver.take_page_requests();
    assert_eq!(reqs.len(), 1);
    let q = reqs[0];
    assert_eq!(
        (q.rid, q.pasid, q.addr, q.write, q.read, q.last, q.prgi),
        (rid(DEV), Some(pasid(5)), 0x4_2000, true, false, true, 7)
    );
    let m = r.mark();
    r.driver
        .page_response(rid(DEV), Some(pasid(5)), 7, ResponseCode::Success)
        .unwrap();
    assert_eq!(
        r.commands_since(m),
        vec![Command::Resume {
            sid: DEV as u32,
            stag: 7,
            action: ResumeAction::Retry
        }]
    );
    assert_eq!(
        r.hooks.resumes.lock().unwrap().clone(),
        vec![(DEV as u32, 7, ResumeAction::Retry)]
    );
    // A second stall answered with failure terminates with an abort.
    r.unit.record(&EventRecord::walk_fault(
        id::F_PERMISSION,
        &access(None, 0x9000, true),
        &WalkFault {
            stag: Some(8),
            ..WalkFault::default()
        },
    ));
    assert_eq!(r.driver.take_page_requests()[0].prgi, 8);
    r.driver
        .page_response(rid(DEV), None, 8, ResponseCode::InvalidRequest)
        .unwrap();
    assert_eq!(
        r.hooks.resumes.lock().unwrap().last(),
        Some(&(DEV as u32, 8, ResumeAction::Abort))
    );
}

#[test]
fn a_pri_page_request_round_trips_to_a_pri_resp() {
    let r = rig();
    r.driver.attach_device(rid(DEV), caps(8, true)).unwrap();
    assert_eq!(
        r.unit.page_request(&request(0x1a5, true)),
        PageRequestOutcome::Queued
    );
    assert_eq!(r.driver.take_page_requests(), vec![request(0x1a5, true)]);
    let m = r.mark();
    r.driver
        .page_response(
            rid(DEV),
            Some(pasid(5)),
            0x1a5,
            ResponseCode::InvalidRequest,
        )
        .unwrap();
    assert_eq!(
        r.commands_since(m),
        vec![Command::PriResp {
            sid: DEV as u32,
            ssid: Some(5),
            prgi: 0x1a5,
            resp: PriResp::InvalidRequest
        }]
    );
    assert_eq!(
        r.endpoints.responses.lock().unwrap().clone(),
        vec![(
            rid(DEV),
            Some(pasid(5)),
            ResponseCode::InvalidRequest,
            0x1a5
        )]
    );
}

#[test]
fn pri_resp_encodes_resp_as_ihi_0070_4_5_2_not_as_linux_names_it() {
    // §4.5.2: 0b00 ResponseFailure, 0b01 InvalidRequest, 0b10 Success. Linux's
    // PRI_RESP_DENY (0) is therefore a Response Failure on the wire.
    for (code, resp, bits) in [
        (
            ResponseCode::ResponseFailure,
            PriResp::ResponseFailure,
            0b00,
        ),
        (ResponseCode::InvalidRequest, PriResp::InvalidRequest, 0b01),
        (ResponseCode::Success, PriResp::Success, 0b10),
    ] {
        assert_eq!(pri_resp(code), resp);
        let raw = Command::PriResp {
            sid: 1,
            ssid: None,
            prgi: 0,
            resp,
        }
        .encode();
        assert_eq!((raw[1] >> 12) & 3, bits, "{code:?}");
    }
}

#[test]
fn every_response_code_reaches_the_device_as_sent() {
    let r = rig();
    r.driver.attach_device(rid(DEV), caps(8, true)).unwrap();
    for (i, code) in [
        ResponseCode::Success,
        ResponseCode::InvalidRequest,
        ResponseCode::ResponseFailure,
    ]
    .into_iter()
    .enumerate()
    {
        r.unit.page_request(&request(i as u16, true));
        r.driver.take_page_requests();
        r.driver
            .page_response(rid(DEV), None, i as u16, code)
            .unwrap();
        let last = *r.endpoints.responses.lock().unwrap().last().unwrap();
        assert_eq!(last, (rid(DEV), None, code, i as u16));
    }
}

#[test]
fn a_page_request_group_reaches_the_core_and_its_answer_the_device() {
    let r = rig();
    let iommu = Iommu::new(r.driver.clone());
    iommu.add_device(rid(DEV), caps(8, true), 32).unwrap();
    let keep = Arc::new(Keep(Mutex::new(Vec::new())));
    iommu
        .attach_pasid(rid(DEV), pasid(5), &sva(), Some(keep.clone()))
        .unwrap();
    r.unit.page_request(&request(3, false));
    r.unit.page_request(&request(3, true));
    assert_eq!(iommu.handle_page_requests(), 1);
    let groups = keep.0.lock().unwrap().clone();
    assert_eq!(groups.len(), 1);
    assert!(iommu.respond(rid(DEV), Some(pasid(5)), 3, ResponseCode::Success));
    assert_eq!(
        r.endpoints.responses.lock().unwrap().clone(),
        vec![(rid(DEV), Some(pasid(5)), ResponseCode::Success, 3)]
    );
}

#[test]
fn an_event_queue_overflow_is_acknowledged_and_events_flow_again() {
    let r = rig();
    let rec = |addr| {
        EventRecord::walk_fault(
            id::F_TRANSLATION,
            &access(None, addr, true),
            &WalkFault::default(),
        )
    };
    for i in 0..200u64 {
        r.unit.record(&rec(i << 12));
    }
    let faults = r.driver.take_faults();
    assert_eq!(faults.len(), 128, "the queue's worth");
    assert_eq!(r.driver.overflows().0, 1);
    let prod = r.unit.mmio_read(offset::EVENTQ_PROD, 4) as u32;
    let cons = r.unit.mmio_read(offset::EVENTQ_CONS, 4) as u32;
    assert_eq!(prod & queue::OVERFLOW, cons & queue::OVERFLOW, "OVACKFLG");
    assert!(r.unit.record(&rec(0x99_9000)));
    assert_eq!(r.driver.take_faults()[0].addr, 0x99_9000);
}

#[test]
fn events_of_a_streamid_no_requester_id_has_are_dropped() {
    let rec = EventRecord::c_bad_ste(0x1_0000, None);
    assert_eq!(vsva_smmuv3_driver::decode_event(&rec), None);
    let rec = EventRecord::c_bad_ste(0x42, None);
    assert!(matches!(
        vsva_smmuv3_driver::decode_event(&rec),
        Some(vsva_smmuv3_driver::Decoded::Fault(f)) if f.reason == id::C_BAD_STE && f.addr == 0
    ));
}
