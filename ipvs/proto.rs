// SPDX-License-Identifier: GPL-2.0

//! Parsing and rewriting of IPv4, IPv6, TCP and UDP headers in packet bytes.
//!
//! Kernel independent (`no_std`, host-tested).
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_proto_tcp.c`, `ip_vs_proto_udp.c` (the header
//! handling parts), `include/net/ip_vs.h` (`ip_vs_fill_iph_skb`)

#![allow(dead_code, unreachable_pub)]

use crate::{proto_sctp, proto_tcp, proto_udp};

/// `IPPROTO_ICMP`.
pub const IPPROTO_ICMP: u8 = 1;
/// `IPPROTO_IPIP`.
pub const IPPROTO_IPIP: u8 = 4;
/// `IPPROTO_TCP`.
pub const IPPROTO_TCP: u8 = 6;
/// `IPPROTO_UDP`.
pub const IPPROTO_UDP: u8 = 17;
/// GRE.
pub const IPPROTO_GRE: u8 = 47;
/// IPv6 in IP (`IPPROTO_IPV6`).
pub const IPPROTO_IPV6: u8 = 41;
/// `IPPROTO_ICMPV6`.
pub const IPPROTO_ICMPV6: u8 = 58;
/// `IPPROTO_SCTP`.
pub const IPPROTO_SCTP: u8 = 132;
/// `IPPROTO_ESP`.
pub const IPPROTO_ESP: u8 = 50;
/// `IPPROTO_AH`.
pub const IPPROTO_AH: u8 = 51;

/// `AF_INET`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`.
pub const AF_INET6: u16 = 10;
/// Length of the fixed IPv6 header.
pub const IPV6_HLEN: usize = 40;
/// The smallest MTU of an IPv6 link (`IPV6_MIN_MTU`).
pub const IPV6_MIN_MTU: u32 = 1280;

/// Offset of the checksum within the TCP header.
pub const TCP_CSUM_OFF: usize = 16;
/// Offset of the checksum within the UDP header.
pub const UDP_CSUM_OFF: usize = 6;
/// How a transport protocol whose checksum covers a pseudo header (TCP, UDP) keeps it right
/// when the director rewrites an address and a port (its `*_snat_handler`/`*_dnat_handler`
/// checksum part). Implemented by `proto_tcp::Tcp` and `proto_udp::Udp`; the rewrite itself
/// is generic over it (monomorphised: no dispatch at run time).
pub trait L4Csum {
    /// Bytes of the transport header the rewrite reads and changes (ports and checksum).
    const HLEN: usize;
    /// Offset of the checksum within the transport header.
    const CSUM_OFF: usize;
    /// Whether the checksum field `c` holds a checksum to update (UDP: 0 means none).
    #[inline]
    fn has_csum(_c: [u8; 2]) -> bool {
        true
    }
    /// The field to send for a computed checksum `c` (UDP: a computed 0 goes as all ones).
    #[inline]
    fn on_wire(c: [u8; 2]) -> [u8; 2] {
        c
    }
}

/// Bytes of the transport header a director reads and rewrites.
#[inline]
pub fn l4_len(protocol: u8) -> Option<usize> {
    match protocol {
        IPPROTO_TCP => Some(proto_tcp::HLEN),
        IPPROTO_UDP => Some(proto_udp::HLEN),
        // The common header (ports, verification tag, CRC32c); see `proto_sctp`.
        IPPROTO_SCTP => Some(proto_sctp::HDR_LEN),
        _ => None,
    }
}

/// What the director needs of an IPv4 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4 {
    /// Header length in bytes.
    pub ihl: usize,
    /// Transport protocol.
    pub protocol: u8,
    /// Source address.
    pub saddr: [u8; 4],
    /// Destination address.
    pub daddr: [u8; 4],
    /// Time to live.
    pub ttl: u8,
    /// Type of service.
    pub tos: u8,
    /// Don't-fragment flag.
    pub df: bool,
    /// A fragment (offset or more-fragments set).
    pub fragment: bool,
    /// Fragment offset in 8-byte units (non-zero: a fragment without transport header).
    pub frag_offset: u16,
    /// Total length.
    pub tot_len: u16,
}

