// SPDX-License-Identifier: GPL-2.0

//! Weighted overflow: new connections go to the highest-weight server until its active connections exceed its weight, then overflow to the next.
//!
//! The selection is in the kernel-independent `ovf.rs`.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_ovf.c`

use kernel::prelude::*;

#[path = "../ipvs/abi.rs"]
mod abi;
#[path = "dest.rs"]
mod dest;
#[path = "dest_load.rs"]
mod dest_load;
#[path = "ovf.rs"]
mod ovf;

use abi::{DestInfo, Packet, Scheduler, SchedulerRegistration};

module! {
    type: OvfModule,
    name: "ip_vs_ovf",
    author: "Rust IPVS developers",
    description: "ipvs overflow connection scheduler",
    license: "GPL",
}

/// The scheduler; it keeps no state of its own.
struct Ovf;

impl Scheduler for Ovf {
    const NAME: &'static [u8] = b"ovf";

    fn new(_dests: &[&DestInfo]) -> Result<Self> {
        Ok(Self)
    }

    fn schedule(&self, dests: &[&DestInfo], _pkt: &Packet) -> Option<usize> {
        ovf::pick(dests)
    }
}

struct OvfModule {
    _reg: SchedulerRegistration,
}

impl kernel::Module for OvfModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        Ok(Self {
            _reg: SchedulerRegistration::new::<Ovf>(module)?,
        })
    }
}
