//! The copy engine driven through its registers only, bound and attached through the model's
//! VFIO cdev to an IOAS holding this test process's own memory (the shim's
//! [`ProgramMemory`](crate::program::ProgramMemory), as under `LD_PRELOAD`).

use std::sync::Arc;

use vsva_demo::regs::pattern_byte;
use vsva_iommufd::abi::{IoasMapFlags, IommuDestroy, IommuIoasAlloc, IommuIoasMap, IommuIoasUnmap};
use vsva_iommufd::{Iommufd, VfioDeviceFile};
use vsva_mem::PhysMemory;

use super::*;
use crate::{shim, sys};

const IOVA: u64 = 0x10_0000;
const RW: IoasMapFlags = IoasMapFlags::READABLE
    .union(IoasMapFlags::WRITEABLE)
    .union(IoasMapFlags::FIXED_IOVA);
const RO: IoasMapFlags = IoasMapFlags::READABLE.union(IoasMapFlags::FIXED_IOVA);

/// An engine bound to a context of its own, attached to an IOAS with `pages` pages of fresh
/// memory of this process at [`IOVA`].
struct Rig {
    ictx: Arc<Iommufd>,
    engine: Arc<CopyEngine>,
    file: Option<VfioDeviceFile>,
    ioas: u32,
    /// The user address of the memory at [`IOVA`].
    va: u64,
}

fn buffer(len: u64) -> u64 {
    sys::mmap(
        0,
        len,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
        -1,
    )
    .expect("mmap of a test buffer")
}

fn map(ictx: &Iommufd, ioas: u32, flags: IoasMapFlags, va: u64, len: u64, iova: u64) {
    let mut cmd = IommuIoasMap {
        size: 40,
        flags: flags.bits(),
        ioas_id: ioas,
        __reserved: 0,
        user_va: va,
        length: len,
        iova,
    };
    ictx.ioas_map(&mut cmd).expect("IOAS_MAP");
}

fn unmap(ictx: &Iommufd, ioas: u32, iova: u64, length: u64) -> Result<u64, Errno> {
    let mut cmd = IommuIoasUnmap {
        size: 24,
        ioas_id: ioas,
        iova,
        length,
    };
    ictx.ioas_unmap(&mut cmd).map(|()| cmd.length)
}

fn destroy(ictx: &Iommufd, id: u32) -> Result<(), Errno> {
    ictx.destroy(&IommuDestroy { size: 8, id })
}

fn rig(pages: u64) -> Rig {
    let m = shim::machine().expect("the default machine builds");
    let ictx = Arc::new(Iommufd::new(m.program.clone(), m.platform.iommu().clone()));
    let mut alloc = IommuIoasAlloc {
        size: 12,
        ..Default::default()
    };
    ictx.ioas_alloc(&mut alloc).unwrap();
    let ioas = alloc.out_ioas_id;
    let va = buffer(pages * PAGE);
    map(&ictx, ioas, RW, va, pages * PAGE, IOVA);
    let phys: Arc<dyn PhysMem> = m.mem.clone();
    let (engine, vdev) = CopyEngine::new_vfio(phys);
    let file = vdev.open();
    file.bind(ictx.clone()).unwrap();
    assert_eq!(file.attach(ioas, None), Ok(ioas));
    Rig {
        ictx,
        engine,
        file: Some(file),
        ioas,
        va,
    }
}

/// What a register-level driver sees after ringing the doorbell: (STATUS, RESULT, ERROR).
fn submit(
    engine: &CopyEngine,
    op: Op,
    flags: u64,
    src: u64,
    dst: u64,
    len: u64,
    pattern: u64,
) -> (u64, u64, u64) {
    for (reg, value) in [
        (regs::COMMAND, op as u64),
        (regs::FLAGS, flags),
        (regs::SRC, src),
        (regs::DST, dst),
        (regs::LEN, len),
        (regs::PATTERN, pattern),
        (regs::DOORBELL, 1),
    ] {
        engine.mmio_write(reg, value);
    }
    (
        engine.mmio_read(regs::STATUS),
        engine.mmio_read(regs::RESULT),
        engine.mmio_read(regs::ERROR),
    )
}

