//! The SMMU register file (IHI 0070 §6.3): offsets of page 0 and page 1, the ID registers,
//! control registers, GBPA, interrupt control, GERROR and the table and queue registers.

use bitfield_struct::bitfield;
use bitflags::bitflags;

/// Register offsets (§6.2, Table 6-1 "SMMU register map"). Page 1 is at 64 KiB.
pub mod offset {
    /// Identification register 0 (32).
    pub const IDR0: u64 = 0x00;
    /// Identification register 1 (32).
    pub const IDR1: u64 = 0x04;
    /// Identification register 2 (32).
    pub const IDR2: u64 = 0x08;
    /// Identification register 3 (32).
    pub const IDR3: u64 = 0x0c;
    /// Identification register 4 (32, IMPLEMENTATION DEFINED).
    pub const IDR4: u64 = 0x10;
    /// Identification register 5 (32).
    pub const IDR5: u64 = 0x14;
    /// Implementation identification (32).
    pub const IIDR: u64 = 0x18;
    /// Architecture version (32).
    pub const AIDR: u64 = 0x1c;
    /// Control 0 (32).
    pub const CR0: u64 = 0x20;
    /// Control 0 acknowledge (32).
    pub const CR0ACK: u64 = 0x24;
    /// Control 1: table and queue memory attributes (32).
    pub const CR1: u64 = 0x28;
    /// Control 2 (32).
    pub const CR2: u64 = 0x2c;
    /// Status (32).
    pub const STATUSR: u64 = 0x40;
    /// Global bypass attributes (32).
    pub const GBPA: u64 = 0x44;
    /// Alternate global bypass attributes (32, optional: RAZ/WI here).
    pub const AGBPA: u64 = 0x48;
    /// Interrupt control (32).
    pub const IRQ_CTRL: u64 = 0x50;
    /// Interrupt control acknowledge (32).
    pub const IRQ_CTRLACK: u64 = 0x54;
    /// Global errors (32, read-only).
    pub const GERROR: u64 = 0x60;
    /// Global errors acknowledge (32).
    pub const GERRORN: u64 = 0x64;
    /// GERROR MSI address (64).
    pub const GERROR_IRQ_CFG0: u64 = 0x68;
    /// GERROR MSI data (32).
    pub const GERROR_IRQ_CFG1: u64 = 0x70;
    /// GERROR MSI attributes (32).
    pub const GERROR_IRQ_CFG2: u64 = 0x74;
    /// Stream table base (64).
    pub const STRTAB_BASE: u64 = 0x80;
    /// Stream table configuration (32).
    pub const STRTAB_BASE_CFG: u64 = 0x88;
    /// Command queue base (64).
    pub const CMDQ_BASE: u64 = 0x90;
    /// Command queue producer index (32).
    pub const CMDQ_PROD: u64 = 0x98;
    /// Command queue consumer index (32).
    pub const CMDQ_CONS: u64 = 0x9c;
    /// Event queue base (64).
    pub const EVENTQ_BASE: u64 = 0xa0;
    /// Event queue MSI address (64).
    pub const EVENTQ_IRQ_CFG0: u64 = 0xb0;
    /// Event queue MSI data (32).
    pub const EVENTQ_IRQ_CFG1: u64 = 0xb8;
    /// Event queue MSI attributes (32).
    pub const EVENTQ_IRQ_CFG2: u64 = 0xbc;
    /// PRI queue base (64).
    pub const PRIQ_BASE: u64 = 0xc0;
    /// PRI queue MSI address (64).
    pub const PRIQ_IRQ_CFG0: u64 = 0xd0;
    /// PRI queue MSI data (32).
    pub const PRIQ_IRQ_CFG1: u64 = 0xd8;
    /// PRI queue MSI attributes (32).
    pub const PRIQ_IRQ_CFG2: u64 = 0xdc;
    /// Start of page 1.
    pub const PAGE1: u64 = 0x1_0000;
    /// Event queue producer index (32, page 1).
    pub const EVENTQ_PROD: u64 = PAGE1 + 0xa8;
    /// Event queue consumer index (32, page 1).
    pub const EVENTQ_CONS: u64 = PAGE1 + 0xac;
    /// PRI queue producer index (32, page 1).
    pub const PRIQ_PROD: u64 = PAGE1 + 0xc8;
    /// PRI queue consumer index (32, page 1).
    pub const PRIQ_CONS: u64 = PAGE1 + 0xcc;
    /// Size of the register window (two 64 KiB pages).
    pub const WINDOW: u64 = 0x2_0000;
}

