//! An Arm CPU as an oracle for stage 1 page-table walks: QEMU's `-cpu max` under TCG runs a
//! tiny bare-metal program that performs the probes of a [`Scenario`] with the scenario's
//! tables and translation registers, and reports what each probe did.
//!
//! Plain data in, plain data out, so that a test can put the same [`Scenario`] through
//! vsva's own Arm walker and compare [`Outcome`]s: include this module with
//! `#[path = "arm_oracle/mod.rs"] mod harness;`. [`scenarios::all`] gives every scenario of
//! `tests/arm_oracle.rs` with the outcomes and descriptor writes the spec expects
//! ([`expect::Cases`]).
//!
//! # One boot
//! `qemu-system-aarch64 -M virt -cpu max -m 256M`, no firmware: the CPU starts at EL1 (the
//! `virt` machine has no EL2/EL3 by default), at the program the generic loader put at
//! [`IMAGE_BASE`]; the scenario's memory pieces are loaded beside it. The program (see
//! `program.rs`) turns the MMU on with its own tables, moves to its TTBR1 alias, loads the
//! scenario's TTBR0_EL1, TCR_EL1, MAIR_EL1 and SCTLR_EL1, invalidates the TLB, and then for
//! each probe: invalidates the TLB again, performs the access, and reports. A synchronous
//! exception during a probe records ESR_EL1 and FAR_EL1 and resumes after the probe. Then
//! it sends the requested memory ranges and stops the machine with PSCI SYSTEM_OFF, which
//! makes QEMU exit. Results travel through the PL011 UART as little-endian `u64` words into a
//! file (`-serial file:`), framed by magic words. A boot that has not finished after
//! [`TIMEOUT`] is killed and the test fails.
//!
//! # What a scenario may not use
//! - Physical memory below [`RESERVED_END`] (the program, its vectors and tables): pieces and
//!   dumps must lie in `[RESERVED_END, RAM_END)`.
//! - TTBR1 and the VA range from [`TTBR1_BASE`] up: the harness maps itself there. Probes
//!   use TTBR0 addresses only.
//! - TCR_EL1's TTBR1 fields ([`vmsa::tcr::TTBR1_FIELDS`]) and MAIR_EL1 attributes 6 and 7.
//! - X0-X2 are the probe's value, address and store data; code that a fetch probe reaches
//!   must end in `SVC #0` (see [`exec_stub`]) and may only change X0.
//!
//! # Features of `-cpu max` that matter (QEMU 7.2)
//! FEAT_HAFDBS (ID_AA64MMFR1_EL1.HAFDBS = 2: hardware Access flag and dirty state, TCR_EL1.HA
//! and HD), FEAT_PAN (PSTATE.PAN cleared by the program, or set where the scenario says so
//! ([`Scenario::pan`]); the default SCTLR_EL1.SPAN = 1 leaves it alone on exception entry
//! and the handler's `ERET` restores the scenario's value), FEAT_UAO
//! (cleared, so `LDTR`/`STTR` check EL0 permissions), FEAT_HPDS (TCR_EL1.HPD0 is left 0, so
//! APTable/XNTable/PXNTable apply), FEAT_LPA2 and FEAT_LPA (left off: TCR_EL1.DS = 0, 4 KiB
//! granule, so the output address is at most 48 bits). The test
//! `cpu_max_has_the_features_the_oracle_relies_on` checks the ID registers the program
//! reports.
//!
//! # Where QEMU is not the spec
//! QEMU before 8.2 (Debian 12 ships 7.2) takes a level 0 descriptor with bits [1:0] = 0b01
//! as a 512 GiB block; the Arm ARM (DS = 0, 4 KiB granule) makes it invalid, a Translation
//! fault at level 0. The tests probe that case only on QEMU 8.2 or later
//! ([`qemu_version`]); a test comparing vsva's walker with the CPU must do the same, while
//! against the spec's expectations (`scenarios::invalid_descriptors(true)`) it stays.

#![allow(dead_code)] // Items used by some includers and not others.

pub mod asm;
pub mod expect;
mod program;
pub mod scenarios;
pub mod vmsa;

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use vmsa::{FaultStatus, esr};

