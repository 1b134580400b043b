//! The oracle's scenarios as data: each builds its tables by hand as raw descriptors and
//! carries the outcome the Arm ARM (DDI 0487 K.a, chapter D8 "The AArch64 Virtual Memory
//! System Architecture") gives every probe and every descriptor the CPU must write.
//! `tests/arm_oracle.rs` runs them on QEMU; a test of vsva's own walker can run the same
//! [`Cases`] through the walker and compare.
//!
//! Physical layout: tables from [`TABLES`], 4 KiB data pages from [`DATA`], 2 MiB block
//! targets at [`BLOCK_2M`]; 1 GiB blocks map the GiB at [`RAM_BASE`]. Every data page holds
//! distinct words ([`word`]), so a value read names the frame it came from.

use super::expect::{Cases, dabt, iabt, word};
use super::vmsa::{FaultStatus, desc, sctlr, tcr};
use super::{Access, Outcome, RAM_BASE, RESERVED_END, Regs, exec_stub};

use Access::{Fetch, FetchEl0, Read, ReadEl0, Write, WriteEl0};
use FaultStatus::{AccessFlag, AddressSize, Permission, Translation};

/// Translation tables: the `n`-th at `TABLES + n * 4 KiB`.
pub const TABLES: u64 = RESERVED_END + 0x10_0000;
/// 4 KiB data pages: the `n`-th at `DATA + n * 4 KiB`.
pub const DATA: u64 = RESERVED_END + 0x20_0000;
/// A 2 MiB-aligned block target (the next 2 MiB one is `BLOCK_2M + 2 MiB`).
pub const BLOCK_2M: u64 = 0x4060_0000;

pub const fn table(n: u64) -> u64 {
    TABLES + n * 0x1000
}
pub const fn page(n: u64) -> u64 {
    DATA + n * 0x1000
}

/// The virtual address with these table indices (level 0 to 3) and page offset, 4 KiB
/// granule (D8.2 "Translation table walk": VA[47:39], [38:30], [29:21], [20:12]).
pub const fn va(l0: u64, l1: u64, l2: u64, l3: u64, off: u64) -> u64 {
    (l0 << 39) | (l1 << 30) | (l2 << 21) | (l3 << 12) | off
}

/// MAIR_EL1 attribute 0: Normal memory, Inner/Outer Write-Back RW-allocate.
pub const MAIR: u64 = 0xff;
/// Leaf attributes shared by every data mapping: AttrIndx 0, Inner Shareable.
pub const NORMAL: u64 = desc::attr_indx(0) | desc::SH_INNER;

/// Registers for a TTBR0 region of `va_bits` bits, 4 KiB granule, tables at `table(0)`.
pub fn regs(va_bits: u64, extra_tcr: u64) -> Regs {
    Regs {
        ttbr0: table(0),
        tcr: tcr::t0sz(va_bits) | tcr::WALK_WBWA_INNER | tcr::IPS_40 | extra_tcr,
        mair: MAIR,
        sctlr: sctlr::DEFAULT,
    }
}

/// 4 KiB pages, 2 MiB and 1 GiB blocks with `levels` levels of tables (D8.2: with the 4 KiB
/// granule a walk starts at level 0 for T0SZ 16-24 and at level 1 for T0SZ 25-33).
pub fn page_and_block_sizes(levels: u64) -> Cases {
    let va_bits = if levels == 4 { 48 } else { 39 };
    let mut c = Cases::new(regs(va_bits, 0));
    // The level 1 table: table(1), reached through L0[0] with 4 levels, or the root with 3.
    let l1 = if levels == 4 {
        // L0[0] -> level 1 table; bits [1:0] = 0b11 (table), no hierarchical limits.
        c.entry(table(0), 0, table(1) | desc::TABLE);
        table(1)
    } else {
        table(0)
    };
    // L1[0] -> level 2 table.
    c.entry(l1, 0, table(2) | desc::TABLE);
    // L2[0] -> level 3 table.
    c.entry(table(2), 0, table(3) | desc::TABLE);
    // L3[0], L3[1]: 4 KiB pages, bits [1:0] = 0b11, AF = 1, AP[2:1] = 00 (EL1 RW).
    c.entry(table(3), 0, page(0) | desc::PAGE | NORMAL | desc::AF);
    c.entry(table(3), 1, page(1) | desc::PAGE | NORMAL | desc::AF);
    // L2[1]: a 2 MiB block, bits [1:0] = 0b01, OA[47:21].
    c.entry(table(2), 1, BLOCK_2M | desc::BLOCK | NORMAL | desc::AF);
    // L1[1]: a 1 GiB block, OA[47:30] = the GiB of RAM.
    c.entry(l1, 1, RAM_BASE | desc::BLOCK | NORMAL | desc::AF);
    for p in [page(0), page(1), BLOCK_2M + 0x5000, page(2)] {
        c.data(p);
    }
    c.expect(
        "page 0",
        va(0, 0, 0, 0, 0x18),
        Read,
        Outcome::Done(word(page(0) + 0x18)),
    );
    c.expect(
        "page 1",
        va(0, 0, 0, 1, 0xff8),
        Read,
        Outcome::Done(word(page(1) + 0xff8)),
    );
    c.expect(
        "write page 1",
        va(0, 0, 0, 1, 0x10),
        Write(0xabc),
        Outcome::Done(0),
    );
    c.expect(
        "read it back",
        va(0, 0, 0, 1, 0x10),
        Read,
        Outcome::Done(0xabc),
    );
    // A 2 MiB block: OA = block base + VA[20:0].
    c.expect(
        "2M block",
        va(0, 0, 1, 5, 0x28),
        Read,
        Outcome::Done(word(BLOCK_2M + 0x5028)),
    );
    // A 1 GiB block: OA = RAM_BASE + VA[29:0].
    let off = page(2) - RAM_BASE;
    c.expect(
        "1G block",
        va(0, 1, 0, 0, off + 8),
        Read,
        Outcome::Done(word(page(2) + 8)),
    );
    c.expect(
        "write via 1G",
        va(0, 1, 0, 0, off),
        Write(7),
        Outcome::Done(0),
    );
    c.expect("read via page", va(0, 1, 0, 0, off), Read, Outcome::Done(7));
    // The level 3 table's L3[2] is zero: invalid.
    c.expect(
        "hole",
        va(0, 0, 0, 2, 0),
        Read,
        dabt(Translation(3), false, va(0, 0, 0, 2, 0)),
    );
    // Just past the TTBR0 region: a Translation fault at level 0 whatever the start level
    // (D8.2, the input address size check comes before the walk).
    let out = 1 << va_bits;
    c.expect("beyond T0SZ", out, Read, dabt(Translation(0), false, out));
    c
}