/// SMMU_IDR0 (§6.3.1).
#[bitfield(u32)]
#[derive(PartialEq, Eq)]
pub struct Idr0 {
    /// Stage 2 translation supported.
    pub s2p: bool,
    /// Stage 1 translation supported.
    pub s1p: bool,
    /// Translation table formats: 0b10 AArch64, 0b11 AArch32 and AArch64.
    #[bits(2)]
    pub ttf: u8,
    /// Coherent access to tables and queues.
    pub cohacc: bool,
    /// Broadcast TLB maintenance.
    pub btm: bool,
    /// Hardware translation table update: 0 none, 1 Access flag, 2 Access flag and dirty.
    #[bits(2)]
    pub httu: u8,
    /// Dormant hint.
    pub dormhint: bool,
    /// Hypervisor stage 1 contexts (EL2 commands, STRW = EL2).
    pub hyp: bool,
    /// PCIe ATS.
    pub ats: bool,
    /// Split-stage (stage 1 only) ATS not supported.
    pub ns1ats: bool,
    /// 16-bit ASIDs.
    pub asid16: bool,
    /// Message-signalled interrupts.
    pub msi: bool,
    /// Wake-up events (SEV) on CMD_SYNC and queue updates.
    pub sev: bool,
    /// Address translation operations.
    pub atos: bool,
    /// PCIe PRI.
    pub pri: bool,
    /// VMID wildcard matching.
    pub vmw: bool,
    /// 16-bit VMIDs.
    pub vmid16: bool,
    /// Two-level context-descriptor tables.
    pub cd2l: bool,
    /// Virtual ATOS.
    pub vatos: bool,
    /// Table endianness: 0 mixed, 2 little, 3 big.
    #[bits(2)]
    pub ttendian: u8,
    /// ATS error reporting.
    pub atsrecerr: bool,
    /// Stall model: 0 stall and terminate, 1 terminate only, 2 stall forced.
    #[bits(2)]
    pub stall_model: u8,
    /// Terminate model: 1 means terminated transactions always abort.
    pub term_model: bool,
    /// Stream table levels: 0 linear, 1 linear and two-level.
    #[bits(2)]
    pub st_level: u8,
    #[bits(3)]
    __: u8,
}

/// IDR0.STALL_MODEL values.
pub mod stall_model {
    /// Stall and terminate models both supported.
    pub const STALL: u8 = 0;
    /// Stall not supported.
    pub const TERMINATE: u8 = 1;
    /// Stall forced: every fault stalls.
    pub const FORCE: u8 = 2;
}

/// SMMU_IDR1 (§6.3.2).
#[bitfield(u32)]
#[derive(PartialEq, Eq)]
pub struct Idr1 {
    /// StreamID bits.
    #[bits(6)]
    pub sidsize: u8,
    /// SubstreamID bits.
    #[bits(5)]
    pub ssidsize: u8,
    /// log2 of the largest PRI queue.
    #[bits(5)]
    pub priqs: u8,
    /// log2 of the largest event queue.
    #[bits(5)]
    pub eventqs: u8,
    /// log2 of the largest command queue.
    #[bits(5)]
    pub cmdqs: u8,
    /// Attribute permissions override.
    pub attr_perms_ovr: bool,
    /// Attribute types override.
    pub attr_types_ovr: bool,
    /// Relative base pointers.
    pub rel: bool,
    /// Queue base registers fixed.
    pub queues_preset: bool,
    /// Table base registers fixed.
    pub tables_preset: bool,
    /// Enhanced command queues.
    pub ecmdq: bool,
}

/// SMMU_IDR3 (§6.3.4): the fields up to BBML.
#[bitfield(u32)]
#[derive(PartialEq, Eq)]
pub struct Idr3 {
    #[bits(2)]
    __: u8,
    /// Hierarchical attribute disable (CD.HAD0/1).
    pub had: bool,
    /// Page-based hardware attributes.
    pub pbha: bool,
    /// Stage 2 EL0/EL1 execute-never distinction.
    pub xnx: bool,
    /// PRI auto-responses use the PASID.
    pub pps: bool,
    #[bits(1)]
    __: u8,
    /// MPAM.
    pub mpam: bool,
    /// Stage 2 forced write-back (STE.S2FWB).
    pub fwb: bool,
    /// Small translation tables.
    pub stt: bool,
    /// Range-based TLB invalidation and level hint (TLBI NUM/SCALE/TTL/TG).
    pub ril: bool,
    /// Break-before-make level.
    #[bits(2)]
    pub bbml: u8,
    #[bits(19)]
    __: u32,
}

