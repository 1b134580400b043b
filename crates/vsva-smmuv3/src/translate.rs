//! Translation (IHI 0070 §3.2–3.4): StreamID → STE → CD → stage 1 and/or stage 2 walks on
//! vsva-pgtable's VMSAv8-64 formats, through the TLB; walk faults as event records (§7.3.12–16)
//! with the record, stall and terminate rules of the stage that faulted (§3.12).
//!
//! | STE / CD | translation |
//! |---|---|
//! | SMMUEN = 0 | bypass, or abort with GBPA.ABORT; no event (§6.3.14) |
//! | Config abort / bypass | abort / bypass; no event |
//! | stage 1 | VA → PA by the CD's TTB0 or TTB1 (by VA bit 55, §3.4.1); EPDx = 1: F_TRANSLATION without a walk |
//! | stage 2 | IPA → PA by STE.S2TTB |
//! | nested | stage 1's table addresses and output are IPAs translated by stage 2; a stage 2 fault on a stage 1 table is CLASS = TT |
//!
//! Only the 4 KiB granule walks: a CD or STE whose table has another granule (which IDR5 may
//! offer and the lookup accepts) ends the transaction with C_BAD_CD / C_BAD_STE.
//!
//! Fault rules (§3.12): F_TRANSLATION, F_ADDR_SIZE, F_ACCESS and F_PERMISSION of stage 1
//! are recorded when CD.R = 1, of stage 2 when STE.S2R = 1; a transaction that can stall
//! (a platform device's; never a PCIe one) stalls when CD.S (stage 1) or STE.S2S (stage 2) is
//! set, and its event — recorded whatever R says — carries STALL = 1 and the STAG. Otherwise
//! it is terminated: stage 1 faults abort with CD.A = 1 and read as zero / ignore writes
//! with CD.A = 0; stage 2 faults abort. F_WALK_EABT (CLASS = TT) is always recorded and
//! aborts.
//!
//! CLASS (§7.3.12–16): IN for a fault translating the input (stage 1's, or stage 2's on
//! stage 1's output), TT for stage 2 failing on a stage 1 table address and for every walk
//! external abort.

use vsva_mem::{Access, PageSize, PhysMem};
use vsva_pgtable::walk::{LastEntry, TableMap, Translation, WalkObserver};
use vsva_pgtable::{ArmFault, ArmFaultKind, ArmS1, ArmS2, Fault, Format, Perm, Stage, walk};

use crate::lookup::oas_bits;
use crate::spec::event::{self, EventRecord, WalkFault, class, id};
use crate::stream::{Granule, Stage1Config, Stage2Config, StreamConfig, TranslationConfig};
use crate::tlb::{AsidTag, Entry, Key, Regime};
use crate::unit::Smmuv3;

/// A transaction as the SMMU receives it on its slave interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transaction {
    /// StreamID.
    pub sid: u32,
    /// SubstreamID, when the transaction carries one.
    pub ssid: Option<u32>,
    /// Input address.
    pub addr: u64,
    /// Read or write, instruction fetch ([`Access::EXEC`]), privileged ([`Access::PRIV`]).
    pub access: Access,
    /// Whether the requester can wait for CMD_RESUME: a platform device's transaction can,
    /// a PCIe Function's cannot (it is terminated instead of stalled).
    pub stallable: bool,
}

/// A successful translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translated {
    /// The output address.
    pub addr: u64,
    /// The size of the page that maps it (both stages: the smaller).
    pub size: PageSize,
    /// The stage 1 rights ([`Perm::ANY`] without stage 1).
    pub s1: Perm,
    /// The stage 2 rights ([`Perm::ANY`] without stage 2).
    pub s2: Perm,
    /// The intermediate address: stage 1's output (the input without stage 1, the output
    /// without stage 2).
    pub ipa: u64,
}

/// The tag of a stalled transaction: its StreamID and STAG (§3.12.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StallTag {
    /// StreamID.
    pub sid: u32,
    /// STAG, as the event record and CMD_RESUME carry it.
    pub stag: u16,
}

