//! Types of the Arm System Memory Management Unit Architecture Specification, SMMU
//! architecture version 3 (IHI 0070; section numbers are those of issue G.b): registers, in-memory structures (STE, CD, level-1
//! descriptors), commands, event records and PRI queue entries. Types only — the behaviour
//! is in the modules above.
//!
//! Bit positions are those of Linux `drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h`; fields
//! Linux does not name come from the spec's structure figures as QEMU
//! (`hw/arm/smmuv3-internal.h`) encodes them, or from the spec's text where neither does.
//! Each item cites the IHI 0070 section it implements.
//!
//! Two places where Linux's names and the spec differ: CMD_PRI_RESP's Resp encodings (Linux
//! calls 0b00 DENY and 0b01 FAIL; §4.5.2 defines 0b00 as ResponseFailure and 0b01 as
//! InvalidRequest — [`cmd::PriResp`] follows the spec), and the TLBI SCALE field (Linux
//! masks bits 24:20, §4.4.1.1 gives 25:20 — the model follows Linux, so bit 25 is RES0).

pub mod cd;
pub mod cmd;
pub mod event;
pub mod registers;
pub mod ste;
