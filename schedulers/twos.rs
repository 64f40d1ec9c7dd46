// SPDX-License-Identifier: GPL-2.0

//! Power-of-two-choices selection, independent of the kernel (`no_std`, host-tested): two
//! servers are drawn at random, each with probability proportional to its weight, and the one
//! with the smaller connection overhead per weight wins (the first drawn on ties). Overloaded
//! and weight-0 servers are never drawn.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_twos.c`

#![allow(dead_code, unreachable_pub)]

use crate::dest::{more_loaded, Dest};

/// A uniformly distributed number in `0..ceil` from 32-bit random numbers (Lemire's method
/// with rejection, as the kernel's `get_random_u32_below`); 0 when `ceil` is 0 or 1.
pub fn below(ceil: u32, mut random: impl FnMut() -> u32) -> u32 {
    if ceil <= 1 {
        return 0;
    }
    let mut m = u64::from(random()) * u64::from(ceil);
    if (m as u32) < ceil {
        let bound = ceil.wrapping_neg() % ceil;
        while (m as u32) < bound {
            m = u64::from(random()) * u64::from(ceil);
        }
    }
    (m >> 32) as u32
}

/// Index of the server for a new connection; `random` gives 32 random bits.
pub fn pick<D: Dest>(dests: &[D], mut random: impl FnMut() -> u32) -> Option<usize> {
    let total = dests
        .iter()
        .filter(|d| d.usable())
        .fold(0u32, |t, d| t.saturating_add(d.weight() as u32));
    if total == 0 {
        return None;
    }
    // Both draws are in 0..=total, as upstream's.
    let ceil = total.saturating_add(1);
    let mut r1 = i64::from(below(ceil, &mut random));
    let mut r2 = i64::from(below(ceil, &mut random));
    let mut c1: Option<usize> = None;
    let mut c2: Option<usize> = None;
    for (i, d) in dests.iter().enumerate() {
        if !d.usable() {
            continue;
        }
        r1 -= i64::from(d.weight());
        r2 -= i64::from(d.weight());
        if r1 <= 0 && c1.is_none() {
            c1 = Some(i);
        }
        if r2 <= 0 && c2.is_none() {
            c2 = Some(i);
        }
        if c1.is_some() && c2.is_some() {
            break;
        }
    }
    let (a, b) = (c1?, c2?);
    let (da, db) = (&dests[a], &dests[b]);
    if more_loaded(
        da.conn_overhead(),
        da.weight(),
        db.conn_overhead(),
        db.weight(),
    ) {
        Some(b)
    } else {
        Some(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dest::{Rng, TestDest as D};

    #[test]
    fn below_is_in_range_and_uniform() {
        let mut rng = Rng(7);
        let mut hist = [0u32; 7];
        for _ in 0..70_000 {
            hist[below(7, || rng.next_u32()) as usize] += 1;
        }
        for h in hist {
            assert!((9_000..11_000).contains(&h), "{hist:?}");
        }
        assert_eq!(below(0, || 5), 0);
        assert_eq!(below(1, || u32::MAX), 0);
        assert_eq!(below(2, || u32::MAX), 1);
    }

    #[test]
    fn less_loaded_of_two() {
        let d = [D::new(1, 3, 0), D::new(1, 0, 0)];
        // Draws 0 and 2 of 0..3: the first and the second server; the second is idle.
        let mut draws = [1u32, u32::MAX].into_iter();
        assert_eq!(pick(&d, || draws.next().unwrap_or(1)), Some(1));
        assert_eq!(pick(&[D::new(0, 0, 0)], || 0), None);
    }

    #[test]
    fn property_never_weight_zero_or_overloaded() {
        let mut rng = Rng(0x2);
        for _ in 0..5000 {
            let d = rng.dests(8);
            let mut r = Rng(rng.next_u32() as u64 | 1);
            match pick(&d, || r.next_u32()) {
                None => assert!(d.iter().all(|x| !x.usable())),
                Some(i) => assert!(d[i].usable()),
            }
        }
    }

    #[test]
    fn property_spread_follows_weight_under_load() {
        // Feeding the choices back as connections spreads them about by weight.
        let mut rng = Rng(0x77);
        let mut d = [
            D::new(1, 0, 0),
            D::new(2, 0, 0),
            D::new(0, 0, 0),
            D::new(3, 0, 0),
        ];
        for _ in 0..6000 {
            let i = pick(&d, || rng.next_u32()).unwrap_or(2);
            d[i].tot += 1;
        }
        assert_eq!(d[2].tot, 0);
        for (x, want) in [(0, 1000), (1, 2000), (3, 3000)] {
            assert!(d[x].tot.abs_diff(want) < 150, "{d:?}");
        }
    }
}
