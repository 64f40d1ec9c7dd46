// SPDX-License-Identifier: GPL-2.0

//! Locality-based least-connection scheduling: connections to one destination address go to
//! the server chosen first for it while that server is usable and not overloaded; otherwise
//! to the weighted least-connection server, which is then remembered.
//!
//! The per-service table (1024 buckets keyed by destination address) is shared by the packet
//! path and the expiry timer under one BH spinlock; the timer is shut down when the service
//! drops the scheduler. Entries expire after `DEFAULT_EXPIRATION_SECS` without use (upstream's
//! default of `lblc_expiration`; the sysctl itself is not offered).
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_lblc.c`

use kernel::{
    new_spinlock_bh,
    prelude::*,
    sync::SpinLockBh,
    time::msecs_to_jiffies,
    timer::{jiffies_64, Timer, TimerCallback},
};

#[path = "../ipvs/abi.rs"]
#[macro_use]
mod abi;
#[path = "dest_info.rs"]
mod dest_info;
#[path = "lblc.rs"]
mod lblc;
#[path = "server.rs"]
mod server;

use abi::{DestInfo, Packet, Scheduler};
use lblc::{DestKey, Expiry, Sweep};
use server::{least_loaded, same_addr};

module_ip_vs_scheduler! {
    type: Lblc,
    name: "ip_vs_lblc",
    author: "Rust IPVS developers",
    description: "ipvs locality-based least-connection scheduler",
    license: "GPL",
}

/// A destination address and the server chosen for it.
struct Entry {
    addr: [u8; 16],
    dest: DestKey,
    /// Jiffies of the last use.
    lastuse: u64,
}

/// The table; empty slots of a bucket are reused.
struct Table {
    buckets: KVec<KVec<Option<Entry>>>,
    entries: usize,
    expiry: Expiry,
}

impl Table {
    fn find(&mut self, af: u16, addr: &[u8; 16]) -> Option<&mut Entry> {
        self.buckets
            .get_mut(lblc::hashkey(af, addr))?
            .iter_mut()
            .flatten()
            .find(|e| same_addr(af, &e.addr, addr))
    }

    /// Remembers `dest` for `addr` (`ip_vs_lblc_new`); silently does nothing when the table
    /// is full or memory is short, as upstream.
    fn insert(&mut self, af: u16, addr: &[u8; 16], dest: DestKey, now: u64) {
        if let Some(e) = self.find(af, addr) {
            if e.dest != dest {
                // Upstream replaces the entry; the new one is just as fresh.
                e.dest = dest;
                e.lastuse = now;
            }
            return;
        }
        if self.entries >= lblc::MAX_ENTRIES {
            return;
        }
        let Some(bucket) = self.buckets.get_mut(lblc::hashkey(af, addr)) else {
            return;
        };
        let entry = Entry {
            addr: *addr,
            dest,
            lastuse: now,
        };
        match bucket.iter_mut().find(|e| e.is_none()) {
            Some(slot) => *slot = Some(entry),
            None => {
                if bucket.push(Some(entry), GFP_ATOMIC).is_err() {
                    return;
                }
            }
        }
        self.entries += 1;
    }

    /// One tick of the periodic check (`ip_vs_lblc_check_expire`).
    fn check_expire(&mut self, now: u64, expiration: i64, entry_timeout: i64) {
        let Self {
            buckets,
            entries,
            expiry,
        } = self;
        expiry.tick(*entries, |b, sweep| {
            let timeout = match sweep {
                Sweep::Full => expiration,
                Sweep::Partial { .. } => entry_timeout,
            };
            let mut dropped = 0;
            for slot in buckets.get_mut(b).into_iter().flat_map(|v| v.iter_mut()) {
                if slot.as_ref().is_some_and(|e| lblc::stale(now, e.lastuse, timeout)) {
                    *slot = None;
                    dropped += 1;
                }
            }
            *entries -= dropped;
            dropped
        });
    }
}

/// What the timer works on.
struct Shared {
    table: Pin<KBox<SpinLockBh<Table>>>,
    /// `CHECK_EXPIRE_INTERVAL` in jiffies.
    interval: u64,
    /// Idle time after which the full check drops an entry, in jiffies.
    expiration: i64,
    /// Idle time after which a partial check may drop an entry, in jiffies.
    entry_timeout: i64,
}

impl TimerCallback for Shared {
    fn run(timer: &Timer<Self>) {
        let s = timer.data();
        s.table
            .lock()
            .check_expire(jiffies_64(), s.expiration, s.entry_timeout);
        timer.schedule_after(s.interval);
    }
}

/// The scheduler state of one service.
struct Lblc {
    timer: Pin<KBox<Timer<Shared>>>,
}

#[vtable]
impl Scheduler for Lblc {
    const NAME: &'static CStr = kernel::c_str!("lblc");

    fn new(_dests: &[&DestInfo]) -> Result<Self> {
        let mut buckets = KVec::with_capacity(lblc::TAB_SIZE, GFP_KERNEL)?;
        for _ in 0..lblc::TAB_SIZE {
            buckets.push(KVec::new(), GFP_KERNEL)?;
        }
        let table = KBox::pin_init(
            new_spinlock_bh!(
                Table {
                    buckets,
                    entries: 0,
                    expiry: Expiry::new(),
                },
                "ip_vs_lblc_table"
            ),
            GFP_KERNEL,
        )?;
        let hz = msecs_to_jiffies(1000) as u64;
        let timer = KBox::pin_init(
            Timer::new(Shared {
                table,
                interval: lblc::CHECK_EXPIRE_INTERVAL_SECS as u64 * hz,
                expiration: lblc::DEFAULT_EXPIRATION_SECS as i64 * hz as i64,
                entry_timeout: lblc::ENTRY_TIMEOUT_SECS as i64 * hz as i64,
            }),
            GFP_KERNEL,
        )?;
        timer.schedule_after(timer.data().interval);
        Ok(Self { timer })
    }

    fn schedule(&self, dests: &[&DestInfo], pkt: &Packet) -> Option<usize> {
        let now = jiffies_64();
        let mut t = self.timer.data().table.lock();
        if let Some(e) = t.find(pkt.af, &pkt.daddr) {
            e.lastuse = now;
            if let Some(i) = lblc::cached(dests, &e.dest) {
                return Some(i);
            }
        }
        let i = least_loaded(dests)?;
        t.insert(pkt.af, &pkt.daddr, DestKey::of(dests.get(i)?), now);
        Some(i)
    }
}
