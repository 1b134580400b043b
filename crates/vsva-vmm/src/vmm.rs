//! The VMM: a process of the host's memory manager whose anonymous memory is guest RAM, an
//! iommufd it opened, and the devices assigned to its guest.
//!
//! What it sets up at start (as QEMU's `hw/vfio` + `backends/iommufd.c` do with an
//! `intel-iommu` that has `x-flts=on`): guest RAM as 1 GiB hugetlb-backed anonymous memory,
//! pinned; an IOAS mapping GPA 0.. to it; a fault queue; at the first assigned device, a
//! nesting-parent HWPT on the IOAS (the stage 2), to which each assigned device's requests
//! without PASID are attached.
//!
//! What it does while the guest runs — the four vSVA flows, driven by the guest's vIOMMU
//! ([`crate::viommu`]):
//! 1. bind: a guest PASID entry with a first-stage table becomes a nested HWPT
//!    (`IOMMU_HWPT_DATA_VTD_S1`) on the stage 2, attached to the device under a host PASID
//!    the VMM chose for that guest PASID (PASIDs are virtualized: the device's PASID
//!    register is rewritten as the guest programs it, [`crate::assigned`]);
//! 2. invalidate: guest PASID-IOTLB and device-TLB invalidations become `IOMMU_HWPT_INVALIDATE`;
//! 3. fault: page requests read from the fault queue become guest page requests (guest RID,
//!    guest PASID, the device's PRG index);
//! 4. respond: the guest's page group response becomes a fault-queue write with the cookie of
//!    the group it answers. Answers for groups the guest never received are dropped.
//!
//! Unrecoverable host faults of an assigned device's DMA are reported into the guest's fault
//! log, named as the guest names things (Linux has no such path for VT-d yet; it is what
//! `IOMMU_VEVENTQ_ALLOC` does for SMMUv3).
//!
//! One file per flow: `vmm/bind.rs` (1), `vmm/invalidate.rs` (2), `vmm/fault.rs` (3, 4 and host
//! faults).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};

use vsva_demo::{Endpoint, Machine, MsiWindow};
use vsva_iommu::DeviceCaps;
use vsva_iommu::UnrecoverableFault;
use vsva_iommufd::abi::Errno;
use vsva_iommufd::{DeviceInfo, FaultFile, Iommufd, VfioDevice, VfioDeviceFile};
use vsva_mem::{PhysMem, Rid, Va};
use vsva_mm::{MapFlags, Process, Prot};
use vsva_vtd::Vtd;

use crate::guest_ram::GuestRam;
use crate::uapi::{Uapi, VtdHwInfo};

mod bind;
mod fault;
mod invalidate;
mod smmuv3;

pub(crate) use smmuv3::atc_inv;

const GIB: u64 = 1 << 30;
/// The host PASID an unbound guest PASID is rewritten to: never attached, so DMA under it
/// faults on the host and reaches nothing.
pub const BLOCKED_HOST_PASID: u32 = 0xf_ffff;
/// The first host PASID the VMM hands out (above the guest's, to show they differ).
const FIRST_HOST_PASID: u32 = 0x400;
/// Fault records read from the queue at a time.
const READ_BATCH: usize = 32;

