//! Seeded random streams through the configuration-space fuzz interpreter
//! (`vsva_pcie::fuzz`, the harness the cargo-fuzz target `pcie_config` drives): any
//! configuration read or write keeps the register image equal to the PCIe Base 6.0 register
//! tables' model, the capability list intact and the accessors consistent. The hand-made
//! streams show the interpreter's ops reach the latches and the RW1C bits.

use proptest::prelude::*;
use vsva_pcie::fuzz::run;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_streams_keep_the_registers_to_the_spec(
        data in proptest::collection::vec(any::<u8>(), 0..512)
    ) {
        let s = run(&data);
        prop_assert!(s.ops <= data.len() as u64);
    }
}

/// Valid options: every feature, capacity 16, 20-bit PASIDs, a 32-deep queue.
fn options() -> Vec<u8> {
    vec![0x86, 0x80, 0x34, 0x12, 0x1f, 19, 31, 16, 0]
}

fn write(d: &mut Vec<u8>, off: u16, size_op: u8, v: u32) {
    // op 0 with size bits; sel & 3 == 2 addresses `sel >> 2` anywhere.
    d.push(size_op << 2);
    d.extend_from_slice(&((off << 2) | 2).to_le_bytes());
    d.extend_from_slice(&0u32.to_le_bytes());
    d.extend_from_slice(&v.to_le_bytes());
}

#[test]
fn enabling_pri_and_ats_latches_and_counts_epochs() {
    let mut d = options();
    write(&mut d, 0x11c, 0, 7); // PRI allocation 7
    write(&mut d, 0x114, 4, 1); // PRI Enable (1-byte): epoch 1
    write(&mut d, 0x10e, 2, 0x8003); // ATS Enable with STU 3
    write(&mut d, 0x114, 4, 0); // PRI disable
    write(&mut d, 0x114, 4, 2); // Reset with Enable clear: epoch 2
    d.extend_from_slice(&[3]); // device: Response Failure
    write(&mut d, 0x116, 2, 1); // RW1C clears it
    let s = run(&d);
    assert_eq!(s.ops, 7);
    assert_eq!(s.pri_epochs, 2);
    assert!(s.changed >= 4, "{s:?}");
}

#[test]
fn out_of_range_options_are_refused() {
    // raw bit 7: width 0 -> PasidWidth, checked inside run.
    let s = run(&[0, 0, 0, 0, 0x80, 0, 0x81, 1, 0, 0]);
    assert_eq!(s.ops, 0);
    let s = run(&[0, 0, 0, 0, 0x80, 21, 0x81, 1, 0, 0]);
    assert_eq!(s.ops, 0);
}
