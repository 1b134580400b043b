//! A byte-stream interpreter for fuzzing the SMMU (IHI 0070): arbitrary bytes become register
//! accesses, memory writes (stream table entries, CDs, level-1 descriptors, page-table entries,
//! command queue entries with valid and invalid opcodes), device transactions (with and
//! without SubstreamID, stallable or not, ATS Translation Requests, translated traffic, page
//! requests through [`Smmuv3Port`]) and stall resolution — everything a driver, a buggy
//! driver or a Function controls. Used by the cargo-fuzz target in `fuzz/` and by a seeded
//! random-input test in the ordinary test suite.
//!
//! The SMMU gets a small memory ([`MEMORY`]) laid out as a driver would set it up: a stream
//! table with bypass, abort, invalid, stage 1 (stalling and RAZ/WI CDs too), stage 2
//! (stalling) and nested STEs, a CD table, stage 1 and stage 2 page tables (some leaves
//! pointing beyond memory), and the three queues; unless the stream's first byte says
//! otherwise the registers are programmed and every enable is on. The stream then corrupts
//! what it likes.
//!
//! | op (byte % 16) | what |
//! |---|---|
//! | 0, 1 / 2 | a 32- or 64-bit register write / read: a named register (pointers mostly kept inside memory) or any offset of the two pages |
//! | 3, 4 | a word of an STE, CD, level-1 descriptor, page table, the command queue or anywhere: a bit flipped, a small, raw or pointer value |
//! | 5, 6 | a command at CMDQ_PROD — a valid one of 14 kinds, or raw words with a chosen (valid or unknown) opcode — and PROD moved on by one or far ahead |
//! | 7 | software consuming: EVENTQ_CONS / PRIQ_CONS = PROD, GERRORN = GERROR |
//! | 8–10 | a transaction (StreamID, SubstreamID or none, address, access, stallable or not); its memory access carried out |
//! | 11 | through the port: an ATS Translation Request, translated or untranslated DMA |
//! | 12 | a page request through the port |
//! | 13 | a stalled transaction polled or waited for |
//! | 14, 15 | a burst of up to 32 transactions (event queue overflow, stalls) |
//!
//! After every step (`check`): CR0ACK = CR0 = the enables written and implemented, and
//! likewise IRQ_CTRLACK; GERROR has only defined bits and GERRORN is what software wrote; the
//! queues' PROD/CONS hold only index and wrap bits (and OVFLG / CONS.ERR), an error the SMMU
//! raised has a valid CONS.ERR, an enabled command queue without an error is empty; a
//! register write consumes fewer than twice the queue's entries; traffic writes no more
//! events or page requests than the queues had room for, and at most three events per
//! transaction; stalls outstanding stay within IDR5.STALL_MAX; every translation's output is
//! inside the OAS and its memory access succeeds exactly when it is inside memory. With a VMM
//! behind the unit (setup bit 7, `vmm`), its view of SMMUEN / GBPA.ABORT is the unit's and it
//! heard every CMD_SYNC that completed. No step panics or blocks.

use std::sync::Arc;
use std::time::Duration;

use vsva_mem::{Access, Pasid, PhysMem, PhysMemory, Rid};
use vsva_pcie::{
    AtsInvalidation, AtsInvalidationError, Downstream, MsiLog, PageRequest, ResponseCode, Upstream,
};
use zerocopy::IntoBytes;

use crate::config::{Smmuv3Config, StallModel};
use crate::port::Smmuv3Port;
use crate::spec::cmd::{CMD_BYTES, Command, PriResp, ResumeAction, SyncCs, TlbiRange, op};
use crate::spec::registers::{Cr0, IrqCtrl, QueueBase, offset, queue};
use crate::translate::{Blocked, StallTag, Transaction};
use crate::unit::Smmuv3;

/// Size of the fuzzed SMMU's memory.
pub const MEMORY: u64 = 4 << 20;

