//! The 4 KiB PCIe configuration space of an endpoint with the PASID, ATS and Page Request
//! (PRI) extended capabilities (PCIe Base 6.0).
//!
//! Layout, byte-exact:
//!
//! | offset | size | what | spec |
//! |---|---|---|---|
//! | `0x000` | 2 | Vendor ID (RO) | §7.5.1.1.1 |
//! | `0x002` | 2 | Device ID (RO) | §7.5.1.1.2 |
//! | `0x004..0x100` | | rest of the type 0 header: a stub, reads 0, writes ignored | §7.5.1 |
//! | `0x100` | 8 | PASID Extended Capability, ID `0x001B`, version 1, next `0x108` | §7.8.8 |
//! | `0x108` | 8 | ATS Extended Capability, ID `0x000F`, version 1, next `0x110` | §10.5.1 |
//! | `0x110` | 16 | Page Request Extended Capability, ID `0x0013`, version 1, next `0` | §10.5.2 |
//! | `0x120..0x1000` | | unimplemented: reads 0, writes ignored | |
//!
//! Register offsets and bits match Linux `include/uapi/linux/pci_regs.h`
//! (`PCI_PASID_CAP`/`PCI_PASID_CTRL`, `PCI_ATS_CAP`/`PCI_ATS_CTRL`, `PCI_PRI_CTRL`/`STATUS`/
//! `MAX_REQ`/`ALLOC_REQ`).
//!
//! # Accesses
//! [`ConfigSpace::read`] and [`ConfigSpace::write`] take 1-, 2- and 4-byte accesses at any
//! offset, as a set of byte lanes: an access that straddles a dword is split into the two dwords'
//! byte lanes (a real Configuration Request cannot straddle, an emulator's caller might). Any
//! other size reads 0 and is ignored on write; bytes at or beyond 4 KiB read 0 and are ignored.
//! Writes to RO and reserved (RsvdP/RsvdZ) bits are ignored.
//!
//! # Undefined-behaviour choices
//! * ATS Smallest Translation Unit and PRI Outstanding Page Request Allocation stay writable
//!   (RW) while the capability is enabled, and read back what was written, but the value the
//!   device uses ([`ConfigSpace::ats_stu`], [`ConfigSpace::pri_allocation`]) is latched when
//!   Enable goes from 0 to 1 (also when Enable and the value are written together).
//! * An allocation larger than the Outstanding Page Request Capacity is clamped to the capacity.
//! * PRI Reset written while Enable is Set and stays Set does nothing (§10.5.2.2: "no action").

use bitfield_struct::bitfield;
use bitflags::bitflags;

/// Size of a PCIe function's configuration space (`PCI_CFG_SPACE_EXP_SIZE`).
pub const CONFIG_SPACE_SIZE: u32 = 4096;
/// Where the extended capability list starts (PCIe Base 6.0 §7.6.3).
pub const EXT_CAP_START: u16 = 0x100;

/// Offset of the Vendor ID register (`PCI_VENDOR_ID`).
pub const VENDOR_ID: u16 = 0x00;
/// Offset of the Device ID register (`PCI_DEVICE_ID`).
pub const DEVICE_ID: u16 = 0x02;

/// Extended Capability ID of ATS (`PCI_EXT_CAP_ID_ATS`, §10.5.1.1).
pub const EXT_CAP_ID_ATS: u16 = 0x000F;
/// Extended Capability ID of the Page Request Interface (`PCI_EXT_CAP_ID_PRI`, §10.5.2.1).
pub const EXT_CAP_ID_PRI: u16 = 0x0013;
/// Extended Capability ID of PASID (`PCI_EXT_CAP_ID_PASID`, §7.8.8.1).
pub const EXT_CAP_ID_PASID: u16 = 0x001B;

