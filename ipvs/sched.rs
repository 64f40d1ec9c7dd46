// SPDX-License-Identifier: GPL-2.0

//! The registry of scheduler modules and the binding of a scheduler to a service.
//!
//! Scheduler modules register a [`SchedulerOps`] table (built by `abi::Adapter`, see
//! `abi.rs`) through the exported `ip_vs_register_scheduler`. A service looks its scheduler
//! up by name, loading `ip_vs_<name>` on demand, and pins the module while it uses it; its
//! [`SchedBinding`] is the safe face of the table: real servers go in as `&[&DestInfo]`.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_sched.c`

use crate::{
    abi::{DestHookFn, DestInfo, Packet, SchedulerOps},
    ctl_config::SchedName,
    registry::{self, HeldModule},
};
use core::ffi::c_void;
use kernel::{
    bindings,
    prelude::*,
    sync::{rcu, rcu::RcuBox},
};

impl registry::Ops for SchedulerOps {
    fn name_field(&self) -> &[u8] {
        &self.name
    }
    fn module(&self) -> *mut bindings::module {
        self.module
    }
}

/// The registered schedulers, published for the exported C functions.
static SCHEDULERS: registry::Slot<SchedulerOps> = registry::Slot::new();

/// Owner of the scheduler registry; lives in the module object.
pub(crate) type Registry = registry::Registry<SchedulerOps>;

/// Creates the scheduler registry.
pub(crate) fn new_registry() -> Result<Registry> {
    Registry::new(&SCHEDULERS)
}

/// Registers a scheduler module's table (`register_ip_vs_scheduler`): `EEXIST` if one of the
/// same name is registered, `EINVAL` for a null table.
///
/// # Safety
///
/// `ops` must be null or point to a table that stays valid and unchanged until [`unregister`]
/// is called with it, whose functions keep the contract documented on [`SchedulerOps`] and
/// are code of its `module`.
pub(crate) unsafe fn register(ops: *const SchedulerOps) -> Result {
    // SAFETY: The caller's guarantee is the registry's requirement.
    unsafe { SCHEDULERS.register(ops) }
}

/// Removes a table registered with [`register`] (`unregister_ip_vs_scheduler`). Services that
/// use it keep working: they hold a copy of the table and a reference on its module. Waits
/// for the bindings unbound early ([`SchedBinding::unbind`]) to be dropped. Sleeps.
pub(crate) fn unregister(ops: *const SchedulerOps) {
    SCHEDULERS.unregister(ops);
}

/// A scheduler in use by one service: its table, a reference on its module and the
/// per-service state. Dropping it drops the state, then releases the module.
///
/// # Invariants
///
/// - `ops` is a copy of a table registered by the module `module` holds, so its functions
///   keep the contract documented on [`SchedulerOps`] and stay loaded while `self` lives:
///   while `module` holds its reference, or, once [`SchedBinding::unbind`] gave it back,
///   because that module's unloading waits for the RCU readers and for the callback that
///   drops `self` ([`HeldModule::release`]).
/// - `state` was stored by `ops.init_service` and is given to `ops.done_service` only by
///   `drop`.
pub(crate) struct SchedBinding {
    ops: SchedulerOps,
    state: *const c_void,
    name: SchedName,
    /// Dropped after `drop` has run `done_service`.
    module: HeldModule,
}

// SAFETY: The state is a `KBox<S>` of an `S: Scheduler`, hence `Send + Sync`, and the table's
// contract lets its functions run on any CPU, concurrently; the module reference may be
// dropped on any thread.
unsafe impl Send for SchedBinding {}
// SAFETY: As above.
unsafe impl Sync for SchedBinding {}

impl registry::Binding for SchedBinding {
    fn held_module(&self) -> &registry::HeldModule {
        &self.module
    }
}

impl SchedBinding {
    /// Binds the scheduler `name` for a service with `dests`, loading `ip_vs_<name>` if
    /// needed: `ENOENT` if there is no such scheduler. Sleeps.
    pub(crate) fn new(name: SchedName, dests: &[&DestInfo]) -> Result<Self> {
        let (ops, module) = SCHEDULERS.get_or_load(name.as_bytes(), "")?;
        let mut state = core::ptr::null();
        // SAFETY: `ops` is a registered table whose module `module` pins. `dests` is an array
        // of `dests.len()` references to `DestInfo`s alive for the call (`&DestInfo` and
        // `*const DestInfo` have the same layout), and `state` is valid for writing.
        let ret = unsafe { (ops.init_service)(dests.as_ptr().cast(), dests.len(), &mut state) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        // INVARIANT: `init_service` succeeded, so it stored `state`.
        Ok(Self {
            ops,
            state,
            name,
            module: HeldModule::new(module),
        })
    }

    /// Unbinds the scheduler of a service being flushed or deleted: see
    /// [`registry::unbind`].
    pub(crate) fn unbind(slot: &RcuBox<Self>, g: &rcu::Guard) {
        registry::unbind(slot, g);
    }

    /// The scheduler's name.
    pub(crate) fn name(&self) -> &SchedName {
        &self.name
    }

    /// Picks the index into `dests` of the real server for a new connection.
    pub(crate) fn schedule(&self, dests: &[&DestInfo], pkt: &Packet) -> Option<usize> {
        // SAFETY: The function is loaded and keeps the table's contract, and `self.state` is
        // live and not dropped during the call (type invariants). `dests` is an array of
        // `dests.len()` references to live `DestInfo`s (same layout as pointers), and `pkt`
        // is valid for the call.
        let i = unsafe {
            (self.ops.schedule)(self.state, dests.as_ptr().cast(), dests.len(), pkt)
        };
        usize::try_from(i).ok().filter(|&i| i < dests.len())
    }

    /// Calls an optional hook, if the scheduler has it and `index` names a server.
    fn hook(&self, f: Option<DestHookFn>, dests: &[&DestInfo], index: usize) {
        let Some(f) = f else {
            return;
        };
        if index >= dests.len() {
            return;
        }
        // SAFETY: As in `schedule`; `index` is below the list's length.
        unsafe { f(self.state, dests.as_ptr().cast(), dests.len(), index) };
    }

    /// Tells the scheduler `dests[index]` was added.
    pub(crate) fn add_dest(&self, dests: &[&DestInfo], index: usize) {
        self.hook(self.ops.add_dest, dests, index);
    }

    /// Tells the scheduler `dests[index]` is being removed.
    pub(crate) fn del_dest(&self, dests: &[&DestInfo], index: usize) {
        self.hook(self.ops.del_dest, dests, index);
    }

    /// Tells the scheduler `dests[index]` changed.
    pub(crate) fn upd_dest(&self, dests: &[&DestInfo], index: usize) {
        self.hook(self.ops.upd_dest, dests, index);
    }
}

impl Drop for SchedBinding {
    fn drop(&mut self) {
        // SAFETY: `self.state` came from `init_service` and is given back once, here (type
        // invariants); `&mut self` means no other call on it runs. The module is still
        // loaded: `module` is dropped after this, or was released by `unbind`, whose module
        // unloading waits for this drop.
        unsafe { (self.ops.done_service)(self.state) };
    }
}
