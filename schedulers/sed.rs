// SPDX-License-Identifier: GPL-2.0

//! Shortest-expected-delay selection, independent of the kernel (`no_std`, host-tested): the
//! server with the smallest `(active + 1) / weight`, compared by multiplication; inactive
//! connections do not count; the first in list order on ties.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_sed.c`

#![allow(dead_code, unreachable_pub)]

use crate::dest::{least_weighted, Dest};

/// The expected delay's numerator: the active connections plus the new one.
pub fn overhead<D: Dest>(d: &D) -> i32 {
    (d.activeconns() as i32).wrapping_add(1)
}

/// Index of the server for a new connection.
pub fn pick<D: Dest>(dests: &[D]) -> Option<usize> {
    least_weighted(dests, overhead)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dest::{Rng, TestDest as D};

    #[test]
    fn expected_delay() {
        // (1+1)/1 vs (2+1)/4: the second; inactive connections do not matter.
        let d = [D::new(1, 1, 0), D::new(4, 2, 50)];
        assert_eq!(pick(&d), Some(1));
        // 1/1 vs 2/2: equal, the first.
        let d = [D::new(1, 0, 0), D::new(2, 1, 0)];
        assert_eq!(pick(&d), Some(0));
    }

    #[test]
    fn property_smallest_expected_delay() {
        let mut rng = Rng(0x5ed);
        for _ in 0..5000 {
            let d = rng.dests(8);
            if let Some(i) = pick(&d) {
                for x in d.iter().filter(|x| x.usable()) {
                    assert!(
                        i64::from(overhead(&d[i])) * i64::from(x.w)
                            <= i64::from(overhead(x)) * i64::from(d[i].w)
                    );
                }
            } else {
                assert!(d.iter().all(|x| !x.usable()));
            }
        }
    }
}
