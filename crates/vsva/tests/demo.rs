//! The `vsva` command end to end: the reports, as a user scripting them would read them.

use std::process::Command;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vsva"))
        .args(args)
        .output()
        .expect("run vsva")
}

fn json(args: &[&str]) -> serde_json::Value {
    let out = run(args);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn demo_json_reports_every_sva_check_and_the_counters() {
    let v = json(&["demo", "--json"]);
    let checks = v["checks"].as_array().expect("checks array");
    // the VT-d host's twelve, the same twelve inside its guest, then on the SMMUv3 host,
    // then the platform device's eight on the SMMUv3 host, then both devices' twenty inside
    // the SMMUv3 host's guest
    assert_eq!(checks.len(), 64);
    for c in checks {
        assert!(c["name"].is_string() && c["detail"].is_string());
        assert_eq!(c["passed"], true, "{c}");
    }
    let names: Vec<&str> = checks.iter().filter_map(|c| c["name"].as_str()).collect();
    for expected in [
        "fresh mmap faulted in by the device",
        "munmap with live ATC entries: next DMA faults",
        "two devices bound to one process share its PASID",
    ] {
        assert!(names.contains(&expected), "missing check {expected:?}");
        let in_guest = format!("guest: {expected}");
        assert!(names.contains(&in_guest.as_str()), "missing {in_guest:?}");
        let on_smmu = format!("smmuv3: {expected}");
        assert!(names.contains(&on_smmu.as_str()), "missing {on_smmu:?}");
        let in_smmu_guest = format!("smmuv3 guest: {expected}");
        assert!(
            names.contains(&in_smmu_guest.as_str()),
            "missing {in_smmu_guest:?}"
        );
    }
    // one line per run
    let runs = v["runs"].as_array().expect("runs array");
    let run_names: Vec<&str> = runs.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(
        run_names,
        [
            "VT-d host",
            "VT-d guest (virtual VT-d on host nesting)",
            "SMMUv3 host",
            "SMMUv3 host, platform device with stall",
            "SMMUv3 guest (virtual SMMUv3 on host nesting)"
        ]
    );
    assert!(
        runs[..3]
            .iter()
            .all(|r| r["passed"] == 12 && r["checks"] == 12)
    );
    assert!(runs[3]["passed"] == 8 && runs[3]["checks"] == 8);
    assert!(runs[4]["passed"] == 20 && runs[4]["checks"] == 20);
    assert!(names.contains(&"smmuv3: stall: fresh mmap faulted in by the device"));
    assert!(names.contains(&"smmuv3 guest: stall: fresh mmap faulted in by the device"));
    // the VT-d host says why it has no platform device with stall
    let text = String::from_utf8_lossy(&run(&["demo", "--iommu", "vtd"]).stdout).into_owned();
    assert!(
        text.contains("platform device with stall: skipped, the IOMMU cannot stall"),
        "{text}"
    );
    assert!(v["counters"]["smmuv3_stall_events"].as_u64().unwrap() > 0);
    for counter in [
        "ats_translations",
        "atc_hits",
        "page_requests",
        "page_group_responses",
        "iotlb_invalidations",
        "devtlb_invalidations",
        "dma_bytes",
    ] {
        assert!(v["counters"][counter].as_u64().unwrap() > 0, "{counter}");
    }
    assert_eq!(
        v["counters"]["page_requests"],
        v["counters"]["page_group_responses"]
    );
    // the guest's flows through the VMM
    for counter in [
        "nested_binds",
        "invalidations_propagated",
        "faults_to_guest",
        "page_responses_relayed",
    ] {
        assert!(v["counters"][counter].as_u64().unwrap() > 0, "{counter}");
    }
    // every page request the guest received, the guest answered through the VMM
    assert_eq!(
        v["counters"]["faults_to_guest"],
        v["counters"]["page_responses_relayed"]
    );
    // the same four flows through the virtual SMMUv3: page requests through the PRI
    // queues and stalls through the event queues, each answered back to the host
    for counter in [
        "nested_binds",
        "invalidations_propagated",
        "faults_to_guest",
        "page_responses_relayed",
    ] {
        let k = format!("smmuv3_guest_{counter}");
        assert!(v["counters"][&k].as_u64().unwrap() > 0, "{k}");
    }
    assert_eq!(
        v["counters"]["smmuv3_guest_faults_to_guest"],
        v["counters"]["smmuv3_guest_page_responses_relayed"]
    );
}

#[test]
fn demo_vm_runs_only_the_guest() {
    let v = json(&["demo", "--vm", "--json"]);
    let checks = v["checks"].as_array().expect("checks array");
    // the VT-d host's guest, then the SMMUv3 host's (both devices)
    assert_eq!(checks.len(), 32);
    assert!(checks.iter().all(|c| c["passed"] == true));
    let runs = v["runs"].as_array().expect("runs array");
    assert_eq!(runs.len(), 2);
    // one host's guest alone, without prefixes
    let smmu = json(&["demo", "--iommu", "smmuv3", "--vm", "--json"]);
    let checks = smmu["checks"].as_array().expect("checks array");
    assert_eq!(checks.len(), 20);
    assert!(checks.iter().all(|c| c["passed"] == true));
    let names: Vec<&str> = checks.iter().filter_map(|c| c["name"].as_str()).collect();
    assert!(names.contains(&"stall: fork: child binds its own PASID, no shared data"));
    assert!(
        smmu["counters"]["smmuv3_guest_nested_binds"]
            .as_u64()
            .unwrap()
            >= 2
    );
    assert!(
        v["counters"]["nested_binds"].as_u64().unwrap() >= 2,
        "parent and forked child"
    );
    assert!(v["counters"]["guest_page_requests"].is_null());
}

#[test]
fn demo_on_the_smmuv3_host_alone() {
    let v = json(&["demo", "--iommu", "smmuv3", "--json"]);
    let checks = v["checks"].as_array().expect("checks array");
    // twelve on the PCIe device, eight on the platform device with stall, then the same
    // twenty in the guest
    assert_eq!(checks.len(), 40);
    assert!(checks.iter().all(|c| c["passed"] == true));
    let names: Vec<&str> = checks.iter().filter_map(|c| c["name"].as_str()).collect();
    // no host prefix when one host runs alone
    assert!(names.contains(&"fresh mmap faulted in by the device"));
    for expected in [
        "stall: fresh mmap faulted in by the device",
        "stall: write to a read-only mapping fails, nothing written",
        "stall: access to an unmapped range fails cleanly",
        "stall: 2 MiB and 1 GiB huge pages",
        "stall: fork: child binds its own PASID, no shared data",
        "stall: exit with DMA pending: stall aborted, system works",
        "stall: page-out under load, data intact",
    ] {
        assert!(names.contains(&expected), "missing check {expected:?}");
    }
    let n = |k: &str| v["counters"][k].as_u64().unwrap_or(0);
    for counter in [
        "ats_translations",
        "page_requests",
        "cmdq_commands",
        "cmd_syncs",
    ] {
        assert!(n(counter) > 0, "{counter}");
    }
    // every page request went through the PRI queue and was answered with CMD_PRI_RESP
    assert_eq!(n("priq_entries"), n("page_requests"));
    assert_eq!(n("pri_responses"), n("page_group_responses"));
    // the platform device's page faults went through stall: every stall event read from
    // the event queue was answered with CMD_RESUME, one per stall the device saw
    assert!(n("stall_events") > 0 && n("priq_entries") > 0);
    assert_eq!(n("stall_events"), n("resumes"));
    assert_eq!(n("stall_events"), n("platform_stalls"));
    // the SMMU wrote each of them (no other event on these runs)
    assert_eq!(n("events"), n("stall_events"));
    assert!(names.contains(&"guest: stall: fresh mmap faulted in by the device"));
    // each host offers its own vIOMMU; the ones not built yet say which issue builds them
    for (args, says) in [
        (
            &["--iommu", "vtd", "--viommu", "smmuv3"][..],
            "not a virtual SMMUv3",
        ),
        (&["--viommu", "virtio-iommu"][..], "issue 16"),
        (
            &["--iommu", "smmuv3", "--viommu", "vtd"][..],
            "not a virtual VT-d",
        ),
    ] {
        let out = run(&[&["demo"][..], args].concat());
        assert!(!out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{args:?}"
        );
    }
}

#[test]
fn demo_text_report_has_a_line_per_check_then_counters() {
    let out = run(&["demo"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("== checks: 64 of 64 passed"));
    assert!(text.contains("PASS SMMUv3 host"));
    assert!(text.contains("PASS SMMUv3 host, platform device with stall"));
    assert!(text.contains("vSVA demo"));
    let counters_at = text.find("== counters").expect("counters");
    assert!(text.find("== checks").unwrap() < counters_at);
    assert!(!text.contains("FAIL"));
}

#[test]
fn foundation_walkthrough_reports_its_checks() {
    let v = json(&["foundation", "--json"]);
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(names.contains(&"nested 4+4 walk makes 24 memory references"));
    assert_eq!(v["counters"]["walk4_refs"], 4);
    assert_eq!(v["counters"]["nested_walk_refs"], 24);
    assert_eq!(v["all_passed"], true);
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn bench_quick_json_has_every_metric_with_its_baseline() {
    // Structure only: no assertion on any time.
    let v = json(&["bench", "--quick", "--json"]);
    let m = v["metrics"].as_object().expect("metrics object");
    for name in [
        "iotlb_hit_ns",
        "atc_hit_ns",
        "walk4_ns",
        "nested_walk_ns",
        "sva_dma_copy_gbps",
        "iopf_roundtrip_us",
        "vsva_iopf_roundtrip_us",
        "invalidation_us",
        "ioas_map_pages_per_s",
        "pasid_scale",
        "thread_scale",
        // the SMMUv3 twins, in the same run
        "smmuv3_tlb_hit_ns",
        "smmuv3_walk4_ns",
        "smmuv3_nested_walk_ns",
        "smmuv3_sva_dma_copy_gbps",
        "smmuv3_iopf_roundtrip_us",
        "smmuv3_iopf_stall_roundtrip_us",
        "smmuv3_invalidation_us",
    ] {
        let x = &m[name];
        assert!(x["value"].as_f64().is_some_and(|v| v > 0.0), "{name}: {x}");
        assert!(x["unit"].is_string(), "{name}");
        assert!(
            x["baseline"].as_f64().is_some_and(|b| b > 0.0),
            "{name}: every metric has its same-run baseline: {x}"
        );
    }
    assert!(m["iotlb_hit_ns"]["baseline"].as_f64().is_some());
    assert!(m["sva_dma_copy_gbps"]["ratio"].as_f64().is_some());
    assert!(m["ioas_map_pages_per_s"]["baseline"].as_f64().is_some());
    assert!(m["vsva_iopf_roundtrip_us"]["baseline"].as_f64().is_some());
}

#[test]
fn bench_only_runs_the_named_metric_and_refuses_unknown_names() {
    let v = json(&["bench", "--quick", "--json", "--only", "invalidation_us"]);
    let m = v["metrics"].as_object().expect("metrics object");
    assert_eq!(m.keys().collect::<Vec<_>>(), ["invalidation_us"]);
    let out = run(&["bench", "--quick", "--only", "no_such_metric"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown metric"));
}
