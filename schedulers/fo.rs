// SPDX-License-Identifier: GPL-2.0

//! Weighted-failover selection, independent of the kernel (`no_std`, host-tested): the first
//! server in list order with the highest weight that is not overloaded.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_fo.c`

#![allow(dead_code, unreachable_pub)]

use crate::dest::Dest;

/// Index of the server for a new connection.
pub fn pick<D: Dest>(dests: &[D]) -> Option<usize> {
    let mut best: Option<(usize, i32)> = None;
    for (i, d) in dests.iter().enumerate() {
        if d.overloaded() {
            continue;
        }
        let w = d.weight();
        if w > best.map_or(0, |(_, hw)| hw) {
            best = Some((i, w));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dest::{Rng, TestDest as D};

    #[test]
    fn highest_weight_first() {
        let d = [D::new(2, 9, 9), D::new(5, 0, 0), D::new(5, 0, 0)];
        assert_eq!(pick(&d), Some(1));
        assert_eq!(pick(&[D::new(0, 0, 0)]), None);
    }

    #[test]
    fn property_first_of_highest_usable_weight() {
        let mut rng = Rng(0xf0);
        for _ in 0..5000 {
            let d = rng.dests(8);
            let hw = d.iter().filter(|x| x.usable()).map(|x| x.w).max();
            assert_eq!(
                pick(&d),
                hw.and_then(|hw| d.iter().position(|x| x.usable() && x.w == hw))
            );
        }
    }
}
