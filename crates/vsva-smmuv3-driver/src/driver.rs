//! The driver of one SMMU: probe and reset (Linux `arm_smmu_device_hw_probe`,
//! `arm_smmu_device_reset`), masters and their STEs and CDs, invalidation. It reaches the
//! SMMU only through its registers ([`vsva_pcie::Mmio`]) and the tables and queues it writes in memory.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use vsva_mem::{Errno, FrameAllocator, PhysMem};
use vsva_pcie::{Mmio, PageRequest};
use vsva_smmuv3::spec::registers::{
    Cr0, Cr1, Cr2, Gbpa, Idr0, Idr1, Idr3, Idr5, IrqCtrl, QueueBase, StrtabBase, offset,
    stall_model,
};

use crate::cmdq::{CommandQueue, SyncPoll};
use crate::faults::OutQueue;
use crate::master::RidSte;
use crate::tables::{Carver, CdTable, StreamTable};

/// Driver errors.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The SMMU lacks something the driver needs (Linux `arm_smmu_device_hw_probe` fails
    /// with ENXIO).
    #[error("the SMMU does not support {0}")]
    Unsupported(&'static str),
    /// No memory for a table or queue.
    #[error("out of memory for SMMU structures")]
    OutOfMemory,
    /// The SMMU refused a command: CMDQ_CONS.ERR `code` at a command of `opcode`.
    #[error("command {opcode:#x} failed with CERROR {code}")]
    Command {
        /// CMDQ_CONS.ERR (1 ILL, 2 ABT, 3 ATC_INV_SYNC).
        code: u8,
        /// The opcode of the command at CONS.
        opcode: u8,
    },
    /// A CMD_SYNC never completed.
    #[error("CMD_SYNC timed out")]
    SyncTimeout,
    /// An acknowledge register never matched (CR0ACK, IRQ_CTRLACK, GBPA.Update).
    #[error("register {0:#x} was not acknowledged")]
    AckTimeout(u64),
    /// A StreamID beyond the stream table (Linux `arm_smmu_sid_in_range`: ERANGE).
    #[error("StreamID {0:#x} is beyond the stream table")]
    SidOutOfRange(u32),
    /// Memory access to the driver's structures failed.
    #[error("memory: {0}")]
    Memory(#[from] vsva_mem::MemError),
}

impl From<vsva_mem::FrameError> for DriverError {
    fn from(_: vsva_mem::FrameError) -> Self {
        DriverError::OutOfMemory
    }
}

impl DriverError {
    /// The errno Linux returns for the same failure.
    pub fn errno(&self) -> Errno {
        match self {
            DriverError::Unsupported(_) => Errno::ENXIO,
            DriverError::OutOfMemory => Errno::ENOMEM,
            DriverError::SidOutOfRange(_) => Errno::ERANGE,
            DriverError::Command { .. }
            | DriverError::SyncTimeout
            | DriverError::AckTimeout(_)
            | DriverError::Memory(_) => Errno::EIO,
        }
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, DriverError>;

/// What the driver read of the SMMU's ID registers (Linux `arm_smmu_device_hw_probe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// StreamID bits (IDR1.SIDSIZE).
    pub sid_bits: u8,
    /// SubstreamID bits (IDR1.SSIDSIZE).
    pub ssid_bits: u8,
    /// Two-level stream tables (IDR0.ST_LEVEL).
    pub two_level_strtab: bool,
    /// Two-level CD tables (IDR0.CD2L).
    pub two_level_cdtab: bool,
    /// ATS (IDR0.ATS).
    pub ats: bool,
    /// PRI (IDR0.PRI).
    pub pri: bool,
    /// Stalls: IDR0.STALL_MODEL 0b00 (stall and terminate) or 0b10 (stall forced).
    pub stall: bool,
    /// Every fault stalls (IDR0.STALL_MODEL 0b10).
    pub stall_force: bool,
    /// Range invalidation (IDR3.RIL).
    pub ril: bool,
    /// 16-bit ASIDs.
    pub asid16: bool,
    /// Both stages (IDR0.S1P and IDR0.S2P): Linux `arm_smmu_device_hw_probe` sets
    /// `ARM_SMMU_FEAT_NESTING`, which nesting-parent domains need.
    pub nesting: bool,
    /// 16-bit VMIDs (IDR0.VMID16; else 8).
    pub vmid16: bool,
    /// Stage 2 forced write-back (IDR3.FWB: Linux `ARM_SMMU_FEAT_S2FWB`).
    pub s2fwb: bool,
    /// STE.SHCFG and friends override attributes (IDR1.ATTR_TYPES_OVR).
    pub attr_types_ovr: bool,
    /// HTTU access flag (IDR0.HTTU >= 1).
    pub ha: bool,
    /// HTTU dirty state (IDR0.HTTU = 2).
    pub hd: bool,
    /// MSIs (IDR0.MSI).
    pub msi: bool,
    /// Coherent table and queue accesses (IDR0.COHACC).
    pub coherent: bool,
    /// OAS encoding (IDR5.OAS).
    pub oas: u8,
    /// log2 of the largest command, event and PRI queues (IDR1).
    pub queue_log2: [u8; 3],
}

/// How the driver runs the SMMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeOptions {
    /// How CMD_SYNC completes; `None`: Linux's choice (MSI polling when IDR0.MSI and
    /// IDR0.COHACC, `arm_smmu_device_hw_probe` setting `ARM_SMMU_OPT_MSIPOLL`).
    pub sync: Option<SyncPoll>,
    /// The address the SMMU's GERROR, event and PRI queue MSIs are written to (the
    /// platform's MSI doorbell); data is 0, 1, 2 for them.
    pub msi_doorbell: u64,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            sync: None,
            msi_doorbell: MSI_DOORBELL,
        }
    }
}

