// SPDX-License-Identifier: GPL-2.0

//! Traffic counters of the director, of each virtual service and of each real server, and
//! their rates (see `est.rs`).
//!
//! The counters are per CPU ([`PerCpuCounters`]): a packet adds to the local CPU's counters
//! of its real server, service and namespace under one bottom-half-disabled section, with no
//! locked instruction and no shared cache line written. Readers sum over the CPUs. Zeroing
//! (`ipvsadm -Z`) records the current sums as the new zero point, as upstream does, since
//! other CPUs' counters cannot be written from here.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_ctl.c` (`ip_vs_copy_stats`, `ip_vs_zero_stats`),
//! `ip_vs_core.c` (`ip_vs_in_stats`, `ip_vs_out_stats`, `ip_vs_conn_stats`)

use crate::{est::Estimator, uapi::StatsUser};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use kernel::{
    alloc::flags::GFP_KERNEL,
    percpu::{BhDisabled, PerCpuCounters},
    prelude::*,
};

/// Counter indexes: connections, incoming packets, outgoing packets, incoming bytes,
/// outgoing bytes (the order of the estimator and of `/proc/net/ip_vs_stats`).
const CONNS: usize = 0;
const INPKTS: usize = 1;
const OUTPKTS: usize = 2;
const INBYTES: usize = 3;
const OUTBYTES: usize = 4;
const N: usize = 5;

/// Counters since creation (or the last zeroing) and their rates.
pub(crate) struct Stats {
    cpu: PerCpuCounters<N>,
    /// The sums at the last zeroing.
    zero: [AtomicU64; N],
    est: Estimator,
}

impl Stats {
    pub(crate) fn new() -> Result<Self> {
        Ok(Self {
            cpu: PerCpuCounters::new(GFP_KERNEL)?,
            zero: Default::default(),
            est: Estimator::default(),
        })
    }

    pub(crate) fn count_conn(&self) {
        self.cpu.update(|c| c.add(CONNS, 1));
    }

    /// Counts a packet from a client in each of `stats` (real server, service, namespace).
    #[inline(always)]
    pub(crate) fn count_in(stats: &[&Stats], bytes: u32) {
        count(stats, INPKTS, INBYTES, bytes)
    }

    /// Counts a packet from a real server in each of `stats`.
    pub(crate) fn count_out(stats: &[&Stats], bytes: u32) {
        count(stats, OUTPKTS, OUTBYTES, bytes)
    }

    pub(crate) fn zero(&self) {
        let now = self.cpu.sum();
        for (z, v) in self.zero.iter().zip(now) {
            z.store(v, Relaxed);
        }
        self.est.zero(now);
    }

    /// Samples the counters for the rate estimator, once per estimation pass `pass` (every
    /// two seconds; see [`Estimator::claim`]). The estimator works on the raw sums (its
    /// zero point is set by [`Self::zero`]), which saves subtracting ours.
    #[inline(always)]
    pub(crate) fn estimate(&self, pass: u32) {
        if self.est.claim(pass) {
            self.est.sample(self.cpu.sum());
        }
    }

    /// Connections, incoming and outgoing packets and bytes per second.
    pub(crate) fn rates(&self) -> [u64; N] {
        self.est.rates()
    }

    /// Totals since the last zeroing, as the 64-bit values `/proc/net/ip_vs_stats` shows.
    pub(crate) fn totals(&self) -> [u64; N] {
        let sum = self.cpu.sum();
        core::array::from_fn(|i| sum[i].wrapping_sub(self.zero[i].load(Relaxed)))
    }

    /// Calls `f` with each possible CPU and its raw counters (not offset by zeroing, as
    /// upstream's `/proc/net/ip_vs_stats_percpu` shows them).
    pub(crate) fn for_each_cpu(&self, f: impl FnMut(u32, [u64; N])) {
        self.cpu.for_each_cpu(f)
    }

    /// The sockopt form: packet and connection counts are truncated to 32 bits as upstream.
    pub(crate) fn to_user(&self) -> StatsUser {
        let [conns, inpkts, outpkts, inbytes, outbytes] = self.totals();
        let [cps, inpps, outpps, inbps, outbps] = self.rates();
        StatsUser {
            conns: conns as u32,
            inpkts: inpkts as u32,
            outpkts: outpkts as u32,
            inbytes,
            outbytes,
            cps: cps as u32,
            inpps: inpps as u32,
            outpps: outpps as u32,
            inbps: inbps as u32,
            outbps: outbps as u32,
        }
    }
}

/// One packet of `bytes` into counters `pkts` and `bytes_i` of each of `stats`, in one
/// bottom-half-disabled section.
#[inline(always)]
fn count(stats: &[&Stats], pkts: usize, bytes_i: usize, bytes: u32) {
    let bh = BhDisabled::new();
    for s in stats {
        let l = s.cpu.local(&bh);
        l.add(pkts, 1);
        l.add(bytes_i, u64::from(bytes));
    }
}