/// Invalid descriptors at every level give a Translation fault naming that level (D8.3:
/// bit 0 = 0 is invalid; bits [1:0] = 0b01 is invalid at level 0 with DS = 0 and at level 3;
/// the fault reports the level of the lookup, ESR_EL1 DFSC/IFSC 0b0001LL). An address outside
/// the TTBR0 region faults at level 0 (D8.2, "input address size" check).
pub fn invalid_descriptors(level0_block: bool) -> Cases {
    let mut c = Cases::new(regs(48, 0));
    // L0[0] -> L1 table(1) -> L2 table(2) -> L3 table(3); L0[1] = 0 (invalid).
    c.entry(table(0), 0, table(1) | desc::TABLE);
    // L0[2]: bits [1:0] = 0b01, a block descriptor, which level 0 does not have (DS = 0).
    c.entry(table(0), 2, RAM_BASE | desc::BLOCK | NORMAL | desc::AF);
    c.entry(table(1), 0, table(2) | desc::TABLE);
    // L1[2] = 0.
    c.entry(table(2), 0, table(3) | desc::TABLE);
    // L2[3]: a well-formed block but for bit 0 = 0.
    c.entry(table(2), 3, (BLOCK_2M | NORMAL | desc::AF) & !desc::VALID);
    c.entry(table(3), 0, page(0) | desc::PAGE | NORMAL | desc::AF);
    // L3[4] = 0; L3[5]: bits [1:0] = 0b01, reserved at level 3.
    c.entry(table(3), 5, page(0) | desc::BLOCK | NORMAL | desc::AF);
    c.data(page(0));
    let t = |l: u8, va: u64| dabt(Translation(l), false, va);
    c.expect(
        "valid path",
        va(0, 0, 0, 0, 8),
        Read,
        Outcome::Done(word(page(0) + 8)),
    );
    c.expect(
        "L0 zero",
        va(1, 0, 0, 0, 0x10),
        Read,
        t(0, va(1, 0, 0, 0, 0x10)),
    );
    // Left out where the CPU is known to get it wrong: QEMU before 8.2 (see `harness`).
    if level0_block {
        c.expect("L0 0b01", va(2, 0, 0, 0, 0), Read, t(0, va(2, 0, 0, 0, 0)));
    }
    let w = va(0, 0, 3, 1, 8);
    c.expect("L2 write", w, Write(1), dabt(Translation(2), true, w));
    let r = va(0, 2, 0, 0, 0);
    c.expect("L1 EL0 read", r, ReadEl0, t(1, r));
    let x = va(0, 0, 0, 4, 0x40);
    c.expect("L3 fetch", x, Fetch, iabt(false, Translation(3), x));
    c.expect("L3 EL0 fetch", x, FetchEl0, iabt(true, Translation(3), x));
    // VA[63:48] = 0 but bit 48 set: outside the 2^48-byte TTBR0 region.
    let out = 1 << 48;
    c.expect("beyond T0SZ", out, Read, t(0, out));
    c
}