/// SMMU_IDR5 (§6.3.6).
#[bitfield(u32)]
#[derive(PartialEq, Eq)]
pub struct Idr5 {
    /// Output address size: 0 32, 1 36, 2 40, 3 42, 4 44, 5 48, 6 52 bits.
    #[bits(3)]
    pub oas: u8,
    #[bits(1)]
    __: u8,
    /// 4 KiB granule.
    pub gran4k: bool,
    /// 16 KiB granule.
    pub gran16k: bool,
    /// 64 KiB granule.
    pub gran64k: bool,
    #[bits(3)]
    __: u8,
    /// Virtual address extend: 1 means 52-bit VAs with 64 KiB granules.
    #[bits(2)]
    pub vax: u8,
    #[bits(4)]
    __: u8,
    /// Maximum number of outstanding stalled transactions.
    pub stall_max: u16,
}

/// The address width an OAS/IPS/PS encoding stands for (§6.3.6; `None` for reserved 7).
pub const fn pa_bits(encoding: u8) -> Option<u8> {
    Some(match encoding {
        0 => 32,
        1 => 36,
        2 => 40,
        3 => 42,
        4 => 44,
        5 => 48,
        6 => 52,
        _ => return None,
    })
}

bitflags! {
    /// SMMU_CR0 and SMMU_CR0ACK (§6.3.9, §6.3.10).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct Cr0: u32 {
        /// Translation enable.
        const SMMUEN = 1 << 0;
        /// PRI queue enable.
        const PRIQEN = 1 << 1;
        /// Event queue enable.
        const EVTQEN = 1 << 2;
        /// Command queue enable.
        const CMDQEN = 1 << 3;
        /// ATS translated-traffic check against STE.EATS.
        const ATSCHK = 1 << 4;
    }
}

/// SMMU_CR1 (§6.3.11): cacheability and shareability of table and queue accesses.
#[bitfield(u32)]
#[derive(PartialEq, Eq)]
pub struct Cr1 {
    /// Queue inner cacheability.
    #[bits(2)]
    pub queue_ic: u8,
    /// Queue outer cacheability.
    #[bits(2)]
    pub queue_oc: u8,
    /// Queue shareability.
    #[bits(2)]
    pub queue_sh: u8,
    /// Table inner cacheability.
    #[bits(2)]
    pub table_ic: u8,
    /// Table outer cacheability.
    #[bits(2)]
    pub table_oc: u8,
    /// Table shareability.
    #[bits(2)]
    pub table_sh: u8,
    #[bits(20)]
    __: u32,
}

bitflags! {
    /// SMMU_CR2 (§6.3.12).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct Cr2: u32 {
        /// EL2-E2H translation regime (needs IDR0.HYP).
        const E2H = 1 << 0;
        /// Record C_BAD_STREAMID for invalid StreamIDs.
        const RECINVSID = 1 << 1;
        /// Private TLB maintenance: ignore broadcast TLB maintenance.
        const PTM = 1 << 2;
    }
}

/// SMMU_GBPA (§6.3.14): the attributes of transactions bypassing while SMMUEN = 0.
#[bitfield(u32)]
#[derive(PartialEq, Eq)]
pub struct Gbpa {
    /// Memory type.
    #[bits(4)]
    pub memattr: u8,
    /// Memory type override.
    pub mtcfg: bool,
    #[bits(3)]
    __: u8,
    /// Allocation hints.
    #[bits(4)]
    pub alloccfg: u8,
    /// Shareability: 0b01 means use the incoming value.
    #[bits(2)]
    pub shcfg: u8,
    #[bits(2)]
    __: u8,
    /// Privilege override.
    #[bits(2)]
    pub privcfg: u8,
    /// Instruction/data override.
    #[bits(2)]
    pub instcfg: u8,
    /// Abort every incoming transaction while SMMUEN = 0 (instead of bypassing).
    pub abort: bool,
    #[bits(10)]
    __: u16,
    /// Update: set by software with the new value, cleared when it took effect.
    pub update: bool,
}

