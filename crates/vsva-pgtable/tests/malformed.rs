//! Walks over tables of random contents — what a guest or a buggy driver may leave in memory —
//! must end in a translation or a fault, never a panic (debug builds check every arithmetic
//! overflow) or a hang, and never read outside the memory they were given.

use std::sync::Arc;

use proptest::prelude::*;
use vsva_mem::{Access, PhysMem, PhysMemory};
use vsva_pgtable::nested::{Stage2, nested_walk};
use vsva_pgtable::vtd_ss::VtdSecondStage;
use vsva_pgtable::walk::Direct;
use vsva_pgtable::x86::X86Paging;
use vsva_pgtable::{FaultReason, walk};

/// 16 tables of memory.
const MEM: u64 = 16 * 4096;

/// Fills every slot of memory from `seed`: mostly present entries pointing inside memory with
/// random flag, ignored and reserved bits, some zero, some anything at all.
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
            // a present table pointer or page, sometimes with high bits
            _ => {
                let frame = (r >> 8) % (MEM / 4096);
                let low = (r >> 20) & 0xfff;
                let high = if r % 5 == 0 {
                    next() & 0xfff0_0000_0000_0000
                } else {
                    0
                };
                (frame << 12) | low | 0x3 | high
            }
        };
        mem.store_u64(slot * 8, e).unwrap();
    }
    mem
}

/// Input addresses whose table indices fall in the few first slots, so walks go deep.
fn input() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => (any::<[u8; 5]>(), any::<u16>(), any::<bool>()).prop_map(|(idx, off, high)| {
            let mut a = (off & 0xfff) as u64;
            for (i, &k) in idx.iter().enumerate() {
                a |= ((k % 4) as u64) << (12 + 9 * i);
            }
            if high { a | 0xff00_0000_0000_0000 } else { a }
        }),
        1 => any::<u64>(),
    ]
}

fn access() -> impl Strategy<Value = Access> {
    (0u8..16).prop_map(Access::from_bits_truncate)
}

fn x86_config() -> impl Strategy<Value = X86Paging> {
    (
        any::<[bool; 6]>(),
        prop_oneof![6 => 4u8..=5, 1 => any::<u8>()],
        prop_oneof![6 => 32u8..=52, 1 => any::<u8>()],
    )
        .prop_map(|(b, levels, maxphyaddr)| X86Paging {
            levels,
            maxphyaddr,
            nxe: b[0],
            wp: b[1],
            smep: b[2],
            smap: b[3],
            page_1g: b[4],
            ad: b[5],
            extended_accessed: b[5] && b[0],
        })
}

fn ss_config() -> impl Strategy<Value = VtdSecondStage> {
    (
        prop_oneof![6 => 3u8..=5, 1 => any::<u8>()],
        any::<u8>(),
        prop_oneof![6 => 30u8..=52, 1 => any::<u8>()],
        any::<[bool; 4]>(),
    )
        .prop_map(|(levels, iw, haw, b)| VtdSecondStage {
            levels,
            input_width: iw,
            haw,
            large_2m: b[0],
            large_1g: b[1],
            exec: b[2],
            ad: b[3],
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn x86_walks_of_garbage_end(
        seed in any::<u64>(),
        fmt in x86_config(),
        root in prop_oneof![3 => (0..MEM / 4096).prop_map(|f| f * 4096), 1 => any::<u64>()],
        inputs in proptest::collection::vec(input(), 16),
        access in access(),
    ) {
        let mem = memory(seed);
        for input in inputs {
            match walk(&fmt, mem.as_ref(), root, input, access, &mut Direct, &mut ()) {
                Ok(t) => {
                    let most = fmt.levels as u32 * (vsva_pgtable::walk::MAX_AD_RETRIES + 1);
                    prop_assert!(t.refs <= most);
                    prop_assert!(t.output < 1 << 52);
                }
                Err(f) => prop_assert!(f.level <= fmt.levels || f.reason == FaultReason::AddressWidth),
            }
        }
    }

    #[test]
    fn nested_walks_of_garbage_end(
        seed in any::<u64>(),
        s1 in x86_config(),
        s2 in ss_config(),
        s1_root in prop_oneof![3 => (0..MEM / 4096).prop_map(|f| f * 4096), 1 => any::<u64>()],
        s2_root in prop_oneof![3 => (0..MEM / 4096).prop_map(|f| f * 4096), 1 => any::<u64>()],
        inputs in proptest::collection::vec(input(), 8),
        access in access(),
    ) {
        let mem = memory(seed);
        let stage2 = Stage2 { format: &s2, mem: mem.as_ref(), root: s2_root };
        for input in inputs {
            match nested_walk(&s1, s1_root, &stage2, input, access) {
                Ok(t) => prop_assert!(t.refs <= 2000),
                Err(f) => prop_assert!(f.level <= 5 || f.reason == FaultReason::AddressWidth),
            }
        }
    }
}

#[test]
fn generators_reach_successful_walks() {
    // Run the x86 property alone a few times with fixed seeds and count successes.
    let fmt = X86Paging {
        smap: false,
        smep: false,
        ..X86Paging::default()
    };
    let mut ok = 0;
    for seed in 1..200u64 {
        let mem = memory(seed);
        for input in 0..64u64 {
            let a = (input % 4) << 12 | (input / 4 % 4) << 21 | (input / 16) << 30;
            ok += walk(&fmt, mem.as_ref(), 0, a, Access::READ, &mut Direct, &mut ()).is_ok() as u32;
        }
    }
    assert!(ok > 100, "only {ok} successful walks");
}

#[test]
fn a_table_outside_memory_is_a_fault_not_a_read() {
    let mem = Arc::new(PhysMemory::new(MEM).unwrap());
    mem.store_u64(0, (1 << 40) | 0x7).unwrap();
    let fmt = X86Paging::default();
    let f = walk(&fmt, mem.as_ref(), 0, 0, Access::READ, &mut Direct, &mut ()).unwrap_err();
    assert_eq!((f.reason, f.level), (FaultReason::OutsideMemory, 3));
    let f = walk(
        &fmt,
        mem.as_ref(),
        MEM,
        0,
        Access::READ,
        &mut Direct,
        &mut (),
    )
    .unwrap_err();
    assert_eq!((f.reason, f.level), (FaultReason::OutsideMemory, 4));
    assert!(mem.load_u64(MEM).is_err());
}
