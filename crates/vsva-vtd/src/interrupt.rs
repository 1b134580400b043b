//! Interrupts the remapping unit raises: message-signalled writes of a 32-bit data word to an
//! address (the fault event, invalidation completion and page request events, §5.1.6).

use std::sync::Mutex;

/// Where the unit's MSI writes go (an interrupt controller, a VMM's vector injection).
pub trait MsiSink: Send + Sync {
    /// Delivers one message: `data` written to `address`.
    fn msi(&self, address: u64, data: u32);
}

/// An [`MsiSink`] that keeps every message, for tests and traces.
#[derive(Debug, Default)]
pub struct MsiLog {
    messages: Mutex<Vec<(u64, u32)>>,
}

impl MsiLog {
    /// The messages so far, oldest first.
    pub fn messages(&self) -> Vec<(u64, u32)> {
        self.messages.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Takes the messages so far.
    pub fn take(&self) -> Vec<(u64, u32)> {
        self.messages
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default()
    }
}

impl MsiSink for MsiLog {
    fn msi(&self, address: u64, data: u32) {
        if let Ok(mut m) = self.messages.lock() {
            m.push((address, data));
        }
    }
}

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
