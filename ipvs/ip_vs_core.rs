// SPDX-License-Identifier: GPL-2.0

//! IP Virtual Server (LinuxDirector), the core module: per-namespace state, the netfilter
//! hooks that steer packets of virtual services to real servers, and module setup.
//!
//! Packets for a virtual address arrive at LOCAL_IN ([`Ipvs::ip_vs_in`]): a known connection
//! is forwarded to its real server, the first packet of a new one is scheduled to a server
//! and creates the connection. NAT replies from real servers are rewritten at FORWARD
//! ([`Ipvs::ip_vs_out`]). Hooks are registered when a namespace gets its first service.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_core.c`

// The per-namespace state's `try_pin_init!` has more fields than the default limit expands.
#![recursion_limit = "256"]

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use kernel::{
    alloc::flags::GFP_KERNEL,
    error::code::*,
    net::{
        namespace::{Net, NetScope, Pernet, PernetData, PernetRegistration},
        netfilter::{self, pf, HookSpec, HookState, Hooks, InetHook, SockoptRegistration, Verdict},
        skbuff::SkBuff,
    },
    new_mutex,
    c_str,
    prelude::*,
    proc_fs::{ProcNetEntry, ProcNetIterEntry},
    sync::{rcu, Arc, Mutex},
    sysctl::{NetSysctlTable, SysctlValues},
    time::msecs_to_jiffies,
    timer::Timer,
    workqueue,
};

mod abi;
mod app;
mod app_abi;
mod conn;
mod defense;
mod est;
mod estimation;
mod ctl;
mod ctl_config;
mod genl;
mod hash;
mod proto;
mod proto_ah_esp;
mod proto_sctp;
mod proto_tcp;
mod proto_udp;
mod registry;
mod protocol;
mod protocol_pkt;
mod pe;
mod pe_abi;
mod conn_pe;
mod conn_side;
mod sched;
mod sctp;
mod service;
mod stats;
mod sync;
mod sync_msg;
mod uapi;
mod work_timer;
mod xmit;

use conn::{Conn, ConnParam, ConnTable, Expiry};
use protocol::{Protocol, Timeouts};
use protocol_pkt::Sched;
use proto::{
    Icmp, IpHdr, Ipv4, Ports, Quoted, ICMPV6_DEST_UNREACH, ICMPV6_PORT_UNREACH, ICMP_DEST_UNREACH,
    ICMP_HLEN, ICMP_PORT_UNREACH, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_IPIP, IPPROTO_UDP,
};
use service::{ServiceTable, ServiceView, Services, AF_INET};
use stats::Stats;
use uapi::{conn_flags, svc_flags};

module! {
    type: IpVsModule,
    name: "ip_vs",
    author: "Rust IPVS developers",
    description: "IP Virtual Server (Rust implementation)",
    license: "GPL",
    // `MODULE_ALIAS_GENL_FAMILY("IPVS")`: resolving the family loads the module.
    alias: ["net-pf-16-proto-16-family-IPVS"],
}

extern "C" {
    fn ip_vs_conn_tab_bits_param() -> i32;
}

// The uapi layouts decoded by hand in `uapi.rs` must be the C ones.
const _: () = {
    use core::mem::size_of;
    use kernel::bindings as b;
    assert!(size_of::<b::ip_vs_service_user>() == uapi::SERVICE_USER_LEN);
    assert!(size_of::<b::ip_vs_dest_user>() == uapi::DEST_USER_LEN);
    assert!(size_of::<b::ip_vs_timeout_user>() == uapi::TIMEOUT_USER_LEN);
    assert!(size_of::<b::ip_vs_daemon_user>() == uapi::DAEMON_USER_LEN);
    assert!(size_of::<b::ip_vs_stats_user>() == uapi::STATS_USER_LEN);
    assert!(size_of::<b::ip_vs_getinfo>() == uapi::GETINFO_LEN);
    assert!(size_of::<b::ip_vs_service_entry>() == uapi::SERVICE_ENTRY_LEN);
    assert!(size_of::<b::ip_vs_dest_entry>() == uapi::DEST_ENTRY_LEN);
    assert!(size_of::<b::ip_vs_get_dests>() == uapi::GET_DESTS_LEN);
    assert!(size_of::<b::ip_vs_get_services>() == uapi::GET_SERVICES_LEN);
};

/// Per-namespace IPVS state, one per network namespace.
pub(crate) static IPVS: Pernet<Ipvs> = Pernet::new();

const NF_IP_PRI_NAT_DST: i32 = -100;
const NF_IP_PRI_NAT_SRC: i32 = 100;

const fn spec(hook: InetHook, priority: i32) -> HookSpec {
    HookSpec {
        pf: pf::IPV4,
        hook,
        priority,
    }
}

/// The same hook point for IPv6 (`NF_IP6_PRI_*` have the IPv4 values).
const fn spec6(s: HookSpec) -> HookSpec {
    HookSpec { pf: pf::IPV6, ..s }
}

/// Where packets addressed to this host or sent by it are taken ([`LocalHooks`]): each is
/// first checked as a reply of a NAT real server (`ip_vs_out_hook`: to a client on the
/// director, or from a real server on it), then, if it is none, as a request for a virtual
/// service (`ip_vs_in_hook`: from remote clients after filtering, and from clients on the
/// director). Upstream registers the two at adjacent priorities (`NF_IP_PRI_NAT_SRC - 2`
/// and `- 1`, `NF_IP_PRI_NAT_DST + 1` and `+ 2`), between which only a hook at exactly the
/// first priority registered later could run (none of the kernel's own); one hook at the
/// first does the same with one dispatch and one parse of the headers.
const IN_HOOKS: [HookSpec; 2] = [
    spec(InetHook::LocalIn, NF_IP_PRI_NAT_SRC - 2),
    spec(InetHook::LocalOut, NF_IP_PRI_NAT_DST + 1),
];

/// Where replies of NAT real servers routed through the director are rewritten
/// (`ip_vs_out_hook` at FORWARD).
const OUT_HOOKS: [HookSpec; 1] = [spec(InetHook::Forward, 100)];

/// Where ICMP errors for connections are taken when the director routes them rather than
/// receives them (`ip_vs_forward_icmp`).
const FWD_ICMP_HOOKS: [HookSpec; 1] = [spec(InetHook::Forward, 99)];

/// The IPv6 hooks, at the same points and priorities (`ip_vs_ops6`).
const IN_HOOKS6: [HookSpec; 2] = [spec6(IN_HOOKS[0]), spec6(IN_HOOKS[1])];
const OUT_HOOKS6: [HookSpec; 1] = [spec6(OUT_HOOKS[0])];
const FWD_ICMP_HOOKS6: [HookSpec; 1] = [spec6(FWD_ICMP_HOOKS[0])];

/// Keys of the registrations in a namespace's [`NetScope`].
mod reg {
    pub(crate) const SYSCTL: usize = 0;
    pub(crate) const PROC_IPVS: usize = 1;
    pub(crate) const PROC_CONN: usize = 2;
    pub(crate) const PROC_CONN_SYNC: usize = 3;
    pub(crate) const PROC_STATS: usize = 4;
    pub(crate) const PROC_STATS_PERCPU: usize = 5;
    pub(crate) const HOOKS_IN: usize = 6;
    pub(crate) const HOOKS_OUT: usize = 7;
    pub(crate) const HOOKS_FWD_ICMP: usize = 8;
    pub(crate) const HOOKS_IN6: usize = 9;
    pub(crate) const HOOKS_OUT6: usize = 10;
    pub(crate) const HOOKS_FWD_ICMP6: usize = 11;
    pub(crate) const PROC_STATUS: usize = 12;
}

/// Control-plane state of a namespace, under its mutex.
pub(crate) struct CtlState {
    pub(crate) services: Services,
}

impl CtlState {
    /// Registers each family's hooks while the namespace has services of that family,
    /// unregisters them when it has none (in the namespace's scope, which also removes them
    /// when the namespace goes), as upstream's `ip_vs_register_hooks` per family.
    pub(crate) fn update_hooks(&mut self, net: &Net) -> Result {
        let scope = IPVS.scope(net).ok_or(ENODEV)?;
        let v4 = self.services.len_v4();
        let v6 = self.services.len() - v4;
        let r = Self::family_hooks(scope, v4 != 0, [reg::HOOKS_IN, reg::HOOKS_OUT, reg::HOOKS_FWD_ICMP], [&IN_HOOKS, &OUT_HOOKS, &FWD_ICMP_HOOKS]);
        let r6 = Self::family_hooks(scope, v6 != 0, [reg::HOOKS_IN6, reg::HOOKS_OUT6, reg::HOOKS_FWD_ICMP6], [&IN_HOOKS6, &OUT_HOOKS6, &FWD_ICMP_HOOKS6]);
        r.and(r6)
    }

