// SPDX-License-Identifier: GPL-2.0

//! Virtual services and their real servers (destinations), and the operations ipvsadm
//! performs on them.
//!
//! The operations take the transport-independent configuration of `ctl_config.rs`, checked
//! there ([`Checked`]); no setsockopt or netlink structure reaches this file.
//!
//! The control path keeps the authoritative list of services under the per-namespace control
//! mutex and publishes an immutable lookup table to the packet path through RCU; a service's
//! destination list and scheduler binding are published the same way. Readers never lock.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_ctl.c`

use crate::{
    abi::{DestInfo, OverloadEvent, DEST_F_AVAILABLE},
    sched::SchedBinding,
    stats::Stats,
    ctl_config::{self, Checked, DestConfig, InetAddr, SchedName, ServiceConfig, ServiceKey},
    uapi::svc_flags,
};
use core::sync::atomic::{
    AtomicBool, AtomicI32, AtomicU16, AtomicU32, AtomicU64, AtomicU8,
    Ordering::{AcqRel, Relaxed},
};
use kernel::{
    alloc::{flags::{GFP_KERNEL, GFP_NOWAIT}, KBox, KVVec, KVec},
    error::code::*,
    net::{namespace::Net, skbuff::RouteCache},
    proc_fs::SeqCursor,
    prelude::*,
    sync::{rcu, rcu::{RcuBox, RcuNode}, Arc},
};

pub(crate) use crate::ctl_config::AF_INET;

/// The kernel's errno for a refused configuration (here, as both the core and its KUnit copy
/// build this file).
impl From<ctl_config::Errno> for Error {
    fn from(e: ctl_config::Errno) -> Self {
        match e {
            ctl_config::Errno::Inval => EINVAL,
            ctl_config::Errno::Range => ERANGE,
            ctl_config::Errno::Fault => EFAULT,
            ctl_config::Errno::AfNoSupport => {
                Error::from_errno(-(kernel::bindings::EAFNOSUPPORT as i32))
            }
        }
    }
}

static NEXT_DEST_ID: AtomicU64 = AtomicU64::new(1);

/// An IPv4 address in the family-generic 16-byte form.
pub(crate) fn v4(a: [u8; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&a);
    out
}

/// The IPv4 part of a family-generic address.
pub(crate) fn as_v4(a: &[u8; 16]) -> [u8; 4] {
    [a[0], a[1], a[2], a[3]]
}

/// A real server of a virtual service.
pub(crate) struct Dest {
    /// The part schedulers see.
    pub(crate) info: DestInfo,
    /// `IP_VS_CONN_F_*` given to new connections: forwarding method and options.
    pub(crate) conn_flags: AtomicU32,
    /// This server's counters.
    pub(crate) stats: Stats,
    /// The counters of the service it belongs to: a server restored from the namespace's
    /// trash into a service added again counts there (upstream rebinds `dest->svc`). Always
    /// set; see [`Dest::svc_stats`].
    pub(crate) svc_stats: RcuBox<Arc<Stats>>,
    /// The route to the server, kept for the packets that follow (`dest_dst`).
    pub(crate) route: RouteCache,
    /// Tunnel type (`IP_VS_CONN_F_TUNNEL_TYPE_*`), port (network order) and flags
    /// (`IP_VS_TUNNEL_ENCAP_FLAG_*`), for tunnel forwarding.
    pub(crate) tun_type: AtomicU8,
    pub(crate) tun_port: AtomicU16,
    pub(crate) tun_flags: AtomicU16,
    /// The firewall mark of its service, 0 for a service by address (`cp->fwmark` of its
    /// connections, which sync messages carry).
    pub(crate) svc_fwmark: u32,
}

impl Dest {
    /// Takes the tunnel settings of `u` (`__ip_vs_update_dest`).
    /// Marks a server removed from its service: no new connections, no packets for old
    /// ones, and no cached route (which would hold its device; see [`forget_routes`]).
    fn retire(&self) {
        self.info.flags.fetch_and(!DEST_F_AVAILABLE, Relaxed);
        self.route.reset();
    }

    fn set_tunnel(&self, u: &DestConfig) {
        self.tun_type.store(u.tun_type, Relaxed);
        self.tun_port.store(u16::from_ne_bytes(u.tun_port), Relaxed);
        self.tun_flags.store(u.tun_flags, Relaxed);
    }

    /// The tunnel port, in network byte order.
    pub(crate) fn tun_port(&self) -> [u8; 2] {
        self.tun_port.load(Relaxed).to_ne_bytes()
    }

    /// The counters of the service the server belongs to, or last belonged to.
    pub(crate) fn svc_stats<'a>(&'a self, g: &'a rcu::Guard) -> Option<&'a Stats> {
        self.svc_stats.get(g).map(|s| &**s)
    }

    /// Whether the server is still part of its service.
    pub(crate) fn is_available(&self) -> bool {
        self.info.flags.load(Relaxed) & DEST_F_AVAILABLE != 0
    }

    /// Whether it is the server at `addr` (of that family) and `port` (`ip_vs_lookup_dest`).
    fn matches(&self, addr: &InetAddr, port: [u8; 2]) -> bool {
        self.info.af == addr.af().raw() && self.info.addr == addr.nf() && self.info.port == port
    }
}

/// A service's destinations, in the two forms the core and the schedulers use: the
/// [`Dest`]s (the slice this dereferences to) and their [`DestInfo`]s ([`DestVec::infos`]).
/// Immutable once built.
///
/// # Invariants
///
/// `infos` has as many entries as `dests`, and `infos[i]` is `&dests[i].info`; neither
/// vector changes after construction. So each pointer is valid as long as `self`: the
/// `Arc`s in `dests` keep the destinations alive, at fixed addresses.
pub(crate) struct DestVec {
    dests: KVec<Arc<Dest>>,
    infos: KVec<*const DestInfo>,
}

// SAFETY: `infos` only points into the `Arc<Dest>`s the same object keeps alive, and `Dest`
// (hence `DestInfo`) is `Send + Sync`.
unsafe impl Send for DestVec {}
// SAFETY: As above; nothing is mutable through `&DestVec` but the atomics of the
// destinations.
unsafe impl Sync for DestVec {}

impl DestVec {
    fn new(dests: KVec<Arc<Dest>>) -> Result<Self> {
        let mut infos = KVec::with_capacity(dests.len(), GFP_KERNEL)?;
        for d in dests.iter() {
            infos.push(&d.info as *const DestInfo, GFP_KERNEL)?;
        }
        // INVARIANT: `infos[i]` was taken from `dests[i]`, for every `i`.
        Ok(Self { dests, infos })
    }

    /// The destinations as schedulers see them, in the same order.
    pub(crate) fn infos(&self) -> &[&DestInfo] {
        // SAFETY: `*const DestInfo` and `&DestInfo` have the same layout, and by the type
        // invariants each pointer is non-null and points to a `DestInfo` that lives as long
        // as `self`, which the returned borrow cannot outlive. `DestInfo` is only ever
        // accessed through shared references (what changes in it is atomic).
        unsafe {
            core::slice::from_raw_parts(self.infos.as_ptr().cast::<&DestInfo>(), self.infos.len())
        }
    }
}

impl core::ops::Deref for DestVec {
    type Target = [Arc<Dest>];

    fn deref(&self) -> &[Arc<Dest>] {
        &self.dests
    }
}

/// A snapshot of a service's destinations, newest first as upstream lists them.
pub(crate) struct DestList {
    /// The destinations.
    pub(crate) dests: DestVec,
}

