//! `VFIO_IOMMU_NESTING_OP`'s four ops on a [`NestingContainer`], and the fault reports the
//! VMM reads: bind and unbind a guest page table to a host PASID, invalidate first-stage
//! caches, answer page requests.
//!
//! Checks and errnos come from three layers of the series, applied in their order:
//! 1. VFIO (`vfio_iommu_type1_nesting_op()`, v7 10/16 and 11/16): the header, then the
//!    container's nesting info (`EOPNOTSUPP` without it or without the op's feature);
//! 2. the IOMMU core's uAPI readers of Linux 5.10 (`iommu_sva_prepare_bind_data()`,
//!    `iommu_check_bind_data()`, `iommu_uapi_cache_invalidate()`,
//!    `iommu_check_cache_invl_data()`, `iommu_page_response()`), which read the data with its
//!    own `argsz`;
//! 3. the Intel driver (`intel_svm_bind_gpasid()`, `intel_svm_unbind_gpasid()`,
//!    `intel_iommu_sva_invalidate()`, `intel_pasid_setup_bind_data()`), with the ownership
//!    checks of v7 09/16 ("iommu/vt-d: Check ownership for PASIDs from user-space").

use vsva_iommufd::abi::{
    Errno, HwptAllocFlags, HwptDataType, HwptInvalidateDataType, IommuHwptAlloc,
    IommuHwptInvalidate, IommuHwptPageResponse, IommuHwptPgfault, IommuHwptVtdS1,
    IommuHwptVtdS1Invalidate, PageResponseCode, PgfaultFlags, VtdS1Flags,
};
use zerocopy::{FromBytes, IntoBytes};

use crate::container::{
    Binding, NestingContainer, PAGE, Pending, State, VTD_ECAP_MTS, destroy_logged,
};
use crate::kmem::{KBUF_BASE, KernelBuf};
use crate::pasid::PASID_LAST;
use crate::uapi::{
    CacheInvType, FaultPrmFlags, GpasidBindFlags, IOMMU_CACHE_INVALIDATE_INFO_VERSION_1,
    IOMMU_FAULT_PAGE_REQ, IOMMU_GPASID_BIND_VERSION_1, IOMMU_INV_GRANU_ADDR,
    IOMMU_INV_GRANU_DOMAIN, IOMMU_INV_GRANU_PASID, IOMMU_PAGE_RESP_FAILURE,
    IOMMU_PAGE_RESP_INVALID, IOMMU_PAGE_RESP_PASID_VALID, IOMMU_PAGE_RESP_SUCCESS,
    IOMMU_PAGE_RESP_VERSION_1, IOMMU_PASID_FORMAT_INTEL_VTD, IOMMU_PASID_FORMAT_LAST, InvAddrFlags,
    InvPasidFlags, IommuCacheInvalidateInfo, IommuFault, IommuFaultPageRequest,
    IommuGpasidBindData, IommuPageResponse, NestingFeatures, VtdGpasidFlags,
};

/// Bytes of one fault report ([`IommuFault`]).
pub const FAULT_SIZE: usize = size_of::<IommuFault>();

/// The most reports one [`NestingContainer::read_faults`] returns: the buffer read from the
/// fault queue is sized by the caller's count, so a larger count reads fewer, as a `read()`
/// may, instead of allocating without bound.
pub const MAX_READ_RECORDS: usize = 1 << 16;

/// A page request read from the container, with the iommufd ID of the device that sent it
/// (the series reported faults per device, through the device's VFIO fault region).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContainerFault {
    /// The device's iommufd ID ([`NestingContainer::devices`]).
    pub dev_id: u32,
    /// The report, as `struct iommu_fault` of type `IOMMU_FAULT_PAGE_REQ`.
    pub fault: IommuFault,
}

