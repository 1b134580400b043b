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
