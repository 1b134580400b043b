//! The I/O page-fault queue (Linux `io-pgfault.c`): page requests are kept per device until
//! the last request of their page request group (PRG) arrives; the group is then handled as
//! one and answered with one response.
//!
//! A group stays pending from dispatch until its response; a response that matches no pending
//! group (late, duplicated, or for a group aborted meanwhile) is dropped and counted. Unbind
//! or device removal aborts the (device, PASID)'s groups: partial ones are discarded, pending
//! ones must be answered Invalid.

use std::collections::HashMap;

use vsva_mem::{Pasid, Rid};

use crate::ops::PageRequest;

/// A complete page request group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultGroup {
    /// Device.
    pub dev: Rid,
    /// PASID, if any.
    pub pasid: Option<Pasid>,
    /// PRG index.
    pub prgi: u16,
    /// The group's requests, the last one last.
    pub pages: Vec<PageRequest>,
}

/// A group's identity.
pub type GroupKey = (u16, u32, u16);

fn key(dev: Rid, pasid: Option<Pasid>, prgi: u16) -> GroupKey {
    (dev.raw(), pasid.map_or(u32::MAX, |p| p.raw()), prgi)
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IopfStats {
    /// Page requests received.
    pub requests: u64,
    /// Groups completed and dispatched.
    pub groups: u64,
    /// Responses sent for pending groups.
    pub responses: u64,
    /// Responses dropped because no such group was pending.
    pub late_responses: u64,
    /// Requests dropped because the device had more outstanding than allowed.
    pub over_limit: u64,
}

/// Page-fault state of all devices.
#[derive(Debug, Default)]
pub struct IopfQueue {
    partial: HashMap<GroupKey, Vec<PageRequest>>,
    /// Complete groups awaiting their response, with the requests each holds of its
    /// device's outstanding allocation (released by the response, whoever sends it).
    pending: HashMap<GroupKey, u32>,
    outstanding: HashMap<u16, u32>,
    stats: IopfStats,
}

/// What happened to a reported page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reported {
    /// Kept; the group is not complete yet.
    Partial,
    /// The group is complete: handle it and respond.
    Complete(FaultGroup),
    /// Dropped: the device exceeded its outstanding page request allocation. If it was the
    /// last of its group, the group must be answered Invalid.
    OverLimit,
}

impl IopfQueue {
    /// Adds a request from a device allowed `limit` outstanding requests.
    pub fn report(&mut self, r: PageRequest, limit: u32) -> Reported {
        self.stats.requests += 1;
        let n = self.outstanding.entry(r.rid.raw()).or_insert(0);
        if *n >= limit {
            self.stats.over_limit += 1;
            if r.last {
                // The group ends here and is answered Invalid: what it had queued goes.
                let k = key(r.rid, r.pasid, r.prgi);
                let dropped = self.partial.remove(&k).map_or(0, |v| v.len());
                self.release(r.rid, dropped as u32);
            }
            return Reported::OverLimit;
        }
        *n += 1;
        let k = key(r.rid, r.pasid, r.prgi);
        let list = self.partial.entry(k).or_default();
        list.push(r);
        if !r.last {
            return Reported::Partial;
        }
        let pages = self.partial.remove(&k).unwrap_or_default();
        // A device may reuse a PRG index whose response is still due: its requests add up.
        *self.pending.entry(k).or_default() += pages.len() as u32;
        self.stats.groups += 1;
        Reported::Complete(FaultGroup {
            dev: r.rid,
            pasid: r.pasid,
            prgi: r.prgi,
            pages,
        })
    }

    /// A response is about to be sent for a group: true if it was pending (send it), false if
    /// it is late or unknown (drop it).
    pub fn complete(&mut self, dev: Rid, pasid: Option<Pasid>, prgi: u16) -> bool {
        let Some(pages) = self.pending.remove(&key(dev, pasid, prgi)) else {
            self.stats.late_responses += 1;
            return false;
        };
        self.release(dev, pages);
        self.stats.responses += 1;
        true
    }

    fn release(&mut self, dev: Rid, n: u32) {
        if let Some(c) = self.outstanding.get_mut(&dev.raw()) {
            *c = c.saturating_sub(n);
        }
    }

    /// Aborts (`dev`, `pasid`)'s groups (every PASID's when `pasid` is `None` and `all`):
    /// partial groups are discarded, pending ones returned to be answered Invalid.
    pub fn abort(
        &mut self,
        dev: Rid,
        pasid: Option<Pasid>,
        all: bool,
    ) -> Vec<(Option<Pasid>, u16)> {
        // Requests without PASID are kept under no PASID but belong to the RID_PASID (0)
        // attachment: detaching PASID 0 aborts them too.
        let wanted = pasid.map_or(u32::MAX, |p| p.raw());
        let matches = |k: &GroupKey| {
            k.0 == dev.raw() && (all || k.1 == wanted || (wanted == 0 && k.1 == u32::MAX))
        };
        let partial: Vec<GroupKey> = self
            .partial
            .keys()
            .filter(|k| matches(k))
            .copied()
            .collect();
        for k in partial {
            let n = self.partial.remove(&k).map_or(0, |v| v.len());
            self.release(dev, n as u32);
        }
        let pending: Vec<GroupKey> = self
            .pending
            .keys()
            .filter(|k| matches(k))
            .copied()
            .collect();
        pending
            .into_iter()
            .map(|k| {
                let p = (k.1 != u32::MAX).then(|| Pasid::new(k.1).ok()).flatten();
                (p, k.2)
            })
            .collect()
    }

