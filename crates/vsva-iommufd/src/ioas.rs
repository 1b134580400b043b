//! The IOAS object and its commands (Linux `struct iommufd_ioas`,
//! `drivers/iommu/iommufd/ioas.c`).
//!
//! An IOAS is an [`IoPageTable`] published in the context's object table. The commands check
//! their arguments in Linux's order — unknown flags and non-zero reserved fields
//! (`EOPNOTSUPP`), then values that cannot be an IOVA or length (`EOVERFLOW`), then missing
//! required flags (`EINVAL`) — then look the IOAS up (`ENOENT`), then do the work, whose
//! errors are those of [`IoPageTable`]. Each method's doc gives its order.

use std::sync::Arc;

use zerocopy::IntoBytes;

use crate::abi::{
    Errno, IoasMapFlags, IommuIoasAlloc, IommuIoasAllowIovas, IommuIoasChangeProcess,
    IommuIoasCopy, IommuIoasIovaRanges, IommuIoasMap, IommuIoasMapFile, IommuIoasUnmap,
    IommuIovaRange, IommuOption, OptionId, OptionOp, check_zero, known_flags,
};
use crate::ctx::Iommufd;
use crate::domain::IoProt;
use crate::io_pagetable::IoPageTable;
use crate::object::{IommufdObject, Object, ObjectHeader, ObjectType};
use crate::pages::AddressSpace;
use crate::user_memory::UserMemory;

/// An I/O address space: the IOVA -> user memory map that paging HWPTs are filled from.
pub struct Ioas {
    header: ObjectHeader,
    iopt: IoPageTable,
}

impl Ioas {
    /// The IOAS's object ID.
    pub fn id(&self) -> u32 {
        self.header.id()
    }

    /// The address space.
    pub fn iopt(&self) -> &IoPageTable {
        &self.iopt
    }
}

impl IommufdObject for Ioas {
    const TYPE: ObjectType = ObjectType::Ioas;

    fn header(&self) -> &ObjectHeader {
        &self.header
    }

    fn downcast(object: &Object) -> Option<&Arc<Self>> {
        match object {
            Object::Ioas(ioas) => Some(ioas),
            _ => None,
        }
    }
}

impl Drop for Ioas {
    /// `iommufd_ioas_destroy()`: unmaps everything, which unpins the pages if a domain is
    /// still attached. (HWPTs hold their IOAS, so normally none is.)
    fn drop(&mut self) {
        self.iopt.unmap_all();
    }
}

impl std::fmt::Debug for Ioas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ioas")
            .field("id", &self.id())
            .field("areas", &self.iopt.areas().len())
            .finish()
    }
}

/// `conv_iommu_prot()`: the map flags' rights. (Linux also sets `IOMMU_CACHE`: vsva's DMA is
/// always cache-coherent.)
fn conv_iommu_prot(flags: IoasMapFlags) -> IoProt {
    let mut prot = IoProt::empty();
    if flags.contains(IoasMapFlags::READABLE) {
        prot |= IoProt::READ;
    }
    if flags.contains(IoasMapFlags::WRITEABLE) {
        prot |= IoProt::WRITE;
    }
    prot
}

/// The flag checks MAP, MAP_FILE and COPY share, after the unknown-bit check: `EOVERFLOW` if
/// any of `values` is `ULONG_MAX` (`u64::MAX`), then `EINVAL` without `READABLE` or
/// `WRITEABLE`. Returns the rights and the fixed IOVA, if `FIXED_IOVA` is set.
fn check_map(
    flags: IoasMapFlags,
    values: &[u64],
    iova: u64,
) -> Result<(IoProt, Option<u64>), Errno> {
    if values.contains(&u64::MAX) {
        return Err(Errno::EOVERFLOW);
    }
    let prot = conv_iommu_prot(flags);
    if prot.is_empty() {
        return Err(Errno::EINVAL);
    }
    Ok((
        prot,
        flags.contains(IoasMapFlags::FIXED_IOVA).then_some(iova),
    ))
}

/// The user address of entry `index` of an array of [`IommuIovaRange`] at `base`.
fn range_addr(base: u64, index: u32) -> Result<u64, Errno> {
    let offset = u64::from(index) * size_of::<IommuIovaRange>() as u64;
    base.checked_add(offset).ok_or(Errno::EFAULT)
}

impl Iommufd {
    /// `IOMMU_IOAS_ALLOC` (`iommufd_ioas_alloc_ioctl()`): creates an empty IOAS and returns
    /// its ID in `cmd.out_ioas_id`.
    ///
    /// # Errors
    /// `EOPNOTSUPP` for non-zero `flags`; `EBUSY` if no object ID is free.
    pub fn ioas_alloc(&self, cmd: &mut IommuIoasAlloc) -> Result<(), Errno> {
        check_zero(&cmd.flags)?;
        cmd.out_ioas_id = self.create(|id| {
            Ok(Object::Ioas(Arc::new(Ioas {
                header: ObjectHeader::new(id),
                iopt: IoPageTable::default(),
            })))
        })?;
        Ok(())
    }

