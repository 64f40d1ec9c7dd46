// SPDX-License-Identifier: GPL-2.0

//! Defense against overload: the `drop_entry`, `drop_packet` and `secure_tcp` strategies,
//! switched on automatically when available memory falls below `amemthresh` pages.
//!
//! Each knob is a mode: 0 never, 1 automatic (becomes 2 while memory is short and back to
//! 1 once it is not), 3 always. The levels are recomputed every second by the namespace's
//! slow timer and whenever one of the three is written, as upstream does.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_ctl.c` (`update_defense_level`, `defense_work`),
//! `srctree/include/net/ip_vs.h` (`ip_vs_todrop`)

use crate::{
    conn::ConnTable,
    ctl::{
        SYSCTL_AMEMTHRESH, SYSCTL_AM_DROPRATE, SYSCTL_DROP_ENTRY, SYSCTL_DROP_PACKET,
        SYSCTL_SECURE_TCP,
    },
};
use core::sync::atomic::{AtomicBool, AtomicI32, Ordering::Relaxed};
use kernel::{
    impl_has_work, meminfo, new_spinlock_bh, new_work,
    prelude::*,
    sync::{Arc, SpinLockBh},
    sysctl::SysctlValues,
    timer::jiffies_64,
    workqueue::{Work, WorkItem},
};

/// The defense state of one namespace.
#[pin_data]
pub(crate) struct Defense {
    /// Serialises updates; holds the `secure_tcp` mode seen by the previous update.
    #[pin]
    update_lock: SpinLockBh<i32>,
    /// One new connection in `drop_rate` is dropped; 0: none.
    drop_rate: AtomicI32,
    drop_counter: AtomicI32,
    /// Whether the slow timer drops random connection entries.
    drop_entries: AtomicBool,
    /// Whether TCP follows the state table meant for SYN floods.
    secure_tcp: AtomicBool,
    values: Arc<SysctlValues>,
    conns: Arc<ConnTable>,
    /// The periodic update, in process context: `si_meminfo` takes locks that are not
    /// softirq-safe, so the timer only queues it.
    #[pin]
    work: Work<Defense>,
}

impl_has_work! {
    impl HasWork<Self> for Defense { self.work }
}

impl WorkItem for Defense {
    type Pointer = Arc<Defense>;

    fn run(this: Arc<Defense>) {
        this.update();
        if this.drop_entries() {
            this.conns.random_dropentry(jiffies_64());
        }
    }
}

/// Free and buffer memory, in pages (upstream counts the same, in an `int`).
fn available_pages() -> i32 {
    meminfo::free_and_buffer_pages() as i32
}

impl Defense {
    /// No strategy active.
    pub(crate) fn new(values: Arc<SysctlValues>, conns: Arc<ConnTable>) -> impl PinInit<Self> {
        pin_init!(Self {
            update_lock <- new_spinlock_bh!(0, "ipvs_defense"),
            drop_rate: AtomicI32::new(0),
            drop_counter: AtomicI32::new(0),
            drop_entries: AtomicBool::new(false),
            secure_tcp: AtomicBool::new(false),
            values,
            conns,
            work <- new_work!("ipvs_defense_work"),
        })
    }

    /// Recomputes the levels from available memory and the modes (`update_defense_level`);
    /// an automatic mode that triggers or calms down is written back (1 <-> 2).
    /// Process context only.
    pub(crate) fn update(&self) {
        let v = &*self.values;
        let avail = available_pages();
        let thresh = v.get(SYSCTL_AMEMTHRESH).max(0);
        let nomem = avail < thresh;
        let mut old_secure = self.update_lock.lock();

        let drop_entries = match v.get(SYSCTL_DROP_ENTRY) {
            1 if nomem => {
                v.set(SYSCTL_DROP_ENTRY, 2);
                true
            }
            2 if !nomem => {
                v.set(SYSCTL_DROP_ENTRY, 1);
                false
            }
            2 | 3 => true,
            _ => false,
        };
        self.drop_entries.store(drop_entries, Relaxed);

        // `thresh > avail >= 0` when short of memory, so the division is defined.
        let short_rate = || thresh / (thresh - avail).max(1);
        match v.get(SYSCTL_DROP_PACKET) {
            m @ (1 | 2) if nomem => {
                let r = short_rate();
                self.drop_counter.store(r, Relaxed);
                self.drop_rate.store(r, Relaxed);
                if m == 1 {
                    v.set(SYSCTL_DROP_PACKET, 2);
                }
            }
            m @ (1 | 2) => {
                self.drop_rate.store(0, Relaxed);
                if m == 2 {
                    v.set(SYSCTL_DROP_PACKET, 1);
                }
            }
            3 => self.drop_rate.store(v.get(SYSCTL_AM_DROPRATE), Relaxed),
            _ => self.drop_rate.store(0, Relaxed),
        }

        let was_secure = *old_secure >= 2;
        let mode = v.get(SYSCTL_SECURE_TCP);
        let change = match mode {
            1 if nomem => {
                v.set(SYSCTL_SECURE_TCP, 2);
                !was_secure
            }
            2 if !nomem => {
                v.set(SYSCTL_SECURE_TCP, 1);
                was_secure
            }
            2 | 3 => !was_secure,
            _ => was_secure,
        };
        let mode = v.get(SYSCTL_SECURE_TCP);
        *old_secure = mode;
        if change {
            self.secure_tcp.store(mode > 1, Relaxed);
        }
    }

    /// Whether a new connection is to be dropped (`ip_vs_todrop`): one in `drop_rate`.
    pub(crate) fn todrop(&self) -> bool {
        let rate = self.drop_rate.load(Relaxed);
        if rate == 0 {
            return false;
        }
        // `am_droprate` is any `int` a namespace's owner writes: count down with wrapping,
        // as upstream's `--drop_counter` on an `int` does (from `i32::MIN` it wraps to
        // `i32::MAX`, and a negative rate drops no packet until the counter comes round).
        if self.drop_counter.fetch_sub(1, Relaxed).wrapping_sub(1) > 0 {
            return false;
        }
        self.drop_counter.store(rate, Relaxed);
        true
    }

    /// Whether the slow timer is to drop random connection entries.
    pub(crate) fn drop_entries(&self) -> bool {
        self.drop_entries.load(Relaxed)
    }

    /// Whether TCP connections follow the SYN-flood state table.
    pub(crate) fn secure_tcp(&self) -> bool {
        self.secure_tcp.load(Relaxed)
    }
}

impl crate::work_timer::Periodic for Defense {
    fn work(&self) -> &Work<Self> {
        &self.work
    }
}
