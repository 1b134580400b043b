//! A byte-stream interpreter for fuzzing an endpoint's configuration space ([`ConfigSpace`]):
//! arbitrary bytes become the device's options, configuration reads and writes of any size at
//! any offset (mostly inside the PASID, ATS and Page Request capabilities), and the device-side
//! status updates. Used by the cargo-fuzz target `pcie_config` in `fuzz/` and by a seeded test.
//!
//! The checks are differential: a byte-lane model of the same registers, written from the
//! register tables of PCIe Base 6.0 (§7.8.8 PASID, §10.5.1 ATS, §10.5.2 Page Request) as
//! per-byte RO/RW/RW1C masks, predicts every read. After every step [`run`] checks that
//! * every dword of the header and the three capabilities reads what the model says (RO bits
//!   keep their value, RW bits hold what was written, RW1C bits clear only on a 1, Reset
//!   reads 0, Stopped follows §10.5.2.3),
//! * the extended capability list still walks `0x100 -> 0x108 -> 0x110 -> end`,
//! * the typed accessors (`pasid_enabled`, `ats_stu`, `pri_allocation`, ...) agree with the
//!   register image, with the latches of [`crate::config`]'s undefined-behaviour choices,
//! * an access of a size other than 1, 2 or 4 reads 0, and bytes at or past 4 KiB read 0.

use crate::config::{
    ATS_CAP_OFFSET, CONFIG_SPACE_SIZE, ConfigError, ConfigOptions, ConfigSpace, EXT_CAP_ID_ATS,
    EXT_CAP_ID_PASID, EXT_CAP_ID_PRI, PASID_CAP_OFFSET, PRI_CAP_OFFSET,
};

/// End of the implemented registers (the Page Request capability is the last).
const IMPLEMENTED_END: usize = 0x120;

/// What a run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Operations interpreted.
    pub ops: u64,
    /// Writes that changed a register.
    pub changed: u64,
    /// PRI epochs seen (resets and enables).
    pub pri_epochs: u64,
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
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
}

/// The byte-lane model: the image of `0..0x120` and which bits of each byte are RW and RW1C
/// (everything else RO or RsvdP: writes ignored).
struct Model {
    img: [u8; IMPLEMENTED_END],
    rw: [u8; IMPLEMENTED_END],
    rw1c: [u8; IMPLEMENTED_END],
    capacity: u32,
    stu_latched: u8,
    alloc_latched: u32,
    epoch: u64,
}

const PASID: usize = PASID_CAP_OFFSET as usize;
const ATS: usize = ATS_CAP_OFFSET as usize;
const PRI: usize = PRI_CAP_OFFSET as usize;