    /// `IOMMU_IOAS_IOVA_RANGES` (`iommufd_ioas_iova_ranges()`): writes the IOVA ranges the
    /// IOAS can map (the holes between reserved ranges, in order) to the user array at
    /// `cmd.allowed_iovas`, as many as its capacity `cmd.num_iovas` allows; sets `num_iovas`
    /// to the number of ranges there are and `out_iova_alignment` to the alignment MAP and
    /// COPY need.
    ///
    /// # Errors
    /// In order: `EOPNOTSUPP` for non-zero `__reserved`; `ENOENT` if `ioas_id` is not an IOAS;
    /// `EFAULT` if writing an entry faults (the struct is not returned then); `EMSGSIZE` if
    /// the array was too small — `cmd` is complete then and the caller (as Linux does) still
    /// returns it to the user, so the user learns how many entries to provide.
    pub fn ioas_iova_ranges(
        &self,
        cmd: &mut IommuIoasIovaRanges,
        mem: &dyn UserMemory,
    ) -> Result<(), Errno> {
        check_zero(&cmd.__reserved)?;
        let ioas = self.get_ioas(cmd.ioas_id)?;
        let capacity = cmd.num_iovas;
        let (ranges, alignment) = ioas.iopt.iova_ranges();
        cmd.num_iovas = 0;
        cmd.out_iova_alignment = alignment;
        for (start, last) in ranges {
            if cmd.num_iovas < capacity {
                let entry = IommuIovaRange { start, last };
                let addr = range_addr(cmd.allowed_iovas, cmd.num_iovas)?;
                mem.write(addr, entry.as_bytes())?;
            }
            cmd.num_iovas = cmd.num_iovas.saturating_add(1);
        }
        if cmd.num_iovas > capacity {
            return Err(Errno::EMSGSIZE);
        }
        Ok(())
    }

    /// `IOMMU_IOAS_ALLOW_IOVAS` (`iommufd_ioas_allow_iovas()`): replaces the IOAS's allowed
    /// ranges with the `cmd.num_iovas` entries at `cmd.allowed_iovas` (none: no restriction).
    ///
    /// # Errors
    /// In order: `EOPNOTSUPP` for non-zero `__reserved`; `ENOENT` if `ioas_id` is not an IOAS;
    /// then entry by entry (`iommufd_ioas_load_iovas()`): `EFAULT` if it cannot be read,
    /// `EINVAL` if `start >= last` or it overlaps an earlier entry; finally `EADDRINUSE` if a
    /// range overlaps a reserved one (`iopt_set_allow_iova()`). The old ranges stay on error.
    pub fn ioas_allow_iovas(
        &self,
        cmd: &IommuIoasAllowIovas,
        mem: &dyn UserMemory,
    ) -> Result<(), Errno> {
        check_zero(&cmd.__reserved)?;
        let ioas = self.get_ioas(cmd.ioas_id)?;
        let mut loaded = std::collections::BTreeMap::<u64, u64>::new();
        for index in 0..cmd.num_iovas {
            let mut entry = IommuIovaRange::default();
            mem.read(range_addr(cmd.allowed_iovas, index)?, entry.as_mut_bytes())?;
            if entry.start >= entry.last {
                return Err(Errno::EINVAL);
            }
            // The loaded ranges are disjoint, so the one starting last at or before
            // `entry.last` is the only one that can reach `entry.start`.
            let overlaps = loaded
                .range(..=entry.last)
                .next_back()
                .is_some_and(|(_, &last)| last >= entry.start);
            if overlaps {
                return Err(Errno::EINVAL);
            }
            loaded.insert(entry.start, entry.last);
        }
        let ranges: Vec<(u64, u64)> = loaded.into_iter().collect();
        ioas.iopt.allow_iovas(&ranges)
    }

    /// `IOMMU_IOAS_MAP` (`iommufd_ioas_map()`): maps `cmd.length` bytes of the context's
    /// process at `cmd.user_va` into the IOAS, at `cmd.iova` with `FIXED_IOVA`, else at an
    /// IOVA chosen and returned in `cmd.iova`.
    ///
    /// # Errors
    /// In order: `EOPNOTSUPP` for unknown flags or non-zero `__reserved`; `EOVERFLOW` if `iova`
    /// or `length` is `u64::MAX` (`ULONG_MAX`; checked even without `FIXED_IOVA`); `EINVAL`
    /// without `READABLE` or `WRITEABLE`; `ENOENT` if `ioas_id` is not an IOAS; then
    /// [`IoPageTable::map_user`]'s errors.
    pub fn ioas_map(&self, cmd: &mut IommuIoasMap) -> Result<(), Errno> {
        let flags = known_flags::<IoasMapFlags>(cmd.flags)?;
        check_zero(&cmd.__reserved)?;
        let (prot, fixed) = check_map(flags, &[cmd.iova, cmd.length], cmd.iova)?;
        let ioas = self.get_ioas(cmd.ioas_id)?;
        cmd.iova = ioas
            .iopt
            .map_user(self.process(), cmd.user_va, cmd.length, prot, fixed)?;
        Ok(())
    }

