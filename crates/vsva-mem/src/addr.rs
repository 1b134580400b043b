//! Typed addresses and page sizes.
//!
//! Each address space has its own newtype so that a guest-physical address cannot be handed to
//! something that wants a host-physical one without an explicit translation:
//!
//! | type | address space |
//! |---|---|
//! | [`Hpa`] | host physical — what the physical IOMMU's output and host memory use |
//! | [`Gpa`] | guest physical — a VM's RAM, the output of a guest's stage 1 |
//! | [`Iova`] | I/O virtual — what a device puts on the bus without a PASID |
//! | [`Va`] | a process's virtual address (CPU linear address; with SVA also a device's) |

use std::fmt;

/// The page and frame sizes of x86-64 paging and of VT-d's first and second stages
/// (Intel SDM Vol. 3 §4.5; VT-d 4.1 §3.6, §3.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PageSize {
    /// 4 KiB, mapped by a PTE.
    Size4K,
    /// 2 MiB, mapped by a PDE with PS=1.
    Size2M,
    /// 1 GiB, mapped by a PDPTE with PS=1.
    Size1G,
}

impl PageSize {
    /// All sizes, smallest first.
    pub const ALL: [PageSize; 3] = [PageSize::Size4K, PageSize::Size2M, PageSize::Size1G];

    /// log2 of the size in bytes.
    pub const fn shift(self) -> u32 {
        match self {
            PageSize::Size4K => 12,
            PageSize::Size2M => 21,
            PageSize::Size1G => 30,
        }
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        1 << self.shift()
    }

    /// The mask of the offset bits within a page of this size.
    pub const fn offset_mask(self) -> u64 {
        self.bytes() - 1
    }

    /// The page-table level (1 = PTE, 2 = PDE, 3 = PDPTE) whose entries map pages of this size.
    pub const fn leaf_level(self) -> u8 {
        match self {
            PageSize::Size4K => 1,
            PageSize::Size2M => 2,
            PageSize::Size1G => 3,
        }
    }

    /// The size mapped by a leaf at `level` (1..=3), if any.
    pub const fn from_leaf_level(level: u8) -> Option<PageSize> {
        match level {
            1 => Some(PageSize::Size4K),
            2 => Some(PageSize::Size2M),
            3 => Some(PageSize::Size1G),
            _ => None,
        }
    }
}

impl fmt::Display for PageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PageSize::Size4K => "4K",
            PageSize::Size2M => "2M",
            PageSize::Size1G => "1G",
        })
    }
}

macro_rules! address_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        #[repr(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// Wraps a raw address.
            pub const fn new(raw: u64) -> Self {
                Self(raw)
            }

            /// The raw address.
            pub const fn raw(self) -> u64 {
                self.0
            }

            /// `self + offset`, or `None` on overflow.
            pub const fn checked_add(self, offset: u64) -> Option<Self> {
                match self.0.checked_add(offset) {
                    Some(v) => Some(Self(v)),
                    None => None,
                }
            }

            /// The address rounded down to a multiple of `size`.
            pub const fn align_down(self, size: PageSize) -> Self {
                Self(self.0 & !size.offset_mask())
            }

            /// The offset of the address inside its page of `size`.
            pub const fn page_offset(self, size: PageSize) -> u64 {
                self.0 & size.offset_mask()
            }

            /// Is the address a multiple of `size`?
            pub const fn is_aligned(self, size: PageSize) -> bool {
                self.page_offset(size) == 0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }

        impl fmt::LowerHex for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }
    };
}

address_type!(
    /// A host-physical address.
    Hpa
);
address_type!(
    /// A guest-physical address.
    Gpa
);
address_type!(
    /// An I/O virtual address (a DMA address without PASID, translated by the IOMMU).
    Iova
);
address_type!(
    /// A process virtual (CPU linear) address; with SVA the device uses it too, under a PASID.
    Va
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_match_x86_paging() {
        assert_eq!(PageSize::Size4K.bytes(), 4096);
        assert_eq!(PageSize::Size2M.bytes(), 2 * 1024 * 1024);
        assert_eq!(PageSize::Size1G.bytes(), 1024 * 1024 * 1024);
        for s in PageSize::ALL {
            assert_eq!(PageSize::from_leaf_level(s.leaf_level()), Some(s));
        }
        assert_eq!(PageSize::from_leaf_level(4), None);
    }

    #[test]
    fn alignment_helpers() {
        let va = Va::new(0x20_1234);
        assert_eq!(va.align_down(PageSize::Size4K), Va::new(0x20_1000));
        assert_eq!(va.align_down(PageSize::Size2M), Va::new(0x20_0000));
        assert_eq!(va.page_offset(PageSize::Size4K), 0x234);
        assert!(!va.is_aligned(PageSize::Size4K));
        assert!(Va::new(0x4000_0000).is_aligned(PageSize::Size1G));
        assert_eq!(Hpa::new(u64::MAX).checked_add(1), None);
        assert_eq!(format!("{:?}", Gpa::new(0x1000)), "Gpa(0x1000)");
    }
}
