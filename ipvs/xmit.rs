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
        self, is_loopback, Ipv4, Quoted, ICMP_CSUM_OFF, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED,
        ICMP_HLEN, ICMP_HOST_UNREACH, ICMP_TIME_EXCEEDED, IPPROTO_GRE, IPPROTO_IPIP, IPPROTO_TCP, IPPROTO_UDP,
        TCP_CSUM_OFF, UDP_CSUM_OFF,
    },
    ctl_config::{tun_flags, tun_type},
    service::as_v4,
    uapi::conn_flags,
};
use core::sync::atomic::Ordering::Relaxed;
use kernel::{
    net::{
        namespace::Net,
        netfilter::{InetHook, Verdict},
        skbuff::{Checksum, Encap, SkBuff},
    },
    prelude::*,
    sync::rcu,
};

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
    let po = ip.ihl + p_off;
    let state = skb.checksum();
    if matches!(state, Checksum::Partial | Checksum::Complete) {
        // The stack's helpers also keep the packet's own checksum state right.
        return mangle_with_state(skb, ip, l4, (a_off, po, cs), addr, port, state);
    }
    let h = skb.writable(ip.ihl + l4)?;
    let old = [h[a_off], h[a_off + 1], h[a_off + 2], h[a_off + 3], h[po], h[po + 1]];
    let new = [addr[0], addr[1], addr[2], addr[3], port[0], port[1]];
    // A UDP checksum of zero means "none" and stays so.
    if !(ip.protocol == IPPROTO_UDP && h[cs] == 0 && h[cs + 1] == 0) {
        let mut sum = proto::csum_replace([h[cs], h[cs + 1]], &old, &new);
        if ip.protocol == IPPROTO_UDP && sum == [0, 0] {
            // A computed UDP checksum of zero is sent as all ones.
            sum = [0xff, 0xff];
        }
        h[cs..cs + 2].copy_from_slice(&sum);
    }
    // The IP header checksum too: only the address changed (the stack verified the rest).
    let ip_sum = proto::csum_replace([h[10], h[11]], &old[..4], &addr);
    h[10..12].copy_from_slice(&ip_sum);
    h[a_off..a_off + 4].copy_from_slice(&addr);
    h[po..po + 2].copy_from_slice(&port);
    Ok(())
}

/// [`mangle`] for a packet whose checksum the stack completes on output (`Partial`) or
/// whose received sum it carries (`Complete`): the updates go through
/// `inet_proto_csum_replace4`, which adjusts that state too. `at`: offsets of the address,
/// port and transport checksum.
fn mangle_with_state(
    skb: &mut SkBuff<'_>,
    ip: &Ipv4,
    l4: usize,
    (a_off, po, cs): (usize, usize, usize),
    addr: [u8; 4],
    port: [u8; 2],
    state: Checksum,
) -> Result {
    let (old_addr, old_port, udp_nocsum) = {
        let h = skb.writable(ip.ihl + l4)?;
        let old_addr = [h[a_off], h[a_off + 1], h[a_off + 2], h[a_off + 3]];
        (old_addr, [h[po], h[po + 1]], ip.protocol == IPPROTO_UDP && h[cs] == 0 && h[cs + 1] == 0)
    };
    if !udp_nocsum {
        skb.csum_replace4(cs, old_addr, addr, true)?;
        skb.csum_replace2(cs, old_port, port, false)?;
    }
    let h = skb.writable(ip.ihl + l4)?;
    if ip.protocol == IPPROTO_UDP && !udp_nocsum && state != Checksum::Partial && h[cs] == 0 && h[cs + 1] == 0 {
        h[cs] = 0xff;
        h[cs + 1] = 0xff;
    }
    h[a_off..a_off + 4].copy_from_slice(&addr);
    h[po..po + 2].copy_from_slice(&port);
    proto::ip_send_check(h, ip.ihl);
    Ok(())
}

/// Where [`route_to`] sends a packet.
enum Out {
    /// The real server is this host: the packet continues to local delivery unchanged in
    /// route.
    Local,
    /// Another host; the packet carries the route to it, from `saddr`.
    Remote { saddr: [u8; 4] },
}

