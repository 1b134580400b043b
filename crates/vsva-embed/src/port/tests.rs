//! The port against a scripted IOMMU: what it asks, what it caches, what an Invalidate
//! Request of each scope removes (PCIe Base 6.0 §10.3.1).

use std::collections::HashMap;
use std::sync::Mutex;

use vsva_mem::{PageSize, PhysMem, PhysMemory};
use vsva_pcie::{PageRequest, PageRequestOutcome, Refused};

use super::*;

/// An IOMMU whose translations are a table of (page size, translated address, R, W) by
/// untranslated page; it answers Translation Requests (when `ats`) and records the
/// untranslated requests it faults.
struct Scripted {
    map: Mutex<HashMap<u64, (PageSize, u64, bool, bool)>>,
    ats: bool,
    faulted: Mutex<Vec<(u64, Access)>>,
    mem: PhysMemory,
}

impl Scripted {
    fn new(ats: bool) -> Arc<Scripted> {
        Arc::new(Scripted {
            map: Mutex::new(HashMap::new()),
            ats,
            faulted: Mutex::new(Vec::new()),
            mem: PhysMemory::new(1 << 20).unwrap(),
        })
    }

    fn map(&self, iova: u64, size: PageSize, pa: u64, read: bool, write: bool) {
        self.map
            .lock()
            .unwrap()
            .insert(iova, (size, pa, read, write));
    }

    fn find(&self, addr: u64) -> Option<(PageSize, u64, bool, bool)> {
        let map = self.map.lock().unwrap();
        [PageSize::Size4K, PageSize::Size2M, PageSize::Size1G]
            .into_iter()
            .find_map(|s| {
                map.get(&(addr & !s.offset_mask()))
                    .filter(|e| e.0 == s)
                    .copied()
            })
    }
}

impl Upstream for Scripted {
    fn ats_translate(
        &self,
        _: Rid,
        _: Option<Pasid>,
        addr: u64,
        _: Access,
    ) -> Result<TranslationCompletion, Refused> {
        if !self.ats {
            return Err(Refused);
        }
        let (size, pa, read, write) =
            self.find(addr)
                .unwrap_or((PageSize::Size4K, 0, false, false));
        Ok(TranslationCompletion {
            addr: pa,
            size,
            read,
            write,
            exec: false,
            privileged: false,
        })
    }

    fn page_request(&self, _: &PageRequest) -> PageRequestOutcome {
        PageRequestOutcome::Dropped
    }

    fn dma(&self, _: Rid, _: Option<Pasid>, addr: u64, _: Access) -> Result<u64, Refused> {
        Ok(addr)
    }

    fn dma_untranslated(
        &self,
        _: Rid,
        _: Option<Pasid>,
        addr: u64,
        access: Access,
    ) -> Result<u64, Refused> {
        match self.find(addr) {
            Some((s, pa, r, w))
                if (r || !access.contains(Access::READ)) && (w || !access.is_write()) =>
            {
                Ok(pa + (addr & s.offset_mask()))
            }
            _ => {
                self.faulted.lock().unwrap().push((addr, access));
                Err(Refused)
            }
        }
    }

    fn memory(&self) -> &dyn PhysMem {
        &self.mem
    }
}

const RID: Rid = Rid::from_raw(0x0100);

fn pasid(p: u32) -> Option<Pasid> {
    Some(Pasid::new(p).unwrap())
}

fn inv(pasid: Option<Pasid>, addr: u64, len: u64, global: bool) -> AtsInvalidation {
    AtsInvalidation {
        sid: RID,
        pasid,
        addr,
        len,
        global,
    }
}

fn requests_for(port: &IommuPort, iova: u64) -> u64 {
    let before = port.stats().translation_requests;
    port.translate(GuestAddress(iova), 8, Permissions::Read)
        .unwrap()
        .for_each(drop);
    port.stats().translation_requests - before
}