/// Where this device places its PASID capability.
pub const PASID_CAP_OFFSET: u16 = 0x100;
/// Where this device places its ATS capability.
pub const ATS_CAP_OFFSET: u16 = 0x108;
/// Where this device places its Page Request capability.
pub const PRI_CAP_OFFSET: u16 = 0x110;

/// PASID Capability register, relative to the capability (`PCI_PASID_CAP`, §7.8.8.2).
pub const PASID_CAP: u16 = 0x04;
/// PASID Control register, relative to the capability (`PCI_PASID_CTRL`, §7.8.8.3).
pub const PASID_CTRL: u16 = 0x06;
/// ATS Capability register, relative to the capability (`PCI_ATS_CAP`, §10.5.1.2).
pub const ATS_CAP: u16 = 0x04;
/// ATS Control register, relative to the capability (`PCI_ATS_CTRL`, §10.5.1.3).
pub const ATS_CTRL: u16 = 0x06;
/// Page Request Control register (`PCI_PRI_CTRL`, §10.5.2.2).
pub const PRI_CTRL: u16 = 0x04;
/// Page Request Status register (`PCI_PRI_STATUS`, §10.5.2.3).
pub const PRI_STATUS: u16 = 0x06;
/// Outstanding Page Request Capacity (`PCI_PRI_MAX_REQ`, §10.5.2.4).
pub const PRI_MAX_REQ: u16 = 0x08;
/// Outstanding Page Request Allocation (`PCI_PRI_ALLOC_REQ`, §10.5.2.5).
pub const PRI_ALLOC_REQ: u16 = 0x0C;

/// The largest Max PASID Width (§7.8.8.2: values above 20 are reserved).
pub const MAX_PASID_WIDTH: u8 = 20;

/// Why [`ConfigOptions`] cannot describe a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Max PASID Width must be 1..=20 (§7.8.8.2).
    #[error("Max PASID Width {0} is not in 1..=20")]
    PasidWidth(u8),
    /// The Invalidate Queue Depth must be 1..=32 (§10.5.1.2: 32 is encoded as 0).
    #[error("ATS Invalidate Queue Depth {0} is not in 1..=32")]
    QueueDepth(u8),
    /// A Page Request Interface needs room for at least one outstanding request.
    #[error("Outstanding Page Request Capacity must be at least 1")]
    PriCapacity,
}

/// Extended Capability Header (PCIe Base 6.0 §7.6.3, Figure 7-131).
#[bitfield(u32)]
#[derive(PartialEq, Eq)]
pub struct ExtCapHeader {
    /// PCI Express Extended Capability ID.
    pub id: u16,
    /// Capability Version.
    #[bits(4)]
    pub version: u8,
    /// Next Capability Offset (0 ends the list).
    #[bits(12)]
    pub next: u16,
}

/// PASID Capability register (§7.8.8.2), all RO.
#[bitfield(u16)]
#[derive(PartialEq, Eq)]
pub struct PasidCap {
    #[bits(1)]
    __: u8,
    /// Execute Permission Supported (`PCI_PASID_CAP_EXEC`).
    pub exec: bool,
    /// Privileged Mode Supported (`PCI_PASID_CAP_PRIV`).
    pub privileged: bool,
    #[bits(5)]
    __: u8,
    /// Max PASID Width, in bits (`0x1f00`).
    #[bits(5)]
    pub max_width: u8,
    #[bits(3)]
    __: u8,
}

bitflags! {
    /// PASID Control register (§7.8.8.3).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct PasidCtrl: u16 {
        /// PASID Enable (RW, `PCI_PASID_CTRL_ENABLE`).
        const ENABLE = 0x0001;
        /// Execute Permission Enable (RW if supported, else RO 0; `PCI_PASID_CTRL_EXEC`).
        const EXEC = 0x0002;
        /// Privileged Mode Enable (RW if supported, else RO 0; `PCI_PASID_CTRL_PRIV`).
        const PRIV = 0x0004;
    }
}

