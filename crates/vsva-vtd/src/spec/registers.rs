//! The remapping-hardware register set (VT-d 4.1 §11.4).

use bitfield_struct::bitfield;
use bitflags::bitflags;

/// Register offsets (§11.4, Table "Address Mapping for Remapping Hardware Registers").
pub mod offset {
    /// Version (32).
    pub const VER: u64 = 0x000;
    /// Capability (64).
    pub const CAP: u64 = 0x008;
    /// Extended capability (64).
    pub const ECAP: u64 = 0x010;
    /// Global command (32, write-only).
    pub const GCMD: u64 = 0x018;
    /// Global status (32).
    pub const GSTS: u64 = 0x01c;
    /// Root-table address (64).
    pub const RTADDR: u64 = 0x020;
    /// Context command (64; register-based invalidation, not offered in scalable mode).
    pub const CCMD: u64 = 0x028;
    /// Fault status (32).
    pub const FSTS: u64 = 0x034;
    /// Fault event control (32).
    pub const FECTL: u64 = 0x038;
    /// Fault event data (32).
    pub const FEDATA: u64 = 0x03c;
    /// Fault event address (32).
    pub const FEADDR: u64 = 0x040;
    /// Fault event upper address (32).
    pub const FEUADDR: u64 = 0x044;
    /// Invalidation queue head (64).
    pub const IQH: u64 = 0x080;
    /// Invalidation queue tail (64).
    pub const IQT: u64 = 0x088;
    /// Invalidation queue address (64).
    pub const IQA: u64 = 0x090;
    /// Invalidation completion status (32).
    pub const ICS: u64 = 0x09c;
    /// Invalidation event control (32).
    pub const IECTL: u64 = 0x0a0;
    /// Invalidation event data (32).
    pub const IEDATA: u64 = 0x0a4;
    /// Invalidation event address (32).
    pub const IEADDR: u64 = 0x0a8;
    /// Invalidation event upper address (32).
    pub const IEUADDR: u64 = 0x0ac;
    /// Invalidation queue error record (64).
    pub const IQERCD: u64 = 0x0b0;
    /// Page request queue head (64).
    pub const PQH: u64 = 0x0c0;
    /// Page request queue tail (64).
    pub const PQT: u64 = 0x0c8;
    /// Page request queue address (64).
    pub const PQA: u64 = 0x0d0;
    /// Page request status (32).
    pub const PRS: u64 = 0x0dc;
    /// Page request event control (32).
    pub const PECTL: u64 = 0x0e0;
    /// Page request event data (32).
    pub const PEDATA: u64 = 0x0e4;
    /// Page request event address (32).
    pub const PEADDR: u64 = 0x0e8;
    /// Page request event upper address (32).
    pub const PEUADDR: u64 = 0x0ec;
    /// Where this model puts the IOTLB registers (ECAP.IRO = 0x20: IVA at 0x200, IOTLB at
    /// 0x208), clear of the MTRR block (the model has no MTS).
    pub const IVA: u64 = 0x200;
    /// IOTLB invalidate (64).
    pub const IOTLB: u64 = 0x208;
    /// Where this model puts fault recording register 0 (CAP.FRO = 0x22).
    pub const FRCD0: u64 = 0x220;
    /// Size of the register window.
    pub const WINDOW: u64 = 0x1000;
}

/// Capability register (§11.4.2).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct Cap {
    /// Number of domains: 2^(4 + 2·ND).
    #[bits(3)]
    pub nd: u8,
    /// Advanced fault logging.
    pub afl: bool,
    /// Required write-buffer flushing.
    pub rwbf: bool,
    /// Protected low-memory region.
    pub plmr: bool,
    /// Protected high-memory region.
    pub phmr: bool,
    /// Caching mode: not-present entries may be cached (a virtual IOMMU sets it).
    pub cm: bool,
    /// Supported adjusted guest address widths: bit 1 = 39-bit (3-level), bit 2 = 48-bit,
    /// bit 3 = 57-bit second-stage tables.
    #[bits(5)]
    pub sagaw: u8,
    #[bits(3)]
    __: u8,
    /// Maximum guest address width - 1.
    #[bits(6)]
    pub mgaw: u8,
    /// Zero-length read.
    pub zlr: bool,
    __: bool,
    /// Fault-recording register offset / 16.
    #[bits(10)]
    pub fro: u16,
    /// Second-stage large pages: bit 0 = 2 MiB, bit 1 = 1 GiB.
    #[bits(4)]
    pub sllps: u8,
    __: bool,
    /// Page-selective invalidation.
    pub psi: bool,
    /// Number of fault-recording registers - 1.
    pub nfr: u8,
    /// Maximum address-mask value for page-selective invalidation.
    #[bits(6)]
    pub mamv: u8,
    /// DMA write draining.
    pub dwd: bool,
    /// DMA read draining.
    pub drd: bool,
    /// First-stage 1 GiB pages.
    pub fs1gp: bool,
    #[bits(2)]
    __: u8,
    /// Posted interrupts.
    pub pi: bool,
    /// First-stage 5-level paging.
    pub fs5lp: bool,
    /// Enhanced command support.
    pub ecmds: bool,
    /// Enhanced set-interrupt-remap-table-pointer support.
    pub esirtps: bool,
    /// Enhanced set-root-table-pointer support.
    pub esrtps: bool,
}

