//! A tiny AArch64 encoder: one method per instruction form the oracle program uses, so the
//! program is built in Rust at test time and no assembler is needed.
//!
//! Each method's doc gives the base opcode's class in the Arm ARM (DDI 0487, chapter C6, "A64
//! Base Instruction Descriptions"); the test `encodings_match_the_arm_arm` below checks every
//! form against the word an assembler gives for the same mnemonic.

/// A general-purpose register number (0..=30; 31 is XZR or SP depending on the form).
pub type Reg = u32;

/// The zero register in forms where 31 means XZR.
pub const XZR: Reg = 31;

/// A branch target, bound to a position with [`Asm::bind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label(usize);

/// How a label's offset goes into an instruction.
#[derive(Debug, Clone, Copy)]
enum Fix {
    /// `B`, `BL`: imm26 at [25:0], in words.
    Imm26,
    /// `B.cond`, `CBZ`, `CBNZ`: imm19 at [23:5], in words.
    Imm19,
    /// `TBZ`, `TBNZ`: imm14 at [18:5], in words.
    Imm14,
    /// `ADR`: immlo at [30:29], immhi at [23:5], in bytes.
    Adr,
}

/// A system register as (op0, op1, CRn, CRm, op2) (Arm ARM D19 "AArch64 System Register
/// Descriptions"; the encoding of `MSR`/`MRS` is in C5.3 "A64 System instructions").
#[derive(Debug, Clone, Copy)]
pub struct SysReg(u32, u32, u32, u32, u32);

pub const SCTLR_EL1: SysReg = SysReg(3, 0, 1, 0, 0);
pub const TTBR0_EL1: SysReg = SysReg(3, 0, 2, 0, 0);
pub const TTBR1_EL1: SysReg = SysReg(3, 0, 2, 0, 1);
pub const TCR_EL1: SysReg = SysReg(3, 0, 2, 0, 2);
pub const SPSR_EL1: SysReg = SysReg(3, 0, 4, 0, 0);
pub const ELR_EL1: SysReg = SysReg(3, 0, 4, 0, 1);
pub const ESR_EL1: SysReg = SysReg(3, 0, 5, 2, 0);
pub const FAR_EL1: SysReg = SysReg(3, 0, 6, 0, 0);
pub const MAIR_EL1: SysReg = SysReg(3, 0, 10, 2, 0);
pub const VBAR_EL1: SysReg = SysReg(3, 0, 12, 0, 0);
pub const ID_AA64MMFR0_EL1: SysReg = SysReg(3, 0, 0, 7, 0);
pub const ID_AA64MMFR1_EL1: SysReg = SysReg(3, 0, 0, 7, 1);
pub const ID_AA64MMFR2_EL1: SysReg = SysReg(3, 0, 0, 7, 2);

/// Condition codes (C1.2.4).
#[derive(Debug, Clone, Copy)]
pub enum Cond {
    Eq = 0,
    Ne = 1,
}

/// An instruction stream with labels; [`Asm::finish`] patches the branch offsets.
#[derive(Debug, Default)]
pub struct Asm {
    words: Vec<u32>,
    /// Word index each label is bound to.
    bound: Vec<Option<usize>>,
    fixups: Vec<(usize, Label, Fix)>,
}

impl Asm {
    pub fn new() -> Self {
        Self::default()
    }

    /// Current position in bytes from the start of the stream.
    pub fn pos(&self) -> u64 {
        self.words.len() as u64 * 4
    }

    pub fn label(&mut self) -> Label {
        self.bound.push(None);
        Label(self.bound.len() - 1)
    }

    pub fn bind(&mut self, l: Label) {
        assert!(self.bound[l.0].is_none(), "label bound twice");
        self.bound[l.0] = Some(self.words.len());
    }

    /// Pads with zero words (permanently undefined) to a multiple of `bytes`.
    pub fn align(&mut self, bytes: u64) {
        while self.pos() % bytes != 0 {
            self.words.push(0);
        }
    }

    /// A raw word (data, or an instruction the caller encoded).
    pub fn word(&mut self, w: u32) {
        self.words.push(w);
    }

    fn fix(&mut self, base: u32, l: Label, f: Fix) {
        self.fixups.push((self.words.len(), l, f));
        self.words.push(base);
    }

    /// The words, with every label reference resolved.
    ///
    /// # Panics
    /// If a label is referenced but never bound, or an offset does not fit its field.
    pub fn finish(mut self) -> Vec<u32> {
        for &(at, l, f) in &self.fixups {
            let to = self.bound[l.0].expect("label referenced but never bound");
            let words = to as i64 - at as i64;
            let (bits, value) = match f {
                Fix::Imm26 => (26, words),
                Fix::Imm19 => (19, words),
                Fix::Imm14 => (14, words),
                Fix::Adr => (21, words * 4),
            };
            assert!(
                value >= -(1 << (bits - 1)) && value < (1 << (bits - 1)),
                "branch offset {value} does not fit {bits} bits"
            );
            let v = (value as u32) & ((1 << bits) - 1);
            self.words[at] |= match f {
                Fix::Imm26 => v,
                Fix::Imm19 | Fix::Imm14 => v << 5,
                Fix::Adr => ((v & 3) << 29) | ((v >> 2) << 5),
            };
        }
        self.words
    }

