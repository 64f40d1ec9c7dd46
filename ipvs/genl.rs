// SPDX-License-Identifier: GPL-2.0

//! The generic netlink family `IPVS`: the control interface that ipvsadm, keepalived and
//! the netlink libraries of container orchestrators prefer to the socket options.
//!
//! Requests are validated as upstream validates them (the same policies, leniently, and the
//! same checks in the same order), so that each kind of bad input fails with the same
//! errno; replies and dumps carry the same attributes in the same order.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_ctl.c` (`ip_vs_genl_*`)

use crate::{
    ctl,
    ctl_config::{self, Af, DestConfig, PeName, SchedName, ServiceConfig, ServiceKey, ServiceOp},
    service::{self, Service, ServiceTable},
    Ipvs, IPVS,
};
use core::sync::atomic::Ordering::Relaxed;
use kernel::{
    c_str,
    error::code::*,
    net::genetlink::{
        self, Attr, AttrKind, AttrSpec, Dump, Family, Info, MsgBuilder, Op, Perm, Policy,
        PolicyEntry,
    },
    prelude::*,
    proc_fs::SeqCursor,
    sync::{rcu, Arc},
};

/// Family name and version (`IPVS_GENL_NAME`, `IPVS_GENL_VERSION`).
pub(crate) const NAME: &kernel::str::CStr = c_str!("IPVS");
const VERSION: u32 = 0x1;

/// Commands (`enum` of `IPVS_CMD_*`).
pub(crate) mod cmd {
    pub(crate) const NEW_SERVICE: u8 = 1;
    pub(crate) const SET_SERVICE: u8 = 2;
    pub(crate) const DEL_SERVICE: u8 = 3;
    pub(crate) const GET_SERVICE: u8 = 4;
    pub(crate) const NEW_DEST: u8 = 5;
    pub(crate) const SET_DEST: u8 = 6;
    pub(crate) const DEL_DEST: u8 = 7;
    pub(crate) const GET_DEST: u8 = 8;
    pub(crate) const NEW_DAEMON: u8 = 9;
    pub(crate) const DEL_DAEMON: u8 = 10;
    pub(crate) const GET_DAEMON: u8 = 11;
    pub(crate) const SET_CONFIG: u8 = 12;
    pub(crate) const GET_CONFIG: u8 = 13;
    pub(crate) const SET_INFO: u8 = 14;
    pub(crate) const GET_INFO: u8 = 15;
    pub(crate) const ZERO: u8 = 16;
    pub(crate) const FLUSH: u8 = 17;
}

/// Top-level attributes (`IPVS_CMD_ATTR_*`).
mod cmd_attr {
    pub(super) const SERVICE: u16 = 1;
    pub(super) const DEST: u16 = 2;
    pub(super) const DAEMON: u16 = 3;
    pub(super) const TIMEOUT_TCP: u16 = 4;
    pub(super) const TIMEOUT_TCP_FIN: u16 = 5;
    pub(super) const TIMEOUT_UDP: u16 = 6;
    pub(super) const MAX: u16 = 6;
}

/// Service attributes (`IPVS_SVC_ATTR_*`).
mod svc_attr {
    pub(super) const AF: u16 = 1;
    pub(super) const PROTOCOL: u16 = 2;
    pub(super) const ADDR: u16 = 3;
    pub(super) const PORT: u16 = 4;
    pub(super) const FWMARK: u16 = 5;
    pub(super) const SCHED_NAME: u16 = 6;
    pub(super) const FLAGS: u16 = 7;
    pub(super) const TIMEOUT: u16 = 8;
    pub(super) const NETMASK: u16 = 9;
    pub(super) const STATS: u16 = 10;
    pub(super) const PE_NAME: u16 = 11;
    pub(super) const STATS64: u16 = 12;
    pub(super) const MAX: u16 = 12;
}

/// Real server attributes (`IPVS_DEST_ATTR_*`).
mod dest_attr {
    pub(super) const ADDR: u16 = 1;
    pub(super) const PORT: u16 = 2;
    pub(super) const FWD_METHOD: u16 = 3;
    pub(super) const WEIGHT: u16 = 4;
    pub(super) const U_THRESH: u16 = 5;
    pub(super) const L_THRESH: u16 = 6;
    pub(super) const ACTIVE_CONNS: u16 = 7;
    pub(super) const INACT_CONNS: u16 = 8;
    pub(super) const PERSIST_CONNS: u16 = 9;
    pub(super) const STATS: u16 = 10;
    pub(super) const ADDR_FAMILY: u16 = 11;
    pub(super) const STATS64: u16 = 12;
    pub(super) const TUN_TYPE: u16 = 13;
    pub(super) const TUN_PORT: u16 = 14;
    pub(super) const TUN_FLAGS: u16 = 15;
    pub(super) const MAX: u16 = 15;
}

