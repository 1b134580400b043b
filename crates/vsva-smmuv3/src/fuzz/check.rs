//! The SMMU's invariants (IHI 0070), checked after every step of a run.

use crate::config::StallModel;
use crate::spec::registers::{Cr0, Gerror, IrqCtrl, QueueBase, cerror, offset, queue};
use crate::unit::Smmuv3;

use super::{Op, Rig};

/// A queue's registers as read.
#[derive(Debug, Clone, Copy)]
pub(super) struct QueueRegs {
    base: u64,
    pub(super) prod: u32,
    cons: u32,
}

impl QueueRegs {
    fn read(smmu: &Smmuv3, base: u64, prod: u64, cons: u64) -> QueueRegs {
        QueueRegs {
            base: smmu.mmio_read(base, 8),
            prod: smmu.mmio_read(prod, 4) as u32,
            cons: smmu.mmio_read(cons, 4) as u32,
        }
    }
    /// log2 of the entries: LOG2SIZE capped by IDR1 (§6.3.26).
    fn log2(&self, max: u8) -> u32 {
        (QueueBase::from_bits(self.base).log2size().min(max)) as u32
    }
    /// Entries in use, by the current size.
    fn used(&self, max: u8) -> u32 {
        let log2 = self.log2(max);
        let m = (2u32 << log2) - 1;
        (self.prod & m).wrapping_sub(self.cons & m) & m
    }
}

/// What the checks compare a step's end with.
#[derive(Debug, Clone, Copy)]
pub(super) struct Before {
    commands: u64,
    events: u64,
    events_lost: u64,
    page_requests: u64,
    pub(super) evtq: QueueRegs,
    priq: QueueRegs,
    gerror: u32,
    pub(super) cmdq_err: bool,
}

impl Before {
    pub(super) fn of(rig: &Rig) -> Before {
        let s = &rig.smmu;
        let st = s.stats();
        let g = rig.r32(offset::GERROR) ^ rig.r32(offset::GERRORN);
        Before {
            commands: st.commands,
            events: st.events,
            events_lost: st.events_lost,
            page_requests: st.page_requests,
            evtq: QueueRegs::read(
                s,
                offset::EVENTQ_BASE,
                offset::EVENTQ_PROD,
                offset::EVENTQ_CONS,
            ),
            priq: QueueRegs::read(s, offset::PRIQ_BASE, offset::PRIQ_PROD, offset::PRIQ_CONS),
            gerror: rig.r32(offset::GERROR),
            cmdq_err: g & Gerror::CMDQ_ERR.bits() != 0,
        }
    }
}

