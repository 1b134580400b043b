//! Address translation by PASID-granular translation type (VT-d 4.1 §3.6 first stage, §3.7
//! second stage, §3.8 nested, §3.9 pass-through), on vsva-pgtable's walkers, and the mapping
//! of walk faults to the spec's fault reasons.
//!
//! A PASID entry with PWSNP = 0 walks through [`NonSnooped`] memory: a walk that needs to set
//! A or D faults (SFS.9, or SSS.5 with SSADE) and writes nothing; with PWSNP = 1 an update
//! that cannot complete is SFS.10 / SSS.6.

use vsva_mem::{Access, MemError, PageSize, PhysMem};
use vsva_pgtable::nested::Stage2;
use vsva_pgtable::vtd_ss::VtdSecondStage;
use vsva_pgtable::walk::Direct;
use vsva_pgtable::x86::X86Paging;
use vsva_pgtable::{Fault, FaultReason as Walk, Format, Perm, Stage, walk};

use crate::config::VtdConfig;
use crate::lookup::Resolved;
use crate::request::{Request, RequestKind, Translated};
use crate::spec::INTERRUPT_RANGE;
use crate::spec::fault::FaultReason;
use crate::spec::pasid::{PasidEntry, Pgtt};

/// The first-stage format a PASID entry selects (x86 paging with the entry's controls).
pub fn first_stage_format(cfg: &VtdConfig, e: &PasidEntry) -> X86Paging {
    X86Paging {
        levels: e.fs_levels().unwrap_or(4),
        maxphyaddr: cfg.haw,
        nxe: true,
        wp: e.q2.wpe(),
        smep: false,
        smap: false,
        page_1g: cfg.fs_1g,
        ad: true,
        extended_accessed: cfg.eafs && e.q2.eafe(),
    }
}

/// The second-stage format a PASID entry selects.
pub fn second_stage_format(cfg: &VtdConfig, e: &PasidEntry) -> VtdSecondStage {
    VtdSecondStage {
        levels: e.ss_levels(),
        input_width: cfg.mgaw,
        haw: cfg.haw,
        large_2m: cfg.ss_2m,
        large_1g: cfg.ss_1g,
        exec: cfg.execute_requests && e.q0.ssee(),
        ad: cfg.ss_ad && e.q0.ssade(),
    }
}

/// The reason for a permission fault, from the rights the walk found.
fn permission_reason(rights: Perm, access: Access, first_stage: bool) -> FaultReason {
    if first_stage && access.is_user() && !rights.contains(Perm::USER) {
        FaultReason::UserSupervisor
    } else if access.is_exec() && !rights.contains(Perm::EXEC) {
        FaultReason::ExecDenied
    } else if access.is_write() && !rights.contains(Perm::WRITE) {
        FaultReason::WriteDenied
    } else {
        FaultReason::ReadDenied
    }
}

/// An A/D update the walk could not make: a walk names the entry of an
/// [`OutsideMemory`](Walk::OutsideMemory) fault only when it had read that entry and then
/// failed to update it (`Fault::entry` is 0 where nothing was read), and
/// [`Contention`](Walk::Contention) is a lost race on the update. With `non_snooped` (PWSNP
/// = 0, [`NonSnooped`]) no update can be made, so every such fault is an update the walk
/// needed.
fn ad_update(f: &Fault) -> bool {
    matches!(f.reason, Walk::Contention) || (f.reason == Walk::OutsideMemory && f.entry != 0)
}

/// A first-stage walk fault, in VT-d terms (SFS.x, SGN.x).
fn first_stage_reason(f: &Fault, access: Access, top: u8, non_snooped: bool) -> FaultReason {
    match f.reason {
        _ if ad_update(f) && non_snooped => FaultReason::FsAdNonSnooped,
        _ if ad_update(f) => FaultReason::FsAdUpdateFailed,
        Walk::NotPresent => FaultReason::FsNotPresent,
        Walk::Reserved => FaultReason::FsReserved,
        Walk::AddressWidth => FaultReason::NonCanonical,
        Walk::Permission => permission_reason(f.rights, access, true),
        Walk::OutsideMemory if f.level == top => FaultReason::FsRootAccess,
        // AccessFlag and AddressSize are Arm faults, which x86 tables never give.
        Walk::OutsideMemory | Walk::Contention | Walk::AccessFlag | Walk::AddressSize => {
            FaultReason::FsAccess
        }
    }
}

