// SPDX-License-Identifier: GPL-2.0

//! The setsockopt/getsockopt ABI of `<uapi/linux/ip_vs.h>`: command numbers, argument
//! lengths and the byte layout of every structure, decoded and encoded without `unsafe`.
//!
//! Kernel independent (`no_std`, host-tested). The kernel crate asserts at compile time that
//! the lengths here equal the C `sizeof`s from the bindings.
//!
//! C: `srctree/include/uapi/linux/ip_vs.h`, `srctree/net/netfilter/ipvs/ip_vs_ctl.c`

#![allow(dead_code, unreachable_pub)]

use crate::ctl_config::{
    Af, DaemonConfig, DestConfig, Errno, IfName, InetAddr, SchedName, ServiceConfig,
    ServiceKey, ServiceOp, TimeoutConfig,
};

/// First socket option number of IPVS.
pub const BASE_CTL: i32 = 64 + 1024 + 64;

/// `IP_VS_SO_SET_*` commands.
pub mod set {
    use super::BASE_CTL;
    pub const NONE: i32 = BASE_CTL;
    pub const INSERT: i32 = BASE_CTL + 1;
    pub const ADD: i32 = BASE_CTL + 2;
    pub const EDIT: i32 = BASE_CTL + 3;
    pub const DEL: i32 = BASE_CTL + 4;
    pub const FLUSH: i32 = BASE_CTL + 5;
    pub const LIST: i32 = BASE_CTL + 6;
    pub const ADDDEST: i32 = BASE_CTL + 7;
    pub const DELDEST: i32 = BASE_CTL + 8;
    pub const EDITDEST: i32 = BASE_CTL + 9;
    pub const TIMEOUT: i32 = BASE_CTL + 10;
    pub const STARTDAEMON: i32 = BASE_CTL + 11;
    pub const STOPDAEMON: i32 = BASE_CTL + 12;
    pub const RESTORE: i32 = BASE_CTL + 13;
    pub const SAVE: i32 = BASE_CTL + 14;
    pub const ZERO: i32 = BASE_CTL + 15;
    pub const MAX: i32 = ZERO;
}

/// `IP_VS_SO_GET_*` commands.
pub mod get {
    use super::BASE_CTL;
    pub const VERSION: i32 = BASE_CTL;
    pub const INFO: i32 = BASE_CTL + 1;
    pub const SERVICES: i32 = BASE_CTL + 2;
    pub const SERVICE: i32 = BASE_CTL + 3;
    pub const DESTS: i32 = BASE_CTL + 4;
    pub const DEST: i32 = BASE_CTL + 5;
    pub const TIMEOUT: i32 = BASE_CTL + 6;
    pub const DAEMON: i32 = BASE_CTL + 7;
    pub const MAX: i32 = DAEMON;
}

/// `IP_VS_VERSION_CODE`: 1.2.1.
pub const VERSION_CODE: u32 = 0x010201;
/// `IP_VS_SCHEDNAME_MAXLEN`.
pub const SCHEDNAME_MAXLEN: usize = 16;
/// `IP_VS_IFNAME_MAXLEN`.
pub const IFNAME_MAXLEN: usize = 16;

/// Service flags (`IP_VS_SVC_F_*`).
pub mod svc_flags {
    pub const PERSISTENT: u32 = 0x0001;
    pub const HASHED: u32 = 0x0002;
    pub const ONEPACKET: u32 = 0x0004;
    pub const SCHED1: u32 = 0x0008;
    pub const SCHED2: u32 = 0x0010;
    pub const SCHED3: u32 = 0x0020;
}

/// Connection and destination flags (`IP_VS_CONN_F_*`).
pub mod conn_flags {
    pub const FWD_MASK: u32 = 0x0007;
    pub const MASQ: u32 = 0x0000;
    pub const LOCALNODE: u32 = 0x0001;
    pub const TUNNEL: u32 = 0x0002;
    pub const DROUTE: u32 = 0x0003;
    pub const BYPASS: u32 = 0x0004;
    pub const SYNC: u32 = 0x0020;
    pub const HASHED: u32 = 0x0040;
    pub const NOOUTPUT: u32 = 0x0080;
    pub const INACTIVE: u32 = 0x0100;
    pub const TEMPLATE: u32 = 0x1000;
    pub const ONE_PACKET: u32 = 0x2000;
    pub const NFCT: u32 = 1 << 16;
    /// The flags a destination passes on to its connections.
    pub const DEST_MASK: u32 = FWD_MASK | ONE_PACKET | NFCT;
}

