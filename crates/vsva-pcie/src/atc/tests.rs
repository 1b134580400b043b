//! ATC tests (PCIe Base 6.0 §10.2.3, §10.3).

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

const K4: PageSize = PageSize::Size4K;
const M2: PageSize = PageSize::Size2M;
const G1: PageSize = PageSize::Size1G;

fn p(raw: u32) -> Option<Pasid> {
    Some(Pasid::new(raw).unwrap())
}

fn rw(translated: u64) -> AtcEntry {
    AtcEntry {
        translated,
        flags: TranslationFlags::READ | TranslationFlags::WRITE,
    }
}

fn with(translated: u64, flags: TranslationFlags) -> AtcEntry {
    AtcEntry { translated, flags }
}

fn hit(translated: u64, size: PageSize) -> AtcLookup {
    AtcLookup::Hit { translated, size }
}

#[test]
fn hit_adds_page_offset() {
    let mut atc = Atc::with_capacity(8);
    atc.insert(p(1), 0x40_0000, K4, rw(0x8000_0000)).unwrap();
    assert_eq!(
        atc.lookup(p(1), 0x40_0123, Access::READ),
        hit(0x8000_0123, K4)
    );
    assert_eq!(
        atc.lookup(p(1), 0x40_0FFF, Access::WRITE),
        hit(0x8000_0FFF, K4)
    );
    assert_eq!(atc.lookup(p(1), 0x40_1000, Access::READ), AtcLookup::Miss);
    assert_eq!(atc.lookup(p(2), 0x40_0000, Access::READ), AtcLookup::Miss);
    assert_eq!(atc.lookup(None, 0x40_0000, Access::READ), AtcLookup::Miss);
    assert_eq!(
        atc.stats(),
        AtcStats {
            hits: 2,
            misses: 3,
            ..AtcStats::default()
        }
    );
}

#[test]
fn large_pages_hit_anywhere_inside() {
    let mut atc = Atc::with_capacity(8);
    atc.insert(None, 0x20_0000, M2, rw(0x4000_0000)).unwrap();
    atc.insert(None, 0x4000_0000, G1, rw(0x1_0000_0000))
        .unwrap();
    assert_eq!(
        atc.lookup(None, 0x3F_FFFF, Access::READ),
        hit(0x401F_FFFF, M2)
    );
    assert_eq!(
        atc.lookup(None, 0x7FFF_F000, Access::WRITE),
        hit(0x1_3FFF_F000, G1)
    );
    assert_eq!(atc.lookup(None, 0x1F_FFFF, Access::READ), AtcLookup::Miss);
}

#[test]
fn permissions() {
    let mut atc = Atc::with_capacity(8);
    atc.insert(p(1), 0x1000, K4, with(0xA000, TranslationFlags::READ))
        .unwrap();
    atc.insert(p(1), 0x2000, K4, with(0xB000, TranslationFlags::WRITE))
        .unwrap();
    atc.insert(p(1), 0x3000, K4, with(0xC000, TranslationFlags::empty()))
        .unwrap();
    let rx = TranslationFlags::READ | TranslationFlags::EXEC;
    atc.insert(p(1), 0x4000, K4, with(0xD000, rx)).unwrap();
    let x_only = TranslationFlags::EXEC | TranslationFlags::WRITE;
    atc.insert(p(1), 0x5000, K4, with(0xE000, x_only)).unwrap();

    let r = Access::READ;
    let w = Access::WRITE;
    let x = Access::READ | Access::EXEC;
    assert_eq!(atc.lookup(p(1), 0x1000, r), hit(0xA000, K4));
    assert_eq!(atc.lookup(p(1), 0x1000, w), AtcLookup::PermissionMiss);
    assert_eq!(atc.lookup(p(1), 0x1000, x), AtcLookup::PermissionMiss);
    // Write-only (R=0, W=1) serves writes only.
    assert_eq!(atc.lookup(p(1), 0x2000, w), hit(0xB000, K4));
    assert_eq!(atc.lookup(p(1), 0x2000, r), AtcLookup::PermissionMiss);
    // R=W=0 is a cached "no access".
    assert_eq!(atc.lookup(p(1), 0x3000, r), AtcLookup::PermissionMiss);
    assert_eq!(atc.lookup(p(1), 0x3000, w), AtcLookup::PermissionMiss);
    assert_eq!(atc.lookup(p(1), 0x4000, x), hit(0xD000, K4));
    // Exe without R does not allow an execute request.
    assert_eq!(
        atc.lookup(p(1), 0x5000, Access::EXEC),
        AtcLookup::PermissionMiss
    );
    assert_eq!(atc.stats().permission_misses, 6);
}