/// Extended capability register (§11.4.3).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct Ecap {
    /// Page-walk coherency.
    pub c: bool,
    /// Queued invalidation.
    pub qi: bool,
    /// Device-TLB (ATS).
    pub dt: bool,
    /// Interrupt remapping.
    pub ir: bool,
    /// Extended interrupt mode.
    pub eim: bool,
    __: bool,
    /// Pass-through.
    pub pt: bool,
    /// Snoop control.
    pub sc: bool,
    /// IOTLB register offset / 16.
    #[bits(10)]
    pub iro: u16,
    #[bits(2)]
    __: u8,
    /// Maximum handle-mask value.
    #[bits(4)]
    pub mhmv: u8,
    __: bool,
    /// Memory-type support.
    pub mts: bool,
    /// Nested translation.
    pub nest: bool,
    #[bits(2)]
    __: u8,
    /// Page requests (PRI).
    pub prs: bool,
    /// Execute requests.
    pub ers: bool,
    /// Supervisor requests.
    pub srs: bool,
    __: bool,
    /// No-write flag.
    pub nwfs: bool,
    /// Extended-accessed flag.
    pub eafs: bool,
    /// PASID size supported - 1 (19 = 20-bit PASIDs).
    #[bits(5)]
    pub pss: u8,
    /// PASID support.
    pub pasid: bool,
    /// Device-TLB invalidation throttle.
    pub dit: bool,
    /// Page-request drain (PD in the invalidation wait descriptor).
    pub pds: bool,
    /// Scalable-mode translation.
    pub smts: bool,
    /// Virtual command.
    pub vcs: bool,
    /// Second-stage Accessed/Dirty.
    pub ssads: bool,
    /// Second-stage translation (PGTT = 010b).
    pub ssts: bool,
    /// First-stage translation (PGTT = 001b).
    pub fsts: bool,
    /// Scalable-mode page-walk coherency.
    pub smpwcs: bool,
    /// RID_PASID.
    pub rps: bool,
    __: bool,
    /// Performance monitoring.
    pub pms: bool,
    /// Abort-DMA mode.
    pub adms: bool,
    /// RID_PRIV.
    pub rprivs: bool,
    #[bits(10)]
    __: u16,
}

bitflags! {
    /// Global command / global status bits (§11.4.4, §11.4.5). A status bit sits at the same
    /// position as its command bit.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct Gcmd: u32 {
        /// Translation enable (persistent).
        const TE = 1 << 31;
        /// Set root-table pointer (one-shot; status RTPS).
        const SRTP = 1 << 30;
        /// Set fault log (one-shot).
        const SFL = 1 << 29;
        /// Enable advanced fault logging (persistent).
        const EAFL = 1 << 28;
        /// Write-buffer flush (one-shot).
        const WBF = 1 << 27;
        /// Queued invalidation enable (persistent).
        const QIE = 1 << 26;
        /// Interrupt remapping enable (persistent).
        const IRE = 1 << 25;
        /// Set interrupt-remap-table pointer (one-shot).
        const SIRTP = 1 << 24;
        /// Compatibility-format interrupts (persistent).
        const CFI = 1 << 23;
    }
}

impl Gcmd {
    /// The one-shot commands, whose status bits software drops when writing GCMD.
    pub const ONE_SHOT: Gcmd = Gcmd::SRTP
        .union(Gcmd::SFL)
        .union(Gcmd::WBF)
        .union(Gcmd::SIRTP);
}

