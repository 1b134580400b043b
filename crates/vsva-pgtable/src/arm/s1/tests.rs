//! Stage-1 descriptors and rights, with values worked out from DDI 0487 D8.

use super::*;
use crate::arm::{ATTR_INDX, CONTIGUOUS, NS_TABLE, attr_index, non_global};

const EL0_R: Access = Access::READ;
const EL0_W: Access = Access::READ.union(Access::WRITE);
const EL0_X: Access = Access::READ.union(Access::EXEC);
const EL1_R: Access = EL0_R.union(Access::PRIV);
const EL1_W: Access = EL0_W.union(Access::PRIV);
const EL1_X: Access = EL0_X.union(Access::PRIV);

/// A 48-bit stage 1 without hardware flag updates.
fn s1() -> ArmS1 {
    ArmS1::with_va_bits(48)
}

/// A valid page descriptor at 0x5000 with AF and the given extra bits.
fn page(bits: u64) -> u64 {
    0x5000 | VALID | TABLE | AF | bits
}

#[test]
fn tsz_sets_the_start_level_and_the_root_index_width() {
    // (TxSZ, vsva levels = 4 - Arm start level, root index bits)
    for (tsz, levels, bits) in [
        (16, 4, 9), // 48-bit: level 0 start, 512 entries
        (24, 4, 1), // 40-bit: level 0 start, 2 entries
        (25, 3, 9), // 39-bit: level 1 start
        (33, 3, 1), // 31-bit: level 1 start, 2 entries
        (34, 2, 9), // 30-bit: level 2 start
        (39, 2, 4), // 25-bit: level 2 start, 16 entries
    ] {
        let f = ArmS1 { tsz, ..s1() };
        assert_eq!(
            (f.levels(), f.root_index_bits()),
            (levels, bits),
            "TxSZ {tsz}"
        );
    }
    for tsz in [0, 15, 40, 64] {
        let f = ArmS1 { tsz, ..s1() };
        assert_eq!(
            f.levels(),
            0,
            "TxSZ {tsz} is outside 16..=39 for the 4 KiB granule"
        );
        assert!(!f.input_ok(0));
    }
}

#[test]
fn the_ttbr0_range_has_zero_top_bits_and_the_ttbr1_range_ones() {
    let lower = s1();
    assert!(lower.input_ok(0) && lower.input_ok(0xffff_ffff_ffff));
    assert!(!lower.input_ok(1 << 48));
    assert!(!lower.input_ok(0xffff_0000_0000_0000));
    let upper = ArmS1 {
        upper: true,
        ..s1()
    };
    assert!(upper.input_ok(0xffff_0000_0000_0000) && upper.input_ok(u64::MAX));
    assert!(!upper.input_ok(0xfffe_ffff_ffff_f000));
    assert!(!upper.input_ok(0));
    assert_eq!(upper.canonical(0x1000), 0xffff_0000_0000_1000);
    assert_eq!(lower.canonical(0x1000), 0x1000);
    let narrow = ArmS1 {
        tsz: 25,
        upper: true,
        ..s1()
    };
    assert!(narrow.input_ok(0xffff_ff80_0000_0000));
    assert!(!narrow.input_ok(0xffff_ff7f_ffff_f000));
}

