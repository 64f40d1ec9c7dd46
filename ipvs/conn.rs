// SPDX-License-Identifier: GPL-2.0

//! The connection table: a resizable RCU hash table of 128-byte entries keyed by the client
//! <protocol, address, port>, expired by a slow timer.
//!
//! The table itself is `kernel::rcu_hash`: lookups from the packet path walk a chain under
//! RCU without locks, insertion and removal take one of 256 bucket-group spinlocks, unlinked
//! entries are freed in batches after a grace period. This file keeps what is IPVS's: the
//! entry, its hash, its lifetime rules (templates outlive the connections they control:
//! each holds a counted reference to its template), the expiry sweep, and the size policy.
//!
//! The bucket array follows the number of entries as upstream's does (`conn_lfactor`): the
//! slow timer compares the load with the thresholds of the current size and queues a work
//! item that moves the entries to an array of the size wanted, between 2^8 buckets and
//! `2^conn_tab_bits`, while packets go on being looked up. New connections are refused
//! beyond `conn_max`.
//!
//! Instead of upstream's `timer_list` per connection, a single timer per namespace ticks
//! eight times a second and sweeps a bounded batch of buckets, so a full table costs a
//! bounded amount of work per tick and no timer state per entry. Each bucket keeps a lower
//! bound of its entries' expiry times (`due`, the bucket's auxiliary value), so the sweep
//! reads an entry only when its bucket may hold one that is due, not every entry every
//! eight seconds.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_conn.c`

