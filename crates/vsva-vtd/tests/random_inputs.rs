//! Seeded random inputs through the fuzz interpreter: register writes, table contents,
//! descriptor streams and device requests never panic or hang the unit and keep its queues'
//! registers in range (the same harness the cargo-fuzz target in `fuzz/` drives).

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_streams_are_survived(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let s = vsva_vtd::fuzz::run(&data);
        prop_assert!(s.ops <= data.len() as u64);
    }
}

#[test]
fn a_stream_that_builds_structures_reaches_translation() {
    // Hand-made stream: RTADDR = 0x1000 | scalable, SRTP|TE, a root entry, a context entry,
    // a PASID directory and a pass-through PASID entry, then a DMA — so the interpreter's
    // ops really reach the translation path.
    let mut d = Vec::new();
    let mmio = |d: &mut Vec<u8>, sel: u16, v: u64| {
        d.push(0x10); // op 0, 8-byte
        d.extend_from_slice(&sel.to_le_bytes());
        d.extend_from_slice(&v.to_le_bytes());
    };
    let store = |d: &mut Vec<u8>, at: u32, v: u64| {
        d.push(0x82); // op 2, raw value
        d.extend_from_slice(&at.to_le_bytes());
        d.extend_from_slice(&v.to_le_bytes());
    };
    // REGISTERS[1] = RTADDR (sel = 1 << 1), REGISTERS[0] = GCMD
    mmio(&mut d, 2, 0x1000 | 1 << 10);
    store(&mut d, 0x1000, 0x2001); // root entry bus 0 lower half -> context table 0x2000
    store(&mut d, 0x2000 + 3 * 8 * 32, 0x3000 | 1 << 3 | 7 << 9 | 1); // ctx for devfn 0x18
    store(&mut d, 0x3000, 0x4001); // PASID directory entry 0 -> table 0x4000
    store(&mut d, 0x4000, 4 << 6 | 1); // PASID 0: pass-through
    d.push(0x00); // op 0, 4-byte write to GCMD
    d.extend_from_slice(&0u16.to_le_bytes());
    d.extend_from_slice(&((1u64 << 31) | (1 << 30)).to_le_bytes());
    d.push(4); // op 4: DMA
    d.extend_from_slice(&0x18u16.to_le_bytes());
    d.extend_from_slice(&0u32.to_le_bytes());
    d.extend_from_slice(&0x1234u64.to_le_bytes());
    d.push(1); // read, no PASID, untranslated
    let s = vsva_vtd::fuzz::run(&d);
    assert_eq!((s.translated, s.refused), (1, 0), "{s:?}");
}
