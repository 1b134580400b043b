//! Config space tests: values worked out from PCIe Base 6.0 §7.6.3, §7.8.8, §10.5.1, §10.5.2
//! and Linux `pci_regs.h`.

use super::*;

const PASID: u32 = PASID_CAP_OFFSET as u32;
const ATS: u32 = ATS_CAP_OFFSET as u32;
const PRI: u32 = PRI_CAP_OFFSET as u32;

fn cfg() -> ConfigSpace {
    ConfigSpace::new(ConfigOptions::new(0x8086, 0x1234)).unwrap()
}

fn cfg_with(f: impl FnOnce(&mut ConfigOptions)) -> ConfigSpace {
    let mut o = ConfigOptions::new(0x8086, 0x1234);
    f(&mut o);
    ConfigSpace::new(o).unwrap()
}

#[test]
fn options_out_of_range_are_refused() {
    let base = ConfigOptions::new(1, 2);
    for w in [0, 21, 255] {
        let o = ConfigOptions {
            pasid_width: w,
            ..base
        };
        assert_eq!(ConfigSpace::new(o).unwrap_err(), ConfigError::PasidWidth(w));
    }
    for d in [0, 33] {
        let o = ConfigOptions {
            ats_invalidate_queue_depth: d,
            ..base
        };
        assert_eq!(ConfigSpace::new(o).unwrap_err(), ConfigError::QueueDepth(d));
    }
    let o = ConfigOptions {
        pri_capacity: 0,
        ..base
    };
    assert_eq!(ConfigSpace::new(o).unwrap_err(), ConfigError::PriCapacity);
}

#[test]
fn header_ids() {
    let c = cfg();
    assert_eq!(c.read(0, 4), 0x1234_8086);
    assert_eq!(c.read(0, 2), 0x8086);
    assert_eq!(c.read(2, 2), 0x1234);
    assert_eq!(c.read(1, 1), 0x80);
    // The rest of the header is a stub.
    assert_eq!(c.read(4, 4), 0);
    assert_eq!(c.read(0x34, 1), 0);
}

#[test]
fn header_ids_are_read_only() {
    let mut c = cfg();
    c.write(0, 4, 0xFFFF_FFFF);
    c.write(2, 2, 0);
    assert_eq!(c.read(0, 4), 0x1234_8086);
    assert_eq!((c.vendor(), c.device()), (0x8086, 0x1234));
}

#[test]
fn capability_chain_walk() {
    let c = cfg();
    // ID in [15:0], version 1 in [19:16], next in [31:20].
    assert_eq!(c.read(0x100, 4), 0x1081_001B);
    assert_eq!(c.read(0x108, 4), 0x1101_000F);
    assert_eq!(c.read(0x110, 4), 0x0001_0013);

    let mut found = Vec::new();
    let mut off = 0x100;
    while off != 0 {
        let hdr = ExtCapHeader::from_bits(c.read(off, 4));
        found.push((off, hdr.id(), hdr.version()));
        off = u32::from(hdr.next());
    }
    assert_eq!(
        found,
        [(0x100, 0x1B, 1), (0x108, 0x0F, 1), (0x110, 0x13, 1)]
    );
    assert_eq!(c.find_ext_capability(EXT_CAP_ID_PASID), Some(0x100));
    assert_eq!(c.find_ext_capability(EXT_CAP_ID_ATS), Some(0x108));
    assert_eq!(c.find_ext_capability(EXT_CAP_ID_PRI), Some(0x110));
    assert_eq!(c.find_ext_capability(0x0010), None);
}

#[test]
fn capability_headers_are_read_only() {
    let mut c = cfg();
    for off in [0x100, 0x108, 0x110] {
        let before = c.read(off, 4);
        c.write(off, 4, 0);
        c.write(off + 2, 2, 0xFFFF);
        assert_eq!(c.read(off, 4), before);
    }
}

