//! The first-level translation cache: a direct-mapped array of complete request results,
//! read without locks (each slot is a sequence lock of atomics), so that a DMA that hits takes
//! no lock, allocates nothing and writes no shared cache line.
//!
//! A slot caches, for one (requester, PASID, request kind, 4 KiB page), the output page and
//! the set of accesses known to succeed: every subset of the access that filled it, at the
//! same privilege (x86 and VT-d rights are monotonic in read/write/execute, not in
//! privilege). Anything else misses and goes to the full lookup, whose own caches
//! ([`crate::cache`]) implement the architectural invalidation granularities.
//!
//! Any invalidation the unit performs clears this level wholesale by bumping a generation;
//! a fill records the generation read *before* its lookup began, so a result computed across
//! an invalidation never becomes visible.

use std::sync::atomic::{AtomicU64, Ordering, fence};

use vsva_mem::{Access, PageSize};
use vsva_pgtable::Perm;

use crate::request::{Request, RequestKind, Translated};

const SLOTS: usize = 4096;

/// One cache line each, so a lookup touches one line and writers of neighbouring slots do
/// not disturb it.
#[repr(align(64))]
struct Slot {
    /// Even: stable; odd: being written.
    seq: AtomicU64,
    /// Page number of the input address.
    page: AtomicU64,
    /// Requester, PASID + 1 (0: none), kind.
    key: AtomicU64,
    /// Output page | rights (bits 5:2) | size code (bits 1:0).
    out: AtomicU64,
    /// DID (bits 31:16) | allowed-access mask (bits 15:0).
    meta: AtomicU64,
    /// The generation the fill began at (all 64 bits: a truncated one would match again
    /// after enough invalidations, and a stale slot would hit).
    generation: AtomicU64,
}

/// The cache.
pub struct MicroTlb {
    slots: Box<[Slot]>,
    generation: AtomicU64,
}

impl Default for MicroTlb {
    fn default() -> Self {
        MicroTlb {
            slots: (0..SLOTS)
                .map(|_| Slot {
                    seq: AtomicU64::new(0),
                    page: AtomicU64::new(u64::MAX),
                    key: AtomicU64::new(u64::MAX),
                    out: AtomicU64::new(0),
                    meta: AtomicU64::new(0),
                    generation: AtomicU64::new(0),
                })
                .collect(),
            generation: AtomicU64::new(1),
        }
    }
}

#[inline]
fn key(req: &Request) -> u64 {
    let kind = match req.kind {
        RequestKind::Untranslated => 0u64,
        RequestKind::Translated => 1,
        RequestKind::Translation => 2,
    };
    req.rid.raw() as u64 | (req.pasid.map_or(0, |p| p.raw() as u64 + 1)) << 16 | kind << 40
}

#[inline]
fn index(page: u64, key: u64) -> usize {
    let h = (page ^ key.rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> 52) as usize % SLOTS
}

fn size_code(s: PageSize) -> u64 {
    match s {
        PageSize::Size4K => 0,
        PageSize::Size2M => 1,
        PageSize::Size1G => 2,
    }
}

#[inline]
fn size_of(code: u64) -> PageSize {
    match code {
        1 => PageSize::Size2M,
        2 => PageSize::Size1G,
        _ => PageSize::Size4K,
    }
}

/// Every access value (4 bits: READ, WRITE, EXEC, PRIV) that is a subset of `a` with the
/// same privilege, as a 16-bit mask.
fn allowed_mask(a: Access) -> u64 {
    let bits = a.bits() as u64 & 0xf;
    let priv_ = bits & Access::PRIV.bits() as u64;
    (0..16u64)
        .filter(|&b| b & !bits == 0 && b & Access::PRIV.bits() as u64 == priv_)
        .fold(0, |m, b| m | 1 << b)
}

impl MicroTlb {
    /// The current generation: read before a slow lookup, passed to [`fill`](Self::fill).
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Forgets everything (any invalidation, SRTP, translation enable changes).
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The cached result of `req`, if any.
    #[inline]
    pub fn lookup(&self, req: &Request) -> Option<Translated> {
        let page = req.addr >> 12;
        let key = key(req);
        let slot = &self.slots[index(page, key)];
        let s1 = slot.seq.load(Ordering::Acquire);
        if s1 & 1 != 0 {
            return None;
        }
        let (p, k, out, meta, generation) = (
            slot.page.load(Ordering::Relaxed),
            slot.key.load(Ordering::Relaxed),
            slot.out.load(Ordering::Relaxed),
            slot.meta.load(Ordering::Relaxed),
            slot.generation.load(Ordering::Relaxed),
        );
        fence(Ordering::Acquire);
        if slot.seq.load(Ordering::Relaxed) != s1 || p != page || k != key {
            return None;
        }
        if generation != self.generation.load(Ordering::Acquire) {
            return None;
        }
        if (meta >> (req.access.bits() as u64 & 0xf)) & 1 == 0 {
            return None;
        }
        Some(Translated {
            addr: (out & !0xfff) | (req.addr & 0xfff),
            size: size_of(out & 3),
            perm: Perm::from_bits_truncate((out >> 2) as u8 & 0xf),
            did: (meta >> 16) as u16,
        })
    }

