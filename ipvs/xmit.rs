// SPDX-License-Identifier: GPL-2.0

//! Forwarding a packet to its real server (NAT, direct routing, IP-in-IP tunnel, or the local
//! host when the real server's address is the director's own), rewriting NAT replies, and
//! forwarding ICMP errors that belong to a connection.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_xmit.c` (`ip_vs_nat_xmit`, `ip_vs_dr_xmit`,
//! `ip_vs_tunnel_xmit`, `ip_vs_icmp_xmit`, `__ip_vs_get_out_rt`), `ip_vs_core.c`
//! (`ip_vs_nat_icmp`), `ip_vs_proto_tcp.c`/`ip_vs_proto_udp.c` (`*_dnat_handler`,
//! `*_snat_handler`)

use crate::{
    conn::Conn,
    proto::{
        self, is_loopback, is_loopback6, IpHdr, Quoted, Quoted6, AF_INET6, ICMPV6_EXC_HOPLIMIT,
        ICMPV6_PKT_TOOBIG, ICMPV6_TIME_EXCEED, ICMP_CSUM_OFF, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED,
        ICMP_HLEN, ICMP_HOST_UNREACH, ICMP_TIME_EXCEEDED, IPPROTO_GRE, IPPROTO_IPIP, IPPROTO_UDP,
        IPV6_MIN_MTU, L4Csum,
    },
    protocol::Protocol,
    ctl_config::{tun_flags, tun_type},
    service::as_v4,
    uapi::conn_flags,
};
use core::sync::atomic::Ordering::Relaxed;
use kernel::{
    net::{
        namespace::Net,
        netfilter::{InetHook, Verdict},
        skbuff::{Checksum, Encap, Route, RouteSlot, SkBuff},
    },
    prelude::*,
    sync::rcu,
};

/// The offsets of the address that a rewrite of the source (`src`) or destination changes.
#[inline(always)]
fn addr_off(v6: bool, src: bool) -> usize {
    match (v6, src) {
        (false, true) => 12,
        (false, false) => 16,
        (true, true) => 8,
        (true, false) => 24,
    }
}

/// Rewrites one address and port of a TCP or UDP packet (`P`: the protocol's checksum
/// rules, [`L4Csum`]), with incremental checksum updates (the checksum part of
/// `tcp_snat_handler`/`udp_snat_handler` and the dnat ones). `src` selects the source (SNAT
/// of replies) or destination (DNAT) fields; `addr` is of the packet's family (IPv4 in its
/// first 4 bytes).
#[inline(always)]
pub(crate) fn mangle_l4<P: L4Csum>(
    skb: &mut SkBuff<'_>,
    ip: &IpHdr,
    src: bool,
    addr: &[u8; 16],
    port: [u8; 2],
) -> Result {
    let v6 = ip.is_v6();
    let a_off = addr_off(v6, src);
    let p_off = if src { 0 } else { 2 };
    let cs = ip.len + P::CSUM_OFF;
    let po = ip.len + p_off;
    let state = skb.checksum();
    let partial = state == Checksum::Partial;
    if state == Checksum::Complete || (partial && v6) {
        // The stack's helpers also keep the packet's own checksum state right.
        return mangle_with_state::<P>(skb, ip, (a_off, po, cs), addr, port, state);
    }
    if v6 {
        return mangle_v6::<P>(skb, ip, (a_off, po, cs), addr, port);
    }
    let h = skb.writable(ip.len + P::HLEN)?;
    // `h` holds the IP header (`ip.len` >= 20 bytes) and the transport header, whose ports
    // and checksum are within its first `P::HLEN` bytes: fixed offsets from here on.
    let (iph, l4) = h.split_at_mut(ip.len.min(h.len()));
    let (Some(iph), Some(l4)) = (iph.first_chunk_mut::<20>(), l4.get_mut(..P::HLEN)) else {
        return Err(EINVAL);
    };
    let new_addr = [addr[0], addr[1], addr[2], addr[3]];
    let old_addr = [iph[a_off], iph[a_off + 1], iph[a_off + 2], iph[a_off + 3]];
    let old_port = [l4[p_off], l4[p_off + 1]];
    let l4_sum = [l4[P::CSUM_OFF], l4[P::CSUM_OFF + 1]];
    if P::has_csum(l4_sum) {
        let sum = if partial {
            // The field holds the pseudo header's sum, not complemented, which the stack
            // completes over the transport header and payload (the new port included):
            // only the address changes in it (`inet_proto_csum_replace4` of a partial
            // checksum, upstream's `*_partial_csum_update`).
            let s = proto::csum_replace4([!l4_sum[0], !l4_sum[1]], old_addr, new_addr);
            [!s[0], !s[1]]
        } else {
            P::on_wire(proto::csum_replace_addr_port(l4_sum, (old_addr, old_port), (new_addr, port)))
        };
        l4[P::CSUM_OFF] = sum[0];
        l4[P::CSUM_OFF + 1] = sum[1];
    }
    // The IP header checksum too: only the address changed (the stack verified the rest).
    let ip_sum = proto::csum_replace4([iph[10], iph[11]], old_addr, new_addr);
    iph[10] = ip_sum[0];
    iph[11] = ip_sum[1];
    iph[a_off..a_off + 4].copy_from_slice(&new_addr);
    l4[p_off] = port[0];
    l4[p_off + 1] = port[1];
    Ok(())
}

