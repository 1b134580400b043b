//! The virtual VT-d's guest-facing surface (VT-d 4.1 §10.4 registers, §6.5.2 invalidation
//! queue) for the VMM harness.

use vsva_host::VtdKind;
use vsva_mem::{Pasid, PhysMem};
use vsva_vtd::spec::registers::{Iqa, offset};
use vsva_vtd::{Vtd, VtdConfig};
use vsva_vtd_driver::Domain;

use super::Surface;
use crate::vm::{BOOT_DEVICE, Vm};

impl Surface for VtdKind {
    fn host_config() -> VtdConfig {
        VtdConfig::default()
    }

    const REGISTERS: &'static [u64] = &[
        offset::GCMD,
        offset::RTADDR,
        offset::FSTS,
        offset::FECTL,
        offset::IQT,
        offset::IQA,
        offset::ICS,
        offset::IECTL,
        offset::PQH,
        offset::PQT,
        offset::PQA,
        offset::PRS,
        offset::PECTL,
        offset::FRCD0 + 8,
        offset::FRCD0 + 12,
        offset::CCMD,
        offset::IOTLB,
        offset::IQH,
    ];
    const POINTERS: &'static [u64] = &[offset::RTADDR, offset::IQA, offset::PQA];
    const WINDOW: u64 = offset::WINDOW;

    fn mmio_read(unit: &Vtd, off: u64, size: u8) -> u64 {
        unit.mmio_read(off, size)
    }

    fn mmio_write(unit: &Vtd, off: u64, size: u8, value: u64) {
        unit.mmio_write(off, size, value);
    }

    fn bases(unit: &Vtd) -> [u64; 3] {
        [
            unit.mmio_read(offset::RTADDR, 8) & !0xfff,
            Iqa::from_bits(unit.mmio_read(offset::IQA, 8)).iqa() << 12,
            unit.mmio_read(offset::PQA, 8) & !0xfff,
        ]
    }

    /// A descriptor at the queue's tail, then the tail moved past it: what the guest's
    /// driver does for every invalidation the VMM relays.
    fn queue(unit: &Vtd, ram: &dyn PhysMem, words: [u64; 4]) {
        let iqa = Iqa::from_bits(unit.mmio_read(offset::IQA, 8));
        let tail = unit.mmio_read(offset::IQT, 8);
        let base = iqa.iqa() << 12;
        for (i, w) in words.iter().enumerate() {
            let _ = ram.store_u64(base.wrapping_add(tail + 8 * i as u64), *w);
        }
        let size = 4096u64 << iqa.qs().min(7);
        unit.mmio_write(offset::IQT, 8, (tail + 32) % size);
    }

    /// A PASID entry written and the PASID cache invalidated by the guest's VT-d driver: the
    /// VMM binds it on the host.
    fn bind(vm: &Vm<VtdKind>, pasid: Pasid, root: u64, bits: u8) {
        let domain = Domain::FirstStage {
            did: 0x300 + pasid.raw() as u16,
            root,
            levels: if bits & 1 == 0 { 4 } else { 5 },
            supervisor: bits & 2 != 0,
            write_protect: bits & 4 != 0,
        };
        let _ = vm.os().driver.attach_pasid(BOOT_DEVICE, pasid, &domain);
    }
}
