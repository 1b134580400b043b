//! The rights a memory request asks for.
//!
//! One type serves CPU accesses (user or supervisor, read/write/fetch) and DMA requests
//! (PCIe read/write with the PASID TLP prefix's Execute-Requested and Privileged-Mode-Requested
//! bits, PCIe Base 6.0 §6.20.2.3).

use bitflags::bitflags;

bitflags! {
    /// What a request wants to do with the memory it names.
    ///
    /// A request with neither `READ` nor `WRITE` is not meaningful; the walkers treat
    /// `EXEC` as an instruction fetch (which is also a read).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Access: u8 {
        /// Data read.
        const READ = 1 << 0;
        /// Data write.
        const WRITE = 1 << 1;
        /// Instruction fetch / Execute-Requested.
        const EXEC = 1 << 2;
        /// Supervisor (CPL < 3) / Privileged-Mode-Requested. Without it a request is a user one.
        const PRIV = 1 << 3;
    }
}

impl Access {
    /// Is this a write request?
    pub fn is_write(self) -> bool {
        self.contains(Access::WRITE)
    }

    /// Is this an instruction fetch / execute request?
    pub fn is_exec(self) -> bool {
        self.contains(Access::EXEC)
    }

    /// Is this a supervisor (privileged) request?
    pub fn is_priv(self) -> bool {
        self.contains(Access::PRIV)
    }

    /// Is this a user (non-privileged) request?
    pub fn is_user(self) -> bool {
        !self.is_priv()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_is_the_absence_of_priv() {
        assert!(Access::READ.is_user());
        assert!(!(Access::READ | Access::PRIV).is_user());
        assert!((Access::WRITE | Access::PRIV).is_write());
        assert!(Access::EXEC.is_exec());
    }
}
