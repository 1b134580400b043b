//! The CPU page-table format of a memory manager's processes: x86-64 or Arm64 (VMSAv8-64
//! stage 1), chosen once per [`MemoryManager`](crate::MemoryManager) by the machine.
//!
//! Dispatch: a process's table is a [`CpuTable`], an enum of the two monomorphic
//! `PageTable`s. Each of its methods matches once and then runs the generic code of
//! vsva-pgtable for one format, so a walk, a range walk or an unmap costs one predictable
//! branch per call, never one per entry. (An enum implementing [`vsva_pgtable::Format`] would
//! match in every entry method, and cannot: the trait's `ACCESSED_IN_TABLES` and
//! `TABLE_RIGHTS` are constants, true for x86 and false for Arm.) [`CpuPaging`] carries the
//! configuration and the memory manager's own view of an entry — software PTEs (see
//! [`crate::softpte`]) and the dirty state — matched per call in the same way.
//!
//! # Arm64 processes (as Linux arm64 runs them)
//!
//! * 4 KiB granule, 48-bit VA (T0SZ = 16: 4 lookup levels), the TTBR0 range; user space is
//!   `[0, 2^48)` (Linux `TASK_SIZE_64`).
//! * User leaves: AP\[1\] = 1 (EL0 access), nG = 1 (tagged with the process's ASID), PXN = 1,
//!   UXN = 1 unless `PROT_EXEC`, AttrIndx = 0 (`MT_NORMAL`), Inner Shareable — Linux's
//!   `PAGE_READONLY`/`PAGE_SHARED`/`*_EXEC` in `arch/arm64/include/asm/pgtable-prot.h`.
//! * AF is set in every leaf the memory manager writes, as Linux does (`PTE_AF` is part of
//!   `_PROT_DEFAULT`): a CPU or SMMU without hardware Access-flag management never takes an
//!   Access flag fault on a page the OS mapped. TCR.HA and TCR.HD are on by default
//!   ([`ArmS1::default`]), as Linux sets them when the CPU has FEAT_HAFDBS (`__cpu_setup`),
//!   so hardware keeps the dirty state and an SMMU's CD.HA/HD can follow.
//! * Writable pages are mapped as Linux maps them, `PTE_WRITE` being DBM (bit 51):
//!   writable-clean = DBM = 1, AP\[2\] = 1 (after a read fault); writable-dirty = DBM = 1,
//!   AP\[2\] = 0 (after a write fault, or a hardware write to a writable-clean page, which
//!   clears AP\[2\]). Write permission taken away from a hardware-dirty page (fork's
//!   write-protect, mprotect) keeps the dirty state in the software bit 55 (Linux
//!   `PTE_DIRTY`, set by `pte_wrprotect`/`pte_modify`). A page is dirty when it is
//!   writable-dirty or has bit 55 set (Linux `pte_dirty` = `pte_hw_dirty || pte_sw_dirty`).
//!   Without TCR.HD, DBM is never set and every writable page counts as dirty.

use std::sync::Arc;

use vsva_mem::{Access, FrameAllocator, PageSize, PhysMem};
use vsva_pgtable::arm::{self, ArmS1};
use vsva_pgtable::x86::{X86Flags, X86Paging};
use vsva_pgtable::{Fault, Format, Leaf, PageTable, Perm, Translation, Unmapped};

use crate::softpte::{self, PteKind};

/// The architecture of a process (its CPU's MMU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CpuArch {
    /// x86-64: 4- or 5-level paging (Intel SDM Vol. 3 §4.5).
    X86_64,
    /// Arm64: VMSAv8-64 stage 1, 4 KiB granule (Arm DDI 0487, chapter D8).
    Arm64,
}

/// The page-table format of a memory manager's processes, with its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuPaging {
    /// x86-64 paging with the CPU features it names.
    X86_64(X86Paging),
    /// Arm64 stage 1 as [`CpuPaging::arm64`] normalises it.
    Arm64(ArmS1),
}

/// Linux arm64's software dirty bit (`PTE_DIRTY`, bit 55: one of the bits 58:55 that the Arm
/// ARM reserves for software use in block and page descriptors, D8 "Stage 1 descriptors").
pub const ARM_SW_DIRTY: u64 = 1 << 55;

/// Linux arm64's MAIR_EL1 (`MAIR_EL1_SET` in `arch/arm64/mm/proc.S`, indices from
/// `asm/memory.h`): 0 `MT_NORMAL` = 0xff (Normal, Inner/Outer Write-Back RW-allocate),
/// 1 `MT_NORMAL_TAGGED` = 0xff (0xf0 once MTE is on; not modelled), 2 `MT_NORMAL_NC` = 0x44,
/// 3 `MT_DEVICE_nGnRnE` = 0x00, 4 `MT_DEVICE_nGnRE` = 0x04. User pages use index 0.
pub const LINUX_MAIR_EL1: u64 = 0x0000_0004_0044_ffff;

