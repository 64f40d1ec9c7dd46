// SPDX-License-Identifier: GPL-2.0

//! Traffic counters of the director, of each virtual service and of each real server, and
//! their rates (see `est.rs`).
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_ctl.c` (`ip_vs_copy_stats`), `ip_vs_core.c`
//! (`ip_vs_in_stats`, `ip_vs_out_stats`, `ip_vs_conn_stats`)

use crate::{est::Estimator, uapi::StatsUser};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters since creation (or the last zeroing).
#[derive(Default)]
pub(crate) struct Stats {
    conns: AtomicU64,
    inpkts: AtomicU64,
    outpkts: AtomicU64,
    inbytes: AtomicU64,
    outbytes: AtomicU64,
    est: Estimator,
}

impl Stats {
    pub(crate) fn count_conn(&self) {
        self.conns.fetch_add(1, Relaxed);
    }

    pub(crate) fn count_in(&self, bytes: u32) {
        self.inpkts.fetch_add(1, Relaxed);
        self.inbytes.fetch_add(bytes as u64, Relaxed);
    }

    pub(crate) fn count_out(&self, bytes: u32) {
        self.outpkts.fetch_add(1, Relaxed);
        self.outbytes.fetch_add(bytes as u64, Relaxed);
    }

    pub(crate) fn zero(&self) {
        for c in [&self.conns, &self.inpkts, &self.outpkts, &self.inbytes, &self.outbytes] {
            c.store(0, Relaxed);
        }
        self.est.zero([0; 5]);
    }

    /// Samples the counters for the rate estimator (every two seconds).
    pub(crate) fn estimate(&self) {
        self.est.sample(self.totals());
    }

    /// Connections, incoming and outgoing packets and bytes per second.
    pub(crate) fn rates(&self) -> [u64; 5] {
        self.est.rates()
    }

    /// Totals as the 64-bit values `/proc/net/ip_vs_stats` shows.
    pub(crate) fn totals(&self) -> [u64; 5] {
        [
            self.conns.load(Relaxed),
            self.inpkts.load(Relaxed),
            self.outpkts.load(Relaxed),
            self.inbytes.load(Relaxed),
            self.outbytes.load(Relaxed),
        ]
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