/// [`mangle_l4`] of an IPv6 packet whose checksum state needs no care (not `Partial` or
/// `Complete`). `at`: offsets of the address, port and transport checksum.
fn mangle_v6<P: L4Csum>(
    skb: &mut SkBuff<'_>,
    ip: &IpHdr,
    (a_off, po, cs): (usize, usize, usize),
    addr: &[u8; 16],
    port: [u8; 2],
) -> Result {
    let h = skb.writable(ip.len + P::HLEN)?;
    // Old and new address and port, as one run of bytes for the checksum update.
    let (mut old, mut new) = ([0u8; 18], [0u8; 18]);
    old[..16].copy_from_slice(h.get(a_off..a_off + 16).ok_or(EINVAL)?);
    old[16..].copy_from_slice(&[h[po], h[po + 1]]);
    new[..16].copy_from_slice(addr);
    new[16..].copy_from_slice(&port);
    if P::has_csum([h[cs], h[cs + 1]]) {
        let sum = P::on_wire(proto::csum_replace([h[cs], h[cs + 1]], &old, &new));
        h[cs..cs + 2].copy_from_slice(&sum);
    }
    h[a_off..a_off + 16].copy_from_slice(addr);
    h[po..po + 2].copy_from_slice(&port);
    Ok(())
}

