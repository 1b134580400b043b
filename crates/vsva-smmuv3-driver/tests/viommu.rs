//! The vIOMMU's driver side: a guest's STE words checked as `arm_smmu_validate_vste` checks
//! them, its invalidation commands converted and issued as `arm_vsmmu_cache_invalidate`
//! does, and a storm of commands the SMMU finds illegal leaving the host's queue working.

mod common;

use common::guest::*;
use common::*;
use vsva_iommu::{DeviceCaps, IommuOps, NestedS1};
use vsva_mem::{Errno, Rid};
use vsva_smmuv3::spec::cmd::{Command, TlbiRange};
use vsva_smmuv3::spec::registers::offset;
use vsva_smmuv3::spec::ste::{Ste0, Ste1, config, eats};
use vsva_smmuv3_driver::uapi::{VIOMMU_INVALIDATE_DATA_ARM_SMMUV3, VIOMMU_TYPE_ARM_SMMUV3};
use vsva_smmuv3_driver::{convert_user_cmd, validate_vste};

const VMID: u16 = 9;

fn ctx() -> Ctx {
    Ctx {
        vmid: VMID,
        devs: vec![(VSID, rid(DEV))],
    }
}

fn alloc(r: &Rig, ste: [u64; 2]) -> Result<NestedS1, Errno> {
    r.driver.viommu_alloc_domain_nested(&ctx(), &vste_data(ste))
}

const CDTAB: u64 = 0x4000_0000;

#[test]
fn guest_stes_are_checked_as_arm_smmu_validate_vste() {
    let r = rig();
    let s1 = vste_s1(CDTAB, 4, 0);
    // Cfg = S1 with its CD table: accepted, translates.
    assert_eq!(
        alloc(&r, s1),
        Ok(NestedS1::StreamEntry {
            ste: s1,
            ats: false,
            translates: true
        })
    );
    // V = 0: an all-zero entry, whatever else was set.
    assert_eq!(
        alloc(&r, [!1u64, u64::MAX]),
        Ok(NestedS1::StreamEntry {
            ste: [0, 0],
            ats: false,
            translates: false
        })
    );
    // EATS = full ATS: cleared from the words, kept as `ats` (for a stage-1 Config only).
    let with_ats = vste_s1(CDTAB, 4, eats::TRANS);
    assert_eq!(
        alloc(&r, with_ats),
        Ok(NestedS1::StreamEntry {
            ste: s1,
            ats: true,
            translates: true
        })
    );
    let cfg = |c: u8| {
        [
            Ste0::new().with_v(true).with_config(c).into_bits(),
            Ste1::new().with_eats(eats::TRANS).into_bits(),
        ]
    };
    let bypass = Ste0::new()
        .with_v(true)
        .with_config(config::BYPASS)
        .into_bits();
    assert_eq!(
        alloc(&r, cfg(config::BYPASS)),
        Ok(NestedS1::StreamEntry {
            ste: [bypass, 0],
            ats: false,
            translates: false
        })
    );
    assert!(matches!(
        alloc(&r, cfg(config::ABORT)),
        Ok(NestedS1::StreamEntry {
            translates: false,
            ..
        })
    ));
    // EIO: Configs other than abort, bypass, stage 1.
    for c in [1, 2, 3, config::S2_TRANS, config::NESTED] {
        assert_eq!(alloc(&r, cfg(c)), Err(Errno::EIO), "Config {c:#b}");
    }
    // EIO: fields nesting does not allow — word 0 bits 58:52, word 1 MEV (19), S2FWB (25),
    // STRW (31:30), SHCFG (45:44), and the stage-2 words' neighbours.
    for bit in [52, 55, 58] {
        assert_eq!(
            alloc(&r, [s1[0] | 1 << bit, s1[1]]),
            Err(Errno::EIO),
            "w0 bit {bit}"
        );
    }
    for bit in [8, 19, 25, 26, 30, 31, 44, 63] {
        assert_eq!(
            alloc(&r, [s1[0], s1[1] | 1 << bit]),
            Err(Errno::EIO),
            "w1 bit {bit}"
        );
    }
    // EIO: EATS split-stage (0b10) or reserved (0b11).
    for e in [eats::S1CHK, 3] {
        assert_eq!(alloc(&r, vste_s1(CDTAB, 4, e)), Err(Errno::EIO), "EATS {e}");
    }
    // The copy: another data type is EINVAL, fewer than 16 bytes EINVAL, non-zero bytes
    // past the struct E2BIG; zeroes past it are fine.
    let mut d = vste_data(s1);
    d.ty = 1;
    assert_eq!(
        r.driver.viommu_alloc_domain_nested(&ctx(), &d),
        Err(Errno::EINVAL)
    );
    let mut d = vste_data(s1);
    d.bytes.truncate(8);
    assert_eq!(
        r.driver.viommu_alloc_domain_nested(&ctx(), &d),
        Err(Errno::EINVAL)
    );
    let mut d = vste_data(s1);
    d.bytes.extend([0, 0, 0, 1]);
    assert_eq!(
        r.driver.viommu_alloc_domain_nested(&ctx(), &d),
        Err(Errno::E2BIG)
    );
    d.bytes.truncate(16);
    d.bytes.extend([0; 8]);
    assert!(r.driver.viommu_alloc_domain_nested(&ctx(), &d).is_ok());
    // The same checks as a plain function.
    assert_eq!(validate_vste(with_ats), Ok((s1, true)));
}

