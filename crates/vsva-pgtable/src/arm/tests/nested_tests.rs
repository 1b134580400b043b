//! Arm stage 1 over Arm stage 2: stage-1 table addresses are IPAs, translated by stage 2.

use std::sync::Arc;

use vsva_mem::{FrameAllocator, PhysMem, PhysMemory, PhysWindow};

use super::*;
use crate::nested::{FaultClass, NestedFault, Stage2, nested_walk_classified};

/// Where the VM's RAM sits in host memory.
const RAM_HPA: u64 = 512 * MIB;
const RAM_SIZE: u64 = 64 * MIB;
/// The IPA the process page is mapped to.
const DATA_IPA: u64 = 0x10_0000;

struct Vm {
    host: Arc<PhysMemory>,
    s2: PageTable<ArmS2>,
    s1: PageTable<ArmS1>,
}

impl Vm {
    /// IPA `[0, RAM_SIZE)` mapped to `RAM_HPA + IPA` by 4 KiB pages of a 40-bit stage 2 (two
    /// concatenated level-1 tables); a process (stage 1 as `s1`) with `VA` mapped to
    /// `DATA_IPA`.
    fn new(s1: ArmS1, s2: ArmS2) -> Vm {
        let host = Arc::new(PhysMemory::new(RAM_HPA + RAM_SIZE).unwrap());
        let host_dyn: Arc<dyn PhysMem> = host.clone();
        let host_frames = Arc::new(FrameAllocator::new(host_dyn.clone(), 0, 256 * MIB));
        let ram: Arc<dyn PhysMem> = Arc::new(PhysWindow::new(host_dyn, RAM_HPA, RAM_SIZE).unwrap());
        let s2 = PageTable::new(s2, host_frames).unwrap();
        let mut ipa = 0;
        while ipa < RAM_SIZE {
            s2.map(ipa, RAM_HPA + ipa, PageSize::Size4K, Perm::RW)
                .unwrap();
            ipa += 0x1000;
        }
        let s1 =
            PageTable::new(s1, Arc::new(FrameAllocator::new(ram, 16 * MIB, RAM_SIZE))).unwrap();
        s1.map(VA, DATA_IPA, PageSize::Size4K, Perm::USER_RW)
            .unwrap();
        Vm { host, s2, s1 }
    }

    fn walk(&self, va: u64, access: Access) -> Result<Translation, NestedFault> {
        let s2 = Stage2 {
            format: self.s2.format(),
            mem: self.host.as_ref(),
            root: self.s2.root(),
        };
        nested_walk_classified(self.s1.format(), self.s1.root(), &s2, va, access, &mut ())
    }
}

fn s2() -> ArmS2 {
    ArmS2::new(40, 48)
}

#[test]
fn a_nested_arm_walk_translates_through_both_stages() {
    let vm = Vm::new(ArmS1::with_va_bits(48), s2());
    let t = vm.walk(VA + 0x123, EL0_R).unwrap();
    assert_eq!(t.output, RAM_HPA + DATA_IPA + 0x123);
    // Four stage-1 descriptors, each behind a 3-level stage-2 walk, then the output's:
    // 4 x (3 + 1) + 3.
    assert_eq!(t.refs, 19);
    assert_eq!(
        t.rights,
        Perm::USER_RW | Perm::READ,
        "S1 EL0 RW, S2 RW, no exec"
    );
}

#[test]
fn the_stage_1_leaf_and_its_ng_are_reported_to_the_observer() {
    let vm = Vm::new(ArmS1::default(), s2());
    let s2 = Stage2 {
        format: vm.s2.format(),
        mem: vm.host.as_ref(),
        root: vm.s2.root(),
    };
    let mut leaf = crate::walk::LastEntry::default();
    nested_walk_classified(vm.s1.format(), vm.s1.root(), &s2, VA, EL0_R, &mut leaf).unwrap();
    assert_eq!(leaf.level, 1);
    assert_eq!(leaf.entry, vm.s1.lookup(VA).unwrap().entry);
    assert!(
        non_global(leaf.entry),
        "a TLB tags this translation with the ASID"
    );
}

