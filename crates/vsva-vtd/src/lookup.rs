//! From a request to its PASID-table entry: root table -> scalable-mode context entry ->
//! PASID directory -> PASID table (VT-d 4.1 §3.4.3, §9.2–9.6), with every check the spec
//! names, in the order the structures are read.
//!
//! Every check produces the spec's fault reason; FPD bits met on the way (even in entries that
//! are not present) are accumulated so the caller can suppress qualified faults.

use vsva_mem::PhysMem;

use crate::config::VtdConfig;
use crate::request::{Request, RequestKind};
use crate::spec::fault::FaultReason;
use crate::spec::pasid::{self, PasidDirEntry, PasidEntry, Pgtt};
use crate::spec::registers::Ttm;
use crate::spec::root_context::{self, ContextEntry, RootHalf};

/// The translation set up for one (requester, PASID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// The context entry.
    pub context: ContextEntry,
    /// The PASID the request was translated under (its own, or RID_PASID / 0 without one).
    pub pasid: u32,
    /// The PASID-table entry.
    pub entry: PasidEntry,
    /// Its translation type.
    pub pgtt: Pgtt,
    /// Whether the request is privileged (its own PR bit; requests without PASID are not).
    pub privileged: bool,
    /// FPD seen in the context, directory or PASID entry: qualified faults are not recorded.
    pub fpd: bool,
}

/// A failed lookup: the reason and whether fault processing is disabled on the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupFault {
    /// The spec's reason.
    pub reason: FaultReason,
    /// FPD seen in the context, directory or PASID entry.
    pub fpd: bool,
}

fn fault(reason: FaultReason, fpd: bool) -> LookupFault {
    LookupFault { reason, fpd }
}

fn read_qwords<const N: usize>(mem: &dyn PhysMem, addr: u64) -> Option<[u64; N]> {
    let mut q = [0u64; N];
    for (i, w) in q.iter_mut().enumerate() {
        *w = mem.load_u64(addr.checked_add(8 * i as u64)?).ok()?;
    }
    Some(q)
}

/// Finds and checks the scalable-mode context entry of `rid` (§9.2, §9.4): root entry,
/// context entry, present and reserved bits.
///
/// # Errors
/// SRT.x and SCT.1–3 fault reasons.
pub fn resolve_context(
    cfg: &VtdConfig,
    mem: &dyn PhysMem,
    root: u64,
    rid: vsva_mem::Rid,
) -> Result<ContextEntry, LookupFault> {
    let (bus, devfn) = (rid.bus(), rid.devfn());
    let half = mem
        .load_u64(root + root_context::root_half_offset(bus, devfn))
        .map(RootHalf::from_bits)
        .map_err(|_| fault(FaultReason::RootAccess, false))?;
    if !half.p() {
        return Err(fault(FaultReason::RootNotPresent, false));
    }
    if half.has_reserved_bits(cfg.haw) {
        return Err(fault(FaultReason::RootReserved, false));
    }
    let ctx_addr = half.table() + root_context::context_offset(devfn);
    let context = read_qwords::<4>(mem, ctx_addr)
        .map(ContextEntry::from_qwords)
        .ok_or(fault(FaultReason::ContextAccess, false))?;
    let fpd = context.lo.fpd();
    if !context.lo.p() {
        return Err(fault(FaultReason::ContextNotPresent, fpd));
    }
    if context.has_reserved_bits(&cfg.context_features()) {
        return Err(fault(FaultReason::ContextReserved, fpd));
    }
    Ok(context)
}