impl Gbpa {
    /// The bits a write may change (everything but Update and RES0).
    pub const FIELDS: u32 = 0x001f_3f1f;
}

bitflags! {
    /// SMMU_IRQ_CTRL and SMMU_IRQ_CTRLACK (§6.3.16, §6.3.18).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct IrqCtrl: u32 {
        /// GERROR interrupt enable.
        const GERROR_IRQEN = 1 << 0;
        /// PRI queue interrupt enable.
        const PRIQ_IRQEN = 1 << 1;
        /// Event queue interrupt enable.
        const EVTQ_IRQEN = 1 << 2;
    }
}

bitflags! {
    /// SMMU_GERROR and SMMU_GERRORN (§6.3.19, §6.3.20): an error is active while its bit
    /// differs between the two; the SMMU toggles GERROR, software toggles GERRORN back.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct Gerror: u32 {
        /// Command queue error (see CMDQ_CONS.ERR).
        const CMDQ_ERR = 1 << 0;
        /// Event queue write aborted.
        const EVTQ_ABT_ERR = 1 << 2;
        /// PRI queue write aborted.
        const PRIQ_ABT_ERR = 1 << 3;
        /// CMD_SYNC MSI write aborted.
        const MSI_CMDQ_ABT_ERR = 1 << 4;
        /// Event queue MSI write aborted.
        const MSI_EVTQ_ABT_ERR = 1 << 5;
        /// PRI queue MSI write aborted.
        const MSI_PRIQ_ABT_ERR = 1 << 6;
        /// GERROR MSI write aborted.
        const MSI_GERROR_ABT_ERR = 1 << 7;
        /// Service failure mode.
        const SFM_ERR = 1 << 8;
    }
}

/// SMMU_STRTAB_BASE (§6.3.24).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct StrtabBase {
    #[bits(6)]
    __: u8,
    /// Table address, bits 51:6.
    #[bits(46)]
    pub addr: u64,
    #[bits(10)]
    __: u16,
    /// Read-allocate hint.
    pub ra: bool,
    #[bits(1)]
    __: u8,
}

impl StrtabBase {
    /// The writable bits.
    pub const FIELDS: u64 = (1 << 62) | 0x000f_ffff_ffff_ffc0;
}

/// SMMU_STRTAB_BASE_CFG (§6.3.25).
#[bitfield(u32)]
#[derive(PartialEq, Eq)]
pub struct StrtabBaseCfg {
    /// log2 of the number of StreamIDs the table covers.
    #[bits(6)]
    pub log2size: u8,
    /// Two-level split: StreamID bits indexing the level-2 tables (6, 8 or 10).
    #[bits(5)]
    pub split: u8,
    #[bits(5)]
    __: u8,
    /// Format: 0 linear, 1 two-level.
    #[bits(2)]
    pub fmt: u8,
    #[bits(14)]
    __: u16,
}

impl StrtabBaseCfg {
    /// The writable bits.
    pub const FIELDS: u32 = 0x0003_07ff;
}

/// SMMU_CMDQ_BASE / EVENTQ_BASE / PRIQ_BASE (§6.3.26, §6.3.29, §6.3.33).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct QueueBase {
    /// log2 of the number of entries.
    #[bits(5)]
    pub log2size: u8,
    /// Queue address, bits 51:5.
    #[bits(47)]
    pub addr: u64,
    #[bits(10)]
    __: u16,
    /// Read (command queue) or write (output queues) allocate hint.
    pub rwa: bool,
    #[bits(1)]
    __: u8,
}

impl QueueBase {
    /// The writable bits.
    pub const FIELDS: u64 = (1 << 62) | 0x000f_ffff_ffff_ffff;
}

/// The queue index registers (§3.5, §6.3.27–28, the page 1 registers of §6.2.2).
pub mod queue {
    /// Bits 19:0 hold the index and, above it, the wrap bit.
    pub const WR_MASK: u32 = 0x000f_ffff;
    /// EVENTQ/PRIQ_PROD.OVFLG and _CONS.OVACKFLG.
    pub const OVERFLOW: u32 = 1 << 31;
    /// CMDQ_CONS.ERR, bits 30:24.
    pub const ERR_SHIFT: u32 = 24;
    /// CMDQ_CONS.ERR mask (after the shift).
    pub const ERR_MASK: u32 = 0x7f;
}

