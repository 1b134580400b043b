//! vsva-vtd: the Intel VT-d scalable-mode remapping unit as a hardware model.
//!
//! The modules (private but `spec` and the `fuzz` harness; what other crates use is re-exported
//! below):
//!
//! | module | what |
//! |---|---|
//! | [`spec`] | the spec's types: registers, root/context/PASID entries, fault reasons |
//! | `config` | what a unit advertises (CAP/ECAP), and clamping a guest's to a host's |
//! | `unit` | the register file and the translation entry point ([`Vtd`]) |
//! | `request` | the unit's answers to a memory request: [`Translated`], [`Blocked`] |
//! | `lookup` | root -> context -> PASID directory -> PASID entry, with every check |
//! | `cache` | context/PASID-entry cache and IOTLB, sharded, invalidated by descriptors |
//! | `microtlb` | lock-free first-level cache of complete request results |
//! | `translate` | first stage, second stage, nested, pass-through; fault mapping |
//! | `fault_log` | fault recording registers and the fault event |
//! | `inval_queue` | the invalidation queue: descriptors, waits, device-TLB, errors |
//! | `ats` | ATS translation requests and completions |
//! | `port` | the unit as the Functions' PCIe upstream port ([`vsva_pcie::Upstream`]) |
//! | `prq` | the page request queue |
//! | `interrupt` | event control registers (MSIs go to a [`vsva_pcie::MsiSink`]) |
//!
//! The PCIe transactions (requests, completions, invalidations, page requests) and the
//! endpoints behind the unit ([`vsva_pcie::Downstream`]) are vsva-pcie's.
//!
//! Advertised capabilities (defaults of [`VtdConfig`]):
//!
//! | capability | value |
//! |---|---|
//! | translation modes | scalable mode only (legacy tables are not modelled) |
//! | PGTT | first stage, second stage, nested, pass-through |
//! | PASID width | 20 bits |
//! | second stage | 3/4/5 levels, MGAW 57, 2 MiB and 1 GiB pages, A/D |
//! | first stage | 4/5 levels, 1 GiB pages, EAFE |
//! | requests | supervisor (SRS); execute requests off by default (ERE/SSEE reserved) |
//! | page-walk coherency | SMPWCS: walks snoop only with PWSNP = 1; A/D updates need it |
//! | fault recording | 8 records at 0x220; FPD suppresses the qualified reasons (§7.1.3) |
//!
//! The hardware model only: it imports no OS-side crate. Its driver (the OS side, Linux
//! `drivers/iommu/intel`) is the vsva-vtd-driver crate, which reaches the unit through its
//! registers and memory only and uses [`spec`] for the hardware interface.

#![forbid(unsafe_code)]

mod ats;
mod backend;
mod cache;
mod config;
mod fault_log;
pub mod fuzz;
mod interrupt;
mod inval_queue;
mod lookup;
mod microtlb;
mod port;
mod prq;
mod request;
pub mod spec;
mod translate;
mod unit;

pub use ats::AtsTranslated;
pub use backend::VirtualBackend;
pub use config::VtdConfig;
pub use interrupt::EventRegs;
pub use inval_queue::StatsSnapshot;
pub use lookup::{LookupFault, Resolved};
pub use port::VtdPort;
pub use request::{Blocked, Translated};
pub use unit::{VERSION, Vtd};
