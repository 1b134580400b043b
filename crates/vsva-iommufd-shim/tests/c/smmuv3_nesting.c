/*
 * SMMUv3 nesting through /dev/iommu, as a VMM with an accelerated vSMMU drives it
 * (run under the shim with VSVA_SHIM_IOMMU=smmuv3): the raw IDRs of IOMMU_GET_HW_INFO, a
 * nesting parent, an ARM_SMMUV3 vIOMMU, a vDEVICE giving the device its vSID, nested HWPTs
 * from guest STE words, raw-command invalidation through the vIOMMU, and a vEVENTQ.
 *
 * Then the guest's side, end to end with the demo device's DMA (dma_regs.h): the program
 * lays out, in its guest RAM (GPA 0 of the IOAS), a linear CD table and a VMSAv8-64 stage-1
 * table as a Linux guest's arm-smmu-v3 driver would; allocates the nested HWPT of a
 * translating guest STE with a fault queue (vsva's IOMMU_HWPT_FAULT_ID_VALID extension);
 * makes the device DMA under SSID 1 to guest VAs; changes a PTE and invalidates through the
 * vIOMMU (TLBI_NH_VA, ATC_INV); serves a PRI page request from the fault queue and denies
 * another; and, run as `smmuv3_nesting events`, reads from the vEVENTQ the C_BAD_CD of an
 * invalidated CD and the C_BAD_SUBSTREAMID of an SSID past S1CDMax. Every errno is Linux's
 * (iommufd and arm-smmu-v3-iommufd.c); every table bit is Arm IHI 0070's as Linux's
 * arm-smmu-v3.h names it, or the Arm ARM's VMSAv8-64 descriptor format.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "dma_regs.h"
#include "uapi.h"

/* STE word 0 and 1 (IHI 0070 5.2; Linux STRTAB_STE_0_*, STRTAB_STE_1_*). */
#define STE_V 1ull
#define STE_CFG(c) ((uint64_t)(c) << 1)
#define CFG_ABORT 0
#define CFG_BYPASS 4
#define CFG_S1_TRANS 5
#define CFG_S2 6
#define STE0_S1CTXPTR_MASK 0x000fffffffffffc0ull /* GENMASK(51, 6) */
#define STE0_S1CDMAX(n) ((uint64_t)(n) << 59)
#define STE1_S1DSS_BYPASS 1ull
#define STE1_S1CIR(c) ((uint64_t)(c) << 2)
#define STE1_S1COR(c) ((uint64_t)(c) << 4)
#define STE1_S1CSH(s) ((uint64_t)(s) << 6)
#define STE1_S1STALLD (1ull << 27)
#define STE1_EATS_TRANS (1ull << 28)
#define STE1_EATS_S1CHK (2ull << 28)
#define STE1_SHCFG_INCOMING (1ull << 44)
#define S1C_CACHE_WBRA 1
#define SH_ISH 3
/* CD word 0 (IHI 0070 5.4; Linux CTXDESC_CD_0_*). */
#define CD0_T0SZ(n) ((uint64_t)(n))
#define CD0_IRGN0(c) ((uint64_t)(c) << 8)
#define CD0_ORGN0(c) ((uint64_t)(c) << 10)
#define CD0_SH0(s) ((uint64_t)(s) << 12)
#define CD0_EPD1 (1ull << 30)
#define CD0_V (1ull << 31)
#define CD0_IPS(p) ((uint64_t)(p) << 32)
#define CD0_AA64 (1ull << 41)
#define CD0_R (1ull << 45)
#define CD0_A (1ull << 46)
#define CD0_ASET (1ull << 47)
#define CD0_ASID(a) ((uint64_t)(a) << 48)
#define CD1_TTB0_MASK 0x000ffffffffffff0ull /* GENMASK(51, 4) */
/* io-pgtable-arm's MAIR: NC, WBRWA (index 1, ARM_LPAE_MAIR_ATTR_IDX_CACHE), device, INC. */
#define MAIR_LINUX 0xf404ff44ull
/* VMSAv8-64 descriptors, 4 KiB granule: table / page, AttrIndx, AP[1] (EL0), SH, AF, nG. */
#define PTE_TABLE 3ull
#define PTE_PAGE 3ull
#define PTE_ATTRINDX(i) ((uint64_t)(i) << 2)
#define PTE_AP_UNPRIV (1ull << 6)
#define PTE_SH(s) ((uint64_t)(s) << 8)
#define PTE_AF (1ull << 10)
#define PTE_NG (1ull << 11)
#define PTE_ADDR_MASK 0x0000fffffffff000ull /* bits 47:12 */
/* CMDQ opcodes and fields (IHI 0070 4.1-4.7; Linux CMDQ_*). */
#define CMD_CFGI_CD 0x05ull
#define CMD_CFGI_CD_ALL 0x06ull
#define CMD_TLBI_NH_ALL 0x10ull
#define CMD_TLBI_NH_ASID 0x11ull
#define CMD_TLBI_NH_VA 0x12ull
#define CMD_ATC_INV 0x40ull
#define CMD_SYNC 0x46ull
#define CMD_SSV (1ull << 11)
#define CMD_SSID(s) ((uint64_t)(s) << 12)
#define CMD_SID(sid) ((uint64_t)(sid) << 32)
#define CMD_ASID(a) ((uint64_t)(a) << 48)
#define CMD_LEAF 1ull
#define ATC_INV_SIZE_ALL 52
/* Event records (IHI 0070 7.3; Linux EVTQ_*). */
#define EVT_ID_C_BAD_SUBSTREAMID 0x08
#define EVT_ID_C_BAD_CD 0x0a
#define EVT_SSV (1ull << 11)
/* IDR0.STALL_MODEL and IDR5.OAS (Linux IDR0_STALL_MODEL, IDR5_OAS). */
#define IDR0_STALL_MODEL(r) (((r) >> 24) & 3)
#define IDR5_OAS(r) ((r) & 7)
/* The demo device: PASID_VALID in its PASID register, its ERROR codes. */
#define PASID_VALID (1ull << 31)
enum { ERROR_TRANSLATION_REFUSED = 2, ERROR_PAGE_REQUEST_INVALID = 3 };

