use super::*;
use crate::table::PageTable;
use crate::testutil::frames;

const U: Access = Access::READ;
const UW: Access = Access::READ.union(Access::WRITE);
const S: Access = Access::READ.union(Access::PRIV);
const SW: Access = UW.union(Access::PRIV);
const UX: Access = Access::READ.union(Access::EXEC);
const SX: Access = UX.union(Access::PRIV);

fn paging() -> X86Paging {
    X86Paging::default()
}

#[test]
fn encode_leaf_entries_match_the_sdm() {
    let f = paging();
    // 4 KiB user RW page at 0x1234_5000, executable: P|RW|US = 0x7.
    assert_eq!(
        f.encode_leaf(0x1234_5000, PageSize::Size4K, Perm::USER_RW | Perm::EXEC),
        0x1234_5007
    );
    // Same, not executable: XD (bit 63) set.
    assert_eq!(
        f.encode_leaf(0x1234_5000, PageSize::Size4K, Perm::USER_RW),
        0x8000_0000_1234_5007
    );
    // 2 MiB supervisor read-only executable page at 0x4020_0000: P|PS = 0x81.
    assert_eq!(
        f.encode_leaf(0x4020_0000, PageSize::Size2M, Perm::READ | Perm::EXEC),
        0x4020_0081
    );
    // 1 GiB user RW page at 0x1_4000_0000: P|RW|US|PS = 0x87, XD.
    assert_eq!(
        f.encode_leaf(0x1_4000_0000, PageSize::Size1G, Perm::USER_RW),
        0x8000_0001_4000_0087
    );
    // Table pointer: P|RW|US.
    assert_eq!(f.encode_table(0x7000), 0x7007);
    // Without NXE the XD bit is never written (it would be reserved).
    let no_nx = X86Paging { nxe: false, ..f };
    assert_eq!(
        no_nx.encode_leaf(0x5000, PageSize::Size4K, Perm::READ),
        0x5001
    );
}

#[test]
fn decode_entries() {
    let f = paging();
    let e = 0x8000_0000_4020_00e7; // 2 MiB, P|RW|US|A|D|PS, XD
    assert!(f.is_present(e));
    assert!(f.is_leaf(e, 2));
    assert!(!f.is_leaf(e & !PS, 2));
    assert!(
        f.is_leaf(e & !PS, 1),
        "every present PTE is a leaf (bit 7 is PAT there)"
    );
    assert_eq!(f.page_addr(e, PageSize::Size2M), 0x4020_0000);
    assert_eq!(f.rights(e), Perm::READ | Perm::WRITE | Perm::USER);
    assert_eq!(f.rights(0x1), Perm::READ | Perm::EXEC);
    assert_eq!(f.table_addr(0x8000_0000_0000_7027), 0x7000);
    // PAT of a large page (bit 12) is not part of the address.
    assert_eq!(f.page_addr(0x4020_1081, PageSize::Size2M), 0x4020_0000);
}

#[test]
fn reserved_bits_follow_sdm_4_5() {
    let f = paging(); // MAXPHYADDR 46
    let p = X86Flags::P.bits();
    // bits 51:MAXPHYADDR, at every level
    for level in 1..=4 {
        assert!(f.has_reserved_bits(p | 1 << 46, level));
        assert!(f.has_reserved_bits(p | 1 << 51, level));
        assert!(!f.has_reserved_bits(p | 1 << 45, level));
        // bits 62:52 are ignored
        assert!(!f.has_reserved_bits(p | 1 << 52 | 1 << 62, level));
    }
    // PS is reserved in a PML4E (and PML5E)
    assert!(f.has_reserved_bits(p | PS, 4));
    assert!(f.has_reserved_bits(p | PS, 5));
    // 1 GiB leaf: bits 29:13 reserved, 12 is PAT
    assert!(f.has_reserved_bits(p | PS | 1 << 13, 3));
    assert!(f.has_reserved_bits(p | PS | 1 << 29, 3));
    assert!(!f.has_reserved_bits(p | PS | 1 << 12 | 1 << 30, 3));
    // 2 MiB leaf: bits 20:13 reserved
    assert!(f.has_reserved_bits(p | PS | 1 << 20, 2));
    assert!(!f.has_reserved_bits(p | PS | 1 << 12 | 1 << 21, 2));
    // a PDPTE table pointer may have any address bits
    assert!(!f.has_reserved_bits(p | 1 << 13, 3));
    // without 1 GiB page support, PS in a PDPTE is reserved
    let no1g = X86Paging {
        page_1g: false,
        ..f
    };
    assert!(no1g.has_reserved_bits(p | PS | 1 << 30, 3));
    // without NXE, XD is reserved
    let no_nx = X86Paging { nxe: false, ..f };
    assert!(no_nx.has_reserved_bits(p | 1 << 63, 1));
    assert!(!f.has_reserved_bits(p | 1 << 63, 1));
}