#[test]
fn the_smmuv3_viommu_type_needs_both_stages_and_s2fwb() {
    assert!(rig().driver.viommu_type(VIOMMU_TYPE_ARM_SMMUV3));
    assert!(!rig().driver.viommu_type(0), "DEFAULT is iommufd's own");
    assert!(!rig().driver.viommu_type(2), "no Tegra241 CMDQV");
    let no_s2 = rig_with(
        vsva_smmuv3::Smmuv3Config {
            stage2: false,
            ..Default::default()
        },
        None,
    );
    assert!(!no_s2.driver.viommu_type(VIOMMU_TYPE_ARM_SMMUV3));
    assert!(!no_s2.driver.nesting());
    assert!(r_user_pasid_table());
}

fn r_user_pasid_table() -> bool {
    rig().driver.user_pasid_table()
}

fn range(addr: u64) -> TlbiRange {
    TlbiRange {
        addr,
        leaf: true,
        ttl: 0,
        tg: 0,
        num: 0,
        scale: 0,
    }
}

fn entries(cmds: &[[u64; 2]]) -> Entries {
    Entries {
        ty: VIOMMU_INVALIDATE_DATA_ARM_SMMUV3,
        entries: cmds
            .iter()
            .map(|c| c.iter().flat_map(|w| w.to_le_bytes()).collect())
            .collect(),
    }
}

#[test]
fn guest_commands_get_the_vmid_and_the_physical_streamid() {
    let r = rig();
    r.driver.attach_device(rid(DEV), caps(8, false)).unwrap();
    let guest = [
        Command::TlbiNsnhAll,
        Command::TlbiNhVa {
            vmid: 0x55,
            asid: 7,
            range: range(0x1234_5000),
        },
        Command::TlbiNhVaa {
            vmid: 0x66,
            range: range(0x8000),
        },
        Command::TlbiNhAll { vmid: 1 },
        Command::TlbiNhAsid { vmid: 2, asid: 7 },
        Command::CfgiCd {
            sid: VSID as u32,
            ssid: 1,
            leaf: true,
        },
        Command::CfgiCdAll { sid: VSID as u32 },
    ];
    let raw: Vec<[u64; 2]> = guest.iter().map(Command::encode).collect();
    let mark = r.mark();
    let out = r.driver.viommu_cache_invalidate(&ctx(), &entries(&raw));
    assert_eq!((out.consumed, out.result), (7, Ok(())));
    let sid = DEV as u32;
    assert_eq!(
        r.work_since(mark),
        vec![
            Command::TlbiNhAll { vmid: VMID },
            Command::TlbiNhVa {
                vmid: VMID,
                asid: 7,
                range: range(0x1234_5000),
            },
            Command::TlbiNhVaa {
                vmid: VMID,
                range: range(0x8000),
            },
            Command::TlbiNhAll { vmid: VMID },
            Command::TlbiNhAsid {
                vmid: VMID,
                asid: 7
            },
            Command::CfgiCd {
                sid,
                ssid: 1,
                leaf: true,
            },
            Command::CfgiCdAll { sid },
        ]
    );
    // ATC_INV's StreamID too.
    let atc = Command::AtcInv {
        sid: VSID as u32,
        ssid: Some(1),
        global: false,
        size: 0,
        addr: 0x5000,
    }
    .encode();
    let Ok(c) = convert_user_cmd(atc, VMID, |v| (v == VSID as u32).then_some(sid)) else {
        panic!()
    };
    assert_eq!(c, [(atc[0] & 0xffff_ffff) | (sid as u64) << 32, atc[1]]);
}

