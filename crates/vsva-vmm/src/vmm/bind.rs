//! Flow 1, bind (and its undoing): the guest's PASID entries, read after its context- and
//! PASID-cache invalidations and GCMD changes, become nested `IOMMU_HWPT_DATA_VTD_S1` HWPTs on
//! the stage 2, attached under host PASIDs the VMM chose; entries that went away, and every
//! binding when the guest clears TE, are detached and destroyed.

use vsva_iommufd::abi::{Errno, IommuHwptVtdS1, VtdS1Flags};
use vsva_mem::{Pasid, Rid};
use vsva_vtd::Resolved;
use vsva_vtd::Vtd;
use vsva_vtd::spec::pasid::Pgtt;

use super::{Bind, Counters, State, Vmm, Want};

impl Vmm {
    /// Brings the host in line with the guest's PASID entry of (`rid`, `pasid`) (`None`:
    /// RID_PASID), after the guest invalidated its PASID cache or context cache.
    pub(crate) fn sync_entry(&self, unit: &Vtd, rid: Rid, pasid: Option<u32>) {
        // The guest's RID_PASID entry (the PASID its context entry gives requests without
        // PASID) is carried by the device's RID on the host, not by a host PASID.
        let rid_pasid = Self::rid_pasid(unit, rid);
        if pasid == Some(rid_pasid) {
            // Bound under a host PASID while another value was RID_PASID (a new context
            // entry or root table since): that binding names no guest entry any more.
            self.unbind(&mut self.state(), (rid.raw(), pasid));
        }
        let pasid = pasid.filter(|&p| p != rid_pasid);
        let want = self.read_entry(unit, rid, pasid);
        let mut st = self.state();
        let key = (rid.raw(), pasid);
        let current = st.binds.get(&key).map(|b| b.want);
        if current == want || !st.devices.contains_key(&rid.raw()) {
            return;
        }
        if current.is_some() {
            self.unbind(&mut st, key);
        }
        if let Some(want) = want {
            if let Err(e) = self.bind(&mut st, key, want) {
                Counters::bump(&self.counters.bind_errors);
                tracing::warn!(%rid, ?pasid, %e, "guest PASID entry refused by the host");
            }
        }
    }

    /// Every PASID entry of `rid` the guest has present now, and every one bound: what a
    /// domain-selective or global invalidation may have changed.
    pub(crate) fn sync_device(&self, unit: &Vtd, rid: Rid) {
        let mut pasids: Vec<Option<u32>> = self
            .state()
            .binds
            .keys()
            .filter(|(r, _)| *r == rid.raw())
            .map(|&(_, p)| p)
            .collect();
        pasids.extend(unit.guest_present_pasids(rid).into_iter().map(Some));
        pasids.push(None);
        pasids.sort_unstable();
        pasids.dedup();
        for pasid in pasids {
            self.sync_entry(unit, rid, pasid);
        }
    }

    /// The guest RIDs of the assigned devices.
    pub(crate) fn guest_rids(&self) -> Vec<Rid> {
        self.state()
            .devices
            .keys()
            .map(|&r| Rid::from_raw(r))
            .collect()
    }

    /// The PASID `rid`'s guest context entry names for requests without PASID (RID_PASID,
    /// §9.4), whether or not its PASID entry is present; 0 (the reset value) when the
    /// context cannot be read.
    pub(super) fn rid_pasid(unit: &Vtd, rid: Rid) -> u32 {
        unit.guest_rid_pasid(rid).unwrap_or(0)
    }

    pub(super) fn read_entry(&self, unit: &Vtd, rid: Rid, pasid: Option<u32>) -> Option<Want> {
        let p = match pasid {
            Some(p) => Some(Pasid::new(p).ok()?),
            None => None,
        };
        let r: Resolved = unit.guest_pasid_entry(rid, p).ok()?;
        match r.pgtt {
            Pgtt::FirstStage => Some(Want::Nested {
                root: r.entry.fs_root(),
                addr_width: if r.entry.fs_levels() == Some(5) {
                    57
                } else {
                    48
                },
                supervisor: r.entry.q2.sre(),
                did: r.entry.q1.did(),
            }),
            Pgtt::PassThrough => Some(Want::Parent),
            // The vIOMMU advertises neither second-stage nor nested translation.
            _ => None,
        }
    }

