//! Invalidation commands and range flushes (IHI 0070 §4.4, §4.5; Linux
//! `__arm_smmu_tlb_inv_range`, `arm_smmu_tlb_inv_range_domain`, `arm_smmu_atc_inv_to_cmd`,
//! `arm_smmu_atc_inv_domain`): TLBIs by ASID for stage-1 attachments, by VMID for stage-2 and
//! nested ones, and ATC invalidations for ATS masters.

use vsva_mem::Rid;
use vsva_smmuv3::spec::cmd::{Command, TlbiRange};

use crate::driver::{Result, RidDomain, Smmuv3Driver};
use crate::master::RidSte;

/// The ATC invalidation of `[addr, addr + len)` (`len` 0: everything) for `ssid` (0: the
/// RID, no PASID — §4.5.1's note on S1DSS = SSID0), as Linux `arm_smmu_atc_inv_to_cmd`.
pub fn atc_inv(sid: u32, ssid: u32, addr: u64, len: u64) -> Command {
    let (addr, size) = if len == 0 || addr.checked_add(len).is_none_or(|e| e > 1 << 52) {
        (0, 52)
    } else {
        let start = addr >> 12;
        let end = (addr + len - 1) >> 12;
        let log2_span = 64 - (start ^ end).leading_zeros();
        let mask = (1u64 << log2_span) - 1;
        ((start & !mask) << 12, log2_span as u8)
    };
    Command::AtcInv {
        sid,
        ssid: (ssid != 0).then_some(ssid),
        global: false,
        size,
        addr,
    }
}

/// Per-page TLBIs above this many pages become one TLBI by ASID when the SMMU has no range
/// invalidation (Linux `CMDQ_MAX_TLBI_OPS(PAGE_SIZE)` in
/// `arm_smmu_mm_arch_invalidate_secondary_tlbs`).
pub const MAX_TLBI_OPS: u64 = 1 << (12 - 3);
/// TLBI NUM field maximum (Linux `CMDQ_TLBI_RANGE_NUM_MAX`).
const RANGE_NUM_MAX: u64 = 31;

/// The TLB invalidation of `[addr, addr + len)` in `asid` (Linux
/// `__arm_smmu_tlb_inv_range` with a 4 KiB granule and leaf = false): with `ril`, range
/// commands of NUM × 2^SCALE pages (TG = 4 KiB); without, one TLBI_NH_VA per page — or one
/// TLBI_NH_ASID once that would exceed [`MAX_TLBI_OPS`] commands, or for ranges beyond the
/// 48-bit input space.
pub fn tlbi_range(asid: u16, addr: u64, len: u64, ril: bool) -> Vec<Command> {
    tlbi_ranges(
        addr,
        len,
        ril,
        Command::TlbiNhAsid { vmid: 0, asid },
        |range| Command::TlbiNhVa {
            vmid: 0,
            asid,
            range,
        },
    )
}

/// The stage-2 TLB invalidation of IPAs `[addr, addr + len)` in `vmid` (Linux
/// `arm_smmu_tlb_inv_range_domain` for a stage-2 domain): TLBI_S2_IPA as [`tlbi_range`]
/// builds TLBI_NH_VA, or one TLBI_S12_VMALL where that would issue one TLBI_NH_ASID.
pub fn tlbi_s2_range(vmid: u16, addr: u64, len: u64, ril: bool) -> Vec<Command> {
    tlbi_ranges(addr, len, ril, Command::TlbiS12Vmall { vmid }, |range| {
        Command::TlbiS2Ipa { vmid, range }
    })
}

fn tlbi_ranges(
    addr: u64,
    len: u64,
    ril: bool,
    whole: Command,
    one: impl Fn(TlbiRange) -> Command,
) -> Vec<Command> {
    let start = addr & !0xfff;
    let end = addr.saturating_add(len).saturating_add(0xfff) & !0xfff;
    let pages = (end - start) >> 12;
    if pages == 0 {
        return Vec::new();
    }
    if end > 1 << 48 || (!ril && pages >= MAX_TLBI_OPS) {
        return vec![whole];
    }
    let mut out = Vec::new();
    let va = |a: u64, num: u8, scale: u8, tg: u8| {
        one(TlbiRange {
            addr: a,
            leaf: false,
            ttl: 0,
            tg,
            num,
            scale,
        })
    };
    if !ril {
        for p in 0..pages {
            out.push(va(start + (p << 12), 0, 0, 0));
        }
        return out;
    }
    let mut num_pages = pages;
    // Non-leaf: avoid NUM = SCALE = 0 as Linux does.
    if num_pages & RANGE_NUM_MAX == 1 {
        num_pages += 1;
    }
    let mut iova = start;
    while num_pages > 0 {
        let scale = num_pages.trailing_zeros() as u64;
        let num = (num_pages >> scale) & RANGE_NUM_MAX;
        out.push(va(iova, (num - 1) as u8, scale as u8, 1));
        iova += num << (scale + 12);
        num_pages -= num << scale;
    }
    out
}

