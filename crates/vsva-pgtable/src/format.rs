//! The [`Format`] trait: what a walker and a builder need to know about a page-table format.
//!
//! Every format here is a radix tree of 4 KiB tables holding 512 little-endian 64-bit entries,
//! indexed by 9 address bits per level, with leaves at level 1 (4 KiB), or at levels 2 and 3
//! when the entry says so (x86's PS bit, Arm's bit 1). What differs between formats is how an
//! entry says "present", which bits are reserved, which rights it grants and where its A/D bits
//! are; that is what this trait captures. The walker ([`crate::walk()`]) and the builder
//! ([`crate::PageTable`]) are written once against it.
//!
//! The methods with defaults describe what only some formats have — a root table indexed by
//! more or fewer than 9 bits (Arm's concatenated stage-2 tables, a stage-1 input size that is
//! not a multiple of 9 bits), rights carried by table entries that differ from a leaf's
//! (Arm's APTable/XNTable), an Accessed flag kept only in leaves, an Access-flag fault, a
//! dirty state recorded by clearing a bit (Arm's DBM with AP\[2\]). Their defaults are what
//! x86 and VT-d do, written so that they compile away in those formats' walks.

use vsva_mem::{Access, PageSize};

use crate::fault::{FaultReason, Stage};
use crate::perm::Perm;

/// Index bits per level.
pub const INDEX_BITS: u32 = 9;
/// Entries per table.
pub const ENTRIES: u64 = 512;
/// Bytes per table.
pub const TABLE_BYTES: u64 = 4096;
/// The page-size bit of x86 and VT-d second-stage PDPTEs/PDEs (SDM §4.5; VT-d 4.1 §9.8).
pub const PS: u64 = 1 << 7;

/// Fewest levels a supported configuration has (a 39-bit VT-d second stage has 3; 2 is allowed
/// for narrow test tables).
pub const MIN_LEVELS: u8 = 2;
/// Most levels (x86 5-level paging, 57-bit VT-d second stage).
pub const MAX_LEVELS: u8 = 5;

/// Bits 51:12, where every address field of these formats lies (x86 MAXPHYADDR and VT-d
/// HAW are at most 52).
pub const ADDR_MASK: u64 = ((1 << 52) - 1) & !0xfff;

/// The mask of bits 51:`width`: the address bits above a physical-address width, reserved in
/// every present entry (SDM §4.5; VT-d 4.1 §9.8).
#[inline]
pub const fn bits_above(width: u8) -> u64 {
    let w = if width > 52 { 52 } else { width };
    ADDR_MASK_52 & !((1u64 << w) - 1)
}

const ADDR_MASK_52: u64 = (1 << 52) - 1;

/// The index into the table at `level` for `addr`.
#[inline]
pub const fn index(addr: u64, level: u8) -> u64 {
    (addr >> (12 + INDEX_BITS * (level as u32 - 1))) & (ENTRIES - 1)
}

/// Bytes spanned by one entry at `level` (4 KiB at level 1, 2 MiB at 2, ...).
#[inline]
pub const fn span(level: u8) -> u64 {
    1u64 << (12 + INDEX_BITS * (level as u32 - 1))
}

/// The index into the table at `level` for `addr` in a table of `format`, whose root (at
/// `format.levels()`) is indexed by [`Format::root_index_bits`] bits.
#[inline(always)]
pub fn table_index<F: Format + ?Sized>(format: &F, addr: u64, level: u8) -> u64 {
    let bits = if level == format.levels() {
        format.root_index_bits()
    } else {
        INDEX_BITS
    };
    (addr >> (12 + INDEX_BITS * (level as u32 - 1))) & ((1u64 << bits.min(63)) - 1)
}

/// Entries in a table of `format` at `level` (512 but at the root).
#[inline]
pub fn table_entries<F: Format + ?Sized>(format: &F, level: u8) -> u64 {
    if level == format.levels() {
        1u64 << format.root_index_bits().min(63)
    } else {
        ENTRIES
    }
}

/// A page-table format and the configuration it is walked with (widths, enabled features).
pub trait Format {
    /// The stage faults of this format are reported under.
    const STAGE: Stage;

    /// Does hardware set the Accessed bit in the table entries a walk uses too (x86, VT-d),
    /// or only in the leaf (Arm, which keeps AF in blocks and pages only)?
    const ACCESSED_IN_TABLES: bool = true;

    /// Do table entries restrict the rights below them in a way of their own, given by
    /// [`table_rights`](Self::table_rights) (Arm's APTable, UXNTable, PXNTable), rather than
    /// as [`rights`](Self::rights) reads the same bits (x86, VT-d)? A constant, so that walks
    /// of the others do not even tell tables from leaves for it.
    const TABLE_RIGHTS: bool = false;

    /// Number of levels (2 to 5; Arm: 4 − the start level): the root table is at this level.
    /// A configuration the format cannot walk says 0, and every walk faults.
    fn levels(&self) -> u8;

    /// Is `addr` a valid input address (inside the width; canonical for x86)?
    fn input_ok(&self, addr: u64) -> bool;

    /// The input address whose table indices are those of `addr` (bits above the width
    /// cleared): x86 sign-extends into the upper canonical half; formats without canonical
    /// forms return `addr`.
    fn canonical(&self, addr: u64) -> u64 {
        addr
    }

    /// Can a present entry grant exactly `perm`?
    fn can_encode(&self, perm: Perm) -> bool {
        let _ = perm;
        true
    }

