// SPDX-License-Identifier: GPL-2.0

//! Weighted overflow: new connections go to the highest-weight server until its active connections exceed its weight, then overflow to the next.
//!
//! The selection is in the kernel-independent `ovf.rs`.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_ovf.c`

use kernel::prelude::*;

#[path = "../ipvs/abi.rs"]
#[macro_use]
mod abi;
#[path = "dest.rs"]
mod dest;
#[path = "dest_load.rs"]
mod dest_load;
#[path = "ovf.rs"]
mod ovf;

use abi::{DestInfo, Packet, Scheduler};

module_ip_vs_scheduler! {
    type: Ovf,
    name: "ip_vs_ovf",
    author: "Rust IPVS developers",
    description: "ipvs overflow connection scheduler",
    license: "GPL",
}

/// The scheduler; it keeps no state of its own.
struct Ovf;

#[vtable]
impl Scheduler for Ovf {
    const NAME: &'static CStr = kernel::c_str!("ovf");

    fn new(_dests: &[&DestInfo]) -> Result<Self> {
        Ok(Self)
    }

    fn schedule(&self, dests: &[&DestInfo], _pkt: &Packet) -> Option<usize> {
        ovf::pick(dests)
    }
}
