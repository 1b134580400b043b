//! Probe and reset: what the driver programs, what it refuses, how its commands complete.

mod common;

use std::sync::Arc;
use vsva_pcie::Mmio;

use common::*;
use vsva_mem::{Errno, FrameAllocator, PhysMem, PhysMemory};
use vsva_pcie::MsiLog;
use vsva_smmuv3::spec::cmd::{Command, SyncCs};
use vsva_smmuv3::spec::registers::{
    Cr0, Gbpa, Gerror, Idr0, IrqCtrl, QueueBase, StrtabBase, StrtabBaseCfg, offset,
};
use vsva_smmuv3::{Smmuv3, Smmuv3Config, StreamConfig};
use vsva_smmuv3_driver::{DriverError, MSI_DOORBELL, ProbeOptions, Smmuv3Driver, SyncPoll};

fn read32(r: &Rig, off: u64) -> u32 {
    r.unit.mmio_read(off, 4) as u32
}

fn probe_only(cfg: Smmuv3Config) -> Result<Smmuv3Driver, DriverError> {
    let mem: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(64 * MIB).unwrap());
    let unit = Arc::new(Smmuv3::new(cfg, mem.clone(), Arc::new(MsiLog::default())));
    let mmio: Arc<dyn Mmio> = unit;
    let frames = Arc::new(FrameAllocator::new(mem.clone(), MIB, 64 * MIB));
    Smmuv3Driver::probe(mmio, mem, frames, ProbeOptions::default())
}

#[test]
fn reset_enables_translation_and_every_queue_with_cr0ack_matching() {
    let r = rig();
    let cr0 = Cr0::from_bits_truncate(read32(&r, offset::CR0));
    assert_eq!(
        cr0,
        Cr0::SMMUEN | Cr0::CMDQEN | Cr0::EVTQEN | Cr0::PRIQEN | Cr0::ATSCHK
    );
    assert_eq!(read32(&r, offset::CR0ACK), cr0.bits());
    assert_eq!(read32(&r, offset::IRQ_CTRL), IrqCtrl::all().bits());
    assert_eq!(read32(&r, offset::IRQ_CTRLACK), IrqCtrl::all().bits());
    // Linux's CR1: write-back, Inner Shareable tables and queues.
    assert_eq!(read32(&r, offset::CR1), 0xd75);
    let gbpa = Gbpa::from_bits(read32(&r, offset::GBPA));
    assert!(gbpa.abort() && !gbpa.update());
    // Translation is on: a StreamID without a level-2 table is C_BAD_STREAMID, recorded
    // because of CR2.RECINVSID, not GBPA's bypass or abort.
    assert_eq!(
        r.unit.stream_config(3, None),
        Err(vsva_smmuv3::ConfigFault::BadStreamId)
    );
    let faults = vsva_iommu::IommuOps::take_faults(r.driver.as_ref());
    assert_eq!(faults.len(), 1);
    assert_eq!(
        faults[0].reason,
        vsva_smmuv3::spec::event::id::C_BAD_STREAMID
    );
    assert_eq!(faults[0].dev, rid(3));
}

#[test]
fn reset_programs_the_queues_and_the_msis() {
    let r = rig();
    let cmdq = QueueBase::from_bits(r.unit.mmio_read(offset::CMDQ_BASE, 8));
    assert_eq!(cmdq.log2size(), 8, "IDR1.CMDQS");
    assert!(cmdq.rwa() && cmdq.addr() != 0);
    let evtq = QueueBase::from_bits(r.unit.mmio_read(offset::EVENTQ_BASE, 8));
    assert_eq!(evtq.log2size(), 7);
    let priq = QueueBase::from_bits(r.unit.mmio_read(offset::PRIQ_BASE, 8));
    assert_eq!(priq.log2size(), 7);
    for (cfg0, data) in [
        (offset::EVENTQ_IRQ_CFG0, 0),
        (offset::GERROR_IRQ_CFG0, 1),
        (offset::PRIQ_IRQ_CFG0, 2),
    ] {
        assert_eq!(r.unit.mmio_read(cfg0, 8), MSI_DOORBELL);
        assert_eq!(r.unit.mmio_read(cfg0 + 8, 4), data);
    }
}

#[test]
fn reset_invalidates_every_configuration_and_tlb_entry_then_syncs() {
    let r = rig();
    let cmds = r.commands_since(0);
    assert!(matches!(
        cmds.as_slice(),
        [
            Command::CfgiSteRange { range: 31, .. },
            Command::TlbiNsnhAll,
            Command::Sync { .. }
        ]
    ));
    assert_eq!(r.unit.stats().syncs, 1);
}

