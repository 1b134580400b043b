//! Masters: their STE, their CD table, what each SubstreamID translates through, and the
//! invalidations each change needs (Linux `arm_smmu_attach_dev`, `arm_smmu_set_pasid`,
//! `arm_smmu_remove_dev_pasid`, `arm_smmu_attach_dev_nested`); range flushes are the
//! `inval` module's.

use vsva_mem::Rid;
use vsva_smmuv3::spec::cd::{CD_BYTES, Cd};
use vsva_smmuv3::spec::cmd::Command;
use vsva_smmuv3::spec::ste::{STE_BYTES, Ste, s1dss};

use crate::driver::{
    DriverError, Master, MasterOptions, Result, RidDomain, S1Attach, Smmuv3Driver, State,
};
use crate::inval::atc_inv;
use crate::tables::{self, CdTable, S1Cd};

/// What one SubstreamID (0: the RID) is set to translate through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Every access aborts (no CD; for the RID, an aborting STE or S1DSS = terminate).
    Blocked,
    /// Bypass (the RID only: a bypass STE or S1DSS = bypass).
    Identity,
    /// Stage 1 through a CD.
    S1 {
        /// Domain ID: CDs of one domain share its ASID.
        did: u16,
        /// TTB0.
        root: u64,
        /// T0SZ.
        t0sz: u8,
        /// An address space shared with a process (MAIR_EL1, no HTTU: Linux's
        /// `arm_smmu_make_sva_cd`) rather than an io-pgtable domain.
        sva: bool,
        /// Hardware dirty state (dirty tracking).
        dirty: bool,
    },
    /// A stage-2 or nested domain at the RID: an STE of its own.
    Ste(RidSte),
}

/// An STE with stage 2 that the RID points at (Linux `arm_smmu_make_s2_domain_ste`,
/// `arm_smmu_make_nested_domain_ste`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RidSte {
    /// A stage-2 domain (a nest parent): a stage-2 STE under `vmid`.
    S2 {
        /// S2VMID.
        vmid: u16,
        /// The stage-2 table (the driver's nest-parent format).
        ttb: u64,
    },
    /// A nested domain: the guest's STE words over the stage 2 of `vmid`.
    Nested {
        /// The nest parent's VMID.
        vmid: u16,
        /// The nest parent's table.
        ttb: u64,
        /// The guest's STE words as `arm_smmu_validate_vste` left them.
        ste: [u64; 2],
        /// The guest asked for ATS (its EATS).
        ats: bool,
    },
}

impl RidSte {
    /// The VMID the STE carries.
    pub fn vmid(&self) -> u16 {
        match *self {
            RidSte::S2 { vmid, .. } | RidSte::Nested { vmid, .. } => vmid,
        }
    }
}

/// Why a change of a master was refused before anything was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such master.
    NoMaster,
    /// The SubstreamID does not fit the master's CD table (Linux: EINVAL).
    SsidTooWide,
    /// The SMMU cannot do this for a SubstreamID (identity or a nested domain on a PASID).
    Unsupported,
    /// Not a stage-1 attachment where one is needed: a stage-2 domain at a PASID, or a PASID
    /// while the RID is a stage-2 or nested domain (Linux: EINVAL).
    NotStage1,
    /// The master has PASIDs in use (Linux `arm_smmu_ssids_in_use`: EBUSY).
    Busy,
    /// The domain ID does not fit the SMMU's VMIDs (8 bits without IDR0.VMID16: ENOSPC).
    NoVmid,
}

/// What the SMMU reads of an entry in its state (Linux `get_used`).
type UsedBits = fn(&[u64; 8]) -> [u64; 8];