/// VMM errors.
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    /// An iommufd command failed.
    #[error("iommufd: {0}")]
    Iommufd(#[from] Errno),
    /// The host memory manager refused.
    #[error("host memory: {0}")]
    Mm(#[from] vsva_mm::MmError),
    /// Guest RAM could not be assembled.
    #[error("guest RAM: {0}")]
    Ram(#[from] crate::guest_ram::GuestRamError),
    /// Bad configuration.
    #[error("{0}")]
    Config(String),
}

/// What the VMM counts of the four flows (`vsva demo --vm`'s counters).
#[derive(Debug, Default)]
pub struct Counters {
    /// Nested HWPTs allocated and attached for guest PASID entries.
    pub nested_binds: AtomicU64,
    /// `IOMMU_HWPT_INVALIDATE` calls made for guest invalidations.
    pub invalidations_propagated: AtomicU64,
    /// Page requests delivered to the guest's vIOMMU.
    pub faults_to_guest: AtomicU64,
    /// Guest page group responses written to the fault queue.
    pub page_responses_relayed: AtomicU64,
    /// Guest responses for groups it never received, dropped.
    pub responses_dropped: AtomicU64,
    /// Guest PASID entries the host refused (bad table pointer width, unsupported type...).
    pub bind_errors: AtomicU64,
    /// Unrecoverable host faults reported into the guest's fault log.
    pub faults_reported: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// See [`Counters::nested_binds`].
    pub nested_binds: u64,
    /// See [`Counters::invalidations_propagated`].
    pub invalidations_propagated: u64,
    /// See [`Counters::faults_to_guest`].
    pub faults_to_guest: u64,
    /// See [`Counters::page_responses_relayed`].
    pub page_responses_relayed: u64,
    /// See [`Counters::responses_dropped`].
    pub responses_dropped: u64,
    /// See [`Counters::bind_errors`].
    pub bind_errors: u64,
    /// See [`Counters::faults_reported`].
    pub faults_reported: u64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The values now.
    pub fn snapshot(&self) -> CountersSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CountersSnapshot {
            nested_binds: g(&self.nested_binds),
            invalidations_propagated: g(&self.invalidations_propagated),
            faults_to_guest: g(&self.faults_to_guest),
            page_responses_relayed: g(&self.page_responses_relayed),
            responses_dropped: g(&self.responses_dropped),
            bind_errors: g(&self.bind_errors),
            faults_reported: g(&self.faults_reported),
        }
    }
}

/// How a VM is built.
#[derive(Debug, Clone, Copy)]
pub struct VmConfig {
    /// Guest RAM in bytes (whole GiB; backed by 1 GiB pages).
    pub ram: u64,
    /// The host PCI bus the VM's devices are plugged into (devices keep their guest
    /// device/function numbers there), so that several VMs can share one host.
    pub host_bus: u8,
}

impl Default for VmConfig {
    fn default() -> Self {
        VmConfig {
            ram: 3 * GIB,
            host_bus: 1,
        }
    }
}

/// A host device assigned to the guest.
struct Assigned {
    host: Arc<dyn Endpoint>,
    file: VfioDeviceFile,
    dev_id: u32,
    /// The device's PASID register as the guest last wrote it.
    guest_pasid_reg: Arc<AtomicU64>,
    /// Handed to the guest OS (plugged in).
    claimed: bool,
    /// A platform master that stalls (not a PCIe Function with PRI).
    stalls: bool,
}

/// What a guest PASID entry asks of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// First-stage translation of the guest table at `root` (a GPA): a nested HWPT.
    Nested {
        root: u64,
        addr_width: u32,
        supervisor: bool,
        did: u16,
    },
    /// Pass-through: the guest's GPAs as IOVAs — the stage 2 itself.
    Parent,
}

/// A guest PASID (or RID_PASID) of a device as the host carries it out.
#[derive(Debug, Clone, Copy)]
struct Bind {
    want: Want,
    /// The nested HWPT, for [`Want::Nested`].
    hwpt: Option<u32>,
}

/// Guest PASID -> host PASID, VM-wide (one host PASID per guest PASID, whatever the device).
#[derive(Debug, Default)]
struct PasidMap {
    to_host: BTreeMap<u32, u32>,
    to_guest: BTreeMap<u32, u32>,
    users: BTreeMap<u32, u32>,
    free: Vec<u32>,
    next: u32,
}

impl PasidMap {
    fn get_or_alloc(&mut self, guest: u32) -> Option<u32> {
        if let Some(&host) = self.to_host.get(&guest) {
            *self.users.entry(guest).or_default() += 1;
            return Some(host);
        }
        let host = match self.free.pop() {
            Some(h) => h,
            None => {
                let h = self.next.max(FIRST_HOST_PASID);
                if h >= BLOCKED_HOST_PASID {
                    return None;
                }
                self.next = h + 1;
                h
            }
        };
        self.to_host.insert(guest, host);
        self.to_guest.insert(host, guest);
        self.users.insert(guest, 1);
        Some(host)
    }

