// SPDX-License-Identifier: GPL-2.0

//! Application helpers (`ip_vs_ftp`): the registry of helper modules, the binding of a
//! helper to new NAT connections whose virtual port it registered, the per-connection helper
//! state, the calls into the helper from the NAT paths, payload replacement and the TCP
//! sequence number adjustment that a change of payload length makes necessary.
//!
//! The 128-byte connection entry has room for a 4-byte index only: it names the helper, and
//! the rest of a connection's helper state (the helper's word and the two `ip_vs_seq`
//! records) is kept beside the entry (`conn_side.rs`), allocated when the connection is
//! bound and freed with the entry. Other connections pay nothing, and the number of
//! connections with a helper is bounded only by the connections a namespace may have.
//!
//! Differences from upstream: helpers register once for every namespace (upstream registers
//! them per namespace, with the same effect for a module's ports); the payload is rewritten
//! and sequence numbers adjusted here, not through conntrack's NAT helper (our IPVS does not
//! use conntrack).
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_app.c`, `ip_vs_proto_tcp.c` (`tcp_app_conn_bind`,
//! the application calls of `tcp_snat_handler`/`tcp_dnat_handler`), `ip_vs_conn.c`
//! (`ip_vs_conn_fill_cport`, `IP_VS_CONN_F_NO_CPORT` lookups)

use crate::{
    app_abi::{self, AppOps, CoreFns, PktAbi},
    conn::{Conn, ConnData, ConnParam, ConnTable},
    conn_side::{owner_of, Side, SideSlot, SideTable},
    proto::{self, IpHdr, IPPROTO_TCP},
    proto_tcp::TcpState,
    sync_msg,
    uapi::conn_flags,
};
use core::{
    ffi::{c_int, c_void},
    sync::atomic::{AtomicI32, AtomicPtr, AtomicU16, AtomicU32, Ordering::*},
};
use kernel::{
    bindings, c_str,
    error::code::*,
    kmod,
    net::skbuff::{Checksum, SkBuff},
    prelude::*,
    rcu_hash::{EntryRef, Item},
    sync::rcu,
};

/// `IP_VS_CONN_F_NO_CPORT`: an expected connection whose client port is not known yet.
pub(crate) const F_NO_CPORT: u32 = 0x0800;
/// `IP_VS_CONN_F_OUT_SEQ`, `IP_VS_CONN_F_IN_SEQ`.
const F_OUT_SEQ: u32 = 0x0200;
const F_IN_SEQ: u32 = 0x0400;

/// Helpers registered at once, at most.
const NAPPS: usize = 4;

/// The registered helpers (RCU: read in packet context, published by compare-and-swap;
/// unregistration waits for a grace period).
static APPS: [AtomicPtr<AppOps>; NAPPS] = [const { AtomicPtr::new(core::ptr::null_mut()) }; NAPPS];
/// Each helper's ports, host byte order, 0 for none; written before its table is published.
static PORTS: [[AtomicU16; app_abi::MAX_PORTS]; NAPPS] =
    [const { [const { AtomicU16::new(0) }; app_abi::MAX_PORTS] }; NAPPS];

/// Each helper's module, pinned by every connection bound to the helper; written before its
/// table is published.
static MODS: [AtomicPtr<bindings::module>; NAPPS] = [const { AtomicPtr::new(core::ptr::null_mut()) }; NAPPS];

/// Connections with [`F_NO_CPORT`] in the tables (`ip_vs_conn_no_cport_cnt`): lookups retry
/// with client port 0 only while there are some.
static NO_CPORT: AtomicU32 = AtomicU32::new(0);

/// One direction's sequence adjustment (`struct ip_vs_seq`).
struct Seq {
    init_seq: AtomicU32,
    delta: AtomicI32,
    previous_delta: AtomicI32,
}

/// Helper state of one connection.
pub(crate) struct AppConn {
    /// Address of the owning entry.
    owner: usize,
    /// The helper's module, pinned until the entry leaves the table.
    module: AtomicPtr<bindings::module>,
    /// The helper's word (`app_data`).
    data: AtomicU32,
    /// `IP_VS_CONN_F_OUT_SEQ`/`IN_SEQ` of this connection.
    seq_flags: AtomicU32,
    in_seq: Seq,
    out_seq: Seq,
}

impl Item for AppConn {
    fn take_ref(&self) -> Option<EntryRef<Self>> {
        None
    }
}

impl Side for AppConn {
    fn owner(&self) -> usize {
        self.owner
    }
}

const SEQ0: Seq = Seq { init_seq: AtomicU32::new(0), delta: AtomicI32::new(0), previous_delta: AtomicI32::new(0) };

/// The helper state of the connections of every namespace.
static STATES: SideSlot<AppConn> = SideSlot::new();

/// Creates the table of helper states (module load, before any namespace is set up).
pub(crate) fn install() -> Result {
    STATES.install(c_str!("ip_vs_app_conn"))
}

/// Drops the table of helper states (module unload).
pub(crate) fn remove() {
    STATES.remove();
}

/// The table of helper states.
pub(crate) fn states() -> Option<&'static SideTable<AppConn>> {
    STATES.get()
}

/// Registers a helper for `ports` (`register_ip_vs_app` + `register_ip_vs_app_inc`):
/// `EEXIST` if one of the same name is registered, `ENOSPC` when the registry is full.
///
/// # Safety
///
/// `ops` is null or a table valid and unchanged until [`unregister`], whose functions are
/// code of `module` (a live module, or null for code that is never unloaded); `ports` is
/// valid for `n` entries.
pub(crate) unsafe fn register(ops: *const AppOps, module: *mut bindings::module, ports: *const u16, n: usize) -> Result {
    // SAFETY: Null or valid, by the caller's guarantee.
    let Some(new) = (unsafe { ops.as_ref() }) else {
        return Err(EINVAL);
    };
    if ports.is_null() || n > app_abi::MAX_PORTS {
        return Err(EINVAL);
    }
    // SAFETY: `ports` is valid for `n` entries, by the caller's guarantee.
    let ports = unsafe { core::slice::from_raw_parts(ports, n) };
    let g = rcu::read_lock();
    for a in APPS.iter() {
        // SAFETY: Published tables are valid until unregistered (RCU read lock held).
        if let Some(o) = unsafe { a.load(Acquire).as_ref() } {
            if o.name == new.name {
                return Err(EEXIST);
            }
        }
    }
    drop(g);
    for (i, a) in APPS.iter().enumerate() {
        if !a.load(Acquire).is_null() {
            continue;
        }
        let Some(slot_ports) = PORTS.get(i) else { break };
        for (k, p) in slot_ports.iter().enumerate() {
            p.store(ports.get(k).copied().unwrap_or(0), Relaxed);
        }
        if let Some(m) = MODS.get(i) {
            m.store(module, Relaxed);
        }
        if a.compare_exchange(core::ptr::null_mut(), ops.cast_mut(), Release, Relaxed).is_ok() {
            return Ok(());
        }
    }
    Err(ENOSPC)
}

/// Unregisters a helper: connections bound to it stop calling it once the grace period
/// this waits for has passed.
pub(crate) fn unregister(ops: *const AppOps) {
    for a in APPS.iter() {
        let _ = a.compare_exchange(ops.cast_mut(), core::ptr::null_mut(), AcqRel, Relaxed);
    }
    rcu::synchronize_rcu();
}

/// The helper registered for `protocol` and virtual port `vport` (index + 1).
fn find(protocol: u8, vport: [u8; 2]) -> Option<u32> {
    let port = u16::from_be_bytes(vport);
    for (i, a) in APPS.iter().enumerate() {
        let Some(o) = unsafe_ops(a) else { continue };
        if o.protocol != protocol {
            continue;
        }
        if PORTS.get(i).is_some_and(|ps| ps.iter().any(|p| p.load(Relaxed) == port && port != 0)) {
            return Some(i as u32 + 1);
        }
    }
    None
}

/// A published table. Callers are in an RCU read-side critical section (packet hooks) or
/// hold a registration (the module that owns it).
fn unsafe_ops(a: &AtomicPtr<AppOps>) -> Option<&'static AppOps> {
    // SAFETY: A published table stays valid until unregistration, which waits for a grace
    // period after unpublishing it; the packet paths that call this hold the RCU read lock
    // for as long as they use the table.
    unsafe { a.load(Acquire).as_ref() }
}

/// The helper state of `c`, if it has one.
fn state_of<'a>(c: &ConnData, g: &'a rcu::Guard) -> Option<&'a AppConn> {
    if c.app.load(Acquire) == 0 {
        return None;
    }
    states()?.get(c, g)
}

/// Binds a new NAT connection to the helper registered for its virtual port
/// (`ip_vs_bind_app`, `tcp_app_conn_bind`), if any; also a synced one once a later record
/// finds its real server (`ip_vs_try_bind_dest`). Nothing if it has a helper already.
/// Without memory for the helper state the connection goes on without a helper.
pub(crate) fn bind(c: &Conn) {
    if c.fwd_method() != conn_flags::MASQ || c.protocol != IPPROTO_TCP || c.app.load(Acquire) != 0 {
        return;
    }
    let Some(app) = find(c.protocol, c.vport) else {
        return;
    };
    let Some(t) = states() else {
        return;
    };
    // The helper's module stays while the connection uses it (`ip_vs_app_inc_get`).
    let module = MODS.get(app as usize - 1).map_or(core::ptr::null_mut(), |m| m.load(Relaxed));
    // SAFETY: A registered helper's module is live: its table is published (we found it,
    // under the hook's RCU read lock) and unregistration waits for a grace period.
    if !module.is_null() && !unsafe { kmod::try_module_get(module) } {
        return;
    }
    let state = AppConn {
        owner: owner_of(c),
        module: AtomicPtr::new(module),
        data: AtomicU32::new(0),
        seq_flags: AtomicU32::new(0),
        in_seq: SEQ0,
        out_seq: SEQ0,
    };
    let g = rcu::read_lock();
    if t.attach(state, &g).is_ok() {
        c.app.store(app, Release);
    } else if !module.is_null() {
        // SAFETY: The reference taken above, given back: the state was not kept.
        unsafe { kmod::module_put(module) };
    }
}

/// Forgets the helper of an entry leaving the table (`ip_vs_unbind_app`): its module is
/// released now, its state goes with the entry's memory ([`drop_state`]). Also leaves the
/// count of connections without a client port.
pub(crate) fn gone(c: &ConnData) {
    if c.flags.load(Relaxed) & F_NO_CPORT != 0 {
        NO_CPORT.fetch_sub(1, Relaxed);
    }
    let g = rcu::read_lock();
    if let Some(s) = state_of(c, &g) {
        let module = s.module.swap(core::ptr::null_mut(), Relaxed);
        if !module.is_null() {
            // SAFETY: The reference `bind` took for this state, given back once (swapped out).
            unsafe { kmod::module_put(module) };
        }
    }
}

/// Frees the helper state of an entry whose memory is being freed (its `Drop`, outside any
/// bucket lock).
pub(crate) fn drop_state(c: &ConnData) {
    if let Some(t) = states() {
        t.detach(c);
        // Hand it to RCU now: after a namespace's teardown no slow timer of it is left to.
        t.submit();
    }
}

/// The sequence adjustment of `c` for a sync record (`IPVS_OPT_SEQ_DATA`): its
/// `IP_VS_CONN_F_IN_SEQ`/`OUT_SEQ` flags and `[in_seq, out_seq]`; `None` when it has none.
pub(crate) fn sync_seq(c: &ConnData, g: &rcu::Guard) -> Option<(u32, [sync_msg::Seq; 2])> {
    let s = state_of(c, g)?;
    let flags = s.seq_flags.load(Relaxed);
    if flags == 0 {
        return None;
    }
    let get = |q: &Seq| sync_msg::Seq {
        init_seq: q.init_seq.load(Relaxed),
        delta: q.delta.load(Relaxed) as u32,
        previous_delta: q.previous_delta.load(Relaxed) as u32,
    };
    Some((flags, [get(&s.in_seq), get(&s.out_seq)]))
}

/// Takes a master's sequence adjustment for the backup's copy `c` of a connection
/// (`ip_vs_proc_conn` copying the record's options), if `c` has a helper here.
pub(crate) fn set_sync_seq(c: &ConnData, flags: u32, seq: &[sync_msg::Seq; 2], g: &rcu::Guard) {
    let Some(s) = state_of(c, g) else {
        return;
    };
    for (q, v) in [(&s.in_seq, &seq[0]), (&s.out_seq, &seq[1])] {
        q.init_seq.store(v.init_seq, Relaxed);
        q.delta.store(v.delta as i32, Relaxed);
        q.previous_delta.store(v.previous_delta as i32, Relaxed);
    }
    s.seq_flags.store(flags & (F_IN_SEQ | F_OUT_SEQ), Relaxed);
}

/// Whether any connection waits for its client port.
pub(crate) fn no_cport_waiting() -> bool {
    NO_CPORT.load(Relaxed) != 0
}

/// `after(a, b)` of TCP sequence numbers.
fn after(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) < 0
}

/// `vs_fix_seq`.
fn fix_seq(q: &Seq, seq: u32) -> u32 {
    let (d, pd) = (q.delta.load(Relaxed), q.previous_delta.load(Relaxed));
    if d == 0 && pd == 0 {
        return seq;
    }
    if after(seq, q.init_seq.load(Relaxed)) {
        seq.wrapping_add(d as u32)
    } else {
        seq.wrapping_add(pd as u32)
    }
}

/// `vs_fix_ack_seq`.
fn fix_ack(q: &Seq, ack: u32) -> u32 {
    let (d, pd) = (q.delta.load(Relaxed), q.previous_delta.load(Relaxed));
    if d == 0 && pd == 0 {
        return ack;
    }
    if after(ack, q.init_seq.load(Relaxed).wrapping_add(d as u32)) {
        ack.wrapping_sub(d as u32)
    } else {
        ack.wrapping_sub(pd as u32)
    }
}

/// `vs_seq_update`.
fn seq_update(s: &AppConn, q: &Seq, flag: u32, seq: u32, diff: i32) {
    if s.seq_flags.load(Relaxed) & flag == 0 || after(seq, q.init_seq.load(Relaxed)) {
        q.previous_delta.store(q.delta.load(Relaxed), Relaxed);
        q.delta.store(q.delta.load(Relaxed).wrapping_add(diff), Relaxed);
        q.init_seq.store(seq, Relaxed);
        s.seq_flags.fetch_or(flag, Relaxed);
    }
}

/// What the core lends a helper during a callback.
struct CoreCtx<'a> {
    conns: &'a ConnTable,
    cp: &'a Conn,
    listen_timeout: u32,
    g: &'a rcu::Guard,
}

static CORE_FNS: CoreFns = CoreFns { expect: expect_trampoline };

unsafe extern "C" fn expect_trampoline(
    core: *mut c_void,
    kind: u32,
    addr: *const [u8; 16],
    port: *const [u8; 2],
    out_addr: *mut [u8; 16],
    out_port: *mut [u8; 2],
) -> c_int {
    // SAFETY: `core` is the `CoreCtx` `call` passes for the duration of the callback, and
    // the helper calls this only during it (contract of `app_abi::CoreFns`); the pointers
    // are to the helper's live locals.
    let (ctx, addr, port) = unsafe { (&*core.cast::<CoreCtx<'_>>(), &*addr, *port) };
    match expect(ctx, kind, addr, port) {
        Ok((a, p)) => {
            // SAFETY: As above.
            unsafe {
                *out_addr = a;
                *out_port = p;
            }
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// Finds or creates an expected data connection of the control connection `ctx.cp`
/// (`ip_vs_ftp_out`/`ip_vs_ftp_in`'s `ip_vs_conn_out_get`/`ip_vs_conn_in_get` and
/// `ip_vs_conn_new` with the control connection as controller), moves it to LISTEN
/// (`ip_vs_tcp_conn_listen`) and returns the virtual address and port it has.
fn expect(ctx: &CoreCtx<'_>, kind: u32, addr: &[u8; 16], port: [u8; 2]) -> Result<([u8; 16], [u8; 2])> {
    let cp = ctx.cp;
    let dest = cp.dest_arc().ok_or(ENOENT)?;
    let af = cp.af as u16;
    let n = match kind {
        app_abi::EXPECT_PASSIVE => {
            // The server <addr, port> will be reached at <vaddr, port> from any client port.
            let q = ConnParam { af, protocol: IPPROTO_TCP, caddr: *addr, cport: port, vaddr: cp.caddr, vport: [0, 0] };
            match ctx.conns.out_get(&q, ctx.g) {
                Some(n) => n,
                None => {
                    let p = ConnParam { af, protocol: IPPROTO_TCP, caddr: cp.caddr, cport: [0, 0], vaddr: cp.vaddr, vport: port };
                    let n = ctx.conns.new_expected(&p, *addr, port, &dest, ctx.listen_timeout, Some(cp), ctx.g)?;
                    n.flags.fetch_or(F_NO_CPORT, Relaxed);
                    NO_CPORT.fetch_add(1, Relaxed);
                    n
                }
            }
        }
        app_abi::EXPECT_ACTIVE => {
            // The server's port below the control connection's (20) to the client's
            // <addr, port>, seen as from the virtual port below the service's.
            let vport = u16::from_be_bytes(cp.vport).wrapping_sub(1).to_be_bytes();
            let dport = u16::from_be_bytes(cp.dport).wrapping_sub(1).to_be_bytes();
            let p = ConnParam { af, protocol: IPPROTO_TCP, caddr: *addr, cport: port, vaddr: cp.vaddr, vport };
            match ctx.conns.in_get(&p, ctx.g) {
                Some(n) => n,
                None => ctx.conns.new_expected(&p, cp.daddr, dport, &dest, ctx.listen_timeout, Some(cp), ctx.g)?,
            }
        }
        _ => return Err(EINVAL),
    };
    n.listen(ctx.conns, ctx.listen_timeout);
    Ok((n.vaddr, n.vport))
}

/// The connection an expected connection without client port becomes once its first packet
/// names the port (`ip_vs_conn_fill_cport`): our table cannot rehash an entry, so a new one
/// with the port takes its place and the old one goes.
pub(crate) fn fill_cport<'a>(
    conns: &'a ConnTable,
    p: &ConnParam,
    timeout: u32,
    g: &'a rcu::Guard,
) -> Option<&'a Conn> {
    let mut q = *p;
    q.cport = [0, 0];
    let old = conns.in_get(&q, g).filter(|c| c.flags.load(Relaxed) & F_NO_CPORT != 0)?;
    let dest = old.dest_arc()?;
    let new = conns.new_expected(p, old.daddr, old.dport, &dest, timeout, old.control(g), g).ok()?;
    if old.ref_count() == 0 {
        conns.expire_now(old);
    }
    Some(new)
}

/// The 4 bytes of `b` at `at`, if there.
fn get4(b: &[u8], at: usize) -> Option<[u8; 4]> {
    b.get(at..at.checked_add(4)?)?.try_into().ok()
}

/// Writes `v` at `at` of `b`, if there.
fn put_at(b: &mut [u8], at: usize, v: &[u8]) {
    if let Some(d) = at.checked_add(v.len()).and_then(|e| b.get_mut(at..e)) {
        d.copy_from_slice(v);
    }
}

/// The folded (not complemented) pseudo header sum of a TCP segment of `len` bytes: what
/// the checksum field holds while the checksum is left to the stack (`CHECKSUM_PARTIAL`).
fn pseudo_sum(ip: &IpHdr, len: usize) -> [u8; 2] {
    let mut acc: u64 = 0;
    let alen = if ip.is_v6() { 16 } else { 4 };
    for a in [&ip.saddr, &ip.daddr] {
        for w in a.get(..alen).unwrap_or(&[]).chunks(2) {
            acc += u64::from(u16::from_be_bytes([w.first().copied().unwrap_or(0), w.get(1).copied().unwrap_or(0)]));
        }
    }
    acc += u64::from(IPPROTO_TCP) + len as u64;
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    (acc as u16).to_be_bytes()
}

/// The full TCP checksum of an IPv4 or IPv6 segment `seg` (checksum field zeroed).
fn tcp_csum(ip: &IpHdr, seg: &[u8]) -> [u8; 2] {
    let mut acc: u64 = 0;
    let alen = if ip.is_v6() { 16 } else { 4 };
    for a in [&ip.saddr, &ip.daddr] {
        for w in a.get(..alen).unwrap_or(&[]).chunks(2) {
            acc += u64::from(u16::from_be_bytes([w.first().copied().unwrap_or(0), w.get(1).copied().unwrap_or(0)]));
        }
    }
    acc += u64::from(IPPROTO_TCP);
    acc += seg.len() as u64;
    for w in seg.chunks(2) {
        acc += u64::from(u16::from_be_bytes([w.first().copied().unwrap_or(0), w.get(1).copied().unwrap_or(0)]));
    }
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    let s = !(acc as u16);
    s.to_be_bytes()
}

/// The application call of a NAT connection's packet (`ip_vs_app_pkt_in` when `!out`, from
/// the client; `ip_vs_app_pkt_out` when `out`, from the real server), before its addresses
/// are rewritten: fixes its sequence numbers, lets the helper look at it and replaces what
/// the helper asks to, then recomputes its checksums. False: drop it.
#[inline]
pub(crate) fn pkt(
    conns: &ConnTable,
    skb: &mut SkBuff<'_>,
    ip: &IpHdr,
    cp: &Conn,
    out: bool,
    listen_timeout: u32,
    g: &rcu::Guard,
) -> bool {
    // Most connections have no helper: that test stays in the caller, without the call.
    cp.app.load(Acquire) == 0 || pkt_helper(conns, skb, ip, cp, out, listen_timeout, g)
}

/// [`pkt`] for a connection bound to a helper.
#[inline(never)]
fn pkt_helper(
    conns: &ConnTable,
    skb: &mut SkBuff<'_>,
    ip: &IpHdr,
    cp: &Conn,
    out: bool,
    listen_timeout: u32,
    g: &rcu::Guard,
) -> bool {
    let Some(s) = state_of(cp, g) else {
        return true;
    };
    if ip.protocol != IPPROTO_TCP || ip.fragment {
        return true;
    }
    let Some(ops) = APPS.get((cp.app.load(Relaxed) as usize).wrapping_sub(1)).and_then(unsafe_ops) else {
        return true;
    };
    let total = skb.len() as usize;
    let (seq_q, ack_q, seq_flag, ack_flag) = if out {
        (&s.out_seq, &s.in_seq, F_OUT_SEQ, F_IN_SEQ)
    } else {
        (&s.in_seq, &s.out_seq, F_IN_SEQ, F_OUT_SEQ)
    };
    // A received checksum is verified before the packet is changed (`tcp_csum_check`): the
    // full checksum written below would otherwise hide corruption.
    let partial = skb.checksum() == Checksum::Partial;
    let verify = !partial && skb.checksum() != Checksum::Unnecessary;
    // The whole packet, linear and private ("linear packets are much easier to deal with").
    let (seq, doff) = {
        let Ok(h) = skb.writable(total) else {
            return false;
        };
        let Some(t) = h.get_mut(ip.len..) else {
            return true;
        };
        if t.len() < 20 {
            return true;
        }
        if verify && tcp_csum(ip, t) != [0, 0] {
            return false;
        }
        let (Some(seq), Some(ack), Some(&off)) = (get4(t, 4), get4(t, 8), t.get(12)) else {
            return true;
        };
        let (seq, ack) = (u32::from_be_bytes(seq), u32::from_be_bytes(ack));
        let sf = s.seq_flags.load(Relaxed);
        let nseq = if sf & seq_flag != 0 { fix_seq(seq_q, seq) } else { seq };
        let nack = if sf & ack_flag != 0 { fix_ack(ack_q, ack) } else { ack };
        put_at(t, 4, &nseq.to_be_bytes());
        put_at(t, 8, &nack.to_be_bytes());
        (seq, usize::from(off >> 4) * 4)
    };
    let payload_at = ip.len + doff;
    let mut abi = PktAbi {
        data: core::ptr::null(),
        len: 0,
        af: cp.af as u16,
        established: cp.state() == TcpState::Established as u16,
        caddr: cp.caddr,
        vaddr: cp.vaddr,
        daddr: cp.daddr,
        cport: cp.cport,
        vport: cp.vport,
        dport: cp.dport,
        app_data: s.data.load(Relaxed),
        rw_set: false,
        rw_start: 0,
        rw_end: 0,
        rw_len: 0,
        rw_buf: [0; app_abi::REWRITE_MAX],
        core: &CORE_FNS,
        core_priv: core::ptr::null_mut(),
    };
    let ctx = CoreCtx { conns, cp, listen_timeout, g };
    abi.core_priv = (&ctx as *const CoreCtx<'_>).cast_mut().cast();
    let ok = {
        let Ok(h) = skb.writable(total) else {
            return false;
        };
        let payload = h.get(payload_at.min(total)..).unwrap_or(&[]);
        abi.data = payload.as_ptr();
        abi.len = if payload_at < total { payload.len() } else { 0 };
        // SAFETY: `ops` is a published table (RCU read lock `g` held); `abi` is valid and
        // its payload pointer stays valid during the call (the packet is not touched).
        let f = if out { ops.pkt_out } else { ops.pkt_in };
        unsafe { f(&mut abi) != 0 }
    };
    s.data.store(abi.app_data, Relaxed);
    if !ok {
        return false;
    }
    let mut diff = 0i32;
    if abi.rw_set {
        let (start, end, len) = (abi.rw_start, abi.rw_end, abi.rw_len.min(app_abi::REWRITE_MAX));
        let old_len = total.saturating_sub(payload_at);
        if start > end || end > old_len {
            return true;
        }
        let new_total = total - (end - start) + len;
        // The IPv4 total length, the IPv6 payload length (after the fixed header) must fit.
        let fixed = if ip.is_v6() { proto::IPV6_HLEN } else { 0 };
        if new_total.saturating_sub(fixed) > 0xffff {
            return false;
        }
        let Some(text) = abi.rw_buf.get(..len) else { return true };
        if new_total > total && skb.resize(new_total).is_err() {
            return false;
        }
        {
            let Ok(h) = skb.writable(new_total.max(total)) else {
                return false;
            };
            // Move the tail after the replaced range, then put the text in.
            let (a, b) = (payload_at + end, payload_at + start + len);
            if a <= total && b <= h.len() {
                h.copy_within(a..total, b);
                if let Some(dst) = h.get_mut(payload_at + start..payload_at + start + len) {
                    dst.copy_from_slice(text);
                }
            }
        }
        if new_total < total && skb.resize(new_total).is_err() {
            return false;
        }
        diff = new_total as i32 - total as i32;
    }
    // Headers after any change: IP length (and IPv4 header checksum), TCP checksum in full.
    let Ok(h) = skb.writable(total.wrapping_add(diff as usize)) else {
        return false;
    };
    let len = h.len();
    // Lengths are written only when they changed (a GRO packet may carry 0 for "too long").
    if diff != 0 && ip.is_v6() {
        // The payload length: extension headers and the segment (`mangle_contents`).
        let pl = len.saturating_sub(proto::IPV6_HLEN) as u16;
        put_at(h, 4, &pl.to_be_bytes());
    } else if diff != 0 {
        if let (Some(l), Some(c)) = (get4(h, 0), get4(h, 8)) {
            let (old, new) = ([l[2], l[3]], (len as u16).to_be_bytes());
            put_at(h, 2, &new);
            put_at(h, 10, &proto::csum_replace([c[2], c[3]], &old, &new));
        }
    }
    if let Some(t) = h.get_mut(ip.len..) {
        if t.len() >= 20 {
            if partial {
                // The stack (or the device) sums the segment later: the field holds the
                // pseudo header's sum, for the new length.
                put_at(t, 16, &pseudo_sum(ip, t.len()));
            } else {
                put_at(t, 16, &[0, 0]);
                let sum = tcp_csum(ip, t);
                put_at(t, 16, &sum);
            }
        }
    }
    if !partial {
        skb.set_csum_unnecessary();
    }
    if diff != 0 {
        let q = if out { &s.out_seq } else { &s.in_seq };
        let flag = if out { F_OUT_SEQ } else { F_IN_SEQ };
        seq_update(s, q, flag, seq, diff);
    }
    true
}