/* Guest RAM: 64 KiB at GPA 0 of the IOAS, and where the guest keeps what. */
#define RAM_LEN 0x10000ull
#define GPA_CDTAB 0x1000ull /* 16 CDs, 1 KiB: aligned to its size (5.2 S1ContextPtr) */
#define GPA_L0 0x2000ull
#define GPA_L1 0x3000ull
#define GPA_L2 0x4000ull
#define GPA_L3 0x5000ull
#define GPA_A 0x8000ull  /* GVA_A's page at first */
#define GPA_A2 0x9000ull /* GVA_A's page after the guest remaps it */
#define GPA_B 0xa000ull
#define GPA_C 0xb000ull  /* GVA_C's page, mapped when the device asks for it */
#define GVA_A 0x40000000ull
#define GVA_B (GVA_A + 0x1000)
#define GVA_C (GVA_A + 0x2000)
#define GVA_D (GVA_A + 0x3000) /* never mapped: its page request is answered INVALID */
#define S1CDMAX 4 /* SSIDs 0..15 */
#define SSID 1
#define ASID 7
#define VSID 0x20

static int fd;
static uint32_t dev_id, vi;
static uint8_t *ram;

static int hwpt_alloc(uint32_t pt_id, uint32_t flags, uint32_t type, const void *data,
		      uint32_t len, uint32_t fault_id, uint32_t *out)
{
	struct iommu_hwpt_alloc cmd = {
		.size = sizeof(cmd), .flags = flags, .dev_id = dev_id, .pt_id = pt_id,
		.data_type = type, .data_len = len, .data_uptr = (uintptr_t)data,
		.fault_id = fault_id,
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

static int attach(uint32_t pt_id)
{
	struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at), .pt_id = pt_id };
	return ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at);
}

/* IOMMU_HWPT_INVALIDATE on the vIOMMU with `n` raw commands; `*done` gets entry_num. */
static int vinvalidate(struct iommu_viommu_arm_smmuv3_invalidate *cmds, uint32_t n,
		       uint32_t *done)
{
	struct iommu_hwpt_invalidate inv = {
		.size = sizeof(inv), .hwpt_id = vi, .data_uptr = (uintptr_t)cmds,
		.data_type = IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3,
		.entry_len = sizeof(cmds[0]), .entry_num = n,
	};
	int rc = ioctl(fd, IOMMU_HWPT_INVALIDATE, &inv);
	*done = inv.entry_num;
	return rc;
}

/* The guest's commands, as Linux's arm_smmu_cmdq_build_cmd() encodes them. */
static struct iommu_viommu_arm_smmuv3_invalidate tlbi_nh_va(uint64_t va)
{
	/* TG = 0: one address, no range (4.4.1); LEAF: only the last level changed. */
	return (struct iommu_viommu_arm_smmuv3_invalidate){
		.cmd = { CMD_TLBI_NH_VA | CMD_ASID(ASID), (va & PTE_ADDR_MASK) | CMD_LEAF },
	};
}

static struct iommu_viommu_arm_smmuv3_invalidate atc_inv(uint64_t va, unsigned size)
{
	/* arm_smmu_atc_inv_to_cmd(): SSV and the SSID, 2^size pages from va. */
	return (struct iommu_viommu_arm_smmuv3_invalidate){
		.cmd = { CMD_ATC_INV | CMD_SSV | CMD_SSID(SSID) | CMD_SID(VSID),
			 (va & PTE_ADDR_MASK) | size },
	};
}

/* The stage-1 leaf of `gva` in the guest's 4-level table (VMSAv8-64, 4 KiB granule). */
static uint64_t *s1_leaf(uint64_t gva)
{
	return (uint64_t *)(ram + GPA_L3) + ((gva >> 12) & 511);
}

