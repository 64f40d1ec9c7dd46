// SPDX-License-Identifier: GPL-2.0

//! Forwarding a packet to its real server (NAT, direct routing) and rewriting replies.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_xmit.c` (`ip_vs_nat_xmit`, `ip_vs_dr_xmit`),
//! `ip_vs_proto_tcp.c`/`ip_vs_proto_udp.c` (`*_dnat_handler`, `*_snat_handler`)

use crate::{
    conn::Conn,
    proto::{self, Ipv4, IPPROTO_TCP, IPPROTO_UDP, TCP_CSUM_OFF, UDP_CSUM_OFF},
    service::as_v4,
};
use kernel::{
    net::{
        namespace::Net,
        netfilter::Verdict,
        skbuff::{Checksum, SkBuff},
    },
    prelude::*,
};

const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_FRAG_NEEDED: u8 = 4;
const ICMP_TIME_EXCEEDED: u8 = 11;

fn csum_off(protocol: u8) -> usize {
    if protocol == IPPROTO_TCP {
        TCP_CSUM_OFF
    } else {
        UDP_CSUM_OFF
    }
}

/// Rewrites one address and port of the packet, with incremental checksum updates.
/// `src` selects the source (SNAT of replies) or destination (DNAT) fields.
fn mangle(skb: &mut SkBuff<'_>, ip: &Ipv4, src: bool, addr: [u8; 4], port: [u8; 2]) -> Result {
    let l4 = proto::l4_len(ip.protocol).ok_or(EINVAL)?;
    let (a_off, p_off) = if src { (12, 0) } else { (16, 2) };
    let cs = ip.ihl + csum_off(ip.protocol);
    let (old_addr, old_port, udp_nocsum) = {
        let h = skb.writable(ip.ihl + l4)?;
        let old_addr = [h[a_off], h[a_off + 1], h[a_off + 2], h[a_off + 3]];
        let po = ip.ihl + p_off;
        let old_port = [h[po], h[po + 1]];
        (old_addr, old_port, ip.protocol == IPPROTO_UDP && h[cs] == 0 && h[cs + 1] == 0)
    };
    let partial = skb.checksum() == Checksum::Partial;
    if !udp_nocsum {
        skb.csum_replace4(cs, old_addr, addr, true)?;
        skb.csum_replace2(cs, old_port, port, false)?;
    }
    let h = skb.writable(ip.ihl + l4)?;
    if ip.protocol == IPPROTO_UDP && !udp_nocsum && !partial && h[cs] == 0 && h[cs + 1] == 0 {
        // A computed UDP checksum of zero is sent as all ones (zero means "none").
        h[cs] = 0xff;
        h[cs + 1] = 0xff;
    }
    h[a_off..a_off + 4].copy_from_slice(&addr);
    let po = ip.ihl + p_off;
    h[po..po + 2].copy_from_slice(&port);
    Ok(())
}

