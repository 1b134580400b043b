//! The PASID allocator (Linux `iommu_sva_alloc_pasid`): one global PASID space; an address
//! space gets one PASID the first time it is bound, shared by all its devices, kept until the
//! last binding goes.

use std::collections::{BTreeSet, HashMap};

use vsva_mem::Pasid;
use vsva_mm::Pid;

use crate::error::{IommuError, Result};

/// The global PASID space.
#[derive(Debug)]
pub struct PasidAllocator {
    /// Allocatable range `[min, end)`. PASID 0 is reserved for requests without PASID.
    min: u32,
    end: u32,
    used: BTreeSet<u32>,
    by_mm: HashMap<Pid, Pasid>,
    /// Lowest value that may be free (allocation search starts there).
    hint: u32,
}

impl PasidAllocator {
    /// PASIDs `[1, 2^bits)`.
    pub fn new(bits: u8) -> PasidAllocator {
        PasidAllocator {
            min: 1,
            end: 1 << bits.clamp(1, 20),
            used: BTreeSet::new(),
            by_mm: HashMap::new(),
            hint: 1,
        }
    }

    /// The PASID of `mm`, allocating one if it has none, checked against a device's width.
    ///
    /// # Errors
    /// [`IommuError::NoPasid`] when the space is exhausted; [`IommuError::PasidOverflow`] when
    /// `mm`'s PASID does not fit `dev_bits` (the caller fills in the device);
    /// [`IommuError::NoMemory`] when [`vsva_mem::fail_nth`] fails a new allocation.
    pub fn get_or_alloc(&mut self, mm: Pid, dev_bits: u8) -> Result<Pasid> {
        let limit = 1u32 << dev_bits.min(20);
        if let Some(&p) = self.by_mm.get(&mm) {
            if p.raw() >= limit {
                return Err(IommuError::PasidOverflow {
                    dev: vsva_mem::Rid::from_raw(0),
                    pasid: p,
                });
            }
            return Ok(p);
        }
        if vsva_mem::fail_nth::should_fail() {
            return Err(IommuError::NoMemory);
        }
        let end = self.end.min(limit);
        let found = (self.hint.max(self.min)..end)
            .chain(self.min..self.hint.min(end))
            .find(|v| !self.used.contains(v));
        let v = found.ok_or(
            if end < self.end && self.used.len() < (self.end - self.min) as usize {
                // Free PASIDs exist, but not within this device's width.
                IommuError::PasidOverflow {
                    dev: vsva_mem::Rid::from_raw(0),
                    pasid: Pasid::new(end).unwrap_or(Pasid::MAX),
                }
            } else {
                IommuError::NoPasid
            },
        )?;
        self.used.insert(v);
        self.hint = v + 1;
        let p = Pasid::new(v).map_err(|_| IommuError::NoPasid)?;
        self.by_mm.insert(mm, p);
        Ok(p)
    }

    /// The PASID of `mm`, if it has one.
    pub fn of(&self, mm: Pid) -> Option<Pasid> {
        self.by_mm.get(&mm).copied()
    }

    /// Releases `mm`'s PASID (after its last binding is gone).
    pub fn release(&mut self, mm: Pid) {
        if let Some(p) = self.by_mm.remove(&mm) {
            self.used.remove(&p.raw());
            self.hint = self.hint.min(p.raw());
        }
    }

    /// PASIDs in use.
    #[cfg(test)]
    pub(crate) fn in_use(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pasid_per_address_space() {
        let mut a = PasidAllocator::new(20);
        let p1 = a.get_or_alloc(Pid(1), 20).unwrap();
        let p2 = a.get_or_alloc(Pid(2), 20).unwrap();
        assert_ne!(p1, p2);
        assert_ne!(p1.raw(), 0, "PASID 0 is for requests without PASID");
        assert_eq!(
            a.get_or_alloc(Pid(1), 20).unwrap(),
            p1,
            "shared by all devices"
        );
        a.release(Pid(1));
        assert_eq!(a.of(Pid(1)), None);
        assert_eq!(a.in_use(), 1);
    }

    #[test]
    fn exhaustion_and_width() {
        let mut a = PasidAllocator::new(2); // PASIDs 1..=3
        for mm in 1..=3 {
            a.get_or_alloc(Pid(mm), 20).unwrap();
        }
        assert_eq!(a.get_or_alloc(Pid(4), 20), Err(IommuError::NoPasid));
        a.release(Pid(2));
        assert_eq!(
            a.get_or_alloc(Pid(4), 20).unwrap().raw(),
            2,
            "freed PASIDs are reused"
        );
        // a device narrower than the PASID an mm already has
        let mut b = PasidAllocator::new(20);
        for mm in 1..=8 {
            b.get_or_alloc(Pid(mm), 20).unwrap();
        }
        assert!(matches!(
            b.get_or_alloc(Pid(8), 3),
            Err(IommuError::PasidOverflow { .. })
        ));
        assert!(b.get_or_alloc(Pid(1), 3).is_ok());
        // a new mm when only PASIDs beyond the device's width are free
        assert!(matches!(
            b.get_or_alloc(Pid(9), 3),
            Err(IommuError::PasidOverflow { .. })
        ));
    }
}