#[test]
fn canonical_addresses() {
    let f = paging();
    assert!(f.input_ok(0x0000_7fff_ffff_f000));
    assert!(!f.input_ok(0x0000_8000_0000_0000));
    assert!(f.input_ok(0xffff_8000_0000_0000));
    assert!(!f.input_ok(0xfff7_8000_0000_0000));
    let five = X86Paging { levels: 5, ..f };
    assert!(five.input_ok(0x00ff_ffff_ffff_ffff));
    assert!(!five.input_ok(0x0100_0000_0000_0000));
    assert!(five.input_ok(0xff00_0000_0000_0000));
    assert!(!f.input_ok(0x00ff_ffff_ffff_ffff));
}

/// Maps one 4 KiB page at 0x40_0000 with `perm` and walks it with `access` under `f`.
fn try_access(f: X86Paging, perm: Perm, access: Access) -> Result<Translation, Fault> {
    let pt = PageTable::new(f, frames(16 << 20)).unwrap();
    pt.map(0x40_0000, 0x8000, PageSize::Size4K, perm).unwrap();
    pt.walk(0x40_0123, access)
}

use crate::walk::Translation;

fn allowed(f: X86Paging, perm: Perm, access: Access) -> bool {
    match try_access(f, perm, access) {
        Ok(t) => {
            assert_eq!(t.output, 0x8123);
            true
        }
        Err(fault) => {
            assert_eq!(fault.reason, FaultReason::Permission, "{fault}");
            assert_eq!(fault.level, 1);
            false
        }
    }
}

#[test]
fn user_accesses_need_user_pages_and_rw_for_writes() {
    let f = paging();
    let user_ro = Perm::READ | Perm::USER | Perm::EXEC;
    assert!(allowed(f, user_ro, U));
    assert!(!allowed(f, user_ro, UW));
    assert!(allowed(f, Perm::USER_RW, UW));
    assert!(!allowed(f, Perm::RW | Perm::EXEC, U), "supervisor page");
    assert!(allowed(f, user_ro, UX));
    assert!(!allowed(f, Perm::USER_RW, UX), "XD page");
    // CR0.WP does not matter for user writes
    let nowp = X86Paging { wp: false, ..f };
    assert!(!allowed(nowp, user_ro, UW));
}

#[test]
fn supervisor_writes_follow_cr0_wp() {
    let f = X86Paging {
        smap: false,
        ..paging()
    };
    let ro = Perm::READ;
    assert!(!allowed(f, ro, SW));
    assert!(allowed(X86Paging { wp: false, ..f }, ro, SW));
    assert!(allowed(f, Perm::RW, SW));
}

#[test]
fn smap_and_smep_guard_user_pages_from_the_supervisor() {
    let f = paging();
    let user = Perm::USER_RW | Perm::EXEC;
    assert!(
        !allowed(f, user, S),
        "SMAP blocks supervisor reads of user pages"
    );
    assert!(!allowed(f, user, SW));
    assert!(
        !allowed(f, user, SX),
        "SMEP blocks supervisor fetches from user pages"
    );
    let off = X86Paging {
        smap: false,
        smep: false,
        ..f
    };
    assert!(allowed(off, user, S));
    assert!(allowed(off, user, SW));
    assert!(allowed(off, user, SX));
    // SMAP does not apply to fetches, nor SMEP to data
    let smap_only = X86Paging { smep: false, ..f };
    assert!(allowed(smap_only, user, SX));
    // supervisor fetch from an XD supervisor page
    assert!(!allowed(f, Perm::RW, SX));
    assert!(allowed(f, Perm::RW | Perm::EXEC, SX));
}

