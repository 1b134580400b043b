//! The demo program inside a guest: every check of the host demo passes there too, through
//! the vIOMMU and host nesting.

use std::sync::Arc;

use vsva_host::Platform;
use vsva_vmm::{VmConfig, VtdVm as Vm};
use vsva_vtd::VtdConfig;

#[test]
fn every_host_demo_check_passes_in_the_guest() {
    let host = Arc::new(Platform::new(16 << 30, VtdConfig::default()).unwrap());
    let vm = Vm::boot(host, VmConfig::default()).unwrap();
    let report = vsva_demo::run_program(&vm).unwrap();
    for c in &report.checks {
        println!(
            "{} {}: {}",
            if c.passed { "PASS" } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    println!("{:?}", vm.vmm().counters());
    assert!(report.checks.iter().all(|c| c.passed));
}
