//! The VMM's side of `/dev/iommu`: every iommufd command goes through
//! [`Iommufd::ioctl`] with the bytes of its uAPI struct, and data behind pointers (the
//! VTD_S1 page-table info, invalidation arrays, hardware info) sits in the VMM process's own
//! memory — exactly what a C VMM's iommufd backend does (QEMU's `backends/iommufd.c`).

use std::sync::{Arc, Mutex};

use vsva_iommufd::abi::ioctl::{
    IOMMU_DESTROY, IOMMU_FAULT_QUEUE_ALLOC, IOMMU_GET_HW_INFO, IOMMU_HWPT_ALLOC,
    IOMMU_HWPT_INVALIDATE, IOMMU_IOAS_ALLOC, IOMMU_IOAS_MAP, IOMMU_VDEVICE_ALLOC,
    IOMMU_VEVENTQ_ALLOC, IOMMU_VIOMMU_ALLOC,
};
use vsva_iommufd::abi::{
    Errno, HwInfoFlags, HwInfoType, HwptAllocFlags, HwptDataType, HwptInvalidateDataType,
    IoasMapFlags, IommuDestroy, IommuFaultAlloc, IommuHwInfo, IommuHwInfoArmSmmuv3, IommuHwInfoVtd,
    IommuHwptAlloc, IommuHwptArmSmmuv3, IommuHwptInvalidate, IommuHwptVtdS1,
    IommuHwptVtdS1Invalidate, IommuIoasAlloc, IommuIoasMap, IommuVdeviceAlloc, IommuVeventqAlloc,
    IommuViommuAlloc, IommuViommuArmSmmuv3Invalidate, VeventqType, ViommuType,
};
use vsva_iommufd::{Iommufd, ProcessMemory, UserMemory};
use vsva_mem::Va;
use vsva_mm::{MapFlags, Process, Prot};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Bytes of the VMM's scratch buffer for data behind uAPI pointers.
const SCRATCH: u64 = 64 * 1024;

/// An open iommufd and the VMM memory its pointers name.
pub struct Uapi {
    fd: Arc<Iommufd>,
    mem: ProcessMemory,
    /// A buffer in the VMM process for arrays and data structs, one command at a time.
    scratch: Mutex<u64>,
}

/// What `IOMMU_GET_HW_INFO` tells of a device behind an SMMUv3 (`struct
/// iommu_hw_info_arm_smmuv3` and `out_max_pasid_log2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Smmuv3HwInfo {
    /// SMMU_IDR0..5, SMMU_IIDR, SMMU_AIDR as the host read them.
    pub regs: IommuHwInfoArmSmmuv3,
    /// The SubstreamID width the device and SMMU support together (`out_max_pasid_log2`).
    pub pasid_bits: u8,
}

/// What `IOMMU_GET_HW_INFO` tells of a device behind a VT-d unit (`struct
/// iommu_hw_info_vtd` and `out_max_pasid_log2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VtdHwInfo {
    /// The unit's capability register (`cap_reg`).
    pub cap: u64,
    /// The unit's extended capability register (`ecap_reg`).
    pub ecap: u64,
    /// The PASID width the device and unit support together (`out_max_pasid_log2`).
    pub pasid_bits: u8,
}

impl Uapi {
    /// Opens `/dev/iommu` for `process` on `fd`'s IOMMU (the context itself is made by the
    /// caller, as the kernel makes it at `open()`), with a scratch buffer in the process.
    ///
    /// # Errors
    /// `ENOMEM` if the process cannot map the buffer.
    pub fn new(fd: Arc<Iommufd>, process: Arc<Process>) -> Result<Uapi, Errno> {
        let scratch = process
            .mmap(None, SCRATCH, Prot::RW, MapFlags::POPULATE)
            .map_err(|_| Errno::ENOMEM)?;
        Ok(Uapi {
            fd,
            mem: ProcessMemory::new(process),
            scratch: Mutex::new(scratch.raw()),
        })
    }

    /// The context.
    pub fn fd(&self) -> &Arc<Iommufd> {
        &self.fd
    }

    /// `ioctl(fd, number, &cmd)`.
    fn call<T>(&self, number: u32, cmd: &mut T) -> Result<(), Errno>
    where
        T: IntoBytes + FromBytes + Immutable + KnownLayout,
    {
        let mut bytes = cmd.as_bytes().to_vec();
        let result = self.fd.ioctl(u64::from(number), &mut bytes, &self.mem);
        *cmd = T::read_from_bytes(&bytes).map_err(|_| Errno::EFAULT)?;
        result
    }