/// The MSI doorbell the driver programs by default.
pub const MSI_DOORBELL: u64 = 0x0800_0000;
/// Linux's software MSI window (`MSI_IOVA_BASE`, `MSI_IOVA_LENGTH`): reserved in every
/// paging domain (`arm_smmu_get_resv_regions`, `IOMMU_RESV_SW_MSI`).
pub const MSI_IOVA: (u64, u64) = (0x0800_0000, 0x0800_0000 + 0x10_0000 - 1);

/// Largest queue the driver allocates, in bytes.
const QUEUE_BYTES_MAX: u64 = 1 << 20;

/// Per-master options (Linux `struct arm_smmu_master`'s fields the probe sets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MasterOptions {
    /// PASID width of the device (capped at SSIDSIZE).
    pub ssid_bits: u8,
    /// ATS: full ATS in the STE, ATC invalidations on changes.
    pub ats: bool,
    /// PRI: page requests through the PRI queue.
    pub pri: bool,
    /// The device tolerates stalls (Linux's `dma-can-stall` property): CD.S set, faults
    /// become stall events answered by CMD_RESUME.
    pub stall: bool,
}

/// What the RID (requests without PASID, CD 0) goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RidDomain {
    Blocked,
    Identity,
    S1,
    /// A stage-2 or nested STE.
    Ste(RidSte),
}

impl RidDomain {
    /// The VMID the STE carries, for stage-2 and nested STEs.
    pub(crate) fn vmid(&self) -> Option<u16> {
        match *self {
            RidDomain::Ste(ste) => Some(ste.vmid()),
            _ => None,
        }
    }
}

/// A stage-1 attachment of one SubstreamID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct S1Attach {
    pub did: u16,
    pub asid: u16,
    pub sva: bool,
}

pub(crate) struct Master {
    pub opts: MasterOptions,
    pub cd: CdTable,
    pub rid: RidDomain,
    /// SubstreamIDs (0 = the RID) with a valid CD.
    pub s1: HashMap<u32, S1Attach>,
}

/// ASIDs, one per domain ID (Linux allocates one per stage-1 domain, `arm_smmu_asid_xa`).
#[derive(Default)]
pub(crate) struct Asids {
    by_did: HashMap<u16, (u16, u32)>,
    used: HashSet<u16>,
}

impl Asids {
    pub(crate) fn get(&mut self, did: u16, bits: u8) -> Result<u16> {
        if let Some((asid, refs)) = self.by_did.get_mut(&did) {
            *refs += 1;
            return Ok(*asid);
        }
        // ASID 0 is left unused, as Linux's allocator starts at 1.
        let asid = (1..=((1u32 << bits) - 1) as u16)
            .find(|a| !self.used.contains(a))
            .ok_or(DriverError::Unsupported("a free ASID"))?;
        self.used.insert(asid);
        self.by_did.insert(did, (asid, 1));
        Ok(asid)
    }