/// Why a transaction got no translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Blocked {
    /// Terminated with an abort (a fault, a configuration error, STE.Config = abort,
    /// GBPA.ABORT, CMD_RESUME abort, CMD_STALL_TERM).
    #[error("transaction aborted")]
    Abort,
    /// Terminated with RAZ/WI: reads return zero, writes are ignored (a stage 1 fault with
    /// CD.A = 0, or CMD_RESUME terminate).
    #[error("transaction terminated (RAZ/WI)")]
    RazWi,
    /// Stalled: the event queue has an event with STALL = 1 and this STAG; the outcome comes
    /// with software's CMD_RESUME or CMD_STALL_TERM ([`Smmuv3::poll_stalled`],
    /// [`Smmuv3::wait_stalled`]).
    #[error("transaction stalled ({0:?})")]
    Stalled(StallTag),
}

/// How a walk failed: the fault and what an event record says about it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WalkFailure {
    pub kind: ArmFaultKind,
    pub s2: bool,
    pub class: u8,
    pub ipa: u64,
    pub fetch_addr: u64,
    pub tt_read: bool,
}

/// The event type of a walk fault (§7.3.12–16).
pub(crate) fn walk_event_id(kind: ArmFaultKind) -> u8 {
    match kind {
        ArmFaultKind::Translation => id::F_TRANSLATION,
        ArmFaultKind::AddressSize => id::F_ADDR_SIZE,
        ArmFaultKind::AccessFlag => id::F_ACCESS,
        ArmFaultKind::Permission => id::F_PERMISSION,
        ArmFaultKind::ExternalAbort => id::F_WALK_EABT,
    }
}

impl WalkFailure {
    fn event_id(&self) -> u8 {
        walk_event_id(self.kind)
    }

    /// A translation fault with no walk (EPDx, §5.4).
    fn no_walk() -> WalkFailure {
        WalkFailure {
            kind: ArmFaultKind::Translation,
            s2: false,
            class: class::IN,
            ipa: 0,
            fetch_addr: 0,
            tt_read: false,
        }
    }
}

/// A stage 1 walk's format: the CD's TCR fields, and CD.AFFD.
pub(crate) type S1Format = ArmS1;
/// A stage 2 walk's format: the STE's S2 fields, and STE.S2AFFD.
pub(crate) type S2Format = ArmS2;

/// The stage 1 format a CD's table selects for `upper` (TTB1).
pub(crate) fn s1_format(s1: &Stage1Config, upper: bool) -> Option<S1Format> {
    let t = if upper { s1.ttb1 } else { s1.ttb0 }?;
    Some(ArmS1 {
        tsz: t.tsz,
        upper,
        pa_bits: s1.ips_bits.min(48),
        ha: s1.ha,
        hd: s1.hd,
        hpd: t.had,
        pan: s1.pan,
        wxn: s1.wxn,
        non_global: false,
        affd: s1.affd,
    })
}

/// The stage 2 format an STE selects.
pub(crate) fn s2_format(s2: &Stage2Config) -> S2Format {
    ArmS2 {
        t0sz: s2.t0sz,
        sl0: s2.sl0,
        pa_bits: s2.ps_bits.min(48),
        ha: s2.ha,
        hd: s2.hd,
        affd: s2.affd,
    }
}

/// A table map that remembers the last descriptor address a walk asked for (the FetchAddr
/// of F_WALK_EABT), for a one-stage walk.
#[derive(Default)]
pub(crate) struct Fetches {
    pub last: u64,
}

impl TableMap for Fetches {
    const DIRECT: bool = false;
    #[inline]
    fn map_table(&mut self, addr: u64, _for_write: bool) -> Result<(u64, u32), Fault> {
        self.last = addr;
        Ok((addr, 0))
    }
}

/// Stage 2 as the table map of a nested stage 1 walk, remembering what it translated.
struct S2Tables<'a> {
    f2: &'a S2Format,
    mem: &'a dyn PhysMem,
    root: u64,
    /// The stage 2 descriptor fetches of the last stage 2 walk.
    fetches: Fetches,
    /// The last stage 1 table access was a write (a hardware flag update).
    for_write: bool,
    /// Where stage 2 put the last stage 1 descriptor asked for.
    last_pa: u64,
}

impl S2Tables<'_> {
    fn translate(&mut self, ipa: u64, access: Access) -> Result<Translation, Fault> {
        walk(
            self.f2,
            self.mem,
            self.root,
            ipa,
            access.difference(Access::PRIV),
            &mut self.fetches,
            &mut (),
        )
    }
}

impl TableMap for S2Tables<'_> {
    const DIRECT: bool = false;
    fn map_table(&mut self, addr: u64, for_write: bool) -> Result<(u64, u32), Fault> {
        self.for_write = for_write;
        let access = if for_write {
            Access::WRITE
        } else {
            Access::READ
        };
        let t = self.translate(addr, access)?;
        self.last_pa = t.output;
        Ok((t.output, t.refs))
    }
}

