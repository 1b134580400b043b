//! PCIe requester IDs: bus (8 bits), device (5 bits), function (3 bits), packed as
//! `bus << 8 | device << 3 | function` (PCIe Base 6.0 §2.2.6.2). The IOMMU indexes its
//! root table by bus and its context table by device/function (VT-d 4.1 §3.4.2).

use std::fmt;

/// Why a bus/device/function triple is not a requester ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RidError {
    /// Device number above 31.
    #[error("device number {0} does not fit in 5 bits")]
    Device(u8),
    /// Function number above 7.
    #[error("function number {0} does not fit in 3 bits")]
    Function(u8),
}

/// A 16-bit requester ID (a BDF).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Rid(u16);

impl Rid {
    /// Builds a requester ID from its parts.
    ///
    /// # Errors
    /// [`RidError`] if `device` > 31 or `function` > 7.
    pub const fn from_bdf(bus: u8, device: u8, function: u8) -> Result<Rid, RidError> {
        if device > 31 {
            return Err(RidError::Device(device));
        }
        if function > 7 {
            return Err(RidError::Function(function));
        }
        Ok(Rid(((bus as u16) << 8)
            | ((device as u16) << 3)
            | function as u16))
    }

    /// Wraps a raw 16-bit requester ID (every value is valid).
    pub const fn from_raw(raw: u16) -> Rid {
        Rid(raw)
    }

    /// The raw 16-bit value.
    pub const fn raw(self) -> u16 {
        self.0
    }

    /// Bus number.
    pub const fn bus(self) -> u8 {
        (self.0 >> 8) as u8
    }

    /// Device and function together (the context-table index).
    pub const fn devfn(self) -> u8 {
        self.0 as u8
    }

    /// Device number.
    pub const fn device(self) -> u8 {
        (self.0 >> 3) as u8 & 0x1f
    }

    /// Function number.
    pub const fn function(self) -> u8 {
        self.0 as u8 & 0x7
    }
}

impl fmt::Display for Rid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02x}:{:02x}.{}",
            self.bus(),
            self.device(),
            self.function()
        )
    }
}

impl fmt::Debug for Rid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rid({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_like_pcie() {
        let r = Rid::from_bdf(0x3a, 0x1f, 7).unwrap();
        assert_eq!(r.raw(), 0x3aff);
        assert_eq!((r.bus(), r.device(), r.function()), (0x3a, 0x1f, 7));
        assert_eq!(r.devfn(), 0xff);
        assert_eq!(r.to_string(), "3a:1f.7");
        assert_eq!(Rid::from_bdf(0, 3, 0).unwrap().raw(), 0x18);
    }

    #[test]
    fn refuses_wide_fields() {
        assert_eq!(Rid::from_bdf(0, 32, 0), Err(RidError::Device(32)));
        assert_eq!(Rid::from_bdf(0, 0, 8), Err(RidError::Function(8)));
    }
}
