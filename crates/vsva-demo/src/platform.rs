//! The platform DMA device: the demo device's engine and registers on an SoC interconnect
//! instead of PCIe, as Arm accelerators are (a master with a StreamID and SubstreamIDs,
//! described by firmware, with the `dma-can-stall` property).
//!
//! | capability | |
//! |---|---|
//! | configuration space | none (firmware describes the device) |
//! | SubstreamIDs (PASIDs) | `pasid_bits` wide, from the PASID register |
//! | ATS, ATC, PRI | none |
//! | privileged requests | none (FLAGS bit 0 fails the command) |
//! | stall | every access is stallable; the device waits for a stalled transaction |
//!
//! Every access is an untranslated DMA carrying the command's PASID as its SubstreamID.
//! When the IOMMU stalls one (a translation fault under a CD with S = 1), the device parks
//! the command ([`Progress::Waiting`]) — the OS reads the stall event, fixes the fault with
//! the memory manager and resumes the transaction — and the next [`PlatformDevice::run`]
//! polls it: a retry that completes lets the command go on, an abort fails it with
//! [`DeviceError::StallAborted`]. A piece never spans a 4 KiB page of either side, so each
//! DMA is one translation.
//!
//! A piece's addresses are translated, then used, inside one
//! [`PlatformUpstream::in_flight`] call: an invalidation the IOMMU completes meanwhile (an
//! unmap on another thread of the OS) waits until the piece has used them, as the PCIe
//! device's ordered ATC makes its invalidations wait.

use std::sync::{Arc, Mutex, MutexGuard};

use vsva_mem::{Access, Pasid, Rid};
use vsva_pcie::Refused;
use vsva_pcie::{PlatformDma, PlatformUpstream, StallToken};

use crate::device::{DeviceStats, Progress};
use crate::engine::{CHUNK, Job, Registers};
use crate::regs::DeviceError;

const PAGE: u64 = 4096;

/// What one piece of work came to.
enum Step {
    /// Bytes moved.
    Moved(u64),
    /// A translation stalled under this token.
    Stalled(StallToken),
    /// The command fails.
    Failed(DeviceError),
}

struct State {
    regs: Registers,
    job: Option<Job>,
    /// The transaction the IOMMU holds.
    stalled: Option<StallToken>,
    stats: DeviceStats,
    buf: Vec<u8>,
    buf2: Vec<u8>,
}

/// A platform DMA master with SubstreamIDs and stall.
pub struct PlatformDevice {
    stream: Rid,
    pasid_bits: u8,
    up: Arc<dyn PlatformUpstream>,
    state: Mutex<State>,
}

impl PlatformDevice {
    /// A device whose StreamID is `stream` (as the OS names it, a [`Rid`]), with
    /// `pasid_bits`-bit SubstreamIDs (1..=20), behind `up`.
    pub fn new(stream: Rid, pasid_bits: u8, up: Arc<dyn PlatformUpstream>) -> PlatformDevice {
        PlatformDevice {
            stream,
            pasid_bits: pasid_bits.clamp(1, 20),
            up,
            state: Mutex::new(State {
                regs: Registers::default(),
                job: None,
                stalled: None,
                stats: DeviceStats::default(),
                buf: vec![0; CHUNK as usize],
                buf2: vec![0; CHUNK as usize],
            }),
        }
    }

