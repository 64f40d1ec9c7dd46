// SPDX-License-Identifier: GPL-2.0

//! The control interface: the IPVS socket options ipvsadm uses, `/proc/net/ip_vs` and the
//! `/proc/sys/net/ipv4/vs` sysctls.
//!
//! Every request is checked as upstream checks it, in the same order, so that each kind of
//! bad input fails with the same errno: capability, command range, exact argument length,
//! copy, then the request's contents. The contents are decoded into the configuration types
//! of `ctl_config.rs` (`uapi.rs` decodes, `ctl_config.rs` checks) and only those reach the
//! service operations.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_ctl.c` (`do_ip_vs_set_ctl`, `do_ip_vs_get_ctl`,
//! `ip_vs_info_seq_show`, `vs_vars`)

use crate::{
    conn,
    ctl_config::{self, AF_INET6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP},
    proto::Ip6Full,
    service::{self, Service},
    uapi::{
        self, get, set, DaemonUser, DestEntry, DestUser, GetDests, ServiceEntry, ServiceUser,
        SetRequest,
    },
    Ipvs, IPVS,
};
use core::{fmt::Write, sync::atomic::Ordering::Relaxed};
use kernel::{
    alloc::{flags::GFP_ATOMIC, KVec},
    error::code::*,
    net::{namespace::Net, netfilter::{SockoptArg, SockoptOps}},
    c_str, fmt,
    prelude::*,
    str::CString,
    proc_fs::{NetSeqIter, NetSeqShow, SeqCursor, SeqFile},
    sync::{rcu, Arc},
    sysctl::{IntSysctl, Kind},
    uaccess::{UserPtr, UserSlice},
};

/// A sysctl taking any `int`, as upstream's plain `proc_dointvec` ones.
const fn any_int(name: &'static kernel::str::CStr, default: i32) -> IntSysctl {
    IntSysctl {
        name,
        default,
        kind: Kind::Int {
            min: i32::MIN,
            max: i32::MAX,
        },
        mode: 0o644,
        unpriv_ro: false,
        on_write: None,
    }
}

/// A sysctl taking `min..=max`; `on_write` runs when a write changes it.
const fn ranged(
    name: &'static kernel::str::CStr,
    default: i32,
    min: i32,
    max: i32,
    on_write: Option<fn(&Net, usize)>,
) -> IntSysctl {
    IntSysctl {
        name,
        default,
        kind: Kind::Int { min, max },
        mode: 0o644,
        unpriv_ro: false,
        on_write,
    }
}

/// A sysctl of another kind.
const fn other(name: &'static kernel::str::CStr, default: i32, kind: Kind, mode: u16) -> IntSysctl {
    IntSysctl {
        name,
        default,
        kind,
        mode,
        unpriv_ro: false,
        on_write: None,
    }
}

/// As `e`, but read-only in a namespace an unprivileged user owns, as upstream makes the
/// settings that reach beyond the namespace (memory for sync queues and sockets, estimation
/// work).
const fn priv_only(e: IntSysctl) -> IntSysctl {
    IntSysctl { unpriv_ro: true, ..e }
}

