// SPDX-License-Identifier: GPL-2.0

//! The transport protocols the director balances, in one table (upstream's
//! `struct ip_vs_protocol` and its per-namespace `ip_vs_proto_data`): for each of TCP, UDP
//! and SCTP its name, its states and their names, its per-state timeouts, the states a
//! connection is synchronised in, and which connections the overload defense drops first.
//! The state machines themselves are in `proto_tcp.rs` and `proto_sctp.rs`, the header
//! parsing in `proto.rs`/`sctp.rs`.
//!
//! Not yet behind the table (still dispatched on the protocol number where they are used):
//! which packets may start a connection (`ip_vs_in`), the state transitions (`conn.rs`) and
//! the NAT header rewrites (`xmit::mangle`, `sctp::mangle`).
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_proto.c`, `ip_vs_sync.c` (`ip_vs_sync_conn_needed`),
//! `ip_vs_conn.c` (`ip_vs_random_dropentry`)

use crate::{
    proto::{IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP},
    proto_sctp::{self, SctpState},
    proto_tcp::{self, TcpState},
};
use core::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// Upstream's UDP timeout: 5 minutes.
const UDP_TIMEOUT_SECS: u32 = 5 * 60;

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
            udp: AtomicU32::new(UDP_TIMEOUT_SECS * hz),
            sctp: proto_sctp::default_timeouts(hz),
        }
    }
}

/// A protocol with services (`ip_vs_proto_get`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Protocol {
    Tcp,
    Udp,
    Sctp,
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

impl Protocol {
    /// The protocol with number `n`, if it has services.
    pub(crate) fn of(n: u8) -> Option<Self> {
        match n {
            IPPROTO_TCP => Some(Self::Tcp),
            IPPROTO_UDP => Some(Self::Udp),
            IPPROTO_SCTP => Some(Self::Sctp),
            _ => None,
        }
    }

    /// Number of states (`num_states`).
    pub(crate) fn num_states(self) -> u16 {
        match self {
            Self::Tcp => proto_tcp::NR_STATES as u16,
            // `IP_VS_UDP_S_LAST`: the one state `IP_VS_UDP_S_NORMAL`.
            Self::Udp => 1,
            Self::Sctp => proto_sctp::NR_STATES as u16,
        }
    }

    /// Upstream's name of `state` (`state_name`, shown by `/proc/net/ip_vs_conn`).
    pub(crate) fn state_name(self, state: u16) -> &'static str {
        let n = u8::try_from(state).unwrap_or(u8::MAX);
        match self {
            Self::Tcp => TcpState::from_u8(n).map_or("ERR!", TcpState::name),
            Self::Udp => "UDP",
            Self::Sctp => SctpState::from_u8(n).map_or("ERR!", SctpState::name),
        }
    }

    /// The timeout of `state` in jiffies, `None` for a state the protocol does not have.
    pub(crate) fn state_timeout(self, t: &Timeouts, state: u16) -> Option<u32> {
        let i = usize::from(state);
        match self {
            Self::Tcp => t.tcp.get(i).map(|a| a.load(Relaxed)),
            Self::Udp => Some(t.udp.load(Relaxed)),
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
            Self::Udp => return SyncRule::Single,
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
            Self::Udp => None,
        }
    }
}
