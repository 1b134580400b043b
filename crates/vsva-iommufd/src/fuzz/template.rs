//! Well-formed arguments for the objects the harness makes, and the user buffer's head they
//! point into; the stream then overwrites a few words of each (see [`super`]).

use zerocopy::IntoBytes;

use super::{
    BUF, DEV, FAULT, INV_ENTRIES, IOAS, IOAS2, IOMMUFD, IOVA, MAP_IOVA, MAPPED, OUT, PAGE, PARENT,
    RANGES, S1_DATA, SHMEM, SizeChoice,
};
use crate::abi::{
    Command, HwInfoType, HwQueueType, HwptAllocFlags, HwptDataType, HwptInvalidateDataType,
    IoasMapFlags, IommuDestroy, IommuFaultAlloc, IommuHwInfo, IommuHwQueueAlloc, IommuHwptAlloc,
    IommuHwptGetDirtyBitmap, IommuHwptInvalidate, IommuHwptSetDirtyTracking, IommuHwptVtdS1,
    IommuHwptVtdS1Invalidate, IommuIoasAlloc, IommuIoasAllowIovas, IommuIoasChangeProcess,
    IommuIoasCopy, IommuIoasIovaRanges, IommuIoasMap, IommuIoasMapFile, IommuIoasUnmap,
    IommuIovaRange, IommuOption, IommuVdeviceAlloc, IommuVeventqAlloc, IommuVfioIoas,
    IommuViommuAlloc, OptionId, OptionOp, VeventqType, VfioDeviceAttachIommufdPt,
    VfioDeviceBindIommufd, VfioDeviceDetachIommufdPt, VfioIoasOp, ViommuType,
};