impl DestList {
    fn build(dests: KVec<Arc<Dest>>) -> Result<KBox<RcuNode<Self>>> {
        Ok(RcuNode::new(Self { dests: DestVec::new(dests)? }, GFP_KERNEL)?)
    }

    /// The destinations as schedulers see them.
    pub(crate) fn infos(&self) -> &[&DestInfo] {
        self.dests.infos()
    }

    /// The index of the server at `addr` and `port`.
    pub(crate) fn find(&self, addr: &InetAddr, port: [u8; 2]) -> Option<usize> {
        self.dests.iter().position(|d| d.matches(addr, port))
    }
}

/// A virtual service.
pub(crate) struct Service {
    /// Address family.
    pub(crate) af: u16,
    /// IP protocol.
    pub(crate) protocol: u16,
    /// Virtual address (0 for fwmark services).
    pub(crate) addr: [u8; 16],
    /// Virtual port, network byte order.
    pub(crate) port: [u8; 2],
    /// Firewall mark, or 0.
    pub(crate) fwmark: u32,
    /// Its hash in the [`ServiceTable`] (of its key, with the table's seed).
    hash: u32,
    /// `IP_VS_SVC_F_*`, with `HASHED` set as upstream reports it.
    pub(crate) flags: AtomicU32,
    /// Persistence timeout in seconds, as given (any `u32`): see [`Service::timeout_jiffies`].
    pub(crate) timeout: AtomicU32,
    /// Persistence netmask, network byte order as stored in a `u32`.
    pub(crate) netmask: AtomicU32,
    /// The scheduler, or none (`none`).
    pub(crate) sched: RcuBox<SchedBinding>,
    /// The persistence engine, or none (`svc->pe`).
    pub(crate) pe: RcuBox<crate::pe::PeBinding>,
    /// The destinations.
    pub(crate) dests: RcuBox<DestList>,
    /// Number of destinations.
    pub(crate) num_dests: AtomicU32,
    /// Counters.
    pub(crate) stats: Arc<Stats>,
    /// Real servers removed from the service, restorable (changed under the control mutex).
    trash: RcuBox<KVec<Trashed>>,
    /// Keeps `ip_vs` loaded while the service is configured (`ip_vs_use_count_inc`).
    module: ModuleHold,
}

/// A reference on the `ip_vs` module.
pub(crate) struct ModuleRef(());

impl ModuleRef {
    /// Takes a reference, `ENOPROTOOPT` if the module is going away.
    pub(crate) fn get() -> Result<Self> {
        // SAFETY: `THIS_MODULE` is this live module.
        if unsafe { kernel::kmod::try_module_get(crate::THIS_MODULE.as_ptr()) } {
            Ok(Self(()))
        } else {
            Err(Error::from_errno(-(kernel::bindings::ENOPROTOOPT as i32)))
        }
    }
}

impl Drop for ModuleRef {
    fn drop(&mut self) {
        // SAFETY: Releases the reference taken in `get`. The module's exit waits for RCU
        // callbacks (which may run this) before its code goes away.
        unsafe { kernel::kmod::module_put(crate::THIS_MODULE.as_ptr()) };
    }
}

/// The module reference of a service: given back when the service is deleted or flushed
/// (upstream's `ip_vs_use_count_dec` in `__ip_vs_del_service`), or else when it is freed.
/// What may run of its code later (its drop, from an RCU callback or the namespace's exit)
/// the module's exit waits for.
struct ModuleHold(AtomicBool);

impl ModuleHold {
    fn new(r: ModuleRef) -> Self {
        // Given back by `release`.
        core::mem::forget(r);
        Self(AtomicBool::new(true))
    }

    /// Gives the reference back, once.
    fn release(&self) {
        if self.0.swap(false, AcqRel) {
            drop(ModuleRef(()));
        }
    }
}

impl Drop for ModuleHold {
    fn drop(&mut self) {
        self.release();
    }
}

impl Service {
    /// The persistence timeout in jiffies. Upstream stores `timeout * HZ` in an `unsigned
    /// int` when the service is added or edited, so a timeout beyond `u32::MAX / HZ` seconds
    /// wraps; everything derived from it (templates, `/proc/net/ip_vs`, the timeout reported
    /// back) sees the wrapped value, here too.
    pub(crate) fn timeout_jiffies(&self, hz: u32) -> u32 {
        crate::uapi::persist_timeout_jiffies(self.timeout.load(Relaxed), hz)
    }

    /// Whether `key` names this service (`__ip_vs_svc_fwm_find`, `__ip_vs_service_find`): a
    /// mark of the same family, or the same <protocol, address, port>. The protocol of a
    /// firewall-mark service is not compared here.
    fn key_matches(&self, key: &ServiceKey) -> bool {
        self.af == key.af().raw()
            && match key {
                ServiceKey::Fwmark { mark, .. } => self.fwmark == *mark,
                ServiceKey::Addr { protocol, port, .. } => {
                    self.fwmark == 0
                        && self.protocol == *protocol
                        && self.addr == key.addr_nf()
                        && self.port == *port
                }
            }
    }

    /// The scheduler's name, or `none`.
    pub(crate) fn sched_name(&self, g: &rcu::Guard) -> SchedName {
        match self.sched.get(g) {
            Some(b) => *b.name(),
            None => SchedName::NONE,
        }
    }
}

/// Least size of the table, in bits (16 buckets).
pub(crate) const SVC_TAB_MIN_BITS: u32 = 4;
/// Greatest size of the table, in bits (about a million buckets).
pub(crate) const SVC_TAB_MAX_BITS: u32 = 20;
/// `svc_lfactor`'s default: a table of eight buckets per service.
pub(crate) const SVC_LFACTOR_DEFAULT: i32 = -3;
/// Least `svc_lfactor` (the largest table: 256 buckets per service).
pub(crate) const SVC_LFACTOR_MIN: i32 = -8;
/// Greatest `svc_lfactor` (the smallest table: 256 services per bucket).
pub(crate) const SVC_LFACTOR_MAX: i32 = 8;

/// `x << k` for a positive `k`, `x >> -k` otherwise; saturating.
fn shift(x: usize, k: i32) -> usize {
    let n = k.unsigned_abs();
    if k > 0 {
        match x.checked_shl(n) {
            Some(v) if v.checked_shr(n) == Some(x) => v,
            _ => usize::MAX,
        }
    } else {
        x.checked_shr(n).unwrap_or(0)
    }
}

/// The size (in bits) of a table for `n` services with the load factor `lfactor`
/// (`2^lfactor` services per bucket): `n << -lfactor` buckets (`n >> lfactor`), rounded up
/// to a power of two, within [`SVC_TAB_MIN_BITS`]`..=`[`SVC_TAB_MAX_BITS`].
pub(crate) fn bits_for(n: usize, lfactor: i32) -> u32 {
    let want = shift(n, lfactor.saturating_neg());
    let bits = match want.checked_sub(1) {
        None | Some(0) => 0,
        Some(m) => usize::BITS - m.leading_zeros(),
    };
    bits.clamp(SVC_TAB_MIN_BITS, SVC_TAB_MAX_BITS)
}

/// The size a table of `bits` holding `n` services should take, if it should change: it
/// grows past its upper threshold (`u_thresh`, `2^bits << lfactor` services), and shrinks
/// below a sixteenth of it, to the size [`bits_for`] gives (so that neither comes back at
/// once).
pub(crate) fn resize_to(bits: u32, n: usize, lfactor: i32) -> Option<u32> {
    let size = 1usize.checked_shl(bits)?;
    let u_thresh = shift(size, lfactor);
    if n > u_thresh || (bits > SVC_TAB_MIN_BITS && n < u_thresh / 16) {
        let want = bits_for(n, lfactor);
        (want != bits).then_some(want)
    } else {
        None
    }
}

