// SPDX-License-Identifier: GPL-2.0

//! Never-queue selection, independent of the kernel (`no_std`, host-tested): the first usable
//! server without active connections; when every one is busy, the smallest
//! `(active + 1) / weight` as shortest expected delay does.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_nq.c`

#![allow(dead_code, unreachable_pub)]

use crate::dest::{more_loaded, Dest};

/// Index of the server for a new connection.
pub fn pick<D: Dest>(dests: &[D]) -> Option<usize> {
    let mut least: Option<(usize, i32)> = None;
    for (i, d) in dests.iter().enumerate() {
        if d.overloaded() || d.weight() == 0 {
            continue;
        }
        if d.activeconns() == 0 {
            return Some(i);
        }
        let doh = (d.activeconns() as i32).wrapping_add(1);
        let better = match least {
            None => true,
            Some((l, loh)) => more_loaded(loh, dests[l].weight(), doh, d.weight()),
        };
        if better {
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
    fn idle_first() {
        let d = [D::new(9, 1, 0), D::new(1, 0, 7), D::new(1, 0, 0)];
        assert_eq!(pick(&d), Some(1));
        let d = [D::new(1, 1, 0), D::new(4, 2, 0)];
        assert_eq!(pick(&d), Some(1));
        let d = [D::new(0, 0, 0), D::new(4, 2, 0)];
        assert_eq!(pick(&d), Some(1));
    }

    #[test]
    fn property_idle_or_shortest_delay() {
        let mut rng = Rng(0x9);
        for _ in 0..5000 {
            let d = rng.dests(8);
            let usable: std::vec::Vec<usize> = (0..d.len()).filter(|&j| d[j].usable()).collect();
            match pick(&d) {
                None => assert!(usable.is_empty()),
                Some(i) => {
                    assert!(d[i].usable());
                    if let Some(&idle) = usable.iter().find(|&&j| d[j].act == 0) {
                        assert_eq!(i, idle);
                    } else {
                        for &j in &usable {
                            let (a, b) = (&d[i], &d[j]);
                            assert!(
                                i64::from(a.act + 1) * i64::from(b.w)
                                    <= i64::from(b.act + 1) * i64::from(a.w)
                            );
                        }
                    }
                }
            }
        }
    }
}
