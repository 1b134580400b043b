//! The page request descriptor (VT-d 4.1 §7.4.1.1, Figure 7-1): what the unit writes into the
//! page request queue for each PCIe Page Request Message, 32 bytes.

use vsva_mem::{Pasid, Rid};
use vsva_pcie::PageRequest;
use vsva_pcie::pri::PageRequestWord;

/// Encodes `pr`'s 32-byte descriptor (type 01h).
pub fn encode(pr: &PageRequest) -> [u64; 4] {
    let mut q0 = 1u64 | (pr.rid.raw() as u64) << 16;
    if let Some(p) = pr.pasid {
        q0 |= 1 << 8 | (p.raw() as u64) << 32;
    }
    if pr.exec {
        q0 |= 1 << 52;
    }
    if pr.privileged {
        q0 |= 1 << 53;
    }
    // Bits 63:0 of the second qword are the message's own (PCIe Base 6.0 Figure 10-16).
    let q1 = PageRequestWord::new()
        .with_r(pr.read)
        .with_w(pr.write)
        .with_l(pr.last)
        .with_prgi(pr.prgi & 0x1ff)
        .with_page(pr.addr >> 12);
    [q0, q1.into_bits(), 0, 0]
}

/// Decodes a descriptor (as a driver reads it from the queue); `None` if the type is not a
/// page request.
pub fn decode(q: [u64; 4]) -> Option<PageRequest> {
    if q[0] & 0xff != 1 {
        return None;
    }
    let pp = q[0] & (1 << 8) != 0;
    let w = PageRequestWord::from_bits(q[1]);
    Some(PageRequest {
        rid: Rid::from_raw((q[0] >> 16) as u16),
        pasid: if pp {
            Pasid::new(((q[0] >> 32) & 0xf_ffff) as u32).ok()
        } else {
            None
        },
        addr: w.page() << 12,
        read: w.r(),
        write: w.w(),
        exec: q[0] & (1 << 52) != 0,
        privileged: q[0] & (1 << 53) != 0,
        last: w.l(),
        prgi: w.prgi(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vsva_mem::Access;
    use vsva_pcie::PageRequestMsg;

    #[test]
    fn layout_matches_linux_page_req_dsc() {
        // Linux struct page_req_dsc: type:8, pasid_present:1, rsvd:7, rid:16, pasid:20,
        // exe_req:1, pm_req:1 | rd_req:1, wr_req:1, lpig:1, prg_index:9, addr:52
        let r = PageRequest {
            rid: Rid::from_raw(0x0318),
            pasid: Some(Pasid::new(0xabcde).unwrap()),
            addr: 0x7fff_1234_5000,
            read: true,
            write: true,
            exec: false,
            privileged: true,
            last: true,
            prgi: 0x1a5,
        };
        let q = encode(&r);
        assert_eq!(q[0], 1 | 1 << 8 | 0x0318 << 16 | 0xabcde << 32 | 1 << 53);
        assert_eq!(q[1], 1 | 2 | 4 | 0x1a5 << 3 | 0x7fff_1234_5000);
        assert_eq!(decode(q), Some(r));
        assert_eq!(decode([2, 0, 0, 0]), None);
        // a device's PRGI beyond 9 bits is cut to its field, never spills into the address
        let wide = PageRequest { prgi: 0xffff, ..r };
        assert_eq!(encode(&wide)[1], 7 | 0x1ff << 3 | 0x7fff_1234_5000);
    }

    #[test]
    fn the_descriptor_of_a_page_request_message() {
        let msg = PageRequestMsg {
            pasid: Some(Pasid::new(9).unwrap()),
            access: Access::WRITE | Access::PRIV,
            page_addr: 0x4000,
            prgi: 3,
            last: true,
        };
        let r = PageRequest::from_msg(Rid::from_raw(0x18), &msg);
        assert_eq!(encode(&r)[1], msg.word().into_bits());
        assert!(!r.read && r.write && r.privileged && !r.exec && r.last);
        assert_eq!((r.rid.raw(), r.pasid, r.prgi), (0x18, msg.pasid, 3));
    }
}