/// `sizeof(struct ip_vs_service_user)`.
pub const SERVICE_USER_LEN: usize = 44;
/// `sizeof(struct ip_vs_dest_user)`.
pub const DEST_USER_LEN: usize = 24;
/// `sizeof(struct ip_vs_svcdest_user)`.
pub const SVCDEST_USER_LEN: usize = SERVICE_USER_LEN + DEST_USER_LEN;
/// `sizeof(struct ip_vs_timeout_user)`.
pub const TIMEOUT_USER_LEN: usize = 12;
/// `sizeof(struct ip_vs_daemon_user)`.
pub const DAEMON_USER_LEN: usize = 24;
/// `sizeof(struct ip_vs_stats_user)`.
pub const STATS_USER_LEN: usize = 56;
/// `sizeof(struct ip_vs_getinfo)`.
pub const GETINFO_LEN: usize = 12;
/// `sizeof(struct ip_vs_service_entry)`.
pub const SERVICE_ENTRY_LEN: usize = 104;
/// `sizeof(struct ip_vs_dest_entry)`.
pub const DEST_ENTRY_LEN: usize = 96;
/// `sizeof(struct ip_vs_get_dests)` without entries.
pub const GET_DESTS_LEN: usize = 24;
/// `sizeof(struct ip_vs_get_services)` without entries.
pub const GET_SERVICES_LEN: usize = 8;
/// Length of the `IP_VS_SO_GET_VERSION` buffer.
pub const VERSION_LEN: usize = 64;

/// The largest [`get_arglen`].
pub const MAX_GET_ARGLEN: usize = SERVICE_ENTRY_LEN;
/// The largest [`set_arglen`].
pub const MAX_SET_ARGLEN: usize = SVCDEST_USER_LEN;

/// The exact argument length each set command requires (`set_arglen`); commands not listed
/// take no argument.
pub fn set_arglen(cmd: i32) -> usize {
    match cmd {
        set::ADD | set::EDIT | set::DEL | set::ZERO => SERVICE_USER_LEN,
        set::ADDDEST | set::DELDEST | set::EDITDEST => SVCDEST_USER_LEN,
        set::TIMEOUT => TIMEOUT_USER_LEN,
        set::STARTDAEMON | set::STOPDAEMON => DAEMON_USER_LEN,
        _ => 0,
    }
}

/// The minimum buffer length each get command requires (`get_arglen`).
pub fn get_arglen(cmd: i32) -> usize {
    match cmd {
        get::VERSION => VERSION_LEN,
        get::INFO => GETINFO_LEN,
        get::SERVICES => GET_SERVICES_LEN,
        get::SERVICE => SERVICE_ENTRY_LEN,
        get::DESTS => GET_DESTS_LEN,
        get::TIMEOUT => TIMEOUT_USER_LEN,
        get::DAEMON => 2 * DAEMON_USER_LEN,
        _ => 0,
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(s) => u16::from_ne_bytes([s[0], s[1]]),
        None => 0,
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(s) => u32::from_ne_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

fn bytes_at<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(s) = b.get(at..at + N) {
        out.copy_from_slice(s);
    }
    out
}

/// `struct ip_vs_service_user`: a virtual service as given to ADD, EDIT, DEL and ZERO.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ServiceUser {
    /// IP protocol number.
    pub protocol: u16,
    /// Virtual IPv4 address, network byte order.
    pub addr: [u8; 4],
    /// Virtual port, network byte order.
    pub port: [u8; 2],
    /// Firewall mark, or 0.
    pub fwmark: u32,
    /// Scheduler name field, possibly unterminated.
    pub sched_name: [u8; SCHEDNAME_MAXLEN],
    /// `IP_VS_SVC_F_*`.
    pub flags: u32,
    /// Persistence timeout in seconds.
    pub timeout: u32,
    /// Persistence netmask, network byte order.
    pub netmask: [u8; 4],
}

impl ServiceUser {
    /// Decodes the first [`SERVICE_USER_LEN`] bytes (missing bytes read as zero).
    pub fn decode(b: &[u8]) -> Self {
        Self {
            protocol: u16_at(b, 0),
            addr: bytes_at(b, 4),
            port: bytes_at(b, 8),
            fwmark: u32_at(b, 12),
            sched_name: bytes_at(b, 16),
            flags: u32_at(b, 32),
            timeout: u32_at(b, 36),
            netmask: bytes_at(b, 40),
        }
    }

