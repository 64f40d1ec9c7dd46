// SPDX-License-Identifier: GPL-2.0

//! Source hashing scheduling: a connection goes to the server its client's address (with
//! `sh-port`, address and port) hashes to in a 256-bucket table filled by weight; with
//! `sh-fallback` an unusable server is replaced by the next usable one along the table.
//!
//! The table holds server ids and is rebuilt in place when servers are added, removed or
//! changed; the packet path reads it without locks.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_sh.c`

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use kernel::prelude::*;

#[path = "../ipvs/abi.rs"]
#[macro_use]
mod abi;
#[path = "dest_info.rs"]
mod dest_info;
#[path = "server.rs"]
mod server;
#[path = "sh.rs"]
mod sh;

use abi::{DestInfo, Packet, Scheduler};

module_ip_vs_scheduler! {
    type: Sh,
    name: "ip_vs_sh",
    author: "Rust IPVS developers",
    description: "ipvs source hashing scheduler",
    license: "GPL",
}

/// Whether the protocol has ports where TCP has them (`ip_vs_sh_get_port`).
fn has_ports(protocol: u8) -> bool {
    matches!(protocol, 6 | 17 | 132)
}

/// The bucket table of one service: a server id per bucket, 0 for none.
struct Sh {
    buckets: KVec<AtomicU64>,
}

impl Sh {
    fn reassign(&self, dests: &[&DestInfo], skip: Option<usize>) {
        sh::reassign(dests, skip, |b, id| {
            if let Some(slot) = self.buckets.get(b) {
                slot.store(id, Relaxed);
            }
        });
    }
}

#[vtable]
impl Scheduler for Sh {
    const NAME: &'static CStr = kernel::c_str!("sh");

    fn new(dests: &[&DestInfo]) -> Result<Self> {
        let mut buckets = KVec::with_capacity(sh::TAB_SIZE, GFP_KERNEL)?;
        for _ in 0..sh::TAB_SIZE {
            buckets.push(AtomicU64::new(0), GFP_KERNEL)?;
        }
        let s = Self { buckets };
        s.reassign(dests, None);
        Ok(s)
    }

    fn schedule(&self, dests: &[&DestInfo], pkt: &Packet) -> Option<usize> {
        let port = if pkt.svc_flags & sh::SVC_F_PORT != 0 && has_ports(pkt.protocol) {
            pkt.sport
        } else {
            [0, 0]
        };
        sh::pick(
            dests,
            |b| self.buckets.get(b).map_or(0, |s| s.load(Relaxed)),
            pkt.af,
            &pkt.saddr,
            port,
            pkt.svc_flags & sh::SVC_F_FALLBACK != 0,
        )
    }

    fn add_dest(&self, dests: &[&DestInfo], _index: usize) {
        self.reassign(dests, None);
    }

    fn del_dest(&self, dests: &[&DestInfo], index: usize) {
        self.reassign(dests, Some(index));
    }

    fn upd_dest(&self, dests: &[&DestInfo], _index: usize) {
        self.reassign(dests, None);
    }
}