    /// Registers one family's hook sets under `keys` if `want` and not yet there, or removes
    /// them if not `want`.
    fn family_hooks(scope: &NetScope, want: bool, keys: [usize; 3], specs: [&[HookSpec]; 3]) -> Result {
        let remove = || {
            for k in keys.iter().rev() {
                scope.remove(*k);
            }
        };
        if !want {
            remove();
            return Ok(());
        }
        if scope.contains(keys[0]) {
            return Ok(());
        }
        let r = netfilter::Registration::register(scope, keys[0], specs[0], Arc::new(LocalHooks, GFP_KERNEL)?)
            .and_then(|()| netfilter::Registration::register(scope, keys[1], specs[1], Arc::new(OutHooks, GFP_KERNEL)?))
            .and_then(|()| netfilter::Registration::register(scope, keys[2], specs[2], Arc::new(FwdIcmpHooks, GFP_KERNEL)?));
        if r.is_err() {
            remove();
        }
        r
    }
}

/// The IPVS state of one network namespace (upstream's `struct netns_ipvs`).
#[pin_data]
pub(crate) struct Ipvs {
    pub(crate) sysctl_values: Arc<SysctlValues>,
    pub(crate) defense: Arc<defense::Defense>,
    #[pin]
    defense_timer: Timer<work_timer::WorkTimer<defense::Defense>>,
    /// After the timer: waits for its last work item.
    _defense_flush: work_timer::WorkFlush<defense::Defense>,
    #[pin]
    pub(crate) ctl: Mutex<CtlState>,
    pub(crate) svc_table: Arc<ServiceTable>,
    pub(crate) conns: Arc<ConnTable>,
    resizer: Arc<conn::Resizer>,
    #[pin]
    expiry: Timer<Expiry>,
    /// After the timer: waits for the last resize it asked for.
    _resize_flush: conn::ResizerFlush,
    pub(crate) stats: Arc<Stats>,
    estimation: Arc<estimation::Estimation>,
    #[pin]
    est_timer: Timer<work_timer::WorkTimer<estimation::Estimation>>,
    /// After the timer: waits for the last walk it queued.
    _est_flush: work_timer::WorkFlush<estimation::Estimation>,
    pub(crate) timeouts: Arc<Timeouts>,
    hz: u32,
    /// Connection synchronisation daemons.
    #[pin]
    pub(crate) sync: sync::SyncState,
    /// Whether IPv6 reassembly by netfilter was turned on for the namespace (on its first
    /// IPv6 service or real server, as upstream; turned off when the namespace goes).
    defrag6: AtomicBool,
}

/// Length of the IP-in-IP tunnel header.
const IPIP_HLEN: u32 = 20;

impl PernetData for Ipvs {
    fn init<'a>(_net: &'a Net, scope: &'a NetScope) -> impl PinInit<Self, Error> + 'a {
        let hz = msecs_to_jiffies(1000) as u32;
        let sync_hz = hz;
        try_pin_init!(Self {
            sysctl_values: {
                let v = NetSysctlTable::register(scope, reg::SYSCTL, c_str!("net/ipv4/vs"), ctl::SYSCTLS)?;
                v.set_ulong(ctl::SYSCTL_SYNC_QLEN_MAX, sync_qlen_max());
                ProcNetIterEntry::<ctl::ProcIpVs>::register(scope, reg::PROC_IPVS, c_str!("ip_vs"), 0o444)?;
                ProcNetIterEntry::<ctl::ProcIpVsConn>::register(scope, reg::PROC_CONN, c_str!("ip_vs_conn"), 0o444)?;
                ProcNetIterEntry::<ctl::ProcIpVsConnSync>::register(
                    scope,
                    reg::PROC_CONN_SYNC,
                    c_str!("ip_vs_conn_sync"),
                    0o444,
                )?;
                ProcNetEntry::<ctl::ProcIpVsStats>::register(scope, reg::PROC_STATS, c_str!("ip_vs_stats"), 0o444)?;
                ProcNetEntry::<ctl::ProcIpVsStatsPercpu>::register(
                    scope,
                    reg::PROC_STATS_PERCPU,
                    c_str!("ip_vs_stats_percpu"),
                    0o444,
                )?;
                ProcNetEntry::<ctl::ProcIpVsStatus>::register(scope, reg::PROC_STATUS, c_str!("ip_vs_status"), 0o440)?;
                if !_net.is_init() {
                    // A new namespace starts with the initial one's `conn_max` as both limits.
                    v.set_limits(ctl::SYSCTL_CONN_MAX, ctl::INIT_CONN_MAX.load(Relaxed));
                }
                v
            },
            ctl <- new_mutex!(CtlState { services: Services::new() }, "ipvs_ctl"),
            svc_table: Arc::new(ServiceTable::new()?, GFP_KERNEL)?,
            conns: Arc::new(
                ConnTable::new(
                    conn_tab_bits(),
                    hz,
                    Some(conn::Limits {
                        values: sysctl_values.clone(),
                        lfactor: ctl::SYSCTL_CONN_LFACTOR,
                        conn_max: ctl::SYSCTL_CONN_MAX,
                    }),
                )?,
                GFP_KERNEL,
            )?,
            resizer: Arc::pin_init(conn::Resizer::new(conns.clone()), GFP_KERNEL)?,
            expiry <- Timer::new(Expiry { resizer: resizer.clone() }),
            _resize_flush: conn::ResizerFlush(resizer.clone()),
            stats: Arc::new(Stats::new()?, GFP_KERNEL)?,
            defense: Arc::pin_init(
                defense::Defense::new(sysctl_values.clone(), conns.clone()),
                GFP_KERNEL,
            )?,
            // Every second, in process context: `si_meminfo` takes locks that are not
            // softirq-safe.
            defense_timer <- Timer::new(work_timer::WorkTimer {
                item: defense.clone(),
                period: u64::from(hz),
                queue: workqueue::system_long,
            }),
            _defense_flush: work_timer::WorkFlush(defense.clone()),
            estimation: Arc::pin_init(
                estimation::Estimation::new(sysctl_values.clone(), stats.clone(), svc_table.clone()),
                GFP_KERNEL,
            )?,
            // Every two seconds, on any CPU the scheduler picks (the walk is long).
            est_timer <- Timer::new(work_timer::WorkTimer {
                item: estimation.clone(),
                period: u64::from(est::PERIOD_SECS * hz),
                queue: workqueue::system_unbound,
            }),
            _est_flush: work_timer::WorkFlush(estimation.clone()),
            timeouts: Arc::new(Timeouts::new(hz), GFP_KERNEL)?,
            hz,
            sync <- sync::SyncState::new(Arc::new(
                sync::Shared {
                    conns: conns.clone(),
                    svc_table: svc_table.clone(),
                    sysctl: sysctl_values.clone(),
                    timeouts: timeouts.clone(),
                    hz: sync_hz,
                    dropped_msgs: core::sync::atomic::AtomicU64::new(0),
                    dropped_conns: core::sync::atomic::AtomicU64::new(0),
                },
                GFP_KERNEL,
            )?),
            defrag6: AtomicBool::new(false),
        })
    }

    fn started(&self, _net: &Net) {
        self.expiry.schedule_after(self.hz as u64);
        self.defense_timer.schedule_after(self.hz as u64);
        self.est_timer.schedule_after(self.est_timer.data().period);
    }

    fn pre_exit(&self, _net: &Net) {
        // Before the namespace's devices go (`ip_vs_sync_net_cleanup` runs from a pernet
        // device exit upstream): a daemon's socket and routes hold them, and the device
        // teardown would wait for them forever.
        self.sync.stop_all();
    }

    fn exit(&self, net: &Net) {
        // The scope has removed the hooks, sysctls and /proc files already.
        self.sync.stop_all();
        let mut ctl = self.ctl.lock();
        let _ = ctl.services.flush(&self.svc_table);
        ctl.services.release();
        if self.defrag6.swap(false, Relaxed) {
            net.nf_defrag_ipv6_disable();
        }
    }

    fn pernet() -> &'static Pernet<Self> {
        &IPVS
    }
}

/// Which service a new connection is for (`ip_vs_service_find`): a firewall-mark service
/// of the packet's family first, then <protocol, address, port>, then the port-zero service
/// of the address.
fn find_service<'a>(
    tab: ServiceView<'a>,
    mark: u32,
    ip: &IpHdr,
    ports: &Ports,
) -> Option<&'a Arc<service::Service>> {
    if mark != 0 {
        if let Some(s) = tab.find_fwmark(ip.af, mark) {
            return Some(s);
        }
    }
    tab.find(ip.af, ip.protocol as u16, &ip.daddr, ports.dport)
        // A port-zero service takes the ports no other service of its address has.
        .or_else(|| tab.find(ip.af, ip.protocol as u16, &ip.daddr, [0, 0]))
}