bitflags! {
    /// Fault status (§11.4.7.1). PFO, AFO, APF, IQE, ICE, ITE are write-1-to-clear; PPF is
    /// the OR of all FRCD.F bits; FRI (15:8) indexes the first pending record.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Fsts: u32 {
        /// Primary fault overflow.
        const PFO = 1 << 0;
        /// Primary pending fault.
        const PPF = 1 << 1;
        /// Advanced fault overflow.
        const AFO = 1 << 2;
        /// Advanced pending fault.
        const APF = 1 << 3;
        /// Invalidation queue error.
        const IQE = 1 << 4;
        /// Invalidation completion error.
        const ICE = 1 << 5;
        /// Invalidation time-out error.
        const ITE = 1 << 6;
    }
}

impl Fsts {
    /// The write-1-to-clear bits.
    pub const W1C: Fsts = Fsts::PFO
        .union(Fsts::AFO)
        .union(Fsts::APF)
        .union(Fsts::IQE)
        .union(Fsts::ICE)
        .union(Fsts::ITE);
    /// Shift of the fault record index field.
    pub const FRI_SHIFT: u32 = 8;
}

/// Interrupt mask (FECTL, IECTL, PECTL bit 31).
pub const EVENT_IM: u32 = 1 << 31;
/// Interrupt pending (FECTL, IECTL, PECTL bit 30).
pub const EVENT_IP: u32 = 1 << 30;

/// Invalidation wait completion (ICS bit 0, write-1-to-clear).
pub const ICS_IWC: u32 = 1;
/// Pending page request (PRS bit 0, write-1-to-clear).
pub const PRS_PPR: u32 = 1 << 0;
/// Page request overflow (PRS bit 1, write-1-to-clear).
pub const PRS_PRO: u32 = 1 << 1;

/// Translation table mode of RTADDR (§11.4.6, bits 11:10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttm {
    /// 00b: legacy root/context tables.
    Legacy,
    /// 01b: scalable-mode root/context tables.
    Scalable,
    /// 10b: reserved.
    Reserved,
    /// 11b: abort-DMA mode.
    AbortDma,
}

/// Root-table address register (§11.4.6).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct Rtaddr {
    #[bits(10)]
    __: u16,
    /// Translation table mode.
    #[bits(2)]
    pub ttm: u8,
    /// Root table address, bits 63:12.
    #[bits(52)]
    pub rta: u64,
}

impl Rtaddr {
    /// The decoded mode.
    pub fn mode(&self) -> Ttm {
        match self.ttm() {
            0 => Ttm::Legacy,
            1 => Ttm::Scalable,
            2 => Ttm::Reserved,
            _ => Ttm::AbortDma,
        }
    }

    /// The root table's address.
    pub fn address(&self) -> u64 {
        self.rta() << 12
    }
}

/// Invalidation queue address register (§11.4.9.3).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct Iqa {
    /// Queue size: 2^QS 4 KiB pages.
    #[bits(3)]
    pub qs: u8,
    #[bits(8)]
    __: u8,
    /// Descriptor width: 0 = 128-bit, 1 = 256-bit.
    pub dw: bool,
    /// Queue base, bits 63:12.
    #[bits(52)]
    pub iqa: u64,
}

impl Iqa {
    /// Descriptor size in bytes.
    pub fn descriptor_bytes(&self) -> u64 {
        if self.dw() { 32 } else { 16 }
    }

    /// Number of descriptors the queue holds.
    pub fn entries(&self) -> u64 {
        (4096u64 << self.qs()) / self.descriptor_bytes()
    }
}

/// Invalidation queue error information (IQERCD.IQEI, §11.4.9.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Iqei {
    /// 1: the tail pointer is beyond the queue.
    InvalidTail = 1,
    /// 2: the descriptor could not be fetched.
    FetchError = 2,
    /// 3: unknown descriptor type.
    InvalidType = 3,
    /// 4: a reserved field is set in a valid descriptor.
    ReservedField = 4,
    /// 5: invalid descriptor width programmed in IQA (128-bit descriptors in scalable mode).
    InvalidWidth = 5,
    /// 6: tail not aligned to the descriptor width (IQT bit 4 set with 256-bit descriptors).
    TailMisaligned = 6,
}