    pub(super) fn bind(
        &self,
        st: &mut State,
        key: (u16, Option<u32>),
        want: Want,
    ) -> Result<(), Errno> {
        let (rid, pasid) = key;
        let s2 = st.s2.ok_or(Errno::ENODEV)?;
        let dev_id = st.devices.get(&rid).ok_or(Errno::ENODEV)?.dev_id;
        let host_pasid = match pasid {
            Some(gp) => Some(st.pasids.get_or_alloc(gp).ok_or(Errno::ENOSPC)?),
            None => None,
        };
        let result = (|| {
            let file = &st.devices.get(&rid).ok_or(Errno::ENODEV)?.file;
            match want {
                Want::Parent => {
                    file.attach(s2, host_pasid)?;
                    Ok(None)
                }
                Want::Nested {
                    root,
                    addr_width,
                    supervisor,
                    ..
                } => {
                    let flags = if supervisor {
                        VtdS1Flags::SRE.bits()
                    } else {
                        0
                    };
                    let s1 = IommuHwptVtdS1 {
                        flags,
                        pgtbl_addr: root,
                        addr_width,
                        __reserved: 0,
                    };
                    let hwpt = self.uapi.hwpt_nested(dev_id, s2, &s1, self.fault_id)?;
                    if let Err(e) = file.attach(hwpt, host_pasid) {
                        let _ = self.uapi.destroy(hwpt);
                        return Err(e);
                    }
                    Counters::bump(&self.counters.nested_binds);
                    Ok(Some(hwpt))
                }
            }
        })();
        match result {
            Ok(hwpt) => {
                st.binds.insert(key, Bind { want, hwpt });
                Ok(())
            }
            Err(e) => {
                if let Some(gp) = pasid {
                    st.pasids.put(gp);
                }
                Err(e)
            }
        }
    }

    pub(super) fn unbind(&self, st: &mut State, key: (u16, Option<u32>)) {
        let Some(bind) = st.binds.remove(&key) else {
            return;
        };
        let (rid, pasid) = key;
        let host_pasid = pasid.and_then(|gp| st.pasids.to_host.get(&gp).copied());
        if let Some(a) = st.devices.get(&rid) {
            let result = match (pasid, st.s2) {
                // Requests without PASID go back to the stage 2.
                (None, Some(s2)) => a.file.attach(s2, None).map(|_| ()),
                _ => a.file.detach(host_pasid),
            };
            if let Err(e) = result {
                tracing::warn!(rid, ?pasid, %e, "detach failed");
            }
        }
        if let Some(hwpt) = bind.hwpt {
            if let Err(e) = self.uapi.destroy(hwpt) {
                tracing::warn!(hwpt, %e, "destroy failed");
            }
        }
        if let Some(gp) = pasid {
            st.pasids.put(gp);
        }
        // Groups of that PASID the guest still owes are answered by iommufd (INVALID) on
        // detach; their cookies are gone.
        st.cookies.retain(|&(r, p, _), _| (r, p) != key);
    }

    /// Drops every binding (the vIOMMU was reset: guest reboot). Pending page requests are
    /// answered INVALID by iommufd as their PASIDs are detached.
    pub fn reset_bindings(&self) {
        self.unbind_streams();
        let mut st = self.state();
        self.unbind_all(&mut st);
        st.cookies.clear();
    }

    /// Detaches and destroys every binding: each PASID's DMA is blocked again, requests
    /// without PASID are back on the stage 2.
    pub(super) fn unbind_all(&self, st: &mut State) {
        let keys: Vec<_> = st.binds.keys().copied().collect();
        for key in keys {
            self.unbind(st, key);
        }
    }

    /// The guest set or cleared TE, or latched a root table (GCMD, §11.4.4; `enabled` is its
    /// TE after the write), from inside the guest's GCMD write.
    ///
    /// * TE clear: the guest's unit passes requests without PASID untranslated and blocks
    ///   requests with PASID (§3.2). Every binding is torn down as [`unbind`](Self::unbind)
    ///   does — each host PASID detached (iommufd answers its pending page requests
    ///   INVALID) and its nested HWPT destroyed; requests without PASID go back to the stage
    ///   2, which is the GPA -> HPA translation untranslated guest DMA means.
    /// * TE set, or SRTP: every device's entries are read again through the new tables
    ///   ([`sync_device`](Self::sync_device)), binding and unbinding to match them.
    ///
    /// Host detach returns only after the host unit's PASID-cache, IOTLB and device-TLB
    /// invalidations have completed, so when the guest's write returns no host translation
    /// of an old binding remains.
    pub(crate) fn translation_changed(&self, unit: &Vtd, enabled: bool) {
        if enabled {
            for rid in self.guest_rids() {
                self.sync_device(unit, rid);
            }
        } else {
            self.unbind_all(&mut self.state());
        }
    }

    // ---- flow 2: invalidate ----------------------------------------------------------
}