#[test]
fn privilege_is_part_of_the_tag() {
    let mut atc = Atc::with_capacity(8);
    let priv_rw = TranslationFlags::READ | TranslationFlags::WRITE | TranslationFlags::PRIV;
    atc.insert(p(1), 0x1000, K4, with(0xA000, priv_rw)).unwrap();
    let sup = Access::READ | Access::PRIV;
    assert_eq!(atc.lookup(p(1), 0x1000, sup), hit(0xA000, K4));
    assert_eq!(atc.lookup(p(1), 0x1000, Access::READ), AtcLookup::Miss);
    // The user translation of the same page is a separate entry.
    atc.insert(p(1), 0x1000, K4, with(0xF000, TranslationFlags::READ))
        .unwrap();
    assert_eq!(atc.len(), 2);
    assert_eq!(atc.lookup(p(1), 0x1000, Access::READ), hit(0xF000, K4));
    assert_eq!(atc.lookup(p(1), 0x1000, sup), hit(0xA000, K4));
    // Without PASID there is no privileged mode: PRIV is dropped on both sides.
    atc.insert(None, 0x1000, K4, with(0x9000, priv_rw)).unwrap();
    assert_eq!(atc.lookup(None, 0x1000, sup), hit(0x9000, K4));
    assert_eq!(atc.lookup(None, 0x1000, Access::WRITE), hit(0x9000, K4));
}

#[test]
fn global_entries_serve_every_pasid() {
    let mut atc = Atc::with_capacity(8);
    let g = TranslationFlags::READ | TranslationFlags::GLOBAL;
    atc.insert(p(1), 0x1000, K4, with(0xA000, g)).unwrap();
    assert_eq!(atc.lookup(p(1), 0x1000, Access::READ), hit(0xA000, K4));
    assert_eq!(atc.lookup(p(7), 0x1000, Access::READ), hit(0xA000, K4));
    assert_eq!(atc.lookup(None, 0x1000, Access::READ), AtcLookup::Miss);
    // A PASID's own entry wins over the global one.
    atc.insert(p(7), 0x1000, K4, rw(0xB000)).unwrap();
    assert_eq!(atc.lookup(p(7), 0x1000, Access::READ), hit(0xB000, K4));
    // Global without PASID is meaningless and dropped.
    atc.insert(None, 0x2000, K4, with(0xC000, g)).unwrap();
    assert_eq!(atc.lookup(p(1), 0x2000, Access::READ), AtcLookup::Miss);
    assert_eq!(atc.lookup(None, 0x2000, Access::READ), hit(0xC000, K4));
}

#[test]
fn misaligned_inserts_are_refused() {
    let mut atc = Atc::with_capacity(8);
    assert_eq!(
        atc.insert(None, 0x1800, K4, rw(0)),
        Err(AtcError::Misaligned {
            addr: 0x1800,
            size: K4
        })
    );
    assert_eq!(
        atc.insert(None, 0x20_0000, M2, rw(0x1000)),
        Err(AtcError::Misaligned {
            addr: 0x1000,
            size: M2
        })
    );
    assert!(atc.is_empty());
}