fn done(result: u64) -> (u64, u64, u64) {
    (Status::Done as u64, result, 0)
}

fn failed(error: MdevError, errno: Errno) -> (u64, u64, u64) {
    (Status::Error as u64, errno.0 as u64, error as u64)
}

fn read_user(va: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    assert_eq!(sys::vm_read_prefix(va, &mut out), len);
    out
}

fn write_user(va: u64, data: &[u8]) {
    assert_eq!(sys::vm_write_prefix(va, data), data.len());
}

fn lone_engine() -> (Arc<CopyEngine>, Arc<VfioDevice>) {
    let mem: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(1 << 20).unwrap());
    CopyEngine::new_vfio(mem)
}

#[test]
fn config_space_is_a_type0_header_with_a_sizable_bar() {
    let (engine, _vdev) = lone_engine();
    assert_eq!(engine.config_size(), 256);
    assert_eq!(engine.config_read(0, 4), 0x10f1_1af4);
    assert_eq!(engine.config_read(2, 2), 0x10f1);
    assert_eq!(engine.config_read(1, 1), 0x1a);
    assert_eq!(
        engine.config_read(8, 4),
        0x0880_0001,
        "class 08:80:00, revision 1"
    );
    assert_eq!(engine.config_read(0x0e, 1), 0, "type-0 header");
    assert_eq!(engine.config_read(0x06, 2), 0, "no capability list");
    assert_eq!(engine.config_read(0x34, 1), 0);
    assert_eq!(engine.config_read(0x2c, 4), 0x10f1_1af4, "subsystem IDs");
    assert_eq!(engine.config_read(0x3d, 1), 0, "no interrupt pin");
    // read-only fields drop writes
    engine.config_write(0, 4, 0xffff_ffff);
    engine.config_write(0x08, 4, 0);
    assert_eq!(engine.config_read(0, 4), 0x10f1_1af4);
    assert_eq!(engine.config_read(8, 4), 0x0880_0001);
    // BAR sizing: all ones reads back the size mask, a 32-bit memory BAR of 4 KiB
    engine.config_write(0x10, 4, 0xffff_ffff);
    assert_eq!(engine.config_read(0x10, 4), 0xffff_f000);
    engine.config_write(0x10, 4, 0xfebc_1234);
    assert_eq!(engine.config_read(0x10, 4), 0xfebc_1000);
    engine.config_write(0x14, 4, 0xffff_ffff);
    assert_eq!(engine.config_read(0x14, 4), 0, "BAR 1 is not implemented");
    // command: memory space, bus master and INTx disable only
    engine.config_write(0x04, 2, 0xffff);
    assert_eq!(engine.config_read(0x04, 2), 0x0406);
    engine.config_write(0x3c, 1, 0x0b);
    assert_eq!(engine.config_read(0x3c, 1), 0x0b);
    // every other byte reads 0 and stays so
    for at in (0x40..256).step_by(4) {
        engine.config_write(at, 4, 0xffff_ffff);
        assert_eq!(engine.config_read(at, 4), 0, "{at:#x}");
    }
    // out of range (the regions code never asks): 0, no panic
    assert_eq!(engine.config_read(254, 4), 0);
    engine.config_write(255, 4, 0xffff_ffff);
}

#[test]
fn registers_hold_values_and_read_only_ones_drop_writes() {
    let (engine, _vdev) = lone_engine();
    for (i, reg) in [
        regs::COMMAND,
        regs::SRC,
        regs::DST,
        regs::LEN,
        regs::PATTERN,
        regs::FLAGS,
    ]
    .into_iter()
    .enumerate()
    {
        engine.mmio_write(reg, 0x1000 + i as u64);
        assert_eq!(engine.mmio_read(reg), 0x1000 + i as u64);
    }
    for reg in [regs::PASID, regs::STATUS, regs::RESULT, regs::ERROR] {
        engine.mmio_write(reg, 0xdead);
        assert_eq!(engine.mmio_read(reg), 0, "{reg:#x}");
    }
    engine.mmio_write(regs::DOORBELL, 0);
    assert_eq!(
        engine.mmio_read(regs::STATUS),
        Status::Idle as u64,
        "bit 0 clear: no command"
    );
    assert_eq!(engine.mmio_read(regs::DOORBELL), 0, "write-only");
    engine.mmio_write(regs::ERROR + 8, 1);
    assert_eq!(
        engine.mmio_read(regs::ERROR + 8),
        0,
        "past the last register"
    );
    engine.mmio_write(regs::SRC + 4, 7);
    assert_eq!(engine.mmio_read(regs::SRC + 4), 0, "misaligned");
    assert_eq!(engine.mmio_read(regs::SRC), 0x1001);
}

