//! Invalidation-queue descriptors (VT-d 4.1 §6.5.2; field positions as in Linux's `QI_*`
//! macros and QEMU's reserved masks). In scalable mode the queue holds 256-bit descriptors
//! (IQA.DW = 1); the type is the 7-bit value {bits 11:9, bits 3:0}.

use crate::spec::registers::Iqei;

/// A decoded descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Descriptor {
    /// Type 1: context-cache invalidation (§6.5.2.1).
    ContextCache {
        /// 1 global, 2 domain-selective, 3 device-selective.
        granularity: u8,
        /// Domain (ignored in scalable mode).
        did: u16,
        /// Source ID.
        sid: u16,
        /// Function mask.
        fm: u8,
    },
    /// Type 2: IOTLB invalidation (§6.5.2.3).
    Iotlb {
        /// 1 global, 2 domain-selective, 3 page-selective within domain.
        granularity: u8,
        /// Domain.
        did: u16,
        /// Page address.
        addr: u64,
        /// Address mask: 2^am pages.
        am: u8,
        /// Invalidation hint (leaf-only change).
        ih: bool,
    },
    /// Type 3: device-TLB invalidation (§6.5.2.5).
    DevTlb {
        /// Source ID of the device.
        sid: u16,
        /// Max invalidations pending (0 = 32).
        mip: u8,
        /// Address with the ATS size encoding in its low bits when `size` is set.
        addr: u64,
        /// S: range larger than 4 KiB, encoded in `addr`.
        size: bool,
    },
    /// Type 5: invalidation wait (§6.5.2.9).
    Wait {
        /// Raise the completion interrupt.
        interrupt: bool,
        /// Write `status_data` to `status_addr`.
        status_write: bool,
        /// Fence: later descriptors wait for this one.
        fence: bool,
        /// Page-request drain.
        drain: bool,
        /// Status data.
        status_data: u32,
        /// Status address (DWORD aligned).
        status_addr: u64,
    },
    /// Type 6: PASID-based IOTLB invalidation (§6.5.2.4).
    PasidIotlb {
        /// 2 PASID-selective, 3 page-selective within PASID.
        granularity: u8,
        /// Domain.
        did: u16,
        /// PASID.
        pasid: u32,
        /// Page address.
        addr: u64,
        /// Address mask.
        am: u8,
        /// Invalidation hint.
        ih: bool,
    },
    /// Type 7: PASID-cache invalidation (§6.5.2.2).
    PasidCache {
        /// 0 domain-selective, 1 PASID-selective within domain, 3 global.
        granularity: u8,
        /// Domain.
        did: u16,
        /// PASID.
        pasid: u32,
    },
    /// Type 8: PASID-based device-TLB invalidation (§6.5.2.6).
    PasidDevTlb {
        /// Source ID of the device.
        sid: u16,
        /// PASID (ignored when `global`).
        pasid: u32,
        /// Max invalidations pending.
        mip: u8,
        /// Global invalidate (all PASIDs).
        global: bool,
        /// Address with the ATS size encoding.
        addr: u64,
        /// S: larger than 4 KiB.
        size: bool,
    },
    /// Type 9: page group response (§7.6.1).
    PageGroupResponse {
        /// Requester ID.
        rid: u16,
        /// PASID, if the request carried one.
        pasid: Option<u32>,
        /// Response code: 0 success, 1 invalid request, 0xF response failure.
        code: u8,
        /// Page request group index.
        prgi: u16,
    },
}

/// What the unit supports, which decides which descriptor types are valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFeatures {
    /// ECAP.DT: types 3 and 8.
    pub device_tlb: bool,
    /// ECAP.PRS: type 9.
    pub page_requests: bool,
    /// ECAP.PDS: PD in wait descriptors.
    pub page_drain: bool,
    /// CAP.PSI: page-selective IOTLB invalidation.
    pub psi: bool,
    /// CAP.MAMV.
    pub mamv: u8,
    /// Host address width (status addresses).
    pub haw: u8,
}

/// Does a device-selective context-cache invalidation of `sid` with function mask `fm`
/// select requester `rid`? FM 1, 2, 3 mask function-number bit 2, bits 2:1, bits 2:0
/// (§6.5.2.1, Table 21).
pub fn sid_selected(sid: u16, fm: u8, rid: u16) -> bool {
    let ignored = [0u16, 0b100, 0b110, 0b111][usize::from(fm & 3)];
    rid & !ignored == sid & !ignored
}

