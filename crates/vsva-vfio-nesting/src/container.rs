//! [`NestingContainer`]: a VFIO type1 container set to `VFIO_TYPE1_NESTING_IOMMU`, over one
//! iommufd context — devices, the guest's GPA mappings, the stage-2 HWPT, `VFIO_IOMMU_GET_INFO`
//! and `VFIO_IOMMU_PASID_REQUEST`. The nesting ops are in [`nesting`](crate::nesting), the
//! byte-level dispatch in [`ioctl`](crate::ioctl).
//!
//! # Locking
//! One lock, the container's state, taken by every operation for its whole length and held
//! while calling iommufd (the series holds `iommu->lock` the same way). It sits above every
//! iommufd lock; iommufd never calls back into the container.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use vsva_iommufd::abi::{
    Errno, HwptAllocFlags, HwptDataType, IoasMapFlags, IommuDestroy, IommuFaultAlloc, IommuHwInfo,
    IommuHwInfoVtd, IommuHwptAlloc, IommuIoasAlloc, IommuIoasMap, IommuIoasUnmap, user_size,
};
use vsva_iommufd::{FaultFile, Iommufd, VfioDevice, VfioDeviceFile};
use zerocopy::{FromBytes, IntoBytes, KnownLayout};

use crate::kmem::{KBUF_BASE, KernelBuf};
use crate::pasid::{DEFAULT_PASID_QUOTA, HostPasids, PASID_LAST, PasidSet};
use crate::uapi::{
    DmaMapFlags, IOMMU_PASID_FORMAT_INTEL_VTD, IommuNestingInfo, IommuNestingInfoVtd,
    NestingFeatures, PasidRequestFlags, VFIO_IOMMU_PASID_BITS, VfioIommuType1DmaMap,
    VfioIommuType1DmaUnmap, VfioIommuType1PasidRequest,
};

/// The IOVA granule of the container: the smallest page size (`__ffs(pgsize_bitmap)`).
pub const PAGE: u64 = 4096;

/// `iova_pgsizes` reported by `VFIO_IOMMU_GET_INFO`: every power of two from 4 KiB, what type1
/// reports for Intel's `INTEL_IOMMU_PGSIZES` (`~0xfffUL`).
pub const IOVA_PGSIZES: u64 = !(PAGE - 1);

/// `VTD_CAP_MASK` of the series (v7 16/16): CAP_REG.FL1GP (bit 56) and FL5LP (bit 60), the
/// capability bits nesting depends on.
pub const VTD_CAP_MASK: u64 = 1 << 56 | 1 << 60;

/// `VTD_ECAP_MASK` of the series: ECAP_REG.PRS (29), ERS (30), SRS (31), EAFS (34),
/// PASID (40).
pub const VTD_ECAP_MASK: u64 = 1 << 29 | 1 << 30 | 1 << 31 | 1 << 34 | 1 << 40;

/// ECAP_REG.MTS, bit 25 (VT-d 4.1 §11.4.3): memory type support, which the bind flags PCD,
/// PWT, EMTE and CD need.
pub const VTD_ECAP_MTS: u64 = 1 << 25;

/// A device in the container: its open, bound VFIO cdev file.
pub(crate) struct Member {
    pub(crate) dev_id: u32,
    pub(crate) file: VfioDeviceFile,
}

/// What the first device's join sets up (the series: `vfio_iommu_type1_attach_group()` of the
/// first group in a nesting container, `iommu->nesting_info`, `iommu->vmm`).
pub(crate) struct Nesting {
    /// The nest-parent HWPT over the IOAS: stage 2.
    pub(crate) s2_id: u32,
    /// The fault queue every nested HWPT reports to.
    pub(crate) fault_id: u32,
    pub(crate) fault_fd: u32,
    pub(crate) fault: Arc<FaultFile>,
    /// `VFIO_IOMMU_TYPE1_INFO_CAP_NESTING`'s payload.
    pub(crate) info: IommuNestingInfo,
    /// The host unit's ECAP_REG, unmasked.
    pub(crate) ecap: u64,
}