/// The hash of the <protocol, address, port> service of family `af` (jhash with the table's
/// random `seed`, as upstream since its tables became resizable; every bit of the address
/// counts).
fn hash_addr(seed: u32, af: u16, protocol: u16, addr: &[u8; 16], port: [u8; 2]) -> u32 {
    let a = crate::hash::jhash_addr16(addr, seed);
    let pp = (u32::from(protocol) << 16) | u32::from(u16::from_ne_bytes(port));
    crate::hash::jhash_3words(a, pp, u32::from(af), seed)
}

/// Told apart from an address hash's second word (protocols are below 256).
const FWMARK_TAG: u32 = 0xf1f0_0000;

/// The hash of the firewall-mark service of family `af`.
fn hash_fwmark(seed: u32, af: u16, mark: u32) -> u32 {
    crate::hash::jhash_3words(mark, FWMARK_TAG, u32::from(af), seed)
}

/// The hash of the service `key` names.
fn hash_key(seed: u32, key: &ServiceKey) -> u32 {
    match key {
        ServiceKey::Fwmark { mark, .. } => hash_fwmark(seed, key.af().raw(), *mark),
        ServiceKey::Addr { protocol, port, .. } => {
            hash_addr(seed, key.af().raw(), *protocol, &key.addr_nf(), *port)
        }
    }
}

/// One size of the table: `2^bits` buckets, each an immutable list of services published
/// through RCU. A service's bucket is the top `bits` bits of its hash, and every list is
/// sorted by hash, so that the table lists its services in the order of their hashes
/// whatever its size: a listing resumed after a resize neither skips nor repeats a service.
struct Tab {
    bits: u32,
    buckets: KVVec<RcuBox<KVec<Arc<Service>>>>,
}

impl Tab {
    /// An empty table of `bits` (at most [`SVC_TAB_MAX_BITS`]).
    fn new(bits: u32) -> Result<Self> {
        let n = 1usize.checked_shl(bits.min(SVC_TAB_MAX_BITS)).ok_or(EINVAL)?;
        let mut buckets = KVVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            buckets.push(RcuBox::new(None), GFP_KERNEL)?;
        }
        Ok(Self { bits, buckets })
    }

    /// The bucket of `hash`.
    fn index(&self, hash: u32) -> usize {
        hash.checked_shr(32u32.saturating_sub(self.bits)).unwrap_or(0) as usize
    }

    /// The services of bucket `b` (none past the end).
    fn bucket<'a>(&'a self, b: usize, g: &'a rcu::Guard) -> &'a [Arc<Service>] {
        match self.buckets.get(b).and_then(|slot| slot.get(g)) {
            Some(v) => v,
            None => &[],
        }
    }
}

/// The packet path's view of a namespace's services (upstream's `svc_table`, per namespace
/// and resizable as since Linux 7.1): one hash table for services by address and by firewall
/// mark, published through RCU, whose buckets are immutable lists published through RCU
/// too. A change republishes the one bucket it touches; the table is rebuilt (and the old
/// one freed after a grace period) only when the number of services crosses a threshold of
/// `svc_lfactor` ([`bits_for`]), so that chains stay short, and lookups O(1), at any
/// number of services. Changes are serialised by the control mutex.
pub(crate) struct ServiceTable {
    tab: RcuBox<Tab>,
    /// The hashes' random key, for the table's lifetime (so that the listing order stays).
    seed: u32,
    /// `svc_lfactor`, as the table was last fitted with.
    lfactor: AtomicI32,
}

/// A [`ServiceTable`] seen from inside an RCU read section.
#[derive(Clone, Copy)]
pub(crate) struct ServiceView<'a> {
    tab: &'a Tab,
    seed: u32,
    g: &'a rcu::Guard,
}

/// Figures about a namespace's service table (for `/proc/net/ip_vs_status`), as seen in
/// one RCU read section.
#[allow(dead_code)] // Until /proc/net/ip_vs_status shows them; KUnit reads them.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SvcStatus {
    /// Number of services in the table.
    pub(crate) services: usize,
    /// Number of buckets (`2^bits`).
    pub(crate) buckets: usize,
    /// The table's size in bits.
    pub(crate) bits: u32,
    /// The load factor the table was last sized with (`svc_lfactor`).
    pub(crate) lfactor: i32,
    /// `chains[i]`: how many buckets hold `i` services, `chains[7]` those with 7 or more.
    pub(crate) chains: [usize; 8],
}

impl ServiceTable {
    /// An empty table of the least size.
    pub(crate) fn new() -> Result<Self> {
        Ok(Self {
            tab: RcuBox::new(Some(RcuNode::new(Tab::new(SVC_TAB_MIN_BITS)?, GFP_KERNEL)?)),
            seed: crate::abi::random_u32(),
            lfactor: AtomicI32::new(SVC_LFACTOR_DEFAULT),
        })
    }

    /// The table inside the read section `g`.
    pub(crate) fn get<'a>(&'a self, g: &'a rcu::Guard) -> Option<ServiceView<'a>> {
        self.tab.get(g).map(|tab| ServiceView { tab, seed: self.seed, g })
    }

    /// The service `key` names (`__ip_vs_service_find`, `__ip_vs_svc_fwm_find`, by the
    /// key of a request: the protocol of a firewall-mark service is not compared).
    pub(crate) fn lookup(&self, key: &ServiceKey) -> Option<Arc<Service>> {
        let g = rcu::read_lock();
        let v = self.get(&g)?;
        let h = hash_key(self.seed, key);
        v.tab.bucket(v.tab.index(h), &g).iter().find(|s| s.hash == h && s.key_matches(key)).cloned()
    }

    /// The service table's figures for `/proc/net/ip_vs_status`: services, buckets, bits,
    /// load factor and the histogram of chain lengths, walked in the read section `g`
    /// (every bucket: the cost of one read of the file grows with the table).
    #[allow(dead_code)] // Until /proc/net/ip_vs_status calls it; KUnit does.
    pub(crate) fn status(&self, g: &rcu::Guard) -> SvcStatus {
        let mut st = SvcStatus { lfactor: self.lfactor.load(Relaxed), ..SvcStatus::default() };
        let Some(tab) = self.tab.get(g) else {
            return st;
        };
        st.bits = tab.bits;
        st.buckets = tab.buckets.len();
        for slot in tab.buckets.iter() {
            let n = slot.get(g).map_or(0, |v| v.len());
            st.services = st.services.saturating_add(n);
            if let Some(c) = st.chains.get_mut(n.min(7)) {
                *c = c.saturating_add(1);
            }
        }
        st
    }

    /// Sets the load factor the next fitting uses (`svc_lfactor` was written).
    pub(crate) fn set_lfactor(&self, lfactor: i32) {
        self.lfactor.store(lfactor.clamp(SVC_LFACTOR_MIN, SVC_LFACTOR_MAX), Relaxed);
    }

    /// Publishes the bucket of `svc` with `svc` in it, after the services of its hash or
    /// below. The copy is of one bucket (short: see [`bits_for`]).
    fn insert(&self, svc: &Arc<Service>) -> Result {
        let g = rcu::read_lock();
        let tab = self.tab.get(&g).ok_or(EINVAL)?;
        let slot = tab.buckets.get(tab.index(svc.hash)).ok_or(EINVAL)?;
        let old = slot.get(&g).map_or(&[][..], |v| &v[..]);
        let pos = old.iter().position(|s| s.hash > svc.hash).unwrap_or(old.len());
        let mut v = KVec::with_capacity(old.len() + 1, GFP_ATOMIC)?;
        for s in old.iter().take(pos) {
            v.push(s.clone(), GFP_ATOMIC)?;
        }
        v.push(svc.clone(), GFP_ATOMIC)?;
        for s in old.iter().skip(pos) {
            v.push(s.clone(), GFP_ATOMIC)?;
        }
        slot.replace_deferred(Some(RcuNode::new(v, GFP_ATOMIC)?));
        Ok(())
    }

