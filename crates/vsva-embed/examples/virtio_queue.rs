//! A virtio device of a rust-vmm VMM doing DMA through a vsva vIOMMU.
//!
//! The VMM's guest RAM is a vm-memory `GuestMemoryMmap`. The vIOMMU (a vsva VT-d or SMMUv3
//! unit) walks the guest's I/O page tables in it through `GuestPhysMem`, and the guest OS —
//! vsva's IOMMU driver, IOMMU core and memory manager — boots on the same RAM. The VMM's device
//! reaches guest memory only through an `IommuPort` (vm-memory's `Iommu`) wrapped in
//! vm-memory's `IommuMemory`, which is what rust-vmm's `virtio-queue` takes.
//!
//! 1. The guest maps a virtqueue and two buffers for the device into a paging domain
//!    (`iommu_map`): the ring page read/write, the request read-only, the response
//!    read/write.
//! 2. It posts a two-descriptor chain (request → response) and notifies.
//! 3. The device pops the chain, reads the request, writes the response (upper case) and a
//!    status byte — the last with `translate_with`, holding the translation across the write —
//!    and puts the chain on the used ring.
//! 4. The guest unmaps everything (`iommu_unmap`): the vIOMMU's device-TLB invalidation
//!    empties the port's IOTLB.
//! 5. The guest posts the chain again; the device's first DMA (reading the available ring)
//!    faults, and the guest's IOMMU driver finds the fault in the vIOMMU's fault log.
//!
//! `cargo run -p vsva-embed --example virtio_queue [-- smmuv3]`

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};

use common::{Guest, IOVA};
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestAddress, IommuMemory, Permissions};
use vsva_host::{IommuKind, Smmuv3Kind, VtdKind};
use vsva_iommu::UnrecoverableFault;
use vsva_pgtable::Perm;

/// VIRTQ_DESC_F_NEXT (Virtio 1.2 §2.7.5).
const F_NEXT: u16 = 1;
/// VIRTQ_DESC_F_WRITE: device-writable.
const F_WRITE: u16 = 2;
/// Queue size.
const SIZE: u16 = 4;

/// The IOVAs the guest gives the device: the ring page (descriptor table, available ring,
/// used ring), the request and the response.
const DESC: u64 = IOVA;
const AVAIL: u64 = IOVA + 0x100;
const USED: u64 = IOVA + 0x200;
const REQUEST: u64 = IOVA + 0x1000;
const RESPONSE: u64 = IOVA + 0x2000;

const MESSAGE: &[u8] = b"hello through the viommu";

/// What happened, for the test that runs this example.
#[derive(Debug)]
pub struct Outcome {
    /// The response buffer as the guest reads it.
    pub response: Vec<u8>,
    /// The status byte after it.
    pub status: u8,
    /// The used ring's (id, len) of the first chain.
    pub used: (u32, u32),
    /// The device's error on the chain posted after the unmap.
    pub error: String,
    /// The faults the guest's IOMMU driver found.
    pub faults: Vec<UnrecoverableFault>,
    /// ATS Invalidate Requests the port received.
    pub invalidations: u64,
}

fn split(addr: u64) -> (Option<u32>, Option<u32>) {
    (Some(addr as u32), Some((addr >> 32) as u32))
}

