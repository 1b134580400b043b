//! What the SMMUv3 VM tests share: an SMMUv3 host, guests with a virtual SMMUv3 on it, the
//! demo driver bound in a guest, and what a guest kernel can do to its own SMMU behind its
//! driver's back (write STEs, put raw commands on its command queue).
//!
//! Included with `#[path = "common/smmuv3.rs"] mod smmu;` by the `smmuv3_*` tests.

#![allow(dead_code)]

use std::sync::Arc;

use vsva_demo::{Command, Context, DemoDriver, Machine};
use vsva_host::{Host, Smmuv3Kind};
use vsva_iommu::NestedS1;
use vsva_iommufd::{HwptNested, ObjectType};
use vsva_mem::{PhysMem, Rid};
use vsva_mm::Process;
use vsva_smmuv3::spec::cd::L1Cd;
use vsva_smmuv3::spec::cmd::{Command as SmmuCommand, SyncCs};
use vsva_smmuv3::spec::event::EventRecord;
use vsva_smmuv3::spec::registers::{
    Gerror, QueueBase, StrtabBase, StrtabBaseCfg, cerror, offset, queue,
};
use vsva_smmuv3::spec::ste::L1Std;
use vsva_smmuv3::{Smmuv3, Smmuv3Config};
use vsva_vmm::{Smmuv3Vm, VmConfig};

pub const GIB: u64 = 1 << 30;
/// The SMMUv3 host.
pub type SmmuHost = Host<Smmuv3Kind>;

/// The guest's boot device, 00:03.0: its vSID is its guest RID.
pub const DEV: Rid = match Rid::from_bdf(0, 3, 0) {
    Ok(r) => r,
    Err(_) => panic!("valid"),
};

/// A host with room for two guests (sparse: only touched memory costs).
pub fn host() -> Arc<SmmuHost> {
    Arc::new(SmmuHost::new(16 * GIB, Smmuv3Config::default()).unwrap())
}

/// A guest with 2 GiB of RAM and a virtual SMMUv3 whose devices sit on host bus `bus`.
pub fn guest(host: &Arc<SmmuHost>, bus: u8) -> Smmuv3Vm {
    Smmuv3Vm::boot(
        host.clone(),
        VmConfig {
            ram: 2 * GIB,
            host_bus: bus,
        },
    )
    .unwrap()
}

/// The guest's device 00:`dev`.0 probed by the guest's demo driver, a guest process, and that
/// process bound to the device (SVA: the guest's driver writes a CD for its SubstreamID).
pub struct Bound {
    pub drv: DemoDriver,
    pub process: Arc<Process>,
    pub ctx: Context,
}

pub fn bind(vm: &Smmuv3Vm) -> Bound {
    bind_at(vm, 3)
}

pub fn bind_at(vm: &Smmuv3Vm, dev: u8) -> Bound {
    let rid = Rid::from_bdf(0, dev, 0).unwrap();
    let dev = vm.add_device(rid, 32, 256).unwrap();
    let drv = DemoDriver::probe(vm, dev, false).unwrap();
    let process = vm.mm().spawn().unwrap();
    let ctx = drv.open(vm, &process).unwrap();
    Bound { drv, process, ctx }
}

pub fn cmd(op: vsva_demo::regs::Op, src: u64, dst: u64, len: u64, pattern: u64) -> Command {
    Command::new(op, src, dst, len, pattern)
}

/// The host StreamID of guest StreamID `rid`.
pub fn host_sid(vm: &Smmuv3Vm, rid: Rid) -> u32 {
    u32::from(vm.vmm().host_rid(rid).raw())
}

/// The VMM's nested HWPTs: ID, the stage 1 the host driver accepted, the host devices
/// attached.
pub fn nested(vm: &Smmuv3Vm) -> Vec<(u32, NestedS1, Vec<Rid>)> {
    vm.vmm()
        .iommufd()
        .all::<HwptNested>()
        .iter()
        .map(|h| {
            let d = h.domain();
            (
                h.id(),
                d.s1(),
                d.attachments().into_iter().map(|(r, _)| r).collect(),
            )
        })
        .collect()
}

