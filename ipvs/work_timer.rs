// SPDX-License-Identifier: GPL-2.0

//! Periodic work of a namespace: a timer that queues a work item every period (the work
//! needs process context: it sleeps, or is long and yields), and the guard that waits for
//! the last one when the namespace goes. The defense update (`defense.rs`) and the rate
//! estimation (`estimation.rs`) run so, as upstream's `defense_work` and estimation
//! kthreads run in process context.

use kernel::{
    sync::Arc,
    timer::{Timer, TimerCallback},
    workqueue::{HasWork, Queue, Work, WorkItem},
};

/// A work item run every period.
pub(crate) trait Periodic: WorkItem<Pointer = Arc<Self>> + HasWork<Self> + Send + Sync + Sized + 'static {
    /// Its work item.
    fn work(&self) -> &Work<Self>;
}

/// The timer's data: every `period` jiffies it queues `item` on `queue` (already queued:
/// that run will do).
pub(crate) struct WorkTimer<T: Periodic> {
    pub(crate) item: Arc<T>,
    pub(crate) period: u64,
    pub(crate) queue: fn() -> &'static Queue,
}

impl<T: Periodic> TimerCallback for WorkTimer<T> {
    fn run(timer: &Timer<Self>) {
        let d = timer.data();
        let _ = (d.queue)().enqueue(d.item.clone());
        timer.schedule_after(d.period);
    }
}

/// Waits, when dropped, for a queued or running run of the work; dropped after the timer
/// that queues it, so that no work of the namespace outlives it (or the module).
pub(crate) struct WorkFlush<T: Periodic>(pub(crate) Arc<T>);

impl<T: Periodic> Drop for WorkFlush<T> {
    fn drop(&mut self) {
        // Drops happen in process context, where waiting is allowed.
        self.0.work().flush();
    }
}
