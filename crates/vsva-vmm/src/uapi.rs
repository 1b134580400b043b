//! The VMM's side of `/dev/iommu`: every iommufd command goes through
//! [`Iommufd::ioctl`] with the bytes of its uAPI struct, and data behind pointers (the
//! VTD_S1 page-table info, invalidation arrays, hardware info) sits in the VMM process's own
//! memory — exactly what a C VMM's iommufd backend does (QEMU's `backends/iommufd.c`).

use std::sync::{Arc, Mutex};

use vsva_iommufd::abi::ioctl::{
    IOMMU_DESTROY, IOMMU_FAULT_QUEUE_ALLOC, IOMMU_GET_HW_INFO, IOMMU_HWPT_ALLOC,
    IOMMU_HWPT_INVALIDATE, IOMMU_IOAS_ALLOC, IOMMU_IOAS_MAP,
};
use vsva_iommufd::abi::{
    Errno, HwInfoType, HwptAllocFlags, HwptDataType, HwptInvalidateDataType, IoasMapFlags,
    IommuDestroy, IommuFaultAlloc, IommuHwInfo, IommuHwInfoVtd, IommuHwptAlloc,
    IommuHwptInvalidate, IommuHwptVtdS1, IommuHwptVtdS1Invalidate, IommuIoasAlloc, IommuIoasMap,
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

    /// `IOMMU_GET_HW_INFO` of a VT-d device.
    ///
    /// # Errors
    /// The command's errno; `EOPNOTSUPP` if the IOMMU is not VT-d.
    pub fn vtd_hw_info(&self, dev_id: u32) -> Result<VtdHwInfo, Errno> {
        let len = size_of::<IommuHwInfoVtd>();
        let (result, cmd, scratch) = self.with_data(&vec![0u8; len], |uptr| {
            let mut cmd = IommuHwInfo {
                size: size_of::<IommuHwInfo>() as u32,
                dev_id,
                data_len: len as u32,
                data_uptr: uptr,
                ..Default::default()
            };
            let r = self.call(IOMMU_GET_HW_INFO, &mut cmd);
            (r, cmd, uptr)
        })?;
        result?;
        if cmd.data_type != HwInfoType::INTEL_VTD {
            return Err(Errno::EOPNOTSUPP);
        }
        let mut bytes = vec![0u8; len];
        self.mem.read(scratch, &mut bytes)?;
        let info = IommuHwInfoVtd::read_from_bytes(&bytes).map_err(|_| Errno::EFAULT)?;
        Ok(VtdHwInfo {
            cap: info.cap_reg,
            ecap: info.ecap_reg,
            pasid_bits: cmd.out_max_pasid_log2,
        })
    }

    /// `IOMMU_HWPT_ALLOC` of a paging HWPT on `ioas` that can be a nesting parent and be
    /// attached to PASIDs.
    ///
    /// # Errors
    /// The command's errno.
    pub fn hwpt_nest_parent(&self, dev_id: u32, ioas: u32) -> Result<u32, Errno> {
        let mut cmd = IommuHwptAlloc {
            size: size_of::<IommuHwptAlloc>() as u32,
            flags: (HwptAllocFlags::NEST_PARENT | HwptAllocFlags::PASID).bits(),
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
        let (result, cmd) = self.with_data(s1.as_bytes(), |uptr| {
            let mut cmd = IommuHwptAlloc {
                size: size_of::<IommuHwptAlloc>() as u32,
                flags: (HwptAllocFlags::FAULT_ID_VALID | HwptAllocFlags::PASID).bits(),
                dev_id,
                pt_id: parent,
                data_type: HwptDataType::VTD_S1,
                data_len: size_of::<IommuHwptVtdS1>() as u32,
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
        let (result, cmd) = self.with_data(entries.as_bytes(), |uptr| {
            let mut cmd = IommuHwptInvalidate {
                size: size_of::<IommuHwptInvalidate>() as u32,
                hwpt_id: hwpt,
                data_uptr: uptr,
                data_type: HwptInvalidateDataType::VTD_S1,
                entry_len: size_of::<IommuHwptVtdS1Invalidate>() as u32,
                entry_num: entries.len() as u32,
                ..Default::default()
            };
            let r = self.call(IOMMU_HWPT_INVALIDATE, &mut cmd);
            (r, cmd)
        })?;
        result?;
        Ok(cmd.entry_num)
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