use crate::{
    conn_pe::{self, PeTable},
    hash,
    pe::{ModuleRef, PeData},
    proto::{IpHdr, Ports},
    proto_sctp,
    proto_tcp::{self, Event, TcpState},
    protocol::Protocol,
    service::Dest,
    uapi::conn_flags,
};
use core::{
    mem::size_of,
    sync::atomic::{AtomicBool, AtomicI32, AtomicU16, AtomicU32, AtomicU64, Ordering::*},
};
use kernel::{
    c_str, impl_has_work, new_work,
    once_arc::OnceArc,
    prelude::*,
    proc_fs::SeqCursor,
    rcu_hash::{self, EntryRef, HashTable, Histogram, Item, Pool, PoolSlot, RefSlot},
    sync::{rcu, Arc},
    sysctl::SysctlValues,
    timer::{jiffies_64, Timer, TimerCallback},
    workqueue::{self, Work, WorkItem},
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

/// A connection entry as the table holds it: the link, the [`ConnData`], the reference
/// count and hash of `kernel::rcu_hash`.
pub(crate) type Conn = rcu_hash::Entry<ConnData>;

/// The direction of a packet, for the state tables of TCP and SCTP.
enum PacketDir {
    /// From the server.
    Output,
    /// From the client, the director having seen the server's packets.
    Input,
    /// From the client, no packet from the server seen yet (`NOOUTPUT`).
    InputOnly,
}

/// What a connection entry holds.
#[repr(C)]
pub(crate) struct ConnData {
    // With the table's link before them, the first cache line: what a lookup reads of every
    // entry of a bucket (the client and virtual tuples, the flags), so that walking a chain
    // costs one line per entry.
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
    /// The real server; empty for an entry learned from a master before this director knew
    /// the server (upstream's unbound `cp->dest == NULL`), set once when it is bound.
    dest: OnceArc<Dest>,
    /// The persistence template controlling this connection: a counted reference that
    /// keeps it allocated, given back when this entry leaves the table.
    control: RefSlot<ConnData>,
    /// Low 32 bits of the jiffies at which backups would expire their copy, with the sync
    /// retries in the two low bits (`sync_endtime`); see [`crate::sync`].
    pub(crate) sync_endtime: AtomicU32,
    /// Index + 1 of the connection's application helper (`crate::app`), 0 for none; its
    /// state is kept beside the entry.
    pub(crate) app: AtomicU32,
}

// The seed's budget: a connection costs at most 128 bytes, IPv6-sized addresses included.
const _: () = assert!(size_of::<Conn>() <= 128);
// Lookups compare only fields of the first 64 bytes before a match (see `matches_in`): the
// table's 8-byte link, then these.
const _: () = assert!(8 + core::mem::offset_of!(ConnData, in_pkts) + 4 <= 64);

impl Drop for ConnData {
    fn drop(&mut self) {
        // The engine data of a template goes with its memory (see `conn_pe.rs`): freed
        // entries are dropped in RCU callbacks, outside the bucket locks.
        if *self.flags.get_mut() & F_PE != 0 {
            if let Some(t) = conn_pe::table() {
                t.detach(self);
                // Hand the data to RCU now: after a namespace's teardown no slow timer of
                // that namespace is left to do it, and the data pins the engine's module.
                t.submit();
            }
        }
        if *self.app.get_mut() != 0 {
            crate::app::drop_state(self);
        }
    }
}

impl Item for ConnData {
    fn take_ref(&self) -> Option<EntryRef<Self>> {
        self.control.take()
    }
}

impl ConnData {
    /// The real server; `None` while a synced entry is unbound (its server unknown here).
    #[inline]
    pub(crate) fn dest(&self) -> Option<&Dest> {
        self.dest.get()
    }

    /// A new reference to the real server, if the entry has one.
    pub(crate) fn dest_arc(&self) -> Option<Arc<Dest>> {
        self.dest.get_arc()
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
        Protocol::of(self.protocol).is_some_and(|p| {
            p.conn_reusable(
                self.state.load(Relaxed),
                self.has_control(),
                self.flags.load(Relaxed) & conn_flags::NOOUTPUT != 0,
                conn_reuse_mode,
            )
        })
    }

    /// Whether a persistence template controls this connection.
    pub(crate) fn has_control(&self) -> bool {
        let g = rcu::read_lock();
        self.control.get(&g).is_some()
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
        match Protocol::of(self.protocol) {
            Some(p) => p.state_name(self.state()),
            None if self.protocol == 0 => "NONE",
            None => "ERR!",
        }
    }

    /// Whether this is a one-packet connection (`IP_VS_CONN_F_ONE_PACKET`): made for one
    /// UDP datagram, invisible to lookups, gone once the datagram is sent.
    pub(crate) fn is_one_packet(&self) -> bool {
        self.flags.load(Relaxed) & conn_flags::ONE_PACKET != 0
    }

    /// Whether this is a persistence template.
    pub(crate) fn is_template(&self) -> bool {
        self.flags.load(Relaxed) & conn_flags::TEMPLATE != 0
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
    #[inline(always)]
    fn touch(&self, tab: &ConnTable, now: u64) {
        let new = now + self.timeout.load(Relaxed) as u64;
        // Packets of one jiffy all set the same time: read before writing the shared line.
        if self.expires.load(Relaxed) == new {
            return;
        }
        // An exchange rather than a store: of two CPUs refreshing the entry at once (the
        // two directions of a NAT connection), the one that lowers the expiry knows it.
        if new < self.expires.swap(new, Relaxed) {
            tab.lower_due(tab.hash_of(self), new, now);
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
        use proto_tcp::Direction as D;
        let dir = match self.packet_dir(output) {
            PacketDir::Output => D::Output,
            PacketDir::Input => D::Input,
            PacketDir::InputOnly => D::InputOnly,
        };
        let ev = Event::from_flags(tcp_flags);
        let (old, new) = self.step_state(|cur| {
            let from = TcpState::from_u8(cur as u8).unwrap_or(TcpState::None);
            proto_tcp::next_state_in(from, dir, ev, secure) as u16
        });
        let new = TcpState::from_u8(new as u8).unwrap_or(TcpState::None);
        if new as u16 != old && new == TcpState::Established {
            self.assure_control();
        }
        self.account_active(new.is_active());
        self.set_state_timeout(tab, timeouts.get(new as usize));
    }

    /// Moves an SCTP association along its state machine after a packet with `event`
    /// travelling `output` (server to client) or not (`set_sctp_state`): only ESTABLISHED
    /// counts as active, reaching it assures the controlling template; then refreshes the
    /// timeout with the new state's.
    pub(crate) fn sctp_transition(
        &self,
        tab: &ConnTable,
        output: bool,
        event: proto_sctp::Event,
        timeouts: &[AtomicU32; proto_sctp::NR_STATES],
    ) {
        use proto_sctp::{Direction as D, SctpState as S};
        let dir = match self.packet_dir(output) {
            PacketDir::Output => D::Output,
            PacketDir::Input => D::Input,
            PacketDir::InputOnly => D::InputOnly,
        };
        let (old, new) = self.step_state(|cur| {
            let from = S::from_u8(cur as u8).unwrap_or(S::None);
            proto_sctp::next_state(from, dir, event) as u16
        });
        let new = S::from_u8(new as u8).unwrap_or(S::None);
        if new as u16 != old {
            self.account_active(new.is_active());
            if new.is_active() {
                self.assure_control();
            }
        }
        self.set_state_timeout(tab, timeouts.get(new as usize));
    }

    /// The direction of a packet for the state tables: a packet from the server clears
    /// `NOOUTPUT` (the director sees replies), one from the client is `InputOnly` while the
    /// director has seen none.
    fn packet_dir(&self, output: bool) -> PacketDir {
        // Each read-modify-write here and below is guarded by a plain read, as upstream's
        // plain stores are: most packets change nothing, and the line is shared by both
        // directions.
        let no_output = self.flags.load(Relaxed) & conn_flags::NOOUTPUT != 0;
        if output {
            if no_output {
                self.flags.fetch_and(!conn_flags::NOOUTPUT, Relaxed);
            }
            PacketDir::Output
        } else if no_output {
            PacketDir::InputOnly
        } else {
            PacketDir::Input
        }
    }

    /// Moves the state from what it is to `step` of it, atomically against the other
    /// direction's packets; returns the state before and after.
    fn step_state(&self, step: impl Fn(u16) -> u16) -> (u16, u16) {
        let mut cur = self.state.load(Relaxed);
        loop {
            let to = step(cur);
            if to == cur {
                return (cur, to);
            }
            match self.state.compare_exchange(cur, to, Relaxed, Relaxed) {
                Ok(_) => return (cur, to),
                Err(now) => cur = now,
            }
        }
    }

    /// Counts the connection in its server's active connections when `active`, in the
    /// inactive ones otherwise (the `INACTIVE` flag and `activeconns`). Of two CPUs changing
    /// the flag at once, the one that changed it counts.
    fn account_active(&self, active: bool) {
        let inactive = self.flags.load(Relaxed) & conn_flags::INACTIVE != 0;
        if active {
            if inactive && self.flags.fetch_and(!conn_flags::INACTIVE, Relaxed) & conn_flags::INACTIVE != 0 {
                if let Some(d) = self.dest() {
                    d.info.activeconns.fetch_add(1, Relaxed);
                }
            }
        } else if !inactive && self.flags.fetch_or(conn_flags::INACTIVE, Relaxed) & conn_flags::INACTIVE == 0 {
            if let Some(d) = self.dest() {
                d.info.activeconns.fetch_sub(1, Relaxed);
            }
        }
    }

    /// Takes the timeout of the state just entered (`timeout`, 0 when the state has none)
    /// and refreshes the expiry.
    fn set_state_timeout(&self, tab: &ConnTable, timeout: Option<&AtomicU32>) {
        let timeout = timeout.map_or(0, |t| t.load(Relaxed));
        if self.timeout.load(Relaxed) != timeout {
            self.timeout.store(timeout, Relaxed);
        }
        self.touch(tab, jiffies_64());
    }

    /// Marks the persistence template controlling this connection as assured: the
    /// connection was answered (`ip_vs_control_assure_ct`). Shown by `/proc`.
    pub(crate) fn assure_control(&self) {
        let g = rcu::read_lock();
        // Only a template: an application helper's control connection has a TCP state.
        if let Some(t) = self.control.get(&g).filter(|t| t.is_template()) {
            t.state.fetch_or(CTPL_S_ASSURED, Relaxed);
        }
    }

    /// Refreshes a connection whose protocol has a single state with `timeout` jiffies.
    #[inline(always)]
    pub(crate) fn refresh(&self, tab: &ConnTable, timeout: u32) {
        if self.timeout.load(Relaxed) != timeout {
            self.timeout.store(timeout, Relaxed);
        }
        self.touch(tab, jiffies_64());
    }

    /// Moves an expected connection to the TCP LISTEN state with `timeout` jiffies to go
    /// (`ip_vs_tcp_conn_listen`).
    pub(crate) fn listen(&self, tab: &ConnTable, timeout: u32) {
        self.state.store(TcpState::Listen as u16, Relaxed);
        self.refresh(tab, timeout);
    }

    /// The timeout of the current state, in jiffies.
    pub(crate) fn timeout(&self) -> u32 {
        self.timeout.load(Relaxed)
    }

    /// The persistence template controlling this connection.
    pub(crate) fn control<'a>(&'a self, g: &'a rcu::Guard) -> Option<&'a Conn> {
        self.control.get(g)
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

    /// Whether the entry's client and virtual tuples are `p`'s. The most telling fields
    /// first; all in the entry's first cache line.
    fn same_tuple(&self, p: &ConnParam) -> bool {
        self.same_packet_tuple(p.af, p.protocol, (&p.caddr, p.cport), (&p.vaddr, p.vport))
    }

    /// [`Self::same_tuple`] of a tuple in pieces: `c` the client's address and port, `v` the
    /// virtual service's.
    #[inline]
    fn same_packet_tuple(&self, af: u16, protocol: u8, c: (&[u8; 16], [u8; 2]), v: (&[u8; 16], [u8; 2])) -> bool {
        self.cport == c.1
            && self.caddr == *c.0
            && self.vport == v.1
            && self.vaddr == *v.0
            && self.protocol == protocol
            && self.af as u16 == af
    }

    /// Matches a connection for a client packet: neither a template nor a one-packet
    /// connection, which upstream never hashes (the next datagram of its flow is scheduled
    /// anew; see [`ConnTable::put_one_packet`]).
    fn matches_in(&self, p: &ConnParam) -> bool {
        self.same_tuple(p) && self.is_connection()
    }

    /// Neither a template nor a one-packet connection: what client packets and replies are
    /// looked up among.
    #[inline]
    fn is_connection(&self) -> bool {
        self.flags.load(Relaxed) & (conn_flags::TEMPLATE | conn_flags::ONE_PACKET) == 0
    }

    /// Matches a valid persistence template for `p`.
    fn matches_template(&self, p: &ConnParam) -> bool {
        let f = self.flags.load(Relaxed);
        self.same_tuple(p) && f & (conn_flags::TEMPLATE | F_INVALID | F_PE) == conn_flags::TEMPLATE
    }

    /// Matches a valid template with persistence-engine data for `p` (its data is compared
    /// by the caller).
    fn matches_pe_template(&self, p: &ConnParam) -> bool {
        let f = self.flags.load(Relaxed);
        self.same_tuple(p) && f & (conn_flags::TEMPLATE | F_INVALID | F_PE) == conn_flags::TEMPLATE | F_PE
    }

    /// Matches a reply: from the real server <daddr, dport> to the client <caddr, cport>.
    /// Not a template, nor a one-packet connection (as [`Self::matches_in`]).
    fn matches_out(&self, p: &ConnParam) -> bool {
        // The client's tuple (first cache line) before the real server's address.
        self.cport == p.vport
            && self.caddr == p.vaddr
            && self.dport == p.cport
            && self.protocol == p.protocol
            && self.af as u16 == p.af
            && self.is_connection()
            && self.daddr == p.caddr
    }
}

/// How an entry comes to be.
#[derive(Clone, Copy)]
enum Origin {
    /// A connection scheduled here, with the service's `flags` (`IP_VS_CONN_F_ONE_PACKET`
    /// for a UDP connection of a one-packet service, or none).
    Conn { flags: u32 },
    /// An application helper's expected connection: as `Conn`, but not counted in the
    /// statistics (only scheduling counts there, as upstream's `ip_vs_conn_stats`).
    Expected,
    /// A persistence template made here.
    Template,
    /// A persistence template with engine data, linked with the data's hash.
    PeTemplate(u32),
    /// Learned from a master (a connection or a template, as `flags` say); a template with
    /// engine data is linked with the data's hash `pe`.
    Sync { flags: u32, state: u16, pe: Option<u32> },
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

/// Undoes [`account_bound`] for an entry leaving the table.
fn account_gone(c: &ConnData) {
    crate::app::gone(c);
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

/// Template state bit: a connection it controls was answered (`IP_VS_CTPL_S_ASSURED`).
const CTPL_S_ASSURED: u16 = 1;

/// Internal flag of a template that may no longer be used (upstream rehashes such a template
/// with impossible ports instead). Not one of the `IP_VS_CONN_F_*` bits shown to users.
pub(crate) const F_INVALID: u32 = 1 << 31;

/// Internal flag of a template that has persistence-engine data (see `conn_pe.rs`); lookups
/// without engine data skip it. Not one of the `IP_VS_CONN_F_*` bits either.
pub(crate) const F_PE: u32 = 1 << 30;

/// The `ip_vs_conn` slab cache all namespaces' tables allocate from: installed at module
/// load ([`ConnCache`]), before any namespace is set up.
pub(crate) static POOL: PoolSlot<ConnData> = PoolSlot::new();

/// The module's hold on [`POOL`]: creates the cache, and empties the slot when dropped
/// (module unload, after every namespace's table is gone).
pub(crate) struct ConnCache(());

impl ConnCache {
    /// Creates the `ip_vs_conn` cache and installs it in [`POOL`].
    pub(crate) fn new() -> Result<Self> {
        POOL.install(Pool::new(c_str!("ip_vs_conn"))?)?;
        if let Err(e) = conn_pe::install() {
            POOL.take();
            return Err(e);
        }
        if let Err(e) = crate::app::install() {
            conn_pe::remove();
            POOL.take();
            return Err(e);
        }
        Ok(Self(()))
    }
}

impl Drop for ConnCache {
    fn drop(&mut self) {
        POOL.take();
        conn_pe::remove();
        crate::app::remove();
    }
}

/// Smallest table, as upstream's `IP_VS_CONN_TAB_MIN_BITS`.
pub(crate) const TAB_MIN_BITS: u32 = 8;

/// `conn_lfactor`'s default and range (upstream's).
pub(crate) const LFACTOR_DEFAULT: i32 = -4;
/// Smallest `conn_lfactor`.
pub(crate) const LFACTOR_MIN: i32 = -8;
/// Largest `conn_lfactor`.
pub(crate) const LFACTOR_MAX: i32 = 8;

/// Largest `conn_max` (upstream's `IP_VS_CONN_MAX` on 64-bit).
pub(crate) const CONN_MAX_LIMIT: i32 = 1 << 30;

/// The number of buckets wanted for `n` entries with load factor `lfactor` in a table of
/// `size` buckets built for load factor `cur_lfactor` (`ip_vs_rht_desired_size`): `n`
/// rounded up to a power of two, shifted by the factor, kept when between a sixteenth and
/// all of the current size, halved no further than twice `n` when shrinking.
pub(crate) fn desired_size(n: u32, lfactor: i32, size: u32, cur_lfactor: i32, max_bits: u32) -> u32 {
    let (min, max) = (1u32 << TAB_MIN_BITS, 1u32 << max_bits);
    let n = n.max(1).checked_next_power_of_two().unwrap_or(1 << 31);
    let n = if lfactor < 0 {
        let f = (-lfactor) as u32;
        (n.min(max >> f.min(max_bits))) << f.min(max_bits)
    } else {
        (n >> lfactor as u32).min(max)
    };
    if lfactor != cur_lfactor {
        return n.clamp(min, max);
    }
    if n > size {
        n
    } else if n > size >> 4 {
        size
    } else {
        (n << 1).clamp(min, max)
    }
}

/// The load above which a table of `size` buckets grows and below which it shrinks
/// (`ip_vs_rht_set_thresholds`).
pub(crate) fn thresholds(size: u32, lfactor: i32, max_bits: u32) -> (u32, u32) {
    let max = 1u32 << max_bits;
    let upper = if size >= max {
        u32::MAX
    } else if lfactor <= 0 {
        size >> ((-lfactor) as u32).min(max_bits)
    } else {
        size.min(1 << (30 - lfactor as u32)) << lfactor as u32
    };
    let lower = if size >= max {
        max >> 4
    } else if size > 1 << TAB_MIN_BITS {
        upper >> 4
    } else {
        0
    };
    (upper, lower)
}

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

/// Where the size policy reads `conn_lfactor` and `conn_max`.
pub(crate) struct Limits {
    /// The namespace's sysctls.
    pub(crate) values: Arc<SysctlValues>,
    /// Index of `conn_lfactor` there.
    pub(crate) lfactor: usize,
    /// Index of `conn_max` there.
    pub(crate) conn_max: usize,
}

/// A namespace's connection table.
pub(crate) struct ConnTable {
    table: HashTable<ConnData>,
    seed: u32,
    /// The sweep's position, in buckets.
    cursor: AtomicU32,
    /// `random_dropentry`'s countdown per client packet count.
    todrop_counter: [AtomicI32; 9],
    hz: u32,
    /// Largest table: `2^max_bits` buckets (`conn_tab_bits`).
    max_bits: u32,
    /// The load factor the current array was sized for.
    lfactor: AtomicI32,
    limits: Option<Limits>,
    /// The persistence-engine data of templates (the module's, see `conn_pe.rs`).
    pe: &'static PeTable,
    /// Set (for good) once an entry whose client may be an address of this host was made:
    /// a connection scheduled at LOCAL_OUT ([`Self::note_local_client`]), one learned from
    /// a master or expected by a helper. Until then no reply can arrive at LOCAL_IN for an
    /// entry, and the hook there skips the reply lookup ([`Self::local_clients`]).
    local_clients: AtomicBool,
}

impl ConnTable {
    /// A table of at most `2^max_bits` buckets (at least 2^8), starting at the smallest;
    /// without `limits`, `conn_lfactor` and `conn_max` keep their defaults. Process context.
    pub(crate) fn new(max_bits: u32, hz: u32, limits: Option<Limits>) -> Result<Self> {
        let max_bits = max_bits.clamp(TAB_MIN_BITS, 27);
        let empty = due_bound(u64::MAX, jiffies_64());
        let pool = POOL.get().ok_or(ENOMEM)?;
        Ok(Self {
            table: HashTable::new(pool, TAB_MIN_BITS, empty)?,
            seed: crate::abi::random_u32(),
            cursor: AtomicU32::new(0),
            todrop_counter: Default::default(),
            hz,
            max_bits,
            local_clients: AtomicBool::new(false),
            lfactor: AtomicI32::new(LFACTOR_DEFAULT),
            limits,
            pe: conn_pe::table().ok_or(ENOMEM)?,
        })
    }

    /// Number of entries.
    pub(crate) fn count(&self) -> u32 {
        self.table.count()
    }

    /// Number of buckets now, and its bits.
    pub(crate) fn size(&self) -> (u32, u32) {
        self.table.size()
    }

    /// The largest number of buckets (`ip_vs_conn_tab_size`, which `ipvsadm` shows).
    pub(crate) fn max_size(&self) -> u32 {
        1 << self.max_bits
    }

    /// The load factor the current array was sized for.
    pub(crate) fn lfactor(&self) -> i32 {
        self.lfactor.load(Relaxed)
    }

    /// Chain lengths (for `/proc/net/ip_vs_status`). Process context.
    pub(crate) fn histogram(&self) -> Histogram {
        self.table.histogram()
    }

    fn want_lfactor(&self) -> i32 {
        self.limits.as_ref().map_or(LFACTOR_DEFAULT, |l| l.values.get(l.lfactor))
            .clamp(LFACTOR_MIN, LFACTOR_MAX)
    }

    fn conn_max(&self) -> u32 {
        self.limits.as_ref().map_or(CONN_MAX_LIMIT, |l| l.values.get(l.conn_max)).max(0) as u32
    }

    /// The hash of <protocol, address, port> (`ip_vs_conn_hashkey`): an IPv6 address is
    /// hashed whole first, an IPv4 one taken as it is.
    #[inline(always)]
    fn hashkey(&self, af: u16, protocol: u8, addr: &[u8; 16], port: [u8; 2]) -> u32 {
        let a = if af == crate::ctl_config::AF_INET6 {
            hash::jhash_addr16(addr, self.seed)
        } else {
            u32::from_ne_bytes([addr[0], addr[1], addr[2], addr[3]])
        };
        hash::jhash_3words(a, u16::from_ne_bytes(port) as u32, protocol as u32, self.seed)
    }

    /// The hash entry `c` is linked with.
    fn hash_of(&self, c: &ConnData) -> u32 {
        if c.flags.load(Relaxed) & F_PE != 0 {
            let g = rcu::read_lock();
            if let Some(pe) = self.pe.pe(c, &g) {
                return conn_pe::data_hash(pe, self.seed);
            }
        }
        self.hashkey(c.af as u16, c.protocol, &c.caddr, c.cport)
    }

    /// The persistence-engine data of template `c`, if it has some.
    pub(crate) fn pe_data<'a>(&'a self, c: &ConnData, g: &'a rcu::Guard) -> Option<&'a PeData> {
        if c.flags.load(Relaxed) & F_PE == 0 {
            return None;
        }
        self.pe.pe(c, g)
    }

    /// The valid persistence template for `p` with engine data `pe` (`ip_vs_ct_in_get`
    /// with `pe_data`: the engine's `hashkey_raw` and `ct_match`).
    pub(crate) fn template_get_pe<'a>(
        &'a self,
        p: &ConnParam,
        pe: &PeData,
        g: &'a rcu::Guard,
    ) -> Option<&'a Conn> {
        let h = conn_pe::data_hash(pe, self.seed);
        self.table.lookup(h, g, |c| {
            c.matches_pe_template(p) && self.pe.pe(c, g).is_some_and(|d| d.same(pe))
        })
    }

    /// As [`Self::new_template`], for a template with the engine data `pe`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_template_pe<'a>(
        &'a self,
        p: &ConnParam,
        pe: &PeData,
        module: ModuleRef,
        daddr: [u8; 16],
        dport: [u8; 2],
        dest: &Arc<Dest>,
        timeout: u32,
        g: &'a rcu::Guard,
    ) -> Result<&'a Conn> {
        let h = conn_pe::data_hash(pe, self.seed);
        let t = self.insert(p, daddr, dport, Some(dest), timeout, None, Origin::PeTemplate(h), g)?;
        if let Err(e) = self.pe.attach_pe(t, pe, module, g) {
            self.expire_now(t);
            return Err(e);
        }
        Ok(t)
    }

    /// An entry leaves the table: its counts (its engine data goes when it is freed).
    fn gone(&self, c: &ConnData) {
        account_gone(c);
    }

    /// The connection a client packet belongs to (`ip_vs_conn_in_get`).
    #[inline]
    pub(crate) fn in_get<'a>(&'a self, p: &ConnParam, g: &'a rcu::Guard) -> Option<&'a Conn> {
        let h = self.hashkey(p.af, p.protocol, &p.caddr, p.cport);
        self.table.lookup(h, g, |c| c.matches_in(p))
    }

    /// [`Self::in_get`] of the client packet whose headers `ip` and `ports` are, its
    /// connection protocol `protocol` (`Protocol::conn_protocol`): the same lookup without
    /// the copy of the addresses a [`ConnParam`] takes.
    #[inline(always)]
    pub(crate) fn in_get_pkt<'a>(
        &'a self,
        ip: &IpHdr,
        protocol: u8,
        ports: &Ports,
        g: &'a rcu::Guard,
    ) -> Option<&'a Conn> {
        let h = self.hashkey(ip.af, protocol, &ip.saddr, ports.sport);
        self.table.lookup(h, g, #[inline(always)] |c| {
            c.same_packet_tuple(ip.af, protocol, (&ip.saddr, ports.sport), (&ip.daddr, ports.dport))
                && c.is_connection()
        })
    }

    /// Notes that a connection whose client is this host is about to be made (before its
    /// first packet goes out, so before its first reply can come in).
    pub(crate) fn note_local_client(&self) {
        if !self.local_clients.load(Relaxed) {
            self.local_clients.store(true, Release);
        }
    }

    /// Whether an entry may have a client on this host: if not, a packet received for this
    /// host is no reply of an entry (its destination, a local address, would be the
    /// entry's client), and [`Self::out_get`] need not look.
    #[inline]
    pub(crate) fn local_clients(&self) -> bool {
        self.local_clients.load(Acquire)
    }

    /// The connection a reply from a real server belongs to (`ip_vs_conn_out_get`): `p` holds
    /// the reply's source as `caddr/cport` and its destination as `vaddr/vport`.
    #[inline]
    pub(crate) fn out_get<'a>(&'a self, p: &ConnParam, g: &'a rcu::Guard) -> Option<&'a Conn> {
        let h = self.hashkey(p.af, p.protocol, &p.vaddr, p.vport);
        self.table.lookup(h, g, |c| c.matches_out(p))
    }

    /// The valid persistence template for `p` (`ip_vs_ct_in_get`): `p.caddr` is the masked
    /// client address, `p.cport` 0.
    pub(crate) fn template_get<'a>(&'a self, p: &ConnParam, g: &'a rcu::Guard) -> Option<&'a Conn> {
        let h = self.hashkey(p.af, p.protocol, &p.caddr, p.cport);
        self.table.lookup(h, g, |c| c.matches_template(p))
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
    /// until its protocol says otherwise. `flags`: `IP_VS_CONN_F_ONE_PACKET` for a UDP
    /// connection of a one-packet service (`--ops`), else 0; a one-packet connection is
    /// invisible to lookups and must leave with [`Self::put_one_packet`] once its packet
    /// is sent.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_conn<'a>(
        &'a self,
        p: &ConnParam,
        daddr: [u8; 16],
        dport: [u8; 2],
        dest: &Arc<Dest>,
        timeout: u32,
        flags: u32,
        g: &'a rcu::Guard,
    ) -> Result<&'a Conn> {
        self.insert(p, daddr, dport, Some(dest), timeout, None, Origin::Conn { flags }, g)
    }

    /// As [`Self::new_conn`], for a connection controlled by the persistence template
    /// `control` (`ip_vs_control_add`). `EAGAIN` if the template is going away.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_controlled<'a>(
        &'a self,
        p: &ConnParam,
        daddr: [u8; 16],
        dport: [u8; 2],
        dest: &Arc<Dest>,
        timeout: u32,
        flags: u32,
        control: &'a Conn,
        g: &'a rcu::Guard,
    ) -> Result<&'a Conn> {
        self.insert(p, daddr, dport, Some(dest), timeout, Some(control), Origin::Conn { flags }, g)
    }

    /// Removes one-packet connection `cp` once its packet is sent (`ip_vs_conn_put` of a
    /// connection with `IP_VS_CONN_F_ONE_PACKET`, which upstream never hashed): its counts
    /// go as for any entry leaving, its template (if any) lives on by its own timeout.
    /// Nothing for another connection.
    pub(crate) fn put_one_packet(&self, cp: &Conn) {
        if cp.is_one_packet() {
            self.expire_now(cp);
        }
    }

    /// Creates and links an application helper's expected connection to `dest`, controlled
    /// by `control` if given (`ip_vs_conn_new` + `ip_vs_control_add` from `ip_vs_ftp`): as
    /// [`Self::new_controlled`], not counted in the statistics.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_expected<'a>(
        &'a self,
        p: &ConnParam,
        daddr: [u8; 16],
        dport: [u8; 2],
        dest: &Arc<Dest>,
        timeout: u32,
        control: Option<&'a Conn>,
        g: &'a rcu::Guard,
    ) -> Result<&'a Conn> {
        self.insert(p, daddr, dport, Some(dest), timeout, control, Origin::Expected, g)
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
        self.insert(p, daddr, dport, dest, timeout, None, Origin::Sync { flags, state, pe: None }, g)
    }

    /// As [`Self::new_synced`], for a template with the engine data `pe`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_synced_pe<'a>(
        &'a self,
        p: &ConnParam,
        pe: &PeData,
        module: ModuleRef,
        daddr: [u8; 16],
        dport: [u8; 2],
        dest: Option<&Arc<Dest>>,
        flags: u32,
        state: u16,
        timeout: u32,
        g: &'a rcu::Guard,
    ) -> Result<&'a Conn> {
        let h = conn_pe::data_hash(pe, self.seed);
        let origin = Origin::Sync { flags: flags | F_PE, state, pe: Some(h) };
        let t = self.insert(p, daddr, dport, dest, timeout, None, origin, g)?;
        if let Err(e) = self.pe.attach_pe(t, pe, module, g) {
            self.expire_now(t);
            return Err(e);
        }
        Ok(t)
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
        let dest_flags = dest.map_or(0, |d| d.conn_flags.load(Relaxed));
        // `ip_vs_bind_dest`: a server's one-packet option is for UDP connections only.
        let dest_flags = if Protocol::of(p.protocol).is_some_and(Protocol::one_packet) {
            dest_flags
        } else {
            dest_flags & !conn_flags::ONE_PACKET
        };
        let (flags, state) = match origin {
            Origin::Conn { flags } => (dest_flags | flags | conn_flags::INACTIVE, 0),
            Origin::Expected => (dest_flags | conn_flags::INACTIVE, 0),
            // Only templates visible to lookups can control several connections.
            Origin::Template => {
                let df = dest_flags & !conn_flags::ONE_PACKET;
                (df | conn_flags::INACTIVE | conn_flags::TEMPLATE, 0)
            }
            Origin::PeTemplate(_) => {
                let df = dest_flags & !conn_flags::ONE_PACKET;
                (df | conn_flags::INACTIVE | conn_flags::TEMPLATE | F_PE, 0)
            }
            Origin::Sync { flags, state, .. } => match dest {
                Some(d) => (bound_sync_flags(flags, d), state),
                None => (flags, state),
            },
        };
        // Linked, but not `HASHED` as upstream sees it: a one-packet connection is never
        // found by a lookup (`matches_in`).
        let flags = if flags & conn_flags::ONE_PACKET == 0 {
            flags | conn_flags::HASHED
        } else {
            flags
        };
        let template = flags & conn_flags::TEMPLATE != 0;
        // Only what is scheduled here counts in the statistics.
        if matches!(origin, Origin::Sync { .. } | Origin::Expected) {
            self.note_local_client();
        }
        let counted = matches!(origin, Origin::Conn { .. } | Origin::Template);
        let control = match control {
            Some(t) => Some(self.table.get_ref(t).ok_or(EAGAIN)?),
            None => None,
        };
        let h = match origin {
            Origin::PeTemplate(h) | Origin::Sync { pe: Some(h), .. } => h,
            _ => self.hashkey(p.af, p.protocol, &p.caddr, p.cport),
        };
        let now = jiffies_64();
        let conn = ConnData {
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
            dest: OnceArc::new(dest.cloned()),
            control: RefSlot::new(control),
            sync_endtime: AtomicU32::new(0),
            app: AtomicU32::new(0),
        };
        // On failure the table gives back the control reference; `conn`'s server reference
        // goes with it.
        let c = self.table.insert(h, conn, self.conn_max(), g)?;
        if let Some(dest) = dest {
            account_bound(dest, flags);
            if !template && counted {
                dest.stats.count_conn();
                if let Some(s) = dest.svc_stats(g) {
                    s.count_conn();
                }
            }
        }
        self.lower_due(h, now + timeout as u64, now);
        Ok(c)
    }

    /// Binds an unbound synced entry to `dest`, now that a record found its server
    /// (`ip_vs_try_bind_dest`): it takes the server's forwarding method and options and
    /// counts there. Nothing if it is bound already or no longer in the table (whose
    /// removal, under the same lock, uncounts only what was counted).
    pub(crate) fn bind_synced(&self, cp: &Conn, dest: &Arc<Dest>) {
        self.table.with_linked(cp, |c| {
            if c.dest.set(dest.clone()).is_ok() {
                let old = c
                    .flags
                    .fetch_update(Relaxed, Relaxed, |f| Some(bound_sync_flags(f, dest)))
                    .unwrap_or_else(|f| f);
                account_bound(dest, bound_sync_flags(old, dest));
            }
        });
    }

    /// Lowers the bound of the bucket of hash `h` to cover an entry expiring at `expires`.
    /// The new value is one below the lower of the two, so that it differs from the old one
    /// even when that was lower already: a sweep that read the old value then fails to
    /// replace it.
    fn lower_due(&self, h: u32, expires: u64, now: u64) {
        let e = due_bound(expires, now);
        let g = rcu::read_lock();
        let _ = self.table.aux(h, &g).fetch_update(Release, Relaxed, |d| {
            Some(if due_by(e, d) { e } else { d }.wrapping_sub(1))
        });
    }

    /// Expires entries in the next batch of buckets (the slow timer's work, every
    /// [`EXPIRY_TICKS_PER_SEC`]th of a second): 1/64 of the table and at least 128 buckets,
    /// so that a full sweep takes at most eight seconds and no tick walks more than a sixty-
    /// fourth of a large table. Only buckets whose bound has come are looked into.
    pub(crate) fn expire_batch(&self, now: u64) {
        let (size, _) = self.size();
        let batch = (size / 64).max(128).min(size);
        let start = self.cursor.fetch_add(batch, Relaxed);
        for k in 0..batch {
            let b = start.wrapping_add(k) & (size - 1);
            let due = {
                let g = rcu::read_lock();
                due_by(self.table.aux(b, &g).load(Relaxed), now as u32)
            };
            if due {
                self.sweep_bucket(b, now, |c| c.expires.load(Relaxed) <= now);
            }
        }
        self.table.submit();
        self.pe.submit();
    }

    /// Unlinks the entries of bucket `b` that `dead` picks, but templates that still control
    /// connections, and sets the bucket's bound to the earliest expiry of those left.
    fn sweep_bucket(&self, b: u32, now: u64, dead: impl Fn(&ConnData) -> bool) {
        let gone = |c: &Conn| c.ref_count() == 0 && dead(c);
        let g = rcu::read_lock();
        let aux = self.table.aux(b, &g);
        // Acquire: the entries and expiry times of the lowerings this value includes.
        let due = aux.load(Acquire);
        let mut first = u64::MAX;
        // Look without the lock first: most buckets hold nothing to remove, and the packet
        // path contends for the same locks. An entry that dies meanwhile goes next time.
        let mut found = false;
        self.table.for_each_in_bucket(b, &g, |c| {
            if gone(c) {
                found = true;
                return false;
            }
            first = first.min(c.expires.load(Relaxed));
            true
        });
        if found {
            first = u64::MAX;
            self.table.retain_bucket(b, |c| {
                if gone(c) {
                    self.gone(c);
                    true
                } else {
                    first = first.min(c.expires.load(Relaxed));
                    false
                }
            });
        }
        // Fails if an insertion or an earlier expiry lowered the bound meanwhile: it stays.
        let _ = aux.compare_exchange(due, due_bound(first, now), Relaxed, Relaxed);
    }

    /// Drops random entries when memory is short (`ip_vs_random_dropentry`): every call looks
    /// at 1/32 of the buckets, chosen at random, and removes half-open TCP connections,
    /// unanswered templates and, at a rate falling with their packet count (0 to 8 packets
    /// from the client), established or other connections idle for a minute or more.
    pub(crate) fn random_dropentry(&self, now: u64) {
        let (size, _) = self.size();
        for i in 0..(size >> 5) {
            let b = crate::abi::random_u32() & (size - 1);
            self.sweep_bucket(b, now, |c| self.todrop(c, now));
            // The defense work runs in process context: up to 2^22 buckets a call.
            if i % RESCHED_BUCKETS == RESCHED_BUCKETS - 1 {
                kernel::sched::cond_resched();
            }
        }
    }

    /// Whether `random_dropentry` removes `c`.
    fn todrop(&self, c: &ConnData, now: u64) -> bool {
        if c.is_template() {
            if c.flags.load(Relaxed) & conn_flags::ONE_PACKET != 0 {
                return self.todrop_entry(c, now);
            }
            return c.state() & CTPL_S_ASSURED == 0;
        }
        match Protocol::of(c.protocol).and_then(|p| p.drop_rule(c.state())) {
            Some(drop) => drop,
            None => self.todrop_entry(c, now),
        }
    }

    /// `todrop_entry`: an entry idle for at least a minute with `i` packets from the client
    /// (0 to 8) is dropped once in `i` calls; none with 0 packets.
    fn todrop_entry(&self, c: &ConnData, now: u64) -> bool {
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

    /// Removes every entry (`ip_vs_conn_flush`) while the table is in use. Process context
    /// only: it yields the CPU now and then. (A namespace's teardown drains the table as it
    /// drops it, see `Drop`.)
    #[allow(dead_code)] // Used by the KUnit tests.
    pub(crate) fn flush(&self) {
        self.table.flush_with(|c| self.gone(c));
        self.pe.submit();
    }

    /// Entry `index` of bucket `bucket`, in chain order (buckets of a resize's new array
    /// after those of the current one).
    pub(crate) fn nth<'a>(&'a self, bucket: usize, index: usize, g: &'a rcu::Guard) -> Option<&'a Conn> {
        self.table.nth(bucket, index, g)
    }

    /// Moves `cur` to the first entry at or after it (buckets in order, chains in order);
    /// false past the last one. Process context: it yields the CPU now and then. A resize
    /// between two reads of the file may show entries twice or skip some.
    pub(crate) fn seek(&self, cur: &mut SeqCursor) -> bool {
        self.table.seek(&mut cur.bucket, &mut cur.index)
    }

    /// Expires `cp` now (`ip_vs_conn_expire_now`).
    pub(crate) fn expire_now(&self, cp: &Conn) {
        self.table.unlink_with(cp, |c| self.gone(c));
    }

    /// The configured tick rate.
    pub(crate) fn hz(&self) -> u32 {
        self.hz
    }

    /// Whether the array's size is off for the number of entries or for `conn_lfactor`.
    fn needs_resize(&self) -> bool {
        let (size, _) = self.size();
        let lf = self.want_lfactor();
        if lf != self.lfactor() {
            return true;
        }
        let (upper, lower) = thresholds(size, lf, self.max_bits);
        let n = self.count();
        n > upper || n < lower
    }

    /// Resizes the array to the size the load and `conn_lfactor` want. Process context.
    pub(crate) fn resize_to_load(&self) {
        let lf = self.want_lfactor();
        let (size, _) = self.size();
        let want = desired_size(self.count(), lf, size, self.lfactor(), self.max_bits);
        self.lfactor.store(lf, Relaxed);
        if want == size {
            return;
        }
        // New buckets are due at once: the first sweep sets their bounds.
        let now = jiffies_64();
        if self.table.resize(want.trailing_zeros(), now as u32).is_err() {
            pr_warn!("IPVS: no memory to resize the connection table to {} buckets\n", want);
        }
    }
}

