// SPDX-License-Identifier: GPL-2.0

//! Round-robin selection, independent of the kernel (`no_std`, host- and KUnit-tested).
//!
//! The round continues after the server chosen last, in the service's list order, skipping
//! servers that may not take connections; removing the last chosen server moves the cursor
//! to its predecessor so the server that followed it comes next.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_rr.c`

#![allow(dead_code, unreachable_pub)]

/// What round robin needs to know of a real server.
pub trait Candidate {
    /// Stable identifier (never 0).
    fn id(&self) -> u64;
    /// Whether it may take a new connection.
    fn usable(&self) -> bool;
}

/// Index of the next server after the one with id `last` (0: start of the list).
pub fn pick<C: Candidate>(dests: &[C], last: u64) -> Option<usize> {
    let n = dests.len();
    let start = if last == 0 {
        0
    } else {
        dests.iter().position(|d| d.id() == last).map_or(0, |i| i + 1)
    };
    (0..n).map(|k| (start + k) % n).find(|&i| dests[i].usable())
}

/// The cursor after `dests[index]` is removed, given the cursor `last`.
pub fn after_removal<C: Candidate>(dests: &[C], index: usize, last: u64) -> u64 {
    if dests.get(index).map(|d| d.id()) != Some(last) {
        return last;
    }
    index
        .checked_sub(1)
        .and_then(|i| dests.get(i))
        .map_or(0, |d| d.id())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct D(u64, bool);
    impl Candidate for D {
        fn id(&self) -> u64 {
            self.0
        }
        fn usable(&self) -> bool {
            self.1
        }
    }

    fn run(dests: &[D], n: usize) -> Vec<u64> {
        let mut last = 0;
        let mut out = Vec::new();
        for _ in 0..n {
            let i = pick(dests, last).unwrap();
            last = dests[i].0;
            out.push(last);
        }
        out
    }

    #[test]
    fn cycles_in_order() {
        let d = [D(3, true), D(2, true), D(1, true)];
        assert_eq!(run(&d, 7), [3, 2, 1, 3, 2, 1, 3]);
    }

    #[test]
    fn skips_unusable() {
        let d = [D(3, true), D(2, false), D(1, true)];
        assert_eq!(run(&d, 4), [3, 1, 3, 1]);
        assert_eq!(pick(&[D(1, false)], 0), None);
        assert_eq!(pick::<D>(&[], 0), None);
    }

    #[test]
    fn removal_continues_with_follower() {
        let d = [D(3, true), D(2, true), D(1, true)];
        // Last chose 2; removing it continues with 1.
        let last = after_removal(&d, 1, 2);
        assert_eq!(last, 3);
        let rest = [D(3, true), D(1, true)];
        assert_eq!(rest[pick(&rest, last).unwrap()].0, 1);
        // Removing the head while it is the cursor restarts at the new head.
        assert_eq!(after_removal(&d, 0, 3), 0);
        // Removing another server keeps the cursor.
        assert_eq!(after_removal(&d, 2, 3), 3);
    }

    #[test]
    fn even_spread_property() {
        for n in 1..20u64 {
            let d: Vec<D> = (1..=n).map(|i| D(i, true)).collect();
            let picks = run(&d, (n * 10) as usize);
            for i in 1..=n {
                assert_eq!(picks.iter().filter(|&&p| p == i).count(), 10);
            }
        }
    }
}
