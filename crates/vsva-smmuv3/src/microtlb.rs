//! The first-level translation cache: complete results of successful translations, keyed
//! by (StreamID, SubstreamID, 4 KiB input page, access), in a direct-mapped array read
//! without locks (each slot is a sequence lock of atomics). A hit takes no lock, allocates
//! nothing and writes no shared cache line; it stands in front of the configuration cache
//! and the TLB, which stay the architectural caches (what CMD_CFGI_* and CMD_TLBI_* name).
//!
//! Invalidation is wholesale: every slot records the unit's epoch read *before* the
//! translation that filled it began (before its configuration lookup and TLB lookup or
//! walk), and a slot hits only while the epoch is still that value. The epoch is shared by
//! the configuration cache and the TLB and is advanced before and after every CMD_CFGI_*
//! and CMD_TLBI_* purge, and around every change of what lookups read of the registers
//! (SMMUEN, GBPA): so a result computed across an invalidation — or from an entry a purge
//! had not yet removed — is never seen, and after a CMD_SYNC no slot filled before it hits.
//!
//! Only the exact access that filled a slot hits it: SMMU rights depend on privilege, PAN,
//! WXN and the dirty state (a write needs a written entry), so no subset rule is assumed.

use std::sync::atomic::{AtomicU64, Ordering, fence};

use vsva_mem::PageSize;
use vsva_pgtable::Perm;

use crate::translate::{Transaction, Translated};

const SLOTS: usize = 1024;

/// One cache line each.
#[repr(align(64))]
struct Slot {
    /// Even: stable; odd: being written.
    seq: AtomicU64,
    /// StreamID (bits 63:32) | SubstreamID + 1, 0 for none (bits 31:0).
    stream: AtomicU64,
    /// Input page number (bits 51:0) | access (bits 59:52).
    page: AtomicU64,
    /// Output page | stage 1 rights (bits 9:2) | size code (bits 1:0).
    out: AtomicU64,
    /// IPA page (stage 1's output page) | stage 2 rights (bits 7:0).
    ipa: AtomicU64,
    /// The epoch the filling translation began at (all 64 bits).
    epoch: AtomicU64,
}

/// The cache.
pub(crate) struct MicroTlb {
    slots: Box<[Slot; SLOTS]>,
}

impl Default for MicroTlb {
    fn default() -> Self {
        let slots: Box<[Slot]> = (0..SLOTS)
            .map(|_| Slot {
                seq: AtomicU64::new(0),
                stream: AtomicU64::new(u64::MAX),
                page: AtomicU64::new(u64::MAX),
                out: AtomicU64::new(0),
                ipa: AtomicU64::new(0),
                epoch: AtomicU64::new(u64::MAX),
            })
            .collect();
        MicroTlb {
            slots: slots.try_into().unwrap_or_else(|_| unreachable!()),
        }
    }
}

/// The slot keys of `txn`, or `None` when it cannot be cached (a SubstreamID of u32::MAX
/// would alias "none").
#[inline]
fn keys(txn: &Transaction) -> Option<(u64, u64)> {
    let ssid = match txn.ssid {
        None => 0,
        Some(s) => s.checked_add(1)?,
    };
    let stream = (txn.sid as u64) << 32 | ssid as u64;
    let page = txn.addr >> 12 | (txn.access.bits() as u64) << 52;
    Some((stream, page))
}

