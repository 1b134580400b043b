//! vm-memory's `Iommu` trait over a vsva vIOMMU, on VT-d and on SMMUv3: a miss asks the
//! unit (Translation Request), a hit does not, the guest's unmap reaches the port as a
//! device-TLB invalidation (VT-d) / CMD_ATC_INV (SMMUv3), and a DMA the unit refuses comes
//! back as `Error::CannotResolve` with the fault in the unit's fault log / event queue.

mod common;

use common::{DEV, Guest, IOVA};
use vm_memory::iommu::{Error, Iommu, MappedRange};
use vm_memory::{Bytes, GuestAddress, IommuMemory, Permissions};
use vsva_host::{IommuKind, Smmuv3Kind, VtdKind};
use vsva_pgtable::Perm;
use vsva_smmuv3::spec::event::id;
use vsva_vtd::spec::fault::FaultReason;

/// What the tests read from each kind of unit.
trait Unit: IommuKind {
    /// A default unit's configuration.
    fn config() -> Self::Config;
    /// ATS Invalidate Requests the unit sent.
    fn devtlb_invalidations(unit: &Self::Unit) -> u64;
    /// Translation-table walks the unit made, where it counts them.
    fn walks(unit: &Self::Unit) -> Option<u64>;
    /// The fault reason of a DMA to an unmapped IOVA of a paging domain.
    const NOT_MAPPED: u8;
    /// The fault reason of a write to a read-only page of a paging domain.
    const WRITE_DENIED: u8;
    /// The fault recorded for a requester the driver never attached, if any.
    const UNKNOWN_REQUESTER: Option<u8>;
}

impl Unit for VtdKind {
    fn config() -> vsva_vtd::VtdConfig {
        vsva_vtd::VtdConfig::default()
    }
    fn devtlb_invalidations(unit: &vsva_vtd::Vtd) -> u64 {
        unit.stats().devtlb_invalidations
    }
    fn walks(_: &vsva_vtd::Vtd) -> Option<u64> {
        None
    }
    /// A paging domain is a second-stage table: SSPTE not present (VT-d 4.1 Table 31,
    /// SSPTE.R/W = 0 → 79h).
    const NOT_MAPPED: u8 = FaultReason::SsNotPresent as u8;
    /// Write to an entry without W (85h).
    const WRITE_DENIED: u8 = FaultReason::WriteDenied as u8;
    /// Its context entry is not present (41h).
    const UNKNOWN_REQUESTER: Option<u8> = Some(FaultReason::ContextNotPresent as u8);
}

impl Unit for Smmuv3Kind {
    fn config() -> vsva_smmuv3::Smmuv3Config {
        vsva_smmuv3::Smmuv3Config::default()
    }
    fn devtlb_invalidations(unit: &vsva_smmuv3::Smmuv3) -> u64 {
        unit.stats().atc_invalidations
    }
    fn walks(unit: &vsva_smmuv3::Smmuv3) -> Option<u64> {
        Some(unit.stats().tlb.walks)
    }
    /// IHI 0070 §7.3.12 F_TRANSLATION.
    const NOT_MAPPED: u8 = id::F_TRANSLATION;
    /// §7.3.15 F_PERMISSION.
    const WRITE_DENIED: u8 = id::F_PERMISSION;
    /// Linux gives every stream without a master an abort STE (`arm_smmu_make_abort_ste`):
    /// STE.Config = 0b000 terminates the transaction without an event (§5.2).
    const UNKNOWN_REQUESTER: Option<u8> = None;
}

fn translate_all(
    port: &impl Iommu,
    iova: u64,
    len: usize,
    access: Permissions,
) -> Result<Vec<MappedRange>, Error> {
    port.translate(GuestAddress(iova), len, access)
        .map(|it| it.collect())
}

