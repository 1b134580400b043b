//! The register file (IHI 0070 §6.3): ID registers, the CR0/CR0ACK and IRQ_CTRL handshakes,
//! GBPA's Update protocol, registers that are read-only while something is enabled, and
//! RES0/RAZ/WI behaviour.

mod common;

use common::*;
use vsva_smmuv3::spec::registers::{offset, queue};
use vsva_smmuv3::{AIDR, Smmuv3Config, StreamConfig};

#[test]
fn id_registers_advertise_the_default_config() {
    let b = Bench::raw(Smmuv3Config::default());
    // S2P, S1P, TTF = AArch64 (0x8), COHACC, HTTU = A+D (0x80), ATS, ASID16, MSI, SEV, PRI,
    // VMID16, CD2L, TTENDIAN = LE (0x40_0000), ST_LEVEL = 2-level (0x800_0000).
    assert_eq!(b.r32(offset::IDR0), 0x084d_749b);
    // SIDSIZE 16, SSIDSIZE 20 << 6, PRIQS 7 << 11, EVENTQS 7 << 16, CMDQS 8 << 21.
    assert_eq!(b.r32(offset::IDR1), 0x0107_3d10);
    assert_eq!(b.r32(offset::IDR2), 0);
    // HAD (bit 2), XNX (bit 4), PPS (bit 5), FWB (bit 8), RIL (bit 10), BBML = 1 (12:11).
    assert_eq!(b.r32(offset::IDR3), 0xd34);
    // OAS 48 (5), GRAN4K (bit 4; no GRAN64K, bit 6), STALL_MAX 64 (31:16).
    assert_eq!(b.r32(offset::IDR5), 0x0040_0015);
    assert_eq!(b.r32(offset::AIDR), AIDR);
    // Writes to ID registers are ignored.
    b.w32(offset::IDR0, 0);
    assert_eq!(b.r32(offset::IDR0), 0x084d_749b);
}

#[test]
fn cr0ack_follows_cr0_and_unsupported_enables_read_as_zero() {
    let b = Bench::raw(Smmuv3Config {
        pri: false,
        ats: false,
        ..Smmuv3Config::default()
    });
    assert_eq!(b.r32(offset::CR0ACK), 0);
    // SMMUEN | PRIQEN | EVTQEN | CMDQEN | ATSCHK | bit 5.
    b.w32(offset::CR0, 0x3f);
    assert_eq!(b.r32(offset::CR0), 0xd);
    assert_eq!(b.r32(offset::CR0ACK), 0xd);
    b.w32(offset::CR0, 0x8);
    assert_eq!(b.r32(offset::CR0ACK), 0x8);
}

#[test]
fn cr1_table_fields_guarded_by_smmuen_queue_fields_by_queue_enables() {
    let b = Bench::raw(Smmuv3Config::default());
    b.w32(offset::CR1, 0xffff_ffff);
    assert_eq!(b.r32(offset::CR1), 0xfff);
    // SMMUEN: TABLE_SH/OC/IC (11:6) read-only, QUEUE_* (5:0) still writable.
    b.w32(offset::CR0, 0x1);
    b.w32(offset::CR1, 0);
    assert_eq!(b.r32(offset::CR1), 0xfc0);
    // A queue enabled: QUEUE_* read-only too.
    b.w32(offset::CR0, 0x0);
    b.w32(offset::CR1, 0xd75);
    b.w32(offset::CR0, 0x4);
    b.w32(offset::CR1, 0);
    assert_eq!(b.r32(offset::CR1), 0x035);
}

#[test]
fn cr2_keeps_recinvsid_only_while_smmuen_clear() {
    let b = Bench::raw(Smmuv3Config::default());
    // E2H needs IDR0.HYP, PTM needs IDR0.BTM: both RES0 here.
    b.w32(offset::CR2, 0xffff_ffff);
    assert_eq!(b.r32(offset::CR2), 0x2);
    b.w32(offset::CR0, 1);
    b.w32(offset::CR2, 0);
    assert_eq!(b.r32(offset::CR2), 0x2);
}

#[test]
fn gbpa_update_protocol() {
    let b = Bench::raw(Smmuv3Config::default());
    // Reset: SHCFG = use incoming (0b01), ABORT clear.
    assert_eq!(b.r32(offset::GBPA), 0x1000);
    // Without Update a write changes nothing.
    b.w32(offset::GBPA, 1 << 20);
    assert_eq!(b.r32(offset::GBPA), 0x1000);
    // With Update it takes effect at once and Update reads back 0; RES0 bits stay 0.
    b.w32(offset::GBPA, 1 << 31 | 1 << 20 | 0x3000 | 1 << 7);
    assert_eq!(b.r32(offset::GBPA), 1 << 20 | 0x3000);
}