    // Moves (C6.2 MOVZ, MOVK, MOV (register) = ORR shifted register).

    /// `MOVZ Xd, #imm16, LSL #(16*hw)`.
    pub fn movz(&mut self, rd: Reg, imm16: u16, hw: u32) {
        self.word(0xd280_0000 | (hw << 21) | (u32::from(imm16) << 5) | rd);
    }

    /// `MOVK Xd, #imm16, LSL #(16*hw)`.
    pub fn movk(&mut self, rd: Reg, imm16: u16, hw: u32) {
        self.word(0xf280_0000 | (hw << 21) | (u32::from(imm16) << 5) | rd);
    }

    /// Any 64-bit constant: `MOVZ` of the low half-word, then `MOVK` of each non-zero one.
    pub fn mov_imm(&mut self, rd: Reg, v: u64) {
        self.movz(rd, v as u16, 0);
        for hw in 1..4 {
            let part = (v >> (16 * hw)) as u16;
            if part != 0 {
                self.movk(rd, part, hw);
            }
        }
    }

    /// `MOV Xd, Xm` (`ORR Xd, XZR, Xm`).
    pub fn mov(&mut self, rd: Reg, rm: Reg) {
        self.word(0xaa00_03e0 | (rm << 16) | rd);
    }

    // Arithmetic (C6.2 ADD/SUBS immediate, ADD shifted register, UBFM, CSINC).

    /// `ADD Xd, Xn, Xm`.
    pub fn add(&mut self, rd: Reg, rn: Reg, rm: Reg) {
        self.word(0x8b00_0000 | (rm << 16) | (rn << 5) | rd);
    }

    /// `SUBS Xd, Xn, #imm12` (`CMP Xn, #imm` when `rd` is XZR).
    pub fn subs_imm(&mut self, rd: Reg, rn: Reg, imm12: u32) {
        assert!(imm12 < 4096);
        self.word(0xf100_0000 | (imm12 << 10) | (rn << 5) | rd);
    }

    /// `LSR Xd, Xn, #shift` (`UBFM Xd, Xn, #shift, #63`).
    pub fn lsr(&mut self, rd: Reg, rn: Reg, shift: u32) {
        assert!(shift < 64);
        self.word(0xd340_fc00 | (shift << 16) | (rn << 5) | rd);
    }

    /// `CSET Xd, cond` (`CSINC Xd, XZR, XZR, invert(cond)`).
    pub fn cset(&mut self, rd: Reg, cond: Cond) {
        self.word(0x9a9f_07e0 | (((cond as u32) ^ 1) << 12) | rd);
    }

    // Loads and stores (C6.2 LDR/STR immediate, STRB, LDTR, STTR).

    /// `LDR Xt, [Xn, #off]` (unsigned offset, a multiple of 8).
    pub fn ldr(&mut self, rt: Reg, rn: Reg, off: u32) {
        assert!(off % 8 == 0 && off / 8 < 4096);
        self.word(0xf940_0000 | ((off / 8) << 10) | (rn << 5) | rt);
    }

    /// `LDR Xt, [Xn], #8` (post-index).
    pub fn ldr_post8(&mut self, rt: Reg, rn: Reg) {
        self.word(0xf840_0400 | (8 << 12) | (rn << 5) | rt);
    }

    /// `STR Xt, [Xn]`.
    pub fn str(&mut self, rt: Reg, rn: Reg) {
        self.word(0xf900_0000 | (rn << 5) | rt);
    }

    /// `LDR Wt, [Xn, #off]` (unsigned offset, a multiple of 4).
    pub fn ldr_w(&mut self, rt: Reg, rn: Reg, off: u32) {
        assert!(off % 4 == 0 && off / 4 < 4096);
        self.word(0xb940_0000 | ((off / 4) << 10) | (rn << 5) | rt);
    }

    /// `STR Wt, [Xn, #off]` (unsigned offset, a multiple of 4).
    pub fn str_w(&mut self, rt: Reg, rn: Reg, off: u32) {
        assert!(off % 4 == 0 && off / 4 < 4096);
        self.word(0xb900_0000 | ((off / 4) << 10) | (rn << 5) | rt);
    }

    /// `STRB Wt, [Xn]`.
    pub fn strb(&mut self, rt: Reg, rn: Reg) {
        self.word(0x3900_0000 | (rn << 5) | rt);
    }

