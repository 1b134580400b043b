//! The host both iommufd targets (`iommufd_ctx`, `vfio_cdev`) serve every input with: the demo
//! platform with a VT-d unit and two devices, built once per thread (a dropped domain frees its
//! tables, so one host lasts the whole run).

use std::cell::RefCell;

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

thread_local! {
    static HOST: RefCell<Option<(Platform, Host)>> = const { RefCell::new(None) };
}

/// Runs `f` on this thread's host.
pub fn with_host(f: impl FnOnce(&Host)) {
    HOST.with(|h| {
        let mut h = h.borrow_mut();
        f(&h.get_or_insert_with(host).1);
    });
}