impl Ipv4 {
    /// Parses the fixed part of an IPv4 header; `None` if it is not a sane IPv4 header.
    #[inline(always)]
    pub fn parse(h: &[u8]) -> Option<Self> {
        let b = h.get(..20)?;
        if b[0] >> 4 != 4 {
            return None;
        }
        let ihl = ((b[0] & 0x0f) as usize) * 4;
        if ihl < 20 {
            return None;
        }
        let frag = u16::from_be_bytes([b[6], b[7]]);
        Some(Self {
            ihl,
            protocol: b[9],
            saddr: [b[12], b[13], b[14], b[15]],
            daddr: [b[16], b[17], b[18], b[19]],
            ttl: b[8],
            tos: b[1],
            df: frag & 0x4000 != 0,
            fragment: frag & 0x3fff != 0,
            frag_offset: frag & 0x1fff,
            tot_len: u16::from_be_bytes([b[2], b[3]]),
        })
    }
}

/// What the director needs of a packet's network header, for both families (upstream's
/// `struct ip_vs_iphdr`). Addresses are 16 bytes: an IPv4 address is the first 4, the rest
/// zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpHdr {
    /// `AF_INET` or `AF_INET6`.
    pub af: u16,
    /// Bytes of network headers before the transport header (IPv4: the header length; IPv6:
    /// the fixed header and the extension headers).
    pub len: usize,
    /// Transport protocol (IPv6: the first header that is not an extension header).
    pub protocol: u8,
    /// Source address.
    pub saddr: [u8; 16],
    /// Destination address.
    pub daddr: [u8; 16],
    /// Time to live, or hop limit.
    pub ttl: u8,
    /// Type of service, or traffic class.
    pub tos: u8,
    /// IPv4 don't-fragment flag (false for IPv6, which routers never fragment).
    pub df: bool,
    /// A fragment: IPv4 offset or more-fragments set; IPv6 a fragment header present.
    pub fragment: bool,
    /// Fragment offset (IPv4 in 8-byte units, IPv6 in bytes); non-zero: a fragment without
    /// transport header.
    pub frag_offset: u16,
}

impl IpHdr {
    /// All zeroes, to be filled in place (see [`Self::fill_v4`]).
    pub const ZERO: Self = Self {
        af: 0,
        len: 0,
        protocol: 0,
        saddr: [0; 16],
        daddr: [0; 16],
        ttl: 0,
        tos: 0,
        df: false,
        fragment: false,
        frag_offset: 0,
    };

    /// Makes `self`, all zeroes ([`Self::ZERO`]), the header of IPv4 packet `ip`: what
    /// [`Self::from_v4`] returns, without a copy of it.
    #[inline]
    pub fn fill_v4(&mut self, ip: &Ipv4) {
        self.af = AF_INET;
        self.len = ip.ihl;
        self.protocol = ip.protocol;
        self.saddr[..4].copy_from_slice(&ip.saddr);
        self.daddr[..4].copy_from_slice(&ip.daddr);
        self.ttl = ip.ttl;
        self.tos = ip.tos;
        self.df = ip.df;
        self.fragment = ip.fragment;
        self.frag_offset = ip.frag_offset;
    }

    /// The header of an IPv4 packet.
    #[inline]
    pub fn from_v4(ip: &Ipv4) -> Self {
        let mut h = Self::ZERO;
        h.fill_v4(ip);
        h
    }

    /// The header of an IPv6 packet from its fixed header `h` and what the walk through its
    /// extension headers found: the transport protocol, its offset, the fragment offset and
    /// whether a fragment header was seen. `None` if `h` is not an IPv6 header.
    pub fn from_v6(h: &[u8], protocol: u8, len: usize, frag_offset: u16, fragment: bool) -> Option<Self> {
        let b = h.get(..IPV6_HLEN)?;
        if b[0] >> 4 != 6 {
            return None;
        }
        let mut saddr = [0u8; 16];
        let mut daddr = [0u8; 16];
        saddr.copy_from_slice(&b[8..24]);
        daddr.copy_from_slice(&b[24..40]);
        Some(Self {
            af: AF_INET6,
            len,
            protocol,
            saddr,
            daddr,
            ttl: b[7],
            tos: (b[0] << 4) | (b[1] >> 4),
            df: false,
            fragment,
            frag_offset,
        })
    }

