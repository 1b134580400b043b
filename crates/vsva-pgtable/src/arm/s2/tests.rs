//! Stage-2 configuration and descriptors, with values worked out from DDI 0487 D8.

use super::*;
use crate::arm::{CONTIGUOUS, mem_attr};

const R: Access = Access::READ;
const W: Access = Access::READ.union(Access::WRITE);
const X: Access = Access::READ.union(Access::EXEC);

fn page(bits: u64) -> u64 {
    0x5000 | VALID | TABLE | AF | bits
}

#[test]
fn t0sz_and_sl0_set_levels_and_concatenated_start_tables() {
    // (IPA bits, T0SZ, SL0, vsva levels, root index bits, start tables)
    for (ipa, t0sz, sl0, levels, bits, tables) in [
        (48, 16, 2, 4, 9, 1),   // level 0 start
        (44, 20, 2, 4, 5, 1),   // level 0 start, 32 entries
        (43, 21, 1, 3, 13, 16), // level 1 start, 16 tables
        (40, 24, 1, 3, 10, 2),  // level 1 start, 2 tables
        (39, 25, 1, 3, 9, 1),   // level 1 start
        (34, 30, 0, 2, 13, 16), // level 2 start, 16 tables
        (32, 32, 0, 2, 11, 4),  // level 2 start, 4 tables
    ] {
        let f = ArmS2::new(ipa, 48);
        assert_eq!((f.t0sz, f.sl0), (t0sz, sl0), "{ipa}-bit IPA");
        assert_eq!(
            (f.levels(), f.root_index_bits(), f.start_tables()),
            (levels, bits, Some(tables)),
            "{ipa}-bit IPA"
        );
    }
}

#[test]
fn a_start_level_that_cannot_cover_the_ipa_size_is_inconsistent() {
    let ok = ArmS2::new(40, 48);
    // 44 bits from level 1 would need 32 tables; 30 bits from level 1 fewer than one.
    for (t0sz, sl0) in [(20, 1), (34, 1), (24, 0), (24, 3), (15, 2), (64, 0)] {
        let f = ArmS2 { t0sz, sl0, ..ok };
        assert_eq!(f.levels(), 0, "T0SZ {t0sz} SL0 {sl0}");
        assert_eq!(f.start_tables(), None);
        assert!(!f.input_ok(0));
    }
    assert!(ok.input_ok((1 << 40) - 1) && !ok.input_ok(1 << 40));
}

#[test]
fn encode_stage_2_descriptors() {
    let f = ArmS2::new(40, 48);
    // 1 GiB RW block: bits 1:0 = 01, MemAttr 0b1111 (0x3c), S2AP = 11 (0xc0), SH 0x300,
    // AF 0x400, XN (bit 54).
    assert_eq!(
        f.encode_leaf(0x8000_0000, PageSize::Size1G, Perm::RW),
        0x0040_0000_8000_07fd
    );
    // 4 KiB read-only executable page: bits 1:0 = 11, S2AP = 01.
    assert_eq!(
        f.encode_leaf(0x1234_5000, PageSize::Size4K, Perm::READ | Perm::EXEC),
        0x0000_0000_1234_577f
    );
    let hd = ArmS2 {
        ha: true,
        hd: true,
        ..f
    };
    assert_eq!(
        hd.encode_leaf(0x1234_5000, PageSize::Size4K, Perm::RW),
        0x0048_0000_1234_57ff,
        "DBM on writable leaves with hardware dirty state"
    );
    assert_eq!(f.encode_table(0x7000), 0x7003);
    assert_eq!(mem_attr(0x0040_0000_8000_07fd), 0xf);
}

#[test]
fn s2ap_and_xn_give_the_architected_permissions() {
    let f = ArmS2::new(40, 48);
    // S2AP -> (read, write); XN -> fetch. A fetch needs no read permission.
    for (s2ap, expect) in [
        (0b00, [false, false]),
        (0b01, [true, false]),
        (0b10, [false, true]),
        (0b11, [true, true]),
    ] {
        let r = f.rights(page(s2ap << 6));
        assert_eq!(
            [f.permits(r, R), f.permits(r, Access::WRITE)],
            expect,
            "S2AP {s2ap:02b}"
        );
        assert!(f.permits(r, X), "XN = 0");
        assert!(!f.permits(f.rights(page(s2ap << 6 | XN)), X), "XN = 1");
    }
    assert!(
        !f.permits(f.rights(page(S2AP_W)), W),
        "a read-write access needs both"
    );
    assert!(f.rights(page(0)).contains(Perm::USER | Perm::PRIV_EXEC));
    assert_eq!(f.table_rights(0x7003 | 0x1f << 59), Perm::ANY);
}

#[test]
fn stage_2_dbm_sets_s2ap_1_with_hardware_dirty_state() {
    let hd = ArmS2 {
        ha: true,
        hd: true,
        ..ArmS2::new(40, 48)
    };
    let clean = page(S2AP_R | DBM);
    assert!(hd.permits(hd.rights(clean), W));
    assert_eq!(hd.dirty_bit(), Some(S2AP_W));
    assert!(!hd.is_dirty(clean) && hd.is_dirty(clean | S2AP_W));
    assert_eq!(hd.cleaned(clean | S2AP_W), clean);
    assert_eq!(
        hd.hardware_bits(page(S2AP_R)),
        AF,
        "without DBM, S2AP is software's"
    );
    let no_hd = ArmS2 { hd: false, ..hd };
    assert!(!no_hd.permits(no_hd.rights(clean), W));
    assert_eq!(no_hd.dirty_bit(), None);
}

#[test]
fn stage_2_descriptor_faults_and_ignored_bits() {
    let f = ArmS2 {
        pa_bits: 40,
        ..ArmS2::new(40, 48)
    };
    assert_eq!(f.entry_fault(0x1, 4), Some(FaultReason::NotPresent));
    assert_eq!(f.entry_fault(0x1, 1), Some(FaultReason::NotPresent));
    assert_eq!(
        f.entry_fault(0x3 | 1 << 40, 2),
        Some(FaultReason::AddressSize)
    );
    assert_eq!(
        f.entry_fault(0x1 | 1 << 41, 3),
        Some(FaultReason::AddressSize)
    );
    // XN[0] (bit 53, FEAT_XNX), RES0 49:48, ignored 63:55 and Contiguous: no fault, same
    // rights.
    for bit in [48, 49, 50, 53, 55, 56, 57, 58, 59, 60, 61, 62, 63] {
        let e = page(S2AP_R | 1 << bit);
        assert_eq!(f.entry_fault(e, 1), None, "bit {bit}");
        assert_eq!(f.rights(e), f.rights(page(S2AP_R)), "bit {bit}");
    }
    assert_eq!(f.entry_fault(page(CONTIGUOUS), 1), None);
}
