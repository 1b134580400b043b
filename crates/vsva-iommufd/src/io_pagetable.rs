//! The IOAS's address space (Linux `struct io_pagetable`, `io_pagetable.c`): areas mapping
//! IOVA ranges to user pages, reserved ranges, the allowed list, and the domains kept filled.
//!
//! Rules kept from Linux:
//! * An area is unmapped whole or not at all: an unmap range with no area is `ENOENT`, and
//!   `[0, U64_MAX]` unmaps everything (and succeeds on an empty IOAS). Areas are removed in
//!   IOVA order and the first one the range cuts stops the unmap with `ENOENT`, leaving the
//!   areas before it unmapped — `iopt_unmap_iova_range()` is not atomic either.
//! * A kernel-chosen IOVA keeps the user address's alignment up to the length rounded to a
//!   power of two (so huge pages can be used), is never 0, lies inside the allowed ranges (by
//!   default `[PAGE_SIZE, U64_MAX - PAGE_SIZE]`) and avoids reserved ranges and areas
//!   (`iopt_alloc_iova`); `ENOSPC` when no hole fits.
//! * A fixed IOVA must be aligned to the IOAS's alignment (`EINVAL`), not wrap (`EOVERFLOW`),
//!   avoid reserved ranges (`EINVAL`) and existing areas (`EEXIST`) (`iopt_check_iova`).
//! * The alignment is 1 until a domain is attached, then the largest minimum page size of
//!   the attached domains; lengths must be multiples of it (`EINVAL`). With large pages
//!   disabled it is at least `PAGE_SIZE` (`iopt_calculate_iova_alignment`).
//! * While domains are attached, every area's pages are pinned and mapped in each of them;
//!   attaching a domain fills it with every area, and a failure leaves nothing behind.
//! * Accesses ([`crate::access`]) attached to the IOAS raise the alignment to their own
//!   (`PAGE_SIZE` for those that pin) and pin pages of areas. An area with pages pinned by
//!   accesses cannot go: unmapping it marks it `prevent_access` (no new pins), drops the lock
//!   and asks every attached access to unpin (`iommufd_access_notify_unmap()`), then looks
//!   again — and gives up with `EDEADLOCK` after 100 tries on one area, as
//!   `iopt_unmap_iova_range()` does when a driver does not answer.
//!
//! The IOVA space (checks, allocation, reserved and allowed ranges) is in `io_pagetable/iova.rs`;
//! the accesses' pins and copies in `io_pagetable/access_pins.rs`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use vsva_mm::Pinned;

use crate::abi::Errno;
use crate::domain::{IoDomain, IoProt};
use crate::pages::{AddressSpace, Pages};

mod access_pins;
mod iova;

const PAGE: u64 = 4096;

/// `EADDRINUSE`: a reserved range would overlap an area or an allowed range.
pub const EADDRINUSE: Errno = Errno::EADDRINUSE;

/// Who reserved an IOVA range (so it can be released with its owner).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReservedBy {
    /// Outside the aperture of an attached domain.
    Domain(u32),
    /// A device's reserved region (e.g. the x86 interrupt window), while it is attached.
    Device(u32),
}

/// One mapping of the IOAS.
#[derive(Debug, Clone)]
pub struct Area {
    /// First IOVA.
    pub iova: u64,
    /// Last IOVA (inclusive).
    pub last: u64,
    /// The memory.
    pub pages: Arc<Pages>,
    /// Offset of the area's first byte from `pages.base()`.
    pub start_byte: u64,
    /// Rights.
    pub prot: IoProt,
    /// Page pins accesses hold through this area (Linux counts `num_accesses` per pin call;
    /// vsva counts pages, so an unbalanced unpin cannot wrap the count).
    pub num_accesses: u64,
    /// Set by an unmap waiting for accesses to let go: no new access pins or reads.
    pub prevent_access: bool,
}

impl Area {
    fn len(&self) -> u64 {
        self.last - self.iova + 1
    }

    /// Byte offset of `iova` from `pages.base()` (`iopt_area_start_byte()`).
    fn start_byte(&self, iova: u64) -> u64 {
        self.start_byte + (iova - self.iova)
    }

    /// Index of the page of `pages` holding `iova` (`iopt_area_iova_to_index()`).
    fn index(&self, iova: u64) -> u64 {
        self.start_byte(iova) / PAGE
    }
}

