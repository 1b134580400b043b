//! The driver's side of the command queue (IHI 0070 §3.5, §4; Linux
//! `arm_smmu_cmdq_issue_cmdlist`): commands written at PROD, a CMD_SYNC behind them, PROD
//! moved, and the sync's completion awaited — by polling the MSI the CMD_SYNC writes over its
//! own slot (Linux `arm_smmu_cmdq_poll_until_msi`, `ARM_SMMU_OPT_MSIPOLL`) or by polling
//! CONS past it (`__arm_smmu_cmdq_poll_until_consumed`, CS = SEV). A command the SMMU refused
//! (GERROR.CMDQ_ERR) is replaced by a CMD_SYNC and the error acknowledged, as Linux's
//! `arm_smmu_cmdq_skip_err` does, and reported to the caller.

use vsva_mem::PhysMem;
use vsva_smmuv3::spec::cmd::{CMD_BYTES, Command, SyncCs};
use vsva_smmuv3::spec::registers::{Gerror, cerror, offset, queue};

use crate::driver::{DriverError, Result};
use vsva_pcie::Mmio;

/// How a CMD_SYNC's completion is observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPoll {
    /// CS = IRQ with MSIAddr = the CMD_SYNC's own slot and MSIData = 0: completion is the
    /// slot's first word turning to zero (Linux `arm_smmu_cmdq_poll_until_msi`). Needs the
    /// platform to deliver the SMMU's MSIs as memory writes, as a coherent system does.
    Msi,
    /// CS = SEV: completion is CONS moving past the CMD_SYNC (Linux
    /// `__arm_smmu_cmdq_poll_until_consumed`).
    Consumption,
}

/// ISH, the shareability Linux gives CMD_SYNC MSI writes (`ARM_SMMU_SH_ISH`).
const SH_ISH: u8 = 3;
/// Outer and inner write-back (`ARM_SMMU_MEMATTR_OIWB`).
const MEMATTR_OIWB: u8 = 0xf;
/// Polls of a sync before giving up (the model completes a sync within the PROD write).
const POLL_LIMIT: u32 = 10_000;
/// Commands per batch before a CMD_SYNC (Linux `CMDQ_BATCH_ENTRIES`).
const BATCH: usize = 64;

/// The command queue as the driver owns it.
pub(crate) struct CommandQueue {
    base: u64,
    log2: u8,
    /// PROD as last written (index and wrap bit).
    prod: u32,
    poll: SyncPoll,
}

impl CommandQueue {
    pub(crate) fn new(base: u64, log2: u8, poll: SyncPoll) -> CommandQueue {
        CommandQueue {
            base,
            log2,
            prod: 0,
            poll,
        }
    }

    fn wrap_mask(&self) -> u32 {
        (2u32 << self.log2) - 1
    }

    fn slot(&self, p: u32) -> u64 {
        self.base + ((p & ((1 << self.log2) - 1)) as u64) * CMD_BYTES
    }

    fn write_slot(&self, mem: &dyn PhysMem, p: u32, raw: [u64; 2]) -> Result<()> {
        let at = self.slot(p);
        mem.store_u64(at + 8, raw[1])?;
        mem.store_u64(at, raw[0])?;
        Ok(())
    }

    fn sync_command(&self, p: u32) -> Command {
        match self.poll {
            SyncPoll::Msi => Command::Sync {
                cs: SyncCs::Irq,
                msh: SH_ISH,
                msiattr: MEMATTR_OIWB,
                msidata: 0,
                msiaddr: self.slot(p),
            },
            SyncPoll::Consumption => Command::Sync {
                cs: SyncCs::Sev,
                msh: SH_ISH,
                msiattr: MEMATTR_OIWB,
                msidata: 0,
                msiaddr: 0,
            },
        }
    }

    /// Issues `cmds`, each batch followed by a CMD_SYNC, and returns once the last sync has
    /// completed.
    ///
    /// # Errors
    /// [`DriverError::Command`] if the SMMU refused a command (the queue is recovered first),
    /// [`DriverError::SyncTimeout`] if a sync never completed, memory errors.
    pub(crate) fn issue(
        &mut self,
        mmio: &dyn Mmio,
        mem: &dyn PhysMem,
        cmds: &[Command],
    ) -> Result<()> {
        let raw: Vec<[u64; 2]> = cmds.iter().map(Command::encode).collect();
        self.issue_raw(mmio, mem, &raw)
    }