    /// Publishes the bucket of `svc` without it; whether it was there.
    fn remove(&self, svc: &Arc<Service>) -> Result<bool> {
        let g = rcu::read_lock();
        let tab = self.tab.get(&g).ok_or(EINVAL)?;
        let slot = tab.buckets.get(tab.index(svc.hash)).ok_or(EINVAL)?;
        let old = slot.get(&g).map_or(&[][..], |v| &v[..]);
        if !old.iter().any(|s| Arc::ptr_eq(s, svc)) {
            return Ok(false);
        }
        let node = if old.len() <= 1 {
            None
        } else {
            let mut v = KVec::with_capacity(old.len() - 1, GFP_ATOMIC)?;
            for s in old.iter().filter(|s| !Arc::ptr_eq(s, svc)) {
                v.push(s.clone(), GFP_ATOMIC)?;
            }
            Some(RcuNode::new(v, GFP_ATOMIC)?)
        };
        slot.replace_deferred(node);
        Ok(true)
    }

    /// Every service, in listing order, `count` of them (the caller's count: the room is
    /// made before the read section).
    fn collect(&self, count: usize) -> Result<KVVec<Arc<Service>>> {
        let mut all = KVVec::with_capacity(count, GFP_KERNEL)?;
        let g = rcu::read_lock();
        if let Some(v) = self.get(&g) {
            for s in v.iter() {
                // Within the room made, unless the count is wrong: then the resize fails.
                all.push(s.clone(), GFP_NOWAIT)?;
            }
        }
        Ok(all)
    }

    /// Publishes an empty table of the least size and returns the old one, which readers may
    /// still be reading; none if short of memory for the new one.
    fn clear(&self) -> Result<Option<rcu::Retired<Tab>>> {
        let empty = RcuNode::new(Tab::new(SVC_TAB_MIN_BITS)?, GFP_KERNEL)?;
        Ok(self.tab.retire(Some(empty)))
    }

    /// Publishes a table of `bits` holding `services` (in listing order) and returns the
    /// old one, which readers may still be reading (no wait here).
    fn rebuild(&self, bits: u32, services: &[Arc<Service>]) -> Result<Option<rcu::Retired<Tab>>> {
        let mut tab = Tab::new(bits)?;
        let mut rest = services;
        while let Some(first) = rest.first() {
            let b = tab.index(first.hash);
            let n = rest.iter().take_while(|s| tab.index(s.hash) == b).count();
            let (run, tail) = rest.split_at(n);
            let mut v = KVec::with_capacity(run.len(), GFP_KERNEL)?;
            for s in run.iter() {
                v.push(s.clone(), GFP_KERNEL)?;
            }
            if let Some(slot) = tab.buckets.get_mut(b) {
                *slot = RcuBox::new(Some(RcuNode::new(v, GFP_KERNEL)?));
            }
            rest = tail;
        }
        Ok(self.tab.retire(Some(RcuNode::new(tab, GFP_KERNEL)?)))
    }

    /// Resizes the table for `count` services if it crossed a threshold of the load factor
    /// ([`resize_to`]): amortised over the changes that made it cross, the cost per change
    /// does not grow with the number of services. The table replaced is returned, as by
    /// [`Self::rebuild`].
    fn fit(&self, count: usize) -> Result<Option<rcu::Retired<Tab>>> {
        let bits = {
            let g = rcu::read_lock();
            self.tab.get(&g).map_or(SVC_TAB_MIN_BITS, |t| t.bits)
        };
        let Some(want) = resize_to(bits, count, self.lfactor.load(Relaxed)) else {
            return Ok(None);
        };
        let all = self.collect(count)?;
        self.rebuild(want, &all)
    }
}

impl<'a> ServiceView<'a> {
    fn bucket(&self, b: usize) -> &'a [Arc<Service>] {
        self.tab.bucket(b, self.g)
    }

    /// The first bucket at or after `from` that holds services, with its index; none past
    /// the last one.
    pub(crate) fn next_bucket(&self, from: usize) -> Option<(usize, &'a [Arc<Service>])> {
        let g = self.g;
        self.tab.buckets.get(from..)?.iter().enumerate().find_map(|(i, slot)| {
            let v: &'a [Arc<Service>] = slot.get(g)?;
            (!v.is_empty()).then(|| (from.saturating_add(i), v))
        })
    }

    /// Number of buckets: a walk by bucket index keeps its place while this stays the same
    /// (a service's bucket depends only on its hash and the table's size).
    pub(crate) fn buckets(&self) -> usize {
        self.tab.buckets.len()
    }

    /// The services of hash `h`.
    fn of_hash(&self, h: u32) -> impl Iterator<Item = &'a Arc<Service>> + 'a {
        self.bucket(self.tab.index(h)).iter().filter(move |s| s.hash == h)
    }

    /// The service of family `af` for <protocol, address, port> (`__ip_vs_service_find`).
    pub(crate) fn find(&self, af: u16, protocol: u16, addr: &[u8; 16], port: [u8; 2]) -> Option<&'a Arc<Service>> {
        self.of_hash(hash_addr(self.seed, af, protocol, addr, port)).find(|s| {
            s.af == af && s.fwmark == 0 && s.protocol == protocol && s.addr == *addr && s.port == port
        })
    }

    /// The service of family `af` for a firewall mark (`__ip_vs_svc_fwm_find`): a mark
    /// names one service per family.
    pub(crate) fn find_fwmark(&self, af: u16, mark: u32) -> Option<&'a Arc<Service>> {
        self.of_hash(hash_fwmark(self.seed, af, mark)).find(|s| s.af == af && s.fwmark == mark)
    }

    /// The service at `cur`, in the numbering of [`Self::seek`].
    pub(crate) fn at(&self, cur: &SeqCursor) -> Option<&'a Arc<Service>> {
        let h = u32::try_from(cur.bucket).ok()?;
        self.of_hash(h).nth(cur.index)
    }

    /// Moves `cur` to the first service at or after it in listing order (by hash); false
    /// past the last one. A cursor is a hash (`bucket`) and the rank of a service among
    /// those of that hash (`index`), so it keeps its place when the table is resized.
    pub(crate) fn seek(&self, cur: &mut SeqCursor) -> bool {
        let Ok(mut h) = u32::try_from(cur.bucket) else {
            return false;
        };
        let mut rank = cur.index;
        let mut b = self.tab.index(h);
        while b < self.tab.buckets.len() {
            let mut seen = 0usize;
            for s in self.bucket(b).iter() {
                if s.hash < h {
                    continue;
                }
                if s.hash == h {
                    if seen < rank {
                        seen = seen.saturating_add(1);
                        continue;
                    }
                    cur.index = rank;
                } else {
                    cur.index = 0;
                }
                cur.bucket = s.hash as usize;
                return true;
            }
            // The next buckets hold greater hashes only: their first service is next.
            b = b.saturating_add(1);
            h = 0;
            rank = 0;
        }
        false
    }

    /// All services in listing order (by hash).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &'a Arc<Service>> + 'a {
        let v = *self;
        (0..v.tab.buckets.len()).flat_map(move |b| v.bucket(b).iter())
    }
}

