//! The Page Request Interface of an endpoint, PCIe Base 6.0 §10.4 (Page Request Services) and
//! §10.5.2 (Page Request Extended Capability).
//!
//! The device asks the host to make pages resident by sending Page Request Messages
//! (§10.4.1). Requests form a Page Request Group (PRG) named by a 9-bit PRG index chosen by the
//! device; the last request of a group carries the Last Page In Group (LPIG) flag. The host
//! answers a whole group with one PRG Response Message (§10.4.2).
//!
//! # Credits
//! Each request takes one credit of the Outstanding Page Request Allocation (§10.5.2.5); a
//! group's credits come back with its response. Asking beyond the allocation is a device bug:
//! it is refused with [`PriError::NoCredit`] and counted ([`Pri::no_credit_count`]).
//!
//! # Responses
//! * Success / Invalid Request: the group's index and credits are freed.
//! * Response Failure: RF and Stopped are set and the interface stops: the Function expects no
//!   further responses, so every other outstanding group is abandoned (its index and credits
//!   freed; groups allocated but still empty stay allocated), later
//!   responses are ignored ([`PriError::ResponseIgnored`]) and requests are refused
//!   ([`PriError::Stopped`]) until software resets (Reset with Enable clear) or re-enables PRI.
//! * An index with no outstanding request sets UPRGI (§10.5.2.3) and is refused with
//!   [`PriError::UnexpectedGroup`].
//!
//! # Coupling with the config space
//! Software resets and enables arrive as config writes; [`ConfigSpace::pri_epoch`] changes on
//! each. [`Pri::sync`] notices and drops all pending state, and sets Stopped once Enable is
//! clear and nothing is outstanding. [`Pri::request`] and [`Pri::response`] call it first; a
//! device model should also call it after each config write.
//!
//! Not modelled: Stop Markers (§10.4.1.2) and the message headers (Requester ID, routing).

use bitfield_struct::bitfield;
use vsva_mem::{Access, Pasid};

use crate::config::ConfigSpace;

/// Number of PRG indexes (the field is 9 bits, §10.4.1).
pub const PRG_INDEX_COUNT: u16 = 512;

/// PRG Response Code (§10.4.2, Table 10-9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseCode {
    /// 0000b: all pages of the group are resident as asked.
    Success,
    /// 0001b: a page does not exist or cannot get the rights asked; retrying will not help.
    InvalidRequest,
    /// 1111b: a catastrophic error; the Function's Page Request Interface stops.
    ResponseFailure,
}

impl ResponseCode {
    /// The 4-bit encoding.
    pub const fn raw(self) -> u8 {
        match self {
            ResponseCode::Success => 0x0,
            ResponseCode::InvalidRequest => 0x1,
            ResponseCode::ResponseFailure => 0xF,
        }
    }

    /// Decodes a 4-bit code; `None` for the reserved 0010b..=1110b (and values above 4 bits).
    pub const fn from_raw(raw: u8) -> Option<ResponseCode> {
        match raw {
            0x0 => Some(ResponseCode::Success),
            0x1 => Some(ResponseCode::InvalidRequest),
            0xF => Some(ResponseCode::ResponseFailure),
            _ => None,
        }
    }
}

/// Bytes 8..16 of a Page Request Message (§10.4.1, Figure 10-16): page address, PRG index and
/// the L/W/R bits. (Intel VT-d's page request descriptor carries the same word.)
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct PageRequestWord {
    /// R: read access requested.
    pub r: bool,
    /// W: write access requested.
    pub w: bool,
    /// L: Last Page In Group.
    pub l: bool,
    /// Page Request Group Index.
    #[bits(9)]
    pub prgi: u16,
    /// Page Address bits 63:12.
    #[bits(52)]
    pub page: u64,
}

