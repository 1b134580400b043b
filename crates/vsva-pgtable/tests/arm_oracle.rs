//! smoke
#[path = "arm_oracle/mod.rs"]
mod harness;

use harness::vmsa::{desc, sctlr, tcr};
use harness::*;

#[test]
fn smoke() {
    let l1 = 0x4030_0000u64;
    let data = 0x4020_0000u64;
    let regs = Regs {
        ttbr0: l1,
        tcr: tcr::t0sz(39) | tcr::WALK_WBWA_INNER | tcr::IPS_40 | tcr::HA | tcr::HD,
        mair: 0xff,
        sctlr: sctlr::DEFAULT,
    };
    let mut s = Scenario::new(regs);
    s.put_u64(l1 + 8, 0x4000_0000 | desc::BLOCK | desc::AF | desc::AP_EL0 | desc::SH_INNER);
    s.put_u64(data, 0x1234);
    s.put(data + 0x100, &exec_stub(7));
    s.probe(data, Access::Read);
    s.probe(data + 8, Access::Write(0x99));
    s.probe(data + 8, Access::Read);
    s.probe(data, Access::ReadEl0);
    s.probe(data + 0x100, Access::Fetch);
    s.probe(data + 0x100, Access::FetchEl0);
    s.probe(0x8000_0000, Access::Read);
    s.dump(l1 + 8, 8);
    let t = std::time::Instant::now();
    let r = run(&s).expect("qemu");
    eprintln!("{:?} {:x?}", t.elapsed(), r);
}