    /// Drops one use; true when the ASID became free.
    pub(crate) fn put(&mut self, did: u16) -> bool {
        if let Some((asid, refs)) = self.by_did.get_mut(&did) {
            *refs -= 1;
            if *refs == 0 {
                self.used.remove(asid);
                self.by_did.remove(&did);
                return true;
            }
        }
        false
    }
}

pub(crate) struct State {
    pub strtab: StreamTable,
    pub carver: Carver,
    pub cmdq: CommandQueue,
    pub evtq: OutQueue,
    pub priq: Option<OutQueue>,
    pub masters: HashMap<u32, Master>,
    pub asids: Asids,
    /// VMIDs of stage-2 and nested STEs, with how many masters use each: the last one
    /// leaving invalidates the VMID's TLB entries (Linux `arm_smmu_tlb_inv_vmid` when the
    /// domain goes).
    pub vmids: HashMap<u16, u32>,
    /// Stalled transactions reported and not yet resumed: (StreamID, STAG).
    pub stalls: HashSet<(u32, u16)>,
    /// Decoded events not yet taken, by kind.
    pub faults: Vec<vsva_iommu::UnrecoverableFault>,
    pub requests: Vec<PageRequest>,
}

/// The driver of one SMMU.
pub struct Smmuv3Driver {
    pub(crate) mmio: Arc<dyn Mmio>,
    pub(crate) mem: Arc<dyn PhysMem>,
    pub(crate) frames: Arc<FrameAllocator>,
    pub(crate) features: Features,
    options: ProbeOptions,
    state: Mutex<Option<State>>,
    /// StreamIDs firmware describes as able to stall (`dma-can-stall`), set before their
    /// master is attached.
    can_stall: Mutex<HashSet<u32>>,
    pub(crate) stall_events: AtomicU64,
    pub(crate) resumes: AtomicU64,
}

/// What the driver did with stalled transactions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StallStats {
    /// Event records with STALL = 1 read from the event queue (each one a stalled
    /// transaction handed to the IOMMU core as a page request).
    pub stall_events: u64,
    /// CMD_RESUMEs issued (retry or abort) for them.
    pub resumes: u64,
}

impl std::fmt::Debug for Smmuv3Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smmuv3Driver")
            .field("features", &self.features)
            .finish()
    }
}

/// Polls of an acknowledge register.
const ACK_POLLS: u32 = 1000;

impl Smmuv3Driver {
    /// Reads IDR0/1/3/5 and refuses what the driver cannot drive (Linux
    /// `arm_smmu_device_hw_probe`).
    ///
    /// # Errors
    /// [`DriverError::Unsupported`]: no AArch64 tables, no stage 1, big-endian-only tables,
    /// embedded (preset) tables or queues, no 4 KiB granule, a command queue of 64 entries
    /// or fewer.
    pub fn probe(
        mmio: Arc<dyn Mmio>,
        mem: Arc<dyn PhysMem>,
        frames: Arc<FrameAllocator>,
        options: ProbeOptions,
    ) -> Result<Smmuv3Driver> {
        let idr0 = Idr0::from_bits(mmio.read(offset::IDR0, 4) as u32);
        let idr1 = Idr1::from_bits(mmio.read(offset::IDR1, 4) as u32);
        let idr3 = Idr3::from_bits(mmio.read(offset::IDR3, 4) as u32);
        let idr5 = Idr5::from_bits(mmio.read(offset::IDR5, 4) as u32);
        if idr0.ttf() & 0b10 == 0 {
            return Err(DriverError::Unsupported("AArch64 translation tables"));
        }
        if !idr0.s1p() {
            return Err(DriverError::Unsupported("stage 1 translation"));
        }
        if idr0.ttendian() == 0b11 {
            return Err(DriverError::Unsupported("little-endian translation tables"));
        }
        if idr1.tables_preset() || idr1.queues_preset() {
            return Err(DriverError::Unsupported(
                "programmable table and queue bases",
            ));
        }
        if !idr5.gran4k() {
            return Err(DriverError::Unsupported("the 4 KiB granule"));
        }
        // Linux: "command queue size <= %d entries not supported" (CMDQ_BATCH_ENTRIES).
        if idr1.cmdqs() <= 6 {
            return Err(DriverError::Unsupported(
                "a command queue of over 64 entries",
            ));
        }
        let features = Features {
            sid_bits: idr1.sidsize().min(32),
            ssid_bits: idr1.ssidsize().min(20),
            two_level_strtab: idr0.st_level() == 1,
            two_level_cdtab: idr0.cd2l(),
            ats: idr0.ats(),
            pri: idr0.pri(),
            stall: idr0.stall_model() != stall_model::TERMINATE,
            stall_force: idr0.stall_model() == stall_model::FORCE,
            ril: idr3.ril(),
            asid16: idr0.asid16(),
            // the probe refused a unit without stage 1
            nesting: idr0.s2p(),
            vmid16: idr0.vmid16(),
            s2fwb: idr3.fwb(),
            attr_types_ovr: idr1.attr_types_ovr(),
            ha: idr0.httu() >= 1,
            hd: idr0.httu() == 2,
            msi: idr0.msi(),
            coherent: idr0.cohacc(),
            oas: idr5.oas().min(6),
            queue_log2: [idr1.cmdqs(), idr1.eventqs(), idr1.priqs()],
        };
        Ok(Smmuv3Driver {
            mmio,
            mem,
            frames,
            features,
            options,
            state: Mutex::new(None),
            can_stall: Mutex::new(HashSet::new()),
            stall_events: AtomicU64::new(0),
            resumes: AtomicU64::new(0),
        })
    }

