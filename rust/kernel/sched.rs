// SPDX-License-Identifier: GPL-2.0

//! Yielding the CPU from long-running process-context work.
//!
//! C header: [`include/linux/sched.h`](srctree/include/linux/sched.h)

use crate::bindings;

/// Lets the scheduler run another task if one is waiting (`cond_resched`): to be called every
/// so often in long walks of tables, so that no CPU is held for long.
///
/// Process context only, outside spinlocks and RCU read-side critical sections (for those
/// see [`crate::sync::rcu::Guard::cond_resched`]); the C function's `might_sleep` check reports
/// a call from atomic context.
#[inline]
pub fn cond_resched() {
    // SAFETY: An FFI call with no memory-safety requirements; the context rule above is
    // checked by the kernel itself.
    unsafe { bindings::cond_resched() };
}