/* io-pgtable-arm's arm_lpae_prot_to_pte() for a stage-1 read/write cached user page. */
static uint64_t s1_page(uint64_t gpa)
{
	return (gpa & PTE_ADDR_MASK) | PTE_PAGE | PTE_ATTRINDX(1) | PTE_AP_UNPRIV |
	       PTE_SH(SH_ISH) | PTE_AF | PTE_NG;
}

/* The CD of `ssid` in the guest's linear CD table: eight 64-bit words each (5.4). */
static uint64_t *cd_of(unsigned ssid)
{
	return (uint64_t *)(ram + GPA_CDTAB) + 8 * ssid;
}

/*
 * Step 1: the guest's tables in guest RAM. A 4-level stage-1 table (T0SZ 16: 48-bit VAs)
 * mapping GVA_A -> GPA_A and GVA_B -> GPA_B (GVA_C left unmapped), and the CD of SSID 1
 * as Linux's arm_smmu_make_s1_cd() writes it, in a linear table of 2^S1CDMAX CDs.
 */
static void build_guest_tables(const struct iommu_hw_info_arm_smmuv3 *idrs)
{
	uint64_t *l0 = (uint64_t *)(ram + GPA_L0), *l1 = (uint64_t *)(ram + GPA_L1);
	uint64_t *l2 = (uint64_t *)(ram + GPA_L2);
	l0[(GVA_A >> 39) & 511] = GPA_L1 | PTE_TABLE;
	l1[(GVA_A >> 30) & 511] = GPA_L2 | PTE_TABLE;
	l2[(GVA_A >> 21) & 511] = GPA_L3 | PTE_TABLE;
	*s1_leaf(GVA_A) = s1_page(GPA_A);
	*s1_leaf(GVA_B) = s1_page(GPA_B);
	/* IPS: the OAS the vSMMU's IDR5 reports, at most 48 bits with 4 KiB pages. */
	uint64_t ips = IDR5_OAS(idrs->idr[5]) < 5 ? IDR5_OAS(idrs->idr[5]) : 5;
	uint64_t *cd = cd_of(SSID);
	cd[1] = GPA_L0 & CD1_TTB0_MASK;
	cd[3] = MAIR_LINUX;
	cd[0] = CD0_T0SZ(16) | CD0_IRGN0(1) | CD0_ORGN0(1) | CD0_SH0(SH_ISH) | CD0_EPD1 | CD0_V |
		CD0_IPS(ips) | CD0_AA64 | CD0_R | CD0_A | CD0_ASET | CD0_ASID(ASID);
	pass("the guest's CD table and stage-1 table are in guest RAM");
}

/* Rings the demo device's doorbell for `op` under `ssid` and polls STATUS (bounded). */
static uint64_t dma_ssid(uint64_t op, uint32_t ssid, uint64_t src, uint64_t dst, uint64_t len,
			 uint64_t pattern)
{
	reg_write(REG_COMMAND, op);
	reg_write(REG_SRC, src);
	reg_write(REG_DST, dst);
	reg_write(REG_LEN, len);
	reg_write(REG_PATTERN, pattern);
	reg_write(REG_FLAGS, 0);
	reg_write(REG_PASID, ssid | PASID_VALID);
	reg_write(REG_DOORBELL, 1);
	uint64_t status = STATUS_BUSY;
	for (int i = 0; i < 1000 && status == STATUS_BUSY; i++)
		status = reg_read(REG_STATUS);
	return status;
}

static uint64_t dma(uint64_t op, uint64_t src, uint64_t dst, uint64_t len, uint64_t pattern)
{
	return dma_ssid(op, SSID, src, dst, len, pattern);
}

static int filled(uint64_t gpa, uint64_t len, uint8_t byte)
{
	int same = 1;
	for (uint64_t i = 0; i < len; i++)
		same &= ram[gpa + i] == byte;
	return same;
}

/*
 * Step 2: the nested HWPT of the guest's translating STE (Config S1, the CD table's GPA,
 * S1CDMax, S1DSS bypass for traffic without SSID, the stage-1 walk attributes and
 * S1STALLD that Linux's arm_smmu_make_cdtable_ste() sets, EATS full ATS for the ATS-capable
 * device), reporting to the fault queue `fault_id`.
 */
