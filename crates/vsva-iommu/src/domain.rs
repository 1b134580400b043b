//! Paging domains: I/O page tables of the IOMMU's own format, shared by every (device,
//! PASID) attached to them under one domain ID (Linux `iommu_domain` of type
//! `IOMMU_DOMAIN_UNMANAGED` with its `io_pgtable_ops`).
//!
//! The table format is the IOMMU's (VT-d second stage, SMMUv3 stage 2, …); the driver hands
//! one out through [`IommuOps::alloc_io_pgtable`], and everything else — choosing page sizes,
//! flushing every attachment on unmap before table pages are freed — is shared here.

use std::sync::{Arc, Mutex, MutexGuard, Weak};

use vsva_mem::{PageSize, Pasid, Rid};
use vsva_pgtable::table::{PageTable, Unmapped};
use vsva_pgtable::{Format, MapError, Perm};

use crate::did::DomainIds;
use crate::error::{IommuError, Result};
use crate::ops::{DomainSpec, IommuOps};

/// An I/O page table as a paging domain uses it (Linux `io_pgtable_ops`).
pub trait IoPgtable: Send + Sync {
    /// Root table address (what the IOMMU's context/PASID entry points at).
    fn root(&self) -> u64;
    /// Levels.
    fn levels(&self) -> u8;
    /// Last input address the table translates.
    fn last_iova(&self) -> u64;
    /// Whether leaves of `size` can be used.
    fn supports(&self, size: PageSize) -> bool;
    /// Maps one page.
    ///
    /// # Errors
    /// The table's error (already mapped, misaligned, out of memory, …).
    fn map(
        &self,
        iova: u64,
        pa: u64,
        size: PageSize,
        perm: Perm,
    ) -> std::result::Result<(), MapError>;
    /// Unmaps `[iova, iova + len)`, returning what was removed; the caller frees the emptied
    /// tables once no IOTLB can hold them.
    ///
    /// # Errors
    /// The table's error.
    fn unmap(&self, iova: u64, len: u64) -> std::result::Result<Unmapped, MapError>;
    /// Frees tables [`unmap`](Self::unmap) unlinked.
    fn free_tables(&self, tables: &[u64]);
    /// Reports (and with `clear`, clears) the dirty leaves of `[iova, iova + len)`.
    ///
    /// # Errors
    /// The table's error.
    fn read_and_clear_dirty(
        &self,
        iova: u64,
        len: u64,
        clear: bool,
        f: &mut dyn FnMut(u64, PageSize),
    ) -> std::result::Result<usize, MapError>;
}

/// A [`PageTable`] of any format with the last address its hardware translates. Dropping it
/// frees every table frame (Linux `free_io_pgtable_ops()` when the domain is freed); the
/// owner has detached every device first.
pub struct FormatTable<F: Format> {
    /// `None` only while being dropped.
    table: Option<PageTable<F>>,
    last_iova: u64,
}

impl<F: Format> FormatTable<F> {
    /// Wraps `table`, which translates up to `last_iova`.
    pub fn new(table: PageTable<F>, last_iova: u64) -> FormatTable<F> {
        FormatTable {
            table: Some(table),
            last_iova,
        }
    }

    fn table(&self) -> &PageTable<F> {
        self.table
            .as_ref()
            .expect("the table is only taken when the wrapper is dropped")
    }
}

impl<F: Format> Drop for FormatTable<F> {
    fn drop(&mut self) {
        if let Some(table) = self.table.take() {
            if let Err(e) = table.destroy() {
                tracing::error!(%e, "freeing an I/O page table");
            }
        }
    }
}

impl<F: Format + Send + Sync> IoPgtable for FormatTable<F> {
    fn root(&self) -> u64 {
        self.table().root()
    }
    fn levels(&self) -> u8 {
        self.table().format().levels()
    }
    fn last_iova(&self) -> u64 {
        self.last_iova
    }
    fn supports(&self, size: PageSize) -> bool {
        self.table().format().supports(size)
    }
    fn map(
        &self,
        iova: u64,
        pa: u64,
        size: PageSize,
        perm: Perm,
    ) -> std::result::Result<(), MapError> {
        self.table().map(iova, pa, size, perm)
    }
    fn unmap(&self, iova: u64, len: u64) -> std::result::Result<Unmapped, MapError> {
        self.table().unmap(iova, len)
    }
    fn free_tables(&self, tables: &[u64]) {
        if let Err(e) = self.table().free_tables(tables) {
            tracing::error!(%e, "freeing I/O page-table pages");
        }
    }
    fn read_and_clear_dirty(
        &self,
        iova: u64,
        len: u64,
        clear: bool,
        f: &mut dyn FnMut(u64, PageSize),
    ) -> std::result::Result<usize, MapError> {
        self.table().read_and_clear_dirty(iova, len, clear, f)
    }
}