/// AP[2:1] on pages and blocks (D8.4 "Memory access control", stage 1 data access
/// permissions: 00 EL1 RW / EL0 none, 01 RW / RW, 10 EL1 RO / EL0 none, 11 RO / RO). A
/// denied access is a Permission fault at the level of the leaf (DFSC 0b0011LL); `LDTR` and
/// `STTR` at EL1 are checked against the EL0 column.
pub fn access_permissions() -> Cases {
    let mut c = Cases::new(regs(48, 0));
    c.entry(table(0), 0, table(1) | desc::TABLE);
    c.entry(table(1), 0, table(2) | desc::TABLE);
    c.entry(table(2), 0, table(3) | desc::TABLE);
    let leaf = NORMAL | desc::AF;
    // L3[0..4]: AP[2:1] = 00, 01, 10, 11.
    c.entry(table(3), 0, page(0) | desc::PAGE | leaf);
    c.entry(table(3), 1, page(1) | desc::PAGE | leaf | desc::AP_EL0);
    c.entry(table(3), 2, page(2) | desc::PAGE | leaf | desc::AP_RO);
    c.entry(
        table(3),
        3,
        page(3) | desc::PAGE | leaf | desc::AP_RO | desc::AP_EL0,
    );
    // L2[1]: 2 MiB block, AP = 10. L1[1]: 1 GiB block, AP = 11.
    c.entry(table(2), 1, BLOCK_2M | desc::BLOCK | leaf | desc::AP_RO);
    c.entry(
        table(1),
        1,
        RAM_BASE | desc::BLOCK | leaf | desc::AP_RO | desc::AP_EL0,
    );
    for p in [page(0), page(1), page(2), page(3), BLOCK_2M] {
        c.data(p);
    }
    let done = |pa: u64| Outcome::Done(word(pa));
    let perm = |l: u8, write: bool, va: u64| dabt(Permission(l), write, va);
    let v = |n: u64, off: u64| va(0, 0, 0, n, off);
    // AP = 00.
    c.expect("00 EL1 read", v(0, 0), Read, done(page(0)));
    c.expect("00 EL1 write", v(0, 8), Write(1), Outcome::Done(0));
    c.expect(
        "00 EL0 read",
        v(0, 0x10),
        ReadEl0,
        perm(3, false, v(0, 0x10)),
    );
    c.expect(
        "00 EL0 write",
        v(0, 0x18),
        WriteEl0(2),
        perm(3, true, v(0, 0x18)),
    );
    // AP = 01.
    c.expect("01 EL0 read", v(1, 0), ReadEl0, done(page(1)));
    c.expect("01 EL0 write", v(1, 8), WriteEl0(3), Outcome::Done(0));
    c.expect("01 EL1 write", v(1, 0x10), Write(4), Outcome::Done(0));
    c.expect("01 EL1 read", v(1, 8), Read, Outcome::Done(3));
    // AP = 10.
    c.expect("10 EL1 read", v(2, 0), Read, done(page(2)));
    c.expect("10 EL1 write", v(2, 8), Write(5), perm(3, true, v(2, 8)));
    c.expect(
        "10 EL0 read",
        v(2, 0x10),
        ReadEl0,
        perm(3, false, v(2, 0x10)),
    );
    // AP = 11.
    c.expect("11 EL0 read", v(3, 0), ReadEl0, done(page(3)));
    c.expect("11 EL1 read", v(3, 8), Read, done(page(3) + 8));
    c.expect(
        "11 EL0 write",
        v(3, 0x10),
        WriteEl0(6),
        perm(3, true, v(3, 0x10)),
    );
    c.expect(
        "11 EL1 write",
        v(3, 0x18),
        Write(7),
        perm(3, true, v(3, 0x18)),
    );
    // Blocks.
    let b2 = va(0, 0, 1, 0, 0x40);
    c.expect("2M 10 read", b2, Read, done(BLOCK_2M + 0x40));
    c.expect("2M 10 write", b2, Write(8), perm(2, true, b2));
    let b1 = va(0, 1, 0, 0, page(0) - RAM_BASE);
    c.expect("1G 11 EL0 read", b1, ReadEl0, done(page(0)));
    c.expect("1G 11 write", b1, Write(9), perm(1, true, b1));
    c
}

