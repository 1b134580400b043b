/*
 * A user-space driver of the demo DMA device, written the way a DPDK-like driver or a VMM
 * drives a vfio-pci function: run under LD_PRELOAD=libvsva_iommufd_shim.so by the shim's tests.
 * It reads the device's regions, maps a buffer of its own memory into an IOAS, programs the
 * device through BAR 0 with pwrite, polls STATUS with pread, checks the device's DMA landed
 * in its buffer, then serves a page fault of a nested HWPT from its fault queue. One line
 * per check; the first failure exits non-zero.
 *
 * The structs and numbers are the programs' own copies of Linux's
 * include/uapi/linux/iommufd.h and include/uapi/linux/vfio.h (uapi.h), and of the demo
 * device's register map (dma_regs.h, from crates/vsva-demo/src/regs.rs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "dma_regs.h"
#include "uapi.h"

/* The demo device: BAR 0 registers, 64-bit each (dma_regs.h), and its ERROR codes. */
enum { ERROR_BAD_COMMAND = 1, ERROR_PAGE_REQUEST_INVALID = 3 };
#define PASID_VALID (1ull << 31)
/* PCIe extended capability IDs and the PASID control register */
#define EXT_CAP_ID_PASID 0x1b
#define PASID_CTRL 6

/* Starts a command and polls STATUS until it is no longer busy (bounded). */
static uint64_t submit(uint64_t op, uint64_t pasid, uint64_t src, uint64_t dst, uint64_t len,
		       uint64_t pattern)
{
	reg_write(REG_COMMAND, op);
	reg_write(REG_SRC, src);
	reg_write(REG_DST, dst);
	reg_write(REG_LEN, len);
	reg_write(REG_PATTERN, pattern);
	reg_write(REG_FLAGS, 0);
	reg_write(REG_PASID, pasid);
	reg_write(REG_DOORBELL, 1);
	uint64_t status = STATUS_BUSY;
	for (int i = 0; i < 1000 && status == STATUS_BUSY; i++)
		status = reg_read(REG_STATUS);
	return status;
}


static int region_info(uint32_t index, struct vfio_region_info *info)
{
	*info = (struct vfio_region_info){ .argsz = sizeof(*info), .index = index };
	return ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, info);
}

static uint32_t hwpt_alloc(int fd, struct iommu_hwpt_alloc *hw)
{
	if (ioctl(fd, IOMMU_HWPT_ALLOC, hw))
		fail("HWPT_ALLOC", "failed");
	return hw->out_hwpt_id;
}

static int attach(uint32_t pt_id, int with_pasid, uint32_t pasid)
{
	struct vfio_device_attach_iommufd_pt at = {
		.argsz = sizeof(at), .flags = with_pasid ? VFIO_DEVICE_ATTACH_PASID : 0,
		.pt_id = pt_id, .pasid = pasid,
	};
	return ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at);
}

