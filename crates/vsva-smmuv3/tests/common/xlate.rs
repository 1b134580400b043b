//! Translation rigs: stage 1, stage 2 and nested streams over tables built with
//! vsva-pgtable's `PageTable` on the Arm formats, in the bench's memory.

use std::sync::Arc;

use vsva_mem::{Access, FrameAllocator, PageSize};
use vsva_pgtable::arm::OA;
use vsva_pgtable::{ArmS1, ArmS2, PageTable, Perm};
use vsva_smmuv3::spec::cd::Cd0;
use vsva_smmuv3::spec::ste::{Ste, Ste0, Ste1, Ste3, config, s1fmt};
use vsva_smmuv3::{Blocked, Transaction};

use super::*;

pub const SID: u32 = 3;
pub const SID2: u32 = 4;
pub const ASID: u16 = 5;
pub const ASID2: u16 = 6;
pub const VMID: u16 = 1;
/// A VA of the TTB0 range: level 0 index 0, level 1 index 1, level 2 index 0, level 3 index 1.
pub const VA: u64 = 0x4000_1000;
/// Data pages (the bench's unused level-2 table area).
pub const PA: u64 = 0x78_0000;
pub const PA_NEW: u64 = 0x78_1000;
/// The second stream's CD.
pub const CD2: u64 = CDTAB + 0x1000;
/// Frames for stage 1 tables, and for stage 2 tables.
pub const S1_FRAMES: (u64, u64) = (0x80_0000, 0xa0_0000);
pub const S2_FRAMES: (u64, u64) = (0xa0_0000, 0x100_0000);

/// Event record dword 1 bits (Linux `EVTQ_1_*`).
pub const STALL: u64 = 1 << 31;
pub const PNU: u64 = 1 << 33;
pub const IND: u64 = 1 << 34;
pub const RNW: u64 = 1 << 35;
pub const S2: u64 = 1 << 39;
pub const CLASS_TT: u64 = 0b01 << 40;
pub const CLASS_IN: u64 = 0b10 << 40;
pub const TTRNW: u64 = 1 << 44;

/// An event record without SubstreamID.
pub fn rec(kind: u8, sid: u32, dw1: u64, dw2: u64, dw3: u64) -> [u64; 4] {
    [kind as u64 | (sid as u64) << 32, dw1, dw2, dw3]
}

pub fn frames(b: &Bench, (start, end): (u64, u64)) -> Arc<FrameAllocator> {
    let mem: Arc<dyn vsva_mem::PhysMem> = b.mem.clone();
    Arc::new(FrameAllocator::new(mem, start, end))
}

/// A stage 1 format as a 48-bit Arm64 process, hardware AF/dirty off, nG leaves.
pub fn s1_format() -> ArmS1 {
    ArmS1::with_va_bits(48)
}

/// A transaction of `sid` that cannot stall (a PCIe Function's).
pub fn txn(sid: u32, addr: u64, access: Access) -> Transaction {
    Transaction {
        sid,
        ssid: None,
        addr,
        access,
        stallable: false,
    }
}

/// A stage 1 stream [`SID`] with CD `cd(good_cd0(ASID))` at [`CDTAB`] over the table `s1`.
pub struct S1Rig {
    pub b: Bench,
    pub s1: PageTable<ArmS1>,
}

impl S1Rig {
    pub fn new() -> S1Rig {
        S1Rig::with(s1_format(), |c| c)
    }

    pub fn with(format: ArmS1, cd: impl Fn(Cd0) -> Cd0) -> S1Rig {
        let b = Bench::new();
        let s1 = PageTable::new(format, frames(&b, S1_FRAMES)).unwrap();
        b.write_cd_at(CDTAB, &cd_from(cd(good_cd0(ASID)), s1.root()));
        b.write_ste(SID, &s1_ste(CDTAB, 0, s1fmt::LINEAR));
        S1Rig { b, s1 }
    }

