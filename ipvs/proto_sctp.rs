// SPDX-License-Identifier: GPL-2.0

//! SCTP as the director sees it: the common header and first chunk of a packet, the
//! association state machine driven by chunk types in both directions, per-state timeouts,
//! and the CRC32c checksum a NAT rewrite of the ports must recompute.
//!
//! The states are those of the real server's side of the association (upstream's
//! `IP_VS_SCTP_S_*`, shown by `ipvsadm -Lnc`); only ESTABLISHED counts as an active
//! connection. A new connection is scheduled only on an INIT chunk (with `sloppy_sctp`, on
//! any first chunk but ABORT).
//!
//! Kernel independent (`no_std`, host-tested).
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_proto_sctp.c`

#![allow(dead_code, unreachable_pub)]

/// `IPPROTO_SCTP`.
pub const IPPROTO_SCTP: u8 = 132;
/// Length of the SCTP common header (ports, verification tag, checksum).
pub const HDR_LEN: usize = 12;
/// Offset of the CRC32c checksum in the common header.
pub const CSUM_OFF: usize = 8;
/// Length of a chunk header (type, flags, length).
pub const CHUNK_HLEN: usize = 4;

/// Chunk types (`SCTP_CID_*`) the state machine distinguishes.
pub mod cid {
    /// DATA.
    pub const DATA: u8 = 0;
    /// INIT.
    pub const INIT: u8 = 1;
    /// INIT ACK.
    pub const INIT_ACK: u8 = 2;
    /// SACK.
    pub const SACK: u8 = 3;
    /// HEARTBEAT.
    pub const HEARTBEAT: u8 = 4;
    /// HEARTBEAT ACK.
    pub const HEARTBEAT_ACK: u8 = 5;
    /// ABORT.
    pub const ABORT: u8 = 6;
    /// SHUTDOWN.
    pub const SHUTDOWN: u8 = 7;
    /// SHUTDOWN ACK.
    pub const SHUTDOWN_ACK: u8 = 8;
    /// ERROR.
    pub const ERROR: u8 = 9;
    /// COOKIE ECHO.
    pub const COOKIE_ECHO: u8 = 10;
    /// COOKIE ACK.
    pub const COOKIE_ACK: u8 = 11;
    /// ECNE.
    pub const ECN_ECNE: u8 = 12;
    /// CWR.
    pub const ECN_CWR: u8 = 13;
    /// SHUTDOWN COMPLETE.
    pub const SHUTDOWN_COMPLETE: u8 = 14;
}

/// SCTP states (`IP_VS_SCTP_S_*`), in upstream's numbering.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum SctpState {
    None = 0,
    /// First INIT from the client seen, waiting for INIT ACK.
    Init1 = 1,
    /// INIT retransmitted.
    Init = 2,
    /// The server's INIT ACK seen, waiting for COOKIE ECHO.
    CookieSent = 3,
    /// The client's COOKIE ECHO seen, waiting for COOKIE ACK.
    CookieReplied = 4,
    /// The server sent INIT (an association it starts).
    CookieWait = 5,
    /// The client answered the server's INIT.
    Cookie = 6,
    /// The server sent COOKIE ECHO.
    CookieEchoed = 7,
    Established = 8,
    ShutdownSent = 9,
    ShutdownReceived = 10,
    ShutdownAckSent = 11,
    /// INIT answered with ABORT.
    Rejected = 12,
    Closed = 13,
}

/// Number of SCTP states.
pub const NR_STATES: usize = 14;

const ALL: [SctpState; NR_STATES] = [
    SctpState::None,
    SctpState::Init1,
    SctpState::Init,
    SctpState::CookieSent,
    SctpState::CookieReplied,
    SctpState::CookieWait,
    SctpState::Cookie,
    SctpState::CookieEchoed,
    SctpState::Established,
    SctpState::ShutdownSent,
    SctpState::ShutdownReceived,
    SctpState::ShutdownAckSent,
    SctpState::Rejected,
    SctpState::Closed,
];

impl SctpState {
    /// The state with number `n`, if any.
    pub fn from_u8(n: u8) -> Option<Self> {
        ALL.get(n as usize).copied()
    }

    /// Whether a connection in this state counts as active: only an established one.
    pub fn is_active(self) -> bool {
        self == Self::Established
    }

    /// Upstream's name of the state (`/proc/net/ip_vs_conn`, `ipvsadm -Lnc`).
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Init1 => "INIT1",
            Self::Init => "INIT",
            Self::CookieSent => "C-SENT",
            Self::CookieReplied => "C-REPLIED",
            Self::CookieWait => "C-WAIT",
            Self::Cookie => "COOKIE",
            Self::CookieEchoed => "C-ECHOED",
            Self::Established => "ESTABLISHED",
            Self::ShutdownSent => "S-SENT",
            Self::ShutdownReceived => "S-RECEIVED",
            Self::ShutdownAckSent => "S-ACK-SENT",
            Self::Rejected => "REJECTED",
            Self::Closed => "CLOSED",
        }
    }

    /// Default timeout of the state in seconds: the handshake and shutdown states wait for
    /// SCTP's largest retransmission timeout (60 s) and a second; an unanswered first INIT
    /// and a rejected one 4 s; an established association 15 minutes.
    pub fn default_timeout_secs(self) -> u32 {
        const MAX_RTO: u32 = 60 + 1;
        match self {
            Self::None => 2,
            Self::Init1 | Self::Rejected => 3 + 1,
            Self::Established => 15 * 60,
            _ => MAX_RTO,
        }
    }
}

/// Upstream's default timeout of every state, in jiffies at `hz` ticks per second, indexed
/// by state number.
pub fn default_timeouts(hz: u32) -> [core::sync::atomic::AtomicU32; NR_STATES] {
    core::array::from_fn(|i| core::sync::atomic::AtomicU32::new(ALL[i].default_timeout_secs() * hz))
}

/// What a packet's chunk means to the state machine (`enum ipvs_sctp_event_t`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Event {
    /// DATA, SACK, HEARTBEAT(-ACK), ECNE, CWR and chunk types unknown to the table.
    Data = 0,
    Init = 1,
    InitAck = 2,
    CookieEcho = 3,
    CookieAck = 4,
    Shutdown = 5,
    ShutdownAck = 6,
    ShutdownComplete = 7,
    Error = 8,
    Abort = 9,
}

impl Event {
    /// The event of a chunk type (`sctp_events`); types beyond the table are data.
    pub fn of_chunk(t: u8) -> Self {
        match t {
            cid::INIT => Self::Init,
            cid::INIT_ACK => Self::InitAck,
            cid::ABORT => Self::Abort,
            cid::SHUTDOWN => Self::Shutdown,
            cid::SHUTDOWN_ACK => Self::ShutdownAck,
            cid::ERROR => Self::Error,
            cid::COOKIE_ECHO => Self::CookieEcho,
            cid::COOKIE_ACK => Self::CookieAck,
            cid::SHUTDOWN_COMPLETE => Self::ShutdownComplete,
            _ => Self::Data,
        }
    }
}

/// Which way a packet travels, relative to the connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Direction {
    /// Client to real server, replies also seen (NAT).
    Input = 0,
    /// Real server to client.
    Output = 1,
    /// Client to real server, replies never seen (DR, tunnel).
    InputOnly = 2,
}

/// The common header and first chunk of an SCTP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Source port, network byte order.
    pub sport: [u8; 2],
    /// Destination port, network byte order.
    pub dport: [u8; 2],
    /// The checksum as on the wire.
    pub csum: [u8; 4],
    /// Type of the first chunk, if the packet carries a chunk header.
    pub chunk_type: Option<u8>,
    /// Length field of the first chunk (not checked against the packet).
    pub chunk_len: u16,
}

impl Header {
    /// Parses the common header at `h[0]` and the chunk header after it, if present;
    /// `None` if `h` is shorter than the common header.
    pub fn parse(h: &[u8]) -> Option<Self> {
        let b = h.get(..HDR_LEN)?;
        let ch = h.get(HDR_LEN..HDR_LEN + CHUNK_HLEN);
        Some(Self {
            sport: [b[0], b[1]],
            dport: [b[2], b[3]],
            csum: [b[8], b[9], b[10], b[11]],
            chunk_type: ch.map(|c| c[0]),
            chunk_len: ch.map_or(0, |c| u16::from_be_bytes([c[2], c[3]])),
        })
    }

    /// Offset from the common header of the chunk after the first, for a COOKIE ECHO or
    /// COOKIE ACK that an ABORT may follow (upstream looks there and nowhere else); `None`
    /// for other chunks or a first chunk whose length is below a chunk header's.
    pub fn second_chunk_off(&self) -> Option<usize> {
        match self.chunk_type {
            Some(cid::COOKIE_ECHO | cid::COOKIE_ACK) if usize::from(self.chunk_len) >= CHUNK_HLEN => {
                // Chunks are padded to 4 bytes; at most 65535 + 3 + 16, no overflow.
                Some(HDR_LEN + ((usize::from(self.chunk_len) + 3) & !3))
            }
            _ => None,
        }
    }

    /// The state machine's event for this packet: the first chunk's, or ABORT when an
    /// ABORT (of type `second`, read at [`Self::second_chunk_off`]) follows a COOKIE ECHO
    /// or COOKIE ACK. `None` without a chunk (upstream leaves the state alone then).
    pub fn event(&self, second: Option<u8>) -> Option<Event> {
        let t = self.chunk_type?;
        if self.second_chunk_off().is_some() && second == Some(cid::ABORT) {
            return Some(Event::Abort);
        }
        Some(Event::of_chunk(t))
    }

    /// Whether this packet may start a new connection (`sctp_conn_schedule`): a chunk must
    /// be present and be INIT, or with `sloppy` anything but ABORT.
    pub fn may_schedule(&self, sloppy: bool) -> bool {
        match self.chunk_type {
            Some(cid::ABORT) | None => false,
            Some(t) => sloppy || t == cid::INIT,
        }
    }
}

use SctpState::{
    Closed as CL, Cookie as CO, CookieEchoed as CE, CookieReplied as CR, CookieSent as CS,
    CookieWait as CW, Established as ES, Init as IN, Init1 as I1, None as NO, Rejected as RJ,
    ShutdownAckSent as SA, ShutdownReceived as SR, ShutdownSent as SS,
};

// Rows: event in `Event` order; columns: current state in `SctpState` order.
type Row = [SctpState; NR_STATES];

/// Upstream's table (`sctp_states`), by direction, event and state.
const TABLE: [[Row; 10]; 3] = [
    // Input.
    [
        /* data */ [ES, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        /* init */ [I1, IN, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, IN, IN],
        /* i_a  */ [CW, CW, CW, CS, CR, CO, CO, CE, ES, SS, SR, SA, RJ, CL],
        /* c_e  */ [CR, IN, IN, CR, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        /* c_a  */ [ES, I1, IN, CS, CR, CW, CO, ES, ES, SS, SR, SA, RJ, CL],
        /* s    */ [SR, I1, IN, CS, CR, CW, CO, CE, SR, SS, SR, SA, RJ, CL],
        /* s_a  */ [CL, IN, IN, CS, CR, CW, CO, CE, ES, CL, SR, CL, RJ, CL],
        /* s_c  */ [CL, CL, CL, CS, CR, CW, CO, CE, ES, SS, SR, CL, RJ, CL],
        /* err  */ [CL, I1, IN, CS, CR, CW, CO, CL, ES, SS, SR, SA, RJ, CL],
        /* ab   */ [CL, CL, CL, CL, CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL],
    ],
    // Output.
    [
        /* data */ [ES, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        /* init */ [CW, CW, CW, CW, CW, CW, CW, CW, ES, CW, CW, CW, CW, CW],
        /* i_a  */ [CS, CS, CS, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        /* c_e  */ [CE, CE, CE, CE, CE, CE, CE, CE, ES, SS, SR, SA, RJ, CL],
        /* c_a  */ [ES, ES, ES, ES, ES, ES, ES, ES, ES, SS, SR, SA, RJ, CL],
        /* s    */ [SS, SS, SS, SS, SS, SS, SS, SS, SS, SS, SR, SA, RJ, CL],
        /* s_a  */ [SA, SA, SA, SA, SA, CW, CO, CE, ES, SA, SA, SA, RJ, CL],
        /* s_c  */ [CL, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        /* err  */ [CL, CL, CL, CL, CL, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        /* ab   */ [CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL],
    ],
    // Input only.
    [
        /* data */ [ES, I1, IN, CS, CR, ES, CO, CE, ES, SS, SR, SA, RJ, CL],
        /* init */ [I1, IN, IN, IN, IN, IN, CO, CE, ES, SS, SR, SA, IN, IN],
        /* i_a  */ [CE, CE, CE, CE, CE, CE, CO, CE, ES, SS, SR, SA, RJ, CL],
        /* c_e  */ [ES, ES, ES, ES, ES, ES, CO, CE, ES, SS, SR, SA, RJ, CL],
        /* c_a  */ [ES, I1, IN, ES, ES, CW, ES, ES, ES, SS, SR, SA, RJ, CL],
        /* s    */ [SR, I1, IN, CS, CR, CW, CO, CE, SR, SS, SR, SA, RJ, CL],
        /* s_a  */ [CL, IN, IN, CS, CR, CW, CO, CE, CL, CL, SR, CL, RJ, CL],
        /* s_c  */ [CL, CL, CL, CL, CL, CW, CO, CE, ES, SS, CL, CL, RJ, CL],
        /* err  */ [CL, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        /* ab   */ [CL, CL, CL, CL, CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL],
    ],
];

// `NO` is only the table's starting column.
const _: SctpState = NO;

/// The state after a packet with `event` travelling `dir` in state `cur`.
pub fn next_state(cur: SctpState, dir: Direction, event: Event) -> SctpState {
    TABLE[dir as usize][event as usize][cur as usize]
}

/// The CRC32c (Castagnoli, reflected polynomial 0x82f63b78) lookup table.
const CRC32C_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0x82f6_3b78 } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// Continues a CRC32c over `data` from the running (not inverted) value `crc`.
pub fn crc32c_update(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = CRC32C_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// The checksum field of the SCTP packet `pkt` (common header on), as it goes on the wire
/// (`sctp_compute_cksum`): CRC32c over the packet with the checksum field taken as zero.
/// `None` if `pkt` is shorter than the common header.
pub fn checksum(pkt: &[u8]) -> Option<[u8; 4]> {
    let head = pkt.get(..CSUM_OFF)?;
    let rest = pkt.get(HDR_LEN..)?;
    let crc = crc32c_update(!0, head);
    let crc = crc32c_update(crc, &[0; 4]);
    let crc = crc32c_update(crc, rest);
    // The CRC is stored least significant byte first.
    Some((!crc).to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::*;
    use Event::*;

    fn walk(steps: &[(Direction, Event)]) -> SctpState {
        steps.iter().fold(SctpState::None, |s, &(d, e)| next_state(s, d, e))
    }

    #[test]
    fn crc32c_reference() {
        // RFC 3720 B.4: 32 bytes of zeros give 0x8a9136aa; the standard check value.
        assert_eq!(!crc32c_update(!0, &[0u8; 32]), 0x8a91_36aa);
        assert_eq!(!crc32c_update(!0, b"123456789"), 0xe306_9283);
        // A packet's own checksum makes it verify.
        let mut p = [0u8; 28];
        for (i, b) in p.iter_mut().enumerate() {
            *b = (i * 7) as u8;
        }
        let c = checksum(&p).unwrap();
        p[8..12].copy_from_slice(&c);
        assert_eq!(checksum(&p), Some(c));
        assert!(checksum(&p[..11]).is_none());
        assert!(checksum(&p[..12]).is_some());
    }

    #[test]
    fn nat_association_life() {
        // Client INIT, server INIT ACK, client COOKIE ECHO, server COOKIE ACK.
        let mut v = vec![(Input, Init)];
        assert_eq!(walk(&v), SctpState::Init1);
        v.push((Output, InitAck));
        assert_eq!(walk(&v), SctpState::CookieSent);
        v.push((Input, CookieEcho));
        assert_eq!(walk(&v), SctpState::CookieReplied);
        v.push((Output, CookieAck));
        assert_eq!(walk(&v), SctpState::Established);
        v.push((Input, Data));
        v.push((Output, Data));
        assert_eq!(walk(&v), SctpState::Established);
        // Client shuts down.
        let mut c = v.clone();
        c.push((Input, Shutdown));
        assert_eq!(walk(&c), SctpState::ShutdownReceived);
        c.push((Output, ShutdownAck));
        assert_eq!(walk(&c), SctpState::ShutdownAckSent);
        c.push((Input, ShutdownComplete));
        assert_eq!(walk(&c), SctpState::Closed);
        // Server shuts down.
        v.push((Output, Shutdown));
        assert_eq!(walk(&v), SctpState::ShutdownSent);
        v.push((Input, ShutdownAck));
        assert_eq!(walk(&v), SctpState::Closed);
        // A new INIT on a closed association starts over; an INIT retransmitted is INIT.
        assert_eq!(next_state(SctpState::Closed, Input, Init), SctpState::Init);
        assert_eq!(walk(&[(Input, Init), (Input, Init)]), SctpState::Init);
        // INIT answered by ABORT.
        assert_eq!(walk(&[(Input, Init), (Output, Abort)]), SctpState::Rejected);
    }

    #[test]
    fn input_only_association() {
        let s = walk(&[(InputOnly, Init), (InputOnly, CookieEcho)]);
        assert_eq!(s, SctpState::Established);
        assert!(s.is_active());
        assert_eq!(next_state(s, InputOnly, Shutdown), SctpState::ShutdownReceived);
        assert_eq!(next_state(SctpState::ShutdownReceived, InputOnly, ShutdownComplete), SctpState::Closed);
        assert_eq!(next_state(s, InputOnly, ShutdownAck), SctpState::Closed);
    }

    #[test]
    fn chunk_parsing() {
        let mut p = [0u8; 40];
        p[0..2].copy_from_slice(&1234u16.to_be_bytes());
        p[2..4].copy_from_slice(&80u16.to_be_bytes());
        p[12] = cid::INIT;
        p[14..16].copy_from_slice(&20u16.to_be_bytes());
        let h = Header::parse(&p).unwrap();
        assert_eq!(h.sport, 1234u16.to_be_bytes());
        assert_eq!(h.chunk_type, Some(cid::INIT));
        assert!(h.may_schedule(false));
        assert_eq!(h.event(None), Some(Init));
        assert_eq!(h.second_chunk_off(), None);
        // No chunk header: never scheduled, no event.
        let h = Header::parse(&p[..12]).unwrap();
        assert_eq!(h.chunk_type, None);
        assert!(!h.may_schedule(true));
        assert_eq!(h.event(None), None);
        assert!(Header::parse(&p[..11]).is_none());
        // Sloppy: anything but ABORT.
        p[12] = cid::DATA;
        let h = Header::parse(&p).unwrap();
        assert!(!h.may_schedule(false) && h.may_schedule(true));
        p[12] = cid::ABORT;
        assert!(!Header::parse(&p).unwrap().may_schedule(true));
        // COOKIE ECHO then ABORT: the ABORT counts; lengths are padded; lying lengths
        // below a chunk header are ignored.
        p[12] = cid::COOKIE_ECHO;
        p[14..16].copy_from_slice(&5u16.to_be_bytes());
        let h = Header::parse(&p).unwrap();
        assert_eq!(h.second_chunk_off(), Some(20));
        assert_eq!(h.event(Some(cid::ABORT)), Some(Abort));
        assert_eq!(h.event(Some(cid::DATA)), Some(CookieEcho));
        p[14..16].copy_from_slice(&3u16.to_be_bytes());
        let h = Header::parse(&p).unwrap();
        assert_eq!(h.second_chunk_off(), None);
        assert_eq!(h.event(Some(cid::ABORT)), Some(CookieEcho));
        p[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
        assert_eq!(Header::parse(&p).unwrap().second_chunk_off(), Some(12 + 0x10000));
        // Unknown chunk types are data.
        assert_eq!(Event::of_chunk(200), Data);
        assert_eq!(Event::of_chunk(cid::HEARTBEAT), Data);
    }

    #[test]
    fn states_and_timeouts() {
        let t = default_timeouts(100);
        let secs: Vec<u32> = t.iter().map(|a| a.load(core::sync::atomic::Ordering::Relaxed) / 100).collect();
        assert_eq!(secs, [2, 4, 61, 61, 61, 61, 61, 61, 900, 61, 61, 61, 4, 61]);
        for (i, s) in ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
            assert_eq!(SctpState::from_u8(i as u8), Some(*s));
        }
        assert_eq!(SctpState::from_u8(14), None);
        assert_eq!(ALL.iter().filter(|s| s.is_active()).count(), 1);
        assert_eq!(SctpState::CookieSent.name(), "C-SENT");
    }
}
