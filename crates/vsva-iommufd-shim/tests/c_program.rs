//! Runs a C program against `/dev/iommu` under `LD_PRELOAD=libvsva_iommufd_shim.so`: the program
//! (`tests/c/iommufd_check.c`) carries its own copies of the uAPI structs and checks
//! allocation, mapping of its own memory and of a memfd, COPY, UNMAP, IOVA ranges, a VFIO
//! device bound, attached to a nesting parent and to a nested HWPT with a fault queue, the
//! fault fd's read/write/poll rules, the errno of each bad argument, dup and close. A second
//! program (`tests/c/vfio_regions.c`) is a user-space driver of the demo device: it reads the
//! VFIO device's regions, programs DMA into its own memory through BAR 0 and serves a page
//! fault from its fault queue. A third (`tests/c/vfio_mdev.c`) drives the emulated copy engine
//! as a VMM drives a mediated device: bound as an iommufd access, attached to an IOAS only,
//! DMA by copy and by pinned pages that an `IOMMU_IOAS_UNMAP` makes its driver give back.
//! A fourth (`tests/c/smmuv3_nesting.c`, on the SMMUv3 host: `VSVA_SHIM_IOMMU=smmuv3`) is a
//! VMM's SMMUv3 nesting: hw_info IDRs, nest parent, vIOMMU, vDEVICE, nested HWPTs from guest
//! STEs, raw-command invalidation and a vEVENTQ descriptor; then, with a guest CD table and
//! stage-1 table in its guest RAM, the demo device's DMA under SSID 1 through both stages, a
//! PTE change made visible by TLBI_NH_VA and ATC_INV through the vIOMMU, a PRI page request
//! served from the nested HWPT's fault queue, and (run with `events`) the guest's C_BAD_CD
//! and C_BAD_SUBSTREAMID read from the vEVENTQ.
//!
//! The library is built with the test's own profile by invoking cargo (a test cannot depend
//! on a cdylib). Without a C compiler the test prints `SKIP` and passes.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target directory and profile directory of this test binary
/// (`<target>/<profile>/deps/<test>`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binaries live in <target>/<profile>/deps")
        .to_path_buf()
}

/// Builds `libvsva_iommufd_shim.so` for this test's profile and returns its path.
fn build_library() -> PathBuf {
    let dir = profile_dir();
    let profile = dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
    let target_dir = dir.parent().expect("profile directory has a parent");
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args([
            "build",
            "--locked",
            "-p",
            "vsva-iommufd-shim",
            "--manifest-path",
        ])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            cargo.arg("--release");
        }
        other => {
            cargo.args(["--profile", other]);
        }
    }
    let out = cargo.output().expect("run cargo");
    assert!(
        out.status.success(),
        "building the shim failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lib = dir.join("libvsva_iommufd_shim.so");
    assert!(lib.exists(), "{} was not built", lib.display());
    lib
}