/// UXN and PXN on instruction fetches (D8.4, stage 1 instruction access permissions): UXN
/// forbids EL0, PXN EL1; a location writable at EL0 is never executable at EL1 (implicit PXN);
/// EL0 may execute a page it cannot read (AP = 10, UXN = 0). Faults are Instruction Aborts,
/// Permission fault at the leaf's level.
pub fn execute_never() -> Cases {
    let mut c = Cases::new(regs(48, 0));
    c.entry(table(0), 0, table(1) | desc::TABLE);
    c.entry(table(1), 0, table(2) | desc::TABLE);
    c.entry(table(2), 0, table(3) | desc::TABLE);
    let ro = NORMAL | desc::AF | desc::AP_RO | desc::AP_EL0;
    let pages = [
        ro,                                          // 0: executable everywhere
        ro | desc::UXN,                              // 1: not at EL0
        ro | desc::PXN,                              // 2: not at EL1
        NORMAL | desc::AF | desc::AP_EL0,            // 3: AP = 01, EL0-writable
        NORMAL | desc::AF | desc::AP_RO | desc::PXN, // 4: AP = 10, EL0 execute-only
    ];
    for (n, &attrs) in pages.iter().enumerate() {
        let n = n as u64;
        c.entry(table(3), n, page(n) | desc::PAGE | attrs);
        c.s.put(page(n) + 0x40, &exec_stub(n as u16 + 1));
    }
    // L2[1]: 2 MiB block, AP = 10, UXN.
    c.entry(
        table(2),
        1,
        BLOCK_2M | desc::BLOCK | NORMAL | desc::AF | desc::AP_RO | desc::UXN,
    );
    c.s.put(BLOCK_2M + 0x1040, &exec_stub(9));
    let x = |n: u64| va(0, 0, 0, n, 0x40);
    let perm = |el0: bool, l: u8, va: u64| iabt(el0, Permission(l), va);
    c.expect("X EL1", x(0), Fetch, Outcome::Done(1));
    c.expect("X EL0", x(0), FetchEl0, Outcome::Done(1));
    c.expect("UXN EL1", x(1), Fetch, Outcome::Done(2));
    c.expect("UXN EL0", x(1), FetchEl0, perm(true, 3, x(1)));
    c.expect("PXN EL1", x(2), Fetch, perm(false, 3, x(2)));
    c.expect("PXN EL0", x(2), FetchEl0, Outcome::Done(3));
    c.expect("EL0-writable EL1", x(3), Fetch, perm(false, 3, x(3)));
    c.expect("EL0-writable EL0", x(3), FetchEl0, Outcome::Done(4));
    c.expect("execute-only EL0", x(4), FetchEl0, Outcome::Done(5));
    c.expect(
        "execute-only EL0 read",
        x(4),
        ReadEl0,
        dabt(Permission(3), false, x(4)),
    );
    let b = va(0, 0, 1, 1, 0x40);
    c.expect("2M UXN EL1", b, Fetch, Outcome::Done(9));
    c.expect("2M UXN EL0", b, FetchEl0, perm(true, 2, b));
    c
}

/// APTable, UXNTable (XNTable) and PXNTable in table descriptors restrict every access below
/// them (D8.4, hierarchical permissions; TCR_EL1.HPD0 = 0): APTable 01 no EL0 access, 10 no
/// writes, 11 both; the fault is a Permission fault at the level of the leaf.
pub fn hierarchical_permissions() -> Cases {
    let mut c = Cases::new(regs(48, 0));
    let rw_all = NORMAL | desc::AF | desc::AP_EL0; // AP = 01
    let ro_all = NORMAL | desc::AF | desc::AP_RO | desc::AP_EL0; // AP = 11
    // L0[0] -> L1 table(1), no restriction. Each L1[n] below leads through a table
    // descriptor carrying one restriction to its own level 2 and level 3 tables, and L3[0]
    // maps page(n).
    c.entry(table(0), 0, table(1) | desc::TABLE);
    let limits = [
        desc::AP_TABLE_NO_EL0,                     // L1[0]: APTable = 01
        desc::AP_TABLE_RO,                         // L1[1]: APTable = 10
        desc::AP_TABLE_NO_EL0 | desc::AP_TABLE_RO, // L1[2]: APTable = 11
        desc::UXN_TABLE,                           // L1[3]: UXNTable
        desc::PXN_TABLE,                           // L1[4]: PXNTable
    ];
    for (n, &limit) in limits.iter().enumerate() {
        let n = n as u64;
        let (l2, l3) = (table(2 + 2 * n), table(3 + 2 * n));
        c.entry(table(1), n, l2 | desc::TABLE | limit);
        c.entry(l2, 0, l3 | desc::TABLE);
        let leaf = if n < 3 { rw_all } else { ro_all };
        c.entry(l3, 0, page(n) | desc::PAGE | leaf);
        c.data(page(n));
        c.s.put(page(n) + 0x80, &exec_stub(n as u16 + 1));
    }
    // L0[1] -> L1 table(12) with APTable = 10; its L1[0] is a 1 GiB block, AP = 00.
    c.entry(table(0), 1, table(12) | desc::TABLE | desc::AP_TABLE_RO);
    c.entry(table(12), 0, RAM_BASE | desc::BLOCK | NORMAL | desc::AF);
    let v = |n: u64, off: u64| va(0, n, 0, 0, off);
    let done = |pa: u64| Outcome::Done(word(pa));
    let perm = |write: bool, va: u64| dabt(Permission(3), write, va);
    c.expect("01 EL0 read", v(0, 0), ReadEl0, perm(false, v(0, 0)));
    c.expect("01 EL0 write", v(0, 8), WriteEl0(1), perm(true, v(0, 8)));
    c.expect("01 EL1 read", v(0, 0x10), Read, done(page(0) + 0x10));
    c.expect("01 EL1 write", v(0, 0x18), Write(2), Outcome::Done(0));
    c.expect("10 EL1 read", v(1, 0), Read, done(page(1)));
    c.expect("10 EL0 read", v(1, 8), ReadEl0, done(page(1) + 8));
    c.expect("10 EL1 write", v(1, 0x10), Write(3), perm(true, v(1, 0x10)));
    c.expect(
        "10 EL0 write",
        v(1, 0x18),
        WriteEl0(4),
        perm(true, v(1, 0x18)),
    );
    c.expect("11 EL1 read", v(2, 0), Read, done(page(2)));
    c.expect("11 EL0 read", v(2, 8), ReadEl0, perm(false, v(2, 8)));
    c.expect("11 EL1 write", v(2, 0x10), Write(5), perm(true, v(2, 0x10)));
    let x = |n: u64| v(n, 0x80);
    c.expect("UXNTable EL1", x(3), Fetch, Outcome::Done(4));
    c.expect(
        "UXNTable EL0",
        x(3),
        FetchEl0,
        iabt(true, Permission(3), x(3)),
    );
    c.expect(
        "PXNTable EL1",
        x(4),
        Fetch,
        iabt(false, Permission(3), x(4)),
    );
    c.expect("PXNTable EL0", x(4), FetchEl0, Outcome::Done(5));
    let b = va(1, 0, 0, 0, page(0) - RAM_BASE + 0x20);
    c.expect("APTable over 1G read", b, Read, done(page(0) + 0x20));
    c.expect(
        "APTable over 1G write",
        b,
        Write(6),
        dabt(Permission(1), true, b),
    );
    c
}