/// The control path's side of a namespace's services, under the control mutex: their
/// counts and the real servers of deleted services. The services themselves are in the
/// [`ServiceTable`] every method is given (the namespace's), which only changes under that
/// mutex.
pub(crate) struct Services {
    count: usize,
    count_v4: usize,
    /// The real servers of deleted services (the namespace's part of upstream's
    /// `dest_trash`, which is per namespace): a service added again takes its servers back,
    /// and the connections still bound to them go on.
    orphans: Orphans,
    /// Tables emptied by [`Self::flush`], oldest first, whose services' real servers are not
    /// among the orphans yet: [`Self::settle`] puts them there when a service is next added
    /// or deleted or a real server added, so that a flush costs no more than unlinking.
    flushed: KVec<rcu::Retired<Tab>>,
    /// Tables replaced by resizes, oldest first, kept until their grace periods have
    /// passed (see [`Self::keep_resized`]), so that no command waits for one.
    resized: KVec<rcu::Retired<Tab>>,
}

impl Services {
    /// None yet.
    pub(crate) fn new() -> Self {
        Self { count: 0, count_v4: 0, orphans: Orphans::new(), flushed: KVec::new(), resized: KVec::new() }
    }

    /// Number of services.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Number of IPv4 services (the ones the socket options see).
    pub(crate) fn len_v4(&self) -> usize {
        self.count_v4
    }

    /// The service `key` names, in `table` (the namespace's).
    pub(crate) fn lookup(&self, key: &ServiceKey, table: &ServiceTable) -> Option<Arc<Service>> {
        table.lookup(key)
    }

    /// `ip_vs_add_service`: the module reference (`ENOPROTOOPT`), the scheduler (`ENOENT`),
    /// the persistence engine (`ENOENT`, after trying to load `ip_vs_pe_<name>`), the
    /// prefix, then the service.
    pub(crate) fn add(&mut self, u: &Checked<ServiceConfig>, table: &ServiceTable) -> Result {
        // A table flushed before is freed by the next change at the latest.
        self.settle();
        let module = ModuleRef::get()?;
        let sched = if u.sched_name.is_none() {
            None
        } else {
            Some(RcuNode::new(SchedBinding::new(u.sched_name, &[])?, GFP_KERNEL)?)
        };
        let pe = match u.pe_name {
            Some(name) => Some(RcuNode::new(crate::pe::PeBinding::new(name.as_bytes())?, GFP_KERNEL)?),
            None => None,
        };
        u.check_prefix()?;
        let svc = Arc::new(
            Service {
                af: u.key.af().raw(),
                protocol: u.key.protocol(),
                addr: u.key.addr_nf(),
                port: u.key.port(),
                fwmark: u.key.fwmark(),
                hash: hash_key(table.seed, &u.key),
                flags: AtomicU32::new(u.flags | svc_flags::HASHED),
                timeout: AtomicU32::new(u.timeout),
                netmask: AtomicU32::new(u32::from_ne_bytes(u.netmask)),
                sched: RcuBox::new(sched),
                pe: RcuBox::new(pe),
                dests: RcuBox::new(Some(DestList::build(KVec::new())?)),
                num_dests: AtomicU32::new(0),
                stats: Arc::new(Stats::new()?, GFP_KERNEL)?,
                trash: RcuBox::new(None),
                module: ModuleHold::new(module),
            },
            GFP_KERNEL,
        )?;
        table.insert(&svc)?;
        self.count = self.count.saturating_add(1);
        self.count_v4 = self.count_v4.saturating_add(usize::from(svc.af == AF_INET));
        // Short of memory for a larger table, the service is in and lookups walk longer
        // chains until the next change resizes it.
        self.keep_resized(table.fit(self.count));
        Ok(())
    }

    /// Resizes `table` for a new `svc_lfactor` (`lfactor`), if it asks for another size;
    /// the old table is freed after the grace period, waited for here.
    pub(crate) fn refit(&self, table: &ServiceTable, lfactor: i32) -> Result {
        table.set_lfactor(lfactor);
        if let Some(old) = table.fit(self.count)? {
            drop(old.into_inner());
        }
        Ok(())
    }

    /// Frees the tables resizes replaced once the last one's grace period has passed (the
    /// earlier ones' then has too) and keeps `old`, the one a resize just replaced, if any:
    /// a resize costs no wait, and a table is freed here, in process context, by a later
    /// change. Short of memory to keep it, this one waits.
    fn keep_resized(&mut self, old: Result<Option<rcu::Retired<Tab>>>) {
        self.free_resized();
        let Ok(Some(old)) = old else {
            return;
        };
        if self.resized.reserve(1, GFP_KERNEL).is_err() {
            drop(old.into_inner());
            return;
        }
        // Within the room reserved: cannot fail.
        let _ = self.resized.push(old, GFP_KERNEL);
    }

    /// Frees the tables resizes replaced if their grace periods have all passed.
    fn free_resized(&mut self) {
        if self.resized.last().is_some_and(|r| r.elapsed()) {
            drop(core::mem::replace(&mut self.resized, KVec::new()));
        }
    }

    /// `ip_vs_edit_service`: the scheduler (`ENOENT`), the persistence engine (`ENOENT`;
    /// none given removes it), the prefix, then the new settings.
    pub(crate) fn edit(&self, svc: &Service, u: &Checked<ServiceConfig>) -> Result {
        let name = u.sched_name;
        let g = rcu::read_lock();
        let same = svc.sched.get(&g).map(|b| *b.name()) == Some(name)
            || (svc.sched.get(&g).is_none() && name.is_none());
        drop(g);
        let new = if same {
            None
        } else if name.is_none() {
            Some(None)
        } else {
            // The scheduler starts with the current servers; it is set up outside the RCU
            // read section (it may load its module), so they are held by `Arc`s.
            let dests = DestVec::new(snapshot(svc)?)?;
            Some(Some(RcuNode::new(SchedBinding::new(name, dests.infos())?, GFP_KERNEL)?))
        };
        // Upstream sets the engine given, or none, on every edit.
        let g = rcu::read_lock();
        let same_pe = svc.pe.get(&g).map(|b| b.name()) == u.pe_name.as_ref().map(|n| n.as_bytes());
        drop(g);
        let new_pe = match u.pe_name {
            _ if same_pe => None,
            Some(name) => Some(Some(RcuNode::new(crate::pe::PeBinding::new(name.as_bytes())?, GFP_KERNEL)?)),
            None => Some(None),
        };
        u.check_prefix()?;
        if let Some(new) = new {
            svc.sched.replace_deferred(new);
        }
        if let Some(new) = new_pe {
            svc.pe.replace_deferred(new);
        }
        svc.flags.store(u.flags | svc_flags::HASHED, Relaxed);
        svc.timeout.store(u.timeout, Relaxed);
        svc.netmask.store(u32::from_ne_bytes(u.netmask), Relaxed);
        Ok(())
    }

    /// What deleting a service undoes at once (`__ip_vs_del_service`), though readers may
    /// still see it: its real servers unlinked, its scheduler and engine unbound, its module
    /// reference given back (so that the modules can be unloaded when the command returns).
    fn unlink(svc: &Service, g: &rcu::Guard) {
        if let Some(l) = svc.dests.get(g) {
            for d in l.dests.iter() {
                d.retire();
            }
        }
        SchedBinding::unbind(&svc.sched, g);
        crate::pe::PeBinding::unbind(&svc.pe, g);
        svc.module.release();
    }

