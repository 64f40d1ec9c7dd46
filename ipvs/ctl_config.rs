// SPDX-License-Identifier: GPL-2.0

//! The control plane's configuration: one type per object a request configures (virtual
//! service, real server, protocol timeouts, sync daemon), independent of the transport that
//! carried it, and every check upstream makes of a request's contents.
//!
//! Upstream decodes both of its transports into the same kernel-side structures before acting
//! (`ip_vs_copy_usvc_compat` and `ip_vs_genl_parse_service` both fill an
//! `ip_vs_service_user_kern`); this is that layer. The setsockopt decoder (`uapi.rs`) and,
//! later, the generic netlink one fill these types; `service.rs` and the protocol timeouts
//! take only these types, and the real-server and service operations take them only once
//! checked ([`Checked`]). The checks keep upstream's errno for each kind of bad input; where
//! upstream's order of checks interleaves them with lookups, the caller runs each check at the
//! point upstream does (each function says where).
//!
//! Named after `ip_vs_ctl.c`, whose requests these are, and after upstream's name for the
//! sync daemon's part (`ipvs_sync_daemon_cfg`).
//!
//! Kernel independent (`no_std`, host-tested).
//!
//! C: `srctree/include/net/ip_vs.h` (`ip_vs_service_user_kern`, `ip_vs_dest_user_kern`,
//! `ipvs_sync_daemon_cfg`), `srctree/net/netfilter/ipvs/ip_vs_ctl.c` (`do_ip_vs_set_ctl`,
//! `ip_vs_add_service`, `ip_vs_edit_service`, `ip_vs_add_dest`, `ip_vs_edit_dest`,
//! `ip_vs_set_timeout`, `ip_vs_genl_set_cmd`), `srctree/net/netfilter/ipvs/ip_vs_sync.c`
//! (`start_sync_thread`)

#![allow(dead_code, unreachable_pub)]

use crate::uapi::{conn_flags, IFNAME_MAXLEN, SCHEDNAME_MAXLEN};

/// Why a request was refused: the errnos the checks here give, as upstream gives them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Errno {
    /// `EINVAL`.
    Inval,
    /// `ERANGE`.
    Range,
    /// `EFAULT`: upstream's answer to a setsockopt request for an unknown protocol.
    Fault,
    /// `EAFNOSUPPORT`.
    AfNoSupport,
}

impl Errno {
    /// The (negative) errno.
    pub const fn to_errno(self) -> i32 {
        match self {
            Self::Inval => -22,
            Self::Range => -34,
            Self::Fault => -14,
            Self::AfNoSupport => -97,
        }
    }
}

/// `AF_INET`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`.
pub const AF_INET6: u16 = 10;

/// `IPPROTO_TCP`.
pub const IPPROTO_TCP: u16 = 6;
/// `IPPROTO_UDP`.
pub const IPPROTO_UDP: u16 = 17;
/// `IPPROTO_SCTP`.
pub const IPPROTO_SCTP: u16 = 132;

/// Whether the kernel has IPv6 enabled (`ipv6_mod_enabled`, false when booted with
/// `ipv6.disable=1`): set once when the module loads.
pub static IPV6_ENABLED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// An address family IPVS knows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Af {
    /// IPv4.
    Inet,
    /// IPv6.
    Inet6,
}

impl Af {
    /// The family of an `AF_*` number, `None` for one IPVS does not know.
    pub const fn from_raw(af: u16) -> Option<Self> {
        match af {
            AF_INET => Some(Self::Inet),
            AF_INET6 => Some(Self::Inet6),
            _ => None,
        }
    }

    /// The `AF_*` number.
    pub const fn raw(self) -> u16 {
        match self {
            Self::Inet => AF_INET,
            Self::Inet6 => AF_INET6,
        }
    }

    /// The family of `af` if services and real servers of it can be configured
    /// (`ip_vs_is_af_valid`), `EAFNOSUPPORT` otherwise: IPv6 only while the kernel has it
    /// enabled (see [`IPV6_ENABLED`]).
    pub fn supported(af: u16) -> Result<Self, Errno> {
        Self::supported_with(af, IPV6_ENABLED.load(core::sync::atomic::Ordering::Relaxed))
    }

    /// [`Self::supported`] with IPv6 enabled or not.
    pub const fn supported_with(af: u16, ipv6: bool) -> Result<Self, Errno> {
        match Self::from_raw(af) {
            Some(Self::Inet) => Ok(Self::Inet),
            Some(Self::Inet6) if ipv6 => Ok(Self::Inet6),
            _ => Err(Errno::AfNoSupport),
        }
    }
}

/// An address with its family (upstream's `union nf_inet_addr` and the family beside it).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InetAddr {
    /// An IPv4 address, network byte order.
    V4([u8; 4]),
    /// An IPv6 address, network byte order.
    V6([u8; 16]),
}

impl InetAddr {
    /// The address of family `af` held in `nf`, the 16-byte form of both transports (an IPv4
    /// address is its first four bytes; the rest is ignored, as upstream ignores it).
    pub fn from_nf(af: Af, nf: &[u8; 16]) -> Self {
        match af {
            Af::Inet => Self::V4([nf[0], nf[1], nf[2], nf[3]]),
            Af::Inet6 => Self::V6(*nf),
        }
    }