#[test]
fn pasid_capability_register() {
    let c = cfg();
    // Width 20 (0x14) in [12:8], Exec bit 1, Priv bit 2.
    assert_eq!(c.read(PASID + 4, 2), 0x1406);
    assert_eq!(c.pasid_width(), 20);
    let c = cfg_with(|o| {
        o.pasid_width = 5;
        o.exec_supported = false;
        o.priv_supported = false;
    });
    assert_eq!(c.read(PASID + 4, 2), 0x0500);
    assert_eq!(c.pasid_width(), 5);
}

#[test]
fn pasid_capability_is_read_only() {
    let mut c = cfg();
    c.write(PASID + 4, 2, 0);
    c.write(PASID + 4, 1, 0xFF);
    assert_eq!(c.read(PASID + 4, 2), 0x1406);
}

#[test]
fn pasid_control_rw_with_supported_bits() {
    let mut c = cfg();
    assert_eq!(c.read(PASID + 6, 2), 0);
    assert!(!c.pasid_enabled());
    // Reserved bits (everything above bit 2) are not stored.
    c.write(PASID + 6, 2, 0xFFFF);
    assert_eq!(c.read(PASID + 6, 2), 0x0007);
    assert!(c.pasid_enabled() && c.pasid_exec_enabled() && c.pasid_priv_enabled());
    c.write(PASID + 6, 2, 0x0001);
    assert!(c.pasid_enabled() && !c.pasid_exec_enabled() && !c.pasid_priv_enabled());
    // The same register through a dword write at the capability + 4: cap half is ignored.
    c.write(PASID + 4, 4, 0x0006_0000);
    assert_eq!(c.read(PASID + 4, 4), 0x0006_1406);
    // Exec/Priv without PASID Enable are not usable.
    assert!(!c.pasid_exec_enabled() && !c.pasid_priv_enabled());
}

#[test]
fn pasid_control_unsupported_bits_stay_zero() {
    let mut c = cfg_with(|o| {
        o.exec_supported = false;
        o.priv_supported = false;
    });
    c.write(PASID + 6, 2, 0x0007);
    assert_eq!(c.read(PASID + 6, 2), 0x0001);
    assert!(!c.pasid_exec_enabled() && !c.pasid_priv_enabled());
}

#[test]
fn ats_capability_register() {
    let c = cfg();
    // Depth 32 encodes as 0; Page Aligned bit 5; Global Invalidate bit 6.
    assert_eq!(c.read(ATS + 4, 2), 0x0060);
    assert_eq!(c.ats_invalidate_queue_depth(), 32);
    let c = cfg_with(|o| {
        o.ats_invalidate_queue_depth = 5;
        o.ats_page_aligned = false;
        o.ats_global_invalidate = false;
    });
    assert_eq!(c.read(ATS + 4, 2), 0x0005);
    assert_eq!(c.ats_invalidate_queue_depth(), 5);
    assert!(!c.ats_page_aligned() && !c.ats_global_invalidate_supported());
}

#[test]
fn ats_control_stu_and_enable() {
    let mut c = cfg();
    c.write(ATS + 4, 2, 0); // RO cap
    assert_eq!(c.read(ATS + 4, 2), 0x0060);
    assert_eq!(c.ats_stu(), 4096);
    // Reserved [14:5] are dropped.
    c.write(ATS + 6, 2, 0x7FE5);
    assert_eq!(c.read(ATS + 6, 2), 0x0005);
    assert!(!c.ats_enabled());
    assert_eq!(c.ats_stu(), 4096 << 5);
    c.write(ATS + 6, 2, 0x8005);
    assert!(c.ats_enabled());
    assert_eq!(c.ats_stu(), 128 * 1024);
    // STU changed while enabled: the register takes it, the device keeps the latched value.
    c.write(ATS + 6, 2, 0x8003);
    assert_eq!(c.read(ATS + 6, 2), 0x8003);
    assert_eq!(c.ats_stu(), 128 * 1024);
    // Disable: the register value is what counts again; re-enable latches it.
    c.write(ATS + 7, 1, 0x00);
    assert_eq!(c.read(ATS + 6, 2), 0x0003);
    assert_eq!(c.ats_stu(), 32 * 1024);
    c.write(ATS + 7, 1, 0x80);
    assert_eq!(c.ats_stu(), 32 * 1024);
    // The largest STU: 2^31 4 KiB blocks.
    c.write(ATS + 6, 2, 0x001F);
    assert_eq!(c.ats_stu(), 1 << 43);
}

