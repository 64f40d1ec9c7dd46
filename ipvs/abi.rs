// SPDX-License-Identifier: GPL-2.0

//! The interface between the core `ip_vs` module and scheduler modules.
//!
//! Compiled into both crates (`#[path]`). It has the shape of the kernel's PHY driver
//! abstraction (`srctree/rust/kernel/net/phy.rs`):
//!
//! - [`Scheduler`], a `#[vtable]` trait: what a scheduling algorithm implements, with safe
//!   types only (the real servers as `&[&DestInfo]`, the packet as `&Packet`);
//! - [`Adapter`], which builds the C-ABI table [`SchedulerOps`] of a [`Scheduler`]: its
//!   `extern "C"` trampolines, and NULL for the optional hooks the scheduler does not
//!   implement, which the core then skips. The per-service state crosses the table as a
//!   [`ForeignOwnable`] (`KBox<S>`);
//! - [`Registration`], which registers a table with the core and unregisters it when dropped;
//! - [`module_ip_vs_scheduler!`], which declares a scheduler module whose module object holds
//!   the [`Registration`] (the counterpart of `module_phy_driver!`).
//!
//! So this file holds all the `unsafe` code a scheduler module has; `schedulers/ip_vs_*.rs`
//! have none. The core's side of the table is `sched.rs`.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_sched.c` (`register_ip_vs_scheduler`),
//! `srctree/include/net/ip_vs.h` (`struct ip_vs_scheduler`)

#![allow(dead_code, unreachable_pub, unused_macros)]

use core::{
    ffi::{c_int, c_void},
    marker::PhantomData,
    sync::atomic::{AtomicI32, AtomicU32, Ordering},
};
use kernel::{
    alloc::{flags::GFP_KERNEL, KBox},
    bindings,
    error::{from_result, to_result, Result, VTABLE_DEFAULT_ERROR},
    prelude::vtable,
    str::CStr,
    types::ForeignOwnable,
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

/// `init_service`: creates the per-service state for a service with the given real servers,
/// stores it through the last argument and returns 0, or returns a negative errno.
pub type InitServiceFn =
    unsafe extern "C" fn(*const *const DestInfo, usize, *mut *const c_void) -> c_int;
/// `done_service`: drops the per-service state.
pub type DoneServiceFn = unsafe extern "C" fn(*const c_void);
/// `schedule`: the index of the real server for a new connection, or -1.
pub type ScheduleFn =
    unsafe extern "C" fn(*const c_void, *const *const DestInfo, usize, *const Packet) -> isize;
/// `add_dest`, `del_dest`, `upd_dest`: the real server at the given index was added, is being
/// removed, was changed.
pub type DestHookFn = unsafe extern "C" fn(*const c_void, *const *const DestInfo, usize, usize);

/// The C-ABI table a scheduler module registers with the core (upstream's
/// `struct ip_vs_scheduler`). Built by [`Adapter`]; the core keeps a copy per service.
///
/// The contract between the core (caller) and the functions (callee), which the trampolines
/// of [`Adapter`] rely on:
///
/// - A real-server list is a pointer to `n` non-null pointers, each to a [`DestInfo`] that
///   stays alive for the call and is only accessed through shared references (any pointer,
///   even null, when `n` is 0).
/// - `init_service` gets such a list and a pointer valid for writing one state pointer.
/// - `schedule` and the hooks get a state that `init_service` of the same table stored and
///   that was not given to `done_service` yet, such a list, and a [`Packet`] valid for the
///   call or an index below `n`. They may run concurrently with each other, on any CPU, in
///   process or softirq context (not sleeping).
/// - `done_service` gets such a state once, when no other call on it runs or will run, in
///   any context (not sleeping).
/// - The functions are code of `module`, which the core holds a reference on from before
///   `init_service` until after `done_service`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SchedulerOps {
    /// NUL-terminated name, such as `rr`.
    pub name: [u8; 16],
    /// The module that implements it.
    pub module: *mut bindings::module,
    /// Creates the per-service state.
    pub init_service: InitServiceFn,
    /// Drops the per-service state.
    pub done_service: DoneServiceFn,
    /// Picks a real server for the first packet of a connection.
    pub schedule: ScheduleFn,
    /// A real server was added (the list includes it); NULL if the scheduler does not care.
    pub add_dest: Option<DestHookFn>,
    /// A real server is being removed (the list still includes it); NULL if the scheduler
    /// does not care.
    pub del_dest: Option<DestHookFn>,
    /// A real server's weight or thresholds changed; NULL if the scheduler does not care.
    pub upd_dest: Option<DestHookFn>,
}

