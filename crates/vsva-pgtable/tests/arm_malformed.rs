//! Arm walks over tables of random contents — what a guest or a buggy driver may leave in
//! memory — end in a translation or a fault, never a panic (debug builds check every
//! arithmetic overflow) or a hang, never read outside the memory they were given, and never
//! output an address beyond the configured PA size.

use std::sync::Arc;

use proptest::prelude::*;
use vsva_mem::{Access, PhysMem, PhysMemory};
use vsva_pgtable::arm::{ArmFault, ArmFaultKind, ArmS1, ArmS2};
use vsva_pgtable::nested::{Stage2, nested_walk_classified};
use vsva_pgtable::walk::{Direct, MAX_AD_RETRIES};
use vsva_pgtable::{Fault, FaultReason, Format, Translation, walk};

/// 16 tables of memory.
const MEM: u64 = 16 * 4096;

/// Fills every slot of memory from `seed`: mostly valid descriptors (tables, blocks, pages)
/// pointing inside memory with random attribute, ignored and RES0 bits, some invalid, some
/// anything at all.
fn memory(seed: u64) -> Arc<PhysMemory> {
    let mem = Arc::new(PhysMemory::new(MEM).unwrap());
    let mut x = seed | 1;
    let mut next = move || {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for slot in 0..MEM / 8 {
        let r = next();
        let e = match r % 8 {
            0 => 0,
            1 => next(),
            _ => {
                let frame = (r >> 8) % (MEM / 4096);
                let low = (r >> 20) & 0xffc;
                let kind = if r % 3 == 0 { 0x1 } else { 0x3 };
                let high = if r % 5 == 0 {
                    next() & 0xfff8_0000_0000_0000
                } else {
                    0
                };
                (frame << 12) | low | kind | high
            }
        };
        mem.store_u64(slot * 8, e).unwrap();
    }
    mem
}

/// Input addresses whose table indices fall in the first slots, so walks go deep; some in the
/// TTBR1 range, some anything.
fn input() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => (any::<[u8; 4]>(), any::<u16>(), any::<bool>()).prop_map(|(idx, off, high)| {
            let mut a = (off & 0xfff) as u64;
            for (i, &k) in idx.iter().enumerate() {
                a |= ((k % 4) as u64) << (12 + 9 * i);
            }
            if high { a | 0xffff_0000_0000_0000 } else { a }
        }),
        1 => any::<u64>(),
    ]
}

fn access() -> impl Strategy<Value = Access> {
    (0u8..16).prop_map(Access::from_bits_truncate)
}

fn root() -> impl Strategy<Value = u64> {
    prop_oneof![3 => (0..MEM / 4096).prop_map(|f| f * 4096), 1 => any::<u64>()]
}

fn s1_config() -> impl Strategy<Value = ArmS1> {
    (
        prop_oneof![6 => 16u8..=39, 1 => any::<u8>()],
        prop_oneof![6 => 32u8..=48, 1 => any::<u8>()],
        any::<[bool; 7]>(),
    )
        .prop_map(|(tsz, pa_bits, b)| ArmS1 {
            tsz,
            upper: b[0],
            pa_bits,
            ha: b[1],
            hd: b[2],
            hpd: b[3],
            pan: b[4],
            wxn: b[5],
            non_global: b[6],
        })
}

fn s2_config() -> impl Strategy<Value = ArmS2> {
    (
        prop_oneof![6 => 16u8..=34, 1 => any::<u8>()],
        prop_oneof![6 => 0u8..=2, 1 => any::<u8>()],
        prop_oneof![6 => 32u8..=48, 1 => any::<u8>()],
        any::<[bool; 2]>(),
    )
        .prop_map(|(t0sz, sl0, pa_bits, b)| ArmS2 {
            t0sz,
            sl0,
            pa_bits,
            ha: b[0],
            hd: b[1],
        })
}

