//! A byte-stream interpreter for fuzzing the guest-facing surface of a vIOMMU — the virtual
//! VT-d (`vtd`) and the virtual SMMUv3 (`smmuv3`): the guest's register writes, its writes
//! of table entries and queue entries into guest RAM, the invalidations and commands the VMM
//! relays (VT-d PASID-cache invalidations become host binds; SMMUv3 CFGI/TLBI/ATC commands
//! become vIOMMU invalidations), guest-driver binds, the assigned device's commands and DMAs,
//! and the interrupt handlers that pump page requests and events between host and guest.
//! Used by the cargo-fuzz targets `vmm_vtd` and `vmm_smmuv3` in `fuzz/` and by seeded tests.
//!
//! A [`Bench`] is built once (a host, a guest with 2 GiB and its vIOMMU, a host-only canary
//! device with its own paging domain, an unassigned host device); each
//! [`Bench::run`] plays one stream on the running guest, checks, then reboots the guest (the
//! vIOMMU reset releases what the stream made). Checks:
//! * after every step: no panic; a DMA of the assigned device that the host lets through
//!   reaches the guest's RAM and nothing else;
//! * after the stream: the canary's DMA through the host still reaches its page, the
//!   unassigned host device still has no attachment, and the VMM's iommufd holds only
//!   objects of the kinds a VMM makes;
//! * after the reboot: no host PASID binding is left and the VMM's iommufd objects are those
//!   it had before the stream; each stream starts with a known-good DMA through the fresh
//!   guest (driver probed, a process bound, a page filled and read back), so a stream that
//!   broke the host for later guests fails the next run.

mod smmuv3;
mod vtd;

use std::sync::Arc;

use vsva_demo::regs::{self, Op};
use vsva_demo::{Command, DemoDriver, Endpoint, Machine, Progress};
use vsva_host::{Host, Smmuv3Kind, VtdKind};
use vsva_iommu::{DeviceCaps, PagingDomain};
use vsva_iommufd::ObjectType;
use vsva_mem::{Pasid, PhysMem, Rid};
use vsva_mm::{MapFlags, Prot};
use vsva_pgtable::Perm;

use crate::vm::{BOOT_DEVICE, GuestKind, Vm, VmError};
use crate::vmm::VmConfig;

const GIB: u64 = 1 << 30;
/// Guest RAM.
const RAM: u64 = 2 * GIB;
/// The canary's IOVA.
const CANARY_IOVA: u64 = 0x10_0000;
/// The guest-physical window most memory writes go to (where the guest OS keeps its tables).
const LOW: u64 = 64 << 20;

/// What the harness needs of a vIOMMU kind beyond [`GuestKind`]: its guest-facing surface.
pub trait Surface: GuestKind + Sized {
    /// The host unit's configuration.
    fn host_config() -> Self::Config;
    /// Registers worth hitting more often than random offsets.
    const REGISTERS: &'static [u64];
    /// Registers that hold guest-physical pointers (kept inside the low 64 MiB mostly).
    const POINTERS: &'static [u64];
    /// Size of the register window.
    const WINDOW: u64;
    /// A guest register read.
    fn mmio_read(unit: &Self::Unit, off: u64, size: u8) -> u64;
    /// A guest register write.
    fn mmio_write(unit: &Self::Unit, off: u64, size: u8, value: u64);
    /// Where the guest's structures are now (tables, queues), by the registers.
    fn bases(unit: &Self::Unit) -> [u64; 3];
    /// Four words on the guest's invalidation or command queue, and the producer index moved.
    fn queue(unit: &Self::Unit, ram: &dyn PhysMem, words: [u64; 4]);
    /// The guest kernel's own driver binds `pasid` of the boot device to a first stage at
    /// `root` (any value) with the stream's `bits`.
    fn bind(vm: &Vm<Self>, pasid: Pasid, root: u64, bits: u8);
}

/// A host with a VT-d unit and a guest with a virtual VT-d.
pub type VtdBench = Bench<VtdKind>;
/// A host with an SMMUv3 and a guest with a virtual SMMUv3.
pub type Smmuv3Bench = Bench<Smmuv3Kind>;
/// What a run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Operations interpreted.
    pub ops: u64,
    /// DMAs the host let through (each checked to land in guest RAM).
    pub dmas: u64,
    /// Device commands that ended (done or failed).
    pub commands: u64,
    /// Host PASID bindings the stream made at its peak.
    pub bindings: u64,
}

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
}

/// A host, a VM on it, and the host's own devices the stream must not reach.
pub struct Bench<K: Surface> {
    host: Arc<Host<K>>,
    vm: Vm<K>,
    canary: Arc<vsva_demo::DemoDevice>,
    canary_pa: u64,
    _canary_domain: Arc<PagingDomain>,
    bystander: Rid,
    baseline: Vec<(u32, ObjectType)>,
}