    /// Firmware describes the master `rid` as able to stall (the `dma-can-stall` device
    /// property, device tree or ACPI _DSD; Linux reads it into `master->stall_enabled` in
    /// `arm_smmu_probe_device`): when the IOMMU core attaches it,
    /// its STE keeps S1STALLD clear and its CDs get S = 1. Only where the SMMU can stall
    /// (IDR0.STALL_MODEL not 0b01); returns whether it was recorded.
    pub fn set_dma_can_stall(&self, rid: vsva_mem::Rid) -> bool {
        if !self.features.stall {
            return false;
        }
        self.can_stall
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(rid.raw() as u32);
        true
    }

    /// Whether firmware said the master `rid` can stall.
    pub fn dma_can_stall(&self, rid: vsva_mem::Rid) -> bool {
        self.can_stall
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&(rid.raw() as u32))
    }

    /// Stall events read and CMD_RESUMEs issued.
    pub fn stall_stats(&self) -> StallStats {
        StallStats {
            stall_events: self.stall_events.load(Ordering::Relaxed),
            resumes: self.resumes.load(Ordering::Relaxed),
        }
    }

    /// What the probe read.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// How CMD_SYNCs complete: as asked, or Linux's choice; never MSIs without IDR0.MSI.
    pub fn sync_poll(&self) -> SyncPoll {
        let msi = self.features.msi;
        match self.options.sync {
            Some(SyncPoll::Msi) if msi => SyncPoll::Msi,
            Some(_) => SyncPoll::Consumption,
            None if msi && self.features.coherent => SyncPoll::Msi,
            None => SyncPoll::Consumption,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Option<State>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn with_state<T>(&self, f: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut g = self.lock();
        let st = g
            .as_mut()
            .ok_or(DriverError::Unsupported("use before reset"))?;
        f(st)
    }

    /// Writes `v` to `reg` and waits for `ack` to read it back (Linux
    /// `arm_smmu_write_reg_sync`).
    fn write_sync(&self, reg: u64, ack: u64, v: u32) -> Result<()> {
        self.mmio.write(reg, 4, v as u64);
        for _ in 0..ACK_POLLS {
            if self.mmio.read(ack, 4) as u32 == v {
                return Ok(());
            }
            std::hint::spin_loop();
        }
        Err(DriverError::AckTimeout(ack))
    }

    /// GBPA through its Update protocol (Linux `arm_smmu_update_gbpa`).
    fn update_gbpa(&self, set: u32, clear: u32) -> Result<()> {
        let v = (self.mmio.read(offset::GBPA, 4) as u32 & !clear) | set;
        self.mmio.write(
            offset::GBPA,
            4,
            (v | Gbpa::new().with_update(true).into_bits()) as u64,
        );
        for _ in 0..ACK_POLLS {
            if !Gbpa::from_bits(self.mmio.read(offset::GBPA, 4) as u32).update() {
                return Ok(());
            }
        }
        Err(DriverError::AckTimeout(offset::GBPA))
    }

    fn queue_log2(&self, which: usize, entry: u64) -> u8 {
        let max = (QUEUE_BYTES_MAX / entry).trailing_zeros() as u8;
        self.features.queue_log2[which].min(max)
    }

    /// Builds the stream table and the queues and enables the SMMU (Linux
    /// `arm_smmu_device_reset`): disable, GBPA.ABORT, CR1 (write-back, Inner Shareable
    /// tables and queues), CR2 (RECINVSID, PTM), STRTAB_BASE/_CFG, the command queue and
    /// CMDQEN, CFGI_ALL + TLBI_NSNH_ALL + CMD_SYNC, the event and PRI queues and their
    /// enables, ATSCHK, the MSIs (`arm_smmu_setup_msis`) and IRQ_CTRL, then SMMUEN — each
    /// CR0 write acknowledged through CR0ACK.
    ///
    /// # Errors
    /// Out of memory, a register never acknowledged, or the initial invalidation failed.
    pub fn reset(&self) -> Result<()> {
        let f = self.features;
        // Disable first (arm_smmu_device_disable), aborting traffic meanwhile.
        self.update_gbpa(Gbpa::new().with_abort(true).into_bits(), 0)?;
        self.write_sync(offset::CR0, offset::CR0ACK, 0)?;
        let cr1 = Cr1::new()
            .with_table_sh(3)
            .with_table_oc(1)
            .with_table_ic(1)
            .with_queue_sh(3)
            .with_queue_oc(1)
            .with_queue_ic(1);
        self.mmio.write(offset::CR1, 4, cr1.into_bits() as u64);
        self.mmio
            .write(offset::CR2, 4, (Cr2::PTM | Cr2::RECINVSID).bits() as u64);

        let mut carver = Carver::new(self.frames.clone());
        let strtab = StreamTable::new(
            &mut carver,
            self.mem.as_ref(),
            f.sid_bits,
            f.two_level_strtab,
        )?;
        let base = StrtabBase::new()
            .with_ra(true)
            .with_addr(strtab.base() >> 6);
        self.mmio.write(offset::STRTAB_BASE, 8, base.into_bits());
        self.mmio
            .write(offset::STRTAB_BASE_CFG, 4, strtab.cfg() as u64);

        let cmdq_log2 = self.queue_log2(0, 16);
        let cmdq_base = carver.alloc(16 << cmdq_log2)?;
        self.mmio
            .write(offset::CMDQ_BASE, 8, queue_base(cmdq_base, cmdq_log2));
        self.mmio.write(offset::CMDQ_PROD, 4, 0);
        self.mmio.write(offset::CMDQ_CONS, 4, 0);
        let mut enables = Cr0::CMDQEN;
        self.write_sync(offset::CR0, offset::CR0ACK, enables.bits())?;
        let mut cmdq = CommandQueue::new(cmdq_base, cmdq_log2, self.sync_poll());
        {
            use vsva_smmuv3::spec::cmd::Command;
            cmdq.issue(
                self.mmio.as_ref(),
                self.mem.as_ref(),
                &[
                    Command::CfgiSteRange { sid: 0, range: 31 },
                    Command::TlbiNsnhAll,
                ],
            )?;
        }

        let evtq_log2 = self.queue_log2(1, 32);
        let evtq_base = carver.alloc(32 << evtq_log2)?;
        self.mmio
            .write(offset::EVENTQ_BASE, 8, queue_base(evtq_base, evtq_log2));
        self.mmio.write(offset::EVENTQ_PROD, 4, 0);
        self.mmio.write(offset::EVENTQ_CONS, 4, 0);
        enables |= Cr0::EVTQEN;
        self.write_sync(offset::CR0, offset::CR0ACK, enables.bits())?;
        let evtq = OutQueue::new(
            evtq_base,
            evtq_log2,
            32,
            offset::EVENTQ_PROD,
            offset::EVENTQ_CONS,
        );

        let priq = if f.pri {
            let log2 = self.queue_log2(2, 16);
            let base = carver.alloc(16 << log2)?;
            self.mmio
                .write(offset::PRIQ_BASE, 8, queue_base(base, log2));
            self.mmio.write(offset::PRIQ_PROD, 4, 0);
            self.mmio.write(offset::PRIQ_CONS, 4, 0);
            enables |= Cr0::PRIQEN;
            self.write_sync(offset::CR0, offset::CR0ACK, enables.bits())?;
            Some(OutQueue::new(
                base,
                log2,
                16,
                offset::PRIQ_PROD,
                offset::PRIQ_CONS,
            ))
        } else {
            None
        };
        if f.ats {
            enables |= Cr0::ATSCHK;
            self.write_sync(offset::CR0, offset::CR0ACK, enables.bits())?;
        }

        // arm_smmu_setup_irqs: interrupts off, MSIs configured, then on.
        self.write_sync(offset::IRQ_CTRL, offset::IRQ_CTRLACK, 0)?;
        let mut irqs = IrqCtrl::GERROR_IRQEN | IrqCtrl::EVTQ_IRQEN;
        if f.msi {
            let sources = [
                (offset::GERROR_IRQ_CFG0, 1),
                (offset::EVENTQ_IRQ_CFG0, 0),
                (offset::PRIQ_IRQ_CFG0, 2),
            ];
            for (cfg0, data) in sources {
                if cfg0 == offset::PRIQ_IRQ_CFG0 && !f.pri {
                    continue;
                }
                self.mmio.write(cfg0, 8, self.options.msi_doorbell);
                self.mmio.write(cfg0 + 8, 4, data);
                // ARM_SMMU_MEMATTR_DEVICE_nGnRE.
                self.mmio.write(cfg0 + 12, 4, 1);
            }
        }
        if f.pri {
            irqs |= IrqCtrl::PRIQ_IRQEN;
        }
        self.write_sync(offset::IRQ_CTRL, offset::IRQ_CTRLACK, irqs.bits())?;

        enables |= Cr0::SMMUEN;
        self.write_sync(offset::CR0, offset::CR0ACK, enables.bits())?;
        *self.lock() = Some(State {
            strtab,
            carver,
            cmdq,
            evtq,
            priq,
            masters: HashMap::new(),
            asids: Asids::default(),
            vmids: HashMap::new(),
            stalls: HashSet::new(),
            faults: Vec::new(),
            requests: Vec::new(),
        });
        Ok(())
    }

    /// Issues `cmds` and a CMD_SYNC, returning once it completed.
    ///
    /// # Errors
    /// As the command queue reports.
    pub(crate) fn issue(
        &self,
        st: &mut State,
        cmds: &[vsva_smmuv3::spec::cmd::Command],
    ) -> Result<()> {
        st.cmdq.issue(self.mmio.as_ref(), self.mem.as_ref(), cmds)
    }

    /// Issues `cmds` with no CMD_SYNC.
    ///
    /// # Errors
    /// As the command queue reports.
    pub(crate) fn issue_nosync(
        &self,
        st: &mut State,
        cmds: &[vsva_smmuv3::spec::cmd::Command],
    ) -> Result<()> {
        st.cmdq
            .issue_nosync(self.mmio.as_ref(), self.mem.as_ref(), cmds)
    }

    /// Issues raw commands and a CMD_SYNC per batch (a guest's, converted).
    ///
    /// # Errors
    /// As the command queue reports.
    pub(crate) fn issue_raw(&self, st: &mut State, cmds: &[[u64; 2]]) -> Result<()> {
        st.cmdq
            .issue_raw(self.mmio.as_ref(), self.mem.as_ref(), cmds)
    }

    /// Issues commands as given and a CMD_SYNC (for tests and tools: e.g. a command the
    /// SMMU refuses).
    ///
    /// # Errors
    /// As the command queue reports.
    pub fn issue_commands(&self, cmds: &[vsva_smmuv3::spec::cmd::Command]) -> Result<()> {
        self.with_state(|st| self.issue(st, cmds))
    }
}

fn queue_base(addr: u64, log2: u8) -> u64 {
    QueueBase::new()
        .with_rwa(true)
        .with_addr(addr >> 5)
        .with_log2size(log2)
        .into_bits()
}