/// Writes `target` over the entry at `at` the way Linux's `arm_smmu_write_entry` does:
/// when only one 64-bit word of what the SMMU reads changes, a hitless update (the unused
/// bits first, then that word); otherwise V = 0 first, then the other words, then word 0.
/// `safe` bits used by both entries may change at any step (Linux `get_update_safe`).
/// `sync` runs after each step that changed memory (CMD_CFGI_* + CMD_SYNC).
fn write_entry(
    mem: &dyn vsva_mem::PhysMem,
    at: u64,
    target: &[u64; 8],
    (used, safe): (UsedBits, [u64; 8]),
    v_bit: u64,
    mut sync: impl FnMut() -> Result<()>,
) -> Result<()> {
    let mut cur = [0u64; 8];
    for (i, w) in cur.iter_mut().enumerate() {
        *w = mem.load_u64(at + 8 * i as u64)?;
    }
    let mut cur_used = used(&cur);
    let target_used = used(target);
    let mut unused_update = [0u64; 8];
    let mut diff = 0u8;
    for i in 0..8 {
        cur_used[i] &= !(safe[i] & target_used[i] & cur_used[i]);
        unused_update[i] = (cur[i] & cur_used[i]) | (target[i] & !cur_used[i]);
        if (unused_update[i] & target_used[i]) != target[i] {
            diff |= 1 << i;
        }
    }
    let mut set = |words: &[u64; 8], from: usize, to: usize, cur: &mut [u64; 8]| -> Result<()> {
        let mut changed = false;
        for i in from..to {
            if cur[i] != words[i] {
                mem.store_u64(at + 8 * i as u64, words[i])?;
                cur[i] = words[i];
                changed = true;
            }
        }
        if changed { sync() } else { Ok(()) }
    };
    if diff.count_ones() == 1 {
        let critical = diff.trailing_zeros() as usize;
        set(&unused_update, 0, 8, &mut cur)?;
        set(target, critical, critical + 1, &mut cur)?;
        set(target, 0, 8, &mut cur)
    } else if diff != 0 {
        let mut v_off = cur;
        v_off[0] &= !v_bit;
        set(&v_off, 0, 1, &mut cur)?;
        set(target, 1, 8, &mut cur)?;
        set(target, 0, 1, &mut cur)
    } else {
        set(target, 0, 8, &mut cur)
    }
}

/// STE.V (word 0 bit 0) and CD.V (word 0 bit 31).
const STE_V: u64 = 1;
const CD_V: u64 = 1 << 31;

fn cd_used(w: &[u64; 8]) -> [u64; 8] {
    tables::cd_used(&Cd { words: *w })
}

fn ste_used(w: &[u64; 8]) -> [u64; 8] {
    tables::ste_used(&Ste { words: *w })
}

impl Smmuv3Driver {
    /// Takes `rid` as a master (Linux `arm_smmu_probe_device` + `arm_smmu_init_sid_strtab`):
    /// a CD table for its PASIDs and an aborting STE until something is attached.
    ///
    /// # Errors
    /// [`DriverError::SidOutOfRange`] (ERANGE), out of memory.
    pub fn add_master(&self, rid: Rid, opts: MasterOptions) -> Result<()> {
        let sid = rid.raw() as u32;
        let f = self.features;
        self.with_state(|st| {
            if !st.strtab.covers(sid) {
                return Err(DriverError::SidOutOfRange(sid));
            }
            st.strtab.ste_slot(&mut st.carver, self.mem.as_ref(), sid)?;
            let opts = MasterOptions {
                ssid_bits: opts.ssid_bits.min(f.ssid_bits),
                ats: opts.ats && f.ats,
                pri: opts.pri && f.pri,
                stall: (opts.stall && f.stall) || f.stall_force,
            };
            if st.masters.contains_key(&sid) {
                if let Some(m) = st.masters.get_mut(&sid) {
                    m.opts.ats = opts.ats;
                    m.opts.pri = opts.pri;
                }
            } else {
                let cd = CdTable::new(&mut st.carver, opts.ssid_bits, f.two_level_cdtab)?;
                st.masters.insert(
                    sid,
                    Master {
                        opts,
                        cd,
                        rid: RidDomain::Blocked,
                        s1: Default::default(),
                    },
                );
            }
            self.update_ste(st, sid)
        })
    }

    /// The STE the master's state calls for (Linux `arm_smmu_attach_dev_ste` /
    /// `arm_smmu_make_cdtable_ste`), written hitlessly where possible.
    fn update_ste(&self, st: &mut State, sid: u32) -> Result<()> {
        let f = self.features;
        let Some(m) = st.masters.get(&sid) else {
            return Ok(());
        };
        let cd_in_use = m.rid == RidDomain::S1 || m.s1.keys().any(|&s| s != 0);
        let stall_disable = f.stall && !f.stall_force && !m.opts.stall;
        let target = match m.rid {
            RidDomain::Ste(RidSte::S2 { vmid, ttb }) => {
                tables::s2_ste(&self.s2_cfg(vmid, ttb), m.opts.ats, m.opts.stall)
            }
            RidDomain::Ste(RidSte::Nested {
                vmid,
                ttb,
                ste,
                ats,
            }) => tables::nested_ste(
                &self.s2_cfg(vmid, ttb),
                ste,
                ats && m.opts.ats,
                m.opts.stall,
                stall_disable,
            ),
            rid if cd_in_use => {
                let dss = match rid {
                    RidDomain::S1 => s1dss::SSID0,
                    RidDomain::Identity => s1dss::BYPASS,
                    _ => s1dss::TERMINATE,
                };
                tables::cdtable_ste(&m.cd, dss, m.opts.ats, stall_disable)
            }
            RidDomain::Identity => tables::bypass_ste(),
            _ => tables::abort_ste(),
        };
        let at = st.strtab.ste_slot(&mut st.carver, self.mem.as_ref(), sid)?;
        let mem = self.mem.clone();
        let mut sync = || self.issue(st, &[Command::CfgiSte { sid, leaf: true }]);
        debug_assert_eq!(STE_BYTES, 64);
        write_entry(
            mem.as_ref(),
            at,
            &target.words,
            (ste_used, tables::ste_update_safe()),
            STE_V,
            &mut sync,
        )
    }