#[test]
fn fifo_eviction() {
    let mut atc = Atc::with_capacity(2);
    atc.insert(None, 0x1000, K4, rw(0xA000)).unwrap();
    atc.insert(None, 0x2000, K4, rw(0xB000)).unwrap();
    // Hits do not refresh (FIFO, not LRU).
    assert!(matches!(
        atc.lookup(None, 0x1000, Access::READ),
        AtcLookup::Hit { .. }
    ));
    atc.insert(None, 0x3000, K4, rw(0xC000)).unwrap();
    assert_eq!(atc.len(), 2);
    assert_eq!(atc.lookup(None, 0x1000, Access::READ), AtcLookup::Miss);
    assert_eq!(atc.stats().evictions, 1);
    // Re-inserting an entry replaces it in place and makes it the newest.
    atc.insert(None, 0x2000, K4, rw(0xD000)).unwrap();
    assert_eq!(atc.len(), 2);
    atc.insert(None, 0x4000, K4, rw(0xE000)).unwrap();
    assert_eq!(atc.lookup(None, 0x3000, Access::READ), AtcLookup::Miss);
    assert_eq!(atc.lookup(None, 0x2000, Access::READ), hit(0xD000, K4));
    assert_eq!(atc.stats().evictions, 2);
}

#[test]
fn zero_capacity_caches_nothing() {
    let mut atc = Atc::with_capacity(0);
    atc.insert(None, 0x1000, K4, rw(0xA000)).unwrap();
    assert!(atc.is_empty());
    assert_eq!(atc.lookup(None, 0x1000, Access::READ), AtcLookup::Miss);
}

#[test]
fn invalidate_4k_inside_a_2m_entry() {
    let mut atc = Atc::with_capacity(8);
    atc.insert(p(1), 0x20_0000, M2, rw(0x4000_0000)).unwrap();
    atc.insert(p(1), 0x40_0000, K4, rw(0x5000_0000)).unwrap();
    assert_eq!(atc.invalidate(p(1), 0x30_5000, 0x1000, false), 1);
    assert_eq!(atc.lookup(p(1), 0x20_0000, Access::READ), AtcLookup::Miss);
    assert_eq!(atc.len(), 1);
}

#[test]
fn invalidate_range_end_is_exclusive() {
    let mut atc = Atc::with_capacity(8);
    for page in 0..4u64 {
        atc.insert(None, page << 12, K4, rw(0x10_0000 + (page << 12)))
            .unwrap();
    }
    assert_eq!(atc.invalidate(None, 0x1000, 0, false), 0);
    // [0x1000, 0x3000) covers pages 1 and 2; a range starting mid-page still hits that page.
    assert_eq!(atc.invalidate(None, 0x1000, 0x2000, false), 2);
    assert_eq!(atc.invalidate(None, 0x0FFF, 1, false), 1);
    assert_eq!(atc.len(), 1);
    assert_eq!(atc.stats().invalidated, 3);
}

#[test]
fn invalidate_at_the_top_of_the_address_space() {
    let mut atc = Atc::with_capacity(8);
    let top: u64 = !0xFFF;
    atc.insert(None, top, K4, rw(0x1000)).unwrap();
    assert_eq!(atc.invalidate(None, top + 0x800, u64::MAX, false), 1);
    atc.insert(None, top, K4, rw(0x1000)).unwrap();
    assert_eq!(atc.invalidate(None, 0, u64::MAX, false), 1);
}

/// One entry per scope: no PASID, PASID 1, PASID 2, Global (cached under PASID 3).
fn scoped() -> Atc {
    let mut atc = Atc::with_capacity(16);
    let g = TranslationFlags::READ | TranslationFlags::GLOBAL;
    atc.insert(None, 0x1000, K4, rw(0xA000)).unwrap();
    atc.insert(p(1), 0x1000, K4, rw(0xB000)).unwrap();
    atc.insert(p(2), 0x1000, K4, rw(0xC000)).unwrap();
    atc.insert(p(3), 0x1000, K4, with(0xD000, g)).unwrap();
    atc
}