/// [`mangle_l4`] for an IPv6 packet whose checksum the stack completes on output
/// (`Partial`; IPv4 ones are updated in place) or a packet whose received sum it carries
/// (`Complete`): the updates go through
/// `inet_proto_csum_replace4`/`16`, which adjust that state too (upstream's
/// `*_partial_csum_update` and `CHECKSUM_COMPLETE` cases). `at`: offsets of the address,
/// port and transport checksum.
fn mangle_with_state<P: L4Csum>(
    skb: &mut SkBuff<'_>,
    ip: &IpHdr,
    (a_off, po, cs): (usize, usize, usize),
    addr: &[u8; 16],
    port: [u8; 2],
    state: Checksum,
) -> Result {
    let v6 = ip.is_v6();
    let alen = if v6 { 16 } else { 4 };
    // The new address and port go in first, with the IP header checksum's update (IPv4; only
    // the address changed), then the transport checksum is adjusted through the stack.
    let (old_addr, old_port, has_csum) = {
        let h = skb.writable(ip.len + P::HLEN)?;
        let mut old_addr = [0u8; 16];
        let a = h.get_mut(a_off..a_off + alen).ok_or(EINVAL)?;
        old_addr[..alen].copy_from_slice(a);
        a.copy_from_slice(addr.get(..alen).ok_or(EINVAL)?);
        let old_port = [h[po], h[po + 1]];
        h[po] = port[0];
        h[po + 1] = port[1];
        if !v6 {
            let o = [old_addr[0], old_addr[1], old_addr[2], old_addr[3]];
            let ip_sum = proto::csum_replace4([h[10], h[11]], o, [addr[0], addr[1], addr[2], addr[3]]);
            h[10] = ip_sum[0];
            h[11] = ip_sum[1];
        }
        (old_addr, old_port, P::has_csum([h[cs], h[cs + 1]]))
    };
    if !has_csum {
        return Ok(());
    }
    if v6 {
        skb.csum_replace16(cs, &old_addr, addr)?;
    } else {
        let o = [old_addr[0], old_addr[1], old_addr[2], old_addr[3]];
        skb.csum_replace4(cs, o, [addr[0], addr[1], addr[2], addr[3]], true)?;
    }
    skb.csum_replace2(cs, old_port, port, false)?;
    // A partial checksum is the stack's to finish; a full one follows the protocol's rule
    // for a computed value.
    if state != Checksum::Partial {
        let h = skb.writable(ip.len + P::HLEN)?;
        let sum = [h[cs], h[cs + 1]];
        let wire = P::on_wire(sum);
        if wire != sum {
            h[cs..cs + 2].copy_from_slice(&wire);
        }
    }
    Ok(())
}

/// Where [`route_to`] sends a packet.
enum Out {
    /// The real server is this host: the packet continues to local delivery unchanged in
    /// route.
    Local,
    /// Another host; the packet carries the route to it, from `saddr` (of the real server's
    /// family; IPv4 in the first 4 bytes).
    Remote { saddr: [u8; 16] },
}

/// Whether the real server of `cp` is an IPv6 address (upstream's `cp->daf`): the family
/// of the route to it and of a tunnel's outer header.
fn dest_v6(cp: &Conn) -> bool {
    cp.daf() == AF_INET6
}

