// SPDX-License-Identifier: GPL-2.0

//! Connection synchronisation (upstream's `ip_vs_sync.c`): a master director multicasts what
//! it knows of its connections and persistence templates; backup directors learn them, so
//! that when a backup takes the virtual addresses over, established connections and
//! persistent clients keep their real servers.
//!
//! Per network namespace there may be a master daemon, a backup daemon, or both, each with
//! `sync_ports` kernel threads and a UDP socket per thread (port 8848 + thread, or the
//! configured port + thread). The packet path adds records to the current message of a
//! master thread (`sync_conn`); full messages queue for the thread, which sends them. A
//! backup thread receives messages and applies them to the connection table. The wire format
//! is [`crate::sync_msg`]; every received datagram is hostile input.

use crate::{
    conn::{Conn, ConnParam, ConnTable},
    ctl, ctl_config,
    service::{Dest, ServiceTable},
    protocol::{Protocol, SyncRule, Timeouts},
    sync_msg::{self, conn_flags as f, Record, SyncConn, Version},
};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use kernel::{
    alloc::{flags::*, KVec},
    error::code::*,
    kthread::{Ctx, KThread},
    net::{
        namespace::{net_ratelimit, Net},
        socket::{self, McastAddr, McastSocket},
    },
    new_condvar, new_mutex, new_spinlock_bh,
    prelude::*,
    str::CString,
    sync::{
        rcu::{self, RcuBox, RcuNode},
        Arc, CondVar, Mutex, SpinLockBh,
    },
    sysctl::SysctlValues,
    timer::jiffies_64,
};

/// `IP_VS_STATE_MASTER`.
pub(crate) const STATE_MASTER: u32 = 1;
/// `IP_VS_STATE_BACKUP`.
pub(crate) const STATE_BACKUP: u32 = 2;

/// Most threads (and ports) a daemon may have (`IPVS_SYNC_PORTS_MAX`).
const SYNC_PORTS_MAX: i32 = 1 << 6;
/// A master thread is woken at once every this many queued messages
/// (`IPVS_SYNC_WAKEUP_RATE`).
const WAKEUP_RATE: u32 = 8;
/// Records wait at most this long in a message being filled, in seconds
/// (`IPVS_SYNC_FLUSH_TIME`).
const FLUSH_TIME_SECS: u64 = 2;
/// Template state count (`IP_VS_CTPL_S_LAST`).
const CTPL_S_LAST: u16 = 2;
/// `IPPROTO_ESP` and `IPPROTO_AH`: upstream's receiver knows them (one state each, no
/// timeout table) although they have no services of their own.
const IPPROTO_ESP: u8 = 50;
const IPPROTO_AH: u8 = 51;
/// Length of the IPv4 and UDP headers, and of the IPv6 and UDP ones.
const HLEN4: u32 = 20 + 8;
const HLEN6: u32 = 40 + 8;

/// Upstream's `netns_ipvs->gen`: a number per namespace that names its sync threads.
static GEN: AtomicU32 = AtomicU32::new(0);

/// What the daemons of a namespace share with the packet path and with their threads.
pub(crate) struct Shared {
    pub(crate) conns: Arc<ConnTable>,
    pub(crate) svc_table: Arc<ServiceTable>,
    pub(crate) sysctl: Arc<SysctlValues>,
    pub(crate) timeouts: Arc<Timeouts>,
    pub(crate) hz: u32,
    /// Datagrams and records a backup dropped (hostile or unusable), for `/proc` readers
    /// and tests; upstream only logs them.
    pub(crate) dropped_msgs: AtomicU64,
    pub(crate) dropped_conns: AtomicU64,
}

/// A daemon's configuration once the defaults are applied (`ipvs_sync_daemon_cfg`).
#[derive(Clone, Copy)]
pub(crate) struct DaemonCfg {
    pub(crate) mcast_ifn: ctl_config::IfName,
    pub(crate) syncid: u8,
    pub(crate) sync_maxlen: u16,
    pub(crate) v6: bool,
    pub(crate) group: [u8; 16],
    pub(crate) port: u16,
    pub(crate) ttl: u8,
}

