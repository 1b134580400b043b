//! [`KernelBuf`]: kernel memory handed to iommufd where its commands take user pointers.
//!
//! In the series, VFIO passes the user's pointer straight to the IOMMU core ("VFIO handles its
//! own data and passes user pointer to IOMMU core", LPC 2020). Here the container has already
//! read and checked the VFIO-era struct, and calls iommufd the way an in-kernel user would:
//! with a buffer of its own behind the pointer fields (`data_uptr` of `IOMMU_HWPT_ALLOC`,
//! `IOMMU_HWPT_INVALIDATE` and `IOMMU_GET_HW_INFO`).

use std::sync::Mutex;

use vsva_iommufd::UserMemory;
use vsva_iommufd::abi::Errno;

/// Where the buffer appears to iommufd: any non-zero address works; this one is page aligned
/// so no access crosses into nothing by accident.
pub const KBUF_BASE: u64 = 0x1000;

/// A byte buffer at [`KBUF_BASE`]; anything outside it is `EFAULT`.
#[derive(Debug)]
pub struct KernelBuf {
    bytes: Mutex<Vec<u8>>,
}

impl KernelBuf {
    /// A buffer holding `bytes`.
    pub fn new(bytes: Vec<u8>) -> KernelBuf {
        KernelBuf {
            bytes: Mutex::new(bytes),
        }
    }

    /// A zeroed buffer of `len` bytes.
    pub fn zeroed(len: usize) -> KernelBuf {
        Self::new(vec![0; len])
    }

    /// The buffer's contents.
    pub fn contents(&self) -> Vec<u8> {
        self.bytes.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The byte range `[addr, addr + len)` inside the buffer.
    fn range(&self, addr: u64, len: usize, total: usize) -> Result<std::ops::Range<usize>, Errno> {
        let start = addr.checked_sub(KBUF_BASE).ok_or(Errno::EFAULT)?;
        let start = usize::try_from(start).map_err(|_| Errno::EFAULT)?;
        let end = start.checked_add(len).ok_or(Errno::EFAULT)?;
        if end > total {
            return Err(Errno::EFAULT);
        }
        Ok(start..end)
    }
}

impl UserMemory for KernelBuf {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        let bytes = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        let range = self.range(addr, buf.len(), bytes.len())?;
        buf.copy_from_slice(&bytes[range]);
        Ok(())
    }

    fn write(&self, addr: u64, buf: &[u8]) -> Result<(), Errno> {
        let mut bytes = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        let total = bytes.len();
        let range = self.range(addr, buf.len(), total)?;
        bytes[range].copy_from_slice(buf);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_stay_inside() {
        let buf = KernelBuf::new(vec![1, 2, 3, 4]);
        let mut two = [0u8; 2];
        buf.read(KBUF_BASE + 2, &mut two).unwrap();
        assert_eq!(two, [3, 4]);
        assert_eq!(buf.read(KBUF_BASE + 3, &mut two), Err(Errno::EFAULT));
        assert_eq!(buf.read(0, &mut two), Err(Errno::EFAULT));
        assert_eq!(buf.read(u64::MAX, &mut two), Err(Errno::EFAULT));
        buf.write(KBUF_BASE, &[9]).unwrap();
        assert_eq!(buf.contents(), vec![9, 2, 3, 4]);
    }
}