#[test]
fn gbpa_abort_decides_transactions_while_smmuen_clear() {
    let b = Bench::raw(Smmuv3Config::default());
    assert_eq!(
        b.smmu.stream_config(3, None),
        Ok(StreamConfig::Disabled { abort: false })
    );
    b.w32(offset::GBPA, 1 << 31 | 1 << 20);
    assert_eq!(
        b.smmu.stream_config(3, Some(1)),
        Ok(StreamConfig::Disabled { abort: true })
    );
    let b = Bench::raw(Smmuv3Config {
        gbpa_abort_at_reset: true,
        ..Smmuv3Config::default()
    });
    assert_eq!(b.r32(offset::GBPA), 1 << 20 | 0x1000);
    assert_eq!(
        b.smmu.stream_config(3, None),
        Ok(StreamConfig::Disabled { abort: true })
    );
}

#[test]
fn strtab_registers_ignore_writes_while_enabled() {
    let b = Bench::new();
    b.w64(offset::STRTAB_BASE, 0x1234_0000);
    b.w32(offset::STRTAB_BASE_CFG, 1 << 16 | 10);
    assert_eq!(b.r64(offset::STRTAB_BASE), STRTAB);
    assert_eq!(b.r32(offset::STRTAB_BASE_CFG), 8);
    b.w32(offset::CR0, 0);
    b.w64(offset::STRTAB_BASE, u64::MAX);
    b.w32(offset::STRTAB_BASE_CFG, u32::MAX);
    // RA and ADDR[51:6]; FMT, SPLIT, LOG2SIZE.
    assert_eq!(b.r64(offset::STRTAB_BASE), 1 << 62 | 0x000f_ffff_ffff_ffc0);
    assert_eq!(b.r32(offset::STRTAB_BASE_CFG), 0x3_07ff);
}

#[test]
fn queue_base_registers_ignore_writes_while_their_queue_is_enabled() {
    let b = Bench::new();
    b.w64(offset::CMDQ_BASE, 0x9000);
    b.w64(offset::EVENTQ_BASE, 0x9000);
    assert_eq!(b.r64(offset::CMDQ_BASE), CMDQ | CMDQ_LOG2);
    assert_eq!(b.r64(offset::EVENTQ_BASE), EVTQ | EVTQ_LOG2);
    b.w32(offset::CR0, 1);
    b.w64(offset::CMDQ_BASE, u64::MAX);
    // RWA and ADDR[51:5] and LOG2SIZE[4:0].
    assert_eq!(b.r64(offset::CMDQ_BASE), 1 << 62 | 0x000f_ffff_ffff_ffff);
}

#[test]
fn irq_ctrlack_follows_irq_ctrl_and_irq_cfg_locked_while_enabled() {
    let b = Bench::new();
    assert_eq!(b.r32(offset::IRQ_CTRLACK), 0x5);
    b.w64(offset::GERROR_IRQ_CFG0, 0x1000);
    b.w32(offset::EVENTQ_IRQ_CFG1, 0x99);
    assert_eq!(b.r64(offset::GERROR_IRQ_CFG0), GERROR_MSI.0);
    assert_eq!(b.r32(offset::EVENTQ_IRQ_CFG1), EVTQ_MSI.1);
    b.w32(offset::IRQ_CTRL, 0xffff_ffff);
    assert_eq!(b.r32(offset::IRQ_CTRLACK), 0x7);
    b.w32(offset::IRQ_CTRL, 0);
    b.w64(offset::GERROR_IRQ_CFG0, 0xffff_ffff_ffff_ffff);
    b.w32(offset::GERROR_IRQ_CFG2, 0xffff_ffff);
    // ADDR[51:2]; SH and MemAttr.
    assert_eq!(b.r64(offset::GERROR_IRQ_CFG0), 0x000f_ffff_ffff_fffc);
    assert_eq!(b.r32(offset::GERROR_IRQ_CFG2), 0x3f);
}

#[test]
fn sixty_four_bit_registers_accessible_as_two_halves() {
    let b = Bench::raw(Smmuv3Config::default());
    b.w32(offset::STRTAB_BASE, 0x8765_4321);
    b.w32(offset::STRTAB_BASE + 4, 0x4001_2345);
    assert_eq!(b.r64(offset::STRTAB_BASE), 0x4001_2345_8765_4300);
    assert_eq!(b.r32(offset::STRTAB_BASE), 0x8765_4300);
    assert_eq!(b.r32(offset::STRTAB_BASE + 4), 0x4001_2345);
    b.w32(offset::EVENTQ_IRQ_CFG0 + 4, 0x1);
    b.w32(offset::EVENTQ_IRQ_CFG0, 0xfee0_0003);
    assert_eq!(b.r64(offset::EVENTQ_IRQ_CFG0), 0x1_fee0_0000);
}