/// `/proc/sys/net/ipv4/vs/`: upstream's sysctls (`vs_vars`) with their names, defaults and
/// accepted values, except `est_cpulist` (there are no estimator kthreads to place). The
/// `sync_*` ones and `backup_only` act on the sync daemons ([`crate::sync`]); `sync_ports`
/// counts when a namespace's first daemon starts. Those whose upstream behaviour is not
/// implemented refuse the writes that would ask for it (`EINVAL`): `conntrack` (0, the
/// behaviour implemented: forwarded packets are untracked), `cache_bypass` (connections
/// without a real server) and `schedule_icmp` (scheduling on an ICMP error) accept only 0;
/// `est_nice` is read-only (no estimator kthreads).
pub(crate) const SYSCTLS: &[IntSysctl] = &[
    any_int(c_str!("amemthresh"), 1024),
    any_int(c_str!("am_droprate"), 10),
    ranged(c_str!("drop_entry"), 0, 0, 3, Some(defense_changed)),
    ranged(c_str!("drop_packet"), 0, 0, 3, Some(defense_changed)),
    ranged(c_str!("conntrack"), 0, 0, 0, None),
    ranged(c_str!("secure_tcp"), 0, 0, 3, Some(defense_changed)),
    any_int(c_str!("snat_reroute"), 1),
    ranged(c_str!("sync_version"), 1, 0, 1, None),
    other(c_str!("sync_ports"), 1, Kind::PowerOfTwo, 0o644),
    any_int(c_str!("sync_persist_mode"), 0),
    priv_only(other(c_str!("sync_qlen_max"), 0, Kind::ULong, 0o644)),
    priv_only(any_int(c_str!("sync_sock_size"), 0)),
    ranged(c_str!("cache_bypass"), 0, 0, 0, None),
    any_int(c_str!("expire_nodest_conn"), 0),
    any_int(c_str!("sloppy_tcp"), 0),
    any_int(c_str!("sloppy_sctp"), 0),
    any_int(c_str!("expire_quiescent_template"), 0),
    other(c_str!("sync_threshold"), 3, Kind::Threshold { second: 50 }, 0o644),
    other(c_str!("sync_refresh_period"), 0, Kind::Jiffies, 0o644),
    ranged(c_str!("sync_retries"), 0, 0, 3, None),
    any_int(c_str!("nat_icmp_send"), 0),
    any_int(c_str!("pmtu_disc"), 1),
    any_int(c_str!("backup_only"), 0),
    any_int(c_str!("conn_reuse_mode"), 1),
    ranged(c_str!("schedule_icmp"), 0, 0, 0, None),
    any_int(c_str!("ignore_tunneled"), 0),
    priv_only(any_int(c_str!("run_estimation"), 1)),
    other(c_str!("est_nice"), 0, Kind::Int { min: -20, max: 19 }, 0o444),
    priv_only(ranged(
        c_str!("conn_lfactor"),
        conn::LFACTOR_DEFAULT,
        conn::LFACTOR_MIN,
        conn::LFACTOR_MAX,
        None,
    )),
    IntSysctl {
        on_write: Some(conn_max_changed),
        ..other(c_str!("conn_max"), conn::CONN_MAX_LIMIT, Kind::Limit { max: conn::CONN_MAX_LIMIT }, 0o644)
    },
    priv_only(ranged(
        c_str!("svc_lfactor"),
        service::SVC_LFACTOR_DEFAULT,
        service::SVC_LFACTOR_MIN,
        service::SVC_LFACTOR_MAX,
        Some(svc_lfactor_changed),
    )),
];
/// Index of `conn_lfactor` in [`SYSCTLS`].
pub(crate) const SYSCTL_CONN_LFACTOR: usize = 28;
/// Index of `conn_max` in [`SYSCTLS`].
pub(crate) const SYSCTL_CONN_MAX: usize = 29;

/// The initial namespace's `conn_max`, which a new namespace starts with (both limits).
pub(crate) static INIT_CONN_MAX: core::sync::atomic::AtomicI32 =
    core::sync::atomic::AtomicI32::new(conn::CONN_MAX_LIMIT);

fn conn_max_changed(net: &Net, index: usize) {
    if net.is_init() {
        if let Ok(ipvs) = ipvs_of(net) {
            INIT_CONN_MAX.store(ipvs.sysctl_values.get(index), Relaxed);
        }
    }
}
/// Index of `amemthresh` in [`SYSCTLS`].
pub(crate) const SYSCTL_AMEMTHRESH: usize = 0;
/// Index of `am_droprate` in [`SYSCTLS`].
pub(crate) const SYSCTL_AM_DROPRATE: usize = 1;
/// Index of `drop_entry` in [`SYSCTLS`].
pub(crate) const SYSCTL_DROP_ENTRY: usize = 2;
/// Index of `drop_packet` in [`SYSCTLS`].
pub(crate) const SYSCTL_DROP_PACKET: usize = 3;
/// Index of `secure_tcp` in [`SYSCTLS`].
pub(crate) const SYSCTL_SECURE_TCP: usize = 5;
/// Index of `snat_reroute` in [`SYSCTLS`].
pub(crate) const SYSCTL_SNAT_REROUTE: usize = 6;
/// Index of `sync_version` in [`SYSCTLS`].
pub(crate) const SYSCTL_SYNC_VERSION: usize = 7;
/// Index of `sync_ports` in [`SYSCTLS`].
pub(crate) const SYSCTL_SYNC_PORTS: usize = 8;
/// Index of `sync_persist_mode` in [`SYSCTLS`].
pub(crate) const SYSCTL_SYNC_PERSIST_MODE: usize = 9;
/// Index of `sync_qlen_max` in [`SYSCTLS`].
pub(crate) const SYSCTL_SYNC_QLEN_MAX: usize = 10;
/// Index of `sync_sock_size` in [`SYSCTLS`].
pub(crate) const SYSCTL_SYNC_SOCK_SIZE: usize = 11;
/// Index of `sync_threshold` (threshold and period) in [`SYSCTLS`].
pub(crate) const SYSCTL_SYNC_THRESHOLD: usize = 17;
/// Index of `sync_refresh_period` in [`SYSCTLS`].
pub(crate) const SYSCTL_SYNC_REFRESH_PERIOD: usize = 18;
/// Index of `sync_retries` in [`SYSCTLS`].
pub(crate) const SYSCTL_SYNC_RETRIES: usize = 19;
/// Index of `backup_only` in [`SYSCTLS`].
pub(crate) const SYSCTL_BACKUP_ONLY: usize = 22;
/// Index of `expire_nodest_conn` in [`SYSCTLS`].
pub(crate) const SYSCTL_EXPIRE_NODEST_CONN: usize = 13;
/// Index of `sloppy_tcp` in [`SYSCTLS`].
pub(crate) const SYSCTL_SLOPPY_TCP: usize = 14;
/// Index of `sloppy_sctp` in [`SYSCTLS`].
pub(crate) const SYSCTL_SLOPPY_SCTP: usize = 15;
/// Index of `expire_quiescent_template` in [`SYSCTLS`].
pub(crate) const SYSCTL_EXPIRE_QUIESCENT_TEMPLATE: usize = 16;
/// Index of `nat_icmp_send` in [`SYSCTLS`].
pub(crate) const SYSCTL_NAT_ICMP_SEND: usize = 20;
/// Index of `pmtu_disc` in [`SYSCTLS`].
pub(crate) const SYSCTL_PMTU_DISC: usize = 21;
/// Index of `conn_reuse_mode` in [`SYSCTLS`].
pub(crate) const SYSCTL_CONN_REUSE_MODE: usize = 23;
/// Index of `ignore_tunneled` in [`SYSCTLS`].
pub(crate) const SYSCTL_IGNORE_TUNNELED: usize = 25;
/// Index of `run_estimation` in [`SYSCTLS`].
pub(crate) const SYSCTL_RUN_ESTIMATION: usize = 26;

