//! A demo report: named checks with details, narrative lines, and counters.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// One check of the demo.
#[derive(Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// What the demo prints.
#[derive(Debug, Default)]
pub struct Report {
    /// Explanations, in order, each under the check it belongs to.
    pub sections: Vec<(String, Vec<String>)>,
    pub checks: Vec<Check>,
    pub counters: BTreeMap<String, u64>,
    /// One line per program run (a host or a guest): name, checks passed, checks.
    pub runs: Vec<Run>,
}

/// One program run of the demo.
#[derive(Debug, Serialize)]
pub struct Run {
    pub name: String,
    pub passed: usize,
    pub checks: usize,
}

impl Report {
    /// Starts a section of narrative.
    pub fn section(&mut self, title: &str) {
        self.sections.push((title.to_string(), Vec::new()));
    }

    /// Adds a line of narrative to the current section.
    pub fn say(&mut self, line: impl Into<String>) {
        if self.sections.is_empty() {
            self.section("");
        }
        if let Some(s) = self.sections.last_mut() {
            s.1.push(line.into());
        }
    }

    /// Records a check.
    pub fn check(&mut self, name: &str, passed: bool, detail: impl Into<String>) {
        let detail = detail.into();
        self.say(format!(
            "[{}] {name}: {detail}",
            if passed { "PASS" } else { "FAIL" }
        ));
        self.checks.push(Check {
            name: name.to_string(),
            passed,
            detail,
        });
    }

    /// Sets a counter.
    pub fn count(&mut self, name: &str, value: u64) {
        self.counters.insert(name.to_string(), value);
    }

    /// Records a program run's summary.
    pub fn run(&mut self, name: &str, passed: usize, checks: usize) {
        self.runs.push(Run {
            name: name.to_string(),
            passed,
            checks,
        });
    }

    pub fn all_passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (title, lines) in &self.sections {
            if !title.is_empty() {
                let _ = writeln!(out, "\n== {title}");
            }
            for l in lines {
                let _ = writeln!(out, "  {l}");
            }
        }
        let passed = self.checks.iter().filter(|c| c.passed).count();
        let _ = writeln!(out, "\n== checks: {passed} of {} passed", self.checks.len());
        for c in &self.checks {
            let _ = writeln!(
                out,
                "  {} {:<54} {}",
                if c.passed { "PASS" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        let _ = writeln!(out, "\n== counters");
        for (k, v) in &self.counters {
            let _ = writeln!(out, "  {k:<28} {v}");
        }
        if self.runs.len() > 1 {
            let _ = writeln!(out, "\n== runs");
            for run in &self.runs {
                let _ = writeln!(
                    out,
                    "  {} {:<44} {} of {} checks passed",
                    if run.passed == run.checks {
                        "PASS"
                    } else {
                        "FAIL"
                    },
                    run.name,
                    run.passed,
                    run.checks
                );
            }
        }
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "checks": self.checks,
            "counters": self.counters,
            "all_passed": self.all_passed(),
            "runs": self.runs,
        })
    }
}
