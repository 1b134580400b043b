//! Circular queues in memory (IHI 0070 §3.5): a base register (address and log2 of the
//! number of entries) and PROD/CONS index registers whose bit above the index is the wrap
//! bit. The queue is empty when the two are equal, full when the indexes are equal and the
//! wrap bits differ.

use crate::spec::registers::{QueueBase, queue};

/// The registers of one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Queue {
    /// *_BASE as written.
    pub base: u64,
    /// *_PROD (with OVFLG for the output queues).
    pub prod: u32,
    /// *_CONS (with ERR or OVACKFLG).
    pub cons: u32,
}

impl Queue {
    /// log2 of the number of entries: LOG2SIZE, capped at the IDR1 maximum (§6.3.26).
    pub fn log2(&self, max: u8) -> u32 {
        QueueBase::from_bits(self.base).log2size().min(max) as u32
    }

    /// The index-and-wrap mask.
    pub fn wrap_mask(&self, max: u8) -> u32 {
        (2u32 << self.log2(max)) - 1
    }

    /// The address of entry `p` (entries of `bytes`). The base is aligned down to the queue
    /// size, as the spec lets an implementation treat the low address bits (§6.3.26).
    pub fn entry_addr(&self, max: u8, bytes: u64, p: u32) -> u64 {
        let log2 = self.log2(max);
        let size = bytes << log2;
        let base = (QueueBase::from_bits(self.base).addr() << 5) & !(size - 1);
        base + ((p & ((1 << log2) - 1)) as u64) * bytes
    }

    pub fn empty(&self, max: u8) -> bool {
        let m = self.wrap_mask(max);
        self.prod & m == self.cons & m
    }

    pub fn full(&self, max: u8) -> bool {
        let log2 = self.log2(max);
        let m = self.wrap_mask(max);
        (self.prod ^ self.cons) & m == 1 << log2
    }

    /// `p` advanced by one, keeping the bits above the wrap bit.
    pub fn next(&self, max: u8, p: u32) -> u32 {
        let m = self.wrap_mask(max);
        (p & !m) | (p.wrapping_add(1) & m)
    }
}

/// The index bits a register write keeps.
pub(crate) const fn index_bits(v: u32) -> u32 {
    v & queue::WR_MASK
}
