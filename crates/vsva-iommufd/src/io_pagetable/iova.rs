//! The IOVA space of an IOAS: where a mapping may go (Linux `iopt_check_iova`,
//! `iopt_alloc_iova`), the reserved ranges (`iopt_reserve_iova`, owned by a domain's aperture
//! or a device's reserved regions) and the allowed list (`IOMMU_IOAS_ALLOW_IOVAS`), with the
//! errno rules of the parent module's doc.

use super::{EADDRINUSE, Inner, IoPageTable, PAGE, Reserved, ReservedBy, align_up, overlaps};
use crate::abi::Errno;

impl Inner {
    pub(super) fn reserved_hit(&self, start: u64, last: u64) -> bool {
        self.reserved
            .iter()
            .any(|r| r.start <= last && r.last >= start)
    }

    /// Forgets every range `owner` reserved.
    pub(super) fn unreserve(&mut self, owner: ReservedBy) {
        self.reserved.retain(|r| r.owner != owner);
    }

    pub(super) fn area_hit(&self, start: u64, last: u64) -> bool {
        overlaps(&self.areas, start, last, |a| a.last)
            .next()
            .is_some()
    }

    /// `iopt_check_iova`.
    pub(super) fn check_iova(&self, iova: u64, length: u64) -> Result<(), Errno> {
        if iova & (self.alignment() - 1) != 0 {
            return Err(Errno::EINVAL);
        }
        let last = iova.checked_add(length - 1).ok_or(Errno::EOVERFLOW)?;
        if self.reserved_hit(iova, last) {
            return Err(Errno::EINVAL);
        }
        if self.area_hit(iova, last) {
            return Err(Errno::EEXIST);
        }
        Ok(())
    }

    /// `iopt_alloc_iova`: the lowest fitting IOVA.
    pub(super) fn alloc_iova(&self, uptr: u64, length: u64) -> Result<u64, Errno> {
        if length == 0 || length >= u64::MAX / 2 {
            return Err(Errno::EOVERFLOW);
        }
        let page_offset = uptr % PAGE;
        let pow = length.next_power_of_two();
        let align = if uptr == 0 {
            pow
        } else {
            pow.min(1u64 << uptr.trailing_zeros())
        };
        if align < self.alignment() {
            return Err(Errno::EINVAL);
        }
        let spans: Vec<(u64, u64)> = if self.allowed.is_empty() {
            vec![(PAGE, u64::MAX - PAGE)]
        } else {
            self.allowed
                .iter()
                .filter_map(|&(s, l)| {
                    let s = s.max(PAGE);
                    let l = l.min(u64::MAX - PAGE);
                    (s <= l).then_some((s, l))
                })
                .collect()
        };
        // Used ranges (reserved and areas) in address order.
        let mut used: Vec<(u64, u64)> = self
            .reserved
            .iter()
            .map(|r| (r.start, r.last))
            .chain(self.areas.values().map(|a| (a.iova, a.last)))
            .collect();
        used.sort_unstable();
        for (span_start, span_last) in spans {
            let mut hole_start = span_start;
            let fits = |hs: u64, hl: u64| -> Option<u64> {
                let start = align_up(hs, align)? | page_offset;
                (start <= hl && hl - start >= length - 1).then_some(start)
            };
            for &(us, ul) in used
                .iter()
                .filter(|&&(s, l)| l >= span_start && s <= span_last)
            {
                if us > hole_start {
                    if let Some(iova) = fits(hole_start, us - 1) {
                        return Ok(iova);
                    }
                }
                hole_start = hole_start.max(ul.saturating_add(1));
                if ul == u64::MAX {
                    hole_start = u64::MAX;
                    break;
                }
            }
            if hole_start <= span_last {
                if let Some(iova) = fits(hole_start, span_last) {
                    return Ok(iova);
                }
            }
        }
        Err(Errno::ENOSPC)
    }
}

impl IoPageTable {
    /// `IOMMU_IOAS_IOVA_RANGES`: the holes between reserved ranges over the whole 64-bit
    /// space, and the IOVA alignment.
    pub fn iova_ranges(&self) -> (Vec<(u64, u64)>, u64) {
        let st = self.lock();
        let mut out = Vec::new();
        let mut at = 0u64;
        let mut done = false;
        for r in &st.reserved {
            if r.start > at {
                out.push((at, r.start - 1));
            }
            if r.last == u64::MAX {
                done = true;
                break;
            }
            at = at.max(r.last + 1);
        }
        if !done {
            out.push((at, u64::MAX));
        }
        (out, st.alignment())
    }

    /// `IOMMU_IOAS_ALLOW_IOVAS`: replaces the allowed list (empty: everything allowed).
    ///
    /// # Errors
    /// `EINVAL` for a range with `start >= last` or ranges that overlap; `EADDRINUSE` if a
    /// range overlaps a reserved one. The old list stays on error.
    pub fn allow_iovas(&self, ranges: &[(u64, u64)]) -> Result<(), Errno> {
        let mut sorted = ranges.to_vec();
        sorted.sort_unstable();
        if sorted.iter().any(|&(s, l)| s >= l) || sorted.windows(2).any(|w| w[1].0 <= w[0].1) {
            return Err(Errno::EINVAL);
        }
        let mut st = self.lock();
        if sorted.iter().any(|&(s, l)| st.reserved_hit(s, l)) {
            return Err(EADDRINUSE);
        }
        st.allowed = sorted;
        Ok(())
    }

    /// Reserves `[start, last]` for `owner` (`iopt_reserve_iova`). Ranges of different owners,
    /// or of the same owner, may overlap.
    ///
    /// # Errors
    /// `EADDRINUSE` if an area or an allowed range overlaps it; `EINVAL` if `start > last`;
    /// `ENOMEM` when [`vsva_mem::fail_nth`] fails the allocation.
    pub fn reserve(&self, start: u64, last: u64, owner: ReservedBy) -> Result<(), Errno> {
        let mut st = self.lock();
        Self::reserve_locked(&mut st, start, last, owner)
    }

    pub(super) fn reserve_locked(
        st: &mut Inner,
        start: u64,
        last: u64,
        owner: ReservedBy,
    ) -> Result<(), Errno> {
        if start > last {
            return Err(Errno::EINVAL);
        }
        let allowed_hit = st.allowed.iter().any(|&(s, l)| s <= last && l >= start);
        if st.area_hit(start, last) || allowed_hit {
            return Err(EADDRINUSE);
        }
        // the interval-tree node (`iopt_reserve_iova()`'s `kzalloc`)
        vsva_mem::fail_nth::check()?;
        let at = st.reserved.partition_point(|r| r.start <= start);
        st.reserved.insert(at, Reserved { start, last, owner });
        Ok(())
    }

    /// Reserves every range of `ranges` for `owner`, or none of them
    /// (`iopt_table_enforce_dev_resv_regions`: on a failure every range the owner holds in
    /// this IOAS is released again).
    ///
    /// # Errors
    /// As [`reserve`](Self::reserve), for the first range that fails.
    pub fn reserve_all(&self, ranges: &[(u64, u64)], owner: ReservedBy) -> Result<(), Errno> {
        let mut st = self.lock();
        for &(start, last) in ranges {
            if let Err(errno) = Self::reserve_locked(&mut st, start, last, owner) {
                st.unreserve(owner);
                return Err(errno);
            }
        }
        Ok(())
    }

    /// Releases every range `owner` reserved (`iopt_remove_reserved_iova`).
    pub fn unreserve(&self, owner: ReservedBy) {
        self.lock().unreserve(owner);
    }
}