    /// `ip_vs_del_service`.
    pub(crate) fn del(&mut self, svc: &Arc<Service>, table: &ServiceTable) -> Result {
        if table.remove(svc)? {
            self.count = self.count.saturating_sub(1);
            self.count_v4 = self.count_v4.saturating_sub(usize::from(svc.af == AF_INET));
        }
        Self::unlink(svc, &rcu::read_lock());
        self.settle();
        self.adopt(svc);
        // Short of memory for a smaller table, the larger one stays.
        self.keep_resized(table.fit(self.count));
        Ok(())
    }

    /// Keeps the real servers of the deleted service `svc`, those it had and those in its
    /// trash, restorable into a service of the same identity (`__ip_vs_del_service` puts
    /// them in the namespace's trash), at a cost that does not grow with the orphans
    /// already kept. Short of memory, they are only lost for restoring.
    fn adopt(&mut self, svc: &Service) {
        let now = kernel::timer::jiffies_64();
        self.orphans.prune(now);
        let mut gone = KVec::new();
        {
            // The servers and the trash only change under the control mutex, which the
            // caller holds.
            let g = rcu::read_lock();
            let live: &[Arc<Dest>] = svc.dests.get(&g).map_or(&[], |l| &l.dests);
            let trashed = svc.trash.get(&g).map_or(&[][..], |t| &t[..]);
            if gone.reserve(live.len() + trashed.len(), GFP_ATOMIC).is_err() {
                return;
            }
            let all = Iterator::chain(
                live.iter().map(|d| (d, 0)),
                trashed.iter().map(|t| (&t.dest, t.idle_since)),
            );
            for (dest, idle_since) in all {
                // Within the room reserved: cannot fail.
                let _ = gone.push(Trashed { dest: dest.clone(), idle_since }, GFP_ATOMIC);
            }
        }
        for t in gone {
            self.orphans.insert(Orphan {
                af: svc.af,
                protocol: svc.protocol,
                addr: svc.addr,
                port: svc.port,
                fwmark: svc.fwmark,
                t,
            });
        }
    }

    /// `ip_vs_add_dest`: see [`add_dest`]; a server of a deleted service of the same
    /// identity comes back from the namespace's trash.
    pub(crate) fn add_dest(
        &mut self,
        net: &Net,
        svc: &Service,
        u: &Checked<DestConfig>,
        defrag6: impl FnOnce() -> Result,
    ) -> Result {
        self.settle();
        add_dest(net, svc, u, defrag6, |addr, port| self.orphans.take(svc, addr, port))
    }

    /// `ip_vs_flush`: the table replaced by an empty one of the least size, then every
    /// service unlinked ([`Self::unlink`]), yielding the CPU as it goes. It neither waits
    /// for the readers of the old table nor frees: the old table is kept, with its
    /// services, for [`Self::settle`] (upstream's flush frees nothing either: the real
    /// servers, in its trash, hold their services).
    pub(crate) fn flush(&mut self, table: &ServiceTable) -> Result {
        if self.count == 0 {
            return Ok(());
        }
        self.flushed.reserve(1, GFP_KERNEL)?;
        let Some(old) = table.clear()? else {
            return Ok(());
        };
        self.count = 0;
        self.count_v4 = 0;
        let tab = old.get();
        let mut g = rcu::read_lock();
        for b in 0..tab.buckets.len() {
            for s in tab.bucket(b, &g) {
                Self::unlink(s, &g);
            }
            if b % 1024 == 1023 {
                g.cond_resched();
            }
        }
        drop(g);
        // Within the room reserved: cannot fail.
        let _ = self.flushed.push(old, GFP_KERNEL);
        Ok(())
    }

    /// Puts the real servers of the flushed services among the orphans, oldest flush
    /// first, and frees the services: before the orphans are looked at or added to. Waits
    /// for the readers of a flushed table if they are not done yet (they are, unless this
    /// follows the flush at once).
    fn settle(&mut self) {
        self.free_resized();
        self.drain_flushed(true);
    }

    /// Frees the flushed services without keeping their real servers, and the tables
    /// resizes replaced (the namespace goes).
    pub(crate) fn release(&mut self) {
        for old in core::mem::replace(&mut self.resized, KVec::new()) {
            drop(old.into_inner());
        }
        self.drain_flushed(false);
    }

    /// Frees the flushed tables, oldest first, and with their last references their
    /// services, yielding as it goes; with `keep` their real servers go among the orphans
    /// first. Waits for a table's readers if they are not done yet.
    fn drain_flushed(&mut self, keep: bool) {
        for old in core::mem::replace(&mut self.flushed, KVec::new()) {
            for (i, mut slot) in old.into_inner().buckets.into_iter().enumerate() {
                if let Some(v) = slot.get_mut().filter(|_| keep) {
                    for s in v.iter() {
                        self.adopt(s);
                    }
                }
                drop(slot);
                if i % 64 == 63 {
                    kernel::sched::cond_resched();
                }
            }
        }
    }
}

/// Drops the routes the real servers of `svc` cache (`ip_vs_forget_dev`, for all devices):
/// a device going down or away must not be held by them. The next packet looks its route
/// up again. Only servers in the service cache routes: removed ones are retired.
pub(crate) fn forget_routes(svc: &Service, g: &rcu::Guard) {
    if let Some(l) = svc.dests.get(g) {
        for d in l.dests.iter() {
            d.route.reset();
        }
    }
}

/// Takes the thresholds of `u`; a change re-evaluates the server's overload state, as
/// upstream's `__ip_vs_update_dest` does.
fn set_thresholds(d: &Dest, u: &DestConfig) {
    if d.info.u_threshold.load(Relaxed) != u.u_threshold
        || d.info.l_threshold.load(Relaxed) != u.l_threshold
    {
        d.info.u_threshold.store(u.u_threshold, Relaxed);
        d.info.l_threshold.store(u.l_threshold, Relaxed);
        d.info.update_overload(OverloadEvent::Thresholds);
    }
}

fn snapshot(svc: &Service) -> Result<KVec<Arc<Dest>>> {
    let g = rcu::read_lock();
    let mut v = KVec::new();
    if let Some(l) = svc.dests.get(&g) {
        v = KVec::with_capacity(l.dests.len() + 1, GFP_ATOMIC)?;
        for d in l.dests.iter() {
            v.push(d.clone(), GFP_ATOMIC)?;
        }
    }
    Ok(v)
}

use kernel::alloc::flags::GFP_ATOMIC;

/// How long a removed real server that nothing uses any more stays restorable
/// (`IP_VS_DEST_TRASH_PERIOD`), in milliseconds.
const TRASH_PERIOD_MS: u32 = 120_000;

/// A real server removed from its service (upstream's destination trash). Adding the same
/// server back restores this very object, with its connection counters, `OVERLOAD` flag,
/// statistics and id, so schedulers see what they see upstream; connections still bound to
/// it count again. It is dropped once unused (no connections, no templates) for
/// [`TRASH_PERIOD_MS`], checked whenever the service's real servers change.
struct Trashed {
    dest: Arc<Dest>,
    /// When it was first seen unused (jiffies), or 0.
    idle_since: u64,
}

/// A real server of a deleted service, with the identity of that service (what
/// upstream's trash compares: `vfwmark`, `protocol`, `vaddr`, `vport`).
struct Orphan {
    af: u16,
    protocol: u16,
    addr: [u8; 16],
    port: [u8; 2],
    fwmark: u32,
    t: Trashed,
}

impl Orphan {
    /// The hash of the identity a new service and server must have to take it back (what
    /// [`Orphans::take`] compares): a service by mark matches whatever its address.
    fn hash(&self, seed: u32) -> u32 {
        let d = &self.t.dest.info;
        orphan_hash(seed, self.fwmark, self.protocol, (self.af, &self.addr, self.port), (&d.addr, d.port))
    }
}