/// What every walk result must satisfy.
fn check<F: Format>(
    f: &F,
    pa_bits: u8,
    r: Result<Translation, Fault>,
) -> Result<(), TestCaseError> {
    match r {
        Ok(t) => {
            let most = 4 * (MAX_AD_RETRIES + 1);
            prop_assert!(t.refs <= most);
            prop_assert!(t.output >> pa_bits.min(48) == 0, "output {:#x}", t.output);
        }
        Err(fault) => {
            prop_assert!(fault.level <= f.levels() || fault.reason == FaultReason::AddressWidth);
            prop_assert!(
                fault.reason != FaultReason::Reserved,
                "Arm has no reserved-bit fault"
            );
            prop_assert!(ArmFault::from_fault(&fault).level <= 3);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arm_stage_1_walks_of_garbage_end(
        seed in any::<u64>(),
        fmt in s1_config(),
        root in root(),
        inputs in proptest::collection::vec(input(), 16),
        access in access(),
    ) {
        let mem = memory(seed);
        for input in inputs {
            let r = walk(&fmt, mem.as_ref(), root, input, access, &mut Direct, &mut ());
            check(&fmt, fmt.pa_bits, r)?;
        }
    }

    #[test]
    fn arm_stage_2_walks_of_garbage_end(
        seed in any::<u64>(),
        fmt in s2_config(),
        root in root(),
        inputs in proptest::collection::vec(input(), 16),
        access in access(),
    ) {
        let mem = memory(seed);
        for input in inputs {
            let r = walk(&fmt, mem.as_ref(), root, input, access, &mut Direct, &mut ());
            check(&fmt, fmt.pa_bits, r)?;
        }
    }

    #[test]
    fn arm_nested_walks_of_garbage_end(
        seed in any::<u64>(),
        s1 in s1_config(),
        s2 in s2_config(),
        s1_root in root(),
        s2_root in root(),
        inputs in proptest::collection::vec(input(), 8),
        access in access(),
    ) {
        let mem = memory(seed);
        let stage2 = Stage2 { format: &s2, mem: mem.as_ref(), root: s2_root };
        for input in inputs {
            match nested_walk_classified(&s1, s1_root, &stage2, input, access, &mut ()) {
                Ok(t) => {
                    prop_assert!(t.refs <= 2000);
                    prop_assert!(t.output >> s2.pa_bits.min(48) == 0);
                }
                Err(e) => {
                    prop_assert!(e.fault.level <= 4 || e.fault.reason == FaultReason::AddressWidth);
                    prop_assert!(e.fault.reason != FaultReason::Reserved);
                }
            }
        }
    }
}

#[test]
fn generators_reach_successful_arm_walks() {
    let fmt = ArmS1 {
        ha: true,
        ..ArmS1::with_va_bits(48)
    };
    let mut ok = 0;
    for seed in 1..200u64 {
        let mem = memory(seed);
        for input in 0..64u64 {
            let a = (input % 4) << 12 | (input / 4 % 4) << 21 | (input / 16) << 30;
            let r = walk(
                &fmt,
                mem.as_ref(),
                0,
                a,
                Access::PRIV | Access::READ,
                &mut Direct,
                &mut (),
            );
            ok += r.is_ok() as u32;
        }
    }
    assert!(ok > 100, "only {ok} successful walks");
}

#[test]
fn a_table_pointing_to_itself_ends_after_one_descriptor_per_level() {
    let mem = Arc::new(PhysMemory::new(MEM).unwrap());
    // Entry 0 of the table at 0 is a table descriptor pointing to that table: read at Arm
    // level 3, the same bits are a page descriptor for page 0 (with AF clear).
    mem.store_u64(0, 0x3).unwrap();
    let fmt = ArmS1::with_va_bits(48);
    let f = walk(
        &fmt,
        mem.as_ref(),
        0,
        0x123,
        Access::READ,
        &mut Direct,
        &mut (),
    )
    .unwrap_err();
    assert_eq!((f.reason, f.level), (FaultReason::AccessFlag, 1));
    let ha = ArmS1 { ha: true, ..fmt };
    let t = walk(
        &ha,
        mem.as_ref(),
        0,
        0x123,
        Access::PRIV | Access::READ,
        &mut Direct,
        &mut (),
    )
    .unwrap();
    assert_eq!((t.output, t.refs), (0x123, 4));
}

#[test]
fn a_table_outside_memory_is_an_external_abort_not_a_read() {
    let mem = Arc::new(PhysMemory::new(MEM).unwrap());
    mem.store_u64(0, (1 << 40) | 0x3).unwrap();
    let fmt = ArmS1::with_va_bits(48);
    let f = walk(&fmt, mem.as_ref(), 0, 0, Access::READ, &mut Direct, &mut ()).unwrap_err();
    assert_eq!((f.reason, f.level), (FaultReason::OutsideMemory, 3));
    let arm = ArmFault::from_fault(&f);
    assert_eq!((arm.kind, arm.level), (ArmFaultKind::ExternalAbort, 1));
    // The second of two concatenated stage-2 start tables past the end of memory.
    let s2 = ArmS2::new(40, 48);
    let f = walk(
        &s2,
        mem.as_ref(),
        MEM - 4096,
        1 << 39,
        Access::READ,
        &mut Direct,
        &mut (),
    )
    .unwrap_err();
    assert_eq!((f.reason, f.level), (FaultReason::OutsideMemory, 3));
}
