// SPDX-License-Identifier: GPL-2.0

//! Weighted least-connection selection, independent of the kernel (`no_std`, host-tested): the
//! server with the smallest connection overhead (`256 * active + total`) per weight, compared
//! as `Cj * Wi > Ci * Wj` without division; the first in list order on ties.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_wlc.c`

#![allow(dead_code, unreachable_pub)]

use crate::dest::{least_weighted, Dest};

/// Index of the server for a new connection.
pub fn pick<D: Dest>(dests: &[D]) -> Option<usize> {
    least_weighted(dests, |d| d.conn_overhead())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dest::{Rng, TestDest as D};

    #[test]
    fn weighted() {
        // Overheads 256/1, 512/2, 600/3: the last is least loaded per weight.
        let d = [D::new(1, 1, 0), D::new(2, 2, 0), D::new(3, 2, 88)];
        assert_eq!(pick(&d), Some(2));
        // Equal per weight: the first wins.
        let d = [D::new(1, 1, 0), D::new(2, 2, 0)];
        assert_eq!(pick(&d), Some(0));
        // Weight 0 never wins, even idle.
        let d = [D::new(1, 9, 0), D::new(0, 0, 0)];
        assert_eq!(pick(&d), Some(0));
        assert_eq!(pick(&[D::new(0, 0, 0)]), None);
    }

    #[test]
    fn property_never_more_loaded_per_weight() {
        let mut rng = Rng(0x31c);
        for _ in 0..5000 {
            let d = rng.dests(8);
            match pick(&d) {
                None => assert!(d.iter().all(|x| !x.usable())),
                Some(i) => {
                    let c = &d[i];
                    assert!(c.usable());
                    for x in d.iter().filter(|x| x.usable()) {
                        // Ci/Wi <= Cj/Wj for every usable j.
                        assert!(
                            i64::from(c.conn_overhead()) * i64::from(x.w)
                                <= i64::from(x.conn_overhead()) * i64::from(c.w)
                        );
                    }
                }
            }
        }
    }
}
