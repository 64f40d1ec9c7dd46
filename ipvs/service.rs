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
use core::sync::atomic::{AtomicI32, AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use kernel::{
    alloc::{flags::GFP_KERNEL, KBox, KVec},
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
    /// `IP_VS_SVC_F_*`, with `HASHED` set as upstream reports it.
    pub(crate) flags: AtomicU32,
    /// Persistence timeout in seconds, as given (any `u32`): see [`Service::timeout_jiffies`].
    pub(crate) timeout: AtomicU32,
    /// Persistence netmask, network byte order as stored in a `u32`.
    pub(crate) netmask: AtomicU32,
    /// The scheduler, or none (`none`).
    pub(crate) sched: RcuBox<SchedBinding>,
    /// The destinations.
    pub(crate) dests: RcuBox<DestList>,
    /// Number of destinations.
    pub(crate) num_dests: AtomicU32,
    /// Counters.
    pub(crate) stats: Arc<Stats>,
    /// Real servers removed from the service, restorable (changed under the control mutex).
    trash: RcuBox<KVec<Trashed>>,
    /// Keeps `ip_vs` loaded while the service exists (`ip_vs_use_count_inc`).
    _module: ModuleRef,
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

const SVC_TAB_SIZE: usize = 256;

/// Bucket of a <protocol, address, port> service (upstream's function, without the
/// namespace pointer it mixes in, which only reorders `/proc/net/ip_vs`).
fn svc_hashkey(protocol: u16, addr: &[u8; 16], port: [u8; 2]) -> usize {
    let porth = u16::from_be_bytes(port) as u32;
    // An IPv6 address folds its four words; an IPv4 one (the first word, the others zero)
    // is its own fold.
    let w = |i: usize| u32::from_be_bytes([addr[i], addr[i + 1], addr[i + 2], addr[i + 3]]);
    let ahash = w(0) ^ w(4) ^ w(8) ^ w(12);
    ((protocol as u32 ^ ahash ^ (porth >> 8) ^ porth) as usize) & (SVC_TAB_SIZE - 1)
}

fn fwm_hashkey(mark: u32) -> usize {
    mark as usize & (SVC_TAB_SIZE - 1)
}

/// Number of buckets of each of the two tables (`IP_VS_SVC_TAB_SIZE`): the
/// <protocol, address, port> table, then the firewall-mark table.
const BUCKETS: usize = 2 * SVC_TAB_SIZE;

/// The bucket of the service `key` names, in the numbering of [`ServiceTable::nth`].
fn bucket_of_key(key: &ServiceKey) -> usize {
    match key {
        ServiceKey::Fwmark { mark, .. } => SVC_TAB_SIZE + fwm_hashkey(*mark),
        ServiceKey::Addr { protocol, port, .. } => svc_hashkey(*protocol, &key.addr_nf(), *port),
    }
}

/// The bucket of a service.
fn bucket_of(s: &Service) -> usize {
    if s.fwmark != 0 {
        SVC_TAB_SIZE + fwm_hashkey(s.fwmark)
    } else {
        svc_hashkey(s.protocol, &s.addr, s.port)
    }
}

/// The packet path's view of a namespace's services: two hash tables of [`SVC_TAB_SIZE`]
/// buckets each, every bucket an immutable list published through RCU. A change
/// republishes the one bucket it touches, so its cost does not grow with the number of
/// services (upstream changes its `hlist`s in place, which is the same cost).
pub(crate) struct ServiceTable {
    buckets: KVec<RcuBox<KVec<Arc<Service>>>>,
}

/// A [`ServiceTable`] seen from inside an RCU read section.
#[derive(Clone, Copy)]
pub(crate) struct ServiceView<'a> {
    table: &'a ServiceTable,
    g: &'a rcu::Guard,
}

impl ServiceTable {
    /// An empty table.
    pub(crate) fn new() -> Result<Self> {
        let mut buckets = KVec::with_capacity(BUCKETS, GFP_KERNEL)?;
        for _ in 0..BUCKETS {
            buckets.push(RcuBox::new(None), GFP_KERNEL)?;
        }
        Ok(Self { buckets })
    }

    /// The table inside the read section `g`.
    pub(crate) fn get<'a>(&'a self, g: &'a rcu::Guard) -> Option<ServiceView<'a>> {
        Some(ServiceView { table: self, g })
    }

    /// Publishes `services` (oldest first), then `newest`, as bucket `b`, newest first as
    /// upstream's `hlist_add_head` orders it.
    fn publish(&self, b: usize, services: &[Arc<Service>], newest: Option<&Arc<Service>>) -> Result {
        let Some(slot) = self.buckets.get(b) else {
            return Err(EINVAL);
        };
        let node = if services.is_empty() && newest.is_none() {
            None
        } else {
            let mut v = KVec::with_capacity(services.len() + 1, GFP_KERNEL)?;
            for s in Iterator::chain(newest.into_iter(), services.iter().rev()) {
                v.push(s.clone(), GFP_KERNEL)?;
            }
            Some(RcuNode::new(v, GFP_KERNEL)?)
        };
        slot.replace_deferred(node);
        Ok(())
    }
}

/// What `/proc/net/ip_vs_status` shows of the service table.
pub(crate) struct SvcStatus {
    /// Number of services.
    pub(crate) services: u32,
    /// Number of buckets, and their bits.
    pub(crate) buckets: u32,
    pub(crate) bits: u32,
    /// The load factor the table is sized for (0: fixed size).
    pub(crate) lfactor: i32,
    /// Buckets with 0, 1, ... 6 and 7 or more services.
    pub(crate) histogram: kernel::rcu_hash::Histogram,
}

impl ServiceTable {
    /// The table's size and chain lengths (both hash tables' buckets together).
    pub(crate) fn status(&self) -> SvcStatus {
        let g = rcu::read_lock();
        let mut st = SvcStatus {
            services: 0,
            buckets: BUCKETS as u32,
            bits: BUCKETS.trailing_zeros(),
            lfactor: 0,
            histogram: Default::default(),
        };
        for slot in self.buckets.iter() {
            let n = slot.get(&g).map_or(0, |v| v.len());
            st.services = st.services.saturating_add(n as u32);
            if let Some(c) = st.histogram.get_mut(n.min(7)) {
                *c += 1;
            }
        }
        st
    }
}

impl<'a> ServiceView<'a> {
    fn bucket(&self, b: usize) -> &'a [Arc<Service>] {
        match self.table.buckets.get(b).and_then(|slot| slot.get(self.g)) {
            Some(v) => v,
            None => &[],
        }
    }

    /// The service of family `af` for <protocol, address, port> (`__ip_vs_service_find`).
    pub(crate) fn find(&self, af: u16, protocol: u16, addr: &[u8; 16], port: [u8; 2]) -> Option<&'a Arc<Service>> {
        self.bucket(svc_hashkey(protocol, addr, port)).iter().find(|s| {
            s.af == af && s.fwmark == 0 && s.protocol == protocol && s.addr == *addr && s.port == port
        })
    }

    /// The service of family `af` for a firewall mark (`__ip_vs_svc_fwm_find`): a mark
    /// names one service per family.
    pub(crate) fn find_fwmark(&self, af: u16, mark: u32) -> Option<&'a Arc<Service>> {
        self.bucket(SVC_TAB_SIZE + fwm_hashkey(mark))
            .iter()
            .find(|s| s.af == af && s.fwmark == mark)
    }

    /// Service `index` of bucket `bucket`, the buckets of <protocol, address, port> first,
    /// then those of firewall marks (upstream's listing order).
    pub(crate) fn nth(&self, bucket: usize, index: usize) -> Option<&'a Arc<Service>> {
        self.bucket(bucket).get(index)
    }

    /// Moves `cur` to the first service at or after it in listing order; false past the
    /// last one.
    pub(crate) fn seek(&self, cur: &mut SeqCursor) -> bool {
        while cur.bucket < BUCKETS {
            if self.nth(cur.bucket, cur.index).is_some() {
                return true;
            }
            cur.bucket += 1;
            cur.index = 0;
        }
        false
    }

    /// All services in upstream's listing order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &'a Arc<Service>> + 'a {
        let v = *self;
        (0..BUCKETS).flat_map(move |b| v.bucket(b).iter())
    }
}