/// Per-namespace state: the running daemons.
#[pin_data]
pub(crate) struct SyncState {
    /// Serialises starting and stopping (`sync_mutex`).
    #[pin]
    daemons: Mutex<Daemons>,
    /// `IP_VS_STATE_*` of the running daemons (`sync_state`).
    state: AtomicU32,
    /// The master's queues, for the packet path.
    master: RcuBox<Arc<Master>>,
    gen: u32,
    shared: Arc<Shared>,
}

struct Daemons {
    master: Option<Running<MasterThread>>,
    backup: Option<Running<BackupThread>>,
    /// Threads per daemon minus one, fixed while any daemon runs (`threads_mask`).
    threads_mask: usize,
}

struct Running<T: Send + Sync + 'static> {
    cfg: DaemonCfg,
    threads: KVec<KThread<T>>,
    /// Keeps `ip_vs` loaded while the daemon runs (`ip_vs_use_count_inc`).
    _module: crate::service::ModuleRef,
}

impl SyncState {
    pub(crate) fn new(shared: Arc<Shared>) -> impl PinInit<Self> {
        pin_init!(Self {
            daemons <- new_mutex!(Daemons { master: None, backup: None, threads_mask: 0 }, "ip_vs_sync"),
            state: AtomicU32::new(0),
            master: RcuBox::new(None),
            gen: GEN.fetch_add(1, Relaxed),
            shared,
        })
    }

    /// `IP_VS_STATE_*` bits of the running daemons.
    pub(crate) fn state(&self) -> u32 {
        self.state.load(Relaxed)
    }

    /// `sysctl_backup_only`: the director only backs up (a backup daemon runs and
    /// `backup_only` is set), so its hooks leave packets alone.
    pub(crate) fn backup_only(&self) -> bool {
        self.state() & STATE_BACKUP != 0 && self.shared.sysctl.get(ctl::SYSCTL_BACKUP_ONLY) != 0
    }

    /// The configurations of the running master and backup (`IP_VS_SO_GET_DAEMON`,
    /// `IPVS_CMD_GET_DAEMON`).
    pub(crate) fn configs(&self) -> [Option<DaemonCfg>; 2] {
        let d = self.daemons.lock();
        [d.master.as_ref().map(|r| r.cfg), d.backup.as_ref().map(|r| r.cfg)]
    }