/// What an IOAS needs of an access attached to it (implemented by
/// [`crate::access::Access`]; kept as a trait so the engine does not depend on the object).
pub trait IoptAccess: Send + Sync {
    /// Unpin everything pinned in `[iova, iova + length)`: the IOAS wants to unmap it
    /// (`ops->unmap`). Called without the IOAS's locks.
    fn notify_unmap(&self, iova: u64, length: u64);
}

/// How many times one area's unmap asks the accesses to let go before it gives up.
pub const UNMAP_TRIES: u32 = 100;

/// The areas over `[iova, last]` from `iova` on without a gap (`iopt_for_each_contig_area`):
/// their keys, and whether they reach `last`.
fn contig_areas(areas: &BTreeMap<u64, Area>, iova: u64, last: u64) -> (Vec<u64>, bool) {
    let mut keys = Vec::new();
    let mut at = iova;
    for (&k, a) in overlaps(areas, iova, last, |a| a.last) {
        if a.iova > at {
            break;
        }
        keys.push(k);
        if a.last >= last {
            return (keys, true);
        }
        at = a.last + 1;
    }
    (keys, false)
}

/// The memory behind an IOVA range, as [`IoPageTable::get_pages`] found it (Linux's
/// `pages_list`): each piece is `(pages, offset of its first byte from pages.base(), bytes)`
/// and holds a reference on its pages, so the memory stays valid even if the source range is
/// unmapped before the list is mapped elsewhere.
#[derive(Debug, Clone)]
pub struct PagesList {
    pieces: Vec<(Arc<Pages>, u64, u64)>,
}

impl PagesList {
    /// Bytes the list covers.
    pub fn len(&self) -> u64 {
        self.pieces.iter().map(|&(_, _, len)| len).sum()
    }

    /// Whether the list covers nothing (never true for a list from
    /// [`IoPageTable::get_pages`]).
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }
}

/// A reserved IOVA range `[start, last]` and who reserved it. Reserved ranges may overlap
/// one another (two devices reserve the same interrupt window), as in Linux's
/// `reserved_itree`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reserved {
    start: u64,
    last: u64,
    owner: ReservedBy,
}

struct Inner {
    areas: BTreeMap<u64, Area>,
    /// Sorted by start; few entries (one per attached domain and device), so scanned.
    reserved: Vec<Reserved>,
    /// Sorted, disjoint `[start, last]` ranges; empty means "everything".
    allowed: Vec<(u64, u64)>,
    domains: Vec<(u32, Arc<dyn IoDomain>)>,
    /// Attached accesses by list ID (`iopt->access_list`), with their IOVA alignment.
    accesses: BTreeMap<u32, (u64, Weak<dyn IoptAccess>)>,
    large_pages: bool,
}

/// An IOAS's I/O page table.
pub struct IoPageTable {
    inner: Mutex<Inner>,
}

impl Default for IoPageTable {
    fn default() -> Self {
        IoPageTable {
            inner: Mutex::new(Inner {
                areas: BTreeMap::new(),
                reserved: Vec::new(),
                allowed: Vec::new(),
                domains: Vec::new(),
                accesses: BTreeMap::new(),
                large_pages: true,
            }),
        }
    }
}

fn overlaps<'a, V>(
    map: &'a BTreeMap<u64, V>,
    start: u64,
    last: u64,
    last_of: impl Fn(&V) -> u64 + 'a,
) -> impl Iterator<Item = (&'a u64, &'a V)> + 'a {
    // the entry starting at or before `start` may reach into the range
    let before = map
        .range(..start)
        .next_back()
        .filter(move |(_, v)| last_of(v) >= start);
    before.into_iter().chain(map.range(start..=last))
}

fn align_up(x: u64, a: u64) -> Option<u64> {
    x.checked_add(a - 1).map(|v| v & !(a - 1))
}

impl Inner {
    /// `iopt_calculate_iova_alignment`: the largest minimum page size of the attached
    /// domains and alignment of the attached accesses, at least `PAGE_SIZE` while large pages
    /// are disabled, else at least 1.
    fn alignment(&self) -> u64 {
        let floor = if self.large_pages { 1 } else { PAGE };
        self.domains
            .iter()
            .map(|(_, d)| d.page_size())
            .chain(self.accesses.values().map(|&(a, _)| a))
            .fold(floor, u64::max)
    }

