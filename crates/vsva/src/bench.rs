//! `vsva bench`: each SVA cost measured next to a baseline of the physical operation it stands
//! for, in the same process and run, as the median of repeated samples after a warm-up.
//! Every measurement checks its own result (a checksum, a translation, a fault really
//! resolved), so a fast wrong answer cannot pass.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, ensure};
use serde::Serialize;
use vsva_demo::DemoDriver;
use vsva_host::{Host, IommuKind, Smmuv3Kind, VtdKind};
use vsva_mem::Rid;

mod dma;
mod faults;
mod lookups;
mod spaces;

use dma::{sva_copy, thread_scale};
use faults::{invalidation, iopf_roundtrip, smmuv3_iopf_stall_roundtrip, vsva_iopf_roundtrip};
use lookups::{atc_hit, iotlb_hit, nested, smmuv3_nested, smmuv3_tlb_hit, smmuv3_walk4, walk4};
use spaces::{ioas_map, pasid_scale};

const MIB: u64 = 1 << 20;

/// One metric.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    pub value: f64,
    pub unit: &'static str,
    pub baseline: Option<f64>,
    pub ratio: Option<f64>,
    /// What the target is, in words (for the text table).
    #[serde(skip)]
    pub target: &'static str,
    /// Whether the target is met.
    #[serde(skip)]
    pub met: Option<bool>,
    /// Extra facts (memory references, counts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// How hard to measure.
#[derive(Debug, Clone, Copy)]
pub struct Effort {
    samples: usize,
    quick: bool,
}

impl Effort {
    pub fn new(quick: bool) -> Effort {
        Effort {
            samples: if quick { 5 } else { 11 },
            quick,
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Nanoseconds per call of `f`, median over samples of `iters` calls each, after a warm-up.
fn ns_per_op(e: Effort, iters: u64, mut f: impl FnMut(u64)) -> f64 {
    for i in 0..iters {
        f(i);
    }
    let samples = (0..e.samples)
        .map(|_| {
            let t = Instant::now();
            for i in 0..iters {
                f(i);
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    median(samples)
}

/// The baseline of the lookup metrics: `HashMap<u64, u64>::get` over 64 keys.
fn hashmap_ns(e: Effort) -> f64 {
    let map: HashMap<u64, u64> = (0..64u64)
        .map(|i| (0x7f00_0000_0000 + i * 4096, i))
        .collect();
    ns_per_op(e, 200_000, |i| {
        black_box(map.get(&black_box(0x7f00_0000_0000 + (i % 64) * 4096)));
    })
}

fn ratio_metric(
    value: f64,
    unit: &'static str,
    baseline: f64,
    target: &'static str,
    met: bool,
) -> Metric {
    Metric {
        value,
        unit,
        baseline: Some(baseline),
        ratio: Some(value / baseline),
        target,
        met: Some(met),
        note: None,
    }
}

/// A host with one demo device (ATC of `atc` entries) probed and a process bound to it.
struct Rig<K: IommuKind = VtdKind> {
    p: Host<K>,
    drv: DemoDriver,
    proc_: Arc<vsva_mm::Process>,
    ctx: vsva_demo::Context,
}

/// The VT-d rig.
fn rig(atc: usize) -> Result<Rig> {
    rig_on::<VtdKind>(atc)
}

/// The rig on a host of kind `K` (its unit's default configuration).
fn rig_on<K: IommuKind>(atc: usize) -> Result<Rig<K>>
where
    K::Config: Default,
{
    let p = Host::<K>::new(64 << 30, K::Config::default())?;
    let dev = p.add_device(Rid::from_bdf(0, 3, 0)?, 64, atc);
    let drv = DemoDriver::probe(&p, dev, false)?;
    let proc_ = p.mm.spawn()?;
    let ctx = drv.open(&p, &proc_)?;
    Ok(Rig { p, drv, proc_, ctx })
}

/// How a metric is measured, given the effort and the lookup baseline (ns per
/// `HashMap::get`, measured once per run).
type Measure = fn(Effort, f64) -> Result<Metric>;

/// Every metric, in the order [`run`] runs them.
const METRICS: &[(&str, Measure)] = &[
    ("iotlb_hit_ns", iotlb_hit),
    ("smmuv3_tlb_hit_ns", smmuv3_tlb_hit),
    ("atc_hit_ns", atc_hit),
    ("walk4_ns", walk4),
    ("smmuv3_walk4_ns", smmuv3_walk4),
    ("nested_walk_ns", nested),
    ("smmuv3_nested_walk_ns", smmuv3_nested),
    ("sva_dma_copy_gbps", |e, _| sva_copy::<VtdKind>(e)),
    ("iopf_roundtrip_us", |e, _| iopf_roundtrip::<VtdKind>(e)),
    ("vsva_iopf_roundtrip_us", |e, _| {
        vsva_iopf_roundtrip::<VtdKind>(e)
    }),
    ("invalidation_us", |e, _| invalidation::<VtdKind>(e)),
    // the same on an Arm64 host behind an SMMUv3, against the same baselines
    ("smmuv3_sva_dma_copy_gbps", |e, _| sva_copy::<Smmuv3Kind>(e)),
    ("smmuv3_iopf_roundtrip_us", |e, _| {
        iopf_roundtrip::<Smmuv3Kind>(e)
    }),
    ("smmuv3_iopf_stall_roundtrip_us", |e, _| {
        smmuv3_iopf_stall_roundtrip(e)
    }),
    ("smmuv3_vsva_iopf_roundtrip_us", |e, _| {
        vsva_iopf_roundtrip::<Smmuv3Kind>(e)
    }),
    ("smmuv3_invalidation_us", |e, _| {
        invalidation::<Smmuv3Kind>(e)
    }),
    ("ioas_map_pages_per_s", |e, _| ioas_map(e)),
    ("pasid_scale", |e, _| pasid_scale(e)),
    ("thread_scale", |e, _| thread_scale(e)),
];

/// Runs every metric, or only those named in `only` (all when it is empty).
pub fn run(quick: bool, only: &[String]) -> Result<Vec<(&'static str, Metric)>> {
    for o in only {
        ensure!(
            METRICS.iter().any(|(name, _)| name == o),
            "unknown metric {o:?}; known: {}",
            METRICS
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let e = Effort::new(quick);
    let base = hashmap_ns(e);
    METRICS
        .iter()
        .filter(|(name, _)| only.is_empty() || only.iter().any(|o| o == name))
        .map(|&(name, measure)| Ok((name, measure(e, base)?)))
        .collect()
}

/// The text table.
pub fn table(metrics: &[(&'static str, Metric)]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<30} {:>10} {:<5} {:>12} {:>8}  target",
        "metric", "value", "unit", "baseline", "ratio"
    );
    for (name, m) in metrics {
        let _ = writeln!(
            s,
            "{:<30} {:>10.2} {:<5} {:>12} {:>8}  {:<26} {}{}",
            name,
            m.value,
            m.unit,
            m.baseline.map_or("-".into(), |b| format!("{b:.2}")),
            m.ratio.map_or("-".into(), |r| format!("{r:.2}")),
            m.target,
            match m.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "",
            },
            m.note
                .as_ref()
                .map_or(String::new(), |n| format!("  ({n})")),
        );
    }
    s
}