    /// Its family.
    pub const fn af(&self) -> Af {
        match self {
            Self::V4(_) => Af::Inet,
            Self::V6(_) => Af::Inet6,
        }
    }

    /// The 16-byte form, an IPv4 address followed by zeros.
    pub fn nf(&self) -> [u8; 16] {
        match self {
            Self::V4(a) => {
                let mut out = [0u8; 16];
                out[..4].copy_from_slice(a);
                out
            }
            Self::V6(a) => *a,
        }
    }

    /// Whether it is the unspecified address (all zeros).
    pub fn is_any(&self) -> bool {
        self.nf() == [0; 16]
    }
}

/// What names a virtual service: <protocol, address, port>, or a firewall mark.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ServiceKey {
    /// A service by <protocol, address, port>; the address carries the family.
    Addr {
        /// IP protocol number (any: see [`ServiceKey::check_sockopt_protocol`]).
        protocol: u16,
        /// Virtual address.
        addr: InetAddr,
        /// Virtual port, network byte order.
        port: [u8; 2],
    },
    /// A service by firewall mark, never 0.
    Fwmark {
        /// Address family of the packets it takes.
        af: Af,
        /// IP protocol number, kept as given (upstream checks it and reports it).
        protocol: u16,
        /// The mark.
        mark: u32,
    },
}

impl ServiceKey {
    /// The key both transports give: a firewall mark when `fwmark` is not 0 (address and port
    /// are then ignored), <protocol, address, port> otherwise.
    pub fn new(af: Af, protocol: u16, addr: &[u8; 16], port: [u8; 2], fwmark: u32) -> Self {
        if fwmark != 0 {
            Self::Fwmark {
                af,
                protocol,
                mark: fwmark,
            }
        } else {
            Self::Addr {
                protocol,
                addr: InetAddr::from_nf(af, addr),
                port,
            }
        }
    }

    /// The address family.
    pub const fn af(&self) -> Af {
        match self {
            Self::Addr { addr, .. } => addr.af(),
            Self::Fwmark { af, .. } => *af,
        }
    }

    /// The IP protocol number.
    pub const fn protocol(&self) -> u16 {
        match self {
            Self::Addr { protocol, .. } | Self::Fwmark { protocol, .. } => *protocol,
        }
    }

    /// The firewall mark, 0 for a service by address.
    pub const fn fwmark(&self) -> u32 {
        match self {
            Self::Addr { .. } => 0,
            Self::Fwmark { mark, .. } => *mark,
        }
    }

    /// The virtual address in 16-byte form, zeros for a firewall-mark service.
    pub fn addr_nf(&self) -> [u8; 16] {
        match self {
            Self::Addr { addr, .. } => addr.nf(),
            Self::Fwmark { .. } => [0; 16],
        }
    }

    /// The virtual port, 0 for a firewall-mark service.
    pub const fn port(&self) -> [u8; 2] {
        match self {
            Self::Addr { port, .. } => *port,
            Self::Fwmark { .. } => [0; 2],
        }
    }

    /// Whether no service is named (no mark, address or port): `IP_VS_SO_SET_ZERO` then
    /// zeroes every counter.
    pub fn is_unset(&self) -> bool {
        match self {
            Self::Addr { addr, port, .. } => addr.is_any() && *port == [0; 2],
            Self::Fwmark { .. } => false,
        }
    }

    /// `do_ip_vs_set_ctl`'s protocol check, for a firewall mark too: TCP, UDP or SCTP, else
    /// `EFAULT`. Upstream applies it to setsockopt requests only (after the scheduler name
    /// check, before the lookup); over netlink it takes any protocol.
    pub const fn check_sockopt_protocol(&self) -> Result<(), Errno> {
        match self.protocol() {
            IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP => Ok(()),
            _ => Err(Errno::Fault),
        }
    }
}

/// A NUL-terminated name of at most `N - 1` bytes in an `N`-byte field.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct NameBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> NameBuf<N> {
    /// The name in a fixed-size field; `None` if the field has no NUL.
    fn parse(field: &[u8; N]) -> Option<Self> {
        let len = field.iter().position(|&c| c == 0)?;
        let mut buf = [0u8; N];
        buf.get_mut(..len)?.copy_from_slice(field.get(..len)?);
        Some(Self { buf, len })
    }

    /// The name `name`: `None` if it does not fit with its NUL or holds a NUL.
    fn new(name: &[u8]) -> Option<Self> {
        if name.len() >= N || name.contains(&0) {
            return None;
        }
        let mut buf = [0u8; N];
        buf.get_mut(..name.len())?.copy_from_slice(name);
        Some(Self {
            buf,
            len: name.len(),
        })
    }

    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    fn as_bytes_with_nul(&self) -> &[u8] {
        self.buf.get(..=self.len).unwrap_or(&[])
    }
}

