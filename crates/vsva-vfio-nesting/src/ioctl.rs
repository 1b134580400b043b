//! [`NestingContainer::ioctl`]: a container ioctl from request number and argument bytes, as
//! `vfio_iommu_type1_ioctl()` with the series applied receives it, including
//! `VFIO_IOMMU_GET_INFO`'s capability chain.

use vsva_iommufd::abi::Errno;
use zerocopy::IntoBytes;

use crate::container::{IOVA_PGSIZES, NestingContainer, read_vfio};
use crate::uapi::{
    InfoFlags, IommuCacheInvalidateInfo, IommuGpasidBindData, IommuInvAddrInfo, IommuInvPasidInfo,
    IommuPageResponse, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_NESTING_OP,
    VFIO_IOMMU_NESTING_OP_BIND_PGTBL, VFIO_IOMMU_NESTING_OP_CACHE_INVLD,
    VFIO_IOMMU_NESTING_OP_PAGE_RESP, VFIO_IOMMU_NESTING_OP_UNBIND_PGTBL, VFIO_IOMMU_PASID_REQUEST,
    VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, VFIO_IOMMU_TYPE1_INFO_CAP_NESTING, VFIO_IOMMU_UNMAP_DMA,
    VFIO_NESTING_OP_MASK, VfioInfoCapHeader, VfioIommuType1DmaMap, VfioIommuType1DmaUnmap,
    VfioIommuType1Info, VfioIommuType1InfoCapIovaRange, VfioIommuType1InfoCapNesting,
    VfioIommuType1NestingOp, VfioIommuType1PasidRequest, VfioIovaRange,
};

/// `offsetofend(struct vfio_iommu_type1_info, iova_pgsizes)`: the mandatory part.
const INFO_MINSZ: usize = 16;
/// `offsetofend(struct vfio_iommu_type1_info, cap_offset)`: callers that know capabilities.
const INFO_CAPSZ: usize = 20;

/// A capability chain being built (`struct vfio_info_cap`).
#[derive(Default)]
struct Caps {
    buf: Vec<u8>,
    /// Offset of the last capability's header in `buf`.
    last: Option<usize>,
}

impl Caps {
    /// `vfio_info_add_capability()`: appends `cap` (header first), 8-byte aligned, linking the
    /// previous capability's `next` to it (offsets relative to the chain; shifted later).
    fn add(&mut self, cap: &[u8]) {
        let at = self.buf.len();
        if let Some(prev) = self.last {
            let next = at as u32;
            self.buf[prev + 4..prev + 8].copy_from_slice(&next.to_le_bytes());
        }
        self.buf.extend_from_slice(cap);
        self.buf.resize(at + cap.len().next_multiple_of(8), 0);
        self.last = Some(at);
    }

    /// `vfio_info_cap_shift()`: every non-zero `next` becomes an offset from the info struct.
    fn shift(&mut self, offset: u32) {
        let mut at = 0usize;
        loop {
            let next = u32::from_le_bytes([
                self.buf[at + 4],
                self.buf[at + 5],
                self.buf[at + 6],
                self.buf[at + 7],
            ]);
            if next == 0 {
                break;
            }
            self.buf[at + 4..at + 8].copy_from_slice(&(next + offset).to_le_bytes());
            at = next as usize;
        }
    }
}

