//! A byte-stream interpreter for fuzzing the demo device through its registers: arbitrary
//! bytes become BAR 0 writes and reads (commands with any opcode, addresses, lengths and
//! PASIDs, and doorbells), configuration writes (PASID, ATS and PRI enables and resets), runs
//! of the device, and the IOMMU's side — grants, revocations with their ATS invalidations
//! (also racing a translation), and answers to page requests (Success, Invalid Request,
//! Response Failure, unsolicited). Used by the cargo-fuzz target `demo_device` in `fuzz/`
//! and by a seeded test.
//!
//! The device sits on a small machine ([`FuzzIommu`]) whose memory panics
//! on any access to a page not granted at that moment. After every step [`run`] checks:
//! * every translated DMA and every memory access is to a page the IOMMU grants the
//!   command's PASID at that moment, with write permission for writes — also after a
//!   revocation whose ATS invalidation completed (PCIe Base 6.0 §10.3.1), and when the
//!   revocation overtook the completion of the translation;
//! * no Translation Request from a Function whose ATS Enable is clear (§10.5.1.3);
//! * STATUS and ERROR agree with what [`DemoDevice::run`] reported;
//! * the device never hangs: at the end, with every page request answered, the command ends
//!   (done or failed) within a bounded number of runs, and the IOMMU answered each page
//!   request group exactly once.

mod iommu;

use std::sync::Arc;

use vsva_mem::{Pasid, Rid};
use vsva_pcie::ResponseCode;
use vsva_pcie::config::{ATS_CAP_OFFSET, PASID_CAP_OFFSET, PRI_CAP_OFFSET};

pub use iommu::{FuzzIommu, Grant, PAGES, VA_BASE, VA_PAGES};

use crate::device::{DemoDevice, Progress};
use crate::regs::{self, DeviceError, Status};

/// What a run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Operations interpreted.
    pub ops: u64,
    /// Commands that completed.
    pub done: u64,
    /// Commands that failed.
    pub failed: u64,
    /// Page requests the device sent.
    pub page_requests: u64,
    /// Translated DMAs checked against the grants.
    pub dmas: u64,
}

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
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
}

/// PASIDs the harness uses (1..=4, or any with the raw bit).
fn pasid(b: u8) -> u32 {
    u32::from(b % 4) + 1
}

/// A BAR 0 value for register `off`, mostly meaningful.
fn value(off: u64, v: u64, raw: bool) -> u64 {
    if raw {
        return v;
    }
    match off {
        regs::COMMAND => v % 7,
        regs::SRC | regs::DST => VA_BASE + v % ((VA_PAGES + 2) * 4096),
        regs::LEN => v % (3 * 4096),
        regs::PASID => u64::from(pasid(v as u8)) | regs::PASID_VALID,
        regs::DOORBELL => 1,
        _ => v,
    }
}

