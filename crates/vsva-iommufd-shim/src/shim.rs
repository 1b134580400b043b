//! What each interposed call does with a shim file, in safe Rust: the machine behind
//! `/dev/iommu`, opening, ioctl argument marshalling, fault-file reads and writes, closing.
//! The `extern "C"` entry points ([`crate::interpose`]) only convert arguments and errors.

use std::ffi::CStr;
use std::sync::{Arc, OnceLock};

use libc::c_int;
use vsva_demo::DemoDevice;
use vsva_demo::enable_sva_capabilities;
use vsva_iommu::DeviceCaps;
use vsva_iommufd::abi::ioctl::{IOMMU_FAULT_QUEUE_ALLOC, IOMMU_VEVENTQ_ALLOC};
use vsva_iommufd::abi::{Command, Errno};
use vsva_iommufd::{DeviceInfo, FaultFile, Iommufd, VeventqFile, VfioDevice};
use vsva_iommufd::{PGFAULT_SIZE, RESPONSE_SIZE};
use vsva_mem::{PhysMem, PhysMemory, SegmentedMemory};

use crate::config::{ShimConfig, parse_rid};
use crate::eventq;
use crate::files::{self, Kind, OpenFile, VfioEntry};
use crate::host::{IommuModel, ShimHost};
use crate::mapfile::MemfdResolver;
use crate::mdev::CopyEngine;
use crate::program::{Locked, OwnMemory, ProgramMemory};
use crate::regions::{self, Dir, PciFunction, UserBuf};
use crate::sys;

/// The modelled machine: the host platform (memory, VT-d or SMMUv3, IOMMU core, demo
/// endpoints), the program's memory, one VFIO device per endpoint, then one per emulated
/// device.
pub struct Machine {
    /// The host.
    pub platform: ShimHost,
    /// Its physical memory: RAM, then the program's pinned memory and mapped files.
    pub mem: Arc<SegmentedMemory>,
    /// The program as the contexts' address space.
    pub program: Arc<ProgramMemory>,
    /// `IOMMU_IOAS_MAP_FILE`'s descriptors.
    pub resolver: Arc<MemfdResolver>,
    /// `/dev/vfio/devices/vfio<i>` is `devices[i]`: the endpoints', then the emulated
    /// devices'.
    pub devices: Vec<Arc<VfioDevice>>,
    /// The demo endpoint behind each of the first `endpoints.len()` devices.
    pub endpoints: Vec<Arc<DemoDevice>>,
    /// The copy engine behind each of the devices after them.
    pub emulated: Vec<Arc<CopyEngine>>,
}

/// What is behind a VFIO device's regions.
#[derive(Clone, Copy)]
pub enum Function<'a> {
    /// A demo endpoint behind the IOMMU.
    Endpoint(&'a Arc<DemoDevice>),
    /// An emulated copy engine behind an access.
    Emulated(&'a Arc<CopyEngine>),
}

impl Function<'_> {
    /// Its BAR 0 and configuration space.
    pub fn pci(&self) -> &dyn PciFunction {
        match self {
            Function::Endpoint(endpoint) => &***endpoint,
            Function::Emulated(engine) => &***engine,
        }
    }
}