static uint32_t alloc_translating_hwpt(const struct iommu_hw_info_arm_smmuv3 *idrs,
				       uint32_t fault_id)
{
	struct iommu_hwpt_arm_smmuv3 ste = { .ste = {
		STE_V | STE_CFG(CFG_S1_TRANS) | (GPA_CDTAB & STE0_S1CTXPTR_MASK) |
			STE0_S1CDMAX(S1CDMAX),
		STE1_S1DSS_BYPASS | STE1_S1CIR(S1C_CACHE_WBRA) | STE1_S1COR(S1C_CACHE_WBRA) |
			STE1_S1CSH(SH_ISH) | STE1_EATS_TRANS |
			/* A master that cannot stall on an SMMU that can (Linux FEAT_STALLS). */
			(IDR0_STALL_MODEL(idrs->idr[0]) == 0 ? STE1_S1STALLD : 0),
	} };
	uint32_t bad, hwpt;
	CHECK_ERR("a translating STE with an unknown fault queue",
		  hwpt_alloc(vi, IOMMU_HWPT_FAULT_ID_VALID, IOMMU_HWPT_DATA_ARM_SMMUV3, &ste,
			     sizeof(ste), 4242, &bad), ENOENT);
	CHECK_OK("a translating STE (Config S1, EATS) with IOMMU_HWPT_FAULT_ID_VALID",
		 hwpt_alloc(vi, IOMMU_HWPT_FAULT_ID_VALID, IOMMU_HWPT_DATA_ARM_SMMUV3, &ste,
			    sizeof(ste), fault_id, &hwpt));
	CHECK_ERR("the fault queue is in use (its HWPT and descriptor)", destroy(fault_id), EBUSY);
	/* arm_smmu_attach_prepare_vmaster(): a translating vSTE needs the vSID first. */
	CHECK_ERR("attaching it before the device has a vDEVICE", attach(hwpt), ENOENT);
	return hwpt;
}

/* Step 3: DMA under SSID 1 through the guest's stage 1 (and the nest parent's stage 2). */
static void dma_through_stage1(void)
{
	const uint64_t seed = 0x5eed0000c0ffeeull, off = 0x100, n = 0x1200;
	CHECK("WRITE_PATTERN to GVA_A+0x100, across into GVA_B: STATUS done",
	      dma(OP_WRITE_PATTERN, 0, GVA_A + off, n, seed) == STATUS_DONE);
	CHECK("RESULT is the length", reg_read(REG_RESULT) == n);
	int same = 1;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t va = GVA_A + off + i;
		uint64_t gpa = (va < GVA_B ? GPA_A : GPA_B) + (va & 0xfff);
		same &= ram[gpa] == pattern_byte(seed, i);
	}
	CHECK("the bytes landed in GPA_A+0x100.. and GPA_B.. (the pages stage 1 names)", same);
	CHECK("the bytes around them are untouched",
	      ram[GPA_A + off - 1] == 0 && ram[GPA_B + (off + n - 0x1000)] == 0 &&
	      filled(GPA_A2, 0x1000, 0));
	CHECK("READ_CHECKSUM of GVA_B through stage 1: STATUS done",
	      dma(OP_READ_CHECKSUM, GVA_B, 0, 0x1000, 0) == STATUS_DONE);
	CHECK("RESULT is the checksum of GPA_B", reg_read(REG_RESULT) == checksum(ram + GPA_B, 0x1000));
}

/*
 * Step 4: the guest moves GVA_A to GPA_A2. TLBI_NH_VA alone leaves the device's ATC with
 * the old translation (the guest must also send ATC_INV: IHI 0070 3.9.1, PCIe ATS); once
 * ATC_INV with its vSID and SSID is through, the next DMA uses the new page.
 */
static void remap_and_invalidate(void)
{
	uint32_t done;
	*s1_leaf(GVA_A) = s1_page(GPA_A2);
	struct iommu_viommu_arm_smmuv3_invalidate cmds[2] = { tlbi_nh_va(GVA_A), atc_inv(GVA_A, 0) };
	CHECK_OK("TLBI_NH_VA (ASID, GVA_A) through the vIOMMU", vinvalidate(cmds, 1, &done));
	CHECK("one command done", done == 1);
	CHECK("FILL of GVA_A with only the TLB invalidated: STATUS done",
	      dma(OP_FILL, 0, GVA_A, 0x1000, 0x11) == STATUS_DONE);
	CHECK("... the device's ATC still had the old page: GPA_A filled, GPA_A2 not",
	      filled(GPA_A, 0x1000, 0x11) && filled(GPA_A2, 0x1000, 0));
	CHECK_OK("ATC_INV (vSID, SSID 1, GVA_A) through the vIOMMU", vinvalidate(cmds + 1, 1, &done));
	CHECK("one command done", done == 1);
	CHECK("FILL of GVA_A again: STATUS done", dma(OP_FILL, 0, GVA_A, 0x1000, 0x22) == STATUS_DONE);
	CHECK("the fill landed in GPA_A2, the new page; GPA_A kept the old bytes",
	      filled(GPA_A2, 0x1000, 0x22) && filled(GPA_A, 0x1000, 0x11));
	/* arm_vsmmu_convert_user_cmd(): CMD_SYNC is not the guest's to send (the ioctl syncs). */
	struct iommu_viommu_arm_smmuv3_invalidate sync = { .cmd = { CMD_SYNC, 0 } };
	CHECK_ERR("a CMD_SYNC through the vIOMMU", vinvalidate(&sync, 1, &done), EIO);
	CHECK("nothing done", done == 0);
}