    /// `LDTR Xt, [Xn]`: a load with EL0's permissions when executed at EL1 (PSTATE.UAO = 0).
    pub fn ldtr(&mut self, rt: Reg, rn: Reg) {
        self.word(0xf840_0800 | (rn << 5) | rt);
    }

    /// `STTR Xt, [Xn]`: a store with EL0's permissions when executed at EL1.
    pub fn sttr(&mut self, rt: Reg, rn: Reg) {
        self.word(0xf800_0800 | (rn << 5) | rt);
    }

    // Branches (C6.2 B, BL, B.cond, CBZ, TBNZ, BR, BLR, RET, ADR).

    /// `B label`.
    pub fn b(&mut self, l: Label) {
        self.fix(0x1400_0000, l, Fix::Imm26);
    }

    /// `BL label`.
    pub fn bl(&mut self, l: Label) {
        self.fix(0x9400_0000, l, Fix::Imm26);
    }

    /// `B.cond label`.
    pub fn b_cond(&mut self, cond: Cond, l: Label) {
        self.fix(0x5400_0000 | cond as u32, l, Fix::Imm19);
    }

    /// `CBZ Xt, label`.
    pub fn cbz(&mut self, rt: Reg, l: Label) {
        self.fix(0xb400_0000 | rt, l, Fix::Imm19);
    }

    /// `TBNZ Wt, #bit, label` (bit < 32).
    pub fn tbnz_w(&mut self, rt: Reg, bit: u32, l: Label) {
        assert!(bit < 32);
        self.fix(0x3700_0000 | (bit << 19) | rt, l, Fix::Imm14);
    }

    /// `ADR Xd, label`: PC-relative, so it yields the label's address in whatever alias of
    /// the program the CPU is running in.
    pub fn adr(&mut self, rd: Reg, l: Label) {
        self.fix(0x1000_0000 | rd, l, Fix::Adr);
    }

    /// `BR Xn`.
    pub fn br(&mut self, rn: Reg) {
        self.word(0xd61f_0000 | (rn << 5));
    }

    /// `BLR Xn`.
    pub fn blr(&mut self, rn: Reg) {
        self.word(0xd63f_0000 | (rn << 5));
    }

    /// `RET Xn`.
    pub fn ret(&mut self, rn: Reg) {
        self.word(0xd65f_0000 | (rn << 5));
    }

    // Exceptions and system instructions (C6.2 SVC, HVC, ERET, MSR, MRS, ISB, DSB, TLBI).

    /// `SVC #imm16`.
    pub fn svc(&mut self, imm16: u16) {
        self.word(svc(imm16));
    }

    /// `HVC #imm16`.
    pub fn hvc(&mut self, imm16: u16) {
        self.word(0xd400_0002 | (u32::from(imm16) << 5));
    }

    /// `ERET`.
    pub fn eret(&mut self) {
        self.word(0xd69f_03e0);
    }

    /// `MSR <sysreg>, Xt`.
    pub fn msr(&mut self, r: SysReg, rt: Reg) {
        self.word(0xd500_0000 | sysreg_bits(r) | rt);
    }

    /// `MRS Xt, <sysreg>`.
    pub fn mrs(&mut self, rt: Reg, r: SysReg) {
        self.word(0xd520_0000 | sysreg_bits(r) | rt);
    }

    /// `MSR DAIFSet, #0xf`: masks debug, SError, IRQ and FIQ.
    pub fn mask_all(&mut self) {
        self.word(0xd503_4fdf);
    }

    /// `MSR PAN, #0`: EL1 may access EL0-accessible memory (FEAT_PAN, D8.4.2).
    pub fn clear_pan(&mut self) {
        self.word(0xd500_409f);
    }

    /// `MSR PAN, #1`: privileged data accesses to EL0-accessible memory fault (FEAT_PAN).
    pub fn set_pan(&mut self) {
        self.word(0xd500_419f);
    }

    /// `MSR UAO, #0`: `LDTR`/`STTR` at EL1 check EL0 permissions (FEAT_UAO).
    pub fn clear_uao(&mut self) {
        self.word(0xd500_407f);
    }

    /// `ISB`.
    pub fn isb(&mut self) {
        self.word(0xd503_3fdf);
    }

    /// `DSB ISH`.
    pub fn dsb_ish(&mut self) {
        self.word(0xd503_3b9f);
    }

    /// `TLBI VMALLE1`: every stage 1 EL1&0 entry of this PE.
    pub fn tlbi_vmalle1(&mut self) {
        self.word(0xd508_871f);
    }
}

/// The (op0, op1, CRn, CRm, op2) fields at their positions in `MSR`/`MRS`.
fn sysreg_bits(SysReg(op0, op1, crn, crm, op2): SysReg) -> u32 {
    ((op0 & 3) << 19) | (op1 << 16) | (crn << 12) | (crm << 8) | (op2 << 5)
}