    /// Writes the CD of `ssid` (None: clears it), with CMD_CFGI_CD + CMD_SYNC per step
    /// (Linux `arm_smmu_write_cd_entry`).
    fn write_cd(&self, st: &mut State, sid: u32, ssid: u32, cd: Option<&Cd>) -> Result<()> {
        let Some(table) = st.masters.get(&sid).map(|m| m.cd) else {
            return Ok(());
        };
        let Some((at, new_l2)) =
            table.cd_slot(&mut st.carver, self.mem.as_ref(), ssid, cd.is_some())?
        else {
            return Ok(());
        };
        if new_l2 {
            // "An invalid L1CD can be cached" (Linux `arm_smmu_alloc_cd_ptr`): non-leaf.
            self.issue(
                st,
                &[Command::CfgiCd {
                    sid,
                    ssid,
                    leaf: false,
                }],
            )?;
        }
        debug_assert_eq!(CD_BYTES, 64);
        let target = cd.map_or([0; 8], |c| c.words);
        let mem = self.mem.clone();
        let mut sync = || {
            self.issue(
                st,
                &[Command::CfgiCd {
                    sid,
                    ssid,
                    leaf: true,
                }],
            )
        };
        write_entry(
            mem.as_ref(),
            at,
            &target,
            (cd_used, [0; 8]),
            CD_V,
            &mut sync,
        )
    }

    fn check_ssid(&self, st: &State, sid: u32, ssid: u32) -> std::result::Result<(), Refusal> {
        let m = st.masters.get(&sid).ok_or(Refusal::NoMaster)?;
        if ssid != 0 && ssid >> m.cd.s1cdmax != 0 {
            return Err(Refusal::SsidTooWide);
        }
        Ok(())
    }

    /// Points (`rid`, `ssid`) at `target`. `Ok(Err(_))` is a refusal before any change.
    ///
    /// # Errors
    /// A command the SMMU refused, memory errors, no free ASID.
    pub fn set_target(
        &self,
        rid: Rid,
        ssid: u32,
        target: Target,
    ) -> Result<std::result::Result<(), Refusal>> {
        let sid = rid.raw() as u32;
        self.with_state(|st| {
            let before = st.masters.get(&sid).map(|m| m.rid);
            let r = self.set_target_locked(st, sid, ssid, target);
            let after = st.masters.get(&sid).map(|m| m.rid);
            self.account_vmid(st, sid, before, after)?;
            r
        })
    }

    /// Counts the masters of each VMID as the RID's STE changes; when a master leaves a
    /// stage-2 or nested STE its ATC goes (a nested translation's entries are the guest's to
    /// invalidate only while the guest owns it), and when the last one leaves a VMID, the
    /// VMID's TLB entries go with TLBI_S12_VMALL (Linux `arm_smmu_tlb_inv_vmid` when the
    /// stage-2 domain is freed) before another domain may get it.
    fn account_vmid(
        &self,
        st: &mut State,
        sid: u32,
        before: Option<RidDomain>,
        after: Option<RidDomain>,
    ) -> Result<()> {
        if before == after {
            return Ok(());
        }
        let (old, new) = (before.and_then(|r| r.vmid()), after.and_then(|r| r.vmid()));
        if let Some(v) = new.filter(|&v| Some(v) != old) {
            *st.vmids.entry(v).or_insert(0) += 1;
        }
        if old.is_some() && st.masters.get(&sid).is_some_and(|m| m.opts.ats) {
            self.issue(st, &[atc_inv(sid, 0, 0, 0)])?;
        }
        if let Some(v) = old.filter(|&v| Some(v) != new) {
            let left = st.vmids.get_mut(&v).map(|n| {
                *n -= 1;
                *n
            });
            if left == Some(0) {
                st.vmids.remove(&v);
                self.issue(st, &[Command::TlbiS12Vmall { vmid: v }])?;
            }
        }
        Ok(())
    }