/// Interprets `data` against a fresh device on a fresh machine.
///
/// # Panics
/// When the device breaks an invariant (the fuzzer reports it).
pub fn run(data: &[u8]) -> Summary {
    let iommu = Arc::new(FuzzIommu::new());
    let rid = Rid::from_raw(0x18);
    let mut b = Bytes(data);
    let (pri_capacity, atc) = match (b.u8(), b.u8()) {
        (Some(p), Some(a)) => (u32::from(p % 8) + 1, usize::from(a % 8)),
        _ => return Summary::default(),
    };
    let dev = Arc::new(DemoDevice::new(rid, iommu.clone(), pri_capacity, atc));
    iommu.connect(&dev);
    // The driver's enables (driver::enable_sva_capabilities), which the stream may undo.
    dev.config_write(u32::from(PRI_CAP_OFFSET) + 0xc, 4, pri_capacity);
    dev.config_write(u32::from(PASID_CAP_OFFSET) + 6, 2, 0x7);
    dev.config_write(u32::from(ATS_CAP_OFFSET) + 6, 2, 0x8000);
    dev.config_write(u32::from(PRI_CAP_OFFSET) + 4, 2, 1);
    let mut s = Summary::default();
    while let Some(op) = b.u8() {
        s.ops += 1;
        match op % 8 {
            0 if op & 0x40 != 0 => {
                // A whole command, as the driver programs one, and its doorbell.
                let (Some(code), Some(src), Some(dst), Some(len), Some(p)) =
                    (b.u8(), b.u8(), b.u8(), b.u16(), b.u8())
                else {
                    break;
                };
                let va = |page: u8| VA_BASE + u64::from(page % 40) * 4096 + u64::from(page >> 6);
                dev.mmio_write(regs::COMMAND, u64::from(code % 6));
                dev.mmio_write(regs::SRC, va(src));
                dev.mmio_write(regs::DST, va(dst));
                dev.mmio_write(regs::LEN, u64::from(len) % (3 * 4096));
                dev.mmio_write(regs::PATTERN, u64::from(code));
                dev.mmio_write(regs::FLAGS, u64::from(p >> 7));
                dev.mmio_write(regs::PASID, u64::from(pasid(p)) | regs::PASID_VALID);
                dev.mmio_write(regs::DOORBELL, 1);
            }
            0 | 1 => {
                let (Some(r), Some(v)) = (b.u8(), b.u64()) else {
                    break;
                };
                let off = if r & 0x80 != 0 {
                    u64::from(r & 0x7f)
                } else {
                    u64::from(r % 12) * 8
                };
                dev.mmio_write(off, value(off, v, op & 0x80 != 0));
            }
            2 => {
                let Some(r) = b.u8() else { break };
                check_registers(&dev, None);
                let _ = dev.mmio_read(u64::from(r));
            }
            3 => {
                let (Some(sel), Some(v)) = (b.u8(), b.u16()) else {
                    break;
                };
                let (off, size) = match sel % 5 {
                    0 => (u32::from(PASID_CAP_OFFSET) + 6, 2),
                    1 => (u32::from(ATS_CAP_OFFSET) + 6, 2),
                    2 => (u32::from(PRI_CAP_OFFSET) + 4, 4),
                    3 => (u32::from(PRI_CAP_OFFSET) + 0xc, 4),
                    _ => (u32::from(sel >> 3) + 0x100, 1),
                };
                dev.config_write(off, size, u32::from(v) | u32::from(v) << 16);
            }
            4 => {
                step(&iommu, &dev, &mut s);
            }
            5 => {
                let Some(how) = b.u8() else { break };
                answer(&iommu, how);
            }
            6 => {
                let (Some(p), Some(page), Some(pa)) = (b.u8(), b.u8(), b.u8()) else {
                    break;
                };
                let key = (pasid(p), VA_BASE / 4096 + u64::from(page) % VA_PAGES);
                match p >> 4 {
                    0..=9 => {
                        // Map or remap: a remap of a page goes through a revocation first.
                        if iommu.state().map.contains_key(&key) {
                            iommu.revoke(key.0, key.1, p & 8 != 0);
                        }
                        let g = Grant {
                            pa_page: u64::from(pa) % PAGES,
                            write: p & 4 != 0,
                        };
                        iommu.state().map.insert(key, g);
                    }
                    10..=13 => iommu.revoke(key.0, key.1, p & 8 != 0),
                    _ => iommu.revoke_all(key.0),
                }
            }
            _ => {
                let (Some(k), Some(prgi)) = (b.u8(), b.u16()) else {
                    break;
                };
                match k % 3 {
                    0 => iommu.state().race = true,
                    1 => iommu.state().auto_response = true,
                    _ => {
                        // An unsolicited PRG Response: UPRGI at most, never a hang.
                        let code = response_code(k >> 2);
                        iommu.respond(Pasid::new(pasid(k)).ok(), prgi % 512, code);
                    }
                }
            }
        }
    }
    drain(&iommu, &dev, &mut s);
    let st = iommu.state();
    s.dmas = st.dmas;
    s.page_requests = st.requests;
    s
}

