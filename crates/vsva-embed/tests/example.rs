//! The `virtio_queue` example runs (so CI runs it) and does what it says, on both vIOMMUs.

#[path = "../examples/virtio_queue.rs"]
mod example;

use vsva_host::{IommuKind, Smmuv3Kind, VtdKind};
use vsva_smmuv3::spec::event::id;
use vsva_vtd::spec::fault::FaultReason;

fn check<K: IommuKind>(cfg: K::Config, not_mapped: u8) {
    let mut log = Vec::new();
    let o = example::run::<K>(cfg, &mut log).unwrap();
    let log = String::from_utf8(log).unwrap();
    eprintln!("{log}");
    assert_eq!(o.response, b"HELLO THROUGH THE VIOMMU");
    assert_eq!(o.status, 0);
    assert_eq!(o.used, (0, 25), "head 0, 24 bytes and the status byte");
    assert!(o.invalidations >= 1);
    assert!(o.error.contains("CannotResolve"), "{}", o.error);
    assert_eq!(o.faults.len(), 1, "{:?}", o.faults);
    let f = &o.faults[0];
    assert_eq!((f.dev.raw(), f.pasid, f.write), (0x0018, None, false));
    assert_eq!(f.addr & !0xfff, 0x4000_0000, "the available ring's page");
    assert_eq!(f.reason, not_mapped);
}

#[test]
fn the_virtio_queue_example_on_a_vtd_viommu() {
    check::<VtdKind>(Default::default(), FaultReason::SsNotPresent as u8);
}

#[test]
fn the_virtio_queue_example_on_an_smmuv3_viommu() {
    check::<Smmuv3Kind>(Default::default(), id::F_TRANSLATION);
}