impl Machine {
    /// Builds the machine `cfg` describes, with the IOMMU `model` names.
    ///
    /// # Errors
    /// A message if memory cannot be mapped or a device cannot be added.
    pub fn build(cfg: &ShimConfig, model: IommuModel) -> Result<Machine, String> {
        cfg.check()?;
        let ram: Arc<dyn PhysMem> =
            Arc::new(PhysMemory::new(cfg.ram_bytes()).map_err(|e| e.to_string())?);
        let mem = Arc::new(SegmentedMemory::new(ram, cfg.window_bytes()));
        let phys: Arc<dyn PhysMem> = mem.clone();
        let platform = ShimHost::build(model, phys.clone(), cfg)?;
        let mut devices = Vec::new();
        let mut endpoints = Vec::new();
        for ep in &cfg.endpoints {
            let rid = parse_rid(&ep.rid)?;
            let caps = DeviceCaps {
                pasid_bits: ep.pasid_bits,
                ats: ep.ats,
                pri: ep.pri,
            };
            let endpoint = platform.add_device_with_width(
                rid,
                ep.pri_capacity,
                ep.atc_entries,
                ep.pasid_bits.max(1),
            );
            // The host's IOMMU driver enables PASID, ATS and PRI of a capable endpoint (Linux
            // `intel_iommu_probe_device()` / `arm_smmu_probe_device()` and the IOPF enable of
            // an attach); the program
            // sees them enabled and cannot change them ([`crate::regions`]).
            if ep.pasid_bits > 0 && ep.ats && ep.pri {
                enable_sva_capabilities(&*endpoint, false)
                    .map_err(|e| format!("{}: {e}", ep.rid))?;
            }
            endpoints.push(endpoint);
            platform
                .iommu()
                .add_device(rid, caps, ep.pri_capacity)
                .map_err(|e| format!("{}: {e}", ep.rid))?;
            devices.push(VfioDevice::new(DeviceInfo::new(rid, caps)));
        }
        let mut emulated = Vec::new();
        for _ in &cfg.emulated {
            // An mdev has no requester ID and no IOMMU: it reaches memory only through its
            // access, whose pins and copies land in the machine's physical memory.
            let (engine, vdev) = CopyEngine::new_vfio(phys.clone());
            emulated.push(engine);
            devices.push(vdev);
        }
        let locked = Arc::new(Locked::default());
        Ok(Machine {
            program: Arc::new(ProgramMemory::new(mem.clone(), locked.clone())),
            resolver: Arc::new(MemfdResolver::new(mem.clone(), locked)),
            platform,
            mem,
            devices,
            endpoints,
            emulated,
        })
    }

    /// What is behind `/dev/vfio/devices/vfio<n>`.
    pub fn function(&self, n: usize) -> Option<Function<'_>> {
        match self.endpoints.get(n) {
            Some(endpoint) => Some(Function::Endpoint(endpoint)),
            None => self
                .emulated
                .get(n - self.endpoints.len())
                .map(Function::Emulated),
        }
    }

    /// Runs every endpoint with a command in flight until it completes, fails or waits for
    /// a page, servicing the page requests it raises: the host's page-request handler drains
    /// the IOMMU's page request queue into the IOMMU core, which queues the faults of a HWPT
    /// with a fault queue on iommufd's fault file (`run_device`). An idle
    /// endpoint returns at once.
    pub fn run_endpoints(&self) {
        for endpoint in &self.endpoints {
            self.run_endpoint(endpoint);
        }
    }

    /// Runs one endpoint as [`run_endpoints`](Self::run_endpoints) does.
    pub fn run_endpoint(&self, endpoint: &DemoDevice) {
        let progress = self.platform.run_device(endpoint);
        // The IOMMU's interrupts the run raised after its last page request: the events its
        // failed or finished DMA recorded (a guest's C_BAD_CD reaches its vEVENTQ here, as
        // the event-queue interrupt delivers it on Linux, `arm_vmaster_report_event()`).
        self.platform.service();
        tracing::trace!(rid = %endpoint.rid(), ?progress, "endpoint ran");
    }
}

static MACHINE: OnceLock<Result<Machine, String>> = OnceLock::new();

/// The machine, built at first use from `VSVA_SHIM_CONFIG` and `VSVA_SHIM_IOMMU`
/// ([`crate::host`]).
///
/// # Errors
/// `ENODEV` if it cannot be built (the reason is printed once on standard error).
pub fn machine() -> Result<&'static Machine, i32> {
    let built = MACHINE.get_or_init(|| {
        let built = ShimConfig::from_env().and_then(|cfg| {
            let model = IommuModel::from_env()?;
            Machine::build(&cfg, model)
        });
        if let Err(why) = &built {
            eprintln!("vsva-iommufd-shim: cannot model /dev/iommu: {why}");
        }
        built
    });
    built.as_ref().map_err(|_| libc::ENODEV)
}

/// What an `open` path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShimPath {
    /// `/dev/iommu`.
    Iommu,
    /// `/dev/vfio/devices/vfio<N>`.
    Vfio(usize),
}