#[test]
fn bad_commands_fail_before_any_dma() {
    let (engine, _vdev) = lone_engine();
    let bad = (Status::Error as u64, 0, MdevError::BadCommand as u64);
    for op in [0, 6, u64::MAX] {
        engine.mmio_write(regs::COMMAND, op);
        engine.mmio_write(regs::DOORBELL, 1);
        assert_eq!(engine.mmio_read(regs::STATUS), Status::Error as u64);
        assert_eq!(engine.mmio_read(regs::ERROR), MdevError::BadCommand as u64);
    }
    for flag in [1, 1 << 2, 1 << 63] {
        assert_eq!(
            submit(&engine, Op::Fill, flag, 0, IOVA, 8, 0),
            bad,
            "flag {flag:#x}"
        );
    }
    assert_eq!(submit(&engine, Op::Fill, 0, 0, IOVA, MAX_LEN + 1, 0), bad);
    assert_eq!(submit(&engine, Op::Fill, 0, 0, u64::MAX - 6, 8, 0), bad);
    assert_eq!(submit(&engine, Op::Copy, 0, u64::MAX, IOVA, 2, 0), bad);
    assert_eq!(
        submit(&engine, Op::Compare, 0, IOVA, u64::MAX, 2, 0),
        bad,
        "COMPARE reads DST"
    );
    // the last byte of the space is a range that does not wrap; the device is not bound
    assert_eq!(
        submit(&engine, Op::Fill, 0, 0, u64::MAX, 1, 0),
        failed(MdevError::Unavailable, Errno::EINVAL)
    );
    assert_eq!(
        submit(&engine, Op::Fill, FLAG_PIN, 0, IOVA, 8, 0),
        failed(MdevError::Unavailable, Errno::EINVAL)
    );
    // an empty command moves nothing and succeeds
    assert_eq!(submit(&engine, Op::Fill, 0, 0, IOVA, 0, 0), done(0));
    assert_eq!(
        submit(&engine, Op::ReadChecksum, 0, IOVA, 0, 0, 0),
        done(CHECKSUM_INIT)
    );
    assert_eq!(submit(&engine, Op::Compare, 0, 0, 0, 0, 0), done(u64::MAX));
}

#[test]
fn errnos_map_to_error_codes() {
    for (errno, error) in [
        (Errno::ENOENT, MdevError::NotMapped),
        (Errno::EPERM, MdevError::Denied),
        (Errno::EINVAL, MdevError::Unavailable),
        (Errno::ENOMEM, MdevError::NoMemory),
        (Errno::EFAULT, MdevError::Fault),
        (Errno::EOVERFLOW, MdevError::Fault),
    ] {
        assert_eq!(MdevError::from_errno(errno), error);
    }
}

/// FILL, COPY, WRITE_PATTERN, READ_CHECKSUM and COMPARE over `rig`'s memory with `flags`.
fn every_command_lands(rig: &Rig, flags: u64) {
    let e = &rig.engine;
    let (off, n) = (100u64, 2 * PAGE + 77);
    assert_eq!(
        submit(e, Op::Fill, flags, 0, IOVA + off, n, 0x1a5),
        done(n),
        "the byte is PATTERN's low byte"
    );
    let mem = read_user(rig.va, (4 * PAGE) as usize);
    assert!(
        mem[off as usize..(off + n) as usize]
            .iter()
            .all(|&b| b == 0xa5)
    );
    assert_eq!(mem[off as usize - 1], 0);
    assert_eq!(mem[(off + n) as usize], 0);

    let seed = 0x5eed;
    let at = 3 * PAGE + 5;
    assert_eq!(
        submit(e, Op::WritePattern, flags, 0, IOVA + at, 300, seed),
        done(300)
    );
    let got = read_user(rig.va + at, 300);
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, &b)| b == pattern_byte(seed, i as u64))
    );

    assert_eq!(
        submit(e, Op::Copy, flags, IOVA + at, IOVA + 7, 300, 0),
        done(300)
    );
    assert_eq!(read_user(rig.va + 7, 300), got);

    let sum = checksum(&got, CHECKSUM_INIT);
    assert_eq!(
        submit(e, Op::ReadChecksum, flags, IOVA + 7, 0, 300, 0),
        done(sum)
    );
    assert_eq!(
        submit(e, Op::Compare, flags, IOVA + 7, IOVA + at, 300, 0),
        done(u64::MAX)
    );
    write_user(rig.va + 7 + 123, &[!got[123]]);
    assert_eq!(
        submit(e, Op::Compare, flags, IOVA + 7, IOVA + at, 300, 0),
        done(123)
    );
}