impl<K: Surface> Bench<K> {
    /// Builds the host, boots the guest, plugs the canary.
    ///
    /// # Errors
    /// [`VmError`] if the VM does not boot.
    ///
    /// # Panics
    /// When the host cannot be built (not the stream's fault).
    pub fn new() -> Result<Bench<K>, VmError> {
        let host = Arc::new(Host::<K>::new(8 * GIB, K::host_config()).expect("a host"));
        let vm = Vm::<K>::boot(
            host.clone(),
            VmConfig {
                ram: RAM,
                host_bus: 1,
            },
        )?;
        let caps = DeviceCaps {
            pasid_bits: 20,
            ats: false,
            pri: false,
        };
        let canary_rid = Rid::from_bdf(0, 7, 0).expect("a RID");
        let canary = host.add_device(canary_rid, 8, 16);
        host.iommu
            .add_device(canary_rid, caps, 0)
            .expect("the canary");
        let domain = host.iommu.alloc_paging_domain().expect("a domain");
        let frame = host
            .mm
            .frames()
            .alloc(vsva_mem::PageSize::Size4K)
            .expect("a frame");
        domain
            .map(CANARY_IOVA, frame, 4096, Perm::RW, false)
            .expect("the canary's page");
        let pasid0 = Pasid::new(0).expect("PASID 0");
        host.iommu
            .attach_domain(canary_rid, pasid0, &domain, None)
            .expect("the canary's domain");
        let bystander = Rid::from_bdf(0, 8, 0).expect("a RID");
        host.add_device(bystander, 8, 16);
        host.iommu
            .add_device(bystander, caps, 0)
            .expect("the bystander");
        let baseline = vm.vmm().iommufd().objects();
        Ok(Bench {
            host,
            vm,
            canary,
            canary_pa: frame,
            _canary_domain: domain,
            bystander,
            baseline,
        })
    }

    /// Plays `data` on the guest, checks, reboots the guest, and checks that a known-good
    /// DMA through the rebooted guest works.
    ///
    /// # Panics
    /// When an invariant breaks (the fuzzer reports it), or the guest cannot boot again.
    pub fn run(&mut self, data: &[u8]) -> Summary {
        let (dev, _drv, _process, _ctx) = self.bound_device();
        let mut b = Bytes(data);
        let mut s = Summary::default();
        while let Some(op) = b.u8() {
            s.ops += 1;
            if self.step(op, &mut b, dev.as_ref(), &mut s).is_none() {
                break;
            }
            s.bindings = s.bindings.max(self.vm.vmm().bindings().len() as u64);
        }
        self.check_host();
        drop(dev);
        self.vm.reboot().expect("the guest boots again");
        assert!(
            self.vm.vmm().bindings().is_empty(),
            "host PASIDs left after the vIOMMU reset: {:?}",
            self.vm.vmm().bindings()
        );
        assert_eq!(
            self.vm.vmm().iommufd().objects(),
            self.baseline,
            "the VMM's iommufd objects after the reset"
        );
        s
    }

    /// The guest's device with its driver probed, a guest process bound to it, and one page
    /// filled by the device in that process — the known-good DMA through the guest: it works
    /// on every fresh guest whatever the stream before did.
    fn bound_device(
        &self,
    ) -> (
        Arc<dyn Endpoint>,
        DemoDriver,
        Arc<vsva_mm::Process>,
        vsva_demo::Context,
    ) {
        let dev = self
            .vm
            .add_device(BOOT_DEVICE, 32, 256)
            .expect("the guest's device");
        let drv = DemoDriver::probe(&self.vm, dev.clone(), true).expect("the guest's driver");
        let process = self.vm.mm().spawn().expect("a guest process");
        let ctx = drv.open(&self.vm, &process).expect("bind the process");
        let buf = process
            .mmap(None, 4096, Prot::RW, MapFlags::empty())
            .expect("a guest buffer");
        let fill = Command::new(Op::Fill, 0, buf.raw(), 4096, 0x5c);
        drv.run(&self.vm, &ctx, &fill)
            .expect("the known-good DMA through the guest");
        let mut byte = [0u8; 1];
        process
            .read_bytes(vsva_mem::Va::new(buf.raw() + 4095), &mut byte)
            .expect("the guest buffer");
        assert_eq!(byte[0], 0x5c, "the known-good DMA reached the guest's page");
        (dev, drv, process, ctx)
    }