#[test]
fn pasid_selective_invalidation() {
    let mut atc = scoped();
    // PASID 1 and the Global entry go; PASID 2 and no-PASID stay.
    assert_eq!(atc.invalidate(p(1), 0x1000, 0x1000, false), 2);
    assert_eq!(atc.lookup(p(1), 0x1000, Access::READ), AtcLookup::Miss);
    assert_eq!(atc.lookup(p(2), 0x1000, Access::READ), hit(0xC000, K4));
    assert_eq!(atc.lookup(None, 0x1000, Access::READ), hit(0xA000, K4));
    // Outside the range nothing goes.
    assert_eq!(atc.invalidate(p(2), 0x2000, 0x1000, false), 0);
}

#[test]
fn global_invalidation_hits_every_pasid() {
    let mut atc = scoped();
    assert_eq!(atc.invalidate(p(1), 0x1000, 0x1000, true), 3);
    assert_eq!(atc.lookup(p(2), 0x1000, Access::READ), AtcLookup::Miss);
    assert_eq!(atc.lookup(None, 0x1000, Access::READ), hit(0xA000, K4));
}

#[test]
fn invalidation_without_pasid_hits_everything() {
    let mut atc = scoped();
    assert_eq!(atc.invalidate(None, 0x1000, 0x1000, false), 4);
    assert!(atc.is_empty());
}

#[test]
fn clear_and_stats() {
    let mut atc = scoped();
    atc.clear();
    assert!(atc.is_empty());
    assert_eq!(atc.stats().invalidated, 4);
    assert_eq!(atc.capacity(), 16);
}

#[test]
fn ats_range_decoding() {
    let r = AtsRange::decode(0x1234_5678, false);
    assert_eq!(
        (r.base, r.last, r.size()),
        (0x1234_5000, 0x1234_5FFF, Some(4096))
    );
    // S=1, bit 12 clear: 8 KiB.
    let r = AtsRange::decode(0x1_0000, true);
    assert_eq!((r.base, r.size()), (0x1_0000, Some(8192)));
    // S=1, bits 19:12 set, bit 20 clear: 2 MiB at 2 MiB.
    let r = AtsRange::decode(0x2F_F000, true);
    assert_eq!((r.base, r.last), (0x20_0000, 0x3F_FFFF));
    // Bits 62:12 set, bit 63 clear: 2^64 bytes, the whole space.
    let r = AtsRange::decode(0x7FFF_FFFF_FFFF_F000, true);
    assert_eq!((r.base, r.last, r.size()), (0, u64::MAX, None));
    let r = AtsRange::decode(u64::MAX, true);
    assert_eq!((r.base, r.last), (0, u64::MAX));
    // Bits 61:12 set, bit 62 clear: 2^63 bytes at 0.
    let r = AtsRange::decode(0x3FFF_FFFF_FFFF_F000, true);
    assert_eq!((r.base, r.last), (0, u64::MAX >> 1));

    let mut atc = Atc::with_capacity(4);
    atc.insert(p(1), 0x20_0000, M2, rw(0x4000_0000)).unwrap();
    atc.insert(p(1), 0x40_0000, K4, rw(0x5000_0000)).unwrap();
    assert_eq!(
        atc.invalidate_range(p(1), AtsRange::decode(0x2F_F000, true), false),
        1
    );
    assert_eq!(atc.len(), 1);
}

/// Reference model: the set of keys with "overlaps and in scope" written out longhand.
fn reference_invalidate(
    keys: &mut BTreeSet<Key>,
    pasid: Option<Pasid>,
    addr: u64,
    len: u64,
    global: bool,
) -> usize {
    let before = keys.len();
    keys.retain(|k| {
        let scope = match pasid {
            None => true,
            Some(p) => match k.tag {
                Tag::NoPasid => false,
                Tag::Global => true,
                Tag::Pasid(q) => global || q == p,
            },
        };
        let start = u128::from(k.base);
        let end = start + u128::from(k.size.bytes());
        let (a, b) = (u128::from(addr), u128::from(addr) + u128::from(len));
        let overlap = len > 0 && start < b && a < end;
        !(scope && overlap)
    });
    before - keys.len()
}

