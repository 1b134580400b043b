//! The bare-metal AArch64 program one QEMU boot runs for a [`Scenario`], built as words.
//!
//! Image layout at [`IMAGE_BASE`] (physical; the program runs from its TTBR1 alias once the
//! MMU is on):
//!
//! | offset   | contents                                                          |
//! |----------|-------------------------------------------------------------------|
//! | `0x0000` | `B boot` (the loader points the PC here)                          |
//! | `0x0800` | VBAR_EL1 vector table (16 entries of 0x80 bytes, chapter D1)      |
//! | `0x1000` | boot TTBR0 level 1 table: an identity block for RAM's first GiB   |
//! | `0x2000` | TTBR1 level 1 table: UART and RAM aliases at [`TTBR1_BASE`]         |
//! | `0x3000` | code: boot, one straight-line block per probe, dumps, subroutines |
//!
//! Register use: x25 = UART data register (TTBR1 alias), x26 = 1 while a probe runs, x28 =
//! where the exception handler resumes, x20/x0/x21/x22 = status/value/ESR/FAR of the
//! last probe, x27 = saved link register, x15 = vector number on a panic.

use super::asm::{self, Asm, Cond, Reg, XZR};
use super::vmsa::{desc, esr, sctlr, tcr};
use super::{
    Access, IMAGE_BASE, MAGIC_END, MAGIC_PANIC, MAGIC_START, RAM_BASE, RESERVED_END, Scenario,
    TTBR1_BASE,
};

/// The PL011 UART of QEMU's `virt` machine (`hw/arm/virt.c`, `VIRT_UART`).
const UART: u64 = 0x0900_0000;
/// PL011 registers: UARTFR (flags; bit 5 TXFF = transmit FIFO full) and UARTCR (control;
/// UARTEN bit 0, TXE bit 8, RXE bit 9) — PL011 TRM DDI 0183, 3.3.
const UARTFR: u32 = 0x18;
const UARTCR: u32 = 0x30;
const UARTCR_ON: u16 = 0x301;

/// PSCI SYSTEM_OFF, SMC32/HVC32 function ID (Arm DEN 0022, 5.1.9). QEMU's `virt` machine
/// without EL2/EL3 implements PSCI itself and takes the call through HVC.
const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;

/// SPSR_EL1 values to `ERET` with (register SPSR_EL1, chapter C5): D, A, I, F masked, and
/// M[3:0] = EL1h (0b0101) or EL0t (0b0000); UAO (bit 23) stays 0, PAN (bit 22) is
/// [`SPSR_PAN`] where the scenario runs with PAN.
const SPSR_EL1H: u16 = 0x3c5;
const SPSR_EL0T: u16 = 0x3c0;
/// SPSR_EL1.PAN, bit 22: PSTATE.PAN after the `ERET` (set for scenarios run with PAN).
const SPSR_PAN: u64 = 1 << 22;

/// MAIR_EL1 attribute indices the harness keeps for its own mappings.
const ATTR_NORMAL: u64 = 6;
const ATTR_DEVICE: u64 = 7;
/// MAIR_EL1 bytes 6 and 7: Normal Inner/Outer Write-Back RW-allocate (0xff) and
/// Device-nGnRnE (0x00) (D19 "MAIR_EL1").
pub const MAIR_RESERVED: u64 = 0xffff << 48;
const MAIR_HARNESS: u64 = 0xff << 48;

/// TCR_EL1's TTBR1 half as the harness sets it: T1SZ = 25 (a 39-bit region, walks start at
/// level 1), IRGN1 = ORGN1 = Write-Back, SH1 = Inner Shareable, TG1 = 0b10 (4 KiB).
const TCR_T1: u64 = (25 << 16) | (1 << 24) | (1 << 26) | (3 << 28) | (2 << 30);
/// The TCR used while booting: a 39-bit TTBR0 region too, with a 40-bit IPS.
const TCR_BOOT: u64 = TCR_T1 | tcr::t0sz(39) | tcr::WALK_WBWA_INNER | tcr::IPS_40;

const VECTORS: u64 = 0x800;
const BOOT_L1: u64 = 0x1000;
const HIGH_L1: u64 = 0x2000;
const CODE: u64 = 0x3000;

// Registers with a fixed role (see the module doc).
const X0: Reg = 0;
const X1: Reg = 1;
const X2: Reg = 2;
const X9: Reg = 9;
const X10: Reg = 10;
const X11: Reg = 11;
const X12: Reg = 12;
const X15: Reg = 15;
const STATUS: Reg = 20;
const ESR: Reg = 21;
const FAR: Reg = 22;
const UARTR: Reg = 25;
const IN_PROBE: Reg = 26;
const SAVED_LR: Reg = 27;
const RESUME: Reg = 28;
const LR: Reg = 30;