// As `exports.c` declares them; the argument is a `SchedulerOps`.
extern "C" {
    fn ip_vs_register_scheduler(ops: *const c_void) -> c_int;
    fn ip_vs_unregister_scheduler(ops: *const c_void);
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

/// A scheduling algorithm; one value of the type exists per virtual service that uses it.
///
/// `dests` always holds the service's real servers in list order (newest first); the
/// optional hooks get an `index` below `dests.len()`. A scheduler may be called on several
/// CPUs at once, in softirq context, and must not sleep outside [`Scheduler::new`]; its value
/// is dropped when the service stops using it, possibly in softirq context (after an RCU
/// grace period), so its `Drop` must not sleep either.
#[vtable]
pub trait Scheduler: Sized + Send + Sync + 'static {
    /// The scheduler's name, such as `rr`; its module must be called `ip_vs_<name>`.
    const NAME: &'static CStr;

    /// State for a new service with `dests` (process context, may sleep).
    fn new(dests: &[&DestInfo]) -> Result<Self>;

    /// Picks the index into `dests` of the server for a new connection.
    fn schedule(&self, dests: &[&DestInfo], pkt: &Packet) -> Option<usize>;

    /// `dests[index]` was just added.
    fn add_dest(&self, _dests: &[&DestInfo], _index: usize) {
        kernel::build_error(VTABLE_DEFAULT_ERROR)
    }

    /// `dests[index]` is about to be removed.
    fn del_dest(&self, _dests: &[&DestInfo], _index: usize) {
        kernel::build_error(VTABLE_DEFAULT_ERROR)
    }

    /// `dests[index]` changed weight or thresholds.
    fn upd_dest(&self, _dests: &[&DestInfo], _index: usize) {
        kernel::build_error(VTABLE_DEFAULT_ERROR)
    }
}