impl CpuPaging {
    /// An Arm64 configuration for processes from `mmu`: its PA size (`pa_bits`) and hardware
    /// AF/dirty management (`ha`, `hd`) are kept; the rest is what an OS gives user space —
    /// 48-bit VA in the TTBR0 range, nG leaves, PAN and WXN off (they concern EL1 accesses
    /// and W^X policy, not the page table).
    pub fn arm64(mmu: ArmS1) -> CpuPaging {
        CpuPaging::Arm64(ArmS1 {
            tsz: 16,
            upper: false,
            pa_bits: mmu.pa_bits.min(48),
            ha: mmu.ha,
            hd: mmu.hd && mmu.ha,
            hpd: false,
            pan: false,
            wxn: false,
            non_global: true,
            affd: false,
        })
    }

    /// The architecture.
    pub fn arch(&self) -> CpuArch {
        match self {
            CpuPaging::X86_64(_) => CpuArch::X86_64,
            CpuPaging::Arm64(_) => CpuArch::Arm64,
        }
    }

    /// The x86 configuration, if this is x86-64.
    pub fn x86(&self) -> Option<X86Paging> {
        match self {
            CpuPaging::X86_64(p) => Some(*p),
            CpuPaging::Arm64(_) => None,
        }
    }

    /// The Arm stage-1 configuration, if this is Arm64.
    pub fn arm64_config(&self) -> Option<ArmS1> {
        match self {
            CpuPaging::Arm64(p) => Some(*p),
            CpuPaging::X86_64(_) => None,
        }
    }

    /// Levels of the table (the root is at this level; x86: 4 or 5, Arm64: 4).
    pub fn levels(&self) -> u8 {
        match self {
            CpuPaging::X86_64(p) => p.levels,
            CpuPaging::Arm64(p) => p.levels(),
        }
    }

    /// Virtual-address width.
    pub fn va_bits(&self) -> u32 {
        match self {
            CpuPaging::X86_64(p) => p.va_bits(),
            CpuPaging::Arm64(p) => p.input_bits().unwrap_or(48),
        }
    }

    /// Highest user address + 1 (Linux `TASK_SIZE`): x86, the lower canonical half minus a
    /// guard page; Arm64, the whole TTBR0 range.
    pub fn task_size(&self) -> u64 {
        match self {
            CpuPaging::X86_64(_) => (1u64 << (self.va_bits() - 1)) - PageSize::Size4K.bytes(),
            CpuPaging::Arm64(_) => 1u64 << self.va_bits(),
        }
    }

    /// Can user mappings use pages of `size`? (x86: 1 GiB needs the CPU feature; Arm64's
    /// 4 KiB granule has 2 MiB and 1 GiB blocks.)
    pub fn supports(&self, size: PageSize) -> bool {
        match self {
            CpuPaging::X86_64(p) => size != PageSize::Size1G || p.page_1g,
            CpuPaging::Arm64(p) => p.supports(size),
        }
    }

    /// Does hardware record writes in the leaves (x86 A/D; Arm TCR.HD with DBM)?
    pub fn hardware_dirty(&self) -> bool {
        match self {
            CpuPaging::X86_64(p) => p.ad,
            CpuPaging::Arm64(p) => p.tracks_dirty(),
        }
    }

    /// The page address of a leaf entry (present, or `PROT_NONE` with its frame kept).
    #[inline]
    pub fn page_addr(&self, entry: u64, size: PageSize) -> u64 {
        match self {
            CpuPaging::X86_64(p) => p.page_addr(entry, size),
            CpuPaging::Arm64(p) => p.page_addr(entry, size),
        }
    }

    /// Rights of a present leaf.
    #[inline]
    pub fn rights(&self, entry: u64) -> Perm {
        match self {
            CpuPaging::X86_64(p) => p.rights(entry),
            CpuPaging::Arm64(p) => p.rights(entry),
        }
    }

    /// What the memory manager finds in a leaf entry.
    #[inline]
    pub fn classify(&self, entry: u64) -> PteKind {
        match self {
            CpuPaging::X86_64(_) => softpte::x86::classify(entry),
            CpuPaging::Arm64(_) => softpte::arm::classify(entry),
        }
    }

    /// The swap entry naming `slot`.
    #[inline]
    pub fn swap_entry(&self, slot: u64) -> u64 {
        match self {
            CpuPaging::X86_64(_) => softpte::x86::swap_entry(slot),
            CpuPaging::Arm64(_) => softpte::arm::swap_entry(slot),
        }
    }

