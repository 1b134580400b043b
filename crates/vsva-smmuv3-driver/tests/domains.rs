//! Each domain type's STE and CD, as the model's configuration lookup decodes them.

mod common;

use common::*;
use vsva_iommu::{DomainSpec, IommuError, IommuOps};
use vsva_smmuv3::spec::cd::Cd0;
use vsva_smmuv3::spec::cmd::Command;
use vsva_smmuv3::spec::ste::{Ste0, Ste1, s1dss, s1fmt};
use vsva_smmuv3::{ConfigFault, Granule, Stage1Config, StreamConfig, TranslationConfig};
use vsva_smmuv3_driver::tables::{IO_PGTABLE_MAIR, MAIR_EL1};

const ROOT: u64 = 0x3000_0000;

fn paging(root: u64) -> DomainSpec {
    DomainSpec::Paging {
        root,
        levels: 4,
        dirty_tracking: false,
        nest_parent: false,
    }
}

fn sva(root: u64) -> DomainSpec {
    DomainSpec::Sva {
        root,
        levels: 4,
        supervisor: false,
    }
}

fn translate(r: &Rig, ssid: Option<u32>) -> TranslationConfig {
    match r.unit.stream_config(DEV as u32, ssid) {
        Ok(StreamConfig::Translate(t)) => t,
        other => panic!("{other:?}"),
    }
}

fn stage1(r: &Rig, ssid: Option<u32>) -> Stage1Config {
    translate(r, ssid).stage1.expect("stage 1 translates")
}

/// STE words 0 and 1 of `DEV`, read back through the model's two-level table.
fn ste_words(r: &Rig) -> (Ste0, Ste1) {
    use vsva_smmuv3::spec::registers::{StrtabBase, offset};
    use vsva_smmuv3::spec::ste::L1Std;
    let base = StrtabBase::from_bits(r.unit.mmio_read(offset::STRTAB_BASE, 8)).addr() << 6;
    let l1 = L1Std::from_bits(r.mem.load_u64(base + (DEV as u64 >> 8) * 8).unwrap());
    let at = l1.l2() + (DEV as u64 & 0xff) * 64;
    (
        Ste0::from_bits(r.mem.load_u64(at).unwrap()),
        Ste1::from_bits(r.mem.load_u64(at + 8).unwrap()),
    )
}

#[test]
fn an_attached_device_aborts_until_a_domain_is_set() {
    let r = rig();
    r.driver.attach_device(rid(DEV), caps(8, false)).unwrap();
    assert_eq!(
        r.unit.stream_config(DEV as u32, None),
        Ok(StreamConfig::Abort)
    );
}

#[test]
fn an_identity_rid_is_a_bypass_ste() {
    let r = rig();
    r.driver.attach_device(rid(DEV), caps(8, false)).unwrap();
    r.driver
        .set_pasid(rid(DEV), pasid(0), 1, &DomainSpec::Identity)
        .unwrap();
    assert_eq!(
        r.unit.stream_config(DEV as u32, None),
        Ok(StreamConfig::Bypass)
    );
    assert_eq!(ste_words(&r).1.shcfg(), 1, "incoming shareability");
}

#[test]
fn a_paging_rid_translates_through_cd_0_with_s1dss_ssid0() {
    let r = rig();
    r.driver.attach_device(rid(DEV), caps(8, false)).unwrap();
    r.driver
        .set_pasid(rid(DEV), pasid(0), 7, &paging(ROOT))
        .unwrap();
    let s1 = stage1(&r, None);
    let ttb0 = s1.ttb0.unwrap();
    assert_eq!((ttb0.ttb, ttb0.tsz, ttb0.granule), (ROOT, 16, Granule::K4));
    assert_eq!((ttb0.ir, ttb0.or, ttb0.sh), (1, 1, 3));
    assert_eq!(s1.ttb1, None, "EPD1");
    assert_eq!(s1.mair, IO_PGTABLE_MAIR);
    assert_eq!(Some(s1.asid), r.driver.asid_of(rid(DEV), 0));
    assert!(s1.record && s1.abort && s1.aset && !s1.stall);
    assert_eq!(s1.ips_bits, 48);
    let (w0, w1) = ste_words(&r);
    assert_eq!((w0.s1fmt(), w0.s1cdmax()), (s1fmt::LINEAR, 8));
    assert_eq!(w1.s1dss(), s1dss::SSID0);
    // CD 0 belongs to the RID: SubstreamID 0 is F_STREAM_DISABLED.
    assert_eq!(
        r.unit.stream_config(DEV as u32, Some(0)),
        Err(ConfigFault::StreamDisabled)
    );
}

