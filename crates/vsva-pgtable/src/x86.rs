//! x86-64 4-level and 5-level paging (Intel SDM Vol. 3 §4.5–4.8): the format of the CPU's page
//! tables, and of VT-d's first-stage tables (VT-d 4.1 §3.6, §9.7), which SVA shares between
//! the CPU and devices.
//!
//! Entry bits (SDM Tables 4-15 to 4-20; 5-level: Table 4-14):
//!
//! | bit | name | meaning |
//! |---|---|---|
//! | 0 | P | present |
//! | 1 | R/W | writes allowed (intersected over levels) |
//! | 2 | U/S | user accesses allowed (intersected over levels) |
//! | 3, 4 | PWT, PCD | caching (not modelled) |
//! | 5 | A | accessed, set by hardware in every entry used |
//! | 6 | D | dirty, set by hardware in the leaf on a write |
//! | 7 | PS / PAT | page size in PDPTE/PDE (reserved in PML4E/PML5E); PAT in a PTE |
//! | 8 | G | global (leaf) |
//! | 10 | EA | VT-d first stage only: extended accessed, set with A when EAFE=1 |
//! | 12 | PAT | PAT of a 2 MiB / 1 GiB leaf |
//! | M-1:12 | address | next table, or page frame (M = MAXPHYADDR) |
//! | 51:M | — | reserved |
//! | 63 | XD | execute disable (reserved when EFER.NXE = 0) |

use bitflags::bitflags;
use vsva_mem::{Access, PageSize};

use crate::fault::{Fault, FaultReason, Stage};
use crate::format::{ADDR_MASK, Format, PS, bits_above};
use crate::perm::Perm;

bitflags! {
    /// The flag bits of an x86-64 paging entry (SDM §4.5).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct X86Flags: u64 {
        /// Present.
        const P = 1 << 0;
        /// Read/write.
        const RW = 1 << 1;
        /// User/supervisor.
        const US = 1 << 2;
        /// Page-level write-through.
        const PWT = 1 << 3;
        /// Page-level cache disable.
        const PCD = 1 << 4;
        /// Accessed.
        const A = 1 << 5;
        /// Dirty (leaves).
        const D = 1 << 6;
        /// Page size (PDPTE/PDE); PAT in a PTE.
        const PS = PS;
        /// Global (leaves).
        const G = 1 << 8;
        /// VT-d first stage: extended accessed (VT-d 4.1 §3.6.2).
        const EA = 1 << 10;
        /// PAT of a large leaf.
        const PAT_LARGE = 1 << 12;
        /// Execute disable.
        const XD = 1 << 63;
    }
}

/// Page-fault error code bits (SDM §4.7, Figure 4-12).
pub mod pf_error {
    /// 0: not-present; 1: protection violation (also set for reserved-bit faults).
    pub const P: u32 = 1 << 0;
    /// The access was a write.
    pub const W: u32 = 1 << 1;
    /// The access was a user-mode access.
    pub const U: u32 = 1 << 2;
    /// A reserved bit was set in some paging-structure entry.
    pub const RSVD: u32 = 1 << 3;
    /// The access was an instruction fetch (reported when NXE or SMEP is on).
    pub const ID: u32 = 1 << 4;
}

/// An x86-64 paging configuration: the parts of CR0, CR4, EFER and CPUID that change how a
/// table is walked, or, for VT-d first stage, the PASID-entry fields that play the same roles
/// (FSPM for levels, WPE for `wp`, EAFE for `extended_accessed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct X86Paging {
    /// 4 (48-bit linear addresses) or 5 (57-bit, CR4.LA57).
    pub levels: u8,
    /// MAXPHYADDR: output address width; bits 51:M of entries are reserved.
    pub maxphyaddr: u8,
    /// EFER.NXE: bit 63 is XD rather than reserved.
    pub nxe: bool,
    /// CR0.WP: supervisor writes honour R/W.
    pub wp: bool,
    /// CR4.SMEP: supervisor fetches from user pages fault.
    pub smep: bool,
    /// CR4.SMAP: supervisor data accesses to user pages fault (modelled with EFLAGS.AC = 0).
    pub smap: bool,
    /// CPUID.80000001H:EDX.Page1GB (VT-d: CAP.FS1GP): 1 GiB leaves allowed.
    pub page_1g: bool,
    /// Hardware sets A/D flags.
    pub ad: bool,
    /// VT-d EAFE: set EA (bit 10) together with A.
    pub extended_accessed: bool,
}

impl Default for X86Paging {
    /// A modern Linux process: 4 levels, MAXPHYADDR 46, NXE, WP, SMEP, SMAP, 1 GiB pages.
    fn default() -> Self {
        X86Paging {
            levels: 4,
            maxphyaddr: 46,
            nxe: true,
            wp: true,
            smep: true,
            smap: true,
            page_1g: true,
            ad: true,
            extended_accessed: false,
        }
    }
}

