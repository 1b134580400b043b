/*
 * A user-space driver of the shim's emulated copy engine, the way a VMM drives a VFIO
 * mediated device (an mdev, e.g. samples/vfio-mdev/mtty.c) through iommufd: run under
 * LD_PRELOAD=libvsva_iommufd_shim.so by the shim's tests. The device has no IOMMU: binding it
 * makes an iommufd *access* whose object ID is the device ID, attaching takes an IOAS only,
 * and the device's driver reaches this program's memory by vfio_dma_rw() or by pinning
 * pages with vfio_pin_pages(), which it gives back when the IOAS unmaps them. One line per
 * check; the first failure exits non-zero.
 *
 * The structs and numbers are the programs' own copies of Linux's
 * include/uapi/linux/iommufd.h and include/uapi/linux/vfio.h (uapi.h), and of the engine's
 * register map (dma_regs.h; crates/vsva-iommufd-shim/src/mdev.rs reuses
 * crates/vsva-demo/src/regs.rs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "check.h"
#include "dma_regs.h"
#include "uapi.h"

/* The copy engine: the demo device's registers (dma_regs.h) without PASID, FLAGS.PIN, and
 * its own ERROR codes (crates/vsva-iommufd-shim/src/mdev.rs). */
#define FLAG_PIN (1ull << 1)
enum { ERR_BAD_COMMAND = 1, ERR_NOT_MAPPED = 2, ERR_DENIED = 3, ERR_NO_MEMORY = 5 };

/* The default machine: vfio0 and vfio1 are demo endpoints, vfio2 the copy engine. */
#define MDEV_PATH "/dev/vfio/devices/vfio2"
#define PHYS_PATH "/dev/vfio/devices/vfio0"
#define PAGE 4096ull

static int iommufd;

/* Runs a command: the engine works inside the DOORBELL write, so STATUS is final at once. */
static uint64_t submit(uint64_t op, uint64_t flags, uint64_t src, uint64_t dst, uint64_t len,
		       uint64_t pattern)
{
	reg_write(REG_COMMAND, op);
	reg_write(REG_FLAGS, flags);
	reg_write(REG_SRC, src);
	reg_write(REG_DST, dst);
	reg_write(REG_LEN, len);
	reg_write(REG_PATTERN, pattern);
	reg_write(REG_DOORBELL, 1);
	return reg_read(REG_STATUS);
}

static uint32_t ioas_alloc(void)
{
	struct iommu_ioas_alloc ia = { .size = sizeof(ia) };
	if (ioctl(iommufd, IOMMU_IOAS_ALLOC, &ia))
		fail("IOAS_ALLOC", "failed");
	return ia.out_ioas_id;
}

static int ioas_map(uint32_t ioas, uint32_t prot, void *va, uint64_t len, uint64_t iova)
{
	struct iommu_ioas_map map = {
		.size = sizeof(map), .ioas_id = ioas, .flags = IOMMU_IOAS_MAP_FIXED_IOVA | prot,
		.user_va = (uintptr_t)va, .length = len, .iova = iova,
	};
	return ioctl(iommufd, IOMMU_IOAS_MAP, &map);
}

static int destroy(uint32_t id)
{
	struct iommu_destroy d = { .size = sizeof(d), .id = id };
	return ioctl(iommufd, IOMMU_DESTROY, &d);
}

static int attach(int fd, uint32_t *pt_id, int with_pasid)
{
	struct vfio_device_attach_iommufd_pt at = {
		.argsz = sizeof(at), .flags = with_pasid ? VFIO_DEVICE_ATTACH_PASID : 0,
		.pt_id = *pt_id, .pasid = 1,
	};
	int rc = ioctl(fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at);
	*pt_id = at.pt_id;
	return rc;
}

static uint32_t bind(int fd)
{
	struct vfio_device_bind_iommufd b = { .argsz = sizeof(b), .iommufd = iommufd };
	if (ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, &b))
		fail("VFIO_DEVICE_BIND_IOMMUFD", "failed");
	return b.out_devid;
}

static uint8_t *buffer(uint64_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		fail("mmap", "failed");
	return p;
}