/// A well-formed argument of `command` for the objects of [`world`]; `variant` picks among
/// a few for the commands that have several shapes.
pub(super) fn template(command: Command, variant: u8) -> Vec<u8> {
    let rw = IoasMapFlags::all().bits();
    let v = u32::from(variant);
    match command {
        Command::Destroy => IommuDestroy { size: 8, id: 7 + v }.as_bytes().to_vec(),
        Command::IoasAlloc => IommuIoasAlloc {
            size: 12,
            ..Default::default()
        }
        .as_bytes()
        .to_vec(),
        Command::IoasAllowIovas => IommuIoasAllowIovas {
            size: 24,
            ioas_id: IOAS2,
            num_iovas: v % 3,
            __reserved: 0,
            allowed_iovas: RANGES,
        }
        .as_bytes()
        .to_vec(),
        Command::IoasCopy => IommuIoasCopy {
            size: 40,
            flags: rw,
            dst_ioas_id: IOAS2 - v % 2,
            src_ioas_id: IOAS,
            length: 2 * PAGE,
            dst_iova: 0x20_0000 + u64::from(v) * PAGE,
            src_iova: IOVA + u64::from(v) * PAGE,
        }
        .as_bytes()
        .to_vec(),
        Command::IoasIovaRanges => IommuIoasIovaRanges {
            size: 32,
            ioas_id: IOAS + v % 2,
            num_iovas: v,
            __reserved: 0,
            allowed_iovas: OUT,
            out_iova_alignment: 0,
        }
        .as_bytes()
        .to_vec(),
        Command::IoasMap => IommuIoasMap {
            size: 40,
            flags: if v == 0 {
                rw & !IoasMapFlags::FIXED_IOVA.bits()
            } else {
                rw
            },
            ioas_id: IOAS + v % 2,
            __reserved: 0,
            user_va: MAPPED,
            length: 2 * PAGE,
            iova: MAP_IOVA + u64::from(v) * PAGE,
        }
        .as_bytes()
        .to_vec(),
        Command::IoasUnmap => IommuIoasUnmap {
            size: 24,
            ioas_id: IOAS + v % 2,
            iova: if v == 3 { 0 } else { IOVA },
            length: if v == 3 { u64::MAX } else { 8 * PAGE },
        }
        .as_bytes()
        .to_vec(),
        Command::Option => IommuOption {
            size: 24,
            option_id: if v % 2 == 0 {
                OptionId::HUGE_PAGES
            } else {
                OptionId::RLIMIT_MODE
            },
            op: if v < 2 { OptionOp::GET } else { OptionOp::SET },
            __reserved: 0,
            object_id: if v % 2 == 0 { IOAS } else { 0 },
            val64: u64::from(v % 2),
        }
        .as_bytes()
        .to_vec(),
        Command::VfioIoas => IommuVfioIoas {
            size: 12,
            ioas_id: IOAS,
            op: VfioIoasOp(v as u16 % 3),
            __reserved: 0,
        }
        .as_bytes()
        .to_vec(),
        Command::HwptAlloc => {
            let nested = v % 2 == 1;
            IommuHwptAlloc {
                size: 48,
                flags: match v {
                    0 => HwptAllocFlags::NEST_PARENT.bits(),
                    2 => HwptAllocFlags::DIRTY_TRACKING.bits(),
                    3 => HwptAllocFlags::FAULT_ID_VALID.bits(),
                    _ => 0,
                },
                dev_id: DEV,
                pt_id: if nested { PARENT } else { IOAS },
                data_type: if nested {
                    HwptDataType::VTD_S1
                } else {
                    HwptDataType::NONE
                },
                data_len: if nested { 24 } else { 0 },
                data_uptr: if nested { S1_DATA } else { 0 },
                fault_id: FAULT,
                ..Default::default()
            }
            .as_bytes()
            .to_vec()
        }
        Command::GetHwInfo => IommuHwInfo {
            size: 40,
            flags: 0,
            dev_id: DEV,
            data_len: 8 * v,
            data_uptr: OUT,
            data_type: HwInfoType(v % 2),
            ..Default::default()
        }
        .as_bytes()
        .to_vec(),
        Command::HwptSetDirtyTracking => IommuHwptSetDirtyTracking {
            size: 16,
            flags: v % 2,
            hwpt_id: PARENT + v / 2 * 2,
            __reserved: 0,
        }
        .as_bytes()
        .to_vec(),
        Command::HwptGetDirtyBitmap => IommuHwptGetDirtyBitmap {
            size: 48,
            hwpt_id: PARENT + v / 2 * 2,
            flags: v % 2,
            __reserved: 0,
            iova: IOVA,
            length: 8 * PAGE,
            page_size: PAGE << v,
            data: OUT,
        }
        .as_bytes()
        .to_vec(),
        Command::HwptInvalidate => IommuHwptInvalidate {
            size: 32,
            hwpt_id: PARENT + 2 + v,
            data_uptr: INV_ENTRIES,
            data_type: HwptInvalidateDataType::VTD_S1,
            entry_len: 24,
            entry_num: v,
            __reserved: 0,
        }
        .as_bytes()
        .to_vec(),
        Command::FaultQueueAlloc => IommuFaultAlloc {
            size: 16,
            ..Default::default()
        }
        .as_bytes()
        .to_vec(),
        Command::IoasMapFile => IommuIoasMapFile {
            size: 40,
            flags: rw,
            ioas_id: IOAS + v % 2,
            fd: 3,
            start: SHMEM + u64::from(v) * PAGE,
            length: 2 * PAGE,
            iova: 0x60_0000 + u64::from(v) * PAGE,
        }
        .as_bytes()
        .to_vec(),
        Command::ViommuAlloc => IommuViommuAlloc {
            size: 40,
            type_: ViommuType(v % 2),
            dev_id: DEV,
            hwpt_id: PARENT,
            ..Default::default()
        }
        .as_bytes()
        .to_vec(),
        Command::VdeviceAlloc => IommuVdeviceAlloc {
            size: 24,
            viommu_id: 7 + v,
            dev_id: DEV,
            out_vdevice_id: 0,
            virt_id: u64::from(v),
        }
        .as_bytes()
        .to_vec(),
        Command::IoasChangeProcess => IommuIoasChangeProcess {
            size: 8,
            __reserved: 0,
        }
        .as_bytes()
        .to_vec(),
        Command::VeventqAlloc => IommuVeventqAlloc {
            size: 32,
            viommu_id: 7 + v,
            type_: VeventqType::ARM_SMMUV3,
            veventq_depth: 8,
            ..Default::default()
        }
        .as_bytes()
        .to_vec(),
        Command::HwQueueAlloc => IommuHwQueueAlloc {
            size: 40,
            viommu_id: 7 + v,
            type_: HwQueueType::TEGRA241_CMDQV,
            nesting_parent_iova: IOVA,
            length: PAGE,
            ..Default::default()
        }
        .as_bytes()
        .to_vec(),
        Command::VfioDeviceBindIommufd => VfioDeviceBindIommufd {
            argsz: 24,
            flags: 0,
            iommufd: IOMMUFD,
            out_devid: 0,
            token_uuid_ptr: OUT,
        }
        .as_bytes()
        .to_vec(),
        Command::VfioDeviceAttachIommufdPt => VfioDeviceAttachIommufdPt {
            argsz: 16,
            flags: v / 2,
            pt_id: if v % 2 == 0 { IOAS } else { PARENT },
            pasid: 5,
        }
        .as_bytes()
        .to_vec(),
        Command::VfioDeviceDetachIommufdPt => VfioDeviceDetachIommufdPt {
            argsz: 12,
            flags: v % 2,
            pasid: 5,
        }
        .as_bytes()
        .to_vec(),
    }
}