    /// Records `t` as the result of `req`, computed by a lookup that began at generation
    /// `generation`. Skipped if the slot is being written by someone else.
    pub fn fill(&self, req: &Request, generation: u64, t: &Translated) {
        let page = req.addr >> 12;
        let key = key(req);
        let slot = &self.slots[index(page, key)];
        let s = slot.seq.load(Ordering::Relaxed);
        if s & 1 != 0
            || slot
                .seq
                .compare_exchange(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        fence(Ordering::Release);
        slot.page.store(page, Ordering::Relaxed);
        slot.key.store(key, Ordering::Relaxed);
        slot.out.store(
            (t.addr & !0xfff) | (t.perm.bits() as u64 & 0xf) << 2 | size_code(t.size),
            Ordering::Relaxed,
        );
        slot.meta.store(
            (t.did as u64) << 16 | allowed_mask(req.access),
            Ordering::Relaxed,
        );
        slot.generation.store(generation, Ordering::Relaxed);
        slot.seq.store(s + 2, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vsva_mem::{Pasid, Rid};

    fn req(addr: u64, access: Access) -> Request {
        Request {
            rid: Rid::from_raw(0x18),
            pasid: Some(Pasid::new(3).unwrap()),
            addr,
            access,
            kind: RequestKind::Untranslated,
        }
    }

    #[test]
    fn subsets_of_the_filling_access_hit() {
        let m = MicroTlb::default();
        let g = m.generation();
        let t = Translated {
            addr: 0x5123,
            size: PageSize::Size4K,
            perm: Perm::all(),
            did: 7,
        };
        m.fill(&req(0x1123, Access::READ | Access::WRITE), g, &t);
        let hit = m.lookup(&req(0x1fff, Access::READ)).unwrap();
        assert_eq!((hit.addr, hit.did), (0x5fff, 7));
        assert_eq!(hit.perm, Perm::all(), "the rights the fill recorded");
        assert!(
            m.lookup(&req(0x1000, Access::READ | Access::WRITE))
                .is_some()
        );
        assert!(
            m.lookup(&req(0x1000, Access::READ | Access::EXEC))
                .is_none()
        );
        assert!(
            m.lookup(&req(0x1000, Access::READ | Access::PRIV))
                .is_none()
        );
        assert!(m.lookup(&req(0x2000, Access::READ)).is_none());
        let other_pasid = Request {
            pasid: None,
            ..req(0x1000, Access::READ)
        };
        assert!(m.lookup(&other_pasid).is_none());
    }

    #[test]
    fn invalidation_and_stale_fills() {
        let m = MicroTlb::default();
        let t = Translated {
            addr: 0x5000,
            size: PageSize::Size2M,
            perm: Perm::all(),
            did: 1,
        };
        let g = m.generation();
        m.fill(&req(0x1000, Access::READ), g, &t);
        assert_eq!(
            m.lookup(&req(0x1000, Access::READ)).unwrap().size,
            PageSize::Size2M
        );
        assert_eq!(
            m.lookup(&req(0x1000, Access::READ)).unwrap().perm,
            Perm::all()
        );
        m.invalidate_all();
        assert!(m.lookup(&req(0x1000, Access::READ)).is_none());
        // a result computed before the invalidation is never used
        m.fill(&req(0x1000, Access::READ), g, &t);
        assert!(m.lookup(&req(0x1000, Access::READ)).is_none());
    }

    #[test]
    fn hits_return_the_rights_the_walk_found() {
        let m = MicroTlb::default();
        let t = Translated {
            addr: 0x7000,
            size: PageSize::Size4K,
            perm: Perm::READ | Perm::USER,
            did: 2,
        };
        m.fill(&req(0x3000, Access::READ), m.generation(), &t);
        assert_eq!(m.lookup(&req(0x3000, Access::READ)), Some(t));
    }

    #[test]
    fn a_slot_filled_2_pow_32_invalidations_ago_misses() {
        let m = MicroTlb::default();
        let t = Translated {
            addr: 0x5000,
            size: PageSize::Size4K,
            perm: Perm::all(),
            did: 1,
        };
        let g = m.generation();
        m.fill(&req(0x1000, Access::READ), g, &t);
        // as many invalidations as the low 32 bits of the generation count
        m.generation.fetch_add(1 << 32, Ordering::AcqRel);
        assert!(m.lookup(&req(0x1000, Access::READ)).is_none());
    }
}