/// A paging domain.
pub struct PagingDomain {
    ops: Arc<dyn IommuOps>,
    dids: Arc<DomainIds>,
    did: u16,
    table: Box<dyn IoPgtable>,
    /// Attached (device, PASID) pairs; also the single-editor lock of the table.
    attached: Mutex<Attached>,
    /// Nested domains whose second stage this is: an unmap must reach their caches too.
    children: Mutex<Vec<Weak<NestedDomain>>>,
    /// Dirty tracking on: attachments are (re)programmed to record dirty pages.
    dirty: std::sync::atomic::AtomicBool,
    /// A nesting parent: the table is in the driver's second-stage format.
    nest_parent: bool,
}

/// A guest's first-stage table nested on a paging domain (Linux `IOMMU_DOMAIN_NESTED`, a
/// nested HWPT): the first-stage root is an address the parent translates, and the IOMMU
/// walks both. It has a domain ID of its own.
pub struct NestedDomain {
    ops: Arc<dyn IommuOps>,
    dids: Arc<DomainIds>,
    did: u16,
    parent: Arc<PagingDomain>,
    s1: NestedS1,
    attached: Mutex<Vec<(Rid, Pasid)>>,
}

/// The first stage of a nested domain, as the driver decoded the user's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NestedS1 {
    /// One first-stage table, attached per PASID (what `struct iommu_hwpt_vtd_s1`
    /// carries).
    Table {
        /// First-stage root: an input address of the parent (a guest physical address).
        root: u64,
        /// 4 or 5 levels.
        levels: u8,
        /// Privileged requests allowed (SRE).
        supervisor: bool,
    },
    /// A guest's stream table entry, attached to a device's requests without PASID: its
    /// CD table (in guest memory, through the parent) gives every PASID its first stage
    /// (what `struct iommu_hwpt_arm_smmuv3` carries; Linux `user_pasid_table`).
    StreamEntry {
        /// STE doublewords 0 and 1 as the driver accepted them (only the fields nesting
        /// allows; EATS kept apart in `ats`).
        ste: [u64; 2],
        /// The guest asked for ATS translation (STE.EATS = 0b01).
        ats: bool,
        /// The entry translates (Cfg = S1): the device needs a vDEVICE on the vIOMMU before
        /// it attaches (Linux `arm_smmu_attach_prepare_vmaster()`: `ENOENT` otherwise).
        translates: bool,
    },
}

/// A paging domain's attachments.
#[derive(Debug, Default)]
struct Attached {
    /// Every (device, PASID) whose entry may point at the table: unmaps flush them all.
    pairs: Vec<(Rid, Pasid)>,
    /// Those being detached: their entries are being cleared, so they are not reprogrammed
    /// (which would point them at the table again after the detach), but are still flushed
    /// until they leave `pairs`.
    leaving: Vec<(Rid, Pasid)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn flush_all(ops: &dyn IommuOps, did: u16, attached: &[(Rid, Pasid)], iova: u64, len: u64) {
    for &(dev, pasid) in attached {
        if let Err(e) = ops.flush(dev, pasid, did, iova, len) {
            tracing::error!(%dev, %e, did, "domain flush failed");
        }
    }
}

impl NestedDomain {
    pub(crate) fn new(
        ops: Arc<dyn IommuOps>,
        dids: Arc<DomainIds>,
        did: u16,
        parent: Arc<PagingDomain>,
        s1: NestedS1,
    ) -> Arc<Self> {
        let d = Arc::new(NestedDomain {
            ops,
            dids,
            did,
            parent: parent.clone(),
            s1,
            attached: Mutex::new(Vec::new()),
        });
        let mut children = lock(&parent.children);
        children.retain(|w| w.strong_count() > 0);
        children.push(Arc::downgrade(&d));
        d
    }

    /// The domain ID.
    pub fn did(&self) -> u16 {
        self.did
    }

    /// The second stage it is nested on.
    pub fn parent(&self) -> &Arc<PagingDomain> {
        &self.parent
    }

    /// The first stage.
    pub fn s1(&self) -> NestedS1 {
        self.s1
    }

    /// What the IOMMU's entries point at.
    pub fn spec(&self) -> DomainSpec {
        let DomainSpec::Paging { root, levels, .. } = self.parent.spec() else {
            unreachable!("a paging domain's spec is Paging");
        };
        DomainSpec::Nested {
            s1: self.s1,
            s2_root: root,
            s2_levels: levels,
            parent_did: self.parent.did(),
        }
    }

    /// The (device, PASID) pairs attached.
    pub fn attachments(&self) -> Vec<(Rid, Pasid)> {
        lock(&self.attached).clone()
    }