#[test]
fn an_invalidation_removes_the_entries_of_the_pasids_it_reaches_only() {
    let iommu = Scripted::new(true);
    iommu.map(0x1000, PageSize::Size4K, 0x8000, true, true);
    let port = IommuPort::new(iommu, RID, pasid(5));
    assert_eq!(requests_for(&port, 0x1000), 1);
    assert_eq!(requests_for(&port, 0x1000), 0, "cached");

    // Another PASID, not Global: this port's entries stay.
    port.shared()
        .invalidate(&inv(pasid(6), 0x1000, 0x1000, false));
    assert_eq!(requests_for(&port, 0x1000), 0);
    // This PASID, another range: they stay.
    port.shared()
        .invalidate(&inv(pasid(5), 0x2000, 0x1000, false));
    assert_eq!(requests_for(&port, 0x1000), 0);
    // Another PASID with Global Invalidate: every PASID's go.
    port.shared()
        .invalidate(&inv(pasid(6), 0x1000, 0x1000, true));
    assert_eq!(requests_for(&port, 0x1000), 1);
    // Without PASID: every entry of the Function goes (§10.3.1).
    port.shared().invalidate(&inv(None, 0, u64::MAX, false));
    assert_eq!(requests_for(&port, 0x1000), 1);
    // This PASID, this range.
    port.shared()
        .invalidate(&inv(pasid(5), 0x1000, 0x1000, false));
    assert_eq!(requests_for(&port, 0x1000), 1);
    assert_eq!(port.stats().invalidations, 5);
}

#[test]
fn a_2mib_completion_serves_the_whole_range_from_one_request() {
    let iommu = Scripted::new(true);
    iommu.map(0x20_0000, PageSize::Size2M, 0x40_0000, true, false);
    let port = IommuPort::new(iommu, RID, None);
    let r: Vec<_> = port
        .translate(GuestAddress(0x20_0000), 0x20_0000, Permissions::Read)
        .unwrap()
        .collect();
    assert_eq!(
        r,
        vec![MappedRange {
            base: GuestAddress(0x40_0000),
            length: 0x20_0000
        }]
    );
    assert_eq!(requests_for(&port, 0x3f_fff0), 0);
    assert_eq!(port.stats().translation_requests, 1);
}

#[test]
fn a_denied_completion_sends_the_access_untranslated_so_the_iommu_records_it() {
    let iommu = Scripted::new(true);
    iommu.map(0x1000, PageSize::Size4K, 0x8000, true, false);
    let port = IommuPort::new(iommu.clone(), RID, None);
    let e = port
        .translate(GuestAddress(0x1010), 4, Permissions::Write)
        .unwrap_err();
    let Error::CannotResolve { iova_range, .. } = e else {
        panic!("{e:?}")
    };
    assert_eq!(
        iova_range,
        IovaRange {
            base: GuestAddress(0x1010),
            length: 0xff0
        }
    );
    assert_eq!(
        *iommu.faulted.lock().unwrap(),
        vec![(0x1010, Access::WRITE)]
    );
    assert_eq!(port.stats().faults, 1);
}

#[test]
fn an_iommu_that_refuses_translation_requests_but_translates_dma_is_misconfigured() {
    let iommu = Scripted::new(false);
    iommu.map(0x1000, PageSize::Size4K, 0x8000, true, true);
    let port = IommuPort::new(iommu.clone(), RID, None);
    let e = port
        .translate(GuestAddress(0x1000), 4, Permissions::Read)
        .unwrap_err();
    assert!(matches!(e, Error::IommuMisconfigured { .. }), "{e:?}");
    assert!(iommu.faulted.lock().unwrap().is_empty());
    assert_eq!(port.stats().faults, 0);
}

#[test]
fn an_empty_range_translates_to_nothing_without_asking() {
    let port = IommuPort::new(Scripted::new(true), RID, None);
    let r: Vec<_> = port
        .translate(GuestAddress(0x1000), 0, Permissions::ReadWrite)
        .unwrap()
        .collect();
    assert!(r.is_empty());
    assert_eq!(port.stats().translation_requests, 0);
}
