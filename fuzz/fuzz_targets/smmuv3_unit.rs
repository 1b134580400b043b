//! Coverage-guided fuzzing of the SMMUv3 unit: arbitrary bytes as register writes, stream
//! table / CD / page table contents, commands, device transactions and stall resolution
//! (`vsva_smmuv3::fuzz::run`).
//!
//! Run: `cargo fuzz run smmuv3_unit` from the repository root (cargo-fuzz needs a nightly
//! compiler, or `RUSTC_BOOTSTRAP=1` with the stable one).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vsva_smmuv3::fuzz::run(data);
});