/// The tables of the Access flag and dirty state tests: L0[0] -> L1 table(1) -> L2 table(2)
/// -> L3 table(3), the leaves given as (L3 index, attributes) for page(index), plus L2[1]: a
/// 2 MiB block and L1[1]: a 1 GiB block, both with AF = 0. L2[2] -> L3 table(4) through a
/// table descriptor with APTable = 10, whose L3[0] maps page(8) with `under_ro` attributes.
fn hw_update_tables(extra_tcr: u64, leaves: &[(u64, u64)], under_ro: u64) -> Cases {
    let mut c = Cases::new(regs(48, extra_tcr));
    c.entry(table(0), 0, table(1) | desc::TABLE);
    c.entry(table(1), 0, table(2) | desc::TABLE);
    c.entry(table(2), 0, table(3) | desc::TABLE);
    for &(n, attrs) in leaves {
        c.entry(table(3), n, page(n) | desc::PAGE | NORMAL | attrs);
        c.data(page(n));
        c.s.put(page(n) + 0x80, &exec_stub(n as u16 + 1));
    }
    c.entry(table(2), 1, BLOCK_2M | desc::BLOCK | NORMAL);
    c.entry(table(1), 1, RAM_BASE | desc::BLOCK | NORMAL);
    c.entry(table(2), 2, table(4) | desc::TABLE | desc::AP_TABLE_RO);
    c.entry(table(4), 0, page(8) | desc::PAGE | NORMAL | under_ro);
    c.data(page(8));
    c.data(BLOCK_2M);
    for t in [1, 2, 3, 4] {
        c.s.dump(table(t), 0x1000);
    }
    c
}

/// Without TCR_EL1.HA an access through a descriptor with AF = 0 is an Access flag fault at
/// the descriptor's level (D8.5 "Hardware updates to the translation tables"; DFSC 0b0010LL),
/// which takes priority over a Permission fault (the prioritization of stage 1 faults, D8);
/// the CPU writes nothing.
pub fn access_flag_without_hardware_update() -> Cases {
    // L3[0]: AF = 0, AP = 00. L3[1]: AF = 0, AP = 01.
    let leaves = [(0, 0), (1, desc::AP_EL0)];
    let mut c = hw_update_tables(0, &leaves, 0);
    let v = |n: u64, off: u64| va(0, 0, 0, n, off);
    let af = |l: u8, write: bool, va: u64| dabt(AccessFlag(l), write, va);
    c.expect("read", v(0, 0), Read, af(3, false, v(0, 0)));
    c.expect("write", v(0, 8), Write(1), af(3, true, v(0, 8)));
    c.expect(
        "fetch",
        v(0, 0x80),
        Fetch,
        iabt(false, AccessFlag(3), v(0, 0x80)),
    );
    c.expect(
        "EL0 fetch",
        v(1, 0x80),
        FetchEl0,
        iabt(true, AccessFlag(3), v(1, 0x80)),
    );
    c.expect("EL0 read", v(1, 0), ReadEl0, af(3, false, v(1, 0)));
    // AP = 00 denies EL0, but the Access flag fault comes first.
    c.expect(
        "EL0 read, no EL0 access",
        v(0, 0x10),
        ReadEl0,
        af(3, false, v(0, 0x10)),
    );
    c.expect(
        "2M block",
        va(0, 0, 1, 0, 0),
        Read,
        af(2, false, va(0, 0, 1, 0, 0)),
    );
    c.expect(
        "1G block",
        va(0, 1, 0, 0, 0),
        Read,
        af(1, false, va(0, 1, 0, 0, 0)),
    );
    // Nothing is written: every dumped word stays as loaded.
    c
}

