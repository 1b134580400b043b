/*
 * The C programs' own copies of the Linux uAPI they use, so they build without kernel
 * headers: include/uapi/linux/iommufd.h and include/uapi/linux/vfio.h (the structs, ioctl
 * numbers and flags the programs pass; not the whole files).
 */
#ifndef VSVA_UAPI_H
#define VSVA_UAPI_H

#include <stdint.h>
#include <sys/ioctl.h>

/* include/uapi/linux/iommufd.h */
#define IOMMUFD_TYPE ';'
#define IOMMUFD_CMD(nr) _IO(IOMMUFD_TYPE, 0x80 + (nr))
#define IOMMU_DESTROY IOMMUFD_CMD(0)
#define IOMMU_IOAS_ALLOC IOMMUFD_CMD(1)
#define IOMMU_IOAS_COPY IOMMUFD_CMD(3)
#define IOMMU_IOAS_IOVA_RANGES IOMMUFD_CMD(4)
#define IOMMU_IOAS_MAP IOMMUFD_CMD(5)
#define IOMMU_IOAS_UNMAP IOMMUFD_CMD(6)
#define IOMMU_HWPT_ALLOC IOMMUFD_CMD(9)
#define IOMMU_FAULT_QUEUE_ALLOC IOMMUFD_CMD(14)
#define IOMMU_IOAS_MAP_FILE IOMMUFD_CMD(15)
#define IOMMU_GET_HW_INFO IOMMUFD_CMD(10)
#define IOMMU_HWPT_INVALIDATE IOMMUFD_CMD(13)
#define IOMMU_VIOMMU_ALLOC IOMMUFD_CMD(16)
#define IOMMU_VDEVICE_ALLOC IOMMUFD_CMD(17)
#define IOMMU_VEVENTQ_ALLOC IOMMUFD_CMD(19)

struct iommu_destroy { uint32_t size; uint32_t id; };
struct iommu_ioas_alloc { uint32_t size; uint32_t flags; uint32_t out_ioas_id; };
struct iommu_iova_range { uint64_t start; uint64_t last; };
struct iommu_ioas_iova_ranges {
	uint32_t size; uint32_t ioas_id; uint32_t num_iovas; uint32_t __reserved;
	uint64_t allowed_iovas; uint64_t out_iova_alignment;
};
enum { IOMMU_IOAS_MAP_FIXED_IOVA = 1, IOMMU_IOAS_MAP_WRITEABLE = 2, IOMMU_IOAS_MAP_READABLE = 4 };
struct iommu_ioas_map {
	uint32_t size; uint32_t flags; uint32_t ioas_id; uint32_t __reserved;
	uint64_t user_va; uint64_t length; uint64_t iova;
};
struct iommu_ioas_map_file {
	uint32_t size; uint32_t flags; uint32_t ioas_id; int32_t fd;
	uint64_t start; uint64_t length; uint64_t iova;
};
struct iommu_ioas_copy {
	uint32_t size; uint32_t flags; uint32_t dst_ioas_id; uint32_t src_ioas_id;
	uint64_t length; uint64_t dst_iova; uint64_t src_iova;
};
struct iommu_ioas_unmap { uint32_t size; uint32_t ioas_id; uint64_t iova; uint64_t length; };
enum {
	IOMMU_HWPT_ALLOC_NEST_PARENT = 1, IOMMU_HWPT_FAULT_ID_VALID = 4, IOMMU_HWPT_ALLOC_PASID = 8,
};
enum { IOMMU_HWPT_DATA_NONE = 0, IOMMU_HWPT_DATA_VTD_S1 = 1 };
struct iommu_hwpt_vtd_s1 { uint64_t flags; uint64_t pgtbl_addr; uint32_t addr_width; uint32_t __reserved; };
struct iommu_hwpt_alloc {
	uint32_t size; uint32_t flags; uint32_t dev_id; uint32_t pt_id;
	uint32_t out_hwpt_id; uint32_t __reserved; uint32_t data_type; uint32_t data_len;
	uint64_t data_uptr; uint32_t fault_id; uint32_t __reserved2;
};
struct iommu_fault_alloc { uint32_t size; uint32_t flags; uint32_t out_fault_id; uint32_t out_fault_fd; };
struct iommu_hwpt_pgfault {
	uint32_t flags; uint32_t dev_id; uint32_t pasid; uint32_t grpid; uint32_t perm;
	uint32_t __reserved; uint64_t addr; uint32_t length; uint32_t cookie;
};
struct iommu_hwpt_page_response { uint32_t cookie; uint32_t code; };
enum { IOMMU_PGFAULT_FLAGS_PASID_VALID = 1, IOMMU_PGFAULT_FLAGS_LAST_PAGE = 2 };
enum {
	IOMMU_PGFAULT_PERM_READ = 1, IOMMU_PGFAULT_PERM_WRITE = 2, IOMMU_PGFAULT_PERM_EXEC = 4,
	IOMMU_PGFAULT_PERM_PRIV = 8,
};
enum { IOMMUFD_PAGE_RESP_SUCCESS = 0, IOMMUFD_PAGE_RESP_INVALID = 1 };

