//! vsva-pcie: the PCIe vocabulary of PASID, ATS and PRI (PCIe Base 6.0) shared by endpoints
//! and IOMMUs, and the endpoint (device) side of it.
//!
//! The pieces a DMA device model needs to take part in Shared Virtual Addressing, and that an
//! IOMMU model talks to through PCIe messages:
//!
//! * [`config`] — the 4 KiB configuration space with the PASID, ATS and Page Request extended
//!   capabilities, with the spec's RO/RW/RW1C register rules.
//! * [`atc`] — the Address Translation Cache (device TLB): translation completions in,
//!   lookups on the DMA path, Invalidate Requests out.
//! * [`ordering`] — the ATC shared between a Function's DMA engine and the invalidations
//!   the host sends, with §10.3.1's ordering: no stale completion cached, no invalidation
//!   completed before the accesses that used the old translation.
//! * [`pri`] — the Page Request Interface: credits, Page Request Group indexes, Page Request
//!   Messages and PRG Responses.
//! * [`transaction`] — the transactions every Function and every IOMMU share: memory
//!   requests (Requester ID, PASID prefix, AT field), Translation Completions, Invalidate
//!   Requests, Page Requests.
//! * [`fuzz`] — a byte-stream interpreter that drives a configuration space against a model
//!   of its register tables (the cargo-fuzz target `pcie_config` and a seeded test run it).
//! * [`mmio`] — the register window a driver reaches a device through ([`Mmio`]).
//! * [`msi`] — Message Signalled Interrupts as IOMMU models raise them ([`MsiSink`]).
//! * [`port`] — the two directions: [`Upstream`] (what a Function sends to its IOMMU, which
//!   each IOMMU model implements) and [`Downstream`] (what the IOMMU sends to the Functions);
//!   and [`PlatformUpstream`], the same for a platform (non-PCIe) master whose transactions
//!   an IOMMU may stall (an SMMU's StreamID/SubstreamID, no ATS or PRI).
//!
//! # What is modelled
//!
//! | feature | spec | modelled | not modelled |
//! |---|---|---|---|
//! | PASID capability | §7.8.8 | Max PASID Width 1..=20, Execute and Privileged Mode (supported/enable) | Translated Requests with PASID |
//! | ATS capability | §10.5.1 | Invalidate Queue Depth, Page Aligned Request, Global Invalidate Supported, STU, Enable | Relaxed Ordering, Memory Attributes |
//! | Page Request capability | §10.5.2 | Enable, Reset, Response Failure, UPRGI, Stopped, PRG Response PASID Required, capacity/allocation | |
//! | ATC | §10.2, §10.3 | 4 KiB/2 MiB/1 GiB entries per (PASID, privilege); R/W/Exe/Priv/Global; FIFO eviction; range, PASID and global invalidation; S-bit range encoding | U (untranslated-only), N (no-snoop), AMA, invalidation completion/ITag bookkeeping |
//! | PRI | §10.4 | credits, 512 PRG indexes, LPIG, Success/Invalid Request/Response Failure, UPRGI, stop on failure | Stop Markers, the TLP headers (Requester ID, routing) |
//!
//! # Glossary
//! ATC: Address Translation Cache (the device's IOTLB) · STU: Smallest Translation Unit ·
//! PRG: Page Request Group · PRGI: PRG index · LPIG: Last Page In Group · UPRGI: Unexpected
//! PRG Index · RF: Response Failure.

#![forbid(unsafe_code)]

#[cfg(target_endian = "big")]
compile_error!("vsva models little-endian hardware and only builds on little-endian hosts");

pub mod atc;
pub mod config;
pub mod fuzz;
pub mod mmio;
pub mod msi;
pub mod ordering;
pub mod port;
pub mod pri;
pub mod transaction;

pub use atc::{Atc, AtcEntry, AtcError, AtcLookup, AtcStats, AtsRange, TranslationFlags};
pub use config::{ConfigError, ConfigOptions, ConfigSpace};
pub use mmio::Mmio;
pub use msi::{MsiLog, MsiSink};
pub use ordering::{AtcAccess, AtsHook, AtsPoint, Fill, OrderedAtc, TranslationTicket};
pub use port::{
    Downstream, GroupResponse, NoDevices, PlatformDma, PlatformUpstream, RecordingDevices, Refused,
    StallToken, Upstream,
};
pub use pri::{GroupCompletion, PageRequestMsg, Pri, PriError, ResponseCode};
pub use transaction::{
    AtsInvalidation, AtsInvalidationError, PageRequest, PageRequestOutcome, Request, RequestKind,
    TranslationCompletion,
};