mod check;
mod layout;
mod vmm;

use check::{Before, check};
pub use layout::sid;
use layout::*;

/// Registers worth hitting more often than random offsets.
const REGISTERS: [u64; 28] = [
    offset::CR0,
    offset::CR1,
    offset::CR2,
    offset::GBPA,
    offset::IRQ_CTRL,
    offset::GERRORN,
    offset::STRTAB_BASE,
    offset::STRTAB_BASE_CFG,
    offset::CMDQ_BASE,
    offset::CMDQ_PROD,
    offset::CMDQ_CONS,
    offset::EVENTQ_BASE,
    offset::EVENTQ_PROD,
    offset::EVENTQ_CONS,
    offset::PRIQ_BASE,
    offset::PRIQ_PROD,
    offset::PRIQ_CONS,
    offset::GERROR_IRQ_CFG0,
    offset::GERROR_IRQ_CFG1,
    offset::GERROR_IRQ_CFG2,
    offset::EVENTQ_IRQ_CFG0,
    offset::EVENTQ_IRQ_CFG1,
    offset::EVENTQ_IRQ_CFG2,
    offset::PRIQ_IRQ_CFG0,
    offset::PRIQ_IRQ_CFG1,
    offset::PRIQ_IRQ_CFG2,
    offset::STRTAB_BASE + 4,
    offset::CMDQ_BASE + 4,
];

/// Registers holding a memory address: kept inside memory most of the time.
const POINTERS: [u64; 4] = [
    offset::STRTAB_BASE,
    offset::CMDQ_BASE,
    offset::EVENTQ_BASE,
    offset::PRIQ_BASE,
];

/// Opcodes for raw commands: every implemented one and a few that are not.
const OPCODES: [u8; 24] = [
    op::PREFETCH_CONFIG,
    op::PREFETCH_ADDR,
    op::CFGI_STE,
    op::CFGI_STE_RANGE,
    op::CFGI_CD,
    op::CFGI_CD_ALL,
    op::TLBI_NH_ALL,
    op::TLBI_NH_ASID,
    op::TLBI_NH_VA,
    op::TLBI_NH_VAA,
    op::TLBI_EL3_ALL,
    op::TLBI_EL2_ALL,
    op::TLBI_S12_VMALL,
    op::TLBI_S2_IPA,
    op::TLBI_NSNH_ALL,
    op::ATC_INV,
    op::PRI_RESP,
    op::RESUME,
    op::STALL_TERM,
    op::SYNC,
    0x00,
    0x07,
    0x47,
    0xff,
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

/// Functions behind the SMMU: even StreamIDs complete ATS invalidations, odd ones time out.
struct FuzzDevices;

impl Downstream for FuzzDevices {
    fn ats_invalidate(&self, inv: &AtsInvalidation) -> Result<(), AtsInvalidationError> {
        if inv.sid.raw() % 2 == 0 {
            Ok(())
        } else {
            Err(AtsInvalidationError::Timeout)
        }
    }
    fn page_group_response(&self, _: Rid, _: Option<Pasid>, _: ResponseCode, _: u16) {}
}

/// What a run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Operations interpreted.
    pub ops: u64,
    /// Transactions translated (and their memory access carried out).
    pub translated: u64,
    /// Transactions refused (aborted, RAZ/WI, stalled) or Translation Requests refused.
    pub refused: u64,
    /// Transactions stalled.
    pub stalled: u64,
    /// Commands consumed.
    pub commands: u64,
    /// Steps that made GERROR.CMDQ_ERR active.
    pub cmdq_errors: u64,
    /// Event records written.
    pub events: u64,
    /// Steps that toggled EVENTQ_PROD.OVFLG.
    pub event_overflows: u64,
    /// Page requests queued.
    pub page_requests: u64,
}

/// What the stream wrote to the registers the checks compare with.
#[derive(Debug, Default, Clone, Copy)]
struct Written {
    cr0: u32,
    irq_ctrl: u32,
    gerrorn: u32,
}