/// A scheduler's name: up to 15 bytes (`IP_VS_SCHEDNAME_MAXLEN` with the NUL).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SchedName(NameBuf<SCHEDNAME_MAXLEN>);

impl SchedName {
    /// The name in a request's fixed-size field: `EINVAL` if it has no terminating NUL, as
    /// `do_ip_vs_set_ctl` answers `ADD` and `EDIT` (netlink's attribute policy the same).
    pub fn parse(field: &[u8; SCHEDNAME_MAXLEN]) -> Result<Self, Errno> {
        NameBuf::parse(field).map(Self).ok_or(Errno::Inval)
    }

    /// `none`: a service without scheduler.
    pub const NONE: Self = {
        let mut buf = [0u8; SCHEDNAME_MAXLEN];
        buf[0] = b'n';
        buf[1] = b'o';
        buf[2] = b'n';
        buf[3] = b'e';
        Self(NameBuf { buf, len: 4 })
    };

    /// Whether this is [`Self::NONE`].
    pub fn is_none(&self) -> bool {
        *self == Self::NONE
    }

    /// Builds a name from a string of at most 15 bytes.
    pub fn new(name: &[u8]) -> Option<Self> {
        NameBuf::new(name).map(Self)
    }

    /// The name without the NUL.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The name as a NUL-padded field.
    pub fn field(&self) -> &[u8; SCHEDNAME_MAXLEN] {
        &self.0.buf
    }
}

/// `IP_VS_PENAME_MAXLEN`.
pub const PENAME_MAXLEN: usize = 16;

/// A persistence engine's name: up to 16 bytes (the netlink policy of the attribute lets
/// `IP_VS_PENAME_MAXLEN` bytes through besides the NUL, and such a name then names no engine:
/// `ENOENT`, as upstream's lookup answers), never empty (an empty name is no engine, as
/// upstream reads it).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PeName(NameBuf<{ PENAME_MAXLEN + 1 }>);

impl PeName {
    /// The engine `name` names: `None` if it is empty (no engine); `EINVAL` if it is longer
    /// than `IP_VS_PENAME_MAXLEN`.
    pub fn new(name: &[u8]) -> Result<Option<Self>, Errno> {
        if name.is_empty() {
            return Ok(None);
        }
        NameBuf::new(name)
            .map(|n| Some(Self(n)))
            .ok_or(Errno::Inval)
    }

    /// The name without the NUL.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// A virtual service's configuration (upstream's `ip_vs_service_user_kern`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ServiceConfig {
    /// What names it.
    pub key: ServiceKey,
    /// The scheduler, or [`SchedName::NONE`].
    pub sched_name: SchedName,
    /// The persistence engine, if any.
    pub pe_name: Option<PeName>,
    /// `IP_VS_SVC_F_*` (netlink's flags and mask already applied, see [`merge_svc_flags`]).
    pub flags: u32,
    /// Persistence timeout in seconds, any `u32` (upstream keeps `timeout * HZ` wrapped).
    pub timeout: u32,
    /// Persistence granularity as the 4 bytes both transports carry: an IPv4 netmask in
    /// network byte order, or for IPv6 a prefix length in host byte order.
    pub netmask: [u8; 4],
}

impl ServiceConfig {
    /// Checks what can be checked before the service is looked up: the family
    /// (`EAFNOSUPPORT`, as `ip_vs_genl_parse_service`; a setsockopt request is always IPv4).
    /// The rest of upstream's checks of a service depend on the state (existing service,
    /// scheduler and persistence engine modules) and run in the operations, with
    /// [`ServiceConfig::check_prefix`] after the scheduler lookup.
    pub fn check(self) -> Result<Checked<Self>, Errno> {
        Af::supported(self.key.af().raw())?;
        Ok(Checked(self))
    }

    /// `ip_vs_add_service`'s and `ip_vs_edit_service`'s prefix check, made after the
    /// scheduler and persistence engine are found: an IPv6 service needs a prefix length of
    /// 1 to 128 (`EINVAL`); an IPv4 netmask is taken as it is.
    pub fn check_prefix(&self) -> Result<(), Errno> {
        match self.key.af() {
            Af::Inet => Ok(()),
            Af::Inet6 => match u32::from_ne_bytes(self.netmask) {
                1..=128 => Ok(()),
                _ => Err(Errno::Inval),
            },
        }
    }
}

/// The service flags of a netlink request: `flags` where `mask` has bits, `old` (the
/// existing service's flags, or 0) elsewhere, as `ip_vs_genl_parse_service` merges them.
pub const fn merge_svc_flags(old: u32, flags: u32, mask: u32) -> u32 {
    (old & !mask) | (flags & mask)
}

/// Tunnel types (`IP_VS_CONN_F_TUNNEL_TYPE_*`).
pub mod tun_type {
    /// IP in IP, the only one setsockopt can ask for.
    pub const IPIP: u8 = 0;
    /// Generic UDP encapsulation: needs a tunnel port.
    pub const GUE: u8 = 1;
    /// GRE.
    pub const GRE: u8 = 2;
}

