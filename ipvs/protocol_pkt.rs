// SPDX-License-Identifier: GPL-2.0

//! The packet path of the protocol interface ([`Protocol`], see `protocol.rs`): reading a
//! packet's transport header, the connection tuple it is looked up by, which packets may
//! start a connection (`conn_schedule`), the state transition (`state_transition`),
//! whether a reply without connection is answered "port unreachable", and the NAT rewrite
//! of the transport header with its checksum (`snat_handler`, `dnat_handler`). Each is a
//! `match` on the protocol into its own file.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_proto_{tcp,udp,sctp}.c`, `ip_vs_core.c`
//! (`ip_vs_in_hook`, `ip_vs_out_hook`)

use crate::{
    conn::{Conn, ConnParam},
    ctl,
    proto::{IpHdr, Ports},
    proto_ah_esp, proto_sctp, proto_tcp, proto_udp,
    protocol::Protocol,
    sctp, xmit, Ipvs,
};
use core::sync::atomic::Ordering::Relaxed;
use kernel::{net::skbuff::SkBuff, prelude::*};

/// What a protocol makes of a packet that belongs to no connection (`conn_schedule`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Sched {
    /// It may start one: look for its service.
    Schedule,
    /// Not one to start a connection: the local stack's.
    Accept,
    /// Dropped.
    Drop,
}

impl Protocol {
    /// Whether the transport header of `ip`'s packet is there to read (not an IPv4 fragment,
    /// which IPVS reassembles first, nor a non-first IPv6 fragment), and what the director
    /// reads of it (ports, TCP flags, checksum field). `None` if it is absent or short. AH
    /// and ESP read nothing (`dont_defrag`): their ports are the ISAKMP ones.
    #[inline(always)]
    pub(crate) fn parse_ports(self, skb: &mut SkBuff<'_>, ip: &IpHdr) -> Option<Ports> {
        if let Some(p) = self.fixed_ports() {
            return Some(p);
        }
        if if ip.is_v6() { ip.frag_offset != 0 } else { ip.fragment } {
            return None;
        }
        let l4 = self.l4_len();
        let h = skb.pull(ip.len.checked_add(l4)?).ok()?;
        Ports::parse(ip.protocol, h.get(ip.len..)?)
    }

    /// What becomes of a packet of this protocol for a virtual address whose transport
    /// header is missing (see [`Self::parse_ports`]): SCTP without its common header is
    /// dropped (`sctp_conn_schedule`) unless it is a fragment; the rest is the stack's.
    pub(crate) fn headless_drop(self, ip: &IpHdr) -> bool {
        self == Self::Sctp && !ip.fragment
    }

    /// SCTP's common header and first chunk header, read for a packet whose ports were read
    /// (`None` for the other protocols).
    #[inline]
    pub(crate) fn sctp_header(self, skb: &mut SkBuff<'_>, ip: &IpHdr) -> Option<proto_sctp::Header> {
        match self {
            Self::Sctp => sctp::header(skb, ip),
            _ => None,
        }
    }

    /// The tuple of the packet's connection (`conn_fill_param_proto`): for a client packet
    /// the client is the source; for a reply the real server is (see `ConnTable::out_get`).
    #[inline]
    pub(crate) fn conn_param(self, ip: &IpHdr, ports: &Ports) -> ConnParam {
        ConnParam {
            af: ip.af,
            protocol: self.conn_protocol(),
            caddr: ip.saddr,
            cport: ports.sport,
            vaddr: ip.daddr,
            vport: ports.dport,
        }
    }

    /// Whether a packet without connection may start one (the preconditions of
    /// `conn_schedule`): TCP a SYN (with `sloppy_tcp` anything but a reset), SCTP an INIT
    /// (with `sloppy_sctp` any chunk but ABORT; no chunk header at all: dropped), UDP any
    /// datagram. `sloppy` reads the sysctl whose index it is given.
    #[inline]
    pub(crate) fn may_schedule(
        self,
        ports: &Ports,
        sctp: Option<&proto_sctp::Header>,
        sloppy: impl FnOnce(usize) -> bool,
    ) -> Sched {
        match self {
            Self::Tcp => {
                if proto_tcp::may_schedule(ports.tcp_flags, sloppy(ctl::SYSCTL_SLOPPY_TCP)) {
                    Sched::Schedule
                } else {
                    Sched::Accept
                }
            }
            Self::Sctp => match sctp {
                Some(h) if h.chunk_type.is_none() => Sched::Drop,
                Some(h) if h.may_schedule(sloppy(ctl::SYSCTL_SLOPPY_SCTP)) => Sched::Schedule,
                _ => Sched::Accept,
            },
            Self::Udp => Sched::Schedule,
            // Only related traffic (`ah_esp_conn_schedule`): without its IKE connection a
            // packet is the local stack's.
            Self::Ah | Self::Esp => Sched::Accept,
        }
    }

