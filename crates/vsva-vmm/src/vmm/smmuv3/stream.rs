//! Flow 1 for a virtual SMMUv3, bind: what a guest StreamID's configuration asks of the host
//! becomes a nested HWPT under the vIOMMU (QEMU `smmuv3_accel_install_nested_ste()`).
//!
//! The vSTE is built from the guest's STE fields nesting may carry (Linux
//! `arm_smmu_validate_vste()`: V, Config, S1Fmt, S1ContextPtr, S1CDMax; S1DSS, S1CIR, S1COR,
//! S1CSH, S1STALLD, EATS), or stands for what the guest's unit does without an STE: with
//! SMMUEN clear, GBPA's abort or bypass (IHI 0070 §6.3.14); with an STE the guest's unit
//! cannot use (C_BAD_STE, F_STE_FETCH), an invalid vSTE, which the host turns into an abort.

use vsva_iommufd::abi::{Errno, IommuHwptArmSmmuv3};
use vsva_mem::Rid;
use vsva_smmuv3::Smmuv3;
use vsva_smmuv3::spec::ste::{Ste0, Ste1, config};

use super::Bound;
use crate::vmm::{Counters, Vmm};

/// A valid vSTE of `cfg` with nothing else (abort or bypass).
fn plain(cfg: u8) -> [u64; 2] {
    [Ste0::new().with_v(true).with_config(cfg).into_bits(), 0]
}

/// The vSTE for the guest's STE words `w0`, `w1`: only the fields nesting carries, and the
/// reserved encodings the guest's unit treats as another value as that value (IHI 0070 §5.2:
/// Config 0b001–0b011 behave as abort, EATS 0b11 without DPT as 0b00), for the host refuses
/// them (Linux `arm_smmu_validate_vste()`: `EIO`) and the device would keep its old
/// configuration. Any other configuration than abort, bypass or stage 1 (the guest's unit
/// offers no stage 2) is passed as it is, for the host to refuse.
pub(crate) fn vste(w0: u64, w1: u64) -> [u64; 2] {
    let g0 = Ste0::from_bits(w0);
    let g1 = Ste1::from_bits(w1);
    if !g0.v() {
        return [0, 0];
    }
    if g0.config() & 0b100 == 0 {
        return plain(config::ABORT);
    }
    let s0 = Ste0::new()
        .with_v(true)
        .with_config(g0.config())
        .with_s1fmt(g0.s1fmt())
        .with_s1contextptr(g0.s1contextptr())
        .with_s1cdmax(g0.s1cdmax());
    let s1 = Ste1::new()
        .with_s1dss(g1.s1dss())
        .with_s1cir(g1.s1cir())
        .with_s1cor(g1.s1cor())
        .with_s1csh(g1.s1csh())
        .with_s1stalld(g1.s1stalld())
        .with_eats(if g1.eats() == 0b11 { 0 } else { g1.eats() });
    [s0.into_bits(), s1.into_bits()]
}

/// Whether vSTE `ste` translates (stage 1): what the four flows count as a nested bind.
fn translates(ste: [u64; 2]) -> bool {
    let w0 = Ste0::from_bits(ste[0]);
    w0.v() && w0.config() == config::S1_TRANS
}

impl Vmm {
    /// The vSTE the guest's unit asks for StreamID `rid` now.
    pub(crate) fn wanted_vste(unit: &Smmuv3, rid: Rid) -> [u64; 2] {
        let global = unit.guest_global();
        if !global.smmuen {
            return plain(if global.gbpa_abort {
                config::ABORT
            } else {
                config::BYPASS
            });
        }
        match unit.guest_ste(u32::from(rid.raw())) {
            Ok(ste) => vste(ste.words[0], ste.words[1]),
            Err(_) => [0, 0],
        }
    }