/// Start of RAM on QEMU's `virt` machine (`hw/arm/virt.c`, `VIRT_MEM`).
pub const RAM_BASE: u64 = 0x4000_0000;
/// RAM size given to QEMU (`-m`).
pub const RAM_SIZE: u64 = 256 << 20;
/// End of RAM (exclusive).
pub const RAM_END: u64 = RAM_BASE + RAM_SIZE;
/// Where the program is loaded. QEMU puts its device tree in the first MiB of RAM when it
/// boots no kernel (`hw/arm/boot.c`), so the program goes after it.
pub const IMAGE_BASE: u64 = RAM_BASE + 0x10_0000;
/// End (exclusive) of the physical memory the harness keeps for itself: the device tree and
/// the program.
pub const RESERVED_END: u64 = RAM_BASE + 0x20_0000;
/// Start of the TTBR1 region (T1SZ = 25): the harness runs at `TTBR1_BASE + PA`.
pub const TTBR1_BASE: u64 = 0xffff_ff80_0000_0000;
/// How long one boot may take before it is killed.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// The QEMU binary.
pub const QEMU: &str = "qemu-system-aarch64";

pub(crate) const MAGIC_START: u64 = 0x3143_524f_4156_5356; // "VSVAORC1"
pub(crate) const MAGIC_END: u64 = 0x444e_4543_524f_4156; // "VAORCEND"
pub(crate) const MAGIC_PANIC: u64 = 0x2143_494e_4150_4156; // "VAPANIC!"

/// Bytes at a physical address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub pa: u64,
    pub bytes: Vec<u8>,
}

/// The translation registers a scenario runs under (the harness adds its own TTBR1 half,
/// MAIR attributes 6-7 and SCTLR_EL1.M).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Regs {
    pub ttbr0: u64,
    pub tcr: u64,
    pub mair: u64,
    pub sctlr: u64,
}

/// What a probe does at its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `LDR X0, [X1]` at EL1.
    Read,
    /// `STR X2, [X1]` at EL1.
    Write(u64),
    /// `LDTR X0, [X1]` at EL1: checked against EL0's permissions.
    ReadEl0,
    /// `STTR X2, [X1]` at EL1: checked against EL0's permissions.
    WriteEl0(u64),
    /// `BLR X1` at EL1.
    Fetch,
    /// `ERET` to EL0 at the address.
    FetchEl0,
}

/// One access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub va: u64,
    pub access: Access,
}

/// Everything one QEMU boot needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// Physical memory contents; later pieces overwrite earlier ones. Zero elsewhere.
    pub mem: Vec<Piece>,
    pub regs: Regs,
    /// PSTATE.PAN while the probes run (FEAT_PAN): `false` unless a scenario sets it.
    pub pan: bool,
    pub probes: Vec<Probe>,
    /// (physical address, length in bytes, a multiple of 8) to read back after the probes.
    pub dump: Vec<(u64, usize)>,
}

/// A synchronous exception a probe took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub esr: u64,
    pub far: u64,
}

impl Fault {
    pub fn ec(&self) -> u8 {
        esr::ec(self.esr)
    }

    pub fn status(&self) -> FaultStatus {
        FaultStatus::decode(esr::fsc(self.esr))
    }
}

/// What a probe did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Completed. Reads give the value loaded, fetches X0 as the fetched code left it, writes 0.
    Done(u64),
    Fault(Fault),
}

/// What one boot reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// ID_AA64MMFR0_EL1, ID_AA64MMFR1_EL1, ID_AA64MMFR2_EL1 of the CPU.
    pub id_aa64mmfr: [u64; 3],
    /// One per probe, in order.
    pub outcomes: Vec<Outcome>,
    /// The scenario's dump ranges as they were after the last probe.
    pub dump: Vec<Piece>,
}

impl Report {
    /// The dumped `u64` at `pa`.
    ///
    /// # Panics
    /// If no dump range covers it.
    pub fn u64_at(&self, pa: u64) -> u64 {
        self.dump
            .iter()
            .find_map(|p| {
                let off = usize::try_from(pa.checked_sub(p.pa)?).ok()?;
                let b = p.bytes.get(off..off + 8)?;
                Some(u64::from_le_bytes(b.try_into().unwrap()))
            })
            .unwrap_or_else(|| panic!("{pa:#x} was not dumped"))
    }
}