/// Sync daemon attributes (`IPVS_DAEMON_ATTR_*`).
mod daemon_attr {
    pub(super) const STATE: u16 = 1;
    pub(super) const MCAST_IFN: u16 = 2;
    pub(super) const SYNC_ID: u16 = 3;
    pub(super) const SYNC_MAXLEN: u16 = 4;
    pub(super) const MCAST_GROUP: u16 = 5;
    pub(super) const MCAST_GROUP6: u16 = 6;
    pub(super) const MCAST_PORT: u16 = 7;
    pub(super) const MCAST_TTL: u16 = 8;
    pub(super) const MAX: u16 = 8;
}

/// Statistics attributes (`IPVS_STATS_ATTR_*`), in the order of the counters.
mod stats_attr {
    pub(super) const CONNS: u16 = 1;
    pub(super) const PAD: u16 = 11;
}

/// Information attributes (`IPVS_INFO_ATTR_*`).
mod info_attr {
    pub(super) const VERSION: u16 = 1;
    pub(super) const CONN_TAB_SIZE: u16 = 2;
}

/// `sizeof(union nf_inet_addr)`, `sizeof(struct ip_vs_flags)`, `sizeof(struct in6_addr)`.
const INET_ADDR_LEN: u16 = 16;
const FLAGS_LEN: u16 = 8;
const IFNAME_MAXLEN: u16 = 16;
const SCHEDNAME_MAXLEN: u16 = 16;
const PENAME_MAXLEN: u16 = 16;

const fn a(attr: u16, kind: AttrKind) -> AttrSpec {
    AttrSpec { attr, kind }
}

/// `ip_vs_cmd_policy`.
static CMD_POLICY: Policy<{ cmd_attr::MAX as usize + 1 }> = Policy::new(&[
    a(cmd_attr::SERVICE, AttrKind::Nested),
    a(cmd_attr::DEST, AttrKind::Nested),
    a(cmd_attr::DAEMON, AttrKind::Nested),
    a(cmd_attr::TIMEOUT_TCP, AttrKind::U32),
    a(cmd_attr::TIMEOUT_TCP_FIN, AttrKind::U32),
    a(cmd_attr::TIMEOUT_UDP, AttrKind::U32),
]);

/// `ip_vs_daemon_policy`.
static DAEMON_POLICY: Policy<{ daemon_attr::MAX as usize + 1 }> = Policy::new(&[
    a(daemon_attr::STATE, AttrKind::U32),
    a(daemon_attr::MCAST_IFN, AttrKind::NulString(IFNAME_MAXLEN - 1)),
    a(daemon_attr::SYNC_ID, AttrKind::U32),
    a(daemon_attr::SYNC_MAXLEN, AttrKind::U16),
    a(daemon_attr::MCAST_GROUP, AttrKind::U32),
    a(daemon_attr::MCAST_GROUP6, AttrKind::MinLen(INET_ADDR_LEN)),
    a(daemon_attr::MCAST_PORT, AttrKind::U16),
    a(daemon_attr::MCAST_TTL, AttrKind::U8),
]);

/// `ip_vs_svc_policy`.
static SVC_POLICY: Policy<{ svc_attr::MAX as usize + 1 }> = Policy::new(&[
    a(svc_attr::AF, AttrKind::U16),
    a(svc_attr::PROTOCOL, AttrKind::U16),
    a(svc_attr::ADDR, AttrKind::Binary(INET_ADDR_LEN)),
    a(svc_attr::PORT, AttrKind::U16),
    a(svc_attr::FWMARK, AttrKind::U32),
    a(svc_attr::SCHED_NAME, AttrKind::NulString(SCHEDNAME_MAXLEN - 1)),
    a(svc_attr::PE_NAME, AttrKind::NulString(PENAME_MAXLEN)),
    a(svc_attr::FLAGS, AttrKind::Binary(FLAGS_LEN)),
    a(svc_attr::TIMEOUT, AttrKind::U32),
    a(svc_attr::NETMASK, AttrKind::U32),
    a(svc_attr::STATS, AttrKind::Nested),
]);

