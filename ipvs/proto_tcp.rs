// SPDX-License-Identifier: GPL-2.0

//! TCP connection state tracking as the director sees it.
//!
//! The director follows each connection through the flags of the segments it forwards:
//! client->server segments (input), server->client segments (output, NAT only) and, for
//! DR and tunnelled connections whose replies bypass the director, input-only tracking.
//! Each state has its own timeout; ESTABLISHED, SYN_SENT, SYN_RECV and SYNACK count as
//! active connections.
//!
//! Kernel independent (`no_std`, host-tested).
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_proto_tcp.c`

#![allow(dead_code, unreachable_pub)]

/// TCP states (`IP_VS_TCP_S_*`), in upstream's numbering (also shown by `/proc`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum TcpState {
    None = 0,
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait = 4,
    TimeWait = 5,
    Close = 6,
    CloseWait = 7,
    LastAck = 8,
    Listen = 9,
    SynAck = 10,
}

/// Number of TCP states.
pub const NR_STATES: usize = 11;

const ALL: [TcpState; NR_STATES] = [
    TcpState::None,
    TcpState::Established,
    TcpState::SynSent,
    TcpState::SynRecv,
    TcpState::FinWait,
    TcpState::TimeWait,
    TcpState::Close,
    TcpState::CloseWait,
    TcpState::LastAck,
    TcpState::Listen,
    TcpState::SynAck,
];

impl TcpState {
    /// The state with number `n`, if any.
    pub fn from_u8(n: u8) -> Option<Self> {
        ALL.get(n as usize).copied()
    }

    /// Whether a connection in this state counts as active.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Self::Established | Self::SynSent | Self::SynRecv | Self::SynAck
        )
    }

    /// Upstream's name of the state (`/proc/net/ip_vs_conn`).
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Established => "ESTABLISHED",
            Self::SynSent => "SYN_SENT",
            Self::SynRecv => "SYN_RECV",
            Self::FinWait => "FIN_WAIT",
            Self::TimeWait => "TIME_WAIT",
            Self::Close => "CLOSE",
            Self::CloseWait => "CLOSE_WAIT",
            Self::LastAck => "LAST_ACK",
            Self::Listen => "LISTEN",
            Self::SynAck => "SYNACK",
        }
    }

    /// Default timeout of the state in seconds.
    pub fn default_timeout_secs(self) -> u32 {
        match self {
            Self::None => 2,
            Self::Established => 15 * 60,
            Self::SynSent => 2 * 60,
            Self::SynRecv => 60,
            Self::FinWait => 2 * 60,
            Self::TimeWait => 2 * 60,
            Self::Close => 10,
            Self::CloseWait => 60,
            Self::LastAck => 30,
            Self::Listen => 2 * 60,
            Self::SynAck => 120,
        }
    }
}

/// Upstream's default timeout of every state, in jiffies at `hz` ticks per second, indexed by
/// state number (the per-namespace table that `ipvsadm --set` edits).
pub fn default_timeouts(hz: u32) -> [core::sync::atomic::AtomicU32; NR_STATES] {
    core::array::from_fn(|i| core::sync::atomic::AtomicU32::new(ALL[i].default_timeout_secs() * hz))
}

/// Which way a segment travels, relative to the connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Direction {
    /// Client to real server, replies also seen (NAT).
    Input,
    /// Real server to client.
    Output,
    /// Client to real server, replies never seen (DR, tunnel).
    InputOnly,
}

/// The flag of a segment that drives the state machine, by priority RST > SYN > FIN > ACK.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Event {
    Syn = 0,
    Fin = 1,
    Ack = 2,
    Rst = 3,
}

impl Event {
    /// Classifies the TCP flags byte (offset 13 of the header); `None` without any of them.
    pub fn from_flags(flags: u8) -> Option<Self> {
        const FIN: u8 = 0x01;
        const SYN: u8 = 0x02;
        const RST: u8 = 0x04;
        const ACK: u8 = 0x10;
        if flags & RST != 0 {
            Some(Self::Rst)
        } else if flags & SYN != 0 {
            Some(Self::Syn)
        } else if flags & FIN != 0 {
            Some(Self::Fin)
        } else if flags & ACK != 0 {
            Some(Self::Ack)
        } else {
            None
        }
    }
}

use TcpState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI,
    SynAck as SA, SynRecv as SR, SynSent as SS, TimeWait as TW,
};

// Rows: event; columns: current state in `TcpState` order (None first).
type Row = [TcpState; NR_STATES];

const INPUT: [Row; 4] = [
    /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    /* fin */ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
    /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
];

const OUTPUT: [Row; 4] = [
    /* syn */ [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
    /* fin */ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
    /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
    /* rst */ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
];

const INPUT_ONLY: [Row; 4] = [
    /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    /* fin */ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
    /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
];

// The tables of `secure_tcp` (upstream's `tcp_states_dos`): a client's ACK no longer
// establishes a connection still in SYN_RECV, and a server's SYN+ACK leads to SYNACK, so
// half-open connections of a SYN flood keep their short timeouts.
const INPUT_DOS: [Row; 4] = [
    /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SA],
    /* fin */ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, SA],
    /* ack */ [ES, ES, SS, SR, FW, TW, CL, CW, CL, LI, SA],
    /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
];

const OUTPUT_DOS: [Row; 4] = [
    /* syn */ [SS, ES, SS, SA, SS, SS, SS, SS, SS, LI, SA],
    /* fin */ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
    /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
    /* rst */ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
];

const INPUT_ONLY_DOS: [Row; 4] = [
    /* syn */ [SA, ES, ES, SR, SA, SA, SA, SA, SA, SA, SA],
    /* fin */ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
    /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
];

/// The state after a segment with `event` travelling `dir` in state `cur`; a segment with
/// none of the tracked flags closes the connection, as upstream does.
pub fn next_state(cur: TcpState, dir: Direction, event: Option<Event>) -> TcpState {
    next_state_in(cur, dir, event, false)
}

/// As [`next_state`], with the `secure_tcp` tables when `secure`.
pub fn next_state_in(cur: TcpState, dir: Direction, event: Option<Event>, secure: bool) -> TcpState {
    let Some(ev) = event else {
        return TcpState::Close;
    };
    let table = match (dir, secure) {
        (Direction::Input, false) => &INPUT,
        (Direction::Output, false) => &OUTPUT,
        (Direction::InputOnly, false) => &INPUT_ONLY,
        (Direction::Input, true) => &INPUT_DOS,
        (Direction::Output, true) => &OUTPUT_DOS,
        (Direction::InputOnly, true) => &INPUT_ONLY_DOS,
    };
    table[ev as usize][cur as usize]
}

/// The SYN flag of the TCP flags byte.
pub const FLAG_SYN: u8 = 0x02;
/// The RST flag of the TCP flags byte.
pub const FLAG_RST: u8 = 0x04;

/// Whether a segment with `flags` may start a connection (`tcp_conn_schedule`): a SYN, or
/// with `sloppy` (`sloppy_tcp`) any segment; never a reset. (No ACK check: active FTP's
/// data connection starts with the server's SYN+ACK.)
pub fn may_schedule(flags: u8, sloppy: bool) -> bool {
    flags & FLAG_RST == 0 && (flags & FLAG_SYN != 0 || sloppy)
}

/// Length of the TCP header without options (the part the NAT rewrite touches).
pub const HLEN: usize = 20;

/// TCP's checksum rules for the NAT rewrite (`tcp_snat_handler`, `tcp_dnat_handler`): the
/// checksum is always present and updated as it is.
pub struct Tcp;

impl crate::proto::L4Csum for Tcp {
    const HLEN: usize = HLEN;
    const CSUM_OFF: usize = crate::proto::TCP_CSUM_OFF;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(dir_events: &[(Direction, Event)]) -> TcpState {
        dir_events
            .iter()
            .fold(TcpState::None, |s, &(d, e)| next_state(s, d, Some(e)))
    }

    #[test]
    fn schedule_preconditions() {
        assert!(may_schedule(FLAG_SYN, false));
        assert!(may_schedule(FLAG_SYN | 0x10, false));
        assert!(!may_schedule(0x10, false));
        assert!(may_schedule(0x10, true));
        assert!(!may_schedule(FLAG_RST, true));
        assert!(!may_schedule(FLAG_SYN | FLAG_RST, false));
    }

    #[test]
    fn nat_lifecycle() {
        use Direction::*;
        use Event::*;
        assert_eq!(walk(&[(Input, Syn)]), TcpState::SynRecv);
        assert_eq!(walk(&[(Input, Syn), (Output, Syn)]), TcpState::SynRecv);
        assert_eq!(walk(&[(Input, Syn), (Output, Syn), (Input, Ack)]), TcpState::Established);
        let est = [(Input, Syn), (Output, Syn), (Input, Ack)];
        let mut v = est.to_vec();
        v.push((Input, Fin));
        assert_eq!(walk(&v), TcpState::CloseWait);
        v.push((Output, Fin));
        assert_eq!(walk(&v), TcpState::TimeWait);
        v.push((Input, Ack));
        assert_eq!(walk(&v), TcpState::TimeWait);
    }

    #[test]
    fn dr_lifecycle_input_only() {
        use Direction::*;
        use Event::*;
        let s = walk(&[(InputOnly, Syn), (InputOnly, Ack), (InputOnly, Fin)]);
        assert_eq!(s, TcpState::FinWait);
        assert_eq!(next_state(s, InputOnly, Some(Ack)), TcpState::FinWait);
        assert_eq!(next_state(s, InputOnly, Some(Rst)), TcpState::Close);
    }

    #[test]
    fn secure_tcp_keeps_half_open_in_syn_recv() {
        use Direction::*;
        use Event::*;
        let s = next_state_in(TcpState::None, Input, Some(Syn), true);
        assert_eq!(s, TcpState::SynRecv);
        assert_eq!(next_state_in(s, Input, Some(Ack), true), TcpState::SynRecv);
        assert_eq!(next_state_in(s, Output, Some(Syn), true), TcpState::SynAck);
        assert_eq!(next_state_in(TcpState::SynAck, Input, Some(Ack), true), TcpState::SynAck);
        assert_eq!(next_state_in(TcpState::None, InputOnly, Some(Syn), true), TcpState::SynAck);
        assert_eq!(next_state_in(s, Input, Some(Ack), false), TcpState::Established);
    }

    #[test]
    fn rst_closes_and_flags_priority() {
        assert_eq!(Event::from_flags(0x14), Some(Event::Rst));
        assert_eq!(Event::from_flags(0x12), Some(Event::Syn));
        assert_eq!(Event::from_flags(0x11), Some(Event::Fin));
        assert_eq!(Event::from_flags(0x10), Some(Event::Ack));
        assert_eq!(Event::from_flags(0x08), None);
        assert_eq!(next_state(TcpState::Established, Direction::Input, None), TcpState::Close);
        assert_eq!(
            next_state(TcpState::Established, Direction::Input, Some(Event::Rst)),
            TcpState::Close
        );
    }

    #[test]
    fn active_states() {
        let active: Vec<_> = ALL.iter().filter(|s| s.is_active()).collect();
        assert_eq!(active.len(), 4);
        assert!(!TcpState::TimeWait.is_active());
        assert_eq!(TcpState::from_u8(10), Some(TcpState::SynAck));
        assert_eq!(TcpState::from_u8(11), None);
    }

    #[test]
    fn nat_server_closes_first() {
        use Direction::*;
        use Event::*;
        let est = [(Input, Syn), (Output, Syn), (Input, Ack)];
        let mut v = est.to_vec();
        v.push((Output, Fin));
        assert_eq!(walk(&v), TcpState::FinWait);
        v.push((Input, Ack));
        assert_eq!(walk(&v), TcpState::FinWait);
        v.push((Input, Fin));
        assert_eq!(walk(&v), TcpState::TimeWait);
        v.push((Output, Ack));
        assert_eq!(walk(&v), TcpState::TimeWait);
    }

    #[test]
    fn resets_and_refused_connections() {
        use Direction::*;
        use Event::*;
        // The real server refuses the connection: RST in answer to the SYN.
        assert_eq!(walk(&[(Input, Syn), (Output, Rst)]), TcpState::Close);
        // A client RST during the handshake is ignored (SYN_RECV stays), as upstream does
        // against spoofed resets; once established it closes.
        assert_eq!(walk(&[(Input, Syn), (Input, Rst)]), TcpState::SynRecv);
        assert_eq!(walk(&[(Input, Syn), (Output, Syn), (Input, Ack), (Input, Rst)]), TcpState::Close);
        // A new SYN on a closed connection starts over.
        assert_eq!(walk(&[(Input, Syn), (Output, Rst), (Input, Syn)]), TcpState::SynRecv);
        // TIME_WAIT ignores a late reset from the real server.
        let tw = [(Input, Syn), (Output, Syn), (Input, Ack), (Input, Fin), (Output, Fin)];
        let s = walk(&tw);
        assert_eq!(s, TcpState::TimeWait);
        assert_eq!(next_state(s, Output, Some(Rst)), TcpState::TimeWait);
    }

    #[test]
    fn input_only_full_lifecycle() {
        use Direction::*;
        use Event::*;
        // DR/tunnel: the director sees the client's segments only.
        let seq = [
            (InputOnly, Syn, TcpState::SynRecv),
            (InputOnly, Ack, TcpState::Established),
            (InputOnly, Ack, TcpState::Established),
            (InputOnly, Fin, TcpState::FinWait),
            (InputOnly, Ack, TcpState::FinWait),
        ];
        let mut s = TcpState::None;
        for (d, e, want) in seq {
            s = next_state(s, d, Some(e));
            assert_eq!(s, want);
        }
        // Only ESTABLISHED, SYN_SENT, SYN_RECV and SYNACK count as active connections.
        let tally: Vec<_> = seq.iter().map(|x| x.2.is_active()).collect();
        assert_eq!(tally, [true, true, true, false, false]);
    }

    #[test]
    fn timeouts_are_upstreams() {
        let t = default_timeouts(100);
        let secs: Vec<u32> = t.iter().map(|a| a.load(core::sync::atomic::Ordering::Relaxed) / 100).collect();
        assert_eq!(secs, [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120]);
        for (i, s) in ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
            assert_eq!(TcpState::from_u8(i as u8), Some(*s));
        }
    }
}