/*
 * Step 5: a DMA to the unmapped GVA_C. The device's ATS translation request finds no
 * mapping, so it sends a PRI page request; the host relays it to the nested HWPT's fault
 * queue. The guest maps the page, invalidates, and answers SUCCESS; the device retries.
 */
static void serve_page_request(int ffd)
{
	reg_write(REG_COMMAND, OP_FILL);
	reg_write(REG_DST, GVA_C + 0x10);
	reg_write(REG_LEN, 0x100);
	reg_write(REG_PATTERN, 0x33);
	reg_write(REG_PASID, SSID | PASID_VALID);
	reg_write(REG_DOORBELL, 1);
	CHECK("FILL of the unmapped GVA_C: the device waits for the page (STATUS busy)",
	      reg_read(REG_STATUS) == STATUS_BUSY);
	struct pollfd pfd = { .fd = ffd, .events = POLLIN };
	CHECK("the fault queue polls readable", poll(&pfd, 1, 1000) == 1 && (pfd.revents & POLLIN));
	struct iommu_hwpt_pgfault rec;
	memset(&rec, 0xee, sizeof(rec));
	CHECK("read of one struct iommu_hwpt_pgfault", read(ffd, &rec, sizeof(rec)) == sizeof(rec));
	printf("# pgfault flags %#x dev_id %u pasid %u grpid %u perm %#x addr %#llx length %u cookie %u\n",
	       rec.flags, rec.dev_id, rec.pasid, rec.grpid, rec.perm, (unsigned long long)rec.addr,
	       rec.length, rec.cookie);
	CHECK("it names the device, PASID 1 (valid, last page) and GVA_C's page",
	      rec.dev_id == dev_id && rec.pasid == SSID && rec.addr == GVA_C &&
	      rec.flags == (IOMMU_PGFAULT_FLAGS_PASID_VALID | IOMMU_PGFAULT_FLAGS_LAST_PAGE));
	CHECK("a write request, length 0 (iommufd_compose_fault_message)",
	      (rec.perm & IOMMU_PGFAULT_PERM_WRITE) && rec.length == 0 && rec.__reserved == 0);
	struct iommu_hwpt_pgfault more;
	CHECK("nothing more queued", read(ffd, &more, sizeof(more)) == 0);

	/* The guest's fault handler: map GVA_C, invalidate what may hold it, answer. */
	uint32_t done;
	*s1_leaf(GVA_C) = s1_page(GPA_C);
	struct iommu_viommu_arm_smmuv3_invalidate cmds[2] = { tlbi_nh_va(GVA_C), atc_inv(GVA_C, 0) };
	CHECK_OK("TLBI_NH_VA and ATC_INV of GVA_C through the vIOMMU", vinvalidate(cmds, 2, &done));
	CHECK("both done", done == 2);
	struct iommu_hwpt_page_response resp = { .cookie = rec.cookie + 100,
						 .code = IOMMUFD_PAGE_RESP_SUCCESS };
	CHECK_ERR("a response with a cookie never issued (iommufd_fault_fops_write)",
		  write(ffd, &resp, sizeof(resp)), EINVAL);
	CHECK("the device still waits", reg_read(REG_STATUS) == STATUS_BUSY);
	resp.cookie = rec.cookie;
	resp.code = 2;
	CHECK_ERR("a response code other than SUCCESS or INVALID", write(ffd, &resp, sizeof(resp)),
		  EINVAL);
	resp.code = IOMMUFD_PAGE_RESP_SUCCESS;
	CHECK("write of the SUCCESS response", write(ffd, &resp, sizeof(resp)) == sizeof(resp));
	CHECK("the device's retry succeeded: STATUS done", reg_read(REG_STATUS) == STATUS_DONE);
	CHECK("the fill landed in GPA_C+0x10, the page the guest mapped",
	      filled(GPA_C + 0x10, 0x100, 0x33) && ram[GPA_C + 0xf] == 0 && ram[GPA_C + 0x110] == 0);
	CHECK_ERR("the same cookie again: it was answered", write(ffd, &resp, sizeof(resp)), EINVAL);
}

/* One vEVENTQ entry: the header, then the SMMUv3 event record (struct iommu_vevent_arm_smmuv3). */
struct vevent {
	struct iommufd_vevent_header hdr;
	struct iommu_vevent_arm_smmuv3 evt;
};

/*
 * Waits for the vEVENTQ to poll readable, then reads one entry numbered `seq` whose record
 * has event ID `id`, the vSID in its StreamID field and SubstreamID `ssid`, with SSV set
 * when the record has that qualifier (`ssv`) (IHI 0070 7.3: ID 7:0, SSV 11, SubstreamID
 * 31:12, StreamID 63:32).
 */
