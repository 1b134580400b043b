//! vSVA scenarios: a guest process bound to the guest's demo device through the guest's
//! vIOMMU while the guest turns its vIOMMU's translation off, unbinds the PASID, or munmaps
//! the buffer (the guest's TLB and device-TLB invalidations the VMM turns into
//! `IOMMU_HWPT_INVALIDATE`: flow 2) — through a virtual VT-d (a nested HWPT under a host
//! PASID the VMM chose; translation off is GCMD.TE clear; unbind clears the PASID entry and
//! issues the PASID-cache invalidation the VMM turns into a host detach) or a virtual SMMUv3
//! (one nested HWPT from the guest's STE; translation off is CR0.SMMUEN clear, which the VMM
//! turns into GBPA's bypass or abort on the host; unbind clears the CD and issues CFGI_CD and
//! TLBI_NH_ASID, relayed through the vIOMMU).

use std::sync::Arc;

use anyhow::{Context as _, Result};
use vsva_demo::{Context, DemoDriver};
use vsva_demo::{Endpoint, Machine};
use vsva_host::{Host, Smmuv3Kind, VtdKind};
use vsva_mem::{FrameAllocator, Va};
use vsva_mm::{MapFlags, Process, Prot};
use vsva_smmuv3::Smmuv3;
use vsva_smmuv3::spec::registers::{Cr0, offset as smmu_offset};
use vsva_vmm::{GuestKind, Vm, VmConfig};
use vsva_vtd::Vtd;
use vsva_vtd::spec::registers::{Gcmd, offset};

use super::dma::Dma;
use super::host::watched_host;
use super::watch::WatchedMemory;
use super::{Frames, PAGES, Rules, Scenario, buffer_leaves};

const GIB: u64 = 1 << 30;
/// Host RAM: the guest's RAM and the host's own.
const HOST_RAM: u64 = 4 * GIB;
const LEN: u64 = PAGES * 4096;

/// Which operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The guest turns its vIOMMU's translation off (VT-d GCMD.TE, SMMUv3 CR0.SMMUEN).
    TranslationOff,
    /// The guest unbinds its PASID (PASID entry cleared, PASID-cache invalidation).
    PasidInval,
    /// The guest process munmaps the buffer (guest invalidations relayed to the host).
    Munmap,
}

/// How a guest driver turns its vIOMMU's translation off and on again.
pub trait Translation: GuestKind {
    /// Turns translation on or off, as the guest's driver does, and returns once the unit
    /// says it took the change.
    fn set_translation(unit: &Self::Unit, on: bool);
}

impl Translation for VtdKind {
    /// GCMD.TE, written as Linux `iommu_disable_translation` does: GSTS's persistent bits,
    /// with TE added or taken away.
    fn set_translation(unit: &Vtd, on: bool) {
        let status = Gcmd::from_bits_truncate(unit.mmio_read(offset::GSTS, 4) as u32);
        let cmd = status - Gcmd::ONE_SHOT;
        let cmd = if on { cmd | Gcmd::TE } else { cmd - Gcmd::TE };
        unit.mmio_write(offset::GCMD, 4, cmd.bits().into());
    }
}

impl Translation for Smmuv3Kind {
    /// CR0.SMMUEN, the other enables kept (IHI 0070 §6.3.9: the write takes effect when CR0ACK
    /// shows it, which this model does within the write).
    fn set_translation(unit: &Smmuv3, on: bool) {
        let cr0 = Cr0::from_bits_truncate(unit.mmio_read(smmu_offset::CR0ACK, 4) as u32);
        let cr0 = if on {
            cr0 | Cr0::SMMUEN
        } else {
            cr0 - Cr0::SMMUEN
        };
        unit.mmio_write(smmu_offset::CR0, 4, cr0.bits().into());
    }
}