struct Rig {
    smmu: Arc<Smmuv3>,
    port: Smmuv3Port,
    mem: Arc<PhysMemory>,
    cfg: Smmuv3Config,
    two_level: bool,
    written: Written,
    tags: Vec<StallTag>,
    summary: Summary,
    /// The VMM of a virtual unit (setup bit 7).
    vmm: Option<Arc<vmm::FuzzVmm>>,
}

impl Rig {
    fn new(setup: u8) -> Rig {
        let cfg = Smmuv3Config {
            stall: match setup & 3 {
                2 => StallModel::Terminate,
                3 => StallModel::Force,
                _ => StallModel::Stall,
            },
            pri: setup & 0x10 == 0,
            msi: setup & 0x20 == 0,
            // A maximum below the programmed LOG2SIZE: the registers must clamp.
            cmdq_bits: if setup & 0x40 != 0 { 2 } else { 8 },
            ..Smmuv3Config::default()
        };
        let mem = Arc::new(PhysMemory::new(MEMORY).expect("4 MiB of memory"));
        let dynmem: Arc<dyn PhysMem> = mem.clone();
        let smmu = Arc::new(
            Smmuv3::new(cfg.clone(), dynmem.clone(), Arc::new(MsiLog::default()))
                .with_devices(Arc::new(FuzzDevices)),
        );
        let cfg = smmu.config().clone();
        let vmm = (setup & 0x80 != 0).then(|| {
            let v = Arc::new(vmm::FuzzVmm {
                smmu: Arc::downgrade(&smmu),
                heard: std::sync::Mutex::new(vmm::Heard {
                    view: smmu.guest_global(),
                    ..vmm::Heard::default()
                }),
            });
            let _ = smmu.set_backend(v.clone());
            v
        });
        let two_level = setup & 4 != 0;
        lay_out(&mem, two_level);
        let mut rig = Rig {
            port: Smmuv3Port {
                smmu: smmu.clone(),
                mem: dynmem,
            },
            smmu,
            mem,
            cfg,
            two_level,
            written: Written::default(),
            tags: Vec::new(),
            summary: Summary::default(),
            vmm,
        };
        if setup & 8 == 0 {
            rig.program();
        }
        rig
    }

    /// Programs the registers as a driver does at probe, every enable last.
    fn program(&mut self) {
        let s = self.smmu.clone();
        s.mmio_write(offset::STRTAB_BASE, 8, STRTAB);
        let cfg = if self.two_level {
            1 << 16 | 6 << 6 | 8
        } else {
            6
        };
        s.mmio_write(offset::STRTAB_BASE_CFG, 4, cfg);
        s.mmio_write(offset::CMDQ_BASE, 8, CMDQ | 4);
        s.mmio_write(offset::EVENTQ_BASE, 8, EVTQ | 3);
        s.mmio_write(offset::PRIQ_BASE, 8, PRIQ | 3);
        for (i, cfg0) in [
            offset::GERROR_IRQ_CFG0,
            offset::EVENTQ_IRQ_CFG0,
            offset::PRIQ_IRQ_CFG0,
        ]
        .into_iter()
        .enumerate()
        {
            s.mmio_write(cfg0, 8, MSI + 0x1000 * i as u64);
            s.mmio_write(cfg0 + 8, 4, 0x20 + i as u64);
        }
        self.mmio_write(offset::IRQ_CTRL, 4, IrqCtrl::all().bits() as u64);
        s.mmio_write(offset::CR2, 4, 2);
        self.mmio_write(offset::CR0, 4, Cr0::all().bits() as u64);
    }

    /// A register write, remembering what the checks compare with.
    fn mmio_write(&mut self, off: u64, size: u8, v: u64) {
        if size == 4 {
            match off {
                offset::CR0 => self.written.cr0 = v as u32,
                offset::IRQ_CTRL => self.written.irq_ctrl = v as u32,
                offset::GERRORN => self.written.gerrorn = v as u32,
                _ => {}
            }
        }
        self.smmu.mmio_write(off, size, v);
    }

