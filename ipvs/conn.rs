// SPDX-License-Identifier: GPL-2.0

//! The connection table: an RCU hash table of 128-byte entries keyed by the client
//! <protocol, address, port>, expired by a slow timer.
//!
//! Lookups from the packet path walk a bucket's singly linked chain under RCU without locks.
//! Insertion and removal take one of a fixed array of bucket-group spinlocks (BH-safe: the
//! timer and the packet path run in softirq context). Entries live in a dedicated slab cache
//! and are freed after a grace period (`call_rcu`).
//!
//! Instead of upstream's `timer_list` per connection, a single timer per namespace ticks
//! eight times a second and sweeps a bounded batch of buckets, so a full table costs a
//! bounded amount of work per tick and no timer state per entry. Each bucket keeps a lower
//! bound of its entries' expiry times (`due`), so the sweep reads an entry only when its
//! bucket may hold one that is due, not every entry every eight seconds.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_conn.c`

use crate::{
    hash,
    proto_tcp::{self, Direction, Event, TcpState},
    service::Dest,
    uapi::conn_flags,
};
use core::{
    mem::size_of,
    ptr::{self, NonNull},
    sync::atomic::{AtomicI32, AtomicPtr, AtomicU16, AtomicU32, AtomicU64, Ordering::*},
};
use kernel::{
    alloc::{
        flags::{GFP_ATOMIC, GFP_KERNEL},
        KBox, KVec, VVec,
    },
    bindings,
    new_spinlock_bh,
    c_str,
    prelude::*,
    proc_fs::SeqCursor,
    slab::KmemCache,
    sync::{rcu, Arc, SpinLockBh},
    timer::{jiffies_64, Timer, TimerCallback},
};

/// Parameters identifying a connection, as seen on the wire.
#[derive(Clone, Copy)]
pub(crate) struct ConnParam {
    pub(crate) af: u16,
    pub(crate) protocol: u8,
    pub(crate) caddr: [u8; 16],
    pub(crate) cport: [u8; 2],
    pub(crate) vaddr: [u8; 16],
    pub(crate) vport: [u8; 2],
}

/// A connection entry.
///
/// # Invariants
///
/// `dest` is null or comes from `Arc::into_raw` and is owned by the entry; it changes only
/// from null to such a pointer, once, while the entry is linked and its bucket lock is held
/// ([`ConnTable::bind_synced`]). The entry is reachable from the table only while linked;
/// after unlinking it is freed once, after a grace period.
#[repr(C)]
pub(crate) struct Conn {
    // First cache line: what a lookup reads of every entry of a bucket (the link, the client
    // and virtual tuples, the flags), so that walking a chain costs one line per entry.
    next: AtomicPtr<Conn>,
    pub(crate) caddr: [u8; 16],
    pub(crate) vaddr: [u8; 16],
    pub(crate) cport: [u8; 2],
    pub(crate) vport: [u8; 2],
    pub(crate) dport: [u8; 2],
    pub(crate) af: u8,
    pub(crate) protocol: u8,
    /// `IP_VS_CONN_F_*`.
    pub(crate) flags: AtomicU32,
    /// Protocol state (`TcpState` for TCP).
    state: AtomicU16,
    /// The state last synchronised to backups, or seen by the last client packet
    /// (`old_state`): a change forces a sync message.
    pub(crate) old_state: AtomicU16,
    /// Timeout of the current state, in jiffies.
    timeout: AtomicU32,
    /// Packets seen from the client (sync threshold).
    pub(crate) in_pkts: AtomicU32,
    // Second cache line: the rest of a matching entry.
    pub(crate) daddr: [u8; 16],
    /// Jiffies at which the entry expires.
    expires: AtomicU64,
    /// The real server; null for an entry learned from a master before this director knew
    /// the server (upstream's unbound `cp->dest == NULL`).
    dest: AtomicPtr<Dest>,
    /// The persistence template controlling this connection, or null. Holds one of the
    /// template's control references (see `ctl`).
    control: *const Conn,
    /// Of a template: bit 0 while it is linked in the table, plus 2 for each connection it
    /// controls. Whoever brings it to 0 frees the template, so a template outlives its
    /// connections however the two are removed (expiry, flush).
    ctl: AtomicU32,
    /// Low 32 bits of the jiffies at which backups would expire their copy, with the sync
    /// retries in the two low bits (`sync_endtime`); see [`crate::sync`].
    pub(crate) sync_endtime: AtomicU32,
    /// Only used to free the entry after a grace period.
    rcu: bindings::callback_head,
}

// The seed's budget: a connection costs at most 128 bytes, IPv6-sized addresses included.
const _: () = assert!(size_of::<Conn>() <= 128);
// Lookups compare only fields of the first 64 bytes before a match (see `matches_in`).
const _: () = assert!(core::mem::offset_of!(Conn, in_pkts) + 4 <= 64);

// SAFETY: The fields are atomics or immutable after insertion; `dest` is an `Arc` or null.
unsafe impl Send for Conn {}
// SAFETY: As above.
unsafe impl Sync for Conn {}

impl Conn {
    /// The real server; `None` while a synced entry is unbound (its server unknown here).
    pub(crate) fn dest(&self) -> Option<&Dest> {
        // SAFETY: By the type invariants `dest` is null or a live `Arc` owned by the entry,
        // which it keeps until the entry is dropped.
        unsafe { self.dest.load(Acquire).as_ref() }
    }

