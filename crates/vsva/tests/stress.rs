//! `vsva stress`, short: every VT-d scenario and the main SMMUv3 ones for a bounded number
//! of operations, each raced by device DMA on another thread, with no stale access allowed.

use std::process::Command;

/// Operations per scenario (a few seconds in all, in a debug build).
const ITERATIONS: u64 = 500;

/// Every scenario on the VT-d host.
const SCENARIOS: [&str; 12] = [
    "munmap",
    "mprotect",
    "pageout",
    "dontneed",
    "fork",
    "unbind",
    "exit",
    "ioas_unmap",
    "detach",
    "guest_te_clear",
    "guest_pasid_inval",
    "guest_munmap",
];

/// Operations per SMMUv3 scenario (their test runs beside the VT-d one).
const SMMUV3_ITERATIONS: u64 = 300;

/// On the SMMUv3 host: munmap (frames and leaf tables freed under DMA), unbind (the CD torn
/// down) and exit (the whole address space freed), and in its guest through the virtual
/// SMMUv3 the guest's unbind (CD cleared, CFGI_CD relayed) and SMMUEN clear; the others run
/// in `vsva stress` itself.
const SMMUV3_SCENARIOS: [&str; 5] = [
    "smmuv3_munmap",
    "smmuv3_unbind",
    "smmuv3_exit",
    "smmuv3_guest_unbind",
    "smmuv3_guest_smmuen_clear",
];

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vsva"))
        .args(args)
        .output()
        .expect("run vsva")
}

#[test]
fn every_scenario_races_dma_and_no_device_access_reaches_what_the_operation_took() {
    races_and_no_stale_access(&SCENARIOS, ITERATIONS);
}

#[test]
fn on_smmuv3_no_device_access_reaches_what_munmap_unbind_or_exit_took() {
    races_and_no_stale_access(&SMMUV3_SCENARIOS, SMMUV3_ITERATIONS);
}

/// Runs the `chosen` scenarios for `iterations` operations each: every one raced, none stale.
fn races_and_no_stale_access(chosen: &[&str], iterations: u64) {
    let iterations_arg = iterations.to_string();
    let only = chosen.join(",");
    // --seconds only as a ceiling: the iterations bound the run
    let out = run(&[
        "stress",
        "--json",
        "--seconds",
        "1200",
        "--iterations",
        &iterations_arg,
        "--only",
        &only,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "one JSON object ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(v["seconds"].as_f64().is_some(), "{v}");
    let scenarios = v["scenarios"].as_array().expect("scenarios");
    let names: Vec<&str> = scenarios
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, chosen);
    let mut failures = Vec::new();
    for s in scenarios {
        let name = &s["name"];
        let n = |k: &str| {
            s[k].as_u64()
                .unwrap_or_else(|| panic!("{name}: no {k}: {s}"))
        };
        if let Some(e) = s["error"].as_str() {
            failures.push(format!("{name}: could not run: {e}"));
            continue;
        }
        if n("stale_accesses") != 0 {
            failures.push(format!(
                "{name}: {} stale accesses ({} reads, {} writes, {} frames changed)",
                n("stale_accesses"),
                n("stale_reads"),
                n("stale_writes"),
                n("frames_changed")
            ));
        }
        assert_eq!(n("operations"), iterations, "{name}: {s}");
        // the DMA thread really worked, and really raced the operations
        assert!(n("dma_completed") > 0, "{name}: no command completed: {s}");
        assert!(n("dma_commands") >= n("operations"), "{name}: {s}");
        assert!(
            n("raced") > 0,
            "{name}: no operation met a running command: {s}"
        );
        assert!(n("frames_watched") >= n("operations"), "{name}: {s}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(out.status.success(), "exit status {:?}", out.status);
}

#[test]
fn one_scenario_prints_a_table_and_an_unknown_one_is_refused() {
    let out = run(&["stress", "--only", "munmap", "--iterations", "20"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("scenario") && lines[0].contains("stale"));
    assert!(
        lines[1].starts_with("munmap") && lines[1].ends_with("ok"),
        "{text}"
    );
    assert!(
        lines[2].contains("20 operations, 0 stale accesses"),
        "{text}"
    );

    let out = run(&["stress", "--only", "nope"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown scenario \"nope\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
