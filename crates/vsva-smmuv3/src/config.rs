//! What an SMMU advertises (IHI 0070 §6.3.1–6.3.6): the configuration the ID registers are
//! built from, and which the configuration checks and command checks consult; read back
//! from the ID registers ([`Smmuv3Config::from_registers`]: how a VMM reads the host's SMMU
//! from `IOMMU_GET_HW_INFO`) and cut down to a host's ([`Smmuv3Config::clamp_to`]), so a
//! guest's vSMMU never promises more than the host can do.

use crate::spec::cmd::CommandCaps;
use crate::spec::registers::{Idr0, Idr1, Idr3, Idr5, stall_model};

/// Hardware translation table update support (IDR0.HTTU), in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Httu {
    /// None.
    None,
    /// Access flag.
    Access,
    /// Access flag and dirty state.
    AccessDirty,
}

/// The stall model (IDR0.STALL_MODEL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallModel {
    /// Stall and terminate both supported (0b00).
    Stall,
    /// Terminate only (0b01).
    Terminate,
    /// Stall forced (0b10).
    Force,
}

/// An SMMU's capabilities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Smmuv3Config {
    /// StreamID bits (IDR1.SIDSIZE, at most 32).
    pub sid_bits: u8,
    /// SubstreamID bits (IDR1.SSIDSIZE, at most 20).
    pub ssid_bits: u8,
    /// Two-level stream tables (IDR0.ST_LEVEL = 1).
    pub two_level_strtab: bool,
    /// Two-level CD tables (IDR0.CD2L).
    pub two_level_cdtab: bool,
    /// Stage 1 (IDR0.S1P).
    pub stage1: bool,
    /// Stage 2 (IDR0.S2P).
    pub stage2: bool,
    /// Stall model.
    pub stall: StallModel,
    /// PCIe ATS (IDR0.ATS).
    pub ats: bool,
    /// PCIe PRI (IDR0.PRI).
    pub pri: bool,
    /// Hardware table updates.
    pub httu: Httu,
    /// Output address size, OAS encoding (IDR5.OAS: 5 = 48 bits, 6 = 52).
    pub oas: u8,
    /// 4 KiB granule.
    pub gran4k: bool,
    /// 16 KiB granule.
    pub gran16k: bool,
    /// 64 KiB granule.
    pub gran64k: bool,
    /// log2 of the command queue's maximum entries (IDR1.CMDQS, at most 19).
    pub cmdq_bits: u8,
    /// log2 of the event queue's maximum entries (IDR1.EVENTQS, at most 19).
    pub evtq_bits: u8,
    /// log2 of the PRI queue's maximum entries (IDR1.PRIQS, at most 19).
    pub priq_bits: u8,
    /// Message-signalled interrupts (IDR0.MSI).
    pub msi: bool,
    /// Wake-up events (IDR0.SEV).
    pub sev: bool,
    /// 16-bit ASIDs (IDR0.ASID16).
    pub asid16: bool,
    /// 16-bit VMIDs (IDR0.VMID16).
    pub vmid16: bool,
    /// Range invalidation (IDR3.RIL).
    pub ril: bool,
    /// GBPA.ABORT after reset (IMPLEMENTATION DEFINED, §6.3.14).
    pub gbpa_abort_at_reset: bool,
    /// IIDR.
    pub iidr: u32,
}

impl Default for Smmuv3Config {
    /// An SMMUv3.2 with everything a host SVA setup uses: 16-bit StreamIDs, 20-bit
    /// SubstreamIDs, both table formats at two levels, both stages, ATS and PRI, HTTU
    /// (access and dirty), 48-bit OAS, the 4 KiB granule only (vsva-pgtable walks 4 KiB
    /// granules: a CD or STE asking for another is C_BAD_CD / C_BAD_STE), MSIs, stall.
    fn default() -> Self {
        Smmuv3Config {
            sid_bits: 16,
            ssid_bits: 20,
            two_level_strtab: true,
            two_level_cdtab: true,
            stage1: true,
            stage2: true,
            stall: StallModel::Stall,
            ats: true,
            pri: true,
            httu: Httu::AccessDirty,
            oas: 5,
            gran4k: true,
            gran16k: false,
            gran64k: false,
            cmdq_bits: 8,
            evtq_bits: 7,
            priq_bits: 7,
            msi: true,
            sev: true,
            asid16: true,
            vmid16: true,
            ril: true,
            gbpa_abort_at_reset: false,
            iidr: 0,
        }
    }
}