/// Index of `svc_lfactor` in [`SYSCTLS`].
pub(crate) const SYSCTL_SVC_LFACTOR: usize = 30;

/// A write changed `svc_lfactor`: the service table takes the size the new load factor
/// gives it at once (upstream resizes from a work item soon after).
fn svc_lfactor_changed(net: &Net, _index: usize) {
    let Some(ipvs) = IPVS.get(net) else {
        return;
    };
    let lfactor = ipvs.sysctl_values.get(SYSCTL_SVC_LFACTOR);
    let ctl = ipvs.ctl.lock();
    // Short of memory, the table keeps its size until the next change of services.
    let _ = ctl.services.refit(&ipvs.svc_table, lfactor);
}

/// A write changed `drop_entry`, `drop_packet` or `secure_tcp`: the defense levels are
/// recomputed at once, as upstream's `proc_do_defense_mode` does.
fn defense_changed(net: &Net, _index: usize) {
    if let Some(ipvs) = IPVS.get(net) {
        ipvs.defense.update();
    }
}

/// The socket option handlers.
pub(crate) struct Ctl;

fn ipvs_of(net: &Net) -> Result<&Ipvs> {
    IPVS.get(net).ok_or(ENOENT)
}

fn version_string(ipvs: &Ipvs) -> Result<CString> {
    let v = uapi::VERSION_CODE;
    Ok(CString::try_from_fmt(fmt!(
        "IP Virtual Server version {}.{}.{} (size={})",
        (v >> 16) & 0xff,
        (v >> 8) & 0xff,
        v & 0xff,
        ipvs.conns.max_size()
    ))?)
}

impl SockoptOps for Ctl {
    fn set(net: &Net, cmd: i32, arg: &SockoptArg) -> Result {
        if !net.net_admin_capable() {
            return Err(EPERM);
        }
        if !(uapi::BASE_CTL..=set::MAX).contains(&cmd) {
            return Err(EINVAL);
        }
        let len = uapi::set_arglen(cmd);
        if arg.len() != len {
            return Err(EINVAL);
        }
        let mut buf = [0u8; uapi::MAX_SET_ARGLEN];
        arg.read(&mut buf[..len])?;
        let ipvs = ipvs_of(net)?;

        if cmd == set::STARTDAEMON || cmd == set::STOPDAEMON {
            return sync_daemon(net, cmd, &buf[..uapi::DAEMON_USER_LEN]);
        }

        let mut ctl = ipvs.ctl.lock();
        if cmd == set::FLUSH {
            ctl.services.flush(&ipvs.svc_table)?;
            ctl.update_hooks(net)?;
            return Ok(());
        }
        if cmd == set::TIMEOUT {
            return ipvs.set_timeouts(&uapi::TimeoutUser::decode(&buf[..len]).config());
        }
        if len == 0 {
            return Err(EINVAL);
        }
        let usvc = ServiceUser::decode(&buf[..uapi::SERVICE_USER_LEN]);
        let udest = DestUser::decode(buf.get(uapi::SERVICE_USER_LEN..).unwrap_or(&[]));
        let (key, op) = match SetRequest::decode(cmd, &usvc, &udest)? {
            SetRequest::ZeroAll => {
                ipvs.zero_all(&ctl);
                return Ok(());
            }
            SetRequest::Service { key, op } => (key, op),
        };
        // Upstream finds the service by its key alone: ADD fails with EEXIST when the key
        // (a firewall mark, say) is taken under another protocol, while the other commands
        // only act on a service of the protocol they name (ESRCH otherwise).
        let found = ctl.services.lookup(&key, &ipvs.svc_table);
        let svc = match op {
            ctl_config::ServiceOp::Add(_) => found,
            _ => found.filter(|s| s.protocol == key.protocol()),
        };
        run_service_op(net, ipvs, &mut ctl, svc, op)
    }