    /// Issues commands as their raw doublewords (a guest's, Linux
    /// `arm_vsmmu_cache_invalidate`), each batch followed by a CMD_SYNC, as
    /// [`issue`](Self::issue) does.
    ///
    /// # Errors
    /// As [`issue`](Self::issue); the first error, after every batch has been issued.
    pub(crate) fn issue_raw(
        &mut self,
        mmio: &dyn Mmio,
        mem: &dyn PhysMem,
        cmds: &[[u64; 2]],
    ) -> Result<()> {
        // A batch and its sync never fill more than half the queue.
        let batch = BATCH.min((1usize << self.log2) / 2 - 1).max(1);
        let mut first_err = None;
        let mut chunks: Vec<&[[u64; 2]]> = cmds.chunks(batch).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        for chunk in chunks {
            if let Err(e) = self.issue_batch(mmio, mem, chunk, true) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Issues `cmds` without a CMD_SYNC (Linux sends none after CMD_RESUME and CMD_PRI_RESP:
    /// "it doesn't do anything"); still reports a command the SMMU refused.
    ///
    /// # Errors
    /// As [`issue`](Self::issue).
    pub(crate) fn issue_nosync(
        &mut self,
        mmio: &dyn Mmio,
        mem: &dyn PhysMem,
        cmds: &[Command],
    ) -> Result<()> {
        let raw: Vec<[u64; 2]> = cmds.iter().map(Command::encode).collect();
        self.issue_batch(mmio, mem, &raw, false)
    }

    fn issue_batch(
        &mut self,
        mmio: &dyn Mmio,
        mem: &dyn PhysMem,
        cmds: &[[u64; 2]],
        sync: bool,
    ) -> Result<()> {
        let m = self.wrap_mask();
        let mut p = self.prod;
        for c in cmds {
            self.write_slot(mem, p, *c)?;
            p = (p + 1) & m;
        }
        let sync_at = p;
        if sync {
            self.write_slot(mem, p, self.sync_command(p).encode())?;
            p = (p + 1) & m;
        }
        self.prod = p;
        mmio.write(offset::CMDQ_PROD, 4, p as u64);
        if sync {
            self.wait_sync(mmio, mem, sync_at)
        } else {
            self.check_error(mmio, mem).map_or(Ok(()), Err)
        }
    }

    /// Has CONS moved past `p` (in the queue's circular order, from the current PROD)?
    fn consumed(&self, cons: u32, p: u32) -> bool {
        let m = self.wrap_mask();
        let pending = self.prod.wrapping_sub(cons) & m;
        let behind = self.prod.wrapping_sub(p) & m;
        pending < behind
    }

    fn wait_sync(&mut self, mmio: &dyn Mmio, mem: &dyn PhysMem, at: u32) -> Result<()> {
        let mut err = None;
        for _ in 0..POLL_LIMIT {
            if let Some(e) = self.check_error(mmio, mem) {
                // The erroneous command became a CMD_SYNC and the queue runs on: wait for
                // ours still, but report the error.
                err.get_or_insert(e);
                continue;
            }
            let done = match self.poll {
                SyncPoll::Msi => mem.load_u64(self.slot(at))? as u32 == 0,
                SyncPoll::Consumption => {
                    let cons = mmio.read(offset::CMDQ_CONS, 4) as u32 & queue::WR_MASK;
                    self.consumed(cons, at)
                }
            };
            if done {
                return err.map_or(Ok(()), Err);
            }
            std::hint::spin_loop();
        }
        Err(err.unwrap_or(DriverError::SyncTimeout))
    }

    /// If GERROR.CMDQ_ERR is active: replace the command at CONS by a CMD_SYNC unless the
    /// error is an ATC invalidation time-out (CONS then points at the CMD_SYNC, which is
    /// retried), acknowledge, and return the error (Linux `arm_smmu_cmdq_skip_err` and
    /// `arm_smmu_gerror_handler`).
    fn check_error(&mut self, mmio: &dyn Mmio, mem: &dyn PhysMem) -> Option<DriverError> {
        let gerror = mmio.read(offset::GERROR, 4) as u32;
        let gerrorn = mmio.read(offset::GERRORN, 4) as u32;
        if (gerror ^ gerrorn) & Gerror::CMDQ_ERR.bits() == 0 {
            return None;
        }
        let cons = mmio.read(offset::CMDQ_CONS, 4) as u32;
        let code = ((cons >> queue::ERR_SHIFT) & queue::ERR_MASK) as u8;
        let at = cons & queue::WR_MASK;
        let mut raw = [0u64; 2];
        for (i, w) in raw.iter_mut().enumerate() {
            *w = mem.load_u64(self.slot(at) + 8 * i as u64).unwrap_or(0);
        }
        let opcode = raw[0] as u8;
        if code != cerror::ATC_INV_SYNC {
            let sync = self.sync_command(at).encode();
            if let Err(e) = self.write_slot(mem, at, sync) {
                return Some(e);
            }
        }
        tracing::warn!(code, opcode, "SMMUv3 CMDQ error");
        // Acknowledge by toggling GERRORN.CMDQ_ERR back to GERROR's value.
        mmio.write(
            offset::GERRORN,
            4,
            (gerrorn ^ Gerror::CMDQ_ERR.bits()) as u64,
        );
        Some(DriverError::Command { code, opcode })
    }
}
