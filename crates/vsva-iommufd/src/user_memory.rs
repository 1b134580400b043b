//! User memory that an ioctl reaches through pointers inside its argument struct — the
//! `allowed_iovas` arrays of `IOMMU_IOAS_IOVA_RANGES` and `IOMMU_IOAS_ALLOW_IOVAS`, later the
//! data buffers of HWPT allocation and invalidation — the way the kernel reaches it with
//! `copy_from_user()` / `copy_to_user()`.
//!
//! The argument struct itself is passed to [`Iommufd::ioctl`](crate::Iommufd::ioctl) as bytes;
//! only memory behind the pointers it contains goes through [`UserMemory`]. The LD_PRELOAD
//! shim implements the trait over the calling process's real memory; [`ProcessMemory`]
//! implements it over a [`vsva_mm::Process`], as user code on the CPU would access it.

use std::sync::Arc;

use vsva_mem::Va;
use vsva_mm::Process;

use crate::abi::Errno;
use crate::pages::AddressSpace;

/// The granule user memory faults at: a read or write that stays inside one such block
/// either succeeds or faults as a whole.
const PAGE: u64 = 4096;

/// The calling process's memory, as `copy_from_user()` / `copy_to_user()` see it.
pub trait UserMemory {
    /// Reads `buf.len()` bytes at user address `addr`.
    ///
    /// # Errors
    /// `EFAULT` if any byte cannot be read (not mapped, not readable, or the range wraps).
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno>;

    /// Writes `buf` at user address `addr`. Bytes before a faulting one may have been written,
    /// as with `copy_to_user()`.
    ///
    /// # Errors
    /// `EFAULT` if any byte cannot be written.
    fn write(&self, addr: u64, buf: &[u8]) -> Result<(), Errno>;

    /// The calling process as an address space, when the memory can name it (Linux's
    /// `current->mm`): what `IOMMU_IOAS_CHANGE_PROCESS` hands the context to. `None` means
    /// the context's own process.
    fn address_space(&self) -> Option<Arc<dyn AddressSpace>> {
        None
    }
}

/// A [`vsva_mm::Process`]'s memory: accesses fault pages in (and break copy-on-write) as the
/// process's own loads and stores would; anything the process could not access is `EFAULT`.
#[derive(Clone)]
pub struct ProcessMemory {
    process: Arc<Process>,
}

impl ProcessMemory {
    /// The memory of `process`.
    pub fn new(process: Arc<Process>) -> Self {
        ProcessMemory { process }
    }

    /// The process.
    pub fn process(&self) -> &Arc<Process> {
        &self.process
    }
}

impl UserMemory for ProcessMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        if buf.is_empty() {
            return Ok(());
        }
        self.process
            .read_bytes(Va::new(addr), buf)
            .map_err(|_| Errno::EFAULT)
    }

    fn write(&self, addr: u64, buf: &[u8]) -> Result<(), Errno> {
        if buf.is_empty() {
            return Ok(());
        }
        self.process
            .write_bytes(Va::new(addr), buf)
            .map_err(|_| Errno::EFAULT)
    }

    fn address_space(&self) -> Option<Arc<dyn AddressSpace>> {
        Some(self.process.clone())
    }
}

impl<M: UserMemory + ?Sized> UserMemory for &M {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        (**self).read(addr, buf)
    }

    fn write(&self, addr: u64, buf: &[u8]) -> Result<(), Errno> {
        (**self).write(addr, buf)
    }

    fn address_space(&self) -> Option<Arc<dyn AddressSpace>> {
        (**self).address_space()
    }
}

/// Splits `[addr, addr + len)` at page boundaries, so each piece faults as a whole.
fn page_pieces(addr: u64, len: u64) -> impl Iterator<Item = (u64, u64)> {
    let mut at = addr;
    let mut left = len;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let room = PAGE - at % PAGE;
        let n = room.min(left);
        let piece = (at, n);
        at = at.wrapping_add(n);
        left -= n;
        Some(piece)
    })
}