    /// The service the request names (`ip_vs_copy_usvc_compat`): always IPv4; by firewall
    /// mark when one is given, address and port then ignored.
    pub fn key(&self) -> ServiceKey {
        ServiceKey::new(Af::Inet, self.protocol, &InetAddr::V4(self.addr).nf(), self.port, self.fwmark)
    }

    /// The whole service, as `ADD` and `EDIT` take it: `EINVAL` if the scheduler name has no
    /// NUL. setsockopt has no persistence engines.
    pub fn config(&self) -> Result<ServiceConfig, Errno> {
        Ok(ServiceConfig {
            key: self.key(),
            sched_name: SchedName::parse(&self.sched_name)?,
            pe_name: None,
            flags: self.flags,
            timeout: self.timeout,
            netmask: self.netmask,
        })
    }

    /// Encodes into [`SERVICE_USER_LEN`] bytes.
    pub fn encode(&self) -> [u8; SERVICE_USER_LEN] {
        let mut b = [0u8; SERVICE_USER_LEN];
        b[0..2].copy_from_slice(&self.protocol.to_ne_bytes());
        b[4..8].copy_from_slice(&self.addr);
        b[8..10].copy_from_slice(&self.port);
        b[12..16].copy_from_slice(&self.fwmark.to_ne_bytes());
        b[16..32].copy_from_slice(&self.sched_name);
        b[32..36].copy_from_slice(&self.flags.to_ne_bytes());
        b[36..40].copy_from_slice(&self.timeout.to_ne_bytes());
        b[40..44].copy_from_slice(&self.netmask);
        b
    }
}

/// What a service command of setsockopt (ADD, EDIT, DEL, ZERO, ADDDEST, EDITDEST, DELDEST)
/// asks for, once its service part has passed the checks `do_ip_vs_set_ctl` makes before
/// looking the service up.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SetRequest {
    /// ZERO naming no service: zero every counter.
    ZeroAll,
    /// Command `op` on the service `key`.
    Service {
        /// The service named.
        key: ServiceKey,
        /// What is asked of it.
        op: ServiceOp,
    },
}

impl SetRequest {
    /// Decodes command `cmd` with its service and real-server parts and checks the service
    /// part in upstream's order: ZERO naming nothing first, then (ADD and EDIT only) an
    /// unterminated scheduler name (`EINVAL`), then the protocol, for a firewall mark too
    /// (`EFAULT`). A command that is none of these is `EINVAL`.
    pub fn decode(cmd: i32, usvc: &ServiceUser, udest: &DestUser) -> Result<Self, Errno> {
        let key = usvc.key();
        if cmd == set::ZERO && key.is_unset() {
            return Ok(Self::ZeroAll);
        }
        let op = match cmd {
            set::ADD => ServiceOp::Add(usvc.config()?),
            set::EDIT => ServiceOp::Edit(usvc.config()?),
            set::DEL => ServiceOp::Del,
            set::ZERO => ServiceOp::Zero,
            set::ADDDEST => ServiceOp::AddDest(udest.config()),
            set::EDITDEST => ServiceOp::EditDest(udest.config()),
            set::DELDEST => ServiceOp::DelDest(udest.config()),
            _ => return Err(Errno::Inval),
        };
        key.check_sockopt_protocol()?;
        Ok(Self::Service { key, op })
    }
}

/// `struct ip_vs_dest_user`: a real server as given to ADDDEST, EDITDEST and DELDEST.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct DestUser {
    /// Real server IPv4 address, network byte order.
    pub addr: [u8; 4],
    /// Real server port, network byte order.
    pub port: [u8; 2],
    /// `IP_VS_CONN_F_*`: the forwarding method and options.
    pub conn_flags: u32,
    /// Weight; negative is rejected.
    pub weight: i32,
    /// Upper connection threshold, 0 for none.
    pub u_threshold: u32,
    /// Lower connection threshold.
    pub l_threshold: u32,
}

impl DestUser {
    /// Decodes the first [`DEST_USER_LEN`] bytes (missing bytes read as zero).
    pub fn decode(b: &[u8]) -> Self {
        Self {
            addr: bytes_at(b, 0),
            port: bytes_at(b, 4),
            conn_flags: u32_at(b, 8),
            weight: u32_at(b, 12) as i32,
            u_threshold: u32_at(b, 16),
            l_threshold: u32_at(b, 20),
        }
    }

