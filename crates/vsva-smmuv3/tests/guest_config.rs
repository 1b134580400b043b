//! A guest's vSMMU built from the host's ID registers (IHI 0070 §6.3.1–6.3.6): the
//! configuration read back from SMMU_IDR0..5 as a VMM gets them from `IOMMU_GET_HW_INFO`, and
//! cut down to what the host can carry out.

use std::sync::Arc;

use vsva_mem::{PhysMem, PhysMemory};
use vsva_pcie::MsiLog;
use vsva_smmuv3::spec::registers::{Idr0, Idr1, Idr3, Idr5, offset};
use vsva_smmuv3::{Httu, Smmuv3, Smmuv3Config, StallModel};

fn round_trip(c: &Smmuv3Config) -> Smmuv3Config {
    Smmuv3Config::from_registers(c.idrs(), c.iidr)
}

#[test]
fn the_id_registers_give_back_the_configuration() {
    let d = Smmuv3Config::default();
    assert_eq!(round_trip(&d), d);
    let configs = [
        Smmuv3Config {
            stage2: false,
            stall: StallModel::Force,
            httu: Httu::Access,
            oas: 6,
            gran16k: true,
            gran64k: true,
            ril: false,
            asid16: false,
            vmid16: false,
            iidr: 0x0123_443b,
            ..d.clone()
        },
        Smmuv3Config {
            sid_bits: 8,
            ssid_bits: 0,
            two_level_strtab: false,
            two_level_cdtab: false,
            stall: StallModel::Terminate,
            httu: Httu::None,
            // without ATS and PRI IDR1.PRIQS is 0
            ats: false,
            pri: false,
            priq_bits: 0,
            oas: 2,
            cmdq_bits: 19,
            evtq_bits: 5,
            msi: false,
            sev: false,
            ..d.clone()
        },
        Smmuv3Config {
            stage1: false,
            pri: false,
            priq_bits: 0,
            sid_bits: 32,
            ..d.clone()
        },
    ];
    for c in &configs {
        assert_eq!(&round_trip(c), c);
        // and what a unit built from it shows through its registers
        let mem: Arc<dyn PhysMem> = Arc::new(PhysMemory::new(1 << 20).unwrap());
        let u = Smmuv3::new(c.clone(), mem, Arc::new(MsiLog::default()));
        let shown: Vec<u32> = (0..6)
            .map(|i| u.mmio_read(offset::IDR0 + 4 * i, 4) as u32)
            .collect();
        assert_eq!(shown, c.idrs());
        assert_eq!(u.mmio_read(offset::IIDR, 4) as u32, c.iidr);
    }
}

#[test]
fn the_default_units_id_registers_field_by_field() {
    // what IOMMU_GET_HW_INFO hands a VMM for the default unit (§6.3.1–6.3.6)
    let [idr0, idr1, idr2, idr3, idr4, idr5] = Smmuv3Config::default().idrs();
    // S2P S1P, TTF 0b10 (AArch64), COHACC, HTTU 2, ATS, ASID16, MSI, SEV, PRI, VMID16, CD2L,
    // TTENDIAN 0b10 (little), STALL_MODEL 0, ST_LEVEL 1
    assert_eq!(idr0, 0x084d_749b);
    // SIDSIZE 16, SSIDSIZE 20, PRIQS 7, EVENTQS 7, CMDQS 8
    assert_eq!(idr1, 16 | 20 << 6 | 7 << 11 | 7 << 16 | 8 << 21);
    assert_eq!((idr2, idr4), (0, 0));
    // HAD, XNX, PPS, FWB, RIL, BBML 1
    assert_eq!(idr3, 1 << 2 | 1 << 4 | 1 << 5 | 1 << 8 | 1 << 10 | 1 << 11);
    // OAS 5 (48 bits), GRAN4K, STALL_MAX 64
    assert_eq!(idr5, 5 | 1 << 4 | 64 << 16);
}