/// The authoritative services of a namespace, kept under the control mutex in the buckets of
/// the [`ServiceTable`] they are published to (oldest first); a change republishes the bucket
/// it touches.
pub(crate) struct Services {
    buckets: KVec<KVec<Arc<Service>>>,
    count: usize,
    count_v4: usize,
    /// The real servers of deleted services (the namespace's part of upstream's
    /// `dest_trash`, which is per namespace): a service added again takes its servers back,
    /// and the connections still bound to them go on.
    orphans: KVec<Orphan>,
}

impl Services {
    /// An empty set (its buckets come with the first service).
    pub(crate) fn new() -> Self {
        Self { buckets: KVec::new(), count: 0, count_v4: 0, orphans: KVec::new() }
    }

    /// Number of services.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Number of IPv4 services (the ones the socket options see).
    pub(crate) fn len_v4(&self) -> usize {
        self.count_v4
    }


    /// The service `key` names.
    pub(crate) fn lookup(&self, key: &ServiceKey) -> Option<Arc<Service>> {
        self.buckets.get(bucket_of_key(key))?.iter().find(|s| s.key_matches(key)).cloned()
    }

    /// `ip_vs_add_service`: the module reference (`ENOPROTOOPT`), the scheduler (`ENOENT`),
    /// the persistence engine (`ENOENT`: there are none), the prefix, then the service.
    pub(crate) fn add(&mut self, u: &Checked<ServiceConfig>, table: &ServiceTable) -> Result {
        let module = ModuleRef::get()?;
        let sched = if u.sched_name.is_none() {
            None
        } else {
            Some(RcuNode::new(SchedBinding::new(u.sched_name, &[])?, GFP_KERNEL)?)
        };
        if u.pe_name.is_some() {
            return Err(ENOENT);
        }
        u.check_prefix()?;
        if self.buckets.is_empty() {
            let mut buckets = KVec::with_capacity(BUCKETS, GFP_KERNEL)?;
            for _ in 0..BUCKETS {
                buckets.push(KVec::new(), GFP_KERNEL)?;
            }
            self.buckets = buckets;
        }
        let svc = Arc::new(
            Service {
                af: u.key.af().raw(),
                protocol: u.key.protocol(),
                addr: u.key.addr_nf(),
                port: u.key.port(),
                fwmark: u.key.fwmark(),
                flags: AtomicU32::new(u.flags | svc_flags::HASHED),
                timeout: AtomicU32::new(u.timeout),
                netmask: AtomicU32::new(u32::from_ne_bytes(u.netmask)),
                sched: RcuBox::new(sched),
                dests: RcuBox::new(Some(DestList::build(KVec::new())?)),
                num_dests: AtomicU32::new(0),
                stats: Arc::new(Stats::new()?, GFP_KERNEL)?,
                trash: RcuBox::new(None),
                _module: module,
            },
            GFP_KERNEL,
        )?;
        let b = bucket_of(&svc);
        let bucket = self.buckets.get_mut(b).ok_or(EINVAL)?;
        // Room first, so that the push after publishing cannot fail.
        bucket.reserve(1, GFP_KERNEL)?;
        table.publish(b, bucket, Some(&svc))?;
        let v4 = usize::from(svc.af == AF_INET);
        bucket.push(svc, GFP_KERNEL)?;
        self.count += 1;
        self.count_v4 += v4;
        Ok(())
    }

