// SPDX-License-Identifier: GPL-2.0

//! UDP as the director handles it: one state with one timeout, any datagram may start a
//! connection, and the checksum rules of the NAT rewrite: a checksum field of 0 means the
//! sender computed none (allowed for IPv4) and is left so; a checksum that comes out as 0
//! is sent as all ones, 0 being "none"; with `CHECKSUM_PARTIAL` the stack fills the field in
//! on output (it holds only the pseudo header's sum), so no such fix-up applies to it.
//!
//! Kernel independent (`no_std`, host-tested). The rewrite itself, shared with TCP, is
//! generic over [`crate::proto::L4Csum`] (`xmit.rs`).
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_proto_udp.c` (`udp_snat_handler`,
//! `udp_dnat_handler`, `udp_fast_csum_update`, `udp_partial_csum_update`,
//! `udp_state_transition`, `udp_timeouts`)

#![allow(dead_code, unreachable_pub)]

use crate::proto::{L4Csum, UDP_CSUM_OFF};

/// Length of the UDP header.
pub const HLEN: usize = 8;
/// `IP_VS_UDP_S_LAST`: the one state `IP_VS_UDP_S_NORMAL`.
pub const NR_STATES: u16 = 1;
/// The name of the one state (`udp_state_name`).
pub const STATE_NAME: &str = "UDP";
/// Upstream's UDP timeout: 5 minutes.
pub const TIMEOUT_SECS: u32 = 5 * 60;

/// UDP's checksum rules for the NAT rewrite.
pub struct Udp;

impl L4Csum for Udp {
    const HLEN: usize = HLEN;
    const CSUM_OFF: usize = UDP_CSUM_OFF;

    /// A UDP checksum of zero means "none" and stays so.
    #[inline]
    fn has_csum(c: [u8; 2]) -> bool {
        c != [0, 0]
    }

    /// A computed UDP checksum of zero is sent as all ones (`CSUM_MANGLED_0`).
    #[inline]
    fn on_wire(c: [u8; 2]) -> [u8; 2] {
        if c == [0, 0] {
            [0xff, 0xff]
        } else {
            c
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::csum_replace_addr_port;

    #[test]
    fn zero_checksum_means_none() {
        assert!(!Udp::has_csum([0, 0]));
        assert!(Udp::has_csum([0, 1]));
        assert!(Udp::has_csum([0xff, 0xff]));
    }

    #[test]
    fn computed_zero_goes_as_all_ones() {
        assert_eq!(Udp::on_wire([0, 0]), [0xff, 0xff]);
        assert_eq!(Udp::on_wire([0x12, 0x34]), [0x12, 0x34]);
        assert_eq!(Udp::on_wire([0xff, 0xff]), [0xff, 0xff]);
    }

    #[test]
    fn nat_update_that_yields_zero() {
        // Some checksum's update comes out as 0: sent as 0xffff, never as "no checksum".
        let old = ([10, 0, 0, 1], [0, 53]);
        let new = ([10, 0, 0, 2], [0, 54]);
        let zero = (0..=u16::MAX)
            .map(|c| csum_replace_addr_port(c.to_be_bytes(), old, new))
            .find(|c| *c == [0, 0]);
        assert_eq!(zero.map(Udp::on_wire), Some([0xff, 0xff]));
    }
}