    /// A new reference to the real server, if the entry has one.
    pub(crate) fn dest_arc(&self) -> Option<Arc<Dest>> {
        let d = self.dest.load(Acquire);
        if d.is_null() {
            return None;
        }
        // SAFETY: By the type invariants a non-null `dest` is a live `Arc` owned by the
        // entry, for at least as long as `self` is borrowed.
        Some(unsafe { kernel::sync::ArcBorrow::from_raw(d) }.into())
    }

    /// The family of the real server's address (upstream's `cp->daf`): the server's own, or
    /// the entry's while unbound (sync knows no mixed families).
    pub(crate) fn daf(&self) -> u16 {
        self.dest().map_or(u16::from(self.af), |d| d.info.af)
    }

    /// The forwarding method.
    pub(crate) fn fwd_method(&self) -> u32 {
        self.flags.load(Relaxed) & conn_flags::FWD_MASK
    }

    /// Whether a new connection from the same client port may replace this one
    /// (`is_new_conn_expected`): a TCP connection that is closing, or with `conn_reuse_mode`
    /// bit 2, one in FIN_WAIT whose replies the director does not see.
    pub(crate) fn reusable(&self, conn_reuse_mode: i32) -> bool {
        if !self.control.is_null() || self.protocol != crate::proto::IPPROTO_TCP {
            return false;
        }
        let state = TcpState::from_u8(self.state.load(Relaxed) as u8);
        matches!(state, Some(TcpState::TimeWait | TcpState::Close))
            || (conn_reuse_mode & 2 != 0
                && state == Some(TcpState::FinWait)
                && self.flags.load(Relaxed) & conn_flags::NOOUTPUT != 0)
    }

    /// The protocol state.
    pub(crate) fn state(&self) -> u16 {
        self.state.load(Relaxed)
    }

    /// Jiffies left until the entry expires, 0 once it is due.
    pub(crate) fn expires_in(&self, now: u64) -> u64 {
        self.expires.load(Relaxed).saturating_sub(now)
    }