    /// `iopt_check_iova_alignment`: whether every area's IOVA, length and offset in its first
    /// page are multiples of `alignment`.
    fn areas_aligned(&self, alignment: u64) -> bool {
        let mask = alignment - 1;
        self.areas.values().all(|a| {
            a.iova & mask == 0
                && a.len() & mask == 0
                && ((a.pages.base() + a.start_byte) % PAGE) & mask == 0
        })
    }
}

/// Maps the pinned runs of `area` into `domain`; on failure unmaps what it mapped.
fn fill_domain(
    domain: &dyn IoDomain,
    area: &Area,
    runs: &[Pinned],
    large: bool,
) -> Result<(), Errno> {
    let first = area.pages.base() + area.start_byte;
    let end = first + area.len();
    let mut done: Vec<(u64, u64)> = Vec::new();
    for r in runs {
        let (rs, re) = (r.va.raw(), r.va.raw() + r.len);
        let (s, e) = (rs.max(first), re.min(end));
        if s >= e {
            continue;
        }
        let iova = area.iova + (s - first);
        let pa = r.pa + (s - rs);
        if let Err(err) = domain.map(iova, pa, e - s, area.prot, large) {
            for &(i, l) in &done {
                domain.unmap(i, l);
            }
            return Err(err);
        }
        done.push((iova, e - s));
    }
    Ok(())
}

impl IoPageTable {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `IOMMU_IOAS_MAP`: maps `[user_va, user_va + length)` of the address space `process`
    /// at `iova` (fixed) or at an IOVA the IOAS chooses. Returns the IOVA.
    ///
    /// # Errors
    /// As the module says; `EINVAL` for an empty `prot`; pinning errors (`ENOMEM`, `EFAULT`)
    /// when domains are attached.
    pub fn map_user(
        &self,
        process: Arc<dyn AddressSpace>,
        user_va: u64,
        length: u64,
        prot: IoProt,
        iova: Option<u64>,
    ) -> Result<u64, Errno> {
        let make = |writable| Pages::new(process, user_va, length, writable);
        self.map_new(make, user_va, length, prot, iova)
    }

    /// `IOMMU_IOAS_MAP_FILE`: maps `[start, start + length)` of `file` (byte offsets),
    /// charged to `owner`, at `iova` (fixed) or at an IOVA the IOAS chooses. Returns the
    /// IOVA.
    ///
    /// # Errors
    /// As [`map_user`](Self::map_user).
    pub fn map_file(
        &self,
        file: Arc<dyn AddressSpace>,
        owner: Arc<dyn AddressSpace>,
        start: u64,
        length: u64,
        prot: IoProt,
        iova: Option<u64>,
    ) -> Result<u64, Errno> {
        let make = |writable| Pages::new_file(file, owner, start, length, writable);
        self.map_new(make, start, length, prot, iova)
    }

    /// Maps new pages `make` builds (writable if the mapping is) for `[addr, addr + length)`
    /// of their source.
    fn map_new(
        &self,
        make: impl FnOnce(bool) -> Result<Arc<Pages>, Errno>,
        addr: u64,
        length: u64,
        prot: IoProt,
        iova: Option<u64>,
    ) -> Result<u64, Errno> {
        if prot.is_empty() {
            return Err(Errno::EINVAL);
        }
        let pages = make(prot.contains(IoProt::WRITE))?;
        let start_byte = addr - pages.base();
        self.map_pages(pages, start_byte, length, prot, iova, addr)
    }

    /// The charge move of `IOMMU_IOAS_CHANGE_PROCESS` over `tables`, every IOAS of a context
    /// (`iommufd_ioas_change_process()`): with every table locked (in the order given, so
    /// nothing is pinned or unpinned meanwhile), `EINVAL` if any area is not a file's; then
    /// `to` is charged at once for every pinned page another owner carries (`ENOMEM` past its
    /// limit, nothing changed), and each `Pages` changes owner. Pages shared by several areas
    /// are counted once.
    ///
    /// # Errors
    /// As said.
    pub fn change_owner(tables: &[&IoPageTable], to: &Arc<dyn AddressSpace>) -> Result<(), Errno> {
        let guards: Vec<MutexGuard<'_, Inner>> = tables.iter().map(|t| t.lock()).collect();
        let areas = || guards.iter().flat_map(|g| g.areas.values());
        if areas().any(|a| !a.pages.is_file()) {
            return Err(Errno::EINVAL);
        }
        let mut pages: Vec<&Arc<Pages>> = Vec::new();
        for a in areas() {
            if !pages.iter().any(|p| Arc::ptr_eq(p, &a.pages)) {
                pages.push(&a.pages);
            }
        }
        let total: u64 = pages.iter().map(|p| p.charge_to_move(to)).sum();
        to.account(total)?;
        for p in pages {
            p.move_charge(to);
        }
        Ok(())
    }

