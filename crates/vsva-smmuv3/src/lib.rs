//! vsva-smmuv3: the Arm SMMUv3 (IHI 0070) as a hardware model: the register file, the
//! command, event and PRI queues, configuration lookup (stream table, STE and CD validation,
//! configuration cache), and translation — stage 1, stage 2 and nested walks on
//! vsva-pgtable's VMSAv8-64 formats through a TLB, faults as events, the stall model, ATS —
//! with the unit as the PCIe upstream port of the Functions behind it ([`Smmuv3Port`]).
//!
//! The modules (private but `spec` and the `fuzz` harness; what other crates use is re-exported below):
//!
//! | module | what |
//! |---|---|
//! | [`spec`] | the spec's types: registers, STE, CD, level-1 descriptors, commands, events, PRI entries |
//! | `config` | what an SMMU advertises ([`Smmuv3Config`] -> IDR0/1/3/5) |
//! | `unit` | the register file and the lookup entry point ([`Smmuv3`]) |
//! | `queue` | circular queue arithmetic: index, wrap bit, full/empty |
//! | `cmdq` | the command queue: consumption, CERROR_ILL/ABT/ATC_INV_SYNC, CMD_SYNC |
//! | `evtq` | the event queue: records, overflow, its interrupt |
//! | `priq` | the PRI queue: page requests, overflow, automatic PRG Responses |
//! | `lookup` | StreamID -> STE -> CD with every C_BAD_* / F_*_FETCH rule |
//! | `stream` | the decoded configuration ([`StreamConfig`]) and [`ConfigFault`] |
//! | `cache` | the configuration cache, emptied by CMD_CFGI_* |
//! | `hooks` | what the command queue hands a translation layer ([`TranslationHooks`]; the unit implements them itself) |
//! | `translate` | [`Smmuv3::translate`]: STE/CD → stage 1 / stage 2 / nested walks, fault rules (record, stall, terminate) |
//! | `tlb` | the TLB: entries tagged by VMID, ASID or global; CMD_TLBI_* |
//! | `microtlb` | lock-free first-level cache of complete translation results, in front of the configuration cache and the TLB |
//! | `counter` | per-thread hit counters |
//! | `stall` | stalled transactions: CMD_RESUME, CMD_STALL_TERM, [`Smmuv3::poll_stalled`] / [`Smmuv3::wait_stalled`] |
//! | `ats` | ATS Translation Requests ([`Smmuv3::ats_translate`]) and translated traffic ([`Smmuv3::translated`]) |
//! | `port` | [`Smmuv3Port`]: the unit as [`vsva_pcie::Upstream`] |
//! | `interrupt` | the *_IRQ_CFG registers; MSIs go to a [`vsva_pcie::MsiSink`] |
//! | `virt` | the virtual role: a guest's vSMMU telling its VMM ([`VirtualBackend`], [`Smmuv3::set_backend`], [`Smmuv3::guest_ste`]) |
//! | [`fuzz`] | a byte-stream interpreter for fuzzing: register, table, queue and device inputs, with the unit's invariants checked after every step |
//!
//! What is wired:
//!
//! | piece | state |
//! |---|---|
//! | registers: IDR0–5, IIDR, AIDR, CR0/CR0ACK, CR1, CR2, GBPA (Update protocol), IRQ_CTRL/ACK, GERROR/GERRORN, *_IRQ_CFG0–2, STRTAB_BASE/_CFG, CMDQ/EVENTQ/PRIQ BASE/PROD/CONS (page 1 for the output queues) | done, with each register's guard (SMMUEN, queue enables, IRQ enables) |
//! | CMD_CFGI_STE / STE_RANGE / ALL / CD / CD_ALL | done (configuration cache) |
//! | CMD_SYNC (none, MSI write, SEV counted); CERROR_ILL / ABT / ATC_INV_SYNC; GERROR.CMDQ_ERR acknowledge | done |
//! | CMD_ATC_INV, CMD_PRI_RESP | done: ATS Invalidate Requests and PRG Responses through [`vsva_pcie::Downstream`] |
//! | CMD_TLBI_NH_ALL / NH_ASID / NH_VA / NH_VAA (leaf, TG/NUM/SCALE ranges), S12_VMALL, S2_IPA, NSNH_ALL | done: the TLB (then also handed to the [`TranslationHooks`] given with [`Smmuv3::with_hooks`]) |
//! | CMD_RESUME (retry, abort, terminate), CMD_STALL_TERM | done: stalled transactions |
//! | CMD_SYNC | waits for every walk and configuration lookup begun before it |
//! | CMD_PREFETCH_* | hints, ignored |
//! | event queue: records, wrap, overflow (OVFLG), EVTQ_ABT_ERR, MSI; builders for every event type | done ([`Smmuv3::record`] for layers above) |
//! | PRI queue: page requests at PROD, overflow, automatic PRG Responses (§8) | done ([`Smmuv3::page_request`], reached through [`Smmuv3Port`]) |
//! | configuration lookup: linear and 2-level stream and CD tables, `SteIllegal()`/`CdIllegal()` rules, S1DSS, SubstreamID rules, GBPA while disabled; nested CD tables read through stage 2 (a fault there is CLASS = CD) | done ([`Smmuv3::stream_config`]) |
//! | translation: stage 1, stage 2, nested (4 KiB granule), TTB0/TTB1, TBI, EPDx, HA/HD, AFFD, PAN, WXN, HAD, STE.PRIVCFG/INSTCFG; F_TRANSLATION / F_ADDR_SIZE / F_ACCESS / F_PERMISSION / F_WALK_EABT with stage, CLASS, IPA, TTRnW; CD.R, STE.S2R, CD.A | done ([`Smmuv3::translate`]) |
//! | TLB: per (VMID, ASID) and global entries, per regime; in front, a lock-free first-level cache of complete results emptied by every invalidation; no lock, no allocation, no shared write on a hit | done |
//! | stall model: CD.S / STE.S2S, STAG, STALL events, resume / terminate | done, for transactions that can stall ([`Transaction::stallable`]) |
//! | ATS: Translation Requests by STE.EATS (F_BAD_ATS_TREQ), translated traffic by CR0.ATSCHK (F_TRANSL_FORBIDDEN) | done |
//! | [`vsva_pcie::Upstream`] port | done ([`Smmuv3Port`]) |
//! | virtual role (a guest's vSMMU) | done: CMD_CFGI_* / TLBI_* / RESUME / STALL_TERM and CMD_SYNC to a [`VirtualBackend`] before the next command; SMMUEN / GBPA.ABORT changes before the write returns; [`Smmuv3::guest_ste`]; events and page requests injected with [`Smmuv3::record`] / [`Smmuv3::page_request`]; [`Smmuv3Config::from_registers`] / [`Smmuv3Config::clamp_to`] |
//! | 16 KiB / 64 KiB translation granules, UWXN (AArch32; AArch64's implicit PXN of EL0-writable memory applies), stalls of CLASS = CD faults, E_PAGE_REQUEST, MemAttr/MAIR | not modelled (a non-4 KiB table ends the transaction with C_BAD_CD / C_BAD_STE) |
//!
//! Where the spec lets an implementation choose (CONSTRAINED UNPREDICTABLE, IMPLEMENTATION
//! DEFINED), this model takes the SMMUv3.2 choice where one is mandated and otherwise the
//! strict one: RES0 command fields set are CERROR_ILL; writes to guarded registers are
//! ignored; out-of-range TxSZ/S2T0SZ are ILLEGAL.
//!
//! Advertised capabilities (defaults of [`Smmuv3Config`]):
//!
//! | capability | value |
//! |---|---|
//! | version | SMMUv3.2 (AIDR 0x2) |
//! | StreamID / SubstreamID | 16 / 20 bits |
//! | tables | linear and 2-level stream tables and CD tables |
//! | stages | 1 and 2, AArch64 tables, little-endian only |
//! | OAS, granules | 48 bits; 4 KiB |
//! | ATS, PRI, HTTU | yes, yes, access and dirty |
//! | stall model | stall and terminate (0b00) |
//! | queues | 256 commands, 128 events, 128 page requests |
//! | interrupts | MSI only (no wired lines); SEV |
//! | IDR3 | HAD, XNX, PPS, FWB, RIL, BBML 1 |
//! | security | Non-secure only: no Secure state, no EL2 (HYP), no BTM, no ATOS, no VMS, no MPAM, no DPT |
//! | ID registers at 0xfd0–0xffc | read as zero |
//!
//! The hardware model only: it imports no OS-side crate (the demo device is a test-only
//! dependency). An SMMUv3 driver reaches it through
//! [`Smmuv3::mmio_read`] / [`Smmuv3::mmio_write`] (it implements [`vsva_pcie::Mmio`], as every model does) and
//! memory, and uses [`spec`] for the hardware interface.

#![forbid(unsafe_code)]

#[cfg(target_endian = "big")]
compile_error!("vsva models little-endian hardware and only builds on little-endian hosts");

mod ats;
mod cache;
mod cmdq;
mod config;
mod counter;
mod evtq;
pub mod fuzz;
mod hooks;
mod interrupt;
mod lookup;
mod microtlb;
mod port;
mod priq;
mod queue;
pub mod spec;
mod stall;
mod stream;
mod tlb;
mod translate;
mod unit;
mod virt;

pub use ats::AtsRefused;
pub use cache::CacheStats;
pub use config::{AIDR, Httu, Smmuv3Config, StallModel};
pub use hooks::{NoTranslation, TranslationHooks};
pub use port::Smmuv3Port;
pub use stream::{
    ConfigFault, Granule, Stage1Config, Stage2Config, StreamConfig, TableConfig, TranslationConfig,
};
pub use tlb::TlbStats;
pub use translate::{Blocked, StallTag, Transaction, Translated};
pub use unit::{Smmuv3, Smmuv3Stats};
pub use virt::{GlobalState, Refused, VirtualBackend};
