// SPDX-License-Identifier: GPL-2.0

//! Least-connection selection, independent of the kernel (`no_std`, host-tested): the server
//! with the smallest connection overhead (`256 * active + total`), the first in list order on
//! ties; weight 0 and overloaded servers are skipped. Weights do not count otherwise.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_lc.c`

#![allow(dead_code, unreachable_pub)]

use crate::dest::Dest;

/// Index of the server for a new connection.
pub fn pick<D: Dest>(dests: &[D]) -> Option<usize> {
    let mut least: Option<(usize, u32)> = None;
    for (i, d) in dests.iter().enumerate() {
        if d.overloaded() || d.weight() == 0 {
            continue;
        }
        // Upstream keeps the overhead in an `unsigned int`.
        let doh = d.conn_overhead() as u32;
        if least.map_or(true, |(_, loh)| doh < loh) {
            least = Some((i, doh));
        }
    }
    least.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dest::{Rng, TestDest as D};

    #[test]
    fn fewest_connections_first_on_ties() {
        let d = [D::new(1, 1, 0), D::new(5, 0, 2), D::new(1, 0, 2)];
        assert_eq!(pick(&d), Some(1));
        let d = [D::new(1, 1, 0), D::new(0, 0, 0), D::new(1, 0, 300)];
        assert_eq!(pick(&d), Some(0));
        assert_eq!(pick::<D>(&[]), None);
        assert_eq!(pick(&[D::new(0, 0, 0)]), None);
    }

    #[test]
    fn property_never_more_loaded_than_another() {
        let mut rng = Rng(0x1c);
        for _ in 0..5000 {
            let d = rng.dests(8);
            match pick(&d) {
                None => assert!(d.iter().all(|x| x.w == 0 || x.over)),
                Some(i) => {
                    assert!(d[i].w > 0 && !d[i].over);
                    for (j, x) in d.iter().enumerate() {
                        if x.w > 0 && !x.over {
                            assert!(d[i].conn_overhead() <= x.conn_overhead());
                            if j < i {
                                assert!(d[i].conn_overhead() < x.conn_overhead());
                            }
                        }
                    }
                }
            }
        }
    }
}
