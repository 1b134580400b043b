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
//! A piece's addresses are translated, then used, under the device's own lock: nothing else
//! runs on the device between the two; an unmap racing between them (another thread of the
//! OS) would need the IOMMU to hold the translation — the PCIe device's ordered ATC does that,
//! this one does not try.

use std::sync::{Arc, Mutex, MutexGuard};

use vsva_mem::{Access, Pasid, Rid};
use vsva_pcie::Refused;
use vsva_pcie::port::{PlatformDma, PlatformUpstream, StallToken};

use crate::device::{DeviceStats, Progress};
use crate::engine::{CHUNK, Job, Registers};
use crate::regs::DeviceError;

const PAGE: u64 = 4096;

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
        let mem = self.up.memory();
        while job.done < job.len {
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
                    PlatformDma::Stalled(t) => {
                        st.stats.stalls += 1;
                        st.stalled = Some(t);
                        st.job = Some(job);
                        return Progress::Waiting;
                    }
                    PlatformDma::Refused => return Self::finish(st, Err(DeviceError::DmaRefused)),
                }
            }
            match job.piece(mem, (&mut st.buf, &mut st.buf2), n, pa[0], pa[1]) {
                Ok(moved) => st.stats.dma_bytes += moved,
                Err(e) => return Self::finish(st, Err(e)),
            }
        }
        Self::finish(st, Ok(job.result()))
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