#[test]
fn encode_page_block_and_table_descriptors() {
    // The Linux default: HA+HD (writable leaves get DBM), nG.
    let linux = ArmS1::default();
    // 4 KiB user RW page at 0x1234_5000: bits 1:0 = 11, AP[1] 0x40, SH 0x300, AF 0x400,
    // nG 0x800, DBM (bit 51), PXN (53), UXN (54).
    assert_eq!(
        linux.encode_leaf(0x1234_5000, PageSize::Size4K, Perm::USER_RW),
        0x0068_0000_1234_5f43
    );
    // User code: UXN clear, PXN set, read-only (AP = 11), no DBM.
    assert_eq!(
        linux.encode_leaf(
            0x1234_5000,
            PageSize::Size4K,
            Perm::READ | Perm::USER | Perm::EXEC
        ),
        0x0020_0000_1234_5fc3
    );
    // 2 MiB kernel read-only code block, global, no hardware updates: bits 1:0 = 01, AP[2]
    // 0x80, UXN.
    let kernel = ArmS1 {
        non_global: false,
        ..s1()
    };
    assert_eq!(
        kernel.encode_leaf(0x4020_0000, PageSize::Size2M, Perm::READ | Perm::PRIV_EXEC),
        0x0040_0000_4020_0781
    );
    // 1 GiB block, kernel RW data: AP = 00, UXN and PXN.
    assert_eq!(
        kernel.encode_leaf(0xc000_0000, PageSize::Size1G, Perm::RW),
        0x0060_0000_c000_0701
    );
    assert_eq!(linux.encode_table(0x7000), 0x7003);
    assert_eq!(linux.table_addr(0xf800_0000_0000_7003), 0x7000);
    assert_eq!(
        linux.page_addr(0x0068_0000_4020_0f41, PageSize::Size2M),
        0x4020_0000
    );
    assert!(non_global(0x0068_0000_1234_5f43));
    assert_eq!(attr_index(0x7 << 2 | 1), 7);
    assert_eq!(ATTR_INDX, 0x1c);
}

#[test]
fn bit_1_tells_tables_from_blocks_and_level_3_has_only_pages() {
    let f = s1();
    assert!(!f.is_leaf(0x3, 4) && !f.is_leaf(0x3, 3) && !f.is_leaf(0x3, 2));
    assert!(f.is_leaf(0x1, 3) && f.is_leaf(0x1, 2));
    assert!(f.is_leaf(0x3, 1));
    // A block at Arm level 0 and bits 1:0 = 01 at level 3 are Translation faults.
    assert_eq!(f.entry_fault(0x1, 4), Some(FaultReason::NotPresent));
    assert_eq!(f.entry_fault(0x1, 1), Some(FaultReason::NotPresent));
    assert_eq!(f.entry_fault(0x1, 2), None);
    assert_eq!(f.entry_fault(0x1, 3), None);
    for level in 1..=4 {
        assert_eq!(f.entry_fault(0x3, level), None, "level {level}");
    }
    assert!(!f.is_present(0x2) && f.is_present(0x1));
}

#[test]
fn an_output_address_at_or_above_the_pa_size_is_an_address_size_fault() {
    let f = ArmS1 {
        pa_bits: 40,
        ..s1()
    };
    for level in 1..=4 {
        assert_eq!(
            f.entry_fault(0x3 | 1 << 40, level),
            Some(FaultReason::AddressSize),
            "table/page at level {level}"
        );
        assert_eq!(f.entry_fault(0x3 | 1 << 39, level), None);
        assert_eq!(
            f.entry_fault(0x3 | 1 << 47, level),
            Some(FaultReason::AddressSize)
        );
    }
    assert_eq!(
        f.entry_fault(0x1 | 1 << 45, 2),
        Some(FaultReason::AddressSize)
    );
    assert!(
        f.has_reserved_bits(0x3 | 1 << 40, 1),
        "the builder refuses it"
    );
    let pa48 = s1();
    assert_eq!(pa48.entry_fault(0x3 | 1 << 47, 1), None);
}

