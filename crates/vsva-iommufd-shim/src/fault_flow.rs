//! A page fault flowing through the shim's real descriptors, in-process (the unit tests are
//! built without the interposers, so the shim's functions are called directly with pointers
//! into this process, as the interposers would): a guest page table kept in the program's
//! own memory, a demo endpoint DMA-ing under PASID 9 through a nested HWPT whose first stage
//! is not present, the page request read from the fault descriptor after `ppoll` reports it
//! readable, the program filling its page table and answering SUCCESS — which runs the
//! device on inside the write — and the device's write landing in the program's memory.

use vsva_demo::regs::{self, Op, Status};
use vsva_demo::{DemoDevice, Progress};
use vsva_iommufd::abi::ioctl::{
    IOMMU_FAULT_QUEUE_ALLOC, IOMMU_HWPT_ALLOC, IOMMU_IOAS_MAP, VFIO_DEVICE_ATTACH_IOMMUFD_PT,
};
use vsva_iommufd::abi::{
    HwptAllocFlags, HwptDataType, IoasMapFlags, IommuFaultAlloc, IommuHwptAlloc,
    IommuHwptPageResponse, IommuHwptPgfault, IommuHwptVtdS1, IommuIoasMap, PageResponseCode,
    VfioAttachFlags, VfioDeviceAttachIommufdPt,
};

use crate::files;
use crate::shim;
use crate::sys;
use crate::testing::{self, call, poll_now};

const PAGE: u64 = 4096;
const PASID: u32 = 9;
const GVA: u64 = 0x5000_0000;
/// Guest-physical layout inside the program's buffer (mapped at IOVA 0): the 4-level table
/// at 0x1000..0x5000, the data page at 0x8000.
const PML4: u64 = 0x1000;
const DATA: u64 = 0x8000;

fn enable_pasid_ats_pri(dev: &DemoDevice) {
    vsva_demo::enable_sva_capabilities(dev, false).expect("a demo device has PASID, ATS and PRI");
}

fn readable(fd: i32) -> bool {
    poll_now(fd) & libc::POLLIN != 0
}