impl Smmuv3Driver {
    /// Invalidates `[addr, addr + len)` of (`rid`, `ssid`): TLBIs of its ASID then CMD_SYNC,
    /// then for an ATS master ATC_INV then CMD_SYNC (IHI 0070 §4.5.1's order; Linux
    /// `arm_smmu_tlb_inv_range_asid` then `arm_smmu_atc_inv_domain`). Nothing for a
    /// SubstreamID without a CD.
    ///
    /// A RID with a stage-2 STE (a nest parent): TLBI_S2_IPA of the IPAs in its VMID, then
    /// TLBI_NH_ALL of the VMID (the nested stage-1 entries that combined the old stage 2),
    /// then ATC_INV of the range (Linux `arm_smmu_tlb_inv_range_domain` for a nest parent).
    /// A RID with a nested STE (the core flushes a nest parent's nested domains whole):
    /// TLBI_S12_VMALL of its VMID, then ATC_INV of everything (Linux's
    /// `nested_ats_flush`: the guest's IOVAs that reached the changed IPAs are unknown).
    ///
    /// # Errors
    /// A command the SMMU refused (e.g. an ATC invalidation the device did not complete).
    pub fn flush_range(&self, rid: Rid, ssid: u32, addr: u64, len: u64) -> Result<()> {
        let sid = rid.raw() as u32;
        let ril = self.features.ril;
        if len == 0 {
            return Ok(());
        }
        self.with_state(|st| {
            let Some(m) = st.masters.get(&sid) else {
                return Ok(());
            };
            let ats = m.opts.ats;
            match m.rid {
                RidDomain::Ste(RidSte::S2 { vmid, .. }) if ssid == 0 => {
                    let cmds = tlbi_s2_range(vmid, addr, len, ril);
                    let whole = matches!(cmds.as_slice(), [Command::TlbiS12Vmall { .. }]);
                    self.issue(st, &cmds)?;
                    if !whole {
                        self.issue(st, &[Command::TlbiNhAll { vmid }])?;
                    }
                    if ats {
                        let c = if whole {
                            atc_inv(sid, 0, 0, 0)
                        } else {
                            atc_inv(sid, 0, addr, len)
                        };
                        self.issue(st, &[c])?;
                    }
                    return Ok(());
                }
                RidDomain::Ste(RidSte::Nested { vmid, .. }) if ssid == 0 => {
                    self.issue(st, &[Command::TlbiS12Vmall { vmid }])?;
                    if ats {
                        self.issue(st, &[atc_inv(sid, 0, 0, 0)])?;
                    }
                    return Ok(());
                }
                _ => {}
            }
            let Some(a) = m.s1.get(&ssid).copied() else {
                return Ok(());
            };
            let cmds = tlbi_range(a.asid, addr, len, ril);
            let whole = matches!(cmds.as_slice(), [Command::TlbiNhAsid { .. }]);
            self.issue(st, &cmds)?;
            if ats {
                let c = if whole {
                    atc_inv(sid, ssid, 0, 0)
                } else {
                    atc_inv(sid, ssid, addr, len)
                };
                self.issue(st, &[c])?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atc_invalidations_cover_an_aligned_power_of_two_span() {
        let span = |addr, len| match atc_inv(1, 2, addr, len) {
            Command::AtcInv { addr, size, .. } => (addr, size),
            c => panic!("{c:?}"),
        };
        assert_eq!(span(0x5000, 0x1000), (0x5000, 0));
        assert_eq!(span(0x5000, 0x2000), (0x4000, 2));
        assert_eq!(span(0x20_0000, 2 << 20), (0x20_0000, 9));
        assert_eq!(span(0x1234, 0), (0, 52), "everything");
        assert_eq!(span(0, u64::MAX), (0, 52));
        assert!(matches!(
            atc_inv(1, 0, 0, 0),
            Command::AtcInv {
                ssid: None,
                global: false,
                ..
            }
        ));
    }

    #[test]
    fn tlbi_ranges_cover_exactly_the_pages_asked() {
        for pages in [1u64, 2, 3, 31, 32, 33, 64, 100, 511, 4097] {
            let cmds = tlbi_range(1, 0x10_0000, pages << 12, true);
            let mut covered = 0;
            let mut next = 0x10_0000;
            for c in &cmds {
                let Command::TlbiNhVa { range, .. } = c else {
                    panic!("{c:?}")
                };
                assert_eq!(range.addr, next);
                let n = (range.num as u64 + 1) << range.scale;
                covered += n;
                next += n << 12;
            }
            // Linux rounds a range of 32k + 1 pages up by one.
            let expect = if pages & 31 == 1 { pages + 1 } else { pages };
            assert_eq!(covered, expect, "{pages} pages");
        }
    }
}