    fn step(&self, op: u8, b: &mut Bytes<'_>, dev: &dyn Endpoint, s: &mut Summary) -> Option<()> {
        let unit = self.vm.unit();
        let ram = self.vm.vmm().ram();
        match op % 8 {
            0 | 1 => {
                let sel = b.u16()?;
                let off = if sel & 1 == 0 {
                    K::REGISTERS[usize::from(sel >> 1) % K::REGISTERS.len()]
                } else {
                    u64::from(sel >> 1) % K::WINDOW
                };
                let size = if op & 0x10 != 0 { 8 } else { 4 };
                if op % 8 == 0 {
                    let v = b.u64()?;
                    let v = if K::POINTERS.contains(&off) && op & 0x20 == 0 {
                        (v % LOW) | (v & 0xfff)
                    } else {
                        v
                    };
                    K::mmio_write(unit, off, size, v);
                } else {
                    let _ = K::mmio_read(unit, off, size);
                }
            }
            2 | 3 => {
                let (base, at, v) = (b.u8()?, b.u16()?, b.u64()?);
                let bases = K::bases(unit);
                let base = match base % 4 {
                    3 => ((v >> 40) % LOW) & !0xfff,
                    i => bases[usize::from(i)],
                };
                let v = match op >> 6 {
                    0 => (v % LOW) | (v & 0xfff),
                    1 => v & 0xffff,
                    _ => v,
                };
                let _ = ram.store_u64(base.wrapping_add(u64::from(at) & !7), v);
            }
            4 => {
                let q = [b.u64()?, b.u64()?, b.u64()?, b.u64()?];
                K::queue(unit, ram.as_ref(), q);
            }
            5 => {
                // The device's registers as the guest driver programs them, and a run.
                let (code, pasid, dst, len) = (b.u8()?, b.u8()?, b.u32()?, b.u16()?);
                dev.mmio_write(regs::COMMAND, u64::from(code % 6));
                dev.mmio_write(regs::DST, u64::from(dst) << 4);
                dev.mmio_write(regs::SRC, u64::from(dst) << 8);
                dev.mmio_write(regs::LEN, u64::from(len) % 0x3000);
                dev.mmio_write(regs::PASID, u64::from(pasid % 8) | regs::PASID_VALID);
                dev.mmio_write(regs::DOORBELL, 1);
                for _ in 0..8 {
                    match dev.run() {
                        Progress::Waiting => {
                            if self.vm.service() == 0 {
                                break;
                            }
                        }
                        Progress::Idle => {
                            // Refused at the doorbell (STATUS error) or nothing started.
                            s.commands += u64::from(dev.mmio_read(regs::STATUS) == 3);
                            break;
                        }
                        _ => {
                            s.commands += 1;
                            break;
                        }
                    }
                }
            }
            6 => {
                let (p, addr) = (b.u8()?, b.u32()?);
                let pasid = (p & 0x80 != 0)
                    .then(|| Pasid::new(u32::from(p % 8)).ok())
                    .flatten();
                let addr = u64::from(addr) << (p >> 4 & 7);
                if let Ok(pa) = dev.dma_untranslated(pasid, addr, p & 1 != 0) {
                    s.dmas += 1;
                    self.assert_guest_ram(pa);
                }
            }
            _ if op & 0x80 != 0 => {
                // The guest kernel binds a PASID through its own driver, with any table root,
                // inside guest RAM or past it.
                let (p, root, bits) = (b.u8()?, b.u32()?, b.u8()?);
                if let Ok(pasid) = Pasid::new(u32::from(p % 8) + 1) {
                    K::bind(&self.vm, pasid, (u64::from(root) << 12) % (2 * RAM), bits);
                }
            }
            _ => {
                self.vm.service();
            }
        }
        Some(())
    }

    /// `pa` is in the guest's RAM.
    fn assert_guest_ram(&self, pa: u64) {
        let ram = self.vm.vmm().ram();
        let inside =
            (0..RAM / GIB).any(|i| ram.hpa(i * GIB).is_some_and(|h| (h..h + GIB).contains(&pa)));
        assert!(inside, "a guest device's DMA reached host page {pa:#x}");
    }

    /// The host's own devices are as the bench left them.
    fn check_host(&self) {
        let pa = self
            .canary
            .dma_untranslated(None, CANARY_IOVA + 0x10, true)
            .expect("the canary's DMA still goes through");
        assert_eq!(pa, self.canary_pa + 0x10, "the canary's page moved");
        let pasid0 = Pasid::new(0).unwrap_or(Pasid::MAX);
        assert_eq!(
            self.host.iommu.domain_id(self.bystander, pasid0),
            None,
            "an unassigned host device got an attachment"
        );
        for (_, kind) in self.vm.vmm().iommufd().objects() {
            // A VMM makes devices, IOASes, HWPTs, fault queues and (SMMUv3) vIOMMUs with
            // their vDEVICEs and vEVENTQs — never accesses or hardware queues.
            assert!(
                !matches!(kind, ObjectType::Access | ObjectType::HwQueue),
                "the VMM's context holds a {kind:?}"
            );
        }
    }
}