/// The level 1 block descriptors of the harness's own tables.
fn harness_tables() -> ([u64; 512], [u64; 512]) {
    // Read-only (AP = 10): the program never stores to RAM, and a read-only mapping stays
    // executable when a scenario sets SCTLR_EL1.WXN.
    let normal =
        desc::BLOCK | desc::attr_indx(ATTR_NORMAL) | desc::SH_INNER | desc::AF | desc::AP_RO;
    let mut boot = [0; 512];
    // TTBR0 during boot: VA = PA for the 1 GiB holding the image, so the instruction after
    // the SCTLR_EL1.M write is fetched from the same address with the MMU on.
    boot[(RAM_BASE >> 30) as usize] = RAM_BASE | normal | desc::UXN;
    let mut high = [0; 512];
    // TTBR1: [TTBR1_BASE, +1 GiB) -> PA 0 (the UART), Device, never executable;
    // [TTBR1_BASE + 1 GiB, +2 GiB) -> RAM, EL1 read/execute.
    high[0] = desc::BLOCK | desc::attr_indx(ATTR_DEVICE) | desc::AF | desc::PXN | desc::UXN;
    high[(RAM_BASE >> 30) as usize] = RAM_BASE | normal | desc::UXN;
    (boot, high)
}

/// The register values the scenario's probes run under.
///
/// # Panics
/// If the scenario sets fields the harness owns (TCR_EL1's TTBR1 half, MAIR_EL1 bytes 6-7).
fn final_regs(s: &Scenario) -> (u64, u64, u64) {
    assert_eq!(
        s.regs.tcr & tcr::TTBR1_FIELDS,
        0,
        "TCR_EL1's TTBR1 fields belong to the harness"
    );
    assert_eq!(
        s.regs.mair & MAIR_RESERVED,
        0,
        "MAIR_EL1 attributes 6 and 7 belong to the harness"
    );
    (
        s.regs.tcr | TCR_T1,
        s.regs.mair | MAIR_HARNESS,
        s.regs.sctlr | sctlr::M,
    )
}