/// Routes the packet to the real server of `cp` (`__ip_vs_get_out_rt`), by the route the
/// server caches (looked up afresh when stale). A local server leaves the packet as it is. For another host: the TTL is decremented (time exceeded
/// sent when it runs out) and the path MTU less `overhead` bytes of encapsulation is
/// checked, answering "fragmentation needed" for a DF packet that does not fit, unless the
/// packet is itself an ICMP error, or DF does not matter (`icmp`). The route is attached only once all checks
/// passed, so that ICMP errors about the packet come from the address the client used.
fn route_to<'a>(
    net: &Net,
    mut skb: SkBuff<'a>,
    ip: &Ipv4,
    cp: &Conn,
    g: &rcu::Guard,
    overhead: u32,
    icmp: bool,
) -> Result<(SkBuff<'a>, Out), Verdict<'a>> {
    // The real server's cached route (upstream's `dest_dst`): no lookup per packet.
    let (rt, saddr) = match cp.dest().route.output_v4(net, as_v4(&cp.daddr), g) {
        Ok(r) => r,
        Err(_) => {
            skb.icmp_send(ICMP_DEST_UNREACH, ICMP_HOST_UNREACH, 0);
            return Err(Verdict::Drop(skb));
        }
    };
    if rt.is_local() {
        return Ok((skb, Out::Local));
    }
    // Loopback sources never leave the host.
    if is_loopback(ip.saddr) {
        return Err(Verdict::Drop(skb));
    }
    if ip.ttl <= 1 {
        skb.icmp_send(ICMP_TIME_EXCEEDED, 0, 0);
        return Err(Verdict::Drop(skb));
    }
    let mtu = rt.mtu().saturating_sub(overhead);
    if overhead != 0 && mtu < 68 {
        return Err(Verdict::Drop(skb));
    }
    if !icmp && ip.df && skb.len() > mtu && !skb.is_gso() {
        skb.icmp_send(ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, mtu.to_be());
        return Err(Verdict::Drop(skb));
    }
    match skb.writable(ip.ihl) {
        Ok(h) => proto::decrease_ttl(h),
        Err(_) => return Err(Verdict::Drop(skb)),
    }
    skb.set_route_ref(rt);
    Ok((skb, Out::Remote { saddr }))
}

/// Sends a packet on its new route (`ip_vs_send_or_cont` for another host): untracked and
/// marked as handled, so that no IPVS hook takes it again on its way out.
fn send<'a>(net: &Net, mut skb: SkBuff<'a>) -> Verdict<'a> {
    skb.set_ipvs_property();
    skb.set_untracked();
    skb.prepare_resend();
    Verdict::Stolen(skb.ip_local_out(net))
}

/// Lets a packet for a real server on this host continue to local delivery.
fn cont<'a>(mut skb: SkBuff<'a>) -> Verdict<'a> {
    skb.set_ipvs_property();
    skb.set_untracked();
    Verdict::Accept(skb)
}

/// NAT: rewrite the destination to the real server and send it there (`ip_vs_nat_xmit`).
/// A real server at a local address gets the rewritten packet by local delivery.
pub(crate) fn nat_xmit<'a>(
    net: &Net,
    skb: SkBuff<'a>,
    ip: &Ipv4,
    cp: &Conn,
    g: &rcu::Guard,
    hook: InetHook,
) -> Verdict<'a> {
    let daddr = as_v4(&cp.daddr);
    let (mut skb, out) = match route_to(net, skb, ip, cp, g, 0, false) {
        Ok(r) => r,
        Err(v) => return v,
    };
    // From the world, but translated to a loopback address: refused, as upstream.
    if matches!(out, Out::Local) && is_loopback(daddr) && hook != InetHook::LocalOut {
        return Verdict::Drop(skb);
    }
    if mangle(&mut skb, ip, false, daddr, cp.dport).is_err() {
        return Verdict::Drop(skb);
    }
    skb.set_ignore_df();
    match out {
        Out::Local => cont(skb),
        Out::Remote { .. } => send(net, skb),
    }
}

/// Direct routing: send the packet unchanged to the real server's address
/// (`ip_vs_dr_xmit`); `icmp` for an ICMP error being forwarded.
pub(crate) fn dr_xmit<'a>(
    net: &Net,
    skb: SkBuff<'a>,
    ip: &Ipv4,
    cp: &Conn,
    g: &rcu::Guard,
    icmp: bool,
) -> Verdict<'a> {
    match route_to(net, skb, ip, cp, g, 0, icmp) {
        Ok((skb, Out::Local)) => cont(skb),
        Ok((skb, Out::Remote { .. })) => send(net, skb),
        Err(v) => v,
    }
}

