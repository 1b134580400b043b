//! The driver's side of the invalidation queue (Linux `qi_submit_sync`): write descriptors
//! at the tail followed by a wait with a status write, move IQT, and check the status.

use vsva_mem::{FrameAllocator, PageSize, PhysMem};

use crate::driver::{DriverError, Result};
use vsva_pcie::Mmio;
use vsva_vtd::spec::descriptors::encode;
use vsva_vtd::spec::registers::{Fsts, offset};

/// Status value a completed wait writes (Linux `QI_DONE`).
const DONE: u32 = 2;

/// One page of 256-bit descriptors.
pub(crate) struct InvalidationQueue {
    base: u64,
    status: u64,
    tail: u64,
}

impl InvalidationQueue {
    const SIZE: u64 = 4096;

    pub(crate) fn new(frames: &FrameAllocator) -> Result<Self> {
        Ok(InvalidationQueue {
            base: frames.alloc_zeroed(PageSize::Size4K)?,
            status: frames.alloc_zeroed(PageSize::Size4K)?,
            tail: 0,
        })
    }

    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    /// Submits `descs` and a wait; returns once the wait's status write arrived.
    pub(crate) fn submit(
        &mut self,
        mmio: &dyn Mmio,
        mem: &dyn PhysMem,
        descs: &[[u64; 4]],
    ) -> Result<()> {
        // Keep at least one slot free: a batch never laps the head.
        for chunk in descs.chunks((Self::SIZE / 32 - 2) as usize) {
            mem.store_u64(self.status, 0)?;
            let wait = encode::wait(DONE, self.status, false, false);
            for d in chunk.iter().chain(std::iter::once(&wait)) {
                for (i, w) in d.iter().enumerate() {
                    mem.store_u64(self.base + self.tail + 8 * i as u64, *w)?;
                }
                self.tail = (self.tail + 32) % Self::SIZE;
            }
            mmio.write(offset::IQT, 8, self.tail);
            if mem.load_u64(self.status)? as u32 != DONE {
                let fsts = mmio.read(offset::FSTS, 4) as u32;
                let iqercd = mmio.read(offset::IQERCD, 8);
                // Recover as Linux does: skip what the unit stopped at by resetting the queue
                // to where the unit's head is, clear the error, and report it.
                let head = mmio.read(offset::IQH, 8);
                self.tail = head;
                mmio.write(offset::IQT, 8, head);
                mmio.write(
                    offset::FSTS,
                    4,
                    (Fsts::IQE | Fsts::ITE | Fsts::ICE).bits() as u64,
                );
                return Err(DriverError::Invalidation { fsts, iqercd });
            }
        }
        Ok(())
    }
}