/// The packet's network header (`ip_vs_fill_iph_skb`): IPv4, or with `v6` IPv6 with its
/// extension headers walked to the transport header. `None` if it is truncated or bad: not
/// IPVS's.
#[inline(always)]
fn parse_ip(skb: &mut SkBuff<'_>, v6: bool) -> Option<IpHdr> {
    if !v6 {
        return Some(IpHdr::from_v4(&Ipv4::parse(skb.pull(20).ok()?)?));
    }
    parse_ip6(skb)
}

/// [`parse_ip`] of an IPv6 packet, out of the IPv4 path's way.
#[inline(never)]
fn parse_ip6(skb: &mut SkBuff<'_>) -> Option<IpHdr> {
    let mut h = [0u8; proto::IPV6_HLEN];
    h.copy_from_slice(skb.pull(proto::IPV6_HLEN).ok()?);
    let c = skb.ipv6_find_hdr(0).ok()?;
    IpHdr::from_v6(&h, c.protocol, c.l4_off, c.fragoff, c.frag)
}

/// The transport ports and flags of a TCP or UDP packet that carries its transport header:
/// not an IPv4 fragment (IPVS reassembles those first), not a non-first IPv6 fragment.
/// The persistence-engine data of a packet starting a connection of persistent service
/// `svc` (`ip_vs_conn_fill_param_persist`): `Ok(None)` without an engine; `Err` when the
/// engine finds none, and upstream drops the packet (its SIP engine: not UDP, no payload
/// after the UDP header, no valid Call-ID).
fn pe_data_of(
    svc: &service::Service,
    skb: &mut SkBuff<'_>,
    ip: &IpHdr,
    g: &rcu::Guard,
) -> core::result::Result<Option<pe::PeData>, ()> {
    let Some(pe) = svc.pe.get(g) else {
        return Ok(None);
    };
    if ip.protocol != IPPROTO_UDP {
        return Err(());
    }
    let dataoff = ip.len.checked_add(proto::l4_len(IPPROTO_UDP).ok_or(())?).ok_or(())?;
    let total = skb.len() as usize;
    if dataoff >= total {
        return Err(());
    }
    let data = skb.pull(total).map_err(|_| ())?;
    let payload = data.get(dataoff..).ok_or(())?;
    pe.fill_param(payload, dataoff).map(Some).ok_or(())
}

/// The ICMP header of an error IPVS may relate to a connection, and the packet it quotes,
/// starting at `off` (after any tunnel header): its IP header and its TCP or UDP ports.
/// `None` for other messages, or when what is quoted is not a first fragment of TCP or UDP.
fn parse_quoted(skb: &mut SkBuff<'_>, off: usize) -> Option<Quoted> {
    let ip = Ipv4::parse(skb.pull(off + 20).ok()?.get(off..)?)?;
    let pr = Protocol::of(ip.protocol)?;
    // AH and ESP: no header read, the ISAKMP ports (`dont_defrag`: a non-first fragment too).
    let (sport, dport) = match pr.fixed_ports() {
        Some(p) => (p.sport, p.dport),
        None => {
            if ip.frag_offset != 0 {
                return None;
            }
            let h = skb.pull(off + ip.ihl + 4).ok()?;
            proto::ports_of(h.get(off + ip.ihl..)?)?
        }
    };
    Some(Quoted {
        off,
        ip,
        sport,
        dport,
    })
}

/// The IPv6 packet an ICMPv6 error quotes at `off` (`ip_vs_fill_iph_skb_icmp`): its
/// header chain walked to the transport header, which must be TCP or UDP and present (not
/// a non-first fragment). `None` otherwise.
fn parse_quoted6(skb: &mut SkBuff<'_>, off: usize) -> Option<proto::Quoted6> {
    let h = skb.pull(off + proto::IPV6_HLEN).ok()?.get(off..)?;
    if h[0] >> 4 != 6 {
        return None;
    }
    let mut saddr = [0u8; 16];
    let mut daddr = [0u8; 16];
    saddr.copy_from_slice(h.get(8..24)?);
    daddr.copy_from_slice(h.get(24..40)?);
    let c = skb.ipv6_find_hdr(off).ok()?;
    let pr = Protocol::of(c.protocol)?;
    let (sport, dport) = match pr.fixed_ports() {
        Some(p) => (p.sport, p.dport),
        None => {
            if c.fragoff != 0 {
                return None;
            }
            let h = skb.pull(c.l4_off + 4).ok()?;
            proto::ports_of(h.get(c.l4_off..)?)?
        }
    };
    Some(proto::Quoted6 {
        off,
        l4_off: c.l4_off,
        protocol: c.protocol,
        saddr,
        daddr,
        sport,
        dport,
    })
}

/// What an ICMPv6 message is to IPVS.
enum Icmp6 {
    /// An error quoting a TCP or UDP packet, which may belong to a connection.
    Error(proto::Quoted6),
    /// An informational message (echo, neighbour discovery, ...).
    Informational,
    /// An error quoting something else (or nothing usable): not IPVS's.
    NotOurs,
    /// Truncated, or a fragment (errors are never fragmented): dropped.
    Bad,
}

/// Classifies the ICMPv6 message of the packet (`ip_vs_in_icmp_v6`, `ip_vs_out_icmp_v6`).
fn icmp6_error(skb: &mut SkBuff<'_>, ip: &IpHdr) -> Icmp6 {
    let Some(t) = skb.pull(ip.len + ICMP_HLEN).ok().and_then(|h| h.get(ip.len).copied()) else {
        return Icmp6::Bad;
    };
    if !proto::icmp6_is_error(t) {
        return Icmp6::Informational;
    }
    if ip.fragment {
        return Icmp6::Bad;
    }
    parse_quoted6(skb, ip.len + ICMP_HLEN).map_or(Icmp6::NotOurs, Icmp6::Error)
}

/// The connection tuple of the IPv6 packet an ICMPv6 error quotes; `reversed` as for
/// [`quoted_param`].
fn quoted_param6(q: &proto::Quoted6, reversed: bool) -> ConnParam {
    let (c, cport, v, vport) = if reversed {
        (q.daddr, q.dport, q.saddr, q.sport)
    } else {
        (q.saddr, q.sport, q.daddr, q.dport)
    };
    ConnParam {
        af: proto::AF_INET6,
        protocol: Protocol::of(q.protocol).map_or(q.protocol, Protocol::conn_protocol),
        caddr: c,
        cport,
        vaddr: v,
        vport,
    }
}

/// Whether an ICMPv6 message's checksum is right (`ip_vs_checksum_common_check`): not
/// checked when the device verified it or the packet is the director's own.
fn icmp6_csum_ok(skb: &SkBuff<'_>, ip: &IpHdr, hook: InetHook) -> bool {
    skb.checksum() == kernel::net::skbuff::Checksum::Unnecessary
        || hook == InetHook::LocalOut
        || skb.csum_ipv6(ip.len, &ip.saddr, &ip.daddr, IPPROTO_ICMPV6) == Ok(0)
}

/// The flags a new connection takes from its service (`ip_vs_schedule`,
/// `ip_vs_sched_persist`): one-packet scheduling (`--ops`) for UDP.
fn one_packet_flags(pkt: &abi::Packet) -> u32 {
    if pkt.svc_flags & svc_flags::ONEPACKET != 0 && Protocol::of(pkt.protocol).is_some_and(Protocol::one_packet) {
        conn_flags::ONE_PACKET
    } else {
        0
    }
}

/// Sends "port unreachable" about the packet back to its sender, in its family.
fn port_unreach(net: &Net, skb: &mut SkBuff<'_>, ip: &IpHdr) {
    if ip.is_v6() {
        skb.icmpv6_send(net, ICMPV6_DEST_UNREACH, ICMPV6_PORT_UNREACH, 0, false);
    } else {
        skb.icmp_send(ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0);
    }
}