#[test]
fn res0_and_ignored_bits_are_ignored_one_at_a_time() {
    let f = ArmS1 {
        pa_bits: 40,
        ..s1()
    };
    // Page: 49:48 RES0, 50 GP, 58:55 software, 63:59 ignored/PBHA; none faults or moves the
    // output address.
    for bit in (48..=50).chain(55..=63) {
        let e = page(1 << bit);
        assert_eq!(f.entry_fault(e, 1), None, "page bit {bit}");
        assert_eq!(f.page_addr(e, PageSize::Size4K), 0x5000, "page bit {bit}");
    }
    // Block: the RES0 output-address bits below the block size (and nT, bit 16).
    for bit in 12..=20 {
        let e = 0x20_0000 | VALID | AF | 1 << bit;
        assert_eq!(f.entry_fault(e, 2), None, "2 MiB block bit {bit}");
        assert_eq!(f.page_addr(e, PageSize::Size2M), 0x20_0000);
    }
    for bit in 12..=29 {
        let e = 0x4000_0000 | VALID | AF | 1 << bit;
        assert_eq!(f.entry_fault(e, 3), None, "1 GiB block bit {bit}");
        assert_eq!(f.page_addr(e, PageSize::Size1G), 0x4000_0000);
    }
    // Table: 11:2 and 58:48 ignored or RES0, 63 NSTable (not modelled).
    for bit in (2..=11).chain(48..=58).chain([63]) {
        let e = 0x7003 | 1 << bit;
        assert_eq!(f.entry_fault(e, 3), None, "table bit {bit}");
        assert_eq!(f.table_addr(e), 0x7000, "table bit {bit}");
    }
    assert_eq!(f.table_rights(0x7003 | NS_TABLE), Perm::ANY);
    assert_eq!(
        f.entry_fault(page(CONTIGUOUS), 1),
        None,
        "the Contiguous hint"
    );
}

#[test]
fn ap_bits_give_the_architected_data_permissions() {
    let f = s1();
    // AP[2:1] -> (EL1 R, EL1 W, EL0 R, EL0 W), DDI 0487 D8, data access permissions.
    for (ap, expect) in [
        (0b00, [true, true, false, false]),
        (0b01, [true, true, true, true]),
        (0b10, [true, false, false, false]),
        (0b11, [true, false, true, false]),
    ] {
        let r = f.rights(page(ap << 6));
        let got = [EL1_R, EL1_W, EL0_R, EL0_W].map(|a| f.permits(r, a));
        assert_eq!(got, expect, "AP[2:1] = {ap:02b}");
    }
}

#[test]
fn uxn_and_pxn_control_execution_per_el() {
    let f = s1();
    // (UXN, PXN) -> (EL0 may fetch, EL1 may fetch), read-only at both ELs.
    for (bits, expect) in [
        (0, [true, true]),
        (UXN, [false, true]),
        (PXN, [true, false]),
        (UXN | PXN, [false, false]),
    ] {
        let r = f.rights(page(AP1 | AP2 | bits));
        assert_eq!(
            [f.permits(r, EL0_X), f.permits(r, EL1_X)],
            expect,
            "{bits:#x}"
        );
    }
    // EL0 may execute memory it cannot read (execute-only: AP = 10, UXN = 0).
    let xo = f.rights(page(AP2 | PXN));
    assert!(f.permits(xo, EL0_X) && !f.permits(xo, EL0_R));
    // Memory writable at EL0 is privileged execute-never whatever PXN says.
    let el0_rw = f.rights(page(AP1));
    assert!(!f.permits(el0_rw, EL1_X) && f.permits(el0_rw, EL0_X));
    // ... but EL0-writable only counts after APTable: with EL0 access taken away, EL1 may
    // execute it.
    let hidden = el0_rw & f.table_rights(0x7003 | AP_TABLE_NO_EL0);
    assert!(
        f.permits(hidden, EL1_X),
        "no longer EL0-writable: PXN = 0 decides"
    );
    assert!(
        f.permits(hidden, EL0_X),
        "APTable limits data accesses, not fetches"
    );
}

#[test]
fn pan_denies_privileged_data_access_to_el0_memory_but_not_fetches() {
    let f = ArmS1 { pan: true, ..s1() };
    let user_ro = f.rights(page(AP1 | AP2));
    assert!(!f.permits(user_ro, EL1_R) && !f.permits(user_ro, EL1_W));
    assert!(f.permits(user_ro, EL1_X), "PAN does not apply to fetches");
    assert!(f.permits(user_ro, EL0_R));
    let kernel = f.rights(page(0));
    assert!(f.permits(kernel, EL1_W));
}

