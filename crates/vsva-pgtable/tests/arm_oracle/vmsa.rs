//! The VMSAv8-64 bits the oracle's tests write and read: stage 1 descriptor fields, TCR_EL1,
//! SCTLR_EL1 and ESR_EL1 fields (Arm ARM DDI 0487 K.a; Linux spells the same bits in
//! `arch/arm64/include/asm/pgtable-hwdef.h`, `sysreg.h` and `esr.h`).
//!
//! Kept apart from vsva's own `arm` module on purpose: the oracle must not share the code it
//! checks.

/// Stage 1 translation table descriptor fields, 4 KiB granule (D8.3 "Translation table
/// descriptor formats").
pub mod desc {
    /// Bit 0: valid. A descriptor with bit 0 clear is invalid (D8.3).
    pub const VALID: u64 = 1;
    /// Bits [1:0] = 0b11 at levels 0-2: a table descriptor.
    pub const TABLE: u64 = 0b11;
    /// Bits [1:0] = 0b11 at level 3: a page descriptor (0b01 there is reserved, D8.3).
    pub const PAGE: u64 = 0b11;
    /// Bits [1:0] = 0b01 at levels 1 and 2: a block descriptor (at level 0 only with DS = 1).
    pub const BLOCK: u64 = 0b01;
    /// AttrIndx, bits [4:2]: the MAIR_EL1 attribute field (D8.6 "Memory region attributes").
    pub const fn attr_indx(n: u64) -> u64 {
        (n & 7) << 2
    }
    /// AP[1], bit 6: EL0 access (D8.4 "Memory access control",
    /// "Stage 1 data access permissions").
    pub const AP_EL0: u64 = 1 << 6;
    /// AP[2], bit 7: read-only.
    pub const AP_RO: u64 = 1 << 7;
    /// SH, bits [9:8] = 0b11: Inner Shareable.
    pub const SH_INNER: u64 = 3 << 8;
    /// AF, bit 10: Access flag (D8.5 "Hardware updates to the translation tables").
    pub const AF: u64 = 1 << 10;
    /// nG, bit 11: not global.
    pub const NG: u64 = 1 << 11;
    /// DBM, bit 51: Dirty Bit Modifier (D8.5, "dirty state").
    pub const DBM: u64 = 1 << 51;
    /// PXN, bit 53: privileged execute-never (D8.4, "Instruction access permissions").
    pub const PXN: u64 = 1 << 53;
    /// UXN, bit 54: unprivileged execute-never.
    pub const UXN: u64 = 1 << 54;
    /// PXNTable, bit 59 (table descriptors: hierarchical controls, D8.4).
    pub const PXN_TABLE: u64 = 1 << 59;
    /// UXNTable, bit 60 (XNTable).
    pub const UXN_TABLE: u64 = 1 << 60;
    /// APTable[0], bit 61: no EL0 access below this table.
    pub const AP_TABLE_NO_EL0: u64 = 1 << 61;
    /// APTable[1], bit 62: no write access at any EL below this table.
    pub const AP_TABLE_RO: u64 = 1 << 62;
    /// The output address / next-level table address, bits [47:12] (4 KiB granule, 48-bit OA).
    pub const OA: u64 = 0x0000_ffff_ffff_f000;
}

/// TCR_EL1 fields for the TTBR0 half and the global ones (its register description, chapter D19).
pub mod tcr {
    /// T0SZ, bits [5:0]: the TTBR0 region is 2^(64 - T0SZ) bytes.
    pub const fn t0sz(va_bits: u64) -> u64 {
        64 - va_bits
    }
    /// IRGN0 = ORGN0 = 0b01 (Write-Back Read-Allocate Write-Allocate walks), SH0 = 0b11
    /// (Inner Shareable); TG0 = 0b00 (4 KiB granule).
    pub const WALK_WBWA_INNER: u64 = (1 << 8) | (1 << 10) | (3 << 12);
    /// IPS, bits [34:32]: intermediate physical address size, 0b000 = 32 bits ... 0b101 = 48.
    pub const fn ips(field: u64) -> u64 {
        (field & 7) << 32
    }
    pub const IPS_32: u64 = ips(0b000);
    pub const IPS_40: u64 = ips(0b010);
    pub const IPS_48: u64 = ips(0b101);
    /// HA, bit 39: hardware Access flag update (FEAT_HAFDBS, D8.5).
    pub const HA: u64 = 1 << 39;
    /// HD, bit 40: hardware dirty state management (with HA; D8.5).
    pub const HD: u64 = 1 << 40;
    /// The TTBR1 half (T1SZ, A1, EPD1, IRGN1, ORGN1, SH1, TG1, TBI1, HPD1, TBID1, E0PD1 ...):
    /// the harness owns it, see `harness::TTBR1_BASE`.
    pub const TTBR1_FIELDS: u64 = 0xffff_0000 | (1 << 38) | (1 << 42) | (1 << 52) | (1 << 56);
}

