//! Interrupts the remapping unit raises: message-signalled writes of a 32-bit data word to an
//! address (the fault event, invalidation completion and page request events, §5.1.6).

use vsva_pcie::MsiSink;

/// The registers of one interrupt source: control (IM, IP), data, address, upper address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRegs {
    /// Interrupt mask (bit 31 of the control register); set at reset.
    pub masked: bool,
    /// Interrupt pending (bit 30): an event happened while masked.
    pub pending: bool,
    /// Message data (16 bits used).
    pub data: u32,
    /// Message address, bits 31:2.
    pub addr: u32,
    /// Message upper address.
    pub uaddr: u32,
}

impl Default for EventRegs {
    fn default() -> Self {
        EventRegs {
            masked: true,
            pending: false,
            data: 0,
            addr: 0,
            uaddr: 0,
        }
    }
}

impl EventRegs {
    /// The control register's value.
    pub fn control(&self) -> u32 {
        (self.masked as u32) << 31 | (self.pending as u32) << 30
    }

    fn message(&self) -> (u64, u32) {
        (
            (self.uaddr as u64) << 32 | (self.addr & !3) as u64,
            self.data & 0xffff,
        )
    }

    /// An event: send now if unmasked, else remember it (IP).
    pub fn fire(&mut self, sink: &dyn MsiSink) {
        if self.masked {
            self.pending = true;
        } else {
            let (a, d) = self.message();
            sink.msi(a, d);
            self.pending = false;
        }
    }

    /// A write to the control register: unmasking with IP set delivers the held message.
    pub fn write_control(&mut self, value: u32, sink: &dyn MsiSink) {
        self.masked = value & (1 << 31) != 0;
        if !self.masked && self.pending {
            let (a, d) = self.message();
            sink.msi(a, d);
            self.pending = false;
        }
    }
}