/// `ip_vs_dest_policy`.
static DEST_POLICY: Policy<{ dest_attr::MAX as usize + 1 }> = Policy::new(&[
    a(dest_attr::ADDR, AttrKind::Binary(INET_ADDR_LEN)),
    a(dest_attr::PORT, AttrKind::U16),
    a(dest_attr::FWD_METHOD, AttrKind::U32),
    a(dest_attr::WEIGHT, AttrKind::U32),
    a(dest_attr::U_THRESH, AttrKind::U32),
    a(dest_attr::L_THRESH, AttrKind::U32),
    a(dest_attr::ACTIVE_CONNS, AttrKind::U32),
    a(dest_attr::INACT_CONNS, AttrKind::U32),
    a(dest_attr::PERSIST_CONNS, AttrKind::U32),
    a(dest_attr::STATS, AttrKind::Nested),
    a(dest_attr::ADDR_FAMILY, AttrKind::U16),
    a(dest_attr::TUN_TYPE, AttrKind::U8),
    a(dest_attr::TUN_PORT, AttrKind::U16),
    a(dest_attr::TUN_FLAGS, AttrKind::U16),
]);

const fn op(cmd: u8, doit: bool, dumpit: bool) -> Op {
    Op {
        cmd,
        perm: Perm::Admin,
        doit,
        dumpit,
        lenient: true,
    }
}

/// The family.
pub(crate) struct IpvsFamily;

#[vtable]
impl Family for IpvsFamily {
    const NAME: &'static kernel::str::CStr = NAME;
    const VERSION: u32 = VERSION;
    const MAX_ATTR: u16 = cmd_attr::MAX;
    const OPS: &'static [Op] = &[
        op(cmd::NEW_SERVICE, true, false),
        op(cmd::SET_SERVICE, true, false),
        op(cmd::DEL_SERVICE, true, false),
        op(cmd::GET_SERVICE, true, true),
        op(cmd::NEW_DEST, true, false),
        op(cmd::SET_DEST, true, false),
        op(cmd::DEL_DEST, true, false),
        op(cmd::GET_DEST, false, true),
        op(cmd::NEW_DAEMON, true, false),
        op(cmd::DEL_DAEMON, true, false),
        op(cmd::GET_DAEMON, false, true),
        op(cmd::SET_CONFIG, true, false),
        op(cmd::GET_CONFIG, true, false),
        op(cmd::GET_INFO, true, false),
        op(cmd::ZERO, true, false),
        op(cmd::FLUSH, true, false),
    ];
    const RESV_START_OP: u8 = cmd::FLUSH + 1;
    const NETNS_OK: bool = true;

    fn policy() -> &'static [PolicyEntry] {
        CMD_POLICY.entries()
    }

    fn doit(info: &Info<'_>) -> Result {
        let net = info.net();
        let ipvs = IPVS.get(net).ok_or(ENOENT)?;
        match info.cmd() {
            cmd::GET_SERVICE | cmd::GET_INFO | cmd::GET_CONFIG => get_cmd(ipvs, info),
            cmd::SET_CONFIG => set_config(ipvs, info),
            cmd::FLUSH => {
                let mut ctl = ipvs.ctl.lock();
                ctl.services.flush(&ipvs.svc_table)?;
                ctl.update_hooks(net)
            }
            cmd::NEW_DAEMON | cmd::DEL_DAEMON => set_daemon(info),
            cmd::ZERO if info.attr(cmd_attr::SERVICE).is_none() => {
                let ctl = ipvs.ctl.lock();
                ipvs.zero_all(&ctl);
                Ok(())
            }
            _ => set_cmd(ipvs, info),
        }
    }

    fn dumpit(dump: &mut Dump<'_>) -> Result {
        let ipvs = IPVS.get(dump.net()).ok_or(ENOENT)?;
        match dump.cmd() {
            cmd::GET_SERVICE => dump_services(ipvs, dump),
            cmd::GET_DEST => dump_dests(ipvs, dump),
            cmd::GET_DAEMON => dump_daemons(ipvs, dump),
            _ => Err(EINVAL),
        }
    }
}

/// Statistics as the 32-bit (`IPVS_*_ATTR_STATS`) and the 64-bit (`*_STATS64`) nests:
/// counters first, then rates; bytes are 64-bit in both.
fn fill_stats(m: &mut MsgBuilder<'_>, nest32: u16, nest64: u16, s: &crate::stats::Stats) -> Result {
    let totals = s.totals();
    let rates = s.rates();
    let values = || Iterator::chain(totals.iter(), rates.iter()).copied().zip(stats_attr::CONNS..);
    m.nest(nest32, |m| {
        for (v, t) in values() {
            // Bytes (the fourth and fifth counters) stay 64-bit; the rest is truncated.
            if t == stats_attr::CONNS + 3 || t == stats_attr::CONNS + 4 {
                m.put_u64(t, v, stats_attr::PAD)?;
            } else {
                m.put_u32(t, v as u32)?;
            }
        }
        Ok(())
    })?;
    m.nest(nest64, |m| {
        for (v, t) in values() {
            m.put_u64(t, v, stats_attr::PAD)?;
        }
        Ok(())
    })
}