/// `MOVZ X0, #imm16` as a word, for code a test places in its own pages.
pub const fn movz_x0(imm16: u16) -> u32 {
    0xd280_0000 | ((imm16 as u32) << 5)
}

/// `SVC #imm16` as a word.
pub const fn svc(imm16: u16) -> u32 {
    0xd400_0001 | ((imm16 as u32) << 5)
}

#[cfg(test)]
mod tests {
    use super::{self as asm, Asm, Cond};

    #[test]
    fn encodings_match_the_arm_arm() {
        // Words an assembler gives for the same instructions (C6.2).
        let mut a = Asm::new();
        let l = a.label();
        a.bind(l);
        a.movz(0, 0x1234, 0); // mov x0, #0x1234
        a.movk(0, 0x8400, 1); // movk x0, #0x8400, lsl #16
        a.mov(27, 30); // mov x27, x30
        a.add(9, 9, 10); // add x9, x9, x10
        a.subs_imm(31, 9, 0x15); // cmp x9, #0x15
        a.lsr(9, 21, 26); // lsr x9, x21, #26
        a.cset(20, Cond::Ne); // cset x20, ne
        a.ldr_post8(9, 1); // ldr x9, [x1], #8
        a.ldr_w(12, 25, 0x18); // ldr w12, [x25, #0x18]
        a.str_w(9, 25, 0x30); // str w9, [x25, #0x30]
        a.strb(9, 25); // strb w9, [x25]
        a.ldtr(0, 1); // ldtr x0, [x1]
        a.sttr(2, 1); // sttr x2, [x1]
        a.blr(1); // blr x1
        a.br(9); // br x9
        a.ret(27); // ret x27
        a.eret(); // eret
        a.hvc(0); // hvc #0
        a.svc(0); // svc #0
        a.mrs(21, asm::ESR_EL1); // mrs x21, esr_el1
        a.mrs(22, asm::FAR_EL1); // mrs x22, far_el1
        a.mrs(9, asm::ID_AA64MMFR1_EL1); // mrs x9, id_aa64mmfr1_el1
        a.msr(asm::SCTLR_EL1, 9); // msr sctlr_el1, x9
        a.msr(asm::TCR_EL1, 9); // msr tcr_el1, x9
        a.msr(asm::TTBR1_EL1, 9); // msr ttbr1_el1, x9
        a.msr(asm::MAIR_EL1, 9); // msr mair_el1, x9
        a.msr(asm::VBAR_EL1, 9); // msr vbar_el1, x9
        a.msr(asm::ELR_EL1, 28); // msr elr_el1, x28
        a.mask_all(); // msr daifset, #0xf
        a.clear_pan(); // msr pan, #0
        a.clear_uao(); // msr uao, #0
        a.tlbi_vmalle1(); // tlbi vmalle1
        a.dsb_ish(); // dsb ish
        a.isb(); // isb
        a.ldr(0, 1, 0); // ldr x0, [x1]
        a.str(2, 1); // str x2, [x1]
        // Label forms, back to the first instruction (offsets in bytes).
        a.b(l); // b #-144
        a.b_cond(Cond::Ne, l); // b.ne #-148
        a.cbz(26, l); // cbz x26, #-152
        a.tbnz_w(12, 5, l); // tbnz w12, #5, #-156
        a.bl(l); // bl #-160
        a.adr(28, l); // adr x28, #-164
        a.set_pan(); // msr pan, #1
        assert_eq!(
            a.finish(),
            [
                0xd282_4680,
                0xf2b0_8000,
                0xaa1e_03fb,
                0x8b0a_0129,
                0xf100_553f,
                0xd35a_fea9,
                0x9a9f_07f4,
                0xf840_8429,
                0xb940_1b2c,
                0xb900_3329,
                0x3900_0329,
                0xf840_0820,
                0xf800_0822,
                0xd63f_0020,
                0xd61f_0120,
                0xd65f_0360,
                0xd69f_03e0,
                0xd400_0002,
                0xd400_0001,
                0xd538_5215,
                0xd538_6016,
                0xd538_0729,
                0xd518_1009,
                0xd518_2049,
                0xd518_2029,
                0xd518_a209,
                0xd518_c009,
                0xd518_403c,
                0xd503_4fdf,
                0xd500_409f,
                0xd500_407f,
                0xd508_871f,
                0xd503_3b9f,
                0xd503_3fdf,
                0xf940_0020,
                0xf900_0022,
                0x1400_0000 | (-36i32 as u32 & 0x03ff_ffff),
                0x54ff_fb61,
                0xb4ff_fb5a,
                0x372f_fb2c,
                0x97ff_ffd8,
                0x10ff_fafc,
                0xd500_419f,
            ]
        );
    }
}