impl Model {
    fn new(o: &ConfigOptions) -> Model {
        let mut m = Model {
            img: [0; IMPLEMENTED_END],
            rw: [0; IMPLEMENTED_END],
            rw1c: [0; IMPLEMENTED_END],
            capacity: o.pri_capacity,
            stu_latched: 0,
            alloc_latched: 0,
            epoch: 0,
        };
        m.put32(0, u32::from(o.vendor) | u32::from(o.device) << 16);
        // Extended Capability Headers (§7.6.3): ID, version 1, next.
        m.put32(PASID, 0x001B | 1 << 16 | (ATS as u32) << 20);
        m.put32(ATS, 0x000F | 1 << 16 | (PRI as u32) << 20);
        m.put32(PRI, 0x0013 | 1 << 16);
        // PASID Capability (§7.8.8.2): bit 1 Exec, bit 2 Priv, bits 12:8 width.
        let cap = u16::from(o.exec_supported) << 1
            | u16::from(o.priv_supported) << 2
            | u16::from(o.pasid_width) << 8;
        m.put16(PASID + 4, cap);
        // PASID Control (§7.8.8.3): Enable RW, Exec/Priv RW only when supported.
        m.rw[PASID + 6] = 1 | u8::from(o.exec_supported) << 1 | u8::from(o.priv_supported) << 2;
        // ATS Capability (§10.5.1.2): depth (32 as 0), Page Aligned bit 5, Global bit 6.
        let ats = u16::from(o.ats_invalidate_queue_depth & 0x1f)
            | u16::from(o.ats_page_aligned) << 5
            | u16::from(o.ats_global_invalidate) << 6;
        m.put16(ATS + 4, ats);
        // ATS Control (§10.5.1.3): STU 4:0 and Enable 15.
        m.rw[ATS + 6] = 0x1f;
        m.rw[ATS + 7] = 0x80;
        // Page Request Control (§10.5.2.2): Enable RW (Reset handled apart, reads 0).
        m.rw[PRI + 4] = 1;
        // Page Request Status (§10.5.2.3): RF and UPRGI RW1C, Stopped (bit 8) set at reset,
        // PRG Response PASID Required bit 15.
        m.rw1c[PRI + 6] = 0x3;
        m.img[PRI + 7] = 1 | u8::from(o.pri_prg_response_pasid_required) << 7;
        m.put32(PRI + 8, o.pri_capacity);
        for i in 0..4 {
            m.rw[PRI + 12 + i] = 0xff;
        }
        m
    }

