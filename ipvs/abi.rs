// SPDX-License-Identifier: GPL-2.0

//! The interface between the core `ip_vs` module and scheduler modules.
//!
//! Compiled into both crates (`#[path]`). A scheduler module implements [`Scheduler`] and
//! keeps a [`SchedulerRegistration`] alive in its module object; this file holds the only
//! `unsafe` code a scheduler needs, so the schedulers themselves have none.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_sched.c` (`register_ip_vs_scheduler`)

#![allow(dead_code, unreachable_pub)]

use core::{
    ffi::c_void,
    sync::atomic::{AtomicI32, AtomicU32, Ordering},
};
use kernel::{
    alloc::{flags::GFP_KERNEL, KBox},
    error::{to_result, Result},
    ThisModule,
};

/// `IP_VS_DEST_F_AVAILABLE`: the destination is in its service.
pub const DEST_F_AVAILABLE: u32 = 0x0001;
/// `IP_VS_DEST_F_OVERLOAD`: the destination reached its upper threshold.
pub const DEST_F_OVERLOAD: u32 = 0x0002;

/// What a scheduler sees of a real server. Lives inside the core's destination object, which
/// outlives every call that hands it out.
#[repr(C)]
pub struct DestInfo {
    /// Identifier, unique for the module's lifetime.
    pub id: u64,
    /// Weight; 0 means quiesced (no new connections).
    pub weight: AtomicI32,
    /// `DEST_F_*`.
    pub flags: AtomicU32,
    /// Connections in an active state.
    pub activeconns: AtomicU32,
    /// All connections (active and inactive).
    pub totalconns: AtomicU32,
    /// Persistence templates pointing here.
    pub persistconns: AtomicU32,
    /// Upper connection threshold, 0 for none.
    pub u_threshold: AtomicU32,
    /// Lower connection threshold.
    pub l_threshold: AtomicU32,
    /// Address family (`AF_INET`, `AF_INET6`).
    pub af: u16,
    /// Port, network byte order.
    pub port: [u8; 2],
    /// Address; IPv4 uses the first four bytes.
    pub addr: [u8; 16],
    /// The weight given when the destination was added, or last set to a non-zero value
    /// (upstream's `last_weight`, which `mh` schedules by).
    pub last_weight: AtomicI32,
}

impl DestInfo {
    /// The weight.
    pub fn weight(&self) -> i32 {
        self.weight.load(Ordering::Relaxed)
    }

    /// Whether the destination is over its upper threshold.
    pub fn is_overloaded(&self) -> bool {
        self.flags.load(Ordering::Relaxed) & DEST_F_OVERLOAD != 0
    }

    /// Whether it may take new connections: positive weight and not overloaded.
    pub fn is_usable(&self) -> bool {
        self.weight() > 0 && !self.is_overloaded()
    }

    /// Active connections.
    pub fn activeconns(&self) -> u32 {
        self.activeconns.load(Ordering::Relaxed)
    }

    /// Inactive connections.
    pub fn inactconns(&self) -> u32 {
        self.totalconns
            .load(Ordering::Relaxed)
            .saturating_sub(self.activeconns())
    }

    /// The connection count below which an overloaded destination takes connections again:
    /// the lower threshold, or three quarters of the upper one when it is 0.
    pub fn l_threshold_val(&self) -> u32 {
        match self.l_threshold.load(Ordering::Relaxed) {
            0 => {
                let u = self.u_threshold.load(Ordering::Relaxed);
                u - (u >> 2)
            }
            l => l,
        }
    }

    /// Counts a new connection (`ip_vs_bind_dest`): reaching the upper threshold sets
    /// [`DEST_F_OVERLOAD`].
    pub fn conn_bound(&self) {
        let tc = self.totalconns.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        if tc == self.u_threshold.load(Ordering::Relaxed) {
            self.update_overload(OverloadEvent::Grew);
        }
    }

    /// Uncounts a connection that went away (`ip_vs_unbind_dest`): falling below the lower
    /// threshold clears [`DEST_F_OVERLOAD`].
    pub fn conn_unbound(&self) {
        let tc = self.totalconns.fetch_sub(1, Ordering::Relaxed);
        if tc == self.l_threshold_val() {
            self.update_overload(OverloadEvent::Shrank);
        }
    }

