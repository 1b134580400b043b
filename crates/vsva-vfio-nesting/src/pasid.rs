//! Host PASIDs for guests: the system-wide PASID space VT-d needs (`IOMMU_NESTING_FEAT_SYSWIDE_PASID`)
//! and each container's share of it — the series' `drivers/vfio/vfio_pasid.c` (a `vfio_mm` per
//! process, holding an `ioasid_set` with a quota) over `drivers/iommu/ioasid.c`.
//!
//! * [`HostPasids`] is the `ioasid` allocator: one space of 20-bit PASIDs, 1 to 2^20 - 1 (0 is
//!   VT-d's RID_PASID, the requests without PASID), each owned by one set.
//! * [`PasidSet`] is one container's `ioasid_set`: its PASIDs and its quota (the series'
//!   `pasid_quota` module parameter, default 1000: [`DEFAULT_PASID_QUOTA`]).
//!
//! Ownership answers follow `ioasid_find(set, pasid)`: a PASID nobody allocated is `ENOENT`,
//! one another set owns is `EACCES`.
//!
//! Differences from the series: the series shares one set (and quota) between every container
//! of a process (`vfio_mm` is per `mm_struct`); vsva gives each container its own. The host's
//! own SVA PASIDs come from the IOMMU core's allocator, which this space does not see: a host
//! that also runs SVA should give guests a range the core does not use (see
//! [`HostPasids::with_range`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use vsva_iommufd::abi::Errno;

/// The series' default per-set quota (`VFIO_DEFAULT_PASID_QUOTA`, "based on a forecast").
pub const DEFAULT_PASID_QUOTA: usize = 1000;

/// The last PASID of a 20-bit space (`PASID_MAX - 1`).
pub const PASID_LAST: u32 = (1 << 20) - 1;

/// A set's identity inside a [`HostPasids`].
type SetId = u64;

#[derive(Debug, Default)]
struct Space {
    /// Owner of each allocated PASID.
    owner: BTreeMap<u32, SetId>,
    next_set: SetId,
}

/// The system-wide PASID space (`ioasid.c`'s default allocator).
#[derive(Debug)]
pub struct HostPasids {
    first: u32,
    last: u32,
    space: Mutex<Space>,
}

impl HostPasids {
    /// PASIDs 1 to 2^20 - 1.
    pub fn new() -> Arc<HostPasids> {
        Self::with_range(1, PASID_LAST)
    }

    /// PASIDs `first..=last`, clamped to 1..=2^20 - 1.
    pub fn with_range(first: u32, last: u32) -> Arc<HostPasids> {
        Arc::new(HostPasids {
            first: first.max(1),
            last: last.min(PASID_LAST),
            space: Mutex::new(Space::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Space> {
        self.space.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// PASIDs allocated, by every set.
    pub fn allocated(&self) -> usize {
        self.lock().owner.len()
    }

    /// A new set with `quota` (`ioasid_alloc_set()`).
    pub fn new_set(self: &Arc<Self>, quota: usize) -> PasidSet {
        let id = {
            let mut space = self.lock();
            space.next_set += 1;
            space.next_set
        };
        PasidSet {
            host: self.clone(),
            id,
            quota,
        }
    }
}

/// One container's PASIDs. Dropping it frees them all (`vfio_mm_release()`).
#[derive(Debug)]
pub struct PasidSet {
    host: Arc<HostPasids>,
    id: SetId,
    quota: usize,
}

impl PasidSet {
    /// The quota.
    pub fn quota(&self) -> usize {
        self.quota
    }

    /// PASIDs this set holds, in order.
    pub fn pasids(&self) -> Vec<u32> {
        let space = self.host.lock();
        space
            .owner
            .iter()
            .filter(|&(_, &set)| set == self.id)
            .map(|(&pasid, _)| pasid)
            .collect()
    }

    /// Allocates the lowest free PASID in `min..=max` (`vfio_pasid_alloc()` →
    /// `ioasid_alloc()`), within the host's range.
    ///
    /// # Errors
    /// `ENOSPC` when the set has used its quota or no PASID of the range is free (the series
    /// returns `-ENOSPC` for `INVALID_IOASID` whatever the cause).
    pub fn alloc(&self, min: u32, max: u32) -> Result<u32, Errno> {
        let mut space = self.host.lock();
        let held = space.owner.values().filter(|&&set| set == self.id).count();
        if held >= self.quota {
            return Err(Errno::ENOSPC);
        }
        let first = min.max(self.host.first);
        let last = max.min(self.host.last);
        if first > last {
            return Err(Errno::ENOSPC);
        }
        let mut candidate = first;
        for (&taken, _) in space.owner.range(first..=last) {
            if taken != candidate {
                break;
            }
            if candidate == last {
                return Err(Errno::ENOSPC);
            }
            candidate += 1;
        }
        space.owner.insert(candidate, self.id);
        Ok(candidate)
    }

    /// Frees this set's PASIDs in `min..=max` (`vfio_pasid_free_range()`); others' and
    /// unallocated ones are left alone. Returns those freed.
    pub fn free_range(&self, min: u32, max: u32) -> Vec<u32> {
        let mut space = self.host.lock();
        if min > max {
            return Vec::new();
        }
        let mine: Vec<u32> = space
            .owner
            .range(min..=max)
            .filter(|&(_, &set)| set == self.id)
            .map(|(&pasid, _)| pasid)
            .collect();
        for pasid in &mine {
            space.owner.remove(pasid);
        }
        mine
    }

    /// Whether this set owns `pasid` (`ioasid_find(set, pasid)`).
    ///
    /// # Errors
    /// `ENOENT` if nobody allocated it; `EACCES` if another set did.
    pub fn check(&self, pasid: u64) -> Result<u32, Errno> {
        let space = self.host.lock();
        let owner = u32::try_from(pasid)
            .ok()
            .and_then(|p| space.owner.get(&p).map(|&set| (p, set)));
        match owner {
            None => Err(Errno::ENOENT),
            Some((p, set)) if set == self.id => Ok(p),
            Some(_) => Err(Errno::EACCES),
        }
    }
}

impl Drop for PasidSet {
    fn drop(&mut self) {
        let id = self.id;
        self.host.lock().owner.retain(|_, set| *set != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_in_range_with_quota() {
        let host = HostPasids::new();
        let a = host.new_set(3);
        let b = host.new_set(DEFAULT_PASID_QUOTA);
        assert_eq!(a.alloc(0, 10), Ok(1), "PASID 0 is never handed out");
        assert_eq!(b.alloc(0, 10), Ok(2));
        assert_eq!(a.alloc(2, 2), Err(Errno::ENOSPC), "taken by b");
        assert_eq!(a.alloc(5, 6), Ok(5));
        assert_eq!(a.alloc(5, 6), Ok(6));
        assert_eq!(a.alloc(7, 100), Err(Errno::ENOSPC), "quota of 3");
        assert_eq!(a.check(5), Ok(5));
        assert_eq!(a.check(2), Err(Errno::EACCES));
        assert_eq!(a.check(3), Err(Errno::ENOENT));
        assert_eq!(a.check(u64::MAX), Err(Errno::ENOENT));
        assert_eq!(a.free_range(0, 5), vec![1, 5]);
        assert_eq!(a.pasids(), vec![6]);
        assert_eq!(b.check(2), Ok(2), "b's PASID survived a's free");
        assert_eq!(a.alloc(PASID_LAST, u32::MAX), Ok(PASID_LAST));
        assert_eq!(a.alloc(PASID_LAST + 1, u32::MAX), Err(Errno::ENOSPC));
        drop(a);
        assert_eq!(host.allocated(), 1);
    }
}