#[test]
fn an_sva_pasid_cd_has_the_process_table_its_asid_and_mair_el1() {
    let r = rig();
    r.driver.attach_device(rid(DEV), caps(8, true)).unwrap();
    r.driver
        .set_pasid(rid(DEV), pasid(5), 9, &sva(ROOT))
        .unwrap();
    let s1 = stage1(&r, Some(5));
    assert_eq!(s1.ttb0.unwrap().ttb, ROOT);
    assert_eq!(s1.ttb0.unwrap().tsz, 16, "64 - vabits_actual");
    assert_eq!(s1.mair, MAIR_EL1);
    assert!(!s1.ha && !s1.hd, "arm_smmu_make_sva_cd sets no HTTU");
    assert_eq!(Some(s1.asid), r.driver.asid_of(rid(DEV), 5));
    assert_ne!(s1.asid, 0);
    let t = translate(&r, Some(5));
    assert_eq!(t.eats, vsva_smmuv3::spec::ste::eats::TRANS, "full ATS");
    // No RID domain: requests without PASID terminate.
    assert_eq!(ste_words(&r).1.s1dss(), s1dss::TERMINATE);
    assert_eq!(
        r.unit.stream_config(DEV as u32, None),
        Err(ConfigFault::StreamDisabled)
    );
}

#[test]
fn attachments_of_one_domain_share_an_asid_and_other_domains_get_their_own() {
    let r = rig();
    r.driver.attach_device(rid(DEV), caps(8, false)).unwrap();
    r.driver
        .attach_device(rid(DEV + 1), caps(8, false))
        .unwrap();
    r.driver
        .set_pasid(rid(DEV), pasid(1), 3, &sva(ROOT))
        .unwrap();
    r.driver
        .set_pasid(rid(DEV + 1), pasid(1), 3, &sva(ROOT))
        .unwrap();
    r.driver
        .set_pasid(rid(DEV), pasid(2), 4, &sva(ROOT + 0x1000))
        .unwrap();
    let a = r.driver.asid_of(rid(DEV), 1).unwrap();
    assert_eq!(r.driver.asid_of(rid(DEV + 1), 1), Some(a));
    assert_ne!(r.driver.asid_of(rid(DEV), 2), Some(a));
}

#[test]
fn an_identity_rid_with_pasids_bypasses_through_s1dss() {
    let r = rig();
    r.driver.attach_device(rid(DEV), caps(8, false)).unwrap();
    r.driver
        .set_pasid(rid(DEV), pasid(0), 1, &DomainSpec::Identity)
        .unwrap();
    r.driver
        .set_pasid(rid(DEV), pasid(3), 2, &sva(ROOT))
        .unwrap();
    assert_eq!(ste_words(&r).1.s1dss(), s1dss::BYPASS);
    assert_eq!(translate(&r, None).stage1, None);
    assert_eq!(stage1(&r, Some(3)).ttb0.unwrap().ttb, ROOT);
    // The last PASID gone, the STE bypasses again.
    r.driver.clear_pasid(rid(DEV), pasid(3)).unwrap();
    assert_eq!(
        r.unit.stream_config(DEV as u32, None),
        Ok(StreamConfig::Bypass)
    );
}

#[test]
fn few_pasids_get_a_linear_cd_table() {
    let r = rig();
    r.driver.attach_device(rid(DEV), caps(5, false)).unwrap();
    let (_, fmt, max) = r.driver.master_tables(rid(DEV)).unwrap();
    assert_eq!((fmt, max), (s1fmt::LINEAR, 5));
}

