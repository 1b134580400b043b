//! The SVA demo program: every named check passes on a fresh platform.

use vsva_host::Platform;
use vsva_vtd::VtdConfig;

#[test]
fn every_check_of_the_sva_program_passes() {
    let p = Platform::new(16 << 30, VtdConfig::default()).unwrap();
    let r = vsva_demo::run_program(&p).unwrap();
    for c in &r.checks {
        println!(
            "{} {} — {}",
            if c.passed { "PASS" } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    for (k, v) in &r.counters {
        println!("{k} = {v}");
    }
    assert_eq!(r.checks.len(), 12);
    let failed: Vec<_> = r.checks.iter().filter(|c| !c.passed).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    let get = |k: &str| {
        r.counters
            .iter()
            .find(|(n, _)| *n == k)
            .map(|x| x.1)
            .unwrap()
    };
    assert!(get("page_requests") > 0 && get("atc_hits") > 0 && get("devtlb_invalidations") > 0);
}