#[test]
fn pri_reset_state() {
    let c = cfg();
    assert_eq!(c.read(PRI + 4, 2), 0);
    // Stopped (bit 8) defaults to 1; PRG Response PASID Required is bit 15.
    assert_eq!(c.read(PRI + 6, 2), 0x8100);
    assert_eq!(c.read(PRI + 8, 4), 32);
    assert_eq!(c.read(PRI + 12, 4), 0);
    assert!(!c.pri_enabled() && c.pri_stopped());
    let c = cfg_with(|o| o.pri_prg_response_pasid_required = false);
    assert_eq!(c.read(PRI + 6, 2), 0x0100);
}

#[test]
fn pri_capacity_is_read_only_allocation_is_rw() {
    let mut c = cfg();
    c.write(PRI + 8, 4, 7);
    assert_eq!(c.read(PRI + 8, 4), 32);
    c.write(PRI + 12, 4, 0xDEAD_BEEF);
    assert_eq!(c.read(PRI + 12, 4), 0xDEAD_BEEF);
    c.write(PRI + 13, 1, 0x00);
    assert_eq!(c.read(PRI + 12, 4), 0xDEAD_00EF);
    c.write(PRI + 12, 4, 16);
    assert_eq!(c.pri_allocation(), 0, "latched only at enable");
    c.write(PRI + 4, 2, 1);
    assert_eq!(c.pri_allocation(), 16);
}

#[test]
fn pri_allocation_latched_at_enable_and_clamped() {
    let mut c = cfg();
    c.write(PRI + 12, 4, 8);
    c.write(PRI + 4, 2, 1);
    assert_eq!(c.pri_allocation(), 8);
    c.write(PRI + 12, 4, 4);
    assert_eq!(c.read(PRI + 12, 4), 4);
    assert_eq!(c.pri_allocation(), 8);
    c.write(PRI + 4, 2, 0);
    c.write(PRI + 12, 4, 1000);
    c.write(PRI + 4, 2, 1);
    assert_eq!(c.pri_allocation(), 32);
}

#[test]
fn pri_status_rw1c_and_ro() {
    let mut c = cfg();
    // Stopped is RO: writing 1 or 0 does not change it.
    c.write(PRI + 6, 2, 0x0100);
    assert!(c.pri_stopped());
    c.write(PRI + 6, 2, 0x0000);
    assert!(c.pri_stopped());
    c.pri_set_response_failure();
    c.pri_set_uprgi();
    assert_eq!(c.read(PRI + 6, 2), 0x8103);
    // Writing 0 clears nothing.
    c.write(PRI + 6, 2, 0);
    assert_eq!(c.read(PRI + 6, 2), 0x8103);
    // Writing 1 to RF clears only RF; PASID Required (RO) stays.
    c.write(PRI + 6, 2, 0x8001);
    assert_eq!(c.read(PRI + 6, 2), 0x8102);
    // A dword write at PRI+4 clears UPRGI through the upper lanes, and leaves Enable alone.
    c.write(PRI + 4, 4, 0x0002_0000);
    assert_eq!(c.read(PRI + 4, 4), 0x8100_0000);
    c.pri_set_stopped(false);
    assert!(!c.pri_stopped());
}

#[test]
fn pri_enable_clears_status_flags() {
    let mut c = cfg();
    c.pri_set_response_failure();
    c.pri_set_uprgi();
    let epoch = c.pri_epoch();
    c.write(PRI + 4, 2, 0x0001);
    assert!(c.pri_enabled());
    assert_eq!(c.read(PRI + 6, 2), 0x8000);
    assert_ne!(c.pri_epoch(), epoch);
    // Writing Enable again (1 -> 1) is not a new enable.
    let epoch = c.pri_epoch();
    c.pri_set_uprgi();
    c.write(PRI + 4, 2, 0x0001);
    assert!(c.pri_uprgi());
    assert_eq!(c.pri_epoch(), epoch);
}