#[test]
fn a_stage_2_fault_on_a_stage_1_table_is_a_table_walk_fault_on_its_ipa() {
    let vm = Vm::new(ArmS1::with_va_bits(48), s2());
    // The IPA of the stage-1 level-2 descriptor used for VA (its table is an IPA).
    let desc_ipa = slot(&vm.s1, VA, 2);
    vm.s2.unmap(desc_ipa & !0xfff, 0x1000).unwrap();
    let e = vm.walk(VA, EL0_R).unwrap_err();
    assert_eq!(e.class, FaultClass::TableWalk, "SMMU CLASS = TT");
    assert_eq!(
        (e.fault.stage, e.fault.reason, e.fault.input),
        (Stage::Second, FaultReason::NotPresent, desc_ipa)
    );
    let arm = ArmFault::from_fault(&e.fault);
    assert_eq!((arm.kind, arm.level), (ArmFaultKind::Translation, 3));
}

#[test]
fn a_stage_2_fault_on_the_output_is_an_input_fault() {
    let vm = Vm::new(ArmS1::with_va_bits(48), s2());
    vm.s2.protect(DATA_IPA, 0x1000, Perm::READ).unwrap();
    vm.walk(VA, EL0_R).unwrap();
    let e = vm.walk(VA, EL0_W).unwrap_err();
    assert_eq!(e.class, FaultClass::Input, "SMMU CLASS = IN");
    assert_eq!(
        (e.fault.stage, e.fault.reason, e.fault.input),
        (Stage::Second, FaultReason::Permission, DATA_IPA)
    );
}

#[test]
fn a_stage_1_fault_is_an_input_fault_of_stage_1() {
    let vm = Vm::new(ArmS1::with_va_bits(48), s2());
    let e = vm.walk(VA + 0x1000, EL0_R).unwrap_err();
    assert_eq!(e.class, FaultClass::Input);
    assert_eq!(
        (e.fault.stage, e.fault.reason, e.fault.level),
        (Stage::First, FaultReason::NotPresent, 1)
    );
}

#[test]
fn a_stage_2_access_flag_fault_on_a_stage_1_table_is_a_table_walk_fault() {
    let vm = Vm::new(ArmS1::with_va_bits(48), s2());
    let desc_ipa = slot(&vm.s1, VA, 4);
    let leaf = vm.s2.lookup(desc_ipa).unwrap();
    vm.s2
        .replace_entry(leaf.slot, leaf.entry, leaf.entry & !AF)
        .unwrap();
    let e = vm.walk(VA, EL0_R).unwrap_err();
    assert_eq!(e.class, FaultClass::TableWalk);
    assert_eq!(
        (e.fault.stage, e.fault.reason, e.fault.input),
        (Stage::Second, FaultReason::AccessFlag, desc_ipa)
    );
}

#[test]
fn stage_1_hardware_updates_need_stage_2_write_permission_on_the_table() {
    let vm = Vm::new(s1(true, false), s2());
    let leaf_ipa = slot(&vm.s1, VA, 1);
    let leaf = vm.s1.lookup(VA).unwrap();
    vm.s1
        .replace_entry(leaf.slot, leaf.entry, leaf.entry & !AF)
        .unwrap();
    vm.s2
        .protect(leaf_ipa & !0xfff, 0x1000, Perm::READ)
        .unwrap();
    let e = vm.walk(VA, EL0_R).unwrap_err();
    assert_eq!(e.class, FaultClass::TableWalk);
    assert_eq!(
        (e.fault.stage, e.fault.reason, e.fault.input),
        (Stage::Second, FaultReason::Permission, leaf_ipa)
    );
    vm.s2.protect(leaf_ipa & !0xfff, 0x1000, Perm::RW).unwrap();
    vm.walk(VA, EL0_R).unwrap();
    assert_eq!(
        vm.s1.lookup(VA).unwrap().entry,
        leaf.entry,
        "AF set in guest memory"
    );
    assert_eq!(
        vm.host.load_u64(RAM_HPA + leaf_ipa).unwrap(),
        leaf.entry,
        "the descriptor's IPA is where stage 2 put it"
    );
}