/// The SMMU's invariants after any step (IHI 0070).
pub(super) fn check(rig: &Rig, before: &Before, op: Op) {
    let s = &rig.smmu;
    let cfg = &rig.cfg;
    // §6.3.9/§6.3.10: CR0ACK shows the enables that took effect — here all that were
    // written and are implemented, at once.
    let mut cr0 = Cr0::from_bits_truncate(rig.written.cr0);
    if !cfg.pri {
        cr0 -= Cr0::PRIQEN;
    }
    if !cfg.ats {
        cr0 -= Cr0::ATSCHK;
    }
    assert_eq!(rig.r32(offset::CR0ACK), cr0.bits(), "CR0ACK");
    assert_eq!(rig.r32(offset::CR0), cr0.bits(), "CR0");
    // §6.3.16/§6.3.18: likewise IRQ_CTRLACK.
    let mut irq = IrqCtrl::from_bits_truncate(rig.written.irq_ctrl);
    if !cfg.pri {
        irq -= IrqCtrl::PRIQ_IRQEN;
    }
    assert_eq!(rig.r32(offset::IRQ_CTRLACK), irq.bits(), "IRQ_CTRLACK");
    // §6.3.19/§6.3.20: GERROR holds only defined errors; GERRORN is what software wrote.
    let gerror = rig.r32(offset::GERROR);
    let gerrorn = rig.r32(offset::GERRORN);
    assert_eq!(gerror & !Gerror::all().bits(), 0, "GERROR {gerror:#x}");
    assert_eq!(
        gerrorn,
        rig.written.gerrorn & Gerror::all().bits(),
        "GERRORN"
    );
    let active = Gerror::from_bits_truncate(gerror ^ gerrorn);

    // §3.5, §6.3.27/28: the command queue's indexes hold index and wrap bit of the largest
    // queue; CONS.ERR says why the queue stopped.
    let cmdq = QueueRegs::read(s, offset::CMDQ_BASE, offset::CMDQ_PROD, offset::CMDQ_CONS);
    let max = (2u32 << cfg.cmdq_bits) - 1;
    let err_bits = queue::ERR_MASK << queue::ERR_SHIFT;
    assert_eq!(cmdq.prod & !max, 0, "CMDQ_PROD {:#x}", cmdq.prod);
    assert_eq!(
        cmdq.cons & !(max | err_bits),
        0,
        "CMDQ_CONS {:#x}",
        cmdq.cons
    );
    // (Only when the SMMU raised it: a driver toggling GERRORN for an inactive error makes
    // it look active, CONSTRAINED UNPREDICTABLE.)
    let raised = (gerror ^ before.gerror) & Gerror::CMDQ_ERR.bits() != 0;
    if active.contains(Gerror::CMDQ_ERR) && raised {
        let err = (cmdq.cons >> queue::ERR_SHIFT) as u8 & queue::ERR_MASK as u8;
        assert!(
            matches!(err, cerror::ILL | cerror::ABT | cerror::ATC_INV_SYNC),
            "CMDQ_CONS.ERR {err}"
        );
    } else if cr0.contains(Cr0::CMDQEN) && !active.contains(Gerror::CMDQ_ERR) {
        // Commands are consumed at once: an enabled queue without an error is empty.
        assert_eq!(cmdq.used(cfg.cmdq_bits), 0, "CMDQ left {cmdq:?}");
    }
    // Bounded work: one register write consumes at most the entries from CONS to PROD —
    // fewer than twice the queue's size even when a driver moved PROD further ahead of CONS
    // than the queue holds (index and wrap bit, §3.5).
    let commands = s.stats().commands - before.commands;
    assert!(
        commands < 2 << cmdq.log2(cfg.cmdq_bits),
        "{commands} commands in one step"
    );

    // §7.4, §8: the output queues' indexes, with OVFLG / OVACKFLG.
    let st = s.stats();
    for (name, q, bits) in [
        (
            "EVENTQ",
            QueueRegs::read(
                s,
                offset::EVENTQ_BASE,
                offset::EVENTQ_PROD,
                offset::EVENTQ_CONS,
            ),
            cfg.evtq_bits,
        ),
        (
            "PRIQ",
            QueueRegs::read(s, offset::PRIQ_BASE, offset::PRIQ_PROD, offset::PRIQ_CONS),
            cfg.priq_bits,
        ),
    ] {
        let m = ((2u32 << bits) - 1) | queue::OVERFLOW;
        assert_eq!(q.prod & !m, 0, "{name}_PROD {:#x}", q.prod);
        assert_eq!(q.cons & !m, 0, "{name}_CONS {:#x}", q.cons);
    }
    if let Op::Traffic(n) = op {
        // Traffic writes no more records than the queues had room for (a full queue
        // overflows, §7.4, §8), and a bounded number of them. Indexes a driver wrote further
        // apart than the queue holds are its error (CONSTRAINED UNPREDICTABLE): not checked.
        let room = |q: QueueRegs, bits: u8| {
            let size = 1u64 << q.log2(bits);
            let used = q.used(bits) as u64;
            (used <= size).then(|| size - used)
        };
        let written = st.events - before.events;
        if let Some(room) = room(before.evtq, cfg.evtq_bits) {
            assert!(written <= room, "{written} events into {room} free entries");
        }
        let tried = written + st.events_lost - before.events_lost;
        assert!(tried <= 3 * n, "{tried} events for {n} transactions");
        let queued = st.page_requests - before.page_requests;
        if let Some(room) = room(before.priq, cfg.priq_bits) {
            assert!(
                queued <= room,
                "{queued} page requests into {room} free entries"
            );
        }
    }

    // The virtual role: the VMM heard every change of SMMUEN / GBPA.ABORT (§6.3.9, §6.3.14)
    // and every CMD_SYNC that completed before it completed (§4.7.3).
    if let Some(vmm) = &rig.vmm {
        let h = vmm.heard();
        assert_eq!(h.view, s.guest_global(), "the VMM missed a global change");
        assert!(h.syncs >= st.syncs, "{} syncs, {} heard", st.syncs, h.syncs);
    }

    // IDR5.STALL_MAX (§6.3.6): never more stall records outstanding than advertised.
    let stall_max = match cfg.stall {
        StallModel::Terminate => 0,
        _ => s.config().idr5().stall_max() as usize,
    };
    assert!(
        s.stalled() <= stall_max,
        "{} stalled, STALL_MAX {stall_max}",
        s.stalled()
    );
}
