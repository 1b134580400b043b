//! The lookup path takes no register lock: a Function's DMA in flight while the command queue
//! waits for its ATS Invalidate Completion can still resolve its stream and record a fault
//! (PCIe Base 6.0 §10.3.1 makes the completion wait for that DMA).

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use common::*;
use vsva_mem::{Pasid, PhysMemory, Rid};
use vsva_pcie::MsiLog;
use vsva_pcie::{AtsInvalidation, AtsInvalidationError, Downstream, ResponseCode};
use vsva_smmuv3::spec::cmd::Command;
use vsva_smmuv3::spec::registers::offset;
use vsva_smmuv3::{ConfigFault, Smmuv3, Smmuv3Config};
use zerocopy::IntoBytes;

/// A Function that, before completing an invalidation, issues DMA the SMMU must look up.
#[derive(Default)]
struct DmaInFlight {
    smmu: OnceLock<Weak<Smmuv3>>,
    seen: Mutex<Vec<Result<(), ConfigFault>>>,
}

impl Downstream for DmaInFlight {
    fn ats_invalidate(&self, _: &AtsInvalidation) -> Result<(), AtsInvalidationError> {
        let smmu = self.smmu.get().and_then(Weak::upgrade).expect("SMMU alive");
        // StreamID 300 is beyond the 256-entry table: C_BAD_STREAMID, recorded.
        let r = smmu.stream_config(300, None).map(|_| ());
        self.seen.lock().unwrap().push(r);
        Ok(())
    }
    fn page_group_response(&self, _: Rid, _: Option<Pasid>, _: ResponseCode, _: u16) {}
}

#[test]
fn dma_during_an_atc_invalidation_resolves_and_records_its_fault() {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mem = Arc::new(PhysMemory::new(MEM).unwrap());
        let dev = Arc::new(DmaInFlight::default());
        let smmu = Arc::new(
            Smmuv3::new(
                Smmuv3Config::default(),
                mem.clone(),
                Arc::new(MsiLog::default()),
            )
            .with_devices(dev.clone()),
        );
        dev.smmu.set(Arc::downgrade(&smmu)).ok();
        smmu.mmio_write(offset::STRTAB_BASE, 8, STRTAB);
        smmu.mmio_write(offset::STRTAB_BASE_CFG, 4, 8);
        smmu.mmio_write(offset::CMDQ_BASE, 8, CMDQ | CMDQ_LOG2);
        smmu.mmio_write(offset::EVENTQ_BASE, 8, EVTQ | EVTQ_LOG2);
        smmu.mmio_write(offset::CR2, 4, 2);
        smmu.mmio_write(offset::CR0, 4, 0xd);
        let inv = Command::AtcInv {
            sid: 1,
            ssid: None,
            global: false,
            size: 0,
            addr: 0,
        };
        vsva_mem::PhysMem::write(mem.as_ref(), CMDQ, inv.encode().as_bytes()).unwrap();
        smmu.mmio_write(offset::CMDQ_PROD, 4, 1);
        let seen = dev.seen.lock().unwrap().clone();
        let evtq_prod = smmu.mmio_read(offset::EVENTQ_PROD, 4);
        tx.send((seen, evtq_prod)).unwrap();
    });
    let (seen, evtq_prod) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the lookup deadlocked against the command queue");
    assert_eq!(seen, [Err(ConfigFault::BadStreamId)]);
    assert_eq!(evtq_prod, 1, "the fault was recorded");
}