impl Drop for ConnTable {
    fn drop(&mut self) {
        // Nothing reaches the table any more: empty it chain by chain, without locks.
        self.table.drain(account_gone);
        self.pe.submit();
    }
}

/// Buckets a process-context walk of the table (random drop) covers between two chances
/// for the scheduler to run.
const RESCHED_BUCKETS: u32 = 1024;

/// How often per second the slow timer expires a batch of buckets.
pub(crate) const EXPIRY_TICKS_PER_SEC: u32 = 8;

/// Resizes a namespace's table in process context, when the slow timer asks.
#[pin_data]
pub(crate) struct Resizer {
    table: Arc<ConnTable>,
    #[pin]
    work: Work<Resizer>,
}

impl_has_work! {
    impl HasWork<Self> for Resizer { self.work }
}

impl WorkItem for Resizer {
    type Pointer = Arc<Resizer>;

    fn run(this: Arc<Resizer>) {
        this.table.resize_to_load();
        // The module's side tables, too: any namespace's resizer may do it.
        if let Some(t) = conn_pe::table() {
            t.resize_to_load();
        }
        if let Some(t) = crate::app::states() {
            t.resize_to_load();
        }
    }
}

impl Resizer {
    /// The resizer of `table`.
    pub(crate) fn new(table: Arc<ConnTable>) -> impl PinInit<Self> {
        pin_init!(Self { table, work <- new_work!("ip_vs_conn_resize") })
    }
}