    /// `start_sync_thread`, after the checks of [`ctl::start_daemon`].
    pub(crate) fn start(&self, net: &Net, c: &ctl_config::DaemonConfig, role: ctl_config::DaemonState) -> Result {
        let module = crate::service::ModuleRef::get()?;
        let mut d = self.daemons.lock();
        let count = if d.master.is_none() && d.backup.is_none() {
            let n = self.shared.sysctl.get(ctl::SYSCTL_SYNC_PORTS).clamp(1, SYNC_PORTS_MAX) as usize;
            d.threads_mask = n - 1;
            n
        } else {
            d.threads_mask + 1
        };
        let (v6, group) = match c.mcast_group {
            None => {
                let mut g = [0u8; 16];
                g[..4].copy_from_slice(&sync_msg::MCAST_GROUP4);
                (false, g)
            }
            Some(a) => (a.af() == ctl_config::Af::Inet6, a.nf()),
        };
        let name = kernel::str::CStr::from_bytes_with_nul(c.mcast_ifn.as_bytes_with_nul()).map_err(|_| EINVAL)?;
        let ifindex = socket::ifindex(net, name)?;
        let backup = role == ctl_config::DaemonState::Backup;
        let hlen = if v6 { HLEN6 } else { HLEN4 };
        let mtu = if backup {
            socket::dev_mtu(net, ifindex)?.clamp(1500, 65535)
        } else {
            1500
        };
        let min_mtu = if backup { 1024 } else { 1 };
        let sync_maxlen = if c.sync_maxlen != 0 {
            u32::from(c.sync_maxlen).clamp(min_mtu, 65535 - hlen)
        } else {
            mtu - hlen
        };
        let cfg = DaemonCfg {
            mcast_ifn: c.mcast_ifn,
            syncid: c.syncid as u8,
            sync_maxlen: sync_maxlen as u16,
            v6,
            group,
            port: if c.mcast_port != 0 { c.mcast_port } else { sync_msg::SYNC_PORT },
            ttl: if c.mcast_ttl != 0 { c.mcast_ttl } else { 1 },
        };
        if (backup && d.backup.is_some()) || (!backup && d.master.is_some()) {
            return Err(EEXIST);
        }
        let sock_size = self.shared.sysctl.get(ctl::SYSCTL_SYNC_SOCK_SIZE);
        let addr = |id: usize| McastAddr {
            v6,
            group: &cfg.group,
            port: cfg.port.wrapping_add(id as u16),
            ifindex,
        };
        if backup {
            let mut threads = KVec::with_capacity(count, GFP_KERNEL)?;
            for id in 0..count {
                let sock = McastSocket::receiver(net, &addr(id), sock_size)?;
                let t = Arc::new(
                    BackupThread { sock, shared: self.shared.clone(), cfg },
                    GFP_KERNEL,
                )?;
                let name = CString::try_from_fmt(format_args!("ipvs-b:{}:{}", self.gen, id))?;
                threads.push(KThread::run(t, backup_thread, &name)?, GFP_KERNEL)?;
            }
            d.backup = Some(Running { cfg, threads, _module: module });
            self.state.fetch_or(STATE_BACKUP, Relaxed);
        } else {
            let mut threads = KVec::with_capacity(count, GFP_KERNEL)?;
            let mut queues = KVec::with_capacity(count, GFP_KERNEL)?;
            for _ in 0..count {
                queues.push(Arc::pin_init(MasterQueue::new(), GFP_KERNEL)?, GFP_KERNEL)?;
            }
            for (id, q) in queues.iter().enumerate() {
                let sock = McastSocket::sender(net, &addr(id), cfg.ttl, sock_size)?;
                let t = Arc::new(MasterThread { sock, q: q.clone(), hz: self.shared.hz }, GFP_KERNEL)?;
                let name = CString::try_from_fmt(format_args!("ipvs-m:{}:{}", self.gen, id))?;
                threads.push(KThread::run(t, master_thread, &name)?, GFP_KERNEL)?;
            }
            let m = Arc::new(Master { queues, cfg, mask: count - 1 }, GFP_KERNEL)?;
            self.master.replace(Some(RcuNode::new(m, GFP_KERNEL)?));
            d.master = Some(Running { cfg, threads, _module: module });
            self.state.fetch_or(STATE_MASTER, Relaxed);
        }
        Ok(())
    }

    /// `stop_sync_thread`: `ESRCH` if that daemon does not run.
    pub(crate) fn stop(&self, role: ctl_config::DaemonState) -> Result {
        let mut d = self.daemons.lock();
        match role {
            ctl_config::DaemonState::Master => {
                let r = d.master.take().ok_or(ESRCH)?;
                self.state.fetch_and(!STATE_MASTER, Relaxed);
                // No new records once readers of the old pointer are gone.
                self.master.replace(None);
                for t in r.threads.iter() {
                    t.data().q.stop();
                }
                drop(r);
            }
            ctl_config::DaemonState::Backup => {
                let r = d.backup.take().ok_or(ESRCH)?;
                self.state.fetch_and(!STATE_BACKUP, Relaxed);
                drop(r);
            }
        }
        Ok(())
    }

    /// Whether a service has a real server of the other family (upstream's
    /// `mixed_address_family_dests`): the sync protocol cannot carry such connections, so
    /// netlink refuses to start a daemon then.
    pub(crate) fn has_mixed_dests(&self) -> bool {
        let g = rcu::read_lock();
        let Some(tab) = self.shared.svc_table.get(&g) else {
            return false;
        };
        let mixed = tab.iter().any(|s| {
            s.dests.get(&g).is_some_and(|l| l.dests.iter().any(|d| d.info.af != s.af))
        });
        mixed
    }