/// Routes the packet to the real server of `cp` (`__ip_vs_get_out_rt`,
/// `__ip_vs_get_out_rt_v6`), by the route the server caches (looked up afresh when stale).
/// A local server leaves the packet as it is. For another host: the TTL or hop limit is
/// decremented ("time exceeded" sent when it runs out) and the path MTU less `overhead`
/// bytes of encapsulation is checked. An IPv4 packet with DF that does not fit is answered
/// "fragmentation needed", unless it is itself an ICMP error or DF does not matter
/// (`icmp`); an IPv6 packet that does not fit (by its largest fragment, if reassembled) is
/// dropped, answered "packet too big" unless it is an ICMP error or a non-first fragment.
/// The route is attached only once all checks passed, so that ICMP errors about the packet
/// come from the address the client used.
#[inline(always)]
fn route_to<'a>(
    net: &Net,
    mut skb: SkBuff<'a>,
    ip: &IpHdr,
    cp: &Conn,
    g: &rcu::Guard,
    overhead: u32,
    icmp: bool,
) -> Result<(SkBuff<'a>, Out), Verdict<'a>> {
    let outer_v6 = dest_v6(cp);
    // The real server's cached route (upstream's `dest_dst`): no lookup per packet. A
    // server removed from its service (an ICMP error about one of its connections) caches
    // none, so that nothing holds a device for it.
    // An unbound synced connection has no server to cache a route either.
    let mut slot = RouteSlot::new();
    let route = match cp.dest().filter(|d| d.is_available()) {
        Some(d) => d.route.output(net, outer_v6, &cp.daddr, g, &mut slot),
        None => Route::output_into(net, outer_v6, &cp.daddr, &mut slot),
    };
    let rt = match route {
        Ok(r) => r,
        Err(_) => {
            if ip.is_v6() {
                skb.link_failure();
            } else {
                skb.icmp_send(ICMP_DEST_UNREACH, ICMP_HOST_UNREACH, 0);
            }
            return Err(Verdict::Drop(skb));
        }
    };
    if rt.is_local() {
        return Ok((skb, Out::Local));
    }
    // Loopback sources never leave the host.
    if ip.saddr_is_loopback() {
        return Err(Verdict::Drop(skb));
    }
    if ip.ttl <= 1 {
        if ip.is_v6() {
            skb.icmpv6_send(net, ICMPV6_TIME_EXCEED, ICMPV6_EXC_HOPLIMIT, 0, true);
        } else {
            skb.icmp_send(ICMP_TIME_EXCEEDED, 0, 0);
        }
        return Err(Verdict::Drop(skb));
    }
    // The path MTU less the encapsulation: read only where it matters (at each place: a
    // closure would keep the route and `overhead` in memory on the hot path).
    let min_mtu = if outer_v6 { IPV6_MIN_MTU } else { 68 };
    if overhead != 0 && rt.mtu().saturating_sub(overhead) < min_mtu {
        return Err(Verdict::Drop(skb));
    }
    if ip.is_v6() {
        let mtu = rt.mtu().saturating_sub(overhead);
        let fms = u32::from(skb.frag_max_size6());
        let too_big = if fms != 0 { fms > mtu } else { !skb.fits_mtu(mtu) };
        if too_big {
            if !icmp && ip.frag_offset == 0 {
                skb.icmpv6_send(net, ICMPV6_PKT_TOOBIG, 0, mtu, false);
            }
            return Err(Verdict::Drop(skb));
        }
        match skb.writable(proto::IPV6_HLEN) {
            Ok(h) => h[7] = h[7].saturating_sub(1),
            Err(_) => return Err(Verdict::Drop(skb)),
        }
    } else {
        // Without DF the packet is fragmented as needed: no MTU to look at.
        if !icmp && ip.df && !skb.is_gso() {
            let mtu = rt.mtu().saturating_sub(overhead);
            if skb.len() > mtu {
                skb.icmp_send(ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, mtu.to_be());
                return Err(Verdict::Drop(skb));
            }
        }
        match skb.writable(ip.len) {
            Ok(h) => proto::decrease_ttl(h),
            Err(_) => return Err(Verdict::Drop(skb)),
        }
    }
    let saddr = *rt.saddr();
    skb.set_route_ref(rt);
    Ok((skb, Out::Remote { saddr }))
}

/// Sends a packet on its new route (`ip_vs_send_or_cont` for another host): untracked and
/// marked as handled, so that no IPVS hook takes it again on its way out (and the LOCAL_OUT
/// hooks are skipped when IPVS's is the only one). Its headers are
/// complete: NAT and direct routing rewrite them in place, sums included. `v6`: its family.
fn send<'a>(net: &Net, mut skb: SkBuff<'a>, v6: bool) -> Verdict<'a> {
    skb.set_ipvs_property();
    Verdict::Stolen(skb.send_prepared(net, v6, crate::local_out_hook()))
}

/// [`send`] for a packet in a tunnel header just pushed, whose length (and, for IPv4,
/// header sum) the output sets (`ip_local_out`, `ip6_local_out`).
fn send_encap<'a>(net: &Net, mut skb: SkBuff<'a>, v6: bool) -> Verdict<'a> {
    skb.set_ipvs_property();
    skb.set_untracked();
    skb.prepare_resend();
    if v6 {
        Verdict::Stolen(skb.ip6_local_out(net))
    } else {
        Verdict::Stolen(skb.ip_local_out(net))
    }
}

/// Lets a packet for a real server on this host continue to local delivery.
fn cont<'a>(mut skb: SkBuff<'a>) -> Verdict<'a> {
    skb.set_ipvs_property();
    skb.set_untracked();
    Verdict::Accept(skb)
}

/// Whether NAT would turn a packet from the world into one to a loopback address, which
/// upstream refuses: IPv4 unless sent by this host (`LOCAL_OUT`), IPv6 when it came in on a
/// device other than loopback.
fn nat_to_loopback(skb: &SkBuff<'_>, ip: &IpHdr, cp: &Conn, hook: InetHook) -> bool {
    if ip.is_v6() {
        skb.from_remote_dev() && is_loopback6(&cp.daddr)
    } else {
        is_loopback(as_v4(&cp.daddr)) && hook != InetHook::LocalOut
    }
}