/// A Page Request Message without its Requester-ID-dependent header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequestMsg {
    /// PASID from the PASID TLP prefix, if any.
    pub pasid: Option<Pasid>,
    /// Read/Write (message body) and Execute-Requested/Privileged-Mode-Requested (PASID
    /// prefix).
    pub access: Access,
    /// Untranslated page address, 4 KiB aligned.
    pub page_addr: u64,
    /// PRG index, `0..512`.
    pub prgi: u16,
    /// Last Page In Group.
    pub last: bool,
}

impl PageRequestMsg {
    /// The message's address/PRGI/L/W/R quadword.
    pub fn word(&self) -> PageRequestWord {
        PageRequestWord::new()
            .with_r(self.access.contains(Access::READ))
            .with_w(self.access.is_write())
            .with_l(self.last)
            .with_prgi(self.prgi)
            .with_page(self.page_addr >> 12)
    }
}

/// A group the host answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCompletion {
    /// Its PRG index (now free).
    pub prgi: u16,
    /// The PASID its requests carried.
    pub pasid: Option<Pasid>,
    /// The host's answer.
    pub code: ResponseCode,
    /// The requests of the group, in the order sent.
    pub requests: Vec<PageRequestMsg>,
}

/// Why a page request or response was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PriError {
    /// PRI Enable is clear.
    #[error("the Page Request Interface is disabled")]
    Disabled,
    /// A Response Failure stopped the interface; software must reset or re-enable it.
    #[error("the Page Request Interface stopped after a Response Failure")]
    Stopped,
    /// All allocated credits are in use.
    #[error("no page request credit left (allocation {allocation})")]
    NoCredit {
        /// The Outstanding Page Request Allocation in force.
        allocation: u32,
    },
    /// The PRG index is out of range or not allocated.
    #[error("PRG index {prgi} is not allocated")]
    BadGroup {
        /// The index.
        prgi: u16,
    },
    /// The group's last request (LPIG) was already sent.
    #[error("PRG index {prgi} is closed by its last request")]
    GroupClosed {
        /// The index.
        prgi: u16,
    },
    /// The group already has requests, which cannot be withdrawn.
    #[error("PRG index {prgi} has outstanding requests")]
    GroupNotEmpty {
        /// The index.
        prgi: u16,
    },
    /// Requests of one group must carry the same PASID (one response answers them all).
    #[error("PRG index {prgi} already carries another PASID")]
    PasidMismatch {
        /// The index.
        prgi: u16,
    },
    /// A PASID was given but PASID Enable is clear.
    #[error("PASID {0} given but PASIDs are not enabled")]
    PasidNotEnabled(Pasid),
    /// The PASID does not fit the Max PASID Width.
    #[error("PASID {pasid} exceeds the {width}-bit Max PASID Width")]
    PasidTooWide {
        /// The PASID.
        pasid: Pasid,
        /// Max PASID Width.
        width: u8,
    },
    /// Execute-Requested needs a PASID and Execute Permission Enable.
    #[error("execute requested without PASID Execute Permission enabled")]
    ExecNotEnabled,
    /// Privileged-Mode-Requested needs a PASID and Privileged Mode Enable.
    #[error("privileged mode requested without PASID Privileged Mode enabled")]
    PrivNotEnabled,
    /// Neither read nor write access was asked for.
    #[error("a page request must ask for read or write access")]
    NoAccess,
    /// A response named an index with no outstanding request; UPRGI was set.
    #[error("PRG Response for PRG index {prgi}, which has no outstanding request")]
    UnexpectedGroup {
        /// The index.
        prgi: u16,
    },
    /// A response arrived after a Response Failure and was ignored.
    #[error("PRG Response for PRG index {prgi} ignored after a Response Failure")]
    ResponseIgnored {
        /// The index.
        prgi: u16,
    },
}

#[derive(Debug, Clone, Default)]
struct Group {
    pasid: Option<Pasid>,
    requests: Vec<PageRequestMsg>,
    closed: bool,
}

