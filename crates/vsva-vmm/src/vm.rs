//! A virtual machine: the [`Vmm`], the guest's vIOMMU (a hardware model in its virtual role,
//! of the kind `K`: [`GuestKind`]), and the guest OS booted on guest RAM — the same driver,
//! IOMMU core and memory manager as a host's ([`Os`]). A [`Vm`] is a [`Machine`], so the demo
//! driver and program run in it unchanged.
//!
//! Running a device inside the guest is one loop on one thread, as on the host: when the
//! device waits for a page, the host services its IOMMU interrupts (the page request lands in
//! the iommufd fault queue), the VMM moves the queue's requests into the guest's vIOMMU, and
//! the guest services its own (the guest's IOMMU core resolves the fault with the guest's
//! memory manager and answers through its vIOMMU, which the VMM relays back down). No thread
//! hand-off anywhere.

use std::sync::Arc;

use vsva_demo::Progress;
use vsva_demo::{Endpoint, Machine, MsiWindow, UnitCounters};
use vsva_host::{Os, PlatformError, VtdKind};
use vsva_iommu::Iommu;
use vsva_iommu::UnrecoverableFault;
use vsva_mem::{PhysMem, Rid};
use vsva_mm::MemoryManager;
use vsva_pcie::MsiLog;
use vsva_vtd::{Vtd, VtdConfig};

use crate::assigned::AssignedDevice;
use crate::viommu::Relay;
use crate::vmm::{VmConfig, Vmm, VmmError};

/// The guest's first device, assigned when the VM starts (the VMM learns the host IOMMU's
/// capabilities through it).
pub const BOOT_DEVICE: Rid = match Rid::from_bdf(0, 3, 0) {
    Ok(rid) => rid,
    Err(_) => panic!("00:03.0 is a valid RID"),
};
/// PRI requests and ATC entries of the devices the VM plugs in itself.
const BOOT_PRI: u32 = 32;
const BOOT_ATC: usize = 256;
/// Stalled transactions the host takes at once from a platform device the VM plugs in.
const PLATFORM_STALLS: u32 = 32;