    /// The real server (`ip_vs_copy_udest_compat`): IPv4, tunnelling (if asked for) by IP in
    /// IP, as setsockopt cannot say more.
    pub fn config(&self) -> DestConfig {
        DestConfig {
            addr: InetAddr::V4(self.addr),
            port: self.port,
            conn_flags: self.conn_flags,
            weight: self.weight,
            u_threshold: self.u_threshold,
            l_threshold: self.l_threshold,
            tun_type: crate::ctl_config::tun_type::IPIP,
            tun_port: [0; 2],
            tun_flags: 0,
        }
    }

    /// Encodes into [`DEST_USER_LEN`] bytes.
    pub fn encode(&self) -> [u8; DEST_USER_LEN] {
        let mut b = [0u8; DEST_USER_LEN];
        b[0..4].copy_from_slice(&self.addr);
        b[4..6].copy_from_slice(&self.port);
        b[8..12].copy_from_slice(&self.conn_flags.to_ne_bytes());
        b[12..16].copy_from_slice(&self.weight.to_ne_bytes());
        b[16..20].copy_from_slice(&self.u_threshold.to_ne_bytes());
        b[20..24].copy_from_slice(&self.l_threshold.to_ne_bytes());
        b
    }
}

/// `struct ip_vs_timeout_user`, in seconds.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TimeoutUser {
    /// TCP established.
    pub tcp: i32,
    /// TCP FIN_WAIT.
    pub tcp_fin: i32,
    /// UDP.
    pub udp: i32,
}

impl TimeoutUser {
    /// Decodes [`TIMEOUT_USER_LEN`] bytes.
    pub fn decode(b: &[u8]) -> Self {
        Self {
            tcp: u32_at(b, 0) as i32,
            tcp_fin: u32_at(b, 4) as i32,
            udp: u32_at(b, 8) as i32,
        }
    }

    /// The timeouts as both transports give them.
    pub fn config(&self) -> TimeoutConfig {
        TimeoutConfig { tcp: self.tcp, tcp_fin: self.tcp_fin, udp: self.udp }
    }

    /// The structure `IP_VS_SO_GET_TIMEOUT` returns for `t`.
    pub fn from_config(t: &TimeoutConfig) -> Self {
        Self { tcp: t.tcp, tcp_fin: t.tcp_fin, udp: t.udp }
    }

    /// Encodes into [`TIMEOUT_USER_LEN`] bytes.
    pub fn encode(&self) -> [u8; TIMEOUT_USER_LEN] {
        let mut b = [0u8; TIMEOUT_USER_LEN];
        b[0..4].copy_from_slice(&self.tcp.to_ne_bytes());
        b[4..8].copy_from_slice(&self.tcp_fin.to_ne_bytes());
        b[8..12].copy_from_slice(&self.udp.to_ne_bytes());
        b
    }
}

/// `struct ip_vs_daemon_user`: a sync daemon as given to STARTDAEMON and STOPDAEMON.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct DaemonUser {
    /// `IP_VS_STATE_*`, unchecked.
    pub state: i32,
    /// Multicast interface name field, possibly unterminated.
    pub mcast_ifn: [u8; IFNAME_MAXLEN],
    /// Sync id.
    pub syncid: i32,
}

impl DaemonUser {
    /// Decodes the first [`DAEMON_USER_LEN`] bytes (missing bytes read as zero).
    pub fn decode(b: &[u8]) -> Self {
        Self {
            state: u32_at(b, 0) as i32,
            mcast_ifn: bytes_at(b, 4),
            syncid: u32_at(b, 20) as i32,
        }
    }

    /// Encodes into [`DAEMON_USER_LEN`] bytes.
    pub fn encode(&self) -> [u8; DAEMON_USER_LEN] {
        let mut b = [0u8; DAEMON_USER_LEN];
        b[0..4].copy_from_slice(&self.state.to_ne_bytes());
        b[4..20].copy_from_slice(&self.mcast_ifn);
        b[20..24].copy_from_slice(&self.syncid.to_ne_bytes());
        b
    }

    /// The daemon `STARTDAEMON` asks for (`do_ip_vs_set_ctl`): `EINVAL` if the interface
    /// name is empty or has no NUL; everything netlink alone can set is left to its default.
    pub fn config(&self) -> Result<DaemonConfig, Errno> {
        Ok(DaemonConfig {
            state: self.state,
            mcast_ifn: IfName::parse(&self.mcast_ifn)?,
            syncid: self.syncid as u32,
            sync_maxlen: 0,
            mcast_group: None,
            mcast_port: 0,
            mcast_ttl: 0,
        })
    }
}

