//! Host SVA scenarios: a process bound to the demo device (its PASID's first stage is the
//! process's page table) while the process changes its memory, forks, unbinds or exits —
//! on any host kind: an x86-64 host behind VT-d, an Arm64 host behind an SMMUv3.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use vsva_demo::Endpoint;
use vsva_demo::{Context, DemoDriver};
use vsva_host::{Host, IommuKind, VtdKind};
use vsva_mem::{FrameAllocator, Rid, Va};
use vsva_mm::{Advice, MapFlags, Process, Prot};

use super::dma::Dma;
use super::watch::{Accesses, WatchedMemory};
use super::{Content, Frames, PAGES, Release, Rules, Scenario, buffer_leaves};

/// Host RAM (sparse: only what is touched costs).
pub const HOST_RAM: u64 = 2 << 30;
const LEN: u64 = PAGES * 4096;

/// A host of kind `K` (its unit's default configuration) with `ram` bytes of watched
/// memory, and no device yet.
pub fn watched_host<K: IommuKind>(ram: u64) -> Result<(Arc<WatchedMemory>, Arc<Host<K>>)>
where
    K::Config: Default,
{
    let mem = Arc::new(WatchedMemory::new(ram)?);
    let p = Host::<K>::with_memory(mem.clone(), ram, K::Config::default())?;
    Ok((mem, Arc::new(p)))
}

/// A host of kind `K` with watched memory and one demo device (not yet probed).
pub struct HostRig<K: IommuKind = VtdKind> {
    pub mem: Arc<WatchedMemory>,
    pub p: Arc<Host<K>>,
    pub dev: Arc<dyn Endpoint>,
}

impl<K: IommuKind> HostRig<K> {
    /// A host of `ram` bytes with the demo device plugged in at 00:03.0.
    pub fn new(ram: u64) -> Result<HostRig<K>>
    where
        K::Config: Default,
    {
        let (mem, p) = watched_host::<K>(ram)?;
        let dev: Arc<dyn Endpoint> = p.add_device(Rid::from_bdf(0, 3, 0)?, 32, 64);
        Ok(HostRig { mem, p, dev })
    }

    /// The host's interrupt service, for the DMA thread.
    pub fn service(&self) -> Arc<dyn Fn() -> usize + Send + Sync> {
        let p = self.p.clone();
        Arc::new(move || p.service())
    }

    /// Host memory and the allocator of process frames.
    pub fn memory(&self) -> (&WatchedMemory, &FrameAllocator) {
        (self.mem.as_ref(), self.p.mm.frames().as_ref())
    }
}

/// Which operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// munmap of the buffer: its frames are freed.
    Munmap,
    /// mprotect to read-only: device writes must not land.
    Mprotect,
    /// MADV_PAGEOUT: the data is on swap and the frames freed; a write to them would be lost.
    PageOut,
    /// MADV_DONTNEED: the frames are freed.
    DontNeed,
    /// fork: the parent's pages are write-protected and shared with the child; a device
    /// write of the parent must not land in them.
    Fork,
    /// SVA unbind: the PASID no longer reaches the process.
    Unbind,
    /// Process exit with DMA running: its frames and tables are freed.
    Exit,
}

/// A process bound to the device, with a buffer of [`PAGES`] pages.
struct Sva<K: IommuKind> {
    rig: HostRig<K>,
    drv: DemoDriver,
    kind: Kind,
    process: Arc<Process>,
    ctx: Option<Context>,
    buf: Va,
    child: Option<Arc<Process>>,
}

/// The `kind` scenario on a host of kind `K`.
pub fn build<K: IommuKind>(kind: Kind) -> Result<Box<dyn Scenario>>
where
    K::Config: Default,
{
    let rig = HostRig::<K>::new(HOST_RAM)?;
    let drv = DemoDriver::probe(rig.p.as_ref(), rig.dev.clone(), false)?;
    let process = rig.p.mm.spawn()?;
    let ctx = drv.open(rig.p.as_ref(), &process)?;
    let buf = process.mmap(None, LEN, Prot::RW, MapFlags::POPULATE)?;
    Ok(Box::new(Sva {
        rig,
        drv,
        kind,
        process,
        ctx: Some(ctx),
        buf,
        child: None,
    }))
}

