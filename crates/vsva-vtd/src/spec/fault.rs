//! Scalable-mode fault reasons (VT-d §7.1.3, the table of non-recoverable fault conditions,
//! and Appendix A "Non-Recoverable Fault Reason Encodings"; names as Linux's
//! `dma_remap_sm_fault_reasons[]` decodes them, codes and condition numbers as VirtualBox's
//! `VTDADDRFAULT` lists them) and the fault record (§11.4.14, Fault Recording Registers).
//!
//! Each reason carries the table's condition code (RTA.n, SRT.n, SCT.n, SPD.n, SPT.n, SFS.n,
//! SSS.n, SGN.n) and its qualification: a *qualified* fault is not recorded when a context,
//! PASID-directory or PASID-table entry used on the way (present or not) has FPD set.

/// A non-recoverable fault reason, with the spec's condition code in each doc comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FaultReason {
    /// RTA.1: invalid root-table address or mode (reserved TTM, scalable mode unsupported).
    RootTableAddress = 0x30,
    /// RTA.2: request with PASID while RTADDR.TTM is legacy.
    LegacyModeWithPasid = 0x31,
    /// RTA.3: page request while RTADDR.TTM is legacy.
    LegacyModePageRequest = 0x32,
    /// RTA.4: request blocked by abort-DMA mode (RTADDR.TTM = 11b with ECAP.ADMS). Never
    /// raised: the model does not advertise ADMS, so TTM 11b is an invalid mode (RTA.1).
    AbortDmaMode = 0x33,
    /// SRT.1: error accessing the root entry.
    RootAccess = 0x38,
    /// SRT.2: present bit of the root-entry half is clear.
    RootNotPresent = 0x39,
    /// SRT.3: reserved bit set in the root entry.
    RootReserved = 0x3a,
    /// SCT.1: error accessing the context entry.
    ContextAccess = 0x40,
    /// SCT.2: context entry not present.
    ContextNotPresent = 0x41,
    /// SCT.3: reserved bit set in the context entry (including fields of capabilities the
    /// unit does not report: DTE without DT, PRE without PRS, RID_PASID without RPS).
    ContextReserved = 0x42,
    /// SCT.4: invalid context entry (RID_PASID beyond the PASID directory PDTS sizes).
    ContextInvalid = 0x43,
    /// SCT.5: translation or translated request while DTE is clear.
    ContextDteClear = 0x44,
    /// SCT.6: request with PASID while PASIDE is clear.
    ContextPasidDisabled = 0x45,
    /// SCT.7: PASID beyond the PASID directory size (PDTS).
    ContextPasidTooLarge = 0x46,
    /// SCT.8: page request while PRE is clear.
    ContextPreClear = 0x47,
    /// SCT.9: RID_PASID field error: a value beyond the PASIDs the unit supports (ECAP.PSS).
    ContextRidPasid = 0x48,
    /// SPD.1: error accessing the PASID-directory entry.
    PasidDirAccess = 0x50,
    /// SPD.2: PASID-directory entry not present.
    PasidDirNotPresent = 0x51,
    /// SPD.3: reserved bit set in the PASID-directory entry.
    PasidDirReserved = 0x52,
    /// SPT.1: error accessing the PASID-table entry.
    PasidAccess = 0x58,
    /// SPT.2: PASID-table entry not present.
    PasidNotPresent = 0x59,
    /// SPT.3: reserved bit set in the PASID-table entry (including fields of capabilities the
    /// unit does not report: SSADE without SSADS, AW/SSPTPTR/SSADE without SSTS, ...).
    PasidReserved = 0x5a,
    /// SPT.4: invalid PASID-table entry (PGTT, AW or FSPM the hardware does not support).
    PasidInvalid = 0x5b,
    /// SPT.5: execute request while ERE is clear.
    PasidEreClear = 0x5c,
    /// SPT.6: privileged request while SRE is clear.
    PasidSreClear = 0x5d,
    /// SFS.1: error accessing a first-stage entry.
    FsAccess = 0x70,
    /// SFS.2: first-stage entry not present.
    FsNotPresent = 0x71,
    /// SFS.3: reserved bit set in a first-stage entry.
    FsReserved = 0x72,
    /// SFS.4: error accessing the first-stage root (FSPTPTR).
    FsRootAccess = 0x73,
    /// SFS.5: nested: a first-stage structure's GPA is beyond the second stage's width.
    NestedBeyondWidth = 0x74,
    /// SFS.6: nested: no second-stage read permission for the first-stage root.
    NestedRootRead = 0x75,
    /// SFS.7: nested: no second-stage read permission for a first-stage entry.
    NestedEntryRead = 0x76,
    /// SFS.8: nested: no second-stage write permission for a first-stage A/D update.
    NestedEntryWrite = 0x77,
    /// SSS.1: error accessing a second-stage entry.
    SsAccess = 0x78,
    /// SSS.2: second-stage entry not present (R = W = 0).
    SsNotPresent = 0x79,
    /// SSS.3: reserved bit set in a second-stage entry.
    SsReserved = 0x7a,
    /// SSS.4: invalid second-stage root (SSPTPTR).
    SsRootInvalid = 0x7b,
    /// SSS.5: a second-stage A/D update is needed (SSADE = 1) but page walks do not snoop
    /// (PWSNP = 0).
    SsAdNonSnooped = 0x7c,
    /// SSS.6: a needed second-stage A/D update could not be made.
    SsAdUpdateFailed = 0x7d,
    /// SGN.1: first-stage input address not canonical.
    NonCanonical = 0x80,
    /// SGN.2: user request to a supervisor page (U/S = 0 in the first stage).
    UserSupervisor = 0x81,
    /// SGN.3: execute request without execute permission.
    ExecDenied = 0x82,
    /// SGN.4: an address beyond the host address width; raised for a pass-through input (a
    /// host address). The table lists further SGN.4 conditions (VirtualBox's
    /// `VTDADDRFAULT_SGN_4_0..2`); above-HAW bits of table entries are reserved bits instead.
    PassThroughBeyondHaw = 0x83,
    /// SGN.5: second-stage input address beyond min(MGAW, AGAW of the entry's AW).
    SsInputBeyondWidth = 0x84,
    /// SGN.6: write request without write permission.
    WriteDenied = 0x85,
    /// SGN.7: read request without read permission.
    ReadDenied = 0x86,
    /// SGN.8: untranslated or translation request whose result is in the interrupt range
    /// 0xFEE0_0000..=0xFEEF_FFFF.
    InterruptAddress = 0x87,
    /// SGN.9 (0x88, VirtualBox `VTDADDRFAULT_SGN_9`): a general condition of a feature the
    /// model does not have; never raised.
    General9 = 0x88,
    /// SGN.10 (0x89, VirtualBox `VTDADDRFAULT_SGN_10`): likewise; never raised.
    General10 = 0x89,
    /// SFS.9: a first-stage A/D update is needed but page walks do not snoop (PWSNP = 0).
    FsAdNonSnooped = 0x90,
    /// SFS.10: a needed first-stage A/D update could not be made.
    FsAdUpdateFailed = 0x91,
}

