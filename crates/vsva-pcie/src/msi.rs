//! Message Signalled Interrupts (PCIe 6.0 §6.1.4): an interrupt is a DWORD memory write of a
//! data word to an address. Every IOMMU model raises its events this way (VT-d §5.1.6, the
//! SMMUv3 queues' and GERROR's `*_IRQ_CFG` registers, IHI 0070), so the sink is shared.

use std::sync::Mutex;

/// Where a model's MSI writes go (an interrupt controller, a VMM's vector injection).
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