/// With TCR_EL1.HA = HD = 1 (FEAT_HAFDBS; D8.5 "Hardware updates to the translation
/// tables"): an access through a descriptor with AF = 0 sets AF and succeeds; a write through
/// a writable-clean descriptor (DBM = 1, AP[2] = 1) clears AP[2] and succeeds. DBM lifts only
/// the leaf's AP[2]: with DBM = 0, without EL0 access, or under APTable = 10 the write is a
/// Permission fault and nothing is written. Table descriptors are never updated.
pub fn hardware_access_flag_and_dirty_state() -> Cases {
    use desc::{AF, AP_EL0, AP_RO, DBM};
    let leaves = [
        (0, 0),                         // AF = 0, AP = 00
        (1, AF | AP_RO | DBM),          // writable-clean, EL1 only
        (2, AP_RO | DBM),               // AF = 0, writable-clean, only read
        (3, AF | AP_RO),                // read-only, DBM = 0
        (4, AF | AP_RO | AP_EL0 | DBM), // writable-clean at EL0 too (AP = 11)
        (5, AF | AP_RO | DBM),          // writable-clean, no EL0 access, EL0 write
        (6, AP_RO | DBM),               // AF = 0, writable-clean, written
        (7, AP_RO),                     // AF = 0, read-only, fetched
    ];
    let mut c = hw_update_tables(tcr::HA | tcr::HD, &leaves, AF | AP_RO | DBM);
    let v = |n: u64, off: u64| va(0, 0, 0, n, off);
    let done = |pa: u64| Outcome::Done(word(pa));
    let perm = |va: u64| dabt(Permission(3), true, va);
    c.expect("AF=0 read", v(0, 0), Read, done(page(0)));
    c.expect("clean write", v(1, 8), Write(0x11), Outcome::Done(0));
    c.expect("read it back", v(1, 8), Read, Outcome::Done(0x11));
    c.expect("AF=0 clean read", v(2, 0), Read, done(page(2)));
    c.expect("DBM=0 write", v(3, 0), Write(0x33), perm(v(3, 0)));
    c.expect("EL0 clean write", v(4, 0), WriteEl0(0x44), Outcome::Done(0));
    c.expect("EL0 read it back", v(4, 0), ReadEl0, Outcome::Done(0x44));
    c.expect(
        "EL0 write, no EL0 access",
        v(5, 0),
        WriteEl0(0x55),
        perm(v(5, 0)),
    );
    c.expect(
        "AF=0 clean write",
        v(6, 0x10),
        Write(0x66),
        Outcome::Done(0),
    );
    c.expect("AF=0 fetch", v(7, 0x80), Fetch, Outcome::Done(8));
    c.expect(
        "AF=0 2M block",
        va(0, 0, 1, 0, 0x18),
        Read,
        done(BLOCK_2M + 0x18),
    );
    let g = va(0, 1, 0, 0, page(3) - RAM_BASE);
    c.expect("AF=0 1G block", g, Read, done(page(3)));
    let u = va(0, 0, 2, 0, 0x20);
    c.expect("clean under APTable=10", u, Write(0x88), perm(u));
    let l3 = |n: u64| table(3) + 8 * n;
    for (pa, set, clear) in [
        (l3(0), AF, 0),
        (l3(1), 0, AP_RO),
        (l3(2), AF, 0),
        (l3(4), 0, AP_RO),
        (l3(6), AF, AP_RO),
        (l3(7), AF, 0),
        (table(2) + 8, AF, 0),
        (table(1) + 8, AF, 0),
    ] {
        let was = c.s.initial_u64(pa);
        c.cpu_writes(pa, (was | set) & !clear);
    }
    c
}

/// With HA = 1 and HD = 0 the dirty state is not managed: DBM is ignored, so a write to a
/// descriptor with AP[2] = 1 is a Permission fault and nothing is written (D8.5); AF is still
/// set by reads.
pub fn dirty_bit_modifier_without_hd() -> Cases {
    use desc::{AF, AP_RO, DBM};
    let leaves = [(0, AF | AP_RO | DBM), (1, AP_RO | DBM)];
    let mut c = hw_update_tables(tcr::HA, &leaves, AF | AP_RO | DBM);
    let v = |n: u64, off: u64| va(0, 0, 0, n, off);
    c.expect(
        "write",
        v(0, 8),
        Write(1),
        dabt(Permission(3), true, v(0, 8)),
    );
    c.expect("read", v(0, 8), Read, Outcome::Done(word(page(0) + 8)));
    c.expect("AF=0 read", v(1, 0), Read, Outcome::Done(word(page(1))));
    let l3 = table(3) + 8;
    let was = c.s.initial_u64(l3);
    c.cpu_writes(l3, was | AF);
    c
}