/// The range a page-selective invalidation names: the naturally aligned block of 2^`am`
/// 4-KiB pages holding `addr` (§6.5.2.3, §6.5.2.4), as (start, length); `None` from 2^52
/// pages on, which is the whole 64-bit space.
pub fn am_block(addr: u64, am: u8) -> Option<(u64, u64)> {
    let len = 1u64.checked_shl(12 + u32::from(am))?;
    Some((addr & !(len - 1), len))
}

fn bits(v: u64, lo: u32, n: u32) -> u64 {
    (v >> lo) & ((1u64 << n) - 1)
}

/// Decodes and validates one 256-bit descriptor.
///
/// # Errors
/// The IQEI an invalid descriptor sets: [`Iqei::InvalidType`] for an unknown or unsupported
/// type, [`Iqei::ReservedField`] for a set reserved field or reserved encoding.
pub fn decode(q: [u64; 4], f: &QueueFeatures) -> Result<Descriptor, Iqei> {
    let ty = bits(q[0], 9, 3) << 4 | bits(q[0], 0, 4);
    let rsvd = |masks: [u64; 4]| {
        if q.iter().zip(masks).any(|(w, m)| w & m != 0) {
            Err(Iqei::ReservedField)
        } else {
            Ok(())
        }
    };
    const ALL: u64 = u64::MAX;
    match ty {
        1 => {
            rsvd([0xfffc_0000_0000_f1c0, ALL, ALL, ALL])?;
            let granularity = bits(q[0], 4, 2) as u8;
            if granularity == 0 {
                return Err(Iqei::ReservedField);
            }
            Ok(Descriptor::ContextCache {
                granularity,
                did: bits(q[0], 16, 16) as u16,
                sid: bits(q[0], 32, 16) as u16,
                fm: bits(q[0], 48, 2) as u8,
            })
        }
        2 => {
            rsvd([0xffff_ffff_0000_f100, 0xf80, ALL, ALL])?;
            let granularity = bits(q[0], 4, 2) as u8;
            let am = bits(q[1], 0, 6) as u8;
            if granularity == 0 || (granularity == 3 && (!f.psi || am > f.mamv)) {
                return Err(Iqei::ReservedField);
            }
            Ok(Descriptor::Iotlb {
                granularity,
                did: bits(q[0], 16, 16) as u16,
                addr: q[1] & !0xfff,
                am,
                ih: q[1] & (1 << 6) != 0,
            })
        }
        3 if f.device_tlb => {
            // PFSID (15:12, 63:52) is reserved without DIT.
            rsvd([0xffff_0000_ffe0_f1f0, 0xffe, ALL, ALL])?;
            Ok(Descriptor::DevTlb {
                sid: bits(q[0], 32, 16) as u16,
                mip: bits(q[0], 16, 5) as u8,
                addr: q[1] & !0xfff,
                size: q[1] & 1 != 0,
            })
        }
        5 => {
            let mut lo = 0xffff_f100u64;
            if !f.page_drain {
                lo |= 1 << 7;
            }
            // Status address bits 63:HAW are ignored; bits 1:0 reserved.
            rsvd([lo, 3, ALL, ALL])?;
            Ok(Descriptor::Wait {
                interrupt: q[0] & (1 << 4) != 0,
                status_write: q[0] & (1 << 5) != 0,
                fence: q[0] & (1 << 6) != 0,
                drain: q[0] & (1 << 7) != 0,
                status_data: (q[0] >> 32) as u32,
                status_addr: q[1] & ((1u64 << f.haw.min(63)) - 1) & !3,
            })
        }
        6 => {
            rsvd([0xfff0_0000_0000_f1c0, 0xf80, ALL, ALL])?;
            let granularity = bits(q[0], 4, 2) as u8;
            let am = bits(q[1], 0, 6) as u8;
            if granularity < 2 || (granularity == 3 && am > f.mamv) {
                return Err(Iqei::ReservedField);
            }
            Ok(Descriptor::PasidIotlb {
                granularity,
                did: bits(q[0], 16, 16) as u16,
                pasid: bits(q[0], 32, 20) as u32,
                addr: q[1] & !0xfff,
                am,
                ih: q[1] & (1 << 6) != 0,
            })
        }
        7 => {
            rsvd([0xfff0_0000_0000_f1c0, ALL, ALL, ALL])?;
            let granularity = bits(q[0], 4, 2) as u8;
            if granularity == 2 {
                return Err(Iqei::ReservedField);
            }
            Ok(Descriptor::PasidCache {
                granularity,
                did: bits(q[0], 16, 16) as u16,
                pasid: bits(q[0], 32, 20) as u32,
            })
        }
        8 if f.device_tlb => {
            rsvd([0xfff0_0000_0000_f000, 0x7fe, ALL, ALL])?;
            Ok(Descriptor::PasidDevTlb {
                sid: bits(q[0], 16, 16) as u16,
                pasid: bits(q[0], 32, 20) as u32,
                mip: bits(q[0], 4, 5) as u8,
                global: q[1] & 1 != 0,
                addr: q[1] & !0xfff,
                size: q[1] & (1 << 11) != 0,
            })
        }
        9 if f.page_requests => {
            // Bit 66 (formerly LPIG) is ignored since rev 4.0.
            rsvd([0xfff0_0000_0000_01e0, 0xffff_ffff_ffff_f003, ALL, ALL])?;
            let rc = bits(q[0], 12, 4) as u8;
            if !matches!(rc, 0 | 1 | 0xf) {
                return Err(Iqei::ReservedField);
            }
            Ok(Descriptor::PageGroupResponse {
                rid: bits(q[0], 16, 16) as u16,
                pasid: (q[0] & (1 << 4) != 0).then(|| bits(q[0], 32, 20) as u32),
                code: rc,
                prgi: bits(q[1], 3, 9) as u16,
            })
        }
        // 4 (interrupt entry cache: no interrupt remapping), 0xA (HPT: not supported), and
        // everything else.
        _ => Err(Iqei::InvalidType),
    }
}

