//! The output queues (IHI 0070 §3.5, §7, §8): events drained into unrecoverable faults and,
//! for stalled transactions, I/O page faults (Linux `arm_smmu_evtq_thread`,
//! `arm_smmu_handle_evt`); page requests drained from the PRI queue (Linux
//! `arm_smmu_priq_thread`); page responses as CMD_RESUME or CMD_PRI_RESP.
//!
//! Linux mainline serves stalls only: its `arm_smmu_handle_ppr` answers every PRI page
//! request at once with `PRI_RESP_DENY`. vsva serves both: page requests go to the IOMMU
//! core, which answers them through [`Smmuv3Driver::page_response`].
//!
//! CMD_PRI_RESP's Resp field follows IHI 0070 §4.5.2: 0b00 ResponseFailure, 0b01
//! InvalidRequest, 0b10 Success. Linux's `enum pri_resp` names 0 `PRI_RESP_DENY` and 1
//! `PRI_RESP_FAIL` — so mainline's "deny" is, on the wire, a Response Failure (PCIe 1111b,
//! which stops the Function's PRI), not an Invalid Request; Jean-Philippe Brucker's PRI
//! series ("iommu/arm-smmu-v3: Add support for PRI", v4 26/26) dropped the enum for
//! `CMDQ_PRI_1_RESP_FAILURE 0 / INVALID 1 / SUCCESS 2`, the spec's encoding.

use vsva_iommu::{PageRequest, ResponseCode, UnrecoverableFault};
use vsva_mem::{Pasid, PhysMem, Rid};
use vsva_smmuv3::spec::cmd::{Command, PriResp, ResumeAction};
use vsva_smmuv3::spec::event::{EventRecord, PriEntry, id};
use vsva_smmuv3::spec::registers::queue;

use crate::driver::{DriverError, Result, RidDomain, Smmuv3Driver, State};
use crate::master::RidSte;
use vsva_pcie::Mmio;

/// An output queue (event or PRI queue) as the driver consumes it.
pub(crate) struct OutQueue {
    base: u64,
    log2: u8,
    entry: u64,
    prod_off: u64,
    cons_off: u64,
    /// CONS as last written (index, wrap bit, OVACKFLG).
    cons: u32,
    /// Overflows seen.
    pub overflows: u64,
}

impl OutQueue {
    pub(crate) fn new(base: u64, log2: u8, entry: u64, prod_off: u64, cons_off: u64) -> Self {
        OutQueue {
            base,
            log2,
            entry,
            prod_off,
            cons_off,
            cons: 0,
            overflows: 0,
        }
    }

    /// Reads every entry from CONS to PROD, then moves CONS there and acknowledges an
    /// overflow (OVACKFLG = OVFLG, Linux `queue_sync_prod_in` / `queue_sync_cons_out`).
    pub(crate) fn drain(&mut self, mmio: &dyn Mmio, mem: &dyn PhysMem, out: &mut Vec<Vec<u64>>) {
        let m = (2u32 << self.log2) - 1;
        let prod = mmio.read(self.prod_off, 4) as u32;
        let overflow = (prod ^ self.cons) & queue::OVERFLOW != 0;
        if overflow {
            self.overflows += 1;
            tracing::warn!(prod, "SMMUv3 output queue overflow: entries lost");
        }
        let mut c = self.cons & m;
        let mut n = 0;
        // At most one queue's worth, whatever PROD says.
        while c != prod & m && n < 1u32 << self.log2 {
            let at = self.base + ((c & ((1 << self.log2) - 1)) as u64) * self.entry;
            let words = (0..self.entry / 8)
                .map(|i| mem.load_u64(at + 8 * i).unwrap_or(0))
                .collect();
            out.push(words);
            c = (c + 1) & m;
            n += 1;
        }
        self.cons = c | (prod & queue::OVERFLOW);
        mmio.write(self.cons_off, 4, self.cons as u64);
    }
}