/// An output address or next-level table address with bits set at or above the IPS
/// (TCR_EL1.IPS = 0b000: 32 bits) is an Address size fault at the level of the descriptor
/// holding it (D8.2, "output address size"; DFSC 0b0000LL).
pub fn output_address_beyond_ips() -> Cases {
    let mut r = regs(48, 0);
    r.tcr = (r.tcr & !tcr::ips(7)) | tcr::IPS_32;
    let mut c = Cases::new(r);
    let far = 1 << 32;
    let leaf = NORMAL | desc::AF | desc::AP_RO;
    c.entry(table(0), 0, table(1) | desc::TABLE);
    // L0[1]: a table at 4 GiB.
    c.entry(table(0), 1, far | desc::TABLE);
    c.entry(table(1), 0, table(2) | desc::TABLE);
    // L1[1]: 1 GiB block at 4 GiB; L1[2]: a table at 4 GiB.
    c.entry(table(1), 1, far | desc::BLOCK | leaf);
    c.entry(table(1), 2, far | desc::TABLE);
    c.entry(table(2), 0, table(3) | desc::TABLE);
    // L2[1]: 2 MiB block at 4 GiB.
    c.entry(table(2), 1, far | desc::BLOCK | leaf);
    // L3[0]: page(0), within 32 bits; L3[1]: the page at 4 GiB.
    c.entry(table(3), 0, page(0) | desc::PAGE | leaf);
    c.entry(table(3), 1, far | desc::PAGE | leaf);
    c.data(page(0));
    let size = |l: u8, va: u64| dabt(AddressSize(l), false, va);
    c.expect(
        "in range",
        va(0, 0, 0, 0, 8),
        Read,
        Outcome::Done(word(page(0) + 8)),
    );
    c.expect("page", va(0, 0, 0, 1, 8), Read, size(3, va(0, 0, 0, 1, 8)));
    let x = va(0, 0, 0, 1, 0x40);
    c.expect("page fetch", x, Fetch, iabt(false, AddressSize(3), x));
    c.expect(
        "2M block",
        va(0, 0, 1, 0, 0),
        Read,
        size(2, va(0, 0, 1, 0, 0)),
    );
    c.expect(
        "1G block",
        va(0, 1, 0, 0, 0),
        Read,
        size(1, va(0, 1, 0, 0, 0)),
    );
    c.expect(
        "L1 table",
        va(0, 2, 0, 0, 0),
        Read,
        size(1, va(0, 2, 0, 0, 0)),
    );
    c.expect(
        "L0 table",
        va(1, 0, 0, 0, 0),
        Read,
        size(0, va(1, 0, 0, 0, 0)),
    );
    let w = va(0, 0, 0, 1, 0x10);
    c.expect("page write", w, Write(1), dabt(AddressSize(3), true, w));
    c
}

/// SCTLR_EL1.WXN = 1: a location writable at an Exception level is execute-never at that
/// level. The Arm ARM's stage 1 permission pseudocode (D8.4, instruction access permissions)
/// makes it per level: EL0 loses execution where EL0 may
/// write (UXN or (EL0 write and WXN)), EL1 where EL1 may write (PXN or (EL1 write and WXN) or
/// EL0 write). So an EL1-only writable page stays executable at EL0.
pub fn write_implies_execute_never() -> Cases {
    let mut r = regs(48, 0);
    r.sctlr |= sctlr::WXN;
    let mut c = Cases::new(r);
    c.entry(table(0), 0, table(1) | desc::TABLE);
    c.entry(table(1), 0, table(2) | desc::TABLE);
    c.entry(table(2), 0, table(3) | desc::TABLE);
    let pages = [
        NORMAL | desc::AF,                              // 0: AP = 00, EL1-writable
        NORMAL | desc::AF | desc::AP_RO | desc::AP_EL0, // 1: AP = 11, read-only
        NORMAL | desc::AF | desc::AP_EL0 | desc::PXN,   // 2: AP = 01, EL0-writable
    ];
    for (n, &attrs) in pages.iter().enumerate() {
        let n = n as u64;
        c.entry(table(3), n, page(n) | desc::PAGE | attrs);
        c.s.put(page(n) + 0x40, &exec_stub(n as u16 + 1));
    }
    let x = |n: u64| va(0, 0, 0, n, 0x40);
    let perm = |el0: bool, n: u64| iabt(el0, Permission(3), x(n));
    c.expect("EL1-writable EL1", x(0), Fetch, perm(false, 0));
    c.expect("EL1-writable EL0", x(0), FetchEl0, Outcome::Done(1));
    c.expect("read-only EL1", x(1), Fetch, Outcome::Done(2));
    c.expect("read-only EL0", x(1), FetchEl0, Outcome::Done(2));
    c.expect("EL0-writable EL0", x(2), FetchEl0, perm(true, 2));
    c
}