/// Builds the image to load at [`IMAGE_BASE`].
pub fn image(s: &Scenario) -> Vec<u8> {
    let (tcr_final, mair, sctlr_final) = final_regs(s);
    let mut a = Asm::new();
    let boot = a.label();
    let high = a.label();
    let vectors = a.label();
    let sync = a.label();
    let panic = a.label();
    let emit = a.label();
    let report = a.label();
    let off = a.label();

    a.b(boot);
    a.align(VECTORS);
    a.bind(vectors);
    for i in 0..16u16 {
        let start = a.pos();
        a.movz(X15, i, 0);
        // Synchronous exceptions from EL1 with SP_EL1 (entry 4) and from EL0 in AArch64
        // (entry 8) are the probes'; anything else is a harness bug.
        if i == 4 || i == 8 {
            a.b(sync);
        } else {
            a.b(panic);
        }
        while a.pos() < start + 0x80 {
            a.word(0);
        }
    }
    let (boot_l1, high_l1) = harness_tables();
    for table in [boot_l1, high_l1] {
        for d in table {
            a.word(d as u32);
            a.word((d >> 32) as u32);
        }
    }
    assert_eq!(a.pos(), CODE);

    // MMU off, at the physical address. Turn the MMU on with the boot tables, then jump to
    // the TTBR1 alias so TTBR0 can become the scenario's.
    a.bind(boot);
    a.mask_all();
    a.mov_imm(X9, mair);
    a.msr(asm::MAIR_EL1, X9);
    a.mov_imm(X9, TCR_BOOT);
    a.msr(asm::TCR_EL1, X9);
    a.mov_imm(X9, IMAGE_BASE + BOOT_L1);
    a.msr(asm::TTBR0_EL1, X9);
    a.mov_imm(X9, IMAGE_BASE + HIGH_L1);
    a.msr(asm::TTBR1_EL1, X9);
    a.isb();
    a.tlbi_vmalle1();
    a.dsb_ish();
    a.isb();
    a.mov_imm(X9, sctlr::DEFAULT);
    a.msr(asm::SCTLR_EL1, X9);
    a.isb();
    a.adr(X9, high);
    a.mov_imm(X10, TTBR1_BASE);
    a.add(X9, X9, X10);
    a.br(X9);

    // Running from the TTBR1 alias.
    a.bind(high);
    a.mov_imm(UARTR, TTBR1_BASE + UART);
    a.adr(X9, vectors);
    a.msr(asm::VBAR_EL1, X9);
    a.clear_pan();
    if s.pan {
        a.set_pan();
    }
    a.clear_uao();
    a.mov_imm(X9, tcr_final);
    a.msr(asm::TCR_EL1, X9);
    a.mov_imm(X9, s.regs.ttbr0);
    a.msr(asm::TTBR0_EL1, X9);
    a.mov_imm(X9, sctlr_final);
    a.msr(asm::SCTLR_EL1, X9);
    a.isb();
    a.tlbi_vmalle1();
    a.dsb_ish();
    a.isb();
    a.movz(X9, UARTCR_ON, 0);
    a.str_w(X9, UARTR, UARTCR);
    a.mov_imm(X9, MAGIC_START);
    a.bl(emit);
    for r in [
        asm::ID_AA64MMFR0_EL1,
        asm::ID_AA64MMFR1_EL1,
        asm::ID_AA64MMFR2_EL1,
    ] {
        a.mrs(X9, r);
        a.bl(emit);
    }

    for p in &s.probes {
        let after = a.label();
        a.mov_imm(X1, p.va);
        if let Access::Write(v) | Access::WriteEl0(v) = p.access {
            a.mov_imm(X2, v);
        }
        for r in [X0, STATUS, ESR, FAR] {
            a.movz(r, 0, 0);
        }
        a.adr(RESUME, after);
        // Every probe walks the tables afresh: no TLB entry from an earlier probe.
        a.tlbi_vmalle1();
        a.dsb_ish();
        a.isb();
        a.movz(IN_PROBE, 1, 0);
        match p.access {
            Access::Read => a.ldr(X0, X1, 0),
            Access::Write(_) => a.str(X2, X1),
            Access::ReadEl0 => a.ldtr(X0, X1),
            Access::WriteEl0(_) => a.sttr(X2, X1),
            // The code at the target ends in SVC, which lands in `sync` like a fault.
            Access::Fetch => a.blr(X1),
            Access::FetchEl0 => {
                a.msr(asm::ELR_EL1, X1);
                a.movz(X9, SPSR_EL0T, 0);
                a.msr(asm::SPSR_EL1, X9);
                a.eret();
            }
        }
        a.bind(after);
        a.movz(IN_PROBE, 0, 0);
        a.bl(report);
    }

    for &(pa, len) in &s.dump {
        let next = a.label();
        a.mov_imm(X1, TTBR1_BASE + pa);
        a.mov_imm(X2, (len / 8) as u64);
        a.bind(next);
        a.ldr_post8(X9, X1);
        a.bl(emit);
        a.subs_imm(X2, X2, 1);
        a.b_cond(Cond::Ne, next);
    }
    a.mov_imm(X9, MAGIC_END);
    a.bl(emit);

    // PSCI SYSTEM_OFF: QEMU exits. Spin if it ever returns.
    a.bind(off);
    a.mov_imm(X0, PSCI_SYSTEM_OFF);
    a.hvc(0);
    a.b(off);

    // emit: send x9 to the UART, least significant byte first. Clobbers x9, x11, x12.
    a.bind(emit);
    let poll = a.label();
    a.movz(X11, 8, 0);
    a.bind(poll);
    a.ldr_w(X12, UARTR, UARTFR);
    a.tbnz_w(X12, 5, poll);
    a.strb(X9, UARTR);
    a.lsr(X9, X9, 8);
    a.subs_imm(X11, X11, 1);
    a.b_cond(Cond::Ne, poll);
    a.ret(LR);

    // report: the probe's record — status, value, ESR, FAR.
    a.bind(report);
    a.mov(SAVED_LR, LR);
    for r in [STATUS, X0, ESR, FAR] {
        a.mov(X9, r);
        a.bl(emit);
    }
    a.ret(SAVED_LR);

    // sync: a probe's fault, or the SVC that ends a fetched stub. Record and resume.
    a.bind(sync);
    a.cbz(IN_PROBE, panic);
    a.mrs(ESR, asm::ESR_EL1);
    a.mrs(FAR, asm::FAR_EL1);
    a.lsr(X9, ESR, 26);
    a.subs_imm(XZR, X9, u32::from(esr::EC_SVC64));
    a.cset(STATUS, Cond::Ne);
    a.msr(asm::ELR_EL1, RESUME);
    a.mov_imm(X9, u64::from(SPSR_EL1H) | if s.pan { SPSR_PAN } else { 0 });
    a.msr(asm::SPSR_EL1, X9);
    a.eret();

    // panic: an exception outside a probe. Report vector, ESR, ELR, FAR and stop.
    a.bind(panic);
    a.mov_imm(X9, MAGIC_PANIC);
    a.bl(emit);
    a.mov(X9, X15);
    a.bl(emit);
    for r in [asm::ESR_EL1, asm::ELR_EL1, asm::FAR_EL1] {
        a.mrs(X9, r);
        a.bl(emit);
    }
    a.b(off);

    let bytes: Vec<u8> = a.finish().iter().flat_map(|w| w.to_le_bytes()).collect();
    assert!(
        IMAGE_BASE + bytes.len() as u64 <= RESERVED_END,
        "the program ({} bytes) outgrew the harness's reserved memory",
        bytes.len()
    );
    bytes
}