/// SCTLR_EL1 bits (its register description, chapter D19).
pub mod sctlr {
    /// M, bit 0: stage 1 MMU enable (the harness always sets it).
    pub const M: u64 = 1;
    /// C, bit 2: data cacheability.
    pub const C: u64 = 1 << 2;
    /// I, bit 12: instruction cacheability.
    pub const I: u64 = 1 << 12;
    /// WXN, bit 19: writable implies execute-never (D8.4).
    pub const WXN: u64 = 1 << 19;
    /// SPAN, bit 23: 1 = PSTATE.PAN is left alone on exception entry to EL1, so a fault
    /// taken by one probe does not turn PAN on for the next.
    pub const SPAN: u64 = 1 << 23;
    /// Bits that are RES1 in Armv8.0 (EOS 11, TSCXT 20, EIS 22, nTLSMD 28, LSMAOE 29): kept
    /// at 1, their Armv8.0 behaviour.
    pub const RES1: u64 = (1 << 11) | (1 << 20) | (1 << 22) | (1 << 28) | (1 << 29);
    /// The oracle's default: MMU and caches on, no WXN, no alignment checks, PAN untouched.
    pub const DEFAULT: u64 = M | C | I | SPAN | RES1;
}

/// ESR_EL1 (its register description, chapter D19: "ISS encoding for an exception from
/// a Data Abort" and "... from an Instruction Abort").
pub mod esr {
    /// Exception Class, bits [31:26].
    pub const fn ec(esr: u64) -> u8 {
        ((esr >> 26) & 0x3f) as u8
    }
    /// EC 0x00: unknown reason (e.g. an undefined instruction fetched by a probe).
    pub const EC_UNKNOWN: u8 = 0x00;
    /// EC 0x15: SVC from AArch64 (how code a fetch probe reached returns).
    pub const EC_SVC64: u8 = 0x15;
    /// EC 0x20: Instruction Abort from a lower Exception level (an EL0 fetch).
    pub const EC_IABT_LOW: u8 = 0x20;
    /// EC 0x21: Instruction Abort taken without a change in Exception level (EL1 fetch).
    pub const EC_IABT_CUR: u8 = 0x21;
    /// EC 0x24: Data Abort from a lower Exception level.
    pub const EC_DABT_LOW: u8 = 0x24;
    /// EC 0x25: Data Abort taken without a change in Exception level (EL1 accesses, and
    /// `LDTR`/`STTR` executed at EL1).
    pub const EC_DABT_CUR: u8 = 0x25;
    /// IL, bit 25: 32-bit instruction.
    pub const IL: u64 = 1 << 25;
    /// WnR, bit 6 of a Data Abort ISS: the access was a write.
    pub const WNR: u64 = 1 << 6;
    /// DFSC/IFSC, bits [5:0].
    pub const fn fsc(esr: u64) -> u8 {
        (esr & 0x3f) as u8
    }
}

/// A fault status code (DFSC/IFSC) decoded as far as stage 1 walks go (ESR_EL1,
/// "DFSC, bits [5:0]"): the group and the lookup level it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultStatus {
    /// 0b0000LL: Address size fault, level LL.
    AddressSize(u8),
    /// 0b0001LL: Translation fault, level LL.
    Translation(u8),
    /// 0b0010LL: Access flag fault, level LL (level 0 only with FEAT_LPA2).
    AccessFlag(u8),
    /// 0b0011LL: Permission fault, level LL.
    Permission(u8),
    /// Any other code (external aborts, alignment, TLB conflict ...), raw.
    Other(u8),
}

impl FaultStatus {
    pub const fn decode(fsc: u8) -> Self {
        let level = fsc & 3;
        match fsc >> 2 {
            0 => Self::AddressSize(level),
            1 => Self::Translation(level),
            2 => Self::AccessFlag(level),
            3 => Self::Permission(level),
            _ => Self::Other(fsc),
        }
    }

    pub const fn encode(self) -> u8 {
        match self {
            Self::AddressSize(l) => l & 3,
            Self::Translation(l) => 0b0100 | (l & 3),
            Self::AccessFlag(l) => 0b1000 | (l & 3),
            Self::Permission(l) => 0b1100 | (l & 3),
            Self::Other(fsc) => fsc,
        }
    }
}