    /// Does the entry map something or point to a table (x86: P=1; VT-d SS: R or W)?
    fn is_present(&self, entry: u64) -> bool;

    /// Is the present entry at `level` a leaf (a page) rather than a table pointer? Every
    /// entry at level 1, and PDPTEs/PDEs with PS set (Arm: descriptors with bit 1 clear).
    #[inline]
    fn is_leaf(&self, entry: u64, level: u8) -> bool {
        level == 1 || (level <= 3 && entry & PS != 0)
    }

    /// Does the present entry at `level` set a bit its format reserves (or, for Arm, is it
    /// an encoding that faults at that level, or does it name an address beyond the output
    /// size)? The builder refuses to write such an entry.
    fn has_reserved_bits(&self, entry: u64, level: u8) -> bool;

    /// The fault a present entry at `level` causes by itself, if any: x86 and VT-d report
    /// [`FaultReason::Reserved`] for reserved bits; Arm reports a Translation fault
    /// ([`FaultReason::NotPresent`]) for a block at a level without blocks and an Address size
    /// fault for an output address beyond the PA size.
    #[inline(always)]
    fn entry_fault(&self, entry: u64, level: u8) -> Option<FaultReason> {
        self.has_reserved_bits(entry, level)
            .then_some(FaultReason::Reserved)
    }

    /// Address bits indexing the root table: 9, unless the input size leaves fewer at the top
    /// level or the root is several concatenated tables (Arm stage 2: up to 16, 13 bits).
    #[inline(always)]
    fn root_index_bits(&self) -> u32 {
        INDEX_BITS
    }

    /// Physical address of the table a non-leaf entry points to.
    #[inline]
    fn table_addr(&self, entry: u64) -> u64 {
        entry & ADDR_MASK
    }

    /// Physical address of the page a leaf entry of `size` maps.
    #[inline]
    fn page_addr(&self, entry: u64, size: PageSize) -> u64 {
        entry & ADDR_MASK & !size.offset_mask()
    }

    /// Rights granted by this leaf entry alone; a walk intersects them over its levels.
    fn rights(&self, entry: u64) -> Perm;

    /// Rights a table entry leaves to the entries below it (Arm's APTable, UXNTable,
    /// PXNTable); by default what [`rights`](Self::rights) says of the same bits. Used when
    /// [`TABLE_RIGHTS`](Self::TABLE_RIGHTS) is set.
    #[inline(always)]
    fn table_rights(&self, entry: u64) -> Perm {
        self.rights(entry)
    }

    /// May an access with `access` use a translation whose combined rights are `rights`?
    fn permits(&self, rights: Perm, access: Access) -> bool;

    /// The Accessed bit hardware sets in the leaf it uses (and in the table entries, per
    /// [`ACCESSED_IN_TABLES`](Self::ACCESSED_IN_TABLES)), if A/D updates are on.
    fn accessed_bit(&self) -> Option<u64>;

    /// Does using this leaf (present, rights not yet checked) give an Access flag fault? Arm:
    /// AF = 0 while hardware Access-flag updates are off. Checked before the rights.
    #[inline(always)]
    fn access_flag_fault(&self, leaf: u64) -> bool {
        let _ = leaf;
        false
    }

    /// The Dirty bit hardware sets in the leaf on a write, if A/D updates are on.
    fn dirty_bit(&self) -> Option<u64>;

    /// Bits hardware clears in the leaf on a write (Arm stage 1 with hardware dirty state
    /// clears AP\[2\] of a DBM page); 0 elsewhere.
    #[inline(always)]
    fn dirty_clear_bits(&self) -> u64 {
        0
    }

    /// The bits of `entry` that hardware may change by itself (A/D, Arm's AP\[2\] of a DBM
    /// leaf): a walk that finds only these changed still uses the entry it read.
    #[inline]
    fn hardware_bits(&self, entry: u64) -> u64 {
        let _ = entry;
        self.accessed_bit().unwrap_or(0) | self.dirty_bit().unwrap_or(0) | self.dirty_clear_bits()
    }

    /// Does hardware record writes in the leaves of this configuration (what
    /// [`crate::PageTable::read_and_clear_dirty`] reads)?
    #[inline]
    fn tracks_dirty(&self) -> bool {
        self.dirty_bit().is_some()
    }

    /// Is this present leaf dirty (written since it was last cleaned)?
    #[inline]
    fn is_dirty(&self, leaf: u64) -> bool {
        self.dirty_bit().is_some_and(|d| leaf & d != 0)
    }

    /// The leaf made clean again (Dirty cleared; Arm: AP\[2\] set again on a DBM leaf).
    #[inline]
    fn cleaned(&self, leaf: u64) -> u64 {
        leaf & !self.dirty_bit().unwrap_or(0)
    }

    /// Can a leaf of `size` be mapped with this configuration?
    fn supports(&self, size: PageSize) -> bool;

    /// An entry pointing to the table at `table` (with the most permissive rights, so that
    /// leaves alone decide).
    fn encode_table(&self, table: u64) -> u64;

    /// A leaf entry mapping `page` of `size` with `perm`.
    fn encode_leaf(&self, page: u64, size: PageSize, perm: Perm) -> u64;

    /// `entry` with its rights replaced by `perm` (address and other bits kept).
    fn set_rights(&self, entry: u64, perm: Perm) -> u64;
}
