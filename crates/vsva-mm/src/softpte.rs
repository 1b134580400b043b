//! Software page-table entries: what a non-present leaf holds for the memory manager — swap
//! entries and `PROT_NONE` pages — in each CPU format. Hardware ignores every bit of such an
//! entry but the one that makes it invalid, so the OS keeps its own data there, as Linux does.

/// What a leaf entry is, to the memory manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PteKind {
    /// Nothing (or nothing the memory manager wrote).
    Empty,
    /// A hardware mapping.
    Present,
    /// A page made inaccessible by `mprotect(PROT_NONE)`; it still owns its frame.
    ProtNone,
    /// A page in swap slot `.0`.
    Swap(u64),
}

/// x86-64: with P = 0 hardware ignores every other bit (SDM §4.5).
///
/// | kind | encoding |
/// |---|---|
/// | empty | 0 |
/// | present | P = 1 (a hardware entry) |
/// | `PROT_NONE` page | the page's entry with P cleared and bit 11 set: frame and size kept |
/// | swap entry | `slot << 12 \| 1 << 1`, bit 11 clear |
pub mod x86 {
    use super::PteKind;

    /// Present.
    const P: u64 = 1;
    /// Marks a `PROT_NONE` page (bit 11 is software-available in every x86 entry).
    const PROT_NONE_MARK: u64 = 1 << 11;
    /// Marks a swap entry.
    const SWAP_MARK: u64 = 1 << 1;

    /// Classifies a leaf entry.
    #[inline]
    pub fn classify(entry: u64) -> PteKind {
        if entry & P != 0 {
            PteKind::Present
        } else if entry & PROT_NONE_MARK != 0 {
            PteKind::ProtNone
        } else if entry & SWAP_MARK != 0 {
            PteKind::Swap(entry >> 12)
        } else {
            PteKind::Empty
        }
    }

    /// The swap entry for `slot`.
    pub fn swap_entry(slot: u64) -> u64 {
        (slot << 12) | SWAP_MARK
    }

    /// A present entry made inaccessible (frame kept).
    pub fn prot_none(present: u64) -> u64 {
        (present & !P) | PROT_NONE_MARK
    }

    /// A `PROT_NONE` entry made present again (rights to be set by the caller).
    pub fn from_prot_none(entry: u64) -> u64 {
        (entry & !PROT_NONE_MARK) | P
    }
}

/// Arm64 (VMSAv8-64 stage 1). An invalid descriptor is one with bit 0 clear; "the remaining
/// bits are ignored by hardware" and free for software (Arm DDI 0487, D8 "Translation table
/// descriptor formats", invalid descriptors). The layout follows Linux arm64 (v6.10+,
/// `arch/arm64/include/asm/pgtable.h` "Encode and decode a swap entry", and
/// `pgtable-prot.h` `PTE_PRESENT_INVALID`):
///
/// | kind | encoding |
/// |---|---|
/// | empty | 0 |
/// | present | bit 0 (valid) = 1 |
/// | `PROT_NONE` page | the page's descriptor with bit 0 cleared and bit 11 (nG) set — Linux's `PTE_PRESENT_INVALID` is `PTE_NG` when invalid; user leaves have nG = 1, so frame, size (bit 1), AF and dirty state are all kept |
/// | swap entry | bits 1:0 = 0, bits 10:6 swap type (0: one swap device), bit 11 = 0, bits 61:12 swap offset (= the slot) |
///
/// Linux also keeps `PTE_SWP_EXCLUSIVE` (bit 2) and the uffd-wp bit (3) in swap entries;
/// the memory manager has neither.
pub mod arm {
    use super::PteKind;
    use vsva_pgtable::arm::{NG, VALID};