    /// Upstream's name of the connection's state (`ip_vs_state_name`).
    pub(crate) fn state_name(&self) -> &'static str {
        if self.is_template() {
            return if self.state() & CTPL_S_ASSURED != 0 {
                "ASSURED"
            } else {
                "NONE"
            };
        }
        match self.protocol {
            crate::proto::IPPROTO_TCP => {
                TcpState::from_u8(self.state() as u8).map_or("ERR!", TcpState::name)
            }
            crate::proto::IPPROTO_UDP => "UDP",
            0 => "NONE",
            _ => "ERR!",
        }
    }

    /// Connections this entry controls (persistence templates).
    pub(crate) fn n_control(&self) -> u32 {
        self.ctl.load(Relaxed) >> 1
    }

    /// Whether this is a persistence template.
    pub(crate) fn is_template(&self) -> bool {
        self.flags.load(Relaxed) & conn_flags::TEMPLATE != 0
    }

    /// Takes a control reference on a template for a new connection; fails once the
    /// template left the table (it is about to go away).
    fn get_control(&self) -> bool {
        let mut cur = self.ctl.load(Relaxed);
        loop {
            if cur & 1 == 0 {
                return false;
            }
            match self.ctl.compare_exchange(cur, cur + 2, AcqRel, Relaxed) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    /// Marks a template as no longer valid for new connections (its real server went away
    /// or was quiesced): lookups skip it; it expires once it controls nothing.
    pub(crate) fn invalidate(&self) {
        self.flags.fetch_or(F_INVALID, Relaxed);
    }

    /// Restarts a template's timeout (upstream refreshes it on every use).
    pub(crate) fn refresh_template(&self, tab: &ConnTable) {
        self.touch(tab, jiffies_64());
    }

    /// Sets the expiry to the current timeout from `now`; when that is earlier than before
    /// (a shorter timeout), lowers the bucket's bound so that the sweep does not miss it.
    fn touch(&self, tab: &ConnTable, now: u64) {
        let new = now + self.timeout.load(Relaxed) as u64;
        // An exchange rather than a store: of two CPUs refreshing the entry at once (the
        // two directions of a NAT connection), the one that lowers the expiry knows it.
        if new < self.expires.swap(new, Relaxed) {
            tab.lower_due(tab.bucket_of(self), new, now);
        }
    }

    /// Moves a TCP connection along its state machine after a segment with `tcp_flags`
    /// travelling `output` (server to client) or not, keeping the destination's active
    /// counter in step, then refreshes the timeout.
    #[allow(dead_code)] // Used by the KUnit tests.
    pub(crate) fn tcp_transition(
        &self,
        tab: &ConnTable,
        output: bool,
        tcp_flags: u8,
        timeouts: &[AtomicU32; proto_tcp::NR_STATES],
    ) {
        self.tcp_transition_in(tab, output, tcp_flags, timeouts, false);
    }

    /// As [`Self::tcp_transition`], with the `secure_tcp` state tables when `secure`.
    pub(crate) fn tcp_transition_in(
        &self,
        tab: &ConnTable,
        output: bool,
        tcp_flags: u8,
        timeouts: &[AtomicU32; proto_tcp::NR_STATES],
        secure: bool,
    ) {
        let dir = if output {
            self.flags.fetch_and(!conn_flags::NOOUTPUT, Relaxed);
            Direction::Output
        } else if self.flags.load(Relaxed) & conn_flags::NOOUTPUT != 0 {
            Direction::InputOnly
        } else {
            Direction::Input
        };
        let ev = Event::from_flags(tcp_flags);
        let mut cur = self.state.load(Relaxed);
        let (old, new) = loop {
            let from = TcpState::from_u8(cur as u8).unwrap_or(TcpState::None);
            let to = proto_tcp::next_state_in(from, dir, ev, secure);
            match self.state.compare_exchange(cur, to as u16, Relaxed, Relaxed) {
                Ok(_) => break (from, to),
                Err(now) => cur = now,
            }
        };
        if new != old && new == TcpState::Established {
            self.assure_control();
        }
        if new.is_active() {
            if self.flags.fetch_and(!conn_flags::INACTIVE, Relaxed) & conn_flags::INACTIVE != 0 {
                if let Some(d) = self.dest() {
                    d.info.activeconns.fetch_add(1, Relaxed);
                }
            }
        } else if self.flags.fetch_or(conn_flags::INACTIVE, Relaxed) & conn_flags::INACTIVE == 0 {
            if let Some(d) = self.dest() {
                d.info.activeconns.fetch_sub(1, Relaxed);
            }
        }
        self.timeout
            .store(timeouts[new as usize].load(Relaxed), Relaxed);
        self.touch(tab, jiffies_64());
    }

    /// Marks the persistence template controlling this connection as assured: the
    /// connection was answered (`ip_vs_control_assure_ct`). Shown by `/proc`.
    pub(crate) fn assure_control(&self) {
        // SAFETY: A controlled connection holds a control reference on its template, which
        // keeps it allocated while `self` is.
        if let Some(t) = unsafe { self.control.as_ref() } {
            t.state.fetch_or(CTPL_S_ASSURED, Relaxed);
        }
    }

    /// Refreshes a connection whose protocol has a single state with `timeout` jiffies.
    pub(crate) fn refresh(&self, tab: &ConnTable, timeout: u32) {
        self.timeout.store(timeout, Relaxed);
        self.touch(tab, jiffies_64());
    }

    /// The timeout of the current state, in jiffies.
    pub(crate) fn timeout(&self) -> u32 {
        self.timeout.load(Relaxed)
    }

    /// The persistence template controlling this connection.
    pub(crate) fn control(&self) -> Option<&Conn> {
        // SAFETY: A controlled connection holds a control reference on its template, which
        // keeps it allocated while `self` is.
        unsafe { self.control.as_ref() }
    }

    /// Takes what a master's sync message says of an entry this backup has already
    /// (`ip_vs_proc_conn`): the activity and sequence flags (the activity counted on the
    /// server), the state and the timeout, restarted from now.
    pub(crate) fn sync_update(&self, tab: &ConnTable, flags: u32, state: u16, timeout: u32) {
        let upd = conn_flags::INACTIVE | crate::sync_msg::conn_flags::SEQ_MASK;
        let old = self
            .flags
            .fetch_update(Relaxed, Relaxed, |f| Some((f & !upd) | (flags & upd)))
            .unwrap_or_else(|f| f);
        if let Some(d) = self.dest().filter(|_| !self.is_template()) {
            if (old ^ flags) & conn_flags::INACTIVE != 0 {
                if flags & conn_flags::INACTIVE != 0 {
                    d.info.activeconns.fetch_sub(1, Relaxed);
                } else {
                    d.info.activeconns.fetch_add(1, Relaxed);
                }
            }
        }
        self.state.store(state, Relaxed);
        self.old_state.store(state, Relaxed);
        self.timeout.store(timeout, Relaxed);
        self.touch(tab, jiffies_64());
    }

    fn matches_in(&self, p: &ConnParam) -> bool {
        // The most telling fields first; all in the entry's first cache line.
        self.cport == p.cport
            && self.caddr == p.caddr
            && self.vport == p.vport
            && self.vaddr == p.vaddr
            && self.protocol == p.protocol
            && self.af as u16 == p.af
            && self.flags.load(Relaxed) & conn_flags::TEMPLATE == 0
    }

    /// Matches a reply: from the real server <daddr, dport> to the client <caddr, cport>.
    fn matches_out(&self, p: &ConnParam) -> bool {
        // The client's tuple (first cache line) before the real server's address.
        self.cport == p.vport
            && self.caddr == p.vaddr
            && self.dport == p.cport
            && self.protocol == p.protocol
            && self.af as u16 == p.af
            && self.flags.load(Relaxed) & conn_flags::TEMPLATE == 0
            && self.daddr == p.caddr
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let d = *self.dest.get_mut();
        if !d.is_null() {
            // SAFETY: By the type invariants a non-null `dest` is an owned `Arc`, released
            // exactly here.
            drop(unsafe { Arc::from_raw(d) });
        }
    }
}

/// How an entry comes to be.
#[derive(Clone, Copy)]
enum Origin {
    /// A connection scheduled here.
    Conn,
    /// A persistence template made here.
    Template,
    /// Learned from a master (a connection or a template, as `flags` say).
    Sync { flags: u32, state: u16 },
}

/// The flags of a synced entry bound to `d` (`ip_vs_bind_dest` for `IP_VS_CONN_F_SYNC`): the
/// forwarding method and options of this director's server, never one-packet scheduling
/// (synced entries are looked up); a connection keeps the activity the master saw.
fn bound_sync_flags(flags: u32, d: &Dest) -> u32 {
    let mut df = d.conn_flags.load(Relaxed) & !conn_flags::ONE_PACKET;
    if flags & conn_flags::TEMPLATE == 0 {
        df &= !conn_flags::INACTIVE;
    }
    (flags & !(conn_flags::FWD_MASK | conn_flags::NOOUTPUT)) | df
}

/// Counts an entry with `flags` just bound to `d`: a template as a persistent connection, a
/// connection in the total and, unless inactive, the active count.
fn account_bound(d: &Dest, flags: u32) {
    if flags & conn_flags::TEMPLATE != 0 {
        d.info.persistconns.fetch_add(1, Relaxed);
        return;
    }
    d.info.conn_bound();
    if flags & conn_flags::INACTIVE == 0 {
        d.info.activeconns.fetch_add(1, Relaxed);
    }
}

/// Template state bit: a connection it controls was answered (`IP_VS_CTPL_S_ASSURED`).
const CTPL_S_ASSURED: u16 = 1;

/// Internal flag of a template that may no longer be used (upstream rehashes such a template
/// with impossible ports instead). Not one of the `IP_VS_CONN_F_*` bits shown to users.
pub(crate) const F_INVALID: u32 = 1 << 31;

/// The slab cache of connection entries, shared by all namespaces.
static CACHE: AtomicPtr<KmemCache<Conn>> = AtomicPtr::new(ptr::null_mut());

/// Owner of the connection slab cache; lives in the module object.
pub(crate) struct ConnCache {
    cache: KBox<KmemCache<Conn>>,
}

impl ConnCache {
    /// Creates the `ip_vs_conn` cache.
    pub(crate) fn new() -> Result<Self> {
        let mut cache = KBox::new(KmemCache::new(c_str!("ip_vs_conn"), 0)?, GFP_KERNEL)?;
        CACHE.store(&mut *cache, Release);
        Ok(Self { cache })
    }
}

impl Drop for ConnCache {
    fn drop(&mut self) {
        // Every namespace is gone and `rcu::barrier()` ran (module exit), so no entry is left.
        CACHE.store(ptr::null_mut(), Release);
        let _ = &self.cache;
    }
}

fn cache() -> Option<&'static KmemCache<Conn>> {
    // SAFETY: Null or the module's live cache; it is destroyed only after every namespace's
    // table was emptied and all RCU callbacks ran.
    unsafe { CACHE.load(Acquire).as_ref() }
}

