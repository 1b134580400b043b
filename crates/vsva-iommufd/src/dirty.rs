//! `IOMMU_HWPT_GET_DIRTY_BITMAP`: the dirty pages of a paging HWPT as a user bitmap (Linux
//! `iommufd_hwpt_get_dirty_bitmap()` of `hw_pagetable.c`, `iommufd_check_iova_range()` and
//! `iopt_read_and_clear_dirty_data()` of `io_pagetable.c`, the bitmap walk of
//! `drivers/iommu/iova_bitmap.c`).
//!
//! Bit `n` of the bitmap at `data` (bit `n % 8` of byte `n / 8`: the little-endian `u64`
//! words of the uAPI) stands for `[iova + n * page_size, iova + (n + 1) * page_size)`. Bits are
//! only ever set, never cleared: the caller zeroes the bitmap first. A dirty IOPTE sets the
//! bit of every unit it overlaps inside the range — a dirty 2 MiB page sets 512 bits of a
//! 4 KiB-unit bitmap.
//!
//! Like Linux, the bitmap is handled a piece at a time (here 4 KiB of bitmap, 32768 bits):
//! each piece of user memory is read (`EFAULT` if it cannot be — Linux pins it) before the
//! dirty bits of its IOVAs are read and cleared, and written back after; a dirty IOPTE that
//! runs past a piece sets its remaining bits in the next ones, as `iova_bitmap_set()` does
//! with `set_ahead_length`. The range must be mapped without holes; at the first hole the
//! command fails with `EINVAL`, the pieces before it already done.

use vsva_iommu::PagingDomain;

use crate::abi::{Errno, GetDirtyBitmapFlags, IommuHwptGetDirtyBitmap, check_zero, known_flags};
use crate::ctx::Iommufd;
use crate::user_memory::UserMemory;

/// Bitmap bytes handled at a time.
const PIECE_BYTES: u64 = 4096;
/// Bits handled at a time.
const PIECE_BITS: u64 = PIECE_BYTES * 8;

/// `iommufd_check_iova_range()`: returns the last IOVA of the range.
///
/// # Errors
/// `EOVERFLOW` if `iova + length - 1` overflows (a `length` of 0 does, unless `iova` is 0);
/// `EINVAL` if `iova` or the end of the range is not a multiple of the IOAS's `alignment`, if
/// `page_size` is 0, or if `iova` or the end is not a multiple of it (tested, as Linux does,
/// with the mask `page_size - 1`).
pub fn check_iova_range(
    alignment: u64,
    iova: u64,
    length: u64,
    page_size: u64,
) -> Result<u64, Errno> {
    let last = iova
        .checked_add(length.wrapping_sub(1))
        .ok_or(Errno::EOVERFLOW)?;
    let end = last.wrapping_add(1);
    let align_mask = alignment.wrapping_sub(1);
    if iova & align_mask != 0 || end & align_mask != 0 {
        return Err(Errno::EINVAL);
    }
    if page_size == 0 {
        return Err(Errno::EINVAL);
    }
    let page_mask = page_size - 1;
    if iova & page_mask != 0 || end & page_mask != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(last)
}

/// Sets bits `[from, to]` (absolute bit numbers) in `bytes`, which hold the bitmap from byte
/// `first_byte` on.
fn set_bits(bytes: &mut [u8], first_byte: u64, from: u64, to: u64) {
    for bit in from..=to {
        if let Some(byte) = bytes.get_mut((bit / 8 - first_byte) as usize) {
            *byte |= 1 << (bit % 8);
        }
    }
}

/// The user bitmap of one command.
struct Bitmap<'a> {
    mem: &'a dyn UserMemory,
    /// User address of bit 0.
    data: u64,
    /// IOVA of bit 0.
    iova: u64,
    /// Last IOVA of the range.
    last: u64,
    /// log2 of the bytes per bit (`__ffs(page_size)`).
    shift: u32,
    /// Bit runs of dirty IOPTEs that reach past the piece that found them.
    ahead: Vec<(u64, u64)>,
}

impl Bitmap<'_> {
    fn bit(&self, iova: u64) -> u64 {
        (iova - self.iova) >> self.shift
    }

    /// Reads (and with `clear`, clears) the dirty bits of `[first, last]` — inside one mapping
    /// — into the bitmap, a piece at a time.
    fn record(
        &mut self,
        domain: &PagingDomain,
        first: u64,
        last: u64,
        clear: bool,
    ) -> Result<(), Errno> {
        let last_bit = self.bit(last);
        let mut start = first;
        loop {
            let start_bit = self.bit(start);
            let end_bit = (start_bit | (PIECE_BITS - 1)).min(last_bit);
            let end = if end_bit == last_bit {
                last
            } else {
                self.iova + ((end_bit + 1) << self.shift) - 1
            };
            let first_byte = start_bit / 8;
            let addr = self.data.checked_add(first_byte).ok_or(Errno::EFAULT)?;
            let mut bytes = vec![0u8; (end_bit / 8 - first_byte + 1) as usize];
            self.mem.read(addr, &mut bytes)?;

            let mut ahead = std::mem::take(&mut self.ahead);
            for &(from, to) in &ahead {
                if from <= end_bit && to >= start_bit {
                    set_bits(&mut bytes, first_byte, from.max(start_bit), to.min(end_bit));
                }
            }
            ahead.retain(|&(_, to)| to > end_bit);
            for run in &mut ahead {
                run.0 = run.0.max(end_bit + 1);
            }

            let mut dirty = Vec::new();
            domain
                .read_and_clear_dirty(start, end - start + 1, clear, &mut |va, size| {
                    dirty.push((va, size.bytes()));
                })
                .map_err(Errno::from)?;
            for (va, size) in dirty {
                let from = va.max(start);
                let to = va.saturating_add(size - 1).min(self.last);
                if from > to {
                    continue;
                }
                let (from_bit, to_bit) = (self.bit(from), self.bit(to));
                set_bits(&mut bytes, first_byte, from_bit, to_bit.min(end_bit));
                if to_bit > end_bit {
                    ahead.push((end_bit + 1, to_bit));
                }
            }
            self.ahead = ahead;
            self.mem.write(addr, &bytes)?;
            if end == last {
                return Ok(());
            }
            start = end + 1;
        }
    }
}