/// How many objects of `kind` the VMM's iommufd holds.
pub fn count(vm: &Smmuv3Vm, kind: ObjectType) -> usize {
    vm.vmm()
        .iommufd()
        .objects()
        .iter()
        .filter(|(_, t)| *t == kind)
        .count()
}

/// The address of StreamID `sid`'s STE in `unit`'s stream table, as the unit's registers
/// place it (IHI 0070 §3.3.2: linear, or two-level with SPLIT); `None` when its level-1
/// descriptor is invalid.
pub fn ste_addr(unit: &Smmuv3, mem: &dyn PhysMem, sid: u32) -> Option<u64> {
    let base = StrtabBase::from_bits(unit.mmio_read(offset::STRTAB_BASE, 8)).addr() << 6;
    let cfg = StrtabBaseCfg::from_bits(unit.mmio_read(offset::STRTAB_BASE_CFG, 4) as u32);
    if cfg.fmt() == 0 {
        return Some(base + u64::from(sid) * 64);
    }
    let split = cfg.split();
    let l1 = L1Std::from_bits(mem.load_u64(base + u64::from(sid >> split) * 8).ok()?);
    (l1.span() != 0).then(|| l1.l2() + u64::from(sid & ((1 << split) - 1)) * 64)
}

/// The address of the CD of `ssid` in the guest's CD table for `rid` as its driver placed it
/// (IHI 0070 §5.4.1: S1Fmt 0b00 linear; 0b01 two-level with 64 CDs per leaf; 0b10 with
/// 1024), `None` if its level-1 descriptor is invalid.
pub fn cd_addr(vm: &Smmuv3Vm, rid: Rid, ssid: u32) -> Option<u64> {
    let (base, fmt, _) = vm.os().driver.master_tables(rid)?;
    let ram = vm.vmm().ram();
    let split = match fmt {
        0 => return Some(base + u64::from(ssid) * 64),
        1 => 6,
        _ => 10,
    };
    let l1 = L1Cd::from_bits(ram.load_u64(base + u64::from(ssid >> split) * 8).ok()?);
    l1.v()
        .then(|| l1.l2() + u64::from(ssid & ((1 << split) - 1)) * 64)
}

/// Writes STE words 0 and 1 of the guest's StreamID `rid` (what a guest kernel can do behind
/// its driver) and issues CMD_CFGI_STE for it through the guest's driver. Returns what it
/// overwrote.
pub fn write_guest_ste(vm: &Smmuv3Vm, rid: Rid, words: [u64; 2]) -> [u64; 2] {
    let ram = vm.vmm().ram();
    let at = ste_addr(vm.unit(), ram.as_ref(), u32::from(rid.raw())).expect("STE present");
    let old = [ram.load_u64(at).unwrap(), ram.load_u64(at + 8).unwrap()];
    ram.store_u64(at + 8, words[1]).unwrap();
    ram.store_u64(at, words[0]).unwrap();
    cfgi_ste(vm, rid);
    old
}

/// CMD_CFGI_STE of `rid` and a CMD_SYNC, through the guest's driver.
pub fn cfgi_ste(vm: &Smmuv3Vm, rid: Rid) {
    vm.os()
        .driver
        .issue_commands(&[SmmuCommand::CfgiSte {
            sid: u32::from(rid.raw()),
            leaf: true,
        }])
        .unwrap();
}

/// What [`put_raw`] saw.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Injected {
    /// Commands the unit stopped at with CERROR_ILL.
    pub illegal: u32,
    /// Commands it consumed.
    pub consumed: u32,
}

/// The guest unit's command queue: base, log2 of its entries, PROD (with its wrap bit).
fn cmdq(vm: &Smmuv3Vm) -> (u64, u32, u32) {
    let unit = vm.unit();
    let q = QueueBase::from_bits(unit.mmio_read(offset::CMDQ_BASE, 8));
    let log2 = u32::from(q.log2size());
    let prod = unit.mmio_read(offset::CMDQ_PROD, 4) as u32 & ((2 << log2) - 1);
    (q.addr() << 5, log2, prod)
}

/// The guest unit's CMDQ_PROD now (index and wrap bit).
pub fn cmdq_prod(vm: &Smmuv3Vm) -> u32 {
    cmdq(vm).2
}

fn sync_cmd() -> [u64; 2] {
    SmmuCommand::Sync {
        cs: SyncCs::None,
        msh: 0,
        msiattr: 0,
        msidata: 0,
        msiaddr: 0,
    }
    .encode()
}