    /// A second stream [`SID2`] over the same table with ASID [`ASID2`].
    pub fn add_second_stream(&self) {
        self.b
            .write_cd_at(CD2, &cd_from(good_cd0(ASID2), self.s1.root()));
        self.b.write_ste(SID2, &s1_ste(CD2, 0, s1fmt::LINEAR));
    }

    pub fn map(&self, va: u64, pa: u64, perm: Perm) {
        self.s1.map(va, pa, PageSize::Size4K, perm).unwrap();
    }

    /// Points the leaf of `va` at `pa` in memory, without telling the SMMU.
    pub fn repoint(&self, va: u64, pa: u64) {
        let old = self.s1.lookup(va).unwrap().entry;
        self.s1
            .set_leaf(va, PageSize::Size4K, (old & !OA) | pa)
            .unwrap();
    }

    /// Clears nG in the leaf of `va`: a global translation.
    pub fn make_global(&self, va: u64) {
        let old = self.s1.lookup(va).unwrap().entry;
        self.s1
            .set_leaf(va, PageSize::Size4K, old & !vsva_pgtable::arm::NG)
            .unwrap();
    }

    pub fn read(&self, sid: u32, va: u64) -> Result<u64, Blocked> {
        self.b
            .smmu
            .translate(&txn(sid, va, Access::READ))
            .map(|t| t.addr)
    }
}

/// The stage 2 format of [`good_ste2`]: 40-bit IPA from level 1, 48-bit PA.
pub fn s2_format() -> ArmS2 {
    ArmS2::new(40, 48)
}

/// A stage 2 only STE over the table at `root`.
pub fn s2_only_ste(root: u64) -> Ste {
    Ste::from_words(
        Ste0::new().with_v(true).with_config(config::S2_TRANS),
        Ste1::new(),
        good_ste2(VMID),
        Ste3::new().with_s2ttb(root >> 4),
    )
}

/// A nested STE: the CD table at `cdtab`, stage 2 at `root`.
pub fn nested_ste(cdtab: u64, root: u64) -> Ste {
    Ste::from_words(
        Ste0::new()
            .with_v(true)
            .with_config(config::NESTED)
            .with_s1fmt(s1fmt::LINEAR)
            .with_s1contextptr(cdtab >> 6),
        Ste1::new().with_shcfg(1),
        good_ste2(VMID),
        Ste3::new().with_s2ttb(root >> 4),
    )
}

/// A nested stream [`SID`]: stage 2 maps the stage 1 table frames and the CD table to
/// themselves and the IPA [`L2`] (0x70_0000) to [`PA`]; stage 1 maps [`VA`] to IPA [`L2`].
pub struct NestedRig {
    pub b: Bench,
    pub s1: PageTable<ArmS1>,
    pub s2: PageTable<ArmS2>,
}

impl NestedRig {
    pub fn new() -> NestedRig {
        let b = Bench::new();
        let s2 = PageTable::new(s2_format(), frames(&b, S2_FRAMES)).unwrap();
        let mut ipa = S1_FRAMES.0;
        while ipa < S1_FRAMES.1 {
            s2.map(ipa, ipa, PageSize::Size4K, Perm::RW).unwrap();
            ipa += 0x1000;
        }
        s2.map(L2, PA, PageSize::Size4K, Perm::RW).unwrap();
        // The CD table's IPA (S1ContextPtr is an IPA when nested).
        s2.map(CDTAB, CDTAB, PageSize::Size4K, Perm::RW).unwrap();
        let s1 = PageTable::new(s1_format(), frames(&b, S1_FRAMES)).unwrap();
        s1.map(VA, L2, PageSize::Size4K, Perm::USER_RW).unwrap();
        b.write_cd_at(CDTAB, &good_cd_at(s1.root()));
        b.write_ste(SID, &nested_ste(CDTAB, s2.root()));
        NestedRig { b, s1, s2 }
    }
}

fn good_cd_at(ttb0: u64) -> vsva_smmuv3::spec::cd::Cd {
    cd_from(good_cd0(ASID), ttb0)
}