    /// Brings the host in line with the guest's configuration of StreamID `rid`. A vSTE the
    /// host refuses leaves the device aborting, not on its old configuration: the guest
    /// asked for something else than what it had.
    pub(crate) fn sync_stream(&self, unit: &Smmuv3, rid: Rid) {
        let want = Self::wanted_vste(unit, rid);
        // Lock order: the VMM's state, then the SMMUv3 state.
        let st = self.state();
        let mut smmu = self.smmu();
        let Some(viommu) = smmu.viommu else {
            return;
        };
        let Some(stream) = smmu.streams.get(&rid.raw()).copied() else {
            return;
        };
        let Some(dev) = st.devices.get(&rid.raw()) else {
            return;
        };
        let mut install = |ste: [u64; 2]| -> Result<(), Errno> {
            if stream.bound.map(|b| b.ste) == Some(ste) {
                return Ok(());
            }
            let data = IommuHwptArmSmmuv3 { ste };
            let hwpt = self
                .uapi
                .hwpt_nested_smmuv3(dev.dev_id, viommu, &data, self.fault_id)?;
            if let Err(e) = dev.file.attach(hwpt, None) {
                let _ = self.uapi.destroy(hwpt);
                return Err(e);
            }
            if let Some(old) = stream.bound {
                if let Err(e) = self.uapi.destroy(old.hwpt) {
                    tracing::warn!(hwpt = old.hwpt, %e, "destroy of a replaced HWPT failed");
                }
            }
            if translates(ste) {
                Counters::bump(&self.counters.nested_binds);
            }
            if let Some(s) = smmu.streams.get_mut(&rid.raw()) {
                s.bound = Some(Bound { ste, hwpt });
            }
            // The replace answered INVALID every group and stall of the old configuration,
            // of every SubstreamID (`iommufd_auto_response_faults()`: they came through the
            // RID's attachment); the guest's answers to them go nowhere.
            smmu.pending.retain(|&(sid, _, _), _| sid != rid.raw());
            Ok(())
        };
        if let Err(e) = install(want) {
            Counters::bump(&self.counters.bind_errors);
            tracing::warn!(%rid, ?want, %e, "guest STE refused by the host: the device aborts");
            if let Err(e) = install(plain(config::ABORT)) {
                tracing::error!(%rid, %e, "the host refused an aborting STE too");
            }
        }
    }

    /// Every assigned StreamID again (SMMUEN, GBPA or the stream table changed).
    pub(crate) fn sync_streams(&self, unit: &Smmuv3) {
        let rids: Vec<u16> = self.smmu().streams.keys().copied().collect();
        for rid in rids {
            self.sync_stream(unit, Rid::from_raw(rid));
        }
    }

    /// Back to the stage 2 for every StreamID and every nested HWPT destroyed (the guest
    /// rebooted, or the VMM stops): what the guest owed and what the host queued for it is
    /// answered INVALID by the replaces, the events queued for it dropped (the guest's SMMU
    /// is reset).
    pub(crate) fn unbind_streams(&self) {
        let st = self.state();
        let mut smmu = self.smmu();
        self.drop_events(&smmu);
        for (&rid, stream) in smmu.streams.iter_mut() {
            let Some(bound) = stream.bound.take() else {
                continue;
            };
            if let (Some(dev), Some(s2)) = (st.devices.get(&rid), st.s2) {
                if let Err(e) = dev.file.attach(s2, None) {
                    tracing::warn!(rid, %e, "re-attach to the stage 2 failed");
                }
            }
            if let Err(e) = self.uapi.destroy(bound.hwpt) {
                tracing::warn!(hwpt = bound.hwpt, %e, "destroy failed");
            }
        }
        smmu.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vste_keeps_only_what_nesting_carries() {
        // V, Config S1, S1Fmt 0b01, S1ContextPtr 0x8000_0040 >> 6, S1CDMax 8, plus bits
        // nesting refuses (Config's S2 fields live elsewhere; bit 6 of word 1 is S1CSH's low
        // bit and stays; MEV (bit 19) and STRW (bits 31:30) go).
        let g0 = Ste0::new()
            .with_v(true)
            .with_config(config::S1_TRANS)
            .with_s1fmt(1)
            .with_s1contextptr(0x8000_0040 >> 6)
            .with_s1cdmax(8)
            .into_bits();
        let g1 = Ste1::new()
            .with_s1dss(2)
            .with_s1cir(1)
            .with_s1cor(1)
            .with_s1csh(3)
            .with_s1stalld(true)
            .with_eats(1)
            .with_mev(true)
            .with_strw(2)
            .into_bits();
        let [v0, v1] = vste(g0, g1);
        assert_eq!(v0, g0, "word 0 has only allowed fields set");
        assert_eq!(v1, g1 & !((1 << 19) | (0b11 << 30)));
        assert!(translates([v0, v1]));
        assert_eq!(
            vste(g0 & !1, g1),
            [0, 0],
            "an invalid STE is an invalid vSTE"
        );
        // Config 0b001..0b011 behave as abort; EATS 0b11 as 0b00 (§5.2).
        for cfg in [0b001, 0b010, 0b011] {
            let w0 = Ste0::from_bits(g0).with_config(cfg).into_bits();
            assert_eq!(vste(w0, g1), plain(config::ABORT));
        }
        let dpt = Ste1::from_bits(g1).with_eats(3).into_bits();
        assert_eq!(Ste1::from_bits(vste(g0, dpt)[1]).eats(), 0);
        assert!(!translates(plain(config::BYPASS)));
        assert_eq!(plain(config::ABORT), [1, 0]);
        assert_eq!(plain(config::BYPASS), [0b1001, 0]);
    }
}
