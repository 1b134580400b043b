//! What an IOAS fills: the I/O page tables (iommu domains) of the paging HWPTs built on it.
//!
//! Linux's `io_pagetable` keeps a list of attached `iommu_domain`s and maps every area's
//! pinned pages into each of them (`iopt_area_fill_domains`); unmapping takes the pages out
//! of every domain and flushes its IOTLBs before the pages are unpinned. This trait is that
//! contract, implemented by the IOMMU side (the core's paging domain, over the
//! driver's I/O page table format).

use bitflags::bitflags;

use crate::abi::Errno;

bitflags! {
    /// Rights of a mapping (`IOMMU_READ` / `IOMMU_WRITE` of `conv_iommu_prot()`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct IoProt: u8 {
        /// DMA may read.
        const READ = 1 << 0;
        /// DMA may write.
        const WRITE = 1 << 1;
    }
}

impl IoProt {
    /// The right an access's pin or copy needs (`check_area_prot()`): `WRITE` for a write
    /// (`IOMMUFD_ACCESS_RW_WRITE`), `READ` otherwise.
    pub fn for_access(write: bool) -> IoProt {
        if write { IoProt::WRITE } else { IoProt::READ }
    }
}

/// An I/O page table an IOAS keeps filled.
pub trait IoDomain: Send + Sync {
    /// The smallest page the domain maps: IOVAs and lengths mapped into it are multiples.
    fn page_size(&self) -> u64 {
        4096
    }

    /// The last IOVA the domain can translate (its aperture is `[0, last]`); the IOAS
    /// reserves everything above it while the domain is attached.
    fn aperture_last(&self) -> u64;

    /// Maps `[iova, iova + len)` to the physically contiguous `[pa, pa + len)`. Both are
    /// multiples of [`page_size`](Self::page_size); `large` allows pages bigger than that
    /// where alignment permits (off when `IOMMU_OPTION_HUGE_PAGES` is 0).
    ///
    /// # Errors
    /// The errno of the failure; nothing of the range stays mapped.
    fn map(&self, iova: u64, pa: u64, len: u64, prot: IoProt, large: bool) -> Result<(), Errno>;

    /// Unmaps `[iova, iova + len)` and flushes every IOTLB and device TLB that may hold it;
    /// when this returns no DMA can reach the old pages any more.
    fn unmap(&self, iova: u64, len: u64);
}

/// A paging domain of the IOMMU core is what a paging HWPT fills from its IOAS.
impl IoDomain for vsva_iommu::PagingDomain {
    fn aperture_last(&self) -> u64 {
        self.last_iova()
    }

    fn map(&self, iova: u64, pa: u64, len: u64, prot: IoProt, large: bool) -> Result<(), Errno> {
        let mut perm = vsva_pgtable::Perm::empty();
        if prot.contains(IoProt::READ) {
            perm |= vsva_pgtable::Perm::READ;
        }
        if prot.contains(IoProt::WRITE) {
            perm |= vsva_pgtable::Perm::WRITE;
        }
        vsva_iommu::PagingDomain::map(self, iova, pa, len, perm, large).map_err(Errno::from)
    }

    fn unmap(&self, iova: u64, len: u64) {
        vsva_iommu::PagingDomain::unmap(self, iova, len);
    }
}
