// SPDX-License-Identifier: GPL-2.0

//! What the load-based schedulers read of a real server, independent of the kernel
//! (`no_std`, host-tested), and the comparisons they share.
//!
//! C: `srctree/include/net/ip_vs.h` (`ip_vs_dest_conn_overhead`)

#![allow(dead_code, unreachable_pub)]

/// A real server as a scheduler sees it, in the service's list order.
pub trait Dest {
    /// Weight; 0 means quiesced.
    fn weight(&self) -> i32;
    /// Whether the server reached its upper connection threshold.
    fn overloaded(&self) -> bool;
    /// Connections in an active state.
    fn activeconns(&self) -> u32;
    /// All connections, active and inactive.
    fn totalconns(&self) -> u32;

    /// Whether it may take a new connection: positive weight and not overloaded.
    fn usable(&self) -> bool {
        self.weight() > 0 && !self.overloaded()
    }

    /// Upstream's load estimate: an active connection costs 256 times more than an inactive
    /// one, so `256 * active + total` (C `int` arithmetic).
    fn conn_overhead(&self) -> i32 {
        (self.activeconns() as i32)
            .wrapping_shl(8)
            .wrapping_add(self.totalconns() as i32)
    }
}

/// Whether `a` (overhead `a_oh`, weight `a_w`) is more loaded per weight than `b`, that is
/// `a_oh / a_w > b_oh / b_w`, compared by multiplication so that no division (and no
/// rounding) is involved.
pub fn more_loaded(a_oh: i32, a_w: i32, b_oh: i32, b_w: i32) -> bool {
    i64::from(a_oh) * i64::from(b_w) > i64::from(b_oh) * i64::from(a_w)
}

/// The least loaded server per weight under `overhead` (wlc, sed): the first usable server
/// in list order, replaced by every later one that is not overloaded and strictly less loaded
/// per weight. Ties keep the earlier server; a server of weight 0 is never less loaded.
pub fn least_weighted<D: Dest>(dests: &[D], overhead: impl Fn(&D) -> i32) -> Option<usize> {
    let first = dests.iter().position(|d| d.usable())?;
    let mut least = first;
    let mut loh = overhead(&dests[first]);
    for (i, d) in dests.iter().enumerate().skip(first + 1) {
        if d.overloaded() {
            continue;
        }
        let doh = overhead(d);
        if more_loaded(loh, dests[least].weight(), doh, d.weight()) {
            least = i;
            loh = doh;
        }
    }
    Some(least)
}

/// A server for tests: (weight, overloaded, active, total).
#[cfg(test)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TestDest {
    /// Weight.
    pub w: i32,
    /// Overloaded.
    pub over: bool,
    /// Active connections.
    pub act: u32,
    /// All connections.
    pub tot: u32,
}

#[cfg(test)]
impl TestDest {
    /// A server of weight `w` with `act` active and `inact` inactive connections.
    pub fn new(w: i32, act: u32, inact: u32) -> Self {
        Self {
            w,
            over: false,
            act,
            tot: act + inact,
        }
    }
}

#[cfg(test)]
impl Dest for TestDest {
    fn weight(&self) -> i32 {
        self.w
    }
    fn overloaded(&self) -> bool {
        self.over
    }
    fn activeconns(&self) -> u32 {
        self.act
    }
    fn totalconns(&self) -> u32 {
        self.tot
    }
}

/// A small deterministic pseudo-random generator for property tests (xorshift64*).
#[cfg(test)]
pub struct Rng(pub u64);

#[cfg(test)]
impl Rng {
    /// Next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u32) -> u32 {
        self.next_u32() % n
    }

    /// A random list of up to `max` servers with small weights and counters.
    pub fn dests(&mut self, max: u32) -> std::vec::Vec<TestDest> {
        let n = self.below(max) + 1;
        (0..n)
            .map(|_| {
                let (w, over, act) = (self.below(6) as i32, self.below(5) == 0, self.below(8));
                TestDest {
                    w,
                    over,
                    act,
                    tot: act + self.below(8),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overhead_is_upstreams() {
        assert_eq!(TestDest::new(1, 2, 3).conn_overhead(), 2 * 256 + 5);
        assert_eq!(TestDest::new(1, 0, 0).conn_overhead(), 0);
    }

    #[test]
    fn more_loaded_is_exact() {
        // 1/3 vs 2/6: equal, so not more loaded either way.
        assert!(!more_loaded(1, 3, 2, 6));
        assert!(!more_loaded(2, 6, 1, 3));
        assert!(more_loaded(3, 3, 2, 3));
        // Large values do not overflow.
        assert!(more_loaded(i32::MAX, 1, i32::MAX - 1, 1));
    }
}