/// NAT: rewrite the destination to the real server and send it there (`ip_vs_nat_xmit`,
/// `ip_vs_nat_xmit_v6`). A real server at a local address gets the rewritten packet by
/// local delivery.
#[inline(always)]
pub(crate) fn nat_xmit<'a>(
    net: &Net,
    skb: SkBuff<'a>,
    ip: &IpHdr,
    pr: Protocol,
    cp: &Conn,
    g: &rcu::Guard,
    hook: InetHook,
) -> Verdict<'a> {
    let (mut skb, out) = match route_to(net, skb, ip, cp, g, 0, false) {
        Ok(r) => r,
        Err(v) => return v,
    };
    if matches!(out, Out::Local) && nat_to_loopback(&skb, ip, cp, hook) {
        return Verdict::Drop(skb);
    }
    if pr.dnat_handler(&mut skb, ip, cp).is_err() {
        return Verdict::Drop(skb);
    }
    skb.set_ignore_df();
    match out {
        Out::Local => cont(skb),
        Out::Remote { .. } => send(net, skb, ip.is_v6()),
    }
}

/// Direct routing: send the packet unchanged to the real server's address
/// (`ip_vs_dr_xmit`, `ip_vs_dr_xmit_v6`); `icmp` for an ICMP error being forwarded.
#[inline(always)]
pub(crate) fn dr_xmit<'a>(
    net: &Net,
    skb: SkBuff<'a>,
    ip: &IpHdr,
    cp: &Conn,
    g: &rcu::Guard,
    icmp: bool,
) -> Verdict<'a> {
    match route_to(net, skb, ip, cp, g, 0, icmp) {
        Ok((skb, Out::Local)) => cont(skb),
        Ok((mut skb, Out::Remote { .. })) => {
            if ip.is_v6() {
                skb.set_ignore_df();
            }
            send(net, skb, ip.is_v6())
        }
        Err(v) => v,
    }
}

const IPIP_HLEN: u32 = 20;
const IPV6_HLEN: u32 = 40;
/// The GUE header, and the private flags and remote checksum option after it.
const GUE_HLEN: usize = 4;
const GUE_PRIV_HLEN: usize = 4;
const GUE_REMCSUM_HLEN: usize = 4;
/// `GUE_FLAG_PRIV`, `GUE_PFLAG_REMCSUM` as they appear on the wire.
const GUE_FLAG_PRIV: [u8; 2] = [0, 1];
const GUE_PFLAG_REMCSUM: [u8; 4] = [0x80, 0, 0, 0];
/// EtherTypes of the inner packet of a GRE tunnel.
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;

/// How the real server's tunnel wraps a packet: its type and flags (`tun_type`,
/// `tun_flags` of the server), and whether the packet leaves its transport checksum to
/// the hardware (`CHECKSUM_PARTIAL`), which GUE's remote checksum offload hands on.
fn encap_of(cp: &Conn, skb: &SkBuff<'_>) -> Encap {
    // An unbound synced connection has no server: upstream would dereference the missing
    // one here; such a connection gets plain IP in IP.
    let Some(d) = cp.dest() else {
        return Encap::Ipip;
    };
    let flags = d.tun_flags.load(Relaxed);
    match d.tun_type.load(Relaxed) {
        tun_type::GUE => {
            let remote_csum = flags & tun_flags::REMCSUM != 0 && skb.checksum() == Checksum::Partial;
            let opt = if remote_csum { GUE_PRIV_HLEN + GUE_REMCSUM_HLEN } else { 0 };
            Encap::Gue {
                hdr_len: (GUE_HLEN + opt) as u32,
                csum: flags & (tun_flags::CSUM | tun_flags::REMCSUM) != 0,
                remote_csum,
            }
        }
        tun_type::GRE => Encap::Gre { csum: flags & tun_flags::CSUM != 0 },
        // Upstream takes every other type for IP in IP.
        _ => Encap::Ipip,
    }
}