    fn map_pages(
        &self,
        pages: Arc<Pages>,
        start_byte: u64,
        length: u64,
        prot: IoProt,
        iova: Option<u64>,
        uptr: u64,
    ) -> Result<u64, Errno> {
        let mut st = self.lock();
        let align = st.alignment();
        if length == 0 || length & (align - 1) != 0 {
            return Err(Errno::EINVAL);
        }
        let iova = match iova {
            Some(i) => {
                st.check_iova(i, length)?;
                i
            }
            None => st.alloc_iova(uptr, length)?,
        };
        if prot.contains(IoProt::WRITE) && !pages.writable() {
            return Err(Errno::EPERM);
        }
        if (start_byte % PAGE) & (align - 1) != 0 {
            return Err(Errno::EINVAL);
        }
        let last = iova.checked_add(length - 1).ok_or(Errno::EOVERFLOW)?;
        // the area (`iopt_alloc_area()`)
        vsva_mem::fail_nth::check()?;
        let area = Area {
            iova,
            last,
            pages,
            start_byte,
            prot,
            num_accesses: 0,
            prevent_access: false,
        };
        if !st.domains.is_empty() {
            let runs = area.pages.pin()?;
            for (k, (_, d)) in st.domains.iter().enumerate() {
                if let Err(e) = fill_domain(d.as_ref(), &area, &runs, st.large_pages) {
                    for (_, done) in &st.domains[..k] {
                        done.unmap(area.iova, area.len());
                    }
                    area.pages.unpin();
                    return Err(e);
                }
            }
        }
        st.areas.insert(iova, area);
        Ok(iova)
    }

    /// `iopt_get_pages`, the source half of `IOMMU_IOAS_COPY`: the memory behind
    /// `[iova, iova + length)`, which must be covered by areas without a gap.
    ///
    /// # Errors
    /// `EINVAL` for length 0, `EOVERFLOW` if the range wraps, `ENOENT` if part of it is not
    /// mapped.
    pub fn get_pages(&self, iova: u64, length: u64) -> Result<PagesList, Errno> {
        if length == 0 {
            return Err(Errno::EINVAL);
        }
        let last = iova.checked_add(length - 1).ok_or(Errno::EOVERFLOW)?;
        let st = self.lock();
        let mut pieces = Vec::new();
        let mut at = iova;
        for (_, a) in overlaps(&st.areas, iova, last, |a| a.last) {
            if a.iova > at {
                break;
            }
            let end = a.last.min(last);
            pieces.push((a.pages.clone(), a.start_byte + (at - a.iova), end - at + 1));
            if end == last {
                return Ok(PagesList { pieces });
            }
            at = end + 1;
        }
        Err(Errno::ENOENT)
    }

    /// `iopt_map_pages`, the destination half of `IOMMU_IOAS_COPY`: maps `list` at `dst_iova`
    /// or at an IOVA chosen for the first piece's user address, one area per piece, all
    /// contiguous. Returns the IOVA.
    ///
    /// # Errors
    /// As [`map_user`](Self::map_user); nothing stays mapped on error.
    pub fn map_pages_list(
        &self,
        list: PagesList,
        prot: IoProt,
        dst_iova: Option<u64>,
    ) -> Result<u64, Errno> {
        if prot.is_empty() {
            return Err(Errno::EINVAL);
        }
        let length = list.len();
        let Some((first_pages, first_start, _)) = list.pieces.first() else {
            return Err(Errno::EINVAL);
        };
        let uptr = first_pages.base() + first_start;
        // Reserve the whole range first so the pieces land contiguously.
        let first = {
            let st = self.lock();
            let align = st.alignment();
            if length & (align - 1) != 0 {
                return Err(Errno::EINVAL);
            }
            match dst_iova {
                Some(i) => {
                    st.check_iova(i, length)?;
                    i
                }
                None => st.alloc_iova(uptr, length)?,
            }
        };
        let mut at = first;
        let mut mapped = Vec::new();
        for (pages, start_byte, len) in list.pieces {
            let up = pages.base() + start_byte;
            match self.map_pages(pages, start_byte, len, prot, Some(at), up) {
                Ok(i) => mapped.push((i, len)),
                Err(e) => {
                    for (i, l) in mapped {
                        let _ = self.unmap(i, l);
                    }
                    return Err(e);
                }
            }
            at += len;
        }
        Ok(first)
    }