    /// Sets or clears [`DEST_F_OVERLOAD`] from the connection count and the thresholds, as
    /// upstream's `__ip_vs_dest_update_overload`: set at or above the upper threshold (at or
    /// above the lower one when the count just reached the upper one), cleared below the
    /// lower one (below the upper one when the count just fell below the lower one), kept in
    /// between; always clear without an upper threshold.
    ///
    /// Upstream serialises these updates with the destination's lock; here each decision
    /// reads the count once and sets or clears the flag atomically. Events happen at exact
    /// counts, so sequential changes give upstream's flag; only simultaneous crossings on
    /// several CPUs may decide in another order (upstream, too, reads a count that may have
    /// moved on).
    pub fn update_overload(&self, event: OverloadEvent) {
        let u = self.u_threshold.load(Ordering::Relaxed);
        let set = if u == 0 {
            false
        } else {
            let l = self.l_threshold_val();
            let conns = self.totalconns.load(Ordering::Relaxed);
            let set_at = if event == OverloadEvent::Grew { l } else { u };
            let keep_at = if event == OverloadEvent::Shrank { u } else { l };
            if conns >= set_at {
                true
            } else if conns >= keep_at {
                return;
            } else {
                false
            }
        };
        if set {
            self.flags.fetch_or(DEST_F_OVERLOAD, Ordering::Relaxed);
        } else {
            self.flags.fetch_and(!DEST_F_OVERLOAD, Ordering::Relaxed);
        }
    }
}

/// Why [`DestInfo::update_overload`] is called.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OverloadEvent {
    /// The connection count just reached the upper threshold.
    Grew,
    /// The connection count just fell below the lower threshold.
    Shrank,
    /// The thresholds changed.
    Thresholds,
}

/// The C-ABI table a scheduler module registers with the core.
#[repr(C)]
pub struct SchedulerOps {
    /// NUL-terminated name, such as `rr`.
    pub name: [u8; 16],
    /// The module that implements it (`struct module *`).
    pub module: *mut c_void,
    /// Creates the per-service state.
    pub init_service: unsafe extern "C" fn(*const *const DestInfo, usize) -> *mut c_void,
    /// Drops the per-service state.
    pub done_service: unsafe extern "C" fn(*mut c_void),
    /// Picks a destination index for the first packet of a connection, or -1.
    pub schedule:
        unsafe extern "C" fn(*mut c_void, *const *const DestInfo, usize, *const Packet) -> isize,
    /// A destination was added (the list includes it).
    pub add_dest: unsafe extern "C" fn(*mut c_void, *const *const DestInfo, usize, usize),
    /// A destination is being removed (the list still includes it, at the given index).
    pub del_dest: unsafe extern "C" fn(*mut c_void, *const *const DestInfo, usize, usize),
    /// A destination's weight or thresholds changed.
    pub upd_dest: unsafe extern "C" fn(*mut c_void, *const *const DestInfo, usize, usize),
}

extern "C" {
    fn ip_vs_register_scheduler(ops: *const SchedulerOps) -> i32;
    fn ip_vs_unregister_scheduler(ops: *const SchedulerOps);
}

/// What a scheduler may know of the packet that starts a connection and of its service
/// (upstream passes the `sk_buff`, the parsed header and the service).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Packet {
    /// Source address (the client); IPv4 uses the first four bytes.
    pub saddr: [u8; 16],
    /// Destination address (the virtual address).
    pub daddr: [u8; 16],
    /// Source port, network byte order (0 for protocols without ports).
    pub sport: [u8; 2],
    /// Destination port, network byte order.
    pub dport: [u8; 2],
    /// Address family (`AF_INET`, `AF_INET6`).
    pub af: u16,
    /// IP protocol.
    pub protocol: u8,
    /// Padding, zero.
    pub _pad: [u8; 3],
    /// The service's `IP_VS_SVC_F_*` flags (`SCHED1`..`SCHED3` are the scheduler's options,
    /// such as `sh-fallback` and `sh-port`).
    pub svc_flags: u32,
    /// The firewall mark of a firewall-mark service, 0 otherwise.
    pub fwmark: u32,
}

/// 32 random bits from the kernel's random number generator (`get_random_u32`), for
/// randomised schedulers.
pub fn random_u32() -> u32 {
    // SAFETY: `get_random_u32` has no preconditions and may be called in any context.
    unsafe { kernel::bindings::get_random_u32() }
}

/// A scheduling algorithm; one value of the type exists per virtual service.
pub trait Scheduler: Sized + Send + Sync {
    /// Module name suffix, such as `b"rr"`.
    const NAME: &'static [u8];

    /// State for a new service with `dests`.
    fn new(dests: &[&DestInfo]) -> Result<Self>;

    /// Picks the index into `dests` of the server for a new connection.
    fn schedule(&self, dests: &[&DestInfo], pkt: &Packet) -> Option<usize>;

    /// `dests[index]` was just added.
    fn add_dest(&self, _dests: &[&DestInfo], _index: usize) {}

    /// `dests[index]` is about to be removed.
    fn del_dest(&self, _dests: &[&DestInfo], _index: usize) {}