/// ATS Capability register (§10.5.1.2), all RO.
#[bitfield(u16)]
#[derive(PartialEq, Eq)]
pub struct AtsCap {
    /// Invalidate Queue Depth; 0 means 32 (`PCI_ATS_CAP_QDEP`).
    #[bits(5)]
    pub invalidate_queue_depth: u8,
    /// Page Aligned Request: untranslated addresses in Translation Requests are 4 KiB aligned.
    pub page_aligned: bool,
    /// Global Invalidate Supported.
    pub global_invalidate: bool,
    /// Relaxed Ordering Supported (not modelled: 0).
    pub relaxed_ordering: bool,
    #[bits(8)]
    __: u8,
}

/// ATS Control register (§10.5.1.3).
#[bitfield(u16)]
#[derive(PartialEq, Eq)]
pub struct AtsCtrl {
    /// Smallest Translation Unit: translations are at least `4096 << stu` bytes (RW).
    #[bits(5)]
    pub stu: u8,
    #[bits(10)]
    __: u16,
    /// Enable (RW): the Function may cache translations.
    pub enable: bool,
}

impl AtsCtrl {
    /// The bits software can write.
    pub const WRITABLE: u16 = 0x801F;
}

bitflags! {
    /// Page Request Control register (§10.5.2.2).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct PriCtrl: u16 {
        /// Enable (RW, `PCI_PRI_CTRL_ENABLE`).
        const ENABLE = 0x0001;
        /// Reset (RW, reads 0; `PCI_PRI_CTRL_RESET`).
        const RESET = 0x0002;
    }
}

bitflags! {
    /// Page Request Status register (§10.5.2.3).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct PriStatus: u16 {
        /// Response Failure (RW1C, `PCI_PRI_STATUS_RF`): a PRG Response Failure was received.
        const RESPONSE_FAILURE = 0x0001;
        /// Unexpected Page Request Group Index (RW1C, `PCI_PRI_STATUS_UPRGI`).
        const UPRGI = 0x0002;
        /// Stopped (RO, default 1, `PCI_PRI_STATUS_STOPPED`): no requests outstanding and none
        /// will be issued. Meaningful only while Enable is Clear.
        const STOPPED = 0x0100;
        /// PRG Response PASID Required (RO, `PCI_PRI_STATUS_PASID`).
        const PRG_RESPONSE_PASID_REQUIRED = 0x8000;
    }
}

impl PriStatus {
    /// The RW1C bits.
    pub const RW1C: PriStatus = PriStatus::RESPONSE_FAILURE.union(PriStatus::UPRGI);
}

/// What the device advertises; the RO fields of the three capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigOptions {
    /// PCI Vendor ID.
    pub vendor: u16,
    /// PCI Device ID.
    pub device: u16,
    /// Max PASID Width, 1..=20 bits (§7.8.8.2).
    pub pasid_width: u8,
    /// Execute Permission Supported (§7.8.8.2).
    pub exec_supported: bool,
    /// Privileged Mode Supported (§7.8.8.2).
    pub priv_supported: bool,
    /// Invalidate Queue Depth, 1..=32 (§10.5.1.2).
    pub ats_invalidate_queue_depth: u8,
    /// Page Aligned Request (§10.5.1.2).
    pub ats_page_aligned: bool,
    /// Global Invalidate Supported (§10.5.1.2).
    pub ats_global_invalidate: bool,
    /// Outstanding Page Request Capacity (§10.5.2.4), at least 1.
    pub pri_capacity: u32,
    /// PRG Response PASID Required (§10.5.2.3).
    pub pri_prg_response_pasid_required: bool,
}

impl ConfigOptions {
    /// A device with every optional feature: 20-bit PASIDs with exec and privileged modes,
    /// a 32-deep invalidate queue, page-aligned requests, global invalidation, 32 page request
    /// credits and PASID-tagged PRG responses.
    pub const fn new(vendor: u16, device: u16) -> ConfigOptions {
        ConfigOptions {
            vendor,
            device,
            pasid_width: MAX_PASID_WIDTH,
            exec_supported: true,
            priv_supported: true,
            ats_invalidate_queue_depth: 32,
            ats_page_aligned: true,
            ats_global_invalidate: true,
            pri_capacity: 32,
            pri_prg_response_pasid_required: true,
        }
    }
}

