//! Flow 2, invalidate: the guest's PASID-IOTLB and device-TLB invalidations become
//! `IOMMU_HWPT_INVALIDATE` on the nested HWPT, done before the guest's wait descriptor
//! completes.

use vsva_iommufd::abi::{IommuHwptVtdS1Invalidate, VtdInvalidateFlags};
use vsva_mem::Rid;

use super::{Counters, Vmm, Want};

impl Vmm {
    /// The guest invalidated `[addr, addr + len)` (everything for `len` `u64::MAX`) of the
    /// first stage of guest PASID `pasid`, on device `rid` or (`None`) on every device with
    /// domain `did` (`None`: any).
    pub(crate) fn invalidate(
        &self,
        rid: Option<Rid>,
        pasid: u32,
        did: Option<u16>,
        addr: u64,
        len: u64,
        leaf: bool,
    ) {
        let hwpts: Vec<u32> = {
            let st = self.state();
            let mut v: Vec<u32> = st
                .binds
                .iter()
                .filter(|&(&(r, p), b)| {
                    p == Some(pasid)
                        && rid.is_none_or(|rid| rid.raw() == r)
                        && match b.want {
                            Want::Nested { did: d, .. } => did.is_none_or(|did| did == d),
                            Want::Parent => false,
                        }
                })
                .filter_map(|(_, b)| b.hwpt)
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let entry = if len == u64::MAX {
            IommuHwptVtdS1Invalidate {
                addr: 0,
                npages: u64::MAX,
                flags: 0,
                __reserved: 0,
            }
        } else {
            IommuHwptVtdS1Invalidate {
                addr: addr & !0xfff,
                npages: (len.div_ceil(4096)).max(1),
                flags: if leaf {
                    VtdInvalidateFlags::LEAF.bits()
                } else {
                    0
                },
                __reserved: 0,
            }
        };
        for hwpt in hwpts {
            match self.uapi.hwpt_invalidate(hwpt, &[entry]) {
                Ok(_) => Counters::bump(&self.counters.invalidations_propagated),
                Err(e) => tracing::warn!(hwpt, %e, "HWPT_INVALIDATE failed"),
            }
        }
    }

    // ---- flows 3 and 4: fault and respond ---------------------------------------------
}
