// SPDX-License-Identifier: GPL-2.0

//! Round-robin scheduling: each new connection goes to the next usable real server after the
//! one chosen last, in the service's list order. Servers with weight 0 or over their upper
//! threshold are skipped.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_rr.c`

use core::sync::atomic::{AtomicU64, Ordering};
use kernel::prelude::*;

#[path = "../ipvs/abi.rs"]
mod abi;

use abi::{DestInfo, Packet, Scheduler, SchedulerRegistration};

module! {
    type: RrModule,
    name: "ip_vs_rr",
    author: "Rust IPVS developers",
    description: "ipvs round-robin scheduler",
    license: "GPL",
}

/// Id of the destination chosen last; 0 before the first choice (start at the list head).
struct Rr {
    last: AtomicU64,
}

/// Where the round continues: the index after the last choice.
fn start_index(dests: &[&DestInfo], last: u64) -> usize {
    if last == 0 {
        return 0;
    }
    dests
        .iter()
        .position(|d| d.id == last)
        .map_or(0, |i| i + 1)
}

impl Scheduler for Rr {
    const NAME: &'static [u8] = b"rr";

    fn new(_dests: &[&DestInfo]) -> Result<Self> {
        Ok(Self {
            last: AtomicU64::new(0),
        })
    }

    fn schedule(&self, dests: &[&DestInfo], _pkt: &Packet) -> Option<usize> {
        let n = dests.len();
        let start = start_index(dests, self.last.load(Ordering::Relaxed));
        let pick = (0..n).map(|k| (start + k) % n).find(|&i| dests[i].is_usable())?;
        self.last.store(dests[pick].id, Ordering::Relaxed);
        Some(pick)
    }

    fn del_dest(&self, dests: &[&DestInfo], index: usize) {
        // Removing the last chosen server: continue from its predecessor, so the server that
        // followed it is next.
        if dests.get(index).map(|d| d.id) == Some(self.last.load(Ordering::Relaxed)) {
            let prev = index.checked_sub(1).and_then(|i| dests.get(i)).map_or(0, |d| d.id);
            self.last.store(prev, Ordering::Relaxed);
        }
    }
}

struct RrModule {
    _reg: SchedulerRegistration,
}

impl kernel::Module for RrModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        Ok(Self {
            _reg: SchedulerRegistration::new::<Rr>(module)?,
        })
    }
}
