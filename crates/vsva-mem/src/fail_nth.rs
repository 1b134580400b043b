//! Allocation-failure injection, per thread: "the Nth allocation from now fails" (Linux's
//! `/proc/self/task/<tid>/fail-nth` of `Documentation/fault-injection/fault-injection.rst`,
//! which `tools/testing/selftests/iommu/iommufd_fail_nth.c` sweeps over iommufd ioctls).
//!
//! Every fallible allocation on the iommufd, IOMMU-core and memory-manager paths calls
//! [`check`] (or [`should_fail`]) first. A test [`arm`]s a countdown of `n`; the `n`th check
//! on the same thread from then on reports a failure and disarms the countdown, so exactly one
//! allocation fails. [`disarm`] says whether it fired and how many checks were passed.
//!
//! Unarmed, a check is one thread-local read. Only the arming thread is affected: work done
//! on other threads (a fault-delivery thread, a parallel test) never counts.
//!
//! | Crate | Allocation points (the Linux allocation each stands for) |
//! |---|---|
//! | vsva-mem | `FrameAllocator::alloc`: every page-table, structure and process frame |
//! | vsva-mm | each run `pin_pages` pins (GUP's page batch); `account_locked`; ASIDs |
//! | vsva-iommu | a paging or nested domain; a domain ID (`ida_alloc`); a PASID; a device probe; an attachment (`xa_insert`); an SVA binding; a page-request group (`iopf_group_alloc`) |
//! | vsva-iommufd | every object (`iommufd_object_alloc`); a fault or vEVENTQ file; `Pages` (`iopt_alloc_pages`); an area; an IOVA reservation; an access's list entry; a vDEVICE's vIOMMU entry; a dirty bitmap walk; a vEVENT |
//!
//! `crates/vsva-iommufd/tests/fail_nth/` sweeps them over iommufd call sequences.

use std::cell::Cell;

use crate::errno::Errno;

thread_local! {
    /// Checks left until the one that fails; 0 = disarmed.
    static COUNTDOWN: Cell<u64> = const { Cell::new(0) };
    /// Checks passed (including the failing one) since the last [`arm`].
    static PASSED: Cell<u64> = const { Cell::new(0) };
    /// Whether the armed countdown reached its failing check.
    static FIRED: Cell<bool> = const { Cell::new(false) };
}

/// What an armed countdown did, returned by [`disarm`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Allocation points passed since [`arm`], the failed one included.
    pub passed: u64,
    /// Whether an allocation was made to fail.
    pub fired: bool,
}

/// Arms the countdown on this thread: the `n`th allocation point from now fails (`n` = 1
/// fails the very next one). `n` = 0 disarms.
pub fn arm(n: u64) {
    COUNTDOWN.set(n);
    PASSED.set(0);
    FIRED.set(false);
}

/// Disarms the countdown on this thread and reports what it did since [`arm`].
pub fn disarm() -> Outcome {
    COUNTDOWN.set(0);
    Outcome {
        passed: PASSED.get(),
        fired: FIRED.get(),
    }
}

/// Whether a countdown is armed on this thread and has not fired yet.
pub fn armed() -> bool {
    COUNTDOWN.get() != 0
}

/// The allocation point: `true` if this allocation must fail (and disarms), `false`
/// otherwise. Callers that report failure their own way use this; others use [`check`].
#[inline]
pub fn should_fail() -> bool {
    let left = COUNTDOWN.get();
    if left == 0 {
        return false;
    }
    count(left)
}

#[cold]
fn count(left: u64) -> bool {
    PASSED.set(PASSED.get() + 1);
    COUNTDOWN.set(left - 1);
    if left == 1 {
        FIRED.set(true);
        return true;
    }
    false
}

/// The allocation point as a `Result`: `ENOMEM` (what a failed `kmalloc()` gives) if this
/// allocation must fail.
///
/// # Errors
/// `ENOMEM` when the armed countdown reaches this call.
#[inline]
pub fn check() -> Result<(), Errno> {
    if should_fail() {
        Err(Errno::ENOMEM)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nth_check_fails_once_and_disarms() {
        assert_eq!(check(), Ok(()), "unarmed checks pass");
        arm(3);
        assert!(armed());
        assert_eq!(check(), Ok(()));
        assert_eq!(check(), Ok(()));
        assert_eq!(check(), Err(Errno::ENOMEM));
        assert!(!armed());
        assert_eq!(check(), Ok(()), "only one allocation fails");
        assert_eq!(
            disarm(),
            Outcome {
                passed: 3,
                fired: true
            }
        );
    }

    #[test]
    fn a_countdown_that_is_not_reached_reports_the_points_passed() {
        arm(10);
        for _ in 0..4 {
            assert!(!should_fail());
        }
        assert_eq!(
            disarm(),
            Outcome {
                passed: 4,
                fired: false
            }
        );
        assert_eq!(check(), Ok(()));
        arm(0);
        assert!(!armed());
    }

    #[test]
    fn other_threads_are_not_affected() {
        arm(1);
        std::thread::spawn(|| assert_eq!(check(), Ok(())))
            .join()
            .unwrap();
        assert_eq!(check(), Err(Errno::ENOMEM));
        disarm();
    }
}