#[inline]
fn index(stream: u64, page: u64) -> usize {
    let h = (page ^ stream.rotate_left(23)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> 54) as usize % SLOTS
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

impl MicroTlb {
    /// The cached result of `txn`, if a slot holds one filled at the epoch `current` still
    /// holds (read after the slot).
    #[inline]
    pub fn lookup(&self, txn: &Transaction, current: &AtomicU64) -> Option<Translated> {
        let (stream, page) = keys(txn)?;
        let slot = &self.slots[index(stream, page)];
        let s1 = slot.seq.load(Ordering::Acquire);
        if s1 & 1 != 0 {
            return None;
        }
        let (st, p, out, ipa, epoch) = (
            slot.stream.load(Ordering::Relaxed),
            slot.page.load(Ordering::Relaxed),
            slot.out.load(Ordering::Relaxed),
            slot.ipa.load(Ordering::Relaxed),
            slot.epoch.load(Ordering::Relaxed),
        );
        fence(Ordering::Acquire);
        if slot.seq.load(Ordering::Relaxed) != s1 || st != stream || p != page {
            return None;
        }
        // After the slot: an invalidation that began before this load is seen here.
        if epoch != current.load(Ordering::Acquire) {
            return None;
        }
        let low = txn.addr & 0xfff;
        Some(Translated {
            addr: (out & !0xfff) | low,
            size: size_of(out & 3),
            s1: Perm::from_bits_retain((out >> 2) as u8),
            s2: Perm::from_bits_retain(ipa as u8),
            ipa: (ipa & !0xfff) | low,
        })
    }

    /// Records `t` as the result of `txn`, from a translation that began at `epoch`.
    /// Skipped if another thread is writing the slot.
    pub fn fill(&self, txn: &Transaction, epoch: u64, t: &Translated) {
        let Some((stream, page)) = keys(txn) else {
            return;
        };
        let slot = &self.slots[index(stream, page)];
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
        slot.stream.store(stream, Ordering::Relaxed);
        slot.page.store(page, Ordering::Relaxed);
        slot.out.store(
            (t.addr & !0xfff) | (t.s1.bits() as u64) << 2 | size_code(t.size),
            Ordering::Relaxed,
        );
        slot.ipa
            .store((t.ipa & !0xfff) | t.s2.bits() as u64, Ordering::Relaxed);
        slot.epoch.store(epoch, Ordering::Relaxed);
        slot.seq.store(s + 2, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vsva_mem::Access;

    fn txn(sid: u32, ssid: Option<u32>, addr: u64, access: Access) -> Transaction {
        Transaction {
            sid,
            ssid,
            addr,
            access,
            stallable: false,
        }
    }

    fn t(addr: u64) -> Translated {
        Translated {
            addr,
            size: PageSize::Size2M,
            s1: Perm::READ,
            s2: Perm::READ | Perm::WRITE,
            ipa: addr ^ 0x1000_0000,
        }
    }

    #[test]
    fn exact_key_and_epoch_hit() {
        let m = MicroTlb::default();
        let epoch = AtomicU64::new(4);
        let a = txn(3, Some(7), 0x4_2123, Access::READ);
        m.fill(&a, 4, &t(0x9_5123));
        let hit = m.lookup(&txn(3, Some(7), 0x4_2fff, Access::READ), &epoch);
        assert_eq!(
            hit,
            Some(Translated {
                addr: 0x9_5fff,
                ipa: 0x1009_5fff,
                ..t(0x9_5fff)
            })
        );
        for other in [
            txn(3, Some(7), 0x4_2123, Access::WRITE),
            txn(3, Some(7), 0x4_2123, Access::READ | Access::PRIV),
            txn(3, None, 0x4_2123, Access::READ),
            txn(3, Some(8), 0x4_2123, Access::READ),
            txn(4, Some(7), 0x4_2123, Access::READ),
            txn(3, Some(7), 0x4_3123, Access::READ),
        ] {
            assert_eq!(m.lookup(&other, &epoch), None, "{other:?}");
        }
        epoch.fetch_add(1, Ordering::AcqRel);
        assert_eq!(m.lookup(&a, &epoch), None, "an epoch change empties it");
        // A fill from a translation begun before the change never hits.
        m.fill(&a, 4, &t(0x9_5123));
        assert_eq!(m.lookup(&a, &epoch), None);
        m.fill(&a, 5, &t(0x9_5123));
        assert!(m.lookup(&a, &epoch).is_some());
    }

    #[test]
    fn ssid_max_is_not_cached() {
        let m = MicroTlb::default();
        let epoch = AtomicU64::new(0);
        let a = txn(1, Some(u32::MAX), 0x1000, Access::READ);
        m.fill(&a, 0, &t(0x2000));
        assert_eq!(m.lookup(&a, &epoch), None);
        assert_eq!(m.lookup(&txn(1, None, 0x1000, Access::READ), &epoch), None);
    }
}