impl Iommufd {
    /// `IOMMU_HWPT_GET_DIRTY_BITMAP` (`iommufd_hwpt_get_dirty_bitmap()`): sets the bits of the
    /// units of `[cmd.iova, cmd.iova + cmd.length)` that devices wrote since the last read
    /// in the bitmap at `cmd.data` (see the module documentation), and clears the dirty
    /// state it read unless `cmd.flags` has `NO_CLEAR`.
    ///
    /// # Errors
    /// In order: `EOPNOTSUPP` for unknown flags or a non-zero `__reserved`; `ENOENT` if
    /// `hwpt_id` is not a paging HWPT; `check_iova_range`'s errors against the HWPT's IOAS;
    /// `EOPNOTSUPP` if the HWPT was not allocated with `IOMMU_HWPT_ALLOC_DIRTY_TRACKING`;
    /// `ENOMEM` when [`vsva_mem::fail_nth`] fails the bitmap's allocation; then `EFAULT` for bitmap memory that cannot be read or written, `EINVAL` at the first
    /// hole in the IOAS's mappings.
    pub fn hwpt_get_dirty_bitmap(
        &self,
        cmd: &IommuHwptGetDirtyBitmap,
        mem: &dyn UserMemory,
    ) -> Result<(), Errno> {
        let flags = known_flags::<GetDirtyBitmapFlags>(cmd.flags)?;
        check_zero(&cmd.__reserved)?;
        let hwpt = self.get_hwpt_paging(cmd.hwpt_id)?;
        let iopt = hwpt.ioas().iopt();
        let last = check_iova_range(iopt.alignment(), cmd.iova, cmd.length, cmd.page_size)?;
        if !hwpt.dirty_ops() {
            return Err(Errno::EOPNOTSUPP);
        }
        // the walk's bitmap window (`iova_bitmap_alloc()`), before anything is read or cleared
        vsva_mem::fail_nth::check()?;
        let clear = !flags.contains(GetDirtyBitmapFlags::NO_CLEAR);
        let mut bitmap = Bitmap {
            mem,
            data: cmd.data,
            iova: cmd.iova,
            last,
            shift: cmd.page_size.trailing_zeros(),
            ahead: Vec::new(),
        };
        let mut at = cmd.iova;
        for area in iopt.areas() {
            if area.last < at {
                continue;
            }
            if area.iova > at {
                break;
            }
            let piece_last = area.last.min(last);
            bitmap.record(hwpt.domain(), at, piece_last, clear)?;
            if piece_last == last {
                return Ok(());
            }
            at = piece_last + 1;
        }
        Err(Errno::EINVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iova_range_checks_in_linux_order() {
        const P: u64 = 4096;
        assert_eq!(check_iova_range(P, 0x10_0000, 8 * P, P), Ok(0x10_7fff));
        assert_eq!(
            check_iova_range(P, u64::MAX - P + 1, 2 * P, P),
            Err(Errno::EOVERFLOW)
        );
        assert_eq!(
            check_iova_range(P, P, 0, P),
            Err(Errno::EOVERFLOW),
            "length 0"
        );
        assert_eq!(
            check_iova_range(P, 0, 0, P),
            Ok(u64::MAX),
            "0 and 0: everything"
        );
        assert_eq!(
            check_iova_range(P, 0x800, P, 1),
            Err(Errno::EINVAL),
            "IOAS alignment"
        );
        assert_eq!(check_iova_range(P, 0, 0x1800, 1), Err(Errno::EINVAL));
        assert_eq!(
            check_iova_range(P, 0, P, 0),
            Err(Errno::EINVAL),
            "page size 0"
        );
        assert_eq!(check_iova_range(P, P, P, 2 * P), Err(Errno::EINVAL));
        assert_eq!(check_iova_range(P, 2 * P, P, 2 * P), Err(Errno::EINVAL));
        assert_eq!(check_iova_range(P, 2 * P, 2 * P, 2 * P), Ok(4 * P - 1));
        assert_eq!(
            check_iova_range(1, 3, 5, 1),
            Ok(7),
            "no domain: alignment 1"
        );
    }

    #[test]
    fn bits_are_set_in_the_right_bytes() {
        let mut bytes = [0u8; 4];
        set_bits(&mut bytes, 10, 81, 90);
        assert_eq!(bytes, [0b1111_1110, 0b0000_0111, 0, 0]);
        set_bits(&mut bytes, 10, 111, 200);
        assert_eq!(bytes[3], 0b1000_0000, "bits past the slice are dropped");
    }
}