    /// Stops both daemons (the namespace goes).
    pub(crate) fn stop_all(&self) {
        let _ = self.stop(ctl_config::DaemonState::Master);
        let _ = self.stop(ctl_config::DaemonState::Backup);
    }

    /// Called by the packet path for a connection a client packet just went through, with
    /// `pkts` its packet count (`ip_vs_sync_conn`): queues a record for the backups when
    /// upstream's rules say so, then for the template controlling it.
    pub(crate) fn sync_conn(&self, cp: &Conn, pkts: u32, g: &rcu::Guard) {
        let Some(m) = self.master.get(g) else {
            return;
        };
        let sysctl = &self.shared.sysctl;
        let version = if sysctl.get(ctl::SYSCTL_SYNC_VERSION) == 0 {
            Version::V0
        } else {
            Version::V1
        };
        let mut cp = cp;
        let mut pkts = pkts;
        loop {
            if version == Version::V0 {
                if cp.af as u16 != crate::service::AF_INET
                    || cp.flags.load(Relaxed) & f::ONE_PACKET != 0
                    || !self.needed(cp, pkts)
                {
                    return;
                }
                m.add(self, cp, version);
            } else if cp.flags.load(Relaxed) & f::ONE_PACKET == 0 && self.needed(cp, pkts) {
                m.add(self, cp, version);
            }
            let Some(t) = cp.control(g) else {
                return;
            };
            pkts = if t.is_template() {
                t.in_pkts.fetch_add(1, Relaxed).wrapping_add(1)
            } else {
                self.threshold()[0] as u32
            };
            cp = t;
        }
    }

    /// `sync_threshold` and `sync_period`.
    fn threshold(&self) -> [i32; 2] {
        self.shared.sysctl.get_pair(ctl::SYSCTL_SYNC_THRESHOLD)
    }

    /// Whether `cp` is due for a sync message (`ip_vs_sync_conn_needed`).
    fn needed(&self, cp: &Conn, pkts: u32) -> bool {
        let sysctl = &self.shared.sysctl;
        let hz = self.shared.hz;
        let orig = cp.sync_endtime.load(Relaxed);
        let now = jiffies_64() as u32;
        let timeout = cp.timeout();
        let mut n = now.wrapping_add(timeout) & !3;
        let state = cp.state();
        let flags = cp.flags.load(Relaxed);
        let mut force = false;
        let mut set_now = false;
        if flags & f::TEMPLATE != 0 {
            // Templates: no forced sync.
        } else if sysctl.get(ctl::SYSCTL_SYNC_PERSIST_MODE) != 0 && cp.has_control() {
            // `in_persistence`: the template's sync is enough.
            return false;
        } else if let Some(p) = Protocol::of(cp.protocol) {
            match p.sync_rule(state, cp.old_state.load(Relaxed)) {
                SyncRule::Never => return false,
                SyncRule::States { force: f, now } => {
                    force = f;
                    set_now = now;
                }
                SyncRule::Single => {}
            }
        }
        if !set_now {
            let refresh = sysctl.get(ctl::SYSCTL_SYNC_REFRESH_PERIOD).max(0) as u32;
            if refresh > 0 {
                let diff = (n.wrapping_sub(orig) as i32).unsigned_abs();
                let min_diff = (timeout >> 1).max(10 * hz);
                if diff < refresh.min(min_diff) {
                    let retries = orig & 3;
                    if retries >= sysctl.get(ctl::SYSCTL_SYNC_RETRIES).max(0) as u32 {
                        return false;
                    }
                    // time_before(now, orig - timeout + refresh / 8)
                    let t = orig.wrapping_sub(timeout).wrapping_add(refresh >> 3);
                    if (now.wrapping_sub(t) as i32) < 0 {
                        return false;
                    }
                    n |= retries + 1;
                }
            }
            let [threshold, period] = self.threshold();
            if period > 0 {
                if flags & f::TEMPLATE == 0 && (pkts % period as u32) as i64 != i64::from(threshold) {
                    return false;
                }
            } else if refresh == 0 && i64::from(pkts) != i64::from(threshold) {
                return false;
            }
        }
        cp.old_state.store(state, Relaxed);
        let won = cp.sync_endtime.compare_exchange(orig, n, Relaxed, Relaxed).is_ok();
        won || force
    }
}

