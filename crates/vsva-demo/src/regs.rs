//! The demo device's registers (BAR 0, 64-bit registers) and commands.
//!
//! | offset | register | access |
//! |---|---|---|
//! | 0x00 | COMMAND: opcode | RW |
//! | 0x08 | SRC: source virtual address | RW |
//! | 0x10 | DST: destination virtual address | RW |
//! | 0x18 | LEN: bytes | RW |
//! | 0x20 | PATTERN: seed of the pattern, or the fill byte | RW |
//! | 0x28 | FLAGS: bit 0 privileged request | RW |
//! | 0x30 | PASID: bits 19:0 PASID, bit 31 valid (programmed by the driver) | RW |
//! | 0x38 | DOORBELL: write 1 to start the command | WO |
//! | 0x40 | STATUS: 0 idle, 1 busy (waiting for a page, or stalled), 2 done, 3 error | RO |
//! | 0x48 | RESULT: checksum (READ_CHECKSUM), first mismatch or `u64::MAX` (COMPARE), bytes (others) | RO |
//! | 0x50 | ERROR: [`DeviceError`] code | RO |

/// COMMAND register.
pub const COMMAND: u64 = 0x00;
/// SRC register.
pub const SRC: u64 = 0x08;
/// DST register.
pub const DST: u64 = 0x10;
/// LEN register.
pub const LEN: u64 = 0x18;
/// PATTERN register.
pub const PATTERN: u64 = 0x20;
/// FLAGS register.
pub const FLAGS: u64 = 0x28;
/// PASID register.
pub const PASID: u64 = 0x30;
/// DOORBELL register.
pub const DOORBELL: u64 = 0x38;
/// STATUS register.
pub const STATUS: u64 = 0x40;
/// RESULT register.
pub const RESULT: u64 = 0x48;
/// ERROR register.
pub const ERROR: u64 = 0x50;

/// FLAGS: issue privileged-mode requests.
pub const FLAG_PRIVILEGED: u64 = 1;
/// PASID register: the PASID is valid.
pub const PASID_VALID: u64 = 1 << 31;

/// Commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Op {
    /// Write `pattern_byte(seed, i)` to DST..DST+LEN.
    WritePattern = 1,
    /// Read SRC..SRC+LEN and compute a checksum.
    ReadChecksum = 2,
    /// Copy SRC to DST.
    Copy = 3,
    /// Fill DST with the PATTERN byte.
    Fill = 4,
    /// Compare SRC with DST.
    Compare = 5,
}

impl Op {
    /// Decodes the COMMAND register.
    pub fn from_raw(v: u64) -> Option<Op> {
        Some(match v {
            1 => Op::WritePattern,
            2 => Op::ReadChecksum,
            3 => Op::Copy,
            4 => Op::Fill,
            5 => Op::Compare,
            _ => return None,
        })
    }
}

/// STATUS values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Status {
    /// Nothing running.
    Idle = 0,
    /// Waiting for a page request to be answered.
    Busy = 1,
    /// The command completed.
    Done = 2,
    /// The command failed (see ERROR).
    Error = 3,
}

/// Why a command failed (ERROR register).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[repr(u64)]
pub enum DeviceError {
    /// Unknown opcode, no valid PASID, or a length that wraps.
    #[error("bad command")]
    BadCommand = 1,
    /// The IOMMU refused the translation request.
    #[error("translation refused by the IOMMU")]
    TranslationRefused = 2,
    /// The page request was answered Invalid Request.
    #[error("page request invalid")]
    PageRequestInvalid = 3,
    /// The page request interface failed or is stopped.
    #[error("page request interface failed")]
    PriFailure = 4,
    /// The IOMMU refused the DMA with the translated address.
    #[error("DMA refused")]
    DmaRefused = 5,
    /// Privileged requests are not enabled in the PASID capability.
    #[error("privileged mode not enabled")]
    PrivilegedDisabled = 6,
    /// The page was still not accessible after a successful page response.
    #[error("page still not accessible after its page request")]
    StillNotAccessible = 7,
    /// A stalled transaction was terminated (software aborted it: the fault could not be
    /// fixed) — the platform device's answer to an invalid access.
    #[error("stalled transaction aborted")]
    StallAborted = 8,
    /// ATS Enable is clear: the device may not send Translation Requests (PCIe Base 6.0
    /// §10.5.1.3; QEMU's `pci_ats_request_translation()` refuses with EPERM), and it has no
    /// other way to reach memory by virtual address.
    #[error("ATS not enabled")]
    AtsDisabled = 9,
}