    /// `ip_vs_edit_service`: the scheduler (`ENOENT`), the persistence engine (`ENOENT`:
    /// there are none), the prefix, then the new settings.
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
        if u.pe_name.is_some() {
            return Err(ENOENT);
        }
        u.check_prefix()?;
        if let Some(new) = new {
            svc.sched.replace_deferred(new);
        }
        svc.flags.store(u.flags | svc_flags::HASHED, Relaxed);
        svc.timeout.store(u.timeout, Relaxed);
        svc.netmask.store(u32::from_ne_bytes(u.netmask), Relaxed);
        Ok(())
    }

    fn unlink_dests(svc: &Service) {
        let g = rcu::read_lock();
        if let Some(l) = svc.dests.get(&g) {
            for d in l.dests.iter() {
                d.retire();
            }
        }
    }

    /// `ip_vs_del_service`.
    pub(crate) fn del(&mut self, svc: &Arc<Service>, table: &ServiceTable) -> Result {
        let b = bucket_of(svc);
        let Some(bucket) = self.buckets.get_mut(b) else {
            return Err(ESRCH);
        };
        let mut kept = KVec::with_capacity(bucket.len(), GFP_KERNEL)?;
        for s in bucket.iter() {
            if !Arc::ptr_eq(s, svc) {
                kept.push(s.clone(), GFP_KERNEL)?;
            }
        }
        table.publish(b, &kept, None)?;
        let removed = bucket.len() != kept.len();
        *bucket = kept;
        if removed {
            self.count = self.count.saturating_sub(1);
            self.count_v4 = self.count_v4.saturating_sub(usize::from(svc.af == AF_INET));
        }
        Self::unlink_dests(svc);
        self.adopt(svc);
        Ok(())
    }

    /// Keeps the real servers of the deleted service `svc`, those it had and those in its
    /// trash, restorable into a service of the same identity (`__ip_vs_del_service` puts
    /// them in the namespace's trash). Short of memory, they are only lost for restoring.
    fn adopt(&mut self, svc: &Service) {
        let now = kernel::timer::jiffies_64();
        let period = kernel::time::msecs_to_jiffies(TRASH_PERIOD_MS) as u64;
        let Ok(live) = snapshot(svc) else {
            return;
        };
        // The trash only changes under the control mutex, which the caller holds.
        let trashed = svc.trash.get(&rcu::read_lock()).map_or(0, |t| t.len());
        let room = self.orphans.len() + live.len() + trashed;
        let Ok(mut kept) = KVec::with_capacity(room, GFP_KERNEL) else {
            return;
        };
        let g = rcu::read_lock();
        let trashed = svc.trash.get(&g).map_or(&[][..], |t| &t[..]);
        // Drop the unused ones whose time is up, as upstream's trash timer would have.
        for mut o in core::mem::take(&mut self.orphans) {
            match (o.t.in_use(), o.t.idle_since) {
                (true, _) => o.t.idle_since = 0,
                (false, 0) => o.t.idle_since = now,
                (false, since) if now.wrapping_sub(since) >= period => continue,
                (false, _) => {}
            }
            // Within the capacity reserved: cannot fail.
            let _ = kept.push(o, GFP_ATOMIC);
        }
        let gone = Iterator::chain(
            live.iter().map(|d| (d, 0)),
            trashed.iter().map(|t| (&t.dest, t.idle_since)),
        );
        for (dest, idle_since) in gone {
            let o = Orphan {
                af: svc.af,
                protocol: svc.protocol,
                addr: svc.addr,
                port: svc.port,
                fwmark: svc.fwmark,
                t: Trashed { dest: dest.clone(), idle_since },
            };
            let _ = kept.push(o, GFP_ATOMIC);
        }
        self.orphans = kept;
    }

    /// Takes the real server at `addr` and `port` of a deleted service of the identity of
    /// `svc` out of the namespace's trash (the rest of `ip_vs_trash_get_dest`).
    fn take_orphan(&mut self, svc: &Service, addr: &InetAddr, port: [u8; 2]) -> Option<Arc<Dest>> {
        let hit = |o: &Orphan| {
            o.t.dest.matches(addr, port)
                && o.fwmark == svc.fwmark
                && o.protocol == svc.protocol
                && (svc.fwmark != 0 || (o.af == svc.af && o.addr == svc.addr && o.port == svc.port))
        };
        if !self.orphans.iter().any(hit) {
            return None;
        }
        // Short of memory the server stays where it is, and a new one is made.
        let mut kept = KVec::with_capacity(self.orphans.len(), GFP_KERNEL).ok()?;
        let mut taken = None;
        for o in core::mem::take(&mut self.orphans) {
            if taken.is_none() && hit(&o) {
                taken = Some(o.t.dest);
            } else {
                let _ = kept.push(o, GFP_KERNEL);
            }
        }
        self.orphans = kept;
        taken
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
        add_dest(net, svc, u, defrag6, |addr, port| self.take_orphan(svc, addr, port))
    }

    /// `ip_vs_flush`: every bucket emptied, yielding the CPU between buckets.
    pub(crate) fn flush(&mut self, table: &ServiceTable) -> Result {
        self.count = 0;
        self.count_v4 = 0;
        for b in 0..self.buckets.len() {
            let Some(bucket) = self.buckets.get_mut(b) else {
                break;
            };
            if bucket.is_empty() {
                continue;
            }
            table.publish(b, &[], None)?;
            let gone = core::mem::take(bucket);
            for s in gone.iter() {
                Self::unlink_dests(s);
                self.adopt(s);
            }
            kernel::sched::cond_resched();
        }
        Ok(())
    }

    /// Iterates the services (in bucket order).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<Service>> {
        self.buckets.iter().flat_map(|b| b.iter())
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
