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

use core::sync::atomic::{AtomicU32, Ordering::Relaxed};
use kernel::{
    alloc::flags::GFP_KERNEL,
    error::code::*,
    net::{
        namespace::{Net, Pernet, PernetData, PernetRegistration},
        netfilter::{self, pf, HookSpec, HookState, Hooks, InetHook, SockoptRegistration, Verdict},
        skbuff::SkBuff,
    },
    new_mutex,
    c_str,
    prelude::*,
    proc_fs::ProcNetEntry,
    sync::{rcu, rcu::RcuBox, Arc, Mutex},
    sysctl::NetSysctlTable,
    time::msecs_to_jiffies,
    timer::Timer,
};

mod abi;
mod conn;
mod ctl;
mod hash;
mod proto;
mod proto_tcp;
mod sched;
mod service;
mod stats;
mod uapi;
mod xmit;

use conn::{ConnParam, ConnTable, Expiry};
use proto::{Ipv4, Ports, IPPROTO_TCP, IPPROTO_UDP};
use service::{ServiceTable, Services, AF_INET};
use stats::Stats;
use uapi::conn_flags;

module! {
    type: IpVsModule,
    name: "ip_vs",
    author: "Rust IPVS developers",
    description: "IP Virtual Server (Rust implementation)",
    license: "GPL",
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

const NF_IP_PRI_NAT_SRC: i32 = 100;

const HOOKS: [HookSpec; 2] = [
    // Client requests to a virtual service.
    HookSpec {
        pf: pf::IPV4,
        hook: InetHook::LocalIn,
        priority: NF_IP_PRI_NAT_SRC - 1,
    },
    // Replies of NAT real servers.
    HookSpec {
        pf: pf::IPV4,
        hook: InetHook::Forward,
        priority: 100,
    },
];

/// Control-plane state of a namespace, under its mutex.
pub(crate) struct CtlState {
    pub(crate) services: Services,
    hooks: Option<netfilter::Registration<IpvsHooks>>,
    proc: Option<ProcNetEntry<ctl::ProcIpVs>>,
}

impl CtlState {
    /// Registers the hooks when the namespace has services, unregisters them when not.
    pub(crate) fn update_hooks(&mut self, net: &Net) -> Result {
        if self.services.len() == 0 {
            self.hooks = None;
        } else if self.hooks.is_none() {
            let data = Arc::new(IpvsHooks, GFP_KERNEL)?;
            // SAFETY: The registration lives in the namespace's `Ipvs`, whose `exit` drops it
            // before the namespace is destroyed.
            self.hooks = Some(unsafe { netfilter::Registration::new(net, &HOOKS, data)? });
        }
        Ok(())
    }
}

/// The IPVS state of one network namespace (upstream's `struct netns_ipvs`).
#[pin_data]
pub(crate) struct Ipvs {
    #[pin]
    pub(crate) ctl: Mutex<CtlState>,
    pub(crate) svc_table: RcuBox<ServiceTable>,
    pub(crate) conns: Arc<ConnTable>,
    #[pin]
    expiry: Timer<Expiry>,
    pub(crate) stats: Stats,
    tcp_timeouts: [AtomicU32; proto_tcp::NR_STATES],
    udp_timeout: AtomicU32,
    sysctl: NetSysctlTable,
    hz: u32,
}

const UDP_TIMEOUT_SECS: u32 = 5 * 60;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;

impl PernetData for Ipvs {
    fn init(net: &Net) -> impl PinInit<Self, Error> {
        let hz = msecs_to_jiffies(1000) as u32;
        try_pin_init!(Self {
            ctl <- new_mutex!(CtlState {
                services: Services::new(),
                hooks: None,
                // SAFETY: Dropped in `exit`, before the namespace is destroyed.
                proc: Some(unsafe { ProcNetEntry::new(net, c_str!("ip_vs"), 0o444)? }),
            }, "ipvs_ctl"),
            svc_table: RcuBox::new(None),
            conns: Arc::new(
                ConnTable::new(conn_tab_bits(), hz)?,
                GFP_KERNEL,
            )?,
            expiry <- Timer::new(Expiry { table: conns.clone() }),
            stats: Stats::default(),
            tcp_timeouts: proto_tcp::default_timeouts(hz),
            udp_timeout: AtomicU32::new(UDP_TIMEOUT_SECS * hz),
            // SAFETY: Dropped with `Ipvs` during the namespace's exit.
            sysctl: unsafe { NetSysctlTable::new(net, c_str!("net/ipv4/vs"), ctl::SYSCTLS)? },
            hz,
        })
    }

    fn started(&self, _net: &Net) {
        self.expiry.schedule_after(self.hz as u64);
    }

    fn exit(&self, _net: &Net) {
        let mut ctl = self.ctl.lock();
        ctl.proc = None;
        ctl.hooks = None;
        let _ = ctl.services.flush(&self.svc_table);
    }

    fn pernet() -> &'static Pernet<Self> {
        &IPVS
    }
}

