//! Interrupts the SMMU raises (IHI 0070 §3.18): message-signalled writes of a 32-bit data
//! word to an address, configured per source by its *_IRQ_CFG0/1/2 registers (§6.3.21–23).
//!
//! The sources are GERROR, the event queue and the PRI queue; a CMD_SYNC with CS = IRQ
//! writes its own MSIData to its own MSIAddr through the same sink (§4.7.3).

use vsva_pcie::MsiSink;

use crate::spec::registers::{MSI_ADDR_MASK, MSI_CFG2_MASK};

/// The MSI configuration of one interrupt source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct IrqCfg {
    /// *_IRQ_CFG0: address, bits 51:2.
    pub addr: u64,
    /// *_IRQ_CFG1: data.
    pub data: u32,
    /// *_IRQ_CFG2: shareability and memory type.
    pub attr: u32,
}

impl IrqCfg {
    /// A register write at `index` (0: CFG0 low, 4: CFG0 high, 8: CFG1, 12: CFG2) of the
    /// 32-bit `v`, or of the 64-bit CFG0 when `wide`.
    pub fn write(&mut self, index: u64, v: u64, wide: bool) {
        match index {
            0 if wide => self.addr = v & MSI_ADDR_MASK,
            0 => self.addr = (self.addr & !0xffff_ffff) | (v & 0xffff_fffc),
            4 => self.addr = ((v << 32) | (self.addr & 0xffff_ffff)) & MSI_ADDR_MASK,
            8 => self.data = v as u32,
            12 => self.attr = v as u32 & MSI_CFG2_MASK,
            _ => {}
        }
    }

    /// Sends the message; an address of zero means MSIs are off for this source (the SMMU
    /// would signal its wired interrupt instead, which this model does not have).
    pub fn fire(&self, sink: &dyn MsiSink) -> bool {
        if self.addr == 0 {
            return false;
        }
        sink.msi(self.addr, self.data);
        true
    }
}
