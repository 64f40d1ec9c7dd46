// SPDX-License-Identifier: GPL-2.0

//! The rate estimator: connections, packets and bytes per second of the director, of each
//! virtual service and of each real server, as `ipvsadm -L --rate` and
//! `/proc/net/ip_vs_stats` show them.
//!
//! Every two seconds the counters are sampled and each rate is smoothed as
//! `avg += (rate - avg) / 4`, in upstream's fixed point (packet and connection rates scaled
//! by 2^10, byte rates by 2^5), so that the same traffic shows the same figures.
//!
//! Kernel independent (`no_std`, host-tested).
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_est.c`

#![allow(dead_code, unreachable_pub)]

use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};

/// Seconds between two samples.
pub const PERIOD_SECS: u32 = 2;

/// Indexes of the counters and rates: connections, incoming packets, outgoing packets,
/// incoming bytes, outgoing bytes.
pub const N: usize = 5;

/// Fixed-point shift of each average (2^10 for counts, 2^5 for bytes).
const SCALE: [u32; N] = [10, 10, 10, 5, 5];

/// Smoothed rates of one set of counters. A single sampler (the namespace's estimation
/// work, which never runs twice at once) updates it; readers may see a sample half applied,
/// which only mixes two successive estimates.
#[derive(Default)]
pub struct Estimator {
    /// The counters' sums at the last sample (or the last zeroing).
    last: [AtomicU64; N],
    avg: [AtomicI64; N],
    /// The number of the estimation pass that last sampled it (0: none yet).
    pass: AtomicU32,
    /// Every average is zero: a sample without growth would leave everything as it is.
    idle: AtomicBool,
}

impl Estimator {
    /// Claims the sample of estimation pass `pass` (numbered from 1, wrapping past 0):
    /// false if this pass already took it. A walk that starts over (the service table was
    /// resized under it) then samples each set once, as upstream's estimator does.
    #[inline]
    pub fn claim(&self, pass: u32) -> bool {
        if self.pass.load(Relaxed) == pass {
            return false;
        }
        self.pass.store(pass, Relaxed);
        true
    }

    /// Takes one sample of the counters' sums (every [`PERIOD_SECS`] seconds): the rate is
    /// their growth since the last sample, wrapping as upstream's `u64` counters.
    #[inline]
    pub fn sample(&self, sums: [u64; N]) {
        // Most sets of a large configuration see no traffic: with every average at zero and
        // no growth, the sample would store the same values again. Skipping it is exact and
        // saves the stores (and their cache lines).
        if self.idle.load(Relaxed) && (0..N).all(|i| self.last[i].load(Relaxed) == sums[i]) {
            return;
        }
        let mut idle = true;
        for i in 0..N {
            // Loads and stores, not a swap: the sampler is the only writer besides zeroing,
            // which may race with it as upstream's does (a sample then mixes the two).
            let last = self.last[i].load(Relaxed);
            self.last[i].store(sums[i], Relaxed);
            let delta = sums[i].wrapping_sub(last);
            // Scaled by 2^SCALE, per second over the two-second period.
            // Wrapping, as upstream's `u64`/`s64` arithmetic: the counters grow with packet
            // sizes, so no value here may panic.
            let rate = (delta << (SCALE[i] - 1)) as i64;
            let avg = self.avg[i].load(Relaxed);
            let avg = avg.wrapping_add(rate.wrapping_sub(avg) >> 2);
            self.avg[i].store(avg, Relaxed);
            idle &= avg == 0;
        }
        self.idle.store(idle, Relaxed);
    }

    /// The rates per second, rounded as upstream does.
    pub fn rates(&self) -> [u64; N] {
        core::array::from_fn(|i| {
            let avg = self.avg[i].load(Relaxed).max(0) as u64;
            let half = (1u64 << (SCALE[i] - 1)) - 1;
            avg.wrapping_add(half) >> SCALE[i]
        })
    }

    /// Starts over from the counters' sums `sums` with zero rates (`ip_vs_zero_estimator`).
    pub fn zero(&self, sums: [u64; N]) {
        for i in 0..N {
            self.last[i].store(sums[i], Relaxed);
            self.avg[i].store(0, Relaxed);
        }
        self.idle.store(true, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_rate_converges() {
        let e = Estimator::default();
        let mut t = [0u64; N];
        // 100 conn/s, 1000 pkt/s in, 800 out, 1 MB/s in, 2 MB/s out.
        let per_sec = [100u64, 1000, 800, 1_000_000, 2_000_000];
        for _ in 0..100 {
            for i in 0..N {
                t[i] += per_sec[i] * PERIOD_SECS as u64;
            }
            e.sample(t);
        }
        assert_eq!(e.rates(), per_sec);
    }

    #[test]
    fn first_samples_follow_upstream_smoothing() {
        let e = Estimator::default();
        // 8 connections in 2 s: 4/s; the average moves a quarter of the way per sample.
        e.sample([8, 0, 0, 0, 0]);
        assert_eq!(e.rates()[0], 1);
        e.sample([16, 0, 0, 0, 0]);
        // 1/4 * 4 + 3/4 * 1/4 * 4 = 1.75 -> rounded half down as upstream: 2.
        assert_eq!(e.rates()[0], 2);
        // Idle: decays towards zero.
        for _ in 0..60 {
            e.sample([16, 0, 0, 0, 0]);
        }
        assert_eq!(e.rates()[0], 0);
    }

    #[test]
    fn extreme_counters_do_not_panic() {
        let e = Estimator::default();
        for t in [[u64::MAX; N], [0; N], [u64::MAX; N], [1 << 63; N], [u64::MAX; N]] {
            e.sample(t);
            let _ = e.rates();
        }
    }

    #[test]
    fn zeroing_restarts() {
        let e = Estimator::default();
        e.sample([1000, 1000, 1000, 1000, 1000]);
        // Zeroing records the sums: the next rate counts from there.
        e.zero([1000; N]);
        assert_eq!(e.rates(), [0; N]);
        e.sample([1000; N]);
        assert_eq!(e.rates(), [0; N]);
        e.sample([1008, 0, 0, 0, 0].map(|x| x.max(1000)));
        assert_eq!(e.rates()[0], 1);
        // Sums that wrap count the growth across the wrap.
        let w = Estimator::default();
        w.zero([u64::MAX - 3; N]);
        w.sample([4; N]);
        assert_eq!(w.rates()[0], 1);
    }

    #[test]
    fn idle_skip_is_exact() {
        // The same samples with and without the skip (a fresh estimator is not idle until
        // a sample leaves every average at zero).
        let e = Estimator::default();
        let mut t = [0u64; N];
        let mut reference: [i64; N] = [0; N];
        let mut last = [0u64; N];
        for step in 0..300u64 {
            // Bursts, then silence long enough for the averages to reach zero.
            if step % 100 < 5 {
                for (i, x) in t.iter_mut().enumerate() {
                    *x += (i as u64 + 1) * 1000;
                }
            }
            e.sample(t);
            for i in 0..N {
                let delta = t[i].wrapping_sub(last[i]);
                last[i] = t[i];
                let rate = (delta << (SCALE[i] - 1)) as i64;
                reference[i] = reference[i].wrapping_add(rate.wrapping_sub(reference[i]) >> 2);
            }
            let avg: [i64; N] = core::array::from_fn(|i| e.avg[i].load(Relaxed));
            assert_eq!(avg, reference, "step {step}");
            assert_eq!(e.idle.load(Relaxed), reference.iter().all(|&a| a == 0));
        }
        // The bursts ended long enough ago: idle, and a sample with growth leaves idleness.
        assert!(e.idle.load(Relaxed));
        t[2] += 10;
        e.sample(t);
        assert!(!e.idle.load(Relaxed));
        assert!(e.rates()[2] > 0 || e.avg[2].load(Relaxed) > 0);
    }

    #[test]
    fn one_sample_per_pass() {
        let e = Estimator::default();
        assert!(e.claim(1));
        assert!(!e.claim(1));
        assert!(e.claim(2));
        // Pass numbers wrap; a fresh estimator (pass 0) is claimed by any pass but 0, which
        // the walk never uses.
        assert!(e.claim(u32::MAX));
        assert!(Estimator::default().claim(u32::MAX));
    }
}
