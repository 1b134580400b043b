//! `IOMMU_GET_HW_INFO` of an SMMUv3 host through iommufd (Linux `iommufd_get_hw_info()` calling
//! `arm_smmu_hw_info()`), and the driver's nesting and ATS answers as iommufd sees them. The
//! expected registers are worked out by hand from the configuration and IHI 0070 §6.3.

use std::sync::Arc;

use vsva_host::{Host, Smmuv3Kind};
use vsva_iommu::DeviceCaps;
use vsva_iommufd::abi::ioctl::{IOMMU_GET_HW_INFO, IOMMU_HWPT_ALLOC, IOMMU_IOAS_ALLOC};
use vsva_iommufd::abi::{
    Errno, HwCapabilities, HwInfoFlags, HwInfoType, HwptAllocFlags, IommuHwInfo, IommuHwptAlloc,
    IommuIoasAlloc,
};
use vsva_iommufd::{DeviceInfo, Iommufd, ProcessMemory};
use vsva_mem::{Rid, Va};
use vsva_mm::{MapFlags, Process, Prot};
use vsva_smmuv3::Smmuv3Config;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Arm's JEP106 code (0x43B) with ProductID 0x481, Variant 2, Revision 1.
const IIDR: u32 = 0x4812_143b;

struct Fixture {
    _host: Host<Smmuv3Kind>,
    p: Arc<Process>,
    fd: Iommufd,
    mem: ProcessMemory,
    dev_id: u32,
}

/// A host with an SMMU configured by `cfg` (IIDR [`IIDR`]), an iommufd, and device 00:03.0 (20-bit
/// PASIDs, ATS as `ats` says) bound to it.
fn open(cfg: Smmuv3Config, ats: bool) -> Fixture {
    let host = Host::<Smmuv3Kind>::new(2 << 30, Smmuv3Config { iidr: IIDR, ..cfg }).unwrap();
    let p = host.mm.spawn().unwrap();
    let fd = Iommufd::new(p.clone(), host.iommu.clone());
    let rid = Rid::from_bdf(0, 3, 0).unwrap();
    let caps = DeviceCaps {
        pasid_bits: 20,
        ats,
        pri: false,
    };
    host.add_device(rid, 32, 64);
    host.iommu.add_device(rid, caps, 32).unwrap();
    let dev_id = fd.bind_device(DeviceInfo::new(rid, caps)).unwrap();
    Fixture {
        mem: ProcessMemory::new(p.clone()),
        _host: host,
        p,
        fd,
        dev_id,
    }
}

impl Fixture {
    fn call<T: IntoBytes + FromBytes + Immutable + KnownLayout>(
        &self,
        number: u32,
        cmd: &mut T,
    ) -> Result<(), Errno> {
        let mut bytes = cmd.as_bytes().to_vec();
        let result = self.fd.ioctl(u64::from(number), &mut bytes, &self.mem);
        *cmd = T::read_from_bytes(&bytes).unwrap();
        result
    }

    /// IOMMU_GET_HW_INFO into `data_len` bytes of 0xee; the command and the bytes after it.
    fn hw_info(&self, flags: u32, data_type: HwInfoType, data_len: u32) -> HwInfoCall {
        let at = self
            .p
            .mmap(None, 4096, Prot::RW, MapFlags::empty())
            .unwrap();
        self.p.write_bytes(at, &[0xee; 4096]).unwrap();
        let mut cmd = IommuHwInfo {
            size: 40,
            flags,
            dev_id: self.dev_id,
            data_len,
            data_uptr: at.raw(),
            data_type,
            ..Default::default()
        };
        let result = self.call(IOMMU_GET_HW_INFO, &mut cmd);
        let mut data = vec![0; data_len as usize];
        self.p.read_bytes(Va::new(at.raw()), &mut data).unwrap();
        HwInfoCall { result, cmd, data }
    }