/// Classifies an absolute path (relative paths and other spellings pass through).
pub fn classify(path: &[u8]) -> Option<ShimPath> {
    if path == b"/dev/iommu" {
        return Some(ShimPath::Iommu);
    }
    let digits = path.strip_prefix(b"/dev/vfio/devices/vfio")?;
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if digits.len() > 1 && digits[0] == b'0' {
        return None;
    }
    let n = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(ShimPath::Vfio(n))
}

/// `open(path, flags)` if `path` is a shim file; `None` to pass the call through.
pub fn open(path: &CStr, flags: c_int) -> Option<Result<c_int, i32>> {
    let which = classify(path.to_bytes())?;
    Some(open_shim(which, flags))
}

fn open_shim(which: ShimPath, flags: c_int) -> Result<c_int, i32> {
    // A character device exists: exclusive creation fails, a directory it is not.
    if flags & libc::O_CREAT != 0 && flags & libc::O_EXCL != 0 {
        return Err(libc::EEXIST);
    }
    if flags & libc::O_DIRECTORY != 0 {
        return Err(libc::ENOTDIR);
    }
    let m = machine()?;
    let cloexec = flags & libc::O_CLOEXEC != 0;
    let nonblock = flags & libc::O_NONBLOCK != 0;
    match which {
        ShimPath::Iommu => {
            let ictx = Arc::new(Iommufd::new(m.program.clone(), m.platform.iommu().clone()));
            ictx.set_file_resolver(Some(m.resolver.clone()));
            files::install(|_| Kind::Iommufd(ictx), cloexec, nonblock)
        }
        ShimPath::Vfio(n) => {
            let device = m.devices.get(n).ok_or(libc::ENOENT)?;
            let file = Arc::new(device.open());
            files::install(
                |_| Kind::Vfio(VfioEntry::new(file, n, flags)),
                cloexec,
                nonblock,
            )
        }
    }
}

/// The largest argument struct read (every uAPI struct is far smaller); bytes a caller
/// declares beyond it must be zero, as `copy_struct_from_user()` requires of bytes past the
/// kernel's struct, and are checked in place.
pub const ARG_CAP: usize = 4096;

/// An ioctl argument read from the program.
struct Arg {
    addr: u64,
    bytes: Vec<u8>,
    before: Vec<u8>,
    /// The declared size, when it was larger than [`ARG_CAP`] and replaced in `bytes`.
    declared: Option<[u8; 4]>,
}

impl Arg {
    /// Reads the argument at `addr`: the leading `u32` size, then that many bytes (up to
    /// [`ARG_CAP`]) — as many as are readable, so the model reports `EFAULT` exactly where
    /// Linux would, after the checks Linux makes first.
    fn read(number: u32, addr: u64) -> Result<Arg, Errno> {
        let mut head = [0u8; 4];
        let mut arg = Arg {
            addr,
            bytes: Vec::new(),
            before: Vec::new(),
            declared: None,
        };
        if sys::vm_read_prefix(addr, &mut head) < head.len() {
            return Ok(arg);
        }
        let size = u32::from_le_bytes(head) as usize;
        let want = size.clamp(head.len(), ARG_CAP);
        arg.bytes = vec![0; want];
        let got = sys::vm_read_prefix(addr, &mut arg.bytes);
        arg.bytes.truncate(got);
        if size > ARG_CAP && got == ARG_CAP && checks_tail(number) {
            check_zero_tail(addr + ARG_CAP as u64, (size - ARG_CAP) as u64)?;
            arg.declared = Some(head);
            arg.bytes[..4].copy_from_slice(&(ARG_CAP as u32).to_le_bytes());
        }
        arg.before = arg.bytes.clone();
        Ok(arg)
    }

    /// Writes back what the command changed.
    fn write_back(mut self) -> Result<(), Errno> {
        if let Some(head) = self.declared {
            self.bytes[..4].copy_from_slice(&head);
            self.before[..4].copy_from_slice(&head);
        }
        let first = self
            .bytes
            .iter()
            .zip(&self.before)
            .position(|(a, b)| a != b);
        let Some(first) = first else {
            return Ok(());
        };
        let last = self
            .bytes
            .iter()
            .zip(&self.before)
            .rposition(|(a, b)| a != b)
            .unwrap_or(first);
        let span = &self.bytes[first..=last];
        if sys::vm_write_prefix(self.addr + first as u64, span) == span.len() {
            Ok(())
        } else {
            Err(Errno::EFAULT)
        }
    }
}