/// `struct ip_vs_stats_user`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct StatsUser {
    pub conns: u32,
    pub inpkts: u32,
    pub outpkts: u32,
    pub inbytes: u64,
    pub outbytes: u64,
    pub cps: u32,
    pub inpps: u32,
    pub outpps: u32,
    pub inbps: u32,
    pub outbps: u32,
}

impl StatsUser {
    fn encode_into(&self, b: &mut [u8]) {
        b[0..4].copy_from_slice(&self.conns.to_ne_bytes());
        b[4..8].copy_from_slice(&self.inpkts.to_ne_bytes());
        b[8..12].copy_from_slice(&self.outpkts.to_ne_bytes());
        b[16..24].copy_from_slice(&self.inbytes.to_ne_bytes());
        b[24..32].copy_from_slice(&self.outbytes.to_ne_bytes());
        b[32..36].copy_from_slice(&self.cps.to_ne_bytes());
        b[36..40].copy_from_slice(&self.inpps.to_ne_bytes());
        b[40..44].copy_from_slice(&self.outpps.to_ne_bytes());
        b[44..48].copy_from_slice(&self.inbps.to_ne_bytes());
        b[48..52].copy_from_slice(&self.outbps.to_ne_bytes());
    }
}

/// `struct ip_vs_service_entry`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ServiceEntry {
    pub svc: ServiceUser,
    pub num_dests: u32,
    pub stats: StatsUser,
}

impl ServiceEntry {
    /// Encodes into [`SERVICE_ENTRY_LEN`] bytes.
    pub fn encode(&self) -> [u8; SERVICE_ENTRY_LEN] {
        let mut b = [0u8; SERVICE_ENTRY_LEN];
        b[..SERVICE_USER_LEN].copy_from_slice(&self.svc.encode());
        b[44..48].copy_from_slice(&self.num_dests.to_ne_bytes());
        self.stats.encode_into(&mut b[48..]);
        b
    }
}

/// `struct ip_vs_dest_entry`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct DestEntry {
    pub addr: [u8; 4],
    pub port: [u8; 2],
    pub conn_flags: u32,
    pub weight: i32,
    pub u_threshold: u32,
    pub l_threshold: u32,
    pub activeconns: u32,
    pub inactconns: u32,
    pub persistconns: u32,
    pub stats: StatsUser,
}

impl DestEntry {
    /// Encodes into [`DEST_ENTRY_LEN`] bytes.
    pub fn encode(&self) -> [u8; DEST_ENTRY_LEN] {
        let mut b = [0u8; DEST_ENTRY_LEN];
        b[0..4].copy_from_slice(&self.addr);
        b[4..6].copy_from_slice(&self.port);
        b[8..12].copy_from_slice(&self.conn_flags.to_ne_bytes());
        b[12..16].copy_from_slice(&self.weight.to_ne_bytes());
        b[16..20].copy_from_slice(&self.u_threshold.to_ne_bytes());
        b[20..24].copy_from_slice(&self.l_threshold.to_ne_bytes());
        b[24..28].copy_from_slice(&self.activeconns.to_ne_bytes());
        b[28..32].copy_from_slice(&self.inactconns.to_ne_bytes());
        b[32..36].copy_from_slice(&self.persistconns.to_ne_bytes());
        self.stats.encode_into(&mut b[40..]);
        b
    }
}

/// The request header of `IP_VS_SO_GET_DESTS`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct GetDests {
    pub protocol: u16,
    pub addr: [u8; 4],
    pub port: [u8; 2],
    pub fwmark: u32,
    pub num_dests: u32,
}

impl GetDests {
    /// Decodes [`GET_DESTS_LEN`] bytes.
    pub fn decode(b: &[u8]) -> Self {
        Self {
            protocol: u16_at(b, 0),
            addr: bytes_at(b, 4),
            port: bytes_at(b, 8),
            fwmark: u32_at(b, 12),
            num_dests: u32_at(b, 16),
        }
    }

    /// The service the request names, as [`ServiceUser::key`].
    pub fn key(&self) -> ServiceKey {
        ServiceKey::new(Af::Inet, self.protocol, &InetAddr::V4(self.addr).nf(), self.port, self.fwmark)
    }

    /// The exact buffer length the request must come with.
    pub fn full_len(&self) -> usize {
        GET_DESTS_LEN + self.num_dests as usize * DEST_ENTRY_LEN
    }
}

/// The exact buffer length of an `IP_VS_SO_GET_SERVICES` request for `n` entries.
pub fn get_services_len(n: u32) -> usize {
    GET_SERVICES_LEN + n as usize * SERVICE_ENTRY_LEN
}