#[test]
fn commands_through_dma_rw_land_in_the_program_and_pin_nothing() {
    let rig = rig(4);
    every_command_lands(&rig, 0);
    assert_eq!(rig.engine.pinned_pages(), 0);
    assert_eq!(unmap(&rig.ictx, rig.ioas, IOVA, 4 * PAGE), Ok(4 * PAGE));
}

#[test]
fn pinned_commands_land_and_keep_their_pages_pinned() {
    let rig = rig(4);
    every_command_lands(&rig, FLAG_PIN);
    assert_eq!(rig.engine.pinned_pages(), 4, "every page touched, once");
    let written = lock(&rig.engine.pins).values().filter(|p| p.write).count();
    assert_eq!(written, 4, "each was written by some command");
}

#[test]
fn a_read_pin_is_replaced_by_a_write_pin() {
    let rig = rig(2);
    let e = &rig.engine;
    assert_eq!(
        submit(e, Op::ReadChecksum, FLAG_PIN, IOVA, 0, 16, 0).0,
        Status::Done as u64
    );
    assert!(!lock(&e.pins)[&IOVA].write);
    assert_eq!(submit(e, Op::Fill, FLAG_PIN, 0, IOVA, 16, 0x42), done(16));
    assert!(lock(&e.pins)[&IOVA].write);
    assert_eq!(e.pinned_pages(), 1);
    assert_eq!(read_user(rig.va, 16), vec![0x42; 16]);
    // the unmap finds one pin to drop: the read pin went when the write pin came
    assert_eq!(unmap(&rig.ictx, rig.ioas, IOVA, 2 * PAGE), Ok(2 * PAGE));
}

#[test]
fn unmap_of_pinned_pages_calls_dma_unmap_and_later_commands_fail() {
    let rig = rig(4);
    let e = &rig.engine;
    assert_eq!(
        submit(e, Op::Fill, FLAG_PIN, 0, IOVA + PAGE, 2 * PAGE, 0x11),
        done(2 * PAGE)
    );
    assert_eq!(
        submit(e, Op::Fill, FLAG_PIN, 0, IOVA + 3 * PAGE, 8, 0x22),
        done(8)
    );
    assert_eq!(e.pinned_pages(), 3);
    // the unmap asks the engine to let go of the pages in the range, and succeeds
    assert_eq!(unmap(&rig.ictx, rig.ioas, IOVA, 4 * PAGE), Ok(4 * PAGE));
    assert_eq!(e.pinned_pages(), 0);
    for flags in [FLAG_PIN, 0] {
        assert_eq!(
            submit(e, Op::Fill, flags, 0, IOVA + PAGE, 8, 0),
            failed(MdevError::NotMapped, Errno::ENOENT)
        );
    }
    // mapped again, the same IOVA works again
    let va = buffer(PAGE);
    map(&rig.ictx, rig.ioas, RW, va, PAGE, IOVA);
    assert_eq!(submit(e, Op::Fill, FLAG_PIN, 0, IOVA, 8, 0x33), done(8));
    assert_eq!(read_user(va, 8), vec![0x33; 8]);
}

