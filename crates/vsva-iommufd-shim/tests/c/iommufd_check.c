/*
 * A plain C program that drives /dev/iommu and a VFIO device cdev the way a VMM does, run
 * under LD_PRELOAD=libvsva_iommufd_shim.so by the shim's tests. One line per check; the first
 * failure exits non-zero.
 *
 * The structs and ioctl numbers are the programs' own copies of Linux's
 * include/uapi/linux/iommufd.h and include/uapi/linux/vfio.h (uapi.h), so it builds without
 * kernel headers.
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
#include "uapi.h"

#define MFD_CLOEXEC_ 1U
#define MFD_ALLOW_SEALING_ 2U

static uint32_t ioas_alloc(int fd)
{
	struct iommu_ioas_alloc cmd = { .size = sizeof(cmd) };
	if (ioctl(fd, IOMMU_IOAS_ALLOC, &cmd))
		fail("IOAS_ALLOC", "failed");
	return cmd.out_ioas_id;
}

static int map(int fd, uint32_t ioas, void *va, uint64_t len, uint64_t *iova)
{
	struct iommu_ioas_map cmd = {
		.size = sizeof(cmd), .ioas_id = ioas,
		.flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
		.user_va = (uintptr_t)va, .length = len,
	};
	int rc = ioctl(fd, IOMMU_IOAS_MAP, &cmd);
	if (!rc && iova)
		*iova = cmd.iova;
	return rc;
}

/* Whether /proc/self/maps shows `va` backed by the shim's memfd. */
static int memfd_backed(void *va)
{
	char line[512];
	int found = 0;
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long start, end;
		if (sscanf(line, "%lx-%lx", &start, &end) == 2 && start <= (uintptr_t)va &&
		    (uintptr_t)va < end)
			found = strstr(line, "/memfd:vsva-shim") != NULL;
	}
	fclose(f);
	return found;
}

