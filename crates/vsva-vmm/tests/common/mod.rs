//! What the VM tests share: a host, guests on it, and the demo driver bound in a guest.

#![allow(dead_code)]

use std::sync::Arc;

use vsva_demo::Machine;
use vsva_demo::regs::Op;
use vsva_demo::{Command, Context, DemoDriver};
use vsva_host::Platform;
use vsva_mem::Rid;
use vsva_mm::Process;
use vsva_vmm::{VmConfig, VtdVm as Vm};
use vsva_vtd::VtdConfig;

pub const GIB: u64 = 1 << 30;

/// A host with room for two guests (sparse: only touched memory costs).
pub fn host() -> Arc<Platform> {
    Arc::new(Platform::new(16 * GIB, VtdConfig::default()).unwrap())
}

/// A guest with 2 GiB of RAM whose devices sit on host bus `bus`.
pub fn guest(host: &Arc<Platform>, bus: u8) -> Vm {
    Vm::boot(
        host.clone(),
        VmConfig {
            ram: 2 * GIB,
            host_bus: bus,
        },
    )
    .unwrap()
}

/// The guest's device 00:03.0 probed by the guest's demo driver, a guest process, and that
/// process bound to the device.
pub struct Bound {
    pub drv: DemoDriver,
    pub process: Arc<Process>,
    pub ctx: Context,
}

pub fn bind(vm: &Vm) -> Bound {
    bind_at(vm, 3)
}

/// As [`bind`], with device 00:`dev`.0 (plugged in if the VM does not have it yet).
pub fn bind_at(vm: &Vm, dev: u8) -> Bound {
    let rid = Rid::from_bdf(0, dev, 0).unwrap();
    let dev = vm.add_device(rid, 32, 256).unwrap();
    let drv = DemoDriver::probe(vm, dev, false).unwrap();
    let process = vm.mm().spawn().unwrap();
    let ctx = drv.open(vm, &process).unwrap();
    Bound { drv, process, ctx }
}

pub fn cmd(op: Op, src: u64, dst: u64, len: u64, pattern: u64) -> Command {
    Command::new(op, src, dst, len, pattern)
}