    /// The SubstreamID width firmware describes (`pasid-num-bits`).
    pub fn pasid_bits(&self) -> u8 {
        self.pasid_bits
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Register read (see [`crate::regs`]).
    pub fn mmio_read(&self, off: u64) -> u64 {
        self.lock().regs.read(off)
    }

    /// Register write; a write of 1 to DOORBELL starts the command. A command still stalled
    /// in the IOMMU is forgotten by the device (its transaction ends as software says).
    pub fn mmio_write(&self, off: u64, value: u64) {
        let mut st = self.lock();
        if !st.regs.write(off, value) {
            return;
        }
        st.job = None;
        st.stalled = None;
        let job = match Job::decode(&st.regs, u32::from(self.pasid_bits)) {
            Ok(j) if j.privileged => Err(DeviceError::PrivilegedDisabled),
            other => other,
        };
        match job {
            Ok(j) => {
                st.job = Some(j);
                st.regs.busy();
            }
            Err(e) => st.regs.finish(Err(e)),
        }
    }

    /// Counters (`stalls`: transactions the IOMMU stalled; no ATS or PRI counts).
    pub fn stats(&self) -> DeviceStats {
        self.lock().stats
    }

    /// Runs the current command until it completes, fails, or has a transaction stalled.
    pub fn run(&self) -> Progress {
        let mut g = self.lock();
        let st = &mut *g;
        let Some(mut job) = st.job else {
            return Progress::Idle;
        };
        if let Some(token) = st.stalled {
            match self.up.poll_stalled(token) {
                PlatformDma::Stalled(t) => {
                    if t != token {
                        // The retry faulted again, under a new tag.
                        st.stats.stalls += 1;
                        st.stalled = Some(t);
                    }
                    return Progress::Waiting;
                }
                PlatformDma::Refused => return Self::finish(st, Err(DeviceError::StallAborted)),
                // Resumed and retried: the piece starts over (its translation now hits).
                PlatformDma::Done(_) => st.stalled = None,
            }
        }
        while job.done < job.len {
            // Translate and access as one transaction in flight: an invalidation completing
            // meanwhile waits for the access (no use of a translation it removed).
            let mut step = Step::Moved(0);
            let (buf, buf2) = (&mut st.buf, &mut st.buf2);
            self.up
                .in_flight(&mut || step = self.piece(&mut job, (buf, buf2)));
            match step {
                Step::Moved(n) => st.stats.dma_bytes += n,
                Step::Stalled(t) => {
                    st.stats.stalls += 1;
                    st.stalled = Some(t);
                    st.job = Some(job);
                    return Progress::Waiting;
                }
                Step::Failed(e) => return Self::finish(st, Err(e)),
            }
        }
        Self::finish(st, Ok(job.result()))
    }

    /// One piece of `job`: its translations (at most one page of each side), then the data
    /// movement.
    fn piece(&self, job: &mut Job, bufs: (&mut [u8], &mut [u8])) -> Step {
        let off = job.done;
        let mut n = (job.len - off).min(job.limit());
        let dst_access = if job.writes_dst() {
            Access::WRITE
        } else {
            Access::READ
        };
        let sides = [
            (job.reads_src(), job.src + off, Access::READ),
            (job.uses_dst(), job.dst + off, dst_access),
        ];
        let mut pa = [None, None];
        for (i, &(used, va, access)) in sides.iter().enumerate() {
            if !used {
                continue;
            }
            n = n.min(PAGE - va % PAGE);
            match self
                .up
                .dma(self.stream.raw().into(), Some(job.pasid), va, access, true)
            {
                PlatformDma::Done(p) => pa[i] = Some(p),
                PlatformDma::Stalled(t) => return Step::Stalled(t),
                PlatformDma::Refused => return Step::Failed(DeviceError::DmaRefused),
            }
        }
        match job.piece(self.up.memory(), bufs, n, pa[0], pa[1]) {
            Ok(moved) => Step::Moved(moved),
            Err(e) => Step::Failed(e),
        }
    }

    fn finish(st: &mut State, r: Result<u64, DeviceError>) -> Progress {
        st.job = None;
        st.stalled = None;
        st.regs.finish(r);
        match r {
            Ok(_) => Progress::Done,
            Err(e) => Progress::Failed(e),
        }
    }

    /// A DMA that may not stall, for probing what the IOMMU lets through.
    ///
    /// # Errors
    /// [`Refused`] when the IOMMU refuses it.
    pub fn dma_untranslated(
        &self,
        pasid: Option<Pasid>,
        addr: u64,
        write: bool,
    ) -> Result<u64, Refused> {
        let access = if write { Access::WRITE } else { Access::READ };
        match self
            .up
            .dma(self.stream.raw().into(), pasid, addr, access, false)
        {
            PlatformDma::Done(p) => Ok(p),
            _ => Err(Refused),
        }
    }
}

/// No configuration space: reads are all ones, as of an absent function.
impl crate::machine::Function for PlatformDevice {
    fn config_size(&self) -> u64 {
        0
    }

    fn config_read(&self, _off: u32, _size: u32) -> u32 {
        u32::MAX
    }

    fn config_write(&self, _off: u32, _size: u32, _value: u32) {}

    fn mmio_read(&self, off: u64) -> u64 {
        PlatformDevice::mmio_read(self, off)
    }

    fn mmio_write(&self, off: u64, value: u64) {
        PlatformDevice::mmio_write(self, off, value);
    }
}

impl crate::machine::Endpoint for PlatformDevice {
    fn rid(&self) -> Rid {
        self.stream
    }

    fn run(&self) -> Progress {
        PlatformDevice::run(self)
    }

    fn stats(&self) -> DeviceStats {
        PlatformDevice::stats(self)
    }