/// Encoders, as a driver writes descriptors (Linux `QI_*` layouts).
pub mod encode {
    /// Invalidation wait: status write of `data` to `addr`, optional interrupt and fence.
    pub fn wait(data: u32, addr: u64, interrupt: bool, fence: bool) -> [u64; 4] {
        let mut lo = 5 | (data as u64) << 32 | 1 << 5;
        if interrupt {
            lo |= 1 << 4;
        }
        if fence {
            lo |= 1 << 6;
        }
        [lo, addr & !3, 0, 0]
    }

    /// PASID-cache invalidation.
    pub fn pasid_cache(granularity: u8, did: u16, pasid: u32) -> [u64; 4] {
        [
            7 | (granularity as u64 & 3) << 4 | (did as u64) << 16 | (pasid as u64) << 32,
            0,
            0,
            0,
        ]
    }

    /// PASID-based IOTLB invalidation (page-selective when `am` is given).
    pub fn pasid_iotlb(did: u16, pasid: u32, addr_am: Option<(u64, u8)>, ih: bool) -> [u64; 4] {
        let g: u64 = if addr_am.is_some() { 3 } else { 2 };
        let hi = addr_am.map_or(0, |(a, am)| (a & !0xfff) | (am as u64 & 0x3f))
            | if ih { 1 << 6 } else { 0 };
        [
            6 | g << 4 | (did as u64) << 16 | (pasid as u64) << 32,
            hi,
            0,
            0,
        ]
    }

    /// IOTLB invalidation (type 2) of domain `did`: page-selective when `addr_am` is given,
    /// domain-selective otherwise (§6.5.2.3).
    pub fn iotlb(did: u16, addr_am: Option<(u64, u8)>, ih: bool) -> [u64; 4] {
        let g: u64 = if addr_am.is_some() { 3 } else { 2 };
        let hi = addr_am.map_or(0, |(a, am)| (a & !0xfff) | (am as u64 & 0x3f))
            | if ih { 1 << 6 } else { 0 };
        [2 | g << 4 | (did as u64) << 16, hi, 0, 0]
    }

    /// Global IOTLB invalidation (type 2, granularity 1).
    pub fn iotlb_global() -> [u64; 4] {
        [2 | 1 << 4, 0, 0, 0]
    }

    /// Device-selective context-cache invalidation of `sid` (type 1, granularity 3, FM 0).
    pub fn context_cache_device(sid: u16) -> [u64; 4] {
        [1 | 3 << 4 | (sid as u64) << 32, 0, 0, 0]
    }

