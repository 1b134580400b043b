//! Address spaces: IOAS map+unmap against `mmap(MAP_POPULATE)`, and many PASIDs against one.

use std::hint::black_box;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use vsva_host::Platform;
use vsva_mem::{Access, Pasid, Rid, Va};
use vsva_mm::{MapFlags, Prot};
use vsva_pcie::{Request, RequestKind};
use vsva_vtd::VtdConfig;
use vsva_vtd_driver::Domain;

use super::{Effort, MIB, Metric, median, ns_per_op, ratio_metric};

/// IOAS_MAP + IOAS_UNMAP of fresh anonymous memory in 4 KiB pages into an IOAS with a VT-d
/// paging domain attached (so every page is faulted in, pinned, charged and mapped, then
/// unmapped, flushed and unpinned), against the host's `mmap(MAP_POPULATE)` of as much.
pub(super) fn ioas_map(e: Effort) -> Result<Metric> {
    use vsva_iommufd::IoPageTable;
    use vsva_iommufd::IoProt;
    let len: u64 = if e.quick { 256 * MIB } else { 1 << 30 };
    let pages = len / 4096;
    let p = Platform::new(8 << 30, VtdConfig::default())?;
    let rid = Rid::from_bdf(0, 3, 0)?;
    p.add_device(rid, 32, 64);
    p.iommu.add_device(
        rid,
        vsva_iommu::DeviceCaps {
            pasid_bits: 20,
            ats: false,
            pri: false,
        },
        0,
    )?;
    let domain = p.iommu.alloc_paging_domain()?;
    p.iommu.attach_domain(rid, Pasid::new(0)?, &domain, None)?;
    let ioas = IoPageTable::default();
    ioas.attach_domain(1, domain.clone())
        .map_err(|e| anyhow::anyhow!("attach: {e}"))?;
    let vmm = p.mm.spawn()?;
    let mut samples = vec![];
    for _ in 0..e.samples.min(3) {
        let va = vmm.mmap(None, len, Prot::RW, MapFlags::empty())?;
        let t = Instant::now();
        let iova = ioas
            .map_user(
                vmm.clone(),
                va.raw(),
                len,
                IoProt::READ | IoProt::WRITE,
                None,
            )
            .map_err(|e| anyhow::anyhow!("IOAS_MAP: {e}"))?;
        let mapped_at = t.elapsed();
        // self-check between the two halves (not timed): the device's view is the VMM's
        for off in [0, len / 2, len - 4096] {
            let want = vmm.translate(Va::new(va.raw() + off), Access::READ);
            let got = p.unit.translate(&vsva_pcie::Request {
                rid,
                pasid: None,
                addr: iova + off,
                access: Access::READ,
                kind: vsva_pcie::RequestKind::Untranslated,
            });
            ensure!(
                matches!((&want, &got), (Ok(w), Ok(g)) if w.output == g.addr),
                "IOVA {:#x} does not reach the mapped page",
                iova + off
            );
        }
        let t = Instant::now();
        let unmapped = ioas
            .unmap(iova, len)
            .map_err(|e| anyhow::anyhow!("IOAS_UNMAP: {e}"))?;
        let total = mapped_at + t.elapsed();
        ensure!(
            unmapped == len && vmm.locked_pages() == 0,
            "unmap left pins"
        );
        vmm.munmap(va, len)?;
        samples.push(pages as f64 / total.as_secs_f64());
    }
    let rate = median(samples);
    let base = median(
        (0..e.samples.min(3))
            .map(|_| host_populate_pages_per_s(len))
            .collect::<Result<Vec<f64>>>()?,
    );
    let mut m = ratio_metric(
        rate,
        "pages/s",
        base,
        ">= 0.5x mmap(MAP_POPULATE)",
        rate >= 0.5 * base,
    );
    m.note = Some(format!("{} MiB in 4 KiB pages per sample", len / MIB));
    Ok(m)
}

/// Pages per second the host's `mmap(MAP_POPULATE)` faults in.
pub(super) fn host_populate_pages_per_s(len: u64) -> Result<f64> {
    let t = Instant::now();
    // SAFETY: a fresh private anonymous mapping of `len` bytes; nothing else refers to it,
    // and it is unmapped below before anything could.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    };
    let took = t.elapsed();
    ensure!(ptr != libc::MAP_FAILED, "mmap(MAP_POPULATE) failed");
    // SAFETY: `ptr` is the mapping of `len` bytes made above.
    unsafe { libc::munmap(ptr, len as usize) };
    Ok((len / 4096) as f64 / took.as_secs_f64())
}

pub(super) fn pasid_scale(e: Effort) -> Result<Metric> {
    let total: u32 = if e.quick { 1 << 16 } else { 1 << 20 };
    let devices = 64u32;
    let measure = |n_pasids: u32, n_devices: u32| -> Result<f64> {
        let p = Platform::new(64 << 30, VtdConfig::default())?;
        let mm = p.mm.clone();
        let proc_ = mm.spawn()?;
        let va = proc_.mmap(None, 64 * 4096, Prot::RW, MapFlags::POPULATE)?;
        let root = proc_.page_table_root().context("root")?;
        let per_dev = (n_pasids / n_devices).max(1);
        let mut rids = vec![];
        for d in 0..n_devices {
            let rid = Rid::from_raw(0x100 + d as u16);
            p.driver
                .attach_device(rid, vsva_vtd_driver::DeviceOptions::PASID)?;
            let dom = Domain::FirstStage {
                did: 1,
                root,
                levels: 4,
                supervisor: false,
                write_protect: true,
            };
            let mut it = (1..=per_dev).filter_map(|x| Pasid::new(x).ok());
            p.driver.attach_new_pasids(rid, &mut it, &dom)?;
            rids.push(rid);
        }
        // 64 hot translations spread over devices and PASIDs
        let req = |i: u64| Request {
            rid: rids[(i as usize * 7) % rids.len()],
            pasid: Pasid::new(1 + ((i as u32).wrapping_mul(2_654_435_761) % per_dev)).ok(),
            addr: va.raw() + (i % 64) * 4096,
            access: Access::READ,
            kind: RequestKind::Untranslated,
        };
        for i in 0..64 {
            p.unit.translate(&req(i)).ok().context("warm")?;
        }
        Ok(ns_per_op(e, 200_000, |i| {
            black_box(p.unit.translate(&req(i % 64)).ok());
        }))
    };
    let many = measure(total, devices)?;
    let one = measure(1, 1)?;
    let ratio = many / one;
    Ok(Metric {
        value: ratio,
        unit: "x",
        baseline: Some(one),
        ratio: Some(ratio),
        target: "<= 1.5x",
        met: Some(ratio <= 1.5),
        note: Some(format!(
            "{many:.1} ns with {total} PASIDs over {devices} devices, {one:.1} ns with 1"
        )),
    })
}
