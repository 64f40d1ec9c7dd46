// SPDX-License-Identifier: GPL-2.0

//! Weighted round-robin scheduling: servers take new connections in turn, each as often as
//! its weight says.
//!
//! The scan ([`wrr::Mark`], kernel-independent in `wrr.rs`) is per service and shared by
//! every CPU that schedules for it, so it lives under a spinlock that also keeps softirqs out
//! (the control path updates it in process context).
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_wrr.c`

use kernel::{new_spinlock_bh, prelude::*, sync::SpinLockBh};

#[path = "../ipvs/abi.rs"]
#[macro_use]
mod abi;
#[path = "dest.rs"]
mod dest;
#[path = "dest_load.rs"]
mod dest_load;
#[path = "wrr.rs"]
mod wrr;

use abi::{DestInfo, Packet, Scheduler};

module_ip_vs_scheduler! {
    type: Wrr,
    name: "ip_vs_wrr",
    author: "Rust IPVS developers",
    description: "ipvs weighted round-robin scheduler",
    license: "GPL",
}

/// The scan position of one service.
struct Wrr {
    mark: Pin<KBox<SpinLockBh<wrr::Mark>>>,
}

#[vtable]
impl Scheduler for Wrr {
    const NAME: &'static CStr = kernel::c_str!("wrr");

    fn new(dests: &[&DestInfo]) -> Result<Self> {
        Ok(Self {
            mark: KBox::pin_init(new_spinlock_bh!(wrr::Mark::new(dests), "ip_vs_wrr"), GFP_KERNEL)?,
        })
    }

    fn schedule(&self, dests: &[&DestInfo], _pkt: &Packet) -> Option<usize> {
        self.mark.lock().schedule(dests)
    }

    fn add_dest(&self, dests: &[&DestInfo], _index: usize) {
        self.mark.lock().changed(dests, None);
    }

    fn del_dest(&self, dests: &[&DestInfo], index: usize) {
        self.mark.lock().changed(dests, Some(index));
    }

    fn upd_dest(&self, dests: &[&DestInfo], _index: usize) {
        self.mark.lock().changed(dests, None);
    }
}