#[test]
fn many_pasids_get_a_two_level_cd_table_of_64k_leaves() {
    let r = rig();
    r.driver.attach_device(rid(DEV), caps(20, false)).unwrap();
    r.driver
        .set_pasid(rid(DEV), pasid(0x1_2345), 2, &sva(ROOT))
        .unwrap();
    let (w0, _) = ste_words(&r);
    assert_eq!((w0.s1fmt(), w0.s1cdmax()), (s1fmt::L2_64K, 20));
    assert_eq!(stage1(&r, Some(0x1_2345)).ttb0.unwrap().ttb, ROOT);
    // A SubstreamID whose level-2 table was never made is C_BAD_SUBSTREAMID.
    assert!(matches!(
        r.unit.stream_config(DEV as u32, Some(0x5_0000)),
        Err(ConfigFault::BadSubstreamId { .. })
    ));
}

#[test]
fn without_pasid_support_the_device_gets_one_cd() {
    let r = rig();
    r.driver.attach_device(rid(DEV), caps(0, false)).unwrap();
    r.driver
        .set_pasid(rid(DEV), pasid(0), 7, &paging(ROOT))
        .unwrap();
    assert_eq!(ste_words(&r).0.s1cdmax(), 0);
    assert_eq!(stage1(&r, None).ttb0.unwrap().ttb, ROOT);
}

#[test]
fn clearing_an_sva_pasid_writes_the_epd0_cd_before_invalidating_then_clears_it() {
    let r = rig();
    r.driver.attach_device(rid(DEV), caps(8, true)).unwrap();
    r.driver
        .set_pasid(rid(DEV), pasid(5), 9, &sva(ROOT))
        .unwrap();
    let asid = r.driver.asid_of(rid(DEV), 5).unwrap();
    let (table, _, _) = r.driver.master_tables(rid(DEV)).unwrap();
    *r.hooks.watch.lock().unwrap() = Some((r.mem.clone(), table + 5 * 64));
    let m = r.mark();
    r.driver.clear_pasid(rid(DEV), pasid(5)).unwrap();
    // At the TLBI the CD was the "fault everything" one: EPD0, same ASID, no stall/record.
    let seen = r.hooks.watched.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let w0 = Cd0::from_bits(seen[0]);
    assert!(w0.v() && w0.epd0() && !w0.s() && !w0.r());
    assert_eq!(w0.asid(), asid);
    let work = r.work_since(m);
    assert!(
        matches!(
            work.as_slice(),
            // EPD0 in word 0 (hitless: TTB0 is unused once EPD0 is set), then TTB0 zeroed.
            [
                Command::CfgiCd { ssid: 5, leaf: true, .. },
                Command::CfgiCd { ssid: 5, leaf: true, .. },
                Command::TlbiNhAsid { asid: a, .. },
                Command::AtcInv { ssid: Some(5), size: 52, .. },
                Command::CfgiCd { ssid: 5, .. },
                ..
            ] if *a == asid
        ),
        "{work:?}"
    );
    // No PASID left: the STE aborts again.
    assert_eq!(
        r.unit.stream_config(DEV as u32, Some(5)),
        Ok(StreamConfig::Abort)
    );
    assert_eq!(r.driver.asid_of(rid(DEV), 5), None);
}

#[test]
fn a_cd_is_written_with_v_last_and_synced_at_each_step() {
    let r = rig();
    r.driver.attach_device(rid(DEV), caps(8, false)).unwrap();
    let m = r.mark();
    r.driver
        .set_pasid(rid(DEV), pasid(2), 3, &sva(ROOT))
        .unwrap();
    let cmds = r.commands_since(m);
    // CD words 1..7 then word 0 (each CFGI_CD + SYNC), then the STE that points at the table.
    assert!(
        matches!(
            cmds.as_slice(),
            [
                Command::CfgiCd { ssid: 2, .. },
                Command::Sync { .. },
                Command::CfgiCd { ssid: 2, .. },
                Command::Sync { .. },
                Command::CfgiSte { leaf: true, .. },
                Command::Sync { .. },
                ..
            ]
        ),
        "{cmds:?}"
    );
}