/// Reads a driver's struct of `len` user bytes at `addr` into `dst` (the struct as bytes, what a
/// driver hands over through [`vsva_iommu::UserData`]) the way `iommu_copy_struct_from_user()`
/// (`include/linux/iommu.h`) does: `len` below `min_len` is `EINVAL`; then
/// `copy_struct_from_user()` — bytes past `dst.len()` must be zero (`E2BIG`, found page by
/// page before any fault further on, as `check_zeroed_user()` scans), then the first
/// `min(len, dst.len())` bytes are copied and the
/// rest of `dst` is zero.
///
/// # Errors
/// `EINVAL`, `E2BIG` as said; `EFAULT` if a byte that must be read cannot be, or the range
/// wraps.
pub fn copy_bytes_from_user_at(
    mem: &dyn UserMemory,
    addr: u64,
    len: u64,
    dst: &mut [u8],
    min_len: usize,
) -> Result<(), Errno> {
    if len < min_len as u64 {
        return Err(Errno::EINVAL);
    }
    addr.checked_add(len).ok_or(Errno::EFAULT)?;
    let ksize = dst.len() as u64;
    if len > ksize {
        let mut buf = [0u8; PAGE as usize];
        for (at, n) in page_pieces(addr + ksize, len - ksize) {
            let chunk = &mut buf[..n as usize];
            mem.read(at, chunk)?;
            if chunk.iter().any(|&byte| byte != 0) {
                return Err(Errno::E2BIG);
            }
        }
    }
    let copied = len.min(ksize) as usize;
    dst.fill(0);
    mem.read(addr, &mut dst[..copied])
}

/// Driver data behind an ioctl's pointer (Linux `struct iommu_user_data`): `len` bytes of type
/// `data_type` at `uptr`, read as [`copy_bytes_from_user_at`] does.
pub struct UserBuffer<'a> {
    /// The caller's memory.
    pub mem: &'a dyn UserMemory,
    /// The data type.
    pub data_type: u32,
    /// The user pointer.
    pub uptr: u64,
    /// The length in bytes.
    pub len: u64,
}

impl vsva_iommu::UserData for UserBuffer<'_> {
    fn data_type(&self) -> u32 {
        self.data_type
    }

    fn copy_struct(&self, dst: &mut [u8], min_len: usize) -> Result<(), Errno> {
        copy_bytes_from_user_at(self.mem, self.uptr, self.len, dst, min_len)
    }
}

/// An array of driver entries behind an ioctl's pointer (Linux `struct iommu_user_data_array`):
/// `entry_num` entries of `entry_len` bytes at `uptr`.
pub struct UserArray<'a> {
    /// The caller's memory.
    pub mem: &'a dyn UserMemory,
    /// The entries' type.
    pub data_type: u32,
    /// The user pointer to the first entry.
    pub uptr: u64,
    /// The length of one entry in bytes.
    pub entry_len: u32,
    /// The number of entries.
    pub entry_num: u32,
}

impl vsva_iommu::UserDataArray for UserArray<'_> {
    fn data_type(&self) -> u32 {
        self.data_type
    }

    fn entry_num(&self) -> u32 {
        self.entry_num
    }

    fn copy_entry(&self, index: u32, dst: &mut [u8], min_len: usize) -> Result<(), Errno> {
        let entry_len = u64::from(self.entry_len);
        let addr = entry_len
            .checked_mul(u64::from(index))
            .and_then(|offset| self.uptr.checked_add(offset))
            .ok_or(Errno::EFAULT)?;
        copy_bytes_from_user_at(self.mem, addr, entry_len, dst, min_len)
    }
}

