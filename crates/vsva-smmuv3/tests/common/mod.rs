//! A test bench: an SMMU over 16 MiB of memory, programmed through its registers only.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use vsva_mem::{Pasid, PhysMem, PhysMemory, Rid};
use vsva_pcie::MsiLog;
use vsva_pcie::{AtsInvalidation, AtsInvalidationError, Downstream, ResponseCode};
use vsva_smmuv3::spec::cd::{Cd, Cd0, CdTtb};
use vsva_smmuv3::spec::cmd::{Command, SyncCs};
use vsva_smmuv3::spec::event::EventRecord;
use vsva_smmuv3::spec::registers::{Cr0, Cr2, IrqCtrl, offset};
use vsva_smmuv3::spec::ste::{Ste, Ste0, Ste1, Ste2, Ste3, config};
use vsva_smmuv3::{Smmuv3, Smmuv3Config, TranslationHooks};
use zerocopy::IntoBytes;

pub const MEM: u64 = 16 << 20;
pub const STRTAB: u64 = 0x10_0000;
pub const CMDQ: u64 = 0x20_0000;
pub const EVTQ: u64 = 0x30_0000;
pub const CDTAB: u64 = 0x40_0000;
pub const S1TTB: u64 = 0x50_0000;
pub const S2TTB: u64 = 0x60_0000;
pub const L2: u64 = 0x70_0000;
/// Beyond memory: reads and writes there abort.
pub const NOWHERE: u64 = 0x8000_0000;
pub const CMDQ_LOG2: u64 = 4;
pub const EVTQ_LOG2: u64 = 3;
pub const GERROR_MSI: (u64, u32) = (0xfee0_1000, 0x21);
pub const EVTQ_MSI: (u64, u32) = (0xfee0_2000, 0x22);

/// A PRG Response as a Function receives it.
pub type Response = (Rid, Option<Pasid>, ResponseCode, u16);

/// What the Functions behind the SMMU received.
#[derive(Debug, Default)]
pub struct Fabric {
    pub invalidations: Mutex<Vec<AtsInvalidation>>,
    pub responses: Mutex<Vec<Response>>,
    pub time_out: Mutex<bool>,
}

impl Downstream for Fabric {
    fn ats_invalidate(&self, inv: &AtsInvalidation) -> Result<(), AtsInvalidationError> {
        self.invalidations.lock().unwrap().push(*inv);
        if *self.time_out.lock().unwrap() {
            Err(AtsInvalidationError::Timeout)
        } else {
            Ok(())
        }
    }
    fn page_group_response(&self, rid: Rid, pasid: Option<Pasid>, code: ResponseCode, prgi: u16) {
        self.responses
            .lock()
            .unwrap()
            .push((rid, pasid, code, prgi));
    }
}

/// What the translation layer heard.
#[derive(Debug, Default)]
pub struct Heard {
    pub cmds: Mutex<Vec<Command>>,
    pub syncs: Mutex<u32>,
}

impl TranslationHooks for Heard {
    fn tlb_invalidate(&self, cmd: &Command) {
        self.cmds.lock().unwrap().push(*cmd);
    }
    fn resume(&self, sid: u32, stag: u16, action: vsva_smmuv3::spec::cmd::ResumeAction) {
        self.cmds
            .lock()
            .unwrap()
            .push(Command::Resume { sid, stag, action });
    }
    fn stall_term(&self, sid: u32) {
        self.cmds.lock().unwrap().push(Command::StallTerm { sid });
    }
    fn sync(&self) {
        *self.syncs.lock().unwrap() += 1;
    }
}

pub struct Bench {
    pub smmu: Arc<Smmuv3>,
    pub mem: Arc<PhysMemory>,
    pub msi: Arc<MsiLog>,
    pub fabric: Arc<Fabric>,
    pub heard: Arc<Heard>,
    /// The command queue's next PROD.
    pub prod: u32,
}

impl Bench {
    /// An SMMU with `cfg`, not yet programmed.
    pub fn raw(cfg: Smmuv3Config) -> Bench {
        let mem = Arc::new(PhysMemory::new(MEM).unwrap());
        Bench::raw_over(cfg, mem.clone(), mem)
    }

    /// An SMMU with `cfg` that sees memory through `view` (tests write `mem` directly).
    pub fn raw_over(cfg: Smmuv3Config, mem: Arc<PhysMemory>, view: Arc<dyn PhysMem>) -> Bench {
        let msi = Arc::new(MsiLog::default());
        let fabric = Arc::new(Fabric::default());
        let heard = Arc::new(Heard::default());
        let smmu = Arc::new(
            Smmuv3::new(cfg, view, msi.clone())
                .with_devices(fabric.clone())
                .with_hooks(heard.clone()),
        );
        Bench {
            smmu,
            mem,
            msi,
            fabric,
            heard,
            prod: 0,
        }
    }