/// The argument bytes: `command`'s template (plus 8 zero bytes past the struct), its words
/// overwritten by `edits`, the leading `size` as `size` says.
pub(super) fn argument(
    command: Command,
    variant: u8,
    size: SizeChoice,
    edits: &[(usize, u32)],
) -> Vec<u8> {
    let mut bytes = template(command, variant);
    bytes.resize(command.size() + 8, 0);
    let len = bytes.len();
    match size {
        SizeChoice::Exact => bytes[..4].copy_from_slice(&(command.size() as u32).to_le_bytes()),
        SizeChoice::Min => bytes[..4].copy_from_slice(&(command.min_size() as u32).to_le_bytes()),
        SizeChoice::Bigger => bytes[..4].copy_from_slice(&(len as u32).to_le_bytes()),
        SizeChoice::Random(s) => bytes[..4].copy_from_slice(&s.to_le_bytes()),
    }
    for &(at, value) in edits {
        let at = at * 4 % len;
        if at + 4 <= len {
            bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
        }
    }
    bytes
}

/// The head of the user buffer: two IOVA ranges, VT-d first-stage data, two VT-d
/// invalidation entries; the rest stays as given.
pub(super) fn fill_buffer(buffer: &mut [u8]) {
    let mut put = |addr: u64, bytes: &[u8]| {
        let at = (addr - BUF) as usize;
        buffer[at..at + bytes.len()].copy_from_slice(bytes);
    };
    let ranges = [
        IommuIovaRange {
            start: PAGE,
            last: 0xffff_ffff,
        },
        IommuIovaRange {
            start: 1 << 40,
            last: (1 << 48) - 1,
        },
    ];
    put(RANGES, ranges.as_bytes());
    let s1 = IommuHwptVtdS1 {
        flags: 0,
        pgtbl_addr: IOVA,
        addr_width: 48,
        __reserved: 0,
    };
    put(S1_DATA, s1.as_bytes());
    let inv = [
        IommuHwptVtdS1Invalidate {
            addr: 0,
            npages: u64::MAX,
            flags: 0,
            __reserved: 0,
        },
        IommuHwptVtdS1Invalidate {
            addr: IOVA,
            npages: 1,
            flags: 1,
            __reserved: 0,
        },
    ];
    put(INV_ENTRIES, inv.as_bytes());
}