/// EVTQ_1_STALL and the access bits of dword 1 (Linux `EVTQ_1_*`).
const STALL: u64 = 1 << 31;
const PNU: u64 = 1 << 33;
const IND: u64 = 1 << 34;
const RNW: u64 = 1 << 35;

/// The fault an event record describes, or the page request of a stalled transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// A fault nobody can fix by paging.
    Fault(UnrecoverableFault),
    /// A stalled transaction (Linux `arm_smmu_handle_evt`: an I/O page fault whose group
    /// index is the STAG), to be resumed.
    Stall(PageRequest),
}

/// Decodes an event record (§7.3). `None` for a StreamID no Requester ID can have.
pub fn decode_event(rec: &EventRecord) -> Option<Decoded> {
    let rid = Rid::from_raw(u16::try_from(rec.sid()).ok()?);
    let pasid = rec.ssid().and_then(|s| Pasid::new(s).ok());
    let kind = rec.kind();
    let w1 = rec.words[1];
    let translation = matches!(
        kind,
        id::F_TRANSLATION | id::F_ADDR_SIZE | id::F_ACCESS | id::F_PERMISSION
    );
    let (addr, write) = match kind {
        id::F_UUT | id::F_TRANSL_FORBIDDEN | id::F_TLB_CONFLICT | id::E_PAGE_REQUEST => {
            (rec.words[2], w1 & RNW == 0)
        }
        k if translation || k == id::F_WALK_EABT => (rec.words[2], w1 & RNW == 0),
        _ => (0, false),
    };
    if translation && w1 & STALL != 0 {
        return Some(Decoded::Stall(PageRequest {
            rid,
            pasid,
            addr: addr & !0xfff,
            read: w1 & RNW != 0,
            write: w1 & RNW == 0,
            exec: w1 & IND != 0,
            privileged: w1 & PNU != 0,
            last: true,
            prgi: w1 as u16,
        }));
    }
    Some(Decoded::Fault(UnrecoverableFault {
        dev: rid,
        pasid,
        addr: addr & !0xfff,
        reason: kind,
        write,
        raw: rec.words,
    }))
}

/// Decodes a PRI queue entry (§8.1) into the page request it carries.
pub fn decode_page_request(e: &PriEntry) -> Option<PageRequest> {
    let f = e.fields();
    Some(PageRequest {
        rid: Rid::from_raw(u16::try_from(f.sid).ok()?),
        pasid: f.ssid.and_then(|s| Pasid::new(s).ok()),
        addr: f.addr,
        read: f.read,
        write: f.write,
        exec: f.exec,
        privileged: f.privileged,
        last: f.last,
        prgi: f.prgi,
    })
}

/// CMD_PRI_RESP's Resp for a PCIe response code (IHI 0070 §4.5.2).
pub fn pri_resp(code: ResponseCode) -> PriResp {
    match code {
        ResponseCode::Success => PriResp::Success,
        ResponseCode::InvalidRequest => PriResp::InvalidRequest,
        ResponseCode::ResponseFailure => PriResp::ResponseFailure,
    }
}

impl Smmuv3Driver {
    /// Drains the event queue into the fault and page-request lists.
    fn drain_events(&self, st: &mut State) {
        let mut raw = Vec::new();
        st.evtq
            .drain(self.mmio.as_ref(), self.mem.as_ref(), &mut raw);
        for w in raw {
            let rec = EventRecord {
                words: [w[0], w[1], w[2], w[3]],
            };
            match decode_event(&rec) {
                Some(Decoded::Fault(f)) => st.faults.push(f),
                Some(Decoded::Stall(r)) => {
                    self.stall_events
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if self.guests_stage2_stall(st, &rec, &r) {
                        continue;
                    }
                    st.stalls.insert((rec.sid(), r.prgi));
                    st.requests.push(r);
                }
                None => tracing::warn!(sid = rec.sid(), "event for a StreamID beyond 16 bits"),
            }
        }
    }