    /// Runs `f` with the scratch buffer holding `data` (the buffer's address is passed).
    fn with_data<R>(&self, data: &[u8], f: impl FnOnce(u64) -> R) -> Result<R, Errno> {
        let scratch = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        if data.len() as u64 > SCRATCH {
            return Err(Errno::E2BIG);
        }
        self.mem.write(*scratch, data)?;
        Ok(f(*scratch))
    }

    /// `IOMMU_IOAS_ALLOC`.
    ///
    /// # Errors
    /// The command's errno.
    pub fn ioas_alloc(&self) -> Result<u32, Errno> {
        let mut cmd = IommuIoasAlloc {
            size: size_of::<IommuIoasAlloc>() as u32,
            ..Default::default()
        };
        self.call(IOMMU_IOAS_ALLOC, &mut cmd)?;
        Ok(cmd.out_ioas_id)
    }

    /// `IOMMU_IOAS_MAP` of `[user_va, +length)` at `iova`, readable and writeable.
    ///
    /// # Errors
    /// The command's errno.
    pub fn ioas_map(&self, ioas: u32, user_va: Va, length: u64, iova: u64) -> Result<(), Errno> {
        let mut cmd = IommuIoasMap {
            size: size_of::<IommuIoasMap>() as u32,
            flags: (IoasMapFlags::FIXED_IOVA | IoasMapFlags::READABLE | IoasMapFlags::WRITEABLE)
                .bits(),
            ioas_id: ioas,
            user_va: user_va.raw(),
            length,
            iova,
            ..Default::default()
        };
        self.call(IOMMU_IOAS_MAP, &mut cmd)
    }

    /// `IOMMU_FAULT_QUEUE_ALLOC`: (object ID, fault file number).
    ///
    /// # Errors
    /// The command's errno.
    pub fn fault_alloc(&self) -> Result<(u32, u32), Errno> {
        let mut cmd = IommuFaultAlloc {
            size: size_of::<IommuFaultAlloc>() as u32,
            ..Default::default()
        };
        self.call(IOMMU_FAULT_QUEUE_ALLOC, &mut cmd)?;
        Ok((cmd.out_fault_id, cmd.out_fault_fd))
    }

    /// `IOMMU_GET_HW_INFO` of `dev_id` asking for `T`'s data of type `want`: the data and
    /// `out_max_pasid_log2`.
    fn hw_info<T>(&self, dev_id: u32, want: HwInfoType) -> Result<(T, u8), Errno>
    where
        T: IntoBytes + FromBytes + Immutable + KnownLayout,
    {
        let len = size_of::<T>();
        let (result, cmd, scratch) = self.with_data(&vec![0u8; len], |uptr| {
            let mut cmd = IommuHwInfo {
                size: size_of::<IommuHwInfo>() as u32,
                dev_id,
                data_len: len as u32,
                data_uptr: uptr,
                flags: HwInfoFlags::INPUT_TYPE.bits(),
                data_type: want,
                ..Default::default()
            };
            let r = self.call(IOMMU_GET_HW_INFO, &mut cmd);
            (r, cmd, uptr)
        })?;
        result?;
        if cmd.data_type != want {
            return Err(Errno::EOPNOTSUPP);
        }
        let mut bytes = vec![0u8; len];
        self.mem.read(scratch, &mut bytes)?;
        let info = T::read_from_bytes(&bytes).map_err(|_| Errno::EFAULT)?;
        Ok((info, cmd.out_max_pasid_log2))
    }

    /// `IOMMU_GET_HW_INFO` of a VT-d device.
    ///
    /// # Errors
    /// The command's errno; `EOPNOTSUPP` if the IOMMU is not VT-d.
    pub fn vtd_hw_info(&self, dev_id: u32) -> Result<VtdHwInfo, Errno> {
        let (info, pasid_bits) = self.hw_info::<IommuHwInfoVtd>(dev_id, HwInfoType::INTEL_VTD)?;
        Ok(VtdHwInfo {
            cap: info.cap_reg,
            ecap: info.ecap_reg,
            pasid_bits,
        })
    }

