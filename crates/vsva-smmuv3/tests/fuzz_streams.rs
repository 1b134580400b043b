//! Seeded random inputs through the fuzz interpreter (`vsva_smmuv3::fuzz`, the harness the
//! cargo-fuzz target `smmuv3_unit` drives): register writes, table and queue contents,
//! commands and device traffic never panic or hang the SMMU and keep its invariants (queue
//! indexes in range, CR0ACK, GERROR/GERRORN, bounded stalls, no DMA beyond memory). The
//! hand-written streams show the interpreter's ops reach the deep states.

use proptest::prelude::*;
use vsva_smmuv3::fuzz::{Summary, run, sid};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_streams_are_survived(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let s = run(&data);
        prop_assert!(s.ops <= data.len() as u64);
    }
}

/// Builds a stream op by op.
#[derive(Default)]
struct Stream(Vec<u8>);

/// REGISTERS indexes of the harness, as selectors (even: a named register).
const CR0: u16 = 0;
const STRTAB_BASE: u16 = 6 << 1;
const STRTAB_BASE_CFG: u16 = 7 << 1;
const CMDQ_BASE: u16 = 8 << 1;
const EVENTQ_BASE: u16 = 11 << 1;

impl Stream {
    fn new(setup: u8) -> Stream {
        Stream(vec![setup])
    }
    fn mmio(mut self, sel: u16, size: u8, v: u64) -> Stream {
        self.0.push(if size == 8 { 0x10 } else { 0 });
        self.0.extend_from_slice(&sel.to_le_bytes());
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A transaction: `bits` are the access (low 4), the address mode (5:4), SubstreamID
    /// present (6) and stallable (7).
    fn txn(mut self, sid: u32, ssid: u32, raw: u64, bits: u8) -> Stream {
        self.0.push(8);
        self.0.push(sid as u8);
        self.0.extend_from_slice(&ssid.to_le_bytes());
        self.0.extend_from_slice(&raw.to_le_bytes());
        self.0.push(bits);
        self.0.extend_from_slice(&0u32.to_le_bytes());
        self
    }
    /// A command at PROD: `kind` < 0x80 a valid one, else a raw opcode.
    fn cmd(mut self, kind: u8, sid: u8, x: u64) -> Stream {
        self.0.extend_from_slice(&[5, kind, sid]);
        self.0.extend_from_slice(&x.to_le_bytes());
        self.0.push(0);
        self
    }
    /// A raw memory word in the command queue's area (`t` = 0x85).
    fn cmdq_word(mut self, i: u16, v: u64) -> Stream {
        self.0.extend_from_slice(&[3, 0x85]);
        self.0.extend_from_slice(&i.to_le_bytes());
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn consume(mut self, what: u8) -> Stream {
        self.0.extend_from_slice(&[7, what]);
        self
    }
    fn burst(mut self, n: u8, sid: u8, bits: u8) -> Stream {
        self.0.extend_from_slice(&[14, n, sid, bits]);
        self
    }
    fn poll(mut self, x: u16) -> Stream {
        self.0.push(13);
        self.0.extend_from_slice(&x.to_le_bytes());
        self
    }
    fn run(&self) -> Summary {
        run(&self.0)
    }
}

#[test]
fn a_driver_programmed_from_reset_gets_stage_1_stage_2_and_nested_translations() {
    // From reset (setup bit 3): the stream table, the queues and CR0 written through the
    // interpreter's register op, then one DMA per translating STE.
    let s = Stream::new(8)
        .mmio(STRTAB_BASE, 8, 0x1_0000)
        .mmio(STRTAB_BASE_CFG, 4, 6)
        .mmio(CMDQ_BASE, 8, 0x2_0004)
        .mmio(EVENTQ_BASE, 8, 0x2_1003)
        .mmio(CR0, 4, 0xd)
        .txn(sid::S1, 0, 2, 0x01)
        .txn(sid::S2, 0, 0x1000, 0x12)
        .txn(sid::NESTED, 0, 3, 0x01)
        .txn(sid::BYPASS, 0, 0x2000, 0x12)
        .run();
    assert_eq!((s.translated, s.refused, s.events), (4, 0, 0), "{s:?}");
}

#[test]
fn an_illegal_command_stops_the_queue_until_acknowledged_and_fixed() {
    // Opcode 0xff (raw kind 0x80 | 23): CERROR_ILL. Then the entry is made a CMD_SYNC and
    // GERROR.CMDQ_ERR acknowledged: the queue runs again.
    let s = Stream::new(0)
        .cmd(0x80 | 23, 0, 0)
        .cmdq_word(0, 0x46)
        .cmdq_word(1, 0)
        .consume(4)
        .run();
    assert_eq!((s.cmdq_errors, s.commands), (1, 1), "{s:?}");
}

#[test]
fn faults_past_the_event_queue_size_overflow_it() {
    // 32 transactions on an invalid STE: C_BAD_STE each, 8 recorded, then OVFLG.
    let s = Stream::new(0).burst(31, sid::INVALID as u8, 1).run();
    assert_eq!(
        (s.events, s.event_overflows, s.refused),
        (8, 1, 32),
        "{s:?}"
    );
    // Software empties the queue and acknowledges: recording resumes.
    let s = Stream::new(0)
        .burst(31, sid::INVALID as u8, 1)
        .consume(1)
        .burst(0, sid::INVALID as u8, 1)
        .run();
    assert_eq!(s.events, 9, "{s:?}");
}

#[test]
fn a_stalled_transaction_is_resumed_by_cmd_resume() {
    // SubstreamID 1 (the stalling CD), VA page 11 (invalid), stallable: a stall. CMD_RESUME
    // (valid kind 10, x = 1: abort) ends it; the poll takes the outcome.
    let s = Stream::new(0)
        .txn(sid::S1, 1, 11, 0xc1)
        .cmd(10, sid::S1 as u8, 1)
        .poll(0)
        .run();
    assert_eq!((s.stalled, s.translated, s.events), (1, 0, 1), "{s:?}");
}

#[test]
fn the_page_tables_leaf_beyond_memory_is_refused_at_the_access() {
    // VA page 8 maps beyond memory: the translation succeeds (inside the OAS), and the
    // interpreter's access check sees memory refuse it.
    let s = Stream::new(0).txn(sid::S1, 0, 8, 0x01).run();
    assert_eq!(s.translated, 1, "{s:?}");
}

#[test]
fn stalls_with_their_events_consumed_stay_within_stall_max() {
    // 80 stalling faults, software taking each event but resuming none: IDR5.STALL_MAX
    // (64) bounds the stalls outstanding (§6.3.6); the checks assert it after every step.
    let mut s = Stream::new(0);
    for _ in 0..80 {
        s = s.txn(sid::S1, 1, 11, 0xc1).consume(1);
    }
    let s = s.run();
    assert_eq!((s.stalled, s.events), (64, 80), "{s:?}");
}

#[test]
fn a_virtual_units_vmm_is_reached_and_may_refuse() {
    // Setup bit 7: a VMM behind the unit. CMD_CFGI_CD (valid kind 2) of SubstreamID 2 it
    // takes; of SubstreamID 3 it refuses: CERROR_ILL for the guest (the checks see a valid
    // CONS.ERR, and that the VMM heard every SMMUEN change and CMD_SYNC).
    let ssid = |s: u64| 1 | s << 8;
    let s = Stream::new(0x80).cmd(2, sid::S1 as u8, ssid(2)).run();
    assert_eq!((s.cmdq_errors, s.commands), (0, 1), "{s:?}");
    let s = Stream::new(0x80).cmd(2, sid::S1 as u8, ssid(3)).run();
    assert_eq!((s.cmdq_errors, s.commands), (1, 0), "{s:?}");
    // without the VMM the same command is just consumed
    let s = Stream::new(0).cmd(2, sid::S1 as u8, ssid(3)).run();
    assert_eq!((s.cmdq_errors, s.commands), (0, 1), "{s:?}");
    // a CMD_RESUME of a stall the unit never had: the VMM relays an event from inside it
    let s = Stream::new(0x80).cmd(10, sid::S1 as u8, 1).run();
    assert_eq!((s.cmdq_errors, s.commands, s.events), (0, 1, 1), "{s:?}");
}

/// Many seeds, for a longer local run: `cargo test -p vsva-smmuv3 --test fuzz_streams --
/// --ignored` with `FUZZ_SECONDS` (default 60).
#[test]
#[ignore]
fn many_seeds() {
    let secs: u64 = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let seed0: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut seed = seed0;
    let mut deep = [0u64; 6];
    while std::time::Instant::now() < end {
        // xorshift64*: reproducible streams, each seed printed before it runs.
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let len = (x % 4096) as usize;
        let data: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect();
        let r = std::panic::catch_unwind(|| run(&data));
        let Ok(s) = r else {
            panic!("seed {seed} failed");
        };
        // How many streams reached each deep state.
        for (n, reached) in deep.iter_mut().zip([
            s.translated > 0,
            s.stalled > 0,
            s.commands > 0,
            s.cmdq_errors > 0,
            s.event_overflows > 0,
            s.page_requests > 0,
        ]) {
            *n += u64::from(reached);
        }
        seed += 1;
    }
    eprintln!(
        "seeds {seed0}..{seed}; streams that translated, stalled, consumed commands, stopped \
         the command queue, overflowed the event queue, queued page requests: {deep:?}"
    );
}
