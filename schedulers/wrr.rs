// SPDX-License-Identifier: GPL-2.0

//! Weighted round-robin selection, independent of the kernel (`no_std`, host-tested).
//!
//! The scan keeps a current weight `cw` that steps down from the maximum weight by the
//! greatest common divisor of the weights; each pass over the list picks, after the position
//! chosen last, the next server whose weight is at least `cw`. Over one period of
//! `max / gcd` passes every server is chosen `weight / gcd` times. Weight-0 and overloaded
//! servers are never chosen. Any change of the list or of a weight restarts the scan from the
//! list head, keeping `cw` where it still fits, as upstream does.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_wrr.c`

#![allow(dead_code, unreachable_pub)]

use crate::dest::Dest;

/// The scan position of one service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    /// Index of the server chosen last; `None` is the list head (before the first server).
    pub cl: Option<usize>,
    /// Current weight.
    pub cw: i32,
    /// Maximum weight less `di - 1`: where `cw` restarts.
    pub mw: i32,
    /// The step: gcd of the positive weights (1 if there are none).
    pub di: i32,
}

fn gcd(mut a: i32, mut b: i32) -> i32 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// `(gcd, max)` of the weights of `dests`, leaving out `dests[skip]`.
fn weights<D: Dest>(dests: &[D], skip: Option<usize>) -> (i32, i32) {
    let mut g = 0;
    let mut max = 0;
    for (i, d) in dests.iter().enumerate() {
        if Some(i) == skip {
            continue;
        }
        let w = d.weight();
        if w > 0 {
            g = if g > 0 { gcd(w, g) } else { w };
        }
        max = max.max(w);
    }
    (if g > 0 { g } else { 1 }, max)
}

impl Mark {
    /// The scan of a new service with `dests`.
    pub fn new<D: Dest>(dests: &[D]) -> Self {
        let (di, max) = weights(dests, None);
        let mw = max - (di - 1);
        Self {
            cl: None,
            cw: mw,
            mw,
            di,
        }
    }

    /// The list or a weight changed; `gone` is the index of a server being removed, which
    /// `dests` still holds.
    pub fn changed<D: Dest>(&mut self, dests: &[D], gone: Option<usize>) {
        let (di, max) = weights(dests, gone);
        self.cl = None;
        self.di = di;
        self.mw = max - (di - 1);
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if di > 1 {
            self.cw = (self.cw / di) * di + 1;
        }
    }