/// Tunnel flags (`IP_VS_TUNNEL_ENCAP_FLAG_*`).
pub mod tun_flags {
    /// The outer UDP (GUE) or GRE header carries a checksum.
    pub const CSUM: u16 = 1 << 0;
    /// Remote checksum offload (GUE): the receiver completes the inner checksum.
    pub const REMCSUM: u16 = 1 << 1;
}

/// A real server's configuration (upstream's `ip_vs_dest_user_kern`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DestConfig {
    /// Its address, with its own family (which may differ from the service's).
    pub addr: InetAddr,
    /// Its port, network byte order.
    pub port: [u8; 2],
    /// `IP_VS_CONN_F_*`: forwarding method and options (only the `DEST_MASK` bits are kept).
    pub conn_flags: u32,
    /// Weight, refused when negative.
    pub weight: i32,
    /// Upper connection threshold, 0 for none.
    pub u_threshold: u32,
    /// Lower connection threshold.
    pub l_threshold: u32,
    /// Tunnel type, [`tun_type`].
    pub tun_type: u8,
    /// Tunnel port (GUE), network byte order.
    pub tun_port: [u8; 2],
    /// Tunnel flags (`IP_VS_TUNNEL_ENCAP_FLAG_*`).
    pub tun_flags: u16,
}

impl DestConfig {
    /// The checks of `ip_vs_add_dest` and `ip_vs_edit_dest`, in their order, made once the
    /// service is found and before the server is looked up: the family (`EAFNOSUPPORT`,
    /// checked earlier upstream, see [`dest_af`]), a negative weight (`ERANGE`), a lower
    /// threshold above the upper (`ERANGE`), an upper threshold beyond `INT_MAX` (`EINVAL`),
    /// a GUE tunnel without port (`EINVAL`). Removing a server checks none of them.
    pub fn check(self) -> Result<Checked<Self>, Errno> {
        Af::supported(self.addr.af().raw())?;
        if self.weight < 0 {
            return Err(Errno::Range);
        }
        if self.l_threshold > self.u_threshold {
            return Err(Errno::Range);
        }
        if self.u_threshold > i32::MAX as u32 {
            return Err(Errno::Inval);
        }
        if self.tun_type == tun_type::GUE && self.tun_port == [0; 2] {
            return Err(Errno::Inval);
        }
        Ok(Checked(self))
    }

    /// The flags the server gives its connections (`__ip_vs_update_dest`): the request's
    /// forwarding method and options, `INACTIVE`, and `NOOUTPUT` unless it masquerades.
    pub const fn dest_conn_flags(&self) -> u32 {
        let mut f = (self.conn_flags & conn_flags::DEST_MASK) | conn_flags::INACTIVE;
        if f & conn_flags::FWD_MASK != conn_flags::MASQ {
            f |= conn_flags::NOOUTPUT;
        }
        f
    }
}

/// The family of a real server given over netlink, checked against its service's as
/// `ip_vs_genl_set_cmd` does before the operation: `raw` 0 means the service's family; an
/// unsupported family is `EAFNOSUPPORT`; a server of the other family than its service (not
/// for removal) needs the sync daemon stopped and tunnelling (`conn_flags` as netlink gives
/// them, the forwarding method alone), else `EINVAL`.
pub fn dest_af(
    svc_af: Af,
    raw: u16,
    conn_flags: u32,
    del: bool,
    sync_running: bool,
) -> Result<Af, Errno> {
    let af = if raw == 0 {
        svc_af
    } else {
        Af::supported(raw)?
    };
    if af != svc_af && !del && (sync_running || conn_flags != conn_flags::TUNNEL) {
        return Err(Errno::Inval);
    }
    Ok(af)
}

/// The per-protocol connection timeouts, in seconds; 0 keeps a value (upstream's
/// `ip_vs_timeout_user`, which both transports fill).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TimeoutConfig {
    /// TCP established.
    pub tcp: i32,
    /// TCP FIN_WAIT.
    pub tcp_fin: i32,
    /// UDP.
    pub udp: i32,
}

impl TimeoutConfig {
    /// `ip_vs_set_timeout`'s check: each value from 0 to `INT_MAX / HZ`, else `EINVAL`, so
    /// that `value * HZ` fits an `int`.
    pub fn check(self, hz: u32) -> Result<Checked<Self>, Errno> {
        let max = i32::try_from(hz)
            .ok()
            .and_then(|hz| i32::MAX.checked_div(hz))
            .unwrap_or(0);
        if [self.tcp, self.tcp_fin, self.udp]
            .iter()
            .any(|&t| t < 0 || t > max)
        {
            return Err(Errno::Inval);
        }
        Ok(Checked(self))
    }
}

/// A sync daemon's role (`IP_VS_STATE_*`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DaemonState {
    /// Sends the connection table.
    Master,
    /// Receives it.
    Backup,
}

impl DaemonState {
    /// The role `state` names, `EINVAL` for another value (`start_sync_thread`,
    /// `stop_sync_thread`).
    pub const fn from_raw(state: i32) -> Result<Self, Errno> {
        match state {
            1 => Ok(Self::Master),
            2 => Ok(Self::Backup),
            _ => Err(Errno::Inval),
        }
    }
}