/// An endpoint's configuration space: header stub plus PASID, ATS and PRI capabilities.
///
/// Registers are kept as typed fields; [`read`](Self::read) and [`write`](Self::write) build and
/// decode the byte image.
#[derive(Debug, Clone)]
pub struct ConfigSpace {
    vendor: u16,
    device: u16,
    pasid_cap: PasidCap,
    pasid_ctrl: PasidCtrl,
    ats_cap: AtsCap,
    ats_ctrl: AtsCtrl,
    ats_stu_latched: u8,
    pri_enable: bool,
    pri_status: PriStatus,
    pri_capacity: u32,
    pri_alloc: u32,
    pri_alloc_latched: u32,
    pri_epoch: u64,
}

impl ConfigSpace {
    /// A configuration space in its reset state: everything disabled, PRI Stopped.
    ///
    /// # Errors
    /// [`ConfigError`] if an option is out of the range the spec allows.
    pub fn new(opts: ConfigOptions) -> Result<ConfigSpace, ConfigError> {
        if !(1..=MAX_PASID_WIDTH).contains(&opts.pasid_width) {
            return Err(ConfigError::PasidWidth(opts.pasid_width));
        }
        if !(1..=32).contains(&opts.ats_invalidate_queue_depth) {
            return Err(ConfigError::QueueDepth(opts.ats_invalidate_queue_depth));
        }
        if opts.pri_capacity == 0 {
            return Err(ConfigError::PriCapacity);
        }
        let mut pri_status = PriStatus::STOPPED;
        pri_status.set(
            PriStatus::PRG_RESPONSE_PASID_REQUIRED,
            opts.pri_prg_response_pasid_required,
        );
        Ok(ConfigSpace {
            vendor: opts.vendor,
            device: opts.device,
            pasid_cap: PasidCap::new()
                .with_exec(opts.exec_supported)
                .with_privileged(opts.priv_supported)
                .with_max_width(opts.pasid_width),
            pasid_ctrl: PasidCtrl::empty(),
            ats_cap: AtsCap::new()
                // 32 is encoded as 0; 1..=31 as themselves.
                .with_invalidate_queue_depth(opts.ats_invalidate_queue_depth & 0x1F)
                .with_page_aligned(opts.ats_page_aligned)
                .with_global_invalidate(opts.ats_global_invalidate),
            ats_ctrl: AtsCtrl::new(),
            ats_stu_latched: 0,
            pri_enable: false,
            pri_status,
            pri_capacity: opts.pri_capacity,
            pri_alloc: 0,
            pri_alloc_latched: 0,
            pri_epoch: 0,
        })
    }

    /// Reads `size` (1, 2 or 4) bytes at `offset`, little-endian.
    ///
    /// Other sizes read 0; bytes at or beyond 4 KiB read 0.
    pub fn read(&self, offset: u32, size: u32) -> u32 {
        if !matches!(size, 1 | 2 | 4) {
            return 0;
        }
        let mut value = 0;
        for i in 0..size {
            let Some(off) = offset.checked_add(i) else {
                break;
            };
            if off >= CONFIG_SPACE_SIZE {
                break;
            }
            let byte = (self.read_dword(off & !3) >> (8 * (off & 3))) & 0xFF;
            value |= byte << (8 * i);
        }
        value
    }

