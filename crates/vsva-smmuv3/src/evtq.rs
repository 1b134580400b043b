//! The event queue (IHI 0070 §3.5, §7.4): records written at PROD while EVTQEN is set; a
//! full queue loses the event and toggles PROD.OVFLG (unless an overflow is already
//! unacknowledged, i.e. OVFLG differs from CONS.OVACKFLG); an aborted write raises
//! GERROR.EVTQ_ABT_ERR, and no record is written while it is active. Each record written, and each overflow, raises the event queue
//! interrupt when IRQ_CTRL.EVTQ_IRQEN is set.

use zerocopy::IntoBytes;

use crate::spec::event::{EVENT_BYTES, EventRecord};
use crate::spec::registers::{Gerror, IrqCtrl, queue};
use crate::unit::{Events, Smmuv3};

impl Smmuv3 {
    /// Writes `rec` to the event queue; whether it was written. Takes `errors`.
    pub(crate) fn record_event(&self, ev: &mut Events, rec: &EventRecord) -> bool {
        let (irq_on, aborted) = {
            let e = self.errors();
            (
                e.irq_ctrl.contains(IrqCtrl::EVTQ_IRQEN),
                e.active(Gerror::EVTQ_ABT_ERR),
            )
        };
        // Delivery stops while EVTQ_ABT_ERR is active (§7.5).
        if !ev.enabled || aborted {
            ev.lost += 1;
            return false;
        }
        let max = self.cfg.evtq_bits;
        if ev.q.full(max) {
            ev.lost += 1;
            if (ev.q.prod ^ ev.q.cons) & queue::OVERFLOW == 0 {
                ev.q.prod ^= queue::OVERFLOW;
                if irq_on {
                    ev.irq.fire(self.irq.as_ref());
                }
            }
            return false;
        }
        let addr = ev.q.entry_addr(max, EVENT_BYTES, ev.q.prod);
        if self.mem.write(addr, rec.as_bytes()).is_err() {
            ev.lost += 1;
            self.gerror_raise(Gerror::EVTQ_ABT_ERR);
            return false;
        }
        ev.q.prod = ev.q.next(max, ev.q.prod);
        ev.written += 1;
        if irq_on {
            ev.irq.fire(self.irq.as_ref());
        }
        true
    }

    /// Records `rec` as if the SMMU had detected it (for translation layers built on this
    /// crate, and tests); whether it was written.
    pub fn record(&self, rec: &EventRecord) -> bool {
        let mut ev = self.events();
        self.record_event(&mut ev, rec)
    }
}