    fn get(net: &Net, cmd: i32, user: UserPtr, len: &mut i32) -> Result {
        if !net.net_admin_capable() {
            return Err(EPERM);
        }
        if !(uapi::BASE_CTL..=get::MAX).contains(&cmd) {
            return Err(EINVAL);
        }
        let copylen = uapi::get_arglen(cmd);
        if *len < copylen as i32 {
            return Err(EINVAL);
        }
        let mut arg = [0u8; uapi::MAX_GET_ARGLEN];
        UserSlice::new(user, copylen)
            .reader()
            .read_slice(&mut arg[..copylen])
            .map_err(|_| EFAULT)?;
        let ipvs = ipvs_of(net)?;
        let write = |off: usize, data: &[u8]| -> Result {
            UserSlice::new(user + off, data.len())
                .writer()
                .write_slice(data)
                .map_err(|_| EFAULT)
        };

        if cmd == get::DAEMON {
            // The master, then the backup, zeroed when not running.
            let mut out = [0u8; 2 * uapi::DAEMON_USER_LEN];
            let states = [crate::sync::STATE_MASTER, crate::sync::STATE_BACKUP];
            for ((c, state), o) in ipvs.sync.configs().iter().zip(states).zip(out.chunks_mut(uapi::DAEMON_USER_LEN)) {
                if let Some(c) = c {
                    let mut ifn = [0u8; uapi::IFNAME_MAXLEN];
                    for (d, s) in ifn.iter_mut().zip(c.mcast_ifn.as_bytes()) {
                        *d = *s;
                    }
                    let u = DaemonUser { state: state as i32, mcast_ifn: ifn, syncid: i32::from(c.syncid) };
                    o.copy_from_slice(&u.encode());
                }
            }
            return write(0, &out);
        }
        let ctl = ipvs.ctl.lock();
        match cmd {
            get::VERSION => {
                let s = version_string(ipvs)?;
                write(0, s.as_bytes_with_nul())?;
                *len = s.as_bytes_with_nul().len() as i32;
                Ok(())
            }
            get::INFO => write(
                0,
                // The socket options know IPv4 services only.
                &uapi::encode_getinfo(uapi::VERSION_CODE, ipvs.conns.max_size(), ctl.services.len_v4() as u32),
            ),
            get::SERVICES => {
                let n = u32::from_ne_bytes([arg[0], arg[1], arg[2], arg[3]]);
                if *len as usize != uapi::get_services_len(n) {
                    return Err(EINVAL);
                }
                // Encode under RCU, copy to user space outside it (copies may fault and sleep);
                // the room is made before, as the control mutex keeps the number of services.
                let want = (n as usize).min(ctl.services.len_v4());
                let mut out = KVec::with_capacity(want, GFP_KERNEL)?;
                {
                    let g = rcu::read_lock();
                    if let Some(table) = ipvs.svc_table.get(&g) {
                        for s in table.iter().filter(|s| s.af == service::AF_INET).take(want) {
                            out.push(service_entry(s, ipvs.conns.hz(), &g).encode(), GFP_ATOMIC)?;
                        }
                    }
                }
                for (i, e) in out.iter().enumerate() {
                    write(uapi::GET_SERVICES_LEN + i * uapi::SERVICE_ENTRY_LEN, e)?;
                }
                Ok(())
            }
            get::SERVICE => {
                let key = ServiceUser::decode(&arg).key();
                let svc = ctl.services.lookup(&key, &ipvs.svc_table).ok_or(ESRCH)?;
                let e = service_entry(&svc, ipvs.conns.hz(), &rcu::read_lock()).encode();
                write(0, &e)
            }
            get::DESTS => {
                let req = GetDests::decode(&arg[..uapi::GET_DESTS_LEN]);
                if *len as usize != req.full_len() {
                    return Err(EINVAL);
                }
                let svc = ctl.services.lookup(&req.key(), &ipvs.svc_table).ok_or(ESRCH)?;
                let mut out = KVec::new();
                {
                    let g = rcu::read_lock();
                    if let Some(list) = svc.dests.get(&g) {
                        // Real servers of the other family are not listed (nor counted).
                        let same_af = |d: &&Arc<service::Dest>| d.info.af == svc.af;
                        for d in list.dests.iter().filter(same_af).take(req.num_dests as usize) {
                            let e = DestEntry {
                                addr: service::as_v4(&d.info.addr),
                                port: d.info.port,
                                conn_flags: d.conn_flags.load(Relaxed),
                                weight: d.info.weight(),
                                u_threshold: d.info.u_threshold.load(Relaxed),
                                l_threshold: d.info.l_threshold.load(Relaxed),
                                activeconns: d.info.activeconns(),
                                inactconns: d.info.inactconns(),
                                persistconns: d.info.persistconns.load(Relaxed),
                                stats: d.stats.to_user(),
                            };
                            out.push(e.encode(), GFP_ATOMIC)?;
                        }
                    }
                }
                for (i, e) in out.iter().enumerate() {
                    write(uapi::GET_DESTS_LEN + i * uapi::DEST_ENTRY_LEN, e)?;
                }
                Ok(())
            }
            get::TIMEOUT => write(0, &uapi::TimeoutUser::from_config(&ipvs.timeouts()).encode()),
            _ => Err(EINVAL),
        }
    }
}

