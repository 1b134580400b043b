//! Coverage-guided fuzzing of the VFIO device cdev: bind, attach and detach ioctls with
//! well-formed and malformed arguments, fault-file I/O, an emulated driver's pins and copies,
//! with the leak checks at close (`vsva_iommufd::fuzz::run_vfio`). One host (`iommufd_host.rs`)
//! serves every input; each input gets a fresh process and context.
//!
//! Run: `cargo fuzz run vfio_cdev` from the repository root (cargo-fuzz needs a nightly
//! compiler, or `RUSTC_BOOTSTRAP=1` with the stable one).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "iommufd_host.rs"]
mod iommufd_host;

fuzz_target!(|data: &[u8]| {
    iommufd_host::with_host(|host| {
        vsva_iommufd::fuzz::run_vfio(host, data);
    });
});
