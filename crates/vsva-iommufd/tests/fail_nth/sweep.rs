//! The sweeps: run a sequence with the Nth allocation point failing, N = 1, 2, … .

use vsva_iommufd::abi::Errno;
use vsva_mem::fail_nth;
use vsva_mm::{MapFlags, Prot};

use crate::machine::{BUF_LEN, MAX_N, Machine, Sequence};

/// The sweep: `setup` unarmed, then `swept` with the Nth allocation point failing, for N
/// from 1 until `swept` completes without reaching it. Returns the number of allocation
/// points `swept` passes.
pub fn sweep(m: &Machine, setup: Sequence, swept: Sequence) -> u64 {
    // One complete run first: what the driver keeps across contexts (a device's PASID table,
    // allocated at its first attach) is then part of the baseline.
    let run_whole = || {
        let mut ctx = m.open();
        setup(m, &mut ctx).unwrap();
        swept(m, &mut ctx).unwrap();
        ctx.close();
    };
    run_whole();
    let baseline = m.usage();
    for n in 1..=MAX_N {
        let mut ctx = m.open();
        setup(m, &mut ctx).unwrap();
        fail_nth::arm(n);
        let result = swept(m, &mut ctx);
        let outcome = fail_nth::disarm();
        if !outcome.fired {
            assert_eq!(
                result,
                Ok(()),
                "N = {n}: nothing failed, yet the sequence did"
            );
            ctx.close();
            assert_eq!(m.usage(), baseline, "after the complete run");
            eprintln!("swept {} allocation points", n - 1);
            return n - 1;
        }
        match result {
            Err((step, Errno::ENOMEM)) => eprintln!("N = {n}: {step}"),
            other => panic!("N = {n}: the injected failure gave {other:?}, not ENOMEM"),
        }
        ctx.close();
        assert_eq!(m.usage(), baseline, "N = {n}: {result:?} left this behind");
        run_whole();
        assert_eq!(
            m.usage(),
            baseline,
            "N = {n}: the run after it left this behind"
        );
    }
    panic!("more than {MAX_N} allocation points");
}

/// As [`sweep`], on a fresh machine for every N, so the driver's structures allocated at a
/// device's first attach (a VT-d context and PASID table, an SMMUv3 stream table level 2) are
/// swept too. After the failure and close, a complete run must leave the machine as a
/// complete run leaves a fresh one.
pub fn sweep_fresh(make: fn() -> Machine, setup: Sequence, swept: Sequence) -> u64 {
    let run_whole = |m: &Machine| {
        let mut ctx = m.open();
        setup(m, &mut ctx).unwrap();
        swept(m, &mut ctx).unwrap();
        ctx.close();
    };
    let reference = {
        let m = make();
        run_whole(&m);
        m.usage()
    };
    for n in 1..=MAX_N {
        let m = make();
        let mut ctx = m.open();
        setup(&m, &mut ctx).unwrap();
        fail_nth::arm(n);
        let result = swept(&m, &mut ctx);
        let outcome = fail_nth::disarm();
        if !outcome.fired {
            assert_eq!(
                result,
                Ok(()),
                "N = {n}: nothing failed, yet the sequence did"
            );
            ctx.close();
            assert_eq!(m.usage(), reference, "after the complete run");
            eprintln!("swept {} allocation points", n - 1);
            return n - 1;
        }
        match result {
            Err((step, Errno::ENOMEM)) => eprintln!("N = {n}: {step}"),
            other => panic!("N = {n}: the injected failure gave {other:?}, not ENOMEM"),
        }
        ctx.close();
        run_whole(&m);
        assert_eq!(m.usage(), reference, "N = {n}: {result:?} left this behind");
    }
    panic!("more than {MAX_N} allocation points");
}

/// As [`sweep`], with the user buffer mapped but not populated before each run and unmapped
/// after it: pinning faults the pages in (the memory manager's page and page-table
/// allocations), and once the context is closed and the buffer unmapped every frame of the
/// process must be free again (a page still pinned or referenced would stay allocated).
pub fn sweep_faulting(setup: Sequence, swept: Sequence) -> u64 {
    let m = Machine::vtd();
    let run = |n: Option<u64>| {
        let buf =
            m.p.mmap(None, BUF_LEN, Prot::RW, MapFlags::empty())
                .unwrap();
        m.lazy_buf.set(buf.raw());
        let mut ctx = m.open();
        setup(&m, &mut ctx).unwrap();
        fail_nth::arm(n.unwrap_or(0));
        let result = swept(&m, &mut ctx);
        let outcome = fail_nth::disarm();
        ctx.close();
        m.p.munmap(buf, BUF_LEN).unwrap();
        (result, outcome)
    };
    assert_eq!(run(None).0, Ok(()));
    let baseline = m.usage();
    for n in 1..=MAX_N {
        let (result, outcome) = run(Some(n));
        if !outcome.fired {
            assert_eq!(
                result,
                Ok(()),
                "N = {n}: nothing failed, yet the sequence did"
            );
            assert_eq!(m.usage(), baseline, "after the complete run");
            eprintln!("swept {} allocation points", n - 1);
            return n - 1;
        }
        match result {
            Err((step, Errno::ENOMEM)) => eprintln!("N = {n}: {step}"),
            other => panic!("N = {n}: the injected failure gave {other:?}, not ENOMEM"),
        }
        assert_eq!(m.usage(), baseline, "N = {n}: {result:?} left this behind");
        assert_eq!(run(None).0, Ok(()), "N = {n}: the run after it");
        assert_eq!(
            m.usage(),
            baseline,
            "N = {n}: the run after it left this behind"
        );
    }
    panic!("more than {MAX_N} allocation points");
}