    /// Points the RID at a stage-2 or nested STE (`next`): only for SubstreamID 0 (a
    /// stage-2 domain at a PASID is EINVAL as Linux's `arm_smmu_s1_set_dev_pasid` says; a
    /// nested domain has no PASID attachment), and only while no PASID has a CD (Linux
    /// `arm_smmu_attach_dev` / `arm_smmu_attach_dev_nested`: EBUSY).
    fn set_rid_ste(
        &self,
        st: &mut State,
        sid: u32,
        ssid: u32,
        next: RidSte,
    ) -> Result<std::result::Result<(), Refusal>> {
        if ssid != 0 {
            return Ok(Err(match next {
                RidSte::S2 { .. } => Refusal::NotStage1,
                RidSte::Nested { .. } => Refusal::Unsupported,
            }));
        }
        if !self.features.vmid16 && next.vmid() > 0xff {
            return Ok(Err(Refusal::NoVmid));
        }
        if st
            .masters
            .get(&sid)
            .is_some_and(|m| m.s1.keys().any(|&s| s != 0))
        {
            return Ok(Err(Refusal::Busy));
        }
        let next = RidDomain::Ste(next);
        self.detach_s1(st, sid, 0, next)?;
        self.set_rid(st, sid, next)?;
        Ok(Ok(()))
    }

    fn set_target_locked(
        &self,
        st: &mut State,
        sid: u32,
        ssid: u32,
        target: Target,
    ) -> Result<std::result::Result<(), Refusal>> {
        let f = self.features;
        {
            if let Err(r) = self.check_ssid(st, sid, ssid) {
                return Ok(Err(r));
            }
            match target {
                Target::Blocked => {
                    self.detach_s1(st, sid, ssid, RidDomain::Blocked)?;
                    if ssid == 0 {
                        self.set_rid(st, sid, RidDomain::Blocked)?;
                    }
                }
                Target::Identity => {
                    if ssid != 0 {
                        return Ok(Err(Refusal::Unsupported));
                    }
                    self.detach_s1(st, sid, 0, RidDomain::Identity)?;
                    self.set_rid(st, sid, RidDomain::Identity)?;
                }
                Target::Ste(next) => return self.set_rid_ste(st, sid, ssid, next),
                Target::S1 {
                    did,
                    root,
                    t0sz,
                    sva,
                    dirty,
                } => {
                    // Linux `arm_smmu_set_pasid`: a PASID needs the CD table in the STE, or
                    // a RID that is identity or blocked (EINVAL).
                    if ssid != 0 && st.masters.get(&sid).is_some_and(|m| m.rid.vmid().is_some()) {
                        return Ok(Err(Refusal::NotStage1));
                    }
                    let bits = if f.asid16 { 16 } else { 8 };
                    let asid = st.asids.get(did, bits)?;
                    let stall = st.masters.get(&sid).is_some_and(|m| m.opts.stall);
                    let cd = tables::s1_cd(&S1Cd {
                        ttb0: Some(root),
                        t0sz,
                        ips: f.oas.min(5),
                        asid,
                        mair: if sva {
                            tables::MAIR_EL1
                        } else {
                            tables::IO_PGTABLE_MAIR
                        },
                        stall,
                        // arm_smmu_make_sva_cd sets neither (the CPU's own AF/DBM
                        // management serves SVA); io-pgtable domains set both with
                        // dirty tracking (IO_PGTABLE_QUIRK_ARM_HD).
                        ha: f.ha && dirty && !sva,
                        hd: f.hd && dirty && !sva,
                    });
                    let old = st.masters.get(&sid).and_then(|m| m.s1.get(&ssid).copied());
                    if let Err(e) = self.write_cd(st, sid, ssid, Some(&cd)) {
                        st.asids.put(did);
                        return Err(e);
                    }
                    if let Some(m) = st.masters.get_mut(&sid) {
                        m.s1.insert(ssid, S1Attach { did, asid, sva });
                        if ssid == 0 {
                            m.rid = RidDomain::S1;
                        }
                    }
                    self.update_ste(st, sid)?;
                    if let Some(o) = old {
                        // The previous translation may sit in the device's ATC.
                        self.invalidate_ssid(st, sid, ssid, Some(o.asid))?;
                        if st.asids.put(o.did) {
                            self.issue(
                                st,
                                &[Command::TlbiNhAsid {
                                    vmid: 0,
                                    asid: o.asid,
                                }],
                            )?;
                        }
                    }
                }
            }
            Ok(Ok(()))
        }
    }