/// Runs the scenario on a vIOMMU of kind `K`, narrating to `out`.
pub fn run<K: IommuKind>(cfg: K::Config, out: &mut dyn Write) -> std::io::Result<Outcome> {
    let g = Guest::<K>::boot(cfg);
    let (domain, port) = g.plug();
    let (ring, req, resp) = (g.page(0), g.page(1), g.page(2));

    // 1. The guest maps the queue and buffers for the device.
    domain.map(DESC, ring, 4096, Perm::RW, false).unwrap();
    domain.map(REQUEST, req, 4096, Perm::READ, false).unwrap();
    domain.map(RESPONSE, resp, 4096, Perm::RW, false).unwrap();
    writeln!(
        out,
        "guest: mapped ring {DESC:#x}->{ring:#x}, request {REQUEST:#x}->{req:#x} (read-only), \
         response {RESPONSE:#x}->{resp:#x}"
    )?;

    // 2. It posts the chain, writing guest-physical memory with its CPU.
    let ram = &g.ram;
    ram.write_slice(MESSAGE, GuestAddress(req)).unwrap();
    let d0 = Descriptor::new(REQUEST, MESSAGE.len() as u32, F_NEXT, 1);
    let d1 = Descriptor::new(RESPONSE, 64, F_WRITE, 0);
    ram.write_obj(d0, GuestAddress(ring)).unwrap();
    ram.write_obj(d1, GuestAddress(ring + 16)).unwrap();
    let avail = ring + (AVAIL - DESC);
    ram.write_obj(0u16, GuestAddress(avail + 4)).unwrap(); // ring[0] = head 0
    ram.write_obj(1u16, GuestAddress(avail + 2)).unwrap(); // idx = 1

    // 3. The VMM's device, through the vIOMMU.
    let dma = IommuMemory::new(g.ram.clone(), port.clone(), true, ());
    let mut queue = Queue::new(SIZE).unwrap();
    queue.set_size(SIZE);
    let (lo, hi) = split(DESC);
    queue.set_desc_table_address(lo, hi);
    let (lo, hi) = split(AVAIL);
    queue.set_avail_ring_address(lo, hi);
    let (lo, hi) = split(USED);
    queue.set_used_ring_address(lo, hi);
    queue.set_ready(true);
    assert!(queue.is_valid(&dma));

    let chain = queue.pop_descriptor_chain(&dma).expect("a chain");
    let head = chain.head_index();
    let mut request = Vec::new();
    chain
        .clone()
        .reader(&dma)
        .unwrap()
        .read_to_end(&mut request)
        .unwrap();
    writeln!(
        out,
        "device: read {:?} from the chain",
        String::from_utf8_lossy(&request)
    )?;
    let answer = request.to_ascii_uppercase();
    let mut writer = chain.writer(&dma).unwrap();
    writer.write_all(&answer).unwrap();
    // The status byte: one access under a held translation.
    let status_at = GuestAddress(RESPONSE + answer.len() as u64);
    port.translate_with(status_at, 1, Permissions::Write, |ranges| {
        g.ram.write_obj(0u8, ranges[0].base).unwrap(); // VIRTIO_BLK_S_OK-like
    })
    .unwrap();
    queue.add_used(&dma, head, answer.len() as u32 + 1).unwrap();
    let stats = port.stats();
    writeln!(
        out,
        "device: wrote {:?} and status 0; used ring idx 1 (port: {} misses, {} hits, {} \
         translation requests)",
        String::from_utf8_lossy(&answer),
        stats.misses,
        stats.hits,
        stats.translation_requests
    )?;

    let used = ring + (USED - DESC);
    let id: u32 = ram.read_obj(GuestAddress(used + 4)).unwrap();
    let len: u32 = ram.read_obj(GuestAddress(used + 8)).unwrap();
    let mut response = vec![0u8; answer.len()];
    ram.read_slice(&mut response, GuestAddress(resp)).unwrap();
    let status: u8 = ram
        .read_obj(GuestAddress(resp + answer.len() as u64))
        .unwrap();
    writeln!(
        out,
        "guest: used (id {id}, len {len}), response {:?}",
        String::from_utf8_lossy(&response)
    )?;

    // 4. The guest unmaps.
    let unmapped = domain.unmap(IOVA, 0x3000);
    writeln!(
        out,
        "guest: unmapped {unmapped:#x} bytes; the port received {} invalidation(s)",
        port.stats().invalidations
    )?;

    // 5. The guest posts the chain again; the device's next DMA faults.
    ram.write_obj(0u16, GuestAddress(avail + 6)).unwrap();
    ram.write_obj(2u16, GuestAddress(avail + 2)).unwrap();
    let error = match queue.iter(&dma) {
        Ok(mut chains) => format!("unexpectedly got a chain: {:?}", chains.next().is_some()),
        // virtio-queue's error does not chain its cause; its Debug form shows it.
        Err(e) => format!("{e}: {e:?}"),
    };
    writeln!(out, "device: {error}")?;
    let faults = g.faults();
    for f in &faults {
        writeln!(
            out,
            "guest: IOMMU fault: requester {:?}, address {:#x}, {}, reason {:#x}",
            f.dev,
            f.addr,
            if f.write { "write" } else { "read" },
            f.reason
        )?;
    }
    Ok(Outcome {
        response,
        status,
        used: (id, len),
        error,
        faults,
        invalidations: port.stats().invalidations,
    })
}

#[allow(dead_code)] // not called when the test includes this file
fn main() -> std::io::Result<()> {
    let mut out = std::io::stdout();
    match std::env::args().nth(1).as_deref() {
        Some("smmuv3") => {
            writeln!(out, "== SMMUv3 vIOMMU")?;
            run::<Smmuv3Kind>(Default::default(), &mut out)?;
        }
        None | Some("vtd") => {
            writeln!(out, "== VT-d vIOMMU")?;
            run::<VtdKind>(Default::default(), &mut out)?;
        }
        Some(other) => {
            eprintln!("usage: virtio_queue [vtd|smmuv3], not {other:?}");
            std::process::exit(2);
        }
    }
    Ok(())
}
