//! The demo device writing into a fresh mmap of a bound process, and reading it back.

use vsva_demo::regs::{self, Op};
use vsva_demo::{Command, DemoDriver};
use vsva_host::Platform;
use vsva_mem::{Rid, Va};
use vsva_mm::{MapFlags, Prot};
use vsva_vtd::VtdConfig;

#[test]
fn the_device_writes_a_fresh_mmap_and_checksums_it() {
    let p = Platform::new(4 << 30, VtdConfig::default()).unwrap();
    let dev = p.add_device(Rid::from_bdf(0, 3, 0).unwrap(), 32, 64);
    let drv = DemoDriver::probe(&p, dev.clone(), false).unwrap();
    let proc_ = p.mm.spawn().unwrap();
    let ctx = drv.open(&p, &proc_).unwrap();
    let len = 3 * 4096 + 100;
    let buf = proc_
        .mmap(None, 4 * 4096, Prot::RW, MapFlags::empty())
        .unwrap();
    let cmd = Command {
        op: Op::WritePattern,
        src: 0,
        dst: buf.raw() + 7,
        len,
        pattern: 42,
        privileged: false,
    };
    assert_eq!(drv.run(&p, &ctx, &cmd).unwrap(), len);
    let mut got = vec![0u8; len as usize];
    proc_.read_bytes(Va::new(buf.raw() + 7), &mut got).unwrap();
    let want: Vec<u8> = (0..len).map(|i| regs::pattern_byte(42, i)).collect();
    assert_eq!(got, want);
    let s = dev.stats();
    assert_eq!(
        s.page_requests, 4,
        "four fresh pages faulted in by the device"
    );
    assert_eq!(s.page_group_responses, 4);
    // now read it back through the device: all ATC hits
    let sum = drv
        .run(
            &p,
            &ctx,
            &Command {
                op: Op::ReadChecksum,
                src: buf.raw() + 7,
                dst: 0,
                len,
                pattern: 0,
                privileged: false,
            },
        )
        .unwrap();
    assert_eq!(sum, regs::checksum(&want, regs::CHECKSUM_INIT));
    assert!(dev.stats().atc_hits >= 4);
}
