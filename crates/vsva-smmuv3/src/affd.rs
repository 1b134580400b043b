//! Access flag fault disable (CD.AFFD, STE.S2AFFD; IHI 0070 §5.2, §5.4): with hardware
//! Access flag updates off, a descriptor with AF = 0 is used as if AF were 1 instead of
//! causing an Access flag fault. vsva-pgtable's Arm formats have no such control, so this
//! wraps one and changes only that rule.

use vsva_mem::{Access, PageSize};
use vsva_pgtable::{FaultReason, Format, Perm, Stage};

/// `F` with the Access flag fault disabled when `affd` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Affd<F> {
    pub f: F,
    pub affd: bool,
}

impl<F: Format> Format for Affd<F> {
    const STAGE: Stage = F::STAGE;
    const ACCESSED_IN_TABLES: bool = F::ACCESSED_IN_TABLES;
    const TABLE_RIGHTS: bool = F::TABLE_RIGHTS;

    #[inline(always)]
    fn levels(&self) -> u8 {
        self.f.levels()
    }
    #[inline(always)]
    fn input_ok(&self, addr: u64) -> bool {
        self.f.input_ok(addr)
    }
    #[inline(always)]
    fn canonical(&self, addr: u64) -> u64 {
        self.f.canonical(addr)
    }
    #[inline(always)]
    fn can_encode(&self, perm: Perm) -> bool {
        self.f.can_encode(perm)
    }
    #[inline(always)]
    fn is_present(&self, entry: u64) -> bool {
        self.f.is_present(entry)
    }
    #[inline(always)]
    fn is_leaf(&self, entry: u64, level: u8) -> bool {
        self.f.is_leaf(entry, level)
    }
    #[inline(always)]
    fn has_reserved_bits(&self, entry: u64, level: u8) -> bool {
        self.f.has_reserved_bits(entry, level)
    }
    #[inline(always)]
    fn entry_fault(&self, entry: u64, level: u8) -> Option<FaultReason> {
        self.f.entry_fault(entry, level)
    }
    #[inline(always)]
    fn root_index_bits(&self) -> u32 {
        self.f.root_index_bits()
    }
    #[inline(always)]
    fn table_addr(&self, entry: u64) -> u64 {
        self.f.table_addr(entry)
    }
    #[inline(always)]
    fn page_addr(&self, entry: u64, size: PageSize) -> u64 {
        self.f.page_addr(entry, size)
    }
    #[inline(always)]
    fn rights(&self, entry: u64) -> Perm {
        self.f.rights(entry)
    }
    #[inline(always)]
    fn table_rights(&self, entry: u64) -> Perm {
        self.f.table_rights(entry)
    }
    #[inline(always)]
    fn permits(&self, rights: Perm, access: Access) -> bool {
        self.f.permits(rights, access)
    }
    #[inline(always)]
    fn accessed_bit(&self) -> Option<u64> {
        self.f.accessed_bit()
    }
    /// The one changed rule: no Access flag fault with AFFD.
    #[inline(always)]
    fn access_flag_fault(&self, leaf: u64) -> bool {
        !self.affd && self.f.access_flag_fault(leaf)
    }
    #[inline(always)]
    fn dirty_bit(&self) -> Option<u64> {
        self.f.dirty_bit()
    }
    #[inline(always)]
    fn dirty_clear_bits(&self) -> u64 {
        self.f.dirty_clear_bits()
    }
    #[inline(always)]
    fn hardware_bits(&self, entry: u64) -> u64 {
        self.f.hardware_bits(entry)
    }
    #[inline(always)]
    fn tracks_dirty(&self) -> bool {
        self.f.tracks_dirty()
    }
    #[inline(always)]
    fn is_dirty(&self, leaf: u64) -> bool {
        self.f.is_dirty(leaf)
    }
    #[inline(always)]
    fn cleaned(&self, leaf: u64) -> u64 {
        self.f.cleaned(leaf)
    }
    #[inline(always)]
    fn supports(&self, size: PageSize) -> bool {
        self.f.supports(size)
    }
    #[inline(always)]
    fn encode_table(&self, table: u64) -> u64 {
        self.f.encode_table(table)
    }
    #[inline(always)]
    fn encode_leaf(&self, page: u64, size: PageSize, perm: Perm) -> u64 {
        self.f.encode_leaf(page, size, perm)
    }
    #[inline(always)]
    fn set_rights(&self, entry: u64, perm: Perm) -> u64 {
        self.f.set_rights(entry, perm)
    }
}