/// Which service a new connection is for (`ip_vs_service_find`): a firewall-mark service
/// first, then <protocol, address, port>.
fn find_service<'a>(
    tab: &'a ServiceTable,
    mark: u32,
    ip: &Ipv4,
    ports: &Ports,
) -> Option<&'a Arc<service::Service>> {
    if mark != 0 {
        if let Some(s) = tab.find_fwmark(mark) {
            return Some(s);
        }
    }
    tab.find(ip.protocol as u16, &service::v4(ip.daddr), ports.dport)
}

fn parse(skb: &mut SkBuff<'_>) -> Option<(Ipv4, Ports)> {
    let ip = Ipv4::parse(skb.pull(20).ok()?)?;
    if ip.fragment {
        return None;
    }
    let l4 = proto::l4_len(ip.protocol)?;
    let h = skb.pull(ip.ihl + l4).ok()?;
    let ports = Ports::parse(ip.protocol, h.get(ip.ihl..)?)?;
    Some((ip, ports))
}

/// The packet's tuple: for a client packet the client is the source; for a reply the real
/// server is (see `ConnTable::out_get`).
fn conn_param(ip: &Ipv4, ports: &Ports) -> ConnParam {
    ConnParam {
        af: AF_INET,
        protocol: ip.protocol,
        caddr: service::v4(ip.saddr),
        cport: ports.sport,
        vaddr: service::v4(ip.daddr),
        vport: ports.dport,
    }
}