const IPIP_HLEN: u32 = 20;
/// The GUE header, and the private flags and remote checksum option after it.
const GUE_HLEN: usize = 4;
const GUE_PRIV_HLEN: usize = 4;
const GUE_REMCSUM_HLEN: usize = 4;
/// `GUE_FLAG_PRIV`, `GUE_PFLAG_REMCSUM` as they appear on the wire.
const GUE_FLAG_PRIV: [u8; 2] = [0, 1];
const GUE_PFLAG_REMCSUM: [u8; 4] = [0x80, 0, 0, 0];
/// EtherType of the inner packet of a GRE tunnel.
const ETH_P_IP: u16 = 0x0800;

/// How the real server's tunnel wraps a packet: its type and flags (`tun_type`,
/// `tun_flags` of the server), and whether the packet leaves its transport checksum to
/// the hardware (`CHECKSUM_PARTIAL`), which GUE's remote checksum offload hands on.
fn encap_of(cp: &Conn, skb: &SkBuff<'_>) -> Encap {
    let d = cp.dest();
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

/// The GUE header for an inner IPv4 packet, with the remote checksum option when
/// `remote_csum` (`ipvs_gue_encap`): where the inner checksum's range starts and where
/// the checksum goes, both from the start of the inner packet. `None` when the packet's
/// checksum range starts before it.
fn gue_header(skb: &SkBuff<'_>, remote_csum: bool) -> Option<([u8; 12], usize)> {
    let mut h = [0u8; GUE_HLEN + GUE_PRIV_HLEN + GUE_REMCSUM_HLEN];
    h[1] = IPPROTO_IPIP;
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

/// Tunnelling: wrap the packet in an IPv4 header to the real server (`ip_vs_tunnel_xmit`),
/// after a GUE header in UDP to the server's tunnel port, or a GRE header, as the server's
/// tunnel type says (IP in IP otherwise). With `pmtu_disc` the outer header copies the
/// inner DF bit and packets too big for the tunnel are answered "fragmentation needed", so
/// path MTU discovery works through the tunnel; without, the outer packet may be
/// fragmented. The outer header copies the inner TOS and TTL. `icmp` for an ICMP error
/// being forwarded.
pub(crate) fn tunnel_xmit<'a>(
    net: &Net,
    skb: SkBuff<'a>,
    ip: &Ipv4,
    cp: &Conn,
    g: &rcu::Guard,
    icmp: bool,
    pmtu_disc: bool,
) -> Verdict<'a> {
    let daddr = as_v4(&cp.daddr);
    let encap = encap_of(cp, &skb);
    let overhead = IPIP_HLEN.saturating_add(encap.headroom());
    let (mut skb, saddr) = match route_to(net, skb, ip, cp, g, overhead, icmp || !pmtu_disc) {
        Ok((skb, Out::Local)) => return cont(skb),
        Ok((skb, Out::Remote { saddr })) => (skb, saddr),
        Err(v) => return v,
    };
    // `route_to` sent TTLs of 1 and 0 back as "time exceeded"; saturating all the same.
    let ttl = ip.ttl.saturating_sub(1);
    if skb.tunnel_prepare(encap).is_err() {
        return Verdict::Drop(skb);
    }
    let outer_proto = match encap {
        Encap::Ipip => IPPROTO_IPIP,
        Encap::Gue { csum, remote_csum, .. } => {
            let Some((h, len)) = gue_header(&skb, remote_csum) else {
                return Verdict::Drop(skb);
            };
            let pushed = skb.push_gue_header(h.get(..len).unwrap_or(&[]), remote_csum).and_then(|()| {
                skb.push_udp_header(net, cp.dest().tun_port(), !csum, saddr, daddr)
            });
            if pushed.is_err() {
                return Verdict::Drop(skb);
            }
            IPPROTO_UDP
        }
        Encap::Gre { csum } => {
            if skb.push_gre_header(csum, ETH_P_IP).is_err() {
                return Verdict::Drop(skb);
            }
            IPPROTO_GRE
        }
    };
    match skb.push_ip_header() {
        Ok(h) => {
            h[0] = 0x45;
            h[1] = ip.tos;
            h[2..6].fill(0);
            h[6] = if ip.df && pmtu_disc { 0x40 } else { 0 };
            h[7] = 0;
            h[8] = ttl;
            h[9] = outer_proto;
            h[10] = 0;
            h[11] = 0;
            h[12..16].copy_from_slice(&saddr);
            h[16..20].copy_from_slice(&daddr);
        }
        Err(_) => return Verdict::Drop(skb),
    }
    skb.ip_select_ident(net);
    send(net, skb)
}