/// A second-stage walk fault of the final output, in VT-d terms (SSS.x, SGN.x).
fn second_stage_reason(f: &Fault, access: Access, top: u8, non_snooped: bool) -> FaultReason {
    match f.reason {
        _ if ad_update(f) && non_snooped => FaultReason::SsAdNonSnooped,
        _ if ad_update(f) => FaultReason::SsAdUpdateFailed,
        Walk::NotPresent => FaultReason::SsNotPresent,
        Walk::Reserved => FaultReason::SsReserved,
        Walk::AddressWidth => FaultReason::SsInputBeyondWidth,
        Walk::Permission => permission_reason(f.rights, access, false),
        Walk::OutsideMemory if f.level == top => FaultReason::SsRootInvalid,
        // AccessFlag and AddressSize are Arm faults, which VT-d tables never give.
        Walk::OutsideMemory | Walk::Contention | Walk::AccessFlag | Walk::AddressSize => {
            FaultReason::SsAccess
        }
    }
}

/// A second-stage fault met while fetching a first-stage structure (nested, SFS.5–8);
/// `fs_root` tells a fetch of the first-stage root table (SFS.6) from a lower one (SFS.7).
fn nested_table_reason(f: &Fault, fs_root: u64, non_snooped: bool) -> FaultReason {
    match f.reason {
        _ if ad_update(f) && non_snooped => FaultReason::SsAdNonSnooped,
        _ if ad_update(f) => FaultReason::SsAdUpdateFailed,
        Walk::AddressWidth => FaultReason::NestedBeyondWidth,
        // Reading worked only if R was there: a permission fault with R is the A/D write.
        Walk::Permission if f.rights.contains(Perm::READ) => FaultReason::NestedEntryWrite,
        Walk::Permission | Walk::NotPresent if f.input & !0xfff == fs_root & !0xfff => {
            FaultReason::NestedRootRead
        }
        Walk::Permission | Walk::NotPresent => FaultReason::NestedEntryRead,
        Walk::Reserved => FaultReason::SsReserved,
        Walk::OutsideMemory | Walk::Contention | Walk::AccessFlag | Walk::AddressSize => {
            FaultReason::SsAccess
        }
    }
}

/// Paging structures as a walk that does not snoop sees them (PASID entry PWSNP = 0, §9.6):
/// readable, but never updated in place — VT-d §3.6.2/§3.7.2 make a needed A/D update under
/// PWSNP = 0 a fault (SFS.9, SSS.5) rather than a non-coherent write. Every atomic update
/// is refused, and the walker reports the entry it could not update.
pub(crate) struct NonSnooped<'a>(pub &'a dyn PhysMem);

impl PhysMem for NonSnooped<'_> {
    fn size(&self) -> u64 {
        self.0.size()
    }
    fn load_u64(&self, pa: u64) -> Result<u64, MemError> {
        self.0.load_u64(pa)
    }
    fn store_u64(&self, pa: u64, _val: u64) -> Result<(), MemError> {
        Err(MemError::OutOfRange { addr: pa, len: 8 })
    }
    fn compare_exchange_u64(
        &self,
        pa: u64,
        _current: u64,
        _new: u64,
    ) -> Result<Result<u64, u64>, MemError> {
        Err(MemError::OutOfRange { addr: pa, len: 8 })
    }
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        self.0.read(pa, buf)
    }
    fn write(&self, pa: u64, buf: &[u8]) -> Result<(), MemError> {
        Err(MemError::OutOfRange {
            addr: pa,
            len: buf.len() as u64,
        })
    }
    fn zero(&self, pa: u64, len: u64) -> Result<(), MemError> {
        Err(MemError::OutOfRange { addr: pa, len })
    }
}

/// Is `req` an interrupt request rather than a DMA? VT-d 4.1 §3.15: requests without PASID
/// to 0xFEEx_xxxx are potential interrupt requests and are not subjected to DMA remapping
/// "even if translation structures specify a mapping for this range". With no interrupt
/// remapping modelled, such a request is refused with reason 0x87, whatever the entry says.
fn interrupt_request(req: &Request) -> bool {
    req.pasid.is_none()
        && req.kind != RequestKind::Translated
        && INTERRUPT_RANGE.contains(&req.addr)
}

