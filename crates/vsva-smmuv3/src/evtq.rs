//! The event queue (IHI 0070 §3.5, §7.4): records written at PROD while EVTQEN is set; a
//! full queue loses the event and toggles PROD.OVFLG (unless an overflow is already
//! unacknowledged, i.e. OVFLG differs from CONS.OVACKFLG); an aborted write raises
//! GERROR.EVTQ_ABT_ERR, and no record is written while it is active. Each record written, and each overflow, raises the event queue
//! interrupt when IRQ_CTRL.EVTQ_IRQEN is set.

use zerocopy::IntoBytes;

use crate::spec::event::{EVENT_BYTES, EventRecord};
use crate::spec::registers::{Cr0, Gerror, IrqCtrl, queue};
use crate::unit::{Smmuv3, State};

impl Smmuv3 {
    /// Writes `rec` to the event queue; whether it was written.
    pub(crate) fn record_event(&self, st: &mut State, rec: &EventRecord) -> bool {
        // Delivery stops while EVTQ_ABT_ERR is active (§7.5).
        if !st.cr0.contains(Cr0::EVTQEN) || st.gerror_active(Gerror::EVTQ_ABT_ERR) {
            st.stats.events_lost += 1;
            return false;
        }
        let max = self.cfg.evtq_bits;
        let irq_on = st.irq_ctrl.contains(IrqCtrl::EVTQ_IRQEN);
        if st.evtq.full(max) {
            st.stats.events_lost += 1;
            if (st.evtq.prod ^ st.evtq.cons) & queue::OVERFLOW == 0 {
                st.evtq.prod ^= queue::OVERFLOW;
                if irq_on {
                    st.evtq_irq.fire(self.irq.as_ref());
                }
            }
            return false;
        }
        let addr = st.evtq.entry_addr(max, EVENT_BYTES, st.evtq.prod);
        if self.mem.write(addr, rec.as_bytes()).is_err() {
            st.stats.events_lost += 1;
            self.gerror_raise(st, Gerror::EVTQ_ABT_ERR);
            return false;
        }
        st.evtq.prod = st.evtq.next(max, st.evtq.prod);
        st.stats.events += 1;
        if irq_on {
            st.evtq_irq.fire(self.irq.as_ref());
        }
        true
    }

    /// Records `rec` as if the SMMU had detected it (for translation layers built on this
    /// crate, and tests); whether it was written.
    pub fn record(&self, rec: &EventRecord) -> bool {
        let mut st = self.lock();
        self.record_event(&mut st, rec)
    }
}