/// `ip_vs_genl_fill_service`.
fn fill_service(m: &mut MsgBuilder<'_>, s: &Service, hz: u32, g: &rcu::Guard) -> Result {
    let name = sched_name_nul(s, g);
    let name = name.get(..=name.iter().position(|&c| c == 0).unwrap_or(0)).unwrap_or(b"none\0");
    m.nest(cmd_attr::SERVICE, |m| {
        m.put_u16(svc_attr::AF, s.af)?;
        if s.fwmark != 0 {
            m.put_u32(svc_attr::FWMARK, s.fwmark)?;
        } else {
            m.put_u16(svc_attr::PROTOCOL, s.protocol)?;
            m.put(svc_attr::ADDR, &s.addr)?;
            m.put(svc_attr::PORT, &s.port)?;
        }
        m.put(svc_attr::SCHED_NAME, name)?;
        if let Some(pe) = s.pe.get(g) {
            let mut n = [0u8; crate::pe_abi::PENAME_MAXLEN + 1];
            for (d, c) in n.iter_mut().zip(pe.name().iter().take(crate::pe_abi::PENAME_MAXLEN)) {
                *d = *c;
            }
            let len = pe.name().len().min(crate::pe_abi::PENAME_MAXLEN);
            m.put(svc_attr::PE_NAME, n.get(..=len).unwrap_or(b"\0"))?;
        }
        let mut flags = [0u8; FLAGS_LEN as usize];
        flags[..4].copy_from_slice(&s.flags.load(Relaxed).to_ne_bytes());
        flags[4..].copy_from_slice(&u32::MAX.to_ne_bytes());
        m.put(svc_attr::FLAGS, &flags)?;
        m.put_u32(svc_attr::TIMEOUT, s.timeout_jiffies(hz) / hz.max(1))?;
        m.put(svc_attr::NETMASK, &s.netmask.load(Relaxed).to_ne_bytes())?;
        fill_stats(m, svc_attr::STATS, svc_attr::STATS64, &s.stats)
    })
}

/// The scheduler's name with its NUL, "none" without one (`nla_put_string`).
fn sched_name_nul(s: &Service, g: &rcu::Guard) -> [u8; SCHEDNAME_MAXLEN as usize + 1] {
    let name = s.sched_name(g);
    let name = if name.is_none() { b"none".as_slice() } else { name.as_bytes() };
    let mut b = [0u8; SCHEDNAME_MAXLEN as usize + 1];
    for (d, c) in b.iter_mut().zip(name.iter().take(SCHEDNAME_MAXLEN as usize)) {
        *d = *c;
    }
    b
}

/// `ip_vs_genl_fill_dest`.
fn fill_dest(m: &mut MsgBuilder<'_>, d: &service::Dest) -> Result {
    m.nest(cmd_attr::DEST, |m| {
        m.put(dest_attr::ADDR, &d.info.addr)?;
        m.put(dest_attr::PORT, &d.info.port)?;
        m.put_u32(dest_attr::FWD_METHOD, d.conn_flags.load(Relaxed) & crate::uapi::conn_flags::FWD_MASK)?;
        m.put_u32(dest_attr::WEIGHT, d.info.weight() as u32)?;
        m.put_u8(dest_attr::TUN_TYPE, d.tun_type.load(Relaxed))?;
        m.put(dest_attr::TUN_PORT, &d.tun_port())?;
        m.put_u16(dest_attr::TUN_FLAGS, d.tun_flags.load(Relaxed))?;
        m.put_u32(dest_attr::U_THRESH, d.info.u_threshold.load(Relaxed))?;
        m.put_u32(dest_attr::L_THRESH, d.info.l_threshold.load(Relaxed))?;
        m.put_u32(dest_attr::ACTIVE_CONNS, d.info.activeconns())?;
        m.put_u32(dest_attr::INACT_CONNS, d.info.inactconns())?;
        m.put_u32(dest_attr::PERSIST_CONNS, d.info.persistconns.load(Relaxed))?;
        m.put_u16(dest_attr::ADDR_FAMILY, d.info.af)?;
        fill_stats(m, dest_attr::STATS, dest_attr::STATS64, &d.stats)
    })
}

