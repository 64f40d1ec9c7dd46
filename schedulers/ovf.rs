// SPDX-License-Identifier: GPL-2.0

//! Weighted-overflow selection, independent of the kernel (`no_std`, host-tested): the first
//! server in list order with the highest weight among those whose active connections do not
//! exceed their weight; overloaded and weight-0 servers are skipped.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_ovf.c`

#![allow(dead_code, unreachable_pub)]

use crate::dest::Dest;

/// Index of the server for a new connection.
pub fn pick<D: Dest>(dests: &[D]) -> Option<usize> {
    let mut best: Option<(usize, i32)> = None;
    for (i, d) in dests.iter().enumerate() {
        let w = d.weight();
        // Upstream compares the counter as an `int`.
        if d.overloaded() || d.activeconns() as i32 > w || w == 0 {
            continue;
        }
        if best.map_or(true, |(_, hw)| w > hw) {
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
    fn overflows_in_weight_order() {
        let d = [D::new(2, 0, 0), D::new(4, 4, 0), D::new(4, 1, 0)];
        // Active equal to the weight is still fine.
        assert_eq!(pick(&d), Some(1));
        let d = [D::new(2, 0, 0), D::new(4, 5, 0), D::new(4, 1, 0)];
        assert_eq!(pick(&d), Some(2));
        let d = [D::new(2, 3, 0), D::new(0, 0, 0)];
        assert_eq!(pick(&d), None);
    }

    #[test]
    fn property_highest_weight_with_room() {
        let mut rng = Rng(0x0f);
        for _ in 0..5000 {
            let d = rng.dests(8);
            let ok = |x: &D| x.usable() && x.act as i32 <= x.w;
            let hw = d.iter().filter(|x| ok(x)).map(|x| x.w).max();
            assert_eq!(
                pick(&d),
                hw.and_then(|hw| d.iter().position(|x| ok(x) && x.w == hw))
            );
        }
    }
}
