//! A host device as the guest reaches it: its configuration space and BAR registers are
//! passed through to the host device, except the PASID register, which the VMM rewrites from
//! the guest's PASID to the host PASID that stands for it when the guest's vIOMMU virtualizes
//! PASIDs (a virtual VT-d: the guest's PASID space is its own). A guest PASID the guest has
//! not bound becomes [`BLOCKED_HOST_PASID`], which no host page table backs — its DMA faults
//! and reaches nothing. Behind a virtual SMMUv3 the guest's SubstreamIDs are the device's
//! own (the host walks the guest's CD table), so the register passes unchanged. Reading the
//! register back gives what the guest wrote.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use vsva_demo::regs;
use vsva_demo::{DeviceStats, Progress};
use vsva_demo::{Endpoint, Function};
use vsva_mem::{Pasid, Rid};
use vsva_pcie::Refused;

use crate::vmm::{BLOCKED_HOST_PASID, Vmm};

/// An assigned device inside the guest.
pub struct AssignedDevice {
    rid: Rid,
    host: Arc<dyn Endpoint>,
    vmm: Arc<Vmm>,
    pasid_reg: Arc<AtomicU64>,
}

impl AssignedDevice {
    pub(crate) fn new(
        rid: Rid,
        host: Arc<dyn Endpoint>,
        vmm: Arc<Vmm>,
        pasid_reg: Arc<AtomicU64>,
    ) -> Self {
        AssignedDevice {
            rid,
            host,
            vmm,
            pasid_reg,
        }
    }

    fn host_pasid(&self, guest: u32) -> u32 {
        self.vmm.host_pasid(guest).unwrap_or(BLOCKED_HOST_PASID)
    }
}

impl Function for AssignedDevice {
    fn config_read(&self, off: u32, size: u32) -> u32 {
        self.host.config_read(off, size)
    }

    fn config_write(&self, off: u32, size: u32, value: u32) {
        self.host.config_write(off, size, value);
    }

    fn mmio_read(&self, off: u64) -> u64 {
        if off == regs::PASID {
            return self.pasid_reg.load(Ordering::Relaxed);
        }
        self.host.mmio_read(off)
    }

    fn mmio_write(&self, off: u64, value: u64) {
        if off == regs::PASID {
            self.pasid_reg.store(value, Ordering::Relaxed);
            let value = if value & regs::PASID_VALID != 0 {
                u64::from(self.host_pasid((value & 0xf_ffff) as u32)) | regs::PASID_VALID
            } else {
                value
            };
            self.host.mmio_write(off, value);
            return;
        }
        self.host.mmio_write(off, value);
    }
}

impl Endpoint for AssignedDevice {
    fn rid(&self) -> Rid {
        self.rid
    }

    fn run(&self) -> Progress {
        self.host.run()
    }

    fn stats(&self) -> DeviceStats {
        self.host.stats()
    }

    fn dma_untranslated(
        &self,
        pasid: Option<Pasid>,
        addr: u64,
        write: bool,
    ) -> Result<u64, Refused> {
        let pasid = pasid.and_then(|p| Pasid::new(self.host_pasid(p.raw())).ok());
        self.host.dma_untranslated(pasid, addr, write)
    }
}