static void expect_vevent(int qfd, unsigned id, const char *name, uint32_t ssid, int ssv,
			  uint32_t seq)
{
	char what[160];
	struct pollfd pfd = { .fd = qfd, .events = POLLIN };
	CHECK("the vEVENTQ polls readable", poll(&pfd, 1, 1000) == 1 && (pfd.revents & POLLIN));
	struct vevent rec;
	memset(&rec, 0xee, sizeof(rec));
	/* iommufd_veventq_fops_read(): an entry is never split; too small a buffer reads 0. */
	CHECK("a read too small for the entry returns 0", read(qfd, &rec, sizeof(rec) - 1) == 0);
	ssize_t got = read(qfd, &rec, sizeof(rec));
	printf("# vevent: flags %#x seq %u evt %#llx %#llx %#llx %#llx\n", rec.hdr.flags,
	       rec.hdr.sequence, (unsigned long long)rec.evt.evt[0],
	       (unsigned long long)rec.evt.evt[1], (unsigned long long)rec.evt.evt[2],
	       (unsigned long long)rec.evt.evt[3]);
	CHECK("read of one header and one 32-byte record", got == (ssize_t)sizeof(rec));
	snprintf(what, sizeof(what), "the header: no lost events, sequence %u", seq);
	CHECK(what, rec.hdr.flags == 0 && rec.hdr.sequence == seq);
	snprintf(what, sizeof(what), "the record is %s", name);
	CHECK(what, (rec.evt.evt[0] & 0xff) == id);
	CHECK("... with the vSID in its StreamID field", rec.evt.evt[0] >> 32 == VSID);
	snprintf(what, sizeof(what), "... and SubstreamID %u%s", ssid, ssv ? ", SSV set" : "");
	CHECK(what, !!(rec.evt.evt[0] & EVT_SSV) == ssv && ((rec.evt.evt[0] >> 12) & 0xfffff) == ssid);
	CHECK("nothing more queued", read(qfd, &rec, sizeof(rec)) == 0);
}

/*
 * Then a page request the guest cannot serve (GVA_D is in no VMA of its process): answered
 * IOMMUFD_PAGE_RESP_INVALID, which the host sends as a PRI response of Invalid Request
 * (CMD_PRI_RESP DENY); the device's command fails.
 */
static void deny_page_request(int ffd)
{
	reg_write(REG_COMMAND, OP_FILL);
	reg_write(REG_DST, GVA_D);
	reg_write(REG_LEN, 0x100);
	reg_write(REG_PATTERN, 0x66);
	reg_write(REG_PASID, SSID | PASID_VALID);
	reg_write(REG_DOORBELL, 1);
	CHECK("FILL of GVA_D: the device waits for the page", reg_read(REG_STATUS) == STATUS_BUSY);
	struct iommu_hwpt_pgfault rec;
	memset(&rec, 0xee, sizeof(rec));
	CHECK("read of its fault record", read(ffd, &rec, sizeof(rec)) == sizeof(rec));
	CHECK("it names PASID 1 and GVA_D's page", rec.pasid == SSID && rec.addr == GVA_D);
	struct iommu_hwpt_page_response resp = { .cookie = rec.cookie,
						 .code = IOMMUFD_PAGE_RESP_INVALID };
	CHECK("write of the INVALID response", write(ffd, &resp, sizeof(resp)) == sizeof(resp));
	CHECK("the device's command failed: STATUS error", reg_read(REG_STATUS) == STATUS_ERROR);
	CHECK("... ERROR page request invalid", reg_read(REG_ERROR) == ERROR_PAGE_REQUEST_INVALID);
}

/*
 * Step 6: the guest invalidates its CD of SSID 1 (V = 0), then CFGI_CD, TLBI_NH_ASID and
 * ATC_INV of the whole SSID (arm_smmu_clear_cd() and the PASID's detach). A DMA under SSID 1
 * then meets an invalid CD: C_BAD_CD (IHI 0070 5.4.2 CdIllegal, 7.3.11), a stage-1
 * configuration event of a master with a vDEVICE, goes to the vEVENTQ with the vSID
 * (arm_vmaster_report_event()); the SMMU answers the ATS Translation Request UR (3.9.1).
 * The ATS translation faults before it recorded no event.
 */