/// The GUE header for an inner packet of protocol `inner_proto`, with the remote checksum
/// option when `remote_csum` (`ipvs_gue_encap`): where the inner checksum's range starts
/// and where the checksum goes, both from the start of the inner packet. `None` when the
/// packet's checksum range starts before it.
fn gue_header(skb: &SkBuff<'_>, remote_csum: bool, inner_proto: u8) -> Option<([u8; 12], usize)> {
    let mut h = [0u8; GUE_HLEN + GUE_PRIV_HLEN + GUE_REMCSUM_HLEN];
    h[1] = inner_proto;
    if !remote_csum {
        return Some((h, GUE_HLEN));
    }
    let (start, off) = skb.partial_csum()?;
    let start = u16::try_from(start).ok()?;
    // hlen counts the option words after the 4-byte header.
    h[0] = ((GUE_PRIV_HLEN + GUE_REMCSUM_HLEN) / 4) as u8;
    h[2..4].copy_from_slice(&GUE_FLAG_PRIV);
    h[4..8].copy_from_slice(&GUE_PFLAG_REMCSUM);
    h[8..10].copy_from_slice(&start.to_be_bytes());
    h[10..12].copy_from_slice(&start.wrapping_add(off).to_be_bytes());
    Some((h, h.len()))
}

/// Tunnelling: wrap the packet in an IP header to the real server (`ip_vs_tunnel_xmit`,
/// `ip_vs_tunnel_xmit_v6`): IPv4 or IPv6 by the server's family, whatever the packet's
/// (mixed-family tunnels), after a GUE header in UDP to the server's tunnel port, or a GRE
/// header, as the server's tunnel type says (IP in IP otherwise). The outer header copies
/// the inner TOS or traffic class (congestion experienced becoming ECT(0),
/// `INET_ECN_encapsulate`) and the decremented TTL or hop limit. For an IPv4 packet, with
/// `pmtu_disc` the outer IPv4 header copies its DF bit and packets too big for the tunnel
/// are answered "fragmentation needed", so path MTU discovery works through the tunnel;
/// without, the outer packet may be fragmented. An IPv6 packet is always held to the
/// tunnel's MTU. `icmp` for an ICMP error being forwarded.
pub(crate) fn tunnel_xmit<'a>(
    net: &Net,
    skb: SkBuff<'a>,
    ip: &IpHdr,
    cp: &Conn,
    g: &rcu::Guard,
    icmp: bool,
    pmtu_disc: bool,
) -> Verdict<'a> {
    let outer_v6 = dest_v6(cp);
    let encap = encap_of(cp, &skb);
    let overhead = if outer_v6 { IPV6_HLEN } else { IPIP_HLEN }.saturating_add(encap.headroom());
    let no_df_check = icmp || (!ip.is_v6() && !pmtu_disc);
    let (mut skb, saddr) = match route_to(net, skb, ip, cp, g, overhead, no_df_check) {
        Ok((skb, Out::Local)) => return cont(skb),
        Ok((skb, Out::Remote { saddr })) => (skb, saddr),
        Err(v) => return v,
    };
    // `route_to` sent TTLs of 1 and 0 back as "time exceeded"; saturating all the same.
    let ttl = ip.ttl.saturating_sub(1);
    let inner_proto = if ip.is_v6() { proto::IPPROTO_IPV6 } else { IPPROTO_IPIP };
    if skb.tunnel_prepare(encap, outer_v6, inner_proto).is_err() {
        return Verdict::Drop(skb);
    }
    let outer_proto = match encap {
        Encap::Ipip => inner_proto,
        Encap::Gue { csum, remote_csum, .. } => {
            let Some((h, len)) = gue_header(&skb, remote_csum, inner_proto) else {
                return Verdict::Drop(skb);
            };
            let pushed = skb.push_gue_header(h.get(..len).unwrap_or(&[]), remote_csum).and_then(|()| {
                let port = cp.dest().map_or([0, 0], |d| d.tun_port());
                skb.push_udp_header(net, port, !csum, &saddr, &cp.daddr, outer_v6)
            });
            if pushed.is_err() {
                return Verdict::Drop(skb);
            }
            IPPROTO_UDP
        }
        Encap::Gre { csum } => {
            let ethertype = if ip.is_v6() { ETH_P_IPV6 } else { ETH_P_IP };
            if skb.push_gre_header(csum, ethertype).is_err() {
                return Verdict::Drop(skb);
            }
            IPPROTO_GRE
        }
    };
    let ds = proto::ecn_encapsulate(ip.tos);
    if outer_v6 {
        match skb.push_ipv6_header() {
            Ok(h) => {
                h[0] = 0x60 | (ds >> 4);
                h[1] = ds << 4;
                // Flow label 0; the payload length is set on output.
                h[2..6].fill(0);
                h[6] = outer_proto;
                h[7] = ttl;
                h[8..24].copy_from_slice(&saddr);
                h[24..40].copy_from_slice(&cp.daddr);
            }
            Err(_) => return Verdict::Drop(skb),
        }
        skb.set_ignore_df();
        return send_encap(net, skb, true);
    }
    match skb.push_ip_header() {
        Ok(h) => {
            h[0] = 0x45;
            h[1] = ds;
            h[2..6].fill(0);
            h[6] = if ip.df && pmtu_disc { 0x40 } else { 0 };
            h[7] = 0;
            h[8] = ttl;
            h[9] = outer_proto;
            h[10] = 0;
            h[11] = 0;
            h[12..16].copy_from_slice(&saddr[..4]);
            h[16..20].copy_from_slice(&cp.daddr[..4]);
        }
        Err(_) => return Verdict::Drop(skb),
    }
    skb.ip_select_ident(net);
    send_encap(net, skb, false)
}