    /// A present leaf made inaccessible (`PROT_NONE`), its frame and state kept.
    #[inline]
    pub fn prot_none(&self, present: u64) -> u64 {
        match self {
            CpuPaging::X86_64(_) => softpte::x86::prot_none(present),
            CpuPaging::Arm64(_) => softpte::arm::prot_none(present),
        }
    }

    /// A `PROT_NONE` entry made present again (rights to be set by the caller).
    #[inline]
    pub fn from_prot_none(&self, entry: u64) -> u64 {
        match self {
            CpuPaging::X86_64(_) => softpte::x86::from_prot_none(entry),
            CpuPaging::Arm64(_) => softpte::arm::from_prot_none(entry),
        }
    }

    /// Is this leaf (present or `PROT_NONE`) dirty: written since it was mapped or last
    /// cleaned? x86: D. Arm64: writable-dirty (DBM = 1, AP\[2\] = 0) or the software dirty
    /// bit (Linux `pte_dirty`); without TCR.HD, any writable page.
    #[inline]
    pub fn is_dirty(&self, entry: u64) -> bool {
        match self {
            CpuPaging::X86_64(_) => entry & X86Flags::D.bits() != 0,
            CpuPaging::Arm64(p) => {
                entry & ARM_SW_DIRTY != 0
                    || entry & (arm::DBM | arm::AP2) == arm::DBM
                    || (!p.tracks_dirty() && entry & arm::AP2 == 0)
            }
        }
    }

    /// The present leaf made clean: x86 D cleared; Arm64 AP\[2\] set again on a DBM leaf
    /// (writable-clean) and the software dirty bit cleared.
    #[inline]
    pub(crate) fn cleaned(&self, entry: u64) -> u64 {
        match self {
            CpuPaging::X86_64(_) => entry & !X86Flags::D.bits(),
            CpuPaging::Arm64(p) => p.cleaned(entry) & !ARM_SW_DIRTY,
        }
    }

    /// A present leaf with its rights replaced by `perm`, its Accessed and dirty state kept
    /// (Linux `pte_modify`; on Arm64 a hardware-dirty page losing write permission keeps its
    /// dirty state in the software bit, and a writable page stays clean unless dirty).
    #[inline]
    pub(crate) fn modify(&self, entry: u64, perm: Perm) -> u64 {
        match self {
            CpuPaging::X86_64(p) => p.set_rights(entry, perm),
            CpuPaging::Arm64(p) => {
                let dirty = self.is_dirty(entry);
                let mut e = p.set_rights(entry, perm);
                if dirty {
                    e |= ARM_SW_DIRTY;
                } else {
                    e = p.cleaned(e);
                }
                e
            }
        }
    }

    /// The entry a write fault makes of a present leaf that already allows writes but is
    /// writable-clean (Arm64 DBM = 1, AP\[2\] = 1): writable-dirty, as Linux's
    /// `handle_pte_fault` does (`pte_mkdirty`) for an agent that does not manage dirty state
    /// in hardware — an SMMU without HTTU, a CPU without TCR.HD. `None` on x86 (hardware
    /// sets D) and for any other entry.
    #[inline]
    pub(crate) fn write_fault_dirty(&self, entry: u64) -> Option<u64> {
        match self {
            CpuPaging::X86_64(_) => None,
            CpuPaging::Arm64(_) => {
                (entry & (arm::DBM | arm::AP2) == arm::DBM | arm::AP2).then_some(entry & !arm::AP2)
            }
        }
    }

    /// The present leaf marked dirty (Linux `pte_mkdirty`): x86 D set; Arm64 AP\[2\] cleared
    /// on a DBM page (writable-dirty), the software dirty bit set on any other.
    #[inline]
    pub(crate) fn mkdirty(&self, entry: u64) -> u64 {
        match self {
            CpuPaging::X86_64(_) => entry | X86Flags::D.bits(),
            CpuPaging::Arm64(_) => match self.write_fault_dirty(entry) {
                Some(dirty) => dirty,
                None if self.is_dirty(entry) => entry,
                None => entry | ARM_SW_DIRTY,
            },
        }
    }

    /// A leaf mapping `pa` with `perm` whose contents are not in sync with anything (a copy,
    /// a page read back from swap whose slot is then freed): dirty on both formats.
    #[inline]
    pub(crate) fn dirty_leaf(&self, pa: u64, size: PageSize, perm: Perm) -> u64 {
        match self {
            CpuPaging::X86_64(p) => p.encode_leaf(pa, size, perm),
            CpuPaging::Arm64(p) => {
                let e = p.encode_leaf(pa, size, perm);
                if perm.contains(Perm::WRITE) && p.tracks_dirty() {
                    e
                } else {
                    e | ARM_SW_DIRTY
                }
            }
        }
    }
}