static void bad_cd_event(int qfd)
{
	uint8_t buf[64];
	CHECK("the vEVENTQ is still empty: PRI and ATS raised no event", read(qfd, buf, sizeof(buf)) == 0);
	cd_of(SSID)[0] &= ~CD0_V;
	uint32_t done;
	struct iommu_viommu_arm_smmuv3_invalidate cmds[3] = {
		{ .cmd = { CMD_CFGI_CD | CMD_SSID(SSID) | CMD_SID(VSID), CMD_LEAF } },
		{ .cmd = { CMD_TLBI_NH_ASID | CMD_ASID(ASID), 0 } },
		atc_inv(0, ATC_INV_SIZE_ALL),
	};
	CHECK_OK("CFGI_CD, TLBI_NH_ASID, ATC_INV of SSID 1 through the vIOMMU",
		 vinvalidate(cmds, 3, &done));
	CHECK("all three done", done == 3);
	CHECK("FILL of GVA_A under the invalid CD: STATUS error",
	      dma(OP_FILL, 0, GVA_A, 0x1000, 0x44) == STATUS_ERROR);
	uint64_t error = reg_read(REG_ERROR);
	printf("# ERROR after the DMA under the invalid CD: %llu\n", (unsigned long long)error);
	CHECK("... ERROR translation refused (the SMMU answered UR)", error == ERROR_TRANSLATION_REFUSED);
	CHECK("... and nothing was written", filled(GPA_A2, 0x1000, 0x22));
	expect_vevent(qfd, EVT_ID_C_BAD_CD, "C_BAD_CD", SSID, 1, 0);
}

/*
 * Then a DMA under SSID 16, past the 2^S1CDMax CDs of the guest's STE: C_BAD_SUBSTREAMID
 * (IHI 0070 7.3.9; its record has no SSV: the SubstreamID is always there), also the
 * guest's event, numbered next.
 */
static void bad_substream_event(int qfd)
{
	CHECK("FILL under SSID 16, beyond S1CDMax: STATUS error",
	      dma_ssid(OP_FILL, 1u << S1CDMAX, 0, GVA_A, 0x1000, 0x55) == STATUS_ERROR);
	CHECK("... ERROR translation refused", reg_read(REG_ERROR) == ERROR_TRANSLATION_REFUSED);
	expect_vevent(qfd, EVT_ID_C_BAD_SUBSTREAMID, "C_BAD_SUBSTREAMID", 1u << S1CDMAX, 0, 1);
}

/*
 * With the argument "events" the program also reads the guest's events from the vEVENTQ
 * (step 6); without it, it does everything else.
 */
