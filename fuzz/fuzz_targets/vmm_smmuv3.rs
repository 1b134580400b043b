//! Coverage-guided fuzzing of the guest-facing surface of the virtual SMMUv3: guest register
//! writes, STEs/CDs and raw commands in guest RAM, the assigned device's commands and DMAs,
//! with the host's isolation checks (`vsva_vmm::fuzz::Smmuv3Bench`). One VM serves every
//! input; each input ends with a guest reboot and the next begins with a known-good DMA
//! through the fresh guest.
//!
//! Run: `cargo fuzz run vmm_smmuv3` from the repository root (cargo-fuzz needs a nightly
//! compiler, or `RUSTC_BOOTSTRAP=1` with the stable one).

#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use vsva_vmm::fuzz::Smmuv3Bench;

thread_local! {
    static BENCH: RefCell<Smmuv3Bench> = RefCell::new(Smmuv3Bench::new().expect("a VM"));
}

fuzz_target!(|data: &[u8]| {
    BENCH.with(|b| {
        b.borrow_mut().run(data);
    });
});