    fn r32(&self, off: u64) -> u32 {
        self.smmu.mmio_read(off, 4) as u32
    }

    /// Writes `words` at the command queue's PROD and moves PROD `step` entries on (1: the
    /// command is published; more: PROD runs ahead over stale entries).
    fn submit(&mut self, words: [u64; 2], step: u32) {
        let base = QueueBase::from_bits(self.smmu.mmio_read(offset::CMDQ_BASE, 8));
        let log2 = (base.log2size() as u32).min(self.cfg.cmdq_bits as u32);
        let prod = self.r32(offset::CMDQ_PROD);
        let size = CMD_BYTES << log2;
        let start = (base.addr() << 5) & !(size - 1);
        let slot = (prod & ((1 << log2) - 1)) as u64;
        let _ = self.mem.write(start + slot * CMD_BYTES, words.as_bytes());
        let m = (2u32 << log2) - 1;
        self.mmio_write(offset::CMDQ_PROD, 4, (prod.wrapping_add(step) & m) as u64);
    }

    /// Carries out the memory access of a translated transaction: it must reach memory
    /// exactly when the output address is inside it.
    fn access(&self, addr: u64, write: bool) {
        let inside = addr.checked_add(8).is_some_and(|end| end <= MEMORY);
        let mut buf = [0u8; 8];
        let r = if write {
            self.mem.write(addr, &buf)
        } else {
            self.mem.read(addr, &mut buf)
        };
        assert_eq!(r.is_ok(), inside, "a DMA to {addr:#x} and memory's bounds");
    }

    fn transaction(&mut self, txn: &Transaction) {
        match self.smmu.translate(txn) {
            Ok(t) => {
                self.summary.translated += 1;
                // No output beyond the OAS, bypassed or not (§3.4).
                assert!(t.addr < 1 << 48, "output {:#x} beyond the OAS", t.addr);
                self.access(t.addr, txn.access.is_write());
            }
            Err(Blocked::Stalled(tag)) => {
                self.summary.stalled += 1;
                self.summary.refused += 1;
                self.tags.push(tag);
            }
            Err(_) => self.summary.refused += 1,
        }
    }

    fn settle(&mut self, tag: StallTag, r: Option<Result<crate::Translated, Blocked>>) {
        match r {
            None => self.tags.push(tag),
            Some(Ok(t)) => {
                self.summary.translated += 1;
                self.access(t.addr, false);
            }
            Some(Err(Blocked::Stalled(t))) => self.tags.push(t),
            Some(Err(_)) => {}
        }
    }
}

fn access(bits: u8) -> Access {
    let mut a = Access::from_bits_truncate(bits & 0xf);
    if !a.intersects(Access::READ | Access::WRITE) {
        a |= Access::READ;
    }
    a
}

/// A StreamID: mostly one of the starting table's, sometimes anything.
fn stream(b: u8, raw: u32) -> u32 {
    if b & 0x80 == 0 { (b & 7) as u32 } else { raw }
}

/// An input address: mostly in the stage 1 window or the stage 2 range.
fn address(mode: u8, raw: u64) -> u64 {
    match mode & 3 {
        0 => VA + (raw % 16) * 0x1000 + (raw >> 4 & 0xff8),
        1 => raw % (6 << 20),
        2 => raw & 0x00ff_ffff_ffff_ffff,
        _ => raw,
    }
}