/// CMDQ_CONS.ERR codes (§7.1, Table 7-1).
pub mod cerror {
    /// No error.
    pub const NONE: u8 = 0;
    /// Unknown opcode or illegal command.
    pub const ILL: u8 = 1;
    /// External abort fetching a command.
    pub const ABT: u8 = 2;
    /// A CMD_SYNC behind an ATC invalidation that timed out.
    pub const ATC_INV_SYNC: u8 = 3;
}

/// *_IRQ_CFG0: the MSI address, bits 51:2 (§6.3.21).
pub const MSI_ADDR_MASK: u64 = 0x000f_ffff_ffff_fffc;
/// *_IRQ_CFG2: shareability (5:4) and memory attributes (3:0).
pub const MSI_CFG2_MASK: u32 = 0x3f;

#[cfg(test)]
mod tests {
    use super::*;

    // Values from Linux arm-smmu-v3.h's field macros, worked out by hand.

    #[test]
    fn idr0_fields_at_linux_positions() {
        // IDR0_ST_LVL GENMASK(28,27) = 1 -> 0x0800_0000; STALL_MODEL(25,24) = 2 -> 0x0200_0000;
        // TTENDIAN(22,21) = 2 -> 0x0040_0000; CD2L bit 19; PRI 16; SEV 14; MSI 13; ASID16 12;
        // ATS 10; HTTU(7,6) = 2 -> 0x80; TTF(3,2) = 2 -> 0x8; S1P bit 1; S2P bit 0.
        let v = Idr0::new()
            .with_st_level(1)
            .with_stall_model(2)
            .with_ttendian(2)
            .with_cd2l(true)
            .with_pri(true)
            .with_sev(true)
            .with_msi(true)
            .with_asid16(true)
            .with_ats(true)
            .with_httu(2)
            .with_ttf(2)
            .with_s1p(true)
            .with_s2p(true);
        assert_eq!(
            v.into_bits(),
            0x0800_0000
                | 0x0200_0000
                | 0x0040_0000
                | 1 << 19
                | 1 << 16
                | 1 << 14
                | 1 << 13
                | 1 << 12
                | 1 << 10
                | 0x80
                | 0x8
                | 0x2
                | 0x1
        );
        assert_eq!(Idr0::new().with_vmid16(true).into_bits(), 1 << 18);
        assert_eq!(Idr0::new().with_hyp(true).into_bits(), 1 << 9);
        assert_eq!(Idr0::new().with_cohacc(true).into_bits(), 1 << 4);
    }

    #[test]
    fn idr1_idr3_idr5_fields_at_linux_positions() {
        // CMDQS(25,21), EVTQS(20,16), PRIQS(15,11), SSIDSIZE(10,6), SIDSIZE(5,0).
        let v = Idr1::new()
            .with_cmdqs(19)
            .with_eventqs(18)
            .with_priqs(17)
            .with_ssidsize(20)
            .with_sidsize(32);
        assert_eq!(v.into_bits(), 19 << 21 | 18 << 16 | 17 << 11 | 20 << 6 | 32);
        assert_eq!(Idr1::new().with_tables_preset(true).into_bits(), 1 << 30);
        // Linux IDR3_RIL bit 10, IDR3_FWB bit 8; §6.3.4 HAD bit 2, XNX bit 4, BBML 12:11.
        assert_eq!(Idr3::new().with_ril(true).into_bits(), 1 << 10);
        assert_eq!(Idr3::new().with_fwb(true).into_bits(), 1 << 8);
        assert_eq!(Idr3::new().with_had(true).into_bits(), 1 << 2);
        assert_eq!(Idr3::new().with_xnx(true).into_bits(), 1 << 4);
        assert_eq!(Idr3::new().with_pps(true).into_bits(), 1 << 5);
        assert_eq!(Idr3::new().with_bbml(2).into_bits(), 2 << 11);
        // OAS(2,0) = 5, GRAN64K bit 6, GRAN4K bit 4, VAX(11,10) = 1, STALL_MAX(31,16).
        let v = Idr5::new()
            .with_oas(5)
            .with_gran64k(true)
            .with_gran4k(true)
            .with_vax(1)
            .with_stall_max(0x80);
        assert_eq!(v.into_bits(), 5 | 1 << 6 | 1 << 4 | 1 << 10 | 0x80 << 16);
    }

