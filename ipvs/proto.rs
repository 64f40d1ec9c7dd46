// SPDX-License-Identifier: GPL-2.0

//! Parsing and rewriting of IPv4, TCP and UDP headers in packet bytes.
//!
//! Kernel independent (`no_std`, host-tested).
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_proto_tcp.c`, `ip_vs_proto_udp.c` (the header
//! handling parts), `include/net/ip_vs.h` (`ip_vs_fill_iph_skb`)

#![allow(dead_code, unreachable_pub)]

/// `IPPROTO_ICMP`.
pub const IPPROTO_ICMP: u8 = 1;
/// `IPPROTO_TCP`.
pub const IPPROTO_TCP: u8 = 6;
/// `IPPROTO_UDP`.
pub const IPPROTO_UDP: u8 = 17;

/// Offset of the checksum within the TCP header.
pub const TCP_CSUM_OFF: usize = 16;
/// Offset of the checksum within the UDP header.
pub const UDP_CSUM_OFF: usize = 6;
/// Bytes of the transport header a director reads and rewrites.
pub fn l4_len(protocol: u8) -> Option<usize> {
    match protocol {
        IPPROTO_TCP => Some(20),
        IPPROTO_UDP => Some(8),
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
    /// Total length.
    pub tot_len: u16,
}

impl Ipv4 {
    /// Parses the fixed part of an IPv4 header; `None` if it is not a sane IPv4 header.
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
            tot_len: u16::from_be_bytes([b[2], b[3]]),
        })
    }
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
    /// Parses the transport header of `protocol`.
    pub fn parse(protocol: u8, h: &[u8]) -> Option<Self> {
        let b = h.get(..l4_len(protocol)?)?;
        let (flags, off) = if protocol == IPPROTO_TCP {
            (b[13], TCP_CSUM_OFF)
        } else {
            (0, UDP_CSUM_OFF)
        };
        Some(Self {
            sport: [b[0], b[1]],
            dport: [b[2], b[3]],
            tcp_flags: flags,
            csum: [b[off], b[off + 1]],
        })
    }
}

/// Recomputes the IPv4 header checksum of `h` (its first `ihl` bytes).
pub fn ip_send_check(h: &mut [u8], ihl: usize) {
    if h.len() < ihl || ihl < 20 {
        return;
    }
    h[10] = 0;
    h[11] = 0;
    let mut sum: u32 = 0;
    for w in h[..ihl].chunks(2) {
        sum += u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = !(sum as u16);
    h[10..12].copy_from_slice(&c.to_be_bytes());
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
        assert!(Ipv4::parse(&frag).unwrap().fragment);
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
        let udp = [0, 53, 0x30, 0x39, 0, 8, 0, 0];
        assert_eq!(Ports::parse(IPPROTO_UDP, &udp).unwrap().csum, [0, 0]);
    }
}