    fn put(&mut self, guest: u32) {
        let Some(n) = self.users.get_mut(&guest) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            self.users.remove(&guest);
            if let Some(host) = self.to_host.remove(&guest) {
                self.to_guest.remove(&host);
                self.free.push(host);
            }
        }
    }
}

/// The key of a page request group the guest owes an answer: (guest RID, guest PASID, PRG
/// index).
type GroupKey = (u16, Option<u32>, u16);

#[derive(Default)]
struct State {
    /// By guest RID.
    devices: BTreeMap<u16, Assigned>,
    pasids: PasidMap,
    /// By (guest RID, guest PASID; `None` for RID_PASID).
    binds: BTreeMap<(u16, Option<u32>), Bind>,
    /// Groups delivered to the guest and not yet answered, with their fault-queue cookie.
    cookies: HashMap<GroupKey, u32>,
    /// The stage 2, once the first device is assigned.
    s2: Option<u32>,
}

/// The VMM.
pub struct Vmm {
    host: Arc<dyn Machine + Send + Sync>,
    cfg: VmConfig,
    process: Arc<Process>,
    uapi: Uapi,
    ioas: u32,
    fault_id: u32,
    fault: Arc<FaultFile>,
    ram: Arc<GuestRam>,
    /// Ranges `[start, end)` of guest-physical memory the guest's firmware map says are not
    /// RAM (no DMA can reach them).
    holes: Vec<(u64, u64)>,
    /// The VMM's own pins of guest RAM (the CPU view), dropped at shutdown.
    ram_pins: Mutex<Vec<vsva_mm::Pinned>>,
    state: Mutex<State>,
    /// The guest's vIOMMU (replaced when the guest reboots), when it is a VT-d.
    unit: RwLock<Weak<Vtd>>,
    /// The guest's vIOMMU, when it is an SMMUv3.
    smmu_unit: RwLock<Weak<vsva_smmuv3::Smmuv3>>,
    /// The SMMUv3 flows' state.
    smmu: Mutex<smmuv3::Smmu>,
    /// Guest PASIDs are the device's own (SMMUv3: the host walks the guest's CD table);
    /// otherwise they are virtualized (VT-d).
    identity_pasids: std::sync::atomic::AtomicBool,
    counters: Counters,
    me: Weak<Vmm>,
}