    /// A stage-2 stall (dword 1 S2) of a master whose RID is a guest's nested STE: the guest
    /// cannot fix its stage 2 and the core would hand the stall to the guest's nested domain,
    /// so the driver terminates it (CMD_RESUME, abort) and keeps it as the host's fault, as
    /// it keeps a guest's stage-2 events ([`IommuOps::viommu_event`](vsva_iommu::IommuOps)).
    /// Linux reports every stall to `iommu_report_device_fault()`; its nested domains take no
    /// page faults, so the question does not arise there.
    fn guests_stage2_stall(&self, st: &mut State, rec: &EventRecord, r: &PageRequest) -> bool {
        let nested = st
            .masters
            .get(&rec.sid())
            .is_some_and(|m| matches!(m.rid, RidDomain::Ste(RidSte::Nested { .. })));
        if rec.words[1] & crate::nested::EVT_S2 == 0 || !nested {
            return false;
        }
        let resume = Command::Resume {
            sid: rec.sid(),
            stag: r.prgi,
            action: ResumeAction::Abort,
        };
        if self.issue_nosync(st, &[resume]).is_ok() {
            self.resumes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        st.faults.push(UnrecoverableFault {
            dev: r.rid,
            pasid: r.pasid,
            addr: r.addr,
            reason: rec.kind(),
            write: r.write,
            raw: rec.words,
        });
        true
    }

    /// Takes the unrecoverable faults the event queue reported.
    pub fn take_events(&self) -> Vec<UnrecoverableFault> {
        let mut g = self.lock();
        let Some(st) = g.as_mut() else {
            return Vec::new();
        };
        self.drain_events(st);
        std::mem::take(&mut st.faults)
    }

    /// Takes the page requests: stalled transactions from the event queue and PCIe page
    /// requests from the PRI queue.
    pub fn take_requests(&self) -> Vec<PageRequest> {
        let mut g = self.lock();
        let Some(st) = g.as_mut() else {
            return Vec::new();
        };
        self.drain_events(st);
        if let Some(q) = st.priq.as_mut() {
            let mut raw = Vec::new();
            q.drain(self.mmio.as_ref(), self.mem.as_ref(), &mut raw);
            for w in raw {
                let e = PriEntry {
                    words: [w[0], w[1]],
                };
                if let Some(r) = decode_page_request(&e) {
                    st.requests.push(r);
                }
            }
        }
        std::mem::take(&mut st.requests)
    }

    /// Answers a page request group: a stalled transaction with CMD_RESUME (Success: retry,
    /// else terminate with an abort — Linux `arm_smmu_page_response`), a PRI group with
    /// CMD_PRI_RESP (§4.5.2 encoding, see the module doc).
    ///
    /// # Errors
    /// [`DriverError::Unsupported`] without PRI for a group that is not a stall; a command
    /// the SMMU refused.
    pub fn respond(
        &self,
        rid: Rid,
        pasid: Option<Pasid>,
        prgi: u16,
        code: ResponseCode,
    ) -> Result<()> {
        let sid = rid.raw() as u32;
        self.with_state(|st| {
            let resume = st.stalls.remove(&(sid, prgi));
            let cmd = if resume {
                Command::Resume {
                    sid,
                    stag: prgi,
                    action: match code {
                        ResponseCode::Success => ResumeAction::Retry,
                        _ => ResumeAction::Abort,
                    },
                }
            } else if self.features.pri {
                Command::PriResp {
                    sid,
                    ssid: pasid.map(|p| p.raw()),
                    prgi,
                    resp: pri_resp(code),
                }
            } else {
                return Err(DriverError::Unsupported("PRI"));
            };
            self.issue_nosync(st, &[cmd])?;
            if resume {
                self.resumes
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(())
        })
    }

    /// Event and PRI queue overflows seen.
    pub fn overflows(&self) -> (u64, u64) {
        self.lock().as_ref().map_or((0, 0), |st| {
            (
                st.evtq.overflows,
                st.priq.as_ref().map_or(0, |q| q.overflows),
            )
        })
    }
}