/// Resolves `req` to its PASID-table entry, given the latched root table and mode.
///
/// # Errors
/// The spec's fault reason for the first check that fails.
pub fn resolve(
    cfg: &VtdConfig,
    mem: &dyn PhysMem,
    root: u64,
    ttm: Ttm,
    req: &Request,
) -> Result<Resolved, LookupFault> {
    match ttm {
        Ttm::Scalable => {}
        Ttm::Legacy if req.pasid.is_some() => {
            return Err(fault(FaultReason::LegacyModeWithPasid, false));
        }
        // Legacy-mode tables are not modelled; the reserved and abort-DMA modes (no ADMS
        // advertised) are invalid root-table modes.
        _ => return Err(fault(FaultReason::RootTableAddress, false)),
    }
    let context = resolve_context(cfg, mem, root, req.rid)?;
    let mut fpd = context.lo.fpd();
    if req.kind != RequestKind::Untranslated && !context.lo.dte() {
        return Err(fault(FaultReason::ContextDteClear, fpd));
    }
    let dir_limit = context.pasid_dir_entries() * 64;
    let (pasid, privileged) = match req.pasid {
        Some(p) => {
            if !context.lo.paside() {
                return Err(fault(FaultReason::ContextPasidDisabled, fpd));
            }
            if p.raw() as u64 >= dir_limit.min(cfg.pasid_limit()) {
                return Err(fault(FaultReason::ContextPasidTooLarge, fpd));
            }
            (p.raw(), req.access.is_priv())
        }
        None => {
            // §9.4: RID_PASID is a field only with ECAP.RPS (reserved, SCT.3, without it, so
            // it reads 0 here); requests without PASID use it, or PASID 0 (§3.4.3). A value
            // beyond the PASIDs the unit has is a field error (SCT.9); one the entry's own
            // directory (PDTS) cannot hold makes the entry invalid (SCT.4).
            let p = context.hi.rid_pasid();
            if p as u64 >= cfg.pasid_limit() {
                return Err(fault(FaultReason::ContextRidPasid, fpd));
            }
            if p as u64 >= dir_limit {
                return Err(fault(FaultReason::ContextInvalid, fpd));
            }
            (p, false)
        }
    };

    // PASID directory entry (§9.5).
    let dir_addr = context.pasid_dir() + pasid::dir_index(pasid) * pasid::DIR_ENTRY_BYTES;
    let dir = mem
        .load_u64(dir_addr)
        .map(PasidDirEntry::from_bits)
        .map_err(|_| fault(FaultReason::PasidDirAccess, fpd))?;
    fpd |= dir.fpd();
    if !dir.p() {
        return Err(fault(FaultReason::PasidDirNotPresent, fpd));
    }
    if dir.has_reserved_bits(cfg.haw) {
        return Err(fault(FaultReason::PasidDirReserved, fpd));
    }

    // PASID-table entry (§9.6).
    let entry_addr = dir.table() + pasid::table_index(pasid) * pasid::PASID_ENTRY_BYTES;
    let entry = read_qwords::<8>(mem, entry_addr)
        .map(PasidEntry::from_qwords)
        .ok_or(fault(FaultReason::PasidAccess, fpd))?;
    fpd |= entry.q0.fpd();
    if !entry.q0.p() {
        return Err(fault(FaultReason::PasidNotPresent, fpd));
    }
    if entry.has_reserved_bits(&cfg.pasid_features()) {
        return Err(fault(FaultReason::PasidReserved, fpd));
    }
    let pgtt = entry
        .pgtt()
        .filter(|t| supported(cfg, &entry, *t))
        .ok_or(fault(FaultReason::PasidInvalid, fpd))?;
    if privileged && !entry.q2.sre() {
        return Err(fault(FaultReason::PasidSreClear, fpd));
    }
    if req.access.is_exec() && (!cfg.execute_requests || !entry.q2.ere()) {
        return Err(fault(FaultReason::PasidEreClear, fpd));
    }
    Ok(Resolved {
        context,
        pasid,
        entry,
        pgtt,
        privileged,
        fpd,
    })
}

/// SPT.4: is this translation type, with this entry's AW and FSPM, one the unit supports?
fn supported(cfg: &VtdConfig, e: &PasidEntry, pgtt: Pgtt) -> bool {
    let ss_ok = || cfg.ss_levels_ok(e.ss_levels());
    let fs_ok = || match e.fs_levels() {
        Some(4) => true,
        Some(5) => cfg.fs_5level,
        _ => false,
    };
    match pgtt {
        Pgtt::FirstStage => cfg.first_stage && fs_ok(),
        Pgtt::SecondStage => cfg.second_stage && ss_ok(),
        Pgtt::Nested => cfg.nested && ss_ok() && fs_ok(),
        Pgtt::PassThrough => cfg.pass_through,
    }
}

/// Re-checks the request-specific conditions against a cached resolution: the checks
/// [`resolve`] makes that depend on the request rather than on the tables (SCT.5, SPT.5,
/// SPT.6). Returns the resolution with the request's privilege.
///
/// # Errors
/// The fault the full lookup would have given.
pub fn recheck(cfg: &VtdConfig, r: &Resolved, req: &Request) -> Result<Resolved, LookupFault> {
    let fpd = r.fpd;
    if req.kind != RequestKind::Untranslated && !r.context.lo.dte() {
        return Err(fault(FaultReason::ContextDteClear, fpd));
    }
    let privileged = req.pasid.is_some() && req.access.is_priv();
    if privileged && !r.entry.q2.sre() {
        return Err(fault(FaultReason::PasidSreClear, fpd));
    }
    if req.access.is_exec() && (!cfg.execute_requests || !r.entry.q2.ere()) {
        return Err(fault(FaultReason::PasidEreClear, fpd));
    }
    Ok(Resolved { privileged, ..*r })
}
