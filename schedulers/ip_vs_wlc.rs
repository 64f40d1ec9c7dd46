// SPDX-License-Identifier: GPL-2.0

//! Weighted least-connection scheduling: a new connection goes to the server with the smallest connection overhead per weight.
//!
//! The selection is in the kernel-independent `wlc.rs`.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_wlc.c`

use kernel::prelude::*;

#[path = "../ipvs/abi.rs"]
mod abi;
#[path = "dest.rs"]
mod dest;
#[path = "dest_load.rs"]
mod dest_load;
#[path = "wlc.rs"]
mod wlc;

use abi::{DestInfo, Packet, Scheduler, SchedulerRegistration};

module! {
    type: WlcModule,
    name: "ip_vs_wlc",
    author: "Rust IPVS developers",
    description: "ipvs weighted least connection scheduler",
    license: "GPL",
}

/// The scheduler; it keeps no state of its own.
struct Wlc;

impl Scheduler for Wlc {
    const NAME: &'static [u8] = b"wlc";

    fn new(_dests: &[&DestInfo]) -> Result<Self> {
        Ok(Self)
    }

    fn schedule(&self, dests: &[&DestInfo], _pkt: &Packet) -> Option<usize> {
        wlc::pick(dests)
    }
}

struct WlcModule {
    _reg: SchedulerRegistration,
}

impl kernel::Module for WlcModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        Ok(Self {
            _reg: SchedulerRegistration::new::<Wlc>(module)?,
        })
    }
}