/// A running master: one queue per thread.
struct Master {
    queues: KVec<Arc<MasterQueue>>,
    cfg: DaemonCfg,
    mask: usize,
}

impl Master {
    /// Adds the record of `cp` to the message its thread is filling (`ip_vs_sync_conn` under
    /// `sync_buff_lock`), queueing that message first when the record does not fit.
    fn add(&self, st: &SyncState, cp: &Conn, version: Version) {
        // `select_master_thread_id`: spread by the entry's address.
        let id = ((core::ptr::from_ref(cp) as usize) >> 8) & self.mask;
        let Some(q) = self.queues.get(id) else {
            return;
        };
        let hz = st.shared.hz.max(1);
        let mut flags = cp.flags.load(Relaxed) & !(f::HASHED | crate::conn::F_INVALID | crate::conn::F_PE);
        // A template's engine data and name go as options (`ip_vs_sync_conn`), and so does
        // the sequence adjustment of a connection whose helper changed payload lengths.
        let g = rcu::read_lock();
        let pe = st.shared.conns.pe_data(cp, &g);
        let seq = crate::app::sync_seq(cp, &g).map(|(sf, seq)| {
            flags |= sf;
            seq
        });
        let rec = SyncConn {
            v6: cp.af as u16 == crate::ctl_config::AF_INET6,
            protocol: cp.protocol,
            flags,
            state: cp.state(),
            cport: cp.cport,
            vport: cp.vport,
            dport: cp.dport,
            fwmark: cp.dest().map_or(0, |d| d.svc_fwmark),
            timeout: cp.timeout() / hz,
            caddr: cp.caddr,
            vaddr: cp.vaddr,
            daddr: cp.daddr,
            seq,
            pe_data: pe.map_or(&[], |p| p.data()),
            pe_name: pe.map_or(&[], |p| p.name()),
        };
        let Some(len) = sync_msg::record_len(version, &rec) else {
            return;
        };
        let qlen_max = st.shared.sysctl.get_ulong(ctl::SYSCTL_SYNC_QLEN_MAX);
        let mut inner = q.inner.lock();
        if inner.stopping {
            return;
        }
        // At most two rounds: the current message, then a fresh one sized for the record.
        for _ in 0..2 {
            if let Some(sb) = inner.cur.as_mut() {
                if sb.version == version {
                    match sync_msg::append(&mut sb.buf, sb.used, version, &rec) {
                        Ok(used) => {
                            sb.used = used;
                            return;
                        }
                        Err(sync_msg::AppendError::Unsupported) => return,
                        Err(sync_msg::AppendError::Full) => {}
                    }
                }
                // Full, or of the other version: send it.
                if let Some(sb) = inner.cur.take() {
                    if inner.queue_tail(sb, qlen_max) {
                        q.wait.notify_one();
                    }
                }
            }
            // `ip_vs_sync_buff_create`: the configured size, or more for a large record.
            let size = (sync_msg::header_len(version) + len).max(self.cfg.sync_maxlen as usize);
            let Ok(mut buf) = KVec::from_elem(0u8, size, GFP_ATOMIC) else {
                return;
            };
            let Some(used) = sync_msg::start(&mut buf, version, self.cfg.syncid) else {
                return;
            };
            inner.cur = Some(SyncBuff { buf, used, version, firstuse: jiffies_64() });
        }
    }
}

/// A message being filled or waiting to be sent (`ip_vs_sync_buff`).
struct SyncBuff {
    buf: KVec<u8>,
    used: usize,
    version: Version,
    /// Jiffies when its first record was added.
    firstuse: u64,
}

impl SyncBuff {
    fn bytes(&self) -> &[u8] {
        self.buf.get(..self.used).unwrap_or(&[])
    }
}

/// A master thread's queue (`ipvs_master_sync_state`).
#[pin_data]
struct MasterQueue {
    #[pin]
    inner: SpinLockBh<QueueInner>,
    /// Where the thread waits for messages.
    #[pin]
    wait: CondVar,
}