struct Guest<K: Translation> {
    mem: Arc<WatchedMemory>,
    host: Arc<Host<K>>,
    vm: Arc<Vm<K>>,
    dev: Arc<dyn Endpoint>,
    drv: DemoDriver,
    kind: Kind,
    process: Arc<Process>,
    ctx: Option<Context>,
    buf: Va,
}

pub fn build<K: Translation>(kind: Kind) -> Result<Box<dyn Scenario>>
where
    K::Config: Default,
{
    let (mem, host) = watched_host::<K>(HOST_RAM)?;
    let vm = Arc::new(Vm::<K>::boot(
        host.clone(),
        VmConfig {
            ram: GIB,
            host_bus: 1,
        },
    )?);
    let dev = vm
        .add_device(vsva_vmm::BOOT_DEVICE, 32, 256)
        .map_err(anyhow::Error::msg)?;
    let drv = DemoDriver::probe(vm.as_ref(), dev.clone(), false)?;
    let process = vm.mm().spawn()?;
    let ctx = drv.open(vm.as_ref(), &process)?;
    let buf = process.mmap(None, LEN, Prot::RW, MapFlags::POPULATE)?;
    Ok(Box::new(Guest {
        mem,
        host,
        vm,
        dev,
        drv,
        kind,
        process,
        ctx: Some(ctx),
        buf,
    }))
}

impl<K: Translation> Scenario for Guest<K> {
    fn device(&self) -> Arc<dyn Endpoint> {
        self.dev.clone()
    }

    fn service(&self) -> Arc<dyn Fn() -> usize + Send + Sync> {
        let vm = self.vm.clone();
        Arc::new(move || vm.service())
    }

    fn memory(&self) -> (&WatchedMemory, &FrameAllocator) {
        (self.mem.as_ref(), self.host.mm.frames().as_ref())
    }

    fn rules(&self) -> Rules {
        // The guest page stays the guest process's; nothing but the device could reach it.
        Rules::KEPT_FROM_THE_DEVICE
    }

    fn prepare(&mut self, dma: &Dma) -> Result<()> {
        let ctx = self.ctx.context("not bound")?;
        dma.target(ctx.pasid(), self.buf.raw(), PAGES);
        Ok(())
    }

    fn frames(&self) -> Result<Frames> {
        let ram = self.vm.vmm().ram();
        let data = buffer_leaves(&self.process, self.buf, "the guest's buffer")?
            .into_iter()
            .map(|l| {
                ram.hpa(l.pa)
                    .with_context(|| format!("GPA {:#x} is not guest RAM", l.pa))
            })
            .collect::<Result<_>>()?;
        Ok(Frames {
            data,
            ..Frames::default()
        })
    }

    fn operate(&mut self) -> Result<()> {
        match self.kind {
            Kind::TranslationOff => K::set_translation(self.vm.unit(), false),
            Kind::PasidInval => {
                let ctx = self.ctx.take().context("not bound")?;
                self.drv.close(self.vm.as_ref(), ctx)?;
            }
            Kind::Munmap => self.process.munmap(self.buf, LEN)?,
        }
        Ok(())
    }

    fn restore(&mut self) -> Result<()> {
        match self.kind {
            Kind::TranslationOff => {
                let binds = self.vm.vmm().counters().nested_binds;
                K::set_translation(self.vm.unit(), true);
                anyhow::ensure!(
                    self.vm.vmm().counters().nested_binds > binds,
                    "turning translation on again did not bind the guest's table on the host"
                );
            }
            Kind::PasidInval => {
                self.ctx = Some(self.drv.open(self.vm.as_ref(), &self.process)?);
            }
            Kind::Munmap => {
                let at = self.process.mmap(
                    Some(self.buf),
                    LEN,
                    Prot::RW,
                    MapFlags::FIXED | MapFlags::POPULATE,
                )?;
                anyhow::ensure!(at == self.buf, "the buffer came back at {at:?}");
            }
        }
        Ok(())
    }
}