#[test]
fn reserved_and_out_of_range_id_fields_read_conservatively() {
    let idr0 = Idr0::new()
        .with_s1p(true)
        // STALL_MODEL 0b11 is reserved: terminate only
        .with_stall_model(3)
        // PRI without ATS is RES0
        .with_pri(true)
        .with_httu(3);
    // SIDSIZE 63 is beyond the 32 bits a StreamID has
    let idr1 = Idr1::new()
        .with_sidsize(63)
        .with_ssidsize(20)
        .with_cmdqs(31);
    let idr5 = Idr5::new().with_oas(7).with_gran4k(true);
    let c = Smmuv3Config::from_registers(
        [
            idr0.into_bits(),
            idr1.into_bits(),
            0xffff_ffff,
            Idr3::new().into_bits(),
            0xffff_ffff,
            idr5.into_bits(),
        ],
        7,
    );
    assert_eq!(c.stall, StallModel::Terminate);
    assert!(!c.pri && !c.ats && !c.stage2 && c.stage1);
    assert_eq!(c.httu, Httu::AccessDirty);
    assert_eq!((c.sid_bits, c.ssid_bits, c.cmdq_bits), (32, 20, 19));
    assert_eq!(
        c.oas, 6,
        "OAS 0b111 is reserved: the largest defined, 52 bits"
    );
    assert!(!c.ril && !c.two_level_strtab && !c.gbpa_abort_at_reset);
    assert_eq!(c.iidr, 7);
}

/// What a VMM wants its guest to have before the host is consulted: stage 1 only (the
/// host's stage 2 is the VMM's), everything else the model offers.
fn wanted() -> Smmuv3Config {
    Smmuv3Config {
        stage2: false,
        ..Smmuv3Config::default()
    }
}

#[test]
fn a_guest_never_gets_more_than_the_host() {
    let host = Smmuv3Config {
        sid_bits: 8,
        ssid_bits: 16,
        two_level_strtab: false,
        two_level_cdtab: false,
        stall: StallModel::Terminate,
        ats: false,
        pri: false,
        httu: Httu::Access,
        oas: 4,
        gran16k: true,
        cmdq_bits: 5,
        asid16: false,
        ril: false,
        ..Smmuv3Config::default()
    };
    // the VMM reads the host through its registers
    let host = Smmuv3Config::from_registers(host.idrs(), host.iidr);
    let g = wanted().clamp_to(&host);
    // what the host carries out for the guest: the host's at most
    assert_eq!(g.ssid_bits, 16);
    assert!(!g.two_level_cdtab && !g.ats && !g.pri && !g.asid16 && !g.ril);
    assert_eq!(g.stall, StallModel::Terminate);
    assert_eq!(g.httu, Httu::Access);
    assert_eq!(g.oas, 4);
    assert!(g.stage1 && !g.stage2);
    assert!(
        g.gran4k && !g.gran16k,
        "16 KiB is the host's but not wanted"
    );
    // what the guest's unit keeps to itself: its own
    assert_eq!((g.sid_bits, g.cmdq_bits), (16, 8));
    assert!(g.two_level_strtab && g.msi && g.sev);
    // the guest's ID registers say so, and read back to the same
    let idr0 = Idr0::from_bits(g.idrs()[0]);
    assert!(idr0.s1p() && !idr0.s2p() && !idr0.ats() && !idr0.pri() && !idr0.cd2l());
    assert_eq!(idr0.stall_model(), 1);
    assert_eq!(Idr1::from_bits(g.idrs()[1]).ssidsize(), 16);
    assert_eq!(Idr5::from_bits(g.idrs()[5]).stall_max(), 0);
    assert_eq!(Smmuv3Config::from_registers(g.idrs(), g.iidr), g);
}

#[test]
fn the_stall_model_follows_the_host() {
    let with = |stall| Smmuv3Config {
        stall,
        ..Smmuv3Config::default()
    };
    let clamp = |guest, host| with(guest).clamp_to(&with(host)).stall;
    use StallModel::*;
    // a host that stalls leaves the guest's choice; one that cannot, or always does, decides
    assert_eq!(clamp(Stall, Stall), Stall);
    assert_eq!(clamp(Terminate, Stall), Terminate);
    assert_eq!(clamp(Force, Stall), Force);
    assert_eq!(clamp(Stall, Terminate), Terminate);
    assert_eq!(clamp(Force, Terminate), Terminate);
    assert_eq!(clamp(Stall, Force), Force);
    // a host with everything gives the guest what it wanted
    assert_eq!(wanted().clamp_to(&Smmuv3Config::default()), wanted());
}