#[test]
fn a_page_fault_reaches_the_fault_fd_and_the_answer_lets_the_dma_land() {
    let m = shim::machine().expect("the default machine builds");
    let endpoint = m.endpoints[0].clone();
    enable_pasid_ats_pri(&endpoint);
    let fd = shim::open(c"/dev/iommu", libc::O_RDWR | libc::O_CLOEXEC)
        .unwrap()
        .unwrap();
    let ictx = files::lookup(fd).unwrap();
    let ioas = testing::ioas(&ictx);

    // Guest RAM: 64 KiB of this program at IOVA (GPA) 0.
    let len = 16 * PAGE;
    let ram = sys::mmap(
        0,
        len,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
        -1,
    )
    .unwrap();
    let rw = IoasMapFlags::READABLE | IoasMapFlags::WRITEABLE | IoasMapFlags::FIXED_IOVA;
    let mut map = IommuIoasMap {
        size: 40,
        flags: rw.bits(),
        ioas_id: ioas,
        __reserved: 0,
        user_va: ram,
        length: len,
        iova: 0,
    };
    call(&ictx, IOMMU_IOAS_MAP, &mut map).unwrap();

    let (vfio, dev_id) = testing::bind(c"/dev/vfio/devices/vfio0", fd);
    let pasid_flag = HwptAllocFlags::PASID.bits();
    let mut s2 = IommuHwptAlloc {
        size: 48,
        flags: HwptAllocFlags::NEST_PARENT.bits() | pasid_flag,
        dev_id,
        pt_id: ioas,
        ..Default::default()
    };
    call(&ictx, IOMMU_HWPT_ALLOC, &mut s2).unwrap();
    let mut fault = IommuFaultAlloc {
        size: 16,
        ..Default::default()
    };
    call(&ictx, IOMMU_FAULT_QUEUE_ALLOC, &mut fault).unwrap();
    let ffd = fault.out_fault_fd as i32;
    let fault_file = files::lookup(ffd).expect("the fault fd is the shim's");
    let s1 = IommuHwptVtdS1 {
        flags: 0,
        pgtbl_addr: PML4,
        addr_width: 48,
        __reserved: 0,
    };
    let mut nested = IommuHwptAlloc {
        size: 48,
        flags: HwptAllocFlags::FAULT_ID_VALID.bits() | pasid_flag,
        dev_id,
        pt_id: s2.out_hwpt_id,
        data_type: HwptDataType::VTD_S1,
        data_len: 24,
        data_uptr: &s1 as *const IommuHwptVtdS1 as u64,
        fault_id: fault.out_fault_id,
        ..Default::default()
    };
    call(&ictx, IOMMU_HWPT_ALLOC, &mut nested).unwrap();
    let mut attach = VfioDeviceAttachIommufdPt {
        argsz: 16,
        flags: VfioAttachFlags::PASID.bits(),
        pt_id: nested.out_hwpt_id,
        pasid: PASID,
    };
    call(&vfio, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &mut attach).unwrap();

    // The device fills a page at GVA: the guest table is empty, so it asks for the page.
    assert!(!readable(ffd), "nothing queued yet");
    endpoint.mmio_write(regs::PASID, u64::from(PASID) | regs::PASID_VALID);
    endpoint.mmio_write(regs::COMMAND, Op::Fill as u64);
    endpoint.mmio_write(regs::SRC, 0);
    endpoint.mmio_write(regs::DST, GVA);
    endpoint.mmio_write(regs::LEN, PAGE);
    endpoint.mmio_write(regs::PATTERN, 0x3c);
    endpoint.mmio_write(regs::FLAGS, 0);
    endpoint.mmio_write(regs::DOORBELL, 1);
    assert_eq!(endpoint.run(), Progress::Waiting);
    assert!(
        m.platform.service() > 0,
        "the page request reached the host"
    );
    assert!(
        readable(ffd),
        "the kernel's poll sees the fault fd readable"
    );

    let mut records = [IommuHwptPgfault::default(); 2];
    let n = shim::read(&fault_file, ffd, records.as_mut_ptr() as u64, 80).unwrap();
    // SAFETY: as in `call`.
    let records = unsafe { std::ptr::read_volatile(&records) };
    assert_eq!(n, 40, "one record");
    assert_eq!((records[0].pasid, records[0].addr), (PASID, GVA));
    assert_eq!(records[0].dev_id, dev_id);
    assert!(!readable(ffd), "drained once read");

    // The guest's fault handler: map GVA -> DATA in the table that lives in this program's
    // memory (present, writable, user). The model's walk reads these very bytes.
    let entry = |table: u64, index: u64, next: u64| {
        let at = (ram + table + index * 8) as *mut u64;
        // SAFETY: `at` lies inside the 64 KiB buffer mapped above, 8-byte aligned.
        unsafe { at.write_volatile(next | 0x7) };
    };
    entry(PML4, (GVA >> 39) & 511, 0x2000);
    entry(0x2000, (GVA >> 30) & 511, 0x3000);
    entry(0x3000, (GVA >> 21) & 511, 0x4000);
    entry(0x4000, (GVA >> 12) & 511, DATA);
    let response = IommuHwptPageResponse {
        cookie: records[0].cookie,
        code: PageResponseCode::SUCCESS,
    };
    let written = shim::write(&fault_file, &response as *const _ as u64, 8).unwrap();
    assert_eq!(written, 8);
    // The answer resumed the device inside the write, as hardware resumes by itself.
    assert_eq!(endpoint.mmio_read(regs::STATUS), Status::Done as u64);
    assert_eq!(endpoint.run(), Progress::Idle, "nothing left to do");
    // SAFETY: the data page lies inside the buffer.
    let data = unsafe { std::slice::from_raw_parts((ram + DATA) as *const u8, PAGE as usize) };
    assert!(
        data.iter().all(|&b| std::hint::black_box(b) == 0x3c),
        "the device's write is in the program's memory"
    );
    drop((vfio, fault_file, ictx));
}
