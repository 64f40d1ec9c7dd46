// SPDX-License-Identifier: GPL-2.0

//! Weighted failover: every new connection goes to the usable server with the highest weight.
//!
//! The selection is in the kernel-independent `fo.rs`.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_fo.c`

use kernel::prelude::*;

#[path = "../ipvs/abi.rs"]
#[macro_use]
mod abi;
#[path = "dest.rs"]
mod dest;
#[path = "dest_load.rs"]
mod dest_load;
#[path = "fo.rs"]
mod fo;

use abi::{DestInfo, Packet, Scheduler};

module_ip_vs_scheduler! {
    type: Fo,
    name: "ip_vs_fo",
    author: "Rust IPVS developers",
    description: "ipvs weighted failover scheduler",
    license: "GPL",
}

/// The scheduler; it keeps no state of its own.
struct Fo;

#[vtable]
impl Scheduler for Fo {
    const NAME: &'static CStr = kernel::c_str!("fo");

    fn new(_dests: &[&DestInfo]) -> Result<Self> {
        Ok(Self)
    }

    fn schedule(&self, dests: &[&DestInfo], _pkt: &Packet) -> Option<usize> {
        fo::pick(dests)
    }
}
