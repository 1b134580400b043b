//! The demo device's OS driver (seed 003's "simple driver"): it enables PASID, ATS and PRI
//! in the device's configuration space, hands the device to the IOMMU core, binds the
//! processes that open it, and runs their commands through the device's registers.

use std::sync::Arc;

use vsva_iommu::{DeviceCaps, DomainSpec, IommuError, SvaHandle};
use vsva_mem::Pasid;
use vsva_mm::Process;
use vsva_pcie::config::{
    ATS_CAP_OFFSET, ATS_CTRL, EXT_CAP_ID_ATS, EXT_CAP_ID_PASID, EXT_CAP_ID_PRI, PASID_CAP,
    PASID_CAP_OFFSET, PASID_CTRL, PRI_ALLOC_REQ, PRI_CAP_OFFSET, PRI_CTRL, PRI_MAX_REQ, PasidCtrl,
    PriCtrl,
};

use crate::device::Progress;
use crate::machine::{Endpoint, Machine};
use crate::regs::{self, DeviceError, Op, Status};

/// Driver errors.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The device lacks a capability SVA needs.
    #[error("the device has no {0} capability")]
    Missing(&'static str),
    /// The IOMMU core refused.
    #[error(transparent)]
    Iommu(#[from] IommuError),
    /// The command failed on the device.
    #[error("device error: {0}")]
    Device(DeviceError),
    /// The device waits for a page the host never answered.
    #[error("the device stalled waiting for a page")]
    Stalled,
}

/// An open file of the device: a process bound to it.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    handle: SvaHandle,
}

impl Context {
    /// The PASID the device uses for this process.
    pub fn pasid(&self) -> Pasid {
        self.handle.pasid
    }
}

/// One command.
#[derive(Debug, Clone, Copy)]
pub struct Command {
    /// Operation.
    pub op: Op,
    /// Source address.
    pub src: u64,
    /// Destination address.
    pub dst: u64,
    /// Length.
    pub len: u64,
    /// Pattern seed / fill byte.
    pub pattern: u64,
    /// Issue privileged requests.
    pub privileged: bool,
}

impl Command {
    /// `op` on `len` bytes from `src` to `dst` with `pattern`, unprivileged.
    pub fn new(op: Op, src: u64, dst: u64, len: u64, pattern: u64) -> Command {
        Command {
            op,
            src,
            dst,
            len,
            pattern,
            privileged: false,
        }
    }
}

/// The driver of one demo device.
pub struct DemoDriver {
    dev: Arc<dyn Endpoint>,
    privileged: bool,
}

/// What the driver's probe does to the device's configuration space before SVA can be used:
/// finds the PASID, ATS and PRI extended capabilities, enables PASID (with Privileged Mode
/// if `privileged`), ATS with a 4 KiB smallest translation unit, and PRI with the device's
/// whole outstanding-request capacity allocated (PCIe 6.0 §10.5.2, §10.5.3, §7.8.9). Returns
/// (PASID width, PRI requests allocated). Anyone playing a driver — a VMM's or a test's —
/// enables a demo device through this.
///
/// # Errors
/// [`DriverError::Missing`] without one of the capabilities.
pub fn enable_sva_capabilities(
    dev: &dyn Endpoint,
    privileged: bool,
) -> Result<(u8, u32), DriverError> {
    let find = |id: u16| {
        let mut at = 0x100u32;
        for _ in 0..64 {
            let h = dev.config_read(at, 4);
            if h & 0xffff == id as u32 {
                return Some(at);
            }
            at = h >> 20;
            if at < 0x100 {
                return None;
            }
        }
        None
    };
    let pasid_at = find(EXT_CAP_ID_PASID).ok_or(DriverError::Missing("PASID"))?;
    let ats_at = find(EXT_CAP_ID_ATS).ok_or(DriverError::Missing("ATS"))?;
    let pri_at = find(EXT_CAP_ID_PRI).ok_or(DriverError::Missing("PRI"))?;
    debug_assert_eq!(
        (pasid_at, ats_at, pri_at),
        (
            PASID_CAP_OFFSET as u32,
            ATS_CAP_OFFSET as u32,
            PRI_CAP_OFFSET as u32
        )
    );
    let pasid_cap = dev.config_read(pasid_at + PASID_CAP as u32, 2);
    let width = ((pasid_cap >> 8) & 0x1f) as u8;
    let mut ctrl = PasidCtrl::ENABLE;
    if privileged {
        ctrl |= PasidCtrl::PRIV;
    }
    dev.config_write(pasid_at + PASID_CTRL as u32, 2, ctrl.bits() as u32);
    // ATS: enable, STU 0 (4 KiB).
    dev.config_write(ats_at + ATS_CTRL as u32, 2, 1 << 15);
    // PRI: allocate the device's whole capacity, then enable.
    let capacity = dev.config_read(pri_at + PRI_MAX_REQ as u32, 4);
    dev.config_write(pri_at + PRI_ALLOC_REQ as u32, 4, capacity);
    dev.config_write(pri_at + PRI_CTRL as u32, 2, PriCtrl::ENABLE.bits() as u32);
    Ok((width, capacity))
}