int main(void)
{
	const uint64_t len = 64 * 1024;
	uint64_t iova = 0, iova2 = 0;

	int fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	CHECK("open /dev/iommu", fd >= 0);
	uint32_t ioas = ioas_alloc(fd);
	pass("IOAS_ALLOC");

	/* IOVA ranges: a too-small array is EMSGSIZE with the count needed written back. */
	struct iommu_iova_range ranges[8];
	struct iommu_ioas_iova_ranges ir = {
		.size = sizeof(ir), .ioas_id = ioas, .num_iovas = 0,
		.allowed_iovas = (uintptr_t)ranges,
	};
	CHECK_ERR("IOAS_IOVA_RANGES with no room: EMSGSIZE", ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &ir), EMSGSIZE);
	CHECK("IOAS_IOVA_RANGES reports the count needed", ir.num_iovas >= 1 && ir.num_iovas <= 8);
	CHECK_OK("IOAS_IOVA_RANGES with room", ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &ir));
	CHECK("IOVA ranges are ordered", ranges[0].start <= ranges[0].last);

	/* IOAS_MAP of the program's own memory. */
	unsigned char *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (uint64_t i = 0; i < len; i++)
		buf[i] = (unsigned char)(i * 7);
	CHECK_OK("IOAS_MAP of an mmap'd buffer", map(fd, ioas, buf, len, &iova));
	unsigned char *heap = malloc(3 * 4096);
	unsigned char *heap_page = (unsigned char *)(((uintptr_t)heap + 4095) & ~(uintptr_t)4095);
	CHECK_OK("IOAS_MAP of a malloc'd page", map(fd, ioas, heap_page, 4096, NULL));

	/* Error cases. */
	struct iommu_ioas_map bad = {
		.size = sizeof(bad), .ioas_id = ioas, .flags = IOMMU_IOAS_MAP_READABLE | (1u << 12),
		.user_va = (uintptr_t)buf, .length = len,
	};
	CHECK_ERR("IOAS_MAP with an unknown flag: EOPNOTSUPP", ioctl(fd, IOMMU_IOAS_MAP, &bad), EOPNOTSUPP);
	bad.flags = IOMMU_IOAS_MAP_READABLE;
	bad.ioas_id = 4242;
	CHECK_ERR("IOAS_MAP of a missing IOAS: ENOENT", ioctl(fd, IOMMU_IOAS_MAP, &bad), ENOENT);
	bad.ioas_id = ioas;
	bad.size = 8;
	CHECK_ERR("IOAS_MAP with size below the minimum: EINVAL", ioctl(fd, IOMMU_IOAS_MAP, &bad), EINVAL);
	struct { struct iommu_ioas_map map; uint64_t tail; } longer = { .map = bad, .tail = 1 };
	longer.map.size = sizeof(longer);
	CHECK_ERR("IOAS_MAP with non-zero trailing bytes: E2BIG", ioctl(fd, IOMMU_IOAS_MAP, &longer), E2BIG);
	/* The kernel's ioctl command is an unsigned int: the upper half of the request is
	 * dropped, for every rule of the command (here the zero tail past the shim's 4 KiB). */
	static struct { struct iommu_ioas_alloc cmd; uint8_t tail[8192]; } big;
	const unsigned long high = 1ul << 32;
	big.cmd = (struct iommu_ioas_alloc){ .size = sizeof(big) };
	CHECK_OK("IOAS_ALLOC with the request's upper half set, size 8 KiB, zero tail",
		 ioctl(fd, high | IOMMU_IOAS_ALLOC, &big));
	CHECK("... allocated an IOAS", big.cmd.out_ioas_id != 0);
	big.tail[5000] = 1;
	CHECK_ERR("... and with a non-zero byte past 4 KiB: E2BIG", ioctl(fd, high | IOMMU_IOAS_ALLOC, &big), E2BIG);
	CHECK_ERR("ioctl with a bad pointer: EFAULT", ioctl(fd, IOMMU_IOAS_ALLOC, (void *)8), EFAULT);
	CHECK_ERR("ioctl with an unmapped pointer: EFAULT", ioctl(fd, IOMMU_IOAS_MAP, (void *)(buf + len + (1 << 30))), EFAULT);

	/* COPY into a second IOAS, then UNMAP it. */
	uint32_t ioas2 = ioas_alloc(fd);
	struct iommu_ioas_copy copy = {
		.size = sizeof(copy), .flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
		.dst_ioas_id = ioas2, .src_ioas_id = ioas, .length = len, .src_iova = iova,
	};
	CHECK_OK("IOAS_COPY", ioctl(fd, IOMMU_IOAS_COPY, &copy));
	iova2 = copy.dst_iova;
	struct iommu_ioas_unmap unmap = { .size = sizeof(unmap), .ioas_id = ioas2, .iova = iova2, .length = len };
	CHECK_OK("IOAS_UNMAP of the copy", ioctl(fd, IOMMU_IOAS_UNMAP, &unmap));
	CHECK("IOAS_UNMAP returns the length", unmap.length == len);

	/* A VFIO device bound through a dup of the iommufd. */
	int dupfd = dup(fd);
	CHECK("dup of the iommufd", dupfd >= 0);
	CHECK("ioctl on the dup", ioas_alloc(dupfd) > 0);
	struct pollfd pfd = { .fd = fd, .events = POLLIN | POLLOUT };
	CHECK("poll of the iommufd: always ready", poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN));
	/* A count the compiler cannot see over an array whose size it knows: under
	 * _FORTIFY_SOURCE the calls are __poll_chk and __ppoll_chk, answered by the shim too. */
	volatile nfds_t one = 1;
	pfd.revents = 0;
	CHECK("a fortified poll (__poll_chk) of the iommufd: always ready",
	      poll(&pfd, one, 0) == 1 && (pfd.revents & POLLIN));
	const struct timespec no_wait = { 0, 0 };
	pfd.revents = 0;
	CHECK("a fortified ppoll (__ppoll_chk) of the iommufd: always ready",
	      ppoll(&pfd, one, &no_wait, NULL) == 1 && (pfd.revents & POLLIN));
	int dev = open("/dev/vfio/devices/vfio0", O_RDWR);
	CHECK("open /dev/vfio/devices/vfio0", dev >= 0);
	CHECK_ERR("open of a missing endpoint: ENOENT", open("/dev/vfio/devices/vfio99", O_RDWR), ENOENT);
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = dupfd };
	CHECK_OK("VFIO_DEVICE_BIND_IOMMUFD", ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &bind));
	uint32_t dev_id = bind.out_devid;

	/* A nesting parent on the IOAS: its domain is filled, so the buffer is pinned. */
	struct iommu_hwpt_alloc hw = {
		.size = sizeof(hw), .flags = IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_PASID,
		.dev_id = dev_id,
		.pt_id = ioas, .data_type = IOMMU_HWPT_DATA_NONE,
	};
	CHECK_OK("HWPT_ALLOC (NEST_PARENT, PASID-compatible)", ioctl(fd, IOMMU_HWPT_ALLOC, &hw));
	uint32_t s2 = hw.out_hwpt_id;
	CHECK("the pinned buffer is memfd-backed", memfd_backed(buf));
	int same = 1;
	for (uint64_t i = 0; i < len; i++)
		same &= buf[i] == (unsigned char)(i * 7);
	CHECK("the pinned buffer kept its contents", same);
	buf[5] = 0xa5;
	CHECK("the pinned buffer stays writable", buf[5] == 0xa5);
	struct iommu_destroy destroy = { .size = sizeof(destroy), .id = ioas };
	CHECK_ERR("DESTROY of an IOAS in use: EBUSY", ioctl(fd, IOMMU_DESTROY, &destroy), EBUSY);
	struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at), .pt_id = s2 };
	CHECK_OK("VFIO_DEVICE_ATTACH_IOMMUFD_PT", ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at));

	/* A fault queue and a nested HWPT that reports to it, attached to a PASID. */
	struct iommu_fault_alloc fa = { .size = sizeof(fa) };
	CHECK_OK("FAULT_QUEUE_ALLOC", ioctl(fd, IOMMU_FAULT_QUEUE_ALLOC, &fa));
	int ffd = (int)fa.out_fault_fd;
	CHECK("the fault fd is open and close-on-exec", fcntl(ffd, F_GETFD) == FD_CLOEXEC);
	pfd = (struct pollfd){ .fd = ffd, .events = POLLIN | POLLOUT };
	CHECK("poll of the fault fd: writable, nothing to read", poll(&pfd, 1, 0) == 1 && pfd.revents == POLLOUT);
	struct iommu_hwpt_vtd_s1 s1 = { .pgtbl_addr = 0x1000, .addr_width = 48 };
	hw = (struct iommu_hwpt_alloc){
		.size = sizeof(hw), .flags = IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID,
		.dev_id = dev_id, .pt_id = s2, .data_type = IOMMU_HWPT_DATA_VTD_S1,
		.data_len = sizeof(s1), .data_uptr = (uintptr_t)&s1, .fault_id = fa.out_fault_id,
	};
	CHECK_OK("HWPT_ALLOC (nested, VTD_S1, fault_id)", ioctl(fd, IOMMU_HWPT_ALLOC, &hw));
	at = (struct vfio_device_attach_iommufd_pt){
		.argsz = sizeof(at), .flags = VFIO_DEVICE_ATTACH_PASID, .pt_id = hw.out_hwpt_id, .pasid = 9,
	};
	CHECK_OK("ATTACH_IOMMUFD_PT of PASID 9 to the nested HWPT", ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at));
	unsigned char records[80];
	CHECK_ERR("read of the fault fd, size not a multiple of 40: ESPIPE", read(ffd, records, 39), ESPIPE);
	CHECK("read of the fault fd with nothing queued: 0", read(ffd, records, 80) == 0);
	void *volatile bad_ptr = (void *)8; /* volatile: no object size for the fortify checks */
	CHECK("read of the fault fd into a bad buffer with nothing queued: 0 (nothing is copied)",
	      read(ffd, bad_ptr, 80) == 0);
	CHECK_ERR("write of the fault fd from a bad buffer: EFAULT", write(ffd, bad_ptr, 8), EFAULT);
	/* access_ok() comes before the record-size rule and before anything is copied. */
	volatile size_t records_wrap = SIZE_MAX - 15, responses_wrap = SIZE_MAX - 7, all = SIZE_MAX;
	CHECK_ERR("read of the fault fd with a count that wraps: EFAULT", read(ffd, bad_ptr, records_wrap), EFAULT);
	CHECK_ERR("write of the fault fd with a count that wraps: EFAULT", write(ffd, records, responses_wrap), EFAULT);
	CHECK_ERR("... even one that is no whole record: EFAULT", write(ffd, records, all), EFAULT);
	CHECK_ERR("ioctl of the fault fd: ENOTTY", ioctl(ffd, IOMMU_IOAS_ALLOC, &ir), ENOTTY);
	CHECK_ERR("read of the iommufd: EINVAL", read(fd, records, 8), EINVAL);
	CHECK_ERR("write of the iommufd: EINVAL", write(fd, records, 8), EINVAL);
	CHECK_ERR("ioctl of an unknown number: ENOTTY", ioctl(fd, IOMMUFD_CMD(0x7f), &ir), ENOTTY);
	CHECK_ERR("open of /dev/iommu with O_CREAT | O_EXCL: EEXIST",
	          open("/dev/iommu", O_RDWR | O_CREAT | O_EXCL, 0600), EEXIST);
	CHECK_ERR("open of /dev/iommu with O_DIRECTORY: ENOTDIR", open("/dev/iommu", O_RDONLY | O_DIRECTORY), ENOTDIR);
	struct iommu_hwpt_page_response resp = { .cookie = 777, .code = 0 };
	CHECK_ERR("write of a bogus cookie: EINVAL", write(ffd, &resp, sizeof(resp)), EINVAL);
	CHECK_ERR("write of a partial record: ESPIPE", write(ffd, &resp, 5), ESPIPE);
	struct vfio_device_detach_iommufd_pt dt = { .argsz = sizeof(dt), .flags = VFIO_DEVICE_DETACH_PASID, .pasid = 9 };
	CHECK_OK("DETACH_IOMMUFD_PT of PASID 9", ioctl(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &dt));

	/* MAP_FILE of a memfd. */
	int mfd = memfd_create("iommufd-check", MFD_CLOEXEC_ | MFD_ALLOW_SEALING_);
	CHECK("memfd_create", mfd >= 0 && ftruncate(mfd, len) == 0);
	struct iommu_ioas_map_file mf = {
		.size = sizeof(mf), .flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = ioas, .fd = mfd, .start = 0, .length = len,
	};
	CHECK_OK("IOAS_MAP_FILE of a memfd (into the attached IOAS: pinned)", ioctl(fd, IOMMU_IOAS_MAP_FILE, &mf));
	CHECK("the memfd is sealed against shrinking", fcntl(mfd, F_GET_SEALS) & F_SEAL_SHRINK);
	mf.start = len;
	CHECK_ERR("IOAS_MAP_FILE past the end of the file: EINVAL", ioctl(fd, IOMMU_IOAS_MAP_FILE, &mf), EINVAL);
	mf.start = 0;
	mf.fd = 1000;
	CHECK_ERR("IOAS_MAP_FILE of a closed fd: EBADF", ioctl(fd, IOMMU_IOAS_MAP_FILE, &mf), EBADF);

	/* Unmap everything of the first IOAS while its domain is attached. */
	unmap = (struct iommu_ioas_unmap){ .size = sizeof(unmap), .ioas_id = ioas, .iova = iova, .length = len };
	CHECK_OK("IOAS_UNMAP of the buffer", ioctl(fd, IOMMU_IOAS_UNMAP, &unmap));
	CHECK("IOAS_UNMAP returns the length", unmap.length == len);

	CHECK_OK("close of the fault fd", close(ffd));
	CHECK_OK("close of the device", close(dev));
	CHECK_OK("close of the dup", close(dupfd));
	CHECK("the iommufd still works after its dup is closed", ioas_alloc(fd) > 0);
	CHECK_OK("close of the iommufd", close(fd));
	CHECK_ERR("ioctl on the closed iommufd: EBADF", ioctl(fd, IOMMU_IOAS_ALLOC, &ir), EBADF);
	CHECK_ERR("plain files still pass through", open("/nonexistent/vsva", O_RDONLY), ENOENT);
	all_passed();
	return 0;
}