    fn set_rid(&self, st: &mut State, sid: u32, rid: RidDomain) -> Result<()> {
        if let Some(m) = st.masters.get_mut(&sid) {
            m.rid = rid;
        }
        self.update_ste(st, sid)?;
        let ats = st.masters.get(&sid).is_some_and(|m| m.opts.ats);
        if ats {
            self.issue(st, &[atc_inv(sid, 0, 0, 0)])?;
        }
        Ok(())
    }

    /// TLBI of `asid` (if any) and, for ATS masters, ATC_INV of everything of `ssid`.
    fn invalidate_ssid(
        &self,
        st: &mut State,
        sid: u32,
        ssid: u32,
        asid: Option<u16>,
    ) -> Result<()> {
        if let Some(asid) = asid {
            self.issue(st, &[Command::TlbiNhAsid { vmid: 0, asid }])?;
        }
        if st.masters.get(&sid).is_some_and(|m| m.opts.ats) {
            self.issue(st, &[atc_inv(sid, ssid, 0, 0)])?;
        }
        Ok(())
    }

    /// Removes `ssid`'s CD (Linux `arm_smmu_remove_dev_pasid`). An SVA CD first becomes the
    /// EPD0 "fault everything" CD, then its ASID and the device's ATC are invalidated, then
    /// it is cleared (Linux `arm_smmu_mm_release` before the unbind). A paging CD is cleared,
    /// then invalidated.
    fn detach_s1(&self, st: &mut State, sid: u32, ssid: u32, next: RidDomain) -> Result<()> {
        let Some(old) = st.masters.get_mut(&sid).and_then(|m| m.s1.remove(&ssid)) else {
            return Ok(());
        };
        if old.sva {
            let stall = st.masters.get(&sid).is_some_and(|m| m.opts.stall);
            let dead = tables::s1_cd(&S1Cd {
                ttb0: None,
                t0sz: 0,
                ips: self.features.oas.min(5),
                asid: old.asid,
                mair: tables::MAIR_EL1,
                stall,
                ha: false,
                hd: false,
            });
            self.write_cd(st, sid, ssid, Some(&dead))?;
            self.invalidate_ssid(st, sid, ssid, Some(old.asid))?;
            self.write_cd(st, sid, ssid, None)?;
        } else {
            self.write_cd(st, sid, ssid, None)?;
            self.invalidate_ssid(st, sid, ssid, Some(old.asid))?;
        }
        st.asids.put(old.did);
        if ssid == 0 {
            if let Some(m) = st.masters.get_mut(&sid) {
                m.rid = next;
            }
        }
        self.update_ste(st, sid)
    }

    /// Removes `ssid`'s translation (for the RID: blocked).
    ///
    /// # Errors
    /// As [`set_target`](Self::set_target).
    pub fn clear_target(&self, rid: Rid, ssid: u32) -> Result<std::result::Result<(), Refusal>> {
        self.set_target(rid, ssid, Target::Blocked)
    }

    /// The ASID (`rid`, `ssid`)'s CD carries, if it has one.
    pub fn asid_of(&self, rid: Rid, ssid: u32) -> Option<u16> {
        let g = self.lock();
        let st = g.as_ref()?;
        st.masters
            .get(&(rid.raw() as u32))?
            .s1
            .get(&ssid)
            .map(|a| a.asid)
    }