/// Frees an entry that no table and no connection references any more, after a grace period.
fn free_later(c: &Conn) {
    // SAFETY: The entry is unreachable for new readers and unreferenced (the caller brought
    // its last reference to an end); the callback frees it after current readers are done.
    unsafe { bindings::call_rcu(ptr::addr_of!(c.rcu).cast_mut(), Some(conn_free_rcu)) };
}

unsafe extern "C" fn conn_free_rcu(head: *mut bindings::callback_head) {
    // SAFETY: `head` is the `rcu` field of an unlinked entry queued by `ConnTable::unlink`.
    let conn = unsafe { kernel::container_of!(head, Conn, rcu) }.cast_mut();
    if let (Some(c), Some(conn)) = (cache(), NonNull::new(conn)) {
        // SAFETY: The entry came from this cache, is unreachable (unlinked, grace period
        // over) and is freed only here.
        unsafe { c.free(conn) };
    }
}

const LOCK_BITS: u32 = 8;

/// How far ahead of the sweep a bucket's bound may lie, in jiffies: its entries are looked at
/// again within that time even if none expires sooner. Half the range of the 32-bit
/// comparison of `due_by`, so that a bound is never mistaken for one in the past.
const DUE_AHEAD: u64 = 1 << 30;

/// Whether bound `d` (low 32 bits of jiffies) is at or before `now` (ditto).
fn due_by(d: u32, now: u32) -> bool {
    now.wrapping_sub(d) as i32 >= 0
}

/// The bound to store for expiry time `expires`: in `[now, now + DUE_AHEAD]`, as 32 bits.
fn due_bound(expires: u64, now: u64) -> u32 {
    expires.max(now).min(now.saturating_add(DUE_AHEAD)) as u32
}

/// A namespace's connection table.
pub(crate) struct ConnTable {
    buckets: VVec<AtomicPtr<Conn>>,
    /// Per bucket, the low 32 bits of a time (jiffies) at or before which none of its entries
    /// expires. Inserting an entry and moving an expiry earlier lower it (always changing
    /// it, see `lower_due`); the sweep raises it, with a compare-and-exchange from the value
    /// it read before looking at the entries, so a lowering that raced with it wins.
    due: VVec<AtomicU32>,
    mask: u32,
    locks: KVec<Pin<KBox<SpinLockBh<()>>>>,
    seed: u32,
    count: AtomicU32,
    cursor: AtomicU32,
    /// `random_dropentry`'s countdown per client packet count.
    todrop_counter: [AtomicI32; 9],
    hz: u32,
}

// SAFETY: Buckets are atomics; entries are only changed under the bucket-group locks.
unsafe impl Send for ConnTable {}
// SAFETY: As above.
unsafe impl Sync for ConnTable {}

impl ConnTable {
    /// A table with `2^bits` buckets.
    pub(crate) fn new(bits: u32, hz: u32) -> Result<Self> {
        let size = 1usize << bits;
        let mut buckets = VVec::with_capacity(size, GFP_KERNEL)?;
        let mut due = VVec::with_capacity(size, GFP_KERNEL)?;
        let empty = due_bound(u64::MAX, jiffies_64());
        for _ in 0..size {
            buckets.push(AtomicPtr::new(ptr::null_mut()), GFP_KERNEL)?;
            due.push(AtomicU32::new(empty), GFP_KERNEL)?;
        }
        let nlocks = 1usize << LOCK_BITS.min(bits);
        let mut locks = KVec::with_capacity(nlocks, GFP_KERNEL)?;
        for _ in 0..nlocks {
            locks.push(KBox::pin_init(new_spinlock_bh!((), "ip_vs_conn_bucket"), GFP_KERNEL)?, GFP_KERNEL)?;
        }
        Ok(Self {
            buckets,
            due,
            mask: (size - 1) as u32,
            locks,
            // SAFETY: An FFI call with no additional requirements.
            seed: unsafe { bindings::get_random_u32() },
            count: AtomicU32::new(0),
            cursor: AtomicU32::new(0),
            todrop_counter: Default::default(),
            hz,
        })
    }