/// Reborrows a real-server list of the table's contract as a slice of references.
///
/// # Safety
///
/// If `n` is not 0, `p` must point to `n` non-null pointers, each to a [`DestInfo`] that stays
/// alive and is only accessed through shared references for `'a`.
unsafe fn dests<'a>(p: *const *const DestInfo, n: usize) -> &'a [&'a DestInfo] {
    if n == 0 {
        return &[];
    }
    // SAFETY: `p` points to `n` initialised pointers (the caller's guarantee). `*const
    // DestInfo` and `&DestInfo` have the same layout, and each pointer is non-null and valid
    // for shared access for `'a`, so each is a valid `&'a DestInfo`.
    unsafe { core::slice::from_raw_parts(p.cast::<&'a DestInfo>(), n) }
}

/// The NUL-padded table name of `name`; a build error if it does not fit.
const fn ops_name(name: &CStr) -> [u8; 16] {
    let bytes = name.as_bytes_with_nul();
    assert!(bytes.len() > 1 && bytes.len() <= 16, "scheduler names have 1 to 15 bytes");
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < bytes.len() {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// Whether `module` is `ip_vs_<name>`: the core loads a missing scheduler by that name.
pub const fn is_module_of(module: &[u8], name: &CStr) -> bool {
    const PREFIX: &[u8] = b"ip_vs_";
    let name = name.as_bytes_with_nul();
    // `name` ends with its NUL.
    if module.len() != PREFIX.len() + name.len() - 1 {
        return false;
    }
    let mut i = 0;
    while i < module.len() {
        let want = if i < PREFIX.len() {
            PREFIX[i]
        } else {
            name[i - PREFIX.len()]
        };
        if module[i] != want {
            return false;
        }
        i += 1;
    }
    true
}

/// Builds the [`SchedulerOps`] of a [`Scheduler`]: the trampolines from the C ABI to `S`.
///
/// The per-service state is a `KBox<S>` handed to the core as a [`ForeignOwnable`]: created
/// by `init_service`, borrowed by the other calls, reclaimed by `done_service`.
pub struct Adapter<S: Scheduler>(PhantomData<S>);

impl<S: Scheduler> Adapter<S> {
    /// The table of `S`, without its module (which [`Registration::new`] fills in). The
    /// optional hooks `S` does not implement are NULL.
    pub const OPS: SchedulerOps = SchedulerOps {
        name: ops_name(S::NAME),
        module: core::ptr::null_mut(),
        init_service: Self::init_service,
        done_service: Self::done_service,
        schedule: Self::schedule,
        add_dest: if S::HAS_ADD_DEST {
            Some(Self::add_dest)
        } else {
            None
        },
        del_dest: if S::HAS_DEL_DEST {
            Some(Self::del_dest)
        } else {
            None
        },
        upd_dest: if S::HAS_UPD_DEST {
            Some(Self::upd_dest)
        } else {
            None
        },
    };

    /// Borrows the per-service state.
    ///
    /// # Safety
    ///
    /// `state` must have been stored by [`Self::init_service`] and not yet been given to
    /// [`Self::done_service`], which must not run before the borrow ends.
    unsafe fn state<'a>(state: *const c_void) -> &'a S {
        // SAFETY: `init_service` made `state` with `KBox::<S>::into_foreign`, and
        // `from_foreign` (in `done_service`) is not called while the borrow lives (the
        // caller's guarantee).
        unsafe { <KBox<S> as ForeignOwnable>::borrow(state) }
    }

    /// `init_service` of the table.
    ///
    /// # Safety
    ///
    /// The contract documented on [`SchedulerOps`].
    unsafe extern "C" fn init_service(
        list: *const *const DestInfo,
        n: usize,
        out: *mut *const c_void,
    ) -> c_int {
        from_result(|| {
            // SAFETY: The table's contract: `list` is a valid real-server list for the call.
            let dests = unsafe { dests(list, n) };
            let state = KBox::new(S::new(dests)?, GFP_KERNEL)?;
            // SAFETY: The table's contract: `out` is valid for writing a state pointer.
            unsafe { out.write(state.into_foreign()) };
            Ok(0)
        })
    }

    /// `done_service` of the table.
    ///
    /// # Safety
    ///
    /// The contract documented on [`SchedulerOps`].
    unsafe extern "C" fn done_service(state: *const c_void) {
        // SAFETY: The table's contract: `state` was stored by `init_service`, is given here
        // once, and nothing else uses it any more.
        drop(unsafe { <KBox<S> as ForeignOwnable>::from_foreign(state) });
    }

    /// `schedule` of the table.
    ///
    /// # Safety
    ///
    /// The contract documented on [`SchedulerOps`].
    unsafe extern "C" fn schedule(
        state: *const c_void,
        list: *const *const DestInfo,
        n: usize,
        pkt: *const Packet,
    ) -> isize {
        // SAFETY: The table's contract: `state` is live and `done_service` does not run
        // during the call.
        let s = unsafe { Self::state(state) };
        // SAFETY: The table's contract: `list` is a valid real-server list for the call.
        let dests = unsafe { dests(list, n) };
        // SAFETY: The table's contract: `pkt` is valid for the call.
        let pkt = unsafe { &*pkt };
        match s.schedule(dests, pkt) {
            Some(i) if i < n => isize::try_from(i).unwrap_or(-1),
            _ => -1,
        }
    }

    /// The common part of the hooks: `f` on the state, if `index` names a server.
    ///
    /// # Safety
    ///
    /// The table's contract for `state`, `list` and `n`.
    unsafe fn hook(
        state: *const c_void,
        list: *const *const DestInfo,
        n: usize,
        index: usize,
        f: fn(&S, &[&DestInfo], usize),
    ) {
        if index >= n {
            return;
        }
        // SAFETY: The caller's guarantee: `state` is live and `done_service` does not run
        // during the call.
        let s = unsafe { Self::state(state) };
        // SAFETY: The caller's guarantee: `list` is a valid real-server list for the call.
        let dests = unsafe { dests(list, n) };
        f(s, dests, index);
    }

    /// `add_dest` of the table.
    ///
    /// # Safety
    ///
    /// The contract documented on [`SchedulerOps`].
    unsafe extern "C" fn add_dest(
        state: *const c_void,
        list: *const *const DestInfo,
        n: usize,
        index: usize,
    ) {
        // SAFETY: The table's contract holds for the arguments.
        unsafe { Self::hook(state, list, n, index, S::add_dest) };
    }

    /// `del_dest` of the table.
    ///
    /// # Safety
    ///
    /// The contract documented on [`SchedulerOps`].
    unsafe extern "C" fn del_dest(
        state: *const c_void,
        list: *const *const DestInfo,
        n: usize,
        index: usize,
    ) {
        // SAFETY: The table's contract holds for the arguments.
        unsafe { Self::hook(state, list, n, index, S::del_dest) };
    }

    /// `upd_dest` of the table.
    ///
    /// # Safety
    ///
    /// The contract documented on [`SchedulerOps`].
    unsafe extern "C" fn upd_dest(
        state: *const c_void,
        list: *const *const DestInfo,
        n: usize,
        index: usize,
    ) {
        // SAFETY: The table's contract holds for the arguments.
        unsafe { Self::hook(state, list, n, index, S::upd_dest) };
    }
}

/// A scheduler registered with the core; dropping it unregisters.
///
/// Meant to live in the module object ([`module_ip_vs_scheduler!`]), as a PHY driver's
/// `Registration` does. Services that use the scheduler hold a reference on the module and a
/// copy of the table, so neither unregistering nor freeing the table affects them.
///
/// # Invariants
///
/// `ops` is registered with the core, at the address it has in its box, until `drop`.
pub struct Registration {
    ops: KBox<SchedulerOps>,
}

// SAFETY: The table is immutable once registered; the core reads it under its registry lock
// from any thread, and unregistering may happen on any thread.
unsafe impl Send for Registration {}
// SAFETY: `&Registration` gives no access to anything.
unsafe impl Sync for Registration {}

impl Registration {
    /// Registers `S` under `S::NAME` on behalf of `module`, the module that contains `S`'s
    /// code (in a module crate, the `module` given to `init`); `EEXIST` if a scheduler of
    /// that name is registered already.
    pub fn new<S: Scheduler>(module: &'static ThisModule) -> Result<Self> {
        let mut ops = KBox::new(Adapter::<S>::OPS, GFP_KERNEL)?;
        ops.module = module.as_ptr();
        // SAFETY: The functions of `ops` are `Adapter::<S>`'s, which keep the table's
        // contract, and are code of `module`. The table stays at its address in the box,
        // which `Self` owns, until `drop` unregisters it.
        to_result(unsafe { ip_vs_register_scheduler((&*ops as *const SchedulerOps).cast()) })?;
        // INVARIANT: Registered just now.
        Ok(Self { ops })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: `self.ops` is registered (type invariant). After this the core no longer
        // reads it; services keep their own copies of it.
        unsafe { ip_vs_unregister_scheduler((&*self.ops as *const SchedulerOps).cast()) };
    }
}

/// Declares a scheduler module: the module object holds the [`Registration`] of the given
/// [`Scheduler`] (upstream's `module_init`/`module_exit` calling
/// `register_ip_vs_scheduler`/`unregister_ip_vs_scheduler`). The keys after `type` are those
/// of `module!`; the name must be `ip_vs_<Scheduler::NAME>` (checked at build time).
///
/// ```ignore
/// module_ip_vs_scheduler! {
///     type: Rr,
///     name: "ip_vs_rr",
///     author: "Rust IPVS developers",
///     description: "ipvs round-robin scheduler",
///     license: "GPL",
/// }
/// ```
macro_rules! module_ip_vs_scheduler {
    (type: $sched:ty, name: $name:tt, $($rest:tt)*) => {
        /// The module object: keeps the scheduler registered while the module is loaded.
        struct SchedulerModule {
            _reg: $crate::abi::Registration,
        }

        ::kernel::prelude::module! {
            type: SchedulerModule,
            name: $name,
            $($rest)*
        }

        const _: () = ::core::assert!(
            $crate::abi::is_module_of(
                $name.as_bytes(),
                <$sched as $crate::abi::Scheduler>::NAME,
            ),
            "a scheduler module must be called ip_vs_<scheduler name>",
        );

        impl ::kernel::Module for SchedulerModule {
            fn init(module: &'static ::kernel::ThisModule) -> ::kernel::error::Result<Self> {
                Ok(Self {
                    _reg: $crate::abi::Registration::new::<$sched>(module)?,
                })
            }
        }
    };
}
