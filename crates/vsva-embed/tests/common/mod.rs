//! A VMM's view of a vsva vIOMMU, shared by the tests and `examples/virtio_queue.rs`: guest
//! RAM is a vm-memory `GuestMemoryMmap`; the vIOMMU (a vsva unit of kind `K`) walks it through
//! [`GuestPhysMem`]; the guest OS (the unit's driver, the IOMMU core and the memory manager)
//! boots on the same RAM; the VMM's device reaches guest memory through an [`IommuPort`]
//! opened on a [`PortFabric`] the unit sends its ATS invalidations to.

#![allow(dead_code)]

use std::sync::Arc;

use vm_memory::{GuestAddress, GuestMemoryMmap};
use vsva_embed::{GuestPhysMem, IommuPort, PortFabric};
use vsva_host::{IommuKind, Os};
use vsva_iommu::{DeviceCaps, PagingDomain, UnrecoverableFault};
use vsva_mem::{Pasid, PhysMem, Rid};
use vsva_pcie::{MsiLog, NoDevices, Upstream};

/// Guest RAM: the driver's structures take [1 MiB, 256 MiB), the memory manager's frames
/// [256 MiB, [`BUFFERS`]), the guest's DMA buffers the rest.
pub const RAM: u64 = 512 << 20;

/// Where the guest's DMA buffers are (the OS allocates nothing there).
pub const BUFFERS: u64 = 448 << 20;

/// The VMM's device (00:03.0).
pub const DEV: Rid = Rid::from_raw(0x0018);

/// An IOVA clear of every reserved window (the SMMUv3 driver's software MSI window sits at
/// 128 MiB).
pub const IOVA: u64 = 0x4000_0000;

/// A guest on a vsva vIOMMU of kind `K`, as its VMM holds it.
pub struct Guest<K: IommuKind> {
    /// Guest RAM as the VMM has it.
    pub ram: GuestMemoryMmap,
    /// The same RAM as vsva physical memory.
    pub mem: Arc<dyn PhysMem>,
    /// The vIOMMU.
    pub unit: Arc<K::Unit>,
    /// The guest OS: driver, IOMMU core, memory manager.
    pub os: Os<K>,
    /// The Functions below the vIOMMU.
    pub fabric: Arc<PortFabric>,
    /// The vIOMMU's upstream port.
    pub upstream: Arc<dyn Upstream>,
}

impl<K: IommuKind> Guest<K> {
    /// Boots a guest on a unit configured by `cfg`.
    pub fn boot(cfg: K::Config) -> Guest<K> {
        let ram = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), RAM as usize)])
            .expect("guest RAM");
        let mem: Arc<dyn PhysMem> = Arc::new(GuestPhysMem::from_backend(ram.clone()));
        let fabric = Arc::new(PortFabric::new(Arc::new(NoDevices)));
        let unit = K::build(
            cfg,
            mem.clone(),
            Arc::new(MsiLog::default()),
            fabric.clone(),
        );
        let os = Os::<K>::boot(mem.clone(), &unit, BUFFERS).expect("the guest's IOMMU driver");
        let upstream = K::upstream(&unit, mem.clone());
        Guest {
            ram,
            mem,
            unit,
            os,
            fabric,
            upstream,
        }
    }

    /// The guest adds the VMM's device (ATS, 20-bit PASIDs, no PRI) and attaches its requests
    /// without PASID to a new paging domain; the VMM opens the device's port.
    pub fn plug(&self) -> (Arc<PagingDomain>, IommuPort) {
        let caps = DeviceCaps {
            pasid_bits: 20,
            ats: true,
            pri: false,
        };
        // The Function is on the bus before the guest's driver attaches it (attaching
        // invalidates its device TLB, which must complete).
        let port = self.fabric.open(self.upstream.clone(), DEV, None);
        self.os.iommu.add_device(DEV, caps, 0).expect("add_device");
        let domain = self.os.iommu.alloc_paging_domain().expect("paging domain");
        self.os
            .iommu
            .attach_domain(DEV, Pasid::new(0).unwrap(), &domain, None)
            .expect("attach");
        (domain, port)
    }

    /// The guest-physical address of DMA buffer page `n`.
    pub fn page(&self, n: u64) -> u64 {
        BUFFERS + n * 4096
    }

    /// The faults the vIOMMU recorded, as the guest's driver reads them.
    pub fn faults(&self) -> Vec<UnrecoverableFault> {
        self.os.iommu.ops().take_faults()
    }
}