    /// `IOMMU_IOAS_MAP_FILE` (`iommufd_ioas_map_file()`, then `iopt_map_file_pages()`): maps
    /// `cmd.length` bytes of the memfd `cmd.fd` from byte `cmd.start` into the IOAS, at
    /// `cmd.iova` with `FIXED_IOVA`, else at an IOVA chosen and returned in `cmd.iova`. The
    /// descriptor is resolved by the context's [`FileResolver`](crate::FileResolver); the
    /// file's pages are then pinned lazily and shared by COPY like those of `IOMMU_IOAS_MAP`.
    ///
    /// # Errors
    /// In order: `EOPNOTSUPP` for unknown flags; `EOVERFLOW` if `iova` or `length` is
    /// `u64::MAX`; `EINVAL` without `READABLE` or `WRITEABLE`; `ENOENT` if `ioas_id` is not an
    /// IOAS; `EBADF` for a bad descriptor (always, when the context has no resolver); the
    /// resolver's `EINVAL` / `EPERM`; then [`IoPageTable::map_user`]'s errors.
    pub fn ioas_map_file(&self, cmd: &mut IommuIoasMapFile) -> Result<(), Errno> {
        let flags = known_flags::<IoasMapFlags>(cmd.flags)?;
        let (prot, fixed) = check_map(flags, &[cmd.iova, cmd.length], cmd.iova)?;
        let ioas = self.get_ioas(cmd.ioas_id)?;
        let resolver = self.file_resolver().ok_or(Errno::EBADF)?;
        let file = resolver.resolve(cmd.fd, cmd.start, cmd.length, prot.contains(IoProt::WRITE))?;
        cmd.iova = ioas
            .iopt
            .map_file(file, self.process(), cmd.start, cmd.length, prot, fixed)?;
        Ok(())
    }

    /// `IOMMU_IOAS_COPY` (`iommufd_ioas_copy()`): maps into `cmd.dst_ioas_id` the memory that
    /// `[src_iova, src_iova + length)` of `cmd.src_ioas_id` maps, at `cmd.dst_iova` with
    /// `FIXED_IOVA`, else at an IOVA chosen and returned in `cmd.dst_iova`. The pages are
    /// shared, not pinned again.
    ///
    /// # Errors
    /// In order: `EOPNOTSUPP` for unknown flags; `EOVERFLOW` if `length`, `src_iova` or
    /// `dst_iova` is `u64::MAX`; `EINVAL` without `READABLE` or `WRITEABLE`; `ENOENT` if
    /// `src_ioas_id` is not an IOAS; [`IoPageTable::get_pages`]'s errors on the source;
    /// `ENOENT` if `dst_ioas_id` is not an IOAS; [`IoPageTable::map_pages_list`]'s errors.
    pub fn ioas_copy(&self, cmd: &mut IommuIoasCopy) -> Result<(), Errno> {
        let flags = known_flags::<IoasMapFlags>(cmd.flags)?;
        let (prot, fixed) = check_map(
            flags,
            &[cmd.length, cmd.src_iova, cmd.dst_iova],
            cmd.dst_iova,
        )?;
        let pages = {
            let src = self.get_ioas(cmd.src_ioas_id)?;
            src.iopt.get_pages(cmd.src_iova, cmd.length)?
        };
        let dst = self.get_ioas(cmd.dst_ioas_id)?;
        cmd.dst_iova = dst.iopt.map_pages_list(pages, prot, fixed)?;
        Ok(())
    }

    /// `IOMMU_IOAS_UNMAP` (`iommufd_ioas_unmap()`): unmaps every mapping inside
    /// `[iova, iova + length)` — everything for `iova` 0 and `length` `u64::MAX` — and returns
    /// the bytes unmapped in `cmd.length`.
    ///
    /// # Errors
    /// In order: `ENOENT` if `ioas_id` is not an IOAS; unless unmapping everything (which
    /// succeeds even on an empty IOAS), `EOVERFLOW` if `iova` or `length` is `u64::MAX`, then
    /// [`IoPageTable::unmap`]'s errors (`EINVAL` for length 0, `EOVERFLOW` if the range wraps,
    /// `ENOENT` if it holds no mapping or cuts one).
    pub fn ioas_unmap(&self, cmd: &mut IommuIoasUnmap) -> Result<(), Errno> {
        let ioas = self.get_ioas(cmd.ioas_id)?;
        cmd.length = if cmd.iova == 0 && cmd.length == u64::MAX {
            ioas.iopt.unmap_all()
        } else {
            if cmd.iova == u64::MAX || cmd.length == u64::MAX {
                return Err(Errno::EOVERFLOW);
            }
            ioas.iopt.unmap(cmd.iova, cmd.length)?
        };
        Ok(())
    }

