//! Map -> walk round trips against a plain reference, for both stages.

use proptest::prelude::*;

use super::*;

/// A mapping request: leaf size, input slot, output slot, rights.
fn mapping() -> impl Strategy<Value = (PageSize, u64, u64, u8)> {
    (
        prop_oneof![4 => Just(PageSize::Size4K), 2 => Just(PageSize::Size2M), 1 => Just(PageSize::Size1G)],
        0u64..1 << 20,
        0u64..1 << 14,
        0u8..32,
    )
}

/// Maps what it can of `maps` (later ones that overlap are refused) and checks that every
/// mapped page walks to its output with the rights the format gives its leaf, for an access
/// those rights permit, and that unmapped neighbours fault as Translation faults.
fn round_trip<F: Format>(format: F, input_bits: u32, maps: Vec<(PageSize, u64, u64, u8)>) {
    let pt = table(format);
    let mut done = vec![];
    for (size, slot, out, bits) in maps {
        let va = (slot << size.shift()) & ((1u64 << input_bits) - 1);
        let pa = (out << size.shift()) & ((1u64 << 40) - 1);
        let perm = Perm::from_bits_retain(bits) | Perm::READ;
        if pt.map(va, pa, size, perm).is_ok() {
            done.push((va, pa, size, perm));
        }
    }
    let f = pt.format();
    for (va, pa, size, _) in done {
        let leaf = pt.lookup(va).unwrap();
        assert_eq!((leaf.va, leaf.pa, leaf.size), (va, pa, size));
        let rights = f.rights(leaf.entry);
        let access = [EL1_R, EL0_R, Access::READ]
            .into_iter()
            .find(|&a| f.permits(rights, a))
            .expect("every mapping grants some read");
        let off = (va ^ pa) & size.offset_mask() & !7;
        let t = pt.walk(va + off, access).unwrap();
        assert_eq!((t.output, t.size, t.rights), (pa + off, size, rights));
        let next = va + size.bytes();
        if f.input_ok(next) && pt.lookup(next).is_none() {
            let fault = pt.walk(next, access).unwrap_err();
            assert_eq!(ArmFault::from_fault(&fault).kind, ArmFaultKind::Translation);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn stage_1_map_then_walk_round_trips(maps in proptest::collection::vec(mapping(), 1..24)) {
        round_trip(ArmS1::default(), 48, maps);
    }

    #[test]
    fn stage_2_map_then_walk_round_trips(maps in proptest::collection::vec(mapping(), 1..24)) {
        round_trip(ArmS2::new(40, 40), 40, maps);
    }
}