/// A network interface name: 1 to 15 bytes (`IFNAMSIZ` with the NUL).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IfName(NameBuf<IFNAME_MAXLEN>);

impl IfName {
    /// The name in a request's fixed-size field: `EINVAL` if it is empty or has no NUL, as
    /// setsockopt's `STARTDAEMON` answers (netlink instead cuts it to 15 bytes,
    /// [`IfName::truncate`]).
    pub fn parse(field: &[u8; IFNAME_MAXLEN]) -> Result<Self, Errno> {
        match NameBuf::parse(field) {
            Some(n) if n.len > 0 => Ok(Self(n)),
            _ => Err(Errno::Inval),
        }
    }

    /// The first 15 bytes of `name` up to its first NUL, as `strscpy` leaves them.
    pub fn truncate(name: &[u8]) -> Self {
        let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
        let end = end.min(IFNAME_MAXLEN - 1);
        let mut buf = [0u8; IFNAME_MAXLEN];
        for (d, s) in buf.iter_mut().zip(name.iter().take(end)) {
            *d = *s;
        }
        Self(NameBuf { buf, len: end })
    }

    /// The name without the NUL.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The name with its NUL.
    pub fn as_bytes_with_nul(&self) -> &[u8] {
        self.0.as_bytes_with_nul()
    }
}

/// A sync daemon's configuration (upstream's `ipvs_sync_daemon_cfg` and the state beside
/// it); 0 in the optional numbers means upstream's default.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DaemonConfig {
    /// `IP_VS_STATE_*` as given, checked by [`DaemonConfig::check_start`].
    pub state: i32,
    /// The multicast interface.
    pub mcast_ifn: IfName,
    /// Sync id (setsockopt and netlink both carry 32 bits; messages carry 8).
    pub syncid: u32,
    /// Largest sync message.
    pub sync_maxlen: u16,
    /// Multicast group, or the default one.
    pub mcast_group: Option<InetAddr>,
    /// Multicast port, host byte order.
    pub mcast_port: u16,
    /// Multicast TTL.
    pub mcast_ttl: u8,
}

impl DaemonConfig {
    /// `ip_vs_genl_new_daemon`'s check of a multicast group given over netlink: it must be
    /// multicast (IPv4 224.0.0.0/4, IPv6 ff00::/8), else `EINVAL`.
    pub fn check_group(&self) -> Result<(), Errno> {
        match self.mcast_group {
            None => Ok(()),
            Some(InetAddr::V4(a)) if a[0] & 0xf0 == 0xe0 => Ok(()),
            Some(InetAddr::V6(a)) if a[0] == 0xff => Ok(()),
            Some(_) => Err(Errno::Inval),
        }
    }

    /// `start_sync_thread`'s checks, in its order: the interface must exist (`has_device`,
    /// else `ENODEV`, given by the caller) before the state is checked (`EINVAL`).
    pub fn check_start<E: From<Errno>>(
        &self,
        has_device: impl FnOnce(&IfName) -> Result<(), E>,
    ) -> Result<DaemonState, E> {
        has_device(&self.mcast_ifn)?;
        Ok(DaemonState::from_raw(self.state)?)
    }
}

/// What a command asks of a virtual service once the service is named (both transports'
/// `ADD`/`NEW_SERVICE`, `EDIT`/`SET_SERVICE`, ... with their decoded arguments). The
/// configurations are not checked yet: they are, in upstream's order, when the command runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ServiceOp {
    /// Add the service (`ip_vs_add_service`).
    Add(ServiceConfig),
    /// Change its settings (`ip_vs_edit_service`).
    Edit(ServiceConfig),
    /// Remove it (`ip_vs_del_service`).
    Del,
    /// Zero its counters and its servers' (`ip_vs_zero_service`).
    Zero,
    /// Add a real server (`ip_vs_add_dest`).
    AddDest(DestConfig),
    /// Change a real server (`ip_vs_edit_dest`).
    EditDest(DestConfig),
    /// Remove a real server (`ip_vs_del_dest`).
    DelDest(DestConfig),
}

impl ServiceOp {
    /// Whether the command adds the service (the only one for a service that does not exist).
    pub const fn adds_service(&self) -> bool {
        matches!(self, Self::Add(_))
    }
}

/// A configuration that passed its checks; only this file makes one, so an operation that
/// takes one cannot be given an unchecked request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Checked<T>(T);