/// Routes the packet to `daddr`, decrements the TTL and checks the path MTU (less
/// `overhead` bytes of encapsulation), as upstream's `__ip_vs_get_out_rt` does for a
/// non-local real server. Returns the packet and the route's source address, or the verdict
/// to give up with.
fn route_to<'a>(
    net: &Net,
    mut skb: SkBuff<'a>,
    ip: &Ipv4,
    daddr: [u8; 4],
    overhead: u32,
) -> Result<(SkBuff<'a>, [u8; 4]), Verdict<'a>> {
    let saddr = match skb.route_output_v4(net, daddr, [0; 4], ip.tos) {
        Ok(s) => s,
        Err(_) => return Err(Verdict::Drop(skb)),
    };
    if skb.route_is_local() {
        // A real server on the director itself: deliver locally.
        return Err(Verdict::Accept(skb));
    }
    if ip.ttl <= 1 {
        skb.icmp_send(ICMP_TIME_EXCEEDED, 0, 0);
        return Err(Verdict::Drop(skb));
    }
    if let Some(mtu) = skb.route_mtu().map(|m| m.saturating_sub(overhead)) {
        if ip.df && u32::from(ip.tot_len) > mtu && !skb.is_gso() {
            skb.icmp_send(ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, mtu.to_be());
            return Err(Verdict::Drop(skb));
        }
    }
    match skb.writable(ip.ihl) {
        Ok(h) => {
            h[8] = ip.ttl - 1;
            proto::ip_send_check(h, ip.ihl);
        }
        Err(_) => return Err(Verdict::Drop(skb)),
    }
    Ok((skb, saddr))
}

/// NAT: rewrite the destination to the real server and send it there (`ip_vs_nat_xmit`).
pub(crate) fn nat_xmit<'a>(net: &Net, skb: SkBuff<'a>, ip: &Ipv4, cp: &Conn) -> Verdict<'a> {
    let daddr = as_v4(&cp.daddr);
    let mut skb = match route_to(net, skb, ip, daddr, 0) {
        Ok((s, _)) => s,
        Err(v) => return v,
    };
    if mangle(&mut skb, ip, false, daddr, cp.dport).is_err() {
        return Verdict::Drop(skb);
    }
    skb.set_untracked();
    Verdict::Stolen(skb.ip_local_out(net))
}

/// Direct routing: send the packet unchanged to the real server's address
/// (`ip_vs_dr_xmit`).
pub(crate) fn dr_xmit<'a>(net: &Net, skb: SkBuff<'a>, ip: &Ipv4, cp: &Conn) -> Verdict<'a> {
    let mut skb = match route_to(net, skb, ip, as_v4(&cp.daddr), 0) {
        Ok((s, _)) => s,
        Err(v) => return v,
    };
    skb.set_untracked();
    Verdict::Stolen(skb.ip_local_out(net))
}

const IPPROTO_IPIP: u8 = 4;
const IPIP_HLEN: u32 = 20;

/// IP-in-IP tunnelling: wrap the packet in an IPv4 header to the real server
/// (`ip_vs_tunnel_xmit`). The outer header copies the inner TOS, TTL and DF bit, so path MTU
/// discovery keeps working through the tunnel.
pub(crate) fn tunnel_xmit<'a>(net: &Net, skb: SkBuff<'a>, ip: &Ipv4, cp: &Conn) -> Verdict<'a> {
    let daddr = as_v4(&cp.daddr);
    let (mut skb, saddr) = match route_to(net, skb, ip, daddr, IPIP_HLEN) {
        Ok(r) => r,
        Err(v) => return v,
    };
    let ttl = ip.ttl - 1;
    match skb.push_ipip_header() {
        Ok(h) => {
            h[0] = 0x45;
            h[1] = ip.tos;
            h[2] = 0;
            h[3] = 0;
            h[4] = 0;
            h[5] = 0;
            h[6] = if ip.df { 0x40 } else { 0 };
            h[7] = 0;
            h[8] = ttl;
            h[9] = IPPROTO_IPIP;
            h[12..16].copy_from_slice(&saddr);
            h[16..20].copy_from_slice(&daddr);
        }
        Err(_) => return Verdict::Drop(skb),
    }
    skb.ip_select_ident(net);
    skb.set_untracked();
    Verdict::Stolen(skb.ip_local_out(net))
}

/// Rewrites a real server's reply so that it comes from the virtual service
/// (`handle_response`, `*_snat_handler`).
pub(crate) fn snat_reply<'a>(mut skb: SkBuff<'a>, ip: &Ipv4, cp: &Conn) -> Verdict<'a> {
    if mangle(&mut skb, ip, true, as_v4(&cp.vaddr), cp.vport).is_err() {
        return Verdict::Drop(skb);
    }
    match skb.writable(ip.ihl) {
        Ok(h) => proto::ip_send_check(h, ip.ihl),
        Err(_) => return Verdict::Drop(skb),
    }
    Verdict::Accept(skb)
}