struct QueueInner {
    /// The message being filled.
    cur: Option<SyncBuff>,
    /// Queued messages from `head` on (taken ones are `None`).
    queue: KVec<Option<SyncBuff>>,
    head: usize,
    /// Messages queued since the thread last took one (`sync_queue_delay`).
    delay: u32,
    stopping: bool,
}

impl MasterQueue {
    fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            inner <- new_spinlock_bh!(
                QueueInner { cur: None, queue: KVec::new(), head: 0, delay: 0, stopping: false },
                "ip_vs_sync_queue"
            ),
            wait <- new_condvar!("ip_vs_sync_wait"),
        })
    }

    /// Takes no more messages and wakes the thread so that it stops.
    fn stop(&self) {
        let mut inner = self.inner.lock();
        inner.stopping = true;
        inner.cur = None;
        drop(inner);
        self.wait.notify_all();
    }
}

impl QueueInner {
    fn len(&self) -> usize {
        self.queue.len().saturating_sub(self.head)
    }

    /// Queues `sb` if the queue is under `sync_qlen_max` (`sb_queue_tail`), else drops it;
    /// true when the thread should be woken.
    fn queue_tail(&mut self, sb: SyncBuff, qlen_max: u64) -> bool {
        if self.stopping || self.len() as u64 >= qlen_max {
            return false;
        }
        let first = self.len() == 0;
        if self.queue.push(Some(sb), GFP_ATOMIC).is_err() {
            return false;
        }
        self.delay += 1;
        first || self.delay >= WAKEUP_RATE
    }

    fn pop(&mut self) -> Option<SyncBuff> {
        let sb = self.queue.get_mut(self.head)?.take();
        self.head += 1;
        if self.head >= self.queue.len() {
            // Drained: start over (the old vector is freed).
            self.queue = KVec::new();
            self.head = 0;
        }
        self.delay = 0;
        sb
    }
}

/// A master thread's data.
struct MasterThread {
    sock: McastSocket,
    q: Arc<MasterQueue>,
    hz: u32,
}

/// The next message to send (`next_sync_buff`): a queued one, else the one being filled
/// once it is [`FLUSH_TIME_SECS`] old; waits for either. `None` when the thread must stop.
fn next_message(ctx: &Ctx, q: &MasterQueue, hz: u64) -> Option<SyncBuff> {
    let mut inner = q.inner.lock();
    loop {
        if inner.stopping || ctx.should_stop() {
            return None;
        }
        if let Some(sb) = inner.pop() {
            return Some(sb);
        }
        let now = jiffies_64();
        let mut wait = hz;
        if let Some(cur) = inner.cur.as_ref() {
            let due = cur.firstuse.saturating_add(FLUSH_TIME_SECS * hz);
            if now >= due {
                return inner.cur.take();
            }
            wait = wait.min(due - now);
        }
        let _ = q.wait.wait_interruptible_timeout(&mut inner, wait as _);
    }
}

fn master_thread(ctx: &Ctx, t: &MasterThread) {
    let hz = u64::from(t.hz).max(1);
    while let Some(sb) = next_message(ctx, &t.q, hz) {
        // `ip_vs_send_sync_msg`: wait for room in the socket on `EAGAIN`; other errors lose
        // the message.
        loop {
            match t.sock.send(sb.bytes()) {
                Err(e) if e == EAGAIN => {
                    t.sock.wait_writable(ctx, hz);
                    if ctx.should_stop() {
                        return;
                    }
                }
                Err(e) => {
                    if net_ratelimit() {
                        pr_err!("IPVS: ip_vs_send_async error {}\n", e.to_errno());
                    }
                    break;
                }
                Ok(_) => break,
            }
        }
    }
}

/// A backup thread's data.
struct BackupThread {
    sock: McastSocket,
    shared: Arc<Shared>,
    cfg: DaemonCfg,
}