impl X86Paging {
    /// Linear-address width: 48 with 4 levels, 57 with 5.
    pub fn va_bits(&self) -> u32 {
        12 + 9 * self.levels.min(crate::format::MAX_LEVELS) as u32
    }

    #[inline]
    fn high_reserved(&self) -> u64 {
        let mut m = bits_above(self.maxphyaddr);
        if !self.nxe {
            m |= X86Flags::XD.bits();
        }
        m
    }

    /// The page-fault error code (SDM §4.7) a CPU reports for `fault` of `access`.
    pub fn error_code(&self, fault: &Fault, access: Access) -> u32 {
        let mut code = 0;
        match fault.reason {
            FaultReason::NotPresent => {}
            FaultReason::Reserved => code |= pf_error::P | pf_error::RSVD,
            _ => code |= pf_error::P,
        }
        if access.is_write() {
            code |= pf_error::W;
        }
        if access.is_user() {
            code |= pf_error::U;
        }
        if access.is_exec() && (self.nxe || self.smep) {
            code |= pf_error::ID;
        }
        code
    }
}

impl Format for X86Paging {
    const STAGE: Stage = Stage::First;

    #[inline]
    fn levels(&self) -> u8 {
        self.levels
    }

    /// Canonical: bits 63:N-1 all equal (N = 48 or 57), SDM §3.3.7.1; VT-d 4.1 §3.6.
    /// (A CPU raises #GP, not #PF, for a non-canonical address; VT-d reports fault 0x80.)
    #[inline]
    fn input_ok(&self, addr: u64) -> bool {
        self.canonical(addr) == addr
    }

    #[inline]
    fn canonical(&self, addr: u64) -> u64 {
        let shift = 64u32.saturating_sub(self.va_bits()).min(63);
        (((addr << shift) as i64) >> shift) as u64
    }

    #[inline]
    fn is_present(&self, entry: u64) -> bool {
        entry & X86Flags::P.bits() != 0
    }

    #[inline]
    fn has_reserved_bits(&self, entry: u64, level: u8) -> bool {
        if entry & self.high_reserved() != 0 {
            return true;
        }
        let ps = entry & PS != 0;
        match level {
            4 | 5 => ps,
            3 if ps => !self.page_1g || entry & 0x3fff_e000 != 0,
            2 if ps => entry & 0x1f_e000 != 0,
            _ => false,
        }
    }

    #[inline]
    fn rights(&self, entry: u64) -> Perm {
        let mut p = Perm::READ;
        if entry & X86Flags::RW.bits() != 0 {
            p |= Perm::WRITE;
        }
        if entry & X86Flags::US.bits() != 0 {
            p |= Perm::USER;
        }
        if !self.nxe || entry & X86Flags::XD.bits() == 0 {
            p |= Perm::EXEC;
        }
        p
    }

    /// SDM §4.6.1.
    #[inline]
    fn permits(&self, rights: Perm, access: Access) -> bool {
        let user_page = rights.contains(Perm::USER);
        if access.is_user() {
            if !user_page {
                return false;
            }
            if access.is_write() && !rights.contains(Perm::WRITE) {
                return false;
            }
        } else {
            let data = !access.is_exec();
            if data && user_page && self.smap {
                return false;
            }
            if access.is_write() && self.wp && !rights.contains(Perm::WRITE) {
                return false;
            }
            if access.is_exec() && user_page && self.smep {
                return false;
            }
        }
        !access.is_exec() || rights.contains(Perm::EXEC)
    }

    #[inline]
    fn accessed_bit(&self) -> Option<u64> {
        self.ad.then(|| {
            X86Flags::A.bits()
                | if self.extended_accessed {
                    X86Flags::EA.bits()
                } else {
                    0
                }
        })
    }

    #[inline]
    fn dirty_bit(&self) -> Option<u64> {
        self.ad.then_some(X86Flags::D.bits())
    }

    fn supports(&self, size: PageSize) -> bool {
        size != PageSize::Size1G || self.page_1g
    }

    fn encode_table(&self, table: u64) -> u64 {
        (table & ADDR_MASK) | (X86Flags::P | X86Flags::RW | X86Flags::US).bits()
    }

    fn encode_leaf(&self, page: u64, size: PageSize, perm: Perm) -> u64 {
        let ps = if size == PageSize::Size4K { 0 } else { PS };
        self.set_rights(
            (page & ADDR_MASK & !size.offset_mask()) | X86Flags::P.bits() | ps,
            perm,
        )
    }

    fn set_rights(&self, entry: u64, perm: Perm) -> u64 {
        let mut e = entry & !(X86Flags::RW | X86Flags::US | X86Flags::XD).bits();
        if perm.contains(Perm::WRITE) {
            e |= X86Flags::RW.bits();
        }
        if perm.contains(Perm::USER) {
            e |= X86Flags::US.bits();
        }
        if self.nxe && !perm.contains(Perm::EXEC) {
            e |= X86Flags::XD.bits();
        }
        e
    }
}

#[cfg(test)]
mod tests;
