// SPDX-License-Identifier: GPL-2.0

//! AH and ESP (IPsec) as upstream's IPVS treats them: no services, no connections, no
//! states of their own. An AH or ESP packet from a client to a virtual address belongs to
//! the client's IKE connection, the UDP connection from its ISAKMP port (500) to port 500 of
//! the virtual address, and goes to that connection's real server by its forwarding method;
//! a reply from a NAT real server goes back through the same connection. Without such a
//! connection the packet is not IPVS's (left to the local stack), nor is a reply
//! answered "port unreachable". ICMP errors quoting AH or ESP belong to the same
//! connection; NAT rewrites only the addresses (there are no ports). The transport header
//! is never read, so a short or fragmented packet is forwarded as it is (`dont_defrag`).
//!
//! The protocol's entries in the interface are in `protocol.rs` (`Protocol::Ah`,
//! `Protocol::Esp`: the UDP lookup tuple, [`crate::protocol::PORT_ISAKMP`], one state, no
//! timeout table) and `protocol_pkt.rs` (never schedules, no transition but the IKE
//! connection's refresh, the address-only rewrite here).
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_proto_ah_esp.c`, `ip_vs_xmit.c` (`ip_vs_nat_xmit`
//! with no `dnat_handler`), `ip_vs_core.c` (`handle_response` with no `snat_handler`,
//! `ip_vs_nat_icmp`)

use crate::proto::{self, IpHdr};
use kernel::{net::skbuff::SkBuff, prelude::*};

/// Rewrites the source (`src`, a NAT reply) or destination address of an AH or ESP packet
/// to `addr` (of the packet's family, IPv4 in its first 4 bytes), with the IPv4 header
/// checksum; nothing after the network header changes (upstream's `ip_vs_nat_xmit` and
/// `handle_response` without a NAT handler). AH's integrity check covers the addresses:
/// as upstream, NAT of AH is the peers' affair.
pub(crate) fn nat(skb: &mut SkBuff<'_>, ip: &IpHdr, src: bool, addr: &[u8; 16]) -> Result {
    if ip.is_v6() {
        let at = if src { 8 } else { 24 };
        let h = skb.writable(proto::IPV6_HLEN)?;
        h.get_mut(at..at + 16).ok_or(EINVAL)?.copy_from_slice(addr);
        return Ok(());
    }
    let at = if src { 12 } else { 16 };
    let h = skb.writable(20)?;
    let new = [addr[0], addr[1], addr[2], addr[3]];
    let a = h.get_mut(at..at + 4).ok_or(EINVAL)?;
    let old = [a[0], a[1], a[2], a[3]];
    a.copy_from_slice(&new);
    // The stack verified the rest of the IPv4 header: only the address changed.
    let sum = proto::csum_replace([h[10], h[11]], &old, &new);
    h[10] = sum[0];
    h[11] = sum[1];
    Ok(())
}
