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
}

impl<M: UserMemory + ?Sized> UserMemory for &M {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        (**self).read(addr, buf)
    }

    fn write(&self, addr: u64, buf: &[u8]) -> Result<(), Errno> {
        (**self).write(addr, buf)
    }
}