impl NestingContainer {
    /// Runs container ioctl `number` on `arg`, the bytes the argument pointer reaches. Returns
    /// the system call's non-negative result: the PASID for `VFIO_IOMMU_PASID_REQUEST` ALLOC,
    /// else 0.
    ///
    /// * `VFIO_IOMMU_GET_INFO`: see [`get_info`](Self::get_info).
    /// * `VFIO_IOMMU_MAP_DMA` / `UNMAP_DMA`: the struct as type1 reads it
    ///   ([`read_vfio`]: `EFAULT`, `EINVAL` below 32 / 24 bytes), then
    ///   [`map_dma`](Self::map_dma) / [`unmap_dma`](Self::unmap_dma); UNMAP writes back the
    ///   struct's 24 bytes (`size` = bytes unmapped).
    /// * `VFIO_IOMMU_PASID_REQUEST`: [`pasid_request`](Self::pasid_request).
    /// * `VFIO_IOMMU_NESTING_OP`: see [`nesting_op`](Self::nesting_op).
    ///
    /// # Errors
    /// `ENOTTY` for any other number (type1's default); each command's errors.
    pub fn ioctl(&self, number: u64, arg: &mut [u8]) -> Result<u32, Errno> {
        match number as u32 {
            VFIO_IOMMU_GET_INFO => self.get_info(arg).map(|()| 0),
            VFIO_IOMMU_MAP_DMA => {
                let cmd: VfioIommuType1DmaMap = read_vfio(arg, 32)?;
                self.map_dma(&cmd).map(|()| 0)
            }
            VFIO_IOMMU_UNMAP_DMA => {
                let mut cmd: VfioIommuType1DmaUnmap = read_vfio(arg, 24)?;
                self.unmap_dma(&mut cmd)?;
                arg[..24].copy_from_slice(cmd.as_bytes());
                Ok(0)
            }
            VFIO_IOMMU_PASID_REQUEST => {
                let req: VfioIommuType1PasidRequest = read_vfio(arg, 16)?;
                self.pasid_request(&req)
            }
            VFIO_IOMMU_NESTING_OP => self.nesting_op(arg).map(|()| 0),
            _ => Err(Errno::ENOTTY),
        }
    }

    /// `VFIO_IOMMU_GET_INFO` (`vfio_iommu_type1_get_info()`): flags `PGSIZES` with every
    /// page size from 4 KiB, and a capability chain of
    /// `VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE` (the IOAS's usable ranges) then, once a device
    /// joined, `VFIO_IOMMU_TYPE1_INFO_CAP_NESTING` version 1 with the nesting info. With
    /// capabilities, `VFIO_IOMMU_INFO_CAPS` is set; if `argsz` cannot hold the chain after the
    /// 24-byte struct, `argsz` becomes the size needed and `cap_offset` stays 0, else the
    /// chain follows the struct and `cap_offset` is 24. Only the first 16 bytes are written
    /// back for an `argsz` below 20 (no `cap_offset`), else the first 20.
    ///
    /// # Errors
    /// `EFAULT` if `arg` is shorter than 16 bytes or than the chain it must hold; `EINVAL` for
    /// an `argsz` below 16.
    pub fn get_info(&self, arg: &mut [u8]) -> Result<(), Errno> {
        let mut info: VfioIommuType1Info = read_vfio(arg, INFO_MINSZ)?;
        let mut minsz = INFO_MINSZ;
        if info.argsz as usize >= INFO_CAPSZ {
            minsz = INFO_CAPSZ;
            info.cap_offset = 0;
        }
        info.flags = InfoFlags::PGSIZES.bits();
        info.iova_pgsizes = IOVA_PGSIZES;
        let mut caps = Caps::default();
        let ranges = self.iova_ranges()?;
        let mut iova = VfioIommuType1InfoCapIovaRange {
            header: VfioInfoCapHeader {
                id: VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
                version: 1,
                next: 0,
            },
            nr_iovas: ranges.len() as u32,
            reserved: 0,
        }
        .as_bytes()
        .to_vec();
        for (start, last) in ranges {
            iova.extend_from_slice(VfioIovaRange { start, end: last }.as_bytes());
        }
        caps.add(&iova);
        if let Some(nesting) = self.nesting_info() {
            let cap = VfioIommuType1InfoCapNesting {
                header: VfioInfoCapHeader {
                    id: VFIO_IOMMU_TYPE1_INFO_CAP_NESTING,
                    version: 1,
                    next: 0,
                },
                info: nesting,
            };
            caps.add(cap.as_bytes());
        }
        let head = size_of::<VfioIommuType1Info>();
        if !caps.buf.is_empty() {
            info.flags |= InfoFlags::CAPS.bits();
            let needed = head + caps.buf.len();
            if (info.argsz as usize) < needed {
                info.argsz = needed as u32;
            } else {
                caps.shift(head as u32);
                arg.get_mut(head..needed)
                    .ok_or(Errno::EFAULT)?
                    .copy_from_slice(&caps.buf);
                info.cap_offset = head as u32;
            }
        }
        arg[..minsz].copy_from_slice(&info.as_bytes()[..minsz]);
        Ok(())
    }