    /// `IOMMU_IOAS_COPY`: maps the memory behind `[src_iova, src_iova + length)` of `src`
    /// into this IOAS at `dst_iova` or a chosen IOVA, as one area per source area. Returns
    /// the IOVA. [`get_pages`](Self::get_pages) then [`map_pages_list`](Self::map_pages_list).
    ///
    /// # Errors
    /// `ENOENT` if the source range is not fully mapped; as [`map_user`](Self::map_user).
    pub fn copy_from(
        &self,
        src: &IoPageTable,
        src_iova: u64,
        length: u64,
        prot: IoProt,
        dst_iova: Option<u64>,
    ) -> Result<u64, Errno> {
        if prot.is_empty() {
            return Err(Errno::EINVAL);
        }
        let list = src.get_pages(src_iova, length)?;
        self.map_pages_list(list, prot, dst_iova)
    }

    /// `IOMMU_IOAS_UNMAP` of `[iova, iova + length)`: removes the whole areas inside it and
    /// returns the bytes unmapped.
    ///
    /// # Errors
    /// `EINVAL` for length 0, `EOVERFLOW` if the range wraps, `ENOENT` if it holds no area or
    /// cuts one (the areas before the cut one are unmapped all the same, as in Linux).
    pub fn unmap(&self, iova: u64, length: u64) -> Result<u64, Errno> {
        if length == 0 {
            return Err(Errno::EINVAL);
        }
        let last = iova.checked_add(length - 1).ok_or(Errno::EOVERFLOW)?;
        self.unmap_range(iova, last)
    }

    /// `IOMMU_IOAS_UNMAP` with iova 0 and length `U64_MAX`: everything (0 bytes is fine).
    pub fn unmap_all(&self) -> u64 {
        self.unmap_range(0, u64::MAX).unwrap_or(0)
    }

    /// `iopt_unmap_iova_range`: removes the areas inside `[start, last]` in IOVA order; the
    /// first area that sticks out of the range stops it with `ENOENT`, after the ones before
    /// it are gone, as in Linux. An area with access pins is marked `prevent_access`, the
    /// accesses are asked to unpin it with the lock dropped, and the search starts again from
    /// it; `EDEADLOCK` after [`UNMAP_TRIES`] tries on one area.
    fn unmap_range(&self, start: u64, last: u64) -> Result<u64, Errno> {
        // Areas may together cover the whole 64-bit space: the byte count wraps as Linux's
        // does, and "nothing there" is decided by whether an area was found.
        let mut bytes = 0u64;
        let mut found = false;
        let mut from = start;
        // the area the accesses were last asked about, and how often
        let mut retry_at = None;
        let mut tries = 0u32;
        loop {
            let mut st = self.lock();
            let Some(k) = overlaps(&st.areas, from, last, |a| a.last)
                .map(|(&k, _)| k)
                .next()
            else {
                break;
            };
            let Some(a) = st.areas.get_mut(&k) else {
                break;
            };
            if a.iova < start || a.last > last {
                return Err(Errno::ENOENT);
            }
            if retry_at != Some(a.iova) {
                tries = 0;
            }
            if a.num_accesses > 0 {
                retry_at = Some(a.iova);
                from = a.iova;
                a.prevent_access = true;
                let (iova, len) = (a.iova, a.len());
                let accesses: Vec<Arc<dyn IoptAccess>> = st
                    .accesses
                    .values()
                    .filter_map(|(_, w)| w.upgrade())
                    .collect();
                drop(st);
                for access in accesses {
                    access.notify_unmap(iova, len);
                }
                tries += 1;
                if tries > UNMAP_TRIES {
                    tracing::warn!(iova, len, "an access does not unpin: unmap gives up");
                    return Err(Errno::EDEADLOCK);
                }
                continue;
            }
            let Some(a) = st.areas.remove(&k) else {
                break;
            };
            if !st.domains.is_empty() {
                for (_, d) in &st.domains {
                    d.unmap(a.iova, a.len());
                }
                a.pages.unpin();
            }
            bytes = bytes.wrapping_add(a.len());
            found = true;
            if a.last >= last {
                break;
            }
            from = a.last + 1;
        }
        if !found {
            return Err(Errno::ENOENT);
        }
        Ok(bytes)
    }

