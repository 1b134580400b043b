//! The project's demo device behind the SMMU ([`Smmuv3Port`] as its `vsva_pcie::Upstream`):
//! ATS Translation Requests, a Page Request for a missing page through the PRI queue, the
//! OS's CMD_PRI_RESP back through `vsva_pcie::Downstream`, translated DMA; and the
//! invalidation path (CMD_TLBI + CMD_ATC_INV + CMD_SYNC) that unbinding takes.

mod common;

use std::sync::Arc;

use common::xlate::*;
use common::*;
use vsva_demo::regs::{self, Op};
use vsva_demo::{DemoDevice, Fabric, Progress, enable_sva_capabilities};
use vsva_mem::{PageSize, PhysMem, Rid};
use vsva_pgtable::{ArmS1, PageTable, Perm};
use vsva_smmuv3::Smmuv3Port;
use vsva_smmuv3::spec::cmd::{Command, PriResp};
use vsva_smmuv3::spec::event::PriEntry;
use vsva_smmuv3::spec::registers::offset;
use vsva_smmuv3::spec::ste::{Ste, eats};
use zerocopy::IntoBytes;

const PRIQ: u64 = 0x38_0000;
const DEV_SID: u32 = 0x18;
const PASID: u32 = 1;
/// The process's buffer: page 0 mapped, page 1 not yet.
const BUF: u64 = 0x7f00_0000_0000;

struct Rig {
    b: Bench,
    dev: Arc<DemoDevice>,
    s1: PageTable<ArmS1>,
}

fn rig() -> Rig {
    let fabric = Arc::new(Fabric::default());
    let b = Bench::with_devices(fabric.clone(), PRIQ);
    let s1 = PageTable::new(s1_format(), frames(&b, S1_FRAMES)).unwrap();
    s1.map(BUF, PA, PageSize::Size4K, Perm::USER_RW).unwrap();
    // CD table of 16 CDs; PASID 1 uses CD 1 (Linux's SVA bind).
    b.write_cd_at(CDTAB + 64, &cd_from(good_cd0(ASID), s1.root()));
    let ste = s1_ste(CDTAB, 4, 0);
    b.write_ste(
        DEV_SID,
        &Ste::from_words(
            ste.w0(),
            ste.w1().with_eats(eats::TRANS),
            ste.w2(),
            ste.w3(),
        ),
    );
    let port = Arc::new(Smmuv3Port {
        smmu: b.smmu.clone(),
        mem: b.mem.clone(),
    });
    let dev = Arc::new(DemoDevice::new(Rid::from_raw(DEV_SID as u16), port, 32, 64));
    fabric.plug(dev.clone());
    enable_sva_capabilities(dev.as_ref(), false).unwrap();
    Rig { b, dev, s1 }
}

fn start(dev: &DemoDevice, op: Op, src: u64, dst: u64, len: u64, pattern: u64) {
    dev.mmio_write(regs::PASID, PASID as u64 | regs::PASID_VALID);
    dev.mmio_write(regs::COMMAND, op as u64);
    dev.mmio_write(regs::SRC, src);
    dev.mmio_write(regs::DST, dst);
    dev.mmio_write(regs::LEN, len);
    dev.mmio_write(regs::PATTERN, pattern);
    dev.mmio_write(regs::FLAGS, 0);
    dev.mmio_write(regs::DOORBELL, 1);
}

#[test]
fn the_demo_device_writes_through_the_smmu_and_pages_in_with_pri() {
    let mut r = rig();
    let len = 0x1800;
    start(&r.dev, Op::WritePattern, 0, BUF + 0x10, len, 42);
    // Page 0 translates; page 1 is missing: a Page Request, and the command waits.
    assert_eq!(r.dev.run(), Progress::Waiting);
    assert_eq!(r.b.r32(offset::PRIQ_PROD), 1);
    let mut e = PriEntry::default();
    r.b.mem.read(PRIQ, e.as_mut_bytes()).unwrap();
    let f = e.fields();
    assert_eq!(
        (f.sid, f.ssid, f.addr, f.write, f.last),
        (DEV_SID, Some(PASID), BUF + 0x1000, true, true)
    );
    // The OS pages it in and answers.
    r.s1.map(BUF + 0x1000, PA_NEW, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    r.b.w32(offset::PRIQ_CONS, 1);
    r.b.submit(&[Command::PriResp {
        sid: DEV_SID,
        ssid: Some(PASID),
        prgi: f.prgi,
        resp: PriResp::Success,
    }]);
    r.b.sync();
    assert_eq!(r.dev.run(), Progress::Done);
    assert_eq!(r.dev.mmio_read(regs::RESULT), len);
    let mut got = vec![0u8; len as usize];
    r.b.mem.read(PA + 0x10, &mut got[..0xff0]).unwrap();
    r.b.mem.read(PA_NEW, &mut got[0xff0..]).unwrap();
    let want: Vec<u8> = (0..len).map(|i| regs::pattern_byte(42, i)).collect();
    assert_eq!(got, want);
    assert!(r.b.events().is_empty());
    // Read back: the device's ATC serves it.
    start(&r.dev, Op::ReadChecksum, BUF + 0x10, 0, len, 0);
    assert_eq!(r.dev.run(), Progress::Done);
    assert_eq!(
        r.dev.mmio_read(regs::RESULT),
        regs::checksum(&want, regs::CHECKSUM_INIT)
    );
}

#[test]
fn unmapping_with_tlbi_and_atc_inv_makes_the_device_ask_again() {
    let mut r = rig();
    start(&r.dev, Op::Fill, 0, BUF, 0x100, 0xab);
    assert_eq!(r.dev.run(), Progress::Done);
    let before = r.dev.stats().atc_invalidations;
    // munmap: clear the leaf, invalidate the SMMU TLB and the device's ATC, sync.
    r.s1.unmap(BUF, 0x1000).unwrap();
    r.b.submit(&[
        Command::TlbiNhVa {
            vmid: 0,
            asid: ASID,
            range: vsva_smmuv3::spec::cmd::TlbiRange {
                addr: BUF,
                leaf: true,
                ..Default::default()
            },
        },
        Command::AtcInv {
            sid: DEV_SID,
            ssid: Some(PASID),
            global: false,
            size: 0,
            addr: BUF,
        },
    ]);
    r.b.sync();
    assert_eq!(r.dev.stats().atc_invalidations, before + 1);
    // The next command finds no translation: a Page Request again.
    start(&r.dev, Op::Fill, 0, BUF, 0x100, 0xcd);
    assert_eq!(r.dev.run(), Progress::Waiting);
    assert_eq!(r.b.r32(offset::PRIQ_PROD), 1);
}
