//! Warm page walks against a hash-map lookup measured in the same run.
//!
//! * `hashmap_lookup` — `HashMap<u64, u64>::get`, the baseline (what a software IOTLB hit
//!   costs at best).
//! * `walk4_warm` — a 4-level x86 walk whose A/D bits are already set (4 entry reads).
//! * `nested_walk_warm` — a 4+4-level nested walk (24 entry reads).
//!
//! Each iteration looks up a different one of 64 pages so the branch predictor cannot learn a
//! single path.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use vsva_mem::{Access, FrameAllocator, PageSize, PhysMem, PhysMemory, PhysWindow};
use vsva_pgtable::nested::{Stage2, nested_walk};
use vsva_pgtable::vtd_ss::VtdSecondStage;
use vsva_pgtable::walk::Direct;
use vsva_pgtable::x86::X86Paging;
use vsva_pgtable::{PageTable, Perm, walk};

const MIB: u64 = 1 << 20;
const PAGES: u64 = 64;
const VA: u64 = 0x7f00_0000_0000;

fn benches(c: &mut Criterion) {
    let map: HashMap<u64, u64> = (0..PAGES).map(|i| (VA + i * 0x1000, i * 0x1000)).collect();
    let mut i = 0u64;
    c.bench_function("hashmap_lookup", |b| {
        b.iter(|| {
            i = (i + 1) % PAGES;
            black_box(map.get(&black_box(VA + i * 0x1000)))
        })
    });

    // One-stage: x86 tables in host memory.
    let host = Arc::new(PhysMemory::new(1 << 30).unwrap());
    let host_dyn: Arc<dyn PhysMem> = host.clone();
    let frames = Arc::new(FrameAllocator::new(host_dyn.clone(), 0, 256 * MIB));
    let fmt = X86Paging::default();
    let pt = PageTable::new(fmt, frames).unwrap();
    for p in 0..PAGES {
        pt.map(
            VA + p * 0x1000,
            0x1000_0000 + p * 0x1000,
            PageSize::Size4K,
            Perm::USER_RW,
        )
        .unwrap();
        pt.walk(VA + p * 0x1000, Access::READ | Access::WRITE)
            .unwrap();
    }
    let root = pt.root();
    c.bench_function("walk4_warm", |b| {
        b.iter(|| {
            i = (i + 1) % PAGES;
            let t = walk(
                &fmt,
                host.as_ref(),
                root,
                black_box(VA + i * 0x1000),
                Access::READ,
                &mut Direct,
                &mut (),
            );
            black_box(t.unwrap().output)
        })
    });

    // Nested: guest RAM at 512 MiB, second stage 4 KiB pages.
    let ram_hpa = 512 * MIB;
    let ram: Arc<dyn PhysMem> = Arc::new(PhysWindow::new(host_dyn, ram_hpa, 64 * MIB).unwrap());
    let s2 = PageTable::new(VtdSecondStage::four_level(), pt.frames().clone()).unwrap();
    let mut gpa = 0;
    while gpa < 64 * MIB {
        s2.map(gpa, ram_hpa + gpa, PageSize::Size4K, Perm::RW)
            .unwrap();
        gpa += 0x1000;
    }
    let s1 = PageTable::new(fmt, Arc::new(FrameAllocator::new(ram, 16 * MIB, 64 * MIB))).unwrap();
    for p in 0..PAGES {
        s1.map(VA + p * 0x1000, p * 0x1000, PageSize::Size4K, Perm::USER_RW)
            .unwrap();
    }
    let stage2 = Stage2 {
        format: s2.format(),
        mem: host.as_ref(),
        root: s2.root(),
    };
    for p in 0..PAGES {
        nested_walk(
            &fmt,
            s1.root(),
            &stage2,
            VA + p * 0x1000,
            Access::READ | Access::WRITE,
        )
        .unwrap();
    }
    let s1_root = s1.root();
    c.bench_function("nested_walk_warm", |b| {
        b.iter(|| {
            i = (i + 1) % PAGES;
            let t = nested_walk(
                &fmt,
                s1_root,
                &stage2,
                black_box(VA + i * 0x1000),
                Access::READ,
            );
            black_box(t.unwrap().output)
        })
    });
}

criterion_group!(walks, benches);
criterion_main!(walks);