    pub(crate) fn add_attachment(&self, dev: Rid, pasid: Pasid) {
        lock(&self.attached).push((dev, pasid));
    }

    pub(crate) fn remove_attachment(&self, dev: Rid, pasid: Pasid) {
        lock(&self.attached).retain(|&a| a != (dev, pasid));
    }

    /// Invalidates first-stage translations of `[addr, addr + len)` (a guest's
    /// invalidation of its own table, `IOMMU_HWPT_INVALIDATE` with `iommu_hwpt_vtd_s1_invalidate`)
    /// in the IOTLB and every attached device's TLB; returns when they are gone.
    pub fn invalidate(&self, addr: u64, len: u64) {
        let attached = lock(&self.attached);
        flush_all(self.ops.as_ref(), self.did, &attached, addr, len);
    }

    /// A user's invalidation of this domain's first stage (`IOMMU_HWPT_INVALIDATE`): the
    /// driver decodes `entries` ([`IommuOps::cache_invalidate_user`]).
    pub fn cache_invalidate_user(
        &self,
        entries: &dyn crate::UserDataArray,
    ) -> crate::InvalidateOutcome {
        self.ops.cache_invalidate_user(self, entries)
    }
}

impl std::fmt::Debug for PagingDomain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagingDomain")
            .field("did", &self.did)
            .field("root", &format_args!("{:#x}", self.table.root()))
            .finish()
    }
}

fn table_err(e: MapError) -> IommuError {
    match e {
        MapError::AlreadyMapped { .. } => IommuError::Mapped,
        MapError::Frames(_) => IommuError::NoMemory,
        e => IommuError::driver(e),
    }
}

impl PagingDomain {
    pub(crate) fn new(
        ops: Arc<dyn IommuOps>,
        dids: Arc<DomainIds>,
        did: u16,
        table: Box<dyn IoPgtable>,
        nest_parent: bool,
    ) -> Self {
        PagingDomain {
            ops,
            dids,
            did,
            table,
            attached: Mutex::new(Attached::default()),
            children: Mutex::new(Vec::new()),
            dirty: std::sync::atomic::AtomicBool::new(false),
            nest_parent,
        }
    }

    /// Whether the domain is a nesting parent (its table in the second-stage format).
    pub fn nest_parent(&self) -> bool {
        self.nest_parent
    }

