//! Set-ups the platform tests share.

#![allow(dead_code)]

use std::sync::Arc;

use vsva_demo::DemoDevice;
use vsva_host::Platform;
use vsva_iommu::{DeviceCaps, PagingDomain};
use vsva_mem::{Access, FrameAllocator, PhysMem, PhysWindow, Rid};
use vsva_mm::{MapFlags, Prot};

pub const GIB: u64 = 1 << 30;
pub const MIB: u64 = 1 << 20;

/// A demo device plugged in at `rid` and put under the IOMMU core as a device without ATS
/// or PRI (what a driver that only does DMA through domains registers).
pub fn plain_device(p: &Platform, rid: Rid) -> Arc<DemoDevice> {
    let dev = p.add_device(rid, 32, 64);
    let caps = DeviceCaps {
        pasid_bits: 20,
        ats: false,
        pri: false,
    };
    p.iommu.add_device(rid, caps, 0).unwrap();
    dev
}

/// 1 GiB of guest RAM: a VMM process's 1 GiB page, mapped at GPA 0 by a stage-2 paging
/// domain; the guest's view of it, and a frame allocator over GPA [16 MiB, 64 MiB) for the
/// guest's page tables.
pub struct GuestRam {
    /// Host-physical address of GPA 0.
    pub hpa: u64,
    pub s2: Arc<PagingDomain>,
    pub mem: Arc<dyn PhysMem>,
    pub frames: Arc<FrameAllocator>,
}

pub fn guest_ram(p: &Platform) -> GuestRam {
    let vmm = p.mm.spawn().unwrap();
    let ram = vmm
        .mmap(None, GIB, Prot::RW, MapFlags::HUGE_1G | MapFlags::POPULATE)
        .unwrap();
    let ram_hpa = vmm.translate(ram, Access::READ).unwrap().output;
    let s2 = p.iommu.alloc_paging_domain().unwrap();
    s2.map(0, ram_hpa, GIB, vsva_pgtable::Perm::RW, true)
        .unwrap();
    let mem: Arc<dyn PhysMem> = Arc::new(PhysWindow::new(p.mem.clone(), ram_hpa, GIB).unwrap());
    let frames = Arc::new(FrameAllocator::new(mem.clone(), 16 * MIB, 64 * MIB));
    GuestRam {
        hpa: ram_hpa,
        s2,
        mem,
        frames,
    }
}