    /// `VFIO_IOMMU_NESTING_OP` (`vfio_iommu_type1_nesting_op()`): the 8-byte header, then the
    /// op's IOMMU uAPI struct at offset 8, read with its own `argsz` as the IOMMU core reads
    /// it — the fields before the vendor union (bind: 56 bytes) or the granularity's union
    /// member (invalidate: 16, 32 for PASID, 56 for ADDR) or the whole struct (page
    /// response: 24) are mandatory; bytes past the struct are ignored.
    ///
    /// # Errors
    /// `EFAULT` if `arg` is shorter than 8 bytes or than the data that must be read; `EINVAL`
    /// for an `argsz` below 8, bits set above the op's 16, or an unknown op; then, per op:
    /// `EOPNOTSUPP` before a device joined, `EINVAL` for a data `argsz` below its mandatory
    /// part, and the op's own errors ([`bind_pgtbl`](Self::bind_pgtbl),
    /// [`unbind_pgtbl`](Self::unbind_pgtbl), [`cache_invalidate`](Self::cache_invalidate),
    /// [`page_response`](Self::page_response)).
    pub fn nesting_op(&self, arg: &[u8]) -> Result<(), Errno> {
        let hdr: VfioIommuType1NestingOp = read_vfio(arg, 8)?;
        if hdr.flags & !VFIO_NESTING_OP_MASK != 0 {
            return Err(Errno::EINVAL);
        }
        let data = &arg[8..];
        match hdr.flags & VFIO_NESTING_OP_MASK {
            op @ (VFIO_IOMMU_NESTING_OP_BIND_PGTBL | VFIO_IOMMU_NESTING_OP_UNBIND_PGTBL) => {
                self.require_nesting()?;
                let bind: IommuGpasidBindData =
                    read_vfio(data, core::mem::offset_of!(IommuGpasidBindData, vtd))?;
                if op == VFIO_IOMMU_NESTING_OP_BIND_PGTBL {
                    self.bind_pgtbl(&bind)
                } else {
                    self.unbind_pgtbl(&bind)
                }
            }
            VFIO_IOMMU_NESTING_OP_CACHE_INVLD => {
                self.require_nesting()?;
                let head = core::mem::offset_of!(IommuCacheInvalidateInfo, addr_info);
                let info: IommuCacheInvalidateInfo = read_vfio(data, head)?;
                let needed = match info.granularity {
                    crate::uapi::IOMMU_INV_GRANU_PASID => head + size_of::<IommuInvPasidInfo>(),
                    crate::uapi::IOMMU_INV_GRANU_ADDR => head + size_of::<IommuInvAddrInfo>(),
                    _ => head,
                };
                if (info.argsz as usize) < needed {
                    return Err(Errno::EINVAL);
                }
                self.cache_invalidate(&info)
            }
            VFIO_IOMMU_NESTING_OP_PAGE_RESP => {
                self.require_nesting()?;
                let msg: IommuPageResponse = read_vfio(data, size_of::<IommuPageResponse>())?;
                self.page_response(&msg)
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// `EOPNOTSUPP` before a device joined: VFIO checks `iommu->nesting_info` before the
    /// IOMMU core reads the data.
    fn require_nesting(&self) -> Result<(), Errno> {
        self.nesting_info().map(|_| ()).ok_or(Errno::EOPNOTSUPP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_link_and_shift() {
        let mut caps = Caps::default();
        caps.add(&[1, 0, 1, 0, 0, 0, 0, 0, 0xaa, 0xaa, 0xaa, 0xaa]);
        caps.add(&[3, 0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(caps.buf.len(), 24, "the first capability is padded to 16");
        assert_eq!(&caps.buf[4..8], &16u32.to_le_bytes());
        caps.shift(24);
        assert_eq!(&caps.buf[4..8], &40u32.to_le_bytes());
        assert_eq!(
            &caps.buf[20..24],
            &0u32.to_le_bytes(),
            "the last ends the chain"
        );
    }
}