/// The persistence timeout of a service as upstream keeps it: `timeout * HZ` jiffies in an
/// `unsigned int`, so a timeout beyond `u32::MAX / HZ` seconds wraps (raw setsockopt takes any
/// `u32`; ipvsadm caps it at 31 days).
pub fn persist_timeout_jiffies(secs: u32, hz: u32) -> u32 {
    secs.wrapping_mul(hz)
}

/// Encodes `struct ip_vs_getinfo`.
pub fn encode_getinfo(version: u32, size: u32, num_services: u32) -> [u8; GETINFO_LEN] {
    let mut b = [0u8; GETINFO_LEN];
    b[0..4].copy_from_slice(&version.to_ne_bytes());
    b[4..8].copy_from_slice(&size.to_ne_bytes());
    b[8..12].copy_from_slice(&num_services.to_ne_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_at_the_extremes() {
        // 64-bit sizes: no count a user gives overflows them.
        assert_eq!(get_services_len(u32::MAX), 8 + u32::MAX as usize * 104);
        assert_eq!(get_services_len(0), 8);
        let mut b = [0u8; GET_DESTS_LEN];
        b[16..20].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(GetDests::decode(&b).full_len(), 24 + u32::MAX as usize * 96);
        for cmd in [i32::MIN, -1, 0, BASE_CTL - 1, set::MAX + 1, i32::MAX] {
            assert_eq!(set_arglen(cmd), 0);
            assert_eq!(get_arglen(cmd), 0);
        }
    }

    #[test]
    fn persist_timeout_wraps_as_upstream() {
        assert_eq!(persist_timeout_jiffies(300, 250), 75_000);
        assert_eq!(persist_timeout_jiffies(0, 250), 0);
        // 4294967295 * 250 mod 2^32 = 2^32 - 250: /proc/net/ip_vs shows -250.
        assert_eq!(persist_timeout_jiffies(u32::MAX, 250) as i32, -250);
        assert_eq!(persist_timeout_jiffies(u32::MAX, 250) / 250, 17_179_868);
        assert_eq!(persist_timeout_jiffies(1 << 31, 250), 0);
        assert_eq!(persist_timeout_jiffies(i32::MAX as u32, 1000) as i32, -1000);
    }

    #[test]
    fn service_roundtrip() {
        let s = ServiceUser {
            protocol: 6,
            addr: [10, 0, 0, 1],
            port: 80u16.to_be_bytes(),
            fwmark: 0,
            sched_name: *SchedName::new(b"rr").unwrap().field(),
            flags: 1,
            timeout: 300,
            netmask: [255, 255, 255, 255],
        };
        assert_eq!(ServiceUser::decode(&s.encode()), s);
    }

    #[test]
    fn dest_roundtrip() {
        let d = DestUser {
            addr: [10, 0, 0, 2],
            port: 8080u16.to_be_bytes(),
            conn_flags: conn_flags::MASQ,
            weight: -3,
            u_threshold: 7,
            l_threshold: 2,
        };
        assert_eq!(DestUser::decode(&d.encode()), d);
    }

    #[test]
    fn sched_name_needs_nul() {
        let mut s = ServiceUser { sched_name: [b'x'; 16], ..Default::default() };
        assert_eq!(s.config().err(), Some(Errno::Inval));
        s.sched_name = [0; 16];
        s.sched_name[..3].copy_from_slice(b"wlc");
        assert_eq!(s.config().unwrap().sched_name.as_bytes(), b"wlc");
        s.sched_name[15] = b'x';
        assert_eq!(s.config().unwrap().sched_name.as_bytes(), b"wlc");
        s.sched_name = [b'x'; 16];
        s.sched_name[15] = 0;
        assert_eq!(s.config().unwrap().sched_name.as_bytes(), &[b'x'; 15]);
        // An unterminated name does not stop the key from being read (DEL, ZERO, *DEST).
        assert_eq!(ServiceUser { sched_name: [1; 16], fwmark: 3, ..Default::default() }.key().fwmark(), 3);
    }

    #[test]
    fn set_requests_in_upstream_order() {
        let d = DestUser { weight: -1, ..Default::default() };
        let dec = |cmd, s: &ServiceUser| SetRequest::decode(cmd, s, &d);
        let unterminated = ServiceUser { protocol: 99, sched_name: [b'x'; 16], ..Default::default() };
        // ZERO naming nothing wins over a bad protocol and name.
        assert_eq!(dec(set::ZERO, &unterminated), Ok(SetRequest::ZeroAll));
        for cmd in [set::ADD, set::EDIT, set::DEL, set::ADDDEST, set::EDITDEST, set::DELDEST] {
            assert_ne!(dec(cmd, &unterminated), Ok(SetRequest::ZeroAll));
        }
        // The name before the protocol, for ADD and EDIT only.
        assert_eq!(dec(set::ADD, &unterminated), Err(Errno::Inval));
        assert_eq!(dec(set::EDIT, &unterminated), Err(Errno::Inval));
        for cmd in [set::DEL, set::ADDDEST, set::EDITDEST, set::DELDEST] {
            assert_eq!(dec(cmd, &unterminated), Err(Errno::Fault));
        }
        let fwm = ServiceUser { protocol: 0, fwmark: u32::MAX, ..Default::default() };
        assert_eq!(dec(set::ZERO, &fwm), Err(Errno::Fault));
        assert_eq!(dec(set::DEL, &fwm), Err(Errno::Fault));
        // Not a service command.
        for cmd in [set::FLUSH, set::TIMEOUT, set::STARTDAEMON, set::NONE, -1, i32::MIN, i32::MAX] {
            assert_eq!(dec(cmd, &fwm), Err(Errno::Inval));
        }
        // The real server is decoded, not checked (a negative weight passes here).
        let ok = ServiceUser { protocol: 6, sched_name: [b'x'; 16], port: [0, 80], ..Default::default() };
        let key = ok.key();
        for (cmd, op) in [
            (set::DEL, ServiceOp::Del),
            (set::ZERO, ServiceOp::Zero),
            (set::ADDDEST, ServiceOp::AddDest(d.config())),
            (set::EDITDEST, ServiceOp::EditDest(d.config())),
            (set::DELDEST, ServiceOp::DelDest(d.config())),
        ] {
            assert_eq!(dec(cmd, &ok), Ok(SetRequest::Service { key, op }));
            assert!(!op.adds_service());
        }
        let mut add = ok;
        add.sched_name = *SchedName::new(b"wrr").unwrap().field();
        match dec(set::ADD, &add) {
            Ok(SetRequest::Service { key, op: op @ ServiceOp::Add(c) }) => {
                assert_eq!(key, c.key);
                assert_eq!(c.sched_name.as_bytes(), b"wrr");
                assert!(op.adds_service());
            }
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn service_decodes_to_config() {
        let mut b = [0u8; SERVICE_USER_LEN];
        b[0..2].copy_from_slice(&17u16.to_ne_bytes());
        b[4..8].copy_from_slice(&[192, 0, 2, 1]);
        b[8..10].copy_from_slice(&53u16.to_be_bytes());
        b[16..18].copy_from_slice(b"sh");
        b[32..36].copy_from_slice(&u32::MAX.to_ne_bytes());
        b[36..40].copy_from_slice(&u32::MAX.to_ne_bytes());
        b[40..44].copy_from_slice(&[255, 255, 255, 0]);
        let c = ServiceUser::decode(&b).config().unwrap();
        assert_eq!(
            c.key,
            ServiceKey::Addr { protocol: 17, addr: InetAddr::V4([192, 0, 2, 1]), port: 53u16.to_be_bytes() }
        );
        assert_eq!(c.key.af(), Af::Inet);
        assert_eq!(c.sched_name.as_bytes(), b"sh");
        assert_eq!(c.pe_name, None);
        assert_eq!((c.flags, c.timeout), (u32::MAX, u32::MAX));
        assert_eq!(c.netmask, [255, 255, 255, 0]);
        assert!(c.check().is_ok());
        // A mark wins over the address and keeps the protocol, checked or not.
        b[12..16].copy_from_slice(&u32::MAX.to_ne_bytes());
        b[0..2].copy_from_slice(&u16::MAX.to_ne_bytes());
        let k = ServiceUser::decode(&b).key();
        assert_eq!(k, ServiceKey::Fwmark { af: Af::Inet, protocol: u16::MAX, mark: u32::MAX });
        assert_eq!(k.check_sockopt_protocol(), Err(Errno::Fault));
        // ZERO with nothing named.
        assert!(ServiceUser { protocol: 6, ..Default::default() }.key().is_unset());
        assert!(!ServiceUser { port: [0, 1], ..Default::default() }.key().is_unset());
        assert!(!ServiceUser { addr: [0, 0, 0, 1], ..Default::default() }.key().is_unset());
    }

    #[test]
    fn dest_decodes_to_config() {
        for (w, u, l) in [(0, 0, 0), (-1, 0, 0), (i32::MIN, u32::MAX, 0), (i32::MAX, 0, u32::MAX)] {
            let d = DestUser { addr: [10, 0, 0, 2], port: [0, 80], conn_flags: u32::MAX, weight: w, u_threshold: u, l_threshold: l };
            let c = DestUser::decode(&d.encode()).config();
            assert_eq!(c.addr, InetAddr::V4([10, 0, 0, 2]));
            assert_eq!((c.weight, c.u_threshold, c.l_threshold, c.conn_flags), (w, u, l, u32::MAX));
            assert_eq!((c.tun_type, c.tun_port, c.tun_flags), (0, [0; 2], 0));
        }
        let c = DestUser::decode(&[]).config();
        assert!(c.check().is_ok());
        let bad = |w: i32, u: u32, l: u32| DestUser { weight: w, u_threshold: u, l_threshold: l, ..Default::default() }.config().check().err();
        assert_eq!(bad(-1, 0, 0), Some(Errno::Range));
        assert_eq!(bad(0, 1, 2), Some(Errno::Range));
        assert_eq!(bad(0, u32::MAX, 0), Some(Errno::Inval));
        assert_eq!(bad(0, 1 << 31, 1 << 31), Some(Errno::Inval));
        assert_eq!(bad(i32::MAX, i32::MAX as u32, 0), None);
    }

    #[test]
    fn timeouts_decode_and_encode() {
        let t = TimeoutUser { tcp: -1, tcp_fin: i32::MIN, udp: i32::MAX };
        let c = TimeoutUser::decode(&t.encode()).config();
        assert_eq!((c.tcp, c.tcp_fin, c.udp), (-1, i32::MIN, i32::MAX));
        assert_eq!(TimeoutUser::from_config(&c), t);
        assert_eq!(c.check(250).err(), Some(Errno::Inval));
        assert!(TimeoutUser::decode(&[0; 12]).config().check(250).is_ok());
    }

    #[test]
    fn daemon_decodes_to_config() {
        let mut d = DaemonUser { state: 1, mcast_ifn: [0; 16], syncid: -1 };
        assert_eq!(d.config().err(), Some(Errno::Inval));
        d.mcast_ifn = [b'e'; 16];
        assert_eq!(d.config().err(), Some(Errno::Inval));
        d.mcast_ifn[15] = 0;
        let c = DaemonUser::decode(&d.encode()).config().unwrap();
        assert_eq!(c.mcast_ifn.as_bytes(), &[b'e'; 15]);
        assert_eq!((c.state, c.syncid), (1, u32::MAX));
        assert_eq!(DaemonUser::decode(&d.encode()), d);
        let d = DaemonUser::decode(&[0xff; DAEMON_USER_LEN]);
        assert_eq!(d.state, -1);
        assert_eq!(d.config().err(), Some(Errno::Inval));
    }

    #[test]
    fn arg_lengths_match_upstream() {
        assert_eq!(set_arglen(set::ADD), 44);
        assert_eq!(set_arglen(set::ADDDEST), 68);
        assert_eq!(set_arglen(set::FLUSH), 0);
        assert_eq!(set_arglen(set::TIMEOUT), 12);
        assert_eq!(get_arglen(get::VERSION), 64);
        assert_eq!(get_arglen(get::DAEMON), 48);
        for cmd in BASE_CTL - 1..=BASE_CTL + 20 {
            assert!(get_arglen(cmd) <= MAX_GET_ARGLEN);
            assert!(set_arglen(cmd) <= MAX_SET_ARGLEN);
        }
        assert_eq!(get_services_len(2), 8 + 208);
        assert_eq!(GetDests { num_dests: 3, ..Default::default() }.full_len(), 24 + 288);
    }

    #[test]
    fn short_input_reads_zero() {
        let s = ServiceUser::decode(&[6, 0]);
        assert_eq!(s.protocol, 6);
        assert_eq!(s.fwmark, 0);
    }

    #[test]
    fn entries_have_upstream_sizes() {
        assert_eq!(ServiceEntry::default().encode().len(), 104);
        assert_eq!(DestEntry::default().encode().len(), 96);
        let e = DestEntry { weight: 5, activeconns: 1, ..Default::default() };
        let b = e.encode();
        assert_eq!(i32::from_ne_bytes([b[12], b[13], b[14], b[15]]), 5);
        assert_eq!(u32::from_ne_bytes([b[24], b[25], b[26], b[27]]), 1);
    }
}