fn pasid_sel(sel: u8) -> Option<Pasid> {
    match sel {
        0 => None,
        n => p(u32::from(n)),
    }
}

proptest! {
    #[test]
    fn invalidation_matches_reference(
        inserts in prop::collection::vec((0u8..4, any::<bool>(), any::<bool>(), 0u64..64, 0usize..3), 0..40),
        invals in prop::collection::vec((0u8..4, 0u64..(3 << 30), 0u64..(1 << 31), any::<bool>()), 1..6),
    ) {
        let mut atc = Atc::with_capacity(1000);
        let mut keys = BTreeSet::new();
        for (sel, privileged, global, idx, size) in inserts {
            let size = PageSize::ALL[size];
            let base = (idx * size.bytes()) % (2 << 30);
            let pasid = pasid_sel(sel);
            let mut flags = TranslationFlags::READ;
            flags.set(TranslationFlags::PRIV, privileged);
            flags.set(TranslationFlags::GLOBAL, global);
            atc.insert(pasid, base, size, AtcEntry { translated: base, flags }).unwrap();
            let tag = match pasid {
                None => Tag::NoPasid,
                Some(_) if global => Tag::Global,
                Some(p) => Tag::Pasid(p),
            };
            keys.insert(Key { tag, privileged: privileged && pasid.is_some(), base, size });
        }
        prop_assert_eq!(atc.len(), keys.len());
        for (sel, addr, len, global) in invals {
            let pasid = pasid_sel(sel);
            let want = reference_invalidate(&mut keys, pasid, addr, len, global);
            prop_assert_eq!(atc.invalidate(pasid, addr, len, global), want);
            let got: BTreeSet<Key> = atc.entries.keys().copied().collect();
            prop_assert_eq!(&got, &keys);
            prop_assert_eq!(atc.order.len(), keys.len());
        }
        // Every survivor still answers lookups at its first and last byte.
        for k in &keys {
            let pasid = match k.tag {
                Tag::NoPasid => None,
                Tag::Pasid(p) => Some(p),
                Tag::Global => p(9),
            };
            let access = if k.privileged { Access::READ | Access::PRIV } else { Access::READ };
            let last = k.base + k.size.bytes() - 1;
            for a in [k.base, last] {
                let found = atc.lookup(pasid, a, access);
                prop_assert!(matches!(found, AtcLookup::Hit { .. }), "{:?} at {:#x}: {:?}", k, a, found);
            }
        }
    }
}

#[test]
fn a_front_hit_never_outlives_an_invalidation_or_a_replacement() {
    let mut atc = Atc::with_capacity(8);
    let p = Some(Pasid::new(1).unwrap());
    let e = |t| AtcEntry {
        translated: t,
        flags: TranslationFlags::READ | TranslationFlags::WRITE,
    };
    atc.insert(p, 0x20_0000, PageSize::Size2M, e(0x4000_0000))
        .unwrap();
    // the first lookup fills the front, the second is served by it
    for _ in 0..2 {
        assert_eq!(
            atc.lookup(p, 0x21_2345, Access::READ),
            AtcLookup::Hit {
                translated: 0x4001_2345,
                size: PageSize::Size2M
            }
        );
    }
    atc.invalidate(p, 0x21_2000, 0x1000, false);
    assert_eq!(atc.lookup(p, 0x21_2345, Access::READ), AtcLookup::Miss);
    atc.insert(p, 0x20_0000, PageSize::Size2M, e(0x4000_0000))
        .unwrap();
    atc.lookup(p, 0x21_2345, Access::READ);
    atc.insert(p, 0x20_0000, PageSize::Size2M, e(0x8000_0000))
        .unwrap();
    assert_eq!(
        atc.lookup(p, 0x21_2345, Access::READ),
        AtcLookup::Hit {
            translated: 0x8001_2345,
            size: PageSize::Size2M
        }
    );
    atc.lookup(p, 0x21_2345, Access::READ);
    atc.clear();
    assert_eq!(atc.lookup(p, 0x21_2345, Access::READ), AtcLookup::Miss);
}