#[test]
fn a_bad_command_stops_the_list_where_linux_stops_it() {
    let r = rig();
    let ok = Command::TlbiNhAsid { vmid: 0, asid: 3 }.encode();
    let unknown_vsid = Command::CfgiCdAll { sid: 0x99 }.encode();
    // Opcodes a guest may not send: the host's own stage-2 and configuration commands.
    let forbidden = [
        Command::TlbiS12Vmall { vmid: VMID }.encode(),
        Command::TlbiS2Ipa {
            vmid: VMID,
            range: range(0),
        }
        .encode(),
        Command::CfgiSte {
            sid: VSID as u32,
            leaf: true,
        }
        .encode(),
        Command::TlbiEl2All.encode(),
        [0xff, 0],
    ];
    let mark = r.mark();
    let out = r
        .driver
        .viommu_cache_invalidate(&ctx(), &entries(&[ok, ok, unknown_vsid, ok]));
    assert_eq!((out.consumed, out.result), (2, Err(Errno::EIO)));
    // The entries counted were issued.
    assert_eq!(
        r.work_since(mark),
        vec![
            Command::TlbiNhAsid {
                vmid: VMID,
                asid: 3
            };
            2
        ]
    );
    for f in forbidden {
        let out = r.driver.viommu_cache_invalidate(&ctx(), &entries(&[ok, f]));
        assert_eq!((out.consumed, out.result), (1, Err(Errno::EIO)), "{f:x?}");
    }
    // The array: another type, or no entries, is EINVAL before anything is consumed.
    let mut e = entries(&[ok]);
    e.ty = 0;
    let out = r.driver.viommu_cache_invalidate(&ctx(), &e);
    assert_eq!((out.consumed, out.result), (0, Err(Errno::EINVAL)));
    let out = r.driver.viommu_cache_invalidate(&ctx(), &entries(&[]));
    assert_eq!((out.consumed, out.result), (0, Err(Errno::EINVAL)));
    // An entry with non-zero bytes past the 16 the driver knows: E2BIG, nothing consumed.
    let mut e = entries(&[ok, ok]);
    e.entries[1].extend([0, 1]);
    let out = r.driver.viommu_cache_invalidate(&ctx(), &e);
    assert_eq!((out.consumed, out.result), (0, Err(Errno::E2BIG)));
}

#[test]
fn a_storm_of_illegal_guest_commands_leaves_the_host_queue_working() {
    let r = rig();
    let iommu = vsva_iommu::Iommu::new(r.driver.clone());
    let host = Rid::from_raw(0x0900);
    iommu.add_device(host, DeviceCaps::default(), 0).unwrap();
    let domain = iommu.alloc_paging_domain().unwrap();
    iommu.attach_domain(host, pasid(0), &domain, None).unwrap();
    // TLBI_NH_VA with a RES0 bit of dword 1 set (bit 5, between LEAF and TTL): CERROR_ILL.
    let good = Command::TlbiNhVa {
        vmid: 0,
        asid: 7,
        range: range(0x1000),
    }
    .encode();
    let bad = [good[0], good[1] | 1 << 5];
    let caps = r.unit.config().command_caps();
    assert!(Command::decode(good, &caps).is_ok());
    assert!(Command::decode(bad, &caps).is_err(), "the SMMU refuses it");
    let storm: Vec<[u64; 2]> = (0..300)
        .map(|i| if i % 7 == 3 { good } else { bad })
        .collect();
    let out = r.driver.viommu_cache_invalidate(&ctx(), &entries(&storm));
    // Linux: the gerror handler skips each (arm_smmu_cmdq_skip_err) and the CMD_SYNCs
    // complete, so the call succeeds with every entry consumed.
    assert_eq!((out.consumed, out.result), (300, Ok(())));
    // The legal ones among them were carried out, with the vIOMMU's VMID.
    let done = r
        .hooks
        .tlbi
        .lock()
        .unwrap()
        .iter()
        .filter(|c| {
            matches!(
                c,
                Command::TlbiNhVa {
                    vmid: VMID,
                    asid: 7,
                    ..
                }
            )
        })
        .count();
    assert_eq!(done, storm.iter().filter(|c| **c == good).count());
    let gerror = r.unit.mmio_read(offset::GERROR, 4) ^ r.unit.mmio_read(offset::GERRORN, 4);
    assert_eq!(gerror & 1, 0, "CMDQ_ERR acknowledged");
    // The host's own commands still complete: a map, an unmap and its TLBI + CMD_SYNC.
    domain
        .map(
            0x10_0000,
            0x2000_0000,
            0x1000,
            vsva_pgtable::Perm::RW,
            false,
        )
        .unwrap();
    let mark = r.mark();
    assert_eq!(domain.unmap(0x10_0000, 0x1000), 0x1000);
    assert!(!r.work_since(mark).is_empty());
    r.driver.issue_commands(&[Command::TlbiNsnhAll]).unwrap();
}
