// SPDX-License-Identifier: GPL-2.0

//! The registry of persistence-engine modules, the binding of an engine to a service, and
//! the engine data of a persistence template.
//!
//! Engine modules register a [`PeOps`] table (see `pe_abi.rs`) through the exported
//! `ip_vs_register_pe`. A service looks its engine up by name, loading `ip_vs_pe_<name>` on
//! demand, and pins the module while it uses it ([`PeBinding`]).
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_pe.c`

use crate::pe_abi::{PeOps, PEDATA_MAXLEN, PENAME_MAXLEN};
use core::{
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
struct OpsPtr(*const PeOps);

// SAFETY: Ops tables are immutable and live while registered; the registry only compares and
// reads them under its lock.
unsafe impl Send for OpsPtr {}

/// The registered tables.
///
/// # Invariants
///
/// Every pointer in the list is to a table that is valid and immutable until it is removed
/// (the contract of [`register`]).
type List = Mutex<KVec<Option<OpsPtr>>>;

/// The registered engines, published for the exported functions; null outside the module's
/// lifetime.
static REGISTRY: AtomicPtr<List> = AtomicPtr::new(core::ptr::null_mut());

/// Owner of the engine registry; lives in the module object.
pub(crate) struct Registry {
    list: Pin<KBox<List>>,
}

impl Registry {
    /// Creates the registry and publishes it to the exported functions.
    pub(crate) fn new() -> Result<Self> {
        let list = KBox::pin_init(new_mutex!(KVec::new(), "ip_vs_pe"), GFP_KERNEL)?;
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
    // SAFETY: Null or the live `Registry` of the module object: engine modules depend on
    // this module, and services drop their bindings before the registry goes.
    unsafe { REGISTRY.load(Ordering::Acquire).as_ref() }
}

fn name_of(ops: &PeOps) -> &[u8] {
    let len = ops.name.iter().position(|&c| c == 0).unwrap_or(ops.name.len());
    ops.name.get(..len).unwrap_or(&[])
}

/// Registers an engine's table (`register_ip_vs_pe`): `EEXIST` if one of the same name is
/// registered, `EINVAL` for a null table.
///
/// # Safety
///
/// `ops` must be null or point to a table that stays valid and unchanged until
/// [`unregister`] is called with it, whose function keeps the contract documented on
/// [`PeOps`] and is code of its `module`.
pub(crate) unsafe fn register(ops: *const PeOps) -> Result {
    // SAFETY: Null or valid, per the caller's guarantee.
    let Some(new) = (unsafe { ops.as_ref() }) else {
        return Err(EINVAL);
    };
    let name = name_of(new);
    let mut list = registry().ok_or(ENODEV)?.lock();
    // SAFETY: Registered tables are valid while in the list (type invariant; lock held).
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

/// Removes a table registered with [`register`] (`unregister_ip_vs_pe`). Services using it
/// keep a copy of the table and a reference on its module, so none is unregistered while
/// used: the module cannot be unloaded.
pub(crate) fn unregister(ops: *const PeOps) {
    let Some(reg) = registry() else {
        return;
    };
    for slot in reg.lock().iter_mut() {
        if *slot == Some(OpsPtr(ops)) {
            *slot = None;
        }
    }
}

/// A reference on the module of the registered engine called `name`
/// (`__ip_vs_pe_getbyname` for a sync record, which loads no module).
pub(crate) fn get_registered(name: &[u8]) -> Option<ModuleRef> {
    find_and_get(name).map(|(_, m)| m)
}

/// A reference on an engine module: held by the services that use the engine, and by
/// the templates that have its data (upstream's `ip_vs_pe_get` in `ip_vs_conn_new`), so
/// that it cannot be unloaded meanwhile.
///
/// # Invariants
///
/// The object owns a reference on the module `0` points to, taken with `try_module_get`.
pub(crate) struct ModuleRef(*mut bindings::module);

// SAFETY: A module reference may be released on any CPU, in any context.
unsafe impl Send for ModuleRef {}
// SAFETY: `&ModuleRef` gives no access to anything.
unsafe impl Sync for ModuleRef {}

impl Drop for ModuleRef {
    fn drop(&mut self) {
        // SAFETY: The reference is ours (type invariant), released once, here.
        unsafe { kmod::module_put(self.0) };
    }
}

/// A copy of the table called `name`, with a reference on its module taken
/// (`__ip_vs_pe_getbyname`).
fn find_and_get(name: &[u8]) -> Option<(PeOps, ModuleRef)> {
    let list = registry()?.lock();
    for o in list.iter().flatten() {
        // SAFETY: Registered tables are valid while in the list (type invariant; lock held).
        let ops = unsafe { &*o.0 };
        if name_of(ops) != name {
            continue;
        }
        // SAFETY: A table is unregistered by its module's exit at the latest, which cannot
        // have finished while the table is listed.
        if unsafe { kmod::try_module_get(ops.module) } {
            // INVARIANT: The reference was just taken.
            return Some((*ops, ModuleRef(ops.module)));
        }
    }
    None
}

/// An engine in use by a service: a copy of its table and a reference on its module.
///
/// # Invariants
///
/// `ops` is a copy of a table registered by the module `module` pins, so its function keeps
/// the contract documented on [`PeOps`] and stays loaded while `self` lives.
pub(crate) struct PeBinding {
    ops: PeOps,
    module: ModuleRef,
}

// SAFETY: The table's function may run on any CPU, concurrently; the module reference may be
// dropped on any thread.
unsafe impl Send for PeBinding {}
// SAFETY: As above.
unsafe impl Sync for PeBinding {}

impl PeBinding {
    /// Binds the engine `name`, loading `ip_vs_pe_<name>` if needed (`ip_vs_pe_getbyname`):
    /// `ENOENT` if there is no such engine. Sleeps.
    pub(crate) fn new(name: &[u8]) -> Result<Self> {
        let (ops, module) = match find_and_get(name) {
            Some(found) => found,
            None => {
                let modname = CString::try_from_fmt(fmt!(
                    "ip_vs_pe_{}",
                    core::str::from_utf8(name).map_err(|_| ENOENT)?
                ))?;
                // A failed modprobe leaves the engine missing.
                let _ = kmod::request_module(&modname);
                find_and_get(name).ok_or(ENOENT)?
            }
        };
        // INVARIANT: Found registered, with its module pinned.
        Ok(Self { ops, module })
    }

    /// The engine's name.
    pub(crate) fn name(&self) -> &[u8] {
        name_of(&self.ops)
    }

    /// Another reference on the engine's module, for a template with its data.
    pub(crate) fn module_ref(&self) -> Option<ModuleRef> {
        // SAFETY: The module is pinned by `self.module` (type invariants), so it is live.
        if unsafe { kmod::try_module_get(self.module.0) } {
            // INVARIANT: The reference was just taken.
            Some(ModuleRef(self.module.0))
        } else {
            None
        }
    }

    /// The engine's data in a packet's transport payload (`fill_param`), of which `dataoff` is
    /// the offset in the packet; `None` if it has none (upstream then falls back to the
    /// service's usual persistence).
    pub(crate) fn fill_param(&self, payload: &[u8], dataoff: usize) -> Option<PeData> {
        let (mut off, mut len) = (0usize, 0usize);
        // SAFETY: The function is loaded and keeps the table's contract (type invariants);
        // `payload` is valid for reading its length and the two outputs for writing.
        let ret = unsafe { (self.ops.fill_param)(payload.as_ptr(), payload.len(), dataoff, &mut off, &mut len) };
        if ret != 0 {
            return None;
        }
        PeData::new(&self.ops.name, payload.get(off..off.checked_add(len)?)?)
    }
}

/// The engine data of a persistence template (upstream's `pe_data`, with the engine's name
/// its `pe` gives): at most [`PEDATA_MAXLEN`] bytes.
#[derive(Clone, Copy)]
pub(crate) struct PeData {
    name: [u8; PENAME_MAXLEN + 1],
    len: u8,
    data: [u8; PEDATA_MAXLEN],
}

impl PeData {
    /// The data `data` of the engine called `name` (NUL-terminated); `None` if too long.
    pub(crate) fn new(name: &[u8; PENAME_MAXLEN + 1], data: &[u8]) -> Option<Self> {
        let len = u8::try_from(data.len()).ok()?;
        let mut d = Self { name: *name, len, data: [0; PEDATA_MAXLEN] };
        d.data.get_mut(..data.len())?.copy_from_slice(data);
        Some(d)
    }

    /// The data `data` of the engine `name` from a sync record; `None` if either is too long.
    pub(crate) fn from_sync(name: &[u8], data: &[u8]) -> Option<Self> {
        let mut n = [0u8; PENAME_MAXLEN + 1];
        n.get_mut(..name.len())?.copy_from_slice(name);
        if name.len() > PENAME_MAXLEN {
            return None;
        }
        Self::new(&n, data)
    }

    /// The data.
    pub(crate) fn data(&self) -> &[u8] {
        self.data.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// The engine's name.
    pub(crate) fn name(&self) -> &[u8] {
        let len = self.name.iter().position(|&c| c == 0).unwrap_or(self.name.len());
        self.name.get(..len).unwrap_or(&[])
    }

    /// Whether `other` is the same engine's same data (upstream's `ct_match` compares the
    /// engine and the bytes).
    pub(crate) fn same(&self, other: &PeData) -> bool {
        self.name == other.name && self.data() == other.data()
    }
}