    /// The address field and S bit of a device-TLB invalidation of 2^`am` pages at `start`
    /// (PCIe ATS §2.3.2: the bits below the size's top bit are set; from 2^52 pages on, the
    /// largest encodable range — everything).
    pub fn ats_size(start: u64, am: u8) -> (u64, bool) {
        match am {
            0 => (start & !0xfff, false),
            1..=51 => ((start & !0xfff) | ((1u64 << (am - 1)) - 1) << 12, true),
            _ => ((u64::MAX >> 1) & !0xfff, true),
        }
    }

    /// Device-TLB invalidation for requests without PASID (type 3: SID in bits 47:32, S in
    /// bit 0 of qword 1; §6.5.2.5).
    pub fn dev_tlb(sid: u16, start: u64, am: u8) -> [u64; 4] {
        let (a, s) = ats_size(start, am);
        [3 | (sid as u64) << 32, a | s as u64, 0, 0]
    }

    /// PASID-based device-TLB invalidation (type 8: SID in bits 31:16, PASID in 51:32, S in
    /// bit 11 of qword 1; §6.5.2.6).
    pub fn pasid_dev_tlb(sid: u16, pasid: u32, start: u64, am: u8) -> [u64; 4] {
        let (a, s) = ats_size(start, am);
        [
            8 | (sid as u64) << 16 | (pasid as u64) << 32,
            a | (s as u64) << 11,
            0,
            0,
        ]
    }