impl<T> core::ops::Deref for Checked<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(weight: i32, u: u32, l: u32) -> DestConfig {
        DestConfig {
            addr: InetAddr::V4([10, 0, 0, 2]),
            port: 80u16.to_be_bytes(),
            conn_flags: conn_flags::MASQ,
            weight,
            u_threshold: u,
            l_threshold: l,
            tun_type: tun_type::IPIP,
            tun_port: [0; 2],
            tun_flags: 0,
        }
    }

    fn service(af: Af, netmask: u32) -> ServiceConfig {
        ServiceConfig {
            key: ServiceKey::new(af, IPPROTO_TCP, &[1; 16], 80u16.to_be_bytes(), 0),
            sched_name: SchedName::NONE,
            pe_name: None,
            flags: 0,
            timeout: 0,
            netmask: netmask.to_ne_bytes(),
        }
    }

    #[test]
    fn families() {
        for ipv6 in [false, true] {
            assert_eq!(Af::supported_with(AF_INET, ipv6), Ok(Af::Inet));
            for af in [0, 1, 3, u16::MAX] {
                assert_eq!(Af::supported_with(af, ipv6), Err(Errno::AfNoSupport));
            }
        }
        assert_eq!(Af::supported_with(AF_INET6, false), Err(Errno::AfNoSupport));
        assert_eq!(Af::supported_with(AF_INET6, true), Ok(Af::Inet6));
        assert_eq!(Af::from_raw(AF_INET6), Some(Af::Inet6));
        assert_eq!(Af::from_raw(0), None);
        assert_eq!(Af::Inet6.raw(), 10);
        let nf = [7u8; 16];
        assert_eq!(InetAddr::from_nf(Af::Inet, &nf), InetAddr::V4([7; 4]));
        assert_eq!(InetAddr::from_nf(Af::Inet, &nf).nf()[4..], [0; 12]);
        assert_eq!(InetAddr::from_nf(Af::Inet6, &nf).nf(), nf);
        assert!(InetAddr::V6([0; 16]).is_any());
        assert!(!InetAddr::V4([0, 0, 0, 1]).is_any());
    }

    #[test]
    fn keys() {
        let k = ServiceKey::new(Af::Inet, 17, &[9; 16], [1, 2], 0);
        assert_eq!(k.fwmark(), 0);
        assert_eq!(k.port(), [1, 2]);
        assert_eq!(k.addr_nf()[..4], [9; 4]);
        assert_eq!(k.addr_nf()[4..], [0; 12]);
        // A mark hides address and port, at any value.
        for mark in [1, u32::MAX, i32::MAX as u32, 1 << 31] {
            let k = ServiceKey::new(Af::Inet, 6, &[9; 16], [1, 2], mark);
            assert_eq!(k.fwmark(), mark);
            assert_eq!(k.addr_nf(), [0; 16]);
            assert_eq!(k.port(), [0; 2]);
            assert!(!k.is_unset());
        }
        assert!(ServiceKey::new(Af::Inet, 0, &[0; 16], [0; 2], 0).is_unset());
        assert!(!ServiceKey::new(Af::Inet, 0, &[0; 16], [0, 1], 0).is_unset());
        assert!(!ServiceKey::new(
            Af::Inet,
            0,
            &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            [0; 2],
            0
        )
        .is_unset());
        // Only the IPv4 part counts for IPv4.
        let mut tail = [0u8; 16];
        tail[15] = 1;
        assert!(ServiceKey::new(Af::Inet, 0, &tail, [0; 2], 0).is_unset());
        assert!(!ServiceKey::new(Af::Inet6, 0, &tail, [0; 2], 0).is_unset());
        assert_eq!(
            ServiceKey::new(Af::Inet6, 6, &tail, [0; 2], 5).af(),
            Af::Inet6
        );
    }

    #[test]
    fn sockopt_protocols() {
        for p in [IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP] {
            assert_eq!(
                ServiceKey::new(Af::Inet, p, &[0; 16], [0; 2], 0).check_sockopt_protocol(),
                Ok(())
            );
            assert_eq!(
                ServiceKey::new(Af::Inet, p, &[0; 16], [0; 2], 3).check_sockopt_protocol(),
                Ok(())
            );
        }
        for p in [0, 1, 5, 7, 131, 133, 256 + 6, u16::MAX] {
            assert_eq!(
                ServiceKey::new(Af::Inet, p, &[0; 16], [0; 2], 0).check_sockopt_protocol(),
                Err(Errno::Fault)
            );
            assert_eq!(
                ServiceKey::new(Af::Inet, p, &[0; 16], [0; 2], 1).check_sockopt_protocol(),
                Err(Errno::Fault)
            );
        }
    }

    #[test]
    fn names() {
        assert_eq!(SchedName::parse(&[b'x'; 16]), Err(Errno::Inval));
        assert_eq!(SchedName::parse(&[0xff; 16]), Err(Errno::Inval));
        assert_eq!(SchedName::parse(&[0; 16]).unwrap().as_bytes(), b"");
        let mut f = [b'y'; 16];
        f[15] = 0;
        assert_eq!(SchedName::parse(&f).unwrap().as_bytes(), &[b'y'; 15]);
        // Bytes after the NUL are ignored.
        let mut f = [b'z'; 16];
        f[2] = 0;
        let n = SchedName::parse(&f).unwrap();
        assert_eq!(n.as_bytes(), b"zz");
        assert_eq!(n.field()[2..], [0; 14]);
        assert!(SchedName::parse(SchedName::NONE.field()).unwrap().is_none());
        assert!(SchedName::new(b"0123456789abcdef").is_none());
        assert!(SchedName::new(b"0123456789abcde").is_some());
        assert!(SchedName::new(b"r\0r").is_none());

        assert_eq!(PeName::new(b""), Ok(None));
        assert_eq!(PeName::new(b"sip").unwrap().unwrap().as_bytes(), b"sip");
        assert_eq!(PeName::new(&[b'p'; 16]).unwrap().unwrap().as_bytes(), &[b'p'; 16]);
        assert_eq!(PeName::new(&[b'p'; 17]), Err(Errno::Inval));

        assert_eq!(IfName::parse(&[0; 16]), Err(Errno::Inval));
        assert_eq!(IfName::parse(&[b'e'; 16]), Err(Errno::Inval));
        let mut f = [0u8; 16];
        f[..4].copy_from_slice(b"eth0");
        let n = IfName::parse(&f).unwrap();
        assert_eq!(n.as_bytes_with_nul(), b"eth0\0");
        assert_eq!(IfName::truncate(&[b'e'; 40]).as_bytes(), &[b'e'; 15]);
        assert_eq!(IfName::truncate(b"lo\0junk").as_bytes(), b"lo");
        assert_eq!(IfName::truncate(b"").as_bytes_with_nul(), b"\0");
    }

    #[test]
    fn service_checks() {
        assert!(service(Af::Inet, u32::MAX).check().is_ok());
        assert!(service(Af::Inet, 0).check().is_ok());
        assert_eq!(
            service(Af::Inet6, 64).check().err(),
            Some(Errno::AfNoSupport)
        );
        let fwm = ServiceConfig {
            key: ServiceKey::new(Af::Inet6, 6, &[0; 16], [0; 2], 1),
            ..service(Af::Inet, 0)
        };
        assert_eq!(fwm.check().err(), Some(Errno::AfNoSupport));
        for (plen, ok) in [
            (0, false),
            (1, true),
            (128, true),
            (129, false),
            (u32::MAX, false),
            (1 << 31, false),
        ] {
            assert_eq!(
                service(Af::Inet6, plen).check_prefix().is_ok(),
                ok,
                "{plen}"
            );
            assert!(service(Af::Inet, plen).check_prefix().is_ok());
        }
        assert_eq!(merge_svc_flags(0b1010, 0b0101, 0b0011), 0b1001);
        assert_eq!(merge_svc_flags(u32::MAX, 0, u32::MAX), 0);
        assert_eq!(merge_svc_flags(0x3, u32::MAX, 0), 0x3);
    }

    #[test]
    fn dest_checks_in_upstream_order() {
        assert!(dest(0, 0, 0).check().is_ok());
        assert!(dest(i32::MAX, i32::MAX as u32, i32::MAX as u32)
            .check()
            .is_ok());
        assert_eq!(dest(-1, 0, 0).check().err(), Some(Errno::Range));
        assert_eq!(dest(i32::MIN, 0, 0).check().err(), Some(Errno::Range));
        assert_eq!(dest(1, 0, 1).check().err(), Some(Errno::Range));
        assert_eq!(dest(1, 5, u32::MAX).check().err(), Some(Errno::Range));
        assert_eq!(
            dest(1, i32::MAX as u32 + 1, 0).check().err(),
            Some(Errno::Inval)
        );
        assert_eq!(
            dest(1, u32::MAX, u32::MAX).check().err(),
            Some(Errno::Inval)
        );
        // Weight before thresholds, thresholds' order before the upper bound.
        assert_eq!(
            dest(-1, u32::MAX, u32::MAX).check().err(),
            Some(Errno::Range)
        );
        assert_eq!(
            dest(1, u32::MAX - 1, u32::MAX).check().err(),
            Some(Errno::Range)
        );
        // GUE needs a port; the others do not.
        let gue = DestConfig {
            tun_type: tun_type::GUE,
            ..dest(1, 0, 0)
        };
        assert_eq!(gue.check().err(), Some(Errno::Inval));
        assert!(DestConfig {
            tun_port: [0x17, 0xc1],
            ..gue
        }
        .check()
        .is_ok());
        assert!(DestConfig {
            tun_type: tun_type::GRE,
            ..dest(1, 0, 0)
        }
        .check()
        .is_ok());
        assert_eq!(
            DestConfig {
                tun_type: tun_type::GUE,
                ..dest(-1, 0, 0)
            }
            .check()
            .err(),
            Some(Errno::Range)
        );
        // The family first.
        assert_eq!(
            DestConfig {
                addr: InetAddr::V6([1; 16]),
                ..dest(-1, 0, 1)
            }
            .check()
            .err(),
            Some(Errno::AfNoSupport)
        );
    }

    #[test]
    fn dest_conn_flags_as_upstream() {
        let f = |c| {
            DestConfig {
                conn_flags: c,
                ..dest(1, 0, 0)
            }
            .dest_conn_flags()
        };
        assert_eq!(f(conn_flags::MASQ), conn_flags::INACTIVE);
        assert_eq!(
            f(conn_flags::DROUTE),
            conn_flags::DROUTE | conn_flags::INACTIVE | conn_flags::NOOUTPUT
        );
        assert_eq!(
            f(u32::MAX),
            conn_flags::DEST_MASK | conn_flags::INACTIVE | conn_flags::NOOUTPUT
        );
        // Bits outside the mask are dropped; a method of 5 to 7 still counts as not NAT.
        assert_eq!(
            f(conn_flags::SYNC | conn_flags::TEMPLATE),
            conn_flags::INACTIVE
        );
        assert_eq!(f(7), 7 | conn_flags::INACTIVE | conn_flags::NOOUTPUT);
    }

    #[test]
    fn dest_families() {
        let t = conn_flags::TUNNEL;
        assert_eq!(dest_af(Af::Inet, 0, 0, false, false), Ok(Af::Inet));
        assert_eq!(dest_af(Af::Inet, AF_INET, 0, false, true), Ok(Af::Inet));
        for raw in [1, AF_INET6, u16::MAX] {
            assert_eq!(
                dest_af(Af::Inet, raw, t, false, false),
                Err(Errno::AfNoSupport)
            );
            assert_eq!(
                dest_af(Af::Inet, raw, t, true, false),
                Err(Errno::AfNoSupport)
            );
        }
        // A mixed-family server (here an IPv4 one in an IPv6 service) needs a tunnel and no
        // sync daemon, except to be removed.
        assert_eq!(dest_af(Af::Inet6, AF_INET, t, false, false), Ok(Af::Inet));
        assert_eq!(
            dest_af(Af::Inet6, AF_INET, conn_flags::MASQ, false, false),
            Err(Errno::Inval)
        );
        assert_eq!(
            dest_af(Af::Inet6, AF_INET, t, false, true),
            Err(Errno::Inval)
        );
        assert_eq!(dest_af(Af::Inet6, AF_INET, 0, true, true), Ok(Af::Inet));
    }

    #[test]
    fn timeouts() {
        let t = |tcp, tcp_fin, udp| TimeoutConfig { tcp, tcp_fin, udp };
        assert!(t(0, 0, 0).check(250).is_ok());
        assert!(t(i32::MAX / 250, i32::MAX / 250, i32::MAX / 250)
            .check(250)
            .is_ok());
        assert!(t(i32::MAX, 0, 0).check(1).is_ok());
        for bad in [-1, i32::MIN, i32::MAX / 250 + 1, i32::MAX] {
            assert_eq!(t(bad, 0, 0).check(250).err(), Some(Errno::Inval));
            assert_eq!(t(0, bad, 0).check(250).err(), Some(Errno::Inval));
            assert_eq!(t(0, 0, bad).check(250).err(), Some(Errno::Inval));
        }
        assert_eq!(t(1000, 1000, 1000).check(1000).err(), None);
        // A nonsensical HZ refuses everything but 0 rather than dividing by it.
        assert!(t(0, 0, 0).check(0).is_ok());
        assert_eq!(t(1, 0, 0).check(0).err(), Some(Errno::Inval));
        assert_eq!(t(1, 0, 0).check(u32::MAX).err(), Some(Errno::Inval));
    }

    #[test]
    fn daemon_checks_in_upstream_order() {
        let mut f = [0u8; 16];
        f[..2].copy_from_slice(b"lo");
        let cfg = |state| DaemonConfig {
            state,
            mcast_ifn: IfName::parse(&f).unwrap(),
            syncid: 0,
            sync_maxlen: 0,
            mcast_group: None,
            mcast_port: 0,
            mcast_ttl: 0,
        };
        assert_eq!(cfg(1).check_group(), Ok(()));
        for (group, res) in [
            (InetAddr::V4([224, 0, 0, 81]), Ok(())),
            (InetAddr::V4([239, 255, 255, 255]), Ok(())),
            (InetAddr::V4([223, 255, 255, 255]), Err(Errno::Inval)),
            (InetAddr::V4([240, 0, 0, 0]), Err(Errno::Inval)),
            (InetAddr::V4([0; 4]), Err(Errno::Inval)),
            (InetAddr::V4([255; 4]), Err(Errno::Inval)),
            (InetAddr::V6([0xff; 16]), Ok(())),
            (InetAddr::V6([0xfe; 16]), Err(Errno::Inval)),
            (InetAddr::V6([0; 16]), Err(Errno::Inval)),
        ] {
            let c = DaemonConfig { mcast_group: Some(group), ..cfg(1) };
            assert_eq!(c.check_group(), res, "{group:?}");
        }
        let present = |_: &IfName| Ok::<(), Errno>(());
        let missing = |_: &IfName| Err(Errno::Range);
        assert_eq!(cfg(1).check_start(present), Ok(DaemonState::Master));
        assert_eq!(cfg(2).check_start(present), Ok(DaemonState::Backup));
        for s in [0, 3, -1, i32::MIN, i32::MAX] {
            assert_eq!(cfg(s).check_start(present), Err(Errno::Inval));
            // The device is checked first.
            assert_eq!(cfg(s).check_start(missing), Err(Errno::Range));
        }
    }

    #[test]
    fn errnos() {
        assert_eq!(Errno::Inval.to_errno(), -22);
        assert_eq!(Errno::Range.to_errno(), -34);
        assert_eq!(Errno::Fault.to_errno(), -14);
        assert_eq!(Errno::AfNoSupport.to_errno(), -97);
    }
}