#[test]
fn unknown_misaligned_and_wide_accesses_raz_wi() {
    let b = Bench::new();
    for off in [0x30, 0x100, 0x1000, offset::PAGE1 + 0x20, 0x9000] {
        b.w32(off, 0xffff_ffff);
        assert_eq!(b.r32(off), 0, "{off:#x}");
    }
    assert_eq!(b.smmu.mmio_read(offset::CR0 + 1, 4), 0);
    assert_eq!(b.smmu.mmio_read(offset::CR0, 2), 0);
    // A 64-bit access to a 32-bit register.
    assert_eq!(b.r64(offset::CR0), 0);
    b.w64(offset::CR0, 0);
    assert_eq!(b.r32(offset::CR0), 0xd);
    // The output queues' PROD/CONS are in page 1 only: page 0's offsets are reserved.
    assert_eq!(b.r32(0xa8), 0);
    assert_eq!(b.r32(offset::STATUSR), 0);
}

#[test]
fn pri_registers_raz_wi_without_pri() {
    let b = Bench::raw(Smmuv3Config {
        pri: false,
        ..Smmuv3Config::default()
    });
    b.w64(offset::PRIQ_BASE, 0x4000 | 3);
    b.w32(offset::PRIQ_CONS, 1);
    b.w32(offset::IRQ_CTRL, 0x2);
    assert_eq!(b.r64(offset::PRIQ_BASE), 0);
    assert_eq!(b.r32(offset::PRIQ_CONS), 0);
    assert_eq!(b.r32(offset::IRQ_CTRLACK), 0);
    let b = Bench::raw(Smmuv3Config::default());
    b.w64(offset::PRIQ_BASE, 0x4000 | 3);
    assert_eq!(b.r64(offset::PRIQ_BASE), 0x4003);
}

#[test]
fn priq_irq_cfg2_keeps_last_only_bit() {
    let b = Bench::raw(Smmuv3Config::default());
    b.w32(offset::PRIQ_IRQ_CFG2, 0xffff_ffff);
    assert_eq!(b.r32(offset::PRIQ_IRQ_CFG2), 1 << 31 | 0x3f);
    b.w32(offset::EVENTQ_IRQ_CFG2, 0xffff_ffff);
    assert_eq!(b.r32(offset::EVENTQ_IRQ_CFG2), 0x3f);
}

#[test]
fn pri_needs_ats() {
    let b = Bench::raw(Smmuv3Config {
        ats: false,
        ..Smmuv3Config::default()
    });
    // IDR0.PRI (bit 16) and ATS (bit 10) clear; IDR1.PRIQS 0.
    assert_eq!(b.r32(offset::IDR0) & (1 << 16 | 1 << 10), 0);
    assert_eq!(b.r32(offset::IDR1) >> 11 & 0x1f, 0);
    assert!(!b.smmu.config().pri);
}

#[test]
fn msi_registers_raz_wi_without_msi() {
    let b = Bench::raw(Smmuv3Config {
        msi: false,
        ..Smmuv3Config::default()
    });
    b.w64(offset::GERROR_IRQ_CFG0, 0xfee0_0000);
    b.w32(offset::EVENTQ_IRQ_CFG1, 5);
    assert_eq!(b.r64(offset::GERROR_IRQ_CFG0), 0);
    assert_eq!(b.r32(offset::EVENTQ_IRQ_CFG1), 0);
}

#[test]
fn gerror_is_read_only() {
    let b = Bench::new();
    b.w32(offset::GERROR, 0x1fd);
    assert_eq!(b.r32(offset::GERROR), 0);
    b.w32(offset::GERRORN, 0xffff_ffff);
    assert_eq!(
        b.r32(offset::GERRORN),
        0x1fd,
        "GERRORN keeps the defined bits only"
    );
}

#[test]
fn output_queue_prod_writable_only_while_disabled_cons_always() {
    let b = Bench::new();
    b.w32(offset::EVENTQ_PROD, 3);
    assert_eq!(b.r32(offset::EVENTQ_PROD), 0);
    b.w32(offset::EVENTQ_CONS, 0xffff_ffff);
    // RD with wrap (8 entries: bits 3:0) and OVACKFLG.
    assert_eq!(b.r32(offset::EVENTQ_CONS), queue::OVERFLOW | 0xf);
    b.w32(offset::CR0, 0x9);
    b.w32(offset::EVENTQ_PROD, 0x8000_0005);
    assert_eq!(b.r32(offset::EVENTQ_PROD), 0x8000_0005);
}

#[test]
fn cmdq_cons_writable_only_while_cmdq_disabled() {
    let b = Bench::new();
    b.w32(offset::CMDQ_CONS, 3);
    assert_eq!(b.r32(offset::CMDQ_CONS), 0);
    b.w32(offset::CR0, 0x5);
    b.w32(offset::CMDQ_CONS, 0xffff_ffff);
    // RD with wrap (16 entries: bits 4:0); ERR is not software-writable.
    assert_eq!(b.r32(offset::CMDQ_CONS), 0x1f);
}