#[test]
fn rights_are_intersected_over_levels() {
    let fr = frames(16 << 20);
    let f = paging();
    let pt = PageTable::new(f, fr).unwrap();
    pt.map(0x40_0000, 0x8000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    // Clear R/W in the PDE that points to the page table: writes fault even though the PTE
    // allows them; clear U/S in the PML4E: user reads fault.
    let mem = pt.memory();
    let pml4e = pt.root();
    let pdpt = f.table_addr(mem.load_u64(pml4e).unwrap());
    let pd = f.table_addr(mem.load_u64(pdpt).unwrap());
    let pde = pd + 2 * 8;
    let v = mem.load_u64(pde).unwrap();
    mem.store_u64(pde, v & !X86Flags::RW.bits()).unwrap();
    assert_eq!(
        pt.walk(0x40_0000, UW).unwrap_err().reason,
        FaultReason::Permission
    );
    assert!(pt.walk(0x40_0000, U).is_ok());
    let v = mem.load_u64(pml4e).unwrap();
    mem.store_u64(pml4e, v & !X86Flags::US.bits()).unwrap();
    assert_eq!(
        pt.walk(0x40_0000, U).unwrap_err().reason,
        FaultReason::Permission
    );
}

#[test]
fn accessed_and_dirty_are_set_only_by_successful_walks() {
    let f = paging();
    let pt = PageTable::new(f, frames(16 << 20)).unwrap();
    pt.map(0x40_0000, 0x8000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    pt.map(
        0x60_0000,
        0x20_0000,
        PageSize::Size2M,
        Perm::READ | Perm::USER,
    )
    .unwrap();
    let a = X86Flags::A.bits();
    let d = X86Flags::D.bits();
    let leaf = pt.lookup(0x40_0000).unwrap();
    assert_eq!(leaf.entry & (a | d), 0);
    // a failed walk (write to the read-only 2 MiB page) sets nothing
    assert!(pt.walk(0x60_0000, UW).is_err());
    assert_eq!(pt.lookup(0x60_0000).unwrap().entry & a, 0);
    let pml4e = pt.memory().load_u64(pt.root()).unwrap();
    assert_eq!(pml4e & a, 0, "no A in upper levels after a faulting walk");
    // a read sets A everywhere, not D
    pt.walk(0x40_0000, U).unwrap();
    assert_eq!(pt.lookup(0x40_0000).unwrap().entry & (a | d), a);
    assert_ne!(pt.memory().load_u64(pt.root()).unwrap() & a, 0);
    // a write sets D in the leaf only
    pt.walk(0x40_0008, UW).unwrap();
    assert_eq!(pt.lookup(0x40_0000).unwrap().entry & (a | d), a | d);
    assert_eq!(pt.memory().load_u64(pt.root()).unwrap() & d, 0);
    // D on a 2 MiB leaf
    pt.protect(0x60_0000, 2 << 20, Perm::USER_RW).unwrap();
    pt.walk(0x7f_fff8, UW).unwrap();
    assert_eq!(pt.lookup(0x60_0000).unwrap().entry & (a | d), a | d);
    // EAFE sets EA together with A
    let ea = X86Paging {
        extended_accessed: true,
        ..f
    };
    let pt = PageTable::new(ea, frames(16 << 20)).unwrap();
    pt.map(0x1000, 0x8000, PageSize::Size4K, Perm::READ)
        .unwrap();
    pt.walk(0x1000, S).unwrap();
    let e = pt.lookup(0x1000).unwrap().entry;
    assert_eq!(e & (a | X86Flags::EA.bits()), a | X86Flags::EA.bits());
    // with A/D off nothing is written
    let off = X86Paging { ad: false, ..f };
    let pt = PageTable::new(off, frames(16 << 20)).unwrap();
    pt.map(0x1000, 0x8000, PageSize::Size4K, Perm::USER_RW)
        .unwrap();
    pt.walk(0x1000, UW).unwrap();
    assert_eq!(pt.lookup(0x1000).unwrap().entry & (a | d), 0);
}

#[test]
fn page_fault_error_codes() {
    let f = paging();
    let np = try_access(f, Perm::USER_RW, S).map(|_| ()).unwrap_err();
    assert_eq!(np.reason, FaultReason::Permission); // SMAP
    assert_eq!(f.error_code(&np, S), pf_error::P);
    let pt = PageTable::new(f, frames(16 << 20)).unwrap();
    let miss = pt.walk(0x1000, UW).unwrap_err();
    assert_eq!((miss.reason, miss.level), (FaultReason::NotPresent, 4));
    assert_eq!(f.error_code(&miss, UW), pf_error::W | pf_error::U);
    let ro = try_access(f, Perm::READ | Perm::USER, UW).unwrap_err();
    assert_eq!(f.error_code(&ro, UW), 0x7);
    let rsvd = Fault {
        reason: FaultReason::Reserved,
        ..ro
    };
    assert_eq!(f.error_code(&rsvd, S), pf_error::P | pf_error::RSVD);
    let fetch = try_access(f, Perm::USER_RW, UX).unwrap_err();
    assert_eq!(f.error_code(&fetch, UX), 0x15);
}

#[test]
fn superpages_translate_with_their_offset() {
    let pt = PageTable::new(paging(), frames(16 << 20)).unwrap();
    pt.map(0x4000_0000, 0x1_c000_0000, PageSize::Size1G, Perm::USER_RW)
        .unwrap();
    pt.map(0x20_0000, 0x60_0000, PageSize::Size2M, Perm::USER_RW)
        .unwrap();
    let t = pt.walk(0x7654_3210, U).unwrap();
    assert_eq!((t.output, t.size), (0x1_f654_3210, PageSize::Size1G));
    assert_eq!(t.refs, 2);
    let t = pt.walk(0x3f_ffff, U).unwrap();
    assert_eq!((t.output, t.size), (0x7f_ffff, PageSize::Size2M));
    assert_eq!(t.refs, 3);
}

#[test]
fn five_level_paging() {
    let f = X86Paging {
        levels: 5,
        ..paging()
    };
    let pt = PageTable::new(f, frames(16 << 20)).unwrap();
    let va = 0x00ab_cdef_1234_5000;
    pt.map(va, 0x9000, PageSize::Size4K, Perm::USER_RW).unwrap();
    let t = pt.walk(va + 0x10, UW).unwrap();
    assert_eq!((t.output, t.refs), (0x9010, 5));
    assert_eq!(pt.table_frames(), 5);
    let four = PageTable::new(paging(), frames(16 << 20)).unwrap();
    assert!(matches!(
        four.map(va, 0x9000, PageSize::Size4K, Perm::READ),
        Err(crate::MapError::AddressWidth { .. })
    ));
}

#[test]
fn malformed_tables_fault_and_never_hang() {
    let f = paging();
    let pt = PageTable::new(f, frames(16 << 20)).unwrap();
    let mem = pt.memory();
    let root = pt.root();
    // A PML4 entry pointing at the PML4 itself (a "recursive" slot): the walk reads one entry
    // per level and ends at level 1, interpreting the PML4 as each lower table.
    mem.store_u64(root, root | 0x27).unwrap();
    let t = pt.walk(0, U).unwrap();
    assert_eq!((t.output, t.size, t.refs), (root, PageSize::Size4K, 4));
    // With A clear, setting A at level 4 changes the entry the walk read as level 3: the swap
    // there finds only A changed, already set, and the walk goes on without reading again.
    mem.store_u64(root, root | 0x7).unwrap();
    let t = pt.walk(0, U).unwrap();
    assert_eq!((t.output, t.refs), (root, 4));
    assert_eq!(mem.load_u64(root).unwrap(), root | 0x27);
    // An entry pointing outside memory.
    mem.store_u64(root + 8, (1 << 40) | 0x7).unwrap();
    let fault = pt.walk(1 << 39, U).unwrap_err();
    assert_eq!((fault.reason, fault.level), (FaultReason::OutsideMemory, 3));
    // A reserved bit in the middle of a walk.
    mem.store_u64(root + 16, 0x3000 | 1 << 50 | 0x7).unwrap();
    let fault = pt.walk(2 << 39, U).unwrap_err();
    assert_eq!((fault.reason, fault.level), (FaultReason::Reserved, 4));
    assert_eq!(fault.entry, 0x3000 | 1 << 50 | 0x7);
    // Non-canonical input.
    let fault = pt.walk(1 << 47, U).unwrap_err();
    assert_eq!(fault.reason, FaultReason::AddressWidth);
    // A root outside memory.
    let fault = crate::walk(
        &f,
        mem,
        u64::MAX - 0xfff,
        0,
        U,
        &mut crate::walk::Direct,
        &mut (),
    )
    .unwrap_err();
    assert_eq!(fault.reason, FaultReason::OutsideMemory);
}
