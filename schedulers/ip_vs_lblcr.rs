// SPDX-License-Identifier: GPL-2.0

//! Locality-based least-connection scheduling with replication: each destination address
//! has a set of servers; connections go to the set's least loaded member, and the set grows
//! by the service's least loaded server when its members are all unusable or overloaded.
//! A set unchanged for `DEFAULT_EXPIRATION_SECS` (upstream's default of `lblcr_expiration`;
//! the sysctl itself is not offered) loses its most loaded member.
//!
//! The per-service table is shared by the packet path and the expiry timer (lblc's) under one
//! BH spinlock; the timer is shut down when the service drops the scheduler.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_lblcr.c`

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
#[path = "lblcr.rs"]
mod lblcr;
#[path = "server.rs"]
mod server;

use abi::{DestInfo, Packet, Scheduler};
use lblc::{DestKey, Expiry, Sweep};
use server::{is_overloaded, least_loaded, same_addr, time_after};

module_ip_vs_scheduler! {
    type: Lblcr,
    name: "ip_vs_lblcr",
    author: "Rust IPVS developers",
    description: "ipvs locality-based least-connection with replication scheduler",
    license: "GPL",
}

/// A set of servers, newest first: the first `len` elements of `keys` (the rest are spare
/// room, as `KVec` cannot shrink).
struct DestSet {
    keys: KVec<DestKey>,
    len: usize,
    /// Jiffies of the last change.
    lastmod: u64,
}

impl DestSet {
    fn members(&self) -> &[DestKey] {
        self.keys.get(..self.len).unwrap_or(&[])
    }

    /// Adds `key` in front unless it is a member (`ip_vs_dest_set_insert`).
    fn insert(&mut self, key: DestKey, now: u64) {
        if self.members().contains(&key) {
            return;
        }
        if self.len < self.keys.len() {
            self.keys[self.len] = key;
        } else if self.keys.push(key, GFP_ATOMIC).is_err() {
            return;
        }
        self.len += 1;
        self.keys[..self.len].rotate_right(1);
        self.lastmod = now;
    }

    /// Removes member `k` (`ip_vs_dest_set_erase`).
    fn erase(&mut self, k: usize, now: u64) {
        if k < self.len {
            self.keys[k..self.len].rotate_left(1);
            self.len -= 1;
            self.lastmod = now;
        }
    }
}

/// A destination address and its server set.
struct Entry {
    addr: [u8; 16],
    set: DestSet,
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

    /// Creates the entry of `addr` with the set `{dest}` (`ip_vs_lblcr_new`), or adds `dest`
    /// to the existing one; silently does nothing when the table is full or memory is short.
    fn insert(&mut self, af: u16, addr: &[u8; 16], dest: DestKey, now: u64) {
        if let Some(e) = self.find(af, addr) {
            e.set.insert(dest, now);
            return;
        }
        if self.entries >= lblc::MAX_ENTRIES {
            return;
        }
        let Some(bucket) = self.buckets.get_mut(lblc::hashkey(af, addr)) else {
            return;
        };
        let Ok(keys) = KVec::from_elem(dest, 1, GFP_ATOMIC) else {
            return;
        };
        let entry = Entry {
            addr: *addr,
            set: DestSet {
                keys,
                len: 1,
                lastmod: now,
            },
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

    /// One tick of the periodic check (`ip_vs_lblcr_check_expire`).
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
    /// Idle time after which the full check drops an entry, and after which a set of
    /// several servers loses one, in jiffies.
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
struct Lblcr {
    timer: Pin<KBox<Timer<Shared>>>,
}

#[vtable]
impl Scheduler for Lblcr {
    const NAME: &'static CStr = kernel::c_str!("lblcr");

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
                "ip_vs_lblcr_table"
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
        let shared = self.timer.data();
        let mut t = shared.table.lock();
        if let Some(e) = t.find(pkt.af, &pkt.daddr) {
            e.lastuse = now;
            let min = lblcr::set_min(e.set.members(), dests);
            // A set of several servers unchanged for long loses its most loaded one.
            if e.set.len > 1
                && time_after(now, e.set.lastmod.wrapping_add(shared.expiration as u64))
            {
                if let Some(k) = lblcr::set_max(e.set.members(), dests) {
                    e.set.erase(k, now);
                }
            }
            if let Some(i) = min {
                if !is_overloaded(dests.get(i)?, dests) {
                    return Some(i);
                }
            }
            let i = least_loaded(dests)?;
            e.set.insert(DestKey::of(dests.get(i)?), now);
            return Some(i);
        }
        let i = least_loaded(dests)?;
        t.insert(pkt.af, &pkt.daddr, DestKey::of(dests.get(i)?), now);
        Some(i)
    }
}
