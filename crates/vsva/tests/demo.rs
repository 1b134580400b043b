//! `vsva demo` end to end: the command's JSON report, as a user scripting it would read it.

use std::process::Command;

#[test]
fn demo_json_reports_every_check_passed() {
    let out = Command::new(env!("CARGO_BIN_EXE_vsva"))
        .args(["demo", "--json"])
        .output()
        .expect("run vsva");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let checks = v["checks"].as_array().expect("checks array");
    assert!(checks.len() >= 10);
    for c in checks {
        assert!(c["name"].is_string() && c["detail"].is_string());
        assert_eq!(c["passed"], true, "{c}");
    }
    let names: Vec<&str> = checks.iter().filter_map(|c| c["name"].as_str()).collect();
    for expected in [
        "first write faults in a zeroed page",
        "fork shares pages copy-on-write",
        "nested 4+4 walk makes 24 memory references",
    ] {
        assert!(
            names.contains(&expected),
            "missing check {expected:?} in {names:?}"
        );
    }
    assert_eq!(v["counters"]["walk4_refs"], 4);
    assert_eq!(v["counters"]["nested_walk_refs"], 24);
    assert_eq!(v["counters"]["cow_copies"], 1);
}

#[test]
fn demo_text_report_lists_checks_and_counters() {
    let out = Command::new(env!("CARGO_BIN_EXE_vsva"))
        .arg("demo")
        .output()
        .expect("run vsva");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("== checks: "));
    assert!(text.contains("== counters"));
    assert!(!text.contains("FAIL"));
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_vsva"))
        .arg("frobnicate")
        .output()
        .expect("run vsva");
    assert_eq!(out.status.code(), Some(2));
}