fn backup_thread(ctx: &Ctx, t: &BackupThread) {
    let Ok(mut buf) = KVec::from_elem(0u8, t.cfg.sync_maxlen as usize, GFP_KERNEL) else {
        pr_err!("IPVS: no memory for the sync backup buffer\n");
        return;
    };
    let hz = u64::from(t.shared.hz).max(1);
    while !ctx.should_stop() {
        t.sock.wait_readable(ctx, 10 * hz);
        // Take what is queued, then sleep again.
        while !ctx.should_stop() {
            match t.sock.recv(&mut buf) {
                Ok(n) => process_message(&t.shared, t.cfg.syncid, buf.get(..n).unwrap_or(&[])),
                Err(e) => {
                    if e != EAGAIN && net_ratelimit() {
                        pr_err!("IPVS: receiving message error\n");
                    }
                    break;
                }
            }
        }
        kernel::sched::cond_resched();
    }
}

/// Applies a datagram from a master (`ip_vs_process_message`).
fn process_message(sh: &Shared, syncid: u8, buf: &[u8]) {
    let recs = match sync_msg::parse(buf, syncid) {
        Ok(r) => r,
        Err(sync_msg::Drop::OtherSyncId) => return,
        Err(_) => {
            sh.dropped_msgs.fetch_add(1, Relaxed);
            return;
        }
    };
    let v = recs.version();
    for r in recs {
        match r {
            Record::Conn(c) => {
                if !proc_conn(sh, v, &c) {
                    sh.dropped_conns.fetch_add(1, Relaxed);
                }
            }
            Record::Skip(_) => {
                sh.dropped_conns.fetch_add(1, Relaxed);
            }
            Record::Stop(why) => {
                sh.dropped_msgs.fetch_add(1, Relaxed);
                if net_ratelimit() {
                    pr_err!("IPVS: BACKUP, Dropping buffer, {}\n", why);
                }
            }
        }
    }
}