#[test]
fn clearing_a_paging_rid_blocks_it() {
    let r = rig();
    r.driver.attach_device(rid(DEV), caps(0, false)).unwrap();
    r.driver
        .set_pasid(rid(DEV), pasid(0), 7, &paging(ROOT))
        .unwrap();
    let asid = r.driver.asid_of(rid(DEV), 0).unwrap();
    let m = r.mark();
    r.driver.clear_pasid(rid(DEV), pasid(0)).unwrap();
    assert_eq!(
        r.unit.stream_config(DEV as u32, None),
        Ok(StreamConfig::Abort)
    );
    assert!(
        r.work_since(m)
            .contains(&Command::TlbiNhAsid { vmid: 0, asid })
    );
}

#[test]
fn replacing_a_pasids_domain_is_hitless_and_frees_the_old_asid() {
    let r = rig();
    r.driver.attach_device(rid(DEV), caps(8, false)).unwrap();
    r.driver
        .set_pasid(rid(DEV), pasid(1), 3, &sva(ROOT))
        .unwrap();
    let old = r.driver.asid_of(rid(DEV), 1).unwrap();
    r.driver
        .set_pasid(rid(DEV), pasid(1), 4, &sva(ROOT + 0x2000))
        .unwrap();
    assert_eq!(stage1(&r, Some(1)).ttb0.unwrap().ttb, ROOT + 0x2000);
    assert_ne!(r.driver.asid_of(rid(DEV), 1), Some(old));
}

#[test]
fn dirty_tracking_sets_ha_and_hd_in_a_paging_cd() {
    let r = rig();
    r.driver.attach_device(rid(DEV), caps(0, false)).unwrap();
    r.driver
        .set_pasid(
            rid(DEV),
            pasid(0),
            7,
            &DomainSpec::Paging {
                root: ROOT,
                levels: 4,
                dirty_tracking: true,
                nest_parent: false,
            },
        )
        .unwrap();
    let s1 = stage1(&r, None);
    assert!(s1.ha && s1.hd);
}

#[test]
fn a_pasid_beyond_the_devices_width_is_einval() {
    let r = rig();
    r.driver.attach_device(rid(DEV), caps(4, false)).unwrap();
    let e = r
        .driver
        .set_pasid(rid(DEV), pasid(16), 1, &sva(ROOT))
        .unwrap_err();
    assert_eq!(e.errno(), vsva_mem::Errno::EINVAL, "{e}");
    // The widest PASID that fits works.
    r.driver
        .set_pasid(rid(DEV), pasid(15), 1, &sva(ROOT))
        .unwrap();
}

#[test]
fn a_streamid_beyond_sidsize_is_erange() {
    let r = rig_with(
        vsva_smmuv3::Smmuv3Config {
            sid_bits: 8,
            ..Default::default()
        },
        None,
    );
    let e = r
        .driver
        .attach_device(rid(0x100), caps(0, false))
        .unwrap_err();
    let IommuError::Driver(f) = &e else {
        panic!("{e:?}")
    };
    let d = f
        .get()
        .downcast_ref::<vsva_smmuv3_driver::DriverError>()
        .unwrap();
    assert!(matches!(
        d,
        vsva_smmuv3_driver::DriverError::SidOutOfRange(0x100)
    ));
    assert_eq!(d.errno(), vsva_mem::Errno::ERANGE);
}

#[test]
fn a_domain_for_an_unknown_device_is_enodev() {
    let r = rig();
    let e = r
        .driver
        .set_pasid(rid(DEV), pasid(0), 1, &DomainSpec::Identity)
        .unwrap_err();
    assert_eq!(e, IommuError::NoDevice(rid(DEV)));
}

#[test]
fn identity_on_a_pasid_and_nested_domains_are_eopnotsupp() {
    let r = rig();
    r.driver.attach_device(rid(DEV), caps(8, false)).unwrap();
    let e = r
        .driver
        .set_pasid(rid(DEV), pasid(3), 1, &DomainSpec::Identity)
        .unwrap_err();
    assert_eq!(e.errno(), vsva_mem::Errno::EOPNOTSUPP);
    let e = r
        .driver
        .set_pasid(
            rid(DEV),
            pasid(3),
            1,
            &DomainSpec::Nested {
                s1: vsva_iommu::NestedS1::Table {
                    root: 0,
                    levels: 4,
                    supervisor: false,
                },
                s2_root: ROOT,
                s2_levels: 4,
                parent_did: 1,
            },
        )
        .unwrap_err();
    assert_eq!(e.errno(), vsva_mem::Errno::EOPNOTSUPP);
    // Nothing was written.
    assert!(matches!(
        r.unit.stream_config(DEV as u32, Some(3)),
        Err(_) | Ok(StreamConfig::Abort)
    ));
}

