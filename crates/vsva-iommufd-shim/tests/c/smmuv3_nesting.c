/*
 * SMMUv3 nesting through /dev/iommu, as a VMM with an accelerated vSMMU drives it
 * (run under the shim with VSVA_SHIM_IOMMU=smmuv3): the raw IDRs of IOMMU_GET_HW_INFO, a
 * nesting parent, an ARM_SMMUV3 vIOMMU, a vDEVICE giving the device its vSID, nested HWPTs
 * from guest STE words, raw-command invalidation through the vIOMMU, and a vEVENTQ's
 * descriptor. Every errno is Linux's (iommufd and arm-smmu-v3-iommufd.c).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "uapi.h"

/* STE word 0: V and Config (Arm IHI 0070, 5.2). */
#define STE_V 1ull
#define STE_CFG(c) ((uint64_t)(c) << 1)
#define CFG_ABORT 0
#define CFG_BYPASS 4
#define CFG_S2 6
/* CMDQ opcodes (Arm IHI 0070, 4.1) and the StreamID field of CFGI_* (DW0 63:32). */
#define CMD_CFGI_CD_ALL 0x06ull
#define CMD_TLBI_NH_ALL 0x10ull
#define CMD_SID(sid) ((uint64_t)(sid) << 32)

static int fd;

static int hwpt_alloc(uint32_t dev_id, uint32_t pt_id, uint32_t flags, uint32_t type,
		      const void *data, uint32_t len, uint32_t *out)
{
	struct iommu_hwpt_alloc cmd = {
		.size = sizeof(cmd), .flags = flags, .dev_id = dev_id, .pt_id = pt_id,
		.data_type = type, .data_len = len, .data_uptr = (uintptr_t)data,
	};
	int rc = ioctl(fd, IOMMU_HWPT_ALLOC, &cmd);
	if (rc == 0 && out)
		*out = cmd.out_hwpt_id;
	return rc;
}

static int destroy(uint32_t id)
{
	struct iommu_destroy cmd = { .size = sizeof(cmd), .id = id };
	return ioctl(fd, IOMMU_DESTROY, &cmd);
}