    /// Whether this is an IPv6 header.
    #[inline]
    pub fn is_v6(&self) -> bool {
        self.af == AF_INET6
    }

    /// The IPv4 source address (first 4 bytes).
    pub fn saddr4(&self) -> [u8; 4] {
        [self.saddr[0], self.saddr[1], self.saddr[2], self.saddr[3]]
    }

    /// The IPv4 destination address (first 4 bytes).
    pub fn daddr4(&self) -> [u8; 4] {
        [self.daddr[0], self.daddr[1], self.daddr[2], self.daddr[3]]
    }

    /// Whether the source is a loopback address (127.0.0.0/8 or ::1).
    #[inline(always)]
    pub fn saddr_is_loopback(&self) -> bool {
        if self.is_v6() {
            is_loopback6(&self.saddr)
        } else {
            is_loopback(self.saddr4())
        }
    }
}

/// An IPv6 address written as the kernel's `%pI6` does: eight groups of four lowercase
/// hex digits, not compressed.
pub struct Ip6Full<'a>(pub &'a [u8; 16]);

impl core::fmt::Display for Ip6Full<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, w) in self.0.chunks_exact(2).enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{:02x}{:02x}", w[0], w[1])?;
        }
        Ok(())
    }
}

/// Whether an IPv6 address is the loopback address ::1.
pub fn is_loopback6(a: &[u8; 16]) -> bool {
    a[..15].iter().all(|&b| b == 0) && a[15] == 1
}

/// The IPv6 prefix of `a` of `plen` bits (0 to 128; more counts as 128), the rest zero
/// (`ipv6_addr_prefix`).
pub fn ipv6_prefix(a: &[u8; 16], plen: u32) -> [u8; 16] {
    let mut out = [0u8; 16];
    let plen = plen.min(128) as usize;
    let full = plen / 8;
    out[..full].copy_from_slice(&a[..full]);
    if plen % 8 != 0 {
        if let (Some(o), Some(&b)) = (out.get_mut(full), a.get(full)) {
            *o = b & (0xffu8 << (8 - plen % 8));
        }
    }
    out
}

/// `ICMPV6_DEST_UNREACH`.
pub const ICMPV6_DEST_UNREACH: u8 = 1;
/// `ICMPV6_PKT_TOOBIG`.
pub const ICMPV6_PKT_TOOBIG: u8 = 2;
/// `ICMPV6_TIME_EXCEED`.
pub const ICMPV6_TIME_EXCEED: u8 = 3;
/// `ICMPV6_PORT_UNREACH`, a code of [`ICMPV6_DEST_UNREACH`].
pub const ICMPV6_PORT_UNREACH: u8 = 4;
/// `ICMPV6_EXC_HOPLIMIT`, a code of [`ICMPV6_TIME_EXCEED`].
pub const ICMPV6_EXC_HOPLIMIT: u8 = 0;

/// Whether an ICMPv6 message of type `t` is an error (informational messages have the
/// high bit set): the ones IPVS relates to connections.
pub fn icmp6_is_error(t: u8) -> bool {
    t & 0x80 == 0
}

/// Ports and flags of a TCP or UDP header that starts at `h[0]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    /// Source port, network byte order.
    pub sport: [u8; 2],
    /// Destination port, network byte order.
    pub dport: [u8; 2],
    /// TCP flags byte (0 for UDP).
    pub tcp_flags: u8,
    /// The checksum field (UDP: 0 means none).
    pub csum: [u8; 2],
}

impl Ports {
    /// Parses the transport header of `protocol` (for SCTP, `csum` holds the first half of
    /// the CRC32c).
    #[inline(always)]
    pub fn parse(protocol: u8, h: &[u8]) -> Option<Self> {
        // A fixed-size header per protocol: constant offsets, no bounds check per field.
        let (tcp_flags, csum) = match protocol {
            IPPROTO_TCP => {
                let b = h.first_chunk::<{ proto_tcp::HLEN }>()?;
                (b[13], [b[TCP_CSUM_OFF], b[TCP_CSUM_OFF + 1]])
            }
            IPPROTO_UDP => {
                let b = h.first_chunk::<{ proto_udp::HLEN }>()?;
                (0, [b[UDP_CSUM_OFF], b[UDP_CSUM_OFF + 1]])
            }
            IPPROTO_SCTP => {
                let b = h.first_chunk::<{ proto_sctp::HDR_LEN }>()?;
                (0, [b[proto_sctp::CSUM_OFF], b[proto_sctp::CSUM_OFF + 1]])
            }
            _ => return None,
        };
        let &[s0, s1, d0, d1] = h.first_chunk::<4>()?;
        Some(Self {
            sport: [s0, s1],
            dport: [d0, d1],
            tcp_flags,
            csum,
        })
    }
}

