//! Test helpers shared by the memory-manager tests: a memory manager of either architecture,
//! a hardware walk of a process's table, and a macro running a test body on both.

#![allow(dead_code)]

use std::sync::Arc;

use vsva_mem::{Access, FrameAllocator, PhysMem, PhysMemory};
use vsva_mm::{CpuArch, CpuPaging, MemoryManager};
use vsva_pgtable::arm::ArmS1;
use vsva_pgtable::walk::Direct;
use vsva_pgtable::x86::X86Paging;
use vsva_pgtable::{Fault, Translation, walk};

/// A memory manager of `size` bytes whose processes run on `arch`, configured as Linux runs
/// them (x86: 4-level, NXE/SMEP/SMAP, 1 GiB pages; Arm64: 48-bit VA, HA/HD).
pub fn manager(arch: CpuArch, size: u64) -> Arc<MemoryManager> {
    let mem: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(size).unwrap());
    let frames = Arc::new(FrameAllocator::new(mem, 0, size));
    manager_on(arch, frames)
}

/// A memory manager of `arch` over `frames`.
pub fn manager_on(arch: CpuArch, frames: Arc<FrameAllocator>) -> Arc<MemoryManager> {
    match arch {
        CpuArch::X86_64 => MemoryManager::new(frames, X86Paging::default()),
        CpuArch::Arm64 => MemoryManager::new_arm64(frames, ArmS1::default()),
    }
}

/// Walks the table at `root` of `mm`'s format as hardware (a CPU, an IOMMU's first stage)
/// would, A/D updates included.
pub fn hw_walk(
    mm: &MemoryManager,
    root: u64,
    va: u64,
    access: Access,
) -> Result<Translation, Fault> {
    match mm.paging() {
        CpuPaging::X86_64(f) => walk(&f, mm.memory(), root, va, access, &mut Direct, &mut ()),
        CpuPaging::Arm64(f) => walk(&f, mm.memory(), root, va, access, &mut Direct, &mut ()),
    }
}

/// Runs each named `fn name(arch: CpuArch)` as two tests, `x86_64::name` and `arm64::name`.
#[macro_export]
macro_rules! on_both_archs {
    ($($name:ident),* $(,)?) => {
        mod x86_64 {
            $( #[test] fn $name() { super::$name(vsva_mm::CpuArch::X86_64) } )*
        }
        mod arm64 {
            $( #[test] fn $name() { super::$name(vsva_mm::CpuArch::Arm64) } )*
        }
    };
}
