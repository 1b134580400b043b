//! I/O page faults and unrecoverable faults as the core handles them (Linux `io-pgfault.c`,
//! `iommu_report_device_fault()`): page requests grouped and resolved — SVA attachments by
//! the process's fault handler, others by their handler (iommufd's fault queue) — answered
//! exactly once; recorded faults handed to the device's event handler, then its fault handler.

use std::sync::atomic::Ordering;

use vsva_mem::{Pasid, Rid};

use super::{Attachment, Iommu, Owner, lock};
use crate::iopf::{FaultGroup, Reported};
use crate::ops::ResponseCode;

impl Iommu {
    /// Answers every pending group of (`dev`, `pasid`) (all PASIDs if `all`) Invalid.
    pub(super) fn abort_faults(&self, dev: Rid, pasid: Option<Pasid>, all: bool) {
        let groups = lock(&self.iopf).abort(dev, pasid, all);
        for (p, prgi) in groups {
            self.respond(dev, p, prgi, ResponseCode::InvalidRequest);
        }
    }

    /// Answers a page request group (for handlers that resolve faults later). Returns false
    /// if no such group was pending (a late or repeated answer, dropped).
    pub fn respond(&self, dev: Rid, pasid: Option<Pasid>, prgi: u16, code: ResponseCode) -> bool {
        if !lock(&self.iopf).complete(dev, pasid, prgi) {
            return false;
        }
        match code {
            ResponseCode::Success => self.success.fetch_add(1, Ordering::Relaxed),
            _ => self.invalid.fetch_add(1, Ordering::Relaxed),
        };
        if let Err(e) = self.ops.page_response(dev, pasid, prgi, code) {
            tracing::error!(%e, %dev, "page response failed");
        }
        true
    }

    /// Takes the hardware's page requests, groups them, and resolves complete groups: SVA
    /// attachments through the process's fault handler (inline, no thread hand-off), others
    /// through their handler. Returns the number of groups completed.
    pub fn handle_page_requests(&self) -> usize {
        let mut done = 0;
        for r in self.ops.take_page_requests() {
            let (limit, attachment) = {
                let st = lock(&self.state);
                match st.devices.get(&r.rid) {
                    Some(d) => (
                        d.pri_limit,
                        // requests without PASID use the RID_PASID attachment (PASID 0)
                        d.pasids
                            .get(&r.pasid.map_or(0, |p| p.raw()))
                            .or_else(|| {
                                // A PASID the user's own PASID table translates (Linux
                                // `find_fault_handler()`): the nested domain on the RID.
                                let rid = d.pasids.get(&0)?;
                                let nested = matches!(
                                    rid,
                                    Attachment::Domain {
                                        owner: Owner::Nested(_),
                                        ..
                                    }
                                );
                                (nested && self.ops.user_pasid_table()).then_some(rid)
                            })
                            .cloned(),
                    ),
                    None => (0, None),
                }
            };
            let reported = lock(&self.iopf).report(r, limit);
            let group = match reported {
                Reported::Partial => continue,
                Reported::OverLimit => {
                    if r.last {
                        self.invalid.fetch_add(1, Ordering::Relaxed);
                        let _ = self.ops.page_response(
                            r.rid,
                            r.pasid,
                            r.prgi,
                            ResponseCode::InvalidRequest,
                        );
                    }
                    continue;
                }
                // The group (`iopf_group_alloc()`): without it the group is answered
                // Response Failure, as Linux's `abort_group` is.
                Reported::Complete(g) if vsva_mem::fail_nth::should_fail() => {
                    self.respond_group(&g, ResponseCode::ResponseFailure);
                    continue;
                }
                Reported::Complete(g) => g,
            };
            done += 1;
            match attachment {
                Some(Attachment::Sva {
                    pid, supervisor, ..
                }) => {
                    let code = self.resolve_sva(pid, supervisor, &group);
                    self.respond_group(&group, code);
                }
                Some(Attachment::Domain {
                    handler: Some(h), ..
                }) => h.handle(group),
                _ => {
                    self.unhandled.fetch_add(1, Ordering::Relaxed);
                    self.respond_group(&group, ResponseCode::InvalidRequest);
                }
            }
        }
        done
    }

    fn respond_group(&self, g: &FaultGroup, code: ResponseCode) {
        self.respond(g.dev, g.pasid, g.prgi, code);
    }

    /// Takes the hardware's unrecoverable faults and hands each to its device's handler.
    /// Returns how many there were.
    pub fn handle_faults(&self) -> usize {
        let faults = self.ops.take_faults();
        for f in &faults {
            self.unrecoverable.fetch_add(1, Ordering::Relaxed);
            let (events, handler) = lock(&self.state)
                .devices
                .get(&f.dev)
                .map(|d| (d.event_handler.clone(), d.fault_handler.clone()))
                .unwrap_or_default();
            if events.is_some_and(|e| e(f)) {
                continue;
            }
            match handler {
                Some(h) => h(f),
                None => tracing::warn!(dev = %f.dev, reason = f.reason, "unhandled DMA fault"),
            }
        }
        faults.len()
    }
}