/// What a walk produced: the translation, the IPA (stage 1's output) and whether the
/// stage 1 leaf is global.
struct Walked {
    t: Translated,
    ipa: u64,
    global: bool,
}

fn failure(f: &Fault, class: u8, fetch_addr: u64, tt_read: bool) -> WalkFailure {
    let a = ArmFault::from_fault(f);
    let s2 = a.stage == Stage::Second;
    WalkFailure {
        kind: a.kind,
        s2,
        class,
        ipa: if s2 { f.input } else { 0 },
        fetch_addr,
        tt_read,
    }
}

/// Walks `input` for `access` under `tc`; `s1f` is the stage 1 format and root (TTB) when
/// stage 1 translates.
fn walk_tables(
    mem: &dyn PhysMem,
    tc: &TranslationConfig,
    s1f: Option<(S1Format, u64)>,
    input: u64,
    access: Access,
) -> Result<Walked, WalkFailure> {
    let s2 = tc.stage2.as_ref().map(|s| (s2_format(s), s.ttb));
    match (s1f, s2) {
        (Some((f1, root)), None) => {
            let mut fetches = Fetches::default();
            let mut leaf = LastEntry::default();
            let t = walk(&f1, mem, root, input, access, &mut fetches, &mut leaf)
                .map_err(|f| failure(&f, class::IN, fetches.last, false))?;
            Ok(Walked {
                t: Translated {
                    addr: t.output,
                    size: t.size,
                    s1: t.rights,
                    s2: Perm::ANY,
                    ipa: t.output,
                },
                ipa: t.output,
                global: !vsva_pgtable::arm::non_global(leaf.entry),
            })
        }
        (None, Some((f2, root))) => {
            let mut fetches = Fetches::default();
            let t = walk(
                &f2,
                mem,
                root,
                input,
                access.difference(Access::PRIV),
                &mut fetches,
                &mut (),
            )
            .map_err(|f| failure(&f, class::IN, fetches.last, false))?;
            Ok(Walked {
                t: Translated {
                    addr: t.output,
                    size: t.size,
                    s1: Perm::ANY,
                    s2: t.rights,
                    ipa: input,
                },
                ipa: input,
                global: false,
            })
        }
        (Some((f1, root)), Some((f2, s2root))) => {
            let mut tables = S2Tables {
                f2: &f2,
                mem,
                root: s2root,
                fetches: Fetches::default(),
                for_write: false,
                last_pa: 0,
            };
            let mut leaf = LastEntry::default();
            let first = walk(
                &f1,
                mem,
                root,
                input,
                access,
                &mut tables,
                &mut Tee(&mut leaf),
            )
            .map_err(|f| {
                if f.stage == Stage::Second {
                    failure(&f, class::TT, tables.fetches.last, !tables.for_write)
                } else {
                    // A stage 1 descriptor read that aborted did so at the address
                    // stage 2 gave for it.
                    failure(&f, class::IN, tables.last_pa, false)
                }
            })?;
            let second = tables
                .translate(first.output, access)
                .map_err(|f| failure(&f, class::IN, tables.fetches.last, false))?;
            Ok(Walked {
                t: Translated {
                    addr: second.output,
                    size: first.size.min(second.size),
                    s1: first.rights,
                    s2: second.rights,
                    ipa: first.output,
                },
                ipa: first.output,
                global: !vsva_pgtable::arm::non_global(leaf.entry),
            })
        }
        // Stage 1 bypassed by S1DSS and no stage 2.
        (None, None) => Ok(Walked {
            t: Translated {
                addr: input,
                size: PageSize::Size4K,
                s1: Perm::ANY,
                s2: Perm::ANY,
                ipa: input,
            },
            ipa: input,
            global: false,
        }),
    }
}

/// Passes a walk's entries to an observer (keeps the nested walk's observer a plain one).
struct Tee<'a>(&'a mut LastEntry);

impl WalkObserver for Tee<'_> {
    #[inline(always)]
    fn entry(&mut self, level: u8, table: u64, index: u64, entry: u64) {
        self.0.entry(level, table, index, entry);
    }
}

/// The outcome of [`Smmuv3::translate_config`] before the fault rules.
pub(crate) enum Xlate {
    Done(Translated),
    Fault(WalkFailure),
    Blocked(Blocked),
}