/// Rewrites a real server's reply so that it comes from the virtual service
/// (`handle_response`, `*_snat_handler`).
pub(crate) fn snat_reply(skb: &mut SkBuff<'_>, ip: &Ipv4, cp: &Conn) -> Result {
    mangle(skb, ip, true, as_v4(&cp.vaddr), cp.vport)
}

/// Rewrites an ICMP error about NAT connection `cp` (`ip_vs_nat_icmp`). Towards the client
/// (`out`), the real server's address and port become the virtual service's: in the outer
/// source and in the quoted packet's destination. Towards the real server, the virtual
/// service's become the real server's in the outer destination and the quoted source. The
/// ICMP checksum is computed afresh; the quoted transport checksum is left alone, as
/// upstream does (the quote is usually truncated anyway).
pub(crate) fn nat_icmp(skb: &mut SkBuff<'_>, ihl: usize, q: &Quoted, out: bool, cp: &Conn) -> Result {
    let ports_at = q.off + q.ip.ihl;
    let (outer_at, quoted_at, port_at, addr, port) = if out {
        (12, q.off + 16, ports_at + 2, as_v4(&cp.vaddr), cp.vport)
    } else {
        (16, q.off + 12, ports_at, as_v4(&cp.daddr), cp.dport)
    };
    let h = skb.writable(ports_at + 4)?;
    // The quoted header length was read before the bytes were made private: check again.
    if usize::from(h[q.off] & 0x0f) * 4 != q.ip.ihl {
        return Err(EINVAL);
    }
    h[outer_at..outer_at + 4].copy_from_slice(&addr);
    proto::ip_send_check(h, ihl);
    h[quoted_at..quoted_at + 4].copy_from_slice(&addr);
    proto::ip_send_check(&mut h[q.off..], q.ip.ihl);
    h[port_at..port_at + 2].copy_from_slice(&port);
    h[ihl + ICMP_CSUM_OFF..ihl + ICMP_CSUM_OFF + 2].fill(0);
    let sum = skb.csum_fold_from(ihl)?;
    let h = skb.writable(ihl + ICMP_HLEN)?;
    h[ihl + ICMP_CSUM_OFF..ihl + ICMP_CSUM_OFF + 2].copy_from_slice(&sum.to_ne_bytes());
    skb.set_csum_unnecessary();
    Ok(())
}

/// Forwards an ICMP error about connection `cp` to its real server (`ip_vs_icmp_xmit`): as
/// is by the connection's method for DR and tunnel connections, translated for NAT ones.
/// `ip` is the error's own header, `q` the packet it quotes.
pub(crate) fn icmp_xmit<'a>(
    net: &Net,
    skb: SkBuff<'a>,
    ip: &Ipv4,
    q: &Quoted,
    cp: &Conn,
    g: &rcu::Guard,
    hook: InetHook,
    pmtu_disc: bool,
) -> Verdict<'a> {
    match cp.fwd_method() {
        conn_flags::MASQ => {}
        conn_flags::DROUTE => return dr_xmit(net, skb, ip, cp, g, true),
        conn_flags::TUNNEL => return tunnel_xmit(net, skb, ip, cp, g, true, pmtu_disc),
        _ => return Verdict::Accept(skb),
    }
    let daddr = as_v4(&cp.daddr);
    let (mut skb, out) = match route_to(net, skb, ip, cp, g, 0, true) {
        Ok(r) => r,
        Err(v) => return v,
    };
    if matches!(out, Out::Local)
        && (hook == InetHook::Forward || (is_loopback(daddr) && hook != InetHook::LocalOut))
    {
        return Verdict::Drop(skb);
    }
    if nat_icmp(&mut skb, ip.ihl, q, false, cp).is_err() {
        return Verdict::Drop(skb);
    }
    skb.set_ignore_df();
    match out {
        Out::Local => cont(skb),
        Out::Remote { .. } => send(net, skb),
    }
}
