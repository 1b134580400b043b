//! A guest through a virtual SMMUv3 on an SMMUv3 host's nesting.

use std::sync::Arc;

use vsva_host::{Host, Smmuv3Kind};
use vsva_smmuv3::Smmuv3Config;
use vsva_vmm::{Smmuv3Vm, VmConfig};

#[test]
fn the_platform_program_runs_in_the_guest() {
    let host = Arc::new(Host::<Smmuv3Kind>::new(16 << 30, Smmuv3Config::default()).unwrap());
    let vm = Smmuv3Vm::boot(host.clone(), VmConfig::default()).unwrap();
    let run = vsva_demo::run_platform(&vm).unwrap();
    let vsva_demo::PlatformRun::Ran(report) = run else {
        panic!("skipped");
    };
    eprintln!("{:?}", vm.vmm().counters());
    eprintln!(
        "host stall {:?} guest stall {:?}",
        host.driver.stall_stats(),
        vm.os().driver.stall_stats()
    );
    eprintln!("host unit {:?}", host.unit.stats());
    eprintln!("guest unit {:?}", vm.unit().stats());
    for c in &report.checks {
        eprintln!("{} {} {}", c.passed, c.name, c.detail);
    }
    assert!(report.checks.iter().all(|c| c.passed));
}