/// Runs `op` on `svc`, the service its request named if it exists, whatever transport
/// carried the request: `ESRCH` without a service unless `op` adds it, `EEXIST` if it adds
/// one that exists; each configuration is checked ([`ctl_config`]) at the point upstream
/// checks it, once the service is found.
pub(crate) fn run_service_op(
    net: &Net,
    ipvs: &Ipvs,
    ctl: &mut crate::CtlState,
    svc: Option<Arc<Service>>,
    op: ctl_config::ServiceOp,
) -> Result {
    use ctl_config::ServiceOp as Op;
    let Some(s) = svc else {
        return match op {
            Op::Add(c) => {
                let c = c.check()?;
                ctl.services.add(&c, &ipvs.svc_table)?;
                // Upstream turns reassembly on just before it adds an IPv6 service; that
                // can fail only short of memory, and then the service stays, unused.
                let hooked = ctl.update_hooks(net);
                if c.key.af() == ctl_config::Af::Inet6 {
                    ipvs.enable_defrag6(net)?;
                }
                hooked
            }
            _ => Err(ESRCH),
        };
    };
    match op {
        Op::Add(_) => Err(EEXIST),
        Op::Edit(c) => ctl.services.edit(&s, &c.check()?),
        Op::Del => {
            ctl.services.del(&s, &ipvs.svc_table)?;
            ctl.update_hooks(net)
        }
        Op::Zero => {
            zero_service(&s);
            Ok(())
        }
        Op::AddDest(d) => ctl.services.add_dest(net, &s, &d.check()?, || ipvs.enable_defrag6(net)),
        Op::EditDest(d) => service::edit_dest(&s, &d.check()?),
        Op::DelDest(d) => service::del_dest(&s, &d),
    }
}

/// `IP_VS_SO_SET_STARTDAEMON`/`STOPDAEMON`.
fn sync_daemon(net: &Net, cmd: i32, arg: &[u8]) -> Result {
    let dm = DaemonUser::decode(arg);
    if cmd == set::STOPDAEMON {
        return stop_daemon(net, dm.state);
    }
    start_daemon(net, &dm.config()?)
}

/// `start_sync_thread` for both transports: its checks in its order (the interface, then
/// the state), then the daemon's start (`EEXIST` if that role runs already).
pub(crate) fn start_daemon(net: &Net, cfg: &ctl_config::DaemonConfig) -> Result {
    let role = cfg.check_start(|ifn| {
        let name = kernel::str::CStr::from_bytes_with_nul(ifn.as_bytes_with_nul()).map_err(|_| EINVAL)?;
        if net.has_device(name) {
            Ok(())
        } else {
            Err(ENODEV)
        }
    })?;
    ipvs_of(net)?.sync.start(net, cfg, role)
}

/// `stop_sync_thread` for both transports: `EINVAL` for an unknown state, `ESRCH` if that
/// daemon does not run.
pub(crate) fn stop_daemon(net: &Net, state: i32) -> Result {
    let role = ctl_config::DaemonState::from_raw(state)?;
    ipvs_of(net)?.sync.stop(role)
}

