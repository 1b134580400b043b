//! [`PhysMem`] over a vm-memory [`GuestMemory`]: a VMM's guest RAM as the memory a vsva IOMMU
//! model walks (a virtual IOMMU reads the guest's tables from guest-physical memory) and a
//! vsva guest OS allocates from.
//!
//! Every access goes through [`GuestMemory::get_slices`] with the access mode it is
//! (reads [`Permissions::Read`], writes and atomics that may write [`Permissions::Write`]), so
//! the memory's dirty bitmap sees the writes a model makes (Accessed/Dirty updates, queue
//! records) as it sees a device's.
//!
//! Page-table entries are aligned 64-bit atomics ([`VolatileMemory::get_atomic_ref`]), as on
//! [`vsva_mem::PhysMemory`]: no unsafe code here.

use std::sync::atomic::{AtomicU64, Ordering};

use vm_memory::{
    Bytes, GuestAddress, GuestMemory, GuestMemoryBackend, Permissions, VolatileMemory,
    VolatileSlice,
    bitmap::{Bitmap, BitmapSlice},
};
use vsva_mem::phys::{Result, check_range};
use vsva_mem::{MemError, PhysMem};

/// A vm-memory [`GuestMemory`] seen as vsva physical memory: addresses are the guest's
/// physical addresses, valid in `0..size`; holes between regions read and write as
/// [`MemError::OutOfRange`].
#[derive(Debug)]
pub struct GuestPhysMem<M> {
    mem: M,
    size: u64,
}

impl<M: GuestMemory> GuestPhysMem<M> {
    /// `mem` with physical addresses `0..size`.
    pub fn new(mem: M, size: u64) -> GuestPhysMem<M> {
        GuestPhysMem { mem, size }
    }

    /// The memory it wraps.
    pub fn inner(&self) -> &M {
        &self.mem
    }

    /// The 8-byte slice at `pa`, for an atomic access of mode `access`.
    fn word(&self, pa: u64, access: Permissions) -> Result<VolatileSlice<'_, impl BitmapSlice>> {
        if pa & 7 != 0 {
            return Err(MemError::Misaligned { addr: pa });
        }
        check_range(self.size, pa, 8)?;
        let out = MemError::OutOfRange { addr: pa, len: 8 };
        // An aligned 8-byte range never straddles two regions whose boundaries are aligned,
        // so the first slice is the whole word; a shorter one is refused below.
        let slice = self
            .mem
            .get_slices(GuestAddress(pa), 8, access)
            .map_err(|_| out)?
            .next()
            .ok_or(out)?
            .map_err(|_| out)?;
        if slice.len() != 8 {
            return Err(out);
        }
        Ok(slice)
    }
}

impl<M: GuestMemoryBackend> GuestPhysMem<M> {
    /// A physical memory over the regions of `mem`, sized to its last address (holes below it
    /// are out of range).
    pub fn from_backend(mem: M) -> GuestPhysMem<M> {
        let size = if mem.num_regions() == 0 {
            0
        } else {
            mem.last_addr().0.saturating_add(1)
        };
        GuestPhysMem { mem, size }
    }
}

fn atomic<'a, B: BitmapSlice>(slice: &'a VolatileSlice<'_, B>, pa: u64) -> Result<&'a AtomicU64> {
    slice
        .get_atomic_ref::<AtomicU64>(0)
        .map_err(|_| MemError::Misaligned { addr: pa })
}

impl<M: GuestMemory + Send + Sync> PhysMem for GuestPhysMem<M> {
    fn size(&self) -> u64 {
        self.size
    }

    fn load_u64(&self, pa: u64) -> Result<u64> {
        let w = self.word(pa, Permissions::Read)?;
        Ok(atomic(&w, pa)?.load(Ordering::Acquire))
    }

    fn store_u64(&self, pa: u64, val: u64) -> Result<()> {
        let w = self.word(pa, Permissions::Write)?;
        // The dirty bitmap records the write as `VolatileSlice::store` would.
        w.store(val, 0, Ordering::Release)
            .map_err(|_| MemError::OutOfRange { addr: pa, len: 8 })
    }

