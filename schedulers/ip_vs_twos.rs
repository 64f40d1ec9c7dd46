// SPDX-License-Identifier: GPL-2.0

//! Power-of-two-choices scheduling: of two servers drawn at random in proportion to their
//! weights, a new connection goes to the less loaded one per weight.
//!
//! The selection is in the kernel-independent `twos.rs`; the random numbers come from the
//! kernel's generator through [`abi::random_u32`].
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_twos.c`

use kernel::prelude::*;

#[path = "../ipvs/abi.rs"]
#[macro_use]
mod abi;
#[path = "dest.rs"]
mod dest;
#[path = "dest_load.rs"]
mod dest_load;
#[path = "twos.rs"]
mod twos;

use abi::{DestInfo, Packet, Scheduler};

module_ip_vs_scheduler! {
    type: Twos,
    name: "ip_vs_twos",
    author: "Rust IPVS developers",
    description: "ipvs power of twos choice scheduler",
    license: "GPL",
}

/// The scheduler; it keeps no state of its own.
struct Twos;

#[vtable]
impl Scheduler for Twos {
    const NAME: &'static CStr = kernel::c_str!("twos");

    fn new(_dests: &[&DestInfo]) -> Result<Self> {
        Ok(Self)
    }

    fn schedule(&self, dests: &[&DestInfo], _pkt: &Packet) -> Option<usize> {
        twos::pick(dests, abi::random_u32)
    }
}