/// A process's page table, in its architecture's format. Each method dispatches once.
pub(crate) enum CpuTable {
    X86_64(PageTable<X86Paging>),
    Arm64(PageTable<ArmS1>),
}

/// Runs `$e` with `$pt` bound to the monomorphic `PageTable` inside `$t`.
macro_rules! on_table {
    ($t:expr, $pt:ident => $e:expr) => {
        match $t {
            CpuTable::X86_64($pt) => $e,
            CpuTable::Arm64($pt) => $e,
        }
    };
}

impl CpuTable {
    pub(crate) fn new(
        paging: CpuPaging,
        frames: Arc<FrameAllocator>,
    ) -> vsva_pgtable::table::Result<Self> {
        Ok(match paging {
            CpuPaging::X86_64(p) => CpuTable::X86_64(PageTable::new(p, frames)?),
            CpuPaging::Arm64(p) => CpuTable::Arm64(PageTable::new(p, frames)?),
        })
    }

    pub(crate) fn paging(&self) -> CpuPaging {
        match self {
            CpuTable::X86_64(pt) => CpuPaging::X86_64(*pt.format()),
            CpuTable::Arm64(pt) => CpuPaging::Arm64(*pt.format()),
        }
    }

    pub(crate) fn root(&self) -> u64 {
        on_table!(self, pt => pt.root())
    }

    pub(crate) fn memory(&self) -> &dyn PhysMem {
        on_table!(self, pt => pt.memory())
    }

    #[inline]
    pub(crate) fn walk(&self, va: u64, access: Access) -> Result<Translation, Fault> {
        on_table!(self, pt => pt.walk(va, access))
    }

    #[inline]
    pub(crate) fn lookup(&self, va: u64) -> Option<Leaf> {
        on_table!(self, pt => pt.lookup(va))
    }

    /// Maps a fresh page at `va` for a fault of `access`, if the slot is empty: x86 as the
    /// format encodes it (hardware sets A/D on use); Arm64 with AF set, writable-dirty after
    /// a write fault, writable-clean after a read fault. Returns false if something
    /// is there already (another fault won).
    pub(crate) fn install(
        &self,
        va: u64,
        pa: u64,
        size: PageSize,
        perm: Perm,
        access: Access,
    ) -> vsva_pgtable::table::Result<bool> {
        let mapped = match self {
            CpuTable::X86_64(pt) => pt.map(va, pa, size, perm),
            CpuTable::Arm64(pt) => {
                let mapped = pt.map(va, pa, size, perm);
                let fmt = pt.format();
                if mapped.is_ok() && !access.is_write() && perm.contains(Perm::WRITE) {
                    // `map` encodes a writable leaf writable-dirty; a read fault's page is
                    // writable-clean. One compare-and-swap: if it fails, hardware used the
                    // entry meanwhile (set AF, or cleared AP[2] on a write) and what it left
                    // is right.
                    if let Some(leaf) = pt.lookup(va) {
                        let dirty = fmt.encode_leaf(pa, size, perm);
                        if leaf.entry == dirty {
                            pt.replace_entry(leaf.slot, dirty, fmt.cleaned(dirty))?;
                        }
                    }
                }
                mapped
            }
        };
        match mapped {
            Ok(()) => Ok(true),
            Err(vsva_pgtable::MapError::AlreadyMapped { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn set_leaf(
        &self,
        va: u64,
        size: PageSize,
        value: u64,
    ) -> vsva_pgtable::table::Result<u64> {
        on_table!(self, pt => pt.set_leaf(va, size, value))
    }

    pub(crate) fn replace_entry(
        &self,
        slot: u64,
        old: u64,
        new: u64,
    ) -> vsva_pgtable::table::Result<bool> {
        on_table!(self, pt => pt.replace_entry(slot, old, new))
    }

    pub(crate) fn unmap(&self, va: u64, len: u64) -> vsva_pgtable::table::Result<Unmapped> {
        on_table!(self, pt => pt.unmap(va, len))
    }

    pub(crate) fn free_tables(&self, tables: &[u64]) -> vsva_pgtable::table::Result<()> {
        on_table!(self, pt => pt.free_tables(tables))
    }

    pub(crate) fn for_each_leaf(
        &self,
        va: u64,
        len: u64,
        f: &mut dyn FnMut(&Leaf) -> vsva_pgtable::table::Result<()>,
    ) -> vsva_pgtable::table::Result<()> {
        on_table!(self, pt => pt.for_each_leaf(va, len, f))
    }

    pub(crate) fn destroy(self) -> vsva_pgtable::table::Result<()> {
        on_table!(self, pt => pt.destroy())
    }
}