    /// Moves `cp` along the protocol's state machine after the packet (`state_transition`,
    /// `ip_vs_set_state`), `output` for a reply, and refreshes its timeout: TCP by the
    /// segment's flags, SCTP by its chunks; UDP's one state just takes its timeout again (a
    /// reply assures the controlling template).
    #[inline(always)]
    pub(crate) fn transition(
        self,
        ipvs: &Ipvs,
        skb: &mut SkBuff<'_>,
        ip: &IpHdr,
        ports: &Ports,
        cp: &Conn,
        output: bool,
    ) {
        match self {
            Self::Tcp => cp.tcp_transition_in(
                &ipvs.conns,
                output,
                ports.tcp_flags,
                &ipvs.timeouts.tcp,
                ipvs.defense.secure_tcp(),
            ),
            Self::Sctp => match sctp::header(skb, ip).and_then(|h| sctp::event(skb, ip, &h)) {
                Some(ev) => cp.sctp_transition(&ipvs.conns, output, ev, &ipvs.timeouts.sctp),
                None => cp.refresh(&ipvs.conns, cp.timeout()),
            },
            Self::Udp => {
                cp.refresh(&ipvs.conns, ipvs.timeouts.udp.load(Relaxed));
                if output {
                    cp.assure_control();
                }
            }
            // No state machine: the IKE connection is kept alive with its own timeout (as
            // upstream's `ip_vs_conn_put` restarts its timer).
            Self::Ah | Self::Esp => cp.refresh(&ipvs.conns, cp.timeout()),
        }
    }

    /// Whether a NAT real server's packet that belongs to no connection may be answered
    /// "port unreachable" (`nat_icmp_send`, `ip_vs_out_hook`): not a TCP reset, not an SCTP
    /// ABORT.
    pub(crate) fn may_answer_unreach(self, skb: &mut SkBuff<'_>, ip: &IpHdr, ports: &Ports) -> bool {
        match self {
            Self::Tcp => ports.tcp_flags & proto_tcp::FLAG_RST == 0,
            Self::Sctp => !sctp::header(skb, ip).is_some_and(|h| h.chunk_type == Some(proto_sctp::cid::ABORT)),
            Self::Udp => true,
            Self::Ah | Self::Esp => false,
        }
    }

    /// Rewrites a client's packet for the real server of NAT connection `cp`
    /// (`dnat_handler`): the destination address and port, with the checksums.
    #[inline]
    pub(crate) fn dnat_handler(self, skb: &mut SkBuff<'_>, ip: &IpHdr, cp: &Conn) -> Result {
        self.nat(skb, ip, false, &cp.daddr, cp.dport)
    }

    /// Rewrites a real server's reply so that it comes from the virtual service
    /// (`handle_response`, `snat_handler`).
    #[inline]
    pub(crate) fn snat_handler(self, skb: &mut SkBuff<'_>, ip: &IpHdr, cp: &Conn) -> Result {
        self.nat(skb, ip, true, &cp.vaddr, cp.vport)
    }

    /// The source (`src`) or destination address and port of the packet become `addr`
    /// (of the packet's family) and `port`.
    #[inline(always)]
    fn nat(self, skb: &mut SkBuff<'_>, ip: &IpHdr, src: bool, addr: &[u8; 16], port: [u8; 2]) -> Result {
        match self {
            Self::Tcp => xmit::mangle_l4::<proto_tcp::Tcp>(skb, ip, src, addr, port),
            Self::Udp => xmit::mangle_l4::<proto_udp::Udp>(skb, ip, src, addr, port),
            // No pseudo header in SCTP's CRC32c: its own rewrite.
            Self::Sctp => sctp::mangle(skb, ip, src, addr, port),
            // No NAT handler: only the address changes.
            Self::Ah | Self::Esp => proto_ah_esp::nat(skb, ip, src, addr),
        }
    }
}