    fn lock(&self) -> MutexGuard<'_, Attached> {
        lock(&self.attached)
    }

    /// The domain ID every attachment is tagged with.
    pub fn did(&self) -> u16 {
        self.did
    }

    /// What the IOMMU's entries point at.
    pub fn spec(&self) -> DomainSpec {
        DomainSpec::Paging {
            root: self.table.root(),
            levels: self.table.levels(),
            dirty_tracking: self.dirty_tracking(),
            nest_parent: self.nest_parent,
        }
    }

    /// Whether dirty tracking is on.
    pub fn dirty_tracking(&self) -> bool {
        self.dirty.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Turns dirty tracking on or off (`IOMMU_HWPT_SET_DIRTY_TRACKING`): every attachment is
    /// reprogrammed (VT-d: SSADE in its PASID entry), and later attachments follow.
    ///
    /// # Errors
    /// [`IommuError::DeviceUnsupported`]-like driver refusal when the IOMMU cannot track
    /// dirty pages; the driver's error reprogramming an attachment (the flag is restored).
    pub fn set_dirty_tracking(&self, on: bool) -> Result<()> {
        if on && !self.ops.dirty_tracking() {
            return Err(IommuError::Invalid("the IOMMU does not track dirty pages"));
        }
        let attached = self.lock();
        let was = self.dirty.swap(on, std::sync::atomic::Ordering::AcqRel);
        if was == on {
            return Ok(());
        }
        let spec = self.spec();
        let staying = attached
            .pairs
            .iter()
            .filter(|a| !attached.leaving.contains(a));
        for &(dev, pasid) in staying {
            if let Err(e) = self.ops.set_pasid(dev, pasid, self.did, &spec) {
                self.dirty.store(was, std::sync::atomic::Ordering::Release);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Reports the dirty pages of `[iova, iova + len)` to `f` (IOVA and page size) and,
    /// with `clear`, clears them and flushes the IOTLB so that the next write marks them
    /// again (`IOMMU_HWPT_GET_DIRTY_BITMAP`; `IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR` without
    /// `clear`). Returns the number of dirty pages reported.
    ///
    /// # Errors
    /// [`IommuError::Invalid`] for a range beyond the domain or not 4 KiB aligned.
    pub fn read_and_clear_dirty(
        &self,
        iova: u64,
        len: u64,
        clear: bool,
        f: &mut dyn FnMut(u64, PageSize),
    ) -> Result<usize> {
        let attached = self.lock();
        let n = self
            .table
            .read_and_clear_dirty(iova, len, clear, f)
            .map_err(|_| IommuError::Invalid("dirty-bitmap range"))?;
        if clear && n > 0 {
            flush_all(self.ops.as_ref(), self.did, &attached.pairs, iova, len);
        }
        Ok(n)
    }

    /// The last IOVA the domain translates.
    pub fn last_iova(&self) -> u64 {
        self.table.last_iova()
    }

    /// The (device, PASID) pairs attached (those being detached included).
    pub fn attachments(&self) -> Vec<(Rid, Pasid)> {
        self.lock().pairs.clone()
    }

    pub(crate) fn add_attachment(&self, dev: Rid, pasid: Pasid) {
        self.lock().pairs.push((dev, pasid));
    }

    /// (`dev`, `pasid`)'s entry is about to be cleared (`true`), or stays after all (`false`).
    pub(crate) fn set_leaving(&self, dev: Rid, pasid: Pasid, leaving: bool) {
        let mut a = self.lock();
        a.leaving.retain(|&x| x != (dev, pasid));
        if leaving {
            a.leaving.push((dev, pasid));
        }
    }

    pub(crate) fn remove_attachment(&self, dev: Rid, pasid: Pasid) {
        let mut a = self.lock();
        a.pairs.retain(|&x| x != (dev, pasid));
        a.leaving.retain(|&x| x != (dev, pasid));
    }

    /// Maps `[iova, iova + len)` to `[pa, pa + len)` with `perm`, using the largest pages
    /// alignment allows when `large` (Linux `iommu_map` splitting by `pgsize_bitmap`).
    ///
    /// # Errors
    /// [`IommuError::Invalid`] for a range not 4 KiB aligned or beyond the domain;
    /// [`IommuError::Mapped`] if part is mapped; [`IommuError::NoMemory`]. Nothing stays
    /// mapped on error.
    pub fn map(&self, iova: u64, pa: u64, len: u64, perm: Perm, large: bool) -> Result<()> {
        let page = PageSize::Size4K.bytes();
        let beyond = iova
            .checked_add(len.wrapping_sub(1))
            .is_none_or(|last| last > self.table.last_iova());
        if len == 0 || (iova | pa | len) % page != 0 || beyond {
            return Err(IommuError::Invalid("paging-domain range"));
        }
        let edit = self.lock();
        let mut off = 0;
        while off < len {
            let size = [PageSize::Size1G, PageSize::Size2M, PageSize::Size4K]
                .into_iter()
                .find(|&s| {
                    let b = s.bytes();
                    (s == PageSize::Size4K || large && self.table.supports(s))
                        && (iova + off) % b == 0
                        && (pa + off) % b == 0
                        && len - off >= b
                })
                .unwrap_or(PageSize::Size4K);
            if let Err(e) = self.table.map(iova + off, pa + off, size, perm) {
                if off > 0 {
                    if let Ok(u) = self.table.unmap(iova, off) {
                        // attached devices may already have walked the new entries
                        self.flush_locked(&edit.pairs, iova, off);
                        self.table.free_tables(&u.tables);
                    }
                }
                return Err(table_err(e));
            }
            off += size.bytes();
        }
        Ok(())
    }

    /// Unmaps `[iova, iova + len)` and flushes every attachment's IOTLB and device TLB before
    /// the emptied tables are freed. Returns the bytes that were mapped.
    pub fn unmap(&self, iova: u64, len: u64) -> u64 {
        let edit = self.lock();
        let Ok(u) = self.table.unmap(iova, len) else {
            return 0;
        };
        if !u.leaves.is_empty() || !u.tables.is_empty() {
            self.flush_locked(&edit.pairs, iova, len);
        }
        self.table.free_tables(&u.tables);
        u.leaves.iter().map(|l| l.size.bytes()).sum()
    }

    fn flush_locked(&self, attached: &[(Rid, Pasid)], iova: u64, len: u64) {
        flush_all(self.ops.as_ref(), self.did, attached, iova, len);
        // Nested domains cache translations that went through this stage; which of their
        // input addresses map to `[iova, iova + len)` is unknown here, so they lose
        // everything (Linux flushes nested domains of a parent domain-wide too).
        let children: Vec<Arc<NestedDomain>> = lock(&self.children)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for c in children {
            let attached = c.attachments();
            flush_all(self.ops.as_ref(), c.did, &attached, 0, u64::MAX);
        }
    }
}

/// A domain's ID is free again when the domain goes (attachments hold no reference to it:
/// their owners detach them before dropping the domain).
impl Drop for PagingDomain {
    fn drop(&mut self) {
        self.dids.release(self.did);
    }
}

impl Drop for NestedDomain {
    fn drop(&mut self) {
        self.dids.release(self.did);
    }
}