    fn compare_exchange_u64(
        &self,
        pa: u64,
        current: u64,
        new: u64,
    ) -> Result<std::result::Result<u64, u64>> {
        let w = self.word(pa, Permissions::ReadWrite)?;
        let r = atomic(&w, pa)?.compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire);
        if r.is_ok() {
            w.bitmap().mark_dirty(0, 8);
        }
        Ok(r)
    }

    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<()> {
        let len = buf.len() as u64;
        check_range(self.size, pa, len)?;
        self.mem
            .read_slice(buf, GuestAddress(pa))
            .map_err(|_| MemError::OutOfRange { addr: pa, len })
    }

    fn write(&self, pa: u64, buf: &[u8]) -> Result<()> {
        let len = buf.len() as u64;
        check_range(self.size, pa, len)?;
        // Check the whole range first: nothing is written when part of it is a hole.
        if !self
            .mem
            .check_range(GuestAddress(pa), buf.len(), Permissions::Write)
        {
            return Err(MemError::OutOfRange { addr: pa, len });
        }
        self.mem
            .write_slice(buf, GuestAddress(pa))
            .map_err(|_| MemError::OutOfRange { addr: pa, len })
    }

    fn zero(&self, pa: u64, len: u64) -> Result<()> {
        check_range(self.size, pa, len)?;
        let n = usize::try_from(len).map_err(|_| MemError::OutOfRange { addr: pa, len })?;
        if !self
            .mem
            .check_range(GuestAddress(pa), n, Permissions::Write)
        {
            return Err(MemError::OutOfRange { addr: pa, len });
        }
        let zeros = [0u8; 4096];
        let mut off = 0;
        while off < len {
            let step = (len - off).min(zeros.len() as u64) as usize;
            self.mem
                .write_slice(&zeros[..step], GuestAddress(pa + off))
                .map_err(|_| MemError::OutOfRange { addr: pa, len })?;
            off += step as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use vm_memory::GuestMemoryMmap;

    use super::*;

    /// Two regions, [0, 64 KiB) and [128 KiB, 192 KiB): a hole between them.
    fn holed() -> GuestPhysMem<GuestMemoryMmap> {
        let m = GuestMemoryMmap::<()>::from_ranges(&[
            (GuestAddress(0), 0x1_0000),
            (GuestAddress(0x2_0000), 0x1_0000),
        ])
        .unwrap();
        GuestPhysMem::from_backend(m)
    }

    #[test]
    fn the_size_is_the_last_regions_end() {
        assert_eq!(holed().size(), 0x3_0000);
    }

    #[test]
    fn words_and_bytes_round_trip_in_every_region() {
        let m = holed();
        m.store_u64(0x8, 0x1122_3344_5566_7788).unwrap();
        assert_eq!(m.load_u64(0x8).unwrap(), 0x1122_3344_5566_7788);
        let mut b = [0u8; 2];
        m.read(0x8, &mut b).unwrap();
        assert_eq!(b, [0x88, 0x77], "little-endian in guest memory");
        m.write(0x2_fff0, &[1, 2, 3]).unwrap();
        let mut c = [0u8; 3];
        m.read(0x2_fff0, &mut c).unwrap();
        assert_eq!(c, [1, 2, 3]);
        assert_eq!(
            m.compare_exchange_u64(0x8, 1, 2).unwrap(),
            Err(0x1122_3344_5566_7788)
        );
        assert_eq!(
            m.compare_exchange_u64(0x8, 0x1122_3344_5566_7788, 2)
                .unwrap(),
            Ok(0x1122_3344_5566_7788)
        );
        assert_eq!(m.load_u64(0x8).unwrap(), 2);
        m.zero(0x0, 0x1_0000).unwrap();
        assert_eq!(m.load_u64(0x8).unwrap(), 0);
    }

    #[test]
    fn misaligned_words_are_refused() {
        let m = holed();
        assert_eq!(m.load_u64(0x4), Err(MemError::Misaligned { addr: 0x4 }));
        assert_eq!(m.store_u64(0x1, 0), Err(MemError::Misaligned { addr: 0x1 }));
        assert_eq!(
            m.compare_exchange_u64(0xc, 0, 0),
            Err(MemError::Misaligned { addr: 0xc })
        );
    }

    #[test]
    fn the_hole_and_beyond_the_end_are_out_of_range_and_nothing_is_written() {
        let m = holed();
        let hole = MemError::OutOfRange {
            addr: 0x1_8000,
            len: 8,
        };
        assert_eq!(m.load_u64(0x1_8000), Err(hole));
        assert_eq!(m.store_u64(0x1_8000, 1), Err(hole));
        assert_eq!(
            m.load_u64(0x3_0000),
            Err(MemError::OutOfRange {
                addr: 0x3_0000,
                len: 8
            })
        );
        // A write that runs from the first region into the hole writes nothing.
        let straddle = m.write(0xfffc, &[9; 8]);
        assert_eq!(
            straddle,
            Err(MemError::OutOfRange {
                addr: 0xfffc,
                len: 8
            })
        );
        let mut b = [0u8; 4];
        m.read(0xfffc, &mut b).unwrap();
        assert_eq!(b, [0; 4]);
        assert!(m.zero(0xf000, 0x2000).is_err());
        assert_eq!(
            m.read(0x2_fffc, &mut [0u8; 8]),
            Err(MemError::OutOfRange {
                addr: 0x2_fffc,
                len: 8
            })
        );
    }

    #[test]
    fn writes_and_atomics_mark_the_dirty_bitmap() {
        use vm_memory::bitmap::{AtomicBitmap, Bitmap};
        let m =
            vm_memory::GuestMemoryMmap::<AtomicBitmap>::from_ranges(&[(GuestAddress(0), 0x4000)])
                .unwrap();
        let p = GuestPhysMem::from_backend(m);
        let dirty = |pa: u64| {
            p.inner()
                .find_region(GuestAddress(pa))
                .unwrap()
                .bitmap()
                .dirty_at(pa as usize)
        };
        assert!(!dirty(0x1000) && !dirty(0x2000) && !dirty(0x3000));
        p.write(0x1000, &[1]).unwrap();
        p.store_u64(0x2000, 1).unwrap();
        assert_eq!(p.compare_exchange_u64(0x3000, 0, 0x60).unwrap(), Ok(0));
        assert!(dirty(0x1000) && dirty(0x2000) && dirty(0x3000));
    }
}
