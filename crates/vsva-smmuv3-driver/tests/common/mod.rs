//! The driver tests' rig: an SMMUv3 model over memory, with recording endpoints behind it,
//! MSIs delivered as memory writes (as a coherent system delivers them), a translation
//! layer that records what the command queue hands it, and the driver probed and reset.

#![allow(dead_code)]

pub mod guest;

use std::sync::{Arc, Mutex};
use vsva_pcie::Mmio;

use vsva_iommu::{DeviceCaps, FaultGroup, IopfHandler};
use vsva_mem::{Access, FrameAllocator, Pasid, PhysMem, PhysMemory, Rid};
use vsva_pcie::MsiSink;
use vsva_smmuv3::spec::cmd::{Command, ResumeAction, op};
use vsva_smmuv3::spec::registers::{QueueBase, offset, queue};
use vsva_smmuv3::{Blocked, Smmuv3, Smmuv3Config, Transaction, TranslationHooks};
use vsva_smmuv3_driver::{ProbeOptions, Smmuv3Driver, SyncPoll};

pub const MIB: u64 = 1 << 20;

/// The master the tests attach: requester ID 08:02.0, StreamID 0x810.
pub const DEV: u16 = 0x0810;

/// Endpoints that remember the ATS invalidations and page group responses reaching them.
pub type Endpoints = vsva_pcie::RecordingDevices;

/// MSIs as memory writes of their 32-bit data (and a log of them).
pub struct MemMsi {
    pub mem: Arc<dyn PhysMem>,
    pub log: Mutex<Vec<(u64, u32)>>,
}

impl MsiSink for MemMsi {
    fn msi(&self, address: u64, data: u32) {
        self.log.lock().unwrap().push((address, data));
        if address + 4 <= self.mem.size() {
            let _ = self.mem.write(address, &data.to_le_bytes());
        }
    }
}

/// A translation layer that records the commands handed to it and, at each TLB
/// invalidation, the 64-bit word at `watch` (e.g. a CD's word 0).
#[derive(Default)]
pub struct Recorder {
    pub tlbi: Mutex<Vec<Command>>,
    pub resumes: Mutex<Vec<(u32, u16, ResumeAction)>>,
    pub watch: Mutex<Option<(Arc<dyn PhysMem>, u64)>>,
    pub watched: Mutex<Vec<u64>>,
}

impl TranslationHooks for Recorder {
    fn tlb_invalidate(&self, cmd: &Command) {
        self.tlbi.lock().unwrap().push(*cmd);
        if let Some((mem, at)) = self.watch.lock().unwrap().as_ref() {
            self.watched
                .lock()
                .unwrap()
                .push(mem.load_u64(*at).unwrap());
        }
    }
    fn resume(&self, sid: u32, stag: u16, action: ResumeAction) {
        self.resumes.lock().unwrap().push((sid, stag, action));
    }
}

pub struct Rig {
    pub mem: Arc<dyn PhysMem>,
    pub unit: Arc<Smmuv3>,
    pub endpoints: Arc<Endpoints>,
    pub msi: Arc<MemMsi>,
    pub hooks: Arc<Recorder>,
    pub driver: Arc<Smmuv3Driver>,
}

/// A unit configured by `cfg` over 512 MiB, its driver probed with `sync` and reset.
pub fn rig_with(cfg: Smmuv3Config, sync: Option<SyncPoll>) -> Rig {
    let mem: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(512 * MIB).unwrap());
    let endpoints = Arc::new(Endpoints::default());
    let msi = Arc::new(MemMsi {
        mem: mem.clone(),
        log: Mutex::new(Vec::new()),
    });
    let hooks = Arc::new(Recorder::default());
    let unit = Arc::new(
        Smmuv3::new(cfg, mem.clone(), msi.clone())
            .with_devices(endpoints.clone())
            .with_hooks(hooks.clone()),
    );
    let mmio: Arc<dyn Mmio> = unit.clone();
    let frames = Arc::new(FrameAllocator::new(mem.clone(), MIB, 256 * MIB));
    let driver = Smmuv3Driver::probe(
        mmio,
        mem.clone(),
        frames,
        ProbeOptions {
            sync,
            ..ProbeOptions::default()
        },
    )
    .unwrap();
    driver.reset().unwrap();
    Rig {
        mem,
        unit,
        endpoints,
        msi,
        hooks,
        driver: Arc::new(driver),
    }
}

/// The default unit (SMMUv3.2, 16-bit StreamIDs, 20-bit SubstreamIDs, RIL, ATS, PRI).
pub fn rig() -> Rig {
    rig_with(Smmuv3Config::default(), None)
}

impl Rig {
    /// CMDQ_PROD now: a mark for [`commands_since`](Self::commands_since).
    pub fn mark(&self) -> u32 {
        self.unit.mmio_read(offset::CMDQ_PROD, 4) as u32 & queue::WR_MASK
    }

    /// The commands written to the queue from `mark` to PROD, decoded. A CMD_SYNC whose
    /// completion MSI zeroed its first word reads back as a CMD_SYNC with CS = none.
    pub fn commands_since(&self, mark: u32) -> Vec<Command> {
        let base = QueueBase::from_bits(self.unit.mmio_read(offset::CMDQ_BASE, 8));
        let log2 = base.log2size() as u32;
        let addr = base.addr() << 5;
        let prod = self.mark();
        let caps = self.unit.config().command_caps();
        let m = (2u32 << log2) - 1;
        let mut out = Vec::new();
        let mut p = mark;
        while p != prod {
            let at = addr + ((p & ((1 << log2) - 1)) as u64) * 16;
            let mut raw = [
                self.mem.load_u64(at).unwrap(),
                self.mem.load_u64(at + 8).unwrap(),
            ];
            if raw[0] as u32 == 0 {
                raw = [(raw[0] & !0xffff_ffff) | op::SYNC as u64, raw[1] & !3];
            }
            out.push(Command::decode(raw, &caps).expect("the driver wrote a legal command"));
            p = (p + 1) & m;
        }
        out
    }

    /// The commands since `mark` without the CMD_SYNCs.
    pub fn work_since(&self, mark: u32) -> Vec<Command> {
        self.commands_since(mark)
            .into_iter()
            .filter(|c| !matches!(c, Command::Sync { .. }))
            .collect()
    }
}

/// Requester ID `bus:dev.fn`.
pub fn rid(raw: u16) -> Rid {
    Rid::from_raw(raw)
}

pub fn pasid(p: u32) -> Pasid {
    Pasid::new(p).unwrap()
}

/// A device with `pasid_bits` of PASID, and ATS and PRI both if `ats`.
pub fn caps(pasid_bits: u8, ats: bool) -> DeviceCaps {
    DeviceCaps {
        pasid_bits,
        ats,
        pri: ats,
    }
}

/// A transaction of [`DEV`] through the unit: the output address, or how it was blocked.
pub fn dma(
    r: &Rig,
    ssid: Option<u32>,
    addr: u64,
    access: Access,
    stallable: bool,
) -> Result<u64, Blocked> {
    r.unit
        .translate(&Transaction {
            sid: DEV as u32,
            ssid,
            addr,
            access,
            stallable,
        })
        .map(|t| t.addr)
}

/// A fault handler that keeps the groups it is given.
pub struct Keep(pub Mutex<Vec<FaultGroup>>);

impl IopfHandler for Keep {
    fn handle(&self, group: FaultGroup) {
        self.0.lock().unwrap().push(group);
    }
}