/// A service as `IP_VS_SO_GET_SERVICE(S)` reports it; the timeout is upstream's stored
/// jiffies divided by `HZ` (see [`Service::timeout_jiffies`]).
fn service_entry(s: &Service, hz: u32, g: &rcu::Guard) -> ServiceEntry {
    ServiceEntry {
        svc: ServiceUser {
            protocol: s.protocol,
            addr: service::as_v4(&s.addr),
            port: s.port,
            fwmark: s.fwmark,
            sched_name: *s.sched_name(g).field(),
            flags: s.flags.load(Relaxed),
            timeout: s.timeout_jiffies(hz) / hz.max(1),
            netmask: s.netmask.load(Relaxed).to_ne_bytes(),
        },
        num_dests: s.num_dests.load(Relaxed),
        stats: s.stats.to_user(),
    }
}

fn zero_service(s: &Service) {
    s.stats.zero();
    let g = rcu::read_lock();
    if let Some(l) = s.dests.get(&g) {
        for d in l.dests.iter() {
            d.stats.zero();
        }
    }
}

/// `/proc/net/ip_vs`.
pub(crate) struct ProcIpVs;

/// Upstream's name of an IP protocol in the `/proc` tables (`ip_vs_proto_name`): `IP_<n>`
/// for those it has no name for (an AH connection or a template of any protocol that a
/// master synced).
pub(crate) struct ProtoName(pub(crate) u16);

impl core::fmt::Display for ProtoName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = match self.0 {
            0 => "IP",
            IPPROTO_TCP => "TCP",
            IPPROTO_UDP => "UDP",
            IPPROTO_SCTP => "SCTP",
            1 => "ICMP", // IPPROTO_ICMP
            58 => "ICMPv6", // IPPROTO_ICMPV6
            // At least four characters: the column width of 3 never pads it.
            p => return write!(f, "IP_{p}"),
        };
        f.pad(name)
    }
}

/// Upstream's name of a forwarding method (`ip_vs_fwd_name`).
pub(crate) fn fwd_name(flags: u32) -> &'static str {
    match flags & uapi::conn_flags::FWD_MASK {
        uapi::conn_flags::LOCALNODE => "Local",
        uapi::conn_flags::TUNNEL => "Tunnel",
        uapi::conn_flags::DROUTE => "Route",
        _ => "Masq",
    }
}

impl NetSeqIter for ProcIpVs {
    fn header(net: &Net, m: &mut SeqFile) {
        let Ok(ipvs) = ipvs_of(net) else {
            return;
        };
        if let Ok(s) = version_string(ipvs) {
            let _ = writeln!(m, "{}", s.to_str().unwrap_or(""));
        }
        let _ = writeln!(m, "Prot LocalAddress:Port Scheduler Flags");
        let _ = writeln!(m, "  -> RemoteAddress:Port Forward Weight ActiveConn InActConn");
    }

    fn seek(net: &Net, cur: &mut SeqCursor) -> bool {
        let Ok(ipvs) = ipvs_of(net) else {
            return false;
        };
        let g = rcu::read_lock();
        ipvs.svc_table.get(&g).is_some_and(|t| t.seek(cur))
    }

    fn show(net: &Net, cur: &SeqCursor, m: &mut SeqFile) {
        let Ok(ipvs) = ipvs_of(net) else {
            return;
        };
        let g = rcu::read_lock();
        let Some(svc) = ipvs.svc_table.get(&g).and_then(|t| t.at(cur)) else {
            return;
        };
        let name = svc.sched_name(&g);
        let name = core::str::from_utf8(name.as_bytes()).unwrap_or("?");
        let flags = svc.flags.load(Relaxed);
        let ops = if flags & uapi::svc_flags::ONEPACKET != 0 { "ops " } else { "" };
        if svc.fwmark != 0 {
            let _ = write!(m, "FWM  {:08X} {} {}", svc.fwmark, name, ops);
        } else if svc.af == AF_INET6 {
            // Upstream has no "ops" column for IPv6 services.
            let _ = write!(
                m,
                "{}  [{}]:{:04X} {} ",
                ProtoName(svc.protocol),
                Ip6Full(&svc.addr),
                u16::from_be_bytes(svc.port),
                name
            );
        } else {
            let _ = write!(
                m,
                "{}  {:08X}:{:04X} {} {} ",
                ProtoName(svc.protocol),
                u32::from_be_bytes(service::as_v4(&svc.addr)),
                u16::from_be_bytes(svc.port),
                name,
                ops
            );
        }
        if flags & uapi::svc_flags::PERSISTENT != 0 {
            // Upstream prints the timeout in jiffies here, as a signed `int`.
            let _ = writeln!(
                m,
                "persistent {} {:08X}",
                svc.timeout_jiffies(ipvs.conns.hz()) as i32,
                u32::from_be_bytes(svc.netmask.load(Relaxed).to_ne_bytes())
            );
        } else {
            let _ = writeln!(m);
        }
        if let Some(l) = svc.dests.get(&g) {
            for d in l.dests.iter() {
                if d.info.af == AF_INET6 {
                    let _ = write!(m, "  -> [{}]:", Ip6Full(&d.info.addr));
                } else {
                    let _ = write!(m, "  -> {:08X}:", u32::from_be_bytes(service::as_v4(&d.info.addr)));
                }
                let _ = writeln!(
                    m,
                    "{:04X}      {:<7} {:<6} {:<10} {:<10}",
                    u16::from_be_bytes(d.info.port),
                    fwd_name(d.conn_flags.load(Relaxed)),
                    d.info.weight(),
                    d.info.activeconns(),
                    d.info.inactconns()
                );
            }
        }
    }
}