impl FaultReason {
    /// Every scalable-mode reason the spec defines, in code order.
    pub const ALL: [FaultReason; 51] = {
        use FaultReason::*;
        [
            RootTableAddress,
            LegacyModeWithPasid,
            LegacyModePageRequest,
            AbortDmaMode,
            RootAccess,
            RootNotPresent,
            RootReserved,
            ContextAccess,
            ContextNotPresent,
            ContextReserved,
            ContextInvalid,
            ContextDteClear,
            ContextPasidDisabled,
            ContextPasidTooLarge,
            ContextPreClear,
            ContextRidPasid,
            PasidDirAccess,
            PasidDirNotPresent,
            PasidDirReserved,
            PasidAccess,
            PasidNotPresent,
            PasidReserved,
            PasidInvalid,
            PasidEreClear,
            PasidSreClear,
            FsAccess,
            FsNotPresent,
            FsReserved,
            FsRootAccess,
            NestedBeyondWidth,
            NestedRootRead,
            NestedEntryRead,
            NestedEntryWrite,
            SsAccess,
            SsNotPresent,
            SsReserved,
            SsRootInvalid,
            SsAdNonSnooped,
            SsAdUpdateFailed,
            NonCanonical,
            UserSupervisor,
            ExecDenied,
            PassThroughBeyondHaw,
            SsInputBeyondWidth,
            WriteDenied,
            ReadDenied,
            InterruptAddress,
            General9,
            General10,
            FsAdNonSnooped,
            FsAdUpdateFailed,
        ]
    };

