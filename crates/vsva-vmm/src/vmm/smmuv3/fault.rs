//! Flows 3 and 4 for a virtual SMMUv3, fault and respond, and host events.
//!
//! * A record of the fault queue (vsva's extension: nested SMMUv3 HWPTs report there) is a
//!   stalled transaction of a platform master — it becomes a stall event in the guest's event
//!   queue (F_TRANSLATION, Stall = 1, STAG = the group ID; IHI 0070 §7.3.13, §3.12.2) — or a
//!   PRI page request of a PCIe Function — it becomes an entry of the guest's PRI queue (§8).
//! * The guest's CMD_RESUME (§4.7.1) and CMD_PRI_RESP (§4.7.2) of those become fault-queue
//!   responses with the cookie of what they answer; anything else the guest answers is
//!   dropped and counted.
//! * vEVENTQ records (Linux `arm_vmaster_report_event()`: the guest's stage-1 events, with its
//!   StreamID already put back) go into the guest's event queue as they are.

use vsva_iommufd::abi::{
    IommuHwptPgfault, IommuVeventArmSmmuv3, IommufdVeventHeader, PageResponseCode, PgfaultFlags,
    PgfaultPerm, VeventqFlags,
};
use vsva_mem::{Pasid, Rid};
use vsva_pcie::{PageRequest, ResponseCode};
use vsva_smmuv3::Smmuv3;
use vsva_smmuv3::spec::event::{Access, EventRecord, WalkFault, class, id};
use zerocopy::FromBytes;

use super::{PendingKey, Smmu};
use crate::vmm::fault::guest_page_request;
use crate::vmm::{Counters, Vmm};

/// What a fault-queue record becomes in the guest.
enum Delivery {
    Stall(EventRecord),
    PageRequest(PageRequest),
}

impl Vmm {
    /// Moves what the host queued for the guest into its unit: fault-queue records, then
    /// vEVENTQ events. Returns how many it moved.
    pub(crate) fn pump_smmu(&self, unit: &Smmuv3) -> usize {
        let mut moved = 0;
        loop {
            let records = self.read_fault_queue();
            if records.is_empty() {
                break;
            }
            for rec in records {
                moved += usize::from(self.deliver_fault(unit, &rec));
            }
        }
        moved + self.pump_events(unit)
    }

    /// One fault-queue record into the guest; a record of no device the guest has is answered
    /// INVALID at once.
    fn deliver_fault(&self, unit: &Smmuv3, rec: &IommuHwptPgfault) -> bool {
        let flags = PgfaultFlags::from_bits_retain(rec.flags);
        let last = flags.contains(PgfaultFlags::LAST_PAGE);
        let pasid = flags
            .contains(PgfaultFlags::PASID_VALID)
            .then_some(rec.pasid);
        let perm = PgfaultPerm::from_bits_retain(rec.perm);
        let vsid = self
            .state()
            .devices
            .iter()
            .find(|(_, a)| a.dev_id == rec.dev_id)
            .map(|(&r, _)| r);
        let stalls = vsid.and_then(|v| self.smmu().streams.get(&v).map(|s| s.stalls));
        let (Some(vsid), Some(stalls)) = (vsid, stalls) else {
            if last {
                self.write_response(rec.cookie, PageResponseCode::INVALID);
            }
            return false;
        };
        let tag = rec.grpid as u16;
        let (key, delivery): (PendingKey, Delivery) = if stalls {
            let access = Access {
                sid: u32::from(vsid),
                ssid: pasid,
                addr: rec.addr,
                read: !perm.contains(PgfaultPerm::WRITE),
                instruction: perm.contains(PgfaultPerm::EXEC),
                privileged: perm.contains(PgfaultPerm::PRIV),
            };
            let fault = WalkFault {
                class: class::IN,
                stag: Some(tag),
                ..WalkFault::default()
            };
            (
                (vsid, None, tag),
                Delivery::Stall(EventRecord::walk_fault(id::F_TRANSLATION, &access, &fault)),
            )
        } else {
            let prgi = tag & 0x1ff;
            (
                (vsid, pasid, prgi),
                Delivery::PageRequest(guest_page_request(rec, Rid::from_raw(vsid), pasid, prgi)),
            )
        };
        if last {
            // Before the guest's unit sees it: a full PRI queue answers at once, through
            // the relay, which looks the cookie up.
            self.smmu().pending.insert(key, rec.cookie);
        }
        match delivery {
            Delivery::Stall(ev) => {
                if !unit.record(&ev) {
                    // The guest's event queue is off or full: the transaction is
                    // terminated, as a stall whose event cannot be recorded is (§3.12.2).
                    self.smmu().pending.remove(&key);
                    self.write_response(rec.cookie, PageResponseCode::INVALID);
                    return false;
                }
            }
            Delivery::PageRequest(pr) => {
                unit.page_request(&pr);
            }
        }
        Counters::bump(&self.counters.faults_to_guest);
        true
    }