    fn dma_untranslated(
        &self,
        pasid: Option<Pasid>,
        addr: u64,
        write: bool,
    ) -> Result<u64, Refused> {
        PlatformDevice::dma_untranslated(self, pasid, addr, write)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use vsva_mem::{PhysMem, PhysMemory};

    use super::*;
    use crate::regs::{self, Op, Status};

    /// An IOMMU of identity translations where some pages stall until the test resolves
    /// them (retry: mapped from then on; abort).
    struct Stalling {
        mem: PhysMemory,
        /// Page → stalled tag, or `None` once mapped.
        absent: Mutex<HashMap<u64, Option<u16>>>,
        /// Tag → resolution (true: retry).
        resolved: Mutex<HashMap<u16, bool>>,
        next: Mutex<u16>,
    }

    impl Stalling {
        fn resolve(&self, tag: u16, retry: bool) {
            let mut a = self.absent.lock().unwrap();
            let page = *a.iter().find(|(_, t)| **t == Some(tag)).unwrap().0;
            if retry {
                a.remove(&page);
            } else {
                a.insert(page, None);
            }
            self.resolved.lock().unwrap().insert(tag, retry);
        }
    }

    impl PlatformUpstream for Stalling {
        fn dma(
            &self,
            stream: u32,
            _: Option<Pasid>,
            addr: u64,
            _: Access,
            stallable: bool,
        ) -> PlatformDma {
            let page = addr & !0xfff;
            let mut a = self.absent.lock().unwrap();
            match a.get(&page) {
                None => PlatformDma::Done(addr),
                Some(_) if !stallable => PlatformDma::Refused,
                Some(_) => {
                    let mut n = self.next.lock().unwrap();
                    *n += 1;
                    a.insert(page, Some(*n));
                    PlatformDma::Stalled(StallToken { stream, tag: *n })
                }
            }
        }

        fn poll_stalled(&self, token: StallToken) -> PlatformDma {
            match self.resolved.lock().unwrap().get(&token.tag) {
                None => PlatformDma::Stalled(token),
                Some(true) => PlatformDma::Done(0),
                Some(false) => PlatformDma::Refused,
            }
        }

        fn memory(&self) -> &dyn PhysMem {
            &self.mem
        }

        fn in_flight(&self, f: &mut dyn FnMut()) {
            f();
        }
    }

    fn device(absent: &[u64]) -> (Arc<Stalling>, PlatformDevice) {
        let up = Arc::new(Stalling {
            mem: PhysMemory::new(1 << 20).unwrap(),
            absent: Mutex::new(absent.iter().map(|&p| (p, None)).collect()),
            resolved: Mutex::new(HashMap::new()),
            next: Mutex::new(0),
        });
        let dev = PlatformDevice::new(Rid::from_raw(0x800), 20, up.clone());
        (up, dev)
    }

    fn start(dev: &PlatformDevice, op: Op, dst: u64, len: u64, pattern: u64) {
        dev.mmio_write(regs::PASID, 1 | regs::PASID_VALID);
        dev.mmio_write(regs::COMMAND, op as u64);
        dev.mmio_write(regs::DST, dst);
        dev.mmio_write(regs::LEN, len);
        dev.mmio_write(regs::PATTERN, pattern);
        dev.mmio_write(regs::DOORBELL, 1);
    }

    #[test]
    fn a_stalled_access_waits_until_resumed_then_the_command_completes() {
        let (up, dev) = device(&[0x2000, 0x3000]);
        start(&dev, Op::Fill, 0x1800, 0x2000, 0x5a);
        assert_eq!(dev.run(), Progress::Waiting);
        // nothing happens until software acts
        assert_eq!(dev.run(), Progress::Waiting);
        assert_eq!(dev.mmio_read(regs::STATUS), Status::Busy as u64);
        up.resolve(1, true);
        // the next page stalls in its turn
        assert_eq!(dev.run(), Progress::Waiting);
        up.resolve(2, true);
        assert_eq!(dev.run(), Progress::Done);
        let mut b = vec![0u8; 0x2000];
        up.mem.read(0x1800, &mut b).unwrap();
        assert!(b.iter().all(|&x| x == 0x5a));
        assert_eq!(dev.stats().stalls, 2);
        assert_eq!(dev.stats().dma_bytes, 0x2000);
    }

    #[test]
    fn an_aborted_stall_fails_the_command_with_stall_aborted() {
        let (up, dev) = device(&[0x1000]);
        start(&dev, Op::Fill, 0x0, 0x2000, 0xff);
        assert_eq!(dev.run(), Progress::Waiting);
        up.resolve(1, false);
        assert_eq!(dev.run(), Progress::Failed(DeviceError::StallAborted));
        assert_eq!(dev.mmio_read(regs::STATUS), Status::Error as u64);
        assert_eq!(dev.mmio_read(regs::ERROR), DeviceError::StallAborted as u64);
        let mut b = vec![0u8; 0x1000];
        up.mem.read(0x1000, &mut b).unwrap();
        assert!(b.iter().all(|&x| x == 0), "the aborted page was written");
    }

    #[test]
    fn privileged_commands_and_unstallable_probes_are_refused() {
        let (_, dev) = device(&[0x1000]);
        dev.mmio_write(regs::FLAGS, regs::FLAG_PRIVILEGED);
        start(&dev, Op::Fill, 0x0, 0x100, 1);
        assert_eq!(
            dev.mmio_read(regs::ERROR),
            DeviceError::PrivilegedDisabled as u64
        );
        assert_eq!(dev.run(), Progress::Idle);
        assert_eq!(dev.dma_untranslated(None, 0x1000, true), Err(Refused));
        assert_eq!(dev.dma_untranslated(None, 0x2000, true), Ok(0x2000));
    }
}