/// The stage 1 table and walk address for `addr`: TTB0 or TTB1 by bit 55, the top byte
/// replaced by bit 55's copies when that table has TBI (§3.4.1, §5.4).
fn s1_input(s1: &Stage1Config, addr: u64) -> (bool, u64) {
    let upper = addr >> 55 & 1 != 0;
    let tbi = if upper { s1.ttb1 } else { s1.ttb0 }.is_some_and(|t| t.tbi);
    let va = if tbi {
        if upper {
            addr | 0xff00_0000_0000_0000
        } else {
            addr & 0x00ff_ffff_ffff_ffff
        }
    } else {
        addr
    };
    (upper, va)
}

/// The access after STE.PRIVCFG and STE.INSTCFG (§5.2): the attributes the walk checks
/// and the event reports.
#[inline]
fn overridden(tc: &TranslationConfig, mut access: Access) -> Access {
    match tc.privcfg {
        0b10 => access.remove(Access::PRIV),
        0b11 => access.insert(Access::PRIV),
        _ => {}
    }
    if !access.is_write() {
        match tc.instcfg {
            0b10 => access.remove(Access::EXEC),
            0b11 => access.insert(Access::EXEC),
            _ => {}
        }
    }
    access
}

impl Smmuv3 {
    /// Translates `txn` (§3.2): the first-level cache (`microtlb`), else configuration
    /// lookup, then the TLB or a walk, then the fault rules. A first-level hit takes no lock,
    /// allocates nothing and writes no shared cache line; a TLB hit takes no lock but a
    /// configuration cache shard's and a TLB shard's read locks, and allocates nothing.
    ///
    /// # Errors
    /// [`Blocked`]: terminated (abort or RAZ/WI), or stalled.
    #[inline]
    pub fn translate(&self, txn: &Transaction) -> Result<Translated, Blocked> {
        if let Some(t) = self.micro.lookup(txn, &self.epoch) {
            self.micro_hits.incr();
            return Ok(t);
        }
        self.translate_miss(txn)
    }

    /// Everything but a first-level hit (out of line, so the hit path stays small).
    #[inline(never)]
    fn translate_miss(&self, txn: &Transaction) -> Result<Translated, Blocked> {
        // The epoch before anything this translation reads: a first-level entry filled from
        // what it reads hits only while no invalidation has begun since.
        let epoch = self.epoch.load(std::sync::atomic::Ordering::Acquire);
        if let Some(cfg) = self.cached_config(txn.sid, txn.ssid) {
            if let Some(t) = self.tlb_hit(&cfg, txn) {
                self.fill_micro(txn, epoch, &t);
                return Ok(t);
            }
        }
        let _walk = self.walks.begin();
        let epoch = self.tlb.epoch();
        let cfg = self
            .stream_config(txn.sid, txn.ssid)
            .map_err(|_| Blocked::Abort)?;
        match self.translate_config(&cfg, txn, epoch) {
            Xlate::Done(t) => {
                // Only translations through an STE: SMMUEN = 0 and bypass STEs cost nothing
                // to answer again.
                if matches!(cfg, StreamConfig::Translate(_)) {
                    self.fill_micro(txn, epoch, &t);
                }
                Ok(t)
            }
            Xlate::Blocked(b) => Err(b),
            Xlate::Fault(f) => Err(self.fault(&cfg, txn, &f)),
        }
    }

    /// Records a successful translation of `txn` begun at `epoch` in the first-level cache.
    fn fill_micro(&self, txn: &Transaction, epoch: u64, t: &Translated) {
        // This thread's hit counter stripe, claimed here rather than on its first hit.
        self.micro_hits.touch();
        self.micro.fill(txn, epoch, t);
    }

    /// How many translations the TLB holds.
    pub fn tlb_entries(&self) -> usize {
        self.tlb.len()
    }