/// The source and destination ports at the start of a TCP or UDP header (network byte
/// order): all an ICMP error is sure to quote of it.
pub fn ports_of(h: &[u8]) -> Option<([u8; 2], [u8; 2])> {
    let b = h.get(..4)?;
    Some(([b[0], b[1]], [b[2], b[3]]))
}

/// `ICMP_DEST_UNREACH`.
pub const ICMP_DEST_UNREACH: u8 = 3;
/// `ICMP_SOURCE_QUENCH`.
pub const ICMP_SOURCE_QUENCH: u8 = 4;
/// `ICMP_TIME_EXCEEDED`.
pub const ICMP_TIME_EXCEEDED: u8 = 11;
/// `ICMP_PORT_UNREACH`, a code of [`ICMP_DEST_UNREACH`].
pub const ICMP_PORT_UNREACH: u8 = 3;
/// `ICMP_FRAG_NEEDED`, a code of [`ICMP_DEST_UNREACH`].
pub const ICMP_FRAG_NEEDED: u8 = 4;
/// `ICMP_HOST_UNREACH`, a code of [`ICMP_DEST_UNREACH`].
pub const ICMP_HOST_UNREACH: u8 = 1;
/// Length of the ICMP header; an error's quoted IP header follows it.
pub const ICMP_HLEN: usize = 8;
/// Offset of the checksum within the ICMP header.
pub const ICMP_CSUM_OFF: usize = 2;

/// An ICMP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icmp {
    /// Message type.
    pub icmp_type: u8,
    /// Code within the type.
    pub code: u8,
    /// The type-specific second word (`un`), as on the wire.
    pub rest: [u8; 4],
}

impl Icmp {
    /// Parses the ICMP header at `h[0]`.
    pub fn parse(h: &[u8]) -> Option<Self> {
        let b = h.get(..ICMP_HLEN)?;
        Some(Self {
            icmp_type: b[0],
            code: b[1],
            rest: [b[4], b[5], b[6], b[7]],
        })
    }

    /// Whether this is an error IPVS relates to a connection: destination unreachable
    /// (fragmentation needed and port unreachable among them), source quench, time exceeded.
    pub fn is_related_error(&self) -> bool {
        matches!(
            self.icmp_type,
            ICMP_DEST_UNREACH | ICMP_SOURCE_QUENCH | ICMP_TIME_EXCEEDED
        )
    }

    /// Whether this is "fragmentation needed".
    pub fn is_frag_needed(&self) -> bool {
        self.icmp_type == ICMP_DEST_UNREACH && self.code == ICMP_FRAG_NEEDED
    }

    /// The next-hop MTU of a "fragmentation needed" error.
    pub fn frag_mtu(&self) -> u16 {
        u16::from_be_bytes([self.rest[2], self.rest[3]])
    }
}

/// The packet an ICMP error quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quoted {
    /// Offset of its IP header from the start of the error's IP header.
    pub off: usize,
    /// Its IP header.
    pub ip: Ipv4,
    /// Its source port, network byte order.
    pub sport: [u8; 2],
    /// Its destination port, network byte order.
    pub dport: [u8; 2],
}

/// The IPv6 packet an ICMPv6 error quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quoted6 {
    /// Offset of its IPv6 header from the start of the error's.
    pub off: usize,
    /// Offset of its transport header from the start of the error's.
    pub l4_off: usize,
    /// Its transport protocol.
    pub protocol: u8,
    /// Its source address.
    pub saddr: [u8; 16],
    /// Its destination address.
    pub daddr: [u8; 16],
    /// Its source port, network byte order.
    pub sport: [u8; 2],
    /// Its destination port, network byte order.
    pub dport: [u8; 2],
}