/// Whether a command's struct is read with `copy_struct_from_user()` (its bytes past the
/// kernel's struct must be zero): the iommufd commands and VFIO's bind; VFIO's attach and
/// detach read only their minimum.
fn checks_tail(number: u32) -> bool {
    Command::from_ioctl(u64::from(number)).is_some_and(|command| {
        !matches!(
            command,
            Command::VfioDeviceAttachIommufdPt | Command::VfioDeviceDetachIommufdPt
        )
    })
}

/// `check_zeroed_user()` of `[addr, addr + len)`: `E2BIG` at the first non-zero byte,
/// `EFAULT` at the first unreadable one.
fn check_zero_tail(addr: u64, len: u64) -> Result<(), Errno> {
    addr.checked_add(len).ok_or(Errno::EFAULT)?;
    let mut buf = [0u8; 4096];
    let mut at = addr;
    let end = addr + len;
    while at < end {
        let n = ((end - at) as usize).min(buf.len() - (at % 4096) as usize);
        let got = sys::vm_read_prefix(at, &mut buf[..n]);
        if buf[..got].iter().any(|&b| b != 0) {
            return Err(Errno::E2BIG);
        }
        if got < n {
            return Err(Errno::EFAULT);
        }
        at += n as u64;
    }
    Ok(())
}

/// `ioctl(fd, request, arg)` on a shim file.
pub fn ioctl(file: &OpenFile, request: u64, addr: u64) -> Result<c_int, Errno> {
    // The system call's command is an `unsigned int`: the upper half of the register is
    // dropped before any rule of any command is applied.
    let number = request as u32;
    match &file.kind {
        Kind::Iommufd(ictx) => iommufd_ioctl(ictx, number, addr),
        Kind::Vfio(entry) => {
            if let Some(result) = region_ioctl(entry, number, addr) {
                return result.map(|()| 0);
            }
            let mut arg = Arg::read(number, addr)?;
            let result = entry.file.ioctl(
                u64::from(number),
                &mut arg.bytes,
                &OwnMemory,
                &iommufd_of_fd,
            );
            arg.write_back()?;
            result.map(|()| 0)
        }
        // The event queue files have no ioctl (`INIT_EVENTQ_FOPS`).
        Kind::Fault(_) | Kind::Veventq(_) => Err(Errno::ENOTTY),
    }
}

/// The vfio-pci ioctls of a device file ([`crate::regions`]); `None` for the others. Like
/// every device ioctl but bind, they are `EINVAL` until the file is bound
/// (`vfio_device_fops_unl_ioctl()`: `df->access_granted`).
fn region_ioctl(entry: &VfioEntry, number: u32, addr: u64) -> Option<Result<(), Errno>> {
    if ![
        regions::VFIO_DEVICE_GET_INFO,
        regions::VFIO_DEVICE_GET_REGION_INFO,
        regions::VFIO_DEVICE_RESET,
    ]
    .contains(&number)
    {
        return None;
    }
    if entry.file.dev_id().is_none() {
        return Some(Err(Errno::EINVAL));
    }
    Some(match number {
        regions::VFIO_DEVICE_GET_INFO => regions::get_info(&OwnMemory, addr),
        regions::VFIO_DEVICE_GET_REGION_INFO => {
            function_of(entry).and_then(|f| regions::get_region_info(f.pci(), &OwnMemory, addr))
        }
        // `vfio_pci_ioctl_reset()`: neither the demo function nor the copy engine has a
        // reset (`reset_works` is false).
        _ => Err(Errno::EINVAL),
    })
}

/// `iommufd_ctx_from_fd()`: `EBADF` for a bad descriptor, `EBADFD` for one that is not an
/// iommufd.
fn iommufd_of_fd(fd: i32) -> Result<Arc<Iommufd>, Errno> {
    sys::file_id(fd).map_err(|_| Errno::EBADF)?;
    match files::lookup_any(fd).as_deref() {
        Some(OpenFile {
            kind: Kind::Iommufd(ictx),
            ..
        }) => Ok(ictx.clone()),
        _ => Err(Errno::EBADFD),
    }
}

