//! A register window reached by memory reads and writes: a PCIe Function's BAR, or the
//! MMIO region of a platform device such as an IOMMU. A driver holds only this (and memory)
//! of the hardware it drives, so every IOMMU model offers it and every driver uses it.

/// Register access to a device.
pub trait Mmio: Send + Sync {
    /// Reads `size` (4 or 8) bytes at `off`.
    fn read(&self, off: u64, size: u8) -> u64;
    /// Writes `size` (4 or 8) bytes at `off`.
    fn write(&self, off: u64, size: u8, value: u64);
}
