// SPDX-License-Identifier: GPL-2.0

//! SCTP in packets: reading the common header and the chunks that drive the state machine
//! out of a packet, and the NAT rewrite of an address and port with the CRC32c recomputed
//! over the whole (linearised) packet. The protocol logic itself is in [`crate::proto_sctp`].
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_proto_sctp.c` (`sctp_conn_schedule`,
//! `set_sctp_state`, `sctp_snat_handler`, `sctp_dnat_handler`, `sctp_nat_csum`)

use crate::{
    proto::IpHdr,
    proto_sctp::{self, Header, CSUM_OFF, HDR_LEN},
};
use kernel::{
    net::skbuff::{Checksum, SkBuff},
    prelude::*,
};

/// The common header and first chunk header of the SCTP packet `skb` whose transport header
/// starts at `ip.len`; `None` if the packet is shorter than the common header.
pub(crate) fn header(skb: &mut SkBuff<'_>, ip: &IpHdr) -> Option<Header> {
    let with_chunk = ip.len.checked_add(HDR_LEN + proto_sctp::CHUNK_HLEN)?;
    // A packet too short for a chunk header still has its common header read.
    let h = match skb.pull(with_chunk) {
        Ok(h) => h,
        Err(_) => skb.pull(ip.len.checked_add(HDR_LEN)?).ok()?,
    };
    Header::parse(h.get(ip.len..)?)
}

/// The state machine's event for the packet whose header is `hdr` (`set_sctp_state`): the
/// first chunk's, or ABORT when one follows a first COOKIE ECHO or COOKIE ACK. `None`
/// without a chunk.
pub(crate) fn event(skb: &mut SkBuff<'_>, ip: &IpHdr, hdr: &Header) -> Option<proto_sctp::Event> {
    let second = hdr.second_chunk_off().and_then(|off| {
        let at = ip.len.checked_add(off)?;
        let h = skb.pull(at.checked_add(1)?).ok()?;
        h.get(at).copied()
    });
    hdr.event(second)
}

/// Rewrites the source (`src`, SNAT of replies) or destination address and port of an SCTP
/// packet to `addr` (of the packet's family, IPv4 in its first 4 bytes) and `port`
/// (`sctp_snat_handler`, `sctp_dnat_handler`). The IPv4 header checksum follows the address;
/// the CRC32c, which does not cover addresses, is recomputed over the packet when the port
/// changes or the stack left it to be filled in (`CHECKSUM_PARTIAL`), except for GSO packets,
/// whose segmentation fills it in. The packet is then marked as checked.
pub(crate) fn mangle(skb: &mut SkBuff<'_>, ip: &IpHdr, src: bool, addr: &[u8; 16], port: [u8; 2]) -> Result {
    let v6 = ip.is_v6();
    let alen = if v6 { 16 } else { 4 };
    let a_off = match (v6, src) {
        (false, true) => 12,
        (false, false) => 16,
        (true, true) => 8,
        (true, false) => 24,
    };
    let po = ip.len.checked_add(if src { 0 } else { 2 }).ok_or(EINVAL)?;
    let port_changed = {
        let h = skb.writable(ip.len.checked_add(HDR_LEN).ok_or(EINVAL)?)?;
        let new_addr = addr.get(..alen).ok_or(EINVAL)?;
        let a = h.get_mut(a_off..a_off + alen).ok_or(EINVAL)?;
        let mut old = [0u8; 4];
        if !v6 {
            old.copy_from_slice(a);
        }
        a.copy_from_slice(new_addr);
        if !v6 {
            // The stack verified the rest of the IPv4 header: only the address changed.
            let b = h.get_mut(10..12).ok_or(EINVAL)?;
            let sum = crate::proto::csum_replace([b[0], b[1]], &old, new_addr);
            b.copy_from_slice(&sum);
        }
        let p = h.get_mut(po..po + 2).ok_or(EINVAL)?;
        let changed = p != port;
        p.copy_from_slice(&port);
        changed
    };
    if port_changed || skb.checksum() == Checksum::Partial {
        if skb.is_gso() {
            return Ok(());
        }
        let total = skb.len() as usize;
        let h = skb.writable(total)?;
        let pkt = h.get_mut(ip.len..).ok_or(EINVAL)?;
        let crc = proto_sctp::checksum(pkt).ok_or(EINVAL)?;
        pkt.get_mut(CSUM_OFF..CSUM_OFF + 4).ok_or(EINVAL)?.copy_from_slice(&crc);
    }
    skb.set_csum_unnecessary();
    Ok(())
}
