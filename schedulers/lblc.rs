// SPDX-License-Identifier: GPL-2.0

//! Locality-based least-connection scheduling, independent of the kernel (`no_std`,
//! host-tested); the expiry of table entries is shared with lblcr.
//!
//! Each service keeps a table from destination addresses to the server last chosen for
//! them. A connection to a known address goes to that server unless it is gone, quiesced or
//! overloaded (more active connections than its weight while another server is below half
//! of its weight); otherwise the weighted least-connection server is chosen and remembered.
//!
//! A timer ticks every minute. Every 30th tick drops the entries unused for the expiration
//! time (a day); in between, when the table holds more than 16 entries per bucket, entries
//! unused for six minutes are dropped until enough are gone.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_lblc.c`

#![allow(dead_code, unreachable_pub)]

use crate::server::{addr_fold, hash_32, is_overloaded, same_server, time_before, Server};

/// `CONFIG_IP_VS_LBLC_TAB_BITS` (and lblcr's).
pub const TAB_BITS: u32 = 10;
/// Buckets of the table.
pub const TAB_SIZE: usize = 1 << TAB_BITS;
/// Entries above which the periodic check collects entries unused for [`ENTRY_TIMEOUT_SECS`].
pub const MAX_SIZE: usize = TAB_SIZE * 16;
/// Entries at which no new entry is created.
pub const MAX_ENTRIES: usize = MAX_SIZE * 3 / 2;
/// Seconds between checks.
pub const CHECK_EXPIRE_INTERVAL_SECS: u32 = 60;
/// Idle seconds after which an entry may be collected when the table is too big.
pub const ENTRY_TIMEOUT_SECS: u32 = 6 * 60;
/// Default idle seconds after which the full check drops an entry (`lblc_expiration`).
pub const DEFAULT_EXPIRATION_SECS: u32 = 24 * 60 * 60;
/// Checks per full check.
const COUNT_FOR_FULL_EXPIRATION: u32 = 30;

/// The bucket of a destination address.
pub fn hashkey(af: u16, addr: &[u8; 16]) -> usize {
    hash_32(addr_fold(af, addr), TAB_BITS) as usize
}

/// A real server as a table entry names it: by address and port, so that a server removed
/// and added back is the same one again, as upstream's trash makes it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DestKey {
    /// Address family.
    pub af: u16,
    /// Port, network byte order.
    pub port: [u8; 2],
    /// Address.
    pub addr: [u8; 16],
}

impl DestKey {
    /// The key of `d`.
    pub fn of<S: Server>(d: &S) -> Self {
        Self {
            af: d.af(),
            port: d.port(),
            addr: d.addr(),
        }
    }

    /// Where the server is in `dests`, if it is still part of the service.
    pub fn find<S: Server>(&self, dests: &[S]) -> Option<usize> {
        dests
            .iter()
            .position(|d| same_server(d, self.af, &self.addr, self.port))
            .filter(|&i| dests[i].available())
    }
}

/// Whether the remembered server `key` may take the connection (lblc's rule), and where it
/// is in `dests`.
pub fn cached<S: Server>(dests: &[S], key: &DestKey) -> Option<usize> {
    let i = key.find(dests)?;
    let d = &dests[i];
    (d.weight() > 0 && !is_overloaded(d, dests)).then_some(i)
}

/// Whether an entry last used at `lastuse` is stale at `now` after `timeout` jiffies
/// (`!time_before(now, lastuse + timeout)`; the timeout may be negative, as the sysctl).
pub fn stale(now: u64, lastuse: u64, timeout: i64) -> bool {
    !time_before(now, lastuse.wrapping_add(timeout as u64))
}

/// Which entries a sweep drops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sweep {
    /// Those idle for the expiration time, in every bucket.
    Full,
    /// Those idle for [`ENTRY_TIMEOUT_SECS`], bucket after bucket until `goal` are gone.
    Partial {
        /// Entries to drop.
        goal: i64,
    },
}

/// The periodic check's position and tick count (`rover`, `counter`).
pub struct Expiry {
    rover: usize,
    counter: u32,
}

impl Default for Expiry {
    fn default() -> Self {
        Self::new()
    }
}

impl Expiry {
    /// State of a new table.
    pub const fn new() -> Self {
        Self {
            rover: 0,
            counter: 1,
        }
    }

