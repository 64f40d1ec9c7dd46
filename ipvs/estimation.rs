// SPDX-License-Identifier: GPL-2.0

//! The estimation work of a namespace: every two seconds, a sample of the director's
//! counters and of every service's and real server's, for their rates (`est.rs`).
//!
//! The walk runs in process context, from the system's unbound work queue (a timer only
//! queues it; the scheduler picks the CPU, as for upstream's kthreads), in chunks: each chunk of services is read in one RCU read section, and between two
//! chunks the walk leaves the section and lets other tasks run (`cond_resched`). So the
//! number of services costs neither a softirq stall on the forwarding CPU nor a long RCU
//! read section, as with upstream's estimation kthreads. Each walk is a numbered pass; a set
//! of counters is sampled at most once per pass ([`crate::est::Estimator::claim`]), so a
//! walk that starts over because the service table was resized under it samples none twice.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_est.c` (`ip_vs_estimation_kthread`,
//! `ip_vs_tick_estimation`)

use crate::{ctl, service::ServiceTable, stats::Stats};
use core::sync::atomic::{AtomicU32, Ordering::Relaxed};
use kernel::{
    impl_has_work, new_work,
    prelude::*,
    sched::cond_resched,
    sync::{rcu, Arc},
    sysctl::SysctlValues,
    workqueue::{Work, WorkItem},
};

/// Counter sets sampled in one RCU read section: about a tenth of a millisecond of work on
/// hardware.
const CHUNK: usize = 512;

/// What the estimation of one namespace walks.
#[pin_data]
pub(crate) struct Estimation {
    /// `run_estimation`: 0 stops sampling (the rates keep their last values).
    sysctl: Arc<SysctlValues>,
    /// The director's counters.
    stats: Arc<Stats>,
    table: Arc<ServiceTable>,
    /// The number of the last pass (0 before the first; never 0 afterwards).
    pass: AtomicU32,
    #[pin]
    work: Work<Estimation>,
}

impl_has_work! {
    impl HasWork<Self> for Estimation { self.work }
}

impl WorkItem for Estimation {
    type Pointer = Arc<Estimation>;

    fn run(this: Arc<Estimation>) {
        this.walk();
    }
}

impl Estimation {
    pub(crate) fn new(sysctl: Arc<SysctlValues>, stats: Arc<Stats>, table: Arc<ServiceTable>) -> impl PinInit<Self> {
        pin_init!(Self {
            sysctl,
            stats,
            table,
            pass: AtomicU32::new(0),
            work <- new_work!("ipvs_estimation"),
        })
    }

    /// One pass: samples every set of counters once. Process context (the work item).
    fn walk(&self) {
        if self.sysctl.get(ctl::SYSCTL_RUN_ESTIMATION) == 0 {
            return;
        }
        // The work item never runs twice at once: the pass number has one writer.
        let pass = match self.pass.load(Relaxed).wrapping_add(1) {
            0 => 1,
            p => p,
        };
        self.pass.store(pass, Relaxed);
        self.stats.estimate(pass);
        // The next bucket to walk, of a table of `buckets` buckets.
        let mut next = 0usize;
        let mut buckets = None;
        loop {
            let g = rcu::read_lock();
            let Some(t) = self.table.get(&g) else { return };
            if buckets != Some(t.buckets()) {
                // Resized since the last chunk (or first chunk): the services moved between
                // buckets, so start over; those already sampled are skipped.
                if buckets.is_some() {
                    next = 0;
                }
                buckets = Some(t.buckets());
            }
            let mut done = 0usize;
            while done < CHUNK {
                // Most buckets of a large table are empty: skipped in a tight loop.
                let Some((b, services)) = t.next_bucket(next) else { return };
                for svc in services {
                    svc.stats.estimate(pass);
                    done = done.saturating_add(1);
                    if let Some(l) = svc.dests.get(&g) {
                        for d in l.dests.iter() {
                            d.stats.estimate(pass);
                        }
                        done = done.saturating_add(l.dests.len());
                    }
                }
                next = b.saturating_add(1);
            }
            drop(g);
            cond_resched();
        }
    }
}

impl crate::work_timer::Periodic for Estimation {
    fn work(&self) -> &Work<Self> {
        &self.work
    }
}
