// SPDX-License-Identifier: GPL-2.0

//! Least-connection scheduling: a new connection goes to the server with the fewest connections, an active one weighing 256 inactive ones.
//!
//! The selection is in the kernel-independent `lc.rs`.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_lc.c`

use kernel::prelude::*;

#[path = "../ipvs/abi.rs"]
#[macro_use]
mod abi;
#[path = "dest.rs"]
mod dest;
#[path = "dest_load.rs"]
mod dest_load;
#[path = "lc.rs"]
mod lc;

use abi::{DestInfo, Packet, Scheduler};

module_ip_vs_scheduler! {
    type: Lc,
    name: "ip_vs_lc",
    author: "Rust IPVS developers",
    description: "ipvs least connection scheduler",
    license: "GPL",
}

/// The scheduler; it keeps no state of its own.
struct Lc;

#[vtable]
impl Scheduler for Lc {
    const NAME: &'static CStr = kernel::c_str!("lc");

    fn new(_dests: &[&DestInfo]) -> Result<Self> {
        Ok(Self)
    }

    fn schedule(&self, dests: &[&DestInfo], _pkt: &Packet) -> Option<usize> {
        lc::pick(dests)
    }
}