#[test]
fn a_small_sidsize_gets_a_linear_stream_table_of_aborting_stes() {
    let r = rig_with(
        Smmuv3Config {
            sid_bits: 8,
            ..Smmuv3Config::default()
        },
        None,
    );
    let cfg = StrtabBaseCfg::from_bits(read32(&r, offset::STRTAB_BASE_CFG));
    assert_eq!((cfg.fmt(), cfg.log2size()), (0, 8));
    let base = StrtabBase::from_bits(r.unit.mmio_read(offset::STRTAB_BASE, 8));
    assert!(base.ra());
    for sid in [0, 0x7f, 0xff] {
        assert_eq!(r.unit.stream_config(sid, None), Ok(StreamConfig::Abort));
    }
}

#[test]
fn a_large_sidsize_gets_a_two_level_stream_table_split_at_8_bits() {
    let r = rig();
    let cfg = StrtabBaseCfg::from_bits(read32(&r, offset::STRTAB_BASE_CFG));
    assert_eq!((cfg.fmt(), cfg.split(), cfg.log2size()), (1, 8, 16));
    // Level-2 tables appear as masters do.
    r.driver
        .add_master(rid(0x1234), Default::default())
        .unwrap();
    assert_eq!(r.unit.stream_config(0x1234, None), Ok(StreamConfig::Abort));
}

#[test]
fn without_two_level_support_the_stream_table_is_linear() {
    let r = rig_with(
        Smmuv3Config {
            sid_bits: 12,
            two_level_strtab: false,
            ..Smmuv3Config::default()
        },
        None,
    );
    let cfg = StrtabBaseCfg::from_bits(read32(&r, offset::STRTAB_BASE_CFG));
    assert_eq!((cfg.fmt(), cfg.log2size()), (0, 12));
}

#[test]
fn probe_refuses_an_smmu_without_stage_1_with_enxio() {
    let e = probe_only(Smmuv3Config {
        stage1: false,
        ..Smmuv3Config::default()
    })
    .unwrap_err();
    assert!(matches!(e, DriverError::Unsupported(_)), "{e}");
    assert_eq!(e.errno(), Errno::ENXIO);
}