/// A valid command built from fuzz bytes.
fn command(kind: u8, sid: u32, x: u64, tags: &[StallTag]) -> Command {
    let ssid = (x & 1 != 0).then_some((x >> 8) as u32 & 0xf_ffff);
    let range = TlbiRange {
        addr: VA + (x % 16) * 0x1000,
        leaf: x & 2 != 0,
        ttl: 0,
        tg: 0,
        num: 0,
        scale: 0,
    };
    match kind % 14 {
        0 => Command::CfgiSte { sid, leaf: false },
        1 => Command::CfgiSteRange {
            sid,
            range: (x % 32) as u8,
        },
        2 => Command::CfgiCd {
            sid,
            ssid: ssid.unwrap_or(0),
            leaf: true,
        },
        3 => Command::CfgiCdAll { sid },
        4 => Command::TlbiNhAsid {
            vmid: 0,
            asid: (x % 5) as u16,
        },
        5 => Command::TlbiNhVa {
            vmid: 0,
            asid: (x % 5) as u16,
            range,
        },
        6 => Command::TlbiS12Vmall { vmid: 1 },
        7 => Command::TlbiNsnhAll,
        8 => Command::AtcInv {
            sid,
            ssid,
            global: false,
            size: (x % 64) as u8,
            addr: 0,
        },
        9 => Command::PriResp {
            sid,
            ssid,
            prgi: (x % 512) as u16,
            resp: PriResp::Success,
        },
        10 | 11 => {
            let tag = tags
                .get((x >> 32) as usize % tags.len().max(1))
                .copied()
                .unwrap_or(StallTag { sid, stag: 0 });
            Command::Resume {
                sid: tag.sid,
                stag: tag.stag,
                action: match x % 3 {
                    0 => ResumeAction::Retry,
                    1 => ResumeAction::Abort,
                    _ => ResumeAction::Terminate,
                },
            }
        }
        12 => Command::StallTerm { sid },
        _ => Command::Sync {
            cs: match x % 3 {
                0 => SyncCs::None,
                1 => SyncCs::Irq,
                _ => SyncCs::Sev,
            },
            msh: 0,
            msiattr: 0,
            msidata: 0,
            msiaddr: if x & 4 != 0 { MSI } else { 0 },
        },
    }
}

/// Interprets `data` against a fresh SMMU: the first byte chooses the configuration (stall
/// model, two-level stream table, registers programmed or left at reset, PRI, MSIs, a small
/// command queue maximum, a VMM behind it), each following op reads its operands from the bytes after it.
///
/// # Panics
/// When an invariant of the SMMU is broken (that is the point: the fuzzer reports it).
pub fn run(data: &[u8]) -> Summary {
    let mut b = Bytes(data);
    let Some(setup) = b.u8() else {
        return Summary::default();
    };
    let mut rig = Rig::new(setup);
    check(&rig, &Before::of(&rig), Op::Register);
    while let Some(op) = b.u8() {
        rig.summary.ops += 1;
        let before = Before::of(&rig);
        let Some(kind) = step(&mut rig, &mut b, op) else {
            break;
        };
        check(&rig, &before, kind);
        rig.summary.commands = rig.smmu.stats().commands;
        let after = Before::of(&rig);
        rig.summary.cmdq_errors += u64::from(!before.cmdq_err && after.cmdq_err);
        rig.summary.event_overflows +=
            u64::from((before.evtq.prod ^ after.evtq.prod) & queue::OVERFLOW != 0);
    }
    let st = rig.smmu.stats();
    rig.summary.events = st.events;
    rig.summary.page_requests = st.page_requests;
    rig.summary
}

/// What kind of step ran, for the checks that depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Register or memory writes: queues may move, be resized or consumed.
    Register,
    /// `n` transactions or requests, no register write.
    Traffic(u64),
}