    /// Number of entries.
    #[allow(dead_code)] // Used by the KUnit tests.
    pub(crate) fn count(&self) -> u32 {
        self.count.load(Relaxed)
    }

    /// Number of buckets.
    pub(crate) fn size(&self) -> u32 {
        self.mask + 1
    }

    /// The bucket of <protocol, address, port> (`ip_vs_conn_hashkey`): an IPv6 address is
    /// hashed whole first, an IPv4 one taken as it is.
    fn hashkey(&self, af: u16, protocol: u8, addr: &[u8; 16], port: [u8; 2]) -> u32 {
        let a = if af == crate::ctl_config::AF_INET6 {
            hash::jhash_addr16(addr, self.seed)
        } else {
            u32::from_ne_bytes([addr[0], addr[1], addr[2], addr[3]])
        };
        hash::jhash_3words(
            a,
            u16::from_ne_bytes(port) as u32,
            protocol as u32,
            self.seed,
        ) & self.mask
    }

    /// The bucket entry `c` is linked in.
    fn bucket_of(&self, c: &Conn) -> u32 {
        self.hashkey(c.af as u16, c.protocol, &c.caddr, c.cport)
    }

    fn lock(&self, bucket: u32) -> kernel::sync::lock::Guard<'_, (), kernel::sync::lock::spinlock_bh::SpinLockBhBackend> {
        let n = self.locks.len();
        self.locks[bucket as usize & (n - 1)].lock()
    }

    fn find<'a>(&'a self, bucket: u32, f: impl Fn(&Conn) -> bool, _g: &'a rcu::Guard) -> Option<&'a Conn> {
        let mut p = self.buckets.get(bucket as usize)?.load(Acquire);
        // SAFETY: Entries reachable from a bucket are live until a grace period after they
        // are unlinked, and `_g` holds the read lock for `'a`.
        while let Some(c) = unsafe { p.as_ref() } {
            if f(c) {
                return Some(c);
            }
            p = c.next.load(Acquire);
        }
        None
    }

    /// The connection a client packet belongs to (`ip_vs_conn_in_get`).
    pub(crate) fn in_get<'a>(&'a self, p: &ConnParam, g: &'a rcu::Guard) -> Option<&'a Conn> {
        let b = self.hashkey(p.af, p.protocol, &p.caddr, p.cport);
        self.find(b, |c| c.matches_in(p), g)
    }

    /// The connection a reply from a real server belongs to (`ip_vs_conn_out_get`): `p` holds
    /// the reply's source as `caddr/cport` and its destination as `vaddr/vport`.
    pub(crate) fn out_get<'a>(&'a self, p: &ConnParam, g: &'a rcu::Guard) -> Option<&'a Conn> {
        let b = self.hashkey(p.af, p.protocol, &p.vaddr, p.vport);
        self.find(b, |c| c.matches_out(p), g)
    }

    /// The valid persistence template for `p` (`ip_vs_ct_in_get`): `p.caddr` is the masked
    /// client address, `p.cport` 0.
    pub(crate) fn template_get<'a>(&'a self, p: &ConnParam, g: &'a rcu::Guard) -> Option<&'a Conn> {
        let b = self.hashkey(p.af, p.protocol, &p.caddr, p.cport);
        self.find(
            b,
            |c| {
                c.cport == p.cport
                    && c.caddr == p.caddr
                    && c.vport == p.vport
                    && c.vaddr == p.vaddr
                    && c.protocol == p.protocol
                    && c.af as u16 == p.af
                    && {
                        let f = c.flags.load(Relaxed);
                        f & conn_flags::TEMPLATE != 0 && f & F_INVALID == 0
                    }
            },
            g,
        )
    }

    /// Creates and links a persistence template <`p`, `daddr`, `dport`> to `dest` that
    /// lasts `timeout` jiffies after its last use (`ip_vs_conn_new` with
    /// `IP_VS_CONN_F_TEMPLATE`). It counts as a persistent connection of `dest`.
    pub(crate) fn new_template<'a>(
        &'a self,
        p: &ConnParam,
        daddr: [u8; 16],
        dport: [u8; 2],
        dest: &Arc<Dest>,
        timeout: u32,
        g: &'a rcu::Guard,
    ) -> Result<&'a Conn> {
        self.insert(p, daddr, dport, Some(dest), timeout, None, Origin::Template, g)
    }

    /// Creates and links a connection to `dest` (`ip_vs_conn_new`), counting it as inactive
    /// until its protocol says otherwise.
    pub(crate) fn new_conn<'a>(
        &'a self,
        p: &ConnParam,
        daddr: [u8; 16],
        dport: [u8; 2],
        dest: &Arc<Dest>,
        timeout: u32,
        g: &'a rcu::Guard,
    ) -> Result<&'a Conn> {
        self.insert(p, daddr, dport, Some(dest), timeout, None, Origin::Conn, g)
    }

    /// As [`Self::new_conn`], for a connection controlled by the persistence template
    /// `control` (`ip_vs_control_add`). `EAGAIN` if the template is going away.
    pub(crate) fn new_controlled<'a>(
        &'a self,
        p: &ConnParam,
        daddr: [u8; 16],
        dport: [u8; 2],
        dest: &Arc<Dest>,
        timeout: u32,
        control: &'a Conn,
        g: &'a rcu::Guard,
    ) -> Result<&'a Conn> {
        self.insert(p, daddr, dport, Some(dest), timeout, Some(control), Origin::Conn, g)
    }

    /// Creates and links an entry learned from a master's sync message (`ip_vs_conn_new`
    /// with `IP_VS_CONN_F_SYNC` and `ip_vs_bind_dest`): the forwarding method comes from
    /// `dest` (this director's configuration); a connection keeps the activity the master
    /// saw, counted on `dest` at once. `flags` must include `IP_VS_CONN_F_SYNC`.
    ///
    /// Without `dest` (no service or real server of this director matches the record) the
    /// entry is unbound, as upstream keeps it: it has the master's flags, forwarding method
    /// included, counts on no server, and may be bound later ([`Self::bind_synced`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_synced<'a>(
        &'a self,
        p: &ConnParam,
        daddr: [u8; 16],
        dport: [u8; 2],
        dest: Option<&Arc<Dest>>,
        flags: u32,
        state: u16,
        timeout: u32,
        g: &'a rcu::Guard,
    ) -> Result<&'a Conn> {
        self.insert(p, daddr, dport, dest, timeout, None, Origin::Sync { flags, state }, g)
    }

    #[allow(clippy::too_many_arguments)]
    fn insert<'a>(
        &'a self,
        p: &ConnParam,
        daddr: [u8; 16],
        dport: [u8; 2],
        dest: Option<&Arc<Dest>>,
        timeout: u32,
        control: Option<&'a Conn>,
        origin: Origin,
        g: &'a rcu::Guard,
    ) -> Result<&'a Conn> {
        let cache = cache().ok_or(ENOMEM)?;
        let dest_flags = dest.map_or(0, |d| d.conn_flags.load(Relaxed));
        let (flags, state) = match origin {
            Origin::Conn => (dest_flags | conn_flags::INACTIVE, 0),
            // Only templates visible to lookups can control several connections.
            Origin::Template => {
                let df = dest_flags & !conn_flags::ONE_PACKET;
                (df | conn_flags::INACTIVE | conn_flags::TEMPLATE, 0)
            }
            Origin::Sync { flags, state } => match dest {
                Some(d) => (bound_sync_flags(flags, d), state),
                None => (flags, state),
            },
        };
        let flags = flags | conn_flags::HASHED;
        let template = flags & conn_flags::TEMPLATE != 0;
        let synced = matches!(origin, Origin::Sync { .. });
        if let Some(t) = control {
            if !t.get_control() {
                return Err(EAGAIN);
            }
        }
        let bucket = self.hashkey(p.af, p.protocol, &p.caddr, p.cport);
        let now = jiffies_64();
        let conn = Conn {
            next: AtomicPtr::new(ptr::null_mut()),
            // SAFETY: All-zeroes is a valid unused `callback_head`.
            rcu: unsafe { core::mem::zeroed() },
            caddr: p.caddr,
            vaddr: p.vaddr,
            daddr,
            cport: p.cport,
            vport: p.vport,
            dport,
            af: p.af as u8,
            protocol: p.protocol,
            flags: AtomicU32::new(flags),
            state: AtomicU16::new(state),
            old_state: AtomicU16::new(state),
            timeout: AtomicU32::new(timeout),
            in_pkts: AtomicU32::new(0),
            expires: AtomicU64::new(now + timeout as u64),
            dest: AtomicPtr::new(dest.map_or(ptr::null_mut(), |d| {
                Arc::into_raw(d.clone()).cast_mut()
            })),
            control: control.map_or(ptr::null(), |t| t as *const Conn),
            ctl: AtomicU32::new(u32::from(template)),
            sync_endtime: AtomicU32::new(0),
        };
        // On allocation failure `conn` is dropped here, releasing its `dest` reference.
        let c = match cache.alloc(conn, GFP_ATOMIC) {
            Ok(c) => c,
            Err(e) => {
                if let Some(t) = control {
                    self.put_control(t);
                }
                return Err(e.into());
            }
        };
        if let Some(dest) = dest {
            account_bound(dest, flags);
            if !template && !synced {
                dest.stats.count_conn();
                if let Some(s) = dest.svc_stats(g) {
                    s.count_conn();
                }
            }
        }
        {
            let _l = self.lock(bucket);
            let head = &self.buckets[bucket as usize];
            // SAFETY: `c` is a fresh, exclusively owned entry.
            unsafe { (*c.as_ptr()).next.store(head.load(Relaxed), Relaxed) };
            head.store(c.as_ptr(), Release);
        }
        self.lower_due(bucket, now + timeout as u64, now);
        self.count.fetch_add(1, Relaxed);
        // SAFETY: Linked above; it stays live for the read-side section `g` covers.
        Ok(unsafe { &*c.as_ptr() })
    }

    /// Binds an unbound synced entry to `dest`, now that a record found its server
    /// (`ip_vs_try_bind_dest`): it takes the server's forwarding method and options and
    /// counts there. Nothing if it is bound already or no longer in the table (whose
    /// removal, under the same lock, uncounts only what was counted).
    pub(crate) fn bind_synced(&self, cp: &Conn, dest: &Arc<Dest>) {
        let bucket = self.bucket_of(cp);
        let _l = self.lock(bucket);
        if !cp.dest.load(Relaxed).is_null() || !self.linked_locked(bucket, cp) {
            return;
        }
        let old = cp
            .flags
            .fetch_update(Relaxed, Relaxed, |f| Some(bound_sync_flags(f, dest)))
            .unwrap_or_else(|f| f);
        // INVARIANT: Set once, from null, while `cp` is linked and its bucket lock is held.
        cp.dest.store(Arc::into_raw(dest.clone()).cast_mut(), Release);
        account_bound(dest, bound_sync_flags(old, dest));
    }

    /// Whether `target` is linked in `bucket` (lock held).
    fn linked_locked(&self, bucket: u32, target: &Conn) -> bool {
        let Some(head) = self.buckets.get(bucket as usize) else {
            return false;
        };
        let mut p = head.load(Relaxed);
        // SAFETY: Entries linked in a bucket are live while its lock is held.
        while let Some(c) = unsafe { p.as_ref() } {
            if ptr::eq(c, target) {
                return true;
            }
            p = c.next.load(Relaxed);
        }
        false
    }

    /// Unlinks `target` from its bucket (lock held) and queues it for freeing; false if it
    /// was already gone.
    fn unlink_locked(&self, bucket: u32, target: *mut Conn) -> bool {
        let mut link = &self.buckets[bucket as usize];
        loop {
            let p = link.load(Relaxed);
            if p.is_null() {
                return false;
            }
            // SAFETY: `p` is linked and we hold the bucket lock, so it is live.
            let c = unsafe { &*p };
            if p == target {
                link.store(c.next.load(Relaxed), Release);
                self.count.fetch_sub(1, Relaxed);
                self.account_gone(c);
                if c.is_template() {
                    // The table's reference; connections may still hold theirs.
                    if c.ctl.fetch_sub(1, AcqRel) == 1 {
                        free_later(c);
                    }
                } else {
                    if let Some(t) = NonNull::new(c.control.cast_mut()) {
                        // SAFETY: The connection holds a control reference on its template,
                        // which keeps it allocated.
                        self.put_control(unsafe { t.as_ref() });
                    }
                    free_later(c);
                }
                return true;
            }
            link = &c.next;
        }
    }

    /// Drops a connection's control reference on template `t` (`ip_vs_control_del`).
    fn put_control(&self, t: &Conn) {
        if t.ctl.fetch_sub(2, AcqRel) == 2 {
            // Unlinked already, and this was the last connection.
            free_later(t);
        }
    }

    fn account_gone(&self, c: &Conn) {
        let Some(d) = c.dest() else {
            return;
        };
        if c.is_template() {
            d.info.persistconns.fetch_sub(1, Relaxed);
            return;
        }
        if c.flags.load(Relaxed) & conn_flags::INACTIVE == 0 {
            d.info.activeconns.fetch_sub(1, Relaxed);
        }
        d.info.conn_unbound();
    }

    /// Lowers bucket `b`'s bound to cover an entry expiring at `expires`. The new value is
    /// one below the lower of the two, so that it differs from the old one even when that
    /// was lower already: a sweep that read the old value then fails to replace it.
    fn lower_due(&self, b: u32, expires: u64, now: u64) {
        let e = due_bound(expires, now);
        let _ = self.due[b as usize].fetch_update(Release, Relaxed, |d| {
            Some(if due_by(e, d) { e } else { d }.wrapping_sub(1))
        });
    }

    /// Expires entries in the next batch of buckets (the slow timer's work, every
    /// [`EXPIRY_TICKS_PER_SEC`]th of a second): 1/64 of the table and at least 128 buckets,
    /// so that a full sweep takes at most eight seconds and no tick walks more than a sixty-
    /// fourth of a large table. Only buckets whose bound has come are looked into.
    pub(crate) fn expire_batch(&self, now: u64) {
        let size = self.size();
        let batch = (size / 64).max(128).min(size);
        let start = self.cursor.fetch_add(batch, Relaxed);
        for k in 0..batch {
            let b = start.wrapping_add(k) & self.mask;
            if due_by(self.due[b as usize].load(Relaxed), now as u32) {
                self.sweep_bucket(b, now, |c| c.expires.load(Relaxed) <= now);
            }
        }
    }

    /// Unlinks the entries of bucket `b` that `dead` picks, but templates that still control
    /// connections, and sets the bucket's bound to the earliest expiry of those left.
    fn sweep_bucket(&self, b: u32, now: u64, dead: impl Fn(&Conn) -> bool) {
        let gone = |c: &Conn| c.n_control() == 0 && dead(c);
        // Acquire: the entries and expiry times of the lowerings this value includes.
        let due = self.due[b as usize].load(Acquire);
        let mut first = u64::MAX;
        // Look without the lock first: most buckets hold nothing to remove, and the packet
        // path contends for the same locks. An entry that dies meanwhile goes next time.
        let found = {
            let _g = rcu::read_lock();
            let mut p = self.buckets[b as usize].load(Acquire);
            let mut found = false;
            // SAFETY: Entries reachable from a bucket are live until a grace period after
            // they are unlinked, and `_g` holds the read lock.
            while let Some(c) = unsafe { p.as_ref() } {
                if gone(c) {
                    found = true;
                    break;
                }
                first = first.min(c.expires.load(Relaxed));
                p = c.next.load(Acquire);
            }
            found
        };
        if found {
            first = u64::MAX;
            let _l = self.lock(b);
            let mut p = self.buckets[b as usize].load(Relaxed);
            while !p.is_null() {
                // SAFETY: Linked entries are live while we hold the bucket lock.
                let c = unsafe { &*p };
                let next = c.next.load(Relaxed);
                if gone(c) {
                    self.unlink_locked(b, p);
                } else {
                    first = first.min(c.expires.load(Relaxed));
                }
                p = next;
            }
        }
        // Fails if an insertion or an earlier expiry lowered the bound meanwhile: it stays.
        let _ = self.due[b as usize].compare_exchange(due, due_bound(first, now), Relaxed, Relaxed);
    }

    /// Drops random entries when memory is short (`ip_vs_random_dropentry`): every call looks
    /// at 1/32 of the buckets, chosen at random, and removes half-open TCP connections,
    /// unanswered templates and, at a rate falling with their packet count (0 to 8 packets
    /// from the client), established or other connections idle for a minute or more.
    pub(crate) fn random_dropentry(&self, now: u64) {
        for i in 0..(self.size() >> 5) {
            let b = crate::abi::random_u32() & self.mask;
            self.sweep_bucket(b, now, |c| self.todrop(c, now));
            // The defense work runs in process context: up to 2^22 buckets a call.
            if i % RESCHED_BUCKETS == RESCHED_BUCKETS - 1 {
                kernel::sched::cond_resched();
            }
        }
    }

    /// Whether `random_dropentry` removes `c`.
    fn todrop(&self, c: &Conn, now: u64) -> bool {
        if c.is_template() {
            if c.flags.load(Relaxed) & conn_flags::ONE_PACKET != 0 {
                return self.todrop_entry(c, now);
            }
            return c.state() & CTPL_S_ASSURED == 0;
        }
        if c.protocol == crate::proto::IPPROTO_TCP {
            return match TcpState::from_u8(c.state() as u8) {
                Some(TcpState::SynRecv | TcpState::SynAck) => true,
                Some(TcpState::Established) => self.todrop_entry(c, now),
                _ => false,
            };
        }
        self.todrop_entry(c, now)
    }

    /// `todrop_entry`: an entry idle for at least a minute with `i` packets from the client
    /// (0 to 8) is dropped once in `i` calls; none with 0 packets.
    fn todrop_entry(&self, c: &Conn, now: u64) -> bool {
        let idle = u64::from(c.timeout.load(Relaxed)).saturating_sub(c.expires_in(now));
        if idle < 60 * u64::from(self.hz) {
            return false;
        }
        let i = c.in_pkts.load(Relaxed) as usize;
        let Some(counter) = self.todrop_counter.get(i) else {
            return false;
        };
        if i == 0 || counter.fetch_sub(1, Relaxed).wrapping_sub(1) > 0 {
            return false;
        }
        counter.store(i as i32, Relaxed);
        true
    }

    /// Removes every entry (`ip_vs_conn_flush`).
    /// Process context only (control path, namespace teardown, module unload): it yields
    /// the CPU every [`RESCHED_BUCKETS`] buckets, which matters with up to 2^27 of them.
    pub(crate) fn flush(&self) {
        for b in 0..self.size() {
            if b % RESCHED_BUCKETS == RESCHED_BUCKETS - 1 {
                kernel::sched::cond_resched();
            }
            // An empty bucket needs no lock. The table is flushed once no packet reaches it
            // any more, so none fills meanwhile.
            if self.buckets[b as usize].load(Relaxed).is_null() {
                continue;
            }
            let _l = self.lock(b);
            loop {
                let p = self.buckets[b as usize].load(Relaxed);
                if p.is_null() {
                    break;
                }
                self.unlink_locked(b, p);
            }
        }
    }

    /// Entry `index` of bucket `bucket`, in chain order.
    pub(crate) fn nth<'a>(&'a self, bucket: usize, index: usize, _g: &'a rcu::Guard) -> Option<&'a Conn> {
        let mut p = self.buckets.get(bucket)?.load(Acquire);
        let mut i = 0;
        // SAFETY: Entries reachable from a bucket are live until a grace period after they
        // are unlinked, and `_g` holds the read lock for `'a`.
        while let Some(c) = unsafe { p.as_ref() } {
            if i == index {
                return Some(c);
            }
            i += 1;
            p = c.next.load(Acquire);
        }
        None
    }

    /// Moves `cur` to the first entry at or after it (buckets in order, chains in order);
    /// false past the last one. Process context: it yields the CPU every
    /// [`RESCHED_BUCKETS`] buckets, which a mostly empty table of 2^27 needs.
    pub(crate) fn seek(&self, cur: &mut SeqCursor) -> bool {
        let mut g = rcu::read_lock();
        let size = self.size() as usize;
        let mut walked = 0u32;
        while cur.bucket < size {
            if self.nth(cur.bucket, cur.index, &g).is_some() {
                return true;
            }
            cur.bucket += 1;
            cur.index = 0;
            walked = walked.wrapping_add(1);
            if walked % RESCHED_BUCKETS == 0 {
                g.cond_resched();
            }
        }
        false
    }

    /// Expires `cp` now (`ip_vs_conn_expire_now`).
    pub(crate) fn expire_now(&self, cp: &Conn) {
        let bucket = self.bucket_of(cp);
        let _l = self.lock(bucket);
        self.unlink_locked(bucket, (cp as *const Conn).cast_mut());
    }

    /// The configured tick rate.
    pub(crate) fn hz(&self) -> u32 {
        self.hz
    }
}

impl Drop for ConnTable {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Buckets a process-context walk of the table (flush, random drop) covers between two
/// chances for the scheduler to run.
const RESCHED_BUCKETS: u32 = 1024;

/// How often per second the slow timer expires a batch of buckets.
pub(crate) const EXPIRY_TICKS_PER_SEC: u32 = 8;

/// The slow timer: expire one batch of buckets, [`EXPIRY_TICKS_PER_SEC`] times a second.
pub(crate) struct Expiry {
    pub(crate) table: Arc<ConnTable>,
}

impl TimerCallback for Expiry {
    fn run(timer: &Timer<Self>) {
        let t = &timer.data().table;
        t.expire_batch(jiffies_64());
        timer.schedule_after((t.hz() / EXPIRY_TICKS_PER_SEC).max(1) as u64);
    }
}