#[test]
fn a_stall_capable_master_gets_cd_s_and_others_get_s1stalld() {
    let r = rig();
    r.driver
        .add_master(
            rid(DEV),
            vsva_smmuv3_driver::MasterOptions {
                ssid_bits: 8,
                stall: true,
                ..Default::default()
            },
        )
        .unwrap();
    r.driver
        .set_pasid(rid(DEV), pasid(1), 2, &sva(ROOT))
        .unwrap();
    assert!(stage1(&r, Some(1)).stall);
    assert!(!translate(&r, Some(1)).s1stalld);
    // A PCIe device (attach_device) must not stall.
    r.driver.attach_device(rid(DEV + 1), caps(8, true)).unwrap();
    r.driver
        .set_pasid(rid(DEV + 1), pasid(1), 2, &sva(ROOT))
        .unwrap();
    let Ok(StreamConfig::Translate(t)) = r.unit.stream_config(DEV as u32 + 1, Some(1)) else {
        panic!()
    };
    assert!(t.s1stalld && !t.stage1.unwrap().stall);
}

#[test]
fn an_ats_master_changing_its_rid_domain_has_its_atc_invalidated() {
    let r = rig();
    r.driver.attach_device(rid(DEV), caps(8, true)).unwrap();
    r.driver
        .set_pasid(rid(DEV), pasid(0), 7, &paging(ROOT))
        .unwrap();
    let m = r.mark();
    r.driver
        .set_pasid(rid(DEV), pasid(0), 8, &DomainSpec::Identity)
        .unwrap();
    assert!(r.work_since(m).iter().any(|c| matches!(
        c,
        Command::AtcInv {
            ssid: None,
            size: 52,
            ..
        }
    )));
    assert_eq!(
        r.unit.stream_config(DEV as u32, None),
        Ok(StreamConfig::Bypass)
    );
    assert!(
        r.endpoints
            .invalidations
            .lock()
            .unwrap()
            .iter()
            .any(|i| i.pasid.is_none())
    );
}

#[test]
fn process_tables_of_3_levels_are_39_bit_and_of_5_levels_eopnotsupp() {
    let r = rig();
    r.driver.attach_device(rid(DEV), caps(8, false)).unwrap();
    let three = DomainSpec::Sva {
        root: ROOT,
        levels: 3,
        supervisor: false,
    };
    r.driver.set_pasid(rid(DEV), pasid(1), 2, &three).unwrap();
    assert_eq!(stage1(&r, Some(1)).ttb0.unwrap().tsz, 25);
    let five = DomainSpec::Sva {
        root: ROOT,
        levels: 5,
        supervisor: false,
    };
    let e = r
        .driver
        .set_pasid(rid(DEV), pasid(2), 3, &five)
        .unwrap_err();
    assert_eq!(e.errno(), vsva_mem::Errno::EOPNOTSUPP);
}

#[test]
fn a_new_level_2_cd_table_is_published_with_a_non_leaf_cfgi_cd() {
    let r = rig();
    r.driver.attach_device(rid(DEV), caps(20, false)).unwrap();
    let m = r.mark();
    r.driver
        .set_pasid(rid(DEV), pasid(0x4_0001), 2, &sva(ROOT))
        .unwrap();
    assert_eq!(
        r.work_since(m)[0],
        Command::CfgiCd {
            sid: DEV as u32,
            ssid: 0x4_0001,
            leaf: false
        }
    );
    // The next PASID in the same level-2 table needs none.
    let m = r.mark();
    r.driver
        .set_pasid(rid(DEV), pasid(0x4_0002), 2, &sva(ROOT))
        .unwrap();
    assert!(!r.work_since(m).contains(&Command::CfgiCd {
        sid: DEV as u32,
        ssid: 0x4_0002,
        leaf: false
    }));
}