/// Programs `cmd` under `pasid` into the device's registers and rings the doorbell (the
/// command then runs as the machine runs the device).
pub fn submit_to(dev: &dyn Endpoint, pasid: Pasid, cmd: &Command) {
    dev.mmio_write(regs::PASID, pasid.raw() as u64 | regs::PASID_VALID);
    dev.mmio_write(regs::COMMAND, cmd.op as u64);
    dev.mmio_write(regs::SRC, cmd.src);
    dev.mmio_write(regs::DST, cmd.dst);
    dev.mmio_write(regs::LEN, cmd.len);
    dev.mmio_write(regs::PATTERN, cmd.pattern);
    dev.mmio_write(
        regs::FLAGS,
        if cmd.privileged {
            regs::FLAG_PRIVILEGED
        } else {
            0
        },
    );
    dev.mmio_write(regs::DOORBELL, 1);
}

impl DemoDriver {
    /// Enables PASID (and privileged mode if `privileged`), ATS and PRI (allocating the
    /// device's full capacity) and registers the device with the IOMMU core.
    ///
    /// # Errors
    /// [`DriverError::Missing`] without the capabilities; IOMMU errors.
    pub fn probe(
        machine: &dyn Machine,
        dev: Arc<dyn Endpoint>,
        privileged: bool,
    ) -> Result<DemoDriver, DriverError> {
        let (width, capacity) = enable_sva_capabilities(dev.as_ref(), privileged)?;
        machine.iommu().add_device(
            dev.rid(),
            DeviceCaps {
                pasid_bits: width,
                ats: true,
                pri: true,
            },
            capacity,
        )?;
        // Requests without PASID (the kernel's own DMA) go through an identity domain, as
        // with iommu=pt.
        machine.iommu().attach_pasid(
            dev.rid(),
            Pasid::new(0).map_err(|_| DriverError::Missing("PASID 0"))?,
            &DomainSpec::Identity,
            None,
        )?;
        Ok(DemoDriver { dev, privileged })
    }

    /// The driver of a platform device with `pasid_bits`-bit SubstreamIDs (firmware's
    /// `pasid-num-bits`), no configuration space, ATS nor PRI: registers it with the IOMMU
    /// core (at most `max_stalls` faults outstanding, the device's stall queue) and attaches
    /// its PASID 0 to an identity domain, as [`probe`](Self::probe) does. Whether it can
    /// stall the machine told the IOMMU driver when it plugged it
    /// ([`Machine::add_platform_device`]).
    ///
    /// # Errors
    /// IOMMU errors.
    pub fn probe_platform(
        machine: &dyn Machine,
        dev: Arc<dyn Endpoint>,
        pasid_bits: u8,
        max_stalls: u32,
    ) -> Result<DemoDriver, DriverError> {
        machine.iommu().add_device(
            dev.rid(),
            DeviceCaps {
                pasid_bits,
                ats: false,
                pri: false,
            },
            max_stalls,
        )?;
        machine.iommu().attach_pasid(
            dev.rid(),
            Pasid::new(0).map_err(|_| DriverError::Missing("PASID 0"))?,
            &DomainSpec::Identity,
            None,
        )?;
        Ok(DemoDriver {
            dev,
            privileged: false,
        })
    }

    /// The device.
    pub fn device(&self) -> &Arc<dyn Endpoint> {
        &self.dev
    }

    /// Binds `process` to the device (open()).
    ///
    /// # Errors
    /// The IOMMU core's refusal.
    pub fn open(
        &self,
        machine: &dyn Machine,
        process: &Arc<Process>,
    ) -> Result<Context, DriverError> {
        // With privileged mode enabled, the binding allows privileged requests too.
        Ok(Context {
            handle: machine
                .iommu()
                .sva_bind_with(self.dev.rid(), process, self.privileged)?,
        })
    }

    /// Unbinds (close()).
    ///
    /// # Errors
    /// The IOMMU core's refusal.
    pub fn close(&self, machine: &dyn Machine, ctx: Context) -> Result<(), DriverError> {
        machine.iommu().sva_unbind(ctx.handle)?;
        Ok(())
    }

    /// Runs a command for `ctx` and returns its RESULT.
    ///
    /// # Errors
    /// [`DriverError::Device`] with the device's error, [`DriverError::Stalled`].
    pub fn run(
        &self,
        machine: &dyn Machine,
        ctx: &Context,
        cmd: &Command,
    ) -> Result<u64, DriverError> {
        self.submit(ctx, cmd);
        self.wait(machine)
    }

    /// Runs a command under `pasid`, whatever it is attached to (an SVA bind made elsewhere,
    /// a nested domain a VMM set up): the kernel-internal use of the device.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub fn run_pasid(
        &self,
        machine: &dyn Machine,
        pasid: Pasid,
        cmd: &Command,
    ) -> Result<u64, DriverError> {
        self.submit_pasid(pasid, cmd);
        self.wait(machine)
    }

    /// Programs the registers and rings the doorbell (the command then runs as the platform
    /// runs the device).
    pub fn submit(&self, ctx: &Context, cmd: &Command) {
        self.submit_pasid(ctx.pasid(), cmd);
    }

    fn submit_pasid(&self, pasid: Pasid, cmd: &Command) {
        submit_to(self.dev.as_ref(), pasid, cmd);
    }

    /// Runs the device until the submitted command ends.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub fn wait(&self, machine: &dyn Machine) -> Result<u64, DriverError> {
        let d = &self.dev;
        if d.mmio_read(regs::STATUS) == Status::Busy as u64
            && machine.run_device(d.as_ref()) == Progress::Waiting
        {
            return Err(DriverError::Stalled);
        }
        match d.mmio_read(regs::STATUS) {
            s if s == Status::Done as u64 => Ok(d.mmio_read(regs::RESULT)),
            _ => Err(DriverError::Device(
                DeviceError::from_raw(d.mmio_read(regs::ERROR)).unwrap_or(DeviceError::BadCommand),
            )),
        }
    }
}
