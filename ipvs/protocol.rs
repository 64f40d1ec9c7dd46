// SPDX-License-Identifier: GPL-2.0

//! The transport protocols the director balances, behind one interface (upstream's
//! `struct ip_vs_protocol` and its per-namespace `ip_vs_proto_data`): for each of TCP, UDP
//! and SCTP (and AH and ESP, which follow their client's IKE connection: `proto_ah_esp.rs`)
//! its name, its states and their names, its per-state timeouts, the states a
//! connection is synchronised in, which connections the overload defense drops first, and
//! per packet: reading the transport header, the connection tuple it is looked up by,
//! which packets may start a connection (`conn_schedule`), the state transition
//! (`state_transition`), whether a reply without connection is answered "port
//! unreachable", and the NAT rewrite of the transport header with its checksum
//! (`snat_handler`, `dnat_handler`).
//!
//! [`Protocol`] is an enum: the core matches on it (no function pointers on the packet
//! path). This file holds what needs no packet (it is shared with the KUnit module); the
//! methods that read or rewrite packets are in `protocol_pkt.rs`. The protocols' own logic
//! is in their files: `proto_tcp.rs`, `proto_udp.rs`,
//! `proto_sctp.rs` (kernel independent, host-tested), `sctp.rs` (SCTP in packets); the
//! TCP/UDP header rewrite is generic over their checksum rules (`xmit::mangle_l4`).
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_proto.c`, `ip_vs_proto_{tcp,udp,sctp}.c`,
//! `ip_vs_core.c` (`is_new_conn`, `is_new_conn_expected`, `ip_vs_out_hook`),
//! `ip_vs_sync.c` (`ip_vs_sync_conn_needed`), `ip_vs_conn.c` (`ip_vs_random_dropentry`)

use crate::{
    proto::{Ports, IPPROTO_AH, IPPROTO_ESP, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP},
    proto_sctp::{self, SctpState},
    proto_tcp::{self, TcpState},
    proto_udp,
};
use core::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// The ISAKMP (IKE) port, 500: AH and ESP packets belong to the UDP connection between it
/// on the client and on the virtual address (`PORT_ISAKMP`).
pub(crate) const PORT_ISAKMP: u16 = 500;

/// Protocol timeouts of a namespace, in jiffies (`ipvsadm --set` changes three of them).
pub(crate) struct Timeouts {
    /// Per TCP state.
    pub(crate) tcp: [AtomicU32; proto_tcp::NR_STATES],
    /// UDP's one state.
    pub(crate) udp: AtomicU32,
    /// Per SCTP state.
    pub(crate) sctp: [AtomicU32; proto_sctp::NR_STATES],
}

impl Timeouts {
    /// Upstream's defaults at `hz` ticks per second.
    pub(crate) fn new(hz: u32) -> Self {
        Self {
            tcp: proto_tcp::default_timeouts(hz),
            udp: AtomicU32::new(proto_udp::TIMEOUT_SECS * hz),
            sctp: proto_sctp::default_timeouts(hz),
        }
    }
}

/// A protocol IPVS knows (`ip_vs_proto_get`): TCP, UDP and SCTP have services; AH and ESP
/// have neither services nor connections of their own.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Protocol {
    Tcp,
    Udp,
    Sctp,
    Ah,
    Esp,
}

/// What synchronisation does with a connection in its current state.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum SyncRule {
    /// Not synchronised in this state.
    Never,
    /// Synchronised; a change of state since the last message forces one
    /// (`force`), at once unless the new state is ESTABLISHED (`now`).
    States { force: bool, now: bool },
    /// A protocol with a single state: by the packet thresholds only.
    Single,
}

/// [`Protocol::of`] of every protocol number: one load per packet rather than a chain of
/// comparisons.
static BY_NUMBER: [Option<Protocol>; 256] = {
    let mut t = [None; 256];
    t[IPPROTO_TCP as usize] = Some(Protocol::Tcp);
    t[IPPROTO_UDP as usize] = Some(Protocol::Udp);
    t[IPPROTO_SCTP as usize] = Some(Protocol::Sctp);
    t[IPPROTO_AH as usize] = Some(Protocol::Ah);
    t[IPPROTO_ESP as usize] = Some(Protocol::Esp);
    t
};

impl Protocol {
    /// The protocol with number `n`, if it has services.
    #[inline(always)]
    pub(crate) fn of(n: u8) -> Option<Self> {
        BY_NUMBER[usize::from(n)]
    }

    /// Number of states (`num_states`).
    pub(crate) fn num_states(self) -> u16 {
        match self {
            Self::Tcp => proto_tcp::NR_STATES as u16,
            Self::Udp => proto_udp::NR_STATES,
            Self::Ah | Self::Esp => 1,
            Self::Sctp => proto_sctp::NR_STATES as u16,
        }
    }

    /// Upstream's name of `state` (`state_name`, shown by `/proc/net/ip_vs_conn`).
    pub(crate) fn state_name(self, state: u16) -> &'static str {
        let n = u8::try_from(state).unwrap_or(u8::MAX);
        match self {
            Self::Tcp => TcpState::from_u8(n).map_or("ERR!", TcpState::name),
            Self::Udp => proto_udp::STATE_NAME,
            // No `state_name` in upstream's AH/ESP: `ip_vs_state_name` shows "ERR!" (seen
            // for entries a sync message made).
            Self::Ah | Self::Esp => "ERR!",
            Self::Sctp => SctpState::from_u8(n).map_or("ERR!", SctpState::name),
        }
    }

    /// The timeout of `state` in jiffies, `None` for a state the protocol does not have.
    pub(crate) fn state_timeout(self, t: &Timeouts, state: u16) -> Option<u32> {
        let i = usize::from(state);
        match self {
            Self::Tcp => t.tcp.get(i).map(|a| a.load(Relaxed)),
            Self::Udp => Some(t.udp.load(Relaxed)),
            // No timeout table (`timeout_change` is NULL).
            Self::Ah | Self::Esp => None,
            Self::Sctp => t.sctp.get(i).map(|a| a.load(Relaxed)),
        }
    }

    /// The timeout of a new connection, before its first transition.
    pub(crate) fn initial_timeout(self, t: &Timeouts) -> u32 {
        self.state_timeout(t, 0).unwrap_or(0)
    }

    /// Whether and how a connection in `state` (synchronised last in `old`) is synchronised
    /// (`ip_vs_sync_conn_needed`).
    pub(crate) fn sync_rule(self, state: u16, old: u16) -> SyncRule {
        let synced = match self {
            Self::Tcp => [
                TcpState::Established,
                TcpState::FinWait,
                TcpState::Close,
                TcpState::CloseWait,
                TcpState::TimeWait,
            ]
            .iter()
            .any(|s| *s as u16 == state),
            Self::Sctp => [
                SctpState::Established,
                SctpState::ShutdownSent,
                SctpState::ShutdownReceived,
                SctpState::ShutdownAckSent,
                SctpState::Closed,
            ]
            .iter()
            .any(|s| *s as u16 == state),
            Self::Udp | Self::Ah | Self::Esp => return SyncRule::Single,
        };
        if !synced {
            return SyncRule::Never;
        }
        let established = match self {
            Self::Tcp => TcpState::Established as u16,
            _ => SctpState::Established as u16,
        };
        let force = state != old;
        SyncRule::States {
            force,
            now: force && state != established,
        }
    }

    /// What the overload defense does with a connection in `state`
    /// (`ip_vs_random_dropentry`): `Some(true)` drop it, `Some(false)` keep it, `None` drop
    /// it if idle (`todrop_entry`).
    pub(crate) fn drop_rule(self, state: u16) -> Option<bool> {
        let n = u8::try_from(state).unwrap_or(u8::MAX);
        match self {
            Self::Tcp => match TcpState::from_u8(n) {
                Some(TcpState::SynRecv | TcpState::SynAck) => Some(true),
                Some(TcpState::Established) => None,
                _ => Some(false),
            },
            Self::Sctp => match SctpState::from_u8(n) {
                Some(SctpState::Init1 | SctpState::Init) => Some(true),
                Some(SctpState::Established) => None,
                _ => Some(false),
            },
            Self::Udp | Self::Ah | Self::Esp => None,
        }
    }

    /// The protocol number of the connections this protocol's packets belong to: AH and ESP
    /// go with their client's IKE (UDP) connection (`ah_esp_conn_fill_param_proto`).
    #[inline]
    pub(crate) fn conn_protocol(self) -> u8 {
        match self {
            Self::Tcp => IPPROTO_TCP,
            Self::Udp | Self::Ah | Self::Esp => IPPROTO_UDP,
            Self::Sctp => IPPROTO_SCTP,
        }
    }

    /// The ports of the connection tuple when they are not read from the packet: AH and ESP
    /// have none, their IKE connection is looked up from and to the ISAKMP port; `None` for
    /// the protocols with ports in their header.
    #[inline]
    pub(crate) fn fixed_ports(self) -> Option<Ports> {
        match self {
            Self::Ah | Self::Esp => Some(Ports {
                sport: PORT_ISAKMP.to_be_bytes(),
                dport: PORT_ISAKMP.to_be_bytes(),
                tcp_flags: 0,
                csum: [0, 0],
            }),
            _ => None,
        }
    }

    /// Bytes of the transport header the director reads and rewrites.
    #[inline]
    pub(crate) fn l4_len(self) -> usize {
        match self {
            Self::Tcp => proto_tcp::HLEN,
            Self::Udp => proto_udp::HLEN,
            Self::Sctp => proto_sctp::HDR_LEN,
            Self::Ah | Self::Esp => 0,
        }
    }

    /// Whether the packet opens a new connection (`is_new_conn`): a TCP SYN, an SCTP INIT.
    /// A connection of the same tuple may then be replaced (`conn_reuse_mode`).
    #[inline]
    pub(crate) fn is_new_conn(self, ports: &Ports, sctp: Option<&proto_sctp::Header>) -> bool {
        match self {
            Self::Tcp => ports.tcp_flags & proto_tcp::FLAG_SYN != 0,
            Self::Sctp => sctp.is_some_and(|h| h.chunk_type == Some(proto_sctp::cid::INIT)),
            Self::Udp | Self::Ah | Self::Esp => false,
        }
    }

    /// Whether a connection in `state` may be replaced by a new one from the same client
    /// port (`is_new_conn_expected`): a closing TCP connection (with `conn_reuse_mode` bit
    /// 2, one in FIN_WAIT whose replies the director does not see: `no_output`), a closed
    /// SCTP association; never one a persistence template controls (`controlled`), except
    /// for SCTP.
    pub(crate) fn conn_reusable(self, state: u16, controlled: bool, no_output: bool, conn_reuse_mode: i32) -> bool {
        match self {
            Self::Sctp if !controlled => state == SctpState::Closed as u16,
            Self::Tcp if !controlled => {
                let state = TcpState::from_u8(state as u8);
                matches!(state, Some(TcpState::TimeWait | TcpState::Close))
                    || (conn_reuse_mode & 2 != 0 && state == Some(TcpState::FinWait) && no_output)
            }
            _ => false,
        }
    }

    /// Whether a connection of this protocol may be a one-packet one (`--ops`; upstream's
    /// `ip_vs_schedule` and `ip_vs_bind_dest`): UDP only.
    #[inline]
    pub(crate) fn one_packet(self) -> bool {
        self == Self::Udp
    }
}
