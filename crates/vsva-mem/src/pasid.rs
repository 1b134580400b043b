//! The Process Address Space ID (PCIe Base 6.0 §6.20): a 20-bit value carried in a TLP prefix
//! that selects which address space a request is translated in.

use std::fmt;

/// Why a value is not a PASID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasidError {
    /// The value needs more than the 20 bits the PASID TLP prefix carries.
    #[error("PASID {0:#x} does not fit in 20 bits")]
    TooWide(u32),
}

/// A validated 20-bit PASID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Pasid(u32);

impl Pasid {
    /// Width of the PASID field in bits (PCIe Base 6.0 §6.20.2.1).
    pub const BITS: u32 = 20;
    /// The largest PASID.
    pub const MAX: Pasid = Pasid((1 << Self::BITS) - 1);

    /// Validates a raw PASID.
    ///
    /// # Errors
    /// [`PasidError::TooWide`] if `raw` has bits above bit 19.
    pub const fn new(raw: u32) -> Result<Pasid, PasidError> {
        if raw >> Self::BITS != 0 {
            Err(PasidError::TooWide(raw))
        } else {
            Ok(Pasid(raw))
        }
    }

    /// The raw value.
    pub const fn raw(self) -> u32 {
        self.0
    }

    /// Does this PASID fit in a PASID space of `width` bits (a capability's "Max PASID Width")?
    pub const fn fits_width(self, width: u32) -> bool {
        width >= 32 || self.0 >> width == 0
    }
}

impl fmt::Debug for Pasid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pasid({:#x})", self.0)
    }
}

impl fmt::Display for Pasid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl TryFrom<u32> for Pasid {
    type Error = PasidError;
    fn try_from(v: u32) -> Result<Self, Self::Error> {
        Pasid::new(v)
    }
}

impl From<Pasid> for u32 {
    fn from(p: Pasid) -> u32 {
        p.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_bits_accepted_twenty_one_refused() {
        assert_eq!(Pasid::new(0).unwrap().raw(), 0);
        assert_eq!(Pasid::new(0xF_FFFF).unwrap(), Pasid::MAX);
        assert_eq!(Pasid::new(0x10_0000), Err(PasidError::TooWide(0x10_0000)));
        assert_eq!(
            Pasid::try_from(u32::MAX),
            Err(PasidError::TooWide(u32::MAX))
        );
    }

    #[test]
    fn width_check() {
        let p = Pasid::new(0x100).unwrap();
        assert!(!p.fits_width(8));
        assert!(p.fits_width(9));
        assert!(Pasid::MAX.fits_width(20));
        assert!(!Pasid::MAX.fits_width(19));
    }
}