    /// The STE and CD table of a master, as the driver placed them (for tests and tools).
    pub fn master_tables(&self, rid: Rid) -> Option<(u64, u8, u8)> {
        let g = self.lock();
        let m = g.as_ref()?.masters.get(&(rid.raw() as u32))?;
        Some((m.cd.base, m.cd.s1fmt, m.cd.s1cdmax))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use vsva_mem::{PhysMem, PhysMemory};

    use super::*;

    const AT: u64 = 0x1000;

    fn cd(root: Option<u64>, asid: u16) -> Cd {
        tables::s1_cd(&S1Cd {
            ttb0: root,
            t0sz: 16,
            ips: 5,
            asid,
            mair: tables::MAIR_EL1,
            stall: false,
            ha: false,
            hd: false,
        })
    }

    /// Writes entry `target` over `current` as `write_entry` does with `rules` and valid bit
    /// `v_bit`; returns what memory held at each sync.
    fn write_steps(
        current: &[u64; 8],
        target: &[u64; 8],
        rules: (UsedBits, [u64; 8]),
        v_bit: u64,
    ) -> Vec<[u64; 8]> {
        let mem = PhysMemory::new(1 << 20).unwrap();
        for (i, w) in current.iter().enumerate() {
            mem.store_u64(AT + 8 * i as u64, *w).unwrap();
        }
        let seen = RefCell::new(Vec::new());
        let snapshot = || {
            let mut w = [0u64; 8];
            for (i, x) in w.iter_mut().enumerate() {
                *x = mem.load_u64(AT + 8 * i as u64).unwrap();
            }
            seen.borrow_mut().push(w);
            Ok(())
        };
        write_entry(&mem, AT, target, rules, v_bit, snapshot).unwrap();
        seen.into_inner()
    }

    /// Writes CD `target` over `current`; what memory held at each sync.
    fn steps(current: &Cd, target: &Cd) -> Vec<[u64; 8]> {
        write_steps(&current.words, &target.words, (cd_used, [0; 8]), CD_V)
    }

    #[test]
    fn a_new_cd_is_written_whole_before_its_valid_word() {
        let target = cd(Some(0x4000), 3);
        let s = steps(&Cd::default(), &target);
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0][0],
            target.words[0] & !CD_V,
            "V still clear while the rest is written"
        );
        assert_eq!(s[0][1..], target.words[1..]);
        assert_eq!(s[1], target.words);
    }

    #[test]
    fn turning_on_epd0_is_hitless_word_0_first() {
        let live = cd(Some(0x4000), 3);
        let dead = cd(None, 3);
        let s = steps(&live, &dead);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0][0], dead.words[0], "EPD0 first");
        assert_eq!(s[0][1], live.words[1], "TTB0 left until unused");
        assert_eq!(s[1], dead.words);
    }

    #[test]
    fn changing_table_and_asid_goes_through_an_invalid_cd() {
        let a = cd(Some(0x4000), 3);
        let b = cd(Some(0x8000), 4);
        let s = steps(&a, &b);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0][0], a.words[0] & !CD_V, "V = 0 first");
        assert_eq!(s[1][1], b.words[1]);
        assert_eq!(s[1][0] & CD_V, 0);
        assert_eq!(s[2], b.words);
    }

    #[test]
    fn rewriting_the_same_cd_syncs_nothing() {
        let a = cd(Some(0x4000), 3);
        assert!(steps(&a, &a).is_empty());
    }

    #[test]
    fn clearing_a_cd_clears_v_first() {
        let a = cd(Some(0x4000), 3);
        let s = steps(&a, &Cd::default());
        assert_eq!(s[0][0] & CD_V, 0);
        assert_eq!(s.last().unwrap(), &[0; 8]);
    }

    /// Writes STE `target` over `current`; what memory held at each sync.
    fn ste_steps(current: &Ste, target: &Ste) -> Vec<[u64; 8]> {
        write_steps(
            &current.words,
            &target.words,
            (ste_used, tables::ste_update_safe()),
            STE_V,
        )
    }

    #[test]
    fn a_stage_2_ste_becomes_nested_and_back_without_an_invalid_step() {
        let s2 = tables::S2Cfg {
            vmid: 3,
            ttb: 0x10_0000,
            t0sz: 16,
            sl0: 2,
            ps: 5,
            coherent: true,
            fwb: true,
            shcfg_incoming: false,
        };
        let guest = [1 | 5 << 1 | 0x4000_0000 | 4 << 59, 1 << 2 | 1 << 4 | 3 << 6];
        let (a, b) = (
            tables::s2_ste(&s2, false, false),
            tables::nested_ste(&s2, guest, false, false, true),
        );
        for (from, to) in [(a, b), (b, a)] {
            let s = ste_steps(&from, &to);
            // Config is the one used field that changes (MEV may change at any step, Linux
            // `arm_smmu_get_ste_update_safe`): V stays 1 throughout.
            assert!(s.iter().all(|w| w[0] & STE_V != 0), "{s:x?}");
            assert_eq!(s.last(), Some(&to.words));
        }
        // Another VMID (a used stage-2 field) beside Config: through V = 0.
        let c = tables::nested_ste(&tables::S2Cfg { vmid: 4, ..s2 }, guest, false, false, true);
        assert_eq!(ste_steps(&a, &c)[0][0] & STE_V, 0);
    }
}