/// `/proc/net/ip_vs_conn`: the connection table as `ipvsadm -Lc` reads it.
pub(crate) struct ProcIpVsConn;

/// `/proc/net/ip_vs_conn_sync`: the same table with each entry's origin (`LOCAL`, or `SYNC`
/// for entries a backup learned from a master's sync daemon) and no persistence-engine
/// columns.
pub(crate) struct ProcIpVsConnSync;

/// The header of the connection table in upstream's format, with the origin column or
/// without.
fn conns_header(m: &mut SeqFile, with_origin: bool) {
    let header = if with_origin {
        "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Origin Expires"
    } else {
        "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData"
    };
    let _ = writeln!(m, "{header}");
}

/// Writes the connection at `cur` in upstream's format (nothing if it has gone).
fn show_conn(net: &Net, cur: &SeqCursor, m: &mut SeqFile, with_origin: bool) {
    let Ok(ipvs) = ipvs_of(net) else {
        return;
    };
    let hz = u64::from(ipvs.conns.hz().max(1));
    let now = kernel::timer::jiffies_64();
    let g = rcu::read_lock();
    // A one-packet connection is in the table only while its datagram is sent; upstream
    // never hashes it, so never lists it.
    let Some(c) = ipvs.conns.nth(cur.bucket, cur.index, &g).filter(|c| !c.is_one_packet()) else {
        return;
    };
    let _ = write!(m, "{:<3} ", ProtoName(u16::from(c.protocol)));
    if u16::from(c.af) == AF_INET6 {
        let _ = write!(
            m,
            "{} {:04X} {} {:04X} ",
            Ip6Full(&c.caddr),
            u16::from_be_bytes(c.cport),
            Ip6Full(&c.vaddr),
            u16::from_be_bytes(c.vport)
        );
    } else {
        let _ = write!(
            m,
            "{:08X} {:04X} {:08X} {:04X} ",
            u32::from_be_bytes(service::as_v4(&c.caddr)),
            u16::from_be_bytes(c.cport),
            u32::from_be_bytes(service::as_v4(&c.vaddr)),
            u16::from_be_bytes(c.vport)
        );
    }
    // The real server's own family (`cp->daf`): it differs in mixed-family tunnels.
    if c.daf() == AF_INET6 {
        let _ = write!(m, "{} ", Ip6Full(&c.daddr));
    } else {
        let _ = write!(m, "{:08X} ", u32::from_be_bytes(service::as_v4(&c.daddr)));
    }
    let _ = write!(m, "{:04X} {:<11} ", u16::from_be_bytes(c.dport), c.state_name());
    if with_origin {
        let origin = if c.flags.load(Relaxed) & uapi::conn_flags::SYNC != 0 { "SYNC" } else { "LOCAL" };
        let _ = write!(m, "{:<6} ", origin);
    }
    let _ = write!(m, "{:>7}", c.expires_in(now) / hz);
    // Templates with engine data show the engine and the data (`ip_vs_conn_seq_show`).
    if let Some(pe) = ipvs.conns.pe_data(c, &g).filter(|_| !with_origin) {
        let _ = m.write_str(" ");
        m.write_bytes(pe.name());
        let _ = m.write_str(" ");
        m.write_bytes(pe.data());
    }
    let _ = writeln!(m);
}

/// Moves `cur` to the next connection of `net`'s table at or after it.
fn seek_conn(net: &Net, cur: &mut SeqCursor) -> bool {
    ipvs_of(net).is_ok_and(|ipvs| ipvs.conns.seek(cur))
}

impl NetSeqIter for ProcIpVsConn {
    fn header(_net: &Net, m: &mut SeqFile) {
        conns_header(m, false)
    }

    fn seek(net: &Net, cur: &mut SeqCursor) -> bool {
        seek_conn(net, cur)
    }

