//! Random guest-controlled inputs — STE and CD contents, commands, register writes — never
//! panic or hang the SMMU, and every configuration fault is recorded as exactly one event.

mod common;

use common::*;
use proptest::prelude::*;
use vsva_smmuv3::spec::cd::Cd;
use vsva_smmuv3::spec::registers::{Gerror, offset};
use vsva_smmuv3::spec::ste::Ste;
use vsva_smmuv3::{ConfigFault, StreamConfig};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_ste_and_cd_give_a_config_or_one_event(
        ste in proptest::array::uniform8(any::<u64>()),
        cd in proptest::array::uniform8(any::<u64>()),
        ssid in proptest::option::of(0u32..(1 << 20)),
    ) {
        let b = Bench::new();
        // Keep the CD table pointer inside memory half the time.
        let mut ste = Ste { words: ste };
        if ste.words[1] & 1 == 0 {
            ste.words[0] = (ste.words[0] & !0x000f_ffff_ffff_ffc0) | CDTAB;
        }
        b.write_ste(7, &ste);
        b.write_cd_at(CDTAB, &Cd { words: cd });
        match b.smmu.stream_config(7, ssid) {
            Ok(StreamConfig::Disabled { .. }) => prop_assert!(false, "SMMUEN is set"),
            Ok(_) => prop_assert!(b.events().is_empty()),
            Err(f) if !f.recorded() => prop_assert!(b.events().is_empty()),
            Err(f) => {
                let ev = b.events();
                prop_assert_eq!(ev.len(), 1);
                prop_assert_eq!(ev[0], f.event(7, ssid));
                prop_assert!(f != ConfigFault::BadStreamId);
            }
        }
    }

    #[test]
    fn random_commands_are_consumed_or_stop_the_queue(
        cmds in proptest::collection::vec(proptest::array::uniform2(any::<u64>()), 1..12),
    ) {
        let mut b = Bench::new();
        b.submit_raw(&cmds);
        let cons = b.r32(offset::CMDQ_CONS);
        let stopped = b.r32(offset::GERROR) & Gerror::CMDQ_ERR.bits() != 0;
        if stopped {
            // Stopped at an erroneous command, with its reason in CONS.ERR.
            prop_assert!(matches!(cons >> 24, 1 | 3));
        } else {
            prop_assert_eq!(cons & 0x1f, b.prod);
        }
    }

    #[test]
    fn random_register_writes_never_panic(
        writes in proptest::collection::vec((0u64..0x1_0100, any::<u64>(), any::<bool>()), 1..64),
    ) {
        let b = Bench::new();
        for (off, v, wide) in writes {
            // Page 0 and the start of page 1, 32- and 64-bit, aligned or not.
            let off = if off >= 0x1_0000 { off } else { off & 0xfff };
            b.smmu.mmio_write(off, if wide { 8 } else { 4 }, v);
            let _ = b.smmu.mmio_read(off, if wide { 8 } else { 4 });
        }
        let _ = b.smmu.stream_config(1, Some(1));
        // The queue indexes stay within their wrap masks.
        prop_assert!(b.r32(offset::CMDQ_PROD) < 1 << 20);
        prop_assert!(b.r32(offset::EVENTQ_PROD) & 0x7fff_ffff < 1 << 20);
    }
}

mod xlate_random {
    use super::common::xlate::*;
    use proptest::prelude::*;
    use vsva_mem::{Access, PhysMem};
    use vsva_pgtable::Perm;
    use vsva_smmuv3::Blocked;

    fn access(bits: u8) -> Access {
        let mut a =
            Access::from_bits_truncate(bits) & (Access::WRITE | Access::EXEC | Access::PRIV);
        if !a.is_write() {
            a |= Access::READ;
        }
        a
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Garbage in the stage 1 tables (and random CD controls): a translation, or a
        /// termination or stall with at most one event; never a panic, never an output
        /// beyond the 48-bit PA size.
        #[test]
        fn garbage_stage1_tables_never_panic(
            writes in proptest::collection::vec((0u64..4 * 512, any::<u64>()), 1..24),
            va in prop_oneof![Just(VA), any::<u64>(), 0u64..(1 << 48)],
            bits in any::<u8>(),
            ha in any::<bool>(),
            hd in any::<bool>(),
            stall in any::<bool>(),
            stallable in any::<bool>(),
        ) {
            let r = S1Rig::with(s1_format(), |c| c.with_ha(ha).with_hd(hd).with_s(stall));
            r.map(VA, PA, Perm::USER_RW);
            for (slot, v) in writes {
                r.b.mem.write(S1_FRAMES.0 + slot * 8, &v.to_le_bytes()).unwrap();
            }
            let t = vsva_smmuv3::Transaction { stallable, ..txn(SID, va, access(bits)) };
            let out = r.b.smmu.translate(&t);
            let ev = r.b.events();
            prop_assert!(ev.len() <= 1);
            match out {
                Ok(t) => prop_assert!(t.addr >> 48 == 0),
                Err(Blocked::Stalled(_)) => {
                    prop_assert!(stall && stallable);
                    prop_assert_eq!(ev.len(), 1);
                    prop_assert_eq!(r.b.smmu.stalled(), 1);
                }
                Err(_) => {}
            }
        }

        /// Garbage in the stage 2 tables of a nested stream.
        #[test]
        fn garbage_nested_tables_never_panic(
            writes in proptest::collection::vec((0u64..6 * 512, any::<u64>()), 1..24),
            s1_writes in proptest::collection::vec((0u64..4 * 512, any::<u64>()), 0..8),
            va in prop_oneof![Just(VA), any::<u64>()],
            bits in any::<u8>(),
        ) {
            let r = NestedRig::new();
            for (slot, v) in writes {
                r.b.mem.write(S2_FRAMES.0 + slot * 8, &v.to_le_bytes()).unwrap();
            }
            for (slot, v) in s1_writes {
                r.b.mem.write(S1_FRAMES.0 + slot * 8, &v.to_le_bytes()).unwrap();
            }
            let out = r.b.smmu.translate(&txn(SID, va, access(bits)));
            prop_assert!(r.b.events().len() <= 1);
            if let Ok(t) = out {
                prop_assert!(t.addr >> 48 == 0);
            }
            let _ = r.b.smmu.ats_translate(SID, None, va, access(bits));
        }
    }
}