    /// Attaches `domain` (id `id`): reserves what lies beyond its aperture, then pins and maps
    /// every area into it (`iopt_table_add_domain`).
    ///
    /// # Errors
    /// `EINVAL` if an area lies beyond the aperture or is not aligned to the domain's page
    /// size; `EEXIST` if `id` is attached; pinning and mapping errors. Nothing stays changed.
    pub fn attach_domain(&self, id: u32, domain: Arc<dyn IoDomain>) -> Result<(), Errno> {
        let mut st = self.lock();
        if st.domains.iter().any(|(i, _)| *i == id) {
            return Err(Errno::EEXIST);
        }
        let ps = domain.page_size();
        if st
            .areas
            .values()
            .any(|a| a.iova % ps != 0 || a.len() % ps != 0 || a.last > domain.aperture_last())
        {
            return Err(Errno::EINVAL);
        }
        let ap = domain.aperture_last();
        if ap < u64::MAX {
            Self::reserve_locked(&mut st, ap + 1, u64::MAX, ReservedBy::Domain(id))?;
        }
        let first = st.domains.is_empty();
        let areas: Vec<Area> = st.areas.values().cloned().collect();
        let mut filled: Vec<&Area> = Vec::new();
        let mut failure = None;
        for a in &areas {
            // The first domain pins every area; later ones map what is already pinned.
            let runs = if first {
                a.pages.pin()
            } else {
                a.pages.pinned_runs().ok_or(Errno::EINVAL)
            };
            let runs = match runs {
                Ok(r) => r,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            if let Err(e) = fill_domain(domain.as_ref(), a, &runs, st.large_pages) {
                if first {
                    a.pages.unpin();
                }
                failure = Some(e);
                break;
            }
            filled.push(a);
        }
        if let Some(e) = failure {
            for a in filled {
                domain.unmap(a.iova, a.len());
                if first {
                    a.pages.unpin();
                }
            }
            st.unreserve(ReservedBy::Domain(id));
            return Err(e);
        }
        st.domains.push((id, domain));
        Ok(())
    }

    /// Detaches domain `id`: unmaps every area from it; the last domain's detach unpins
    /// the pages. Unknown ids are ignored.
    pub fn detach_domain(&self, id: u32) {
        let mut st = self.lock();
        let Some(k) = st.domains.iter().position(|(i, _)| *i == id) else {
            return;
        };
        let (_, d) = st.domains.remove(k);
        let last = st.domains.is_empty();
        for a in st.areas.values() {
            d.unmap(a.iova, a.len());
            if last {
                a.pages.unpin();
            }
        }
        st.unreserve(ReservedBy::Domain(id));
    }

    /// `IOMMU_OPTION_HUGE_PAGES` (`iopt_enable_large_pages` / `iopt_disable_large_pages`):
    /// whether domains may map with pages above their minimum. Disabling also raises the IOVA
    /// alignment to at least `PAGE_SIZE`, as Linux maps everything with base pages then.
    ///
    /// Enabling always succeeds; mappings made while disabled keep their base pages.
    ///
    /// # Errors
    /// Disabling only: `EINVAL` while domains are attached and hold mappings (their IOPTEs may
    /// already be large); `EADDRINUSE` if an existing area is not aligned to the raised IOVA
    /// alignment. Nothing changes on error.
    pub fn set_large_pages(&self, on: bool) -> Result<(), Errno> {
        let mut st = self.lock();
        if on || !st.large_pages {
            st.large_pages = on;
            return Ok(());
        }
        if !st.domains.is_empty() && !st.areas.is_empty() {
            return Err(Errno::EINVAL);
        }
        let old = st.alignment();
        st.large_pages = false;
        let new = st.alignment();
        if new > old && !st.areas_aligned(new) {
            st.large_pages = true;
            return Err(EADDRINUSE);
        }
        Ok(())
    }

    /// Whether large pages are allowed.
    pub fn large_pages(&self) -> bool {
        self.lock().large_pages
    }

    /// A snapshot of the areas, in IOVA order.
    pub fn areas(&self) -> Vec<Area> {
        self.lock().areas.values().cloned().collect()
    }

    /// The IOVA alignment now in force.
    pub fn alignment(&self) -> u64 {
        self.lock().alignment()
    }
}