/// The TOS or traffic class of a tunnel's outer header for an inner packet's `tos`
/// (`INET_ECN_encapsulate(tos, tos)`): the same, except that "congestion experienced"
/// becomes ECT(0).
pub fn ecn_encapsulate(tos: u8) -> u8 {
    if tos & 3 == 3 {
        (tos & !3) | 2
    } else {
        tos
    }
}

/// Whether an IPv4 address is a loopback address (127.0.0.0/8).
pub fn is_loopback(a: [u8; 4]) -> bool {
    a[0] == 127
}

/// Updates the Internet checksum `sum` (as stored in a packet) of data whose bytes `old`
/// became `new` (same even length, at an even offset), without summing the rest again
/// (RFC 1624, equation 3: `~(~sum + ~old + new)`).
#[inline]
pub fn csum_replace(sum: [u8; 2], old: &[u8], new: &[u8]) -> [u8; 2] {
    // 16-bit words summed in a 32-bit accumulator (at most 9 pairs of 16-bit values for an
    // IPv6 address and a port: no overflow), folded once at the end.
    let mut acc = u32::from(!u16::from_be_bytes(sum));
    let mut i = 0;
    while let (Some(o), Some(n)) = (old.get(i..i + 2), new.get(i..i + 2)) {
        acc += u32::from(!u16::from_be_bytes([o[0], o[1]]));
        acc += u32::from(u16::from_be_bytes([n[0], n[1]]));
        i += 2;
    }
    (!fold(acc)).to_be_bytes()
}

/// `csum_fold` without the complement: `acc` folded to 16 bits with end-around carry.
#[inline]
fn fold(acc: u32) -> u16 {
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
    acc as u16
}

/// [`csum_replace`] for one 32-bit field (an IPv4 address) and a 16-bit one (a port) that
/// changed together, as the NAT rewrite of a TCP or UDP checksum needs it: `~(~sum + ~old +
/// new)` over both fields, in one step.
#[inline]
pub fn csum_replace_addr_port(sum: [u8; 2], old: ([u8; 4], [u8; 2]), new: ([u8; 4], [u8; 2])) -> [u8; 2] {
    let acc = replace_terms(sum, old.0, new.0)
        + u64::from(!u16::from_ne_bytes(old.1))
        + u64::from(u16::from_ne_bytes(new.1));
    (!fold64(acc)).to_ne_bytes()
}

/// [`csum_replace`] for one 32-bit field (an IPv4 address), computed as
/// [`csum_replace_addr_port`] is (`csum_replace4`).
#[inline]
pub fn csum_replace4(sum: [u8; 2], old: [u8; 4], new: [u8; 4]) -> [u8; 2] {
    (!fold64(replace_terms(sum, old, new))).to_ne_bytes()
}

/// `~sum + ~old + new`, unfolded, for a 32-bit field. A one's complement sum does not depend
/// on the byte order of its words (RFC 1071, 2.(B)): the fields are added as they lie in
/// memory, 32 bits at once, and the folded result is stored the same way.
#[inline]
fn replace_terms(sum: [u8; 2], old: [u8; 4], new: [u8; 4]) -> u64 {
    u64::from(!u16::from_ne_bytes(sum)) + u64::from(!u32::from_ne_bytes(old)) + u64::from(u32::from_ne_bytes(new))
}

/// A sum of at most four 32-bit and 16-bit words folded to 16 bits with end-around carry.
#[inline]
fn fold64(acc: u64) -> u16 {
    // Below 2^34: the first step leaves at most 33 bits, each further one halves the excess.
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
    acc as u16
}

/// Decrements the TTL of the IPv4 header `h` and updates its checksum to match
/// (`ip_decrease_ttl`: the checksum word holding the TTL drops by 0x0100, so the stored sum
/// rises by as much, with end-around carry). The TTL must be above zero.
#[inline]
pub fn decrease_ttl(h: &mut [u8]) {
    let Some(b) = h.get_mut(..12) else {
        return;
    };
    if b[8] == 0 {
        return;
    }
    b[8] -= 1;
    // As the kernel's own: a carry out of the 16 bits comes back in (and a sum reaching
    // 0xffff is stored as 0).
    let sum = u32::from(u16::from_be_bytes([b[10], b[11]])) + 0x0100;
    let sum = sum + u32::from(sum >= 0xffff);
    b[10..12].copy_from_slice(&(sum as u16).to_be_bytes());
}

