// SPDX-License-Identifier: GPL-2.0

//! Never-queue scheduling: a new connection goes to an idle server if there is one, else as with shortest expected delay.
//!
//! The selection is in the kernel-independent `nq.rs`.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_nq.c`

use kernel::prelude::*;

#[path = "../ipvs/abi.rs"]
#[macro_use]
mod abi;
#[path = "dest.rs"]
mod dest;
#[path = "dest_load.rs"]
mod dest_load;
#[path = "nq.rs"]
mod nq;

use abi::{DestInfo, Packet, Scheduler};

module_ip_vs_scheduler! {
    type: Nq,
    name: "ip_vs_nq",
    author: "Rust IPVS developers",
    description: "ipvs never queue scheduler",
    license: "GPL",
}

/// The scheduler; it keeps no state of its own.
struct Nq;

#[vtable]
impl Scheduler for Nq {
    const NAME: &'static CStr = kernel::c_str!("nq");

    fn new(_dests: &[&DestInfo]) -> Result<Self> {
        Ok(Self)
    }

    fn schedule(&self, dests: &[&DestInfo], _pkt: &Packet) -> Option<usize> {
        nq::pick(dests)
    }
}
