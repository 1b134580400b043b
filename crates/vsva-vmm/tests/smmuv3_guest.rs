//! The demo in a guest through a virtual SMMUv3 on an SMMUv3 host's nesting: every check of
//! the PCIe program (PRI) and of the platform program (stall) passes, and each of the four
//! flows did its work (`vsva demo --vm --viommu smmuv3`'s counters), with nothing refused or
//! dropped on the way.

#[path = "common/smmuv3.rs"]
mod smmu;

use smmu::{guest, host};

#[test]
fn the_demo_programs_run_in_the_guest_through_all_four_flows() {
    let host = host();
    let vm = guest(&host, 1);
    let report = vsva_demo::run_program(&vm).unwrap();
    for c in &report.checks {
        assert!(c.passed, "{}: {}", c.name, c.detail);
    }
    let pci = vm.vmm().counters();
    assert!(pci.nested_binds > 0, "{pci:?}");
    assert!(pci.invalidations_propagated > 0, "{pci:?}");
    assert!(pci.faults_to_guest > 0, "{pci:?}");
    assert_eq!(pci.page_responses_relayed, pci.faults_to_guest, "{pci:?}");
    assert_eq!(pci.bind_errors, 0);
    // The guest's page requests came through its PRI queue.
    assert!(vm.unit().stats().page_requests > 0);

    let vsva_demo::PlatformRun::Ran(report) = vsva_demo::run_platform(&vm).unwrap() else {
        panic!("the guest's SMMU stalls (IDR0.STALL_MODEL from the host)");
    };
    for c in &report.checks {
        assert!(c.passed, "{}: {}", c.name, c.detail);
    }
    let all = vm.vmm().counters();
    assert!(
        all.faults_to_guest > pci.faults_to_guest,
        "stall events too"
    );
    assert!(all.page_responses_relayed > pci.page_responses_relayed);
    assert_eq!(all.bind_errors, 0);
    // Every stall the host took was resumed by the host's driver on the guest's word.
    let s = host.driver.stall_stats();
    assert!(s.stall_events > 0);
    assert_eq!(s.stall_events, s.resumes);
    assert_eq!(host.unit.stats().stalled, 0);
    // What the program answered, the guest answered once: nothing dropped.
    assert_eq!(all.responses_dropped, 0, "{all:?}");
}
