//! Coverage-guided fuzzing of the VT-d unit: arbitrary bytes as register writes, table
//! contents, descriptor streams and device requests (`vsva_vtd::fuzz::run`).
//!
//! Run: `cargo fuzz run vtd_unit` from the repository root (cargo-fuzz needs a nightly
//! compiler, or `RUSTC_BOOTSTRAP=1` with the stable one).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vsva_vtd::fuzz::run(data);
});