/// SMMU_AIDR: architecture version 3.2 (ArchMajorRev 0, ArchMinorRev 2).
pub const AIDR: u32 = 0x2;

impl Smmuv3Config {
    /// The configuration with every field clamped to what its register can say (PRI also
    /// needs ATS: IDR0.PRI is RES0 without IDR0.ATS, §6.3.1).
    pub fn clamped(&self) -> Smmuv3Config {
        Smmuv3Config {
            pri: self.pri && self.ats,
            sid_bits: self.sid_bits.min(32),
            ssid_bits: self.ssid_bits.min(20),
            oas: self.oas.min(6),
            cmdq_bits: self.cmdq_bits.min(19),
            evtq_bits: self.evtq_bits.min(19),
            priq_bits: self.priq_bits.min(19),
            ..self.clone()
        }
    }

    /// SMMU_IDR0 to SMMU_IDR5 as the unit shows them (IDR2 and IDR4 read as zero: no VATOS,
    /// IMPLEMENTATION DEFINED IDR4 empty).
    pub fn idrs(&self) -> [u32; 6] {
        [
            self.idr0().into_bits(),
            self.idr1().into_bits(),
            0,
            self.idr3().into_bits(),
            0,
            self.idr5().into_bits(),
        ]
    }

    /// What an SMMU whose SMMU_IDR0..5 read `idr` and whose SMMU_IIDR reads `iidr` can do,
    /// in the terms this model implements: a VMM reads the host's unit this way from
    /// `struct iommu_hw_info_arm_smmuv3` before deciding what its guest's vSMMU shows.
    /// Fields a register does not say take the value an SMMU built from the result shows
    /// again: IDR1.PRIQS is 0 without PRI; a reserved STALL_MODEL (0b11) reads as
    /// terminate only and a reserved OAS (0b111) as 52 bits. GBPA's reset value is not
    /// advertised: `gbpa_abort_at_reset` is false.
    pub fn from_registers(idr: [u32; 6], iidr: u32) -> Smmuv3Config {
        let (i0, i1, i3, i5) = (
            Idr0::from_bits(idr[0]),
            Idr1::from_bits(idr[1]),
            Idr3::from_bits(idr[3]),
            Idr5::from_bits(idr[5]),
        );
        Smmuv3Config {
            sid_bits: i1.sidsize().min(32),
            ssid_bits: i1.ssidsize(),
            two_level_strtab: i0.st_level() == 1,
            two_level_cdtab: i0.cd2l(),
            stage1: i0.s1p(),
            stage2: i0.s2p(),
            stall: match i0.stall_model() {
                stall_model::STALL => StallModel::Stall,
                stall_model::FORCE => StallModel::Force,
                _ => StallModel::Terminate,
            },
            ats: i0.ats(),
            // IDR0.PRI is RES0 without ATS (§6.3.1).
            pri: i0.pri() && i0.ats(),
            httu: match i0.httu() {
                0 => Httu::None,
                1 => Httu::Access,
                // 0b11 is reserved; read as the most the field can say.
                _ => Httu::AccessDirty,
            },
            oas: i5.oas().min(6),
            gran4k: i5.gran4k(),
            gran16k: i5.gran16k(),
            gran64k: i5.gran64k(),
            cmdq_bits: i1.cmdqs().min(19),
            evtq_bits: i1.eventqs().min(19),
            priq_bits: i1.priqs().min(19),
            msi: i0.msi(),
            sev: i0.sev(),
            asid16: i0.asid16(),
            vmid16: i0.vmid16(),
            ril: i3.ril(),
            gbpa_abort_at_reset: false,
            iidr,
        }
    }