/// Rewrites an ICMP error about NAT connection `cp` (`ip_vs_nat_icmp`). Towards the client
/// (`out`), the real server's address and port become the virtual service's: in the outer
/// source and in the quoted packet's destination. Towards the real server, the virtual
/// service's become the real server's in the outer destination and the quoted source. The
/// ICMP checksum is computed afresh; the quoted transport checksum is left alone, as
/// upstream does (the quote is usually truncated anyway).
pub(crate) fn nat_icmp(skb: &mut SkBuff<'_>, ihl: usize, q: &Quoted, out: bool, cp: &Conn) -> Result {
    let ports_at = q.off + q.ip.ihl;
    // AH and ESP quote no ports: only the addresses change.
    let ports = Protocol::of(q.ip.protocol).is_some_and(|p| p.fixed_ports().is_none());
    let (outer_at, quoted_at, port_at, addr, port) = if out {
        (12, q.off + 16, ports_at + 2, as_v4(&cp.vaddr), cp.vport)
    } else {
        (16, q.off + 12, ports_at, as_v4(&cp.daddr), cp.dport)
    };
    let h = skb.writable(if ports { ports_at + 4 } else { ports_at })?;
    // The quoted header length was read before the bytes were made private: check again.
    if usize::from(h[q.off] & 0x0f) * 4 != q.ip.ihl {
        return Err(EINVAL);
    }
    h[outer_at..outer_at + 4].copy_from_slice(&addr);
    proto::ip_send_check(h, ihl);
    h[quoted_at..quoted_at + 4].copy_from_slice(&addr);
    proto::ip_send_check(&mut h[q.off..], q.ip.ihl);
    if ports {
        h[port_at..port_at + 2].copy_from_slice(&port);
    }
    h[ihl + ICMP_CSUM_OFF..ihl + ICMP_CSUM_OFF + 2].fill(0);
    let sum = skb.csum_fold_from(ihl)?;
    let h = skb.writable(ihl + ICMP_HLEN)?;
    h[ihl + ICMP_CSUM_OFF..ihl + ICMP_CSUM_OFF + 2].copy_from_slice(&sum.to_ne_bytes());
    skb.set_csum_unnecessary();
    Ok(())
}