/// A bound guest page table (`intel_svm` of a guest PASID).
pub(crate) struct Binding {
    /// The nested HWPT.
    pub(crate) hwpt_id: u32,
    /// The guest PASID, with `IOMMU_SVA_GPASID_VAL`.
    pub(crate) gpasid: Option<u64>,
    /// The devices whose PASID `hpasid` is attached to it.
    pub(crate) devs: Vec<u32>,
}

/// A fault group read and not answered yet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pending {
    pub(crate) dev_id: u32,
    pub(crate) pasid: Option<u32>,
    pub(crate) grpid: u32,
    pub(crate) cookie: u32,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) members: Vec<Member>,
    pub(crate) nesting: Option<Nesting>,
    /// Bound guest page tables, by host PASID.
    pub(crate) binds: BTreeMap<u32, Binding>,
    /// Read groups awaiting `PAGE_RESP`, oldest first.
    pub(crate) pending: VecDeque<Pending>,
}

/// A VFIO type1 container in nesting mode.
pub struct NestingContainer {
    pub(crate) ictx: Arc<Iommufd>,
    pub(crate) ioas_id: u32,
    pub(crate) pasids: PasidSet,
    pub(crate) state: Mutex<State>,
}

/// Reads a VFIO-style struct from the argument bytes, as `copy_from_user(minsz)`, the `argsz`
/// check, then a copy of up to `min(argsz, sizeof)` bytes do: bytes past the struct are
/// ignored (no `E2BIG`, unlike iommufd), missing ones read as 0.
///
/// # Errors
/// `EFAULT` if `bytes` is shorter than what must be copied; `EINVAL` if `argsz` (the first
/// `u32`) is below `minsz`.
pub fn read_vfio<T: FromBytes + IntoBytes + KnownLayout>(
    bytes: &[u8],
    minsz: usize,
) -> Result<T, Errno> {
    if bytes.len() < minsz {
        return Err(Errno::EFAULT);
    }
    let argsz = user_size(bytes)? as usize;
    if argsz < minsz {
        return Err(Errno::EINVAL);
    }
    let len = argsz.min(size_of::<T>());
    let src = bytes.get(..len).ok_or(Errno::EFAULT)?;
    let mut value = T::new_zeroed();
    value.as_mut_bytes()[..len].copy_from_slice(src);
    Ok(value)
}

/// Destroys iommufd object `id`, logging a failure (teardown paths).
pub(crate) fn destroy_logged(ictx: &Iommufd, id: u32) {
    if let Err(errno) = ictx.destroy(&IommuDestroy { size: 8, id }) {
        tracing::error!(id, %errno, "destroying an iommufd object failed");
    }
}

impl NestingContainer {
    /// Opens a container on `ictx` (the VMM's iommufd) with a new, empty IOAS for the guest's
    /// GPA space, taking its PASIDs from `host` with the series' default quota.
    ///
    /// # Errors
    /// `IOMMU_IOAS_ALLOC`'s.
    pub fn new(ictx: Arc<Iommufd>, host: &Arc<HostPasids>) -> Result<NestingContainer, Errno> {
        Self::with_quota(ictx, host, DEFAULT_PASID_QUOTA)
    }