impl Ipvs {
    /// Client-to-service packets (`ip_vs_in_hook`).
    fn ip_vs_in<'a>(&self, net: &Net, mut skb: SkBuff<'a>) -> Verdict<'a> {
        let Some((ip, ports)) = parse(&mut skb) else {
            return Verdict::Accept(skb);
        };
        let g = rcu::read_lock();
        let p = conn_param(&ip, &ports);
        let mut found = self.conns.in_get(&p, &g);
        let expire_nodest = self.sysctl.get(ctl::SYSCTL_EXPIRE_NODEST_CONN) != 0;
        if let Some(c) = found {
            // A SYN reusing the client port of an old connection is scheduled anew
            // (`conn_reuse_mode`): no stall for the client, and the current servers.
            let reuse_mode = self.sysctl.get(ctl::SYSCTL_CONN_REUSE_MODE);
            if ip.protocol == IPPROTO_TCP
                && ports.tcp_flags & TCP_SYN != 0
                && ((expire_nodest && c.dest().info.weight() == 0)
                    || (reuse_mode != 0 && c.reusable(reuse_mode)))
            {
                if c.n_control() == 0 {
                    self.conns.expire_now(c);
                }
                found = None;
            }
        }
        if let Some(c) = found {
            // The connection's server was removed from its service.
            if !c.dest().is_available() {
                if !expire_nodest {
                    return Verdict::Drop(skb);
                }
                self.conns.expire_now(c);
                found = None;
            }
        }
        let cp = match found {
            Some(c) => c,
            None => {
                let Some(tab) = self.svc_table.get(&g) else {
                    return Verdict::Accept(skb);
                };
                let Some(svc) = find_service(tab, skb.mark(), &ip, &ports) else {
                    return Verdict::Accept(skb);
                };
                // Only a SYN starts a TCP connection; anything else is the local stack's.
                if ip.protocol == IPPROTO_TCP
                    && (ports.tcp_flags & TCP_SYN == 0 || ports.tcp_flags & TCP_RST != 0)
                {
                    return Verdict::Accept(skb);
                }
                let dest = match (svc.sched.get(&g), svc.dests.get(&g)) {
                    (Some(s), Some(l)) => s.schedule(l.infos(), 0).and_then(|i| l.dests.get(i)),
                    _ => None,
                };
                let Some(dest) = dest else {
                    // No server: tell the client the port is unreachable (`ip_vs_leave`).
                    skb.icmp_send(3, 3, 0);
                    return Verdict::Drop(skb);
                };
                let dport = if dest.info.port == [0, 0] {
                    ports.dport
                } else {
                    dest.info.port
                };
                let timeout = if ip.protocol == IPPROTO_UDP {
                    self.udp_timeout.load(Relaxed)
                } else {
                    self.tcp_timeouts[0].load(Relaxed)
                };
                match self.conns.new_conn(&p, dest.info.addr, dport, dest, timeout, &g) {
                    Ok(c) => {
                        self.stats.count_conn();
                        c
                    }
                    Err(_) => return Verdict::Drop(skb),
                }
            }
        };

        let len = skb.len();
        let d = cp.dest();
        d.stats.count_in(len);
        d.svc_stats.count_in(len);
        self.stats.count_in(len);
        cp.in_pkts.fetch_add(1, Relaxed);
        if ip.protocol == IPPROTO_TCP {
            cp.tcp_transition(false, ports.tcp_flags, &self.tcp_timeouts);
        } else {
            cp.refresh(self.udp_timeout.load(Relaxed));
        }

        match cp.fwd_method() {
            conn_flags::MASQ => xmit::nat_xmit(net, skb, &ip, cp),
            conn_flags::DROUTE => xmit::dr_xmit(net, skb, &ip, cp),
            conn_flags::TUNNEL => xmit::tunnel_xmit(net, skb, &ip, cp),
            conn_flags::LOCALNODE => Verdict::Accept(skb),
            _ => Verdict::Drop(skb),
        }
    }

    /// Replies from NAT real servers (`ip_vs_out_hook`).
    fn ip_vs_out<'a>(&self, mut skb: SkBuff<'a>) -> Verdict<'a> {
        let Some((ip, ports)) = parse(&mut skb) else {
            return Verdict::Accept(skb);
        };
        let g = rcu::read_lock();
        let p = conn_param(&ip, &ports);
        let Some(cp) = self.conns.out_get(&p, &g) else {
            return Verdict::Accept(skb);
        };
        if cp.fwd_method() != conn_flags::MASQ {
            return Verdict::Accept(skb);
        }
        let len = skb.len();
        let d = cp.dest();
        d.stats.count_out(len);
        d.svc_stats.count_out(len);
        self.stats.count_out(len);
        if ip.protocol == IPPROTO_TCP {
            cp.tcp_transition(true, ports.tcp_flags, &self.tcp_timeouts);
        } else {
            cp.refresh(self.udp_timeout.load(Relaxed));
        }
        xmit::snat_reply(skb, &ip, cp)
    }

    /// `IP_VS_SO_GET_TIMEOUT`.
    pub(crate) fn timeouts(&self) -> uapi::TimeoutUser {
        let s = |j: u32| (j / self.hz) as i32;
        uapi::TimeoutUser {
            tcp: s(self.tcp_timeouts[proto_tcp::TcpState::Established as usize].load(Relaxed)),
            tcp_fin: s(self.tcp_timeouts[proto_tcp::TcpState::FinWait as usize].load(Relaxed)),
            udp: s(self.udp_timeout.load(Relaxed)),
        }
    }

    /// `IP_VS_SO_SET_TIMEOUT` (`ip_vs_set_timeout`): 0 keeps a value.
    pub(crate) fn set_timeouts(&self, u: &uapi::TimeoutUser) -> Result {
        let max = i32::MAX / self.hz as i32;
        if [u.tcp, u.tcp_fin, u.udp].iter().any(|&t| t < 0 || t > max) {
            return Err(EINVAL);
        }
        let set = |a: &AtomicU32, secs: i32| {
            if secs != 0 {
                a.store(secs as u32 * self.hz, Relaxed);
            }
        };
        set(&self.tcp_timeouts[proto_tcp::TcpState::Established as usize], u.tcp);
        set(&self.tcp_timeouts[proto_tcp::TcpState::FinWait as usize], u.tcp_fin);
        set(&self.udp_timeout, u.udp);
        Ok(())
    }

    /// `ip_vs_zero_all`.
    pub(crate) fn zero_all(&self, ctl: &CtlState) {
        self.stats.zero();
        let g = rcu::read_lock();
        for s in ctl.services.iter() {
            s.stats.zero();
            if let Some(l) = s.dests.get(&g) {
                for d in l.dests.iter() {
                    d.stats.zero();
                }
            }
        }
    }
}