/// `iommu_check_bind_data()` then the Intel driver's own checks on the data, as far as they do
/// not need the container: version, format, flags, padding, then format VT-d, the full
/// `vendor.vtd`, undefined VT-d flags.
fn check_bind_data(data: &IommuGpasidBindData) -> Result<(), Errno> {
    if data.version != IOMMU_GPASID_BIND_VERSION_1 || data.format >= IOMMU_PASID_FORMAT_LAST {
        return Err(Errno::EINVAL);
    }
    if GpasidBindFlags::from_bits(data.flags).is_none() || data.padding != [0; 8] {
        return Err(Errno::EINVAL);
    }
    if data.format != IOMMU_PASID_FORMAT_INTEL_VTD {
        return Err(Errno::EINVAL);
    }
    if (data.argsz as usize) < size_of::<IommuGpasidBindData>() {
        return Err(Errno::EINVAL);
    }
    if VtdGpasidFlags::from_bits(data.vtd.flags).is_none() {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// `iommu_check_cache_invl_data()`.
fn check_invalidate(info: &IommuCacheInvalidateInfo) -> Result<(CacheInvType, u8), Errno> {
    if info.version != IOMMU_CACHE_INVALIDATE_INFO_VERSION_1 {
        return Err(Errno::EINVAL);
    }
    let cache = CacheInvType::from_bits(info.cache).ok_or(Errno::EINVAL)?;
    match info.granularity {
        IOMMU_INV_GRANU_ADDR => {
            if cache.contains(CacheInvType::PASID)
                || InvAddrFlags::from_bits(info.addr_info.flags).is_none()
            {
                return Err(Errno::EINVAL);
            }
        }
        IOMMU_INV_GRANU_PASID => {
            if InvPasidFlags::from_bits(info.pasid_info().flags).is_none() {
                return Err(Errno::EINVAL);
            }
        }
        IOMMU_INV_GRANU_DOMAIN => {
            if cache.contains(CacheInvType::DEV_IOTLB) {
                return Err(Errno::EINVAL);
            }
        }
        _ => return Err(Errno::EINVAL),
    }
    if info.padding != [0; 6] {
        return Err(Errno::EINVAL);
    }
    Ok((cache, info.granularity))
}

/// The first-stage range of an address-selective invalidation, in 4 KiB pages:
/// `granule_size * nb_granules` bytes from `addr`, widened to whole pages (VT-d ignores the
/// low address bits). `None` is the whole space (the size overflows); 0 pages is nothing.
fn addr_range(addr: u64, granule_size: u64, nb_granules: u64) -> Option<(u64, u64)> {
    let bytes = granule_size.checked_mul(nb_granules)?;
    if bytes == 0 {
        return Some((addr & !(PAGE - 1), 0));
    }
    let start = addr & !(PAGE - 1);
    let end = addr.checked_add(bytes)?.checked_add(PAGE - 1)? & !(PAGE - 1);
    Some((start, (end - start) / PAGE))
}

impl NestingContainer {
    /// The nesting features, or `EOPNOTSUPP` before a device joined (`!iommu->nesting_info`).
    fn features(st: &State) -> Result<NestingFeatures, Errno> {
        st.nesting
            .as_ref()
            .map(|n| NestingFeatures::from_bits_retain(n.info.features))
            .ok_or(Errno::EOPNOTSUPP)
    }

    /// `BIND_PGTBL`: binds the guest first-stage table at GPA `data.gpgd` to host PASID
    /// `data.hpasid` of every device in the container — `IOMMU_HWPT_ALLOC` of a nested HWPT
    /// (`IOMMU_HWPT_DATA_VTD_S1` on stage 2, with the container's fault queue), then
    /// `VFIO_DEVICE_ATTACH_IOMMUFD_PT` of that PASID for each device. The VT-d flags map to
    /// the first stage's SRE, EAFE and WPE.
    ///
    /// # Errors
    /// In order: `EOPNOTSUPP` before a device joined; `EINVAL` for a bad `version`, a
    /// `format` other than INTEL_VTD, unknown `flags`, non-zero `padding`, `argsz` short of
    /// `vendor.vtd`, unknown VT-d flags, an `hpasid` of 0 or at or above 2^20; `ENOENT` for an
    /// `hpasid` nobody allocated, `EACCES` for one another container holds; `EBUSY` if it is
    /// bound already; `EINVAL` for SRE without ECAP.SRS, EAFE without ECAP.EAFS, or a
    /// memory-type flag (PCD, PWT, EMTE, CD) without ECAP.MTS (`intel_pasid_setup_bind_data()`);
    /// then `IOMMU_HWPT_ALLOC`'s — `EINVAL` for an `addr_width` other than 48 or 57 (57 needs
    /// FS5LP) or a bad `gpgd`, `EOPNOTSUPP` for EAFE, WPE and memory types, which iommufd's
    /// VT-d first stage cannot express — and the attach's (`EINVAL` for a PASID beyond a
    /// device's width). A failed attach detaches the devices attached before it.
    pub fn bind_pgtbl(&self, data: &IommuGpasidBindData) -> Result<(), Errno> {
        let mut st = self.lock();
        if !Self::features(&st)?.contains(NestingFeatures::BIND_PGTBL) {
            return Err(Errno::EOPNOTSUPP);
        }
        check_bind_data(data)?;
        if data.hpasid == 0 || data.hpasid > u64::from(PASID_LAST) {
            return Err(Errno::EINVAL);
        }
        let hpasid = self.pasids.check(data.hpasid)?;
        if st.binds.contains_key(&hpasid) {
            return Err(Errno::EBUSY);
        }
        let nesting = st.nesting.as_ref().ok_or(Errno::EOPNOTSUPP)?;
        let vtd = VtdGpasidFlags::from_bits_retain(data.vtd.flags);
        let ecap = nesting.ecap;
        if vtd.contains(VtdGpasidFlags::SRE) && ecap & 1 << 31 == 0 {
            return Err(Errno::EINVAL);
        }
        if vtd.contains(VtdGpasidFlags::EAFE) && ecap & 1 << 34 == 0 {
            return Err(Errno::EINVAL);
        }
        if vtd.intersects(VtdGpasidFlags::MTS_MASK) {
            return Err(if ecap & VTD_ECAP_MTS == 0 {
                Errno::EINVAL
            } else {
                Errno::EOPNOTSUPP
            });
        }
        let mut s1_flags = VtdS1Flags::empty();
        s1_flags.set(VtdS1Flags::SRE, vtd.contains(VtdGpasidFlags::SRE));
        s1_flags.set(VtdS1Flags::EAFE, vtd.contains(VtdGpasidFlags::EAFE));
        s1_flags.set(VtdS1Flags::WPE, vtd.contains(VtdGpasidFlags::WPE));
        let s1 = IommuHwptVtdS1 {
            flags: s1_flags.bits(),
            pgtbl_addr: data.gpgd,
            addr_width: data.addr_width,
            __reserved: 0,
        };
        let first = st.members.first().map(|m| m.dev_id).ok_or(Errno::EINVAL)?;
        let mut alloc = IommuHwptAlloc {
            size: size_of::<IommuHwptAlloc>() as u32,
            flags: (HwptAllocFlags::FAULT_ID_VALID | HwptAllocFlags::PASID).bits(),
            dev_id: first,
            pt_id: nesting.s2_id,
            data_type: HwptDataType::VTD_S1,
            data_len: size_of::<IommuHwptVtdS1>() as u32,
            data_uptr: KBUF_BASE,
            fault_id: nesting.fault_id,
            ..Default::default()
        };
        self.ictx
            .hwpt_alloc(&mut alloc, &KernelBuf::new(s1.as_bytes().to_vec()))?;
        let hwpt_id = alloc.out_hwpt_id;
        let mut devs = Vec::new();
        for member in &st.members {
            if let Err(errno) = member.file.attach(hwpt_id, Some(hpasid)) {
                for done in st.members.iter().filter(|m| devs.contains(&m.dev_id)) {
                    if let Err(e) = done.file.detach(Some(hpasid)) {
                        tracing::error!(%e, "rolling back a bind failed");
                    }
                }
                destroy_logged(&self.ictx, hwpt_id);
                return Err(errno);
            }
            devs.push(member.dev_id);
        }
        let gpasid = GpasidBindFlags::from_bits_retain(data.flags)
            .contains(GpasidBindFlags::GPASID_VAL)
            .then_some(data.gpasid);
        tracing::debug!(hpasid, hwpt_id, ?gpasid, "guest page table bound");
        st.binds.insert(
            hpasid,
            Binding {
                hwpt_id,
                gpasid,
                devs,
            },
        );
        Ok(())
    }

    /// `UNBIND_PGTBL`: detaches host PASID `data.hpasid` of every device and destroys its
    /// nested HWPT; page requests of it still queued or unanswered are answered INVALID by
    /// iommufd and forgotten here. Unbinding an owned PASID that is not bound does nothing
    /// (`intel_svm_unbind_gpasid()` finds no device and returns 0).
    ///
    /// # Errors
    /// `EOPNOTSUPP` before a device joined; the data checks of [`bind_pgtbl`](Self::bind_pgtbl)
    /// (the series ran them too, in `iommu_uapi_sva_unbind_gpasid()`, but VFIO dropped their
    /// result; vsva returns it); `EINVAL` for an `hpasid` at or above 2^20; `ENOENT` /
    /// `EACCES` for one this container does not own.
    pub fn unbind_pgtbl(&self, data: &IommuGpasidBindData) -> Result<(), Errno> {
        let mut st = self.lock();
        if !Self::features(&st)?.contains(NestingFeatures::BIND_PGTBL) {
            return Err(Errno::EOPNOTSUPP);
        }
        check_bind_data(data)?;
        if data.hpasid > u64::from(PASID_LAST) {
            return Err(Errno::EINVAL);
        }
        let hpasid = self.pasids.check(data.hpasid)?;
        self.unbind_locked(&mut st, hpasid);
        Ok(())
    }

    /// Detaches and destroys the binding of `hpasid`, if any.
    pub(crate) fn unbind_locked(&self, st: &mut State, hpasid: u32) {
        let Some(binding) = st.binds.remove(&hpasid) else {
            return;
        };
        for member in st
            .members
            .iter()
            .filter(|m| binding.devs.contains(&m.dev_id))
        {
            if let Err(errno) = member.file.detach(Some(hpasid)) {
                tracing::error!(hpasid, %errno, "detaching a PASID failed");
            }
        }
        destroy_logged(&self.ictx, binding.hwpt_id);
        st.pending.retain(|p| p.pasid != Some(hpasid));
        tracing::debug!(hpasid, "guest page table unbound");
    }

    /// `CACHE_INVLD`: `IOMMU_HWPT_INVALIDATE` with one `VTD_S1` entry on the nested HWPT(s)
    /// concerned, which flushes the IOTLB and every attached device's TLB (ATC) for that range:
    /// * ADDR granularity: `granule_size * nb_granules` bytes from `addr`, widened to whole
    ///   4 KiB pages (`LEAF` passed on), of the HWPT bound to `addr_info.pasid`;
    /// * PASID granularity: everything of the HWPT bound to `pasid_info.pasid`;
    /// * DOMAIN granularity: everything of every HWPT bound in the container.
    ///
    /// Only the IOTLB and DEV_IOTLB types invalidate anything; the PASID-cache type alone does
    /// nothing (the PASID entry is written at bind). The series' VT-d driver ignored DOMAIN
    /// granularity and the PASID-cache type silently (`to_vtd_granularity()` is `-EINVAL` and
    /// the loop `break`s with 0); vsva's wider flush is always correct.
    ///
    /// # Errors
    /// `EOPNOTSUPP` before a device joined; `EINVAL` for a bad `version`, unknown `cache`
    /// bits, a `granularity` of 3 or more, ADDR with the PASID cache, DOMAIN with DEV_IOTLB,
    /// unknown `addr_info`/`pasid_info` flags or non-zero `padding`; for PASID and ADDR
    /// granularity: `ENOENT` without the PASID flag (the series looks PASID 0 up) or for a
    /// PASID nobody allocated, `EACCES` for another container's, `EINVAL` for one of this
    /// container's that is not bound.
    pub fn cache_invalidate(&self, info: &IommuCacheInvalidateInfo) -> Result<(), Errno> {
        let st = self.lock();
        if !Self::features(&st)?.contains(NestingFeatures::CACHE_INVLD) {
            return Err(Errno::EOPNOTSUPP);
        }
        let (cache, granularity) = check_invalidate(info)?;
        let (hwpts, range) = match granularity {
            IOMMU_INV_GRANU_DOMAIN => (st.binds.values().map(|b| b.hwpt_id).collect(), None),
            _ => {
                let (has_pasid, pasid) = if granularity == IOMMU_INV_GRANU_PASID {
                    let p = info.pasid_info();
                    (
                        InvPasidFlags::from_bits_retain(p.flags).contains(InvPasidFlags::PASID),
                        p.pasid,
                    )
                } else {
                    let a = info.addr_info;
                    (
                        InvAddrFlags::from_bits_retain(a.flags).contains(InvAddrFlags::PASID),
                        a.pasid,
                    )
                };
                let hpasid = self.pasids.check(if has_pasid { pasid } else { 0 })?;
                let hwpt = st.binds.get(&hpasid).ok_or(Errno::EINVAL)?.hwpt_id;
                let range = (granularity == IOMMU_INV_GRANU_ADDR).then(|| {
                    let a = info.addr_info;
                    addr_range(a.addr, a.granule_size, a.nb_granules)
                });
                (vec![hwpt], range)
            }
        };
        if !cache.intersects(CacheInvType::IOTLB | CacheInvType::DEV_IOTLB) {
            return Ok(());
        }
        let leaf = InvAddrFlags::from_bits_retain(info.addr_info.flags)
            .contains(InvAddrFlags::LEAF)
            && granularity == IOMMU_INV_GRANU_ADDR;
        let entry = match range {
            Some(Some((_, 0))) => return Ok(()),
            Some(Some((addr, npages))) => IommuHwptVtdS1Invalidate {
                addr,
                npages,
                flags: u32::from(leaf),
                __reserved: 0,
            },
            // Everything: the whole space, or a range that overflowed.
            Some(None) | None => IommuHwptVtdS1Invalidate {
                addr: 0,
                npages: u64::MAX,
                flags: 0,
                __reserved: 0,
            },
        };
        let buf = KernelBuf::new(entry.as_bytes().to_vec());
        for hwpt_id in hwpts {
            let mut cmd = IommuHwptInvalidate {
                size: size_of::<IommuHwptInvalidate>() as u32,
                hwpt_id,
                data_uptr: KBUF_BASE,
                data_type: HwptInvalidateDataType::VTD_S1,
                entry_len: size_of::<IommuHwptVtdS1Invalidate>() as u32,
                entry_num: 1,
                __reserved: 0,
            };
            self.ictx.hwpt_invalidate(&mut cmd, &buf)?;
        }
        Ok(())
    }

    /// Reads the page request groups queued for the container's devices — whole groups, up to
    /// `max_records` (at most [`MAX_READ_RECORDS`]) reports — and remembers each group for [`page_response`](Self::page_response).
    /// Each report is a `struct iommu_fault` of type `IOMMU_FAULT_PAGE_REQ` with the host
    /// PASID (PASID_VALID and, as VT-d sets it, RESPONSE_NEEDS_PASID), LAST_PAGE on a group's
    /// last request, the PRG index, the access asked and the page address.
    ///
    /// The series delivered faults per device through a VFIO fault region (Eric Auger's
    /// "vfio/pci: Add framework for custom interrupt indices" series); vsva reads the
    /// container's iommufd fault queue instead, which every nested HWPT reports to.
    pub fn read_faults(&self, max_records: usize) -> Vec<ContainerFault> {
        let mut st = self.lock();
        let Some(nesting) = st.nesting.as_ref() else {
            return Vec::new();
        };
        let records = max_records.min(MAX_READ_RECORDS);
        let mut buf = vec![0u8; records * size_of::<IommuHwptPgfault>()];
        let n = match nesting.fault.read(&mut buf, 0) {
            Ok(n) => n,
            Err(errno) => {
                tracing::warn!(%errno, "reading the fault queue failed");
                0
            }
        };
        let mut out = Vec::new();
        let mut last_cookie = None;
        for record in buf[..n].chunks_exact(size_of::<IommuHwptPgfault>()) {
            let Ok(r) = IommuHwptPgfault::read_from_bytes(record) else {
                continue;
            };
            let has_pasid =
                PgfaultFlags::from_bits_retain(r.flags).contains(PgfaultFlags::PASID_VALID);
            if last_cookie != Some(r.cookie) {
                last_cookie = Some(r.cookie);
                st.pending.push_back(Pending {
                    dev_id: r.dev_id,
                    pasid: has_pasid.then_some(r.pasid),
                    grpid: r.grpid,
                    cookie: r.cookie,
                });
            }
            let mut flags = FaultPrmFlags::empty();
            flags.set(
                FaultPrmFlags::PASID_VALID | FaultPrmFlags::RESPONSE_NEEDS_PASID,
                has_pasid,
            );
            flags.set(
                FaultPrmFlags::LAST_PAGE,
                PgfaultFlags::from_bits_retain(r.flags).contains(PgfaultFlags::LAST_PAGE),
            );
            out.push(ContainerFault {
                dev_id: r.dev_id,
                fault: IommuFault {
                    fault_type: IOMMU_FAULT_PAGE_REQ,
                    padding: 0,
                    prm: IommuFaultPageRequest {
                        flags: flags.bits(),
                        pasid: if has_pasid { r.pasid } else { 0 },
                        grpid: r.grpid,
                        // IOMMU_FAULT_PERM_* and IOMMU_PGFAULT_PERM_* share their bits.
                        perm: r.perm,
                        addr: r.addr,
                        private_data: [0; 2],
                    },
                    padding2: [0; 16],
                },
            });
        }
        out
    }

    /// [`read_faults`](Self::read_faults) into `buf` as 64-byte `struct iommu_fault` records:
    /// as many whole groups as fit. Returns the bytes written (0 when nothing is queued or the
    /// oldest group does not fit).
    ///
    /// # Errors
    /// `EINVAL` if `buf.len()` is not a multiple of 64.
    pub fn read_faults_bytes(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        if buf.len() % FAULT_SIZE != 0 {
            return Err(Errno::EINVAL);
        }
        let faults = self.read_faults(buf.len() / FAULT_SIZE);
        for (slot, f) in buf.chunks_exact_mut(FAULT_SIZE).zip(&faults) {
            slot.copy_from_slice(f.fault.as_bytes());
        }
        Ok(faults.len() * FAULT_SIZE)
    }

    /// Groups read and not answered yet.
    pub fn pending_responses(&self) -> usize {
        self.lock().pending.len()
    }

    /// `PAGE_RESP`: answers the oldest read group with PRG index `grpid` — and, for a group
    /// with a PASID (VT-d: RESPONSE_NEEDS_PASID), PASID `pasid` with PASID_VALID set — by
    /// writing its cookie and code to the iommufd fault queue, which sends the page group
    /// response to the device (`iommu_page_response()`'s matching; with several devices the
    /// first match in read order wins, as in the core's list walk).
    /// SUCCESS and INVALID pass through; FAILURE ("Response Failure") is sent as INVALID,
    /// the strongest answer iommufd's `enum iommufd_page_response_code` has.
    ///
    /// # Errors
    /// `EOPNOTSUPP` before a device joined; `EINVAL` for a bad `version`, flags other than
    /// PASID_VALID, a code other than SUCCESS, INVALID and FAILURE (vsva is stricter than the
    /// core, which passed it to the driver), or no matching group read and unanswered (never
    /// read, answered already, or answered INVALID when its PASID was unbound).
    pub fn page_response(&self, msg: &IommuPageResponse) -> Result<(), Errno> {
        let mut st = self.lock();
        if !Self::features(&st)?.contains(NestingFeatures::PAGE_RESP) {
            return Err(Errno::EOPNOTSUPP);
        }
        if msg.version != IOMMU_PAGE_RESP_VERSION_1 || msg.flags & !IOMMU_PAGE_RESP_PASID_VALID != 0
        {
            return Err(Errno::EINVAL);
        }
        let code = match msg.code {
            IOMMU_PAGE_RESP_SUCCESS => PageResponseCode::SUCCESS,
            IOMMU_PAGE_RESP_INVALID | IOMMU_PAGE_RESP_FAILURE => PageResponseCode::INVALID,
            _ => return Err(Errno::EINVAL),
        };
        let has_pasid = msg.flags & IOMMU_PAGE_RESP_PASID_VALID != 0;
        let index = st
            .pending
            .iter()
            .position(|p| {
                p.grpid == msg.grpid
                    && match p.pasid {
                        Some(pasid) => has_pasid && pasid == msg.pasid,
                        None => true,
                    }
            })
            .ok_or(Errno::EINVAL)?;
        let pending = st.pending.remove(index).ok_or(Errno::EINVAL)?;
        let nesting = st.nesting.as_ref().ok_or(Errno::EOPNOTSUPP)?;
        let response = IommuHwptPageResponse {
            cookie: pending.cookie,
            code,
        };
        nesting.fault.write(response.as_bytes(), 0)?;
        tracing::trace!(
            dev_id = pending.dev_id,
            grpid = msg.grpid,
            "page response relayed"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uapi::IOMMU_INV_GRANU_NR;

    #[test]
    fn address_ranges_widen_to_pages() {
        assert_eq!(addr_range(0x5000, 4096, 3), Some((0x5000, 3)));
        assert_eq!(addr_range(0x5800, 4096, 1), Some((0x5000, 2)));
        assert_eq!(addr_range(0x20_0000, 2 << 20, 1), Some((0x20_0000, 512)));
        assert_eq!(addr_range(0x5000, 0, 9), Some((0x5000, 0)));
        assert_eq!(addr_range(0, u64::MAX, 2), None);
        assert_eq!(addr_range(u64::MAX - 4095, 8192, 1), None);
    }

    #[test]
    fn invalidation_data_checks() {
        let ok = IommuCacheInvalidateInfo {
            argsz: 56,
            version: 1,
            cache: CacheInvType::IOTLB.bits(),
            granularity: IOMMU_INV_GRANU_ADDR,
            ..Default::default()
        };
        assert!(check_invalidate(&ok).is_ok());
        let bad = [
            IommuCacheInvalidateInfo { version: 2, ..ok },
            IommuCacheInvalidateInfo { cache: 8, ..ok },
            IommuCacheInvalidateInfo {
                granularity: IOMMU_INV_GRANU_NR,
                ..ok
            },
            IommuCacheInvalidateInfo {
                cache: CacheInvType::PASID.bits(),
                ..ok
            },
            IommuCacheInvalidateInfo {
                cache: CacheInvType::DEV_IOTLB.bits(),
                granularity: IOMMU_INV_GRANU_DOMAIN,
                ..ok
            },
            IommuCacheInvalidateInfo {
                padding: [0, 0, 1, 0, 0, 0],
                ..ok
            },
        ];
        for info in bad {
            assert_eq!(check_invalidate(&info), Err(Errno::EINVAL), "{info:?}");
        }
        let mut flags = ok;
        flags.addr_info.flags = 1 << 3;
        assert_eq!(check_invalidate(&flags), Err(Errno::EINVAL));
        let mut pasid = IommuCacheInvalidateInfo {
            granularity: IOMMU_INV_GRANU_PASID,
            ..ok
        };
        pasid.addr_info.flags = InvAddrFlags::LEAF.bits();
        assert_eq!(
            check_invalidate(&pasid),
            Err(Errno::EINVAL),
            "LEAF is not a PASID flag"
        );
    }
}
