//! vSVA scenarios: a guest process bound to the guest's demo device through the guest's
//! vIOMMU (a nested HWPT on the host under a host PASID the VMM chose) while the guest clears
//! its vIOMMU's GCMD.TE, unbinds the PASID (its VT-d driver clears the PASID entry and
//! issues the PASID-cache invalidation the VMM turns into a host detach), or munmaps the
//! buffer (the guest's PASID-IOTLB and device-TLB invalidations the VMM turns into
//! `IOMMU_HWPT_INVALIDATE`: flow 2).

use std::sync::Arc;

use anyhow::{Context as _, Result};
use vsva_demo::{Context, DemoDriver};
use vsva_demo::{Endpoint, Machine};
use vsva_host::{Platform, VtdKind};
use vsva_mem::{FrameAllocator, Va};
use vsva_mm::{MapFlags, Process, Prot};
use vsva_vmm::{VmConfig, VtdVm as Vm};
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
    /// The guest clears GCMD.TE of its vIOMMU.
    TeClear,
    /// The guest unbinds its PASID (PASID entry cleared, PASID-cache invalidation).
    PasidInval,
    /// The guest process munmaps the buffer (guest invalidations relayed to the host).
    Munmap,
}

struct Guest {
    mem: Arc<WatchedMemory>,
    host: Arc<Platform>,
    vm: Arc<Vm>,
    dev: Arc<dyn Endpoint>,
    drv: DemoDriver,
    kind: Kind,
    process: Arc<Process>,
    ctx: Option<Context>,
    buf: Va,
}

pub fn build(kind: Kind) -> Result<Box<dyn Scenario>> {
    let (mem, host) = watched_host::<VtdKind>(HOST_RAM)?;
    let vm = Arc::new(Vm::boot(
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

impl Guest {
    /// Writes the vIOMMU's GCMD as a guest driver does (Linux `iommu_disable_translation`):
    /// GSTS's persistent bits, with `set` added and `clear` taken away.
    fn gcmd(&self, set: Gcmd, clear: Gcmd) {
        let unit = self.vm.unit();
        let status = Gcmd::from_bits_truncate(unit.mmio_read(offset::GSTS, 4) as u32);
        let cmd = (status - Gcmd::ONE_SHOT - clear) | set;
        unit.mmio_write(offset::GCMD, 4, cmd.bits().into());
    }
}

impl Scenario for Guest {
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
            Kind::TeClear => self.gcmd(Gcmd::empty(), Gcmd::TE),
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
            Kind::TeClear => {
                self.gcmd(Gcmd::TE, Gcmd::empty());
                anyhow::ensure!(
                    !self.vm.vmm().bindings().is_empty(),
                    "setting TE again did not bind the guest's PASID on the host"
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