    /// Page group response.
    pub fn page_group_response(rid: u16, pasid: Option<u32>, code: u8, prgi: u16) -> [u64; 4] {
        let mut lo = 9 | (code as u64 & 0xf) << 12 | (rid as u64) << 16;
        if let Some(p) = pasid {
            lo |= 1 << 4 | (p as u64) << 32;
        }
        [lo, (prgi as u64 & 0x1ff) << 3, 0, 0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: QueueFeatures = QueueFeatures {
        device_tlb: true,
        page_requests: true,
        page_drain: true,
        psi: true,
        mamv: 18,
        haw: 46,
    };

    #[test]
    fn linux_encodings_decode() {
        // qi_submit_sync's wait: QI_IWD_STATUS_DATA(QI_DONE=2) | QI_IWD_STATUS_WRITE | type 5
        let w = [2u64 << 32 | 1 << 5 | 5, 0x1234_5678, 0, 0];
        assert_eq!(
            decode(w, &F),
            Ok(Descriptor::Wait {
                interrupt: false,
                status_write: true,
                fence: false,
                drain: false,
                status_data: 2,
                status_addr: 0x1234_5678,
            })
        );
        // qi_flush_piotlb PSI: QI_EIOTLB_PASID | DID | GRAN(3) | type 6; AM in qw1
        let p = [
            0x5u64 << 32 | 0x7 << 16 | 3 << 4 | 6,
            0x7f00_0000_0000 | 9,
            0,
            0,
        ];
        assert_eq!(
            decode(p, &F),
            Ok(Descriptor::PasidIotlb {
                granularity: 3,
                did: 7,
                pasid: 5,
                addr: 0x7f00_0000_0000,
                am: 9,
                ih: false
            })
        );
        assert_eq!(
            decode(encode::wait(2, 0x1000, true, true), &F).map(|_| ()),
            Ok(())
        );
        assert_eq!(
            decode(encode::page_group_response(0x18, Some(3), 0, 0x1ff), &F),
            Ok(Descriptor::PageGroupResponse {
                rid: 0x18,
                pasid: Some(3),
                code: 0,
                prgi: 0x1ff
            })
        );
    }

    #[test]
    fn invalid_types_and_reserved_encodings() {
        for ty in [0u64, 4, 0xa, 0xb, 0xf] {
            assert_eq!(
                decode([ty, 0, 0, 0], &F),
                Err(Iqei::InvalidType),
                "type {ty}"
            );
        }
        // a type with bits 11:9 set is another (unknown) type
        assert_eq!(
            decode([5 | 1 << 9 | 1 << 5, 0, 0, 0], &F),
            Err(Iqei::InvalidType)
        );
        let no_dt = QueueFeatures {
            device_tlb: false,
            page_requests: false,
            ..F
        };
        assert_eq!(decode([3, 0, 0, 0], &no_dt), Err(Iqei::InvalidType));
        assert_eq!(decode([8, 0, 0, 0], &no_dt), Err(Iqei::InvalidType));
        assert_eq!(decode([9, 0, 0, 0], &no_dt), Err(Iqei::InvalidType));
        // reserved granularities
        assert_eq!(decode([1, 0, 0, 0], &F), Err(Iqei::ReservedField));
        assert_eq!(decode([2, 0, 0, 0], &F), Err(Iqei::ReservedField));
        assert_eq!(decode([6 | 1 << 4, 0, 0, 0], &F), Err(Iqei::ReservedField));
        assert_eq!(decode([7 | 2 << 4, 0, 0, 0], &F), Err(Iqei::ReservedField));
        // AM beyond MAMV
        assert_eq!(decode([6 | 3 << 4, 19, 0, 0], &F), Err(Iqei::ReservedField));
        // reserved response codes
        assert_eq!(decode([9 | 2 << 12, 0, 0, 0], &F), Err(Iqei::ReservedField));
        // bit 66 of a page group response is ignored
        assert!(decode([9, 1 << 2, 0, 0], &F).is_ok());
        // PD without PDS
        let no_pd = QueueFeatures {
            page_drain: false,
            ..F
        };
        assert_eq!(
            decode([5 | 1 << 7, 0, 0, 0], &no_pd),
            Err(Iqei::ReservedField)
        );
    }

    #[test]
    fn every_reserved_bit_of_every_descriptor_type() {
        // A valid instance of each type and its reserved bits (absolute positions).
        type Case<'a> = ([u64; 4], &'a dyn Fn(u32) -> bool);
        let cases: [Case; 8] = [
            ([1 | 1 << 4, 0, 0, 0], &|b| {
                (6..=8).contains(&b) || (12..=15).contains(&b) || (50..64).contains(&b) || b >= 64
            }),
            ([2 | 1 << 4, 0, 0, 0], &|b| {
                b == 8
                    || (12..=15).contains(&b)
                    || (32..64).contains(&b)
                    || (71..=75).contains(&b)
                    || b >= 128
            }),
            ([3, 0, 0, 0], &|b| {
                (4..=8).contains(&b)
                    || (12..=15).contains(&b)
                    || (21..=31).contains(&b)
                    || (48..64).contains(&b)
                    || (65..=75).contains(&b)
                    || b >= 128
            }),
            ([5 | 1 << 5, 0, 0, 0], &|b| {
                b == 8 || (12..=31).contains(&b) || b == 64 || b == 65 || b >= 128
            }),
            ([6 | 2 << 4, 0, 0, 0], &|b| {
                (6..=8).contains(&b)
                    || (12..=15).contains(&b)
                    || (52..64).contains(&b)
                    || (71..=75).contains(&b)
                    || b >= 128
            }),
            ([7, 0, 0, 0], &|b| {
                (6..=8).contains(&b) || (12..=15).contains(&b) || (52..64).contains(&b) || b >= 64
            }),
            ([8, 0, 0, 0], &|b| {
                (12..=15).contains(&b)
                    || (52..64).contains(&b)
                    || (65..=74).contains(&b)
                    || b >= 128
            }),
            ([9, 0, 0, 0], &|b| {
                (5..=8).contains(&b) || (52..64).contains(&b) || b == 64 || b == 65 || b >= 76
            }),
        ];
        for (base, reserved) in cases {
            assert!(decode(base, &F).is_ok(), "{base:x?}");
            for bit in 0..256u32 {
                if (9..=11).contains(&bit) || bit < 4 {
                    continue; // the type itself
                }
                let mut q = base;
                q[(bit / 64) as usize] ^= 1 << (bit % 64);
                let r = decode(q, &F);
                // Flipping a granularity, address-mask or response-code bit can make a
                // reserved encoding; those fields are checked by value elsewhere.
                let encoded =
                    (4..=5).contains(&bit) || (64..=69).contains(&bit) || (12..=15).contains(&bit);
                if reserved(bit) {
                    assert_eq!(
                        r,
                        Err(Iqei::ReservedField),
                        "type {} bit {bit}",
                        base[0] & 0xf
                    );
                } else if !encoded {
                    assert_ne!(
                        r,
                        Err(Iqei::ReservedField),
                        "type {} bit {bit}",
                        base[0] & 0xf
                    );
                }
            }
        }
    }
}