fn miss_hit_invalidation_fault<K: Unit>() {
    let g = Guest::<K>::boot(K::config());
    let (domain, port) = g.plug();
    let buf = g.page(0);
    g.ram.write_slice(b"virtio!", GuestAddress(buf)).unwrap();
    domain.map(IOVA, buf, 4096, Perm::RW, false).unwrap();
    let walks0 = K::walks(&g.unit);

    // Miss: one Translation Request; the unit walks.
    let r = translate_all(&port, IOVA + 0x10, 0x20, Permissions::ReadWrite).unwrap();
    assert_eq!(
        r,
        vec![MappedRange {
            base: GuestAddress(buf + 0x10),
            length: 0x20
        }]
    );
    let s = port.stats();
    assert_eq!((s.misses, s.hits, s.translation_requests), (1, 0, 1));
    let walks1 = K::walks(&g.unit);
    if let (Some(a), Some(b)) = (walks0, walks1) {
        assert_eq!(b, a + 1, "the miss walked once");
    }

    // Hit: the IOTLB (the port's ATC) answers; the unit is not asked.
    let r = translate_all(&port, IOVA, 4096, Permissions::Read).unwrap();
    assert_eq!(
        r,
        vec![MappedRange {
            base: GuestAddress(buf),
            length: 4096
        }]
    );
    let s = port.stats();
    assert_eq!((s.misses, s.hits, s.translation_requests), (1, 1, 1));
    assert_eq!(K::walks(&g.unit), walks1);

    // A device's DMA through vm-memory's IommuMemory reaches the buffer.
    let dma = IommuMemory::new(g.ram.clone(), port.clone(), true, ());
    let mut seen = [0u8; 7];
    dma.read_slice(&mut seen, GuestAddress(IOVA)).unwrap();
    assert_eq!(&seen, b"virtio!");
    dma.write_slice(b"done", GuestAddress(IOVA + 0x100))
        .unwrap();
    let mut back = [0u8; 4];
    g.ram
        .read_slice(&mut back, GuestAddress(buf + 0x100))
        .unwrap();
    assert_eq!(&back, b"done");
    assert_eq!(port.stats().translation_requests, 1, "all hits");

    // Invalidation: the guest unmaps; the unit sends the port an ATS Invalidate Request.
    let dev0 = K::devtlb_invalidations(&g.unit);
    assert_eq!(domain.unmap(IOVA, 4096), 4096);
    assert!(K::devtlb_invalidations(&g.unit) > dev0);
    assert!(port.stats().invalidations >= 1);
    assert!(g.faults().is_empty());

    // Fault: the next DMA misses, the unit has nothing, the access faults and is recorded.
    let e = translate_all(&port, IOVA + 0x10, 8, Permissions::Read).unwrap_err();
    let Error::CannotResolve { iova_range, .. } = e else {
        panic!("{e:?}");
    };
    assert_eq!(
        iova_range,
        vm_memory::iommu::IovaRange {
            base: GuestAddress(IOVA + 0x10),
            length: 0xff0
        }
    );
    let s = port.stats();
    assert_eq!((s.misses, s.translation_requests, s.faults), (2, 2, 1));
    let f = g.faults();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!((f[0].dev, f[0].pasid), (DEV, None));
    assert_eq!(f[0].addr & !0xfff, IOVA);
    assert_eq!((f[0].reason, f[0].write), (K::NOT_MAPPED, false));
    assert!(dma.read_slice(&mut seen, GuestAddress(IOVA)).is_err());
}

fn write_to_a_read_only_page_is_a_recorded_permission_fault<K: Unit>() {
    let g = Guest::<K>::boot(K::config());
    let (domain, port) = g.plug();
    domain
        .map(IOVA, g.page(1), 4096, Perm::READ, false)
        .unwrap();

    // Reading caches a read-only translation.
    let r = translate_all(&port, IOVA, 64, Permissions::Read).unwrap();
    assert_eq!(r[0].base, GuestAddress(g.page(1)));
    // The write finds the entry without W, asks again, and is refused.
    let e = translate_all(&port, IOVA, 64, Permissions::Write).unwrap_err();
    assert!(matches!(e, Error::CannotResolve { .. }), "{e:?}");
    let f = g.faults();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!((f[0].addr & !0xfff, f[0].write), (IOVA, true));
    assert_eq!(f[0].reason, K::WRITE_DENIED);
    // The read is still served from the IOTLB.
    let before = port.stats().translation_requests;
    translate_all(&port, IOVA, 64, Permissions::Read).unwrap();
    assert_eq!(port.stats().translation_requests, before);
}