impl<K: IommuKind> Sva<K> {
    fn page(&self, i: u64) -> Va {
        Va::new(self.buf.raw() + i * 4096)
    }
}

impl<K: IommuKind> Scenario for Sva<K> {
    fn device(&self) -> Arc<dyn Endpoint> {
        self.rig.dev.clone()
    }

    fn service(&self) -> Arc<dyn Fn() -> usize + Send + Sync> {
        self.rig.service()
    }

    fn memory(&self) -> (&WatchedMemory, &FrameAllocator) {
        self.rig.memory()
    }

    fn rules(&self) -> Rules {
        let (accesses, content, release) = match self.kind {
            Kind::Munmap | Kind::Exit => (Accesses::All, Content::Poison, Release::Free),
            Kind::PageOut | Kind::DontNeed => (Accesses::All, Content::Poison, Release::Quarantine),
            Kind::Mprotect => (Accesses::Writes, Content::Poison, Release::Keep),
            Kind::Fork => (Accesses::Writes, Content::Keep, Release::Keep),
            Kind::Unbind => (Accesses::All, Content::Poison, Release::Keep),
        };
        Rules {
            accesses,
            content,
            release,
        }
    }

    fn prepare(&mut self, dma: &Dma) -> Result<()> {
        let ctx = self.ctx.context("not bound")?;
        dma.target(ctx.pasid(), self.buf.raw(), PAGES);
        Ok(())
    }

    fn frames(&self) -> Result<Frames> {
        let mut f = Frames::default();
        for leaf in buffer_leaves(&self.process, self.buf, "the buffer")? {
            f.data.push(leaf.pa);
            let table = leaf.slot & !0xfff;
            if !f.tables.contains(&table) {
                f.tables.push(table);
            }
        }
        if self.kind == Kind::Exit {
            f.tables.extend(self.process.page_table_root());
        }
        Ok(f)
    }

    fn operate(&mut self) -> Result<()> {
        let p = &self.process;
        match self.kind {
            Kind::Munmap => p.munmap(self.buf, LEN)?,
            Kind::Mprotect => p.mprotect(self.buf, LEN, Prot::READ)?,
            Kind::PageOut => p.madvise(self.buf, LEN, Advice::PageOut)?,
            Kind::DontNeed => p.madvise(self.buf, LEN, Advice::DontNeed)?,
            Kind::Fork => self.child = Some(p.fork()?),
            Kind::Unbind => {
                let ctx = self.ctx.take().context("not bound")?;
                self.drv.close(self.rig.p.as_ref(), ctx)?;
            }
            Kind::Exit => p.exit()?,
        }
        Ok(())
    }

    fn restore(&mut self) -> Result<()> {
        let machine = self.rig.p.as_ref();
        match self.kind {
            Kind::Munmap => {
                self.buf = self.process.mmap(None, LEN, Prot::RW, MapFlags::POPULATE)?;
            }
            Kind::Mprotect => self.process.mprotect(self.buf, LEN, Prot::RW)?,
            Kind::PageOut | Kind::DontNeed => {
                // fault every page back in (the device may have done some already)
                for i in 0..PAGES {
                    self.process.write_bytes(self.page(i), &[0x5a])?;
                }
            }
            Kind::Fork => {
                if let Some(child) = self.child.take() {
                    child.exit()?;
                }
            }
            Kind::Unbind => self.ctx = Some(self.drv.open(machine, &self.process)?),
            Kind::Exit => {
                if let Some(ctx) = self.ctx.take() {
                    self.drv.close(machine, ctx)?;
                }
                self.process = self.rig.p.mm.spawn()?;
                self.ctx = Some(self.drv.open(machine, &self.process)?);
                self.buf = self.process.mmap(None, LEN, Prot::RW, MapFlags::POPULATE)?;
            }
        }
        Ok(())
    }
}