fn have_cc() -> bool {
    Command::new("cc")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Compiles `tests/c/<name>.c` strictly and runs it under the shim with the default machine;
/// the program must print its closing `all N checks passed` line and no `FAIL`.
fn compile_and_run(lib: &Path, name: &str) {
    compile_and_run_on(lib, name, "vtd");
}

/// As [`compile_and_run`], on the host `VSVA_SHIM_IOMMU=iommu` names.
fn compile_and_run_on(lib: &Path, name: &str, iommu: &str) {
    compile_and_run_with(lib, name, iommu, &[]);
}

/// As [`compile_and_run_on`], the program run with `args` (built under a name of its own,
/// so that tests running it with other arguments at the same time do not share the file).
fn compile_and_run_with(lib: &Path, name: &str, iommu: &str, args: &[&str]) {
    let src = format!("{}/tests/c/{name}.c", env!("CARGO_MANIFEST_DIR"));
    let exe = profile_dir().join(
        std::iter::once(format!("vsva-{name}"))
            .chain(args.iter().map(|a| a.to_string()))
            .collect::<Vec<_>>()
            .join("-"),
    );
    let cc = Command::new("cc")
        .args([
            "-std=gnu11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-O2",
            "-D_FORTIFY_SOURCE=2",
        ])
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("run cc");
    assert!(
        cc.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let run = Command::new(&exe)
        .args(args)
        .env("LD_PRELOAD", lib)
        .env_remove("VSVA_SHIM_CONFIG")
        .env("VSVA_SHIM_IOMMU", iommu)
        .output()
        .expect("run the C program");
    let stdout = String::from_utf8_lossy(&run.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&run.stderr));
    assert!(
        run.status.success(),
        "the C program {name} failed: {:?}",
        run.status
    );
    assert!(stdout.contains("all "), "the program did not finish");
    assert!(!stdout.contains("FAIL"));
}

#[test]
fn c_program_drives_dev_iommu_through_the_shim() {
    if !have_cc() {
        println!("SKIP c_program_drives_dev_iommu_through_the_shim: no C compiler (cc)");
        return;
    }
    compile_and_run(&build_library(), "iommufd_check");
}

#[test]
fn c_driver_runs_the_demo_device_through_vfio_regions() {
    if !have_cc() {
        println!("SKIP c_driver_runs_the_demo_device_through_vfio_regions: no C compiler (cc)");
        return;
    }
    compile_and_run(&build_library(), "vfio_regions");
}

#[test]
fn c_driver_runs_the_emulated_device_through_an_access() {
    if !have_cc() {
        println!("SKIP c_driver_runs_the_emulated_device_through_an_access: no C compiler (cc)");
        return;
    }
    compile_and_run(&build_library(), "vfio_mdev");
}

#[test]
fn c_vmm_drives_smmuv3_nesting_through_the_shim() {
    if !have_cc() {
        println!("SKIP c_vmm_drives_smmuv3_nesting_through_the_shim: no C compiler (cc)");
        return;
    }
    compile_and_run_on(&build_library(), "smmuv3_nesting", "smmuv3");
}

/// The same program reading the guest's events from the vEVENTQ after DMAs under an
/// invalidated CD and past S1CDMax. Ignored: the shim runs the host's interrupt handlers only
/// while a device waits for a page (`Machine::run_endpoint`), so the event of a command that
/// fails stays in the SMMU's event queue and never reaches the vEVENTQ.
#[test]
fn c_vmm_reads_smmuv3_guest_events_from_the_veventq() {
    if !have_cc() {
        println!("SKIP c_vmm_reads_smmuv3_guest_events_from_the_veventq: no C compiler (cc)");
        return;
    }
    compile_and_run_with(&build_library(), "smmuv3_nesting", "smmuv3", &["events"]);
}

#[test]
fn a_bad_configuration_makes_open_fail_with_enodev() {
    if !have_cc() {
        println!("SKIP a_bad_configuration_makes_open_fail_with_enodev: no C compiler (cc)");
        return;
    }
    let lib = build_library();
    let dir = profile_dir();
    let src = dir.join("vsva-open-errno.c");
    std::fs::write(
        &src,
        "#include <errno.h>\n#include <fcntl.h>\n#include <stdio.h>\n\
         int main(void) { int fd = open(\"/dev/iommu\", O_RDWR);\n\
         printf(\"fd=%d errno=%d\\n\", fd, fd < 0 ? errno : 0); return 0; }\n",
    )
    .unwrap();
    let exe = dir.join("vsva-open-errno");
    let cc = Command::new("cc")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("run cc");
    assert!(cc.success());
    let config = dir.join("vsva-shim-bad-config.json");
    std::fs::write(&config, r#"{"ram_mib": 16}"#).unwrap();
    let run = Command::new(&exe)
        .env("LD_PRELOAD", &lib)
        .env("VSVA_SHIM_CONFIG", &config)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(stdout.trim(), format!("fd=-1 errno={}", libc::ENODEV));
    assert!(String::from_utf8_lossy(&run.stderr).contains("ram_mib"));
    // A good configuration: the machine builds and the open succeeds.
    std::fs::write(
        &config,
        r#"{"ram_mib": 512, "endpoints": [{"rid": "00:05.0", "pasid_bits": 8}]}"#,
    )
    .unwrap();
    let run = Command::new(&exe)
        .env("LD_PRELOAD", &lib)
        .env("VSVA_SHIM_CONFIG", &config)
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&run.stdout).starts_with("fd=3"));
}