fn a_range_over_two_pages_fills_both_and_maps_to_both_frames<K: Unit>() {
    let g = Guest::<K>::boot(K::config());
    let (domain, port) = g.plug();
    // Two IOVA pages onto two guest pages in reverse order.
    domain.map(IOVA, g.page(3), 4096, Perm::RW, false).unwrap();
    domain
        .map(IOVA + 4096, g.page(2), 4096, Perm::RW, false)
        .unwrap();
    let r = translate_all(&port, IOVA + 4000, 200, Permissions::Write).unwrap();
    assert_eq!(
        r,
        vec![
            MappedRange {
                base: GuestAddress(g.page(3) + 4000),
                length: 96
            },
            MappedRange {
                base: GuestAddress(g.page(2)),
                length: 104
            },
        ]
    );
    assert_eq!(port.stats().translation_requests, 2);
    // Unmapping only the second page keeps the first cached.
    domain.unmap(IOVA + 4096, 4096);
    let before = port.stats().translation_requests;
    translate_all(&port, IOVA, 16, Permissions::Read).unwrap();
    assert_eq!(
        port.stats().translation_requests,
        before,
        "first page still cached"
    );
    assert!(translate_all(&port, IOVA + 4096, 16, Permissions::Read).is_err());
}

fn a_wrapping_range_is_refused_without_asking_the_unit<K: Unit>() {
    let g = Guest::<K>::boot(K::config());
    let (_domain, port) = g.plug();
    let e = translate_all(&port, u64::MAX - 8, 64, Permissions::Read).unwrap_err();
    assert!(matches!(e, Error::CannotResolve { .. }), "{e:?}");
    assert_eq!(port.stats().translation_requests, 0);
    assert!(g.faults().is_empty());
}

fn a_port_of_a_requester_the_guest_never_added_faults<K: Unit>() {
    let g = Guest::<K>::boot(K::config());
    let _ = g.plug();
    let stranger = g
        .fabric
        .open(g.upstream.clone(), vsva_mem::Rid::from_raw(0x0020), None);
    let e = translate_all(&stranger, IOVA, 8, Permissions::Read).unwrap_err();
    assert!(matches!(e, Error::CannotResolve { .. }), "{e:?}");
    assert_eq!(stranger.stats().faults, 1);
    let f: Vec<_> = g.faults().iter().map(|f| (f.dev, f.reason)).collect();
    let want: Vec<_> = K::UNKNOWN_REQUESTER
        .map(|r| (vsva_mem::Rid::from_raw(0x0020), r))
        .into_iter()
        .collect();
    assert_eq!(f, want);
}

fn a_pasid_port_translates_through_the_domain_attached_at_its_pasid<K: Unit>() {
    let g = Guest::<K>::boot(K::config());
    let (_rid_domain, _) = g.plug();
    let pasid = vsva_mem::Pasid::new(5).unwrap();
    let port = g.fabric.open(g.upstream.clone(), DEV, Some(pasid));
    let domain = g.os.iommu.alloc_paging_domain().unwrap();
    g.os.iommu.attach_domain(DEV, pasid, &domain, None).unwrap();
    domain.map(IOVA, g.page(4), 4096, Perm::RW, false).unwrap();
    let r = translate_all(&port, IOVA + 8, 8, Permissions::Write).unwrap();
    assert_eq!(r[0].base, GuestAddress(g.page(4) + 8));
    assert_eq!(
        translate_all(&port, IOVA, 8, Permissions::Read)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(port.stats().translation_requests, 1);
    assert_eq!(domain.unmap(IOVA, 4096), 4096);
    assert!(port.stats().invalidations >= 1);
    assert!(translate_all(&port, IOVA, 8, Permissions::Read).is_err());
    let f = g.faults();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!((f[0].dev, f[0].pasid), (DEV, Some(pasid)));
    assert_eq!(f[0].reason, K::NOT_MAPPED);
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod vtd {
            $(#[test] fn $name() { super::$name::<super::VtdKind>() })*
        }
        mod smmuv3 {
            $(#[test] fn $name() { super::$name::<super::Smmuv3Kind>() })*
        }
    };
}

on_both!(
    miss_hit_invalidation_fault,
    write_to_a_read_only_page_is_a_recorded_permission_fault,
    a_range_over_two_pages_fills_both_and_maps_to_both_frames,
    a_wrapping_range_is_refused_without_asking_the_unit,
    a_port_of_a_requester_the_guest_never_added_faults,
    a_pasid_port_translates_through_the_domain_attached_at_its_pasid,
);