    /// An SMMU with `cfg`, set up as Linux's arm_smmu_device_reset does: a linear stream
    /// table of 256 STEs, a 16-entry command queue, an 8-entry event queue, GERROR and event
    /// MSIs, RECINVSID, and every enable on.
    pub fn with(cfg: Smmuv3Config) -> Bench {
        let b = Bench::raw(cfg);
        b.w64(offset::STRTAB_BASE, STRTAB);
        b.w32(offset::STRTAB_BASE_CFG, 8);
        b.setup_queues_and_enable();
        b
    }

    pub fn new() -> Bench {
        Bench::with(Smmuv3Config::default())
    }

    /// [`Bench::with`] the default configuration, with `devices` behind the SMMU and a PRI
    /// queue of 2^4 entries at `priq`.
    pub fn with_devices(devices: Arc<dyn Downstream>, priq: u64) -> Bench {
        let mem = Arc::new(PhysMemory::new(MEM).unwrap());
        let msi = Arc::new(MsiLog::default());
        let smmu = Arc::new(
            Smmuv3::new(Smmuv3Config::default(), mem.clone(), msi.clone()).with_devices(devices),
        );
        let b = Bench {
            smmu,
            mem,
            msi,
            fabric: Arc::new(Fabric::default()),
            heard: Arc::new(Heard::default()),
            prod: 0,
        };
        b.w64(offset::STRTAB_BASE, STRTAB);
        b.w32(offset::STRTAB_BASE_CFG, 8);
        b.w64(offset::PRIQ_BASE, priq | 4);
        b.setup_queues_and_enable();
        b.w32(
            offset::CR0,
            (Cr0::SMMUEN | Cr0::CMDQEN | Cr0::EVTQEN | Cr0::PRIQEN).bits(),
        );
        b
    }

    /// [`Bench::with`] the default configuration, the SMMU seeing memory through `view`.
    pub fn over(mem: Arc<PhysMemory>, view: Arc<dyn PhysMem>) -> Bench {
        let b = Bench::raw_over(Smmuv3Config::default(), mem, view);
        b.w64(offset::STRTAB_BASE, STRTAB);
        b.w32(offset::STRTAB_BASE_CFG, 8);
        b.setup_queues_and_enable();
        b
    }

    /// Two-level stream table: 2^log2size StreamIDs, `split` bits per level-2 table.
    pub fn two_level(log2size: u32, split: u32) -> Bench {
        let b = Bench::raw(Smmuv3Config::default());
        b.w64(offset::STRTAB_BASE, STRTAB);
        b.w32(offset::STRTAB_BASE_CFG, 1 << 16 | split << 6 | log2size);
        b.setup_queues_and_enable();
        b
    }

    fn setup_queues_and_enable(&self) {
        self.w64(offset::CMDQ_BASE, CMDQ | CMDQ_LOG2);
        self.w64(offset::EVENTQ_BASE, EVTQ | EVTQ_LOG2);
        self.w64(offset::GERROR_IRQ_CFG0, GERROR_MSI.0);
        self.w32(offset::GERROR_IRQ_CFG1, GERROR_MSI.1);
        self.w64(offset::EVENTQ_IRQ_CFG0, EVTQ_MSI.0);
        self.w32(offset::EVENTQ_IRQ_CFG1, EVTQ_MSI.1);
        self.w32(
            offset::IRQ_CTRL,
            (IrqCtrl::GERROR_IRQEN | IrqCtrl::EVTQ_IRQEN).bits(),
        );
        self.w32(offset::CR2, Cr2::RECINVSID.bits());
        self.w32(
            offset::CR0,
            (Cr0::SMMUEN | Cr0::CMDQEN | Cr0::EVTQEN).bits(),
        );
    }

    pub fn r32(&self, off: u64) -> u32 {
        self.smmu.mmio_read(off, 4) as u32
    }
    pub fn r64(&self, off: u64) -> u64 {
        self.smmu.mmio_read(off, 8)
    }
    pub fn w32(&self, off: u64, v: u32) {
        self.smmu.mmio_write(off, 4, v as u64)
    }
    pub fn w64(&self, off: u64, v: u64) {
        self.smmu.mmio_write(off, 8, v)
    }

    pub fn write_ste(&self, sid: u32, ste: &Ste) {
        self.mem
            .write(STRTAB + sid as u64 * 64, ste.as_bytes())
            .unwrap();
    }
    pub fn write_ste_at(&self, addr: u64, ste: &Ste) {
        self.mem.write(addr, ste.as_bytes()).unwrap();
    }
    pub fn write_cd_at(&self, addr: u64, cd: &Cd) {
        self.mem.write(addr, cd.as_bytes()).unwrap();
    }
    pub fn write_u64(&self, addr: u64, v: u64) {
        self.mem.write(addr, &v.to_le_bytes()).unwrap();
    }