fn orphan_hash(
    seed: u32,
    fwmark: u32,
    protocol: u16,
    vaddr: (u16, &[u8; 16], [u8; 2]),
    daddr: (&[u8; 16], [u8; 2]),
) -> u32 {
    let d = crate::hash::jhash_addr16(daddr.0, seed);
    let v = if fwmark != 0 {
        fwmark
    } else {
        crate::hash::jhash_addr16(vaddr.1, seed ^ u32::from(vaddr.0)) ^ u32::from(u16::from_ne_bytes(vaddr.2))
    };
    crate::hash::jhash_3words(d ^ u32::from(u16::from_ne_bytes(daddr.1)), v, u32::from(protocol), seed)
}

/// The real servers of deleted services, by the identity they can come back to: the
/// namespace's part of upstream's `dest_trash`, which upstream walks whole for every real
/// server added; here a lookup costs the same with 100,000 of them as with 10.
struct Orphans {
    /// Chain heads by [`Orphan::hash`], a power of two of them (or none): the index plus
    /// one of the newest orphan of the chain in `slots`, 0 for none.
    heads: KVVec<u32>,
    /// The orphans in the order they came (taken ones leave a hole until the next
    /// [`Orphans::rebuild`]), each linked to the next older one of its chain.
    slots: KVVec<OrphanSlot>,
    /// Holes in `slots`.
    holes: usize,
    /// How many were left by the last look for expired ones: the next look comes when their
    /// number has doubled, so that deleting services costs O(1) each.
    kept: usize,
    seed: u32,
}

/// A place in [`Orphans::slots`].
struct OrphanSlot {
    /// `None` once taken.
    o: Option<Orphan>,
    hash: u32,
    /// The index plus one of the next older orphan of the chain, 0 for none.
    next: u32,
}

impl Orphans {
    fn new() -> Self {
        Self { heads: KVVec::new(), slots: KVVec::new(), holes: 0, kept: 0, seed: crate::abi::random_u32() }
    }

    fn len(&self) -> usize {
        self.slots.len().saturating_sub(self.holes)
    }

    fn bucket_of(&self, h: u32) -> usize {
        (h as usize) & self.heads.len().wrapping_sub(1)
    }

    /// Keeps the orphans for which `keep` holds (it may update them), without holes and in
    /// `n` (a power of two) chains; short of memory, nothing changes. No allocation per
    /// orphan: the chains are indices into one array.
    fn rebuild(&mut self, n: usize, mut keep: impl FnMut(&mut Orphan) -> bool) {
        let Ok(mut heads) = KVVec::from_elem(0u32, n, GFP_KERNEL) else {
            return;
        };
        // Room for as many as chains, when the next rebuild comes (see `insert`).
        let Ok(mut slots) = KVVec::with_capacity(n.max(self.len()), GFP_KERNEL) else {
            return;
        };
        let mask = n.wrapping_sub(1);
        for s in core::mem::replace(&mut self.slots, KVVec::new()) {
            let Some(mut o) = s.o else {
                continue;
            };
            if !keep(&mut o) {
                continue;
            }
            // Oldest first, each in front of its chain: the newest ends up at the head.
            // Within the capacity reserved: cannot fail.
            Self::link(&mut heads, &mut slots, s.hash as usize & mask, o, s.hash);
        }
        self.heads = heads;
        self.slots = slots;
        self.holes = 0;
    }

    /// Puts `o` at the head of its chain; short of memory it is only lost for restoring.
    fn insert(&mut self, o: Orphan) {
        if self.slots.len() >= self.heads.len() {
            let n = self.len().saturating_mul(2).max(64).next_power_of_two();
            self.rebuild(n, |_| true);
        }
        let hash = o.hash(self.seed);
        let b = self.bucket_of(hash);
        Self::link(&mut self.heads, &mut self.slots, b, o, hash);
    }

    /// Appends `o` to `slots` and puts it in front of chain `b`; short of memory (or of
    /// indices) it is dropped.
    fn link(heads: &mut KVVec<u32>, slots: &mut KVVec<OrphanSlot>, b: usize, o: Orphan, hash: u32) {
        let (Some(head), Ok(idx)) = (heads.get_mut(b), u32::try_from(slots.len() + 1)) else {
            return;
        };
        if slots.push(OrphanSlot { o: Some(o), hash, next: *head }, GFP_KERNEL).is_ok() {
            *head = idx;
        }
    }

    /// Takes the real server at `addr` and `port` of a deleted service of the identity of
    /// `svc` (the rest of `ip_vs_trash_get_dest`), the most recently deleted first.
    fn take(&mut self, svc: &Service, addr: &InetAddr, port: [u8; 2]) -> Option<Arc<Dest>> {
        if self.heads.is_empty() {
            return None;
        }
        let h = orphan_hash(self.seed, svc.fwmark, svc.protocol, (svc.af, &svc.addr, svc.port), (&addr.nf(), port));
        let b = self.bucket_of(h);
        let mut prev: Option<usize> = None;
        let mut cur = *self.heads.get(b)?;
        while let Some(i) = (cur as usize).checked_sub(1) {
            let s = self.slots.get(i)?;
            let next = s.next;
            let hit = s.hash == h
                && s.o.as_ref().is_some_and(|o| {
                    o.t.dest.matches(addr, port)
                        && o.fwmark == svc.fwmark
                        && o.protocol == svc.protocol
                        && (svc.fwmark != 0 || (o.af == svc.af && o.addr == svc.addr && o.port == svc.port))
                });
            if hit {
                match prev {
                    None => *self.heads.get_mut(b)? = next,
                    Some(p) => self.slots.get_mut(p)?.next = next,
                }
                let o = self.slots.get_mut(i)?.o.take()?;
                self.holes += 1;
                return Some(o.t.dest);
            }
            prev = Some(i);
            cur = next;
        }
        None
    }

    /// Drops the orphans unused for [`TRASH_PERIOD_MS`], as upstream's trash timer would
    /// have, once their number has doubled since the last time (amortised O(1) per orphan).
    fn prune(&mut self, now: u64) {
        if self.len() < self.kept.saturating_mul(2).max(64) {
            return;
        }
        let period = kernel::time::msecs_to_jiffies(TRASH_PERIOD_MS) as u64;
        self.rebuild(self.heads.len().max(64), |o| {
            match (o.t.in_use(), o.t.idle_since) {
                (true, _) => o.t.idle_since = 0,
                (false, 0) => o.t.idle_since = now,
                (false, since) if now.wrapping_sub(since) >= period => return false,
                (false, _) => {}
            }
            true
        });
        let len = self.len();
        self.kept = len;
        let want = len.next_power_of_two().max(64);
        if want < self.heads.len() / 4 {
            self.rebuild(want, |_| true);
        }
    }
}

impl Trashed {
    fn in_use(&self) -> bool {
        let i = &self.dest.info;
        i.totalconns.load(Relaxed) != 0 || i.persistconns.load(Relaxed) != 0
    }
}

