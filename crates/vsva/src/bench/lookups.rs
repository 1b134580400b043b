//! Cache hits and table walks: the IOTLB, the SMMU's TLB and the ATC against a `HashMap`
//! lookup, warm 4-level and nested walks (x86/VT-d and Arm formats).

use std::hint::black_box;
use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use vsva_host::Smmuv3Kind;
use vsva_mem::{Access, FrameAllocator, PageSize, Pasid, PhysMem, PhysMemory, PhysWindow, Va};
use vsva_mm::{MapFlags, Prot};
use vsva_pcie::{Atc, AtcEntry, AtcLookup, Request, RequestKind, TranslationFlags};
use vsva_pgtable::nested::{Stage2, nested_walk};
use vsva_pgtable::vtd_ss::VtdSecondStage;
use vsva_pgtable::walk::Direct;
use vsva_pgtable::x86::X86Paging;
use vsva_pgtable::{ArmS1, ArmS2, Format, PageTable, Perm, walk};
use vsva_smmuv3::Transaction;

use super::{Effort, MIB, Metric, ns_per_op, ratio_metric, rig, rig_on};

pub(super) fn iotlb_hit(e: Effort, base: f64) -> Result<Metric> {
    let r = rig(64)?;
    let va = r
        .proc_
        .mmap(None, 64 * 4096, Prot::RW, MapFlags::POPULATE)?;
    let rid = r.drv.device().rid();
    let pasid = Some(r.ctx.pasid());
    let ns = tlb_hit_ns(e, &r.proc_, va, |addr| {
        r.p.unit
            .translate(&Request {
                rid,
                pasid,
                addr,
                access: Access::READ,
                kind: RequestKind::Untranslated,
            })
            .map(|t| t.addr)
            .ok()
    })?;
    Ok(ratio_metric(
        ns,
        "ns",
        base,
        "<= 1.5x and <= 20 ns",
        ns <= 1.5 * base && ns <= 20.0,
    ))
}

/// The SMMU's TLB hit path: a transaction of the bound PASID (SubstreamID) on the Arm64
/// host, through [`Smmuv3::translate`](vsva_smmuv3::Smmuv3::translate) — the STE/CD
/// configuration cache, then one TLB shard.
pub(super) fn smmuv3_tlb_hit(e: Effort, base: f64) -> Result<Metric> {
    let r = rig_on::<Smmuv3Kind>(64)?;
    let va = r
        .proc_
        .mmap(None, 64 * 4096, Prot::RW, MapFlags::POPULATE)?;
    let sid = u32::from(r.drv.device().rid().raw());
    let ssid = Some(r.ctx.pasid().raw());
    let ns = tlb_hit_ns(e, &r.proc_, va, |addr| {
        r.p.unit
            .translate(&Transaction {
                sid,
                ssid,
                addr,
                access: Access::READ,
                stallable: false,
            })
            .map(|t| t.addr)
            .ok()
    })?;
    let mut m = ratio_metric(
        ns,
        "ns",
        base,
        "<= 1.5x and <= 20 ns",
        ns <= 1.5 * base && ns <= 20.0,
    );
    m.note = Some("SMMUv3 TLB hit vs HashMap::get, as iotlb_hit_ns".into());
    Ok(m)
}

/// Nanoseconds per hit of `translate` over the 64 pages from `va` of `process`, after
/// checking that every page translates as the CPU does and warming the cache.
fn tlb_hit_ns(
    e: Effort,
    process: &vsva_mm::Process,
    va: Va,
    translate: impl Fn(u64) -> Option<u64>,
) -> Result<f64> {
    let page = |i: u64| va.raw() + (i % 64) * 4096;
    for i in 0..64 {
        let t = translate(page(i)).context("warm translation")?;
        let cpu = process
            .translate(Va::new(page(i)), Access::READ)
            .ok()
            .context("CPU view")?;
        ensure!(
            t == cpu.output,
            "the IOMMU and the CPU disagree on {:#x}",
            page(i)
        );
    }
    // The output address is what a DMA goes on with, as the baseline's value is what its
    // lookup yields: black-boxing the whole result instead spills it through the stack in
    // pieces and times the store-forwarding stall (perf: 81% of the loop on two stack moves).
    Ok(ns_per_op(e, 200_000, |i| {
        black_box(translate(page(black_box(i))));
    }))
}

pub(super) fn atc_hit(e: Effort, base: f64) -> Result<Metric> {
    let mut atc = Atc::with_capacity(64);
    let pasid = Some(Pasid::new(1)?);
    for i in 0..64u64 {
        atc.insert(
            pasid,
            0x7f00_0000_0000 + i * 4096,
            PageSize::Size4K,
            AtcEntry {
                translated: 0x1000_0000 + i * 4096,
                flags: TranslationFlags::READ | TranslationFlags::WRITE,
            },
        )?;
    }
    ensure!(
        matches!(
            atc.lookup(pasid, 0x7f00_0000_0010, Access::READ),
            AtcLookup::Hit {
                translated: 0x1000_0010,
                ..
            }
        ),
        "ATC does not hit"
    );
    let ns = ns_per_op(e, 200_000, |i| {
        black_box(atc.lookup(
            pasid,
            black_box(0x7f00_0000_0000 + (i % 64) * 4096),
            Access::READ,
        ));
    });
    Ok(ratio_metric(ns, "ns", base, "<= 1.0x", ns <= base))
}

/// Where the walk metrics map their 64 pages.
const WALK_VA: u64 = 0x7f00_0000_0000;