    /// `IOMMU_IOAS_CHANGE_PROCESS` (`iommufd_ioas_change_process()`): the calling process
    /// `caller` takes the context over — the charge for every pinned page moves to it, and
    /// later `IOMMU_IOAS_MAP`s map its memory — as a VMM hands its iommufd to the process
    /// that replaces it (live update). Only possible when every mapping is a file's, since
    /// the old process's memory cannot follow. `None` (a caller the context cannot name) is
    /// the process that opened it.
    ///
    /// # Errors
    /// In order: `EOPNOTSUPP` for non-zero `__reserved`; `EINVAL` if any IOAS holds a
    /// mapping not made by `IOMMU_IOAS_MAP_FILE`; `ENOMEM` if the pinned pages do not fit
    /// the caller's RLIMIT_MEMLOCK. Nothing changes on error.
    pub fn ioas_change_process(
        &self,
        cmd: &IommuIoasChangeProcess,
        caller: Option<Arc<dyn AddressSpace>>,
    ) -> Result<(), Errno> {
        check_zero(&cmd.__reserved)?;
        let caller = caller.unwrap_or_else(|| self.process());
        let _serial = self.attach_lock();
        let ioases = self.all::<Ioas>();
        let tables: Vec<&IoPageTable> = ioases.iter().map(|ioas| &ioas.iopt).collect();
        IoPageTable::change_owner(&tables, &caller)?;
        self.set_process(caller);
        Ok(())
    }

    /// `IOMMU_OPTION_HUGE_PAGES` (`iommufd_ioas_option()`): on the IOAS `cmd.object_id`, `GET`
    /// returns 1 if large IOPTEs are allowed (the default) and 0 if not; `SET` 0 or 1 changes
    /// it ([`IoPageTable::set_large_pages`]).
    ///
    /// # Errors
    /// In order: `EOPNOTSUPP` for non-zero `__reserved`; `ENOENT` if `object_id` is not an
    /// IOAS; for `SET`, `EINVAL` for a value other than 0 or 1 and `set_large_pages`'s errors;
    /// `EOPNOTSUPP` for another `op`.
    pub(crate) fn ioas_option(&self, cmd: &mut IommuOption) -> Result<(), Errno> {
        check_zero(&cmd.__reserved)?;
        let ioas = self.get_ioas(cmd.object_id)?;
        if cmd.option_id != OptionId::HUGE_PAGES {
            return Err(Errno::EOPNOTSUPP);
        }
        match cmd.op {
            OptionOp::GET => {
                cmd.val64 = u64::from(ioas.iopt.large_pages());
                Ok(())
            }
            OptionOp::SET => match cmd.val64 {
                0 => ioas.iopt.set_large_pages(false),
                1 => ioas.iopt.set_large_pages(true),
                _ => Err(Errno::EINVAL),
            },
            _ => Err(Errno::EOPNOTSUPP),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prot_from_flags() {
        assert_eq!(conv_iommu_prot(IoasMapFlags::READABLE), IoProt::READ);
        assert_eq!(conv_iommu_prot(IoasMapFlags::WRITEABLE), IoProt::WRITE);
        assert_eq!(conv_iommu_prot(IoasMapFlags::FIXED_IOVA), IoProt::empty());
    }

    #[test]
    fn map_checks_overflow_before_rights() {
        assert_eq!(
            check_map(IoasMapFlags::FIXED_IOVA, &[u64::MAX, 1], 0),
            Err(Errno::EOVERFLOW)
        );
        assert_eq!(
            check_map(IoasMapFlags::FIXED_IOVA, &[0, 1], 0),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            check_map(IoasMapFlags::all(), &[0x1000, 1], 0x1000),
            Ok((IoProt::READ | IoProt::WRITE, Some(0x1000)))
        );
        assert_eq!(
            check_map(IoasMapFlags::READABLE, &[u64::MAX - 1, 1], 7),
            Ok((IoProt::READ, None))
        );
    }

    #[test]
    fn array_entry_addresses() {
        assert_eq!(range_addr(0x1000, 2), Ok(0x1020));
        assert_eq!(range_addr(u64::MAX - 15, 1), Err(Errno::EFAULT));
    }
}
