//! Primary fault logging (VT-d 4.1 §7.2.1): fault recording registers, FSTS.PPF/PFO/FRI, and
//! the fault event interrupt.

use crate::interrupt::EventRegs;
use crate::spec::fault::FaultRecord;
use crate::spec::registers::Fsts;
use vsva_pcie::MsiSink;

const F: u64 = 1 << 63;

/// The fault recording registers and the fault status/event registers.
#[derive(Debug)]
pub struct FaultLog {
    /// FSTS bits other than PPF and FRI (which are computed).
    pub status: Fsts,
    /// Fault recording registers, (low qword, high qword).
    pub records: Vec<(u64, u64)>,
    /// The next record hardware writes (round robin).
    next: usize,
    /// FRI: the record software should look at first.
    fri: usize,
    /// Fault event control/data/address.
    pub event: EventRegs,
}

impl FaultLog {
    /// A log with `n` recording registers.
    pub fn new(n: usize) -> FaultLog {
        FaultLog {
            status: Fsts::empty(),
            records: vec![(0, 0); n.max(1)],
            next: 0,
            fri: 0,
            event: EventRegs::default(),
        }
    }

    /// PPF: some record has F set.
    pub fn pending(&self) -> bool {
        self.records.iter().any(|r| r.1 & F != 0)
    }

    /// The FSTS register's value.
    pub fn fsts(&self) -> u32 {
        let mut v = self.status.bits();
        if self.pending() {
            v |= Fsts::PPF.bits() | (self.fri as u32) << Fsts::FRI_SHIFT;
        }
        v
    }

    /// Conditions whose presence means a new one raises no new interrupt (§7.2.1: an event is
    /// generated only when no fault status was already pending).
    pub(crate) fn quiet(&self) -> bool {
        self.pending()
            || self
                .status
                .intersects(Fsts::PFO | Fsts::IQE | Fsts::ITE | Fsts::ICE)
    }

    /// Records a fault. Returns whether a record was written (false on overflow, or when a
    /// pending record from the same requester already exists and the fault is collapsed).
    pub fn record(&mut self, rec: &FaultRecord, sink: &dyn MsiSink) -> bool {
        if self.status.contains(Fsts::PFO) {
            return false;
        }
        let sid = rec.sid as u64;
        if self
            .records
            .iter()
            .any(|r| r.1 & F != 0 && r.1 & 0xffff == sid)
        {
            return false;
        }
        let quiet = self.quiet();
        let i = self.next;
        if self.records[i].1 & F != 0 {
            self.status |= Fsts::PFO;
            if !quiet {
                self.event.fire(sink);
            }
            return false;
        }
        self.records[i] = rec.encode();
        self.next = (i + 1) % self.records.len();
        if !quiet {
            self.fri = i;
            self.event.fire(sink);
        }
        true
    }

    /// Software writes FSTS: write-1-to-clear bits; IP clears when nothing is pending.
    pub fn write_fsts(&mut self, value: u32) {
        self.status
            .remove(Fsts::from_bits_truncate(value) & Fsts::W1C);
        if !self.quiet() {
            self.event.pending = false;
        }
    }

    /// Software writes the high qword of record `i` (bits in `mask` written): F is
    /// write-1-to-clear, the rest is read-only.
    pub fn write_record_hi(&mut self, i: usize, value: u64, mask: u64) {
        if let Some(r) = self.records.get_mut(i) {
            if mask & value & F != 0 {
                r.1 &= !F;
            }
        }
        if let Some(first) = (0..self.records.len())
            .map(|k| (self.fri + k) % self.records.len())
            .find(|&k| self.records[k].1 & F != 0)
        {
            self.fri = first;
        }
        if !self.quiet() {
            self.event.pending = false;
        }
    }
}