    /// `IOMMU_GET_HW_INFO` of a device behind an SMMUv3.
    ///
    /// # Errors
    /// The command's errno; `EOPNOTSUPP` if the IOMMU is not an SMMUv3.
    pub fn smmuv3_hw_info(&self, dev_id: u32) -> Result<Smmuv3HwInfo, Errno> {
        let (regs, pasid_bits) =
            self.hw_info::<IommuHwInfoArmSmmuv3>(dev_id, HwInfoType::ARM_SMMUV3)?;
        Ok(Smmuv3HwInfo { regs, pasid_bits })
    }

    /// `IOMMU_VIOMMU_ALLOC` of an SMMUv3 vIOMMU for `dev_id`'s SMMU on the nesting parent
    /// `s2`.
    ///
    /// # Errors
    /// The command's errno.
    pub fn viommu_alloc_smmuv3(&self, dev_id: u32, s2: u32) -> Result<u32, Errno> {
        let mut cmd = IommuViommuAlloc {
            size: size_of::<IommuViommuAlloc>() as u32,
            type_: ViommuType::ARM_SMMUV3,
            dev_id,
            hwpt_id: s2,
            ..Default::default()
        };
        self.call(IOMMU_VIOMMU_ALLOC, &mut cmd)?;
        Ok(cmd.out_viommu_id)
    }

    /// `IOMMU_VDEVICE_ALLOC`: `dev_id` is `virt_id` on `viommu`.
    ///
    /// # Errors
    /// The command's errno.
    pub fn vdevice_alloc(&self, viommu: u32, dev_id: u32, virt_id: u64) -> Result<u32, Errno> {
        let mut cmd = IommuVdeviceAlloc {
            size: size_of::<IommuVdeviceAlloc>() as u32,
            viommu_id: viommu,
            dev_id,
            virt_id,
            ..Default::default()
        };
        self.call(IOMMU_VDEVICE_ALLOC, &mut cmd)?;
        Ok(cmd.out_vdevice_id)
    }

    /// `IOMMU_VEVENTQ_ALLOC` of `viommu`'s SMMUv3 event queue, `depth` events deep:
    /// (object ID, file number).
    ///
    /// # Errors
    /// The command's errno.
    pub fn veventq_alloc_smmuv3(&self, viommu: u32, depth: u32) -> Result<(u32, u32), Errno> {
        let mut cmd = IommuVeventqAlloc {
            size: size_of::<IommuVeventqAlloc>() as u32,
            viommu_id: viommu,
            type_: VeventqType::ARM_SMMUV3,
            veventq_depth: depth,
            ..Default::default()
        };
        self.call(IOMMU_VEVENTQ_ALLOC, &mut cmd)?;
        Ok((cmd.out_veventq_id, cmd.out_veventq_fd))
    }

    /// `IOMMU_HWPT_ALLOC` of a nested HWPT from the guest's STE words (`IOMMU_HWPT_DATA_ARM_SMMUV3`)
    /// under `viommu`, its stalls and page requests reported to the fault queue `fault_id`
    /// (vsva's extension).
    ///
    /// # Errors
    /// The command's errno.
    pub fn hwpt_nested_smmuv3(
        &self,
        dev_id: u32,
        viommu: u32,
        ste: &IommuHwptArmSmmuv3,
        fault_id: u32,
    ) -> Result<u32, Errno> {
        let flags = HwptAllocFlags::FAULT_ID_VALID;
        let data = (HwptDataType::ARM_SMMUV3, ste.as_bytes());
        self.hwpt_alloc_nested(dev_id, viommu, flags, data, fault_id)
    }

    /// `IOMMU_HWPT_ALLOC` of a nested HWPT on `pt_id` (a nesting parent or a vIOMMU) from
    /// driver data `data` (its type and bytes), with `flags` and fault queue `fault_id`.
    fn hwpt_alloc_nested(
        &self,
        dev_id: u32,
        pt_id: u32,
        flags: HwptAllocFlags,
        (data_type, bytes): (HwptDataType, &[u8]),
        fault_id: u32,
    ) -> Result<u32, Errno> {
        let (result, cmd) = self.with_data(bytes, |uptr| {
            let mut cmd = IommuHwptAlloc {
                size: size_of::<IommuHwptAlloc>() as u32,
                flags: flags.bits(),
                dev_id,
                pt_id,
                data_type,
                data_len: bytes.len() as u32,
                data_uptr: uptr,
                fault_id,
                ..Default::default()
            };
            let r = self.call(IOMMU_HWPT_ALLOC, &mut cmd);
            (r, cmd)
        })?;
        result?;
        Ok(cmd.out_hwpt_id)
    }