    fn put16(&mut self, at: usize, v: u16) {
        self.img[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn put32(&mut self, at: usize, v: u32) {
        self.img[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn get16(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.img[at], self.img[at + 1]])
    }

    fn get32(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.img[at..at + 4].try_into().unwrap_or([0; 4]))
    }

    fn byte(&self, off: u64) -> u8 {
        usize::try_from(off)
            .ok()
            .and_then(|o| self.img.get(o))
            .copied()
            .unwrap_or(0)
    }

    fn read(&self, offset: u32, size: u32) -> u32 {
        if !matches!(size, 1 | 2 | 4) {
            return 0;
        }
        (0..size).fold(0, |v, i| {
            v | u32::from(self.byte(u64::from(offset) + u64::from(i))) << (8 * i)
        })
    }

    /// A write: the bytes at or past 4 KiB are dropped, each byte lane takes its RW bits and
    /// clears its RW1C bits written 1, then the side effects of each dword written.
    fn write(&mut self, offset: u32, size: u32, value: u32) {
        if !matches!(size, 1 | 2 | 4) {
            return;
        }
        let mut written = [false; IMPLEMENTED_END];
        let ats_enable_before = self.img[ATS + 7] & 0x80 != 0;
        let pri_enable_before = self.img[PRI + 4] & 1 != 0;
        let mut reset_written = false;
        for i in 0..size {
            let off = u64::from(offset) + u64::from(i);
            if off >= u64::from(CONFIG_SPACE_SIZE) {
                break;
            }
            let Some(o) = usize::try_from(off).ok().filter(|&o| o < IMPLEMENTED_END) else {
                continue;
            };
            let d = (value >> (8 * i)) as u8;
            written[o] = true;
            if o == PRI + 4 && d & 2 != 0 {
                reset_written = true;
            }
            self.img[o] = (self.img[o] & !self.rw[o]) | (d & self.rw[o]);
            self.img[o] &= !(d & self.rw1c[o]);
        }
        let ats_enable = self.img[ATS + 7] & 0x80 != 0;
        if ats_enable && !ats_enable_before {
            self.stu_latched = self.img[ATS + 6] & 0x1f;
        }
        if written[PRI + 4] || written[PRI + 5] {
            let enable = self.img[PRI + 4] & 1 != 0;
            if reset_written && !enable {
                // §10.5.2.2 Reset with Enable Clear: pending state dropped, so Stopped.
                self.epoch += 1;
                self.img[PRI + 7] |= 1;
            }
            if enable && !pri_enable_before {
                // §10.5.2.3: Enable 0 -> 1 clears Stopped, RF and UPRGI.
                self.img[PRI + 7] &= !1;
                self.img[PRI + 6] &= !3;
                self.alloc_latched = self.get32(PRI + 12).min(self.capacity);
                self.epoch += 1;
            }
        }
    }
}

/// Options from the first bytes: mostly valid, sometimes out of range (then construction
/// must fail with the matching [`ConfigError`]).
fn options(b: &mut Bytes<'_>) -> Option<ConfigOptions> {
    let (ids, bits, width, depth, cap) = (b.u32()?, b.u8()?, b.u8()?, b.u8()?, b.u16()?);
    let mut o = ConfigOptions::new(ids as u16, (ids >> 16) as u16);
    o.exec_supported = bits & 1 != 0;
    o.priv_supported = bits & 2 != 0;
    o.ats_page_aligned = bits & 4 != 0;
    o.ats_global_invalidate = bits & 8 != 0;
    o.pri_prg_response_pasid_required = bits & 16 != 0;
    // Out-of-range options one time in four.
    let raw = bits & 0x80 != 0 && depth & 0x80 != 0;
    o.pasid_width = if raw { width } else { width % 20 + 1 };
    o.ats_invalidate_queue_depth = if raw { depth } else { depth % 32 + 1 };
    o.pri_capacity = if raw {
        u32::from(cap)
    } else {
        u32::from(cap).max(1) << (((bits >> 5) & 3) * 8)
    };
    Some(o)
}

fn expected_error(o: &ConfigOptions) -> Option<ConfigError> {
    if !(1..=20).contains(&o.pasid_width) {
        Some(ConfigError::PasidWidth(o.pasid_width))
    } else if !(1..=32).contains(&o.ats_invalidate_queue_depth) {
        Some(ConfigError::QueueDepth(o.ats_invalidate_queue_depth))
    } else if o.pri_capacity == 0 {
        Some(ConfigError::PriCapacity)
    } else {
        None
    }
}

/// Offsets worth hitting: each implemented register's bytes, and a few beyond.
fn offset(sel: u16, wide: u32) -> u32 {
    match sel & 3 {
        0 | 1 => 0x100 + u32::from(sel >> 2) % 0x20,
        2 => u32::from(sel >> 2) % CONFIG_SPACE_SIZE,
        _ => wide,
    }
}

fn size(bits: u8) -> u32 {
    match bits & 7 {
        0..=1 => 4,
        2..=3 => 2,
        4..=5 => 1,
        6 => 3,
        _ => u32::from(bits >> 3) * 2,
    }
}

/// Interprets `data` against a fresh configuration space.
///
/// # Panics
/// When the configuration space departs from the model or breaks an invariant (the fuzzer
/// reports it).
pub fn run(data: &[u8]) -> Summary {
    let mut b = Bytes(data);
    let mut s = Summary::default();
    let Some(opts) = options(&mut b) else {
        return s;
    };
    let cfg = ConfigSpace::new(opts);
    if let Some(e) = expected_error(&opts) {
        assert_eq!(cfg.as_ref().err(), Some(&e), "options {opts:?}");
        return s;
    }
    let Ok(mut cfg) = cfg else {
        panic!("valid options refused: {opts:?}");
    };
    let mut model = Model::new(&opts);
    check(&cfg, &model);
    while let Some(op) = b.u8() {
        s.ops += 1;
        match op % 4 {
            0 | 1 => {
                let (Some(sel), Some(wide), Some(v)) = (b.u16(), b.u32(), b.u32()) else {
                    break;
                };
                let (off, sz) = (offset(sel, wide), size(op >> 2));
                let before = cfg.read(off, sz);
                cfg.write(off, sz, v);
                model.write(off, sz, v);
                s.changed += u64::from(cfg.read(off, sz) != before);
            }
            2 => {
                let (Some(sel), Some(wide)) = (b.u16(), b.u32()) else {
                    break;
                };
                let (off, sz) = (offset(sel, wide), size(op >> 2));
                assert_eq!(
                    cfg.read(off, sz),
                    model.read(off, sz),
                    "read of {sz} bytes at {off:#x}"
                );
            }
            _ => match op >> 2 & 3 {
                // The device side of the Page Request Status register.
                0 => {
                    cfg.pri_set_response_failure();
                    model.img[PRI + 6] |= 1;
                }
                1 => {
                    cfg.pri_set_uprgi();
                    model.img[PRI + 6] |= 2;
                }
                n => {
                    cfg.pri_set_stopped(n == 3);
                    model.img[PRI + 7] = (model.img[PRI + 7] & !1) | u8::from(n == 3);
                }
            },
        }
        check(&cfg, &model);
    }
    s.pri_epochs = model.epoch;
    s
}

/// The configuration space agrees with the model, its list is intact, its accessors agree
/// with its registers.
fn check(cfg: &ConfigSpace, m: &Model) {
    for dw in (0..IMPLEMENTED_END as u32).step_by(4) {
        assert_eq!(cfg.read(dw, 4), m.get32(dw as usize), "dword {dw:#x}");
    }
    for at in [0x120, 0x1fc, 0xffc, 0xfff, CONFIG_SPACE_SIZE, u32::MAX] {
        assert_eq!(cfg.read(at, 4), 0, "unimplemented {at:#x} reads 0");
    }
    for sz in [0, 3, 5, 8, u32::MAX] {
        assert_eq!(
            cfg.read(PASID_CAP_OFFSET.into(), sz),
            0,
            "size {sz} reads 0"
        );
    }
    // The capability list, as software walks it (§7.6.3).
    assert_eq!(
        cfg.find_ext_capability(EXT_CAP_ID_PASID),
        Some(PASID_CAP_OFFSET)
    );
    assert_eq!(
        cfg.find_ext_capability(EXT_CAP_ID_ATS),
        Some(ATS_CAP_OFFSET)
    );
    assert_eq!(
        cfg.find_ext_capability(EXT_CAP_ID_PRI),
        Some(PRI_CAP_OFFSET)
    );
    // Accessors against the registers.
    let pasid_ctrl = m.get16(PASID + 6);
    assert_eq!(cfg.pasid_enabled(), pasid_ctrl & 1 != 0);
    assert_eq!(cfg.pasid_exec_enabled(), pasid_ctrl & 3 == 3);
    assert_eq!(cfg.pasid_priv_enabled(), pasid_ctrl & 5 == 5);
    assert_eq!(cfg.pasid_width(), m.img[PASID + 5] & 0x1f);
    let ats_ctrl = m.get16(ATS + 6);
    let ats_on = ats_ctrl & 0x8000 != 0;
    assert_eq!(cfg.ats_enabled(), ats_on);
    let stu = if ats_on {
        m.stu_latched
    } else {
        (ats_ctrl & 0x1f) as u8
    };
    assert_eq!(cfg.ats_stu(), 4096 << stu);
    let depth = u32::from(m.img[ATS + 4] & 0x1f);
    assert_eq!(
        cfg.ats_invalidate_queue_depth(),
        if depth == 0 { 32 } else { depth }
    );
    assert_eq!(cfg.pri_enabled(), m.img[PRI + 4] & 1 != 0);
    assert_eq!(cfg.pri_response_failure(), m.img[PRI + 6] & 1 != 0);
    assert_eq!(cfg.pri_uprgi(), m.img[PRI + 6] & 2 != 0);
    assert_eq!(cfg.pri_stopped(), m.img[PRI + 7] & 1 != 0);
    assert_eq!(cfg.pri_capacity(), m.capacity);
    assert_eq!(cfg.pri_allocation(), m.alloc_latched);
    assert!(cfg.pri_allocation() <= cfg.pri_capacity());
    assert_eq!(cfg.pri_epoch(), m.epoch);
}