int main(void)
{
	iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	CHECK("open /dev/iommu", iommufd >= 0);
	dev = open(MDEV_PATH, O_RDWR | O_CLOEXEC);
	CHECK("open " MDEV_PATH ", the emulated device after the two endpoints", dev >= 0);
	CHECK_ERR("open of vfio3: ENOENT", open("/dev/vfio/devices/vfio3", O_RDWR), ENOENT);
	uint64_t word = 0;
	CHECK_ERR("pread before bind: EINVAL", pread(dev, &word, 8, bar0 + REG_STATUS), EINVAL);

	/* Bind: the device ID is the access's object ID; VFIO holds it. */
	uint32_t devid = bind(dev);
	printf("# emulated device bound: devid %u\n", devid);
	pass("VFIO_DEVICE_BIND_IOMMUFD of the emulated device");
	CHECK("the device ID is an object ID", devid != 0);
	CHECK_ERR("IOMMU_DESTROY of the access: EBUSY", destroy(devid), EBUSY);

	/* The regions, through the same vfio-pci layout as a physical function. */
	struct vfio_device_info di = { .argsz = sizeof(di) };
	CHECK_OK("VFIO_DEVICE_GET_INFO", ioctl(dev, VFIO_DEVICE_GET_INFO, &di));
	CHECK("a PCI device with 9 regions", di.flags == VFIO_DEVICE_FLAGS_PCI && di.num_regions == 9);
	struct vfio_region_info ri = { .argsz = sizeof(ri), .index = VFIO_PCI_CONFIG_REGION_INDEX };
	CHECK_OK("GET_REGION_INFO config", ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &ri));
	CHECK("config: 256 bytes (a conventional header), read/write",
	      ri.size == 256 && ri.flags == (VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE) &&
	      ri.offset == cfg);
	ri = (struct vfio_region_info){ .argsz = sizeof(ri), .index = VFIO_PCI_BAR0_REGION_INDEX };
	CHECK_OK("GET_REGION_INFO BAR0", ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &ri));
	CHECK("BAR0: 4 KiB at offset 0", ri.size == 4096 && ri.offset == 0);
	uint32_t ids = 0, bar = 0xffffffff;
	CHECK("vendor 0x1af4, device 0x10f1", pread(dev, &ids, 4, cfg) == 4 && ids == 0x10f11af4);
	CHECK("BAR sizing: write all ones", pwrite(dev, &bar, 4, cfg + 0x10) == 4);
	CHECK("... reads back a 4 KiB memory BAR", pread(dev, &bar, 4, cfg + 0x10) == 4 && bar == 0xfffff000);
	CHECK_ERR("config access past 256 bytes: EFAULT", pread(dev, &ids, 4, cfg + 254), EFAULT);

	/* A HWPT exists only for a device behind the IOMMU: allocate one on vfio0. */
	int phys = open(PHYS_PATH, O_RDWR | O_CLOEXEC);
	CHECK("open " PHYS_PATH, phys >= 0);
	uint32_t phys_id = bind(phys);
	pass("bind of the physical device");
	uint32_t other = ioas_alloc();
	struct iommu_hwpt_alloc hw = { .size = sizeof(hw), .dev_id = phys_id, .pt_id = other };
	CHECK_OK("HWPT_ALLOC on the physical device", ioctl(iommufd, IOMMU_HWPT_ALLOC, &hw));
	uint32_t pt = hw.out_hwpt_id;
	CHECK_ERR("ATTACH the emulated device to a HWPT: ENOENT (an access takes an IOAS only)",
		  attach(dev, &pt, 0), ENOENT);
	uint32_t ioas = ioas_alloc();
	pt = ioas;
	CHECK_ERR("ATTACH with the PASID flag: EOPNOTSUPP", attach(dev, &pt, 1), EOPNOTSUPP);
	pt = other;
	CHECK_OK("ATTACH to an IOAS", attach(dev, &pt, 0));
	CHECK("pt_id comes back unchanged", pt == other);
	pt = ioas;
	CHECK_OK("a second ATTACH replaces", attach(dev, &pt, 0));
	CHECK("... pt_id unchanged again", pt == ioas);
	CHECK_OK("IOMMU_DESTROY of the HWPT", destroy(hw.out_hwpt_id));
	CHECK_OK("IOMMU_DESTROY of the IOAS left behind: the access moved off it", destroy(other));
	CHECK_OK("close of the physical device", close(phys));

	/* This program's buffer, read-write at IOVA 1 MiB. */
	const uint64_t len = 16 * PAGE, iova = 0x100000;
	uint8_t *buf = buffer(len);
	memset(buf, 0x5a, len);
	CHECK_OK("IOAS_MAP of the buffer",
		 ioas_map(ioas, IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE, buf, len, iova));

	/* FILL, COPY, WRITE_PATTERN, READ_CHECKSUM, COMPARE through vfio_dma_rw(). */
	const uint64_t off = 100, n = 2 * PAGE + 77;
	CHECK("FILL: STATUS done", submit(OP_FILL, 0, 0, iova + off, n, 0xc3) == STATUS_DONE);
	CHECK("... RESULT is the length", reg_read(REG_RESULT) == n);
	int same = 1;
	for (uint64_t i = 0; i < n; i++)
		same &= buf[off + i] == 0xc3;
	CHECK("the fill landed in this program's buffer", same);
	CHECK("bytes around it are untouched", buf[off - 1] == 0x5a && buf[off + n] == 0x5a);
	const uint64_t seed = 0xfeedface12345678ull, pat = 8 * PAGE + 3;
	CHECK("WRITE_PATTERN: STATUS done", submit(OP_WRITE_PATTERN, 0, 0, iova + pat, n, seed) == STATUS_DONE);
	same = 1;
	for (uint64_t i = 0; i < n; i++)
		same &= buf[pat + i] == pattern_byte(seed, i);
	CHECK("the pattern landed", same);
	const uint64_t copy = 4 * PAGE + 9;
	CHECK("COPY: STATUS done", submit(OP_COPY, 0, iova + pat, iova + copy, 1000, 0) == STATUS_DONE);
	CHECK("the copy landed", memcmp(buf + copy, buf + pat, 1000) == 0);
	CHECK("READ_CHECKSUM: STATUS done", submit(OP_READ_CHECKSUM, 0, iova + pat, 0, n, 0) == STATUS_DONE);
	CHECK("RESULT is the checksum C computes", reg_read(REG_RESULT) == checksum(buf + pat, n));
	buf[copy + 777] ^= 1;
	CHECK("COMPARE: STATUS done", submit(OP_COMPARE, 0, iova + pat, iova + copy, 1000, 0) == STATUS_DONE);
	CHECK("COMPARE finds the changed byte", reg_read(REG_RESULT) == 777);
	CHECK("an unknown opcode: STATUS error", submit(9, 0, 0, iova, 8, 0) == STATUS_ERROR);
	CHECK("... ERROR bad command, RESULT 0",
	      reg_read(REG_ERROR) == ERR_BAD_COMMAND && reg_read(REG_RESULT) == 0);

	/* A read-only mapping: the device may read it, not write it. */
	uint8_t *ro = buffer(PAGE);
	memset(ro, 0x77, PAGE);
	const uint64_t ro_iova = 0x200000;
	CHECK_OK("IOAS_MAP of a read-only range", ioas_map(ioas, IOMMU_IOAS_MAP_READABLE, ro, PAGE, ro_iova));
	CHECK("FILL of it: STATUS error", submit(OP_FILL, 0, 0, ro_iova, 8, 0) == STATUS_ERROR);
	CHECK("... ERROR denied, RESULT EPERM",
	      reg_read(REG_ERROR) == ERR_DENIED && reg_read(REG_RESULT) == EPERM);
	CHECK("a pinning FILL of it: STATUS error", submit(OP_FILL, FLAG_PIN, 0, ro_iova, 8, 0) == STATUS_ERROR);
	CHECK("... ERROR denied, RESULT EPERM",
	      reg_read(REG_ERROR) == ERR_DENIED && reg_read(REG_RESULT) == EPERM);
	CHECK("the range is unchanged", ro[0] == 0x77 && ro[7] == 0x77);
	CHECK("READ_CHECKSUM of it: done",
	      submit(OP_READ_CHECKSUM, 0, ro_iova, 0, PAGE, 0) == STATUS_DONE &&
	      reg_read(REG_RESULT) == checksum(ro, PAGE));

	/* Pinned pages: the driver keeps them until the IOAS unmaps them. */
	uint8_t *pinned = buffer(2 * PAGE);
	const uint64_t pin_iova = 0x300000;
	CHECK_OK("IOAS_MAP of a range for pinned DMA",
		 ioas_map(ioas, IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE, pinned, 2 * PAGE, pin_iova));
	CHECK("a pinning FILL: STATUS done",
	      submit(OP_FILL, FLAG_PIN, 0, pin_iova + 10, PAGE, 0x3c) == STATUS_DONE);
	same = 1;
	for (uint64_t i = 0; i < PAGE; i++)
		same &= pinned[10 + i] == 0x3c;
	CHECK("the fill through the pinned pages landed", same);
	CHECK("a pinning COPY into this buffer: done",
	      submit(OP_COPY, FLAG_PIN, pin_iova + 10, iova + 12 * PAGE, 100, 0) == STATUS_DONE &&
	      buf[12 * PAGE] == 0x3c && buf[12 * PAGE + 99] == 0x3c);
	struct iommu_ioas_unmap um = { .size = sizeof(um), .ioas_id = ioas, .iova = pin_iova, .length = 2 * PAGE };
	CHECK_OK("IOAS_UNMAP of the pinned range: the driver unpinned in dma_unmap",
		 ioctl(iommufd, IOMMU_IOAS_UNMAP, &um));
	CHECK("... all of it unmapped", um.length == 2 * PAGE);
	CHECK("a pinning FILL there now: STATUS error",
	      submit(OP_FILL, FLAG_PIN, 0, pin_iova, 8, 0) == STATUS_ERROR);
	CHECK("... ERROR not mapped, RESULT ENOENT",
	      reg_read(REG_ERROR) == ERR_NOT_MAPPED && reg_read(REG_RESULT) == ENOENT);
	CHECK("a copying FILL there: not mapped either",
	      submit(OP_FILL, 0, 0, pin_iova, 8, 0) == STATUS_ERROR && reg_read(REG_ERROR) == ERR_NOT_MAPPED);
	/* Pins are charged to RLIMIT_MEMLOCK for as long as the driver holds them; a copy
	 * pins only while it copies, uncharged. */
	struct rlimit old;
	CHECK_OK("getrlimit(RLIMIT_MEMLOCK)", getrlimit(RLIMIT_MEMLOCK, &old));
	struct rlimit two = { .rlim_cur = 2 * PAGE, .rlim_max = old.rlim_max };
	if (old.rlim_max != RLIM_INFINITY && old.rlim_max < two.rlim_cur)
		two.rlim_cur = old.rlim_max;
	CHECK_OK("setrlimit(RLIMIT_MEMLOCK) to 2 pages", setrlimit(RLIMIT_MEMLOCK, &two));
	CHECK("a copying READ_CHECKSUM of 3 pages: done",
	      submit(OP_READ_CHECKSUM, 0, iova, 0, 3 * PAGE, 0) == STATUS_DONE);
	CHECK("a pinning READ_CHECKSUM of 3 pages: STATUS error",
	      submit(OP_READ_CHECKSUM, FLAG_PIN, iova, 0, 3 * PAGE, 0) == STATUS_ERROR);
	CHECK("... ERROR no memory, RESULT ENOMEM",
	      reg_read(REG_ERROR) == ERR_NO_MEMORY && reg_read(REG_RESULT) == ENOMEM);
	CHECK_OK("setrlimit(RLIMIT_MEMLOCK) back", setrlimit(RLIMIT_MEMLOCK, &old));

	/* Pins in the main buffer, left for the detach to take back. */
	CHECK("a pinning READ_CHECKSUM of the buffer",
	      submit(OP_READ_CHECKSUM, FLAG_PIN, iova, 0, 3 * PAGE, 0) == STATUS_DONE &&
	      reg_read(REG_RESULT) == checksum(buf, 3 * PAGE));

	/* The access holds its IOAS until it is detached. */
	CHECK_ERR("IOMMU_DESTROY of the attached IOAS: EBUSY", destroy(ioas), EBUSY);
	struct vfio_device_detach_iommufd_pt dt = { .argsz = sizeof(dt) };
	CHECK_OK("VFIO_DEVICE_DETACH_IOMMUFD_PT", ioctl(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &dt));
	CHECK("a command while detached: ERROR not mapped (no IOAS)",
	      submit(OP_FILL, 0, 0, iova, 8, 0) == STATUS_ERROR && reg_read(REG_ERROR) == ERR_NOT_MAPPED);
	CHECK_OK("IOMMU_DESTROY of the IOAS after DETACH", destroy(ioas));
	CHECK_ERR("the access still cannot be destroyed: EBUSY", destroy(devid), EBUSY);

	/* Closing the device unbinds it: the access is destroyed. */
	CHECK_OK("close of the emulated device", close(dev));
	CHECK_ERR("IOMMU_DESTROY of the old device ID: ENOENT", destroy(devid), ENOENT);
	dev = open(MDEV_PATH, O_RDWR | O_CLOEXEC);
	CHECK("the device opens again", dev >= 0);
	/* The object table hands out the lowest free ID, as Linux's xa_alloc() does: the new
	 * access may reuse the old number. */
	uint32_t again = bind(dev);
	pass("... and binds again");
	CHECK_ERR("... as a new access, held by VFIO: EBUSY", destroy(again), EBUSY);
	CHECK_OK("close of it", close(dev));
	CHECK_OK("close of the iommufd", close(iommufd));
	all_passed();
	return 0;
}