    /// One tick of the periodic check of a table with `entries` entries: calls
    /// `drop_stale(bucket, sweep)` for the buckets to sweep, which returns how many entries it
    /// dropped.
    pub fn tick(&mut self, entries: usize, mut drop_stale: impl FnMut(usize, Sweep) -> usize) {
        let mut goal = if self.counter % COUNT_FOR_FULL_EXPIRATION == 0 {
            self.counter = 1;
            None
        } else if entries <= MAX_SIZE {
            self.counter += 1;
            return;
        } else {
            Some((((entries - MAX_SIZE) * 4 / 3) as i64).min(MAX_SIZE as i64 / 2))
        };
        let mut j = self.rover;
        for _ in 0..TAB_SIZE {
            j = (j + 1) & (TAB_SIZE - 1);
            match goal.as_mut() {
                None => {
                    drop_stale(j, Sweep::Full);
                }
                Some(g) => {
                    *g -= drop_stale(j, Sweep::Partial { goal: *g }) as i64;
                    if *g <= 0 {
                        break;
                    }
                }
            }
        }
        self.rover = j;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::tests::D;

    #[test]
    fn bucket_of_address() {
        let a = [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(hashkey(2, &a), 550);
        assert!(hashkey(2, &[255; 16]) < TAB_SIZE);
    }

    #[test]
    fn cached_server_rules() {
        let mut d = vec![D::new(1, 2), D::new(2, 2)];
        let k = DestKey::of(&d[0]);
        assert_eq!(cached(&d, &k), Some(0));
        // More active connections than its weight, while another is below half its own.
        d[0].active = 3;
        assert_eq!(cached(&d, &k), None);
        d[1].active = 1;
        assert_eq!(cached(&d, &k), Some(0));
        d[0].weight = 0;
        assert_eq!(cached(&d, &k), None);
        d[0].weight = 5;
        d[0].available = false;
        assert_eq!(cached(&d, &k), None);
        // Gone from the list, then added back (a new object with the same address and port).
        assert_eq!(cached(&d[1..], &k), None);
        let mut back = D::new(1, 1);
        back.id = 77;
        assert_eq!(cached(&[back], &k), Some(0));
    }

    #[test]
    fn staleness() {
        assert!(!stale(100, 50, 60));
        assert!(stale(110, 50, 60));
        assert!(stale(111, 50, 60));
        assert!(stale(0, 5, -10));
        // Across the jiffies wrap.
        assert!(!stale(5, u64::MAX - 5, 60));
        assert!(stale(100, u64::MAX - 5, 60));
    }

    #[test]
    fn full_check_every_thirtieth_tick() {
        let mut e = Expiry::new();
        let mut sweeps = Vec::new();
        for tick in 1..=61 {
            e.tick(10, |b, s| {
                sweeps.push((tick, b, s));
                0
            });
        }
        let full: Vec<u32> = sweeps
            .iter()
            .filter(|s| s.1 == 1)
            .map(|s| s.0)
            .collect();
        assert_eq!(full, [30, 60]);
        assert_eq!(sweeps.len(), 2 * TAB_SIZE);
        assert!(sweeps.iter().all(|s| s.2 == Sweep::Full));
    }

    #[test]
    fn partial_check_when_too_big() {
        let mut e = Expiry::new();
        let mut seen = Vec::new();
        // 3000 over the limit: a goal of 4000 (under the cap of MAX_SIZE / 2).
        e.tick(MAX_SIZE + 3000, |b, s| {
            seen.push((b, s));
            if b <= 4 {
                1000
            } else {
                0
            }
        });
        assert_eq!(seen.len(), 4);
        assert_eq!(seen[0], (1, Sweep::Partial { goal: 4000 }));
        assert_eq!(seen[3], (4, Sweep::Partial { goal: 1000 }));
        // The next sweep continues after the last bucket swept; the tick count is unchanged.
        seen.clear();
        e.tick(MAX_SIZE + 1, |b, s| {
            seen.push((b, s));
            1
        });
        assert_eq!(seen, [(5, Sweep::Partial { goal: 1 })]);
        // Goals are capped.
        seen.clear();
        e.tick(MAX_SIZE * 3, |b, s| {
            seen.push((b, s));
            MAX_SIZE
        });
        assert_eq!(seen, [(6, Sweep::Partial { goal: MAX_SIZE as i64 / 2 })]);
    }
}