/// Recomputes the IPv4 header checksum of `h` (its first `ihl` bytes, a multiple of 4 as
/// IPv4 header lengths are).
#[inline]
pub fn ip_send_check(h: &mut [u8], ihl: usize) {
    if ihl < 20 {
        return;
    }
    let Some(b) = h.get_mut(..ihl) else {
        return;
    };
    b[10] = 0;
    b[11] = 0;
    // 32-bit words summed in 64 bits (at most 15 of them), then folded.
    let mut sum: u64 = 0;
    let mut i = 0;
    while let Some(w) = b.get(i..i + 4) {
        sum += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
        i += 4;
    }
    let sum = (sum & 0xffff_ffff) + (sum >> 32);
    let sum = (sum & 0xffff_ffff) + (sum >> 32);
    let c = !fold(sum as u32);
    b[10..12].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    const HDR: [u8; 20] = [
        0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0xb1, 0xe6, 0xac, 0x10,
        0x0a, 0x63, 0xac, 0x10, 0x0a, 0x0c,
    ];

    #[test]
    fn checksum_matches_reference() {
        let mut h = HDR;
        h[10] = 0;
        h[11] = 0;
        ip_send_check(&mut h, 20);
        assert_eq!([h[10], h[11]], [0xb1, 0xe6]);
    }

    #[test]
    fn incremental_checksum() {
        // Address and port changes, and a TTL decrement, each match a full recomputation.
        let mut h = HDR;
        decrease_ttl(&mut h);
        assert_eq!(h[8], 0x3f);
        let mut full = h;
        ip_send_check(&mut full, 20);
        assert_eq!([h[10], h[11]], [full[10], full[11]]);
        let mut seed = 0x9e37_79b9u32;
        for _ in 0..2000 {
            let mut hdr = HDR;
            for b in hdr[12..20].iter_mut() {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                *b = (seed >> 16) as u8;
            }
            ip_send_check(&mut hdr, 20);
            let old = hdr;
            let new_addr = [(seed >> 8) as u8, 0xff, (seed >> 24) as u8, 0];
            hdr[16..20].copy_from_slice(&new_addr);
            let sum = csum_replace([old[10], old[11]], &old[16..20], &new_addr);
            let mut check = hdr;
            ip_send_check(&mut check, 20);
            // 0x0000 and 0xffff are the same one's complement value.
            let norm = |s: [u8; 2]| if s == [0xff, 0xff] { [0, 0] } else { s };
            assert_eq!(norm(sum), norm([check[10], check[11]]));
        }
    }

    #[test]
    fn addr_port_checksum() {
        // The one-step update of an address and a port equals two updates of their bytes,
        // and a full sum over a pseudo transport header.
        let mut seed = 0x1234_5678u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) as u8
        };
        for _ in 0..2000 {
            // Address, port and 4 more bytes, with a checksum over them that is right.
            let mut d = [0u8; 12];
            for b in d.iter_mut().take(10) {
                *b = next();
            }
            let full = |d: &[u8; 12]| {
                let mut x = *d;
                x[10] = 0;
                x[11] = 0;
                let mut s: u32 = x.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
                while s > 0xffff {
                    s = (s & 0xffff) + (s >> 16);
                }
                (!(s as u16)).to_be_bytes()
            };
            let c = full(&d);
            d[10..12].copy_from_slice(&c);
            let (na, np) = ([next(), next(), next(), next()], [next(), next()]);
            let oa = [d[0], d[1], d[2], d[3]];
            let op = [d[4], d[5]];
            let one = csum_replace_addr_port([d[10], d[11]], (oa, op), (na, np));
            let two = csum_replace(csum_replace([d[10], d[11]], &oa, &na), &op, &np);
            let norm = |s: [u8; 2]| if s == [0xff, 0xff] { [0, 0] } else { s };
            assert_eq!(norm(one), norm(two));
            let four = csum_replace4([d[10], d[11]], oa, na);
            assert_eq!(norm(four), norm(csum_replace([d[10], d[11]], &oa, &na)));
            d[..4].copy_from_slice(&na);
            d[4..6].copy_from_slice(&np);
            assert_eq!(norm(one), norm(full(&d)));
        }
    }

    #[test]
    fn partial_checksum_update() {
        // A partial transport checksum holds the pseudo header's sum, not complemented: the
        // update of its complement, complemented back, is the sum for the new destination.
        let mut seed = 0x0bad_cafeu32;
        let mut next = || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) as u8
        };
        let pseudo = |s: [u8; 4], d: [u8; 4]| {
            let w = [s[0], s[1], s[2], s[3], d[0], d[1], d[2], d[3], 0, IPPROTO_TCP, 0x05, 0xdc];
            let mut acc: u32 = w.chunks(2).map(|p| u32::from(u16::from_be_bytes([p[0], p[1]]))).sum();
            while acc > 0xffff {
                acc = (acc & 0xffff) + (acc >> 16);
            }
            (acc as u16).to_be_bytes()
        };
        let norm = |s: [u8; 2]| if s == [0xff, 0xff] { [0, 0] } else { s };
        for _ in 0..2000 {
            let (s, d, nd) = ([next(), next(), next(), next()], [next(), next(), next(), next()], [next(), 0, next(), next()]);
            let f = pseudo(s, d);
            let u = csum_replace4([!f[0], !f[1]], d, nd);
            assert_eq!(norm([!u[0], !u[1]]), norm(pseudo(s, nd)));
        }
    }

    #[test]
    fn ttl_checksum_carry() {
        // The kernel's `ip_decrease_ttl` stores a sum reaching 0xffff as 0, and brings a
        // carry out of 16 bits back in.
        for (before, after) in [([0xfe, 0xff], [0, 0]), ([0xff, 0x00], [0, 1]), ([0x12, 0x34], [0x13, 0x34])] {
            let mut h = HDR;
            h[10..12].copy_from_slice(&before);
            decrease_ttl(&mut h);
            assert_eq!([h[10], h[11]], after);
        }
    }

    #[test]
    fn parse_header() {
        let ip = Ipv4::parse(&HDR).unwrap();
        assert_eq!(ip.ihl, 20);
        assert_eq!(ip.protocol, IPPROTO_TCP);
        assert!(ip.df);
        assert!(!ip.fragment);
        assert_eq!(ip.saddr, [172, 16, 10, 99]);
        let mut v6 = HDR;
        v6[0] = 0x65;
        assert!(Ipv4::parse(&v6).is_none());
        let mut frag = HDR;
        frag[6] = 0x20;
        let f = Ipv4::parse(&frag).unwrap();
        assert!(f.fragment);
        assert_eq!(f.frag_offset, 0);
        frag[7] = 0xb9;
        assert_eq!(Ipv4::parse(&frag).unwrap().frag_offset, 0xb9);
        assert!(Ipv4::parse(&HDR[..19]).is_none());
    }

    #[test]
    fn parse_ports() {
        let tcp = [0x1f, 0x90, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x12, 0xff, 0xff, 0xab, 0xcd, 0, 0];
        let p = Ports::parse(IPPROTO_TCP, &tcp).unwrap();
        assert_eq!(u16::from_be_bytes(p.sport), 8080);
        assert_eq!(u16::from_be_bytes(p.dport), 80);
        assert_eq!(p.tcp_flags, 0x12);
        assert_eq!(p.csum, [0xab, 0xcd]);
        assert!(Ports::parse(IPPROTO_TCP, &tcp[..19]).is_none());
        assert!(Ports::parse(IPPROTO_ICMP, &tcp).is_none());
        let sctp = Ports::parse(IPPROTO_SCTP, &tcp[..12]).unwrap();
        assert_eq!((sctp.sport, sctp.tcp_flags, sctp.csum), ([0x1f, 0x90], 0, [0, 0]));
        assert!(Ports::parse(IPPROTO_SCTP, &tcp[..11]).is_none());
        let udp = [0, 53, 0x30, 0x39, 0, 8, 0, 0];
        assert_eq!(Ports::parse(IPPROTO_UDP, &udp).unwrap().csum, [0, 0]);
    }

    #[test]
    fn icmp_errors() {
        // Fragmentation needed, next-hop MTU 1280.
        let h = [3, 4, 0xab, 0xcd, 0, 0, 0x05, 0x00];
        let ic = Icmp::parse(&h).unwrap();
        assert!(ic.is_related_error());
        assert!(ic.is_frag_needed());
        assert_eq!(ic.frag_mtu(), 1280);
        // Port unreachable, time exceeded and source quench are related; echo is not.
        for (t, c, rel) in [(3, 3, true), (11, 0, true), (4, 0, true), (8, 0, false), (0, 0, false), (5, 1, false)] {
            let ic = Icmp::parse(&[t, c, 0, 0, 0, 0, 0, 0]).unwrap();
            assert_eq!(ic.is_related_error(), rel, "type {t}");
            assert!(!ic.is_frag_needed() || (t, c) == (3, 4));
        }
        assert!(Icmp::parse(&h[..7]).is_none());
        assert_eq!(ports_of(&[0x1f, 0x90, 0, 80]), Some(([0x1f, 0x90], [0, 80])));
        assert!(ports_of(&[1, 2, 3]).is_none());
        assert!(is_loopback([127, 0, 0, 1]) && !is_loopback([10, 0, 0, 1]));
    }

    #[test]
    fn ipv6_header() {
        let mut h = [0u8; 40];
        h[0] = 0x6a;
        h[1] = 0xb0;
        h[6] = IPPROTO_TCP;
        h[7] = 64;
        h[8] = 0xfd;
        h[23] = 1;
        h[24] = 0xfd;
        h[39] = 2;
        let ip = IpHdr::from_v6(&h, IPPROTO_TCP, 40, 0, false).unwrap();
        assert!(ip.is_v6());
        assert_eq!(ip.tos, 0xab);
        assert_eq!(ip.ttl, 64);
        assert_eq!(ip.saddr[0], 0xfd);
        assert_eq!(ip.saddr[15], 1);
        assert_eq!(ip.daddr[15], 2);
        assert!(!ip.saddr_is_loopback());
        assert!(IpHdr::from_v6(&h[..39], IPPROTO_TCP, 40, 0, false).is_none());
        h[0] = 0x45;
        assert!(IpHdr::from_v6(&h, IPPROTO_TCP, 40, 0, false).is_none());
        let v4 = IpHdr::from_v4(&Ipv4::parse(&HDR).unwrap());
        assert_eq!(v4.saddr4(), [172, 16, 10, 99]);
        assert_eq!(v4.saddr[4..], [0; 12]);
        assert_eq!(v4.len, 20);
        let mut lo = [0u8; 16];
        lo[15] = 1;
        assert!(is_loopback6(&lo));
        lo[0] = 1;
        assert!(!is_loopback6(&lo));
        assert!(icmp6_is_error(1) && icmp6_is_error(4) && !icmp6_is_error(128) && !icmp6_is_error(135));
    }

    #[test]
    fn ecn() {
        assert_eq!(ecn_encapsulate(0), 0);
        assert_eq!(ecn_encapsulate(0xb8), 0xb8);
        assert_eq!(ecn_encapsulate(0xb9), 0xb9);
        assert_eq!(ecn_encapsulate(0xba), 0xba);
        assert_eq!(ecn_encapsulate(0xbb), 0xba);
        assert_eq!(ecn_encapsulate(3), 2);
    }

    #[test]
    fn ipv6_format() {
        let mut a = [0u8; 16];
        a[0] = 0xfd;
        a[1] = 0x0a;
        a[15] = 1;
        assert_eq!(
            format!("{}", Ip6Full(&a)),
            "fd0a:0000:0000:0000:0000:0000:0000:0001"
        );
        assert_eq!(format!("{}", Ip6Full(&[0xff; 16])), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    }

    #[test]
    fn ipv6_prefixes() {
        let a = [0xffu8; 16];
        assert_eq!(ipv6_prefix(&a, 0), [0; 16]);
        assert_eq!(ipv6_prefix(&a, 128), a);
        assert_eq!(ipv6_prefix(&a, 200), a);
        let p = ipv6_prefix(&a, 64);
        assert_eq!(p[..8], [0xff; 8]);
        assert_eq!(p[8..], [0; 8]);
        let p = ipv6_prefix(&a, 61);
        assert_eq!(p[7], 0xf8);
        assert_eq!(p[8], 0);
        let p = ipv6_prefix(&a, 1);
        assert_eq!(p[0], 0x80);
        assert_eq!(p[1..], [0; 15]);
    }
}
