// SPDX-License-Identifier: GPL-2.0

//! The registry of persistence-engine modules, the binding of an engine to a service, and
//! the engine data of a persistence template.
//!
//! Engine modules register a [`PeOps`] table (see `pe_abi.rs`) through the exported
//! `ip_vs_register_pe`. A service looks its engine up by name, loading `ip_vs_pe_<name>` on
//! demand, and pins the module while it uses it ([`PeBinding`]).
//!
//! C: `srctree/net/netfilter/ipvs/ip_vs_pe.c`

pub(crate) use crate::registry::ModuleRef;
use crate::{
    pe_abi::{PeOps, PEDATA_MAXLEN, PENAME_MAXLEN},
    registry::{self, HeldModule},
};
use kernel::{
    bindings,
    prelude::*,
    sync::{rcu, rcu::RcuBox},
};

impl registry::Ops for PeOps {
    fn name_field(&self) -> &[u8] {
        &self.name
    }
    fn module(&self) -> *mut bindings::module {
        self.module
    }
}

/// The registered engines, published for the exported functions.
static ENGINES: registry::Slot<PeOps> = registry::Slot::new();

/// Owner of the engine registry; lives in the module object.
pub(crate) type Registry = registry::Registry<PeOps>;

/// Creates the engine registry.
pub(crate) fn new_registry() -> Result<Registry> {
    Registry::new(&ENGINES)
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
    // SAFETY: The caller's guarantee is the registry's requirement.
    unsafe { ENGINES.register(ops) }
}

/// Removes a table registered with [`register`] (`unregister_ip_vs_pe`). Services using it
/// keep a copy of the table and a reference on its module, so none is unregistered while
/// used: the module cannot be unloaded. Waits for the bindings unbound early
/// ([`PeBinding::unbind`]) to be dropped. Sleeps.
pub(crate) fn unregister(ops: *const PeOps) {
    ENGINES.unregister(ops);
}

/// A reference on the module of the registered engine called `name`
/// (`__ip_vs_pe_getbyname` for a sync record, which loads no module).
pub(crate) fn get_registered(name: &[u8]) -> Option<ModuleRef> {
    ENGINES.find_and_get(name).map(|(_, m)| m)
}

/// An engine in use by a service: a copy of its table and a reference on its module.
///
/// # Invariants
///
/// `ops` is a copy of a table registered by the module `module` pins, so its function keeps
/// the contract documented on [`PeOps`] and stays loaded while `self` lives: while `module`
/// holds its reference, or, once [`PeBinding::unbind`] gave it back, because that module's
/// unloading waits for the RCU readers and for the callback that drops `self`
/// ([`HeldModule::release`]).
pub(crate) struct PeBinding {
    ops: PeOps,
    module: HeldModule,
}

// SAFETY: The table's function may run on any CPU, concurrently; the module reference may be
// dropped on any thread.
unsafe impl Send for PeBinding {}
// SAFETY: As above.
unsafe impl Sync for PeBinding {}

impl registry::Binding for PeBinding {
    fn held_module(&self) -> &registry::HeldModule {
        &self.module
    }
}

impl PeBinding {
    /// Binds the engine `name`, loading `ip_vs_pe_<name>` if needed (`ip_vs_pe_getbyname`):
    /// `ENOENT` if there is no such engine. Sleeps.
    pub(crate) fn new(name: &[u8]) -> Result<Self> {
        let (ops, module) = ENGINES.get_or_load(name, "pe_")?;
        // INVARIANT: Found registered, with its module pinned.
        Ok(Self { ops, module: HeldModule::new(module) })
    }

    /// Unbinds the engine of a service being flushed or deleted: see
    /// [`registry::unbind`].
    pub(crate) fn unbind(slot: &RcuBox<Self>, g: &rcu::Guard) {
        registry::unbind(slot, g);
    }

    /// The engine's name.
    pub(crate) fn name(&self) -> &[u8] {
        registry::Ops::name(&self.ops)
    }

    /// Another reference on the engine's module, for a template with its data.
    pub(crate) fn module_ref(&self) -> Option<ModuleRef> {
        self.module.try_clone()
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