    /// The 8-bit code recorded in FRCD.FR.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The reason a recorded code stands for, if the spec defines it.
    pub fn from_code(code: u8) -> Option<FaultReason> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The table's condition code ("SCT.3", "SSS.5").
    pub fn mnemonic(self) -> String {
        let code = self.code();
        let (group, first) = match code {
            0x30..=0x37 => ("RTA", 0x30),
            0x38..=0x3f => ("SRT", 0x38),
            0x40..=0x4f => ("SCT", 0x40),
            0x50..=0x57 => ("SPD", 0x50),
            0x58..=0x6f => ("SPT", 0x58),
            0x70..=0x77 => ("SFS", 0x70),
            0x78..=0x7f => ("SSS", 0x78),
            0x90..=0x9f => ("SFS", 0x90 - 8),
            _ => ("SGN", 0x80),
        };
        format!("{group}.{}", code - first + 1)
    }

    /// May a set FPD (fault processing disable) bit suppress recording this fault?
    ///
    /// §7.1.3's table marks every condition met in or below an entry that holds FPD as
    /// qualified: the context entry's own faults (not present, reserved, invalid, request
    /// checks), those of the PASID directory and table entries, every first- and second-stage
    /// walk fault (including access errors, reserved bits and A/D updates) and the general
    /// ones (SGN.x). Unqualified, always recorded: faults before any FPD is known (RTA.x,
    /// SRT.x, SCT.1) and the errors accessing a PASID-directory or PASID-table entry (SPD.1,
    /// SPT.1).
    pub const fn is_qualified(self) -> bool {
        use FaultReason::*;
        !matches!(
            self,
            RootTableAddress
                | LegacyModeWithPasid
                | LegacyModePageRequest
                | AbortDmaMode
                | RootAccess
                | RootNotPresent
                | RootReserved
                | ContextAccess
                | PasidDirAccess
                | PasidAccess
        )
    }
}

/// What a request was, for the fault record's type bits (§11.4.14: T1 = bit 126 set for
/// reads, T2 = bit 92 set for translation requests; AT = address type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestType {
    /// A DMA write (or atomic).
    Write,
    /// A DMA read.
    Read,
    /// An ATS translation request.
    Translation,
}

/// A primary fault record (§11.4.14), 128 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FaultRecord {
    /// Faulting page address (bits 63:12 of the input address).
    pub addr: u64,
    /// Requester ID.
    pub sid: u16,
    /// PASID, if the request carried one.
    pub pasid: Option<u32>,
    /// Privileged-mode requested.
    pub privileged: bool,
    /// Execute requested.
    pub execute: bool,
    /// The request type.
    pub kind: RequestType,
    /// Address type of the request (AT: 00 untranslated, 01 translation request, 10 translated).
    pub at: u8,
    /// Reason.
    pub reason: FaultReason,
}