/// The device's Page Request Interface state: groups, credits, failure.
#[derive(Debug, Clone)]
pub struct Pri {
    groups: Vec<Option<Group>>,
    /// Where the next index search starts (round robin, so an index is not reused at once).
    cursor: u16,
    outstanding: u32,
    epoch: u64,
    failed: bool,
    no_credit: u64,
}

impl Default for Pri {
    fn default() -> Pri {
        Pri::new()
    }
}

impl Pri {
    /// Idle: no groups, no outstanding requests.
    pub fn new() -> Pri {
        Pri {
            groups: vec![None; usize::from(PRG_INDEX_COUNT)],
            cursor: 0,
            outstanding: 0,
            epoch: 0,
            failed: false,
            no_credit: 0,
        }
    }

    /// Outstanding requests (credits in use).
    pub fn outstanding(&self) -> u32 {
        self.outstanding
    }

    /// Allocated PRG indexes, open or waiting for their response.
    pub fn allocated_groups(&self) -> usize {
        self.groups.iter().filter(|g| g.is_some()).count()
    }

    /// How many requests were refused for lack of credit.
    pub fn no_credit_count(&self) -> u64 {
        self.no_credit
    }

    /// Has a Response Failure stopped the interface?
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// Catches up with the config space: after a software reset or enable, drops every group
    /// that has sent requests (their indexes become free; a later response for one is
    /// unexpected) and clears the failure; then sets Stopped once Enable is clear and nothing
    /// is outstanding.
    pub fn sync(&mut self, cfg: &mut ConfigSpace) {
        if cfg.pri_epoch() != self.epoch {
            self.epoch = cfg.pri_epoch();
            self.abandon_all();
            self.failed = false;
        }
        if !cfg.pri_enabled() && self.outstanding == 0 && !cfg.pri_stopped() {
            cfg.pri_set_stopped(true);
        }
    }

    /// Drops every group that has sent requests (the pending request state); allocated groups
    /// that sent nothing stay allocated.
    fn abandon_all(&mut self) {
        for slot in &mut self.groups {
            if slot.as_ref().is_some_and(|g| !g.requests.is_empty()) {
                *slot = None;
            }
        }
        self.outstanding = 0;
    }

    /// Allocates a free PRG index, `None` if all 512 are in use.
    pub fn alloc_group(&mut self) -> Option<u16> {
        for i in 0..PRG_INDEX_COUNT {
            let prgi = (self.cursor + i) % PRG_INDEX_COUNT;
            let slot = &mut self.groups[usize::from(prgi)];
            if slot.is_none() {
                *slot = Some(Group::default());
                self.cursor = (prgi + 1) % PRG_INDEX_COUNT;
                return Some(prgi);
            }
        }
        None
    }

    /// Gives back an allocated index that has sent no request.
    ///
    /// # Errors
    /// [`PriError::BadGroup`] if not allocated, [`PriError::GroupNotEmpty`] if it has requests.
    pub fn release_group(&mut self, prgi: u16) -> Result<(), PriError> {
        let slot = self
            .groups
            .get_mut(usize::from(prgi))
            .ok_or(PriError::BadGroup { prgi })?;
        match slot {
            None => Err(PriError::BadGroup { prgi }),
            Some(g) if !g.requests.is_empty() => Err(PriError::GroupNotEmpty { prgi }),
            Some(_) => {
                *slot = None;
                Ok(())
            }
        }
    }