    #[test]
    fn control_and_table_registers_at_linux_positions() {
        assert_eq!(Cr0::ATSCHK.bits(), 1 << 4);
        assert_eq!(Cr0::CMDQEN.bits(), 1 << 3);
        assert_eq!(Cr0::EVTQEN.bits(), 1 << 2);
        assert_eq!(Cr0::PRIQEN.bits(), 1 << 1);
        // CR1_TABLE_SH(11,10) = 3, TABLE_OC(9,8) = 1, TABLE_IC(7,6) = 1, QUEUE_SH(5,4) = 3,
        // QUEUE_OC(3,2) = 1, QUEUE_IC(1,0) = 1: Linux's arm_smmu_device_reset value.
        let cr1 = Cr1::new()
            .with_table_sh(3)
            .with_table_oc(1)
            .with_table_ic(1)
            .with_queue_sh(3)
            .with_queue_oc(1)
            .with_queue_ic(1);
        assert_eq!(cr1.into_bits(), 0xd75);
        assert_eq!(
            Cr2::PTM.bits() | Cr2::RECINVSID.bits() | Cr2::E2H.bits(),
            0x7
        );
        assert_eq!(Gbpa::new().with_update(true).into_bits(), 1 << 31);
        assert_eq!(Gbpa::new().with_abort(true).into_bits(), 1 << 20);
        assert_eq!(Gbpa::new().with_shcfg(1).into_bits(), 0x1000);
        assert_eq!(IrqCtrl::all().bits(), 0x7);
        assert_eq!(Gerror::all().bits(), 0x1fd, "GERROR_ERR_MASK");
        // STRTAB_BASE_CFG: FMT(17,16) = 1, SPLIT(10,6) = 8, LOG2SIZE(5,0) = 16.
        let c = StrtabBaseCfg::new()
            .with_fmt(1)
            .with_split(8)
            .with_log2size(16);
        assert_eq!(c.into_bits(), 1 << 16 | 8 << 6 | 16);
        // STRTAB_BASE_RA bit 62, ADDR_MASK GENMASK(51,6).
        let b = StrtabBase::new()
            .with_ra(true)
            .with_addr(0x8_0000_1000 >> 6);
        assert_eq!(b.into_bits(), 1 << 62 | 0x8_0000_1000);
        // Q_BASE_RWA bit 62, ADDR GENMASK(51,5), LOG2SIZE(4,0).
        let q = QueueBase::new()
            .with_rwa(true)
            .with_addr(0x4_0020 >> 5)
            .with_log2size(8);
        assert_eq!(q.into_bits(), 1 << 62 | 0x4_0020 | 8);
    }

    #[test]
    fn register_offsets_match_linux() {
        use offset::*;
        assert_eq!(
            [
                CR0,
                CR0ACK,
                CR1,
                CR2,
                GBPA,
                IRQ_CTRL,
                IRQ_CTRLACK,
                GERROR,
                GERRORN
            ],
            [0x20, 0x24, 0x28, 0x2c, 0x44, 0x50, 0x54, 0x60, 0x64]
        );
        assert_eq!(
            [GERROR_IRQ_CFG0, GERROR_IRQ_CFG1, GERROR_IRQ_CFG2],
            [0x68, 0x70, 0x74]
        );
        assert_eq!(
            [
                STRTAB_BASE,
                STRTAB_BASE_CFG,
                CMDQ_BASE,
                CMDQ_PROD,
                CMDQ_CONS
            ],
            [0x80, 0x88, 0x90, 0x98, 0x9c]
        );
        // arm_smmu_page1_fixup: the output queues' PROD/CONS live in page 1.
        assert_eq!(
            [EVENTQ_PROD, EVENTQ_CONS, PRIQ_PROD, PRIQ_CONS],
            [0x100a8, 0x100ac, 0x100c8, 0x100cc]
        );
        assert_eq!(
            [EVENTQ_IRQ_CFG0, EVENTQ_IRQ_CFG1, EVENTQ_IRQ_CFG2],
            [0xb0, 0xb8, 0xbc]
        );
        assert_eq!(
            [PRIQ_IRQ_CFG0, PRIQ_IRQ_CFG1, PRIQ_IRQ_CFG2],
            [0xd0, 0xd8, 0xdc]
        );
    }
}