int main(void)
{
	int fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	CHECK("open /dev/iommu", fd >= 0);
	dev = open("/dev/vfio/devices/vfio0", O_RDWR | O_CLOEXEC);
	CHECK("open /dev/vfio/devices/vfio0", dev >= 0);

	/* Before bind the device file can do nothing (access_granted). */
	uint64_t word = 0;
	struct vfio_device_info di = { .argsz = sizeof(di) };
	CHECK_ERR("GET_INFO before bind: EINVAL", ioctl(dev, VFIO_DEVICE_GET_INFO, &di), EINVAL);
	CHECK_ERR("pread before bind: EINVAL", pread(dev, &word, 8, bar0 + REG_STATUS), EINVAL);
	CHECK_ERR("pwrite before bind: EINVAL", pwrite(dev, &word, 8, bar0 + REG_PATTERN), EINVAL);
	CHECK_ERR("read before bind: EINVAL", read(dev, &word, 8), EINVAL);

	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = fd };
	CHECK_OK("VFIO_DEVICE_BIND_IOMMUFD", ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &bind));
	uint32_t dev_id = bind.out_devid;

	/* GET_INFO */
	memset(&di, 0xee, sizeof(di));
	di.argsz = sizeof(di);
	CHECK_OK("VFIO_DEVICE_GET_INFO", ioctl(dev, VFIO_DEVICE_GET_INFO, &di));
	CHECK("a PCI device that cannot be reset", di.flags == VFIO_DEVICE_FLAGS_PCI);
	CHECK("9 regions, 5 IRQ indexes", di.num_regions == VFIO_PCI_NUM_REGIONS && di.num_irqs == VFIO_PCI_NUM_IRQS);
	CHECK("no capability chain", di.cap_offset == 0);
	CHECK("bytes past cap_offset untouched", di.pad == 0xeeeeeeee);
	di.argsz = 8;
	CHECK_ERR("GET_INFO with argsz 8: EINVAL", ioctl(dev, VFIO_DEVICE_GET_INFO, &di), EINVAL);
	CHECK_ERR("GET_INFO with a bad pointer: EFAULT", ioctl(dev, VFIO_DEVICE_GET_INFO, (void *)8), EFAULT);
	CHECK_ERR("VFIO_DEVICE_RESET without reset: EINVAL", ioctl(dev, VFIO_DEVICE_RESET), EINVAL);

	/* GET_REGION_INFO */
	struct vfio_region_info ri;
	CHECK_OK("GET_REGION_INFO BAR0", region_info(VFIO_PCI_BAR0_REGION_INDEX, &ri));
	CHECK("BAR0: 4 KiB, read/write, no mmap, at offset 0",
	      ri.size == 4096 && ri.flags == (VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE) &&
	      ri.offset == 0);
	CHECK_OK("GET_REGION_INFO config", region_info(VFIO_PCI_CONFIG_REGION_INDEX, &ri));
	CHECK("config: 4 KiB, read/write, at 7 << 40",
	      ri.size == 4096 && ri.flags == (VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE) &&
	      ri.offset == cfg);
	CHECK_OK("GET_REGION_INFO BAR2", region_info(VFIO_PCI_BAR2_REGION_INDEX, &ri));
	CHECK("BAR2: empty", ri.size == 0 && ri.flags == 0 && ri.offset == VFIO_PCI_INDEX_TO_OFFSET(2));
	CHECK_OK("GET_REGION_INFO ROM", region_info(VFIO_PCI_ROM_REGION_INDEX, &ri));
	CHECK("ROM: none", ri.size == 0 && ri.flags == 0);
	CHECK_ERR("GET_REGION_INFO VGA of a non-VGA device: EINVAL", region_info(VFIO_PCI_VGA_REGION_INDEX, &ri), EINVAL);
	CHECK_ERR("GET_REGION_INFO index 9: EINVAL", region_info(VFIO_PCI_NUM_REGIONS, &ri), EINVAL);
	ri = (struct vfio_region_info){ .argsz = 16, .index = 0 };
	CHECK_ERR("GET_REGION_INFO with argsz 16: EINVAL", ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &ri), EINVAL);

	/* Configuration space: IDs, the PASID capability the host enabled and keeps. */
	uint32_t ids = 0;
	CHECK("pread of the vendor and device IDs", pread(dev, &ids, 4, cfg) == 4);
	CHECK("vendor 0x1af4, device 0x10f0", ids == 0x10f01af4);
	uint16_t vendor = 0;
	CHECK("pread64 of the vendor ID alone", pread64(dev, &vendor, 2, cfg) == 2 && vendor == 0x1af4);
	uint32_t at = 0x100, header = 0;
	for (int i = 0; i < 64 && at >= 0x100; i++) {
		if (pread(dev, &header, 4, cfg + at) != 4)
			fail("walking the extended capabilities", "pread failed");
		if ((header & 0xffff) == EXT_CAP_ID_PASID)
			break;
		at = header >> 20;
	}
	CHECK("the PASID capability is listed", (header & 0xffff) == EXT_CAP_ID_PASID);
	uint16_t ctrl = 0, zero = 0;
	CHECK("PASID is enabled by the host", pread(dev, &ctrl, 2, cfg + at + PASID_CTRL) == 2 && (ctrl & 1));
	CHECK("pwrite of PASID control returns its count", pwrite(dev, &zero, 2, cfg + at + PASID_CTRL) == 2);
	CHECK("... and is dropped: PASID stays enabled", pread(dev, &ctrl, 2, cfg + at + PASID_CTRL) == 2 && (ctrl & 1));
	CHECK_ERR("pread past the end of config space: EFAULT", pread(dev, &word, 2, cfg + 4095), EFAULT);
	CHECK_ERR("pread at config offset 4096: EFAULT", pread(dev, &word, 1, cfg + 4096), EFAULT);

	/* BAR 0 bounds and sizes. */
	CHECK_ERR("pread at BAR0 offset 4096: EINVAL", pread(dev, &word, 8, bar0 + 4096), EINVAL);
	uint8_t tail[64];
	CHECK("pread running past BAR0's end is cut short", pread(dev, tail, sizeof(tail), bar0 + 4096 - 8) == 8);
	CHECK_ERR("pread of an empty BAR: EINVAL", pread(dev, &word, 8, VFIO_PCI_INDEX_TO_OFFSET(1)), EINVAL);
	CHECK_ERR("pwrite of the ROM: EINVAL", pwrite(dev, &word, 8, VFIO_PCI_INDEX_TO_OFFSET(6)), EINVAL);
	CHECK_ERR("pread of region index 9: EINVAL", pread(dev, &word, 8, VFIO_PCI_INDEX_TO_OFFSET(9)), EINVAL);
	CHECK_ERR("pread at a negative offset: EINVAL", pread(dev, &word, 8, -8), EINVAL);
	CHECK_ERR("pread whose end passes the largest offset: EINVAL", pread(dev, &word, 8, INT64_MAX - 4), EINVAL);
	void *volatile bad_ptr = (void *)8; /* volatile: no object size for the fortify checks */
	/* volatile: sizes the compiler would refuse as constants */
	volatile size_t all = SIZE_MAX, upper = (size_t)1 << 63;
	CHECK_ERR("pread of a count that wraps the buffer: EFAULT (access_ok)", pread(dev, bad_ptr, all, bar0), EFAULT);
	CHECK_ERR("read of a count past the user address space: EFAULT", read(dev, bad_ptr, upper), EFAULT);
	CHECK_ERR("pwrite of a count that wraps the buffer: EFAULT", pwrite(dev, bad_ptr, all, bar0), EFAULT);
	CHECK_ERR("pread into a bad buffer: EFAULT", pread(dev, bad_ptr, 8, bar0 + REG_STATUS), EFAULT);
	CHECK_ERR("pwrite from a bad buffer: EFAULT", pwrite(dev, bad_ptr, 8, bar0 + REG_PATTERN), EFAULT);
	CHECK("pread of 0 bytes anywhere: 0", pread(dev, &word, 0, VFIO_PCI_INDEX_TO_OFFSET(9)) == 0);
	CHECK_ERR("pread of the iommufd: EINVAL", pread(fd, &word, 8, 0), EINVAL);
	reg_write(REG_PATTERN, 0x1122334455667788ull);
	uint32_t half = 0;
	CHECK("a 4-byte pread returns the register's upper half",
	      pread(dev, &half, 4, bar0 + REG_PATTERN + 4) == 4 && half == 0x11223344);
	uint32_t zero32 = 0;
	CHECK("a 4-byte pwrite returns its count", pwrite(dev, &zero32, 4, bar0 + REG_PATTERN) == 4);
	CHECK("... and is dropped: the 64-bit register keeps its value", reg_read(REG_PATTERN) == 0x1122334455667788ull);

	/* read() and write() at the file position: BAR 0 from offset 0, advancing. */
	reg_write(REG_COMMAND, 0xc0de);
	reg_write(REG_SRC, 0x5eed);
	CHECK("read at the file position reads COMMAND", read(dev, &word, 8) == 8 && word == 0xc0de);
	CHECK("the next read reads SRC", read(dev, &word, 8) == 8 && word == 0x5eed);
	/* A count the compiler cannot see into a buffer whose size it knows: under
	 * _FORTIFY_SOURCE the call is __read_chk, which must reach the device too. */
	volatile size_t eight = 8;
	reg_write(REG_DST, 0xd57);
	CHECK("a fortified read (__read_chk) reads DST next", read(dev, &word, eight) == 8 && word == 0xd57);

	/* A second open, read-only: it is not bound, and cannot be written. */
	int ro = open("/dev/vfio/devices/vfio0", O_RDONLY);
	CHECK("open of the device read-only", ro >= 0);
	CHECK_ERR("pwrite of a read-only device file: EBADF", pwrite(ro, &word, 8, bar0), EBADF);
	CHECK_ERR("pread of the unbound second file: EINVAL", pread(ro, &word, 8, bar0), EINVAL);
	CHECK_OK("close of the read-only file", close(ro));

	/* A buffer of this program mapped at a fixed IOVA, the device's RID and PASID 5 on it. */
	struct iommu_ioas_alloc ia = { .size = sizeof(ia) };
	CHECK_OK("IOAS_ALLOC", ioctl(fd, IOMMU_IOAS_ALLOC, &ia));
	uint32_t ioas = ia.out_ioas_id;
	const uint64_t len = 64 * 1024, iova = 0x100000;
	uint8_t *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK("mmap of the DMA buffer", buf != MAP_FAILED);
	memset(buf, 0x5a, len);
	struct iommu_ioas_map map = {
		.size = sizeof(map), .ioas_id = ioas,
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
		.user_va = (uintptr_t)buf, .length = len, .iova = iova,
	};
	CHECK_OK("IOAS_MAP of the buffer at IOVA 0x100000", ioctl(fd, IOMMU_IOAS_MAP, &map));
	/* Guest RAM for the nested flow below, at IOVA 0 of the same IOAS. */
	const uint64_t ram_len = 64 * 1024;
	uint8_t *ram = mmap(NULL, ram_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	map.user_va = (uintptr_t)ram;
	map.length = ram_len;
	map.iova = 0;
	CHECK_OK("IOAS_MAP of guest RAM at IOVA 0", ioctl(fd, IOMMU_IOAS_MAP, &map));
	struct iommu_hwpt_alloc hw = {
		.size = sizeof(hw), .flags = IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_PASID,
		.dev_id = dev_id, .pt_id = ioas, .data_type = IOMMU_HWPT_DATA_NONE,
	};
	uint32_t s2 = hwpt_alloc(fd, &hw);
	pass("HWPT_ALLOC of a PASID-capable paging HWPT of the IOAS");
	CHECK_OK("ATTACH the RID", attach(s2, 0, 0));
	CHECK_OK("ATTACH PASID 5", attach(s2, 1, 5));

	/* The demo device only DMAs under a PASID: without one the command is refused. */
	uint64_t status = submit(OP_WRITE_PATTERN, 0, 0, iova, 4096, 1);
	CHECK("a command without PASID: STATUS error", status == STATUS_ERROR);
	CHECK("... ERROR bad command", reg_read(REG_ERROR) == ERROR_BAD_COMMAND);

	/* WRITE_PATTERN into this program's buffer, across pages, at an odd offset and length. */
	const uint64_t seed = 0xfeedface12345678ull, off = 100, n = 3 * 4096 + 77;
	status = submit(OP_WRITE_PATTERN, 5 | PASID_VALID, 0, iova + off, n, seed);
	CHECK("WRITE_PATTERN under PASID 5: STATUS done", status == STATUS_DONE);
	CHECK("RESULT is the length", reg_read(REG_RESULT) == n);
	int same = 1;
	for (uint64_t i = 0; i < n; i++)
		same &= buf[off + i] == pattern_byte(seed, i);
	CHECK("the pattern landed in this program's buffer", same);
	CHECK("bytes around it are untouched", buf[off - 1] == 0x5a && buf[off + n] == 0x5a);

	/* READ_CHECKSUM of what the device wrote, and COMPARE. */
	status = submit(OP_READ_CHECKSUM, 5 | PASID_VALID, iova + off, 0, n, 0);
	CHECK("READ_CHECKSUM: STATUS done", status == STATUS_DONE);
	CHECK("RESULT is the checksum C computes", reg_read(REG_RESULT) == checksum(buf + off, n));
	memcpy(buf + 0x8000, buf + off, n);
	status = submit(OP_COMPARE, 5 | PASID_VALID, iova + off, iova + 0x8000, n, 0);
	CHECK("COMPARE of equal ranges: no mismatch", status == STATUS_DONE && reg_read(REG_RESULT) == UINT64_MAX);
	buf[0x8000 + 4321] ^= 1;
	status = submit(OP_COMPARE, 5 | PASID_VALID, iova + off, iova + 0x8000, n, 0);
	CHECK("COMPARE finds the changed byte", status == STATUS_DONE && reg_read(REG_RESULT) == 4321);

	/* A DMA to an IOVA nothing is mapped at. */
	status = submit(OP_FILL, 5 | PASID_VALID, 0, 0x40000000, 4096, 0x77);
	CHECK("FILL of an unmapped IOVA: STATUS error", status == STATUS_ERROR);
	uint64_t error = reg_read(REG_ERROR);
	printf("# ERROR register after the unmapped DMA: %llu\n", (unsigned long long)error);
	CHECK("... ERROR page request invalid (no fault handler answers it)", error == ERROR_PAGE_REQUEST_INVALID);

	/* A page fault served from C: PASID 9 through a nested HWPT whose first-stage table
	 * (in guest RAM at GPA 0x1000) is empty. */
	struct iommu_fault_alloc fa = { .size = sizeof(fa) };
	CHECK_OK("FAULT_QUEUE_ALLOC", ioctl(fd, IOMMU_FAULT_QUEUE_ALLOC, &fa));
	int ffd = (int)fa.out_fault_fd;
	CHECK_ERR("pread of the fault fd: ESPIPE", pread(ffd, &word, 8, 0), ESPIPE);
	struct iommu_hwpt_vtd_s1 s1 = { .pgtbl_addr = 0x1000, .addr_width = 48 };
	hw = (struct iommu_hwpt_alloc){
		.size = sizeof(hw), .flags = IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID,
		.dev_id = dev_id, .pt_id = s2, .data_type = IOMMU_HWPT_DATA_VTD_S1,
		.data_len = sizeof(s1), .data_uptr = (uintptr_t)&s1, .fault_id = fa.out_fault_id,
	};
	uint32_t nested = hwpt_alloc(fd, &hw);
	pass("HWPT_ALLOC nested (VTD_S1) with the fault queue");
	CHECK_OK("ATTACH PASID 9 to the nested HWPT", attach(nested, 1, 9));
	const uint64_t gva = 0x50000000, data = 0x8000;
	reg_write(REG_COMMAND, OP_FILL);
	reg_write(REG_DST, gva);
	reg_write(REG_LEN, 4096);
	reg_write(REG_PATTERN, 0x3c);
	reg_write(REG_PASID, 9 | PASID_VALID);
	reg_write(REG_DOORBELL, 1);
	CHECK("the device waits for the page: STATUS busy", reg_read(REG_STATUS) == STATUS_BUSY);
	struct pollfd pfd = { .fd = ffd, .events = POLLIN };
	CHECK("the fault fd polls readable", poll(&pfd, 1, 1000) == 1 && (pfd.revents & POLLIN));
	struct iommu_hwpt_pgfault rec;
	CHECK("read of one fault record", read(ffd, &rec, sizeof(rec)) == sizeof(rec));
	CHECK("the record names PASID 9, the GVA and the device",
	      rec.pasid == 9 && rec.addr == gva && rec.dev_id == dev_id);
	/* The fault handler: GVA -> GPA 0x8000 in the 4-level table, present | writable | user. */
	uint64_t *pml4 = (uint64_t *)(ram + 0x1000), *pdpt = (uint64_t *)(ram + 0x2000);
	uint64_t *pd = (uint64_t *)(ram + 0x3000), *pt = (uint64_t *)(ram + 0x4000);
	pml4[(gva >> 39) & 511] = 0x2000 | 7;
	pdpt[(gva >> 30) & 511] = 0x3000 | 7;
	pd[(gva >> 21) & 511] = 0x4000 | 7;
	pt[(gva >> 12) & 511] = data | 7;
	struct iommu_hwpt_page_response resp = { .cookie = rec.cookie, .code = 0 };
	CHECK("write of the SUCCESS response", write(ffd, &resp, sizeof(resp)) == sizeof(resp));
	CHECK("the device went on: STATUS done", reg_read(REG_STATUS) == STATUS_DONE);
	same = 1;
	for (uint64_t i = 0; i < 4096; i++)
		same &= ram[data + i] == 0x3c;
	CHECK("the fill landed in guest RAM", same);

	CHECK_OK("close of the fault fd", close(ffd));
	CHECK_OK("close of the device", close(dev));
	CHECK_OK("close of the iommufd", close(fd));
	all_passed();
	return 0;
}