    /// Builds the next Page Request Message of group `prgi` for the page holding `addr`, taking
    /// one credit. `last` sets LPIG and closes the group.
    ///
    /// # Errors
    /// [`PriError::Stopped`] after a Response Failure; [`PriError::Disabled`] while Enable is
    /// clear; [`PriError::BadGroup`] / [`PriError::GroupClosed`] for an unusable index;
    /// [`PriError::NoAccess`] without READ or WRITE; [`PriError::PasidNotEnabled`],
    /// [`PriError::PasidTooWide`], [`PriError::ExecNotEnabled`], [`PriError::PrivNotEnabled`]
    /// when the PASID prefix cannot carry what is asked; [`PriError::PasidMismatch`] if the
    /// group has another PASID; [`PriError::NoCredit`] when the allocation is used up.
    pub fn request(
        &mut self,
        cfg: &mut ConfigSpace,
        prgi: u16,
        pasid: Option<Pasid>,
        addr: u64,
        access: Access,
        last: bool,
    ) -> Result<PageRequestMsg, PriError> {
        self.sync(cfg);
        if self.failed {
            return Err(PriError::Stopped);
        }
        if !cfg.pri_enabled() {
            return Err(PriError::Disabled);
        }
        let group = self
            .groups
            .get(usize::from(prgi))
            .and_then(Option::as_ref)
            .ok_or(PriError::BadGroup { prgi })?;
        if group.closed {
            return Err(PriError::GroupClosed { prgi });
        }
        if !access.intersects(Access::READ | Access::WRITE) {
            return Err(PriError::NoAccess);
        }
        check_prefix(cfg, pasid, access)?;
        if !group.requests.is_empty() && group.pasid != pasid {
            return Err(PriError::PasidMismatch { prgi });
        }
        let allocation = cfg.pri_allocation();
        if self.outstanding >= allocation {
            self.no_credit += 1;
            return Err(PriError::NoCredit { allocation });
        }
        let msg = PageRequestMsg {
            pasid,
            access,
            page_addr: addr & !0xFFF,
            prgi,
            last,
        };
        if let Some(group) = self.groups[usize::from(prgi)].as_mut() {
            group.pasid = pasid;
            group.requests.push(msg);
            group.closed = last;
        }
        self.outstanding += 1;
        Ok(msg)
    }

    /// Handles a PRG Response Message for `prgi`.
    ///
    /// # Errors
    /// [`PriError::ResponseIgnored`] after a Response Failure (nothing changes);
    /// [`PriError::UnexpectedGroup`] if `prgi` has no outstanding request, after setting UPRGI
    /// in `cfg`.
    pub fn response(
        &mut self,
        cfg: &mut ConfigSpace,
        prgi: u16,
        code: ResponseCode,
    ) -> Result<GroupCompletion, PriError> {
        self.sync(cfg);
        if self.failed {
            return Err(PriError::ResponseIgnored { prgi });
        }
        let slot = self.groups.get_mut(usize::from(prgi));
        let Some(slot) = slot.filter(|s| s.as_ref().is_some_and(|g| !g.requests.is_empty())) else {
            cfg.pri_set_uprgi();
            return Err(PriError::UnexpectedGroup { prgi });
        };
        let group = slot.take().unwrap_or_default();
        // The count was incremented once per stored request.
        let freed = u32::try_from(group.requests.len()).unwrap_or(u32::MAX);
        self.outstanding = self.outstanding.saturating_sub(freed);
        if code == ResponseCode::ResponseFailure {
            cfg.pri_set_response_failure();
            self.failed = true;
            self.abandon_all();
            cfg.pri_set_stopped(true);
        }
        self.sync(cfg);
        Ok(GroupCompletion {
            prgi,
            pasid: group.pasid,
            code,
            requests: group.requests,
        })
    }
}

/// Can the PASID TLP prefix (or its absence) carry `access`?
fn check_prefix(cfg: &ConfigSpace, pasid: Option<Pasid>, access: Access) -> Result<(), PriError> {
    if let Some(p) = pasid {
        if !cfg.pasid_enabled() {
            return Err(PriError::PasidNotEnabled(p));
        }
        if !p.fits_width(u32::from(cfg.pasid_width())) {
            return Err(PriError::PasidTooWide {
                pasid: p,
                width: cfg.pasid_width(),
            });
        }
    }
    if access.is_exec() && !(pasid.is_some() && cfg.pasid_exec_enabled()) {
        return Err(PriError::ExecNotEnabled);
    }
    if access.is_priv() && !(pasid.is_some() && cfg.pasid_priv_enabled()) {
        return Err(PriError::PrivNotEnabled);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