fn iommufd_ioctl(ictx: &Arc<Iommufd>, number: u32, addr: u64) -> Result<c_int, Errno> {
    let mut arg = Arg::read(number, addr)?;
    let result = ictx.ioctl(u64::from(number), &mut arg.bytes, &OwnMemory);
    if result.is_ok() && number == IOMMU_FAULT_QUEUE_ALLOC {
        eventq::give_fd::<FaultFile>(ictx, &mut arg.bytes)?;
    }
    if result.is_ok() && number == IOMMU_VEVENTQ_ALLOC {
        eventq::give_fd::<VeventqFile>(ictx, &mut arg.bytes)?;
    }
    arg.write_back()?;
    result.map(|()| 0)
}

/// Largest fault-file transfer served in one call (a multiple of both record sizes); a
/// longer read returns fewer bytes, as reads may.
pub const FAULT_IO_CAP: usize = PGFAULT_SIZE * RESPONSE_SIZE * 4096;

/// Largest vEVENTQ read served in one call; a longer read returns fewer bytes, as reads may.
pub const VEVENTQ_IO_CAP: usize = 1 << 20;

/// `read(fd, buf, count)` on a shim file.
pub fn read(file: &OpenFile, fd: c_int, buf: u64, count: usize) -> Result<usize, Errno> {
    match &file.kind {
        Kind::Fault(entry) => {
            access_ok(buf, count)?;
            if count % PGFAULT_SIZE != 0 {
                return Err(Errno::ESPIPE);
            }
            eventq::read(file, entry, fd, buf, count.min(FAULT_IO_CAP))
        }
        Kind::Veventq(entry) => {
            access_ok(buf, count)?;
            eventq::read(file, entry, fd, buf, count.min(VEVENTQ_IO_CAP))
        }
        Kind::Vfio(entry) => vfio_rw_at_pos(entry, buf, count, Dir::Read),
        // iommufd has no `read` (`vfs_read()`: no `FMODE_CAN_READ`).
        Kind::Iommufd(_) => Err(Errno::EINVAL),
    }
}

/// `write(fd, buf, count)` on a shim file. A page response written to a fault queue lets
/// the endpoint that waited for it go on: the shim runs the endpoints before returning
/// ([`Machine::run_endpoints`]), as real hardware would have resumed by itself.
pub fn write(file: &OpenFile, buf: u64, count: usize) -> Result<usize, Errno> {
    let entry = match &file.kind {
        Kind::Fault(entry) => entry,
        Kind::Vfio(entry) => return vfio_rw_at_pos(entry, buf, count, Dir::Write),
        // No `write` operation (`vfs_write()`: no `FMODE_CAN_WRITE`).
        Kind::Iommufd(_) | Kind::Veventq(_) => return Err(Errno::EINVAL),
    };
    access_ok(buf, count)?;
    if count % RESPONSE_SIZE != 0 {
        return Err(Errno::ESPIPE);
    }
    let n = count.min(FAULT_IO_CAP);
    let mut records = vec![0u8; n];
    // Linux copies one record at a time: a fault ends the write after the whole records
    // before it.
    let got = sys::vm_read_prefix(buf, &mut records);
    let whole = got - got % RESPONSE_SIZE;
    if whole == 0 && n > 0 {
        return Err(Errno::EFAULT);
    }
    let written = entry.file.write(&records[..whole], 0)?;
    if written > 0 {
        if let Ok(m) = machine() {
            m.run_endpoints();
        }
    }
    Ok(written)
}

/// `pread(fd, buf, count, offset)` on a shim file (`ksys_pread64()`): a negative offset is
/// `EINVAL`; a fault queue cannot be read at an offset (its anonymous file has no
/// `FMODE_PREAD`: `ESPIPE`); iommufd cannot be read (`EINVAL`); a VFIO device, after
/// `vfs_read()`'s checks (`check_mode`, `access_ok`, `verify_area`), reads the region
/// `offset` names ([`crate::regions::rw`]).
///
/// # Errors
/// As said.
pub fn pread(file: &OpenFile, buf: u64, count: usize, offset: i64) -> Result<usize, Errno> {
    positioned(file, buf, count, offset, Dir::Read)
}