/// Page request queue address register (§11.4.10.3).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct Pqa {
    /// Queue size: 2^PQS 4 KiB pages of 32-byte descriptors.
    #[bits(3)]
    pub pqs: u8,
    #[bits(9)]
    __: u16,
    /// Queue base, bits 63:12.
    #[bits(52)]
    pub pqa: u64,
}

impl Pqa {
    /// Number of 32-byte page request descriptors the queue holds.
    pub fn entries(&self) -> u64 {
        (4096u64 << self.pqs()) / 32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_fields_sit_where_linux_reads_them() {
        // Linux: cap_sagaw = (c >> 8) & 0x1f, cap_mgaw = ((c >> 16) & 0x3f) + 1,
        // cap_fault_reg_offset = ((c >> 24) & 0x3ff) * 16, cap_super_page_val = (c >> 34) & 0xf,
        // cap_num_fault_regs = ((c >> 40) & 0xff) + 1, cap_fl1gp_support = (c >> 56) & 1,
        // cap_fl5lp_support = (c >> 60) & 1.
        let c = Cap::new()
            .with_nd(6)
            .with_sagaw(0b0110)
            .with_mgaw(47)
            .with_fro(0x22)
            .with_sllps(0b11)
            .with_psi(true)
            .with_nfr(7)
            .with_mamv(18)
            .with_fs1gp(true)
            .with_fs5lp(true)
            .with_cm(true);
        let v = c.into_bits();
        assert_eq!(v & 7, 6);
        assert_eq!((v >> 7) & 1, 1);
        assert_eq!((v >> 8) & 0x1f, 0b0110);
        assert_eq!(((v >> 16) & 0x3f) + 1, 48);
        assert_eq!(((v >> 24) & 0x3ff) * 16, 0x220);
        assert_eq!((v >> 34) & 0xf, 0b11);
        assert_eq!((v >> 39) & 1, 1);
        assert_eq!(((v >> 40) & 0xff) + 1, 8);
        assert_eq!((v >> 48) & 0x3f, 18);
        assert_eq!((v >> 56) & 1, 1);
        assert_eq!((v >> 60) & 1, 1);
    }

    #[test]
    fn ecap_fields_sit_where_linux_reads_them() {
        let e = Ecap::new()
            .with_qi(true)
            .with_dt(true)
            .with_pt(true)
            .with_iro(0x20)
            .with_nest(true)
            .with_prs(true)
            .with_srs(true)
            .with_eafs(true)
            .with_pss(19)
            .with_pasid(true)
            .with_pds(true)
            .with_smts(true)
            .with_ssads(true)
            .with_ssts(true)
            .with_fsts(true)
            .with_rps(true);
        let v = e.into_bits();
        for bit in [1, 2, 6, 26, 29, 31, 34, 40, 42, 43, 45, 46, 47, 49] {
            assert_eq!((v >> bit) & 1, 1, "bit {bit}");
        }
        assert_eq!(((v >> 8) & 0x3ff) * 16, 0x200);
        assert_eq!((v >> 35) & 0x1f, 19);
        assert_eq!(v.count_ones(), 14 + 1 + 3);
    }

    #[test]
    fn register_layouts() {
        let r = Rtaddr::from_bits(0x1234_5000 | 1 << 10);
        assert_eq!(r.mode(), Ttm::Scalable);
        assert_eq!(r.address(), 0x1234_5000);
        assert_eq!(Rtaddr::from_bits(3 << 10).mode(), Ttm::AbortDma);
        let q = Iqa::from_bits(0x8000_0000 | 1 << 11 | 1);
        assert!(q.dw());
        assert_eq!(q.iqa() << 12, 0x8000_0000);
        assert_eq!(
            q.entries(),
            256,
            "Linux: QS=1, DW=1 -> 256 32-byte descriptors"
        );
        assert_eq!(Iqa::from_bits(0).entries(), 256, "QS=0, 128-bit: 2^(0+8)");
        assert_eq!(
            Pqa::from_bits(4).entries(),
            2048,
            "Linux PRQ_ORDER=4 -> 2048 entries"
        );
        assert_eq!(Gcmd::ONE_SHOT.bits(), !0x96ff_ffffu32 & 0xff80_0000);
        assert_eq!(Fsts::W1C.bits(), 0x7d);
    }
}