    /// Writes raw commands at PROD and publishes them.
    pub fn submit_raw(&mut self, cmds: &[[u64; 2]]) {
        let n = 1u32 << CMDQ_LOG2;
        for c in cmds {
            let slot = (self.prod & (n - 1)) as u64;
            self.mem.write(CMDQ + slot * 16, c.as_bytes()).unwrap();
            self.prod = (self.prod + 1) & (2 * n - 1);
        }
        self.w32(offset::CMDQ_PROD, self.prod);
    }
    pub fn submit(&mut self, cmds: &[Command]) {
        let raw: Vec<[u64; 2]> = cmds.iter().map(|c| c.encode()).collect();
        self.submit_raw(&raw);
    }
    pub fn sync(&mut self) {
        self.submit(&[Command::Sync {
            cs: SyncCs::None,
            msh: 0,
            msiattr: 0,
            msidata: 0,
            msiaddr: 0,
        }]);
    }

    /// Takes the event records between CONS and PROD, and moves CONS up to PROD.
    pub fn events(&self) -> Vec<EventRecord> {
        let n = 1u32 << EVTQ_LOG2;
        let prod = self.r32(offset::EVENTQ_PROD);
        let mut cons = self.r32(offset::EVENTQ_CONS);
        let mut out = vec![];
        while (cons ^ prod) & (2 * n - 1) != 0 {
            let mut rec = EventRecord::default();
            let slot = (cons & (n - 1)) as u64;
            self.mem.read(EVTQ + slot * 32, rec.as_mut_bytes()).unwrap();
            out.push(rec);
            cons = (cons & !(2 * n - 1)) | ((cons + 1) & (2 * n - 1));
        }
        self.w32(offset::EVENTQ_CONS, cons);
        out
    }
}

/// A valid CD: 4 KiB granule, 48-bit input, IPS 48, TTB0 at [`S1TTB`], EPD1, ASID `asid`.
pub fn good_cd0(asid: u16) -> Cd0 {
    Cd0::new()
        .with_t0sz(16)
        .with_tg0(0)
        .with_ir0(1)
        .with_or0(1)
        .with_sh0(3)
        .with_epd1(true)
        .with_v(true)
        .with_ips(5)
        .with_aa64(true)
        .with_r(true)
        .with_a(true)
        .with_asid(asid)
}

pub fn cd_from(w0: Cd0, ttb0: u64) -> Cd {
    Cd::from_words(
        w0,
        CdTtb::new().with_ttb(ttb0 >> 4),
        CdTtb::new(),
        0x0044_ff04,
    )
}

pub fn good_cd(asid: u16) -> Cd {
    cd_from(good_cd0(asid), S1TTB)
}

/// A stage 1 STE with its CD table at `cdtab`, 2^cdmax CDs, `fmt`.
pub fn s1_ste(cdtab: u64, cdmax: u8, fmt: u8) -> Ste {
    Ste::from_words(
        Ste0::new()
            .with_v(true)
            .with_config(config::S1_TRANS)
            .with_s1fmt(fmt)
            .with_s1contextptr(cdtab >> 6)
            .with_s1cdmax(cdmax),
        Ste1::new().with_shcfg(1),
        Ste2::new(),
        Ste3::new(),
    )
}

/// A valid stage 2 word: 4 KiB granule, 40-bit IPA (T0SZ 24) from level 1, PS 48 bits.
pub fn good_ste2(vmid: u16) -> Ste2 {
    Ste2::new()
        .with_s2vmid(vmid)
        .with_s2t0sz(24)
        .with_s2sl0(1)
        .with_s2ir0(1)
        .with_s2or0(1)
        .with_s2sh0(3)
        .with_s2tg(0)
        .with_s2ps(5)
        .with_s2aa64(true)
        .with_s2r(true)
}

pub fn s2_ste(w2: Ste2) -> Ste {
    Ste::from_words(
        Ste0::new().with_v(true).with_config(config::S2_TRANS),
        Ste1::new(),
        w2,
        Ste3::new().with_s2ttb(S2TTB >> 4),
    )
}

/// The event record every config event has: type, SSV, SubstreamID, StreamID in dword 0.
pub fn config_record(kind: u8, sid: u32, ssid: Option<u32>) -> [u64; 4] {
    let ssv = ssid.map_or(0, |s| 1 << 11 | (s as u64) << 12);
    [kind as u64 | ssv | (sid as u64) << 32, 0, 0, 0]
}

pub mod xlate;