    /// Writes the low `size` (1, 2 or 4) bytes of `value` at `offset`, little-endian, with each
    /// register's RO/RW/RW1C rules.
    ///
    /// Other sizes are ignored; bytes at or beyond 4 KiB are ignored.
    pub fn write(&mut self, offset: u32, size: u32, value: u32) {
        if !matches!(size, 1 | 2 | 4) {
            return;
        }
        let mut i = 0;
        while i < size {
            let Some(start) = offset.checked_add(i) else {
                return;
            };
            if start >= CONFIG_SPACE_SIZE {
                return;
            }
            let dword = start & !3;
            let (mut data, mut lanes) = (0u32, 0u32);
            while i < size {
                let Some(off) = offset.checked_add(i) else {
                    break;
                };
                if off & !3 != dword {
                    break;
                }
                let shift = 8 * (off & 3);
                data |= ((value >> (8 * i)) & 0xFF) << shift;
                lanes |= 0xFF << shift;
                i += 1;
            }
            self.write_dword(dword, data, lanes);
        }
    }

    /// The dword at the 4-byte aligned `offset` (< 4 KiB).
    fn read_dword(&self, offset: u32) -> u32 {
        let pasid = u32::from(PASID_CAP_OFFSET);
        let ats = u32::from(ATS_CAP_OFFSET);
        let pri = u32::from(PRI_CAP_OFFSET);
        match offset {
            0x000 => u32::from(self.vendor) | u32::from(self.device) << 16,
            o if o == pasid => header(EXT_CAP_ID_PASID, ATS_CAP_OFFSET),
            o if o == pasid + 4 => {
                u32::from(self.pasid_cap.into_bits()) | u32::from(self.pasid_ctrl.bits()) << 16
            }
            o if o == ats => header(EXT_CAP_ID_ATS, PRI_CAP_OFFSET),
            o if o == ats + 4 => {
                u32::from(self.ats_cap.into_bits()) | u32::from(self.ats_ctrl.into_bits()) << 16
            }
            o if o == pri => header(EXT_CAP_ID_PRI, 0),
            o if o == pri + 4 => {
                // Reset always reads 0.
                let ctrl = if self.pri_enable {
                    PriCtrl::ENABLE
                } else {
                    PriCtrl::empty()
                };
                u32::from(ctrl.bits()) | u32::from(self.pri_status.bits()) << 16
            }
            o if o == pri + 8 => self.pri_capacity,
            o if o == pri + 12 => self.pri_alloc,
            _ => 0,
        }
    }

    /// Writes the byte lanes `lanes` (0xFF per written byte) of `data` to the dword at the
    /// aligned `offset`.
    fn write_dword(&mut self, offset: u32, data: u32, lanes: u32) {
        let pasid = u32::from(PASID_CAP_OFFSET);
        let ats = u32::from(ATS_CAP_OFFSET);
        let pri = u32::from(PRI_CAP_OFFSET);
        // The upper half of each capability's second dword is its control/status register.
        let hi_data = (data >> 16) as u16;
        let hi_lanes = (lanes >> 16) as u16;
        match offset {
            o if o == pasid + 4 && hi_lanes != 0 => {
                let mut writable = PasidCtrl::ENABLE;
                writable.set(PasidCtrl::EXEC, self.pasid_cap.exec());
                writable.set(PasidCtrl::PRIV, self.pasid_cap.privileged());
                let raw = merge(self.pasid_ctrl.bits(), hi_data, hi_lanes & writable.bits());
                self.pasid_ctrl = PasidCtrl::from_bits_truncate(raw);
            }
            o if o == ats + 4 && hi_lanes != 0 => {
                let raw = merge(
                    self.ats_ctrl.into_bits(),
                    hi_data,
                    hi_lanes & AtsCtrl::WRITABLE,
                );
                let new = AtsCtrl::from_bits(raw);
                if new.enable() && !self.ats_ctrl.enable() {
                    self.ats_stu_latched = new.stu();
                }
                self.ats_ctrl = new;
            }
            o if o == pri + 4 => {
                // Status first: RW1C bits written with 1 in an enabled lane clear.
                let clear = PriStatus::from_bits_truncate(hi_data & hi_lanes) & PriStatus::RW1C;
                self.pri_status.remove(clear);
                self.write_pri_ctrl(data as u16, lanes as u16);
            }
            o if o == pri + 12 => self.pri_alloc = merge(self.pri_alloc, data, lanes),
            _ => {}
        }
    }

