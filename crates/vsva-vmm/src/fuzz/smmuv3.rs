//! The virtual SMMUv3's guest-facing surface (Arm IHI 0070 §6 registers, §4 commands on the
//! command queue) for the VMM harness.

use vsva_host::Smmuv3Kind;
use vsva_mem::{Pasid, PhysMem};
use vsva_smmuv3::spec::cmd::{Command, SyncCs};
use vsva_smmuv3::spec::registers::{QueueBase, StrtabBase, offset};
use vsva_smmuv3::{Smmuv3, Smmuv3Config};

use super::Surface;
use crate::vm::{BOOT_DEVICE, Vm};

impl Surface for Smmuv3Kind {
    fn host_config() -> Smmuv3Config {
        Smmuv3Config::default()
    }

    const REGISTERS: &'static [u64] = &[
        offset::CR0,
        offset::CR1,
        offset::CR2,
        offset::GBPA,
        offset::IRQ_CTRL,
        offset::GERRORN,
        offset::STRTAB_BASE,
        offset::STRTAB_BASE_CFG,
        offset::CMDQ_BASE,
        offset::CMDQ_PROD,
        offset::CMDQ_CONS,
        offset::EVENTQ_BASE,
        offset::EVENTQ_PROD,
        offset::EVENTQ_CONS,
        offset::PRIQ_BASE,
        offset::PRIQ_PROD,
        offset::PRIQ_CONS,
    ];
    const POINTERS: &'static [u64] = &[
        offset::STRTAB_BASE,
        offset::CMDQ_BASE,
        offset::EVENTQ_BASE,
        offset::PRIQ_BASE,
    ];
    const WINDOW: u64 = offset::WINDOW;

    fn mmio_read(unit: &Smmuv3, off: u64, size: u8) -> u64 {
        unit.mmio_read(off, size)
    }

    fn mmio_write(unit: &Smmuv3, off: u64, size: u8, value: u64) {
        unit.mmio_write(off, size, value);
    }

    fn bases(unit: &Smmuv3) -> [u64; 3] {
        let q = |off| QueueBase::from_bits(unit.mmio_read(off, 8)).addr() << 5;
        [
            StrtabBase::from_bits(unit.mmio_read(offset::STRTAB_BASE, 8)).addr() << 6,
            q(offset::CMDQ_BASE),
            q(offset::EVENTQ_BASE),
        ]
    }

    /// Two commands at CMDQ_PROD (raw words: any opcode, any field), and PROD moved past
    /// them: what a guest kernel writing its own queue does.
    fn queue(unit: &Smmuv3, ram: &dyn PhysMem, words: [u64; 4]) {
        let base = QueueBase::from_bits(unit.mmio_read(offset::CMDQ_BASE, 8));
        let log2 = u32::from(base.log2size()).min(19);
        let start = base.addr() << 5;
        let mut prod = unit.mmio_read(offset::CMDQ_PROD, 4) as u32;
        let wrap = (2u32 << log2) - 1;
        for pair in words.chunks(2) {
            let at = start + u64::from(prod & ((1 << log2) - 1)) * 16;
            let _ = ram.store_u64(at, pair[0]);
            let _ = ram.store_u64(at + 8, pair[1]);
            prod = prod.wrapping_add(1) & wrap;
        }
        unit.mmio_write(offset::CMDQ_PROD, 4, u64::from(prod));
    }

    /// The commands a guest driver sends after changing the boot device's CD of `pasid`:
    /// CMD_CFGI_CD (leaf or not, by `bits`), then CMD_SYNC; `root` goes first into the CD's
    /// first table pointer word where the CD table would be if `root` named it.
    fn bind(vm: &Vm<Smmuv3Kind>, pasid: Pasid, root: u64, bits: u8) {
        let unit = vm.unit();
        let _ = vm.vmm().ram().store_u64(root & !0x3f, root | 1);
        let cfgi = Command::CfgiCd {
            sid: u32::from(BOOT_DEVICE.raw()),
            ssid: pasid.raw(),
            leaf: bits & 1 != 0,
        }
        .encode();
        let sync = Command::Sync {
            cs: SyncCs::None,
            msh: 0,
            msiattr: 0,
            msidata: 0,
            msiaddr: 0,
        }
        .encode();
        Self::queue(
            unit,
            vm.vmm().ram().as_ref(),
            [cfgi[0], cfgi[1], sync[0], sync[1]],
        );
    }
}