    fn show(net: &Net, cur: &SeqCursor, m: &mut SeqFile) {
        show_conn(net, cur, m, false)
    }
}

impl NetSeqIter for ProcIpVsConnSync {
    fn header(_net: &Net, m: &mut SeqFile) {
        conns_header(m, true)
    }

    fn seek(net: &Net, cur: &mut SeqCursor) -> bool {
        seek_conn(net, cur)
    }

    fn show(net: &Net, cur: &SeqCursor, m: &mut SeqFile) {
        show_conn(net, cur, m, true)
    }
}

/// `/proc/net/ip_vs_stats`: the director's counters and rates, in hexadecimal as upstream.
pub(crate) struct ProcIpVsStats;

/// One row of five counters or rates in upstream's `/proc` stats layout, after `lead`.
fn stats_row(m: &mut SeqFile, lead: &str, v: [u64; 5]) {
    let _ = writeln!(m, "{lead}{:8X} {:8X} {:8X} {:16X} {:16X}", v[0], v[1], v[2], v[3], v[4]);
}

impl NetSeqShow for ProcIpVsStats {
    fn show(net: &Net, m: &mut SeqFile) -> Result {
        let ipvs = ipvs_of(net)?;
        let _ = writeln!(m, "   Total Incoming Outgoing         Incoming         Outgoing");
        let _ = writeln!(m, "   Conns  Packets  Packets            Bytes            Bytes");
        stats_row(m, "", ipvs.stats.totals());
        let _ = writeln!(m);
        let _ = writeln!(m, " Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s");
        stats_row(m, "", ipvs.stats.rates());
        Ok(())
    }
}

/// `/proc/net/ip_vs_status`: the sizes and load of the connection and service tables, in
/// upstream's format (Linux 7.1), for tuning `conn_lfactor`.
pub(crate) struct ProcIpVsStatus;

/// The chain-length lines of a histogram (`len-7` counts 7 and more).
fn status_histogram(m: &mut SeqFile, what: &str, h: &[u64; 8]) {
    let sum: u64 = h.iter().sum();
    let sum1 = sum - h[0];
    let _ = writeln!(m, "{what} buckets empty:\t{} ({}%)", h[0], h[0] * 100 / sum.max(1));
    for (i, &n) in h.iter().enumerate().skip(1) {
        if n != 0 {
            let _ = writeln!(m, "{what} buckets len-{i}:\t{n} ({}%)", n * 100 / sum1.max(1));
        }
    }
}

impl NetSeqShow for ProcIpVsStatus {
    fn show(net: &Net, m: &mut SeqFile) -> Result {
        let ipvs = ipvs_of(net)?;
        let conns = &ipvs.conns;
        let (size, bits) = conns.size();
        let _ = writeln!(m, "Conns:\t{}", conns.count());
        let _ = writeln!(m, "Conn buckets:\t{size} ({bits} bits, lfactor {})", conns.lfactor());
        if conns.count() != 0 {
            status_histogram(m, "Conn", &conns.histogram().map(u64::from));
        }
        let st = ipvs.svc_table.status(&rcu::read_lock());
        let _ = writeln!(m, "Services:\t{}", st.services);
        let _ = writeln!(m, "Service buckets:\t{} ({} bits, lfactor {})", st.buckets, st.bits, st.lfactor);
        if st.services != 0 {
            status_histogram(m, "Service", &st.chains.map(|n| n as u64));
        }
        let _ = writeln!(m, "Stats thread slots:\t0 (max 0)");
        let _ = writeln!(m, "Stats chain max len:\t0");
        let _ = writeln!(m, "Stats thread ests:\t0");
        Ok(())
    }
}

/// `/proc/net/ip_vs_stats_percpu`: the director's counters of each CPU (raw, as upstream:
/// zeroing does not show there), then the totals and rates.
pub(crate) struct ProcIpVsStatsPercpu;

impl NetSeqShow for ProcIpVsStatsPercpu {
    fn show(net: &Net, m: &mut SeqFile) -> Result {
        let ipvs = ipvs_of(net)?;
        let _ = writeln!(m, "       Total Incoming Outgoing         Incoming         Outgoing");
        let _ = writeln!(m, "CPU    Conns  Packets  Packets            Bytes            Bytes");
        ipvs.stats.for_each_cpu(|cpu, v| {
            let _ = write!(m, "{cpu:3X} ");
            stats_row(m, "", v);
        });
        stats_row(m, "  ~ ", ipvs.stats.totals());
        let _ = writeln!(m);
        let _ = writeln!(m, "     Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s");
        stats_row(m, "    ", ipvs.stats.rates());
        Ok(())
    }
}