/// `pwrite(fd, buf, count, offset)` on a shim file (`ksys_pwrite64()`), with the rules of
/// [`pread`].
///
/// # Errors
/// As for [`pread`].
pub fn pwrite(file: &OpenFile, buf: u64, count: usize, offset: i64) -> Result<usize, Errno> {
    positioned(file, buf, count, offset, Dir::Write)
}

fn positioned(
    file: &OpenFile,
    buf: u64,
    count: usize,
    offset: i64,
    dir: Dir,
) -> Result<usize, Errno> {
    if offset < 0 {
        return Err(Errno::EINVAL);
    }
    match &file.kind {
        Kind::Fault(_) | Kind::Veventq(_) => Err(Errno::ESPIPE),
        Kind::Iommufd(_) => Err(Errno::EINVAL),
        Kind::Vfio(entry) => {
            check_mode(entry, dir)?;
            access_ok(buf, count)?;
            verify_area(offset as u64, count)?;
            vfio_rw(entry, offset as u64, buf, count, dir)
        }
    }
}

/// `vfs_read()` / `vfs_write()`: a file not open for the direction is `EBADF`.
fn check_mode(entry: &VfioEntry, dir: Dir) -> Result<(), Errno> {
    let open_for = match dir {
        Dir::Read => entry.readable(),
        Dir::Write => entry.writable(),
    };
    if open_for { Ok(()) } else { Err(Errno::EBADF) }
}

/// `access_ok()` of a `read` or `write` buffer, which `vfs_read()` / `vfs_write()` check
/// right after the file's mode, before the count and position (x86-64 `__access_ok()`): a
/// buffer that wraps or ends in the upper half of the address space is `EFAULT`. Every Linux
/// host refuses that much; one with a smaller user address space refuses more, which the
/// shim cannot know, and the copy then fails with `EFAULT` as far as the buffer is unmapped.
fn access_ok(buf: u64, count: usize) -> Result<(), Errno> {
    match buf.checked_add(count as u64) {
        Some(end) if end <= i64::MAX as u64 => Ok(()),
        _ => Err(Errno::EFAULT),
    }
}

/// `rw_verify_area()`: a count that is negative as a `ssize_t`, or that carries the
/// position past the largest `loff_t`, is `EINVAL`.
fn verify_area(pos: u64, count: usize) -> Result<(), Errno> {
    let count = i64::try_from(count).map_err(|_| Errno::EINVAL)?;
    let pos = i64::try_from(pos).map_err(|_| Errno::EINVAL)?;
    pos.checked_add(count).map(drop).ok_or(Errno::EINVAL)
}

/// `read` or `write` of a VFIO device at, and advancing, the file position.
fn vfio_rw_at_pos(entry: &VfioEntry, buf: u64, count: usize, dir: Dir) -> Result<usize, Errno> {
    check_mode(entry, dir)?;
    access_ok(buf, count)?;
    let mut pos = entry.pos.lock().unwrap_or_else(|e| e.into_inner());
    verify_area(*pos, count)?;
    let done = vfio_rw(entry, *pos, buf, count, dir)?;
    *pos += done as u64;
    Ok(done)
}

/// What is behind the device of an open VFIO file.
fn function_of(entry: &VfioEntry) -> Result<Function<'static>, Errno> {
    let m = machine().map_err(Errno)?;
    m.function(entry.index).ok_or(Errno::ENODEV)
}

/// A region access of a VFIO device file: `EINVAL` until the file is bound
/// (`vfio_device_fops_read()` / `_write()`: `df->access_granted`), then
/// [`crate::regions::rw`] on what is behind it. A demo endpoint is run when the program
/// looks ([`crate::regions`]); the copy engine works inside the DOORBELL write itself.
fn vfio_rw(entry: &VfioEntry, pos: u64, buf: u64, count: usize, dir: Dir) -> Result<usize, Errno> {
    if entry.file.dev_id().is_none() {
        return Err(Errno::EINVAL);
    }
    let m = machine().map_err(Errno)?;
    let function = function_of(entry)?;
    let run = || {
        if let Function::Endpoint(endpoint) = function {
            m.run_endpoint(endpoint);
        }
    };
    regions::rw(function.pci(), &run, pos, count, &ProgramBuf(buf), dir)
}