/// One message `cmd` per item, filled by `fill`, from the index the last call of the dump
/// stopped at (`cb->args[0]`) until the dump's buffer is full; remembers where it stopped.
fn dump_from<T>(
    dump: &mut Dump<'_>,
    items: impl Iterator<Item = T>,
    cmd: u8,
    mut fill: impl FnMut(&mut MsgBuilder<'_>, T) -> Result,
) -> Result {
    let start = usize::try_from(dump.args()[0]).unwrap_or(0);
    let mut idx = start;
    let mut r = Ok(());
    for item in items.skip(start) {
        r = dump.entry(cmd, |m| fill(m, item));
        if r.is_err() {
            break;
        }
        idx += 1;
    }
    dump.args()[0] = isize::try_from(idx).unwrap_or(isize::MAX);
    r
}

/// `ip_vs_genl_dump_services`: every service of the namespace, in the table's order (by
/// hash). Each call resumes at the cursor the last one left in `cb->args[0..2]` (a hash
/// and a rank: see [`service::ServiceView::seek`]), so that a dump costs one pass over the
/// table (upstream counts its way back from the first service on every call) and a
/// resize between two calls neither skips nor repeats a service.
fn dump_services(ipvs: &Ipvs, dump: &mut Dump<'_>) -> Result {
    let _ctl = ipvs.ctl.lock();
    let hz = ipvs.conns.hz();
    let g = rcu::read_lock();
    let Some(table) = ipvs.svc_table.get(&g) else {
        return Ok(());
    };
    let [h, rank, ..] = *dump.args();
    let (Ok(bucket), Ok(index)) = (usize::try_from(h), usize::try_from(rank)) else {
        return Ok(());
    };
    let mut cur = SeqCursor { bucket, index };
    let mut r = Ok(());
    while table.seek(&mut cur) {
        let Some(s) = table.at(&cur) else {
            break;
        };
        r = dump.entry(cmd::NEW_SERVICE, |m| fill_service(m, s, hz, &g));
        if r.is_err() {
            break;
        }
        cur.index = cur.index.saturating_add(1);
    }
    let args = dump.args();
    args[0] = isize::try_from(cur.bucket).unwrap_or(isize::MAX);
    args[1] = isize::try_from(cur.index).unwrap_or(isize::MAX);
    r
}

/// `ip_vs_genl_dump_dests`: the real servers of the service the request names; a request
/// without a valid service ends the dump without an error, as upstream's.
fn dump_dests(ipvs: &Ipvs, dump: &mut Dump<'_>) -> Result {
    let ctl = ipvs.ctl.lock();
    let Ok(attrs) = dump.parse_request(&CMD_POLICY) else {
        return Ok(());
    };
    let Ok(Some(svc)) = find_service(&ctl, &ipvs.svc_table, attrs.get(cmd_attr::SERVICE)) else {
        return Ok(());
    };
    let g = rcu::read_lock();
    let Some(list) = svc.dests.get(&g) else {
        return Ok(());
    };
    dump_from(dump, list.dests.iter(), cmd::NEW_DEST, |m, d| fill_dest(m, d))
}

/// The attribute's payload in `N` bytes (`nla_memcpy`): as much of it as fits, zeroes after
/// a short one.
fn nla_memcpy<const N: usize>(a: &Attr<'_>) -> [u8; N] {
    let mut b = [0u8; N];
    for (d, s) in b.iter_mut().zip(a.data()) {
        *d = *s;
    }
    b
}

/// A service attribute decoded (`ip_vs_genl_parse_service`): its key, the service if it
/// exists, and with `full` the rest of its configuration (flags merged into the existing
/// service's). `EINVAL` when it is missing, malformed or incomplete, `EAFNOSUPPORT` for a
/// family that cannot be configured.
struct ParsedService {
    key: ServiceKey,
    svc: Option<Arc<Service>>,
    config: Option<ServiceConfig>,
}

fn parse_service(
    ctl: &crate::CtlState,
    table: &ServiceTable,
    nla: Option<Attr<'_>>,
    full: bool,
) -> Result<ParsedService> {
    let attrs = nla.ok_or(EINVAL)?.parse_nested(&SVC_POLICY).map_err(|_| EINVAL)?;
    let fwmark = attrs.get(svc_attr::FWMARK);
    let (proto, addr, port) = (
        attrs.get(svc_attr::PROTOCOL),
        attrs.get(svc_attr::ADDR),
        attrs.get(svc_attr::PORT),
    );
    let af = match attrs.get(svc_attr::AF) {
        Some(af) if fwmark.is_some() || (proto.is_some() && addr.is_some() && port.is_some()) => {
            af.get_u16().ok_or(EINVAL)?
        }
        _ => return Err(EINVAL),
    };
    let af = Af::supported(af)?;
    let key = match (fwmark, proto, addr, port) {
        (Some(f), ..) => {
            ServiceKey::new(af, ctl_config::IPPROTO_TCP, &[0; 16], [0; 2], f.get_u32().ok_or(EINVAL)?)
        }
        (None, Some(proto), Some(addr), Some(port)) => {
            let a: [u8; 16] = nla_memcpy(&addr);
            let port = port.get_u16().ok_or(EINVAL)?.to_ne_bytes();
            ServiceKey::new(af, proto.get_u16().ok_or(EINVAL)?, &a, port, 0)
        }
        _ => return Err(EINVAL),
    };
    let svc = ctl.services.lookup(&key, table);
    let config = if full {
        let (Some(sched), Some(flags), Some(timeout), Some(netmask)) = (
            attrs.get(svc_attr::SCHED_NAME),
            attrs.get(svc_attr::FLAGS),
            attrs.get(svc_attr::TIMEOUT),
            attrs.get(svc_attr::NETMASK),
        ) else {
            return Err(EINVAL);
        };
        // `struct ip_vs_flags { flags, mask }`.
        let fm: [u8; FLAGS_LEN as usize] = nla_memcpy(&flags);
        let f = u32::from_ne_bytes([fm[0], fm[1], fm[2], fm[3]]);
        let mask = u32::from_ne_bytes([fm[4], fm[5], fm[6], fm[7]]);
        let old = svc.as_ref().map_or(0, |s| s.flags.load(Relaxed));
        let nm: [u8; 4] = nla_memcpy(&netmask);
        Some(ServiceConfig {
            key,
            sched_name: SchedName::new(sched.get_str()).ok_or(EINVAL)?,
            pe_name: match attrs.get(svc_attr::PE_NAME) {
                Some(pe) => PeName::new(pe.get_str())?,
                None => None,
            },
            flags: ctl_config::merge_svc_flags(old, f, mask),
            timeout: timeout.get_u32().ok_or(EINVAL)?,
            netmask: nm,
        })
    } else {
        None
    };
    Ok(ParsedService { key, svc, config })
}

/// The identifying part of a service attribute, then the service if it exists.
fn find_service(
    ctl: &crate::CtlState,
    table: &ServiceTable,
    nla: Option<Attr<'_>>,
) -> Result<Option<Arc<Service>>> {
    Ok(parse_service(ctl, table, nla, false)?.svc)
}

/// A real server attribute decoded (`ip_vs_genl_parse_dest`): address, port and family
/// (0: the service's); with `full`, forwarding method, weight, thresholds and tunnel.
fn parse_dest(nla: Option<Attr<'_>>, full: bool) -> Result<(DestConfig, u16, [u8; 16])> {
    let attrs = nla.ok_or(EINVAL)?.parse_nested(&DEST_POLICY).map_err(|_| EINVAL)?;
    let (Some(addr), Some(port)) = (attrs.get(dest_attr::ADDR), attrs.get(dest_attr::PORT)) else {
        return Err(EINVAL);
    };
    let a: [u8; 16] = nla_memcpy(&addr);
    let raw_af = match attrs.get(dest_attr::ADDR_FAMILY) {
        Some(af) => af.get_u16().ok_or(EINVAL)?,
        None => 0,
    };
    let u32_of = |t: u16| attrs.get(t).and_then(|a| a.get_u32());
    let mut d = DestConfig {
        // The family is settled against the service's by the caller.
        addr: ctl_config::InetAddr::from_nf(Af::Inet, &a),
        port: port.get_u16().ok_or(EINVAL)?.to_ne_bytes(),
        conn_flags: 0,
        weight: 0,
        u_threshold: 0,
        l_threshold: 0,
        tun_type: 0,
        tun_port: [0; 2],
        tun_flags: 0,
    };
    if full {
        let (Some(fwd), Some(weight), Some(u), Some(l)) = (
            u32_of(dest_attr::FWD_METHOD),
            u32_of(dest_attr::WEIGHT),
            u32_of(dest_attr::U_THRESH),
            u32_of(dest_attr::L_THRESH),
        ) else {
            return Err(EINVAL);
        };
        d.conn_flags = fwd & crate::uapi::conn_flags::FWD_MASK;
        d.weight = weight as i32;
        d.u_threshold = u;
        d.l_threshold = l;
        if let Some(t) = attrs.get(dest_attr::TUN_TYPE) {
            d.tun_type = t.get_u8().ok_or(EINVAL)?;
        }
        if let Some(p) = attrs.get(dest_attr::TUN_PORT) {
            d.tun_port = p.get_u16().ok_or(EINVAL)?.to_ne_bytes();
        }
        if let Some(f) = attrs.get(dest_attr::TUN_FLAGS) {
            d.tun_flags = f.get_u16().ok_or(EINVAL)?;
        }
    }
    Ok((d, raw_af, a))
}

/// `ip_vs_genl_set_cmd` for the service and real server commands, checked in upstream's
/// order: the service (`EINVAL`, `EAFNOSUPPORT`), its existence (`ESRCH`), the real server
/// and its family, then the operation.
fn set_cmd(ipvs: &Ipvs, info: &Info<'_>) -> Result {
    let net = info.net();
    let c = info.cmd();
    let mut ctl = ipvs.ctl.lock();
    let full_svc = c == cmd::NEW_SERVICE || c == cmd::SET_SERVICE;
    let p = parse_service(&ctl, &ipvs.svc_table, info.attr(cmd_attr::SERVICE), full_svc)?;
    if c != cmd::NEW_SERVICE && p.svc.is_none() {
        return Err(ESRCH);
    }
    let dest = if c == cmd::NEW_DEST || c == cmd::SET_DEST || c == cmd::DEL_DEST {
        let (mut d, raw_af, addr_nf) = parse_dest(info.attr(cmd_attr::DEST), c != cmd::DEL_DEST)?;
        let svc_af = p.key.af();
        let sync_running = ipvs.sync.state() != 0;
        let af = ctl_config::dest_af(svc_af, raw_af, d.conn_flags, c == cmd::DEL_DEST, sync_running)?;
        d.addr = ctl_config::InetAddr::from_nf(af, &addr_nf);
        Some(d)
    } else {
        None
    };
    let op = match (c, p.config, dest) {
        (cmd::NEW_SERVICE, Some(cfg), _) => ServiceOp::Add(cfg),
        (cmd::SET_SERVICE, Some(cfg), _) => ServiceOp::Edit(cfg),
        (cmd::DEL_SERVICE, ..) => ServiceOp::Del,
        (cmd::ZERO, ..) => ServiceOp::Zero,
        (cmd::NEW_DEST, _, Some(d)) => ServiceOp::AddDest(d),
        (cmd::SET_DEST, _, Some(d)) => ServiceOp::EditDest(d),
        (cmd::DEL_DEST, _, Some(d)) => ServiceOp::DelDest(d),
        _ => return Err(EINVAL),
    };
    ctl::run_service_op(net, ipvs, &mut ctl, p.svc, op)
}

/// `ip_vs_genl_get_cmd`: `GET_SERVICE`, `GET_INFO` and `GET_CONFIG` answered with one
/// message (`NEW_SERVICE`, `SET_INFO`, `SET_CONFIG`).
fn get_cmd(ipvs: &Ipvs, info: &Info<'_>) -> Result {
    let ctl = ipvs.ctl.lock();
    match info.cmd() {
        cmd::GET_SERVICE => {
            let svc = find_service(&ctl, &ipvs.svc_table, info.attr(cmd_attr::SERVICE))?.ok_or(ESRCH)?;
            let hz = ipvs.conns.hz();
            info.reply(cmd::NEW_SERVICE, |m| fill_service(m, &svc, hz, &rcu::read_lock()))
        }
        cmd::GET_CONFIG => {
            let t = ipvs.timeouts();
            info.reply(cmd::SET_CONFIG, |m| {
                m.put_u32(cmd_attr::TIMEOUT_TCP, t.tcp as u32)?;
                m.put_u32(cmd_attr::TIMEOUT_TCP_FIN, t.tcp_fin as u32)?;
                m.put_u32(cmd_attr::TIMEOUT_UDP, t.udp as u32)
            })
        }
        _ => info.reply(cmd::SET_INFO, |m| {
            m.put_u32(info_attr::VERSION, crate::uapi::VERSION_CODE)?;
            m.put_u32(info_attr::CONN_TAB_SIZE, ipvs.conns.max_size())
        }),
    }
}

/// `ip_vs_genl_set_config`: the timeouts given replace the current ones.
fn set_config(ipvs: &Ipvs, info: &Info<'_>) -> Result {
    let _ctl = ipvs.ctl.lock();
    let mut t = ipvs.timeouts();
    let get = |a: u16| info.attr(a).and_then(|a| a.get_u32()).map(|v| v as i32);
    if let Some(v) = get(cmd_attr::TIMEOUT_TCP) {
        t.tcp = v;
    }
    if let Some(v) = get(cmd_attr::TIMEOUT_TCP_FIN) {
        t.tcp_fin = v;
    }
    if let Some(v) = get(cmd_attr::TIMEOUT_UDP) {
        t.udp = v;
    }
    ipvs.set_timeouts(&t)
}

/// `ip_vs_genl_dump_daemons`: the running master, then the running backup, each with its
/// whole configuration (`ip_vs_genl_fill_daemon`).
fn dump_daemons(ipvs: &Ipvs, dump: &mut Dump<'_>) -> Result {
    let [m, b] = ipvs.sync.configs();
    let running = [(crate::sync::STATE_MASTER, m), (crate::sync::STATE_BACKUP, b)];
    let items = running.iter().filter_map(|(s, c)| c.map(|c| (*s, c)));
    dump_from(dump, items, cmd::NEW_DAEMON, |m, (state, c)| {
        m.nest(cmd_attr::DAEMON, |m| {
            let ifn = kernel::str::CStr::from_bytes_with_nul(c.mcast_ifn.as_bytes_with_nul()).map_err(|_| EINVAL)?;
            m.put_u32(daemon_attr::STATE, state)?;
            m.put_str(daemon_attr::MCAST_IFN, ifn)?;
            m.put_u32(daemon_attr::SYNC_ID, u32::from(c.syncid))?;
            m.put_u16(daemon_attr::SYNC_MAXLEN, c.sync_maxlen)?;
            m.put_u16(daemon_attr::MCAST_PORT, c.port)?;
            m.put_u8(daemon_attr::MCAST_TTL, c.ttl)?;
            if c.v6 {
                m.put(daemon_attr::MCAST_GROUP6, &c.group)
            } else {
                m.put(daemon_attr::MCAST_GROUP, &[c.group[0], c.group[1], c.group[2], c.group[3]])
            }
        })
    })
}

/// `ip_vs_genl_set_daemon`, `ip_vs_genl_new_daemon`, `ip_vs_genl_del_daemon`: the nest and
/// the attributes checked in upstream's order, then the start or stop as the socket options
/// do it.
fn set_daemon(info: &Info<'_>) -> Result {
    let Some(nla) = info.attr(cmd_attr::DAEMON) else {
        return Err(EINVAL);
    };
    // Upstream parses this nest (alone) with the request's extended ACK.
    let attrs = nla.parse_nested_reporting(&DAEMON_POLICY, info).map_err(|_| EINVAL)?;
    if info.cmd() == cmd::DEL_DAEMON {
        let state = attrs.get(daemon_attr::STATE).ok_or(EINVAL)?.get_u32().ok_or(EINVAL)?;
        return ctl::stop_daemon(info.net(), state as i32);
    }
    let (Some(state), Some(ifn), Some(syncid)) = (
        attrs.get(daemon_attr::STATE),
        attrs.get(daemon_attr::MCAST_IFN),
        attrs.get(daemon_attr::SYNC_ID),
    ) else {
        return Err(EINVAL);
    };
    let group = match (attrs.get(daemon_attr::MCAST_GROUP), attrs.get(daemon_attr::MCAST_GROUP6)) {
        (Some(g), _) => Some(ctl_config::InetAddr::V4(nla_memcpy(&g))),
        (None, Some(g)) => Some(ctl_config::InetAddr::V6(nla_memcpy(&g))),
        (None, None) => None,
    };
    let cfg = ctl_config::DaemonConfig {
        state: state.get_u32().ok_or(EINVAL)? as i32,
        mcast_ifn: ctl_config::IfName::truncate(ifn.data()),
        syncid: syncid.get_u32().ok_or(EINVAL)?,
        sync_maxlen: attrs.get(daemon_attr::SYNC_MAXLEN).and_then(|a| a.get_u16()).unwrap_or(0),
        mcast_group: group,
        mcast_port: attrs.get(daemon_attr::MCAST_PORT).and_then(|a| a.get_u16()).unwrap_or(0),
        mcast_ttl: attrs.get(daemon_attr::MCAST_TTL).and_then(|a| a.get_u8()).unwrap_or(0),
    };
    cfg.check_group()?;
    // The sync protocol cannot carry mixed-family connections.
    if IPVS.get(info.net()).is_some_and(|ipvs| ipvs.sync.has_mixed_dests()) {
        return Err(EINVAL);
    }
    ctl::start_daemon(info.net(), &cfg)
}

/// Registers the family (module init); dropping the result unregisters it.
pub(crate) fn register(module: &'static ThisModule) -> Result<genetlink::Registration<IpvsFamily>> {
    genetlink::Registration::register(module)
}
