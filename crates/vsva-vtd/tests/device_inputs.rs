//! What a device controls — the address, access and address type of its requests, and its
//! page requests — at the edges of their ranges, under every translation type: each gets a
//! translation, the spec's fault or the spec's page group response, never a panic.

mod common;

use common::*;
use vsva_mem::{Access, PageSize, Pasid, PhysMem, Rid};
use vsva_pcie::{PageRequest, PageRequestOutcome, Request, RequestKind, ResponseCode};
use vsva_pgtable::vtd_ss::VtdSecondStage;
use vsva_pgtable::x86::X86Paging;
use vsva_pgtable::{PageTable, Perm};
use vsva_vtd::VtdConfig;
use vsva_vtd::spec::fault::FaultReason;
use vsva_vtd::spec::pasid::Pgtt;
use vsva_vtd::spec::registers::offset;

const ADDRS: [u64; 8] = [
    0,
    0xfff,
    0xfee0_0000,
    1 << 46,
    1 << 57,
    0x7fff_ffff_ffff_f000,
    0xffff_ffff_c000_0000,
    u64::MAX,
];

const KINDS: [RequestKind; 3] = [
    RequestKind::Untranslated,
    RequestKind::Translation,
    RequestKind::Translated,
];

/// A device with PASID 1 first stage (a 1 GiB page at the top of the space and one at 0),
/// PASID 2 second stage (1 GiB at 0), PASID 3 nested (the first-stage root unmapped by the
/// second stage), PASID 4 pass-through, and requests without PASID second stage.
fn rig() -> (Rig, Rid) {
    let rig = Rig::new(VtdConfig::default());
    let dev = rid(0, 3, 0);
    let dir = rig.attach_device(dev);
    let fs = PageTable::new(X86Paging::default(), rig.frames.clone()).unwrap();
    fs.map(0xffff_ffff_c000_0000, 1 << 30, PageSize::Size1G, Perm::RW)
        .unwrap();
    fs.map(0, 1 << 30, PageSize::Size1G, Perm::USER_RW).unwrap();
    let ss = PageTable::new(VtdSecondStage::four_level(), rig.frames.clone()).unwrap();
    ss.map(0, 1 << 30, PageSize::Size1G, Perm::RW).unwrap();
    rig.write_pasid(dir, 0, &pasid_entry(Pgtt::SecondStage, 1, ss.root(), 0));
    rig.write_pasid(dir, 1, &pasid_entry(Pgtt::FirstStage, 2, 0, fs.root()));
    rig.write_pasid(dir, 2, &pasid_entry(Pgtt::SecondStage, 3, ss.root(), 0));
    rig.write_pasid(dir, 3, &pasid_entry(Pgtt::Nested, 4, ss.root(), 1 << 40));
    rig.write_pasid(dir, 4, &pasid_entry(Pgtt::PassThrough, 5, 0, 0));
    (rig, dev)
}

#[test]
fn requests_at_the_edges_of_the_address_space_translate_or_fault() {
    let (rig, dev) = rig();
    let accesses = [
        Access::READ,
        Access::READ | Access::WRITE,
        Access::WRITE | Access::PRIV,
        Access::READ | Access::EXEC | Access::PRIV,
        Access::empty(),
    ];
    for pasid in [
        None,
        Some(1),
        Some(2),
        Some(3),
        Some(4),
        Some(5),
        Some(0xf_ffff),
    ] {
        for addr in ADDRS {
            for access in accesses {
                for kind in KINDS {
                    let req = Request {
                        rid: dev,
                        pasid: pasid.map(|p| Pasid::new(p).unwrap()),
                        addr,
                        access,
                        kind,
                    };
                    // twice: the second may come from the caches and must agree (its fault
                    // may go unrecorded: same requester, record still pending)
                    let first = rig.vtd.translate(&req).map_err(|b| b.reason);
                    let again = rig.vtd.translate(&req).map_err(|b| b.reason);
                    assert_eq!(again, first, "{req:?}");
                    if kind == RequestKind::Translation {
                        let _ = rig.vtd.ats_translate(&req);
                    }
                }
            }
        }
    }
    // a few outcomes the edges must have
    let dma = |pasid: Option<u32>, addr, access| {
        rig.vtd.translate(&Request {
            rid: dev,
            pasid: pasid.map(|p| Pasid::new(p).unwrap()),
            addr,
            access,
            kind: RequestKind::Untranslated,
        })
    };
    let sup = Access::READ | Access::PRIV;
    let top = dma(Some(1), u64::MAX, sup).unwrap();
    assert_eq!(top.addr, (1 << 30) | 0x3fff_ffff);
    assert_eq!(
        dma(Some(1), 1 << 57, sup).unwrap_err().reason,
        Some(FaultReason::NonCanonical)
    );
    assert_eq!(
        dma(Some(2), u64::MAX, Access::READ).unwrap_err().reason,
        Some(FaultReason::SsInputBeyondWidth)
    );
    assert_eq!(
        dma(Some(4), u64::MAX, Access::READ).unwrap_err().reason,
        Some(FaultReason::PassThroughBeyondHaw)
    );
    assert_eq!(
        dma(None, 0xfee0_0000, Access::WRITE).unwrap_err().reason,
        Some(FaultReason::InterruptAddress)
    );
    assert_eq!(
        dma(Some(0xf_ffff), 0, Access::READ).unwrap_err().reason,
        Some(FaultReason::PasidDirNotPresent)
    );
}

#[test]
fn page_requests_with_any_address_and_group_index_are_queued_or_answered() {
    let (rig, dev) = rig();
    let queue = rig.page();
    rig.w64(offset::PQH, 0);
    rig.w64(offset::PQT, 0);
    rig.w64(offset::PQA, queue);
    for addr in ADDRS {
        for prgi in [0, 0x1ff, 0x200, u16::MAX] {
            for (rid, pasid) in [
                (dev, Some(1)),
                (dev, None),
                (Rid::from_raw(0xffff), Some(1)),
            ] {
                let pr = PageRequest {
                    rid,
                    pasid: pasid.map(|p| Pasid::new(p).unwrap()),
                    addr,
                    read: true,
                    write: addr & 1 != 0,
                    exec: true,
                    privileged: true,
                    last: prgi & 1 != 0,
                    prgi,
                };
                let tail = rig.r64(offset::PQT);
                let out = rig.vtd.page_request(&pr);
                if rid != dev {
                    // no context entry: refused, and answered Invalid Request if last
                    let expect = if pr.last {
                        PageRequestOutcome::AutoResponse(ResponseCode::InvalidRequest)
                    } else {
                        PageRequestOutcome::Dropped
                    };
                    assert_eq!(out, expect, "{pr:?}");
                    continue;
                }
                assert_eq!(out, PageRequestOutcome::Queued, "{pr:?}");
                // what was queued reads back as the page and the 9-bit group index
                let q = [0, 8, 16, 24].map(|o| rig.mem.load_u64(queue + tail + o).unwrap());
                let got = vsva_vtd::spec::page_request::decode(q).unwrap();
                assert_eq!(
                    (got.addr, got.prgi, got.pasid),
                    (addr & !0xfff, prgi & 0x1ff, pr.pasid)
                );
                rig.w64(offset::PQH, rig.r64(offset::PQT));
            }
        }
    }
}
