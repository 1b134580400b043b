//! A byte-stream interpreter for fuzzing the unit: arbitrary bytes become register accesses,
//! memory writes (table contents, queue descriptors) and device requests — everything a guest
//! or a buggy driver controls. Used by the cargo-fuzz target in `fuzz/` and by a seeded
//! random-input test in the ordinary test suite.
//!
//! The unit gets a small memory (4 MiB); every pointer beyond it is a guest mistake the unit
//! must turn into a fault or a queue error. After every step the checks of [`run`] hold: no
//! panic, no hang (each step is bounded), and the unit's head/tail registers stay inside their
//! queues.

use std::sync::{Arc, Mutex};

use vsva_mem::{Access, Pasid, PhysMem, PhysMemory, Rid};
use vsva_pcie::{AtsInvalidation, AtsInvalidationError, Downstream, PageRequest, ResponseCode};

use crate::VtdConfig;
use crate::request::{Request, RequestKind};
use crate::spec::registers::{Iqa, Pqa, offset};
use crate::unit::Vtd;
use vsva_pcie::MsiLog;

/// Size of the fuzzed unit's memory.
pub const MEMORY: u64 = 4 << 20;

/// Registers worth hitting more often than random offsets.
const REGISTERS: [u64; 20] = [
    offset::GCMD,
    offset::RTADDR,
    offset::FSTS,
    offset::FECTL,
    offset::IQT,
    offset::IQA,
    offset::ICS,
    offset::IECTL,
    offset::PQH,
    offset::PQT,
    offset::PQA,
    offset::PRS,
    offset::PECTL,
    offset::FRCD0 + 8,
    offset::FRCD0 + 12,
    offset::CCMD,
    offset::IOTLB,
    offset::IQH,
    offset::CAP,
    offset::IQERCD,
];

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
}

/// Endpoints for the fuzzed unit: even SIDs answer ATS invalidations, odd ones time out,
/// SIDs divisible by 3 answer wrongly.
#[derive(Default)]
struct FuzzDevices {
    responses: Mutex<u64>,
}

impl Downstream for FuzzDevices {
    fn ats_invalidate(&self, inv: &AtsInvalidation) -> Result<(), AtsInvalidationError> {
        match inv.sid.raw() {
            s if s % 3 == 0 => Err(AtsInvalidationError::BadCompletion),
            s if s % 2 == 1 => Err(AtsInvalidationError::Timeout),
            _ => Ok(()),
        }
    }
    fn page_group_response(&self, _: Rid, _: Option<Pasid>, _: ResponseCode, _: u16) {
        if let Ok(mut n) = self.responses.lock() {
            *n += 1;
        }
    }
}

/// What a run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Operations interpreted.
    pub ops: u64,
    /// Requests translated successfully.
    pub translated: u64,
    /// Requests refused.
    pub refused: u64,
}

fn access(bits: u8) -> Access {
    let mut a = Access::from_bits_truncate(bits & 0xf);
    if !a.intersects(Access::READ | Access::WRITE) {
        a |= Access::READ;
    }
    a
}

