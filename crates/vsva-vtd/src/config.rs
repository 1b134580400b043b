//! What a remapping unit advertises: a configuration, and the CAP/ECAP values it implies.
//!
//! A VMM exposing a virtual VT-d derives a smaller configuration from the host's
//! ([`VtdConfig::clamp_to`]) so the guest is never promised more than the host can do.

use crate::spec::pasid::PasidFeatures;
use crate::spec::registers::{Cap, Ecap, offset};
use crate::spec::root_context::ContextFeatures;

/// Capabilities of a modelled remapping unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VtdConfig {
    /// Host address width: output addresses and table pointers have this many bits.
    pub haw: u8,
    /// Maximum guest address width (input addresses of second-stage translation).
    pub mgaw: u8,
    /// Second-stage table depths supported: 3, 4 and/or 5 levels (SAGAW bits 1, 2, 3).
    pub ss_levels: [bool; 3],
    /// PASID width in bits (1..=20).
    pub pasid_bits: u8,
    /// First-stage translation (PGTT 001b).
    pub first_stage: bool,
    /// Second-stage translation (PGTT 010b).
    pub second_stage: bool,
    /// Nested translation (PGTT 011b).
    pub nested: bool,
    /// Pass-through (PGTT 100b).
    pub pass_through: bool,
    /// First-stage 1 GiB pages.
    pub fs_1g: bool,
    /// First-stage 5-level paging.
    pub fs_5level: bool,
    /// Second-stage 2 MiB pages.
    pub ss_2m: bool,
    /// Second-stage 1 GiB pages.
    pub ss_1g: bool,
    /// Second-stage Accessed/Dirty.
    pub ss_ad: bool,
    /// Extended-accessed flag.
    pub eafs: bool,
    /// Device-TLB (ATS).
    pub device_tlb: bool,
    /// Page requests (PRI).
    pub page_requests: bool,
    /// Page-request drain in invalidation wait descriptors.
    pub page_drain: bool,
    /// Supervisor (privileged) requests.
    pub supervisor_requests: bool,
    /// Execute requests (ERE/SSEE fields; rev 3 semantics).
    pub execute_requests: bool,
    /// RID_PASID in the context entry.
    pub rid_pasid: bool,
    /// Caching mode: not-present and erroneous entries may be cached, so software must
    /// invalidate after making entries present (set by virtual IOMMUs).
    pub caching_mode: bool,
    /// Number of fault recording registers (1..=256).
    pub fault_records: u16,
}

impl Default for VtdConfig {
    /// A full-featured unit: 46-bit host, 48-bit guest widths, 4- and 5-level second stage,
    /// 20-bit PASIDs, every translation type, ATS, PRI, supervisor requests.
    fn default() -> Self {
        VtdConfig {
            haw: 46,
            mgaw: 57,
            ss_levels: [true, true, true],
            pasid_bits: 20,
            first_stage: true,
            second_stage: true,
            nested: true,
            pass_through: true,
            fs_1g: true,
            fs_5level: true,
            ss_2m: true,
            ss_1g: true,
            ss_ad: true,
            eafs: true,
            device_tlb: true,
            page_requests: true,
            page_drain: true,
            supervisor_requests: true,
            execute_requests: false,
            rid_pasid: true,
            caching_mode: false,
            fault_records: 8,
        }
    }
}

impl VtdConfig {
    /// The capability register this configuration advertises.
    pub fn cap(&self) -> Cap {
        let sagaw = (self.ss_levels[0] as u8) << 1
            | (self.ss_levels[1] as u8) << 2
            | (self.ss_levels[2] as u8) << 3;
        Cap::new()
            .with_nd(6)
            .with_cm(self.caching_mode)
            .with_sagaw(sagaw)
            .with_mgaw(self.mgaw.saturating_sub(1))
            .with_fro((offset::FRCD0 / 16) as u16)
            .with_sllps(self.ss_2m as u8 | (self.ss_1g as u8) << 1)
            .with_psi(true)
            .with_nfr(self.fault_records.clamp(1, 256).saturating_sub(1) as u8)
            .with_mamv(18)
            .with_fs1gp(self.fs_1g)
            .with_fs5lp(self.fs_5level)
    }