impl Scenario {
    pub fn new(regs: Regs) -> Self {
        Self {
            mem: Vec::new(),
            regs,
            pan: false,
            probes: Vec::new(),
            dump: Vec::new(),
        }
    }

    pub fn put(&mut self, pa: u64, bytes: &[u8]) {
        self.mem.push(Piece {
            pa,
            bytes: bytes.to_vec(),
        });
    }

    pub fn put_u64(&mut self, pa: u64, v: u64) {
        self.put(pa, &v.to_le_bytes());
    }

    /// Adds a probe; returns its index in [`Report::outcomes`].
    pub fn probe(&mut self, va: u64, access: Access) -> usize {
        self.probes.push(Probe { va, access });
        self.probes.len() - 1
    }

    /// The `u64` at `pa` as the scenario loads it (the last piece covering a byte wins).
    pub fn initial_u64(&self, pa: u64) -> u64 {
        let mut b = [0u8; 8];
        for (i, byte) in b.iter_mut().enumerate() {
            let at = pa + i as u64;
            if let Some(p) = self
                .mem
                .iter()
                .rev()
                .find(|p| at >= p.pa && at - p.pa < p.bytes.len() as u64)
            {
                *byte = p.bytes[(at - p.pa) as usize];
            }
        }
        u64::from_le_bytes(b)
    }

    pub fn dump(&mut self, pa: u64, len: usize) {
        self.dump.push((pa, len));
    }
}

/// Code for a fetch probe's target: `MOVZ X0, #tag; SVC #0`, so the probe reports `tag` and
/// returns to the harness (the SVC is taken to EL1 from EL1 or EL0 alike).
pub fn exec_stub(tag: u16) -> [u8; 8] {
    let mut b = [0; 8];
    b[..4].copy_from_slice(&asm::movz_x0(tag).to_le_bytes());
    b[4..].copy_from_slice(&asm::svc(0).to_le_bytes());
    b
}

/// Checks a scenario's addresses against the memory the harness leaves to it.
fn check(s: &Scenario) {
    let ok =
        |pa: u64, len: u64| pa >= RESERVED_END && pa.checked_add(len).is_some_and(|e| e <= RAM_END);
    for p in &s.mem {
        assert!(
            ok(p.pa, p.bytes.len() as u64),
            "piece at {:#x}+{:#x} outside [{RESERVED_END:#x}, {RAM_END:#x})",
            p.pa,
            p.bytes.len()
        );
    }
    for &(pa, len) in &s.dump {
        assert!(
            ok(pa, len as u64) && len > 0 && len % 8 == 0 && pa % 8 == 0,
            "dump {pa:#x}+{len:#x}: must be 8-byte aligned, non-empty, in \
             [{RESERVED_END:#x}, {RAM_END:#x})"
        );
    }
    for p in &s.probes {
        assert!(
            p.va < TTBR1_BASE,
            "probe {:#x} is in the harness's TTBR1 region",
            p.va
        );
    }
}

/// The scenario's memory as runs of whole pages: (first page address, bytes).
fn page_runs(s: &Scenario) -> Vec<(u64, Vec<u8>)> {
    let mut pages: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for p in &s.mem {
        for (i, &b) in p.bytes.iter().enumerate() {
            let pa = p.pa + i as u64;
            pages.entry(pa & !0xfff).or_insert_with(|| vec![0; 4096])[(pa & 0xfff) as usize] = b;
        }
    }
    let mut runs: Vec<(u64, Vec<u8>)> = Vec::new();
    for (page, bytes) in pages {
        match runs.last_mut() {
            Some((start, run)) if *start + run.len() as u64 == page => run.extend(bytes),
            _ => runs.push((page, bytes)),
        }
    }
    runs
}

/// A fresh directory for one boot's files.
fn scratch_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "vsva-arm-oracle-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create the oracle's scratch directory");
    dir
}

/// Whether QEMU can be started at all.
fn qemu_present() -> bool {
    qemu_version().is_some()
}

/// QEMU's version as (major, minor), `None` when it is not installed.
pub fn qemu_version() -> Option<(u32, u32)> {
    let out = match Command::new(QEMU).arg("--version").output() {
        Ok(o) => o,
        Err(e) if e.kind() == ErrorKind::NotFound => return None,
        Err(e) => panic!("cannot run {QEMU}: {e}"),
    };
    // "QEMU emulator version 7.2.22 (Debian ...)"
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .unwrap_or_else(|| panic!("unexpected `{QEMU} --version`: {text}"));
    let mut it = v.split('.').map(|n| n.parse::<u32>().unwrap_or(0));
    Some((it.next().unwrap_or(0), it.next().unwrap_or(0)))
}