impl Ipvs {
    /// Client-to-service packets (`ip_vs_in_hook`): `ip` is the packet's network header and
    /// `ports`, for the protocols that have them, what [`Protocol::parse_ports`] read (`None`
    /// if it could not); `g`: the hook's RCU read lock.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn ip_vs_in<'a>(
        &self,
        net: &Net,
        mut skb: SkBuff<'a>,
        hook: InetHook,
        v6: bool,
        ip: &IpHdr,
        ports: Option<Ports>,
        g: &rcu::Guard,
    ) -> Verdict<'a> {
        // Link-layer broadcasts and others not for this host are not ours (local clients'
        // packets have no link layer).
        if hook != InetHook::LocalOut && !skb.is_for_host() {
            return Verdict::Accept(skb);
        }
        if ip.protocol == IPPROTO_ICMPV6 && v6 {
            return self.in_icmp_v6(net, skb, ip, hook);
        }
        if ip.protocol == IPPROTO_ICMP && !v6 {
            // ICMP other than the errors IPVS relates to connections is, like the protocols
            // below, not IPVS's (upstream's `related` is 0 for it).
            if !ip.fragment && self.sysctl_values.get(ctl::SYSCTL_IGNORE_TUNNELED) != 0 {
                let ihl = ip.len;
                let ic = skb.pull(ihl + ICMP_HLEN).ok().and_then(|h| Icmp::parse(h.get(ihl..)?));
                if ic.is_some_and(|ic| !ic.is_related_error()) {
                    skb.set_ipvs_property();
                    return Verdict::Accept(skb);
                }
            }
            return self.in_icmp(net, skb, ip, hook);
        }
        let Some(pr) = Protocol::of(ip.protocol) else {
            // Not a protocol of ours: if it comes back decapsulated (a tunnel ending here),
            // `ignore_tunneled` keeps it from being taken then.
            if self.sysctl_values.get(ctl::SYSCTL_IGNORE_TUNNELED) != 0 {
                skb.set_ipvs_property();
            }
            return Verdict::Accept(skb);
        };
        // One copy of the rest for each of the common protocols, in which their `match`es
        // fold away, and one for the others.
        match pr {
            Protocol::Tcp => self.ip_vs_in_proto(Protocol::Tcp, net, skb, hook, ip, ports, g),
            Protocol::Udp => self.ip_vs_in_proto(Protocol::Udp, net, skb, hook, ip, ports, g),
            _ => self.ip_vs_in_proto(pr, net, skb, hook, ip, ports, g),
        }
    }

    /// [`Self::ip_vs_in`] of a packet of protocol `pr`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn ip_vs_in_proto<'a>(
        &self,
        pr: Protocol,
        net: &Net,
        mut skb: SkBuff<'a>,
        hook: InetHook,
        ip: &IpHdr,
        ports: Option<Ports>,
        g: &rcu::Guard,
    ) -> Verdict<'a> {
        let Some(ports) = ports else {
            if pr.headless_drop(ip) {
                return Verdict::Drop(skb);
            }
            return Verdict::Accept(skb);
        };
        // SCTP: the common header and first chunk (the transport header is there: `ports`).
        let sctp_hdr = pr.sctp_header(&mut skb, ip);
        let mut found = self.conns.in_get_pkt(ip, pr.conn_protocol(), &ports, g);
        // Application helpers (FTP) are TCP's only.
        if found.is_none() && pr == Protocol::Tcp && app::no_cport_waiting() {
            // An application helper's expected connection, waiting for its client port.
            let p = pr.conn_param(ip, &ports);
            found = app::fill_cport(&self.conns, &p, self.timeouts.tcp[0].load(Relaxed), g);
        }
        // Read only when needed: most packets are neither SYNs nor for removed servers.
        let expire_nodest = || self.sysctl_values.get(ctl::SYSCTL_EXPIRE_NODEST_CONN) != 0;
        let new_conn = pr.is_new_conn(&ports, sctp_hdr.as_ref());
        if let Some(c) = found.filter(|_| new_conn) {
            // A SYN reusing the client port of an old connection is scheduled anew
            // (`conn_reuse_mode`): no stall for the client, and the current servers.
            let reuse_mode = self.sysctl_values.get(ctl::SYSCTL_CONN_REUSE_MODE);
            if (expire_nodest() && c.dest().is_some_and(|d| d.info.weight() == 0))
                || (reuse_mode != 0 && c.reusable(reuse_mode))
            {
                if c.ref_count() == 0 {
                    self.conns.expire_now(c);
                }
                found = None;
            }
        }
        if let Some(c) = found {
            // The connection's server was removed from its service. (An unbound synced
            // entry is forwarded to its address, as upstream does.)
            if c.dest().is_some_and(|d| !d.is_available()) {
                if !expire_nodest() {
                    return Verdict::Drop(skb);
                }
                self.conns.expire_now(c);
                found = None;
            }
        }
        let cp = match found {
            Some(c) => c,
            None => {
                // Only some packets start a connection (a TCP SYN, an SCTP INIT, ...);
                // anything else is the local stack's, or dropped.
                match pr.may_schedule(&ports, sctp_hdr.as_ref(), |i| self.sysctl_values.get(i) != 0) {
                    Sched::Schedule => {}
                    Sched::Accept => return Verdict::Accept(skb),
                    Sched::Drop => return Verdict::Drop(skb),
                }
                if hook == InetHook::LocalOut {
                    // Its replies will come in at LOCAL_IN: `ip_vs_out` must look for them.
                    self.conns.note_local_client();
                }
                let Some(tab) = self.svc_table.get(g) else {
                    return Verdict::Accept(skb);
                };
                let Some(svc) = find_service(tab, skb.mark(), ip, &ports) else {
                    return Verdict::Accept(skb);
                };
                // Short of memory with `drop_packet` on: one new connection in `drop_rate`
                // goes (`ip_vs_todrop`).
                if self.defense.todrop() {
                    return Verdict::Drop(skb);
                }
                let p = pr.conn_param(ip, &ports);
                let pkt = abi::Packet {
                    saddr: p.caddr,
                    daddr: p.vaddr,
                    sport: p.cport,
                    dport: p.vport,
                    af: ip.af,
                    protocol: ip.protocol,
                    _pad: [0; 3],
                    svc_flags: svc.flags.load(Relaxed),
                    fwmark: svc.fwmark,
                };
                let timeout = pr.initial_timeout(&self.timeouts);
                let made = if pkt.svc_flags & svc_flags::PERSISTENT != 0 {
                    match pe_data_of(svc, &mut skb, ip, g) {
                        Ok(pe) => self.sched_persist(svc, &p, &pkt, pe.as_ref(), timeout, g),
                        // The engine found no data: dropped, as upstream (`*ignored = -1`).
                        Err(()) => Err(SchedError::Failed),
                    }
                } else {
                    match self.schedule(svc, &pkt, g) {
                        Some(dest) => {
                            let dport = if dest.info.port == [0, 0] {
                                ports.dport
                            } else {
                                dest.info.port
                            };
                            self.conns
                                .new_conn(&p, dest.info.addr, dport, dest, timeout, one_packet_flags(&pkt), g)
                                .map_err(|_| SchedError::Failed)
                        }
                        None => Err(SchedError::NoDest),
                    }
                };
                match made {
                    Ok(c) => {
                        self.stats.count_conn();
                        app::bind(c);
                        c
                    }
                    Err(SchedError::NoDest) => {
                        // No server: tell the client the port is unreachable (`ip_vs_leave`).
                        port_unreach(net, &mut skb, ip);
                        return Verdict::Drop(skb);
                    }
                    Err(SchedError::Failed) => return Verdict::Drop(skb),
                }
            }
        };

        self.in_stats(cp, skb.len(), g);
        pr.transition(self, &mut skb, ip, &ports, cp, false);

        // From here on the packet is counted and the connection put back whatever becomes
        // of it, as upstream's transmitters (the application helper's refusal included).
        let verdict = match cp.fwd_method() {
            conn_flags::MASQ => {
                if !app::pkt(&self.conns, &mut skb, ip, cp, false, self.listen_timeout(), g) {
                    Verdict::Drop(skb)
                } else {
                    xmit::nat_xmit(net, skb, ip, pr, cp, g, hook)
                }
            }
            conn_flags::DROUTE => xmit::dr_xmit(net, skb, ip, cp, g, false),
            conn_flags::TUNNEL => {
                xmit::tunnel_xmit(net, skb, ip, cp, g, false, self.pmtu_disc())
            }
            conn_flags::LOCALNODE => Verdict::Accept(skb),
            _ => Verdict::Drop(skb),
        };
        // Count the packet and tell the backups if it is time to (`ip_vs_sync_conn`); a
        // one-packet connection counts as at the sync threshold.
        let one_packet = cp.flags.load(Relaxed) & conn_flags::ONE_PACKET != 0;
        let pkts = if one_packet {
            self.sysctl_values.get_pair(ctl::SYSCTL_SYNC_THRESHOLD)[0] as u32
        } else {
            cp.in_pkts.fetch_add(1, Relaxed).wrapping_add(1)
        };
        if self.sync.state() & sync::STATE_MASTER != 0 {
            self.sync.sync_conn(cp, pkts, g);
        } else if one_packet {
            if let Some(t) = cp.control(g) {
                t.in_pkts.fetch_add(1, Relaxed);
            }
        }
        cp.old_state.store(cp.state(), Relaxed);
        // Its datagram sent, a one-packet connection goes: the next one is scheduled anew.
        if one_packet {
            self.conns.put_one_packet(cp);
        }
        verdict
    }

    /// Replies from real servers (`ip_vs_out_hook`, `handle_response`): NAT ones are made to
    /// come from the virtual service. `ip`, `ports`: as for [`Self::ip_vs_in`]; a packet that
    /// is no reply is accepted unchanged, not marked as IPVS's. `g`: the hook's RCU read lock.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn ip_vs_out<'a>(
        &self,
        net: &Net,
        mut skb: SkBuff<'a>,
        hook: InetHook,
        v6: bool,
        ip: &IpHdr,
        ports: Option<&Ports>,
        g: &rcu::Guard,
    ) -> Verdict<'a> {
        if ip.protocol == IPPROTO_ICMPV6 && v6 {
            return self.out_icmp_v6(net, skb, ip, hook);
        }
        if ip.protocol == IPPROTO_ICMP && !v6 {
            return self.out_icmp(net, skb, ip, hook);
        }
        let (Some(pr), Some(ports)) = (Protocol::of(ip.protocol), ports) else {
            return Verdict::Accept(skb);
        };
        let p = pr.conn_param(ip, ports);
        let Some(cp) = self.conns.out_get(&p, g) else {
            // `nat_icmp_send`: a NAT real server answering without a connection (one that
            // expired, say) hears "port unreachable", unless it is resetting anyway.
            if self.sysctl_values.get(ctl::SYSCTL_NAT_ICMP_SEND) != 0
                && pr.may_answer_unreach(&mut skb, ip, ports)
                && self.has_real_service(ip.af, ip.protocol, &ip.saddr, ports.sport, g)
            {
                port_unreach(net, &mut skb, ip);
                return Verdict::Drop(skb);
            }
            return Verdict::Accept(skb);
        };
        if cp.fwd_method() == conn_flags::MASQ
            && (!app::pkt(&self.conns, &mut skb, ip, cp, true, self.listen_timeout(), g)
                || pr.snat_handler(&mut skb, ip, cp).is_err()
                || self.reroute(net, &mut skb, hook, v6).is_err())
        {
            return Verdict::Drop(skb);
        }
        self.out_stats(cp, skb.len(), g);
        pr.transition(self, &mut skb, ip, ports, cp, true);
        skb.set_ipvs_property();
        skb.set_untracked();
        Verdict::Accept(skb)
    }

    /// ICMP errors travelling towards a real server (`ip_vs_in_icmp`): about a packet a NAT
    /// real server sent to a client through the director, they are translated and
    /// forwarded to it; for DR and tunnel connections forwarded as they are. An error about
    /// a tunnelled packet, from the path between director and real server, goes back to the
    /// client instead (see [`Self::tunnel_icmp`]).
    fn in_icmp<'a>(&self, net: &Net, mut skb: SkBuff<'a>, ip: &IpHdr, hook: InetHook) -> Verdict<'a> {
        // Fragmented errors are left to the stack (upstream reassembles them first).
        if ip.fragment {
            return Verdict::Accept(skb);
        }
        let ihl = ip.len;
        let Some(ic) = skb.pull(ihl + ICMP_HLEN).ok().and_then(|h| Icmp::parse(h.get(ihl..)?)) else {
            return Verdict::Drop(skb);
        };
        if !ic.is_related_error() {
            return Verdict::Accept(skb);
        }
        let mut off = ihl + ICMP_HLEN;
        let Some(cih) = skb.pull(off + 20).ok().and_then(|h| Ipv4::parse(h.get(off..)?)) else {
            return Verdict::Accept(skb);
        };
        let g = rcu::read_lock();
        // An error about a packet we tunnelled quotes our outer header: it must be for this
        // host, about a real server we tunnel to.
        let tunnel = cih.protocol == IPPROTO_IPIP;
        if tunnel {
            if cih.frag_offset != 0 || !skb.route_is_local() || !self.is_tunnel_dest(&service::v4(cih.daddr), &g) {
                return Verdict::Accept(skb);
            }
            off += cih.ihl;
        }
        let Some(q) = parse_quoted(&mut skb, off) else {
            return Verdict::Accept(skb);
        };
        // The quoted packet went from the service to the client, or, tunnelled, from the
        // client to the service.
        let p = quoted_param(&q, !tunnel);
        let Some(cp) = self.conns.in_get(&p, &g) else {
            return Verdict::Accept(skb);
        };
        if (cp.fwd_method() == conn_flags::MASQ || tunnel) && skb.csum_fold_from(ihl) != Ok(0) {
            return Verdict::Drop(skb);
        }
        if tunnel {
            return self.tunnel_icmp(net, skb, &ic, &cih, &q, cp, &g);
        }
        self.in_stats(cp, skb.len(), &g);
        let ihl = ip.len;
        xmit::icmp_xmit(net, skb, ip, cp, &g, hook, self.pmtu_disc(), |skb| {
            xmit::nat_icmp(skb, ihl, &q, false, cp)
        })
    }

    /// An ICMP error about a packet tunnelled to a real server, from the path to it: the
    /// client that sent the packet gets the error, from the virtual service, about its own
    /// packet. "Fragmentation needed" teaches the director the tunnel's path MTU and tells a
    /// client that uses path MTU discovery the MTU left inside the tunnel.
    fn tunnel_icmp<'a>(
        &self,
        net: &Net,
        mut skb: SkBuff<'a>,
        ic: &Icmp,
        tun: &Ipv4,
        q: &Quoted,
        cp: &Conn,
        g: &rcu::Guard,
    ) -> Verdict<'a> {
        let mut info = u32::from_ne_bytes(ic.rest);
        // From here on the packet starts with our tunnel header, then the client's packet.
        let outer_len = q.off - tun.ihl;
        if skb.pull_network(outer_len).is_err() || skb.pull(tun.ihl).is_err() {
            return Verdict::Drop(skb);
        }
        if ic.is_frag_needed() {
            let mtu = u32::from(ic.frag_mtu());
            skb.update_pmtu_v4(net, mtu);
            // Only a client that uses path MTU discovery needs to hear about it.
            if !q.ip.df {
                return Verdict::Drop(skb);
            }
            let inner = if mtu > 68 + IPIP_HLEN { mtu - IPIP_HLEN } else { mtu };
            info = inner.to_be();
        }
        if skb.pull_network(tun.ihl).is_err() {
            return Verdict::Drop(skb);
        }
        match skb.pull(q.ip.ihl) {
            Ok(h) if usize::from(h[0] & 0x0f) * 4 == q.ip.ihl => {}
            _ => return Verdict::Drop(skb),
        }
        skb.icmp_send(ic.icmp_type, ic.code, info);
        self.out_stats(cp, skb.len(), g);
        Verdict::Drop(skb)
    }

    /// ICMP errors travelling from a real server's side towards a client
    /// (`ip_vs_out_icmp`, `handle_response_icmp`): for NAT connections they are made to come
    /// from, and quote a packet to, the virtual service.
    fn out_icmp<'a>(&self, net: &Net, mut skb: SkBuff<'a>, ip: &IpHdr, hook: InetHook) -> Verdict<'a> {
        if ip.fragment {
            return Verdict::Accept(skb);
        }
        let ihl = ip.len;
        let Some(ic) = skb.pull(ihl + ICMP_HLEN).ok().and_then(|h| Icmp::parse(h.get(ihl..)?)) else {
            return Verdict::Drop(skb);
        };
        if !ic.is_related_error() {
            return Verdict::Accept(skb);
        }
        let Some(q) = parse_quoted(&mut skb, ihl + ICMP_HLEN) else {
            return Verdict::Accept(skb);
        };
        let g = rcu::read_lock();
        // The quoted packet went from the client to the real server.
        let Some(cp) = self.conns.out_get(&quoted_param(&q, true), &g) else {
            return Verdict::Accept(skb);
        };
        if cp.fwd_method() == conn_flags::MASQ
            && (skb.csum_fold_from(ihl) != Ok(0)
                || xmit::nat_icmp(&mut skb, ihl, &q, true, cp).is_err()
                || self.reroute(net, &mut skb, hook, false).is_err())
        {
            return Verdict::Drop(skb);
        }
        self.out_stats(cp, skb.len(), &g);
        skb.set_ipvs_property();
        skb.set_untracked();
        Verdict::Accept(skb)
    }

    /// ICMPv6 errors travelling towards a real server (`ip_vs_in_icmp_v6`): about a packet a
    /// NAT real server sent to a client through the director, they are translated and
    /// forwarded to it; for DR and tunnel connections forwarded as they are.
    /// Informational messages are not IPVS's; a fragmented error is dropped (errors are
    /// never fragmented).
    fn in_icmp_v6<'a>(&self, net: &Net, mut skb: SkBuff<'a>, ip: &IpHdr, hook: InetHook) -> Verdict<'a> {
        let q = match icmp6_error(&mut skb, ip) {
            Icmp6::Error(q) => q,
            Icmp6::Informational => {
                if self.sysctl_values.get(ctl::SYSCTL_IGNORE_TUNNELED) != 0 {
                    skb.set_ipvs_property();
                }
                return Verdict::Accept(skb);
            }
            Icmp6::NotOurs => return Verdict::Accept(skb),
            Icmp6::Bad => return Verdict::Drop(skb),
        };
        let g = rcu::read_lock();
        // The quoted packet went from the service to the client.
        let Some(cp) = self.conns.in_get(&quoted_param6(&q, true), &g) else {
            return Verdict::Accept(skb);
        };
        if cp.fwd_method() == conn_flags::MASQ && !icmp6_csum_ok(&skb, ip, hook) {
            return Verdict::Drop(skb);
        }
        self.in_stats(cp, skb.len(), &g);
        xmit::icmp_xmit(net, skb, ip, cp, &g, hook, false, |skb| xmit::nat_icmp_v6(skb, ip, &q, false, cp))
    }

    /// ICMPv6 errors travelling from a real server's side towards a client
    /// (`ip_vs_out_icmp_v6`, `handle_response_icmp`): for NAT connections they are made to
    /// come from, and quote a packet to, the virtual service.
    fn out_icmp_v6<'a>(&self, net: &Net, mut skb: SkBuff<'a>, ip: &IpHdr, hook: InetHook) -> Verdict<'a> {
        let q = match icmp6_error(&mut skb, ip) {
            Icmp6::Error(q) => q,
            Icmp6::Informational | Icmp6::NotOurs => return Verdict::Accept(skb),
            Icmp6::Bad => return Verdict::Drop(skb),
        };
        let g = rcu::read_lock();
        // The quoted packet went from the client to the real server.
        let Some(cp) = self.conns.out_get(&quoted_param6(&q, true), &g) else {
            return Verdict::Accept(skb);
        };
        if cp.fwd_method() == conn_flags::MASQ
            && (!icmp6_csum_ok(&skb, ip, hook)
                || xmit::nat_icmp_v6(&mut skb, ip, &q, true, cp).is_err()
                || self.reroute(net, &mut skb, hook, true).is_err())
        {
            return Verdict::Drop(skb);
        }
        self.out_stats(cp, skb.len(), &g);
        skb.set_ipvs_property();
        skb.set_untracked();
        Verdict::Accept(skb)
    }

    /// Whether `addr` is a real server some service tunnels to (`ip_vs_find_tunnel`).
    /// Whether <`addr`, `port`> is a NAT real server of a service of `protocol` or of a
    /// firewall-mark service (`ip_vs_has_real_service`).
    fn has_real_service(&self, af: u16, protocol: u8, addr: &[u8; 16], port: [u8; 2], g: &rcu::Guard) -> bool {
        let Some(tab) = self.svc_table.get(g) else {
            return false;
        };
        tab.iter().any(|s| {
            (s.protocol == u16::from(protocol) || s.fwmark != 0)
                && s.dests.get(g).is_some_and(|l| {
                    l.dests.iter().any(|d| {
                        d.info.af == af
                            && d.info.addr == *addr
                            && d.info.port == port
                            && d.conn_flags.load(Relaxed) & conn_flags::FWD_MASK == conn_flags::MASQ
                    })
                })
        })
    }

    fn is_tunnel_dest(&self, addr: &[u8; 16], g: &rcu::Guard) -> bool {
        let Some(tab) = self.svc_table.get(g) else {
            return false;
        };
        tab.iter().any(|s| {
            s.dests.get(g).is_some_and(|l| {
                l.dests.iter().any(|d| {
                    d.info.af == AF_INET
                        && d.info.addr == *addr
                        && d.conn_flags.load(Relaxed) & conn_flags::FWD_MASK == conn_flags::TUNNEL
                })
            })
        })
    }

    /// The real server the service's scheduler picks for a new connection.
    fn schedule<'a>(
        &self,
        svc: &'a service::Service,
        pkt: &abi::Packet,
        g: &'a rcu::Guard,
    ) -> Option<&'a Arc<service::Dest>> {
        let s = svc.sched.get(g)?;
        let l = svc.dests.get(g)?;
        s.schedule(l.infos(), pkt).and_then(|i| l.dests.get(i))
    }

    /// A new connection of a persistent service (`ip_vs_sched_persist`): it goes to the real
    /// server of the client's template <client network, 0, virtual address, port, real
    /// server, port>, which is created by scheduling when there is none, or none usable
    /// (its server was removed, or quiesced with `expire_quiescent_template`). The template
    /// lives on `-p` seconds after its last use and while it controls connections. Port-zero
    /// services keep no port in the template (all ports of a client go to one server),
    /// firewall-mark services keep the mark as address and protocol `IP`, and FTP services
    /// (port 21) no port, so that their data connections follow.
    fn sched_persist<'a>(
        &'a self,
        svc: &service::Service,
        p: &ConnParam,
        pkt: &abi::Packet,
        pe: Option<&pe::PeData>,
        timeout: u32,
        g: &'a rcu::Guard,
    ) -> core::result::Result<&'a Conn, SchedError> {
        const FTPPORT: [u8; 2] = 21u16.to_be_bytes();
        // The client's network: an IPv4 netmask, or an IPv6 prefix length.
        let snet = if p.af == proto::AF_INET6 {
            proto::ipv6_prefix(&p.caddr, svc.netmask.load(Relaxed))
        } else {
            let mask = svc.netmask.load(Relaxed).to_ne_bytes();
            let c = service::as_v4(&p.caddr);
            service::v4([c[0] & mask[0], c[1] & mask[1], c[2] & mask[2], c[3] & mask[3]])
        };
        let to_svc_port = p.vport == svc.port;
        let (protocol, vaddr, vport) = if to_svc_port {
            let vport = if svc.port != FTPPORT { p.vport } else { [0, 0] };
            (p.protocol, p.vaddr, vport)
        } else if svc.fwmark != 0 {
            (0, service::v4(svc.fwmark.to_be_bytes()), [0, 0])
        } else {
            (p.protocol, p.vaddr, [0, 0])
        };
        let tp = ConnParam {
            af: p.af,
            protocol,
            caddr: snet,
            cport: [0, 0],
            vaddr,
            vport,
        };
        let quiescent = self.sysctl_values.get(ctl::SYSCTL_EXPIRE_QUIESCENT_TEMPLATE) != 0;
        // With engine data (`--pe`), the template is the one of that data.
        let found = match pe {
            Some(pe) => self.conns.template_get_pe(&tp, pe, g),
            None => self.conns.template_get(&tp, g),
        };
        let found = found.filter(|t| {
            // An unbound synced template names no server of ours.
            let usable = t
                .dest()
                .is_some_and(|d| d.is_available() && !(quiescent && d.info.weight() == 0));
            if !usable {
                t.invalidate();
            }
            usable
        });
        let ct = match found {
            Some(t) => {
                t.refresh_template(&self.conns);
                t
            }
            None => {
                let dest = self.schedule(svc, pkt, g).ok_or(SchedError::NoDest)?;
                let tdport = if to_svc_port && svc.port != FTPPORT {
                    dest.info.port
                } else {
                    [0, 0]
                };
                let ttl = svc.timeout_jiffies(self.hz);
                match pe {
                    Some(pe) => {
                        // The template pins the engine's module (the service may have
                        // dropped it meanwhile: then the packet is).
                        let module = svc.pe.get(g).and_then(|b| b.module_ref()).ok_or(SchedError::Failed)?;
                        self.conns.new_template_pe(&tp, pe, module, dest.info.addr, tdport, dest, ttl, g)
                    }
                    None => self.conns.new_template(&tp, dest.info.addr, tdport, dest, ttl, g),
                }
                .map_err(|_| SchedError::Failed)?
            }
        };
        let dest = ct.dest_arc().ok_or(SchedError::Failed)?;
        let dport = if to_svc_port && dest.info.port != [0, 0] {
            dest.info.port
        } else {
            p.vport
        };
        // The connection, not its template, is one-packet.
        self.conns
            .new_controlled(p, dest.info.addr, dport, &dest, timeout, one_packet_flags(pkt), ct, g)
            .map_err(|_| SchedError::Failed)
    }

    /// Re-routes a NAT reply or ICMP error sent by this host after its source changed
    /// (`ip_vs_route_me_harder`, with `snat_reroute`): policy routing may send it elsewhere
    /// than what its real-server source was routed by.
    fn reroute(&self, net: &Net, skb: &mut SkBuff<'_>, hook: InetHook, v6: bool) -> Result {
        if self.sysctl_values.get(ctl::SYSCTL_SNAT_REROUTE) == 0 {
            return Ok(());
        }
        if v6 {
            // Replies to remote clients only, routed other than to this host.
            if hook != InetHook::LocalIn && !skb.route6_is_local() {
                return skb.route_me_harder6(net);
            }
            return Ok(());
        }
        if hook == InetHook::LocalOut || (hook != InetHook::LocalIn && skb.route_is_local()) {
            skb.route_me_harder(net)
        } else {
            Ok(())
        }
    }

    /// Turns on IPv6 reassembly before the hooks (`nf_defrag_ipv6_enable`), once per
    /// namespace: IPVS sees whole IPv6 packets, which the stack fragments again on output.
    /// Called under the control mutex.
    pub(crate) fn enable_defrag6(&self, net: &Net) -> Result {
        if !self.defrag6.load(Relaxed) {
            net.nf_defrag_ipv6_enable()?;
            self.defrag6.store(true, Relaxed);
        }
        Ok(())
    }

    /// Whether tunnelled packets keep the DF bit and are checked against the tunnel's path
    /// MTU (`pmtu_disc`); otherwise they are fragmented as needed.
    fn pmtu_disc(&self) -> bool {
        self.sysctl_values.get(ctl::SYSCTL_PMTU_DISC) != 0
    }

    /// Counts a packet from a client of `cp` (`ip_vs_in_stats`).
    #[inline(always)]
    fn in_stats(&self, cp: &Conn, len: u32, g: &rcu::Guard) {
        // As upstream, nothing counts for a connection without an available server
        // (unbound, or its server removed).
        let Some(d) = cp.dest().filter(|d| d.is_available()) else {
            return;
        };
        if let Some(svc) = d.svc_stats(g) {
            Stats::count_in(&[&d.stats, svc, &self.stats], len);
        }
    }

    /// Counts a packet from the real server of `cp` (`ip_vs_out_stats`).
    fn out_stats(&self, cp: &Conn, len: u32, g: &rcu::Guard) {
        let Some(d) = cp.dest().filter(|d| d.is_available()) else {
            return;
        };
        if let Some(svc) = d.svc_stats(g) {
            Stats::count_out(&[&d.stats, svc, &self.stats], len);
        }
    }

    /// The timeouts `IP_VS_SO_GET_TIMEOUT` reports.
    /// The TCP LISTEN state's timeout, for expected connections.
    fn listen_timeout(&self) -> u32 {
        self.timeouts.tcp[proto_tcp::TcpState::Listen as usize].load(Relaxed)
    }

    pub(crate) fn timeouts(&self) -> ctl_config::TimeoutConfig {
        let s = |j: u32| j.checked_div(self.hz).unwrap_or(0) as i32;
        ctl_config::TimeoutConfig {
            tcp: s(self.timeouts.tcp[proto_tcp::TcpState::Established as usize].load(Relaxed)),
            tcp_fin: s(self.timeouts.tcp[proto_tcp::TcpState::FinWait as usize].load(Relaxed)),
            udp: s(self.timeouts.udp.load(Relaxed)),
        }
    }

    /// `ip_vs_set_timeout`: each value checked by [`ctl_config::TimeoutConfig::check`]; 0
    /// keeps a value.
    pub(crate) fn set_timeouts(&self, u: &ctl_config::TimeoutConfig) -> Result {
        let u = u.check(self.hz)?;
        let set = |a: &AtomicU32, secs: i32| {
            if secs != 0 {
                a.store(secs as u32 * self.hz, Relaxed);
            }
        };
        set(&self.timeouts.tcp[proto_tcp::TcpState::Established as usize], u.tcp);
        set(&self.timeouts.tcp[proto_tcp::TcpState::FinWait as usize], u.tcp_fin);
        set(&self.timeouts.udp, u.udp);
        Ok(())
    }

    /// `ip_vs_zero_all`, under the control mutex (`_ctl`), which keeps the services.
    pub(crate) fn zero_all(&self, _ctl: &CtlState) {
        self.stats.zero();
        let g = rcu::read_lock();
        for s in self.svc_table.get(&g).into_iter().flat_map(|t| t.iter()) {
            s.stats.zero();
            if let Some(l) = s.dests.get(&g) {
                for d in l.dests.iter() {
                    d.stats.zero();
                }
            }
        }
    }
}

