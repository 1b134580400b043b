//! File-backed segments above RAM: coherent with the file's other users, placed first-fit,
//! and refusing every access that is not inside RAM or one live segment.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use vsva_mem::{MemError, PhysMem, PhysMemory, SegmentError, SegmentedMemory};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn file(name: &str, len: u64) -> File {
    let path = std::env::temp_dir().join(format!("vsva-seg-{}-{name}", std::process::id()));
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    f.set_len(len).unwrap();
    std::fs::remove_file(&path).unwrap(); // the open file lives on
    f
}

fn memory() -> SegmentedMemory {
    let ram: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(3 * GIB / 2).unwrap());
    SegmentedMemory::new(ram, 64 * GIB)
}

#[test]
fn a_segment_is_the_file_both_ways() {
    let m = memory();
    assert_eq!(
        m.window(),
        2 * GIB,
        "first 1 GiB boundary above 1.5 GiB of RAM"
    );
    let f = file("a", 4 * MIB);
    f.write_at(b"written by the owner", 0x1000).unwrap();
    let other = f.try_clone().unwrap();
    let pa = m.add_file(f, 0, 4 * MIB).unwrap();
    assert_eq!(pa, 2 * GIB);
    let mut got = [0u8; 20];
    m.read(pa + 0x1000, &mut got).unwrap();
    assert_eq!(&got, b"written by the owner");
    m.write(pa + 0x2000, b"by DMA").unwrap();
    let mut back = [0u8; 6];
    other.read_at(&mut back, 0x2000).unwrap();
    assert_eq!(&back, b"by DMA");
    // atomics, as hardware A/D updates make them
    m.store_u64(pa + 0x3000, 5).unwrap();
    assert_eq!(m.compare_exchange_u64(pa + 0x3000, 5, 6).unwrap(), Ok(5));
    assert_eq!(m.compare_exchange_u64(pa + 0x3000, 5, 7).unwrap(), Err(6));
    assert_eq!(m.load_u64(pa + 0x3000).unwrap(), 6);
    let mut word = [0u8; 8];
    other.read_at(&mut word, 0x3000).unwrap();
    assert_eq!(u64::from_le_bytes(word), 6);
    m.zero(pa + 0x1000, 0x2000).unwrap();
    other.read_at(&mut back, 0x2000).unwrap();
    assert_eq!(back, [0; 6]);
    // RAM is still RAM, and copies cross between the two
    m.write(0x5000, b"ram").unwrap();
    m.copy(0x5000, pa + 0x10, 3).unwrap();
    other.read_at(&mut back[..3], 0x10).unwrap();
    assert_eq!(&back[..3], b"ram");
}

#[test]
fn segments_are_placed_first_fit_and_2mib_aligned() {
    let m = memory();
    let a = m.add_file(file("p1", 4096), 0, 4096).unwrap();
    let b = m.add_file(file("p2", 3 * MIB), 0, 3 * MIB).unwrap();
    let c = m.add_file(file("p3", MIB), 0, MIB).unwrap();
    assert_eq!((a, b, c), (2 * GIB, 2 * GIB + 2 * MIB, 2 * GIB + 6 * MIB));
    assert!(m.remove(b));
    assert!(!m.remove(b), "already gone");
    let d = m.add_file(file("p4", 4 * MIB), 0, 4 * MIB).unwrap();
    assert_eq!(d, 2 * GIB + 2 * MIB, "the 4 MiB gap b left");
    // a file offset is honoured
    let f = file("off", 2 * MIB);
    f.write_at(b"second page", 4096).unwrap();
    let e = m.add_file(f, 4096, 4096).unwrap();
    let mut got = [0u8; 11];
    m.read(e, &mut got).unwrap();
    assert_eq!(&got, b"second page");
}

#[test]
fn accesses_outside_ram_and_live_segments_are_refused() {
    let m = memory();
    let pa = m.add_file(file("x", 8192), 0, 8192).unwrap();
    let oor = |r: Result<(), MemError>| matches!(r, Err(MemError::OutOfRange { .. }));
    let mut b = [0u8; 16];
    assert!(
        oor(m.read(3 * GIB / 2, &mut b)),
        "the hole between RAM and the window"
    );
    assert!(oor(m.read(3 * GIB / 2 - 8, &mut b)), "straddles RAM's end");
    assert!(
        oor(m.read(pa + 8192 - 8, &mut b)),
        "straddles the segment's end"
    );
    assert!(oor(m.write(pa + 8192, &b)), "past the segment");
    assert!(oor(m.write(u64::MAX - 4, &b)), "wraps");
    assert!(matches!(
        m.load_u64(pa + 4),
        Err(MemError::Misaligned { .. })
    ));
    assert!(matches!(
        m.load_u64(pa + 8192),
        Err(MemError::OutOfRange { .. })
    ));
    assert!(oor(m.copy(pa, pa + 4096, 8192)), "copy past the end");
    assert!(m.remove(pa));
    assert!(oor(m.read(pa, &mut b)), "a removed segment is gone");
    // bad segments
    assert!(matches!(
        m.add_file(file("y", 4096), 0, 0),
        Err(SegmentError::Invalid)
    ));
    assert!(matches!(
        m.add_file(file("z", 8192), 100, 4096),
        Err(SegmentError::Invalid)
    ));
    let small = SegmentedMemory::new(Arc::new(PhysMemory::new(GIB).unwrap()), 4 * MIB);
    small.add_file(file("s1", 4 * MIB), 0, 4 * MIB).unwrap();
    assert!(matches!(
        small.add_file(file("s2", 4096), 0, 4096),
        Err(SegmentError::NoSpace(4096))
    ));
}
