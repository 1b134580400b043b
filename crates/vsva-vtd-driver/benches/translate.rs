//! A DMA translation that hits the IOTLB, next to a `HashMap<u64, u64>` lookup in the same
//! run (issue 7's `iotlb_hit_ns` metric).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use vsva_pcie::Mmio;

use criterion::{Criterion, criterion_group, criterion_main};
use vsva_mem::{Access, FrameAllocator, PageSize, Pasid, PhysMem, PhysMemory, Rid};
use vsva_pcie::MsiLog;
use vsva_pcie::{Request, RequestKind};
use vsva_pgtable::x86::X86Paging;
use vsva_pgtable::{PageTable, Perm};
use vsva_vtd::{Vtd, VtdConfig};
use vsva_vtd_driver::{DeviceOptions, Domain, VtdDriver};

const PAGES: u64 = 64;
const VA: u64 = 0x7f00_0000_0000;

fn benches(c: &mut Criterion) {
    let map: HashMap<u64, u64> = (0..PAGES).map(|i| (VA + i * 0x1000, i)).collect();
    let mut i = 0u64;
    c.bench_function("hashmap_lookup", |b| {
        b.iter(|| {
            i = (i + 1) % PAGES;
            black_box(map.get(&black_box(VA + i * 0x1000)))
        })
    });

    let mem: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(1 << 30).unwrap());
    let vtd = Arc::new(Vtd::new(
        VtdConfig::default(),
        mem.clone(),
        Arc::new(MsiLog::default()),
    ));
    let mmio: Arc<dyn Mmio> = vtd.clone();
    let driver = VtdDriver::probe(
        mmio,
        mem.clone(),
        Arc::new(FrameAllocator::new(mem.clone(), 1 << 20, 256 << 20)),
    )
    .unwrap();
    driver.enable().unwrap();
    let frames = Arc::new(FrameAllocator::new(mem, 256 << 20, 1 << 30));
    let pt = PageTable::new(X86Paging::default(), frames).unwrap();
    for p in 0..PAGES {
        pt.map(
            VA + p * 0x1000,
            0x2000_0000 + p * 0x1000,
            PageSize::Size4K,
            Perm::USER_RW,
        )
        .unwrap();
    }
    let rid = Rid::from_bdf(0, 3, 0).unwrap();
    driver.attach_device(rid, DeviceOptions::PASID).unwrap();
    let pasid = Pasid::new(1).unwrap();
    driver
        .attach_pasid(
            rid,
            pasid,
            &Domain::FirstStage {
                did: 1,
                root: pt.root(),
                levels: 4,
                supervisor: false,
                write_protect: true,
            },
        )
        .unwrap();
    let req = |addr| Request {
        rid,
        pasid: Some(pasid),
        addr,
        access: Access::READ,
        kind: RequestKind::Untranslated,
    };
    for p in 0..PAGES {
        vtd.translate(&req(VA + p * 0x1000)).unwrap();
    }
    c.bench_function("iotlb_hit", |b| {
        b.iter(|| {
            i = (i + 1) % PAGES;
            black_box(
                vtd.translate(&req(black_box(VA + i * 0x1000)))
                    .unwrap()
                    .addr,
            )
        })
    });
}

criterion_group!(translate, benches);
criterion_main!(translate);
