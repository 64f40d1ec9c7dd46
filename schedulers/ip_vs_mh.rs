// SPDX-License-Identifier: GPL-2.0

//! Maglev hashing scheduling: a connection goes to the server its client's address (with
//! `mh-port`, address and port) hashes to in a 4093-slot lookup table built by Maglev's
//! population from fixed `hsiphash` keys, so the choices are upstream's; with `mh-fallback`
//! an unusable server is replaced by probing further slots.
//!
//! The table holds server ids and is rebuilt in place when servers are added, removed or
//! changed; the packet path reads it without locks. The scratch space of the population is
//! kept under a spinlock (the core calls the callbacks in RCU read-side sections, so nothing
//! here sleeps). Servers count with their last non-zero weight (`DestInfo::last_weight`).
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_mh.c`

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use kernel::{new_spinlock, prelude::*, sync::SpinLock};

#[path = "../ipvs/abi.rs"]
#[macro_use]
mod abi;
#[path = "dest_info.rs"]
mod dest_info;
#[path = "mh.rs"]
mod mh;
#[path = "server.rs"]
mod server;

use abi::{DestInfo, Packet, Scheduler};

module_ip_vs_scheduler! {
    type: Mh,
    name: "ip_vs_mh",
    author: "Rust IPVS developers",
    description: "Maglev hashing ipvs scheduler",
    license: "GPL",
}

/// Whether the protocol has ports where TCP has them (`ip_vs_mh_get_port`).
fn has_ports(protocol: u8) -> bool {
    matches!(protocol, 6 | 17 | 132)
}

/// Scratch space of the population, one entry per server; kept between rebuilds.
struct Control {
    setup: KVec<mh::Setup>,
}

/// The lookup table of one service: a server id per slot, 0 for none.
struct Mh {
    lookup: KVec<AtomicU64>,
    control: Pin<KBox<SpinLock<Control>>>,
}

impl Mh {
    /// Rebuilds the table; on failure (allocation, too many servers) it stays as it was,
    /// as upstream's.
    fn reassign(&self, dests: &[&DestInfo], skip: Option<usize>) {
        let mut c = self.control.lock();
        let n = dests.len();
        if c.setup.len() < n && n <= mh::TAB_SIZE {
            let more = n - c.setup.len();
            if c.setup.extend_with(more, mh::Setup::default(), GFP_ATOMIC).is_err() {
                return;
            }
        }
        let _ = mh::reassign(
            dests,
            skip,
            |d| d.last_weight.load(Relaxed),
            c.setup.as_mut_slice(),
            |slot, id| {
                if let Some(s) = self.lookup.get(slot) {
                    s.store(id, Relaxed);
                }
            },
        );
    }
}

#[vtable]
impl Scheduler for Mh {
    const NAME: &'static CStr = kernel::c_str!("mh");

    fn new(dests: &[&DestInfo]) -> Result<Self> {
        let mut lookup = KVec::with_capacity(mh::TAB_SIZE, GFP_KERNEL)?;
        for _ in 0..mh::TAB_SIZE {
            lookup.push(AtomicU64::new(0), GFP_KERNEL)?;
        }
        let control = KBox::pin_init(
            new_spinlock!(
                Control {
                    setup: KVec::new(),
                },
                "ip_vs_mh_control"
            ),
            GFP_KERNEL,
        )?;
        let s = Self { lookup, control };
        s.reassign(dests, None);
        Ok(s)
    }

    fn schedule(&self, dests: &[&DestInfo], pkt: &Packet) -> Option<usize> {
        let port = if pkt.svc_flags & mh::SVC_F_PORT != 0 && has_ports(pkt.protocol) {
            pkt.sport
        } else {
            [0, 0]
        };
        mh::pick(
            dests,
            |slot| self.lookup.get(slot).map_or(0, |s| s.load(Relaxed)),
            pkt.af,
            &pkt.saddr,
            port,
            pkt.svc_flags & mh::SVC_F_FALLBACK != 0,
        )
    }

    fn add_dest(&self, dests: &[&DestInfo], _index: usize) {
        self.reassign(dests, None);
    }

    fn del_dest(&self, dests: &[&DestInfo], index: usize) {
        self.reassign(dests, Some(index));
    }

    fn upd_dest(&self, dests: &[&DestInfo], _index: usize) {
        self.reassign(dests, None);
    }
}