int main(int argc, char **argv)
{
	int events = argc > 1 && strcmp(argv[1], "events") == 0;
	fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	CHECK("open /dev/iommu", fd >= 0);
	dev = open("/dev/vfio/devices/vfio0", O_RDWR | O_CLOEXEC);
	CHECK("open /dev/vfio/devices/vfio0", dev >= 0);
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = fd };
	CHECK_OK("VFIO_DEVICE_BIND_IOMMUFD", ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &bind));
	dev_id = bind.out_devid;

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
	ram = mmap(NULL, RAM_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK("guest RAM", ram != MAP_FAILED);
	struct iommu_ioas_map map = {
		.size = sizeof(map), .ioas_id = ioas.out_ioas_id, .user_va = (uintptr_t)ram,
		.length = RAM_LEN, .iova = 0,
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
	};
	CHECK_OK("IOMMU_IOAS_MAP of guest RAM at GPA 0", ioctl(fd, IOMMU_IOAS_MAP, &map));
	uint32_t s2;
	CHECK_OK("a nesting parent", hwpt_alloc(ioas.out_ioas_id, IOMMU_HWPT_ALLOC_NEST_PARENT, 0,
						NULL, 0, 0, &s2));

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
	vi = viommu.out_viommu_id;

	/* The guest's STEs Linux's arm_smmu_validate_vste() refuses or takes as they are. */
	struct iommu_hwpt_arm_smmuv3 ste = { .ste = { STE_V | STE_CFG(CFG_S2), 0 } };
	uint32_t bad;
	CHECK_ERR("a guest STE with stage-2 Config",
		  hwpt_alloc(vi, 0, IOMMU_HWPT_DATA_ARM_SMMUV3, &ste, sizeof(ste), 0, &bad), EIO);
	ste.ste[0] = STE_V | STE_CFG(CFG_S1_TRANS) | (GPA_CDTAB & STE0_S1CTXPTR_MASK);
	ste.ste[1] = STE1_EATS_S1CHK;
	CHECK_ERR("a guest STE with split-stage ATS (EATS 0b10)",
		  hwpt_alloc(vi, 0, IOMMU_HWPT_DATA_ARM_SMMUV3, &ste, sizeof(ste), 0, &bad), EIO);
	ste.ste[1] = STE1_SHCFG_INCOMING;
	CHECK_ERR("a guest STE setting SHCFG (not STRTAB_STE_1_NESTING_ALLOWED)",
		  hwpt_alloc(vi, 0, IOMMU_HWPT_DATA_ARM_SMMUV3, &ste, sizeof(ste), 0, &bad), EIO);
	ste.ste[0] = STE_V | STE_CFG(CFG_BYPASS);
	ste.ste[1] = 0;
	CHECK_ERR("NEST_PARENT on a vIOMMU",
		  hwpt_alloc(vi, IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_DATA_ARM_SMMUV3, &ste,
			     sizeof(ste), 0, &bad), EOPNOTSUPP);
	CHECK_ERR("no STE", hwpt_alloc(vi, 0, IOMMU_HWPT_DATA_NONE, NULL, 0, 0, &bad), EOPNOTSUPP);
	uint32_t bypass, abort_hwpt;
	CHECK_OK("a bypass STE", hwpt_alloc(vi, 0, IOMMU_HWPT_DATA_ARM_SMMUV3, &ste, sizeof(ste), 0,
					    &bypass));
	ste.ste[0] = STE_V | STE_CFG(CFG_ABORT);
	CHECK_OK("an abort STE", hwpt_alloc(vi, 0, IOMMU_HWPT_DATA_ARM_SMMUV3, &ste, sizeof(ste), 0,
					    &abort_hwpt));

	/* Steps 1 and 2: the guest's tables, a fault queue, the translating STE's HWPT. */
	build_guest_tables(&idrs);
	struct iommu_fault_alloc fa = { .size = sizeof(fa) };
	CHECK_OK("IOMMU_FAULT_QUEUE_ALLOC", ioctl(fd, IOMMU_FAULT_QUEUE_ALLOC, &fa));
	int ffd = (int)fa.out_fault_fd;
	uint32_t s1 = alloc_translating_hwpt(&idrs, fa.out_fault_id);

	struct iommu_vdevice_alloc vdev = {
		.size = sizeof(vdev), .viommu_id = vi, .dev_id = dev_id, .virt_id = VSID,
	};
	CHECK_OK("IOMMU_VDEVICE_ALLOC vSID 0x20", ioctl(fd, IOMMU_VDEVICE_ALLOC, &vdev));
	uint32_t vdev_id = vdev.out_vdevice_id;
	vdev.virt_id = 0x21;
	CHECK_ERR("a second vDEVICE for the device", ioctl(fd, IOMMU_VDEVICE_ALLOC, &vdev), EEXIST);

	/* The guest boots with its STE in bypass (QEMU's vSMMU before the guest driver). */
	CHECK_OK("attach the bypass STE", attach(bypass));
	CHECK_ERR("the nested HWPT is in use", destroy(bypass), EBUSY);

	struct iommu_viommu_arm_smmuv3_invalidate cmds[4] = {
		{ .cmd = { CMD_TLBI_NH_ALL, 0 } },
		{ .cmd = { CMD_CFGI_CD_ALL | CMD_SID(VSID), 0 } },
		{ .cmd = { CMD_CFGI_CD_ALL | CMD_SID(0x99), 0 } },
		{ .cmd = { CMD_TLBI_NH_ALL, 0 } },
	};
	uint32_t done;
	CHECK_ERR("a command naming a vSID with no vDEVICE", vinvalidate(cmds, 4, &done), EIO);
	CHECK("the two before it were done", done == 2);
	CHECK_OK("IOMMU_HWPT_INVALIDATE through the vIOMMU", vinvalidate(cmds, 2, &done));
	CHECK("both done", done == 2);

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

	/* The guest driver installs its STE: the VMM replaces the bypass HWPT (steps 2-6). */
	CHECK_OK("replace the bypass STE with the translating one", attach(s1));
	CHECK_ERR("the translating HWPT is in use", destroy(s1), EBUSY);
	dma_through_stage1();
	remap_and_invalidate();
	serve_page_request(ffd);
	deny_page_request(ffd);
	if (events) {
		bad_cd_event(qfd);
		bad_substream_event(qfd);
	}

	/* Step 7: teardown in Linux's order; what is still held says EBUSY. */
	CHECK_ERR("the open queue is in use", destroy(veq.out_veventq_id), EBUSY);
	CHECK_ERR("the vIOMMU is in use", destroy(vi), EBUSY);
	CHECK_ERR("the nesting parent is in use", destroy(s2), EBUSY);
	struct vfio_device_detach_iommufd_pt detach = { .argsz = sizeof(detach) };
	CHECK_OK("detach", ioctl(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &detach));
	CHECK_OK("destroy the translating HWPT", destroy(s1));
	CHECK_OK("destroy the bypass HWPT", destroy(bypass));
	CHECK_OK("destroy the abort HWPT", destroy(abort_hwpt));
	CHECK_ERR("the fault queue's open descriptor holds it", destroy(fa.out_fault_id), EBUSY);
	CHECK_OK("close the fault queue", close(ffd));
	CHECK_OK("destroy the fault queue", destroy(fa.out_fault_id));
	CHECK_OK("destroy the vDEVICE", destroy(vdev_id));
	CHECK_OK("close the vEVENTQ", close(qfd));
	CHECK_OK("destroy the vEVENTQ", destroy(veq.out_veventq_id));
	CHECK_OK("destroy the vIOMMU", destroy(vi));
	CHECK_OK("destroy the nesting parent", destroy(s2));
	CHECK_OK("destroy the IOAS", destroy(ioas.out_ioas_id));
	CHECK_OK("close the device", close(dev));
	CHECK_OK("close /dev/iommu", close(fd));
	all_passed();
	return 0;
}