int main(void)
{
	fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	CHECK("open /dev/iommu", fd >= 0);
	int dev = open("/dev/vfio/devices/vfio0", O_RDWR | O_CLOEXEC);
	CHECK("open /dev/vfio/devices/vfio0", dev >= 0);
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = fd };
	CHECK_OK("VFIO_DEVICE_BIND_IOMMUFD", ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &bind));
	uint32_t dev_id = bind.out_devid;

	struct iommu_hw_info_arm_smmuv3 idrs;
	memset(&idrs, 0xff, sizeof(idrs));
	struct iommu_hw_info info = {
		.size = sizeof(info), .dev_id = dev_id, .data_len = sizeof(idrs),
		.data_uptr = (uintptr_t)&idrs,
	};
	CHECK_OK("IOMMU_GET_HW_INFO", ioctl(fd, IOMMU_GET_HW_INFO, &info));
	CHECK("the data is the SMMUv3 driver's", info.out_data_type == IOMMU_HW_INFO_TYPE_ARM_SMMUV3);
	CHECK("IDR0 is the unit's", idrs.idr[0] != 0 && idrs.idr[0] != 0xffffffff);

	struct iommu_ioas_alloc ioas = { .size = sizeof(ioas) };
	CHECK_OK("IOMMU_IOAS_ALLOC", ioctl(fd, IOMMU_IOAS_ALLOC, &ioas));
	void *ram = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK("guest RAM", ram != MAP_FAILED);
	struct iommu_ioas_map map = {
		.size = sizeof(map), .ioas_id = ioas.out_ioas_id, .user_va = (uintptr_t)ram,
		.length = 1 << 16, .iova = 0,
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
	};
	CHECK_OK("IOMMU_IOAS_MAP of guest RAM at GPA 0", ioctl(fd, IOMMU_IOAS_MAP, &map));
	uint32_t s2;
	CHECK_OK("a nesting parent", hwpt_alloc(dev_id, ioas.out_ioas_id,
						IOMMU_HWPT_ALLOC_NEST_PARENT, 0, NULL, 0, &s2));

	struct iommu_viommu_alloc viommu = {
		.size = sizeof(viommu), .type = IOMMU_VIOMMU_TYPE_DEFAULT, .dev_id = dev_id,
		.hwpt_id = s2,
	};
	CHECK_ERR("IOMMU_VIOMMU_TYPE_DEFAULT", ioctl(fd, IOMMU_VIOMMU_ALLOC, &viommu), EOPNOTSUPP);
	viommu.type = IOMMU_VIOMMU_TYPE_ARM_SMMUV3;
	viommu.hwpt_id = ioas.out_ioas_id;
	CHECK_ERR("a vIOMMU over an IOAS", ioctl(fd, IOMMU_VIOMMU_ALLOC, &viommu), ENOENT);
	viommu.hwpt_id = s2;
	CHECK_OK("IOMMU_VIOMMU_ALLOC ARM_SMMUV3", ioctl(fd, IOMMU_VIOMMU_ALLOC, &viommu));
	uint32_t vi = viommu.out_viommu_id;

	struct iommu_vdevice_alloc vdev = {
		.size = sizeof(vdev), .viommu_id = vi, .dev_id = dev_id, .virt_id = 0x20,
	};
	CHECK_OK("IOMMU_VDEVICE_ALLOC vSID 0x20", ioctl(fd, IOMMU_VDEVICE_ALLOC, &vdev));
	uint32_t vdev_id = vdev.out_vdevice_id;
	vdev.virt_id = 0x21;
	CHECK_ERR("a second vDEVICE for the device", ioctl(fd, IOMMU_VDEVICE_ALLOC, &vdev), EEXIST);

	struct iommu_hwpt_arm_smmuv3 ste = { .ste = { STE_V | STE_CFG(CFG_S2), 0 } };
	uint32_t bad;
	CHECK_ERR("a guest STE with stage-2 Config",
		  hwpt_alloc(dev_id, vi, 0, IOMMU_HWPT_DATA_ARM_SMMUV3, &ste, sizeof(ste), &bad), EIO);
	ste.ste[0] = STE_V | STE_CFG(CFG_BYPASS);
	CHECK_ERR("NEST_PARENT on a vIOMMU",
		  hwpt_alloc(dev_id, vi, IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_DATA_ARM_SMMUV3,
			     &ste, sizeof(ste), &bad), EOPNOTSUPP);
	CHECK_ERR("no STE", hwpt_alloc(dev_id, vi, 0, IOMMU_HWPT_DATA_NONE, NULL, 0, &bad),
		  EOPNOTSUPP);
	uint32_t bypass, abort_hwpt;
	CHECK_OK("a bypass STE", hwpt_alloc(dev_id, vi, 0, IOMMU_HWPT_DATA_ARM_SMMUV3, &ste,
					    sizeof(ste), &bypass));
	ste.ste[0] = STE_V | STE_CFG(CFG_ABORT);
	CHECK_OK("an abort STE", hwpt_alloc(dev_id, vi, 0, IOMMU_HWPT_DATA_ARM_SMMUV3, &ste,
					    sizeof(ste), &abort_hwpt));
	struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach), .pt_id = bypass };
	CHECK_OK("attach the bypass STE", ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach));
	CHECK_ERR("the nested HWPT is in use", destroy(bypass), EBUSY);

	struct iommu_viommu_arm_smmuv3_invalidate cmds[4] = {
		{ .cmd = { CMD_TLBI_NH_ALL, 0 } },
		{ .cmd = { CMD_CFGI_CD_ALL | CMD_SID(0x20), 0 } },
		{ .cmd = { CMD_CFGI_CD_ALL | CMD_SID(0x99), 0 } },
		{ .cmd = { CMD_TLBI_NH_ALL, 0 } },
	};
	struct iommu_hwpt_invalidate inv = {
		.size = sizeof(inv), .hwpt_id = vi, .data_uptr = (uintptr_t)cmds,
		.data_type = IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3,
		.entry_len = sizeof(cmds[0]), .entry_num = 4,
	};
	CHECK_ERR("a command naming a vSID with no vDEVICE", ioctl(fd, IOMMU_HWPT_INVALIDATE, &inv),
		  EIO);
	CHECK("the two before it were done", inv.entry_num == 2);
	inv.entry_num = 2;
	CHECK_OK("IOMMU_HWPT_INVALIDATE through the vIOMMU", ioctl(fd, IOMMU_HWPT_INVALIDATE, &inv));
	CHECK("both done", inv.entry_num == 2);

	struct iommu_veventq_alloc veq = {
		.size = sizeof(veq), .viommu_id = vi, .type = IOMMU_VEVENTQ_TYPE_ARM_SMMUV3,
		.veventq_depth = 0,
	};
	CHECK_ERR("depth 0", ioctl(fd, IOMMU_VEVENTQ_ALLOC, &veq), EINVAL);
	veq.veventq_depth = 64;
	CHECK_OK("IOMMU_VEVENTQ_ALLOC", ioctl(fd, IOMMU_VEVENTQ_ALLOC, &veq));
	int qfd = (int)veq.out_veventq_fd;
	CHECK("a close-on-exec descriptor", fcntl(qfd, F_GETFD) == FD_CLOEXEC);
	CHECK_ERR("one queue per type", ioctl(fd, IOMMU_VEVENTQ_ALLOC, &veq), EEXIST);
	struct pollfd pfd = { .fd = qfd, .events = POLLIN | POLLOUT };
	CHECK("nothing to read, never writable", poll(&pfd, 1, 0) == 0);
	char buf[256];
	CHECK("read returns 0", read(qfd, buf, sizeof(buf)) == 0);
	CHECK_ERR("the queue has no write", write(qfd, buf, 8), EINVAL);
	CHECK_ERR("nor a position", pread(qfd, buf, 8, 0), ESPIPE);
	CHECK_ERR("the open queue is in use", destroy(veq.out_veventq_id), EBUSY);
	CHECK_ERR("the vIOMMU is in use", destroy(vi), EBUSY);
	CHECK_OK("close the queue", close(qfd));
	CHECK_OK("destroy the queue", destroy(veq.out_veventq_id));

	struct vfio_device_detach_iommufd_pt detach = { .argsz = sizeof(detach) };
	CHECK_OK("detach", ioctl(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &detach));
	CHECK_OK("destroy the bypass HWPT", destroy(bypass));
	CHECK_OK("destroy the abort HWPT", destroy(abort_hwpt));
	CHECK_OK("destroy the vDEVICE", destroy(vdev_id));
	CHECK_OK("destroy the vIOMMU", destroy(vi));
	CHECK_OK("destroy the nesting parent", destroy(s2));
	CHECK_OK("close the device", close(dev));
	CHECK_OK("close /dev/iommu", close(fd));
	all_passed();
	return 0;
}