/// Runs the scenario in one QEMU boot. `None` when `qemu-system-aarch64` is not installed.
///
/// # Panics
/// On any other failure: a malformed scenario, QEMU failing or timing out, an exception
/// outside a probe, or a garbled report.
pub fn run(s: &Scenario) -> Option<Report> {
    if !qemu_present() {
        return None;
    }
    check(s);
    let dir = scratch_dir();
    let image = dir.join("image.bin");
    std::fs::write(&image, program::image(s)).unwrap();
    let mut cmd = Command::new(QEMU);
    cmd.args(["-M", "virt", "-cpu", "max", "-accel", "tcg", "-smp", "1"])
        .args(["-m", &format!("{}M", RAM_SIZE >> 20)])
        .args(["-nodefaults", "-display", "none", "-monitor", "none"])
        .arg("-serial")
        .arg(format!("file:{}", dir.join("serial.bin").display()))
        .arg("-device")
        .arg(loader(&image, IMAGE_BASE, true));
    for (i, (pa, bytes)) in page_runs(s).into_iter().enumerate() {
        let f = dir.join(format!("mem{i}.bin"));
        std::fs::write(&f, bytes).unwrap();
        cmd.arg("-device").arg(loader(&f, pa, false));
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {QEMU}: {e}"));
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            let got = std::fs::read(dir.join("serial.bin")).unwrap_or_default();
            panic!(
                "{QEMU} did not stop within {TIMEOUT:?}; killed it ({} bytes of report, files \
                 in {})",
                got.len(),
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let out = child.wait_with_output().unwrap();
    assert!(
        status.success(),
        "{QEMU} failed ({status}): {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(dir.join("serial.bin")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    Some(parse(s, &bytes))
}

/// A `-device loader` argument: raw bytes at `addr`, the boot CPU's PC too if `entry`.
fn loader(file: &Path, addr: u64, entry: bool) -> String {
    let mut arg = format!("loader,file={},addr={addr:#x},force-raw=on", file.display());
    if entry {
        arg.push_str(",cpu-num=0");
    }
    arg
}

/// Decodes the UART stream: START, three ID registers, four words per probe, the dumps,
/// END; or PANIC, vector, ESR, ELR, FAR anywhere.
fn parse(s: &Scenario, bytes: &[u8]) -> Report {
    let words: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    if let Some(i) = words.iter().rposition(|&w| w == MAGIC_PANIC) {
        let f = |k: usize| words.get(i + k).copied().unwrap_or(0);
        panic!(
            "exception outside a probe: vector {}, ESR {:#x}, ELR {:#x}, FAR {:#x}",
            f(1),
            f(2),
            f(3),
            f(4)
        );
    }
    let dump_words: usize = s.dump.iter().map(|&(_, len)| len / 8).sum();
    let expect = 1 + 3 + 4 * s.probes.len() + dump_words + 1;
    assert!(
        words.len() == expect
            && words[0] == MAGIC_START
            && words[expect - 1] == MAGIC_END
            && bytes.len() % 8 == 0,
        "garbled report: {} bytes, expected {} words framed by START/END",
        bytes.len(),
        expect
    );
    let mut it = words[1..expect - 1].iter().copied();
    let mut next = || it.next().unwrap();
    let id_aa64mmfr = [next(), next(), next()];
    let outcomes = s
        .probes
        .iter()
        .map(|_| {
            let (status, value, esr, far) = (next(), next(), next(), next());
            match status {
                0 => Outcome::Done(value),
                1 => Outcome::Fault(Fault { esr, far }),
                other => panic!("garbled report: probe status {other:#x}"),
            }
        })
        .collect();
    let dump = s
        .dump
        .iter()
        .map(|&(pa, len)| Piece {
            pa,
            bytes: (0..len / 8).flat_map(|_| next().to_le_bytes()).collect(),
        })
        .collect();
    Report {
        id_aa64mmfr,
        outcomes,
        dump,
    }
}
