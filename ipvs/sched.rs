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
};
use core::{
    ffi::c_void,
    pin::Pin,
    sync::atomic::{AtomicPtr, Ordering},
};
use kernel::{
    alloc::{flags::GFP_KERNEL, KBox, KVec},
    bindings,
    error::code::*,
    fmt, kmod, new_mutex,
    prelude::*,
    str::CString,
    sync::Mutex,
};

/// Pointer to a registered ops table.
#[derive(Clone, Copy, PartialEq, Eq)]
struct OpsPtr(*const SchedulerOps);

// SAFETY: Ops tables are immutable and live while registered; the registry only compares and
// reads them under its lock.
unsafe impl Send for OpsPtr {}

/// The registered tables; a slot is emptied on unregistration, so that needs no memory.
///
/// # Invariants
///
/// Every pointer in the list is to a table that is valid and immutable until it is removed
/// (the contract of [`register`]).
type List = Mutex<KVec<Option<OpsPtr>>>;

/// The registered schedulers. Owned by the module object ([`Registry`]) and published here for
/// the exported C functions; null before module init and after module exit.
static REGISTRY: AtomicPtr<List> = AtomicPtr::new(core::ptr::null_mut());

/// Owner of the scheduler registry; lives in the module object.
pub(crate) struct Registry {
    list: Pin<KBox<List>>,
}

impl Registry {
    /// Creates the registry and publishes it to the exported functions.
    pub(crate) fn new() -> Result<Self> {
        let list = KBox::pin_init(new_mutex!(KVec::new(), "ip_vs_sched"), GFP_KERNEL)?;
        REGISTRY.store((&*list as *const List).cast_mut(), Ordering::Release);
        Ok(Self { list })
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        REGISTRY.store(core::ptr::null_mut(), Ordering::Release);
        let _ = &self.list;
    }
}

fn registry() -> Option<&'static List> {
    // SAFETY: The pointer is null or points into the live `Registry` of the module object.
    // Scheduler modules depend on this module, so none can call in after it is unloaded, and
    // services release their bindings before the registry is dropped.
    unsafe { REGISTRY.load(Ordering::Acquire).as_ref() }
}

fn name_of(ops: &SchedulerOps) -> &[u8] {
    let len = ops.name.iter().position(|&c| c == 0).unwrap_or(ops.name.len());
    ops.name.get(..len).unwrap_or(&[])
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
    // SAFETY: Null or valid, per the caller's guarantee.
    let Some(new) = (unsafe { ops.as_ref() }) else {
        return Err(EINVAL);
    };
    let name = name_of(new);
    let mut list = registry().ok_or(ENODEV)?.lock();
    // SAFETY: Registered tables are valid while in the list (type invariant of `List`; we
    // hold the lock).
    if list.iter().flatten().any(|o| name_of(unsafe { &*o.0 }) == name) {
        return Err(EEXIST);
    }
    // INVARIANT: The caller guarantees `ops` stays valid until it is removed.
    match list.iter_mut().find(|slot| slot.is_none()) {
        Some(slot) => *slot = Some(OpsPtr(ops)),
        None => list.push(Some(OpsPtr(ops)), GFP_KERNEL)?,
    }
    Ok(())
}

/// Removes a table registered with [`register`] (`unregister_ip_vs_scheduler`). Services that
/// use it keep working: they hold a copy of the table and a reference on its module.
pub(crate) fn unregister(ops: *const SchedulerOps) {
    let Some(reg) = registry() else {
        return;
    };
    for slot in reg.lock().iter_mut() {
        if *slot == Some(OpsPtr(ops)) {
            *slot = None;
        }
    }
}

/// A reference on a scheduler module, which keeps its code loaded.
///
/// # Invariants
///
/// The object owns a reference on the module `0` points to, taken with `try_module_get`.
struct ModuleRef(*mut bindings::module);

impl Drop for ModuleRef {
    fn drop(&mut self) {
        // SAFETY: The reference is ours (type invariant) and is released once, here.
        unsafe { kmod::module_put(self.0) };
    }
}

/// A copy of the registered table called `name`, with a reference on its module taken.
fn find_and_get(name: &[u8]) -> Option<(SchedulerOps, ModuleRef)> {
    let list = registry()?.lock();
    for o in list.iter().flatten() {
        // SAFETY: Registered tables are valid while in the list (type invariant of `List`;
        // we hold the lock).
        let ops = unsafe { &*o.0 };
        if name_of(ops) != name {
            continue;
        }
        // SAFETY: A table is unregistered by its module's exit at the latest, which cannot
        // have finished while the table is in the list: the module is live or being
        // unloaded.
        if unsafe { kmod::try_module_get(ops.module) } {
            // INVARIANT: The reference was just taken.
            return Some((*ops, ModuleRef(ops.module)));
        }
    }
    None
}

/// A scheduler in use by one service: its table, a reference on its module and the
/// per-service state. Dropping it drops the state, then releases the module.
///
/// # Invariants
///
/// - `ops` is a copy of a table registered by the module `_module` holds, so its functions
///   keep the contract documented on [`SchedulerOps`] and stay loaded while `self` lives.
/// - `state` was stored by `ops.init_service` and is given to `ops.done_service` only by
///   `drop`.
pub(crate) struct SchedBinding {
    ops: SchedulerOps,
    state: *const c_void,
    name: SchedName,
    /// Dropped after `drop` has run `done_service`.
    _module: ModuleRef,
}

// SAFETY: The state is a `KBox<S>` of an `S: Scheduler`, hence `Send + Sync`, and the table's
// contract lets its functions run on any CPU, concurrently; the module reference may be
// dropped on any thread.
unsafe impl Send for SchedBinding {}
// SAFETY: As above.
unsafe impl Sync for SchedBinding {}

impl SchedBinding {
    /// Binds the scheduler `name` for a service with `dests`, loading `ip_vs_<name>` if
    /// needed: `ENOENT` if there is no such scheduler. Sleeps.
    pub(crate) fn new(name: SchedName, dests: &[&DestInfo]) -> Result<Self> {
        let (ops, module) = match find_and_get(name.as_bytes()) {
            Some(found) => found,
            None => {
                let modname = CString::try_from_fmt(fmt!(
                    "ip_vs_{}",
                    core::str::from_utf8(name.as_bytes()).map_err(|_| ENOENT)?
                ))?;
                // A failed modprobe simply leaves the scheduler missing.
                let _ = kmod::request_module(&modname);
                find_and_get(name.as_bytes()).ok_or(ENOENT)?
            }
        };
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
            _module: module,
        })
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
        // invariants); `&mut self` means no other call on it runs. The module is still pinned:
        // `_module` is dropped after this.
        unsafe { (self.ops.done_service)(self.state) };
    }
}