/// Waits for the last resize when dropped (namespace teardown, after the slow timer).
pub(crate) struct ResizerFlush(pub(crate) Arc<Resizer>);

impl Drop for ResizerFlush {
    fn drop(&mut self) {
        // Drops happen in process context, where waiting is allowed.
        self.0.work.flush();
    }
}

/// Whether one of the module's side tables (`conn_side.rs`) wants another size.
fn side_needs_resize() -> bool {
    conn_pe::table().is_some_and(|t| t.needs_resize()) || crate::app::states().is_some_and(|t| t.needs_resize())
}

/// The slow timer: expire one batch of buckets, [`EXPIRY_TICKS_PER_SEC`] times a second,
/// and ask for a resize when the load calls for one.
pub(crate) struct Expiry {
    pub(crate) resizer: Arc<Resizer>,
}

impl TimerCallback for Expiry {
    fn run(timer: &Timer<Self>) {
        let r = &timer.data().resizer;
        let t = &r.table;
        t.expire_batch(jiffies_64());
        if t.needs_resize() || side_needs_resize() {
            // Already queued: fine.
            let _ = workqueue::system_unbound().enqueue(r.clone());
        }
        timer.schedule_after((t.hz() / EXPIRY_TICKS_PER_SEC).max(1) as u64);
    }
}