    /// The extended capability register this configuration advertises.
    pub fn ecap(&self) -> Ecap {
        Ecap::new()
            .with_c(true)
            .with_qi(true)
            .with_dt(self.device_tlb)
            .with_pt(self.pass_through)
            .with_sc(true)
            .with_iro((offset::IVA / 16) as u16)
            .with_nest(self.nested)
            .with_prs(self.page_requests)
            .with_ers(self.execute_requests)
            .with_srs(self.supervisor_requests)
            .with_eafs(self.eafs)
            .with_pss(self.pasid_bits.clamp(1, 20) - 1)
            .with_pasid(true)
            .with_pds(self.page_drain)
            .with_smts(true)
            .with_ssads(self.ss_ad)
            .with_ssts(self.second_stage)
            .with_fsts(self.first_stage)
            .with_smpwcs(true)
            .with_rps(self.rid_pasid)
    }

    /// The largest PASID + 1.
    pub fn pasid_limit(&self) -> u64 {
        1 << self.pasid_bits.clamp(1, 20)
    }

    /// Is a second-stage table of `levels` levels supported?
    pub fn ss_levels_ok(&self, levels: u8) -> bool {
        matches!(levels, 3..=5) && self.ss_levels[(levels - 3) as usize]
    }

    /// Which context-entry fields exist.
    pub fn context_features(&self) -> ContextFeatures {
        ContextFeatures {
            haw: self.haw,
            device_tlb: self.device_tlb,
            page_requests: self.page_requests,
            rid_priv: false,
            rid_pasid: self.rid_pasid,
        }
    }

    /// Which PASID-entry fields exist.
    pub fn pasid_features(&self) -> PasidFeatures {
        PasidFeatures {
            haw: self.haw,
            execute_requests: self.execute_requests,
            snoop_control: true,
            memory_types: false,
            second_stage: self.second_stage,
            ss_ad: self.ss_ad,
            first_stage: self.first_stage,
            eafs: self.eafs,
            supervisor_requests: self.supervisor_requests,
        }
    }

    /// What a unit advertising `cap` and `ecap` can do — how a VMM reads the host's unit
    /// from `IOMMU_GET_HW_INFO` (`struct iommu_hw_info_vtd`) before deciding what to expose.
    /// The host address width is not in either register (ACPI DMAR reports it): `haw` is
    /// taken from the caller.
    pub fn from_registers(cap: Cap, ecap: Ecap, haw: u8) -> VtdConfig {
        let sagaw = cap.sagaw();
        VtdConfig {
            haw,
            mgaw: cap.mgaw() + 1,
            ss_levels: [sagaw & 2 != 0, sagaw & 4 != 0, sagaw & 8 != 0],
            pasid_bits: if ecap.pasid() { ecap.pss() + 1 } else { 1 },
            first_stage: ecap.fsts(),
            second_stage: ecap.ssts(),
            nested: ecap.nest(),
            pass_through: ecap.pt(),
            fs_1g: cap.fs1gp(),
            fs_5level: cap.fs5lp(),
            ss_2m: cap.sllps() & 1 != 0,
            ss_1g: cap.sllps() & 2 != 0,
            ss_ad: ecap.ssads(),
            eafs: ecap.eafs(),
            device_tlb: ecap.dt(),
            page_requests: ecap.prs(),
            page_drain: ecap.pds(),
            supervisor_requests: ecap.srs(),
            execute_requests: ecap.ers(),
            rid_pasid: ecap.rps(),
            caching_mode: cap.cm(),
            fault_records: u16::from(cap.nfr()) + 1,
        }
    }