/// 1 GiB of host memory (its concrete type: the walks are timed with static dispatch) and
/// an allocator of its first 256 MiB, for page tables.
pub(super) fn walk_memory() -> Result<(Arc<PhysMemory>, Arc<FrameAllocator>)> {
    let host = Arc::new(PhysMemory::new(1 << 30)?);
    let frames = Arc::new(FrameAllocator::new(host.clone(), 0, 256 * MIB));
    Ok((host, frames))
}

pub(super) fn walk4(e: Effort, base: f64) -> Result<Metric> {
    let (ns, refs) = walk4_ns(e, X86Paging::default())?;
    let mut m = ratio_metric(ns, "ns", base, "<= 40 ns", ns <= 40.0);
    m.note = Some(format!("{refs} references"));
    Ok(m)
}

/// A warm 4-level walk of an Arm stage-1 table (an Arm64 process's, as an SMMU CD's TTB0
/// holds it: 48-bit VA, hardware AF and dirty state) with vsva-pgtable's walker.
pub(super) fn smmuv3_walk4(e: Effort, base: f64) -> Result<Metric> {
    let (ns, refs) = walk4_ns(e, ArmS1::default())?;
    let mut m = ratio_metric(ns, "ns", base, "<= 40 ns", ns <= 40.0);
    m.note = Some(format!(
        "{refs} references; Arm stage 1 vs HashMap::get, as walk4_ns"
    ));
    Ok(m)
}

/// Nanoseconds per warm walk of a 4-level `fmt` table over 64 pages, and the references of
/// one walk.
fn walk4_ns<F: Format + Copy>(e: Effort, fmt: F) -> Result<(f64, u32)> {
    let (host, frames) = walk_memory()?;
    let pt = PageTable::new(fmt, frames)?;
    let va = WALK_VA;
    for p in 0..64 {
        pt.map(
            va + p * 4096,
            0x1000_0000 + p * 4096,
            PageSize::Size4K,
            Perm::USER_RW,
        )?;
        pt.walk(va + p * 4096, Access::READ | Access::WRITE)
            .ok()
            .context("warm walk")?;
    }
    let root = pt.root();
    let w = walk(
        &fmt,
        host.as_ref(),
        root,
        va,
        Access::READ,
        &mut Direct,
        &mut (),
    )
    .ok()
    .context("walk")?;
    ensure!(w.refs == 4 && w.output == 0x1000_0000, "walk4: {w:?}");
    let ns = ns_per_op(e, 200_000, |i| {
        black_box(
            walk(
                &fmt,
                host.as_ref(),
                root,
                black_box(va + (i % 64) * 4096),
                Access::READ,
                &mut Direct,
                &mut (),
            )
            .ok(),
        );
    });
    Ok((ns, w.refs))
}

pub(super) fn nested(e: Effort, base: f64) -> Result<Metric> {
    let (ns, refs) = nested_ns(e, X86Paging::default(), VtdSecondStage::four_level())?;
    let mut m = ratio_metric(ns, "ns", base, "<= 150 ns", ns <= 150.0);
    m.note = Some(format!("{refs} references"));
    Ok(m)
}

/// A warm nested walk on an SMMU: an Arm stage 1 (a guest process's, 48-bit VA) over an
/// Arm stage 2 (48-bit IPA, 4 levels from level 0), as a nested STE/CD has them.
pub(super) fn smmuv3_nested(e: Effort, base: f64) -> Result<Metric> {
    let (ns, refs) = nested_ns(e, ArmS1::default(), ArmS2::new(48, 48))?;
    let mut m = ratio_metric(ns, "ns", base, "<= 150 ns", ns <= 150.0);
    m.note = Some(format!(
        "{refs} references; Arm stage 1 over stage 2 vs HashMap::get, as nested_walk_ns"
    ));
    Ok(m)
}

/// Nanoseconds per warm nested walk of a 4-level `fmt` stage 1 over a 4-level `s2_fmt`
/// stage 2, over 64 pages, and the references of one walk.
fn nested_ns<F1: Format + Copy, F2: Format>(e: Effort, fmt: F1, s2_fmt: F2) -> Result<(f64, u32)> {
    let (host, frames) = walk_memory()?;
    let va = WALK_VA;
    let ram_hpa = 512 * MIB;
    let ram: Arc<dyn PhysMem> = Arc::new(PhysWindow::new(host.clone(), ram_hpa, 64 * MIB)?);
    let s2 = PageTable::new(s2_fmt, frames)?;
    let mut gpa = 0;
    while gpa < 64 * MIB {
        s2.map(gpa, ram_hpa + gpa, PageSize::Size4K, Perm::RW)?;
        gpa += 4096;
    }
    let s1 = PageTable::new(fmt, Arc::new(FrameAllocator::new(ram, 16 * MIB, 64 * MIB)))?;
    for p in 0..64 {
        s1.map(va + p * 4096, p * 4096, PageSize::Size4K, Perm::USER_RW)?;
    }
    let stage2 = Stage2 {
        format: s2.format(),
        mem: host.as_ref(),
        root: s2.root(),
    };
    for p in 0..64 {
        nested_walk(
            &fmt,
            s1.root(),
            &stage2,
            va + p * 4096,
            Access::READ | Access::WRITE,
        )
        .ok()
        .context("warm nested")?;
    }
    let n = nested_walk(&fmt, s1.root(), &stage2, va, Access::READ)
        .ok()
        .context("nested")?;
    ensure!(n.refs == 24 && n.output == ram_hpa, "nested: {n:?}");
    let s1_root = s1.root();
    let ns = ns_per_op(e, 100_000, |i| {
        black_box(
            nested_walk(
                &fmt,
                s1_root,
                &stage2,
                black_box(va + (i % 64) * 4096),
                Access::READ,
            )
            .ok(),
        );
    });
    Ok((ns, n.refs))
}