/// Interprets `data` against a fresh unit.
///
/// # Panics
/// When an invariant of the unit is broken (that is the point: the fuzzer reports it).
pub fn run(data: &[u8]) -> Summary {
    let mem = Arc::new(PhysMemory::new(MEMORY).expect("4 MiB of memory"));
    let dynmem: Arc<dyn PhysMem> = mem.clone();
    let vtd = Vtd::with_devices(
        VtdConfig::default(),
        dynmem,
        Arc::new(MsiLog::default()),
        Arc::new(FuzzDevices::default()),
    );
    let mut b = Bytes(data);
    let mut s = Summary::default();
    while let Some(op) = b.u8() {
        s.ops += 1;
        match op % 8 {
            0 | 1 => {
                let Some(sel) = b.u16() else { break };
                let off = if sel & 1 == 0 {
                    REGISTERS[(sel >> 1) as usize % REGISTERS.len()]
                } else {
                    (sel >> 1) as u64 % offset::WINDOW
                };
                let size = if op & 0x10 != 0 { 8 } else { 4 };
                if op % 8 == 0 {
                    let Some(v) = b.u64() else { break };
                    // Point RTADDR/IQA/PQA into memory most of the time.
                    let v = if matches!(off, offset::RTADDR | offset::IQA | offset::PQA)
                        && op & 0x20 == 0
                    {
                        v % MEMORY
                    } else {
                        v
                    };
                    vtd.mmio_write(off, size, v);
                } else {
                    vtd.mmio_read(off, size);
                }
            }
            2 | 3 => {
                let (Some(at), Some(v)) = (b.u32(), b.u64()) else {
                    break;
                };
                let at = (at as u64 % MEMORY) & !7;
                // Mostly small values or pointers into memory, so structures chain.
                let v = match op >> 6 {
                    0 => (v % MEMORY) | (v & 0xfff),
                    1 => v & 0xffff,
                    _ => v,
                };
                let _ = mem.store_u64(at, v);
            }
            4 | 5 => {
                let (Some(rid), Some(pasid), Some(addr), Some(bits)) =
                    (b.u16(), b.u32(), b.u64(), b.u8())
                else {
                    break;
                };
                let req = Request {
                    rid: Rid::from_raw(rid),
                    pasid: (bits & 0x40 != 0)
                        .then(|| Pasid::new(pasid & 0xf_ffff).ok())
                        .flatten(),
                    addr,
                    access: access(bits),
                    kind: match bits >> 4 & 3 {
                        0 | 1 => RequestKind::Untranslated,
                        2 => RequestKind::Translated,
                        _ => RequestKind::Translation,
                    },
                };
                let ok = if op % 8 == 5 {
                    vtd.ats_translate(&req).is_ok()
                } else {
                    vtd.translate(&req).is_ok()
                };
                if ok {
                    s.translated += 1;
                } else {
                    s.refused += 1;
                }
            }
            6 => {
                let (Some(rid), Some(pasid), Some(addr), Some(bits)) =
                    (b.u16(), b.u32(), b.u64(), b.u16())
                else {
                    break;
                };
                vtd.page_request(&PageRequest {
                    rid: Rid::from_raw(rid),
                    pasid: (bits & 1 != 0)
                        .then(|| Pasid::new(pasid & 0xf_ffff).ok())
                        .flatten(),
                    addr,
                    read: bits & 2 != 0,
                    write: bits & 4 != 0,
                    exec: bits & 8 != 0,
                    privileged: bits & 16 != 0,
                    last: bits & 32 != 0,
                    prgi: bits >> 7,
                });
            }
            _ => {
                // A descriptor at the queue's tail, then the tail moved past it.
                let q: Option<[u64; 4]> = (|| Some([b.u64()?, b.u64()?, b.u64()?, b.u64()?]))();
                let Some(q) = q else { break };
                let iqa = Iqa::from_bits(vtd.mmio_read(offset::IQA, 8));
                let tail = vtd.mmio_read(offset::IQT, 8);
                let base = iqa.iqa() << 12;
                for (i, w) in q.iter().enumerate() {
                    let _ = mem.store_u64(base.wrapping_add(tail + 8 * i as u64), *w);
                }
                let size = 4096u64 << iqa.qs();
                vtd.mmio_write(offset::IQT, 8, (tail + 32) % size);
            }
        }
        check(&vtd);
    }
    s
}

/// The unit's invariants after any step.
fn check(vtd: &Vtd) {
    let iqh = vtd.mmio_read(offset::IQH, 8);
    let iqa = Iqa::from_bits(vtd.mmio_read(offset::IQA, 8));
    assert_eq!(iqh & 0x1f, 0, "IQH is a 256-bit descriptor boundary");
    assert!(iqh < 4096 << 7, "IQH inside the largest queue");
    let _ = iqa;
    let pqt = vtd.mmio_read(offset::PQT, 8);
    let pqa = Pqa::from_bits(vtd.mmio_read(offset::PQA, 8));
    assert_eq!(pqt & 0x1f, 0, "PQT is a descriptor boundary");
    assert!(pqt < 4096 << pqa.pqs().max(7), "PQT inside the queue");
    let fsts = vtd.mmio_read(offset::FSTS, 4);
    assert_eq!(fsts & !0xff7f, 0, "FSTS has only defined bits");
}
