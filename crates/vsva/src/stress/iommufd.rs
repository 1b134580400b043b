//! iommufd scenarios: a VMM-like process opens `/dev/iommu`, binds the demo device, allocates
//! an IOAS and a PASID-capable paging HWPT on it, maps its buffer with `IOMMU_IOAS_MAP` and
//! attaches a PASID of the device to the HWPT; the device then DMAs at the IOVA under that
//! PASID (with ATS), while the main thread unmaps the IOAS or detaches the PASID.

use std::sync::Arc;

use anyhow::{Result, anyhow};
use vsva_demo::Endpoint;
use vsva_demo::enable_sva_capabilities;
use vsva_iommu::DeviceCaps;
use vsva_iommufd::abi::ioctl::{
    IOMMU_HWPT_ALLOC, IOMMU_IOAS_ALLOC, IOMMU_IOAS_MAP, IOMMU_IOAS_UNMAP,
};
use vsva_iommufd::abi::{
    HwptAllocFlags, HwptDataType, IoasMapFlags, IommuHwptAlloc, IommuIoasAlloc, IommuIoasMap,
    IommuIoasUnmap,
};
use vsva_iommufd::{DeviceInfo, Iommufd, ProcessMemory};
use vsva_mem::{FrameAllocator, Pasid, Va};
use vsva_mm::{MapFlags, Process, Prot};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::dma::Dma;
use super::host::{HOST_RAM, HostRig};
use super::watch::WatchedMemory;
use super::{Frames, PAGES, Rules, Scenario, buffer_leaves};
use vsva_host::IommuKind;

const LEN: u64 = PAGES * 4096;
/// Where the IOAS maps the buffer.
const IOVA: u64 = 0x4000_0000;
/// The device's PASID attached to the paging HWPT.
const PASID: u32 = 7;

/// Which operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `IOMMU_IOAS_UNMAP` of the buffer's IOVA range (the PASID stays attached).
    IoasUnmap,
    /// Detach of the PASID from the HWPT (the mapping stays).
    Detach,
}

struct Ioas<K: IommuKind> {
    rig: HostRig<K>,
    kind: Kind,
    vmm: Arc<Process>,
    fd: Iommufd,
    umem: ProcessMemory,
    dev_id: u32,
    ioas_id: u32,
    hwpt_id: u32,
    buf: Va,
}

/// `ioctl(fd, number, &cmd)` through the uAPI layer: the struct's bytes in and out.
fn ioctl<T>(fd: &Iommufd, mem: &ProcessMemory, number: u32, cmd: &mut T) -> Result<()>
where
    T: IntoBytes + FromBytes + Immutable + KnownLayout,
{
    let mut bytes = cmd.as_bytes().to_vec();
    let r = fd.ioctl(u64::from(number), &mut bytes, mem);
    *cmd = T::read_from_bytes(&bytes).map_err(|_| anyhow!("ioctl argument size"))?;
    r.map_err(|e| anyhow!("ioctl {number:#x}: {e:?}"))
}

/// The `kind` scenario on a host of kind `K`.
pub fn build<K: IommuKind>(kind: Kind) -> Result<Box<dyn Scenario>>
where
    K::Config: Default,
{
    let rig = HostRig::<K>::new(HOST_RAM)?;
    let (_, capacity) = enable_sva_capabilities(rig.dev.as_ref(), false)?;
    let caps = DeviceCaps {
        pasid_bits: 20,
        ats: true,
        pri: true,
    };
    let rid = rig.dev.rid();
    rig.p.iommu.add_device(rid, caps, capacity)?;
    let vmm = rig.p.mm.spawn()?;
    let fd = Iommufd::new(vmm.clone(), rig.p.iommu.clone());
    let umem = ProcessMemory::new(vmm.clone());
    let dev_id = fd
        .bind_device(DeviceInfo::new(rid, caps))
        .map_err(|e| anyhow!("bind: {e:?}"))?;
    let mut alloc = IommuIoasAlloc {
        size: 12,
        ..Default::default()
    };
    ioctl(&fd, &umem, IOMMU_IOAS_ALLOC, &mut alloc)?;
    let mut hwpt = IommuHwptAlloc {
        size: 48,
        flags: HwptAllocFlags::PASID.bits(),
        dev_id,
        pt_id: alloc.out_ioas_id,
        data_type: HwptDataType::NONE,
        ..Default::default()
    };
    ioctl(&fd, &umem, IOMMU_HWPT_ALLOC, &mut hwpt)?;
    let buf = vmm.mmap(None, LEN, Prot::RW, MapFlags::POPULATE)?;
    let s = Ioas {
        rig,
        kind,
        vmm,
        fd,
        umem,
        dev_id,
        ioas_id: alloc.out_ioas_id,
        hwpt_id: hwpt.out_hwpt_id,
        buf,
    };
    s.map()?;
    s.attach()?;
    Ok(Box::new(s))
}

impl<K: IommuKind> Ioas<K> {
    fn map(&self) -> Result<()> {
        let mut cmd = IommuIoasMap {
            size: 40,
            flags: (IoasMapFlags::FIXED_IOVA | IoasMapFlags::READABLE | IoasMapFlags::WRITEABLE)
                .bits(),
            ioas_id: self.ioas_id,
            __reserved: 0,
            user_va: self.buf.raw(),
            length: LEN,
            iova: IOVA,
        };
        ioctl(&self.fd, &self.umem, IOMMU_IOAS_MAP, &mut cmd)
    }

    fn attach(&self) -> Result<()> {
        self.fd
            .attach(self.dev_id, self.hwpt_id, Some(PASID))
            .map_err(|e| anyhow!("attach PASID {PASID}: {e:?}"))?;
        Ok(())
    }
}

impl<K: IommuKind> Scenario for Ioas<K> {
    fn device(&self) -> Arc<dyn Endpoint> {
        self.rig.dev.clone()
    }

    fn service(&self) -> Arc<dyn Fn() -> usize + Send + Sync> {
        self.rig.service()
    }

    fn memory(&self) -> (&WatchedMemory, &FrameAllocator) {
        self.rig.memory()
    }

    fn rules(&self) -> Rules {
        // The buffer stays the VMM's: nobody but the device could reach it.
        Rules::KEPT_FROM_THE_DEVICE
    }

    fn prepare(&mut self, dma: &Dma) -> Result<()> {
        dma.target(Pasid::new(PASID)?, IOVA, PAGES);
        Ok(())
    }

    fn frames(&self) -> Result<Frames> {
        let leaves = buffer_leaves(&self.vmm, self.buf, "the VMM's buffer")?;
        Ok(Frames {
            data: leaves.iter().map(|l| l.pa).collect(),
            ..Frames::default()
        })
    }

    fn operate(&mut self) -> Result<()> {
        match self.kind {
            Kind::IoasUnmap => {
                let mut cmd = IommuIoasUnmap {
                    size: 24,
                    ioas_id: self.ioas_id,
                    iova: IOVA,
                    length: LEN,
                };
                ioctl(&self.fd, &self.umem, IOMMU_IOAS_UNMAP, &mut cmd)?;
                anyhow::ensure!(cmd.length == LEN, "unmapped {} bytes", cmd.length);
            }
            Kind::Detach => self
                .fd
                .detach(self.dev_id, Some(PASID))
                .map_err(|e| anyhow!("detach: {e:?}"))?,
        }
        Ok(())
    }

    fn restore(&mut self) -> Result<()> {
        match self.kind {
            Kind::IoasUnmap => self.map(),
            Kind::Detach => self.attach(),
        }
    }
}