    /// Groups awaiting a response.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Counters.
    pub fn stats(&self) -> IopfStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(prgi: u16, last: bool) -> PageRequest {
        PageRequest {
            rid: Rid::from_raw(0x18),
            pasid: Some(Pasid::new(5).unwrap()),
            addr: 0x1000 * prgi as u64,
            read: true,
            write: false,
            exec: false,
            privileged: false,
            last,
            prgi,
        }
    }

    #[test]
    fn groups_complete_on_the_last_request() {
        let mut q = IopfQueue::default();
        assert_eq!(q.report(req(3, false), 16), Reported::Partial);
        let Reported::Complete(one) = q.report(req(4, true), 16) else {
            panic!("a lone last request is a group")
        };
        assert_eq!(one.pages, vec![req(4, true)]);
        let Reported::Complete(g) = q.report(req(3, true), 16) else {
            panic!()
        };
        assert_eq!(g.pages.len(), 2);
        assert_eq!(q.pending(), 2);
        assert!(q.complete(g.dev, g.pasid, 3));
        assert!(!q.complete(g.dev, g.pasid, 3), "a second response is late");
        assert_eq!(q.stats().late_responses, 1);
    }

    #[test]
    fn abort_discards_partial_and_returns_pending() {
        let mut q = IopfQueue::default();
        q.report(req(1, false), 16);
        q.report(req(2, true), 16);
        let mut aborted = q.abort(Rid::from_raw(0x18), Some(Pasid::new(5).unwrap()), false);
        aborted.sort();
        assert_eq!(aborted, vec![(Some(Pasid::new(5).unwrap()), 2)]);
        // the partial group is gone: its last request now forms a group of one
        let Reported::Complete(g) = q.report(req(1, true), 16) else {
            panic!()
        };
        assert_eq!(g.pages.len(), 1);
    }

    #[test]
    fn a_reused_prg_index_keeps_all_its_credits_due() {
        let mut q = IopfQueue::default();
        let page = |n: u64, last| PageRequest {
            addr: 0x10_0000 + n * 0x1000,
            ..req(7, last)
        };
        q.report(page(0, false), 4);
        assert!(matches!(q.report(page(1, true), 4), Reported::Complete(_)));
        // the same index again before the answer
        assert!(matches!(q.report(page(2, true), 4), Reported::Complete(_)));
        assert!(q.complete(Rid::from_raw(0x18), Some(Pasid::new(5).unwrap()), 7));
        // all three credits came back
        for n in 0..3 {
            assert_eq!(q.report(page(10 + n, false), 4), Reported::Partial);
        }
    }

    #[test]
    fn aborting_pasid_0_takes_the_requests_without_pasid() {
        let mut q = IopfQueue::default();
        let r = PageRequest {
            pasid: None,
            ..req(3, true)
        };
        assert!(matches!(q.report(r, 4), Reported::Complete(_)));
        let aborted = q.abort(r.rid, Some(Pasid::new(0).unwrap()), false);
        assert_eq!(aborted, vec![(None, 3)]);
    }

    #[test]
    fn a_response_releases_every_request_of_its_group() {
        let mut q = IopfQueue::default();
        let page = |prgi, n: u64, last| PageRequest {
            addr: 0x10_0000 + n * 0x1000,
            ..req(prgi, last)
        };
        assert_eq!(q.report(page(7, 0, false), 2), Reported::Partial);
        let Reported::Complete(g) = q.report(page(7, 1, true), 2) else {
            panic!("group of two")
        };
        assert_eq!(g.pages.len(), 2);
        assert_eq!(
            q.report(page(8, 0, true), 2),
            Reported::OverLimit,
            "both credits in use"
        );
        // whoever answers gives both credits back, without saying how many pages it had
        assert!(q.complete(g.dev, g.pasid, g.prgi));
        assert_eq!(q.report(page(9, 0, false), 2), Reported::Partial);
        assert!(matches!(
            q.report(page(9, 1, true), 2),
            Reported::Complete(_)
        ));
    }

    #[test]
    fn outstanding_requests_are_limited() {
        let mut q = IopfQueue::default();
        for i in 0..4 {
            assert_eq!(q.report(req(i, false), 4), Reported::Partial);
        }
        assert_eq!(q.report(req(9, true), 4), Reported::OverLimit);
        assert_eq!(q.stats().over_limit, 1);
        // a last request over the limit closes its group and frees what the group held
        assert_eq!(q.report(req(3, true), 4), Reported::OverLimit);
        assert_eq!(
            q.report(req(3, false), 4),
            Reported::Partial,
            "group 3's credit came back"
        );
        q.abort(Rid::from_raw(0x18), None, true);
        assert_eq!(
            q.report(req(9, false), 4),
            Reported::Partial,
            "credits came back"
        );
    }
}
