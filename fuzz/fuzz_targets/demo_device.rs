//! Coverage-guided fuzzing of the demo device through its registers on a small machine whose
//! IOMMU checks every DMA against what it granted (`vsva_demo::fuzz::run`).
//!
//! Run: `cargo fuzz run demo_device` from the repository root (cargo-fuzz needs a nightly
//! compiler, or `RUSTC_BOOTSTRAP=1` with the stable one).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vsva_demo::fuzz::run(data);
});