    /// Bit of the swap offset's lowest bit (Linux `__SWP_OFFSET_SHIFT`).
    const SWP_OFFSET_SHIFT: u32 = 12;
    /// Swap offset width (Linux `__SWP_OFFSET_BITS`).
    const SWP_OFFSET_BITS: u32 = 50;
    const SWP_OFFSET_MASK: u64 = (1 << SWP_OFFSET_BITS) - 1;
    /// Bits that must be 0 in a swap entry: valid, the descriptor-type bit, and nG (which
    /// marks `PROT_NONE`).
    const SWP_ZERO: u64 = VALID | (1 << 1) | NG;

    /// Classifies a leaf entry.
    #[inline]
    pub fn classify(entry: u64) -> PteKind {
        if entry & VALID != 0 {
            PteKind::Present
        } else if entry & NG != 0 {
            PteKind::ProtNone
        } else if entry & SWP_ZERO == 0 && entry >> SWP_OFFSET_SHIFT & SWP_OFFSET_MASK != 0 {
            PteKind::Swap(entry >> SWP_OFFSET_SHIFT & SWP_OFFSET_MASK)
        } else {
            PteKind::Empty
        }
    }

    /// The swap entry for `slot` (type 0). Slots are below 2^50.
    pub fn swap_entry(slot: u64) -> u64 {
        debug_assert!(slot != 0 && slot <= SWP_OFFSET_MASK);
        (slot & SWP_OFFSET_MASK) << SWP_OFFSET_SHIFT
    }

    /// A present descriptor made inaccessible (everything but the valid bit kept).
    pub fn prot_none(present: u64) -> u64 {
        (present & !VALID) | NG
    }

    /// A `PROT_NONE` entry made valid again (rights to be set by the caller; nG stays set,
    /// as on every user leaf).
    pub fn from_prot_none(entry: u64) -> u64 {
        entry | VALID
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_encodings_round_trip_and_are_not_present() {
        let e = x86::swap_entry(0x1234);
        assert_eq!(e & 1, 0);
        assert_eq!(x86::classify(e), PteKind::Swap(0x1234));
        let page = 0x8000_0000_0020_0087; // 2 MiB leaf, P|RW|US|PS, XD
        let hidden = x86::prot_none(page);
        assert_eq!(hidden & 1, 0);
        assert_eq!(x86::classify(hidden), PteKind::ProtNone);
        assert_eq!(x86::from_prot_none(hidden), page);
        assert_eq!(x86::classify(page), PteKind::Present);
        assert_eq!(x86::classify(0), PteKind::Empty);
    }

    #[test]
    fn arm_swap_entries_follow_linux_layout() {
        // slot 0x1234 at bits 61:12, type 0 at bits 10:6, bits 1:0 and 11 clear
        let e = arm::swap_entry(0x1234);
        assert_eq!(e, 0x0123_4000);
        assert_eq!(arm::classify(e), PteKind::Swap(0x1234));
        let top = (1u64 << 50) - 1;
        assert_eq!(arm::swap_entry(top), 0x3fff_ffff_ffff_f000);
        assert_eq!(arm::classify(arm::swap_entry(top)), PteKind::Swap(top));
        assert_eq!(arm::classify(0), PteKind::Empty);
    }

    #[test]
    fn arm_prot_none_keeps_the_descriptor_but_valid() {
        // a 4 KiB user page: valid|page, AttrIndx 0, AP[1], SH inner, AF, nG, DBM, PXN, UXN,
        // at 0x4000_1000
        let page = 0x0068_0000_4000_1f43;
        let hidden = arm::prot_none(page);
        assert_eq!(hidden, 0x0068_0000_4000_1f42);
        assert_eq!(arm::classify(hidden), PteKind::ProtNone);
        assert_eq!(arm::from_prot_none(hidden), page);
        assert_eq!(arm::classify(page), PteKind::Present);
        // a 2 MiB block (bit 1 clear) hides the same way
        let block = 0x0060_0000_4020_0f41;
        assert_eq!(arm::classify(arm::prot_none(block)), PteKind::ProtNone);
    }
}