impl DeviceError {
    /// Decodes the ERROR register.
    pub fn from_raw(v: u64) -> Option<DeviceError> {
        use DeviceError::*;
        [
            BadCommand,
            TranslationRefused,
            PageRequestInvalid,
            PriFailure,
            DmaRefused,
            PrivilegedDisabled,
            StillNotAccessible,
            StallAborted,
            AtsDisabled,
        ]
        .into_iter()
        .find(|e| *e as u64 == v)
    }
}

/// The little-endian 64-bit word WRITE_PATTERN writes at word index `w` (byte offset
/// `8 * w` from the command's start) for seed `seed`. Defined per word so the device makes a
/// page of pattern with 512 multiplies rather than 4096, while every byte still depends on
/// its offset and the seed.
pub fn pattern_word(seed: u64, w: u64) -> u64 {
    w.wrapping_add(seed.rotate_left(32))
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ w
}

/// The byte WRITE_PATTERN writes at offset `i` for seed `seed`.
pub fn pattern_byte(seed: u64, i: u64) -> u8 {
    pattern_word(seed, i / 8).to_le_bytes()[(i % 8) as usize]
}

/// Fills `buf` with the pattern bytes of offsets `off..off + buf.len()`.
pub fn fill_pattern(seed: u64, off: u64, buf: &mut [u8]) {
    // Bytes before the first whole word, one at a time.
    let head = ((8 - off % 8) % 8).min(buf.len() as u64) as usize;
    for (i, b) in buf[..head].iter_mut().enumerate() {
        *b = pattern_byte(seed, off + i as u64);
    }
    let body_off = off + head as u64;
    let body_len = (buf.len() - head) / 8 * 8;
    let tail_off = body_off + body_len as u64;
    let mut words = buf[head..].chunks_exact_mut(8);
    for (k, chunk) in (&mut words).enumerate() {
        let w = body_off / 8 + k as u64;
        chunk.copy_from_slice(&pattern_word(seed, w).to_le_bytes());
    }
    let tail = words.into_remainder();
    for (i, b) in tail.iter_mut().enumerate() {
        *b = pattern_byte(seed, tail_off + i as u64);
    }
}

/// The checksum READ_CHECKSUM computes (FNV-1a, 64 bit) — also computed by the program on
/// its own copy of the data to check the device.
pub fn checksum(data: &[u8], mut state: u64) -> u64 {
    for &b in data {
        state ^= b as u64;
        state = state.wrapping_mul(0x100_0000_01b3);
    }
    state
}

/// The checksum's initial state.
pub const CHECKSUM_INIT: u64 = 0xcbf2_9ce4_8422_2325;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_pattern_agrees_with_pattern_byte_at_every_alignment() {
        for off in 0..17u64 {
            for len in 0..41usize {
                let mut buf = vec![0xa5u8; len];
                fill_pattern(7, off, &mut buf);
                let want: Vec<u8> = (0..len as u64).map(|i| pattern_byte(7, off + i)).collect();
                assert_eq!(buf, want, "off {off} len {len}");
            }
        }
    }

    #[test]
    fn pattern_depends_on_seed_and_offset() {
        assert_ne!(pattern_word(1, 0), pattern_word(2, 0));
        let page: Vec<u8> = (0..4096).map(|i| pattern_byte(1, i)).collect();
        // a page of pattern is not periodic in a word: no 8-byte window repeats at the next
        assert!(
            page.chunks(8)
                .zip(page.chunks(8).skip(1))
                .all(|(a, b)| a != b)
        );
    }
}
