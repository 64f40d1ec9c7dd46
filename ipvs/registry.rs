// SPDX-License-Identifier: GPL-2.0

//! A registry of the ops tables that modules plug into the core (schedulers, persistence
//! engines): registration by name from the modules' exported entry points, lookup by name
//! with the module loaded on demand (`ip_vs_<prefix><name>`) and pinned while the table is
//! used.
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_sched.c` (`ip_vs_sched_getbyname`,
//! `register_ip_vs_scheduler`), `ip_vs_pe.c` (the same for engines)

use core::{
    pin::Pin,
    sync::atomic::{AtomicBool, AtomicPtr, Ordering},
};
use kernel::{
    alloc::{flags::GFP_KERNEL, KBox, KVec},
    bindings,
    error::code::*,
    fmt, kmod, new_mutex,
    prelude::*,
    str::CString,
    sync::{
        rcu::{self, RcuBox},
        Mutex,
    },
};

/// An ops table a module registers.
pub(crate) trait Ops: Copy + 'static {
    /// The name it registers under, NUL-padded.
    fn name_field(&self) -> &[u8];
    /// The module holding its code.
    fn module(&self) -> *mut bindings::module;

    /// The name, without the padding.
    fn name(&self) -> &[u8] {
        let n = self.name_field();
        let len = n.iter().position(|&c| c == 0).unwrap_or(n.len());
        n.get(..len).unwrap_or(&[])
    }
}

/// Pointer to a registered ops table.
struct OpsPtr<O>(*const O);

impl<O> Clone for OpsPtr<O> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<O> Copy for OpsPtr<O> {}
impl<O> PartialEq for OpsPtr<O> {
    fn eq(&self, other: &Self) -> bool {
        core::ptr::eq(self.0, other.0)
    }
}

// SAFETY: Ops tables are immutable and live while registered; the registry only compares and
// reads them under its lock.
unsafe impl<O> Send for OpsPtr<O> {}

/// The registered tables; a slot is emptied on unregistration, so that needs no memory.
///
/// # Invariants
///
/// Every pointer in the list is to a table that is valid and immutable until it is removed
/// (the contract of [`Slot::register`]).
type List<O> = Mutex<KVec<Option<OpsPtr<O>>>>;

/// Where a registry is published for the exported functions, meant for a `static`: null
/// outside the lifetime of the module object that owns the [`Registry`].
pub(crate) struct Slot<O> {
    ptr: AtomicPtr<List<O>>,
}

/// Owner of a registry; lives in the module object.
pub(crate) struct Registry<O: Ops> {
    slot: &'static Slot<O>,
    list: Pin<KBox<List<O>>>,
}

impl<O: Ops> Registry<O> {
    /// Creates a registry and publishes it in `slot`.
    pub(crate) fn new(slot: &'static Slot<O>) -> Result<Self> {
        let list = KBox::pin_init(new_mutex!(KVec::new(), "ip_vs_registry"), GFP_KERNEL)?;
        slot.ptr.store((&*list as *const List<O>).cast_mut(), Ordering::Release);
        Ok(Self { slot, list })
    }
}

impl<O: Ops> Drop for Registry<O> {
    fn drop(&mut self) {
        self.slot.ptr.store(core::ptr::null_mut(), Ordering::Release);
        let _ = &self.list;
    }
}

impl<O: Ops> Slot<O> {
    /// An empty slot.
    pub(crate) const fn new() -> Self {
        Self { ptr: AtomicPtr::new(core::ptr::null_mut()) }
    }

    fn list(&self) -> Option<&List<O>> {
        // SAFETY: Null or the list of the live `Registry` of the module object: the modules
        // that register depend on this one, so none calls in after it is unloaded, and users
        // of registered tables release them before the registry is dropped.
        unsafe { self.ptr.load(Ordering::Acquire).as_ref() }
    }

    /// Registers a table: `EEXIST` if one of the same name is registered, `EINVAL` for a
    /// null table.
    ///
    /// # Safety
    ///
    /// `ops` must be null or point to a table that stays valid and unchanged until
    /// [`Self::unregister`] is called with it, whose functions keep the contract of their
    /// type and are code of its module.
    pub(crate) unsafe fn register(&self, ops: *const O) -> Result {
        // SAFETY: Null or valid, per the caller's guarantee.
        let Some(new) = (unsafe { ops.as_ref() }) else {
            return Err(EINVAL);
        };
        let mut list = self.list().ok_or(ENODEV)?.lock();
        // SAFETY: Registered tables are valid while in the list (type invariant of `List`;
        // we hold the lock).
        if list.iter().flatten().any(|o| unsafe { &*o.0 }.name() == new.name()) {
            return Err(EEXIST);
        }
        // INVARIANT: The caller guarantees `ops` stays valid until it is removed.
        match list.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => *slot = Some(OpsPtr(ops)),
            None => list.push(Some(OpsPtr(ops)), GFP_KERNEL)?,
        }
        Ok(())
    }

    /// Removes a table registered with [`Self::register`]. Its users keep working: they
    /// hold a copy of the table and a reference on its module. Then waits for the users
    /// that gave their reference back early ([`HeldModule::release`]) to be done with the
    /// module's code: the RCU readers, and the RCU callbacks queued for them. Sleeps.
    pub(crate) fn unregister(&self, ops: *const O) {
        let Some(list) = self.list() else {
            return;
        };
        for slot in list.lock().iter_mut() {
            if *slot == Some(OpsPtr(ops)) {
                *slot = None;
            }
        }
        // Ends every read section that released a reference (and queued the callback that
        // drops its binding), then waits for those callbacks.
        rcu::synchronize_rcu();
        rcu::barrier();
    }

    /// A copy of the registered table called `name`, with a reference on its module taken;
    /// loads no module.
    pub(crate) fn find_and_get(&self, name: &[u8]) -> Option<(O, ModuleRef)> {
        let list = self.list()?.lock();
        for o in list.iter().flatten() {
            // SAFETY: Registered tables are valid while in the list (type invariant of
            // `List`; we hold the lock).
            let ops = unsafe { &*o.0 };
            if ops.name() != name {
                continue;
            }
            return ModuleRef::try_get(ops.module()).map(|m| (*ops, m));
        }
        None
    }

    /// As [`Self::find_and_get`], loading `ip_vs_<prefix><name>` first if the table is not
    /// registered: `ENOENT` if there is still none. Sleeps.
    pub(crate) fn get_or_load(&self, name: &[u8], prefix: &str) -> Result<(O, ModuleRef)> {
        if let Some(found) = self.find_and_get(name) {
            return Ok(found);
        }
        let modname = CString::try_from_fmt(fmt!(
            "ip_vs_{}{}",
            prefix,
            core::str::from_utf8(name).map_err(|_| ENOENT)?
        ))?;
        // A failed modprobe simply leaves the table missing.
        let _ = kmod::request_module(&modname);
        self.find_and_get(name).ok_or(ENOENT)
    }
}

/// A reference on a module that registered a table, which keeps its code loaded.
///
/// # Invariants
///
/// The object owns a reference on the module `0` points to, taken with `try_module_get`.
pub(crate) struct ModuleRef(*mut bindings::module);

// SAFETY: A module reference may be released on any CPU, in any context.
unsafe impl Send for ModuleRef {}
// SAFETY: `&ModuleRef` gives no access to anything.
unsafe impl Sync for ModuleRef {}

impl ModuleRef {
    /// A reference on `module`, the module of a table that is registered (so the module is
    /// live or being unloaded), unless it is going away.
    fn try_get(module: *mut bindings::module) -> Option<Self> {
        // SAFETY: A table is unregistered by its module's exit at the latest, which cannot
        // have finished while the table is in a list or pinned by a reference.
        // INVARIANT: The reference is taken when this returns true.
        unsafe { kmod::try_module_get(module) }.then_some(Self(module))
    }
}

impl Drop for ModuleRef {
    fn drop(&mut self) {
        // SAFETY: The reference is ours (type invariant) and is released once, here.
        unsafe { kmod::module_put(self.0) };
    }
}

/// The module reference of a binding (of a scheduler or engine to a service), which a
/// service being unlinked gives back at once, as upstream's unbinding does, while RCU
/// readers may still be using the binding: see [`Self::release`].
///
/// # Invariants
///
/// While `held` is true, the object owns a reference on `module`, taken with
/// `try_module_get`.
pub(crate) struct HeldModule {
    module: *mut bindings::module,
    held: AtomicBool,
}

// SAFETY: As `ModuleRef`'s.
unsafe impl Send for HeldModule {}
// SAFETY: `release` is atomic: the reference is given back once, by whichever thread.
unsafe impl Sync for HeldModule {}

impl HeldModule {
    pub(crate) fn new(r: ModuleRef) -> Self {
        let r = core::mem::ManuallyDrop::new(r);
        // INVARIANT: The reference of `r`, which is not released.
        Self { module: r.0, held: AtomicBool::new(true) }
    }

    /// Gives the reference back (once). The module can then be unloaded; its code stays
    /// for as long as [`Registry::unregister`] waits: for RCU readers, and for the RCU
    /// callbacks queued before they ended.
    ///
    /// # Safety
    ///
    /// The caller holds an RCU read section across this call and the queueing (`call_rcu`)
    /// of the callback that drops the binding this belongs to, and from now on the binding
    /// is only used under RCU read sections (as by readers that found it before).
    pub(crate) unsafe fn release(&self) {
        self.put();
    }

    fn put(&self) {
        if self.held.swap(false, Ordering::AcqRel) {
            // SAFETY: The reference was held (type invariant) and `held` is now false: it
            // is released once.
            unsafe { kmod::module_put(self.module) };
        }
    }

    /// Another reference on the same module, unless it is going away.
    pub(crate) fn try_clone(&self) -> Option<ModuleRef> {
        // The module's code and object stay at least until the caller's use of the binding
        // ends (see `release`).
        ModuleRef::try_get(self.module)
    }
}

/// A service's binding to a module's operations (its scheduler, its persistence engine),
/// which holds the module.
pub(crate) trait Binding: Send + 'static {
    /// The module the binding holds.
    fn held_module(&self) -> &HeldModule;
}

/// Unbinds the binding in `slot` of a service being flushed or deleted
/// (`ip_vs_unbind_scheduler`, `ip_vs_unbind_pe`): its module reference is given back at
/// once, so that the module can be unloaded as soon as the command returns, as upstream's;
/// the binding is dropped from an RCU callback once the readers are done, which the
/// module's unloading waits for ([`Registry::unregister`]). `g` is held across both.
pub(crate) fn unbind<T: Binding>(slot: &RcuBox<T>, g: &rcu::Guard) {
    if let Some(b) = slot.get(g) {
        // SAFETY: `g` is held across this and the `call_rcu` of the binding's drop just
        // below; once unpublished, the binding is only used by readers that found it
        // before, under RCU.
        unsafe { b.held_module().release() };
    }
    slot.replace_deferred(None);
}

impl Drop for HeldModule {
    fn drop(&mut self) {
        // The binding is being dropped: nothing uses the module's code for it any more.
        self.put();
    }
}
