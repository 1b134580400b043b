//! Coverage-guided fuzzing of an endpoint's configuration space: arbitrary options, reads and
//! writes of any size at any offset, device-side status updates, checked against a model of
//! the PASID/ATS/Page Request register tables (`vsva_pcie::fuzz::run`).
//!
//! Run: `cargo fuzz run pcie_config` from the repository root (cargo-fuzz needs a nightly
//! compiler, or `RUSTC_BOOTSTRAP=1` with the stable one).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vsva_pcie::fuzz::run(data);
});