/// Republishes `svc`'s trash without expired entries, with `add` put in and the entry for
/// `take` (address, port) taken out and returned.
fn trash_update(
    svc: &Service,
    add: Option<Arc<Dest>>,
    take: Option<(&InetAddr, [u8; 2])>,
) -> Result<Option<Arc<Dest>>> {
    let now = kernel::timer::jiffies_64();
    let period = kernel::time::msecs_to_jiffies(TRASH_PERIOD_MS) as u64;
    let g = rcu::read_lock();
    let old = svc.trash.get(&g).map_or(&[][..], |t| &t[..]);
    let mut kept = KVec::with_capacity(old.len() + 1, GFP_ATOMIC)?;
    let mut taken = None;
    for t in old.iter() {
        if take.is_some_and(|(a, p)| t.dest.matches(a, p)) && taken.is_none() {
            taken = Some(t.dest.clone());
            continue;
        }
        let idle_since = match (t.in_use(), t.idle_since) {
            (true, _) => 0,
            (false, 0) => now,
            (false, since) if now.wrapping_sub(since) >= period => continue,
            (false, since) => since,
        };
        kept.push(Trashed { dest: t.dest.clone(), idle_since }, GFP_ATOMIC)?;
    }
    drop(g);
    if let Some(dest) = add {
        let mut t = Trashed { dest, idle_since: 0 };
        if !t.in_use() {
            t.idle_since = now;
        }
        kept.push(t, GFP_KERNEL)?;
    }
    svc.trash.replace_deferred(if kept.is_empty() { None } else { Some(RcuNode::new(kept, GFP_KERNEL)?) });
    Ok(taken)
}

/// `ip_vs_add_dest`, after [`DestConfig::check`]: an existing server (`EEXIST`), then one
/// back from the service's trash or from the namespace's (`orphan`, the servers of deleted
/// services: see [`Services::add_dest`]) or a new one, whose address must be local or
/// unicast (`EINVAL`). An IPv6 server turns on IPv6 reassembly in the namespace first
/// (`defrag6`).
fn add_dest(
    net: &Net,
    svc: &Service,
    u: &Checked<DestConfig>,
    defrag6: impl FnOnce() -> Result,
    orphan: impl FnOnce(&InetAddr, [u8; 2]) -> Option<Arc<Dest>>,
) -> Result {
    let addr = u.addr;
    let old = snapshot(svc)?;
    if old.iter().any(|d| d.matches(&addr, u.port)) {
        return Err(EEXIST);
    }
    match addr {
        InetAddr::V4(addr4) => {
            let atype = net.inet_addr_type(addr4);
            if atype != kernel::net::namespace::RTN_LOCAL && atype != kernel::net::namespace::RTN_UNICAST {
                return Err(EINVAL);
            }
        }
        InetAddr::V6(a) => {
            // Unicast and not link-local, unless it is one of this host's addresses.
            use kernel::bindings::{IPV6_ADDR_LINKLOCAL, IPV6_ADDR_UNICAST};
            let atype = kernel::net::namespace::ipv6_addr_type(&a);
            if (atype & IPV6_ADDR_UNICAST == 0 || atype & IPV6_ADDR_LINKLOCAL != 0)
                && !kernel::net::skbuff::Route::output_v6(net, &a).is_ok_and(|(rt, _)| rt.is_local())
            {
                return Err(EINVAL);
            }
            defrag6()?;
        }
    }
    let trashed = match trash_update(svc, None, Some((&addr, u.port)))? {
        Some(d) => Some(d),
        None => match orphan(&addr, u.port) {
            Some(d) => {
                // Now a server of this service: its traffic counts here.
                d.svc_stats.replace_deferred(Some(RcuNode::new(svc.stats.clone(), GFP_KERNEL)?));
                Some(d)
            }
            None => None,
        },
    };
    let dest = match trashed {
        Some(d) => {
            // Back from the trash: set up as upstream's `__ip_vs_update_dest` does.
            d.info.weight.store(u.weight, Relaxed);
            d.info.last_weight.store(u.weight, Relaxed);
            set_thresholds(&d, u);
            d.conn_flags.store(u.dest_conn_flags(), Relaxed);
            d.set_tunnel(u);
            d.info.flags.fetch_or(DEST_F_AVAILABLE, Relaxed);
            d
        }
        None => new_dest(svc, u, addr)?,
    };
    let mut list = KVec::with_capacity(old.len() + 1, GFP_KERNEL)?;
    list.push(dest, GFP_KERNEL)?;
    for d in old.into_iter() {
        list.push(d, GFP_KERNEL)?;
    }
    let list = DestList::build(list)?;
    let g = rcu::read_lock();
    if let Some(s) = svc.sched.get(&g) {
        s.add_dest(list.infos(), 0);
    }
    drop(g);
    svc.num_dests.store(list.dests.len() as u32, Relaxed);
    svc.dests.replace_deferred(Some(list));
    Ok(())
}

fn new_dest(svc: &Service, u: &DestConfig, addr: InetAddr) -> Result<Arc<Dest>> {
    Ok(Arc::new(
        Dest {
            info: DestInfo {
                id: NEXT_DEST_ID.fetch_add(1, Relaxed),
                weight: AtomicI32::new(u.weight),
                flags: AtomicU32::new(DEST_F_AVAILABLE),
                activeconns: AtomicU32::new(0),
                totalconns: AtomicU32::new(0),
                persistconns: AtomicU32::new(0),
                u_threshold: AtomicU32::new(u.u_threshold),
                l_threshold: AtomicU32::new(u.l_threshold),
                af: addr.af().raw(),
                port: u.port,
                addr: addr.nf(),
                last_weight: AtomicI32::new(u.weight),
            },
            conn_flags: AtomicU32::new(u.dest_conn_flags()),
            stats: Stats::new()?,
            svc_stats: RcuBox::new(Some(RcuNode::new(svc.stats.clone(), GFP_KERNEL)?)),
            route: RouteCache::new(),
            tun_type: AtomicU8::new(u.tun_type),
            tun_port: AtomicU16::new(u16::from_ne_bytes(u.tun_port)),
            tun_flags: AtomicU16::new(u.tun_flags),
            svc_fwmark: svc.fwmark,
        },
        GFP_KERNEL,
    )?)
}

/// `ip_vs_edit_dest`, after [`DestConfig::check`]: `ENOENT` if there is no such server.
pub(crate) fn edit_dest(svc: &Service, u: &Checked<DestConfig>) -> Result {
    let g = rcu::read_lock();
    let list = svc.dests.get(&g).ok_or(ENOENT)?;
    let i = list.find(&u.addr, u.port).ok_or(ENOENT)?;
    let d = &list.dests[i];
    d.info.weight.store(u.weight, Relaxed);
    if u.weight != 0 {
        d.info.last_weight.store(u.weight, Relaxed);
    }
    set_thresholds(d, u);
    d.conn_flags.store(u.dest_conn_flags(), Relaxed);
    d.set_tunnel(u);
    if let Some(s) = svc.sched.get(&g) {
        s.upd_dest(list.infos(), i);
    }
    Ok(())
}

/// `ip_vs_del_dest`: only the address and port of `u` count (upstream checks nothing else
/// of a server being removed); `ENOENT` if there is no such server.
pub(crate) fn del_dest(svc: &Service, u: &DestConfig) -> Result {
    let g = rcu::read_lock();
    let list = svc.dests.get(&g).ok_or(ENOENT)?;
    let i = list.find(&u.addr, u.port).ok_or(ENOENT)?;
    if let Some(s) = svc.sched.get(&g) {
        s.del_dest(list.infos(), i);
    }
    let mut kept = KVec::with_capacity(list.dests.len(), GFP_ATOMIC)?;
    for (j, d) in list.dests.iter().enumerate() {
        if j != i {
            kept.push(d.clone(), GFP_ATOMIC)?;
        } else {
            d.retire();
        }
    }
    let removed = list.dests[i].clone();
    drop(g);
    let list = DestList::build(kept)?;
    svc.num_dests.store(list.dests.len() as u32, Relaxed);
    svc.dests.replace_deferred(Some(list));
    // Upstream keeps it whatever happens; here a failed allocation only loses the restore.
    let _ = trash_update(svc, Some(removed), None);
    Ok(())
}