#[test]
fn an_unmap_of_part_of_the_space_unpins_only_there() {
    let rig = rig(4);
    let e = &rig.engine;
    let va2 = buffer(PAGE);
    map(&rig.ictx, rig.ioas, RW, va2, PAGE, IOVA + 8 * PAGE);
    assert_eq!(submit(e, Op::Fill, FLAG_PIN, 0, IOVA, 8, 1), done(8));
    assert_eq!(
        submit(e, Op::Fill, FLAG_PIN, 0, IOVA + 8 * PAGE, 8, 2),
        done(8)
    );
    assert_eq!(unmap(&rig.ictx, rig.ioas, IOVA + 8 * PAGE, PAGE), Ok(PAGE));
    assert_eq!(e.pinned_pages(), 1);
    assert!(lock(&e.pins).contains_key(&IOVA));
}

#[test]
fn read_only_mappings_refuse_the_device_s_writes() {
    let rig = rig(1);
    let e = &rig.engine;
    let ro = buffer(PAGE);
    write_user(ro, &[0x77; 64]);
    let at = IOVA + 16 * PAGE;
    map(&rig.ictx, rig.ioas, RO, ro, PAGE, at);
    for flags in [0, FLAG_PIN] {
        assert_eq!(
            submit(e, Op::Fill, flags, 0, at, 8, 0),
            failed(MdevError::Denied, Errno::EPERM)
        );
        assert_eq!(
            submit(e, Op::Copy, flags, IOVA, at, 8, 0),
            failed(MdevError::Denied, Errno::EPERM)
        );
        // reading it is fine
        assert_eq!(
            submit(e, Op::ReadChecksum, flags, at, 0, 64, 0),
            done(checksum(&[0x77; 64], CHECKSUM_INIT))
        );
    }
    assert_eq!(read_user(ro, 8), vec![0x77; 8]);
}

#[test]
fn a_command_across_a_gap_copies_up_to_it() {
    let rig = rig(1);
    let e = &rig.engine;
    assert_eq!(
        submit(e, Op::Fill, 0, 0, IOVA + PAGE - 8, 16, 0x99),
        failed(MdevError::NotMapped, Errno::ENOENT)
    );
    assert_eq!(read_user(rig.va + PAGE - 8, 8), vec![0x99; 8]);
    assert_eq!(
        submit(e, Op::Fill, FLAG_PIN, 0, IOVA + PAGE - 8, 16, 0x98),
        failed(MdevError::NotMapped, Errno::ENOENT)
    );
    assert_eq!(read_user(rig.va + PAGE - 8, 8), vec![0x98; 8]);
    assert_eq!(e.pinned_pages(), 1, "the page before the gap stays pinned");
}

#[test]
fn detach_and_close_unpin_everything_and_free_the_ioas() {
    let mut rig = rig(2);
    let e = rig.engine.clone();
    let file = rig.file.take().unwrap();
    let access = file.dev_id().unwrap();
    assert_eq!(
        destroy(&rig.ictx, access),
        Err(Errno::EBUSY),
        "VFIO holds it"
    );
    assert_eq!(
        submit(&e, Op::Fill, FLAG_PIN, 0, IOVA, 2 * PAGE, 1),
        done(2 * PAGE)
    );
    assert_eq!(destroy(&rig.ictx, rig.ioas), Err(Errno::EBUSY));
    file.detach(None).unwrap();
    assert_eq!(e.pinned_pages(), 0);
    assert_eq!(
        submit(&e, Op::Fill, 0, 0, IOVA, 8, 0),
        failed(MdevError::NotMapped, Errno::ENOENT),
        "no IOAS: iommufd_access_rw() is ENOENT"
    );
    assert_eq!(file.attach(rig.ioas, None), Ok(rig.ioas));
    assert_eq!(submit(&e, Op::Fill, FLAG_PIN, 0, IOVA, 8, 2), done(8));
    drop(file);
    assert_eq!(e.pinned_pages(), 0, "unbind detached the access");
    assert_eq!(destroy(&rig.ictx, access), Err(Errno::ENOENT), "destroyed");
    assert_eq!(destroy(&rig.ictx, rig.ioas), Ok(()));
    assert_eq!(
        submit(&e, Op::Fill, 0, 0, IOVA, 8, 0),
        failed(MdevError::Unavailable, Errno::EINVAL),
        "not bound"
    );
}