    /// This configuration with nothing the `host` cannot do: what a VMM may expose to a guest
    /// when the guest's operations are carried out by `host`.
    pub fn clamp_to(&self, host: &VtdConfig) -> VtdConfig {
        VtdConfig {
            haw: self.haw.min(host.haw),
            mgaw: self.mgaw.min(host.mgaw),
            ss_levels: [
                self.ss_levels[0] && host.ss_levels[0],
                self.ss_levels[1] && host.ss_levels[1],
                self.ss_levels[2] && host.ss_levels[2],
            ],
            pasid_bits: self.pasid_bits.min(host.pasid_bits),
            first_stage: self.first_stage && host.first_stage,
            second_stage: self.second_stage && host.second_stage,
            nested: self.nested && host.nested,
            pass_through: self.pass_through && host.pass_through,
            fs_1g: self.fs_1g && host.fs_1g,
            fs_5level: self.fs_5level && host.fs_5level,
            ss_2m: self.ss_2m && host.ss_2m,
            ss_1g: self.ss_1g && host.ss_1g,
            ss_ad: self.ss_ad && host.ss_ad,
            eafs: self.eafs && host.eafs,
            device_tlb: self.device_tlb && host.device_tlb,
            page_requests: self.page_requests && host.page_requests,
            page_drain: self.page_drain && host.page_drain,
            supervisor_requests: self.supervisor_requests && host.supervisor_requests,
            execute_requests: self.execute_requests && host.execute_requests,
            rid_pasid: self.rid_pasid && host.rid_pasid,
            caching_mode: self.caching_mode,
            fault_records: self.fault_records,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_give_back_the_configuration() {
        let mut c = VtdConfig {
            fs_1g: false,
            ss_levels: [false, true, false],
            pasid_bits: 14,
            caching_mode: true,
            fault_records: 3,
            ..VtdConfig::default()
        };
        assert_eq!(VtdConfig::from_registers(c.cap(), c.ecap(), c.haw), c);
        c = VtdConfig::default();
        assert_eq!(VtdConfig::from_registers(c.cap(), c.ecap(), c.haw), c);
    }

    #[test]
    fn default_advertises_everything_it_models() {
        let c = VtdConfig::default();
        let cap = c.cap();
        assert_eq!(cap.sagaw(), 0b1110);
        assert_eq!(cap.mgaw() + 1, 57);
        assert_eq!(cap.nfr() as u16 + 1, 8);
        assert_eq!(cap.fro() as u64 * 16, offset::FRCD0);
        let e = c.ecap();
        assert_eq!(e.pss() + 1, 20);
        assert!(e.smts() && e.fsts() && e.ssts() && e.nest() && e.pt() && e.dt() && e.prs());
        assert_eq!(e.iro() as u64 * 16, offset::IVA);
    }

    #[test]
    fn a_clamped_guest_finds_the_fields_of_what_the_host_lacks_reserved() {
        use crate::spec::pasid::PasidEntry;
        use crate::spec::root_context::ContextEntry;
        // §9.4 / §9.6: a field whose capability the unit does not report is reserved, so a
        // guest cannot use SSADE or RID_PASID once clamp_to took SSADS and RPS away.
        let host = VtdConfig {
            ss_ad: false,
            rid_pasid: false,
            eafs: false,
            ..VtdConfig::default()
        };
        let guest = VtdConfig::default().clamp_to(&host);
        let mut e = PasidEntry::default();
        e.q0.set_ssade(true);
        assert!(e.has_reserved_bits(&guest.pasid_features()));
        assert!(!e.has_reserved_bits(&VtdConfig::default().pasid_features()));
        let mut e = PasidEntry::default();
        e.q2.set_eafe(true);
        assert!(e.has_reserved_bits(&guest.pasid_features()));
        let c = ContextEntry::from_qwords([0x1001, 5, 0, 0]);
        assert!(c.has_reserved_bits(&guest.context_features()));
        assert!(!c.has_reserved_bits(&VtdConfig::default().context_features()));
        assert!(!guest.ecap().ssads() && !guest.ecap().rps());
    }

    #[test]
    fn a_guest_never_gets_more_than_the_host() {
        let host = VtdConfig {
            pasid_bits: 16,
            fs_5level: false,
            nested: false,
            mgaw: 48,
            ..VtdConfig::default()
        };
        let guest = VtdConfig {
            caching_mode: true,
            ..VtdConfig::default()
        }
        .clamp_to(&host);
        assert_eq!(guest.pasid_bits, 16);
        assert!(!guest.fs_5level && !guest.nested);
        assert_eq!(guest.mgaw, 48);
        assert!(guest.caching_mode);
        assert_eq!(guest.ecap().pss(), 15);
    }
}