/// Why no connection could be made for a new client.
enum SchedError {
    /// No real server is available: the client hears "port unreachable".
    NoDest,
    /// Out of memory or a race with an expiring template: the packet is dropped.
    Failed,
}

/// The connection tuple of the packet an ICMP error quotes. `reversed`: the quoted packet
/// travels opposite to the error, so its destination is the connection's client (errors
/// about replies) or its real server (errors about requests, looked up as replies are).
fn quoted_param(q: &Quoted, reversed: bool) -> ConnParam {
    let (c, cport, v, vport) = if reversed {
        (q.ip.daddr, q.dport, q.ip.saddr, q.sport)
    } else {
        (q.ip.saddr, q.sport, q.ip.daddr, q.dport)
    };
    ConnParam {
        af: AF_INET,
        protocol: Protocol::of(q.ip.protocol).map_or(q.ip.protocol, Protocol::conn_protocol),
        caddr: service::v4(c),
        cport,
        vaddr: service::v4(v),
        vport,
    }
}

/// A packet's network header, read into `ip` (all zeroes before: read in place, it is not
/// moved between the hook functions), and for TCP, UDP and SCTP its transport ports
/// (`None` if they cannot be read: see [`Protocol::parse_ports`]). `None` if the packet has
/// no route or no valid network header: not IPVS's.
#[inline(always)]
fn parse_packet(skb: &mut SkBuff<'_>, v6: bool, ip: &mut IpHdr) -> Option<Option<Ports>> {
    if !skb.has_route() {
        return None;
    }
    if v6 {
        *ip = parse_ip6(skb)?;
    } else {
        ip.fill_v4(&Ipv4::parse(skb.pull(20).ok()?)?);
    }
    Some(Protocol::of(ip.protocol).and_then(|pr| pr.parse_ports(skb, ip)))
}