    /// The TLB's answer for `txn` under `cfg`, if it has one that allows the access.
    #[inline]
    fn tlb_hit(&self, cfg: &StreamConfig, txn: &Transaction) -> Option<Translated> {
        let StreamConfig::Translate(tc) = cfg else {
            return None;
        };
        let access = overridden(tc, txn.access);
        let (regime, asid, input, f1) = match (&tc.stage1, &tc.stage2) {
            (Some(s1), s2) => {
                let (upper, va) = s1_input(s1, txn.addr);
                let f1 = s1_format(s1, upper)?;
                let regime = if s2.is_some() {
                    Regime::Nested
                } else {
                    Regime::S1
                };
                (regime, AsidTag::Asid(s1.asid), va, Some(f1))
            }
            (None, Some(_)) => (Regime::S2, AsidTag::None, txn.addr, None),
            (None, None) => return None,
        };
        let (e, size) = self.tlb.lookup(tc.vmid, regime, asid, input)?;
        let ok1 = f1.is_none_or(|f| f.permits(e.s1, access));
        let ok2 = tc
            .stage2
            .as_ref()
            .is_none_or(|s| s2_format(s).permits(e.s2, access.difference(Access::PRIV)));
        if !(ok1 && ok2) || (access.is_write() && !e.written) {
            return None;
        }
        Some(Translated {
            addr: e.out | (input & size.offset_mask()),
            size,
            s1: e.s1,
            s2: e.s2,
            ipa: (e.ipa & !size.offset_mask()) | (input & size.offset_mask()),
        })
    }

    /// Translates `txn` under `cfg` (a TLB hit or a walk that fills it). The caller holds a
    /// [`vsva_pgtable::in_flight::Walk`] and read the TLB epoch before it resolved `cfg`.
    pub(crate) fn translate_config(
        &self,
        cfg: &StreamConfig,
        txn: &Transaction,
        epoch: u64,
    ) -> Xlate {
        let tc = match *cfg {
            StreamConfig::Disabled { abort: true } | StreamConfig::Abort => {
                return Xlate::Blocked(Blocked::Abort);
            }
            // §3.4: with SMMUEN = 0 an input address beyond the OAS aborts, without an event;
            // an STE bypassing every stage makes it a stage 1 Address Size fault.
            StreamConfig::Disabled { abort: false } if self.beyond_oas(txn.addr) => {
                return Xlate::Blocked(Blocked::Abort);
            }
            StreamConfig::Bypass if self.beyond_oas(txn.addr) => {
                return self.s1_addr_size(txn);
            }
            StreamConfig::Disabled { abort: false } | StreamConfig::Bypass => {
                return Xlate::Done(Translated {
                    addr: txn.addr,
                    size: PageSize::Size4K,
                    s1: Perm::ANY,
                    s2: Perm::ANY,
                    ipa: txn.addr,
                });
            }
            StreamConfig::Translate(tc) => tc,
        };
        if let Some(t) = self.tlb_hit(cfg, txn) {
            return Xlate::Done(t);
        }
        if tc.stage2.is_some_and(|s| s.granule != Granule::K4) {
            self.record(&EventRecord::c_bad_ste(txn.sid, txn.ssid));
            return Xlate::Blocked(Blocked::Abort);
        }
        let (s1f, input, regime, asid) = match &tc.stage1 {
            Some(s1) => {
                let (upper, va) = s1_input(s1, txn.addr);
                let table = if upper { s1.ttb1 } else { s1.ttb0 };
                let Some(table) = table else {
                    // EPD0/EPD1: a translation fault without a walk (§5.4, CD.EPDx).
                    return Xlate::Fault(WalkFailure::no_walk());
                };
                if table.granule != Granule::K4 {
                    self.record(&EventRecord::c_bad_cd(txn.sid, txn.ssid));
                    return Xlate::Blocked(Blocked::Abort);
                }
                let Some(f1) = s1_format(s1, upper) else {
                    return Xlate::Fault(WalkFailure::no_walk());
                };
                let regime = if tc.stage2.is_some() {
                    Regime::Nested
                } else {
                    Regime::S1
                };
                (Some((f1, table.ttb)), va, regime, Some(s1.asid))
            }
            // §3.4: an address bypassing stage 1 beyond the IAS (the OAS: AArch64 tables
            // only) is a stage 1 Address Size fault, before stage 2 sees it.
            None if self.beyond_oas(txn.addr) => return self.s1_addr_size(txn),
            None => (None, txn.addr, Regime::S2, None),
        };
        if s1f.is_none() && tc.stage2.is_none() {
            return Xlate::Done(Translated {
                addr: txn.addr,
                size: PageSize::Size4K,
                s1: Perm::ANY,
                s2: Perm::ANY,
                ipa: txn.addr,
            });
        }
        let access = overridden(&tc, txn.access);
        let w = match walk_tables(self.mem.as_ref(), &tc, s1f, input, access) {
            Ok(w) => w,
            Err(f) => {
                self.tlb.count_walk();
                return Xlate::Fault(f);
            }
        };
        let size = w.t.size;
        let key = Key {
            vmid: tc.vmid,
            regime,
            asid: match asid {
                Some(_) if w.global => AsidTag::Global,
                Some(a) => AsidTag::Asid(a),
                None => AsidTag::None,
            },
            page: input & !size.offset_mask(),
            size,
        };
        let entry = Entry {
            out: w.t.addr & !size.offset_mask(),
            s1: w.t.s1,
            s2: w.t.s2,
            ipa: w.ipa & !size.offset_mask(),
            // Without hardware dirty state a read walk serves writes too.
            written: access.is_write()
                || !(tc.stage1.is_some_and(|s| s.hd) || tc.stage2.is_some_and(|s| s.hd)),
        };
        self.tlb.fill(key, entry, epoch);
        Xlate::Done(w.t)
    }