    /// The Page Request Control register write rules (§10.5.2.2).
    fn write_pri_ctrl(&mut self, data: u16, lanes: u16) {
        if lanes == 0 {
            return;
        }
        let old = if self.pri_enable {
            PriCtrl::ENABLE.bits()
        } else {
            0
        };
        let new = PriCtrl::from_bits_truncate(merge(old, data, lanes));
        let enable = new.contains(PriCtrl::ENABLE);
        if new.contains(PriCtrl::RESET) && lanes & PriCtrl::RESET.bits() != 0 && !enable {
            // Enable is clear or being cleared: clear the credit counter and the pending
            // request state. With nothing pending, the interface is stopped.
            self.pri_epoch += 1;
            self.pri_status.insert(PriStatus::STOPPED);
        }
        if enable && !self.pri_enable {
            // Not-Enabled -> Enabled clears Stopped, Response Failure and UPRGI.
            self.pri_status
                .remove(PriStatus::STOPPED | PriStatus::RESPONSE_FAILURE | PriStatus::UPRGI);
            self.pri_alloc_latched = self.pri_alloc.min(self.pri_capacity);
            self.pri_epoch += 1;
        }
        self.pri_enable = enable;
    }

    /// Finds the extended capability `id` by walking the list from `0x100`, as system software
    /// does; `None` if absent. The walk is bounded, so a looping list cannot hang it.
    pub fn find_ext_capability(&self, id: u16) -> Option<u16> {
        let mut offset = u32::from(EXT_CAP_START);
        for _ in 0..(CONFIG_SPACE_SIZE - u32::from(EXT_CAP_START)) / 4 {
            let hdr = ExtCapHeader::from_bits(self.read(offset, 4));
            if hdr.id() == id && hdr.version() != 0 {
                return u16::try_from(offset).ok();
            }
            let next = u32::from(hdr.next()) & !3;
            if next < u32::from(EXT_CAP_START) {
                return None;
            }
            offset = next;
        }
        None
    }

    /// Vendor ID.
    pub fn vendor(&self) -> u16 {
        self.vendor
    }

    /// Device ID.
    pub fn device(&self) -> u16 {
        self.device
    }

    /// PASID Enable (§7.8.8.3): the Function may send PASID TLP prefixes.
    pub fn pasid_enabled(&self) -> bool {
        self.pasid_ctrl.contains(PasidCtrl::ENABLE)
    }

    /// Execute Permission Enable, and PASID Enable (the Execute-Requested bit travels in the
    /// PASID prefix, so it is usable only with PASIDs enabled).
    pub fn pasid_exec_enabled(&self) -> bool {
        self.pasid_ctrl
            .contains(PasidCtrl::ENABLE | PasidCtrl::EXEC)
    }

    /// Privileged Mode Enable, and PASID Enable (as for [`pasid_exec_enabled`](Self::pasid_exec_enabled)).
    pub fn pasid_priv_enabled(&self) -> bool {
        self.pasid_ctrl
            .contains(PasidCtrl::ENABLE | PasidCtrl::PRIV)
    }

    /// Max PASID Width in bits (§7.8.8.2).
    pub fn pasid_width(&self) -> u8 {
        self.pasid_cap.max_width()
    }

    /// ATS Enable (§10.5.1.3): the Function may cache translations. When it goes to 0 the device
    /// model must stop using (and should clear) its ATC.
    pub fn ats_enabled(&self) -> bool {
        self.ats_ctrl.enable()
    }

