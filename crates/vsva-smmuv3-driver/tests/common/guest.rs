//! A guest's side of SMMUv3 nesting for the tests: its memory behind a nest parent (IPAs
//! that are not host addresses: host memory ends at 512 MiB), the CD table and stage-1
//! tables a guest driver writes at IPAs, and the uAPI inputs iommufd would pass (user data,
//! the vIOMMU's view of its vDEVICEs).

use std::sync::{Arc, Mutex};

use vsva_iommu::IommuOps;
use vsva_iommu::{
    DeviceCaps, Iommu, IopfHandler, NestedDomain, PagingDomain, UserData, UserDataArray,
    ViommuContext,
};
use vsva_mem::{Errno, PhysMem, Rid};
use vsva_pgtable::Perm;
use vsva_smmuv3::spec::ste::{Ste0, Ste1, config, s1fmt};
use vsva_smmuv3_driver::tables::{self, S1Cd};
use vsva_smmuv3_driver::uapi::HWPT_DATA_ARM_SMMUV3;

use super::{MIB, Rig, pasid};

/// Where the guest's RAM starts in its physical (intermediate) address space.
pub const IPA_BASE: u64 = 0x4000_0000;
/// Where it is in host memory.
pub const HOST_BASE: u64 = 0x1800_0000;
/// Its size.
pub const GUEST_BYTES: u64 = 8 * MIB;
/// The IPA of the guest's DMA buffer page.
pub const BUF_IPA: u64 = IPA_BASE + 4 * MIB;
/// The guest's IOVA of that buffer (through SubstreamID [`SSID`]).
pub const IOVA: u64 = 0x1234_5000;
/// The SubstreamID the guest gives the device's DMA.
pub const SSID: u32 = 1;
/// The ASID in the guest's CD.
pub const GUEST_ASID: u16 = 7;
/// The device's virtual StreamID.
pub const VSID: u64 = 0x42;

/// The guest's memory, seen through its IPAs.
pub struct Guest {
    pub mem: Arc<dyn PhysMem>,
    next: Mutex<u64>,
}

impl Guest {
    pub fn new(mem: Arc<dyn PhysMem>) -> Guest {
        Guest {
            mem,
            next: Mutex::new(IPA_BASE),
        }
    }
    pub fn pa(&self, ipa: u64) -> u64 {
        HOST_BASE + (ipa - IPA_BASE)
    }
    /// A zeroed page of guest memory (its IPA).
    pub fn page(&self) -> u64 {
        let mut n = self.next.lock().unwrap();
        let ipa = *n;
        *n += 4096;
        for i in 0..512 {
            self.write(ipa + 8 * i, 0);
        }
        ipa
    }
    pub fn write(&self, ipa: u64, v: u64) {
        self.mem.store_u64(self.pa(ipa), v).unwrap();
    }
    pub fn read(&self, ipa: u64) -> u64 {
        self.mem.load_u64(self.pa(ipa)).unwrap()
    }
}

/// A guest's 4-level, 4 KiB-granule stage-1 table whose descriptors hold IPAs (VMSAv8-64:
/// table descriptors 0b11; page descriptors 0b11 with AP[1] (EL0 access, bit 6), SH Inner
/// Shareable (9:8), AF (10), nG (11)).
pub struct GuestS1 {
    pub root: u64,
}

const OA: u64 = 0x0000_ffff_ffff_f000;

impl GuestS1 {
    pub fn new(g: &Guest) -> GuestS1 {
        GuestS1 { root: g.page() }
    }
    fn leaf_slot(&self, g: &Guest, va: u64) -> u64 {
        let mut table = self.root;
        for level in 0..3 {
            let slot = table + ((va >> (39 - 9 * level)) & 511) * 8;
            let e = g.read(slot);
            table = if e & 1 == 0 {
                let t = g.page();
                g.write(slot, t | 3);
                t
            } else {
                e & OA
            };
        }
        table + ((va >> 12) & 511) * 8
    }
    pub fn map(&self, g: &Guest, va: u64, ipa: u64) {
        let slot = self.leaf_slot(g, va);
        g.write(slot, ipa | 3 | 1 << 6 | 3 << 8 | 1 << 10 | 1 << 11);
    }
}

/// The guest's STE words for a linear CD table of 2^`cdmax` CDs at `cdtab` (an IPA).
pub fn vste_s1(cdtab: u64, cdmax: u8, eats: u8) -> [u64; 2] {
    [
        Ste0::new()
            .with_v(true)
            .with_config(config::S1_TRANS)
            .with_s1fmt(s1fmt::LINEAR)
            .with_s1contextptr(cdtab >> 6)
            .with_s1cdmax(cdmax)
            .into_bits(),
        Ste1::new()
            .with_s1cir(1)
            .with_s1cor(1)
            .with_s1csh(3)
            .with_eats(eats)
            .into_bits(),
    ]
}