    /// Is `addr` beyond the OAS (§3.4; also the IAS, as only AArch64 tables are offered)?
    fn beyond_oas(&self, addr: u64) -> bool {
        addr.checked_shr(oas_bits(&self.cfg) as u32)
            .is_some_and(|high| high != 0)
    }

    /// A stage 1 Address Size fault on an address that bypassed stage 1 (§3.4): terminated
    /// with an abort and F_ADDR_SIZE recorded — there is no CD whose R or S could say
    /// otherwise.
    fn s1_addr_size(&self, txn: &Transaction) -> Xlate {
        let a = event::Access {
            sid: txn.sid,
            ssid: txn.ssid,
            addr: txn.addr,
            read: !txn.access.is_write(),
            instruction: txn.access.is_exec(),
            privileged: txn.access.is_priv(),
        };
        let w = WalkFault {
            s2: false,
            class: class::IN,
            stag: None,
            ipa: 0,
            tt_read: false,
            fetch_addr: 0,
        };
        self.record(&EventRecord::walk_fault(id::F_ADDR_SIZE, &a, &w));
        Xlate::Blocked(Blocked::Abort)
    }

    /// Applies the fault rules (§3.12) to a walk fault of `txn` under `cfg`: records, stalls
    /// or terminates.
    pub(crate) fn fault(&self, cfg: &StreamConfig, txn: &Transaction, f: &WalkFailure) -> Blocked {
        let StreamConfig::Translate(tc) = cfg else {
            return Blocked::Abort;
        };
        let access = overridden(tc, txn.access);
        let a = event::Access {
            sid: txn.sid,
            ssid: txn.ssid,
            addr: txn.addr,
            read: !access.is_write(),
            instruction: access.is_exec(),
            privileged: access.is_priv(),
        };
        let mut w = WalkFault {
            s2: f.s2,
            class: f.class,
            stag: None,
            ipa: f.ipa,
            tt_read: f.tt_read,
            fetch_addr: f.fetch_addr,
        };
        if f.kind == ArmFaultKind::ExternalAbort {
            // The abort was on a translation table access: CLASS = TT (§7.3.12), whichever
            // stage read the table.
            w.class = class::TT;
            self.record(&EventRecord::walk_fault(id::F_WALK_EABT, &a, &w));
            return Blocked::Abort;
        }
        let (stall, record, abort) = if f.s2 {
            let s2 = tc.stage2.as_ref();
            (
                s2.is_some_and(|s| s.stall),
                s2.is_some_and(|s| s.record),
                true,
            )
        } else {
            let s1 = tc.stage1.as_ref();
            (
                s1.is_some_and(|s| s.stall),
                s1.is_some_and(|s| s.record),
                s1.is_none_or(|s| s.abort),
            )
        };
        // With IDR5.STALL_MAX transactions stalled already (§6.3.6), a fault that could
        // stall is terminated as one that cannot.
        let max = self.cfg.idr5().stall_max() as usize;
        if let Some(tag) = (stall && txn.stallable)
            .then(|| self.stalls.hold(*txn, max))
            .flatten()
        {
            w.stag = Some(tag.stag);
            if self.record(&EventRecord::walk_fault(f.event_id(), &a, &w)) {
                return Blocked::Stalled(tag);
            }
            // The stall's event could not be recorded: software would never resume it, so it
            // is terminated (§3.12.2).
            self.stalls.take(tag);
            return Blocked::Abort;
        }
        if record {
            self.record(&EventRecord::walk_fault(f.event_id(), &a, &w));
        }
        if abort {
            Blocked::Abort
        } else {
            Blocked::RazWi
        }
    }
}