/// The netfilter hook functions; the namespace's state is found from the packet's namespace.
struct IpvsHooks;

impl Hooks for IpvsHooks {
    fn hook<'a>(&self, skb: SkBuff<'a>, state: &HookState<'a>) -> Verdict<'a> {
        let Some(ipvs) = IPVS.get(state.net) else {
            return Verdict::Accept(skb);
        };
        match state.hook {
            InetHook::LocalIn => ipvs.ip_vs_in(state.net, skb),
            InetHook::Forward => ipvs.ip_vs_out(skb),
            _ => Verdict::Accept(skb),
        }
    }
}

/// Exported to scheduler modules through `exports.c` (`register_ip_vs_scheduler`).
#[no_mangle]
pub extern "C" fn ip_vs_register_scheduler(ops: *const abi::SchedulerOps) -> i32 {
    // SAFETY: Scheduler modules pass a table they keep until they unregister it.
    match unsafe { sched::register(ops) } {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// Exported to scheduler modules through `exports.c` (`unregister_ip_vs_scheduler`).
#[no_mangle]
pub extern "C" fn ip_vs_unregister_scheduler(ops: *const abi::SchedulerOps) {
    sched::unregister(ops);
}

struct IpVsModule {
    sockopt: Option<SockoptRegistration<ctl::Ctl>>,
    pernet: Option<PernetRegistration<Ipvs>>,
    sched: Option<sched::Registry>,
    cache: Option<conn::ConnCache>,
}

impl kernel::Module for IpVsModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let mut m = Self {
            sockopt: None,
            pernet: None,
            sched: None,
            cache: None,
        };
        m.cache = Some(conn::ConnCache::new()?);
        m.sched = Some(sched::Registry::new()?);
        m.pernet = Some(IPVS.register()?);
        m.sockopt = Some(SockoptRegistration::new(
            module,
            pf::IPV4,
            (uapi::BASE_CTL, uapi::set::MAX + 1),
            (uapi::BASE_CTL, uapi::get::MAX + 1),
        )?);
        pr_info!(
            "ipvs: Connection hash table configured (size={}, memory={}Kbytes)\n",
            1u32 << conn_tab_bits(),
            (8u64 << conn_tab_bits()) / 1024
        );
        pr_info!("ipvs: Rust IPVS loaded.\n");
        Ok(m)
    }
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
        self.sockopt = None;
        self.pernet = None;
        rcu::barrier();
        self.sched = None;
        self.cache = None;
        pr_info!("ipvs: Rust IPVS unloaded.\n");
    }
}
