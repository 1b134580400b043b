//! Coverage-guided fuzzing of the VFIO device cdev: bind, attach and detach ioctls with
//! well-formed and malformed arguments, fault-file I/O, an emulated driver's pins and copies,
//! with the leak checks at close (`vsva_iommufd::fuzz::run_vfio`). One host (the demo platform
//! with a VT-d unit and two devices) serves every input; each input gets a fresh process and
//! context.
//!
//! Run: `cargo fuzz run vfio_cdev` from the repository root (cargo-fuzz needs a nightly
//! compiler, or `RUSTC_BOOTSTRAP=1` with the stable one).

#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use vsva_host::Platform;
use vsva_iommu::DeviceCaps;
use vsva_iommufd::DeviceInfo;
use vsva_iommufd::fuzz::Host;
use vsva_mem::Rid;
use vsva_vtd::VtdConfig;

fn host() -> (Platform, Host) {
    let p = Platform::new(1 << 30, VtdConfig::default()).expect("a host");
    let caps = DeviceCaps {
        pasid_bits: 20,
        ats: false,
        pri: false,
    };
    let mut infos = Vec::new();
    for dev in [3, 4] {
        let rid = Rid::from_bdf(0, dev, 0).expect("a RID");
        p.add_device(rid, 32, 64);
        p.iommu.add_device(rid, caps, 32).expect("a device");
        infos.push(DeviceInfo::new(rid, caps));
    }
    let host = Host {
        iommu: p.iommu.clone(),
        mm: p.mm.clone(),
        mem: p.mem.clone(),
        bound: infos[0],
        physical: infos[1],
    };
    (p, host)
}

/// Inputs one host serves before it is rebuilt: a dropped paging domain keeps its table
/// frames (vsva-iommu, reported with an ignored test in `vsva-iommufd/tests/fuzz_streams.rs`),
/// and the host's 65 280 driver frames would run out after about 63 000 inputs.
const REBUILD_EVERY: u32 = 20_000;

thread_local! {
    static HOST: RefCell<(u32, (Platform, Host))> = RefCell::new((0, host()));
}

fuzz_target!(|data: &[u8]| {
    HOST.with(|h| {
        let mut h = h.borrow_mut();
        h.0 += 1;
        if h.0 % REBUILD_EVERY == 0 {
            h.1 = host();
        }
        vsva_iommufd::fuzz::run_vfio(&(h.1).1, data);
    });
});
