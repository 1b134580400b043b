//! The virtual backend: what a unit playing a guest's vIOMMU tells its VMM (DESIGN.md, "one
//! model, two roles").
//!
//! A physical unit keeps its caches and nothing more. A virtual one also has a host behind
//! it: the guest's PASID entries become host nested page tables, and its cache invalidations
//! must reach the host's caches. The unit calls the backend with every context-cache,
//! PASID-cache, IOTLB and PASID-based IOTLB invalidation the guest's queue executes, after
//! dropping its own cached state and before the next descriptor — so an invalidation wait
//! queued behind it completes only once the host has done the same (§6.5.2.9 ordering).
//! Device-TLB invalidations and page group responses already leave the unit through
//! [`crate::devices::Devices`].
//!
//! The backend runs with the unit's queue in progress: it may read guest memory and call
//! the host, but must not program this unit again from inside the call.

use crate::spec::descriptors::Descriptor;

/// A VMM behind a virtual unit.
pub trait VirtualBackend: Send + Sync {
    /// The guest's queue executed `d` (a context-cache, PASID-cache, IOTLB or PASID-based
    /// IOTLB invalidation).
    fn invalidated(&self, d: &Descriptor);
}