/// Puts raw commands on the guest unit's command queue behind its driver's back (a guest
/// kernel writing its own queue), no CMD_SYNC added: each chunk written at PROD and PROD
/// moved; a command the unit stops at (GERROR.CMDQ_ERR with CONS.ERR = CERROR_ILL, §7.1) is
/// counted, replaced by a CMD_SYNC and the error acknowledged, as Linux
/// `arm_smmu_cmdq_skip_err` does. [`realign`] gives the queue back to the driver.
pub fn put_raw(vm: &Smmuv3Vm, cmds: &[[u64; 2]]) -> Injected {
    let unit = vm.unit();
    let ram = vm.vmm().ram();
    let (base, log2, mut prod) = cmdq(vm);
    let size = 1u32 << log2;
    let wrap = (2 * size) - 1;
    let mut out = Injected::default();
    for chunk in cmds.chunks((size / 2) as usize) {
        for c in chunk {
            let at = base + u64::from(prod & (size - 1)) * 16;
            ram.store_u64(at + 8, c[1]).unwrap();
            ram.store_u64(at, c[0]).unwrap();
            prod = (prod + 1) & wrap;
        }
        unit.mmio_write(offset::CMDQ_PROD, 4, u64::from(prod));
        loop {
            let gerror = unit.mmio_read(offset::GERROR, 4) as u32;
            let gerrorn = unit.mmio_read(offset::GERRORN, 4) as u32;
            if (gerror ^ gerrorn) & Gerror::CMDQ_ERR.bits() == 0 {
                break;
            }
            let cons = unit.mmio_read(offset::CMDQ_CONS, 4) as u32;
            let code = ((cons >> queue::ERR_SHIFT) & queue::ERR_MASK) as u8;
            assert_eq!(code, cerror::ILL, "only illegal commands are injected");
            out.illegal += 1;
            let at = base + u64::from(cons & (size - 1)) * 16;
            let sync = sync_cmd();
            ram.store_u64(at + 8, sync[1]).unwrap();
            ram.store_u64(at, sync[0]).unwrap();
            unit.mmio_write(
                offset::GERRORN,
                4,
                u64::from(gerrorn ^ Gerror::CMDQ_ERR.bits()),
            );
        }
        let cons = unit.mmio_read(offset::CMDQ_CONS, 4) as u32 & wrap;
        assert_eq!(cons, prod, "the unit consumed the chunk");
    }
    out.consumed = cmds.len() as u32 - out.illegal;
    out
}

/// CMD_SYNCs until PROD is at `home` again (once more round the queue and its wrap bit if
/// need be), where the guest's driver left it.
pub fn realign(vm: &Smmuv3Vm, home: u32) {
    let (_, log2, prod) = cmdq(vm);
    let wrap = (2u32 << log2) - 1;
    let n = home.wrapping_sub(prod) & wrap;
    let syncs = vec![sync_cmd(); n as usize];
    assert_eq!(put_raw(vm, &syncs).illegal, 0);
    assert_eq!(cmdq_prod(vm), home);
}

/// [`put_raw`], then [`realign`] (a full turn of the queue: storms included).
pub fn inject_raw(vm: &Smmuv3Vm, cmds: &[[u64; 2]]) -> Injected {
    let home = cmdq_prod(vm);
    let out = put_raw(vm, cmds);
    realign(vm, home);
    out
}

/// The last event record `unit` wrote to its event queue in `mem` (at EVENTQ_PROD - 1).
pub fn last_event(unit: &Smmuv3, mem: &dyn PhysMem) -> EventRecord {
    let q = QueueBase::from_bits(unit.mmio_read(offset::EVENTQ_BASE, 8));
    let size = 1u32 << q.log2size();
    let prod = unit.mmio_read(offset::EVENTQ_PROD, 4) as u32;
    let slot = prod.wrapping_sub(1) & (size - 1);
    let at = (q.addr() << 5) + u64::from(slot) * 32;
    let mut words = [0u64; 4];
    for (i, w) in words.iter_mut().enumerate() {
        *w = mem.load_u64(at + 8 * i as u64).unwrap();
    }
    EventRecord { words }
}
