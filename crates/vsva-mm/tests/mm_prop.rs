//! Property test: random sequences of mmap / munmap / mprotect / madvise / fork / exit and
//! user reads and writes, on several processes, against a simple per-page reference model.
//! After every step the data each process reads, and whether its accesses succeed, must match
//! the reference; at the end, after every process exited, no frame, table or swap slot may be
//! left allocated.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;
use vsva_mem::{FrameAllocator, PhysMem, PhysMemory, Va};
use vsva_mm::{Advice, CpuArch, MapFlags, MmError, Process, Prot};

use common::manager_on;

/// All activity happens in a window of 32 pages so that operations overlap often.
const BASE: u64 = 0x1000_0000;
const PAGES: u64 = 32;

#[derive(Debug, Clone)]
enum Op {
    Map { start: u64, n: u64, prot: u8 },
    Unmap { start: u64, n: u64 },
    Protect { start: u64, n: u64, prot: u8 },
    DontNeed { start: u64, n: u64 },
    PageOut { start: u64, n: u64 },
    Write { page: u64, tag: u64 },
    Read { page: u64 },
    Fork,
    Exit,
}

fn op() -> impl Strategy<Value = (usize, Op)> {
    let range = (0..PAGES, 1u64..8);
    let op = prop_oneof![
        3 => (range.clone(), 0u8..4).prop_map(|((start, n), prot)| Op::Map { start, n, prot }),
        1 => range.clone().prop_map(|(start, n)| Op::Unmap { start, n }),
        2 => (range.clone(), 0u8..4).prop_map(|((start, n), prot)| Op::Protect { start, n, prot }),
        1 => range.clone().prop_map(|(start, n)| Op::DontNeed { start, n }),
        1 => range.prop_map(|(start, n)| Op::PageOut { start, n }),
        6 => (0..PAGES, 1u64..u64::MAX).prop_map(|(page, tag)| Op::Write { page, tag }),
        4 => (0..PAGES).prop_map(|page| Op::Read { page }),
        1 => Just(Op::Fork),
        1 => Just(Op::Exit),
    ];
    (0usize..4, op)
}

fn prot_of(p: u8) -> Prot {
    [Prot::empty(), Prot::READ, Prot::RW, Prot::RW | Prot::EXEC][p as usize]
}

/// The reference: for each page, its protection if mapped, and the value of its first word.
#[derive(Clone, Default)]
struct Model {
    prot: HashMap<u64, Prot>,
    data: HashMap<u64, u64>,
}

impl Model {
    fn all_mapped(&self, start: u64, n: u64) -> bool {
        (start..(start + n).min(PAGES + 8)).all(|p| self.prot.contains_key(&p))
    }
}

fn va(page: u64) -> Va {
    Va::new(BASE + page * 4096)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn memory_manager_matches_reference(
        arm in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let mem: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(256 << 20).unwrap());
        let frames = Arc::new(FrameAllocator::new(mem, 0, 256 << 20));
        let arch = if arm { CpuArch::Arm64 } else { CpuArch::X86_64 };
        let mm = manager_on(arch, frames.clone());
        let mut procs: Vec<(Arc<Process>, Model)> = vec![(mm.spawn().unwrap(), Model::default())];
        for (who, op) in ops {
            let i = who % procs.len();
            let count = procs.len();
            let (p, m) = &mut procs[i];
            match op {
                Op::Map { start, n, prot } => {
                    let got = p.mmap(Some(va(start)), n * 4096, prot_of(prot), MapFlags::FIXED);
                    prop_assert_eq!(got, Ok(va(start)));
                    for pg in start..start + n {
                        m.prot.insert(pg, prot_of(prot));
                        m.data.remove(&pg);
                    }
                }
                Op::Unmap { start, n } => {
                    prop_assert_eq!(p.munmap(va(start), n * 4096), Ok(()));
                    for pg in start..start + n {
                        m.prot.remove(&pg);
                        m.data.remove(&pg);
                    }
                }
                Op::Protect { start, n, prot } => {
                    let got = p.mprotect(va(start), n * 4096, prot_of(prot));
                    if m.all_mapped(start, n) {
                        prop_assert_eq!(got, Ok(()));
                        for pg in start..start + n {
                            m.prot.insert(pg, prot_of(prot));
                        }
                    } else {
                        let enomem = matches!(got, Err(MmError::NotMapped { .. }));
                        prop_assert!(enomem, "{:?}", got);
                    }
                }
                Op::DontNeed { start, n } | Op::PageOut { start, n } => {
                    let dontneed = matches!(op, Op::DontNeed { .. });
                    let advice = if dontneed { Advice::DontNeed } else { Advice::PageOut };
                    let got = p.madvise(va(start), n * 4096, advice);
                    if m.all_mapped(start, n) {
                        prop_assert_eq!(got, Ok(()));
                        if dontneed {
                            for pg in start..start + n {
                                m.data.remove(&pg);
                            }
                        }
                    } else {
                        let enomem = matches!(got, Err(MmError::NotMapped { .. }));
                        prop_assert!(enomem, "{:?}", got);
                    }
                }
                Op::Write { page, tag } => {
                    let got = p.write_bytes(va(page), &tag.to_le_bytes());
                    match m.prot.get(&page) {
                        None => prop_assert_eq!(got, Err(MmError::NoVma { va: va(page) })),
                        Some(pr) if !pr.contains(Prot::WRITE) => {
                            let denied = matches!(got, Err(MmError::AccessDenied { .. }));
                            prop_assert!(denied, "{:?}", got);
                        }
                        Some(_) => {
                            prop_assert_eq!(got, Ok(()));
                            m.data.insert(page, tag);
                        }
                    }
                }
                Op::Read { page } => {
                    let mut b = [0u8; 8];
                    let got = p.read_bytes(va(page), &mut b);
                    match m.prot.get(&page) {
                        None => prop_assert_eq!(got, Err(MmError::NoVma { va: va(page) })),
                        Some(pr) if pr.is_empty() => {
                            let denied = matches!(got, Err(MmError::AccessDenied { .. }));
                            prop_assert!(denied, "{:?}", got);
                        }
                        Some(_) => {
                            prop_assert_eq!(got, Ok(()));
                            prop_assert_eq!(u64::from_le_bytes(b), m.data.get(&page).copied().unwrap_or(0));
                        }
                    }
                }
                Op::Fork => {
                    if count < 4 {
                        let child = p.fork().unwrap();
                        let model = m.clone();
                        procs.push((child, model));
                    }
                }
                Op::Exit => {
                    if count > 1 {
                        let (p, _) = procs.remove(i);
                        prop_assert_eq!(p.exit(), Ok(()));
                    }
                }
            }
        }
        // Every process reads back exactly what the reference holds.
        for (p, m) in &procs {
            for (&page, &prot) in &m.prot {
                if prot.is_empty() {
                    continue;
                }
                let mut b = [0u8; 8];
                p.read_bytes(va(page), &mut b).unwrap();
                prop_assert_eq!(u64::from_le_bytes(b), m.data.get(&page).copied().unwrap_or(0));
            }
        }
        for (p, _) in procs.drain(..) {
            p.exit().unwrap();
        }
        prop_assert_eq!(frames.allocated_frames(), 0, "frames leaked");
        prop_assert_eq!(mm.swapped_pages(), 0, "swap slots leaked");
    }
}