/// VM errors.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// The VMM failed.
    #[error(transparent)]
    Vmm(#[from] VmmError),
    /// The guest OS failed to boot.
    #[error("guest boot: {0}")]
    Boot(#[from] PlatformError),
}

/// The host unit's capabilities as the VMM reads them, and what it exposes: first-stage
/// translation only (the guest's page tables are bound to the host as nested first stages;
/// no shadowing of guest second stages), pass-through, ATS, PRI, caching mode — each only
/// where the host has it (PASID width, address widths, 1 GiB and 5-level first stage,
/// supervisor requests), and PASIDs no wider than the device's.
pub fn guest_unit_config(cap: u64, ecap: u64, device_pasid_bits: u8) -> VtdConfig {
    use vsva_vtd::spec::registers::{Cap, Ecap};
    let wanted = VtdConfig::default();
    let host = VtdConfig::from_registers(Cap::from_bits(cap), Ecap::from_bits(ecap), wanted.haw);
    let mut cfg = VtdConfig {
        second_stage: false,
        nested: false,
        ss_ad: false,
        caching_mode: true,
        ..wanted
    }
    .clamp_to(&host);
    cfg.pasid_bits = cfg.pasid_bits.min(device_pasid_bits.max(1));
    cfg
}

/// A vIOMMU a VM can give its guest: an IOMMU kind whose hardware model the VMM can run in
/// its virtual role, turning the guest's programming of it into host iommufd calls.
pub trait GuestKind: vsva_host::IommuKind {
    /// Builds the guest's unit over guest RAM, with capabilities from what the host reports
    /// through `IOMMU_GET_HW_INFO` for the boot device, and connects it to `vmm` (its
    /// backend; the VMM keeps a weak reference, replaced at each reboot).
    ///
    /// # Errors
    /// The host's refusal, or a host IOMMU of another kind.
    fn connect(vmm: &Arc<Vmm>) -> Result<Arc<Self::Unit>, VmError>;

    /// Moves what the host queued for the guest (page requests, events) into the guest's
    /// unit. Returns how many items it moved.
    fn pump(vmm: &Vmm) -> usize;
}

impl GuestKind for VtdKind {
    fn connect(vmm: &Arc<Vmm>) -> Result<Arc<Vtd>, VmError> {
        let info = vmm.hw_info(BOOT_DEVICE).map_err(VmmError::from)?;
        let cfg = guest_unit_config(info.cap, info.ecap, info.pasid_bits);
        let relay = Relay::new(vmm);
        let ram: Arc<dyn PhysMem> = vmm.ram().clone();
        let unit = Arc::new(Vtd::with_devices(
            cfg,
            ram,
            Arc::new(MsiLog::default()),
            relay.clone(),
        ));
        // Cannot fail: the unit is new.
        let _ = unit.set_backend(relay);
        vmm.set_unit(&unit);
        Ok(unit)
    }

    fn pump(vmm: &Vmm) -> usize {
        vmm.pump_faults()
    }
}

/// A VM whose guest has a virtual VT-d.
pub type VtdVm = Vm<VtdKind>;

/// A VM whose guest has a virtual SMMUv3.
pub type Smmuv3Vm = Vm<vsva_host::Smmuv3Kind>;

/// A running VM whose guest's vIOMMU is of kind `K`.
pub struct Vm<K: GuestKind> {
    vmm: Arc<Vmm>,
    unit: Arc<K::Unit>,
    os: Os<K>,
}

impl<K: GuestKind> Vm<K> {
    /// Starts a VMM on `host` with `cfg`, assigns the boot device, builds the vIOMMU from the
    /// host's `IOMMU_GET_HW_INFO`, and boots the guest OS.
    ///
    /// # Errors
    /// [`VmError`].
    pub fn boot(host: Arc<dyn Machine + Send + Sync>, cfg: VmConfig) -> Result<Self, VmError> {
        let vmm = Vmm::start(host, cfg)?;
        vmm.assign(BOOT_DEVICE, BOOT_PRI, BOOT_ATC)?;
        let (unit, os) = Self::boot_guest(&vmm)?;
        Ok(Vm { vmm, unit, os })
    }

    fn boot_guest(vmm: &Arc<Vmm>) -> Result<(Arc<K::Unit>, Os<K>), VmError> {
        let unit = K::connect(vmm)?;
        let ram: Arc<dyn PhysMem> = vmm.ram().clone();
        let os = Os::<K>::boot_with_holes(ram, &unit, vmm.ram_size(), vmm.ram_holes())?;
        Ok((unit, os))
    }

    /// Reboots the guest: the vIOMMU is reset (every nested HWPT detached and freed, every
    /// host PASID released, pending page requests answered INVALID by iommufd) and a fresh
    /// guest OS boots on the same RAM and devices.
    ///
    /// # Errors
    /// [`VmError`] if the guest cannot boot again.
    pub fn reboot(&mut self) -> Result<(), VmError> {
        self.vmm.reset_bindings();
        self.vmm.unclaim_all();
        let (unit, os) = Self::boot_guest(&self.vmm)?;
        self.unit = unit;
        self.os = os;
        Ok(())
    }

    /// Stops the VM: see [`Vmm::shutdown`].
    ///
    /// # Errors
    /// [`VmError`].
    pub fn shutdown(self) -> Result<(), VmError> {
        self.vmm.shutdown()?;
        Ok(())
    }

    /// The VMM.
    pub fn vmm(&self) -> &Arc<Vmm> {
        &self.vmm
    }

    /// The guest's vIOMMU.
    pub fn unit(&self) -> &Arc<K::Unit> {
        &self.unit
    }

    /// The guest OS.
    pub fn os(&self) -> &Os<K> {
        &self.os
    }

    /// Every interrupt handler on the way up, once: the host's (page requests into the fault
    /// queue, faults into the guest's log), the VMM's fault-queue reader, the guest's.
    /// Returns how much work there was.
    pub fn service(&self) -> usize {
        self.vmm.host().service()
            + K::pump(&self.vmm)
            + self.os.iommu.handle_page_requests()
            + self.os.iommu.handle_faults()
    }
}

impl<K: GuestKind> Machine for Vm<K> {
    fn iommu(&self) -> &Arc<Iommu> {
        &self.os.iommu
    }

    fn mm(&self) -> &Arc<MemoryManager> {
        &self.os.mm
    }

    fn memory(&self) -> Arc<dyn PhysMem> {
        self.vmm.ram().clone()
    }

    fn service(&self) -> usize {
        Vm::service(self)
    }

    fn add_device(
        &self,
        rid: Rid,
        pri_capacity: u32,
        atc_entries: usize,
    ) -> Result<Arc<dyn Endpoint>, String> {
        let claimed = match self.vmm.claim(rid) {
            Some(c) => c,
            None => {
                self.vmm
                    .assign(rid, pri_capacity, atc_entries)
                    .map_err(|e| e.to_string())?;
                self.vmm
                    .claim(rid)
                    .ok_or_else(|| format!("{rid} is plugged in already"))?
            }
        };
        let (host, reg) = claimed;
        Ok(Arc::new(AssignedDevice::new(
            rid,
            host,
            self.vmm.clone(),
            reg,
        )))
    }

    fn add_platform_device(
        &self,
        stream: Rid,
        pasid_bits: u8,
    ) -> Result<Arc<dyn Endpoint>, String> {
        // Firmware (the VMM's device tree) tells the guest's driver the device can stall,
        // which a guest IOMMU that cannot stall refuses; the guest's DMA still goes to the
        // host device, not through the guest's unit.
        let ram: Arc<dyn PhysMem> = self.vmm.ram().clone();
        if K::platform_port(&self.unit, &self.os.driver, ram, stream).is_none() {
            return Err("the guest's IOMMU cannot stall transactions".into());
        }
        let claimed = match self.vmm.claim(stream) {
            Some(c) => c,
            None => {
                self.vmm
                    .assign_platform(stream, pasid_bits, PLATFORM_STALLS)
                    .map_err(|e| e.to_string())?;
                self.vmm
                    .claim(stream)
                    .ok_or_else(|| format!("{stream} is plugged in already"))?
            }
        };
        let (host, reg) = claimed;
        Ok(Arc::new(AssignedDevice::new(
            stream,
            host,
            self.vmm.clone(),
            reg,
        )))
    }

    fn run_device(&self, dev: &dyn Endpoint) -> Progress {
        vsva_demo::run_until_done(dev, || self.service())
    }

    fn take_faults(&self) -> Vec<UnrecoverableFault> {
        // the host's fault interrupt first: it reports the guest's faults into its log
        self.vmm.host().service();
        self.os.iommu.ops().take_faults()
    }

    fn unit_counters(&self) -> UnitCounters {
        K::counters(&self.unit)
    }

    fn msi_window(&self) -> MsiWindow {
        K::MSI_WINDOW
    }

    fn top_ram_page_below_interrupts(&self) -> u64 {
        vsva_demo::top_ram_page_below(self.vmm.ram_size())
    }
}