/// PSTATE.PAN = 1 (FEAT_PAN; D8.4 "Memory access control", Privileged access never): a
/// privileged data access — `LDR`/`STR` at EL1 — to a location EL0 can access is a Permission
/// fault at the leaf's level, whatever AP[2]. In the stage 1 permission pseudocode
/// (`AArch64.S1DirectBasePermissions`) "EL0 can access" is `ur OR uw` after the hierarchical
/// controls, so APTable[0] = 1 above an AP = 01 page lifts PAN there. Unprivileged accesses
/// (`LDTR`/`STTR` at EL1) and instruction fetches are not PAN's business.
pub fn privileged_access_never() -> Cases {
    let mut c = Cases::new(regs(48, 0));
    c.s.pan = true;
    c.entry(table(0), 0, table(1) | desc::TABLE);
    c.entry(table(1), 0, table(2) | desc::TABLE);
    c.entry(table(2), 0, table(3) | desc::TABLE);
    let leaf = NORMAL | desc::AF;
    let pages = [
        leaf,                              // 0: AP = 00, EL1 only
        leaf | desc::AP_EL0,               // 1: AP = 01, EL0 RW
        leaf | desc::AP_RO | desc::AP_EL0, // 2: AP = 11, EL0 RO
    ];
    for (n, &attrs) in pages.iter().enumerate() {
        let n = n as u64;
        c.entry(table(3), n, page(n) | desc::PAGE | attrs);
        c.data(page(n));
        c.s.put(page(n) + 0x80, &exec_stub(n as u16 + 1));
    }
    // L1[1] -> table(4) with APTable = 01 (no EL0 access below) -> table(5) -> page(3), AP = 01.
    c.entry(table(1), 1, table(4) | desc::TABLE | desc::AP_TABLE_NO_EL0);
    c.entry(table(4), 0, table(5) | desc::TABLE);
    c.entry(table(5), 0, page(3) | desc::PAGE | leaf | desc::AP_EL0);
    c.data(page(3));
    let v = |n: u64, off: u64| va(0, 0, 0, n, off);
    let done = |pa: u64| Outcome::Done(word(pa));
    let perm = |write: bool, va: u64| dabt(Permission(3), write, va);
    c.expect("00 EL1 read", v(0, 0), Read, done(page(0)));
    c.expect("00 EL1 write", v(0, 8), Write(1), Outcome::Done(0));
    c.expect("01 EL1 read", v(1, 0), Read, perm(false, v(1, 0)));
    c.expect("01 EL1 write", v(1, 8), Write(2), perm(true, v(1, 8)));
    c.expect("01 EL0 read", v(1, 0x10), ReadEl0, done(page(1) + 0x10));
    c.expect("01 EL0 write", v(1, 0x18), WriteEl0(3), Outcome::Done(0));
    c.expect("01 EL0 read it back", v(1, 0x18), ReadEl0, Outcome::Done(3));
    c.expect("11 EL1 read", v(2, 0), Read, perm(false, v(2, 0)));
    c.expect("11 EL0 read", v(2, 8), ReadEl0, done(page(2) + 8));
    c.expect("11 EL1 fetch", v(2, 0x80), Fetch, Outcome::Done(3));
    let u = va(0, 1, 0, 0, 0x20);
    c.expect(
        "01 under APTable=01 EL1 read",
        u,
        Read,
        done(page(3) + 0x20),
    );
    c.expect(
        "01 under APTable=01 EL1 write",
        u,
        Write(4),
        Outcome::Done(0),
    );
    c.expect("01 under APTable=01 EL0 read", u, ReadEl0, perm(false, u));
    c
}

/// Every scenario, named. `level0_block`: include the level 0 block probe (see
/// [`invalid_descriptors`]).
pub fn all(level0_block: bool) -> Vec<(&'static str, Cases)> {
    vec![
        ("page_and_block_sizes_48", page_and_block_sizes(4)),
        ("page_and_block_sizes_39", page_and_block_sizes(3)),
        ("invalid_descriptors", invalid_descriptors(level0_block)),
        ("access_permissions", access_permissions()),
        ("execute_never", execute_never()),
        ("write_implies_execute_never", write_implies_execute_never()),
        ("hierarchical_permissions", hierarchical_permissions()),
        (
            "access_flag_without_hardware_update",
            access_flag_without_hardware_update(),
        ),
        (
            "hardware_access_flag_and_dirty_state",
            hardware_access_flag_and_dirty_state(),
        ),
        (
            "dirty_bit_modifier_without_hd",
            dirty_bit_modifier_without_hd(),
        ),
        ("output_address_beyond_ips", output_address_beyond_ips()),
        ("privileged_access_never", privileged_access_never()),
    ]
}