fn response_code(k: u8) -> ResponseCode {
    match k % 4 {
        0 | 1 => ResponseCode::Success,
        2 => ResponseCode::InvalidRequest,
        _ => ResponseCode::ResponseFailure,
    }
}

/// Answers the oldest pending page request: `how` picks the code, and for Success whether
/// the page is granted first (read-only or writable) or left as it was.
fn answer(iommu: &FuzzIommu, how: u8) {
    let pr = {
        let mut st = iommu.state();
        if st.pending.is_empty() {
            return;
        }
        st.pending.remove(0)
    };
    if !pr.last {
        return;
    }
    let page = pr.addr >> 12;
    let in_window = (VA_BASE >> 12..(VA_BASE >> 12) + VA_PAGES).contains(&page);
    let mut code = response_code(how);
    if code == ResponseCode::Success && how & 0x10 == 0 {
        if in_window && let Some(p) = pr.pasid {
            let g = Grant {
                pa_page: u64::from(how >> 5) % PAGES,
                write: pr.write || how & 8 != 0,
            };
            // A grant replaced goes through its invalidation first, as a real IOMMU's
            // change of a present mapping does.
            let old = iommu.state().map.get(&(p.raw(), page)).copied();
            if old.is_some_and(|o| o != g) {
                iommu.revoke(p.raw(), page, false);
            }
            iommu.state().map.insert((p.raw(), page), g);
        } else {
            code = ResponseCode::InvalidRequest;
        }
    }
    iommu.state().answers += 1;
    iommu.respond(pr.pasid, pr.prgi, code);
}

/// One run of the device, with the checks of its registers against what it reported.
fn step(iommu: &FuzzIommu, dev: &DemoDevice, s: &mut Summary) -> Progress {
    let ats = dev.config_read(u32::from(ATS_CAP_OFFSET) + 6, 2) & 0x8000 != 0;
    iommu.state().ats_enabled = ats;
    let p = dev.run();
    match p {
        Progress::Done => s.done += 1,
        Progress::Failed(_) => s.failed += 1,
        _ => {}
    }
    check_registers(dev, Some(p));
    p
}

/// STATUS is one of its values, ERROR names a [`DeviceError`] when STATUS says error, and both
/// agree with the progress `run` reported.
fn check_registers(dev: &DemoDevice, p: Option<Progress>) {
    let status = dev.mmio_read(regs::STATUS);
    let error = dev.mmio_read(regs::ERROR);
    assert!(status <= Status::Error as u64, "STATUS {status}");
    if status == Status::Error as u64 {
        assert!(DeviceError::from_raw(error).is_some(), "ERROR {error}");
    }
    match p {
        Some(Progress::Done) => assert_eq!(status, Status::Done as u64),
        Some(Progress::Failed(e)) => {
            assert_eq!((status, error), (Status::Error as u64, e as u64));
        }
        Some(Progress::Waiting) => assert_eq!(status, Status::Busy as u64),
        _ => {}
    }
}

/// Every page request answered (Success with the page granted where the window allows), the
/// device runs until its command ends; a command still waiting with nothing left to answer,
/// or one that runs on for more rounds than it has pages, is a hang. Then each group the
/// device asked about has been answered exactly once.
fn drain(iommu: &FuzzIommu, dev: &DemoDevice, s: &mut Summary) {
    for _ in 0..4 * (VA_PAGES + 4) {
        let had_pending = !iommu.state().pending.is_empty();
        while !iommu.state().pending.is_empty() {
            answer(iommu, 0x08);
        }
        match step(iommu, dev, s) {
            Progress::Waiting => assert!(
                had_pending || !iommu.state().pending.is_empty(),
                "the device waits on a page request nobody holds"
            ),
            _ if iommu.state().pending.is_empty() => {
                let st = iommu.state();
                assert_eq!(
                    st.answers, st.groups,
                    "each page request group answered once"
                );
                return;
            }
            _ => {}
        }
    }
    panic!("the device's command did not end");
}