    /// The Smallest Translation Unit in bytes, `4096 << STU` (§10.5.1.3): the value latched at
    /// enable while ATS is enabled, the register's value otherwise.
    pub fn ats_stu(&self) -> u64 {
        let stu = if self.ats_ctrl.enable() {
            self.ats_stu_latched
        } else {
            self.ats_ctrl.stu()
        };
        4096u64 << stu
    }

    /// Invalidate Queue Depth as a count, 1..=32 (§10.5.1.2).
    pub fn ats_invalidate_queue_depth(&self) -> u32 {
        match self.ats_cap.invalidate_queue_depth() {
            0 => 32,
            n => u32::from(n),
        }
    }

    /// Global Invalidate Supported (§10.5.1.2). Without it the ATC ignores the Global
    /// Invalidate bit of Invalidate Requests.
    pub fn ats_global_invalidate_supported(&self) -> bool {
        self.ats_cap.global_invalidate()
    }

    /// Page Aligned Request (§10.5.1.2).
    pub fn ats_page_aligned(&self) -> bool {
        self.ats_cap.page_aligned()
    }

    /// PRI Enable (§10.5.2.2): the Function may issue Page Requests.
    pub fn pri_enabled(&self) -> bool {
        self.pri_enable
    }

    /// Outstanding Page Request Capacity (§10.5.2.4).
    pub fn pri_capacity(&self) -> u32 {
        self.pri_capacity
    }

    /// The Outstanding Page Request Allocation the device honours (§10.5.2.5): the register's
    /// value latched when PRI was last enabled, clamped to the capacity.
    pub fn pri_allocation(&self) -> u32 {
        self.pri_alloc_latched
    }

    /// The Page Request Status register.
    pub fn pri_status(&self) -> PriStatus {
        self.pri_status
    }

    /// Stopped (§10.5.2.3).
    pub fn pri_stopped(&self) -> bool {
        self.pri_status.contains(PriStatus::STOPPED)
    }

    /// Response Failure (§10.5.2.3).
    pub fn pri_response_failure(&self) -> bool {
        self.pri_status.contains(PriStatus::RESPONSE_FAILURE)
    }

    /// Unexpected Page Request Group Index (§10.5.2.3).
    pub fn pri_uprgi(&self) -> bool {
        self.pri_status.contains(PriStatus::UPRGI)
    }

    /// PRG Response PASID Required (§10.5.2.3).
    pub fn pri_prg_response_pasid_required(&self) -> bool {
        self.pri_status
            .contains(PriStatus::PRG_RESPONSE_PASID_REQUIRED)
    }

    /// Device side: a PRG Response Failure was received.
    pub fn pri_set_response_failure(&mut self) {
        self.pri_status.insert(PriStatus::RESPONSE_FAILURE);
    }

    /// Device side: a PRG Response named an index with no outstanding request.
    pub fn pri_set_uprgi(&mut self) {
        self.pri_status.insert(PriStatus::UPRGI);
    }

    /// Device side: the interface has (or has not) stopped with nothing outstanding.
    pub fn pri_set_stopped(&mut self, stopped: bool) {
        self.pri_status.set(PriStatus::STOPPED, stopped);
    }

    /// A counter that changes each time software resets the Page Request Interface (Reset
    /// written with Enable clear) or enables it (Enable 0 -> 1). Either discards the device's
    /// pending page request state; [`crate::pri::Pri`] watches this to do so.
    pub fn pri_epoch(&self) -> u64 {
        self.pri_epoch
    }
}

/// An Extended Capability Header dword for a version-1 capability.
fn header(id: u16, next: u16) -> u32 {
    ExtCapHeader::new()
        .with_id(id)
        .with_version(1)
        .with_next(next)
        .into_bits()
}

/// `old` with the bits in `mask` taken from `new`.
fn merge<T>(old: T, new: T, mask: T) -> T
where
    T: std::ops::BitAnd<Output = T>
        + std::ops::BitOr<Output = T>
        + std::ops::Not<Output = T>
        + Copy,
{
    (old & !mask) | (new & mask)
}

#[cfg(test)]
mod tests;