/// The program's buffer at an address, reached with `process_vm_readv` / `_writev` (a bad
/// address is `EFAULT`, never a crash).
struct ProgramBuf(u64);

impl UserBuf for ProgramBuf {
    fn read(&self, at: usize, out: &mut [u8]) -> bool {
        let Some(addr) = self.0.checked_add(at as u64) else {
            return false;
        };
        sys::vm_read_prefix(addr, out) == out.len()
    }

    fn write(&self, at: usize, data: &[u8]) -> bool {
        let Some(addr) = self.0.checked_add(at as u64) else {
            return false;
        };
        sys::vm_write_prefix(addr, data) == data.len()
    }
}

/// The events a `poll` of `fd` reports when the shim answers for it: iommufd and VFIO device
/// files have no `poll` operation, so Linux reports them always ready
/// (`DEFAULT_POLLMASK`). `None` for other descriptors (fault files included: the kernel's
/// answer for their socket is the right one, and so it is for vEVENTQ files).
pub fn poll_mask(fd: c_int) -> Option<i16> {
    let file = files::lookup(fd)?;
    if matches!(file.kind, Kind::Fault(_) | Kind::Veventq(_)) {
        return None;
    }
    Some(libc::POLLIN | libc::POLLOUT | libc::POLLRDNORM | libc::POLLWRNORM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_classified_exactly() {
        assert_eq!(classify(b"/dev/iommu"), Some(ShimPath::Iommu));
        assert_eq!(
            classify(b"/dev/vfio/devices/vfio0"),
            Some(ShimPath::Vfio(0))
        );
        assert_eq!(
            classify(b"/dev/vfio/devices/vfio12"),
            Some(ShimPath::Vfio(12))
        );
        for other in [
            &b"/dev/iommu/"[..],
            b"dev/iommu",
            b"/dev/iommu0",
            b"/dev/vfio/devices/vfio",
            b"/dev/vfio/devices/vfio01",
            b"/dev/vfio/devices/vfio1a",
            b"/dev/vfio/devices/vfio9999999999",
            b"/dev/vfio/vfio",
        ] {
            assert_eq!(classify(other), None, "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn buffers_ending_in_the_upper_half_fail_access_ok() {
        assert_eq!(access_ok(0x1000, 8), Ok(()));
        assert_eq!(
            access_ok(8, 0),
            Ok(()),
            "a bad pointer passes: the copy faults"
        );
        assert_eq!(access_ok(0, i64::MAX as usize), Ok(()));
        assert_eq!(access_ok(1, i64::MAX as usize), Err(Errno::EFAULT));
        assert_eq!(access_ok(0x1000, usize::MAX), Err(Errno::EFAULT), "wraps");
        assert_eq!(access_ok(1 << 63, 0), Err(Errno::EFAULT));
    }

    #[test]
    fn zero_tails_are_checked_in_place() {
        let bytes = [0u8, 0, 0, 1, 0, 0];
        let at = bytes.as_ptr() as u64;
        assert_eq!(check_zero_tail(at, 3), Ok(()));
        assert_eq!(check_zero_tail(at, 6), Err(Errno::E2BIG));
        assert_eq!(check_zero_tail(8, 6), Err(Errno::EFAULT));
        assert_eq!(check_zero_tail(u64::MAX, 6), Err(Errno::EFAULT));
    }

    #[test]
    fn arguments_read_what_is_readable_and_write_back_changes() {
        let mut cmd = [0u8; 16];
        cmd[..4].copy_from_slice(&16u32.to_le_bytes());
        let addr = cmd.as_mut_ptr() as u64;
        let mut arg = Arg::read(0, addr).unwrap();
        assert_eq!(arg.bytes.len(), 16);
        arg.bytes[9] = 0xaa;
        arg.write_back().unwrap();
        // SAFETY: the buffer was written through process_vm_writev; read it back through a
        // volatile read so the compiler does not assume it unchanged.
        let seen = unsafe { std::ptr::read_volatile(&cmd) };
        assert_eq!(seen[9], 0xaa);
        let arg = Arg::read(0, 8).unwrap();
        assert!(arg.bytes.is_empty(), "a bad pointer reads nothing");
    }
}
