//! Flows 3 and 4, fault and respond: page requests read from the fault queue become guest
//! page requests; the guest's page group responses become fault-queue writes with the cookie
//! of the group they answer; unrecoverable host faults are reported into the guest's fault log.

use std::sync::atomic::Ordering;

use vsva_iommu::UnrecoverableFault;
use vsva_iommufd::abi::{
    IommuHwptPageResponse, IommuHwptPgfault, PageResponseCode, PgfaultFlags, PgfaultPerm,
};
use vsva_mem::{Pasid, Rid};
use vsva_pcie::{PageRequest, ResponseCode};
use vsva_vtd::spec::fault::{FaultReason, FaultRecord, RequestType};
use zerocopy::FromBytes;

use super::{BLOCKED_HOST_PASID, Counters, READ_BATCH, Vmm};

/// The page request fault-queue record `rec` becomes in the guest: from its guest `rid`,
/// under its guest `pasid`, in group `prgi`.
pub(super) fn guest_page_request(
    rec: &IommuHwptPgfault,
    rid: Rid,
    pasid: Option<u32>,
    prgi: u16,
) -> PageRequest {
    let perm = PgfaultPerm::from_bits_retain(rec.perm);
    PageRequest {
        rid,
        pasid: pasid.and_then(|p| Pasid::new(p).ok()),
        addr: rec.addr & !0xfff,
        read: perm.contains(PgfaultPerm::READ),
        write: perm.contains(PgfaultPerm::WRITE),
        exec: perm.contains(PgfaultPerm::EXEC),
        privileged: perm.contains(PgfaultPerm::PRIV),
        last: PgfaultFlags::from_bits_retain(rec.flags).contains(PgfaultFlags::LAST_PAGE),
        prgi,
    }
}

impl Vmm {
    /// Reads the fault queue and delivers each page request to the guest's vIOMMU. Groups
    /// of PASIDs the guest no longer has are answered INVALID at once. Returns the number of
    /// requests delivered.
    pub fn pump_faults(&self) -> usize {
        let Some(unit) = self.unit() else {
            return 0;
        };
        let mut delivered = 0;
        loop {
            let records = self.read_fault_queue();
            if records.is_empty() {
                break;
            }
            let mut requests = Vec::new();
            let mut refuse = Vec::new();
            {
                let mut st = self.state();
                for rec in records {
                    let flags = PgfaultFlags::from_bits_retain(rec.flags);
                    let last = flags.contains(PgfaultFlags::LAST_PAGE);
                    let rid = st
                        .devices
                        .iter()
                        .find(|(_, a)| a.dev_id == rec.dev_id)
                        .map(|(&r, _)| r);
                    let pasid = if flags.contains(PgfaultFlags::PASID_VALID) {
                        st.pasids.to_guest.get(&rec.pasid).copied().map(Some)
                    } else {
                        Some(None)
                    };
                    let (Some(rid), Some(pasid)) = (rid, pasid) else {
                        if last {
                            refuse.push(rec.cookie);
                        }
                        continue;
                    };
                    let prgi = (rec.grpid & 0x1ff) as u16;
                    st.cookies.insert((rid, pasid, prgi), rec.cookie);
                    requests.push(guest_page_request(&rec, Rid::from_raw(rid), pasid, prgi));
                }
            }
            for cookie in refuse {
                self.write_response(cookie, PageResponseCode::INVALID);
            }
            for pr in requests {
                // A full guest queue answers the group itself, through `page_response`.
                unit.page_request(&pr);
                Counters::bump(&self.counters.faults_to_guest);
                delivered += 1;
            }
        }
        delivered
    }

    /// The records the fault queue holds now, up to a batch.
    pub(super) fn read_fault_queue(&self) -> Vec<IommuHwptPgfault> {
        let mut buf = [0u8; READ_BATCH * size_of::<IommuHwptPgfault>()];
        match self.fault.read(&mut buf, 0) {
            Ok(n) => buf[..n]
                .chunks_exact(size_of::<IommuHwptPgfault>())
                .filter_map(|c| IommuHwptPgfault::read_from_bytes(c).ok())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The guest's page group response for (`rid`, `pasid`, `prgi`): written to the fault
    /// queue with the cookie of the group it answers; dropped if the guest never received
    /// such a group.
    pub(crate) fn page_response(
        &self,
        rid: Rid,
        pasid: Option<Pasid>,
        code: ResponseCode,
        prgi: u16,
    ) {
        let cookie = self
            .state()
            .cookies
            .remove(&(rid.raw(), pasid.map(|p| p.raw()), prgi));
        let Some(cookie) = cookie else {
            Counters::bump(&self.counters.responses_dropped);
            tracing::debug!(%rid, ?pasid, prgi, "response to no pending group dropped");
            return;
        };
        let code = match code {
            ResponseCode::Success => PageResponseCode::SUCCESS,
            // iommufd has no FAILURE code: a failure is not retried either.
            _ => PageResponseCode::INVALID,
        };
        self.write_response(cookie, code);
        Counters::bump(&self.counters.page_responses_relayed);
    }

    pub(super) fn write_response(&self, cookie: u32, code: PageResponseCode) {
        let response = IommuHwptPageResponse { cookie, code };
        if let Err(e) = self
            .fault
            .write(zerocopy::IntoBytes::as_bytes(&response), 0)
        {
            tracing::warn!(cookie, %e, "fault queue refused a response");
        }
    }

    /// An unrecoverable host fault of an assigned device, into the guest's fault log.
    pub(super) fn report_host_fault(&self, f: &UnrecoverableFault) {
        let Some(unit) = self.unit() else {
            return;
        };
        let Some(reason) = FaultReason::from_code(f.reason) else {
            return;
        };
        let (rid, pasid) = {
            let st = self.state();
            let Some((&rid, a)) = st
                .devices
                .iter()
                .find(|&(&r, _)| self.host_rid(Rid::from_raw(r)) == f.dev)
            else {
                return;
            };
            let pasid = f.pasid.and_then(|hp| {
                st.pasids.to_guest.get(&hp.raw()).copied().or_else(|| {
                    // the blocked PASID: the one the guest wrote in the device's register
                    (hp.raw() == BLOCKED_HOST_PASID)
                        .then(|| (a.guest_pasid_reg.load(Ordering::Relaxed) & 0xf_ffff) as u32)
                })
            });
            (rid, pasid)
        };
        let rec = FaultRecord {
            addr: f.addr & !0xfff,
            sid: rid,
            pasid,
            privileged: false,
            execute: false,
            kind: if f.write {
                RequestType::Write
            } else {
                RequestType::Read
            },
            at: 0,
            reason,
        };
        unit.report_fault(&rec);
        Counters::bump(&self.counters.faults_reported);
    }
}