/// What the hook functions of connections look at first: the namespace's state, whether
/// the packet is IPv6, its network header (read into `ip`, in the caller's frame) and its
/// ports (see [`parse_packet`]). `None` for a packet IPVS has no business with: in a
/// namespace without IPVS, or without a route or a valid network header. (Packets IPVS sent
/// on never come here: the hooks' [`Hooks::pass`] let them by.)
#[inline(always)]
fn hook_packet<'n>(
    skb: &mut SkBuff<'_>,
    state: &HookState<'n>,
    ip: &mut IpHdr,
) -> Option<(&'n Ipvs, bool, Option<Ports>)> {
    let ipvs = IPVS.get_rcu(state.net, state.rcu())?;
    let v6 = state.pf == pf::IPV6;
    let ports = parse_packet(skb, v6, ip)?;
    Some((ipvs, v6, ports))
}

impl Ipvs {
    /// Whether a packet at `hook` of protocol `protocol` may be a NAT real server's reply:
    /// at LOCAL_IN, only to a client on this host (see `ConnTable::local_clients`), unless
    /// `nat_icmp_send` looks at every one; ICMP errors are always checked.
    #[inline]
    fn may_be_reply(&self, hook: InetHook, protocol: u8) -> bool {
        hook != InetHook::LocalIn
            || protocol == IPPROTO_ICMP
            || protocol == IPPROTO_ICMPV6
            || self.conns.local_clients()
            || self.sysctl_values.get(ctl::SYSCTL_NAT_ICMP_SEND) != 0
    }
}