    /// `IOMMU_HWPT_INVALIDATE` of raw SMMUv3 commands on `viommu`: how many the host handled
    /// (written back on errors too) and the result.
    ///
    /// # Errors
    /// The scratch buffer's (`E2BIG`, `EFAULT`); the command's own errno is in the result.
    pub fn viommu_invalidate(
        &self,
        viommu: u32,
        cmds: &[IommuViommuArmSmmuv3Invalidate],
    ) -> Result<(u32, Result<(), Errno>), Errno> {
        self.invalidate(viommu, HwptInvalidateDataType::ARM_SMMUV3, cmds)
    }

    /// `IOMMU_HWPT_ALLOC` of a paging HWPT on `ioas` that can be a nesting parent and, with
    /// `pasids`, be attached to PASIDs.
    ///
    /// # Errors
    /// The command's errno.
    pub fn hwpt_nest_parent(&self, dev_id: u32, ioas: u32, pasids: bool) -> Result<u32, Errno> {
        let flags = if pasids {
            HwptAllocFlags::NEST_PARENT | HwptAllocFlags::PASID
        } else {
            HwptAllocFlags::NEST_PARENT
        };
        let mut cmd = IommuHwptAlloc {
            size: size_of::<IommuHwptAlloc>() as u32,
            flags: flags.bits(),
            dev_id,
            pt_id: ioas,
            ..Default::default()
        };
        self.call(IOMMU_HWPT_ALLOC, &mut cmd)?;
        Ok(cmd.out_hwpt_id)
    }

    /// `IOMMU_HWPT_ALLOC` of a nested HWPT (`IOMMU_HWPT_DATA_VTD_S1`) on `parent`, reporting
    /// its page requests to the fault queue `fault_id`, attachable to PASIDs.
    ///
    /// # Errors
    /// The command's errno.
    pub fn hwpt_nested(
        &self,
        dev_id: u32,
        parent: u32,
        s1: &IommuHwptVtdS1,
        fault_id: u32,
    ) -> Result<u32, Errno> {
        let flags = HwptAllocFlags::FAULT_ID_VALID | HwptAllocFlags::PASID;
        let data = (HwptDataType::VTD_S1, s1.as_bytes());
        self.hwpt_alloc_nested(dev_id, parent, flags, data, fault_id)
    }

    /// `IOMMU_HWPT_INVALIDATE` of `entries` on the nested HWPT `hwpt`; returns how many
    /// entries were handled.
    ///
    /// # Errors
    /// The command's errno.
    pub fn hwpt_invalidate(
        &self,
        hwpt: u32,
        entries: &[IommuHwptVtdS1Invalidate],
    ) -> Result<u32, Errno> {
        let (done, result) = self.invalidate(hwpt, HwptInvalidateDataType::VTD_S1, entries)?;
        result?;
        Ok(done)
    }

    /// `IOMMU_HWPT_INVALIDATE` of `entries` of type `data_type` on `id` (a nested HWPT or a
    /// vIOMMU): how many the kernel handled (written back on errors too) and the result.
    fn invalidate<T: IntoBytes + Immutable>(
        &self,
        id: u32,
        data_type: HwptInvalidateDataType,
        entries: &[T],
    ) -> Result<(u32, Result<(), Errno>), Errno> {
        self.with_data(entries.as_bytes(), |uptr| {
            let mut cmd = IommuHwptInvalidate {
                size: size_of::<IommuHwptInvalidate>() as u32,
                hwpt_id: id,
                data_uptr: uptr,
                data_type,
                entry_len: size_of::<T>() as u32,
                entry_num: entries.len() as u32,
                ..Default::default()
            };
            let r = self.call(IOMMU_HWPT_INVALIDATE, &mut cmd);
            (cmd.entry_num, r)
        })
    }

    /// `IOMMU_DESTROY`.
    ///
    /// # Errors
    /// The command's errno.
    pub fn destroy(&self, id: u32) -> Result<(), Errno> {
        let mut cmd = IommuDestroy {
            size: size_of::<IommuDestroy>() as u32,
            id,
        };
        self.call(IOMMU_DESTROY, &mut cmd)
    }
}