#[test]
fn wxn_makes_memory_writable_at_an_el_execute_never_there() {
    let f = ArmS1 { wxn: true, ..s1() };
    let kernel_rw = f.rights(page(0));
    assert!(!f.permits(kernel_rw, EL1_X));
    let kernel_ro = f.rights(page(AP2));
    assert!(f.permits(kernel_ro, EL1_X));
    // EL0 RW: EL0 may not execute it; EL1 may not either (implicit PXN).
    let user_rw = f.rights(page(AP1));
    assert!(!f.permits(user_rw, EL0_X) && !f.permits(user_rw, EL1_X));
    let user_ro = f.rights(page(AP1 | AP2));
    assert!(f.permits(user_ro, EL0_X));
}

#[test]
fn table_descriptors_restrict_everything_below_unless_hpd() {
    let f = s1();
    let leaf = f.rights(page(AP1)) & Perm::ANY; // EL0 RW, executable everywhere but EL1
    for (bit, lost) in [
        (AP_TABLE_NO_EL0, Perm::USER),
        (AP_TABLE_RO, Perm::WRITE),
        (UXN_TABLE, Perm::EXEC),
        (PXN_TABLE, Perm::PRIV_EXEC),
    ] {
        assert_eq!(f.table_rights(0x7003 | bit), Perm::ANY - lost, "{bit:#x}");
    }
    let r = leaf & f.table_rights(0x7003 | AP_TABLE_NO_EL0);
    assert!(!f.permits(r, EL0_R) && f.permits(r, EL1_W));
    let r = leaf & f.table_rights(0x7003 | AP_TABLE_RO);
    assert!(f.permits(r, EL0_R) && !f.permits(r, EL0_W) && !f.permits(r, EL1_W));
    let r = leaf & f.table_rights(0x7003 | UXN_TABLE);
    assert!(!f.permits(r, EL0_X));
    let hpd = ArmS1 { hpd: true, ..f };
    let all = AP_TABLE_NO_EL0 | AP_TABLE_RO | UXN_TABLE | PXN_TABLE;
    assert_eq!(hpd.table_rights(0x7003 | all), Perm::ANY);
}

#[test]
fn dbm_makes_a_read_only_page_writable_only_with_hardware_dirty_state() {
    let clean = page(AP2 | DBM);
    let hd = ArmS1::default();
    assert!(hd.permits(hd.rights(clean), EL1_W));
    assert_eq!(hd.dirty_clear_bits(), AP2);
    assert!(!hd.is_dirty(clean) && hd.is_dirty(page(DBM)));
    assert_eq!(hd.cleaned(page(DBM)), clean);
    assert_eq!(hd.cleaned(page(0)), page(0), "no DBM: nothing to clean");
    assert_eq!(hd.hardware_bits(clean), AF | AP2);
    assert_eq!(
        hd.hardware_bits(page(AP2)),
        AF,
        "without DBM, AP[2] is software's"
    );
    let no_hd = ArmS1 { hd: false, ..hd };
    assert!(!no_hd.permits(no_hd.rights(clean), EL1_W));
    assert_eq!(no_hd.dirty_clear_bits(), 0);
    let hd_without_ha = ArmS1 { ha: false, ..hd };
    assert_eq!(hd_without_ha.dirty_clear_bits(), 0, "HD needs HA");
    assert!(!hd_without_ha.tracks_dirty());
}

#[test]
fn the_access_flag_faults_only_without_hardware_updates() {
    let f = s1();
    assert!(f.access_flag_fault(page(0) & !AF));
    assert!(!f.access_flag_fault(page(0)));
    let ha = ArmS1 { ha: true, ..f };
    assert!(!ha.access_flag_fault(page(0) & !AF));
    assert_eq!(ha.accessed_bit(), Some(AF));
}

#[test]
fn set_rights_keeps_address_and_attributes() {
    let f = ArmS1::default();
    let e = f.encode_leaf(0x1234_5000, PageSize::Size4K, Perm::USER_RW) | CONTIGUOUS;
    let ro = f.set_rights(e, Perm::READ | Perm::USER);
    assert_eq!(ro, (e & !(DBM)) | AP2);
    assert_eq!(f.set_rights(ro, Perm::USER_RW), e);
    assert_eq!(f.rights(ro), Perm::READ | Perm::USER);
}
