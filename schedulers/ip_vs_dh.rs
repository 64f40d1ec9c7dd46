// SPDX-License-Identifier: GPL-2.0

//! Destination hashing scheduling: a connection goes to the server its destination address
//! hashes to in a 256-bucket table filled round robin with the servers, if that server is
//! usable.
//!
//! The table holds server ids and is rebuilt in place when servers are added or removed
//! (not when they change, as upstream); the packet path reads it without locks.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_dh.c`

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use kernel::prelude::*;

#[path = "../ipvs/abi.rs"]
#[macro_use]
mod abi;
#[path = "dest_info.rs"]
mod dest_info;
#[path = "dh.rs"]
mod dh;
#[path = "server.rs"]
mod server;

use abi::{DestInfo, Packet, Scheduler};

module_ip_vs_scheduler! {
    type: Dh,
    name: "ip_vs_dh",
    author: "Rust IPVS developers",
    description: "ipvs destination hashing scheduler",
    license: "GPL",
}

/// The bucket table of one service: a server id per bucket, 0 for none.
struct Dh {
    buckets: KVec<AtomicU64>,
}

impl Dh {
    fn reassign(&self, dests: &[&DestInfo], skip: Option<usize>) {
        dh::reassign(dests, skip, |b, id| {
            if let Some(slot) = self.buckets.get(b) {
                slot.store(id, Relaxed);
            }
        });
    }
}

#[vtable]
impl Scheduler for Dh {
    const NAME: &'static CStr = kernel::c_str!("dh");

    fn new(dests: &[&DestInfo]) -> Result<Self> {
        let mut buckets = KVec::with_capacity(dh::TAB_SIZE, GFP_KERNEL)?;
        for _ in 0..dh::TAB_SIZE {
            buckets.push(AtomicU64::new(0), GFP_KERNEL)?;
        }
        let s = Self { buckets };
        s.reassign(dests, None);
        Ok(s)
    }

    fn schedule(&self, dests: &[&DestInfo], pkt: &Packet) -> Option<usize> {
        dh::pick(
            dests,
            |b| self.buckets.get(b).map_or(0, |s| s.load(Relaxed)),
            pkt.af,
            &pkt.daddr,
        )
    }

    fn add_dest(&self, dests: &[&DestInfo], _index: usize) {
        self.reassign(dests, None);
    }

    fn del_dest(&self, dests: &[&DestInfo], index: usize) {
        self.reassign(dests, Some(index));
    }
}