/// The hook functions at LOCAL_IN and LOCAL_OUT (see [`IN_HOOKS`]): a packet is checked as
/// a reply, then, unless that took it, as a request; the namespace's state is found from the
/// packet's.
struct LocalHooks;

impl Hooks for LocalHooks {
    // Packets IPVS sent or took already (its own on their way out at LOCAL_OUT): accepted
    // before anything else.
    const PASS: bool = true;

    #[inline(always)]
    fn pass(skb: &SkBuff<'_>) -> bool {
        skb.ipvs_property()
    }

    // Inlined into netfilter's callback: one call per packet and hook.
    #[inline(always)]
    fn hook<'a>(&self, mut skb: SkBuff<'a>, state: &HookState<'a>) -> Verdict<'a> {
        let mut ip = IpHdr::ZERO;
        let Some((ipvs, v6, ports)) = hook_packet(&mut skb, state, &mut ip) else {
            return Verdict::Accept(skb);
        };
        // Netfilter's read-side critical section, for both.
        let g = state.rcu();
        if ipvs.may_be_reply(state.hook, ip.protocol) {
            skb = match ipvs.ip_vs_out(state.net, skb, state.hook, v6, &ip, ports.as_ref(), g) {
                // Not a reply (a reply is marked as IPVS's): what upstream's request hook,
                // next in line, would see.
                Verdict::Accept(skb) if !skb.ipvs_property() => skb,
                v => return v,
            };
        }
        // A director that only backs up leaves requests to the stack.
        if ipvs.sync.backup_only() {
            return Verdict::Accept(skb);
        }
        ipvs.ip_vs_in(state.net, skb, state.hook, v6, &ip, ports, g)
    }
}

