//! Rights granted by page-table entries, in one vocabulary for every format.

use bitflags::bitflags;

bitflags! {
    /// Rights that a mapping grants (or that a walk accumulated over its levels).
    ///
    /// x86 grants READ with presence, WRITE with R/W=1, USER with U/S=1 and EXEC with XD=0;
    /// VT-d second stage grants READ/WRITE/EXEC with R/W/X and has no user/supervisor notion
    /// (its entries grant USER so that combining stages keeps the first stage's U/S).
    /// A walk's rights are the intersection of every level's.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Perm: u8 {
        /// Data reads.
        const READ = 1 << 0;
        /// Data writes.
        const WRITE = 1 << 1;
        /// Instruction fetch / execute.
        const EXEC = 1 << 2;
        /// User-mode (CPL 3 / non-privileged) access.
        const USER = 1 << 3;
    }
}

impl Perm {
    /// READ | WRITE.
    pub const RW: Perm = Perm::READ.union(Perm::WRITE);
    /// READ | WRITE | USER: an ordinary user data page.
    pub const USER_RW: Perm = Perm::RW.union(Perm::USER);

    /// Execution at a privileged level, for formats that control it apart from [`Perm::EXEC`]:
    /// in Arm stage 1, EXEC is UXN = 0 (EL0 may execute) and PRIV_EXEC is PXN = 0 (EL1 may);
    /// Arm stage 2 grants both with XN = 0. x86 and VT-d never grant it and never look at it.
    ///
    /// It is kept out of the flag list on purpose, so that [`Perm::all`] stays the four
    /// rights every format shares (consumers pack those into 4 bits); a walk starts from
    /// [`Perm::ANY`].
    pub const PRIV_EXEC: Perm = Perm::from_bits_retain(1 << 4);

    /// Every right, [`Perm::PRIV_EXEC`] included: where a walk's intersection starts.
    pub const ANY: Perm = Perm::all().union(Perm::PRIV_EXEC);
}