/// User data as `copy_struct_from_user()` reads it.
pub struct Data {
    pub ty: u32,
    pub bytes: Vec<u8>,
}

fn copy(bytes: &[u8], dst: &mut [u8], min_len: usize) -> Result<(), Errno> {
    if bytes.len() < min_len {
        return Err(Errno::EINVAL);
    }
    if bytes.len() > dst.len() && bytes[dst.len()..].iter().any(|&b| b != 0) {
        return Err(Errno::E2BIG);
    }
    let n = bytes.len().min(dst.len());
    dst[..n].copy_from_slice(&bytes[..n]);
    dst[n..].fill(0);
    Ok(())
}

impl UserData for Data {
    fn data_type(&self) -> u32 {
        self.ty
    }
    fn copy_struct(&self, dst: &mut [u8], min_len: usize) -> Result<(), Errno> {
        copy(&self.bytes, dst, min_len)
    }
}

/// The `struct iommu_hwpt_arm_smmuv3` of `ste`.
pub fn vste_data(ste: [u64; 2]) -> Data {
    Data {
        ty: HWPT_DATA_ARM_SMMUV3,
        bytes: ste.iter().flat_map(|w| w.to_le_bytes()).collect(),
    }
}

/// An array of entries.
pub struct Entries {
    pub ty: u32,
    pub entries: Vec<Vec<u8>>,
}

impl UserDataArray for Entries {
    fn data_type(&self) -> u32 {
        self.ty
    }
    fn entry_num(&self) -> u32 {
        self.entries.len() as u32
    }
    fn copy_entry(&self, index: u32, dst: &mut [u8], min_len: usize) -> Result<(), Errno> {
        copy(&self.entries[index as usize], dst, min_len)
    }
}

/// A vIOMMU over the nest parent of VMID `vmid` with vDEVICEs (virtual ID, device).
pub struct Ctx {
    pub vmid: u16,
    pub devs: Vec<(u64, Rid)>,
}

impl ViommuContext for Ctx {
    fn parent_did(&self) -> u16 {
        self.vmid
    }
    fn find_device(&self, virt_id: u64) -> Option<Rid> {
        self.devs.iter().find(|d| d.0 == virt_id).map(|d| d.1)
    }
}

/// A guest with its RAM behind a nest parent and a device attached to a nested domain from
/// the guest's STE: CD [`SSID`] maps [`IOVA`] to [`BUF_IPA`].
pub struct Nesting {
    pub iommu: Arc<Iommu>,
    pub parent: Arc<PagingDomain>,
    pub nested: Arc<NestedDomain>,
    pub guest: Guest,
    pub s1: GuestS1,
    pub cdtab: u64,
    pub ctx: Ctx,
}

/// Sets up [`Nesting`] for `dev`: the guest's CD has S = `cd_stall`; its STE asks for
/// EATS `eats`; page faults of the nested domain go to `handler`.
pub fn nesting(
    r: &Rig,
    dev: Rid,
    caps: DeviceCaps,
    cd_stall: bool,
    eats: u8,
    handler: Option<Arc<dyn IopfHandler>>,
) -> Nesting {
    let iommu = Iommu::new(r.driver.clone());
    iommu.add_device(dev, caps, 32).unwrap();
    let parent = iommu.alloc_nest_parent_domain().unwrap();
    parent
        .map(IPA_BASE, HOST_BASE, GUEST_BYTES, Perm::RW, false)
        .unwrap();
    let guest = Guest::new(r.mem.clone());
    let cdtab = guest.page();
    let s1 = GuestS1::new(&guest);
    s1.map(&guest, IOVA, BUF_IPA);
    let cd = tables::s1_cd(&S1Cd {
        ttb0: Some(s1.root),
        t0sz: 16,
        ips: 5,
        asid: GUEST_ASID,
        mair: tables::IO_PGTABLE_MAIR,
        stall: cd_stall,
        ha: false,
        hd: false,
    });
    for (i, w) in cd.words.iter().enumerate() {
        guest.write(cdtab + 64 * SSID as u64 + 8 * i as u64, *w);
    }
    let ctx = Ctx {
        vmid: parent.did(),
        devs: vec![(VSID, dev)],
    };
    let s1e = r
        .driver
        .viommu_alloc_domain_nested(&ctx, &vste_data(vste_s1(cdtab, 4, eats)))
        .unwrap();
    let nested = iommu.alloc_nested_domain(&parent, s1e).unwrap();
    iommu
        .attach_domain(dev, pasid(0), &nested, handler)
        .unwrap();
    Nesting {
        iommu,
        parent,
        nested,
        guest,
        s1,
        cdtab,
        ctx,
    }
}