impl Vmm {
    /// Starts a VMM on `host`: its process, guest RAM (mapped with 1 GiB pages and pinned),
    /// an iommufd with an IOAS mapping all of guest RAM at GPA 0, and a fault queue.
    ///
    /// # Errors
    /// [`VmmError`] when the host cannot provide any of it.
    pub fn start(
        host: Arc<dyn Machine + Send + Sync>,
        cfg: VmConfig,
    ) -> Result<Arc<Vmm>, VmmError> {
        if cfg.ram == 0 || cfg.ram % GIB != 0 {
            return Err(VmmError::Config(format!(
                "guest RAM {:#x} is not a whole number of GiB",
                cfg.ram
            )));
        }
        let process = host.mm().spawn()?;
        let ram_va = process.mmap(
            None,
            cfg.ram,
            Prot::RW,
            MapFlags::HUGE_1G | MapFlags::POPULATE,
        )?;
        // The guest's CPU view: the frames behind guest RAM, pinned for the VM's life (what
        // KVM reaches through the VMM's page tables, fixed here since VFIO pins it anyway).
        let runs = process.pin_pages(ram_va, cfg.ram, true)?;
        let frames: Vec<u64> = (0..cfg.ram / GIB)
            .map(|i| {
                let va = ram_va.raw() + i * GIB;
                runs.iter()
                    .find(|r| (r.va.raw()..r.va.raw() + r.len).contains(&va))
                    .map_or(u64::MAX, |r| r.pa + (va - r.va.raw()))
            })
            .collect();
        let ram = Arc::new(GuestRam::new(host.memory(), GIB, frames)?);
        let fd = Arc::new(Iommufd::new(process.clone(), host.iommu().clone()));
        let uapi = Uapi::new(fd.clone(), process.clone())?;
        let ioas = uapi.ioas_alloc()?;
        // The guest's physical map leaves out what the host's IOMMU reserves in every DMA
        // domain (an SMMUv3 host's software MSI window: attaching a device to an IOAS mapping
        // it would be EADDRINUSE, `iopt_table_enforce_dev_resv_regions()`); QEMU's Arm `virt`
        // machine keeps RAM clear of it the same way. Guest RAM there is not RAM to the guest.
        let holes = match host.msi_window() {
            MsiWindow::Reserved {
                window: (start, last),
            } if start < cfg.ram => {
                vec![(start, (last + 1).min(cfg.ram))]
            }
            _ => Vec::new(),
        };
        let mut at = 0;
        for &(start, end) in holes.iter().chain([&(cfg.ram, cfg.ram)]) {
            if start > at {
                uapi.ioas_map(ioas, Va::new(ram_va.raw() + at), start - at, at)?;
            }
            at = end;
        }
        let (fault_id, fault_fd) = uapi.fault_alloc()?;
        let fault = fd.fault_file(fault_fd)?;
        Ok(Arc::new_cyclic(|me| Vmm {
            host,
            cfg,
            process,
            uapi,
            ioas,
            fault_id,
            fault,
            ram,
            ram_pins: Mutex::new(runs),
            holes,
            state: Mutex::new(State::default()),
            unit: RwLock::new(Weak::new()),
            smmu_unit: RwLock::new(Weak::new()),
            smmu: Mutex::new(smmuv3::Smmu::default()),
            identity_pasids: std::sync::atomic::AtomicBool::new(false),
            counters: Counters::default(),
            me: me.clone(),
        }))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The host.
    pub fn host(&self) -> &Arc<dyn Machine + Send + Sync> {
        &self.host
    }

    /// Guest RAM.
    pub fn ram(&self) -> &Arc<GuestRam> {
        &self.ram
    }

    /// What the guest's firmware map leaves out of RAM: `[start, end)` ranges.
    pub fn ram_holes(&self) -> &[(u64, u64)] {
        &self.holes
    }

    /// The iommufd.
    pub fn iommufd(&self) -> &Arc<Iommufd> {
        self.uapi.fd()
    }

    /// The flow counters.
    pub fn counters(&self) -> CountersSnapshot {
        self.counters.snapshot()
    }

    /// Connects the guest's vIOMMU (at boot and after each reboot).
    pub fn set_unit(&self, unit: &Arc<Vtd>) {
        *self.unit.write().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(unit);
    }

    pub(crate) fn unit(&self) -> Option<Arc<Vtd>> {
        self.unit
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .upgrade()
    }

    /// The host RID of guest device `rid`: the same device/function on the VM's host bus.
    pub fn host_rid(&self, rid: Rid) -> Rid {
        Rid::from_raw(u16::from(self.cfg.host_bus) << 8 | rid.devfn() as u16)
    }

    /// Plugs a demo device into the host for guest RID `rid` and assigns it to the VM: the
    /// host kernel probes it (IOMMU core), the VMM opens its VFIO cdev, binds it to its
    /// iommufd and attaches its requests without PASID to the stage 2 (allocated on the
    /// first device). Returns the iommufd device ID.
    ///
    /// # Errors
    /// [`VmmError`]; `EEXIST` if a device is already assigned at `rid`.
    pub fn assign(&self, rid: Rid, pri_capacity: u32, atc_entries: usize) -> Result<u32, VmmError> {
        let caps = DeviceCaps {
            pasid_bits: 20,
            ats: true,
            pri: true,
        };
        self.plug(rid, caps, pri_capacity, false, |host_rid| {
            self.host.add_device(host_rid, pri_capacity, atc_entries)
        })
    }

    /// Plugs a platform demo device with `pasid_bits`-bit SubstreamIDs into the host at
    /// StreamID `stream`'s place on the VM's bus — described to the host's IOMMU driver as
    /// able to stall (`dma-can-stall`) — and assigns it to the VM as [`assign`](Self::assign)
    /// does (a vfio-platform device), the host core taking up to `max_stalls` of its stalled
    /// transactions at once. Its faults reach the guest as stall events.
    ///
    /// # Errors
    /// [`VmmError`]; `EEXIST` if a device is already assigned at `stream`; the host's refusal
    /// when its IOMMU cannot stall.
    pub fn assign_platform(
        &self,
        stream: Rid,
        pasid_bits: u8,
        max_stalls: u32,
    ) -> Result<u32, VmmError> {
        let caps = DeviceCaps {
            pasid_bits,
            ats: false,
            pri: false,
        };
        // The host core holds at most `max_stalls` of its stalled transactions at once (its
        // page-request limit, as the host's own driver of the device sets it).
        self.plug(stream, caps, max_stalls, true, |host_rid| {
            self.host.add_platform_device(host_rid, pasid_bits)
        })
    }

    /// The common part of assignment: the host device made by `make` at the host RID of
    /// `rid`, probed by the host's IOMMU core, its VFIO cdev bound to the VMM's iommufd and
    /// attached to the stage 2 (made for the first device), and its vDEVICE when the guest
    /// has a virtual SMMUv3.
    fn plug(
        &self,
        rid: Rid,
        caps: DeviceCaps,
        pri_capacity: u32,
        stalls: bool,
        make: impl FnOnce(Rid) -> Result<Arc<dyn Endpoint>, String>,
    ) -> Result<u32, VmmError> {
        let mut st = self.state();
        if st.devices.contains_key(&rid.raw()) {
            return Err(Errno::EEXIST.into());
        }
        let host_rid = self.host_rid(rid);
        let dev = make(host_rid).map_err(VmmError::Config)?;
        self.host
            .iommu()
            .add_device(host_rid, caps, pri_capacity)
            .map_err(|e| VmmError::Config(e.to_string()))?;
        let me = self.me.clone();
        self.host
            .iommu()
            .set_fault_handler(
                host_rid,
                Arc::new(move |f: &UnrecoverableFault| {
                    if let Some(vmm) = me.upgrade() {
                        vmm.report_host_fault(f);
                    }
                }),
            )
            .map_err(|e| VmmError::Config(e.to_string()))?;
        let file = VfioDevice::new(DeviceInfo::new(host_rid, caps)).open();
        let dev_id = file.bind(self.uapi.fd().clone())?;
        let s2 = match st.s2 {
            Some(s2) => s2,
            None => {
                // Behind an SMMUv3 the stage 2 only ever carries requests without PASID (a
                // guest's SubstreamIDs come from its own CD table): no IOMMU_HWPT_ALLOC_PASID.
                let pasids = self.uapi.smmuv3_hw_info(dev_id).is_err();
                let s2 = self.uapi.hwpt_nest_parent(dev_id, self.ioas, pasids)?;
                st.s2 = Some(s2);
                s2
            }
        };
        file.attach(s2, None)?;
        st.devices.insert(
            rid.raw(),
            Assigned {
                host: dev,
                file,
                dev_id,
                guest_pasid_reg: Arc::new(AtomicU64::new(0)),
                claimed: false,
                stalls,
            },
        );
        drop(st);
        self.add_stream(rid, dev_id, stalls)?;
        Ok(dev_id)
    }

    /// The host unit's capabilities and the PASID width of the device assigned at `rid`, from
    /// `IOMMU_GET_HW_INFO`.
    ///
    /// # Errors
    /// `ENODEV` if nothing is assigned there; the command's errno.
    pub fn hw_info(&self, rid: Rid) -> Result<VtdHwInfo, Errno> {
        let dev_id = self
            .state()
            .devices
            .get(&rid.raw())
            .map(|a| a.dev_id)
            .ok_or(Errno::ENODEV)?;
        self.uapi.vtd_hw_info(dev_id)
    }

    /// The host SMMU's IDRs and the SubstreamID width of the device assigned at `rid`, from
    /// `IOMMU_GET_HW_INFO`.
    ///
    /// # Errors
    /// `ENODEV` if nothing is assigned there; the command's errno (`EOPNOTSUPP` behind
    /// another IOMMU).
    pub fn smmuv3_hw_info(&self, rid: Rid) -> Result<crate::uapi::Smmuv3HwInfo, Errno> {
        let dev_id = self
            .state()
            .devices
            .get(&rid.raw())
            .map(|a| a.dev_id)
            .ok_or(Errno::ENODEV)?;
        self.uapi.smmuv3_hw_info(dev_id)
    }

    /// Hands the device assigned at `rid` to the guest OS (once): the host device and the
    /// cell of its guest-written PASID register. `None` if none is assigned or it was handed
    /// out already.
    pub(crate) fn claim(&self, rid: Rid) -> Option<(Arc<dyn Endpoint>, Arc<AtomicU64>)> {
        let mut st = self.state();
        let a = st.devices.get_mut(&rid.raw())?;
        if a.claimed {
            return None;
        }
        a.claimed = true;
        Some((a.host.clone(), a.guest_pasid_reg.clone()))
    }

    /// Makes every assigned device available to the guest OS again (it rebooted).
    pub(crate) fn unclaim_all(&self) {
        for a in self.state().devices.values_mut() {
            a.claimed = false;
            a.guest_pasid_reg.store(0, Ordering::Relaxed);
        }
    }

    /// The host PASID standing for guest PASID `guest` right now, if the guest has bound it
    /// (the same PASID when the guest's vIOMMU does not virtualize them).
    pub fn host_pasid(&self, guest: u32) -> Option<u32> {
        if self.identity_pasids.load(Ordering::Relaxed) {
            return Some(guest);
        }
        self.state().pasids.to_host.get(&guest).copied()
    }

    /// The host PASIDs attached now, by (guest RID, guest PASID), for tests and traces.
    pub fn bindings(&self) -> Vec<(Rid, u32, u32)> {
        let st = self.state();
        st.binds
            .iter()
            .filter_map(|(&(rid, gp), _)| {
                let gp = gp?;
                Some((Rid::from_raw(rid), gp, *st.pasids.to_host.get(&gp)?))
            })
            .collect()
    }

    // ---- flow 1: bind ---------------------------------------------------------------

    /// The size of guest RAM.
    pub fn ram_size(&self) -> u64 {
        self.ram.size()
    }

    /// Shuts the VMM down: every binding dropped, every device file closed (unbinding it
    /// from the iommufd), the iommufd closed (its objects destroyed, its pages unpinned),
    /// and the process exits (guest RAM freed). Pending page requests are answered INVALID.
    ///
    /// # Errors
    /// The process's exit error.
    pub fn shutdown(&self) -> Result<(), VmmError> {
        self.reset_bindings();
        let devices = std::mem::take(&mut self.state().devices);
        self.destroy_smmu();
        for (_, a) in devices {
            let _ = a.file.detach(None);
            // closing the file unbinds the device
            drop(a.file);
        }
        let s2 = self.state().s2.take();
        // (the fault queue goes when the context is closed, as the VMM's file reference drops)
        for id in s2.into_iter().chain([self.ioas]) {
            if let Err(e) = self.uapi.destroy(id) {
                tracing::warn!(id, %e, "destroy at shutdown failed");
            }
        }
        let runs = std::mem::take(&mut *self.ram_pins.lock().unwrap_or_else(|e| e.into_inner()));
        self.process.unpin_pages(&runs);
        self.process.exit()?;
        Ok(())
    }
}
