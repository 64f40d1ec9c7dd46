// SPDX-License-Identifier: GPL-2.0

//! Weighted least-connection scheduling: a new connection goes to the server with the smallest connection overhead per weight.
//!
//! The selection is in the kernel-independent `wlc.rs`.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_wlc.c`

use kernel::prelude::*;

#[path = "../ipvs/abi.rs"]
#[macro_use]
mod abi;
#[path = "dest.rs"]
mod dest;
#[path = "dest_load.rs"]
mod dest_load;
#[path = "wlc.rs"]
mod wlc;

use abi::{DestInfo, Packet, Scheduler};

module_ip_vs_scheduler! {
    type: Wlc,
    name: "ip_vs_wlc",
    author: "Rust IPVS developers",
    description: "ipvs weighted least connection scheduler",
    license: "GPL",
}

/// The scheduler; it keeps no state of its own.
struct Wlc;

#[vtable]
impl Scheduler for Wlc {
    const NAME: &'static CStr = kernel::c_str!("wlc");

    fn new(_dests: &[&DestInfo]) -> Result<Self> {
        Ok(Self)
    }

    fn schedule(&self, dests: &[&DestInfo], _pkt: &Packet) -> Option<usize> {
        wlc::pick(dests)
    }
}