/* SMMUv3 nesting */
enum { IOMMU_HW_INFO_TYPE_ARM_SMMUV3 = 2 };
struct iommu_hw_info {
	uint32_t size; uint32_t flags; uint32_t dev_id; uint32_t data_len; uint64_t data_uptr;
	uint32_t out_data_type; uint8_t out_max_pasid_log2; uint8_t __reserved[3];
	uint64_t out_capabilities;
};
struct iommu_hw_info_arm_smmuv3 {
	uint32_t flags; uint32_t __reserved; uint32_t idr[6]; uint32_t iidr; uint32_t aidr;
};
enum { IOMMU_HWPT_DATA_ARM_SMMUV3 = 2 };
struct iommu_hwpt_arm_smmuv3 { uint64_t ste[2]; };
enum { IOMMU_VIOMMU_TYPE_DEFAULT = 0, IOMMU_VIOMMU_TYPE_ARM_SMMUV3 = 1 };
struct iommu_viommu_alloc {
	uint32_t size; uint32_t flags; uint32_t type; uint32_t dev_id; uint32_t hwpt_id;
	uint32_t out_viommu_id; uint32_t data_len; uint32_t __reserved; uint64_t data_uptr;
};
struct iommu_vdevice_alloc {
	uint32_t size; uint32_t viommu_id; uint32_t dev_id; uint32_t out_vdevice_id;
	uint64_t virt_id;
};
enum { IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3 = 1 };
struct iommu_viommu_arm_smmuv3_invalidate { uint64_t cmd[2]; };
struct iommu_hwpt_invalidate {
	uint32_t size; uint32_t hwpt_id; uint64_t data_uptr; uint32_t data_type;
	uint32_t entry_len; uint32_t entry_num; uint32_t __reserved;
};
enum { IOMMU_VEVENTQ_TYPE_ARM_SMMUV3 = 1 };
struct iommu_veventq_alloc {
	uint32_t size; uint32_t flags; uint32_t viommu_id; uint32_t type; uint32_t veventq_depth;
	uint32_t out_veventq_id; uint32_t out_veventq_fd; uint32_t __reserved;
};
struct iommufd_vevent_header { uint32_t flags; uint32_t sequence; };
enum { IOMMU_VEVENTQ_FLAG_LOST_EVENTS = 1 };
struct iommu_vevent_arm_smmuv3 { uint64_t evt[4]; };
_Static_assert(sizeof(struct iommu_hw_info) == 40, "iommu_hw_info");
_Static_assert(sizeof(struct iommu_hw_info_arm_smmuv3) == 40, "iommu_hw_info_arm_smmuv3");
_Static_assert(sizeof(struct iommu_viommu_alloc) == 40, "iommu_viommu_alloc");
_Static_assert(sizeof(struct iommu_vdevice_alloc) == 24, "iommu_vdevice_alloc");
_Static_assert(sizeof(struct iommu_hwpt_invalidate) == 32, "iommu_hwpt_invalidate");
_Static_assert(sizeof(struct iommu_veventq_alloc) == 32, "iommu_veventq_alloc");
_Static_assert(sizeof(struct iommufd_vevent_header) == 8, "iommufd_vevent_header");

/* include/uapi/linux/vfio.h */
#define VFIO_TYPE ';'
#define VFIO_BASE 100
#define VFIO_DEVICE_GET_INFO _IO(VFIO_TYPE, VFIO_BASE + 7)
#define VFIO_DEVICE_GET_REGION_INFO _IO(VFIO_TYPE, VFIO_BASE + 8)
#define VFIO_DEVICE_RESET _IO(VFIO_TYPE, VFIO_BASE + 11)
#define VFIO_DEVICE_BIND_IOMMUFD _IO(VFIO_TYPE, VFIO_BASE + 18)
#define VFIO_DEVICE_ATTACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 19)
#define VFIO_DEVICE_DETACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 20)
struct vfio_device_info {
	uint32_t argsz; uint32_t flags; uint32_t num_regions; uint32_t num_irqs;
	uint32_t cap_offset; uint32_t pad;
};
#define VFIO_DEVICE_FLAGS_RESET (1 << 0)
#define VFIO_DEVICE_FLAGS_PCI (1 << 1)
struct vfio_region_info {
	uint32_t argsz; uint32_t flags; uint32_t index; uint32_t cap_offset;
	uint64_t size; uint64_t offset;
};
#define VFIO_REGION_INFO_FLAG_READ (1 << 0)
#define VFIO_REGION_INFO_FLAG_WRITE (1 << 1)
#define VFIO_REGION_INFO_FLAG_MMAP (1 << 2)
enum {
	VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_BAR1_REGION_INDEX, VFIO_PCI_BAR2_REGION_INDEX,
	VFIO_PCI_BAR3_REGION_INDEX, VFIO_PCI_BAR4_REGION_INDEX, VFIO_PCI_BAR5_REGION_INDEX,
	VFIO_PCI_ROM_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_VGA_REGION_INDEX,
	VFIO_PCI_NUM_REGIONS,
};
#define VFIO_PCI_NUM_IRQS 5
#define VFIO_PCI_INDEX_TO_OFFSET(index) ((uint64_t)(index) << 40)
struct vfio_device_bind_iommufd {
	uint32_t argsz; uint32_t flags; int32_t iommufd; uint32_t out_devid; uint64_t token_uuid_ptr;
};
#define VFIO_DEVICE_ATTACH_PASID 1
struct vfio_device_attach_iommufd_pt { uint32_t argsz; uint32_t flags; uint32_t pt_id; uint32_t pasid; };
#define VFIO_DEVICE_DETACH_PASID 1
struct vfio_device_detach_iommufd_pt { uint32_t argsz; uint32_t flags; uint32_t pasid; };

#endif