/// Applies one record (the checks of `ip_vs_proc_sync_conn` that need this director's
/// tables, then `ip_vs_proc_conn`); false if it was left out.
fn proc_conn(sh: &Shared, v: Version, c: &SyncConn<'_>) -> bool {
    let flags = c.flags;
    let template = flags & f::TEMPLATE != 0;
    let hz = sh.hz;
    let proto_timeout = if !template {
        let (states, timeout) = match (Protocol::of(c.protocol), c.protocol) {
            (Some(p), _) => (p.num_states(), p.state_timeout(&sh.timeouts, c.state)),
            (None, IPPROTO_AH | IPPROTO_ESP) => (1, None),
            // "Unsupported protocol".
            _ => return false,
        };
        if c.state >= states {
            return false;
        }
        timeout
    } else {
        // Templates may have any protocol (firewall-mark ones have 0).
        if c.state >= CTPL_S_LAST {
            return false;
        }
        None
    };
    // Engine data needs the name of an engine registered here
    // (`ip_vs_conn_fill_param_sync`: no module is loaded for it); else the record is
    // skipped.
    let pe = if !c.pe_name.is_empty() || !c.pe_data.is_empty() {
        if c.pe_name.is_empty() || c.pe_data.is_empty() {
            return false;
        }
        let Some(module) = crate::pe::get_registered(c.pe_name) else {
            return false;
        };
        match crate::pe::PeData::from_sync(c.pe_name, c.pe_data) {
            Some(pe) => Some((pe, module)),
            None => return false,
        }
    } else {
        None
    };
    // The internal bits are this director's own.
    let flags = flags & !(crate::conn::F_INVALID | crate::conn::F_PE);
    let af = if c.v6 { ctl_config::AF_INET6 } else { ctl_config::AF_INET };
    let mut p = ConnParam {
        af,
        protocol: c.protocol,
        caddr: c.caddr,
        cport: c.cport,
        vaddr: c.vaddr,
        vport: c.vport,
    };
    if c.protocol == 0 {
        // A firewall-mark template's virtual address is the mark, in the first 4 bytes:
        // upstream's `ip_vs_conn_new` keeps, and its template lookup compares, only those
        // (of an IPv6 record too).
        if let Some(rest) = p.vaddr.get_mut(4..) {
            rest.fill(0);
        }
    }
    let timeout = if c.timeout != 0 && v == Version::V1 {
        // Capped as upstream caps seconds to `MAX_SCHEDULE_TIMEOUT / HZ`, then to what the
        // entry holds.
        c.timeout.saturating_mul(hz)
    } else {
        proto_timeout.unwrap_or(180u32.saturating_mul(hz))
    };
    let tab = &*sh.conns;
    let g = rcu::read_lock();
    let mut found = match (&pe, template) {
        (Some((pe, _)), true) => tab.template_get_pe(&p, pe, &g),
        (None, true) => tab.template_get(&p, &g),
        (_, false) => tab.in_get(&p, &g),
    };
    if let Some(cp) = found {
        if !template && (cp.dport != c.dport || cp.daddr != c.daddr) {
            if flags & f::INACTIVE != 0 {
                // The expiry news of a connection the master has replaced already.
                return true;
            }
            tab.expire_now(cp);
            found = None;
        }
    }
    let cp = match found {
        Some(cp) => {
            cp.sync_update(tab, flags, c.state, timeout);
            if cp.dest().is_none() {
                // `ip_vs_try_bind_dest`: the server may be known by now, looked up by the
                // entry's own fields. Upstream takes the mark the entry was created with;
                // this record's is the same but for a master that changed it meanwhile.
                let key = SyncConn {
                    flags: cp.flags.load(Relaxed),
                    daddr: cp.daddr,
                    dport: cp.dport,
                    ..*c
                };
                if let Some(dest) = find_dest(sh, af, &key, &g) {
                    tab.bind_synced(cp, &dest);
                }
            }
            cp
        }
        None => {
            // Upstream keeps an entry whose service or real server it does not know
            // ("unbound") until a later record finds it one; so does this director.
            let dest = find_dest(sh, af, c, &g);
            let made = match pe.filter(|_| template) {
                Some((pe, module)) => {
                    tab.new_synced_pe(&p, &pe, module, c.daddr, c.dport, dest.as_ref(), flags, c.state, timeout, &g)
                }
                None => tab.new_synced(&p, c.daddr, c.dport, dest.as_ref(), flags, c.state, timeout, &g),
            };
            match made {
                Ok(cp) => {
                    // As every new connection, a NAT one to a helper's port is bound to it
                    // (`ip_vs_conn_new`), so that the backup goes on rewriting after a
                    // failover.
                    if !template && cp.dest().is_some() {
                        crate::app::bind(cp);
                    }
                    cp
                }
                Err(_) => return false,
            }
        }
    };
    if let Some(seq) = &c.seq {
        crate::app::set_sync_seq(cp, flags, seq, &g);
    }
    let [threshold, _] = sh.sysctl.get_pair(ctl::SYSCTL_SYNC_THRESHOLD);
    cp.in_pkts.store(threshold as u32, Relaxed);
    true
}

/// The real server a record names (`ip_vs_find_dest`): its service by firewall mark, then
/// by <protocol, address, port>, then the port-zero service; the server by address and
/// port, a firewall-mark service's non-NAT servers by address alone.
fn find_dest(sh: &Shared, af: u16, c: &SyncConn<'_>, g: &rcu::Guard) -> Option<Arc<Dest>> {
    let tab = sh.svc_table.get(g)?;
    let proto = u16::from(c.protocol);
    let svc = (if c.fwmark != 0 { tab.find_fwmark(af, c.fwmark) } else { None })
        .or_else(|| tab.find(af, proto, &c.vaddr, c.vport))
        .or_else(|| tab.find(af, proto, &c.vaddr, [0, 0]))?;
    let port = if c.fwmark != 0 && c.flags & f::FWD_MASK != 0 {
        [0, 0]
    } else {
        c.dport
    };
    let addr = ctl_config::InetAddr::from_nf(ctl_config::Af::from_raw(af)?, &c.daddr);
    let list = svc.dests.get(g)?;
    let alt = [port[0] ^ c.dport[0], port[1] ^ c.dport[1]];
    list.find(&addr, port).or_else(|| list.find(&addr, alt)).and_then(|i| list.dests.get(i)).cloned()
}