#[test]
fn probe_refuses_an_smmu_without_the_4k_granule() {
    let e = probe_only(Smmuv3Config {
        gran4k: false,
        ..Smmuv3Config::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("4 KiB"), "{e}");
}

#[test]
fn probe_refuses_a_command_queue_of_64_entries() {
    let e = probe_only(Smmuv3Config {
        cmdq_bits: 6,
        ..Smmuv3Config::default()
    })
    .unwrap_err();
    assert!(matches!(e, DriverError::Unsupported(_)));
}

#[test]
fn probe_reads_the_features_linux_reads() {
    let d = probe_only(Smmuv3Config {
        ril: false,
        asid16: false,
        ..Smmuv3Config::default()
    })
    .unwrap();
    let f = d.features();
    assert_eq!((f.sid_bits, f.ssid_bits, f.oas), (16, 20, 5));
    assert!(f.two_level_strtab && f.two_level_cdtab && f.ats && f.pri && f.stall);
    assert!(!f.ril && !f.asid16 && !f.stall_force);
    assert_eq!(d.sync_poll(), SyncPoll::Msi, "IDR0.MSI and COHACC");
}

#[test]
fn cmd_sync_completes_by_its_msi_zeroing_its_own_slot() {
    let r = rig_with(Smmuv3Config::default(), Some(SyncPoll::Msi));
    let m = r.mark();
    r.driver.issue_commands(&[Command::TlbiNsnhAll]).unwrap();
    let base = QueueBase::from_bits(r.unit.mmio_read(offset::CMDQ_BASE, 8)).addr() << 5;
    let slot = base + (m as u64 + 1) * 16;
    assert!(r.msi.log.lock().unwrap().contains(&(slot, 0)));
    assert_eq!(r.mem.load_u64(slot).unwrap() as u32, 0);
    assert!(matches!(r.commands_since(m)[1], Command::Sync { .. }));
}

#[test]
fn cmd_sync_completes_by_consumption_with_sev() {
    let r = rig_with(Smmuv3Config::default(), Some(SyncPoll::Consumption));
    let m = r.mark();
    let sev = r.unit.stats().sev;
    r.driver.issue_commands(&[Command::TlbiNsnhAll]).unwrap();
    assert!(matches!(
        r.commands_since(m)[1],
        Command::Sync {
            cs: SyncCs::Sev,
            msiaddr: 0,
            ..
        }
    ));
    assert_eq!(r.unit.stats().sev, sev + 1);
    assert_eq!(read32(&r, offset::CMDQ_CONS), r.mark());
}

#[test]
fn a_refused_command_is_replaced_by_a_sync_acknowledged_and_reported() {
    let r = rig();
    // CMD_TLBI_EL2_ALL needs IDR0.HYP: CERROR_ILL.
    let e = r.driver.issue_commands(&[Command::TlbiEl2All]).unwrap_err();
    assert!(
        matches!(
            e,
            DriverError::Command {
                code: 1,
                opcode: 0x20
            }
        ),
        "{e}"
    );
    assert_eq!(
        (read32(&r, offset::GERROR) ^ read32(&r, offset::GERRORN)) & Gerror::CMDQ_ERR.bits(),
        0,
        "acknowledged"
    );
    assert_eq!(read32(&r, offset::CMDQ_CONS) & 0x000f_ffff, r.mark());
    // The queue runs on.
    r.driver.issue_commands(&[Command::TlbiNsnhAll]).unwrap();
}

#[test]
fn an_atc_invalidation_time_out_is_recovered_and_reported() {
    let r = rig();
    *r.endpoints.present.lock().unwrap() = Some(vec![]);
    let e = r
        .driver
        .issue_commands(&[vsva_smmuv3_driver::atc_inv(0x10, 0, 0, 0)])
        .unwrap_err();
    assert!(matches!(e, DriverError::Command { code: 3, .. }), "{e}");
    *r.endpoints.present.lock().unwrap() = None;
    r.driver.issue_commands(&[Command::TlbiNsnhAll]).unwrap();
}

/// The unit's registers with IDR0 replaced (an SMMU the model cannot be configured as).
struct Idr0As {
    unit: Arc<Smmuv3>,
    idr0: u32,
}

impl Mmio for Idr0As {
    fn read(&self, off: u64, size: u8) -> u64 {
        if off == offset::IDR0 {
            self.idr0 as u64
        } else {
            self.unit.mmio_read(off, size)
        }
    }
    fn write(&self, off: u64, size: u8, value: u64) {
        self.unit.mmio_write(off, size, value)
    }
}

fn probe_with_idr0(change: impl Fn(Idr0) -> Idr0) -> Result<Smmuv3Driver, DriverError> {
    let mem: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(64 * MIB).unwrap());
    let cfg = Smmuv3Config::default();
    let idr0 = change(cfg.idr0()).into_bits();
    let unit = Arc::new(Smmuv3::new(cfg, mem.clone(), Arc::new(MsiLog::default())));
    let frames = Arc::new(FrameAllocator::new(mem.clone(), MIB, 64 * MIB));
    Smmuv3Driver::probe(
        Arc::new(Idr0As { unit, idr0 }),
        mem,
        frames,
        ProbeOptions::default(),
    )
}

#[test]
fn probe_refuses_aarch32_only_and_big_endian_only_tables() {
    let e = probe_with_idr0(|i| i.with_ttf(0b01)).unwrap_err();
    assert!(e.to_string().contains("AArch64"), "{e}");
    let e = probe_with_idr0(|i| i.with_ttendian(0b11)).unwrap_err();
    assert!(e.to_string().contains("little-endian"), "{e}");
    // Mixed-endian (0b00) is fine.
    probe_with_idr0(|i| i.with_ttendian(0b00)).unwrap();
}

#[test]
fn without_coherent_msis_syncs_are_polled_on_cons() {
    let d = probe_with_idr0(|i| i.with_cohacc(false)).unwrap();
    assert_eq!(d.sync_poll(), SyncPoll::Consumption);
    let d = probe_with_idr0(|i| i.with_msi(false)).unwrap();
    assert_eq!(d.sync_poll(), SyncPoll::Consumption);
}

#[test]
fn a_second_reset_of_an_enabled_smmu_starts_over_cleanly() {
    let r = rig();
    r.driver.reset().unwrap();
    assert!(Cr0::from_bits_truncate(read32(&r, offset::CR0)).contains(Cr0::SMMUEN));
    r.driver.issue_commands(&[Command::TlbiNsnhAll]).unwrap();
}

#[test]
fn commands_before_reset_are_refused() {
    let d = probe_only(Smmuv3Config::default()).unwrap();
    assert!(d.issue_commands(&[Command::TlbiNsnhAll]).is_err());
    assert!(d.take_events().is_empty());
}
