// SPDX-License-Identifier: GPL-2.0

//! The registry of scheduler modules and the binding of a scheduler to a service.
//!
//! Scheduler modules register a [`SchedulerOps`] table through the exported
//! `ip_vs_register_scheduler`. A service looks its scheduler up by name, loading
//! `ip_vs_<name>` on demand, and pins the module while it uses it.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_sched.c`

use crate::{
    abi::{DestInfo, Packet, SchedulerOps},
    uapi::SchedName,
};
use core::{
    ffi::c_void,
    pin::Pin,
    sync::atomic::{AtomicPtr, Ordering},
};
use kernel::{
    alloc::{flags::GFP_KERNEL, KBox, KVec},
    error::code::*,
    kmod,
    new_mutex,
    fmt,
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

/// The registered schedulers. Owned by the module object ([`Registry`]) and published here for
/// the exported C functions; null before module init and after module exit.
static REGISTRY: AtomicPtr<Mutex<KVec<Option<OpsPtr>>>> = AtomicPtr::new(core::ptr::null_mut());

/// Owner of the scheduler registry; lives in the module object.
pub(crate) struct Registry {
    /// Registered tables; a slot is emptied on unregistration, so that needs no memory.
    list: Pin<KBox<Mutex<KVec<Option<OpsPtr>>>>>,
}

impl Registry {
    /// Creates the registry and publishes it to the exported functions.
    pub(crate) fn new() -> Result<Self> {
        let list = KBox::pin_init(new_mutex!(KVec::new(), "ip_vs_sched"), GFP_KERNEL)?;
        REGISTRY.store(
            (&*list as *const Mutex<KVec<Option<OpsPtr>>>).cast_mut(),
            Ordering::Release,
        );
        Ok(Self { list })
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        REGISTRY.store(core::ptr::null_mut(), Ordering::Release);
        let _ = &self.list;
    }
}

fn registry() -> Option<&'static Mutex<KVec<Option<OpsPtr>>>> {
    // SAFETY: The pointer is null or points into the live `Registry` of the module object.
    // Scheduler modules depend on this module, so none can call in after it is unloaded, and
    // services release their bindings before the registry is dropped.
    unsafe { REGISTRY.load(Ordering::Acquire).as_ref() }
}

fn name_of(ops: &SchedulerOps) -> &[u8] {
    let len = ops.name.iter().position(|&c| c == 0).unwrap_or(ops.name.len());
    &ops.name[..len]
}

/// Registers a scheduler module's table (`register_ip_vs_scheduler`).
///
/// # Safety
///
/// `ops` must stay valid until [`unregister`] is called with it.
pub(crate) unsafe fn register(ops: *const SchedulerOps) -> Result {
    if ops.is_null() {
        return Err(EINVAL);
    }
    // SAFETY: Valid per the caller's guarantee.
    let name = name_of(unsafe { &*ops });
    let mut list = registry().ok_or(ENODEV)?.lock();
    // SAFETY: Registered tables are valid.
    if list.iter().flatten().any(|o| name_of(unsafe { &*o.0 }) == name) {
        return Err(EEXIST);
    }
    match list.iter_mut().find(|slot| slot.is_none()) {
        Some(slot) => *slot = Some(OpsPtr(ops)),
        None => list.push(Some(OpsPtr(ops)), GFP_KERNEL)?,
    }
    Ok(())
}

/// Removes a table registered with [`register`].
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

/// A scheduler in use by one service: holds a reference on its module and the per-service
/// state. Dropping it releases both.
pub(crate) struct SchedBinding {
    ops: *const SchedulerOps,
    state: *mut c_void,
    name: SchedName,
}

// SAFETY: The ops table is immutable and pinned by the module reference; the per-service state
// is `Send + Sync` by the `Scheduler` trait bounds.
unsafe impl Send for SchedBinding {}
// SAFETY: As above.
unsafe impl Sync for SchedBinding {}

fn find_and_get(name: &[u8]) -> Option<*const SchedulerOps> {
    let list = registry()?.lock();
    for o in list.iter().flatten() {
        // SAFETY: Registered tables are valid while in the list (we hold the lock).
        let ops = unsafe { &*o.0 };
        // SAFETY: The module is live while its table is registered.
        if name_of(ops) == name && unsafe { kmod::try_module_get(ops.module.cast()) } {
            return Some(o.0);
        }
    }
    None
}

impl SchedBinding {
    /// Binds the scheduler `name` for a service with `dests`, loading `ip_vs_<name>` if
    /// needed: `ENOENT` if there is no such scheduler.
    pub(crate) fn new(name: SchedName, dests: &[*const DestInfo]) -> Result<Self> {
        let ops = match find_and_get(name.as_bytes()) {
            Some(ops) => ops,
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
        // SAFETY: `ops` is pinned by the module reference just taken; `dests` is valid.
        let state = unsafe { ((*ops).init_service)(dests.as_ptr(), dests.len()) };
        if state.is_null() {
            // SAFETY: Drops the reference taken by `find_and_get`.
            unsafe { kmod::module_put((*ops).module.cast()) };
            return Err(ENOMEM);
        }
        Ok(Self { ops, state, name })
    }

    /// The scheduler's name.
    pub(crate) fn name(&self) -> &SchedName {
        &self.name
    }

    /// Picks the index of the destination for a new connection.
    pub(crate) fn schedule(&self, dests: &[*const DestInfo], pkt: &Packet) -> Option<usize> {
        // SAFETY: The table and state are live while bound; `dests` and `pkt` are valid.
        let i = unsafe { ((*self.ops).schedule)(self.state, dests.as_ptr(), dests.len(), pkt) };
        usize::try_from(i).ok().filter(|&i| i < dests.len())
    }

    /// Tells the scheduler `dests[index]` was added.
    pub(crate) fn add_dest(&self, dests: &[*const DestInfo], index: usize) {
        // SAFETY: As in `schedule`.
        unsafe { ((*self.ops).add_dest)(self.state, dests.as_ptr(), dests.len(), index) };
    }

    /// Tells the scheduler `dests[index]` is being removed.
    pub(crate) fn del_dest(&self, dests: &[*const DestInfo], index: usize) {
        // SAFETY: As in `schedule`.
        unsafe { ((*self.ops).del_dest)(self.state, dests.as_ptr(), dests.len(), index) };
    }

    /// Tells the scheduler `dests[index]` changed.
    pub(crate) fn upd_dest(&self, dests: &[*const DestInfo], index: usize) {
        // SAFETY: As in `schedule`.
        unsafe { ((*self.ops).upd_dest)(self.state, dests.as_ptr(), dests.len(), index) };
    }
}

impl Drop for SchedBinding {
    fn drop(&mut self) {
        // SAFETY: The state came from `init_service` and is dropped once; the module
        // reference taken in `new` is released last, after its code ran for the last time.
        unsafe {
            ((*self.ops).done_service)(self.state);
            kmod::module_put((*self.ops).module.cast());
        }
    }
}