#[test]
fn pri_reset_rules() {
    let mut c = cfg();
    c.write(PRI + 4, 2, 0x0001);
    let epoch = c.pri_epoch();
    // Reset with Enable staying set: no action. Reset reads 0.
    c.write(PRI + 4, 2, 0x0003);
    assert_eq!(c.pri_epoch(), epoch);
    assert_eq!(c.read(PRI + 4, 2), 0x0001);
    // Reset while clearing Enable in the same write: acts, and the interface is stopped.
    c.write(PRI + 4, 2, 0x0002);
    assert_eq!(c.pri_epoch(), epoch + 1);
    assert!(!c.pri_enabled() && c.pri_stopped());
    assert_eq!(c.read(PRI + 4, 2), 0);
    // Reset while disabled acts; RF is RW1C and survives it (only enable clears it).
    c.pri_set_response_failure();
    c.write(PRI + 4, 1, 0x02);
    assert_eq!(c.pri_epoch(), epoch + 2);
    assert!(c.pri_response_failure());
    // Writing 0 to Reset does nothing.
    c.write(PRI + 4, 2, 0x0000);
    assert_eq!(c.pri_epoch(), epoch + 2);
}

#[test]
fn reserved_and_unimplemented_space() {
    let mut c = cfg();
    for off in [0x120, 0x200, 0xFFC] {
        c.write(off, 4, 0xFFFF_FFFF);
        assert_eq!(c.read(off, 4), 0);
    }
    // Header stub: writes ignored.
    c.write(0x04, 2, 0x0006);
    assert_eq!(c.read(0x04, 4), 0);
}

#[test]
fn beyond_4k_reads_zero_writes_ignored() {
    let mut c = cfg();
    let snapshot: Vec<u32> = (0..1024).map(|i| c.read(i * 4, 4)).collect();
    for off in [0x1000, 0x1004, 0x1_0100, u32::MAX - 3, u32::MAX] {
        assert_eq!(c.read(off, 4), 0);
        assert_eq!(c.read(off, 1), 0);
        c.write(off, 4, 0xFFFF_FFFF);
    }
    // An access straddling the end keeps only its in-range bytes.
    c.write(0xFFE, 4, 0xFFFF_FFFF);
    assert_eq!(c.read(0xFFE, 4), 0);
    let after: Vec<u32> = (0..1024).map(|i| c.read(i * 4, 4)).collect();
    assert_eq!(snapshot, after);
}

#[test]
fn odd_sizes_are_ignored() {
    let mut c = cfg();
    for size in [0, 3, 5, 8, u32::MAX] {
        assert_eq!(c.read(0, size), 0);
        c.write(PRI + 12, size, 0x55);
        c.write(PASID + 6, size, 0x1);
    }
    assert_eq!(c.read(PRI + 12, 4), 0);
    assert!(!c.pasid_enabled());
}

#[test]
fn unaligned_accesses_use_byte_lanes() {
    let mut c = cfg();
    c.write(PASID + 6, 2, 0x0001);
    // Bytes 0x105 (cap high = 0x14) and 0x106 (ctrl low = 0x01).
    assert_eq!(c.read(PASID + 5, 2), 0x0114);
    // 4 bytes at 0x102 straddle two dwords: header high half, then the PASID cap.
    assert_eq!(c.read(0x102, 4), 0x1406_1081);
    // A 2-byte write at 0x11B: capacity's top byte (RO) and allocation's low byte (RW).
    c.write(PRI + 11, 2, 0xABCD);
    assert_eq!(c.read(PRI + 8, 4), 32);
    assert_eq!(c.read(PRI + 12, 4), 0xAB);
    // A byte write to the ATS Enable byte alone.
    c.write(ATS + 7, 1, 0x80);
    assert!(c.ats_enabled());
    assert_eq!(c.read(ATS + 6, 2), 0x8000);
}