    /// This configuration with nothing the `host` cannot carry out for a guest whose vSMMU
    /// it is: the guest's CD tables, stage 1 tables and TLB and ATC commands go to the host,
    /// so what they may use is the host's at most —
    /// SubstreamID bits, two-level CD tables, stages, ATS and PRI, HTTU, OAS, granules,
    /// 16-bit ASIDs, range invalidation — and the stall model follows the host's (a host
    /// that cannot stall makes every CD.S ILLEGAL; one that forces stalls makes CD.S = 0
    /// ILLEGAL). What the guest's unit keeps to itself stays this configuration's: the
    /// StreamID space (vSIDs are the VMM's), stream-table levels, queue sizes, MSI and SEV,
    /// VMID width, GBPA's reset value and IIDR. Without PRI the PRI queue size is 0, as
    /// IDR1.PRIQS shows it.
    ///
    /// This is the rule Linux's uAPI (`struct iommu_hw_info_arm_smmuv3`) gives a VMM: the
    /// IDRs are the raw hardware's, and an emulated copy forwards only what the VMM knows
    /// it can support — `self` is what this VMM supports, the host what the hardware has.
    pub fn clamp_to(&self, host: &Smmuv3Config) -> Smmuv3Config {
        let pri = self.pri && self.ats && host.pri && host.ats;
        Smmuv3Config {
            ssid_bits: self.ssid_bits.min(host.ssid_bits),
            two_level_cdtab: self.two_level_cdtab && host.two_level_cdtab,
            stage1: self.stage1 && host.stage1,
            stage2: self.stage2 && host.stage2,
            stall: match host.stall {
                StallModel::Stall => self.stall,
                s => s,
            },
            ats: self.ats && host.ats,
            pri,
            // Without PRI there is no PRI queue (IDR1.PRIQS = 0).
            priq_bits: if pri { self.priq_bits } else { 0 },
            httu: self.httu.min(host.httu),
            oas: self.oas.min(host.oas),
            gran4k: self.gran4k && host.gran4k,
            gran16k: self.gran16k && host.gran16k,
            gran64k: self.gran64k && host.gran64k,
            asid16: self.asid16 && host.asid16,
            ril: self.ril && host.ril,
            ..self.clone()
        }
    }

    /// SMMU_IDR0.
    pub fn idr0(&self) -> Idr0 {
        Idr0::new()
            .with_s2p(self.stage2)
            .with_s1p(self.stage1)
            .with_ttf(0b10)
            .with_cohacc(true)
            .with_httu(match self.httu {
                Httu::None => 0,
                Httu::Access => 1,
                Httu::AccessDirty => 2,
            })
            .with_ats(self.ats)
            .with_asid16(self.asid16)
            .with_msi(self.msi)
            .with_sev(self.sev)
            .with_pri(self.pri)
            .with_vmid16(self.vmid16)
            .with_cd2l(self.two_level_cdtab)
            .with_ttendian(0b10)
            .with_stall_model(match self.stall {
                StallModel::Stall => stall_model::STALL,
                StallModel::Terminate => stall_model::TERMINATE,
                StallModel::Force => stall_model::FORCE,
            })
            .with_st_level(self.two_level_strtab as u8)
    }

    /// SMMU_IDR1.
    pub fn idr1(&self) -> Idr1 {
        let c = self.clamped();
        Idr1::new()
            .with_sidsize(c.sid_bits)
            .with_ssidsize(c.ssid_bits)
            .with_priqs(if c.pri { c.priq_bits } else { 0 })
            .with_eventqs(c.evtq_bits)
            .with_cmdqs(c.cmdq_bits)
    }

    /// SMMU_IDR3: what SMMUv3.2 makes mandatory (§6.3.4) — HAD and XNX with the stages that
    /// use them, FWB, BBML level 1 — RIL as configured, and PPS (PRI overflow
    /// auto-responses carry the request's PASID; STE.PPAR is not consulted).
    pub fn idr3(&self) -> Idr3 {
        Idr3::new()
            .with_had(self.stage1)
            .with_xnx(self.stage2)
            .with_fwb(self.stage2)
            .with_pps(self.pri && self.ssid_bits != 0)
            .with_ril(self.ril)
            .with_bbml(1)
    }

    /// SMMU_IDR5.
    pub fn idr5(&self) -> Idr5 {
        Idr5::new()
            .with_oas(self.oas.min(6))
            .with_gran4k(self.gran4k)
            .with_gran16k(self.gran16k)
            .with_gran64k(self.gran64k)
            .with_stall_max(if self.stall == StallModel::Terminate {
                0
            } else {
                64
            })
    }

    /// What the command checks need.
    pub fn command_caps(&self) -> CommandCaps {
        CommandCaps {
            s1p: self.stage1,
            s2p: self.stage2,
            hyp: false,
            ats: self.ats,
            pri: self.pri,
            ril: self.ril,
            stall: self.stall != StallModel::Terminate,
        }
    }

    /// Is the granule of `bits` (12, 14, 16) supported?
    pub fn granule_supported(&self, bits: u8) -> bool {
        match bits {
            12 => self.gran4k,
            14 => self.gran16k,
            16 => self.gran64k,
            _ => false,
        }
    }
}
