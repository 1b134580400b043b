//! Files named by descriptor in an ioctl argument — the `fd` of `IOMMU_IOAS_MAP_FILE` — and
//! how a context reaches their memory.
//!
//! Linux looks the descriptor up in the caller's file table (`fget()` in
//! `iommufd_ioas_map_file()` of `drivers/iommu/iommufd/ioas.c`) and pins the file's folios
//! with `memfd_pin_folios()` (`pages.c`). vsva's context has no file table of its own: whoever
//! owns the descriptors — the `/dev/iommu` shim, for a real program — gives the context a
//! [`FileResolver`] ([`Iommufd::set_file_resolver`](crate::Iommufd::set_file_resolver)). A
//! resolved file is an [`AddressSpace`] whose addresses are byte offsets in the file, so
//! `IOMMU_IOAS_MAP_FILE` maps it through the same [`Pages`](crate::pages::Pages) machinery as
//! `IOMMU_IOAS_MAP` maps user memory: lazily pinned, charged as locked memory, shared by COPY.

use std::sync::Arc;

use crate::abi::Errno;
use crate::pages::AddressSpace;

/// Turns a descriptor of the calling program into the memory of the file it names.
pub trait FileResolver: Send + Sync {
    /// The file open as `fd`, as an address space of byte offsets, for a mapping of
    /// `[start, start + length)` that DMA may write if `writable`. The range is checked here,
    /// at map time, as Linux's `iopt_map_file_pages()` expects a range inside the file.
    ///
    /// # Errors
    /// `EBADF` if `fd` is not an open descriptor; `EINVAL` if the file cannot be mapped this
    /// way (not a memfd / shmem file, as `memfd_pin_folios()` requires) or the range does
    /// not lie inside it; `EPERM` for a writable mapping of a file not open for writing
    /// (`iopt_alloc_file_pages()`).
    fn resolve(
        &self,
        fd: i32,
        start: u64,
        length: u64,
        writable: bool,
    ) -> Result<Arc<dyn AddressSpace>, Errno>;
}