    /// The guest's CMD_RESUME of `stag` on `vsid` (`retry`: Retry; otherwise Abort or
    /// Terminate): the host transaction is retried or terminated. Only a stream that stalls
    /// has stalls to resume.
    pub(crate) fn smmu_resume(&self, vsid: u16, stag: u16, retry: bool) {
        let code = if retry {
            PageResponseCode::SUCCESS
        } else {
            PageResponseCode::INVALID
        };
        let key = self.stalls(vsid).then_some((vsid, None, stag));
        self.answer(key, code);
    }

    /// The guest's CMD_PRI_RESP (or its unit's automatic response) for a page request group
    /// of a PCIe Function (a CMD_PRI_RESP naming a stream that stalls answers nothing: a
    /// stall is resumed by CMD_RESUME). A response without PASID answers the group of that
    /// PRG index whatever its PASID: PRG indexes are the Function's, and the SMMU's own
    /// Response Failure carries none (§8.1); the Function matches responses by index.
    pub(crate) fn smmu_pri_response(
        &self,
        rid: Rid,
        pasid: Option<Pasid>,
        code: ResponseCode,
        prgi: u16,
    ) {
        let code = match code {
            ResponseCode::Success => PageResponseCode::SUCCESS,
            // iommufd has no FAILURE code: a failure is not retried either.
            _ => PageResponseCode::INVALID,
        };
        let vsid = rid.raw();
        let key = if self.stalls(vsid) {
            None
        } else {
            let exact = (vsid, pasid.map(|p| p.raw()), prgi);
            let smmu = self.smmu();
            if smmu.pending.contains_key(&exact) || pasid.is_some() {
                Some(exact)
            } else {
                smmu.pending
                    .keys()
                    .find(|&&(s, _, i)| s == vsid && i == prgi)
                    .copied()
            }
        };
        self.answer(key, code);
    }

    /// Whether guest StreamID `vsid` is a platform master that stalls.
    fn stalls(&self, vsid: u16) -> bool {
        self.smmu().streams.get(&vsid).is_some_and(|s| s.stalls)
    }

    /// The guest's CMD_STALL_TERM of `vsid` (§4.7.2): every stall of the stream it still
    /// owes an answer is terminated on the host.
    pub(crate) fn smmu_stall_term(&self, vsid: u16) {
        let keys: Vec<PendingKey> = {
            let smmu = self.smmu();
            if !smmu.streams.get(&vsid).is_some_and(|s| s.stalls) {
                return;
            }
            smmu.pending
                .keys()
                .filter(|&&(s, _, _)| s == vsid)
                .copied()
                .collect()
        };
        for key in keys {
            self.answer(Some(key), PageResponseCode::INVALID);
        }
    }

    fn answer(&self, key: Option<PendingKey>, code: PageResponseCode) {
        let cookie = key.and_then(|key| self.smmu().pending.remove(&key));
        match cookie {
            Some(cookie) => {
                self.write_response(cookie, code);
                Counters::bump(&self.counters.page_responses_relayed);
            }
            None => {
                Counters::bump(&self.counters.responses_dropped);
                tracing::debug!(?key, "answer to nothing pending dropped");
            }
        }
    }

    /// Reads and drops what the vEVENTQ holds (events for a guest that is gone).
    pub(crate) fn drop_events(&self, smmu: &Smmu) {
        let Some((_, _, file)) = smmu.veventq.as_ref() else {
            return;
        };
        let mut buf =
            [0u8; 16 * (size_of::<IommufdVeventHeader>() + size_of::<IommuVeventArmSmmuv3>())];
        while let Ok(n) = file.read(&mut buf, 0) {
            if n == 0 {
                break;
            }
        }
    }

    /// The vEVENTQ's events into the guest's event queue.
    fn pump_events(&self, unit: &Smmuv3) -> usize {
        let Some(file) = self.smmu().veventq.as_ref().map(|(_, _, f)| f.clone()) else {
            return 0;
        };
        const HEADER: usize = size_of::<IommufdVeventHeader>();
        const EVENT: usize = size_of::<IommuVeventArmSmmuv3>();
        let mut moved = 0;
        let mut buf = [0u8; 16 * (HEADER + EVENT)];
        loop {
            let n = match file.read(&mut buf, 0) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut at = 0;
            while at + HEADER <= n {
                let Ok(h) = IommufdVeventHeader::read_from_bytes(&buf[at..at + HEADER]) else {
                    break;
                };
                at += HEADER;
                if VeventqFlags::from_bits_retain(h.flags).contains(VeventqFlags::LOST_EVENTS) {
                    tracing::warn!(sequence = h.sequence, "host events lost");
                    continue;
                }
                let Some(bytes) = buf.get(at..at + EVENT) else {
                    break;
                };
                at += EVENT;
                let Ok(ev) = IommuVeventArmSmmuv3::read_from_bytes(bytes) else {
                    break;
                };
                unit.record(&EventRecord { words: ev.evt });
                Counters::bump(&self.counters.faults_reported);
                moved += 1;
            }
        }
        moved
    }
}