/// The hook function at LOCAL_OUT ([`LocalHooks`]), which lets the packets IPVS sends pass
/// ([`Hooks::pass`]).
pub(crate) fn local_out_hook() -> netfilter::HookFn {
    netfilter::Registration::<LocalHooks>::hook_fn()
}

/// The hook functions for replies routed through the director.
struct OutHooks;

impl Hooks for OutHooks {
    // Packets IPVS sent or took already (its own on their way out at LOCAL_OUT): accepted
    // before anything else.
    const PASS: bool = true;

    #[inline(always)]
    fn pass(skb: &SkBuff<'_>) -> bool {
        skb.ipvs_property()
    }

    // Inlined into netfilter's callback: one call per packet and hook.
    #[inline(always)]
    fn hook<'a>(&self, mut skb: SkBuff<'a>, state: &HookState<'a>) -> Verdict<'a> {
        let mut ip = IpHdr::ZERO;
        let Some((ipvs, v6, ports)) = hook_packet(&mut skb, state, &mut ip) else {
            return Verdict::Accept(skb);
        };
        ipvs.ip_vs_out(state.net, skb, state.hook, v6, &ip, ports.as_ref(), state.rcu())
    }
}

/// The hook function for ICMP errors routed through the director.
struct FwdIcmpHooks;

impl Hooks for FwdIcmpHooks {
    #[inline(always)]
    fn hook<'a>(&self, mut skb: SkBuff<'a>, state: &HookState<'a>) -> Verdict<'a> {
        let v6 = state.pf == pf::IPV6;
        // Every routed packet comes here: an IPv4 one that is not ICMP leaves after a look
        // at its protocol field, as upstream's.
        if !v6 && skb.pull(20).ok().and_then(|h| h.get(9).copied()) != Some(IPPROTO_ICMP) {
            return Verdict::Accept(skb);
        }
        let Some(ipvs) = IPVS.get(state.net) else {
            return Verdict::Accept(skb);
        };
        if ipvs.sync.backup_only() {
            return Verdict::Accept(skb);
        }
        match parse_ip(&mut skb, v6) {
            Some(ip) if ip.protocol == IPPROTO_ICMP && !v6 && !skb.ipvs_property() => {
                ipvs.in_icmp(state.net, skb, &ip, state.hook)
            }
            Some(ip) if ip.protocol == IPPROTO_ICMPV6 && v6 && !skb.ipvs_property() => {
                ipvs.in_icmp_v6(state.net, skb, &ip, state.hook)
            }
            _ => Verdict::Accept(skb),
        }
    }
}

/// Exported to scheduler modules through `exports.c` (`register_ip_vs_scheduler`); they call
/// it through `abi::Registration`.
///
/// # Safety
///
/// As [`sched::register`]: `ops` is null or a table kept valid and unchanged until it is
/// unregistered, whose functions keep the contract of `abi::SchedulerOps`.
#[no_mangle]
pub unsafe extern "C" fn ip_vs_register_scheduler(ops: *const abi::SchedulerOps) -> i32 {
    // SAFETY: The caller's guarantee is `sched::register`'s requirement.
    match unsafe { sched::register(ops) } {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// Exported to persistence-engine modules through `exports.c` (`register_ip_vs_pe`).
///
/// # Safety
///
/// As [`pe::register`]: `ops` is null or a table kept valid and unchanged until it is
/// unregistered, whose function keeps the contract of `pe_abi::PeOps`.
#[no_mangle]
pub unsafe extern "C" fn ip_vs_register_pe(ops: *const pe_abi::PeOps) -> i32 {
    // SAFETY: The caller's guarantee is `pe::register`'s requirement.
    match unsafe { pe::register(ops) } {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// Exported to persistence-engine modules through `exports.c` (`unregister_ip_vs_pe`).
#[no_mangle]
pub extern "C" fn ip_vs_unregister_pe(ops: *const pe_abi::PeOps) {
    pe::unregister(ops);
}

/// Exported to scheduler modules through `exports.c` (`unregister_ip_vs_scheduler`).
#[no_mangle]
pub extern "C" fn ip_vs_unregister_scheduler(ops: *const abi::SchedulerOps) {
    sched::unregister(ops);
}

/// Exported to application helper modules through `exports.c` (`register_ip_vs_app` and
/// `register_ip_vs_app_inc`); they call it through `app_abi::Registration`.
///
/// # Safety
///
/// As [`app::register`].
#[no_mangle]
pub unsafe extern "C" fn ip_vs_register_app(
    ops: *const app_abi::AppOps,
    module: *mut core::ffi::c_void,
    ports: *const u16,
    n: usize,
) -> i32 {
    // SAFETY: The caller's guarantee is `app::register`'s requirement.
    match unsafe { app::register(ops, module.cast(), ports, n) } {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// Exported to application helper modules through `exports.c` (`unregister_ip_vs_app`).
#[no_mangle]
pub extern "C" fn ip_vs_unregister_app(ops: *const app_abi::AppOps) {
    app::unregister(ops);
}

/// Device events: real servers' cached routes through a device going down or away are
/// dropped (`ip_vs_dst_event`).
struct DevEvents;

impl kernel::net::namespace::NetdevEvents for DevEvents {
    fn device_going(net: &Net) {
        let Some(ipvs) = IPVS.get(net) else {
            return;
        };
        let g = rcu::read_lock();
        if let Some(tab) = ipvs.svc_table.get(&g) {
            for s in tab.iter() {
                service::forget_routes(s, &g);
            }
        }
    }
}

struct IpVsModule {
    netdev: Option<kernel::net::namespace::NetdevNotifier>,
    genl: Option<kernel::net::genetlink::Registration<genl::IpvsFamily>>,
    sockopt: Option<SockoptRegistration<ctl::Ctl>>,
    pernet: Option<PernetRegistration<Ipvs>>,
    sched: Option<sched::Registry>,
    pe: Option<pe::Registry>,
    cache: Option<conn::ConnCache>,
}

impl kernel::Module for IpVsModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let mut m = Self {
            netdev: None,
            genl: None,
            sockopt: None,
            pernet: None,
            sched: None,
            pe: None,
            cache: None,
        };
        ctl_config::IPV6_ENABLED.store(kernel::net::namespace::ipv6_mod_enabled(), Relaxed);
        m.cache = Some(conn::ConnCache::new()?);
        m.sched = Some(sched::new_registry()?);
        m.pe = Some(pe::new_registry()?);
        m.pernet = Some(IPVS.register()?);
        m.sockopt = Some(SockoptRegistration::new(
            module,
            pf::IPV4,
            (uapi::BASE_CTL, uapi::set::MAX + 1),
            (uapi::BASE_CTL, uapi::get::MAX + 1),
        )?);
        m.genl = Some(genl::register(module)?);
        m.netdev = Some(kernel::net::namespace::NetdevNotifier::register::<DevEvents>()?);
        pr_info!(
            "ipvs: Connection hash table configured (size={}, memory={}Kbytes)\n",
            1u32 << conn_tab_bits(),
            (12u64 << conn_tab_bits()) / 1024
        );
        pr_info!("ipvs: Rust IPVS loaded.\n");
        Ok(m)
    }
}

/// Default of `sync_qlen_max`, as upstream: 1/32 of the buffer pages free now.
fn sync_qlen_max() -> u64 {
    kernel::meminfo::free_buffer_pages() / 32
}

/// The `conn_tab_bits` module parameter, clamped.
fn conn_tab_bits() -> u32 {
    // SAFETY: Reads a module parameter.
    unsafe { ip_vs_conn_tab_bits_param() as u32 }
}

impl Drop for IpVsModule {
    fn drop(&mut self) {
        // No new requests, then every namespace's state goes (hooks, services, connections),
        // then the RCU callbacks that free them run before their code and cache go away.
        self.netdev = None;
        self.genl = None;
        self.sockopt = None;
        self.pernet = None;
        rcu::barrier();
        self.sched = None;
        self.pe = None;
        self.cache = None;
        pr_info!("ipvs: Rust IPVS unloaded.\n");
    }
}