    /// IOMMU_HWPT_ALLOC of a paging HWPT with `flags` on a new IOAS.
    fn hwpt_paging(&self, flags: HwptAllocFlags) -> Result<u32, Errno> {
        let mut ioas = IommuIoasAlloc {
            size: 12,
            ..Default::default()
        };
        self.call(IOMMU_IOAS_ALLOC, &mut ioas).unwrap();
        let mut cmd = IommuHwptAlloc {
            size: 48,
            flags: flags.bits(),
            dev_id: self.dev_id,
            pt_id: ioas.out_ioas_id,
            ..Default::default()
        };
        self.call(IOMMU_HWPT_ALLOC, &mut cmd)?;
        Ok(cmd.out_hwpt_id)
    }
}

struct HwInfoCall {
    result: Result<(), Errno>,
    cmd: IommuHwInfo,
    data: Vec<u8>,
}

/// The default SMMU's `struct iommu_hw_info_arm_smmuv3`, field by field (IHI 0070 §6.3.1–6.3.6).
fn default_smmu_data() -> Vec<u8> {
    // IDR0: S2P[0] S1P[1], TTF[3:2] = 0b10 (AArch64), COHACC[4], HTTU[7:6] = 2, ATS[10],
    // ASID16[12], MSI[13], SEV[14], PRI[16], VMID16[18], CD2L[19], TTENDIAN[22:21] = 0b10
    // (little), STALL_MODEL[25:24] = 0 (stall and terminate), ST_LEVEL[28:27] = 1 (2-level)
    let idr0 = 0b11
        | 0b10 << 2
        | 1 << 4
        | 2 << 6
        | 1 << 10
        | 1 << 12
        | 1 << 13
        | 1 << 14
        | 1 << 16
        | 1 << 18
        | 1 << 19
        | 0b10 << 21
        | 1 << 27;
    assert_eq!(idr0, 0x084d_749b_u32);
    // IDR1: SIDSIZE[5:0] 16, SSIDSIZE[10:6] 20, PRIQS[15:11] 7, EVENTQS[20:16] 7, CMDQS[25:21] 8
    let idr1: u32 = 16 | 20 << 6 | 7 << 11 | 7 << 16 | 8 << 21;
    // IDR3: HAD[2], XNX[4], PPS[5], FWB[8], RIL[10], BBML[12:11] = 1
    let idr3: u32 = 1 << 2 | 1 << 4 | 1 << 5 | 1 << 8 | 1 << 10 | 1 << 11;
    // IDR5: OAS[2:0] = 5 (48 bits), GRAN4K[4], STALL_MAX[31:16] = 64
    let idr5: u32 = 5 | 1 << 4 | 64 << 16;
    let words: [u32; 10] = [
        0, // flags: no erratum
        0, // __reserved
        idr0, idr1, 0, // IDR2: no VATOS
        idr3, 0, // IDR4: nothing IMPLEMENTATION DEFINED
        idr5, IIDR, 0x2, // AIDR: SMMUv3.2
    ];
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

#[test]
fn hw_info_is_the_units_idrs_iidr_and_aidr_unmasked() {
    let f = open(Smmuv3Config::default(), true);
    let want = default_smmu_data();
    assert_eq!(want.len(), 40);

    for (flags, asked) in [
        (0, HwInfoType::DEFAULT),
        (HwInfoFlags::INPUT_TYPE.bits(), HwInfoType::DEFAULT),
        (HwInfoFlags::INPUT_TYPE.bits(), HwInfoType::ARM_SMMUV3),
        // without INPUT_TYPE the type is not read
        (0, HwInfoType::INTEL_VTD),
    ] {
        let call = f.hw_info(flags, asked, 40);
        assert_eq!(call.result, Ok(()), "{asked:?}");
        assert_eq!(call.data, want, "{asked:?}");
        assert_eq!(call.cmd.data_len, 40);
        assert_eq!(call.cmd.data_type, HwInfoType::ARM_SMMUV3);
    }
    let call = f.hw_info(0, HwInfoType::DEFAULT, 40);
    // SSIDSIZE 20 and the device's 20-bit PASIDs
    assert_eq!(call.cmd.out_max_pasid_log2, 20);
    // HTTU = 2 gives dirty tracking; IDR0.ATS and the device's ATS: ATS is supported
    assert_eq!(
        HwCapabilities::from_bits(call.cmd.out_capabilities),
        Some(HwCapabilities::DIRTY_TRACKING)
    );
}

#[test]
fn hw_info_of_another_vendors_type_is_eopnotsupp() {
    let f = open(Smmuv3Config::default(), true);
    let input = HwInfoFlags::INPUT_TYPE.bits();
    for asked in [
        HwInfoType::INTEL_VTD,
        HwInfoType::TEGRA241_CMDQV,
        HwInfoType::AMD,
        HwInfoType(77),
    ] {
        let call = f.hw_info(input, asked, 40);
        assert_eq!(call.result, Err(Errno::EOPNOTSUPP), "{asked:?}");
        assert_eq!(call.data, [0xee; 40], "{asked:?}: nothing written");
    }
}

#[test]
fn a_short_buffer_gets_the_first_bytes_and_the_full_length() {
    let f = open(Smmuv3Config::default(), true);
    let want = default_smmu_data();
    for len in [0, 4, 8, 12, 39] {
        let call = f.hw_info(0, HwInfoType::DEFAULT, len);
        assert_eq!(call.result, Ok(()), "{len}");
        assert_eq!(call.data, &want[..len as usize], "{len}");
        assert_eq!(call.cmd.data_len, 40, "{len}");
        assert_eq!(call.cmd.data_type, HwInfoType::ARM_SMMUV3, "{len}");
    }
    // a longer one gets the data, then zeros
    let call = f.hw_info(0, HwInfoType::DEFAULT, 64);
    assert_eq!(&call.data[..40], &want[..]);
    assert_eq!(&call.data[40..], &[0; 24]);
    assert_eq!(call.cmd.data_len, 40);
}

#[test]
fn the_idrs_follow_the_configuration() {
    let cfg = Smmuv3Config {
        stage2: false,
        ats: false,
        pri: false,
        ssid_bits: 8,
        ril: false,
        ..Smmuv3Config::default()
    };
    let f = open(cfg, true);
    let call = f.hw_info(0, HwInfoType::DEFAULT, 40);
    assert_eq!(call.result, Ok(()));
    let words: Vec<u32> = call
        .data
        .chunks(4)
        .map(|w| u32::from_le_bytes(w.try_into().unwrap()))
        .collect();
    // IDR0 without S2P[0], ATS[10], PRI[16]
    assert_eq!(words[2], 0x084d_749b & !(1 | 1 << 10 | 1 << 16));
    // IDR1: SSIDSIZE 8, PRIQS 0 without PRI
    assert_eq!(words[3], 16 | 8 << 6 | 7 << 16 | 8 << 21);
    // IDR3: no XNX[4] or FWB[8] without stage 2, no PPS[5] without PRI, no RIL[10]
    assert_eq!(words[5], 1 << 2 | 1 << 11);
    assert_eq!((words[8], words[9]), (IIDR, 0x2));
    // no IDR0.ATS: the device's ATS is not usable (Linux `arm_smmu_ats_supported()`)
    assert!(
        HwCapabilities::from_bits_retain(call.cmd.out_capabilities)
            .contains(HwCapabilities::PCI_ATS_NOT_SUPPORTED)
    );
}

#[test]
fn a_nest_parent_needs_both_stages() {
    // Linux offers one with ARM_SMMU_FEAT_NESTING (IDR0.S1P and S2P), as a stage-2 domain;
    // `arm_smmu_domain_alloc_paging_flags()` refuses NEST_PARENT with EOPNOTSUPP otherwise.
    let f = open(Smmuv3Config::default(), false);
    assert!(f.hwpt_paging(HwptAllocFlags::NEST_PARENT).is_ok());
    assert!(f.hwpt_paging(HwptAllocFlags::empty()).is_ok());
    let f = open(
        Smmuv3Config {
            stage2: false,
            ..Smmuv3Config::default()
        },
        false,
    );
    assert_eq!(
        f.hwpt_paging(HwptAllocFlags::NEST_PARENT),
        Err(Errno::EOPNOTSUPP)
    );
    assert!(f.hwpt_paging(HwptAllocFlags::empty()).is_ok());
}