/// Walks `req`'s address under the resolved PASID entry, for a request [`translate_cached`]
/// admitted (it refuses interrupt requests before any cache or walk); the result is still
/// checked against the interrupt range (SGN.8).
///
/// # Errors
/// The spec's fault reason.
pub(crate) fn translate(
    cfg: &VtdConfig,
    mem: &dyn PhysMem,
    r: &Resolved,
    req: &Request,
) -> Result<Translated, FaultReason> {
    let e = &r.entry;
    let did = e.q1.did();
    let non_snooped = !e.q1.pwsnp();
    let view = NonSnooped(mem);
    let mem: &dyn PhysMem = if non_snooped { &view } else { mem };
    // The privilege the walk checks is the resolved one (requests without PASID are user).
    let mut access = req.access;
    access.set(Access::PRIV, r.privileged);
    let (addr, size, perm) = match r.pgtt {
        Pgtt::PassThrough => {
            if req.addr >> cfg.haw.min(63) != 0 {
                return Err(FaultReason::PassThroughBeyondHaw);
            }
            (req.addr, PageSize::Size4K, Perm::all())
        }
        Pgtt::SecondStage => {
            let f = second_stage_format(cfg, e);

            let t = walk(&f, mem, e.ss_root(), req.addr, access, &mut Direct, &mut ())
                .map_err(|x| second_stage_reason(&x, access, f.levels(), non_snooped))?;
            (t.output, t.size, t.rights)
        }
        Pgtt::FirstStage => {
            let f = first_stage_format(cfg, e);
            let t = walk(&f, mem, e.fs_root(), req.addr, access, &mut Direct, &mut ())
                .map_err(|x| first_stage_reason(&x, access, f.levels(), non_snooped))?;
            (t.output, t.size, t.rights)
        }
        Pgtt::Nested => {
            let s1 = first_stage_format(cfg, e);
            let s2f = second_stage_format(cfg, e);
            let mut s2 = Stage2 {
                format: &s2f,
                mem,
                root: e.ss_root(),
            };
            let first = walk(&s1, mem, e.fs_root(), req.addr, access, &mut s2, &mut ()).map_err(
                |x| match x.stage {
                    Stage::First => first_stage_reason(&x, access, s1.levels(), non_snooped),
                    Stage::Second => nested_table_reason(&x, e.fs_root(), non_snooped),
                },
            )?;
            let second = s2
                .translate(first.output, access)
                .map_err(|x| second_stage_reason(&x, access, s2f.levels(), non_snooped))?;
            (
                second.output,
                first.size.min(second.size),
                first.rights & second.rights,
            )
        }
    };
    if req.kind != RequestKind::Translated && INTERRUPT_RANGE.contains(&addr) {
        return Err(FaultReason::InterruptAddress);
    }
    Ok(Translated {
        addr,
        size,
        perm,
        did,
    })
}

/// Does a cached translation with `perm` allow `access` under this entry's rules?
fn cached_permits(cfg: &VtdConfig, e: &PasidEntry, pgtt: Pgtt, perm: Perm, access: Access) -> bool {
    match pgtt {
        Pgtt::PassThrough => true,
        Pgtt::SecondStage => second_stage_format(cfg, e).permits(perm, access),
        Pgtt::FirstStage | Pgtt::Nested => first_stage_format(cfg, e).permits(perm, access),
    }
}

/// Translates `req` under the resolved PASID entry, through the IOTLB: a hit that allows the
/// access (and, for a write, was filled by a walk that set Dirty) is used as is; anything else
/// walks and fills.
///
/// Every untranslated DMA and ATS translation request comes through here, so this is where
/// interrupt requests (§3.15) are refused: before the IOTLB, whose entries are tagged by the
/// PASID translated under and so are shared between requests without PASID and requests
/// with the RID_PASID value as their PASID.
///
/// `epoch` is [`Caches::epoch`](crate::cache::Caches::epoch) as read before `r` was resolved:
/// the walk's result is cached only if no invalidation ran since.
///
/// # Errors
/// The spec's fault reason.
pub fn translate_cached(
    cfg: &VtdConfig,
    mem: &dyn PhysMem,
    caches: &crate::cache::Caches,
    r: &Resolved,
    req: &Request,
    epoch: u64,
) -> Result<Translated, FaultReason> {
    if interrupt_request(req) {
        return Err(FaultReason::InterruptAddress);
    }
    let did = r.entry.q1.did();
    let mut access = req.access;
    access.set(Access::PRIV, r.privileged);
    if r.pgtt != Pgtt::PassThrough {
        if let Some((hit, size)) = caches.lookup(did, r.pasid, req.addr) {
            if hit.pgtt == r.pgtt
                && cached_permits(cfg, &r.entry, r.pgtt, hit.perm, access)
                && (!access.is_write() || hit.dirty)
            {
                return Ok(Translated {
                    addr: hit.page | (req.addr & size.offset_mask()),
                    size,
                    perm: hit.perm,
                    did,
                });
            }
        }
    }
    let t = translate(cfg, mem, r, req)?;
    if r.pgtt != Pgtt::PassThrough {
        caches.fill(
            did,
            r.pasid,
            req.addr,
            t.size,
            crate::cache::IotlbEntry {
                page: t.addr & !t.size.offset_mask(),
                perm: t.perm,
                pgtt: r.pgtt,
                dirty: access.is_write(),
            },
            epoch,
        );
    }
    Ok(t)
}
