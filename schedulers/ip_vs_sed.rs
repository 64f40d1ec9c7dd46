// SPDX-License-Identifier: GPL-2.0

//! Shortest-expected-delay scheduling: a new connection goes to the server with the smallest (active connections + 1) / weight.
//!
//! The selection is in the kernel-independent `sed.rs`.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_sed.c`

use kernel::prelude::*;

#[path = "../ipvs/abi.rs"]
#[macro_use]
mod abi;
#[path = "dest.rs"]
mod dest;
#[path = "dest_load.rs"]
mod dest_load;
#[path = "sed.rs"]
mod sed;

use abi::{DestInfo, Packet, Scheduler};

module_ip_vs_scheduler! {
    type: Sed,
    name: "ip_vs_sed",
    author: "Rust IPVS developers",
    description: "ipvs shortest expected delay scheduler",
    license: "GPL",
}

/// The scheduler; it keeps no state of its own.
struct Sed;

#[vtable]
impl Scheduler for Sed {
    const NAME: &'static CStr = kernel::c_str!("sed");

    fn new(_dests: &[&DestInfo]) -> Result<Self> {
        Ok(Self)
    }

    fn schedule(&self, dests: &[&DestInfo], _pkt: &Packet) -> Option<usize> {
        sed::pick(dests)
    }
}