/// One op; `None` when the bytes ran out.
fn step(rig: &mut Rig, b: &mut Bytes<'_>, op: u8) -> Option<Op> {
    Some(match op % 16 {
        0 | 1 => {
            let sel = b.u16()?;
            let v = b.u64()?;
            let off = if sel & 1 == 0 {
                REGISTERS[(sel >> 1) as usize % REGISTERS.len()]
            } else {
                (sel >> 1) as u64 % offset::WINDOW
            };
            let size = if op & 0x10 != 0 { 8 } else { 4 };
            let v = if POINTERS.contains(&off) && op & 0x20 == 0 {
                ((v % MEMORY) & !0x1f) | ((v & 0x1f) % 8)
            } else {
                v
            };
            rig.mmio_write(off, size, v);
            Op::Register
        }
        2 => {
            let sel = b.u16()?;
            let off = if sel & 1 == 0 {
                REGISTERS[(sel >> 1) as usize % REGISTERS.len()]
            } else {
                (sel >> 1) as u64 % offset::WINDOW
            };
            rig.smmu.mmio_read(off, if op & 0x10 != 0 { 8 } else { 4 });
            Op::Register
        }
        3 | 4 => {
            // A word of a structure: changed by a bit flip, a small value, a raw value or a
            // pointer into memory.
            let (t, i, v) = (b.u8()?, b.u16()?, b.u64()?);
            let i = i as u64;
            let ste_table = if rig.two_level { STRTAB_L2 } else { STRTAB };
            let at = match t % 8 {
                0 => ste_table + (i % 8) * 64 + (i >> 3) % 8 * 8,
                1 => CDTAB + (i % 8) * 64 + (i >> 3) % 8 * 8,
                2 => STRTAB + (i % 8) * 8,
                3 => S1[(i % 4) as usize] + (i >> 2) % 16 * 8,
                4 => S2[(i % 2) as usize] + (i >> 1) % 4 * 8,
                5 => CMDQ + (i % 64) * 8,
                _ => ((v >> 8) % MEMORY) & !7,
            };
            let old = rig.mem.load_u64(at).unwrap_or(0);
            let new = match t >> 6 {
                0 => old ^ 1 << (v % 64),
                1 => v & 0xffff,
                2 => v,
                _ => (v % MEMORY) | (v & 0xfff),
            };
            let _ = rig.mem.store_u64(at, new);
            Op::Register
        }
        5 | 6 => {
            // A command at PROD: a valid one, or raw words with a chosen opcode.
            let (kind, s, x, y) = (b.u8()?, b.u8()?, b.u64()?, b.u8()?);
            let sid = stream(s, (x >> 16) as u32);
            let words = if kind & 0x80 == 0 {
                command(kind, sid, x, &rig.tags).encode()
            } else {
                // The StreamID field only, or every bit (RES0 fields too).
                let opc = OPCODES[(kind & 0x7f) as usize % OPCODES.len()];
                let w0 = if y & 2 != 0 {
                    x & !0xff
                } else {
                    x & !0xffff_ffff
                };
                let w1 = if y & 1 != 0 { x.rotate_left(17) } else { 0 };
                [w0 | opc as u64, w1]
            };
            let step = if y & 0xf0 == 0xf0 { y as u32 * 97 } else { 1 };
            rig.submit(words, step);
            Op::Register
        }
        7 => {
            // Software consumes: the output queues emptied (overflow acknowledged), the
            // global errors acknowledged.
            let what = b.u8()?;
            if what & 1 != 0 {
                let prod = rig.r32(offset::EVENTQ_PROD);
                rig.mmio_write(offset::EVENTQ_CONS, 4, prod as u64);
            }
            if what & 2 != 0 {
                let prod = rig.r32(offset::PRIQ_PROD);
                rig.mmio_write(offset::PRIQ_CONS, 4, prod as u64);
            }
            if what & 4 != 0 {
                let g = rig.r32(offset::GERROR);
                rig.mmio_write(offset::GERRORN, 4, g as u64);
            }
            Op::Register
        }
        8..=10 => {
            let (s, ssid, addr, bits, raw) = (b.u8()?, b.u32()?, b.u64()?, b.u8()?, b.u32()?);
            let txn = Transaction {
                sid: stream(s, raw),
                ssid: (bits & 0x40 != 0).then_some(ssid % 8 + (ssid >> 3 & !0xf_ffff)),
                addr: address(bits >> 4, addr),
                access: access(bits),
                stallable: bits & 0x80 != 0,
            };
            rig.transaction(&txn);
            Op::Traffic(1)
        }
        11 => {
            // Through the port: ATS Translation Requests, translated and untranslated DMA.
            let (s, p, addr, bits) = (b.u8()?, b.u32()?, b.u64()?, b.u8()?);
            let rid = Rid::from_raw(stream(s, p) as u16);
            let pasid = (bits & 0x40 != 0)
                .then(|| Pasid::new(p & 0xf_ffff).ok())
                .flatten();
            let addr = address(bits >> 4, addr);
            let a = access(bits);
            match op >> 4 & 3 {
                0 => match rig.port.ats_translate(rid, pasid, addr, a) {
                    Ok(c) => {
                        rig.summary.translated += 1;
                        // A completion granting access names an address inside the OAS (a
                        // fault's completion grants nothing and echoes the input, §3.9.1).
                        let granted = c.read || c.write || c.exec;
                        assert!(
                            !granted || c.addr < 1 << 48,
                            "completion {c:?} beyond the OAS"
                        );
                        assert!(!c.write || a.is_write(), "write granted unasked");
                    }
                    Err(_) => rig.summary.refused += 1,
                },
                1 => match rig.port.dma(rid, pasid, addr, a) {
                    Ok(pa) => {
                        rig.summary.translated += 1;
                        rig.access(pa, a.is_write());
                    }
                    Err(_) => rig.summary.refused += 1,
                },
                _ => match rig.port.dma_untranslated(rid, pasid, addr, a) {
                    Ok(pa) => {
                        rig.summary.translated += 1;
                        rig.access(pa, a.is_write());
                    }
                    Err(_) => rig.summary.refused += 1,
                },
            }
            Op::Traffic(1)
        }
        12 => {
            let (s, p, addr, bits) = (b.u8()?, b.u32()?, b.u64()?, b.u16()?);
            rig.port.page_request(&PageRequest {
                rid: Rid::from_raw(stream(s, p) as u16),
                pasid: (bits & 1 != 0)
                    .then(|| Pasid::new(p & 0xf_ffff).ok())
                    .flatten(),
                addr: address(0, addr) & !0xfff,
                read: bits & 2 != 0,
                write: bits & 4 != 0,
                exec: bits & 8 != 0,
                privileged: bits & 16 != 0,
                last: bits & 32 != 0,
                prgi: bits >> 7,
            });
            Op::Traffic(1)
        }
        13 => {
            // A stalled transaction: polled, waited for (not at all), or a tag nobody has.
            let x = b.u16()?;
            let tag = if rig.tags.is_empty() || x & 0x8000 != 0 {
                StallTag {
                    sid: (x & 7) as u32,
                    stag: x >> 3,
                }
            } else {
                let i = x as usize % rig.tags.len();
                rig.tags.swap_remove(i)
            };
            let r = if x & 1 == 0 {
                rig.smmu.poll_stalled(tag)
            } else {
                rig.smmu.wait_stalled(tag, Duration::ZERO)
            };
            rig.settle(tag, r);
            Op::Traffic(1)
        }
        _ => {
            // A burst of faulting or stalling transactions: fills the event queue.
            let (n, s, bits) = (b.u8()?, b.u8()?, b.u8()?);
            let n = (n % 32) as u64 + 1;
            for i in 0..n {
                let txn = Transaction {
                    sid: stream(s, 0),
                    ssid: (bits & 0x40 != 0).then_some(i as u32 % 4),
                    addr: VA + 0xb000 + (i << 12) * (bits as u64 & 1),
                    access: access(bits),
                    stallable: bits & 0x80 != 0,
                };
                rig.transaction(&txn);
            }
            Op::Traffic(n)
        }
    })
}
