//! Expected outcomes, and a scenario that carries them: the helpers the oracle's tests share.

use super::vmsa::{FaultStatus, esr};
use super::{Access, Fault, Outcome, Regs, Report, Scenario, run};

/// The word every data page holds at `pa`.
pub const fn word(pa: u64) -> u64 {
    pa ^ 0x5a5a_0000_0000_0000
}

/// A stage 1 data abort taken to EL1 from EL1 (which is also what `LDTR`/`STTR` take):
/// EC 0x25, IL = 1, WnR, DFSC; ISV = 0 (ESR_EL1 ISS encoding for a Data Abort).
pub fn dabt(status: FaultStatus, write: bool, far: u64) -> Outcome {
    let wnr = if write { esr::WNR } else { 0 };
    Outcome::Fault(Fault {
        esr: (u64::from(esr::EC_DABT_CUR) << 26) | esr::IL | wnr | u64::from(status.encode()),
        far,
    })
}

/// A stage 1 instruction abort: EC 0x21 from EL1, 0x20 from EL0; IL = 1, IFSC.
pub fn iabt(el0: bool, status: FaultStatus, far: u64) -> Outcome {
    let ec = if el0 {
        esr::EC_IABT_LOW
    } else {
        esr::EC_IABT_CUR
    };
    Outcome::Fault(Fault {
        esr: (u64::from(ec) << 26) | esr::IL | u64::from(status.encode()),
        far,
    })
}

/// A scenario with what the spec says it must do: the outcome of each probe, and the words
/// the CPU must write into the dumped ranges (every other dumped word stays as loaded).
#[derive(Debug, Clone)]
pub struct Cases {
    pub s: Scenario,
    /// One per probe: a short description and the expected outcome.
    pub want: Vec<(&'static str, Outcome)>,
    /// (physical address, value after the probes) of the words the CPU must write.
    pub writes: Vec<(u64, u64)>,
}

impl Cases {
    pub fn new(regs: Regs) -> Self {
        Self {
            s: Scenario::new(regs),
            want: Vec::new(),
            writes: Vec::new(),
        }
    }

    /// A descriptor at `index` of the table at `table_pa`.
    pub fn entry(&mut self, table_pa: u64, index: u64, d: u64) {
        self.s.put_u64(table_pa + index * 8, d);
    }

    /// A data page full of [`word`]s.
    pub fn data(&mut self, pa: u64) {
        let bytes: Vec<u8> = (0..512)
            .flat_map(|i| word(pa + i * 8).to_le_bytes())
            .collect();
        self.s.put(pa, &bytes);
    }

    pub fn expect(&mut self, what: &'static str, va: u64, access: Access, want: Outcome) {
        self.s.probe(va, access);
        self.want.push((what, want));
    }

    /// The CPU must leave `value` at `pa` (which a dump range must cover).
    pub fn cpu_writes(&mut self, pa: u64, value: u64) {
        self.writes.push((pa, value));
    }

    /// The value the spec gives the dumped word at `pa` after the probes.
    pub fn final_u64(&self, pa: u64) -> u64 {
        self.writes
            .iter()
            .rev()
            .find(|&&(at, _)| at == pa)
            .map_or_else(|| self.s.initial_u64(pa), |&(_, v)| v)
    }

    /// Every 8-byte address the scenario dumps.
    pub fn dumped(&self) -> impl Iterator<Item = u64> + '_ {
        self.s
            .dump
            .iter()
            .flat_map(|&(pa, len)| (pa..pa + len as u64).step_by(8))
    }

    /// Where `r` departs from the spec, one line each.
    pub fn mismatches(&self, r: &Report) -> Vec<String> {
        let mut bad = Vec::new();
        for (i, ((what, want), got)) in self.want.iter().zip(&r.outcomes).enumerate() {
            let p = self.s.probes[i];
            if want != got {
                bad.push(format!(
                    "probe {i} ({what}) {:#x} {:x?}: CPU {got:x?}, spec {want:x?}",
                    p.va, p.access
                ));
            }
        }
        for pa in self.dumped() {
            let (got, want) = (r.u64_at(pa), self.final_u64(pa));
            if got != want {
                bad.push(format!(
                    "word at {pa:#x}: CPU {got:#018x}, spec {want:#018x}"
                ));
            }
        }
        bad
    }

    /// Runs the boot and asserts every probe and dumped word; `None` (after printing SKIP)
    /// without QEMU.
    pub fn run(self) -> Option<Report> {
        let Some(r) = run(&self.s) else {
            eprintln!("SKIP: qemu-system-aarch64 not found");
            return None;
        };
        let bad = self.mismatches(&r);
        assert!(
            bad.is_empty(),
            "{} mismatches:\n{}",
            bad.len(),
            bad.join("\n")
        );
        Some(r)
    }
}
