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
}
