// SPDX-License-Identifier: GPL-2.0

//! The SIP persistence engine (`ipvsadm --pe sip`): the persistence templates of a UDP
//! service are kept per SIP Call-ID, so that every message of a call goes to one real
//! server. The Call-ID is found by `sip.rs`.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_pe_sip.c`

#[path = "../ipvs/pe_abi.rs"]
#[macro_use]
mod pe_abi;

#[path = "sip.rs"]
#[allow(dead_code, unreachable_pub)]
mod sip;

module_ip_vs_pe! {
    type: Sip,
    name: "ip_vs_pe_sip",
    author: "Rust IPVS developers",
    description: "ipvs sip helper",
    license: "GPL",
}

/// The SIP engine.
struct Sip;

impl pe_abi::PersistenceEngine for Sip {
    const NAME: &'static [u8] = b"sip";

    fn fill_param(payload: &[u8], _dataoff: usize) -> Option<(usize, usize)> {
        sip::fill_param(payload)
    }
}
