//! Software page-table entries: what a non-present x86 PTE holds for the memory manager.
//!
//! With P = 0 hardware ignores every other bit (SDM §4.5), so the OS may keep its own data
//! there, as Linux does for swap entries and `PROT_NONE` pages:
//!
//! | kind | encoding |
//! |---|---|
//! | empty | 0 |
//! | present | P = 1 (a hardware entry) |
//! | `PROT_NONE` page | the page's entry with P cleared and bit 11 set: frame and size kept |
//! | swap entry | `slot << 12 \| 1 << 1`, bit 11 clear |

/// Present.
const P: u64 = 1;
/// Marks a `PROT_NONE` page (bit 11 is software-available in every x86 entry).
const PROT_NONE_MARK: u64 = 1 << 11;
/// Marks a swap entry.
const SWAP_MARK: u64 = 1 << 1;

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

/// Classifies a leaf entry.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_round_trip_and_are_not_present() {
        let e = swap_entry(0x1234);
        assert_eq!(e & P, 0);
        assert_eq!(classify(e), PteKind::Swap(0x1234));
        let page = 0x8000_0000_0020_0087; // 2 MiB leaf, P|RW|US|PS, XD
        let hidden = prot_none(page);
        assert_eq!(hidden & P, 0);
        assert_eq!(classify(hidden), PteKind::ProtNone);
        assert_eq!(from_prot_none(hidden), page);
        assert_eq!(classify(page), PteKind::Present);
        assert_eq!(classify(0), PteKind::Empty);
    }
}