    /// As [`new`](Self::new), with a PASID quota (the series' `pasid_quota` parameter).
    ///
    /// # Errors
    /// `IOMMU_IOAS_ALLOC`'s.
    pub fn with_quota(
        ictx: Arc<Iommufd>,
        host: &Arc<HostPasids>,
        quota: usize,
    ) -> Result<NestingContainer, Errno> {
        let mut cmd = IommuIoasAlloc {
            size: 12,
            ..Default::default()
        };
        ictx.ioas_alloc(&mut cmd)?;
        Ok(NestingContainer {
            ioas_id: cmd.out_ioas_id,
            pasids: host.new_set(quota),
            ictx,
            state: Mutex::new(State::default()),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The iommufd context.
    pub fn iommufd(&self) -> &Arc<Iommufd> {
        &self.ictx
    }

    /// The IOAS holding the guest's GPA mappings.
    pub fn ioas_id(&self) -> u32 {
        self.ioas_id
    }

    /// The stage-2 (nest-parent) HWPT, once a device joined.
    pub fn s2_hwpt(&self) -> Option<u32> {
        self.lock().nesting.as_ref().map(|n| n.s2_id)
    }

    /// The iommufd device IDs of the container's devices, in join order.
    pub fn devices(&self) -> Vec<u32> {
        self.lock().members.iter().map(|m| m.dev_id).collect()
    }

    /// The host PASIDs this container holds.
    pub fn pasids(&self) -> Vec<u32> {
        self.pasids.pasids()
    }

    /// The nested HWPT bound to host PASID `hpasid`, and the guest PASID it was bound with.
    pub fn binding(&self, hpasid: u32) -> Option<(u32, Option<u64>)> {
        self.lock()
            .binds
            .get(&hpasid)
            .map(|b| (b.hwpt_id, b.gpasid))
    }

    /// `VFIO_GROUP_SET_CONTAINER` of a device's group (vsva: one device per group), which for
    /// the first one is also `VFIO_SET_IOMMU(VFIO_TYPE1_NESTING_IOMMU)`: opens the device's
    /// cdev, binds it to the iommufd and attaches its requests without PASID to stage 2. The
    /// first device also allocates stage 2 (`IOMMU_HWPT_ALLOC` on the IOAS with
    /// `NEST_PARENT | PASID`: the series' nesting domain, which the device's PASIDs later
    /// nest on), the fault queue, and reads the nesting info. Returns the device's iommufd ID.
    ///
    /// # Errors
    /// `EINVAL` if the device is open elsewhere (VFIO's single open); the errors of binding,
    /// `IOMMU_HWPT_ALLOC` (`EOPNOTSUPP` on a unit without nested translation),
    /// `IOMMU_FAULT_QUEUE_ALLOC`, `IOMMU_GET_HW_INFO` (`ENODEV` for a non-VT-d IOMMU: the
    /// series only has VT-d nesting info), attaching. Nothing is kept on failure.
    pub fn add_device(&self, dev: &Arc<VfioDevice>) -> Result<u32, Errno> {
        let mut st = self.lock();
        let file = dev.open();
        let dev_id = file.bind(self.ictx.clone())?;
        let created = if st.nesting.is_none() {
            Some(self.setup_nesting(dev_id)?)
        } else {
            None
        };
        let s2 = created
            .as_ref()
            .or(st.nesting.as_ref())
            .map(|n| n.s2_id)
            .ok_or(Errno::EINVAL)?;
        if let Err(errno) = file.attach(s2, None) {
            drop(file);
            if let Some(nesting) = created {
                self.teardown_nesting(nesting);
            }
            return Err(errno);
        }
        if let Some(nesting) = created {
            st.nesting = Some(nesting);
        }
        st.members.push(Member { dev_id, file });
        tracing::debug!(dev_id, "device joined the nesting container");
        Ok(dev_id)
    }

    /// Stage 2, the fault queue and the nesting info, for the first device.
    fn setup_nesting(&self, dev_id: u32) -> Result<Nesting, Errno> {
        let (cap, ecap) = self.hw_info(dev_id)?;
        let mut alloc = IommuHwptAlloc {
            size: size_of::<IommuHwptAlloc>() as u32,
            flags: (HwptAllocFlags::NEST_PARENT | HwptAllocFlags::PASID).bits(),
            dev_id,
            pt_id: self.ioas_id,
            data_type: HwptDataType::NONE,
            ..Default::default()
        };
        self.ictx.hwpt_alloc(&mut alloc, &KernelBuf::zeroed(0))?;
        let s2_id = alloc.out_hwpt_id;
        let mut fault = IommuFaultAlloc {
            size: 16,
            ..Default::default()
        };
        let queue = self
            .ictx
            .fault_alloc(&mut fault)
            .and_then(|()| self.ictx.fault_file(fault.out_fault_fd));
        let file = match queue {
            Ok(file) => file,
            Err(errno) => {
                destroy_logged(&self.ictx, s2_id);
                return Err(errno);
            }
        };
        let last = self.ictx.get_hwpt_paging(s2_id)?.domain().last_iova();
        let info = IommuNestingInfo {
            argsz: size_of::<IommuNestingInfo>() as u32,
            flags: 0,
            format: IOMMU_PASID_FORMAT_INTEL_VTD,
            features: NestingFeatures::all().bits(),
            // The domain's gaw: the width stage 2 translates (its last IOVA + 1 is 2^width).
            addr_width: (64 - last.leading_zeros()) as u16,
            // ilog2(intel_pasid_max_id): VT-d's 20-bit PASIDs.
            pasid_bits: 20,
            padding: [0; 12],
            vtd: IommuNestingInfoVtd {
                flags: 0,
                padding: 0,
                cap_reg: cap & VTD_CAP_MASK,
                ecap_reg: ecap & VTD_ECAP_MASK,
            },
        };
        Ok(Nesting {
            s2_id,
            fault_id: fault.out_fault_id,
            fault_fd: fault.out_fault_fd,
            fault: file,
            info,
            ecap,
        })
    }

    /// The unit's CAP_REG and ECAP_REG through `IOMMU_GET_HW_INFO`.
    fn hw_info(&self, dev_id: u32) -> Result<(u64, u64), Errno> {
        let len = size_of::<IommuHwInfoVtd>();
        let buf = KernelBuf::zeroed(len);
        let mut cmd = IommuHwInfo {
            size: size_of::<IommuHwInfo>() as u32,
            dev_id,
            data_len: len as u32,
            data_uptr: KBUF_BASE,
            ..Default::default()
        };
        self.ictx.get_hw_info(&mut cmd, &buf)?;
        if cmd.data_len as usize != len {
            return Err(Errno::ENODEV);
        }
        let vtd = IommuHwInfoVtd::read_from_bytes(&buf.contents()).map_err(|_| Errno::EFAULT)?;
        Ok((vtd.cap_reg, vtd.ecap_reg))
    }

    /// Undoes [`setup_nesting`](Self::setup_nesting).
    pub(crate) fn teardown_nesting(&self, nesting: Nesting) {
        let Nesting {
            s2_id,
            fault_id,
            fault_fd,
            fault,
            ..
        } = nesting;
        destroy_logged(&self.ictx, s2_id);
        drop(fault);
        if let Err(errno) = self.ictx.close_fault_file(fault_fd) {
            tracing::error!(%errno, "closing the fault queue failed");
        }
        destroy_logged(&self.ictx, fault_id);
    }

    /// The nesting info `VFIO_IOMMU_GET_INFO` reports, once a device joined.
    pub fn nesting_info(&self) -> Option<IommuNestingInfo> {
        self.lock().nesting.as_ref().map(|n| n.info)
    }

    /// `VFIO_IOMMU_MAP_DMA` (`vfio_dma_do_map()` of `vfio_iommu_type1.c`): maps `size` bytes
    /// of the VMM's memory at `vaddr` to IOVA (GPA) `iova` — `IOMMU_IOAS_MAP` with
    /// `FIXED_IOVA`, which also fills stage 2.
    ///
    /// # Errors
    /// In type1's order: `EINVAL` for `argsz` below 32 or flags other than READ and WRITE;
    /// `EINVAL` for neither READ nor WRITE, size 0, or `vaddr`, `iova` or `size` not 4 KiB
    /// aligned; `EINVAL` if either range wraps. Then `IOMMU_IOAS_MAP`'s: `EEXIST` over an
    /// existing mapping, `EINVAL` in a reserved range or (on stage 2, Intel erratum 772415) a
    /// read-only mapping, `EFAULT` for memory the VMM does not have, `ENOMEM` over
    /// RLIMIT_MEMLOCK.
    pub fn map_dma(&self, cmd: &VfioIommuType1DmaMap) -> Result<(), Errno> {
        if (cmd.argsz as usize) < size_of::<VfioIommuType1DmaMap>() {
            return Err(Errno::EINVAL);
        }
        let flags = DmaMapFlags::from_bits(cmd.flags).ok_or(Errno::EINVAL)?;
        if flags.is_empty() || cmd.size == 0 || (cmd.size | cmd.iova | cmd.vaddr) % PAGE != 0 {
            return Err(Errno::EINVAL);
        }
        let last = cmd.size - 1;
        if cmd.iova.checked_add(last).is_none() || cmd.vaddr.checked_add(last).is_none() {
            return Err(Errno::EINVAL);
        }
        let mut map_flags = IoasMapFlags::FIXED_IOVA;
        map_flags.set(IoasMapFlags::READABLE, flags.contains(DmaMapFlags::READ));
        map_flags.set(IoasMapFlags::WRITEABLE, flags.contains(DmaMapFlags::WRITE));
        let _st = self.lock();
        let mut map = IommuIoasMap {
            size: size_of::<IommuIoasMap>() as u32,
            flags: map_flags.bits(),
            ioas_id: self.ioas_id,
            __reserved: 0,
            user_va: cmd.vaddr,
            length: cmd.size,
            iova: cmd.iova,
        };
        self.ictx.ioas_map(&mut map)
    }

    /// `VFIO_IOMMU_UNMAP_DMA` (`vfio_dma_do_unmap()`, type1 v2 rules): unmaps every mapping
    /// inside `[iova, iova + size)` and sets `cmd.size` to the bytes unmapped — 0 when there
    /// were none, which is not an error. `IOMMU_IOAS_UNMAP` underneath.
    ///
    /// # Errors
    /// `EINVAL` for `argsz` below 24, any flag (the dirty bitmap is not supported here),
    /// `iova` or `size` not 4 KiB aligned, size 0, a wrapping range, or a range that cuts a
    /// mapping (type1 v2 never splits one).
    pub fn unmap_dma(&self, cmd: &mut VfioIommuType1DmaUnmap) -> Result<(), Errno> {
        if (cmd.argsz as usize) < size_of::<VfioIommuType1DmaUnmap>() || cmd.flags != 0 {
            return Err(Errno::EINVAL);
        }
        if cmd.iova % PAGE != 0 || cmd.size == 0 || cmd.size % PAGE != 0 {
            return Err(Errno::EINVAL);
        }
        let last = cmd.iova.checked_add(cmd.size - 1).ok_or(Errno::EINVAL)?;
        let _st = self.lock();
        let ioas = self.ictx.get_ioas(self.ioas_id)?;
        let areas = ioas.iopt().areas();
        let touched: Vec<_> = areas
            .iter()
            .filter(|a| a.iova <= last && a.last >= cmd.iova)
            .collect();
        if touched.iter().any(|a| a.iova < cmd.iova || a.last > last) {
            return Err(Errno::EINVAL);
        }
        if touched.is_empty() {
            cmd.size = 0;
            return Ok(());
        }
        drop(ioas);
        let mut unmap = IommuIoasUnmap {
            size: size_of::<IommuIoasUnmap>() as u32,
            ioas_id: self.ioas_id,
            iova: cmd.iova,
            length: cmd.size,
        };
        self.ictx.ioas_unmap(&mut unmap)?;
        cmd.size = unmap.length;
        Ok(())
    }

    /// The usable IOVA ranges of the IOAS, both ends inclusive.
    pub fn iova_ranges(&self) -> Result<Vec<(u64, u64)>, Errno> {
        Ok(self.ictx.get_ioas(self.ioas_id)?.iopt().iova_ranges().0)
    }

    /// `VFIO_IOMMU_PASID_REQUEST` (v7 06/16, `vfio_iommu_type1_pasid_request()`): ALLOC
    /// returns a free host PASID in `[min, max]` (the ioctl's return value); FREE releases
    /// this container's PASIDs in `[min, max]` — unbinding any still bound first, as the
    /// IOASID notifier made the IOMMU driver do — and returns 0.
    ///
    /// # Errors
    /// In the series' order: `EINVAL` for `argsz` below 16 or flags outside ALLOC|FREE;
    /// `EINVAL` for `min > max` or either at or above 2^31 (`VFIO_IOMMU_PASID_BITS`, with the
    /// `>=` review fix); `EOPNOTSUPP` before a device joined (no `vfio_mm` yet); `EINVAL` for
    /// neither or both of ALLOC and FREE; ALLOC: `ENOSPC` when the quota is used up or no
    /// PASID in the range is free.
    pub fn pasid_request(&self, req: &VfioIommuType1PasidRequest) -> Result<u32, Errno> {
        if (req.argsz as usize) < size_of::<VfioIommuType1PasidRequest>() {
            return Err(Errno::EINVAL);
        }
        let flags = PasidRequestFlags::from_bits(req.flags).ok_or(Errno::EINVAL)?;
        let limit = 1u32 << VFIO_IOMMU_PASID_BITS;
        if req.min > req.max || req.min >= limit || req.max >= limit {
            return Err(Errno::EINVAL);
        }
        let mut st = self.lock();
        if st.nesting.is_none() {
            return Err(Errno::EOPNOTSUPP);
        }
        if flags == PasidRequestFlags::ALLOC {
            self.pasids.alloc(req.min, req.max)
        } else if flags == PasidRequestFlags::FREE {
            let bound: Vec<u32> = st
                .binds
                .range(req.min.min(PASID_LAST + 1)..=req.max.min(PASID_LAST + 1))
                .map(|(&pasid, _)| pasid)
                .collect();
            for hpasid in bound {
                self.unbind_locked(&mut st, hpasid);
            }
            self.pasids.free_range(req.min, req.max);
            Ok(0)
        } else {
            Err(Errno::EINVAL)
        }
    }
}

impl Drop for NestingContainer {
    /// Closing the container: every binding goes (PASIDs detached, nested HWPTs destroyed),
    /// the devices are closed (unbound, which detaches stage 2), then stage 2, the fault queue
    /// and the IOAS are destroyed; the PASID set goes with the container.
    fn drop(&mut self) {
        let mut st = std::mem::take(&mut *self.lock());
        let bound: Vec<u32> = st.binds.keys().copied().collect();
        for hpasid in bound {
            self.unbind_locked(&mut st, hpasid);
        }
        st.members.clear();
        if let Some(nesting) = st.nesting.take() {
            self.teardown_nesting(nesting);
        }
        destroy_logged(&self.ictx, self.ioas_id);
    }
}

impl std::fmt::Debug for NestingContainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.lock();
        f.debug_struct("NestingContainer")
            .field("ioas_id", &self.ioas_id)
            .field(
                "devices",
                &st.members.iter().map(|m| m.dev_id).collect::<Vec<_>>(),
            )
            .field("binds", &st.binds.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uapi::VfioIommuType1PasidRequest;

    #[test]
    fn vfio_reads_ignore_the_tail_and_zero_fill() {
        let req = VfioIommuType1PasidRequest {
            argsz: 16,
            flags: 1,
            min: 2,
            max: 3,
        };
        let mut bytes = req.as_bytes().to_vec();
        bytes.extend_from_slice(&[0xff; 8]);
        assert_eq!(read_vfio::<VfioIommuType1PasidRequest>(&bytes, 16), Ok(req));
        bytes[0] = 12;
        let short: VfioIommuType1PasidRequest = read_vfio(&bytes, 8).unwrap();
        assert_eq!((short.min, short.max), (2, 0), "past argsz reads as 0");
        assert_eq!(
            read_vfio::<VfioIommuType1PasidRequest>(&bytes, 16),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            read_vfio::<VfioIommuType1PasidRequest>(&bytes[..10], 16),
            Err(Errno::EFAULT)
        );
    }
}