impl FaultRecord {
    /// Encodes the record as the two qwords of an FRCD register, with F (bit 127) set.
    pub fn encode(&self) -> (u64, u64) {
        let lo = self.addr & !0xfff;
        let mut hi = self.sid as u64;
        if self.kind == RequestType::Translation {
            hi |= 1 << 28; // T2
        }
        if self.privileged {
            hi |= 1 << 29;
        }
        if self.execute {
            hi |= 1 << 30;
        }
        if let Some(p) = self.pasid {
            hi |= 1 << 31;
            hi |= ((p as u64) & 0xf_ffff) << 40;
        }
        hi |= (self.reason.code() as u64) << 32;
        hi |= ((self.at as u64) & 3) << 60;
        if self.kind != RequestType::Write {
            hi |= 1 << 62; // T1
        }
        hi |= 1 << 63; // F
        (lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_decodes_to_its_reason() {
        for r in FaultReason::ALL {
            assert_eq!(FaultReason::from_code(r.code()), Some(r));
        }
        assert_eq!(
            FaultReason::from_code(0x5c),
            Some(FaultReason::PasidEreClear)
        );
        assert_eq!(FaultReason::from_code(0x00), None);
        assert_eq!(FaultReason::from_code(0xff), None);
    }

    #[test]
    fn codes_match_the_spec_table() {
        assert_eq!(FaultReason::RootNotPresent.code(), 0x39);
        assert_eq!(FaultReason::ContextPasidTooLarge.code(), 0x46);
        assert_eq!(FaultReason::PasidSreClear.code(), 0x5d);
        assert_eq!(FaultReason::FsNotPresent.code(), 0x71);
        assert_eq!(FaultReason::NestedEntryWrite.code(), 0x77);
        assert_eq!(FaultReason::SsReserved.code(), 0x7a);
        assert_eq!(FaultReason::InterruptAddress.code(), 0x87);
        assert!(FaultReason::PasidNotPresent.is_qualified());
        assert!(!FaultReason::RootNotPresent.is_qualified());
    }

    #[test]
    fn the_reasons_the_list_lacked_have_their_codes_and_mnemonics() {
        // §7.1.3 / Appendix A: SSS.5-6, SGN.9-10, SFS.9-10 and RTA.4.
        for (code, mnemonic) in [
            (0x33, "RTA.4"),
            (0x7c, "SSS.5"),
            (0x7d, "SSS.6"),
            (0x88, "SGN.9"),
            (0x89, "SGN.10"),
            (0x90, "SFS.9"),
            (0x91, "SFS.10"),
            (0x42, "SCT.3"),
            (0x5b, "SPT.4"),
            (0x84, "SGN.5"),
        ] {
            let r = FaultReason::from_code(code).unwrap_or_else(|| panic!("{code:#x}"));
            assert_eq!(r.mnemonic(), mnemonic, "{code:#x}");
        }
        assert_eq!(FaultReason::ALL.len(), 51);
        assert!(
            FaultReason::ALL
                .windows(2)
                .all(|w| w[0].code() < w[1].code())
        );
    }

    #[test]
    fn qualification_follows_the_spec_table() {
        // §7.1.3: only the faults met before any FPD is read (RTA.x, SRT.x, SCT.1) and the
        // errors accessing a PASID-directory or PASID-table entry (SPD.1, SPT.1) are
        // unqualified.
        let unqualified = [0x30, 0x31, 0x32, 0x33, 0x38, 0x39, 0x3a, 0x40, 0x50, 0x58];
        for r in FaultReason::ALL {
            assert_eq!(
                r.is_qualified(),
                !unqualified.contains(&r.code()),
                "{} ({:#x})",
                r.mnemonic(),
                r.code()
            );
        }
        // The classes issue 18 names: reserved bits of lookup structures, first-stage and
        // second-stage walk faults are all qualified.
        for code in [
            0x42, 0x52, 0x5a, 0x70, 0x72, 0x73, 0x78, 0x7a, 0x7b, 0x7c, 0x7d, 0x90,
        ] {
            assert!(
                FaultReason::from_code(code).unwrap().is_qualified(),
                "{code:#x}"
            );
        }
    }

    #[test]
    fn fault_record_layout() {
        // A write with PASID 0x12345 from 00:03.0, privileged, reason 0x85, at 0x1234_5678.
        let r = FaultRecord {
            addr: 0x1234_5678,
            sid: 0x0018,
            pasid: Some(0x12345),
            privileged: true,
            execute: false,
            kind: RequestType::Write,
            at: 0,
            reason: FaultReason::WriteDenied,
        };
        let (lo, hi) = r.encode();
        assert_eq!(lo, 0x1234_5000);
        // F(63) | PV(59:40)=0x12345 | FR(39:32)=0x85 | PP(31) | PRIV(29) | SID=0x18
        assert_eq!(
            hi,
            1 << 63 | 0x12345 << 40 | 0x85 << 32 | 1 << 31 | 1 << 29 | 0x18
        );
        let read = FaultRecord {
            pasid: None,
            privileged: false,
            kind: RequestType::Translation,
            at: 1,
            ..r
        };
        let (_, hi) = read.encode();
        assert_eq!(
            hi,
            1 << 63 | 1 << 62 | 1 << 60 | 0x85 << 32 | 1 << 28 | 0x18
        );
    }
}