    /// Index of the server for a new connection, advancing the scan.
    pub fn schedule<D: Dest>(&mut self, dests: &[D]) -> Option<usize> {
        let n = dests.len();
        // A position beyond the list (a concurrent change shrank it) is the head.
        let mut pos = self.cl.filter(|&i| i < n);
        if self.mw <= 0 {
            self.cl = pos;
            return None;
        }
        let last = pos;
        let mut stop: Option<usize> = None;
        let mut last_pass = false;
        let mut restarted = false;
        // Upstream's loop ends by itself within two rounds of `cw`; bound it anyway.
        let rounds = (self.mw / self.di.max(1)) as u64 + 2;
        for _ in 0..2 * rounds + 2 {
            let start = pos.map_or(0, |i| i + 1);
            for (i, d) in dests.iter().enumerate().skip(start) {
                if !d.overloaded() && d.weight() >= self.cw {
                    self.cl = Some(i);
                    return Some(i);
                }
                if Some(i) == stop {
                    self.cl = Some(i);
                    return None;
                }
            }
            pos = None;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                // The last pass (weight >= 1 for all) was made, or the only traversal
                // started at the head and covered every server.
                if last_pass || last.is_none() {
                    self.cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                // The first pass for weight >= 1 only covered the servers after `last`;
                // this one covers those up to it.
                stop = last;
            }
        }
        self.cl = None;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dest::{Rng, TestDest as D};

    fn ws(w: &[i32]) -> std::vec::Vec<D> {
        w.iter().map(|&w| D::new(w, 0, 0)).collect()
    }

    fn run(m: &mut Mark, d: &[D], n: usize) -> std::vec::Vec<Option<usize>> {
        (0..n).map(|_| m.schedule(d)).collect()
    }

    #[test]
    fn classic_sequence() {
        // Weights 4, 3, 2: cw 4: a; 3: a b; 2: a b c; 1: a b c.
        let d = ws(&[4, 3, 2]);
        let mut m = Mark::new(&d);
        let got = run(&mut m, &d, 9);
        let want = [0, 0, 1, 0, 1, 2, 0, 1, 2].map(Some);
        assert_eq!(got, want);
    }

    #[test]
    fn gcd_steps() {
        let d = ws(&[4, 2]);
        let mut m = Mark::new(&d);
        assert_eq!((m.di, m.mw, m.cw), (2, 3, 3));
        assert_eq!(run(&mut m, &d, 6), [0, 0, 1, 0, 0, 1].map(Some));
    }

    #[test]
    fn nothing_usable() {
        let d = ws(&[0, 0]);
        let mut m = Mark::new(&d);
        assert_eq!(m.schedule(&d), None);
        let mut d = ws(&[1, 2]);
        d[0].over = true;
        d[1].over = true;
        let mut m = Mark::new(&d);
        assert_eq!(m.schedule(&d), None);
        assert_eq!(m.schedule::<D>(&[]), None);
    }

    #[test]
    fn overloaded_skipped() {
        let mut d = ws(&[3, 1]);
        d[0].over = true;
        let mut m = Mark::new(&d);
        assert_eq!(run(&mut m, &d, 3), [1, 1, 1].map(Some));
    }

    #[test]
    fn change_restarts_from_head() {
        let mut d = ws(&[2, 2, 2]);
        let mut m = Mark::new(&d);
        assert_eq!(run(&mut m, &d, 2), [0, 1].map(Some));
        d[0].w = 4;
        m.changed(&d, None);
        // gcd 2: mw = 4 - 1 = 3; cw 1 fits and is realigned: 1 / 2 * 2 + 1 = 1.
        assert_eq!((m.cl, m.cw, m.mw, m.di), (None, 1, 3, 2));
        m.changed(&d, Some(0));
        assert_eq!((m.cw, m.mw, m.di), (1, 1, 2));
    }

    #[test]
    fn property_one_period_gives_each_its_weight() {
        let mut rng = Rng(0x3);
        for _ in 0..2000 {
            let d = rng.dests(7);
            let d: std::vec::Vec<D> = d.into_iter().map(|x| D { over: false, ..x }).collect();
            let mut m = Mark::new(&d);
            let g = m.di;
            let total: i32 = d.iter().map(|x| x.w / g).sum();
            let got = run(&mut m, &d, total as usize);
            for (i, x) in d.iter().enumerate() {
                let n = got.iter().filter(|&&p| p == Some(i)).count() as i32;
                assert_eq!(
                    n,
                    x.w / g,
                    "weights {:?} picks {got:?}",
                    d.iter().map(|x| x.w).collect::<std::vec::Vec<_>>()
                );
            }
            if total == 0 {
                assert_eq!(m.schedule(&d), None);
            }
        }
    }

    #[test]
    fn property_changes_never_pick_unusable() {
        let mut rng = Rng(0x99);
        for _ in 0..500 {
            let mut d = rng.dests(6);
            let mut m = Mark::new(&d);
            for _ in 0..50 {
                match rng.below(4) {
                    0 => {
                        let i = rng.below(d.len() as u32) as usize;
                        d[i].w = rng.below(6) as i32;
                        d[i].over = rng.below(4) == 0;
                        m.changed(&d, None);
                    }
                    1 if d.len() > 1 => {
                        let i = rng.below(d.len() as u32) as usize;
                        m.changed(&d, Some(i));
                        d.remove(i);
                    }
                    _ => {
                        let p = m.schedule(&d);
                        match p {
                            Some(i) => assert!(d[i].usable()),
                            None => assert!(d.iter().all(|x| !x.usable())),
                        }
                    }
                }
            }
        }
    }
}