/// Forwards an ICMP or ICMPv6 error about connection `cp` to its real server
/// (`ip_vs_icmp_xmit`, `ip_vs_icmp_xmit_v6`): as is by the connection's method for DR and
/// tunnel connections, translated by `nat` ([`nat_icmp`], [`nat_icmp_v6`]) for NAT ones.
/// `ip` is the error's own header.
pub(crate) fn icmp_xmit<'a>(
    net: &Net,
    skb: SkBuff<'a>,
    ip: &IpHdr,
    cp: &Conn,
    g: &rcu::Guard,
    hook: InetHook,
    pmtu_disc: bool,
    nat: impl FnOnce(&mut SkBuff<'a>) -> Result,
) -> Verdict<'a> {
    match cp.fwd_method() {
        conn_flags::MASQ => {}
        conn_flags::DROUTE => return dr_xmit(net, skb, ip, cp, g, true),
        conn_flags::TUNNEL => return tunnel_xmit(net, skb, ip, cp, g, true, pmtu_disc),
        _ => return Verdict::Accept(skb),
    }
    let (mut skb, out) = match route_to(net, skb, ip, cp, g, 0, true) {
        Ok(r) => r,
        Err(v) => return v,
    };
    if matches!(out, Out::Local) && (hook == InetHook::Forward || nat_to_loopback(&skb, ip, cp, hook)) {
        return Verdict::Drop(skb);
    }
    if nat(&mut skb).is_err() {
        return Verdict::Drop(skb);
    }
    skb.set_ignore_df();
    match out {
        Out::Local => cont(skb),
        Out::Remote { .. } => send(net, skb, ip.is_v6()),
    }
}

/// Rewrites an ICMPv6 error about NAT connection `cp` (`ip_vs_nat_icmp_v6`), as
/// [`nat_icmp`] does for IPv4: the outer source and quoted destination become the virtual
/// service's towards the client (`out`), the outer destination and quoted source the real
/// server's towards it; the quoted port likewise. The ICMPv6 checksum (with its pseudo
/// header) is computed afresh.
pub(crate) fn nat_icmp_v6(skb: &mut SkBuff<'_>, ip: &IpHdr, q: &Quoted6, out: bool, cp: &Conn) -> Result {
    let (outer_at, quoted_at, port_at, addr, port) = if out {
        (8, q.off + 24, q.l4_off + 2, &cp.vaddr, cp.vport)
    } else {
        (24, q.off + 8, q.l4_off, &cp.daddr, cp.dport)
    };
    // AH and ESP quote no ports: only the addresses change.
    let ports = Protocol::of(q.protocol).is_some_and(|p| p.fixed_ports().is_none());
    let h = skb.writable(if ports { q.l4_off.max(q.off + proto::IPV6_HLEN) + 4 } else { q.off + proto::IPV6_HLEN })?;
    h.get_mut(outer_at..outer_at + 16).ok_or(EINVAL)?.copy_from_slice(addr);
    h.get_mut(quoted_at..quoted_at + 16).ok_or(EINVAL)?.copy_from_slice(addr);
    if ports {
        h.get_mut(port_at..port_at + 2).ok_or(EINVAL)?.copy_from_slice(&port);
    }
    let cs = ip.len + ICMP_CSUM_OFF;
    h.get_mut(cs..cs + 2).ok_or(EINVAL)?.fill(0);
    let mut saddr = [0u8; 16];
    let mut daddr = [0u8; 16];
    saddr.copy_from_slice(h.get(8..24).ok_or(EINVAL)?);
    daddr.copy_from_slice(h.get(24..40).ok_or(EINVAL)?);
    let sum = skb.csum_ipv6(ip.len, &saddr, &daddr, proto::IPPROTO_ICMPV6)?;
    let h = skb.writable(ip.len + ICMP_HLEN)?;
    h[cs..cs + 2].copy_from_slice(&sum.to_ne_bytes());
    skb.set_csum_unnecessary();
    Ok(())
}