    /// `dests[index]` changed weight or thresholds.
    fn upd_dest(&self, _dests: &[&DestInfo], _index: usize) {}
}

/// Reborrows a C array of destination pointers as a slice of references.
///
/// # Safety
///
/// `p` must point to `n` valid pointers to live `DestInfo`s, valid for `'a`.
unsafe fn dests<'a>(p: *const *const DestInfo, n: usize) -> &'a [&'a DestInfo] {
    if n == 0 || p.is_null() {
        return &[];
    }
    // CAST: `&DestInfo` and `*const DestInfo` have the same layout; the pointers are non-null
    // and valid by the caller's guarantee.
    unsafe { core::slice::from_raw_parts(p.cast::<&DestInfo>(), n) }
}

struct Trampolines<S: Scheduler>(core::marker::PhantomData<S>);

impl<S: Scheduler> Trampolines<S> {
    unsafe extern "C" fn init_service(p: *const *const DestInfo, n: usize) -> *mut c_void {
        // SAFETY: The core passes its live destination list.
        let d = unsafe { dests(p, n) };
        match S::new(d).and_then(|s| Ok(KBox::new(s, GFP_KERNEL)?)) {
            Ok(b) => KBox::into_raw(b).cast(),
            Err(_) => core::ptr::null_mut(),
        }
    }

    unsafe extern "C" fn done_service(state: *mut c_void) {
        if !state.is_null() {
            // SAFETY: `state` came from `init_service` and the core drops it once.
            drop(unsafe { KBox::from_raw(state.cast::<S>()) });
        }
    }

    unsafe extern "C" fn schedule(
        state: *mut c_void,
        p: *const *const DestInfo,
        n: usize,
        pkt: *const Packet,
    ) -> isize {
        if pkt.is_null() {
            return -1;
        }
        // SAFETY: `state` is live until `done_service`; the list is the core's live list;
        // `pkt` is valid for the call.
        let (s, d, pkt) = unsafe { (&*state.cast::<S>(), dests(p, n), &*pkt) };
        match s.schedule(d, pkt) {
            Some(i) if i < n => i as isize,
            _ => -1,
        }
    }

    unsafe extern "C" fn add_dest(state: *mut c_void, p: *const *const DestInfo, n: usize, i: usize) {
        // SAFETY: As in `schedule`.
        let (s, d) = unsafe { (&*state.cast::<S>(), dests(p, n)) };
        s.add_dest(d, i);
    }

    unsafe extern "C" fn del_dest(state: *mut c_void, p: *const *const DestInfo, n: usize, i: usize) {
        // SAFETY: As in `schedule`.
        let (s, d) = unsafe { (&*state.cast::<S>(), dests(p, n)) };
        s.del_dest(d, i);
    }

    unsafe extern "C" fn upd_dest(state: *mut c_void, p: *const *const DestInfo, n: usize, i: usize) {
        // SAFETY: As in `schedule`.
        let (s, d) = unsafe { (&*state.cast::<S>(), dests(p, n)) };
        s.upd_dest(d, i);
    }
}

/// A scheduler registered with the core; dropping it unregisters.
pub struct SchedulerRegistration {
    ops: KBox<SchedulerOps>,
}

// SAFETY: The ops table is immutable after registration and only read by the core.
unsafe impl Send for SchedulerRegistration {}
// SAFETY: As above.
unsafe impl Sync for SchedulerRegistration {}

impl SchedulerRegistration {
    /// Registers `S` under `S::NAME` on behalf of `module`.
    pub fn new<S: Scheduler>(module: &'static ThisModule) -> Result<Self> {
        let mut name = [0u8; 16];
        let len = S::NAME.len().min(15);
        name[..len].copy_from_slice(&S::NAME[..len]);
        let ops = KBox::new(
            SchedulerOps {
                name,
                module: module.as_ptr().cast(),
                init_service: Trampolines::<S>::init_service,
                done_service: Trampolines::<S>::done_service,
                schedule: Trampolines::<S>::schedule,
                add_dest: Trampolines::<S>::add_dest,
                del_dest: Trampolines::<S>::del_dest,
                upd_dest: Trampolines::<S>::upd_dest,
            },
            GFP_KERNEL,
        )?;
        // SAFETY: `ops` stays allocated until `drop` unregisters it.
        to_result(unsafe { ip_vs_register_scheduler(&*ops) })?;
        Ok(Self { ops })
    }
}

impl Drop for SchedulerRegistration {
    fn drop(&mut self) {
        // SAFETY: Registered in `new`. Services hold a module reference while they use the
        // scheduler, so no service can still be using it when the module is unloaded.
        unsafe { ip_vs_unregister_scheduler(&*self.ops) };
    }
}
