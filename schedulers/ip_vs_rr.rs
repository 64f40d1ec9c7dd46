// SPDX-License-Identifier: GPL-2.0

//! Round-robin scheduling: each new connection goes to the next usable real server after the
//! one chosen last, in the service's list order. Servers with weight 0 or over their upper
//! threshold are skipped.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_rr.c`

use core::sync::atomic::{AtomicU64, Ordering};
use kernel::prelude::*;

#[path = "../ipvs/abi.rs"]
#[macro_use]
mod abi;

use abi::{DestInfo, Packet, Scheduler};

module_ip_vs_scheduler! {
    type: Rr,
    name: "ip_vs_rr",
    author: "Rust IPVS developers",
    description: "ipvs round-robin scheduler",
    license: "GPL",
}

#[path = "rr.rs"]
mod rr;

impl rr::Candidate for &DestInfo {
    fn id(&self) -> u64 {
        self.id
    }
    fn usable(&self) -> bool {
        self.is_usable()
    }
}

/// Id of the destination chosen last; 0 before the first choice (start at the list head).
struct Rr {
    last: AtomicU64,
}

#[vtable]
impl Scheduler for Rr {
    const NAME: &'static CStr = kernel::c_str!("rr");

    fn new(_dests: &[&DestInfo]) -> Result<Self> {
        Ok(Self {
            last: AtomicU64::new(0),
        })
    }

    fn schedule(&self, dests: &[&DestInfo], _pkt: &Packet) -> Option<usize> {
        let pick = rr::pick(dests, self.last.load(Ordering::Relaxed))?;
        self.last.store(dests.get(pick)?.id, Ordering::Relaxed);
        Some(pick)
    }

    fn del_dest(&self, dests: &[&DestInfo], index: usize) {
        let last = self.last.load(Ordering::Relaxed);
        self.last
            .store(rr::after_removal(dests, index, last), Ordering::Relaxed);
    }
}
