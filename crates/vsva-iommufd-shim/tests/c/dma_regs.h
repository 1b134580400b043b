/*
 * What the two device drivers share: the DMA engine's BAR 0 register map and commands
 * (crates/vsva-demo/src/regs.rs; the shim's emulated copy engine, src/mdev.rs, reuses them),
 * the pattern and checksum the engine computes, and 64-bit register access through the
 * VFIO device file `dev` with pread/pwrite. Each program keeps its device's own ERROR codes.
 */
#ifndef VSVA_DMA_REGS_H
#define VSVA_DMA_REGS_H

#include <stdint.h>
#include <unistd.h>

#include "check.h"
#include "uapi.h"

enum {
	REG_COMMAND = 0x00, REG_SRC = 0x08, REG_DST = 0x10, REG_LEN = 0x18, REG_PATTERN = 0x20,
	REG_FLAGS = 0x28, REG_PASID = 0x30, REG_DOORBELL = 0x38, REG_STATUS = 0x40,
	REG_RESULT = 0x48, REG_ERROR = 0x50,
};
enum { OP_WRITE_PATTERN = 1, OP_READ_CHECKSUM = 2, OP_COPY = 3, OP_FILL = 4, OP_COMPARE = 5 };
enum { STATUS_IDLE = 0, STATUS_BUSY = 1, STATUS_DONE = 2, STATUS_ERROR = 3 };

/* The device file the register helpers reach, and its BAR 0 and configuration regions. */
static int dev;
static const uint64_t bar0 = VFIO_PCI_INDEX_TO_OFFSET(VFIO_PCI_BAR0_REGION_INDEX);
static const uint64_t cfg = VFIO_PCI_INDEX_TO_OFFSET(VFIO_PCI_CONFIG_REGION_INDEX);

static void reg_write(uint64_t reg, uint64_t value)
{
	if (pwrite(dev, &value, 8, bar0 + reg) != 8)
		fail("pwrite of a register", "short or failed");
}

static uint64_t reg_read(uint64_t reg)
{
	uint64_t value;
	if (pread(dev, &value, 8, bar0 + reg) != 8)
		fail("pread of a register", "short or failed");
	return value;
}

/* vsva-demo's pattern_word / pattern_byte: what WRITE_PATTERN writes. */
static uint64_t pattern_word(uint64_t seed, uint64_t w)
{
	uint64_t rot = (seed << 32) | (seed >> 32);
	return ((w + rot) * 0x9e3779b97f4a7c15ull) ^ w;
}

static uint8_t pattern_byte(uint64_t seed, uint64_t i)
{
	return (uint8_t)(pattern_word(seed, i / 8) >> (8 * (i % 8)));
}

/* READ_CHECKSUM: FNV-1a, 64 bit. */
static uint64_t checksum(const uint8_t *data, uint64_t len)
{
	uint64_t state = 0xcbf29ce484222325ull;
	for (uint64_t i = 0; i < len; i++) {
		state ^= data[i];
		state *= 0x100000001b3ull;
	}
	return state;
}

#endif