/// Writes `len` zero bytes at `addr` (`clear_user()`), page by page; the pages before a
/// faulting one stay written.
///
/// # Errors
/// `EFAULT` if a byte cannot be written or the range wraps.
pub fn clear_user(mem: &dyn UserMemory, addr: u64, len: u64) -> Result<(), Errno> {
    addr.checked_add(len).ok_or(Errno::EFAULT)?;
    let zeros = [0u8; PAGE as usize];
    for (at, n) in page_pieces(addr, len) {
        mem.write(at, &zeros[..n as usize])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use zerocopy::{FromBytes, IntoBytes, KnownLayout};

    /// Two readable pages at 0x1000..0x3000; everything else faults.
    struct TwoPages(Mutex<Vec<u8>>);

    impl UserMemory for TwoPages {
        fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
            let end = addr.checked_add(buf.len() as u64).ok_or(Errno::EFAULT)?;
            if addr < 0x1000 || end > 0x3000 {
                return Err(Errno::EFAULT);
            }
            let at = (addr - 0x1000) as usize;
            buf.copy_from_slice(&self.0.lock().unwrap()[at..at + buf.len()]);
            Ok(())
        }

        fn write(&self, addr: u64, buf: &[u8]) -> Result<(), Errno> {
            let end = addr.checked_add(buf.len() as u64).ok_or(Errno::EFAULT)?;
            if addr < 0x1000 || end > 0x3000 {
                return Err(Errno::EFAULT);
            }
            let at = (addr - 0x1000) as usize;
            self.0.lock().unwrap()[at..at + buf.len()].copy_from_slice(buf);
            Ok(())
        }
    }

    fn copy_struct_from_user_at<T: FromBytes + IntoBytes + KnownLayout>(
        mem: &dyn UserMemory,
        addr: u64,
        len: u64,
        min_len: usize,
    ) -> Result<T, Errno> {
        let mut value = T::new_zeroed();
        copy_bytes_from_user_at(mem, addr, len, value.as_mut_bytes(), min_len)?;
        Ok(value)
    }

    #[test]
    fn struct_reads_follow_copy_struct_from_user() {
        let mem = TwoPages(Mutex::new(vec![0; 0x2000]));
        mem.write(0x1ff8, &7u64.to_le_bytes()).unwrap();
        // exactly the struct, shorter (zero-filled), below the minimum
        assert_eq!(copy_struct_from_user_at::<u64>(&mem, 0x1ff8, 8, 8), Ok(7));
        assert_eq!(copy_struct_from_user_at::<u64>(&mem, 0x1ff8, 4, 4), Ok(7));
        assert_eq!(
            copy_struct_from_user_at::<u64>(&mem, 0x1ff8, 4, 8),
            Err(Errno::EINVAL)
        );
        // a longer struct needs a zero tail, across the page boundary
        assert_eq!(copy_struct_from_user_at::<u64>(&mem, 0x1ff8, 24, 8), Ok(7));
        mem.write(0x200f, &[1]).unwrap();
        assert_eq!(
            copy_struct_from_user_at::<u64>(&mem, 0x1ff8, 24, 8),
            Err(Errno::E2BIG)
        );
        // a non-zero byte before unreadable memory is E2BIG, a zero tail into it EFAULT
        mem.write(0x2ff8, &[0, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        mem.write(0x2ffc, &[9]).unwrap();
        assert_eq!(
            copy_struct_from_user_at::<u64>(&mem, 0x2ff0, 0x100, 8),
            Err(Errno::E2BIG)
        );
        mem.write(0x2ffc, &[0]).unwrap();
        assert_eq!(
            copy_struct_from_user_at::<u64>(&mem, 0x2ff0, 0x100, 8),
            Err(Errno::EFAULT)
        );
        assert_eq!(
            copy_struct_from_user_at::<u64>(&mem, u64::MAX - 3, 8, 8),
            Err(Errno::EFAULT)
        );
    }

    #[test]
    fn array_entries_follow_copy_struct_from_user() {
        /// A 24-byte entry, shaped as the invalidation entries of the uAPI are.
        #[derive(
            Clone,
            Copy,
            Debug,
            PartialEq,
            Eq,
            FromBytes,
            IntoBytes,
            KnownLayout,
            zerocopy::Immutable,
        )]
        #[repr(C)]
        struct Entry {
            addr: u64,
            npages: u64,
            flags: u32,
            __reserved: u32,
        }
        // An invalidation array at 0x2fc0 laid out with 32-byte entries (a newer VMM): entry 1
        // starts at byte 32, its last 8 bytes must be zero; the array ends with the memory.
        let mem = TwoPages(Mutex::new(vec![0; 0x2000]));
        let entry = Entry {
            addr: 0x4000,
            npages: 2,
            flags: 1,
            __reserved: 0,
        };
        let array = 0x2fc0;
        mem.write(array + 32, entry.as_bytes()).unwrap();
        let read = copy_struct_from_user_at::<Entry>;
        assert_eq!(read(&mem, array + 32, 32, 24), Ok(entry));
        mem.write(array + 60, &[1]).unwrap();
        assert_eq!(read(&mem, array + 32, 32, 24), Err(Errno::E2BIG));
        // entries shorter than the driver's minimum
        assert_eq!(read(&mem, array, 16, 24), Err(Errno::EINVAL));
        assert_eq!(read(&mem, array, 20, 24), Err(Errno::EINVAL));
        // entry 2 lies past the accessible memory
        assert_eq!(read(&mem, array + 64, 32, 24), Err(Errno::EFAULT));
    }

    #[test]
    fn clear_user_zeroes_up_to_a_fault() {
        let mem = TwoPages(Mutex::new(vec![0xee; 0x2000]));
        clear_user(&mem, 0x1ffc, 8).unwrap();
        let mut got = [0u8; 12];
        mem.read(0x1ffa, &mut got).unwrap();
        assert_eq!(got, [0xee, 0xee, 0, 0, 0, 0, 0, 0, 0, 0, 0xee, 0xee]);
        assert_eq!(clear_user(&mem, 0x2ff0, 0x20), Err(Errno::EFAULT));
        mem.read(0x2ff0, &mut got[..8]).unwrap();
        assert_eq!(&got[..8], &[0; 8], "the page before the fault was cleared");
        assert_eq!(clear_user(&mem, 0x1000, 0), Ok(()));
    }
}
